//! Credit communities (信用社区): certified by a centre; while certified, their residents may
//! borrow without a counter-guarantee. A certification is revoked once and never edited.
use crate::auth::{AuthUser, Role, Scope};
use crate::authz::Placement;
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use danbao_domain::RegionCode;
use danbao_persistence::diesel_async::AsyncConnection;
use danbao_persistence::models::credit_community::CreditCommunityRow;
use danbao_persistence::repo;
use danbao_persistence::repo::credit_community::CommunityFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(revoke);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCreditCommunityBody {
    #[schema(min_length = 1, max_length = 200, example = "东湖区百花洲社区")]
    pub name: String,
    /// Where the community is: the centre's region or a region below it.
    pub region_code: RegionCode,
    /// The day it was certified: not before 1990-01-01, not after today.
    pub certified_on: NaiveDate,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationBody {
    /// The day the certification ends: from this day on its residents get no waiver. Not
    /// before `certified_on`, not after today.
    pub revoked_on: NaiveDate,
    #[schema(min_length = 1, max_length = 500, example = "社区信用环境评估未通过")]
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreditCommunityView {
    pub id: Uuid,
    pub centre_id: Uuid,
    pub region_code: String,
    pub name: String,
    pub certified_on: NaiveDate,
    pub revoked_on: Option<NaiveDate>,
    pub revocation_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Certified today (in the business time zone): a waiver approved today would be allowed.
    pub active_on_today: bool,
}

impl CreditCommunityView {
    pub fn new(r: CreditCommunityRow, today: NaiveDate) -> Self {
        CreditCommunityView {
            active_on_today: r.certified_on_date(today),
            id: r.id,
            centre_id: r.centre_id,
            region_code: r.region_code,
            name: r.name,
            certified_on: r.certified_on,
            revoked_on: r.revoked_on,
            revocation_reason: r.revocation_reason,
            created_at: r.created_at,
        }
    }
}

pub fn placement(c: &CreditCommunityRow) -> Placement<'_> {
    Placement {
        centre_id: Some(c.centre_id),
        bank_id: None,
        region_code: Some(&c.region_code),
    }
}

/// The centre of a clerk; everyone else is refused.
fn clerk_centre(user: &AuthUser) -> ApiResult<Uuid> {
    user.require(&[Role::Clerk])?;
    match user.scope {
        Scope::Centre(c) => Ok(c),
        _ => Err(ApiError::Forbidden),
    }
}

/// Certify a credit community of the clerk's centre (clerk).
#[utoipa::path(tag = "credit-communities", request_body = NewCreditCommunityBody, responses(
    (status = 201, body = CreditCommunityView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/credit-communities")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewCreditCommunityBody>,
) -> ApiResult<HttpResponse> {
    let centre_id = clerk_centre(&user)?;
    let body = body.0;
    let today = state.today();
    let mut errors = Vec::new();
    if let Err(ApiError::Validation { errors: e, .. }) =
        super::regions::check_name("name", &body.name, 200)
    {
        errors.extend(e);
    }
    if let Err(e) =
        danbao_domain::bounds::check_business_date("certified_on", body.certified_on, today)
    {
        errors.push(FieldError {
            field: "certified_on".into(),
            message: e.message().to_owned(),
        });
    }
    let mut conn = state.conn().await?;
    let centre = repo::centre::find(&mut conn, centre_id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the clerk's centre does not exist")))?;
    if repo::region::find(&mut conn, body.region_code.as_str())
        .await?
        .is_none()
    {
        errors.push(FieldError {
            field: "region_code".into(),
            message: format!("region {} does not exist", body.region_code),
        });
    } else if !RegionCode::parse(&centre.region_code)
        .is_ok_and(|own| own.contains(&body.region_code))
    {
        errors.push(FieldError {
            field: "region_code".into(),
            message: format!(
                "must be the centre's region {} or a region below it",
                centre.region_code
            ),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation_many(errors));
    }
    let id = Uuid::now_v7();
    let name = body.name.trim();
    let event = Audit {
        principal: &user,
        request_id: &rid,
    }
    .event(
        "credit_community.certified",
        "credit_community",
        id,
        Some(body.region_code.as_str()),
        serde_json::json!({
            "centre_id": centre_id,
            "name": name,
            "certified_on": body.certified_on,
        }),
    );
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::credit_community::insert(
                conn,
                &CreditCommunityRow {
                    id,
                    centre_id,
                    region_code: body.region_code.as_str().to_owned(),
                    name: name.to_owned(),
                    certified_on: body.certified_on,
                    revoked_on: None,
                    revocation_reason: None,
                    // Not inserted: the database sets it.
                    created_at: Utc::now(),
                },
            )
            .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().json(CreditCommunityView::new(row, today)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommunityQuery {
    /// Only communities certified on this date (certified on or before it, not revoked by
    /// then): those whose residents could get a waiver approved that day.
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub active_on: Option<NaiveDate>,
}

/// Credit communities the caller may see: its centre's (clerk), its region's (supervisor), all
/// (admin).
#[utoipa::path(tag = "credit-communities", params(PageParams, CommunityQuery), responses(
    (status = 200, body = Paged<CreditCommunityView>),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/credit-communities")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
    query: Query<CommunityQuery>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Clerk, Role::Supervisor])?;
    let mut filter = match &user.scope {
        Scope::Centre(c) => CommunityFilter {
            centre_id: Some(*c),
            ..Default::default()
        },
        Scope::Region(r) => CommunityFilter {
            region_prefix: Some(r.subtree_prefix().to_owned()),
            ..Default::default()
        },
        Scope::All => CommunityFilter::default(),
        Scope::Bank(_) => return Err(ApiError::Forbidden),
    };
    filter.active_on = query.active_on;
    let (after, limit) = (page.cursor_uuid()?, page.limit()?);
    let today = state.today();
    let mut conn = state.conn().await?;
    let rows = repo::credit_community::list(&mut conn, &filter, after, limit).await?;
    let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows
            .items
            .into_iter()
            .map(|r| CreditCommunityView::new(r, today))
            .collect(),
        next_cursor,
    }))
}

