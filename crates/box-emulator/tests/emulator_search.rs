//! Search over HTTP: names, descriptions and file text; the query operators; the filters;
//! metadata filters; paging, `fields` and bad input.

mod store_fixtures;

use std::collections::BTreeSet;

use box_emulator::testing::TestEmu;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use store_fixtures as fx;

struct Tree {
    projects: u64,
    notes: u64,
    archive: u64,
    budget: u64,
    meeting: u64,
    readme: u64,
    binary: u64,
    old: u64,
    bobs: u64,
}

/// ```text
/// Projects/                     (folder)
///   Budget 2024.xlsx            "quarterly numbers for the board"
///   Notes/                      (folder, description "team notes")
///     meeting.txt               "Blue Box roadmap discussion, budget review"
/// Archive/
///   readme.md                   description "Project overview", text "nothing special"
///   photo.jpg                   binary (not UTF-8) that contains the bytes "budget"
///   old-budget.txt              in the trash
/// (Bob's) bob-budget.txt        not visible to the admin
/// ```
fn tree(t: &TestEmu) -> Tree {
    let me = fx::admin(t);
    let root = fx::root(t, me);
    let projects = fx::folder(t, me, root, "Projects");
    let budget = fx::file(
        t,
        me,
        projects,
        "Budget 2024.xlsx",
        b"quarterly numbers for the board",
    );
    let notes = fx::folder(t, me, projects, "Notes");
    fx::edit(t, notes, |i| i.description = "team notes".into());
    let meeting = fx::file(
        t,
        me,
        notes,
        "meeting.txt",
        b"Blue Box roadmap discussion, budget review",
    );
    let archive = fx::folder(t, me, root, "Archive");
    let readme = fx::file(t, me, archive, "readme.md", b"nothing special");
    fx::edit(t, readme, |i| i.description = "Project overview".into());
    let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
    jpeg.extend_from_slice(b"budget");
    jpeg.extend_from_slice(&[0xc3, 0x28, 0xa0, 0xa1]);
    let binary = fx::file(t, me, archive, "photo.jpg", &jpeg);
    let old = fx::file(t, me, archive, "old-budget.txt", b"old");
    {
        let shared = &t.emulator().shared;
        let mut store = shared.store();
        store.trash_item(old, me, Utc::now());
    }
    let (bob, _) = fx::user(t, "Bob");
    let bobs = fx::file(t, bob, fx::root(t, bob), "bob-budget.txt", b"budget");
    Tree {
        projects,
        notes,
        archive,
        budget,
        meeting,
        readme,
        binary,
        old,
        bobs,
    }
}

async fn search(t: &TestEmu, query: &str) -> Value {
    let (status, body) = t.get(&format!("/search?{query}")).await;
    assert_eq!(status, StatusCode::OK, "GET /search?{query}: {body}");
    assert_eq!(body["type"], "search_results_items");
    body
}

/// [`search`] with a query Box accepts although its description does not (marked, so the
/// check requires that it indeed breaks the description).
async fn search_beyond_description(t: &TestEmu, query: &str) -> Value {
    let (status, body) = t.bad_get(&format!("/search?{query}")).await;
    assert_eq!(status, StatusCode::OK, "GET /search?{query}: {body}");
    assert_eq!(body["type"], "search_results_items");
    body
}

