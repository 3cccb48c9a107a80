//! The connection pool: deadpool over diesel-async's `AsyncPgConnection`.

use std::time::Duration;

use anyhow::Context as _;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::AsyncPgConnection;

pub type DbPool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
pub type DbConn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

/// Builds a pool of at most `max_size` connections to `url` (a `postgres://` URL or a libpq
/// key/value string). Connections are opened lazily, so this succeeds even when the server
/// is down; `pool.get()` then fails after `acquire_timeout` instead of hanging, whether it
/// waits for a free connection, opens a new one or checks an idle one.
pub fn build_pool(url: &str, max_size: usize, acquire_timeout: Duration) -> anyhow::Result<DbPool> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    DbPool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(acquire_timeout))
        .recycle_timeout(Some(acquire_timeout))
        // deadpool refuses timeouts without a runtime to measure them.
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("could not build the database connection pool")
}
