//! `danbao verify`: the reconciliation rules of the domain, checked on the whole database.
//! Each rule is a query for the rows that break it (so a clean database costs one scan per
//! rule), except loan positions, which are recomputed from each loan's entries with the same
//! code as the API, a chunk of loans at a time.
use crate::routes::repayments::Books;
use chrono::NaiveDate;
use danbao_persistence::diesel::sql_types::{BigInt, Text};
use danbao_persistence::diesel::{sql_query, QueryableByName};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use danbao_persistence::models::policy::PolicyRow;
use danbao_persistence::models::repayment::{InstalmentRow, RepaymentRow};
use danbao_persistence::models::stats::{InstalmentFactRow, PrincipalPaymentRow};
use danbao_persistence::repo;
use danbao_persistence::repo::loan::LoanFilter;
use std::collections::HashMap;
use uuid::Uuid;

/// Offending rows shown per rule.
const SHOWN: usize = 20;
/// Loans recomputed per round trip.
const CHUNK: i64 = 1000;

/// One rule: how many rows it looked at and what breaks it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub rule: &'static str,
    /// Rows the rule looked at.
    pub checked: i64,
    /// Rows that break it (all of them counted, the first few shown in `failures`).
    pub failed: usize,
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub as_of: NaiveDate,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.failures.is_empty())
    }
}

