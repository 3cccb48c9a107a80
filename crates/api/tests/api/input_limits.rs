//! Every bound of the README's "Limits on input": a value just over it is a 4xx problem
//! naming the field, and for several a value just at it is accepted.
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

/// One request expected to be refused: `status`, `code`, and the field in `errors[0]`.
struct Over {
    method: Method,
    path: String,
    body: Option<Value>,
    status: u16,
    code: &'static str,
    field: &'static str,
}

fn post(path: impl Into<String>, body: Value, field: &'static str) -> Over {
    Over {
        method: Method::POST,
        path: path.into(),
        body: Some(body),
        status: 422,
        code: "validation_failed",
        field,
    }
}

fn get(path: impl Into<String>, field: &'static str) -> Over {
    Over {
        method: Method::GET,
        path: path.into(),
        body: None,
        status: 400,
        code: "invalid_query",
        field,
    }
}

impl Over {
    fn answered(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }
}

async fn refused(app: &TestApp, token: &str, cases: Vec<Over>) {
    for c in cases {
        let what = format!("{} {} {:?}", c.method, c.path, c.body);
        let r = app.call(c.method, &c.path, Some(token), c.body).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, c.status, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["code"], c.code, "{what}: {v}");
        assert_eq!(v["errors"][0]["field"], c.field, "{what}: {v}");
    }
}

async fn accepted(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) {
    let r = app.call(method.clone(), path, Some(token), body).await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
}

/// `body` with `key` set to `value`.
fn with(body: &Value, key: &str, value: Value) -> Value {
    let mut b = body.clone();
    b[key] = value;
    b
}

fn chars(n: usize) -> String {
    // Three bytes each in UTF-8: bounds count characters, not bytes.
    "名".repeat(n)
}

/// Two days ahead of today in any time zone.
fn after_today() -> String {
    (chrono::Utc::now().date_naive() + chrono::Days::new(2)).to_string()
}

#[tokio::test]
async fn bodies_over_their_size_depth_or_shape_are_refused() {
    let app = spawn_app().await;
    // 256 KiB is the most; a body just over it is 413 whatever it holds.
    let big = json!({ "code": "360000", "name": "x".repeat(256 * 1024) });
    let r = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(&app.admin_token),
            Some(big),
        )
        .await;
    assert_problem(r, 413, "payload_too_large").await;
    // Just under it, the body is read and the name (not the size) is refused.
    let under = json!({ "code": "360000", "name": "x".repeat(255 * 1024) });
    refused(
        &app,
        &app.admin_token,
        vec![post("/v1/regions", under, "name")],
    )
    .await;
    // 32 levels of nesting are read; 33 are not.
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for (depth, malformed) in [(32, false), (33, true)] {
        let body = format!(r#"{{"code": "360000", "name": {}}}"#, nest(depth - 1));
        let r = app
            .http
            .post(app.url("/v1/regions"))
            .bearer_auth(&app.admin_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        if malformed {
            assert_problem(r, 400, "malformed_json").await;
        } else {
            let v = assert_problem(r, 422, "validation_failed").await;
            assert_eq!(v["errors"][0]["field"], "name");
        }
    }
    let unknown = json!({ "code": "360000", "name": "江西省", "colour": "red" });
    let r = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(&app.admin_token),
            Some(unknown),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{v}"
    );
}

