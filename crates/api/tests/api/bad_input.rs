use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

async fn post_raw(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(&app.admin_token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

const POST_ROUTES: &[&str] = &[
    "/v1/regions",
    "/v1/centres",
    "/v1/banks",
    "/v1/users",
    "/v1/bank-clients",
    "/v1/policies",
    "/v1/auth/token",
];

#[tokio::test]
async fn malformed_wrong_typed_and_huge_bodies_get_4xx_problems_on_every_post() {
    let app = spawn_app().await;
    let huge = vec![b'a'; 10 * 1024 * 1024];
    for path in POST_ROUTES {
        let r = post_raw(
            &app,
            path,
            b"{ this is not json".to_vec(),
            "application/json",
        )
        .await;
        assert_problem(r, 400, "malformed_json").await;
        let r = post_raw(
            &app,
            path,
            br#"{"code": 360000, "name": ["x"], "username": 5}"#.to_vec(),
            "application/json",
        )
        .await;
        assert_problem(r, 422, "validation_failed").await;
        let r = post_raw(&app, path, huge.clone(), "application/json").await;
        assert_problem(r, 413, "payload_too_large").await;
        let r = post_raw(
            &app,
            path,
            b"code=1".to_vec(),
            "application/x-www-form-urlencoded",
        )
        .await;
        assert_problem(r, 415, "unsupported_media_type").await;
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let r = post_raw(&app, path, deep.into_bytes(), "application/json").await;
        assert_problem(r, 400, "malformed_json").await;
    }
}

#[tokio::test]
async fn unknown_enum_values_and_fields_name_the_field() {
    let app = spawn_app().await;
    let r = app
        .call(
            Method::POST,
            "/v1/users",
            Some(&app.admin_token),
            Some(json!({"username": "x.y.z", "display_name": "x", "role": "king"})),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "role");
    let r = app
        .call(
            Method::POST,
            "/v1/banks",
            Some(&app.admin_token),
            Some(json!({"code": "AB", "name": "x", "colour": "red"})),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    // Money must be a string with at most two decimals.
    let r = app
        .call(
            Method::POST,
            "/v1/policies/presets",
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, list) = app.get_json("/v1/policies", &app.admin_token).await;
    let mut body = json!({ "policy": list["items"][0]["policy"].clone() });
    body["policy"]["code"] = json!("NEW-1");
    body["policy"]["individual_limit"] = json!(20000.5);
    let r = app
        .call(
            Method::POST,
            "/v1/policies",
            Some(&app.admin_token),
            Some(body.clone()),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "policy.individual_limit");
    body["policy"]["individual_limit"] = json!("20000.505");
    let r = app
        .call(
            Method::POST,
            "/v1/policies",
            Some(&app.admin_token),
            Some(body),
        )
        .await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], "policy.individual_limit");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let r = app
        .call(
            Method::GET,
            "/v1/nothing-here",
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some());
}
