//! Guarantee applications and decisions: application, approval (four-eyes, under a lock on
//! the fund), rejection, cancellation, the loan's position and its schedule.
use super::funds::{money, policy_in_force};
use crate::auth::{AuthUser, Role, Scope};
use crate::authz::Placement;
use crate::context::{Audit, RequestId};
use crate::error::{from_domain_errors, ApiError, ApiResult};
use crate::extract::{AsOf, Json, PageParams, Paged, Query};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use danbao_domain::{
    build_schedule, check_application, check_capacity, subsidy_of, ApplicationFacts,
    BorrowerCategory, BorrowerKind, CounterGuarantee, InterestConvention, Money, Rate,
    ScheduleMethod,
};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
use danbao_persistence::models::borrower::BorrowerRow;
use danbao_persistence::models::loan::LoanRow;
use danbao_persistence::repo;
use danbao_persistence::repo::loan::{Approval, LoanFilter};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

type Problem = crate::error::Problem;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(apply)
        .service(list)
        .service(get)
        .service(approve)
        .service(reject)
        .service(cancel)
        .service(schedule);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLoanBody {
    pub borrower_id: Uuid,
    /// The lending bank.
    pub bank_id: Uuid,
    /// The fund of the clerk's centre that guarantees the loan.
    pub fund_id: Uuid,
    pub principal: Money,
    #[schema(minimum = 1, maximum = 120)]
    pub term_months: u32,
    pub annual_rate: Rate,
    pub schedule_method: ScheduleMethod,
    /// Default `monthly_30` (interest per period = annual / 12); `actual_360` counts days.
    pub interest_convention: Option<InterestConvention>,
    #[schema(min_length = 1, max_length = 500, example = "早餐店")]
    pub purpose: String,
    /// A micro-profit project (微利项目): the state pays (part of) the interest.
    pub micro_profit: bool,
    /// Jobs the business will create, as declared.
    #[schema(maximum = 100000)]
    pub jobs_declared: u32,
    pub counter_guarantee: CounterGuarantee,
    /// The application's date (default today): not before 1990-01-01, not after today; the
    /// policy in force on it applies.
    pub applied_on: Option<NaiveDate>,
}

/// A loan's money on a date, computed from its stored schedule and the repayments that count
/// (reversed ones left out). Zero before the disbursement.
#[derive(Serialize, ToSchema)]
pub struct LoanPosition {
    pub as_of: NaiveDate,
    /// Principal the fund guarantees on `as_of`: principal − principal repaid, while the
    /// guarantee is approved and not released.
    pub guaranteed_outstanding: Money,
    /// Principal the borrower owes the bank on `as_of`.
    pub outstanding_principal: Money,
    /// Unpaid principal and interest of instalments past due (penalty interest not included).
    pub overdue_amount: Money,
    pub overdue_principal: Money,
    pub overdue_interest: Money,
    /// Days past due of the oldest instalment past due and unpaid.
    pub days_past_due: u32,
    pub principal_paid: Money,
    pub interest_paid: Money,
    pub penalty_paid: Money,
    /// Penalty interest accrued and not yet paid.
    pub accrued_penalty: Money,
    /// Interest of the current period accrued and not yet paid.
    pub accrued_interest: Money,
    /// What a repayment dated `as_of` may at most be; it settles the loan.
    pub payoff_amount: Money,
    pub settled: bool,
    pub settled_on: Option<NaiveDate>,
}

#[derive(Serialize, ToSchema)]
pub struct LoanView {
    pub id: Uuid,
    pub borrower_id: Uuid,
    pub centre_id: Uuid,
    pub fund_id: Uuid,
    pub bank_id: Uuid,
    pub policy_id: Uuid,
    pub principal: Money,
    pub term_months: i32,
    pub annual_rate: Rate,
    pub schedule_method: String,
    pub interest_convention: String,
    pub purpose: String,
    pub micro_profit: bool,
    pub jobs_declared: i32,
    /// As given, with a guarantor's national id masked.
    #[schema(value_type = Object)]
    pub counter_guarantee: serde_json::Value,
    /// No counter-guarantee: credit-community waiver.
    pub waiver: bool,
    /// `applied`, `approved`, `rejected`, `cancelled`, `active`, `settled`, `compensated`, `written_off`.
    pub status: String,
    pub applied_on: NaiveDate,
    pub entered_by: Uuid,
    pub decided_on: Option<NaiveDate>,
    pub decided_by: Option<Uuid>,
    pub decision_reason: Option<String>,
    pub approved_on: Option<NaiveDate>,
    pub cancelled_on: Option<NaiveDate>,
    pub released_on: Option<NaiveDate>,
    /// The day the bank paid the loan out; the schedule starts on it.
    pub disbursed_on: Option<NaiveDate>,
    pub maturity_date: Option<NaiveDate>,
    /// The bank's own account number of the loan.
    pub bank_account_no: Option<String>,
    pub created_at: DateTime<Utc>,
    pub position: LoanPosition,
}