#[tokio::test]
async fn administrative_strings_over_their_length_or_charset_name_the_field() {
    let app = spawn_app().await;
    let admin = app.admin_token.clone();
    let region = json!({ "code": "360000", "name": "江西省" });
    let bank = json!({ "code": "JXRCU", "name": "江西农信" });
    let user = json!({ "username": "li.clerk", "display_name": "李", "role": "admin" });
    refused(
        &app,
        &admin,
        vec![
            post(
                "/v1/regions",
                with(&region, "name", json!(chars(101))),
                "name",
            ),
            post(
                "/v1/regions",
                with(&region, "name", json!("江西\u{7}省")),
                "name",
            ),
            post(
                "/v1/regions",
                with(&region, "code", json!("3600000")),
                "code",
            ),
            post("/v1/banks", with(&bank, "name", json!(chars(201))), "name"),
            post(
                "/v1/banks",
                with(&bank, "code", json!("A".repeat(33))),
                "code",
            ),
            post(
                "/v1/users",
                with(&user, "display_name", json!(chars(201))),
                "display_name",
            ),
            post(
                "/v1/users",
                with(&user, "username", json!("a".repeat(65))),
                "username",
            ),
            post(
                "/v1/users",
                with(&user, "password", json!(format!("Aa1{}", "x".repeat(254)))),
                "password",
            ),
            post(
                "/v1/users",
                with(&user, "password", json!("Aa1xxxxxxxx")),
                "password",
            ),
        ],
    )
    .await;
    // At the bounds: 100 and 200 characters (300 and 600 bytes), a 32-character code, a
    // 64-character user name with a 256-byte password.
    accepted(
        &app,
        &admin,
        Method::POST,
        "/v1/regions",
        Some(with(&region, "name", json!(chars(100)))),
    )
    .await;
    let centre = json!({ "name": chars(200), "region_code": "360000" });
    accepted(&app, &admin, Method::POST, "/v1/centres", Some(centre)).await;
    refused(
        &app,
        &admin,
        vec![post(
            "/v1/centres",
            json!({ "name": chars(201), "region_code": "360000" }),
            "name",
        )],
    )
    .await;
    accepted(
        &app,
        &admin,
        Method::POST,
        "/v1/banks",
        Some(json!({ "code": "B".repeat(32), "name": chars(200) })),
    )
    .await;
    let long_user = json!({ "username": "u".repeat(64), "display_name": chars(200), "role": "admin",
        "password": format!("Aa1{}", "x".repeat(253)) });
    accepted(&app, &admin, Method::POST, "/v1/users", Some(long_user)).await;
    let banks = app.get_json("/v1/banks", &admin).await.1;
    let bank_id = banks["items"][0]["id"].clone();
    refused(
        &app,
        &admin,
        vec![post(
            "/v1/bank-clients",
            json!({ "bank_id": bank_id, "name": chars(201) }),
            "name",
        )],
    )
    .await;
}

#[tokio::test]
async fn policies_out_of_range_name_the_parameter() {
    let app = spawn_app().await;
    let admin = app.admin_token.clone();
    let r = app
        .call(Method::POST, "/v1/policies/presets", Some(&admin), None)
        .await;
    assert_eq!(r.status(), 200);
    let list = app.get_json("/v1/policies", &admin).await.1;
    let mut policy = list["items"][0]["policy"].clone();
    policy["code"] = json!("LIMITS-1");
    let body = |key: &str, value: Value| json!({ "policy": with(&policy, key, value) });
    refused(
        &app,
        &admin,
        vec![
            post("/v1/policies", body("code", json!("C".repeat(65))), "code"),
            post("/v1/policies", body("name", json!(chars(201))), "name"),
            post(
                "/v1/policies",
                body("effective_from", json!("1989-12-31")),
                "effective_from",
            ),
            post(
                "/v1/policies",
                body("effective_from", json!("2201-01-01")),
                "effective_from",
            ),
            post(
                "/v1/policies",
                body("extension_max_months", json!(61)),
                "extension_max_months",
            ),
            post(
                "/v1/policies",
                body("max_term_months", json!(121)),
                "max_term_months",
            ),
            post(
                "/v1/policies",
                body("leverage_multiple", json!("5.12345")),
                "leverage_multiple",
            ),
            post(
                "/v1/policies",
                body("benchmark_rate", json!("0.0000001")),
                "policy.benchmark_rate",
            ),
            post(
                "/v1/policies",
                body("individual_limit", json!("1.001")),
                "policy.individual_limit",
            ),
            post("/v1/policies", body("grace_days", json!(366)), "grace_days"),
            post("/v1/policies", body("min_age", json!(15)), "min_age"),
            post(
                "/v1/policies",
                body("compensation_overdue_days", json!(3651)),
                "compensation_overdue_days",
            ),
        ],
    )
    .await;
    // At the bounds.
    let mut at = with(&policy, "effective_from", json!("2200-12-31"));
    at["extension_max_months"] = json!(60);
    at["leverage_multiple"] = json!("5.1234");
    accepted(
        &app,
        &admin,
        Method::POST,
        "/v1/policies",
        Some(json!({ "policy": at })),
    )
    .await;
}

