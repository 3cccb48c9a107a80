//! Supervisors' figures: the summary of every measure, the repayment rate, yearly targets and
//! their completion, and the reward check. All of them come from `crate::stats::summary`.
use crate::auth::{AuthUser, Role, Scope};
use crate::context::{Audit, RequestId};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, PageParams, Paged, Query};
use crate::state::AppState;
use crate::stats::{self, GroupBy, Measures, Params, Summary};
use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use danbao_domain::{percent, RegionCode};
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection};
use danbao_persistence::models::stats::{NewTarget, TargetRow};
use danbao_persistence::repo;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

type Problem = crate::error::Problem;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(summary)
        .service(repayment_rate)
        .service(create_target)
        .service(list_targets)
        .service(target_completion)
        .service(rewards);
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{e}"))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// GB/T 2260 code: this region and everything below it (default: the caller's region; for
    /// others, the province when there is only one).
    pub region: Option<String>,
    /// First day of the period (default: 1 January of the as-of date's year).
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub from: Option<NaiveDate>,
    /// Last day of the period (default: 31 December of `from`'s year).
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub to: Option<NaiveDate>,
    /// Stocks are as of this date, flows count up to it (default today).
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub as_of: Option<NaiveDate>,
    #[param(inline)]
    pub group_by: Option<GroupBy>,
    pub bank_id: Option<Uuid>,
    pub centre_id: Option<Uuid>,
    /// `zh`: Chinese column headers in the CSV export.
    #[serde(default, deserialize_with = "crate::limits::query_lang")]
    #[param(pattern = "^(en|zh)$")]
    pub lang: Option<String>,
}

/// The province, when the database holds exactly one.
async fn only_province(conn: &mut AsyncPgConnection) -> ApiResult<Option<RegionCode>> {
    let provinces: Vec<RegionCode> = repo::region::provinces(conn)
        .await?
        .into_iter()
        .filter_map(|c| RegionCode::parse(&c).ok())
        .collect();
    Ok(if provinces.len() == 1 {
        provinces.into_iter().next()
    } else {
        None
    })
}

fn parse_region(r: &str) -> ApiResult<RegionCode> {
    RegionCode::parse(r)
        .map_err(|_| ApiError::validation("region", "must be a six-digit GB/T 2260 code"))
}

/// The scope asked for, narrowed to what the caller may see. A supervisor asking for a region
/// above its own gets its own part; for a region beside it, 404.
async fn default_region(
    conn: &mut AsyncPgConnection,
    asked: Option<RegionCode>,
) -> ApiResult<RegionCode> {
    match asked {
        Some(r) => Ok(r),
        None => only_province(conn).await?.ok_or_else(|| {
            ApiError::validation("region", "required: the database holds several provinces")
        }),
    }
}

pub(crate) async fn resolve_scope(
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    region: Option<&str>,
    bank_id: Option<Uuid>,
    centre_id: Option<Uuid>,
) -> ApiResult<stats::Scope> {
    let asked = region.map(parse_region).transpose()?;
    match &user.scope {
        Scope::All => Ok(stats::Scope {
            region: default_region(conn, asked.clone()).await?,
            bank_id,
            centre_id,
        }),
        Scope::Region(own) => {
            let region = match asked {
                None => own.clone(),
                Some(a) if own.contains(&a) => a,
                Some(a) if a.contains(own) => own.clone(),
                Some(_) => return Err(ApiError::NotFound),
            };
            Ok(stats::Scope {
                region,
                bank_id,
                centre_id,
            })
        }
        Scope::Centre(c) => {
            if centre_id.is_some_and(|x| x != *c) {
                return Err(ApiError::NotFound);
            }
            let centre = super::funds::centre_of(conn, *c).await?;
            let home = RegionCode::parse(&centre.region_code).map_err(internal)?;
            let region = match asked {
                None => home,
                Some(a) if a.contains(&home) => a,
                Some(_) => return Err(ApiError::NotFound),
            };
            Ok(stats::Scope {
                region,
                bank_id,
                centre_id: Some(*c),
            })
        }
        Scope::Bank(b) => {
            if bank_id.is_some_and(|x| x != *b) {
                return Err(ApiError::NotFound);
            }
            Ok(stats::Scope {
                region: default_region(conn, asked.clone()).await?,
                bank_id: Some(*b),
                centre_id,
            })
        }
    }
}

