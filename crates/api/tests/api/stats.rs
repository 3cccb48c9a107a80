//! A small province built by hand over 2009-2010, and every measure of the summary asserted
//! against figures worked out here; the same figures grouped by region, bank, centre,
//! category, month, quarter and year add up to the total; scope per role; targets; rewards.
use crate::helpers::*;
use chrono::{Duration, NaiveDate};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))).unwrap()
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

async fn ok(r: reqwest::Response, status: u16) -> Value {
    let actual = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(actual, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

struct World {
    app: TestApp,
    desk: Desk,
    jdz_entrant: String,
    jdz_approver: String,
    jdz_fund: String,
    bank_c: String,
    /// Tokens of banks A, B, C.
    a: String,
    b: String,
    c: String,
}

#[derive(Clone, Copy)]
enum Centre {
    Nanchang,
    Jdz,
}

impl World {
    async fn post(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.app
            .call(Method::POST, path, Some(token), Some(body))
            .await
    }

    /// A loan applied 10 days and approved 5 days before its disbursement.
    #[allow(clippy::too_many_arguments)]
    async fn loan(
        &self,
        centre: Centre,
        bank_id: &str,
        bank: &str,
        seq: u32,
        principal: &str,
        method: &str,
        disbursed: &str,
    ) -> String {
        let (entrant, approver, fund) = match centre {
            Centre::Nanchang => (&self.desk.entrant, &self.desk.approver, &self.desk.fund),
            Centre::Jdz => (&self.jdz_entrant, &self.jdz_approver, &self.jdz_fund),
        };
        let day = NaiveDate::from_str(disbursed).unwrap();
        let borrower = self.app.person(entrant, seq, json!({})).await;
        let loan = self
            .app
            .applied(
                entrant,
                &self.desk,
                &borrower,
                json!({ "principal": principal, "term_months": 12, "schedule_method": method,
                        "bank_id": bank_id, "fund_id": fund,
                        "applied_on": (day - Duration::days(10)).to_string() }),
            )
            .await;
        ok(
            self.post(
                approver,
                &format!("/v1/loans/{loan}/approval"),
                json!({ "decided_on": (day - Duration::days(5)).to_string() }),
            )
            .await,
            200,
        )
        .await;
        ok(
            self.post(
                bank,
                &format!("/v1/loans/{loan}/disbursement"),
                json!({ "value_date": disbursed, "bank_account_no": format!("ACC-{seq}") }),
            )
            .await,
            200,
        )
        .await;
        loan
    }

    async fn pay(
        &self,
        bank: &str,
        loan: &str,
        reference: &str,
        date: &str,
        amount: &Value,
    ) -> Value {
        ok(
            self.post(
                bank,
                &format!("/v1/loans/{loan}/repayments"),
                json!({ "bank_reference": reference, "value_date": date, "amount": amount }),
            )
            .await,
            201,
        )
        .await
    }

    /// Pays everything owed on `date` (the payoff amount then).
    async fn pay_in_full(&self, bank: &str, loan: &str, reference: &str, date: &str) -> Value {
        let (_, l) = self
            .app
            .get_json(&format!("/v1/loans/{loan}?as_of={date}"), bank)
            .await;
        let answer = self
            .pay(bank, loan, reference, date, &l["position"]["payoff_amount"])
            .await;
        assert_eq!(answer["loan_status"], "settled", "{answer}");
        answer
    }

    /// Pays instalments `numbers` in full on their due dates.
    async fn pay_instalments(
        &self,
        bank: &str,
        loan: &str,
        numbers: std::ops::RangeInclusive<usize>,
    ) {
        let (_, s) = self
            .app
            .get_json(&format!("/v1/loans/{loan}/schedule"), bank)
            .await;
        for n in numbers {
            let i = &s["instalments"][n - 1];
            self.pay(
                bank,
                loan,
                &format!("{loan}-{n}"),
                i["due_date"].as_str().unwrap(),
                &i["total"],
            )
            .await;
        }
    }
}

async fn world() -> World {
    let app = spawn_app().await;
    let desk = app.desk("1000000.00").await;
    let bank_c = app
        .admin_create("/v1/banks", json!({ "code": "JJCCB", "name": "九江银行" }))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let jdz = json!({ "centre_id": desk.p.centre_jdz });
    let jdz_entrant = app.user_token("jdz.entrant", "clerk", jdz.clone()).await;
    let jdz_approver = app.user_token("jdz.approver", "clerk", jdz).await;
    let jdz_fund = app.fund(&jdz_entrant, "景德镇基金", "1000000.00").await;
    let a = app
        .user_token("bank.a", "bank", json!({ "bank_id": desk.p.bank_a }))
        .await;
    let b = app
        .user_token("bank.b", "bank", json!({ "bank_id": desk.p.bank_b }))
        .await;
    let c = app
        .user_token("bank.c", "bank", json!({ "bank_id": bank_c }))
        .await;
    World {
        app,
        desk,
        jdz_entrant,
        jdz_approver,
        jdz_fund,
        bank_c,
        a,
        b,
        c,
    }
}

const PERIOD: &str = "from=2010-01-01&to=2010-12-31&as_of=2010-12-31";

/// Every additive measure: the groups must add up to the total.
const ADDITIVE: &[&str] = &[
    "issued_count",
    "issued_amount",
    "jobs_created",
    "waiver_loans",
    "waiver_amount",
    "fell_due",
    "repaid",
    "repaid_on_time",
    "loans_matured",
    "loans_repaid_in_full",
    "cumulative_fell_due",
    "cumulative_repaid",
    "cumulative_repaid_on_time",
    "compensations",
    "compensation_amount",
    "recovered",
    "recovered_to_fund",
    "write_offs",
    "written_off_loss",
    "subsidy",
];
/// Stocks add up too when grouped by something other than time.
const STOCKS: &[&str] = &[
    "cumulative_issued_count",
    "cumulative_issued_amount",
    "outstanding_balance",
    "overdue_loans",
    "overdue_principal",
    "overdue_1_30",
    "overdue_31_90",
    "overdue_over_90",
    "par30",
    "par90",
];
/// Centre-side figures add up when grouped by region, centre or (flows) time.
const CENTRE_SIDE: &[&str] = &["new_credit_communities", "contributions"];
const CENTRE_STOCKS: &[&str] = &[
    "credit_communities",
    "contributions_total",
    "fund_balance",
    "outstanding_guaranteed",
];

fn num(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).unwrap(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).unwrap(),
        Value::Null => Decimal::ZERO,
        other => panic!("not a number: {other}"),
    }
}

