use crate::helpers::*;
use diesel::sql_types::{Binary, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{json, Value};

/// A national id with its GB 11643 check character (ISO 7064 MOD 11-2), computed here
/// independently of the code under test: S = Σ a_i · (2^(17-i) mod 11), check = (12 - S mod 11)
/// mod 11, 10 written X.
fn national_id(first17: &str) -> String {
    assert_eq!(first17.len(), 17);
    let s: u32 = first17
        .chars()
        .enumerate()
        .map(|(i, c)| c.to_digit(10).unwrap() * ((1u32 << (17 - i)) % 11))
        .sum();
    let check = match (12 - s % 11) % 11 {
        10 => 'X',
        v => char::from_digit(v, 10).unwrap(),
    };
    format!("{first17}{check}")
}

/// The same id with a wrong check character.
fn with_wrong_check(id: &str) -> String {
    let wrong = if id.ends_with('0') { '1' } else { '0' };
    format!("{}{wrong}", &id[..17])
}

fn person(id: &str) -> Value {
    json!({
        "kind": "individual",
        "category": "laid_off",
        "name": "王建国",
        "national_id": id,
        "phone": "+8613800138000",
        "employment_certificate_no": "JX2006-0012345",
    })
}

async fn register(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.call(Method::POST, "/v1/borrowers", Some(token), Some(body))
        .await
}

async fn registered(app: &TestApp, token: &str, body: Value) -> Value {
    let r = register(app, token, body).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Expects 422 naming `field` first.
async fn refused(app: &TestApp, token: &str, body: Value, field: &str) -> Value {
    let v = assert_problem(register(app, token, body).await, 422, "validation_failed").await;
    assert_eq!(v["errors"][0]["field"], field, "{v}");
    v
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn clerk_of(app: &TestApp, name: &str, centre: &str) -> String {
    app.user_token(name, "clerk", json!({ "centre_id": centre }))
        .await
}

#[tokio::test]
async fn a_person_is_registered_read_back_and_found_by_national_id() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk = clerk_of(&app, "clerk.nc", &p.centre_nanchang).await;
    let id = national_id("36010219800101001");
    let b = registered(&app, &clerk, person(&id)).await;
    assert_eq!(b["centre_id"], p.centre_nanchang.as_str());
    assert_eq!(b["kind"], "individual");
    assert_eq!(b["category"], "laid_off");
    assert_eq!(b["name"], "王建国");
    assert_eq!(b["national_id"], id.as_str());
    assert_eq!(b["phone"], "+8613800138000");
    assert_eq!(b["birth_date"], "1980-01-01");
    assert_eq!(b["employment_certificate_no"], "JX2006-0012345");
    assert_eq!(b["member_count"], 1);
    assert_eq!(b["enterprise_registration_no"], Value::Null);
    let bid = b["id"].as_str().unwrap();

    let (status, read) = app.get_json(&format!("/v1/borrowers/{bid}"), &clerk).await;
    assert_eq!(status, 200);
    assert_eq!(read, b);

    // `?national_id=` finds exactly that borrower, and nobody for another valid id.
    let other = registered(&app, &clerk, person(&national_id("36010219850505002"))).await;
    let (status, found) = app
        .get_json(&format!("/v1/borrowers?national_id={id}"), &clerk)
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(ids(&found), vec![bid.to_owned()]);
    assert_eq!(found["items"][0]["national_id"], id.as_str());
    let (_, none) = app
        .get_json(
            &format!(
                "/v1/borrowers?national_id={}",
                national_id("36010219900101003")
            ),
            &clerk,
        )
        .await;
    assert_eq!(ids(&none), Vec::<String>::new());
    let (_, all) = app.get_json("/v1/borrowers", &clerk).await;
    assert_eq!(
        ids(&all),
        vec![bid.to_owned(), other["id"].as_str().unwrap().to_owned()]
    );
    // Pages follow the cursor.
    let (_, first) = app.get_json("/v1/borrowers?limit=1", &clerk).await;
    assert_eq!(ids(&first), vec![bid.to_owned()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get_json(&format!("/v1/borrowers?limit=1&cursor={cursor}"), &clerk)
        .await;
    assert_eq!(ids(&second), vec![other["id"].as_str().unwrap().to_owned()]);
    assert_eq!(second["next_cursor"], Value::Null);

    // A malformed id or a wrong check digit in the look-up is 422 naming national_id.
    for bad in [with_wrong_check(&id), "3601021980".to_owned()] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/borrowers?national_id={bad}"),
                Some(&clerk),
                None,
            )
            .await;
        let v = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(v["errors"][0]["field"], "national_id");
    }

    // The audit event has the masked id only: no id, no phone, no name.
    let (_, events) = app
        .get_json(
            &format!("/v1/audit-events?entity_type=borrower&entity_id={bid}"),
            &app.admin_token,
        )
        .await;
    let event = &events["items"][0];
    assert_eq!(event["action"], "borrower.registered");
    assert_eq!(event["region_code"], "360100");
    assert_eq!(event["detail"]["national_id_masked"], "360102********0013");
    let text = event.to_string();
    assert!(!text.contains(&id[..14]), "{text}");
    assert!(!text.contains("13800138000"), "{text}");
    assert!(!text.contains("王建国"), "{text}");
}

#[tokio::test]
async fn registrations_are_checked_field_by_field() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk = clerk_of(&app, "clerk.nc", &p.centre_nanchang).await;
    let clerk_jdz = clerk_of(&app, "clerk.jdz", &p.centre_jdz).await;
    let id = national_id("36010219800101001");
    let with = |id: &str, extra: Value| {
        let mut b = person(id);
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };

    // A wrong check digit, a missing id for a person, a birth date in the future.
    refused(&app, &clerk, person(&with_wrong_check(&id)), "national_id").await;
    refused(
        &app,
        &clerk,
        with(&id, json!({ "national_id": null })),
        "national_id",
    )
    .await;
    let unborn = national_id("36010221000101001");
    refused(&app, &clerk, person(&unborn), "national_id").await;
    // Phone format.
    for phone in [
        "1234",
        "138-0013-8000",
        "++8613800138000",
        "123456789012345678901",
    ] {
        refused(&app, &clerk, with(&id, json!({ "phone": phone })), "phone").await;
    }
    // A partnership has two members or more; an individual exactly one.
    let partnership = |n: i64| with(&id, json!({ "kind": "partnership", "member_count": n }));
    refused(&app, &clerk, partnership(1), "member_count").await;
    refused(
        &app,
        &clerk,
        with(&id, json!({ "kind": "partnership" })),
        "member_count",
    )
    .await;
    refused(&app, &clerk, partnership(101), "member_count").await;
    refused(
        &app,
        &clerk,
        with(&id, json!({ "member_count": 2 })),
        "member_count",
    )
    .await;
    // Kind and category agree: a small enterprise is of both, a person of neither.
    refused(
        &app,
        &clerk,
        with(&id, json!({ "category": "small_enterprise" })),
        "category",
    )
    .await;
    let firm = json!({
        "kind": "small_enterprise",
        "category": "small_enterprise",
        "name": "南昌红星服装厂",
        "enterprise_registration_no": "91360102ma35l8xk2b",
        "employees": 40,
        "eligible_employees": 15,
    });
    let firm_with = |extra: Value| {
        let mut b = firm.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    refused(
        &app,
        &clerk,
        firm_with(json!({ "category": "laid_off" })),
        "category",
    )
    .await;
    refused(
        &app,
        &clerk,
        firm_with(json!({ "national_id": id })),
        "national_id",
    )
    .await;
    refused(
        &app,
        &clerk,
        firm_with(json!({ "member_count": 3 })),
        "member_count",
    )
    .await;
    refused(
        &app,
        &clerk,
        firm_with(json!({ "enterprise_registration_no": "91360102MA35L8XK2" })),
        "enterprise_registration_no",
    )
    .await;
    refused(
        &app,
        &clerk,
        firm_with(json!({ "enterprise_registration_no": null })),
        "enterprise_registration_no",
    )
    .await;
    refused(
        &app,
        &clerk,
        firm_with(json!({ "eligible_employees": 41 })),
        "eligible_employees",
    )
    .await;
    refused(
        &app,
        &clerk,
        with(
            &id,
            json!({ "enterprise_registration_no": "91360102MA35L8XK2B" }),
        ),
        "enterprise_registration_no",
    )
    .await;
    // Every bad field is named at once.
    let v = refused(
        &app,
        &clerk,
        json!({ "kind": "partnership", "category": "graduate", "name": " ", "member_count": 1 }),
        "name",
    )
    .await;
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["name", "member_count", "national_id"]);
    // Unknown kinds and fields are refused by the body parser.
    refused(&app, &clerk, with(&id, json!({ "kind": "firm" })), "kind").await;
    let r = register(&app, &clerk, with(&id, json!({ "nationality": "CN" }))).await;
    let v = assert_problem(r, 422, "validation_failed").await;
    assert!(v["detail"].as_str().unwrap().contains("nationality"), "{v}");

    // The credit community must be one of the clerk's own centre.
    let own = app
        .call(
            Method::POST,
            "/v1/credit-communities",
            Some(&clerk),
            Some(json!({ "name": "百花洲社区", "region_code": "360102", "certified_on": "2020-01-01" })),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let foreign = app
        .call(
            Method::POST,
            "/v1/credit-communities",
            Some(&clerk_jdz),
            Some(json!({ "name": "昌江社区", "region_code": "360200", "certified_on": "2020-01-01" })),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    for c in [foreign["id"].clone(), json!(uuid::Uuid::now_v7())] {
        refused(
            &app,
            &clerk,
            with(&id, json!({ "credit_community_id": c })),
            "credit_community_id",
        )
        .await;
    }

    // Nothing refused was stored; the valid forms are.
    let (_, none) = app.get_json("/v1/borrowers", &clerk).await;
    assert_eq!(ids(&none), Vec::<String>::new());
    let b = registered(
        &app,
        &clerk,
        with(&id, json!({ "credit_community_id": own["id"] })),
    )
    .await;
    assert_eq!(b["credit_community_id"], own["id"]);
    let pship = registered(
        &app,
        &clerk,
        with(
            &national_id("36010219900315002"),
            json!({ "kind": "partnership", "category": "graduate", "member_count": 3, "phone": null }),
        ),
    )
    .await;
    assert_eq!(pship["member_count"], 3);
    assert_eq!(pship["phone"], Value::Null);
    // A lower-case x is accepted and stored upper-case.
    let x_id = (1..1000)
        .map(|seq| national_id(&format!("36010219750607{seq:03}")))
        .find(|id| id.ends_with('X'))
        .unwrap();
    let b = registered(&app, &clerk, person(&x_id.to_lowercase())).await;
    assert_eq!(b["national_id"], x_id.as_str());
    let f = registered(&app, &clerk, firm.clone()).await;
    assert_eq!(f["enterprise_registration_no"], "91360102MA35L8XK2B");
    assert_eq!(f["national_id"], Value::Null);
    assert_eq!(f["birth_date"], Value::Null);
    assert_eq!(f["employees"], 40);
    assert_eq!(f["eligible_employees"], 15);
}

#[tokio::test]
async fn the_same_national_id_is_registered_once() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk = clerk_of(&app, "clerk.nc", &p.centre_nanchang).await;
    let clerk_jdz = clerk_of(&app, "clerk.jdz", &p.centre_jdz).await;
    let id = national_id("36010219800101001");
    let b = registered(&app, &clerk, person(&id)).await;
    let bid = b["id"].as_str().unwrap();

    // Again at the same centre: the conflict names the existing borrower.
    let mut again = person(&id);
    again["name"] = json!("王二");
    let v = assert_problem(
        register(&app, &clerk, again.clone()).await,
        409,
        "borrower_exists",
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains(bid), "{v}");
    // Another centre learns only that the person is registered somewhere.
    let v = assert_problem(
        register(&app, &clerk_jdz, again).await,
        409,
        "borrower_exists",
    )
    .await;
    assert!(!v["detail"].as_str().unwrap().contains(bid), "{v}");
    // Another sequence number is another person.
    registered(&app, &clerk_jdz, person(&national_id("36010219800101003"))).await;
    let (_, page) = app.get_json("/v1/borrowers", &app.admin_token).await;
    assert_eq!(ids(&page).len(), 2);
}

#[tokio::test]
async fn borrowers_are_visible_by_scope_and_masked_for_supervisors() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk_nc = clerk_of(&app, "clerk.nc", &p.centre_nanchang).await;
    let clerk_jdz = clerk_of(&app, "clerk.jdz", &p.centre_jdz).await;
    let sup_nc = app
        .user_token("sup.nc", "supervisor", json!({ "region_code": "360100" }))
        .await;
    let sup_jx = app
        .user_token("sup.jx", "supervisor", json!({ "region_code": "360000" }))
        .await;
    let bank = app
        .user_token("bank.a", "bank", json!({ "bank_id": p.bank_a }))
        .await;
    let id = national_id("36010219800101001");
    let nc = registered(&app, &clerk_nc, person(&id)).await;
    let jdz = registered(&app, &clerk_jdz, person(&national_id("36020219820202002"))).await;
    let nc_id = nc["id"].as_str().unwrap();
    let nc_path = format!("/v1/borrowers/{nc_id}");

    // Another centre's clerk and another city's supervisor: 404 (and nothing in their lists).
    let r = app
        .call(Method::GET, &nc_path, Some(&clerk_jdz), None)
        .await;
    assert_problem(r, 404, "not_found").await;
    let sup_jdz = app
        .user_token("sup.jdz", "supervisor", json!({ "region_code": "360200" }))
        .await;
    let r = app.call(Method::GET, &nc_path, Some(&sup_jdz), None).await;
    assert_problem(r, 404, "not_found").await;
    let (_, l) = app.get_json("/v1/borrowers", &clerk_jdz).await;
    assert_eq!(ids(&l), vec![jdz["id"].as_str().unwrap().to_owned()]);
    let (_, l) = app
        .get_json(&format!("/v1/borrowers?national_id={id}"), &clerk_jdz)
        .await;
    assert_eq!(ids(&l), Vec::<String>::new());

    // A bank does not read borrowers.
    let r = app
        .call(Method::GET, "/v1/borrowers", Some(&bank), None)
        .await;
    assert_problem(r, 403, "forbidden").await;
    let r = app.call(Method::GET, &nc_path, Some(&bank), None).await;
    assert_problem(r, 403, "forbidden").await;
    // Only clerks register.
    for token in [&sup_nc, &app.admin_token, &bank] {
        let r = register(&app, token, person(&national_id("36010219700101005"))).await;
        assert_problem(r, 403, "forbidden").await;
    }

    // The city's supervisor sees only the city's borrowers, with personal data masked.
    let (_, l) = app.get_json("/v1/borrowers", &sup_nc).await;
    assert_eq!(ids(&l), vec![nc_id.to_owned()]);
    let (status, masked) = app.get_json(&nc_path, &sup_nc).await;
    assert_eq!(status, 200);
    assert_eq!(l["items"][0], masked);
    assert_eq!(masked["name"], "王*");
    assert_eq!(masked["national_id"], "360102********0013");
    assert_eq!(masked["phone"], Value::Null);
    assert_eq!(masked["birth_date"], Value::Null);
    assert_eq!(masked["employment_certificate_no"], "**********2345");
    assert_eq!(masked["kind"], "individual");
    assert_eq!(masked["category"], "laid_off");
    let text = masked.to_string();
    assert!(
        !text.contains(&id[..14]) && !text.contains("13800138000"),
        "{text}"
    );
    // The province's supervisor sees both cities; the admin sees everything in full.
    let (_, l) = app.get_json("/v1/borrowers", &sup_jx).await;
    assert_eq!(ids(&l).len(), 2);
    let (_, full) = app.get_json(&nc_path, &app.admin_token).await;
    assert_eq!(full["national_id"], id.as_str());
    assert_eq!(full["phone"], "+8613800138000");
    assert_eq!(full["name"], "王建国");
    let (_, l) = app.get_json("/v1/borrowers", &app.admin_token).await;
    assert_eq!(ids(&l).len(), 2);
}

#[derive(QueryableByName)]
struct RowText {
    #[diesel(sql_type = Text)]
    text: String,
}

#[derive(QueryableByName)]
struct RowBytes {
    #[diesel(sql_type = Nullable<Binary>)]
    national_id_enc: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    national_id_hmac: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    phone_enc: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Text>)]
    national_id_masked: Option<String>,
}

