//! Daily repayment files: CSV and JSON, per-row outcomes, resends, atomic mode, idempotency,
//! scope, and the books reconciling after thousands of rows.
use crate::helpers::*;
use danbao_persistence::diesel::sql_types::{BigInt, Bool, Text};
use danbao_persistence::diesel::{sql_query, QueryableByName};
use danbao_persistence::diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};

const PRINCIPAL: &str = "12000.00";
const DISBURSED: &str = "2025-01-15";

struct Banks {
    a: String,
    b: String,
}

async fn banks(app: &TestApp, desk: &Desk) -> Banks {
    Banks {
        a: app
            .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
            .await,
        b: app
            .user_token("bank.b", "bank", json!({ "bank_id": desk.p.bank_b }))
            .await,
    }
}

/// An active loan of `bank_id` (12,000.00 over 12 months, equal principal), disbursed on
/// 2025-01-15 with account number `ACC-<seq>`.
async fn active(app: &TestApp, desk: &Desk, token: &str, bank_id: &str, seq: u32) -> String {
    let b = app.person(&desk.entrant, seq, json!({})).await;
    let loan = app
        .applied(
            &desk.entrant,
            desk,
            &b,
            json!({ "principal": PRINCIPAL, "term_months": 12, "applied_on": "2025-01-05", "bank_id": bank_id }),
        )
        .await;
    let r = app
        .call(
            Method::POST,
            &format!("/v1/loans/{loan}/approval"),
            Some(&desk.approver),
            Some(json!({ "decided_on": "2025-01-10" })),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = app
        .call(
            Method::POST,
            &format!("/v1/loans/{loan}/disbursement"),
            Some(token),
            Some(json!({ "value_date": DISBURSED, "bank_account_no": format!("ACC-{seq}") })),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    loan
}

async fn send(
    app: &TestApp,
    token: &str,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url(&format!("/v1/repayment-batches{query}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

async fn csv(app: &TestApp, token: &str, query: &str, body: &str) -> reqwest::Response {
    send(app, token, query, "text/csv", body.to_owned(), None).await
}

async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let actual = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn outcomes(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["outcome"].as_str().unwrap().to_owned())
        .collect()
}

async fn fund_outstanding(app: &TestApp) -> String {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        o: String,
    }
    let mut conn = app.db.connect().await;
    let r: Row = sql_query("SELECT outstanding_guaranteed::text AS o FROM funds")
        .get_result(&mut conn)
        .await
        .unwrap();
    r.o
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = app.db.connect().await;
    let r: Row = sql_query(sql).get_result(&mut conn).await.unwrap();
    r.n
}

/// Every fund's outstanding guaranteed is principal − principal repaid (current allocations
/// of non-reversed repayments) over its approved and active loans.
async fn funds_reconcile(app: &TestApp) {
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = Bool)]
        ok: bool,
    }
    let mut conn = app.db.connect().await;
    let c: Check = sql_query(
        "SELECT bool_and(f.outstanding_guaranteed = coalesce((
                  SELECT sum(l.principal - coalesce((
                    SELECT sum(a.to_principal) FROM repayments r JOIN repayment_allocations_current a ON a.repayment_id = r.id
                    WHERE r.loan_id = l.id
                      AND NOT EXISTS (SELECT 1 FROM repayment_reversals v WHERE v.repayment_id = r.id)), 0))
                  FROM loans l WHERE l.fund_id = f.id AND l.status IN ('approved', 'active')), 0)) AS ok
         FROM funds f",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(c.ok, "a fund does not reconcile");
}

