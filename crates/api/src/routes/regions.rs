use crate::auth::{AuthUser, Role};
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use danbao_domain::RegionCode;
use danbao_persistence::diesel_async::AsyncConnection;
use danbao_persistence::models::region::{NewRegion, RegionRow};
use danbao_persistence::repo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRegionBody {
    /// GB/T 2260 code; its parent (city of a county, province of a city) must exist first.
    pub code: RegionCode,
    #[schema(min_length = 1, max_length = 100, example = "南昌市")]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct RegionView {
    pub code: String,
    pub name: String,
    pub parent_code: Option<String>,
    /// 1 province, 2 city, 3 county.
    pub level: i16,
    pub created_at: DateTime<Utc>,
}

impl From<RegionRow> for RegionView {
    fn from(r: RegionRow) -> Self {
        RegionView {
            code: r.code,
            name: r.name,
            parent_code: r.parent_code,
            level: r.level,
            created_at: r.created_at,
        }
    }
}

/// Free text of a body: 1 to `max` printable characters after trimming.
pub fn check_name(field: &str, name: &str, max: usize) -> Result<(), ApiError> {
    Ok(danbao_domain::bounds::check_text(field, name, max)?)
}

/// Add a region to the tree (admin).
#[utoipa::path(tag = "regions", request_body = NewRegionBody, responses(
    (status = 201, body = RegionView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, description = "code exists", body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/regions")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewRegionBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let body = body.0;
    check_name("name", &body.name, 100)?;
    let parent = body.code.parent();
    let mut conn = state.conn().await?;
    if let Some(p) = &parent {
        if repo::region::find(&mut conn, p.as_str()).await?.is_none() {
            return Err(ApiError::validation(
                "code",
                format!("parent region {p} does not exist yet"),
            ));
        }
    }
    let event = Audit {
        principal: &user,
        request_id: &rid,
    }
    .event(
        "region.created",
        "region",
        body.code.as_str(),
        Some(body.code.as_str()),
        serde_json::json!({ "name": body.name.trim() }),
    );
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::region::insert(
                conn,
                &NewRegion {
                    code: body.code.as_str(),
                    name: body.name.trim(),
                    parent_code: parent.as_ref().map(|p| p.as_str()),
                },
            )
            .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().json(RegionView::from(row)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegionFilter {
    /// Only this region and the regions below it.
    pub under: Option<String>,
}

/// The region tree, in code order (any authenticated caller).
#[utoipa::path(tag = "regions", params(PageParams, RegionFilter), responses(
    (status = 200, body = Paged<RegionView>),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/regions")]
pub async fn list(
    state: web::Data<AppState>,
    _user: AuthUser,
    page: Query<PageParams>,
    filter: Query<RegionFilter>,
) -> ApiResult<HttpResponse> {
    let limit = page.limit()?;
    let under = filter
        .under
        .as_deref()
        .map(|c| {
            RegionCode::parse(c)
                .map_err(|_| ApiError::validation("under", "must be a six-digit GB/T 2260 code"))
        })
        .transpose()?;
    let mut conn = state.conn().await?;
    let rows = repo::region::list(
        &mut conn,
        under.as_ref().map(|u| u.subtree_prefix()),
        page.cursor_region()?,
        limit,
    )
    .await?;
    let next_cursor = super::next_cursor(&rows, |r| r.code.clone());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows.items.into_iter().map(RegionView::from).collect(),
        next_cursor,
    }))
}

/// One region.
#[utoipa::path(tag = "regions", params(("code" = String, Path, description = "GB/T 2260 code")), responses(
    (status = 200, body = RegionView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/regions/{code}")]
pub async fn get(
    state: web::Data<AppState>,
    _user: AuthUser,
    code: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let row = repo::region::find(&mut conn, &code)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(RegionView::from(row)))
}
