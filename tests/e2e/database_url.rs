//! `danbao serve` with DATABASE_URL: the operational endpoints over real HTTP.

use crate::harness::{danbao, Server, ADMIN_PASSWORD, DATA_KEY, JWT_SECRET, STOP_TIMEOUT};
use danbao_persistence::testing::{test_db, TestDb};

/// A `danbao serve` on a fresh database of its own, which lives as long as this does.
pub struct ServedTestDb {
    pub server: Server,
    _db: TestDb,
    _tmp: tempfile::TempDir,
}

impl ServedTestDb {
    /// The database's URL, for other `danbao` commands on the same database.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }
}

pub async fn serve_on_test_db() -> ServedTestDb {
    serve_on_test_db_with(&[]).await
}

/// [`serve_on_test_db`] with more environment variables for `danbao serve`.
pub async fn serve_on_test_db_with(env: &[(&str, &str)]) -> ServedTestDb {
    let db = test_db().await;
    // Out of the way (not ./danbao-data in the crate): unused with DATABASE_URL.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = danbao();
    cmd.env("DATABASE_URL", &db.url)
        .env("DANBAO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("DANBAO_JWT_SECRET", JWT_SECRET)
        .env("DANBAO_DATA_KEY", DATA_KEY)
        .env("DANBAO_DATA_DIR", tmp.path().join("data"));
    cmd.envs(env.iter().copied());
    let (server, _) = Server::start(cmd).await;
    ServedTestDb {
        server,
        _db: db,
        _tmp: tmp,
    }
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header on {} {}", res.status(), res.url()))
        .to_str()
        .expect("ASCII header")
}

fn assert_request_id(res: &reqwest::Response) {
    let id = header(res, "x-request-id");
    assert!(!id.is_empty(), "empty x-request-id on {}", res.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_endpoints_over_http() {
    let mut served = serve_on_test_db().await;
    let server = &mut served.server;
    let http = server.http.clone();

    // The admin password came from the environment: it is not printed.
    assert!(
        !server.stdout().contains("one-time password"),
        "a password was printed although DANBAO_ADMIN_PASSWORD was set\n{}",
        server.logs()
    );

    let res = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_request_id(&res);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let res = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_request_id(&res);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    // A caller's own correlation id is echoed.
    let res = http
        .get(server.url("/healthz"))
        .header("x-request-id", "bank-corr-42")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "x-request-id"), "bank-corr-42");

    // Authentication over HTTP with the configured password.
    let token = server.token("admin", ADMIN_PASSWORD).await;
    let res = http
        .get(server.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_request_id(&res);
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["name"], "admin", "{me}");
    assert_eq!(me["role"], "admin", "{me}");

    // No token: 401 problem+json.
    let res = http.get(server.url("/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        header(&res, "content-type").starts_with("application/problem+json"),
        "401 content type"
    );

    // Unknown path: 404 problem+json with a code and the request id.
    let res = http
        .get(server.url("/v1/no-such-thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_request_id(&res);
    assert!(
        header(&res, "content-type").starts_with("application/problem+json"),
        "404 content type: {}",
        header(&res, "content-type")
    );
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["status"], 404, "{problem}");
    assert_eq!(problem["code"], "not_found", "{problem}");

    // Metrics count the requests above.
    let res = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").starts_with("text/plain"));
    let metrics = res.text().await.unwrap();
    assert!(
        metrics.contains("http_requests_total"),
        "no http_requests_total in /metrics:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total") && l.contains("/healthz")),
        "no http_requests_total sample for /healthz:\n{metrics}"
    );

    // The OpenAPI document.
    let res = http.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.expect("/openapi.json is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths object");
    for path in ["/v1/auth/token", "/v1/regions", "/v1/banks", "/v1/users"] {
        assert!(
            paths.contains_key(path),
            "{path} missing from /openapi.json"
        );
    }

    // Swagger UI.
    let res = http.get(server.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(
        html.to_lowercase().contains("swagger"),
        "/docs/ is not Swagger UI"
    );

    let status = server.stop(STOP_TIMEOUT);
    assert!(
        status.success(),
        "danbao exited with {status} after SIGTERM\n{}",
        server.logs()
    );
}
