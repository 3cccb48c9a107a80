//! A power cut in the server room: `danbao serve` (with its own PostgreSQL) is SIGKILLed in
//! the middle of a bank's repayment file and a stream of single repayments. After a restart
//! the bank resends everything, and every repayment is on the books exactly once.

use super::load::{repay_until_acknowledged, Load};
use super::world::{books_of, dec, seed, World};
use crate::harness::{
    danbao, processes_using, traversable_tempdir, Server, ADMIN_PASSWORD, JWT_SECRET, STOP_TIMEOUT,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bank's repayments come as FILES files of FILE_ROWS rows in all. The issue asks for
/// 100,000 rows; at today's ~500 rows/s of the batch path that is minutes per pass, so CI
/// uses fewer until the faster batch path lands (then raise FILE_ROWS).
pub const FILE_ROWS: usize = 100_000;
const FILES: usize = 4;
/// Loans the files pay into (each gets FILE_ROWS / FILE_LOANS rows of 1.00).
const FILE_LOANS: usize = 100;
/// Loans the single repayments go to (apart from the files', so their rows stay apart).
const SINGLE_LOANS: usize = 2;
/// Kill once this many files are acknowledged and the next has been in flight this long: a
/// file is applied in one transaction, so this is mid-file at any speed.
const KILL_AFTER_FILES: usize = 2;
const KILL_IN_FLIGHT: Duration = Duration::from_millis(300);

pub fn embedded_serve(data_dir: &Path) -> Command {
    let mut cmd = danbao();
    cmd.env("DANBAO_DATA_DIR", data_dir)
        .env("DANBAO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("DANBAO_JWT_SECRET", JWT_SECRET)
        // The bank's traffic here is the point, not its rate.
        .env("DANBAO_BANK_RATE_PER_SECOND", "0");
    cmd
}

/// Rows `from..to` of the bank's repayments: row `i` pays 1.00 into file loan
/// `i % FILE_LOANS`, by loan id or by account number alternately, with value dates rising
/// through March 2025 over `total` rows.
pub fn repayment_file(
    world: &World,
    loans: usize,
    rows: std::ops::Range<usize>,
    total: usize,
    prefix: &str,
) -> String {
    let mut csv = String::from("bank_reference,value_date,amount,loan_id,bank_account_no\r\n");
    for i in rows {
        let (loan, acc) = &world.loans[i % loans];
        let day = 1 + (i / loans) * 28 / total.div_ceil(loans);
        if i % 2 == 0 {
            csv.push_str(&format!(
                "{prefix}-{i:06},2025-03-{day:02},1.00,{loan},\r\n"
            ));
        } else {
            csv.push_str(&format!("{prefix}-{i:06},2025-03-{day:02},1.00,,{acc}\r\n"));
        }
    }
    csv
}

pub async fn post_file(base: String, token: String, csv: String) -> (u16, serde_json::Value) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .unwrap();
    match http
        .post(format!("{base}/v1/repayment-batches"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
    {
        Ok(res) => crate::harness::read_json(res).await,
        Err(e) => (0, serde_json::Value::String(format!("{e:?}"))),
    }
}

/// Waits (up to `timeout`) until nothing runs in `dir` any more: the server's PostgreSQL
/// went down with it.
pub fn wait_no_processes(dir: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = processes_using(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running in {} after {} s: {left:?}",
            dir.display(),
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_file_loses_nothing_and_doubles_nothing() {
    let tmp = traversable_tempdir("danbao-crash-");
    let data_dir = tmp.path().join("data");
    let (mut server, _) = Server::start(embedded_serve(&data_dir)).await;
    let world = seed(&server, (FILE_LOANS + SINGLE_LOANS) as u32).await;
    let per_file = FILE_ROWS / FILES;
    let files: Vec<String> = (0..FILES)
        .map(|f| {
            repayment_file(
                &world,
                FILE_LOANS,
                f * per_file..(f + 1) * per_file,
                FILE_ROWS,
                "F",
            )
        })
        .collect();
    let singles_world = World {
        loans: world.loans[FILE_LOANS..].to_vec(),
        ..world.clone()
    };

    // The bank sends its files one after the other; `sending` says which is in flight since when.
    let sending = Arc::new(Mutex::new((0usize, Instant::now())));
    let bank = {
        let (base, token, files, sending) = (
            server.base.clone(),
            world.teller.clone(),
            files.clone(),
            sending.clone(),
        );
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for (f, csv) in files.into_iter().enumerate() {
                *sending.lock().unwrap() = (f, Instant::now());
                let (status, answer) = post_file(base.clone(), token.clone(), csv).await;
                answers.push((status, answer));
                if status != 201 {
                    break;
                }
            }
            answers
        })
    };
    let load = Load::start(&server, &singles_world, SINGLE_LOANS, "S");
    let started = Instant::now();
    loop {
        let (file, since) = *sending.lock().unwrap();
        if file >= KILL_AFTER_FILES
            && since.elapsed() >= KILL_IN_FLIGHT
            && load.succeeded_since(started)
        {
            break;
        }
        if bank.is_finished() {
            let answers = bank.await.unwrap();
            panic!("the bank's files ended before the kill: raise FILE_ROWS\n{answers:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the files made no progress\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_after = started.elapsed();
    kill(Pid::from_raw(server.pid()), Signal::SIGKILL).unwrap();
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    let answers = bank.await.unwrap();
    let acknowledged = answers.iter().filter(|(s, _)| *s == 201).count();
    assert!(acknowledged >= KILL_AFTER_FILES, "{answers:?}");
    assert!(
        acknowledged < FILES,
        "every file was acknowledged before the kill"
    );
    assert_eq!(
        answers.last().unwrap().0,
        0,
        "the file in flight got an answer: {answers:?}"
    );
    let (samples, _) = load.stop().await;
    // Its PostgreSQL went down with it (parent-death signal), leaving the data dir free.
    wait_no_processes(&data_dir, Duration::from_secs(30));

    let (server, _) = Server::start(embedded_serve(&data_dir)).await;
    // The bank resends every file: those acknowledged are all duplicates now, the rest apply.
    let (mut applied, mut duplicates) = (0, 0);
    for (f, csv) in files.into_iter().enumerate() {
        let (status, batch) = post_file(server.base.clone(), world.teller.clone(), csv).await;
        assert_eq!(status, 201, "{batch}");
        assert_eq!(batch["rows"], per_file, "{batch}");
        assert_eq!(batch["failed"], 0, "{batch}");
        let (a, d) = (
            batch["applied"].as_u64().unwrap() as usize,
            batch["duplicates"].as_u64().unwrap() as usize,
        );
        assert_eq!(a + d, per_file, "{batch}");
        if f < acknowledged {
            assert_eq!(
                d, per_file,
                "file {f} was acknowledged before the crash: {batch}"
            );
        }
        applied += a;
        duplicates += d;
    }
    // And every single repayment it sent, acknowledged or not.
    let mut sent: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut acked = 0;
    for s in samples.iter().filter(|s| s.reference.is_some()) {
        let r = s.reference.clone().unwrap();
        acked += usize::from((200..300).contains(&s.status));
        repay_until_acknowledged(&server, &world.teller, &s.loan, &r).await;
        sent.entry(s.loan.clone()).or_default().insert(r);
    }

    // The books: each loan holds exactly the references sent to it, once each.
    let mut expected: BTreeMap<String, BTreeSet<String>> = sent;
    for (i, line) in csv_lines(FILE_LOANS, FILE_ROWS, "F") {
        expected
            .entry(world.loans[i].0.clone())
            .or_default()
            .insert(line);
    }
    let mut total = Decimal::ZERO;
    let mut principal_paid = Decimal::ZERO;
    for (loan, refs) in &expected {
        let (books, paid) = books_of(&server, &world.teller, loan).await;
        let on_books: BTreeSet<String> = books.iter().cloned().collect();
        assert_eq!(
            books.len(),
            on_books.len(),
            "a reference booked twice on {loan}"
        );
        assert_eq!(&on_books, refs, "books of {loan}");
        assert_eq!(paid, Decimal::from(refs.len()), "paid into {loan}");
        total += paid;
        let (_, l) = server
            .get_json(&world.teller, &format!("/v1/loans/{loan}"))
            .await;
        principal_paid += dec(&l["position"]["principal_paid"]);
    }
    let singles: usize = expected.values().map(BTreeSet::len).sum::<usize>() - FILE_ROWS;
    assert_eq!(total, Decimal::from(FILE_ROWS + singles));
    // The statistics (kept apart from the entries) agree: all that was issued, less the
    // principal repaid, is outstanding.
    let (status, summary) = server.get_json(&world.admin, "/v1/stats/summary").await;
    assert_eq!(status, 200, "{summary}");
    let issued = Decimal::from(12_000 * world.loans.len() as i64);
    assert_eq!(
        dec(&summary["total"]["outstanding_balance"]),
        issued - principal_paid,
        "{summary}"
    );
    println!(
        "crash: SIGKILL after {:.1} s, {acknowledged} of {FILES} files ({FILE_ROWS} rows in \
         all) acknowledged, the next in flight; resend of all files: {applied} rows applied, \
         {duplicates} duplicates, 0 failed; {singles} single repayments ({acked} acknowledged \
         before the kill), all resent; the books hold {total} in {} repayments, each once; \
         statistics and `danbao verify` agree",
        killed_after.as_secs_f64(),
        FILE_ROWS + singles
    );
    drop(server);
    wait_no_processes(&data_dir, STOP_TIMEOUT);
    let out = embedded_serve(&data_dir).arg("verify").output().unwrap();
    assert!(
        out.status.success(),
        "danbao verify after the crash:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (file loan index, bank reference) of each row of [`repayment_file`].
fn csv_lines(loans: usize, rows: usize, prefix: &str) -> Vec<(usize, String)> {
    (0..rows)
        .map(|i| (i % loans, format!("{prefix}-{i:06}")))
        .collect()
}
