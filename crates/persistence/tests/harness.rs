//! The test-database harness and the local cluster launcher, against a real PostgreSQL:
//! a private cluster by default, the server in `TEST_DATABASE_URL`/`DATABASE_URL` if set.
#![cfg(feature = "testing")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use danbao_persistence::cluster::{find_bindir, ClusterError, ClusterOptions, LocalCluster};
use danbao_persistence::migrate;
use danbao_persistence::testing::test_db;
use diesel::dsl::sql;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

async fn query_text(conn: &mut AsyncPgConnection, query: &str) -> String {
    sql::<Text>(query).get_result(conn).await.unwrap()
}

async fn query_count(conn: &mut AsyncPgConnection, query: &str) -> i64 {
    sql::<BigInt>(query).get_result(conn).await.unwrap()
}

#[tokio::test]
async fn test_databases_are_distinct_and_migrated() {
    let started = Instant::now();
    let a = test_db().await;
    let first = started.elapsed();
    let b = test_db().await;
    eprintln!(
        "first test_db() in this process: {first:.1?}, second: {:.1?}",
        started.elapsed() - first
    );
    assert_ne!(a.name, b.name);
    assert_ne!(a.url, b.url);

    let mut conn_a = a.connect().await;
    let mut conn_b = b.connect().await;
    assert_eq!(
        query_text(&mut conn_a, "SELECT current_database()::text").await,
        a.name
    );
    assert_eq!(
        query_text(&mut conn_b, "SELECT current_database()::text").await,
        b.name
    );

    let migrations = migrate::embedded_versions().unwrap();
    for conn in [&mut conn_a, &mut conn_b] {
        let applied = query_count(conn, "SELECT count(*) FROM __diesel_schema_migrations").await;
        assert_eq!(applied, migrations.len() as i64);
        assert!(!migrate::has_pending(conn).await.unwrap());
    }
    assert!(
        !migrations.is_empty(),
        "no migrations embedded: is migrations/ empty?"
    );

    // Changes to one don't show in the other.
    diesel::sql_query("CREATE TABLE only_in_a (x int)")
        .execute(&mut conn_a)
        .await
        .unwrap();
    let exists_in_b: bool = sql::<Bool>("SELECT to_regclass('only_in_a') IS NOT NULL")
        .get_result(&mut conn_b)
        .await
        .unwrap();
    assert!(!exists_in_b);
}

#[tokio::test]
async fn a_dropped_test_database_is_gone() {
    let keep = test_db().await;
    let gone = test_db().await;
    let (gone_name, gone_url) = (gone.name.clone(), gone.url.clone());
    // An open connection must not keep the database alive.
    let _open = gone.connect().await;
    drop(gone);

    let mut conn = keep.connect().await;
    let left: i64 = sql::<BigInt>("SELECT count(*) FROM pg_database WHERE datname = ")
        .bind::<Text, _>(&gone_name)
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let err = AsyncPgConnection::establish(&gone_url)
        .await
        .err()
        .expect("connecting to a dropped database must fail");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn a_fresh_database_reports_pending_migrations() {
    let db = test_db().await;
    let mut conn = db.connect().await;
    assert!(!migrate::has_pending(&mut conn).await.unwrap());
    diesel::sql_query("DELETE FROM __diesel_schema_migrations")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(migrate::has_pending(&mut conn).await.unwrap());
}

/// The cluster tests need the PostgreSQL binaries: the launcher is part of the product, so
/// their absence is a failure, not a reason to skip.
fn binaries_or_skip() -> bool {
    if let Err(e) = find_bindir() {
        panic!("{e}");
    }
    true
}

#[test]
fn find_bindir_finds_the_server_programs() {
    if !binaries_or_skip() {
        return;
    }
    let bindir = find_bindir().unwrap();
    for program in ["initdb", "postgres"] {
        assert!(bindir.join(program).is_file(), "{}", bindir.display());
    }
}

fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .unwrap()
}

/// A persistent cluster, as `danbao serve` runs it: data survives a restart. The data
/// directory's path is too long for a socket address, so this also covers the private
/// socket directory.
#[test]
fn a_local_cluster_keeps_its_data_across_restarts() {
    if !binaries_or_skip() {
        return;
    }
    let scratch = scratch_dir("danbao-cluster-test-");
    let data_dir = scratch
        .path()
        .join("a-data-directory-with-a-rather-long-name-so-that-its-socket-path-exceeds-the-limit");
    let options = ClusterOptions {
        data_dir: data_dir.clone(),
        ephemeral: false,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let cluster = LocalCluster::start(options.clone()).unwrap();
    assert_eq!(cluster.data_dir(), data_dir.canonicalize().unwrap());
    let socket_dir = cluster.socket_dir().to_path_buf();
    assert!(socket_dir.starts_with("/tmp"), "{}", socket_dir.display());
    runtime.block_on(async {
        cluster.ensure_database("app").await.unwrap();
        cluster.ensure_database("app").await.unwrap(); // idempotent
        let mut conn = AsyncPgConnection::establish(&cluster.url("app"))
            .await
            .unwrap();
        diesel::sql_query("CREATE TABLE kept (note text)")
            .execute(&mut conn)
            .await
            .unwrap();
        diesel::sql_query("INSERT INTO kept VALUES ('still here')")
            .execute(&mut conn)
            .await
            .unwrap();
    });
    cluster.stop();
    assert!(
        !socket_dir.exists(),
        "the private socket directory is removed"
    );
    assert!(
        !data_dir.join("postmaster.pid").exists(),
        "the server has stopped"
    );

    let cluster = LocalCluster::start(options).unwrap();
    runtime.block_on(async {
        let mut conn = AsyncPgConnection::establish(&cluster.url("app"))
            .await
            .unwrap();
        assert_eq!(
            query_text(&mut conn, "SELECT note FROM kept").await,
            "still here"
        );
    });
    drop(cluster); // Drop stops it too.
    assert!(!data_dir.join("postmaster.pid").exists());
    assert!(data_dir.join("server.log").is_file());
}

/// The data directory sits in the socket's place when its path is short enough.
#[test]
fn a_short_data_directory_holds_the_socket() {
    if !binaries_or_skip() {
        return;
    }
    let scratch = scratch_dir("danbao-cluster-test-");
    let cluster = LocalCluster::start(ClusterOptions {
        data_dir: scratch.path().join("d"),
        ephemeral: true,
    })
    .unwrap();
    assert_eq!(cluster.socket_dir(), cluster.data_dir());
    assert!(cluster.data_dir().join(".s.PGSQL.5432").exists());
    let url = cluster.url("postgres");
    assert!(url.starts_with(&format!(
        "host={} port=5432 user=danbao",
        cluster.data_dir().display()
    )));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            let fsync = query_text(&mut conn, "SELECT current_setting('fsync')").await;
            assert_eq!(fsync, "off", "ephemeral clusters run without fsync");
        });
}

/// As root the server runs as `postgres`, which must be able to reach the data directory.
#[test]
fn an_unreachable_data_directory_is_explained() {
    if !nix::unistd::geteuid().is_root() || !binaries_or_skip() {
        return;
    }
    let private = tempfile::Builder::new()
        .prefix("danbao-private-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = LocalCluster::start(ClusterOptions {
        data_dir: private.path().join("data"),
        ephemeral: true,
    })
    .unwrap_err();
    assert!(matches!(err, ClusterError::NotTraversable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("--data-dir"), "{message}");
    assert!(
        message.contains(&private.path().display().to_string()),
        "{message}"
    );
}
