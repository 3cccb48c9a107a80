//! Overload: 20× more concurrent clients than database connections. The pool is bounded and
//! its wait is bounded, so the excess queues and then gets 503 problem+json with
//! Retry-After; the process neither crashes nor grows.

use super::load::Sample;
use super::world::seed;
use crate::database_url::serve_on_test_db_with;
use crate::harness::rss_kib;
use std::time::{Duration, Instant};

const POOL: usize = 2;
const CLIENTS: usize = 40;
const ACQUIRE_TIMEOUT_MS: u64 = 100;
const ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_clients_than_connections_queue_then_get_503_without_growing() {
    let pool = POOL.to_string();
    let acquire = ACQUIRE_TIMEOUT_MS.to_string();
    let mut served = serve_on_test_db_with(&[
        ("DANBAO_POOL_SIZE", pool.as_str()),
        ("DANBAO_ACQUIRE_TIMEOUT_MS", acquire.as_str()),
        ("DANBAO_BANK_RATE_PER_SECOND", "0"),
    ])
    .await;
    let server = &mut served.server;
    let world = seed(server, 2).await;
    let mut rss = Vec::new();
    let (mut ok, mut unavailable, mut longest) = (0, 0, Duration::ZERO);
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for i in 0..CLIENTS {
            let (http, base, token) = (
                server.http.clone(),
                server.base.clone(),
                world.admin.clone(),
            );
            let loan = world.loans[i % world.loans.len()].0.clone();
            tasks.push(tokio::spawn(async move {
                // The heaviest reads there are: statistics and a loan with its schedule.
                let url = if i % 2 == 0 {
                    format!("{base}/v1/stats/summary")
                } else {
                    format!("{base}/v1/loans/{loan}")
                };
                let sent = Instant::now();
                let res = http.get(url).bearer_auth(token).send().await.unwrap();
                let status = res.status().as_u16();
                let header = |n: &str| {
                    res.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let (content_type, retry_after) = (
                    header("content-type").unwrap_or_default(),
                    header("retry-after"),
                );
                Sample {
                    sent,
                    took: sent.elapsed(),
                    status,
                    content_type,
                    retry_after,
                    body: res.text().await.unwrap_or_default(),
                    loan,
                    reference: None,
                }
            }));
        }
        for t in tasks {
            let s = t.await.unwrap();
            s.assert_ok_or_clean_503();
            if s.status == 503 {
                unavailable += 1;
            } else {
                ok += 1;
            }
            longest = longest.max(s.took);
        }
        assert!(
            server.exit_status().is_none(),
            "danbao died in round {round}"
        );
        rss.push(rss_kib(server.pid()));
    }
    assert!(ok > 0, "nothing was served");
    assert!(
        unavailable > 0,
        "no request waited out the {ACQUIRE_TIMEOUT_MS} ms pool timeout"
    );
    // Later rounds hold no more memory than the first plus a little: nothing piles up.
    let growth = rss.last().unwrap().saturating_sub(rss[0]);
    assert!(
        growth < 32 * 1024,
        "RSS grew by {growth} KiB over the rounds: {rss:?}"
    );
    let res = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200, "not ready after the overload");
    println!(
        "overload: {ROUNDS} rounds of {CLIENTS} concurrent clients on {POOL} connections: {ok} \
         served, {unavailable} got 503 (Retry-After), longest answer {} ms; RSS {rss:?} KiB",
        longest.as_millis()
    );
}
