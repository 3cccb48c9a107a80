use crate::auth::{AuthUser, Role, Scope};
use crate::authz::Placement;
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsOf, Json, PageParams, Paged, Query};
use crate::idempotency::{Idem, IdempotencyKey, Seen};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use danbao_domain::{capacity, Money, RegionCode};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
use danbao_persistence::models::centre::CentreRow;
use danbao_persistence::models::fund::{FundRow, LedgerEntryRow, NewFund, NewLedgerEntry};
use danbao_persistence::models::policy::PolicyRow;
use danbao_persistence::repo;
use danbao_persistence::repo::fund::FundFilter;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(contribute)
        .service(ledger);
}

type Problem = crate::error::Problem;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFundBody {
    /// The centre whose fund this is; a clerk may leave it out (its own centre).
    pub centre_id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 200, example = "南昌市小额贷款担保基金")]
    pub name: String,
    /// The dedicated bank account the fund sits in.
    #[schema(max_length = 64)]
    pub bank_account: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FundView {
    pub id: Uuid,
    pub centre_id: Uuid,
    pub name: String,
    pub bank_account: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<FundRow> for FundView {
    fn from(r: FundRow) -> Self {
        FundView {
            id: r.id,
            centre_id: r.centre_id,
            name: r.name,
            bank_account: r.bank_account,
            created_at: r.created_at,
        }
    }
}

/// A fund's position on a date: what backs the guarantees and how much room is left.
#[derive(Serialize, ToSchema)]
pub struct FundPosition {
    #[serde(flatten)]
    pub fund: FundView,
    pub as_of: NaiveDate,
    /// Sum of the ledger up to `as_of`.
    pub balance: Money,
    /// Contributions up to `as_of`.
    pub contributions: Money,
    /// Principal of approved guarantees not yet released on `as_of`.
    pub outstanding_guaranteed: Money,
    /// The maximum multiple of the policy in force on `as_of` (null if none is).
    pub leverage_multiple: Option<String>,
    /// `outstanding_guaranteed / balance`, 4 decimals (null when the balance is zero).
    pub actual_leverage: Option<String>,
    /// `balance × leverage_multiple − outstanding_guaranteed`, never below zero.
    pub headroom: Money,
}

pub async fn centre_of(conn: &mut AsyncPgConnection, id: Uuid) -> ApiResult<CentreRow> {
    repo::centre::find(conn, id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("centre {id} missing")))
}

pub fn fund_placement<'a>(fund: &FundRow, centre: &'a CentreRow) -> Placement<'a> {
    Placement {
        centre_id: Some(fund.centre_id),
        bank_id: None,
        region_code: Some(&centre.region_code),
    }
}

/// The fund, if the caller may see it; 404 otherwise.
pub async fn visible_fund(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    id: Uuid,
) -> ApiResult<(FundRow, CentreRow)> {
    let fund = repo::fund::find(conn, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let centre = centre_of(conn, fund.centre_id).await?;
    user.ensure_visible(&fund_placement(&fund, &centre))?;
    Ok((fund, centre))
}

/// The policy in force on `on` for a region: its own, an ancestor's or a nationwide one.
pub async fn policy_in_force(
    conn: &mut AsyncPgConnection,
    region: &str,
    on: NaiveDate,
) -> ApiResult<Option<PolicyRow>> {
    let code = RegionCode::parse(region).map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let chain: Vec<String> = code
        .ancestors_and_self()
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    Ok(repo::policy::in_force(conn, &chain, on).await?)
}

pub fn money(d: Decimal) -> ApiResult<Money> {
    Money::from_decimal(d)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored amount invalid: {e}")))
}

fn not_after_today(state: &AppState, field: &str, d: NaiveDate) -> ApiResult<()> {
    crate::limits::business_date(field, d, state.today()).map(|_| ())
}

/// Set up a fund for a centre (admin, or a clerk for its own centre).
#[utoipa::path(tag = "funds", request_body = NewFundBody, responses(
    (status = 201, body = FundView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/funds")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<NewFundBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Clerk])?;
    let body = body.0;
    let centre_id = match (&user.scope, body.centre_id) {
        (Scope::Centre(own), None) => *own,
        (Scope::Centre(own), Some(c)) if c == *own => c,
        (Scope::Centre(_), Some(_)) => {
            return Err(ApiError::validation(
                "centre_id",
                "a clerk sets up funds of its own centre only",
            ))
        }
        (_, Some(c)) => c,
        (_, None) => return Err(ApiError::validation("centre_id", "is required")),
    };
    super::regions::check_name("name", &body.name, 200)?;
    if let Some(a) = &body.bank_account {
        super::regions::check_name("bank_account", a, 64)?;
    }
    let mut conn = state.conn().await?;
    let centre = repo::centre::find(&mut conn, centre_id)
        .await?
        .ok_or_else(|| ApiError::validation("centre_id", "no such centre"))?;
    let id = Uuid::now_v7();
    let event = Audit {
        principal: &user,
        request_id: &rid,
    }
    .event(
        "fund.created",
        "fund",
        id,
        Some(&centre.region_code),
        serde_json::json!({ "centre_id": centre_id, "name": body.name.trim() }),
    );
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::fund::insert(
                conn,
                &NewFund {
                    id,
                    centre_id,
                    name: body.name.trim(),
                    bank_account: body.bank_account.as_deref().map(str::trim),
                },
            )
            .await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().json(FundView::from(row)))
}

