//! Money after approval, as the bank reports it: the disbursement (the schedule is fixed on its
//! date), repayments (allocated by the domain's `allocate`, oldest instalment first) and their
//! reversals (冲正: a correcting entry, never a delete).
//!
//! Every write takes the fund's lock and then the loan's (the house's lock order), so the
//! fund's `outstanding_guaranteed` (principal − principal repaid of its approved and active
//! loans) moves in the same transaction as the repayment that moves it, and concurrent reports
//! on one loan are applied one after the other.
use super::funds::money;
use super::loans::{invalid_state, loan_view_with, visible_loan, LoanPosition, LoanView};
use crate::auth::{AuthUser, Role};
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Paged};
use crate::idempotency::{Idem, IdempotencyKey, Seen};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use danbao_domain::{
    allocate, build_schedule, Allocation, Instalment, InterestConvention, Money, Position, Rate,
    Repayment, Replay, ScheduleMethod,
};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
use danbao_persistence::models::loan::LoanRow;
use danbao_persistence::models::policy::PolicyRow;
use danbao_persistence::models::repayment::{
    AllocationRow, InstalmentRow, RepaymentRow, ReversalRow,
};
use danbao_persistence::repo;
use danbao_persistence::repo::repayment::Disbursement;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::str::FromStr;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

type Problem = crate::error::Problem;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(disburse)
        .service(record)
        .service(list)
        .service(reverse);
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{e}"))
}

/// A loan's books: its stored schedule and its repayments (with the reversed flag), in two
/// queries, plus the penalty rate of its policy.
pub struct Books {
    pub start: NaiveDate,
    pub schedule: Vec<Instalment>,
    pub penalty_rate: Decimal,
    pub repayments: Vec<(RepaymentRow, bool)>,
}

impl Books {
    /// `None` before the disbursement: there is no schedule yet.
    pub async fn load(conn: &mut AsyncPgConnection, loan: &LoanRow) -> ApiResult<Option<Books>> {
        if loan.disbursed_on.is_none() {
            return Ok(None);
        }
        let policy = repo::policy::find(conn, loan.policy_id)
            .await?
            .ok_or_else(|| internal("policy missing"))?;
        let instalments = repo::repayment::instalments_of(conn, loan.id).await?;
        let repayments = repo::repayment::repayments_of(conn, loan.id).await?;
        Books::from_rows(loan, &policy, &instalments, repayments)
    }