pub(crate) async fn params(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user: &AuthUser,
    q: &StatsQuery,
) -> ApiResult<Params> {
    let scope = resolve_scope(conn, user, q.region.as_deref(), q.bank_id, q.centre_id).await?;
    let as_of = q.as_of.unwrap_or_else(|| state.today());
    let from = q
        .from
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(as_of.year(), 1, 1).unwrap_or(as_of));
    let to =
        q.to.unwrap_or_else(|| NaiveDate::from_ymd_opt(from.year(), 12, 31).unwrap_or(from));
    // The query's dates were bounded when it was read; the defaults come from them or today.
    for (field, d) in [("from", from), ("to", to), ("as_of", as_of)] {
        danbao_domain::bounds::check_date(field, d)?;
    }
    if from > to {
        return Err(ApiError::validation("to", "must not be before from"));
    }
    Ok(Params {
        scope,
        from,
        to,
        as_of,
        group_by: q.group_by,
    })
}

/// Measure names in column order, with their Chinese headers.
const COLUMNS: &[(&str, &str)] = &[
    ("issued_count", "发放笔数"),
    ("issued_amount", "发放金额"),
    ("borrowers_helped", "扶持人数"),
    ("jobs_created", "带动就业"),
    ("waiver_loans", "免反担保笔数"),
    ("waiver_amount", "免反担保金额"),
    ("cumulative_issued_count", "累计发放笔数"),
    ("cumulative_issued_amount", "累计发放金额"),
    ("outstanding_balance", "贷款余额"),
    ("fell_due", "到期本金"),
    ("repaid", "已收回本金"),
    ("repaid_on_time", "按期收回本金"),
    ("collection_rate", "到期还贷率(%)"),
    ("on_time_rate", "按期还贷率(%)"),
    ("loans_matured", "到期笔数"),
    ("loans_repaid_in_full", "还清笔数"),
    ("count_rate", "笔数还贷率(%)"),
    ("cumulative_fell_due", "累计到期本金"),
    ("cumulative_repaid", "累计收回本金"),
    ("cumulative_repaid_on_time", "累计按期收回本金"),
    ("cumulative_collection_rate", "累计到期还贷率(%)"),
    ("cumulative_on_time_rate", "累计按期还贷率(%)"),
    ("overdue_loans", "逾期笔数"),
    ("overdue_principal", "逾期本金"),
    ("overdue_1_30", "逾期1-30天余额"),
    ("overdue_31_90", "逾期31-90天余额"),
    ("overdue_over_90", "逾期90天以上余额"),
    ("par30", "PAR30"),
    ("par90", "PAR90"),
    ("compensations", "代偿笔数"),
    ("compensation_amount", "代偿金额"),
    ("compensation_rate", "代偿率(%)"),
    ("recovered", "追偿金额"),
    ("recovered_to_fund", "追偿归还基金"),
    ("write_offs", "核销笔数"),
    ("written_off_loss", "核销损失"),
    ("new_credit_communities", "新增信用社区"),
    ("credit_communities", "信用社区总数"),
    ("contributions", "新增基金"),
    ("contributions_total", "累计注资"),
    ("fund_balance", "基金余额"),
    ("outstanding_guaranteed", "在保余额"),
    ("actual_leverage", "放大倍数"),
    ("subsidy", "贴息"),
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => csv_field(s),
        other => other.to_string(),
    }
}

/// The table as CSV: one row per group, then the total.
fn to_csv(s: &Summary, columns: &[(&str, &str)], zh: bool) -> ApiResult<String> {
    let mut out = String::new();
    let head: Vec<&str> = columns
        .iter()
        .map(|(en, cn)| if zh { *cn } else { *en })
        .collect();
    out.push_str(if zh { "分组,名称," } else { "key,label," });
    out.push_str(&head.join(","));
    out.push_str("\r\n");
    let mut line = |key: &str, label: &str, m: &Measures| -> ApiResult<()> {
        let v = serde_json::to_value(m).map_err(internal)?;
        let cells: Vec<String> = columns
            .iter()
            .map(|(c, _)| csv_value(v.get(*c).unwrap_or(&serde_json::Value::Null)))
            .collect();
        out.push_str(&format!(
            "{},{},{}\r\n",
            csv_field(key),
            csv_field(label),
            cells.join(",")
        ));
        Ok(())
    };
    for g in &s.groups {
        line(&g.key, &g.label, &g.measures)?;
    }
    line("total", if zh { "合计" } else { "total" }, &s.total)?;
    Ok(out)
}

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

fn csv_response(body: String, name: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}.csv\""),
        ))
        .body(body)
}

