//! Facts for statistics (rewritten per loan with each write that moves its position) and
//! targets. The caller owns the transaction.
use crate::models::stats::{
    overdue_spans_of, InstalmentFactRow, NewTarget, OverdueSpan, PrincipalPaymentRow, TargetRow,
};
use crate::schema::{instalment_facts, principal_payments, targets};
use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use std::collections::HashSet;
use uuid::Uuid;

/// Brings the loan's facts to these.
pub async fn replace_facts(
    conn: &AsyncPgConnection,
    loan_id: Uuid,
    facts: &[InstalmentFactRow],
    payments: &[PrincipalPaymentRow],
) -> QueryResult<()> {
    replace_facts_of_many(conn, &[loan_id], facts, payments).await
}

/// Brings the facts of all these loans to these (the facts of those loans only), writing only
/// the rows that differ: a repayment moves one or two of a loan's instalments, and rewriting
/// all of them made a repayment file write and delete about twenty fact rows per row.
/// One read per table, then one DELETE per table by key and multi-row INSERTs as far as the
/// bind limit allows. (A shared connection, so that it can be pipelined with other writes.)
pub async fn replace_facts_of_many(
    conn: &AsyncPgConnection,
    loan_ids: &[Uuid],
    facts: &[InstalmentFactRow],
    payments: &[PrincipalPaymentRow],
) -> QueryResult<()> {
    if loan_ids.is_empty() {
        return Ok(());
    }
    let (old_facts, old_payments) = facts_of(conn, loan_ids).await?;
    write_fact_changes(conn, &old_facts, &old_payments, facts, payments).await
}

/// Turns the stored facts `old_*` (all of some loans' rows, as they are in the database) into
/// `facts` and `payments` (all of the same loans' rows), writing only the rows that differ.
pub async fn write_fact_changes(
    conn: &AsyncPgConnection,
    old_facts: &[InstalmentFactRow],
    old_payments: &[PrincipalPaymentRow],
    facts: &[InstalmentFactRow],
    payments: &[PrincipalPaymentRow],
) -> QueryResult<()> {
    let changes = FactChanges::new(old_facts, old_payments, facts, payments);
    futures_util::future::try_join_all(changes.statements(conn)).await?;
    Ok(())
}

/// What [`write_fact_changes`] writes, worked out in memory first, so that a repayment file
/// can plan its next chunk while these statements run.
pub struct FactChanges {
    gone_payments: Vec<(Uuid, i32, NaiveDate)>,
    gone_facts: Vec<(Uuid, i32)>,
    new_facts: Vec<InstalmentFactRow>,
    new_payments: Vec<PrincipalPaymentRow>,
    /// Per loan whose spans change, the first date where old and new differ: its stored
    /// spans from there on are replaced by `spans_added`.
    spans_from: Vec<(Uuid, NaiveDate)>,
    spans_added: Vec<OverdueSpan>,
}

impl FactChanges {
    pub fn new(
        old_facts: &[InstalmentFactRow],
        old_payments: &[PrincipalPaymentRow],
        facts: &[InstalmentFactRow],
        payments: &[PrincipalPaymentRow],
    ) -> FactChanges {
        let (gone, new_facts) = changed(old_facts, facts, |f| (f.loan_id, f.number));
        let gone_facts: Vec<(Uuid, i32)> = gone.iter().map(|f| (f.loan_id, f.number)).collect();
        let (gone, new_payments) = changed(old_payments, payments, |p| {
            (p.loan_id, p.number, p.value_date)
        });
        let gone_payments: Vec<(Uuid, i32, NaiveDate)> = gone
            .iter()
            .map(|p| (p.loan_id, p.number, p.value_date))
            .collect();
        // A loan's spans follow from its facts and payments alone: only the loans whose rows
        // moved can have other spans (in a repayment file, about one loan in seven; computing
        // every loan's spans twice was a tenth of the file's client time).
        let moved: HashSet<Uuid> = gone_facts
            .iter()
            .map(|f| f.0)
            .chain(gone_payments.iter().map(|p| p.0))
            .chain(new_facts.iter().map(|f| f.loan_id))
            .chain(new_payments.iter().map(|p| p.loan_id))
            .collect();
        let spans = |facts: &[InstalmentFactRow], payments: &[PrincipalPaymentRow]| {
            overdue_spans_of(
                facts.iter().filter(|f| moved.contains(&f.loan_id)),
                payments.iter().filter(|p| moved.contains(&p.loan_id)),
            )
        };
        let (spans_from, spans_added) =
            span_changes(&spans(old_facts, old_payments), &spans(facts, payments));
        FactChanges {
            gone_payments,
            gone_facts,
            new_facts: new_facts.into_iter().cloned().collect(),
            new_payments: new_payments.into_iter().cloned().collect(),
            spans_from,
            spans_added,
        }
    }

