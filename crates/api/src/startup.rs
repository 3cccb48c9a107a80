use crate::context::{deadline, request_context};
use crate::error::ApiError;
use crate::openapi::{mount, ApiDoc};
use crate::state::AppState;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpServer};
use std::net::{SocketAddr, TcpListener};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

pub struct Application {
    server: Server,
    addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub workers: usize,
    /// Seconds to finish requests in flight after SIGTERM/Ctrl-C.
    pub shutdown_timeout: u64,
    /// Longest a request may run (`None`: no limit); see [`crate::context::deadline`].
    pub request_timeout: Option<std::time::Duration>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: 2,
            shutdown_timeout: 30,
            request_timeout: None,
        }
    }
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    tracing::debug!(path = %req.path(), "no route");
    Err(ApiError::NotFound)
}

fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    // A malformed id can name no resource.
    tracing::debug!(error = %err, "bad path parameter");
    ApiError::NotFound.into()
}

/// Builds the HTTP server on a bound listener (port 0 in tests).
pub fn build(
    state: AppState,
    listener: TcpListener,
    opts: &ServerOptions,
) -> anyhow::Result<Application> {
    let addr = listener.local_addr()?;
    let data = web::Data::new(state);
    let limit = opts.request_timeout;
    let server = HttpServer::new(move || {
        let (app, api) = mount(
            App::new()
                .app_data(data.clone())
                .app_data(web::PathConfig::default().error_handler(path_error))
                // Inside request_context, so that the request id is known when it logs a stop.
                .wrap(from_fn(move |req, next| deadline(limit, req, next)))
                .wrap(from_fn(request_context))
                .into_utoipa_app()
                .openapi(ApiDoc::openapi()),
        )
        .split_for_parts();
        app.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api))
            .service(web::redirect("/docs", "/docs/"))
            // HTML pages for supervisors, outside the OpenAPI document (not part of the API).
            .configure(crate::dashboard::configure)
            .default_service(web::to(not_found))
    })
    .listen(listener)?
    .workers(opts.workers.max(1))
    .shutdown_timeout(opts.shutdown_timeout)
    .run();
    Ok(Application { server, addr })
}

impl Application {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Runs until stopped (SIGINT/SIGTERM are handled by actix: stop accepting, drain, exit).
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
