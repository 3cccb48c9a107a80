use crate::helpers::*;
use chrono::{Days, NaiveDate};
use reqwest::Method;
use serde_json::{json, Value};

/// Today in the business time zone the test app runs with.
fn today() -> NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive()
}

fn days_ago(n: u64) -> NaiveDate {
    today() - Days::new(n)
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn certify(app: &TestApp, token: &str, name: &str, region: &str, on: NaiveDate) -> Value {
    let r = app
        .call(
            Method::POST,
            "/v1/credit-communities",
            Some(token),
            Some(json!({ "name": name, "region_code": region, "certified_on": on })),
        )
        .await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn revoke(app: &TestApp, token: &str, id: &str, on: NaiveDate) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/v1/credit-communities/{id}/revocation"),
        Some(token),
        Some(json!({ "revoked_on": on, "reason": "信用评估未通过" })),
    )
    .await
}

/// Ids of the communities certified on `on`, sorted.
async fn active_ids(app: &TestApp, token: &str, on: NaiveDate) -> Vec<String> {
    let (status, page) = app
        .get_json(&format!("/v1/credit-communities?active_on={on}"), token)
        .await;
    assert_eq!(status, 200, "{page}");
    let mut v = ids(&page);
    v.sort();
    v
}

#[tokio::test]
async fn communities_are_certified_within_the_centres_region_and_not_in_the_future() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk = app
        .user_token(
            "clerk.nc",
            "clerk",
            json!({ "centre_id": p.centre_nanchang }),
        )
        .await;

    let c = certify(&app, &clerk, " 百花洲社区 ", "360102", days_ago(30)).await;
    assert_eq!(c["name"], "百花洲社区");
    assert_eq!(c["centre_id"], p.centre_nanchang.as_str());
    assert_eq!(c["region_code"], "360102");
    assert_eq!(c["certified_on"], days_ago(30).to_string());
    assert_eq!(c["revoked_on"], Value::Null);
    assert_eq!(c["active_on_today"], true);
    // Certified today counts as certified today.
    let t = certify(&app, &clerk, "新社区", "360100", today()).await;
    assert_eq!(t["active_on_today"], true);

    let post = |body: Value| {
        app.call(
            Method::POST,
            "/v1/credit-communities",
            Some(&clerk),
            Some(body),
        )
    };
    // Tomorrow is not a certification date yet.
    let tomorrow = today() + Days::new(1);
    let r = post(json!({ "name": "x", "region_code": "360102", "certified_on": tomorrow })).await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "certified_on");
    // Another city's region, and a region that does not exist, are refused naming the field.
    for region in ["360200", "360103", "360000"] {
        let r = post(json!({ "name": "x", "region_code": region, "certified_on": today() })).await;
        let v = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(v["errors"][0]["field"], "region_code", "{region}: {v}");
    }
    let r = post(json!({ "name": "", "region_code": "360102", "certified_on": today() })).await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "name");

    // Only clerks certify.
    let r = app
        .call(
            Method::POST,
            "/v1/credit-communities",
            Some(&app.admin_token),
            Some(json!({ "name": "x", "region_code": "360102", "certified_on": today() })),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;

    // Every certification is in the audit log under the community's region.
    let (_, events) = app
        .get_json(
            "/v1/audit-events?entity_type=credit_community",
            &app.admin_token,
        )
        .await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{events}");
    let certified = items
        .iter()
        .find(|e| e["entity_id"] == c["id"])
        .expect("audit event of the certification");
    assert_eq!(certified["action"], "credit_community.certified");
    assert_eq!(certified["region_code"], "360102");
}