async fn outstanding_principal(app: &TestApp, token: &str, loan: &str) -> String {
    let (status, v) = app.get_json(&format!("/v1/loans/{loan}"), token).await;
    assert_eq!(status, 200, "{v}");
    v["position"]["outstanding_principal"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn batch_csv_by_loan_id_and_account_number_applies_and_a_resend_is_all_duplicates() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let l1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let l2 = active(&app, &desk, &bank.a, &desk.p.bank_a, 2).await;
    assert_eq!(fund_outstanding(&app).await, "24000.00");

    // Both columns in the header; each row fills one. CRLF, a BOM, a quoted field.
    let file = format!(
        "\u{feff}bank_reference,value_date,amount,loan_id,bank_account_no\r\n\
         R-1,2025-02-15,1043.50,{l1},\r\n\
         \"R-2\",2025-02-15,1043.50,,ACC-2\r\n"
    );
    let v = json_of(csv(&app, &bank.a, "", &file).await, 201).await;
    assert_eq!(v["status"], "applied");
    assert_eq!(v["format"], "csv");
    assert_eq!(v["atomic"], false);
    assert_eq!(
        (&v["rows"], &v["applied"], &v["duplicates"], &v["failed"]),
        (&json!(2), &json!(2), &json!(0), &json!(0))
    );
    assert_eq!(outcomes(&v), ["applied", "applied"]);
    assert_eq!(v["items"][1]["loan_id"], l2.as_str());
    assert_eq!(v["items"][1]["bank_reference"], "R-2");
    assert!(v["items"][0]["repayment_id"].is_string());
    assert!(v["items"][0]["error"].is_null());
    assert_eq!(outstanding_principal(&app, &bank.a, &l1).await, "11000.00");
    assert_eq!(outstanding_principal(&app, &bank.a, &l2).await, "11000.00");
    assert_eq!(fund_outstanding(&app).await, "22000.00");

    // The same file again: every row a duplicate of the first, nothing moves.
    let again = json_of(csv(&app, &bank.a, "", &file).await, 201).await;
    assert_ne!(again["id"], v["id"]);
    assert_eq!(outcomes(&again), ["duplicate", "duplicate"]);
    assert_eq!(
        (&again["applied"], &again["duplicates"]),
        (&json!(0), &json!(2))
    );
    assert_eq!(
        again["items"][0]["repayment_id"],
        v["items"][0]["repayment_id"]
    );
    assert_eq!(fund_outstanding(&app).await, "22000.00");
    assert_eq!(outstanding_principal(&app, &bank.a, &l1).await, "11000.00");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM repayments").await, 2);
    // The single route agrees: the same reference and content answers 200.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/loans/{l1}/repayments"),
            Some(&bank.a),
            Some(
                json!({ "bank_reference": "R-1", "value_date": "2025-02-15", "amount": "1043.50" }),
            ),
        )
        .await;
    assert_eq!(r.status(), 200);

    // Audited: one event per repayment applied, one per file.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'repayment.recorded'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'repayment_batch.received'"
        )
        .await,
        2
    );
    // Batches and their rows are append-only.
    let mut conn = app.db.connect().await;
    for sql in [
        "UPDATE repayment_batches SET failed = 0",
        "DELETE FROM repayment_batch_rows",
    ] {
        let err = sql_query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    funds_reconcile(&app).await;
}

