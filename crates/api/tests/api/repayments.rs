//! Bank reporting: disbursement (the schedule fixed on its date), repayments allocated by the
//! domain's rules, replays, reversals, settlement, and the books reconciling in SQL.
use crate::helpers::*;
use danbao_persistence::diesel::sql_types::{Bool, Text};
use danbao_persistence::diesel::{sql_query, QueryableByName};
use danbao_persistence::diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};

/// 12,000.00 at 4.35 %, equal principal over 12 months (monthly_30): 1,000.00 principal and
/// 43.50 interest in the first instalment.
const PRINCIPAL: &str = "12000.00";
const DISBURSED: &str = "2025-01-15";

struct Bank {
    a: String,
    b: String,
}

async fn banks(app: &TestApp, desk: &Desk) -> Bank {
    Bank {
        a: app
            .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
            .await,
        b: app
            .user_token("bank.b", "bank", json!({ "bank_id": desk.p.bank_b }))
            .await,
    }
}

/// An approved loan of bank A (applied 2025-01-05, approved 2025-01-10).
async fn approved(app: &TestApp, desk: &Desk, seq: u32) -> String {
    let b = app.person(&desk.entrant, seq, json!({})).await;
    let loan = app
        .applied(
            &desk.entrant,
            desk,
            &b,
            json!({ "principal": PRINCIPAL, "term_months": 12, "applied_on": "2025-01-05" }),
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
    loan
}

async fn disburse(
    app: &TestApp,
    token: &str,
    loan: &str,
    date: &str,
    account: &str,
) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/v1/loans/{loan}/disbursement"),
        Some(token),
        Some(json!({ "value_date": date, "bank_account_no": account })),
    )
    .await
}

async fn active(app: &TestApp, desk: &Desk, bank: &Bank, seq: u32) -> String {
    let loan = approved(app, desk, seq).await;
    let r = disburse(app, &bank.a, &loan, DISBURSED, &format!("ACC-{seq}")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    loan
}

async fn repay(
    app: &TestApp,
    token: &str,
    loan: &str,
    reference: &str,
    date: &str,
    amount: &str,
) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/v1/loans/{loan}/repayments"),
        Some(token),
        Some(json!({ "bank_reference": reference, "value_date": date, "amount": amount })),
    )
    .await
}

async fn reverse(app: &TestApp, token: &str, repayment: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/v1/repayments/{repayment}/reversal"),
        Some(token),
        Some(json!({ "reason": "amount keyed wrong" })),
    )
    .await
}

async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let actual = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap()
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

/// `danbao verify` in SQL: every fund's balance is the sum of its ledger; its outstanding
/// guaranteed is principal − principal repaid over its approved and active loans; and for
/// every disbursed loan, principal − the principal allocated (current allocation) of its
/// non-reversed repayments is the outstanding principal of the position the API computes.
async fn reconcile(app: &TestApp, token: &str) {
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = Bool)]
        ok: bool,
    }
    let mut conn = app.db.connect().await;
    let funds: Check = sql_query(
        "SELECT bool_and(f.balance = coalesce((SELECT sum(e.amount) FROM fund_ledger_entries e WHERE e.fund_id = f.id), 0)
                AND f.outstanding_guaranteed = coalesce((
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
    assert!(funds.ok, "a fund does not reconcile");
    #[derive(QueryableByName)]
    struct Loan {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        outstanding: String,
    }
    let loans: Vec<Loan> = sql_query(
        "SELECT l.id::text AS id, (l.principal - coalesce((
                  SELECT sum(a.to_principal) FROM repayments r JOIN repayment_allocations_current a ON a.repayment_id = r.id
                  WHERE r.loan_id = l.id
                    AND NOT EXISTS (SELECT 1 FROM repayment_reversals v WHERE v.repayment_id = r.id)), 0))::text AS outstanding
         FROM loans l WHERE l.disbursed_on IS NOT NULL",
    )
    .load(&mut conn)
    .await
    .unwrap();
    for l in loans {
        let (status, v) = app.get_json(&format!("/v1/loans/{}", l.id), token).await;
        assert_eq!(status, 200);
        assert_eq!(
            v["position"]["outstanding_principal"], l.outstanding,
            "loan {} does not reconcile",
            l.id
        );
    }
    // The fund's position as the API reports it today agrees with its running total.
    #[derive(QueryableByName)]
    struct Fund {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        outstanding: String,
        #[diesel(sql_type = Text)]
        centre: String,
    }
    let funds: Vec<Fund> = sql_query(
        "SELECT id::text AS id, outstanding_guaranteed::text AS outstanding, centre_id::text AS centre FROM funds",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let clerk = app.login("clerk.approver", "Test password 1").await;
    for f in funds {
        let (status, v) = app.get_json(&format!("/v1/funds/{}", f.id), &clerk).await;
        if status == 404 {
            continue; // another centre's fund: the clerk cannot see it
        }
        assert_eq!(status, 200, "{} {}", f.centre, v);
        assert_eq!(
            v["outstanding_guaranteed"], f.outstanding,
            "fund {} position disagrees with its total",
            f.id
        );
    }
}

