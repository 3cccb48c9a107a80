//! Extension, compensation claims, recoveries and write-offs.
use crate::schema::{compensation_claims, loan_extensions, recoveries, write_offs};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = loan_extensions, check_for_backend(diesel::pg::Pg))]
pub struct ExtensionRow {
    pub loan_id: Uuid,
    pub agreed_on: NaiveDate,
    pub months: i32,
    pub old_maturity: NaiveDate,
    pub new_maturity: NaiveDate,
    pub first_extended: i32,
    pub rescheduled_principal: Decimal,
    pub reason: String,
    pub created_by: Uuid,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = compensation_claims, check_for_backend(diesel::pg::Pg))]
pub struct ClaimRow {
    pub id: Uuid,
    pub loan_id: Uuid,
    pub bank_id: Uuid,
    pub fund_id: Uuid,
    pub filed_on: NaiveDate,
    pub days_past_due: i32,
    pub outstanding_principal: Decimal,
    pub overdue_interest: Decimal,
    pub fund_share: Decimal,
    pub claimed_amount: Decimal,
    pub filed_by: Uuid,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
    pub status: String,
    pub approved_on: Option<NaiveDate>,
    pub approved_by: Option<Uuid>,
    pub paid_amount: Option<Decimal>,
    pub ledger_entry_id: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recoveries, check_for_backend(diesel::pg::Pg))]
pub struct RecoveryRow {
    pub id: Uuid,
    pub loan_id: Uuid,
    pub claim_id: Uuid,
    pub value_date: NaiveDate,
    pub amount: Decimal,
    pub to_fund: Decimal,
    pub reference: String,
    pub ledger_entry_id: Option<i64>,
    pub created_by: Uuid,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = write_offs, check_for_backend(diesel::pg::Pg))]
pub struct WriteOffRow {
    pub loan_id: Uuid,
    pub claim_id: Uuid,
    pub written_off_on: NaiveDate,
    pub compensation_paid: Decimal,
    pub recovered_to_fund: Decimal,
    pub loss: Decimal,
    pub reason: String,
    pub created_by: Uuid,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
}