#[tokio::test]
async fn batch_mixed_rows_answer_row_by_row_and_the_good_ones_apply() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let l1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let theirs = active(&app, &desk, &bank.b, &desk.p.bank_b, 2).await;
    let unknown = uuid::Uuid::now_v7();
    let file = format!(
        "bank_reference,value_date,amount,loan_id\n\
         G-1,2025-02-15,1043.50,{l1}\n\
         B-date,2025-02-30,10.00,{l1}\n\
         B-amount,2025-02-15,10.001,{l1}\n\
         B-unknown,2025-02-15,10.00,{unknown}\n\
         B-theirs,2025-02-15,10.00,{theirs}\n\
         B-over,2025-03-15,999999.00,{l1}\n\
         G-2,2025-03-15,100.00,{l1}\n\
         G-1,2025-02-15,1.00,{l1}\n\
         B-future,2999-01-01,1.00,{l1}\n\
         B-short,2025-02-15\n"
    );
    let v = json_of(csv(&app, &bank.a, "", &file).await, 201).await;
    assert_eq!(
        outcomes(&v),
        [
            "applied", "failed", "failed", "failed", "failed", "failed", "applied", "failed",
            "failed", "failed"
        ]
    );
    assert_eq!(
        (&v["rows"], &v["applied"], &v["failed"]),
        (&json!(10), &json!(2), &json!(8))
    );
    let err = |row: usize| {
        let e = &v["items"][row]["error"];
        (
            e["code"].as_str().unwrap().to_owned(),
            e["field"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(err(1), ("validation_failed".into(), "value_date".into()));
    assert_eq!(err(2), ("validation_failed".into(), "amount".into()));
    assert_eq!(err(3), ("not_found".into(), "loan_id".into()));
    // Another bank's loan is exactly as unknown as a loan that does not exist.
    assert_eq!(err(4), err(3));
    assert_eq!(
        v["items"][4]["error"]["message"],
        v["items"][3]["error"]["message"]
    );
    assert!(v["items"][4]["loan_id"].is_null());
    assert_eq!(err(5).0, "overpayment");
    assert_eq!(v["items"][5]["loan_id"], l1.as_str());
    assert_eq!(
        err(7),
        ("duplicate_reference".into(), "bank_reference".into())
    );
    assert_eq!(err(8), ("validation_failed".into(), "value_date".into()));
    assert_eq!(err(9), ("validation_failed".into(), "row".into()));
    assert_eq!(v["items"][9]["row"], 10);
    // 1,043.50 paid the first instalment; 100.00 on 03-15 went to interest then principal.
    let (_, l) = app.get_json(&format!("/v1/loans/{l1}"), &bank.a).await;
    assert_eq!(l["position"]["principal_paid"], "1060.12");
    let (_, t) = app.get_json(&format!("/v1/loans/{theirs}"), &bank.b).await;
    assert_eq!(t["position"]["principal_paid"], "0.00");
    funds_reconcile(&app).await;

    // Only the failed rows, a page at a time, cursor = row number.
    let id = v["id"].as_str().unwrap();
    let (status, p1) = app
        .get_json(
            &format!("/v1/repayment-batches/{id}?outcome=failed&limit=3"),
            &bank.a,
        )
        .await;
    assert_eq!(status, 200, "{p1}");
    let rows: Vec<i64> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, [2, 3, 4]);
    assert_eq!(p1["next_cursor"], "4");
    assert_eq!(p1["failed"], 8);
    let (_, p2) = app
        .get_json(
            &format!("/v1/repayment-batches/{id}?outcome=failed&limit=500&cursor=4"),
            &bank.a,
        )
        .await;
    let rows: Vec<i64> = p2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, [5, 6, 8, 9, 10]);
    assert!(p2["next_cursor"].is_null());
    let (status, _) = app
        .get_json(&format!("/v1/repayment-batches/{id}?outcome=nope"), &bank.a)
        .await;
    assert_eq!(status, 400);

    // Scope: another bank and a clerk see no such batch; a clerk may not send one.
    let (status, _) = app
        .get_json(&format!("/v1/repayment-batches/{id}"), &bank.b)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get_json(&format!("/v1/repayment-batches/{id}"), &desk.entrant)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get_json(
            &format!("/v1/repayment-batches/{}", uuid::Uuid::now_v7()),
            &bank.a,
        )
        .await;
    assert_eq!(status, 404);
    let r = csv(&app, &desk.entrant, "", &file).await;
    assert_problem(r, 403, "forbidden").await;
    let r = app
        .http
        .post(app.url("/v1/repayment-batches"))
        .header("content-type", "text/csv")
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn batch_atomic_mode_is_all_or_nothing() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let l1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let l2 = active(&app, &desk, &bank.a, &desk.p.bank_a, 2).await;
    let bad = format!(
        "bank_reference,value_date,amount,loan_id\n\
         A-1,2025-02-15,1043.50,{l1}\n\
         A-1,2025-02-15,1043.50,{l1}\n\
         A-2,2025-02-15,1043.50,{l2}\n\
         A-3,2025-02-15,999999.00,{l2}\n"
    );
    let v = json_of(csv(&app, &bank.a, "?atomic=true", &bad).await, 201).await;
    assert_eq!(v["status"], "rejected");
    assert_eq!(v["atomic"], true);
    // The second A-1 repeated a row of this very file: undone with it.
    assert_eq!(
        outcomes(&v),
        ["not_applied", "not_applied", "not_applied", "failed"]
    );
    assert_eq!(
        (&v["applied"], &v["duplicates"], &v["failed"]),
        (&json!(0), &json!(0), &json!(1))
    );
    assert!(v["items"][0]["repayment_id"].is_null());
    assert_eq!(v["items"][3]["error"]["code"], "overpayment");
    assert_eq!(fund_outstanding(&app).await, "24000.00");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM repayments").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'repayment.recorded'"
        )
        .await,
        0
    );
    // The rejected batch is on record.
    let (status, g) = app
        .get_json(
            &format!("/v1/repayment-batches/{}", v["id"].as_str().unwrap()),
            &bank.a,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(g["status"], "rejected");

    let good = format!(
        "bank_reference,value_date,amount,loan_id\n\
         A-1,2025-02-15,1043.50,{l1}\n\
         A-2,2025-02-15,1043.50,{l2}\n"
    );
    let v = json_of(csv(&app, &bank.a, "?atomic=true", &good).await, 201).await;
    assert_eq!(v["status"], "applied");
    assert_eq!(outcomes(&v), ["applied", "applied"]);
    assert_eq!(fund_outstanding(&app).await, "22000.00");
    // A file whose rows are all known already is not a failure in atomic mode either.
    let v = json_of(csv(&app, &bank.a, "?atomic=true", &good).await, 201).await;
    assert_eq!(v["status"], "applied");
    assert_eq!(outcomes(&v), ["duplicate", "duplicate"]);
    funds_reconcile(&app).await;
}

