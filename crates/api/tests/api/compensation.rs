//! When loans go wrong: overdue filter and schedule, extension, compensation claims and their
//! approval, recoveries, write-off, and the interest subsidy owed per bank and quarter.
use crate::helpers::*;
use danbao_persistence::diesel::sql_query;
use danbao_persistence::diesel_async::RunQueryDsl;
use reqwest::Method;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};
use std::str::FromStr;

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))).unwrap()
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let actual = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.call(Method::POST, path, Some(token), Some(body)).await
}

/// A loan of bank A: 12,000.00 over 12 months, equal principal, applied/approved/disbursed on
/// the given dates; returns its id.
async fn active_loan(app: &TestApp, desk: &Desk, bank: &str, seq: u32, dates: [&str; 3]) -> String {
    let b = app.person(&desk.entrant, seq, json!({})).await;
    let loan = app
        .applied(
            &desk.entrant,
            desk,
            &b,
            json!({ "principal": "12000.00", "term_months": 12, "applied_on": dates[0] }),
        )
        .await;
    let r = post(
        app,
        &desk.approver,
        &format!("/v1/loans/{loan}/approval"),
        json!({ "decided_on": dates[1] }),
    )
    .await;
    json_of(r, 200).await;
    let r = post(
        app,
        bank,
        &format!("/v1/loans/{loan}/disbursement"),
        json!({ "value_date": dates[2], "bank_account_no": format!("ACC-{seq}") }),
    )
    .await;
    json_of(r, 200).await;
    loan
}

