//! The committed OpenAPI document must be what the code generates.
//! To refresh it: `cargo run -q -p danbao-api -- openapi > openapi/openapi.json`.

#[test]
fn committed_openapi_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json");
    let generated = danbao_api::openapi::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `cargo run -q -p danbao-api -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_api_md_route_built_so_far_is_documented() {
    let api = danbao_api::openapi::openapi();
    let paths: Vec<&String> = api.paths.paths.keys().collect();
    for p in [
        "/v1/auth/token",
        "/v1/me",
        "/v1/regions",
        "/v1/centres",
        "/v1/centres/{id}",
        "/v1/banks",
        "/v1/users",
        "/v1/bank-clients",
        "/v1/policies",
        "/v1/audit-events",
        "/v1/funds",
        "/v1/funds/{id}",
        "/v1/funds/{id}/contributions",
        "/v1/funds/{id}/ledger",
        "/v1/credit-communities",
        "/v1/credit-communities/{id}/revocation",
        "/v1/borrowers",
        "/v1/borrowers/{id}",
        "/v1/loans/{id}/disbursement",
        "/v1/loans/{id}/repayments",
        "/v1/repayments/{id}/reversal",
        "/v1/loans",
        "/v1/loans/{id}",
        "/v1/loans/{id}/approval",
        "/v1/loans/{id}/rejection",
        "/v1/loans/{id}/cancellation",
        "/v1/loans/{id}/schedule",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.iter().any(|k| k.as_str() == p),
            "{p} missing from the OpenAPI document"
        );
    }
    let json = danbao_api::openapi::openapi_json();
    // Money and rates carry a pattern so clients and fuzzers know the format.
    assert!(
        json.contains("\\\\d{1,16}"),
        "Money schema lacks its pattern"
    );
}