#[tokio::test]
async fn disbursement_is_for_the_loans_bank_once_and_fixes_the_schedule() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let loan = approved(&app, &desk, 1).await;

    let r = disburse(&app, &desk.approver, &loan, DISBURSED, "ACC-1").await;
    assert_problem(r, 403, "forbidden").await;
    let r = disburse(&app, &bank.b, &loan, DISBURSED, "ACC-1").await;
    assert_problem(r, 404, "not_found").await;
    let r = disburse(&app, &bank.a, &loan, "2025-01-09", "ACC-1").await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "value_date");
    let r = disburse(&app, &bank.a, &loan, "2999-01-01", "ACC-1").await;
    assert_problem(r, 422, "validation_failed").await;
    // Before disbursement there is nothing to repay.
    let r = repay(&app, &bank.a, &loan, "R-0", DISBURSED, "1.00").await;
    assert_problem(r, 409, "invalid_state").await;

    let v = json_of(
        disburse(&app, &bank.a, &loan, DISBURSED, "ACC-1").await,
        200,
    )
    .await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["disbursed_on"], DISBURSED);
    assert_eq!(v["maturity_date"], "2026-01-15");
    assert_eq!(v["bank_account_no"], "ACC-1");
    let r = disburse(&app, &bank.a, &loan, DISBURSED, "ACC-1").await;
    assert_problem(r, 409, "invalid_state").await;

    // The account number is unique per bank.
    let other = approved(&app, &desk, 2).await;
    let r = disburse(&app, &bank.a, &other, DISBURSED, "ACC-1").await;
    assert_problem(r, 409, "already_exists").await;

    let (status, s) = app
        .get_json(&format!("/v1/loans/{loan}/schedule"), &bank.a)
        .await;
    assert_eq!(status, 200);
    assert_eq!(s["provisional"], false);
    assert_eq!(s["start_date"], DISBURSED);
    assert_eq!(s["instalments"].as_array().unwrap().len(), 12);
    assert_eq!(s["instalments"][0]["due_date"], "2025-02-15");
    assert_eq!(s["instalments"][0]["principal"], "1000.00");
    assert_eq!(s["instalments"][0]["interest"], "43.50");
    assert_eq!(s["instalments"][0]["principal_paid"], "0.00");

    // The stored schedule is append-only.
    let mut conn = app.db.connect().await;
    let err = sql_query("UPDATE instalments SET principal = 0")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");

    // An Idempotency-Key replays the first answer.
    let third = approved(&app, &desk, 3).await;
    for _ in 0..2 {
        let r = app
            .http
            .post(app.url(&format!("/v1/loans/{third}/disbursement")))
            .bearer_auth(&bank.a)
            .header("Idempotency-Key", "disb-3")
            .json(&json!({ "value_date": DISBURSED, "bank_account_no": "ACC-3" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // A bank's system (an API client of the loan's bank) reports as well.
    let client = app
        .admin_create(
            "/v1/bank-clients",
            json!({ "bank_id": desk.p.bank_a, "name": "nightly upload" }),
        )
        .await;
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({ "client_id": client["client_id"], "client_secret": client["client_secret"] })),
        )
        .await;
    let machine = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let fourth = approved(&app, &desk, 4).await;
    let v = json_of(
        disburse(&app, &machine, &fourth, DISBURSED, "ACC-4").await,
        200,
    )
    .await;
    assert_eq!(v["status"], "active");
    json_of(
        repay(&app, &machine, &fourth, "M-1", "2025-02-15", "1043.50").await,
        201,
    )
    .await;
    // The list shows each loan's position too.
    let (_, list) = app
        .get_json("/v1/loans?status=active&as_of=2025-02-15", &bank.a)
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let fourth_view = items.iter().find(|l| l["id"] == fourth.as_str()).unwrap();
    assert_eq!(fourth_view["position"]["outstanding_principal"], "11000.00");
    let third_view = items.iter().find(|l| l["id"] == third.as_str()).unwrap();
    assert_eq!(third_view["position"]["outstanding_principal"], PRINCIPAL);

    let (_, audit) = app
        .get_json("/v1/audit-events?limit=500", &app.admin_token)
        .await;
    let disbursed = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "loan.disbursed")
        .count();
    assert_eq!(disbursed, 3);
    reconcile(&app, &bank.a).await;
}