async fn schedule(app: &TestApp, token: &str, loan: &str, as_of: &str) -> Value {
    let (s, v) = app
        .get_json(&format!("/v1/loans/{loan}/schedule?as_of={as_of}"), token)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Pays instalments `numbers` of the loan in full on their due dates.
async fn pay_on_time(
    app: &TestApp,
    bank: &str,
    loan: &str,
    numbers: std::ops::RangeInclusive<usize>,
) {
    let s = schedule(app, bank, loan, "2019-01-01").await;
    for n in numbers {
        let i = &s["instalments"][n - 1];
        let r = post(
            app,
            bank,
            &format!("/v1/loans/{loan}/repayments"),
            json!({ "bank_reference": format!("{loan}-{n}"), "value_date": i["due_date"], "amount": i["total"] }),
        )
        .await;
        json_of(r, 201).await;
    }
}

async fn fund_position(app: &TestApp, token: &str, fund: &str) -> Value {
    let (s, v) = app.get_json(&format!("/v1/funds/{fund}"), token).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// The books check out: every rule of `danbao verify` (fund balances and outstanding
/// guaranteed among them).
async fn funds_reconcile(app: &TestApp) {
    let report = verify(app).await;
    assert!(report.ok(), "{report:#?}");
}

#[tokio::test]
async fn overdue_filter_and_days_past_due_per_instalment() {
    let app = spawn_app().await;
    let desk = app.desk("1000000.00").await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
        .await;
    let dates = ["2025-01-05", "2025-01-10", "2025-01-15"];
    let paid = active_loan(&app, &desk, &bank, 1, dates).await;
    let late1 = active_loan(&app, &desk, &bank, 2, dates).await;
    let late2 = active_loan(&app, &desk, &bank, 3, dates).await;
    // The first instalment (due 2025-02-15) of `paid` is paid on its due date.
    let s = schedule(&app, &bank, &paid, "2025-02-15").await;
    let first = &s["instalments"][0];
    assert_eq!(first["due_date"], "2025-02-15");
    let r = post(
        &app,
        &bank,
        &format!("/v1/loans/{paid}/repayments"),
        json!({ "bank_reference": "P-1", "value_date": "2025-02-15", "amount": first["total"] }),
    )
    .await;
    json_of(r, 201).await;

    let s = schedule(&app, &bank, &late1, "2025-03-01").await;
    assert_eq!(s["as_of"], "2025-03-01");
    assert_eq!(s["instalments"][0]["days_past_due"], 14);
    assert_eq!(s["instalments"][1]["days_past_due"], 0, "not yet due");
    assert!(dec(&s["instalments"][0]["penalty"]) > Decimal::ZERO);
    let s = schedule(&app, &bank, &paid, "2025-03-01").await;
    assert_eq!(s["instalments"][0]["days_past_due"], 0);
    assert_eq!(s["instalments"][0]["paid_on"], "2025-02-15");

    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let (_, v) = app
        .get_json("/v1/loans?overdue=true&as_of=2025-03-01", &bank)
        .await;
    let mut late = vec![late1.clone(), late2.clone()];
    late.sort();
    assert_eq!(ids(&v), late);
    for l in v["items"].as_array().unwrap() {
        assert_eq!(l["position"]["days_past_due"], 14);
    }
    let (_, v) = app
        .get_json("/v1/loans?overdue=false&as_of=2025-03-01", &bank)
        .await;
    assert_eq!(ids(&v), vec![paid.clone()]);
    // Before anything fell due, nothing is overdue.
    let (_, v) = app
        .get_json("/v1/loans?overdue=true&as_of=2025-02-01", &bank)
        .await;
    assert!(v["items"].as_array().unwrap().is_empty());
    // Pages of one: both late loans, then the end.
    let (_, p1) = app
        .get_json("/v1/loans?overdue=true&as_of=2025-03-01&limit=1", &bank)
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    let cursor = p1["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, p2) = app
        .get_json(
            &format!("/v1/loans?overdue=true&as_of=2025-03-01&limit=1&cursor={cursor}"),
            &bank,
        )
        .await;
    let mut both = vec![
        p1["items"][0]["id"].as_str().unwrap().to_owned(),
        p2["items"][0]["id"].as_str().unwrap().to_owned(),
    ];
    both.sort();
    assert_eq!(both, late);
    // A status other than active is never overdue.
    let (_, v) = app
        .get_json("/v1/loans?overdue=true&status=settled", &bank)
        .await;
    assert!(v["items"].as_array().unwrap().is_empty());
    // Another bank sees none of them.
    let other = app
        .user_token("bank.b", "bank", json!({ "bank_id": desk.p.bank_b }))
        .await;
    let (_, v) = app
        .get_json("/v1/loans?overdue=true&as_of=2025-03-01", &other)
        .await;
    assert!(v["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn extension_once_within_the_policy_and_no_subsidy_on_it() {
    let app = spawn_app().await;
    let desk = app.desk("1000000.00").await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
        .await;
    // Applied in 2019: PBOC-2008-238 (extension at most 12 months; subsidy 100 % for a
    // laid-off person on a micro-profit loan).
    let loan = active_loan(
        &app,
        &desk,
        &bank,
        1,
        ["2019-03-01", "2019-03-05", "2019-03-10"],
    )
    .await;
    pay_on_time(&app, &bank, &loan, 1..=6).await;
    let before = schedule(&app, &bank, &loan, "2019-09-10").await;
    assert_eq!(before["instalments"].as_array().unwrap().len(), 12);
    let path = format!("/v1/loans/{loan}/extension");
    let body = |months: u32| json!({ "months": months, "agreed_on": "2019-09-10", "reason": "洪水耽误了收成" });

    assert_problem(post(&app, &bank, &path, body(6)).await, 403, "forbidden").await;
    assert_problem(
        post(&app, &desk.entrant, &path, body(13)).await,
        422,
        "extension_too_long",
    )
    .await;
    let r = post(
        &app,
        &desk.entrant,
        &path,
        json!({ "months": 6, "agreed_on": "2019-11-11", "reason": "late" }),
    )
    .await;
    assert_problem(r, 422, "extension_while_overdue").await;

    let ext = json_of(post(&app, &desk.entrant, &path, body(6)).await, 200).await;
    assert_eq!(ext["extension"]["old_maturity"], "2020-03-10");
    assert_eq!(ext["extension"]["new_maturity"], "2020-09-10");
    assert_eq!(ext["extension"]["first_extended"], 13);
    assert_eq!(ext["extension"]["rescheduled_principal"], "6000.00");
    assert_eq!(ext["loan"]["maturity_date"], "2020-09-10");
    assert_eq!(ext["loan"]["position"]["outstanding_principal"], "6000.00");
    assert_problem(
        post(&app, &desk.entrant, &path, body(3)).await,
        422,
        "already_extended",
    )
    .await;

    let after = schedule(&app, &bank, &loan, "2019-09-10").await;
    let inst = after["instalments"].as_array().unwrap();
    assert_eq!(inst.len(), 13);
    // What was paid is unchanged; the rest is interest only, and the principal moves to the
    // extension instalment, which earns no subsidy.
    for n in 0..6 {
        assert_eq!(inst[n]["principal"], before["instalments"][n]["principal"]);
        assert_eq!(inst[n]["interest"], before["instalments"][n]["interest"]);
        assert_eq!(inst[n]["days_past_due"], 0);
    }
    for i in &inst[6..12] {
        assert_eq!(i["principal"], "0.00");
        assert_eq!(i["extended"], false);
    }
    assert_eq!(inst[12]["principal"], "6000.00");
    assert_eq!(inst[12]["due_date"], "2020-09-10");
    assert_eq!(inst[12]["extended"], true);
    assert_eq!(inst[12]["subsidy"], "0.00");
    assert!(dec(&inst[12]["interest"]) > Decimal::ZERO);
    let total: Decimal = inst.iter().map(|i| dec(&i["principal"])).sum();
    assert_eq!(total, Decimal::from(12000));

    // The subsidy owed is that of the six instalments paid on time: Q2 and Q3 2019, each the
    // sum of its instalments' subsidy in the schedule view.
    let (s, sub) = app.get_json("/v1/subsidies?year=2019", &bank).await;
    assert_eq!(s, 200, "{sub}");
    let items = sub["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{sub}");
    let quarter_sum = |range: std::ops::Range<usize>| -> Decimal {
        inst[range].iter().map(|i| dec(&i["subsidy"])).sum()
    };
    assert_eq!(
        (items[0]["quarter"].as_u64(), items[1]["quarter"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(dec(&items[0]["subsidy"]), quarter_sum(0..3));
    assert_eq!(dec(&items[1]["subsidy"]), quarter_sum(3..6));
    assert_eq!(items[0]["instalments"], 3);
    assert_eq!(items[0]["bank_id"], desk.p.bank_a.as_str());
    assert_eq!(
        dec(&sub["total_subsidy"]),
        quarter_sum(0..6),
        "the total is the sum of the rows"
    );
    // One quarter only; another bank and another city's supervisor get nothing.
    let (_, q3) = app
        .get_json("/v1/subsidies?year=2019&quarter=3", &bank)
        .await;
    assert_eq!(q3["items"].as_array().unwrap().len(), 1);
    assert_eq!(dec(&q3["total_subsidy"]), quarter_sum(3..6));
    let other = app
        .user_token("bank.b", "bank", json!({ "bank_id": desk.p.bank_b }))
        .await;
    let (_, v) = app.get_json("/v1/subsidies?year=2019", &other).await;
    assert!(v["items"].as_array().unwrap().is_empty());
    let jdz = app
        .user_token("sup.jdz", "supervisor", json!({ "region_code": "360200" }))
        .await;
    let (_, v) = app.get_json("/v1/subsidies?year=2019", &jdz).await;
    assert!(v["items"].as_array().unwrap().is_empty());
    let province = app
        .user_token("sup.jx", "supervisor", json!({ "region_code": "360000" }))
        .await;
    let (_, v) = app.get_json("/v1/subsidies?year=2019", &province).await;
    assert_eq!(dec(&v["total_subsidy"]), quarter_sum(0..6));
    let r = app
        .call(Method::GET, "/v1/subsidies?quarter=5", Some(&bank), None)
        .await;
    assert_problem(r, 422, "validation_failed").await;

    // A loan of the 2020 policy cannot be extended at all.
    let recent = active_loan(
        &app,
        &desk,
        &bank,
        2,
        ["2025-01-05", "2025-01-10", "2025-01-15"],
    )
    .await;
    let r = post(
        &app,
        &desk.entrant,
        &format!("/v1/loans/{recent}/extension"),
        json!({ "months": 3, "agreed_on": "2025-02-01", "reason": "x" }),
    )
    .await;
    assert_problem(r, 422, "extension_not_allowed").await;
    funds_reconcile(&app).await;
}

#[tokio::test]
async fn compensation_recovery_and_write_off_move_the_fund() {
    let app = spawn_app().await;
    let desk = app.desk("1000000.00").await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
        .await;
    let other_bank = app
        .user_token("bank.b", "bank", json!({ "bank_id": desk.p.bank_b }))
        .await;
    // Nothing is ever paid: the first instalment falls due on 2025-02-15.
    let loan = active_loan(
        &app,
        &desk,
        &bank,
        1,
        ["2025-01-05", "2025-01-10", "2025-01-15"],
    )
    .await;
    let fund_before = fund_position(&app, &desk.entrant, &desk.fund).await;
    assert_eq!(fund_before["outstanding_guaranteed"], "12000.00");
    let claims = format!("/v1/loans/{loan}/compensation-claims");

    // 2020 policy: a claim from 60 days past due.
    let r = post(&app, &bank, &claims, json!({ "filed_on": "2025-04-15" })).await;
    assert_problem(r, 422, "not_overdue_long_enough").await;
    let r = post(
        &app,
        &desk.entrant,
        &claims,
        json!({ "filed_on": "2025-06-01" }),
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    let r = post(
        &app,
        &other_bank,
        &claims,
        json!({ "filed_on": "2025-06-01" }),
    )
    .await;
    assert_problem(r, 404, "not_found").await;

    let (_, at_filing) = app
        .get_json(&format!("/v1/loans/{loan}?as_of=2025-06-01"), &bank)
        .await;
    let claim = json_of(
        post(&app, &bank, &claims, json!({ "filed_on": "2025-06-01" })).await,
        201,
    )
    .await;
    let share = dec(&claim["fund_share"]);
    assert!(share > Decimal::ZERO && share <= Decimal::ONE);
    assert_eq!(claim["status"], "filed");
    assert_eq!(claim["outstanding_principal"], "12000.00");
    assert_eq!(
        claim["overdue_interest"],
        at_filing["position"]["overdue_interest"]
    );
    assert_eq!(
        claim["days_past_due"],
        at_filing["position"]["days_past_due"]
    );
    assert_eq!(
        dec(&claim["claimed_amount"]),
        round2((Decimal::from(12000) + dec(&claim["overdue_interest"])) * share)
    );
    let r = post(&app, &bank, &claims, json!({ "filed_on": "2025-06-02" })).await;
    assert_problem(r, 409, "claim_exists").await;
    let claim_id = claim["id"].as_str().unwrap();
    let (s, _) = app
        .get_json(&format!("/v1/compensation-claims/{claim_id}"), &other_bank)
        .await;
    assert_eq!(s, 404);

    // Four eyes: the clerk who entered the loan may not approve its compensation.
    let approval = format!("/v1/compensation-claims/{claim_id}/approval");
    let r = post(
        &app,
        &desk.entrant,
        &approval,
        json!({ "approved_on": "2025-06-10" }),
    )
    .await;
    assert_problem(r, 403, "four_eyes_required").await;
    let r = post(
        &app,
        &bank,
        &approval,
        json!({ "approved_on": "2025-06-10" }),
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    let r = post(
        &app,
        &desk.approver,
        &approval,
        json!({ "approved_on": "2025-05-31" }),
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;

    let (_, at_approval) = app
        .get_json(&format!("/v1/loans/{loan}?as_of=2025-06-10"), &bank)
        .await;
    let approved = json_of(
        post(
            &app,
            &desk.approver,
            &approval,
            json!({ "approved_on": "2025-06-10" }),
        )
        .await,
        200,
    )
    .await;
    let paid = dec(&approved["claim"]["paid_amount"]);
    assert_eq!(
        paid,
        round2((Decimal::from(12000) + dec(&at_approval["position"]["overdue_interest"])) * share),
        "the fund pays its share of what is outstanding on the approval date"
    );
    assert_eq!(approved["claim"]["status"], "approved");
    assert_eq!(approved["loan"]["status"], "compensated");
    // Closed, the loan carries what it left unpaid for the repayment rate: all of it.
    assert_eq!(
        closed_books(&app, &loan).await,
        "12000.00 none",
        "compensated"
    );
    let r = post(
        &app,
        &desk.approver,
        &approval,
        json!({ "approved_on": "2025-06-10" }),
    )
    .await;
    assert_problem(r, 409, "invalid_state").await;

    let fund = fund_position(&app, &desk.entrant, &desk.fund).await;
    assert_eq!(dec(&fund["balance"]), dec(&fund_before["balance"]) - paid);
    assert_eq!(
        fund["outstanding_guaranteed"], "0.00",
        "the guarantee no longer counts"
    );
    let (_, ledger) = app
        .get_json(&format!("/v1/funds/{}/ledger", desk.fund), &desk.entrant)
        .await;
    let entries = ledger["items"].as_array().unwrap();
    let comp = entries
        .iter()
        .find(|e| e["kind"] == "compensation")
        .expect("a compensation entry");
    assert_eq!(dec(&comp["amount"]), -paid);
    assert_eq!(comp["value_date"], "2025-06-10");

    // The bank's books are closed: no more repayments, money comes back as recoveries.
    let r = post(
        &app,
        &bank,
        &format!("/v1/loans/{loan}/repayments"),
        json!({ "bank_reference": "LATE-1", "value_date": "2025-07-01", "amount": "100.00" }),
    )
    .await;
    assert_problem(r, 409, "invalid_state").await;

    let recoveries = format!("/v1/loans/{loan}/recoveries");
    let rec = |reference: &str, amount: &str| json!({ "reference": reference, "value_date": "2025-07-01", "amount": amount });
    let r = post(&app, &bank, &recoveries, rec("R-0", "2025-06-09")).await;
    assert_problem(r, 422, "validation_failed").await;
    let r = post(
        &app,
        &bank,
        &recoveries,
        json!({ "reference": "R-0", "value_date": "2025-06-09", "amount": "10.00" }),
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = post(&app, &bank, &recoveries, rec("R-BIG", "99999.00")).await;
    assert_problem(r, 422, "overpayment").await;
    let first = json_of(
        post(&app, &bank, &recoveries, rec("R-1", "1000.00")).await,
        201,
    )
    .await;
    assert_eq!(dec(&first["to_fund"]), round2(Decimal::from(1000) * share));
    let again = json_of(
        post(&app, &bank, &recoveries, rec("R-1", "1000.00")).await,
        200,
    )
    .await;
    assert_eq!(again["id"], first["id"], "a resend answers with the first");
    let r = post(&app, &bank, &recoveries, rec("R-1", "1001.00")).await;
    assert_problem(r, 409, "duplicate_reference").await;
    let second = json_of(
        post(&app, &desk.approver, &recoveries, rec("R-2", "333.33")).await,
        201,
    )
    .await;
    // Shares on the running total: the two parts add up to the share of the sum.
    assert_eq!(
        dec(&first["to_fund"]) + dec(&second["to_fund"]),
        round2(Decimal::from_str("1333.33").unwrap() * share)
    );
    let (_, list) = app.get_json(&recoveries, &bank).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let to_fund = dec(&first["to_fund"]) + dec(&second["to_fund"]);
    let fund = fund_position(&app, &desk.entrant, &desk.fund).await;
    assert_eq!(
        dec(&fund["balance"]),
        dec(&fund_before["balance"]) - paid + to_fund
    );

    // The write-off records what the fund lost.
    let wo = format!("/v1/loans/{loan}/write-off");
    let body = json!({ "written_off_on": "2025-12-31", "reason": "借款人已无偿还能力" });
    assert_problem(post(&app, &bank, &wo, body.clone()).await, 403, "forbidden").await;
    let w = json_of(post(&app, &desk.approver, &wo, body.clone()).await, 200).await;
    assert_eq!(dec(&w["compensation_paid"]), paid);
    assert_eq!(dec(&w["recovered_to_fund"]), to_fund);
    assert_eq!(dec(&w["loss"]), paid - to_fund);
    assert_problem(
        post(&app, &desk.approver, &wo, body).await,
        409,
        "invalid_state",
    )
    .await;
    let r = post(&app, &bank, &recoveries, rec("R-3", "10.00")).await;
    assert_problem(r, 409, "invalid_state").await;
    let (_, l) = app.get_json(&format!("/v1/loans/{loan}"), &bank).await;
    assert_eq!(l["status"], "written_off");
    assert_eq!(
        closed_books(&app, &loan).await,
        "12000.00 none",
        "written off"
    );
    let (_, audit) = app
        .get_json("/v1/audit-events?limit=500", &app.admin_token)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "compensation.claimed",
        "compensation.approved",
        "recovery.recorded",
        "loan.written_off",
    ] {
        assert!(actions.contains(&a), "{a} audited");
    }
    funds_reconcile(&app).await;
}

#[tokio::test]
async fn compensation_needs_the_fund_to_hold_the_money() {
    let app = spawn_app().await;
    // 3,000.00 of fund backs up to 15,000.00 of guarantees at 5×: enough to approve, not to pay.
    let desk = app.desk("3000.00").await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
        .await;
    let loan = active_loan(
        &app,
        &desk,
        &bank,
        1,
        ["2025-01-05", "2025-01-10", "2025-01-15"],
    )
    .await;
    let claim = json_of(
        post(
            &app,
            &bank,
            &format!("/v1/loans/{loan}/compensation-claims"),
            json!({ "filed_on": "2025-06-01" }),
        )
        .await,
        201,
    )
    .await;
    let r = post(
        &app,
        &desk.approver,
        &format!(
            "/v1/compensation-claims/{}/approval",
            claim["id"].as_str().unwrap()
        ),
        json!({ "approved_on": "2025-06-10" }),
    )
    .await;
    assert_problem(r, 409, "insufficient_fund_balance").await;
    let (_, l) = app.get_json(&format!("/v1/loans/{loan}"), &bank).await;
    assert_eq!(l["status"], "active", "nothing half-written");
    let fund = fund_position(&app, &desk.entrant, &desk.fund).await;
    assert_eq!(fund["balance"], "3000.00");
    funds_reconcile(&app).await;
}

#[derive(danbao_persistence::diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = danbao_persistence::diesel::sql_types::Text)]
    t: String,
}

/// A loan's principal not repaid at closing and its last payment's date, as stored.
async fn closed_books(app: &TestApp, loan: &str) -> String {
    let mut conn = app.db.connect().await;
    sql_query(
        "SELECT coalesce(closed_unpaid::text, 'null') || ' ' || coalesce(closed_paid_until::text, 'none') AS t
         FROM loans WHERE id = $1::uuid",
    )
    .bind::<danbao_persistence::diesel::sql_types::Text, _>(loan)
    .get_result::<Text>(&mut conn)
    .await
    .unwrap()
    .t
}

async fn verify(app: &TestApp) -> danbao_api::verify::Report {
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    danbao_api::verify::run(&app.db.url, today).await.unwrap()
}

fn failed<'a>(
    report: &'a danbao_api::verify::Report,
    rule_part: &str,
) -> &'a danbao_api::verify::Check {
    report
        .checks
        .iter()
        .find(|c| c.rule.contains(rule_part))
        .unwrap_or_else(|| panic!("no rule about {rule_part}"))
}

#[tokio::test]
async fn verify_accepts_clean_books_and_names_what_does_not_add_up() {
    let app = spawn_app().await;
    let desk = app.desk("1000000.00").await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
        .await;
    let dates = ["2025-01-05", "2025-01-10", "2025-01-15"];
    let good = active_loan(&app, &desk, &bank, 1, dates).await;
    let bad = active_loan(&app, &desk, &bank, 2, dates).await;
    for (loan, n) in [(&good, 1), (&good, 2), (&bad, 3)] {
        let r = post(
            &app,
            &bank,
            &format!("/v1/loans/{loan}/repayments"),
            json!({ "bank_reference": format!("V-{n}"), "value_date": "2025-02-15", "amount": "700.00" }),
        )
        .await;
        json_of(r, 201).await;
    }
    let claim = json_of(
        post(
            &app,
            &bank,
            &format!("/v1/loans/{bad}/compensation-claims"),
            json!({ "filed_on": "2025-06-01" }),
        )
        .await,
        201,
    )
    .await;
    let r = post(
        &app,
        &desk.approver,
        &format!(
            "/v1/compensation-claims/{}/approval",
            claim["id"].as_str().unwrap()
        ),
        json!({ "approved_on": "2025-06-10" }),
    )
    .await;
    json_of(r, 200).await;
    let report = verify(&app).await;
    assert!(report.ok(), "{report:#?}");
    assert_eq!(failed(&report, "fund balance").checked, 1);
    assert_eq!(failed(&report, "position").checked, 2);

    // Someone edits a total behind the books' back, and a stray allocation appears.
    let mut conn = app.db.connect().await;
    sql_query("UPDATE funds SET balance = balance + 0.01")
        .execute(&mut conn)
        .await
        .unwrap();
    sql_query(
        "INSERT INTO repayment_allocations (repayment_id, loan_id, to_penalty, to_interest, to_principal)
         SELECT r.id, r.loan_id, 0, 0, r.amount FROM repayments r WHERE r.bank_reference = 'V-1'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let report = verify(&app).await;
    assert!(!report.ok());
    let fund = failed(&report, "fund balance");
    assert_eq!(fund.failed, 1);
    assert!(fund.failures[0].contains(&desk.fund), "{:?}", fund.failures);
    let positions = failed(&report, "position");
    assert_eq!(positions.failed, 1, "{:?}", positions.failures);
    assert!(
        positions.failures[0].contains(&good),
        "{:?}",
        positions.failures
    );
    let outstanding = failed(&report, "outstanding guaranteed");
    assert_eq!(
        outstanding.failed, 1,
        "the stray principal no longer adds up"
    );
    assert_eq!(failed(&report, "write-off").failed, 0);
    assert_eq!(failed(&report, "statistics facts").failed, 0);
    assert_eq!(failed(&report, "sub-regions").failed, 0);

    // The statistics facts are derived: lose some, and verify says so; rebuild them.
    sql_query("DELETE FROM principal_payments WHERE loan_id = (SELECT id FROM loans WHERE bank_account_no = 'ACC-1')")
        .execute(&mut conn)
        .await
        .unwrap();
    let report = verify(&app).await;
    let facts = failed(&report, "statistics facts");
    assert_eq!(facts.failed, 1, "{:?}", facts.failures);
    assert!(facts.failures[0].contains(&good));
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let rebuilt = danbao_api::verify::run_with(&app.db.url, today, true)
        .await
        .unwrap();
    assert_eq!(failed(&rebuilt, "statistics facts").failed, 0);
    assert_eq!(failed(&verify(&app).await, "statistics facts").failed, 0);
}

#[tokio::test]
async fn the_extension_compensation_statistics_and_login_migrations_revert_and_reapply() {
    let app = spawn_app().await;
    for m in [
        "2026-11-27-000006_extension_compensation",
        "2026-11-27-000007_statistics",
        "2026-11-27-000008_login_attempts",
        "2026-11-27-000009_statistics_indexes",
    ] {
        revert_and_reapply(&app, m).await;
    }
}
