//! SIGTERM under load: requests in flight (a repayment file, single repayments) finish with
//! 2xx, new connections are refused, the process exits 0 with its PostgreSQL stopped, and
//! after a restart every acknowledged write is there. The restart also rotates the JWT
//! secret: tokens signed with the old one keep working through DANBAO_JWT_PREVIOUS_SECRETS.

use super::crash::{embedded_serve, repayment_file, wait_no_processes};
use super::load::Load;
use super::world::{books_of, seed, World};
use crate::harness::{traversable_tempdir, Server, JWT_SECRET, STOP_TIMEOUT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Small enough to finish well inside the 30 s shutdown timeout at today's batch speed, on a
/// busy machine too.
const FILE_ROWS: usize = 400;
const FILE_LOANS: usize = 2;
const NEW_JWT_SECRET: &str = "the-rotated-jwt-secret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_and_loses_nothing() {
    let tmp = traversable_tempdir("danbao-sigterm-");
    let data_dir = tmp.path().join("data");
    let (mut server, _) = Server::start(embedded_serve(&data_dir)).await;
    let world = seed(&server, (FILE_LOANS + 1) as u32).await;
    let csv = repayment_file(&world, FILE_LOANS, 0..FILE_ROWS, FILE_ROWS, "G");
    let singles = World {
        loans: world.loans[FILE_LOANS..].to_vec(),
        ..world.clone()
    };
    // The bank uploads its file slowly: half, then (after SIGTERM) the rest. The request is
    // in flight at SIGTERM whatever the speed of the batch path.
    let (half_sent, go_on) = (
        tokio::sync::oneshot::channel(),
        tokio::sync::oneshot::channel(),
    );
    let (addr, token) = (server.addr, world.teller.clone());
    let file = tokio::task::spawn_blocking(move || {
        upload_in_two_halves(addr, token, csv, half_sent.0, go_on.1)
    });
    let load = Load::start(&server, &singles, 2, "T");
    half_sent.1.await.unwrap();
    let started = Instant::now();
    while !load.succeeded_since(started) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no single repayment went through"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let file_in_flight = !file.is_finished();
    let term = Instant::now();
    kill(Pid::from_raw(server.pid()), Signal::SIGTERM).unwrap();
    // New connections are refused at once, while the file is still being applied.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let refused = fresh.get(server.url("/healthz")).send().await;
    assert!(
        refused.as_ref().is_err_and(|e| e.is_connect()),
        "a new connection after SIGTERM: {refused:?}"
    );
    go_on.0.send(()).unwrap();
    let (status, batch) = file.await.unwrap();
    assert_eq!(status, 201, "the file in flight at SIGTERM: {batch}");
    assert_eq!(batch["applied"], FILE_ROWS, "{batch}");
    let exit =
        tokio::task::block_in_place(|| server.wait_exit(STOP_TIMEOUT + Duration::from_secs(5)));
    let stopped_in = term.elapsed();
    assert_eq!(
        exit.code(),
        Some(0),
        "exit after SIGTERM: {exit}\n{}",
        server.logs()
    );
    // Its PostgreSQL was stopped before it exited.
    wait_no_processes(&data_dir, Duration::from_secs(2));
    let (samples, _) = load.stop().await;
    for s in &samples {
        assert!(
            s.status == 0 || (200..300).contains(&s.status),
            "an answer during the shutdown: {s:?}"
        );
    }

    // Restart with a new signing secret, the old one only verifying.
    let mut cmd = embedded_serve(&data_dir);
    cmd.env("DANBAO_JWT_SECRET", NEW_JWT_SECRET)
        .env("DANBAO_JWT_PREVIOUS_SECRETS", JWT_SECRET);
    let (server, _) = Server::start(cmd).await;
    // world.teller was signed with the old secret.
    let mut acked = 0;
    for (loan, _) in &world.loans {
        let (refs, paid) = books_of(&server, &world.teller, loan).await;
        let on_books: BTreeSet<String> = refs.iter().cloned().collect();
        assert_eq!(refs.len(), on_books.len(), "a reference booked twice");
        for s in samples
            .iter()
            .filter(|s| &s.loan == loan && (200..300).contains(&s.status))
        {
            let r = s.reference.as_ref();
            if let Some(r) = r {
                assert!(
                    on_books.contains(r),
                    "acknowledged {r} is missing after restart"
                );
                acked += 1;
            }
        }
        assert_eq!(
            paid,
            rust_decimal::Decimal::from(refs.len()),
            "paid into {loan}"
        );
    }
    let new_token = server.token("teller", super::world::PASSWORD).await;
    let header = jsonwebtoken_kid(&new_token);
    assert_ne!(
        header,
        jsonwebtoken_kid(&world.teller),
        "new tokens use the new key"
    );
    println!(
        "sigterm: file in flight at SIGTERM: {file_in_flight}; {FILE_ROWS} rows applied; \
         exit 0 after {} ms; {acked} single repayments acknowledged, all there after restart; \
         old-key token accepted after rotation",
        stopped_in.as_millis()
    );
}

/// The `kid` in a JWT's header.
fn jsonwebtoken_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

/// POSTs `csv` as a repayment file over a raw HTTP/1.1 connection with a chunked body: the
/// first half of its lines, then `half_sent`, then (after `go_on`) the rest. Returns the
/// status and the JSON answer.
fn upload_in_two_halves(
    addr: std::net::SocketAddr,
    token: String,
    csv: String,
    half_sent: tokio::sync::oneshot::Sender<()>,
    go_on: tokio::sync::oneshot::Receiver<()>,
) -> (u16, serde_json::Value) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/repayment-batches HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).unwrap();
    let lines: Vec<&str> = csv.split_inclusive('\n').collect();
    let (first, rest) = lines.split_at(lines.len() / 2);
    let chunk = |part: &[&str]| {
        let data = part.concat();
        format!("{:x}\r\n{data}\r\n", data.len())
    };
    tcp.write_all(chunk(first).as_bytes()).unwrap();
    tcp.flush().unwrap();
    half_sent.send(()).unwrap();
    go_on.blocking_recv().unwrap();
    tcp.write_all(chunk(rest).as_bytes()).unwrap();
    tcp.write_all(b"0\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(answer.clone()));
    (status, json)
}

/// The data of a chunked HTTP/1.1 body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
