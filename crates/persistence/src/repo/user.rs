use crate::models::user::{NewUser, UserRow};
use crate::schema::users;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewUser<'_>) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_username(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn).await
}

pub async fn set_password(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    hash: &str,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(hash),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
}

pub async fn set_active(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    active: bool,
) -> QueryResult<Option<UserRow>> {
    diesel::update(users::table.find(id))
        .set((
            users::active.eq(active),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<super::Page<UserRow>> {
    let mut q = users::table.select(UserRow::as_select()).into_boxed();
    if let Some(a) = after {
        q = q.filter(users::id.gt(a));
    }
    let rows = q.order(users::id.asc()).limit(limit + 1).load(conn).await?;
    Ok(super::Page::from_overfetch(rows, limit))
}

/// Whether the user exists and is active.
pub async fn is_active(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    users::table
        .find(id)
        .select(users::active)
        .first::<bool>(conn)
        .await
        .optional()
        .map(|a| a.unwrap_or(false))
}