    /// From rows already loaded: `instalments` and `repayments` of this loan only.
    pub(crate) fn from_rows(
        loan: &LoanRow,
        policy: &PolicyRow,
        instalments: &[InstalmentRow],
        repayments: Vec<(RepaymentRow, bool)>,
    ) -> ApiResult<Option<Books>> {
        let Some(start) = loan.disbursed_on else {
            return Ok(None);
        };
        let penalty_rate = policy
            .to_domain()
            .map_err(internal)?
            .penalty_rate(Rate::from_decimal(loan.annual_rate)?);
        let schedule = instalments
            .iter()
            .map(|i| {
                Ok(Instalment {
                    number: u32::try_from(i.number).map_err(internal)?,
                    due_date: i.due_date,
                    principal: money(i.principal)?,
                    interest: money(i.interest)?,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Some(Books {
            start,
            schedule,
            penalty_rate,
            repayments,
        }))
    }

    /// The repayments that count (not reversed), optionally without one and with one more.
    pub(crate) fn counting(&self, without: Option<Uuid>) -> ApiResult<Vec<Repayment<Uuid>>> {
        self.repayments
            .iter()
            .filter(|(r, reversed)| !reversed && Some(r.id) != without)
            .map(|(r, _)| {
                Ok(Repayment {
                    id: r.id,
                    value_date: r.value_date,
                    amount: money(r.amount)?,
                })
            })
            .collect()
    }

    fn position(
        &self,
        repayments: &[Repayment<Uuid>],
        as_of: NaiveDate,
    ) -> ApiResult<Position<Uuid>> {
        Ok(allocate(
            self.start,
            &self.schedule,
            self.penalty_rate,
            repayments,
            as_of,
        )?)
    }

    /// The position on `as_of` from every repayment that counts; `None` before the
    /// disbursement date.
    pub fn position_on(&self, as_of: NaiveDate) -> ApiResult<Option<Position<Uuid>>> {
        if as_of < self.start {
            return Ok(None);
        }
        self.position(&self.counting(None)?, as_of).map(Some)
    }
}

/// The loan with its position on `as_of`, computed from its books (constant query count).
pub async fn loan_with_position(
    conn: &mut AsyncPgConnection,
    loan: LoanRow,
    as_of: NaiveDate,
) -> ApiResult<LoanView> {
    let pos = match loan.disbursed_on {
        Some(start) if as_of >= start => {
            let policy = repo::policy::find(conn, loan.policy_id)
                .await?
                .ok_or_else(|| internal("policy missing"))?;
            let instalments = repo::repayment::instalments_of(conn, loan.id).await?;
            let books = Books::from_rows(&loan, &policy, &instalments, Vec::new())?
                .ok_or_else(|| internal("no books of a disbursed loan"))?;
            // Named by their place in booking order: the read shows no allocation, so it
            // does not fetch the ids.
            let repayments = (1u32..)
                .zip(repo::repayment::counting_repayments_of(conn, loan.id).await?)
                .map(|(id, (value_date, fen))| {
                    Ok(Repayment {
                        id,
                        value_date,
                        amount: Money::from_fen(i128::from(fen))?,
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?;
            Some(allocate(
                books.start,
                &books.schedule,
                books.penalty_rate,
                &repayments,
                as_of,
            )?)
        }
        _ => None,
    };
    loan_view_with(loan, as_of, pos.as_ref())
}

/// Loans with their positions on `as_of`, in three queries for the whole page.
pub async fn loans_with_positions(
    conn: &mut AsyncPgConnection,
    loans: Vec<LoanRow>,
    as_of: NaiveDate,
) -> ApiResult<Vec<LoanView>> {
    let disbursed: Vec<Uuid> = loans
        .iter()
        .filter(|l| l.disbursed_on.is_some())
        .map(|l| l.id)
        .collect();
    if disbursed.is_empty() {
        return loans
            .into_iter()
            .map(|l| loan_view_with::<Uuid>(l, as_of, None))
            .collect();
    }
    let policy_ids: Vec<Uuid> = loans.iter().map(|l| l.policy_id).collect();
    let repo::repayment::GroupedBooks {
        instalments,
        mut repayments,
        policies,
    } = repo::repayment::books_of_many(conn, &disbursed, &policy_ids)
        .await?
        .grouped();
    loans
        .into_iter()
        .map(|l| {
            let pos = match policies.get(&l.policy_id) {
                Some(policy) if l.disbursed_on.is_some() => Books::from_rows(
                    &l,
                    policy,
                    instalments.get(&l.id).map_or(&[][..], Vec::as_slice),
                    repayments.remove(&l.id).unwrap_or_default(),
                )?
                .map(|b| b.position_on(as_of))
                .transpose()?
                .flatten(),
                _ => None,
            };
            loan_view_with(l, as_of, pos.as_ref())
        })
        .collect()
}

/// Appends the allocation of every repayment whose allocation `pos` changed, so that the
/// current allocations always add up to the position, and rewrites the loan's statistics facts
/// from `pos`.
pub(crate) async fn reallocate(
    conn: &mut AsyncPgConnection,
    loan_id: Uuid,
    pos: &Position<Uuid>,
) -> ApiResult<()> {
    let mut current: HashMap<Uuid, AllocationRow> =
        repo::repayment::current_allocations(conn, &[loan_id])
            .await?
            .into_iter()
            .map(|a| (a.repayment_id, a))
            .collect();
    let changed = changed_allocations(loan_id, pos, &mut current);
    repo::repayment::append_allocations(conn, &changed).await?;
    crate::facts::refresh(conn, loan_id, pos).await
}

/// The house's lock order: the fund's row, then the loan's, both held to the end of the
/// transaction.
pub(crate) async fn lock_fund_then_loan(
    conn: &mut AsyncPgConnection,
    fund_id: Uuid,
    loan_id: Uuid,
) -> ApiResult<(danbao_persistence::models::fund::FundRow, LoanRow)> {
    let fund = repo::fund::lock(conn, fund_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let loan = repo::loan::lock(conn, loan_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((fund, loan))
}

/// The latest of today and every value date: the day on which everything reported counts.
pub(crate) fn horizon(today: NaiveDate, repayments: &[Repayment<Uuid>]) -> NaiveDate {
    repayments
        .iter()
        .map(|r| r.value_date)
        .fold(today, NaiveDate::max)
}

// ---- disbursement ---------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisbursementBody {
    /// The day the bank paid the loan out: not before the approval, not after today. The
    /// schedule starts on it.
    pub value_date: NaiveDate,
    /// The bank's own account number of the loan; unique per bank.
    #[schema(min_length = 1, max_length = 64, example = "6228480012345678")]
    pub bank_account_no: String,
}

/// Report the disbursement (the loan's bank only). The loan becomes `active` and its schedule
/// is fixed from `value_date`. Send an `Idempotency-Key` to make retries safe.
#[utoipa::path(tag = "repayments", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = DisbursementBody, responses(
    (status = 200, body = LoanView),
    (status = 403, description = "not a bank", body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "invalid_state (not approved), already_exists (account number), idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/disbursement")]
pub async fn disburse(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<DisbursementBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Bank])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    let today = state.today();
    crate::limits::business_date("value_date", body.value_date, today)?;
    super::regions::check_name("bank_account_no", &body.bank_account_no, 64)?;
    let account = body.bank_account_no.trim().to_owned();
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let event = Audit { principal: &user, request_id: &rid }.event(
        "loan.disbursed",
        "loan",
        loan.id,
        Some(&centre.region_code),
        serde_json::json!({ "value_date": body.value_date, "bank_account_no": account, "principal": money(loan.principal)? }),
    );
    let loan_id = loan.id;
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            let loan = repo::loan::lock(conn, loan_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if loan.status != "approved" {
                return Err(invalid_state(&loan, "disbursed"));
            }
            if loan.approved_on.is_some_and(|a| body.value_date < a) {
                return Err(ApiError::validation(
                    "value_date",
                    format!(
                        "must not be before the approval ({})",
                        loan.approved_on.unwrap_or_default()
                    ),
                ));
            }
            let plan = build_schedule(
                money(loan.principal)?,
                Rate::from_decimal(loan.annual_rate)?,
                u32::try_from(loan.term_months).map_err(internal)?,
                ScheduleMethod::from_str(&loan.schedule_method).map_err(internal)?,
                body.value_date,
                InterestConvention::from_str(&loan.interest_convention).map_err(internal)?,
            )?;
            let maturity = plan
                .last()
                .map(|i| i.due_date)
                .ok_or_else(|| internal("empty schedule"))?;
            let rows: Vec<InstalmentRow> = plan
                .iter()
                .map(|i| InstalmentRow {
                    loan_id: loan.id,
                    number: i32::try_from(i.number).unwrap_or(i32::MAX),
                    due_date: i.due_date,
                    principal: i.principal.amount(),
                    interest: i.interest.amount(),
                })
                .collect();
            let row = repo::repayment::disburse(
                conn,
                loan.id,
                &Disbursement {
                    value_date: body.value_date,
                    maturity_date: maturity,
                    bank_account_no: &account,
                    by: user.id,
                },
            )
            .await?;
            repo::repayment::insert_instalments(conn, &rows).await?;
            let books = Books::load(conn, &row)
                .await?
                .ok_or_else(|| internal("disbursed loan without books"))?;
            let pos = books
                .position_on(today.max(body.value_date))?
                .ok_or_else(|| internal("no position after the disbursement"))?;
            crate::facts::refresh(conn, loan.id, &pos).await?;
            repo::audit::record(conn, &event).await?;
            let view = loan_with_position(conn, row, today.max(body.value_date)).await?;
            idem.remember(conn, StatusCode::OK, &view).await?;
            Ok(Ok(view))
        })
        .await?;
    Ok(match answer {
        Ok(view) => HttpResponse::Ok().json(view),
        Err(replay) => replay.into_response(),
    })
}

// ---- repayments -----------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepaymentBody {
    /// The bank's own reference of the payment; unique per bank. Sending the same reference
    /// with the same content again answers with the first repayment.
    #[schema(min_length = 1, max_length = 64, example = "JXRCU-20261127-000001")]
    pub bank_reference: String,
    /// The day the borrower paid: not before the disbursement, not after today.
    pub value_date: NaiveDate,
    pub amount: Money,
}

#[derive(Serialize, ToSchema)]
pub struct RepaymentView {
    pub id: Uuid,
    pub loan_id: Uuid,
    pub bank_id: Uuid,
    pub bank_reference: String,
    pub value_date: NaiveDate,
    pub amount: Money,
    /// Where the money goes now: penalty interest, interest, principal. (A later backdated
    /// repayment or a reversal can move it: the oldest instalment is always paid first.)
    pub to_penalty: Money,
    pub to_interest: Money,
    pub to_principal: Money,
    /// Reversed by a correcting entry: it no longer counts.
    pub reversed: bool,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

/// The view with its current allocation (`current`), or the booked one when it has none.
fn repayment_view(
    r: RepaymentRow,
    reversed: bool,
    current: Option<&AllocationRow>,
) -> ApiResult<RepaymentView> {
    let (to_penalty, to_interest, to_principal) = match current {
        Some(a) => (a.to_penalty, a.to_interest, a.to_principal),
        None => (r.to_penalty, r.to_interest, r.to_principal),
    };
    Ok(RepaymentView {
        id: r.id,
        loan_id: r.loan_id,
        bank_id: r.bank_id,
        bank_reference: r.bank_reference,
        value_date: r.value_date,
        amount: money(r.amount)?,
        to_penalty: money(to_penalty)?,
        to_interest: money(to_interest)?,
        to_principal: money(to_principal)?,
        reversed,
        created_by: r.created_by,
        created_at: r.created_at,
    })
}

/// A repayment (or reversal) and the loan's position after it.
#[derive(Serialize, ToSchema)]
pub struct RepaymentAnswer {
    #[serde(flatten)]
    pub repayment: RepaymentView,
    /// The loan's status after it.
    pub loan_status: String,
    pub position: LoanPosition,
}

/// Report a repayment (the loan's bank only). Allocated to the oldest due instalment first
/// (penalty interest, interest, principal), the rest early against principal from the last
/// instalment; more than everything owed is refused (422 `overpayment`). Paying the loan off
/// settles it and releases its guarantee; every yuan of principal repaid gives the fund its
/// headroom back. A repeated `bank_reference` with the same content answers 200 with the
/// first repayment; with other content, 409 `duplicate_reference`.
#[utoipa::path(tag = "repayments", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = RepaymentBody, responses(
    (status = 201, body = RepaymentAnswer),
    (status = 200, description = "the same bank_reference with the same content: the first repayment", body = RepaymentAnswer),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "duplicate_reference, invalid_state, idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "validation_failed, overpayment, idempotency_key_reused", body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/repayments")]
pub async fn record(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<RepaymentBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Bank])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    let today = state.today();
    super::regions::check_name("bank_reference", &body.bank_reference, 64)?;
    let reference = body.bank_reference.trim().to_owned();
    if body.amount.is_zero() {
        return Err(ApiError::validation("amount", "must be positive"));
    }
    crate::limits::business_date("value_date", body.value_date, today)?;
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let input = RepaymentInput {
        loan_id: loan.id,
        reference: &reference,
        value_date: body.value_date,
        amount: body.amount,
        today,
        region_code: &centre.region_code,
        defer_fund_totals: false,
    };
    let fund_id = loan.fund_id;
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            // Lock order everywhere: fund, then loan.
            repo::fund::lock(conn, fund_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let applied = apply_repayment(conn, &audit, &input).await?;
            idem.remember(conn, applied.status, &applied.answer).await?;
            Ok(Ok(applied))
        })
        .await?;
    Ok(match answer {
        Ok(a) => HttpResponse::build(a.status).json(a.answer),
        Err(replay) => replay.into_response(),
    })
}

