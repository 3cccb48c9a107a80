//! Daily repayment files (还款文件): a bank sends the day's repayments as one CSV (RFC 4180,
//! header row) or JSON body, and gets an answer per row.
//!
//! The route reads the whole body (at most [`MAX_BODY`]) before it takes a connection; then
//! the body is parsed chunk by chunk (`csv_core`; `danbao import-repayments` streams its file
//! straight in); rows are applied
//! [`CHUNK_ROWS`] at a time: the chunk's loans are resolved in one query (only the caller's
//! bank's loans: another bank's loan is `not_found`, like a loan that does not exist), then
//! locked (in id order) and their books, the chunk's known references and the current
//! allocations loaded in a few queries; the rows are applied in memory in file order with the
//! single route's own checks and allocation (`plan_repayment`), and the chunk is written once:
//! repayments, allocations, audit events, the funds' totals and the batch rows (one statement
//! per table, pipelined). The touched loans' facts (and so the statistics) are worked out per
//! chunk but written once per loan, at the end of the file or sooner ([`Run::flush_facts`]).
//! A chunk is planned while the chunk before it is being written: its reads go first (they
//! read nothing that write changes), and its planning runs while the database executes the
//! previous chunk's statements. Every row was checked before anything
//! is written, so a failed row writes nothing; should a chunk's write fail anyway, its
//! savepoint is rolled back, the chunk goes row by row through [`apply_repayment`], each row
//! in a savepoint of its own, and the next chunk is loaded and planned again.
//!
//! The whole file is one transaction. At its start it locks, in id order, the funds of every
//! loan of the bank (a fund first seen later is locked when its chunk comes); since every
//! batch takes its fund locks in id order and a single repayment takes one fund and then one
//! loan, batches cannot deadlock with each other or with single repayments. The price: the
//! bank's funds stay locked while the file is applied. In atomic mode the money moves inside
//! one more savepoint, rolled back if any row failed; the batch and its rows are recorded
//! either way. The batch header is written last, with its counts (both tables are
//! append-only; the rows' foreign key to the header is checked at commit).
use super::repayments::{
    apply_repayment, changed_allocations, plan_repayment, resend_of, Books, RepaymentInput,
};
use crate::auth::{AuthUser, Principal, Role};
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{PageParams, Query, MAX_LIMIT};
use crate::idempotency::{Idem, IdempotencyKey};
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use danbao_domain::repayment_file::{
    self, validate, Column, CsvRows, FileError, ParsedRow, RawRow, Target,
};
pub use danbao_domain::repayment_file::{MAX_LINE, MAX_REFERENCE, MAX_ROWS};
use danbao_domain::{DomainError, Position, Replay};
use danbao_persistence::diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncPgConnection, TransactionManager,
};
use danbao_persistence::models::loan::LoanRow;
use danbao_persistence::models::policy::PolicyRow;
use danbao_persistence::models::repayment::{AllocationRow, RepaymentRow};
use danbao_persistence::models::repayment_batch::{BatchRow, BatchRowOutcome};
use danbao_persistence::models::stats::{InstalmentFactRow, PrincipalPaymentRow};
use danbao_persistence::repo;
use danbao_persistence::repo::repayment_batch::BatchLoan;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use utoipa::ToSchema;
use uuid::Uuid;

type Problem = crate::error::Problem;

/// Largest body accepted (bytes); more is 413.
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// Largest JSON body: JSON is read whole before it is parsed; send big files as CSV.
pub const MAX_JSON_BODY: usize = 8 * 1024 * 1024;
/// Rows applied together: their loans are locked and their books loaded once per chunk, so
/// a loan with several rows in a file is loaded fewer times the bigger the chunk (memory:
/// the chunk's rows and its loans' books).
pub const CHUNK_ROWS: usize = 2000;

fn file_error(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::validation(field, message)
}

/// A refused file: 422 naming each field (a column, `header` or `row N`).
impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        crate::error::from_domain_errors(e.0)
    }
}

// ---- rows as sent ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// A repayment file as JSON (for the OpenAPI document; rows are read leniently, so that a bad
/// row is that row's failure, not the file's).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchFile {
    rows: Vec<BatchFileRow>,
}

/// One row: every value a string; exactly one of `loan_id` and `bank_account_no`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchFileRow {
    #[schema(min_length = 1, max_length = 64, example = "JXRCU-20261127-000001")]
    bank_reference: String,
    #[schema(example = "2026-11-27")]
    value_date: NaiveDate,
    #[schema(pattern = r"^\d{1,16}(\.\d{1,2})?$", example = "1043.50")]
    amount: String,
    loan_id: Option<Uuid>,
    #[schema(max_length = 64)]
    bank_account_no: Option<String>,
}

/// `{"rows": [{...}, ...]}`, each row an object of strings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// JSON rows, read whole (at most [`MAX_JSON_BODY`] bytes).
pub fn json_rows(body: &[u8]) -> ApiResult<Vec<RawRow>> {
    let file: JsonFile = crate::extract::parse_json(body)?;
    if file.rows.len() > MAX_ROWS as usize {
        return Err(repayment_file::too_many_rows().into());
    }
    Ok(file
        .rows
        .into_iter()
        .enumerate()
        .map(|(i, obj)| {
            let mut row = RawRow {
                row_no: u32::try_from(i + 1).unwrap_or(u32::MAX),
                ..RawRow::default()
            };
            for (k, v) in obj {
                let Some(c) = Column::named(&k) else {
                    row.problem.get_or_insert_with(|| {
                        (k.chars().take(64).collect(), "unknown field".into())
                    });
                    continue;
                };
                match v {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(s) => {
                        let s = s.trim();
                        row.set(c, (!s.is_empty()).then(|| s.to_owned()));
                    }
                    _ => {
                        row.problem
                            .get_or_insert_with(|| (k.clone(), "must be a string".into()));
                    }
                }
            }
            row
        })
        .collect())
}

// ---- validation -----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub code: String,
    pub field: Option<String>,
    pub message: String,
}

impl From<DomainError> for RowError {
    fn from(e: DomainError) -> Self {
        RowError::invalid(e.field().unwrap_or("row"), e.message())
    }
}

impl RowError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        RowError {
            code: "validation_failed".into(),
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A row's error from what `apply_repayment` answered; `None` for errors that are not
    /// the row's fault (the database went away): those stop the whole file.
    fn from_api(e: &ApiError) -> Option<Self> {
        let first =
            |errors: &[FieldError]| errors.first().map(|f| (f.field.clone(), f.message.clone()));
        let (field, message) = match e {
            ApiError::Validation { errors, detail }
            | ApiError::BadRequest { errors, detail, .. } => {
                first(errors).map_or((None, detail.clone()), |(f, m)| (Some(f), m))
            }
            ApiError::Rule { errors, detail, .. } => {
                (first(errors).map(|(f, _)| f), detail.clone())
            }
            ApiError::Conflict { code, detail } => match *code {
                "duplicate_reference" => (Some("bank_reference".to_owned()), detail.clone()),
                "invalid_state" => (Some("loan_id".to_owned()), detail.clone()),
                _ => return None,
            },
            ApiError::NotFound => (None, "no such loan of this bank".to_owned()),
            _ => return None,
        };
        Some(RowError {
            code: e.code().to_owned(),
            field,
            message,
        })
    }
}

