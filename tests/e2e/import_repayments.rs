//! `danbao import-repayments`: a bank's daily file applied by the built binary, straight to
//! the database the service uses.

use crate::database_url::serve_on_test_db;
use crate::harness::{danbao, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};
use std::process::Output;

fn national_id(seq: u32) -> String {
    let body = format!("36010219800101{:03}", seq % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

async fn ok(s: &Server, token: &str, path: &str, body: Value) -> Value {
    let (status, v) = s.post_json(token, path, &body).await;
    assert!(status == 200 || status == 201, "POST {path}: {status} {v}");
    v
}

fn import(url: &str, args: &[&str]) -> Output {
    danbao()
        .env("DATABASE_URL", url)
        .arg("import-repayments")
        .args(args)
        .output()
        .expect("run danbao import-repayments")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_repayments_applies_a_file_and_reports() {
    let served = serve_on_test_db().await;
    let s = &served.server;
    let admin = s.token("admin", ADMIN_PASSWORD).await;
    for (code, name) in [("360000", "江西省"), ("360100", "南昌市")] {
        ok(
            s,
            &admin,
            "/v1/regions",
            json!({ "code": code, "name": name }),
        )
        .await;
    }
    let centre = ok(
        s,
        &admin,
        "/v1/centres",
        json!({ "name": "南昌市担保中心", "region_code": "360100" }),
    )
    .await;
    let bank = ok(
        s,
        &admin,
        "/v1/banks",
        json!({ "code": "JXRCU", "name": "江西农信" }),
    )
    .await;
    ok(
        s,
        &admin,
        "/v1/banks",
        json!({ "code": "EMPTY", "name": "无用户银行" }),
    )
    .await;
    ok(s, &admin, "/v1/policies/presets", json!({})).await;
    for (u, role, scope) in [
        ("wang", "clerk", json!({ "centre_id": centre["id"] })),
        ("lihua", "clerk", json!({ "centre_id": centre["id"] })),
        ("teller", "bank", json!({ "bank_id": bank["id"] })),
    ] {
        let mut body = json!({ "username": u, "display_name": u, "role": role, "password": "Test password 1" });
        body.as_object_mut()
            .unwrap()
            .extend(scope.as_object().unwrap().clone());
        ok(s, &admin, "/v1/users", body).await;
    }
    let wang = s.token("wang", "Test password 1").await;
    let li = s.token("lihua", "Test password 1").await;
    let teller = s.token("teller", "Test password 1").await;
    let fund = ok(s, &wang, "/v1/funds", json!({ "name": "南昌基金" })).await;
    let fund_id = fund["id"].as_str().unwrap().to_owned();
    ok(
        s,
        &wang,
        &format!("/v1/funds/{fund_id}/contributions"),
        json!({ "value_date": "2024-01-02", "amount": "1000000.00", "source": "city_finance" }),
    )
    .await;
    for seq in 1..=5u32 {
        let b = ok(s, &wang, "/v1/borrowers", json!({ "kind": "individual", "category": "laid_off",
            "name": format!("张{seq}"), "national_id": national_id(seq), "employment_certificate_no": format!("JX{seq:06}") })).await;
        let loan = ok(s, &wang, "/v1/loans", json!({ "borrower_id": b["id"], "bank_id": bank["id"], "fund_id": fund_id,
            "principal": "12000.00", "term_months": 12, "annual_rate": "0.0435", "schedule_method": "equal_principal",
            "purpose": "早餐店", "micro_profit": true, "jobs_declared": 2, "applied_on": "2025-01-05",
            "counter_guarantee": { "kind": "mortgage", "description": "房产抵押" } })).await;
        let id = loan["id"].as_str().unwrap();
        ok(
            s,
            &li,
            &format!("/v1/loans/{id}/approval"),
            json!({ "decided_on": "2025-01-10" }),
        )
        .await;
        ok(
            s,
            &teller,
            &format!("/v1/loans/{id}/disbursement"),
            json!({ "value_date": "2025-01-15", "bank_account_no": format!("ACC-{seq}") }),
        )
        .await;
    }

    let dir = tempfile::tempdir().unwrap();
    let mut good = String::from("bank_reference,value_date,amount,bank_account_no\r\n");
    for i in 0..250u32 {
        good.push_str(&format!(
            "D-{i},2025-03-{:02},10.00,ACC-{}\r\n",
            1 + i % 28,
            1 + i % 5
        ));
    }
    let good_path = dir.path().join("good.csv");
    std::fs::write(&good_path, &good).unwrap();
    let url = served.database_url();

    let out = import(url, &["--bank", "JXRCU", good_path.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("250 rows, 250 applied, 0 duplicates, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("rows/s"), "{stdout}");
    // The service sees the money: 50 rows of 10.00 per loan.
    let (status, loans) = s.get_json(&teller, "/v1/loans?status=active").await;
    assert_eq!(status, 200);
    for l in loans["items"].as_array().unwrap() {
        assert_ne!(l["position"]["principal_paid"], "0.00", "{l}");
    }

    // Again: nothing moves; as a named user.
    let out = import(
        url,
        &[
            "--bank",
            "JXRCU",
            "--user",
            "teller",
            good_path.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("250 rows, 0 applied, 250 duplicates, 0 failed"),
        "{stdout}"
    );

    // A bad row: the others apply, the summary lists it, the exit code says so.
    let bad_path = dir.path().join("bad.csv");
    std::fs::write(
        &bad_path,
        "bank_reference,value_date,amount,bank_account_no\nE-1,2025-04-01,10.00,ACC-1\nE-2,2025-04-01,10.001,ACC-2\nE-3,2025-04-01,1.00,ACC-404\n",
    )
    .unwrap();
    let out = import(url, &["--bank", "JXRCU", bad_path.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("3 rows, 1 applied, 0 duplicates, 2 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("row 2 (E-2): validation_failed amount"),
        "{stdout}"
    );
    assert!(
        stdout.contains("row 3 (E-3): not_found bank_account_no"),
        "{stdout}"
    );
    // Atomic: nothing of it applies.
    let out = import(
        url,
        &["--bank", "JXRCU", "--atomic", bad_path.to_str().unwrap()],
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("(rejected, atomic)"), "{stdout}");

    // Who acts: an unknown user, a bank without users, an unknown bank; a bad header.
    for (args, says) in [
        (
            vec!["--bank", "JXRCU", "--user", "wang"],
            "not an active bank user",
        ),
        (vec!["--bank", "EMPTY"], "has no active bank user"),
        (vec!["--bank", "NOPE"], "no bank with code NOPE"),
    ] {
        let mut args = args.clone();
        args.push(good_path.to_str().unwrap());
        let out = import(url, &args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let header_path = dir.path().join("header.csv");
    std::fs::write(&header_path, "bank_reference,value_date,amount,memo\n").unwrap();
    let out = import(url, &["--bank", "JXRCU", header_path.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("memo: unknown column"), "{stderr}");
}
