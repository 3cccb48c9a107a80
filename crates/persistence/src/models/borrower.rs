use crate::schema::borrowers;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A borrower as stored: the national id and phone only encrypted, plus a keyed hash and a
/// masked form of the id.
#[derive(Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = borrowers, check_for_backend(diesel::pg::Pg))]
pub struct BorrowerRow {
    pub id: Uuid,
    pub centre_id: Uuid,
    pub kind: String,
    pub category: String,
    pub name: String,
    pub national_id_enc: Option<Vec<u8>>,
    pub national_id_hmac: Option<Vec<u8>>,
    pub national_id_masked: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub phone_enc: Option<Vec<u8>>,
    pub employment_certificate_no: Option<String>,
    pub credit_community_id: Option<Uuid>,
    pub member_count: i32,
    pub enterprise_registration_no: Option<String>,
    pub employees: Option<i32>,
    pub eligible_employees: Option<i32>,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
}

// Personal data stays out of logs.
impl std::fmt::Debug for BorrowerRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BorrowerRow")
            .field("id", &self.id)
            .field("centre_id", &self.centre_id)
            .field("kind", &self.kind)
            .field("category", &self.category)
            .field("national_id_masked", &self.national_id_masked)
            .finish_non_exhaustive()
    }
}
