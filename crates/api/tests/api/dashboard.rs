//! The supervisor's dashboard: session cookie, redirects, scope of every page and download,
//! the figures against the API's, the .xlsx content, and the English switch.
use crate::helpers::{spawn_app, TestApp, PII_KEY};
use danbao_api::demo::{self, DemoOptions, DEMO_PASSWORD};
use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use serde_json::json;

const TABLES: [&str; 4] = ["regions", "months", "funds", "overdue"];

/// A client that shows redirects instead of following them, and keeps no cookies itself.
fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive()
}

async fn with_demo() -> TestApp {
    let app = spawn_app().await;
    let pii = danbao_api::crypto::PiiKeys::from_master(PII_KEY).unwrap();
    let t = today();
    demo::run(
        &app.db.url,
        &pii,
        &DemoOptions {
            seed: 11,
            loans: 400,
            from_year: chrono::Datelike::year(&t) - 3,
            today: t,
            progress: false,
            // The demo's own test verifies its books; these tests look at pages.
            verify: false,
            chunk: demo::CHUNK,
        },
    )
    .await
    .unwrap();
    app
}

async fn post_login(app: &TestApp, username: &str, password: &str, lang: &str) -> Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("password", password)
        .append_pair("lang", lang)
        .finish();
    client()
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn set_cookie(r: &Response) -> String {
    r.headers()
        .get("set-cookie")
        .expect("set-cookie")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Logs in through the form and returns the `Cookie` header value for later requests.
async fn session(app: &TestApp, username: &str, password: &str) -> String {
    let r = post_login(app, username, password, "zh").await;
    assert_eq!(r.status(), 303);
    set_cookie(&r).split(';').next().unwrap().to_owned()
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Response {
    let mut req = client().get(app.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

fn location(r: &Response) -> &str {
    r.headers().get("location").unwrap().to_str().unwrap()
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_login_and_the_cookie_is_strict() {
    let app = spawn_app().await;
    app.admin_create("/v1/regions", json!({"code":"360000","name":"江西省"}))
        .await;
    app.admin_create("/v1/regions", json!({"code":"360100","name":"南昌市"}))
        .await;
    app.user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;

    // No cookie, a forged one, and a valid API token in the cookie signed by another key.
    let forged = danbao_api::auth::JwtKeys::hs256(&[9u8; 32])
        .unwrap()
        .issue(&danbao_api::auth::Principal {
            kind: danbao_api::auth::PrincipalKind::User,
            id: uuid::Uuid::now_v7(),
            name: "x".into(),
            role: danbao_api::auth::Role::Admin,
            scope: danbao_api::auth::Scope::All,
        })
        .unwrap();
    for cookie in [
        None,
        Some("danbao_session=garbage".to_owned()),
        Some(format!("danbao_session={forged}")),
    ] {
        let mut paths = vec![
            "/dashboard".to_owned(),
            "/dashboard?region=360100".to_owned(),
        ];
        paths.extend(TABLES.iter().map(|t| format!("/dashboard/xlsx/{t}")));
        for path in paths {
            let r = get(&app, &path, cookie.as_deref()).await;
            assert_eq!(r.status(), 303, "{path} {cookie:?}");
            assert_eq!(location(&r), "/", "{path}");
        }
    }
    // The login page itself is served without a session.
    let r = get(&app, "/", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("name=\"password\""));

    // Wrong password: the form again, 401; a clerk may not use the dashboard.
    let r = post_login(&app, "sup.nc", "wrong password 1", "zh").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("用户名或密码错误"));

    // A good login: HttpOnly, SameSite=Strict, a lifetime, and the dashboard opens with it.
    let r = post_login(&app, "sup.nc", "Test password 1", "zh").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/dashboard?lang=zh");
    let c = set_cookie(&r);
    assert!(c.starts_with("danbao_session=ey"), "{c}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=900"] {
        assert!(c.split("; ").any(|p| p == flag), "{flag} missing in {c}");
    }
    let cookie = c.split(';').next().unwrap().to_owned();
    let r = get(&app, "/dashboard", Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert!(
        set_cookie(&r).contains("HttpOnly"),
        "the session is renewed"
    );
    assert!(r.text().await.unwrap().contains("南昌市"));
    // With a session, the login page sends on to the dashboard.
    let r = get(&app, "/", Some(&cookie)).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/dashboard"));

    // Logout clears the cookie and goes back to the login page.
    let r = client()
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/?"));
    let cleared = set_cookie(&r);
    assert!(cleared.starts_with("danbao_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"));

    // A deactivated supervisor's session stops working.
    let (_, users) = app.get_json("/v1/users?limit=100", &app.admin_token).await;
    let id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "sup.nc")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .http
        .post(app.url(&format!("/v1/users/{id}/deactivation")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = get(&app, "/dashboard", Some(&cookie)).await;
    assert_eq!(r.status(), 303);

    // JSON API behaviour is unchanged: no cookie login there.
    let r = app
        .http
        .get(app.url("/v1/stats/summary"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn clerks_cannot_use_the_dashboard_and_failed_form_logins_count() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    app.user_token(
        "clerk.x",
        "clerk",
        json!({ "centre_id": p.centre_nanchang }),
    )
    .await;
    let r = post_login(&app, "clerk.x", "Test password 1", "en").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("for supervisors"));
    // The same limit as the API (5 per account in the test app): the sixth try is 429.
    for _ in 0..5 {
        let r = post_login(&app, "clerk.x", "wrong password 1", "zh").await;
        assert_eq!(r.status(), 401);
    }
    let r = post_login(&app, "clerk.x", "Test password 1", "zh").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
}

fn xlsx_rows(bytes: &[u8]) -> Vec<Vec<calamine::Data>> {
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let name = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&name).unwrap();
    range.rows().map(|r| r.to_vec()).collect()
}

fn text(d: &calamine::Data) -> String {
    d.to_string()
}

#[tokio::test]
async fn a_city_supervisor_sees_its_city_only_with_the_apis_figures() {
    let app = with_demo().await;
    let cookie = session(&app, "sup.nanchang", DEMO_PASSWORD).await;
    let token = app.login("sup.nanchang", DEMO_PASSWORD).await;

    // The page's repayment rate is the API's.
    let (status, api) = app.get_json("/v1/stats/repayment-rate", &token).await;
    assert_eq!(status, 200);
    let rate = api["total"]["collection_rate"].as_str().unwrap().to_owned();
    let r = get(&app, "/dashboard", Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.text().await.unwrap();
    let kpi = &html[html.find("id=\"collection-rate\"").expect("rate card")..];
    let shown = &kpi[kpi.find("class=\"v\">").unwrap() + 10..];
    assert_eq!(&shown[..shown.find('<').unwrap()], format!("{rate}%"));
    assert!(
        html.contains("南昌县"),
        "the counties and districts are listed"
    );
    assert!(!html.contains("景德镇市"), "no other city");
    assert!(!html.contains("<script"), "no script at all");
    assert_eq!(html.matches("下载 Excel").count(), 4);

    // Another city, through every page and download: 404.
    let mut paths = vec!["/dashboard?region=360200".to_owned()];
    paths.extend(
        TABLES
            .iter()
            .map(|t| format!("/dashboard/xlsx/{t}?region=360200")),
    );
    paths.push("/dashboard?region=360202".into());
    paths.push("/dashboard/xlsx/overdue?region=360202".into());
    for path in &paths {
        let r = get(&app, path, Some(&cookie)).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(!r.text().await.unwrap().contains("景德镇"), "{path}");
    }
    // An unknown table, a malformed region, a bad year.
    assert_eq!(
        get(&app, "/dashboard/xlsx/users", Some(&cookie))
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&app, "/dashboard?region=abc", Some(&cookie))
            .await
            .status(),
        422
    );
    assert_eq!(
        get(&app, "/dashboard?year=1800", Some(&cookie))
            .await
            .status(),
        422
    );
    // Asking for the province gives the supervisor's own city, as the API does.
    let html = get(&app, "/dashboard?region=360000", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("南昌市") && !html.contains("景德镇市"));

    // Drill down one level: a county shows its banks, with the API's figures.
    let year = chrono::Datelike::year(&today());
    assert!(html.contains(&format!("/dashboard?region=360121&amp;year={year}")));
    let r = get(
        &app,
        &format!("/dashboard?region=360121&year={year}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("分银行"), "a district lists its banks");
    let (_, by_bank) = app
        .get_json("/v1/stats/summary?region=360121&group_by=bank", &token)
        .await;
    for g in by_bank["groups"].as_array().unwrap() {
        assert!(html.contains(g["label"].as_str().unwrap()));
    }

    // The sub-region table as .xlsx: filters on top, Chinese headers, numbers as numbers.
    let r = get(&app, "/dashboard/xlsx/regions", Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("danbao-regions-360100"));
    let bytes = r.bytes().await.unwrap();
    let rows = xlsx_rows(&bytes);
    assert_eq!(text(&rows[0][0]), "分地区");
    assert_eq!(text(&rows[1][0]), "地区");
    assert_eq!(text(&rows[1][1]), "南昌市 (360100)");
    assert_eq!(text(&rows[2][0]), "年度");
    assert_eq!(text(&rows[2][1]), year.to_string());
    assert_eq!(text(&rows[4][0]), "截至日期");
    assert_eq!(text(&rows[4][1]), today().to_string());
    let head = rows
        .iter()
        .position(|r| text(&r[0]) == "地区" && r.len() > 5 && text(&r[2]) == "发放金额")
        .expect("header row");
    let cols: Vec<String> = rows[head].iter().map(text).collect();
    let rate_col = cols.iter().position(|c| c == "到期还贷率(%)").unwrap();
    let (_, by_region) = app
        .get_json("/v1/stats/summary?group_by=region", &token)
        .await;
    let groups = by_region["groups"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        head + 1 + groups.len() + 1,
        "groups and the total"
    );
    for (row, g) in rows[head + 1..].iter().zip(groups) {
        assert!(text(&row[0]).starts_with(g["label"].as_str().unwrap()));
        let amount: f64 = g["issued_amount"].as_str().unwrap().parse().unwrap();
        assert_eq!(row[2], calamine::Data::Float(amount), "a number, not text");
        match g["collection_rate"].as_str() {
            Some(r) => assert_eq!(row[rate_col], calamine::Data::Float(r.parse().unwrap())),
            None => assert_eq!(row[rate_col], calamine::Data::Empty),
        }
    }
    let total = rows.last().unwrap();
    let api_rate: f64 = rate.parse().unwrap();
    assert_eq!(total[rate_col], calamine::Data::Float(api_rate));
    // Two decimals: the money and rate cells carry a 0.00 number format.
    let styles = xlsx_part(&bytes, "xl/styles.xml");
    assert!(styles.contains("formatCode=\"#,##0.00\""), "{styles}");
    assert!(styles.contains("formatCode=\"0.00\""), "{styles}");

    // Every other download opens, and the overdue loans are masked.
    for t in ["months", "funds", "overdue"] {
        let r = get(&app, &format!("/dashboard/xlsx/{t}"), Some(&cookie)).await;
        assert_eq!(r.status(), 200, "{t}");
        let rows = xlsx_rows(&r.bytes().await.unwrap());
        assert_eq!(text(&rows[1][1]), "南昌市 (360100)", "{t}");
        if t == "overdue" {
            let head = rows.iter().position(|r| text(&r[0]) == "贷款编号").unwrap();
            assert!(rows.len() > head + 1, "the demo has overdue loans");
            for row in &rows[head + 1..] {
                let name = text(&row[1]);
                assert!(name.ends_with('*') || name.chars().count() > 2, "{name}");
                let id = text(&row[2]);
                assert!(id.contains('*'), "national id masked: {id}");
            }
        }
    }

    // English.
    let html = get(&app, "/dashboard?lang=en", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Collection rate") && html.contains("Download Excel"));
    assert!(!html.contains("到期还贷率"));
    let rows = xlsx_rows(
        &get(&app, "/dashboard/xlsx/months?lang=en", Some(&cookie))
            .await
            .bytes()
            .await
            .unwrap(),
    );
    assert_eq!(text(&rows[0][0]), "By month");
    let login = get(&app, "/?lang=en", None).await.text().await.unwrap();
    assert!(login.contains("Log in") && login.contains("User name"));
}

/// One part of the .xlsx (a zip) as text.
fn xlsx_part(bytes: &[u8], name: &str) -> String {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut s = String::new();
    zip.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}
