//! Metadata over HTTP: templates, instances on files and folders, typed validation,
//! atomic JSON-patch updates, the root-folder rule, locks and events.

mod store_fixtures;

use box_emulator::store::Lock;
use box_emulator::testing::TestEmu;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use store_fixtures as fx;

/// A PUT with a JSON-patch body and the content type Box requires.
async fn patch(t: &TestEmu, path: &str, ops: Value) -> (StatusCode, Value) {
    TestEmu::send(
        t.req(Method::PUT, &t.api(path))
            .header("Content-Type", "application/json-patch+json")
            .body(ops.to_string()),
    )
    .await
}

/// [`patch`] with operations that break Box's description on purpose.
async fn bad_patch(t: &TestEmu, path: &str, ops: Value) -> (StatusCode, Value) {
    TestEmu::send(
        t.bad_req(Method::PUT, &t.api(path))
            .header("Content-Type", "application/json-patch+json")
            .body(ops.to_string()),
    )
    .await
}

async fn events_of(t: &TestEmu, from: u64) -> Vec<String> {
    let (_, body) = t.get(&format!("/events?stream_position={from}")).await;
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
}

/// A template with one field of each type. The deprecated `integer` type is not in Box's
/// description any more, so the request is marked as breaking it on purpose.
async fn typed_template(t: &TestEmu) -> Value {
    let (status, body) = t
        .bad_post_json(
            "/metadata_templates/schema",
            json!({
                "scope": "enterprise",
                "displayName": "Contract Info",
                "fields": [
                    {"type": "string", "key": "customer", "displayName": "Customer", "description": "Who"},
                    {"type": "float", "key": "amount", "displayName": "Amount"},
                    {"type": "date", "key": "signed", "displayName": "Signed"},
                    {"type": "enum", "key": "stage", "displayName": "Stage",
                     "options": [{"key": "draft"}, {"key": "final"}]},
                    {"type": "multiSelect", "key": "regions", "displayName": "Regions",
                     "options": [{"key": "emea"}, {"key": "amer"}, {"key": "apac"}]},
                    {"type": "integer", "key": "pages", "displayName": "Pages", "hidden": true},
                ],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn templates_are_created_listed_and_read() {
    let t = TestEmu::start().await;
    let eid = t.emulator().info.enterprise_id.clone();
    let tpl = typed_template(&t).await;
    assert_eq!(tpl["type"], "metadata_template");
    assert_eq!(
        tpl["templateKey"], "contractInfo",
        "derived from the display name"
    );
    assert_eq!(tpl["scope"], format!("enterprise_{eid}"));
    assert_eq!(tpl["hidden"], false);
    assert_eq!(tpl["copyInstanceOnItemCopy"], false);
    let fields = tpl["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 6);
    assert_eq!(fields[0]["description"], "Who");
    assert!(fields[0]["id"].is_string());
    assert_eq!(fields[3]["options"][1]["key"], "final");
    assert!(fields[3]["options"][1]["id"].is_string());
    assert_eq!(fields[5]["hidden"], true);

    let (status, got) = t
        .get("/metadata_templates/enterprise/contractInfo/schema")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, tpl);
    let (status, got) = t
        .get(&format!(
            "/metadata_templates/enterprise_{eid}/contractInfo/schema"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["id"], tpl["id"]);
    let (status, got) = t
        .get(&format!(
            "/metadata_templates/{}",
            tpl["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["templateKey"], "contractInfo");

    let (status, list) = t.get("/metadata_templates/enterprise").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["entries"].as_array().unwrap().len(), 1);
    assert_eq!(list["entries"][0]["templateKey"], "contractInfo");
    let (status, global) = t.get("/metadata_templates/global").await;
    assert_eq!(status, StatusCode::OK);
    assert!(global["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["templateKey"] == "properties" && e["scope"] == "global"));
    let (status, props) = t.get("/metadata_templates/global/properties/schema").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(props["templateKey"], "properties");

    // Errors (the unknown scope, the bad key and the unknown field type break Box's
    // description on purpose).
    let (status, _) = t.get("/metadata_templates/enterprise/nothing/schema").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .bad_get("/metadata_templates/elsewhere/contractInfo/schema")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = t
        .post_json(
            "/metadata_templates/schema",
            json!({"scope": "enterprise", "displayName": "Again", "templateKey": "contractInfo"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = t
        .bad_post_json(
            "/metadata_templates/schema",
            json!({"scope": "enterprise", "displayName": "Bad", "templateKey": "9lives"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .post_json(
            "/metadata_templates/schema",
            json!({"scope": "global", "displayName": "Mine"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .bad_post_json(
            "/metadata_templates/schema",
            json!({"scope": "enterprise", "displayName": "T",
                   "fields": [{"type": "colour", "key": "c", "displayName": "C"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, bob_token) = fx::user(&t, "Bob");
    let (status, body) = TestEmu::send(
        t.http
            .post(t.api("/metadata_templates/schema"))
            .bearer_auth(&bob_token)
            .json(&json!({"scope": "enterprise", "displayName": "Bobs"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Field keys, like template keys, default to the camel-cased display name (Box's
    // description requires a field's key, so the request is marked as breaking it).
    let (status, derived) = t
        .bad_post_json(
            "/metadata_templates/schema",
            json!({"scope": "enterprise", "displayName": "SDK Check",
                   "fields": [{"type": "string", "displayName": "Account Owner"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{derived}");
    assert_eq!(derived["templateKey"], "sdkCheck");
    assert_eq!(derived["fields"][0]["key"], "accountOwner");

    // Deleting a template removes its instances too.
    let me = fx::admin(&t);
    let f = fx::file(&t, me, fx::root(&t, me), "c.pdf", b"%PDF");
    let (status, _) = t
        .post_json(
            &format!("/files/{f}/metadata/enterprise/contractInfo"),
            json!({"customer": "Acme"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = t
        .delete("/metadata_templates/enterprise/contractInfo/schema")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = t.get(&format!("/files/{f}/metadata")).await;
    assert_eq!(list["entries"].as_array().unwrap().len(), 0);
    let (status, _) = t
        .get("/metadata_templates/enterprise/contractInfo/schema")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn properties_instance_lifecycle_on_a_file() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let f = fx::file(&t, me, fx::root(&t, me), "notes.txt", b"hello");
    let start = fx::latest(&t);
    let path = format!("/files/{f}/metadata/global/properties");

    let (status, _) = t.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, inst) = t
        .post_json(
            &path,
            json!({"user.color": "blue", "size": 3, "tags": ["a", "b"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inst}");
    assert_eq!(inst["$parent"], format!("file_{f}"));
    assert_eq!(inst["$scope"], "global");
    assert_eq!(inst["$template"], "properties");
    assert_eq!(inst["$version"], 0);
    assert_eq!(inst["$canEdit"], true);
    assert_eq!(inst["$id"].as_str().unwrap().len(), 36);
    assert_eq!(inst["user.color"], "blue");
    assert_eq!(inst["size"], 3);
    assert_eq!(inst["tags"], json!(["a", "b"]));

    let (status, got) = t.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, inst);
    let (status, again) = t.post_json(&path, json!({"x": "y"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["code"], "tuple_already_exists");

    let (status, updated) = patch(
        &t,
        &path,
        json!([
            {"op": "test", "path": "/user.color", "value": "blue"},
            {"op": "replace", "path": "/user.color", "value": "red"},
            {"op": "add", "path": "/a~1b", "value": "slash"},
            {"op": "add", "path": "/t~0ilde", "value": "tilde"},
            {"op": "remove", "path": "/size"},
            {"op": "copy", "from": "/tags", "path": "/labels"},
            {"op": "move", "from": "/tags", "path": "/moved"},
            {"op": "add", "path": "/labels/-", "value": "c"},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["$version"], 1);
    assert_eq!(updated["user.color"], "red");
    assert_eq!(updated["a/b"], "slash");
    assert_eq!(updated["t~ilde"], "tilde");
    assert!(updated.get("size").is_none());
    assert!(updated.get("tags").is_none());
    assert_eq!(updated["moved"], json!(["a", "b"]));
    assert_eq!(updated["labels"], json!(["a", "b", "c"]));

    let (status, list) = t.get(&format!("/files/{f}/metadata")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["entries"].as_array().unwrap().len(), 1);
    assert_eq!(list["entries"][0]["$version"], 1);
    assert!(list["limit"].is_u64());

    let (status, _) = t.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = t.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "instance_not_found");
    let (status, _) = t.delete(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_eq!(
        events_of(&t, start).await,
        [
            "METADATA_INSTANCE_CREATE",
            "METADATA_INSTANCE_UPDATE",
            "METADATA_INSTANCE_DELETE"
        ]
    );
    let (_, page) = t.get(&format!("/events?stream_position={start}")).await;
    assert_eq!(page["entries"][0]["source"]["id"], f.to_string());
}

#[tokio::test]
async fn values_are_checked_against_the_template() {
    let t = TestEmu::start().await;
    typed_template(&t).await;
    let me = fx::admin(&t);
    let f = fx::file(&t, me, fx::root(&t, me), "deal.pdf", b"%PDF");
    let path = format!("/files/{f}/metadata/enterprise/contractInfo");

    let bad = [
        json!({"customer": 5}),
        json!({"amount": "12.5"}),
        json!({"signed": "last tuesday"}),
        json!({"stage": "approved"}),
        json!({"regions": ["emea", "mars"]}),
        json!({"regions": "emea"}),
        json!({"pages": 1.5}),
        json!({"unknown": "x"}),
        json!({"$id": "x"}),
    ];
    for body in bad {
        let (status, err) = t.post_json(&path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {err}");
        assert_eq!(err["code"], "schema_validation_failed", "{body}");
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    let (_, list) = t.get(&format!("/files/{f}/metadata")).await;
    assert_eq!(
        list["entries"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );

    let (status, inst) = t
        .post_json(
            &path,
            json!({
                "customer": "Acme",
                "amount": 12.5,
                "signed": "2024-03-01T10:00:00+02:00",
                "stage": "draft",
                "regions": ["emea", "apac"],
                "pages": 12,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inst}");
    let eid = &t.emulator().info.enterprise_id;
    assert_eq!(inst["$scope"], format!("enterprise_{eid}"));
    assert_eq!(inst["$template"], "contractInfo");
    assert_eq!(
        inst["signed"], "2024-03-01T08:00:00.000Z",
        "dates kept in UTC"
    );
    assert_eq!(inst["amount"], 12.5);

    // The full scope name works as well as the shorthand.
    let (status, got) = t
        .get(&format!(
            "/files/{f}/metadata/enterprise_{eid}/contractInfo"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["$id"], inst["$id"]);

    // global.properties takes any key, but only strings, numbers and string lists.
    let props = format!("/files/{f}/metadata/global/properties");
    let (status, err) = t.post_json(&props, json!({"nested": {"a": 1}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["code"], "schema_validation_failed");
    let (status, _) = t.post_json(&props, json!({"flag": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Unknown templates, scopes, files and ids.
    let (status, err) = t
        .post_json(&format!("/files/{f}/metadata/enterprise/nope"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "instance_tuple_not_found");
    // An unknown scope and a body that is not JSON, outside Box's description on purpose.
    let (status, _) = t
        .bad_post_json(&format!("/files/{f}/metadata/galaxy/properties"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.get("/files/999999/metadata").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t.get("/files/abc/metadata").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = TestEmu::send(
        t.bad_req(Method::POST, &t.api(&props))
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patches_are_atomic() {
    let t = TestEmu::start().await;
    typed_template(&t).await;
    let me = fx::admin(&t);
    let f = fx::file(&t, me, fx::root(&t, me), "deal.pdf", b"%PDF");
    let path = format!("/files/{f}/metadata/enterprise/contractInfo");
    let (status, original) = t
        .post_json(
            &path,
            json!({"customer": "Acme", "amount": 1.0, "signed": "2024-01-01T00:00:00Z", "stage": "draft"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let start = fx::latest(&t);

    // A failing test after a valid change: nothing changes.
    let (status, err) = patch(
        &t,
        &path,
        json!([
            {"op": "replace", "path": "/customer", "value": "Globex"},
            {"op": "test", "path": "/stage", "value": "final"},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    // Replace of a missing key, a bad op, a bad pointer, a value of the wrong type. An
    // unknown op and a bare object instead of a list break Box's description (marked).
    for (ops, outside_description) in [
        (
            json!([{"op": "replace", "path": "/customer", "value": "X"}, {"op": "replace", "path": "/regions", "value": ["emea"]}]),
            false,
        ),
        (json!([{"op": "remove", "path": "/pages"}]), false),
        (
            json!([{"op": "frobnicate", "path": "/customer", "value": "X"}]),
            true,
        ),
        (
            json!([{"op": "add", "path": "customer", "value": "X"}]),
            false,
        ),
        (json!([{"op": "add", "path": "/customer"}]), false),
        (json!([{"op": "move", "path": "/customer"}]), false),
        (
            json!({"op": "add", "path": "/customer", "value": "X"}),
            true,
        ),
    ] {
        let (status, err) = if outside_description {
            bad_patch(&t, &path, ops.clone()).await
        } else {
            patch(&t, &path, ops.clone()).await
        };
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ops} → {err}");
        assert_eq!(err["code"], "bad_request", "{ops}");
    }
    for ops in [
        json!([{"op": "replace", "path": "/customer", "value": "X"}, {"op": "replace", "path": "/amount", "value": "lots"}]),
        json!([{"op": "add", "path": "/stage", "value": "approved"}]),
        json!([{"op": "add", "path": "/newfield", "value": "x"}]),
    ] {
        let (status, err) = patch(&t, &path, ops.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ops} → {err}");
        assert_eq!(err["code"], "schema_validation_failed", "{ops}");
    }
    // The wrong content type (outside Box's description on purpose).
    let (status, _) = TestEmu::send(
        t.bad_req(Method::PUT, &t.api(&path))
            .json(&json!([{"op": "replace", "path": "/customer", "value": "X"}])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, now) = t.get(&path).await;
    assert_eq!(now, original, "failed patches changed nothing");
    assert!(
        events_of(&t, start).await.is_empty(),
        "and recorded nothing"
    );

    // A matching test (a date compares by instant) lets the patch through.
    let (status, updated) = patch(
        &t,
        &path,
        json!([
            {"op": "test", "path": "/signed", "value": "2024-01-01T01:00:00+01:00"},
            {"op": "test", "path": "/amount", "value": 1},
            {"op": "replace", "path": "/stage", "value": "final"},
            {"op": "add", "path": "/regions", "value": ["amer"]},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["stage"], "final");
    assert_eq!(updated["regions"], json!(["amer"]));
    assert_eq!(updated["$version"], 1);
    let (status, updated) = patch(&t, &path, json!([])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["$version"], 2);
}

#[tokio::test]
async fn folders_have_metadata_but_the_root_does_not() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    let d = fx::folder(&t, me, root, "Projects");
    let path = format!("/folders/{d}/metadata/global/properties");
    let (status, inst) = t.post_json(&path, json!({"owner": "team-a"})).await;
    assert_eq!(status, StatusCode::CREATED, "{inst}");
    assert_eq!(inst["$parent"], format!("folder_{d}"));
    let (status, list) = t.get(&format!("/folders/{d}/metadata")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["entries"][0]["owner"], "team-a");
    let (status, updated) = patch(
        &t,
        &path,
        json!([{"op": "replace", "path": "/owner", "value": "team-b"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["owner"], "team-b");
    let (status, _) = t.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A folder id is not a file id.
    let (status, _) = t.get(&format!("/files/{d}/metadata")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (method, path) in [
        (Method::GET, "/folders/0/metadata"),
        (Method::GET, "/folders/0/metadata/global/properties"),
        (Method::POST, "/folders/0/metadata/global/properties"),
        (Method::DELETE, "/folders/0/metadata/global/properties"),
    ] {
        let mut rb = t.req(method.clone(), &t.api(path));
        if method == Method::POST {
            rb = rb.json(&json!({}));
        }
        let (status, body) = TestEmu::send(rb).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(body["code"], "forbidden");
    }
    let (status, _) = t.get(&format!("/folders/{root}/metadata")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn access_locks_and_permissions() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let (bob, bob_token) = fx::user(&t, "Bob");
    let f = fx::file(&t, me, fx::root(&t, me), "locked.txt", b"x");
    let path = format!("/files/{f}/metadata/global/properties");

    // Someone without access sees nothing.
    let (status, _) = TestEmu::send(t.http.get(t.api(&path)).bearer_auth(&bob_token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A lock by someone else blocks changes; the lock holder may still change.
    fx::edit(&t, f, |item| {
        item.lock = Some(Lock {
            id: 1,
            created_by: bob,
            created_at: Utc::now(),
            expires_at: None,
            is_download_prevented: false,
        })
    });
    let (status, err) = t.post_json(&path, json!({"k": "v"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["code"], "access_denied_item_locked");
    // An expired lock locks nothing.
    fx::edit(&t, f, |item| {
        item.lock.as_mut().unwrap().expires_at = Some(Utc::now() - chrono::Duration::seconds(5))
    });
    let (status, _) = t.post_json(&path, json!({"k": "v"})).await;
    assert_eq!(status, StatusCode::CREATED);
    fx::edit(&t, f, |item| {
        item.lock = Some(Lock {
            id: 2,
            created_by: me,
            created_at: Utc::now(),
            expires_at: None,
            is_download_prevented: false,
        })
    });
    let (status, _) = patch(
        &t,
        &path,
        json!([{"op": "add", "path": "/k", "value": "w"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A viewer reads but does not write.
    let shared_folder = fx::folder(&t, me, fx::root(&t, me), "Shared");
    let g = fx::file(&t, me, shared_folder, "g.txt", b"x");
    fx::edit(&t, shared_folder, |item| {
        item.collaborations
            .push(box_emulator::store::Collaboration {
                id: 7,
                user: bob,
                role: "viewer".into(),
                created_by: me,
                created_at: Utc::now(),
            })
    });
    let gpath = format!("/files/{g}/metadata/global/properties");
    let (status, _) = t.post_json(&gpath, json!({"a": "1"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, got) = TestEmu::send(t.http.get(t.api(&gpath)).bearer_auth(&bob_token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["a"], "1");
    let (status, err) = TestEmu::send(t.http.delete(t.api(&gpath)).bearer_auth(&bob_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
}
