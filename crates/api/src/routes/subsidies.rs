//! Interest subsidy (财政贴息) owed per bank and calendar quarter: only micro-profit loans,
//! only instalments paid on time (due date + the policy's grace days) and not in an extension
//! period, at the share the loan's policy gives the borrower's category. An instalment counts
//! in the quarter of its due date, so the figures reconcile with each loan's schedule view.
use super::loans::narrow_to_scope;
use super::repayments::Books;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use chrono::{Datelike, NaiveDate};
use danbao_domain::{quarterly_subsidy, BorrowerCategory, Money, Quarter, SubsidyInstalment};
use danbao_persistence::models::policy::PolicyRow;
use danbao_persistence::models::repayment::{InstalmentRow, RepaymentRow};
use danbao_persistence::repo;
use danbao_persistence::repo::loan::LoanFilter;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

type Problem = crate::error::Problem;

/// Loans read per round trip while summing.
const CHUNK: i64 = 500;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubsidyQuery {
    /// Calendar year of the due dates (default: this year).
    #[serde(default, deserialize_with = "crate::limits::query_year")]
    #[param(minimum = 1990, maximum = 2200)]
    pub year: Option<i32>,
    /// 1 to 4: one quarter only.
    pub quarter: Option<u8>,
    pub bank_id: Option<Uuid>,
    pub centre_id: Option<Uuid>,
    /// GB/T 2260 code: loans of centres in this region and below.
    pub region: Option<String>,
    /// What counts as paid is what was reported as paid by this date (default today).
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub as_of: Option<NaiveDate>,
}

#[derive(Serialize, ToSchema)]
pub struct SubsidyRow {
    pub bank_id: Uuid,
    pub year: i32,
    pub quarter: u8,
    /// Loans with at least one subsidised instalment in the quarter.
    pub loans: u32,
    /// Subsidised instalments.
    pub instalments: u32,
    /// Their interest.
    pub interest: Money,
    /// The state's part of it, owed to the bank.
    pub subsidy: Money,
}

#[derive(Serialize, ToSchema)]
pub struct SubsidyReport {
    pub year: i32,
    pub quarter: Option<u8>,
    pub as_of: NaiveDate,
    /// By bank, then quarter.
    pub items: Vec<SubsidyRow>,
    pub total_interest: Money,
    pub total_subsidy: Money,
}

#[derive(Default)]
struct Acc {
    loans: u32,
    instalments: u32,
    interest: Money,
    subsidy: Money,
}

fn add(a: Money, b: Money) -> ApiResult<Money> {
    a.checked_add(b)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("amount overflow")))
}

/// The interest subsidy owed per bank and quarter, within the caller's scope (a bank its own
/// loans, a clerk its centre's, a supervisor its region's).
#[utoipa::path(tag = "subsidies", params(SubsidyQuery), responses(
    (status = 200, body = SubsidyReport),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/subsidies")]
pub async fn report(
    state: web::Data<AppState>,
    user: AuthUser,
    q: Query<SubsidyQuery>,
) -> ApiResult<HttpResponse> {
    let today = state.today();
    let as_of = q.as_of.unwrap_or(today);
    let year = q.year.unwrap_or(today.year());
    danbao_domain::bounds::check_year("year", year)?;
    let (from, to) = match q.quarter {
        None => (
            NaiveDate::from_ymd_opt(year, 1, 1),
            NaiveDate::from_ymd_opt(year, 12, 31),
        ),
        Some(n @ 1..=4) => {
            let quarter = Quarter { year, quarter: n };
            (Some(quarter.first_day()), Some(quarter.last_day()))
        }
        Some(_) => return Err(ApiError::validation("quarter", "must be 1, 2, 3 or 4")),
    };
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::validation("year", "out of range"));
    };
    let region = q
        .region
        .as_deref()
        .map(|r| {
            danbao_domain::RegionCode::parse(r)
                .map_err(|_| ApiError::validation("region", "must be a six-digit GB/T 2260 code"))
        })
        .transpose()?;
    let f = LoanFilter {
        bank_id: q.bank_id,
        centre_id: q.centre_id,
        region_prefix: region.as_ref().map(|r| r.subtree_prefix().to_owned()),
        micro_profit: Some(true),
        alive_between: Some((from, to)),
        ..LoanFilter::default()
    };
    let mut by: BTreeMap<(Uuid, i32, u8), Acc> = BTreeMap::new();
    if let Some(f) = narrow_to_scope(&user, f, region.as_ref()) {
        let mut conn = state.read_conn().await?;
        let mut after = None;
        loop {
            let page = repo::loan::list(&mut conn, &f, after, CHUNK).await?;
            after = page.items.last().map(|l| l.id);
            let ids: Vec<Uuid> = page.items.iter().map(|l| l.id).collect();
            let policy_ids: Vec<Uuid> = page.items.iter().map(|l| l.policy_id).collect();
            let borrower_ids: Vec<Uuid> = page.items.iter().map(|l| l.borrower_id).collect();
            let many = repo::repayment::books_of_many(&mut conn, &ids, &policy_ids).await?;
            let categories: HashMap<Uuid, String> =
                repo::borrower::categories_of(&mut conn, &borrower_ids)
                    .await?
                    .into_iter()
                    .collect();
            let extended: HashMap<Uuid, u32> = repo::compensation::extensions_of(&mut conn, &ids)
                .await?
                .into_iter()
                .map(|e| {
                    (
                        e.loan_id,
                        u32::try_from(e.first_extended).unwrap_or(u32::MAX),
                    )
                })
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
            for loan in &page.items {
                let policy_row = policies
                    .get(&loan.policy_id)
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("policy missing")))?;
                let policy = policy_row
                    .to_domain()
                    .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
                let category = categories
                    .get(&loan.borrower_id)
                    .map(|c| BorrowerCategory::from_str(c))
                    .transpose()
                    .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("borrower missing")))?;
                let Some(books) = Books::from_rows(
                    loan,
                    policy_row,
                    instalments.get(&loan.id).map_or(&[][..], Vec::as_slice),
                    repayments.remove(&loan.id).unwrap_or_default(),
                )?
                else {
                    continue;
                };
                let Some(pos) = books.position_on(as_of)? else {
                    continue;
                };
                let parts = SubsidyInstalment::from_position(&pos, extended.get(&loan.id).copied());
                let quarters = quarterly_subsidy(
                    &parts,
                    loan.micro_profit,
                    policy.subsidy_share(category),
                    policy.grace_days,
                )?;
                for qs in quarters {
                    let first = qs.quarter.first_day();
                    if first < from || first > to {
                        continue;
                    }
                    let acc = by
                        .entry((loan.bank_id, qs.quarter.year, qs.quarter.quarter))
                        .or_default();
                    acc.loans += 1;
                    acc.instalments += qs.instalments;
                    acc.interest = add(acc.interest, qs.interest)?;
                    acc.subsidy = add(acc.subsidy, qs.subsidy)?;
                }
            }
            if !page.has_more {
                break;
            }
        }
    }
    let mut total_interest = Money::ZERO;
    let mut total_subsidy = Money::ZERO;
    let items = by
        .into_iter()
        .map(|((bank_id, year, quarter), a)| {
            total_interest = add(total_interest, a.interest)?;
            total_subsidy = add(total_subsidy, a.subsidy)?;
            Ok(SubsidyRow {
                bank_id,
                year,
                quarter,
                loans: a.loans,
                instalments: a.instalments,
                interest: a.interest,
                subsidy: a.subsidy,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(SubsidyReport {
        year,
        quarter: q.quarter,
        as_of,
        items,
        total_interest,
        total_subsidy,
    }))
}