// ---- applying -------------------------------------------------------------------------------

/// How far a file has got, for progress bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub bytes: u64,
    pub rows: u64,
}

/// Who sends the file, and how.
pub struct BatchRequest<'a> {
    pub principal: &'a Principal,
    pub bank_id: Uuid,
    pub request_id: &'a RequestId,
    pub format: Format,
    pub atomic: bool,
    pub today: NaiveDate,
    /// Makes retries safe; fingerprinted over the raw body (and `atomic`).
    pub idem: Option<Idem>,
    pub idem_hasher: Option<sha2::Sha256>,
    /// Rows applied together ([`CHUNK_ROWS`] unless `import-repayments --chunk-rows`).
    pub chunk_rows: usize,
    /// Loans whose facts may wait ([`PENDING_LOANS`] unless `import-repayments
    /// --pending-loans`; see [`Run::flush_facts`]).
    pub pending_loans: usize,
}

/// The finished batch (or the replay of an earlier answer to the same Idempotency-Key).
pub enum BatchOutcome {
    Done(Box<BatchView>),
    Replay(crate::idempotency::Replay),
}

struct Run<'a> {
    audit: Audit<'a>,
    bank_id: Uuid,
    today: NaiveDate,
    atomic: bool,
    batch_id: Uuid,
    locked: BTreeSet<Uuid>,
    regions: HashMap<Uuid, String>,
    rows: i32,
    applied: i32,
    duplicates: i32,
    failed: i32,
    /// Atomic mode: the rows' outcomes wait for the verdict.
    held: Vec<BatchRowOutcome>,
    /// Atomic mode: repayments created by this file (rolled back if it is rejected).
    created: HashSet<Uuid>,
    cache: LoanCache,
    /// The chunk planned and not yet written (see [`Run::chunk`]).
    in_flight: Option<InFlight>,
    /// Facts of loans that written chunks changed, not yet written (see [`Run::flush_facts`]).
    pending: HashMap<Uuid, PendingFacts>,
    pending_loans: usize,
}

/// A loan's facts and principal payments.
type LoanFacts = (Vec<InstalmentFactRow>, Vec<PrincipalPaymentRow>);

/// A loan's facts as stored, and as the chunks written since give them.
struct PendingFacts {
    stored: LoanFacts,
    latest: LoanFacts,
}

/// Loans whose facts may wait; past it they are written before the next chunk (memory: a
/// few KiB per loan).
pub const PENDING_LOANS: usize = 10_000;

/// What the chunks loaded and changed of their loans, kept for the next chunks of the file:
/// with rows spread over many loans, every chunk used to load the books of nearly every loan
/// again. The loans stay locked to the end of the file's transaction, so nothing else changes
/// them meanwhile. Dropped when a chunk is rolled back or goes row by row (its savepoint took
/// the locks and the changes it made with it), and when it holds more than
/// [`CACHE_REPAYMENTS`] repayments (memory).
#[derive(Default)]
struct LoanCache {
    loans: HashMap<Uuid, LoanRow>,
    /// The account numbers of `loans`, so that rows naming them are resolved from memory.
    accounts: HashMap<String, Uuid>,
    books: HashMap<Uuid, Books>,
    policies: HashMap<Uuid, PolicyRow>,
    current: HashMap<Uuid, HashMap<Uuid, AllocationRow>>,
    first_extended: HashMap<Uuid, u32>,
    /// Each loan's facts as stored (read, or written by [`Run::flush_facts`]), so that they
    /// are not read again. Planning never changes them, so they outlive a failed plan.
    facts: HashMap<Uuid, LoanFacts>,
    /// Each loan's books applied, so that its next row only adds to them (`plan_repayment`).
    replays: HashMap<Uuid, Option<Replay<Uuid>>>,
}

/// About 600 bytes each with their allocations, twice (books and replay): the cache stays
/// under ~200 MiB.
const CACHE_REPAYMENTS: usize = 300_000;

impl LoanCache {
    fn repayments(&self) -> usize {
        self.books.values().map(|b| b.repayments.len()).sum()
    }
}

