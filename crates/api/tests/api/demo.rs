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

/// Every foreign key, index and trigger of the tables the demo loads, as the catalog says.
async fn schema_snapshot(url: &str) -> Vec<String> {
    values(
        url,
        "SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
                || ' validated=' || convalidated \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
         UNION ALL \
         SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
         UNION ALL \
         SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname || ' enabled=' || tgenabled::text \
         FROM pg_trigger WHERE NOT tgisinternal \
         ORDER BY 1",
    )
    .await
}

#[tokio::test]
async fn demo_bulk_load_puts_back_every_constraint_index_and_trigger() {
    let db = test_db().await;
    let before = schema_snapshot(&db.url).await;
    assert!(
        before
            .iter()
            .any(|s| s.contains("repayments_fit_loan enabled=O")),
        "{before:?}"
    );
    assert!(before
        .iter()
        .any(|s| s.contains("FOREIGN KEY (loan_id) REFERENCES loans(id)")));
    let pii = danbao_api::crypto::PiiKeys::from_master(PII_KEY).unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    demo::run(
        &db.url,
        &pii,
        &DemoOptions {
            loans: 120,
            chunk: 50,
            verify: false,
            ..opts(today)
        },
    )
    .await
    .unwrap();
    assert_eq!(schema_snapshot(&db.url).await, before);
}

#[tokio::test]
async fn demo_stops_on_an_insert_trigger_it_cannot_check_and_writes_nothing() {
    let db = test_db().await;
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // A rule the bulk load does not know: switching it off would let rows through unchecked.
    client
        .batch_execute(
            "CREATE FUNCTION no_huge_loans() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.principal > 1000000 THEN RAISE EXCEPTION 'too big'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER no_huge_loans BEFORE INSERT ON loans FOR EACH ROW EXECUTE FUNCTION no_huge_loans();",
        )
        .await
        .unwrap();
    let pii = danbao_api::crypto::PiiKeys::from_master(PII_KEY).unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let err = demo::run(
        &db.url,
        &pii,
        &DemoOptions {
            loans: 50,
            verify: false,
            ..opts(today)
        },
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("no_huge_loans"), "{err:#}");
    let counts = values(
        &db.url,
        "SELECT (SELECT count(*) FROM borrowers) || '/' || (SELECT count(*) FROM loans) || '/' || \
                (SELECT count(*) FROM instalments)",
    )
    .await;
    assert_eq!(counts, ["0/0/0"]);
    let trigger = values(
        &db.url,
        "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'repayments_fit_loan'",
    )
    .await;
    assert_eq!(trigger, ["O"]);
}