fn loan_view(r: LoanRow, as_of: NaiveDate) -> ApiResult<LoanView> {
    loan_view_with::<Uuid>(r, as_of, None)
}

/// The view with the position `pos` (from `allocate`; `None` before the disbursement).
pub(crate) fn loan_view_with<K>(
    r: LoanRow,
    as_of: NaiveDate,
    pos: Option<&danbao_domain::Position<K>>,
) -> ApiResult<LoanView> {
    let guaranteed =
        r.approved_on.is_some_and(|a| a <= as_of) && r.released_on.is_none_or(|rel| rel > as_of);
    let principal_paid = pos.map_or(Money::ZERO, |p| p.principal_paid);
    let zero = Money::ZERO;
    let add = |a: Money, b: Money| {
        a.checked_add(b)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("amount overflow")))
    };
    let position = LoanPosition {
        as_of,
        guaranteed_outstanding: if guaranteed {
            money(r.principal)?.saturating_sub(principal_paid)
        } else {
            Money::ZERO
        },
        outstanding_principal: pos.map_or(zero, |p| p.outstanding_principal),
        overdue_amount: match pos {
            Some(p) => add(p.overdue_principal, p.overdue_interest)?,
            None => zero,
        },
        overdue_principal: pos.map_or(zero, |p| p.overdue_principal),
        overdue_interest: pos.map_or(zero, |p| p.overdue_interest),
        days_past_due: pos.map_or(0, |p| p.days_past_due),
        principal_paid,
        interest_paid: pos.map_or(zero, |p| p.interest_paid),
        penalty_paid: pos.map_or(zero, |p| p.penalty_paid),
        accrued_penalty: pos.map_or(zero, |p| p.accrued_penalty),
        accrued_interest: pos.map_or(zero, |p| p.accrued_interest),
        payoff_amount: pos.map_or(zero, |p| p.payoff_amount),
        settled: pos.is_some_and(|p| p.settled),
        settled_on: pos.and_then(|p| p.settled_on),
    };
    Ok(LoanView {
        id: r.id,
        borrower_id: r.borrower_id,
        centre_id: r.centre_id,
        fund_id: r.fund_id,
        bank_id: r.bank_id,
        policy_id: r.policy_id,
        principal: money(r.principal)?,
        term_months: r.term_months,
        annual_rate: Rate::from_decimal(r.annual_rate)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?,
        schedule_method: r.schedule_method,
        interest_convention: r.interest_convention,
        purpose: r.purpose,
        micro_profit: r.micro_profit,
        jobs_declared: r.jobs_declared,
        counter_guarantee: public_counter_guarantee(r.counter_guarantee),
        waiver: r.waiver,
        status: r.status,
        applied_on: r.applied_on,
        entered_by: r.entered_by,
        decided_on: r.decided_on,
        decided_by: r.decided_by,
        decision_reason: r.decision_reason,
        approved_on: r.approved_on,
        cancelled_on: r.cancelled_on,
        released_on: r.released_on,
        disbursed_on: r.disbursed_on,
        maturity_date: r.maturity_date,
        bank_account_no: r.bank_account_no,
        created_at: r.created_at,
        position,
    })
}

/// The stored form of a counter-guarantee: a guarantor's national id encrypted, with a masked
/// copy for display; everything else as given.
fn stored_counter_guarantee(
    state: &AppState,
    cg: &CounterGuarantee,
) -> ApiResult<serde_json::Value> {
    let mut v = serde_json::to_value(cg).map_err(ApiError::internal)?;
    if let CounterGuarantee::Guarantor { national_id, .. } = cg {
        let enc = hex::encode(state.pii.encrypt(national_id.as_str()));
        if let Some(o) = v.as_object_mut() {
            o.remove("national_id");
            o.insert("national_id_masked".into(), national_id.masked().into());
            o.insert("national_id_enc".into(), enc.into());
        }
    }
    Ok(v)
}