fn bounded(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A row of a chunk, ready to apply or already refused.
enum Work {
    /// Row number, reference as sent, error.
    Refused(u32, String, Option<Uuid>, RowError),
    Apply(u32, ParsedRow, BatchLoan),
}

/// A chunk's outcomes, the principal repaid per fund, and the repayments it created.
type ChunkResult = (
    Vec<BatchRowOutcome>,
    HashMap<Uuid, rust_decimal::Decimal>,
    Vec<Uuid>,
);

impl Run<'_> {
    fn outcome(
        &self,
        row_no: u32,
        reference: &str,
        loan_id: Option<Uuid>,
        result: Result<(bool, Uuid), RowError>,
    ) -> BatchRowOutcome {
        let (outcome, repayment_id, error) = match result {
            Ok((true, id)) => ("applied", Some(id), None),
            Ok((false, id)) => ("duplicate", Some(id), None),
            Err(e) => ("failed", None, Some(e)),
        };
        BatchRowOutcome {
            batch_id: self.batch_id,
            row_no: i32::try_from(row_no).unwrap_or(i32::MAX),
            bank_reference: bounded(reference, 200),
            loan_id,
            outcome: outcome.into(),
            repayment_id,
            error_code: error.as_ref().map(|e| bounded(&e.code, 64)),
            error_field: error
                .as_ref()
                .and_then(|e| e.field.as_deref())
                .map(|f| bounded(f, 64)),
            error_message: error.map(|e| bounded(&e.message, 1000)),
        }
    }

    fn input<'r>(&'r self, row: &'r ParsedRow, loan: &BatchLoan) -> RepaymentInput<'r> {
        RepaymentInput {
            loan_id: loan.id,
            reference: &row.reference,
            value_date: row.value_date,
            amount: row.amount,
            today: self.today,
            region_code: self.regions.get(&loan.centre_id).map_or("", String::as_str),
            defer_fund_totals: true,
        }
    }

    /// A chunk's reads: its loans not seen by an earlier chunk locked and their books loaded,
    /// the references it names that exist, and the stored facts of its loans this file has
    /// not written. They run before the previous chunk's writes are sent, and read nothing
    /// those writes change: a loan the previous chunk applied a row to is in the cache.
    async fn load(
        &self,
        conn: &mut AsyncPgConnection,
        work: Vec<Work>,
        cache: &mut LoanCache,
    ) -> ApiResult<Loaded> {
        let chunk_loans: BTreeSet<Uuid> = work
            .iter()
            .filter_map(|w| match w {
                Work::Apply(_, _, l) => Some(l.id),
                Work::Refused(..) => None,
            })
            .collect();
        let ids: Vec<Uuid> = chunk_loans
            .iter()
            .filter(|id| !cache.loans.contains_key(id))
            .copied()
            .collect();
        let references: Vec<String> = work
            .iter()
            .filter_map(|w| match w {
                Work::Apply(_, r, _) => Some(r.reference.clone()),
                Work::Refused(..) => None,
            })
            .collect();
        // Loans not seen by an earlier chunk: locked, and their books loaded.
        let fresh: Vec<LoanRow> = if ids.is_empty() {
            Vec::new()
        } else {
            repo::loan::lock_many(conn, &ids).await?
        };
        let firsts: HashMap<String, RepaymentRow> = if references.is_empty() {
            HashMap::new()
        } else {
            repo::repayment::by_references(conn, self.bank_id, &references)
                .await?
                .into_iter()
                .map(|r| (r.bank_reference.clone(), r))
                .collect()
        };
        // Books only of loans a repayment can go to (as `apply_repayment` loads them).
        let open: Vec<&LoanRow> = fresh
            .iter()
            .filter(|l| l.disbursed_on.is_some() && (l.status == "active" || l.status == "settled"))
            .collect();
        let open_ids: Vec<Uuid> = open.iter().map(|l| l.id).collect();
        if !open_ids.is_empty() {
            let policy_ids: Vec<Uuid> = open
                .iter()
                .map(|l| l.policy_id)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let many = repo::repayment::books_of_many(conn, &open_ids, &policy_ids)
                .await?
                .grouped();
            cache.policies.extend(many.policies);
            let (instalments, mut repayments) = (many.instalments, many.repayments);
            for l in &open {
                let policy = cache
                    .policies
                    .get(&l.policy_id)
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("policy missing")))?;
                let b = Books::from_rows(
                    l,
                    policy,
                    instalments.get(&l.id).map_or(&[][..], Vec::as_slice),
                    repayments.remove(&l.id).unwrap_or_default(),
                )?;
                if let Some(b) = b {
                    // Each repayment's current allocation: the one it was booked with, unless
                    // an allocation row (below) followed.
                    let current = cache.current.entry(l.id).or_default();
                    for (r, _) in &b.repayments {
                        current.insert(r.id, AllocationRow::booked(r));
                    }
                    cache.books.insert(l.id, b);
                }
            }
            for a in repo::repayment::latest_allocations(conn, &open_ids).await? {
                cache
                    .current
                    .entry(a.loan_id)
                    .or_default()
                    .insert(a.repayment_id, a);
            }
            let extended: Vec<Uuid> = open
                .iter()
                .filter(|l| l.schedule_version > 1)
                .map(|l| l.id)
                .collect();
            if !extended.is_empty() {
                for e in repo::compensation::extensions_of(conn, &extended).await? {
                    if let Ok(f) = u32::try_from(e.first_extended) {
                        cache.first_extended.insert(e.loan_id, f);
                    }
                }
            }
        }
        for l in fresh {
            if let Some(a) = &l.bank_account_no {
                cache.accounts.insert(a.clone(), l.id);
            }
            cache.loans.insert(l.id, l);
        }
        // The stored facts of loans seen before are known; only the others are read.
        let unknown: Vec<Uuid> = chunk_loans
            .into_iter()
            .filter(|id| !cache.facts.contains_key(id))
            .collect();
        if !unknown.is_empty() {
            let (facts, payments) = repo::stats::facts_of(conn, &unknown).await?;
            for id in unknown {
                cache.facts.insert(id, (Vec::new(), Vec::new()));
            }
            for f in facts {
                if let Some(e) = cache.facts.get_mut(&f.loan_id) {
                    e.0.push(f);
                }
            }
            for p in payments {
                if let Some(e) = cache.facts.get_mut(&p.loan_id) {
                    e.1.push(p);
                }
            }
        }
        Ok(Loaded { work, firsts })
    }

    /// The chunk applied in memory in file order, with the single route's own checks and
    /// allocation (`plan_repayment`): what it writes (repayments, allocations, the fact rows
    /// that change, settlements, audit events) and each row's outcome. `in_flight`: the
    /// references of the chunk whose writes may not have run yet.
    async fn plan(
        &self,
        loaded: &Loaded,
        cache: &mut LoanCache,
        in_flight: &HashMap<&str, &RepaymentRow>,
    ) -> ApiResult<Planned> {
        let work = &loaded.work;
        let mut firsts = loaded.firsts.clone();
        let LoanCache {
            loans,
            accounts: _,
            books,
            policies,
            current,
            first_extended,
            facts: _,
            replays,
        } = cache;

        let mut outcomes = Vec::with_capacity(work.len());
        let mut repaid: HashMap<Uuid, rust_decimal::Decimal> = HashMap::new();
        let mut created = Vec::new();
        let mut new_rows = Vec::new();
        let mut allocations = Vec::new();
        let mut events = Vec::new();
        let mut settled: Vec<(Uuid, NaiveDate)> = Vec::new();
        // Each loan's position after its last row (`None`: from its replay, see below).
        let mut last: HashMap<Uuid, Option<Position<Uuid>>> = HashMap::new();
        for (i, w) in work.iter().enumerate() {
            // The previous chunk's statements may still be on their way to the server.
            if i % 256 == 255 {
                tokio::task::yield_now().await;
            }
            let (row_no, row, batch_loan) = match w {
                Work::Refused(row_no, reference, loan_id, e) => {
                    outcomes.push(self.outcome(*row_no, reference, *loan_id, Err(e.clone())));
                    continue;
                }
                Work::Apply(row_no, row, loan) => (*row_no, row, loan),
            };
            let input = self.input(row, batch_loan);
            let first = firsts
                .get(&row.reference)
                .or_else(|| in_flight.get(row.reference.as_str()).copied());
            let result = match loans.get_mut(&batch_loan.id) {
                None => Err(ApiError::NotFound),
                Some(loan) => match first {
                    Some(first) => resend_of(first, loan.id, &input).map(|id| (false, id)),
                    None => match plan_repayment(
                        loan,
                        books.get(&loan.id),
                        replays.entry(loan.id).or_default(),
                        &input,
                        self.audit.principal.id,
                        true,
                    ) {
                        Err(e) => Err(e),
                        Ok(plan) => {
                            let id = plan.row.id;
                            if let Some(b) = books.get_mut(&loan.id) {
                                b.repayments.push((plan.row.clone(), false));
                            }
                            // Booked with its allocation: a row only for those it moves, and
                            // one dated after all the others moves none.
                            let current = current.entry(loan.id).or_default();
                            current.insert(id, AllocationRow::booked(&plan.row));
                            if !plan.pushed {
                                allocations.extend(changed_allocations(
                                    loan.id,
                                    &plan.after,
                                    current,
                                ));
                            }
                            if !plan.repaid.is_zero() {
                                *repaid.entry(loan.fund_id).or_default() += plan.repaid;
                            }
                            if let Some(on) = plan.settles_on {
                                "settled".clone_into(&mut loan.status);
                                loan.released_on = Some(on);
                                settled.push((loan.id, on));
                            }
                            events.push(plan.event(&self.audit, &input));
                            firsts.insert(row.reference.clone(), plan.row.clone());
                            new_rows.push(plan.row);
                            // A pushed row's position is brief: the full one, for the facts,
                            // comes from the replay once the chunk is planned.
                            last.insert(loan.id, (!plan.pushed).then_some(plan.after));
                            created.push(id);
                            Ok((true, id))
                        }
                    },
                },
            };
            let result = match result {
                Ok(r) => Ok(r),
                Err(e) => match RowError::from_api(&e) {
                    Some(re) => Err(re),
                    None => return Err(e),
                },
            };
            outcomes.push(self.outcome(row_no, &row.reference, Some(batch_loan.id), result));
        }

        let mut touched: Vec<Uuid> = last.keys().copied().collect();
        touched.sort();
        let mut new_facts = Vec::with_capacity(touched.len());
        for id in &touched {
            let (Some(loan), Some(pos)) = (loans.get(id), last.get_mut(id)) else {
                continue;
            };
            if pos.is_none() {
                let replay = replays.get(id).and_then(Option::as_ref).ok_or_else(|| {
                    ApiError::internal(anyhow::anyhow!("replay of loan {id} missing"))
                })?;
                let as_of = replay
                    .last_value_date()
                    .map_or(self.today, |l| l.max(self.today));
                *pos = Some(replay.position(as_of)?);
            }
            let Some(pos) = pos.as_ref() else { continue };
            let policy = policies
                .get(&loan.policy_id)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("policy missing")))?;
            let f = crate::facts::facts_of(loan, policy, first_extended.get(id).copied(), pos)?;
            new_facts.push((*id, f));
        }
        Ok(Planned {
            outcomes,
            repaid,
            created,
            new_rows,
            allocations,
            new_facts,
            settled,
            events,
        })
    }

    /// The chunk row by row, each row through `apply_repayment` in a savepoint of its own.
    async fn one_by_one(
        &self,
        conn: &mut AsyncPgConnection,
        work: Vec<Work>,
    ) -> ApiResult<ChunkResult> {
        let mut outcomes = Vec::with_capacity(work.len());
        let mut repaid: HashMap<Uuid, rust_decimal::Decimal> = HashMap::new();
        let mut created = Vec::new();
        for w in work {
            let (row_no, row, loan) = match w {
                Work::Refused(row_no, reference, loan_id, e) => {
                    outcomes.push(self.outcome(row_no, &reference, loan_id, Err(e)));
                    continue;
                }
                Work::Apply(row_no, row, loan) => (row_no, row, loan),
            };
            let input = self.input(&row, &loan);
            let audit = &self.audit;
            // A savepoint per row: a refused row rolls back only itself.
            let result = conn
                .transaction::<_, ApiError, _>(async |c| apply_repayment(c, audit, &input).await)
                .await;
            let result = match result {
                Ok(a) => {
                    if !a.principal_repaid.is_zero() {
                        *repaid.entry(loan.fund_id).or_default() += a.principal_repaid;
                    }
                    let id = a.answer.repayment.id;
                    if a.is_new() {
                        created.push(id);
                    }
                    Ok((a.is_new(), id))
                }
                Err(e) => match RowError::from_api(&e) {
                    Some(re) => Err(re),
                    None => return Err(e),
                },
            };
            outcomes.push(self.outcome(row_no, &row.reference, Some(loan.id), result));
        }
        Ok((outcomes, repaid, created))
    }

    /// A chunk's rows checked one by one, their loans found among the bank's (one query),
    /// the regions of centres not seen yet, and the funds first seen locked.
    async fn resolve(
        &mut self,
        conn: &mut AsyncPgConnection,
        raws: Vec<RawRow>,
    ) -> ApiResult<Vec<Work>> {
        let parsed: Vec<(RawRow, Result<ParsedRow, RowError>)> = raws
            .into_iter()
            .map(|r| {
                let p = validate(&r, self.today).map_err(RowError::from);
                (r, p)
            })
            .collect();
        // The loans an earlier chunk locked are known (they cannot have changed since); only
        // the others are looked up.
        let cached = |id: &Uuid| {
            self.cache
                .loans
                .get(id)
                .filter(|l| l.bank_id == self.bank_id)
                .map(|l| BatchLoan {
                    id: l.id,
                    fund_id: l.fund_id,
                    centre_id: l.centre_id,
                    bank_account_no: l.bank_account_no.clone(),
                })
        };
        let mut known: HashMap<Uuid, BatchLoan> = HashMap::new();
        let mut ids = Vec::new();
        let mut accounts = Vec::new();
        for (_, p) in &parsed {
            let Ok(row) = p else { continue };
            let id = match &row.target {
                Target::Loan(id) => Some(*id),
                Target::Account(a) => self.cache.accounts.get(a).copied(),
            };
            match id.and_then(|id| cached(&id)) {
                Some(l) => {
                    known.insert(l.id, l);
                }
                None => match &row.target {
                    Target::Loan(id) => ids.push(*id),
                    Target::Account(a) => accounts.push(a.clone()),
                },
            }
        }
        let loans = if ids.is_empty() && accounts.is_empty() {
            Vec::new()
        } else {
            repo::repayment_batch::loans_of_bank(conn, self.bank_id, &ids, &accounts).await?
        };
        let by_id: HashMap<Uuid, &BatchLoan> = loans
            .iter()
            .chain(known.values())
            .map(|l| (l.id, l))
            .collect();
        let by_account: HashMap<&str, &BatchLoan> = loans
            .iter()
            .chain(known.values())
            .filter_map(|l| l.bank_account_no.as_deref().map(|a| (a, l)))
            .collect();
        let missing: Vec<Uuid> = loans
            .iter()
            .map(|l| l.centre_id)
            .filter(|c| !self.regions.contains_key(c))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            for (id, code) in repo::repayment_batch::centre_regions(conn, &missing).await? {
                self.regions.insert(id, code);
            }
        }
        // Funds first seen in this chunk, in id order (after those locked at the start).
        let new_funds: Vec<Uuid> = loans
            .iter()
            .map(|l| l.fund_id)
            .filter(|f| !self.locked.contains(f))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !new_funds.is_empty() {
            repo::repayment_batch::lock_funds(conn, &new_funds).await?;
            self.locked.extend(new_funds);
        }

        let work: Vec<Work> = parsed
            .into_iter()
            .map(|(raw, p)| {
                let sent_reference = raw.bank_reference.unwrap_or_default();
                let row = match p {
                    Ok(row) => row,
                    Err(e) => return Work::Refused(raw.row_no, sent_reference, None, e),
                };
                let loan = match &row.target {
                    Target::Loan(id) => by_id.get(id),
                    Target::Account(a) => by_account.get(a.as_str()),
                };
                let Some(loan) = loan else {
                    let field = match row.target {
                        Target::Loan(_) => "loan_id",
                        Target::Account(_) => "bank_account_no",
                    };
                    let e = RowError {
                        code: "not_found".into(),
                        field: Some(field.into()),
                        message: format!("no loan of this bank with this {field}"),
                    };
                    return Work::Refused(raw.row_no, row.reference, None, e);
                };
                Work::Apply(raw.row_no, row, (*loan).clone())
            })
            .collect();
        Ok(work)
    }

    /// Takes the next chunk of the file. Its reads run first; then the chunk before it
    /// (planned when it came) is written while this one is planned, so that the client's
    /// planning and the database's writes overlap.
    async fn chunk(&mut self, conn: &mut AsyncPgConnection, raws: Vec<RawRow>) -> ApiResult<()> {
        let work = self.resolve(conn, raws).await?;
        if self.in_flight.is_some() && self.cache.repayments() > CACHE_REPAYMENTS {
            // The cache is dropped (memory): the chunk before is written first, and this
            // one's books are then read with its writes.
            self.flush(conn).await?;
            self.cache = LoanCache::default();
        }
        let mut cache = std::mem::take(&mut self.cache);
        let loaded = self.load(conn, work, &mut cache).await?;
        if self.pending.len() >= self.pending_loans {
            self.cache = cache;
            self.flush_facts(conn).await?;
            cache = std::mem::take(&mut self.cache);
        }
        match self.in_flight.take() {
            None => {
                self.in_flight = Some(self.plan_or_not(loaded, &mut cache, None).await?);
                self.cache = cache;
                Ok(())
            }
            Some(previous) => self.write(conn, previous, Some(loaded), cache).await,
        }
    }

    /// Writes the chunk still planned, after the file's last rows.
    async fn flush(&mut self, conn: &mut AsyncPgConnection) -> ApiResult<()> {
        match self.in_flight.take() {
            None => Ok(()),
            Some(last) => {
                let cache = std::mem::take(&mut self.cache);
                self.write(conn, last, None, cache).await
            }
        }
    }

    /// Plans a chunk; should planning fail for other than a row's sake, the chunk will go
    /// row by row. `previous`: the chunk planned before it, whose writes may not have run.
    async fn plan_or_not(
        &self,
        loaded: Loaded,
        cache: &mut LoanCache,
        previous: Option<&Planned>,
    ) -> ApiResult<InFlight> {
        let in_flight: HashMap<&str, &RepaymentRow> = previous
            .into_iter()
            .flat_map(|p| &p.new_rows)
            .map(|r| (r.bank_reference.as_str(), r))
            .collect();
        Ok(match self.plan(&loaded, cache, &in_flight).await {
            Ok(p) => InFlight::Planned(loaded.work, Box::new(p)),
            Err(e) => {
                tracing::warn!(error = %e, "repayment file chunk goes row by row");
                // The stored facts stay: planning does not change them.
                *cache = LoanCache {
                    facts: std::mem::take(&mut cache.facts),
                    ..LoanCache::default()
                };
                InFlight::RowByRow(loaded.work)
            }
        })
    }

    /// Writes a planned chunk in a savepoint, its statements pipelined; meanwhile plans the
    /// next chunk (`next`, already loaded). Should the writes fail anyway (a reference raced
    /// in by a loan of a fund first seen later), the savepoint is rolled back and the chunk
    /// goes row by row; the cache and the next chunk's plan, which counted on these writes,
    /// are dropped, and the next chunk is loaded and planned again.
    async fn write(
        &mut self,
        conn: &mut AsyncPgConnection,
        chunk: InFlight,
        next: Option<Loaded>,
        mut cache: LoanCache,
    ) -> ApiResult<()> {
        let (work, planned) = match chunk {
            InFlight::Planned(work, planned) => (work, planned),
            InFlight::RowByRow(work) => {
                cache = LoanCache::default();
                // Row by row, each repayment writes its loan's facts from the stored ones.
                self.flush_facts(conn).await?;
                let result = self.one_by_one(conn, work).await?;
                self.record(conn, result).await?;
                return self.replan(conn, next.map(|l| l.work), cache).await;
            }
        };
        AnsiTransactionManager::begin_transaction(conn).await?;
        let (written, next) = {
            let shared: &AsyncPgConnection = conn;
            let statements = send(shared, &planned, self.atomic);
            let mut statements = std::pin::pin!(statements);
            // Polled once, every statement is queued; the yield lets the connection put them
            // on the wire before the CPU-bound planning below.
            let early = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::future::Future::poll(statements.as_mut(), cx))
            })
            .await;
            tokio::task::yield_now().await;
            let next = match next {
                Some(l) => Some(self.plan_or_not(l, &mut cache, Some(&*planned)).await?),
                None => None,
            };
            let written = match early {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => statements.await,
            };
            (written, next)
        };
        match written {
            Ok(()) => {
                AnsiTransactionManager::commit_transaction(conn).await?;
                // Its funds' totals and rows' outcomes were written with it.
                let Planned {
                    outcomes,
                    created,
                    new_facts,
                    ..
                } = *planned;
                for (id, latest) in new_facts {
                    match self.pending.entry(id) {
                        Entry::Occupied(mut e) => e.get_mut().latest = latest,
                        Entry::Vacant(e) => {
                            let stored = cache.facts.get(&id).cloned().ok_or_else(|| {
                                ApiError::internal(anyhow::anyhow!("stored facts of {id} missing"))
                            })?;
                            e.insert(PendingFacts { stored, latest });
                        }
                    }
                }
                self.count(outcomes, created);
                self.in_flight = next;
                self.cache = cache;
                Ok(())
            }
            Err(e) => {
                AnsiTransactionManager::rollback_transaction(conn).await?;
                tracing::warn!(error = %e, "repayment file chunk applied row by row");
                self.flush_facts(conn).await?;
                let result = self.one_by_one(conn, work).await?;
                self.record(conn, result).await?;
                let next = next.map(|n| match n {
                    InFlight::Planned(w, _) | InFlight::RowByRow(w) => w,
                });
                self.replan(conn, next, LoanCache::default()).await
            }
        }
    }

    /// Writes the facts (instalment facts, principal payments, overdue spans, and through
    /// them the statistics) of the loans that written chunks changed. A file's rows of one
    /// loan usually fall in many chunks; its facts, worked out per chunk, are written once:
    /// at the end of the file, before a chunk goes row by row (each row then writes its own
    /// loan's facts from the stored ones), and every [`PENDING_LOANS`] loans. All in the
    /// file's transaction, so the statistics read the same as if each chunk wrote them.
    async fn flush_facts(&mut self, conn: &mut AsyncPgConnection) -> ApiResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<Uuid> = self.pending.keys().copied().collect();
        ids.sort();
        let (mut old_facts, mut old_payments, mut facts, mut payments) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for id in &ids {
            let p = &self.pending[id];
            old_facts.extend_from_slice(&p.stored.0);
            old_payments.extend_from_slice(&p.stored.1);
            facts.extend_from_slice(&p.latest.0);
            payments.extend_from_slice(&p.latest.1);
        }
        let changes = repo::stats::FactChanges::new(&old_facts, &old_payments, &facts, &payments);
        {
            let shared: &AsyncPgConnection = conn;
            futures_util::future::try_join_all(changes.statements(shared)).await?;
        }
        for (id, p) in self.pending.drain() {
            self.cache.facts.insert(id, p.latest);
        }
        Ok(())
    }

    /// The next chunk loaded and planned again, from the database as it now is.
    async fn replan(
        &mut self,
        conn: &mut AsyncPgConnection,
        next: Option<Vec<Work>>,
        mut cache: LoanCache,
    ) -> ApiResult<()> {
        self.in_flight = match next {
            None => None,
            Some(work) => {
                let loaded = self.load(conn, work, &mut cache).await?;
                Some(self.plan_or_not(loaded, &mut cache, None).await?)
            }
        };
        self.cache = cache;
        Ok(())
    }

    /// The outcomes of a chunk applied row by row recorded and counted, and its principal
    /// repaid taken off its funds' outstanding guaranteed (a planned chunk writes both with
    /// its statements: see [`send`]).
    async fn record(&mut self, conn: &mut AsyncPgConnection, result: ChunkResult) -> ApiResult<()> {
        let (outcomes, repaid, created) = result;
        {
            // The funds' totals and the rows' outcomes, pipelined.
            let shared: &AsyncPgConnection = conn;
            let mut writes = fund_totals(shared, &repaid);
            if !self.atomic {
                writes.push(Box::pin(repo::repayment_batch::insert_rows(
                    shared, &outcomes,
                )));
            }
            futures_util::future::try_join_all(writes).await?;
        }
        self.count(outcomes, created);
        Ok(())
    }

    /// A written chunk's outcomes counted (and held, in atomic mode, for the verdict).
    fn count(&mut self, outcomes: Vec<BatchRowOutcome>, created: Vec<Uuid>) {
        self.created.extend(created);
        for o in &outcomes {
            self.rows += 1;
            match o.outcome.as_str() {
                "applied" => self.applied += 1,
                "duplicate" => self.duplicates += 1,
                _ => self.failed += 1,
            }
        }
        if self.atomic {
            self.held.extend(outcomes);
        }
    }
}

