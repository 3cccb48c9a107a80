//! `Idempotency-Key` for POSTs that create or move money. The key is scoped to the caller and
//! the route, and fingerprints the request (path and canonical body). Inside the write's own
//! transaction: the same key and request replays the first answer; the same key with another
//! request is 422 `idempotency_key_reused`; a key whose first request is still running is 409
//! `idempotency_key_in_flight`. The answer is stored in the same transaction as the change, so
//! a failed (rolled back) request leaves nothing behind and its key can be used again.
use crate::error::{ApiError, FieldError};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use danbao_persistence::diesel_async::AsyncPgConnection;
use danbao_persistence::repo;
use danbao_persistence::repo::idempotency::IdempotencyRow;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::future::{ready, Ready};
use uuid::Uuid;

pub const HEADER: &str = "idempotency-key";
pub const MAX_KEY_LEN: usize = 200;

/// The request's `Idempotency-Key`, if it sent one, with the route and path it came on, so
/// that handlers need not repeat them.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: Option<String>,
    /// Method and route pattern, e.g. `POST /v1/funds/{id}/contributions`.
    pub route: String,
    pub path: String,
}

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let bad = |m: &str| ApiError::BadRequest {
            code: "invalid_idempotency_key",
            detail: format!("Idempotency-Key {m}"),
            errors: vec![FieldError {
                field: "Idempotency-Key".into(),
                message: m.into(),
            }],
        };
        let key = match req.headers().get(HEADER) {
            None => None,
            Some(v) => match v.to_str() {
                Ok(s)
                    if !s.trim().is_empty()
                        && s.len() <= MAX_KEY_LEN
                        && s.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
                {
                    Some(s.to_owned())
                }
                _ => return ready(Err(bad("must be 1 to 200 visible ASCII characters"))),
            },
        };
        let pattern = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
        ready(Ok(IdempotencyKey {
            key,
            route: format!("{} {pattern}", req.method()),
            path: req.path().to_owned(),
        }))
    }
}

/// One request's idempotency context.
pub struct Idem {
    principal_id: Uuid,
    route: String,
    key: Option<String>,
    fingerprint: [u8; 32],
}

/// What `check` found.
pub enum Seen {
    /// No key, or a new one: do the work, then `remember`.
    New,
    /// The same request was answered before: send this again.
    Replay(Replay),
}

/// A stored answer. (Plain data: it crosses the transaction, which must be `Send`.)
pub struct Replay {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl Replay {
    pub fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header(("Idempotent-Replayed", "true"))
            .json(self.body)
    }
}

impl Idem {
    /// The fingerprint is the actual path and the canonical body.
    pub fn new(principal_id: Uuid, key: IdempotencyKey, body: &impl Serialize) -> Self {
        // serde_json's map is ordered by key, so equal bodies serialise equally.
        let canonical =
            serde_json::to_vec(&serde_json::to_value(body).unwrap_or_default()).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(key.path.as_bytes());
        h.update([0]);
        h.update(&canonical);
        Idem {
            principal_id,
            route: key.route,
            key: key.key,
            fingerprint: h.finalize().into(),
        }
    }

    /// For a body fingerprinted while it streams in (a repayment file): the hasher, already fed
    /// with the path, takes the raw body bytes (and anything else that changes the request, such
    /// as the query string); `set_fingerprint` gives the result before `remember` or `judge`.
    pub fn streaming(principal_id: Uuid, key: IdempotencyKey) -> (Self, Sha256) {
        let mut h = Sha256::new();
        h.update(key.path.as_bytes());
        h.update([0]);
        let idem = Idem {
            principal_id,
            route: key.route,
            key: key.key,
            fingerprint: [0; 32],
        };
        (idem, h)
    }

    pub fn set_fingerprint(&mut self, hasher: Sha256) {
        self.fingerprint = hasher.finalize().into();
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Inside the write's transaction, before the fingerprint is known: takes the key's lock
    /// (409 if another request holds it) and returns the stored answer with its fingerprint,
    /// if this key was used before. Then `judge` it once the fingerprint is known.
    pub async fn lookup(
        &self,
        conn: &mut AsyncPgConnection,
    ) -> Result<Option<(Vec<u8>, Replay)>, ApiError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        if !repo::idempotency::try_lock(conn, self.lock_id(key)).await? {
            return Err(in_flight());
        }
        Ok(
            repo::idempotency::find(conn, self.principal_id, &self.route, key)
                .await?
                .map(|row| {
                    let status = u16::try_from(row.response_status)
                        .ok()
                        .and_then(|s| StatusCode::from_u16(s).ok())
                        .unwrap_or(StatusCode::OK);
                    (
                        row.fingerprint,
                        Replay {
                            status,
                            body: row.response_body,
                        },
                    )
                }),
        )
    }

    /// The stored answer if the request is the same, else 422 `idempotency_key_reused`.
    pub fn judge(&self, fingerprint: &[u8], replay: Replay) -> Result<Replay, ApiError> {
        if fingerprint == self.fingerprint {
            Ok(replay)
        } else {
            Err(reused())
        }
    }

    fn lock_id(&self, key: &str) -> i64 {
        let mut h = Sha256::new();
        for part in [
            self.principal_id.as_bytes().as_slice(),
            self.route.as_bytes(),
            key.as_bytes(),
        ] {
            h.update(part);
            h.update([0]);
        }
        let d = h.finalize();
        i64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// Call first inside the write's transaction.
    pub async fn check(&self, conn: &mut AsyncPgConnection) -> Result<Seen, ApiError> {
        let Some(key) = &self.key else {
            return Ok(Seen::New);
        };
        if !repo::idempotency::try_lock(conn, self.lock_id(key)).await? {
            return Err(in_flight());
        }
        match repo::idempotency::find(conn, self.principal_id, &self.route, key).await? {
            None => Ok(Seen::New),
            Some(row) if row.fingerprint == self.fingerprint => {
                let status = u16::try_from(row.response_status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::OK);
                Ok(Seen::Replay(Replay {
                    status,
                    body: row.response_body,
                }))
            }
            Some(_) => Err(reused()),
        }
    }

    /// Call last inside the write's transaction, with the answer about to be sent.
    pub async fn remember(
        &self,
        conn: &mut AsyncPgConnection,
        status: StatusCode,
        body: &impl Serialize,
    ) -> Result<(), ApiError> {
        let Some(key) = &self.key else { return Ok(()) };
        let row = IdempotencyRow {
            principal_id: self.principal_id,
            route: self.route.clone(),
            key: key.clone(),
            fingerprint: self.fingerprint.to_vec(),
            response_status: i16::try_from(status.as_u16()).unwrap_or(200),
            response_body: serde_json::to_value(body).map_err(ApiError::internal)?,
        };
        repo::idempotency::insert(conn, &row).await?;
        Ok(())
    }
}

fn in_flight() -> ApiError {
    ApiError::conflict(
        "idempotency_key_in_flight",
        "a request with this Idempotency-Key is still being processed; retry shortly",
    )
}

fn reused() -> ApiError {
    ApiError::Rule {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "idempotency_key_reused",
        detail: "this Idempotency-Key was used with a different request".into(),
        errors: vec![FieldError {
            field: "Idempotency-Key".into(),
            message: "used with a different request".into(),
        }],
    }
}
