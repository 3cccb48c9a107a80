//! The connection pool: deadpool over diesel-async's `AsyncPgConnection`.

use std::time::Duration;

use anyhow::Context as _;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;

pub type DbPool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
pub type DbConn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

/// The runtime that drives the pool's connections. A connection's socket is driven by a task
/// spawned on the runtime it was opened on. Opened on an actix worker, it died with that worker:
/// at a graceful shutdown the idle worker stops first, and a request still running on the other
/// worker with one of its connections answered 503. One thread suffices: it only moves bytes.
fn connection_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("danbao-db-io")
            .enable_all()
            .build()
            .expect("cannot start the database connections' runtime")
    })
}

/// Builds a pool of at most `max_size` connections to `url` (a `postgres://` URL or a libpq
/// key/value string). Connections are opened lazily, so this succeeds even when the server
/// is down; `pool.get()` then fails after `acquire_timeout` instead of hanging, whether it
/// waits for a free connection, opens a new one or checks an idle one.
pub fn build_pool(url: &str, max_size: usize, acquire_timeout: Duration) -> anyhow::Result<DbPool> {
    build_pool_with(url, max_size, acquire_timeout, None)
}

/// [`build_pool`], and each connection gets `statement_timeout`: no query runs longer, it is
/// cancelled with SQLSTATE 57014 (a connection that a stopped request left inside a
/// transaction is not reused: deadpool's recycle check drops it, which ends the transaction).
pub fn build_pool_with(
    url: &str,
    max_size: usize,
    acquire_timeout: Duration,
    statement_timeout: Option<Duration>,
) -> anyhow::Result<DbPool> {
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    let setup =
        statement_timeout.map(|t| format!("SET statement_timeout = {}", t.as_millis().max(1)));
    config.custom_setup = Box::new(move |url| {
        let (url, setup) = (url.to_owned(), setup.clone());
        async move {
            // Opened on the connection runtime, so that its socket is driven there.
            connection_runtime()
                .spawn(async move {
                    let mut conn = AsyncPgConnection::establish(&url).await?;
                    if let Some(setup) = setup {
                        conn.batch_execute(&setup)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    }
                    Ok(conn)
                })
                .await
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
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
