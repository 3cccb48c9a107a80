//! Schema migrations: the SQL files under `migrations/`, embedded into the binary.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context as _};
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel_async::async_connection_wrapper::{AsyncConnectionWrapper, BlockOn};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use sha2::{Digest, Sha256};

/// Note: cargo rebuilds when an embedded file changes, but not when a new migration
/// directory appears; a `build.rs` printing `cargo:rerun-if-changed=../../migrations`
/// takes care of that.
pub const MIGRATIONS: EmbeddedMigrations = diesel_migrations::embed_migrations!("../../migrations");

/// Where the embedded migrations came from, for [`migrations_fingerprint`].
pub(crate) const MIGRATIONS_SOURCE_DIR: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");

/// Session advisory lock held while migrating, so that two instances starting together
/// don't both apply the same migration.
const MIGRATION_LOCK_KEY: i64 = 0x6461_6e62_616f_0001;

/// Applies the migrations the database at `url` lacks, in order, each in its own
/// transaction; returns the versions applied (empty when up to date).
pub async fn run_pending(url: &str) -> anyhow::Result<Vec<String>> {
    let url = url.to_owned();
    // diesel's migration harness is synchronous. actix-web runs handlers on current-thread
    // runtimes, where `block_in_place` (what diesel-async's AsyncMigrationHarness uses)
    // panics, so the harness runs on a blocking thread with a runtime of its own.
    tokio::task::spawn_blocking(move || run_pending_blocking(&url))
        .await
        .context("the migration task panicked")?
}

fn run_pending_blocking(url: &str) -> anyhow::Result<Vec<String>> {
    use diesel::connection::{Connection, SimpleConnection};

    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection, OwnRuntime>::establish(url)
        .context("could not connect to the database to migrate it")?;
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .context("could not take the migration lock")?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| anyhow!("migrating the database failed: {e}"));
    // Closing the connection would release the lock too; this is just tidier.
    let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
    applied
}

/// Drives the wrapped connection on a runtime of its own. diesel-async's default reuses the
/// surrounding runtime's handle, which on a current-thread runtime only makes progress while
/// that runtime's own thread happens to be parked in `block_on`.
struct OwnRuntime(tokio::runtime::Runtime);

impl BlockOn for OwnRuntime {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }

    fn get_runtime() -> Self {
        OwnRuntime(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("could not create a tokio runtime for migrations"),
        )
    }
}

/// The versions of the embedded migrations, e.g. `20261127000001`, oldest first.
pub fn embedded_versions() -> anyhow::Result<Vec<String>> {
    let migrations = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(|e| anyhow!("could not list the embedded migrations: {e}"))?;
    Ok(migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

/// Whether the database lacks any embedded migration (for a readiness probe). Read-only:
/// one or two small queries.
pub async fn has_pending(conn: &mut AsyncPgConnection) -> anyhow::Result<bool> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Text};

    let embedded = embedded_versions()?;
    if embedded.is_empty() {
        return Ok(false);
    }
    let tracked: bool = sql::<Bool>("SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL")
        .get_result(conn)
        .await
        .context("could not check for the migrations table")?;
    if !tracked {
        return Ok(true);
    }
    let applied: HashSet<String> = sql::<Text>("SELECT version FROM __diesel_schema_migrations")
        .load(conn)
        .await
        .context("could not read the applied migrations")?
        .into_iter()
        .collect();
    Ok(embedded.iter().any(|v| !applied.contains(v)))
}

/// A hex SHA-256 over the embedded migrations' names and SQL: equal fingerprints mean an
/// equal schema, so a database migrated once can be reused as a template.
///
/// diesel keeps the embedded SQL private, so the SQL is read from the source files of the
/// embedded migrations. That is the same text: cargo recompiles whenever those files change.
/// Where the sources are absent (a binary copied elsewhere) only the names count.
pub fn migrations_fingerprint() -> String {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT
        .get_or_init(|| {
            let mut hasher = Sha256::new();
            let source = Path::new(MIGRATIONS_SOURCE_DIR);
            for migration in MigrationSource::<Pg>::migrations(&MIGRATIONS).unwrap_or_default() {
                let name = migration.name().to_string();
                hasher.update((name.len() as u64).to_le_bytes());
                hasher.update(name.as_bytes());
                for file in ["up.sql", "down.sql", "metadata.toml"] {
                    if let Ok(text) = std::fs::read(source.join(&name).join(file)) {
                        hasher.update(file.as_bytes());
                        hasher.update((text.len() as u64).to_le_bytes());
                        hasher.update(&text);
                    }
                }
            }
            hex::encode(hasher.finalize())
        })
        .clone()
}
