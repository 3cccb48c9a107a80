use crate::auth::{
    check_password_strength, hash_password, verify_password, AuthUser, PrincipalKind, Role, Scope,
};
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;
use actix_web::{get, put, web, HttpResponse};
use danbao_persistence::diesel_async::AsyncConnection;
use danbao_persistence::repo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct MeView {
    pub id: Uuid,
    /// `user` for a person, `client` for a bank's system.
    pub kind: String,
    pub name: String,
    pub role: Role,
    pub centre_id: Option<Uuid>,
    pub bank_id: Option<Uuid>,
    pub region_code: Option<String>,
}

/// The caller's role and scope.
#[utoipa::path(tag = "auth", responses((status = 200, body = MeView), (status = 401, body = crate::error::Problem, content_type = "application/problem+json")))]
#[get("/me")]
pub async fn get_me(user: AuthUser) -> HttpResponse {
    let (centre_id, bank_id, region_code) = match &user.scope {
        Scope::All => (None, None, None),
        Scope::Centre(c) => (Some(*c), None, None),
        Scope::Bank(b) => (None, Some(*b), None),
        Scope::Region(r) => (None, None, Some(r.as_str().to_owned())),
    };
    HttpResponse::Ok().json(MeView {
        id: user.id,
        kind: match user.kind {
            PrincipalKind::User => "user".into(),
            PrincipalKind::Client => "client".into(),
        },
        name: user.name.clone(),
        role: user.role,
        centre_id,
        bank_id,
        region_code,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(max_length = 256)]
    pub current_password: String,
    /// At least 12 characters mixing two of: lower case, upper case, digits, symbols.
    #[schema(min_length = 12, max_length = 256)]
    pub new_password: String,
}

/// Change one's own password (people only; bank systems get a new client instead).
#[utoipa::path(tag = "auth", request_body = ChangePassword, responses(
    (status = 204, description = "changed"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[put("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<ChangePassword>,
) -> ApiResult<HttpResponse> {
    if user.kind != PrincipalKind::User {
        return Err(ApiError::Forbidden);
    }
    let body = body.0;
    if body.current_password.len() > crate::limits::MAX_SECRET_BYTES {
        return Err(ApiError::validation(
            "current_password",
            "is not the current password",
        ));
    }
    check_password_strength(&body.new_password)
        .map_err(|m| ApiError::validation("new_password", m))?;
    let mut conn = state.conn().await?;
    let row = repo::user::find(&mut conn, user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (cur, hash) = (body.current_password, row.password_hash.clone());
    if !crate::auth::hashing(move || verify_password(&cur, &hash))
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::validation(
            "current_password",
            "is not the current password",
        ));
    }
    let new_hash = crate::auth::hashing(move || hash_password(&body.new_password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let event = audit.event(
        "user.password_changed",
        "user",
        user.id,
        None,
        serde_json::json!({}),
    );
    let id = user.id;
    conn.transaction::<_, ApiError, _>(async |conn| {
        repo::user::set_password(conn, id, &new_hash).await?;
        repo::audit::record(conn, &event).await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