#[tokio::test]
async fn batch_json_body_and_quoted_csv_fields() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let l1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let body = json!({ "rows": [
        { "bank_reference": "J-1", "value_date": "2025-02-15", "amount": "1043.50", "loan_id": l1 },
        { "bank_reference": "J-2", "value_date": "2025-02-16", "amount": "1.00", "bank_account_no": "ACC-1" },
        { "bank_reference": "J-3", "value_date": "2025-02-16", "amount": 1, "bank_account_no": "ACC-1" },
        { "bank_reference": "J-4", "value_date": "2025-02-16", "amount": "1.00", "bank_account_no": "ACC-1", "memo": "x" },
        { "bank_reference": "J-5", "value_date": "2025-02-16", "amount": "1.00", "bank_account_no": "ACC-404" },
    ]});
    let v = json_of(
        send(
            &app,
            &bank.a,
            "",
            "application/json",
            body.to_string(),
            None,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(v["format"], "json");
    assert_eq!(
        outcomes(&v),
        ["applied", "applied", "failed", "failed", "failed"]
    );
    assert_eq!(v["items"][2]["error"]["field"], "amount");
    assert_eq!(v["items"][3]["error"]["field"], "memo");
    assert_eq!(v["items"][4]["error"]["code"], "not_found");
    assert_eq!(v["items"][4]["error"]["field"], "bank_account_no");
    let r = send(&app, &bank.a, "", "application/json", "[]", None).await;
    assert_problem(r, 422, "validation_failed").await;
    let r = send(&app, &bank.a, "", "application/json", "{\"rows\": [", None).await;
    assert_problem(r, 400, "malformed_json").await;

    // Commas, quotes and line breaks inside quoted fields.
    let file = format!(
        "amount,bank_reference,loan_id,value_date\n\
         \"2.00\",\"Q,1 \"\"morning\"\"\",{l1},2025-02-17\n\
         3.00,\"Q\n2\",{l1},2025-02-17\n"
    );
    let v = json_of(csv(&app, &bank.a, "", &file).await, 201).await;
    assert_eq!(outcomes(&v), ["applied", "failed"]);
    assert_eq!(v["items"][0]["bank_reference"], "Q,1 \"morning\"");
    // A line break is not a printable character of a reference.
    assert_eq!(v["items"][1]["error"]["field"], "bank_reference");
    let (_, list) = app
        .get_json(&format!("/v1/loans/{l1}/repayments"), &bank.a)
        .await;
    let refs: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bank_reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["J-1", "J-2", "Q,1 \"morning\""]);
    funds_reconcile(&app).await;
}

#[tokio::test]
async fn batch_file_level_problems_name_the_column_and_leave_nothing() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let l1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let r = csv(
        &app,
        &bank.a,
        "",
        &format!("bank_reference,value_date,amount,loan_id,memo\nR,2025-02-15,1.00,{l1},x\n"),
    )
    .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "memo");
    let r = csv(
        &app,
        &bank.a,
        "",
        &format!("bank_reference,value_date,loan_id\nR,2025-02-15,{l1}\n"),
    )
    .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "amount");
    let r = csv(&app, &bank.a, "", "bank_reference,value_date,amount\n").await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "loan_id");
    let r = csv(&app, &bank.a, "", "").await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "header");
    // A record longer than 4 KiB after good rows: nothing of the file stays.
    let file = format!(
        "bank_reference,value_date,amount,loan_id\nL-1,2025-02-15,1.00,{l1}\nL-2,2025-02-15,1.00,{}\n",
        "x".repeat(5000)
    );
    let r = csv(&app, &bank.a, "", &file).await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "row 2");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM repayments").await, 0);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM repayment_batches").await,
        0
    );
    let r = send(&app, &bank.a, "", "text/plain", "x", None).await;
    assert_problem(r, 415, "unsupported_media_type").await;
    let r = csv(&app, &bank.a, "?atomic=maybe", "bank_reference\n").await;
    assert_problem(r, 400, "invalid_query").await;
}

#[tokio::test]
async fn batch_idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let l1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let file = format!("bank_reference,value_date,amount,loan_id\nK-1,2025-02-15,1043.50,{l1}\n");
    let first = send(&app, &bank.a, "", "text/csv", file.clone(), Some("day-1")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send(&app, &bank.a, "", "text/csv", file.clone(), Some("day-1")).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM repayment_batches").await,
        1
    );
    // The same key with another body, or in atomic mode: 422.
    let other = format!("{file}K-2,2025-02-15,1.00,{l1}\n");
    let r = send(&app, &bank.a, "", "text/csv", other, Some("day-1")).await;
    assert_problem(r, 422, "idempotency_key_reused").await;
    let r = send(
        &app,
        &bank.a,
        "?atomic=true",
        "text/csv",
        file,
        Some("day-1"),
    )
    .await;
    assert_problem(r, 422, "idempotency_key_reused").await;
    assert_eq!(fund_outstanding(&app).await, "11000.00");
}

