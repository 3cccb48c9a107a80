//! Request rate limits: per bank principal, and per address at the token endpoint.

use crate::helpers::*;
use danbao_api::ratelimit::{RateLimiter, RateLimits};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_bank_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let app = spawn_app_limited(RateLimits {
        bank: RateLimiter::per_second(2, 5),
        token: RateLimiter::unlimited(),
    })
    .await;
    let p = app.seed_province().await;
    let teller = app
        .user_token("teller.rl", "bank", json!({ "bank_id": p.bank_a }))
        .await;
    for _ in 0..5 {
        let r = app
            .call(Method::GET, "/v1/loans", Some(&teller), None)
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = app
        .call(Method::GET, "/v1/loans", Some(&teller), None)
        .await;
    let retry = r.headers().get("retry-after").cloned();
    let v = assert_problem(r, 429, "too_many_requests").await;
    assert_eq!(retry.unwrap().to_str().unwrap(), "1", "{v}");
    // The admin is not a bank: not limited.
    for _ in 0..10 {
        let r = app
            .call(Method::GET, "/v1/loans", Some(&app.admin_token), None)
            .await;
        assert_eq!(r.status(), 200);
    }
    // Half a second later the bucket has a token again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = app
        .call(Method::GET, "/v1/loans", Some(&teller), None)
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn token_requests_from_one_address_are_limited_whatever_the_password() {
    let app = spawn_app_limited(RateLimits {
        bank: RateLimiter::unlimited(),
        token: RateLimiter::per_minute(6, 3),
    })
    .await;
    // spawn_app logged the admin in once; two more fit in the burst of 3.
    for _ in 0..2 {
        let r = app
            .call(
                Method::POST,
                "/v1/auth/token",
                None,
                Some(json!({"username": "admin", "password": "wrong password 1"})),
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"username": "admin", "password": ADMIN_PASSWORD})),
        )
        .await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let v = assert_problem(r, 429, "too_many_requests").await;
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    assert!(v["detail"].as_str().unwrap().contains("address"), "{v}");
}

/// Holds `LOCK TABLE ... IN <mode>` in an open transaction until dropped or released.
async fn lock_table(
    url: &str,
    table: &str,
    mode: &str,
) -> danbao_persistence::diesel_async::AsyncPgConnection {
    use danbao_persistence::diesel_async::{
        AsyncConnection, AsyncPgConnection, SimpleAsyncConnection,
    };
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    conn.batch_execute(&format!("BEGIN; LOCK TABLE {table} IN {mode} MODE"))
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn a_request_past_the_time_limit_is_stopped_with_503_and_its_write_rolled_back() {
    use danbao_persistence::diesel_async::SimpleAsyncConnection;
    let app = spawn_app_timed(Some(Duration::from_millis(800)), None).await;
    let desk = app.desk("1000.00").await;
    let path = format!("/v1/funds/{}/contributions", desk.fund);
    let send = || {
        app.http
            .post(app.url(&path))
            .bearer_auth(&desk.entrant)
            .header("Idempotency-Key", "slow-1")
            .json(&json!({"value_date": "2020-01-01", "amount": "500.00", "source": "county_finance"}))
            .send()
    };
    // The contribution is written, then its audit record waits for the lock held here.
    let mut blocker = lock_table(&app.db.url, "audit_events", "EXCLUSIVE").await;
    let started = std::time::Instant::now();
    let r = send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.headers()["retry-after"], "5");
    let v = assert_problem(r, 503, "request_timeout").await;
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "answered after {took:?}: {v}"
    );
    blocker.batch_execute("ROLLBACK").await.unwrap();

    // Nothing of it was kept, and the connection it held is not handed out half-used: every
    // connection of the pool (4) answers again.
    for _ in 0..8 {
        let (status, pos) = app
            .get_json(&format!("/v1/funds/{}", desk.fund), &desk.approver)
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            pos["balance"], "1000.00",
            "the stopped contribution was kept"
        );
    }
    // The same key runs afresh, once.
    let r = send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = send().await.unwrap();
    assert!(r.status().is_success());
    let (_, pos) = app
        .get_json(&format!("/v1/funds/{}", desk.fund), &desk.approver)
        .await;
    assert_eq!(pos["balance"], "1500.00");
}

#[tokio::test]
async fn a_query_past_the_statement_timeout_is_cancelled_with_503_not_500() {
    use danbao_persistence::diesel_async::SimpleAsyncConnection;
    let app = spawn_app_timed(None, Some(Duration::from_millis(300))).await;
    let desk = app.desk("1000.00").await;
    let mut blocker = lock_table(&app.db.url, "funds", "ACCESS EXCLUSIVE").await;
    let started = std::time::Instant::now();
    let r = app
        .call(
            Method::GET,
            &format!("/v1/funds/{}", desk.fund),
            Some(&desk.approver),
            None,
        )
        .await;
    let took = started.elapsed();
    let v = assert_problem(r, 503, "request_timeout").await;
    assert!(
        took < Duration::from_secs(3),
        "answered after {took:?}: {v}"
    );
    blocker.batch_execute("ROLLBACK").await.unwrap();
    let (status, pos) = app
        .get_json(&format!("/v1/funds/{}", desk.fund), &desk.approver)
        .await;
    assert_eq!(status, 200);
    assert_eq!(pos["balance"], "1000.00");
}
