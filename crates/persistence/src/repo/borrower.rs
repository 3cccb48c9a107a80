use crate::models::borrower::BorrowerRow;
use crate::schema::{borrowers, centres};
use diesel::prelude::*;
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The unique constraint on the keyed hash of the national id: one borrower per person.
pub const NATIONAL_ID_UNIQUE: &str = "borrowers_national_id_hmac_key";

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<BorrowerRow>> {
    borrowers::table
        .find(id)
        .select(BorrowerRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A borrower with the region code of its centre (what supervisors' scope is checked against).
pub async fn find_placed(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(BorrowerRow, String)>> {
    borrowers::table
        .inner_join(centres::table)
        .filter(borrowers::id.eq(id))
        .select((BorrowerRow::as_select(), centres::region_code))
        .first(conn)
        .await
        .optional()
}

/// The borrower registered with this national id (by its keyed hash), with its centre's region.
pub async fn find_by_national_id_hmac(
    conn: &mut AsyncPgConnection,
    hmac: &[u8],
) -> QueryResult<Option<(BorrowerRow, String)>> {
    borrowers::table
        .inner_join(centres::table)
        .filter(borrowers::national_id_hmac.eq(hmac))
        .select((BorrowerRow::as_select(), centres::region_code))
        .first(conn)
        .await
        .optional()
}

/// Inserts a borrower; `created_at` is the database's.
pub async fn insert(conn: &mut AsyncPgConnection, new: &BorrowerRow) -> QueryResult<BorrowerRow> {
    diesel::insert_into(borrowers::table)
        .values(new)
        .returning(BorrowerRow::as_returning())
        .get_result(conn)
        .await
}

/// What a caller may list, and which borrowers it asked for.
#[derive(Debug, Clone, Default)]
pub struct BorrowerFilter {
    /// One centre's borrowers (clerks).
    pub centre_id: Option<Uuid>,
    /// Borrowers of centres whose region lies in this subtree (supervisors).
    pub region_prefix: Option<String>,
    /// The borrower with this keyed hash of a national id.
    pub national_id_hmac: Option<Vec<u8>>,
}

/// Borrowers with their centre's region code, in id order.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &BorrowerFilter,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<super::Page<(BorrowerRow, String)>> {
    let mut q = borrowers::table
        .inner_join(centres::table)
        .select((BorrowerRow::as_select(), centres::region_code))
        .into_boxed();
    if let Some(c) = filter.centre_id {
        q = q.filter(borrowers::centre_id.eq(c));
    }
    if let Some(p) = &filter.region_prefix {
        q = q.filter(centres::region_code.like(super::subtree_pattern(p)));
    }
    if let Some(h) = &filter.national_id_hmac {
        q = q.filter(borrowers::national_id_hmac.eq(h.clone()));
    }
    if let Some(a) = after {
        q = q.filter(borrowers::id.gt(a));
    }
    let rows = q
        .order(borrowers::id.asc())
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(super::Page::from_overfetch(rows, limit))
}

/// `(id, category)` of each of the borrowers: one query.
pub async fn categories_of(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<(Uuid, String)>> {
    borrowers::table
        .filter(borrowers::id.eq_any(ids))
        .select((borrowers::id, borrowers::category))
        .load(conn)
        .await
}
