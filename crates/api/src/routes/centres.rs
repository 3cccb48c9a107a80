use crate::auth::{AuthUser, Role, Scope};
use crate::authz::Placement;
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use danbao_domain::RegionCode;
use danbao_persistence::diesel_async::AsyncConnection;
use danbao_persistence::models::centre::{CentreRow, NewCentre};
use danbao_persistence::repo;
use danbao_persistence::repo::centre::CentreFilter;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCentreBody {
    #[schema(min_length = 1, max_length = 200, example = "南昌市小额贷款担保中心")]
    pub name: String,
    pub region_code: RegionCode,
}

#[derive(Serialize, ToSchema)]
pub struct CentreView {
    pub id: Uuid,
    pub name: String,
    pub region_code: String,
    pub created_at: DateTime<Utc>,
}

impl From<CentreRow> for CentreView {
    fn from(r: CentreRow) -> Self {
        CentreView {
            id: r.id,
            name: r.name,
            region_code: r.region_code,
            created_at: r.created_at,
        }
    }
}

pub fn placement(c: &CentreRow) -> Placement<'_> {
    Placement {
        centre_id: Some(c.id),
        bank_id: None,
        region_code: Some(&c.region_code),
    }
}

/// Set up a guarantee centre in a region (admin).
#[utoipa::path(tag = "centres", request_body = NewCentreBody, responses(
    (status = 201, body = CentreView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/centres")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewCentreBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let body = body.0;
    super::regions::check_name("name", &body.name, 200)?;
    let id = Uuid::now_v7();
    let event = Audit {
        principal: &user,
        request_id: &rid,
    }
    .event(
        "centre.created",
        "centre",
        id,
        Some(body.region_code.as_str()),
        serde_json::json!({ "name": body.name.trim() }),
    );
    let mut conn = state.conn().await?;
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::centre::insert(
                conn,
                &NewCentre {
                    id,
                    name: body.name.trim(),
                    region_code: body.region_code.as_str(),
                },
            )
            .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().json(CentreView::from(row)))
}

/// Centres the caller may see: all (admin), its own (clerk), its region's (supervisor).
#[utoipa::path(tag = "centres", params(PageParams), responses(
    (status = 200, body = Paged<CentreView>),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/centres")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Clerk, Role::Supervisor])?;
    let filter = match &user.scope {
        Scope::Centre(c) => CentreFilter {
            only_id: Some(*c),
            ..Default::default()
        },
        Scope::Region(r) => CentreFilter {
            region_prefix: Some(r.subtree_prefix().to_owned()),
            ..Default::default()
        },
        Scope::All => CentreFilter::default(),
        Scope::Bank(_) => return Err(ApiError::Forbidden),
    };
    let mut conn = state.conn().await?;
    let rows = repo::centre::list(&mut conn, &filter, page.cursor_uuid()?, page.limit()?).await?;
    let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows.items.into_iter().map(CentreView::from).collect(),
        next_cursor,
    }))
}

/// One centre, if within the caller's scope.
#[utoipa::path(tag = "centres", params(("id" = Uuid, Path)), responses(
    (status = 200, body = CentreView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/centres/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Clerk, Role::Supervisor])?;
    let mut conn = state.conn().await?;
    let row = repo::centre::find(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    user.ensure_visible(&placement(&row))?;
    Ok(HttpResponse::Ok().json(CentreView::from(row)))
}
