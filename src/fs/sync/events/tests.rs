//! Tests of the event machinery: the applier's rules, echoes, health, the follower.

use super::*;
use serde_json::{json, Value};

/// A file or folder as an event's `source` (or an API answer) shows it.
fn source(kind: &str, id: &str, name: &str, parent: &str, seq: u64) -> Value {
    let mut v = json!({
        "type": kind, "id": id, "name": name, "sequence_id": seq.to_string(),
        "etag": seq.to_string(), "size": 10, "item_status": "active",
        "parent": {"type": "folder", "id": parent},
        "modified_at": "2024-05-01T10:00:00Z", "content_modified_at": "2024-04-01T10:00:00Z",
    });
    if kind == "file" {
        v["sha1"] = json!(format!("sha-{id}-1"));
        v["file_version"] = json!({"type": "file_version", "id": format!("v-{id}-1")});
    }
    v
}
fn file(id: &str, name: &str, parent: &str, seq: u64) -> Value {
    source("file", id, name, parent, seq)
}
fn folder(id: &str, name: &str, parent: &str, seq: u64) -> Value {
    source("folder", id, name, parent, seq)
}
fn item(v: &Value) -> Item {
    serde_json::from_value(v.clone()).unwrap()
}
fn event(event_id: &str, event_type: &str, source: Value) -> Event {
    Event {
        event_id: event_id.into(),
        event_type: event_type.into(),
        source,
        ..Event::default()
    }
}
fn entry(parent: Ino, name: &str) -> Invalidation {
    Invalidation::Entry {
        parent,
        name: name.into(),
    }
}
fn delete(parent: Ino, child: Ino, name: &str) -> Invalidation {
    Invalidation::Delete {
        parent,
        child,
        name: name.into(),
    }
}
fn sorted(mut v: Vec<Invalidation>) -> Vec<Invalidation> {
    v.sort_by_key(|i| format!("{i:?}"));
    v
}

/// Root ("0") holds folders `a` (id 10) and `b` (id 20); `a` holds `f.txt` (id 100).
struct Fixture {
    t: InodeTable,
    ap: EventApplier,
    a: Ino,
    b: Ino,
    f: Ino,
}

fn fixture() -> Fixture {
    let mut t = InodeTable::default();
    t.replace_listing(
        ROOT_INO,
        &[
            item(&folder("10", "a", "0", 1)),
            item(&folder("20", "b", "0", 1)),
        ],
    )
    .unwrap();
    let a = t.by_box_id("10").unwrap();
    let b = t.by_box_id("20").unwrap();
    t.replace_listing(a, &[item(&file("100", "f.txt", "10", 1))])
        .unwrap();
    let f = t.by_box_id("100").unwrap();
    Fixture {
        t,
        ap: EventApplier::default(),
        a,
        b,
        f,
    }
}

impl Fixture {
    fn apply(&mut self, ev: &Event) -> Vec<Invalidation> {
        sorted(self.ap.apply(&mut self.t, ev))
    }
}

#[test]
fn created_uploaded_and_copied_items_appear_in_known_parents() {
    let mut x = fixture();
    for (n, (ty, src)) in [
        ("ITEM_CREATE", folder("30", "new dir", "10", 1)),
        ("ITEM_UPLOAD", file("31", "up.bin", "10", 1)),
        ("ITEM_COPY", file("32", "f (copy).txt", "20", 1)),
    ]
    .into_iter()
    .enumerate()
    {
        let parent =
            x.t.by_box_id(src["parent"]["id"].as_str().unwrap())
                .unwrap();
        let name = src["name"].as_str().unwrap().to_string();
        let invs = x.apply(&event(&format!("e{n}"), ty, src));
        let ino = x.t.lookup_child(parent, &name).expect("inserted");
        assert_eq!(x.t.get(ino).unwrap().parent(), Some(parent));
        assert_eq!(
            invs,
            sorted(vec![entry(parent, &name), Invalidation::Inode(parent)]),
            "{ty}"
        );
    }
    assert!(x.t.get(x.t.by_box_id("30").unwrap()).unwrap().is_dir());
    // A listing that was complete stays complete: the event made it true again.
    assert!(x.t.get(x.a).unwrap().listing_complete());
}

