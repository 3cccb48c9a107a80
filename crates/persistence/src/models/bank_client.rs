use crate::schema::bank_clients;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = bank_clients, check_for_backend(diesel::pg::Pg))]
pub struct BankClientRow {
    pub id: Uuid,
    pub client_id: String,
    pub secret_hash: String,
    pub bank_id: Uuid,
    pub name: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for BankClientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankClientRow")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("bank_id", &self.bank_id)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = bank_clients)]
pub struct NewBankClient<'a> {
    pub id: Uuid,
    pub client_id: &'a str,
    pub secret_hash: &'a str,
    pub bank_id: Uuid,
    pub name: &'a str,
}