#[derive(QueryableByName)]
struct Bad {
    #[diesel(sql_type = Text)]
    what: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The SQL rules: `(rule, table counted, query returning one `what` per offending row)`.
const RULES: &[(&str, &str, &str)] = &[
    (
        "fund balance = sum of its ledger",
        "funds",
        "SELECT 'fund ' || f.id || ': balance ' || f.balance || ', ledger ' || coalesce(e.total, 0) AS what
         FROM funds f LEFT JOIN (SELECT fund_id, sum(amount) AS total FROM fund_ledger_entries GROUP BY fund_id) e
           ON e.fund_id = f.id
         WHERE f.balance <> coalesce(e.total, 0)",
    ),
    (
        "fund outstanding guaranteed = principal - principal repaid of its approved and active loans",
        "funds",
        "WITH repaid AS (
           SELECT r.loan_id, sum(a.to_principal) AS p
           FROM repayments r JOIN repayment_allocations_current a ON a.repayment_id = r.id
           WHERE NOT EXISTS (SELECT 1 FROM repayment_reversals v WHERE v.repayment_id = r.id)
           GROUP BY r.loan_id),
         owed AS (
           SELECT l.fund_id, sum(l.principal - coalesce(p.p, 0)) AS total
           FROM loans l LEFT JOIN repaid p ON p.loan_id = l.id
           WHERE l.status IN ('approved', 'active') GROUP BY l.fund_id)
         SELECT 'fund ' || f.id || ': outstanding ' || f.outstanding_guaranteed || ', loans ' || coalesce(o.total, 0) AS what
         FROM funds f LEFT JOIN owed o ON o.fund_id = f.id
         WHERE f.outstanding_guaranteed <> coalesce(o.total, 0)",
    ),
    (
        "every repayment's current allocation adds up to its amount",
        "repayments",
        "SELECT 'repayment ' || r.id || ' of loan ' || r.loan_id || ': amount ' || r.amount || ', allocated '
                || coalesce((a.to_penalty + a.to_interest + a.to_principal)::text, 'nothing') AS what
         FROM repayments r LEFT JOIN repayment_allocations_current a ON a.repayment_id = r.id
         WHERE a.repayment_id IS NULL OR a.to_penalty + a.to_interest + a.to_principal <> r.amount",
    ),
    (
        "every repayment, allocation, reversal and file row names rows that exist (repayment's loan of its bank, allocation's and reversal's repayment of its loan)",
        "repayments",
        "SELECT 'repayment ' || r.id || ': loan ' || r.loan_id || ' of bank ' || r.bank_id
                || CASE WHEN l.id IS NULL THEN ' missing' ELSE ', the loan''s bank ' || l.bank_id END AS what
         FROM repayments r LEFT JOIN loans l ON l.id = r.loan_id
         WHERE l.id IS NULL OR l.bank_id <> r.bank_id
         UNION ALL
         SELECT 'allocation ' || a.id || ': repayment ' || a.repayment_id || ' of loan ' || a.loan_id
                || CASE WHEN r.id IS NULL THEN ' missing' ELSE ', the repayment''s loan ' || r.loan_id END
         FROM repayment_allocations a LEFT JOIN repayments r ON r.id = a.repayment_id
         WHERE r.id IS NULL OR r.loan_id <> a.loan_id
         UNION ALL
         SELECT 'reversal of repayment ' || v.repayment_id || ': loan ' || v.loan_id
                || CASE WHEN r.id IS NULL THEN ', repayment missing' ELSE ', the repayment''s loan ' || r.loan_id END
         FROM repayment_reversals v LEFT JOIN repayments r ON r.id = v.repayment_id
         WHERE r.id IS NULL OR r.loan_id <> v.loan_id
         UNION ALL
         SELECT 'file ' || b.batch_id || ' row ' || b.row_no || ': loan ' || coalesce(b.loan_id::text, 'none')
                || ', repayment ' || coalesce(b.repayment_id::text, 'none')
         FROM repayment_batch_rows b LEFT JOIN loans l ON l.id = b.loan_id
         LEFT JOIN repayments r ON r.id = b.repayment_id
         WHERE (b.loan_id IS NOT NULL AND l.id IS NULL)
            OR (b.repayment_id IS NOT NULL AND (r.id IS NULL OR r.loan_id IS DISTINCT FROM b.loan_id))
         UNION ALL
         SELECT 'overdue span of loan ' || s.loan_id || ' from ' || s.starts_on || ': no such loan'
         FROM overdue_spans s WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = s.loan_id)",
    ),
    (
        "a loan's current schedule sums to its principal",
        "loans",
        "SELECT 'loan ' || l.id || ': principal ' || l.principal || ', schedule ' || coalesce(sum(i.principal), 0) AS what
         FROM loans l LEFT JOIN instalments i ON i.loan_id = l.id AND i.version = l.schedule_version
         WHERE l.disbursed_on IS NOT NULL
         GROUP BY l.id, l.principal HAVING coalesce(sum(i.principal), 0) <> l.principal",
    ),
    (
        "settled loans are repaid in full; active ones are not",
        "loans",
        "WITH repaid AS (
           SELECT r.loan_id, sum(a.to_principal) AS p
           FROM repayments r JOIN repayment_allocations_current a ON a.repayment_id = r.id
           WHERE NOT EXISTS (SELECT 1 FROM repayment_reversals v WHERE v.repayment_id = r.id)
           GROUP BY r.loan_id)
         SELECT 'loan ' || l.id || ' (' || l.status || '): principal ' || l.principal || ', repaid ' || coalesce(p.p, 0) AS what
         FROM loans l LEFT JOIN repaid p ON p.loan_id = l.id
         WHERE (l.status = 'settled' AND coalesce(p.p, 0) <> l.principal)
            OR (l.status = 'active' AND coalesce(p.p, 0) >= l.principal)",
    ),
    (
        "compensated and written-off loans have an approved claim paid by one ledger entry",
        "compensation_claims",
        "SELECT 'loan ' || l.id || ' (' || l.status || '): ' ||
                CASE WHEN c.id IS NULL THEN 'no claim'
                     WHEN c.status <> 'approved' THEN 'claim ' || c.id || ' not approved'
                     ELSE 'claim ' || c.id || ' paid ' || c.paid_amount || ', ledger ' || coalesce(e.amount::text, 'missing') END AS what
         FROM loans l
         LEFT JOIN compensation_claims c ON c.loan_id = l.id
         LEFT JOIN fund_ledger_entries e ON e.id = c.ledger_entry_id
         WHERE l.status IN ('compensated', 'written_off')
           AND (c.id IS NULL OR c.status <> 'approved' OR e.id IS NULL OR e.amount <> -c.paid_amount
                OR e.kind <> 'compensation' OR e.loan_id IS DISTINCT FROM l.id OR e.fund_id <> l.fund_id)",
    ),
    (
        "a recovery's fund part is its ledger entry, and never more in total than the fund paid",
        "recoveries",
        "SELECT 'recovery ' || r.id || ' of loan ' || r.loan_id || ': to fund ' || r.to_fund || ', ledger '
                || coalesce(e.amount::text, 'none') AS what
         FROM recoveries r LEFT JOIN fund_ledger_entries e ON e.id = r.ledger_entry_id
         WHERE (r.to_fund > 0 AND (e.id IS NULL OR e.amount <> r.to_fund OR e.kind <> 'recovery'))
            OR (r.to_fund = 0 AND e.id IS NOT NULL)
         UNION ALL
         SELECT 'loan ' || c.loan_id || ': recovered to the fund ' || sum(r.to_fund) || ', paid ' || c.paid_amount
         FROM recoveries r JOIN compensation_claims c ON c.id = r.claim_id
         GROUP BY c.loan_id, c.paid_amount HAVING sum(r.to_fund) > c.paid_amount",
    ),
    (
        "a write-off's loss = compensation paid - recovered to the fund",
        "write_offs",
        "SELECT 'loan ' || w.loan_id || ': loss ' || w.loss || ', paid ' || c.paid_amount || ', recovered ' || coalesce(r.total, 0) AS what
         FROM write_offs w JOIN compensation_claims c ON c.id = w.claim_id
         LEFT JOIN (SELECT loan_id, sum(to_fund) AS total FROM recoveries GROUP BY loan_id) r ON r.loan_id = w.loan_id
         WHERE w.compensation_paid IS DISTINCT FROM c.paid_amount
            OR w.recovered_to_fund <> coalesce(r.total, 0)
            OR w.loss <> c.paid_amount - coalesce(r.total, 0)",
    ),
    (
        "the statistics rollups (rolled up and pending) are the sums of the facts",
        "stat_due_rollups",
        "SELECT grain || ' ' || period || ' ' || region_code || '/' || bank_id || '/' || centre_id || '/' || category
                || ': rolled up ' || coalesce(c.fell_due || '/' || c.paid || '/' || c.paid_on_time || '/' || c.subsidy
                                              || '/' || c.instalments || '/' || c.subsidised, 'nothing')
                || ', facts ' || coalesce(e.fell_due || '/' || e.paid || '/' || e.paid_on_time || '/' || e.subsidy
                                          || '/' || e.instalments || '/' || e.subsidised, 'nothing') AS what
         FROM stat_due_current c FULL JOIN stat_due_expected e USING (grain, period, region_code, bank_id, centre_id, category)
         WHERE (c.fell_due, c.paid, c.paid_on_time, c.subsidy, c.instalments, c.subsidised)
               IS DISTINCT FROM (e.fell_due, e.paid, e.paid_on_time, e.subsidy, e.instalments, e.subsidised)
           AND NOT (e.fell_due IS NULL AND c.fell_due = 0 AND c.paid = 0 AND c.paid_on_time = 0 AND c.subsidy = 0
                    AND c.instalments = 0 AND c.subsidised = 0)",
    ),
    (
        "the stock rollups (rolled up and pending) are the sums of the loans' and payments' events",
        "stat_stock_rollups",
        "SELECT grain || ' ' || period || ' ' || region_code || '/' || bank_id || '/' || centre_id || '/' || category
                || ': rolled up ' || coalesce(c.issued || '/' || c.issued_amount || '/' || c.balance || '/' || c.guarantees
                                              || '/' || c.guaranteed, 'nothing')
                || ', events ' || coalesce(e.issued || '/' || e.issued_amount || '/' || e.balance || '/' || e.guarantees
                                           || '/' || e.guaranteed, 'nothing') AS what
         FROM stat_stock_current c FULL JOIN stat_stock_expected e USING (grain, period, region_code, bank_id, centre_id, category)
         WHERE (c.issued, c.issued_amount, c.balance, c.guarantees, c.guaranteed)
               IS DISTINCT FROM (e.issued, e.issued_amount, e.balance, e.guarantees, e.guaranteed)
           AND NOT (e.issued IS NULL AND c.issued = 0 AND c.issued_amount = 0 AND c.balance = 0 AND c.guarantees = 0
                    AND c.guaranteed = 0)
           AND NOT (c.issued IS NULL AND e.issued = 0 AND e.issued_amount = 0 AND e.balance = 0 AND e.guarantees = 0
                    AND e.guaranteed = 0)",
    ),
    (
        "every instalment fact carries its loan's closing date (compensated or written off)",
        "instalment_facts",
        "SELECT 'loan ' || loan_id || ' instalment ' || number || ': closed on ' || coalesce(closed_on::text, 'nothing')
                || ', the loan ' || coalesce(loan_closed_on::text, 'open') AS what
         FROM instalment_facts_closed_wrong",
    ),
    (
        "the funds' ledger by month is the sum of its entries",
        "fund_ledger_months",
        "SELECT 'fund ' || fund_id || ' ' || period || ': summed ' || coalesce(m.amount || '/' || m.contributions || '/' || m.entries, 'nothing')
                || ', entries ' || coalesce(e.amount || '/' || e.contributions || '/' || e.entries, 'nothing') AS what
         FROM fund_ledger_months m FULL JOIN fund_ledger_months_expected e USING (fund_id, period)
         WHERE (m.amount, m.contributions, m.entries) IS DISTINCT FROM (e.amount, e.contributions, e.entries)",
    ),
    (
        "each loan's overdue spans are those its facts give",
        "overdue_spans",
        "SELECT 'loan ' || loan_id || ' from ' || starts_on || ': stored '
                || coalesce(s.oldest_due || '/' || s.overdue || '/' || s.outstanding || '/' || s.maturity || ' to ' || coalesce(s.ends_on::text, 'now'), 'nothing')
                || ', facts ' || coalesce(e.oldest_due || '/' || e.overdue || '/' || e.outstanding || '/' || e.maturity || ' to ' || coalesce(e.ends_on::text, 'now'), 'nothing') AS what
         FROM (SELECT loan_id, starts_on, ends_on, oldest_due, overdue, outstanding, maturity FROM overdue_spans) s
         FULL JOIN overdue_spans_expected e USING (loan_id, starts_on)
         WHERE (s.ends_on, s.oldest_due, s.overdue, s.outstanding, s.maturity)
               IS DISTINCT FROM (e.ends_on, e.oldest_due, e.overdue, e.outstanding, e.maturity)",
    ),
    (
        "every overdue span carries its loan's region, bank, centre, category and closing date",
        "overdue_spans",
        "SELECT 'loan ' || loan_id || ' from ' || starts_on AS what FROM overdue_spans_wrong",
    ),
    (
        "every disbursed loan carries the disbursement date of its borrower's previous loan",
        "loans",
        "SELECT 'loan ' || l.id || ': ' || coalesce(l.prev_disbursed_on::text, 'none')
                || ', the borrower''s loans ' || coalesce(e.prev_disbursed_on::text, 'none') AS what
         FROM loans l JOIN loans_prev_disbursed_expected e USING (id)
         WHERE l.prev_disbursed_on IS DISTINCT FROM e.prev_disbursed_on",
    ),
    (
        "every closed loan carries its principal not repaid and its last payment's date",
        "loans",
        "SELECT 'loan ' || id || ': ' || coalesce(closed_unpaid || ' to ' || coalesce(closed_paid_until::text, 'no payment'), 'nothing')
                || ', its books ' || coalesce(books_unpaid || ' to ' || coalesce(books_paid_until::text, 'no payment'), 'nothing') AS what
         FROM loans_closed_books_wrong",
    ),
    (
        "the loans' months (issued, matured) are the sums of the loans",
        "stat_loan_months",
        "SELECT period || ' ' || region_code || '/' || bank_id || '/' || centre_id || '/' || category
                || ': summed ' || coalesce(m.issued || '/' || m.issued_amount || '/' || m.jobs || '/' || m.waiver_loans
                                           || '/' || m.waiver_amount || '/' || m.matured, 'nothing')
                || ', loans ' || coalesce(e.issued || '/' || e.issued_amount || '/' || e.jobs || '/' || e.waiver_loans
                                          || '/' || e.waiver_amount || '/' || e.matured, 'nothing') AS what
         FROM stat_loan_months m FULL JOIN stat_loan_months_expected e USING (period, region_code, bank_id, centre_id, category)
         WHERE (m.issued, m.issued_amount, m.jobs, m.waiver_loans, m.waiver_amount, m.matured)
               IS DISTINCT FROM (e.issued, e.issued_amount, e.jobs, e.waiver_loans, e.waiver_amount, e.matured)
           AND NOT (e.issued IS NULL
                    AND (m.issued, m.issued_amount, m.jobs, m.waiver_loans, m.waiver_amount, m.matured) = (0, 0, 0, 0, 0, 0))",
    ),
];