/// One repayment to apply: the reference already trimmed and checked, the amount positive,
/// the value date not after `today`.
pub struct RepaymentInput<'a> {
    pub loan_id: Uuid,
    pub reference: &'a str,
    pub value_date: NaiveDate,
    pub amount: Money,
    pub today: NaiveDate,
    /// The region of the loan's centre, for the audit event.
    pub region_code: &'a str,
    /// Leave the fund's `outstanding_guaranteed` to the caller, who adds
    /// `-Applied::principal_repaid` later in the same transaction (a file of many rows updates
    /// the fund row once per chunk instead of once per row: PostgreSQL keeps every version of
    /// a row updated in one transaction, and each update walks them all).
    pub defer_fund_totals: bool,
}

/// What `apply_repayment` did.
pub struct Applied {
    /// 201: newly applied; 200: the same `bank_reference` with the same content was applied
    /// before, and this is that repayment (nothing moved).
    pub status: StatusCode,
    pub answer: RepaymentAnswer,
    /// Principal this repayment paid off, net of what it moved on other repayments (0 for a
    /// resend). Already taken off the fund's total unless the input deferred it.
    pub principal_repaid: Decimal,
}

impl Applied {
    pub fn is_new(&self) -> bool {
        self.status == StatusCode::CREATED
    }
}

