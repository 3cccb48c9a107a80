//! Every measure of domain.md's "Statistics", for a region (and everything below it), a period
//! and an as-of date, optionally grouped. One implementation: the HTTP routes, the targets and
//! `danbao verify` all call [`summary`].
//!
//! Each family of measures is one SQL statement over the books and the facts kept beside them
//! (`instalment_facts`, `principal_payments`), grouped with `GROUPING SETS ((key), ())`, so
//! the total comes from the same scan as the groups. The principal falling due (in the period
//! and since the start) and the subsidy read the rollups by month, year and cell instead
//! (migration 000011, `due_family`), corrected to the as-of date: a scan of every fact
//! ([`Source::Scan`]) is kept as the reference they are tested against. Amounts and counts
//! are sums; rates are computed last from their numerator and denominator, so groups always
//! add up to the total.
//!
//! Flows are counted on their own date: issuance on the disbursement date, principal falling
//! due and the subsidy on the instalment's due date, the count-based rate on the loan's last
//! due date, compensations on the approval date, recoveries on their value date, write-offs
//! on their date, communities on their certification date, contributions on their value date.
//! Stocks (outstanding balance, overdue and PAR, fund balance and outstanding guaranteed, the
//! communities in force, cumulative issuance) are as of the as-of date; grouped by a period
//! they have no meaning and are null in the groups (the total has them).
use chrono::{Datelike, NaiveDate};
use danbao_domain::{percent, RegionCode, RegionLevel};
use danbao_persistence::diesel::sql_types::{Date, Nullable, Numeric, Text, Uuid as SqlUuid};
use danbao_persistence::diesel::{sql_query, QueryableByName};
use danbao_persistence::diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// How to group the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The next level down of the region (cities of a province, counties of a city).
    Region,
    Bank,
    Centre,
    Category,
    Month,
    Quarter,
    Year,
}

impl GroupBy {
    fn is_time(self) -> bool {
        matches!(self, GroupBy::Month | GroupBy::Quarter | GroupBy::Year)
    }
}

/// What to count: the caller's scope already applied.
#[derive(Debug, Clone)]
pub struct Scope {
    pub region: RegionCode,
    pub bank_id: Option<Uuid>,
    pub centre_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub scope: Scope,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
    pub group_by: Option<GroupBy>,
}

/// Every measure. `None`: not meaningful for this group (a stock grouped by a period, fund
/// figures grouped by bank or category) or a rate with a zero denominator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Measures {
    /// Loans disbursed in the period (up to the as-of date).
    pub issued_count: i64,
    #[schema(value_type = String)]
    pub issued_amount: Decimal,
    /// Distinct borrowers of those loans (within the group).
    pub borrowers_helped: i64,
    /// Jobs declared by those loans.
    pub jobs_created: i64,
    /// Of those, loans with a credit-community waiver (no counter-guarantee).
    pub waiver_loans: i64,
    #[schema(value_type = String)]
    pub waiver_amount: Decimal,
    /// Disbursed since the start, up to the end of the period.
    pub cumulative_issued_count: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub cumulative_issued_amount: Option<Decimal>,
    /// 贷款余额: principal not repaid on the as-of date, of loans not compensated by then.
    #[schema(value_type = Option<String>)]
    pub outstanding_balance: Option<Decimal>,
    /// Repayment rate on the period: principal that fell due in it (up to the as-of date)...
    #[schema(value_type = String)]
    pub fell_due: Decimal,
    /// ...of it repaid by the as-of date...
    #[schema(value_type = String)]
    pub repaid: Decimal,
    /// ...and repaid by its due date + the policy's grace days.
    #[schema(value_type = String)]
    pub repaid_on_time: Decimal,
    /// `repaid / fell_due`, percent with two decimals.
    #[schema(value_type = Option<String>)]
    pub collection_rate: Option<Decimal>,
    /// `repaid_on_time / fell_due`, percent.
    #[schema(value_type = Option<String>)]
    pub on_time_rate: Option<Decimal>,
    /// Loans whose last instalment fell due in the period...
    pub loans_matured: i64,
    /// ...and of them, those repaid in full by the as-of date.
    pub loans_repaid_in_full: i64,
    /// `loans_repaid_in_full / loans_matured`, percent.
    #[schema(value_type = Option<String>)]
    pub count_rate: Option<Decimal>,
    /// The same since the start (principal due up to the end of the period).
    #[schema(value_type = String)]
    pub cumulative_fell_due: Decimal,
    #[schema(value_type = String)]
    pub cumulative_repaid: Decimal,
    #[schema(value_type = String)]
    pub cumulative_repaid_on_time: Decimal,
    #[schema(value_type = Option<String>)]
    pub cumulative_collection_rate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub cumulative_on_time_rate: Option<Decimal>,
    /// Active loans with something past due on the as-of date.
    pub overdue_loans: Option<i64>,
    /// Their principal past due and unpaid.
    #[schema(value_type = Option<String>)]
    pub overdue_principal: Option<Decimal>,
    /// Outstanding principal of loans 1-30, 31-90 and over 90 days past due.
    #[schema(value_type = Option<String>)]
    pub overdue_1_30: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub overdue_31_90: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub overdue_over_90: Option<Decimal>,
    /// Portfolio at risk: outstanding principal of loans more than 30 / 90 days past due.
    #[schema(value_type = Option<String>)]
    pub par30: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub par90: Option<Decimal>,
    /// Compensations approved in the period and what the funds paid.
    pub compensations: i64,
    #[schema(value_type = String)]
    pub compensation_amount: Decimal,
    /// `compensation_amount / fell_due`, percent.
    #[schema(value_type = Option<String>)]
    pub compensation_rate: Option<Decimal>,
    /// Recovered in the period, and the funds' part of it.
    #[schema(value_type = String)]
    pub recovered: Decimal,
    #[schema(value_type = String)]
    pub recovered_to_fund: Decimal,
    /// Write-offs in the period and the funds' loss.
    pub write_offs: i64,
    #[schema(value_type = String)]
    pub written_off_loss: Decimal,
    /// Credit communities certified in the period (null for a bank or a category).
    pub new_credit_communities: Option<i64>,
    /// Certified and not revoked at the end of the period.
    pub credit_communities: Option<i64>,
    /// Fund money (null for a bank or a category): contributions in the period...
    #[schema(value_type = Option<String>)]
    pub contributions: Option<Decimal>,
    /// ...since the start, balance and outstanding guaranteed on the as-of date...
    #[schema(value_type = Option<String>)]
    pub contributions_total: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub fund_balance: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub outstanding_guaranteed: Option<Decimal>,
    /// ...and `outstanding_guaranteed / fund_balance`, four decimals.
    #[schema(value_type = Option<String>)]
    pub actual_leverage: Option<Decimal>,
    /// Interest subsidy owed on instalments due in the period and paid on time by the as-of
    /// date (micro-profit loans, not in extension).
    #[schema(value_type = String)]
    pub subsidy: Decimal,
}

/// Money with exactly two decimals, as everywhere in the API (`"0.00"`, not `"0"`).
fn cents(d: &mut Decimal) {
    *d = d.round_dp(2);
    d.rescale(2);
}

impl Measures {
    /// The principal fallen due, repaid by the as-of date and repaid on time (a due family's
    /// `a`, `b`, `c`): in the period, or since the start (`cumulative`).
    fn set_due(&mut self, cumulative: bool, (due, repaid, on_time): (Decimal, Decimal, Decimal)) {
        if cumulative {
            self.cumulative_fell_due = due;
            self.cumulative_repaid = repaid;
            self.cumulative_repaid_on_time = on_time;
        } else {
            self.fell_due = due;
            self.repaid = repaid;
            self.repaid_on_time = on_time;
        }
    }