fn ids(body: &Value) -> BTreeSet<u64> {
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn set(list: &[u64]) -> BTreeSet<u64> {
    list.iter().copied().collect()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn finds_names_descriptions_and_text() {
    let t = TestEmu::start().await;
    let tr = tree(&t);

    // "budget": a name, a file's text; not the binary, the trashed file or Bob's file.
    let body = search(&t, "query=budget").await;
    assert_eq!(ids(&body), set(&[tr.budget, tr.meeting]));
    for hidden in [tr.binary, tr.old, tr.bobs] {
        assert!(!ids(&body).contains(&hidden));
    }
    assert_eq!(body["total_count"], 2);
    assert_eq!(body["limit"], 30);
    assert_eq!(body["offset"], 0);
    // Relevance: the name match ranks first.
    assert_eq!(body["entries"][0]["id"], tr.budget.to_string());
    let entry = &body["entries"][0];
    assert_eq!(entry["type"], "file");
    assert_eq!(entry["name"], "Budget 2024.xlsx");
    assert!(entry["path_collection"]["entries"].is_array());
    assert_eq!(entry["parent"]["id"], tr.projects.to_string());

    assert_eq!(ids(&search(&t, "query=OVERVIEW").await), set(&[tr.readme]));
    assert_eq!(ids(&search(&t, "query=quarterly").await), set(&[tr.budget]));
    assert_eq!(ids(&search(&t, "query=team").await), set(&[tr.notes]));
    // Prefixes of words match.
    assert_eq!(ids(&search(&t, "query=roadm").await), set(&[tr.meeting]));
    // Several words are ORed.
    assert_eq!(
        ids(&search(&t, "query=quarterly%20overview").await),
        set(&[tr.budget, tr.readme])
    );
    assert_eq!(search(&t, "query=zebra").await["total_count"], 0);
}

#[tokio::test]
async fn operators_phrases_and_content_types() {
    let t = TestEmu::start().await;
    let tr = tree(&t);
    let q = |s: &str| format!("query={}", enc(s));
    assert_eq!(
        ids(&search(&t, &q("\"blue box\"")).await),
        set(&[tr.meeting])
    );
    assert_eq!(
        ids(&search(&t, &q("\"Blue-Box\"")).await),
        set(&[tr.meeting])
    );
    assert_eq!(search(&t, &q("\"box blue\"")).await["total_count"], 0);
    assert_eq!(
        ids(&search(&t, &q("budget AND review")).await),
        set(&[tr.meeting])
    );
    assert_eq!(
        ids(&search(&t, &q("budget AND NOT review")).await),
        set(&[tr.budget])
    );
    assert_eq!(
        ids(&search(&t, &q("quarterly OR roadmap")).await),
        set(&[tr.budget, tr.meeting])
    );
    // Lower-case operators are plain words.
    assert_eq!(search(&t, &q("budget and review")).await["total_count"], 2);

    let only_names = search(&t, &format!("{}&content_types=name", q("budget"))).await;
    assert_eq!(ids(&only_names), set(&[tr.budget]));
    let only_text = search(&t, &format!("{}&content_types=file_content", q("budget"))).await;
    assert_eq!(ids(&only_text), set(&[tr.meeting]));
    let descriptions = search(
        &t,
        &format!("{}&content_types=description,name", q("project")),
    )
    .await;
    assert_eq!(ids(&descriptions), set(&[tr.projects, tr.readme]));
    let (status, _) = t.bad_get("/search?query=x&content_types=smell").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn filters_narrow_the_results() {
    let t = TestEmu::start().await;
    let tr = tree(&t);
    let me = fx::admin(&t);

    assert_eq!(
        ids(&search(&t, "query=budget&type=file").await),
        set(&[tr.budget, tr.meeting])
    );
    assert_eq!(
        ids(&search(&t, "query=notes%20projects&type=folder").await),
        set(&[tr.projects, tr.notes])
    );
    assert_eq!(
        search(&t, "query=budget&type=web_link").await["total_count"],
        0
    );

    // Ancestors include subfolders, not the folder itself.
    let under = search(
        &t,
        &format!("query=budget%20notes&ancestor_folder_ids={}", tr.projects),
    )
    .await;
    assert_eq!(ids(&under), set(&[tr.budget, tr.notes, tr.meeting]));
    let deeper = search(
        &t,
        &format!("query=budget&ancestor_folder_ids={}", tr.notes),
    )
    .await;
    assert_eq!(ids(&deeper), set(&[tr.meeting]));
    let both = search(
        &t,
        &format!(
            "query=budget%20readme&ancestor_folder_ids={},{}",
            tr.notes, tr.archive
        ),
    )
    .await;
    assert_eq!(ids(&both), set(&[tr.meeting, tr.readme]));
    let from_root = search(&t, "query=budget&ancestor_folder_ids=0").await;
    assert_eq!(ids(&from_root), set(&[tr.budget, tr.meeting]));
    let bob = t.emulator().shared.store().items[&tr.bobs].owner;
    let bob_root = fx::root(&t, bob);
    let (status, body) = t
        .get(&format!(
            "/search?query=budget&ancestor_folder_ids={bob_root}"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = t
        .get("/search?query=budget&ancestor_folder_ids=999999")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_eq!(
        ids(&search(&t, "query=budget%20readme&file_extensions=txt,MD").await),
        set(&[tr.meeting, tr.readme])
    );
    // Sizes: "nothing special" is 15 bytes, the meeting text 42.
    assert_eq!(
        ids(&search(&t, "query=budget%20readme&type=file&size_range=10,20").await),
        set(&[tr.readme])
    );
    // Box documents open-ended ranges (`40,`, `,20`); its description types both bounds
    // as integers, so these break it.
    assert_eq!(
        ids(&search_beyond_description(&t, "query=budget%20readme&type=file&size_range=40,").await),
        set(&[tr.meeting])
    );
    assert_eq!(
        ids(&search_beyond_description(&t, "query=budget%20readme&type=file&size_range=,20").await),
        set(&[tr.readme])
    );
    let (status, _) = t.bad_get("/search?query=x&size_range=big,bigger").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Dates.
    let past = Utc::now() - Duration::days(30);
    fx::edit(&t, tr.readme, |i| {
        i.created_at = past;
        i.modified_at = past;
    });
    let cut = enc(&(Utc::now() - Duration::days(1)).to_rfc3339());
    assert_eq!(
        ids(&search(
            &t,
            &format!("query=budget%20readme&created_at_range=,{cut}")
        )
        .await),
        set(&[tr.readme])
    );
    assert_eq!(
        ids(&search(
            &t,
            &format!("query=budget%20readme&updated_at_range={cut},")
        )
        .await),
        set(&[tr.budget, tr.meeting])
    );
    let (status, body) = t.get("/search?query=x&created_at_range=yesterday,").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["context_info"]["errors"][0]["name"],
        "created_at_range"
    );

    // Owners and the trash.
    assert_eq!(
        search(&t, &format!("query=budget&owner_user_ids={me}")).await["total_count"],
        2
    );
    assert_eq!(
        search(&t, "query=budget&owner_user_ids=1").await["total_count"],
        0
    );
    assert_eq!(
        ids(&search(&t, "query=budget&trash_content=trashed_only").await),
        set(&[tr.old])
    );
    let everything = search(&t, "query=budget&trash_content=all_items").await;
    assert_eq!(ids(&everything), set(&[tr.budget, tr.meeting, tr.old]));
    let trashed = everything["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"].as_str() == Some(tr.old.to_string().as_str()))
        .unwrap()
        .clone();
    assert_eq!(trashed["item_status"], "trashed");
}

#[tokio::test]
async fn paging_fields_and_sorting() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    let mut made = Vec::new();
    for i in 0..45 {
        made.push(fx::file(&t, me, root, &format!("report-{i:02}.txt"), b"r"));
    }
    let first = search(&t, "query=report").await;
    assert_eq!(first["total_count"], 45);
    assert_eq!(first["entries"].as_array().unwrap().len(), 30);
    let second = search(&t, "query=report&offset=30&limit=30").await;
    assert_eq!(second["entries"].as_array().unwrap().len(), 15);
    assert_eq!(second["offset"], 30);
    let mut all = ids(&first);
    all.extend(ids(&second));
    assert_eq!(all.len(), 45);
    // Above the description's maximum of 200, on purpose: Box answers 200.
    let big = search_beyond_description(&t, "query=report&limit=500").await;
    assert_eq!(big["limit"], 200);
    assert_eq!(big["entries"].as_array().unwrap().len(), 45);

    // Sorting by modification time, newest first unless ASC.
    let newest = made[7];
    fx::edit(&t, newest, |i| {
        i.modified_at = Utc::now() + Duration::hours(1)
    });
    let oldest = made[3];
    fx::edit(&t, oldest, |i| {
        i.modified_at = Utc::now() - Duration::hours(1)
    });
    let by_time = search(&t, "query=report&sort=modified_at").await;
    assert_eq!(by_time["entries"][0]["id"], newest.to_string());
    let asc = search(&t, "query=report&sort=modified_at&direction=ASC").await;
    assert_eq!(asc["entries"][0]["id"], oldest.to_string());

    // `fields`: type, id, etag and the named fields only.
    let slim = search(&t, "query=report&limit=1&fields=name,size").await;
    let e = slim["entries"][0].as_object().unwrap();
    let keys: BTreeSet<&str> = e.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["type", "id", "etag", "name", "size"]));

    // The recent-shared-links variant wraps every item.
    let (status, wrapped) = t
        .get("/search?query=report&limit=2&include_recent_shared_links=true")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wrapped["type"], "search_results_with_shared_links");
    assert_eq!(wrapped["entries"][0]["type"], "search_result");
    assert_eq!(wrapped["entries"][0]["item"]["type"], "file");
}