/// Funds the caller may see (admin: all; clerk: its centre's; supervisor: its region's).
#[utoipa::path(tag = "funds", params(PageParams), responses(
    (status = 200, body = Paged<FundView>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
#[get("/funds")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let filter = match &user.scope {
        Scope::All => FundFilter::default(),
        Scope::Centre(c) => FundFilter {
            centre_id: Some(*c),
            ..Default::default()
        },
        Scope::Region(r) => FundFilter {
            region_prefix: Some(r.subtree_prefix().to_owned()),
            ..Default::default()
        },
        Scope::Bank(_) => return Err(ApiError::Forbidden),
    };
    let mut conn = state.conn().await?;
    let rows = repo::fund::list(&mut conn, &filter, page.cursor_uuid()?, page.limit()?).await?;
    let next_cursor = super::next_cursor(&rows, |r| r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows.items.into_iter().map(FundView::from).collect(),
        next_cursor,
    }))
}

/// A fund's balance, outstanding guaranteed principal, leverage and headroom on a date.
#[utoipa::path(tag = "funds", params(("id" = Uuid, Path), AsOf), responses(
    (status = 200, body = FundPosition),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/funds/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: Query<AsOf>,
) -> ApiResult<HttpResponse> {
    if matches!(user.scope, Scope::Bank(_)) {
        return Err(ApiError::Forbidden);
    }
    let as_of = q.as_of.unwrap_or_else(|| state.today());
    let mut conn = state.conn().await?;
    let (fund, centre) = visible_fund(&mut conn, &user, *id).await?;
    Ok(HttpResponse::Ok().json(position(&mut conn, fund, &centre, as_of).await?))
}