    fn finish(&mut self) {
        for d in [
            &mut self.issued_amount,
            &mut self.waiver_amount,
            &mut self.fell_due,
            &mut self.repaid,
            &mut self.repaid_on_time,
            &mut self.cumulative_fell_due,
            &mut self.cumulative_repaid,
            &mut self.cumulative_repaid_on_time,
            &mut self.compensation_amount,
            &mut self.recovered,
            &mut self.recovered_to_fund,
            &mut self.written_off_loss,
            &mut self.subsidy,
        ] {
            cents(d);
        }
        for d in [
            &mut self.cumulative_issued_amount,
            &mut self.outstanding_balance,
            &mut self.overdue_principal,
            &mut self.overdue_1_30,
            &mut self.overdue_31_90,
            &mut self.overdue_over_90,
            &mut self.par30,
            &mut self.par90,
            &mut self.contributions,
            &mut self.contributions_total,
            &mut self.fund_balance,
            &mut self.outstanding_guaranteed,
        ]
        .into_iter()
        .flatten()
        {
            cents(d);
        }
        self.collection_rate = percent(self.repaid, self.fell_due);
        self.on_time_rate = percent(self.repaid_on_time, self.fell_due);
        self.count_rate = percent(
            Decimal::from(self.loans_repaid_in_full),
            Decimal::from(self.loans_matured),
        );
        self.cumulative_collection_rate = percent(self.cumulative_repaid, self.cumulative_fell_due);
        self.cumulative_on_time_rate =
            percent(self.cumulative_repaid_on_time, self.cumulative_fell_due);
        self.compensation_rate = percent(self.compensation_amount, self.fell_due);
        self.actual_leverage = match (self.outstanding_guaranteed, self.fund_balance) {
            (Some(o), Some(b)) if !b.is_zero() => Some((o / b).round_dp(4)),
            _ => None,
        };
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Group {
    pub key: String,
    /// The region's, bank's or centre's name; the period or category otherwise.
    pub label: String,
    #[serde(flatten)]
    pub measures: Measures,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    pub region: String,
    pub bank_id: Option<Uuid>,
    pub centre_id: Option<Uuid>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
    pub group_by: Option<GroupBy>,
    pub total: Measures,
    pub groups: Vec<Group>,
}

/// The columns a family's key is built from. `None`: the family has no such column.
struct Cols {
    region: Option<&'static str>,
    bank: Option<&'static str>,
    centre: Option<&'static str>,
    category: Option<&'static str>,
    /// The family's date; `None` for a stock.
    date: Option<&'static str>,
}

/// The SQL expression of the group key, or `None` when the family cannot be grouped so.
/// Only these fixed fragments ever reach the SQL text.
fn key_sql(p: &Params, c: &Cols) -> Option<String> {
    let Some(g) = p.group_by else {
        return Some("'total'".into());
    };
    let time = |fmt: &str| c.date.map(|d| format!("to_char({d}, '{fmt}')"));
    match g {
        GroupBy::Region => c.region.map(|r| match p.scope.region.level() {
            RegionLevel::Province => format!("left({r}, 4) || '00'"),
            RegionLevel::City | RegionLevel::County => r.to_owned(),
        }),
        GroupBy::Bank => c.bank.map(|b| format!("{b}::text")),
        GroupBy::Centre => c.centre.map(|x| format!("{x}::text")),
        GroupBy::Category => c.category.map(str::to_owned),
        GroupBy::Month => time("YYYY-MM"),
        GroupBy::Quarter => time("YYYY-\"Q\"Q"),
        GroupBy::Year => time("YYYY"),
    }
}

/// The key expression and whether its rows are groups: a family that cannot be grouped so
/// (or no grouping at all) is still counted, for the total only.
fn key(p: &Params, c: &Cols) -> (String, bool) {
    match (p.group_by, key_sql(p, c)) {
        (Some(_), Some(k)) => (k, true),
        _ => ("'total'::text".to_owned(), false),
    }
}

/// Binds shared by every statement: $1 region pattern, $2 bank, $3 centre, $4 from, $5 to,
/// $6 as-of.
macro_rules! bound {
    ($sql:expr, $p:expr) => {
        sql_query($sql)
            .bind::<Text, _>(format!("{}%", $p.scope.region.subtree_prefix()))
            .bind::<Nullable<SqlUuid>, _>($p.scope.bank_id)
            .bind::<Nullable<SqlUuid>, _>($p.scope.centre_id)
            .bind::<Date, _>($p.from)
            .bind::<Date, _>($p.to)
            .bind::<Date, _>($p.as_of)
    };
}

const LOAN_SCOPE: &str =
    "l.region_code LIKE $1 AND ($2::uuid IS NULL OR l.bank_id = $2) AND ($3::uuid IS NULL OR l.centre_id = $3)";

const LOAN_COLS: Cols = Cols {
    region: Some("l.region_code"),
    bank: Some("l.bank_id"),
    centre: Some("l.centre_id"),
    category: Some("l.category"),
    date: None,
};

/// The columns of an overdue span (its loan's cell, carried on it).
const SPAN_COLS: Cols = Cols {
    region: Some("s.region_code"),
    bank: Some("s.bank_id"),
    centre: Some("s.centre_id"),
    category: Some("s.category"),
    date: None,
};

fn loan_cols(date: Option<&'static str>) -> Cols {
    Cols { date, ..LOAN_COLS }
}

#[derive(QueryableByName)]
struct Row5 {
    #[diesel(sql_type = Nullable<Text>)]
    k: Option<String>,
    #[diesel(sql_type = Numeric)]
    a: Decimal,
    #[diesel(sql_type = Numeric)]
    b: Decimal,
    #[diesel(sql_type = Numeric)]
    c: Decimal,
    #[diesel(sql_type = Numeric)]
    d: Decimal,
    #[diesel(sql_type = Numeric)]
    e: Decimal,
    #[diesel(sql_type = Numeric)]
    f: Decimal,
}

type Acc = BTreeMap<Option<String>, Measures>;

/// Runs a statement selecting `k` and up to six numeric columns `a`..`f` (pad with 0).
async fn rows(conn: &mut AsyncPgConnection, sql: String, p: &Params) -> anyhow::Result<Vec<Row5>> {
    use anyhow::Context;
    bound!(sql.clone(), p)
        .load::<Row5>(conn)
        .await
        .with_context(|| format!("statistics query failed: {sql}"))
}

fn int(d: Decimal) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX)
}

/// Principal of loan `l` repaid by the as-of date. A loan settled by then is repaid in full
/// (its last payment is on or before its release), so only the others (a small share of a
/// long history) need their payments summed.
const PAID_BY_AS_OF: &str =
    "(CASE WHEN l.status = 'settled' AND l.released_on <= $6 THEN l.principal
     ELSE coalesce((SELECT sum(pp.principal) FROM principal_payments pp
                    WHERE pp.loan_id = l.id AND pp.value_date <= $6), 0) END)";

/// All the principal of loan `l`'s instalments (its principal; NULL for a loan without
/// facts, which the count-based rate, like the overdue spans, counts as owing nothing).
const FELL_DUE_IN_ALL: &str =
    "(SELECT sum(fa.principal) FROM instalment_facts fa WHERE fa.loan_id = l.id)";

/// Principal of instalment `f` repaid by `by` (an SQL date expression). An instalment paid in
/// full by then needs no look at its payments; most are, so most rows cost no lookup.
fn instalment_paid_by(by: &str) -> String {
    format!(
        "(CASE WHEN f.paid_on <= {by} THEN f.principal
           ELSE coalesce((SELECT sum(pp.principal) FROM principal_payments pp
                          WHERE pp.loan_id = f.loan_id AND pp.number = f.number AND pp.value_date <= {by}), 0) END)"
    )
}

/// The figures for `p`, all from one snapshot: families read in one read-only repeatable-read
/// transaction, so the groups add up to the total even while repayments are being written.
pub async fn summary(conn: &mut AsyncPgConnection, p: &Params) -> anyhow::Result<Summary> {
    summary_with(conn, p, Source::Rollups).await
}

/// Where the families of principal falling due and the stocks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The rollups by month and cell, corrected to the as-of date (what [`summary`] uses).
    Rollups,
    /// A scan of every instalment fact in the period and of every loan: the reference the
    /// rollups are tested against.
    Scan,
}

/// Which measures to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    All,
    /// The repayment rates only (by amount and by count, period and cumulative): the other
    /// measures are left at their defaults.
    RepaymentRate,
}

/// The repayment-rate measures of [`summary`] (its other measures are not computed).
pub async fn repayment_rate(conn: &mut AsyncPgConnection, p: &Params) -> anyhow::Result<Summary> {
    summary_of(conn, p, Source::Rollups, Families::RepaymentRate).await
}

/// [`summary`], reading the principal falling due from `source`.
pub async fn summary_with(
    conn: &mut AsyncPgConnection,
    p: &Params,
    source: Source,
) -> anyhow::Result<Summary> {
    summary_of(conn, p, source, Families::All).await
}

