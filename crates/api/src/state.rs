use crate::auth::JwtKeys;
use crate::crypto::PiiKeys;
use chrono::NaiveDate;
use danbao_persistence::pool::{DbConn, DbPool};
use metrics_exporter_prometheus::PrometheusHandle;

/// Shared by every worker; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    /// `DATABASE_READ_URL`: a streaming replica for statistics and lists, which may lag the
    /// primary by its replay delay. `None`: those reads use `pool` too.
    pub read_pool: Option<DbPool>,
    pub jwt: JwtKeys,
    /// Business time zone: "today" for a clerk in Nanchang is not today in UTC.
    pub timezone: chrono_tz::Tz,
    pub metrics: PrometheusHandle,
    /// Keys for national ids and phone numbers at rest.
    pub pii: PiiKeys,
    /// How many failed logins lock an account or an address, and for how long.
    pub login: LoginLimits,
    /// Whether token holders are still active, remembered for a short while.
    pub active: ActiveCache,
    /// Request rates per bank principal and per address at the token endpoint.
    pub limits: crate::ratelimit::RateLimits,
}

/// A deactivated user's or revoked client's tokens stop working within `ttl` (on every
/// replica; at once on the one that made the change), not only when they expire.
#[derive(Clone)]
pub struct ActiveCache {
    ttl: std::time::Duration,
    seen: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<uuid::Uuid, (bool, std::time::Instant)>>,
    >,
}

impl ActiveCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        ActiveCache {
            ttl,
            seen: Default::default(),
        }
    }

    /// The remembered answer, if still fresh.
    pub fn get(&self, id: uuid::Uuid) -> Option<bool> {
        let seen = self.seen.lock().ok()?;
        seen.get(&id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(active, _)| *active)
    }

    pub fn put(&self, id: uuid::Uuid, active: bool) {
        if let Ok(mut seen) = self.seen.lock() {
            // Bounded: a long-running server forgets old entries rather than growing.
            if seen.len() > 100_000 {
                seen.clear();
            }
            seen.insert(id, (active, std::time::Instant::now()));
        }
    }

    pub fn forget(&self, id: uuid::Uuid) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(&id);
        }
    }
}

impl Default for ActiveCache {
    fn default() -> Self {
        ActiveCache::new(std::time::Duration::from_secs(30))
    }
}

/// Failed logins allowed per account and per address within `window`; one more is answered
/// 429 until the oldest of them leaves the window.
#[derive(Clone, Debug)]
pub struct LoginLimits {
    pub per_account: u32,
    pub per_address: u32,
    pub window: std::time::Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_account: 5,
            per_address: 100,
            window: std::time::Duration::from_secs(15 * 60),
        }
    }
}

impl AppState {
    pub async fn conn(&self) -> Result<DbConn, crate::error::ApiError> {
        Ok(self.pool.get().await?)
    }

    /// For reads that may be a moment stale (statistics, lists): the replica when there is
    /// one. Anything that writes, or must see a write just made, uses [`AppState::conn`].
    pub async fn read_conn(&self) -> Result<DbConn, crate::error::ApiError> {
        Ok(self.read_pool.as_ref().unwrap_or(&self.pool).get().await?)
    }

    pub fn today(&self) -> NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.timezone)
            .date_naive()
    }
}
