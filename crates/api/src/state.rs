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
