use super::*;

fn owner() -> StoreOwner {
    StoreOwner {
        user_id: "11".into(),
        root_folder_id: "0".into(),
    }
}

fn item(id: &str, parent: &str, name: &str, is_dir: bool) -> StoredItem {
    StoredItem {
        id: id.into(),
        kind: if is_dir {
            StoredKind::Folder
        } else {
            StoredKind::File
        },
        parent_id: Some(parent.into()),
        name: name.into(),
        size: 7,
        mtime: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        sequence_id: Some(3),
        etag: Some("3".into()),
        ..StoredItem::default()
    }
}

fn names(items: Option<Vec<StoredItem>>) -> Vec<String> {
    let mut v: Vec<String> = items
        .expect("complete")
        .into_iter()
        .map(|i| i.name)
        .collect();
    v.sort();
    v
}

#[test]
fn a_listing_is_served_only_once_complete_and_rows_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, saved) = MetaStore::open(dir.path(), &owner()).unwrap();
    assert_eq!(saved, SavedState::default());
    let mut root = item("0", "", "", true);
    root.parent_id = None;
    let a = item("10", "0", "a", true);
    let f = item("20", "10", "f.txt", false);
    store
        .apply(&StoreBatch {
            upserts: vec![root, a.clone(), f.clone()],
            ..StoreBatch::default()
        })
        .unwrap();
    assert_eq!(
        store.listing("10").unwrap(),
        None,
        "not listed completely yet"
    );
    store
        .apply(&StoreBatch {
            // A complete listing comes with its children's rows.
            upserts: vec![f.clone()],
            listings: vec![("10".into(), true)],
            position: Some("77".into()),
            ..StoreBatch::default()
        })
        .unwrap();
    assert_eq!(store.listing("10").unwrap(), Some(vec![f.clone()]));
    assert_eq!(store.item("10").unwrap(), Some(a));
    drop(store);

    let (store, saved) = MetaStore::open(dir.path(), &owner()).unwrap();
    assert_eq!(saved.position.as_ref().map(|p| p.0.as_str()), Some("77"));
    assert_eq!(saved.items, 3);
    assert!(!saved.owner_changed);
    assert_eq!(store.listing("10").unwrap(), Some(vec![f]));
}

#[test]
fn an_upsert_keeps_the_listing_flag_and_a_deleted_folder_takes_its_subtree() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = MetaStore::open(dir.path(), &owner()).unwrap();
    store
        .apply(&StoreBatch {
            upserts: vec![
                item("10", "0", "a", true),
                item("11", "10", "b", true),
                item("20", "11", "f", false),
                item("21", "0", "g", false),
            ],
            listings: vec![("0".into(), true), ("10".into(), true)],
            ..StoreBatch::default()
        })
        .unwrap();
    let mut renamed = item("10", "0", "a2", true);
    renamed.sequence_id = Some(4);
    store
        .apply(&StoreBatch {
            upserts: vec![renamed],
            ..StoreBatch::default()
        })
        .unwrap();
    assert_eq!(names(store.listing("10").unwrap()), vec!["b"]);
    store
        .apply(&StoreBatch {
            deletes: vec!["10".into()],
            ..StoreBatch::default()
        })
        .unwrap();
    assert_eq!(store.len().unwrap(), 1, "a, b and f went together");
    assert_eq!(store.item("20").unwrap(), None);
}

#[test]
fn marking_everything_stale_keeps_rows_and_forgets_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = MetaStore::open(dir.path(), &owner()).unwrap();
    store
        .apply(&StoreBatch {
            upserts: vec![item("10", "0", "a", true)],
            listings: vec![("10".into(), true)],
            position: Some("5".into()),
            ..StoreBatch::default()
        })
        .unwrap();
    store.mark_all_stale().unwrap();
    assert_eq!(store.listing("10").unwrap(), None);
    assert_eq!(store.len().unwrap(), 1);
    drop(store);
    let (_, saved) = MetaStore::open(dir.path(), &owner()).unwrap();
    assert_eq!(saved.position, None);
}

#[test]
fn another_account_or_root_keeps_the_rows_but_trusts_no_listing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = MetaStore::open(dir.path(), &owner()).unwrap();
    store
        .apply(&StoreBatch {
            upserts: vec![item("10", "0", "a", true)],
            listings: vec![("10".into(), true)],
            position: Some("5".into()),
            ..StoreBatch::default()
        })
        .unwrap();
    drop(store);
    let other = StoreOwner {
        user_id: "12".into(),
        ..owner()
    };
    let (store, saved) = MetaStore::open(dir.path(), &other).unwrap();
    assert!(saved.owner_changed);
    assert_eq!(saved.position, None);
    assert_eq!(store.listing("10").unwrap(), None);
    assert_eq!(store.len().unwrap(), 1);
    drop(store);
    // Now it is that account's store.
    let (_, saved) = MetaStore::open(dir.path(), &other).unwrap();
    assert!(!saved.owner_changed);
}

