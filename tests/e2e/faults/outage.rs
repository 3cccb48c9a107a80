//! PostgreSQL stops for 10 s under load: every request in the outage answers 503
//! problem+json with Retry-After promptly, /readyz says not ready, and afterwards the service
//! recovers by itself with nothing acknowledged missing.

use super::load::{Load, Sample};
use super::world::{books_of, seed};
use crate::harness::{danbao, traversable_tempdir, Server, ADMIN_PASSWORD, DATA_KEY, JWT_SECRET};
use danbao_persistence::cluster::{ClusterOptions, LocalCluster};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const OUTAGE: Duration = Duration::from_secs(10);
/// Short, so that the bound below is tight; the default is 5 s.
const ACQUIRE_TIMEOUT_MS: u64 = 1000;
/// What a slow CI machine may add to the acquire timeout.
const MARGIN: Duration = Duration::from_secs(2);
const CLIENTS: usize = 4;

async fn start_cluster(data_dir: PathBuf) -> LocalCluster {
    tokio::task::spawn_blocking(move || {
        LocalCluster::start(ClusterOptions {
            data_dir,
            ephemeral: true,
        })
        .expect("start the test's PostgreSQL")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_and_recovers() {
    let tmp = traversable_tempdir("danbao-outage-");
    let data_dir = tmp.path().join("pg");
    let cluster = start_cluster(data_dir.clone()).await;
    cluster.ensure_database("danbao").await.unwrap();
    let url = cluster.url("danbao");
    let mut cmd = danbao();
    cmd.env("DATABASE_URL", &url)
        .env("DANBAO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("DANBAO_JWT_SECRET", JWT_SECRET)
        .env("DANBAO_DATA_KEY", DATA_KEY)
        .env("DANBAO_POOL_SIZE", "4")
        .env("DANBAO_BANK_RATE_PER_SECOND", "0")
        .env("DANBAO_ACQUIRE_TIMEOUT_MS", ACQUIRE_TIMEOUT_MS.to_string())
        .env("DANBAO_DATA_DIR", tmp.path().join("unused"));
    let (mut server, _) = Server::start(cmd).await;
    let world = seed(&server, CLIENTS as u32).await;

    let load = Load::start(&server, &world, CLIENTS, "O");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stop_cluster = tokio::task::spawn_blocking(move || cluster.stop());
    stop_cluster.await.unwrap();
    let down = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let up_begin = Instant::now();
    let cluster = start_cluster(data_dir.clone()).await;
    let up = Instant::now();
    // Let the service find its feet, then a little steady traffic.
    let recovered_by = up + Duration::from_secs(30);
    loop {
        if load.succeeded_since(up) {
            break;
        }
        assert!(
            Instant::now() < recovered_by,
            "no request succeeded within 30 s of PostgreSQL's return\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (samples, probes) = load.stop().await;
    assert!(
        server.exit_status().is_none(),
        "danbao exited during the outage\n{}",
        server.logs()
    );

    // Every answer is a success or a clean 503; never a 500 or an internal detail.
    for s in &samples {
        s.assert_ok_or_clean_503();
    }
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= down && s.sent + s.took <= up_begin)
        .collect();
    let unavailable = during.iter().filter(|s| s.status == 503).count();
    let longest = during.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(
        during.len() >= 10,
        "too few requests in the outage: {}",
        during.len()
    );
    assert_eq!(
        unavailable,
        during.len(),
        "requests in the outage that did not get 503: {:?}",
        during
            .iter()
            .filter(|s| s.status != 503)
            .collect::<Vec<_>>()
    );
    let bound = Duration::from_millis(ACQUIRE_TIMEOUT_MS) + MARGIN;
    assert!(
        longest <= bound,
        "an answer in the outage took {longest:?} (bound {bound:?})"
    );
    let ready_probes: Vec<_> = probes
        .iter()
        .filter(|p| p.sent >= down && p.sent + p.took <= up_begin)
        .collect();
    assert!(!ready_probes.is_empty(), "no /readyz probe in the outage");
    assert!(
        ready_probes.iter().all(|p| p.status == 503),
        "/readyz in the outage: {:?}",
        ready_probes
    );
    let first_ok = samples
        .iter()
        .filter(|s| s.sent >= up && s.status < 300)
        .map(|s| s.sent + s.took)
        .min()
        .expect("a success after the outage");
    let recovery = first_ok - up;
    assert!(
        probes.iter().any(|p| p.sent >= up && p.status == 200),
        "/readyz never said ready again"
    );

    // Nothing acknowledged is missing; then the bank resends what was not acknowledged and
    // every repayment is on the books exactly once.
    let mut acked: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut sent: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.reference.is_some()) {
        let (loan, r) = (s.loan.clone(), s.reference.clone().unwrap());
        sent.entry(loan.clone()).or_default().insert(r.clone());
        if s.status < 300 {
            acked.entry(loan).or_default().insert(r);
        }
    }
    for (loan, refs) in &acked {
        let (books, _) = books_of(&server, &world.teller, loan).await;
        let books: BTreeSet<String> = books.into_iter().collect();
        let missing: Vec<_> = refs.difference(&books).collect();
        assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    }
    let mut resent = 0;
    for (loan, refs) in &sent {
        for r in refs.difference(acked.get(loan).unwrap_or(&BTreeSet::new())) {
            super::load::repay_until_acknowledged(&server, &world.teller, loan, r).await;
            resent += 1;
        }
    }
    let mut total = 0usize;
    for (loan, refs) in &sent {
        let (books, paid) = books_of(&server, &world.teller, loan).await;
        let on_books: BTreeSet<String> = books.iter().cloned().collect();
        assert_eq!(
            books.len(),
            on_books.len(),
            "a reference booked twice on {loan}"
        );
        assert_eq!(
            &on_books, refs,
            "the books of {loan} differ from what the bank sent"
        );
        assert_eq!(paid, Decimal::from(refs.len()), "paid on {loan}");
        total += refs.len();
    }
    println!(
        "outage of {} s: {} requests during it, {} answered 503 (all problem+json with \
         Retry-After), longest answer {} ms (bound {} ms); /readyz 503 on {} probes; first \
         success {} ms after PostgreSQL was back; {} repayments acknowledged, {} resent by \
         the bank, {} on the books, each once",
        OUTAGE.as_secs(),
        during.len(),
        unavailable,
        longest.as_millis(),
        bound.as_millis(),
        ready_probes.len(),
        recovery.as_millis(),
        acked.values().map(BTreeSet::len).sum::<usize>(),
        resent,
        total
    );
    server.stop(crate::harness::STOP_TIMEOUT);
    drop(cluster);
}
