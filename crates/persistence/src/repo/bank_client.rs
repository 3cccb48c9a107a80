use crate::models::bank_client::{BankClientRow, NewBankClient};
use crate::schema::bank_clients;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewBankClient<'_>,
) -> QueryResult<BankClientRow> {
    diesel::insert_into(bank_clients::table)
        .values(new)
        .returning(BankClientRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find_by_client_id(
    conn: &mut AsyncPgConnection,
    client_id: &str,
) -> QueryResult<Option<BankClientRow>> {
    bank_clients::table
        .filter(bank_clients::client_id.eq(client_id))
        .select(BankClientRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    after: Option<uuid::Uuid>,
    limit: i64,
) -> QueryResult<super::Page<BankClientRow>> {
    let mut q = bank_clients::table
        .select(BankClientRow::as_select())
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(bank_clients::id.gt(a));
    }
    let rows = q
        .order(bank_clients::id.asc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(super::Page::from_overfetch(rows, limit))
}

pub async fn set_active(
    conn: &mut AsyncPgConnection,
    id: uuid::Uuid,
    active: bool,
) -> QueryResult<Option<BankClientRow>> {
    diesel::update(bank_clients::table.find(id))
        .set((
            bank_clients::active.eq(active),
            bank_clients::updated_at.eq(diesel::dsl::now),
        ))
        .returning(BankClientRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Whether the client exists and is active.
pub async fn is_active(conn: &mut AsyncPgConnection, id: uuid::Uuid) -> QueryResult<bool> {
    bank_clients::table
        .find(id)
        .select(bank_clients::active)
        .first::<bool>(conn)
        .await
        .optional()
        .map(|a| a.unwrap_or(false))
}
