use crate::helpers::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use danbao_api::auth::{Claims, JwtKeys, PrincipalKind, Role};
use reqwest::Method;
use serde_json::{json, Value};

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.call(Method::GET, "/v1/me", Some(token), None)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn login_gives_a_token_that_says_who_i_am() {
    let app = spawn_app().await;
    let (status, me) = app.get_json("/v1/me", &app.admin_token).await;
    assert_eq!(status, 200);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["name"], "admin");
    assert_eq!(me["kind"], "user");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_401_alike() {
    let app = spawn_app().await;
    for body in [
        json!({"username": "admin", "password": "wrong password 1"}),
        json!({"username": "nobody", "password": "x"}),
    ] {
        let r = app
            .call(Method::POST, "/v1/auth/token", None, Some(body))
            .await;
        let v = assert_problem(r, 401, "unauthorized").await;
        assert_eq!(v["detail"], "unknown user or wrong password");
    }
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"username": "admin"})),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
}

#[tokio::test]
async fn tampered_expired_foreign_and_unsigned_tokens_are_401() {
    let app = spawn_app().await;
    assert_eq!(me_status(&app, &app.admin_token).await, 200);

    // Signed with another key.
    let other = JwtKeys::hs256(b"some other secret that is long enough!!").unwrap();
    let me = app.jwt.verify(&app.admin_token).unwrap();
    assert_eq!(me_status(&app, &other.issue(&me).unwrap()).await, 401);

    // Expired an hour ago, otherwise valid.
    let now = jsonwebtoken::get_current_timestamp();
    let expired = Claims {
        iss: "danbao".into(),
        aud: "danbao-api".into(),
        sub: me.id.to_string(),
        exp: now - 3600,
        iat: now - 7200,
        jti: "x".into(),
        kind: PrincipalKind::User,
        name: "admin".into(),
        role: Role::Admin,
        centre_id: None,
        bank_id: None,
        region_code: None,
    };
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &expired,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap();
    assert_eq!(me_status(&app, &t).await, 401);

    // Wrong audience, right key.
    let mut wrong_aud = expired.clone();
    wrong_aud.exp = now + 600;
    wrong_aud.aud = "someone-else".into();
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &wrong_aud,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap();
    assert_eq!(me_status(&app, &t).await, 401);

    // alg: none with the admin's own claims.
    let parts: Vec<&str> = app.admin_token.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(
        me_status(&app, &format!("{none_header}.{}.", parts[1])).await,
        401
    );

    // A clerk's token with its role claim changed to admin, signature kept.
    let p = app.seed_province().await;
    let clerk = app
        .user_token(
            "clerk.a",
            "clerk",
            json!({ "centre_id": p.centre_nanchang }),
        )
        .await;
    let cparts: Vec<&str> = clerk.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(cparts[1]).unwrap()).unwrap();
    claims["role"] = json!("admin");
    claims.as_object_mut().unwrap().remove("centre_id");
    let forged = format!(
        "{}.{}.{}",
        cparts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        cparts[2]
    );
    assert_eq!(me_status(&app, &forged).await, 401);
    let r = app
        .call(Method::GET, "/v1/users", Some(&forged), None)
        .await;
    assert_problem(r, 401, "unauthorized").await;

    // No header, wrong scheme, garbage.
    assert_eq!(
        app.call(Method::GET, "/v1/me", None, None).await.status(),
        401
    );
    let r = app
        .http
        .get(app.url("/v1/me"))
        .header("Authorization", "Basic YWRtaW46eA==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(me_status(&app, "not.a.jwt").await, 401);
}

#[tokio::test]
async fn public_key_tokens_verify_and_hs256_forgeries_with_the_public_key_do_not() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let private = std::fs::read(dir.join("ed25519-private.pem")).unwrap();
    let public = std::fs::read(dir.join("ed25519-public.pem")).unwrap();
    let keys = JwtKeys::from_pem("EdDSA", &private, &public).unwrap();
    let p = danbao_api::auth::Principal {
        kind: PrincipalKind::User,
        id: uuid::Uuid::now_v7(),
        name: "sup".into(),
        role: Role::Supervisor,
        scope: danbao_api::auth::Scope::Region(danbao_domain::RegionCode::parse("360100").unwrap()),
    };
    let token = keys.issue(&p).unwrap();
    assert_eq!(keys.verify(&token).unwrap().scope, p.scope);
    // The classic confusion attack: HS256 signed with the public key as the secret.
    let hs = JwtKeys::hs256(&public).unwrap();
    assert!(keys.verify(&hs.issue(&p).unwrap()).is_err());
}

