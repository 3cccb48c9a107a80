//! The dashboard page and the downloads. Every figure comes from `stats::summary`, fund
//! positions, or the overdue-loan scan of the API; this file only arranges them.
use super::charts::{self, Bar};
use super::table::{Cell, Row, Table};
use super::{page, renewed_cookie, Lang, Session};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::routes::stats::{completions, params, year_bounds, StatsQuery};
use crate::state::AppState;
use crate::stats::{self, GroupBy, Measures, Params, Summary};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{Datelike, NaiveDate};
use danbao_domain::{RegionCode, RegionLevel};
use danbao_persistence::diesel_async::AsyncPgConnection;
use danbao_persistence::repo;
use danbao_persistence::repo::fund::FundFilter;
use danbao_persistence::repo::loan::LoanFilter;
use maud::{html, Markup, DOCTYPE};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::HashMap;

/// Overdue loans listed at most (the API pages through the rest).
const OVERDUE_ROWS: i64 = 100;

#[derive(Deserialize)]
pub struct DashQuery {
    /// GB/T 2260 code (default: the supervisor's region).
    pub region: Option<String>,
    /// Default: the as-of date's year, or this year.
    pub year: Option<i32>,
    /// Default: today, or 31 December of a past year.
    pub as_of: Option<NaiveDate>,
    pub lang: Option<String>,
}

/// What a page or a download shows: the region, the year and the date, resolved and
/// checked against the caller's scope exactly as `/v1/stats/*` does.
struct View {
    lang: Lang,
    user: AuthUser,
    params: Params,
    year: i32,
    region_name: String,
    /// The way down from the top the caller may see to this region: (code, name).
    crumbs: Vec<(String, String)>,
}

impl View {
    fn region(&self) -> &RegionCode {
        &self.params.scope.region
    }

    /// This page's address with another region (or the same, `None`).
    fn href(&self, region: Option<&str>) -> String {
        format!(
            "/dashboard?region={}&year={}&as_of={}&lang={}",
            region.unwrap_or(self.region().as_str()),
            self.year,
            self.params.as_of,
            self.lang.code()
        )
    }

    fn xlsx_href(&self, table: &str) -> String {
        format!(
            "/dashboard/xlsx/{table}?region={}&year={}&as_of={}&lang={}",
            self.region().as_str(),
            self.year,
            self.params.as_of,
            self.lang.code()
        )
    }

    /// The level below this region that the drill-down shows: its sub-regions, or for a
    /// county its banks.
    fn sub_grouping(&self) -> GroupBy {
        match self.region().level() {
            RegionLevel::County => GroupBy::Bank,
            RegionLevel::Province | RegionLevel::City => GroupBy::Region,
        }
    }

    /// Where a row of the drill-down table leads: a sub-region's page. Banks, and the
    /// region's own level (loans of a city's own centre), lead nowhere further.
    fn drill(&self, key: &str) -> Option<String> {
        (self.sub_grouping() == GroupBy::Region && key != self.region().as_str())
            .then(|| self.href(Some(key)))
    }

    /// A group's label; the region's own level is marked as such.
    fn label(&self, key: &str, label: &str) -> String {
        if key == self.region().as_str() {
            format!("{label}{}", self.lang.t("（本级）", " (own level)"))
        } else {
            label.to_owned()
        }
    }

    fn with(&self, group_by: Option<GroupBy>) -> Params {
        Params {
            group_by,
            ..self.params.clone()
        }
    }
}

