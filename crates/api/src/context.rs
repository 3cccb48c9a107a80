//! Per-request context: a request id on every response and log line, and HTTP metrics.
use crate::auth::{Principal, PrincipalKind};
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use danbao_persistence::models::audit_event::NewAuditEvent;
use std::future::{ready, Ready};
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable_request_id(s: &str) -> bool {
    // Taken from the caller (a bank's own correlation id) only if it is short and plain.
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| acceptable_request_id(s))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    // The matched pattern, not the raw path, keeps metric labels bounded.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %id, %method, path = %req.path());
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "answered"
        )
    });
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    Ok(res)
}

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(uuid::Uuid::now_v7().to_string()));
        ready(Ok(id))
    }
}

/// Builds audit events for one caller and request.
pub struct Audit<'a> {
    pub principal: &'a Principal,
    pub request_id: &'a RequestId,
}

impl Audit<'_> {
    pub fn event(
        &self,
        action: &str,
        entity_type: &str,
        entity_id: impl ToString,
        region_code: Option<&str>,
        detail: serde_json::Value,
    ) -> NewAuditEvent {
        NewAuditEvent {
            actor_kind: match self.principal.kind {
                PrincipalKind::User => "user".into(),
                PrincipalKind::Client => "client".into(),
            },
            actor_id: Some(self.principal.id),
            actor_name: self.principal.name.clone(),
            actor_role: self.principal.role.as_str().into(),
            action: action.into(),
            entity_type: entity_type.into(),
            entity_id: entity_id.to_string(),
            region_code: region_code.map(str::to_owned),
            request_id: Some(self.request_id.0.clone()),
            detail,
        }
    }
}

/// The per-request time limit: a request still running after `limit` is dropped, which rolls
/// back its transaction (its connection is discarded, not reused), and answered 503
/// `request_timeout` with `Retry-After`; the idempotency record is written in the same
/// transaction, so a retry with the same key runs afresh. Repayment file uploads are exempt:
/// a 200,000-row file takes longer than any sensible limit for a single request, it is bounded
/// by its size, and every query in it by the statement timeout.
///
/// The answer is an error, rendered by actix, because a response needs the `HttpRequest`,
/// which the stopped service owned (and which may not be cloned before routing).
pub async fn deadline(
    limit: Option<std::time::Duration>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let exempt = req.method() == actix_web::http::Method::POST
        && req.path().trim_end_matches('/') == "/v1/repayment-batches";
    let Some(limit) = limit.filter(|_| !exempt) else {
        return next.call(req).await;
    };
    let path = req.path().to_owned();
    let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(%path, request_id = id.as_deref().unwrap_or("-"), limit_ms = limit.as_millis(), "request stopped at the time limit");
            Err(crate::error::ApiError::TimedOut.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::acceptable_request_id;

    #[test]
    fn request_ids_from_callers_are_bounded() {
        assert!(acceptable_request_id("bank-42_abc"));
        assert!(!acceptable_request_id(""));
        assert!(!acceptable_request_id("has space"));
        assert!(!acceptable_request_id(&"a".repeat(65)));
    }
}