fn a_supervisor() -> danbao_api::auth::Principal {
    danbao_api::auth::Principal {
        kind: PrincipalKind::User,
        id: uuid::Uuid::now_v7(),
        name: "sup".into(),
        role: Role::Supervisor,
        scope: danbao_api::auth::Scope::Region(danbao_domain::RegionCode::parse("360100").unwrap()),
    }
}

#[test]
fn rotated_keys_still_verify_their_tokens_until_they_are_retired() {
    let p = a_supervisor();
    let old_secret = b"the secret before the rotation, 40 bytes";
    let new_secret = b"the secret after the rotation, 40 bytes!";
    let old = JwtKeys::hs256(old_secret).unwrap();
    let old_token = old.issue(&p).unwrap();

    let rotated = JwtKeys::hs256(new_secret)
        .unwrap()
        .with_previous_secret(old_secret)
        .unwrap();
    assert_eq!(rotated.verify(&old_token).unwrap().id, p.id);
    // New tokens are signed with the new key, named by its kid.
    let new_token = rotated.issue(&p).unwrap();
    let header = jsonwebtoken::decode_header(&new_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(rotated.kid()));
    assert_ne!(rotated.kid(), old.kid());
    assert!(old.verify(&new_token).is_err());

    // Once the old key is dropped from the list, its tokens are refused.
    let retired = JwtKeys::hs256(new_secret).unwrap();
    match retired.verify(&old_token) {
        Err(danbao_api::error::ApiError::Unauthorized(m)) => {
            assert!(m.contains("unknown signing key"), "{m}")
        }
        other => panic!("old token after retirement: {:?}", other.map(|p| p.id)),
    }
    // A kid that names no key is refused even if the signature would match the current one.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("0123456789abcdef".into());
    let claims: Claims = serde_json::from_value({
        let parts: Vec<&str> = new_token.split('.').collect();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
    })
    .unwrap();
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(new_secret),
    )
    .unwrap();
    assert!(rotated.verify(&forged).is_err());
    // A retired secret must be as long as a current one.
    assert!(JwtKeys::hs256(new_secret)
        .unwrap()
        .with_previous_secret(b"short")
        .is_err());

    // Public keys rotate the same way: an EdDSA token verifies under HS256 + the retired key.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let private = std::fs::read(dir.join("ed25519-private.pem")).unwrap();
    let public = std::fs::read(dir.join("ed25519-public.pem")).unwrap();
    let ed_token = JwtKeys::from_pem("EdDSA", &private, &public)
        .unwrap()
        .issue(&p)
        .unwrap();
    let after = JwtKeys::hs256(new_secret)
        .unwrap()
        .with_previous_public_key("EdDSA", &public)
        .unwrap();
    assert_eq!(after.verify(&ed_token).unwrap().id, p.id);
    assert!(JwtKeys::hs256(new_secret)
        .unwrap()
        .verify(&ed_token)
        .is_err());
}

#[tokio::test]
async fn a_clerk_calling_admin_routes_gets_403() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk = app
        .user_token(
            "clerk.b",
            "clerk",
            json!({ "centre_id": p.centre_nanchang }),
        )
        .await;
    for (path, body) in [
        ("/v1/regions", json!({"code": "360300", "name": "萍乡市"})),
        ("/v1/banks", json!({"code": "NEWBANK", "name": "x"})),
        (
            "/v1/users",
            json!({"username": "evil", "display_name": "e", "role": "admin"}),
        ),
        (
            "/v1/bank-clients",
            json!({"bank_id": p.bank_a, "name": "x"}),
        ),
        ("/v1/policies/presets", json!({})),
    ] {
        let r = app.call(Method::POST, path, Some(&clerk), Some(body)).await;
        assert_problem(r, 403, "forbidden").await;
    }
    let r = app.call(Method::GET, "/v1/users", Some(&clerk), None).await;
    assert_problem(r, 403, "forbidden").await;
    let r = app
        .call(Method::GET, "/v1/audit-events", Some(&clerk), None)
        .await;
    assert_problem(r, 403, "forbidden").await;
}

