//! One error type for every handler, answered as RFC 9457 problem+json with a stable `code`.
//! Internal causes are logged (inside the request's span, so with its id), never sent.
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use danbao_domain::DomainError;
use danbao_persistence::diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The offending field, as a JSON path (`borrower.national_id`) or parameter name.
    pub field: String,
    pub message: String,
}

/// RFC 9457 problem details, with danbao's stable `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case code that clients can branch on.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read at all (malformed JSON, bad query string).
    #[error("{detail}")]
    BadRequest {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 422: the request was read but its content is invalid.
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 422 with a business-rule code (`fund_capacity_exceeded` is 409, see `status`).
    #[error("{detail}")]
    Rule {
        status: StatusCode,
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("this role may not do that")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("service temporarily unavailable")]
    Unavailable,
    /// 503: the request ran past the request time limit or a query past the statement
    /// timeout; whatever it was writing was rolled back.
    #[error(
        "the request took too long and was stopped; nothing it was writing was kept; retry later"
    )]
    TimedOut,
    /// 429: too many attempts; retry after this many seconds.
    #[error("{detail}")]
    TooManyRequests { retry_after: u64, detail: String },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let fe = FieldError {
            field: field.into(),
            message: message.into(),
        };
        ApiError::Validation {
            detail: format!("{}: {}", fe.field, fe.message),
            errors: vec![fe],
        }
    }

    pub fn validation_many(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::Validation { detail, errors }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// A failure the caller cannot fix: 500, unless it is the database going away (503).
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        let e = e.into();
        let unavailable = e.chain().any(|c| {
            c.downcast_ref::<DieselError>().is_some_and(database_gone)
                || c.is::<danbao_persistence::diesel_async::pooled_connection::deadpool::PoolError>(
                )
        });
        if unavailable {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::Unavailable;
        }
        if e.chain().any(|c| {
            c.downcast_ref::<DieselError>()
                .is_some_and(statement_cancelled)
        }) {
            tracing::warn!(error = %e, "statement cancelled");
            return ApiError::TimedOut;
        }
        ApiError::Internal(e)
    }

    pub fn code(&self) -> &str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Validation { .. } => "validation_failed",
            ApiError::Rule { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable => "service_unavailable",
            ApiError::TimedOut => "request_timeout",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "Bad request",
            ApiError::Validation { .. } => "Validation failed",
            ApiError::Rule { .. } => "Refused by a business rule",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden => "Forbidden",
            ApiError::NotFound => "Not found",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::Unavailable => "Service unavailable",
            ApiError::TimedOut => "Request took too long",
            ApiError::TooManyRequests { .. } => "Too many requests",
            ApiError::Internal(_) => "Internal server error",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let errors = match self {
            ApiError::BadRequest { errors, .. }
            | ApiError::Validation { errors, .. }
            | ApiError::Rule { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        let detail = match self {
            ApiError::Internal(_) => {
                "an internal error occurred; it has been logged with the request id".to_owned()
            }
            ApiError::NotFound => "no such resource, or it is outside your scope".to_owned(),
            ApiError::Unavailable => {
                "the database is not reachable right now; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let code = self.code().to_owned();
        Problem {
            type_: format!("https://danbao.dev/problems/{code}"),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail,
            code,
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Rule { status, .. } => *status,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable | ApiError::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"danbao\""));
            }
            ApiError::Unavailable | ApiError::TimedOut => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            _ => {}
        }
        res.body(serde_json::to_string(&self.to_problem()).unwrap_or_default())
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { field, message } => ApiError::validation(field, message),
            DomainError::Rule {
                code,
                field,
                message,
            } => {
                let status = match code {
                    "fund_capacity_exceeded" | "unsettled_loan_exists" => StatusCode::CONFLICT,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                let errors = field
                    .map(|f| {
                        vec![FieldError {
                            field: f,
                            message: message.clone(),
                        }]
                    })
                    .unwrap_or_default();
                ApiError::Rule {
                    status,
                    code,
                    detail: message,
                    errors,
                }
            }
        }
    }
}

