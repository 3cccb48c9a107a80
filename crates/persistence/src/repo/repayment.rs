//! Disbursement, the stored schedule, repayments and reversals. The caller holds the locks
//! (fund, then loan) and owns the transaction.
use crate::models::loan::LoanRow;
use crate::models::policy::PolicyRow;
use crate::models::repayment::{AllocationRow, InstalmentRow, RepaymentRow, ReversalRow};
use crate::schema::{
    instalments, loan_extensions, loans, policies, repayment_allocations, repayment_reversals,
    repayments,
};
use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::HashMap;
use uuid::Uuid;

pub struct Disbursement<'a> {
    pub value_date: NaiveDate,
    pub maturity_date: NaiveDate,
    pub bank_account_no: &'a str,
    pub by: Uuid,
}

/// Marks an approved loan active, disbursed on `d.value_date`.
pub async fn disburse(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    d: &Disbursement<'_>,
) -> QueryResult<LoanRow> {
    diesel::update(loans::table.find(id))
        .set((
            loans::status.eq("active"),
            loans::disbursed_on.eq(d.value_date),
            loans::maturity_date.eq(d.maturity_date),
            loans::bank_account_no.eq(d.bank_account_no),
            loans::disbursed_by.eq(d.by),
            loans::updated_at.eq(diesel::dsl::now),
        ))
        .returning(LoanRow::as_returning())
        .get_result(conn)
        .await
}

/// `settled_on` Some: the loan is settled and its guarantee released on that day; None: active.
pub async fn set_settled(
    mut conn: &AsyncPgConnection,
    id: Uuid,
    settled_on: Option<NaiveDate>,
) -> QueryResult<LoanRow> {
    diesel::update(loans::table.find(id))
        .set((
            loans::status.eq(if settled_on.is_some() {
                "settled"
            } else {
                "active"
            }),
            loans::released_on.eq(settled_on),
            loans::updated_at.eq(diesel::dsl::now),
        ))
        .returning(LoanRow::as_returning())
        .get_result(&mut conn)
        .await
}

pub async fn insert_instalments(
    conn: &mut AsyncPgConnection,
    rows: &[InstalmentRow],
) -> QueryResult<usize> {
    diesel::insert_into(instalments::table)
        .values(rows)
        .execute(conn)
        .await
}

/// The loan's current schedule (after its extension, if any).
pub async fn instalments_of(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
) -> QueryResult<Vec<InstalmentRow>> {
    instalments::table
        .inner_join(loans::table)
        .filter(instalments::loan_id.eq(loan_id))
        .filter(instalments::version.eq(loans::schedule_version))
        .order(instalments::number.asc())
        .select(InstalmentRow::as_select())
        .load(conn)
        .await
}

/// A loan's repayments in booking order, each with whether it was reversed: one query.
pub async fn repayments_of(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
) -> QueryResult<Vec<(RepaymentRow, bool)>> {
    repayments::table
        .filter(repayments::loan_id.eq(loan_id))
        .order((repayments::created_at.asc(), repayments::id.asc()))
        .select((
            RepaymentRow::as_select(),
            repayments::id.eq_any(reversed_of(loan_id)),
        ))
        .load(conn)
        .await
}

/// The ids of a loan's reversed repayments, as a subquery: one index scan that PostgreSQL
/// hashes (`id IN (...)`), where a join looked each repayment up in the reversals.
fn reversed_of(
    loan_id: Uuid,
) -> diesel::dsl::Select<
    diesel::dsl::Filter<
        repayment_reversals::table,
        diesel::dsl::Eq<repayment_reversals::loan_id, Uuid>,
    >,
    repayment_reversals::repayment_id,
> {
    repayment_reversals::table
        .filter(repayment_reversals::loan_id.eq(loan_id))
        .select(repayment_reversals::repayment_id)
}

