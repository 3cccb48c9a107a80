use crate::models::fund::{FundRow, LedgerEntryRow, NewFund, NewLedgerEntry};
use crate::schema::{centres, fund_ledger_entries, funds};
use chrono::NaiveDate;
use diesel::dsl::sum;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewFund<'_>) -> QueryResult<FundRow> {
    diesel::insert_into(funds::table)
        .values(new)
        .returning(FundRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<FundRow>> {
    funds::table
        .find(id)
        .select(FundRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The fund with a row lock held to the end of the transaction: every change of balance or
/// outstanding guaranteed goes through here, so two approvals cannot both take the last room.
pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<FundRow>> {
    funds::table
        .find(id)
        .select(FundRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Moves the running totals; call with the row locked.
/// Takes a shared connection so that it can be pipelined with other writes.
pub async fn add_to_totals(
    mut conn: &AsyncPgConnection,
    id: Uuid,
    balance_delta: Decimal,
    outstanding_delta: Decimal,
) -> QueryResult<FundRow> {
    diesel::update(funds::table.find(id))
        .set((
            funds::balance.eq(funds::balance + balance_delta),
            funds::outstanding_guaranteed.eq(funds::outstanding_guaranteed + outstanding_delta),
            funds::updated_at.eq(diesel::dsl::now),
        ))
        .returning(FundRow::as_returning())
        .get_result(&mut conn)
        .await
}

pub async fn append_entry(
    conn: &mut AsyncPgConnection,
    e: &NewLedgerEntry,
) -> QueryResult<LedgerEntryRow> {
    diesel::insert_into(fund_ledger_entries::table)
        .values(e)
        .returning(LedgerEntryRow::as_returning())
        .get_result(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct FundFilter {
    pub centre_id: Option<Uuid>,
    pub region_prefix: Option<String>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &FundFilter,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<super::Page<FundRow>> {
    let mut q = funds::table
        .inner_join(centres::table)
        .select(FundRow::as_select())
        .into_boxed();
    if let Some(c) = filter.centre_id {
        q = q.filter(funds::centre_id.eq(c));
    }
    if let Some(p) = &filter.region_prefix {
        q = q.filter(centres::region_code.like(super::subtree_pattern(p)));
    }
    if let Some(a) = after {
        q = q.filter(funds::id.gt(a));
    }
    let rows = q.order(funds::id.asc()).limit(limit + 1).load(conn).await?;
    Ok(super::Page::from_overfetch(rows, limit))
}

/// Sum of the ledger up to and including `as_of`.
pub async fn balance_as_of(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    as_of: NaiveDate,
) -> QueryResult<Decimal> {
    fund_ledger_entries::table
        .filter(fund_ledger_entries::fund_id.eq(id))
        .filter(fund_ledger_entries::value_date.le(as_of))
        .select(sum(fund_ledger_entries::amount))
        .first::<Option<Decimal>>(conn)
        .await
        .map(Option::unwrap_or_default)
}

/// Contributions (money in from finance departments) up to and including `as_of`.
pub async fn contributions_as_of(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    as_of: NaiveDate,
) -> QueryResult<Decimal> {
    fund_ledger_entries::table
        .filter(fund_ledger_entries::fund_id.eq(id))
        .filter(fund_ledger_entries::kind.eq("contribution"))
        .filter(fund_ledger_entries::value_date.le(as_of))
        .select(sum(fund_ledger_entries::amount))
        .first::<Option<Decimal>>(conn)
        .await
        .map(Option::unwrap_or_default)
}

#[derive(diesel::QueryableByName)]
struct Total {
    #[diesel(sql_type = diesel::sql_types::Numeric)]
    total: Decimal,
}

/// Guaranteed principal on `as_of`: of the loans approved by then and not yet released, the
/// principal not yet repaid by then (reversed repayments do not count).
pub async fn outstanding_as_of(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    as_of: NaiveDate,
) -> QueryResult<Decimal> {
    diesel::sql_query(
        "SELECT COALESCE(SUM(l.principal - COALESCE(p.repaid, 0)), 0) AS total
         FROM loans l
         LEFT JOIN LATERAL (
           SELECT SUM(a.to_principal) AS repaid
           FROM repayments r JOIN repayment_allocations_current a ON a.repayment_id = r.id
           WHERE r.loan_id = l.id AND r.value_date <= $2
             AND NOT EXISTS (SELECT 1 FROM repayment_reversals v WHERE v.repayment_id = r.id)
         ) p ON TRUE
         WHERE l.fund_id = $1 AND l.approved_on <= $2 AND (l.released_on IS NULL OR l.released_on > $2)",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Date, _>(as_of)
    .get_result::<Total>(conn)
    .await
    .map(|t| t.total)
}

/// The ledger, oldest first, with each entry's running balance.
pub async fn ledger(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<super::Page<(LedgerEntryRow, Decimal)>> {
    let mut q = fund_ledger_entries::table
        .filter(fund_ledger_entries::fund_id.eq(id))
        .select(LedgerEntryRow::as_select())
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(fund_ledger_entries::id.gt(a));
    }
    let rows: Vec<LedgerEntryRow> = q
        .order(fund_ledger_entries::id.asc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    // The balance before this page, then a running sum: two queries, whatever the page size.
    let before: Decimal = match after {
        Some(a) => fund_ledger_entries::table
            .filter(fund_ledger_entries::fund_id.eq(id))
            .filter(fund_ledger_entries::id.le(a))
            .select(sum(fund_ledger_entries::amount))
            .first::<Option<Decimal>>(conn)
            .await?
            .unwrap_or_default(),
        None => Decimal::ZERO,
    };
    let mut running = before;
    let with_balance = rows
        .into_iter()
        .map(|r| {
            running += r.amount;
            (r, running)
        })
        .collect();
    Ok(super::Page::from_overfetch(with_balance, limit))
}
