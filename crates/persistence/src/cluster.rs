//! A PostgreSQL server of our own, started from the locally installed binaries.
//!
//! `danbao serve` uses it for a persistent cluster under `./danbao-data`; the tests use it for
//! throwaway clusters. The server listens on a unix socket only (no TCP port), so any number
//! of clusters can run side by side without colliding, and it is our child process: it stops
//! when the [`LocalCluster`] is stopped or dropped, and (on Linux) also when our process dies,
//! even by `SIGKILL`.
//!
//! [`LocalCluster::start`] blocks (initdb can take a second or two, a server after a crash
//! may need recovery): call it before building the async runtime, or inside
//! `tokio::task::spawn_blocking`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::{self, Pid, User};

/// The superuser created by initdb; every connection uses it (trust authentication over a
/// socket only the server user and root can reach).
pub const SUPERUSER: &str = "danbao";
/// The port only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
const PORT: u16 = 5432;
/// `sun_path` holds 108 bytes on Linux, 104 on macOS; stay below both.
const MAX_SOCKET_PATH: usize = 100;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const PREVIOUS_SERVER_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_FILE: &str = "server.log";
const PRIVATE_SOCKET_PREFIX: &str = "danbao-sock-";

/// Why a local cluster could not be found, created or started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server programs (initdb, postgres) were not found: not on PATH, not via \
         `pg_config --bindir`, not under /usr/lib/postgresql/*/bin.\n\
         danbao needs either a local PostgreSQL installation (it then runs a private server \
         of its own) or an existing server. Pick one:\n\
         \x20 - install PostgreSQL: `apt-get install postgresql` (Debian/Ubuntu), \
         `dnf install postgresql-server` (Fedora/RHEL), `brew install postgresql` (macOS); \
         if it is installed but not found, put the directory holding `initdb` and `postgres` \
         on PATH;\n\
         \x20 - or set DATABASE_URL to an existing server, e.g. \
         DATABASE_URL=postgres://USER:PASSWORD@localhost:5432/danbao;\n\
         \x20 - or run `docker compose up` to run PostgreSQL and danbao in containers."
    )]
    NoBinaries,

    #[error(
        "running as root, but there is no `postgres` system user to run the PostgreSQL \
         server as (PostgreSQL refuses to run as root). Install PostgreSQL from your \
         distribution's packages (which creates the user), create it with \
         `useradd --system --user-group --home-dir /var/lib/postgresql postgres`, \
         or run danbao as an ordinary user"
    )]
    NoServerUser,

    #[error(
        "the PostgreSQL server runs as the `{user}` user (it refuses to run as root), and \
         `{user}` cannot enter {blocked}, which contains the data directory {data_dir}. \
         Choose a data directory `{user}` can reach, e.g. `--data-dir /var/lib/danbao`, or \
         allow it in with `chmod o+x {blocked}`"
    )]
    NotTraversable {
        user: String,
        blocked: PathBuf,
        data_dir: PathBuf,
    },

    #[error(
        "the data directory {data_dir} holds a PostgreSQL cluster owned by uid {owner}, but \
         the server must run as `{user}`; fix it with `chown -R {user}: {data_dir}` or choose \
         another data directory"
    )]
    WrongOwner {
        data_dir: PathBuf,
        owner: u32,
        user: String,
    },

    #[error(
        "another PostgreSQL server (pid {pid}) is still using {data_dir} after waiting {} s; \
         stop it (`kill -INT {pid}`) or choose another data directory",
        PREVIOUS_SERVER_TIMEOUT.as_secs()
    )]
    Busy { data_dir: PathBuf, pid: i32 },

    #[error(
        "initdb could not create a cluster in {data_dir} (it must be empty or missing):\n{output}"
    )]
    Initdb { data_dir: PathBuf, output: String },

    #[error("pg_basebackup could not copy the cluster into {data_dir}:\n{output}")]
    BaseBackup { data_dir: PathBuf, output: String },

    #[error(
        "the PostgreSQL server for {data_dir} did not start: {reason}.\n\
         Last lines of {log}:\n{log_tail}"
    )]
    Start {
        data_dir: PathBuf,
        reason: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("could not connect to the local cluster ({url}): {source}")]
    Connect {
        url: String,
        #[source]
        source: diesel::ConnectionError,
    },

    #[error("{context}: {source}")]
    Query {
        context: String,
        #[source]
        source: diesel::result::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// Environment variable naming the PostgreSQL bin directory to use, overriding the search
/// (to pick one of several installed versions).
pub const BINDIR_ENV: &str = "DANBAO_PG_BINDIR";

/// Finds a directory holding the server programs `initdb` and `postgres`: `DANBAO_PG_BINDIR`
/// if set (and then only it), else the ones on PATH (symlinks resolved, as Debian links them
/// into /usr/bin or /usr/local/bin), then `pg_config --bindir`, then the highest version
/// under `/usr/lib/postgresql/*/bin`.
pub fn find_bindir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os(BINDIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if has_server_programs(&dir) {
            Ok(dir)
        } else {
            Err(ClusterError::NoBinaries)
        };
    }
    bindir_from_path()
        .or_else(bindir_from_pg_config)
        .or_else(bindir_from_debian_layout)
        .ok_or(ClusterError::NoBinaries)
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn has_server_programs(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn bindir_from_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("postgres"), dir.join("initdb")])
        .filter(|program| is_executable(program))
        .filter_map(|program| {
            fs::canonicalize(program)
                .ok()?
                .parent()
                .map(Path::to_path_buf)
        })
        .find(|dir| has_server_programs(dir))
}

fn bindir_from_pg_config() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    // pg_config may come from a client-only package (libpq-dev) without the server.
    has_server_programs(&dir).then_some(dir)
}

fn bindir_from_debian_layout() -> Option<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server_programs(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Created (mode 0700) and initialised if missing.
    pub data_dir: PathBuf,
    /// Test mode: `fsync`, `synchronous_commit` and `full_page_writes` off, and the server is
    /// killed outright (`SIGQUIT`) if our process dies. Data may not survive a crash.
    pub ephemeral: bool,
}

/// A running PostgreSQL server that is our child process. Stopped by [`LocalCluster::stop`]
/// or on drop.
#[derive(Debug)]
pub struct LocalCluster {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    /// The socket directory is ours to remove (a private one under /tmp).
    remove_socket_dir: bool,
    ephemeral: bool,
    server: Option<Server>,
}

#[derive(Debug)]
struct Server {
    child: Child,
    /// Dropping it lets the keeper thread end; see [`spawn_from_keeper_thread`].
    release_keeper: mpsc::Sender<()>,
    keeper: JoinHandle<()>,
}

impl LocalCluster {
    /// Initialises the data directory if needed, starts the server and waits until it
    /// accepts connections. Blocking.
    pub fn start(opts: ClusterOptions) -> Result<LocalCluster, ClusterError> {
        let bindir = find_bindir()?;
        let run_as = server_user()?;
        let data_dir = prepare_data_dir(&opts.data_dir, run_as.as_ref())?;

        if !data_dir.join("PG_VERSION").exists() {
            initdb(&bindir, &data_dir, run_as.as_ref(), opts.ephemeral)?;
        }
        wait_for_previous_server(&data_dir)?;
        let (socket_dir, remove_socket_dir) = choose_socket_dir(&data_dir, run_as.as_ref())?;

        let log_path = data_dir.join(LOG_FILE);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(format!("could not open {}", log_path.display())))?;
        if let Some(user) = &run_as {
            // Tidy, and lets the server user read its own log.
            let _ = unistd::chown(&log_path, Some(user.uid), Some(user.gid));
        }
        let log_err = log
            .try_clone()
            .map_err(io_err(format!("could not open {}", log_path.display())))?;

        let mut cmd = Command::new(bindir.join("postgres"));
        cmd.arg("-D")
            .arg(&data_dir)
            .arg("-p")
            .arg(PORT.to_string())
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                guc_list_item(&socket_dir.to_string_lossy())
            ));
        if opts.ephemeral {
            cmd.args(["-c", "fsync=off"])
                .args(["-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"])
                // Shared memory segments as files in the data directory instead of
                // /dev/shm/PostgreSQL.*, where a killed test cluster would leave them.
                .args(["-c", "dynamic_shared_memory_type=mmap"]);
        }
        cmd.current_dir(&data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C in the terminal reaches only us, and we stop
            // the server in order instead of it dying under our feet.
            .process_group(0);
        if let Some(user) = &run_as {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        // Fast clean shutdown for real data; test clusters are simply dropped.
        let death_signal = if opts.ephemeral {
            Signal::SIGQUIT
        } else {
            Signal::SIGINT
        };
        die_with_parent(&mut cmd, death_signal);

        let server = spawn_from_keeper_thread(cmd).map_err(io_err(format!(
            "could not run {}",
            bindir.join("postgres").display()
        )))?;
        let mut cluster = LocalCluster {
            data_dir,
            socket_dir,
            remove_socket_dir,
            ephemeral: opts.ephemeral,
            server: Some(server),
        };
        if let Err(reason) = cluster.wait_until_ready() {
            cluster.shutdown();
            return Err(ClusterError::Start {
                log_tail: log_tail(&log_path),
                data_dir: cluster.data_dir.clone(),
                reason,
                log: log_path,
            });
        }
        Ok(cluster)
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let server = self.server.as_mut().expect("server is running");
            match server.child.try_wait() {
                Ok(Some(status)) => return Err(format!("the server exited ({status})")),
                Ok(None) => {}
                Err(e) => return Err(format!("could not watch the server process: {e}")),
            }
            // The postmaster writes "ready" into postmaster.pid once it accepts connections;
            // pg_ctl waits the same way, and reading a file is cheaper than connecting.
            if read_pid_file(&self.data_dir)
                .is_some_and(|pf| pf.pid == server.child.id() as i32 && pf.status == "ready")
            {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                return Err(format!(
                    "it did not accept connections within {} s",
                    STARTUP_TIMEOUT.as_secs()
                ));
            }
            // Reading the file costs microseconds; a test cluster is up in ~15 ms.
            let pause = if started.elapsed() < Duration::from_secs(2) {
                2
            } else {
                20
            };
            thread::sleep(Duration::from_millis(pause));
        }
    }

    /// A libpq-style key/value connection string for `dbname` over the unix socket, e.g.
    /// `host=/srv/danbao-data port=5432 user=danbao dbname=danbao`. Both libpq and
    /// tokio-postgres (under `AsyncPgConnection`) accept it, so it can also be handed to a
    /// child process as its `DATABASE_URL`.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host={} port={PORT} user={} dbname={}",
            conninfo_value(&self.socket_dir.to_string_lossy()),
            conninfo_value(SUPERUSER),
            conninfo_value(dbname)
        )
    }

    /// Creates the database `name` unless it exists.
    pub async fn ensure_database(&self, name: &str) -> Result<(), ClusterError> {
        let url = self.url("postgres");
        let mut conn = AsyncPgConnection::establish(&url)
            .await
            .map_err(|source| ClusterError::Connect { url, source })?;
        let exists: bool = diesel::dsl::sql::<diesel::sql_types::Bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ",
        )
        .bind::<diesel::sql_types::Text, _>(name)
        .sql(")")
        .get_result(&mut conn)
        .await
        .map_err(|source| ClusterError::Query {
            context: format!("could not look up database {name}"),
            source,
        })?;
        if !exists {
            diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(name)))
                .execute(&mut conn)
                .await
                .map_err(|source| ClusterError::Query {
                    context: format!("could not create database {name}"),
                    source,
                })?;
        }
        Ok(())
    }

    /// Copies this running cluster into `dest` (created; must be empty) with
    /// `pg_basebackup -R`, which also writes `standby.signal` and `primary_conninfo`: a
    /// [`LocalCluster::start`] on `dest` then runs a streaming replica of this cluster, read
    /// only, replaying its WAL. Blocking.
    pub fn base_backup(&self, dest: &Path) -> Result<(), ClusterError> {
        let bindir = find_bindir()?;
        let run_as = server_user()?;
        let dest = prepare_data_dir(dest, run_as.as_ref())?;
        let mut cmd = Command::new(bindir.join("pg_basebackup"));
        cmd.arg("-D")
            .arg(&dest)
            .args(["--write-recovery-conf", "--wal-method=stream", "--no-sync"])
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &PORT.to_string(), "-U", SUPERUSER])
            .current_dir(&dest)
            .stdin(Stdio::null());
        if let Some(user) = &run_as {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let output = cmd.output().map_err(io_err(format!(
            "could not run {}",
            bindir.join("pg_basebackup").display()
        )))?;
        if output.status.success() {
            // The copy includes the primary's socket lock file when its socket is in its data
            // directory; the replica would take it for a running server's.
            let _ = fs::remove_file(dest.join(format!(".s.PGSQL.{PORT}.lock")));
            return Ok(());
        }
        Err(ClusterError::BaseBackup {
            data_dir: dest,
            output: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_string(),
        })
    }

    /// The absolute data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the server's socket: the data directory, or a private directory
    /// under /tmp when the data directory's path is too long for a socket address.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Stops the server (fast shutdown: open transactions are rolled back, data is
    /// checkpointed) and waits for it to exit.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let pid = Pid::from_raw(server.child.id() as i32);
        let fast = if self.ephemeral {
            Duration::from_secs(10)
        } else {
            // A fast shutdown writes a checkpoint, which takes a while on a busy cluster.
            Duration::from_secs(60)
        };
        let steps = [
            (Signal::SIGINT, fast),
            (Signal::SIGQUIT, Duration::from_secs(5)),
            (Signal::SIGKILL, Duration::from_secs(5)),
        ];
        for (sig, patience) in steps {
            if matches!(server.child.try_wait(), Ok(Some(_))) {
                break;
            }
            // Safe from pid reuse: the child is not reaped until try_wait/wait succeeds.
            let _ = signal::kill(pid, sig);
            if wait_for_exit(&mut server.child, patience) {
                break;
            }
            tracing::warn!(
                data_dir = %self.data_dir.display(),
                "PostgreSQL did not stop within {} s after {sig}; escalating",
                patience.as_secs()
            );
        }
        drop(server.release_keeper);
        let _ = server.keeper.join();
        if self.remove_socket_dir {
            let _ = fs::remove_dir_all(&self.socket_dir);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn wait_for_exit(child: &mut Child, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Spawns the server from a thread that lives as long as the server: the kernel sends the
/// parent-death signal when the *thread* that forked the child exits, not the process, so
/// spawning from a short-lived thread (a tokio blocking-pool thread, say) would stop the
/// server at a random moment.
fn spawn_from_keeper_thread(mut cmd: Command) -> io::Result<Server> {
    let (child_tx, child_rx) = mpsc::channel();
    let (release_keeper, released) = mpsc::channel::<()>();
    let keeper = thread::Builder::new()
        .name("postgres-keeper".into())
        .spawn(move || {
            let spawned = cmd.spawn();
            let ok = spawned.is_ok();
            let _ = child_tx.send(spawned);
            if ok {
                // Returns once the sender is dropped, after the server has exited.
                let _ = released.recv();
            }
        })?;
    let child = child_rx
        .recv()
        .map_err(|_| io::Error::other("the postgres keeper thread died"))??;
    Ok(Server {
        child,
        release_keeper,
        keeper,
    })
}

/// Makes the server receive `sig` when our process dies, however it dies.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command, sig: Signal) {
    let parent = unistd::getpid();
    // SAFETY: the closure runs in the forked child between fork and exec. It only calls
    // prctl(2) and getppid(2), both async-signal-safe, and allocates nothing. std runs it
    // after setuid/setgid, which matters: changing credentials clears the death signal.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(sig)?;
            // If we died between fork and prctl, the signal will never come: don't start.
            if unistd::getppid() != parent {
                return Err(Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

/// Without PR_SET_PDEATHSIG the server outlives a killed parent; stop/drop still stop it.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command, _sig: Signal) {}

/// PostgreSQL refuses to run as root; as root we run it as the `postgres` system user.
fn server_user() -> Result<Option<User>, ClusterError> {
    if !unistd::geteuid().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some(user)),
        Ok(None) => Err(ClusterError::NoServerUser),
        Err(e) => Err(ClusterError::Io {
            context: "could not look up the `postgres` user".into(),
            source: e.into(),
        }),
    }
}

fn prepare_data_dir(dir: &Path, run_as: Option<&User>) -> Result<PathBuf, ClusterError> {
    let absolute = std::path::absolute(dir)
        .map_err(io_err(format!("invalid data directory {}", dir.display())))?;
    if let Some(parent) = absolute.parent() {
        fs::create_dir_all(parent)
            .map_err(io_err(format!("could not create {}", parent.display())))?;
    }
    match DirBuilder::new().mode(0o700).create(&absolute) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io_err(format!(
                "could not create the data directory {}",
                absolute.display()
            ))(e))
        }
    }
    // Canonical, so the socket path and the postmaster.pid comparison are stable.
    let dir = fs::canonicalize(&absolute)
        .map_err(io_err(format!("could not open {}", absolute.display())))?;
    let initialised = dir.join("PG_VERSION").exists();

    if let Some(user) = run_as {
        check_traversable(&dir, user)?;
        let owner = fs::metadata(&dir)
            .map_err(io_err(format!("could not inspect {}", dir.display())))?
            .uid();
        if owner != user.uid.as_raw() {
            if initialised {
                return Err(ClusterError::WrongOwner {
                    data_dir: dir,
                    owner,
                    user: user.name.clone(),
                });
            }
            unistd::chown(&dir, Some(user.uid), Some(user.gid)).map_err(|e| {
                io_err(format!(
                    "could not hand {} to `{}`",
                    dir.display(),
                    user.name
                ))(e.into())
            })?;
        }
    }
    if !initialised {
        // An existing empty directory may have been created 0755; the server demands 0700.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(format!(
            "could not set permissions of {}",
            dir.display()
        )))?;
    }
    Ok(dir)
}

/// Every directory above the data directory must be enterable by the server user.
fn check_traversable(dir: &Path, user: &User) -> Result<(), ClusterError> {
    let mut ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
    ancestors.reverse();
    let open_to_all =
        |d: &&Path| fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
    if ancestors.iter().all(open_to_all) {
        return Ok(());
    }
    // Otherwise ask the system, as that user, so that group membership and ACLs count.
    let output = Command::new("/bin/sh")
        .args([
            "-c",
            r#"for d in "$@"; do [ -x "$d" ] || { printf '%s' "$d"; exit 1; }; done"#,
            "sh",
        ])
        .args(&ancestors)
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .current_dir("/")
        .output()
        .map_err(io_err(
            "could not run /bin/sh to check directory permissions",
        ))?;
    if output.status.success() {
        return Ok(());
    }
    Err(ClusterError::NotTraversable {
        user: user.name.clone(),
        blocked: PathBuf::from(String::from_utf8_lossy(&output.stdout).into_owned()),
        data_dir: dir.to_path_buf(),
    })
}

fn initdb(
    bindir: &Path,
    data_dir: &Path,
    run_as: Option<&User>,
    ephemeral: bool,
) -> Result<(), ClusterError> {
    let mut cmd = Command::new(bindir.join("initdb"));
    cmd.arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ])
        .current_dir(data_dir)
        .stdin(Stdio::null());
    if ephemeral {
        // No fsync of a throwaway cluster; 1 MB WAL segments instead of 16 MB make the
        // cluster smaller, which matters because tests copy it for every test process.
        cmd.args(["--no-sync", "--wal-segsize=1"]);
    }
    if let Some(user) = run_as {
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let output = cmd.output().map_err(io_err(format!(
        "could not run {}",
        bindir.join("initdb").display()
    )))?;
    if output.status.success() {
        return Ok(());
    }
    // The errors are on stderr; stdout is progress chatter, shown only if there is nothing else.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = if stderr.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout)
    } else {
        stderr
    };
    Err(ClusterError::Initdb {
        data_dir: data_dir.to_path_buf(),
        output: shown.trim_end().to_string(),
    })
}

#[derive(Debug)]
struct PidFile {
    pid: i32,
    status: String,
}

/// `postmaster.pid`: line 1 is the pid, line 8 the status (`starting`, `ready`, `stopping`).
fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let status = lines.nth(6).unwrap_or("").trim().to_string();
    Some(PidFile { pid, status })
}

pub(crate) fn pid_alive(pid: i32) -> bool {
    pid > 0 && !matches!(signal::kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// A previous run may still be shutting down (a restart right after Ctrl-C). A stale pid
/// file from a crash is left to postgres, which recognises and replaces it.
fn wait_for_previous_server(data_dir: &Path) -> Result<(), ClusterError> {
    let deadline = Instant::now() + PREVIOUS_SERVER_TIMEOUT;
    while let Some(pf) = read_pid_file(data_dir) {
        if !pid_alive(pf.pid) || !is_postgres_process(pf.pid) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Busy {
                data_dir: data_dir.to_path_buf(),
                pid: pf.pid,
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// After a reboot the pid in a stale postmaster.pid may belong to an unrelated process.
fn is_postgres_process(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim() == "postgres",
        // No /proc (macOS): trust that the pid is alive.
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

fn choose_socket_dir(
    data_dir: &Path,
    run_as: Option<&User>,
) -> Result<(PathBuf, bool), ClusterError> {
    let socket = data_dir.join(format!(".s.PGSQL.{PORT}"));
    if socket.as_os_str().len() < MAX_SOCKET_PATH {
        return Ok((data_dir.to_path_buf(), false));
    }
    // The data directory's path is too long for a socket address: use a short private
    // directory instead, after removing those of dead processes.
    sweep_dead_process_dirs(Path::new("/tmp"), PRIVATE_SOCKET_PREFIX);
    let dir = PathBuf::from(format!(
        "/tmp/{PRIVATE_SOCKET_PREFIX}{}-{}",
        std::process::id(),
        random_suffix()
    ));
    DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(io_err(format!(
            "could not create the socket directory {}",
            dir.display()
        )))?;
    if let Some(user) = run_as {
        unistd::chown(&dir, Some(user.uid), Some(user.gid)).map_err(|e| {
            io_err(format!(
                "could not hand {} to `{}`",
                dir.display(),
                user.name
            ))(e.into())
        })?;
    }
    Ok((dir, true))
}

pub(crate) fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Removes `<parent>/<prefix><pid>-*` entries whose process is gone: what a killed process
/// could not clean up itself.
pub(crate) fn sweep_dead_process_dirs(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !pid_alive(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The last lines of the server log, to explain a failed start.
fn log_tail(path: &Path) -> String {
    const MAX_BYTES: u64 = 4096;
    const MAX_LINES: usize = 20;
    let Ok(mut file) = File::open(path) else {
        return "(no log)".into();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(MAX_LINES)..].join("\n")
}

/// A value in a libpq key/value connection string, quoted when it must be.
pub(crate) fn conninfo_value(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return value.to_string();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An element of a GUC list such as `unix_socket_directories` (which splits on commas).
fn guc_list_item(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// A double-quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_values_are_quoted_only_when_needed() {
        assert_eq!(conninfo_value("/dev/shm/x"), "/dev/shm/x");
        assert_eq!(conninfo_value("/a b"), "'/a b'");
        assert_eq!(conninfo_value(r"it's\"), r"'it\'s\\'");
        assert_eq!(conninfo_value(""), "''");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