#[test]
fn a_new_version_updates_attributes_and_drops_the_pages() {
    let mut x = fixture();
    let mut src = file("100", "f.txt", "10", 2);
    src["size"] = json!(99);
    src["sha1"] = json!("sha-100-2");
    src["file_version"] = json!({"type": "file_version", "id": "v-100-2"});
    src["content_modified_at"] = json!("2024-06-01T10:00:00Z");
    let fx =
        x.ap.apply_effects(&mut x.t, &event("e1", "ITEM_UPLOAD", src));
    assert_eq!(fx.kernel, vec![Invalidation::Inode(x.f)]);
    assert_eq!(fx.superseded_content, vec![Box::<str>::from("100")]);
    let attrs = x.t.get(x.f).unwrap().attrs().clone();
    assert_eq!(attrs.size, 99);
    assert_eq!(attrs.version.as_deref(), Some("v-100-2"));
    assert_eq!(attrs.sequence_id, Some(2));

    // An older version made current again is a content change too.
    let mut src = file("100", "f.txt", "10", 3);
    src["size"] = json!(10);
    let fx =
        x.ap.apply_effects(&mut x.t, &event("e2", "ITEM_MAKE_CURRENT_VERSION", src));
    assert_eq!(fx.kernel, vec![Invalidation::Inode(x.f)]);
    assert_eq!(
        x.t.get(x.f).unwrap().attrs().version.as_deref(),
        Some("v-100-1")
    );
}

#[test]
fn renames_and_moves_relink_and_invalidate_both_places() {
    let mut x = fixture();
    let (a, b, f) = (x.a, x.b, x.f);
    let invs = x.apply(&event("e1", "ITEM_RENAME", file("100", "g.txt", "10", 2)));
    assert_eq!(x.t.lookup_child(a, "g.txt"), Some(f));
    assert_eq!(x.t.lookup_child(a, "f.txt"), None);
    assert_eq!(
        invs,
        sorted(vec![
            entry(a, "f.txt"),
            entry(a, "g.txt"),
            Invalidation::Inode(a),
            Invalidation::Attrs(f),
        ])
    );

    let invs = x.apply(&event("e2", "ITEM_MOVE", file("100", "g.txt", "20", 3)));
    assert_eq!(x.t.lookup_child(b, "g.txt"), Some(f));
    assert!(x.t.children(a).is_empty());
    assert_eq!(
        invs,
        sorted(vec![
            entry(a, "g.txt"),
            entry(b, "g.txt"),
            Invalidation::Inode(a),
            Invalidation::Inode(b),
            Invalidation::Attrs(f),
        ])
    );

    // A folder moves with its subtree.
    let invs = x.apply(&event("e3", "ITEM_MOVE", folder("20", "b", "10", 2)));
    assert_eq!(x.t.lookup_child(a, "b"), Some(b));
    assert_eq!(x.t.lookup_child(b, "g.txt"), Some(f));
    assert!(invs.contains(&entry(ROOT_INO, "b")) && invs.contains(&entry(a, "b")));
}

#[test]
fn moved_out_of_view_is_detached_and_comes_back() {
    let mut x = fixture();
    let (a, f) = (x.a, x.f);
    // Into a folder the table never saw (outside the mount, or never listed).
    let invs = x.apply(&event("e1", "ITEM_MOVE", file("100", "f.txt", "999", 2)));
    assert_eq!(
        invs,
        sorted(vec![delete(a, f, "f.txt"), Invalidation::Inode(a)])
    );
    assert_eq!(x.t.by_box_id("100"), None, "unreferenced: dropped");
    // Events about it out there are ignored.
    assert!(x
        .apply(&event("e2", "ITEM_RENAME", file("100", "h.txt", "999", 3)))
        .is_empty());
    assert_eq!(x.t.by_box_id("100"), None);
    // Back into view: a new inode.
    let invs = x.apply(&event("e3", "ITEM_MOVE", file("100", "h.txt", "10", 4)));
    let back = x.t.lookup_child(a, "h.txt").unwrap();
    assert_eq!(
        invs,
        sorted(vec![entry(a, "h.txt"), Invalidation::Inode(a)])
    );

    // While the kernel holds it, it keeps its inode out there and back.
    x.t.add_lookup(back);
    x.apply(&event("e4", "ITEM_MOVE", file("100", "h.txt", "999", 5)));
    assert_eq!(x.t.get(back).unwrap().parent(), None);
    assert_eq!(x.t.lookup_child(a, "h.txt"), None);
    let invs = x.apply(&event("e5", "ITEM_MOVE", file("100", "h.txt", "20", 6)));
    assert_eq!(x.t.lookup_child(x.b, "h.txt"), Some(back));
    assert!(invs.contains(&entry(x.b, "h.txt")));
}

