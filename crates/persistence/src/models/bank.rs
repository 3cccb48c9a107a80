use crate::schema::banks;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = banks, check_for_backend(diesel::pg::Pg))]
pub struct BankRow {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = banks)]
pub struct NewBank<'a> {
    pub id: Uuid,
    pub code: &'a str,
    pub name: &'a str,
}
