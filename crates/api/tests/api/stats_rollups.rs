//! The statistics rollups (by month and cell, corrected to the as-of date) answer exactly as a
//! scan of every instalment fact does, on a demo province's whole history, for random
//! periods, as-of dates, scopes and groupings: rolled up, with deltas pending, and after facts
//! are deleted, changed and written again.
use crate::helpers::{spawn_app, TestApp, PII_KEY};
use chrono::{Datelike, Days, NaiveDate};
use danbao_api::demo::{self, DemoOptions};
use danbao_api::stats::{self, GroupBy, Params, Scope, Source};
use danbao_domain::RegionCode;
use danbao_persistence::diesel::sql_query;
use danbao_persistence::diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
};
use uuid::Uuid;

/// A small deterministic generator, so that a failure names a case that can be run again.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn cases(today: NaiveDate, regions: &[String], banks: &[Uuid]) -> Vec<Params> {
    let groupings = [
        None,
        Some(GroupBy::Region),
        Some(GroupBy::Bank),
        Some(GroupBy::Centre),
        Some(GroupBy::Category),
        Some(GroupBy::Month),
        Some(GroupBy::Quarter),
        Some(GroupBy::Year),
    ];
    let start = NaiveDate::from_ymd_opt(2006, 1, 1).unwrap();
    let span = u64::try_from((today - start).num_days()).unwrap() + 400;
    let day = |n: u64| start.checked_add_days(Days::new(n)).unwrap();
    let scope = |region: &str, bank_id: Option<Uuid>| Scope {
        region: RegionCode::parse(region).unwrap(),
        bank_id,
        centre_id: None,
    };
    let year = |y: i32, m: u32, d: u32| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let mut out = Vec::new();
    // The reports supervisors ask for: a whole year as of its end, this year as of today.
    for g in groupings {
        out.push(Params {
            scope: scope("360000", None),
            from: year(2020, 1, 1),
            to: year(2020, 12, 31),
            as_of: year(2020, 12, 31),
            group_by: g,
        });
        out.push(Params {
            scope: scope("360000", None),
            from: year(today.year(), 1, 1),
            to: year(today.year(), 12, 31),
            as_of: today,
            group_by: g,
        });
    }
    let mut rng = Lcg(20_261_127);
    for _ in 0..48 {
        let from = day(rng.below(span));
        let to = from.checked_add_days(Days::new(rng.below(900))).unwrap();
        // As of the end of the period, after it, inside it or before it.
        let as_of = match rng.below(4) {
            0 => to,
            1 => to.checked_add_days(Days::new(rng.below(400))).unwrap(),
            2 => from.checked_add_days(Days::new(rng.below(900))).unwrap(),
            _ => day(rng.below(span)),
        };
        let region = &regions[usize::try_from(rng.below(regions.len() as u64)).unwrap()];
        let bank = (rng.below(3) == 0)
            .then(|| banks[usize::try_from(rng.below(banks.len() as u64)).unwrap()]);
        out.push(Params {
            scope: scope(region, bank),
            from,
            to,
            as_of,
            group_by: groupings[usize::try_from(rng.below(groupings.len() as u64)).unwrap()],
        });
    }
    out
}

/// Where two answers differ: path, rollups' value, scan's value.
fn differences(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                differences(
                    &format!("{path}.{k}"),
                    v,
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{k}: missing, {}", y[k]));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            // Groups, matched by key.
            let key = |v: &Value| v.get("key").map_or(String::new(), ToString::to_string);
            for v in x {
                match y.iter().find(|w| key(w) == key(v)) {
                    Some(w) => differences(&format!("{path}[{}]", key(v)), v, w, out),
                    None => out.push(format!("{path}[{}]: only from the rollups", key(v))),
                }
            }
            for w in y.iter().filter(|w| !x.iter().any(|v| key(v) == key(w))) {
                out.push(format!("{path}[{}]: only from the scan", key(w)));
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

async fn assert_same(conn: &mut AsyncPgConnection, cases: &[Params], when: &str) {
    for p in cases {
        let rolled = stats::summary_with(conn, p, Source::Rollups).await.unwrap();
        let scanned = stats::summary_with(conn, p, Source::Scan).await.unwrap();
        let mut diff = Vec::new();
        differences(
            "",
            &serde_json::to_value(&rolled).unwrap(),
            &serde_json::to_value(&scanned).unwrap(),
            &mut diff,
        );
        assert!(
            diff.is_empty(),
            "{when}: {p:?}: rollups/scan differ: {diff:#?}"
        );
    }
}

#[derive(danbao_persistence::diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = danbao_persistence::diesel::sql_types::Text)]
    t: String,
}

async fn texts(conn: &mut AsyncPgConnection, sql: &str) -> Vec<String> {
    sql_query(sql)
        .load::<Text>(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.t)
        .collect()
}

/// Unpaid instalments carrying their loan's closing date.
const CLOSED_UNPAID: &str =
    "SELECT count(*)::text AS t FROM instalment_facts WHERE paid_on IS NULL AND closed_on IS NOT NULL";

/// The number a statement selects (as text `t`).
async fn number(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    texts(conn, sql).await[0].parse().unwrap()
}

/// A verify rule's outcome, by part of its name.
fn check<'a>(report: &'a danbao_api::verify::Report, rule: &str) -> &'a danbao_api::verify::Check {
    report
        .checks
        .iter()
        .find(|c| c.rule.contains(rule))
        .unwrap()
}