/// The repayment that already carries the reference: the same loan, value date and amount
/// is a resend (its id: nothing moves); anything else is `duplicate_reference`.
pub(crate) fn resend_of(
    first: &RepaymentRow,
    loan_id: Uuid,
    input: &RepaymentInput<'_>,
) -> ApiResult<Uuid> {
    if first.loan_id == loan_id
        && first.value_date == input.value_date
        && first.amount == input.amount.amount()
    {
        return Ok(first.id);
    }
    let reference = input.reference;
    Err(ApiError::conflict(
        "duplicate_reference",
        format!(
            "bank_reference {reference} was already reported with other content (loan, value date or amount)"
        ),
    ))
}

/// What a new repayment does to its loan, decided from the books before anything is written.
pub(crate) struct Plan {
    /// The repayment to insert, with its allocation.
    pub row: RepaymentRow,
    pub alloc: Allocation<Uuid>,
    /// The loan's position with it; without allocations when `brief` and `pushed`.
    pub after: Position<Uuid>,
    /// Dated on or after every other repayment, so it moved no other allocation.
    pub pushed: bool,
    /// Principal it pays off, net of what it moves on other repayments.
    pub repaid: Decimal,
    /// The day the loan becomes settled, when it pays an active loan off.
    pub settles_on: Option<NaiveDate>,
}

