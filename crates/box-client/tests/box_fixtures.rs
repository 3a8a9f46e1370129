//! Box's own response fixtures (from Box's Java SDK, `crates/box-emulator/box-fixtures/`, data nobody in
//! this project wrote) read with the client's types: each must parse, and every field the
//! client's type keeps must come out as the fixture has it, so no field boxfs uses is lost,
//! renamed or mistyped.

use box_client::events::EventPage;
use box_client::types::{FileVersion, Item, ItemList, Items, User};
use box_client::upload::{UploadPart, UploadSession};
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
];

const LISTINGS: &[&str] = &[
    "BoxFolder/GetAllFolderItems200.json",
    "BoxFolder/GetFolderItemsWithSort200.json",
    "BoxTrash/GetAllTrashItems200.json",
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
    let versions: Entries<FileVersion> = reads_losslessly("BoxFile/GetAllFileVersions200.json");
    assert!(!versions.entries.is_empty());
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
        .chain(&[
            "BoxFile/CreateUploadSession201.json",
            "BoxFile/ListUploadedParts200.json",
            "BoxFile/UploadPartOne200.json",
            "BoxFile/GetAllFileVersions200.json",
            "BoxEvent/GetEnterpriseEvents200.json",
            "BoxUser/GetCurrentUserInfo200.json",
        ])
        .map(|s| s.to_string())
        .collect();
    copied.sort();
    checked.sort();
    assert_eq!(copied, checked);
    assert_eq!(checked.len(), 30);
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
