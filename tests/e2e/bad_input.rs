//! Bad request bodies over real HTTP: each is a 4xx problem+json with a stable `code`, never a
//! 5xx, and the server keeps serving.

use crate::database_url::serve_on_test_db;
use crate::harness::{Server, ADMIN_PASSWORD};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// 10 MiB: far above the JSON body limit.
const HUGE: usize = 10 * 1024 * 1024;

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// The field the problem's `errors` must name, if any.
    field: Option<&'static str>,
}

fn json_case(
    name: &'static str,
    path: &'static str,
    body: serde_json::Value,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        path,
        content_type: "application/json",
        body: serde_json::to_vec(&body).unwrap(),
        status,
        code,
        field,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "malformed JSON",
            path: "/v1/regions",
            content_type: "application/json",
            body: br#"{"code": "360000", "name": "#.to_vec(),
            status: 400,
            code: "malformed_json",
            field: None,
        },
        Case {
            name: "not UTF-8",
            path: "/v1/banks",
            content_type: "application/json",
            body: b"{\"code\": \"AB\xff\xfe\", \"name\": \"x\"}".to_vec(),
            status: 400,
            code: "malformed_json",
            field: None,
        },
        Case {
            name: "nested too deep",
            path: "/v1/banks",
            content_type: "application/json",
            body: format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            status: 400,
            code: "malformed_json",
            field: None,
        },
        Case {
            name: "empty body",
            path: "/v1/centres",
            content_type: "application/json",
            body: Vec::new(),
            status: 400,
            code: "malformed_json",
            field: None,
        },
        json_case(
            "wrong type",
            "/v1/banks",
            serde_json::json!({ "code": 123, "name": "Bank" }),
            422,
            "validation_failed",
            Some("code"),
        ),
        json_case(
            "wrong type in a region code",
            "/v1/regions",
            serde_json::json!({ "code": 360000, "name": "江西省" }),
            422,
            "validation_failed",
            Some("code"),
        ),
        json_case(
            "unknown enum value",
            "/v1/users",
            serde_json::json!({ "username": "king", "display_name": "King", "role": "king" }),
            422,
            "validation_failed",
            Some("role"),
        ),
        json_case(
            "unknown field",
            "/v1/banks",
            serde_json::json!({ "code": "AB", "name": "Bank", "owner": "me" }),
            422,
            "validation_failed",
            None,
        ),
        json_case(
            "array instead of object",
            "/v1/policies",
            serde_json::json!([1, 2, 3]),
            422,
            "validation_failed",
            None,
        ),
        Case {
            name: "text/plain body",
            path: "/v1/banks",
            content_type: "text/plain",
            body: br#"{"code": "AB", "name": "Bank"}"#.to_vec(),
            status: 415,
            code: "unsupported_media_type",
            field: None,
        },
        Case {
            name: "10 MiB body",
            path: "/v1/centres",
            content_type: "application/json",
            body: huge_json(),
            status: 413,
            code: "payload_too_large",
            field: None,
        },
    ]
}

/// A syntactically fine JSON object of [`HUGE`] bytes.
fn huge_json() -> Vec<u8> {
    let prefix = br#"{"name": ""#;
    let suffix = br#"", "region_code": "360000"}"#;
    let mut body = Vec::with_capacity(HUGE);
    body.extend_from_slice(prefix);
    body.resize(HUGE - suffix.len(), b'a');
    body.extend_from_slice(suffix);
    body
}

async fn assert_problem(res: reqwest::Response, case: &Case) {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let has_request_id = res.headers().contains_key("x-request-id");
    let text = res.text().await.unwrap_or_default();
    let name = case.name;
    assert!(status < 500, "{name}: server error {status}: {text}");
    assert_eq!(status, case.status, "{name}: status; body {text}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{name}: content type {content_type:?}; body {text}"
    );
    assert!(has_request_id, "{name}: no x-request-id");
    let problem: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name}: body is not JSON ({e}): {text}"));
    assert_eq!(problem["code"], case.code, "{name}: {problem}");
    assert_eq!(problem["status"], status, "{name}: {problem}");
    assert!(problem["title"].is_string(), "{name}: no title: {problem}");
    if let Some(field) = case.field {
        let errors = problem["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no errors list: {problem}"));
        assert!(
            errors.iter().any(|e| e["field"] == field),
            "{name}: errors do not name `{field}`: {problem}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_4xx_problems() {
    let served = serve_on_test_db().await;
    let server = &served.server;
    let token = server.token("admin", ADMIN_PASSWORD).await;

    for case in cases() {
        let res = server
            .http
            .post(server.url(case.path))
            .bearer_auth(&token)
            .header("content-type", case.content_type)
            .body(case.body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: POST {}: {e}", case.name, case.path));
        assert_problem(res, &case).await;
    }

    // Bad credentials are a 401 problem too, not a 500.
    let res = server
        .http
        .post(server.url("/v1/auth/token"))
        .json(&serde_json::json!({ "username": "admin", "password": 12345 }))
        .send()
        .await
        .unwrap();
    assert!(
        (400..500).contains(&res.status().as_u16()),
        "{}",
        res.status()
    );

    assert_ready(server).await;
}

/// A 10 MiB body without Content-Length (chunked): the server must stop reading at its
/// limit and answer 413, not buffer it all or fail with a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_chunked_body_is_413() {
    let served = serve_on_test_db().await;
    let server = &served.server;
    let token = server.token("admin", ADMIN_PASSWORD).await;

    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /v1/banks HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr
    );
    // Write in the background: the server may answer (and close) before taking it all.
    let writer_task = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let frame = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk,
            b"\r\n".to_vec(),
        ]
        .concat();
        for _ in 0..HUGE / (64 * 1024) {
            writer.write_all(&frame).await?;
        }
        writer.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(())
    });

    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response_complete(&response) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer to a 10 MiB chunked body within 30 s"
    );
    writer_task.abort();
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or("");
    assert!(
        status_line.starts_with("HTTP/1.1 413"),
        "expected 413, got {status_line:?}\n{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{text}"
    );
    assert!(text.contains("\"payload_too_large\""), "{text}");

    assert_ready(server).await;
}

/// The head and a body of Content-Length bytes have arrived.
fn response_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .is_some_and(|len| body.len() >= len)
}

async fn assert_ready(server: &Server) {
    let res = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200, "not ready after bad input");
}
