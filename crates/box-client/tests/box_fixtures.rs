//! Box's own response fixtures (from Box's Java SDK, `crates/box-emulator/box-fixtures/`, data nobody in
//! this project wrote) read with the client's types: each must parse, and every field the
//! client's type keeps must come out as the fixture has it, so no field boxfs uses is lost,
//! renamed or mistyped.

use std::sync::Arc;

use box_client::events::EventPage;
use box_client::metadata::{MetadataInstance, MetadataTemplate};
use box_client::search::SearchResults;
use box_client::types::{FileVersion, Item, ItemList, Items, SharedLink, User, WebLink};
use box_client::upload::{UploadPart, UploadSession};
use box_client::{BoxError, Client, DeveloperToken, Endpoints, RetryPolicy};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = box_emulator::testing::box_fixtures_dir().join(name);
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture is JSON")
}

/// Every value in `kept` (the client's type written back) that the fixture also has must
/// equal the fixture's, at the same place; fields the fixture lacks come from defaults.
fn same_where_present(fixture: &Value, kept: &Value, at: &str, out: &mut Vec<String>) {
    match (fixture, kept) {
        (Value::Object(f), Value::Object(k)) => {
            for (name, value) in k {
                if let Some(expected) = f.get(name) {
                    same_where_present(expected, value, &format!("{at}/{name}"), out);
                }
            }
        }
        (Value::Array(f), Value::Array(k)) => {
            if f.len() != k.len() {
                out.push(format!("{at}: {} entries kept of {}", k.len(), f.len()));
            }
            for (i, (fv, kv)) in f.iter().zip(k).enumerate() {
                same_where_present(fv, kv, &format!("{at}/{i}"), out);
            }
        }
        // Box writes some numbers as strings (`next_stream_position`); the client may
        // hold either, as long as the value is the same.
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s))
            if s == &n.to_string() => {}
        (f, k) if f == k => {}
        (Value::Null, _) => {}
        (f, k) => out.push(format!("{at}: fixture has {f}, the client kept {k}")),
    }
}

fn reads_losslessly<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let raw = fixture(name);
    let typed: T = serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("{name} does not parse with the client's type: {e}"));
    let kept = serde_json::to_value(&typed).expect("serializes");
    let mut diffs = Vec::new();
    same_where_present(&raw, &kept, "", &mut diffs);
    assert!(diffs.is_empty(), "{name}:\n{}", diffs.join("\n"));
    typed
}

#[derive(Serialize, Deserialize)]
struct Entries<T> {
    entries: Vec<T>,
}

#[derive(Serialize, Deserialize)]
struct PartAnswer {
    part: UploadPart,
}

/// `PUT …?fields=shared_link` answered with the link alone (the SDK's fixture keeps
/// nothing else).
#[derive(Serialize, Deserialize)]
struct SharedLinkAnswer {
    shared_link: SharedLink,
}

const ITEMS: &[&str] = &[
    "BoxFile/GetFileInfo200.json",
    "BoxFile/CopyFile200.json",
    "BoxFile/MoveFile200.json",
    "BoxFile/LockFile200.json",
    "BoxFile/UnlockFile200.json",
    "BoxFile/UpdateFileInfo200.json",
    "BoxFile/CreateSharedLinkWithPassword201.json",
    "BoxFolder/GetFolderInfo200.json",
    // The root folder's information, with its first items.
    "BoxFolder/GetAllRootFolderItems200.json",
    "BoxFolder/CreateNewFolder201.json",
    "BoxFolder/CopyFolder201.json",
    "BoxFolder/MoveFolder200.json",
    "BoxFolder/UpdateFolderInfo200.json",
    "BoxFolder/CreateSharedLinkForFolder200.json",
    "BoxTrash/GetTrashedFileItemInfo200.json",
    "BoxTrash/GetTrashedFolderItemInfo200.json",
    "BoxTrash/RestoreFileItemFromTrash201.json",
    "BoxTrash/RestoreFolderItemFromTrash201.json",
    // Web links are items too (listings hold them, with their URL); boxfs shows no web
    // link, but a listing must still read.
    "BoxWebLink/CreateWebLinkOnFolder201.json",
    "BoxWebLink/GetWebLinkOnFolder200.json",
    "BoxWebLink/UpdateWebLinkOnFolder200.json",
    // `GET /shared_items` answers the item behind the link.
    "BoxItem/GetSharedItemFile200.json",
];

