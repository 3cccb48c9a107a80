use crate::auth::{AuthUser, Role};
use crate::error::ApiResult;
use crate::extract::{PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use danbao_persistence::models::audit_event::AuditEventRow;
use danbao_persistence::repo;
use danbao_persistence::repo::audit::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    /// `user`, `client` (a bank's system) or `system` (the command line, start-up).
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub actor_role: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub region_code: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

impl From<AuditEventRow> for AuditEventView {
    fn from(r: AuditEventRow) -> Self {
        AuditEventView {
            id: r.id,
            occurred_at: r.occurred_at,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            actor_role: r.actor_role,
            action: r.action,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            region_code: r.region_code,
            request_id: r.request_id,
            detail: r.detail,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[serde(default, deserialize_with = "crate::limits::query_text")]
    #[param(min_length = 1, max_length = 100)]
    pub entity_type: Option<String>,
    #[serde(default, deserialize_with = "crate::limits::query_text")]
    #[param(min_length = 1, max_length = 100)]
    pub entity_id: Option<String>,
}

/// Who did what, when, from which request; newest first (admin; supervisors see events
/// of their region and below).
#[utoipa::path(tag = "audit", params(PageParams, AuditQuery), responses(
    (status = 200, body = Paged<AuditEventView>),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/audit-events")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
    q: Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Supervisor])?;
    let before = page.cursor_i64()?;
    let filter = AuditFilter {
        region_prefix: user.region_limit().map(|r| r.subtree_prefix().to_owned()),
        entity_type: q.entity_type.clone(),
        entity_id: q.entity_id.clone(),
    };
    let mut conn = state.read_conn().await?;
    let rows = repo::audit::list(&mut conn, &filter, before, page.limit()?).await?;
    let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows.items.into_iter().map(AuditEventView::from).collect(),
        next_cursor,
    }))
}
