use crate::schema::credit_communities;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = credit_communities, check_for_backend(diesel::pg::Pg))]
pub struct CreditCommunityRow {
    pub id: Uuid,
    pub centre_id: Uuid,
    pub region_code: String,
    pub name: String,
    pub certified_on: NaiveDate,
    pub revoked_on: Option<NaiveDate>,
    pub revocation_reason: Option<String>,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
}

impl CreditCommunityRow {
    /// Certified on `date`: certified on or before it, and not revoked by then.
    pub fn certified_on_date(&self, date: NaiveDate) -> bool {
        self.certified_on <= date && self.revoked_on.is_none_or(|r| r > date)
    }
}
