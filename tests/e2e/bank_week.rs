//! A bank integrator's week against the built binary: the bank's system disburses with
//! retries, sends daily files (resent, with garbage and other banks' loans in them, once
//! atomically), corrects a repayment, and a loan goes bad through compensation and recovery.
//! At the end `danbao verify` accepts the books.

use crate::database_url::serve_on_test_db;
use crate::harness::{danbao, read_json, Server, ADMIN_PASSWORD, DATA_KEY};
use danbao_persistence::diesel::sql_types::BigInt;
use danbao_persistence::diesel::{sql_query, QueryableByName};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

fn created((status, body): (u16, Value)) -> Value {
    assert!(status == 201 || status == 200, "{status}: {body}");
    body
}

async fn post_with_key(
    s: &Server,
    token: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let res = s
        .http
        .post(s.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    read_json(res).await
}

async fn send_file(
    s: &Server,
    token: &str,
    csv: &str,
    query: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = s
        .http
        .post(s.url(&format!("/v1/repayment-batches{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned());
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    read_json(req.send().await.unwrap()).await
}

fn outcomes(batch: &Value) -> Vec<String> {
    batch["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_integrators_week() {
    let served = serve_on_test_db().await;
    let s = &served.server;
    let admin = s.token("admin", ADMIN_PASSWORD).await;

    // Set-up: the region, a centre, two banks, the presets, two clerks, and the bank's system.
    for (code, name) in [("360000", "江西省"), ("360100", "南昌市")] {
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
            &json!({ "name": "南昌市担保中心", "region_code": "360100" }),
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
    let other = created(
        s.post_json(
            &admin,
            "/v1/banks",
            &json!({ "code": "ICBC", "name": "工商银行" }),
        )
        .await,
    );
    created(
        s.post_json(&admin, "/v1/policies/presets", &json!({}))
            .await,
    );
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
    created(
        s.post_json(
            &admin,
            "/v1/users",
            &json!({ "username": "icbc", "display_name": "icbc", "role": "bank", "bank_id": other["id"], "password": "Bank password 1" }),
        )
        .await,
    );
    let client = created(
        s.post_json(
            &admin,
            "/v1/bank-clients",
            &json!({ "bank_id": bank["id"], "name": "JXRCU core banking" }),
        )
        .await,
    );
    let wang = s.token("wang", "Clerk password 1").await;
    let li = s.token("lihua", "Clerk password 1").await;
    let icbc = s.token("icbc", "Bank password 1").await;
    let res = s
        .http
        .post(s.url("/v1/auth/token"))
        .json(
            &json!({ "client_id": client["client_id"], "client_secret": client["client_secret"] }),
        )
        .send()
        .await
        .unwrap();
    let system = created(read_json(res).await)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The centre: a fund, six borrowers and their loans (12,000.00, equal principal, 12
    // months at 4.35 %: 1,000.00 + 43.50 due on 2025-02-10), and one loan of the other bank.
    let fund = created(
        s.post_json(&wang, "/v1/funds", &json!({ "name": "南昌市担保基金" }))
            .await,
    );
    let fund_id = fund["id"].as_str().unwrap().to_owned();
    created(
        s.post_json(
            &wang,
            &format!("/v1/funds/{fund_id}/contributions"),
            &json!({ "value_date": "2024-12-01", "amount": "1000000.00", "source": "city_finance" }),
        )
        .await,
    );
    let ids = [
        "360102198001010013",
        "360102198001020019",
        "360102198001030014",
        "36010219800104001X",
        "360102198001050015",
        "360102198001060010",
        "360102198001070016",
    ];
    let mut loans = Vec::new();
    for (n, national_id) in ids.iter().enumerate() {
        let borrower = created(
            s.post_json(
                &wang,
                "/v1/borrowers",
                &json!({ "kind": "individual", "category": "laid_off", "name": format!("借款人{n}"),
                         "national_id": national_id, "employment_certificate_no": format!("JX{n:04}") }),
            )
            .await,
        );
        let bank_id = if n == 6 { &other["id"] } else { &bank["id"] };
        let loan = created(
            s.post_json(
                &wang,
                "/v1/loans",
                &json!({ "borrower_id": borrower["id"], "bank_id": bank_id, "fund_id": fund_id, "principal": "12000.00",
                         "term_months": 12, "annual_rate": "0.0435", "schedule_method": "equal_principal",
                         "purpose": "小吃店", "micro_profit": true, "jobs_declared": 2, "applied_on": "2025-01-03",
                         "counter_guarantee": { "kind": "mortgage", "description": "房产" } }),
            )
            .await,
        );
        let id = loan["id"].as_str().unwrap().to_owned();
        created(
            s.post_json(
                &li,
                &format!("/v1/loans/{id}/approval"),
                &json!({ "decided_on": "2025-01-06" }),
            )
            .await,
        );
        loans.push(id);
    }

    // Monday: the bank's system reports the disbursements, and retries one after a timeout.
    for (n, loan) in loans.iter().take(6).enumerate() {
        let body = json!({ "value_date": "2025-01-10", "bank_account_no": format!("6228-{n}") });
        let first = created(
            post_with_key(
                s,
                &system,
                &format!("/v1/loans/{loan}/disbursement"),
                &format!("disb-{n}"),
                &body,
            )
            .await,
        );
        assert_eq!(first["status"], "active");
        if n == 0 {
            let again = created(
                post_with_key(
                    s,
                    &system,
                    &format!("/v1/loans/{loan}/disbursement"),
                    "disb-0",
                    &body,
                )
                .await,
            );
            assert_eq!(again, first, "a retry replays the first answer");
        }
    }
    created(
        s.post_json(
            &icbc,
            &format!("/v1/loans/{}/disbursement", loans[6]),
            &json!({ "value_date": "2025-01-10", "bank_account_no": "ICBC-1" }),
        )
        .await,
    );
    let (_, f) = s.get_json(&wang, &format!("/v1/funds/{fund_id}")).await;
    assert_eq!(f["outstanding_guaranteed"], "84000.00");

    // Tuesday: the first instalments of loans 1-5, by account number and by loan id.
    let day1 = format!(
        "bank_reference,value_date,amount,loan_id,bank_account_no\r\n\
         F1-1,2025-02-10,1043.50,,6228-0\r\nF1-2,2025-02-10,1043.50,,6228-1\r\nF1-3,2025-02-10,1043.50,,6228-2\r\n\
         F1-4,2025-02-10,1043.50,{},\r\n\"F1-5\",2025-02-10,\"1043.50\",{},\r\n",
        loans[3], loans[4]
    );
    let b1 = created(send_file(s, &system, &day1, "", None).await);
    assert_eq!(
        (
            b1["status"].as_str(),
            b1["applied"].as_i64(),
            b1["failed"].as_i64()
        ),
        (Some("applied"), Some(5), Some(0)),
        "{b1}"
    );
    let (_, f) = s.get_json(&wang, &format!("/v1/funds/{fund_id}")).await;
    assert_eq!(f["outstanding_guaranteed"], "79000.00");
    // The network dropped the answer: the system sends the same file again. Nothing moves.
    let resent = created(send_file(s, &system, &day1, "", None).await);
    assert_eq!(outcomes(&resent), vec!["duplicate"; 5], "{resent}");
    let (_, f) = s.get_json(&wang, &format!("/v1/funds/{fund_id}")).await;
    assert_eq!(f["outstanding_guaranteed"], "79000.00");

    // Wednesday: the second instalments (1,000.00 + 39.88), with garbage, another bank's loan
    // and an overpayment in the file; sent with an Idempotency-Key, and retried.
    let day2 = format!(
        "bank_reference,value_date,amount,loan_id,bank_account_no\r\n\
         F2-1,2025-03-10,1039.88,,6228-0\r\nF2-2,2025-03-10,abc,,6228-1\r\nF2-3,2025-03-10,1039.88,,6228-2\r\n\
         F2-4,2025-03-10,1039.88,{},\r\nF2-X,2025-03-10,1039.88,{},\r\nF2-5,2025-03-10,99999.00,,6228-4\r\n",
        loans[3], loans[6]
    );
    let b2 = created(send_file(s, &system, &day2, "", Some("day2")).await);
    assert_eq!(
        outcomes(&b2),
        ["applied", "failed", "applied", "applied", "failed", "failed"],
        "{b2}"
    );
    let items = b2["items"].as_array().unwrap();
    assert_eq!(items[1]["error"]["field"], "amount");
    assert_eq!(
        items[4]["error"]["code"], "not_found",
        "another bank's loan is not ours to see"
    );
    assert_eq!(items[5]["error"]["code"], "overpayment");
    let retried = created(send_file(s, &system, &day2, "", Some("day2")).await);
    assert_eq!(retried, b2, "the same key and file replay the first answer");
    let (status, fetched) = s
        .get_json(
            &system,
            &format!(
                "/v1/repayment-batches/{}?outcome=failed",
                b2["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["items"].as_array().unwrap().len(), 3);
    let (status, _) = s
        .get_json(
            &icbc,
            &format!("/v1/repayment-batches/{}", b2["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 404, "another bank cannot read our file");

    // Thursday: loan 4's payment was keyed wrong: reversed, and an atomic correction file
    // (loan 2's failed row and loan 4's, as of their due date) with a typo is refused whole,
    // then sent right.
    let wrong = items[3]["repayment_id"].as_str().unwrap();
    let reversed = created(
        post_with_key(
            s,
            &system,
            &format!("/v1/repayments/{wrong}/reversal"),
            "rev-1",
            &json!({ "reason": "booked against the wrong account" }),
        )
        .await,
    );
    assert_eq!(reversed["reversed"], true);
    let fix = |date: &str| {
        format!(
            "bank_reference,value_date,amount,loan_id,bank_account_no\r\n\
             F3-2,2025-03-10,1039.88,,6228-1\r\nF3-4,{date},1039.88,{},\r\n",
            loans[3]
        )
    };
    let refused = created(send_file(s, &system, &fix("2025-13-12"), "?atomic=true", None).await);
    assert_eq!(refused["status"], "rejected");
    assert_eq!(outcomes(&refused), ["not_applied", "failed"]);
    let (_, l2) = s
        .get_json(&system, &format!("/v1/loans/{}", loans[1]))
        .await;
    assert_eq!(
        l2["position"]["principal_paid"], "1000.00",
        "nothing of a refused file counts"
    );
    let fixed = created(send_file(s, &system, &fix("2025-03-10"), "?atomic=true", None).await);
    assert_eq!(outcomes(&fixed), ["applied", "applied"]);

    // Friday: loan 6 never paid. It is overdue; once 60 days past due the bank claims, a clerk
    // who did not enter the loan approves, and money recovered later goes back to the fund.
    let (_, overdue) = s
        .get_json(&system, "/v1/loans?overdue=true&as_of=2025-02-20")
        .await;
    let late: Vec<&str> = overdue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(late, vec![loans[5].as_str()]);
    let claim = created(
        post_with_key(
            s,
            &system,
            &format!("/v1/loans/{}/compensation-claims", loans[5]),
            "claim-6",
            &json!({ "filed_on": "2025-04-15" }),
        )
        .await,
    );
    let (status, body) = s
        .post_json(
            &wang,
            &format!(
                "/v1/compensation-claims/{}/approval",
                claim["id"].as_str().unwrap()
            ),
            &json!({ "approved_on": "2025-04-20" }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("four_eyes_required")),
        "{body}"
    );
    let approved = created(
        s.post_json(
            &li,
            &format!(
                "/v1/compensation-claims/{}/approval",
                claim["id"].as_str().unwrap()
            ),
            &json!({ "approved_on": "2025-04-20" }),
        )
        .await,
    );
    assert_eq!(approved["loan"]["status"], "compensated");
    created(
        post_with_key(
            s,
            &system,
            &format!("/v1/loans/{}/recoveries", loans[5]),
            "rec-1",
            &json!({ "reference": "REC-1", "value_date": "2025-06-01", "amount": "2000.00" }),
        )
        .await,
    );
    // 84,000 guaranteed − 5,000 (Tuesday) − 3,000 (Wednesday) + 1,000 (the reversal) − 2,000
    // (Thursday, paid as of the due date) − the compensated loan's 12,000 = 63,000.
    let (_, f) = s.get_json(&wang, &format!("/v1/funds/{fund_id}")).await;
    assert_eq!(f["outstanding_guaranteed"], "63000.00", "{f}");

    // The server rolls the week's statistics deltas up in the background (every two seconds).
    let pending = async || -> (i64, i64) {
        #[derive(QueryableByName)]
        struct Counts {
            #[diesel(sql_type = BigInt)]
            pending: i64,
            #[diesel(sql_type = BigInt)]
            rolled: i64,
        }
        let mut conn = AsyncPgConnection::establish(served.database_url())
            .await
            .unwrap();
        let c: Counts = sql_query(
            "SELECT (SELECT count(*) FROM stat_due_deltas) AS pending, \
                    (SELECT count(*) FROM stat_due_rollups WHERE instalments > 0) AS rolled",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        (c.pending, c.rolled)
    };
    let waited = std::time::Instant::now();
    let (mut left, mut rolled) = pending().await;
    while left > 0 && waited.elapsed() < std::time::Duration::from_secs(20) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        (left, rolled) = pending().await;
    }
    assert_eq!(left, 0, "deltas still pending after {:?}", waited.elapsed());
    assert!(rolled > 0, "nothing rolled up");

    // The week's books check out (the rollups are the sums of the facts among them).
    let out = danbao()
        .arg("verify")
        .env("DATABASE_URL", served.database_url())
        .env("DANBAO_DATA_KEY", DATA_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "danbao verify failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("fund balance"), "{stdout}");
    assert!(stdout.contains("statistics rollups"), "{stdout}");
}
