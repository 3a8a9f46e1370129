//! The emulator core (users, errors, routing) checked against Box's OpenAPI description,
//! and proof that the conformance check can fail.

mod common;

use boxfs::emulator::{Emulator, EmulatorConfig};
use common::{openapi_path, TestEmu};
use reqwest::StatusCode;
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
    let (status, body) = t.post_json("/users", json!({"name": 5})).await;
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
