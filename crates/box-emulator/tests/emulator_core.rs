//! The emulator core (users, errors, routing) checked against Box's OpenAPI description,
//! and proof that the conformance check can fail.

use box_emulator::testing::{openapi_path, TestEmu};
use box_emulator::{Emulator, EmulatorConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn core_responses_conform() {
    let t = TestEmu::start().await;

    let (status, me) = t.get("/users/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["type"], "user");
    assert_eq!(me["id"], t.emulator().info.user_id.as_str());

    let every_field = "name,login,created_at,modified_at,language,timezone,space_amount,\
        space_used,max_upload_size,status,job_title,phone,address,avatar_url,role,\
        is_platform_access_only,external_app_user_id,enterprise";
    let (status, full) = t.get(&format!("/users/me?fields={every_field}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        full["enterprise"]["id"],
        t.emulator().info.enterprise_id.as_str()
    );
    assert_eq!(full["role"], "admin");

    let (status, user) = t
        .post_json(
            "/users",
            json!({"name": "App User", "is_platform_access_only": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["is_platform_access_only"], true);

    let (status, user) = t
        .post_json(
            "/users",
            json!({"name": "Managed", "login": "m@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, _) = t
        .get(&format!("/users/{}", user["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, list) = t.get("/users?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{list}");

    // A route that does not exist: Box's error JSON.
    let (status, body) = t.get("/no/such/thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["type"], "error");

    // A bad request body.
    let (status, body) = TestEmu::send(
        t.bad_req(Method::POST, &t.api("/users"))
            .json(&json!({"name": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // No token.
    let (status, body) = TestEmu::send(t.http.get(t.api("/users/me"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], 401);

    // A user that does not exist, and a malformed id.
    let (status, _) = t.get("/users/1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t.get("/users/abc").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    assert!(t.violations().is_empty(), "{:#?}", t.violations());
}

#[tokio::test]
async fn a_wrong_body_is_reported() {
    let config = EmulatorConfig {
        validate_responses: Some(openapi_path()),
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config).await.expect("starts");
    let validator = emu.shared.conformance.as_ref().expect("validation on");
    let found = validator.check_body(
        "GET",
        "/2.0/users/me",
        200,
        json!({"type": "user", "id": "1", "space_used": "lots"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("GET /users/me 200: /space_used: "),
        "{found:#?}"
    );
    assert_eq!(emu.conformance_violations(), found);

    // The same through `check`, as the middleware calls it: the body passes on unchanged.
    let response = axum::response::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"type":"user","id":17}"#))
        .expect("response");
    let response = validator
        .check(&axum::http::Method::GET, "/2.0/users/me", false, response)
        .await;
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(&bytes[..], br#"{"type":"user","id":17}"#);
    let v = emu.conformance_violations();
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v[1].starts_with("GET /users/me 200: /id: "), "{v:#?}");
    emu.stop().await;
}

/// Starts an emulator that validates against `spec` (a changed copy of Box's description).
async fn emulator_checking_against(spec: &serde_json::Value, dir: &std::path::Path) -> Emulator {
    let path = dir.join("openapi.json");
    std::fs::write(&path, spec.to_string()).expect("write description");
    Emulator::start(EmulatorConfig {
        validate_responses: Some(path),
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts")
}

fn box_description() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(openapi_path()).expect("read")).expect("json")
}

/// Through real HTTP, a request that breaks the description and a response that breaks it
/// are both caught: the emulator's `login` is a string, so a description that types it as
/// an integer must object, and a folder name must be a string.
#[tokio::test]
async fn a_bad_request_and_a_bad_response_are_caught_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = box_description();
    let mut changed = 0;
    for (name, schema) in spec["components"]["schemas"]
        .as_object_mut()
        .expect("schemas")
    {
        if !name.starts_with("User") {
            continue;
        }
        let mut stack = vec![schema];
        while let Some(v) = stack.pop() {
            if let Some(login) = v.pointer_mut("/properties/login") {
                *login = json!({"type": "integer"});
                changed += 1;
            }
            match v {
                serde_json::Value::Object(m) => stack.extend(m.values_mut()),
                serde_json::Value::Array(a) => stack.extend(a.iter_mut()),
                _ => {}
            }
        }
    }
    assert!(changed > 0, "the description has User schemas with a login");
    let emu = emulator_checking_against(&spec, dir.path()).await;
    let http = reqwest::Client::new();
    let me = http
        .get(format!("{}/2.0/users/me?fields=login", emu.base_url()))
        .bearer_auth(&emu.info.developer_token)
        .send()
        .await
        .expect("sent");
    assert_eq!(me.status(), StatusCode::OK);
    let created = http
        .post(format!("{}/2.0/folders", emu.base_url()))
        .bearer_auth(&emu.info.developer_token)
        .json(&json!({"name": 5, "parent": {"id": "0"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::BAD_REQUEST);
    let v = emu.conformance_violations();
    assert!(
        v.iter()
            .any(|l| l.starts_with("GET /users/me 200: /login: ")),
        "{v:#?}"
    );
    assert!(
        v.iter()
            .any(|l| l.starts_with("POST /folders request: (body)/name: ")),
        "{v:#?}"
    );
    assert_eq!(v.len(), 2, "{v:#?}");
    emu.stop().await;
}

/// A description whose operations no longer match the routes checks nothing: the emulator
/// then says the checks are off instead of passing quietly.
#[tokio::test]
async fn calls_that_no_check_saw_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = box_description();
    let paths = spec["paths"].as_object().expect("paths").clone();
    spec["paths"] = paths
        .into_iter()
        .map(|(k, v)| (format!("/elsewhere{k}"), v))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let emu = emulator_checking_against(&spec, dir.path()).await;
    assert_eq!(emu.conformance_gap(), None, "no calls yet");
    let status = reqwest::Client::new()
        .get(format!("{}/2.0/users/me", emu.base_url()))
        .bearer_auth(&emu.info.developer_token)
        .send()
        .await
        .expect("sent")
        .status();
    assert_eq!(status, StatusCode::OK);
    let gap = emu.conformance_gap().expect("the gap is named");
    assert!(gap.contains("no request was checked"), "{gap}");
    emu.stop().await;

    // With Box's description, the same call is checked both ways.
    let t = TestEmu::start().await;
    let before = t.coverage();
    let (status, _) = t.get("/users/me").await;
    assert_eq!(status, StatusCode::OK);
    let after = t.coverage();
    assert_eq!(after.api_calls, before.api_calls + 1);
    assert_eq!(after.requests_checked, before.requests_checked + 1);
    assert_eq!(after.responses_checked, before.responses_checked + 1);
    assert_eq!(t.emulator().conformance_gap(), None);
}
