//! The supervisor's dashboard: HTML pages served by `danbao serve` under `/` (login) and
//! `/dashboard`, Simplified Chinese by default (`lang=en` for English), charts drawn on the
//! server as SVG, and every table downloadable as .xlsx.
//!
//! Nothing here computes a measure: the figures come from `crate::stats::summary` through the
//! same parameter and scope resolution as `/v1/stats/*` (`routes::stats::params`), fund
//! positions from `routes::funds::position`, overdue loans from `routes::loans::by_overdue`
//! with the same masking. The session is the API's JWT in an HttpOnly, SameSite=Strict cookie.
mod charts;
mod pages;
mod table;

use crate::auth::{AuthUser, Role};
use crate::error::{ApiError, ApiResult};
use crate::routes::auth::{login as check_login, Credentials};
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

pub use table::{Cell, Table};

/// The session cookie's name.
pub const COOKIE: &str = "danbao_session";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn parse(s: Option<&str>) -> Lang {
        match s {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/dashboard", web::get().to(pages::dashboard))
        .route("/dashboard/xlsx/{table}", web::get().to(pages::download));
}

// ---- session ----------------------------------------------------------------------------------

/// A page request with a valid session of a supervisor or an administrator.
pub struct Session(pub AuthUser);

/// No (valid) session: 303 to the login page, and the stale cookie cleared.
#[derive(Debug)]
pub struct NeedLogin;

impl std::fmt::Display for NeedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("login required")
    }
}

impl ResponseError for NeedLogin {
    fn status_code(&self) -> StatusCode {
        StatusCode::SEE_OTHER
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::SET_COOKIE, clear_cookie()))
            .finish()
    }
}

/// The session cookie's value, if the request carries one.
fn session_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn may_use_dashboard(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::Admin)
}

async fn verify_session(state: &AppState, token: Option<String>) -> Result<AuthUser, NeedLogin> {
    let principal = state
        .jwt
        .verify(&token.ok_or(NeedLogin)?)
        .map_err(|_| NeedLogin)?;
    crate::auth::ensure_active(state, &principal)
        .await
        .map_err(|_| NeedLogin)?;
    if !may_use_dashboard(principal.role) {
        return Err(NeedLogin);
    }
    Ok(AuthUser(principal))
}

impl FromRequest for Session {
    type Error = NeedLogin;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, NeedLogin>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = session_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or(NeedLogin)?;
            Ok(Session(verify_session(&state, token).await?))
        })
    }
}

/// `Secure` only over HTTPS (as seen by the server or a proxy in front of it): a plain-HTTP
/// deployment on a closed network must still be able to log in.
fn secure(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

fn session_cookie(token: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// A fresh token for the session, so that it expires after the token's lifetime of
/// inactivity rather than in the middle of work.
fn renewed_cookie(state: &AppState, req: &HttpRequest, user: &AuthUser) -> ApiResult<String> {
    let token = state.jwt.issue(user).map_err(ApiError::internal)?;
    Ok(session_cookie(&token, state.jwt.ttl.as_secs(), secure(req)))
}

/// Headers every page carries: nothing cached, nothing loaded from elsewhere, no framing.
fn page(status: StatusCode, body: maud::Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body.into_string())
}

// ---- login and logout -------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct LangQuery {
    pub lang: Option<String>,
}

async fn login_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<LangQuery>,
) -> HttpResponse {
    let lang = Lang::parse(q.lang.as_deref());
    if verify_session(&state, session_token(&req)).await.is_ok() {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/dashboard?lang={}", lang.code())))
            .finish();
    }
    page(StatusCode::OK, pages::login_form(lang, None))
}

#[derive(Deserialize)]
struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    lang: Option<String>,
}

/// The login form: the same credential check, failed-login limits and audit as
/// `POST /v1/auth/token`; on success the token goes into the session cookie.
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    rid: crate::context::RequestId,
    body: web::Bytes,
) -> HttpResponse {
    let form: LoginForm = serde_urlencoded::from_bytes(&body).unwrap_or(LoginForm {
        username: None,
        password: None,
        lang: None,
    });
    let lang = Lang::parse(form.lang.as_deref());
    let (Some(username), Some(password)) = (form.username, form.password) else {
        let msg = lang.t("请输入用户名和密码。", "Enter a user name and a password.");
        return page(StatusCode::BAD_REQUEST, pages::login_form(lang, Some(msg)));
    };
    let address = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let creds = Credentials::User(username, password);
    match check_login(&state, &address, &rid.0, creds).await {
        Ok(p) if may_use_dashboard(p.role) => {
            let user = AuthUser(p);
            match renewed_cookie(&state, &req, &user) {
                Ok(cookie) => HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, format!("/dashboard?lang={}", lang.code())))
                    .insert_header((header::SET_COOKIE, cookie))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish(),
                Err(e) => e.error_response(),
            }
        }
        Ok(_) => {
            let msg = lang.t(
                "看板仅供监管人员和管理员使用。",
                "The dashboard is for supervisors and administrators.",
            );
            page(StatusCode::FORBIDDEN, pages::login_form(lang, Some(msg)))
        }
        Err(ApiError::Unauthorized(_)) => {
            let msg = lang.t("用户名或密码错误。", "Unknown user or wrong password.");
            page(StatusCode::UNAUTHORIZED, pages::login_form(lang, Some(msg)))
        }
        Err(ApiError::Validation { .. }) => {
            let msg = lang.t(
                "用户名或密码过长。",
                "The user name or the password is too long.",
            );
            page(StatusCode::BAD_REQUEST, pages::login_form(lang, Some(msg)))
        }
        Err(ApiError::TooManyRequests { retry_after, .. }) => {
            let msg = lang.t(
                "登录失败次数过多，请稍后再试。",
                "Too many failed logins; try again later.",
            );
            let mut res = page(
                StatusCode::TOO_MANY_REQUESTS,
                pages::login_form(lang, Some(msg)),
            );
            if let Ok(v) = header::HeaderValue::from_str(&retry_after.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Err(e) => e.error_response(),
    }
}

/// Clears the session cookie. (The token inside it stays valid until it expires, at most the
/// token's lifetime; the cookie was HttpOnly, so no script could have copied it.)
async fn logout(q: web::Query<LangQuery>) -> HttpResponse {
    let lang = Lang::parse(q.lang.as_deref());
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/?lang={}", lang.code())))
        .insert_header((header::SET_COOKIE, clear_cookie()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}