#[test]
fn the_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = MetaStore::open(dir.path(), &owner()).unwrap();
    let mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_complete_listing_drops_stored_children_it_does_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = MetaStore::open(dir.path(), &owner()).unwrap();
    let a = item("10", "0", "a", true);
    let kept = item("20", "10", "kept.txt", false);
    let staged = item("21", "10", "staged.txt", false);
    let gone = item("11", "10", "gone", true);
    let below = item("30", "11", "below.txt", false);
    store
        .apply(&StoreBatch {
            upserts: vec![a, kept.clone(), staged, gone, below],
            ..StoreBatch::default()
        })
        .unwrap();
    // Listed again: `gone` (and what is below it) is no longer there; `staged` has writes
    // of its own, so its row stays as it is.
    store
        .apply(&StoreBatch {
            upserts: vec![kept],
            listings: vec![("10".into(), true)],
            kept: vec!["21".into()],
            ..StoreBatch::default()
        })
        .unwrap();
    assert_eq!(
        names(store.listing("10").unwrap()),
        ["kept.txt", "staged.txt"]
    );
    assert_eq!(store.item("30").unwrap(), None, "the subtree went too");
    assert_eq!(store.len().unwrap(), 3);
}

#[test]
fn touched_items_make_their_stored_and_new_folders_stale() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = MetaStore::open(dir.path(), &owner()).unwrap();
    let rows = vec![
        item("10", "0", "a", true),
        item("11", "0", "b", true),
        item("12", "0", "c", true),
        item("20", "10", "moved.txt", false),
        item("21", "12", "quiet.txt", false),
    ];
    store
        .apply(&StoreBatch {
            upserts: rows,
            listings: ["10", "11", "12"].map(|f| (f.to_string(), true)).to_vec(),
            ..StoreBatch::default()
        })
        .unwrap();
    let mut touched = Touched::default();
    // `moved.txt` went from `a` to `b`; an item the store never had went into `b` too.
    touched.note("20", Some("11"));
    touched.note("99", Some("11"));
    store
        .apply(&StoreBatch {
            touched,
            ..StoreBatch::default()
        })
        .unwrap();
    assert_eq!(store.listing("10").unwrap(), None, "the folder it was in");
    assert_eq!(store.listing("11").unwrap(), None, "the folder it went to");
    assert_eq!(names(store.listing("12").unwrap()), ["quiet.txt"]);
}

#[test]
fn peek_reads_the_owner_only_of_a_store_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(MetaStore::peek(dir.path()).unwrap(), None, "no store");
    let (store, _) = MetaStore::open(dir.path(), &owner()).unwrap();
    assert_eq!(
        MetaStore::peek(dir.path()).unwrap(),
        None,
        "no position yet"
    );
    store.set_account_names("ann@example.com", "Ann").unwrap();
    store
        .apply(&StoreBatch {
            position: Some("5".into()),
            ..StoreBatch::default()
        })
        .unwrap();
    let peek = MetaStore::peek(dir.path())
        .unwrap()
        .expect("a store to mount from");
    assert_eq!(peek.owner, owner());
    assert_eq!(peek.login.as_deref(), Some("ann@example.com"));
    assert_eq!(peek.name.as_deref(), Some("Ann"));
}

#[test]
fn web_links_modes_and_targets_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = MetaStore::open(dir.path(), &owner()).unwrap();
    let link = StoredItem {
        kind: StoredKind::WebLink,
        target: Some("https://example.com/".into()),
        ..item("21", "0", "Manual.url", false)
    };
    let script = StoredItem {
        mode: Some(0o100755),
        ..item("22", "0", "run.sh", false)
    };
    store
        .apply(&StoreBatch {
            upserts: vec![link.clone(), script.clone()],
            listings: vec![("0".into(), true)],
            ..StoreBatch::default()
        })
        .unwrap();
    assert_eq!(store.item("21").unwrap(), Some(link));
    assert_eq!(store.item("22").unwrap(), Some(script));
}

#[test]
fn a_store_of_the_first_schema_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The first version's table: `is_dir`, no `kind`, `target` or `mode`.
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema', '1'), ('user_id', '11'),
                 ('root_folder_id', '0'), ('position', '5'), ('position_saved_at', '1');
             CREATE TABLE items (id TEXT PRIMARY KEY, is_dir INTEGER NOT NULL, parent_id TEXT,
                 name TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER, ctime INTEGER,
                 etag TEXT, seq INTEGER, version TEXT, sha1 TEXT,
                 listing_complete INTEGER NOT NULL DEFAULT 0);
             INSERT INTO items (id, is_dir, parent_id, name, size) VALUES ('10', 1, '0', 'a', 0);",
        )
        .unwrap();
    }
    let (store, saved) = MetaStore::open(dir.path(), &owner()).unwrap();
    assert!(saved.owner_changed);
    assert_eq!(saved.position, None);
    assert!(store.is_empty().unwrap());
    store
        .apply(&StoreBatch {
            upserts: vec![item("10", "0", "a", true)],
            ..StoreBatch::default()
        })
        .unwrap();
    assert_eq!(store.item("10").unwrap().unwrap().kind, StoredKind::Folder);
}