/// Runs every rule against the database at `url`. `today`: the business date for positions.
pub async fn run(url: &str, today: NaiveDate) -> anyhow::Result<Report> {
    run_with(url, today, false).await
}

/// `rebuild_facts`: first rewrite every loan's statistics facts from its entries (after a
/// migration that added them, or to repair), then check.
pub async fn run_with(url: &str, today: NaiveDate, rebuild_facts: bool) -> anyhow::Result<Report> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    // The rules join and sum whole tables; with the default 4 MB their hashes spill to disk.
    sql_query("SET work_mem = '128MB'")
        .execute(&mut conn)
        .await?;
    let mut checks = Vec::new();
    for (rule, table, query) in RULES {
        let bad: Vec<Bad> = sql_query(*query).load(&mut conn).await?;
        let checked: Count = sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result(&mut conn)
            .await?;
        checks.push(Check {
            rule,
            checked: checked.n,
            failed: bad.len(),
            failures: bad.into_iter().take(SHOWN).map(|b| b.what).collect(),
        });
    }
    let (positions, facts) = positions(&mut conn, today, rebuild_facts).await?;
    checks.push(positions);
    checks.push(facts);
    checks.push(region_totals(&mut conn, today).await?);
    Ok(Report {
        as_of: today,
        checks,
    })
}

