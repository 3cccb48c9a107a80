use crate::auth::{AuthUser, Role};
use crate::context::{Audit, RequestId};
use crate::error::{from_domain_errors, ApiError, ApiResult};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use danbao_domain::{Policy, RegionCode};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
use danbao_persistence::models::audit_event::NewAuditEvent;
use danbao_persistence::models::policy::PolicyRow;
use danbao_persistence::repo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPolicyBody {
    /// The province or city whose rules these are; absent for nationwide rules.
    pub region_code: Option<RegionCode>,
    pub policy: Policy,
}

#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    pub id: Uuid,
    pub region_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub policy: Policy,
}

impl TryFrom<PolicyRow> for PolicyView {
    type Error = ApiError;
    fn try_from(r: PolicyRow) -> Result<Self, ApiError> {
        let policy = r
            .to_domain()
            .map_err(|e| ApiError::internal(anyhow::anyhow!("stored policy invalid: {e}")))?;
        Ok(PolicyView {
            id: r.id,
            region_code: r.region_code,
            created_at: r.created_at,
            policy,
        })
    }
}

/// Insert a validated policy with its audit event; `None` if `if_absent` and the code exists.
pub async fn insert_policy(
    conn: &mut AsyncPgConnection,
    region_code: Option<String>,
    policy: &Policy,
    if_absent: bool,
    audit: impl FnOnce(Uuid) -> NewAuditEvent,
) -> ApiResult<Option<PolicyRow>> {
    policy.validate().map_err(from_domain_errors)?;
    let id = Uuid::now_v7();
    let row = PolicyRow::from_domain(id, region_code, policy);
    let event = audit(id);
    conn.transaction::<_, ApiError, _>(async |conn| {
        let stored = if if_absent {
            repo::policy::insert_if_absent(conn, &row).await?
        } else {
            Some(repo::policy::insert(conn, &row).await?)
        };
        if stored.is_some() {
            repo::audit::record(conn, &event).await?;
        }
        Ok(stored)
    })
    .await
}

/// Add an effective-dated policy (admin). Policies are never edited: a change of rules is a
/// new policy with a later `effective_from`, and each loan keeps the one it was approved under.
#[utoipa::path(tag = "policies", request_body = NewPolicyBody, responses(
    (status = 201, body = PolicyView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/policies")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewPolicyBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let body = body.0;
    let region = body.region_code.as_ref().map(|r| r.as_str().to_owned());
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let detail = serde_json::to_value(&body.policy).map_err(ApiError::internal)?;
    let mut conn = state.conn().await?;
    let row = insert_policy(&mut conn, region.clone(), &body.policy, false, |id| {
        audit.event("policy.created", "policy", id, region.as_deref(), detail)
    })
    .await?
    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("insert returned nothing")))?;
    Ok(HttpResponse::Created().json(PolicyView::try_from(row)?))
}

#[derive(Serialize, ToSchema)]
pub struct PresetsLoaded {
    /// Codes of the presets added by this call.
    pub created: Vec<String>,
    /// Codes that were already there (loading is idempotent).
    pub existing: Vec<String>,
}

/// Load the nationwide presets of 2002, 2006, 2008 and 2020 (admin); idempotent.
#[utoipa::path(tag = "policies", responses(
    (status = 200, body = PresetsLoaded),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/policies/presets")]
pub async fn load_presets(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let mut conn = state.conn().await?;
    let loaded = load_all_presets(&mut conn, |id, code| {
        audit.event(
            "policy.preset_loaded",
            "policy",
            id,
            None,
            serde_json::json!({ "code": code }),
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(loaded))
}

pub async fn load_all_presets(
    conn: &mut AsyncPgConnection,
    audit: impl Fn(Uuid, &str) -> NewAuditEvent,
) -> ApiResult<PresetsLoaded> {
    let mut out = PresetsLoaded {
        created: vec![],
        existing: vec![],
    };
    for p in danbao_domain::presets() {
        let code = p.code.clone();
        match insert_policy(conn, None, &p, true, |id| audit(id, &code)).await? {
            Some(_) => out.created.push(code),
            None => out.existing.push(code),
        }
    }
    Ok(out)
}

/// All policies (any authenticated caller).
#[utoipa::path(tag = "policies", params(PageParams), responses((status = 200, body = Paged<PolicyView>)))]
#[get("/policies")]
pub async fn list(
    state: web::Data<AppState>,
    _user: AuthUser,
    page: Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let rows = repo::policy::list(&mut conn, page.cursor_uuid()?, page.limit()?).await?;
    let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
    let items = rows
        .items
        .into_iter()
        .map(PolicyView::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor }))
}

/// One policy.
#[utoipa::path(tag = "policies", params(("id" = Uuid, Path)), responses(
    (status = 200, body = PolicyView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/policies/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    _user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let row = repo::policy::find(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(PolicyView::try_from(row)?))
}
