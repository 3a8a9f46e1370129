//! The emulator's answers next to Box's own (the Java SDK's fixtures in
//! `crates/box-emulator/box-fixtures/`): the same call, asking for the fixture's fields, must answer every
//! field the fixture has, with the same JSON type, quirks included (the root folder in a
//! `path_collection` has `sequence_id: null` and `etag: null`). Every difference the
//! emulator keeps is listed in [`KNOWN_DIFFERENCES`] with its reason. Compared: files,
//! folders, listings, the user, upload sessions and parts, versions, trash (by offset and by
//! marker), metadata instances and templates, shared links and shared items, search with
//! recent shared links, web links, and error bodies (31 fixtures). Not compared because the
//! emulator serves no such call: folder locks, a single version by id.

use box_emulator::testing::TestEmu;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Why Box's shared-item fixture differs where it fills every field with an example.
const EXAMPLE_ONLY: &str = "the fixture fills every field with an example value; an active \
     item without an expiry, retention or trash date has null there, as Box's description allows";

/// The hand-made path of two fixtures.
const PATH_BELOW_ROOT: &str = "the fixture's path_collection starts below the root; Box's starts \
     at the root, whose etag and sequence_id are null (GetFileInfo200 has it so)";

/// (fixture, field path, why the emulator differs there).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "BoxItem/GetSharedItemFile200.json",
        "/classification",
        "the emulator has no classifications (Shield); an unclassified item has none to show",
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/disposition_at",
        EXAMPLE_ONLY,
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/expires_at",
        EXAMPLE_ONLY,
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/trashed_at",
        EXAMPLE_ONLY,
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/purged_at",
        EXAMPLE_ONLY,
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/expiring_embed_link",
        "the emulator serves no Box Embed previews",
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/representations",
        "the emulator makes no representations (thumbnails, PDF renditions)",
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/watermark_info",
        "the emulator has no watermarking",
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/shared_link_permission_options",
        "not modelled: boxfs reads a link's permissions, not the options it could have",
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/metadata/enterprise_27335",
        "the fixture's item carries an instance of a template of Box's own test enterprise",
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/path_collection/entries/0",
        PATH_BELOW_ROOT,
    ),
    (
        "BoxItem/GetSharedItemFile200.json",
        "/lock/app_type",
        "a lock made through the API has no app_type; Box names the app there (Office \
         Online) when one made the lock",
    ),
    (
        "BoxSearch/GetSearchItemsIncludingSharedLinks200.json",
        "/entries/0/item/path_collection/entries/0",
        PATH_BELOW_ROOT,
    ),
    (
        "BoxSearch/GetSearchItemsIncludingSharedLinks200.json",
        "/entries/0/accessible_via_shared_link",
        "Box sends it only for items the user reached through a shared link, which the \
         emulator does not track; its description types it as a non-null string, so the \
         field is left out for other items",
    ),
    (
        "BoxSearch/GetSearchItemsIncludingSharedLinks200.json",
        "/entries/0/item/trashed_at",
        EXAMPLE_ONLY,
    ),
    (
        "BoxSearch/GetSearchItemsIncludingSharedLinks200.json",
        "/entries/0/item/purged_at",
        EXAMPLE_ONLY,
    ),
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

/// Whether a difference line (`/a/b: what`) is at `path` or below it.
fn at_or_below(line: &str, path: &str) -> bool {
    line.strip_prefix(path)
        .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('/'))
}