#[test]
fn trash_removes_and_undelete_restores() {
    let mut x = fixture();
    let (a, f) = (x.a, x.f);
    x.t.add_lookup(f);
    // Box's trashed source still names the old parent; the removal goes by the item.
    let mut src = file("100", "f.txt", "10", 2);
    src["item_status"] = json!("trashed");
    let invs = x.apply(&event("e1", "ITEM_TRASH", src));
    assert_eq!(
        invs,
        sorted(vec![delete(a, f, "f.txt"), Invalidation::Inode(a)])
    );
    assert_eq!(x.t.lookup_child(a, "f.txt"), None);
    assert_eq!(x.t.by_box_id("100"), Some(f), "still referenced");
    // The same trash again (a repeat with another id): nothing more to say.
    let mut src = file("100", "f.txt", "10", 2);
    src["item_status"] = json!("trashed");
    assert!(x.apply(&event("e1b", "ITEM_TRASH", src)).is_empty());

    let invs = x.apply(&event(
        "e2",
        "ITEM_UNDELETE_VIA_TRASH",
        file("100", "f.txt", "10", 3),
    ));
    assert_eq!(x.t.lookup_child(a, "f.txt"), Some(f), "same inode back");
    assert!(invs.contains(&entry(a, "f.txt")) && invs.contains(&Invalidation::Inode(a)));

    // A folder goes with its subtree; unknown items in the trash are nobody's business.
    let mut src = folder("10", "a", "0", 2);
    src["item_status"] = json!("trashed");
    let invs = x.apply(&event("e3", "ITEM_TRASH", src));
    assert_eq!(
        invs,
        sorted(vec![
            delete(ROOT_INO, a, "a"),
            Invalidation::Inode(ROOT_INO)
        ])
    );
    let mut src = file("555", "x", "10", 2);
    src["item_status"] = json!("trashed");
    assert!(x.apply(&event("e4", "ITEM_TRASH", src)).is_empty());
}

#[test]
fn trash_and_restore_events_change_the_trash_whoever_made_them() {
    let mut x = fixture();
    // An item the table never held, trashed and restored elsewhere.
    let mut src = file("555", "x", "10", 2);
    src["item_status"] = json!("trashed");
    let fx =
        x.ap.apply_effects(&mut x.t, &event("t1", "ITEM_TRASH", src));
    assert!(fx.trash_changed && fx.kernel.is_empty());
    let restored = file("555", "x", "10", 3);
    let fx =
        x.ap.apply_effects(&mut x.t, &event("t2", "ITEM_UNDELETE_VIA_TRASH", restored));
    assert!(fx.trash_changed);
    let renamed = file("100", "g.txt", "10", 2);
    let fx =
        x.ap.apply_effects(&mut x.t, &event("t3", "ITEM_RENAME", renamed));
    assert!(!fx.trash_changed);
}

#[test]
fn lock_shared_link_and_metadata_refresh_attributes() {
    let mut x = fixture();
    let f = x.f;
    for (n, ty) in [
        "LOCK_CREATE",
        "ITEM_SHARED_CREATE",
        "COLLAB_ADD_COLLABORATOR",
    ]
    .into_iter()
    .enumerate()
    {
        let seq = n as u64 + 2;
        let invs = x.apply(&event(
            &format!("e{n}"),
            ty,
            file("100", "f.txt", "10", seq),
        ));
        assert_eq!(invs, vec![Invalidation::Attrs(f)], "{ty}");
        assert_eq!(x.t.get(f).unwrap().attrs_fetched(), None, "{ty}");
        assert_eq!(x.t.get(f).unwrap().attrs().sequence_id, Some(seq));
    }
    // Metadata leaves sequence_id and etag alone: always refreshed.
    let invs = x.apply(&event(
        "m1",
        "METADATA_INSTANCE_CREATE",
        file("100", "f.txt", "10", 4),
    ));
    assert_eq!(invs, vec![Invalidation::Attrs(f)]);
    assert_eq!(x.t.get(f).unwrap().attrs_fetched(), None);
    // An old lock event after a newer change: stale, ignored.
    assert!(x
        .apply(&event("e9", "LOCK_DESTROY", file("100", "f.txt", "10", 3)))
        .is_empty());
}

