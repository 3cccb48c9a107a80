//! Request extractors that answer bad input as problem+json naming the field, instead of
//! actix's plain-text defaults.
use crate::error::{ApiError, FieldError};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// Largest JSON body accepted by default (bytes). Batch uploads have their own limit.
pub const JSON_LIMIT: usize = 256 * 1024;
/// Deepest JSON nesting accepted; serde_json itself stops at 128.
pub const JSON_MAX_DEPTH: usize = 32;

/// A JSON body, deserialised with the path of any bad field reported.
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn json_depth_exceeds(bytes: &[u8], max: usize) -> bool {
    // Counts brackets outside strings; cheap guard against deeply nested bodies.
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if json_depth_exceeds(bytes, JSON_MAX_DEPTH) {
        return Err(ApiError::BadRequest {
            code: "malformed_json",
            detail: format!("JSON nested deeper than {JSON_MAX_DEPTH} levels"),
            errors: vec![],
        });
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                let field = if path == "." { "body".to_owned() } else { path };
                Err(ApiError::validation_many(vec![FieldError {
                    field,
                    message: clean_serde_message(&inner),
                }]))
            } else {
                Err(ApiError::BadRequest {
                    code: "malformed_json",
                    detail: format!(
                        "the body is not valid JSON: {}",
                        clean_serde_message(&inner)
                    ),
                    errors: vec![],
                })
            }
        }
    }
}

fn clean_serde_message(e: &serde_json::Error) -> String {
    // Drop serde's " at line 1 column 7" suffix; the field path says where.
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Read a whole body up to `limit` bytes; more is a 413, not a truncated parse.
pub async fn read_body(payload: &mut Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest {
            code: "bad_body",
            detail: "the request body could not be read".to_owned(),
            errors: vec![],
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn is_json(req: &HttpRequest) -> bool {
    match req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        // A missing content type is read as JSON: curl users forget it, and the body decides.
        None => true,
        Some(ct) => {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        }
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as application/json".to_owned(),
                ));
            }
            if declared.is_some_and(|n| n > JSON_LIMIT) {
                return Err(ApiError::PayloadTooLarge { limit: JSON_LIMIT });
            }
            let body = read_body(&mut payload, JSON_LIMIT).await?;
            parse_json(&body).map(Json)
        })
    }
}

/// Query parameters, with bad ones answered as 400 problem+json naming the parameter.
pub struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(req.query_string()));
        std::future::ready(match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => Ok(Query(v)),
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." {
                    "query".to_owned()
                } else {
                    path
                };
                Err(ApiError::BadRequest {
                    code: "invalid_query",
                    detail: format!("query parameter {field}: {}", e.inner()),
                    errors: vec![FieldError {
                        field,
                        message: e.inner().to_string(),
                    }],
                })
            }
        })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

fn invalid_cursor() -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        detail: "cursor is not one this service handed out".to_owned(),
        errors: vec![FieldError {
            field: "cursor".into(),
            message: "invalid cursor".into(),
        }],
    }
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

impl PageParams {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::BadRequest {
                code: "invalid_query",
                detail: format!("limit must be between 1 and {MAX_LIMIT}"),
                errors: vec![FieldError {
                    field: "limit".into(),
                    message: format!("must be between 1 and {MAX_LIMIT}"),
                }],
            }),
        }
    }

    pub fn cursor_uuid(&self) -> Result<Option<uuid::Uuid>, ApiError> {
        self.cursor()
            .map(|c| uuid::Uuid::parse_str(c).map_err(|_| invalid_cursor()))
            .transpose()
    }

    /// The cursor of lists ordered by a numeric id (ledger entries, audit events).
    pub fn cursor_i64(&self) -> Result<Option<i64>, ApiError> {
        self.cursor()
            .map(|c| c.parse::<i64>().map_err(|_| invalid_cursor()))
            .transpose()
    }

    /// The cursor of lists ordered by region code: six digits.
    pub fn cursor_region(&self) -> Result<Option<&str>, ApiError> {
        match self.cursor() {
            Some(c) if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()) => {
                Err(invalid_cursor())
            }
            c => Ok(c),
        }
    }

    /// An empty `cursor=` is the same as none (the first page).
    fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// `?as_of=` of reads that depend on the date.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOf {
    /// The date of the position (default: today in the business time zone); 1990-01-01 to
    /// 2200-12-31.
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub as_of: Option<chrono::NaiveDate>,
}

/// A page of items: `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        amount: u32,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse_json::<Outer>(br#"{"inner": {"amount": "x"}}"#).unwrap_err();
        match err {
            ApiError::Validation { errors, .. } => assert_eq!(errors[0].field, "inner.amount"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn syntax_error_is_bad_request() {
        let err = parse_json::<Outer>(b"{\"inner\": ").unwrap_err();
        assert_eq!(err.code(), "malformed_json");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(json_depth_exceeds(deep.as_bytes(), JSON_MAX_DEPTH));
        assert!(!json_depth_exceeds(
            br#"{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#,
            JSON_MAX_DEPTH
        ));
    }
}