/// Several domain errors at once (e.g. every invalid field of a policy).
pub fn from_domain_errors(errs: Vec<DomainError>) -> ApiError {
    if errs.len() == 1 {
        return errs
            .into_iter()
            .next()
            .map(ApiError::from)
            .unwrap_or(ApiError::NotFound);
    }
    let errors = errs
        .into_iter()
        .map(|e| match e {
            DomainError::Invalid { field, message } => FieldError { field, message },
            DomainError::Rule {
                code,
                field,
                message,
            } => FieldError {
                field: field.unwrap_or_else(|| code.to_owned()),
                message,
            },
        })
        .collect();
    ApiError::validation_many(errors)
}

/// The column a constraint is about, from PostgreSQL's `<table>_<column>_fkey/_key/_check` names.
fn constraint_field(constraint: Option<&str>, table: Option<&str>) -> String {
    let Some(c) = constraint else {
        return "body".to_owned();
    };
    let mut s = c;
    if let Some(t) = table {
        s = s
            .strip_prefix(t)
            .and_then(|r| r.strip_prefix('_'))
            .unwrap_or(s);
    }
    for suffix in ["_fkey", "_key", "_check"] {
        if let Some(r) = s.strip_suffix(suffix) {
            return r.to_owned();
        }
    }
    s.to_owned()
}

/// The database went away under a request (stopped, restarting, failing over, connection
/// cut): the request may be retried as is, so it is a 503 with Retry-After, never a 500.
pub fn database_gone(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | DieselError::BrokenTransactionManager => true,
        // diesel-async reports a lost socket as UnableToSendCommand with tokio-postgres's text.
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
            let m = info.message();
            m.contains("connection closed")
                || m.contains("error communicating with the server")
                || m.contains("error connecting to server")
        }
        // 57P01-57P03: the server is shutting down, was restarted, or is not up yet.
        DieselError::DatabaseError(_, info) => {
            let m = info.message();
            m.starts_with("terminating connection due to administrator command")
                || m.starts_with("terminating connection because of crash")
                || m.starts_with("the database system is")
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => database_gone(commit_error),
        _ => false,
    }
}

/// 57014 `query_canceled`: the statement timeout (or an administrator) stopped the query.
fn statement_cancelled(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(_, info) => info.message().starts_with("canceling statement"),
        DieselError::RollbackErrorOnCommit { commit_error, .. } => {
            statement_cancelled(commit_error)
        }
        _ => false,
    }
}

impl From<DieselError> for ApiError {
    fn from(e: DieselError) -> Self {
        if database_gone(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::Unavailable;
        }
        if statement_cancelled(&e) {
            tracing::warn!(error = %e, "statement cancelled");
            return ApiError::TimedOut;
        }
        match &e {
            DieselError::NotFound => ApiError::NotFound,
            DieselError::DatabaseError(kind, info) => {
                let field = constraint_field(info.constraint_name(), info.table_name());
                match kind {
                    DatabaseErrorKind::UniqueViolation
                        if info.constraint_name() == Some("loans_one_unsettled_per_person") =>
                    {
                        ApiError::Conflict {
                            code: "unsettled_loan_exists",
                            detail: "the borrower already holds an unsettled guaranteed loan"
                                .to_owned(),
                        }
                    }
                    DatabaseErrorKind::UniqueViolation
                        if info.constraint_name() == Some("borrowers_national_id_hmac_key") =>
                    {
                        ApiError::Conflict {
                            code: "borrower_exists",
                            detail: "a borrower with this national id is already registered"
                                .to_owned(),
                        }
                    }
                    DatabaseErrorKind::UniqueViolation => ApiError::Conflict {
                        code: "already_exists",
                        detail: format!("a resource with this {field} already exists"),
                    },
                    DatabaseErrorKind::ForeignKeyViolation => {
                        ApiError::validation(field, "refers to something that does not exist")
                    }
                    DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => {
                        ApiError::validation(field, "violates a rule of the data model")
                    }
                    DatabaseErrorKind::SerializationFailure => ApiError::Conflict {
                        code: "concurrent_update",
                        detail: "another change touched the same data at the same time; retry"
                            .to_owned(),
                    },
                    _ if info.message().contains("append-only")
                        || info.message().contains("never deleted") =>
                    {
                        ApiError::Conflict {
                            code: "immutable",
                            detail: info.message().to_owned(),
                        }
                    }
                    // 22003: a sum of accepted values outgrew its NUMERIC column (each value
                    // is bounded on input; totals are checked where they can be named).
                    _ if info.message().starts_with("numeric field overflow")
                        || info.message().ends_with("out of range") =>
                    {
                        ApiError::validation(
                            field,
                            "the result would be larger than the books can hold",
                        )
                    }
                    _ => ApiError::Internal(e.into()),
                }
            }
            _ => ApiError::Internal(e.into()),
        }
    }
}