/// The loan as `user` may see it: a supervisor sees a guarantor's name masked to the family
/// name (the national id is always shown masked).
pub(crate) fn for_viewer(user: &AuthUser, mut v: LoanView) -> LoanView {
    if user.role == Role::Supervisor {
        if let Some(name) = v
            .counter_guarantee
            .get_mut("name")
            .filter(|n| n.is_string())
        {
            *name = super::borrowers::mask_name(name.as_str().unwrap_or_default()).into();
        }
    }
    v
}

fn public_counter_guarantee(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("national_id_enc");
    }
    v
}

fn age_on(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// The loan, if the caller may see it; 404 otherwise.
pub(crate) async fn visible_loan(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    id: Uuid,
) -> ApiResult<LoanRow> {
    let loan = repo::loan::find(conn, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let centre = super::funds::centre_of(conn, loan.centre_id).await?;
    user.ensure_visible(&Placement {
        centre_id: Some(loan.centre_id),
        bank_id: Some(loan.bank_id),
        region_code: Some(&centre.region_code),
    })?;
    Ok(loan)
}

fn rule(
    status: StatusCode,
    code: &'static str,
    field: &str,
    detail: impl Into<String>,
) -> ApiError {
    let detail = detail.into();
    ApiError::Rule {
        status,
        code,
        errors: vec![crate::error::FieldError {
            field: field.into(),
            message: detail.clone(),
        }],
        detail,
    }
}

struct Facts<'a> {
    borrower: &'a BorrowerRow,
    principal: Money,
    term_months: u32,
    annual_rate: Rate,
    counter_guarantee: CounterGuarantee,
}

/// Runs the domain's eligibility rules for a loan on a decision date.
async fn check_rules(
    conn: &mut AsyncPgConnection,
    policy: &danbao_domain::Policy,
    f: Facts<'_>,
    on: NaiveDate,
    except_loan: Option<Uuid>,
) -> ApiResult<()> {
    let b = f.borrower;
    let kind =
        BorrowerKind::from_str(&b.kind).map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let category = BorrowerCategory::from_str(&b.category)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let community_certified = match b.credit_community_id {
        Some(c) => repo::credit_community::find(conn, c)
            .await?
            .is_some_and(|c| c.certified_on_date(on)),
        None => false,
    };
    let has_unsettled = match &b.national_id_hmac {
        Some(h) => repo::loan::person_has_unsettled(conn, h, except_loan).await?,
        None => false,
    };
    let facts = ApplicationFacts {
        kind,
        category,
        age: b.birth_date.and_then(|d| age_on(d, on)),
        has_certificate: b.employment_certificate_no.is_some(),
        member_count: u32::try_from(b.member_count).unwrap_or(1),
        principal: f.principal,
        term_months: f.term_months,
        annual_rate: f.annual_rate,
        counter_guarantee: f.counter_guarantee,
        community_certified_on_decision_date: community_certified,
        has_unsettled_loan: has_unsettled,
    };
    check_application(policy, &facts, on).map_err(from_domain_errors)
}

/// Take an application for a guarantee (clerk). Checked against the policy in force on
/// `applied_on` for the centre's region; the answer names every field that breaks a rule.
#[utoipa::path(tag = "loans", request_body = NewLoanBody, responses(
    (status = 201, body = LoanView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the borrower already holds an unsettled loan", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans")]
