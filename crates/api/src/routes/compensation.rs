//! When a loan goes wrong: extension (展期, once, within the policy), the bank's compensation
//! claim (代偿) once the loan is overdue long enough, its approval by a clerk who did not enter
//! the loan (the fund pays its covered share: a ledger entry), recoveries (追偿, the fund's
//! share goes back to it) and the write-off (核销, the fund's loss recorded).
//!
//! Every write takes the fund's lock and then the loan's, like the repayments, so the fund's
//! balance and outstanding guaranteed move in the same transaction as the entry that moves
//! them.
use super::funds::money;
use super::loans::{invalid_state, loan_view_with, visible_loan, LoanView};
use super::repayments::{horizon, lock_fund_then_loan, reallocate, Books};
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
    compensation_amount, compensation_claim_allowed, extend, recovery_to_fund_cumulative,
    write_off_loss, InterestConvention, Money, Policy, Rate, ScheduleMethod, Share,
};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
use danbao_persistence::models::compensation::{ClaimRow, ExtensionRow, RecoveryRow, WriteOffRow};
use danbao_persistence::models::fund::NewLedgerEntry;
use danbao_persistence::models::loan::LoanRow;
use danbao_persistence::models::repayment::VersionedInstalmentRow;
use danbao_persistence::repo;
use danbao_persistence::repo::compensation::ClaimApproval;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

type Problem = crate::error::Problem;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(extend_loan)
        .service(file_claim)
        .service(approve_claim)
        .service(get_claim)
        .service(record_recovery)
        .service(list_recoveries)
        .service(write_off);
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{e}"))
}

async fn policy_of(conn: &mut AsyncPgConnection, loan: &LoanRow) -> ApiResult<Policy> {
    repo::policy::find(conn, loan.policy_id)
        .await?
        .ok_or_else(|| internal("policy missing"))?
        .to_domain()
        .map_err(internal)
}

/// A business date: default today, never after today, never before `not_before`.
fn business_date(
    state: &AppState,
    field: &str,
    given: Option<NaiveDate>,
    not_before: Option<(NaiveDate, &str)>,
) -> ApiResult<NaiveDate> {
    let today = state.today();
    let d = crate::limits::business_date(field, given.unwrap_or(today), today)?;
    if let Some((min, what)) = not_before {
        if d < min {
            return Err(ApiError::validation(
                field,
                format!("must not be before {what} ({min})"),
            ));
        }
    }
    Ok(d)
}

fn opt_money(d: Option<Decimal>) -> ApiResult<Option<Money>> {
    d.map(money).transpose()
}

// ---- extension ------------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionBody {
    /// Months added after the current maturity: at least 1, at most the policy's maximum.
    #[schema(minimum = 1, maximum = 120, example = 6)]
    pub months: u32,
    /// The day the extension is agreed (default today): on or before the maturity, with
    /// nothing past due.
    pub agreed_on: Option<NaiveDate>,
    #[schema(
        min_length = 1,
        max_length = 500,
        example = "harvest delayed by floods"
    )]
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct ExtensionView {
    pub loan_id: Uuid,
    pub agreed_on: NaiveDate,
    pub months: i32,
    pub old_maturity: NaiveDate,
    pub new_maturity: NaiveDate,
    /// This instalment and any later one are in the extension period: no interest subsidy.
    pub first_extended: i32,
    /// The principal moved to the extension instalment.
    pub rescheduled_principal: Money,
    pub reason: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

fn extension_view(e: ExtensionRow) -> ApiResult<ExtensionView> {
    Ok(ExtensionView {
        loan_id: e.loan_id,
        agreed_on: e.agreed_on,
        months: e.months,
        old_maturity: e.old_maturity,
        new_maturity: e.new_maturity,
        first_extended: e.first_extended,
        rescheduled_principal: money(e.rescheduled_principal)?,
        reason: e.reason,
        created_by: e.created_by,
        created_at: e.created_at,
    })
}

#[derive(Serialize, ToSchema)]
pub struct ExtensionAnswer {
    pub extension: ExtensionView,
    /// The loan after it, with its position today.
    pub loan: LoanView,
}

/// Extend an active loan once (a clerk of its centre): the remaining principal is moved to one
/// instalment due `months` after the old maturity; the original due dates keep their interest.
/// Refused (422) when the policy allows no extension, for too many months, after the
/// maturity, while anything is past due, or when already extended. No interest subsidy is
/// owed on the extension period. `GET /v1/loans/{id}/schedule` shows the new schedule.
#[utoipa::path(tag = "compensation", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = ExtensionBody, responses(
    (status = 200, body = ExtensionAnswer),
    (status = 403, description = "not a clerk", body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "invalid_state (not active), idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "extension_not_allowed, already_extended, extension_too_long, extension_after_maturity, extension_while_overdue, loan_settled, validation_failed", body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/extension")]
