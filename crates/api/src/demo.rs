//! `danbao demo`: a realistic, deterministic demo province (Jiangxi) generated straight into an
//! empty database. Every loan's schedule, repayments, allocations, extension, compensation and
//! statistics facts are computed with the same domain code as the API (`build_schedule`,
//! `allocate` through `Books`, `extend`, `compensation_amount`, `facts_of`), and written with
//! PostgreSQL COPY, a chunk of loans at a time, in one transaction, with the loan tables'
//! foreign keys, secondary indexes and insert triggers put back (and checked over the whole
//! tables) at its end ([`BulkLoad`]). The result passes `danbao verify`, which the command
//! runs at the end.
use crate::crypto::PiiKeys;
use crate::routes::repayments::{horizon, Books};
use anyhow::{anyhow, bail, Context};
use chrono::{Datelike, Days, Months, NaiveDate};
use danbao_domain::{
    allocate, build_schedule, check_application, compensation_amount, extend,
    recovery_to_fund_cumulative, write_off_loss, ApplicationFacts, BorrowerCategory, BorrowerKind,
    CounterGuarantee, Instalment, InterestConvention, Money, NationalId, Policy, Rate, Repayment,
    ScheduleMethod,
};
use danbao_persistence::diesel::prelude::*;
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use danbao_persistence::models::loan::LoanRow;
use danbao_persistence::models::policy::PolicyRow;
use danbao_persistence::models::repayment::{InstalmentRow, RepaymentRow};
use danbao_persistence::schema::policies;
use futures_util::SinkExt;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The password of every demo user (and of `admin` on a database that had no users).
pub const DEMO_PASSWORD: &str = "Demo password 2026";

/// Loans generated and written per round of COPY statements, by default.
pub const CHUNK: u32 = 1000;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub seed: u64,
    pub loans: u32,
    pub from_year: i32,
    /// The business date: nothing is dated after it.
    pub today: NaiveDate,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Run `danbao verify` on the result (at a million loans it takes longer than the
    /// generation itself, so a benchmark may leave it for a separate run).
    pub verify: bool,
    /// Loans per round of COPY statements (`CHUNK`; smaller in tests, to cross chunks).
    pub chunk: u32,
}

#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// Rows per table after the run.
    pub counts: Vec<(&'static str, i64)>,
    pub elapsed: Duration,
    pub loans_per_second: f64,
    /// Sum of all loan principals (a fingerprint of the seed).
    pub principal_sum: Decimal,
    /// How long `verify` took, if it ran (it passed, or `run` fails).
    pub verify_elapsed: Option<Duration>,
}

// ---- a small deterministic PRNG ---------------------------------------------------------------

/// SplitMix64: tiny, fast, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next() >> 11) as f64;
        x / 9_007_199_254_740_992.0
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = u64::try_from(hi - lo + 1).unwrap_or(1);
        lo + i64::try_from(self.next() % span).unwrap_or(0)
    }
    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(len.max(1)).unwrap_or(1)).unwrap_or(0)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.index(xs.len())]
    }
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = u32::try_from(self.next() % u64::from(total.max(1))).unwrap_or(0);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
    fn bytes(&mut self) -> [u8; 10] {
        let a = self.next().to_le_bytes();
        let b = self.next().to_le_bytes();
        [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1]]
    }
}

/// UUID v7 ids, deterministic and strictly increasing in the order they are made (the order
/// of the `id` column is the booking order of repayments).
struct Ids {
    rng: Rng,
    last_ms: u64,
}

impl Ids {
    fn next(&mut self, on: NaiveDate) -> Uuid {
        let hint = u64::try_from(
            on.and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp_millis()),
        )
        .unwrap_or(0);
        self.last_ms = hint.max(self.last_ms + 1);
        uuid::Builder::from_unix_timestamp_millis(self.last_ms, &self.rng.bytes()).into_uuid()
    }
}

// ---- the province -----------------------------------------------------------------------------

struct City {
    code: &'static str,
    name: &'static str,
    key: &'static str,
    weight: u32,
    districts: &'static [(&'static str, &'static str)],
}

const PROVINCE: (&str, &str) = ("360000", "江西省");

const CITIES: &[City] = &[
    City {
        code: "360100",
        name: "南昌市",
        key: "nanchang",
        weight: 18,
        districts: &[
            ("360102", "东湖区"),
            ("360103", "西湖区"),
            ("360104", "青云谱区"),
            ("360111", "青山湖区"),
            ("360121", "南昌县"),
        ],
    },
    City {
        code: "360200",
        name: "景德镇市",
        key: "jingdezhen",
        weight: 6,
        districts: &[
            ("360202", "昌江区"),
            ("360203", "珠山区"),
            ("360222", "浮梁县"),
            ("360281", "乐平市"),
        ],
    },
    City {
        code: "360300",
        name: "萍乡市",
        key: "pingxiang",
        weight: 6,
        districts: &[
            ("360302", "安源区"),
            ("360313", "湘东区"),
            ("360321", "莲花县"),
        ],
    },
    City {
        code: "360400",
        name: "九江市",
        key: "jiujiang",
        weight: 11,
        districts: &[
            ("360402", "濂溪区"),
            ("360403", "浔阳区"),
            ("360423", "武宁县"),
            ("360481", "瑞昌市"),
        ],
    },
    City {
        code: "360500",
        name: "新余市",
        key: "xinyu",
        weight: 5,
        districts: &[("360502", "渝水区"), ("360521", "分宜县")],
    },
    City {
        code: "360600",
        name: "鹰潭市",
        key: "yingtan",
        weight: 4,
        districts: &[("360602", "月湖区"), ("360681", "贵溪市")],
    },
    City {
        code: "360700",
        name: "赣州市",
        key: "ganzhou",
        weight: 16,
        districts: &[
            ("360702", "章贡区"),
            ("360703", "南康区"),
            ("360704", "赣县区"),
            ("360781", "瑞金市"),
        ],
    },
    City {
        code: "360800",
        name: "吉安市",
        key: "jian",
        weight: 9,
        districts: &[
            ("360802", "吉州区"),
            ("360803", "青原区"),
            ("360881", "井冈山市"),
        ],
    },
    City {
        code: "360900",
        name: "宜春市",
        key: "yichun",
        weight: 10,
        districts: &[
            ("360902", "袁州区"),
            ("360921", "奉新县"),
            ("360981", "丰城市"),
        ],
    },
    City {
        code: "361000",
        name: "抚州市",
        key: "fuzhou",
        weight: 7,
        districts: &[
            ("361002", "临川区"),
            ("361003", "东乡区"),
            ("361021", "南城县"),
        ],
    },
    City {
        code: "361100",
        name: "上饶市",
        key: "shangrao",
        weight: 12,
        districts: &[
            ("361102", "信州区"),
            ("361103", "广丰区"),
            ("361181", "德兴市"),
        ],
    },
];

/// County-level centres: (city index, district code, name, username key, weight).
const COUNTY_CENTRES: &[(usize, &str, &str, &str, u32)] = &[
    (0, "360121", "南昌县", "nanchangxian", 3),
    (6, "360781", "瑞金市", "ruijin", 3),
];

const BANKS: &[(&str, &str, u32)] = &[
    ("JXRCU", "江西农信", 35),
    ("ICBC-JX", "工商银行江西分行", 12),
    ("CCB-JX", "建设银行江西分行", 12),
    ("JJCCB", "九江银行", 10),
    ("PSBC-JX", "邮储银行江西分行", 18),
    ("ABC-JX", "农业银行江西分行", 13),
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "罗", "曾", "邓", "彭", "谢", "熊", "万", "付", "邹", "钟", "肖", "余", "涂", "饶",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀英", "华", "平", "刚", "桂英", "建华", "小红", "志强", "文", "斌", "海燕", "红梅", "国强",
    "春生",
];
const COMMUNITY_NAMES: &[&str] = &[
    "八一", "胜利", "光明", "和平", "幸福", "建设", "解放", "新华", "红星", "东风", "滨江", "阳光",
    "朝阳", "文化", "团结", "锦绣",
];
const TRADES: &[&str] = &[
    "早餐店",
    "服装零售",
    "水果批发",
    "汽车维修",
    "小吃店",
    "家电维修",
    "农产品加工",
    "养殖",
    "蔬菜种植",
    "美容美发",
    "快递代办",
    "网店",
    "竹木加工",
    "茶叶销售",
    "陶瓷销售",
    "物流运输",
];
const FIRM_TRADES: &[&str] = &[
    "服装加工",
    "电子组装",
    "食品加工",
    "竹制品",
    "陶瓷",
    "家具制造",
    "鞋业",
    "纺织",
];

const CATEGORIES: &[(BorrowerCategory, u32)] = &[
    (BorrowerCategory::LaidOff, 28),
    (BorrowerCategory::RegisteredUnemployed, 20),
    (BorrowerCategory::Graduate, 12),
    (BorrowerCategory::DemobilisedSoldier, 8),
    (BorrowerCategory::ReturningMigrant, 20),
    (BorrowerCategory::Disabled, 4),
    (BorrowerCategory::SmallEnterprise, 8),
];

const METHODS: &[(ScheduleMethod, u32)] = &[
    (ScheduleMethod::Bullet, 30),
    (ScheduleMethod::InterestMonthly, 15),
    (ScheduleMethod::InterestQuarterly, 15),
    (ScheduleMethod::EqualInstalment, 20),
    (ScheduleMethod::EqualPrincipal, 20),
];