#[tokio::test]
async fn batch_of_thousands_of_rows_over_many_loans_reconciles() {
    let app = spawn_app().await;
    let desk = app.desk("200000.00").await;
    let bank = banks(&app, &desk).await;
    let mut loans = Vec::new();
    for seq in 1..=30 {
        loans.push(active(&app, &desk, &bank.a, &desk.p.bank_a, seq).await);
    }
    // 3,000 rows: 100 per loan, interleaved, half by loan id and half by account number.
    let mut file = String::from("bank_reference,value_date,amount,loan_id,bank_account_no\n");
    for i in 0..3000u32 {
        let k = (i % 30) as usize;
        let day = 1 + (i / 30) % 28;
        if i % 2 == 0 {
            file.push_str(&format!(
                "T-{i},2025-03-{day:02},{}.{:02},{},\n",
                50 + i % 7,
                i % 100,
                loans[k]
            ));
        } else {
            file.push_str(&format!(
                "T-{i},2025-03-{day:02},{}.{:02},,ACC-{}\n",
                50 + i % 7,
                i % 100,
                k + 1
            ));
        }
    }
    let v = json_of(csv(&app, &bank.a, "", &file).await, 201).await;
    assert_eq!(
        (&v["rows"], &v["applied"], &v["failed"]),
        (&json!(3000), &json!(3000), &json!(0))
    );
    assert_eq!(v["items"].as_array().unwrap().len(), 500);
    assert_eq!(v["next_cursor"], "500");
    funds_reconcile(&app).await;
    // The fund's outstanding is the sum over its loans' positions, as the API computes them.
    let mut total = rust_decimal::Decimal::ZERO;
    for l in &loans {
        total += outstanding_principal(&app, &bank.a, l)
            .await
            .parse::<rust_decimal::Decimal>()
            .unwrap();
    }
    assert_eq!(fund_outstanding(&app).await, total.to_string());
    assert!(total < rust_decimal::Decimal::from(30 * 12000));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'repayment.recorded'"
        )
        .await,
        3000
    );
}

#[tokio::test]
async fn batch_migration_reverts_and_reapplies() {
    let app = spawn_app().await;
    revert_and_reapply(&app, "2026-11-27-000005_repayment_batches").await;
}

#[tokio::test]
async fn batch_concurrent_files_and_single_repayments_do_not_deadlock() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let a1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let a2 = active(&app, &desk, &bank.a, &desk.p.bank_a, 2).await;
    let b1 = active(&app, &desk, &bank.b, &desk.p.bank_b, 3).await;
    // A second fund of the same centre, so the files span two funds.
    let fund2 = app.fund(&desk.entrant, "第二基金", "100000.00").await;
    let p = app.person(&desk.entrant, 4, json!({})).await;
    let a3 = app
        .applied(&desk.entrant, &desk, &p, json!({ "principal": PRINCIPAL, "term_months": 12, "applied_on": "2025-01-05", "fund_id": fund2 }))
        .await;
    let r = app
        .call(
            Method::POST,
            &format!("/v1/loans/{a3}/approval"),
            Some(&desk.approver),
            Some(json!({ "decided_on": "2025-01-10" })),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .call(
            Method::POST,
            &format!("/v1/loans/{a3}/disbursement"),
            Some(&bank.a),
            Some(json!({ "value_date": DISBURSED, "bank_account_no": "ACC-4" })),
        )
        .await;
    assert_eq!(r.status(), 200);

    let file = |tag: &str, loans: &[&str]| {
        let mut f = String::from("bank_reference,value_date,amount,loan_id\n");
        for (i, l) in loans.iter().cycle().take(40).enumerate() {
            f.push_str(&format!("{tag}-{i},2025-02-{:02},5.00,{l}\n", 1 + i % 28));
        }
        f
    };
    let f1 = file("X", &[&a1, &a3, &a2]);
    let f2 = file("Y", &[&a3, &a2, &a1]);
    let f3 = file("Z", &[&b1]);
    let singles = async {
        for i in 0..10 {
            for l in [&a1, &a3] {
                let r = app
                    .call(Method::POST, &format!("/v1/loans/{l}/repayments"), Some(&bank.a),
                        Some(json!({ "bank_reference": format!("S-{l}-{i}"), "value_date": "2025-02-20", "amount": "1.00" })))
                    .await;
                assert_eq!(r.status(), 201);
            }
        }
    };
    let (r1, r2, r3, ()) = tokio::join!(
        csv(&app, &bank.a, "", &f1),
        csv(&app, &bank.a, "?atomic=true", &f2),
        csv(&app, &bank.b, "", &f3),
        singles
    );
    for r in [r1, r2, r3] {
        let v = json_of(r, 201).await;
        assert_eq!(
            (&v["status"], &v["applied"]),
            (&json!("applied"), &json!(40)),
            "{v}"
        );
    }
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM repayments").await,
        140
    );
    funds_reconcile(&app).await;
}