#[test]
fn one_request_two_events_is_not_an_echo() {
    // Another client renamed and locked in one PUT: two events, one sequence_id.
    let mut x = fixture();
    let (a, f) = (x.a, x.f);
    let src = file("100", "g.txt", "10", 2);
    let invs = x.apply(&event("e1", "ITEM_RENAME", src.clone()));
    assert!(invs.contains(&entry(a, "g.txt")));
    let invs = x.apply(&event("e2", "LOCK_CREATE", src));
    assert_eq!(invs, vec![Invalidation::Attrs(f)]);
}

#[test]
fn a_repeat_that_gets_past_the_feed_changes_nothing() {
    // The feed drops repeats by event id; one it no longer remembers is old news here.
    let mut x = fixture();
    let ev = event("same", "ITEM_CREATE", folder("30", "n", "0", 1));
    assert_eq!(x.apply(&ev).len(), 2);
    assert!(x.apply(&ev).is_empty(), "what the table holds already");
    let n30 = x.t.by_box_id("30").unwrap();
    // The folder is removed meanwhile; a repeat of the creation must not bring it back.
    let mut gone = folder("30", "n", "0", 2);
    gone["item_status"] = json!("trashed");
    x.apply(&event("trash", "ITEM_TRASH", gone));
    assert!(x.t.get(n30).is_none());
    assert!(x.apply(&ev).is_empty());
    assert_eq!(x.t.by_box_id("30"), None);
}

#[test]
fn stale_sequence_ids_change_nothing() {
    let mut x = fixture();
    let (a, f) = (x.a, x.f);
    x.apply(&event("e1", "ITEM_RENAME", file("100", "new.txt", "10", 5)));
    let held = x.t.get(f).unwrap().attrs().clone();
    // Late events from before: a rename, a move, an upload, a trash.
    let mut upload = file("100", "f.txt", "10", 3);
    upload["size"] = json!(1);
    let mut trash = file("100", "f.txt", "10", 4);
    trash["item_status"] = json!("trashed");
    for (n, (ty, src)) in [
        ("ITEM_RENAME", file("100", "old.txt", "10", 2)),
        ("ITEM_MOVE", file("100", "new.txt", "20", 4)),
        ("ITEM_MOVE", file("100", "new.txt", "999", 4)),
        ("ITEM_UPLOAD", upload),
        ("ITEM_TRASH", trash),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            x.apply(&event(&format!("s{n}"), ty, src)).is_empty(),
            "{ty}"
        );
        assert_eq!(x.t.lookup_child(a, "new.txt"), Some(f), "{ty}");
        assert_eq!(x.t.get(f).unwrap().attrs(), &held, "{ty}");
    }
}

#[test]
fn echoes_of_our_own_changes_invalidate_nothing() {
    let mut x = fixture();
    let (a, b, f) = (x.a, x.b, x.f);
    // The mount renamed the file and recorded Box's answer; the event follows.
    let answer = file("100", "mine.txt", "10", 2);
    x.t.rename(f, a, "mine.txt").unwrap();
    x.t.insert_or_update_from_item(a, &item(&answer)).unwrap();
    assert!(x.apply(&event("e1", "ITEM_RENAME", answer)).is_empty());
    // Moved, then a new version uploaded, by us.
    let moved = file("100", "mine.txt", "20", 3);
    x.t.insert_or_update_from_item(b, &item(&moved)).unwrap();
    assert!(x.apply(&event("e2", "ITEM_MOVE", moved)).is_empty());
    let mut uploaded = file("100", "mine.txt", "20", 4);
    uploaded["file_version"] = json!({"type": "file_version", "id": "v-100-2"});
    x.t.insert_or_update_from_item(b, &item(&uploaded)).unwrap();
    let fx =
        x.ap.apply_effects(&mut x.t, &event("e3", "ITEM_UPLOAD", uploaded));
    assert_eq!(fx, Effects::default());
    // Created by us; locked by us (the lock moves sequence_id).
    let created = folder("40", "made", "10", 1);
    x.t.insert_or_update_from_item(a, &item(&created)).unwrap();
    assert!(x.apply(&event("e4", "ITEM_CREATE", created)).is_empty());
    let locked = file("100", "mine.txt", "20", 5);
    x.t.insert_or_update_from_item(b, &item(&locked)).unwrap();
    assert!(x.apply(&event("e5", "LOCK_CREATE", locked)).is_empty());
    // Deleted by us (the table dropped it): the trash event finds nothing.
    let n40 = x.t.by_box_id("40").unwrap();
    x.t.remove(n40).unwrap();
    let mut trashed = folder("40", "made", "10", 2);
    trashed["item_status"] = json!("trashed");
    assert!(x.apply(&event("e6", "ITEM_TRASH", trashed)).is_empty());
    assert_eq!(x.t.get(f).unwrap().attrs().sequence_id, Some(5));
    assert!(x.t.get(f).unwrap().attrs_fetched().is_some());
}