impl From<danbao_persistence::diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(e: danbao_persistence::diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        tracing::warn!(error = %e, "database pool unavailable");
        ApiError::Unavailable
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    // The JSON shape is a contract with integrators: pin it.
    #[test]
    fn problem_shape_is_stable() {
        let e = ApiError::validation("principal", "must be positive");
        let v = serde_json::to_value(e.to_problem()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "https://danbao.dev/problems/validation_failed",
                "title": "Validation failed",
                "status": 422,
                "detail": "principal: must be positive",
                "code": "validation_failed",
                "errors": [{"field": "principal", "message": "must be positive"}]
            })
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal(anyhow::anyhow!("password=hunter2 at db.internal"));
        let body = serde_json::to_string(&e.to_problem()).unwrap();
        assert!(!body.contains("hunter2"));
        assert!(!body.contains("db.internal"));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(ApiError::NotFound.code(), "not_found");
        assert_eq!(ApiError::Forbidden.code(), "forbidden");
        assert_eq!(ApiError::Unavailable.code(), "service_unavailable");
        assert_eq!(
            ApiError::conflict("duplicate_reference", "x").code(),
            "duplicate_reference"
        );
        assert_eq!(
            ApiError::PayloadTooLarge { limit: 1 }.status_code(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn a_database_that_went_away_is_503_not_500() {
        #[derive(Debug)]
        struct Info(&'static str);
        impl danbao_persistence::diesel::result::DatabaseErrorInformation for Info {
            fn message(&self) -> &str {
                self.0
            }
            fn details(&self) -> Option<&str> {
                None
            }
            fn hint(&self) -> Option<&str> {
                None
            }
            fn table_name(&self) -> Option<&str> {
                None
            }
            fn column_name(&self) -> Option<&str> {
                None
            }
            fn constraint_name(&self) -> Option<&str> {
                None
            }
            fn statement_position(&self) -> Option<i32> {
                None
            }
        }
        let db = |kind, m| DieselError::DatabaseError(kind, Box::new(Info(m)));
        for gone in [
            db(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            db(
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection",
            ),
            DieselError::BrokenTransactionManager,
        ] {
            let e = ApiError::from(gone);
            assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE, "{e:?}");
        }
        // Also when it arrives wrapped, through ApiError::internal.
        let wrapped = anyhow::Error::new(db(
            DatabaseErrorKind::UnableToSendCommand,
            "error communicating with the server: broken pipe",
        ))
        .context("loading the summary");
        assert_eq!(
            ApiError::internal(wrapped).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // A real bug stays a 500.
        let bug = db(
            DatabaseErrorKind::Unknown,
            "syntax error at or near \"SELEC\"",
        );
        assert_eq!(
            ApiError::from(bug).status_code(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        // A cancelled statement is the time limit: 503 request_timeout, directly or wrapped.
        let cancelled = || {
            db(
                DatabaseErrorKind::Unknown,
                "canceling statement due to statement timeout",
            )
        };
        assert_eq!(ApiError::from(cancelled()).code(), "request_timeout");
        let wrapped = anyhow::Error::new(cancelled()).context("loading the summary");
        assert_eq!(ApiError::internal(wrapped).code(), "request_timeout");
        // A sum that outgrows its column is the input's fault: 422, not 500.
        let overflow = db(DatabaseErrorKind::Unknown, "numeric field overflow");
        assert_eq!(
            ApiError::from(overflow).status_code(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn constraint_names_map_to_fields() {
        assert_eq!(
            constraint_field(Some("users_centre_id_fkey"), Some("users")),
            "centre_id"
        );
        assert_eq!(
            constraint_field(Some("banks_code_key"), Some("banks")),
            "code"
        );
        assert_eq!(constraint_field(None, None), "body");
    }
}
