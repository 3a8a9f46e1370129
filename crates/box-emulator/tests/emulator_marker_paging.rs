//! Marker paging over HTTP on every marker-paged endpoint the emulator serves (folder items,
//! trash, users, a folder's collaborations, enterprise and global metadata templates): pages
//! are followed with `marker` and a small `limit` until the last one, which has no
//! `next_marker`; every entry comes exactly once, in the listing's order.

use box_emulator::testing::TestEmu;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Follows `path` (which has its query's `limit` and marker switch) page by page; returns the
/// `key` of every entry and the number of pages.
async fn all_pages(t: &TestEmu, path: &str, limit: usize, key: &str) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &marker {
            Some(m) => format!("{path}&marker={m}"),
            None => path.to_string(),
        };
        let (status, page) = t.get(&url).await;
        assert_eq!(status, StatusCode::OK, "GET {url}: {page}");
        pages += 1;
        assert!(pages <= 100, "{path}: paging does not end");
        let entries = page["entries"].as_array().expect("entries");
        assert!(entries.len() <= limit, "{url}: more than {limit} entries");
        for e in entries {
            seen.push(e[key].as_str().expect("key").to_string());
        }
        match &page["next_marker"] {
            Value::String(m) if !m.is_empty() => {
                assert_eq!(entries.len(), limit, "{url}: a short page before the last");
                marker = Some(m.clone());
            }
            Value::Null | Value::String(_) => break,
            other => panic!("{url}: next_marker is {other}"),
        }
    }
    (seen, pages)
}

/// Each entry once, in the expected order, over `want_pages` pages.
fn assert_once_in_order(got: (Vec<String>, usize), want: &[String], want_pages: usize) {
    assert_eq!(got.0, want, "every entry once, in order");
    assert_eq!(got.1, want_pages, "pages");
}

#[tokio::test]
async fn folder_items_and_trash_page_with_markers() {
    let t = TestEmu::start().await;
    let dir = t.mkdir("0", "Paged").await;
    let mut want = Vec::new();
    for i in 0..5 {
        want.push(t.mkdir(&dir, &format!("d{i}")).await);
    }
    let mut files = Vec::new();
    for i in 0..6 {
        let f = t.upload_file(&dir, &format!("f{i}.txt"), b"x").await;
        files.push(f["id"].as_str().unwrap().to_string());
    }
    want.extend(files.iter().cloned());
    // 11 items, 4 a page: folders first, then files, each by name.
    let got = all_pages(
        &t,
        &format!("/folders/{dir}/items?usemarker=true&limit=4"),
        4,
        "id",
    )
    .await;
    assert_once_in_order(got, &want, 3);

    // The trash of 6 files and 2 folders, 3 a page.
    let mut trashed = Vec::new();
    for (i, id) in files.iter().enumerate() {
        let (status, _) = t.delete(&format!("/files/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        trashed.push((format!("f{i}.txt"), id.clone()));
    }
    for (i, id) in want.iter().take(2).enumerate() {
        let (status, _) = t.delete(&format!("/folders/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        trashed.push((format!("d{i}"), id.clone()));
    }
    let (status, reference) = t.get("/folders/trash/items?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{reference}");
    let order: Vec<String> = reference["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let mut ids: Vec<String> = trashed.iter().map(|(_, id)| id.clone()).collect();
    ids.sort();
    let mut listed = order.clone();
    listed.sort();
    assert_eq!(listed, ids, "the trash holds what was deleted");
    let got = all_pages(&t, "/folders/trash/items?usemarker=true&limit=3", 3, "id").await;
    assert_once_in_order(got, &order, 3);
}

#[tokio::test]
async fn users_and_collaborations_page_with_markers() {
    let t = TestEmu::start().await;
    let folder = t.mkdir("0", "Team").await;
    let mut collaborations = Vec::new();
    for i in 0..7 {
        let login = format!("member{i}@example.com");
        let (status, user) = t
            .post_json(
                "/users",
                json!({"name": format!("Member {i}"), "login": login}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let body = json!({
            "item": {"type": "folder", "id": folder},
            "accessible_by": {"type": "user", "login": login},
            "role": "viewer",
        });
        let (status, collab) =
            TestEmu::send(t.req(Method::POST, &t.api("/collaborations")).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{collab}");
        collaborations.push(collab["id"].as_str().unwrap().to_string());
    }

    let (status, reference) = t.get("/users?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{reference}");
    let users: Vec<String> = reference["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users.len(), 8, "the admin and seven members");
    let got = all_pages(&t, "/users?usemarker=true&limit=3", 3, "id").await;
    assert_once_in_order(got, &users, 3);
    // A marker page has no offset paging's total_count.
    let (_, first) = t.get("/users?usemarker=true&limit=3").await;
    assert!(first.get("total_count").is_none(), "{first}");

    let got = all_pages(
        &t,
        &format!("/folders/{folder}/collaborations?limit=2"),
        2,
        "id",
    )
    .await;
    assert_once_in_order(got, &collaborations, 4);
}

#[tokio::test]
async fn metadata_templates_page_with_markers() {
    let t = TestEmu::start().await;
    for i in 0..5 {
        let (status, body) = t
            .post_json(
                "/metadata_templates/schema",
                json!({
                    "scope": "enterprise",
                    "templateKey": format!("paged{i}"),
                    "displayName": format!("Paged {i}"),
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, reference) = t.get("/metadata_templates/enterprise?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{reference}");
    let keys: Vec<String> = reference["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["templateKey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 5);
    let got = all_pages(
        &t,
        "/metadata_templates/enterprise?limit=2",
        2,
        "templateKey",
    )
    .await;
    assert_once_in_order(got, &keys, 3);

    // Box's global scope holds `properties`: one page, with no next marker.
    let got = all_pages(&t, "/metadata_templates/global?limit=1", 1, "templateKey").await;
    assert_once_in_order(got, &["properties".to_string()], 1);
}