#[tokio::test]
async fn an_on_time_repayment_pays_interest_then_principal_and_moves_the_fund() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let loan = active(&app, &desk, &bank, 1).await;
    assert_eq!(fund_outstanding(&app).await, PRINCIPAL);

    // Another bank cannot report on it; a clerk cannot report at all.
    let r = repay(&app, &bank.b, &loan, "R-1", "2025-02-15", "1043.50").await;
    assert_problem(r, 404, "not_found").await;
    let r = repay(&app, &desk.entrant, &loan, "R-1", "2025-02-15", "1043.50").await;
    assert_problem(r, 403, "forbidden").await;
    let r = repay(&app, &bank.a, &loan, "R-1", "2025-01-14", "1043.50").await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "value_date");

    let v = json_of(
        repay(&app, &bank.a, &loan, "R-1", "2025-02-15", "1043.50").await,
        201,
    )
    .await;
    assert_eq!(v["to_penalty"], "0.00");
    assert_eq!(v["to_interest"], "43.50");
    assert_eq!(v["to_principal"], "1000.00");
    assert_eq!(v["reversed"], false);
    assert_eq!(v["position"]["outstanding_principal"], "11000.00");
    assert_eq!(v["position"]["principal_paid"], "1000.00");
    assert_eq!(v["position"]["guaranteed_outstanding"], "11000.00");
    assert_eq!(fund_outstanding(&app).await, "11000.00");

    // As of the second due date the loan is on time; a day later it is one day past due.
    let (_, l) = app
        .get_json(&format!("/v1/loans/{loan}?as_of=2025-03-15"), &bank.a)
        .await;
    assert_eq!(l["position"]["days_past_due"], 0);
    assert_eq!(l["position"]["outstanding_principal"], "11000.00");
    let (_, l) = app
        .get_json(&format!("/v1/loans/{loan}?as_of=2025-03-16"), &desk.entrant)
        .await;
    assert_eq!(l["position"]["days_past_due"], 1);
    // 1,000.00 + 11,000 × 0.0435 / 12 = 39.875 → 39.88
    assert_eq!(l["position"]["overdue_principal"], "1000.00");
    assert_eq!(l["position"]["overdue_interest"], "39.88");
    assert_eq!(l["position"]["overdue_amount"], "1039.88");
    // Before the disbursement nothing was owed.
    let (_, l) = app
        .get_json(&format!("/v1/loans/{loan}?as_of=2025-01-12"), &bank.a)
        .await;
    assert_eq!(l["position"]["outstanding_principal"], "0.00");

    let (_, s) = app
        .get_json(&format!("/v1/loans/{loan}/schedule"), &bank.a)
        .await;
    assert_eq!(s["instalments"][0]["principal_paid"], "1000.00");
    assert_eq!(s["instalments"][0]["interest_paid"], "43.50");
    assert_eq!(s["instalments"][1]["principal_paid"], "0.00");

    let (status, list) = app
        .get_json(&format!("/v1/loans/{loan}/repayments"), &bank.a)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, _) = app
        .get_json(&format!("/v1/loans/{loan}/repayments"), &bank.b)
        .await;
    assert_eq!(status, 404);
    reconcile(&app, &bank.a).await;
}