/// A file the mount created and deleted at once (an editor's or a database's journal):
/// the event of its creation arrives after the delete, and must not bring it back.
#[test]
fn the_late_event_of_an_item_we_deleted_does_not_bring_it_back() {
    let mut x = fixture();
    let a = x.a;
    let created = file("55", "db-journal", "10", 0);
    let ino = x.t.insert_or_update_from_item(a, &item(&created)).unwrap();
    x.t.remove(ino).unwrap();
    assert!(x
        .apply(&event("j1", "ITEM_UPLOAD", created.clone()))
        .is_empty());
    assert_eq!(x.t.lookup_child(a, "db-journal"), None);
    assert_eq!(x.t.by_box_id("55"), None);
    // The same while the file is still open (its inode detached, not dropped), after a
    // second version: neither version's event brings it back.
    let journal = file("56", "db2-journal", "10", 0);
    let ino = x.t.insert_or_update_from_item(a, &item(&journal)).unwrap();
    x.t.add_lookup(ino);
    let second = file("56", "db2-journal", "10", 1);
    x.t.insert_or_update_from_item(a, &item(&second)).unwrap();
    x.t.remove(ino).unwrap();
    assert!(x.t.get(ino).is_some(), "still open");
    for (n, ev) in [journal, second].into_iter().enumerate() {
        assert!(x
            .apply(&event(&format!("k{n}"), "ITEM_UPLOAD", ev))
            .is_empty());
        assert_eq!(x.t.lookup_child(a, "db2-journal"), None);
    }
    // Restored from the trash elsewhere (a higher sequence_id): it is back.
    let restored = file("55", "db-journal", "10", 2);
    assert!(!x
        .apply(&event("j2", "ITEM_UNDELETE_VIA_TRASH", restored))
        .is_empty());
    assert!(x.t.lookup_child(a, "db-journal").is_some());
}

#[test]
fn unknown_items_under_unknown_parents_are_ignored() {
    let mut x = fixture();
    let len = x.t.len();
    for (n, (ty, src)) in [
        ("ITEM_CREATE", folder("70", "x", "999", 1)),
        ("ITEM_UPLOAD", file("71", "y", "999", 1)),
        ("ITEM_MOVE", file("72", "z", "998", 3)),
        ("LOCK_CREATE", file("73", "w", "999", 2)),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            x.apply(&event(&format!("u{n}"), ty, src)).is_empty(),
            "{ty}"
        );
    }
    assert_eq!(x.t.len(), len);
    // Neither are noise, null sources or users.
    assert!(x
        .apply(&event("n1", "ITEM_DOWNLOAD", file("100", "f.txt", "10", 9)))
        .is_empty());
    assert_eq!(x.t.get(x.f).unwrap().attrs().sequence_id, Some(1));
    assert!(x
        .apply(&event("n2", "LOCK_DESTROY", Value::Null))
        .is_empty());
    assert!(x
        .apply(&event(
            "n3",
            "ITEM_CREATE",
            json!({"type": "user", "id": "5"})
        ))
        .is_empty());
    assert_eq!(x.t.len(), len);
    // A web link is an item of the tree: it shows as its shortcut file.
    assert!(!x
        .apply(&event(
            "n4",
            "ITEM_CREATE",
            source("web_link", "80", "l", "10", 1)
        ))
        .is_empty());
    let link = x.t.lookup_child(x.a, "l.url").expect("the link shows");
    assert_eq!(
        x.t.get(link).unwrap().kind(),
        crate::fs::tree::inode::Kind::Link
    );
    assert_eq!(x.t.len(), len + 1);
}

