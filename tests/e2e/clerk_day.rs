//! A clerk's day against the built binary, as the README walks through it with curl: the
//! administrator sets up the world, clerk Wang takes an application, clerk Li approves it.

use crate::database_url::serve_on_test_db;
use crate::harness::ADMIN_PASSWORD;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerks_day() {
    let served = serve_on_test_db().await;
    let s = &served.server;
    let admin = s.token("admin", ADMIN_PASSWORD).await;
    let created = |(status, body): (u16, serde_json::Value)| {
        assert!(status == 201 || status == 200, "{status}: {body}");
        body
    };

    // The administrator: regions, a centre, a bank, the policy presets, two clerks.
    for (code, name) in [
        ("360000", "江西省"),
        ("360100", "南昌市"),
        ("360102", "东湖区"),
    ] {
        created(
            s.post_json(
                &admin,
                "/v1/regions",
                &json!({ "code": code, "name": name }),
            )
            .await,
        );
    }
    let centre = created(
        s.post_json(
            &admin,
            "/v1/centres",
            &json!({ "name": "南昌市小额贷款担保中心", "region_code": "360100" }),
        )
        .await,
    );
    let bank = created(
        s.post_json(
            &admin,
            "/v1/banks",
            &json!({ "code": "JXRCU", "name": "江西农信" }),
        )
        .await,
    );
    let presets = created(
        s.post_json(&admin, "/v1/policies/presets", &json!({}))
            .await,
    );
    assert_eq!(presets["created"].as_array().unwrap().len(), 4);
    for u in ["wang", "lihua"] {
        created(
            s.post_json(
                &admin,
                "/v1/users",
                &json!({ "username": u, "display_name": u, "role": "clerk", "centre_id": centre["id"], "password": "Clerk password 1" }),
            )
            .await,
        );
    }
    let wang = s.token("wang", "Clerk password 1").await;
    let li = s.token("lihua", "Clerk password 1").await;

    // Clerk Wang: the fund and its money, a certified community, a borrower, an application.
    let fund = created(
        s.post_json(&wang, "/v1/funds", &json!({ "name": "南昌市担保基金" }))
            .await,
    );
    let fund_id = fund["id"].as_str().unwrap();
    created(
        s.post_json(
            &wang,
            &format!("/v1/funds/{fund_id}/contributions"),
            &json!({ "value_date": "2026-01-05", "amount": "2000000.00", "source": "city_finance" }),
        )
        .await,
    );
    let community = created(
        s.post_json(
            &wang,
            "/v1/credit-communities",
            &json!({ "name": "八一社区", "region_code": "360102", "certified_on": "2025-06-01" }),
        )
        .await,
    );
    let borrower = created(
        s.post_json(
            &wang,
            "/v1/borrowers",
            &json!({ "kind": "individual", "category": "laid_off", "name": "张三", "national_id": "360102198503151238",
                     "employment_certificate_no": "JX0001", "credit_community_id": community["id"] }),
        )
        .await,
    );
    let loan = created(
        s.post_json(
            &wang,
            "/v1/loans",
            &json!({ "borrower_id": borrower["id"], "bank_id": bank["id"], "fund_id": fund_id,
                     "principal": "50000.00", "term_months": 24, "annual_rate": "0.0435", "schedule_method": "equal_instalment",
                     "purpose": "早餐店", "micro_profit": true, "jobs_declared": 3,
                     "counter_guarantee": { "kind": "credit_community_waiver" } }),
        )
        .await,
    );
    let loan_id = loan["id"].as_str().unwrap();
    assert_eq!(loan["status"], "applied");
    assert_eq!(loan["waiver"], true);

    // Wang cannot approve what Wang entered; Li can.
    let (status, body) = s
        .post_json(&wang, &format!("/v1/loans/{loan_id}/approval"), &json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("four_eyes_required")),
        "{body}"
    );
    let approved = created(
        s.post_json(&li, &format!("/v1/loans/{loan_id}/approval"), &json!({}))
            .await,
    );
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["position"]["guaranteed_outstanding"], "50000.00");

    // The fund: 2,000,000.00 × 5 = 10,000,000.00 of room, 50,000.00 of it taken.
    let (_, position) = s.get_json(&li, &format!("/v1/funds/{fund_id}")).await;
    assert_eq!(position["balance"], "2000000.00");
    assert_eq!(position["outstanding_guaranteed"], "50000.00");
    assert_eq!(position["headroom"], "9950000.00");
    assert_eq!(position["actual_leverage"], "0.025");

    // The schedule: 24 equal payments that sum to the principal, interest fully subsidised
    // (micro-profit, laid-off borrower, 2020 preset share).
    let (_, schedule) = s
        .get_json(&li, &format!("/v1/loans/{loan_id}/schedule"))
        .await;
    assert_eq!(schedule["instalments"].as_array().unwrap().len(), 24);
    assert_eq!(schedule["total_principal"], "50000.00");
    assert_ne!(schedule["total_subsidy"], "0.00");

    // The borrower's id comes back to the clerk, and the audit log tells the day's story.
    let (_, b) = s
        .get_json(
            &wang,
            &format!("/v1/borrowers/{}", borrower["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(b["national_id"], "360102198503151238");
    let (_, events) = s
        .get_json(
            &admin,
            &format!("/v1/audit-events?entity_type=loan&entity_id={loan_id}"),
        )
        .await;
    let story: Vec<(&str, &str)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        story,
        vec![("loan.approved", "lihua"), ("loan.applied", "wang")]
    );
}
