use crate::auth::{dummy_hash, verify_password, Principal, PrincipalKind, Role, Scope};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;
use actix_web::{post, web, HttpRequest, HttpResponse};
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
        (status = 429, description = "too many failed logins for this account or address, or too many token requests from this address: retry after `Retry-After` seconds", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "neither or both credential pairs", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/token")]
pub async fn issue_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    rid: crate::context::RequestId,
    body: Json<TokenRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    // The peer, not a forwarded header: a client must not choose the address it is counted by.
    let address = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let creds = match (
        body.username,
        body.password,
        body.client_id,
        body.client_secret,
    ) {
        (Some(u), Some(p), None, None) => Credentials::User(u, p),
        (None, None, Some(c), Some(s)) => Credentials::Client(c, s),
        _ => {
            return Err(ApiError::validation(
                "body",
                "send either username and password, or client_id and client_secret",
            ))
        }
    };
    let principal = login(&state, &address, &rid.0, creds).await?;
    let token = state.jwt.issue(&principal).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: state.jwt.ttl.as_secs(),
        }))
}

/// A person's or a bank system's credentials.
pub(crate) enum Credentials {
    User(String, String),
    Client(String, String),
}

/// Checks credentials with the failed-login limits and audit of `POST /v1/auth/token`; the
/// dashboard's login form goes through here too, so both count against the same limits.
pub(crate) async fn login(
    state: &AppState,
    address: &str,
    request_id: &str,
    creds: Credentials,
) -> ApiResult<Principal> {
    state
        .limits
        .token
        .take(address)
        .map_err(|retry_after| ApiError::TooManyRequests {
            retry_after,
            detail: "too many token requests from this address".into(),
        })?;
    // Too long to match any account: refused before counting or hashing.
    match &creds {
        Credentials::User(u, p) => {
            crate::limits::login_credentials("username", u, "password", p)?;
        }
        Credentials::Client(c, s) => {
            crate::limits::login_credentials("client_id", c, "client_secret", s)?;
        }
    }
    let (account, entity) = match &creds {
        Credentials::User(u, _) => (format!("user:{}", u.to_lowercase()), "user"),
        Credentials::Client(c, _) => (format!("client:{c}"), "bank_client"),
    };
    let account: String = account.chars().take(300).collect();
    let attempt = begin_attempt(state, &account, address).await?;
    let outcome = match creds {
        Credentials::User(u, p) => user_login(state, u, p).await,
        Credentials::Client(c, s) => client_login(state, c, s).await,
    };
    let principal = match outcome {
        Err(ApiError::Unauthorized(why)) => {
            audit_failure(state, &account, entity, address, request_id).await?;
            return Err(ApiError::Unauthorized(why));
        }
        other => other?,
    };
    let mut conn = state.conn().await?;
    repo::login::mark_succeeded(&mut conn, attempt).await?;
    Ok(principal)
}

/// 429 while the account or the address has had too many failed logins in the window;
/// otherwise the attempt is counted (as failed until marked) and its id returned. The check and
/// the count are one step per account, so concurrent guesses cannot slip past the limit.
async fn begin_attempt(state: &AppState, account: &str, address: &str) -> ApiResult<i64> {
    use danbao_persistence::diesel_async::AsyncConnection;
    let limits = state.login.clone();
    let window = chrono::Duration::from_std(limits.window).map_err(ApiError::internal)?;
    let mut conn = state.conn().await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        // Account, then address: every login takes them in this order.
        repo::login::lock_key(conn, account).await?;
        repo::login::lock_key(conn, &format!("address:{address}")).await?;
        let now = chrono::Utc::now();
        let since = now - window;
        let by_account = repo::login::nth_recent_failure(
            conn,
            account,
            false,
            since,
            i64::from(limits.per_account.max(1)),
        )
        .await?;
        let by_address = repo::login::nth_recent_failure(
            conn,
            address,
            true,
            since,
            i64::from(limits.per_address.max(1)),
        )
        .await?;
        if let Some(oldest) = by_account.into_iter().chain(by_address).max() {
            let wait = (oldest + window - now).num_seconds().max(0) + 1;
            return Err(ApiError::TooManyRequests {
                retry_after: u64::try_from(wait).unwrap_or(1),
                detail: format!("too many failed logins; try again in {wait} seconds"),
            });
        }
        Ok(repo::login::begin_attempt(conn, account, address).await?)
    })
    .await
}

/// Audits a failed login (the attempt already counts as failed).
async fn audit_failure(
    state: &AppState,
    account: &str,
    entity: &str,
    address: &str,
    request_id: &str,
) -> ApiResult<()> {
    let event = danbao_persistence::models::audit_event::NewAuditEvent {
        actor_kind: "system".into(),
        actor_id: None,
        actor_name: account.to_owned(),
        actor_role: "anonymous".into(),
        action: "auth.login_failed".into(),
        entity_type: entity.into(),
        entity_id: account.to_owned(),
        region_code: None,
        request_id: Some(request_id.to_owned()),
        detail: serde_json::json!({ "address": address }),
    };
    let conn = state.conn().await?;
    repo::audit::record(&conn, &event).await?;
    Ok(())
}

async fn verify_blocking(secret: String, hash: String) -> ApiResult<bool> {
    // Argon2 is deliberately slow: keep it off the async worker.
    crate::auth::hashing(move || verify_password(&secret, &hash))
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