    /// The statements, in the order they must run; awaited together they are pipelined.
    pub fn statements<'a>(
        &'a self,
        mut conn: &'a AsyncPgConnection,
    ) -> Vec<BoxFuture<'a, QueryResult<usize>>> {
        use super::column as col;
        use diesel::sql_types::{Array, Date, Int4, Nullable, Numeric, Uuid as SqlUuid};
        let mut out: Vec<BoxFuture<'a, QueryResult<usize>>> = Vec::new();
        let gone = &self.gone_payments;
        if !gone.is_empty() {
            out.push(
                super::Prepared(diesel::sql_query(
                    "DELETE FROM principal_payments p USING unnest($1::uuid[], $2::int4[], $3::date[]) \
                     AS k(loan_id, number, value_date) \
                     WHERE p.loan_id = k.loan_id AND p.number = k.number AND p.value_date = k.value_date",
                )
                .bind::<Array<SqlUuid>, _>(col(gone, |p| p.0))
                .bind::<Array<Int4>, _>(col(gone, |p| p.1))
                .bind::<Array<Date>, _>(col(gone, |p| p.2)))
                .execute(&mut conn),
            );
        }
        let gone = &self.gone_facts;
        if !gone.is_empty() {
            out.push(
                super::Prepared(diesel::sql_query(
                    "DELETE FROM instalment_facts f USING unnest($1::uuid[], $2::int4[]) AS k(loan_id, number) \
                     WHERE f.loan_id = k.loan_id AND f.number = k.number",
                )
                .bind::<Array<SqlUuid>, _>(col(gone, |f| f.0))
                .bind::<Array<Int4>, _>(col(gone, |f| f.1)))
                .execute(&mut conn),
            );
        }
        if !self.spans_from.is_empty() {
            let from = &self.spans_from;
            out.push(
                super::Prepared(diesel::sql_query(
                    "DELETE FROM overdue_spans s USING unnest($1::uuid[], $2::date[]) AS k(loan_id, from_date) \
                     WHERE s.loan_id = k.loan_id AND s.starts_on >= k.from_date",
                )
                .bind::<Array<SqlUuid>, _>(col(from, |c| c.0))
                .bind::<Array<Date>, _>(col(from, |c| c.1)))
                .execute(&mut conn),
            );
        }
        let added = &self.spans_added;
        if !added.is_empty() {
            // Each new span takes its loan's cell and closing date (`overdue_spans_fit_loan`
            // checks them).
            out.push(
                super::Prepared(diesel::sql_query(
                    "INSERT INTO overdue_spans (loan_id, starts_on, ends_on, oldest_due, overdue, outstanding, maturity, \
                                                region_code, bank_id, centre_id, category, closed_on) \
                     SELECT s.loan_id, s.starts_on, s.ends_on, s.oldest_due, s.overdue, s.outstanding, s.maturity, \
                            l.region_code, l.bank_id, l.centre_id, l.category, \
                            CASE WHEN l.status IN ('compensated', 'written_off') THEN l.released_on END \
                     FROM unnest($1::uuid[], $2::date[], $3::date[], $4::date[], $5::numeric[], $6::numeric[], $7::date[]) \
                          AS s(loan_id, starts_on, ends_on, oldest_due, overdue, outstanding, maturity) \
                     JOIN loans l ON l.id = s.loan_id",
                )
                .bind::<Array<SqlUuid>, _>(col(added, |s| s.loan_id))
                .bind::<Array<Date>, _>(col(added, |s| s.starts_on))
                .bind::<Array<Nullable<Date>>, _>(col(added, |s| s.ends_on))
                .bind::<Array<Date>, _>(col(added, |s| s.oldest_due))
                .bind::<Array<Numeric>, _>(col(added, |s| s.overdue))
                .bind::<Array<Numeric>, _>(col(added, |s| s.outstanding))
                .bind::<Array<Date>, _>(col(added, |s| s.maturity)))
                .execute(&mut conn),
            );
        }
        // From one array per column: the same statement whatever the number of rows, so it
        // stays prepared and never waits for a parse in the middle of a pipeline.
        let f = &self.new_facts;
        if !f.is_empty() {
            out.push(
                super::Prepared(diesel::sql_query(
                    "INSERT INTO instalment_facts (loan_id, number, due_date, principal, interest, subsidy, \
                                                   extended, paid_on) \
                     SELECT * FROM unnest($1::uuid[], $2::int4[], $3::date[], $4::numeric[], $5::numeric[], \
                                          $6::numeric[], $7::bool[], $8::date[])",
                )
                .bind::<Array<SqlUuid>, _>(col(f, |r| r.loan_id))
                .bind::<Array<Int4>, _>(col(f, |r| r.number))
                .bind::<Array<Date>, _>(col(f, |r| r.due_date))
                .bind::<Array<Numeric>, _>(col(f, |r| r.principal))
                .bind::<Array<Numeric>, _>(col(f, |r| r.interest))
                .bind::<Array<Numeric>, _>(col(f, |r| r.subsidy))
                .bind::<Array<diesel::sql_types::Bool>, _>(col(f, |r| r.extended))
                .bind::<Array<Nullable<Date>>, _>(col(f, |r| r.paid_on)))
                .execute(&mut conn),
            );
        }
        let p = &self.new_payments;
        if !p.is_empty() {
            out.push(
                super::Prepared(diesel::sql_query(
                    "INSERT INTO principal_payments (loan_id, number, value_date, principal, due_date) \
                     SELECT * FROM unnest($1::uuid[], $2::int4[], $3::date[], $4::numeric[], $5::date[])",
                )
                .bind::<Array<SqlUuid>, _>(col(p, |r| r.loan_id))
                .bind::<Array<Int4>, _>(col(p, |r| r.number))
                .bind::<Array<Date>, _>(col(p, |r| r.value_date))
                .bind::<Array<Numeric>, _>(col(p, |r| r.principal))
                .bind::<Array<Date>, _>(col(p, |r| r.due_date)))
                .execute(&mut conn),
            );
        }
        out
    }
}

