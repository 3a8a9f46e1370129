//! Folder endpoints of the emulator over loopback HTTP: create, get, listings with offset
//! and marker paging, rename/move rules, delete to trash, copy, and bad input.

use box_emulator::testing::TestEmu;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn create_get_and_root() {
    let t = TestEmu::start().await;
    let (s, root) = t.get("/folders/0").await;
    assert_eq!(s, StatusCode::OK, "{root}");
    assert_eq!(root["id"], "0");
    assert_eq!(root["name"], "All Files");
    assert_eq!(root["item_collection"]["total_count"], 0);

    let a = t.mkdir("0", "Alpha").await;
    let (s, folder) = t.get(&format!("/folders/{a}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(folder["name"], "Alpha");
    assert_eq!(folder["parent"]["id"], "0");
    assert_eq!(folder["path_collection"]["entries"][0]["id"], "0");
    assert_eq!(folder["item_status"], "active");
    let etag = folder["etag"].as_str().unwrap().to_string();

    // If-None-Match with the current etag: 304, empty body.
    let resp = t
        .req(Method::GET, &t.api(&format!("/folders/{a}")))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert!(resp.bytes().await.unwrap().is_empty());

    // fields= returns only the base fields plus those named.
    let (_, f) = t.get(&format!("/folders/{a}?fields=name,size")).await;
    let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    assert!(keys.contains(&"name") && keys.contains(&"size") && keys.contains(&"etag"));
    assert!(
        !keys.contains(&"created_at") && !keys.contains(&"item_collection"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn name_rules_and_conflicts() {
    let t = TestEmu::start().await;
    for (name, code) in [
        ("", "item_name_invalid"),
        (".", "item_name_invalid"),
        ("..", "item_name_invalid"),
        ("a/b", "item_name_invalid"),
        ("a\\b", "item_name_invalid"),
        ("trailing ", "item_name_invalid"),
        ("ctl\u{1}x", "item_name_invalid"),
    ] {
        let body = json!({"name": name, "parent": {"id": "0"}});
        // An empty name is also outside Box's description (at least one character).
        let (s, e) = if name.is_empty() {
            t.bad_post_json("/folders", body).await
        } else {
            t.post_json("/folders", body).await
        };
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name:?}: {e}");
        assert_eq!(e["code"], code, "{name:?}");
        assert_eq!(e["type"], "error");
        assert!(e["request_id"].is_string());
    }
    // Longer than the description's 255 characters, on purpose.
    let long = "x".repeat(256);
    let (s, e) = t
        .bad_post_json("/folders", json!({"name": long, "parent": {"id": "0"}}))
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("item_name_too_long"))
    );
    let ok255 = "y".repeat(255);
    t.mkdir("0", &ok255).await;

    let id = t.mkdir("0", "Reports").await;
    // Case-insensitive clash, with the conflicting item in context_info.
    let (s, e) = t
        .post_json(
            "/folders",
            json!({"name": "REPORTS", "parent": {"id": "0"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["code"], "item_name_in_use");
    assert_eq!(e["context_info"]["conflicts"][0]["id"], id.as_str());

    // Missing parent, malformed ids, and (breaking Box's description on purpose) bad JSON
    // and wrong types.
    let (s, _) = t
        .post_json("/folders", json!({"name": "x", "parent": {"id": "999999"}}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.get("/folders/abc").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = t.get("/folders/123456789").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, e) = TestEmu::send(
        t.bad_req(Method::POST, &t.api("/folders"))
            .body("{not json"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _) = t
        .bad_post_json("/folders", json!({"name": 5, "parent": {"id": "0"}}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t
        .bad_post_json("/folders", json!({"name": "x", "parent": "0"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t.bad_post_json("/folders", json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn listings_page_by_offset_and_marker() {
    let t = TestEmu::start().await;
    let dir = t.mkdir("0", "Many").await;
    for i in 0..25 {
        t.mkdir(&dir, &format!("sub{i:02}")).await;
    }
    // Offset paging.
    let (s, page) = t
        .get(&format!("/folders/{dir}/items?limit=10&offset=20"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["total_count"], 25);
    assert_eq!(page["entries"].as_array().unwrap().len(), 5);
    assert_eq!(page["entries"][0]["name"], "sub20");

    // Marker paging visits every entry once, in order, even with a change between pages.
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("/folders/{dir}/items?limit=10&usemarker=true&fields=name,size");
        if let Some(m) = &marker {
            url.push_str(&format!("&marker={m}"));
        }
        let (s, page) = t.get(&url).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(
            page.get("total_count").is_none(),
            "marker pages carry no total_count"
        );
        for e in page["entries"].as_array().unwrap() {
            names.push(e["name"].as_str().unwrap().to_string());
            assert!(e["size"].is_number());
        }
        pages += 1;
        if pages == 1 {
            t.mkdir(&dir, "sub00a").await; // sorts before the marker: not seen, nothing repeated
        }
        match page["next_marker"].as_str() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("sub{i:02}")).collect();
    assert_eq!(names, expected);

    // Folders before files; sort and direction.
    let (_, page) = t
        .get(&format!(
            "/folders/{dir}/items?sort=name&direction=DESC&limit=2"
        ))
        .await;
    assert_eq!(page["entries"][0]["name"], "sub24");
    // An unknown sort, and a limit above the description's maximum, on purpose.
    let (s, _) = t.bad_get(&format!("/folders/{dir}/items?sort=bogus")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t.get(&format!("/folders/{dir}/items?marker=%%%")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t.get(&format!("/folders/{dir}/items?limit=-3")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Limits above 1000 are capped.
    let (_, page) = t.bad_get(&format!("/folders/{dir}/items?limit=5000")).await;
    assert_eq!(page["limit"], 1000);
}

#[tokio::test]
async fn rename_move_and_their_rules() {
    let t = TestEmu::start().await;
    let a = t.mkdir("0", "A").await;
    let b = t.mkdir("0", "B").await;
    let c = t.mkdir(&a, "C").await;

    let (s, r) = t
        .put_json(&format!("/folders/{c}"), json!({"name": "C2"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["name"], "C2");
    let (s, r) = t
        .put_json(&format!("/folders/{c}"), json!({"parent": {"id": b}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["parent"]["id"], b.as_str());
    // A move may rename too (rclone moves directories so) ...
    let (s, r) = t
        .put_json(
            &format!("/folders/{c}"),
            json!({"parent": {"id": a}, "name": "C3"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (r["name"].as_str(), r["parent"]["id"].as_str()),
        (Some("C3"), Some(a.as_str()))
    );
    let (s, r) = t
        .put_json(&format!("/folders/{c}"), json!({"parent": {"id": b}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // ... but Box refuses a move combined with any other change.
    let (s, e) = t
        .put_json(
            &format!("/folders/{c}"),
            json!({"parent": {"id": a}, "description": "moved"}),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("operation_limit_exceeded"))
    );
    // Into its own subtree.
    let (s, e) = t
        .put_json(&format!("/folders/{b}"), json!({"parent": {"id": c}}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _) = t
        .put_json(&format!("/folders/{b}"), json!({"parent": {"id": b}}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Clash on rename; renaming to another case of its own name is fine.
    let (s, _) = t
        .put_json(&format!("/folders/{b}"), json!({"name": "a"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = t
        .put_json(&format!("/folders/{b}"), json!({"name": "b"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // If-Match.
    let (_, cur) = t.get(&format!("/folders/{a}")).await;
    let resp = t
        .req(Method::PUT, &t.api(&format!("/folders/{a}")))
        .header("If-Match", "not-the-etag")
        .json(&json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    let resp = t
        .req(Method::PUT, &t.api(&format!("/folders/{a}")))
        .header("If-Match", cur["etag"].as_str().unwrap())
        .json(&json!({"description": "quarterly"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, after) = t.get(&format!("/folders/{a}")).await;
    assert_eq!(after["description"], "quarterly");
    assert_ne!(after["etag"], cur["etag"], "etag changes with every change");
    assert_ne!(after["sequence_id"], cur["sequence_id"]);
    // The root cannot be renamed.
    let (s, _) = t.put_json("/folders/0", json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn delete_needs_recursive_and_goes_to_trash() {
    let t = TestEmu::start().await;
    let a = t.mkdir("0", "Full").await;
    t.mkdir(&a, "inner").await;
    let (s, e) = t.delete(&format!("/folders/{a}")).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("folder_not_empty"))
    );
    let (s, _) = t.delete(&format!("/folders/{a}?recursive=true")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = t.get(&format!("/folders/{a}")).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("trashed"))
    );
    let (_, root) = t.get("/folders/0/items").await;
    assert_eq!(root["total_count"], 0);
    // The name is free again once the folder is in the trash.
    t.mkdir("0", "Full").await;
    let (s, _) = t.delete("/folders/0").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn copy_is_deep() {
    let t = TestEmu::start().await;
    let a = t.mkdir("0", "Src").await;
    let inner = t.mkdir(&a, "inner").await;
    t.mkdir(&inner, "deeper").await;
    let (s, c) = t
        .post_json(
            &format!("/folders/{a}/copy"),
            json!({"parent": {"id": "0"}, "name": "Copy"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let copy_id = c["id"].as_str().unwrap();
    assert_ne!(copy_id, a);
    let (_, items) = t.get(&format!("/folders/{copy_id}/items")).await;
    assert_eq!(items["entries"][0]["name"], "inner");
    let (s, _) = t
        .post_json(
            &format!("/folders/{a}/copy"),
            json!({"parent": {"id": "0"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = t
        .post_json(
            &format!("/folders/{a}/copy"),
            json!({"parent": {"id": inner}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_box_errors() {
    let t = TestEmu::start().await;
    let (s, e) = t.get("/no/such/thing").await;
    assert_eq!(
        (s, e["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("error"))
    );
    let (s, e) = TestEmu::send(t.req(Method::PATCH, &t.api("/folders/0"))).await;
    assert_eq!(
        (s, e["type"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("error"))
    );
    // No token, a bad token.
    let resp = t.http.get(t.api("/folders/0")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let resp = t
        .http
        .get(t.api("/folders/0"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