/// A chunk's rows with what they need from the database, read before it is planned.
struct Loaded {
    work: Vec<Work>,
    /// The references it names that exist, with their repayments.
    firsts: HashMap<String, RepaymentRow>,
}

/// A chunk planned: what it writes, and each row's outcome.
struct Planned {
    outcomes: Vec<BatchRowOutcome>,
    repaid: HashMap<Uuid, rust_decimal::Decimal>,
    created: Vec<Uuid>,
    new_rows: Vec<RepaymentRow>,
    allocations: Vec<AllocationRow>,
    /// The facts of its loans after it; written later (see [`Run::flush_facts`]).
    new_facts: Vec<(Uuid, LoanFacts)>,
    settled: Vec<(Uuid, NaiveDate)>,
    events: Vec<danbao_persistence::models::audit_event::NewAuditEvent>,
}

/// The chunk waiting to be written: planned, or to go row by row.
enum InFlight {
    Planned(Vec<Work>, Box<Planned>),
    RowByRow(Vec<Work>),
}

/// A planned chunk's statements, in the order they must run, pipelined: repayments,
/// allocations, audit events, settlements, the funds' totals and, unless the file is atomic
/// (its rows wait for the verdict), the rows' outcomes. Its facts wait: see
/// [`Run::flush_facts`].
async fn send(conn: &AsyncPgConnection, p: &Planned, atomic: bool) -> Result<(), ApiError> {
    use danbao_persistence::diesel::QueryResult;
    use futures_util::future::LocalBoxFuture;
    let mut statements: Vec<LocalBoxFuture<'_, QueryResult<usize>>> = vec![
        Box::pin(repo::repayment::insert_many(conn, &p.new_rows)),
        Box::pin(repo::repayment::append_allocations(conn, &p.allocations)),
        Box::pin(async move { repo::audit::record_many(conn, &p.events).await.map(|()| 1) }),
    ];
    for (id, on) in &p.settled {
        statements.push(Box::pin(async move {
            repo::repayment::set_settled(conn, *id, Some(*on))
                .await
                .map(|_| 1)
        }));
    }
    statements.extend(fund_totals(conn, &p.repaid));
    if !atomic {
        statements.push(Box::pin(repo::repayment_batch::insert_rows(
            conn,
            &p.outcomes,
        )));
    }
    futures_util::future::try_join_all(statements).await?;
    Ok(())
}