/// Every disbursed loan's position, recomputed from its schedule and repayments, allocates
/// each repayment exactly as its current allocation row says; and its statistics facts are
/// the ones that position gives.
async fn positions(
    conn: &mut AsyncPgConnection,
    today: NaiveDate,
    rebuild_facts: bool,
) -> anyhow::Result<(Check, Check)> {
    let mut failures = Vec::new();
    let mut failed = 0_usize;
    let mut fact_failures = Vec::new();
    let mut facts_failed = 0_usize;
    let mut checked = 0_i64;
    let mut after = None;
    loop {
        let page = repo::loan::list(conn, &LoanFilter::default(), after, CHUNK).await?;
        after = page.items.last().map(|l| l.id);
        let loans: Vec<_> = page
            .items
            .into_iter()
            .filter(|l| l.disbursed_on.is_some())
            .collect();
        let ids: Vec<Uuid> = loans.iter().map(|l| l.id).collect();
        let policy_ids: Vec<Uuid> = loans.iter().map(|l| l.policy_id).collect();
        let many = repo::repayment::books_of_many(conn, &ids, &policy_ids).await?;
        let current: HashMap<Uuid, _> = repo::repayment::current_allocations(conn, &ids)
            .await?
            .into_iter()
            .map(|a| (a.repayment_id, a))
            .collect();
        let mut instalments: HashMap<Uuid, Vec<InstalmentRow>> = HashMap::new();
        for i in many.instalments {
            instalments.entry(i.loan_id).or_default().push(i);
        }
        let mut repayments: HashMap<Uuid, Vec<(RepaymentRow, bool)>> = HashMap::new();
        for r in many.repayments {
            repayments.entry(r.0.loan_id).or_default().push(r);
        }
        let policies: HashMap<Uuid, PolicyRow> =
            many.policies.into_iter().map(|p| (p.id, p)).collect();
        let extended: HashMap<Uuid, u32> = repo::compensation::extensions_of(conn, &ids)
            .await?
            .into_iter()
            .map(|e| {
                (
                    e.loan_id,
                    u32::try_from(e.first_extended).unwrap_or(u32::MAX),
                )
            })
            .collect();
        let (stored_facts, stored_payments) = repo::stats::facts_of(conn, &ids).await?;
        let mut stored: HashMap<Uuid, (Vec<InstalmentFactRow>, Vec<PrincipalPaymentRow>)> =
            HashMap::new();
        for f in stored_facts {
            stored.entry(f.loan_id).or_default().0.push(f);
        }
        for p in stored_payments {
            stored.entry(p.loan_id).or_default().1.push(p);
        }
        for loan in &loans {
            checked += 1;
            let Some(policy) = policies.get(&loan.policy_id) else {
                failed += 1;
                failures.push(format!("loan {}: policy missing", loan.id));
                continue;
            };
            let books = Books::from_rows(
                loan,
                policy,
                instalments.get(&loan.id).map_or(&[][..], Vec::as_slice),
                repayments.remove(&loan.id).unwrap_or_default(),
            )
            .map_err(|e| anyhow::anyhow!("loan {}: {e}", loan.id))?;
            let Some(books) = books else { continue };
            let counting = books
                .counting(None)
                .map_err(|e| anyhow::anyhow!("loan {}: {e}", loan.id))?;
            let as_of = crate::routes::repayments::horizon(today, &counting);
            let pos = match books.position_on(as_of) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    failed += 1;
                    failures.push(format!("loan {}: no position: {e}", loan.id));
                    continue;
                }
            };
            let want = crate::facts::facts_of(loan, policy, extended.get(&loan.id).copied(), &pos)
                .map_err(|e| anyhow::anyhow!("loan {}: {e}", loan.id))?;
            if rebuild_facts {
                // One transaction per loan: a fact and its payments change together (the
                // payments' foreign key is checked at commit).
                conn.transaction::<_, anyhow::Error, _>(async |c| {
                    repo::stats::replace_facts(c, loan.id, &want.0, &want.1).await?;
                    Ok(())
                })
                .await?;
            } else if stored.remove(&loan.id).unwrap_or_default() != want {
                facts_failed += 1;
                if fact_failures.len() < SHOWN {
                    fact_failures.push(format!(
                        "loan {}: its statistics facts are not those of its position (run `danbao verify --rebuild-facts`)",
                        loan.id
                    ));
                }
            }
            for a in &pos.allocations {
                let row = current.get(&a.repayment_id);
                let same = row.is_some_and(|r| {
                    r.to_penalty == a.to_penalty.amount()
                        && r.to_interest == a.to_interest.amount()
                        && r.to_principal == a.to_principal.amount()
                });
                if !same {
                    failed += 1;
                    if failures.len() >= SHOWN {
                        continue;
                    }
                    failures.push(format!(
                        "loan {}: repayment {} is allocated {}/{}/{} (penalty/interest/principal), its books say {}",
                        loan.id,
                        a.repayment_id,
                        a.to_penalty,
                        a.to_interest,
                        a.to_principal,
                        row.map_or("nothing".to_owned(), |r| format!(
                            "{}/{}/{}",
                            r.to_penalty, r.to_interest, r.to_principal
                        ))
                    ));
                }
            }
        }
        if !page.has_more {
            break;
        }
    }
    failures.truncate(SHOWN);
    Ok((
        Check {
            rule:
                "each loan's position, recomputed from its entries, matches its stored allocations",
            checked,
            failed,
            failures,
        },
        Check {
            rule: "each loan's statistics facts are those of its position",
            checked,
            failed: facts_failed,
            failures: fact_failures,
        },
    ))
}

