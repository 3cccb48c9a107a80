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
