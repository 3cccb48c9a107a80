use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn contributions_move_the_balance_and_the_ledger_adds_up() {
    let app = spawn_app().await;
    let desk = app.desk("30000.00").await;
    let path = format!("/v1/funds/{}/contributions", desk.fund);
    for (date, amount, source) in [
        ("2005-03-01", "12345.67", "province_finance"),
        ("2006-07-01", "0.33", "other"),
    ] {
        let r = app
            .call(
                Method::POST,
                &path,
                Some(&desk.entrant),
                Some(json!({"value_date": date, "amount": amount, "source": source})),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    // 30,000.00 + 12,345.67 + 0.33 = 42,346.00
    let (status, pos) = app
        .get_json(&format!("/v1/funds/{}", desk.fund), &desk.approver)
        .await;
    assert_eq!(status, 200);
    assert_eq!(pos["balance"], "42346.00");
    assert_eq!(pos["contributions"], "42346.00");
    assert_eq!(pos["outstanding_guaranteed"], "0.00");
    // The 2020 preset allows 5×: 42,346.00 × 5 = 211,730.00 of guarantees.
    assert_eq!(pos["leverage_multiple"], "5");
    assert_eq!(pos["headroom"], "211730.00");
    // On 2005-12-31 only the first two contributions had arrived: 42,345.67.
    let (_, then) = app
        .get_json(
            &format!("/v1/funds/{}?as_of=2005-12-31", desk.fund),
            &desk.approver,
        )
        .await;
    assert_eq!(then["balance"], "42345.67");
    let (_, before) = app
        .get_json(
            &format!("/v1/funds/{}?as_of=2002-12-31", desk.fund),
            &desk.approver,
        )
        .await;
    assert_eq!(before["balance"], "0.00");
    assert_eq!(
        before["leverage_multiple"],
        serde_json::Value::Null,
        "no policy was in force yet"
    );

    let (status, ledger) = app
        .get_json(
            &format!("/v1/funds/{}/ledger?limit=2", desk.fund),
            &desk.entrant,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ledger["items"][0]["balance_after"], "30000.00");
    assert_eq!(ledger["items"][1]["balance_after"], "42345.67");
    let cursor = ledger["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get_json(
            &format!("/v1/funds/{}/ledger?cursor={cursor}", desk.fund),
            &desk.entrant,
        )
        .await;
    assert_eq!(rest["items"][0]["amount"], "0.33");
    assert_eq!(rest["items"][0]["balance_after"], "42346.00");
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn bad_contributions_are_refused_and_other_centres_see_nothing() {
    let app = spawn_app().await;
    let desk = app.desk("1000.00").await;
    let path = format!("/v1/funds/{}/contributions", desk.fund);
    for (body, field) in [
        (
            json!({"value_date": "2999-01-01", "amount": "1.00", "source": "other"}),
            "value_date",
        ),
        (
            json!({"value_date": "2020-01-01", "amount": "0.00", "source": "other"}),
            "amount",
        ),
        (
            json!({"value_date": "2020-01-01", "amount": "-5.00", "source": "other"}),
            "amount",
        ),
        (
            json!({"value_date": "2020-01-01", "amount": "1.001", "source": "other"}),
            "amount",
        ),
        (
            json!({"value_date": "2020-01-01", "amount": "1.00", "source": "lottery"}),
            "source",
        ),
    ] {
        let r = app
            .call(Method::POST, &path, Some(&desk.entrant), Some(body))
            .await;
        let v = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    let other = app
        .user_token(
            "clerk.jdz",
            "clerk",
            json!({ "centre_id": desk.p.centre_jdz }),
        )
        .await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/funds/{}", desk.fund),
            Some(&other),
            None,
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .call(
            Method::POST,
            &path,
            Some(&other),
            Some(json!({"value_date": "2020-01-01", "amount": "1.00", "source": "other"})),
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .call(
            Method::POST,
            &path,
            Some(&app.admin_token),
            Some(json!({"value_date": "2020-01-01", "amount": "1.00", "source": "other"})),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
    let (_, list) = app.get_json("/v1/funds", &other).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let (_, pos) = app
        .get_json(&format!("/v1/funds/{}", desk.fund), &desk.entrant)
        .await;
    assert_eq!(
        pos["balance"], "1000.00",
        "nothing refused may have been written"
    );
}

#[tokio::test]
async fn contributions_are_idempotent_per_key() {
    let app = spawn_app().await;
    let desk = app.desk("1000.00").await;
    let path = format!("/v1/funds/{}/contributions", desk.fund);
    let send = |key: &'static str, amount: &'static str| {
        let (http, url, token) = (app.http.clone(), app.url(&path), desk.entrant.clone());
        async move {
            http.post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"value_date": "2020-01-01", "amount": amount, "source": "county_finance"}))
                .send()
                .await
                .unwrap()
        }
    };
    // Ten concurrent sends of the same request: one is applied, the rest replay it or are
    // told it is in flight; none is counted twice.
    let answers = futures_util::future::join_all((0..10).map(|_| send("k-1", "500.00"))).await;
    let mut ids = std::collections::BTreeSet::new();
    for r in answers {
        match r.status().as_u16() {
            201 => {
                let v: serde_json::Value = r.json().await.unwrap();
                ids.insert(v["id"].as_i64().unwrap());
            }
            409 => {
                assert_problem(r, 409, "idempotency_key_in_flight").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ids.len(), 1, "every 201 must be the same entry");
    // A retry after the first finished replays the very same answer.
    let r = send("k-1", "500.00").await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["id"].as_i64().unwrap(), *ids.iter().next().unwrap());
    assert_eq!(v["balance_after"], "1500.00");
    // The same key with another body is refused.
    let r = send("k-1", "600.00").await;
    assert_problem(r, 422, "idempotency_key_reused").await;
    // A failed request does not poison its key: refused for a future date, then fine.
    let bad = app
        .http
        .post(app.url(&path))
        .bearer_auth(&desk.entrant)
        .header("Idempotency-Key", "k-2")
        .json(&json!({"value_date": "2999-01-01", "amount": "1.00", "source": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let r = send("k-2", "1.00").await;
    assert_eq!(r.status(), 201);
    let (_, pos) = app
        .get_json(&format!("/v1/funds/{}", desk.fund), &desk.entrant)
        .await;
    assert_eq!(pos["balance"], "1501.00", "1,000.00 + 500.00 once + 1.00");
    // Keys are per caller: another clerk's k-1 is a new request.
    let other = app
        .user_token(
            "clerk.other",
            "clerk",
            json!({ "centre_id": desk.p.centre_nanchang }),
        )
        .await;
    let r = app
        .http
        .post(app.url(&path))
        .bearer_auth(&other)
        .header("Idempotency-Key", "k-1")
        .json(&json!({"value_date": "2020-01-01", "amount": "500.00", "source": "county_finance"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let r = app
        .http
        .post(app.url(&path))
        .bearer_auth(&other)
        .header("Idempotency-Key", "")
        .json(&json!({"value_date": "2020-01-01", "amount": "1.00", "source": "other"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_idempotency_key").await;
}
