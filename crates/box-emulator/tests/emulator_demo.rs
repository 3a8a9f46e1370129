//! `--demo`: the demo tree is there, realistic, consistent with the store's invariants,
//! represented as Box's OpenAPI description says, and created only once.

use box_emulator::repr::{self, Fields};
use box_emulator::store::Store;
use box_emulator::testing::TestEmu;
use box_emulator::{Emulator, EmulatorConfig};
use reqwest::StatusCode;
use sha1::{Digest, Sha1};

fn demo() -> EmulatorConfig {
    EmulatorConfig {
        demo: true,
        ..EmulatorConfig::default()
    }
}

/// Follows a path of names from the admin's root.
fn lookup(store: &Store, path: &str) -> u64 {
    let mut id = store.users[&store.admin].root_folder;
    for name in path.split('/') {
        id = store
            .child_by_name(id, name)
            .unwrap_or_else(|| panic!("{path}: no {name}"));
    }
    id
}

#[tokio::test]
async fn the_demo_tree_is_complete() {
    let t = TestEmu::start_with(demo()).await;
    let (status, me) = t.get("/users/me").await;
    assert_eq!(status, StatusCode::OK);
    let space_used = me["space_used"].as_u64().expect("space_used");
    assert!(space_used > 300 * 1024, "{me}");

    let shared = &t.emulator().shared;
    let store = shared.store();
    let admin = store.admin;
    assert_eq!(store.space_used(admin), space_used);

    for path in [
        "Documents",
        "Documents/Reports/2026",
        "Photos",
        "Projects/boxfs",
        "Archive",
    ] {
        assert!(store.items[&lookup(&store, path)].is_folder(), "{path}");
    }
    let readme = lookup(&store, "Documents/README.md");
    let notes = lookup(&store, "Documents/notes.txt");
    let csv = lookup(&store, "Documents/Reports/2026/sales.csv");
    let photo = lookup(&store, "Photos/photo.jpg");
    let design = lookup(&store, "Projects/boxfs/design.md");
    let contract = lookup(&store, "Documents/Contract - Acme.pdf");
    let welcome = lookup(&store, "Welcome.txt");

    // Every version's content is stored under its SHA1.
    for item in store.items.values() {
        for v in &item.versions {
            let blob = store.blob(&v.sha1).expect("blob stored").to_bytes();
            assert_eq!(hex::encode(Sha1::digest(&blob)), v.sha1);
            assert_eq!(blob.len() as u64, v.size);
        }
    }
    let text = String::from_utf8(
        store
            .blob(&store.items[&readme].versions[0].sha1)
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.starts_with("# Welcome"));
    assert_eq!(store.items[&notes].versions.len(), 2);
    assert!(store.items[&notes].size() > store.items[&notes].versions[0].size);
    let csv_text = store
        .blob(&store.items[&csv].current_version().unwrap().sha1)
        .unwrap()
        .to_bytes();
    assert!(csv_text.starts_with(b"region,quarter,revenue,units\n"));
    assert!(store.items[&photo].size() >= 300 * 1024);

    let lock = store.items[&design].lock.as_ref().expect("locked");
    assert_eq!(lock.created_by, admin);
    assert!(lock.is_active(chrono::Utc::now()));
    assert!(lock.expires_at.is_some());

    let link = store.items[&welcome].shared_link.as_ref().expect("shared");
    assert_eq!(store.shared_links.get(&link.token), Some(&welcome));

    assert!(store.items[&readme]
        .metadata
        .contains_key("global/properties"));
    assert!(store.items[&photo]
        .metadata
        .contains_key("global/properties"));
    let scope = format!("enterprise_{}", store.enterprise_id);
    let template = &store.templates[&format!("{scope}/contract")];
    assert_eq!(template.template_key, "contract");
    let instance = &store.items[&contract].metadata[&format!("{scope}/contract")];
    for field in &template.fields {
        assert!(instance.values.contains_key(&field.key), "{}", field.key);
    }
    assert_eq!(instance.values["status"], "signed");

    // The event stream tells the story.
    let types: Vec<&str> = store.events.iter().map(|e| e.event_type.as_str()).collect();
    for wanted in [
        "ITEM_CREATE",
        "ITEM_UPLOAD",
        "LOCK_CREATE",
        "ITEM_SHARED_CREATE",
        "METADATA_INSTANCE_CREATE",
    ] {
        assert!(types.contains(&wanted), "{wanted} in {types:?}");
    }
    assert!(store.events.iter().all(|e| e.users.contains(&admin)));
    assert_eq!(store.next_position, store.events.len() as u64);

    // Every demo item, in its standard and full forms, is what Box's description says.
    let validator = shared.conformance.as_ref().expect("validation on");
    let full = Fields::parse(Some(
        "name,size,sha1,file_version,description,path_collection,created_at,modified_at,\
         trashed_at,purged_at,content_created_at,content_modified_at,created_by,modified_by,\
         owned_by,shared_link,parent,item_status,tags,permissions,has_collaborations,lock,\
         extension,version_number,comment_count,is_package,expires_at,metadata.global.properties,\
         metadata.enterprise.contract,sync_state,folder_upload_email,allowed_shared_link_access_levels",
    ));
    let mut checked = 0;
    for item in store.items.values().filter(|i| i.owner == admin) {
        let template = if item.is_folder() {
            "/2.0/folders/{folder_id}"
        } else {
            "/2.0/files/{file_id}"
        };
        for fields in [&Fields(None), &full] {
            let body = repr::item_json(&store, item, admin, fields).to_string();
            let found = validator.check_body("GET", template, 200, body.as_bytes());
            assert!(found.is_empty(), "{}: {found:#?}", item.name);
            checked += 1;
        }
    }
    assert!(checked >= 2 * 15, "{checked}");
}

#[tokio::test]
async fn the_demo_is_created_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..demo()
    };
    let emu = Emulator::start(config.clone()).await.expect("starts");
    let (items, events) = {
        let s = emu.shared.store();
        (s.items.len(), s.events.len())
    };
    emu.stop().await;
    let emu = Emulator::start(config).await.expect("restarts");
    {
        let s = emu.shared.store();
        assert_eq!(s.items.len(), items);
        assert_eq!(s.events.len(), events);
    }
    emu.stop().await;
}
