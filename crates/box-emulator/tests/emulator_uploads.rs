//! The emulator's upload paths over real HTTP: multipart uploads of new files and versions
//! (field names, chunked bodies, part order, Content-MD5, clashes, If-Match, quota, locks),
//! the preflight check, and chunked upload sessions end to end with their error cases.
//! Stored content is checked in the emulator's blob store. The large single-request upload
//! has its own test binary (`emulator_uploads_large`).

use box_emulator::store::Lock;
use box_emulator::testing::uploads::*;
use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Multipart uploads

#[tokio::test]
async fn upload_with_field_name_file() {
    let t = TestEmu::start().await;
    let content = b"hello box".to_vec();
    let entry = t.upload_file("0", "hello.txt", &content).await;
    assert_eq!(entry["type"], "file");
    assert_eq!(entry["name"], "hello.txt");
    assert_eq!(entry["size"], 9);
    assert_eq!(entry["sha1"], sha1_hex(&content));
    assert_eq!(entry["etag"], "0");
    assert_eq!(entry["parent"]["id"], "0");
    assert_eq!(entry["file_version"]["sha1"], sha1_hex(&content));
    let id = entry["id"].as_str().unwrap();
    assert_eq!(stored_content(&t, id), content);
    let (event, source) = last_event(&t);
    assert_eq!(event, "ITEM_UPLOAD");
    assert_eq!(source["id"], id);
}

