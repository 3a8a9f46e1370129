//! The client's folder API against the emulator: the root folder, listings with offset
//! and marker paging over several pages, whole paths created idempotently, rename, move
//! (alone, and with a rename as two requests), copy, delete with If-Match, shared links,
//! the trash, acting as another user, and bad input refused before the network.

use std::collections::HashSet;
use std::sync::Arc;

use box_client::folders::{
    FolderUpdate, ListOptions, Paging, SharedLinkAccess, SharedLinkSettings, SortBy,
};
use box_client::{BoxError, Client, DeveloperToken, Endpoints};
use box_emulator::testing::TestEmu;
use bytes::Bytes;
use futures_util::TryStreamExt;

fn client(t: &TestEmu) -> Client {
    Client::new(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&t.base).unwrap(),
    )
}

fn admin_id(t: &TestEmu) -> u64 {
    t.emulator().info.user_id.parse().unwrap()
}

/// Fills a folder straight through the emulator's store: `folders` subfolders and
/// `files` files.
fn fill(t: &TestEmu, parent: &str, folders: usize, files: usize) {
    let parent: u64 = parent.parse().unwrap();
    let owner = admin_id(t);
    let now = chrono::Utc::now();
    let shared = &t.emulator().shared;
    let mut store = shared.store();
    for i in 0..folders {
        let item = store.new_item(
            box_emulator::store::ItemKind::Folder,
            &format!("dir{i:02}"),
            parent,
            owner,
            owner,
            now,
        );
        store.insert_item(item);
    }
    for i in 0..files {
        store.add_file(
            parent,
            &format!("file{i:02}.txt"),
            owner,
            Bytes::from(format!("content {i}")),
            now,
        );
    }
    shared.changed(&store);
}

#[tokio::test]
async fn root_folder_has_its_owner_and_name() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let root = c.folder("0").await.unwrap();
    assert_eq!(root.id, "0");
    assert!(root.is_folder());
    assert_eq!(root.name, "All Files");
    assert_eq!(
        root.owned_by.as_ref().map(|u| u.login.as_str()),
        Some("admin@example.com")
    );
    assert!(root.item_collection.is_some());

    // With fields, only those (and the base fields) come back.
    let partial = c.folder_with_fields("0", &["name"]).await.unwrap();
    assert_eq!(partial.name, "All Files");
    assert!(partial.owned_by.is_none());
}

