use crate::models::audit_event::{AuditEventRow, NewAuditEvent};
use crate::schema::audit_events;
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Append one event. Call it inside the transaction of the change it describes. (A shared
/// connection: it can be pipelined with the change's other writes.)
pub async fn record(mut conn: &AsyncPgConnection, event: &NewAuditEvent) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values(event)
        .execute(&mut conn)
        .await
        .map(|_| ())
}

/// Append many events, in their order, in as few statements as the bind limit allows.
pub async fn record_many(
    conn: &mut AsyncPgConnection,
    events: &[NewAuditEvent],
) -> QueryResult<()> {
    for part in events.chunks(super::repayment::rows_per_insert(10)) {
        diesel::insert_into(audit_events::table)
            .values(part)
            .execute(conn)
            .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events touching this region's subtree (supervisors).
    pub region_prefix: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
}

/// Newest first; `before` is the id of the last event of the previous page.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<super::Page<AuditEventRow>> {
    let mut q = audit_events::table
        .select(AuditEventRow::as_select())
        .into_boxed();
    if let Some(p) = &filter.region_prefix {
        q = q.filter(audit_events::region_code.like(super::subtree_pattern(p)));
    }
    if let Some(t) = &filter.entity_type {
        q = q.filter(audit_events::entity_type.eq(t.clone()));
    }
    if let Some(e) = &filter.entity_id {
        q = q.filter(audit_events::entity_id.eq(e.clone()));
    }
    if let Some(b) = before {
        q = q.filter(audit_events::id.lt(b));
    }
    let rows = q
        .order(audit_events::id.desc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(super::Page::from_overfetch(rows, limit))
}