fn assert_groups_add_up(s: &Value, fields: &[&str]) {
    let groups = s["groups"].as_array().unwrap();
    assert!(!groups.is_empty(), "no groups in {s}");
    for f in fields {
        let sum: Decimal = groups.iter().map(|g| num(&g[*f])).sum();
        assert_eq!(sum, num(&s["total"][*f]), "{f} by {}", s["group_by"]);
    }
}

#[tokio::test]
async fn a_small_province_adds_up() {
    let w = world().await;
    let (bank_a, bank_b) = (w.desk.p.bank_a.clone(), w.desk.p.bank_b.clone());
    let bank_c = w.bank_c.clone();
    use Centre::*;
    // Nanchang, bank A: bullets of 12 months under PBOC-2008-238 (grace 0, fund share 70 %).
    let l1 = w
        .loan(
            Nanchang,
            &bank_a,
            &w.a,
            1,
            "20000.00",
            "bullet",
            "2009-03-31",
        )
        .await;
    let l2 = w
        .loan(
            Nanchang,
            &bank_a,
            &w.a,
            2,
            "30000.00",
            "bullet",
            "2009-06-30",
        )
        .await;
    let _l3 = w
        .loan(
            Nanchang,
            &bank_a,
            &w.a,
            3,
            "10000.00",
            "bullet",
            "2009-12-31",
        )
        .await;
    // Nanchang, bank B: equal principal issued in 2010, and a bullet repaid, reversed, repaid.
    let l4 = w
        .loan(
            Nanchang,
            &bank_b,
            &w.b,
            4,
            "12000.00",
            "equal_principal",
            "2010-01-15",
        )
        .await;
    let l5 = w
        .loan(
            Nanchang,
            &bank_b,
            &w.b,
            5,
            "15000.00",
            "bullet",
            "2009-09-30",
        )
        .await;
    // Jingdezhen, bank C: extended, compensated, issued in 2010; bank A: late.
    let l6 = w
        .loan(
            Jdz,
            &bank_c,
            &w.c,
            6,
            "24000.00",
            "equal_principal",
            "2009-07-10",
        )
        .await;
    let l7 = w
        .loan(Jdz, &bank_c, &w.c, 7, "8000.00", "bullet", "2009-05-20")
        .await;
    let _l8 = w
        .loan(Jdz, &bank_c, &w.c, 8, "10000.00", "bullet", "2010-03-01")
        .await;
    let _l9 = w
        .loan(Jdz, &bank_a, &w.a, 9, "5000.00", "bullet", "2009-11-15")
        .await;

    // L1 paid a day early; L2 six weeks late; L3 nothing (due on the as-of date itself).
    w.pay_in_full(&w.a, &l1, "L1", "2010-03-30").await;
    w.pay_in_full(&w.a, &l2, "L2", "2010-08-15").await;
    // L4: three instalments on time, then everything early on 2010-05-10.
    w.pay_instalments(&w.b, &l4, 1..=3).await;
    w.pay_in_full(&w.b, &l4, "L4-rest", "2010-05-10").await;
    // L5: paid on time, the payment reversed (keyed wrong), then paid late.
    let first = w.pay_in_full(&w.b, &l5, "L5-a", "2010-09-29").await;
    ok(
        w.post(
            &w.b,
            &format!("/v1/repayments/{}/reversal", first["id"].as_str().unwrap()),
            json!({ "reason": "keyed against the wrong account" }),
        )
        .await,
        200,
    )
    .await;
    w.pay_in_full(&w.b, &l5, "L5-b", "2010-10-20").await;
    // L6: six instalments of 2,000.00 on time, extended by 6 months on 2010-01-10 (the other
    // 12,000.00 due 2011-01-10), the interest-only instalments 7-12 paid on time.
    w.pay_instalments(&w.c, &l6, 1..=6).await;
    ok(
        w.post(
            &w.jdz_entrant,
            &format!("/v1/loans/{l6}/extension"),
            json!({ "months": 6, "agreed_on": "2010-01-10", "reason": "订单推迟" }),
        )
        .await,
        200,
    )
    .await;
    w.pay_instalments(&w.c, &l6, 7..=12).await;
    // L7: nothing paid; claim on 2010-08-01 (73 days past due), approved 2010-08-10: the fund
    // pays 70 % of 8,000.00 + 348.00 interest (8,000 × 4.35 %) = round(8,348 × 0.7) = 5,843.60;
    // 1,000.00 recovered (700.00 to the fund); written off: loss 5,843.60 − 700.00 = 5,143.60.
    let claim = ok(
        w.post(
            &w.c,
            &format!("/v1/loans/{l7}/compensation-claims"),
            json!({ "filed_on": "2010-08-01" }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(dec(&claim["fund_share"]), d("0.7"));
    let approved = ok(
        w.post(
            &w.jdz_approver,
            &format!(
                "/v1/compensation-claims/{}/approval",
                claim["id"].as_str().unwrap()
            ),
            json!({ "approved_on": "2010-08-10" }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(approved["claim"]["paid_amount"], "5843.60");
    ok(
        w.post(
            &w.c,
            &format!("/v1/loans/{l7}/recoveries"),
            json!({ "reference": "REC-1", "value_date": "2010-10-01", "amount": "1000.00" }),
        )
        .await,
        201,
    )
    .await;
    ok(
        w.post(
            &w.jdz_approver,
            &format!("/v1/loans/{l7}/write-off"),
            json!({ "written_off_on": "2010-12-20", "reason": "无可执行财产" }),
        )
        .await,
        200,
    )
    .await;
    // Fund money and communities: 100,000.00 into Nanchang's fund in 2010; a community
    // certified in Nanchang in 2010, one in Jingdezhen certified 2009 and revoked in 2010.
    ok(
        w.post(
            &w.desk.entrant,
            &format!("/v1/funds/{}/contributions", w.desk.fund),
            json!({ "value_date": "2010-05-01", "amount": "100000.00", "source": "province_finance" }),
        )
        .await,
        201,
    )
    .await;
    ok(
        w.post(
            &w.desk.entrant,
            "/v1/credit-communities",
            json!({ "name": "百花洲社区", "region_code": "360102", "certified_on": "2010-04-01" }),
        )
        .await,
        201,
    )
    .await;
    let revoked = ok(
        w.post(
            &w.jdz_entrant,
            "/v1/credit-communities",
            json!({ "name": "昌江社区", "region_code": "360200", "certified_on": "2009-02-01" }),
        )
        .await,
        201,
    )
    .await;
    ok(
        w.post(
            &w.jdz_entrant,
            &format!(
                "/v1/credit-communities/{}/revocation",
                revoked["id"].as_str().unwrap()
            ),
            json!({ "revoked_on": "2010-06-01", "reason": "信用评估未通过" }),
        )
        .await,
        200,
    )
    .await;

    let province = w
        .app
        .user_token("sup.jx", "supervisor", json!({ "region_code": "360000" }))
        .await;
    let (status, s) = w
        .app
        .get_json(
            &format!("/v1/stats/summary?region=360000&{PERIOD}"),
            &province,
        )
        .await;
    assert_eq!(status, 200, "{s}");
    let t = &s["total"];
    // Issued in 2010: L4 and L8, 12,000 + 10,000; two borrowers, two jobs each.
    assert_eq!(t["issued_count"], 2);
    assert_eq!(dec(&t["issued_amount"]), d("22000"));
    // Money is a string with two decimals, zero too.
    assert_eq!(t["issued_amount"], "22000.00");
    assert_eq!(t["waiver_amount"], "0.00");
    assert_eq!(t["par90"], "0.00");
    assert_eq!(t["borrowers_helped"], 2);
    assert_eq!(t["jobs_created"], 4);
    // All nine by the end of 2010: 20 + 30 + 10 + 12 + 15 + 24 + 8 + 10 + 5 thousand.
    assert_eq!(t["cumulative_issued_count"], 9);
    assert_eq!(dec(&t["cumulative_issued_amount"]), d("134000"));
    // Principal falling due in 2010: L1 20,000 + L2 30,000 + L3 10,000 + L4 11,000 (instalments
    // 1-11) + L5 15,000 + L6 2,000 (instalment 6; 7-12 carry no principal after the extension)
    // + L7 8,000 + L9 5,000 = 101,000.
    assert_eq!(dec(&t["fell_due"]), d("101000"));
    // Repaid by 2010-12-31: L1 + L2 + L4's 11,000 + L5 + L6's 2,000 = 78,000.
    assert_eq!(dec(&t["repaid"]), d("78000"));
    // On time: L1 (a day early) + L4's 11,000 (three on their dates, eight early) + L6's 2,000
    // = 33,000; L5's on-time payment was reversed.
    assert_eq!(dec(&t["repaid_on_time"]), d("33000"));
    // 78,000 / 101,000 = 77.2277… → 77.23 %; 33,000 / 101,000 = 32.6732… → 32.67 %.
    assert_eq!(dec(&t["collection_rate"]), d("77.23"));
    assert_eq!(dec(&t["on_time_rate"]), d("32.67"));
    // Last instalment due in 2010: L1, L2, L3, L5, L7, L9 (L4 matures 2011-01-15, L6 after its
    // extension 2011-01-10); repaid in full: L1, L2, L5 → 3 / 6 = 50 %.
    assert_eq!(t["loans_matured"], 6);
    assert_eq!(t["loans_repaid_in_full"], 3);
    assert_eq!(dec(&t["count_rate"]), d("50.00"));
    // Before 2010 nothing fell due but L6's instalments 1-5 (2,000 each, on time).
    assert_eq!(dec(&t["cumulative_fell_due"]), d("111000"));
    assert_eq!(dec(&t["cumulative_repaid_on_time"]), d("43000"));
    // Outstanding at the end of 2010: L3 10,000 + L6 12,000 + L8 10,000 + L9 5,000 (L7 is
    // compensated) = 37,000; the funds guarantee the same.
    assert_eq!(dec(&t["outstanding_balance"]), d("37000"));
    assert_eq!(dec(&t["outstanding_guaranteed"]), d("37000"));
    // Overdue on 2010-12-31: L9 only, 46 days (L3 falls due that very day).
    assert_eq!(t["overdue_loans"], 1);
    assert_eq!(dec(&t["overdue_principal"]), d("5000"));
    assert_eq!(dec(&t["overdue_31_90"]), d("5000"));
    assert_eq!(dec(&t["par30"]), d("5000"));
    assert_eq!(dec(&t["par90"]), d("0"));
    // Compensation: 5,843.60 / 101,000 = 5.7857… → 5.79 %.
    assert_eq!(t["compensations"], 1);
    assert_eq!(dec(&t["compensation_amount"]), d("5843.60"));
    assert_eq!(dec(&t["compensation_rate"]), d("5.79"));
    assert_eq!(dec(&t["recovered"]), d("1000"));
    assert_eq!(dec(&t["recovered_to_fund"]), d("700"));
    assert_eq!(t["write_offs"], 1);
    assert_eq!(dec(&t["written_off_loss"]), d("5143.60"));
    // Communities: one new in 2010, one in force at its end.
    assert_eq!(t["new_credit_communities"], 1);
    assert_eq!(t["credit_communities"], 1);
    // Funds: 1,000,000 each in 2004 and 100,000 in 2010; balance 2,100,000 − 5,843.60 + 700.
    assert_eq!(dec(&t["contributions"]), d("100000"));
    assert_eq!(dec(&t["contributions_total"]), d("2100000"));
    assert_eq!(dec(&t["fund_balance"]), d("2094856.40"));
    // 37,000 / 2,094,856.40 = 0.01766… → 0.0177.
    assert_eq!(dec(&t["actual_leverage"]), d("0.0177"));
    // The subsidy is the one the per-bank report gives.
    let (_, sub) = w
        .app
        .get_json("/v1/subsidies?year=2010&as_of=2010-12-31", &province)
        .await;
    assert_eq!(dec(&t["subsidy"]), dec(&sub["total_subsidy"]));
    assert!(
        dec(&t["subsidy"]) >= d("870.00"),
        "L1's 870.00 of interest at least"
    );

    // By city: Nanchang 86,000 fell due, 76,000 repaid, 31,000 on time; Jingdezhen 15,000,
    // 2,000, 2,000.
    let (_, by_city) = w
        .app
        .get_json(
            &format!("/v1/stats/summary?region=360000&{PERIOD}&group_by=region"),
            &province,
        )
        .await;
    let city = |code: &str| {
        by_city["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == code)
            .unwrap_or_else(|| panic!("no {code} in {by_city}"))
            .clone()
    };
    let nc = city("360100");
    assert_eq!(nc["label"], "南昌市");
    assert_eq!(
        (
            dec(&nc["fell_due"]),
            dec(&nc["repaid"]),
            dec(&nc["repaid_on_time"])
        ),
        (d("86000"), d("76000"), d("31000"))
    );
    let jdz = city("360200");
    assert_eq!(
        (
            dec(&jdz["fell_due"]),
            dec(&jdz["repaid"]),
            dec(&jdz["repaid_on_time"])
        ),
        (d("15000"), d("2000"), d("2000"))
    );
    // By bank: A 65,000 / 50,000 / 20,000; B 26,000 / 26,000 / 11,000; C 10,000 / 2,000 / 2,000.
    let (_, by_bank) = w
        .app
        .get_json(
            &format!("/v1/stats/summary?region=360000&{PERIOD}&group_by=bank"),
            &province,
        )
        .await;
    for (bank, due, repaid, on_time) in [
        (&bank_a, "65000", "50000", "20000"),
        (&bank_b, "26000", "26000", "11000"),
        (&bank_c, "10000", "2000", "2000"),
    ] {
        let g = by_bank["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == bank.as_str())
            .unwrap()
            .clone();
        assert_eq!(
            (
                dec(&g["fell_due"]),
                dec(&g["repaid"]),
                dec(&g["repaid_on_time"])
            ),
            (d(due), d(repaid), d(on_time)),
            "bank {}",
            g["label"]
        );
    }
    // Every grouping adds up to the same total.
    for g in [
        "region", "bank", "centre", "category", "month", "quarter", "year",
    ] {
        let (status, s) = w
            .app
            .get_json(
                &format!("/v1/stats/summary?region=360000&{PERIOD}&group_by={g}"),
                &province,
            )
            .await;
        assert_eq!(status, 200, "{s}");
        assert_eq!(
            s["total"],
            t.clone(),
            "the total does not depend on the grouping ({g})"
        );
        assert_groups_add_up(&s, ADDITIVE);
        if !["month", "quarter", "year"].contains(&g) {
            assert_groups_add_up(&s, STOCKS);
        }
        if ["region", "centre"].contains(&g) {
            assert_groups_add_up(&s, CENTRE_SIDE);
            assert_groups_add_up(&s, CENTRE_STOCKS);
        }
        if ["month", "quarter", "year"].contains(&g) {
            assert_groups_add_up(&s, CENTRE_SIDE);
        }
    }
    // The repayment-rate view gives the same figures.
    let (_, rr) = w
        .app
        .get_json(
            &format!("/v1/stats/repayment-rate?region=360000&{PERIOD}"),
            &province,
        )
        .await;
    assert_eq!(rr["total"]["collection_rate"], "77.23");
    assert_eq!(rr["total"]["on_time_rate"], "32.67");
    assert_eq!(rr["total"]["count_rate"], "50.00");
    assert_eq!(rr["total"]["fell_due"], "101000.00");

    // Scope: a city supervisor sees its city, also when asking for the province, and never
    // the other city; a clerk its centre; a bank its loans.
    let nanchang = w
        .app
        .user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;
    let (s1, own) = w
        .app
        .get_json(&format!("/v1/stats/summary?{PERIOD}"), &nanchang)
        .await;
    assert_eq!(s1, 200);
    assert_eq!(own["region"], "360100");
    assert_eq!(dec(&own["total"]["fell_due"]), d("86000"));
    let (_, asked_province) = w
        .app
        .get_json(
            &format!("/v1/stats/summary?region=360000&{PERIOD}"),
            &nanchang,
        )
        .await;
    assert_eq!(asked_province["region"], "360100");
    assert_eq!(asked_province["total"], own["total"]);
    let r = w
        .app
        .call(
            Method::GET,
            &format!("/v1/stats/summary?region=360200&{PERIOD}"),
            Some(&nanchang),
            None,
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = w
        .app
        .call(
            Method::GET,
            &format!("/v1/stats/repayment-rate?region=360200&{PERIOD}"),
            Some(&nanchang),
            None,
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    let (_, clerk) = w
        .app
        .get_json(&format!("/v1/stats/summary?{PERIOD}"), &w.jdz_entrant)
        .await;
    assert_eq!(dec(&clerk["total"]["fell_due"]), d("15000"));
    let (_, bank) = w
        .app
        .get_json(&format!("/v1/stats/summary?{PERIOD}"), &w.b)
        .await;
    assert_eq!(dec(&bank["total"]["fell_due"]), d("26000"));
    assert!(
        bank["total"]["fund_balance"].is_null(),
        "funds are not a bank's business"
    );
    let r = w
        .app
        .call(
            Method::GET,
            &format!("/v1/stats/summary?{PERIOD}&bank_id={bank_a}"),
            Some(&w.b),
            None,
        )
        .await;
    assert_problem(r, 404, "not_found").await;

    // CSV, with Chinese headers on request; the total is the last row.
    let r = w
        .app
        .http
        .get(w.app.url(&format!(
            "/v1/stats/summary?region=360000&{PERIOD}&group_by=region&lang=zh"
        )))
        .bearer_auth(&province)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "header, two cities, total:\n{csv}");
    assert!(lines[0].contains("到期还贷率(%)"));
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header.iter().position(|h| *h == "到期本金").unwrap();
    assert_eq!(lines[3].split(',').nth(col), Some("101000.00"));
    assert!(lines[3].starts_with("total,合计,"));

    // Targets: the province sets Nanchang's; completion is actual / target.
    ok(
        w.post(&province, "/v1/targets", json!({ "region_code": "360100", "year": 2010, "measure": "issued_amount", "value": "6000.00" }))
            .await,
        201,
    )
    .await;
    // A correction is a new entry; the latest counts.
    ok(
        w.post(&province, "/v1/targets", json!({ "region_code": "360100", "year": 2010, "measure": "jobs_created", "value": "5" }))
            .await,
        201,
    )
    .await;
    ok(
        w.post(&province, "/v1/targets", json!({ "region_code": "360100", "year": 2010, "measure": "jobs_created", "value": "4" }))
            .await,
        201,
    )
    .await;
    let r = w
        .post(&nanchang, "/v1/targets", json!({ "region_code": "360100", "year": 2010, "measure": "jobs_created", "value": "9" }))
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = w
        .post(&nanchang, "/v1/targets", json!({ "region_code": "360200", "year": 2010, "measure": "jobs_created", "value": "9" }))
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = w
        .post(&w.a, "/v1/targets", json!({ "region_code": "360100", "year": 2010, "measure": "jobs_created", "value": "9" }))
        .await;
    assert_problem(r, 403, "forbidden").await;
    let (_, c) = w
        .app
        .get_json("/v1/stats/targets?region=360100&year=2010", &nanchang)
        .await;
    let item = |m: &str| {
        c["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["measure"] == m)
            .unwrap()
            .clone()
    };
    // Nanchang issued 12,000.00 in 2010 against 6,000.00: 200.00 %; 2 jobs against 4: 50.00 %.
    assert_eq!(dec(&item("issued_amount")["completion"]), d("200.00"));
    assert_eq!(dec(&item("jobs_created")["target"]), d("4"));
    assert_eq!(dec(&item("jobs_created")["completion"]), d("50.00"));
    assert!(item("borrowers_helped")["target"].is_null());

    // Rewards for 2010 (PBOC-2008-238: 95 % and 1 %): only bank B (26,000 / 26,000 = 100 %)
    // earns 1 % of its 12,000.00 issued in 2010.
    let (_, rw) = w
        .app
        .get_json(
            "/v1/stats/rewards?region=360000&year=2010&as_of=2010-12-31",
            &province,
        )
        .await;
    assert_eq!(rw["policy_code"], "PBOC-2008-238");
    let met: Vec<(String, String)> = rw["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["met"] == true)
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["reward"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(met, vec![(bank_b.clone(), "120.00".to_owned())]);

    // And the books check out.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let report = danbao_api::verify::run(&w.app.db.url, today).await.unwrap();
    assert!(report.ok(), "{report:#?}");
}

#[tokio::test]
async fn supervisors_see_loans_with_personal_data_masked() {
    let app = spawn_app().await;
    let desk = app.desk("1000000.00").await;
    let b = app.person(&desk.entrant, 1, json!({})).await;
    let guarantor_id = national_id("19700101", 900);
    let loan = app
        .applied(
            &desk.entrant,
            &desk,
            &b,
            json!({ "counter_guarantee": { "kind": "guarantor", "name": "王芳", "national_id": guarantor_id } }),
        )
        .await;
    let sup = app
        .user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;
    let (s, v) = app.get_json(&format!("/v1/loans/{loan}"), &sup).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["counter_guarantee"]["name"], "王*");
    let masked = v["counter_guarantee"]["national_id_masked"]
        .as_str()
        .unwrap();
    assert_eq!(&masked[..6], &guarantor_id[..6]);
    assert_eq!(&masked[14..], &guarantor_id[14..]);
    assert!(!v.to_string().contains(&guarantor_id[6..14]), "{v}");
    let (_, list) = app.get_json("/v1/loans", &sup).await;
    assert_eq!(list["items"][0]["counter_guarantee"]["name"], "王*");
    // The centre's clerk sees the name in full.
    let (_, v) = app
        .get_json(&format!("/v1/loans/{loan}"), &desk.entrant)
        .await;
    assert_eq!(v["counter_guarantee"]["name"], "王芳");
    // Another city's supervisor does not see the loan at all.
    let jdz = app
        .user_token("sup.jdz", "supervisor", json!({ "region_code": "360200" }))
        .await;
    let (s, _) = app.get_json(&format!("/v1/loans/{loan}"), &jdz).await;
    assert_eq!(s, 404);
    let (_, list) = app.get_json("/v1/loans", &jdz).await;
    assert!(list["items"].as_array().unwrap().is_empty());
}