pub async fn extend_loan(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<ExtensionBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    super::regions::check_name("reason", &body.reason, 500)?;
    let reason = body.reason.trim().to_owned();
    let today = state.today();
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let agreed_on = business_date(
        &state,
        "agreed_on",
        body.agreed_on,
        loan.disbursed_on.map(|d| (d, "the disbursement")),
    )?;
    let policy = policy_of(&mut conn, &loan).await?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let (loan_id, fund_id) = (loan.id, loan.fund_id);
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            let (_, loan) = lock_fund_then_loan(conn, fund_id, loan_id).await?;
            if loan.status != "active" {
                return Err(invalid_state(&loan, "extended"));
            }
            let already = repo::compensation::extension_of(conn, loan.id)
                .await?
                .is_some();
            let books = Books::load(conn, &loan)
                .await?
                .ok_or_else(|| invalid_state(&loan, "extended"))?;
            let pos = books
                .position_on(agreed_on)?
                .ok_or_else(|| internal("no position after the disbursement"))?;
            let method = ScheduleMethod::from_str(&loan.schedule_method).map_err(internal)?;
            // Annuity loans count their interest monthly (see the domain's `extend`).
            let convention = if method == ScheduleMethod::EqualInstalment {
                InterestConvention::Monthly30
            } else {
                InterestConvention::from_str(&loan.interest_convention).map_err(internal)?
            };
            let ext = extend(
                &books.schedule,
                &pos,
                body.months,
                already,
                Rate::from_decimal(loan.annual_rate)?,
                convention,
                &policy,
            )?;
            let old_maturity = loan
                .maturity_date
                .ok_or_else(|| internal("active loan without maturity"))?;
            let row = ExtensionRow {
                loan_id: loan.id,
                agreed_on,
                months: i32::try_from(body.months).map_err(internal)?,
                old_maturity,
                new_maturity: ext.new_maturity,
                first_extended: i32::try_from(ext.first_extended).map_err(internal)?,
                rescheduled_principal: ext.rescheduled_principal.amount(),
                reason: reason.clone(),
                created_by: user.id,
                created_at: Utc::now(),
            };
            let schedule: Vec<VersionedInstalmentRow> = ext
                .schedule
                .iter()
                .map(|i| {
                    Ok(VersionedInstalmentRow {
                        loan_id: loan.id,
                        version: 2,
                        number: i32::try_from(i.number).map_err(internal)?,
                        due_date: i.due_date,
                        principal: i.principal.amount(),
                        interest: i.interest.amount(),
                    })
                })
                .collect::<ApiResult<_>>()?;
            let loan = repo::compensation::extend(conn, &row, &schedule).await?;
            // The repayments replayed against the new schedule: their allocations may move.
            let books = Books::load(conn, &loan)
                .await?
                .ok_or_else(|| internal("extended loan without books"))?;
            let counting = books.counting(None)?;
            let now = books
                .position_on(horizon(today, &counting))?
                .ok_or_else(|| internal("no position after the disbursement"))?;
            reallocate(conn, loan.id, &now).await?;
            let event = audit.event(
                "loan.extended",
                "loan",
                loan.id,
                Some(&centre.region_code),
                serde_json::json!({ "agreed_on": agreed_on, "months": body.months, "old_maturity": old_maturity,
                    "new_maturity": ext.new_maturity, "rescheduled_principal": ext.rescheduled_principal, "reason": reason }),
            );
            repo::audit::record(conn, &event).await?;
            let stored = repo::compensation::extension_of(conn, loan.id)
                .await?
                .ok_or_else(|| internal("extension missing"))?;
            let view_pos = books.position_on(today.max(books.start))?;
            let answer = ExtensionAnswer {
                extension: extension_view(stored)?,
                loan: loan_view_with(loan, today, view_pos.as_ref())?,
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

// ---- compensation claims --------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// The day of the claim (default today); the loan must be overdue for the policy's number
    /// of days on it.
    pub filed_on: Option<NaiveDate>,
}

#[derive(Serialize, ToSchema)]
pub struct ClaimView {
    pub id: Uuid,
    pub loan_id: Uuid,
    pub bank_id: Uuid,
    pub fund_id: Uuid,
    pub filed_on: NaiveDate,
    /// Days past due of the oldest unpaid instalment on `filed_on`.
    pub days_past_due: i32,
    pub outstanding_principal: Money,
    pub overdue_interest: Money,
    /// The fund's covered share under the loan's policy.
    pub fund_share: Share,
    /// `round((outstanding_principal + overdue_interest) × fund_share)` on `filed_on`.
    pub claimed_amount: Money,
    pub filed_by: Uuid,
    pub created_at: DateTime<Utc>,
    /// `filed` or `approved`.
    pub status: String,
    pub approved_on: Option<NaiveDate>,
    pub approved_by: Option<Uuid>,
    /// What the fund paid: its share of what was outstanding on `approved_on`.
    pub paid_amount: Option<Money>,
    pub ledger_entry_id: Option<i64>,
}

fn claim_view(c: ClaimRow) -> ApiResult<ClaimView> {
    Ok(ClaimView {
        id: c.id,
        loan_id: c.loan_id,
        bank_id: c.bank_id,
        fund_id: c.fund_id,
        filed_on: c.filed_on,
        days_past_due: c.days_past_due,
        outstanding_principal: money(c.outstanding_principal)?,
        overdue_interest: money(c.overdue_interest)?,
        fund_share: Share::from_decimal(c.fund_share).map_err(internal)?,
        claimed_amount: money(c.claimed_amount)?,
        filed_by: c.filed_by,
        created_at: c.created_at,
        status: c.status,
        approved_on: c.approved_on,
        approved_by: c.approved_by,
        paid_amount: opt_money(c.paid_amount)?,
        ledger_entry_id: c.ledger_entry_id,
    })
}

/// File a compensation claim for a loan of the caller's bank that has been overdue for at
/// least the policy's `compensation_overdue_days` (422 `not_overdue_long_enough` before). One
/// claim per loan (409 `claim_exists`). The claim states the fund's covered share of the
/// outstanding principal and overdue interest (penalty interest is not covered).
#[utoipa::path(tag = "compensation", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = ClaimBody, responses(
    (status = 201, body = ClaimView),
    (status = 403, description = "not a bank", body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "claim_exists, invalid_state, idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "not_overdue_long_enough, validation_failed", body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/compensation-claims")]
