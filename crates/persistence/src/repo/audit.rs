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

/// Append many events, in their order, in one statement from one array per column.
pub async fn record_many(
    mut conn: &AsyncPgConnection,
    events: &[NewAuditEvent],
) -> QueryResult<()> {
    use super::column as col;
    use diesel::sql_types::{Array, Jsonb, Nullable, Text, Uuid as SqlUuid};
    if events.is_empty() {
        return Ok(());
    }
    super::Prepared(
        diesel::sql_query(
            "INSERT INTO audit_events (actor_kind, actor_id, actor_name, actor_role, action, \
         entity_type, entity_id, region_code, request_id, detail) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[])",
        )
        .bind::<Array<Text>, _>(col(events, |e| e.actor_kind.as_str()))
        .bind::<Array<Nullable<SqlUuid>>, _>(col(events, |e| e.actor_id))
        .bind::<Array<Text>, _>(col(events, |e| e.actor_name.as_str()))
        .bind::<Array<Text>, _>(col(events, |e| e.actor_role.as_str()))
        .bind::<Array<Text>, _>(col(events, |e| e.action.as_str()))
        .bind::<Array<Text>, _>(col(events, |e| e.entity_type.as_str()))
        .bind::<Array<Text>, _>(col(events, |e| e.entity_id.as_str()))
        .bind::<Array<Nullable<Text>>, _>(col(events, |e| e.region_code.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(col(events, |e| e.request_id.as_deref()))
        .bind::<Array<Jsonb>, _>(col(events, |e| &e.detail)),
    )
    .execute(&mut conn)
    .await?;
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
