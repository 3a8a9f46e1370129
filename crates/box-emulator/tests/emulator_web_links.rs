//! Web links over loopback HTTP: create, get (with `fields`), update (rename, move, URL,
//! description, `If-Match`), the trash (inspect, restore, purge), folder listings with
//! paging and sorting, the namespace they share with files and folders, bad URLs and other
//! bad input, events, search, rate limits, and a restart from the data directory. Shapes
//! against Box's recorded answers are in `emulator_fixture_shapes.rs`.

use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs, Rate, RateLimits};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Creates a web link and returns its JSON.
async fn link(t: &TestEmu, parent: &str, name: &str, url: &str) -> Value {
    let (status, body) = t
        .post_json(
            "/web_links",
            json!({"url": url, "name": name, "parent": {"id": parent}}),
        )
        .await;
    // Box answers 200 to this create, not 201.
    assert_eq!(status, StatusCode::OK, "create web link {name}: {body}");
    body
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

fn names(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn assert_error(status: StatusCode, body: &Value, want: u16, code: &str) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], "error", "{body}");
}

#[tokio::test]
async fn create_get_and_update() {
    let t = TestEmu::start().await;
    let docs = t.mkdir("0", "Docs").await;
    let other = t.mkdir("0", "Other").await;
    let (status, created) = t
        .post_json(
            "/web_links",
            json!({
                "url": "https://example.com/manual",
                "parent": {"id": docs},
                "name": "Manual",
                "description": "the product manual",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["type"], "web_link");
    assert_eq!(created["name"], "Manual");
    assert_eq!(created["url"], "https://example.com/manual");
    assert_eq!(created["description"], "the product manual");
    assert_eq!(created["parent"]["id"], docs);
    assert_eq!(created["item_status"], "active");
    assert_eq!(created["trashed_at"], Value::Null);
    assert_eq!(created["shared_link"], Value::Null);
    assert_eq!(created["path_collection"]["total_count"], 2);
    assert_eq!(created["etag"], "0");
    assert!(created.get("size").is_none(), "a web link has no size");
    let link_id = id(&created);

    let (status, got) = t.get(&format!("/web_links/{link_id}")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, created);

    // fields= keeps the base fields and those named.
    let (_, some) = t.get(&format!("/web_links/{link_id}?fields=url")).await;
    let mut keys: Vec<&str> = some
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["etag", "id", "type", "url"]);

    // Rename, new URL and description in one request.
    let (status, updated) = t
        .put_json(
            &format!("/web_links/{link_id}"),
            json!({"name": "Handbook", "url": "http://example.org/", "description": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Handbook");
    assert_eq!(updated["url"], "http://example.org/");
    assert_eq!(updated["description"], "");
    assert_eq!(updated["etag"], "1");

    // A move and a rename at once, as for a file.
    let (status, moved) = t
        .put_json(
            &format!("/web_links/{link_id}"),
            json!({"parent": {"id": other}, "name": "Moved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["parent"]["id"], other);
    assert_eq!(moved["name"], "Moved");
    let (_, listing) = t.get(&format!("/folders/{docs}/items")).await;
    assert_eq!(listing["total_count"], 0);

    // If-Match: a stale etag is refused, the current one accepted.
    let etag = moved["etag"].as_str().unwrap().to_string();
    let (status, body) = TestEmu::send(
        t.req(Method::PUT, &t.api(&format!("/web_links/{link_id}")))
            .header("If-Match", "0")
            .json(&json!({"name": "Stale"})),
    )
    .await;
    assert_error(status, &body, 412, "precondition_failed");
    let (status, body) = TestEmu::send(
        t.req(Method::DELETE, &t.api(&format!("/web_links/{link_id}")))
            .header("If-Match", "0"),
    )
    .await;
    assert_error(status, &body, 412, "precondition_failed");
    let (status, body) = TestEmu::send(
        t.req(Method::PUT, &t.api(&format!("/web_links/{link_id}")))
            .header("If-Match", &etag)
            .json(&json!({"name": "Fresh"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Fresh");
}

#[tokio::test]
async fn a_link_without_a_name_is_named_after_its_host() {
    let t = TestEmu::start().await;
    let (status, body) = t
        .post_json(
            "/web_links",
            json!({"url": "https://docs.example.com/a/b?c=d", "parent": {"id": "0"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "docs.example.com");
    assert_eq!(body["url"], "https://docs.example.com/a/b?c=d");
    assert_eq!(body["description"], "");
}

#[tokio::test]
async fn bad_urls_and_other_bad_input_are_refused() {
    let t = TestEmu::start().await;
    for url in [
        "ftp://example.com/file",
        "javascript:alert(1)",
        "example.com",
        "https://",
        "",
        " https://example.com",
    ] {
        let (status, body) = t
            .post_json("/web_links", json!({"url": url, "parent": {"id": "0"}}))
            .await;
        assert_error(status, &body, 400, "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains("http"),
            "{url}: {body}"
        );
    }
    let created = link(&t, "0", "Good", "https://example.com").await;
    let path = format!("/web_links/{}", id(&created));
    let (status, body) = t
        .put_json(&path, json!({"url": "file:///etc/passwd"}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    // Nothing changed.
    assert_eq!(t.get(&path).await.1["url"], "https://example.com");

    // Required fields and types: outside Box's description, so sent as such.
    let (status, body) = t
        .bad_post_json("/web_links", json!({"parent": {"id": "0"}}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = t
        .bad_post_json("/web_links", json!({"url": "https://example.com"}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = t
        .bad_post_json("/web_links", json!({"url": 7, "parent": {"id": "0"}}))
        .await;
    assert_error(status, &body, 400, "bad_request");

    // Names follow the rules of file and folder names.
    let (status, body) = t
        .post_json(
            "/web_links",
            json!({"url": "https://example.com", "name": "a/b", "parent": {"id": "0"}}),
        )
        .await;
    assert_error(status, &body, 400, "item_name_invalid");
    let (status, body) = t.put_json(&path, json!({"name": "x".repeat(256)})).await;
    assert_error(status, &body, 400, "item_name_too_long");
    let (status, body) = t
        .put_json(&path, json!({"description": "d".repeat(257)}))
        .await;
    assert_error(status, &body, 400, "bad_request");

    // Parents and links that are not there; ids that are no ids.
    let (status, body) = t
        .post_json(
            "/web_links",
            json!({"url": "https://example.com", "parent": {"id": "987654"}}),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = t.get("/web_links/987654").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = t.get("/web_links/abc").await;
    assert_error(status, &body, 405, "method_not_allowed");
    // A folder's id is not a web link's.
    let folder = t.mkdir("0", "Folder").await;
    let (status, body) = t.get(&format!("/web_links/{folder}")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = t.delete(&format!("/web_links/{folder}")).await;
    assert_error(status, &body, 404, "not_found");
    // Shared links on web links are not modelled: refused, not ignored.
    let (status, body) = t
        .put_json(&path, json!({"shared_link": {"access": "open"}}))
        .await;
    assert_error(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn names_are_shared_with_files_and_folders() {
    let t = TestEmu::start().await;
    let file = t.upload_file("0", "Report", b"figures").await;
    let (status, body) = t
        .post_json(
            "/web_links",
            json!({"url": "https://example.com", "name": "REPORT", "parent": {"id": "0"}}),
        )
        .await;
    assert_error(status, &body, 409, "item_name_in_use");
    assert_eq!(body["context_info"]["conflicts"][0]["id"], id(&file));
    assert_eq!(body["context_info"]["conflicts"][0]["type"], "file");

    let bookmark = link(&t, "0", "Bookmark", "https://example.com").await;
    // A folder, an upload, a preflight and a rename meet the web link in the way.
    let (status, body) = t
        .post_json(
            "/folders",
            json!({"name": "bookmark", "parent": {"id": "0"}}),
        )
        .await;
    assert_error(status, &body, 409, "item_name_in_use");
    assert_eq!(body["context_info"]["conflicts"][0]["type"], "web_link");
    assert_eq!(
        body["context_info"]["conflicts"][0]["url"],
        "https://example.com"
    );
    let form = reqwest::multipart::Form::new()
        .text(
            "attributes",
            json!({"name": "Bookmark", "parent": {"id": "0"}}).to_string(),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("Bookmark"),
        );
    let (status, body) = TestEmu::send(
        t.req(Method::POST, &t.upload("/files/content"))
            .multipart(form),
    )
    .await;
    assert_error(status, &body, 409, "item_name_in_use");
    assert_eq!(body["context_info"]["conflicts"]["id"], id(&bookmark));
    let (status, body) = TestEmu::send(
        t.req(Method::OPTIONS, &t.api("/files/content"))
            .json(&json!({"name": "bookmark", "size": 1, "parent": {"id": "0"}})),
    )
    .await;
    assert_error(status, &body, 409, "item_name_in_use");
    assert_eq!(body["context_info"]["conflicts"]["type"], "web_link");
    let (status, body) = t
        .put_json(
            &format!("/files/{}", id(&file)),
            json!({"name": "Bookmark"}),
        )
        .await;
    assert_error(status, &body, 409, "item_name_in_use");
    // And the other way round: a web link renamed onto the file.
    let (status, body) = t
        .put_json(
            &format!("/web_links/{}", id(&bookmark)),
            json!({"name": "report"}),
        )
        .await;
    assert_error(status, &body, 409, "item_name_in_use");
    // A trashed web link frees its name.
    let (status, _) = t.delete(&format!("/web_links/{}", id(&bookmark))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    t.mkdir("0", "Bookmark").await;
}

#[tokio::test]
async fn trash_restore_and_purge() {
    let t = TestEmu::start().await;
    let home = t.mkdir("0", "Home").await;
    let created = link(&t, &home, "Link", "https://example.com").await;
    let link_id = id(&created);
    let path = format!("/web_links/{link_id}");

    let (status, _) = t.get(&format!("{path}/trash")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not in the trash yet");
    let (status, body) = t.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = t.get(&path).await;
    assert_error(status, &body, 404, "trashed");
    let (status, body) = t.delete(&path).await;
    assert_error(status, &body, 404, "trashed");

    let (status, trashed) = t.get(&format!("{path}/trash")).await;
    assert_eq!(status, StatusCode::OK, "{trashed}");
    assert_eq!(trashed["type"], "web_link");
    assert_eq!(trashed["url"], "https://example.com");
    assert_eq!(trashed["item_status"], "trashed");
    assert!(trashed["trashed_at"].is_string() && trashed["purged_at"].is_string());
    assert_eq!(trashed["path_collection"]["entries"][0]["name"], "Trash");
    let (_, few) = t.get(&format!("{path}/trash?fields=name")).await;
    assert_eq!(few["name"], "Link");
    assert!(few.get("url").is_none(), "{few}");

    // The trash lists it after folders and files.
    let gone_folder = t.mkdir("0", "Zed").await;
    let file = t.upload_file("0", "a.txt", b"a").await;
    t.delete(&format!("/folders/{gone_folder}")).await;
    t.delete(&format!("/files/{}", id(&file))).await;
    let (status, trash) = t.get("/folders/trash/items?fields=name,url").await;
    assert_eq!(status, StatusCode::OK, "{trash}");
    assert_eq!(names(&trash), ["Zed", "a.txt", "Link"]);
    assert_eq!(trash["entries"][2]["url"], "https://example.com");
    let (_, marked) = t.get("/folders/trash/items?usemarker=true&limit=2").await;
    let marker = marked["next_marker"].as_str().expect("a second page");
    let (_, rest) = t
        .get(&format!(
            "/folders/trash/items?usemarker=true&limit=2&marker={marker}"
        ))
        .await;
    assert_eq!(names(&rest), ["Link"]);
    assert_eq!(rest["entries"][0]["type"], "web_link");

    // Restored into its folder, renamed on the way.
    let (status, restored) = t.post_json(&path, json!({"name": "Back"})).await;
    assert_eq!(status, StatusCode::CREATED, "{restored}");
    assert_eq!(restored["name"], "Back");
    assert_eq!(restored["parent"]["id"], home);
    assert_eq!(restored["item_status"], "active");
    assert_eq!(t.get(&path).await.0, StatusCode::OK);
    let (status, body) = t.post_json(&path, json!({})).await;
    assert_error(status, &body, 404, "not_trashed");

    // Its folder is in the trash too: restored into the given parent, where a name in use
    // is a 409.
    t.delete(&path).await;
    let (status, body) = t.delete(&format!("/folders/{home}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let elsewhere = t.mkdir("0", "Elsewhere").await;
    t.upload_file(&elsewhere, "Back", b"in the way").await;
    let (status, body) = t
        .post_json(&path, json!({"parent": {"id": elsewhere}}))
        .await;
    assert_error(status, &body, 409, "item_name_in_use");
    let (status, restored) = t
        .post_json(
            &path,
            json!({"parent": {"id": elsewhere}, "name": "Back again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{restored}");
    assert_eq!(restored["parent"]["id"], elsewhere);

    // Purged: gone from everywhere.
    t.delete(&path).await;
    let (status, body) = t.delete(&format!("{path}/trash")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = t.get(&format!("{path}/trash")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = t.get(&path).await;
    assert_error(status, &body, 404, "not_found");
    let (_, trash) = t.get("/folders/trash/items").await;
    assert!(
        !names(&trash).contains(&"Back again".to_string()),
        "{trash}"
    );
}

#[tokio::test]
async fn folders_list_web_links_after_folders_and_files() {
    let t = TestEmu::start().await;
    let dir = t.mkdir("0", "Mixed").await;
    for name in ["link c", "link a", "link b"] {
        link(
            &t,
            &dir,
            name,
            &format!("https://example.com/{}", name.len()),
        )
        .await;
    }
    t.upload_file(&dir, "file b", b"bb").await;
    t.upload_file(&dir, "file a", b"a").await;
    t.mkdir(&dir, "folder z").await;

    let all = ["folder z", "file a", "file b", "link a", "link b", "link c"];
    let (_, page) = t.get(&format!("/folders/{dir}/items")).await;
    assert_eq!(names(&page), all);
    assert_eq!(page["total_count"], 6);
    // Mini entries of web links carry their URL.
    let entry = &page["entries"][3];
    assert_eq!(entry["type"], "web_link");
    assert_eq!(entry["url"], "https://example.com/6");
    assert!(entry["etag"].is_string() && entry["sequence_id"].is_string());

    // Offset paging.
    let mut seen = Vec::new();
    for offset in [0, 4] {
        let (_, page) = t
            .get(&format!("/folders/{dir}/items?limit=4&offset={offset}"))
            .await;
        seen.extend(names(&page));
    }
    assert_eq!(seen, all);

    // Marker paging, two at a time.
    let mut seen = Vec::new();
    let mut marker = String::new();
    loop {
        let (status, page) = t
            .get(&format!(
                "/folders/{dir}/items?usemarker=true&limit=2&marker={marker}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(names(&page));
        match page["next_marker"].as_str() {
            Some(m) => marker = m.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, all);

    // The type order holds whatever the sort and its direction.
    let (_, desc) = t
        .get(&format!("/folders/{dir}/items?sort=name&direction=DESC"))
        .await;
    assert_eq!(
        names(&desc),
        ["folder z", "file b", "file a", "link c", "link b", "link a"]
    );
    // fields= works on web links as on files: named fields only.
    let (_, picked) = t
        .get(&format!(
            "/folders/{dir}/items?fields=name,url,size,created_at"
        ))
        .await;
    let link_entry = &picked["entries"][5];
    assert_eq!(link_entry["name"], "link c");
    assert_eq!(link_entry["url"], "https://example.com/6");
    assert!(link_entry["created_at"].is_string());
    assert!(link_entry.get("size").is_none() && link_entry.get("parent").is_none());
    // And in the folder's own item_collection.
    let (_, folder) = t.get(&format!("/folders/{dir}")).await;
    assert_eq!(
        folder["item_collection"]["entries"][5]["url"],
        "https://example.com/6"
    );
}

#[tokio::test]
async fn deleting_a_folder_with_a_web_link() {
    let t = TestEmu::start().await;
    let dir = t.mkdir("0", "Holder").await;
    let inside = id(&link(&t, &dir, "Inside", "https://example.com").await);
    let (status, body) = t.delete(&format!("/folders/{dir}")).await;
    assert_error(status, &body, 400, "folder_not_empty");
    let (status, _) = t.delete(&format!("/folders/{dir}?recursive=true")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = t.get(&format!("/web_links/{inside}")).await;
    assert_error(status, &body, 404, "trashed");
    // Only the folder itself is in the trash; its web link comes back with it.
    let (status, _) = t.get(&format!("/web_links/{inside}/trash")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = t.post_json(&format!("/folders/{dir}"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, back) = t.get(&format!("/web_links/{inside}")).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["parent"]["id"], dir);
    // A folder copy copies its web links.
    let (status, copy) = t
        .post_json(
            &format!("/folders/{dir}/copy"),
            json!({"parent": {"id": "0"}, "name": "Holder copy"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    let (_, items) = t
        .get(&format!("/folders/{}/items", copy["id"].as_str().unwrap()))
        .await;
    assert_eq!(items["entries"][0]["type"], "web_link");
    assert_eq!(items["entries"][0]["url"], "https://example.com");
    assert_ne!(id(&items["entries"][0]), inside);
}

/// The events since `from`: (event_type, source type, source id).
async fn events_since(t: &TestEmu, from: &str) -> (Vec<(String, String, String)>, Vec<Value>) {
    let (status, page) = t
        .get(&format!("/events?stream_position={from}&limit=500"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let entries = page["entries"].as_array().unwrap().clone();
    let summary = entries
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["source"]["type"].as_str().unwrap_or("").to_string(),
                e["source"]["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (summary, entries)
}

#[tokio::test]
async fn every_change_to_a_web_link_is_an_event() {
    let t = TestEmu::start().await;
    let a = t.mkdir("0", "A").await;
    let b = t.mkdir("0", "B").await;
    let (_, now) = t.get("/events?stream_position=now").await;
    let from = now["next_stream_position"].to_string().replace('"', "");

    let link_id = id(&link(&t, &a, "Site", "https://example.com").await);
    let path = format!("/web_links/{link_id}");
    t.put_json(&path, json!({"name": "Site 2"})).await;
    t.put_json(&path, json!({"parent": {"id": b}})).await;
    t.put_json(&path, json!({"url": "https://example.org"}))
        .await;
    // Nothing changes, nothing is reported.
    t.put_json(&path, json!({"url": "https://example.org"}))
        .await;
    t.delete(&path).await;
    t.post_json(&path, json!({})).await;

    let (summary, entries) = events_since(&t, &from).await;
    let types: Vec<&str> = summary.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(
        types,
        [
            "ITEM_CREATE",
            "ITEM_RENAME",
            "ITEM_MOVE",
            "ITEM_MODIFY",
            "ITEM_TRASH",
            "ITEM_UNDELETE_VIA_TRASH"
        ]
    );
    for (_, kind, source) in &summary {
        assert_eq!(
            (kind.as_str(), source.as_str()),
            ("web_link", link_id.as_str())
        );
    }
    // Each source is the web link as it was then.
    assert_eq!(entries[0]["source"]["name"], "Site");
    assert_eq!(entries[1]["source"]["name"], "Site 2");
    assert_eq!(entries[2]["source"]["parent"]["id"], b);
    assert_eq!(entries[3]["source"]["url"], "https://example.org");
    assert_eq!(entries[4]["source"]["item_status"], "trashed");
    assert_eq!(entries[5]["source"]["item_status"], "active");
    let seqs: Vec<u64> = entries
        .iter()
        .map(|e| {
            e["source"]["sequence_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // The enterprise stream names the web link too.
    let (status, admin) = t
        .get(&format!(
            "/events?stream_type=admin_logs&stream_position={from}&limit=500"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    let first = &admin["entries"][0];
    assert_eq!(first["event_type"], "UPLOAD");
    assert_eq!(first["source"]["item_type"], "web_link");
    assert_eq!(first["source"]["item_id"], link_id);
}

#[tokio::test]
async fn search_finds_web_links() {
    let t = TestEmu::start().await;
    let dir = t.mkdir("0", "Research").await;
    link(&t, &dir, "Quarterly figures", "https://example.com/q").await;
    t.upload_file(&dir, "Quarterly figures.xlsx", b"1,2,3")
        .await;
    t.mkdir(&dir, "Quarterly").await;

    let (status, all) = t.get("/search?query=quarterly").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["total_count"], 3);
    let (status, links) = t.get("/search?query=quarterly&type=web_link").await;
    assert_eq!(status, StatusCode::OK, "{links}");
    assert_eq!(links["total_count"], 1);
    assert_eq!(links["entries"][0]["type"], "web_link");
    assert_eq!(links["entries"][0]["url"], "https://example.com/q");
    let (_, files) = t.get("/search?query=quarterly&type=file").await;
    assert_eq!(files["total_count"], 1);
    assert_eq!(files["entries"][0]["type"], "file");
    // Trashed web links are found only in the trash.
    let link_id = id(&links["entries"][0]);
    t.delete(&format!("/web_links/{link_id}")).await;
    let (_, none) = t.get("/search?query=quarterly&type=web_link").await;
    assert_eq!(none["total_count"], 0);
    let (_, trashed) = t
        .get("/search?query=quarterly&type=web_link&trash_content=trashed_only")
        .await;
    assert_eq!(trashed["total_count"], 1);
}

#[tokio::test]
async fn web_link_calls_count_against_the_general_rate_limit() {
    let t = TestEmu::start_with(EmulatorConfig {
        knobs: Knobs {
            rate_limits: Some(RateLimits {
                general: Rate::new(1, 60_000, 3),
                ..RateLimits::BOX
            }),
            ..Knobs::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let created = link(&t, "0", "Paced", "https://example.com").await;
    let path = format!("/web_links/{}", id(&created));
    assert_eq!(t.get(&path).await.0, StatusCode::OK);
    assert_eq!(
        t.put_json(&path, json!({"name": "P"})).await.0,
        StatusCode::OK
    );
    let (status, body) = t.get(&path).await;
    assert_error(status, &body, 429, "rate_limit_exceeded");
}

#[tokio::test]
async fn web_links_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::default()
    };
    let mut t = TestEmu::start_with(config()).await;
    let folder = t.mkdir("0", "Kept").await;
    let kept = link(&t, &folder, "Kept link", "https://example.com/kept").await;
    let trashed = link(&t, &folder, "Trashed link", "https://example.com/trashed").await;
    t.delete(&format!("/web_links/{}", id(&trashed))).await;
    t.stop().await;

    let t = TestEmu::start_with(config()).await;
    let (status, got) = t.get(&format!("/web_links/{}", id(&kept))).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["url"], "https://example.com/kept");
    assert_eq!(got["name"], "Kept link");
    assert_eq!(got["parent"]["id"], folder);
    let (_, items) = t.get(&format!("/folders/{folder}/items")).await;
    assert_eq!(names(&items), ["Kept link"]);
    // The names index is rebuilt: the name is still taken.
    let (status, body) = t
        .post_json(
            "/web_links",
            json!({"url": "https://example.com", "name": "kept LINK", "parent": {"id": folder}}),
        )
        .await;
    assert_error(status, &body, 409, "item_name_in_use");
    // The trashed one is still in the trash, and restores.
    let (status, back) = t
        .post_json(&format!("/web_links/{}", id(&trashed)), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{back}");
    assert_eq!(back["url"], "https://example.com/trashed");
}