/// Whether a difference of fixture `name` is listed in [`KNOWN_DIFFERENCES`] (an entry
/// covers its path and everything below it).
fn listed(name: &str, line: &str) -> bool {
    KNOWN_DIFFERENCES
        .iter()
        .any(|(f, path, _)| *f == name && at_or_below(line, path))
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

/// The differences found in one test, and which fixtures it compared.
#[derive(Default)]
struct Checks {
    found: Vec<String>,
    compared: Vec<String>,
}

impl Checks {
    fn check(&mut self, name: &str, got: &Value) {
        self.compared.push(name.to_string());
        self.found.extend(differences(name, got));
    }

    /// Every difference found is listed, and every listed difference of a fixture compared
    /// here still occurs (a stale entry must leave the list).
    fn finish(self) {
        let unexplained: Vec<&String> = self
            .found
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
        for (name, path, _) in KNOWN_DIFFERENCES {
            if !self.compared.iter().any(|c| c == name) {
                continue;
            }
            assert!(
                self.found.iter().any(|l| l
                    .strip_prefix(&format!("{name}: "))
                    .is_some_and(|rest| at_or_below(rest, path))),
                "{name} {path} is listed as a difference but the answers agree now"
            );
        }
    }
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
    let mut checks = Checks::default();
    let mut check = |name: &str, got: &Value| checks.check(name, got);

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

    checks.finish();
}

async fn send_ok(rb: reqwest::RequestBuilder, want: StatusCode) -> Value {
    let (status, body) = TestEmu::send(rb).await;
    assert_eq!(status, want, "{body}");
    body
}

/// Metadata instances on files and folders (global `properties` and an enterprise
/// template like the fixtures' `testtemplate`), and templates.
#[tokio::test]
async fn metadata_answers_have_the_shape_of_box_fixtures() {
    let t = TestEmu::start().await;
    let dir = t.mkdir("0", "Metadata").await;
    let file = t.upload_file(&dir, "m.txt", b"m").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut checks = Checks::default();

    let name = "BoxMetadataTemplate/CreateMetadataTemplate200.json";
    let template = json!({
        "scope": "enterprise",
        "templateKey": "testtemplate",
        "displayName": "Test Template",
        // An enum first, as in the creation fixture (fixtures compare first entries).
        "fields": [
            {"type": "enum", "key": "fy", "displayName": "FY",
             "options": [{"key": "FY16"}, {"key": "FY17"}]},
            {"type": "string", "key": "test1", "displayName": "Test 1"},
            {"type": "multiSelect", "key": "test2", "displayName": "Test 2",
             "options": [{"key": "first"}, {"key": "second"}, {"key": "third"}]},
            {"type": "float", "key": "test3", "displayName": "Test 3"},
            {"type": "float", "key": "test4", "displayName": "Test 4"},
        ],
    });
    let got = send_ok(
        t.req(Method::POST, &t.api("/metadata_templates/schema"))
            .json(&template),
        StatusCode::CREATED,
    )
    .await;
    checks.check(name, &got);
    let scope = got["scope"].as_str().unwrap().to_string();
    let got = get_ok(
        &t,
        &format!("/metadata_templates/{scope}/testtemplate/schema"),
    )
    .await;
    checks.check("BoxMetadataTemplate/GetAMetadataTemplateInfo200.json", &got);
    checks.check(
        "BoxMetadataTemplate/GetMetadataTemplateOptionInfo200.json",
        &got,
    );
    let got = get_ok(&t, "/metadata_templates/enterprise").await;
    checks.check(
        "BoxMetadataTemplate/GetAllEnterpriseTemplates200.json",
        &got,
    );

    for (kind, id, create, get, update) in [
        (
            "files",
            &file,
            "BoxFile/CreateMetadataOnFile201.json",
            "BoxFile/GetMetadataOnFile200.json",
            "BoxFile/UpdateMetadataOnFile200.json",
        ),
        (
            "folders",
            &dir,
            "BoxFolder/CreateMetadataOnFolder201.json",
            "BoxFolder/GetMetadataForFolder200.json",
            "BoxFolder/UpdateMetadataOnFolder200.json",
        ),
    ] {
        let properties = format!("/{kind}/{id}/metadata/global/properties");
        let got = send_ok(
            t.req(Method::POST, &t.api(&properties))
                .json(&json!({"foo": "bar"})),
            StatusCode::CREATED,
        )
        .await;
        checks.check(create, &got);
        checks.check(get, &get_ok(&t, &properties).await);
        if kind == "folders" {
            let got = get_ok(&t, &format!("/folders/{dir}/metadata")).await;
            checks.check("BoxFolder/GetAllMetadataOnFolder200.json", &got);
        }
        let custom = format!("/{kind}/{id}/metadata/{scope}/testtemplate");
        send_ok(
            t.req(Method::POST, &t.api(&custom))
                .json(&json!({"test1": "before"})),
            StatusCode::CREATED,
        )
        .await;
        let ops = json!([
            {"op": "replace", "path": "/test1", "value": "text"},
            {"op": "add", "path": "/test2", "value": ["first", "second", "third"]},
            {"op": "add", "path": "/test3", "value": 2},
            {"op": "add", "path": "/test4", "value": 2.333_333_333_333_333_4e17},
        ]);
        let got = send_ok(
            t.req(Method::PUT, &t.api(&custom))
                .header("Content-Type", "application/json-patch+json")
                .body(ops.to_string()),
            StatusCode::OK,
        )
        .await;
        checks.check(update, &got);
    }
    checks.finish();
}

/// Shared links and the item behind one, the trash by markers, a session's parts, search
/// with recent shared links, and error bodies.
#[tokio::test]
async fn links_trash_parts_search_and_errors_have_the_shape_of_box_fixtures() {
    let t = TestEmu::start().await;
    let outer = t.mkdir("0", "Outer").await;
    let dir = t.mkdir(&outer, "Contracts").await;
    let file = t.upload_file(&dir, "Contract.pdf", b"contract").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut checks = Checks::default();

    for name in [
        "BoxSharedLink/CreateSharedLink201.json",
        "BoxSharedLink/CreateEditableSharedLink201.json",
    ] {
        let editable = name.contains("Editable");
        let link = json!({
            "access": "open",
            "password": "do-not-share-1",
            "permissions": {"can_download": true, "can_edit": editable},
            "vanity_name": "contract-for-q1-renewal",
            "unshared_at": "2099-12-12T10:53:43-08:00",
        });
        let got = send_ok(
            t.req(
                Method::PUT,
                &t.api(&format!("/files/{file}?fields=shared_link")),
            )
            .json(&json!({"shared_link": link})),
            StatusCode::OK,
        )
        .await;
        checks.check(name, &got);
    }
    let url = get_ok(&t, &format!("/files/{file}?fields=shared_link")).await["shared_link"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    // Locked, as the fixture's file is.
    send_ok(
        t.req(Method::PUT, &t.api(&format!("/files/{file}")))
            .json(&json!({"lock": {"access": "lock", "expires_at": "2099-12-12T10:53:43-08:00"}})),
        StatusCode::OK,
    )
    .await;
    let name = "BoxItem/GetSharedItemFile200.json";
    let got = send_ok(
        t.req(
            Method::GET,
            &t.api(&format!("/shared_items?fields={}", fields_of(name))),
        )
        .header(
            "BoxApi",
            format!("shared_link={url}&shared_link_password=do-not-share-1"),
        ),
        StatusCode::OK,
    )
    .await;
    checks.check(name, &got);

    let name = "BoxSearch/GetSearchItemsIncludingSharedLinks200.json";
    let item_fields = fixture(name)["entries"][0]["item"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let got = get_ok(
        &t,
        &format!("/search?query=Contract&include_recent_shared_links=true&fields={item_fields}"),
    )
    .await;
    checks.check(name, &got);

    let session = send_ok(
        t.req(Method::POST, &t.upload("/files/upload_sessions"))
            .json(&json!({"folder_id": dir, "file_size": 20_000_000, "file_name": "big.bin"})),
        StatusCode::CREATED,
    )
    .await;
    let part = vec![7u8; session["part_size"].as_u64().unwrap() as usize];
    let digest = box_emulator::testing::uploads::sha1_b64(&part);
    let session_url = session["session_endpoints"]["upload_part"]
        .as_str()
        .unwrap();
    send_ok(
        t.req(Method::PUT, session_url)
            .header("Digest", format!("sha={digest}"))
            .header(
                "Content-Range",
                format!("bytes 0-{}/20000000", part.len() - 1),
            )
            .header("Content-Type", "application/octet-stream")
            .body(part),
        StatusCode::OK,
    )
    .await;
    let got = get_ok_at(
        &t,
        session["session_endpoints"]["list_parts"].as_str().unwrap(),
    )
    .await;
    checks.check("BoxFile/ListUploadedPart200.json", &got);

    let (status, _) = t.delete(&format!("/files/{file}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t.delete(&format!("/folders/{dir}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let name = "BoxTrash/GetAllTrashItemsUsingmarker200.json";
    let entry_fields = "sequence_id,etag,name,sha1,file_version";
    let got = get_ok(
        &t,
        &format!("/folders/trash/items?usemarker=true&limit=1&fields={entry_fields}"),
    )
    .await;
    checks.check(name, &got);

    // Errors: a missing file, a name in use, a non-admin listing users.
    let (status, got) = t.get("/files/123456789").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    checks.check("BoxException/BoxResponseException404.json", &got);
    let (status, got) = t
        .post_json("/folders", json!({"name": "Outer", "parent": {"id": "0"}}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    checks.check("BoxException/BoxResponseException409.json", &got);
    let (_, other) = t.other_user(None);
    let (status, got) = TestEmu::send(t.http.get(t.api("/users")).bearer_auth(&other)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    checks.check("BoxException/BoxResponseException403.json", &got);
    checks.check(
        "BoxException/BoxResponseException403WithRequestID.json",
        &got,
    );
    checks.finish();
}

async fn get_ok_at(t: &TestEmu, url: &str) -> Value {
    send_ok(t.req(Method::GET, url), StatusCode::OK).await
}

/// Web links created, read and updated, as Box's recorded answers have them (their parent
/// is a folder in the root, as the fixtures' is).
#[tokio::test]
async fn web_links_have_the_shape_of_box_fixtures() {
    let t = TestEmu::start().await;
    let dir = t.mkdir("0", "Test Folder").await;
    let mut checks = Checks::default();
    // Box's description answers 200 to this create (the fixture's name says 201).
    let created = send_ok(
        t.req(Method::POST, &t.api("/web_links")).json(&json!({
            "url": "https://example.com",
            "parent": {"id": dir},
            "name": "example.com",
            "description": "This goes to an example page",
        })),
        StatusCode::OK,
    )
    .await;
    checks.check("BoxWebLink/CreateWebLinkOnFolder201.json", &created);
    let id = created["id"].as_str().unwrap().to_string();

    let name = "BoxWebLink/GetWebLinkOnFolder200.json";
    let got = get_ok(&t, &format!("/web_links/{id}?fields={}", fields_of(name))).await;
    checks.check(name, &got);

    let updated = send_ok(
        t.req(Method::PUT, &t.api(&format!("/web_links/{id}")))
            .json(&json!({"description": ""})),
        StatusCode::OK,
    )
    .await;
    checks.check("BoxWebLink/UpdateWebLinkOnFolder200.json", &updated);
    assert_eq!(updated["sequence_id"], "1", "one change, as in the fixture");
    checks.finish();
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