const LISTINGS: &[&str] = &[
    "BoxFolder/GetAllFolderItems200.json",
    "BoxFolder/GetFolderItemsWithSort200.json",
    "BoxTrash/GetAllTrashItems200.json",
    "BoxTrash/GetAllTrashItemsUsingmarker200.json",
];

const METADATA_INSTANCES: &[&str] = &[
    "BoxFile/CreateMetadataOnFile201.json",
    "BoxFile/GetMetadataOnFile200.json",
    "BoxFile/UpdateMetadataOnFile200.json",
    "BoxFolder/CreateMetadataOnFolder201.json",
    "BoxFolder/GetMetadataForFolder200.json",
    "BoxFolder/UpdateMetadataOnFolder200.json",
];

const METADATA_TEMPLATES: &[&str] = &[
    "BoxMetadataTemplate/GetAMetadataTemplateInfo200.json",
    "BoxMetadataTemplate/CreateMetadataTemplate200.json",
    "BoxMetadataTemplate/GetMetadataTemplateOptionInfo200.json",
];

const SHARED_LINKS: &[&str] = &[
    "BoxSharedLink/CreateSharedLink201.json",
    "BoxSharedLink/CreateEditableSharedLink201.json",
];

const ERRORS: &[&str] = &[
    "BoxException/BoxResponseException400WithErrorAndErrorDescription.json",
    "BoxException/BoxResponseException403.json",
    "BoxException/BoxResponseException403WithRequestID.json",
    "BoxException/BoxResponseException404.json",
    "BoxException/BoxResponseException409.json",
    "BoxException/BoxResponseException500.json",
];

const UPLOADED: &[&str] = &[
    "BoxFile/CommitUpload201.json",
    "BoxFile/CommitUploadWithAttributes201.json",
    "BoxFile/UploadNewVersion201.json",
];

#[test]
fn files_and_folders_read_without_loss() {
    for name in ITEMS {
        let item: Item = reads_losslessly(name);
        assert!(!item.id.is_empty(), "{name}");
    }
    // The root folder in a path collection carries `sequence_id: null` and `etag: null`.
    let file: Item = reads_losslessly("BoxFile/GetFileInfo200.json");
    let raw = fixture("BoxFile/GetFileInfo200.json");
    let root = &raw["path_collection"]["entries"][0];
    assert_eq!(root["id"], "0");
    assert_eq!(root["etag"], Value::Null);
    assert_eq!(root["sequence_id"], Value::Null);
    assert!(file.path_collection.is_some());
}

#[test]
fn web_links_read_without_loss() {
    for name in [
        "BoxWebLink/CreateWebLinkOnFolder201.json",
        "BoxWebLink/GetWebLinkOnFolder200.json",
        "BoxWebLink/UpdateWebLinkOnFolder200.json",
    ] {
        let link: WebLink = reads_losslessly(name);
        assert_eq!(link.url, "https://example.com", "{name}");
        assert!(!link.name.is_empty() && link.parent.is_some(), "{name}");
        let item: Item = reads_losslessly(name);
        assert!(item.is_web_link(), "{name}");
        assert_eq!(item.url.as_deref(), Some("https://example.com"), "{name}");
    }
}

