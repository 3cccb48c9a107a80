//! The server's memory after a burst of logins: argon2 takes 19 MiB per hash, and glibc
//! used to keep each of those blocks in the arena of the thread that hashed.
use crate::database_url::serve_on_test_db_with;
use crate::harness::{rss_kib, ADMIN_PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_leaves_no_hashing_memory_behind() {
    let served = serve_on_test_db_with(&[
        ("DANBAO_TOKEN_RATE_PER_MINUTE", "0"),
        // Logins in flight count as failed until they pass.
        ("DANBAO_LOGIN_MAX_FAILURES", "100"),
    ])
    .await;
    let s = &served.server;
    let pid = s.pid();
    s.token("admin", ADMIN_PASSWORD).await;
    let before = rss_kib(pid);
    let tokens =
        futures_util::future::join_all((0..16).map(|_| s.token("admin", ADMIN_PASSWORD))).await;
    assert_eq!(tokens.len(), 16);
    let after = rss_kib(pid);
    // Without a fixed mmap threshold, 16 logins left five or more 19 MiB blocks resident.
    assert!(
        after < before + 20 * 1024,
        "resident memory {before} KiB before 16 logins, {after} KiB after"
    );
}