pub async fn file_claim(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<ClaimBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Bank])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let filed_on = business_date(
        &state,
        "filed_on",
        body.filed_on,
        loan.disbursed_on.map(|d| (d, "the disbursement")),
    )?;
    let policy = policy_of(&mut conn, &loan).await?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let (loan_id, fund_id) = (loan.id, loan.fund_id);
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            let (_, loan) = lock_fund_then_loan(conn, fund_id, loan_id).await?;
            if let Some(c) = repo::compensation::claim_of_loan(conn, loan.id).await? {
                return Err(ApiError::conflict(
                    "claim_exists",
                    format!(
                        "compensation claim {} was already filed for this loan",
                        c.id
                    ),
                ));
            }
            if loan.status != "active" {
                return Err(invalid_state(&loan, "claimed"));
            }
            let books = Books::load(conn, &loan)
                .await?
                .ok_or_else(|| invalid_state(&loan, "claimed"))?;
            let pos = books
                .position_on(filed_on)?
                .ok_or_else(|| internal("no position after the disbursement"))?;
            compensation_claim_allowed(pos.days_past_due, &policy)?;
            let claimed = compensation_amount(
                pos.outstanding_principal,
                pos.overdue_interest,
                policy.fund_share,
            )?;
            let row = repo::compensation::insert_claim(
                conn,
                &ClaimRow {
                    id: Uuid::now_v7(),
                    loan_id: loan.id,
                    bank_id: loan.bank_id,
                    fund_id: loan.fund_id,
                    filed_on,
                    days_past_due: i32::try_from(pos.days_past_due).map_err(internal)?,
                    outstanding_principal: pos.outstanding_principal.amount(),
                    overdue_interest: pos.overdue_interest.amount(),
                    fund_share: policy.fund_share.value(),
                    claimed_amount: claimed.amount(),
                    filed_by: user.id,
                    created_at: Utc::now(),
                    status: "filed".into(),
                    approved_on: None,
                    approved_by: None,
                    paid_amount: None,
                    ledger_entry_id: None,
                },
            )
            .await?;
            let event = audit.event(
                "compensation.claimed",
                "loan",
                loan.id,
                Some(&centre.region_code),
                serde_json::json!({ "claim_id": row.id, "filed_on": filed_on, "days_past_due": pos.days_past_due,
                    "outstanding_principal": pos.outstanding_principal, "overdue_interest": pos.overdue_interest,
                    "claimed_amount": claimed }),
            );
            repo::audit::record(conn, &event).await?;
            let view = claim_view(row)?;
            idem.remember(conn, StatusCode::CREATED, &view).await?;
            Ok(Ok(view))
        })
        .await?;
    Ok(match answer {
        Ok(v) => HttpResponse::Created().json(v),
        Err(replay) => replay.into_response(),
    })
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimApprovalBody {
    /// The day the fund pays (default today): not before the claim.
    pub approved_on: Option<NaiveDate>,
}

