//! Facts for statistics (rewritten per loan with each write that moves its position) and
//! targets. The caller owns the transaction.
use crate::models::stats::{InstalmentFactRow, NewTarget, PrincipalPaymentRow, TargetRow};
use crate::schema::{instalment_facts, principal_payments, targets};
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Replaces the loan's facts with these.
pub async fn replace_facts(
    conn: &AsyncPgConnection,
    loan_id: Uuid,
    facts: &[InstalmentFactRow],
    payments: &[PrincipalPaymentRow],
) -> QueryResult<()> {
    replace_facts_of_many(conn, &[loan_id], facts, payments).await
}

/// Replaces the facts of all these loans with these (the facts of those loans only): one
/// DELETE per table, and one multi-row INSERT per table as far as the bind limit allows.
/// (A shared connection, so that it can be pipelined with other writes; its own statements
/// run one after the other, deletes first.)
pub async fn replace_facts_of_many(
    mut conn: &AsyncPgConnection,
    loan_ids: &[Uuid],
    facts: &[InstalmentFactRow],
    payments: &[PrincipalPaymentRow],
) -> QueryResult<()> {
    if loan_ids.is_empty() {
        return Ok(());
    }
    diesel::delete(principal_payments::table.filter(principal_payments::loan_id.eq_any(loan_ids)))
        .execute(&mut conn)
        .await?;
    diesel::delete(instalment_facts::table.filter(instalment_facts::loan_id.eq_any(loan_ids)))
        .execute(&mut conn)
        .await?;
    for part in facts.chunks(super::repayment::rows_per_insert(8)) {
        diesel::insert_into(instalment_facts::table)
            .values(part)
            .execute(&mut conn)
            .await?;
    }
    for part in payments.chunks(super::repayment::rows_per_insert(4)) {
        diesel::insert_into(principal_payments::table)
            .values(part)
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

pub async fn facts_of(
    conn: &mut AsyncPgConnection,
    loan_ids: &[Uuid],
) -> QueryResult<(Vec<InstalmentFactRow>, Vec<PrincipalPaymentRow>)> {
    let facts = instalment_facts::table
        .filter(instalment_facts::loan_id.eq_any(loan_ids))
        .order((instalment_facts::loan_id, instalment_facts::number))
        .select(InstalmentFactRow::as_select())
        .load(conn)
        .await?;
    let payments = principal_payments::table
        .filter(principal_payments::loan_id.eq_any(loan_ids))
        .order((
            principal_payments::loan_id,
            principal_payments::number,
            principal_payments::value_date,
        ))
        .select(PrincipalPaymentRow::as_select())
        .load(conn)
        .await?;
    Ok((facts, payments))
}

pub async fn insert_target(conn: &mut AsyncPgConnection, t: &NewTarget) -> QueryResult<TargetRow> {
    diesel::insert_into(targets::table)
        .values(t)
        .returning(TargetRow::as_returning())
        .get_result(conn)
        .await
}

/// The latest target of each region (in `codes`), year and measure.
pub async fn current_targets(
    conn: &mut AsyncPgConnection,
    codes: &[String],
    year: i32,
) -> QueryResult<Vec<TargetRow>> {
    targets::table
        .filter(targets::region_code.eq_any(codes))
        .filter(targets::year.eq(year))
        .distinct_on((targets::region_code, targets::measure))
        .order((targets::region_code, targets::measure, targets::id.desc()))
        .select(TargetRow::as_select())
        .load(conn)
        .await
}

/// Targets whose region's code starts with `prefix` (a GB/T 2260 subtree), latest first.
pub async fn list_targets(
    conn: &mut AsyncPgConnection,
    prefix: &str,
    year: Option<i32>,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<super::Page<TargetRow>> {
    let mut q = targets::table
        .filter(targets::region_code.like(super::subtree_pattern(prefix)))
        .select(TargetRow::as_select())
        .into_boxed();
    if let Some(y) = year {
        q = q.filter(targets::year.eq(y));
    }
    if let Some(a) = after {
        q = q.filter(targets::id.lt(a));
    }
    let rows = q
        .order(targets::id.desc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(super::Page::from_overfetch(rows, limit))
}