/// `danbao verify`'s rule (by part of its name) finds nothing wrong.
async fn holds(app: &TestApp, today: NaiveDate, rule: &str) {
    let report = danbao_api::verify::run(&app.db.url, today).await.unwrap();
    let c = check(&report, rule);
    assert!(c.checked > 0 && c.failed == 0, "{c:?}");
}

async fn pending(conn: &mut AsyncPgConnection) -> i64 {
    number(
        conn,
        "SELECT ((SELECT count(*) FROM stat_due_deltas) + (SELECT count(*) FROM stat_stock_deltas))::text AS t",
    )
    .await
}

/// A test app whose database holds a demo province (small chunks, so that the bulk load's
/// COPYs come in several statements).
async fn demo_app(seed: u64, loans: u32, from_year: i32, verify: bool) -> (TestApp, NaiveDate) {
    let app = spawn_app().await;
    let pii = danbao_api::crypto::PiiKeys::from_master(PII_KEY).unwrap();
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    demo::run(
        &app.db.url,
        &pii,
        &DemoOptions {
            seed,
            loans,
            from_year,
            today,
            progress: false,
            verify,
            chunk: 150,
        },
    )
    .await
    .unwrap();
    (app, today)
}

#[tokio::test]
async fn rollups_answer_as_a_scan_of_every_fact_does() {
    let (app, today) = demo_app(11, 400, 2008, false).await;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    // The province, its first city, and the county with the most loans.
    let mut regions = vec!["360000".to_owned(), "360100".to_owned()];
    regions.extend(
        texts(
            &mut conn,
            "SELECT region_code AS t FROM loans GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        )
        .await,
    );
    let banks: Vec<Uuid> = texts(&mut conn, "SELECT id::text AS t FROM banks ORDER BY 1")
        .await
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let cases = cases(today, &regions, &banks);
    // The demo built the rollups from its facts: nothing pending.
    assert_eq!(pending(&mut conn).await, 0);
    let late = number(
        &mut conn,
        "SELECT count(*)::text AS t FROM principal_payments WHERE value_date > due_date",
    )
    .await;
    assert!(late > 0, "the demo has late payments to correct for");
    let closed = number(&mut conn, CLOSED_UNPAID).await;
    assert!(
        closed > 0,
        "the demo has closed loans' unpaid instalments to leave out"
    );
    assert_same(&mut conn, &cases, "built by the demo").await;

    // A closed loan paid in full by a payment value-dated after its release and maturity (a
    // release backdated before a payment; written here as a statement could): as of the day
    // before that payment it was not repaid in full, as of the payment it was. The loan's
    // stored figures follow the payment, and the rollups sum its payments only for the day
    // before.
    let edge = texts(
        &mut conn,
        "WITH c AS (SELECT l.id, greatest(l.released_on, l.maturity_date) AS d, l.closed_unpaid,
                           (SELECT max(f.number) FROM instalment_facts f WHERE f.loan_id = l.id) AS n
                    FROM loans l WHERE l.closed_unpaid > 0 AND greatest(l.released_on, l.maturity_date) < CURRENT_DATE - 2
                    ORDER BY l.id LIMIT 1)
         INSERT INTO principal_payments (loan_id, number, value_date, principal, due_date)
         SELECT c.id, c.n, c.d + 1, c.closed_unpaid, f.due_date
         FROM c JOIN instalment_facts f ON f.loan_id = c.id AND f.number = c.n
         RETURNING loan_id || ' ' || (value_date - 1) AS t",
    )
    .await;
    let (loan, day) = edge[0].split_once(' ').unwrap();
    let day: NaiveDate = day.parse().unwrap();
    let stored = texts(
        &mut conn,
        &format!(
            "SELECT closed_unpaid || ' ' || closed_paid_until || ' ' || maturity_date AS t
             FROM loans WHERE id = '{loan}'"
        ),
    )
    .await;
    let after = day.succ_opt().unwrap();
    let parts: Vec<&str> = stored[0].split(' ').collect();
    assert_eq!(
        parts[..2],
        ["0.00", after.to_string().as_str()],
        "{stored:?}"
    );
    let maturity: NaiveDate = parts[2].parse().unwrap();
    // The period from its maturity to that day, as of then and of the payment; the province
    // and the loan's own county and bank.
    let (county, bank) = texts(
        &mut conn,
        &format!("SELECT region_code || ' ' || bank_id AS t FROM loans WHERE id = '{loan}'"),
    )
    .await[0]
        .split_once(' ')
        .map(|(r, b)| (r.to_owned(), b.parse::<Uuid>().unwrap()))
        .unwrap();
    let mut edge_cases = Vec::new();
    for as_of in [day, after] {
        for (region, bank_id) in [("360000", None), (county.as_str(), Some(bank))] {
            for group_by in [None, Some(GroupBy::Region)] {
                edge_cases.push(Params {
                    scope: Scope {
                        region: RegionCode::parse(region).unwrap(),
                        bank_id,
                        centre_id: None,
                    },
                    from: maturity,
                    to: day,
                    as_of,
                    group_by,
                });
            }
        }
    }
    assert_same(&mut conn, &edge_cases, "a payment after the release").await;

    // Borrowers with more than one loan: every third loan of a category (by disbursement)
    // goes to the borrower of the loan before it, some in the same period and cell, some
    // not. Borrowers helped count each of them once per group and once in the total.
    let moved = texts(
        &mut conn,
        "WITH d AS (SELECT id, borrower_id, row_number() OVER (PARTITION BY category ORDER BY disbursed_on, id) AS n,
                           category FROM loans WHERE disbursed_on IS NOT NULL)
         UPDATE loans l SET borrower_id = a.borrower_id FROM d a, d b
         WHERE b.id = l.id AND a.category = b.category AND b.n % 3 = 0 AND a.n = b.n - 1
         RETURNING l.id::text AS t",
    )
    .await;
    assert!(moved.len() > 50, "{}", moved.len());
    // Each moved loan's previous disbursement is its new borrower's loan before it.
    let repeat = number(
        &mut conn,
        "SELECT count(*)::text AS t FROM loans WHERE prev_disbursed_on IS NOT NULL",
    )
    .await;
    assert_eq!(repeat, i64::try_from(moved.len()).unwrap());
    holds(&app, today, "previous loan").await;
    let helped = stats::summary_with(&mut conn, &cases[0], Source::Rollups)
        .await
        .unwrap();
    let total = serde_json::to_value(&helped).unwrap()["total"].clone();
    assert!(
        total["borrowers_helped"].as_i64() < total["issued_count"].as_i64(),
        "{total}"
    );
    assert_same(&mut conn, &cases, "borrowers with several loans").await;

    // Loans' jobs corrected by hand and maturities moved later (around the trigger that lets
    // only an extension move them; loans repaid on time, so that their facts still agree),
    // then put back: the loans' months follow both ways.
    for (jobs, days, when) in [(2, 45, "loans changed"), (-2, -45, "loans back")] {
        conn.batch_execute(&format!(
            "UPDATE loans SET jobs_declared = jobs_declared + {jobs}
             WHERE id IN (SELECT id FROM loans WHERE disbursed_on IS NOT NULL ORDER BY md5(id::text) LIMIT 30);
             ALTER TABLE loans DISABLE TRIGGER loans_disbursement_fixed;
             UPDATE loans SET maturity_date = maturity_date + {days}
             WHERE id IN (SELECT id FROM loans l WHERE status = 'settled'
                          AND NOT EXISTS (SELECT 1 FROM overdue_spans s WHERE s.loan_id = l.id)
                          ORDER BY md5(id::text) DESC LIMIT 30);
             ALTER TABLE loans ENABLE TRIGGER loans_disbursement_fixed;"
        ))
        .await
        .unwrap();
        holds(&app, today, "loans' months").await;
        assert_same(&mut conn, &cases, when).await;
    }

    // A tenth of the loans lose their facts, and another tenth their paid-on dates (as if
    // repaid by nobody): deltas pending, then rolled up.
    sql_query(
        "WITH gone AS (SELECT id FROM loans WHERE disbursed_on IS NOT NULL
                       ORDER BY status IN ('compensated', 'written_off') DESC, id LIMIT 40),
              p AS (DELETE FROM principal_payments WHERE loan_id IN (SELECT id FROM gone))
         DELETE FROM instalment_facts WHERE loan_id IN (SELECT id FROM gone)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sql_query(
        "UPDATE instalment_facts SET paid_on = NULL WHERE loan_id IN
           (SELECT id FROM loans WHERE disbursed_on IS NOT NULL ORDER BY id DESC LIMIT 40)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // Overdue spans are written with the facts by their writer (the application, which
    // derives them from the facts it writes); for these facts written by hand, they are
    // written again from the SQL formulation of the same rule.
    sql_query("SELECT danbao_rebuild_overdue_spans()")
        .execute(&mut conn)
        .await
        .unwrap();
    // Released loans are released later: compensated ones stay in the overdue figures longer,
    // guarantees stay in force longer.
    let moved_release = texts(
        &mut conn,
        "UPDATE loans SET released_on = released_on + 200
         WHERE id IN (SELECT id FROM loans WHERE released_on - 200 >= coalesce(disbursed_on, approved_on)
                      ORDER BY status IN ('compensated', 'written_off') DESC, md5(id::text) LIMIT 60)
         RETURNING CASE WHEN status IN ('compensated', 'written_off') THEN 'closed ' ELSE '' END || id AS t",
    )
    .await;
    assert!(moved_release.len() > 10, "{moved_release:?}");
    assert!(
        moved_release.iter().any(|t| t.starts_with("closed")),
        "{moved_release:?}"
    );
    // The closed loans that lost their facts and payments carry what they now leave unpaid.
    holds(&app, today, "closed loan carries").await;
    let moved_release: Vec<String> = moved_release
        .iter()
        .map(|t| t.split(' ').next_back().unwrap().to_owned())
        .collect();
    assert!(pending(&mut conn).await > 0);
    assert_same(&mut conn, &cases, "with deltas pending").await;
    let moved = stats::roll_up(&mut conn).await.unwrap();
    assert!(moved > 0);
    assert_eq!(pending(&mut conn).await, 0);
    assert_same(&mut conn, &cases, "rolled up").await;

    // The same releases 200 days earlier than the demo made them, before some of their
    // payments (which then no longer count); then back where they were.
    for (days, when) in [(-400, "releases earlier"), (200, "releases back")] {
        sql_query("UPDATE loans SET released_on = released_on + $1 WHERE id::text = ANY($2)")
            .bind::<danbao_persistence::diesel::sql_types::Integer, _>(days)
            .bind::<danbao_persistence::diesel::sql_types::Array<
                danbao_persistence::diesel::sql_types::Text,
            >, _>(&moved_release)
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(pending(&mut conn).await > 0);
        assert_same(&mut conn, &cases, when).await;
    }

    // `verify --rebuild-facts` writes them back through the same triggers; the rollups are
    // the sums of the facts again, and the answers are those of the demo.
    let report = danbao_api::verify::run_with(&app.db.url, today, true)
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    // The closed loans' facts, written again, carry their closing date again.
    let closed_again = number(&mut conn, CLOSED_UNPAID).await;
    assert_eq!(closed_again, closed);
    assert!(pending(&mut conn).await > 0);
    assert_same(&mut conn, &cases, "facts written again").await;
}

