//! A bank's steady traffic: clients that each report single repayments of 1.00 (a new
//! reference every time) and read a loan, in a loop, recording every answer; and a /readyz
//! prober.

use super::world::World;
use crate::harness::Server;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub const VALUE_DATE: &str = "2025-03-01";

#[derive(Debug, Clone)]
pub struct Sample {
    pub sent: Instant,
    pub took: Duration,
    /// 0: no HTTP answer at all.
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: String,
    pub loan: String,
    /// The bank reference of a repayment; `None` for a read.
    pub reference: Option<String>,
}

impl Sample {
    /// 2xx, or a 503 problem+json with Retry-After and nothing about the database's insides.
    pub fn assert_ok_or_clean_503(&self) {
        if (200..300).contains(&self.status) {
            return;
        }
        assert_eq!(self.status, 503, "{self:?}");
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "{self:?}"
        );
        assert!(
            self.retry_after.is_some(),
            "503 without Retry-After: {self:?}"
        );
        let problem: serde_json::Value = serde_json::from_str(&self.body).expect("JSON");
        assert_eq!(problem["code"], "service_unavailable", "{self:?}");
        let lower = self.body.to_lowercase();
        for secret in ["postgres", "host=", "socket", "tokio", "diesel", "pool"] {
            assert!(!lower.contains(secret), "503 says {secret:?}: {self:?}");
        }
    }
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub sent: Instant,
    pub took: Duration,
    pub status: u16,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<Sample>>>,
    prober: JoinHandle<Vec<Probe>>,
    /// When the latest successful request was sent.
    last_ok: Arc<Mutex<Option<Instant>>>,
}

async fn send(req: reqwest::RequestBuilder) -> (u16, String, Option<String>, String) {
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let header = |name: &str| {
                res.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let ct = header("content-type").unwrap_or_default();
            let retry = header("retry-after");
            (status, ct, retry, res.text().await.unwrap_or_default())
        }
        Err(e) => (0, String::new(), None, e.to_string()),
    }
}

pub fn repayment(s: &Server, token: &str, loan: &str, reference: &str) -> reqwest::RequestBuilder {
    s.http
        .post(s.url(&format!("/v1/loans/{loan}/repayments")))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "bank_reference": reference, "value_date": VALUE_DATE, "amount": "1.00"
        }))
}

/// What a bank does with a repayment it got no answer for: send it again until it is
/// acknowledged (201 the first time, 200 if it had been booked after all).
pub async fn repay_until_acknowledged(s: &Server, token: &str, loan: &str, reference: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, _, body) = send(repayment(s, token, loan, reference)).await;
        if status == 200 || status == 201 {
            return;
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "resending {reference}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Load {
    /// `clients` bank clients, client `i` on loan `i % loans`, references `<prefix><i>-<n>`.
    pub fn start(s: &Server, world: &World, clients: usize, prefix: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let last_ok = Arc::new(Mutex::new(None));
        let mut handles = Vec::new();
        for i in 0..clients {
            let (http, base) = (s.http.clone(), s.base.clone());
            let token = world.teller.clone();
            let loan = world.loans[i % world.loans.len()].0.clone();
            let (stop, last_ok) = (stop.clone(), last_ok.clone());
            let prefix = format!("{prefix}{i}-");
            handles.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let reference = (n % 2 == 1).then(|| format!("{prefix}{n}"));
                    let req = match &reference {
                        Some(r) => http
                            .post(format!("{base}/v1/loans/{loan}/repayments"))
                            .json(&serde_json::json!({
                                "bank_reference": r, "value_date": VALUE_DATE, "amount": "1.00"
                            })),
                        None => http.get(format!("{base}/v1/loans/{loan}")),
                    };
                    let sent = Instant::now();
                    let (status, content_type, retry_after, body) =
                        send(req.bearer_auth(&token)).await;
                    let took = sent.elapsed();
                    if (200..300).contains(&status) {
                        let mut last = last_ok.lock().unwrap();
                        *last = Some(last.map_or(sent, |l: Instant| l.max(sent)));
                    } else {
                        // As a bank client would: do not hammer a service that said 503.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    samples.push(Sample {
                        sent,
                        took,
                        status,
                        content_type,
                        retry_after,
                        body,
                        loan: loan.clone(),
                        reference,
                    });
                }
                samples
            }));
        }
        let (http, base, stop2) = (s.http.clone(), s.base.clone(), stop.clone());
        let prober = tokio::spawn(async move {
            let mut probes = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let (status, ..) = send(http.get(format!("{base}/readyz"))).await;
                probes.push(Probe {
                    sent,
                    took: sent.elapsed(),
                    status,
                });
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            probes
        });
        Load {
            stop,
            clients: handles,
            prober,
            last_ok,
        }
    }

    pub fn succeeded_since(&self, t: Instant) -> bool {
        self.last_ok.lock().unwrap().is_some_and(|l| l >= t)
    }

    pub async fn stop(self) -> (Vec<Sample>, Vec<Probe>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for h in self.clients {
            all.extend(h.await.unwrap());
        }
        (all, self.prober.await.unwrap())
    }
}
