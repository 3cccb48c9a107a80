//! Authentication: password hashing, JWT issue/verify, and the `AuthUser` extractor.
//! Authorisation (who may see what) lives in `authz.rs`.
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use danbao_domain::RegionCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Clerk,
    Bank,
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clerk => "clerk",
            Role::Bank => "bank",
            Role::Supervisor => "supervisor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "clerk" => Some(Role::Clerk),
            "bank" => Some(Role::Bank),
            "supervisor" => Some(Role::Supervisor),
            _ => None,
        }
    }
}

/// What part of the programme a caller may see. Follows from the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Centre(Uuid),
    Bank(Uuid),
    Region(RegionCode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Client,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

/// JWT claims. The scope is in the token so that reads need no lookup; the token is short-lived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub kind: PrincipalKind,
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centre_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_code: Option<String>,
}

impl Claims {
    fn into_principal(self) -> Result<Principal, ApiError> {
        let bad = || ApiError::Unauthorized("token claims are inconsistent".into());
        let id = Uuid::parse_str(&self.sub).map_err(|_| bad())?;
        let scope = match (self.role, self.centre_id, self.bank_id, self.region_code) {
            (Role::Admin, None, None, None) => Scope::All,
            (Role::Clerk, Some(c), None, None) => Scope::Centre(c),
            (Role::Bank, None, Some(b), None) => Scope::Bank(b),
            (Role::Supervisor, None, None, Some(r)) => {
                Scope::Region(RegionCode::parse(&r).map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        };
        Ok(Principal {
            kind: self.kind,
            id,
            name: self.name,
            role: self.role,
            scope,
        })
    }
}

/// Signing and verification keys. HS256 from a shared secret by default; EdDSA, ES256 or
/// RS256 from PEM files when a public-key algorithm is configured.
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    /// Retired keys that still verify (never sign) the tokens they signed, chosen by `kid`:
    /// after a rotation, tokens already out keep working until they expire.
    previous: Vec<VerifyKey>,
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
}

#[derive(Clone)]
struct VerifyKey {
    kid: String,
    algorithm: Algorithm,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

pub const ISSUER: &str = "danbao";
pub const AUDIENCE: &str = "danbao-api";
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

fn kid_of(material: &[u8]) -> String {
    // A key id that says which key signed, without revealing anything about it.
    hex::encode(&sha2::Sha256::digest(material)[..8])
}

impl JwtKeys {
    pub fn hs256(secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= 32,
            "DANBAO_JWT_SECRET must be at least 32 bytes"
        );
        Ok(JwtKeys {
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            kid: kid_of(secret),
            previous: Vec::new(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            ttl: TOKEN_TTL,
        })
    }

    /// A public-key pair; `algorithm` is one of `EdDSA`, `ES256`, `RS256`.
    pub fn from_pem(
        algorithm: &str,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> anyhow::Result<Self> {
        let (alg, enc) = match algorithm {
            "EdDSA" => (Algorithm::EdDSA, EncodingKey::from_ed_pem(private_pem)?),
            "ES256" => (Algorithm::ES256, EncodingKey::from_ec_pem(private_pem)?),
            "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_pem(private_pem)?),
            other => {
                anyhow::bail!("unsupported JWT algorithm {other}: use HS256, EdDSA, ES256 or RS256")
            }
        };
        let public = VerifyKey::from_pem(algorithm, public_pem)?;
        Ok(JwtKeys {
            algorithm: alg,
            encoding: enc,
            decoding: public.decoding,
            kid: public.kid,
            previous: Vec::new(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            ttl: TOKEN_TTL,
        })
    }

    /// Also accepts tokens signed with a retired HS256 secret (at least 32 bytes).
    pub fn with_previous_secret(mut self, secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= 32,
            "DANBAO_JWT_PREVIOUS_SECRETS: each secret must be at least 32 bytes"
        );
        self.previous.push(VerifyKey {
            kid: kid_of(secret),
            algorithm: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret),
        });
        Ok(self)
    }

    /// Also accepts tokens signed with the private half of a retired public key.
    pub fn with_previous_public_key(mut self, algorithm: &str, pem: &[u8]) -> anyhow::Result<Self> {
        self.previous.push(VerifyKey::from_pem(algorithm, pem)?);
        Ok(self)
    }

    /// The key id put in the header of the tokens this signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issue(&self, p: &Principal) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let (centre_id, bank_id, region_code) = match &p.scope {
            Scope::All => (None, None, None),
            Scope::Centre(c) => (Some(*c), None, None),
            Scope::Bank(b) => (None, Some(*b), None),
            Scope::Region(r) => (None, None, Some(r.as_str().to_owned())),
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: p.id.to_string(),
            exp: now + self.ttl.as_secs(),
            iat: now,
            jti: Uuid::now_v7().to_string(),
            kind: p.kind,
            name: p.name.clone(),
            role: p.role,
            centre_id,
            bank_id,
            region_code,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::Unauthorized("invalid token: malformed".into()))?;
        // The kid picks the key; a token without one can only be checked with the current key.
        let (algorithm, decoding) = match header.kid.as_deref() {
            None => (self.algorithm, &self.decoding),
            Some(kid) if kid == self.kid => (self.algorithm, &self.decoding),
            Some(kid) => match self.previous.iter().find(|k| k.kid == kid) {
                Some(k) => (k.algorithm, &k.decoding),
                None => {
                    return Err(ApiError::Unauthorized(
                        "invalid token: unknown signing key".into(),
                    ))
                }
            },
        };
        let mut v = Validation::new(algorithm);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, decoding, &v).map_err(|e| {
            ApiError::Unauthorized(format!("invalid token: {}", token_error_reason(&e)))
        })?;
        data.claims.into_principal()
    }
}

