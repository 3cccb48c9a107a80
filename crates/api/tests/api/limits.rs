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
