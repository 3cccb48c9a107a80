use crate::auth::{dummy_hash, verify_password, Principal, PrincipalKind, Role, Scope};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;
use actix_web::{post, web, HttpResponse};
use danbao_domain::RegionCode;
use danbao_persistence::repo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Either a person's `username` and `password`, or a bank system's `client_id` and `client_secret`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(max_length = 64)]
    pub username: Option<String>,
    #[schema(max_length = 256)]
    pub password: Option<String>,
    #[schema(max_length = 64)]
    pub client_id: Option<String>,
    #[schema(max_length = 256)]
    pub client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

fn bad_credentials() -> ApiError {
    ApiError::Unauthorized("unknown user or wrong password".into())
}

/// Exchange credentials for a short-lived JWT.
#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "wrong credentials", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "neither or both credential pairs", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/token")]
pub async fn issue_token(
    state: web::Data<AppState>,
    body: Json<TokenRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let principal = match (
        body.username,
        body.password,
        body.client_id,
        body.client_secret,
    ) {
        (Some(u), Some(p), None, None) => user_login(&state, u, p).await?,
        (None, None, Some(c), Some(s)) => client_login(&state, c, s).await?,
        _ => {
            return Err(ApiError::validation(
                "body",
                "send either username and password, or client_id and client_secret",
            ))
        }
    };
    let token = state.jwt.issue(&principal).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: state.jwt.ttl.as_secs(),
        }))
}

async fn verify_blocking(secret: String, hash: String) -> ApiResult<bool> {
    // Argon2 is deliberately slow: keep it off the async worker.
    web::block(move || verify_password(&secret, &hash))
        .await
        .map_err(ApiError::internal)
}

async fn user_login(state: &AppState, username: String, password: String) -> ApiResult<Principal> {
    if username.len() > 64 || password.len() > 256 {
        return Err(bad_credentials());
    }
    let row = {
        let mut conn = state.conn().await?;
        repo::user::find_by_username(&mut conn, &username.to_lowercase()).await?
    };
    let Some(user) = row else {
        verify_blocking(password, dummy_hash().to_owned()).await?;
        return Err(bad_credentials());
    };
    if !verify_blocking(password, user.password_hash.clone()).await? || !user.active {
        return Err(bad_credentials());
    }
    let role = Role::parse(&user.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("bad role in db")))?;
    let scope = match role {
        Role::Admin => Scope::All,
        Role::Clerk => Scope::Centre(
            user.centre_id
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("clerk without centre")))?,
        ),
        Role::Bank => Scope::Bank(
            user.bank_id
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("bank user without bank")))?,
        ),
        Role::Supervisor => Scope::Region(
            user.region_code
                .as_deref()
                .and_then(|c| RegionCode::parse(c).ok())
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("supervisor without region")))?,
        ),
    };
    Ok(Principal {
        kind: PrincipalKind::User,
        id: user.id,
        name: user.username,
        role,
        scope,
    })
}

async fn client_login(state: &AppState, client_id: String, secret: String) -> ApiResult<Principal> {
    if client_id.len() > 64 || secret.len() > 256 {
        return Err(bad_credentials());
    }
    let row = {
        let mut conn = state.conn().await?;
        repo::bank_client::find_by_client_id(&mut conn, &client_id).await?
    };
    let Some(client) = row else {
        verify_blocking(secret, dummy_hash().to_owned()).await?;
        return Err(bad_credentials());
    };
    if !verify_blocking(secret, client.secret_hash.clone()).await? || !client.active {
        return Err(bad_credentials());
    }
    Ok(Principal {
        kind: PrincipalKind::Client,
        id: client.id,
        name: client.client_id,
        role: Role::Bank,
        scope: Scope::Bank(client.bank_id),
    })
}