async fn resolve(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user: AuthUser,
    q: &DashQuery,
) -> ApiResult<View> {
    let lang = Lang::parse(q.lang.as_deref());
    let today = state.today();
    let year = q.year.or(q.as_of.map(|d| d.year())).unwrap_or(today.year());
    let (from, to) = year_bounds(year)?;
    let as_of = q.as_of.unwrap_or(today.min(to));
    let sq = StatsQuery {
        region: q.region.clone(),
        from: Some(from),
        to: Some(to),
        as_of: Some(as_of),
        group_by: None,
        bank_id: None,
        centre_id: None,
        lang: None,
    };
    let params = params(state, conn, &user, &sq).await?;
    let mut crumbs = Vec::new();
    // From the top down (the list runs from the region up).
    for code in params.scope.region.ancestors_and_self().into_iter().rev() {
        let visible = match user.region_limit() {
            Some(own) => own.contains(&code),
            None => true,
        };
        if !visible {
            continue;
        }
        if let Some(r) = repo::region::find(conn, code.as_str()).await? {
            crumbs.push((r.code, r.name));
        }
    }
    let region_name = match crumbs.last() {
        Some((code, name)) if code == params.scope.region.as_str() => name.clone(),
        // A well-formed code within the caller's scope that names no region.
        _ => return Err(ApiError::NotFound),
    };
    Ok(View {
        lang,
        user,
        params,
        year,
        region_name,
        crumbs,
    })
}

async fn summary(conn: &mut AsyncPgConnection, p: &Params) -> ApiResult<Summary> {
    stats::summary(conn, p).await.map_err(ApiError::internal)
}

fn money(d: Decimal) -> Cell {
    Cell::Money(d)
}

