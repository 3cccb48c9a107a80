//! Facts kept for statistics, and targets.
use crate::schema::{instalment_facts, principal_payments, targets};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = instalment_facts, check_for_backend(diesel::pg::Pg))]
pub struct InstalmentFactRow {
    pub loan_id: Uuid,
    pub number: i32,
    pub due_date: NaiveDate,
    pub principal: Decimal,
    pub interest: Decimal,
    pub subsidy: Decimal,
    pub extended: bool,
    pub paid_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = principal_payments, check_for_backend(diesel::pg::Pg))]
pub struct PrincipalPaymentRow {
    pub loan_id: Uuid,
    pub number: i32,
    pub value_date: NaiveDate,
    pub principal: Decimal,
    /// Its instalment's (so that a moved due date rewrites the row, and its rollup month).
    pub due_date: NaiveDate,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = targets, check_for_backend(diesel::pg::Pg))]
pub struct TargetRow {
    pub id: i64,
    pub region_code: String,
    pub year: i32,
    pub measure: String,
    pub value: Decimal,
    pub set_by: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = targets, check_for_backend(diesel::pg::Pg))]
pub struct NewTarget {
    pub region_code: String,
    pub year: i32,
    pub measure: String,
    pub value: Decimal,
    pub set_by: Uuid,
}