/// Plans a new repayment on `loan` (locked, with its `books`): the state check, the value
/// date, the allocation (`overpayment` and the like). Pure: the single route and the file
/// path share it, so both refuse and allocate alike.
///
/// `replay` is the books' repayments already applied, when the caller keeps it (a file's
/// rows of one loan); it is built here when missing. A repayment dated on or after every one
/// of the books only adds to it (nothing earlier moves); a backdated one replays the books
/// before and after, and leaves `replay` empty, since the books then change under it. On an
/// error `replay` still matches the books.
pub(crate) fn plan_repayment(
    loan: &LoanRow,
    books: Option<&Books>,
    replay: &mut Option<Replay<Uuid>>,
    input: &RepaymentInput<'_>,
    created_by: Uuid,
    brief: bool,
) -> ApiResult<Plan> {
    if loan.status != "active" && loan.status != "settled" {
        return Err(invalid_state(loan, "repaid"));
    }
    let books = books.ok_or_else(|| invalid_state(loan, "repaid"))?;
    if input.value_date < books.start {
        return Err(ApiError::validation(
            "value_date",
            format!("must not be before the disbursement ({})", books.start),
        ));
    }
    let new = Repayment {
        id: Uuid::now_v7(),
        value_date: input.value_date,
        amount: input.amount,
    };
    // The kept replay knows its latest date; only without one are the books scanned.
    let latest = match replay {
        Some(r) => r.last_value_date(),
        None => books
            .repayments
            .iter()
            .filter(|(_, reversed)| !reversed)
            .map(|(r, _)| r.value_date)
            .max(),
    };
    let pushed = latest.is_none_or(|l| new.value_date >= l);
    let (alloc, after, repaid) = if pushed {
        let r = match replay {
            Some(r) => r,
            None => replay.insert(Replay::new(
                books.start,
                &books.schedule,
                books.penalty_rate,
                &books.counting(None)?,
            )?),
        };
        let alloc = r.push(&new)?.clone();
        let as_of = input.today.max(new.value_date);
        let after = if brief {
            r.brief_position(as_of)?
        } else {
            r.position(as_of)?
        };
        // Nothing earlier moved: the principal repaid is the new repayment's.
        let repaid = alloc.to_principal.amount();
        (alloc, after, repaid)
    } else {
        let mut counting = books.counting(None)?;
        counting.push(new.clone());
        let as_of = horizon(input.today, &counting);
        let after = books.position(&counting, as_of)?;
        counting.pop();
        let before = books.position(&counting, as_of)?;
        let alloc = after
            .allocations
            .iter()
            .find(|a| a.repayment_id == new.id)
            .cloned()
            .ok_or_else(|| internal("the new repayment was not allocated"))?;
        *replay = None;
        let repaid = after.principal_paid.amount() - before.principal_paid.amount();
        (alloc, after, repaid)
    };
    let row = RepaymentRow {
        id: new.id,
        loan_id: loan.id,
        bank_id: loan.bank_id,
        bank_reference: input.reference.to_owned(),
        value_date: input.value_date,
        amount: input.amount.amount(),
        to_penalty: alloc.to_penalty.amount(),
        to_interest: alloc.to_interest.amount(),
        to_principal: alloc.to_principal.amount(),
        created_by,
        created_at: Utc::now(),
    };
    let settles_on = (after.settled && loan.status == "active")
        .then(|| after.settled_on.unwrap_or(input.value_date));
    Ok(Plan {
        repaid,
        row,
        alloc,
        after,
        pushed,
        settles_on,
    })
}

