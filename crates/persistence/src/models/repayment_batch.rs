//! A bank's daily repayment file and the outcome of each of its rows.
use crate::schema::{repayment_batch_rows, repayment_batches};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = repayment_batches, check_for_backend(diesel::pg::Pg))]
pub struct BatchRow {
    pub id: Uuid,
    pub bank_id: Uuid,
    pub format: String,
    pub atomic: bool,
    pub status: String,
    pub rows: i32,
    pub applied: i32,
    pub duplicates: i32,
    pub failed: i32,
    pub created_by: Uuid,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = repayment_batch_rows, check_for_backend(diesel::pg::Pg))]
pub struct BatchRowOutcome {
    pub batch_id: Uuid,
    pub row_no: i32,
    pub bank_reference: String,
    pub loan_id: Option<Uuid>,
    pub outcome: String,
    pub repayment_id: Option<Uuid>,
    pub error_code: Option<String>,
    pub error_field: Option<String>,
    pub error_message: Option<String>,
}