#[tokio::test]
async fn a_clerks_strings_numbers_and_dates_over_their_bound_name_the_field() {
    let app = spawn_app().await;
    let desk = app.desk("1000000.00").await;
    let clerk = desk.entrant.clone();
    let person = json!({ "kind": "individual", "category": "laid_off", "name": "张三",
        "national_id": national_id("19800101", 901), "employment_certificate_no": "JX1" });
    let firm = json!({ "kind": "small_enterprise", "category": "small_enterprise", "name": "某公司",
        "enterprise_registration_no": "91360102MA35L8XK2B", "employees": 100000, "eligible_employees": 100000 });
    let contribution = json!({ "value_date": "2004-01-02", "amount": "1.00", "source": "other" });
    let contribute = format!("/v1/funds/{}/contributions", desk.fund);
    let community =
        json!({ "name": "百花洲社区", "region_code": "360102", "certified_on": "2005-01-01" });
    refused(
        &app,
        &clerk,
        vec![
            post(
                "/v1/borrowers",
                with(&person, "name", json!(chars(201))),
                "name",
            ),
            post(
                "/v1/borrowers",
                with(&person, "name", json!("张\n三")),
                "name",
            ),
            post(
                "/v1/borrowers",
                with(&person, "employment_certificate_no", json!("X".repeat(65))),
                "employment_certificate_no",
            ),
            post(
                "/v1/borrowers",
                with(&person, "phone", json!("1".repeat(21))),
                "phone",
            ),
            post(
                "/v1/borrowers",
                with(&person, "national_id", json!("1".repeat(19))),
                "national_id",
            ),
            post(
                "/v1/borrowers",
                json!({ "kind": "partnership", "category": "laid_off", "name": "合伙",
                "national_id": national_id("19800101", 902), "member_count": 101 }),
                "member_count",
            ),
            post(
                "/v1/borrowers",
                with(&firm, "employees", json!(100001)),
                "employees",
            ),
            post(
                "/v1/borrowers",
                with(&firm, "eligible_employees", json!(100001)),
                "eligible_employees",
            ),
            post(
                "/v1/borrowers",
                with(&firm, "employees", json!(2_147_483_648_i64)),
                "employees",
            ),
            post("/v1/funds", json!({ "name": chars(201) }), "name"),
            post(
                "/v1/funds",
                json!({ "name": "基金", "bank_account": "1".repeat(65) }),
                "bank_account",
            ),
            post(
                &contribute,
                with(&contribution, "reference", json!(chars(201))),
                "reference",
            ),
            post(
                &contribute,
                with(&contribution, "amount", json!("1.001")),
                "amount",
            ),
            post(
                &contribute,
                with(&contribution, "amount", json!("10000000000000000.00")),
                "amount",
            ),
            post(
                &contribute,
                with(&contribution, "amount", json!("-1.00")),
                "amount",
            ),
            post(
                &contribute,
                with(&contribution, "amount", json!(1.5)),
                "amount",
            ),
            post(
                &contribute,
                with(&contribution, "value_date", json!("1989-12-31")),
                "value_date",
            ),
            post(
                &contribute,
                with(&contribution, "value_date", json!(after_today())),
                "value_date",
            ),
            post(
                &contribute,
                with(&contribution, "source", json!("lottery")),
                "source",
            ),
            post(
                "/v1/credit-communities",
                with(&community, "name", json!(chars(201))),
                "name",
            ),
            post(
                "/v1/credit-communities",
                with(&community, "certified_on", json!("1989-12-31")),
                "certified_on",
            ),
            post(
                "/v1/credit-communities",
                with(&community, "certified_on", json!(after_today())),
                "certified_on",
            ),
        ],
    )
    .await;
    // At the bounds: 200 characters, 100,000 employees, 9,999,999,999,999,999.99 yuan.
    accepted(
        &app,
        &clerk,
        Method::POST,
        "/v1/borrowers",
        Some(with(&person, "name", json!(chars(200)))),
    )
    .await;
    accepted(&app, &clerk, Method::POST, "/v1/borrowers", Some(firm)).await;
    accepted(
        &app,
        &clerk,
        Method::POST,
        &contribute,
        Some(with(&contribution, "value_date", json!("1990-01-01"))),
    )
    .await;
    // The largest amount, into a fund of its own (its balance holds it exactly).
    let big = app.fund(&clerk, "大基金", "9999999999999999.99").await;
    // One fen more would overflow the balance: refused naming the amount, not a 500.
    refused(
        &app,
        &clerk,
        vec![post(
            format!("/v1/funds/{big}/contributions"),
            contribution.clone(),
            "amount",
        )],
    )
    .await;
    let c = app
        .call(
            Method::POST,
            "/v1/credit-communities",
            Some(&clerk),
            Some(community.clone()),
        )
        .await;
    assert_eq!(c.status(), 201);
    let c = c.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = format!("/v1/credit-communities/{c}/revocation");
    refused(
        &app,
        &clerk,
        vec![
            post(
                &revoke,
                json!({ "revoked_on": "2006-01-01", "reason": chars(501) }),
                "reason",
            ),
            post(
                &revoke,
                json!({ "revoked_on": after_today(), "reason": "评估未通过" }),
                "revoked_on",
            ),
        ],
    )
    .await;

    let borrower = app.person(&clerk, 1, json!({})).await;
    let apply = |extra: Value| app.apply(&clerk, &desk, &borrower, extra);
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "purpose": chars(501) }), "purpose"),
        (json!({ "jobs_declared": 100001 }), "jobs_declared"),
        (json!({ "jobs_declared": -1 }), "jobs_declared"),
        (json!({ "term_months": 0 }), "term_months"),
        (json!({ "annual_rate": "0.0435001" }), "annual_rate"),
        (json!({ "annual_rate": "1.5" }), "annual_rate"),
        (json!({ "principal": "10000.001" }), "principal"),
        (json!({ "applied_on": "1989-12-31" }), "applied_on"),
        (json!({ "applied_on": after_today() }), "applied_on"),
        (json!({ "schedule_method": "balloon" }), "schedule_method"),
        (
            json!({ "counter_guarantee": { "kind": "joint_guarantee_group", "members": 101 } }),
            "counter_guarantee",
        ),
        (
            json!({ "counter_guarantee": { "kind": "mortgage", "description": chars(501) } }),
            "counter_guarantee",
        ),
        (
            json!({ "counter_guarantee": { "kind": "pledge", "description": "金\u{0}条" } }),
            "counter_guarantee",
        ),
        (
            json!({ "counter_guarantee": { "kind": "guarantor", "name": chars(101),
            "national_id": national_id("19700101", 903) } }),
            "counter_guarantee",
        ),
    ];
    for (extra, field) in cases {
        let r = apply(extra.clone()).await;
        let v = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(v["errors"][0]["field"], field, "{extra}: {v}");
    }
    // Over the policy's maximum term: a rule, still naming the field.
    let v = assert_problem(
        apply(json!({ "term_months": 121 })).await,
        422,
        "term_over_maximum",
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "term_months", "{v}");
    // At the bounds: 500 characters of purpose, 100,000 jobs, a group of 100.
    let loan = app
        .applied(
            &clerk,
            &desk,
            &borrower,
            json!({ "purpose": chars(500), "jobs_declared": 100000,
            "counter_guarantee": { "kind": "joint_guarantee_group", "members": 100 } }),
        )
        .await;
    refused(
        &app,
        &desk.approver,
        vec![
            post(
                format!("/v1/loans/{loan}/approval"),
                json!({ "reason": chars(501) }),
                "reason",
            ),
            post(
                format!("/v1/loans/{loan}/approval"),
                json!({ "decided_on": after_today() }),
                "decided_on",
            ),
            post(
                format!("/v1/loans/{loan}/rejection"),
                json!({ "reason": "x\u{1b}[31m" }),
                "reason",
            ),
            post(
                format!("/v1/loans/{loan}/cancellation"),
                json!({ "reason": chars(501) }),
                "reason",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_banks_references_and_dates_over_their_bound_name_the_field() {
    let app = spawn_app().await;
    let desk = app.desk("1000000.00").await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
        .await;
    let borrower = app.person(&desk.entrant, 1, json!({})).await;
    let loan = app
        .applied(
            &desk.entrant,
            &desk,
            &borrower,
            json!({ "applied_on": "2025-01-05", "term_months": 12 }),
        )
        .await;
    accepted(
        &app,
        &desk.approver,
        Method::POST,
        &format!("/v1/loans/{loan}/approval"),
        Some(json!({ "decided_on": "2025-01-10" })),
    )
    .await;
    let disburse = format!("/v1/loans/{loan}/disbursement");
    refused(
        &app,
        &bank,
        vec![
            post(
                &disburse,
                json!({ "value_date": "2025-01-15", "bank_account_no": "1".repeat(65) }),
                "bank_account_no",
            ),
            post(
                &disburse,
                json!({ "value_date": "1989-12-31", "bank_account_no": "1" }),
                "value_date",
            ),
            post(
                &disburse,
                json!({ "value_date": after_today(), "bank_account_no": "1" }),
                "value_date",
            ),
        ],
    )
    .await;
    accepted(
        &app,
        &bank,
        Method::POST,
        &disburse,
        Some(json!({ "value_date": "2025-01-15", "bank_account_no": "9".repeat(64) })),
    )
    .await;
    let repay = format!("/v1/loans/{loan}/repayments");
    refused(
        &app,
        &bank,
        vec![
            post(&repay, json!({ "bank_reference": "R".repeat(65), "value_date": "2025-02-15", "amount": "100.00" }), "bank_reference"),
            post(&repay, json!({ "bank_reference": "R\t1", "value_date": "2025-02-15", "amount": "100.00" }), "bank_reference"),
            post(&repay, json!({ "bank_reference": "R1", "value_date": after_today(), "amount": "100.00" }), "value_date"),
            post(&repay, json!({ "bank_reference": "R1", "value_date": "2025-02-15", "amount": "100.001" }), "amount"),
        ],
    )
    .await;
    let r = app
        .call(Method::POST, &repay, Some(&bank),
            Some(json!({ "bank_reference": "R".repeat(64), "value_date": "2025-02-15", "amount": "100.00" })))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let repayment = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reversal = format!("/v1/repayments/{repayment}/reversal");
    refused(
        &app,
        &bank,
        vec![
            post(&reversal, json!({ "reason": chars(501) }), "reason"),
            post(
                &reversal,
                json!({ "reason": "keyed wrong", "value_date": "1989-12-31" }),
                "value_date",
            ),
            post(
                &reversal,
                json!({ "reason": "keyed wrong", "value_date": after_today() }),
                "value_date",
            ),
        ],
    )
    .await;

    // After disbursement: extension (a clerk), recovery (the bank), write-off (a clerk).
    let extend = format!("/v1/loans/{loan}/extension");
    refused(
        &app,
        &desk.entrant,
        vec![
            post(
                &extend,
                json!({ "months": 6, "reason": chars(501) }),
                "reason",
            ),
            post(
                &extend,
                json!({ "months": 6, "reason": "洪水", "agreed_on": "1989-12-31" }),
                "agreed_on",
            ),
            post(&extend, json!({ "months": -1, "reason": "洪水" }), "months"),
            post(
                format!("/v1/loans/{loan}/write-off"),
                json!({ "reason": chars(501) }),
                "reason",
            ),
        ],
    )
    .await;
    let recover = format!("/v1/loans/{loan}/recoveries");
    let recovery = json!({ "reference": "REC-1", "value_date": "2025-03-01", "amount": "1.00" });
    refused(
        &app,
        &bank,
        vec![
            post(
                &recover,
                with(&recovery, "reference", json!("R".repeat(65))),
                "reference",
            ),
            post(
                &recover,
                with(&recovery, "value_date", json!("1989-12-31")),
                "value_date",
            ),
            post(
                &recover,
                with(&recovery, "amount", json!("1.001")),
                "amount",
            ),
        ],
    )
    .await;

    // Idempotency-Key: 1 to 200 visible ASCII characters.
    let send = |key: String| {
        app.http
            .post(app.url(&repay))
            .bearer_auth(&bank)
            .header("Idempotency-Key", key)
            .json(&json!({ "bank_reference": "R-KEY", "value_date": "2025-02-16", "amount": "10.00" }))
            .send()
    };
    for bad in ["k".repeat(201), "a key".to_owned()] {
        let v = assert_problem(send(bad).await.unwrap(), 400, "invalid_idempotency_key").await;
        assert_eq!(v["errors"][0]["field"], "Idempotency-Key");
    }
    let r = send("k".repeat(200)).await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn credentials_over_their_length_are_refused_before_any_check() {
    let app = spawn_app().await;
    let token = |body: Value| app.call(Method::POST, "/v1/auth/token", None, Some(body));
    for (body, field) in [
        (
            json!({ "username": "a".repeat(65), "password": "x" }),
            "username",
        ),
        (
            json!({ "username": "admin", "password": "x".repeat(257) }),
            "password",
        ),
        (
            json!({ "username": "ad\u{0}min", "password": "x" }),
            "username",
        ),
        (
            json!({ "client_id": "c".repeat(65), "client_secret": "x" }),
            "client_id",
        ),
        (
            json!({ "client_id": "client01", "client_secret": "x".repeat(257) }),
            "client_secret",
        ),
    ] {
        let v = assert_problem(token(body.clone()).await, 422, "validation_failed").await;
        assert_eq!(v["errors"][0]["field"], field, "{body}");
    }
    // At the bounds the credentials are checked (and are wrong).
    let r = token(json!({ "username": "a".repeat(64), "password": "x".repeat(256) })).await;
    assert_problem(r, 401, "unauthorized").await;

    let admin = app.admin_token.clone();
    let change = |current: String, new: String| {
        app.call(
            Method::PUT,
            "/v1/me/password",
            Some(&admin),
            Some(json!({ "current_password": current, "new_password": new })),
        )
    };
    for (current, new, field) in [
        (
            "x".repeat(257),
            "A new password 1".to_owned(),
            "current_password",
        ),
        (
            "whatever".to_owned(),
            "Aa1xxxxxxxx".to_owned(),
            "new_password",
        ),
        (
            "whatever".to_owned(),
            format!("Aa1{}", "x".repeat(254)),
            "new_password",
        ),
    ] {
        let v = assert_problem(change(current, new).await, 422, "validation_failed").await;
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
}

#[tokio::test]
async fn query_parameters_out_of_range_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    let admin = app.admin_token.clone();
    app.seed_province().await;
    refused(
        &app,
        &admin,
        vec![
            get("/v1/loans?limit=0", "limit"),
            get("/v1/loans?limit=501", "limit"),
            get("/v1/loans?limit=x", "limit"),
            get("/v1/loans?cursor=not-a-cursor", "cursor"),
            get("/v1/audit-events?cursor=12x", "cursor"),
            get("/v1/regions?cursor=36'--", "cursor"),
            get(format!("/v1/loans?cursor={}", "0".repeat(5000)), "cursor"),
            get("/v1/loans?as_of=1989-12-31", "as_of"),
            get("/v1/loans?as_of=2201-01-01", "as_of"),
            get("/v1/loans?as_of=2025-02-30", "as_of"),
            get("/v1/credit-communities?active_on=2201-01-01", "active_on"),
            get("/v1/stats/summary?from=1989-12-31", "from"),
            get("/v1/stats/summary?to=2201-01-01", "to"),
            get("/v1/stats/summary?lang=fr", "lang"),
            get("/v1/stats/repayment-rate?as_of=0001-01-01", "as_of"),
            get("/v1/targets?year=2201", "year"),
            get("/v1/stats/targets?year=1989", "year"),
            get("/v1/stats/rewards?year=99999999999", "year"),
            get("/v1/subsidies?year=1989", "year"),
            get("/v1/subsidies?quarter=300", "quarter"),
            get(
                format!("/v1/audit-events?entity_id={}", "e".repeat(101)),
                "entity_id",
            ),
            get("/v1/audit-events?entity_type=%07", "entity_type"),
            get("/v1/loans?status=lost", "status").answered(422, "validation_failed"),
            get("/v1/loans?region=36", "region").answered(422, "validation_failed"),
            get("/v1/subsidies?quarter=5", "quarter").answered(422, "validation_failed"),
            get("/v1/regions?under=36", "under").answered(422, "validation_failed"),
            get("/v1/stats/summary?from=2025-02-01&to=2025-01-31", "to")
                .answered(422, "validation_failed"),
        ],
    )
    .await;
    for ok in [
        "/v1/loans?limit=500&as_of=1990-01-01",
        "/v1/loans?as_of=2200-12-31",
        "/v1/regions?cursor=360000",
        "/v1/stats/summary?from=1990-01-01&to=1990-12-31&lang=zh",
        "/v1/stats/summary?from=2200-01-01&to=2200-12-31&as_of=2200-12-31",
        "/v1/targets?year=2200",
    ] {
        accepted(&app, &admin, Method::GET, ok, None).await;
    }
    let at = format!("/v1/audit-events?entity_id={}", "e".repeat(100));
    accepted(&app, &admin, Method::GET, &at, None).await;
    // Targets set in a body: 422 naming the field.
    let target = json!({ "region_code": "360100", "year": 2025, "measure": "issued_amount", "value": "100.00" });
    refused(
        &app,
        &admin,
        vec![
            post("/v1/targets", with(&target, "year", json!(2201)), "year"),
            post(
                "/v1/targets",
                json!({ "region_code": "360100", "year": 2025, "measure": "repayment_rate", "value": "100.01" }),
                "value",
            ),
            post(
                "/v1/targets",
                with(&target, "value", json!("100.001")),
                "value",
            ),
            post(
                "/v1/targets",
                with(&target, "value", json!("10000000000000000")),
                "value",
            ),
            post(
                "/v1/targets",
                with(&target, "region_code", json!("3601000")),
                "region_code",
            ),
        ],
    )
    .await;
    accepted(
        &app,
        &admin,
        Method::POST,
        "/v1/targets",
        Some(with(&target, "year", json!(2200))),
    )
    .await;
    // A malformed id in a path names no resource.
    let r = app
        .call(Method::GET, "/v1/loans/not-a-uuid", Some(&admin), None)
        .await;
    assert_problem(r, 404, "not_found").await;
}

#[tokio::test]
async fn a_request_id_over_64_plain_characters_is_replaced_not_echoed() {
    let app = spawn_app().await;
    let id_of = |sent: String| {
        let req = app
            .http
            .get(app.url("/healthz"))
            .header("x-request-id", sent);
        async move {
            let r = req.send().await.unwrap();
            r.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    let ok = "r".repeat(64);
    assert_eq!(id_of(ok.clone()).await, ok);
    let long = "r".repeat(65);
    assert_ne!(id_of(long.clone()).await, long);
    assert_ne!(id_of("a b".into()).await, "a b");
}

#[tokio::test]
async fn the_database_refuses_what_the_api_refuses_and_the_migration_reverts() {
    use danbao_persistence::diesel_async::SimpleAsyncConnection;
    let app = spawn_app().await;
    revert_and_reapply(&app, "2026-11-27-000010_input_limits").await;
    let mut conn = app.db.connect().await;
    let centre = "0190c0de-0000-7000-8000-000000000001";
    conn.batch_execute(&format!(
        "INSERT INTO regions (code, name) VALUES ('360000', '江西省');
         INSERT INTO centres (id, name, region_code) VALUES ('{centre}', '中心', '360000')"
    ))
    .await
    .unwrap();
    let community = |name: &str, on: &str| {
        format!(
            "INSERT INTO credit_communities (id, centre_id, region_code, name, certified_on)
             VALUES (gen_random_uuid(), '{centre}', '360000', {name}, '{on}')"
        )
    };
    for (sql, constraint) in [
        (
            "INSERT INTO regions (code, name) VALUES ('370000', E'山东\\u0007省')".to_owned(),
            "regions_name_check",
        ),
        (
            "INSERT INTO centres (id, name, region_code) VALUES (gen_random_uuid(), E'中心\\n', '360000')"
                .to_owned(),
            "centres_name_check",
        ),
        (community("'社区'", "1989-12-31"), "credit_communities_certified_on_check"),
        (community("E'社\\u0085区'", "2005-01-01"), "credit_communities_name_check"),
    ] {
        let e = conn.batch_execute(&sql).await.unwrap_err().to_string();
        assert!(e.contains(constraint), "{sql}: {e}");
    }
    conn.batch_execute(&community("'社区'", "1990-01-01"))
        .await
        .unwrap();
}