// ---- COPY text ----------------------------------------------------------------------------------

/// Rows of one table in COPY text format.
struct Table {
    name: &'static str,
    columns: &'static str,
    buf: String,
    rows: u64,
    first: bool,
}

impl Table {
    fn new(name: &'static str, columns: &'static str) -> Table {
        Table {
            name,
            columns,
            buf: String::new(),
            rows: 0,
            first: true,
        }
    }
    fn sep(&mut self) {
        if !self.first {
            self.buf.push('\t');
        }
        self.first = false;
    }
    fn s(&mut self, v: &str) -> &mut Self {
        self.sep();
        for c in v.chars() {
            match c {
                '\\' => self.buf.push_str("\\\\"),
                '\t' => self.buf.push_str("\\t"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                c => self.buf.push(c),
            }
        }
        self
    }
    fn d(&mut self, v: impl std::fmt::Display) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{v}");
        self
    }
    fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.push_str("\\N");
        self
    }
    fn o<T: std::fmt::Display>(&mut self, v: Option<T>) -> &mut Self {
        match v {
            Some(v) => self.d(v),
            None => self.null(),
        }
    }
    fn bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(b) => {
                self.sep();
                self.buf.push_str("\\\\x");
                self.buf.push_str(&hex::encode(b));
                self
            }
            None => self.null(),
        }
    }
    fn end(&mut self) {
        self.buf.push('\n');
        self.rows += 1;
        self.first = true;
    }
    async fn flush(&mut self, client: &tokio_postgres::Client) -> anyhow::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let sink = client
            .copy_in(&format!("COPY {} ({}) FROM STDIN", self.name, self.columns))
            .await
            .with_context(|| format!("COPY {}", self.name))?;
        futures_util::pin_mut!(sink);
        let data = std::mem::take(&mut self.buf).into_bytes();
        sink.send(std::io::Cursor::new(data))
            .await
            .with_context(|| format!("COPY {}", self.name))?;
        sink.finish()
            .await
            .with_context(|| format!("COPY {}", self.name))?;
        Ok(())
    }
}

/// Every table the loans write, in foreign-key order.
struct Out {
    ledger: Table,
    borrowers: Table,
    loans: Table,
    extensions: Table,
    instalments: Table,
    repayments: Table,
    reversals: Table,
    claims: Table,
    recoveries: Table,
    write_offs: Table,
    facts: Table,
    payments: Table,
    spans: Table,
}

impl Out {
    fn new() -> Out {
        Out {
            ledger: Table::new("fund_ledger_entries", "id, fund_id, value_date, kind, amount, source, loan_id, reference, created_by"),
            borrowers: Table::new("borrowers", "id, centre_id, kind, category, name, national_id_enc, national_id_hmac, national_id_masked, birth_date, phone_enc, employment_certificate_no, credit_community_id, member_count, enterprise_registration_no, employees, eligible_employees"),
            loans: Table::new("loans", "id, borrower_id, centre_id, fund_id, bank_id, policy_id, person_hmac, principal, term_months, annual_rate, schedule_method, interest_convention, purpose, micro_profit, jobs_declared, counter_guarantee, waiver, status, applied_on, entered_by, decided_on, decided_by, decision_reason, approved_on, released_on, disbursed_on, maturity_date, bank_account_no, disbursed_by, schedule_version, region_code, category"),
            extensions: Table::new("loan_extensions", "loan_id, agreed_on, months, old_maturity, new_maturity, first_extended, rescheduled_principal, reason, created_by"),
            instalments: Table::new("instalments", "loan_id, version, number, due_date, principal, interest"),
            repayments: Table::new("repayments", "id, loan_id, bank_id, bank_reference, value_date, amount, to_penalty, to_interest, to_principal, created_by"),
            reversals: Table::new("repayment_reversals", "repayment_id, loan_id, reason, value_date, created_by"),
            claims: Table::new("compensation_claims", "id, loan_id, bank_id, fund_id, filed_on, days_past_due, outstanding_principal, overdue_interest, fund_share, claimed_amount, filed_by, status, approved_on, approved_by, paid_amount, ledger_entry_id"),
            recoveries: Table::new("recoveries", "id, loan_id, claim_id, value_date, amount, to_fund, reference, ledger_entry_id, created_by"),
            write_offs: Table::new("write_offs", "loan_id, claim_id, written_off_on, compensation_paid, recovered_to_fund, loss, reason, created_by"),
            facts: Table::new("instalment_facts", "loan_id, number, due_date, principal, interest, subsidy, extended, paid_on"),
            payments: Table::new("principal_payments", "loan_id, number, value_date, principal, due_date"),
            spans: Table::new("overdue_spans", "loan_id, starts_on, ends_on, oldest_due, overdue, outstanding, maturity, region_code, bank_id, centre_id, category"),
        }
    }

    async fn flush(&mut self, client: &tokio_postgres::Client) -> anyhow::Result<()> {
        for t in [
            &mut self.ledger,
            &mut self.borrowers,
            &mut self.loans,
            &mut self.extensions,
            &mut self.instalments,
            &mut self.repayments,
            &mut self.reversals,
            &mut self.claims,
            &mut self.recoveries,
            &mut self.write_offs,
            &mut self.facts,
            &mut self.payments,
            &mut self.spans,
        ] {
            t.flush(client).await?;
        }
        Ok(())
    }
}

// ---- the world in memory ----------------------------------------------------------------------

/// A repayment as generated: id, value date, amount, reversed, and for a reversed one where
/// it went when booked.
/// An extension with the day it was agreed.
type Agreed = (NaiveDate, danbao_domain::Extension, u32);

type RepaymentPlan = (Uuid, NaiveDate, Decimal, bool, Option<[Decimal; 3]>);

/// username, display name, role, centre, bank, region.
type DemoUser<'a> = (
    String,
    String,
    &'a str,
    Option<Uuid>,
    Option<Uuid>,
    Option<&'a str>,
);

struct Centre {
    id: Uuid,
    region: String,
    city: usize,
    weight: u32,
    fund: usize,
    clerks: [Uuid; 2],
    communities: Vec<Community>,
}

struct Community {
    id: Uuid,
    certified_on: NaiveDate,
    revoked_on: Option<NaiveDate>,
}

impl Community {
    fn certified_on_date(&self, d: NaiveDate) -> bool {
        self.certified_on <= d && self.revoked_on.is_none_or(|r| r > d)
    }
}

struct Fund {
    id: Uuid,
    /// Ledger and guarantees up to the approval date being processed.
    balance_now: Decimal,
    outstanding_now: Decimal,
    pending_balance: BTreeMap<NaiveDate, Decimal>,
    pending_outstanding: BTreeMap<NaiveDate, Decimal>,
    /// The final figures written to the fund row.
    balance: Decimal,
    outstanding: Decimal,
    source_turn: usize,
}

impl Fund {
    /// Applies every movement dated on or before `t`.
    fn advance(&mut self, t: NaiveDate) {
        while let Some(e) = self.pending_balance.first_entry() {
            if *e.key() > t {
                break;
            }
            self.balance_now += e.remove();
        }
        while let Some(e) = self.pending_outstanding.first_entry() {
            if *e.key() > t {
                break;
            }
            self.outstanding_now += e.remove();
        }
    }
    /// The balance on `t` (≥ the date advanced to) as far as known, without advancing.
    fn balance_on(&self, t: NaiveDate) -> Decimal {
        self.balance_now
            + self
                .pending_balance
                .range(..=t)
                .map(|(_, v)| *v)
                .sum::<Decimal>()
    }
}

struct PolicyInfo {
    row: PolicyRow,
    domain: Policy,
}

struct Bank {
    id: Uuid,
    code: &'static str,
    user: Uuid,
}

struct World {
    opts: DemoOptions,
    start: NaiveDate,
    end: NaiveDate,
    policies: Vec<PolicyInfo>,
    centres: Vec<Centre>,
    funds: Vec<Fund>,
    banks: Vec<Bank>,
    ids: Ids,
    ledger_id: i64,
    repayment_seq: u64,
    national_ids: HashSet<u64>,
    pii: PiiKeys,
    out: Out,
    principal_sum: Decimal,
}

fn money(d: Decimal) -> anyhow::Result<Money> {
    Money::from_decimal(d).map_err(|e| anyhow!("{e}"))
}

