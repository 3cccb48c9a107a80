use crate::models::loan::{LoanRow, UNSETTLED};
use crate::schema::{centres, loans};
use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub async fn insert(conn: &mut AsyncPgConnection, row: &LoanRow) -> QueryResult<LoanRow> {
    diesel::insert_into(loans::table)
        .values(row)
        .returning(LoanRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<LoanRow>> {
    loans::table
        .find(id)
        .select(LoanRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<LoanRow>> {
    loans::table
        .find(id)
        .select(LoanRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Locks the loans in id order (so that two writers locking overlapping sets cannot
/// deadlock) and returns them: one query.
pub async fn lock_many(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<LoanRow>> {
    loans::table
        .filter(loans::id.eq_any(ids))
        .order(loans::id.asc())
        .select(LoanRow::as_select())
        .for_update()
        .load(conn)
        .await
}

/// Does this person hold an unsettled guaranteed loan (other than `except`)?
pub async fn person_has_unsettled(
    conn: &mut AsyncPgConnection,
    person_hmac: &[u8],
    except: Option<Uuid>,
) -> QueryResult<bool> {
    let mut q = loans::table
        .filter(loans::person_hmac.eq(person_hmac))
        .filter(loans::status.eq_any(UNSETTLED))
        .select(loans::id)
        .into_boxed();
    if let Some(e) = except {
        q = q.filter(loans::id.ne(e));
    }
    Ok(q.first::<Uuid>(conn).await.optional()?.is_some())
}

pub struct Approval {
    pub decided_on: NaiveDate,
    pub decided_by: Uuid,
    pub reason: Option<String>,
}

pub async fn approve(conn: &mut AsyncPgConnection, id: Uuid, a: &Approval) -> QueryResult<LoanRow> {
    diesel::update(loans::table.find(id))
        .set((
            loans::status.eq("approved"),
            loans::decided_on.eq(a.decided_on),
            loans::decided_by.eq(a.decided_by),
            loans::decision_reason.eq(&a.reason),
            loans::approved_on.eq(a.decided_on),
            loans::updated_at.eq(diesel::dsl::now),
        ))
        .returning(LoanRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn reject(conn: &mut AsyncPgConnection, id: Uuid, a: &Approval) -> QueryResult<LoanRow> {
    diesel::update(loans::table.find(id))
        .set((
            loans::status.eq("rejected"),
            loans::decided_on.eq(a.decided_on),
            loans::decided_by.eq(a.decided_by),
            loans::decision_reason.eq(&a.reason),
            loans::updated_at.eq(diesel::dsl::now),
        ))
        .returning(LoanRow::as_returning())
        .get_result(conn)
        .await
}

/// Cancels; `release` when the loan had been approved and gives its headroom back.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    on: NaiveDate,
    by: Uuid,
    reason: &str,
    release: bool,
) -> QueryResult<LoanRow> {
    diesel::update(loans::table.find(id))
        .set((
            loans::status.eq("cancelled"),
            loans::cancelled_on.eq(on),
            loans::cancelled_by.eq(by),
            loans::decision_reason.eq(reason),
            loans::released_on.eq(release.then_some(on)),
            loans::updated_at.eq(diesel::dsl::now),
        ))
        .returning(LoanRow::as_returning())
        .get_result(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct LoanFilter {
    pub status: Option<String>,
    pub bank_id: Option<Uuid>,
    pub centre_id: Option<Uuid>,
    pub borrower_id: Option<Uuid>,
    pub fund_id: Option<Uuid>,
    /// GB/T 2260 subtree of the loan's centre.
    pub region_prefix: Option<String>,
    pub micro_profit: Option<bool>,
    /// Disbursed loans whose life (disbursement to maturity) meets `[from, to]`.
    pub alive_between: Option<(NaiveDate, NaiveDate)>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    f: &LoanFilter,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<super::Page<LoanRow>> {
    let mut q = loans::table
        .inner_join(centres::table.on(centres::id.eq(loans::centre_id)))
        .select(LoanRow::as_select())
        .into_boxed();
    if let Some(s) = &f.status {
        q = q.filter(loans::status.eq(s.clone()));
    }
    if let Some(b) = f.bank_id {
        q = q.filter(loans::bank_id.eq(b));
    }
    if let Some(c) = f.centre_id {
        q = q.filter(loans::centre_id.eq(c));
    }
    if let Some(b) = f.borrower_id {
        q = q.filter(loans::borrower_id.eq(b));
    }
    if let Some(fu) = f.fund_id {
        q = q.filter(loans::fund_id.eq(fu));
    }
    if let Some(p) = &f.region_prefix {
        q = q.filter(centres::region_code.like(super::subtree_pattern(p)));
    }
    if let Some(m) = f.micro_profit {
        q = q.filter(loans::micro_profit.eq(m));
    }
    if let Some((from, to)) = f.alive_between {
        q = q
            .filter(loans::disbursed_on.le(to))
            .filter(loans::maturity_date.ge(from));
    }
    if let Some(a) = after {
        q = q.filter(loans::id.gt(a));
    }
    let rows = q.order(loans::id.asc()).limit(limit + 1).load(conn).await?;
    Ok(super::Page::from_overfetch(rows, limit))
}