#[tokio::test]
async fn upload_with_field_name_contents_times_md5_and_fields() {
    let t = TestEmu::start().await;
    let folder = make_folder(&t, root(&t), "docs");
    let content = b"rclone names the part contents".to_vec();
    let sha1 = sha1_hex(&content);
    let attrs = json!({
        "name": "r.txt",
        "parent": {"id": folder},
        "content_created_at": "2020-01-02T03:04:05-08:00",
        "content_modified_at": "2021-06-07T08:09:10Z",
    });
    let (status, body) = upload_form(
        &t,
        "/files/content?fields=name,size,sha1,content_modified_at,content_created_at,parent",
        attrs,
        "contents",
        &content,
        &[("content-md5", sha1.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["total_count"], 1);
    let e = &body["entries"][0];
    assert_eq!(e["sha1"], sha1);
    assert_eq!(e["parent"]["id"], folder);
    assert_eq!(e["content_created_at"], "2020-01-02T11:04:05+00:00");
    assert_eq!(e["content_modified_at"], "2021-06-07T08:09:10+00:00");
    // fields= gives only the base fields and the named ones.
    assert!(e.get("created_at").is_none(), "{e}");
    assert!(e.get("modified_by").is_none(), "{e}");
    assert_eq!(stored_content(&t, e["id"].as_str().unwrap()), content);
}

#[tokio::test]
async fn upload_with_chunked_transfer_encoding() {
    let t = TestEmu::start().await;
    let p = Pattern::new();
    let chunks: Vec<Vec<u8>> = (0..3).map(|i| p.mib(i)[..300_000].to_vec()).collect();
    let whole: Vec<u8> = chunks.concat();
    let (status, body) = upload_streamed(
        &t,
        "/files/content",
        json!({"name": "streamed.bin", "parent": {"id": "0"}}),
        chunks.into_iter(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let e = &body["entries"][0];
    assert_eq!(e["size"], whole.len());
    assert_eq!(e["sha1"], sha1_hex(&whole));
    assert_eq!(stored_content(&t, e["id"].as_str().unwrap()), whole);
}

#[tokio::test]
async fn attributes_after_the_file_is_refused() {
    let t = TestEmu::start().await;
    let attrs = json!({"name": "late.txt", "parent": {"id": "0"}}).to_string();
    let body = raw_multipart(&[
        ("file", true, b"content first"),
        ("attributes", false, attrs.as_bytes()),
    ]);
    // Box's description puts `attributes` first: this breaks it on purpose.
    let (status, out) = TestEmu::send(
        t.bad_req(Method::POST, &t.upload("/files/content"))
            .header("content-type", multipart_type())
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["code"], "metadata_after_file_contents");
    assert_eq!(child_count(&t, root(&t)), 0);

    // No attributes at all is refused the same way.
    let body = raw_multipart(&[("file", true, b"content only")]);
    let (status, out) = TestEmu::send(
        t.bad_req(Method::POST, &t.upload("/files/content"))
            .header("content-type", multipart_type())
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["code"], "metadata_after_file_contents");
}

#[tokio::test]
async fn content_md5_mismatch_stores_nothing() {
    let t = TestEmu::start().await;
    let wrong = sha1_hex(b"something else");
    let (status, body) = upload_form(
        &t,
        "/files/content",
        json!({"name": "x.txt", "parent": {"id": "0"}}),
        "file",
        b"the real content",
        &[("content-md5", wrong.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_digest");
    assert_eq!(child_count(&t, root(&t)), 0);
    assert!(t.emulator().shared.store().blobs.is_empty());
}

#[tokio::test]
async fn bad_attributes_are_refused() {
    let t = TestEmu::start().await;
    // (attributes, status, code, whether they break Box's description: then marked)
    for (attrs, status, code, outside_description) in [
        (json!({"parent": {"id": "0"}}), 400, "bad_request", true),
        (json!({"name": "a.txt"}), 400, "bad_request", true),
        (
            json!({"name": "a/b", "parent": {"id": "0"}}),
            400,
            "item_name_invalid",
            false,
        ),
        (
            json!({"name": "x".repeat(256), "parent": {"id": "0"}}),
            400,
            "item_name_too_long",
            false,
        ),
        (
            json!({"name": "a.txt", "parent": {"id": "0"}, "content_modified_at": "yesterday"}),
            400,
            "bad_request",
            true,
        ),
        (
            json!({"name": "a.txt", "parent": {"id": "987654321"}}),
            404,
            "not_found",
            false,
        ),
    ] {
        let marked: &[(&str, &str)] = if outside_description {
            &[(box_emulator::conformance::EXPECT_INVALID, "1")]
        } else {
            &[]
        };
        let (s, body) =
            upload_form(&t, "/files/content", attrs.clone(), "file", b"x", marked).await;
        assert_eq!(s.as_u16(), status, "{attrs}: {body}");
        assert_eq!(body["code"], code, "{attrs}: {body}");
    }
    // Not JSON at all, and not multipart: both break Box's description on purpose.
    let body = raw_multipart(&[("attributes", false, b"{nope"), ("file", true, b"x")]);
    let (s, out) = TestEmu::send(
        t.bad_req(Method::POST, &t.upload("/files/content"))
            .header("content-type", multipart_type())
            .body(body),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{out}");
    let (s, _) = TestEmu::send(
        t.bad_req(Method::POST, &t.upload("/files/content"))
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(child_count(&t, root(&t)), 0);
}

#[tokio::test]
async fn name_clash_is_409_with_the_conflicting_file() {
    let t = TestEmu::start().await;
    let first = t.upload_file("0", "Report.pdf", b"one").await;
    // Case-insensitive, as Box.
    let (status, body) = upload_form(
        &t,
        "/files/content",
        json!({"name": "report.PDF", "parent": {"id": "0"}}),
        "file",
        b"two",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "item_name_in_use");
    let conflict = &body["context_info"]["conflicts"];
    assert_eq!(conflict["type"], "file");
    assert_eq!(conflict["id"], first["id"]);
    assert_eq!(conflict["sha1"], sha1_hex(b"one"));
    assert_eq!(child_count(&t, root(&t)), 1);

    // A folder of the same name clashes too.
    make_folder(&t, root(&t), "Photos");
    let (status, body) = upload_form(
        &t,
        "/files/content",
        json!({"name": "photos", "parent": {"id": "0"}}),
        "file",
        b"x",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["context_info"]["conflicts"]["type"], "folder");
}

#[tokio::test]
async fn new_version_with_if_match_and_rename() {
    let t = TestEmu::start().await;
    let first = t.upload_file("0", "notes.txt", b"version one").await;
    let id = first["id"].as_str().unwrap().to_string();
    let path = format!("/files/{id}/content");

    let (status, body) = upload_form(
        &t,
        &path,
        json!({}),
        "file",
        b"version two",
        &[("if-match", "\"5\"")],
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(stored_content(&t, &id), &b"version one"[..]);

    let (status, body) = upload_form(
        &t,
        &path,
        json!({"content_modified_at": "2022-02-02T02:02:02Z"}),
        "file",
        b"version two",
        &[("if-match", "0")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let e = &body["entries"][0];
    assert_eq!(e["id"], id);
    assert_eq!(e["sha1"], sha1_hex(b"version two"));
    assert_eq!(e["etag"], "1");
    assert_eq!(e["content_modified_at"], "2022-02-02T02:02:02+00:00");
    assert_eq!(stored_content(&t, &id), &b"version two"[..]);
    assert_eq!(last_event(&t).0, "ITEM_UPLOAD");

    // A new name with the version; Content-MD5 checked here too.
    let sha1 = sha1_hex(b"version three");
    let (status, body) = upload_form(
        &t,
        &format!("{path}?fields=name,version_number"),
        json!({"name": "notes-v3.txt"}),
        "contents",
        b"version three",
        &[("content-md5", sha1.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entries"][0]["name"], "notes-v3.txt");
    assert_eq!(body["entries"][0]["version_number"], "3");
    {
        let root = root(&t);
        let store = t.emulator().shared.store();
        let item = &store.items[&id.parse::<u64>().unwrap()];
        assert_eq!(item.versions.len(), 3);
        assert_eq!(item.versions[2].name, "notes-v3.txt");
        assert_eq!(store.child_by_name(root, "notes-v3.txt"), Some(item.id));
        assert_eq!(store.child_by_name(root, "notes.txt"), None);
    }

    // Renaming onto another item's name is a clash.
    t.upload_file("0", "other.txt", b"o").await;
    let (status, body) =
        upload_form(&t, &path, json!({"name": "OTHER.txt"}), "file", b"v4", &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Unknown and malformed ids.
    let (status, _) =
        upload_form(&t, "/files/123456789/content", json!({}), "file", b"x", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = upload_form(&t, "/files/abc/content", json!({}), "file", b"x", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn locked_file_refuses_versions_from_others() {
    let t = TestEmu::start().await;
    let f = t.upload_file("0", "locked.txt", b"v1").await;
    let id: u64 = f["id"].as_str().unwrap().parse().unwrap();
    {
        let mut store = t.emulator().shared.store();
        let lock_id = store.alloc_id();
        store.items.get_mut(&id).unwrap().lock = Some(Lock {
            id: lock_id,
            created_by: 424242,
            created_at: chrono::Utc::now(),
            expires_at: None,
            is_download_prevented: false,
        });
    }
    let (status, body) = upload_form(
        &t,
        &format!("/files/{id}/content"),
        json!({}),
        "file",
        b"v2",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "access_denied_item_locked");
    // A lock of one's own does not stand in the way.
    let admin = t.emulator().shared.store().admin;
    t.emulator()
        .shared
        .store()
        .items
        .get_mut(&id)
        .unwrap()
        .lock
        .as_mut()
        .unwrap()
        .created_by = admin;
    let (status, body) = upload_form(
        &t,
        &format!("/files/{id}/content"),
        json!({}),
        "file",
        b"v2",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn quota_is_enforced() {
    let t = TestEmu::start_with(EmulatorConfig {
        quota_bytes: 1000,
        ..Default::default()
    })
    .await;
    let f = t.upload_file("0", "a.bin", &[1u8; 600]).await;
    let (status, body) = upload_form(
        &t,
        "/files/content",
        json!({"name": "b.bin", "parent": {"id": "0"}}),
        "file",
        &[2u8; 600],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "storage_limit_exceeded");
    assert_eq!(child_count(&t, root(&t)), 1);
    // Old versions count: a second 600-byte version does not fit either.
    let (status, body) = upload_form(
        &t,
        &format!("/files/{}/content", f["id"].as_str().unwrap()),
        json!({}),
        "file",
        &[3u8; 600],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // What fits is accepted.
    let (status, body) = upload_form(
        &t,
        "/files/content",
        json!({"name": "c.bin", "parent": {"id": "0"}}),
        "file",
        &[4u8; 400],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

// ---------------------------------------------------------------------------------------
// Preflight

async fn preflight(t: &TestEmu, path: &str, body: Value) -> (StatusCode, Value) {
    TestEmu::send(t.req(Method::OPTIONS, &t.api(path)).json(&body)).await
}

#[tokio::test]
async fn preflight_checks_like_an_upload() {
    let t = TestEmu::start_with(EmulatorConfig {
        quota_bytes: 10_000,
        ..Default::default()
    })
    .await;
    for path in ["/files/content", "/files/content/"] {
        let (status, body) = preflight(
            &t,
            path,
            json!({"name": "new.txt", "size": 100, "parent": {"id": "0"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(
            body["upload_url"],
            format!("{}/api/2.0/files/content", t.base)
        );
        assert!(body["upload_token"].is_string());
    }
    let f = t.upload_file("0", "exists.txt", b"e").await;
    let (status, body) = preflight(
        &t,
        "/files/content/",
        json!({"name": "EXISTS.txt", "parent": {"id": "0"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "item_name_in_use");
    assert_eq!(body["context_info"]["conflicts"]["id"], f["id"]);
    assert_eq!(body["context_info"]["conflicts"]["type"], "file");

    let (status, body) = preflight(
        &t,
        "/files/content",
        json!({"name": "big.bin", "size": 20_000, "parent": {"id": "0"}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "storage_limit_exceeded");

    let (status, body) = preflight(
        &t,
        "/files/content",
        json!({"name": "bad/name", "parent": {"id": "0"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "item_name_invalid");

    let (status, _) = preflight(
        &t,
        "/files/content",
        json!({"name": "x", "parent": {"id": "55555555"}}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // For a new version.
    let path = format!("/files/{}/content", f["id"].as_str().unwrap());
    let (status, body) = preflight(&t, &path, json!({"size": 10})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["upload_url"], format!("{}/api/2.0{path}", t.base));
    let (status, _) = preflight(&t, &path, json!({"size": 20_000})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing was created by any of it.
    assert_eq!(child_count(&t, root(&t)), 1);
}

// ---------------------------------------------------------------------------------------
// Upload sessions

async fn create_session(t: &TestEmu, body: Value) -> (StatusCode, Value) {
    TestEmu::send(
        t.req(Method::POST, &t.upload("/files/upload_sessions"))
            .json(&body),
    )
    .await
}

async fn put_part(
    t: &TestEmu,
    url: &str,
    data: Vec<u8>,
    range: &str,
    digest: &str,
) -> (StatusCode, Value) {
    TestEmu::send(
        t.req(Method::PUT, url)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .header("digest", digest)
            .body(data),
    )
    .await
}

fn range(offset: usize, len: usize, total: usize) -> String {
    format!("bytes {}-{}/{}", offset, offset + len - 1, total)
}

/// Uploads every part of `content` in parallel and returns the parts in order.
async fn upload_all_parts(t: &TestEmu, session: &Value, content: &[u8]) -> Vec<Value> {
    let url = session["session_endpoints"]["upload_part"]
        .as_str()
        .unwrap()
        .to_string();
    let part_size = session["part_size"].as_u64().unwrap() as usize;
    let total = content.len();
    let mut tasks = Vec::new();
    for offset in (0..total).step_by(part_size) {
        let chunk = content[offset..(offset + part_size).min(total)].to_vec();
        let rb = t
            .req(Method::PUT, &url)
            .header("content-type", "application/octet-stream")
            .header("content-range", range(offset, chunk.len(), total))
            .header("digest", format!("sha={}", sha1_b64(&chunk)));
        tasks.push(tokio::spawn(
            async move { TestEmu::send(rb.body(chunk)).await },
        ));
    }
    let mut parts = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        parts.push(body["part"].clone());
    }
    parts
}

async fn commit(
    t: &TestEmu,
    session: &Value,
    parts: &[Value],
    digest: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let url = session["session_endpoints"]["commit"].as_str().unwrap();
    let mut rb = t.req(Method::POST, url).header("digest", digest).json(
        &json!({"parts": parts, "attributes": {"content_modified_at": "2023-03-03T03:03:03Z"}}),
    );
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers,
    )
}

const SESSION_SIZE: usize = 25_000_000;

#[tokio::test]
async fn session_end_to_end_with_parallel_parts() {
    let t = TestEmu::start().await;
    let folder = make_folder(&t, root(&t), "big");
    let content = Pattern::new().bytes(SESSION_SIZE);
    let (status, session) = create_session(
        &t,
        json!({"folder_id": folder, "file_size": SESSION_SIZE, "file_name": "big.bin"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["type"], "upload_session");
    assert_eq!(session["part_size"], 8_388_608);
    assert_eq!(session["total_parts"], 3);
    assert_eq!(session["num_parts_processed"], 0);
    let id = session["id"].as_str().unwrap();
    let base = format!("{}/api/2.0/files/upload_sessions/{id}", t.base);
    let ep = &session["session_endpoints"];
    assert_eq!(ep["upload_part"], base);
    assert_eq!(ep["status"], base);
    assert_eq!(ep["abort"], base);
    assert_eq!(ep["commit"], format!("{base}/commit"));
    assert_eq!(ep["list_parts"], format!("{base}/parts"));
    assert!(ep["log_event"].is_string());
    let expires =
        chrono::DateTime::parse_from_rfc3339(session["session_expires_at"].as_str().unwrap())
            .unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::days(6));

    let parts = upload_all_parts(&t, &session, &content).await;
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2]["offset"], 2 * 8_388_608);
    assert_eq!(parts[2]["size"], SESSION_SIZE - 2 * 8_388_608);
    assert_eq!(parts[0]["sha1"], sha1_hex(&content[..8_388_608]));

    let (status, st) = TestEmu::send(t.req(Method::GET, ep["status"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{st}");
    assert_eq!(st["num_parts_processed"], 3);

    let (status, body, _) = commit(
        &t,
        &session,
        &parts,
        &format!("sha={}", sha1_b64(&content)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let e = &body["entries"][0];
    assert_eq!(e["name"], "big.bin");
    assert_eq!(e["size"], SESSION_SIZE);
    assert_eq!(e["sha1"], sha1_hex(&content));
    assert_eq!(e["parent"]["id"], folder);
    assert_eq!(e["content_modified_at"], "2023-03-03T03:03:03+00:00");
    assert_eq!(stored_content(&t, e["id"].as_str().unwrap()), content);
    assert_eq!(last_event(&t).0, "ITEM_UPLOAD");
    {
        let store = t.emulator().shared.store();
        assert!(store.sessions.is_empty());
        assert!(store.session_data.is_empty());
    }
    // The session is gone.
    let (status, _) = TestEmu::send(t.req(Method::GET, ep["status"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn session_creation_errors() {
    let t = TestEmu::start_with(EmulatorConfig {
        quota_bytes: 30_000_000,
        ..Default::default()
    })
    .await;
    t.upload_file("0", "taken.bin", b"t").await;
    // (body, status, code); bodies lacking a field Box's description requires, or with a
    // string for a size, are marked as breaking it.
    for (body, status, code) in [
        (
            json!({"file_size": 30_000_000, "file_name": "a"}),
            400,
            "missing_destination",
        ),
        (
            json!({"folder_id": "abc", "file_size": 30_000_000, "file_name": "a"}),
            400,
            "invalid_folder_id",
        ),
        (
            json!({"folder_id": "0", "file_name": "a"}),
            400,
            "missing_file_size",
        ),
        (
            json!({"folder_id": "0", "file_size": "big", "file_name": "a"}),
            400,
            "invalid_file_size",
        ),
        (
            json!({"folder_id": "0", "file_size": -5, "file_name": "a"}),
            400,
            "invalid_file_size",
        ),
        (
            json!({"folder_id": "0", "file_size": 19_999_999, "file_name": "a"}),
            400,
            "file_size_too_small",
        ),
        (
            json!({"folder_id": "0", "file_size": 20_000_000}),
            400,
            "missing_file_name",
        ),
        (
            json!({"folder_id": "0", "file_size": 20_000_000, "file_name": "a/b"}),
            400,
            "item_name_invalid",
        ),
        (
            json!({"folder_id": "77777777", "file_size": 20_000_000, "file_name": "a"}),
            404,
            "not_found",
        ),
        (
            json!({"folder_id": "0", "file_size": 20_000_000, "file_name": "TAKEN.bin"}),
            409,
            "item_name_in_use",
        ),
        (
            json!({"folder_id": "0", "file_size": 40_000_000, "file_name": "a"}),
            403,
            "storage_limit_exceeded",
        ),
    ] {
        let outside_description = body.get("folder_id").is_none()
            || body.get("file_name").is_none()
            || !body["file_size"].is_number();
        let (s, out) = if outside_description {
            TestEmu::send(
                t.bad_req(Method::POST, &t.upload("/files/upload_sessions"))
                    .json(&body),
            )
            .await
        } else {
            create_session(&t, body.clone()).await
        };
        assert_eq!(s.as_u16(), status, "{body}: {out}");
        assert_eq!(out["code"], code, "{body}: {out}");
    }
    assert!(t.emulator().shared.store().sessions.is_empty());
}

#[tokio::test]
async fn part_errors_and_idempotent_resend() {
    let t = TestEmu::start().await;
    let content = Pattern::new().bytes(SESSION_SIZE);
    let (_, session) = create_session(
        &t,
        json!({"folder_id": "0", "file_size": SESSION_SIZE, "file_name": "p.bin"}),
    )
    .await;
    let url = session["session_endpoints"]["upload_part"]
        .as_str()
        .unwrap();
    let ps = 8_388_608usize;
    let first = content[..ps].to_vec();
    let digest = format!("sha={}", sha1_b64(&first));

    // Wrong digest.
    let wrong = format!("sha={}", sha1_b64(b"nope"));
    let (s, body) = put_part(&t, url, first.clone(), &range(0, ps, SESSION_SIZE), &wrong).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "digest_mismatch");
    // Missing digest (and content type): outside Box's description on purpose.
    let (s, body) = TestEmu::send(
        t.bad_req(Method::PUT, url)
            .header("content-range", range(0, ps, SESSION_SIZE))
            .body(first.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // Ranges that do not fit the session: 416.
    for r in [
        range(1, ps, SESSION_SIZE),     // not at a part boundary
        range(0, ps, SESSION_SIZE + 1), // wrong total
        range(0, ps - 1, SESSION_SIZE), // short part that is not the last
        range(2 * ps, SESSION_SIZE - 2 * ps - 1, SESSION_SIZE), // last part cut short
        range(3 * ps, 10, SESSION_SIZE), // beyond the end
        "bytes 0-10".to_string(),       // malformed
        "items 0-8388607/25000000".to_string(),
    ] {
        let (s, body) = put_part(&t, url, first.clone(), &r, &digest).await;
        assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE, "{r}: {body}");
    }
    // A body that is not as long as the range says.
    let (s, body) = put_part(
        &t,
        url,
        first[..100].to_vec(),
        &range(0, ps, SESSION_SIZE),
        &digest,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(t.emulator().shared.store().session_data.is_empty());

    // Upload, then again: the same part comes back.
    let (s, a) = put_part(&t, url, first.clone(), &range(0, ps, SESSION_SIZE), &digest).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["part"]["offset"], 0);
    assert_eq!(a["part"]["size"], ps);
    assert_eq!(a["part"]["sha1"], sha1_hex(&first));
    let (s, b) = put_part(&t, url, first.clone(), &range(0, ps, SESSION_SIZE), &digest).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(a, b);
    // Other bytes on the same range: 409.
    let other = content[ps..2 * ps].to_vec();
    let (s, body) = put_part(
        &t,
        url,
        other.clone(),
        &range(0, ps, SESSION_SIZE),
        &format!("SHA={}", sha1_b64(&other)),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(t.emulator().shared.store().session_data.len(), 1);

    // Someone else may not use the session.
    let other_user = {
        let mut store = t.emulator().shared.store();
        box_emulator::users::add_user(
            &mut store,
            "Other",
            "other@example.com",
            box_emulator::store::Role::User,
            -1,
            None,
        )
    };
    let (s, body) = TestEmu::send(
        t.req(Method::GET, url)
            .header("as-user", other_user.to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, _) = TestEmu::send(t.req(
        Method::GET,
        &format!("{}/api/2.0/files/upload_sessions/NOPE", t.base),
    ))
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn parts_listing_pages() {
    let t = TestEmu::start().await;
    let content = Pattern::new().bytes(SESSION_SIZE);
    let (_, session) = create_session(
        &t,
        json!({"folder_id": "0", "file_size": SESSION_SIZE, "file_name": "l.bin"}),
    )
    .await;
    let parts = upload_all_parts(&t, &session, &content).await;
    let list = session["session_endpoints"]["list_parts"].as_str().unwrap();
    let (s, body) = TestEmu::send(t.req(Method::GET, list)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["total_count"], 3);
    assert_eq!(body["entries"].as_array().unwrap(), &parts);
    let (s, body) = TestEmu::send(t.req(Method::GET, &format!("{list}?offset=1&limit=1"))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["offset"], 1);
    assert_eq!(body["limit"], 1);
    assert_eq!(body["entries"].as_array().unwrap(), &parts[1..2]);
    let (s, _) = TestEmu::send(t.req(Method::GET, &format!("{list}?offset=10001"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn commit_answers_202_while_parts_are_processed() {
    let t = TestEmu::start_with(EmulatorConfig {
        knobs: Knobs {
            commit_retry_polls: 2,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let content = Pattern::new().bytes(SESSION_SIZE);
    let (_, session) = create_session(
        &t,
        json!({"folder_id": "0", "file_size": SESSION_SIZE, "file_name": "c.bin"}),
    )
    .await;
    let parts = upload_all_parts(&t, &session, &content).await;
    let digest = format!("sha={}", sha1_b64(&content));
    for _ in 0..2 {
        let (s, body, headers) = commit(&t, &session, &parts, &digest, &[]).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(body, Value::Null);
    }
    assert_eq!(child_count(&t, root(&t)), 0);
    let (s, body, _) = commit(&t, &session, &parts, &digest, &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(
        stored_content(&t, body["entries"][0]["id"].as_str().unwrap()),
        content
    );
}

#[tokio::test]
async fn commit_errors() {
    let t = TestEmu::start().await;
    let content = Pattern::new().bytes(SESSION_SIZE);
    let (_, session) = create_session(
        &t,
        json!({"folder_id": "0", "file_size": SESSION_SIZE, "file_name": "e.bin"}),
    )
    .await;
    let digest = format!("sha={}", sha1_b64(&content));
    let url = session["session_endpoints"]["upload_part"]
        .as_str()
        .unwrap();
    let ps = 8_388_608usize;
    // Only the first part uploaded.
    let (_, p0) = put_part(
        &t,
        url,
        content[..ps].to_vec(),
        &range(0, ps, SESSION_SIZE),
        &format!("sha={}", sha1_b64(&content[..ps])),
    )
    .await;
    let (s, body, _) = commit(&t, &session, &[p0["part"].clone()], &digest, &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "parts_mismatch");

    let parts = upload_all_parts(&t, &session, &content).await;
    // Out of order, or one left out.
    let swapped = vec![parts[1].clone(), parts[0].clone(), parts[2].clone()];
    let (s, body, _) = commit(&t, &session, &swapped, &digest, &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "parts_mismatch");
    let (s, body, _) = commit(&t, &session, &parts[..2], &digest, &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let mut wrong_sha = parts.clone();
    wrong_sha[1]["sha1"] = json!(sha1_hex(b"x"));
    let (s, body, _) = commit(&t, &session, &wrong_sha, &digest, &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    // Whole-file digest wrong.
    let (s, body, _) = commit(
        &t,
        &session,
        &parts,
        &format!("sha={}", sha1_b64(b"not it")),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "digest_mismatch");
    // Missing digest, outside Box's description on purpose.
    let (s, _) = TestEmu::send(
        t.bad_req(
            Method::POST,
            session["session_endpoints"]["commit"].as_str().unwrap(),
        )
        .json(&json!({"parts": parts})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The name got taken meanwhile.
    let taken = t.upload_file("0", "e.bin", b"first").await;
    let (s, body, _) = commit(&t, &session, &parts, &digest, &[]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["context_info"]["conflicts"]["id"], taken["id"]);
    // Nothing was committed and the session is still there.
    assert_eq!(child_count(&t, root(&t)), 1);
    assert_eq!(t.emulator().shared.store().sessions.len(), 1);
}

#[tokio::test]
async fn version_session_with_if_match() {
    let t = TestEmu::start().await;
    let f = t.upload_file("0", "v.bin", b"small first version").await;
    let id = f["id"].as_str().unwrap();
    let content = Pattern::new().bytes(SESSION_SIZE);
    let (s, session) = TestEmu::send(
        t.req(
            Method::POST,
            &t.upload(&format!("/files/{id}/upload_sessions")),
        )
        .json(&json!({"file_size": SESSION_SIZE, "file_name": "v2.bin"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let parts = upload_all_parts(&t, &session, &content).await;
    let digest = format!("sha={}", sha1_b64(&content));
    let (s, body, _) = commit(&t, &session, &parts, &digest, &[("if-match", "7")]).await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{body}");
    let (s, body, _) = commit(&t, &session, &parts, &digest, &[("if-match", "0")]).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let e = &body["entries"][0];
    assert_eq!(e["id"], id);
    assert_eq!(e["name"], "v2.bin");
    assert_eq!(e["etag"], "1");
    assert_eq!(stored_content(&t, id), content);
    let store = t.emulator().shared.store();
    assert_eq!(store.items[&id.parse::<u64>().unwrap()].versions.len(), 2);
}

#[tokio::test]
async fn abort_removes_the_session() {
    let t = TestEmu::start().await;
    let content = Pattern::new().bytes(SESSION_SIZE);
    let (_, session) = create_session(
        &t,
        json!({"folder_id": "0", "file_size": SESSION_SIZE, "file_name": "a.bin"}),
    )
    .await;
    upload_all_parts(&t, &session, &content).await;
    let abort = session["session_endpoints"]["abort"].as_str().unwrap();
    let resp = t.req(Method::DELETE, abort).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    {
        let store = t.emulator().shared.store();
        assert!(store.sessions.is_empty());
        assert!(store.session_data.is_empty());
    }
    let (s, _) = TestEmu::send(t.req(Method::GET, abort)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = commit(
        &t,
        &session,
        &[],
        &format!("sha={}", sha1_b64(&content)),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_session_is_gone() {
    let t = TestEmu::start_with(EmulatorConfig {
        upload_session_ttl_secs: 2,
        ..Default::default()
    })
    .await;
    let content = Pattern::new().bytes(SESSION_SIZE);
    let (_, session) = create_session(
        &t,
        json!({"folder_id": "0", "file_size": SESSION_SIZE, "file_name": "x.bin"}),
    )
    .await;
    let url = session["session_endpoints"]["upload_part"]
        .as_str()
        .unwrap();
    let ps = 8_388_608usize;
    let first = content[..ps].to_vec();
    let digest = format!("sha={}", sha1_b64(&first));
    let (s, _) = put_part(&t, url, first.clone(), &range(0, ps, SESSION_SIZE), &digest).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let (s, body) = put_part(&t, url, first, &range(0, ps, SESSION_SIZE), &digest).await;
    assert_eq!(s, StatusCode::GONE, "{body}");
    assert_eq!(body["code"], "session_expired");
    let (s, body) = TestEmu::send(t.req(Method::GET, url)).await;
    assert_eq!(s, StatusCode::GONE, "{body}");
    assert!(t.emulator().shared.store().session_data.is_empty());
}

#[test]
fn part_size_grows_with_the_file() {
    use box_emulator::uploads::{part_size_for, MIN_SESSION_FILE_SIZE};
    const MIB: u64 = 1 << 20;
    assert_eq!(part_size_for(MIN_SESSION_FILE_SIZE), 8 * MIB);
    assert_eq!(part_size_for(160_000_000), 8 * MIB);
    assert_eq!(part_size_for(1_000_000_000), 8 * MIB);
    assert_eq!(part_size_for(1 << 30), 32 * MIB);
    assert_eq!(part_size_for(50_000_000_000), 64 * MIB);
    // Even the largest file stays far below Box's 10,000-part listing limit.
    assert!((53_687_091_200u64).div_ceil(part_size_for(53_687_091_200)) < 10_000);
}

#[tokio::test]
async fn create_file_is_an_upload_for_other_modules() {
    let t = TestEmu::start().await;
    let root = root(&t);
    let id = {
        let mut store = t.emulator().shared.store();
        let admin = store.admin;
        let id = box_emulator::uploads::create_file(
            &mut store,
            admin,
            root,
            "made.txt",
            bytes::Bytes::from_static(b"made in the store"),
        )
        .unwrap();
        // The same checks as an upload: the name is now taken.
        let again = box_emulator::uploads::create_file(
            &mut store,
            admin,
            root,
            "MADE.txt",
            bytes::Bytes::from_static(b"x"),
        );
        assert_eq!(again.unwrap_err().status.as_u16(), 409);
        id
    };
    assert_eq!(
        stored_content(&t, &id.to_string()),
        &b"made in the store"[..]
    );
    assert_eq!(last_event(&t).0, "ITEM_UPLOAD");
    assert_eq!(child_count(&t, root), 1);
}
