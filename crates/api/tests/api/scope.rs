use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn centres_are_visible_by_role_and_scope() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk_nc = app
        .user_token(
            "clerk.nc",
            "clerk",
            json!({ "centre_id": p.centre_nanchang }),
        )
        .await;
    let sup_nc = app
        .user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;
    let sup_jx = app
        .user_token("sup.jx", "supervisor", json!({ "region_code": "360000" }))
        .await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": p.bank_a }))
        .await;

    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, list) = app.get_json("/v1/centres", &clerk_nc).await;
    assert_eq!(ids(&list), vec![p.centre_nanchang.clone()]);
    let (_, list) = app.get_json("/v1/centres", &sup_nc).await;
    assert_eq!(ids(&list), vec![p.centre_nanchang.clone()]);
    let (_, list) = app.get_json("/v1/centres", &sup_jx).await;
    assert_eq!(ids(&list).len(), 2);
    let (_, list) = app.get_json("/v1/centres", &app.admin_token).await;
    assert_eq!(ids(&list).len(), 2);

    // Another centre's or another city's centre is 404, not 403.
    let other = format!("/v1/centres/{}", p.centre_jdz);
    let r = app.call(Method::GET, &other, Some(&clerk_nc), None).await;
    assert_problem(r, 404, "not_found").await;
    let r = app.call(Method::GET, &other, Some(&sup_nc), None).await;
    assert_problem(r, 404, "not_found").await;
    let (status, _) = app.get_json(&other, &sup_jx).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get_json(&format!("/v1/centres/{}", p.centre_nanchang), &clerk_nc)
        .await;
    assert_eq!(status, 200);

    // Banks do not read centres at all.
    let r = app
        .call(Method::GET, "/v1/centres", Some(&bank), None)
        .await;
    assert_problem(r, 403, "forbidden").await;
    // A malformed id names no resource.
    let r = app
        .call(Method::GET, "/v1/centres/not-a-uuid", Some(&sup_jx), None)
        .await;
    assert_problem(r, 404, "not_found").await;
}

#[tokio::test]
async fn supervisors_see_audit_events_of_their_region_only() {
    let app = spawn_app().await;
    app.seed_province().await;
    let sup_nc = app
        .user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;
    let (status, events) = app.get_json("/v1/audit-events?limit=500", &sup_nc).await;
    assert_eq!(status, 200);
    let items = events["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for e in items {
        let code = e["region_code"].as_str().unwrap();
        assert!(code.starts_with("3601"), "supervisor of 360100 saw {e}");
    }
    // The admin sees the other city's centre being created.
    let (_, all) = app
        .get_json(
            "/v1/audit-events?limit=500&entity_type=centre",
            &app.admin_token,
        )
        .await;
    let regions: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["region_code"].as_str().unwrap())
        .collect();
    assert!(regions.contains(&"360200"));
}