/// The principal repaid taken off each fund's outstanding guaranteed, in fund id order (the
/// order of the file's fund locks).
fn fund_totals<'a>(
    conn: &'a AsyncPgConnection,
    repaid: &HashMap<Uuid, rust_decimal::Decimal>,
) -> Vec<futures_util::future::LocalBoxFuture<'a, danbao_persistence::diesel::QueryResult<usize>>> {
    let mut repaid: Vec<(Uuid, rust_decimal::Decimal)> =
        repaid.iter().map(|(f, a)| (*f, *a)).collect();
    repaid.sort();
    repaid
        .into_iter()
        .map(
            |(fund_id, amount)| -> futures_util::future::LocalBoxFuture<'a, _> {
                Box::pin(async move {
                    repo::fund::add_to_totals(conn, fund_id, rust_decimal::Decimal::ZERO, -amount)
                        .await
                        .map(|_| 1)
                })
            },
        )
        .collect()
}

/// Reads, applies and records one repayment file, from any stream of body chunks: the
/// HTTP route and `danbao import-repayments` both call this. Runs its own transaction on
/// `conn`. File-level problems (header, bounds, body) are errors and leave nothing behind;
/// row-level problems are in the rows' outcomes.
pub async fn process_batch<S>(
    conn: &mut AsyncPgConnection,
    req: BatchRequest<'_>,
    body: S,
    progress: &mut dyn FnMut(Progress),
) -> ApiResult<BatchOutcome>
where
    S: Stream<Item = ApiResult<Bytes>> + Unpin,
{
    AnsiTransactionManager::begin_transaction(conn).await?;
    let result = run_batch(conn, req, body, progress).await;
    match result {
        Ok(outcome) => {
            AnsiTransactionManager::commit_transaction(conn).await?;
            Ok(outcome)
        }
        Err(e) => {
            // Nothing of the file stays; a broken connection is not reused by the pool.
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            Err(e)
        }
    }
}