async fn summary_of(
    conn: &mut AsyncPgConnection,
    p: &Params,
    source: Source,
    families: Families,
) -> anyhow::Result<Summary> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run::<_, anyhow::Error, _>(async |conn| {
            // These scans' cost estimates cross PostgreSQL's JIT thresholds, and compiling
            // them cost more than running them (1.2 s of a 1.4 s statement, measured). A year
            // of a province's loans is sorted and hashed here: with the default 4 MB of
            // work_mem the sorts spilled to disk (measured at a million loans). Starting
            // parallel workers cost more than the few thousand rows they shared (30 ms).
            sql_query(
                "SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true),
                        set_config('max_parallel_workers_per_gather', '0', true)",
            )
            .execute(conn)
            .await?;
            summary_in(conn, p, source, families).await
        })
        .await
}

async fn summary_in(
    conn: &mut AsyncPgConnection,
    p: &Params,
    source: Source,
    families: Families,
) -> anyhow::Result<Summary> {
    let mut acc: Acc = BTreeMap::new();
    let stock_groups = p.group_by.is_none_or(|g| !g.is_time());
    let hi = "LEAST($5, $6)";
    // The period's whole months and the days around them, for the loans' months.
    let months = split(p.from, p.to.min(p.as_of), p.to.min(p.as_of), false);

    // Principal falling due: in the period, and since the start; the subsidy.
    if source == Source::Rollups {
        due_families(conn, p, &mut acc).await?;
    } else {
        let (k, grouped) = key(p, &loan_cols(Some("f.due_date")));
        let by_as_of = instalment_paid_by("$6");
        let on_time = instalment_paid_by("LEAST(f.due_date + po.grace_days, $6)");
        for (lo, cumulative) in [("$4", false), ("DATE '0001-01-01'", true)] {
            let sql = format!(
                "SELECT {k} AS k, coalesce(sum(f.principal), 0) AS a,
                        coalesce(sum({by_as_of}), 0) AS b, coalesce(sum({on_time}), 0) AS c,
                        0::numeric AS d, 0::numeric AS e, 0::numeric AS f
                 FROM instalment_facts f JOIN loans l ON l.id = f.loan_id JOIN policies po ON po.id = l.policy_id
                 WHERE {LOAN_SCOPE} AND f.due_date BETWEEN {lo} AND {hi}
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            for r in rows(conn, sql, p).await? {
                if r.k.is_some() && !grouped {
                    continue;
                }
                acc.entry(r.k)
                    .or_default()
                    .set_due(cumulative, (r.a, r.b, r.c));
            }
        }
    }
    // Count-based: loans whose last instalment fell due in the period.
    {
        let (k, grouped) = key(p, &loan_cols(Some("l.maturity_date")));
        let sql = if source == Source::Rollups {
            // Matured loans are counted by month (migration 000019) and, for the days around
            // the whole months, from an index; those not repaid in full by the as-of date are
            // few. Matured before it, they are the loans overdue on it with
            // principal not repaid (their overdue spans) and the loans closed by then
            // (compensated or written off); matured on it, they are looked at one by one.
            format!(
                "SELECT {k} AS k, coalesce(sum(l.matured), 0)::numeric AS a, coalesce(sum(l.unpaid), 0)::numeric AS b,
                        0::numeric AS c, 0::numeric AS d, 0::numeric AS e, 0::numeric AS f
                 FROM (
                   SELECT m.region_code, m.bank_id, m.centre_id, m.category, m.period AS maturity_date,
                          m.matured, 0 AS unpaid
                   FROM stat_loan_months m WHERE m.period >= $7 AND m.period < $8 AND m.matured > 0
                   UNION ALL
                   SELECT l.region_code, l.bank_id, l.centre_id, l.category, l.maturity_date, 1, 0
                   FROM loans l
                   WHERE l.disbursed_on IS NOT NULL
                     AND (l.maturity_date BETWEEN $9 AND $10 OR l.maturity_date BETWEEN $11 AND $12)
                   UNION ALL
                   SELECT s.region_code, s.bank_id, s.centre_id, s.category, s.maturity, 0, 1
                   FROM overdue_spans s
                   WHERE danbao_overdue_live(s.starts_on, s.ends_on, s.closed_on) @> $6 AND s.outstanding > 0
                     AND s.maturity BETWEEN $4 AND {hi} AND s.maturity < $6
                     -- (The same days as a range, for the index on both: migration 000021;
                     -- never an upper bound below the lower, which would be an error.)
                     AND daterange(s.maturity, s.maturity, '[]') <@ daterange($4, GREATEST($4, {hi}), '[]')
                   UNION ALL
                   -- (`coalesce`: the partial index finds these. A comparison of the release
                   -- date itself, even `released_on + 0`, implies it is not null, and the
                   -- planner then also reads the index on the release, which holds most
                   -- loans: 800,000 entries and 62 ms for nothing.) A closed loan carries
                   -- what it left unpaid (migration 000020); its payments are summed only
                   -- when the as-of date falls before its last one.
                   SELECT l.region_code, l.bank_id, l.centre_id, l.category, l.maturity_date, 0, 1
                   FROM loans l
                   WHERE l.status IN ('compensated', 'written_off') AND coalesce(l.released_on, DATE '9999-12-31') <= $6
                     AND l.disbursed_on IS NOT NULL AND l.maturity_date BETWEEN $4 AND {hi}
                     AND CASE WHEN l.closed_paid_until > $6 THEN {PAID_BY_AS_OF} < {FELL_DUE_IN_ALL}
                              ELSE l.closed_unpaid > 0 END
                   UNION ALL
                   SELECT l.region_code, l.bank_id, l.centre_id, l.category, l.maturity_date, 0, 1
                   FROM loans l
                   WHERE l.disbursed_on IS NOT NULL AND l.maturity_date = $6 AND l.maturity_date BETWEEN $4 AND {hi}
                     AND NOT (l.status IN ('compensated', 'written_off') AND l.released_on <= $6)
                     AND {PAID_BY_AS_OF} < {FELL_DUE_IN_ALL}
                 ) l
                 WHERE {LOAN_SCOPE}
                 GROUP BY GROUPING SETS (({k}), ())"
            )
        } else {
            format!(
                "SELECT {k} AS k, count(*)::numeric AS a,
                        (count(*) FILTER (WHERE NOT {PAID_BY_AS_OF} >= {FELL_DUE_IN_ALL}))::numeric AS b,
                        0::numeric AS c, 0::numeric AS d, 0::numeric AS e, 0::numeric AS f
                 FROM loans l
                 WHERE {LOAN_SCOPE} AND l.disbursed_on IS NOT NULL AND l.maturity_date BETWEEN $4 AND {hi}
                 GROUP BY GROUPING SETS (({k}), ())"
            )
        };
        let found = if source == Source::Rollups {
            month_rows(conn, sql, p, &months).await?
        } else {
            rows(conn, sql, p).await?
        };
        for r in found {
            if r.k.is_some() && !grouped {
                continue;
            }
            let m = acc.entry(r.k).or_default();
            m.loans_matured = int(r.a);
            // (b: those not repaid in full by the as-of date.)
            m.loans_repaid_in_full = int(r.a - r.b);
        }
    }
    if families == Families::RepaymentRate {
        return assemble(conn, p, acc).await;
    }
    // Issuance in the period.
    {
        let (k, grouped) = key(p, &loan_cols(Some("l.disbursed_on")));
        let found = if source == Source::Rollups {
            // The whole months from their sums (migration 000019), the days around them from
            // the loans. Borrowers helped are counted below.
            let sql = format!(
                "SELECT {k} AS k, coalesce(sum(l.a), 0)::numeric AS a, coalesce(sum(l.b), 0) AS b,
                        0::numeric AS c, coalesce(sum(l.d), 0)::numeric AS d,
                        coalesce(sum(l.e), 0)::numeric AS e, coalesce(sum(l.f), 0) AS f
                 FROM (
                   SELECT m.region_code, m.bank_id, m.centre_id, m.category, m.period AS disbursed_on,
                          m.issued AS a, m.issued_amount AS b, m.jobs AS d, m.waiver_loans AS e, m.waiver_amount AS f
                   FROM stat_loan_months m WHERE m.period >= $7 AND m.period < $8 AND m.issued > 0
                   UNION ALL
                   SELECT l.region_code, l.bank_id, l.centre_id, l.category, l.disbursed_on, 1, l.principal,
                          l.jobs_declared, CASE WHEN l.waiver THEN 1 ELSE 0 END,
                          CASE WHEN l.waiver THEN l.principal ELSE 0 END
                   FROM loans l WHERE l.disbursed_on BETWEEN $9 AND $10 OR l.disbursed_on BETWEEN $11 AND $12
                 ) l
                 WHERE {LOAN_SCOPE}
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            month_rows(conn, sql, p, &months).await?
        } else {
            let sql = format!(
                "SELECT {k} AS k, count(*)::numeric AS a, coalesce(sum(l.principal), 0) AS b,
                        count(DISTINCT l.borrower_id)::numeric AS c, coalesce(sum(l.jobs_declared), 0)::numeric AS d,
                        (count(*) FILTER (WHERE l.waiver))::numeric AS e, coalesce(sum(l.principal) FILTER (WHERE l.waiver), 0) AS f
                 FROM loans l WHERE {LOAN_SCOPE} AND l.disbursed_on BETWEEN $4 AND {hi}
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            rows(conn, sql, p).await?
        };
        for r in found {
            if r.k.is_some() && !grouped {
                continue;
            }
            let m = acc.entry(r.k).or_default();
            m.issued_count = int(r.a);
            m.issued_amount = r.b;
            m.borrowers_helped = int(r.c);
            m.jobs_created = int(r.d);
            m.waiver_loans = int(r.e);
            m.waiver_amount = r.f;
        }
        if source == Source::Rollups {
            // A borrower with one loan in the period is one borrower helped. Those with more
            // are found from their later loans, whose previous loan is then in the period too
            // (migration 000018), and only their loans are counted distinct.
            let sql = format!(
                "SELECT {k} AS k, count(*)::numeric AS a, count(DISTINCT l.borrower_id)::numeric AS b,
                        0::numeric AS c, 0::numeric AS d, 0::numeric AS e, 0::numeric AS f
                 FROM loans l
                 WHERE {LOAN_SCOPE} AND l.disbursed_on BETWEEN $4 AND {hi}
                   AND l.borrower_id IN (SELECT r.borrower_id FROM loans r
                                         WHERE r.prev_disbursed_on >= $4 AND r.disbursed_on <= {hi})
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            for m in acc.values_mut() {
                m.borrowers_helped = m.issued_count;
            }
            for r in rows(conn, sql, p).await? {
                if r.k.is_some() && !grouped {
                    continue;
                }
                if let Some(m) = acc.get_mut(&r.k) {
                    m.borrowers_helped -= int(r.a - r.b);
                }
            }
        }
    }
    // Stocks on loans: cumulative issuance, outstanding balance (and outstanding guaranteed).
    if source == Source::Rollups {
        stock_families(conn, p, &mut acc).await?;
    } else {
        let (k, grouped) = key(p, &loan_cols(None));
        let sql = format!(
            "SELECT {k} AS k,
                    (count(*) FILTER (WHERE l.disbursed_on <= {hi}))::numeric AS a,
                    coalesce(sum(l.principal) FILTER (WHERE l.disbursed_on <= {hi}), 0) AS b,
                    coalesce(sum(l.principal - {PAID_BY_AS_OF}) FILTER (WHERE
                      l.disbursed_on <= $6 AND NOT (l.status IN ('compensated', 'written_off') AND l.released_on <= $6)), 0) AS c,
                    0::numeric AS d, 0::numeric AS e, 0::numeric AS f
             FROM loans l
             WHERE {LOAN_SCOPE} AND l.disbursed_on IS NOT NULL
             GROUP BY GROUPING SETS (({k}), ())"
        );
        for r in rows(conn, sql, p).await? {
            if r.k.is_some() && !grouped {
                continue;
            }
            if r.k.is_some() && !stock_groups {
                continue;
            }
            let m = acc.entry(r.k).or_default();
            m.cumulative_issued_count = Some(int(r.a));
            m.cumulative_issued_amount = Some(r.b);
            m.outstanding_balance = Some(r.c);
        }
    }
    // Overdue on the as-of date, by days past due of the oldest unpaid instalment.
    {
        let (k, grouped) = if source == Source::Rollups {
            key(p, &SPAN_COLS)
        } else {
            key(p, &loan_cols(None))
        };
        // The rollups' source reads the loans overdue on the date from their overdue spans
        // (migration 000016); the scan reads every instalment not paid by then.
        let sql = if source == Source::Rollups {
            format!(
                "SELECT {k} AS k, count(*)::numeric AS a, coalesce(sum(s.overdue), 0) AS b,
                        coalesce(sum(s.outstanding) FILTER (WHERE $6 - s.oldest_due BETWEEN 1 AND 30), 0) AS c,
                        coalesce(sum(s.outstanding) FILTER (WHERE $6 - s.oldest_due BETWEEN 31 AND 90), 0) AS d,
                        coalesce(sum(s.outstanding) FILTER (WHERE $6 - s.oldest_due > 90), 0) AS e, 0::numeric AS f
                 FROM overdue_spans s
                 WHERE danbao_overdue_live(s.starts_on, s.ends_on, s.closed_on) @> $6
                   AND s.region_code LIKE $1 AND ($2::uuid IS NULL OR s.bank_id = $2) AND ($3::uuid IS NULL OR s.centre_id = $3)
                 GROUP BY GROUPING SETS (({k}), ())"
            )
        } else {
            overdue_scan_sql(&k)
        };
        for r in rows(conn, sql, p).await? {
            if r.k.is_some() && !grouped {
                continue;
            }
            if r.k.is_some() && !stock_groups {
                continue;
            }
            let m = acc.entry(r.k).or_default();
            m.overdue_loans = Some(int(r.a));
            m.overdue_principal = Some(r.b);
            m.overdue_1_30 = Some(r.c);
            m.overdue_31_90 = Some(r.d);
            m.overdue_over_90 = Some(r.e);
        }
    }
    // Compensations, recoveries, write-offs in the period.
    for (date, from_where, setter) in [
        (
            "c.approved_on",
            "compensation_claims c JOIN loans l ON l.id = c.loan_id WHERE c.status = 'approved' AND c.approved_on",
            0,
        ),
        (
            "r.value_date",
            "recoveries r JOIN loans l ON l.id = r.loan_id WHERE r.value_date",
            1,
        ),
        (
            "w.written_off_on",
            "write_offs w JOIN loans l ON l.id = w.loan_id WHERE w.written_off_on",
            2,
        ),
    ] {
        let (k, grouped) = key(p, &loan_cols(Some(date)));
        let values = match setter {
            0 => "count(*)::numeric AS a, coalesce(sum(c.paid_amount), 0) AS b",
            1 => "count(*)::numeric AS a, coalesce(sum(r.amount), 0) AS b, coalesce(sum(r.to_fund), 0) AS c",
            _ => "count(*)::numeric AS a, coalesce(sum(w.loss), 0) AS b",
        };
        let pad = if setter == 1 {
            "0::numeric AS d, 0::numeric AS e, 0::numeric AS f"
        } else {
            "0::numeric AS c, 0::numeric AS d, 0::numeric AS e, 0::numeric AS f"
        };
        let sql = format!(
            "SELECT {k} AS k, {values}, {pad} FROM {from_where} BETWEEN $4 AND {hi} AND {LOAN_SCOPE}
             GROUP BY GROUPING SETS (({k}), ())"
        );
        for r in rows(conn, sql, p).await? {
            if r.k.is_some() && !grouped {
                continue;
            }
            let m = acc.entry(r.k).or_default();
            match setter {
                0 => {
                    m.compensations = int(r.a);
                    m.compensation_amount = r.b;
                }
                1 => {
                    m.recovered = r.b;
                    m.recovered_to_fund = r.c;
                }
                _ => {
                    m.write_offs = int(r.a);
                    m.written_off_loss = r.b;
                }
            }
        }
    }
    // Interest subsidy on instalments due in the period, paid on time.
    if source == Source::Scan {
        let (k, grouped) = key(p, &loan_cols(Some("f.due_date")));
        let sql = format!(
            "SELECT {k} AS k, coalesce(sum(f.subsidy), 0) AS a, 0::numeric AS b, 0::numeric AS c,
                    0::numeric AS d, 0::numeric AS e, 0::numeric AS f
             FROM instalment_facts f JOIN loans l ON l.id = f.loan_id JOIN policies po ON po.id = l.policy_id
             WHERE {LOAN_SCOPE} AND f.due_date BETWEEN $4 AND $5 AND NOT f.extended
               AND f.paid_on <= LEAST(f.due_date + po.grace_days, $6)
             GROUP BY GROUPING SETS (({k}), ())"
        );
        for r in rows(conn, sql, p).await? {
            if r.k.is_some() && !grouped {
                continue;
            }
            acc.entry(r.k).or_default().subsidy = r.a;
        }
    }
    // Communities and funds belong to centres, not to banks or categories.
    if p.scope.bank_id.is_none() {
        let community = Cols {
            region: Some("cc.region_code"),
            bank: None,
            centre: Some("cc.centre_id"),
            category: None,
            date: Some("cc.certified_on"),
        };
        let scope = "cc.region_code LIKE $1 AND ($2::uuid IS NULL OR TRUE) AND ($3::uuid IS NULL OR cc.centre_id = $3)";
        {
            let (k, grouped) = key(p, &community);
            let sql = format!(
                "SELECT {k} AS k, count(*)::numeric AS a, 0::numeric AS b, 0::numeric AS c, 0::numeric AS d,
                        0::numeric AS e, 0::numeric AS f
                 FROM credit_communities cc WHERE {scope} AND cc.certified_on BETWEEN $4 AND {hi}
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            for r in rows(conn, sql, p).await? {
                if r.k.is_some() && !grouped {
                    continue;
                }
                acc.entry(r.k).or_default().new_credit_communities = Some(int(r.a));
            }
        }
        {
            let (k, grouped) = key(
                p,
                &Cols {
                    date: None,
                    ..community
                },
            );
            let sql = format!(
                "SELECT {k} AS k, count(*)::numeric AS a, 0::numeric AS b, 0::numeric AS c, 0::numeric AS d,
                        0::numeric AS e, 0::numeric AS f
                 FROM credit_communities cc WHERE {scope} AND cc.certified_on <= {hi}
                   AND (cc.revoked_on IS NULL OR cc.revoked_on > {hi})
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            for r in rows(conn, sql, p).await? {
                if r.k.is_some() && !grouped {
                    continue;
                }
                if r.k.is_some() && !stock_groups {
                    continue;
                }
                acc.entry(r.k).or_default().credit_communities = Some(int(r.a));
            }
        }
        let ledger = Cols {
            region: Some("c.region_code"),
            bank: None,
            centre: Some("fu.centre_id"),
            category: None,
            date: Some("e.value_date"),
        };
        let scope = "c.region_code LIKE $1 AND ($2::uuid IS NULL OR TRUE) AND ($3::uuid IS NULL OR fu.centre_id = $3)";
        {
            let (k, grouped) = key(p, &ledger);
            let sql = format!(
                "SELECT {k} AS k, coalesce(sum(e.amount), 0) AS a, 0::numeric AS b, 0::numeric AS c,
                        0::numeric AS d, 0::numeric AS e, 0::numeric AS f
                 FROM fund_ledger_entries e JOIN funds fu ON fu.id = e.fund_id JOIN centres c ON c.id = fu.centre_id
                 WHERE {scope} AND e.kind = 'contribution' AND e.value_date BETWEEN $4 AND {hi}
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            for r in rows(conn, sql, p).await? {
                if r.k.is_some() && !grouped {
                    continue;
                }
                acc.entry(r.k).or_default().contributions = Some(r.a);
            }
        }
        {
            let (k, grouped) = key(
                p,
                &Cols {
                    date: None,
                    ..ledger
                },
            );
            // The rollups' source reads the months before the as-of date's month from their
            // sums (migration 000017) and the entries of its month; the scan every entry.
            let entries = if source == Source::Rollups {
                "(SELECT fund_id, contributions, amount FROM fund_ledger_months
                  WHERE period < date_trunc('month', $6::date)::date
                  UNION ALL
                  SELECT fund_id, CASE WHEN kind = 'contribution' THEN amount ELSE 0 END, amount
                  FROM fund_ledger_entries
                  WHERE value_date >= date_trunc('month', $6::date)::date AND value_date <= $6)"
            } else {
                "(SELECT fund_id, CASE WHEN kind = 'contribution' THEN amount ELSE 0 END AS contributions, amount
                  FROM fund_ledger_entries WHERE value_date <= $6)"
            };
            let sql = format!(
                "SELECT {k} AS k, coalesce(sum(e.contributions), 0) AS a,
                        coalesce(sum(e.amount), 0) AS b, 0::numeric AS c, 0::numeric AS d, 0::numeric AS e,
                        0::numeric AS f
                 FROM {entries} e (fund_id, contributions, amount)
                 JOIN funds fu ON fu.id = e.fund_id JOIN centres c ON c.id = fu.centre_id
                 WHERE {scope}
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            for r in rows(conn, sql, p).await? {
                if r.k.is_some() && !grouped {
                    continue;
                }
                if r.k.is_some() && !stock_groups {
                    continue;
                }
                let m = acc.entry(r.k).or_default();
                m.contributions_total = Some(r.a);
                m.fund_balance = Some(r.b);
            }
        }
        let guaranteed = Cols {
            region: Some("l.region_code"),
            bank: None,
            centre: Some("l.centre_id"),
            category: None,
            date: None,
        };
        if source == Source::Scan {
            let (k, grouped) = key(p, &guaranteed);
            let sql = format!(
                "SELECT {k} AS k, coalesce(sum(l.principal - {PAID_BY_AS_OF}), 0) AS a, 0::numeric AS b,
                        0::numeric AS c, 0::numeric AS d, 0::numeric AS e, 0::numeric AS f
                 FROM loans l
                 WHERE {LOAN_SCOPE} AND l.approved_on <= $6 AND (l.released_on IS NULL OR l.released_on > $6)
                 GROUP BY GROUPING SETS (({k}), ())"
            );
            for r in rows(conn, sql, p).await? {
                if r.k.is_some() && !grouped {
                    continue;
                }
                if r.k.is_some() && !stock_groups {
                    continue;
                }
                acc.entry(r.k).or_default().outstanding_guaranteed = Some(r.a);
            }
        }
    }
    assemble(conn, p, acc).await
}

/// The total and the groups from what the families found.
async fn assemble(
    conn: &mut AsyncPgConnection,
    p: &Params,
    mut acc: Acc,
) -> anyhow::Result<Summary> {
    let mut total = acc.remove(&None).unwrap_or_default();
    // A scope with nothing in it still has stocks of zero.
    if total.outstanding_balance.is_none() {
        total.cumulative_issued_count = Some(0);
        total.cumulative_issued_amount = Some(Decimal::ZERO);
        total.outstanding_balance = Some(Decimal::ZERO);
    }
    if total.overdue_loans.is_none() {
        total.overdue_loans = Some(0);
        for v in [
            &mut total.overdue_principal,
            &mut total.overdue_1_30,
            &mut total.overdue_31_90,
            &mut total.overdue_over_90,
        ] {
            *v = Some(Decimal::ZERO);
        }
    }
    if p.scope.bank_id.is_none() {
        total.new_credit_communities.get_or_insert(0);
        total.credit_communities.get_or_insert(0);
        total.contributions.get_or_insert(Decimal::ZERO);
        total.contributions_total.get_or_insert(Decimal::ZERO);
        total.fund_balance.get_or_insert(Decimal::ZERO);
        total.outstanding_guaranteed.get_or_insert(Decimal::ZERO);
    }
    fill_par(&mut total);
    total.finish();
    let labels = labels(conn, p.group_by, acc.keys().flatten().cloned().collect()).await?;
    let groups = acc
        .into_iter()
        .filter_map(|(k, m)| k.map(|k| (k, m)))
        .map(|(key, mut measures)| {
            fill_par(&mut measures);
            measures.finish();
            Group {
                label: labels.get(&key).cloned().unwrap_or_else(|| key.clone()),
                key,
                measures,
            }
        })
        .collect();
    Ok(Summary {
        region: p.scope.region.as_str().to_owned(),
        bank_id: p.scope.bank_id,
        centre_id: p.scope.centre_id,
        from: p.from,
        to: p.to,
        as_of: p.as_of,
        group_by: p.group_by,
        total,
        groups,
    })
}

/// Overdue and PAR on the as-of date from every instalment not paid by then (the reference the
/// overdue spans are tested against).
fn overdue_scan_sql(k: &str) -> String {
    let paid = instalment_paid_by("$6");
    format!(
            "WITH od AS (
               SELECT f.loan_id, min(f.due_date) AS oldest, sum(f.principal - coalesce(x.paid, 0)) AS overdue
               FROM instalment_facts f JOIN loans l ON l.id = f.loan_id
               CROSS JOIN LATERAL (SELECT {paid} AS paid) x
               WHERE {LOAN_SCOPE} AND f.due_date < $6 AND (f.paid_on IS NULL OR (f.paid_on > $6 AND f.paid_on > f.due_date))
                 AND l.disbursed_on <= $6 AND NOT (l.status IN ('compensated', 'written_off') AND l.released_on <= $6)
               GROUP BY f.loan_id),
             o AS (
               SELECT od.*, l.principal - {PAID_BY_AS_OF} AS outstanding,
                      $6 - od.oldest AS dpd, l.region_code, l.bank_id, l.centre_id, l.category
               FROM od JOIN loans l ON l.id = od.loan_id)
             SELECT {k} AS k, count(*)::numeric AS a, coalesce(sum(l.overdue), 0) AS b,
                    coalesce(sum(l.outstanding) FILTER (WHERE l.dpd BETWEEN 1 AND 30), 0) AS c,
                    coalesce(sum(l.outstanding) FILTER (WHERE l.dpd BETWEEN 31 AND 90), 0) AS d,
                    coalesce(sum(l.outstanding) FILTER (WHERE l.dpd > 90), 0) AS e, 0::numeric AS f
             FROM o l
             GROUP BY GROUPING SETS (({k}), ())"
        )
}

fn fill_par(m: &mut Measures) {
    if let (Some(b), Some(c)) = (m.overdue_31_90, m.overdue_over_90) {
        m.par30 = Some(b + c);
        m.par90 = Some(c);
    }
}

#[derive(QueryableByName)]
struct Label {
    #[diesel(sql_type = Text)]
    k: String,
    #[diesel(sql_type = Text)]
    name: String,
}

/// Names of regions, banks and centres for the keys.
async fn labels(
    conn: &mut AsyncPgConnection,
    g: Option<GroupBy>,
    keys: Vec<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let sql = match g {
        Some(GroupBy::Region) => "SELECT code AS k, name FROM regions WHERE code = ANY($1)",
        Some(GroupBy::Bank) => "SELECT id::text AS k, name FROM banks WHERE id::text = ANY($1)",
        Some(GroupBy::Centre) => "SELECT id::text AS k, name FROM centres WHERE id::text = ANY($1)",
        _ => return Ok(BTreeMap::new()),
    };
    let rows: Vec<Label> = sql_query(sql)
        .bind::<danbao_persistence::diesel::sql_types::Array<Text>, _>(keys)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|l| (l.k, l.name)).collect())
}

/// How a date range `[lo, hi]` is read from the rollups: the whole months in it up to `cap`,
/// `[m0, m1)`, of which the whole years `[y0, y1)` are read from year rows; the rest of the
/// range (at most two runs of days) is scanned from the facts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    m0: NaiveDate,
    m1: NaiveDate,
    y0: NaiveDate,
    y1: NaiveDate,
    edges: Vec<(NaiveDate, NaiveDate)>,
}

impl Split {
    /// The two runs of days around the whole months, an empty run for a missing one (dates
    /// PostgreSQL holds).
    fn runs(&self) -> [(NaiveDate, NaiveDate); 2] {
        let none = (
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX),
            NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN),
        );
        [0, 1].map(|i| self.edges.get(i).copied().unwrap_or(none))
    }
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn next_month(d: NaiveDate) -> NaiveDate {
    first_of_month(d)
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(NaiveDate::MAX)
}

/// `years`: whether year rows may be used (not when grouping by month or quarter).
fn split(lo: NaiveDate, hi: NaiveDate, cap: NaiveDate, years: bool) -> Split {
    let m0 = if lo.day() == 1 { lo } else { next_month(lo) };
    let end = hi.min(cap);
    let m1 = end.succ_opt().map_or(NaiveDate::MAX, first_of_month);
    if m1 <= m0 {
        return Split {
            m0,
            m1: m0,
            y0: m0,
            y1: m0,
            edges: if lo <= hi { vec![(lo, hi)] } else { vec![] },
        };
    }
    let mut edges = Vec::new();
    if lo < m0 {
        edges.push((lo, m0.pred_opt().unwrap_or(m0)));
    }
    if m1 <= hi {
        edges.push((m1, hi));
    }
    let jan = |d: NaiveDate| NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d);
    let y0 = if m0 == jan(m0) {
        m0
    } else {
        NaiveDate::from_ymd_opt(m0.year() + 1, 1, 1).unwrap_or(NaiveDate::MAX)
    };
    let y1 = jan(m1);
    let (y0, y1) = if years && y0 < y1 { (y0, y1) } else { (m0, m0) };
    Split {
        m0,
        m1,
        y0,
        y1,
        edges,
    }
}

