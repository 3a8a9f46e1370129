//! `--data DIR`: state written by one emulator is there when the next one starts.

use std::path::Path;
use std::time::Duration;

use box_emulator::event_table::Action;
use box_emulator::store::{ItemKind, Role, Version};
use box_emulator::testing::openapi_path;
use box_emulator::{users, Emulator, EmulatorConfig};
use bytes::Bytes;
use sha1::{Digest, Sha1};

fn config(dir: &Path) -> EmulatorConfig {
    EmulatorConfig {
        data_dir: Some(dir.to_path_buf()),
        validate_responses: Some(openapi_path()),
        ..EmulatorConfig::default()
    }
}

async fn get_me(base: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/2.0/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

/// Adds a folder with a file in the admin's root, as the API would, and returns their ids.
fn add_tree(emu: &Emulator, content: &Bytes) -> (u64, u64) {
    let sh = &emu.shared;
    let mut store = sh.store();
    let admin = store.admin;
    let root = store.users[&admin].root_folder;
    let now = chrono::Utc::now();
    let folder = store.new_item(ItemKind::Folder, "Kept", root, admin, admin, now);
    let folder = store.insert_item(folder);
    store.item_event(Action::CreateFolder, admin, folder, now);
    let sha1 = hex::encode(Sha1::digest(content));
    store.blobs.insert(sha1.clone(), content.clone().into());
    let mut file = store.new_item(ItemKind::File, "kept.bin", folder, admin, admin, now);
    let version_id = store.alloc_id();
    file.versions.push(Version {
        id: version_id,
        sha1,
        size: content.len() as u64,
        name: "kept.bin".into(),
        created_at: now,
        modified_by: admin,
    });
    let file = store.insert_item(file);
    store.item_event(Action::UploadFile, admin, file, now);
    sh.changed(&store);
    (folder, file)
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let content = Bytes::from(
        (0..300_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    );

    let emu = Emulator::start(config(dir.path())).await.expect("starts");
    let first = emu.info.clone();
    let (folder, file) = add_tree(&emu, &content);
    let app_user = {
        let mut store = emu.shared.store();
        let id = users::add_user(
            &mut store,
            "Kept User",
            "kept@example.com",
            Role::User,
            -1,
            None,
        );
        emu.shared.changed(&store);
        id
    };
    let events = emu.shared.store().events.len();
    assert!(get_me(&first.base_url, &first.developer_token)
        .await
        .status()
        .is_success());
    assert!(
        emu.conformance_violations().is_empty(),
        "{:#?}",
        emu.conformance_violations()
    );
    emu.stop().await;

    let emu = Emulator::start(config(dir.path())).await.expect("restarts");
    let second = emu.info.clone();
    assert_eq!(second.client_id, first.client_id);
    assert_eq!(second.client_secret, first.client_secret);
    assert_eq!(second.enterprise_id, first.enterprise_id);
    assert_eq!(second.user_id, first.user_id);
    assert_ne!(second.developer_token, first.developer_token);
    {
        let store = emu.shared.store();
        assert_eq!(store.users[&app_user].login, "kept@example.com");
        let admin = store.admin;
        let root = store.users[&admin].root_folder;
        assert_eq!(
            store.child_by_name(root, "kept"),
            Some(folder),
            "names index rebuilt"
        );
        assert_eq!(store.child_by_name(folder, "KEPT.BIN"), Some(file));
        let sha1 = store.items[&file]
            .current_version()
            .expect("version")
            .sha1
            .clone();
        assert_eq!(store.blob(&sha1).expect("blob").to_bytes(), content);
        assert_eq!(store.events.len(), events);
        // New ids do not collide with old ones.
        assert!(store.next_id >= file);
    }
    let resp = get_me(&second.base_url, &second.developer_token).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let me: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(me["id"], first.user_id.as_str());
    assert!(me["space_used"].as_u64().expect("space_used") >= content.len() as u64);
    assert!(
        emu.conformance_violations().is_empty(),
        "{:#?}",
        emu.conformance_violations()
    );
    emu.stop().await;
}

#[tokio::test]
async fn changes_are_flushed_while_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::start(config(dir.path())).await.expect("starts");
    let content = Bytes::from_static(b"flushed without a stop\n");
    let (folder, _) = add_tree(&emu, &content);
    let state = dir.path().join("state.json");
    let sha1 = hex::encode(Sha1::digest(&content));
    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        if text.contains(&format!("\"{folder}\"")) && dir.path().join("blobs").join(&sha1).exists()
        {
            seen = true;
            break;
        }
    }
    assert!(seen, "the change reached {} within 2.5 s", state.display());
    // The flusher stops with the emulator; the state it leaves loads.
    drop(emu);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let emu = Emulator::start(config(dir.path())).await.expect("restarts");
    assert!(emu.shared.store().items.contains_key(&folder));
    emu.stop().await;
}

#[tokio::test]
async fn a_corrupt_state_is_a_readable_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("state.json"), b"{\"truncated").expect("write");
    let err = Emulator::start(config(dir.path()))
        .await
        .err()
        .expect("refuses to start");
    assert!(
        err.to_string().contains("is not a valid emulator state"),
        "{err}"
    );
}
