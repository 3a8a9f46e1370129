//! Builds test items straight in an emulator's store (files, folders, users, events),
//! for tests of endpoints that read what other endpoints would create.
#![allow(dead_code)]

use box_emulator::event_table::Action;
use box_emulator::store::{Id, ItemKind, Role, TokenKind, Version};
use box_emulator::users;
use bytes::Bytes;
use chrono::Utc;
use sha1::{Digest, Sha1};

use box_emulator::testing::TestEmu;

/// The admin (owner of the developer token).
pub fn admin(t: &TestEmu) -> Id {
    t.emulator().info.user_id.parse().expect("admin id")
}

/// A user's root folder (folder "0" for them).
pub fn root(t: &TestEmu, user: Id) -> Id {
    t.emulator().shared.store().users[&user].root_folder
}

/// A folder owned by `owner` under `parent`, with its creation event.
pub fn folder(t: &TestEmu, owner: Id, parent: Id, name: &str) -> Id {
    let shared = &t.emulator().shared;
    let mut store = shared.store();
    let now = Utc::now();
    let item = store.new_item(ItemKind::Folder, name, parent, owner, owner, now);
    let id = store.insert_item(item);
    store.item_event(Action::CreateFolder, owner, id, now);
    shared.changed(&store);
    id
}

/// A file with content, with its upload event.
pub fn file(t: &TestEmu, owner: Id, parent: Id, name: &str, content: &[u8]) -> Id {
    let shared = &t.emulator().shared;
    let mut store = shared.store();
    let now = Utc::now();
    let sha1 = hex::encode(Sha1::digest(content));
    store
        .blobs
        .insert(sha1.clone(), Bytes::copy_from_slice(content).into());
    let mut item = store.new_item(ItemKind::File, name, parent, owner, owner, now);
    let version = store.alloc_id();
    item.versions.push(Version {
        id: version,
        sha1,
        size: content.len() as u64,
        name: name.to_string(),
        created_at: now,
        modified_by: owner,
    });
    let id = store.insert_item(item);
    store.item_event(Action::UploadFile, owner, id, now);
    shared.changed(&store);
    id
}

/// Records the event of `action` on an item, as the endpoint performing it would.
pub fn event(t: &TestEmu, action: Action, by: Id, id: Id) -> u64 {
    let shared = &t.emulator().shared;
    let mut store = shared.store();
    let pos = store.item_event(action, by, id, Utc::now());
    shared.changed(&store);
    pos
}

/// Another managed user of the enterprise, with an access token.
pub fn user(t: &TestEmu, name: &str) -> (Id, String) {
    let shared = &t.emulator().shared;
    let mut store = shared.store();
    let login = format!("{}@example.com", name.to_lowercase().replace(' ', "."));
    let id = users::add_user(&mut store, name, &login, Role::User, -1, None);
    let client = t.emulator().info.client_id.clone();
    let token = users::issue_token(&mut store, id, &client, TokenKind::Developer, 3600);
    (id, token)
}

/// Changes an item in the store.
pub fn edit(t: &TestEmu, id: Id, f: impl FnOnce(&mut box_emulator::store::Item)) {
    let shared = &t.emulator().shared;
    let mut store = shared.store();
    f(store.items.get_mut(&id).expect("item exists"));
    shared.changed(&store);
}

/// The latest stream position.
pub fn latest(t: &TestEmu) -> u64 {
    t.emulator().shared.store().next_position
}
