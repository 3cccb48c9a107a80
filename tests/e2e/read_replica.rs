//! `DATABASE_READ_URL`: with a streaming replica (both local clusters, the replica made by
//! `pg_basebackup -R`), statistics and lists are read from the replica while writes, and the
//! reads that must see them, go to the primary. Pausing the replica's replay shows which is
//! which: a disbursement made meanwhile is on the loan at once, but in the statistics and the
//! loan list only after replay resumes.

use crate::harness::{danbao, traversable_tempdir, Server, ADMIN_PASSWORD, DATA_KEY, JWT_SECRET};
use danbao_persistence::cluster::{ClusterOptions, LocalCluster};
use danbao_persistence::diesel::sql_query;
use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn created((status, body): (u16, Value)) -> Value {
    assert!(status == 201 || status == 200, "{status}: {body}");
    body
}

async fn on_replica(url: &str, sql: &str) {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .expect("connect to the replica");
    sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_lists_are_read_from_the_replica() {
    let tmp = traversable_tempdir("danbao-replica-");
    let dirs = (tmp.path().join("primary"), tmp.path().join("replica"));
    let (primary, replica) = tokio::task::spawn_blocking(move || {
        let primary = LocalCluster::start(ClusterOptions {
            data_dir: dirs.0,
            ephemeral: true,
        })
        .expect("start the primary");
        primary.base_backup(&dirs.1).expect("pg_basebackup");
        let replica = LocalCluster::start(ClusterOptions {
            data_dir: dirs.1,
            ephemeral: true,
        })
        .expect("start the replica");
        (primary, replica)
    })
    .await
    .unwrap();
    // Created on the primary before `serve` migrates it: the replica follows both.
    primary.ensure_database("danbao").await.expect("database");
    let (primary_url, replica_url) = (primary.url("danbao"), replica.url("danbao"));

    let mut cmd = danbao();
    cmd.env("DATABASE_URL", &primary_url)
        .env("DATABASE_READ_URL", &replica_url)
        .env("DANBAO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("DANBAO_JWT_SECRET", JWT_SECRET)
        .env("DANBAO_DATA_KEY", DATA_KEY)
        .env("DANBAO_DATA_DIR", tmp.path().join("unused"));
    // Ready only once the replica has replayed the migrations too.
    let (s, _) = Server::start(cmd).await;
    let admin = s.token("admin", ADMIN_PASSWORD).await;

    for (code, name) in [("360000", "江西省"), ("360100", "南昌市")] {
        created(
            s.post_json(
                &admin,
                "/v1/regions",
                &json!({ "code": code, "name": name }),
            )
            .await,
        );
    }
    let centre = created(
        s.post_json(
            &admin,
            "/v1/centres",
            &json!({ "name": "南昌市担保中心", "region_code": "360100" }),
        )
        .await,
    );
    let bank = created(
        s.post_json(
            &admin,
            "/v1/banks",
            &json!({ "code": "JXRCU", "name": "江西农信" }),
        )
        .await,
    );
    created(
        s.post_json(&admin, "/v1/policies/presets", &json!({}))
            .await,
    );
    for (u, role, scope) in [
        ("wang", "clerk", json!({ "centre_id": centre["id"] })),
        ("lihua", "clerk", json!({ "centre_id": centre["id"] })),
        ("teller", "bank", json!({ "bank_id": bank["id"] })),
        ("sup", "supervisor", json!({ "region_code": "360000" })),
    ] {
        let mut body = json!({ "username": u, "display_name": u, "role": role, "password": "Replica password 1" });
        body.as_object_mut()
            .unwrap()
            .extend(scope.as_object().unwrap().clone());
        created(s.post_json(&admin, "/v1/users", &body).await);
    }
    let wang = s.token("wang", "Replica password 1").await;
    let lihua = s.token("lihua", "Replica password 1").await;
    let teller = s.token("teller", "Replica password 1").await;
    let sup = s.token("sup", "Replica password 1").await;
    let fund = created(
        s.post_json(&wang, "/v1/funds", &json!({ "name": "南昌基金" }))
            .await,
    );
    created(
        s.post_json(
            &wang,
            &format!("/v1/funds/{}/contributions", fund["id"].as_str().unwrap()),
            &json!({ "value_date": "2020-01-02", "amount": "1000000.00", "source": "city_finance" }),
        )
        .await,
    );
    let borrower = created(
        s.post_json(
            &wang,
            "/v1/borrowers",
            &json!({ "kind": "individual", "category": "laid_off", "name": "张三",
                     "national_id": "110101198001010010", "employment_certificate_no": "JX000001" }),
        )
        .await,
    );
    let loan = created(
        s.post_json(
            &wang,
            "/v1/loans",
            &json!({ "borrower_id": borrower["id"], "bank_id": bank["id"], "fund_id": fund["id"],
                     "principal": "12000.00", "term_months": 12, "annual_rate": "0.0435",
                     "schedule_method": "equal_principal", "purpose": "早餐店", "micro_profit": true,
                     "jobs_declared": 2, "counter_guarantee": { "kind": "mortgage", "description": "房产抵押" } }),
        )
        .await,
    );
    let loan_id = loan["id"].as_str().unwrap().to_owned();
    created(
        s.post_json(&lihua, &format!("/v1/loans/{loan_id}/approval"), &json!({}))
            .await,
    );

    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let year = today.format("%Y").to_string();
    let summary = format!("/v1/stats/summary?region=360000&from={year}-01-01&to={year}-12-31");
    let issued = |body: &Value| {
        body["total"]["issued_count"]
            .as_i64()
            .expect("issued_count")
    };
    let listed_status = |body: &Value| {
        body["items"][0]["status"]
            .as_str()
            .expect("a listed loan")
            .to_owned()
    };

    // Wait until the replica has the approval, then stop its replay.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, list) = s.get_json(&sup, "/v1/loans").await;
        assert_eq!(status, 200, "{list}");
        if list["items"].as_array().is_some_and(|a| !a.is_empty())
            && listed_status(&list) == "approved"
        {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    on_replica(&replica_url, "SELECT pg_wal_replay_pause()").await;
    let (status, before) = s.get_json(&sup, &summary).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(issued(&before), 0, "{before}");

    // A write: the replica is read-only, so it can only have gone to the primary.
    created(
        s.post_json(
            &teller,
            &format!("/v1/loans/{loan_id}/disbursement"),
            &json!({ "value_date": today, "bank_account_no": "ACC-1" }),
        )
        .await,
    );
    // A single loan is read from the primary: the disbursement is there at once.
    let (status, fresh) = s.get_json(&sup, &format!("/v1/loans/{loan_id}")).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["status"], "active", "{fresh}");
    // Statistics and lists come from the paused replica: not yet.
    let (_, stale) = s.get_json(&sup, &summary).await;
    assert_eq!(
        issued(&stale),
        0,
        "statistics not from the replica: {stale}"
    );
    let (_, list) = s.get_json(&sup, "/v1/loans").await;
    assert_eq!(
        listed_status(&list),
        "approved",
        "list not from the replica: {list}"
    );

    on_replica(&replica_url, "SELECT pg_wal_replay_resume()").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, after) = s.get_json(&sup, &summary).await;
        assert_eq!(status, 200, "{after}");
        if issued(&after) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never showed the disbursement: {after}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, list) = s.get_json(&sup, "/v1/loans").await;
    assert_eq!(listed_status(&list), "active", "{list}");
    let res = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    drop(s);
    replica.stop();
    primary.stop();
}