impl Plan {
    /// The `repayment.recorded` audit event.
    pub(crate) fn event(
        &self,
        audit: &Audit<'_>,
        input: &RepaymentInput<'_>,
    ) -> danbao_persistence::models::audit_event::NewAuditEvent {
        let alloc = &self.alloc;
        audit.event(
            "repayment.recorded",
            "loan",
            self.row.loan_id,
            Some(input.region_code),
            serde_json::json!({ "repayment_id": self.row.id, "bank_reference": input.reference, "value_date": input.value_date,
                "amount": input.amount, "to_penalty": alloc.to_penalty, "to_interest": alloc.to_interest,
                "to_principal": alloc.to_principal, "settled": self.after.settled }),
        )
    }
}

/// The allocations of `pos` that differ from `current` (a new repayment's: the allocation it
/// is booked with); `current` is brought up to date.
pub(crate) fn changed_allocations(
    loan_id: Uuid,
    pos: &Position<Uuid>,
    current: &mut HashMap<Uuid, AllocationRow>,
) -> Vec<AllocationRow> {
    let mut changed = Vec::new();
    for a in &pos.allocations {
        let row = AllocationRow {
            repayment_id: a.repayment_id,
            loan_id,
            to_penalty: a.to_penalty.amount(),
            to_interest: a.to_interest.amount(),
            to_principal: a.to_principal.amount(),
        };
        if current.get(&a.repayment_id) != Some(&row) {
            current.insert(a.repayment_id, row.clone());
            changed.push(row);
        }
    }
    changed
}