#[tokio::test]
async fn the_same_repayment_sent_ten_times_at_once_counts_once() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let loan = active(&app, &desk, &bank, 1).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (http, url, token) = (
                app.http.clone(),
                app.url(&format!("/v1/loans/{loan}/repayments")),
                bank.a.clone(),
            );
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "bank_reference": "R-SAME", "value_date": "2025-02-15", "amount": "1043.50" }))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    let (mut created, mut replayed) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            200 => replayed += 1,
            other => panic!("unexpected {other}: {body}"),
        }
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!((created, replayed), (1, 9));
    assert_eq!(ids.len(), 1, "every answer names the first repayment");
    let (_, list) = app
        .get_json(&format!("/v1/loans/{loan}/repayments"), &bank.a)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, l) = app.get_json(&format!("/v1/loans/{loan}"), &bank.a).await;
    assert_eq!(l["position"]["principal_paid"], "1000.00");
    assert_eq!(fund_outstanding(&app).await, "11000.00");

    // The same reference with other content is refused.
    let r = repay(&app, &bank.a, &loan, "R-SAME", "2025-02-15", "1043.51").await;
    assert_problem(r, 409, "duplicate_reference").await;
    let r = repay(&app, &bank.a, &loan, "R-SAME", "2025-02-16", "1043.50").await;
    assert_problem(r, 409, "duplicate_reference").await;
    let other = active(&app, &desk, &bank, 2).await;
    let r = repay(&app, &bank.a, &other, "R-SAME", "2025-02-15", "1043.50").await;
    assert_problem(r, 409, "duplicate_reference").await;

    // An Idempotency-Key with another body is refused, with the same body replayed.
    let send = |reference: &'static str| {
        app.http
            .post(app.url(&format!("/v1/loans/{other}/repayments")))
            .bearer_auth(&bank.a)
            .header("Idempotency-Key", "k-1")
            .json(&json!({ "bank_reference": reference, "value_date": "2025-02-15", "amount": "1043.50" }))
            .send()
    };
    assert_eq!(send("R-K").await.unwrap().status(), 201);
    let r = send("R-K").await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_problem(send("R-K2").await.unwrap(), 422, "idempotency_key_reused").await;
    reconcile(&app, &bank.a).await;
}

#[tokio::test]
async fn an_overpayment_is_refused_and_a_payoff_settles_and_releases_headroom() {
    let app = spawn_app().await;
    // 2,400.00 × 5 = room for exactly one 12,000.00 guarantee.
    let desk = app.desk("2400.00").await;
    let bank = banks(&app, &desk).await;
    let loan = active(&app, &desk, &bank, 1).await;
    let b2 = app.person(&desk.entrant, 2, json!({})).await;
    let waiting = app
        .applied(
            &desk.entrant,
            &desk,
            &b2,
            json!({ "principal": PRINCIPAL, "term_months": 12, "applied_on": "2025-01-05" }),
        )
        .await;
    let approval = format!("/v1/loans/{waiting}/approval");
    let approve = || {
        app.call(
            Method::POST,
            &approval,
            Some(&desk.approver),
            Some(json!({})),
        )
    };
    assert_problem(approve().await, 409, "fund_capacity_exceeded").await;

    // On the disbursement day nothing has accrued: the payoff is the principal.
    let r = repay(&app, &bank.a, &loan, "R-1", DISBURSED, "12000.01").await;
    let v = assert_problem(r, 422, "overpayment").await;
    assert_eq!(v["errors"][0]["field"], "amount");
    let v = json_of(
        repay(&app, &bank.a, &loan, "R-2", DISBURSED, PRINCIPAL).await,
        201,
    )
    .await;
    assert_eq!(v["to_principal"], PRINCIPAL);
    assert_eq!(v["loan_status"], "settled");
    assert_eq!(v["position"]["settled"], true);
    assert_eq!(fund_outstanding(&app).await, "0.00");
    let (_, l) = app.get_json(&format!("/v1/loans/{loan}"), &bank.a).await;
    assert_eq!(l["status"], "settled");
    assert_eq!(l["released_on"], DISBURSED);
    // Nothing more can be paid on a settled loan.
    let r = repay(&app, &bank.a, &loan, "R-3", "2025-02-15", "0.01").await;
    assert_problem(r, 422, "overpayment").await;
    // The headroom is back.
    assert_eq!(approve().await.status(), 200);
    reconcile(&app, &bank.a).await;
}

