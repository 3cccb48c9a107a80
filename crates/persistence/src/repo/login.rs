//! Login attempts, counted per account and per address over a window. An attempt counts as
//! failed until it is marked as succeeded.
use crate::schema::login_attempts;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Serialises the check-and-count of one account (or address) for the rest of the transaction.
pub async fn lock_key(conn: &mut AsyncPgConnection, account: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind::<Text, _>(account)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn begin_attempt(
    conn: &mut AsyncPgConnection,
    account: &str,
    address: &str,
) -> QueryResult<i64> {
    diesel::insert_into(login_attempts::table)
        .values((
            login_attempts::account.eq(account),
            login_attempts::address.eq(address),
        ))
        .returning(login_attempts::id)
        .get_result(conn)
        .await
}

pub async fn mark_succeeded(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<()> {
    diesel::update(login_attempts::table.find(id))
        .set(login_attempts::succeeded.eq(true))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The time of the `limit`-th most recent unsuccessful attempt after `since` for the account
/// (`by_address`: for the address), or `None` when there are fewer: a lock lasts until that
/// attempt leaves the window.
pub async fn nth_recent_failure(
    conn: &mut AsyncPgConnection,
    key: &str,
    by_address: bool,
    since: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Option<DateTime<Utc>>> {
    let mut q = login_attempts::table
        .filter(login_attempts::at.gt(since))
        .filter(login_attempts::succeeded.eq(false))
        .into_boxed();
    q = if by_address {
        q.filter(login_attempts::address.eq(key.to_owned()))
    } else {
        q.filter(login_attempts::account.eq(key.to_owned()))
    };
    q.order(login_attempts::at.desc())
        .offset(limit - 1)
        .select(login_attempts::at)
        .first(conn)
        .await
        .optional()
}