fn opt_money(d: Option<Decimal>) -> Cell {
    d.map_or(Cell::Empty, Cell::Money)
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

// ---- tables -----------------------------------------------------------------------------------

/// The drill-down table: each sub-region (or, for a county, each bank) with its issuance
/// against target and its repayment rates; the region's total last.
async fn sub_table(conn: &mut AsyncPgConnection, v: &View) -> ApiResult<(Table, Summary)> {
    let l = v.lang;
    let grouping = v.sub_grouping();
    let s = summary(conn, &v.with(Some(grouping))).await?;
    let mut codes: Vec<String> = s.groups.iter().map(|g| g.key.clone()).collect();
    codes.push(v.region().as_str().to_owned());
    let targets = if grouping == GroupBy::Region {
        repo::stats::current_targets(conn, &codes, v.year).await?
    } else {
        repo::stats::current_targets(conn, &codes[codes.len() - 1..], v.year).await?
    };
    let issued = |key: &str, m: &Measures| -> (Cell, Cell) {
        let own: Vec<_> = targets
            .iter()
            .filter(|t| t.region_code == key)
            .cloned()
            .collect();
        let c = completions(m, &own)
            .into_iter()
            .find(|c| c.measure == "issued_amount");
        match c {
            Some(c) => (opt_money(c.target), Cell::Percent(c.completion)),
            None => (Cell::Empty, Cell::Percent(None)),
        }
    };
    let row = |name: String, key: &str, m: &Measures, href: Option<String>| {
        let (target, completion) = issued(key, m);
        Row {
            cells: vec![
                Cell::Text(name),
                Cell::Count(m.issued_count),
                money(m.issued_amount),
                target,
                completion,
                Cell::Count(m.borrowers_helped),
                Cell::Count(m.jobs_created),
                money(m.fell_due),
                money(m.repaid),
                Cell::Percent(m.collection_rate),
                Cell::Percent(m.on_time_rate),
                opt_money(m.outstanding_balance),
                opt_money(m.par30),
                Cell::Percent(m.compensation_rate),
            ],
            href,
        }
    };
    let rows = s
        .groups
        .iter()
        .map(|g| {
            row(
                v.label(&g.key, &g.label),
                &g.key,
                &g.measures,
                v.drill(&g.key),
            )
        })
        .collect();
    let total = row(
        format!("{} {}", l.t("合计", "Total"), v.region_name),
        v.region().as_str(),
        &s.total,
        None,
    );
    let (title, first) = match grouping {
        GroupBy::Bank => (l.t("分银行", "By bank"), l.t("银行", "Bank")),
        _ => (l.t("分地区", "By region"), l.t("地区", "Region")),
    };
    let table = Table {
        id: "regions",
        title: title.to_owned(),
        headers: vec![
            first,
            l.t("发放笔数", "Loans issued"),
            l.t("发放金额", "Amount issued"),
            l.t("年度发放目标", "Issuance target"),
            l.t("目标完成率(%)", "Target completion (%)"),
            l.t("扶持人数", "Borrowers helped"),
            l.t("带动就业", "Jobs created"),
            l.t("到期本金", "Principal fallen due"),
            l.t("已收回本金", "Principal repaid"),
            l.t("到期还贷率(%)", "Collection rate (%)"),
            l.t("按期还贷率(%)", "On-time rate (%)"),
            l.t("贷款余额", "Outstanding balance"),
            l.t("PAR30", "PAR30"),
            l.t("代偿率(%)", "Compensation rate (%)"),
        ],
        rows,
        total: Some(total),
    };
    Ok((table, s))
}

/// Issuance and repayment month by month; months without any flow show zeros.
async fn month_table(conn: &mut AsyncPgConnection, v: &View) -> ApiResult<(Table, Summary)> {
    let l = v.lang;
    let s = summary(conn, &v.with(Some(GroupBy::Month))).await?;
    let by_key: HashMap<&str, &Measures> = s
        .groups
        .iter()
        .map(|g| (g.key.as_str(), &g.measures))
        .collect();
    let empty = Measures::default();
    let row = |label: String, m: &Measures| Row {
        cells: vec![
            Cell::Text(label),
            Cell::Count(m.issued_count),
            money(m.issued_amount),
            money(m.fell_due),
            money(m.repaid),
            money(m.repaid_on_time),
            Cell::Percent(m.collection_rate),
            Cell::Percent(m.on_time_rate),
            money(m.compensation_amount),
        ],
        href: None,
    };
    let rows = (1..=12)
        .map(|month| {
            let key = format!("{}-{month:02}", v.year);
            let m = by_key.get(key.as_str()).copied().unwrap_or(&empty);
            row(key, m)
        })
        .collect();
    let table = Table {
        id: "months",
        title: l.t("分月", "By month").to_owned(),
        headers: vec![
            l.t("月份", "Month"),
            l.t("发放笔数", "Loans issued"),
            l.t("发放金额", "Amount issued"),
            l.t("到期本金", "Principal fallen due"),
            l.t("已收回本金", "Principal repaid"),
            l.t("按期收回本金", "Repaid on time"),
            l.t("到期还贷率(%)", "Collection rate (%)"),
            l.t("按期还贷率(%)", "On-time rate (%)"),
            l.t("代偿金额", "Compensation paid"),
        ],
        rows,
        total: Some(row(l.t("合计", "Total").to_owned(), &s.total)),
    };
    Ok((table, s))
}

/// Every fund of the region's centres on the as-of date, with its headroom.
async fn fund_table(conn: &mut AsyncPgConnection, v: &View) -> ApiResult<Table> {
    let l = v.lang;
    let filter = FundFilter {
        region_prefix: Some(v.region().subtree_prefix().to_owned()),
        ..FundFilter::default()
    };
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let funds = repo::fund::list(conn, &filter, after, 200).await?;
        after = funds.items.last().map(|f| f.id);
        for fund in funds.items {
            let centre = crate::routes::funds::centre_of(conn, fund.centre_id).await?;
            let pos = crate::routes::funds::position(conn, fund, &centre, v.params.as_of).await?;
            let ratio = |s: &Option<String>| Cell::Ratio(s.as_deref().and_then(|s| s.parse().ok()));
            rows.push(Row {
                cells: vec![
                    Cell::Text(pos.fund.name.clone()),
                    Cell::Text(centre.name),
                    money(pos.balance.amount()),
                    money(pos.outstanding_guaranteed.amount()),
                    ratio(&pos.leverage_multiple),
                    ratio(&pos.actual_leverage),
                    money(pos.headroom.amount()),
                ],
                href: None,
            });
        }
        if !funds.has_more {
            break;
        }
    }
    Ok(Table {
        id: "funds",
        title: l.t("担保基金", "Guarantee funds").to_owned(),
        headers: vec![
            l.t("基金", "Fund"),
            l.t("担保中心", "Centre"),
            l.t("基金余额", "Balance"),
            l.t("在保余额", "Outstanding guaranteed"),
            l.t("最高放大倍数", "Maximum leverage"),
            l.t("实际放大倍数", "Actual leverage"),
            l.t("剩余担保能力", "Headroom"),
        ],
        rows,
        total: None,
    })
}