async fn text(app: &TestApp, sql: &str) -> String {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = danbao_persistence::diesel::sql_types::Nullable<Text>)]
        t: Option<String>,
    }
    let mut conn = app.db.connect().await;
    let r: Row = sql_query(sql).get_result(&mut conn).await.unwrap();
    r.t.unwrap_or_default()
}

/// What a loan's books say: status, position, its repayments' current allocations and its
/// statistics facts (everything but the ids).
async fn books_of(app: &TestApp, token: &str, loan: &str) -> Value {
    let (s, l) = app.get_json(&format!("/v1/loans/{loan}"), token).await;
    assert_eq!(s, 200, "{l}");
    let (s, r) = app
        .get_json(&format!("/v1/loans/{loan}/repayments"), token)
        .await;
    assert_eq!(s, 200, "{r}");
    let repayments: Vec<Value> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            json!([
                i["value_date"],
                i["amount"],
                i["to_penalty"],
                i["to_interest"],
                i["to_principal"],
                i["reversed"]
            ])
        })
        .collect();
    let facts = text(
        app,
        &format!(
            "SELECT string_agg(concat_ws('|', number, due_date, principal, interest, subsidy, extended, paid_on), ';' ORDER BY number) AS t
             FROM instalment_facts WHERE loan_id = '{loan}'"
        ),
    )
    .await;
    let payments = text(
        app,
        &format!(
            "SELECT string_agg(concat_ws('|', number, value_date, principal), ';' ORDER BY number, value_date) AS t
             FROM principal_payments WHERE loan_id = '{loan}'"
        ),
    )
    .await;
    json!({ "status": l["status"], "position": l["position"], "repayments": repayments,
        "facts": facts, "principal_payments": payments })
}

/// The rows of the file that apply a chunk at once, sent instead one by one to the single
/// route on twin loans: the same outcomes and the same books, row for row. The rows hit the
/// cases a chunk applied in memory could get wrong: several rows for one loan, a backdated row
/// that moves earlier allocations, an overpayment among good rows of the same loan, a row
/// that settles its loan followed by another for it, a resend and a clash inside the chunk,
/// a reference of one loan sent for another.
#[tokio::test]
async fn batch_chunk_applies_exactly_like_single_repayments() {
    let app = spawn_app().await;
    let desk = app.desk("200000.00").await;
    let bank = banks(&app, &desk).await;
    let mut file_loans = Vec::new();
    let mut single_loans = Vec::new();
    for seq in 1..=3 {
        file_loans.push(active(&app, &desk, &bank.a, &desk.p.bank_a, seq).await);
        single_loans.push(active(&app, &desk, &bank.a, &desk.p.bank_a, 10 + seq).await);
    }
    let (_, l) = app
        .get_json(&format!("/v1/loans/{}", file_loans[2]), &bank.a)
        .await;
    let payoff = l["position"]["payoff_amount"].as_str().unwrap().to_owned();
    let today = l["position"]["as_of"].as_str().unwrap().to_owned();
    let rows: Vec<(usize, &str, &str, &str)> = vec![
        (0, "R1", "2025-02-15", "1043.50"),
        (0, "R2", "2025-03-15", "100.00"),
        (1, "R3", "2025-04-01", "500.00"),
        (0, "R4", "2025-02-01", "50.00"),
        (1, "R5", "2025-03-01", "999999.00"),
        (1, "R6", "2025-03-02", "20.00"),
        (2, "R7", &today, &payoff),
        (2, "R8", "2025-03-01", "10.00"),
        (0, "R2", "2025-03-15", "100.00"),
        (0, "R4", "2025-02-01", "51.00"),
        (1, "R1", "2025-02-15", "1043.50"),
        (0, "R9", "2025-01-20", "7.00"),
    ];
    let mut file = String::from("bank_reference,value_date,amount,loan_id\n");
    for (k, r, d, a) in &rows {
        file.push_str(&format!("F-{r},{d},{a},{}\n", file_loans[*k]));
    }
    let v = json_of(csv(&app, &bank.a, "", &file).await, 201).await;
    let from_file: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| match i["outcome"].as_str().unwrap() {
            "failed" => i["error"]["code"].as_str().unwrap().to_owned(),
            o => o.to_owned(),
        })
        .collect();
    let mut one_by_one = Vec::new();
    for (k, r, d, a) in &rows {
        let resp = app
            .call(
                Method::POST,
                &format!("/v1/loans/{}/repayments", single_loans[*k]),
                Some(&bank.a),
                Some(json!({ "bank_reference": format!("S-{r}"), "value_date": d, "amount": a })),
            )
            .await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        one_by_one.push(match status {
            201 => "applied".to_owned(),
            200 => "duplicate".to_owned(),
            _ => body["code"].as_str().unwrap().to_owned(),
        });
    }
    assert_eq!(from_file, one_by_one);
    assert_eq!(
        from_file,
        [
            "applied",
            "applied",
            "applied",
            "applied",
            "overpayment",
            "applied",
            "applied",
            "overpayment",
            "duplicate",
            "duplicate_reference",
            "duplicate_reference",
            "applied"
        ]
    );
    for (f, s) in file_loans.iter().zip(&single_loans) {
        let (fb, sb) = (
            books_of(&app, &bank.a, f).await,
            books_of(&app, &bank.a, s).await,
        );
        assert_eq!(fb, sb);
    }
    let settled = books_of(&app, &bank.a, &file_loans[2]).await;
    assert_eq!(settled["status"], "settled");
    // The backdated rows moved R1 and R2: rows were appended for their allocations, and only
    // for repayments whose allocation moved (each is booked with its own).
    let moved = |loan: &str| {
        format!(
            "SELECT count(DISTINCT repayment_id) AS n FROM repayment_allocations a \
             JOIN repayments r ON r.id = a.repayment_id WHERE a.loan_id = '{loan}' \
             AND (a.to_penalty, a.to_interest, a.to_principal) \
                 IS DISTINCT FROM (r.to_penalty, r.to_interest, r.to_principal)"
        )
    };
    let rows = |loan: &str| {
        format!("SELECT count(DISTINCT repayment_id) AS n FROM repayment_allocations WHERE loan_id = '{loan}'")
    };
    assert!(count(&app, &moved(&file_loans[0])).await >= 2);
    assert_eq!(
        count(&app, &rows(&file_loans[0])).await,
        count(&app, &moved(&file_loans[0])).await
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'repayment.recorded'"
        )
        .await,
        14,
        "seven rows applied on each side"
    );
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let report = danbao_api::verify::run(&app.db.url, today).await.unwrap();
    assert!(report.ok(), "{report:#?}");
}