impl VerifyKey {
    fn from_pem(algorithm: &str, public_pem: &[u8]) -> anyhow::Result<Self> {
        let (algorithm, decoding) = match algorithm {
            "EdDSA" => (Algorithm::EdDSA, DecodingKey::from_ed_pem(public_pem)?),
            "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(public_pem)?),
            "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(public_pem)?),
            other => {
                anyhow::bail!("unsupported JWT algorithm {other}: use EdDSA, ES256 or RS256")
            }
        };
        Ok(VerifyKey {
            kid: kid_of(public_pem),
            algorithm,
            decoding,
        })
    }
}

fn token_error_reason(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "expired",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "algorithm not accepted",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        _ => "malformed",
    }
}

/// Runs password hashing or verification on the blocking pool, at most one per core at a
/// time. Argon2 takes 19 MiB for each hash: unbounded, the 32 clerks of the benchmark logging in
/// together took the server past 180 MiB, and a burst of logins from many clients could take
/// all of its memory. More hashes at once than cores finish no sooner; the rest queue.
pub async fn hashing<T, F>(f: F) -> Result<T, actix_web::error::BlockingError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let permits = PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from))
    });
    // The semaphore is never closed.
    let _permit = permits.acquire().await.ok();
    let _busy = Busy::start();
    web::block(f).await
}

/// Hashes running now, and the most seen at once (tests read it through [`hashing_peak`]).
static HASHING_NOW: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static HASHING_PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Busy;

impl Busy {
    fn start() -> Busy {
        use std::sync::atomic::Ordering::SeqCst;
        let now = HASHING_NOW.fetch_add(1, SeqCst) + 1;
        HASHING_PEAK.fetch_max(now, SeqCst);
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        HASHING_NOW.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The most password hashes this process has run at once.
pub fn hashing_peak() -> usize {
    HASHING_PEAK.load(std::sync::atomic::Ordering::SeqCst)
}

/// Argon2id with the crate's default (OWASP-recommended) parameters.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Verifying against this when the user is unknown keeps both answers equally slow.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}

/// A random secret of `n` bytes as URL-safe text: bank client secrets, first passwords.
pub fn random_secret(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Minimum strength of a password: length and some variety. Argon2 handles the rest.
pub fn check_password_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < 12 {
        return Err("must be at least 12 characters".into());
    }
    if password.len() > 256 {
        return Err("must be at most 256 bytes".into());
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    if classes.iter().filter(|c| **c).count() < 2 {
        return Err("must mix at least two of: lower case, upper case, digits, symbols".into());
    }
    Ok(())
}

/// The authenticated caller, taken from `Authorization: Bearer <JWT>`.
pub struct AuthUser(pub Principal);

impl std::ops::Deref for AuthUser {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified = authenticate(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let principal = verified?;
            let state =
                state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("app state missing")))?;
            // A bank's runaway retry loop is slowed down before it costs a database query.
            if principal.role == Role::Bank {
                state
                    .limits
                    .bank
                    .take(&principal.id.to_string())
                    .map_err(|retry_after| ApiError::TooManyRequests {
                        retry_after,
                        detail: "too many requests from this bank client; slow down".into(),
                    })?;
            }
            ensure_active(&state, &principal).await?;
            Ok(AuthUser(principal))
        })
    }
}

/// A valid token of a deactivated user or a revoked client is refused (401).
pub(crate) async fn ensure_active(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    let active = match state.active.get(p.id) {
        Some(a) => a,
        None => {
            let mut conn = state.conn().await?;
            let a = match p.kind {
                PrincipalKind::User => {
                    danbao_persistence::repo::user::is_active(&mut conn, p.id).await?
                }
                PrincipalKind::Client => {
                    danbao_persistence::repo::bank_client::is_active(&mut conn, p.id).await?
                }
            };
            state.active.put(p.id, a);
            a
        }
    };
    if active {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "this account has been deactivated".into(),
        ))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("app state missing")))?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
    state.jwt.verify(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::hs256(&[7u8; 32]).unwrap()
    }

    fn clerk() -> Principal {
        Principal {
            kind: PrincipalKind::User,
            id: Uuid::now_v7(),
            name: "li".into(),
            role: Role::Clerk,
            scope: Scope::Centre(Uuid::now_v7()),
        }
    }

    #[test]
    fn issued_token_verifies_to_the_same_principal() {
        let k = keys();
        let p = clerk();
        let back = k.verify(&k.issue(&p).unwrap()).unwrap();
        assert_eq!(back.id, p.id);
        assert_eq!(back.scope, p.scope);
        assert_eq!(back.role, Role::Clerk);
    }

    #[test]
    fn other_key_is_rejected() {
        let other = JwtKeys::hs256(&[8u8; 32]).unwrap();
        let t = other.issue(&clerk()).unwrap();
        assert!(matches!(keys().verify(&t), Err(ApiError::Unauthorized(_))));
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(JwtKeys::hs256(b"short").is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("Correct horse 1").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("Correct horse 1", &h));
        assert!(!verify_password("Correct horse 2", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(check_password_strength("short1A").is_err());
        assert!(check_password_strength("alllowercaseletters").is_err());
        assert!(check_password_strength("lowercase and digits 123").is_ok());
    }
}