fn add_days(d: NaiveDate, n: i64) -> NaiveDate {
    if n >= 0 {
        d.checked_add_days(Days::new(u64::try_from(n).unwrap_or(0)))
            .unwrap_or(d)
    } else {
        d.checked_sub_days(Days::new(n.unsigned_abs())).unwrap_or(d)
    }
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// A valid 18-character national id (GB 11643 check character).
fn national_id(region: &str, birth: NaiveDate, seq: u32) -> String {
    let mut s = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
    let sum: u32 = s
        .bytes()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    s.push(char::from(
        b"10X98765432"[usize::try_from(sum % 11).unwrap_or(0)],
    ));
    s
}

fn person_name(r: &mut Rng) -> String {
    format!("{}{}", r.pick(SURNAMES), r.pick(GIVEN))
}

impl World {
    fn policy_on(&self, d: NaiveDate) -> Option<&PolicyInfo> {
        self.policies
            .iter()
            .rev()
            .find(|p| p.row.effective_from <= d)
    }

    /// The approval date of loan `i`: spread from `start` to `end`, denser in later years.
    fn date_of(&self, i: u32) -> NaiveDate {
        let span = (self.end - self.start).num_days();
        let f = (f64::from(i) + 0.5) / f64::from(self.opts.loans.max(1));
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let offset = (f.powf(0.8) * span as f64) as i64;
        add_days(self.start, offset.min(span))
    }

    #[allow(clippy::too_many_arguments)]
    fn ledger(
        &mut self,
        fund: usize,
        on: NaiveDate,
        kind: &str,
        amount: Decimal,
        source: Option<&str>,
        loan: Option<Uuid>,
        reference: Option<&str>,
        by: Option<Uuid>,
    ) -> i64 {
        self.ledger_id += 1;
        let id = self.ledger_id;
        let f = &mut self.funds[fund];
        f.balance += amount;
        *f.pending_balance.entry(on).or_default() += amount;
        self.out
            .ledger
            .d(id)
            .d(f.id)
            .d(on)
            .s(kind)
            .d(amount)
            .o(source)
            .o(loan)
            .o(reference)
            .o(by)
            .end();
        id
    }

    fn contribute(&mut self, fund: usize, on: NaiveDate, amount: Decimal, by: Uuid) {
        let sources = [
            "city_finance",
            "province_finance",
            "county_finance",
            "other",
        ];
        let f = &mut self.funds[fund];
        let source = sources[f.source_turn % 3];
        f.source_turn += 1;
        let reference = format!("{}年担保基金注资", on.year());
        self.ledger(
            fund,
            on,
            "contribution",
            amount,
            Some(source),
            None,
            Some(&reference),
            Some(by),
        );
    }

    /// Generates loan `i` with its borrower and everything that happened to it.
    #[allow(clippy::too_many_lines)]
    fn loan(&mut self, i: u32) -> anyhow::Result<()> {
        let today = self.opts.today;
        let mut r = Rng::new(self.opts.seed, u64::from(i) + 1_000_000);
        let decided = self.date_of(i);
        let applied_on = add_days(decided, -r.range(0, 7)).max(self.start);
        let weights: Vec<u32> = self.centres.iter().map(|c| c.weight).collect();
        let ci = r.weighted(&weights);
        let Some(pinfo) = self.policy_on(applied_on) else {
            bail!("no policy in force on {applied_on}");
        };
        let policy_row = pinfo.row.clone();
        let policy = pinfo.domain.clone();
        let centre = &self.centres[ci];
        let (centre_id, region, fund_ix, city) =
            (centre.id, centre.region.clone(), centre.fund, centre.city);
        let (clerk_a, clerk_b) = if r.chance(0.5) {
            (centre.clerks[0], centre.clerks[1])
        } else {
            (centre.clerks[1], centre.clerks[0])
        };

        // The borrower.
        let cw: Vec<u32> = CATEGORIES.iter().map(|c| c.1).collect();
        let mut category = CATEGORIES[r.weighted(&cw)].0;
        if category == BorrowerCategory::SmallEnterprise && policy.small_enterprise_limit.is_none()
        {
            category = BorrowerCategory::LaidOff;
        }
        let kind = if category == BorrowerCategory::SmallEnterprise {
            BorrowerKind::SmallEnterprise
        } else if r.chance(0.08) {
            BorrowerKind::Partnership
        } else {
            BorrowerKind::Individual
        };
        let members: u32 = if kind == BorrowerKind::Partnership {
            u32::try_from(r.range(2, 4)).unwrap_or(2)
        } else {
            1
        };
        let borrower_id = self.ids.next(applied_on);
        let districts = CITIES[city].districts;
        let community = {
            let usable: Vec<&Community> = self.centres[ci]
                .communities
                .iter()
                .filter(|c| c.certified_on <= applied_on)
                .collect();
            if kind != BorrowerKind::SmallEnterprise && !usable.is_empty() && r.chance(0.35) {
                let c = usable[r.index(usable.len())];
                Some((
                    c.id,
                    c.certified_on_date(applied_on) && c.certified_on_date(decided),
                ))
            } else {
                None
            }
        };
        let name;
        let mut birth = None;
        let mut hmac = None;
        let b = &mut self.out.borrowers;
        if kind == BorrowerKind::SmallEnterprise {
            name = format!(
                "{}{}{}有限公司",
                CITIES[city].name.trim_end_matches('市'),
                r.pick(COMMUNITY_NAMES),
                r.pick(FIRM_TRADES)
            );
            let employees = r.range(10, 120);
            let eligible = r.range(employees * 3 / 10, employees * 7 / 10);
            let reg = format!("91{}{:010}", &region[..6], r.next() % 10_000_000_000);
            b.d(borrower_id)
                .d(centre_id)
                .s(kind.as_str())
                .s(category.as_str())
                .s(&name)
                .null()
                .null()
                .null()
                .null()
                .null()
                .null()
                .null()
                .d(1)
                .s(&reg)
                .d(employees)
                .d(eligible)
                .end();
        } else {
            name = person_name(&mut r);
            let age = r.range(
                i64::from(policy.min_age.max(18)) + 2,
                i64::from(policy.max_age.min(62)) - 4,
            );
            let born = add_days(
                applied_on
                    .checked_sub_months(Months::new(u32::try_from(age * 12).unwrap_or(360)))
                    .unwrap_or(applied_on),
                -r.range(0, 360),
            );
            let district = r.pick(districts).0;
            let mut seq = u32::try_from(r.range(0, 999)).unwrap_or(0);
            let id = loop {
                let id = national_id(district, born, seq);
                let key: u64 = id[..17].parse().unwrap_or(0);
                if self.national_ids.insert(key) {
                    break id;
                }
                seq = (seq + 1) % 1000;
            };
            let nid = NationalId::parse(&id).map_err(|e| anyhow!("demo national id {id}: {e}"))?;
            let h = self.pii.lookup_hash(nid.as_str());
            let phone = format!("1{}{:09}", r.pick(&[3, 5, 8]), r.next() % 1_000_000_000);
            b.d(borrower_id)
                .d(centre_id)
                .s(kind.as_str())
                .s(category.as_str())
                .s(&name)
                .bytes(Some(&self.pii.encrypt(nid.as_str())))
                .bytes(Some(&h))
                .s(&nid.masked())
                .d(nid.birth_date())
                .bytes(
                    if r.chance(0.7) {
                        Some(self.pii.encrypt(&phone))
                    } else {
                        None
                    }
                    .as_deref(),
                )
                .s(&format!("JX{}{:08}", applied_on.year(), i))
                .o(community.map(|c| c.0))
                .d(members)
                .null()
                .null()
                .null()
                .end();
            birth = Some(nid.birth_date());
            hmac = Some(h);
        }

        // The application.
        let limit = policy
            .limit_for(kind, members)
            .ok_or_else(|| anyhow!("no limit for {kind}"))?
            .amount();
        let principal = if kind == BorrowerKind::SmallEnterprise {
            let max = (limit / Decimal::from(10_000)).min(Decimal::from(150));
            Decimal::from(r.range(20, i64::try_from(max.trunc().mantissa()).unwrap_or(20)))
                * Decimal::from(10_000)
        } else {
            let lo = (limit * Decimal::new(3, 1) / Decimal::from(1000)).trunc();
            let hi = (limit / Decimal::from(1000)).trunc();
            Decimal::from(r.range(
                i64::try_from(lo.mantissa()).unwrap_or(5).max(5),
                i64::try_from(hi.mantissa()).unwrap_or(20),
            )) * Decimal::from(1000)
        };
        let max_term = policy.max_term_for(kind);
        let terms: Vec<u32> = [6, 12, 12, 12, 18, 24, 24, 36]
            .into_iter()
            .filter(|t| *t <= max_term)
            .collect();
        let term = *r.pick(&terms);
        let mw: Vec<u32> = METHODS.iter().map(|m| m.1).collect();
        let method = METHODS[r.weighted(&mw)].0;
        let spread = policy.max_rate_spread.value();
        let rate_value = if spread.is_zero() {
            policy.benchmark_rate.value()
        } else {
            let steps =
                i64::try_from((spread * Decimal::from(10_000)).trunc().mantissa()).unwrap_or(0);
            policy.benchmark_rate.value() + Decimal::new(r.range(0, steps), 4)
        };
        let rate = Rate::from_decimal(rate_value).map_err(|e| anyhow!("{e}"))?;
        let convention = if r.chance(0.8) {
            InterestConvention::Monthly30
        } else {
            InterestConvention::Actual360
        };
        let certified = community.is_some_and(|c| c.1);
        let cg = if certified && principal <= policy.waiver_limit.amount() && r.chance(0.75) {
            CounterGuarantee::CreditCommunityWaiver
        } else {
            match r.weighted(&[40, 25, 20, 15]) {
                0 => {
                    let gid = national_id(
                        r.pick(districts).0,
                        add_days(ymd(1960, 1, 1), r.range(0, 9000)),
                        u32::try_from(r.range(0, 999)).unwrap_or(0),
                    );
                    CounterGuarantee::Guarantor {
                        name: person_name(&mut r),
                        national_id: NationalId::parse(&gid).map_err(|e| anyhow!("{e}"))?,
                    }
                }
                1 => CounterGuarantee::JointGuaranteeGroup {
                    members: u32::try_from(r.range(3, 5)).unwrap_or(3),
                },
                2 => CounterGuarantee::Mortgage {
                    description: "房产抵押".into(),
                },
                _ => CounterGuarantee::Pledge {
                    description: "定期存单质押".into(),
                },
            }
        };
        let age_on = |d: NaiveDate| {
            birth.and_then(|b| {
                let mut y = d.year() - b.year();
                if (d.month(), d.day()) < (b.month(), b.day()) {
                    y -= 1;
                }
                u32::try_from(y).ok()
            })
        };
        let facts = |on: NaiveDate| ApplicationFacts {
            kind,
            category,
            age: age_on(on),
            has_certificate: kind != BorrowerKind::SmallEnterprise,
            member_count: members,
            principal: Money::from_decimal(principal).unwrap_or(Money::ZERO),
            term_months: term,
            annual_rate: rate,
            counter_guarantee: cg.clone(),
            community_certified_on_decision_date: certified,
            has_unsettled_loan: false,
        };
        let eligible = check_application(&policy, &facts(applied_on), applied_on).is_ok()
            && check_application(&policy, &facts(decided), decided).is_ok();
        let mut cg_json = serde_json::to_value(&cg)?;
        if let CounterGuarantee::Guarantor { national_id, .. } = &cg {
            if let Some(o) = cg_json.as_object_mut() {
                o.remove("national_id");
                o.insert("national_id_masked".into(), national_id.masked().into());
                o.insert(
                    "national_id_enc".into(),
                    hex::encode(self.pii.encrypt(national_id.as_str())).into(),
                );
            }
        }
        let purpose = if kind == BorrowerKind::SmallEnterprise {
            (*r.pick(FIRM_TRADES)).to_owned()
        } else {
            (*r.pick(TRADES)).to_owned()
        };
        let loan_id = self.ids.next(applied_on);
        let bank_ix = r.weighted(&BANKS.iter().map(|b| b.2).collect::<Vec<_>>());
        let mut loan = LoanRow {
            id: loan_id,
            borrower_id,
            centre_id,
            fund_id: self.funds[fund_ix].id,
            bank_id: self.banks[bank_ix].id,
            policy_id: policy_row.id,
            person_hmac: hmac,
            principal,
            term_months: i32::try_from(term).unwrap_or(12),
            annual_rate: rate.value(),
            schedule_method: method.as_str().into(),
            interest_convention: convention.as_str().into(),
            purpose,
            micro_profit: r.chance(if kind == BorrowerKind::SmallEnterprise {
                0.4
            } else {
                0.75
            }),
            jobs_declared: if kind == BorrowerKind::SmallEnterprise {
                i32::try_from(r.range(8, 60)).unwrap_or(8)
            } else {
                i32::try_from(i64::from(members) + r.range(0, 4)).unwrap_or(1)
            },
            counter_guarantee: cg_json,
            waiver: cg.is_waiver(),
            status: "applied".into(),
            applied_on,
            entered_by: clerk_a,
            decided_on: None,
            decided_by: None,
            decision_reason: None,
            approved_on: None,
            cancelled_on: None,
            cancelled_by: None,
            released_on: None,
            created_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            updated_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            disbursed_on: None,
            maturity_date: None,
            bank_account_no: None,
            disbursed_by: None,
            schedule_version: 1,
            region_code: region,
            category: category.as_str().into(),
        };
        self.principal_sum += principal;
        let recent = decided > add_days(today, -45);
        if !eligible || r.chance(0.02) {
            loan.status = "rejected".into();
            loan.decided_on = Some(decided);
            loan.decided_by = Some(clerk_b);
            loan.decision_reason = Some(
                if eligible {
                    "经营项目可行性不足"
                } else {
                    "不符合政策条件"
                }
                .into(),
            );
            return self.write_loan(&loan, None);
        }
        if recent && r.chance(0.3) {
            return self.write_loan(&loan, None);
        }
        // Approval under the fund's capacity: top it up when a guarantee would not fit.
        let fund = &mut self.funds[fund_ix];
        fund.advance(decided);
        let room = fund.balance_now * policy.leverage_multiple - fund.outstanding_now;
        if principal > room {
            let need =
                (fund.outstanding_now + principal) / policy.leverage_multiple - fund.balance_now;
            let amount = ((need * Decimal::new(15, 1) / Decimal::from(10_000)).ceil()
                * Decimal::from(10_000))
            .max(Decimal::from(200_000));
            self.contribute(fund_ix, decided, amount, clerk_a);
            self.funds[fund_ix].advance(decided);
        }
        self.funds[fund_ix].outstanding_now += principal;
        loan.status = "approved".into();
        loan.decided_on = Some(decided);
        loan.decided_by = Some(clerk_b);
        loan.approved_on = Some(decided);
        let disbursed_on = add_days(decided, r.range(0, 10));
        if disbursed_on > today || (recent && r.chance(0.25)) {
            self.funds[fund_ix].outstanding += principal;
            return self.write_loan(&loan, None);
        }
        let bank = &self.banks[bank_ix];
        loan.status = "active".into();
        loan.disbursed_on = Some(disbursed_on);
        loan.bank_account_no = Some(format!(
            "{}{}{:08}",
            bank.code.replace('-', ""),
            disbursed_on.format("%Y%m"),
            i
        ));
        loan.disbursed_by = Some(bank.user);
        let (bank_id, bank_user) = (bank.id, bank.user);
        let schedule = build_schedule(
            money(principal)?,
            rate,
            term,
            method,
            disbursed_on,
            convention,
        )
        .map_err(|e| anyhow!("{e}"))?;
        let v1_maturity = schedule.last().map(|s| s.due_date).unwrap_or(disbursed_on);
        loan.maturity_date = Some(v1_maturity);
        let penalty = policy.penalty_rate(rate);
        let pos_at = |sched: &[Instalment], reps: &[Repayment<Uuid>], on: NaiveDate| {
            allocate(disbursed_on, sched, penalty, reps, on).map_err(|e| anyhow!("{e}"))
        };

        // The borrower's behaviour.
        let n = schedule.len();
        let last = i64::try_from(n).unwrap_or(1) - 1;
        let u = r.f();
        let defaults = u < 0.045;
        let late = (0.045..0.13).contains(&u);
        let payoff_at = (0.13..0.2).contains(&u).then(|| r.range(0, last));
        let prepay_at = (0.2..0.25).contains(&u).then(|| r.range(0, last));
        let stop_at = r.range(0, last);
        let extend_at =
            (policy.extension_max_months > 0 && r.chance(0.03)).then(|| r.range(0, last));
        let extend_months =
            u32::try_from(r.range(3, i64::from(policy.extension_max_months.min(12)))).unwrap_or(3);
        let reverse_at = r.chance(0.02).then(|| r.range(0, last));

        let mut sched = schedule.clone();
        let mut counting: Vec<Repayment<Uuid>> = Vec::new();
        // (row, reversed, booking-time allocation of a reversed one)
        let mut rows: Vec<RepaymentPlan> = Vec::new();
        let mut extension = None;
        let mut last_date = disbursed_on;
        let mut idx = 0_usize;
        while idx < sched.len() {
            let k = i64::try_from(idx).unwrap_or(0);
            let due = sched[idx].due_date;
            if extension.is_none() && extend_at == Some(k) {
                let e = add_days(due, -5);
                if e > last_date && e <= today {
                    let pos = pos_at(&sched, &counting, e)?;
                    let conv = if method == ScheduleMethod::EqualInstalment {
                        InterestConvention::Monthly30
                    } else {
                        convention
                    };
                    if let Ok(ext) = extend(&sched, &pos, extend_months, false, rate, conv, &policy)
                    {
                        sched.clone_from(&ext.schedule);
                        extension = Some((e, ext, extend_months));
                        continue;
                    }
                }
            }
            if due > today || (defaults && k >= stop_at) {
                break;
            }
            let mut pay_on = due;
            if late && r.chance(0.35) {
                pay_on = add_days(due, r.range(3, 50));
            }
            pay_on = pay_on.max(last_date);
            if pay_on > today {
                break;
            }
            let pos = pos_at(&sched, &counting, pay_on)?;
            let amount = pos.due_principal.amount()
                + pos.due_interest.amount()
                + pos.accrued_penalty.amount();
            if amount > Decimal::ZERO {
                let id = self.ids.next(pay_on);
                counting.push(Repayment {
                    id,
                    value_date: pay_on,
                    amount: money(amount)?,
                });
                rows.push((id, pay_on, amount, false, None));
                last_date = pay_on;
            }
            if reverse_at == Some(k) {
                // A payment keyed twice by the bank, corrected the same day.
                let pos = pos_at(&sched, &counting, pay_on)?;
                let wrong = (amount / Decimal::from(2))
                    .round_dp(2)
                    .min(pos.payoff_amount.amount() - Decimal::new(1, 2));
                if wrong > Decimal::ZERO {
                    let id = self.ids.next(pay_on);
                    let mut with = counting.clone();
                    with.push(Repayment {
                        id,
                        value_date: pay_on,
                        amount: money(wrong)?,
                    });
                    let booked = pos_at(&sched, &with, pay_on)?;
                    let a = booked
                        .allocations
                        .iter()
                        .find(|a| a.repayment_id == id)
                        .ok_or_else(|| anyhow!("reversed repayment not allocated"))?;
                    rows.push((
                        id,
                        pay_on,
                        wrong,
                        true,
                        Some([
                            a.to_penalty.amount(),
                            a.to_interest.amount(),
                            a.to_principal.amount(),
                        ]),
                    ));
                }
            }
            let next_due = sched.get(idx + 1).map_or(today, |s| s.due_date);
            if payoff_at == Some(k) || prepay_at == Some(k) {
                let on = add_days(pay_on, r.range(1, 25));
                if on < next_due && on <= today {
                    let pos = pos_at(&sched, &counting, on)?;
                    let payoff = pos.payoff_amount.amount();
                    let amount = if payoff_at == Some(k) {
                        payoff
                    } else {
                        (pos.outstanding_principal.amount() * Decimal::new(3, 1)
                            / Decimal::from(100))
                        .trunc()
                            * Decimal::from(100)
                    };
                    if amount > Decimal::ZERO && amount <= payoff {
                        let id = self.ids.next(on);
                        counting.push(Repayment {
                            id,
                            value_date: on,
                            amount: money(amount)?,
                        });
                        rows.push((id, on, amount, false, None));
                        last_date = on;
                        if amount == payoff {
                            break;
                        }
                    }
                }
            }
            idx += 1;
        }

        // The books as the API keeps them, and the position `danbao verify` recomputes.
        if let Some((_, ext, _)) = &extension {
            loan.schedule_version = 2;
            loan.maturity_date = Some(ext.new_maturity);
        }
        let inst_rows: Vec<InstalmentRow> = sched
            .iter()
            .map(|s| InstalmentRow {
                loan_id,
                number: i32::try_from(s.number).unwrap_or(0),
                due_date: s.due_date,
                principal: s.principal.amount(),
                interest: s.interest.amount(),
            })
            .collect();
        let rep_rows: Vec<(RepaymentRow, bool)> = rows
            .iter()
            .map(|(id, on, amount, reversed, _)| {
                (
                    RepaymentRow {
                        id: *id,
                        loan_id,
                        bank_id,
                        bank_reference: String::new(),
                        value_date: *on,
                        amount: *amount,
                        to_penalty: Decimal::ZERO,
                        to_interest: Decimal::ZERO,
                        to_principal: Decimal::ZERO,
                        created_by: bank_user,
                        created_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
                    },
                    *reversed,
                )
            })
            .collect();
        let books = Books::from_rows(&loan, &policy_row, &inst_rows, rep_rows)
            .map_err(|e| anyhow!("loan {loan_id}: {e}"))?
            .ok_or_else(|| anyhow!("loan {loan_id}: no books"))?;
        let counted = books.counting(None).map_err(|e| anyhow!("{e}"))?;
        let pos = books
            .position_on(horizon(today, &counted))
            .map_err(|e| anyhow!("loan {loan_id}: {e}"))?
            .ok_or_else(|| anyhow!("loan {loan_id}: no position"))?;

        // Default: the bank claims, a clerk who did not enter the loan approves, the fund pays.
        let mut claim = None;
        if defaults && pos.days_past_due >= policy.compensation_overdue_days {
            let oldest_due = add_days(today, -i64::from(pos.days_past_due));
            let filed_on = add_days(
                oldest_due,
                i64::from(policy.compensation_overdue_days) + r.range(0, 30),
            );
            if filed_on <= today && r.chance(0.92) {
                let at_filing = pos_at(&sched, &counting, filed_on)?;
                let claimed = compensation_amount(
                    at_filing.outstanding_principal,
                    at_filing.overdue_interest,
                    policy.fund_share,
                )
                .map_err(|e| anyhow!("{e}"))?;
                let approved_on = add_days(filed_on, r.range(0, 20));
                let approved = approved_on <= today && r.chance(0.9);
                claim = Some((
                    filed_on,
                    at_filing,
                    claimed,
                    approved.then_some(approved_on),
                ));
            }
        }
        let fund_share = policy.fund_share;
        if let Some((filed_on, at_filing, claimed, Some(approved_on))) = &claim {
            let at_approval = pos_at(&sched, &counting, *approved_on)?;
            let paid = compensation_amount(
                at_approval.outstanding_principal,
                at_approval.overdue_interest,
                fund_share,
            )
            .map_err(|e| anyhow!("{e}"))?
            .amount();
            if self.funds[fund_ix].balance_on(*approved_on) < paid + Decimal::from(100_000) {
                self.contribute(
                    fund_ix,
                    *approved_on,
                    (paid * Decimal::from(3)).round_dp(0) + Decimal::from(100_000),
                    clerk_b,
                );
            }
            let claim_id = self.ids.next(*filed_on);
            let entry = self.ledger(
                fund_ix,
                *approved_on,
                "compensation",
                -paid,
                None,
                Some(loan_id),
                Some(&format!("compensation claim {claim_id}")),
                Some(clerk_b),
            );
            let released = principal - pos.principal_paid.amount();
            *self.funds[fund_ix]
                .pending_outstanding
                .entry(*approved_on)
                .or_default() -= released;
            loan.status = "compensated".into();
            loan.released_on = Some(*approved_on);
            self.out
                .claims
                .d(claim_id)
                .d(loan_id)
                .d(bank_id)
                .d(self.funds[fund_ix].id)
                .d(filed_on)
                .d(at_filing.days_past_due)
                .d(at_filing.outstanding_principal.amount())
                .d(at_filing.overdue_interest.amount())
                .d(fund_share.value())
                .d(claimed.amount())
                .d(bank_user)
                .s("approved")
                .d(approved_on)
                .d(clerk_b)
                .d(paid)
                .d(entry)
                .end();
            // Recoveries (追偿), then perhaps the write-off (核销).
            let ceiling =
                at_filing.outstanding_principal.amount() + at_filing.overdue_interest.amount();
            let mut recovered = Decimal::ZERO;
            let mut to_fund_total = Decimal::ZERO;
            let mut on = *approved_on;
            if r.chance(0.6) {
                for nth in 1..=r.range(1, 3) {
                    on = add_days(on, r.range(30, 200));
                    if on > today {
                        break;
                    }
                    let amount = (ceiling * Decimal::from(r.range(8, 35)) / Decimal::from(100))
                        .round_dp(2)
                        .min(ceiling - recovered);
                    if amount <= Decimal::ZERO {
                        break;
                    }
                    let to_fund = recovery_to_fund_cumulative(
                        money(paid)?,
                        money(recovered)?,
                        money(amount)?,
                        fund_share,
                    )
                    .map_err(|e| anyhow!("{e}"))?
                    .amount();
                    let reference = format!("ZC{}-{nth}", on.format("%Y%m%d"));
                    let entry = (to_fund > Decimal::ZERO).then(|| {
                        self.ledger(
                            fund_ix,
                            on,
                            "recovery",
                            to_fund,
                            None,
                            Some(loan_id),
                            Some(&reference),
                            Some(clerk_b),
                        )
                    });
                    let rid = self.ids.next(on);
                    self.out
                        .recoveries
                        .d(rid)
                        .d(loan_id)
                        .d(claim_id)
                        .d(on)
                        .d(amount)
                        .d(to_fund)
                        .s(&reference)
                        .o(entry)
                        .d(clerk_b)
                        .end();
                    recovered += amount;
                    to_fund_total += to_fund;
                }
            }
            let write_off_on = add_days(on.max(add_days(*approved_on, 365)), r.range(0, 200));
            if write_off_on <= today && r.chance(0.5) {
                let loss = write_off_loss(money(paid)?, money(to_fund_total)?)
                    .map_err(|e| anyhow!("{e}"))?;
                loan.status = "written_off".into();
                self.out
                    .write_offs
                    .d(loan_id)
                    .d(claim_id)
                    .d(write_off_on)
                    .d(paid)
                    .d(to_fund_total)
                    .d(loss.amount())
                    .s("追偿无果，按规定核销")
                    .d(clerk_b)
                    .end();
            }
        } else if let Some((filed_on, at_filing, claimed, None)) = &claim {
            let claim_id = self.ids.next(*filed_on);
            self.out
                .claims
                .d(claim_id)
                .d(loan_id)
                .d(bank_id)
                .d(self.funds[fund_ix].id)
                .d(filed_on)
                .d(at_filing.days_past_due)
                .d(at_filing.outstanding_principal.amount())
                .d(at_filing.overdue_interest.amount())
                .d(fund_share.value())
                .d(claimed.amount())
                .d(bank_user)
                .s("filed")
                .null()
                .null()
                .null()
                .null()
                .end();
        }
        if loan.status == "active" && pos.settled {
            loan.status = "settled".into();
            loan.released_on = Some(pos.settled_on.unwrap_or(last_date));
        }
        let fund = &mut self.funds[fund_ix];
        for a in &pos.allocations {
            *fund.pending_outstanding.entry(a.value_date).or_default() -= a.to_principal.amount();
        }
        if loan.status == "active" {
            fund.outstanding += principal - pos.principal_paid.amount();
        }

        self.write_loan(&loan, Some((&schedule, extension.as_ref())))?;
        for (id, on, amount, reversed, booked) in &rows {
            let alloc = match booked {
                Some(b) => *b,
                None => {
                    let a = pos
                        .allocations
                        .iter()
                        .find(|a| a.repayment_id == *id)
                        .ok_or_else(|| anyhow!("repayment {id} not allocated"))?;
                    [
                        a.to_penalty.amount(),
                        a.to_interest.amount(),
                        a.to_principal.amount(),
                    ]
                }
            };
            self.repayment_seq += 1;
            let reference = format!(
                "{}-{}-{:07}",
                BANKS[bank_ix].0,
                on.format("%Y%m%d"),
                self.repayment_seq
            );
            self.out
                .repayments
                .d(id)
                .d(loan_id)
                .d(bank_id)
                .s(&reference)
                .d(on)
                .d(amount)
                .d(alloc[0])
                .d(alloc[1])
                .d(alloc[2])
                .d(bank_user)
                .end();
            // Booked with its final allocation: no allocation row (000024).
            if *reversed {
                self.out
                    .reversals
                    .d(id)
                    .d(loan_id)
                    .s("银行重复入账，冲正")
                    .d(on)
                    .d(bank_user)
                    .end();
            }
        }
        let first_extended = extension.as_ref().map(|(_, e, _)| e.first_extended);
        let (facts, payments) = crate::facts::facts_of(&loan, &policy_row, first_extended, &pos)
            .map_err(|e| anyhow!("loan {loan_id}: facts: {e}"))?;
        for f in &facts {
            self.out
                .facts
                .d(f.loan_id)
                .d(f.number)
                .d(f.due_date)
                .d(f.principal)
                .d(f.interest)
                .d(f.subsidy)
                .d(if f.extended { "t" } else { "f" })
                .o(f.paid_on)
                .end();
        }
        // Their closing dates are set at the end (`danbao_rebuild_statistics`), as the facts'.
        for s in danbao_persistence::models::stats::overdue_spans(&facts, &payments) {
            self.out
                .spans
                .d(s.loan_id)
                .d(s.starts_on)
                .o(s.ends_on)
                .d(s.oldest_due)
                .d(s.overdue)
                .d(s.outstanding)
                .d(s.maturity)
                .d(&loan.region_code)
                .d(loan.bank_id)
                .d(loan.centre_id)
                .d(&loan.category)
                .end();
        }
        for p in payments {
            self.out
                .payments
                .d(p.loan_id)
                .d(p.number)
                .d(p.value_date)
                .d(p.principal)
                .d(p.due_date)
                .end();
        }
        Ok(())
    }

    /// The loan row, its schedule(s) and its extension.
    fn write_loan(
        &mut self,
        l: &LoanRow,
        books: Option<(&[Instalment], Option<&Agreed>)>,
    ) -> anyhow::Result<()> {
        self.out
            .loans
            .d(l.id)
            .d(l.borrower_id)
            .d(l.centre_id)
            .d(l.fund_id)
            .d(l.bank_id)
            .d(l.policy_id)
            .bytes(l.person_hmac.as_deref())
            .d(l.principal)
            .d(l.term_months)
            .d(l.annual_rate)
            .s(&l.schedule_method)
            .s(&l.interest_convention)
            .s(&l.purpose)
            .d(if l.micro_profit { "t" } else { "f" })
            .d(l.jobs_declared)
            .s(&l.counter_guarantee.to_string())
            .d(if l.waiver { "t" } else { "f" })
            .s(&l.status)
            .d(l.applied_on)
            .d(l.entered_by)
            .o(l.decided_on)
            .o(l.decided_by)
            .o(l.decision_reason.as_deref())
            .o(l.approved_on)
            .o(l.released_on)
            .o(l.disbursed_on)
            .o(l.maturity_date)
            .o(l.bank_account_no.as_deref())
            .o(l.disbursed_by)
            .d(l.schedule_version)
            .s(&l.region_code)
            .s(&l.category)
            .end();
        let Some((v1, extension)) = books else {
            return Ok(());
        };
        for s in v1 {
            self.out
                .instalments
                .d(l.id)
                .d(1)
                .d(s.number)
                .d(s.due_date)
                .d(s.principal.amount())
                .d(s.interest.amount())
                .end();
        }
        if let Some((agreed_on, ext, months)) = extension {
            let old_maturity = v1.last().map_or(*agreed_on, |s| s.due_date);
            self.out
                .extensions
                .d(l.id)
                .d(agreed_on)
                .d(months)
                .d(old_maturity)
                .d(ext.new_maturity)
                .d(ext.first_extended)
                .d(ext.rescheduled_principal.amount())
                .s("经营周期延长，申请展期")
                .d(l.decided_by.unwrap_or(l.entered_by))
                .end();
            for s in &ext.schedule {
                self.out
                    .instalments
                    .d(l.id)
                    .d(2)
                    .d(s.number)
                    .d(s.due_date)
                    .d(s.principal.amount())
                    .d(s.interest.amount())
                    .end();
            }
        }
        Ok(())
    }
}

async fn count(client: &tokio_postgres::Client, table: &str) -> anyhow::Result<i64> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

/// Generates the demo province into the (migrated) database at `url`, then runs `verify`.
/// Refuses a database that already holds loans.
#[allow(clippy::too_many_lines)]
pub async fn run(url: &str, pii: &PiiKeys, opts: &DemoOptions) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    if opts.from_year < 2003 || ymd(opts.from_year, 1, 1) >= opts.today {
        bail!("--from-year must be 2003 or later and before today");
    }
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the database")?;
    let conn_task = tokio::spawn(connection);
    if count(&client, "loans").await? > 0 {
        bail!("the database already holds loans: `danbao demo` fills an empty database only (create a fresh one)");
    }
    crate::bootstrap::ensure_admin(url, Some(DEMO_PASSWORD.into())).await?;
    crate::bootstrap::load_presets(url).await?;
    let mut conn = AsyncPgConnection::establish(url).await?;
    let policy_rows: Vec<PolicyRow> = policies::table
        .filter(policies::region_code.is_null())
        .order(policies::effective_from.asc())
        .select(PolicyRow::as_select())
        .load(&mut conn)
        .await?;
    let policies = policy_rows
        .into_iter()
        .map(|row| {
            let domain = row.to_domain().map_err(|e| anyhow!("{e}"))?;
            Ok(PolicyInfo { row, domain })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let password_hash = crate::auth::hash_password(DEMO_PASSWORD)?;

    client.batch_execute("BEGIN").await?;
    let mut root = Rng::new(opts.seed, 7);
    let mut ids = Ids {
        rng: Rng::new(opts.seed, 11),
        last_ms: 0,
    };
    let start = ymd(opts.from_year, 1, 1);

    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let qo = |s: Option<String>| {
        s.map_or_else(
            || "NULL".to_owned(),
            |s| format!("'{}'", s.replace('\'', "''")),
        )
    };

    // Regions.
    let mut sql = String::new();
    let mut regions: Vec<(&str, &str)> = vec![PROVINCE];
    for c in CITIES {
        regions.push((c.code, c.name));
        regions.extend(c.districts.iter().copied());
    }
    for (code, name) in &regions {
        let parent = if code.ends_with("0000") {
            None
        } else if code.ends_with("00") {
            Some(format!("{}0000", &code[..2]))
        } else {
            Some(format!("{}00", &code[..4]))
        };
        let _ = writeln!(
            sql,
            "INSERT INTO regions (code, name, parent_code) VALUES ({}, {}, {}) ON CONFLICT (code) DO NOTHING;",
            q(code),
            q(name),
            qo(parent)
        );
    }
    // Banks.
    for (code, name, _) in BANKS {
        let id = ids.next(start);
        let _ = writeln!(
            sql,
            "INSERT INTO banks (id, code, name) VALUES ({}, {}, {}) ON CONFLICT (code) DO NOTHING;",
            q(&id.to_string()),
            q(code),
            q(name)
        );
    }
    client.batch_execute(&sql).await?;
    sql.clear();
    let mut banks = Vec::new();
    let mut users: Vec<DemoUser> = Vec::new();
    for (code, name, _) in BANKS {
        let row = client
            .query_one("SELECT id::text FROM banks WHERE code = $1", &[code])
            .await?;
        let id = Uuid::parse_str(&row.get::<_, String>(0))?;
        let username = format!("bank.{}", code.to_lowercase());
        users.push((
            username.clone(),
            format!("{name}经办员"),
            "bank",
            None,
            Some(id),
            None,
        ));
        banks.push((id, *code, username));
    }
    // Centres, funds, clerks, supervisors.
    let mut centres = Vec::new();
    let mut funds = Vec::new();
    let mut centre_defs: Vec<(String, String, String, usize, u32)> = CITIES
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.code.to_owned(),
                c.name.to_owned(),
                c.key.to_owned(),
                i,
                c.weight,
            )
        })
        .collect();
    for (city, code, name, key, w) in COUNTY_CENTRES {
        centre_defs.push((
            (*code).to_owned(),
            (*name).to_owned(),
            (*key).to_owned(),
            *city,
            *w,
        ));
    }
    users.push((
        "sup.jx".into(),
        "江西省人社厅".into(),
        "supervisor",
        None,
        None,
        Some(PROVINCE.0),
    ));
    for c in CITIES {
        users.push((
            format!("sup.{}", c.key),
            format!("{}人社局", c.name),
            "supervisor",
            None,
            None,
            Some(c.code),
        ));
    }
    for (n, (code, name, key, city, weight)) in centre_defs.iter().enumerate() {
        let centre_id = ids.next(start);
        let fund_id = ids.next(start);
        let _ = writeln!(
            sql,
            "INSERT INTO centres (id, name, region_code) VALUES ({}, {}, {});
             INSERT INTO funds (id, centre_id, name, bank_account) VALUES ({}, {}, {}, {});",
            q(&centre_id.to_string()),
            q(&format!("{name}小额贷款担保中心")),
            q(code),
            q(&fund_id.to_string()),
            q(&centre_id.to_string()),
            q(&format!("{name}小额贷款担保基金")),
            q(&format!("36{:04}0188{:06}", n, root.next() % 1_000_000)),
        );
        for k in 1..=2 {
            users.push((
                format!("clerk.{key}.{k}"),
                format!("{name}担保中心经办{k}"),
                "clerk",
                Some(centre_id),
                None,
                None,
            ));
        }
        funds.push(Fund {
            id: fund_id,
            balance_now: Decimal::ZERO,
            outstanding_now: Decimal::ZERO,
            pending_balance: BTreeMap::new(),
            pending_outstanding: BTreeMap::new(),
            balance: Decimal::ZERO,
            outstanding: Decimal::ZERO,
            source_turn: n,
        });
        centres.push(Centre {
            id: centre_id,
            region: code.clone(),
            city: *city,
            weight: *weight,
            fund: n,
            clerks: [Uuid::nil(), Uuid::nil()],
            communities: Vec::new(),
        });
    }
    client.batch_execute(&sql).await?;
    sql.clear();
    for (username, display, role, centre, bank, region) in &users {
        let id = ids.next(start);
        let _ = writeln!(
            sql,
            "INSERT INTO users (id, username, display_name, password_hash, role, centre_id, bank_id, region_code)
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}) ON CONFLICT (username) DO NOTHING;",
            q(&id.to_string()),
            q(username),
            q(display),
            q(&password_hash),
            q(role),
            qo(centre.map(|c| c.to_string())),
            qo(bank.map(|c| c.to_string())),
            qo(region.map(str::to_owned)),
        );
    }
    client.batch_execute(&sql).await?;
    sql.clear();
    let user_id = async |username: &str| -> anyhow::Result<Uuid> {
        let row = client
            .query_one(
                "SELECT id::text FROM users WHERE username = $1",
                &[&username],
            )
            .await?;
        Ok(Uuid::parse_str(&row.get::<_, String>(0))?)
    };
    for (n, (_, _, key, _, _)) in centre_defs.iter().enumerate() {
        centres[n].clerks = [
            user_id(&format!("clerk.{key}.1")).await?,
            user_id(&format!("clerk.{key}.2")).await?,
        ];
    }
    let mut bank_rows = Vec::new();
    for (id, code, username) in &banks {
        bank_rows.push(Bank {
            id: *id,
            code,
            user: user_id(username).await?,
        });
    }
    // Credit communities, some revoked later.
    let today = opts.today;
    let years = i64::from(today.year() - opts.from_year + 1);
    for centre in &mut centres {
        let districts: Vec<(&str, &str)> = if centre.region.ends_with("00") {
            CITIES[centre.city].districts.to_vec()
        } else {
            CITIES[centre.city]
                .districts
                .iter()
                .filter(|d| d.0 == centre.region)
                .copied()
                .collect()
        };
        let howmany = 3 + i64::from(centre.weight) * i64::from(opts.loans) / 40_000;
        for k in 0..howmany.min(60) {
            let id = ids.next(start);
            let district = districts[root.index(districts.len())];
            let certified_on = add_days(start, root.range(-400, years * 365 * 3 / 4));
            let revoked_on = root
                .chance(0.15)
                .then(|| add_days(certified_on, root.range(200, 2000)))
                .filter(|d| *d <= today);
            let name = format!(
                "{}{}{}社区",
                district.1,
                COMMUNITY_NAMES[usize::try_from(k).unwrap_or(0) % COMMUNITY_NAMES.len()],
                if k >= 16 {
                    format!("{}", k / 16 + 1)
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                sql,
                "INSERT INTO credit_communities (id, centre_id, region_code, name, certified_on, revoked_on, revocation_reason) VALUES ({}, {}, {}, {}, {}, {}, {});",
                q(&id.to_string()),
                q(&centre.id.to_string()),
                q(district.0),
                q(&name),
                q(&certified_on.to_string()),
                qo(revoked_on.map(|d| d.to_string())),
                qo(revoked_on.map(|_| "社区信用环境变化，取消信用社区资格".to_owned())),
            );
            centre.communities.push(Community {
                id,
                certified_on,
                revoked_on,
            });
        }
    }
    client.batch_execute(&sql).await?;
    sql.clear();

    let ledger_start: i64 = client
        .query_one("SELECT coalesce(max(id), 0) FROM fund_ledger_entries", &[])
        .await?
        .get(0);
    let mut world = World {
        opts: opts.clone(),
        start,
        end: add_days(today, -1),
        policies,
        centres,
        funds,
        banks: bank_rows,
        ids,
        ledger_id: ledger_start,
        repayment_seq: 0,
        national_ids: HashSet::new(),
        pii: pii.clone(),
        out: Out::new(),
        principal_sum: Decimal::ZERO,
    };
    // Yearly contributions: the city's finance every January, the province's every July.
    let total_weight: u32 = world.centres.iter().map(|c| c.weight).sum();
    for year in opts.from_year..=today.year() {
        let from = ymd(year, 1, 1);
        let per_year = {
            let f = |d: NaiveDate| {
                let span = (world.end - world.start).num_days().max(1);
                #[allow(clippy::cast_precision_loss)]
                let x = ((d - world.start).num_days() as f64 / span as f64).clamp(0.0, 1.0);
                x.powf(1.25)
            };
            f(ymd(year + 1, 1, 1)) - f(from)
        };
        let limit = world
            .policy_on(from.max(ymd(2003, 1, 1)))
            .map_or(Decimal::from(20_000), |p| {
                p.domain.individual_limit.amount()
            });
        for n in 0..world.centres.len() {
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            let loans = (per_year * f64::from(opts.loans) * f64::from(world.centres[n].weight)
                / f64::from(total_weight)) as i64;
            let yearly =
                (Decimal::from(loans) * limit * Decimal::new(6, 2) / Decimal::from(10_000)).ceil()
                    * Decimal::from(10_000);
            let clerk = world.centres[n].clerks[0];
            let fund = world.centres[n].fund;
            let on = add_days(from, 4);
            if on <= today {
                world.contribute(fund, on, yearly.max(Decimal::from(500_000)), clerk);
            }
            let on = ymd(year, 7, 1);
            if on <= today {
                world.contribute(
                    fund,
                    on,
                    (yearly / Decimal::from(2))
                        .round_dp(0)
                        .max(Decimal::from(200_000)),
                    clerk,
                );
            }
        }
    }

    let bulk = BulkLoad::begin(&client).await?;
    let bar = if opts.progress {
        indicatif::ProgressBar::new(u64::from(opts.loans))
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} demo loans [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Generating loans is CPU work in this process and COPY is CPU work in PostgreSQL's: a
    // thread generates the next chunk while this task writes the last one, so on two cores
    // they overlap instead of taking turns. Chunks are written in order, one at a time.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Out, u32)>(2);
    let loans = opts.loans;
    let chunk_size = opts.chunk.max(1);
    let generator = tokio::task::spawn_blocking(move || -> anyhow::Result<World> {
        let mut i = 0;
        while i < loans {
            let end = (i + chunk_size).min(loans);
            for k in i..end {
                world.loan(k).with_context(|| format!("demo loan {k}"))?;
            }
            let chunk = std::mem::replace(&mut world.out, Out::new());
            if tx.blocking_send((chunk, end - i)).is_err() {
                // The writer stopped on an error, which it reports.
                break;
            }
            i = end;
        }
        Ok(world)
    });
    while let Some((mut chunk, n)) = rx.recv().await {
        chunk.flush(&client).await?;
        bar.inc(u64::from(n));
    }
    let world = generator.await.context("the demo generator panicked")??;
    bar.finish_and_clear();
    bulk.finish(&client).await?;
    for f in &world.funds {
        if f.balance < Decimal::ZERO {
            bail!("demo fund {} would end below zero ({})", f.id, f.balance);
        }
        let _ = writeln!(
            sql,
            "UPDATE funds SET balance = {}, outstanding_guaranteed = {} WHERE id = '{}';",
            f.balance, f.outstanding, f.id
        );
    }
    let _ = writeln!(
        sql,
        "SELECT setval(pg_get_serial_sequence('fund_ledger_entries', 'id'), greatest((SELECT max(id) FROM fund_ledger_entries), 1));"
    );
    client.batch_execute(&sql).await?;
    client.batch_execute("COMMIT").await?;
    // Fresh planner statistics: without them the statistics queries (and `verify`) plan as if
    // the tables were empty and take minutes instead of seconds.
    client.batch_execute("ANALYZE").await?;
    let generated = started.elapsed();

    let tables = [
        "regions",
        "centres",
        "banks",
        "users",
        "policies",
        "funds",
        "fund_ledger_entries",
        "credit_communities",
    ]
    .into_iter()
    .chain(BULK_TABLES.iter().copied());
    let mut counts = Vec::new();
    for t in tables {
        counts.push((t, count(&client, t).await?));
    }
    let detail = serde_json::json!({
        "seed": opts.seed, "loans": opts.loans, "from_year": opts.from_year, "today": today,
        "counts": counts.iter().map(|(t, n)| ((*t).to_owned(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
    });
    danbao_persistence::repo::audit::record(
        &conn,
        &crate::bootstrap::system_event("demo", "demo.generated", "demo", opts.seed, detail),
    )
    .await?;
    drop(client);
    conn_task.abort();

    let verify_elapsed = if opts.verify {
        let verify_started = Instant::now();
        let report = crate::verify::run(url, today).await?;
        if !report.ok() {
            let bad: Vec<String> = report
                .checks
                .iter()
                .filter(|c| !c.failures.is_empty())
                .map(|c| format!("{}: {}", c.rule, c.failures.join("; ")))
                .collect();
            bail!(
                "the demo database does not pass `danbao verify`: {}",
                bad.join(" | ")
            );
        }
        Some(verify_started.elapsed())
    } else {
        None
    };
    #[allow(clippy::cast_precision_loss)]
    let loans_per_second = f64::from(opts.loans) / generated.as_secs_f64().max(1e-9);
    Ok(DemoSummary {
        counts,
        elapsed: generated,
        loans_per_second,
        principal_sum: world.principal_sum,
        verify_elapsed,
    })
}

// ---- bulk load ----------------------------------------------------------------------------------

/// The tables the loan chunks fill.
const BULK_TABLES: &[&str] = &[
    "borrowers",
    "loans",
    "loan_extensions",
    "instalments",
    "repayments",
    "repayment_reversals",
    "compensation_claims",
    "recoveries",
    "write_offs",
    "instalment_facts",
    "principal_payments",
    "overdue_spans",
];

/// The rule of each insert trigger on those tables, over the whole table: the number of rows
/// that break it. They say what the trigger functions of the migrations say (a trigger not
/// named here stops the demo, so that a new one cannot be skipped unchecked).
const INSERT_RULES: &[(&str, &str)] = &[
    (
        "repayments_fit_loan",
        "SELECT count(*) FROM repayments r LEFT JOIN loans l ON l.id = r.loan_id \
         WHERE l.id IS NULL OR l.bank_id <> r.bank_id OR l.disbursed_on IS NULL \
         OR r.value_date < l.disbursed_on",
    ),
    (
        "repayment_reversals_fit_repayment",
        "SELECT count(*) FROM repayment_reversals v LEFT JOIN repayments r ON r.id = v.repayment_id \
         WHERE r.id IS NULL OR r.loan_id <> v.loan_id",
    ),
    (
        "instalments_version",
        "SELECT count(*) FROM instalments i WHERE i.version = 2 \
         AND NOT EXISTS (SELECT 1 FROM loan_extensions e WHERE e.loan_id = i.loan_id)",
    ),
    (
        "loans_placement",
        "SELECT count(*) FROM loans l \
         WHERE l.region_code IS DISTINCT FROM (SELECT region_code FROM centres WHERE id = l.centre_id) \
         OR l.category IS DISTINCT FROM (SELECT category FROM borrowers WHERE id = l.borrower_id)",
    ),
];

/// Insert triggers that keep a summary of the rows (statement triggers, set-based already, but
/// each COPY would join its rows to the loans again): the statement that rebuilds the summary
/// from the whole tables, run once at the end instead.
const INSERT_REBUILDS: &[(&str, &str)] = &[
    (
        "instalment_facts_rollup_insert",
        "SELECT danbao_rebuild_statistics()",
    ),
    (
        "principal_payments_rollup_insert",
        "SELECT danbao_rebuild_statistics()",
    ),
    (
        "principal_payments_stock_insert",
        "SELECT danbao_rebuild_statistics()",
    ),
    ("loans_stock_insert", "SELECT danbao_rebuild_statistics()"),
    (
        "instalment_facts_closed_on_insert",
        "SELECT danbao_rebuild_statistics()",
    ),
    (
        "overdue_spans_fit_loan",
        "SELECT danbao_rebuild_statistics()",
    ),
    (
        "loans_prev_disbursed",
        "SELECT danbao_rebuild_prev_disbursed()",
    ),
    (
        "loans_next_disbursed",
        "SELECT danbao_rebuild_prev_disbursed()",
    ),
    (
        "loans_stat_months_insert",
        "SELECT danbao_rebuild_loan_months()",
    ),
    ("loans_closed_books", "SELECT danbao_rebuild_closed_books()"),
    (
        "instalment_facts_closed_books_insert",
        "SELECT danbao_rebuild_closed_books()",
    ),
    (
        "principal_payments_closed_books_insert",
        "SELECT danbao_rebuild_closed_books()",
    ),
];

/// Loading millions of rows, PostgreSQL spent most of the demo's time checking each row's
/// foreign keys and insert triggers one by one and keeping every secondary index up to date
/// row by row. As `pg_restore` does, the loan tables are loaded without them, and they come
/// back at the end of the same transaction: each index built in one sort, each foreign key
/// validated in one join, each insert trigger's rule checked over the whole table. A row that
/// breaks any of them fails the demo, and nothing is written. Primary keys and unique
/// constraints stay in place throughout.
struct BulkLoad {
    /// Statements that put back what was taken off, in order.
    restore: Vec<String>,
    /// Insert triggers switched off, with their rule.
    rules: Vec<(&'static str, &'static str)>,
    /// What rebuilds the summaries kept by the insert triggers switched off.
    rebuilds: Vec<&'static str>,
}

impl BulkLoad {
    async fn begin(client: &tokio_postgres::Client) -> anyhow::Result<BulkLoad> {
        let tables: Vec<String> = BULK_TABLES.iter().map(|t| (*t).to_owned()).collect();
        let rels = "ARRAY(SELECT to_regclass(t)::oid FROM unnest($1::text[]) t)";
        let fks = client
            .query(
                &format!(
                    "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname), \
                            format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) \
                     FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY({rels}) ORDER BY conrelid, conname"
                ),
                &[&tables],
            )
            .await?;
        // Secondary indexes: those that back no primary key, unique or exclusion constraint.
        let indexes = client
            .query(
                &format!(
                    "SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid) \
                     FROM pg_index i WHERE i.indrelid = ANY({rels}) AND NOT EXISTS ( \
                       SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid \
                       AND c.contype IN ('p', 'u', 'x')) \
                     ORDER BY i.indrelid, i.indexrelid"
                ),
                &[&tables],
            )
            .await?;
        // Triggers that fire on INSERT (bit 2 of tgtype), for each row or statement.
        let triggers = client
            .query(
                &format!(
                    "SELECT tgname::text, format('ALTER TABLE %s DISABLE TRIGGER %I', tgrelid::regclass, tgname), \
                            format('ALTER TABLE %s ENABLE TRIGGER %I', tgrelid::regclass, tgname) \
                     FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = ANY({rels}) AND tgtype & 4 <> 0 \
                     ORDER BY tgrelid, tgname"
                ),
                &[&tables],
            )
            .await?;
        let mut off = String::new();
        let mut restore = Vec::new();
        let mut rules = Vec::new();
        let mut rebuilds = Vec::new();
        for t in &triggers {
            let name: String = t.get(0);
            if let Some(rebuild) = INSERT_REBUILDS.iter().find(|(n, _)| *n == name) {
                if !rebuilds.contains(&rebuild.1) {
                    rebuilds.push(rebuild.1);
                }
            } else {
                let rule = INSERT_RULES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| {
                        anyhow!(
                            "the insert trigger {name} has no set-based rule in the demo's bulk load"
                        )
                    })?;
                rules.push(*rule);
            }
            let _ = writeln!(off, "{};", t.get::<_, String>(1));
            restore.push(t.get::<_, String>(2));
        }
        for r in &fks {
            let _ = writeln!(off, "{};", r.get::<_, String>(0));
        }
        for r in &indexes {
            let _ = writeln!(off, "{};", r.get::<_, String>(0));
            restore.push(r.get::<_, String>(1));
        }
        // Foreign keys last: their checks use the indexes just rebuilt.
        restore.extend(fks.iter().map(|r| r.get::<_, String>(1)));
        client.batch_execute(&off).await?;
        Ok(BulkLoad {
            restore,
            rules,
            rebuilds,
        })
    }

    async fn finish(self, client: &tokio_postgres::Client) -> anyhow::Result<()> {
        // Index builds sort in memory up to this much each, and the rebuilds of the statistics
        // rollups hash the loans, instead of spilling to disk.
        client
            .batch_execute("SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL work_mem = '128MB'")
            .await?;
        for (name, rule) in &self.rules {
            let broken: i64 = client.query_one(*rule, &[]).await?.get(0);
            if broken > 0 {
                bail!("{broken} demo rows break the rule of the trigger {name}");
            }
        }
        // The rebuilds run with the triggers back on, whose statements look each row's loan up
        // by key; planned without statistics, they expect thousands of rows per key (and, at a
        // million loans, compile each plan to machine code: minutes for one rebuild).
        let analyze = format!("ANALYZE {}", BULK_TABLES.join(", "));
        for s in self
            .restore
            .iter()
            .map(String::as_str)
            .chain([analyze.as_str()])
            .chain(self.rebuilds)
        {
            client
                .batch_execute(s)
                .await
                .with_context(|| format!("putting back: {s}"))?;
        }
        Ok(())
    }
}