/// Should a chunk's set write fail (here a trigger refuses multi-row inserts of repayments),
/// the chunk goes row by row and every row still gets its own outcome.
#[tokio::test]
async fn batch_chunk_falls_back_to_row_by_row_when_its_set_write_fails() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let l1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let l2 = active(&app, &desk, &bank.a, &desk.p.bank_a, 2).await;
    {
        let mut conn = app.db.connect().await;
        for sql in [
            "CREATE FUNCTION one_at_a_time() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF (SELECT count(*) FROM new_rows) > 1 THEN RAISE unique_violation USING MESSAGE = 'one at a time'; END IF;
               RETURN NULL;
             END $$",
            "CREATE TRIGGER one_at_a_time AFTER INSERT ON repayments REFERENCING NEW TABLE AS new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION one_at_a_time()",
        ] {
            sql_query(sql).execute(&mut conn).await.unwrap();
        }
    }
    let file = format!(
        "bank_reference,value_date,amount,loan_id\n\
         G-1,2025-02-15,100.00,{l1}\n\
         G-2,2025-02-16,100.00,{l2}\n\
         B-over,2025-02-17,999999.00,{l1}\n\
         G-3,2025-02-18,100.00,{l1}\n\
         G-1,2025-02-15,100.00,{l1}\n"
    );
    let v = json_of(csv(&app, &bank.a, "", &file).await, 201).await;
    assert_eq!(
        outcomes(&v),
        ["applied", "applied", "failed", "applied", "duplicate"]
    );
    assert_eq!(v["items"][2]["error"]["code"], "overpayment");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM repayments").await, 3);
    funds_reconcile(&app).await;
}