pub async fn apply(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewLoanBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let Scope::Centre(centre_id) = user.scope else {
        return Err(ApiError::Forbidden);
    };
    let body = body.0;
    let today = state.today();
    let applied_on = body.applied_on.unwrap_or(today);
    crate::limits::business_date("applied_on", applied_on, today)?;
    super::regions::check_name("purpose", &body.purpose, 500)?;
    if body.jobs_declared > 100_000 {
        return Err(ApiError::validation(
            "jobs_declared",
            "must be at most 100000",
        ));
    }
    let mut conn = state.conn().await?;
    let borrower = repo::borrower::find(&mut conn, body.borrower_id)
        .await?
        .filter(|b| b.centre_id == centre_id)
        .ok_or_else(|| ApiError::validation("borrower_id", "no such borrower in your centre"))?;
    let fund = repo::fund::find(&mut conn, body.fund_id)
        .await?
        .filter(|f| f.centre_id == centre_id)
        .ok_or_else(|| ApiError::validation("fund_id", "no such fund in your centre"))?;
    repo::bank::find(&mut conn, body.bank_id)
        .await?
        .ok_or_else(|| ApiError::validation("bank_id", "no such bank"))?;
    let centre = super::funds::centre_of(&mut conn, centre_id).await?;
    let policy_row = policy_in_force(&mut conn, &centre.region_code, applied_on)
        .await?
        .ok_or_else(|| {
            rule(
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy_not_in_force",
                "applied_on",
                format!(
                    "no policy is in force on {applied_on} for region {}",
                    centre.region_code
                ),
            )
        })?;
    let policy = policy_row
        .to_domain()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    check_rules(
        &mut conn,
        &policy,
        Facts {
            borrower: &borrower,
            principal: body.principal,
            term_months: body.term_months,
            annual_rate: body.annual_rate,
            counter_guarantee: body.counter_guarantee.clone(),
        },
        applied_on,
        None,
    )
    .await?;
    let convention = body
        .interest_convention
        .unwrap_or(InterestConvention::Monthly30);
    // The schedule must be computable for these terms before anyone relies on it.
    build_schedule(
        body.principal,
        body.annual_rate,
        body.term_months,
        body.schedule_method,
        applied_on,
        convention,
    )?;
    let waiver = matches!(
        body.counter_guarantee,
        CounterGuarantee::CreditCommunityWaiver
    );
    let row = LoanRow {
        id: Uuid::now_v7(),
        borrower_id: borrower.id,
        centre_id,
        fund_id: fund.id,
        bank_id: body.bank_id,
        policy_id: policy_row.id,
        person_hmac: borrower.national_id_hmac.clone(),
        principal: body.principal.amount(),
        term_months: i32::try_from(body.term_months).unwrap_or(i32::MAX),
        annual_rate: body.annual_rate.value(),
        schedule_method: body.schedule_method.as_str().into(),
        interest_convention: convention.as_str().into(),
        purpose: body.purpose.trim().into(),
        micro_profit: body.micro_profit,
        jobs_declared: i32::try_from(body.jobs_declared).unwrap_or(i32::MAX),
        counter_guarantee: stored_counter_guarantee(&state, &body.counter_guarantee)?,
        waiver,
        status: "applied".into(),
        applied_on,
        entered_by: user.id,
        decided_on: None,
        decided_by: None,
        decision_reason: None,
        approved_on: None,
        cancelled_on: None,
        cancelled_by: None,
        released_on: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        disbursed_on: None,
        maturity_date: None,
        bank_account_no: None,
        disbursed_by: None,
        schedule_version: 1,
        region_code: centre.region_code.clone(),
        category: borrower.category.clone(),
    };
    let event = Audit { principal: &user, request_id: &rid }.event(
        "loan.applied",
        "loan",
        row.id,
        Some(&centre.region_code),
        serde_json::json!({ "borrower_id": row.borrower_id, "fund_id": row.fund_id, "bank_id": row.bank_id,
            "principal": body.principal, "term_months": body.term_months, "annual_rate": body.annual_rate,
            "policy": policy.code, "waiver": waiver }),
    );
    let stored = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let stored = repo::loan::insert(conn, &row).await?;
            repo::audit::record(conn, &event).await?;
            Ok(stored)
        })
        .await?;
    Ok(HttpResponse::Created().json(loan_view(stored, today)?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoanQuery {
    pub status: Option<String>,
    pub bank_id: Option<Uuid>,
    pub centre_id: Option<Uuid>,
    pub borrower_id: Option<Uuid>,
    pub fund_id: Option<Uuid>,
    /// GB/T 2260 code: loans of centres in this region and below.
    pub region: Option<String>,
    /// Date of each loan's position (default today).
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub as_of: Option<NaiveDate>,
    /// `true`: only active loans with something past due on `as_of`; `false`: only loans
    /// with nothing past due then.
    pub overdue: Option<bool>,
}

/// Pages of loans scanned at most per request when filtering on `overdue`: a page may come
/// back short, with a `next_cursor` to go on from.
const OVERDUE_SCAN_PAGES: usize = 20;

const STATUSES: &[&str] = &[
    "applied",
    "approved",
    "rejected",
    "cancelled",
    "active",
    "settled",
    "compensated",
    "written_off",
];

/// The caller's scope narrows whatever was asked: a filter can never widen it. `None`: the
/// caller asked for something wholly outside its scope (an empty answer, not an error).
pub(crate) fn narrow_to_scope(
    user: &AuthUser,
    mut f: LoanFilter,
    region: Option<&danbao_domain::RegionCode>,
) -> Option<LoanFilter> {
    match &user.scope {
        Scope::All => {}
        Scope::Centre(c) => {
            if f.centre_id.is_some_and(|x| x != *c) {
                return None;
            }
            f.centre_id = Some(*c);
        }
        Scope::Bank(b) => {
            if f.bank_id.is_some_and(|x| x != *b) {
                return None;
            }
            f.bank_id = Some(*b);
        }
        Scope::Region(r) => match region {
            Some(asked) if !r.contains(asked) => {
                if !asked.contains(r) {
                    return None;
                }
                f.region_prefix = Some(r.subtree_prefix().to_owned());
            }
            Some(_) => {}
            None => f.region_prefix = Some(r.subtree_prefix().to_owned()),
        },
    }
    Some(f)
}

/// Loans the caller may see: a clerk its centre's, a bank its own, a supervisor its region's.
#[utoipa::path(tag = "loans", params(PageParams, LoanQuery), responses(
    (status = 200, body = Paged<LoanView>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
#[get("/loans")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
    q: Query<LoanQuery>,
) -> ApiResult<HttpResponse> {
    if let Some(s) = &q.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::validation(
                "status",
                format!("one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let region = q
        .region
        .as_deref()
        .map(|r| {
            danbao_domain::RegionCode::parse(r)
                .map_err(|_| ApiError::validation("region", "must be a six-digit GB/T 2260 code"))
        })
        .transpose()?;
    let f = LoanFilter {
        status: q.status.clone(),
        bank_id: q.bank_id,
        centre_id: q.centre_id,
        borrower_id: q.borrower_id,
        fund_id: q.fund_id,
        region_prefix: region.as_ref().map(|r| r.subtree_prefix().to_owned()),
        ..LoanFilter::default()
    };
    let Some(f) = narrow_to_scope(&user, f, region.as_ref()) else {
        return Ok(HttpResponse::Ok().json(Paged::<LoanView> {
            items: vec![],
            next_cursor: None,
        }));
    };
    let as_of = q.as_of.unwrap_or_else(|| state.today());
    let mut conn = state.read_conn().await?;
    let Some(overdue) = q.overdue else {
        let rows = repo::loan::list(&mut conn, &f, page.cursor_uuid()?, page.limit()?).await?;
        let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
        let items = super::repayments::loans_with_positions(&mut conn, rows.items, as_of)
            .await?
            .into_iter()
            .map(|v| for_viewer(&user, v))
            .collect::<Vec<_>>();
        return Ok(HttpResponse::Ok().json(Paged { items, next_cursor }));
    };
    let (items, next_cursor) = by_overdue(
        &mut conn,
        &user,
        f,
        as_of,
        overdue,
        page.cursor_uuid()?,
        page.limit()?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor }))
}

/// Loans of `f` that are (`overdue`) or are not past due on `as_of`, as `user` may see them,
/// with the cursor to go on from. Days past due come from each loan's position, so the
/// filter runs on positions, page by page (at most `OVERDUE_SCAN_PAGES`); only an active
/// loan can be past due.
pub(crate) async fn by_overdue(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    mut f: LoanFilter,
    as_of: NaiveDate,
    overdue: bool,
    mut cursor: Option<Uuid>,
    limit: i64,
) -> ApiResult<(Vec<LoanView>, Option<String>)> {
    if overdue {
        if f.status.as_deref().is_some_and(|s| s != "active") {
            return Ok((vec![], None));
        }
        f.status = Some("active".into());
    }
    let want = usize::try_from(limit).unwrap_or(0);
    let mut items = Vec::new();
    let mut next_cursor = None;
    for _ in 0..OVERDUE_SCAN_PAGES {
        let rows = repo::loan::list(conn, &f, cursor, limit).await?;
        let has_more = rows.has_more;
        cursor = rows.items.last().map(|r| r.id);
        let views = super::repayments::loans_with_positions(conn, rows.items, as_of).await?;
        let mut full = false;
        for v in views {
            if (v.position.days_past_due > 0) != overdue {
                continue;
            }
            if items.len() == want {
                full = true;
                break;
            }
            items.push(for_viewer(user, v));
        }
        if full {
            next_cursor = items.last().map(|v: &LoanView| v.id.to_string());
            break;
        }
        if !has_more {
            next_cursor = None;
            break;
        }
        next_cursor = cursor.map(|c| c.to_string());
    }
    Ok((items, next_cursor))
}

/// One loan with its position on a date.
#[utoipa::path(tag = "loans", params(("id" = Uuid, Path), AsOf), responses(
    (status = 200, body = LoanView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/loans/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: Query<AsOf>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let as_of = q.as_of.unwrap_or_else(|| state.today());
    let view = super::repayments::loan_with_position(&mut conn, loan, as_of).await?;
    Ok(HttpResponse::Ok().json(for_viewer(&user, view)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Date of the decision (default today); not before the application, not after today.
    pub decided_on: Option<NaiveDate>,
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

fn decision_date(
    state: &AppState,
    loan: &LoanRow,
    given: Option<NaiveDate>,
    field: &str,
) -> ApiResult<NaiveDate> {
    let today = state.today();
    let d = crate::limits::business_date(field, given.unwrap_or(today), today)?;
    if d < loan.applied_on {
        return Err(ApiError::validation(
            field,
            format!("must not be before the application ({})", loan.applied_on),
        ));
    }
    Ok(d)
}

fn check_reason(reason: &Option<String>) -> ApiResult<Option<String>> {
    match reason {
        Some(r) => {
            super::regions::check_name("reason", r, 500)?;
            Ok(Some(r.trim().to_owned()))
        }
        None => Ok(None),
    }
}

/// Four-eyes: whoever entered the application does not decide it.
fn four_eyes(user: &AuthUser, loan: &LoanRow) -> ApiResult<()> {
    if loan.entered_by == user.id {
        return Err(rule(
            StatusCode::FORBIDDEN,
            "four_eyes_required",
            "decided_by",
            "the clerk who entered an application cannot decide it",
        ));
    }
    Ok(())
}

pub(crate) fn invalid_state(loan: &LoanRow, action: &str) -> ApiError {
    ApiError::conflict(
        "invalid_state",
        format!("a loan in status {} cannot be {action}", loan.status),
    )
}

/// Approve the guarantee (a clerk of the centre other than the one who entered it). Takes a
/// lock on the fund: the headroom check and the reservation are one step, so two approvals
/// at the same moment cannot both take the last room.
#[utoipa::path(tag = "loans", params(("id" = Uuid, Path)), request_body = DecisionBody, responses(
    (status = 200, body = LoanView),
    (status = 403, description = "not a clerk, or the clerk who entered it", body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "fund_capacity_exceeded, unsettled_loan_exists or invalid_state", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/approval")]
pub async fn approve(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    body: Json<DecisionBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let reason = check_reason(&body.reason)?;
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    four_eyes(&user, &loan)?;
    let decided_on = decision_date(&state, &loan, body.decided_on, "decided_on")?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let borrower = repo::borrower::find(&mut conn, loan.borrower_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let policy = repo::policy::find(&mut conn, loan.policy_id)
        .await?
        .ok_or(ApiError::NotFound)?
        .to_domain()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let event = Audit { principal: &user, request_id: &rid }.event(
        "loan.approved",
        "loan",
        loan.id,
        Some(&centre.region_code),
        serde_json::json!({ "decided_on": decided_on, "principal": money(loan.principal)?, "fund_id": loan.fund_id, "reason": reason }),
    );
    let loan_id = loan.id;
    let approved = conn
        .transaction::<_, ApiError, _>(async |conn| {
            // Lock order everywhere: fund, then loan.
            let fund = repo::fund::lock(conn, loan.fund_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let loan = repo::loan::lock(conn, loan_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if loan.status != "applied" {
                return Err(invalid_state(&loan, "approved"));
            }
            let cg = stored_to_domain(&state, &loan.counter_guarantee)?;
            check_rules(
                conn,
                &policy,
                Facts {
                    borrower: &borrower,
                    principal: money(loan.principal)?,
                    term_months: u32::try_from(loan.term_months).unwrap_or(0),
                    annual_rate: Rate::from_decimal(loan.annual_rate)?,
                    counter_guarantee: cg,
                },
                decided_on,
                Some(loan.id),
            )
            .await?;
            check_capacity(
                money(fund.balance)?,
                money(fund.outstanding_guaranteed)?,
                money(loan.principal)?,
                policy.leverage_multiple,
            )?;
            let row = repo::loan::approve(
                conn,
                loan.id,
                &Approval {
                    decided_on,
                    decided_by: user.id,
                    reason: reason.clone(),
                },
            )
            .await?;
            repo::fund::add_to_totals(conn, fund.id, rust_decimal::Decimal::ZERO, loan.principal)
                .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(loan_view(approved, state.today())?))
}

/// The domain form of a stored counter-guarantee, for re-checking the rules at approval.
fn stored_to_domain(state: &AppState, v: &serde_json::Value) -> ApiResult<CounterGuarantee> {
    let broken =
        |what: &str| ApiError::internal(anyhow::anyhow!("stored counter-guarantee: {what}"));
    let mut v = v.clone();
    if let Some(o) = v
        .as_object_mut()
        .filter(|o| o.get("kind").and_then(|k| k.as_str()) == Some("guarantor"))
    {
        let enc = o
            .remove("national_id_enc")
            .and_then(|e| e.as_str().map(str::to_owned))
            .ok_or_else(|| broken("no id"))?;
        let id = state
            .pii
            .decrypt(&hex::decode(enc).map_err(|_| broken("not hex"))?)
            .map_err(ApiError::internal)?;
        o.remove("national_id_masked");
        o.insert("national_id".into(), id.into());
    }
    serde_json::from_value(v).map_err(|e| broken(&e.to_string()))
}

/// Refuse the guarantee (a clerk other than the one who entered it).
#[utoipa::path(tag = "loans", params(("id" = Uuid, Path)), request_body = DecisionBody, responses(
    (status = 200, body = LoanView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/rejection")]
pub async fn reject(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    body: Json<DecisionBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let reason = check_reason(&body.reason)?
        .ok_or_else(|| ApiError::validation("reason", "a rejection needs a reason"))?;
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    four_eyes(&user, &loan)?;
    let decided_on = decision_date(&state, &loan, body.decided_on, "decided_on")?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let event = Audit {
        principal: &user,
        request_id: &rid,
    }
    .event(
        "loan.rejected",
        "loan",
        loan.id,
        Some(&centre.region_code),
        serde_json::json!({ "decided_on": decided_on, "reason": reason }),
    );
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let loan = repo::loan::lock(conn, loan.id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if loan.status != "applied" {
                return Err(invalid_state(&loan, "rejected"));
            }
            let row = repo::loan::reject(
                conn,
                loan.id,
                &Approval {
                    decided_on,
                    decided_by: user.id,
                    reason: Some(reason.clone()),
                },
            )
            .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(loan_view(row, state.today())?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationBody {
    /// Default today; not before the application, not after today.
    pub cancelled_on: Option<NaiveDate>,
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// Withdraw an application, or cancel an approved guarantee before disbursement (a clerk of
/// the centre). An approved guarantee gives its headroom back to the fund.
#[utoipa::path(tag = "loans", params(("id" = Uuid, Path)), request_body = CancellationBody, responses(
    (status = 200, body = LoanView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
#[post("/loans/{id}/cancellation")]
pub async fn cancel(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    body: Json<CancellationBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let body = body.0;
    super::regions::check_name("reason", &body.reason, 500)?;
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let on = decision_date(&state, &loan, body.cancelled_on, "cancelled_on")?;
    let centre = super::funds::centre_of(&mut conn, loan.centre_id).await?;
    let event = Audit { principal: &user, request_id: &rid }.event(
        "loan.cancelled",
        "loan",
        loan.id,
        Some(&centre.region_code),
        serde_json::json!({ "cancelled_on": on, "reason": body.reason.trim(), "status_before": loan.status }),
    );
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let fund = repo::fund::lock(conn, loan.fund_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let loan = repo::loan::lock(conn, loan.id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let release = match loan.status.as_str() {
                "applied" => false,
                "approved" => true,
                _ => return Err(invalid_state(&loan, "cancelled")),
            };
            if release && loan.approved_on.is_some_and(|a| on < a) {
                return Err(ApiError::validation(
                    "cancelled_on",
                    "must not be before the approval",
                ));
            }
            let row =
                repo::loan::cancel(conn, loan.id, on, user.id, body.reason.trim(), release).await?;
            if release {
                repo::fund::add_to_totals(
                    conn,
                    fund.id,
                    rust_decimal::Decimal::ZERO,
                    -loan.principal,
                )
                .await?;
            }
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(loan_view(row, state.today())?))
}

/// What is paid of one instalment on the schedule's `as_of`.
#[derive(Clone, Default)]
struct Paid {
    principal: Money,
    interest: Money,
    penalty: Money,
    paid_on: Option<NaiveDate>,
    days_past_due: u32,
}

#[derive(Serialize, ToSchema)]
pub struct InstalmentView {
    pub number: u32,
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
    /// principal + interest.
    pub total: Money,
    /// The part of the interest the state pays (micro-profit loans, the policy's share for
    /// the borrower's category); the borrower pays `interest − subsidy`.
    pub subsidy: Money,
    pub principal_paid: Money,
    pub interest_paid: Money,
    /// Penalty interest accrued on its overdue principal up to `as_of`.
    pub penalty: Money,
    /// The day nothing was owed on it any more (as of `as_of`).
    pub paid_on: Option<NaiveDate>,
    /// Days past due on `as_of`; 0 once paid and up to the due date.
    pub days_past_due: u32,
    /// In the extension period (展期): no subsidy.
    pub extended: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduleView {
    pub loan_id: Uuid,
    /// The date of the paid amounts and days past due.
    pub as_of: NaiveDate,
    /// True until the bank reports the disbursement: dates are counted from the approval
    /// (or application) date and will move to the disbursement date.
    pub provisional: bool,
    pub start_date: NaiveDate,
    pub schedule_method: String,
    pub interest_convention: String,
    pub instalments: Vec<InstalmentView>,
    pub total_principal: Money,
    pub total_interest: Money,
    pub total_subsidy: Money,
}

/// The loan's instalments: principal, interest, the subsidised share, what is paid and how
/// late each one is on `as_of` (default today). After an extension, the new schedule.
#[utoipa::path(tag = "loans", params(("id" = Uuid, Path), AsOf), responses(
    (status = 200, body = ScheduleView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/loans/{id}/schedule")]
pub async fn schedule(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: Query<AsOf>,
) -> ApiResult<HttpResponse> {
    let as_of = q.as_of.unwrap_or_else(|| state.today());
    let mut conn = state.conn().await?;
    let loan = visible_loan(&mut conn, &user, *id).await?;
    let first_extended = if loan.schedule_version > 1 {
        repo::compensation::extension_of(&mut conn, loan.id)
            .await?
            .and_then(|e| u32::try_from(e.first_extended).ok())
    } else {
        None
    };
    let borrower = repo::borrower::find(&mut conn, loan.borrower_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let policy = repo::policy::find(&mut conn, loan.policy_id)
        .await?
        .ok_or(ApiError::NotFound)?
        .to_domain()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let category = BorrowerCategory::from_str(&borrower.category)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let share = if loan.micro_profit {
        policy.subsidy_share(category)
    } else {
        danbao_domain::Share::ZERO
    };
    let method = ScheduleMethod::from_str(&loan.schedule_method)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let convention = InterestConvention::from_str(&loan.interest_convention)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    // After the disbursement the schedule is the stored one, with what is paid as of today;
    // before it, a provisional one counted from the approval (or application) date.
    let books = super::repayments::Books::load(&mut conn, &loan).await?;
    let provisional = books.is_none();
    let (start, plan, paid) = match &books {
        Some(b) => {
            let pos = b.position_on(as_of)?;
            let paid: Vec<Paid> = b
                .schedule
                .iter()
                .map(|i| {
                    pos.as_ref()
                        .and_then(|p| p.instalment(i.number))
                        .map_or(Paid::default(), |x| Paid {
                            principal: x.principal_paid,
                            interest: x.interest_paid,
                            penalty: x.penalty,
                            paid_on: x.paid_on,
                            days_past_due: x.days_past_due,
                        })
                })
                .collect();
            (b.start, b.schedule.clone(), paid)
        }
        None => {
            let start = loan.approved_on.unwrap_or(loan.applied_on);
            let plan = build_schedule(
                money(loan.principal)?,
                Rate::from_decimal(loan.annual_rate)?,
                u32::try_from(loan.term_months).unwrap_or(0),
                method,
                start,
                convention,
            )?;
            let paid = vec![Paid::default(); plan.len()];
            (start, plan, paid)
        }
    };
    let mut totals = (Money::ZERO, Money::ZERO, Money::ZERO);
    let mut instalments = Vec::with_capacity(plan.len());
    for (i, paid) in plan.into_iter().zip(paid) {
        let extended = first_extended.is_some_and(|f| i.number >= f);
        let subsidy = if extended {
            Money::ZERO
        } else {
            subsidy_of(i.interest, share)
        };
        totals.0 = totals.0.checked_add(i.principal).unwrap_or(totals.0);
        totals.1 = totals.1.checked_add(i.interest).unwrap_or(totals.1);
        totals.2 = totals.2.checked_add(subsidy).unwrap_or(totals.2);
        instalments.push(InstalmentView {
            number: i.number,
            due_date: i.due_date,
            principal: i.principal,
            interest: i.interest,
            total: money(i.total())?,
            subsidy,
            principal_paid: paid.principal,
            interest_paid: paid.interest,
            penalty: paid.penalty,
            paid_on: paid.paid_on,
            days_past_due: paid.days_past_due,
            extended,
        });
    }
    Ok(HttpResponse::Ok().json(ScheduleView {
        loan_id: loan.id,
        as_of,
        provisional,
        start_date: start,
        schedule_method: loan.schedule_method,
        interest_convention: loan.interest_convention,
        instalments,
        total_principal: totals.0,
        total_interest: totals.1,
        total_subsidy: totals.2,
    }))
}
