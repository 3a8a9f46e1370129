//! The emulator's file endpoints over loopback HTTP: reading, renaming, moving, locks,
//! deleting to the trash, restoring and purging, copies, versions, downloads with ranges,
//! and shared links. Test content is put straight into the in-process store.

use std::sync::MutexGuard;

use box_emulator::store::{Id, ItemKind, Lock, Store};
use box_emulator::testing::TestEmu;
use box_emulator::{files, shared_links};
use bytes::Bytes;
use chrono::Utc;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

fn store(t: &TestEmu) -> MutexGuard<'_, Store> {
    t.emulator().shared.store()
}

fn admin(t: &TestEmu) -> Id {
    t.emulator().info.user_id.parse().unwrap()
}

/// The admin's root folder (the API's "0").
fn root(t: &TestEmu) -> Id {
    let s = store(t);
    s.users[&admin(t)].root_folder
}

fn folder(t: &TestEmu, parent: Id, name: &str) -> Id {
    let mut s = store(t);
    let owner = s.items[&parent].owner;
    let item = s.new_item(ItemKind::Folder, name, parent, owner, owner, Utc::now());
    s.insert_item(item)
}

fn file(t: &TestEmu, parent: Id, name: &str, content: &[u8]) -> String {
    let mut s = store(t);
    let owner = s.items[&parent].owner;
    s.add_file(
        parent,
        name,
        owner,
        Bytes::copy_from_slice(content),
        Utc::now(),
    )
    .to_string()
}

/// A second user of the enterprise with a token; made an editor of `shared` if given.
fn other_user(t: &TestEmu, shared: Option<Id>) -> (Id, String) {
    t.other_user(shared)
}

fn sha1_hex(content: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(content))
}

/// Event types recorded about an item, oldest first.
fn events_of(t: &TestEmu, id: &str) -> Vec<String> {
    let s = store(t);
    s.events
        .iter()
        .filter(|e| e.source["id"] == id)
        .map(|e| e.event_type.clone())
        .collect()
}

