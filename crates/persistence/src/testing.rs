//! Test databases (feature `testing`): every test gets a fresh, migrated database of its own,
//! created from a migrated template and dropped when the [`TestDb`] is dropped.
//!
//! Which server:
//! - `TEST_DATABASE_URL`, else `DATABASE_URL`: that server (CI's service container, or your
//!   own). The template `danbao_tpl_<fingerprint>` is built there once, under an advisory
//!   lock so that concurrent test processes don't race; test databases are named
//!   `danbao_test_<pid>_<random>`.
//! - Otherwise a private throwaway cluster per test process, started from the local
//!   PostgreSQL binaries under /dev/shm (or the temp dir). Starting one is cheap: an
//!   initdb'd and migrated cluster is built once per PostgreSQL build and migrations
//!   fingerprint, kept under `/dev/shm/danbao-pgcache-<uid>/`, and copied for each process
//!   (nextest runs every test in a process of its own, so this is paid per test). It holds
//!   the `postgres` database, the template and one spare copy of it, which becomes the
//!   process's first test database by a rename; `template0` and `template1` are dropped to
//!   make the copy smaller, so `CREATE DATABASE` there needs an explicit `TEMPLATE`.
//!   The cluster goes away with the process, even if it is killed: the server gets a
//!   parent-death signal and a small watcher removes the directory.
//!
//! Set `DANBAO_TEST_DB_TIMING=1` to print where the set-up time goes.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::cluster::{
    conninfo_value, find_bindir, quote_ident, random_suffix, sweep_dead_process_dirs,
    ClusterOptions, LocalCluster,
};
use crate::migrate;

const TEST_DIR_PREFIX: &str = "danbao-test-";
/// In a cached cluster: a ready copy of the template for the process's first test database.
const SPARE_DATABASE: &str = "danbao_spare";
/// Serialises template builds on a shared server across test processes.
const TEMPLATE_LOCK_KEY: i64 = 0x6461_6e62_616f_0002;

/// A database for one test. Dropping it drops the database (`WITH (FORCE)`, so connections
/// still open, e.g. in a pool, don't stop it).
#[derive(Debug)]
pub struct TestDb {
    /// Connection string for this database; also usable as `DATABASE_URL` of a spawned
    /// `danbao` binary.
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDb {
    /// A new connection to this database.
    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .unwrap_or_else(|e| panic!("could not connect to test database {}: {e}", self.name))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop can't await, and we may be inside a runtime: use a thread with its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let outcome = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("could not create a runtime")?
                .block_on(drop_database(&admin_url, &name))
        })
        .join();
        // No panic here: a panic while the test is already unwinding would abort.
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e:#}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(admin_url).await?;
    diesel::sql_query(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// A fresh database with all migrations applied. Panics, explaining why, if there is no
/// server to be had.
pub async fn test_db() -> TestDb {
    let server = SERVER
        .get_or_init(|| async {
            Server::init().await.unwrap_or_else(|e| {
                panic!("test_db(): could not set up the PostgreSQL server for tests: {e:#}")
            })
        })
        .await;
    server
        .create_database()
        .await
        .unwrap_or_else(|e| panic!("test_db(): could not create a test database: {e:#}"))
}

/// Shared by all tests of a process; never dropped (statics aren't), hence the parent-death
/// signal and the [`Reaper`] for the private cluster.
static SERVER: OnceCell<Server> = OnceCell::const_new();

struct Server {
    admin_url: String,
    template: String,
    private: Option<PrivateCluster>,
}

struct PrivateCluster {
    cluster: LocalCluster,
    /// Whether [`SPARE_DATABASE`] is still there to be renamed.
    spare: Mutex<bool>,
    /// `STRATEGY FILE_COPY` (PostgreSQL 15+) copies files instead of writing the whole
    /// template to the WAL: faster without fsync. Not used on shared servers, where it forces
    /// checkpoints.
    file_copy: bool,
    _reaper: Reaper,
}

impl PrivateCluster {
    fn take_spare(&self) -> bool {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *spare, false)
    }
}

impl Server {
    async fn init() -> anyhow::Result<Server> {
        warn_about_unembedded_migrations();
        let from_env = ["TEST_DATABASE_URL", "DATABASE_URL"]
            .into_iter()
            .find_map(|var| Some((var, std::env::var(var).ok().filter(|v| !v.is_empty())?)));
        match from_env {
            Some((var, admin_url)) => {
                let template = prepare_shared_template(&admin_url)
                    .await
                    .with_context(|| format!("using the server given by {var}"))?;
                Ok(Server {
                    admin_url,
                    template,
                    private: None,
                })
            }
            None => {
                let private = tokio::task::spawn_blocking(start_private_cluster)
                    .await
                    .context("starting the private cluster panicked")?
                    .map_err(|e| {
                        e.context(
                            "no TEST_DATABASE_URL or DATABASE_URL is set, so the tests start \
                             a private PostgreSQL from the local installation",
                        )
                    })?;
                Ok(Server {
                    admin_url: private.cluster.url("postgres"),
                    template: template_name(),
                    private: Some(private),
                })
            }
        }
    }