#[test]
fn listings_read_without_loss() {
    for name in LISTINGS {
        let page: Items = reads_losslessly(name);
        let raw = fixture(name);
        assert_eq!(
            page.entries.len(),
            raw["entries"].as_array().unwrap().len(),
            "{name}"
        );
    }
    for name in UPLOADED {
        let list: ItemList = reads_losslessly(name);
        assert_eq!(list.entries.len(), 1, "{name}");
    }
}

#[test]
fn upload_sessions_parts_and_versions_read_without_loss() {
    let session: UploadSession = reads_losslessly("BoxFile/CreateUploadSession201.json");
    assert!(session.part_size > 0);
    assert!(session.session_endpoints.commit.is_some());
    let parts: Entries<UploadPart> = reads_losslessly("BoxFile/ListUploadedParts200.json");
    assert_eq!(parts.entries.len(), 2);
    let one: PartAnswer = reads_losslessly("BoxFile/UploadPartOne200.json");
    assert_eq!(one.part.size, 5);
    let listed: Entries<UploadPart> = reads_losslessly("BoxFile/ListUploadedPart200.json");
    assert_eq!(listed.entries.len(), 1);
    let versions: Entries<FileVersion> = reads_losslessly("BoxFile/GetAllFileVersions200.json");
    assert!(!versions.entries.is_empty());
    let version: FileVersion = reads_losslessly("BoxFile/GetFileVersion200.json");
    assert_eq!(version.size, Some(37921));
}

#[test]
fn metadata_instances_and_templates_read_without_loss() {
    for name in METADATA_INSTANCES {
        let instance: MetadataInstance = reads_losslessly(name);
        assert!(
            !instance.template.is_empty() && !instance.scope.is_empty(),
            "{name}"
        );
        assert!(
            instance.values.keys().all(|k| !k.starts_with('$')),
            "{name}: Box's $ fields are not values"
        );
    }
    let on_folder: Entries<MetadataInstance> =
        reads_losslessly("BoxFolder/GetAllMetadataOnFolder200.json");
    assert_eq!(on_folder.entries[0].get("foo"), Some(&Value::from("bar")));
    for name in METADATA_TEMPLATES {
        let template: MetadataTemplate = reads_losslessly(name);
        assert!(!template.fields.is_empty(), "{name}");
    }
    let all: Entries<MetadataTemplate> =
        reads_losslessly("BoxMetadataTemplate/GetAllEnterpriseTemplates200.json");
    assert_eq!(all.entries.len(), 2);
}

#[test]
fn shared_links_and_search_results_read_without_loss() {
    for name in SHARED_LINKS {
        let answer: SharedLinkAnswer = reads_losslessly(name);
        assert!(answer.shared_link.is_password_enabled, "{name}");
    }
    // Search results wrapped as `search_result` (asked with include_recent_shared_links):
    // each wrapper's item is what the client keeps.
    let name = "BoxSearch/GetSearchItemsIncludingSharedLinks200.json";
    let raw = fixture(name);
    let results: SearchResults = serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("{name} does not parse with the client's type: {e}"));
    assert_eq!(results.total_count, 11);
    let wrapped = raw["entries"].as_array().unwrap();
    assert_eq!(results.entries.len(), wrapped.len());
    let mut diffs = Vec::new();
    for (i, (item, entry)) in results.entries.iter().zip(wrapped).enumerate() {
        assert_eq!(entry["type"], "search_result");
        let kept = serde_json::to_value(item).unwrap();
        same_where_present(
            &entry["item"],
            &kept,
            &format!("/entries/{i}/item"),
            &mut diffs,
        );
    }
    assert!(diffs.is_empty(), "{name}:\n{}", diffs.join("\n"));
}

