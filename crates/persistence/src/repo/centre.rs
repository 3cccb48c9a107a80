use crate::models::centre::{CentreRow, NewCentre};
use crate::schema::centres;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewCentre<'_>) -> QueryResult<CentreRow> {
    diesel::insert_into(centres::table)
        .values(new)
        .returning(CentreRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<CentreRow>> {
    centres::table
        .find(id)
        .select(CentreRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// What a caller may list: everything, one centre, or a region's subtree.
#[derive(Debug, Clone, Default)]
pub struct CentreFilter {
    pub only_id: Option<Uuid>,
    pub region_prefix: Option<String>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &CentreFilter,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<super::Page<CentreRow>> {
    let mut q = centres::table.select(CentreRow::as_select()).into_boxed();
    if let Some(id) = filter.only_id {
        q = q.filter(centres::id.eq(id));
    }
    if let Some(p) = &filter.region_prefix {
        q = q.filter(centres::region_code.like(super::subtree_pattern(p)));
    }
    if let Some(a) = after {
        q = q.filter(centres::id.gt(a));
    }
    let rows = q
        .order(centres::id.asc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(super::Page::from_overfetch(rows, limit))
}