    fn url(&self, dbname: &str) -> String {
        match &self.private {
            Some(private) => private.cluster.url(dbname),
            None => with_dbname(&self.admin_url, dbname),
        }
    }

    async fn create_database(&self) -> anyhow::Result<TestDb> {
        let started = Instant::now();
        let name = format!("danbao_test_{}_{}", std::process::id(), random_suffix());
        let mut conn = AsyncPgConnection::establish(&self.admin_url).await?;
        let mut created = false;
        if let Some(private) = &self.private {
            if private.take_spare() {
                let rename = format!(
                    "ALTER DATABASE {SPARE_DATABASE} RENAME TO {}",
                    quote_ident(&name)
                );
                created = execute(&mut conn, &rename).await.is_ok();
            }
        }
        if !created {
            let strategy = match &self.private {
                Some(private) if private.file_copy => " STRATEGY FILE_COPY",
                _ => "",
            };
            let create = format!(
                "CREATE DATABASE {} TEMPLATE {}{strategy}",
                quote_ident(&name),
                quote_ident(&self.template)
            );
            execute(&mut conn, &create).await?;
        }
        timing("create test database", started);
        Ok(TestDb {
            url: self.url(&name),
            name,
            admin_url: self.admin_url.clone(),
        })
    }
}

/// `danbao_tpl_<first 12 hex digits of the migrations fingerprint>`.
fn template_name() -> String {
    format!("danbao_tpl_{}", &migrate::migrations_fingerprint()[..12])
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> anyhow::Result<bool> {
    Ok(diesel::dsl::sql::<diesel::sql_types::Bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .sql(")")
    .get_result(conn)
    .await?)
}

async fn execute(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<()> {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .with_context(|| format!("{sql} failed"))?;
    Ok(())
}

/// Builds the template on a shared server unless a process before us did.
async fn prepare_shared_template(admin_url: &str) -> anyhow::Result<String> {
    let template = template_name();
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .context("could not connect")?;
    execute(
        &mut conn,
        &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"),
    )
    .await?;
    let built = async {
        if database_exists(&mut conn, &template).await? {
            return Ok(());
        }
        let started = Instant::now();
        // Built under another name and renamed when complete, so that a build interrupted
        // by a killed process is never mistaken for a template.
        let building = format!("{template}_build");
        execute(
            &mut conn,
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&building)
            ),
        )
        .await?;
        execute(
            &mut conn,
            &format!("CREATE DATABASE {}", quote_ident(&building)),
        )
        .await?;
        migrate::run_pending(&with_dbname(admin_url, &building))
            .await
            .context("could not migrate the template database")?;
        seal_template(&mut conn, &building).await?;
        execute(
            &mut conn,
            &format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&building),
                quote_ident(&template)
            ),
        )
        .await?;
        timing("build template database", started);
        anyhow::Ok(())
    }
    .await;
    let _ = execute(
        &mut conn,
        &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"),
    )
    .await;
    built.map(|()| template)
}

/// CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template; refusing
/// connections keeps a stray `psql` from breaking every test.
async fn seal_template(conn: &mut AsyncPgConnection, name: &str) -> anyhow::Result<()> {
    execute(
        conn,
        &format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            quote_ident(name)
        ),
    )
    .await
}

/// Replaces the database name in a `postgres://` URL or a key/value connection string.
fn with_dbname(url: &str, dbname: &str) -> String {
    let is_uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_uri {
        // In key/value strings the last occurrence of a key wins (libpq and tokio-postgres).
        return format!("{url} dbname={}", conninfo_value(dbname));
    }
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    // Our database names are plain identifiers: no percent-encoding needed.
    format!("{}/{dbname}{query}", &base[..path_start])
}

fn timing(what: &str, since: Instant) {
    tracing::debug!("{what} took {:?}", since.elapsed());
    if std::env::var_os("DANBAO_TEST_DB_TIMING").is_some() {
        eprintln!("[test_db timing] {what}: {:.1?}", since.elapsed());
    }
}

