use crate::schema::centres;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = centres, check_for_backend(diesel::pg::Pg))]
pub struct CentreRow {
    pub id: Uuid,
    pub name: String,
    pub region_code: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = centres)]
pub struct NewCentre<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub region_code: &'a str,
}