#[tokio::test]
async fn verify_finds_rollups_that_are_not_the_sums_of_the_facts() {
    let (app, today) = demo_app(3, 60, 2020, true).await;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    sql_query(
        "UPDATE stat_due_rollups SET fell_due = fell_due + 1
         WHERE (grain, period) = (SELECT grain, period FROM stat_due_rollups WHERE grain = 'm' ORDER BY period LIMIT 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sql_query(
        "UPDATE stat_stock_rollups SET balance = balance - 1
         WHERE (grain, period) = (SELECT grain, period FROM stat_stock_rollups WHERE grain = 'y' ORDER BY period LIMIT 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // A fact that does not carry its loan's closing date (written around its trigger).
    conn.batch_execute(
        "ALTER TABLE instalment_facts DISABLE TRIGGER instalment_facts_closed_on_update;
         UPDATE instalment_facts SET closed_on = DATE '2001-02-03'
         WHERE (loan_id, number) = (SELECT loan_id, number FROM instalment_facts ORDER BY 1, 2 LIMIT 1);
         ALTER TABLE instalment_facts ENABLE TRIGGER instalment_facts_closed_on_update;",
    )
    .await
    .unwrap();
    // An overdue span that is not what its facts give, and a fund's month that is not the
    // sum of its entries.
    conn.batch_execute(
        "UPDATE overdue_spans SET overdue = overdue + 1, outstanding = outstanding + 1
         WHERE (loan_id, starts_on) = (SELECT loan_id, starts_on FROM overdue_spans ORDER BY 1, 2 LIMIT 1);
         UPDATE fund_ledger_months SET amount = amount + 1
         WHERE (fund_id, period) = (SELECT fund_id, period FROM fund_ledger_months ORDER BY 1, 2 LIMIT 1);",
    )
    .await
    .unwrap();
    // A loan's previous disbursement set around its trigger.
    conn.batch_execute(
        "ALTER TABLE loans DISABLE TRIGGER loans_prev_disbursed;
         UPDATE loans SET prev_disbursed_on = disbursed_on
         WHERE id = (SELECT id FROM loans WHERE disbursed_on IS NOT NULL ORDER BY id LIMIT 1);
         ALTER TABLE loans ENABLE TRIGGER loans_prev_disbursed;",
    )
    .await
    .unwrap();
    // A closed loan's principal not repaid set around its trigger.
    conn.batch_execute(
        "ALTER TABLE loans DISABLE TRIGGER loans_closed_books;
         UPDATE loans SET closed_unpaid = closed_unpaid + 1
         WHERE id = (SELECT id FROM loans WHERE closed_unpaid IS NOT NULL ORDER BY id LIMIT 1);
         ALTER TABLE loans ENABLE TRIGGER loans_closed_books;",
    )
    .await
    .unwrap();
    // An allocation carrying a loan that is not its repayment's, written around its trigger.
    conn.batch_execute(
        "ALTER TABLE repayment_allocations DISABLE TRIGGER repayment_allocations_fit_repayment;
         INSERT INTO repayment_allocations (repayment_id, loan_id, to_penalty, to_interest, to_principal)
         SELECT a.repayment_id, (SELECT id FROM loans WHERE id <> a.loan_id ORDER BY id LIMIT 1),
                a.to_penalty, a.to_interest, a.to_principal
         FROM repayment_allocations_current a ORDER BY a.repayment_id LIMIT 1;
         ALTER TABLE repayment_allocations ENABLE TRIGGER repayment_allocations_fit_repayment;",
    )
    .await
    .unwrap();
    // A reversal carrying a loan that is not its repayment's, set around its trigger.
    conn.batch_execute(
        "ALTER TABLE repayment_reversals DISABLE TRIGGER repayment_reversals_append_only;
         UPDATE repayment_reversals SET loan_id = (SELECT id FROM loans WHERE id <> loan_id ORDER BY id LIMIT 1)
         WHERE repayment_id = (SELECT repayment_id FROM repayment_reversals ORDER BY 1 LIMIT 1);
         ALTER TABLE repayment_reversals ENABLE TRIGGER repayment_reversals_append_only;",
    )
    .await
    .unwrap();
    // A month of loans that is not their sum.
    conn.batch_execute(
        "UPDATE stat_loan_months SET matured = matured + 1
         WHERE (period, region_code, bank_id, centre_id, category) =
               (SELECT period, region_code, bank_id, centre_id, category FROM stat_loan_months ORDER BY 1, 2, 3, 4, 5 LIMIT 1);",
    )
    .await
    .unwrap();
    let report = danbao_api::verify::run(&app.db.url, today).await.unwrap();
    let loan_months = check(&report, "loans' months");
    assert_eq!(loan_months.failed, 1, "{loan_months:?}");
    assert!(
        loan_months.failures[0].contains("summed"),
        "{loan_months:?}"
    );
    let references = check(&report, "names rows that exist");
    // The allocation and the reversal.
    assert_eq!(references.failed, 2, "{references:?}");
    assert!(
        references
            .failures
            .iter()
            .any(|f| f.starts_with("allocation ") && f.contains("the repayment's loan")),
        "{references:?}"
    );
    assert!(
        references
            .failures
            .iter()
            .any(|f| f.starts_with("reversal of repayment ") && f.contains("the repayment's loan")),
        "{references:?}"
    );
    let previous = check(&report, "previous loan");
    assert_eq!(previous.failed, 1, "{previous:?}");
    assert!(previous.failures[0].contains("none"), "{previous:?}");
    let closed_books = check(&report, "closed loan carries");
    assert_eq!(closed_books.failed, 1, "{closed_books:?}");
    assert!(
        closed_books.failures[0].contains("its books"),
        "{closed_books:?}"
    );
    let spans = check(&report, "overdue spans are those its facts give");
    assert_eq!(spans.failed, 1, "{spans:?}");
    assert!(spans.failures[0].contains("stored"), "{spans:?}");
    let months = check(&report, "ledger by month");
    assert_eq!(months.failed, 1, "{months:?}");
    let closed = check(&report, "closing date");
    assert_eq!(closed.failed, 1, "{closed:?}");
    assert!(closed.failures[0].contains("2001-02-03"), "{closed:?}");
    let stocks = check(&report, "stock rollups");
    assert!(stocks.failed >= 1, "{stocks:?}");
    assert!(stocks.failures[0].contains("events"), "{stocks:?}");
    let rollups = check(&report, "rollups");
    assert!(rollups.failed >= 1, "{rollups:?}");
    assert!(rollups.failures[0].contains("rolled up"), "{rollups:?}");
    // The facts cannot be emptied around the triggers.
    let err = sql_query("TRUNCATE principal_payments")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("statistics rollups"), "{err}");
}

#[tokio::test]
async fn repayments_on_overdue_loans_keep_their_spans_those_of_their_facts() {
    let (app, today) = demo_app(5, 300, 2016, false).await;
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    // Active loans overdue today, with principal left to repay; each gets two
    // repayments of a third of it (penalty and interest first, then principal).
    let loans = texts(
        &mut conn,
        "SELECT s.loan_id || ' ' || round(s.outstanding / 3, 2) || ' ' || lower(b.code) AS t
         FROM overdue_spans s JOIN loans l ON l.id = s.loan_id
         JOIN banks b ON b.id = l.bank_id
         WHERE l.status = 'active' AND s.outstanding > 10
           AND danbao_overdue_live(s.starts_on, s.ends_on, s.closed_on) @> (now() AT TIME ZONE 'Asia/Shanghai')::date
         ORDER BY 1 LIMIT 3",
    )
    .await;
    assert!(!loans.is_empty(), "the demo has loans overdue today");
    let spans_before = number(&mut conn, "SELECT count(*)::text AS t FROM overdue_spans").await;
    for (i, row) in loans.iter().enumerate() {
        let [loan, amount, bank] = row.split(' ').collect::<Vec<_>>()[..] else {
            panic!("{row}")
        };
        let bank = app
            .login(&format!("bank.{bank}"), "Demo password 2026")
            .await;
        for part in 0..2 {
            let r = app
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/loans/{loan}/repayments"),
                    Some(&bank),
                    Some(serde_json::json!({
                        "bank_reference": format!("SPAN-{i}-{part}"),
                        "value_date": today,
                        "amount": amount,
                    })),
                )
                .await;
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        }
    }
    // Each payment today started a span from today (the principal not repaid moved).
    let from_today = number(
        &mut conn,
        &format!("SELECT count(*)::text AS t FROM overdue_spans WHERE starts_on = DATE '{today}'"),
    )
    .await;
    assert!(from_today >= 1, "{from_today}");
    assert!(
        number(&mut conn, "SELECT count(*)::text AS t FROM overdue_spans").await >= spans_before
    );
    let report = danbao_api::verify::run(&app.db.url, today).await.unwrap();
    let spans = check(&report, "overdue spans are those its facts give");
    assert_eq!(spans.failed, 0, "{spans:?}");
    assert!(report.ok(), "{report:?}");
}
