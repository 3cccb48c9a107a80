use danbao_api::auth::JwtKeys;
use danbao_api::bootstrap;
use danbao_api::startup::{self, ServerOptions};
use danbao_api::state::AppState;
use danbao_api::telemetry;
use danbao_persistence::testing::{test_db, TestDb};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::time::Duration;

pub const ADMIN_PASSWORD: &str = "Admin password 1";
pub const PII_KEY: &[u8] = b"a personal-data key for tests, 32+ bytes";
pub const JWT_SECRET: &[u8] = b"an hs256 secret for tests only, 42 bytes!!";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub jwt: JwtKeys,
    pub admin_token: String,
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    // No rate limits: tests send quickly. Those about the limits set their own.
    spawn_app_limited(danbao_api::ratelimit::RateLimits::default()).await
}

pub async fn spawn_app_limited(limits: danbao_api::ratelimit::RateLimits) -> TestApp {
    spawn_app_with(limits, None, None).await
}

/// An app with a per-request time limit and a statement timeout on its connections.
pub async fn spawn_app_timed(
    request_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
) -> TestApp {
    spawn_app_with(
        danbao_api::ratelimit::RateLimits::default(),
        request_timeout,
        statement_timeout,
    )
    .await
}

async fn spawn_app_with(
    limits: danbao_api::ratelimit::RateLimits,
    request_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
) -> TestApp {
    let db = test_db().await;
    bootstrap::ensure_admin(&db.url, Some(ADMIN_PASSWORD.into()))
        .await
        .expect("admin");
    let pool = danbao_persistence::pool::build_pool_with(
        &db.url,
        4,
        Duration::from_secs(5),
        statement_timeout,
    )
    .expect("pool");
    let jwt = JwtKeys::hs256(JWT_SECRET).unwrap();
    let state = AppState {
        pool,
        read_pool: None,
        jwt: jwt.clone(),
        timezone: chrono_tz::Asia::Shanghai,
        metrics: telemetry::metrics_handle(),
        pii: danbao_api::crypto::PiiKeys::from_master(PII_KEY).unwrap(),
        // Short, so that a test can see a lock expire.
        login: danbao_api::state::LoginLimits {
            per_account: 5,
            per_address: 40,
            window: Duration::from_secs(3),
        },
        // Short, so that a test can see another replica's change arrive.
        active: danbao_api::state::ActiveCache::new(Duration::from_secs(1)),
        limits: limits.clone(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = startup::build(
        state,
        listener,
        &ServerOptions {
            workers: 1,
            shutdown_timeout: 1,
            request_timeout,
        },
    )
    .unwrap();
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run());
    let http = reqwest::Client::new();
    let mut t = TestApp {
        base,
        http,
        jwt,
        admin_token: String::new(),
        db,
    };
    t.admin_token = t.login("admin", ADMIN_PASSWORD).await;
    t
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .http
            .post(self.url("/v1/auth/token"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "login of {username} failed: {}",
            r.text().await.unwrap_or_default()
        );
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// POST as admin, expecting 201; returns the body.
    pub async fn admin_create(&self, path: &str, body: Value) -> Value {
        let r = self
            .call(Method::POST, path, Some(&self.admin_token), Some(body))
            .await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 201, "POST {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self.call(Method::GET, path, Some(token), None).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A small province: Jiangxi with two cities and a district, a centre in each city, two banks.
    pub async fn seed_province(&self) -> Province {
        for (code, name) in [
            ("360000", "江西省"),
            ("360100", "南昌市"),
            ("360102", "东湖区"),
            ("360200", "景德镇市"),
        ] {
            self.admin_create("/v1/regions", json!({ "code": code, "name": name }))
                .await;
        }
        let nanchang = self
            .admin_create(
                "/v1/centres",
                json!({ "name": "南昌市担保中心", "region_code": "360100" }),
            )
            .await;
        let jdz = self
            .admin_create(
                "/v1/centres",
                json!({ "name": "景德镇市担保中心", "region_code": "360200" }),
            )
            .await;
        let bank_a = self
            .admin_create("/v1/banks", json!({ "code": "JXRCU", "name": "江西农信" }))
            .await;
        let bank_b = self
            .admin_create(
                "/v1/banks",
                json!({ "code": "ICBC-JX", "name": "工商银行江西分行" }),
            )
            .await;
        Province {
            centre_nanchang: nanchang["id"].as_str().unwrap().to_owned(),
            centre_jdz: jdz["id"].as_str().unwrap().to_owned(),
            bank_a: bank_a["id"].as_str().unwrap().to_owned(),
            bank_b: bank_b["id"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a user with the given role and scope field and returns its token.
    pub async fn user_token(&self, username: &str, role: &str, scope: Value) -> String {
        let mut body = json!({ "username": username, "display_name": username, "password": "Test password 1", "role": role });
        if let (Some(b), Some(s)) = (body.as_object_mut(), scope.as_object()) {
            b.extend(s.clone());
        }
        self.admin_create("/v1/users", body).await;
        self.login(username, "Test password 1").await
    }
}

pub struct Province {
    pub centre_nanchang: String,
    pub centre_jdz: String,
    pub bank_a: String,
    #[allow(dead_code)] // used by later scenarios
    pub bank_b: String,
}

/// Asserts a problem+json answer with the given status and code; returns the body.
pub async fn assert_problem(r: Response, status: u16, code: &str) -> Value {
    let actual = r.status().as_u16();
    let url = r.url().to_string();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status from {url}: {text}");
    assert_eq!(ct, "application/problem+json", "{url}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], code, "body: {v}");
    assert_eq!(v["status"], status);
    v
}

/// A valid 18-character national id (GB 11643): region 360102, the given birth date
/// (YYYYMMDD) and sequence, with its MOD 11-2 check character.
pub fn national_id(birth: &str, seq: u32) -> String {
    let body = format!("360102{birth}{:03}", seq % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

/// A clerk's working set: the province, presets, two clerks of Nanchang's centre, a fund.
pub struct Desk {
    pub p: Province,
    pub entrant: String,
    pub approver: String,
    pub fund: String,
}

impl TestApp {
    pub async fn desk(&self, contribution: &str) -> Desk {
        let p = self.seed_province().await;
        let r = self
            .call(
                Method::POST,
                "/v1/policies/presets",
                Some(&self.admin_token),
                None,
            )
            .await;
        assert_eq!(r.status(), 200);
        let entrant = self
            .user_token(
                "clerk.entrant",
                "clerk",
                json!({ "centre_id": p.centre_nanchang }),
            )
            .await;
        let approver = self
            .user_token(
                "clerk.approver",
                "clerk",
                json!({ "centre_id": p.centre_nanchang }),
            )
            .await;
        let fund = self.fund(&entrant, "南昌基金", contribution).await;
        Desk {
            p,
            entrant,
            approver,
            fund,
        }
    }

    /// A fund of the clerk's centre with one contribution (value date 2004-01-02).
    pub async fn fund(&self, clerk: &str, name: &str, contribution: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/funds",
                Some(clerk),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(r.status(), 201);
        let fund = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self
            .call(
                Method::POST,
                &format!("/v1/funds/{fund}/contributions"),
                Some(clerk),
                Some(json!({ "value_date": "2004-01-02", "amount": contribution, "source": "city_finance" })),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        fund
    }

    /// Registers a laid-off person with a certificate; returns the borrower id.
    pub async fn person(&self, clerk: &str, seq: u32, extra: Value) -> String {
        let mut body = json!({
            "kind": "individual",
            "category": "laid_off",
            "name": format!("张{seq}"),
            "national_id": national_id("19800101", seq),
            "employment_certificate_no": format!("JX{seq:06}"),
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = self
            .call(Method::POST, "/v1/borrowers", Some(clerk), Some(body))
            .await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 201, "borrower: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Applies for a loan with sensible defaults overridden by `extra`; returns the answer.
    pub async fn apply(&self, clerk: &str, desk: &Desk, borrower: &str, extra: Value) -> Response {
        let mut body = json!({
            "borrower_id": borrower,
            "bank_id": desk.p.bank_a,
            "fund_id": desk.fund,
            "principal": "10000.00",
            "term_months": 24,
            "annual_rate": "0.0435",
            "schedule_method": "equal_principal",
            "purpose": "早餐店",
            "micro_profit": true,
            "jobs_declared": 2,
            "counter_guarantee": { "kind": "mortgage", "description": "房产抵押" },
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.call(Method::POST, "/v1/loans", Some(clerk), Some(body))
            .await
    }

    pub async fn applied(&self, clerk: &str, desk: &Desk, borrower: &str, extra: Value) -> String {
        let r = self.apply(clerk, desk, borrower, extra).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 201, "application: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Runs `migration`'s down.sql and up.sql on the app's database. Later migrations build on it,
/// so they are reverted first (newest first) and reapplied after; any failing script panics.
pub async fn revert_and_reapply(app: &TestApp, migration: &str) {
    use danbao_persistence::diesel_async::SimpleAsyncConnection;
    let mut conn = app.db.connect().await;
    let root = format!("{}/../../migrations", env!("CARGO_MANIFEST_DIR"));
    let mut later: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.as_str() > migration)
        .collect();
    later.sort();
    let read = |dir: &str, f: &str| std::fs::read_to_string(format!("{root}/{dir}/{f}")).unwrap();
    for dir in later.iter().rev() {
        conn.batch_execute(&read(dir, "down.sql")).await.unwrap();
    }
    conn.batch_execute(&read(migration, "down.sql"))
        .await
        .unwrap();
    conn.batch_execute(&read(migration, "up.sql"))
        .await
        .unwrap();
    for dir in &later {
        conn.batch_execute(&read(dir, "up.sql")).await.unwrap();
    }
}
