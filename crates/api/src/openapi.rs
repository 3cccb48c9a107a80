//! The OpenAPI document is generated from the handlers as they are mounted, so what is
//! documented is what is served. `openapi/openapi.json` is a committed copy, checked by a test.
use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::App;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{AppExt, UtoipaApp};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "danbao",
        description = "Guaranteed microloans (小额担保贷款): guarantee centres, funds, banks and supervisors. \
Money is a string with two decimals (yuan); errors are RFC 9457 problem+json with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Mounts every documented route on an app.
pub fn mount<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.service(utoipa_actix_web::scope("/v1").configure(crate::routes::v1))
        .configure(crate::routes::unversioned)
}

/// The OpenAPI document of the service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = mount(App::new().into_utoipa_app().openapi(ApiDoc::openapi())).split_for_parts();
    api
}

pub fn openapi_json() -> String {
    let mut s = openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
