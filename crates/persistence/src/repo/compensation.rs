//! Extension, compensation claims, recoveries and write-offs. The caller holds the locks
//! (fund, then loan) and owns the transaction.
use crate::models::compensation::{ClaimRow, ExtensionRow, RecoveryRow, WriteOffRow};
use crate::models::loan::LoanRow;
use crate::models::repayment::VersionedInstalmentRow;
use crate::schema::{
    compensation_claims, instalments, loan_extensions, loans, recoveries, write_offs,
};
use chrono::NaiveDate;
use diesel::dsl::sum;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

/// Records the extension, its schedule (version 2), and moves the loan to it.
pub async fn extend(
    conn: &mut AsyncPgConnection,
    ext: &ExtensionRow,
    schedule: &[VersionedInstalmentRow],
) -> QueryResult<LoanRow> {
    diesel::insert_into(loan_extensions::table)
        .values(ext)
        .execute(conn)
        .await?;
    diesel::insert_into(instalments::table)
        .values(schedule)
        .execute(conn)
        .await?;
    diesel::update(loans::table.find(ext.loan_id))
        .set((
            loans::schedule_version.eq(2_i16),
            loans::maturity_date.eq(ext.new_maturity),
            loans::updated_at.eq(diesel::dsl::now),
        ))
        .returning(LoanRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn extension_of(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
) -> QueryResult<Option<ExtensionRow>> {
    loan_extensions::table
        .find(loan_id)
        .select(ExtensionRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn extensions_of(
    conn: &mut AsyncPgConnection,
    loan_ids: &[Uuid],
) -> QueryResult<Vec<ExtensionRow>> {
    loan_extensions::table
        .filter(loan_extensions::loan_id.eq_any(loan_ids))
        .select(ExtensionRow::as_select())
        .load(conn)
        .await
}

pub async fn insert_claim(conn: &mut AsyncPgConnection, row: &ClaimRow) -> QueryResult<ClaimRow> {
    diesel::insert_into(compensation_claims::table)
        .values(row)
        .returning(ClaimRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find_claim(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ClaimRow>> {
    compensation_claims::table
        .find(id)
        .select(ClaimRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn claim_of_loan(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
) -> QueryResult<Option<ClaimRow>> {
    compensation_claims::table
        .filter(compensation_claims::loan_id.eq(loan_id))
        .select(ClaimRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub struct ClaimApproval {
    pub on: NaiveDate,
    pub by: Uuid,
    pub paid: Decimal,
    pub ledger_entry_id: i64,
}

pub async fn approve_claim(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    a: &ClaimApproval,
) -> QueryResult<ClaimRow> {
    diesel::update(compensation_claims::table.find(id))
        .set((
            compensation_claims::status.eq("approved"),
            compensation_claims::approved_on.eq(a.on),
            compensation_claims::approved_by.eq(a.by),
            compensation_claims::paid_amount.eq(a.paid),
            compensation_claims::ledger_entry_id.eq(a.ledger_entry_id),
        ))
        .returning(ClaimRow::as_returning())
        .get_result(conn)
        .await
}

/// The loan ends (`compensated` or `written_off`); `released_on`: the day its guarantee stopped
/// counting against the fund (kept from the compensation at the write-off).
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
    released_on: NaiveDate,
) -> QueryResult<LoanRow> {
    diesel::update(loans::table.find(id))
        .set((
            loans::status.eq(status),
            loans::released_on.eq(released_on),
            loans::updated_at.eq(diesel::dsl::now),
        ))
        .returning(LoanRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn insert_recovery(
    conn: &mut AsyncPgConnection,
    row: &RecoveryRow,
) -> QueryResult<RecoveryRow> {
    diesel::insert_into(recoveries::table)
        .values(row)
        .returning(RecoveryRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn recovery_by_reference(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
    reference: &str,
) -> QueryResult<Option<RecoveryRow>> {
    recoveries::table
        .filter(recoveries::loan_id.eq(loan_id))
        .filter(recoveries::reference.eq(reference))
        .select(RecoveryRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Recovered so far on the loan, and the fund's part of it.
pub async fn recovered_totals(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
) -> QueryResult<(Decimal, Decimal)> {
    recoveries::table
        .filter(recoveries::loan_id.eq(loan_id))
        .select((sum(recoveries::amount), sum(recoveries::to_fund)))
        .first::<(Option<Decimal>, Option<Decimal>)>(conn)
        .await
        .map(|(a, f)| (a.unwrap_or_default(), f.unwrap_or_default()))
}

pub async fn insert_write_off(
    conn: &mut AsyncPgConnection,
    row: &WriteOffRow,
) -> QueryResult<WriteOffRow> {
    diesel::insert_into(write_offs::table)
        .values(row)
        .returning(WriteOffRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn recoveries_of(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
) -> QueryResult<Vec<RecoveryRow>> {
    recoveries::table
        .filter(recoveries::loan_id.eq(loan_id))
        .order((recoveries::value_date.asc(), recoveries::created_at.asc()))
        .select(RecoveryRow::as_select())
        .load(conn)
        .await
}