#[tokio::test]
async fn a_reversal_then_the_corrected_repayment_gives_the_right_position() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let loan = active(&app, &desk, &bank, 1).await;
    // Keyed wrong: 1,000.00 instead of 1,043.50 — 43.50 interest, 956.50 principal.
    let wrong = json_of(
        repay(&app, &bank.a, &loan, "R-1", "2025-02-15", "1000.00").await,
        201,
    )
    .await;
    assert_eq!(wrong["to_principal"], "956.50");
    assert_eq!(fund_outstanding(&app).await, "11043.50");
    let id = wrong["id"].as_str().unwrap();
    assert_problem(reverse(&app, &bank.b, id).await, 404, "not_found").await;
    assert_problem(reverse(&app, &desk.entrant, id).await, 403, "forbidden").await;
    let v = json_of(reverse(&app, &bank.a, id).await, 200).await;
    assert_eq!(v["reversed"], true);
    assert_eq!(v["position"]["principal_paid"], "0.00");
    assert_eq!(fund_outstanding(&app).await, PRINCIPAL);
    assert_problem(reverse(&app, &bank.a, id).await, 409, "already_reversed").await;

    // The original stays, flagged; its reference stays taken.
    let (_, list) = app
        .get_json(&format!("/v1/loans/{loan}/repayments"), &bank.a)
        .await;
    assert_eq!(list["items"][0]["reversed"], true);
    let r = repay(&app, &bank.a, &loan, "R-1", "2025-02-15", "1043.50").await;
    assert_problem(r, 409, "duplicate_reference").await;

    let v = json_of(
        repay(&app, &bank.a, &loan, "R-1-CORR", "2025-02-15", "1043.50").await,
        201,
    )
    .await;
    assert_eq!(v["to_interest"], "43.50");
    assert_eq!(v["to_principal"], "1000.00");
    let (_, l) = app
        .get_json(&format!("/v1/loans/{loan}?as_of=2025-03-15"), &bank.a)
        .await;
    assert_eq!(l["position"]["outstanding_principal"], "11000.00");
    assert_eq!(l["position"]["principal_paid"], "1000.00");
    assert_eq!(l["position"]["interest_paid"], "43.50");
    assert_eq!(l["position"]["days_past_due"], 0);
    assert_eq!(fund_outstanding(&app).await, "11000.00");

    // Reversing a settling repayment makes the loan active again.
    let other = active(&app, &desk, &bank, 2).await;
    let v = json_of(
        repay(&app, &bank.a, &other, "R-2", DISBURSED, PRINCIPAL).await,
        201,
    )
    .await;
    assert_eq!(v["loan_status"], "settled");
    let id = v["id"].as_str().unwrap();
    let r = app
        .call(
            Method::POST,
            &format!("/v1/repayments/{id}/reversal"),
            Some(&bank.a),
            Some(json!({ "reason": "paid to the wrong loan" })),
        )
        .await;
    let v = json_of(r, 200).await;
    assert_eq!(v["loan_status"], "active");
    let (_, l) = app.get_json(&format!("/v1/loans/{other}"), &bank.a).await;
    assert_eq!(l["status"], "active");
    assert_eq!(l["released_on"], Value::Null);
    assert_eq!(fund_outstanding(&app).await, "23000.00");

    // Reversing an earlier repayment moves a later one's allocation: on 03-15 the 1,039.88
    // now pays instalment 1 first (penalty on its 1,000.00 for 28 days, then 43.50 interest).
    let third = active(&app, &desk, &bank, 3).await;
    let first = json_of(
        repay(&app, &bank.a, &third, "R-3A", "2025-02-15", "1043.50").await,
        201,
    )
    .await;
    let second = json_of(
        repay(&app, &bank.a, &third, "R-3B", "2025-03-15", "1039.88").await,
        201,
    )
    .await;
    assert_eq!(second["to_principal"], "1000.00");
    json_of(
        reverse(&app, &bank.a, first["id"].as_str().unwrap()).await,
        200,
    )
    .await;
    let (_, list) = app
        .get_json(&format!("/v1/loans/{third}/repayments"), &bank.a)
        .await;
    let moved = &list["items"][1];
    assert_eq!(moved["bank_reference"], "R-3B");
    assert_eq!(moved["to_interest"], "43.50");
    assert_ne!(moved["to_penalty"], "0.00");
    assert_ne!(moved["to_principal"], "1000.00");
    reconcile(&app, &bank.a).await;
    // A backdated repayment moves the later one back.
    json_of(
        repay(&app, &bank.a, &third, "R-3C", "2025-02-15", "1043.50").await,
        201,
    )
    .await;
    let (_, list) = app
        .get_json(&format!("/v1/loans/{third}/repayments"), &bank.a)
        .await;
    assert_eq!(list["items"][1]["to_principal"], "1000.00");
    assert_eq!(list["items"][1]["to_penalty"], "0.00");
    reconcile(&app, &bank.a).await;

    let mut conn = app.db.connect().await;
    for q in [
        "DELETE FROM repayment_allocations",
        "DELETE FROM repayments",
        "DELETE FROM repayment_reversals",
        "UPDATE repayments SET amount = 1",
    ] {
        let err = sql_query(q).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{q}: {err}");
    }
    reconcile(&app, &bank.a).await;
}