/// Turns the overdue spans `old` (those of the stored facts) into `new`: a loan whose spans
/// change has its stored spans replaced from the first that differs on (all of them from
/// there, so that spans written from other facts, say by hand, cannot block the new ones).
/// Returns each such loan with that date, and the new spans from there on.
fn span_changes(
    old: &[OverdueSpan],
    new: &[OverdueSpan],
) -> (Vec<(Uuid, NaiveDate)>, Vec<OverdueSpan>) {
    use std::collections::{BTreeMap, BTreeSet};
    fn by_loan(spans: &[OverdueSpan]) -> BTreeMap<Uuid, BTreeSet<&OverdueSpan>> {
        let mut m: BTreeMap<Uuid, BTreeSet<&OverdueSpan>> = BTreeMap::new();
        for s in spans {
            m.entry(s.loan_id).or_default().insert(s);
        }
        m
    }
    let (before, after) = (by_loan(old), by_loan(new));
    // A repayment usually moves only the last one or two.
    let empty = BTreeSet::new();
    let mut changed: Vec<(Uuid, NaiveDate)> = Vec::new();
    for loan in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
        let (b, a) = (
            before.get(loan).unwrap_or(&empty),
            after.get(loan).unwrap_or(&empty),
        );
        if let Some(from) = b.symmetric_difference(a).map(|s| s.starts_on).min() {
            changed.push((*loan, from));
        }
    }
    let added: Vec<OverdueSpan> = changed
        .iter()
        .flat_map(|(loan, from)| {
            after
                .get(loan)
                .into_iter()
                .flatten()
                .filter(move |s| s.starts_on >= *from)
        })
        .map(|s| (*s).clone())
        .collect();
    (changed, added)
}

/// The rows of `old` that `new` does not hold as they are (to delete), and the rows of `new`
/// that `old` does not (to insert, in key order); rows are matched by `key`.
fn changed<'a, T: PartialEq, K: std::hash::Hash + Eq + Ord>(
    old: &'a [T],
    new: &'a [T],
    key: impl Fn(&T) -> K,
) -> (Vec<&'a T>, Vec<&'a T>) {
    let mut want: std::collections::HashMap<K, &T> = new.iter().map(|r| (key(r), r)).collect();
    let mut gone = Vec::new();
    for r in old {
        let k = key(r);
        match want.get(&k) {
            Some(w) if *w == r => {
                want.remove(&k);
            }
            _ => gone.push(r),
        }
    }
    let mut added: Vec<(K, &T)> = want.into_iter().collect();
    added.sort_by(|a, b| a.0.cmp(&b.0));
    (gone, added.into_iter().map(|(_, r)| r).collect())
}

pub async fn facts_of(
    mut conn: &AsyncPgConnection,
    loan_ids: &[Uuid],
) -> QueryResult<(Vec<InstalmentFactRow>, Vec<PrincipalPaymentRow>)> {
    let facts = instalment_facts::table
        .filter(instalment_facts::loan_id.eq_any(loan_ids))
        .order((instalment_facts::loan_id, instalment_facts::number))
        .select(InstalmentFactRow::as_select())
        .load(&mut conn)
        .await?;
    let payments = principal_payments::table
        .filter(principal_payments::loan_id.eq_any(loan_ids))
        .order((
            principal_payments::loan_id,
            principal_payments::number,
            principal_payments::value_date,
        ))
        .select(PrincipalPaymentRow::as_select())
        .load(&mut conn)
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