/// The columns of the union the due families sum (see [`due_family`]).
const DUE_COLS: Cols = Cols {
    region: Some("r.region_code"),
    bank: Some("r.bank_id"),
    centre: Some("r.centre_id"),
    category: Some("r.category"),
    date: Some("r.period"),
};

/// Principal falling due in `[lo, hi]` (`a`), of it repaid by the as-of date (`b`) and by its
/// due date + grace (`c`), and the subsidy earned on time (`d`): from the rollups for the
/// whole months up to `cap`, less what was paid after the as-of date, plus a scan of the
/// facts for the days around them. What a scan of every fact in the range gives (`Scan`).
async fn due_family(
    conn: &mut AsyncPgConnection,
    p: &Params,
    lo: NaiveDate,
    hi: NaiveDate,
    cap: NaiveDate,
) -> anyhow::Result<(Vec<Row5>, bool)> {
    use anyhow::Context;
    let years = !matches!(p.group_by, Some(GroupBy::Month | GroupBy::Quarter));
    let sp = split(lo, hi, cap, years);
    let (k, grouped) = key(p, &DUE_COLS);
    let by_as_of = instalment_paid_by("$6");
    let on_time = instalment_paid_by("LEAST(f.due_date + l.grace_days, $6)");
    let cell = "l.region_code, l.bank_id, l.centre_id, l.category";
    // The few rows these branches find each look their loan up by key. (OFFSET 0 keeps the
    // planner from joining instead: it expects far more rows and would read every loan.)
    let loan_of = |t: &str| {
        format!(
            "(SELECT l.region_code, l.bank_id, l.centre_id, l.category, po.grace_days
               FROM loans l JOIN policies po ON po.id = l.policy_id WHERE l.id = {t}.loan_id OFFSET 0)"
        )
    };
    let (loan_of_p, loan_of_f) = (loan_of("p"), loan_of("f"));
    let sql = format!(
        "SELECT {k} AS k, coalesce(sum(r.a), 0) AS a, coalesce(sum(r.b), 0) AS b, coalesce(sum(r.c), 0) AS c,
                coalesce(sum(r.d), 0) AS d, coalesce(sum(r.e), 0) AS e, coalesce(sum(r.f), 0) AS f
         FROM (
           SELECT period, region_code, bank_id, centre_id, category,
                  fell_due AS a, paid AS b, paid_on_time AS c, subsidy AS d, instalments AS e, subsidised AS f
           FROM stat_due_rollups
           WHERE (grain = 'y' AND period >= $9 AND period < $10)
              OR (grain = 'm' AND ((period >= $7 AND period < $9) OR (period >= $10 AND period < $8)))
           UNION ALL
           SELECT period, region_code, bank_id, centre_id, category, fell_due, paid, paid_on_time, subsidy,
                  instalments, subsidised
           FROM stat_due_deltas WHERE period >= $7 AND period < $8
           UNION ALL
           -- The rollups hold every payment; those after the as-of date are taken off. They
           -- are late (due on or before the as-of date), so a partial index finds them.
           SELECT p.due_date, {cell}, 0, -p.principal,
                  CASE WHEN p.value_date <= p.due_date + l.grace_days THEN -p.principal ELSE 0 END, 0, 0, 0
           FROM principal_payments p CROSS JOIN LATERAL {loan_of_p} l
           WHERE p.value_date > $6 AND p.value_date > p.due_date AND p.due_date >= $7 AND p.due_date < $8
           UNION ALL
           SELECT f.due_date, {cell}, 0, 0, 0, -f.subsidy, 0, -1
           FROM instalment_facts f CROSS JOIN LATERAL {loan_of_f} l
           WHERE f.paid_on > $6 AND f.paid_on > f.due_date AND f.due_date >= $7 AND f.due_date < $8
             -- (No loan is looked up for an instalment paid later than any policy's grace.)
             AND f.paid_on - f.due_date <= (SELECT max(grace_days) FROM policies)
             AND NOT f.extended AND f.paid_on <= f.due_date + l.grace_days
           UNION ALL
           SELECT f.due_date, {cell}, f.principal, {by_as_of}, {on_time}, s.subsidy, 1, s.subsidised
           FROM instalment_facts f CROSS JOIN LATERAL {loan_of_f} l
           CROSS JOIN LATERAL (
             SELECT CASE WHEN earns THEN f.subsidy ELSE 0 END AS subsidy, CASE WHEN earns THEN 1 ELSE 0 END AS subsidised
             FROM (SELECT NOT f.extended AND f.paid_on <= LEAST(f.due_date + l.grace_days, $6) AS earns) x
           ) s
           WHERE f.due_date BETWEEN $11 AND $12 OR f.due_date BETWEEN $13 AND $14
         ) r
         WHERE r.region_code LIKE $1 AND ($2::uuid IS NULL OR r.bank_id = $2) AND ($3::uuid IS NULL OR r.centre_id = $3)
         GROUP BY GROUPING SETS (({k}), ())"
    );
    let [e0, e1] = sp.runs();
    let rows = bound!(sql.clone(), p)
        .bind::<Date, _>(sp.m0)
        .bind::<Date, _>(sp.m1)
        .bind::<Date, _>(sp.y0)
        .bind::<Date, _>(sp.y1)
        .bind::<Date, _>(e0.0)
        .bind::<Date, _>(e0.1)
        .bind::<Date, _>(e1.0)
        .bind::<Date, _>(e1.1)
        .load::<Row5>(conn)
        .await
        .with_context(|| format!("statistics query failed: {sql}"))?;
    Ok((rows, grouped))
}