/// Answers every request with `body` and `status`, on loopback.
async fn serve_once(status: u16, body: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                axum::Json(body),
            )
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Box's error bodies, answered to a real call: the client's error keeps the status, the
/// code (or OAuth's `error` and `error_description`) and the request id.
#[tokio::test]
async fn error_bodies_become_errors_that_keep_what_box_said() {
    for name in ERRORS {
        let raw = fixture(name);
        // The status the file is named after (one fixture's body says another).
        let digits: String = name
            .trim_start_matches("BoxException/BoxResponseException")
            .chars()
            .take(3)
            .collect();
        let status: u16 = digits.parse().expect("a status in the name");
        let base = serve_once(status, raw.clone()).await;
        let client = Client::with_http(
            Arc::new(DeveloperToken::new("token")),
            Endpoints::from_base(&base).unwrap(),
            box_client::client::http_client(),
            RetryPolicy::none(),
        );
        let err = client.me().await.expect_err(name);
        assert_eq!(err.status(), Some(status), "{name}: {err}");
        let text = |k: &str| raw[k].as_str().map(str::to_string);
        match &err {
            BoxError::Api(info) => {
                assert_eq!(Some(info.code.clone()), text("code"), "{name}");
                assert_eq!(info.request_id, text("request_id"), "{name}");
            }
            BoxError::OAuth {
                error,
                description,
                request_id,
                ..
            } => {
                assert_eq!(Some(error.clone()), text("error"), "{name}");
                assert_eq!(
                    Some(description.clone()),
                    text("error_description"),
                    "{name}"
                );
                assert_eq!(request_id.clone(), text("request_id"), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn events_and_users_read_without_loss() {
    let page: EventPage = reads_losslessly("BoxEvent/GetEnterpriseEvents200.json");
    assert_eq!(page.entries.len(), 2);
    let me: User = reads_losslessly("BoxUser/GetCurrentUserInfo200.json");
    assert!(!me.id.is_empty());
}

/// Every fixture copied into the repository is read by a test above.
#[test]
fn every_copied_fixture_is_checked() {
    let root = box_emulator::testing::box_fixtures_dir();
    let mut copied = Vec::new();
    for dir in std::fs::read_dir(&root).expect("fixtures") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).expect("dir") {
            let f = f.expect("entry").path();
            copied.push(format!(
                "{}/{}",
                dir.file_name().unwrap().to_string_lossy(),
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    let mut checked: Vec<String> = ITEMS
        .iter()
        .chain(LISTINGS)
        .chain(UPLOADED)
        .chain(METADATA_INSTANCES)
        .chain(METADATA_TEMPLATES)
        .chain(SHARED_LINKS)
        .chain(ERRORS)
        .chain(&[
            "BoxFile/CreateUploadSession201.json",
            "BoxFile/ListUploadedParts200.json",
            "BoxFile/ListUploadedPart200.json",
            "BoxFile/UploadPartOne200.json",
            "BoxFile/GetAllFileVersions200.json",
            "BoxFile/GetFileVersion200.json",
            "BoxFolder/GetAllMetadataOnFolder200.json",
            "BoxMetadataTemplate/GetAllEnterpriseTemplates200.json",
            "BoxSearch/GetSearchItemsIncludingSharedLinks200.json",
            "BoxEvent/GetEnterpriseEvents200.json",
            "BoxUser/GetCurrentUserInfo200.json",
        ])
        .map(|s| s.to_string())
        .collect();
    copied.sort();
    checked.sort();
    assert_eq!(copied, checked);
    assert_eq!(checked.len(), 57);
}

/// The comparison itself catches a lost or changed field.
#[test]
fn a_changed_or_dropped_value_is_named() {
    let fixture = serde_json::json!({"id": "1", "size": 5, "entries": [{"a": 1}, {"a": 2}]});
    let mut out = Vec::new();
    same_where_present(
        &fixture,
        &serde_json::json!({"id": "1", "size": 6, "entries": [{"a": 1}]}),
        "",
        &mut out,
    );
    assert_eq!(
        out,
        [
            "/size: fixture has 5, the client kept 6",
            "/entries: 1 entries kept of 2"
        ]
    );
}