/// The fund's position on `as_of` (the caller has checked that it may see the fund).
pub(crate) async fn position(
    conn: &mut AsyncPgConnection,
    fund: FundRow,
    centre: &CentreRow,
    as_of: NaiveDate,
) -> ApiResult<FundPosition> {
    let balance = repo::fund::balance_as_of(conn, fund.id, as_of).await?;
    let contributions = repo::fund::contributions_as_of(conn, fund.id, as_of).await?;
    let outstanding = repo::fund::outstanding_as_of(conn, fund.id, as_of).await?;
    let policy = policy_in_force(conn, &centre.region_code, as_of).await?;
    let leverage = policy.as_ref().map(|p| p.leverage_multiple);
    let (b, o) = (money(balance)?, money(outstanding)?);
    let headroom = leverage
        .map(|l| capacity::headroom_for_display(b, o, l))
        .unwrap_or(Money::ZERO);
    Ok(FundPosition {
        fund: FundView::from(fund),
        as_of,
        balance: b,
        contributions: money(contributions)?,
        outstanding_guaranteed: o,
        leverage_multiple: leverage.map(|l| l.normalize().to_string()),
        actual_leverage: capacity::actual_leverage(o, b).map(|l| {
            l.round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                .to_string()
        }),
        headroom,
    })
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContributionSource {
    ProvinceFinance,
    CityFinance,
    CountyFinance,
    Other,
}

impl ContributionSource {
    fn as_str(self) -> &'static str {
        match self {
            ContributionSource::ProvinceFinance => "province_finance",
            ContributionSource::CityFinance => "city_finance",
            ContributionSource::CountyFinance => "county_finance",
            ContributionSource::Other => "other",
        }
    }
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContributionBody {
    /// The day the money reached the fund's account: not before 1990-01-01, not after today.
    pub value_date: NaiveDate,
    pub amount: Money,
    pub source: ContributionSource,
    /// The finance department's document number or a note.
    #[schema(max_length = 200)]
    pub reference: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: i64,
    pub fund_id: Uuid,
    pub value_date: NaiveDate,
    /// `contribution`, `compensation`, `recovery` or `reversal`.
    pub kind: String,
    /// Signed: money in is positive, money out negative.
    #[schema(value_type = String, example = "-20000.00")]
    pub amount: String,
    pub source: Option<String>,
    pub loan_id: Option<Uuid>,
    pub reference: Option<String>,
    /// The fund's booked balance after this entry (entries in booking order).
    pub balance_after: Money,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

fn entry_view(r: LedgerEntryRow, balance_after: Decimal) -> ApiResult<LedgerEntryView> {
    Ok(LedgerEntryView {
        id: r.id,
        fund_id: r.fund_id,
        value_date: r.value_date,
        kind: r.kind,
        amount: format!("{:.2}", r.amount),
        source: r.source,
        loan_id: r.loan_id,
        reference: r.reference,
        balance_after: money(balance_after)?,
        created_by: r.created_by,
        created_at: r.created_at,
    })
}

/// Record money put into a fund (clerk of its centre). The balance moves under a lock on the
/// fund, in the same transaction as the ledger entry and its audit event. Send an
/// `Idempotency-Key` to make retries safe.
#[utoipa::path(tag = "funds", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe: the same key and body replay the first answer")), request_body = ContributionBody, responses(
    (status = 201, body = LedgerEntryView),
    (status = 409, description = "idempotency_key_in_flight", body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/funds/{id}/contributions")]
pub async fn contribute(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: Json<ContributionBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Clerk])?;
    let body = body.0;
    let idem = Idem::new(user.id, key, &body);
    if body.amount.is_zero() {
        return Err(ApiError::validation("amount", "must be positive"));
    }
    not_after_today(&state, "value_date", body.value_date)?;
    if let Some(r) = &body.reference {
        super::regions::check_name("reference", r, 200)?;
    }
    let mut conn = state.conn().await?;
    let (fund, centre) = visible_fund(&mut conn, &user, *id).await?;
    let event = Audit { principal: &user, request_id: &rid }.event(
        "fund.contribution",
        "fund",
        fund.id,
        Some(&centre.region_code),
        serde_json::json!({ "amount": body.amount, "value_date": body.value_date, "source": body.source.as_str(), "reference": body.reference }),
    );
    let answer = conn
        .transaction::<_, ApiError, _>(async |conn| {
            if let Seen::Replay(r) = idem.check(conn).await? {
                return Ok(Err(r));
            }
            let locked = repo::fund::lock(conn, fund.id)
                .await?
                .ok_or(ApiError::NotFound)?;
            // Each amount is below 10^16; their sum must be too, or the balance column would
            // overflow (a 500) instead of the caller hearing why.
            if Money::from_decimal(locked.balance + body.amount.amount()).is_err() {
                return Err(ApiError::validation(
                    "amount",
                    "would take the fund's balance to 10^16 yuan or more",
                ));
            }
            let entry = repo::fund::append_entry(
                conn,
                &NewLedgerEntry {
                    fund_id: fund.id,
                    value_date: body.value_date,
                    kind: "contribution".into(),
                    amount: body.amount.amount(),
                    source: Some(body.source.as_str().into()),
                    loan_id: None,
                    reference: body.reference.clone(),
                    created_by: Some(user.id),
                },
            )
            .await?;
            let after =
                repo::fund::add_to_totals(conn, fund.id, body.amount.amount(), Decimal::ZERO)
                    .await?;
            repo::audit::record(conn, &event).await?;
            let view = entry_view(entry, after.balance)?;
            idem.remember(conn, StatusCode::CREATED, &view).await?;
            Ok(Ok(view))
        })
        .await?;
    Ok(match answer {
        Ok(view) => HttpResponse::Created().json(view),
        Err(replay) => replay.into_response(),
    })
}

/// Every movement of a fund's money, oldest first, with the running balance.
#[utoipa::path(tag = "funds", params(("id" = Uuid, Path), PageParams), responses(
    (status = 200, body = Paged<LedgerEntryView>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/funds/{id}/ledger")]
pub async fn ledger(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    page: Query<PageParams>,
) -> ApiResult<HttpResponse> {
    if matches!(user.scope, Scope::Bank(_)) {
        return Err(ApiError::Forbidden);
    }
    let after = page.cursor_i64()?;
    let mut conn = state.conn().await?;
    let (fund, _) = visible_fund(&mut conn, &user, *id).await?;
    let rows = repo::fund::ledger(&mut conn, fund.id, after, page.limit()?).await?;
    let next_cursor = super::next_cursor(&rows, |(r, _)| r.id.to_string());
    let items = rows
        .items
        .into_iter()
        .map(|(r, b)| entry_view(r, b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor }))
}