/// Applies one repayment inside the caller's transaction: the reference check, the
/// allocation, the fund's outstanding guaranteed, settlement and the `repayment.recorded`
/// audit event. The caller must already hold the lock on the loan's fund (lock order: fund,
/// then loan); this locks the loan. Errors (`not_found`, `duplicate_reference`,
/// `invalid_state`, `overpayment`, `validation_failed`) leave the transaction usable only if
/// the caller wrapped the call in a savepoint.
///
/// Four round trips for a new repayment: the loan's lock; its books, current allocations and
/// extension (pipelined); the insert, which is also the reference check (`ON CONFLICT DO
/// NOTHING`: a resend is the rare case, looked up only then); and the writes (allocations,
/// facts, the fund's total, settlement, audit), pipelined.
pub async fn apply_repayment(
    conn: &mut AsyncPgConnection,
    audit: &Audit<'_>,
    input: &RepaymentInput<'_>,
) -> ApiResult<Applied> {
    let today = input.today;
    let mut loan = repo::loan::lock(conn, input.loan_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let fund_id = loan.fund_id;
    let open = loan.disbursed_on.is_some() && (loan.status == "active" || loan.status == "settled");
    let (books, policy, mut current, first_extended) = if open {
        let w = repo::repayment::books_for_write(conn, loan.id, loan.policy_id).await?;
        let policy = w.policy.ok_or_else(|| internal("policy missing"))?;
        // Each repayment's current allocation: the one it was booked with, unless an
        // allocation row followed.
        let current: HashMap<Uuid, AllocationRow> = (w.repayments.iter())
            .map(|(r, _)| AllocationRow::booked(r))
            .chain(w.current)
            .map(|a| (a.repayment_id, a))
            .collect();
        let books = Books::from_rows(&loan, &policy, &w.instalments, w.repayments)?;
        let first_extended = w.first_extended.and_then(|f| u32::try_from(f).ok());
        (books, Some(policy), current, first_extended)
    } else {
        (None, None, HashMap::new(), None)
    };
    // The reference is checked before anything else: a resend answers with the first
    // repayment even when applying it again would now be refused.
    let plan = match plan_repayment(
        &loan,
        books.as_ref(),
        &mut None,
        input,
        audit.principal.id,
        false,
    ) {
        Ok(plan) => plan,
        Err(e) => {
            return match repo::repayment::find_by_reference(conn, loan.bank_id, input.reference)
                .await?
            {
                Some(first) => resend(conn, loan, &first, input).await,
                None => Err(e),
            }
        }
    };
    let Some(row) = repo::repayment::insert_new(conn, &plan.row).await? else {
        let first = repo::repayment::find_by_reference(conn, loan.bank_id, input.reference)
            .await?
            .ok_or_else(|| internal("the conflicting reference is not visible"))?;
        return resend(conn, loan, &first, input).await;
    };
    let policy = policy.ok_or_else(|| internal("policy missing"))?;
    // Booked with its allocation: a row only for the repayments whose allocation it moves.
    current.insert(row.id, AllocationRow::booked(&row));
    let changed = changed_allocations(loan.id, &plan.after, &mut current);
    let (facts, payments) = crate::facts::facts_of(&loan, &policy, first_extended, &plan.after)?;
    let event = plan.event(audit, input);
    let repaid = plan.repaid;
    let c: &AsyncPgConnection = conn;
    let (_, (), (), (), settled) = futures_util::future::try_join5(
        repo::repayment::append_allocations(c, &changed),
        repo::stats::replace_facts(c, loan.id, &facts, &payments),
        async {
            if !repaid.is_zero() && !input.defer_fund_totals {
                repo::fund::add_to_totals(c, fund_id, Decimal::ZERO, -repaid).await?;
            }
            Ok(())
        },
        repo::audit::record(c, &event),
        async {
            match plan.settles_on {
                Some(on) => repo::repayment::set_settled(c, loan.id, Some(on))
                    .await
                    .map(Some),
                None => Ok(None),
            }
        },
    )
    .await?;
    if let Some(l) = settled {
        loan = l;
    }
    let answer = RepaymentAnswer {
        repayment: repayment_view(row, false, None)?,
        loan_status: loan.status.clone(),
        position: loan_view_with(loan, today, Some(&plan.after))?.position,
    };
    Ok(Applied {
        status: StatusCode::CREATED,
        answer,
        principal_repaid: repaid,
    })
}

/// A repayment whose reference was reported before: the first one when the content is the
/// same (200, nothing moves), else `duplicate_reference`.
async fn resend(
    conn: &mut AsyncPgConnection,
    loan: LoanRow,
    first: &RepaymentRow,
    input: &RepaymentInput<'_>,
) -> ApiResult<Applied> {
    let id = resend_of(first, loan.id, input)?;
    let answer = answer_for(conn, loan, id, input.today).await?;
    Ok(Applied {
        status: StatusCode::OK,
        answer,
        principal_repaid: Decimal::ZERO,
    })
}

/// The answer for an existing repayment: it and the loan's current position.
async fn answer_for(
    conn: &mut AsyncPgConnection,
    loan: LoanRow,
    repayment_id: Uuid,
    today: NaiveDate,
) -> ApiResult<RepaymentAnswer> {
    let books = Books::load(conn, &loan)
        .await?
        .ok_or_else(|| internal("repayment of an undisbursed loan"))?;
    let (row, reversed) = books
        .repayments
        .iter()
        .find(|(r, _)| r.id == repayment_id)
        .cloned()
        .ok_or_else(|| internal("repayment missing"))?;
    let counting = books.counting(None)?;
    let pos = books.position(&counting, horizon(today, &counting))?;
    let current = repo::repayment::current_allocations(conn, &[loan.id])
        .await?
        .into_iter()
        .find(|a| a.repayment_id == repayment_id);
    Ok(RepaymentAnswer {
        repayment: repayment_view(row, reversed, current.as_ref())?,
        loan_status: loan.status.clone(),
        position: loan_view_with(loan, today, Some(&pos))?.position,
    })
}

/// A loan's repayments in booking order, reversed ones included and flagged.
#[utoipa::path(tag = "repayments", params(("id" = Uuid, Path)), responses(
    (status = 200, body = Paged<RepaymentView>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/loans/{id}/repayments")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let current: HashMap<Uuid, AllocationRow> =
        repo::repayment::current_allocations(&conn, &[loan.id])
            .await?
            .into_iter()
            .map(|a| (a.repayment_id, a))
            .collect();
    let items = repo::repayment::repayments_of(&mut conn, loan.id)
        .await?
        .into_iter()
        .map(|(r, reversed)| {
            let c = current.get(&r.id);
            repayment_view(r, reversed, c)
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(Paged {
        items,
        next_cursor: None,
    }))
}

// ---- reversal -------------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalBody {
    #[schema(min_length = 1, max_length = 500, example = "wrong amount keyed")]
    pub reason: String,
    /// The day of the correction (default today); not after today.
    pub value_date: Option<NaiveDate>,
}

/// Reverse a repayment (the loan's bank only): a correcting entry with a reason; the
/// repayment stays visible, flagged `reversed`, and the position is recomputed without it. A
/// settled loan becomes active again and the fund's outstanding guaranteed moves back.
#[utoipa::path(tag = "repayments", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = ReversalBody, responses(
    (status = 200, body = RepaymentAnswer),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "already_reversed, idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/repayments/{id}/reversal")]
