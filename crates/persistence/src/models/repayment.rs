//! The schedule fixed at disbursement, repayments and their reversals.
use crate::schema::{instalments, repayment_allocations, repayment_reversals, repayments};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = instalments, check_for_backend(diesel::pg::Pg))]
pub struct InstalmentRow {
    pub loan_id: Uuid,
    pub number: i32,
    pub due_date: NaiveDate,
    pub principal: Decimal,
    pub interest: Decimal,
}

/// An instalment of a given schedule version (2: after the extension).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = instalments, check_for_backend(diesel::pg::Pg))]
pub struct VersionedInstalmentRow {
    pub loan_id: Uuid,
    pub version: i16,
    pub number: i32,
    pub due_date: NaiveDate,
    pub principal: Decimal,
    pub interest: Decimal,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = repayments, check_for_backend(diesel::pg::Pg))]
pub struct RepaymentRow {
    pub id: Uuid,
    pub loan_id: Uuid,
    pub bank_id: Uuid,
    pub bank_reference: String,
    pub value_date: NaiveDate,
    pub amount: Decimal,
    pub to_penalty: Decimal,
    pub to_interest: Decimal,
    pub to_principal: Decimal,
    pub created_by: Uuid,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = repayment_reversals, check_for_backend(diesel::pg::Pg))]
pub struct ReversalRow {
    pub repayment_id: Uuid,
    /// The repayment's loan (checked by a trigger), so a loan's reversals are one index scan.
    pub loan_id: Uuid,
    pub reason: String,
    pub value_date: NaiveDate,
    pub created_by: Uuid,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
}

/// One repayment's allocation from some write on; the latest row is the current one, and a
/// repayment without one has the allocation it was booked with ([`AllocationRow::booked`]).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = repayment_allocations, check_for_backend(diesel::pg::Pg))]
pub struct AllocationRow {
    pub repayment_id: Uuid,
    pub loan_id: Uuid,
    pub to_penalty: Decimal,
    pub to_interest: Decimal,
    pub to_principal: Decimal,
}

impl AllocationRow {
    /// The allocation `r` was booked with: its current one until an allocation row follows.
    pub fn booked(r: &RepaymentRow) -> AllocationRow {
        AllocationRow {
            repayment_id: r.id,
            loan_id: r.loan_id,
            to_penalty: r.to_penalty,
            to_interest: r.to_interest,
            to_principal: r.to_principal,
        }
    }
}
