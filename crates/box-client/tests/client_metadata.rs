//! The client's metadata API against the emulator: global properties on files and folders
//! (create, get, list, inline with `fields`, JSON-Patch updates with escaped keys, a failed
//! `test` that changes nothing, delete), enterprise templates (create, schema, list) and
//! their typed values, and bad input.

use std::sync::Arc;

use box_client::metadata::{
    json_pointer, FieldType, ItemRef, MetadataPatch, NewTemplate, PatchOp, TemplateField,
    TemplateScope,
};
use box_client::{BoxError, Client, DeveloperToken, Endpoints};
use box_emulator::testing::TestEmu;
use serde_json::{json, Map, Value};

fn client(t: &TestEmu) -> Client {
    Client::new(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&t.base).unwrap(),
    )
}

fn values(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn properties_get_create_update_delete() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let file_id = t.upload_file("0", "tagged.txt", b"x").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = ItemRef::file(&file_id);
    assert!(c.metadata_list(&file).await.unwrap().is_empty());
    let err = c.metadata(&file, "global", "properties").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("instance_not_found"));

    let created = c
        .create_metadata(
            &file,
            "global",
            "properties",
            &values(json!({"color": "blue", "count": 3, "tags": ["a", "b"], "a/b~c": "odd key"})),
        )
        .await
        .unwrap();
    assert_eq!(created.version, Some(0));
    assert_eq!(created.scope, "global");
    assert_eq!(created.template, "properties");
    assert_eq!(
        created.parent.as_deref(),
        Some(format!("file_{file_id}").as_str())
    );
    assert_eq!(created.get("color"), Some(&json!("blue")));
    assert!(created.values.keys().all(|k| !k.starts_with('$')));
    let err = c
        .create_metadata(&file, "global", "properties", &values(json!({"x": "y"})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("tuple_already_exists"));

    assert_eq!(
        c.metadata(&file, "global", "properties").await.unwrap(),
        created
    );
    let listed = c.metadata_list(&file).await.unwrap();
    assert_eq!(listed, vec![created.clone()]);
    let inline = c
        .file_with_fields(&file_id, &["metadata.global.properties"])
        .await
        .unwrap();
    assert_eq!(
        inline.metadata.unwrap()["global"]["properties"]["color"],
        "blue"
    );

    // A patch of every kind, keys escaped as JSON Pointers.
    let updated = c
        .update_metadata(
            &file,
            "global",
            "properties",
            &MetadataPatch::new()
                .test("color", "blue")
                .replace("color", "green")
                .add("size", "large")
                .remove("a/b~c")
                .copy_key("color", "old/color")
                .move_key("count", "number")
                .op(PatchOp::Add {
                    path: json_pointer("x~y"),
                    value: json!("raw op"),
                }),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, Some(1));
    assert_eq!(
        updated.values,
        values(json!({
            "color": "green", "tags": ["a", "b"], "size": "large",
            "old/color": "green", "number": 3, "x~y": "raw op",
        }))
    );

    // A failing test: Box's typed 409 and nothing changed.
    let err = c
        .update_metadata(
            &file,
            "global",
            "properties",
            &MetadataPatch::new()
                .replace("color", "red")
                .test("size", "small"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert_eq!(
        c.metadata(&file, "global", "properties").await.unwrap(),
        updated
    );
    // Replacing a key that does not exist fails the same way (400), unchanged.
    let err = c
        .update_metadata(
            &file,
            "global",
            "properties",
            &MetadataPatch::new().replace("missing", "x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(
        c.metadata(&file, "global", "properties").await.unwrap(),
        updated
    );

    c.delete_metadata(&file, "global", "properties")
        .await
        .unwrap();
    assert!(c.metadata_list(&file).await.unwrap().is_empty());
    let err = c
        .delete_metadata(&file, "global", "properties")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("instance_not_found"));

    // Folders carry metadata the same way; the root folder does not.
    let folder = c.create_folder("0", "With metadata").await.unwrap();
    let on_folder = c
        .create_metadata(
            &ItemRef::folder(&folder.id),
            "global",
            "properties",
            &values(json!({"owner": "team"})),
        )
        .await
        .unwrap();
    assert_eq!(
        on_folder.parent.as_deref(),
        Some(format!("folder_{}", folder.id).as_str())
    );
    let err = c.metadata_list(&ItemRef::folder("0")).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
}

#[tokio::test]
async fn enterprise_templates() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let created = c
        .create_metadata_template(
            &NewTemplate::new("review", "Review")
                .field(
                    TemplateField::new(FieldType::Enum, "state", "State").options(["open", "done"]),
                )
                .field(TemplateField::new(FieldType::Float, "score", "Score"))
                .field(TemplateField::new(FieldType::Date, "due", "Due"))
                .field(TemplateField::new(FieldType::String, "note", "Note")),
        )
        .await
        .unwrap();
    let eid = &t.emulator().info.enterprise_id;
    assert_eq!(created.scope, format!("enterprise_{eid}"));
    assert_eq!(created.template_key, "review");
    assert_eq!(created.fields.len(), 4);
    assert_eq!(created.fields[0].field_type, FieldType::Enum);
    assert_eq!(created.fields[0].options.len(), 2);

    let schema = c.metadata_template("enterprise", "review").await.unwrap();
    assert_eq!(schema, created);
    let scoped = c
        .metadata_template(&format!("enterprise_{eid}"), "review")
        .await
        .unwrap();
    assert_eq!(scoped.id, created.id);
    let listed = c
        .metadata_templates(TemplateScope::Enterprise)
        .await
        .unwrap();
    assert_eq!(listed, vec![created.clone()]);
    let global = c.metadata_templates(TemplateScope::Global).await.unwrap();
    assert!(global.iter().any(|t| t.template_key == "properties"));
    let err = c
        .metadata_template("enterprise", "missing")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = c
        .create_metadata_template(&NewTemplate::new("review", "Again"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));

    // Instances take only the template's fields, typed.
    let file_id = t.upload_file("0", "paper.pdf", b"p").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = ItemRef::file(&file_id);
    let inst = c
        .create_metadata(
            &file,
            "enterprise",
            "review",
            &values(json!({"state": "open", "score": 4.5, "due": "2030-01-02T03:04:05Z"})),
        )
        .await
        .unwrap();
    assert_eq!(inst.get("due"), Some(&json!("2030-01-02T03:04:05.000Z")));
    let err = c
        .update_metadata(
            &file,
            "enterprise",
            "review",
            &MetadataPatch::new().replace("state", "maybe"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("schema_validation_failed"), "{err}");
    let done = c
        .update_metadata(
            &file,
            "enterprise",
            "review",
            &MetadataPatch::new()
                .test("state", "open")
                .replace("state", "done")
                .add("note", "fine"),
        )
        .await
        .unwrap();
    assert_eq!(done.get("state"), Some(&json!("done")));
    assert_eq!(done.version, Some(1));
    let err = c
        .create_metadata(&file, "enterprise", "nothing", &Map::new())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));

    // A template only admins may create: an app user is refused, typed.
    let user = c.create_app_user("Not an admin", None).await.unwrap();
    let err = c
        .as_user(&user.id)
        .create_metadata_template(&NewTemplate::new("mine", "Mine"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
}

fn invalid<T>(r: Result<T, BoxError>) -> bool {
    matches!(r, Err(BoxError::Invalid(_)))
}

#[tokio::test]
async fn bad_input_is_refused_with_typed_errors() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let file = ItemRef::file("123");
    assert!(invalid(c.metadata(&file, "nowhere", "properties").await));
    assert!(invalid(
        c.metadata(&file, "enterprise_", "properties").await
    ));
    assert!(invalid(c.metadata(&file, "global", "no spaces").await));
    assert!(invalid(c.metadata(&file, "global", "../x").await));
    assert!(invalid(
        c.metadata(&ItemRef::file("abc"), "global", "properties")
            .await
    ));
    assert!(invalid(c.metadata_list(&ItemRef::folder("")).await));
    assert!(invalid(
        c.update_metadata(&file, "global", "properties", &MetadataPatch::new())
            .await
    ));
    assert!(invalid(
        c.update_metadata(
            &file,
            "global",
            "properties",
            &MetadataPatch::new().add("$id", "x")
        )
        .await
    ));
    assert!(invalid(
        c.create_metadata(&file, "global", "properties", &values(json!({"$x": 1})))
            .await
    ));
    assert!(invalid(
        c.create_metadata_template(&NewTemplate::new("1bad", "Bad"))
            .await
    ));
    assert!(invalid(
        c.create_metadata_template(
            &NewTemplate::new("enumless", "Enumless").field(TemplateField::new(
                FieldType::Enum,
                "e",
                "E"
            ))
        )
        .await
    ));
    assert!(invalid(
        c.create_metadata_template(
            &NewTemplate::new("dupes", "Dupes")
                .field(TemplateField::new(FieldType::String, "a", "A"))
                .field(TemplateField::new(FieldType::Float, "a", "A again"))
        )
        .await
    ));
    // Well-formed but missing item: Box's 404.
    let err = c
        .metadata_list(&ItemRef::file("987654321"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
}