pub async fn reverse(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<ReversalBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Bank])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    let today = state.today();
    super::regions::check_name("reason", &body.reason, 500)?;
    let reason = body.reason.trim().to_owned();
    let on = body.value_date.unwrap_or(today);
    crate::limits::business_date("value_date", on, today)?;
    let mut conn = state.conn().await?;
    let repayment = repo::repayment::find(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let loan = visible_loan(&mut conn, &user, repayment.loan_id).await?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let (loan_id, fund_id, repayment_id) = (loan.id, loan.fund_id, repayment.id);
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            let (_, loan) = lock_fund_then_loan(conn, fund_id, loan_id).await?;
            // After compensation the bank's books are closed: money goes through recoveries.
            if loan.status != "active" && loan.status != "settled" {
                return Err(invalid_state(&loan, "corrected"));
            }
            if repo::repayment::reversal_of(conn, repayment_id)
                .await?
                .is_some()
            {
                return Err(ApiError::conflict(
                    "already_reversed",
                    "this repayment has already been reversed",
                ));
            }
            if on < repayment.value_date {
                return Err(ApiError::validation(
                    "value_date",
                    format!("must not be before the repayment ({})", repayment.value_date),
                ));
            }
            let books = Books::load(conn, &loan)
                .await?
                .ok_or_else(|| internal("repayment of an undisbursed loan"))?;
            let with = books.counting(None)?;
            let without = books.counting(Some(repayment_id))?;
            let as_of = horizon(today, &with);
            let before = books.position(&with, as_of)?;
            let after = books.position(&without, as_of)?;
            repo::repayment::insert_reversal(
                conn,
                &ReversalRow {
                    repayment_id,
                    loan_id: loan.id,
                    reason: reason.clone(),
                    value_date: on,
                    created_by: user.id,
                    created_at: Utc::now(),
                },
            )
            .await?;
            reallocate(conn, loan.id, &after).await?;
            // Principal no longer repaid is guaranteed again.
            let back = before.principal_paid.amount() - after.principal_paid.amount();
            if !back.is_zero() {
                repo::fund::add_to_totals(conn, fund_id, Decimal::ZERO, back).await?;
            }
            let loan = match (loan.status.as_str(), after.settled) {
                ("settled", false) => repo::repayment::set_settled(conn, loan.id, None).await?,
                ("active", true) => {
                    repo::repayment::set_settled(conn, loan.id, after.settled_on.or(Some(on)))
                        .await?
                }
                _ => loan,
            };
            let event = audit.event(
                "repayment.reversed",
                "loan",
                loan.id,
                Some(&centre.region_code),
                serde_json::json!({ "repayment_id": repayment_id, "bank_reference": repayment.bank_reference,
                    "amount": money(repayment.amount)?, "reason": reason, "value_date": on,
                    "principal_back": money(back.max(Decimal::ZERO))? }),
            );
            repo::audit::record(conn, &event).await?;
            let answer = RepaymentAnswer {
                repayment: repayment_view(repayment.clone(), true, None)?,
                loan_status: loan.status.clone(),
                position: loan_view_with(loan, today, Some(&after))?.position,
            };
            idem.remember(conn, StatusCode::OK, &answer).await?;
            Ok(Ok(answer))
        })
        .await?;
    Ok(match answer {
        Ok(a) => HttpResponse::Ok().json(a),
        Err(replay) => replay.into_response(),
    })
}