#[tokio::test]
async fn deactivated_users_cannot_log_in_and_bank_clients_can() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let _ = app
        .user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;
    let (_, users) = app.get_json("/v1/users", &app.admin_token).await;
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
        .call(
            Method::POST,
            &format!("/v1/users/{id}/deactivation"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"username": "sup.nc", "password": "Test password 1"})),
        )
        .await;
    assert_eq!(r.status(), 401);

    let client = app
        .admin_create(
            "/v1/bank-clients",
            json!({ "bank_id": p.bank_a, "name": "nightly upload" }),
        )
        .await;
    let secret = client["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 32);
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"client_id": client["client_id"], "client_secret": secret})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, me) = app.get_json("/v1/me", &token).await;
    assert_eq!(me["role"], "bank");
    assert_eq!(me["kind"], "client");
    assert_eq!(me["bank_id"], p.bank_a.as_str());
    // The secret is never shown again.
    let (_, list) = app.get_json("/v1/bank-clients", &app.admin_token).await;
    assert!(list["items"][0].get("client_secret").is_none());
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"client_id": client["client_id"], "client_secret": "wrong"})),
        )
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn changing_my_password() {
    let app = spawn_app().await;
    let body = json!({"current_password": ADMIN_PASSWORD, "new_password": "weak"});
    let r = app
        .call(
            Method::PUT,
            "/v1/me/password",
            Some(&app.admin_token),
            Some(body),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
    let body =
        json!({"current_password": "not it at all 1", "new_password": "A much better one 2"});
    let r = app
        .call(
            Method::PUT,
            "/v1/me/password",
            Some(&app.admin_token),
            Some(body),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
    let body = json!({"current_password": ADMIN_PASSWORD, "new_password": "A much better one 2"});
    let r = app
        .call(
            Method::PUT,
            "/v1/me/password",
            Some(&app.admin_token),
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 204);
    app.login("admin", "A much better one 2").await;
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"username": "admin", "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_brute_force_is_refused_after_the_limit_and_the_owner_gets_in_after_the_lock() {
    let app = spawn_app().await;
    app.user_token(
        "victim",
        "clerk",
        serde_json::json!({ "centre_id": app.seed_province().await.centre_nanchang }),
    )
    .await;
    let attempt = |password: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/v1/auth/token"))
                .json(&serde_json::json!({ "username": "victim", "password": password }))
                .send()
                .await
                .unwrap()
        }
    };
    // 1,000 guesses, 20 at a time: the limit (5 within the 3-second test window) holds even
    // for concurrent guesses; the rest are refused before any password is checked.
    let started = std::time::Instant::now();
    let mut unauthorized = 0;
    let mut refused = 0;
    let mut retry_after = Vec::new();
    for _ in 0..50 {
        let answers =
            futures_util::future::join_all((0..20).map(|_| attempt("wrong password 1"))).await;
        for r in answers {
            match r.status().as_u16() {
                401 => unauthorized += 1,
                429 => {
                    refused += 1;
                    retry_after.push(
                        r.headers()["retry-after"]
                            .to_str()
                            .unwrap()
                            .parse::<u64>()
                            .unwrap(),
                    );
                    let body: serde_json::Value = r.json().await.unwrap();
                    assert_eq!(body["code"], "too_many_requests");
                }
                other => panic!("unexpected {other}"),
            }
        }
    }
    let elapsed = started.elapsed().as_secs() + 1;
    // Each window lets at most 5 guesses through.
    assert!(
        unauthorized <= 5 * (elapsed / 3 + 1),
        "{unauthorized} guesses were checked in {elapsed} s"
    );
    assert_eq!(unauthorized + refused, 1000);
    assert!(refused >= 900, "{refused}");
    assert!(
        retry_after.iter().all(|s| (1..=4).contains(s)),
        "{retry_after:?}"
    );
    // While locked, even the right password waits; after the lock it works.
    assert_eq!(attempt("Test password 1").await.status(), 429);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(attempt("Test password 1").await.status(), 200);
    // Failures are audited with the address; a success does not count against the owner.
    let (_, events) = app
        .get_json(
            "/v1/audit-events?action=auth.login_failed&limit=500",
            &app.admin_token,
        )
        .await;
    let failed: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login_failed")
        .collect();
    assert_eq!(failed.len() as u64, unauthorized);
    assert_eq!(failed[0]["entity_id"], "user:victim");
    assert_eq!(failed[0]["detail"]["address"], "127.0.0.1");
    for _ in 0..6 {
        assert_eq!(attempt("Test password 1").await.status(), 200);
    }
}