/// cargo rebuilds when an embedded migration changes, but not when a new migration
/// directory appears (unless a build script says so): say so instead of silently testing
/// an old schema.
fn warn_about_unembedded_migrations() {
    let Ok(embedded) = migrate::embedded_versions() else {
        return;
    };
    let Ok(entries) = fs::read_dir(migrate::MIGRATIONS_SOURCE_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let version: String = name
            .split('_')
            .next()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if entry.path().join("up.sql").exists() && !embedded.contains(&version) {
            eprintln!(
                "warning: migrations/{name} is not embedded in this build (cargo does not \
                 notice new migration directories by itself); run `touch \
                 crates/persistence/src/migrate.rs` and test again"
            );
        }
    }
}

// ---- The private cluster ----------------------------------------------------------------

fn start_private_cluster() -> anyhow::Result<PrivateCluster> {
    let started = Instant::now();
    let bindir = find_bindir()?;
    let build = server_build_id(&bindir)?;
    let base = scratch_base();
    sweep_dead_process_dirs(&base, TEST_DIR_PREFIX);
    timing("find binaries and sweep", started);

    let dir = base.join(format!(
        "{TEST_DIR_PREFIX}{}-{}",
        std::process::id(),
        random_suffix()
    ));
    // Watching before the directory exists, so that it goes even if we die while copying.
    let reaper = Reaper::watch(&dir)?;
    let step = Instant::now();
    copy_cached_cluster(&base, &build, &dir)?;
    timing("copy cached cluster", step);

    let step = Instant::now();
    let cluster = LocalCluster::start(ClusterOptions {
        data_dir: dir,
        ephemeral: true,
    })?;
    timing("start server", step);
    timing("private cluster ready", started);
    let major: u32 = fs::read_to_string(cluster.data_dir().join("PG_VERSION"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(PrivateCluster {
        cluster,
        spare: Mutex::new(true),
        file_copy: major >= 15,
        _reaper: reaper,
    })
}

/// /dev/shm when there is one: a cluster in memory is much faster to copy and start.
fn scratch_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = shm.is_dir()
        && nix::unistd::access(
            shm,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_ok();
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Identifies the PostgreSQL build by its `postgres` binary (path, size, mtime), which
/// changes with every version: as good as `postgres --version` for keying the cache, without
/// the ~20 ms that running it costs every test process.
fn server_build_id(bindir: &Path) -> anyhow::Result<String> {
    let postgres = bindir.join("postgres");
    let meta = fs::metadata(&postgres)
        .with_context(|| format!("could not inspect {}", postgres.display()))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(postgres.as_os_str().as_encoded_bytes());
    hasher.update(meta.len().to_le_bytes());
    hasher.update(modified.as_nanos().to_le_bytes());
    Ok(format!("pg-{}", &hex::encode(hasher.finalize())[..12]))
}

/// Copies the cached cluster for this PostgreSQL build and migrations fingerprint to
/// `target`, building it first if needed. Copies happen under a shared lock, a build under
/// an exclusive one.
fn copy_cached_cluster(base: &Path, build: &str, target: &Path) -> anyhow::Result<()> {
    let root = cache_root(base)?;
    let key = format!("{build}-{}", &migrate::migrations_fingerprint()[..16]);
    let entry = root.join(&key);
    let lock_path = root.join(format!("{key}.lock"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("could not open {}", lock_path.display()))?;
    loop {
        let shared = lock(file, FlockArg::LockShared, &lock_path)?;
        if entry.join("PG_VERSION").exists() {
            let output = Command::new("cp")
                .arg("-a")
                .arg(&entry)
                .arg(target)
                .output()
                .context("could not run cp")?;
            if !output.status.success() {
                bail!(
                    "could not copy {} to {}: {}",
                    entry.display(),
                    target.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            return Ok(());
        }
        file = unlock(shared, &lock_path)?;
        let exclusive = lock(file, FlockArg::LockExclusive, &lock_path)?;
        if !entry.join("PG_VERSION").exists() {
            let started = Instant::now();
            build_cached_cluster(&root, &key, &entry)?;
            timing(
                "build cached cluster (once per PostgreSQL build and migrations)",
                started,
            );
            prune_cache(&root, &key);
        }
        file = unlock(exclusive, &lock_path)?;
    }
}

fn lock(file: File, how: FlockArg, path: &Path) -> anyhow::Result<Flock<File>> {
    Flock::lock(file, how).map_err(|(_, e)| anyhow!("could not lock {}: {e}", path.display()))
}

fn unlock(flock: Flock<File>, path: &Path) -> anyhow::Result<File> {
    flock
        .unlock()
        .map_err(|(_, e)| anyhow!("could not unlock {}: {e}", path.display()))
}

/// `<base>/danbao-pgcache-<uid>`: per user, because /dev/shm is shared and the files in it
/// belong to whoever built them.
fn cache_root(base: &Path) -> anyhow::Result<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let root = base.join(format!("danbao-pgcache-{uid}"));
    // 0755: as root, the build runs the server as `postgres` inside it.
    match DirBuilder::new().mode(0o755).create(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("could not create {}", root.display())),
    }
    let meta = fs::symlink_metadata(&root)?;
    if !meta.is_dir() || meta.uid() != uid {
        bail!(
            "{} is not a directory owned by uid {uid}; remove it and try again",
            root.display()
        );
    }
    Ok(root)
}

/// initdb, create and migrate the template, stop cleanly (so copies start without
/// recovery), then rename into place: a half-built cache entry is never visible.
fn build_cached_cluster(root: &Path, key: &str, entry: &Path) -> anyhow::Result<()> {
    let building = root.join(format!("{key}.build"));
    if building.exists() {
        // Left by a builder that was killed; we hold the exclusive lock.
        fs::remove_dir_all(&building)
            .with_context(|| format!("could not remove {}", building.display()))?;
    }
    let cluster = LocalCluster::start(ClusterOptions {
        data_dir: building.clone(),
        ephemeral: true,
    })?;
    let template = template_name();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            cluster.ensure_database(&template).await?;
            migrate::run_pending(&cluster.url(&template))
                .await
                .context("could not migrate the template database")?;
            let mut conn = AsyncPgConnection::establish(&cluster.url("postgres")).await?;
            seal_template(&mut conn, &template).await?;
            let spare = format!(
                "CREATE DATABASE {SPARE_DATABASE} TEMPLATE {}",
                quote_ident(&template)
            );
            execute(&mut conn, &spare).await?;
            // Two databases fewer to copy for every test process; test clusters never use them.
            for stock in ["template0", "template1"] {
                execute(
                    &mut conn,
                    &format!("ALTER DATABASE {stock} IS_TEMPLATE false"),
                )
                .await?;
                execute(&mut conn, &format!("DROP DATABASE {stock}")).await?;
            }
            anyhow::Ok(())
        })?;
    cluster.stop();
    let _ = fs::remove_file(building.join("server.log"));
    fs::rename(&building, entry).with_context(|| {
        format!(
            "could not rename {} to {}",
            building.display(),
            entry.display()
        )
    })?;
    Ok(())
}

/// Removes cache entries for other versions or migrations that nobody is using (each
/// migration edit would otherwise leave ~30 MB behind in memory).
fn prune_cache(root: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(key) = name.strip_suffix(".lock") else {
            continue;
        };
        if key == keep {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        // Lock files stay: removing one could let two processes lock different files.
        if let Ok(_guard) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            let _ = fs::remove_dir_all(root.join(key));
            let _ = fs::remove_dir_all(root.join(format!("{key}.build")));
        }
    }
}

/// Removes the private cluster's directory once this process has exited, however it
/// exited: a `sh` in its own process group reads a pipe that only we hold open. At EOF it
/// makes sure the server is gone (on Linux the parent-death signal already did that), waits
/// for it to exit and deletes the directory.
struct Reaper {
    _pipe: ChildStdin,
    _child: Child,
}

impl Reaper {
    const SCRIPT: &'static str = r#"
read -r _
pidfile="$1/postmaster.pid"
if read -r pid < "$pidfile"; then kill -QUIT "$pid"; fi
i=0
while [ -e "$pidfile" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
rm -rf "$1"
"#;

    fn watch(dir: &Path) -> anyhow::Result<Reaper> {
        let mut child = Command::new("/bin/sh")
            .args(["-c", Self::SCRIPT, "sh"])
            .arg(dir)
            .current_dir("/")
            .stdin(Stdio::piped())
            // Not our stdout/stderr: the test runner waits for those to close.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not killed along with our process group.
            .process_group(0)
            .spawn()
            .context("could not run /bin/sh")?;
        let pipe = child.stdin.take().context("no pipe to /bin/sh")?;
        Ok(Reaper {
            _pipe: pipe,
            _child: child,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn dbname_is_replaced_in_uris() {
        assert_eq!(
            with_dbname("postgres://u:p@127.0.0.1:5432/postgres", "t1"),
            "postgres://u:p@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_dbname("postgresql://u@db:5432/x?sslmode=disable", "t1"),
            "postgresql://u@db:5432/t1?sslmode=disable"
        );
        assert_eq!(with_dbname("postgres://db", "t1"), "postgres://db/t1");
        assert_eq!(
            with_dbname("postgres:///x?host=/run/postgresql", "t1"),
            "postgres:///t1?host=/run/postgresql"
        );
    }

    #[test]
    fn dbname_is_appended_to_key_value_strings() {
        assert_eq!(
            with_dbname("host=/tmp user=danbao dbname=postgres", "t1"),
            "host=/tmp user=danbao dbname=postgres dbname=t1"
        );
    }
}
