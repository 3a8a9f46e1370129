//! The emulator's answers next to Box's own (the Java SDK's fixtures in
//! `crates/box-emulator/box-fixtures/`): the same call, asking for the fixture's fields, must answer every
//! field the fixture has, with the same JSON type, quirks included (the root folder in a
//! `path_collection` has `sequence_id: null` and `etag: null`). Every difference the
//! emulator keeps is listed in [`KNOWN_DIFFERENCES`] with its reason.

use box_emulator::testing::TestEmu;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// (fixture, field path, why the emulator differs there).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "BoxFile/GetFileInfo200.json",
        "/classification",
        "the emulator has no classifications (Shield); an unclassified item has none to show",
    ),
    (
        "BoxFolder/GetFolderInfo200.json",
        "/classification",
        "the emulator has no classifications (Shield); an unclassified item has none to show",
    ),
    (
        "BoxFile/GetFileInfo200.json",
        "/disposition_at",
        "the emulator has no retention policies, so no file has a disposition date: null, as \
         Box answers for a file without one",
    ),
    (
        "BoxUser/GetCurrentUserInfo200.json",
        "/notification_email",
        "emulator users have no alternate notification address; Box then answers `[]` \
         (GetCurrentUserInfoWithNoNotifcationEmail200 in the same fixtures), which its own \
         description does not allow, so the emulator leaves the field out",
    ),
];

fn fixture(name: &str) -> Value {
    let path = box_emulator::testing::box_fixtures_dir().join(name);
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where `got` lacks a field of `want` or holds another JSON type (a null in the fixture
/// says nothing about the type).
fn shape_diff(want: &Value, got: &Value, at: &str, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (name, wv) in w {
                let here = format!("{at}/{name}");
                match g.get(name) {
                    Some(gv) => shape_diff(wv, gv, &here, out),
                    None => out.push(format!("{here}: missing")),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if let (Some(w0), Some(g0)) = (w.first(), g.first()) {
                shape_diff(w0, g0, &format!("{at}/0"), out);
            }
        }
        (Value::Null, _) => {}
        (w, g) if kind(w) == kind(g) => {}
        (w, g) => out.push(format!(
            "{at}: {} in Box's answer, {} here",
            kind(w),
            kind(g)
        )),
    }
}

/// Whether a difference of fixture `name` is listed in [`KNOWN_DIFFERENCES`].
fn listed(name: &str, line: &str) -> bool {
    KNOWN_DIFFERENCES
        .iter()
        .any(|(f, path, _)| *f == name && line.starts_with(&format!("{path}:")))
}

/// Every difference of one answer, as `fixture: path: what`.
fn differences(name: &str, got: &Value) -> Vec<String> {
    let mut out = Vec::new();
    shape_diff(&fixture(name), got, "", &mut out);
    out.into_iter().map(|l| format!("{name}: {l}")).collect()
}

fn fields_of(name: &str) -> String {
    fixture(name)
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(",")
}

async fn get_ok(t: &TestEmu, path: &str) -> Value {
    let (status, body) = t.get(path).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

#[tokio::test]
async fn answers_have_the_shape_of_box_fixtures() {
    let t = TestEmu::start().await;
    // Not directly in the root: a folder in the root has the root, with its null etag and
    // sequence_id, as its parent, where the fixture's parent is an ordinary folder.
    let outer = t.mkdir("0", "Outer").await;
    let dir = t.mkdir(&outer, "Shapes").await;
    let file = t.upload_file(&dir, "Contract.pdf", b"contract").await;
    let file_id = file["id"].as_str().unwrap().to_string();
    let mut found = Vec::new();
    let mut check = |name: &str, got: &Value| found.extend(differences(name, got));

    let name = "BoxFile/GetFileInfo200.json";
    let got = get_ok(&t, &format!("/files/{file_id}?fields={}", fields_of(name))).await;
    check(name, &got);
    // The root folder's quirk, as Box has it.
    let root = &got["path_collection"]["entries"][0];
    assert_eq!(root["id"], "0");
    assert_eq!(root["sequence_id"], Value::Null);
    assert_eq!(root["etag"], Value::Null);

    let name = "BoxFolder/GetFolderInfo200.json";
    let got = get_ok(&t, &format!("/folders/{dir}?fields={}", fields_of(name))).await;
    check(name, &got);

    let name = "BoxUser/GetCurrentUserInfo200.json";
    let got = get_ok(&t, &format!("/users/me?fields={}", fields_of(name))).await;
    check(name, &got);

    let name = "BoxFolder/GetAllFolderItems200.json";
    let entry_fields = fixture(name)["entries"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let got = get_ok(&t, &format!("/folders/{dir}/items?fields={entry_fields}")).await;
    check(name, &got);

    let name = "BoxFile/CreateUploadSession201.json";
    let (status, got) = TestEmu::send(
        t.req(Method::POST, &t.upload("/files/upload_sessions"))
            .json(&json!({"folder_id": dir, "file_size": 30_000_000, "file_name": "big.bin"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
    check(name, &got);

    // A second version, so that the file has an old one to list.
    let form = reqwest::multipart::Form::new()
        .text("attributes", json!({"name": "Contract.pdf"}).to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"v2".to_vec()).file_name("Contract.pdf"),
        );
    let (status, body) = TestEmu::send(
        t.req(
            Method::POST,
            &t.upload(&format!("/files/{file_id}/content")),
        )
        .multipart(form),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let name = "BoxFile/GetAllFileVersions200.json";
    let entry_fields = fixture(name)["entries"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let got = get_ok(
        &t,
        &format!("/files/{file_id}/versions?fields={entry_fields}"),
    )
    .await;
    check(name, &got);

    let (status, _) = t.delete(&format!("/files/{file_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let name = "BoxTrash/GetTrashedFileItemInfo200.json";
    let got = get_ok(
        &t,
        &format!("/files/{file_id}/trash?fields={}", fields_of(name)),
    )
    .await;
    check(name, &got);

    let unexplained: Vec<&String> = found
        .iter()
        .filter(|l| {
            let (name, rest) = l.split_once(": ").expect("named");
            !listed(name, rest)
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "differences from Box's fixtures that are neither fixed nor listed:\n{unexplained:#?}"
    );
    // A listed difference that no longer occurs is stale: take it off the list.
    for (name, path, _) in KNOWN_DIFFERENCES {
        assert!(
            found
                .iter()
                .any(|l| l.starts_with(&format!("{name}: {path}:"))),
            "{name} {path} is listed as a difference but the answers agree now"
        );
    }
}

#[test]
fn the_shape_diff_names_missing_and_retyped_fields() {
    let mut out = Vec::new();
    shape_diff(
        &json!({"a": 1, "b": "x", "c": null, "d": {"e": true}}),
        &json!({"a": "1", "c": 5, "d": {}}),
        "",
        &mut out,
    );
    assert_eq!(
        out,
        [
            "/a: number in Box's answer, string here",
            "/b: missing",
            "/d/e: missing"
        ]
    );
}