#[tokio::test]
async fn bad_input_is_a_400() {
    let t = TestEmu::start().await;
    let (status, body) = t.get("/search").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "error");
    assert_eq!(
        body["context_info"]["errors"][0]["reason"],
        "missing_parameter"
    );
    let (status, _) = t.get("/search?query=").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.get("/search?query=x&offset=10001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.get("/search?query=x&offset=10000").await;
    assert_eq!(status, StatusCode::OK);
    // Values outside the description's types and enums, on purpose.
    let (status, _) = t.bad_get("/search?query=x&limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.bad_get("/search?query=x&type=car").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.bad_get("/search?query=x&trash_content=some").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.bad_get("/search?query=x&sort=size").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.get("/search?query=x&ancestor_folder_ids=abc").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = t.get("/search?query=x&scope=enterprise_content").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t.get("/search?query=x&owner_user_ids=bob").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A query with nothing searchable finds nothing.
    let body = search(&t, "query=-").await;
    assert_eq!(body["total_count"], 0);
}

#[tokio::test]
async fn metadata_filters() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    let (status, _) = t
        .post_json(
            "/metadata_templates/schema",
            json!({
                "scope": "enterprise",
                "templateKey": "contract",
                "displayName": "Contract",
                "fields": [
                    {"type": "string", "key": "customer", "displayName": "Customer"},
                    {"type": "float", "key": "amount", "displayName": "Amount"},
                    {"type": "date", "key": "signed", "displayName": "Signed"},
                    {"type": "multiSelect", "key": "regions", "displayName": "Regions",
                     "options": [{"key": "emea"}, {"key": "amer"}, {"key": "apac"}]},
                ],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut files = Vec::new();
    for (i, (customer, amount, signed, regions)) in [
        ("Acme", 100.0, "2024-01-10T00:00:00Z", vec!["emea"]),
        (
            "Globex",
            250.5,
            "2024-03-15T00:00:00Z",
            vec!["amer", "apac"],
        ),
        ("Acme", 900.0, "2024-06-01T00:00:00Z", vec!["apac"]),
    ]
    .into_iter()
    .enumerate()
    {
        let f = fx::file(&t, me, root, &format!("contract-{i}.pdf"), b"%PDF");
        let (status, body) = t
            .post_json(
                &format!("/files/{f}/metadata/enterprise/contract"),
                json!({"customer": customer, "amount": amount, "signed": signed, "regions": regions}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        files.push(f);
    }
    let plain = fx::file(&t, me, root, "contract-plain.pdf", b"%PDF");
    let (status, _) = t
        .post_json(
            &format!("/files/{plain}/metadata/global/properties"),
            json!({"project": "apollo", "priority": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let md = |filters: Value| {
        format!(
            "mdfilters={}",
            enc(
                &json!([{"scope": "enterprise", "templateKey": "contract", "filters": filters}])
                    .to_string()
            )
        )
    };
    let by_value = search(&t, &md(json!({"customer": "Acme"}))).await;
    assert_eq!(ids(&by_value), set(&[files[0], files[2]]));
    let by_two = search(&t, &md(json!({"customer": "Acme", "regions": "apac"}))).await;
    assert_eq!(ids(&by_two), set(&[files[2]]));
    let any_of = search(&t, &md(json!({"regions": ["emea", "amer"]}))).await;
    assert_eq!(ids(&any_of), set(&[files[0], files[1]]));
    let amount = search(&t, &md(json!({"amount": {"gt": 100, "lt": 300}}))).await;
    assert_eq!(
        ids(&amount),
        set(&[files[0], files[1]]),
        "ranges are inclusive"
    );
    let open = search(&t, &md(json!({"amount": {"gt": 200}}))).await;
    assert_eq!(ids(&open), set(&[files[1], files[2]]));
    let dates = search(
        &t,
        &md(json!({"signed": {"gt": "2024-02-01T00:00:00Z", "lt": "2024-12-31T00:00:00Z"}})),
    )
    .await;
    assert_eq!(ids(&dates), set(&[files[1], files[2]]));
    let everything = search(&t, &md(json!({}))).await;
    assert_eq!(everything["total_count"], 3);
    // With a query too: both must match.
    let with_query = search(
        &t,
        &format!("query=contract-2&{}", md(json!({"customer": "Acme"}))),
    )
    .await;
    assert_eq!(ids(&with_query), set(&[files[2]]));

    // global.properties, with the spec example's list form of `filters`.
    let props = format!(
        "mdfilters={}",
        enc(&json!([{"scope": "global", "templateKey": "properties", "filters": [{"project": "apollo"}]}]).to_string())
    );
    // (The description types `filters` as an object, although its own example is a list.)
    assert_eq!(
        ids(&search_beyond_description(&t, &props).await),
        set(&[plain])
    );

    // Bad filters; those outside the description's shape are marked so.
    for (bad, outside_description) in [
        ("not json".to_string(), true),
        (json!({"scope": "enterprise", "templateKey": "contract", "filters": {}}).to_string(), true),
        (json!([]).to_string(), true),
        (
            json!([
                {"scope": "enterprise", "templateKey": "contract", "filters": {}},
                {"scope": "enterprise", "templateKey": "contract", "filters": {}}
            ])
            .to_string(),
            true,
        ),
        (json!([{"scope": "enterprise", "templateKey": "nope", "filters": {}}]).to_string(), false),
        (json!([{"scope": "mars", "templateKey": "contract", "filters": {}}]).to_string(), true),
        (json!([{"scope": "enterprise", "templateKey": "contract", "filters": {"colour": "red"}}]).to_string(), false),
        (json!([{"scope": "enterprise", "templateKey": "contract", "filters": {"amount": {"between": 1}}}]).to_string(), false),
        (json!([{"scope": "enterprise", "templateKey": "contract", "filters": {"signed": {"gt": "soon"}}}]).to_string(), true),
    ] {
        let path = format!("/search?mdfilters={}", enc(&bad));
        let (status, body) = if outside_description {
            t.bad_get(&path).await
        } else {
            t.get(&path).await
        };
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert!(
            body["message"].as_str().unwrap().contains("mdfilters")
                || body["message"].as_str().unwrap().contains("metadata"),
            "{body}"
        );
    }
}