/// Runs a statement over a period's whole months and the days around them: binds $7 and $8
/// to the first whole month and the month after the last, $9..$12 to the two runs of days
/// (an empty run for a missing one).
async fn month_rows(
    conn: &mut AsyncPgConnection,
    sql: String,
    p: &Params,
    sp: &Split,
) -> anyhow::Result<Vec<Row5>> {
    use anyhow::Context;
    let [e0, e1] = sp.runs();
    bound!(sql.clone(), p)
        .bind::<Date, _>(sp.m0)
        .bind::<Date, _>(sp.m1)
        .bind::<Date, _>(e0.0)
        .bind::<Date, _>(e0.1)
        .bind::<Date, _>(e1.0)
        .bind::<Date, _>(e1.1)
        .load::<Row5>(conn)
        .await
        .with_context(|| format!("statistics query failed: {sql}"))
}

/// The families of principal falling due and the subsidy, from the rollups. A group shows
/// where a scan of the facts would have had rows: instalments due (`e`) for the principal
/// falling due, instalments earning their subsidy (`f`) for the subsidy.
async fn due_families(
    conn: &mut AsyncPgConnection,
    p: &Params,
    acc: &mut Acc,
) -> anyhow::Result<()> {
    let hi = p.to.min(p.as_of);
    let start = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN);
    // The subsidy counts instalments due up to `to` even after the as-of date; the rest up
    // to the as-of date only. After it, the rollups (which know no as-of date) are not used.
    let (period, grouped) = due_family(conn, p, p.from, p.to, p.as_of).await?;
    let same = hi == p.to;
    for r in period {
        if r.k.is_some() && !grouped {
            continue;
        }
        let due = same && r.e > Decimal::ZERO;
        if r.f <= Decimal::ZERO && !due {
            continue;
        }
        let m = acc.entry(r.k).or_default();
        m.subsidy = r.d;
        if due {
            m.set_due(false, (r.a, r.b, r.c));
        }
    }
    let mut flows = Vec::new();
    if !same {
        flows.push((due_family(conn, p, p.from, hi, p.as_of).await?, false));
    }
    flows.push((due_family(conn, p, start, hi, p.as_of).await?, true));
    for ((rows, grouped), cumulative) in flows {
        for r in rows {
            if (r.k.is_some() && !grouped) || r.e <= Decimal::ZERO {
                continue;
            }
            acc.entry(r.k)
                .or_default()
                .set_due(cumulative, (r.a, r.b, r.c));
        }
    }
    Ok(())
}