#[tokio::test]
async fn listings_page_by_offset_and_by_marker() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let dir = c.create_folder("0", "Many").await.unwrap();
    fill(&t, &dir.id, 12, 18);

    // Offset paging, page by page: 10 + 10 + 10.
    let mut opts = ListOptions::offset(0).limit(10);
    let mut pages = 0;
    let mut seen = Vec::new();
    loop {
        let page = c.folder_items_page(&dir.id, &opts).await.unwrap();
        pages += 1;
        assert_eq!(page.total_count, Some(30));
        assert!(page.entries.len() <= 10);
        seen.extend(page.entries.iter().map(|e| e.id.clone()));
        match opts.next_page(&page) {
            Some(next) => opts = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 30);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 30);

    // Marker paging as a stream, with fields: folders first, every entry once.
    let items: Vec<_> = c
        .folder_items(
            &dir.id,
            ListOptions::marker()
                .limit(10)
                .fields(&["name", "size", "modified_at"]),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(items.len(), 30);
    assert!(items[..12].iter().all(|i| i.is_folder()));
    assert!(items[12..].iter().all(|i| i.is_file()));
    assert!(items.iter().all(|i| i.size.is_some()));
    assert_eq!(
        items.iter().map(|i| &i.id).collect::<HashSet<_>>(),
        seen.iter().collect::<HashSet<_>>()
    );

    // A marker page has no total and names the next page.
    let first = c
        .folder_items_page(&dir.id, &ListOptions::marker().limit(10))
        .await
        .unwrap();
    assert_eq!(first.total_count, None);
    let next = ListOptions::marker().limit(10).next_page(&first).unwrap();
    assert!(matches!(next.paging, Paging::Marker(Some(_))));

    // Offset stream with ordering by name, descending within each type.
    let by_name: Vec<_> = c
        .folder_items(
            &dir.id,
            ListOptions::offset(0)
                .limit(7)
                .sort(SortBy::Name, box_client::folders::Direction::Desc),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(by_name.len(), 30);
    assert_eq!(by_name[0].name, "dir11");
    assert_eq!(by_name[12].name, "file17.txt");

    // Limits outside 1..=1000 never reach Box.
    for bad in [0, 1001] {
        let err = c
            .folder_items_page(&dir.id, &ListOptions::marker().limit(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, BoxError::Invalid(_)), "{err}");
    }
    let err = c
        .folder_items("x1", ListOptions::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(err, BoxError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn folder_paths_are_created_once() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let l3 = c.create_folder_path("0", "/L1/L2/L3").await.unwrap();
    assert_eq!(l3.name, "L3");
    let path: Vec<String> = l3
        .path_collection
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .map(|f| f.name.clone())
        .collect();
    assert_eq!(path, ["All Files", "L1", "L2"]);

    // Again: the same folders, nothing new.
    let again = c.create_folder_path("0", "L1/L2/L3/").await.unwrap();
    assert_eq!(again.id, l3.id);
    let l1_items: Vec<_> = c
        .folder_items(&path_id(&l3, 1), ListOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(l1_items.len(), 1);

    // Racing creators of one path end up with the same folders.
    let racers = (0..4).map(|_| c.create_folder_path("0", "R1/R2/R3"));
    let ids: HashSet<String> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    assert_eq!(ids.len(), 1);

    // A partly existing path reuses what exists.
    let other = c.create_folder_path("0", "L1/Other").await.unwrap();
    assert_eq!(
        other.parent.as_ref().map(|p| p.id.clone()),
        Some(path_id(&l3, 1))
    );

    // A file in the way is an error, not a descent into it.
    t.upload_file("0", "plain", b"x").await;
    let err = c.create_folder_path("0", "plain/sub").await.unwrap_err();
    assert!(matches!(err, BoxError::Invalid(_)), "{err}");
    // Bad components are refused before any request.
    assert!(matches!(
        c.create_folder_path("0", "a/../b").await,
        Err(BoxError::Invalid(_))
    ));
    assert!(matches!(
        c.create_folder_path("0", "//").await,
        Err(BoxError::Invalid(_))
    ));
}

fn path_id(item: &box_client::types::Item, level: usize) -> String {
    item.path_collection.as_ref().unwrap().entries[level]
        .id
        .clone()
}

#[tokio::test]
async fn rename_move_copy_and_delete() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let a = c.create_folder("0", "A").await.unwrap();
    let b = c.create_folder("0", "B").await.unwrap();
    let x = c.create_folder(&a.id, "x").await.unwrap();
    t.upload_file(&x.id, "inside.txt", b"data").await;

    let renamed = c.rename_folder(&x.id, "x2").await.unwrap();
    assert_eq!(renamed.name, "x2");

    // A move alone.
    let moved = c.move_folder(&x.id, &b.id, None).await.unwrap();
    assert_eq!(moved.parent.unwrap().id, b.id);

    // A move with a new name: two requests, one result.
    let both = c.move_folder(&x.id, &a.id, Some("x3")).await.unwrap();
    assert_eq!(both.name, "x3");
    assert_eq!(both.parent.unwrap().id, a.id);

    // The old name is taken in the target: renamed first, then moved.
    c.create_folder(&b.id, "x3").await.unwrap();
    let dodged = c.move_folder(&x.id, &b.id, Some("x4")).await.unwrap();
    assert_eq!(
        (dodged.name.as_str(), dodged.parent.unwrap().id),
        ("x4", b.id.clone())
    );

    // The new name is taken in the target: an error, and the folder is where it was.
    c.create_folder(&a.id, "taken").await.unwrap();
    let err = c
        .move_folder(&x.id, &a.id, Some("taken"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("item_name_in_use"), "{err}");
    let back = c
        .folder_with_fields(&x.id, &["name", "parent"])
        .await
        .unwrap();
    assert_eq!(
        (back.name.as_str(), back.parent.unwrap().id),
        ("x4", b.id.clone())
    );

    // The old name is taken in the target and the new one where it is (`mv x4 A/y` with
    // `A/x4` and `B/y`): by way of a temporary name.
    c.create_folder(&a.id, "x4").await.unwrap();
    let y = c.create_folder(&b.id, "y").await.unwrap();
    let both_taken = c.move_folder(&x.id, &a.id, Some("y")).await.unwrap();
    assert_eq!(
        (both_taken.name.as_str(), both_taken.parent.unwrap().id),
        ("y", a.id.clone())
    );
    c.move_folder(&x.id, &b.id, Some("x4")).await.unwrap();
    c.delete_folder(&y.id, false, None).await.unwrap();

    // Description and tags.
    let updated = c
        .update_folder(
            &x.id,
            &FolderUpdate {
                description: Some("about x".into()),
                tags: Some(vec!["t1".into()]),
                ..FolderUpdate::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.description.as_deref(), Some("about x"));

    // Copy, with its contents.
    let copy = c.copy_folder(&x.id, "0", Some("x copy")).await.unwrap();
    assert_ne!(copy.id, x.id);
    let copied: Vec<_> = c
        .folder_items(&copy.id, ListOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0].name, "inside.txt");
    let err = c.copy_folder(&x.id, "0", Some("x copy")).await.unwrap_err();
    assert_eq!(err.code(), Some("item_name_in_use"));
    assert_eq!(err.conflict_id(), Some(copy.id.clone()));

    // Delete: not empty without recursive; a stale etag is 412; then gone.
    let err = c.delete_folder(&x.id, false, None).await.unwrap_err();
    assert_eq!(err.code(), Some("folder_not_empty"), "{err}");
    let stale = renamed.etag.clone().unwrap();
    let current = c.folder(&x.id).await.unwrap().etag.unwrap();
    assert_ne!(stale, current);
    let err = c
        .delete_folder(&x.id, true, Some(&stale))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(412));
    assert_eq!(err.code(), Some("precondition_failed"));
    c.delete_folder(&x.id, true, Some(&current)).await.unwrap();
    assert_eq!(c.folder(&x.id).await.unwrap_err().status(), Some(404));

    // The trash: listed, inspected, restored, purged.
    let trash: Vec<_> = c
        .trash_items(ListOptions::marker().limit(1))
        .try_collect()
        .await
        .unwrap();
    assert!(trash.iter().any(|i| i.id == x.id), "{trash:?}");
    let page = c
        .trash_items_page(&ListOptions::offset(0).fields(&["name", "trashed_at"]))
        .await
        .unwrap();
    assert!(page.entries.iter().any(|i| i.trashed_at.is_some()));
    let trashed = c.trashed_folder(&x.id).await.unwrap();
    assert_eq!(trashed.item_status.as_deref(), Some("trashed"));
    let restored = c.restore_folder(&x.id, None, None).await.unwrap();
    assert_eq!(restored.parent.unwrap().id, b.id);
    c.delete_folder(&x.id, true, None).await.unwrap();
    c.purge_folder(&x.id).await.unwrap();
    assert_eq!(
        c.trashed_folder(&x.id).await.unwrap_err().status(),
        Some(404)
    );
    // Sorting the trash with markers is refused before the request.
    assert!(matches!(
        c.trash_items_page(
            &ListOptions::marker().sort(SortBy::Name, box_client::folders::Direction::Asc)
        )
        .await,
        Err(BoxError::Invalid(_))
    ));
}

#[tokio::test]
async fn folder_shared_links() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let f = c.create_folder("0", "Shared").await.unwrap();
    assert_eq!(c.folder_shared_link(&f.id).await.unwrap(), None);

    let expiry = chrono::Utc::now() + chrono::Duration::days(7);
    let link = c
        .share_folder(
            &f.id,
            &SharedLinkSettings::new()
                .access(SharedLinkAccess::Open)
                .password("Passw0rd!")
                .unshared_at(expiry)
                .can_download(true),
        )
        .await
        .unwrap();
    assert!(!link.url.is_empty());
    assert_eq!(link.access.as_deref(), Some("open"));
    assert!(link.is_password_enabled);
    assert!(link.unshared_at.is_some());
    assert!(link.permissions.as_ref().unwrap().can_download);
    assert_eq!(
        c.folder_shared_link(&f.id).await.unwrap(),
        Some(link.clone())
    );

    // Changing it keeps the URL; removing the password.
    let changed = c
        .share_folder(&f.id, &SharedLinkSettings::new().remove_password())
        .await
        .unwrap();
    assert_eq!(changed.url, link.url);
    assert!(!changed.is_password_enabled);

    c.unshare_folder(&f.id).await.unwrap();
    assert_eq!(c.folder_shared_link(&f.id).await.unwrap(), None);

    // Settings Box would refuse are refused here first.
    for bad in [
        SharedLinkSettings::new().password("weak"),
        SharedLinkSettings::new().can_edit(true),
        SharedLinkSettings::new().vanity_name("short"),
    ] {
        let err = c.share_folder(&f.id, &bad).await.unwrap_err();
        assert!(matches!(err, BoxError::Invalid(_)), "{err}");
    }
    // Box's own refusal comes back typed.
    let err = c
        .share_folder(
            &f.id,
            &SharedLinkSettings::new().unshared_at(chrono::Utc::now() - chrono::Duration::days(1)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
}

#[tokio::test]
async fn as_user_acts_in_the_users_own_tree() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let user = c.create_app_user("Folder User", None).await.unwrap();
    let u = c.as_user(&user.id);
    let mine = u.create_folder("0", "Mine").await.unwrap();
    assert_eq!(mine.owned_by.as_ref().unwrap().id, user.id);
    let renamed = u.rename_folder(&mine.id, "Still mine").await.unwrap();
    assert_eq!(renamed.name, "Still mine");
    // The admin's own root does not hold it.
    let admin_root: Vec<_> = c
        .folder_items("0", ListOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert!(admin_root.iter().all(|i| i.id != mine.id));
}

#[tokio::test]
async fn bad_input_is_refused_with_typed_errors() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let long = "n".repeat(256);
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a\\b",
        "trailing ",
        "nul\0",
        long.as_str(),
    ] {
        let err = c.create_folder("0", bad).await.unwrap_err();
        assert!(matches!(err, BoxError::Invalid(_)), "{bad:?}: {err}");
    }
    // Exactly 255 characters is fine.
    let max = "m".repeat(255);
    assert_eq!(c.create_folder("0", &max).await.unwrap().name, max);

    let f = c.create_folder("0", "Valid").await.unwrap();
    assert!(matches!(
        c.rename_folder(&f.id, "bad/name").await,
        Err(BoxError::Invalid(_))
    ));
    assert!(matches!(
        c.update_folder(
            &f.id,
            &FolderUpdate {
                description: Some("d".repeat(257)),
                ..FolderUpdate::default()
            },
            None
        )
        .await,
        Err(BoxError::Invalid(_))
    ));
    for bad_id in ["", "abc", "1/2", "12 ", "-1"] {
        assert!(
            matches!(c.folder(bad_id).await, Err(BoxError::Invalid(_))),
            "{bad_id:?}"
        );
        assert!(matches!(
            c.move_folder(&f.id, bad_id, None).await,
            Err(BoxError::Invalid(_))
        ));
    }
    assert!(matches!(
        c.folder_items_page(
            "0",
            &ListOptions::marker().sort(SortBy::Date, box_client::folders::Direction::Asc)
        )
        .await,
        Err(BoxError::Invalid(_))
    ));
    assert!(matches!(
        c.delete_folder("0", true, None).await,
        Err(BoxError::Invalid(_))
    ));

    // Well-formed but missing ids: Box's 404, typed.
    let err = c.folder("987654321").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not_found"));
    assert!(err.is_not_found());
    let err = c.create_folder("987654321", "orphan").await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    // A name in use: 409 naming the holder.
    let err = c.create_folder("0", "Valid").await.unwrap_err();
    assert_eq!(err.code(), Some("item_name_in_use"));
    assert_eq!(err.conflict_id(), Some(f.id.clone()));
    let err = c
        .create_folder("0", "VALID")
        .await
        .expect_err("names are unique without regard to case");
    assert_eq!(err.status(), Some(409));
}