#[tokio::test]
async fn the_disbursement_repayments_migration_reverts_and_reapplies() {
    let app = spawn_app().await;
    revert_and_reapply(&app, "2026-11-27-000004_disbursement_repayments").await;
}

/// Each of the loan's fact rows (instalments, then principal payments) with the transaction
/// that wrote it.
async fn fact_versions(app: &TestApp, loan: &str) -> Vec<(String, String)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        k: String,
        #[diesel(sql_type = Text)]
        x: String,
    }
    let mut conn = app.db.connect().await;
    let rows: Vec<Row> = sql_query(format!(
        "SELECT 'i' || number || ' ' || coalesce(paid_on::text, '-') AS k, xmin::text AS x \
           FROM instalment_facts WHERE loan_id = '{loan}' \
         UNION ALL \
         SELECT 'p' || number || ' ' || value_date || ' ' || principal, xmin::text \
           FROM principal_payments WHERE loan_id = '{loan}' ORDER BY 1"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| (r.k, r.x)).collect()
}

#[tokio::test]
async fn a_repayment_rewrites_only_the_facts_it_changes() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let loan = active(&app, &desk, &bank, 1).await;
    let before = fact_versions(&app, &loan).await;
    assert_eq!(before.len(), 12, "{before:?}");

    // The first instalment, on time: its fact row and a principal payment change, the other
    // eleven instalments' rows are left as they were.
    json_of(
        repay(&app, &bank.a, &loan, "R-1", "2025-02-15", "1043.50").await,
        201,
    )
    .await;
    let after = fact_versions(&app, &loan).await;
    assert_eq!(after.len(), 13, "{after:?}");
    assert!(after.iter().any(|(k, _)| k == "i1 2025-02-15"), "{after:?}");
    assert!(
        after.iter().any(|(k, _)| k == "p1 2025-02-15 1000.00"),
        "{after:?}"
    );
    let kept: Vec<_> = after.iter().filter(|a| before.contains(a)).collect();
    assert_eq!(kept.len(), 11, "{before:?} → {after:?}");

    // Reversed: the payment's row goes, the instalment is unpaid again, the rest stay.
    let (_, list) = app
        .get_json(&format!("/v1/loans/{loan}/repayments"), &bank.a)
        .await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    json_of(reverse(&app, &bank.a, &id).await, 200).await;
    let reversed = fact_versions(&app, &loan).await;
    assert_eq!(reversed.len(), 12, "{reversed:?}");
    assert!(reversed.iter().any(|(k, _)| k == "i1 -"), "{reversed:?}");
    let kept: Vec<_> = reversed.iter().filter(|a| after.contains(a)).collect();
    assert_eq!(kept.len(), 11, "{after:?} → {reversed:?}");
    reconcile(&app, &bank.a).await;
}