/// Every run of 8 consecutive characters of `s`: no such part of an id may be stored.
fn windows(s: &str) -> Vec<&str> {
    (0..=s.len() - 8).map(|i| &s[i..i + 8]).collect()
}

#[tokio::test]
async fn a_database_dump_alone_reveals_no_national_id() {
    let app = spawn_app().await;
    let p = app.seed_province().await;
    let clerk = clerk_of(&app, "clerk.nc", &p.centre_nanchang).await;
    let id = national_id("36010219800101001");
    let masked = format!("{}********{}", &id[..6], &id[14..]);
    registered(&app, &clerk, person(&id)).await;

    let mut conn = app.db.connect().await;
    // Every column of the borrower and every audit event, as PostgreSQL prints them.
    let rows: Vec<RowText> = diesel::sql_query(
        "SELECT row_to_json(b)::text AS text FROM borrowers b \
         UNION ALL SELECT row_to_json(a)::text FROM audit_events a",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(rows.len() >= 2);
    let dump = rows
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(dump.contains(&masked), "the masked id is stored");
    assert!(!dump.contains(&id), "{dump}");
    assert!(!dump.contains(&id[..14]), "{dump}");
    assert!(!dump.contains("13800138000"), "{dump}");
    // The masked form is the only part of the id stored: without it, no 8 characters of the id
    // remain anywhere.
    let rest = dump.replace(&masked, "");
    for w in windows(&id) {
        assert!(!rest.contains(w), "{w} of the id is in the dump: {rest}");
    }

    // The encrypted and hashed columns, byte by byte.
    let rows: Vec<RowBytes> = diesel::sql_query(
        "SELECT national_id_enc, national_id_hmac, phone_enc, national_id_masked FROM borrowers",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.national_id_masked.as_deref(), Some(masked.as_str()));
    for (column, bytes) in [
        ("national_id_enc", &row.national_id_enc),
        ("national_id_hmac", &row.national_id_hmac),
        ("phone_enc", &row.phone_enc),
    ] {
        let bytes = bytes
            .as_deref()
            .unwrap_or_else(|| panic!("{column} is empty"));
        for w in windows(&id).into_iter().chain(["13800138"]) {
            assert!(
                !bytes.windows(8).any(|b| b == w.as_bytes()),
                "{column} holds {w} in clear"
            );
        }
    }
    assert_eq!(row.national_id_hmac.as_ref().map(Vec::len), Some(32));
}