/// Every measure for a region (and below), a period and an as-of date, optionally grouped by
/// the next region level, bank, centre, borrower category, month, quarter or year; the groups
/// add up to the total. `Accept: text/csv` gives the same table as CSV (`lang=zh` for Chinese
/// headers). Supervisors see their region and below (a region above theirs gives their own
/// part; a region beside it 404), a clerk its centre, a bank its own loans.
#[utoipa::path(tag = "stats", params(StatsQuery), responses(
    (status = 200, description = "JSON, or with `Accept: text/csv` the same table as CSV", content(
        (Summary = "application/json"),
        (String = "text/csv"),
    )),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "a region outside the caller's", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/stats/summary")]
pub async fn summary(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    q: Query<StatsQuery>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.read_conn().await?;
    let p = params(&state, &mut conn, &user, &q).await?;
    let s = stats::summary(&mut conn, &p)
        .await
        .map_err(ApiError::internal)?;
    if wants_csv(&req) {
        let zh = q.lang.as_deref() == Some("zh");
        return Ok(csv_response(to_csv(&s, COLUMNS, zh)?, "summary"));
    }
    Ok(HttpResponse::Ok().json(s))
}

/// The repayment-rate measures of the summary (by amount and by count, period and
/// cumulative), with their numerators and denominators.
#[derive(Serialize, ToSchema)]
pub struct RepaymentRate {
    pub fell_due: String,
    pub repaid: String,
    pub repaid_on_time: String,
    pub collection_rate: Option<String>,
    pub on_time_rate: Option<String>,
    pub loans_matured: i64,
    pub loans_repaid_in_full: i64,
    pub count_rate: Option<String>,
    pub cumulative_fell_due: String,
    pub cumulative_repaid: String,
    pub cumulative_repaid_on_time: String,
    pub cumulative_collection_rate: Option<String>,
    pub cumulative_on_time_rate: Option<String>,
}

impl From<&Measures> for RepaymentRate {
    fn from(m: &Measures) -> Self {
        let s = |d: Decimal| format!("{:.2}", d);
        RepaymentRate {
            fell_due: s(m.fell_due),
            repaid: s(m.repaid),
            repaid_on_time: s(m.repaid_on_time),
            collection_rate: m.collection_rate.map(s),
            on_time_rate: m.on_time_rate.map(s),
            loans_matured: m.loans_matured,
            loans_repaid_in_full: m.loans_repaid_in_full,
            count_rate: m.count_rate.map(s),
            cumulative_fell_due: s(m.cumulative_fell_due),
            cumulative_repaid: s(m.cumulative_repaid),
            cumulative_repaid_on_time: s(m.cumulative_repaid_on_time),
            cumulative_collection_rate: m.cumulative_collection_rate.map(s),
            cumulative_on_time_rate: m.cumulative_on_time_rate.map(s),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RateGroup {
    pub key: String,
    pub label: String,
    #[serde(flatten)]
    pub rate: RepaymentRate,
}

#[derive(Serialize, ToSchema)]
pub struct RepaymentRateReport {
    pub region: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
    pub group_by: Option<GroupBy>,
    pub total: RepaymentRate,
    pub groups: Vec<RateGroup>,
}

/// 到期还贷率 as domain.md defines it: collection rate (repaid by the as-of date ÷ principal
/// that fell due in the period), on-time rate (repaid by due date + grace ÷ fell due), and the
/// count-based rate (loans whose last instalment fell due in the period and are repaid in
/// full ÷ those loans); the same since the start. Same parameters as the summary.
#[utoipa::path(tag = "stats", params(StatsQuery), responses(
    (status = 200, description = "JSON, or with `Accept: text/csv` the same table as CSV", content(
        (RepaymentRateReport = "application/json"),
        (String = "text/csv"),
    )),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/stats/repayment-rate")]
pub async fn repayment_rate(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    q: Query<StatsQuery>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.read_conn().await?;
    let p = params(&state, &mut conn, &user, &q).await?;
    let s = stats::repayment_rate(&mut conn, &p)
        .await
        .map_err(ApiError::internal)?;
    if wants_csv(&req) {
        let zh = q.lang.as_deref() == Some("zh");
        let cols: Vec<(&str, &str)> = COLUMNS[9..22].to_vec();
        return Ok(csv_response(to_csv(&s, &cols, zh)?, "repayment-rate"));
    }
    Ok(HttpResponse::Ok().json(RepaymentRateReport {
        region: s.region,
        from: s.from,
        to: s.to,
        as_of: s.as_of,
        group_by: s.group_by,
        total: RepaymentRate::from(&s.total),
        groups: s
            .groups
            .iter()
            .map(|g| RateGroup {
                key: g.key.clone(),
                label: g.label.clone(),
                rate: RepaymentRate::from(&g.measures),
            })
            .collect(),
    }))
}

/// 1 January to 31 December of `year`, within the dates the API accepts.
pub(crate) fn year_bounds(year: i32) -> ApiResult<(NaiveDate, NaiveDate)> {
    danbao_domain::bounds::check_year("year", year)?;
    match (
        NaiveDate::from_ymd_opt(year, 1, 1),
        NaiveDate::from_ymd_opt(year, 12, 31),
    ) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(ApiError::validation("year", "out of range")),
    }
}

// ---- targets --------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetMeasure {
    /// Yuan issued in the year.
    IssuedAmount,
    /// Yuan contributed to the funds in the year.
    NewFundMoney,
    NewCreditCommunities,
    BorrowersHelped,
    JobsCreated,
    /// Collection rate for the year, percent.
    RepaymentRate,
}

impl TargetMeasure {
    fn as_str(self) -> &'static str {
        match self {
            TargetMeasure::IssuedAmount => "issued_amount",
            TargetMeasure::NewFundMoney => "new_fund_money",
            TargetMeasure::NewCreditCommunities => "new_credit_communities",
            TargetMeasure::BorrowersHelped => "borrowers_helped",
            TargetMeasure::JobsCreated => "jobs_created",
            TargetMeasure::RepaymentRate => "repayment_rate",
        }
    }

