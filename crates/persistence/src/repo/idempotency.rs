use crate::schema::idempotency_keys;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys, check_for_backend(diesel::pg::Pg))]
pub struct IdempotencyRow {
    pub principal_id: Uuid,
    pub route: String,
    pub key: String,
    pub fingerprint: Vec<u8>,
    pub response_status: i16,
    pub response_body: serde_json::Value,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Tries to take a transaction-scoped advisory lock on a key; `false` when another request
/// with the same key holds it (still in flight).
pub async fn try_lock(conn: &mut AsyncPgConnection, lock_id: i64) -> QueryResult<bool> {
    diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<BigInt, _>(lock_id)
        .get_result::<Locked>(conn)
        .await
        .map(|l| l.locked)
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    principal_id: Uuid,
    route: &str,
    key: &str,
) -> QueryResult<Option<IdempotencyRow>> {
    idempotency_keys::table
        .find((principal_id, route, key))
        .select(IdempotencyRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn insert(conn: &mut AsyncPgConnection, row: &IdempotencyRow) -> QueryResult<()> {
    diesel::insert_into(idempotency_keys::table)
        .values(row)
        .execute(conn)
        .await
        .map(|_| ())
}
