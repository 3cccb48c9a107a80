use crate::auth::JwtKeys;
use crate::crypto::PiiKeys;
use chrono::NaiveDate;
use danbao_persistence::pool::{DbConn, DbPool};
use metrics_exporter_prometheus::PrometheusHandle;

/// Shared by every worker; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub jwt: JwtKeys,
    /// Business time zone: "today" for a clerk in Nanchang is not today in UTC.
    pub timezone: chrono_tz::Tz,
    pub metrics: PrometheusHandle,
    /// Keys for national ids and phone numbers at rest.
    pub pii: PiiKeys,
    /// How many failed logins lock an account or an address, and for how long.
    pub login: LoginLimits,
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

    pub fn today(&self) -> NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.timezone)
            .date_naive()
    }
}
