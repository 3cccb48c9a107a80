use crate::models::credit_community::CreditCommunityRow;
use crate::schema::credit_communities;
use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub async fn find(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<CreditCommunityRow>> {
    credit_communities::table
        .find(id)
        .select(CreditCommunityRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The community, locked until the end of the transaction (`FOR UPDATE`): a revocation reads,
/// checks and writes it without a second revocation slipping in between.
pub async fn find_for_update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<CreditCommunityRow>> {
    credit_communities::table
        .find(id)
        .select(CreditCommunityRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Inserts a certified community; `created_at` is the database's.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &CreditCommunityRow,
) -> QueryResult<CreditCommunityRow> {
    diesel::insert_into(credit_communities::table)
        .values(new)
        .returning(CreditCommunityRow::as_returning())
        .get_result(conn)
        .await
}

/// Sets the one revocation; `None` if the community does not exist or is already revoked.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    revoked_on: NaiveDate,
    reason: &str,
) -> QueryResult<Option<CreditCommunityRow>> {
    diesel::update(
        credit_communities::table
            .filter(credit_communities::id.eq(id))
            .filter(credit_communities::revoked_on.is_null()),
    )
    .set((
        credit_communities::revoked_on.eq(revoked_on),
        credit_communities::revocation_reason.eq(reason),
    ))
    .returning(CreditCommunityRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// What a caller may list, and which communities it asked for.
#[derive(Debug, Clone, Default)]
pub struct CommunityFilter {
    /// One centre's communities (clerks).
    pub centre_id: Option<Uuid>,
    /// Communities whose region lies in this subtree (supervisors).
    pub region_prefix: Option<String>,
    /// Only those certified on this date: certified on or before it and not revoked by then.
    pub active_on: Option<NaiveDate>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &CommunityFilter,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<super::Page<CreditCommunityRow>> {
    let mut q = credit_communities::table
        .select(CreditCommunityRow::as_select())
        .into_boxed();
    if let Some(c) = filter.centre_id {
        q = q.filter(credit_communities::centre_id.eq(c));
    }
    if let Some(p) = &filter.region_prefix {
        q = q.filter(credit_communities::region_code.like(super::subtree_pattern(p)));
    }
    if let Some(d) = filter.active_on {
        // The same rule as `CreditCommunityRow::certified_on_date`.
        q = q.filter(credit_communities::certified_on.le(d)).filter(
            credit_communities::revoked_on
                .is_null()
                .or(credit_communities::revoked_on.gt(d)),
        );
    }
    if let Some(a) = after {
        q = q.filter(credit_communities::id.gt(a));
    }
    let rows = q
        .order(credit_communities::id.asc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(super::Page::from_overfetch(rows, limit))
}