/// The database itself refuses a repayment that does not fit its loan (another bank's, dated
/// before the disbursement, of a loan not disbursed), checked once per statement: one bad row
/// among good ones refuses the whole statement. The migration that made the check
/// set-based reverts.
#[tokio::test]
async fn the_database_refuses_a_repayment_that_does_not_fit_its_loan() {
    use danbao_persistence::diesel_async::SimpleAsyncConnection;
    let app = spawn_app().await;
    revert_and_reapply(&app, "2026-11-27-000014_repayments_fit_loans").await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let loan = active(&app, &desk, &bank, 1).await;
    let pending = approved(&app, &desk, 2).await;
    let (a, b) = (desk.p.bank_a.as_str(), desk.p.bank_b.as_str());
    let row = |n: u32, loan: &str, bank: &str, date: &str| {
        format!(
            "(gen_random_uuid(), '{loan}', '{bank}', 'DB-{n}', '{date}', 10.00, 0, 10.00, 0, \
             gen_random_uuid())"
        )
    };
    let insert = |rows: &[String]| {
        format!(
            "INSERT INTO repayments (id, loan_id, bank_id, bank_reference, value_date, amount, \
             to_penalty, to_interest, to_principal, created_by) VALUES {}",
            rows.join(", ")
        )
    };
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = danbao_persistence::diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.db.connect().await;
    let good = row(1, &loan, a, "2025-02-15");
    for bad in [
        row(2, &loan, b, "2025-02-15"),
        row(3, &loan, a, "2025-01-14"),
        row(4, &pending, a, "2025-02-15"),
    ] {
        let e = conn
            .batch_execute(&insert(&[good.clone(), bad.clone()]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a repayment belongs to a disbursed loan of its bank"),
            "{bad}: {e}"
        );
    }
    let written = "SELECT count(*) AS n FROM repayments WHERE bank_reference LIKE 'DB-%'";
    let c: Count = sql_query(written).get_result(&mut conn).await.unwrap();
    assert_eq!(c.n, 0);
    conn.batch_execute(&insert(&[good, row(5, &loan, a, DISBURSED)]))
        .await
        .unwrap();
    let c: Count = sql_query(written).get_result(&mut conn).await.unwrap();
    assert_eq!(c.n, 2);
}

/// A reversal carries its repayment's loan, so a loan's reversed repayments are one index scan
/// (000023). Reversals written before it get their loan when the migration runs; the
/// database refuses a reversal naming another loan; the loan's read and the list of loans
/// (which find the reversed repayments that way) leave the reversed repayment out.
#[tokio::test]
async fn a_reversal_carries_its_repayments_loan_and_the_reads_leave_it_out() {
    use danbao_persistence::diesel_async::SimpleAsyncConnection;
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let one = active(&app, &desk, &bank, 1).await;
    let two = active(&app, &desk, &bank, 2).await;
    let paid = |loan: &str, reference: &str, amount: &str| {
        let (app, token, loan, reference, amount) = (
            &app,
            &bank.a,
            loan.to_owned(),
            reference.to_owned(),
            amount.to_owned(),
        );
        async move {
            let v = json_of(
                repay(app, token, &loan, &reference, "2025-02-15", &amount).await,
                201,
            )
            .await;
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let wrong = paid(&one, "R-1", "1000.00").await;
    let right = paid(&one, "R-2", "1043.50").await;
    let other = paid(&two, "R-3", "1043.50").await;
    json_of(reverse(&app, &bank.a, &wrong).await, 200).await;

    // Written before the column existed, the reversal gets its loan when the migration runs.
    revert_and_reapply(&app, "2026-11-28-000023_reversals_name_their_loan").await;
    #[derive(QueryableByName)]
    struct Loan {
        #[diesel(sql_type = Text)]
        loan: String,
    }
    let mut conn = app.db.connect().await;
    let carried: Vec<Loan> = sql_query("SELECT loan_id::text AS loan FROM repayment_reversals")
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(carried.len(), 1);
    assert_eq!(carried[0].loan, one);

    // Only R-2 counts: 43.50 interest, 1,000.00 principal; loan two is untouched.
    let (_, l) = app
        .get_json(&format!("/v1/loans/{one}?as_of=2025-02-15"), &bank.a)
        .await;
    assert_eq!(l["position"]["principal_paid"], "1000.00");
    assert_eq!(l["position"]["interest_paid"], "43.50");
    let (_, list) = app
        .get_json("/v1/loans?as_of=2025-02-15&limit=10", &bank.a)
        .await;
    let listed = |id: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()["position"]["principal_paid"]
            .clone()
    };
    assert_eq!(listed(&one), "1000.00");
    assert_eq!(listed(&two), "1000.00");

    // A reversal naming a loan that is not its repayment's is refused, with a good one in the
    // same statement; the good one alone is taken.
    let reversal = |repayment: &str, loan: &str| {
        format!(
            "INSERT INTO repayment_reversals (repayment_id, loan_id, reason, value_date, created_by) \
             VALUES ('{repayment}', '{loan}', 'test', DATE '2025-02-16', gen_random_uuid())"
        )
    };
    let e = conn
        .batch_execute(&format!(
            "{}, ('{other}', '{one}', 'test', DATE '2025-02-16', gen_random_uuid())",
            reversal(&right, &one)
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("a reversal carries its repayment's loan"), "{e}");
    let e = conn
        .batch_execute(&reversal(&other, &one))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("a reversal carries its repayment's loan"), "{e}");
    let taken = sql_query("SELECT loan_id::text AS loan FROM repayment_reversals");
    assert_eq!(
        taken.clone().load::<Loan>(&mut conn).await.unwrap().len(),
        1
    );
    conn.batch_execute(&reversal(&other, &two)).await.unwrap();
    assert_eq!(taken.load::<Loan>(&mut conn).await.unwrap().len(), 2);
}

/// A repayment is booked with its allocation; an allocation row follows only when a later
/// write moves it (000024). The current allocations (the view `danbao verify` and the funds'
/// reconciliation read) are the same before and after the migration reverts (which gives
/// every repayment booked meanwhile its first row back) and reapplies.
#[tokio::test]
async fn allocation_rows_follow_only_the_allocations_a_write_moves() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let bank = banks(&app, &desk).await;
    let loan = active(&app, &desk, &bank, 1).await;
    let first = json_of(
        repay(&app, &bank.a, &loan, "R-A", "2025-02-15", "1043.50").await,
        201,
    )
    .await;
    json_of(
        repay(&app, &bank.a, &loan, "R-B", "2025-03-15", "1039.88").await,
        201,
    )
    .await;
    #[derive(QueryableByName)]
    struct Rows {
        #[diesel(sql_type = Text)]
        rows: String,
    }
    let rows = format!(
        "SELECT coalesce(string_agg(r.bank_reference, ',' ORDER BY a.id), '') AS rows \
         FROM repayment_allocations a JOIN repayments r ON r.id = a.repayment_id \
         WHERE a.loan_id = '{loan}'"
    );
    let current = format!(
        "SELECT string_agg(concat_ws(' ', r.bank_reference, c.to_penalty, c.to_interest, \
         c.to_principal), ',' ORDER BY r.bank_reference) AS rows \
         FROM repayment_allocations_current c JOIN repayments r ON r.id = c.repayment_id \
         WHERE c.loan_id = '{loan}'"
    );
    let mut conn = app.db.connect().await;
    let text = |r: Rows| r.rows;
    let read = |sql: &str| sql_query(sql.to_owned());
    assert_eq!(
        text(read(&rows).get_result(&mut conn).await.unwrap()),
        "",
        "booked with their allocations: no rows"
    );
    assert_eq!(
        text(read(&current).get_result(&mut conn).await.unwrap()),
        "R-A 0.00 43.50 1000.00,R-B 0.00 39.88 1000.00"
    );
    // The reversal of R-A moves R-B onto instalment 1, penalty first: one row, for R-B.
    json_of(
        reverse(&app, &bank.a, first["id"].as_str().unwrap()).await,
        200,
    )
    .await;
    assert_eq!(
        text(read(&rows).get_result(&mut conn).await.unwrap()),
        "R-B"
    );
    let moved = text(read(&current).get_result(&mut conn).await.unwrap());
    assert!(!moved.contains("R-B 0.00 39.88 1000.00"), "{moved}");
    reconcile(&app, &bank.a).await;

    revert_and_reapply(&app, "2026-11-28-000024_allocations_only_when_moved").await;
    let mut conn = app.db.connect().await;
    assert_eq!(
        text(read(&current).get_result(&mut conn).await.unwrap()),
        moved
    );
    // Reverted, R-A got its first row back (R-B had one): its current allocation unchanged.
    assert_eq!(
        text(read(&rows).get_result(&mut conn).await.unwrap()),
        "R-B,R-A"
    );
    reconcile(&app, &bank.a).await;
}