    const ALL: [TargetMeasure; 6] = [
        TargetMeasure::IssuedAmount,
        TargetMeasure::NewFundMoney,
        TargetMeasure::NewCreditCommunities,
        TargetMeasure::BorrowersHelped,
        TargetMeasure::JobsCreated,
        TargetMeasure::RepaymentRate,
    ];

    /// The actual figure from the summary.
    fn actual(self, m: &Measures) -> Option<Decimal> {
        match self {
            TargetMeasure::IssuedAmount => Some(m.issued_amount),
            TargetMeasure::NewFundMoney => m.contributions,
            TargetMeasure::NewCreditCommunities => m.new_credit_communities.map(Decimal::from),
            TargetMeasure::BorrowersHelped => Some(Decimal::from(m.borrowers_helped)),
            TargetMeasure::JobsCreated => Some(Decimal::from(m.jobs_created)),
            TargetMeasure::RepaymentRate => m.collection_rate,
        }
    }
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    #[schema(example = "360100")]
    pub region_code: String,
    #[schema(example = 2007)]
    pub year: i32,
    pub measure: TargetMeasure,
    /// Yuan with two decimals for amounts, a count, or a percent for the repayment rate.
    #[schema(value_type = String, example = "100000000.00")]
    pub value: Decimal,
}

#[derive(Serialize, ToSchema)]
pub struct TargetView {
    pub id: i64,
    pub region_code: String,
    pub year: i32,
    pub measure: String,
    #[schema(value_type = String)]
    pub value: Decimal,
    pub set_by: Uuid,
    pub created_at: DateTime<Utc>,
}

fn target_view(t: TargetRow) -> TargetView {
    TargetView {
        id: t.id,
        region_code: t.region_code,
        year: t.year,
        measure: t.measure,
        value: t.value,
        set_by: t.set_by,
        created_at: t.created_at,
    }
}

