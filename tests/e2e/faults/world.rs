//! A small programme to hurt: Nanchang, one centre, bank JXRCU with user `teller`, one fund
//! and `n` disbursed loans of 12,000.00 (accounts ACC-1..ACC-n), set up over HTTP.

use crate::harness::{Server, ADMIN_PASSWORD};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;

pub const PASSWORD: &str = "Faults password 1";

#[derive(Clone)]
pub struct World {
    pub teller: String,
    pub admin: String,
    /// (loan id, bank account number) in creation order.
    pub loans: Vec<(String, String)>,
}

/// A national id with a valid check digit, distinct for each `seq` below 1,000,000.
pub fn national_id(seq: u32) -> String {
    let body = format!(
        "3601021980{:02}{:02}{:03}",
        1 + seq / 28_000 % 12,
        1 + seq / 1000 % 28,
        seq % 1000
    );
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

pub async fn ok(s: &Server, token: &str, path: &str, body: Value) -> Value {
    let (status, v) = s.post_json(token, path, &body).await;
    assert!(status == 200 || status == 201, "POST {path}: {status} {v}");
    v
}

pub async fn seed(s: &Server, loans: u32) -> World {
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
    ok(s, &admin, "/v1/policies/presets", json!({})).await;
    for (u, role, scope) in [
        ("wang", "clerk", json!({ "centre_id": centre["id"] })),
        ("lihua", "clerk", json!({ "centre_id": centre["id"] })),
        ("teller", "bank", json!({ "bank_id": bank["id"] })),
    ] {
        let mut body =
            json!({ "username": u, "display_name": u, "role": role, "password": PASSWORD });
        body.as_object_mut()
            .unwrap()
            .extend(scope.as_object().unwrap().clone());
        ok(s, &admin, "/v1/users", body).await;
    }
    let wang = s.token("wang", PASSWORD).await;
    let li = s.token("lihua", PASSWORD).await;
    let teller = s.token("teller", PASSWORD).await;
    let fund = ok(s, &wang, "/v1/funds", json!({ "name": "南昌基金" })).await;
    let fund_id = fund["id"].as_str().unwrap().to_owned();
    ok(
        s,
        &wang,
        &format!("/v1/funds/{fund_id}/contributions"),
        json!({ "value_date": "2024-01-02", "amount": "100000000.00", "source": "city_finance" }),
    )
    .await;
    let mut made = Vec::new();
    for seq in 1..=loans {
        let b = ok(s, &wang, "/v1/borrowers", json!({ "kind": "individual", "category": "laid_off",
            "name": format!("张{seq}"), "national_id": national_id(seq), "employment_certificate_no": format!("JX{seq:06}") })).await;
        let loan = ok(s, &wang, "/v1/loans", json!({ "borrower_id": b["id"], "bank_id": bank["id"], "fund_id": fund_id,
            "principal": "12000.00", "term_months": 12, "annual_rate": "0.0435", "schedule_method": "equal_principal",
            "purpose": "早餐店", "micro_profit": true, "jobs_declared": 2, "applied_on": "2025-01-05",
            "counter_guarantee": { "kind": "mortgage", "description": "房产抵押" } })).await;
        let id = loan["id"].as_str().unwrap().to_owned();
        ok(
            s,
            &li,
            &format!("/v1/loans/{id}/approval"),
            json!({ "decided_on": "2025-01-10" }),
        )
        .await;
        let acc = format!("ACC-{seq}");
        ok(
            s,
            &teller,
            &format!("/v1/loans/{id}/disbursement"),
            json!({ "value_date": "2025-01-15", "bank_account_no": acc }),
        )
        .await;
        made.push((id, acc));
    }
    World {
        teller,
        admin,
        loans: made,
    }
}

pub fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// What the books say a loan received: the bank references of its repayments that count
/// (not reversed) and the sum of principal, interest and penalty paid.
pub async fn books_of(s: &Server, token: &str, loan_id: &str) -> (Vec<String>, Decimal) {
    let (status, list) = s
        .get_json(token, &format!("/v1/loans/{loan_id}/repayments"))
        .await;
    assert_eq!(status, 200, "{list}");
    let refs = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reversed"] != true)
        .map(|r| r["bank_reference"].as_str().unwrap().to_owned())
        .collect();
    let (status, loan) = s.get_json(token, &format!("/v1/loans/{loan_id}")).await;
    assert_eq!(status, 200, "{loan}");
    let p = &loan["position"];
    (
        refs,
        dec(&p["principal_paid"]) + dec(&p["interest_paid"]) + dec(&p["penalty_paid"]),
    )
}
