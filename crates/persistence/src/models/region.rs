use crate::schema::regions;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = regions, primary_key(code), check_for_backend(diesel::pg::Pg))]
pub struct RegionRow {
    pub code: String,
    pub name: String,
    pub parent_code: Option<String>,
    pub level: i16,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = regions)]
pub struct NewRegion<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub parent_code: Option<&'a str>,
}