async fn run_batch<S>(
    conn: &mut AsyncPgConnection,
    mut req: BatchRequest<'_>,
    mut body: S,
    progress: &mut dyn FnMut(Progress),
) -> ApiResult<BatchOutcome>
where
    S: Stream<Item = ApiResult<Bytes>> + Unpin,
{
    let mut hasher = req.idem_hasher.take();
    if let Some(h) = hasher.as_mut() {
        h.update(if req.atomic {
            &b"atomic\0"[..]
        } else {
            &b"nonatomic\0"[..]
        });
        h.update(req.format.as_str().as_bytes());
        h.update([0]);
    }
    // The same key seen before: the body only decides between replay and 422.
    if let Some(idem) = req.idem.as_mut() {
        if let Some((fingerprint, replay)) = idem.lookup(conn).await? {
            let mut h = hasher.take().unwrap_or_default();
            let mut total = 0usize;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                total += chunk.len();
                if total > MAX_BODY {
                    return Err(ApiError::PayloadTooLarge { limit: MAX_BODY });
                }
                h.update(&chunk);
            }
            idem.set_fingerprint(h);
            return idem.judge(&fingerprint, replay).map(BatchOutcome::Replay);
        }
    }
    let funds = repo::repayment_batch::funds_of_bank(conn, req.bank_id).await?;
    let funds: Vec<Uuid> = funds
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    repo::repayment_batch::lock_funds(conn, &funds).await?;
    let mut run = Run {
        audit: Audit {
            principal: req.principal,
            request_id: req.request_id,
        },
        bank_id: req.bank_id,
        today: req.today,
        atomic: req.atomic,
        batch_id: Uuid::now_v7(),
        locked: funds.into_iter().collect(),
        regions: HashMap::new(),
        rows: 0,
        applied: 0,
        duplicates: 0,
        failed: 0,
        held: Vec::new(),
        created: HashSet::new(),
        cache: LoanCache::default(),
        in_flight: None,
        pending: HashMap::new(),
        pending_loans: req.pending_loans.max(1),
    };
    if req.atomic {
        // The money moves inside this savepoint; the verdict decides whether it stays.
        AnsiTransactionManager::begin_transaction(conn).await?;
    }

    let mut done = Progress::default();
    let chunk_rows = req.chunk_rows.max(1);
    let mut pending: Vec<RawRow> = Vec::with_capacity(chunk_rows * 2);
    match req.format {
        Format::Csv => {
            let mut csv = CsvRows::default();
            loop {
                let chunk = body.next().await.transpose()?;
                let bytes = chunk.as_deref().unwrap_or(&[]);
                done.bytes += bytes.len() as u64;
                if done.bytes > MAX_BODY as u64 {
                    return Err(ApiError::PayloadTooLarge { limit: MAX_BODY });
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(bytes);
                }
                if bytes.is_empty() && chunk.is_some() {
                    continue;
                }
                csv.feed(bytes, &mut pending)?;
                while pending.len() >= chunk_rows {
                    let rest = pending.split_off(chunk_rows);
                    let rows = std::mem::replace(&mut pending, rest);
                    done.rows += rows.len() as u64;
                    run.chunk(conn, rows).await?;
                    progress(done);
                }
                if chunk.is_none() {
                    break;
                }
            }
            if !csv.has_header() {
                return Err(file_error("header", "the file has no header row"));
            }
        }
        Format::Json => {
            let mut whole = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                if whole.len() + chunk.len() > MAX_JSON_BODY {
                    return Err(ApiError::PayloadTooLarge {
                        limit: MAX_JSON_BODY,
                    });
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                whole.extend_from_slice(&chunk);
            }
            done.bytes = whole.len() as u64;
            pending = json_rows(&whole)?;
            drop(whole);
            while pending.len() > chunk_rows {
                let rest = pending.split_off(chunk_rows);
                let rows = std::mem::replace(&mut pending, rest);
                done.rows += rows.len() as u64;
                run.chunk(conn, rows).await?;
                progress(done);
            }
        }
    }
    if !pending.is_empty() {
        let rows = std::mem::take(&mut pending);
        done.rows += rows.len() as u64;
        run.chunk(conn, rows).await?;
    }
    run.flush(conn).await?;
    run.flush_facts(conn).await?;
    progress(done);

    let rejected = req.atomic && run.failed > 0;
    if req.atomic {
        if rejected {
            AnsiTransactionManager::rollback_transaction(conn).await?;
            for o in &mut run.held {
                let undone = o.outcome == "applied"
                    || (o.outcome == "duplicate"
                        && o.repayment_id.is_some_and(|id| run.created.contains(&id)));
                if undone {
                    if o.outcome == "duplicate" {
                        run.duplicates -= 1;
                    }
                    o.outcome = "not_applied".into();
                    o.repayment_id = None;
                }
            }
            run.applied = 0;
        } else {
            AnsiTransactionManager::commit_transaction(conn).await?;
        }
        repo::repayment_batch::insert_rows(conn, &run.held).await?;
    }
    let batch = repo::repayment_batch::insert_batch(
        conn,
        &BatchRow {
            id: run.batch_id,
            bank_id: req.bank_id,
            format: req.format.as_str().into(),
            atomic: req.atomic,
            status: if rejected { "rejected" } else { "applied" }.into(),
            rows: run.rows,
            applied: run.applied,
            duplicates: run.duplicates,
            failed: run.failed,
            created_by: req.principal.id,
            created_at: Utc::now(),
            request_id: Some(bounded(&req.request_id.0, 100)),
        },
    )
    .await?;
    let event = run.audit.event(
        "repayment_batch.received",
        "repayment_batch",
        batch.id,
        None,
        serde_json::json!({ "bank_id": batch.bank_id, "format": batch.format, "atomic": batch.atomic,
            "status": batch.status, "rows": batch.rows, "applied": batch.applied,
            "duplicates": batch.duplicates, "failed": batch.failed }),
    );
    repo::audit::record(conn, &event).await?;
    let view = batch_view(conn, batch, None, None, MAX_LIMIT).await?;
    if let Some(mut idem) = req.idem {
        if let Some(h) = hasher {
            idem.set_fingerprint(h);
        }
        idem.remember(conn, StatusCode::CREATED, &view).await?;
    }
    Ok(BatchOutcome::Done(Box::new(view)))
}

