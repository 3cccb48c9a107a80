use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn decide(
    app: &TestApp,
    token: &str,
    loan: &str,
    action: &str,
    body: Value,
) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/v1/loans/{loan}/{action}"),
        Some(token),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn forty_concurrent_approvals_against_room_for_fifteen() {
    let app = spawn_app().await;
    // 30,000.00 × 5 (2020 preset) = 150,000.00 = exactly 15 loans of 10,000.00.
    let desk = app.desk("30000.00").await;
    let mut loans = Vec::new();
    for i in 0..40 {
        let b = app.person(&desk.entrant, i, json!({})).await;
        loans.push(app.applied(&desk.entrant, &desk, &b, json!({})).await);
    }
    let tasks: Vec<_> = loans
        .iter()
        .map(|loan| {
            let (http, url, token) = (
                app.http.clone(),
                app.url(&format!("/v1/loans/{loan}/approval")),
                desk.approver.clone(),
            );
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut approved = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => approved += 1,
            409 => {
                assert_eq!(body["code"], "fund_capacity_exceeded", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((approved, refused), (15, 25));
    let (_, pos) = app
        .get_json(&format!("/v1/funds/{}", desk.fund), &desk.approver)
        .await;
    assert_eq!(pos["outstanding_guaranteed"], "150000.00");
    assert_eq!(pos["headroom"], "0.00");
    // The fund's running total equals the sum of the approved principals.
    let (_, list) = app
        .get_json("/v1/loans?status=approved&limit=500", &desk.approver)
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 15);
    let sum: rust_decimal::Decimal = items
        .iter()
        .map(|l| {
            l["principal"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(sum.to_string(), "150000.00");
    use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(danbao_persistence::diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = danbao_persistence::diesel::sql_types::Numeric)]
        outstanding_guaranteed: rust_decimal::Decimal,
    }
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let row: Row =
        danbao_persistence::diesel::sql_query("SELECT outstanding_guaranteed FROM funds")
            .get_result(&mut conn)
            .await
            .unwrap();
    assert_eq!(row.outstanding_guaranteed, sum);
}

#[tokio::test]
async fn one_person_never_holds_two_unsettled_loans_even_when_approved_at_once() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    // A second fund, so the two approvals do not serialise on one fund's lock: only the
    // database's one-loan-per-person index can stop the second.
    let fund2 = app.fund(&desk.entrant, "第二基金", "100000.00").await;
    let b = app.person(&desk.entrant, 7, json!({})).await;
    let l1 = app.applied(&desk.entrant, &desk, &b, json!({})).await;
    let l2 = app
        .applied(&desk.entrant, &desk, &b, json!({ "fund_id": fund2 }))
        .await;
    let (r1, r2) = tokio::join!(
        decide(&app, &desk.approver, &l1, "approval", json!({})),
        decide(&app, &desk.approver, &l2, "approval", json!({}))
    );
    let mut statuses = vec![r1.status().as_u16(), r2.status().as_u16()];
    let loser = if r1.status() == 200 { r2 } else { r1 };
    statuses.sort();
    assert_eq!(statuses, vec![200, 409]);
    let v = assert_problem(loser, 409, "unsettled_loan_exists").await;
    assert!(v["detail"].as_str().unwrap().contains("unsettled"));
    // A third application is refused at once.
    let r = app.apply(&desk.entrant, &desk, &b, json!({})).await;
    assert_problem(r, 409, "unsettled_loan_exists").await;
}

#[tokio::test]
async fn community_waiver_holds_until_revocation() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let r = app
        .call(
            Method::POST,
            "/v1/credit-communities",
            Some(&desk.entrant),
            Some(json!({ "name": "八一社区", "region_code": "360102", "certified_on": "2024-01-01" })),
        )
        .await;
    assert_eq!(r.status(), 201);
    let community = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resident = |seq| {
        app.person(
            &desk.entrant,
            seq,
            json!({ "credit_community_id": community }),
        )
    };
    let (a, b) = (resident(1).await, resident(2).await);
    let waiver = json!({ "counter_guarantee": { "kind": "credit_community_waiver" }, "applied_on": "2024-05-01", "principal": "50000.00" });
    let la = app.applied(&desk.entrant, &desk, &a, waiver.clone()).await;
    let lb = app.applied(&desk.entrant, &desk, &b, waiver.clone()).await;
    // Over the 2020 preset's waiver limit of 100,000.00: a counter-guarantee is required.
    let mut over = waiver.clone();
    over["principal"] = json!("100000.01");
    let r = app
        .apply(&desk.entrant, &desk, &resident(3).await, over)
        .await;
    let v = assert_problem(r, 422, "waiver_not_allowed").await;
    assert_eq!(v["errors"][0]["field"], "counter_guarantee");

    let r = app
        .call(
            Method::POST,
            &format!("/v1/credit-communities/{community}/revocation"),
            Some(&desk.entrant),
            Some(json!({ "revoked_on": "2024-06-01", "reason": "逾期率超标" })),
        )
        .await;
    assert_eq!(r.status(), 200);
    // Decided before the revocation date: the waiver stands.
    let r = decide(
        &app,
        &desk.approver,
        &la,
        "approval",
        json!({ "decided_on": "2024-05-31" }),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Decided on or after it: refused, naming the field.
    let r = decide(
        &app,
        &desk.approver,
        &lb,
        "approval",
        json!({ "decided_on": "2024-06-01" }),
    )
    .await;
    let v = assert_problem(r, 422, "waiver_not_allowed").await;
    assert_eq!(v["errors"][0]["field"], "counter_guarantee");
    // And a new application after revocation is refused at once.
    let mut late = waiver.clone();
    late["applied_on"] = json!("2024-07-01");
    let r = app
        .apply(&desk.entrant, &desk, &resident(4).await, late)
        .await;
    assert_problem(r, 422, "waiver_not_allowed").await;
}

#[tokio::test]
async fn rule_breaking_applications_name_their_field() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let b = app.person(&desk.entrant, 1, json!({})).await;
    // 2020 preset: 200,000.00 limit, 36 months, rate cap LPR 3.85 % + 1.5 = 5.35 %.
    for (extra, code, field) in [
        (
            json!({ "principal": "200000.01" }),
            "amount_over_limit",
            "principal",
        ),
        (
            json!({ "term_months": 37 }),
            "term_over_maximum",
            "term_months",
        ),
        (
            json!({ "annual_rate": "0.053501" }),
            "rate_over_cap",
            "annual_rate",
        ),
    ] {
        let r = app.apply(&desk.entrant, &desk, &b, extra.clone()).await;
        let v = assert_problem(r, 422, code).await;
        assert_eq!(v["errors"][0]["field"], field, "{extra}: {v}");
    }
    // At the limits exactly, it is accepted.
    let r = app
        .apply(
            &desk.entrant,
            &desk,
            &b,
            json!({ "principal": "200000.00", "term_months": 36, "annual_rate": "0.0535" }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // A wrong check digit never gets as far as a loan.
    let mut bad = national_id("19800101", 9);
    let last = if bad.ends_with('0') { '1' } else { '0' };
    bad.pop();
    bad.push(last);
    let r = app
        .call(
            Method::POST,
            "/v1/borrowers",
            Some(&desk.entrant),
            Some(json!({ "kind": "individual", "category": "laid_off", "name": "李四", "national_id": bad, "employment_certificate_no": "X1" })),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "national_id");
    // Someone else's fund, an unknown bank, a future date.
    let other_fund = {
        let other = app
            .user_token(
                "clerk.jdz",
                "clerk",
                json!({ "centre_id": desk.p.centre_jdz }),
            )
            .await;
        app.fund(&other, "景德镇基金", "1000.00").await
    };
    for (extra, field) in [
        (json!({ "fund_id": other_fund }), "fund_id"),
        (json!({ "bank_id": uuid::Uuid::now_v7() }), "bank_id"),
        (json!({ "applied_on": "2999-01-01" }), "applied_on"),
        (json!({ "principal": 10000 }), "principal"),
        (json!({ "schedule_method": "balloon" }), "schedule_method"),
    ] {
        let r = app.apply(&desk.entrant, &desk, &b, extra.clone()).await;
        let v = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(v["errors"][0]["field"], field, "{extra}: {v}");
    }
}

#[tokio::test]
async fn four_eyes_states_and_cancellation_release_headroom() {
    let app = spawn_app().await;
    let desk = app.desk("10000.00").await;
    let b1 = app.person(&desk.entrant, 1, json!({})).await;
    let b2 = app.person(&desk.entrant, 2, json!({})).await;
    let loan = app
        .applied(
            &desk.entrant,
            &desk,
            &b1,
            json!({ "principal": "50000.00" }),
        )
        .await;
    let r = decide(&app, &desk.entrant, &loan, "approval", json!({})).await;
    assert_problem(r, 403, "four_eyes_required").await;
    let r = decide(
        &app,
        &desk.entrant,
        &loan,
        "rejection",
        json!({ "reason": "x" }),
    )
    .await;
    assert_problem(r, 403, "four_eyes_required").await;
    let r = decide(&app, &app.admin_token, &loan, "approval", json!({})).await;
    assert_problem(r, 403, "forbidden").await;
    let r = decide(
        &app,
        &desk.approver,
        &loan,
        "approval",
        json!({ "decided_on": "2001-01-01" }),
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = decide(&app, &desk.approver, &loan, "approval", json!({})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "approved");
    assert_eq!(v["position"]["guaranteed_outstanding"], "50000.00");
    let r = decide(&app, &desk.approver, &loan, "approval", json!({})).await;
    assert_problem(r, 409, "invalid_state").await;
    // 10,000 × 5 = 50,000: the fund is full, so the next one does not fit...
    let other = app
        .applied(&desk.entrant, &desk, &b2, json!({ "principal": "0.01" }))
        .await;
    let r = decide(&app, &desk.approver, &other, "approval", json!({})).await;
    assert_problem(r, 409, "fund_capacity_exceeded").await;
    // ...until the first is cancelled, which gives the room back.
    let r = decide(
        &app,
        &desk.entrant,
        &loan,
        "cancellation",
        json!({ "reason": "borrower withdrew" }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["position"]["guaranteed_outstanding"], "0.00");
    let (_, pos) = app
        .get_json(&format!("/v1/funds/{}", desk.fund), &desk.approver)
        .await;
    assert_eq!(pos["outstanding_guaranteed"], "0.00");
    let r = decide(&app, &desk.approver, &other, "approval", json!({})).await;
    assert_eq!(r.status(), 200);
    // A rejection needs a reason and ends the application.
    let b3 = app.person(&desk.entrant, 3, json!({})).await;
    let third = app.applied(&desk.entrant, &desk, &b3, json!({})).await;
    let r = decide(&app, &desk.approver, &third, "rejection", json!({})).await;
    assert_problem(r, 422, "validation_failed").await;
    let r = decide(
        &app,
        &desk.approver,
        &third,
        "rejection",
        json!({ "reason": "项目风险高" }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = decide(
        &app,
        &desk.entrant,
        &third,
        "cancellation",
        json!({ "reason": "x" }),
    )
    .await;
    assert_problem(r, 409, "invalid_state").await;
    // Every decision is in the audit log with its actor.
    let (_, events) = app
        .get_json(
            &format!("/v1/audit-events?entity_type=loan&entity_id={loan}"),
            &app.admin_token,
        )
        .await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["loan.cancelled", "loan.approved", "loan.applied"]
    );
}

#[tokio::test]
async fn loans_are_visible_only_within_scope() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let b1 = app.person(&desk.entrant, 1, json!({})).await;
    let b2 = app.person(&desk.entrant, 2, json!({})).await;
    let at_a = app.applied(&desk.entrant, &desk, &b1, json!({})).await;
    let at_b = app
        .applied(
            &desk.entrant,
            &desk,
            &b2,
            json!({ "bank_id": desk.p.bank_b }),
        )
        .await;
    let bank_a = app
        .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
        .await;
    let sup_jdz = app
        .user_token("sup.jdz", "supervisor", json!({ "region_code": "360200" }))
        .await;
    let sup_nc = app
        .user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;
    let clerk_jdz = app
        .user_token(
            "clerk.jdz",
            "clerk",
            json!({ "centre_id": desk.p.centre_jdz }),
        )
        .await;

    let (_, list) = app.get_json("/v1/loans", &bank_a).await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![at_a.as_str()]);
    // Asking for the other bank's loans by filter does not widen the scope.
    let (_, list) = app
        .get_json(&format!("/v1/loans?bank_id={}", desk.p.bank_b), &bank_a)
        .await;
    assert!(list["items"].as_array().unwrap().is_empty());
    for (token, loan) in [(&bank_a, &at_b), (&sup_jdz, &at_a), (&clerk_jdz, &at_a)] {
        let r = app
            .call(Method::GET, &format!("/v1/loans/{loan}"), Some(token), None)
            .await;
        assert_problem(r, 404, "not_found").await;
        let r = app
            .call(
                Method::GET,
                &format!("/v1/loans/{loan}/schedule"),
                Some(token),
                None,
            )
            .await;
        assert_problem(r, 404, "not_found").await;
    }
    let (_, list) = app.get_json("/v1/loans?region=360000", &sup_jdz).await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "a city supervisor asking for the province sees only its city"
    );
    let (_, list) = app.get_json("/v1/loans?region=360000", &sup_nc).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (status, _) = app.get_json(&format!("/v1/loans/{at_b}"), &sup_nc).await;
    assert_eq!(status, 200);
    let r = app
        .call(Method::GET, "/v1/loans?status=lost", Some(&bank_a), None)
        .await;
    assert_problem(r, 422, "validation_failed").await;
}

#[tokio::test]
async fn schedules_of_a_50000_loan_at_5_85_percent_over_24_months() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    // Applied 2009-01-15 under the 2008 preset (50,000.00 limit, 24 months, cap 5.31 % + 3).
    let mut rows = Vec::new();
    for (i, method) in [
        "bullet",
        "interest_monthly",
        "interest_quarterly",
        "equal_instalment",
        "equal_principal",
    ]
    .iter()
    .enumerate()
    {
        let b = app.person(&desk.entrant, 10 + i as u32, json!({})).await;
        let loan = app
            .applied(
                &desk.entrant,
                &desk,
                &b,
                json!({ "principal": "50000.00", "annual_rate": "0.0585", "term_months": 24, "schedule_method": method,
                        "applied_on": "2009-01-15", "micro_profit": false }),
            )
            .await;
        let (status, s) = app
            .get_json(&format!("/v1/loans/{loan}/schedule"), &desk.entrant)
            .await;
        assert_eq!(status, 200, "{s}");
        assert_eq!(
            s["total_principal"], "50000.00",
            "{method}: instalments must sum to the principal"
        );
        assert_eq!(s["total_subsidy"], "0.00", "not a micro-profit loan");
        let inst = s["instalments"].as_array().unwrap();
        let (first, last) = (&inst[0], &inst[inst.len() - 1]);
        println!(
            "{method:<20} n={:>2} first {} + {} = {} due {}; last {} + {} = {} due {}",
            inst.len(),
            first["principal"],
            first["interest"],
            first["total"],
            first["due_date"],
            last["principal"],
            last["interest"],
            last["total"],
            last["due_date"]
        );
        rows.push((method.to_string(), inst.len(), first.clone(), last.clone()));
    }
    // Monthly rate 5.85 % / 12 = 0.4875 %; 50,000.00 × 0.004875 = 243.75 a month.
    let get = |m: &str| rows.iter().find(|r| r.0 == m).unwrap();
    let bullet = get("bullet");
    assert_eq!(
        (bullet.1, bullet.2["interest"].as_str().unwrap()),
        (1, "5850.00")
    ); // 243.75 × 24
    assert_eq!(bullet.2["due_date"], "2011-01-15");
    let monthly = get("interest_monthly");
    assert_eq!(
        (
            monthly.1,
            monthly.2["interest"].as_str().unwrap(),
            monthly.3["principal"].as_str().unwrap()
        ),
        (24, "243.75", "50000.00")
    );
    let quarterly = get("interest_quarterly");
    assert_eq!(
        (quarterly.1, quarterly.2["interest"].as_str().unwrap()),
        (8, "731.25")
    ); // 243.75 × 3
       // Annuity: 50,000 × r / (1 − (1 + r)^−24) with r = 0.004875 → 2,212.65; the last absorbs rounding.
    let annuity = get("equal_instalment");
    assert_eq!(
        (
            annuity.2["total"].as_str().unwrap(),
            annuity.2["interest"].as_str().unwrap()
        ),
        ("2212.65", "243.75")
    );
    assert_eq!(annuity.3["total"], "2212.72");
    // Equal principal: 50,000 / 24 = 2,083.33 and the last 2,083.41 (= 50,000 − 23 × 2,083.33).
    let ep = get("equal_principal");
    assert_eq!(
        (
            ep.2["principal"].as_str().unwrap(),
            ep.2["interest"].as_str().unwrap()
        ),
        ("2083.33", "243.75")
    );
    assert_eq!(
        (
            ep.3["principal"].as_str().unwrap(),
            ep.3["interest"].as_str().unwrap()
        ),
        ("2083.41", "10.16")
    );
}

#[tokio::test]
async fn micro_profit_schedules_carry_the_subsidy_share() {
    let app = spawn_app().await;
    let desk = app.desk("100000.00").await;
    let b = app.person(&desk.entrant, 1, json!({})).await;
    // 2008 preset: laid-off certificate holders get 100 % of the interest paid.
    let loan = app
        .applied(&desk.entrant, &desk, &b, json!({ "principal": "20000.00", "annual_rate": "0.0531", "term_months": 12,
            "schedule_method": "interest_quarterly", "applied_on": "2009-03-01", "micro_profit": true }))
        .await;
    let (_, s) = app
        .get_json(&format!("/v1/loans/{loan}/schedule"), &desk.entrant)
        .await;
    // 20,000 × 5.31 % / 12 × 3 = 265.50 a quarter, all of it subsidised.
    assert_eq!(s["instalments"][0]["interest"], "265.50");
    assert_eq!(s["instalments"][0]["subsidy"], "265.50");
    assert_eq!(s["total_subsidy"], s["total_interest"]);
}