#[tokio::test]
async fn guessing_many_accounts_from_one_address_is_refused_too() {
    let app = spawn_app().await;
    // 40 failures per address within the window (the test setting); 4 per account here, all at
    // once.
    let answers = futures_util::future::join_all((0..45).map(|n| {
        app.http
            .post(app.url("/v1/auth/token"))
            .json(&serde_json::json!({ "username": format!("nobody{}", n / 4), "password": "guess password 1" }))
            .send()
    }))
    .await;
    let mut statuses: Vec<u16> = answers
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        40,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn tokens_of_deactivated_users_and_revoked_clients_stop_working() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk = app
        .user_token(
            "soon.gone",
            "clerk",
            json!({ "centre_id": p.centre_nanchang }),
        )
        .await;
    assert_eq!(me_status(&app, &clerk).await, 200);
    let (_, users) = app.get_json("/v1/users?limit=500", &app.admin_token).await;
    let id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "soon.gone")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(
            Method::POST,
            &format!("/v1/users/{id}/deactivation"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    // The token is still unexpired, and refused at once.
    assert_eq!(me_status(&app, &clerk).await, 401);

    // A bank's system: its token works until the client is revoked.
    let client = app
        .admin_create(
            "/v1/bank-clients",
            json!({ "bank_id": p.bank_a, "name": "core" }),
        )
        .await;
    let r = app
        .http
        .post(app.url("/v1/auth/token"))
        .json(
            &json!({ "client_id": client["client_id"], "client_secret": client["client_secret"] }),
        )
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me_status(&app, &token).await, 200);
    let r = app
        .call(
            Method::POST,
            &format!(
                "/v1/bank-clients/{}/revocation",
                client["id"].as_str().unwrap()
            ),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(me_status(&app, &token).await, 401);
    let r = app
        .http
        .post(app.url("/v1/auth/token"))
        .json(
            &json!({ "client_id": client["client_id"], "client_secret": client["client_secret"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Another replica deactivates a user (here: straight in the database): this server
    // notices once its memory of the user is older than its time to live (1 s in tests).
    let other = app
        .user_token(
            "elsewhere",
            "clerk",
            json!({ "centre_id": p.centre_nanchang }),
        )
        .await;
    assert_eq!(me_status(&app, &other).await, 200);
    let mut conn = app.db.connect().await;
    danbao_persistence::diesel_async::RunQueryDsl::execute(
        danbao_persistence::diesel::sql_query(
            "UPDATE users SET active = false WHERE username = 'elsewhere'",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(me_status(&app, &other).await, 401);
}

#[tokio::test]
async fn logins_at_once_all_pass_with_at_most_one_hash_per_core() {
    let app = spawn_app().await;
    let users = 8;
    for i in 0..users {
        app.admin_create(
            "/v1/users",
            json!({ "username": format!("user{i}"), "display_name": "u", "password": "Test password 1",
                    "role": "admin" }),
        )
        .await;
    }
    let answers = futures_util::future::join_all((0..users).map(|i| {
        app.http
            .post(app.url("/v1/auth/token"))
            .json(&json!({ "username": format!("user{i}"), "password": "Test password 1" }))
            .send()
    }))
    .await;
    for a in answers {
        assert_eq!(a.unwrap().status(), 200);
    }
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let peak = danbao_api::auth::hashing_peak();
    assert!(
        (1..=cores).contains(&peak),
        "{peak} hashes at once on {cores} cores"
    );
}