#[derive(Serialize, ToSchema)]
pub struct ClaimAnswer {
    pub claim: ClaimView,
    pub loan: LoanView,
}

/// Approve a compensation claim (a clerk of the loan's centre who did not enter the loan:
/// 403 `four_eyes_required`). The fund pays its covered share of the principal and interest
/// outstanding on `approved_on` (a `compensation` ledger entry; 409
/// `insufficient_fund_balance` if the fund cannot pay it); the loan becomes `compensated` and
/// its guarantee stops counting against the fund's headroom.
#[utoipa::path(tag = "compensation", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = ClaimApprovalBody, responses(
    (status = 200, body = ClaimAnswer),
    (status = 403, description = "not a clerk, or the clerk who entered the loan", body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "invalid_state, insufficient_fund_balance, idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "not_overdue_long_enough (repaid since the claim), validation_failed", body = Problem, content_type = "application/problem+json"),
))]
#[post("/compensation-claims/{id}/approval")]
pub async fn approve_claim(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<ClaimApprovalBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    let today = state.today();
    let mut conn = state.conn().await?;
    let claim = repo::compensation::find_claim(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let loan = visible_loan(&mut conn, &user, claim.loan_id).await?;
    if loan.entered_by == user.id {
        return Err(ApiError::Rule {
            status: StatusCode::FORBIDDEN,
            code: "four_eyes_required",
            detail: "the clerk who entered the loan cannot approve its compensation".into(),
            errors: vec![],
        });
    }
    let on = business_date(
        &state,
        "approved_on",
        body.approved_on,
        Some((claim.filed_on, "the claim")),
    )?;
    let policy = policy_of(&mut conn, &loan).await?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let (loan_id, fund_id, claim_id) = (loan.id, loan.fund_id, claim.id);
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            let (fund, loan) = lock_fund_then_loan(conn, fund_id, loan_id).await?;
            let claim = repo::compensation::find_claim(conn, claim_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if claim.status != "filed" {
                return Err(ApiError::conflict(
                    "invalid_state",
                    "this compensation claim has already been approved",
                ));
            }
            if loan.status != "active" {
                return Err(invalid_state(&loan, "compensated"));
            }
            let books = Books::load(conn, &loan)
                .await?
                .ok_or_else(|| internal("claim on an undisbursed loan"))?;
            let pos = books
                .position_on(on)?
                .ok_or_else(|| internal("no position after the disbursement"))?;
            // Repaid since the claim: no longer a case for the fund.
            compensation_claim_allowed(pos.days_past_due, &policy)?;
            let share = Share::from_decimal(claim.fund_share).map_err(internal)?;
            let paid = compensation_amount(pos.outstanding_principal, pos.overdue_interest, share)?;
            if fund.balance < paid.amount() {
                return Err(ApiError::conflict(
                    "insufficient_fund_balance",
                    format!(
                        "the fund holds {} and cannot pay {paid}",
                        money(fund.balance)?
                    ),
                ));
            }
            let entry = repo::fund::append_entry(
                conn,
                &NewLedgerEntry {
                    fund_id,
                    value_date: on,
                    kind: "compensation".into(),
                    amount: -paid.amount(),
                    source: None,
                    loan_id: Some(loan.id),
                    reference: Some(format!("compensation claim {claim_id}")),
                    created_by: Some(user.id),
                },
            )
            .await?;
            // The guarantee stops counting: the principal the fund's total still holds for it.
            let counting = books.counting(None)?;
            let now = books
                .position_on(horizon(today, &counting))?
                .ok_or_else(|| internal("no position after the disbursement"))?;
            let still_guaranteed = loan.principal - now.principal_paid.amount();
            repo::fund::add_to_totals(conn, fund_id, -paid.amount(), -still_guaranteed).await?;
            let loan = repo::compensation::set_status(conn, loan.id, "compensated", on).await?;
            let claim = repo::compensation::approve_claim(
                conn,
                claim_id,
                &ClaimApproval {
                    on,
                    by: user.id,
                    paid: paid.amount(),
                    ledger_entry_id: entry.id,
                },
            )
            .await?;
            let event = audit.event(
                "compensation.approved",
                "loan",
                loan.id,
                Some(&centre.region_code),
                serde_json::json!({ "claim_id": claim_id, "approved_on": on, "paid_amount": paid,
                    "outstanding_principal": pos.outstanding_principal, "overdue_interest": pos.overdue_interest,
                    "ledger_entry_id": entry.id, "released_guarantee": money(still_guaranteed)? }),
            );
            repo::audit::record(conn, &event).await?;
            let answer = ClaimAnswer {
                claim: claim_view(claim)?,
                loan: loan_view_with(loan, today, Some(&now))?,
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

/// One compensation claim: its bank, a clerk of its centre, a supervisor of its region.
#[utoipa::path(tag = "compensation", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ClaimView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/compensation-claims/{id}")]
pub async fn get_claim(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let claim = repo::compensation::find_claim(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    visible_loan(&mut conn, &user, claim.loan_id).await?;
    Ok(HttpResponse::Ok().json(claim_view(claim)?))
}

// ---- recoveries -----------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryBody {
    /// The caller's reference of the money; unique per loan. The same reference with the same
    /// content again answers with the first recovery.
    #[schema(min_length = 1, max_length = 64, example = "REC-2026-0001")]
    pub reference: String,
    /// The day the money came in: not before the compensation, not after today.
    pub value_date: NaiveDate,
    pub amount: Money,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryView {
    pub id: Uuid,
    pub loan_id: Uuid,
    pub claim_id: Uuid,
    pub value_date: NaiveDate,
    pub amount: Money,
    /// The fund's part, back into the fund (its covered share, never more than it paid).
    pub to_fund: Money,
    pub reference: String,
    pub ledger_entry_id: Option<i64>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

fn recovery_view(r: RecoveryRow) -> ApiResult<RecoveryView> {
    Ok(RecoveryView {
        id: r.id,
        loan_id: r.loan_id,
        claim_id: r.claim_id,
        value_date: r.value_date,
        amount: money(r.amount)?,
        to_fund: money(r.to_fund)?,
        reference: r.reference,
        ledger_entry_id: r.ledger_entry_id,
        created_by: r.created_by,
        created_at: r.created_at,
    })
}

/// Record money recovered after compensation (a clerk of the loan's centre, or the loan's
/// bank). The fund's covered share of it goes back to the fund (a `recovery` ledger entry),
/// shares computed on the running total so no fen drifts and never more than the fund paid.
/// More in total than the claim's outstanding principal and interest is refused (422
/// `overpayment`). A repeated reference with the same content answers 200 with the first; with
/// other content, 409 `duplicate_reference`.
#[utoipa::path(tag = "compensation", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = RecoveryBody, responses(
    (status = 201, body = RecoveryView),
    (status = 200, description = "the same reference with the same content: the first recovery", body = RecoveryView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "invalid_state (not compensated), duplicate_reference, idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "overpayment, validation_failed", body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/recoveries")]
pub async fn record_recovery(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<RecoveryBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk, Role::Bank])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    super::regions::check_name("reference", &body.reference, 64)?;
    let reference = body.reference.trim().to_owned();
    if body.amount.is_zero() {
        return Err(ApiError::validation("amount", "must be positive"));
    }
    business_date(&state, "value_date", Some(body.value_date), None)?;
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let (loan_id, fund_id) = (loan.id, loan.fund_id);
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            let (_, loan) = lock_fund_then_loan(conn, fund_id, loan_id).await?;
            if let Some(first) =
                repo::compensation::recovery_by_reference(conn, loan.id, &reference).await?
            {
                if first.value_date == body.value_date && first.amount == body.amount.amount() {
                    let view = recovery_view(first)?;
                    idem.remember(conn, StatusCode::OK, &view).await?;
                    return Ok(Ok((StatusCode::OK, view)));
                }
                return Err(ApiError::conflict(
                    "duplicate_reference",
                    format!("reference {reference} was already recorded with other content"),
                ));
            }
            if loan.status != "compensated" {
                return Err(invalid_state(&loan, "recovered"));
            }
            let claim = repo::compensation::claim_of_loan(conn, loan.id)
                .await?
                .ok_or_else(|| internal("compensated loan without a claim"))?;
            let (approved_on, paid) = match (claim.approved_on, claim.paid_amount) {
                (Some(on), Some(paid)) => (on, money(paid)?),
                _ => return Err(internal("compensated loan with an unapproved claim")),
            };
            if body.value_date < approved_on {
                return Err(ApiError::validation(
                    "value_date",
                    format!("must not be before the compensation ({approved_on})"),
                ));
            }
            let (before, _) = repo::compensation::recovered_totals(conn, loan.id).await?;
            let ceiling = claim.outstanding_principal + claim.overdue_interest;
            if before + body.amount.amount() > ceiling {
                return Err(ApiError::Rule {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "overpayment",
                    detail: format!(
                        "{} recovered so far and {} now is more than the {} the claim covered",
                        money(before)?,
                        body.amount,
                        money(ceiling)?
                    ),
                    errors: vec![crate::error::FieldError {
                        field: "amount".into(),
                        message: format!("at most {}", money(ceiling - before)?),
                    }],
                });
            }
            let share = Share::from_decimal(claim.fund_share).map_err(internal)?;
            let to_fund = recovery_to_fund_cumulative(paid, money(before)?, body.amount, share)?;
            let entry = if to_fund.is_zero() {
                None
            } else {
                let e = repo::fund::append_entry(
                    conn,
                    &NewLedgerEntry {
                        fund_id,
                        value_date: body.value_date,
                        kind: "recovery".into(),
                        amount: to_fund.amount(),
                        source: None,
                        loan_id: Some(loan.id),
                        reference: Some(format!("recovery {reference}")),
                        created_by: Some(user.id),
                    },
                )
                .await?;
                repo::fund::add_to_totals(conn, fund_id, to_fund.amount(), Decimal::ZERO).await?;
                Some(e.id)
            };
            let row = repo::compensation::insert_recovery(
                conn,
                &RecoveryRow {
                    id: Uuid::now_v7(),
                    loan_id: loan.id,
                    claim_id: claim.id,
                    value_date: body.value_date,
                    amount: body.amount.amount(),
                    to_fund: to_fund.amount(),
                    reference: reference.clone(),
                    ledger_entry_id: entry,
                    created_by: user.id,
                    created_at: Utc::now(),
                },
            )
            .await?;
            let event = audit.event(
                "recovery.recorded",
                "loan",
                loan.id,
                Some(&centre.region_code),
                serde_json::json!({ "recovery_id": row.id, "reference": reference, "value_date": body.value_date,
                    "amount": body.amount, "to_fund": to_fund, "ledger_entry_id": entry }),
            );
            repo::audit::record(conn, &event).await?;
            let view = recovery_view(row)?;
            idem.remember(conn, StatusCode::CREATED, &view).await?;
            Ok(Ok((StatusCode::CREATED, view)))
        })
        .await?;
    Ok(match answer {
        Ok((status, v)) => HttpResponse::build(status).json(v),
        Err(replay) => replay.into_response(),
    })
}

/// A loan's recoveries, oldest first.
#[utoipa::path(tag = "compensation", params(("id" = Uuid, Path)), responses(
    (status = 200, body = Paged<RecoveryView>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/loans/{id}/recoveries")]
pub async fn list_recoveries(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let items = repo::compensation::recoveries_of(&mut conn, loan.id)
        .await?
        .into_iter()
        .map(recovery_view)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(Paged {
        items,
        next_cursor: None,
    }))
}

// ---- write-off ------------------------------------------------------------------------------

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteOffBody {
    /// The day of the write-off (default today): not before the compensation.
    pub written_off_on: Option<NaiveDate>,
    #[schema(
        min_length = 1,
        max_length = 500,
        example = "borrower deceased, no estate"
    )]
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct WriteOffView {
    pub loan_id: Uuid,
    pub claim_id: Uuid,
    pub written_off_on: NaiveDate,
    pub compensation_paid: Money,
    pub recovered_to_fund: Money,
    /// What the fund paid and did not get back.
    pub loss: Money,
    pub reason: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

fn write_off_view(w: WriteOffRow) -> ApiResult<WriteOffView> {
    Ok(WriteOffView {
        loan_id: w.loan_id,
        claim_id: w.claim_id,
        written_off_on: w.written_off_on,
        compensation_paid: money(w.compensation_paid)?,
        recovered_to_fund: money(w.recovered_to_fund)?,
        loss: money(w.loss)?,
        reason: w.reason,
        created_by: w.created_by,
        created_at: w.created_at,
    })
}

/// Write a compensated loan off (a clerk of its centre): the loan is closed as
/// `written_off` and the fund's loss (what it paid less what came back to it) is recorded.
/// Only a compensated loan can be written off; no recovery is taken after it.
#[utoipa::path(tag = "compensation", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = WriteOffBody, responses(
    (status = 200, body = WriteOffView),
    (status = 403, description = "not a clerk", body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "invalid_state (not compensated), idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/write-off")]