#[tokio::test]
async fn a_revocation_happens_once_within_its_dates_and_ends_the_waiver_period() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk = app
        .user_token(
            "clerk.nc",
            "clerk",
            json!({ "centre_id": p.centre_nanchang }),
        )
        .await;
    let a = certify(&app, &clerk, "A社区", "360102", days_ago(30)).await;
    let b = certify(&app, &clerk, "B社区", "360100", days_ago(10)).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    // Before the certification, or in the future: refused, naming revoked_on, nothing changed.
    for on in [days_ago(31), today() + Days::new(1)] {
        let v = assert_problem(
            revoke(&app, &clerk, a_id, on).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(v["errors"][0]["field"], "revoked_on", "{on}: {v}");
    }
    let r = app
        .call(
            Method::POST,
            &format!("/v1/credit-communities/{a_id}/revocation"),
            Some(&clerk),
            Some(json!({ "revoked_on": today(), "reason": " " })),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "reason");
    let (_, still) = app
        .get_json(&format!("/v1/credit-communities/{a_id}"), &clerk)
        .await;
    assert_eq!(still["revoked_on"], Value::Null);
    assert_eq!(still["active_on_today"], true);

    // Revoked today: from today on no waiver, so not active today.
    let r = revoke(&app, &clerk, a_id, today()).await;
    assert_eq!(r.status(), 200);
    let revoked: Value = r.json().await.unwrap();
    assert_eq!(revoked["revoked_on"], today().to_string());
    assert_eq!(revoked["revocation_reason"], "信用评估未通过");
    assert_eq!(revoked["active_on_today"], false);
    let (_, read) = app
        .get_json(&format!("/v1/credit-communities/{a_id}"), &clerk)
        .await;
    assert_eq!(read["active_on_today"], false);
    assert_eq!(read["certified_on"], days_ago(30).to_string());

    // Once only, whatever the date.
    let v = assert_problem(
        revoke(&app, &clerk, a_id, today()).await,
        409,
        "already_revoked",
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains(&today().to_string()));
    assert_problem(
        revoke(&app, &clerk, a_id, days_ago(1)).await,
        409,
        "already_revoked",
    )
    .await;
    let (_, read) = app
        .get_json(&format!("/v1/credit-communities/{a_id}"), &clerk)
        .await;
    assert_eq!(read["revoked_on"], today().to_string());

    // `?active_on=`: certified on or before the day and not revoked by then.
    let active = |on: NaiveDate| active_ids(&app, &clerk, on);
    let mut both = vec![a_id.to_owned(), b_id.to_owned()];
    both.sort();
    assert_eq!(active(days_ago(40)).await, Vec::<String>::new());
    assert_eq!(active(days_ago(30)).await, vec![a_id.to_owned()]);
    assert_eq!(active(days_ago(11)).await, vec![a_id.to_owned()]);
    assert_eq!(active(days_ago(10)).await, both);
    assert_eq!(active(days_ago(1)).await, both);
    assert_eq!(active(today()).await, vec![b_id.to_owned()]);
    let (_, all) = app.get_json("/v1/credit-communities", &clerk).await;
    assert_eq!(ids(&all).len(), 2);
    let r = app
        .call(
            Method::GET,
            "/v1/credit-communities?active_on=2026-02-30",
            Some(&clerk),
            None,
        )
        .await;
    assert_problem(r, 400, "invalid_query").await;

    // The revocation is audited under the community's region.
    let (_, events) = app
        .get_json(
            &format!("/v1/audit-events?entity_type=credit_community&entity_id={a_id}"),
            &app.admin_token,
        )
        .await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["credit_community.revoked", "credit_community.certified"]
    );
    assert_eq!(events["items"][0]["region_code"], "360102");
    assert_eq!(
        events["items"][0]["detail"]["revoked_on"],
        today().to_string()
    );
}

#[tokio::test]
async fn communities_are_visible_by_role_and_scope() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk_nc = app
        .user_token(
            "clerk.nc",
            "clerk",
            json!({ "centre_id": p.centre_nanchang }),
        )
        .await;
    let clerk_jdz = app
        .user_token("clerk.jdz", "clerk", json!({ "centre_id": p.centre_jdz }))
        .await;
    let sup_nc = app
        .user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;
    let sup_jdz = app
        .user_token("sup.jdz", "supervisor", json!({ "region_code": "360200" }))
        .await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": p.bank_a }))
        .await;
    let nc = certify(&app, &clerk_nc, "百花洲社区", "360102", days_ago(5)).await;
    let jdz = certify(&app, &clerk_jdz, "昌江社区", "360200", days_ago(5)).await;
    let nc_path = format!("/v1/credit-communities/{}", nc["id"].as_str().unwrap());

    // Each clerk and supervisor lists only its own; the admin lists all.
    let (_, l) = app.get_json("/v1/credit-communities", &clerk_nc).await;
    assert_eq!(ids(&l), vec![nc["id"].as_str().unwrap()]);
    let (_, l) = app.get_json("/v1/credit-communities", &clerk_jdz).await;
    assert_eq!(ids(&l), vec![jdz["id"].as_str().unwrap()]);
    let (_, l) = app.get_json("/v1/credit-communities", &sup_nc).await;
    assert_eq!(ids(&l), vec![nc["id"].as_str().unwrap()]);
    let (_, l) = app.get_json("/v1/credit-communities", &sup_jdz).await;
    assert_eq!(ids(&l), vec![jdz["id"].as_str().unwrap()]);
    let (_, l) = app
        .get_json("/v1/credit-communities", &app.admin_token)
        .await;
    assert_eq!(ids(&l).len(), 2);

    // Outside the scope is 404, not 403, for reading and for revoking.
    let r = app
        .call(Method::GET, &nc_path, Some(&clerk_jdz), None)
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app.call(Method::GET, &nc_path, Some(&sup_jdz), None).await;
    assert_problem(r, 404, "not_found").await;
    let r = revoke(&app, &clerk_jdz, nc["id"].as_str().unwrap(), today()).await;
    assert_problem(r, 404, "not_found").await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/credit-communities/{}", uuid::Uuid::now_v7()),
            Some(&clerk_nc),
            None,
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    for token in [&clerk_nc, &sup_nc, &app.admin_token] {
        let (status, _) = app.get_json(&nc_path, token).await;
        assert_eq!(status, 200);
    }

    // Banks have no business here; supervisors and admins do not revoke.
    let r = app
        .call(Method::GET, "/v1/credit-communities", Some(&bank), None)
        .await;
    assert_problem(r, 403, "forbidden").await;
    let r = app.call(Method::GET, &nc_path, Some(&bank), None).await;
    assert_problem(r, 403, "forbidden").await;
    for token in [&sup_nc, &app.admin_token, &bank] {
        let r = revoke(&app, token, nc["id"].as_str().unwrap(), today()).await;
        assert_problem(r, 403, "forbidden").await;
    }
    let (_, still) = app.get_json(&nc_path, &clerk_nc).await;
    assert_eq!(still["revoked_on"], Value::Null);
}