/// The measures that add up over sub-regions.
fn additive(m: &crate::stats::Measures) -> [(&'static str, rust_decimal::Decimal); 12] {
    use rust_decimal::Decimal;
    [
        ("issued amount", m.issued_amount),
        ("issued count", Decimal::from(m.issued_count)),
        ("jobs created", Decimal::from(m.jobs_created)),
        (
            "cumulative issued",
            m.cumulative_issued_amount.unwrap_or_default(),
        ),
        (
            "outstanding balance",
            m.outstanding_balance.unwrap_or_default(),
        ),
        ("principal fallen due", m.cumulative_fell_due),
        ("principal repaid", m.cumulative_repaid),
        ("repaid on time", m.cumulative_repaid_on_time),
        ("overdue principal", m.overdue_principal.unwrap_or_default()),
        ("compensation paid", m.compensation_amount),
        ("fund balance", m.fund_balance.unwrap_or_default()),
        (
            "outstanding guaranteed",
            m.outstanding_guaranteed.unwrap_or_default(),
        ),
    ]
}

/// A region's figures (since the start, as of today) equal the sum of its parts: each
/// sub-region computed on its own, plus what sits at the region's own level.
async fn region_totals(conn: &mut AsyncPgConnection, today: NaiveDate) -> anyhow::Result<Check> {
    use crate::stats::{summary, GroupBy, Params, Scope};
    let parents: Vec<Bad> = sql_query(
        "SELECT DISTINCT p.code AS what FROM regions p JOIN regions c ON c.parent_code = p.code ORDER BY 1",
    )
    .load(conn)
    .await?;
    let from = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap_or(today);
    let params = |code: &str, group_by| -> anyhow::Result<Params> {
        Ok(Params {
            scope: Scope {
                region: danbao_domain::RegionCode::parse(code)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                bank_id: None,
                centre_id: None,
            },
            from,
            to: today,
            as_of: today,
            group_by,
        })
    };
    let mut failures = Vec::new();
    let mut failed = 0;
    for parent in &parents {
        let whole = summary(conn, &params(&parent.what, Some(GroupBy::Region))?).await?;
        let mut sum = additive(&crate::stats::Measures::default())
            .map(|(n, _)| (n, rust_decimal::Decimal::ZERO));
        for g in &whole.groups {
            let part = if g.key == parent.what {
                g.measures.clone()
            } else {
                summary(conn, &params(&g.key, None)?).await?.total
            };
            for (i, (name, v)) in additive(&part).into_iter().enumerate() {
                sum[i].1 += v;
                let grouped = additive(&g.measures)[i].1;
                if g.key != parent.what && grouped != v {
                    failed += 1;
                    failures.push(format!(
                        "region {}: {name} {v} on its own, {grouped} as part of {}",
                        g.key, parent.what
                    ));
                }
            }
        }
        for ((name, total), (_, parts)) in additive(&whole.total).into_iter().zip(sum) {
            if total != parts {
                failed += 1;
                failures.push(format!(
                    "region {}: {name} {total}, its parts add up to {parts}",
                    parent.what
                ));
            }
        }
    }
    failures.truncate(SHOWN);
    Ok(Check {
        rule: "a region's figures equal the sum of its sub-regions' and its own level's",
        checked: i64::try_from(parents.len()).unwrap_or(i64::MAX),
        failed,
        failures,
    })
}