/// The columns of the union the stocks sum (see [`stock_cells`]); no date, so grouped by a
/// period they are the total only.
const STOCK_COLS: Cols = Cols {
    date: None,
    ..DUE_COLS
};

/// A group's stocks on a date (see [`stock_cells`]).
#[derive(QueryableByName)]
struct StockCell {
    /// The group key of the loan families (`'total'` when they are not grouped so)...
    #[diesel(sql_type = Text)]
    k: String,
    /// ...and of the outstanding guaranteed, which has no bank or category.
    #[diesel(sql_type = Text)]
    kg: String,
    /// Disbursed up to the date: count and amount.
    #[diesel(sql_type = Numeric)]
    issued: Decimal,
    #[diesel(sql_type = Numeric)]
    issued_amount: Decimal,
    #[diesel(sql_type = Numeric)]
    balance: Decimal,
    /// Guarantees in force on the date, and their principal not repaid.
    #[diesel(sql_type = Numeric)]
    guarantees: Decimal,
    #[diesel(sql_type = Numeric)]
    guaranteed: Decimal,
    /// Loans disbursed at any date: a scan of the loans shows the cell's group when it has any.
    #[diesel(sql_type = Numeric)]
    ever_issued: Decimal,
}

/// The stocks on `at` in the scope, by group: the sum of the events dated up to it (year rows
/// for the whole years, month rows for the months of its year, the days of its month from the
/// loans and payments themselves; migration 000012 says what the events are).
async fn stock_cells(
    conn: &mut AsyncPgConnection,
    p: &Params,
    (k, kg): (&str, &str),
    at: NaiveDate,
) -> anyhow::Result<Vec<StockCell>> {
    use anyhow::Context;
    let start = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN);
    let sp = split(start, at, at, true);
    // An empty run when `at` is a month's last day (dates PostgreSQL holds).
    let (e0, e1) = <[_]>::first(&sp.edges).copied().unwrap_or((
        NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX),
        NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN),
    ));
    let sql = format!(
        "
        SELECT {k} AS k, {kg} AS kg,
               coalesce(sum(r.a), 0)::numeric AS issued, coalesce(sum(r.b), 0) AS issued_amount,
               coalesce(sum(r.c), 0) AS balance, coalesce(sum(r.d), 0)::numeric AS guarantees,
               coalesce(sum(r.e), 0) AS guaranteed, coalesce(sum(r.f), 0)::numeric AS ever_issued
        FROM (
          -- Year rows: all of them say whether the cell ever issued; those before the date's
          -- year count. Month rows of the date's year up to its month.
          -- (Two branches on the primary key's ranges rather than one OR: a scan of every
          -- month row took most of the statement.)
          SELECT region_code, bank_id, centre_id, category,
                 CASE WHEN n THEN issued ELSE 0 END AS a, CASE WHEN n THEN issued_amount ELSE 0 END AS b,
                 CASE WHEN n THEN balance ELSE 0 END AS c, CASE WHEN n THEN guarantees ELSE 0 END AS d,
                 CASE WHEN n THEN guaranteed ELSE 0 END AS e, issued AS f
          FROM stat_stock_rollups CROSS JOIN LATERAL (SELECT period < $8 AS n) x
          WHERE grain = 'y'
          UNION ALL
          SELECT region_code, bank_id, centre_id, category, issued, issued_amount, balance, guarantees, guaranteed, 0
          FROM stat_stock_rollups WHERE grain = 'm' AND period >= $8 AND period < $9
          UNION ALL
          SELECT region_code, bank_id, centre_id, category,
                 CASE WHEN n THEN issued ELSE 0 END, CASE WHEN n THEN issued_amount ELSE 0 END,
                 CASE WHEN n THEN balance ELSE 0 END, CASE WHEN n THEN guarantees ELSE 0 END,
                 CASE WHEN n THEN guaranteed ELSE 0 END, issued
          FROM stat_stock_deltas CROSS JOIN LATERAL (SELECT period < $9 AS n) x
          UNION ALL
          -- The days of the date's month: loans approved, disbursed or released on them...
          SELECT l.region_code, l.bank_id, l.centre_id, l.category, e.issued, e.issued_amount, e.balance,
                 e.guarantees, e.guaranteed, 0
          FROM loans l
          CROSS JOIN LATERAL danbao_stat_stock_loan(l.principal, l.approved_on, l.disbursed_on, l.released_on) e
          WHERE (l.approved_on BETWEEN $10 AND $11 OR l.disbursed_on BETWEEN $10 AND $11
                 OR l.released_on BETWEEN $10 AND $11)
            AND e.day BETWEEN $10 AND $11
          UNION ALL
          -- ...payments on them, and earlier payments of loans released on them.
          SELECT l.region_code, l.bank_id, l.centre_id, l.category, 0, 0, e.balance, 0, e.guaranteed, 0
          FROM principal_payments pp
          CROSS JOIN LATERAL (SELECT l.* FROM loans l WHERE l.id = pp.loan_id OFFSET 0) l
          CROSS JOIN LATERAL danbao_stat_stock_payment(pp.value_date, pp.principal, l.disbursed_on, l.released_on) e
          WHERE pp.value_date BETWEEN $10 AND $11 AND e.day BETWEEN $10 AND $11
          UNION ALL
          SELECT l.region_code, l.bank_id, l.centre_id, l.category, 0, 0, e.balance, 0, e.guaranteed, 0
          FROM loans l JOIN principal_payments pp ON pp.loan_id = l.id
          CROSS JOIN LATERAL danbao_stat_stock_payment(pp.value_date, pp.principal, l.disbursed_on, l.released_on) e
          WHERE (l.released_on BETWEEN $10 AND $11 OR l.disbursed_on BETWEEN $10 AND $11)
            AND NOT pp.value_date BETWEEN $10 AND $11 AND e.day BETWEEN $10 AND $11
        ) r
        WHERE r.region_code LIKE $1 AND ($2::uuid IS NULL OR r.bank_id = $2) AND ($3::uuid IS NULL OR r.centre_id = $3)
        GROUP BY 1, 2"
    );
    bound!(sql.clone(), p)
        .bind::<Date, _>(at)
        .bind::<Date, _>(sp.y1)
        .bind::<Date, _>(sp.m1)
        .bind::<Date, _>(e0)
        .bind::<Date, _>(e1)
        .load::<StockCell>(conn)
        .await
        .with_context(|| format!("statistics query failed: {sql}"))
}