/// Set a region's target for a year and measure: an admin anywhere, a supervisor for the
/// regions below its own. A new value for the same region, year and measure is a new entry;
/// the latest counts.
#[utoipa::path(tag = "stats", request_body = TargetBody, responses(
    (status = 201, body = TargetView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "a region outside the supervisor's", body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[post("/targets")]
pub async fn create_target(
    state: web::Data<AppState>,
    user: AuthUser,
    rid: RequestId,
    body: Json<TargetBody>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Supervisor])?;
    let body = body.0;
    let region = RegionCode::parse(&body.region_code)
        .map_err(|_| ApiError::validation("region_code", "must be a six-digit GB/T 2260 code"))?;
    if let Scope::Region(own) = &user.scope {
        if !own.contains(&region) || own == &region {
            return Err(ApiError::NotFound);
        }
    }
    year_bounds(body.year)?;
    if body.value <= Decimal::ZERO
        || body.value.scale() > 2
        || body.value >= Decimal::from(10_i64.pow(16))
    {
        return Err(ApiError::validation(
            "value",
            "must be positive, with at most two decimals, below 10^16",
        ));
    }
    if body.measure == TargetMeasure::RepaymentRate && body.value > Decimal::ONE_HUNDRED {
        return Err(ApiError::validation(
            "value",
            "a rate is a percent, at most 100",
        ));
    }
    let mut conn = state.conn().await?;
    if repo::region::find(&mut conn, region.as_str())
        .await?
        .is_none()
    {
        return Err(ApiError::validation("region_code", "no such region"));
    }
    let new = NewTarget {
        region_code: region.as_str().to_owned(),
        year: body.year,
        measure: body.measure.as_str().to_owned(),
        value: body.value,
        set_by: user.id,
    };
    let event = Audit { principal: &user, request_id: &rid }.event(
        "target.set",
        "region",
        region.as_str(),
        Some(region.as_str()),
        serde_json::json!({ "year": body.year, "measure": body.measure, "value": body.value.to_string() }),
    );
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = repo::stats::insert_target(conn, &new).await?;
            repo::audit::record(conn, &event).await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().json(target_view(row)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TargetQuery {
    pub region: Option<String>,
    #[serde(default, deserialize_with = "crate::limits::query_year")]
    #[param(minimum = 1990, maximum = 2200)]
    pub year: Option<i32>,
}

/// Targets in the caller's region and below, newest first (every entry, corrections too).
#[utoipa::path(tag = "stats", params(PageParams, TargetQuery), responses(
    (status = 200, body = Paged<TargetView>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
#[get("/targets")]
pub async fn list_targets(
    state: web::Data<AppState>,
    user: AuthUser,
    page: Query<PageParams>,
    q: Query<TargetQuery>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.read_conn().await?;
    let scope = resolve_scope(&mut conn, &user, q.region.as_deref(), None, None).await?;
    let after = page.cursor_i64()?;
    let rows = repo::stats::list_targets(
        &mut conn,
        scope.region.subtree_prefix(),
        q.year,
        after,
        page.limit()?,
    )
    .await?;
    let next_cursor = super::next_cursor(&rows, |t| t.id.to_string());
    Ok(HttpResponse::Ok().json(Paged {
        items: rows.items.into_iter().map(target_view).collect::<Vec<_>>(),
        next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompletionQuery {
    /// Default: the caller's region.
    pub region: Option<String>,
    /// Default: this year.
    #[serde(default, deserialize_with = "crate::limits::query_year")]
    #[param(minimum = 1990, maximum = 2200)]
    pub year: Option<i32>,
    /// Default: today, or 31 December of a past year.
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub as_of: Option<NaiveDate>,
}

#[derive(Serialize, ToSchema)]
pub struct Completion {
    pub measure: String,
    #[schema(value_type = Option<String>)]
    pub target: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub actual: Option<Decimal>,
    /// `actual / target`, percent with two decimals ("完成年计划的 193.66%").
    #[schema(value_type = Option<String>)]
    pub completion: Option<Decimal>,
}

#[derive(Serialize, ToSchema)]
pub struct CompletionReport {
    pub region: String,
    pub year: i32,
    pub as_of: NaiveDate,
    pub items: Vec<Completion>,
}

/// Each measure's actual figure (from `m`), its target among `targets` (one region's), and
/// actual ÷ target.
pub(crate) fn completions(m: &Measures, targets: &[TargetRow]) -> Vec<Completion> {
    TargetMeasure::ALL
        .iter()
        .map(|measure| {
            let target = targets
                .iter()
                .find(|t| t.measure == measure.as_str())
                .map(|t| t.value);
            let actual = measure.actual(m);
            Completion {
                measure: measure.as_str().to_owned(),
                target,
                actual,
                completion: match (actual, target) {
                    (Some(a), Some(t)) => percent(a, t),
                    _ => None,
                },
            }
        })
        .collect()
}

/// Target completion of a region for a year: each measure's actual figure (from the summary
/// for the region and year), its target, and actual ÷ target.
#[utoipa::path(tag = "stats", params(CompletionQuery), responses(
    (status = 200, body = CompletionReport),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/stats/targets")]
pub async fn target_completion(
    state: web::Data<AppState>,
    user: AuthUser,
    q: Query<CompletionQuery>,
) -> ApiResult<HttpResponse> {
    let today = state.today();
    let year = q.year.unwrap_or(today.year());
    let (from, to) = year_bounds(year)?;
    let mut conn = state.read_conn().await?;
    let scope = resolve_scope(&mut conn, &user, q.region.as_deref(), None, None).await?;
    let as_of = q.as_of.unwrap_or(today.min(to));
    let region = scope.region.as_str().to_owned();
    let s = stats::summary(
        &mut conn,
        &Params {
            scope,
            from,
            to,
            as_of,
            group_by: None,
        },
    )
    .await
    .map_err(ApiError::internal)?;
    let targets =
        repo::stats::current_targets(&mut conn, std::slice::from_ref(&region), year).await?;
    let items = completions(&s.total, &targets);
    Ok(HttpResponse::Ok().json(CompletionReport {
        region,
        year,
        as_of,
        items,
    }))
}

// ---- rewards --------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RewardQuery {
    pub region: Option<String>,
    /// Default: last year.
    #[serde(default, deserialize_with = "crate::limits::query_year")]
    #[param(minimum = 1990, maximum = 2200)]
    pub year: Option<i32>,
    /// Default: today, or 31 December of a past year.
    #[serde(default, deserialize_with = "crate::limits::query_date")]
    pub as_of: Option<NaiveDate>,
}

#[derive(Serialize, ToSchema)]
pub struct RewardRow {
    /// `bank` or `centre`.
    pub kind: String,
    pub id: String,
    pub name: String,
    #[schema(value_type = Option<String>)]
    pub collection_rate: Option<Decimal>,
    pub met: bool,
    #[schema(value_type = String)]
    pub issued_amount: Decimal,
    /// The policy's reward share of the year's new loans, when the threshold is met.
    #[schema(value_type = String)]
    pub reward: Decimal,
}

#[derive(Serialize, ToSchema)]
pub struct RewardReport {
    pub region: String,
    pub year: i32,
    pub as_of: NaiveDate,
    pub policy_code: Option<String>,
    #[schema(value_type = Option<String>)]
    pub threshold_percent: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub reward_share: Option<Decimal>,
    pub items: Vec<RewardRow>,
}

/// Which banks and centres kept the year's collection rate at or above the policy's
/// threshold, and the reward that follows (the policy's share of their new loans that year).
/// The policy is the one in force for the region on 31 December of the year.
#[utoipa::path(tag = "stats", params(RewardQuery), responses(
    (status = 200, body = RewardReport),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
#[get("/stats/rewards")]
pub async fn rewards(
    state: web::Data<AppState>,
    user: AuthUser,
    q: Query<RewardQuery>,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin, Role::Supervisor])?;
    let today = state.today();
    let year = q.year.unwrap_or(today.year() - 1);
    let (from, to) = year_bounds(year)?;
    let as_of = q.as_of.unwrap_or(today.min(to));
    let mut conn = state.read_conn().await?;
    let scope = resolve_scope(&mut conn, &user, q.region.as_deref(), None, None).await?;
    let region = scope.region.as_str().to_owned();
    let policy = super::funds::policy_in_force(&mut conn, &region, to)
        .await?
        .map(|p| p.to_domain())
        .transpose()
        .map_err(internal)?;
    let mut items = Vec::new();
    for (kind, group) in [("bank", GroupBy::Bank), ("centre", GroupBy::Centre)] {
        let s = stats::summary(
            &mut conn,
            &Params {
                scope: scope.clone(),
                from,
                to,
                as_of,
                group_by: Some(group),
            },
        )
        .await
        .map_err(ApiError::internal)?;
        for g in s.groups {
            let rate = g.measures.collection_rate;
            let met = match (&policy, rate) {
                (Some(p), Some(r)) => {
                    r >= p.reward_min_repayment_rate.value() * Decimal::ONE_HUNDRED
                }
                _ => false,
            };
            let reward = match &policy {
                Some(p) if met => {
                    danbao_domain::round_money(g.measures.issued_amount * p.reward_share.value())
                }
                _ => Decimal::ZERO,
            };
            items.push(RewardRow {
                kind: kind.into(),
                id: g.key,
                name: g.label,
                collection_rate: rate,
                met,
                issued_amount: g.measures.issued_amount,
                reward,
            });
        }
    }
    Ok(HttpResponse::Ok().json(RewardReport {
        region,
        year,
        as_of,
        policy_code: policy.as_ref().map(|p| p.code.clone()),
        threshold_percent: policy
            .as_ref()
            .map(|p| p.reward_min_repayment_rate.value() * Decimal::ONE_HUNDRED),
        reward_share: policy.as_ref().map(|p| p.reward_share.value()),
        items,
    }))
}
