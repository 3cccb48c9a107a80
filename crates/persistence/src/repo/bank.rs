use crate::models::bank::{BankRow, NewBank};
use crate::schema::banks;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewBank<'_>) -> QueryResult<BankRow> {
    diesel::insert_into(banks::table)
        .values(new)
        .returning(BankRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<BankRow>> {
    banks::table
        .find(id)
        .select(BankRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_code(
    conn: &mut AsyncPgConnection,
    code: &str,
) -> QueryResult<Option<BankRow>> {
    banks::table
        .filter(banks::code.eq(code))
        .select(BankRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<super::Page<BankRow>> {
    let mut q = banks::table.select(BankRow::as_select()).into_boxed();
    if let Some(a) = after {
        q = q.filter(banks::id.gt(a));
    }
    let rows = q.order(banks::id.asc()).limit(limit + 1).load(conn).await?;
    Ok(super::Page::from_overfetch(rows, limit))
}