#[test]
fn an_item_taking_a_held_name_replaces_the_holder() {
    let mut x = fixture();
    let (a, f) = (x.a, x.f);
    let invs = x.apply(&event("e1", "ITEM_UPLOAD", file("101", "F.TXT", "10", 1)));
    let new = x.t.lookup_child(a, "f.txt").unwrap();
    assert_ne!(new, f);
    assert_eq!(
        invs,
        sorted(vec![
            delete(a, f, "f.txt"),
            entry(a, "F.TXT"),
            Invalidation::Inode(a)
        ])
    );
}

#[test]
fn a_move_that_cannot_be_right_detaches() {
    // Out of order across items: `a` reported under its own child.
    let mut x = fixture();
    let a = x.a;
    let c =
        x.t.insert_or_update_from_item(a, &item(&folder("11", "c", "10", 1)))
            .unwrap();
    let invs = x.apply(&event("e1", "ITEM_MOVE", folder("10", "a", "11", 2)));
    assert!(invs.contains(&delete(ROOT_INO, a, "a")));
    assert_eq!(x.t.lookup_child(ROOT_INO, "a"), None);
    assert!(x.t.get(c).is_none(), "the detached subtree is dropped");
}

#[test]
fn the_mount_root_is_updated_in_place() {
    let mut t = InodeTable::new("10");
    let mut ap = EventApplier::default();
    let invs = ap.apply(
        &mut t,
        &event("e1", "ITEM_RENAME", folder("10", "x", "0", 5)),
    );
    assert_eq!(invs, vec![Invalidation::Attrs(ROOT_INO)]);
    assert_eq!(t.get(ROOT_INO).unwrap().name(), "");
    let mut src = folder("10", "x", "0", 6);
    src["item_status"] = json!("trashed");
    assert!(ap.apply(&mut t, &event("e2", "ITEM_TRASH", src)).is_empty());
    assert!(t.get(ROOT_INO).is_some());
}

#[test]
fn revalidate_all_marks_everything_stale() {
    let mut x = fixture();
    let (a, f) = (x.a, x.f);
    x.t.add_lookup(a);
    x.t.add_lookup(f);
    let invs = revalidate_all(&mut x.t, RevalidateScope::MemoryAndStore);
    assert_eq!(
        invs,
        vec![
            entry(ROOT_INO, "a"),
            entry(a, "f.txt"),
            Invalidation::Inode(ROOT_INO),
            Invalidation::Inode(a),
            Invalidation::Inode(f),
        ]
    );
    for (ino, inode) in x.t.iter() {
        assert_eq!(inode.attrs_fetched(), None, "{ino}");
        assert!(!inode.listing_complete(), "{ino}");
    }
}

#[test]
fn only_a_lost_position_reaches_the_stored_listings() {
    for (scope, store_too) in [
        (RevalidateScope::Memory, false),
        (RevalidateScope::MemoryAndStore, true),
    ] {
        let mut x = fixture();
        x.t.keep_journal();
        let _ = x.t.take_store_batch();
        revalidate_all(&mut x.t, scope);
        let stale = x.t.take_store_batch().is_some_and(|b| b.all_listings_stale);
        assert_eq!(stale, store_too, "{scope:?}");
        assert!(x.t.iter().all(|(_, i)| !i.listing_complete()), "{scope:?}");
    }
}

#[test]
fn health_flips_and_counts() {
    let h = StreamHealth::new();
    assert!(!h.is_healthy());
    assert_eq!(
        h.ttl(Duration::from_secs(60), Duration::from_secs(1)),
        Duration::from_secs(1)
    );
    assert!(h.mark_healthy(Some(Instant::now())));
    assert!(!h.mark_healthy(None));
    assert!(h.is_healthy() && h.last_ok().is_some() && h.lag().is_some());
    assert!(h.mark_unhealthy());
    assert!(!h.mark_unhealthy());
    assert_eq!(h.counters().outages, 1);
    assert!(h.changed_at().is_some());
}

