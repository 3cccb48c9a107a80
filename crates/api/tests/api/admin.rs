use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn region_tree_follows_gb2260_codes() {
    let app = spawn_app().await;
    // A city before its province is refused, naming the field.
    let r = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(&app.admin_token),
            Some(json!({"code": "360100", "name": "南昌市"})),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "code");
    app.seed_province().await;
    let (status, page) = app
        .get_json("/v1/regions?under=360100", &app.admin_token)
        .await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["360100", "360102"]);
    let (_, district) = app.get_json("/v1/regions/360102", &app.admin_token).await;
    assert_eq!(district["parent_code"], "360100");
    assert_eq!(district["level"], 3);
    // The same code twice is a conflict.
    let r = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(&app.admin_token),
            Some(json!({"code": "360000", "name": "x"})),
        )
        .await;
    assert_problem(r, 409, "already_exists").await;
    let r = app
        .call(
            Method::POST,
            "/v1/regions",
            Some(&app.admin_token),
            Some(json!({"code": "36010", "name": "x"})),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
}

#[tokio::test]
async fn pages_follow_cursors_without_gaps_or_repeats() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.admin_create(
            "/v1/banks",
            json!({"code": format!("BANK{i}"), "name": format!("Bank {i}")}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/banks?limit=3&cursor={c}"),
            None => "/v1/banks?limit=3".to_owned(),
        };
        let (status, page) = app.get_json(&path, &app.admin_token).await;
        assert_eq!(status, 200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|b| b["code"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("BANK{i}")).collect();
    assert_eq!(seen, expected);
    let r = app
        .call(
            Method::GET,
            "/v1/banks?limit=501",
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_problem(r, 400, "invalid_query").await;
    let r = app
        .call(
            Method::GET,
            "/v1/banks?limit=abc",
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_problem(r, 400, "invalid_query").await;
}

#[tokio::test]
async fn users_need_the_scope_their_role_implies() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let base = |role: &str, extra: Value| {
        let mut b = json!({"username": "u.one", "display_name": "U", "password": "Good password 1", "role": role});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for (role, extra, field) in [
        ("clerk", json!({}), "centre_id"),
        (
            "clerk",
            json!({"centre_id": p.centre_nanchang, "bank_id": p.bank_a}),
            "centre_id",
        ),
        ("bank", json!({"region_code": "360100"}), "bank_id"),
        ("supervisor", json!({}), "region_code"),
        ("admin", json!({"bank_id": p.bank_a}), "role"),
    ] {
        let r = app
            .call(
                Method::POST,
                "/v1/users",
                Some(&app.admin_token),
                Some(base(role, extra)),
            )
            .await;
        let v = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(v["errors"][0]["field"], field, "{role}: {v}");
    }
    // A centre that does not exist.
    let r = app
        .call(
            Method::POST,
            "/v1/users",
            Some(&app.admin_token),
            Some(base("clerk", json!({"centre_id": uuid::Uuid::now_v7()}))),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "centre_id");
    // A weak password.
    let mut weak = base("clerk", json!({"centre_id": p.centre_nanchang}));
    weak["password"] = json!("password");
    let r = app
        .call(
            Method::POST,
            "/v1/users",
            Some(&app.admin_token),
            Some(weak),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
    // Without a password one is generated, returned once, and works.
    let mut gen = base("clerk", json!({"centre_id": p.centre_nanchang}));
    gen.as_object_mut().unwrap().remove("password");
    let created = app.admin_create("/v1/users", gen).await;
    let pw = created["initial_password"].as_str().unwrap();
    app.login("u.one", pw).await;
    let (_, fetched) = app
        .get_json(
            &format!("/v1/users/{}", created["id"].as_str().unwrap()),
            &app.admin_token,
        )
        .await;
    assert!(fetched.get("initial_password").is_none());
    assert!(fetched.get("password_hash").is_none());
    // Usernames are unique.
    let r = app
        .call(
            Method::POST,
            "/v1/users",
            Some(&app.admin_token),
            Some(base("clerk", json!({"centre_id": p.centre_jdz}))),
        )
        .await;
    assert_problem(r, 409, "already_exists").await;
}

#[tokio::test]
async fn policy_presets_load_once_and_policies_validate() {
    let app = spawn_app().await;
    let r = app
        .call(
            Method::POST,
            "/v1/policies/presets",
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["created"].as_array().unwrap().len(), 4);
    let r = app
        .call(
            Method::POST,
            "/v1/policies/presets",
            Some(&app.admin_token),
            None,
        )
        .await;
    let again: Value = r.json().await.unwrap();
    assert!(again["created"].as_array().unwrap().is_empty());
    assert_eq!(again["existing"], first["created"]);

    let (_, list) = app.get_json("/v1/policies", &app.admin_token).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    let p2008 = items
        .iter()
        .find(|p| {
            p["policy"]["effective_from"]
                .as_str()
                .unwrap()
                .starts_with("2008")
        })
        .unwrap();
    assert_eq!(p2008["policy"]["individual_limit"], "50000.00");

    // A provincial policy built from a preset, with an invalid risk split.
    app.seed_province().await;
    let mut body = json!({ "region_code": "360000", "policy": p2008["policy"].clone() });
    body["policy"]["code"] = json!("JX-2009");
    body["policy"]["effective_from"] = json!("2009-01-01");
    body["policy"]["fund_share"] = json!("0.90");
    let r = app
        .call(
            Method::POST,
            "/v1/policies",
            Some(&app.admin_token),
            Some(body.clone()),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert!(v["detail"].as_str().unwrap().contains("share"), "{v}");
    body["policy"]["fund_share"] = p2008["policy"]["fund_share"].clone();
    let created = app.admin_create("/v1/policies", body.clone()).await;
    assert_eq!(created["region_code"], "360000");
    assert_eq!(created["policy"]["code"], "JX-2009");
    // Codes are unique: the same policy twice is a conflict, not a second row.
    let r = app
        .call(
            Method::POST,
            "/v1/policies",
            Some(&app.admin_token),
            Some(body),
        )
        .await;
    assert_problem(r, 409, "already_exists").await;
    let (status, fetched) = app
        .get_json(
            &format!("/v1/policies/{}", created["id"].as_str().unwrap()),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        fetched["policy"]["waiver_limit"],
        created["policy"]["waiver_limit"]
    );
}

#[tokio::test]
async fn every_write_is_audited_with_actor_and_request_id() {
    let app = spawn_app().await;
    let r = app
        .http
        .post(app.url("/v1/regions"))
        .bearer_auth(&app.admin_token)
        .header("x-request-id", "audit-check-1")
        .json(&json!({"code": "360000", "name": "江西省"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-request-id"], "audit-check-1");
    app.admin_create("/v1/banks", json!({"code": "JXRCU", "name": "江西农信"}))
        .await;
    let (status, events) = app.get_json("/v1/audit-events", &app.admin_token).await;
    assert_eq!(status, 200);
    let items = events["items"].as_array().unwrap();
    // Newest first: the bank, the region, then the first admin created at start-up.
    assert_eq!(items[0]["action"], "bank.created");
    assert_eq!(items[1]["action"], "region.created");
    assert_eq!(items[1]["request_id"], "audit-check-1");
    assert_eq!(items[1]["actor_name"], "admin");
    assert_eq!(items[1]["actor_role"], "admin");
    assert_eq!(items[1]["entity_id"], "360000");
    assert_eq!(items[2]["actor_kind"], "system");
    // The log cannot be rewritten, even by SQL.
    use danbao_persistence::diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
    let err = danbao_persistence::diesel::sql_query("DELETE FROM audit_events")
        .execute(&mut conn)
        .await;
    assert!(err.is_err());
    let err = danbao_persistence::diesel::sql_query("UPDATE audit_events SET actor_name = 'x'")
        .execute(&mut conn)
        .await;
    assert!(err.is_err());
    let err = danbao_persistence::diesel::sql_query("DELETE FROM banks")
        .execute(&mut conn)
        .await;
    assert!(err.is_err());
}