/// The stocks (cumulative issuance up to the end of the period, outstanding balance and
/// outstanding guaranteed on the as-of date) from the rollups, grouped as a scan of the loans
/// would group them: a group shows the balance where it has a loan disbursed at any date, the
/// guaranteed where it has a guarantee in force.
async fn stock_families(
    conn: &mut AsyncPgConnection,
    p: &Params,
    acc: &mut Acc,
) -> anyhow::Result<()> {
    let (k, grouped) = key(p, &STOCK_COLS);
    let (kg, grouped_g) = key(
        p,
        &Cols {
            bank: None,
            category: None,
            ..STOCK_COLS
        },
    );
    let keys = (k.as_str(), kg.as_str());
    let hi = p.to.min(p.as_of);
    let on_as_of = stock_cells(conn, p, keys, p.as_of).await?;
    let at_hi = if hi == p.as_of {
        None
    } else {
        Some(stock_cells(conn, p, keys, hi).await?)
    };
    type Sums = BTreeMap<Option<String>, (Decimal, Decimal)>;
    // Adds a group's two figures to the total and to the group (when grouped so).
    let add = |sums: &mut Sums, key: Option<&String>, x: Decimal, y: Decimal| {
        for k in std::iter::once(None).chain(key.cloned().map(Some)) {
            let s = sums.entry(k).or_default();
            s.0 += x;
            s.1 += y;
        }
    };
    let (mut balance, mut guaranteed, mut issued) = (Sums::new(), Sums::new(), Sums::new());
    for c in &on_as_of {
        add(
            &mut balance,
            grouped.then_some(&c.k),
            c.balance,
            c.ever_issued,
        );
        add(
            &mut guaranteed,
            grouped_g.then_some(&c.kg),
            c.guaranteed,
            c.guarantees,
        );
    }
    for c in at_hi.as_ref().unwrap_or(&on_as_of) {
        add(
            &mut issued,
            grouped.then_some(&c.k),
            c.issued,
            c.issued_amount,
        );
    }
    for (k, (amount, ever)) in balance {
        if k.is_some() && ever <= Decimal::ZERO {
            continue;
        }
        let (count, issued_amount) = issued.get(&k).copied().unwrap_or_default();
        let m = acc.entry(k).or_default();
        m.cumulative_issued_count = Some(int(count));
        m.cumulative_issued_amount = Some(issued_amount);
        m.outstanding_balance = Some(amount);
    }
    if p.scope.bank_id.is_none() {
        let total = guaranteed.remove(&None).unwrap_or_default();
        acc.entry(None).or_default().outstanding_guaranteed = Some(total.0);
        for (k, (amount, n)) in guaranteed {
            if n > Decimal::ZERO {
                acc.entry(k).or_default().outstanding_guaranteed = Some(amount);
            }
        }
    }
    Ok(())
}

