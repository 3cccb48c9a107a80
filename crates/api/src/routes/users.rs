use crate::auth::{check_password_strength, hash_password, random_secret, AuthUser, Role};
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use danbao_domain::RegionCode;
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
use danbao_persistence::models::audit_event::NewAuditEvent;
use danbao_persistence::models::user::{NewUser, UserRow};
use danbao_persistence::repo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{2,63}$", example = "li.clerk")]
    pub username: String,
    #[schema(min_length = 1, max_length = 200, example = "李经办")]
    pub display_name: String,
    /// Optional; when absent a one-time password is generated and returned once.
    #[schema(min_length = 12, max_length = 256)]
    pub password: Option<String>,
    pub role: Role,
    /// Required for `clerk`.
    pub centre_id: Option<Uuid>,
    /// Required for `bank`.
    pub bank_id: Option<Uuid>,
    /// Required for `supervisor`: the region it oversees, with everything below.
    pub region_code: Option<RegionCode>,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub centre_id: Option<Uuid>,
    pub bank_id: Option<Uuid>,
    pub region_code: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// Only in the answer that created the user, and only when the password was generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<String>,
}

impl From<UserRow> for UserView {
    fn from(r: UserRow) -> Self {
        UserView {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            role: r.role,
            centre_id: r.centre_id,
            bank_id: r.bank_id,
            region_code: r.region_code,
            active: r.active,
            created_at: r.created_at,
            initial_password: None,
        }
    }
}

fn valid_username(u: &str) -> bool {
    let b = u.as_bytes();
    (3..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|x| {
            x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'_' | b'.' | b'-')
        })
}

/// Checks a new user's fields, naming every bad one.
pub fn validate_new_user(body: &NewUserBody) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let mut bad = |f: &str, m: &str| {
        errors.push(FieldError {
            field: f.into(),
            message: m.into(),
        })
    };
    if !valid_username(&body.username) {
        bad(
            "username",
            "3 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit",
        );
    }
    if let Err(e) = danbao_domain::bounds::check_text("display_name", &body.display_name, 200) {
        bad("display_name", e.message());
    }
    if let Some(p) = &body.password {
        if let Err(m) = check_password_strength(p) {
            bad("password", &m);
        }
    }
    let (c, b, r) = (
        body.centre_id.is_some(),
        body.bank_id.is_some(),
        body.region_code.is_some(),
    );
    match body.role {
        Role::Admin if c || b || r => {
            bad("role", "an admin has no centre_id, bank_id or region_code")
        }
        Role::Clerk if !c || b || r => bad("centre_id", "a clerk needs centre_id and nothing else"),
        Role::Bank if !b || c || r => bad("bank_id", "a bank user needs bank_id and nothing else"),
        Role::Supervisor if !r || c || b => bad(
            "region_code",
            "a supervisor needs region_code and nothing else",
        ),
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation_many(errors))
    }
}

/// Creates a user and its audit event in one transaction. Shared by the route, the
/// `create-user` command and the first-start admin.
pub async fn create_user(
    conn: &mut AsyncPgConnection,
    body: NewUserBody,
    audit: impl FnOnce(Uuid) -> NewAuditEvent,
) -> ApiResult<UserView> {
    validate_new_user(&body)?;
    let (password, generated) = match body.password.clone() {
        Some(p) => (p, false),
        None => (random_secret(12), true),
    };
    let hash = crate::auth::hashing(move || hash_password(&password).map(|h| (h, password)))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let id = Uuid::now_v7();
    let event = audit(id);
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::user::insert(
                conn,
                &NewUser {
                    id,
                    username: &body.username,
                    display_name: body.display_name.trim(),
                    password_hash: &hash.0,
                    role: body.role.as_str(),
                    centre_id: body.centre_id,
                    bank_id: body.bank_id,
                    region_code: body.region_code.as_ref().map(|r| r.as_str()),
                },
            )
            .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    let mut view = UserView::from(row);
    if generated {
        view.initial_password = Some(hash.1);
    }
    Ok(view)
}

/// Create a user with a role and scope (admin).
#[utoipa::path(tag = "users", request_body = NewUserBody, responses(
    (status = 201, body = UserView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/users")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewUserBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let body = body.0;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let detail = serde_json::json!({ "username": body.username, "role": body.role.as_str(),
        "centre_id": body.centre_id, "bank_id": body.bank_id, "region_code": body.region_code.as_ref().map(|r| r.as_str()) });
    let region = body.region_code.as_ref().map(|r| r.as_str().to_owned());
    let mut conn = state.conn().await?;
    let view = create_user(&mut conn, body, |id| {
        audit.event("user.created", "user", id, region.as_deref(), detail)
    })
    .await?;
    Ok(HttpResponse::Created().json(view))
}

/// All users (admin).
#[utoipa::path(tag = "users", params(PageParams), responses(
    (status = 200, body = Paged<UserView>),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/users")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let mut conn = state.conn().await?;
    let rows = repo::user::list(&mut conn, page.cursor_uuid()?, page.limit()?).await?;
    let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows.items.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

/// One user (admin).
#[utoipa::path(tag = "users", params(("id" = Uuid, Path)), responses(
    (status = 200, body = UserView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/users/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    let mut conn = state.conn().await?;
    let row = repo::user::find(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(UserView::from(row)))
}

async fn set_active(
    state: &AppState,
    user: &AuthUser,
    rid: &RequestId,
    id: Uuid,
    active: bool,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    if id == user.id && !active {
        return Err(ApiError::validation(
            "id",
            "an admin cannot deactivate itself",
        ));
    }
    let action = if active {
        "user.activated"
    } else {
        "user.deactivated"
    };
    let event = Audit {
        principal: user,
        request_id: rid,
    }
    .event(action, "user", id, None, serde_json::json!({}));
    let mut conn = state.conn().await?;
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::user::set_active(conn, id, active)
                .await?
                .ok_or(ApiError::NotFound)?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    // Takes effect at once here; other replicas notice within the cache's time to live.
    state.active.forget(id);
    Ok(HttpResponse::Ok().json(UserView::from(row)))
}

/// Deactivate a user: it can no longer log in (admin).
#[utoipa::path(tag = "users", params(("id" = Uuid, Path)), responses(
    (status = 200, body = UserView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/users/{id}/deactivation")]
pub async fn deactivate(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    set_active(&state, &user, &rid, *id, false).await
}

/// Reactivate a user (admin).
#[utoipa::path(tag = "users", params(("id" = Uuid, Path)), responses(
    (status = 200, body = UserView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/users/{id}/activation")]
pub async fn activate(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    set_active(&state, &user, &rid, *id, true).await
}
