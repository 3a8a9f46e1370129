//! Requests that real Box clients send and Box accepts, although Box's OpenAPI description
//! does not show them (found by running boxsdk and rclone against the emulator, see
//! `clients_boxsdk.rs` and `clients_rclone.rs`); checked here over plain HTTP so they hold
//! without those clients installed.

use box_emulator::testing::TestEmu;
use reqwest::StatusCode;
use serde_json::json;

/// boxsdk's `get_items(use_marker=True)` sends the Python bool as `usemarker=True`.
#[tokio::test]
async fn usemarker_is_case_insensitive() {
    let t = TestEmu::start().await;
    let d = t.mkdir("0", "d").await;
    for n in ["a", "b", "c"] {
        t.mkdir(&d, n).await;
    }
    let (s, page) = t
        .get(&format!("/folders/{d}/items?usemarker=True&limit=2"))
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let marker = page["next_marker"]
        .as_str()
        .expect("marker paging")
        .to_string();
    assert!(
        page.get("total_count").is_none(),
        "marker pages have no total_count: {page}"
    );
    let (_, rest) = t
        .get(&format!(
            "/folders/{d}/items?usemarker=True&limit=2&marker={marker}"
        ))
        .await;
    assert_eq!(rest["entries"][0]["name"], "c", "{rest}");
}

/// rclone's DirMove and boxsdk's `Folder.move(parent, name=)` move and rename a folder in one
/// PUT; anything else alongside a move is still refused.
#[tokio::test]
async fn folder_move_may_rename_in_the_same_request() {
    let t = TestEmu::start().await;
    let a = t.mkdir("0", "a").await;
    let b = t.mkdir("0", "b").await;
    let c = t.mkdir(&a, "c").await;
    let (s, r) = t
        .put_json(
            &format!("/folders/{c}"),
            json!({"parent": {"id": b}, "name": "c2"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["name"], "c2");
    assert_eq!(r["parent"]["id"], b.as_str());
    let (s, e) = t
        .put_json(
            &format!("/folders/{c}"),
            json!({"parent": {"id": a}, "name": "c3", "description": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["code"], "operation_limit_exceeded");
    // A clash with the new name in the new parent is a 409, and nothing moved.
    t.mkdir(&a, "taken").await;
    let (s, e) = t
        .put_json(
            &format!("/folders/{c}"),
            json!({"parent": {"id": a}, "name": "taken"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (_, now) = t.get(&format!("/folders/{c}")).await;
    assert_eq!(
        (now["name"].as_str(), now["parent"]["id"].as_str()),
        (Some("c2"), Some(b.as_str()))
    );
}

/// rclone sets a file's modification time with `PUT /files/{id}` `{"content_modified_at"}`.
#[tokio::test]
async fn file_update_sets_content_modified_at() {
    let t = TestEmu::start().await;
    let f = t.upload_file("0", "f.txt", b"x").await;
    let id = f["id"].as_str().unwrap();
    let (s, r) = t
        .put_json(
            &format!("/files/{id}?fields=content_modified_at,etag"),
            json!({"content_modified_at": "2020-01-02T03:04:05-08:00"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let got =
        chrono::DateTime::parse_from_rfc3339(r["content_modified_at"].as_str().unwrap()).unwrap();
    let want = chrono::DateTime::parse_from_rfc3339("2020-01-02T03:04:05-08:00").unwrap();
    assert_eq!(got, want);
    assert_ne!(r["etag"], f["etag"], "the change bumps the etag");
    // Not a date-time, on purpose.
    let (s, e) = t
        .bad_put_json(
            &format!("/files/{id}"),
            json!({"content_modified_at": "yesterday"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}

/// boxsdk's `File.promote_version`: an old version becomes current again, as a new version.
#[tokio::test]
async fn promote_an_old_version() {
    let t = TestEmu::start().await;
    let f = t.upload_file("0", "v.txt", b"one").await;
    let id = f["id"].as_str().unwrap().to_string();
    let first_version = f["file_version"]["id"].as_str().unwrap().to_string();
    let form = reqwest::multipart::Form::new()
        .text("attributes", "{}")
        .part("file", reqwest::multipart::Part::bytes(b"two!".to_vec()));
    let (s, r) = TestEmu::send(
        t.req(
            reqwest::Method::POST,
            &t.upload(&format!("/files/{id}/content")),
        )
        .multipart(form),
    )
    .await;
    // A new version is a 200 on Box, not a 201.
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, v) = t
        .post_json(
            &format!("/files/{id}/versions/current"),
            json!({"type": "file_version", "id": first_version}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["type"], "file_version");
    assert_ne!(v["id"], first_version.as_str(), "a new version");
    assert_eq!(v["size"], 3);
    let (_, file) = t.get(&format!("/files/{id}")).await;
    assert_eq!(file["size"], 3);
    assert_eq!(file["file_version"]["id"], v["id"]);
    let (_, versions) = t.get(&format!("/files/{id}/versions")).await;
    assert_eq!(versions["total_count"], 2, "{versions}");
    let (s, e) = t
        .post_json(
            &format!("/files/{id}/versions/current"),
            json!({"type": "file_version", "id": "123"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
}