/// The loan's repayments that count (not reversed), brief: value date and amount in fen, in
/// booking order. A loan's read needs no more: decoding four NUMERIC columns per row was most
/// of the cost of reading a loan with hundreds of repayments, and the ids a quarter of the
/// bytes left.
pub async fn counting_repayments_of(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
) -> QueryResult<Vec<(NaiveDate, i64)>> {
    repayments::table
        .filter(repayments::loan_id.eq(loan_id))
        .filter(repayments::id.ne_all(reversed_of(loan_id)))
        .order((repayments::created_at.asc(), repayments::id.asc()))
        .select((
            repayments::value_date,
            diesel::dsl::sql::<diesel::sql_types::BigInt>("(repayments.amount * 100)::int8"),
        ))
        .load(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<RepaymentRow>> {
    repayments::table
        .find(id)
        .select(RepaymentRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_reference(
    conn: &mut AsyncPgConnection,
    bank_id: Uuid,
    reference: &str,
) -> QueryResult<Option<RepaymentRow>> {
    repayments::table
        .filter(repayments::bank_id.eq(bank_id))
        .filter(repayments::bank_reference.eq(reference))
        .select(RepaymentRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The bank's repayments carrying any of these references: one query.
pub async fn by_references(
    conn: &mut AsyncPgConnection,
    bank_id: Uuid,
    references: &[String],
) -> QueryResult<Vec<RepaymentRow>> {
    repayments::table
        .filter(repayments::bank_id.eq(bank_id))
        .filter(repayments::bank_reference.eq_any(references))
        .select(RepaymentRow::as_select())
        .load(conn)
        .await
}

/// Many repayments in one statement, from one array per column.
pub async fn insert_many(
    mut conn: &AsyncPgConnection,
    rows: &[RepaymentRow],
) -> QueryResult<usize> {
    use super::column as col;
    use diesel::sql_types::{Array, Date, Numeric, Text, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(0);
    }
    super::Prepared(
        diesel::sql_query(
            "INSERT INTO repayments (id, loan_id, bank_id, bank_reference, value_date, amount, \
         to_penalty, to_interest, to_principal, created_by) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::date[], \
         $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::uuid[])",
        )
        .bind::<Array<SqlUuid>, _>(col(rows, |r| r.id))
        .bind::<Array<SqlUuid>, _>(col(rows, |r| r.loan_id))
        .bind::<Array<SqlUuid>, _>(col(rows, |r| r.bank_id))
        .bind::<Array<Text>, _>(col(rows, |r| r.bank_reference.as_str()))
        .bind::<Array<Date>, _>(col(rows, |r| r.value_date))
        .bind::<Array<Numeric>, _>(col(rows, |r| r.amount))
        .bind::<Array<Numeric>, _>(col(rows, |r| r.to_penalty))
        .bind::<Array<Numeric>, _>(col(rows, |r| r.to_interest))
        .bind::<Array<Numeric>, _>(col(rows, |r| r.to_principal))
        .bind::<Array<SqlUuid>, _>(col(rows, |r| r.created_by)),
    )
    .execute(&mut conn)
    .await
}

/// Inserts the repayment unless its bank already has one with its reference (then `None`):
/// the duplicate check and the insert in one statement.
pub async fn insert_new(
    conn: &mut AsyncPgConnection,
    row: &RepaymentRow,
) -> QueryResult<Option<RepaymentRow>> {
    diesel::insert_into(repayments::table)
        .values(row)
        .on_conflict((repayments::bank_id, repayments::bank_reference))
        .do_nothing()
        .returning(RepaymentRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// What applying a repayment to a locked loan reads, in one round trip (the queries are
/// pipelined): its policy, current schedule, repayments (with the reversed flag), their
/// current allocations and the first instalment of its extension, if any.
pub struct WriteBooks {
    pub policy: Option<PolicyRow>,
    pub instalments: Vec<InstalmentRow>,
    pub repayments: Vec<(RepaymentRow, bool)>,
    /// The latest allocation row of each repayment that has one (see [`latest_allocations`]).
    pub current: Vec<AllocationRow>,
    pub first_extended: Option<i32>,
}

pub async fn books_for_write(
    mut conn: &AsyncPgConnection,
    loan_id: Uuid,
    policy_id: Uuid,
) -> QueryResult<WriteBooks> {
    let policy = policies::table
        .find(policy_id)
        .select(PolicyRow::as_select())
        .load(&mut conn);
    let instalments = instalments::table
        .inner_join(loans::table)
        .filter(instalments::loan_id.eq(loan_id))
        .filter(instalments::version.eq(loans::schedule_version))
        .order(instalments::number.asc())
        .select(InstalmentRow::as_select())
        .load(&mut conn);
    let repayments = repayments::table
        .filter(repayments::loan_id.eq(loan_id))
        .order((repayments::created_at.asc(), repayments::id.asc()))
        .select((
            RepaymentRow::as_select(),
            repayments::id.eq_any(reversed_of(loan_id)),
        ))
        .load(&mut conn);
    let current = latest_allocations(conn, std::slice::from_ref(&loan_id));
    let extension = loan_extensions::table
        .find(loan_id)
        .select(loan_extensions::first_extended)
        .load::<i32>(&mut conn);
    let (policy, instalments, repayments, current, extension) =
        futures_util::future::try_join5(policy, instalments, repayments, current, extension)
            .await?;
    Ok(WriteBooks {
        policy: policy.into_iter().next(),
        instalments,
        repayments,
        current,
        first_extended: extension.into_iter().next(),
    })
}

pub async fn insert(conn: &mut AsyncPgConnection, row: &RepaymentRow) -> QueryResult<RepaymentRow> {
    diesel::insert_into(repayments::table)
        .values(row)
        .returning(RepaymentRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn reversal_of(
    conn: &mut AsyncPgConnection,
    repayment_id: Uuid,
) -> QueryResult<Option<ReversalRow>> {
    repayment_reversals::table
        .find(repayment_id)
        .select(ReversalRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn insert_reversal(
    conn: &mut AsyncPgConnection,
    row: &ReversalRow,
) -> QueryResult<ReversalRow> {
    diesel::insert_into(repayment_reversals::table)
        .values(row)
        .returning(ReversalRow::as_returning())
        .get_result(conn)
        .await
}

/// The books of several loans at once (for a page of loans): schedules, repayments with the
/// reversed flag, and their policies; three queries whatever the number of loans.
pub struct ManyBooks {
    pub instalments: Vec<InstalmentRow>,
    pub repayments: Vec<(RepaymentRow, bool)>,
    pub policies: Vec<PolicyRow>,
}

/// [`ManyBooks`] grouped: schedules and repayments by loan (in their order), policies by id.
pub struct GroupedBooks {
    pub instalments: HashMap<Uuid, Vec<InstalmentRow>>,
    pub repayments: HashMap<Uuid, Vec<(RepaymentRow, bool)>>,
    pub policies: HashMap<Uuid, PolicyRow>,
}

impl ManyBooks {
    pub fn grouped(self) -> GroupedBooks {
        let mut instalments: HashMap<Uuid, Vec<InstalmentRow>> = HashMap::new();
        for i in self.instalments {
            instalments.entry(i.loan_id).or_default().push(i);
        }
        let mut repayments: HashMap<Uuid, Vec<(RepaymentRow, bool)>> = HashMap::new();
        for r in self.repayments {
            repayments.entry(r.0.loan_id).or_default().push(r);
        }
        GroupedBooks {
            instalments,
            repayments,
            policies: self.policies.into_iter().map(|p| (p.id, p)).collect(),
        }
    }
}

pub async fn books_of_many(
    conn: &mut AsyncPgConnection,
    loan_ids: &[Uuid],
    policy_ids: &[Uuid],
) -> QueryResult<ManyBooks> {
    let instalments = instalments::table
        .inner_join(loans::table)
        .filter(instalments::loan_id.eq_any(loan_ids))
        .filter(instalments::version.eq(loans::schedule_version))
        .order((instalments::loan_id.asc(), instalments::number.asc()))
        .select(InstalmentRow::as_select())
        .load(conn)
        .await?;
    let repayments = repayments::table
        .filter(repayments::loan_id.eq_any(loan_ids))
        .order((repayments::created_at.asc(), repayments::id.asc()))
        .select((
            RepaymentRow::as_select(),
            repayments::id.eq_any(
                repayment_reversals::table
                    .filter(repayment_reversals::loan_id.eq_any(loan_ids))
                    .select(repayment_reversals::repayment_id),
            ),
        ))
        .load(conn)
        .await?;
    let policies = policies::table
        .filter(policies::id.eq_any(policy_ids))
        .select(PolicyRow::as_select())
        .load(conn)
        .await?;
    Ok(ManyBooks {
        instalments,
        repayments,
        policies,
    })
}

/// The current allocation of each repayment of the loans, one query: its latest allocation
/// row, or the allocation it was booked with when it has none (000024). The rule of the view
/// `repayment_allocations_current`, with the loans' filter inside: PostgreSQL does not push a
/// filter on `loan_id` through the view's `DISTINCT ON (repayment_id)`.
pub async fn current_allocations(
    mut conn: &AsyncPgConnection,
    loan_ids: &[Uuid],
) -> QueryResult<Vec<AllocationRow>> {
    use diesel::sql_types::{Array, Uuid as SqlUuid};
    super::Prepared(
        diesel::sql_query(
            "SELECT DISTINCT ON (repayment_id) repayment_id, loan_id, to_penalty, to_interest, \
             to_principal \
             FROM (SELECT id AS repayment_id, loan_id, to_penalty, to_interest, to_principal, \
                          0::int8 AS seq \
                   FROM repayments WHERE loan_id = ANY($1) \
                   UNION ALL \
                   SELECT repayment_id, loan_id, to_penalty, to_interest, to_principal, id \
                   FROM repayment_allocations WHERE loan_id = ANY($1)) c \
             ORDER BY repayment_id, seq DESC",
        )
        .bind::<Array<SqlUuid>, _>(loan_ids),
    )
    .load(&mut conn)
    .await
}

/// The latest allocation row of each repayment of the loans that has one: one query. A
/// repayment without one has the allocation it was booked with (see [`current_allocations`]).
pub async fn latest_allocations(
    mut conn: &AsyncPgConnection,
    loan_ids: &[Uuid],
) -> QueryResult<Vec<AllocationRow>> {
    repayment_allocations::table
        .filter(repayment_allocations::loan_id.eq_any(loan_ids))
        .distinct_on(repayment_allocations::repayment_id)
        .order((
            repayment_allocations::repayment_id.asc(),
            repayment_allocations::id.desc(),
        ))
        .select(AllocationRow::as_select())
        .load(&mut conn)
        .await
}

pub async fn append_allocations(
    mut conn: &AsyncPgConnection,
    rows: &[AllocationRow],
) -> QueryResult<usize> {
    use super::column as col;
    use diesel::sql_types::{Array, Numeric, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(0);
    }
    super::Prepared(
        diesel::sql_query(
            "INSERT INTO repayment_allocations (repayment_id, loan_id, to_penalty, to_interest, \
         to_principal) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::numeric[], $4::numeric[], $5::numeric[])",
        )
        .bind::<Array<SqlUuid>, _>(col(rows, |r| r.repayment_id))
        .bind::<Array<SqlUuid>, _>(col(rows, |r| r.loan_id))
        .bind::<Array<Numeric>, _>(col(rows, |r| r.to_penalty))
        .bind::<Array<Numeric>, _>(col(rows, |r| r.to_interest))
        .bind::<Array<Numeric>, _>(col(rows, |r| r.to_principal)),
    )
    .execute(&mut conn)
    .await
}