/// Moves the pending rollup deltas into the rollups (one mover at a time across replicas).
/// Returns how many deltas it moved.
pub async fn roll_up(conn: &mut AsyncPgConnection) -> anyhow::Result<i64> {
    #[derive(QueryableByName)]
    struct Moved {
        #[diesel(sql_type = danbao_persistence::diesel::sql_types::BigInt)]
        n: i64,
    }
    let m: Moved = sql_query("SELECT danbao_roll_up_statistics() AS n")
        .get_result(conn)
        .await?;
    Ok(m.n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_range_is_whole_years_whole_months_and_days_around_them() {
        let s = split(d("2023-03-15"), d("2025-05-20"), d("2025-05-20"), true);
        assert_eq!(
            s,
            Split {
                m0: d("2023-04-01"),
                m1: d("2025-05-01"),
                y0: d("2024-01-01"),
                y1: d("2025-01-01"),
                edges: vec![
                    (d("2023-03-15"), d("2023-03-31")),
                    (d("2025-05-01"), d("2025-05-20"))
                ],
            }
        );
        // A whole year, as of its last day: no days to scan.
        let s = split(d("2025-01-01"), d("2025-12-31"), d("2025-12-31"), true);
        assert_eq!(
            (s.m0, s.m1, s.y0, s.y1),
            (
                d("2025-01-01"),
                d("2026-01-01"),
                d("2025-01-01"),
                d("2026-01-01")
            )
        );
        assert!(s.edges.is_empty());
        // Grouped by month: month rows only.
        let s = split(d("2025-01-01"), d("2025-12-31"), d("2025-12-31"), false);
        assert_eq!((s.y0, s.y1), (s.m0, s.m0));
        // Within one month: all days.
        let s = split(d("2025-02-03"), d("2025-02-27"), d("2025-12-31"), true);
        assert_eq!(s.m0, s.m1);
        assert_eq!(s.edges, vec![(d("2025-02-03"), d("2025-02-27"))]);
        // Capped by the as-of date: what comes after it is scanned.
        let s = split(d("2025-01-01"), d("2025-12-31"), d("2025-06-10"), true);
        assert_eq!(
            (s.m0, s.m1, s.y0, s.y1),
            (
                d("2025-01-01"),
                d("2025-06-01"),
                d("2025-01-01"),
                d("2025-01-01")
            )
        );
        assert_eq!(s.edges, vec![(d("2025-06-01"), d("2025-12-31"))]);
        // Since the start of time.
        let s = split(d("0001-01-01"), d("2025-11-27"), d("2025-11-27"), true);
        assert_eq!(
            (s.m0, s.y0, s.y1, s.m1),
            (
                d("0001-01-01"),
                d("0001-01-01"),
                d("2025-01-01"),
                d("2025-11-01")
            )
        );
        assert_eq!(s.edges, vec![(d("2025-11-01"), d("2025-11-27"))]);
    }
}
