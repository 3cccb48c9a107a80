//! Repayment batches: their rows' loans resolved a chunk at a time, the fund locks, and the
//! append-only record of each batch and row. The caller owns the transaction.
use crate::models::repayment_batch::{BatchRow, BatchRowOutcome};
use crate::schema::{centres, funds, loans, repayment_batch_rows, repayment_batches, users};
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// What a batch row needs to know about its loan, before locking it.
#[derive(Debug, Clone, Queryable)]
pub struct BatchLoan {
    pub id: Uuid,
    pub fund_id: Uuid,
    pub centre_id: Uuid,
    pub bank_account_no: Option<String>,
}

/// The loans of `bank_id` among `ids` or with an account number among `accounts`: one query.
/// Loans of other banks are never returned.
pub async fn loans_of_bank(
    conn: &mut AsyncPgConnection,
    bank_id: Uuid,
    ids: &[Uuid],
    accounts: &[String],
) -> QueryResult<Vec<BatchLoan>> {
    loans::table
        .filter(loans::bank_id.eq(bank_id))
        .filter(
            loans::id
                .eq_any(ids)
                .or(loans::bank_account_no.eq_any(accounts)),
        )
        .select((
            loans::id,
            loans::fund_id,
            loans::centre_id,
            loans::bank_account_no,
        ))
        .load(conn)
        .await
}

/// Region codes of centres: one query.
pub async fn centre_regions(
    conn: &mut AsyncPgConnection,
    centre_ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, String)>> {
    centres::table
        .filter(centres::id.eq_any(centre_ids))
        .select((centres::id, centres::region_code))
        .load(conn)
        .await
}

/// Locks the funds in id order (the order every batch uses, so two batches cannot deadlock).
pub async fn lock_funds(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    funds::table
        .filter(funds::id.eq_any(ids))
        .order(funds::id.asc())
        .select(funds::id)
        .for_update()
        .load(conn)
        .await
}

/// The funds behind any loan of the bank.
pub async fn funds_of_bank(conn: &mut AsyncPgConnection, bank_id: Uuid) -> QueryResult<Vec<Uuid>> {
    loans::table
        .filter(loans::bank_id.eq(bank_id))
        .select(loans::fund_id)
        .distinct()
        .load(conn)
        .await
}

pub async fn insert_batch(conn: &mut AsyncPgConnection, row: &BatchRow) -> QueryResult<BatchRow> {
    diesel::insert_into(repayment_batches::table)
        .values(row)
        .returning(BatchRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn insert_rows(
    mut conn: &AsyncPgConnection,
    rows: &[BatchRowOutcome],
) -> QueryResult<usize> {
    use super::column as col;
    use diesel::sql_types::{Array, Int4, Nullable, Text, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(0);
    }
    // One array per column (`super::column`): no limit of 65,535 bind parameters either.
    super::Prepared(diesel::sql_query(
        "INSERT INTO repayment_batch_rows (batch_id, row_no, bank_reference, loan_id, outcome, \
         repayment_id, error_code, error_field, error_message) \
         SELECT * FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::uuid[], $5::text[], \
         $6::uuid[], $7::text[], $8::text[], $9::text[])",
    )
    .bind::<Array<SqlUuid>, _>(col(rows, |r| r.batch_id))
    .bind::<Array<Int4>, _>(col(rows, |r| r.row_no))
    .bind::<Array<Text>, _>(col(rows, |r| r.bank_reference.as_str()))
    .bind::<Array<Nullable<SqlUuid>>, _>(col(rows, |r| r.loan_id))
    .bind::<Array<Text>, _>(col(rows, |r| r.outcome.as_str()))
    .bind::<Array<Nullable<SqlUuid>>, _>(col(rows, |r| r.repayment_id))
    .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.error_code.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.error_field.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.error_message.as_deref())))
    .execute(&mut conn)
    .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<BatchRow>> {
    repayment_batches::table
        .find(id)
        .select(BatchRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Rows after `after` (row number), `limit + 1` of them, optionally only one outcome.
pub async fn rows(
    conn: &mut AsyncPgConnection,
    batch_id: Uuid,
    after: Option<i32>,
    outcome: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<BatchRowOutcome>> {
    let mut q = repayment_batch_rows::table
        .filter(repayment_batch_rows::batch_id.eq(batch_id))
        .filter(repayment_batch_rows::row_no.gt(after.unwrap_or(0)))
        .select(BatchRowOutcome::as_select())
        .order(repayment_batch_rows::row_no.asc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(o) = outcome {
        q = q.filter(repayment_batch_rows::outcome.eq(o));
    }
    q.load(conn).await
}

/// The bank's active bank users, oldest first (the command line acts as one of them).
pub async fn active_bank_users(
    conn: &mut AsyncPgConnection,
    bank_id: Uuid,
) -> QueryResult<Vec<(Uuid, String)>> {
    users::table
        .filter(users::bank_id.eq(bank_id))
        .filter(users::role.eq("bank"))
        .filter(users::active.eq(true))
        .order((users::created_at.asc(), users::id.asc()))
        .select((users::id, users::username))
        .load(conn)
        .await
}