// ---- views and routes -----------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct RowErrorView {
    /// Stable code: `validation_failed`, `not_found`, `duplicate_reference`, `overpayment`,
    /// `invalid_state`, ...
    pub code: String,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// Row number in the file: 1 is the first data row (the CSV header is not counted).
    pub row: i32,
    pub bank_reference: String,
    /// The loan of the caller's bank the row was for; null when it named none.
    pub loan_id: Option<Uuid>,
    /// `applied`, `duplicate` (the same reference with the same content was applied before:
    /// nothing moved), `failed`, or `not_applied` (atomic mode: a good row of a rejected file).
    #[schema(example = "applied")]
    pub outcome: String,
    pub repayment_id: Option<Uuid>,
    pub error: Option<RowErrorView>,
}

/// A repayment file and the outcome of its rows (a page of them).
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchView {
    pub id: Uuid,
    pub bank_id: Uuid,
    /// `applied` (every row was applied, a duplicate, or failed on its own) or `rejected`
    /// (atomic mode with a failed row: nothing was applied).
    #[schema(example = "applied")]
    pub status: String,
    /// `csv` or `json`.
    pub format: String,
    pub atomic: bool,
    pub rows: i32,
    pub applied: i32,
    pub duplicates: i32,
    pub failed: i32,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    /// Rows in row order: the first page (up to 500); the rest with `GET
    /// /v1/repayment-batches/{id}?cursor=`.
    pub items: Vec<BatchItem>,
    pub next_cursor: Option<String>,
}