/// One credit community, if within the caller's scope.
#[utoipa::path(tag = "credit-communities", params(("id" = Uuid, Path)), responses(
    (status = 200, body = CreditCommunityView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/credit-communities/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Clerk, Role::Supervisor])?;
    let mut conn = state.conn().await?;
    let row = repo::credit_community::find(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    user.ensure_visible(&placement(&row))?;
    Ok(HttpResponse::Ok().json(CreditCommunityView::new(row, state.today())))
}

/// Revoke a community's certification, once (clerk of its centre). From `revoked_on` on, its
/// residents need a counter-guarantee again.
#[utoipa::path(tag = "credit-communities", params(("id" = Uuid, Path)), request_body = RevocationBody, responses(
    (status = 200, body = CreditCommunityView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, description = "already revoked (`already_revoked`)", body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/credit-communities/{id}/revocation")]
pub async fn revoke(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    body: Json<RevocationBody>,
) -> ApiResult<HttpResponse> {
    clerk_centre(&user)?;
    let (id, body) = (*id, body.0);
    let today = state.today();
    let reason = body.reason.trim();
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let mut conn = state.conn().await?;
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            // Locked: two revocations at once cannot both pass the checks below.
            let current = repo::credit_community::find_for_update(conn, id)
                .await?
                .ok_or(ApiError::NotFound)?;
            user.ensure_visible(&placement(&current))?;
            if let Some(on) = current.revoked_on {
                return Err(ApiError::conflict(
                    "already_revoked",
                    format!("this credit community was already revoked on {on}"),
                ));
            }
            super::regions::check_name("reason", &body.reason, 500)?;
            if body.revoked_on < current.certified_on {
                return Err(ApiError::validation(
                    "revoked_on",
                    format!("must not be before certified_on ({})", current.certified_on),
                ));
            }
            if body.revoked_on > today {
                return Err(ApiError::validation(
                    "revoked_on",
                    format!("must not be after today ({today})"),
                ));
            }
            let row = repo::credit_community::revoke(conn, id, body.revoked_on, reason)
                .await?
                .ok_or_else(|| {
                    ApiError::conflict(
                        "already_revoked",
                        "this credit community is already revoked",
                    )
                })?;
            repo::audit::record(
                conn,
                &audit.event(
                    "credit_community.revoked",
                    "credit_community",
                    id,
                    Some(&row.region_code),
                    serde_json::json!({
                        "centre_id": row.centre_id,
                        "revoked_on": body.revoked_on,
                        "reason": reason,
                    }),
                ),
            )
            .await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(CreditCommunityView::new(row, today)))
}