pub async fn write_off(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<WriteOffBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    super::regions::check_name("reason", &body.reason, 500)?;
    let reason = body.reason.trim().to_owned();
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let on = business_date(
        &state,
        "written_off_on",
        body.written_off_on,
        loan.released_on.map(|d| (d, "the compensation")),
    )?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let audit = Audit {
        principal: &user,
        request_id: &rid,
    };
    let (loan_id, fund_id) = (loan.id, loan.fund_id);
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            let (_, loan) = lock_fund_then_loan(conn, fund_id, loan_id).await?;
            if loan.status != "compensated" {
                return Err(invalid_state(&loan, "written off"));
            }
            let claim = repo::compensation::claim_of_loan(conn, loan.id)
                .await?
                .ok_or_else(|| internal("compensated loan without a claim"))?;
            let paid = money(
                claim
                    .paid_amount
                    .ok_or_else(|| internal("compensated loan with an unapproved claim"))?,
            )?;
            let (_, to_fund) = repo::compensation::recovered_totals(conn, loan.id).await?;
            let loss = write_off_loss(paid, money(to_fund)?)?;
            let released = loan.released_on.unwrap_or(on);
            let row = repo::compensation::insert_write_off(
                conn,
                &WriteOffRow {
                    loan_id: loan.id,
                    claim_id: claim.id,
                    written_off_on: on,
                    compensation_paid: paid.amount(),
                    recovered_to_fund: to_fund,
                    loss: loss.amount(),
                    reason: reason.clone(),
                    created_by: user.id,
                    created_at: Utc::now(),
                },
            )
            .await?;
            repo::compensation::set_status(conn, loan.id, "written_off", released).await?;
            let event = audit.event(
                "loan.written_off",
                "loan",
                loan.id,
                Some(&centre.region_code),
                serde_json::json!({ "written_off_on": on, "compensation_paid": paid,
                    "recovered_to_fund": money(to_fund)?, "loss": loss, "reason": reason }),
            );
            repo::audit::record(conn, &event).await?;
            let view = write_off_view(row)?;
            idem.remember(conn, StatusCode::OK, &view).await?;
            Ok(Ok(view))
        })
        .await?;
    Ok(match answer {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(replay) => replay.into_response(),
    })
}
