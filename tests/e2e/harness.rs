//! Runs the built `danbao` binary as a child process and talks to it over HTTP.
//!
//! A [`Server`] owns the child: dropping it sends SIGTERM, waits a bounded time, then
//! SIGKILLs. The child's stdout and stderr go to files in a temporary directory, printed when
//! something goes wrong (and kept with `DANBAO_E2E_KEEP_LOGS=1`).

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary cargo built for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_danbao");

/// How long a server may take to answer /readyz 200. Generous: CI has 2 cores and a
/// debug build, and the first start of an embedded cluster runs initdb.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long SIGTERM may take before the child is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A password that passes the strength check, for `DANBAO_ADMIN_PASSWORD`.
pub const ADMIN_PASSWORD: &str = "E2e-admin-Passw0rd";

/// A JWT secret of at least 32 bytes, for `DANBAO_JWT_SECRET`.
pub const JWT_SECRET: &str = "e2e-jwt-secret-0123456789abcdef0123456789";

/// The personal-data key (64 hex digits), for `DANBAO_DATA_KEY`; required with DATABASE_URL.
pub const DATA_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Environment variables of the test process that must not leak into the child.
const SCRUBBED_ENV: &[&str] = &["DATABASE_URL", "TEST_DATABASE_URL", "RUST_LOG"];

/// `danbao` with a clean environment: none of the test process's database or `DANBAO_*`
/// settings, logs at `info`.
pub fn danbao() -> Command {
    let mut cmd = Command::new(BIN);
    scrub_env(&mut cmd);
    cmd
}

/// Keeps the test process's database and `DANBAO_*` settings from `cmd` (and what it execs),
/// logs at `info`, no standard input.
pub fn scrub_env(cmd: &mut Command) -> &mut Command {
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DANBAO_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info").stdin(Stdio::null())
}

/// A port nobody listens on right now (bind port 0, note the port, let it go).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr")
}

/// A temporary directory that the `postgres` system user can enter (the embedded cluster
/// runs as `postgres` when the tests run as root). Under /tmp, never under $HOME.
pub fn traversable_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create a temporary directory under /tmp");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .expect("chmod the temporary directory");
    dir
}

/// A running (or exited) `danbao` child process.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    logs: tempfile::TempDir,
    exit: Option<ExitStatus>,
}

impl Server {
    /// Spawns `cmd` with `serve --listen ADDR` appended (so put global options such as
    /// `--data-dir` before, or pass them through the environment). Does not wait.
    pub fn spawn(mut cmd: Command) -> Server {
        let addr = free_addr();
        cmd.arg("serve").arg("--listen").arg(addr.to_string());
        Server::spawn_at(cmd, addr)
    }

    /// Spawns `cmd` as is; `addr` is where it will listen.
    pub fn spawn_at(mut cmd: Command, addr: SocketAddr) -> Server {
        let logs = tempfile::Builder::new()
            .prefix("danbao-e2e-logs-")
            .tempdir()
            .expect("log directory");
        let stdout = fs::File::create(logs.path().join("stdout")).expect("stdout file");
        let stderr = fs::File::create(logs.path().join("stderr")).expect("stderr file");
        let child = cmd
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {BIN}: {e}"));
        Server {
            child: Some(child),
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            logs,
            exit: None,
        }
    }

    /// Spawns and waits for /readyz; returns the server and how long it took to be ready.
    pub async fn start(cmd: Command) -> (Server, Duration) {
        let started = Instant::now();
        let mut server = Server::spawn(cmd);
        server.wait_ready(READY_TIMEOUT).await;
        (server, started.elapsed())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(self.logs.path().join("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
    }

    /// Both captured streams, for a failure message.
    pub fn logs(&self) -> String {
        format!(
            "----- danbao stdout ({}) -----\n{}\n----- danbao stderr -----\n{}\n-----",
            self.logs.path().display(),
            self.stdout(),
            self.stderr()
        )
    }

    /// The exit status if the child has exited, `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
        }
        self.exit
    }

    /// The child's process id (it is not reaped before `stop`/`wait_exit`, so still ours).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("child").id() as i32
    }

    /// Panics (with the logs) unless the child exits by itself within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let child = self.child.as_mut().expect("child");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "danbao did not exit within {} s (killed)\n{}",
                    timeout.as_secs(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls /readyz until it answers 200; panics with the logs if the child exits first or
    /// `timeout` runs out.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("reqwest client");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.exit = Some(status);
                panic!(
                    "danbao exited ({status}) before /readyz answered 200\n{}",
                    self.logs()
                );
            }
            let last = match probe.get(self.url("/readyz")).send().await {
                Ok(r) if r.status() == 200 => return,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                panic!(
                    "danbao was not ready within {} s (last /readyz: {last})\n{}",
                    timeout.as_secs(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit; SIGKILL after that (and panic, with
    /// the logs, since a server that ignores SIGTERM is a bug).
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        match self.terminate(timeout) {
            Ok(status) => status,
            Err(status) => panic!(
                "danbao ignored SIGTERM for {} s and was killed ({status})\n{}",
                timeout.as_secs(),
                self.logs()
            ),
        }
    }

    /// `Ok` if the child exited after SIGTERM within `timeout`, `Err` if it had to be killed.
    fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, ExitStatus> {
        let child = self.child.as_mut().expect("child");
        if let Some(status) = child.try_wait().expect("try_wait") {
            self.exit = Some(status);
            return Ok(status);
        }
        // The child is not reaped until try_wait/wait succeeds, so its pid is still ours.
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let status = child.wait().expect("wait");
        self.exit = Some(status);
        Err(status)
    }

    /// Logs in and returns a bearer token.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let res = self
            .http
            .post(self.url("/v1/auth/token"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("POST /v1/auth/token");
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        assert_eq!(status, 200, "login as {username} failed: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("token JSON");
        json["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {body}"))
            .to_owned()
    }

    /// POSTs JSON as the bearer of `token`; returns the status and parsed body.
    pub async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let res = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        read_json(res).await
    }

    /// GETs as the bearer of `token`; returns the status and parsed body.
    pub async fn get_json(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let res = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        read_json(res).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() && self.exit.is_none() {
            let _ = self.terminate(Duration::from_secs(10));
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if std::env::var_os("DANBAO_E2E_KEEP_LOGS").is_some() {
            let kept = std::mem::replace(
                &mut self.logs,
                tempfile::TempDir::new().expect("placeholder tempdir"),
            );
            eprintln!("danbao logs kept in {}", kept.keep().display());
        }
    }
}

pub async fn read_json(res: reqwest::Response) -> (u16, serde_json::Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| serde_json::Value::String(format!("(not JSON) {text}")));
    (status, json)
}

/// Processes whose command line names `dir`, or whose working directory is inside it: what
/// `pgrep -f DIR` finds, plus the PostgreSQL backends (which rename themselves but keep the
/// data directory as their working directory). Read from /proc.
pub fn processes_using(dir: &Path) -> Vec<(i32, String)> {
    let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let needle = canonical.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc_dir = PathBuf::from("/proc").join(pid.to_string());
        let cmdline = fs::read(proc_dir.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = fs::read_link(proc_dir.join("cwd")).ok();
        if cmdline.contains(&needle) || cwd.is_some_and(|c| c.starts_with(&canonical)) {
            found.push((pid, cmdline.trim().to_owned()));
        }
    }
    found
}

/// Resident memory of a process (`VmRSS`), KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}
