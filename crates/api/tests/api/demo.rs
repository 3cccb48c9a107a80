//! `danbao demo`: a small demo province passes `verify`, covers every schedule method,
//! category and end state, is deterministic, and feeds the statistics.
use crate::helpers::{spawn_app, PII_KEY};
use danbao_api::demo::{self, DemoOptions};
use danbao_api::verify;
use danbao_persistence::testing::test_db;

fn opts(today: chrono::NaiveDate) -> DemoOptions {
    DemoOptions {
        seed: 7,
        loans: 500,
        from_year: 2006,
        today,
        progress: false,
        verify: true,
        chunk: demo::CHUNK,
    }
}

async fn values(url: &str, sql: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(sql, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test]
async fn demo_province_verifies_covers_everything_and_is_deterministic() {
    let app = spawn_app().await;
    let pii = danbao_api::crypto::PiiKeys::from_master(PII_KEY).unwrap();
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let summary = demo::run(&app.db.url, &pii, &opts(today)).await.unwrap();
    let report = verify::run(&app.db.url, today).await.unwrap();
    assert!(report.ok(), "{report:?}");

    let methods = values(
        &app.db.url,
        "SELECT DISTINCT schedule_method FROM loans WHERE disbursed_on IS NOT NULL ORDER BY 1",
    )
    .await;
    assert_eq!(
        methods,
        [
            "bullet",
            "equal_instalment",
            "equal_principal",
            "interest_monthly",
            "interest_quarterly"
        ]
    );
    let categories = values(
        &app.db.url,
        "SELECT DISTINCT category FROM loans ORDER BY 1",
    )
    .await;
    assert_eq!(categories.len(), 7, "{categories:?}");
    let statuses = values(&app.db.url, "SELECT DISTINCT status FROM loans ORDER BY 1").await;
    for s in ["active", "settled", "compensated", "written_off"] {
        assert!(statuses.iter().any(|x| x == s), "no {s} loan: {statuses:?}");
    }
    let extended = values(&app.db.url, "SELECT count(*)::text FROM loan_extensions").await;
    assert_ne!(extended[0], "0", "no extension");
    let reversed = values(
        &app.db.url,
        "SELECT count(*)::text FROM repayment_reversals",
    )
    .await;
    assert_ne!(reversed[0], "0", "no reversal");

    // Refuses a database that already holds loans.
    assert!(demo::run(&app.db.url, &pii, &opts(today)).await.is_err());

    // The same seed gives the same loans, whatever the chunks the generator hands to the
    // writer (here eight, written while the next is generated).
    let other = test_db().await;
    let again = demo::run(
        &other.url,
        &pii,
        &DemoOptions {
            chunk: 64,
            verify: false,
            ..opts(today)
        },
    )
    .await
    .unwrap();
    assert_eq!(again.verify_elapsed, None);
    assert_eq!(summary.principal_sum, again.principal_sum);
    assert!(verify::run(&other.url, today).await.unwrap().ok());
    let sum = |url: String| async move {
        values(&url, "SELECT sum(principal)::text || '/' || count(*) || '/' || (SELECT count(*) FROM repayments) FROM loans").await
    };
    assert_eq!(sum(app.db.url.clone()).await, sum(other.url.clone()).await);

    // The statistics see it: principal fell due in the province.
    let token = app.login("sup.jx", demo::DEMO_PASSWORD).await;
    let (status, body) = app
        .get_json("/v1/stats/summary?region=360000&from=2006-01-01", &token)
        .await;
    assert_eq!(status, 200, "{body}");
    let fell_due: f64 = body["total"]["fell_due"].as_str().map_or_else(
        || body["total"]["fell_due"].as_f64().unwrap_or(0.0),
        |s| s.parse().unwrap(),
    );
    assert!(fell_due > 0.0, "{body}");
}