/// Loans past due on the as-of date, most days past due first, with personal data masked
/// as the API masks it for supervisors.
async fn overdue_table(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    v: &View,
) -> ApiResult<Table> {
    let l = v.lang;
    let filter = LoanFilter {
        region_prefix: Some(v.region().subtree_prefix().to_owned()),
        ..LoanFilter::default()
    };
    let (mut loans, more) = crate::routes::loans::by_overdue(
        conn,
        &v.user,
        filter,
        v.params.as_of,
        true,
        None,
        OVERDUE_ROWS,
    )
    .await?;
    loans.sort_by_key(|l| std::cmp::Reverse(l.position.days_past_due));
    let mut banks: HashMap<uuid::Uuid, String> = HashMap::new();
    let mut rows = Vec::new();
    for loan in loans {
        let borrower = match repo::borrower::find(conn, loan.borrower_id).await? {
            Some(b) => Some(crate::routes::borrowers::BorrowerView::for_user(
                b, &v.user, state,
            )?),
            None => None,
        };
        if let std::collections::hash_map::Entry::Vacant(e) = banks.entry(loan.bank_id) {
            let name = repo::bank::find(conn, loan.bank_id)
                .await?
                .map_or_else(String::new, |b| b.name);
            e.insert(name);
        }
        rows.push(Row {
            cells: vec![
                Cell::Text(loan.id.to_string()),
                Cell::Text(
                    borrower
                        .as_ref()
                        .map_or_else(String::new, |b| b.name.clone()),
                ),
                Cell::Text(borrower.and_then(|b| b.national_id).unwrap_or_default()),
                Cell::Text(banks.get(&loan.bank_id).cloned().unwrap_or_default()),
                Cell::Text(loan.disbursed_on.map(|d| d.to_string()).unwrap_or_default()),
                money(loan.principal.amount()),
                money(loan.position.outstanding_principal.amount()),
                money(loan.position.overdue_principal.amount()),
                Cell::Count(i64::from(loan.position.days_past_due)),
            ],
            href: None,
        });
    }
    let title = if more.is_some() {
        format!(
            "{} ({})",
            l.t("逾期贷款", "Overdue loans"),
            l.t("仅列前100笔", "first 100 only")
        )
    } else {
        l.t("逾期贷款", "Overdue loans").to_owned()
    };
    Ok(Table {
        id: "overdue",
        title,
        headers: vec![
            l.t("贷款编号", "Loan"),
            l.t("借款人", "Borrower"),
            l.t("身份证号", "National id"),
            l.t("贷款银行", "Bank"),
            l.t("发放日期", "Disbursed on"),
            l.t("贷款本金", "Principal"),
            l.t("贷款余额", "Outstanding"),
            l.t("逾期本金", "Overdue principal"),
            l.t("逾期天数", "Days past due"),
        ],
        rows,
        total: None,
    })
}

// ---- the page ---------------------------------------------------------------------------------