#[test]
fn health_says_reconnecting_or_failed_with_the_last_error() {
    let h = StreamHealth::new();
    assert_eq!(h.state(), StreamState::Reconnecting);
    h.record_error("connection refused".into());
    assert_eq!(
        h.last_error().map(|(_, m)| m).as_deref(),
        Some("connection refused")
    );
    h.mark_ended();
    assert_eq!(h.state(), StreamState::Failed);
    h.mark_healthy(Some(Instant::now()));
    assert_eq!(h.state(), StreamState::Healthy);
    assert_eq!(h.state().as_str(), "healthy");
    h.mark_unhealthy();
    assert_eq!(h.state(), StreamState::Reconnecting);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Invalidation>>);

impl KernelNotify for Recorder {
    fn notify(&self, inv: &Invalidation) {
        self.0.lock().unwrap().push(inv.clone());
    }
}

#[tokio::test]
async fn follower_health_settles_and_gaps_revalidate() {
    // Never contacted: only the status logic runs.
    let client = box_client::Client::new(
        Arc::new(box_client::DeveloperToken::new("unused")),
        box_client::Endpoints::from_base("http://127.0.0.1:9").unwrap(),
    );
    let x = fixture();
    let kernel = Arc::new(Recorder::default());
    let health = Arc::new(StreamHealth::new());
    let mut f = EventFollower::with_options(
        Arc::new(client),
        Arc::new(Mutex::new(x.t)),
        None,
        kernel.clone(),
        health.clone(),
        FollowerOptions {
            revalidate_after: Duration::from_secs(3600),
            ..FollowerOptions::default()
        },
    );
    let mut w = Watch::default();
    let ok = |failures, out_of_date| FeedStatus {
        connected: true,
        failures,
        out_of_date,
        last_ok: Some(Instant::now()),
    };
    let failed = |failures| FeedStatus {
        connected: false,
        failures,
        ..FeedStatus::default()
    };

    // First contact without any failure: healthy at once, nothing to revalidate.
    f.on_status(&ok(0, 0), &mut w).await;
    assert!(health.is_healthy() && health.last_ok().is_some());
    assert!(w.healthy_at.is_none());

    // A failure; the feed works again but fails before settling: still unhealthy.
    f.on_status(&failed(1), &mut w).await;
    assert!(!health.is_healthy());
    f.on_status(&ok(1, 0), &mut w).await;
    let first = w.healthy_at.expect("settling");
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Failed and worked again between two looks: the settle time starts over.
    f.on_status(&ok(2, 0), &mut w).await;
    assert!(!health.is_healthy());
    assert!(w.healthy_at.expect("settling again") > first);
    f.on_status(&failed(3), &mut w).await;
    assert!(w.healthy_at.is_none());
    f.on_status(&ok(3, 0), &mut w).await;
    f.recovered(&mut w).await;
    assert!(health.is_healthy());
    assert_eq!(health.counters().outages, 1);
    // Short outage: the feed resumed from its position, nothing to revalidate.
    assert_eq!(health.counters().revalidations, 0);
    assert!(kernel.0.lock().unwrap().is_empty());

    // Box says the position is too old: revalidate at once.
    f.on_status(&ok(3, 1), &mut w).await;
    assert_eq!(health.counters().revalidations, 1);
    assert!(kernel
        .0
        .lock()
        .unwrap()
        .contains(&Invalidation::Inode(ROOT_INO)));
    assert!(health.is_healthy());
}

#[test]
fn own_changes_hold_their_item_and_name_until_done() {
    let own = OwnChanges::new();
    let f = item(&file("100", "f.txt", "10", 2));
    let made = item(&folder("300", "New", "10", 1));
    assert!(!own.holds(&f) && !own.holds(&made));
    let a = own.item("100");
    let b = own.item("100");
    let c = own.name("10", "new");
    assert!(own.holds(&f));
    assert!(own.holds(&made), "names compare ignoring case");
    assert!(!own.holds(&item(&folder("301", "new", "20", 1))));
    drop(a);
    assert!(own.holds(&f), "two changes of one item");
    drop(b);
    drop(c);
    assert!(!own.holds(&f) && !own.holds(&made));
}
