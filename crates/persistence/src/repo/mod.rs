//! Repository functions: one module per aggregate. They take a connection (the caller owns
//! the transaction) and return `QueryResult`; mapping to HTTP answers is the API's business.
pub mod audit;
pub mod bank;
pub mod bank_client;
pub mod borrower;
pub mod centre;
pub mod compensation;
pub mod credit_community;
pub mod fund;
pub mod idempotency;
pub mod loan;
pub mod login;
pub mod policy;
pub mod region;
pub mod repayment;
pub mod repayment_batch;
pub mod stats;
pub mod user;

/// Rows of one page plus whether more follow. Lists fetch `limit + 1` rows to know it.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    pub fn from_overfetch(mut rows: Vec<T>, limit: i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Page {
            items: rows,
            has_more,
        }
    }
}

/// `LIKE` pattern of a region and everything below it, from its GB/T 2260 prefix.
pub fn subtree_pattern(prefix: &str) -> String {
    format!("{prefix}%")
}

/// One column of `rows`, to bind as an array: `INSERT … SELECT * FROM unnest($1::uuid[], …)`
/// has the same text for any number of rows, so it is prepared once where a VALUES list is
/// parsed and planned again for every size.
pub(crate) fn column<'a, R, T>(rows: &'a [R], f: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// A raw SQL statement whose text never changes (its values are all bound): kept prepared
/// on the connection. diesel prepares every `sql_query` again each time, since its text
/// could be anything, and holds the connection's statement cache while it waits for the
/// parse: a pipeline of such statements went out one round trip at a time, and only while
/// the caller polled it.
pub(crate) struct Prepared<T>(pub T);

impl<T: diesel::query_builder::QueryFragment<diesel::pg::Pg>>
    diesel::query_builder::QueryFragment<diesel::pg::Pg> for Prepared<T>
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &diesel::pg::Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<T> diesel::query_builder::QueryId for Prepared<T> {
    type QueryId = ();
    // No static id: the cache is keyed by the statement's text and bind types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T> diesel::query_builder::Query for Prepared<T>
where
    T: diesel::query_builder::Query,
{
    type SqlType = T::SqlType;
}
