//! Without DATABASE_URL and without PostgreSQL's server programs, `danbao serve` must stop at
//! once with a message that tells a newcomer the three ways out.
//!
//! PostgreSQL is installed on the test machines, so the test hides it: `DANBAO_PG_BINDIR`
//! (which replaces the launcher's search of PATH, `pg_config` and `/usr/lib/postgresql`)
//! names an empty directory, and so does PATH.

use crate::harness::{danbao, free_addr, Server};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `danbao ARGS` that cannot find PostgreSQL's server programs.
fn danbao_without_postgres(empty_bin: &Path, args: &[OsString]) -> Command {
    let mut cmd = danbao();
    cmd.args(args)
        .env("PATH", empty_bin)
        .env("DANBAO_PG_BINDIR", empty_bin);
    cmd
}

fn assert_explains(stderr: &str, context: &str) {
    for needle in [
        "DATABASE_URL",
        "apt-get install postgresql",
        "docker compose",
    ] {
        assert!(
            stderr.contains(needle),
            "stderr does not mention `{needle}`\n{context}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_postgres_explains_what_to_do() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty_bin = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty_bin).unwrap();
    let data_dir = tmp.path().join("data");

    let addr = free_addr();
    let args: Vec<OsString> = vec![
        "serve".into(),
        "--listen".into(),
        addr.to_string().into(),
        "--data-dir".into(),
        data_dir.clone().into(),
    ];
    let mut server = Server::spawn_at(danbao_without_postgres(&empty_bin, &args), addr);

    let status = server.wait_exit(Duration::from_secs(30));
    assert!(
        !status.success(),
        "danbao serve succeeded without PostgreSQL binaries\n{}",
        server.logs()
    );
    assert_explains(&server.stderr(), &server.logs());
    assert!(
        !server.stdout().contains("listening on"),
        "it claimed to listen\n{}",
        server.logs()
    );
    assert!(
        !data_dir.join("PG_VERSION").exists(),
        "a cluster was initialised in {} anyway",
        data_dir.display()
    );
}

/// The same for another command that opens the local cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_without_postgres_explains_what_to_do() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty_bin = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty_bin).unwrap();

    let args: Vec<OsString> = vec![
        "migrate".into(),
        "--data-dir".into(),
        tmp.path().join("data").into(),
    ];
    let output = danbao_without_postgres(&empty_bin, &args)
        .output()
        .expect("run danbao migrate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!("exit: {}\nstderr:\n{stderr}", output.status);
    assert!(
        !output.status.success(),
        "danbao migrate succeeded without PostgreSQL binaries\n{context}"
    );
    assert_explains(&stderr, &context);
}
