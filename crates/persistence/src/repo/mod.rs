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