/// The references of the rows a file writes (a repayment's loan, an allocation's repayment, a
/// file row's loan and repayment, a span's loan) are checked once per statement instead of by
/// foreign keys: the database still refuses each dangling one, and one bad row among good
/// ones refuses the whole statement. Loans and banks keep their ids. The migration reverts.
#[tokio::test]
async fn the_database_refuses_file_rows_that_name_rows_that_do_not_exist() {
    use danbao_persistence::diesel_async::SimpleAsyncConnection;
    let app = spawn_app().await;
    revert_and_reapply(&app, "2026-11-28-000022_hot_references_per_statement").await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let l1 = active(&app, &desk, &bank.a, &desk.p.bank_a, 1).await;
    let l2 = active(&app, &desk, &bank.a, &desk.p.bank_a, 2).await;
    let file = format!(
        "bank_reference,value_date,amount,loan_id,bank_account_no\r\n\
         R-1,2025-02-15,1043.50,{l1},\r\n\
         R-2,2025-02-15,1043.50,{l2},\r\n"
    );
    let v = json_of(csv(&app, &bank.a, "", &file).await, 201).await;
    let batch = v["id"].as_str().unwrap().to_owned();
    let r1 = v["items"][0]["repayment_id"].as_str().unwrap().to_owned();
    let r2 = v["items"][1]["repayment_id"].as_str().unwrap().to_owned();
    let nobody = "00000000-0000-7000-8000-000000000001";
    let mut conn = app.db.connect().await;

    let refused = |sql: String, why: &'static str| (sql, why);
    let allocation = |repayment: &str, loan: &str| {
        format!("('{repayment}'::uuid, '{loan}'::uuid, 0::numeric, 0::numeric, 1043.50::numeric)")
    };
    let allocations = |rows: &[String]| {
        format!(
            "INSERT INTO repayment_allocations (repayment_id, loan_id, to_penalty, to_interest, \
             to_principal) SELECT * FROM (VALUES {}) v",
            rows.join(", ")
        )
    };
    let file_row = |n: u32, loan: &str, repayment: &str| {
        format!("('{batch}'::uuid, {n}, 'X-{n}', '{loan}'::uuid, 'duplicate', '{repayment}'::uuid)")
    };
    let file_rows = |rows: &[String]| {
        format!(
            "INSERT INTO repayment_batch_rows (batch_id, row_no, bank_reference, loan_id, \
             outcome, repayment_id) VALUES {}",
            rows.join(", ")
        )
    };
    let good_allocation = allocation(&r1, &l1);
    let good_row = file_row(10, &l1, &r1);
    let cases = [
        refused(
            format!(
                "INSERT INTO repayments (id, loan_id, bank_id, bank_reference, value_date, amount, \
                 to_penalty, to_interest, to_principal, created_by) VALUES \
                 (gen_random_uuid(), '{nobody}', '{}', 'DB-1', '2025-02-15', 10.00, 0, 10.00, 0, \
                 gen_random_uuid())",
                desk.p.bank_a
            ),
            "a repayment belongs to a disbursed loan of its bank",
        ),
        refused(
            allocations(&[good_allocation.clone(), allocation(nobody, &l1)]),
            "an allocation is of an existing repayment",
        ),
        refused(
            allocations(&[good_allocation.clone(), allocation(&r2, &l1)]),
            "an allocation is of an existing repayment",
        ),
        refused(
            file_rows(&[good_row.clone(), file_row(11, nobody, &r1)]),
            "a file row names an existing loan",
        ),
        refused(
            file_rows(&[good_row.clone(), file_row(11, &l1, &r2)]),
            "a file row names an existing loan",
        ),
        refused(
            file_rows(&[good_row.clone(), file_row(11, &l1, nobody)]),
            "a file row names an existing loan",
        ),
        refused(
            format!(
                "INSERT INTO overdue_spans (loan_id, starts_on, oldest_due, overdue, outstanding, \
                 maturity, region_code, bank_id, centre_id, category) \
                 SELECT '{nobody}', DATE '2025-03-16', DATE '2025-02-15', 1, 1, DATE '2026-01-15', \
                 region_code, bank_id, centre_id, category FROM loans WHERE id = '{l1}'"
            ),
            "an overdue span carries its loan's",
        ),
        refused(
            format!("UPDATE loans SET id = '{nobody}' WHERE id = '{l1}'"),
            "keeps its id",
        ),
        refused(
            format!(
                "UPDATE banks SET id = '{nobody}' WHERE id = '{}'",
                desk.p.bank_a
            ),
            "keeps its id",
        ),
    ];
    for (sql, why) in cases {
        let e = conn.batch_execute(&sql).await.unwrap_err().to_string();
        assert!(e.contains(why), "{sql}: {e}");
    }
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM repayment_batch_rows WHERE batch_id = '{batch}'")
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM repayment_allocations WHERE repayment_id = '{r1}'")
        )
        .await,
        0
    );
    // The good rows alone are taken.
    conn.batch_execute(&allocations(&[good_allocation]))
        .await
        .unwrap();
    conn.batch_execute(&file_rows(&[good_row])).await.unwrap();
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM repayment_batch_rows WHERE batch_id = '{batch}'")
        )
        .await,
        3
    );
}
