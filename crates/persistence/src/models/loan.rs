use crate::schema::loans;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = loans, check_for_backend(diesel::pg::Pg))]
pub struct LoanRow {
    pub id: Uuid,
    pub borrower_id: Uuid,
    pub centre_id: Uuid,
    pub fund_id: Uuid,
    pub bank_id: Uuid,
    pub policy_id: Uuid,
    pub person_hmac: Option<Vec<u8>>,
    pub principal: Decimal,
    pub term_months: i32,
    pub annual_rate: Decimal,
    pub schedule_method: String,
    pub interest_convention: String,
    pub purpose: String,
    pub micro_profit: bool,
    pub jobs_declared: i32,
    pub counter_guarantee: serde_json::Value,
    pub waiver: bool,
    pub status: String,
    pub applied_on: NaiveDate,
    pub entered_by: Uuid,
    pub decided_on: Option<NaiveDate>,
    pub decided_by: Option<Uuid>,
    pub decision_reason: Option<String>,
    pub approved_on: Option<NaiveDate>,
    pub cancelled_on: Option<NaiveDate>,
    pub cancelled_by: Option<Uuid>,
    pub released_on: Option<NaiveDate>,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
    #[diesel(skip_insertion)]
    pub updated_at: DateTime<Utc>,
    #[diesel(skip_insertion)]
    pub disbursed_on: Option<NaiveDate>,
    #[diesel(skip_insertion)]
    pub maturity_date: Option<NaiveDate>,
    #[diesel(skip_insertion)]
    pub bank_account_no: Option<String>,
    #[diesel(skip_insertion)]
    pub disbursed_by: Option<Uuid>,
    /// 1: the schedule fixed at disbursement; 2: the schedule after the one extension.
    #[diesel(skip_insertion)]
    pub schedule_version: i16,
    /// The centre's region and the borrower's category, kept for grouping statistics.
    pub region_code: String,
    pub category: String,
}

impl std::fmt::Debug for LoanRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoanRow")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// Statuses in which a loan still holds fund headroom and counts as the person's one loan.
pub const UNSETTLED: &[&str] = &["approved", "active", "compensated"];