const STYLE: &str = r#"
*{box-sizing:border-box}body{margin:0;font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;color:#1f2937;background:#f3f4f6}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;padding:.6rem 1rem;background:#1e3a8a;color:#fff}
header h1{font-size:1.15rem;margin:0}header a,header button{color:#fff;background:none;border:1px solid #93c5fd;border-radius:4px;padding:.2rem .6rem;font-size:.9rem;text-decoration:none;cursor:pointer}
header form{display:inline;margin:0}main{padding:1rem;max-width:1400px;margin:auto}
.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin-bottom:.8rem}.filters label{display:flex;flex-direction:column;font-size:.8rem}
.filters input,.filters button{font-size:1rem;padding:.3rem .5rem}nav.crumbs{margin:.3rem 0 .8rem}nav.crumbs a{color:#1d4ed8}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:.7rem}.kpi{background:#fff;border-radius:6px;padding:.7rem .9rem;box-shadow:0 1px 2px #0002}
.kpi h3{margin:0;font-size:.85rem;color:#4b5563;font-weight:normal}.kpi .v{font-size:1.45rem;font-weight:bold;margin:.2rem 0}.kpi .d{font-size:.78rem;color:#6b7280}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:.7rem;margin-top:.9rem}
figure.chart{margin:0;background:#fff;border-radius:6px;padding:.6rem;box-shadow:0 1px 2px #0002}figcaption{font-weight:bold;margin-bottom:.3rem}
svg{width:100%;height:auto;font-size:11px}svg text{fill:#374151}svg .axis{fill:#6b7280;font-size:10px}svg .link{fill:#1d4ed8;text-decoration:underline}
section.table{background:#fff;border-radius:6px;padding:.6rem;margin-top:.9rem;box-shadow:0 1px 2px #0002}.table-head{display:flex;justify-content:space-between;align-items:center}
.table-head h2{font-size:1rem;margin:.2rem 0}a.download{background:#15803d;color:#fff;padding:.3rem .7rem;border-radius:4px;text-decoration:none;font-size:.9rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.85rem}th,td{border-bottom:1px solid #e5e7eb;padding:.3rem .45rem;white-space:nowrap}
th{background:#eff6ff;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}tbody tr:last-child{font-weight:bold}
p.empty{color:#6b7280}.login{max-width:360px;margin:12vh auto;background:#fff;padding:1.5rem;border-radius:8px;box-shadow:0 2px 8px #0003}
.login label{display:block;margin:.6rem 0 .2rem}.login input{width:100%;font-size:1rem;padding:.45rem}.login button{margin-top:1rem;width:100%;font-size:1rem;padding:.5rem;background:#1e3a8a;color:#fff;border:0;border-radius:4px}
.error{color:#b91c1c}.lang{float:right;font-size:.9rem}
"#;

fn shell(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.t("zh-CN", "en")) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

pub fn login_form(lang: Lang, error: Option<&str>) -> Markup {
    let other = match lang {
        Lang::Zh => ("/?lang=en", "English"),
        Lang::En => ("/?lang=zh", "中文"),
    };
    shell(
        lang,
        lang.t(
            "登录 - 担保贷款监管看板",
            "Log in - guarantee loan dashboard",
        ),
        html! {
            form.login method="post" action="/login" {
                a.lang href=(other.0) { (other.1) }
                h1 { (lang.t("担保贷款监管看板", "Guarantee loan dashboard")) }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                input type="hidden" name="lang" value=(lang.code());
                label for="username" { (lang.t("用户名", "User name")) }
                input #username name="username" autocomplete="username" required autofocus;
                label for="password" { (lang.t("密码", "Password")) }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { (lang.t("登录", "Log in")) }
            }
        },
    )
}

fn error_page(lang: Lang, e: ApiError) -> HttpResponse {
    // Logs an internal error as the API does; the page shows only the status.
    let status = e.error_response().status();
    let text = match status {
        StatusCode::NOT_FOUND => lang.t("没有找到该页面或地区。", "No such page or region."),
        s if s.is_client_error() => lang.t("查询条件有误。", "The query is not valid."),
        _ => lang.t(
            "服务暂时出错，请稍后再试。",
            "Something went wrong; try again later.",
        ),
    };
    let detail = match &e {
        ApiError::Validation { .. } | ApiError::BadRequest { .. } => e.to_string(),
        _ => String::new(),
    };
    page(
        status,
        shell(
            lang,
            text,
            html! {
                main {
                    h1 { (status.as_u16()) }
                    p { (text) }
                    @if !detail.is_empty() { p.error { (detail) } }
                    p { a href=(format!("/dashboard?lang={}", lang.code())) { (lang.t("返回看板", "Back to the dashboard")) } }
                }
            },
        ),
    )
}

fn kpi(id: &str, title: &str, value: String, detail: Markup) -> Markup {
    html! {
        div.kpi id=(id) {
            h3 { (title) }
            div.v { (value) }
            div.d { (detail) }
        }
    }
}

fn pct(d: Option<Decimal>) -> String {
    super::table::show(&Cell::Percent(d))
}

fn yuan(d: Option<Decimal>) -> String {
    super::table::show(&d.map_or(Cell::Empty, Cell::Money))
}

async fn dashboard_body(state: &AppState, v: &View) -> ApiResult<Markup> {
    let l = v.lang;
    let mut conn = state.conn().await?;
    let conn = &mut *conn;
    let (subs, sub_summary) = sub_table(conn, v).await?;
    let (months, month_s) = month_table(conn, v).await?;
    let funds = fund_table(conn, v).await?;
    let overdue = overdue_table(state, conn, v).await?;
    let t = &sub_summary.total;
    let own_targets =
        repo::stats::current_targets(conn, &[v.region().as_str().to_owned()], v.year).await?;
    let done = completions(t, &own_targets);
    let completion = |measure: &str| done.iter().find(|c| c.measure == measure);
    let policy =
        crate::routes::funds::policy_in_force(conn, v.region().as_str(), v.params.as_of).await?;
    let max_leverage = policy.map(|p| p.leverage_multiple);

    let issued = completion("issued_amount");
    let helped = completion("borrowers_helped");
    let kpis = html! {
        section.kpis {
            (kpi("issued", l.t("发放金额", "Amount issued"), yuan(Some(t.issued_amount)), html! {
                (t.issued_count) " " (l.t("笔", "loans"))
                @if let Some(c) = issued.filter(|c| c.target.is_some()) {
                    " · " (l.t("目标", "target")) " " (yuan(c.target)) " · " (l.t("完成", "done")) " " (pct(c.completion))
                }
            }))
            (kpi("helped", l.t("扶持人数", "Borrowers helped"), t.borrowers_helped.to_string(), html! {
                @if let Some(c) = helped.filter(|c| c.target.is_some()) {
                    (l.t("目标", "target")) " " (c.target.unwrap_or_default()) " · " (l.t("完成", "done")) " " (pct(c.completion))
                }
            }))
            (kpi("jobs", l.t("带动就业", "Jobs created"), t.jobs_created.to_string(), html! {}))
            (kpi("collection-rate", l.t("到期还贷率", "Collection rate"), pct(t.collection_rate), html! {
                (l.t("已收回", "repaid")) " " (yuan(Some(t.repaid))) " / " (l.t("到期", "fell due")) " " (yuan(Some(t.fell_due)))
            }))
            (kpi("on-time-rate", l.t("按期还贷率", "On-time rate"), pct(t.on_time_rate), html! {
                (l.t("按期收回", "repaid on time")) " " (yuan(Some(t.repaid_on_time))) " / " (l.t("到期", "fell due")) " " (yuan(Some(t.fell_due)))
            }))
            (kpi("outstanding", l.t("贷款余额", "Outstanding balance"), yuan(t.outstanding_balance), html! {
                "PAR30 " (yuan(t.par30)) " · PAR90 " (yuan(t.par90))
            }))
            (kpi("fund", l.t("基金余额", "Fund balance"), yuan(t.fund_balance), html! {
                (l.t("在保余额", "guaranteed")) " " (yuan(t.outstanding_guaranteed))
            }))
            (kpi("leverage", l.t("实际放大倍数", "Actual leverage"),
                super::table::show(&Cell::Ratio(t.actual_leverage)), html! {
                (l.t("政策最高", "policy maximum")) " " (super::table::show(&Cell::Ratio(max_leverage)))
            }))
            (kpi("compensation-rate", l.t("代偿率", "Compensation rate"), pct(t.compensation_rate), html! {
                (l.t("代偿", "compensated")) " " (yuan(Some(t.compensation_amount))) " / " (l.t("到期", "fell due")) " " (yuan(Some(t.fell_due)))
            }))
            (kpi("communities", l.t("信用社区", "Credit communities"),
                t.credit_communities.map_or_else(|| "—".into(), |n| n.to_string()), html! {
                (l.t("本年新增", "new this year")) " " (t.new_credit_communities.unwrap_or(0))
            }))
        }
    };

    // Charts, from the same summaries as the tables.
    let by_month: HashMap<&str, &Measures> = month_s
        .groups
        .iter()
        .map(|g| (g.key.as_str(), &g.measures))
        .collect();
    let month_points = |pick: fn(&Measures) -> Option<f64>| -> Vec<(String, Option<f64>)> {
        (1..=12)
            .map(|m| {
                let key = format!("{}-{m:02}", v.year);
                let val = by_month.get(key.as_str()).and_then(|x| pick(x));
                (m.to_string(), val)
            })
            .collect()
    };
    let issued_line = charts::line(
        l.t("每月发放金额（万元）", "Issued per month (10k yuan)"),
        &month_points(|m| Some(f(m.issued_amount) / 10_000.0)),
        |x| format!("{x:.0}"),
    );
    let rate_line = charts::line(
        l.t("每月到期还贷率（%）", "Collection rate per month (%)"),
        &month_points(|m| m.collection_rate.map(f)),
        |x| format!("{x:.1}"),
    );
    let mut rate_bars: Vec<Bar> = sub_summary
        .groups
        .iter()
        .filter_map(|g| {
            g.measures.collection_rate.map(|r| Bar {
                label: v.label(&g.key, &g.label),
                value: f(r),
                text: pct(Some(r)),
                href: v.drill(&g.key),
            })
        })
        .collect();
    rate_bars.sort_by(|a, b| b.value.total_cmp(&a.value));
    let completion_col = 4;
    let mut target_bars: Vec<Bar> = subs
        .rows
        .iter()
        .zip(&sub_summary.groups)
        .filter_map(|(row, g)| match row.cells.get(completion_col) {
            Some(Cell::Percent(Some(c))) => Some(Bar {
                label: v.label(&g.key, &g.label),
                value: f(*c),
                text: pct(Some(*c)),
                href: v.drill(&g.key),
            }),
            _ => None,
        })
        .collect();
    target_bars.sort_by(|a, b| b.value.total_cmp(&a.value));
    let bucket = |label: &'static str, d: Option<Decimal>| Bar {
        label: label.to_owned(),
        value: d.map_or(0.0, f),
        text: yuan(d),
        href: None,
    };
    let overdue_bars = vec![
        bucket(l.t("逾期1-30天", "1-30 days"), t.overdue_1_30),
        bucket(l.t("逾期31-90天", "31-90 days"), t.overdue_31_90),
        bucket(l.t("逾期90天以上", "over 90 days"), t.overdue_over_90),
        bucket("PAR30", t.par30),
        bucket("PAR90", t.par90),
    ];
    let headroom_bars: Vec<Bar> = funds
        .rows
        .iter()
        .map(|r| {
            let h = match r.cells.get(6) {
                Some(Cell::Money(d)) => *d,
                _ => Decimal::ZERO,
            };
            Bar {
                label: super::table::show(&r.cells[0]),
                value: f(h),
                text: yuan(Some(h)),
                href: None,
            }
        })
        .collect();
    let none = l.t("无数据", "No data");
    let sub_word = match v.sub_grouping() {
        GroupBy::Bank => l.t("各银行", "Banks"),
        _ => l.t("各地区", "Sub-regions"),
    };
    let charts = html! {
        section.charts {
            (issued_line)
            (rate_line)
            (charts::bars(&format!("{sub_word}{}", l.t("到期还贷率（%）", ": collection rate (%)")), &rate_bars, Some(100.0), none))
            (charts::bars(&format!("{sub_word}{}", l.t("发放目标完成率（%）", ": issuance target completion (%)")), &target_bars, None,
                l.t("未设年度目标", "No targets set for the year")))
            (charts::bars(l.t("逾期余额（元）", "Overdue balance (yuan)"), &overdue_bars, None, none))
            (charts::bars(l.t("各基金剩余担保能力（元）", "Headroom by fund (yuan)"), &headroom_bars, None, none))
        }
    };

    let other = match l {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    let switch = format!(
        "/dashboard?region={}&year={}&as_of={}&lang={}",
        v.region().as_str(),
        v.year,
        v.params.as_of,
        other.0
    );
    let title = format!(
        "{} {} {}",
        v.region_name,
        v.year,
        l.t("担保贷款监管看板", "guarantee loan dashboard")
    );
    Ok(shell(
        l,
        &title,
        html! {
            header {
                h1 { (title) }
                div {
                    span { (v.user.name) } " "
                    a #lang-switch href=(switch) { (other.1) } " "
                    form method="post" action=(format!("/logout?lang={}", l.code())) {
                        button type="submit" { (l.t("退出", "Log out")) }
                    }
                }
            }
            main {
                form.filters method="get" action="/dashboard" {
                    input type="hidden" name="region" value=(v.region().as_str());
                    input type="hidden" name="lang" value=(l.code());
                    label { (l.t("年度", "Year")) input type="number" name="year" value=(v.year) min="1990" max="2200"; }
                    label { (l.t("截至日期", "As of")) input type="date" name="as_of" value=(v.params.as_of); }
                    button type="submit" { (l.t("查询", "Show")) }
                }
                nav.crumbs {
                    @for (i, (code, name)) in v.crumbs.iter().enumerate() {
                        @if i > 0 { " › " }
                        @if code == v.region().as_str() { strong { (name) } }
                        @else { a href=(v.href(Some(code))) { (name) } }
                    }
                    " · " (v.params.from) " – " (v.params.to) ", " (l.t("截至", "as of")) " " (v.params.as_of)
                }
                (kpis)
                (charts)
                (subs.html(l, &v.xlsx_href("regions")))
                (months.html(l, &v.xlsx_href("months")))
                (funds.html(l, &v.xlsx_href("funds")))
                (overdue.html(l, &v.xlsx_href("overdue")))
            }
        },
    ))
}

pub async fn dashboard(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    q: Result<Query<DashQuery>, ApiError>,
) -> HttpResponse {
    let lang = Lang::parse(req_lang(&req).as_deref());
    let result = async {
        let q = q?;
        let mut conn = state.conn().await?;
        let v = resolve(&state, &mut conn, session.0, &q).await?;
        drop(conn);
        let body = dashboard_body(&state, &v).await?;
        let cookie = renewed_cookie(&state, &req, &v.user)?;
        Ok::<_, ApiError>((body, cookie))
    }
    .await;
    match result {
        Ok((body, cookie)) => {
            let mut res = page(StatusCode::OK, body);
            if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => error_page(lang, e),
    }
}

/// The `lang` parameter, read leniently so that even a bad query gets its error page in the
/// language asked for.
fn req_lang(req: &HttpRequest) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "lang")
        .map(|(_, v)| v.into_owned())
}

/// One table of the page as .xlsx, with the filters written on top.
pub async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    which: web::Path<String>,
    q: Result<Query<DashQuery>, ApiError>,
) -> HttpResponse {
    let lang = Lang::parse(req_lang(&req).as_deref());
    let result = async {
        let q = q?;
        let mut conn = state.conn().await?;
        let conn = &mut *conn;
        let v = resolve(&state, conn, session.0, &q).await?;
        let table = match which.as_str() {
            "regions" => sub_table(conn, &v).await?.0,
            "months" => month_table(conn, &v).await?.0,
            "funds" => fund_table(conn, &v).await?,
            "overdue" => overdue_table(&state, conn, &v).await?,
            _ => return Err(ApiError::NotFound),
        };
        let l = v.lang;
        let filters = vec![
            (
                l.t("地区", "Region").to_owned(),
                format!("{} ({})", v.region_name, v.region().as_str()),
            ),
            (l.t("年度", "Year").to_owned(), v.year.to_string()),
            (
                l.t("统计期间", "Period").to_owned(),
                format!("{} – {}", v.params.from, v.params.to),
            ),
            (
                l.t("截至日期", "As of").to_owned(),
                v.params.as_of.to_string(),
            ),
            (l.t("导出人", "Exported by").to_owned(), v.user.name.clone()),
        ];
        let bytes = table.xlsx(&filters).map_err(ApiError::internal)?;
        let name = format!(
            "danbao-{}-{}-{}-{}.xlsx",
            table.id,
            v.region().as_str(),
            v.year,
            v.params.as_of
        );
        Ok::<_, ApiError>((bytes, name))
    }
    .await;
    match result {
        Ok((bytes, name)) => HttpResponse::Ok()
            .content_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(bytes),
        Err(e) => error_page(lang, e),
    }
}
