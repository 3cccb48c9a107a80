use crate::models::policy::PolicyRow;
use crate::schema::policies;
use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub async fn insert(conn: &mut AsyncPgConnection, row: &PolicyRow) -> QueryResult<PolicyRow> {
    diesel::insert_into(policies::table)
        .values(row)
        .returning(PolicyRow::as_returning())
        .get_result(conn)
        .await
}

/// Insert unless a policy with this code exists; `None` when it was already there.
pub async fn insert_if_absent(
    conn: &mut AsyncPgConnection,
    row: &PolicyRow,
) -> QueryResult<Option<PolicyRow>> {
    diesel::insert_into(policies::table)
        .values(row)
        .on_conflict(policies::code)
        .do_nothing()
        .returning(PolicyRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<PolicyRow>> {
    policies::table
        .find(id)
        .select(PolicyRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The policy in force on `on` for a region: the latest `effective_from <= on` among the
/// region's own policies and those of its ancestors or nationwide ones (`region_code IS NULL`),
/// the most specific region winning on the same date.
pub async fn in_force(
    conn: &mut AsyncPgConnection,
    region_chain: &[String],
    on: NaiveDate,
) -> QueryResult<Option<PolicyRow>> {
    policies::table
        .filter(policies::effective_from.le(on))
        .filter(
            policies::region_code
                .is_null()
                .or(policies::region_code.eq_any(region_chain)),
        )
        .order((
            policies::effective_from.desc(),
            policies::region_code.desc().nulls_last(),
        ))
        .select(PolicyRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<super::Page<PolicyRow>> {
    let mut q = policies::table.select(PolicyRow::as_select()).into_boxed();
    if let Some(a) = after {
        q = q.filter(policies::id.gt(a));
    }
    let rows = q
        .order(policies::id.asc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(super::Page::from_overfetch(rows, limit))
}
