use crate::schema::{fund_ledger_entries, funds};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = funds, check_for_backend(diesel::pg::Pg))]
pub struct FundRow {
    pub id: Uuid,
    pub centre_id: Uuid,
    pub name: String,
    pub bank_account: Option<String>,
    pub balance: Decimal,
    pub outstanding_guaranteed: Decimal,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = funds)]
pub struct NewFund<'a> {
    pub id: Uuid,
    pub centre_id: Uuid,
    pub name: &'a str,
    pub bank_account: Option<&'a str>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = fund_ledger_entries, check_for_backend(diesel::pg::Pg))]
pub struct LedgerEntryRow {
    pub id: i64,
    pub fund_id: Uuid,
    pub value_date: NaiveDate,
    pub kind: String,
    pub amount: Decimal,
    pub source: Option<String>,
    pub loan_id: Option<Uuid>,
    pub reference: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = fund_ledger_entries)]
pub struct NewLedgerEntry {
    pub fund_id: Uuid,
    pub value_date: NaiveDate,
    pub kind: String,
    pub amount: Decimal,
    pub source: Option<String>,
    pub loan_id: Option<Uuid>,
    pub reference: Option<String>,
    pub created_by: Option<Uuid>,
}