/// Sends a request (with `token`, or none) and returns status, headers and raw body. With
/// `EMU_FILES_DUMP=<file>` every exchange is appended there, for checking the JSON bodies
/// against Box's OpenAPI description outside the test.
async fn raw(
    t: &TestEmu,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> (StatusCode, header::HeaderMap, Bytes) {
    let mut rb = t.http.request(method.clone(), url);
    if let Some(tok) = token {
        rb = rb.bearer_auth(tok);
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb
            .header(header::CONTENT_TYPE, "application/json")
            .body(b.to_vec());
    }
    let resp = rb.send().await.expect("request sent");
    let status = resp.status();
    let hdrs = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body read");
    if let Ok(path) = std::env::var("EMU_FILES_DUMP") {
        use std::io::Write;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let ctype = hdrs
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let line = json!({"method": method.as_str(), "url": url, "status": status.as_u16(),
                          "content_type": ctype, "body": body});
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
    (status, hdrs, bytes)
}

/// An API call (`/2.0` + path) with a JSON body; status and JSON (Null when none).
async fn call_as(
    t: &TestEmu,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let (status, _, body) = raw(t, method, &t.api(path), Some(token), bytes.as_deref(), &[]).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn call(t: &TestEmu, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    call_as(t, &t.token.clone(), method, path, body).await
}

async fn get(t: &TestEmu, path: &str) -> (StatusCode, Value) {
    call(t, Method::GET, path, None).await
}

async fn put(t: &TestEmu, path: &str, body: Value) -> (StatusCode, Value) {
    call(t, Method::PUT, path, Some(body)).await
}

async fn post(t: &TestEmu, path: &str, body: Value) -> (StatusCode, Value) {
    call(t, Method::POST, path, Some(body)).await
}

async fn delete(t: &TestEmu, path: &str) -> (StatusCode, Value) {
    call(t, Method::DELETE, path, None).await
}

/// A call that breaks Box's description on purpose: marked, so the check requires that it
/// does (and checks every other request as usual).
async fn bad_call(
    t: &TestEmu,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let tok = t.token.clone();
    let marked = [(box_emulator::conformance::EXPECT_INVALID, "1")];
    let (status, _, body) = raw(
        t,
        method,
        &t.api(path),
        Some(&tok),
        bytes.as_deref(),
        &marked,
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn bad_put(t: &TestEmu, path: &str, body: Value) -> (StatusCode, Value) {
    bad_call(t, Method::PUT, path, Some(body)).await
}

async fn bad_post(t: &TestEmu, path: &str, body: Value) -> (StatusCode, Value) {
    bad_call(t, Method::POST, path, Some(body)).await
}

async fn bad_get(t: &TestEmu, path: &str) -> (StatusCode, Value) {
    bad_call(t, Method::GET, path, None).await
}

/// Asserts a Box error: status and code.
fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "unexpected answer: {}", got.1);
    assert_eq!(got.1["type"], "error", "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert_eq!(got.1["status"], status, "{}", got.1);
}

/// Follows a download: the 302 from `/content`, then the Location fetched by a client
/// without any Authorization header (as the Python SDK does).
async fn download(
    t: &TestEmu,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, header::HeaderMap, Bytes) {
    let (status, hdrs, body) = raw(t, Method::GET, &t.api(path), Some(token), None, &[]).await;
    if status != StatusCode::FOUND {
        return (status, hdrs, body);
    }
    let location = hdrs[header::LOCATION].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/dl/", t.base)),
        "{location}"
    );
    raw(t, Method::GET, &location, None, None, headers).await
}

// ---------------------------------------------------------------------------------------
// GET /files/{id}

#[tokio::test]
async fn get_file_standard_fields_and_conditional_get() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let docs = folder(&t, r, "Docs");
    let id = file(&t, docs, "report.txt", b"hello world");

    let (status, body) = get(&t, &format!("/files/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "file");
    assert_eq!(body["id"], id);
    assert_eq!(body["name"], "report.txt");
    assert_eq!(body["size"], 11);
    assert_eq!(body["sha1"], sha1_hex(b"hello world"));
    assert_eq!(body["file_version"]["sha1"], body["sha1"]);
    assert_eq!(body["parent"]["id"], docs.to_string());
    assert_eq!(body["path_collection"]["total_count"], 2);
    assert_eq!(body["path_collection"]["entries"][0]["id"], "0");
    assert_eq!(body["item_status"], "active");
    assert!(body.get("lock").is_none(), "lock is a full-only field");
    assert_eq!(body.get("shared_link"), Some(&Value::Null));

    let (status, body) = get(&t, &format!("/files/{id}?fields=name,lock,extension")).await;
    assert_eq!(status, 200);
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(keys, ["etag", "extension", "id", "lock", "name", "type"]);
    assert_eq!(body["lock"], Value::Null);
    assert_eq!(body["extension"], "txt");

    let etag = body["etag"].as_str().unwrap().to_string();
    let url = t.api(&format!("/files/{id}"));
    let tok = t.token.clone();
    let (status, _, bytes) = raw(
        &t,
        Method::GET,
        &url,
        Some(&tok),
        None,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(bytes.is_empty());
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &url,
        Some(&tok),
        None,
        &[("if-none-match", "999")],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_ids_and_bad_input_get_box_errors() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let dir = folder(&t, r, "Dir");
    let id = file(&t, r, "a.txt", b"a");

    assert_error(&get(&t, "/files/abc").await, 405, "method_not_allowed");
    assert_error(&get(&t, "/files/12x").await, 405, "method_not_allowed");
    assert_error(&get(&t, "/files/123").await, 404, "not_found");
    // A folder's id is not a file.
    assert_error(&get(&t, &format!("/files/{dir}")).await, 404, "not_found");
    assert_error(
        &put(&t, "/files/abc", json!({"name": "x"})).await,
        405,
        "method_not_allowed",
    );
    assert_error(&delete(&t, "/files/999").await, 404, "not_found");
    assert_error(
        &post(&t, "/files/abc/copy", json!({"parent": {"id": "0"}})).await,
        405,
        "method_not_allowed",
    );
    assert_error(
        &get(&t, "/files/abc/content").await,
        405,
        "method_not_allowed",
    );
    assert_error(&get(&t, "/files/77/versions").await, 404, "not_found");

    // Malformed JSON and wrong types are 400s, and nothing changes. (Those outside Box's
    // description are marked so.)
    let url = t.api(&format!("/files/{id}"));
    let tok = t.token.clone();
    let marked = [(box_emulator::conformance::EXPECT_INVALID, "1")];
    let (status, _, body) = raw(
        &t,
        Method::PUT,
        &url,
        Some(&tok),
        Some(b"{not json"),
        &marked,
    )
    .await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "bad_request");
    assert_error(
        &bad_put(&t, &format!("/files/{id}"), json!(["a"])).await,
        400,
        "bad_request",
    );
    for (bad, outside_description) in [
        (json!({"name": 5}), true),
        (json!({"parent": "0"}), true),
        (json!({"parent": {"id": true}}), true),
        (json!({"parent": {}}), false),
        (json!({"description": ["x"]}), true),
        (json!({"description": "d".repeat(257)}), true),
        (json!({"tags": "x"}), true),
        (json!({"tags": [1]}), true),
        (json!({"lock": "yes"}), true),
        (json!({"lock": {"type": "unlock"}}), true),
        (
            json!({"lock": {"type": "lock", "expires_at": "tomorrow"}}),
            true,
        ),
        (
            json!({"lock": {"type": "lock", "expires_at": "2001-01-01T00:00:00Z"}}),
            false,
        ),
        (
            json!({"lock": {"type": "lock", "is_download_prevented": "yes"}}),
            true,
        ),
        (json!({"shared_link": "open"}), true),
        (json!({"shared_link": {"access": "everyone"}}), true),
    ] {
        let path = format!("/files/{id}");
        let got = if outside_description {
            bad_put(&t, &path, bad.clone()).await
        } else {
            put(&t, &path, bad.clone()).await
        };
        assert_eq!(got.0, 400, "{bad} → {}", got.1);
        assert_eq!(got.1["type"], "error");
    }
    let (_, body) = get(
        &t,
        &format!("/files/{id}?fields=name,lock,description,shared_link"),
    )
    .await;
    assert_eq!(body["name"], "a.txt");
    assert_eq!(body["lock"], Value::Null);
    assert_eq!(body["description"], "");
    assert_eq!(body.get("shared_link"), Some(&Value::Null));
    assert_eq!(events_of(&t, &id), ["ITEM_UPLOAD"]);

    // No token, a bad token.
    let (status, hdrs, _) = raw(&t, Method::GET, &url, None, None, &[]).await;
    assert_eq!(status, 401);
    assert!(hdrs.contains_key(header::WWW_AUTHENTICATE));
    let (status, _, _) = raw(&t, Method::GET, &url, Some("nope"), None, &[]).await;
    assert_eq!(status, 401);

    // Copy body checks (no parent, and a number for a name, break Box's description).
    assert_error(
        &bad_post(&t, &format!("/files/{id}/copy"), json!({})).await,
        400,
        "bad_request",
    );
    assert_error(
        &post(
            &t,
            &format!("/files/{id}/copy"),
            json!({"parent": {"id": "5"}}),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &post(
            &t,
            &format!("/files/{id}/copy"),
            json!({"parent": {"id": "0"}, "version": "123"}),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &bad_post(
            &t,
            &format!("/files/{id}/copy"),
            json!({"parent": {"id": "0"}, "name": 3}),
        )
        .await,
        400,
        "bad_request",
    );
}

// ---------------------------------------------------------------------------------------
// PUT /files/{id}: rename, move, description, If-Match

#[tokio::test]
async fn rename_move_and_name_rules() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let src = folder(&t, r, "Src");
    let dst = folder(&t, r, "Dst");
    let id = file(&t, src, "one.txt", b"1");
    file(&t, src, "Taken.TXT", b"2");
    let sub = folder(&t, dst, "Sub Folder");
    let path = format!("/files/{id}");

    let (status, body) = put(&t, &path, json!({"name": "renamed.txt"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "renamed.txt");
    assert_eq!(body["etag"], "1");
    assert_eq!(body["sequence_id"], "1");

    // Names clash case-insensitively, with files and folders alike.
    let got = put(&t, &path, json!({"name": "taken.txt"})).await;
    assert_error(&got, 409, "item_name_in_use");
    let conflict = &got.1["context_info"]["conflicts"][0];
    assert_eq!(conflict["type"], "file");
    assert_eq!(conflict["name"], "Taken.TXT");
    let got = put(
        &t,
        &path,
        json!({"name": "sub folder", "parent": {"id": dst.to_string()}}),
    )
    .await;
    assert_error(&got, 409, "item_name_in_use");
    assert_eq!(got.1["context_info"]["conflicts"][0]["id"], sub.to_string());
    // Changing only the case of its own name is fine.
    let (status, body) = put(&t, &path, json!({"name": "RENAMED.txt"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "RENAMED.txt");

    assert_error(
        &put(&t, &path, json!({"name": ""})).await,
        400,
        "item_name_invalid",
    );
    assert_error(
        &put(&t, &path, json!({"name": "a/b"})).await,
        400,
        "item_name_invalid",
    );
    assert_error(
        &put(&t, &path, json!({"name": "a\\b"})).await,
        400,
        "item_name_invalid",
    );
    assert_error(
        &put(&t, &path, json!({"name": "tab\there"})).await,
        400,
        "item_name_invalid",
    );
    assert_error(
        &put(&t, &path, json!({"name": "trailing "})).await,
        400,
        "item_name_invalid",
    );
    assert_error(
        &put(&t, &path, json!({"name": ".."})).await,
        400,
        "item_name_invalid",
    );
    assert_error(
        &put(&t, &path, json!({"name": "x".repeat(256)})).await,
        400,
        "item_name_too_long",
    );
    let (status, _) = put(&t, &path, json!({"name": "é".repeat(255)})).await;
    assert_eq!(status, 200, "255 characters are allowed");

    // A file may move and be renamed in one call.
    let (status, body) = put(
        &t,
        &path,
        json!({"name": "moved.txt", "parent": {"id": dst.to_string()}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "moved.txt");
    assert_eq!(body["parent"]["id"], dst.to_string());
    assert_eq!(body["path_collection"]["entries"][1]["name"], "Dst");
    // To the root by "0".
    let (status, body) = put(&t, &path, json!({"parent": {"id": "0"}})).await;
    assert_eq!(status, 200);
    assert_eq!(body["parent"]["id"], "0");
    assert_eq!(body["path_collection"]["total_count"], 1);
    // Into a missing folder, a file id, a malformed id.
    assert_error(
        &put(&t, &path, json!({"parent": {"id": "424242"}})).await,
        404,
        "not_found",
    );
    assert_error(
        &put(&t, &path, json!({"parent": {"id": id.clone()}})).await,
        404,
        "not_found",
    );
    assert_error(
        &put(&t, &path, json!({"parent": {"id": "x1"}})).await,
        405,
        "method_not_allowed",
    );
    // Into a trashed folder.
    {
        let mut s = store(&t);
        s.trash_item(src, admin(&t), Utc::now());
    }
    assert_error(
        &put(&t, &path, json!({"parent": {"id": src.to_string()}})).await,
        404,
        "trashed",
    );

    // Description and tags only: ITEM_MODIFY.
    let (status, body) = put(
        &t,
        &format!("{path}?fields=description,tags"),
        json!({"description": "quarterly", "tags": ["a", "b", "a"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["description"], "quarterly");
    assert_eq!(body["tags"], json!(["a", "b"]));
    assert!(body.get("name").is_none());

    let events = events_of(&t, &id);
    assert_eq!(
        events,
        [
            "ITEM_UPLOAD",
            "ITEM_RENAME",
            "ITEM_RENAME",
            "ITEM_RENAME",
            "ITEM_RENAME",
            "ITEM_MOVE",
            "ITEM_MOVE",
            "ITEM_MODIFY"
        ]
    );
    // Events carry the item as it became.
    let s = store(&t);
    let last = s
        .events
        .iter()
        .rev()
        .find(|e| e.source["id"] == id)
        .unwrap();
    assert_eq!(last.source["description"], "quarterly");
}

#[tokio::test]
async fn if_match_guards_put_and_delete() {
    let t = TestEmu::start().await;
    let id = file(&t, root(&t), "guarded.txt", b"x");
    let url = t.api(&format!("/files/{id}"));
    let tok = t.token.clone();

    let (status, _, body) = raw(
        &t,
        Method::PUT,
        &url,
        Some(&tok),
        Some(br#"{"name":"new.txt"}"#),
        &[("if-match", "7")],
    )
    .await;
    assert_eq!(status, 412);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "precondition_failed");
    let (status, _, _) = raw(
        &t,
        Method::PUT,
        &url,
        Some(&tok),
        Some(br#"{"name":"new.txt"}"#),
        &[("if-match", "0")],
    )
    .await;
    assert_eq!(status, 200);
    // The etag moved on: the old one no longer matches.
    let (status, _, _) = raw(
        &t,
        Method::DELETE,
        &url,
        Some(&tok),
        None,
        &[("if-match", "0")],
    )
    .await;
    assert_eq!(status, 412);
    let (status, _, body) = raw(
        &t,
        Method::DELETE,
        &url,
        Some(&tok),
        None,
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(status, 204);
    assert!(body.is_empty());
}

// ---------------------------------------------------------------------------------------
// Locks

#[tokio::test]
async fn locks_block_other_users() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let team = folder(&t, r, "Team");
    let elsewhere = folder(&t, team, "Elsewhere");
    let id = file(&t, team, "locked.bin", b"secret bytes");
    let (_other, other) = other_user(&t, Some(team));
    let path = format!("/files/{id}");

    // The collaborator can see and rename it before it is locked.
    let (status, _) = call_as(&t, &other, Method::GET, &path, None).await;
    assert_eq!(status, 200);

    let expires = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, body) = put(
        &t,
        &format!("{path}?fields=lock"),
        json!({"lock": {"access": "lock", "expires_at": expires, "is_download_prevented": true}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let lock = &body["lock"];
    assert_eq!(lock["type"], "lock");
    assert_eq!(lock["is_download_prevented"], true);
    assert_eq!(lock["created_by"]["id"], admin(&t).to_string());
    assert!(
        lock["expired_at"].is_string(),
        "the response says expired_at: {lock}"
    );
    assert!(lock.get("expires_at").is_none());

    // Another user may not rename, move, delete, change the lock or download.
    let got = call_as(
        &t,
        &other,
        Method::PUT,
        &path,
        Some(json!({"name": "mine.bin"})),
    )
    .await;
    assert_error(&got, 403, "access_denied_item_locked");
    let got = call_as(
        &t,
        &other,
        Method::PUT,
        &path,
        Some(json!({"parent": {"id": elsewhere.to_string()}})),
    )
    .await;
    assert_error(&got, 403, "access_denied_item_locked");
    let got = call_as(&t, &other, Method::PUT, &path, Some(json!({"lock": null}))).await;
    assert_error(&got, 403, "access_denied_item_locked");
    let got = call_as(
        &t,
        &other,
        Method::PUT,
        &path,
        Some(json!({"lock": {"type": "lock"}})),
    )
    .await;
    assert_error(&got, 403, "access_denied_item_locked");
    let got = call_as(&t, &other, Method::DELETE, &path, None).await;
    assert_error(&got, 403, "access_denied_item_locked");
    let (status, _, body) = download(&t, &other, &format!("{path}/content"), &[]).await;
    assert_eq!(status, 403);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "access_denied_item_locked");
    // A description is not guarded by the lock.
    let (status, _) = call_as(
        &t,
        &other,
        Method::PUT,
        &path,
        Some(json!({"description": "note"})),
    )
    .await;
    assert_eq!(status, 200);

    // The lock holder is not blocked.
    let (status, _, bytes) = download(&t, &t.token.clone(), &format!("{path}/content"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(&bytes[..], b"secret bytes");
    let (status, body) = put(&t, &path, json!({"name": "renamed.bin"})).await;
    assert_eq!(status, 200, "{body}");

    // Unlock with null; the other user is free again.
    let (status, body) = put(&t, &format!("{path}?fields=lock"), json!({"lock": null})).await;
    assert_eq!(status, 200);
    assert_eq!(body["lock"], Value::Null);
    let (status, _) = call_as(
        &t,
        &other,
        Method::PUT,
        &path,
        Some(json!({"name": "mine.bin"})),
    )
    .await;
    assert_eq!(status, 200);

    // {"type": "lock"} (the older SDK's form) without expiry or download prevention.
    let (status, body) = call_as(
        &t,
        &other,
        Method::PUT,
        &format!("{path}?fields=lock"),
        Some(json!({"lock": {"type": "lock"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lock"]["is_download_prevented"], false);
    assert_eq!(body["lock"]["expired_at"], Value::Null);
    assert_error(
        &put(&t, &path, json!({"name": "admin.bin"})).await,
        403,
        "access_denied_item_locked",
    );
    // Downloads are still allowed by that lock.
    let (status, _, _) = download(&t, &t.token.clone(), &format!("{path}/content"), &[]).await;
    assert_eq!(status, 200);

    // An expired lock counts as none.
    {
        let mut s = store(&t);
        let item = s.items.get_mut(&id.parse::<Id>().unwrap()).unwrap();
        item.lock = Some(Lock {
            id: 1,
            created_by: item.owner + 1_000_000,
            created_at: Utc::now() - chrono::Duration::hours(2),
            expires_at: Some(Utc::now() - chrono::Duration::hours(1)),
            is_download_prevented: true,
        });
    }
    let (status, body) = get(&t, &format!("{path}?fields=lock")).await;
    assert_eq!(status, 200);
    assert_eq!(body["lock"], Value::Null);
    let (status, _) = put(&t, &path, json!({"name": "free.bin"})).await;
    assert_eq!(status, 200);
    let (status, _, _) = download(&t, &other, &format!("{path}/content"), &[]).await;
    assert_eq!(status, 200);

    let events = events_of(&t, &id);
    let locks: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| e.starts_with("LOCK_"))
        .collect();
    assert_eq!(locks, ["LOCK_CREATE", "LOCK_DESTROY", "LOCK_CREATE"]);
}

// ---------------------------------------------------------------------------------------
// Trash

#[tokio::test]
async fn delete_restore_and_purge_a_file() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let dir = folder(&t, r, "Dir");
    let id = file(&t, dir, "gone.txt", b"bye");
    let path = format!("/files/{id}");

    assert_error(&get(&t, &format!("{path}/trash")).await, 404, "not_trashed");
    assert_error(
        &delete(&t, &format!("{path}/trash")).await,
        404,
        "not_trashed",
    );
    assert_error(&post(&t, &path, json!({})).await, 404, "not_trashed");

    let (status, _) = delete(&t, &path).await;
    assert_eq!(status, 204);
    assert_error(&get(&t, &path).await, 404, "trashed");
    assert_error(&put(&t, &path, json!({"name": "x"})).await, 404, "trashed");
    assert_error(&get(&t, &format!("{path}/content")).await, 404, "trashed");
    assert_error(&delete(&t, &path).await, 404, "trashed");
    // Its name is free again.
    let twin = file(&t, dir, "GONE.txt", b"twin");

    let (status, body) = get(&t, &format!("{path}/trash")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "file");
    assert_eq!(body["item_status"], "trashed");
    assert!(body["trashed_at"].is_string());
    assert!(body["purged_at"].is_string());
    assert_eq!(body["path_collection"]["entries"][0]["name"], "Trash");
    assert_eq!(body["parent"]["id"], dir.to_string());
    assert_eq!(body["shared_link"], Value::Null);

    let (status, body) = get(&t, "/folders/trash/items").await;
    assert_eq!(status, 200);
    assert_eq!(body["total_count"], 1);
    assert_eq!(body["entries"][0]["id"], id);

    // The name is taken now: 409, unless a new name is given.
    let got = post(&t, &path, json!({})).await;
    assert_error(&got, 409, "item_name_in_use");
    assert_eq!(got.1["context_info"]["conflicts"][0]["id"], twin);
    assert_error(
        &post(&t, &path, json!({"name": "bad/name"})).await,
        400,
        "item_name_invalid",
    );
    assert_error(
        &bad_post(&t, &path, json!({"name": 12})).await,
        400,
        "bad_request",
    );
    // The original folder still exists, so a given parent is not used.
    let (status, body) = post(
        &t,
        &path,
        json!({"name": "back.txt", "parent": {"id": "0"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "back.txt");
    assert_eq!(body["item_status"], "active");
    assert_eq!(body["parent"]["id"], dir.to_string());
    assert_eq!(body["trashed_at"], Value::Null);
    let (status, body) = get(&t, &path).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "back.txt");
    assert_eq!(
        events_of(&t, &id),
        ["ITEM_UPLOAD", "ITEM_TRASH", "ITEM_UNDELETE_VIA_TRASH"]
    );

    // Permanent delete.
    assert_eq!(delete(&t, &path).await.0, 204);
    assert_eq!(delete(&t, &format!("{path}/trash")).await.0, 204);
    assert_error(&get(&t, &path).await, 404, "not_found");
    assert_error(&get(&t, &format!("{path}/trash")).await, 404, "not_found");
    assert_error(&post(&t, &path, json!({})).await, 404, "not_found");
    assert!(!store(&t).items.contains_key(&id.parse::<Id>().unwrap()));
    let (_, body) = get(&t, "/folders/trash/items").await;
    assert_eq!(body["total_count"], 0);
}

#[tokio::test]
async fn restore_goes_elsewhere_when_the_old_folder_is_gone() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let dir = folder(&t, r, "Old");
    let target = folder(&t, r, "Target");
    let a = file(&t, dir, "a.txt", b"a");
    let b = file(&t, dir, "b.txt", b"b");
    assert_eq!(delete(&t, &format!("/files/{a}")).await.0, 204);
    assert_eq!(delete(&t, &format!("/files/{b}")).await.0, 204);
    {
        let mut s = store(&t);
        s.trash_item(dir, admin(&t), Utc::now());
    }
    // Old folder trashed: the given parent is used…
    let (status, body) = post(
        &t,
        &format!("/files/{a}"),
        json!({"parent": {"id": target.to_string()}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["parent"]["id"], target.to_string());
    // …a bad one is refused…
    assert_error(
        &post(
            &t,
            &format!("/files/{b}"),
            json!({"parent": {"id": "31337"}}),
        )
        .await,
        404,
        "not_found",
    );
    // …and without one the file goes to the owner's root.
    let (status, body) = post(&t, &format!("/files/{b}"), json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(body["parent"]["id"], "0");
}

/// Serves only `POST /2.0/folders/{folder_id}` with `files::restore_folder`, as the folders
/// module mounts it, on another loopback port over the same emulator state.
async fn restore_folder_server(t: &TestEmu) -> String {
    let shared = t.emulator().shared.clone();
    let app = axum::Router::new()
        .route(
            "/2.0/folders/{folder_id}",
            axum::routing::post(files::restore_folder),
        )
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn folder_trash_inspect_restore_and_purge() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let dir = folder(&t, r, "Project");
    let sub = folder(&t, dir, "Sub");
    let inner = file(&t, sub, "inner.txt", b"inner");
    {
        let mut s = store(&t);
        s.trash_item(dir, admin(&t), Utc::now());
    }
    // Only the folder that was itself trashed has a trash entry.
    let (status, body) = get(&t, &format!("/folders/{dir}/trash")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "folder");
    assert_eq!(body["name"], "Project");
    assert_eq!(body["item_status"], "trashed");
    assert_eq!(body["path_collection"]["entries"][0]["name"], "Trash");
    assert_error(
        &get(&t, &format!("/folders/{sub}/trash")).await,
        404,
        "not_trashed",
    );
    assert_error(
        &get(&t, &format!("/files/{inner}/trash")).await,
        404,
        "not_trashed",
    );
    assert_error(&get(&t, &format!("/files/{inner}")).await, 404, "trashed");
    let (status, body) = get(&t, &format!("/folders/{dir}/trash?fields=name")).await;
    assert_eq!(status, 200);
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(keys, ["etag", "id", "name", "type"]);
    assert_error(
        &get(&t, "/folders/abc/trash").await,
        405,
        "method_not_allowed",
    );
    // A folder id is not a file id.
    assert_error(
        &get(&t, &format!("/files/{dir}/trash")).await,
        404,
        "not_found",
    );

    let (_, body) = get(&t, "/folders/trash/items").await;
    assert_eq!(
        body["total_count"], 1,
        "contents of a trashed folder are not listed: {body}"
    );

    // Restore through the handler the folders module mounts.
    let base = restore_folder_server(&t).await;
    let tok = t.token.clone();
    let url = format!("{base}/2.0/folders/{dir}");
    let (status, _, body) = raw(&t, Method::POST, &url, Some(&tok), Some(b"{}"), &[]).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["type"], "folder");
    assert_eq!(body["item_status"], "active");
    assert_eq!(body["parent"]["id"], "0");
    assert_eq!(body["shared_link"], Value::Null);
    let (status, _) = get(&t, &format!("/files/{inner}")).await;
    assert_eq!(status, 200, "contents come back with the folder");
    assert!(events_of(&t, &dir.to_string()).contains(&"ITEM_UNDELETE_VIA_TRASH".to_string()));
    let (status, _, body) = raw(&t, Method::POST, &url, Some(&tok), Some(b"{}"), &[]).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = raw(
        &t,
        Method::POST,
        &format!("{base}/2.0/folders/x"),
        Some(&tok),
        Some(b"{}"),
        &[],
    )
    .await;
    assert_eq!(status, 405);

    // Restoring under a name that is taken meanwhile.
    {
        let mut s = store(&t);
        s.trash_item(dir, admin(&t), Utc::now());
    }
    folder(&t, r, "PROJECT");
    let (status, _, body) = raw(&t, Method::POST, &url, Some(&tok), Some(b"{}"), &[]).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 409);
    assert_eq!(body["code"], "item_name_in_use");

    // Purge takes the whole subtree.
    assert_eq!(delete(&t, &format!("/folders/{dir}/trash")).await.0, 204);
    let s = store(&t);
    assert!(!s.items.contains_key(&dir));
    assert!(!s.items.contains_key(&sub));
    assert!(!s.items.contains_key(&inner.parse::<Id>().unwrap()));
}

#[tokio::test]
async fn trash_listing_pages_and_sorts() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(file(&t, r, &format!("f{i}.txt"), &vec![b'x'; i + 1]));
    }
    let dir = folder(&t, r, "zz-folder");
    for id in &ids {
        assert_eq!(delete(&t, &format!("/files/{id}")).await.0, 204);
    }
    {
        let mut s = store(&t);
        s.trash_item(dir, admin(&t), Utc::now());
    }
    // Someone else's trash is not listed.
    let (_, other) = other_user(&t, None);
    let (status, body) = call_as(&t, &other, Method::GET, "/folders/trash/items", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["total_count"], 0);

    let (status, body) = get(&t, "/folders/trash/items?limit=3&offset=0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_count"], 8);
    assert_eq!(body["limit"], 3);
    assert_eq!(body["offset"], 0);
    let names: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zz-folder", "f0.txt", "f1.txt"], "folders first");
    let (_, body) = get(&t, "/folders/trash/items?limit=3&offset=6").await;
    let names: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["f5.txt", "f6.txt"]);
    let (_, body) = get(&t, "/folders/trash/items?sort=size&direction=DESC&limit=2").await;
    let names: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zz-folder", "f6.txt"]);
    assert_eq!(body["order"][1]["by"], "size");
    assert_eq!(body["order"][1]["direction"], "DESC");

    // Markers walk the whole list.
    let mut seen = Vec::new();
    let mut url = "/folders/trash/items?usemarker=true&limit=3".to_string();
    loop {
        let (status, body) = get(&t, &url).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.get("total_count").is_none(),
            "marker pages have no total_count"
        );
        for e in body["entries"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        match body["next_marker"].as_str() {
            Some(m) => url = format!("/folders/trash/items?usemarker=true&limit=3&marker={m}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[0], dir.to_string());

    // fields= gives the full representation of each entry.
    let (_, body) = get(
        &t,
        "/folders/trash/items?fields=name,trashed_at,size&limit=1&offset=1",
    )
    .await;
    let e = &body["entries"][0];
    assert_eq!(e["name"], "f0.txt");
    assert!(e["trashed_at"].is_string());
    assert_eq!(e["size"], 1);

    assert_error(
        &get(&t, "/folders/trash/items?usemarker=true&sort=name").await,
        400,
        "bad_request",
    );
    assert_error(
        &get(&t, "/folders/trash/items?offset=10001").await,
        400,
        "bad_request",
    );
    assert_error(
        &bad_get(&t, "/folders/trash/items?limit=ten").await,
        400,
        "bad_request",
    );
    assert_error(
        &bad_get(&t, "/folders/trash/items?sort=colour").await,
        400,
        "bad_request",
    );
    assert_error(
        &bad_get(&t, "/folders/trash/items?direction=UP").await,
        400,
        "bad_request",
    );
    assert_error(
        &get(&t, "/folders/trash/items?usemarker=true&marker=garbage!").await,
        400,
        "bad_request",
    );
    // Above the description's maximum, on purpose: Box caps it.
    let (_, body) = bad_get(&t, "/folders/trash/items?limit=5000").await;
    assert_eq!(body["limit"], 1000);
}

// ---------------------------------------------------------------------------------------
// Copy and versions

#[tokio::test]
async fn copy_files() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let dst = folder(&t, r, "Dest");
    let id = file(&t, r, "orig.txt", b"version one");
    {
        let mut s = store(&t);
        let iid = id.parse().unwrap();
        s.add_file_version(
            iid,
            Bytes::from_static(b"version two!"),
            admin(&t),
            Utc::now(),
        );
        s.items.get_mut(&iid).unwrap().description = "described".into();
    }
    let path = format!("/files/{id}/copy");

    let (status, copy) = post(&t, &path, json!({"parent": {"id": dst.to_string()}})).await;
    assert_eq!(status, 201, "{copy}");
    assert_ne!(copy["id"], id);
    assert_eq!(copy["name"], "orig.txt");
    assert_eq!(copy["size"], 12);
    assert_eq!(copy["description"], "described");
    assert_eq!(copy["parent"]["id"], dst.to_string());
    let (_, orig) = get(&t, &format!("/files/{id}")).await;
    assert_eq!(copy["sha1"], orig["sha1"]);
    assert_ne!(copy["file_version"]["id"], orig["file_version"]["id"]);
    let copy_id = copy["id"].as_str().unwrap().to_string();
    let (_, _, bytes) = download(
        &t,
        &t.token.clone(),
        &format!("/files/{copy_id}/content"),
        &[],
    )
    .await;
    assert_eq!(&bytes[..], b"version two!");
    assert_eq!(events_of(&t, &copy_id), ["ITEM_COPY", "ITEM_DOWNLOAD"]);
    // The copy has only one version.
    let (_, v) = get(&t, &format!("/files/{copy_id}/versions")).await;
    assert_eq!(v["total_count"], 0);

    // Same folder, same name: 409.
    let got = post(&t, &path, json!({"parent": {"id": "0"}})).await;
    assert_error(&got, 409, "item_name_in_use");
    assert_eq!(got.1["context_info"]["conflicts"][0]["id"], id);
    // Bad characters are dropped instead of refused.
    let (status, body) = post(
        &t,
        &path,
        json!({"parent": {"id": "0"}, "name": "a/b\\c\u{7}d.txt  "}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "abcd.txt");
    assert_error(
        &post(&t, &path, json!({"parent": {"id": "0"}, "name": "//"})).await,
        400,
        "item_name_invalid",
    );
    assert_error(
        &bad_post(
            &t,
            &path,
            json!({"parent": {"id": "0"}, "name": "n".repeat(256)}),
        )
        .await,
        400,
        "item_name_too_long",
    );

    // An older version by id.
    let old_version = {
        let s = store(&t);
        s.items[&id.parse::<Id>().unwrap()].versions[0]
            .id
            .to_string()
    };
    let (status, body) = post(
        &t,
        &format!("{path}?fields=name,size,sha1"),
        json!({"parent": {"id": "0"}, "name": "old.txt", "version": old_version}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["size"], 11);
    assert_eq!(body["sha1"], sha1_hex(b"version one"));

    // Out of space.
    {
        let mut s = store(&t);
        let me = admin(&t);
        let used = s.space_used(me);
        s.users.get_mut(&me).unwrap().space_amount = used as i64 + 5;
    }
    assert_error(
        &post(&t, &path, json!({"parent": {"id": "0"}, "name": "big.txt"})).await,
        403,
        "storage_limit_exceeded",
    );
    // Into the trash: refused.
    {
        let mut s = store(&t);
        s.trash_item(dst, admin(&t), Utc::now());
    }
    assert_error(
        &post(
            &t,
            &path,
            json!({"parent": {"id": dst.to_string()}, "name": "z.txt"}),
        )
        .await,
        404,
        "trashed",
    );
}

#[tokio::test]
async fn versions_list_previous_versions() {
    let t = TestEmu::start().await;
    let id = file(&t, root(&t), "v.txt", b"one");
    let (status, body) = get(&t, &format!("/files/{id}/versions")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_count"], 0);
    assert_eq!(body["entries"], json!([]));
    {
        let mut s = store(&t);
        let iid = id.parse().unwrap();
        s.add_file_version(iid, Bytes::from_static(b"two"), admin(&t), Utc::now());
        s.add_file_version(iid, Bytes::from_static(b"three"), admin(&t), Utc::now());
    }
    let (status, body) = get(&t, &format!("/files/{id}/versions")).await;
    assert_eq!(status, 200);
    assert_eq!(body["total_count"], 2);
    assert_eq!(body["offset"], 0);
    let e = body["entries"].as_array().unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["type"], "file_version");
    assert_eq!(e[0]["version_number"], "2");
    assert_eq!(e[0]["size"], 3);
    assert_eq!(e[0]["sha1"], sha1_hex(b"two"));
    assert_eq!(e[1]["version_number"], "1");
    assert_eq!(e[1]["sha1"], sha1_hex(b"one"));
    assert_eq!(e[1]["modified_by"]["id"], admin(&t).to_string());
    let (_, body) = get(
        &t,
        &format!("/files/{id}/versions?limit=1&offset=1&fields=sha1"),
    )
    .await;
    assert_eq!(body["entries"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["entries"][0],
        json!({"type": "file_version", "id": e[1]["id"], "sha1": sha1_hex(b"one")})
    );
    // An older version downloads by id.
    let vid = e[1]["id"].as_str().unwrap();
    let (status, _, bytes) = download(
        &t,
        &t.token.clone(),
        &format!("/files/{id}/content?version={vid}"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(&bytes[..], b"one");
    let (status, _, _) = download(
        &t,
        &t.token.clone(),
        &format!("/files/{id}/content?version=5"),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = download(
        &t,
        &t.token.clone(),
        &format!("/files/{id}/content?version=v1"),
        &[],
    )
    .await;
    assert_eq!(status, 405);
}

// ---------------------------------------------------------------------------------------
// Downloads

#[tokio::test]
async fn download_redirect_ranges_and_etag() {
    let t = TestEmu::start().await;
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let id = file(&t, root(&t), "data ü.bin", &content);
    let tok = t.token.clone();
    let path = format!("/files/{id}/content");

    let (status, hdrs, body) = raw(&t, Method::GET, &t.api(&path), Some(&tok), None, &[]).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(body.is_empty());
    let location = hdrs[header::LOCATION].to_str().unwrap().to_string();

    // The Location works with no Authorization at all.
    let (status, hdrs, bytes) = raw(&t, Method::GET, &location, None, None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(bytes.len(), content.len());
    assert!(bytes[..] == content[..]);
    assert_eq!(hdrs[header::ACCEPT_RANGES], "bytes");
    assert_eq!(
        hdrs[header::CONTENT_LENGTH],
        content.len().to_string().as_str()
    );
    assert_eq!(hdrs[header::CONTENT_TYPE], "application/octet-stream");
    let sha1 = sha1_hex(&content);
    assert_eq!(hdrs[header::ETAG], format!("\"{sha1}\"").as_str());
    let disposition = hdrs[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''data%20%C3%BC.bin"),
        "{disposition}"
    );

    // A client that follows redirects itself (and keeps no auth on the second hop).
    let follower = reqwest::Client::new();
    let resp = follower
        .get(t.api(&path))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), content.len());

    // Ranges.
    let (status, hdrs, bytes) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("range", "bytes=2-5")],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        hdrs[header::CONTENT_RANGE],
        format!("bytes 2-5/{}", content.len()).as_str()
    );
    assert_eq!(hdrs[header::CONTENT_LENGTH], "4");
    assert_eq!(&bytes[..], &content[2..6]);
    let (status, hdrs, bytes) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("range", "bytes=299990-")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(hdrs[header::CONTENT_RANGE], "bytes 299990-299999/300000");
    assert_eq!(&bytes[..], &content[299_990..]);
    let (status, hdrs, bytes) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("range", "bytes=-7")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(hdrs[header::CONTENT_RANGE], "bytes 299993-299999/300000");
    assert_eq!(&bytes[..], &content[299_993..]);
    // An end past the size is cut to the size.
    let (status, hdrs, bytes) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("range", "bytes=299999-400000")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(hdrs[header::CONTENT_RANGE], "bytes 299999-299999/300000");
    assert_eq!(bytes.len(), 1);
    let (status, hdrs, _) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("range", "bytes=300000-")],
    )
    .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(hdrs[header::CONTENT_RANGE], "bytes */300000");
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("range", "bytes=-0")],
    )
    .await;
    assert_eq!(status, 416);
    // Several ranges, or nonsense: the whole content.
    let (status, _, bytes) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("range", "bytes=0-1,5-6")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bytes.len(), content.len());
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("range", "pages=1")],
    )
    .await;
    assert_eq!(status, 200);

    // ETag revalidation.
    let quoted = format!("\"{sha1}\"");
    let (status, _, bytes) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("if-none-match", &quoted)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(bytes.is_empty());
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &location,
        None,
        None,
        &[("if-none-match", "\"other\"")],
    )
    .await;
    assert_eq!(status, 200);

    // HEAD gives the headers only.
    let (status, hdrs, bytes) = raw(&t, Method::HEAD, &location, None, None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(hdrs[header::CONTENT_LENGTH], "300000");
    assert!(bytes.is_empty());

    // Unknown or expired tokens.
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &format!("{}/dl/nosuchtoken", t.base),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 404);
    {
        let mut s = store(&t);
        for tok in s.download_tokens.values_mut() {
            tok.expires_at = Utc::now() - chrono::Duration::seconds(1);
        }
    }
    let (status, _, _) = raw(&t, Method::GET, &location, None, None, &[]).await;
    assert_eq!(status, 404);

    // Each download is an ITEM_DOWNLOAD event, which only the `all` stream carries.
    let downloads = events_of(&t, &id)
        .iter()
        .filter(|e| *e == "ITEM_DOWNLOAD")
        .count();
    assert_eq!(downloads, 2);
    assert!(!box_emulator::event_table::in_changes("ITEM_DOWNLOAD"));
}

#[tokio::test]
async fn download_of_an_item_trashed_after_the_redirect_fails() {
    let t = TestEmu::start().await;
    let id = file(&t, root(&t), "soon-gone.txt", b"abc");
    let tok = t.token.clone();
    let (status, hdrs, _) = raw(
        &t,
        Method::GET,
        &t.api(&format!("/files/{id}/content")),
        Some(&tok),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 302);
    let location = hdrs[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(delete(&t, &format!("/files/{id}")).await.0, 204);
    let (status, _, _) = raw(&t, Method::GET, &location, None, None, &[]).await;
    assert_eq!(status, 404);
    // Someone without access gets a 404 and no URL.
    let (_, other) = other_user(&t, None);
    let id2 = file(&t, root(&t), "private.txt", b"p");
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &t.api(&format!("/files/{id2}/content")),
        Some(&other),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 404);
}

// ---------------------------------------------------------------------------------------
// Shared links

#[tokio::test]
async fn shared_link_create_update_download_and_remove() {
    let t = TestEmu::start().await;
    let id = file(&t, root(&t), "notes.txt", b"shared content");
    let path = format!("/files/{id}?fields=shared_link");

    let (status, body) = put(&t, &path, json!({"shared_link": {}})).await;
    assert_eq!(status, 200, "{body}");
    let link = body["shared_link"].clone();
    assert_eq!(link["access"], "open");
    assert_eq!(link["effective_access"], "open");
    assert_eq!(link["effective_permission"], "can_download");
    assert_eq!(link["is_password_enabled"], false);
    assert_eq!(
        link["permissions"],
        json!({"can_download": true, "can_preview": true, "can_edit": false})
    );
    assert_eq!(link["download_count"], 0);
    let url = link["url"].as_str().unwrap().to_string();
    let download_url = link["download_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/s/", t.base)), "{url}");
    assert!(download_url.starts_with(&format!("{}/shared/static/", t.base)));
    assert!(download_url.ends_with(".txt"));
    let token = url.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        store(&t).shared_links.get(&token).map(|x| x.to_string()),
        Some(id.clone())
    );

    // Anyone can fetch an open link's bytes and page.
    let (status, hdrs, bytes) = raw(&t, Method::GET, &download_url, None, None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(&bytes[..], b"shared content");
    assert!(hdrs.contains_key(header::ETAG));
    let (status, _, bytes) = raw(
        &t,
        Method::GET,
        &download_url,
        None,
        None,
        &[("range", "bytes=7-")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(&bytes[..], b"content");
    let (status, hdrs, page) = raw(&t, Method::GET, &url, None, None, &[]).await;
    assert_eq!(status, 200);
    assert!(hdrs[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(String::from_utf8_lossy(&page).contains("notes.txt"));
    let (status, _, bytes) = raw(&t, Method::HEAD, &download_url, None, None, &[]).await;
    assert_eq!(status, 200);
    assert!(bytes.is_empty());
    let (_, body) = get(&t, &path).await;
    assert_eq!(
        body["shared_link"]["download_count"], 1,
        "neither HEAD nor ranges past 0 count"
    );

    // Update: the same URL, new settings.
    let (status, body) = put(
        &t,
        &path,
        json!({"shared_link": {"access": "company", "permissions": {"can_download": false}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["shared_link"]["url"], url);
    assert_eq!(body["shared_link"]["access"], "company");
    assert_eq!(body["shared_link"]["effective_permission"], "can_preview");
    let (status, _, _) = raw(&t, Method::GET, &download_url, None, None, &[]).await;
    assert_eq!(status, 403);
    let (status, _) = put(
        &t,
        &path,
        json!({"shared_link": {"permissions": {"can_download": true}}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = raw(&t, Method::GET, &download_url, None, None, &[]).await;
    assert_eq!(status, 403, "company links need a signed-in user");
    let (_, other) = other_user(&t, None);
    let (status, _, bytes) = raw(&t, Method::GET, &download_url, Some(&other), None, &[]).await;
    assert_eq!(status, 200, "a user of the same enterprise may");
    assert_eq!(&bytes[..], b"shared content");
    let (status, body) = put(
        &t,
        &path,
        json!({"shared_link": {"access": "collaborators"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["shared_link"]["access"], "collaborators");
    let (status, _, _) = raw(&t, Method::GET, &download_url, Some(&other), None, &[]).await;
    assert_eq!(status, 403);
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &download_url,
        Some(&t.token.clone()),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200, "the owner always may");

    // can_edit needs can_download and a file.
    let (status, body) = put(&t, &path, json!({"shared_link": {"access": "open", "permissions": {"can_download": true, "can_edit": true}}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["shared_link"]["effective_permission"], "can_edit");
    assert_eq!(body["shared_link"]["permissions"]["can_edit"], true);
    let (status, body) = put(
        &t,
        &path,
        json!({"shared_link": {"permissions": {"can_download": false}}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["shared_link"]["permissions"]["can_edit"], false,
        "edit needs download"
    );

    // Remove it.
    let (status, body) = put(&t, &path, json!({"shared_link": null})).await;
    assert_eq!(status, 200);
    // Present and null: the Python SDK's remove_shared_link() checks exactly that.
    assert_eq!(body.get("shared_link"), Some(&Value::Null));
    assert!(!store(&t).shared_links.contains_key(&token));
    let (status, _, _) = raw(&t, Method::GET, &download_url, None, None, &[]).await;
    assert_eq!(status, 404);
    let (status, _, _) = raw(&t, Method::GET, &url, None, None, &[]).await;
    assert_eq!(status, 404);
    // Removing nothing is no change.
    let (status, _) = put(&t, &path, json!({"shared_link": null})).await;
    assert_eq!(status, 200);

    let events: Vec<String> = events_of(&t, &id)
        .into_iter()
        .filter(|e| e.starts_with("ITEM_SHARED"))
        .collect();
    assert_eq!(
        events,
        [
            "ITEM_SHARED_CREATE",
            "ITEM_SHARED_UPDATE",
            "ITEM_SHARED_UPDATE",
            "ITEM_SHARED_UPDATE",
            "ITEM_SHARED_UPDATE",
            "ITEM_SHARED_UPDATE",
            "ITEM_SHARED_UNSHARE"
        ]
    );
    // A new link gets a new URL.
    let (_, body) = put(&t, &path, json!({"shared_link": {"access": "open"}})).await;
    assert_ne!(body["shared_link"]["url"], url);
}

#[tokio::test]
async fn shared_link_rules_are_enforced() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let id = file(&t, r, "rules.txt", b"r");
    let id2 = file(&t, r, "other.txt", b"o");
    let path = format!("/files/{id}?fields=shared_link");
    let future = (Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let past = (Utc::now() - chrono::Duration::days(3)).to_rfc3339();

    for bad in [
        json!({"access": "public"}),
        json!({"access": 1}),
        json!({"password": "short1"}),
        json!({"password": "alllowercase"}),
        json!({"password": 12345678}),
        json!({"access": "company", "password": "Passw0rd!"}),
        json!({"unshared_at": past}),
        json!({"unshared_at": "soon"}),
        json!({"vanity_name": "too-short"}),
        json!({"vanity_name": "has spaces in it"}),
        json!({"permissions": {"can_download": "yes"}}),
        json!({"permissions": {"can_preview": false}}),
        json!({"permissions": true}),
        json!({"access": "collaborators", "permissions": {"can_download": true}}),
        json!({"permissions": {"can_download": false, "can_edit": true}}),
    ] {
        let got = put(&t, &path, json!({"shared_link": bad.clone()})).await;
        assert_eq!(got.0, 400, "{bad} → {}", got.1);
        assert_eq!(got.1["type"], "error");
    }
    assert!(store(&t).items[&id.parse::<Id>().unwrap()]
        .shared_link
        .is_none());
    assert!(events_of(&t, &id)
        .iter()
        .all(|e| !e.starts_with("ITEM_SHARED")));

    // A refused shared link (an access level outside Box's description) refuses the
    // whole PUT.
    let got = bad_put(
        &t,
        &path,
        json!({"name": "changed.txt", "shared_link": {"access": "nobody"}}),
    )
    .await;
    assert_eq!(got.0, 400);
    let (_, body) = get(&t, &format!("/files/{id}")).await;
    assert_eq!(body["name"], "rules.txt");

    let (status, body) = put(
        &t,
        &path,
        json!({"shared_link": {"password": "Passw0rd!", "unshared_at": future, "vanity_name": "rules-document-1"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let link = &body["shared_link"];
    assert_eq!(link["is_password_enabled"], true);
    assert!(
        link.get("password").is_none(),
        "the password is never shown"
    );
    assert!(link["unshared_at"].is_string());
    assert_eq!(link["vanity_name"], "rules-document-1");
    assert_eq!(link["vanity_url"], format!("{}/v/rules-document-1", t.base));
    let (status, _, page) = raw(
        &t,
        Method::GET,
        link["vanity_url"].as_str().unwrap(),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("password"));
    // The vanity name is taken for other items.
    let got = put(
        &t,
        &format!("/files/{id2}"),
        json!({"shared_link": {"vanity_name": "RULES-document-1"}}),
    )
    .await;
    assert_eq!(got.0, 400, "{}", got.1);
    // A password-protected link's download URL needs more than the URL.
    let download_url = link["download_url"].as_str().unwrap().to_string();
    let (status, _, _) = raw(&t, Method::GET, &download_url, None, None, &[]).await;
    assert_eq!(status, 403);
    // Narrowing the access drops the password.
    let (_, body) = put(&t, &path, json!({"shared_link": {"access": "company"}})).await;
    assert_eq!(body["shared_link"]["is_password_enabled"], false);
    // Password null removes it; unshared_at null too.
    let (_, body) = put(
        &t,
        &path,
        json!({"shared_link": {"access": "open", "password": "Another-pass"}}),
    )
    .await;
    assert_eq!(body["shared_link"]["is_password_enabled"], true);
    let (_, body) = put(
        &t,
        &path,
        json!({"shared_link": {"password": null, "unshared_at": null, "vanity_name": null}}),
    )
    .await;
    assert_eq!(body["shared_link"]["is_password_enabled"], false);
    assert_eq!(body["shared_link"]["unshared_at"], Value::Null);
    assert_eq!(body["shared_link"]["vanity_url"], Value::Null);

    // Folders: no can_edit (checked on the store, as folder PUT lives elsewhere).
    let dir = folder(&t, r, "Shared Dir");
    {
        let mut s = store(&t);
        let me = admin(&t);
        let err = shared_links::apply(
            &mut s,
            dir,
            &json!({"permissions": {"can_edit": true}}),
            me,
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!(err.status.as_u16(), 400);
        assert!(s.items[&dir].shared_link.is_none());
        shared_links::apply(&mut s, dir, &json!({}), me, Utc::now()).unwrap();
        let link = s.items[&dir].shared_link.clone().unwrap();
        assert!(s.shared_links.contains_key(&link.token));
        let json = box_emulator::repr::shared_link_json(&s, &s.items[&dir], &link);
        assert_eq!(json["download_url"], Value::Null);
    }
    // An expired link is gone: a new one gets created.
    {
        let mut s = store(&t);
        let item = s.items.get_mut(&id.parse::<Id>().unwrap()).unwrap();
        item.shared_link.as_mut().unwrap().unshared_at =
            Some(Utc::now() - chrono::Duration::seconds(5));
    }
    let old_url = body["shared_link"]["url"].as_str().unwrap().to_string();
    let (status, _, _) = raw(&t, Method::GET, &old_url, None, None, &[]).await;
    assert_eq!(status, 404);
    let (_, body) = get(&t, &path).await;
    assert_eq!(
        body["shared_link"],
        Value::Null,
        "an expired link is shown as none"
    );
    let (_, body) = put(&t, &path, json!({"shared_link": {}})).await;
    assert_ne!(body["shared_link"]["url"], old_url);
    assert!(
        events_of(&t, &id)
            .iter()
            .filter(|e| *e == "ITEM_SHARED_CREATE")
            .count()
            == 2
    );
}

#[tokio::test]
async fn shared_items_and_the_boxapi_header() {
    let t = TestEmu::start().await;
    let r = root(&t);
    let dir = folder(&t, r, "Public");
    let inner = file(&t, dir, "inside.txt", b"inside");
    let id = file(&t, r, "pw.txt", b"pw");
    let (_, other) = other_user(&t, None);

    // The other user cannot see the file directly.
    assert_error(
        &call_as(&t, &other, Method::GET, &format!("/files/{id}"), None).await,
        404,
        "not_found",
    );

    let (_, body) = put(
        &t,
        &format!("/files/{id}?fields=shared_link"),
        json!({"shared_link": {"access": "open", "password": "Secret-123"}}),
    )
    .await;
    let url = body["shared_link"]["url"].as_str().unwrap().to_string();
    let shared = t.api("/shared_items");

    let (status, _, body) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[("boxapi", &format!("shared_link={url}"))],
    )
    .await;
    assert_eq!(status, 403);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "incorrect_shared_item_password");
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[(
            "boxapi",
            &format!("shared_link={url}&shared_link_password=wrong"),
        )],
    )
    .await;
    assert_eq!(status, 403);
    let header_value = format!("shared_link={url}&shared_link_password=Secret-123");
    let (status, _, body) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[("boxapi", &header_value)],
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["type"], "file");
    // The URL-encoded password works as well.
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[(
            "boxapi",
            &format!("shared_link={url}&shared_link_password=Secret%2D123"),
        )],
    )
    .await;
    assert_eq!(status, 200);
    // fields= and If-None-Match.
    let (status, _, body) = raw(
        &t,
        Method::GET,
        &format!("{shared}?fields=name"),
        Some(&other),
        None,
        &[("boxapi", &header_value)],
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["name"], "pw.txt");
    assert!(body.get("size").is_none());
    let etag = body["etag"].as_str().unwrap().to_string();
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[("boxapi", &header_value), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, 304);

    // The header opens the file's own endpoints too.
    let (status, _, body) = raw(
        &t,
        Method::GET,
        &t.api(&format!("/files/{id}")),
        Some(&other),
        None,
        &[("boxapi", &header_value)],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, hdrs, _) = raw(
        &t,
        Method::GET,
        &t.api(&format!("/files/{id}/content")),
        Some(&other),
        None,
        &[("boxapi", &header_value)],
    )
    .await;
    assert_eq!(status, 302);
    let (status, _, bytes) = raw(
        &t,
        Method::GET,
        hdrs[header::LOCATION].to_str().unwrap(),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(&bytes[..], b"pw");
    // But not other files.
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &t.api(&format!("/files/{inner}")),
        Some(&other),
        None,
        &[("boxapi", &header_value)],
    )
    .await;
    assert_eq!(status, 404);

    // A folder's link reaches the files under it.
    {
        let mut s = store(&t);
        shared_links::apply(
            &mut s,
            dir,
            &json!({"access": "open"}),
            admin(&t),
            Utc::now(),
        )
        .unwrap();
    }
    let folder_url = {
        let s = store(&t);
        let link = s.items[&dir].shared_link.clone().unwrap();
        format!("{}/s/{}", t.base, link.token)
    };
    let fh = format!("shared_link={folder_url}");
    let (status, _, body) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[("boxapi", &fh)],
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["type"], "folder");
    assert_eq!(body["id"], dir.to_string());
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &t.api(&format!("/files/{inner}")),
        Some(&other),
        None,
        &[("boxapi", &fh)],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &t.api(&format!("/files/{id}")),
        Some(&other),
        None,
        &[("boxapi", &fh)],
    )
    .await;
    assert_eq!(status, 404);

    // Errors: no header (which Box's description requires: marked), a bad header, an
    // unknown link, no token.
    let marked = [(box_emulator::conformance::EXPECT_INVALID, "1")];
    let (status, _, body) = raw(&t, Method::GET, &shared, Some(&other), None, &marked).await;
    assert_error(
        &(status, serde_json::from_slice(&body).unwrap_or(Value::Null)),
        400,
        "bad_request",
    );
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[("boxapi", "nonsense")],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[("boxapi", &format!("shared_link={}/s/doesnotexist", t.base))],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = raw(&t, Method::GET, &shared, None, None, &[("boxapi", &fh)]).await;
    assert_eq!(status, 401);
    // A link to a trashed item is dead.
    assert_eq!(delete(&t, &format!("/files/{id}")).await.0, 204);
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[("boxapi", &header_value)],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = raw(&t, Method::GET, &url, None, None, &[]).await;
    assert_eq!(status, 404);
    // Restored, the link works again, though the restore answer shows none.
    let (status, body) = post(&t, &format!("/files/{id}"), json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(body["shared_link"], Value::Null);
    let (status, _, _) = raw(
        &t,
        Method::GET,
        &shared,
        Some(&other),
        None,
        &[("boxapi", &header_value)],
    )
    .await;
    assert_eq!(status, 200);
}

#[test]
fn range_parsing() {
    use files::{parse_range, RangeOutcome::*};
    assert_eq!(parse_range("bytes=0-0", 10), Partial(0, 0));
    assert_eq!(parse_range("bytes=0-", 10), Partial(0, 9));
    assert_eq!(parse_range("bytes=-3", 10), Partial(7, 9));
    assert_eq!(parse_range("bytes=-30", 10), Partial(0, 9));
    assert_eq!(parse_range("bytes=5-100", 10), Partial(5, 9));
    assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
    assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
    assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
    assert_eq!(parse_range("bytes=5-4", 10), Full);
    assert_eq!(parse_range("bytes=a-b", 10), Full);
    assert_eq!(parse_range("bytes=0-1,3-4", 10), Full);
    assert_eq!(parse_range("items=0-1", 10), Full);
}
