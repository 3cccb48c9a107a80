use crate::models::region::{NewRegion, RegionRow};
use crate::schema::regions;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewRegion<'_>) -> QueryResult<RegionRow> {
    diesel::insert_into(regions::table)
        .values(new)
        .returning(RegionRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, code: &str) -> QueryResult<Option<RegionRow>> {
    regions::table
        .find(code)
        .select(RegionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Regions in code order, optionally only a subtree (`prefix` from `RegionCode::subtree_prefix`).
pub async fn list(
    conn: &mut AsyncPgConnection,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<super::Page<RegionRow>> {
    let mut q = regions::table.select(RegionRow::as_select()).into_boxed();
    if let Some(p) = prefix {
        q = q.filter(regions::code.like(super::subtree_pattern(p)));
    }
    if let Some(a) = after {
        q = q.filter(regions::code.gt(a.to_owned()));
    }
    let rows = q
        .order(regions::code.asc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(super::Page::from_overfetch(rows, limit))
}

/// Codes of the provinces (level 1).
pub async fn provinces(conn: &mut AsyncPgConnection) -> QueryResult<Vec<String>> {
    regions::table
        .filter(regions::level.eq(1_i16))
        .select(regions::code)
        .order(regions::code)
        .load(conn)
        .await
}