/// The batch with a page of its rows.
pub async fn batch_view(
    conn: &mut AsyncPgConnection,
    batch: BatchRow,
    after: Option<i32>,
    outcome: Option<&str>,
    limit: i64,
) -> ApiResult<BatchView> {
    let rows = repo::repayment_batch::rows(conn, batch.id, after, outcome, limit).await?;
    let page = repo::Page::from_overfetch(rows, limit);
    let next_cursor = super::next_cursor(&page, |r| r.row_no.to_string());
    let items = page
        .items
        .into_iter()
        .map(|r| BatchItem {
            row: r.row_no,
            bank_reference: r.bank_reference,
            loan_id: r.loan_id,
            outcome: r.outcome,
            repayment_id: r.repayment_id,
            error: r.error_code.map(|code| RowErrorView {
                code,
                field: r.error_field,
                message: r.error_message.unwrap_or_default(),
            }),
        })
        .collect();
    Ok(BatchView {
        id: batch.id,
        bank_id: batch.bank_id,
        status: batch.status,
        format: batch.format,
        atomic: batch.atomic,
        rows: batch.rows,
        applied: batch.applied,
        duplicates: batch.duplicates,
        failed: batch.failed,
        created_by: batch.created_by,
        created_at: batch.created_at,
        items,
        next_cursor,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchParams {
    /// All rows or none: any failed row rejects the whole file (default false: every row
    /// on its own).
    pub atomic: Option<bool>,
}

fn format_of(req: &HttpRequest) -> ApiResult<Format> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "text/csv" => Ok(Format::Csv),
        "application/json" => Ok(Format::Json),
        _ => Err(ApiError::UnsupportedMediaType(
            "send the file as text/csv (RFC 4180, header row) or application/json".to_owned(),
        )),
    }
}

/// The bank of a bank principal.
pub fn bank_of(p: &Principal) -> ApiResult<Uuid> {
    match p.scope {
        crate::auth::Scope::Bank(b) if p.role == Role::Bank => Ok(b),
        _ => Err(ApiError::Forbidden),
    }
}

/// Send a day's repayment file (a bank only). `text/csv`: RFC 4180 with a header row
/// (`bank_reference,value_date,amount,loan_id` or `...,bank_account_no`; quoted fields, CRLF
/// or LF, UTF-8 with an optional BOM). `application/json`: `{"rows": [{"bank_reference": ...,
/// "value_date": ..., "amount": ..., "loan_id" | "bank_account_no": ...}]}`, every value a
/// string. Each row applies on its own (a failed row does not stop the others) unless
/// `?atomic=true`. Sending the same file again changes nothing: every row answers
/// `duplicate`. Bounds: 32 MiB body (JSON 8 MiB), 200,000 rows, 4 KiB per CSV record.
#[utoipa::path(tag = "repayments", params(BatchParams, ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")),
    request_body(description = "the file: text/csv with a header row, or application/json", content(
        (String = "text/csv", example = "bank_reference,value_date,amount,bank_account_no\r\nJXRCU-20261127-000001,2026-11-27,1043.50,6228480012345678\r\n"),
        (BatchFile = "application/json"),
    )),
    responses(
    (status = 201, body = BatchView),
    (status = 403, description = "not a bank", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 413, description = "body larger than 32 MiB (JSON: 8 MiB)", body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "header (unknown or missing column), too many rows, a record too long, idempotency_key_reused", body = Problem, content_type = "application/problem+json"),
))]
#[post("/repayment-batches")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    req: HttpRequest,
    q: Query<BatchParams>,
    key: IdempotencyKey,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Bank])?;
    let bank_id = bank_of(&user)?;
    let format = format_of(&req)?;
    let limit = match format {
        Format::Csv => MAX_BODY,
        Format::Json => MAX_JSON_BODY,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let (idem, hasher) = Idem::streaming(user.id, key);
    let has_key = idem.has_key();
    // The whole body is read before a connection is taken, so that a slow upload holds
    // neither a connection nor its bank's fund locks, and the client is never kept from
    // sending while rows are applied (a send that makes no progress for 30 s is aborted by
    // reqwest's default TCP_USER_TIMEOUT, and by many other clients' write timeouts). At most
    // `limit` bytes are held.
    let mut payload = payload;
    let mut parts: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest {
            code: "bad_body",
            detail: "the request body could not be read".to_owned(),
            errors: vec![],
        })?;
        total += chunk.len();
        if total > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        parts.push(chunk);
    }
    let body = futures_util::stream::iter(parts.into_iter().map(Ok));
    let mut conn = state.conn().await?;
    let outcome = process_batch(
        &mut conn,
        BatchRequest {
            principal: &user,
            bank_id,
            request_id: &rid,
            format,
            atomic: q.atomic.unwrap_or(false),
            today: state.today(),
            idem: has_key.then_some(idem),
            idem_hasher: has_key.then_some(hasher),
            chunk_rows: CHUNK_ROWS,
            pending_loans: PENDING_LOANS,
        },
        body,
        &mut |_| {},
    )
    .await?;
    Ok(match outcome {
        BatchOutcome::Done(view) => HttpResponse::Created().json(view),
        BatchOutcome::Replay(r) => r.into_response(),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchRowsParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// Row number after which the page starts (the previous page's `next_cursor`).
    pub cursor: Option<String>,
    /// Only rows with this outcome: `applied`, `duplicate`, `failed` or `not_applied`.
    pub outcome: Option<String>,
}

/// A repayment file the caller's bank sent, with its rows in row order (paginated).
#[utoipa::path(tag = "repayments", params(("id" = Uuid, Path), BatchRowsParams), responses(
    (status = 200, body = BatchView),
    (status = 400, description = "bad limit, cursor or outcome", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such batch of the caller's bank", body = Problem, content_type = "application/problem+json"),
))]
#[get("/repayment-batches/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: Query<BatchRowsParams>,
) -> ApiResult<HttpResponse> {
    // Only the bank that sent it sees a batch; anyone else gets 404.
    let bank_id = bank_of(&user).map_err(|_| ApiError::NotFound)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let limit = page.limit()?;
    let after = page
        .cursor_i64()?
        .map(|c| i32::try_from(c).unwrap_or(i32::MAX));
    let outcome = match q.outcome.as_deref() {
        None | Some("") => None,
        Some(o @ ("applied" | "duplicate" | "failed" | "not_applied")) => Some(o),
        Some(_) => {
            return Err(ApiError::BadRequest {
                code: "invalid_query",
                detail: "outcome must be applied, duplicate, failed or not_applied".into(),
                errors: vec![FieldError {
                    field: "outcome".into(),
                    message: "must be applied, duplicate, failed or not_applied".into(),
                }],
            })
        }
    };
    let mut conn = state.conn().await?;
    let batch = repo::repayment_batch::find(&mut conn, *id)
        .await?
        .filter(|b| b.bank_id == bank_id)
        .ok_or(ApiError::NotFound)?;
    let view = batch_view(&mut conn, batch, after, outcome, limit).await?;
    Ok(HttpResponse::Ok().json(view))
}
