//! Tests of the inode table: its invariants after every kind of change, eviction, listings
//! in pages, local files.

use super::*;

pub(super) fn item(kind: &str, id: &str, name: &str, seq: u64) -> Item {
    Item {
        kind: kind.into(),
        id: id.into(),
        name: name.into(),
        etag: Some(seq.to_string()),
        sequence_id: Some(seq.to_string()),
        size: Some(10),
        modified_at: Some("2024-05-01T10:00:00-07:00".into()),
        content_modified_at: Some("2024-04-01T10:00:00-07:00".into()),
        ..Default::default()
    }
}
fn file(id: &str, name: &str, seq: u64) -> Item {
    item("file", id, name, seq)
}
fn folder(id: &str, name: &str, seq: u64) -> Item {
    item("folder", id, name, seq)
}

/// Checks every INVARIANT of the module against the table's current state.
fn check_invariants(t: &InodeTable) {
    assert!(t
        .get(ROOT_INO)
        .is_some_and(|r| r.is_dir() && r.parent.is_none()));
    assert_eq!(t.inodes.len(), t.by_id.len());
    for (&ino, inode) in &t.inodes {
        assert_eq!(t.by_id[&inode.box_id], ino);
        assert_eq!(inode.dir.is_some(), inode.kind == Kind::Dir);
        match inode.parent {
            Some(p) => {
                let dir = t.inodes[&p].dir.as_ref().expect("parent is a dir");
                assert_eq!(dir.children.get(&fold(&inode.name)), Some(&ino));
            }
            None => assert!(ino == ROOT_INO || inode.lookups > 0, "orphan {ino} kept"),
        }
        if let Some(dir) = &inode.dir {
            for (k, c) in &dir.children {
                let child = &t.inodes[c];
                assert_eq!(child.parent, Some(ino));
                assert_eq!(&fold(&child.name), k);
            }
        }
        let has_children = inode.dir.as_ref().is_some_and(|d| !d.children.is_empty());
        if t.lru.contains(&ino) {
            assert!(t.is_candidate(ino), "{ino} in the LRU but not a candidate");
        } else if t.is_candidate(ino) {
            assert!(has_children, "candidate {ino} missing from the LRU");
        }
    }
    for (&ino, ()) in t.lru.iter() {
        assert!(t.inodes.contains_key(&ino), "dead {ino} in the LRU");
    }
    assert!(t.lru.len() <= t.lru_peak);
    let evictable: Vec<Ino> = t
        .lru
        .iter()
        .map(|(&ino, ())| ino)
        .filter(|ino| {
            t.inodes[ino]
                .dir
                .as_ref()
                .is_none_or(|d| d.children.is_empty())
        })
        .collect();
    // What the last call kept: one inode, or a listed directory and its children.
    let one_listing = |dir: Ino| {
        evictable
            .iter()
            .all(|&i| i == dir || t.inodes[&i].parent == Some(dir))
    };
    let kept = evictable.len() <= 1
        || evictable
            .iter()
            .filter_map(|i| t.inodes[i].parent)
            .any(one_listing);
    assert!(
        t.len() <= t.limit() || kept,
        "{} inodes over the limit {} with {} evictable ones left",
        t.len(),
        t.limit(),
        evictable.len()
    );
    for p in &t.evicted_parents {
        assert!(t.get(*p).is_some_and(|i| i.is_dir()), "evicted parent {p}");
    }
}

/// The files `prefix0..prefix{n-1}`, named like their ids.
fn files(prefix: &str, n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i}");
            file(&id, &id, 1)
        })
        .collect()
}

fn add(t: &mut InodeTable, parent: Ino, it: &Item) -> Ino {
    t.insert_or_update_from_item(parent, it).unwrap()
}

fn gone(t: &InodeTable, box_id: &str) -> bool {
    t.by_box_id(box_id).is_none()
}

#[test]
fn new_table_has_root_with_configured_id() {
    let t = InodeTable::default();
    assert_eq!(t.by_box_id("0"), Some(ROOT_INO));
    let t = InodeTable::new("12345");
    assert_eq!(t.root_box_id(), "12345");
    assert_eq!(t.by_box_id("12345"), Some(ROOT_INO));
    check_invariants(&t);
}

#[test]
fn attributes_come_from_the_item() {
    let mut t = InodeTable::default();
    let mut it = file("f1", "a.txt", 3);
    it.sha1 = Some("abc".into());
    it.file_version = Some(box_client::types::FileVersion {
        id: "v9".into(),
        ..Default::default()
    });
    let ino = t.insert_or_update_from_item(ROOT_INO, &it).unwrap();
    let a = t.get(ino).unwrap().attrs();
    assert_eq!(a.size, 10);
    assert_eq!(a.sequence_id, Some(3));
    assert_eq!(a.etag.as_deref(), Some("3"));
    assert_eq!(a.version.as_deref(), Some("v9"));
    assert_eq!(a.sha1.as_deref(), Some("abc"));
    let mtime =
        SystemTime::from(chrono::DateTime::parse_from_rfc3339("2024-04-01T17:00:00Z").unwrap());
    assert_eq!(a.mtime, Some(mtime));
    assert_eq!(a.atime, Some(mtime));
    assert!(a.ctime > a.mtime);
    assert!(t.attrs_fresh(ino, Duration::from_secs(60), Instant::now()));
    t.invalidate_attrs(ino);
    assert!(!t.attrs_fresh(ino, Duration::from_secs(60), Instant::now()));
}

#[test]
fn inode_is_stable_across_rename_and_move() {
    let mut t = InodeTable::default();
    let d1 = t
        .insert_or_update_from_item(ROOT_INO, &folder("d1", "A", 1))
        .unwrap();
    let d2 = t
        .insert_or_update_from_item(ROOT_INO, &folder("d2", "B", 1))
        .unwrap();
    let f = t
        .insert_or_update_from_item(d1, &file("f", "x.txt", 1))
        .unwrap();

    // Box says: renamed.
    let same = t
        .insert_or_update_from_item(d1, &file("f", "y.txt", 2))
        .unwrap();
    assert_eq!(same, f);
    assert_eq!(t.lookup_child(d1, "x.txt"), None);
    assert_eq!(t.lookup_child(d1, "y.txt"), Some(f));

    // Box says: moved to d2 (the old parent's index is fixed).
    let same = t
        .insert_or_update_from_item(d2, &file("f", "y.txt", 3))
        .unwrap();
    assert_eq!(same, f);
    assert_eq!(t.lookup_child(d1, "y.txt"), None);
    assert_eq!(t.lookup_child(d2, "y.txt"), Some(f));
    assert_eq!(t.get(f).unwrap().parent(), Some(d2));

    // Our own rename and move.
    assert_eq!(t.rename(f, d1, "z.txt").unwrap(), None);
    assert_eq!(t.lookup_child(d1, "z.txt"), Some(f));
    assert_eq!(t.by_box_id("f"), Some(f));
    assert!(t.children(d2).is_empty());
    check_invariants(&t);
}

#[test]
fn directory_cannot_move_under_itself() {
    let mut t = InodeTable::default();
    let a = t
        .insert_or_update_from_item(ROOT_INO, &folder("a", "a", 1))
        .unwrap();
    let b = t
        .insert_or_update_from_item(a, &folder("b", "b", 1))
        .unwrap();
    assert_eq!(t.rename(a, b, "a"), Err(InodeError::MoveUnderItself));
    assert_eq!(t.rename(a, a, "a"), Err(InodeError::MoveUnderItself));
    assert_eq!(
        t.insert_or_update_from_item(b, &folder("a", "a", 2)),
        Err(InodeError::MoveUnderItself)
    );
    assert_eq!(t.rename(ROOT_INO, a, "r"), Err(InodeError::Root));
    let f = t.insert_or_update_from_item(a, &file("f", "f", 1)).unwrap();
    assert_eq!(t.rename(a, f, "x"), Err(InodeError::NotADirectory(f)));
    check_invariants(&t);
}

#[test]
fn lookup_ignores_case_but_keeps_display_name() {
    let mut t = InodeTable::default();
    let f = t
        .insert_or_update_from_item(ROOT_INO, &file("f", "ReadMe.TXT", 1))
        .unwrap();
    assert_eq!(t.lookup_child(ROOT_INO, "readme.txt"), Some(f));
    assert_eq!(t.lookup_child(ROOT_INO, "README.txt"), Some(f));
    assert_eq!(t.lookup_child(ROOT_INO, "ReadMe.TXT"), Some(f));
    assert_eq!(t.get(f).unwrap().name(), "ReadMe.TXT");
    // A case-only rename is a rename of the same inode.
    assert_eq!(t.rename(f, ROOT_INO, "README.txt").unwrap(), None);
    assert_eq!(t.get(f).unwrap().name(), "README.txt");
    assert_eq!(t.lookup_child(ROOT_INO, "readme.TXT"), Some(f));
    assert_eq!(t.len(), 2);
    // Non-ASCII case folding.
    let g = t
        .insert_or_update_from_item(ROOT_INO, &file("g", "ÄRGER", 1))
        .unwrap();
    assert_eq!(t.lookup_child(ROOT_INO, "ärger"), Some(g));
    check_invariants(&t);
}

#[test]
fn a_listing_in_pages_hands_out_children_as_they_come() {
    let mut t = InodeTable::default();
    let d = t
        .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
        .unwrap();
    let old = t
        .insert_or_update_from_item(d, &file("9", "old", 1))
        .unwrap();
    // A full listing earlier, so that "old" counts as learned before the next one.
    t.replace_listing(d, &[file("9", "old", 1)]).unwrap();

    let mut merge = t.begin_listing(d).unwrap();
    let page1 = t
        .merge_listing_page(d, &[file("1", "a", 1), file("2", "b", 1)], &mut merge)
        .unwrap();
    assert_eq!(page1.len(), 2);
    assert_eq!(t.lookup_child(d, "a"), Some(page1[0]));
    check_invariants(&t);
    // Between the pages an event reports a new file the pages will not show.
    std::thread::sleep(Duration::from_millis(2));
    let evented = t
        .insert_or_update_from_item(d, &file("7", "from-an-event", 1))
        .unwrap();
    let page2 = t
        .merge_listing_page(d, &[file("3", "c", 1)], &mut merge)
        .unwrap();
    assert_eq!(page2.len(), 1);
    let diff = t.finish_listing(d, merge).unwrap();
    // "old" was not in the pages: gone. The file the event told of stays.
    assert_eq!(
        diff.removed.iter().map(|r| r.ino).collect::<Vec<_>>(),
        [old]
    );
    assert_eq!(t.lookup_child(d, "from-an-event"), Some(evented));
    assert_eq!(t.children(d).len(), 4);
    assert!(t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
    check_invariants(&t);
}

#[test]
fn a_page_older_than_a_removal_does_not_bring_the_item_back() {
    let mut t = InodeTable::default();
    let d = t
        .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
        .unwrap();
    let x = t.insert_or_update_from_item(d, &file("1", "x", 1)).unwrap();
    let mut merge = t.begin_listing(d).unwrap();
    // The trash event arrives before the page that still shows "x".
    t.remove(x).unwrap();
    assert!(t.get(x).is_none(), "dropped: nothing referenced it");
    let page = t
        .merge_listing_page(d, &[file("1", "x", 1), file("2", "y", 1)], &mut merge)
        .unwrap();
    assert_eq!(page.len(), 1);
    t.finish_listing(d, merge).unwrap();
    assert_eq!(t.lookup_child(d, "x"), None);
    assert!(t.lookup_child(d, "y").is_some());
    // A listing begun after the removal shows it again (restored from the trash).
    t.replace_listing(d, &[file("1", "x", 2), file("2", "y", 1)])
        .unwrap();
    assert!(t.lookup_child(d, "x").is_some());
    check_invariants(&t);
}

#[test]
fn word_of_a_removed_item_no_newer_than_its_removal_is_refused() {
    let mut t = InodeTable::default();
    let x = t
        .insert_or_update_from_item(ROOT_INO, &file("1", "x", 3))
        .unwrap();
    t.remove(x).unwrap();
    for seq in [2, 3] {
        assert!(matches!(
            t.insert_or_update_from_item(ROOT_INO, &file("1", "x", seq)),
            Err(InodeError::RemovedSince(_))
        ));
    }
    assert_eq!(t.lookup_child(ROOT_INO, "x"), None);
    // A listing begun later that still shows the old item skips it too.
    t.replace_listing(ROOT_INO, &[file("1", "x", 3)]).unwrap();
    assert_eq!(t.lookup_child(ROOT_INO, "x"), None);
    // Newer: restored.
    t.insert_or_update_from_item(ROOT_INO, &file("1", "x", 4))
        .unwrap();
    assert!(t.lookup_child(ROOT_INO, "x").is_some());
    check_invariants(&t);
}

#[test]
fn a_listing_whose_item_moved_away_meanwhile_is_not_complete() {
    let mut t = InodeTable::default();
    let d = t
        .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
        .unwrap();
    let mut merge = t.begin_listing(d).unwrap();
    t.merge_listing_page(d, &[file("1", "a", 1)], &mut merge)
        .unwrap();
    // An event moves "a" to the root before the last page.
    t.insert_or_update_from_item(ROOT_INO, &file("1", "a", 2))
        .unwrap();
    t.merge_listing_page(d, &[file("2", "b", 1)], &mut merge)
        .unwrap();
    t.finish_listing(d, merge).unwrap();
    assert_eq!(t.children(d).len(), 1);
    assert!(t.lookup_child(ROOT_INO, "a").is_some());
    assert!(!t.get(d).unwrap().listing_complete());
    check_invariants(&t);
}

#[test]
fn replace_listing_reports_the_diff() {
    let mut t = InodeTable::default();
    let d = t
        .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
        .unwrap();
    let other = t
        .insert_or_update_from_item(ROOT_INO, &folder("o", "o", 1))
        .unwrap();
    let first = vec![
        file("1", "keep", 1),
        file("2", "rename-me", 1),
        file("3", "delete-me", 1),
        file("4", "change-me", 1),
    ];
    let diff = t.replace_listing(d, &first).unwrap();
    assert_eq!(diff.added.len(), 4);
    assert!(diff.removed.is_empty() && diff.moved.is_empty() && diff.changed.is_empty());
    assert!(t.get(d).unwrap().listing_complete());
    assert!(t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
    let [i1, i2, i3, i4] = ["1", "2", "3", "4"].map(|id| t.by_box_id(id).unwrap());
    let m = t
        .insert_or_update_from_item(other, &file("5", "moved-in", 1))
        .unwrap();

    // The same listing again: nothing changed.
    assert!(t.replace_listing(d, &first).unwrap().is_empty());

    let second = vec![
        file("1", "keep", 1),
        file("2", "renamed", 2),
        file("4", "change-me", 2),
        file("5", "moved-in", 2),
        file("6", "new", 1),
        Item {
            kind: "web_link".into(),
            id: "7".into(),
            name: "link".into(),
            ..Default::default()
        },
    ];
    let diff = t.replace_listing(d, &second).unwrap();
    assert_eq!(
        diff.added,
        vec![t.by_box_id("6").unwrap(), t.by_box_id("7").unwrap()]
    );
    assert_eq!(t.get(t.by_box_id("7").unwrap()).unwrap().name(), "link.url");
    assert_eq!(
        diff.removed,
        vec![Detached {
            ino: i3,
            parent: d,
            name: "delete-me".into()
        }]
    );
    assert_eq!(diff.changed, vec![i4]);
    assert_eq!(
        diff.moved,
        vec![
            Moved {
                ino: i2,
                old_parent: Some(d),
                old_name: "rename-me".into(),
                new_name: "renamed".into()
            },
            Moved {
                ino: m,
                old_parent: Some(other),
                old_name: "moved-in".into(),
                new_name: "moved-in".into()
            },
        ]
    );
    assert_eq!(t.get(i1).unwrap().parent(), Some(d));
    assert!(t.get(i3).is_none(), "unreferenced and detached: dropped");
    assert!(t.children(other).is_empty());
    assert_eq!(t.children(d).len(), 6, "the web link among them");
    check_invariants(&t);
}

#[test]
fn replace_listing_with_swapped_names_keeps_both_inodes() {
    let mut t = InodeTable::default();
    t.replace_listing(ROOT_INO, &[file("1", "a", 1), file("2", "b", 1)])
        .unwrap();
    let [i1, i2] = ["1", "2"].map(|id| t.by_box_id(id).unwrap());
    let diff = t
        .replace_listing(ROOT_INO, &[file("1", "b", 2), file("2", "a", 2)])
        .unwrap();
    assert!(diff.added.is_empty());
    assert_eq!(diff.moved.len(), 2);
    assert_eq!(t.lookup_child(ROOT_INO, "b"), Some(i1));
    assert_eq!(t.lookup_child(ROOT_INO, "a"), Some(i2));
    assert_eq!(t.len(), 3);
    check_invariants(&t);
}

#[test]
fn replace_listing_keeps_referenced_removed_children_alive() {
    let mut t = InodeTable::default();
    t.replace_listing(ROOT_INO, &[file("1", "a", 1)]).unwrap();
    let a = t.by_box_id("1").unwrap();
    t.add_lookup(a);
    let diff = t.replace_listing(ROOT_INO, &[]).unwrap();
    assert_eq!(diff.removed.len(), 1);
    assert_eq!(t.get(a).unwrap().parent(), None);
    assert_eq!(t.lookup_child(ROOT_INO, "a"), None);
    // Restored from the trash: the same inode comes back.
    let diff = t.replace_listing(ROOT_INO, &[file("1", "a", 2)]).unwrap();
    assert_eq!(diff.moved.len(), 1);
    assert_eq!(diff.moved[0].old_parent, None);
    assert_eq!(t.lookup_child(ROOT_INO, "a"), Some(a));
    check_invariants(&t);
}

#[test]
fn lookup_counts_and_forget() {
    let mut t = InodeTable::default();
    let f = t
        .insert_or_update_from_item(ROOT_INO, &file("f", "f", 1))
        .unwrap();
    assert!(t.add_lookup(f));
    assert!(t.add_lookup(f));
    assert!(t.add_lookup(f));
    // In the tree: not dropped even at zero.
    assert!(!t.forget(f, 3));
    assert_eq!(t.get(f).unwrap().lookups(), 0);
    // Over-forgetting saturates instead of panicking.
    assert!(!t.forget(f, 10));
    assert_eq!(t.get(f).unwrap().lookups(), 0);

    // Detached but referenced: alive until the last forget.
    t.add_lookup(f);
    t.add_lookup(f);
    t.remove(f).unwrap();
    assert!(t.get(f).is_some());
    assert_eq!(t.by_box_id("f"), Some(f));
    assert!(!t.forget(f, 1));
    assert!(t.get(f).is_some());
    assert!(t.forget(f, 1));
    assert!(t.get(f).is_none());
    assert_eq!(t.by_box_id("f"), None);
    // Forgetting an unknown inode is harmless.
    assert!(!t.forget(f, 1));
    assert!(!t.add_lookup(f));

    // Detached and unreferenced: dropped at once.
    let g = t
        .insert_or_update_from_item(ROOT_INO, &file("g", "g", 1))
        .unwrap();
    t.remove(g).unwrap();
    assert!(t.get(g).is_none());
    check_invariants(&t);
}

#[test]
fn dropping_a_directory_drops_its_unreferenced_children() {
    let mut t = InodeTable::default();
    let d = t
        .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
        .unwrap();
    let e = t
        .insert_or_update_from_item(d, &folder("e", "e", 1))
        .unwrap();
    let f = t.insert_or_update_from_item(e, &file("f", "f", 1)).unwrap();
    let g = t.insert_or_update_from_item(d, &file("g", "g", 1)).unwrap();
    t.add_lookup(d);
    t.add_lookup(g);
    t.remove(d).unwrap();
    // d is referenced: it and its subtree stay.
    assert!(t.get(e).is_some() && t.get(f).is_some());
    check_invariants(&t);
    t.forget(d, 1);
    assert!(t.get(d).is_none() && t.get(e).is_none() && t.get(f).is_none());
    // g is still referenced by the kernel: detached but alive.
    assert_eq!(t.get(g).unwrap().parent(), None);
    check_invariants(&t);
    t.forget(g, 1);
    assert_eq!(t.len(), 1);
    check_invariants(&t);
}

/// A file that becomes a new version of another (an editor's save) takes the other's
/// id; Box's answers about that item apply whatever `sequence_id` the inode had.
#[test]
fn a_rekeyed_inode_takes_the_new_items_answers() {
    let mut t = InodeTable::default();
    let tmp = t
        .insert_or_update_from_item(ROOT_INO, &file("tmp", "tmp", 9))
        .unwrap();
    let target = t
        .insert_or_update_from_item(ROOT_INO, &file("doc", "doc", 2))
        .unwrap();
    t.remove(target).unwrap();
    t.rekey(tmp, "doc").unwrap();
    assert_eq!(t.get(tmp).unwrap().attrs().sequence_id, None);
    assert_eq!(t.get(tmp).unwrap().attrs().version, None);
    let mut uploaded = file("doc", "doc", 3);
    uploaded.size = Some(77);
    assert_eq!(
        t.insert_or_update_from_item(ROOT_INO, &uploaded).unwrap(),
        tmp
    );
    assert_eq!(t.get(tmp).unwrap().attrs().size, 77);
    assert_eq!(t.get(tmp).unwrap().attrs().sequence_id, Some(3));
    // The temporary file left the tree: its upload's late event does not bring it back
    // (git's `config.lock`, made again under that name, would otherwise be shadowed).
    assert_eq!(
        t.insert_or_update_from_item(ROOT_INO, &file("tmp", "tmp", 9)),
        Err(InodeError::RemovedSince("tmp".into()))
    );
    assert_eq!(t.by_box_id("tmp"), None);
    // Word of a later change (a restore) still counts.
    assert!(t
        .insert_or_update_from_item(ROOT_INO, &file("tmp", "tmp", 10))
        .is_ok());
}

#[test]
fn out_of_order_sequence_id_is_ignored() {
    let mut t = InodeTable::default();
    let d = t
        .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
        .unwrap();
    let f = t
        .insert_or_update_from_item(ROOT_INO, &file("f", "new-name", 5))
        .unwrap();
    let mut old = file("f", "old-name", 4);
    old.size = Some(999);
    assert_eq!(t.insert_or_update_from_item(d, &old).unwrap(), f);
    let inode = t.get(f).unwrap();
    assert_eq!(inode.name(), "new-name");
    assert_eq!(inode.parent(), Some(ROOT_INO));
    assert_eq!(inode.attrs().size, 10);
    assert_eq!(inode.attrs().sequence_id, Some(5));
    // A stale listing neither moves it in nor adds it.
    let diff = t.replace_listing(d, &[old.clone()]).unwrap();
    assert!(diff.is_empty());
    assert!(t.children(d).is_empty());
    // Equal or higher sequence ids apply.
    let mut newer = file("f", "newest", 6);
    newer.size = Some(20);
    t.insert_or_update_from_item(ROOT_INO, &newer).unwrap();
    assert_eq!(t.get(f).unwrap().name(), "newest");
    assert_eq!(t.get(f).unwrap().attrs().size, 20);
    check_invariants(&t);
}

#[test]
fn rename_over_an_existing_target_detaches_it() {
    let mut t = InodeTable::default();
    let a = t
        .insert_or_update_from_item(ROOT_INO, &file("a", "a.txt", 1))
        .unwrap();
    let b = t
        .insert_or_update_from_item(ROOT_INO, &file("b", "b.txt", 1))
        .unwrap();
    t.add_lookup(b);
    let replaced = t.rename(a, ROOT_INO, "B.TXT").unwrap();
    assert_eq!(
        replaced,
        Some(Detached {
            ino: b,
            parent: ROOT_INO,
            name: "b.txt".into()
        })
    );
    assert_eq!(t.lookup_child(ROOT_INO, "b.txt"), Some(a));
    assert_eq!(t.lookup_child(ROOT_INO, "a.txt"), None);
    assert_eq!(t.get(b).unwrap().parent(), None, "kept while referenced");
    t.forget(b, 1);
    assert!(t.get(b).is_none());

    // Box reporting a new item under a name we hold replaces the old inode too.
    let c = t
        .insert_or_update_from_item(ROOT_INO, &file("c", "b.txt", 1))
        .unwrap();
    assert!(t.get(a).is_none(), "unreferenced, replaced: dropped");
    assert_eq!(t.lookup_child(ROOT_INO, "B.txt"), Some(c));
    check_invariants(&t);
}

#[test]
fn root_is_never_dropped() {
    let mut t = InodeTable::new("42");
    t.add_lookup(ROOT_INO);
    assert!(!t.forget(ROOT_INO, 5));
    assert!(!t.forget(ROOT_INO, u64::MAX));
    assert_eq!(t.remove(ROOT_INO), Err(InodeError::Root));
    assert!(t.get(ROOT_INO).is_some());
    // The root's own item updates attributes only.
    let mut root = folder("42", "Some Name", 3);
    root.size = Some(1234);
    assert_eq!(
        t.insert_or_update_from_item(ROOT_INO, &root).unwrap(),
        ROOT_INO
    );
    let r = t.get(ROOT_INO).unwrap();
    assert_eq!(r.parent(), None);
    assert_eq!(r.name(), "");
    assert_eq!(r.attrs().size, 1234);
    // Nor does a listing that mentions the root.
    t.replace_listing(ROOT_INO, &[]).unwrap();
    assert!(t.get(ROOT_INO).is_some());
    check_invariants(&t);
}

#[test]
fn errors_for_unknown_or_non_directory_parents() {
    let mut t = InodeTable::default();
    let f = t
        .insert_or_update_from_item(ROOT_INO, &file("f", "f", 1))
        .unwrap();
    assert_eq!(
        t.insert_or_update_from_item(f, &file("g", "g", 1)),
        Err(InodeError::NotADirectory(f))
    );
    assert_eq!(
        t.insert_or_update_from_item(99, &file("g", "g", 1)),
        Err(InodeError::NoSuchInode(99))
    );
    assert_eq!(t.replace_listing(f, &[]), Err(InodeError::NotADirectory(f)));
    assert_eq!(t.remove(99), Err(InodeError::NoSuchInode(99)));
    assert_eq!(
        t.insert_or_update_from_item(ROOT_INO, &file("g", "", 1)),
        Err(InodeError::EmptyName)
    );
    check_invariants(&t);
}

#[test]
fn names_linux_cannot_show_are_left_out_and_the_rest_lists() {
    let mut t = InodeTable::default();
    let long = "x".repeat(NAME_MAX_CHARS + 1);
    // 255 characters of two bytes: longer than ext4 allows, a name Box takes.
    let longest = "é".repeat(NAME_MAX_CHARS);
    let items = vec![
        file("1", "a/b", 1),
        file("2", "nul\0name", 1),
        file("3", ".", 1),
        file("4", "..", 1),
        file("5", &long, 1),
        file("6", "fine", 1),
        file("7", &longest, 1),
        file("8", "...", 1),
    ];
    let diff = t.replace_listing(ROOT_INO, &items).unwrap();
    assert_eq!(diff.added.len(), 3);
    let mut names: Vec<String> = t
        .children(ROOT_INO)
        .into_iter()
        .map(|ino| t.get(ino).unwrap().name().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["...".to_string(), "fine".into(), longest.clone()]
    );
    assert!(t.lookup_child(ROOT_INO, ".").is_none());
    // A listed file renamed on Box to an unusable name leaves the folder.
    let diff = t
        .replace_listing(ROOT_INO, &[file("6", "x/y", 2), file("7", &longest, 1)])
        .unwrap();
    assert_eq!(diff.removed.len() + diff.moved.len(), 2, "{diff:?}");
    assert!(t.lookup_child(ROOT_INO, "fine").is_none());
    assert!(t.lookup_child(ROOT_INO, "x/y").is_none());
    assert_eq!(
        t.insert_or_update_from_item(ROOT_INO, &file("9", "..", 1)),
        Err(InodeError::UnusableName("..".into()))
    );
    check_invariants(&t);
}

#[test]
fn hundred_thousand_inodes_fit_in_memory() {
    let mut t = InodeTable::default();
    let mut dirs = Vec::new();
    for d in 0..100 {
        let it = folder(&format!("9{d:010}"), &format!("Folder {d}"), 1);
        dirs.push(t.insert_or_update_from_item(ROOT_INO, &it).unwrap());
    }
    let mut n = 0;
    for (d, &dir) in dirs.iter().enumerate() {
        let items: Vec<Item> = (0..1000)
            .map(|i| {
                n += 1;
                let mut it = file(&format!("1{n:011}"), &format!("Document {d}-{i}.pdf"), 3);
                it.sha1 = Some("da39a3ee5e6b4b0d3255bfef95601890afd80709".into());
                it.file_version = Some(box_client::types::FileVersion {
                    id: format!("2{n:011}"),
                    ..Default::default()
                });
                it
            })
            .collect();
        t.replace_listing(dir, &items).unwrap();
    }
    assert_eq!(t.len(), 100_101);
    let bytes = t.approx_heap_bytes();
    println!(
        "100,101 inodes: ~{:.1} MiB heap (~{} bytes/inode; size_of::<Inode>() = {})",
        bytes as f64 / (1024.0 * 1024.0),
        bytes / t.len(),
        std::mem::size_of::<Inode>()
    );
    assert!(bytes < 150 * 1024 * 1024, "{bytes} bytes");
    assert!(t.lookup_child(dirs[7], "document 7-123.PDF").is_some());
}

#[test]
fn eviction_follows_lru_order() {
    let mut t = InodeTable::with_limit("0", 4);
    assert_eq!(t.limit(), 4);
    t.replace_listing(ROOT_INO, &files("f", 3)).unwrap();
    let [f0, f1, f2] = ["f0", "f1", "f2"].map(|id| t.by_box_id(id).unwrap());
    assert!(t.get(ROOT_INO).unwrap().listing_complete());
    assert!(t.take_evicted_parents().is_empty());

    // A lookup hit on f0 makes f1 the least recently used.
    t.touch(f0);
    let n = add(&mut t, ROOT_INO, &file("n", "n", 1));
    assert!(t.get(f1).is_none() && gone(&t, "f1"));
    assert_eq!(t.lookup_child(ROOT_INO, "f1"), None);
    assert_eq!(t.len(), 4);
    assert_eq!(t.evictions(), 1);
    // The partial index must not answer ENOENT any more.
    assert!(!t.get(ROOT_INO).unwrap().listing_complete());
    assert!(!t.listing_fresh(ROOT_INO, Duration::from_secs(60), Instant::now()));
    assert_eq!(t.take_evicted_parents(), vec![ROOT_INO]);
    assert!(t.take_evicted_parents().is_empty());
    check_invariants(&t);

    // An update from Box touches too: f2 becomes recent, f0 goes next.
    add(&mut t, ROOT_INO, &file("f2", "f2", 2));
    add(&mut t, ROOT_INO, &file("m", "m", 1));
    assert!(t.get(f0).is_none());
    assert!(t.get(f2).is_some() && t.get(n).is_some());
    check_invariants(&t);

    // Shrinking the bound evicts at once, oldest first.
    t.set_limit(2);
    assert!(t.get(f2).is_none() && t.get(n).is_none());
    assert_eq!(t.lookup_child(ROOT_INO, "m"), t.by_box_id("m"));
    assert_eq!(t.len(), 2);
    assert_eq!(t.evictions(), 4);
    check_invariants(&t);
}

#[test]
fn referenced_inodes_are_never_evicted() {
    let mut t = InodeTable::with_limit("0", 2);
    let held: Vec<Ino> = files("r", 10)
        .iter()
        .map(|it| {
            let ino = add(&mut t, ROOT_INO, it);
            assert!(t.add_lookup(ino));
            ino
        })
        .collect();
    // Over the limit, but the kernel holds them all.
    assert_eq!(t.len(), 11);
    check_invariants(&t);
    // An insert never evicts the inode it returns...
    let a = add(&mut t, ROOT_INO, &file("a", "a", 1));
    assert!(t.get(a).is_some());
    check_invariants(&t);
    // ...but the next one does, and the referenced ones stay.
    let b = add(&mut t, ROOT_INO, &file("b", "b", 1));
    assert!(t.get(a).is_none() && t.get(b).is_some());
    for &ino in &held {
        assert_eq!(t.get(ino).unwrap().lookups(), 1);
    }
    // Referenced and detached (trashed elsewhere): still kept.
    t.remove(held[0]).unwrap();
    t.set_limit(0);
    assert!(held.iter().all(|&i| t.get(i).is_some()));
    assert!(t.get(b).is_none());
    assert!(t.get(ROOT_INO).is_some(), "the root is never evicted");
    check_invariants(&t);
}

#[test]
fn forget_to_zero_makes_an_inode_evictable() {
    let mut t = InodeTable::with_limit("0", 4);
    let [a, b, c] = ["a", "b", "c"].map(|id| {
        let ino = add(&mut t, ROOT_INO, &file(id, id, 1));
        t.add_lookup(ino);
        ino
    });
    let d = add(&mut t, ROOT_INO, &file("d", "d", 1));
    assert_eq!(t.len(), 5, "d is kept while nothing else can go");
    check_invariants(&t);
    // b joins the candidates as the most recent one: d, older, goes first.
    assert!(!t.forget(b, 1));
    assert!(t.get(d).is_none() && t.get(b).is_some());
    check_invariants(&t);
    let e = add(&mut t, ROOT_INO, &file("e", "e", 1));
    assert!(t.get(b).is_none() && t.get(e).is_some());
    check_invariants(&t);
    // At the limit: forgetting keeps it cached, in LRU order after e.
    assert!(!t.forget(a, 1));
    assert_eq!(t.len(), 4);
    t.set_limit(3);
    assert!(t.get(e).is_none() && t.get(a).is_some());
    let f = add(&mut t, ROOT_INO, &file("f", "f", 1));
    t.add_lookup(f);
    assert!(t.get(a).is_none());
    // Over the limit (the kernel holds c and f): the last forget evicts at once.
    t.set_limit(2);
    assert_eq!(t.len(), 3);
    check_invariants(&t);
    assert!(t.forget(c, 1));
    assert!(t.get(c).is_none());
    check_invariants(&t);
}

#[test]
fn directory_is_evicted_with_its_cached_subtree() {
    let mut t = InodeTable::with_limit("0", 100);
    let d = add(&mut t, ROOT_INO, &folder("d", "d", 1));
    let x = add(&mut t, d, &file("x", "x", 1));
    let e = add(&mut t, d, &folder("e", "e", 1));
    let y = add(&mut t, e, &file("y", "y", 1));
    let f = add(&mut t, ROOT_INO, &file("f", "f", 1));
    t.set_limit(2);
    for ino in [d, x, e, y] {
        assert!(t.get(ino).is_none(), "{ino} evicted");
    }
    assert!(t.get(f).is_some());
    assert_eq!(t.evictions(), 4);
    // Dropped directories are not reported, their surviving parent is.
    assert_eq!(t.take_evicted_parents(), vec![ROOT_INO]);
    check_invariants(&t);
}

#[test]
fn directory_waits_for_its_more_recent_children() {
    let mut t = InodeTable::with_limit("0", 100);
    let d = add(&mut t, ROOT_INO, &folder("d", "d", 1));
    let z = add(&mut t, ROOT_INO, &file("z", "z", 1));
    let x = add(&mut t, d, &file("x", "x", 1));
    // Oldest is d, but x (touched after z) keeps it: z goes instead.
    t.set_limit(3);
    assert!(t.get(z).is_none());
    assert!(t.get(d).is_some() && t.get(x).is_some());
    check_invariants(&t);
    // Once x goes, d (overdue) is next in line.
    let w = add(&mut t, ROOT_INO, &file("w", "w", 1));
    assert!(t.get(x).is_none() && t.get(d).is_some());
    t.set_limit(2);
    assert!(t.get(d).is_none() && t.get(w).is_some());
    check_invariants(&t);

    // A referenced descendant keeps its ancestors until it is forgotten.
    t.set_limit(100);
    let d = add(&mut t, ROOT_INO, &folder("d", "d", 2));
    let e = add(&mut t, d, &folder("e", "e", 1));
    let y = add(&mut t, e, &file("y", "y", 1));
    t.add_lookup(y);
    t.set_limit(1);
    assert!(t.get(d).is_some() && t.get(e).is_some() && t.get(y).is_some());
    assert!(t.get(w).is_none());
    check_invariants(&t);
    assert!(t.forget(y, 1));
    assert!(t.get(e).is_none() && t.get(d).is_none());
    assert_eq!(t.len(), 1);
    check_invariants(&t);
}

#[test]
fn eviction_marks_the_parent_listing_incomplete() {
    let mut t = InodeTable::with_limit("0", 5);
    let d = add(&mut t, ROOT_INO, &folder("d", "d", 1));
    t.replace_listing(d, &files("a", 2)).unwrap();
    assert!(t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
    t.add_lookup(d);
    add(&mut t, ROOT_INO, &file("o1", "o1", 1));
    assert!(t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
    add(&mut t, ROOT_INO, &file("o2", "o2", 1));
    assert!(gone(&t, "a0") && !gone(&t, "a1"));
    let dir = t.get(d).unwrap();
    assert!(!dir.listing_complete());
    assert!(!t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
    assert_eq!(t.take_evicted_parents(), vec![d]);
    // The next listing from Box makes it whole again.
    t.replace_listing(d, &files("a", 2)).unwrap();
    assert!(t.get(d).unwrap().listing_complete());
    check_invariants(&t);
}

#[test]
fn listing_larger_than_the_limit_is_kept_whole_until_the_next_eviction() {
    let mut t = InodeTable::with_limit("0", 10);
    add(&mut t, ROOT_INO, &file("old1", "old1", 1));
    add(&mut t, ROOT_INO, &file("old2", "old2", 1));
    let d = add(&mut t, ROOT_INO, &folder("d", "d", 1));
    let diff = t.replace_listing(d, &files("f", 50)).unwrap();
    assert_eq!(diff.added.len(), 50);
    assert!(
        gone(&t, "old1") && gone(&t, "old2"),
        "older entries go first"
    );
    // Root, d and all fifty entries: a lookup right after the listing finds any name.
    assert_eq!(t.len(), 52);
    assert!(t.lookup_child(d, "f0").is_some());
    assert!(t.get(d).unwrap().listing_complete());
    check_invariants(&t);

    // The next call that evicts takes the listing's first entries, never the directory.
    add(&mut t, ROOT_INO, &file("new", "new", 1));
    assert_eq!(t.len(), 10);
    assert_eq!(t.lookup_child(d, "f0"), None);
    assert!(t.lookup_child(d, "f49").is_some());
    assert!(!t.get(d).unwrap().listing_complete());
    let mut parents = t.take_evicted_parents();
    parents.sort();
    assert_eq!(parents, vec![ROOT_INO, d]);
    check_invariants(&t);

    // Even with no room at all the listing is stored and the directory kept.
    t.set_limit(1);
    assert!(t.get(d).is_none());
    let d = add(&mut t, ROOT_INO, &folder("d", "d", 2));
    assert_eq!(t.replace_listing(d, &files("g", 5)).unwrap().added.len(), 5);
    assert!(t.get(d).is_some_and(|i| i.listing_complete()));
    assert!(t.lookup_child(d, "g4").is_some());
    check_invariants(&t);
}

/// The kernel references more inodes than the bound: a new folder's listing must still
/// answer a lookup in it (it used to be evicted as the only candidate at once).
#[test]
fn a_listing_made_while_the_kernel_holds_the_whole_bound_stays_for_its_lookup() {
    let mut t = InodeTable::with_limit("0", 5);
    let a = add(&mut t, ROOT_INO, &folder("a", "a", 1));
    t.add_lookup(a);
    for ino in t.replace_listing(a, &files("f", 10)).unwrap().added {
        t.add_lookup(ino);
    }
    let b = add(&mut t, ROOT_INO, &folder("b", "b", 1));
    assert!(t.get(b).is_some(), "kept by the call that inserted it");
    t.replace_listing(ROOT_INO, &[folder("a", "a", 1), folder("b", "b", 1)])
        .unwrap();
    assert_eq!(t.lookup_child(ROOT_INO, "b"), Some(b));
    assert!(t.get(ROOT_INO).unwrap().listing_complete());
    check_invariants(&t);
}

#[test]
fn bounded_table_stays_within_its_limit() {
    let mut t = InodeTable::with_limit("0", 10_000);
    let mut dirs = Vec::new();
    for d in 0..30 {
        // The kernel holds a directory while it lists it, then lets go.
        let dir = add(
            &mut t,
            ROOT_INO,
            &folder(&format!("d{d}"), &format!("D{d}"), 1),
        );
        t.add_lookup(dir);
        t.replace_listing(dir, &files(&format!("{d}-"), 1000))
            .unwrap();
        t.forget(dir, 1);
        assert!(t.len() <= 10_000);
        dirs.push(dir);
    }
    assert!(t.get(dirs[0]).is_none(), "emptied directories go too");
    assert!(t.get(dirs[29]).is_some_and(|i| i.listing_complete()));
    assert!(t.approx_heap_bytes() < 10 * 1024 * 1024);
    check_invariants(&t);
}

#[test]
fn invariants_hold_under_random_operations() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut t = InodeTable::with_limit("0", rng.gen_range(1..30));
        // What the kernel holds, as the kernel sees it.
        let mut kernel: HashMap<Ino, u64> = HashMap::new();
        let random_item = |rng: &mut StdRng| {
            let n = rng.gen_range(0..60);
            let name = ["a", "B", "c", "D", "e", "F", "g"][rng.gen_range(0..7)];
            let seq = rng.gen_range(1..30);
            if n < 15 {
                folder(&format!("d{n}"), name, seq)
            } else {
                file(&format!("f{n}"), name, seq)
            }
        };
        for _ in 0..1500 {
            let mut inos: Vec<Ino> = t.inodes.keys().copied().collect();
            inos.sort_unstable();
            let dirs: Vec<Ino> = inos
                .iter()
                .copied()
                .filter(|&i| t.inodes[&i].is_dir())
                .collect();
            let any = inos[rng.gen_range(0..inos.len())];
            let dir = dirs[rng.gen_range(0..dirs.len())];
            match rng.gen_range(0..10) {
                0 | 1 => {
                    let _ = t.insert_or_update_from_item(dir, &random_item(&mut rng));
                }
                2 => {
                    let items: Vec<Item> = (0..rng.gen_range(0..8))
                        .map(|_| random_item(&mut rng))
                        .collect();
                    t.replace_listing(dir, &items).unwrap();
                }
                3 => {
                    if t.add_lookup(any) {
                        *kernel.entry(any).or_default() += 1;
                    }
                }
                4 => {
                    let held: Vec<Ino> = {
                        let mut h: Vec<Ino> = kernel.keys().copied().collect();
                        h.sort_unstable();
                        h
                    };
                    if !held.is_empty() {
                        let ino = held[rng.gen_range(0..held.len())];
                        let n = rng.gen_range(1..=kernel[&ino]);
                        t.forget(ino, n);
                        *kernel.get_mut(&ino).unwrap() -= n;
                        kernel.retain(|_, n| *n > 0);
                    }
                }
                5 => {
                    let _ = t.remove(any);
                }
                6 => {
                    let name = ["a", "b", "C", "x"][rng.gen_range(0..4)];
                    let _ = t.rename(any, dir, name);
                }
                7 => t.touch(any),
                8 => t.set_limit(rng.gen_range(1..30)),
                _ => {
                    for p in t.take_evicted_parents() {
                        assert!(t.get(p).is_some());
                    }
                }
            }
            check_invariants(&t);
            for (&ino, &n) in &kernel {
                let inode = t.get(ino);
                assert!(inode.is_some(), "seed {seed}: referenced {ino} was dropped");
                assert_eq!(inode.unwrap().lookups(), n);
            }
        }
    }
}

#[test]
fn table_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<InodeTable>();
}

#[test]
fn local_files_survive_listings_and_name_clashes_then_rekey() {
    let mut t = InodeTable::new("0");
    let now = SystemTime::now();
    let dir = t
        .insert_or_update_from_item(ROOT_INO, &folder("10", "d", 1))
        .unwrap();
    let local = t.insert_local_file(dir, "new.txt", now).unwrap();
    assert!(t.get(local).unwrap().is_local());
    assert!(t.get(local).unwrap().is_pinned());
    check_invariants(&t);

    // A listing without it leaves it in place; a Box item with its name stays out.
    let diff = t.replace_listing(dir, &[file("11", "other", 1)]).unwrap();
    assert!(diff.removed.is_empty());
    assert_eq!(t.lookup_child(dir, "new.txt"), Some(local));
    t.insert_or_update_from_item(dir, &file("12", "NEW.txt", 1))
        .ok();
    assert_eq!(t.lookup_child(dir, "new.txt"), Some(local));
    assert!(t.by_box_id("12").is_none());
    check_invariants(&t);

    // Uploaded: the same inode under its Box id, attributes from Box once unpinned.
    t.set_local_attrs(local, 42, now, now);
    t.rekey(local, "13").unwrap();
    assert_eq!(t.by_box_id("13"), Some(local));
    let up = file("13", "new.txt", 3);
    t.insert_or_update_from_item(dir, &up).unwrap();
    assert_eq!(t.get(local).unwrap().attrs().size, 42, "pinned size kept");
    t.set_pinned(local, false);
    t.insert_or_update_from_item(dir, &up).unwrap();
    assert_eq!(t.get(local).unwrap().attrs().size, 10);
    check_invariants(&t);

    // Now an ordinary Box file: a listing without it detaches it.
    t.replace_listing(dir, &[]).unwrap();
    assert!(t.get(local).is_none());
    check_invariants(&t);
}

#[test]
fn rekey_onto_an_existing_id_replaces_that_inode() {
    let mut t = InodeTable::new("0");
    let target = t
        .insert_or_update_from_item(ROOT_INO, &file("20", "doc", 1))
        .unwrap();
    t.add_lookup(target);
    let tmp = t
        .insert_local_file(ROOT_INO, ".doc.swp", SystemTime::now())
        .unwrap();
    t.rekey(tmp, "20").unwrap();
    t.rename(tmp, ROOT_INO, "doc").unwrap();
    assert_eq!(t.by_box_id("20"), Some(tmp));
    assert_eq!(t.lookup_child(ROOT_INO, "doc"), Some(tmp));
    let old = t.get(target).expect("still referenced by the kernel");
    assert!(old.parent().is_none());
    assert_ne!(old.box_id(), "20");
    check_invariants(&t);
    t.forget(target, 1);
    assert!(t.get(target).is_none());
    check_invariants(&t);
}

#[test]
fn pinned_inodes_are_not_evicted() {
    let mut t = InodeTable::with_limit("0", 3);
    let a = t
        .insert_or_update_from_item(ROOT_INO, &file("1", "a", 1))
        .unwrap();
    t.set_pinned(a, true);
    for i in 2..10 {
        t.insert_or_update_from_item(ROOT_INO, &file(&i.to_string(), &format!("f{i}"), 1))
            .unwrap();
    }
    assert!(t.get(a).is_some());
    check_invariants(&t);
    t.set_pinned(a, false);
    for i in 10..14 {
        t.insert_or_update_from_item(ROOT_INO, &file(&i.to_string(), &format!("f{i}"), 1))
            .unwrap();
    }
    assert!(t.get(a).is_none());
    check_invariants(&t);
}

fn web_link(id: &str, name: &str, url: &str, seq: u64) -> Item {
    Item {
        kind: "web_link".into(),
        url: Some(url.into()),
        ..item("web_link", id, name, seq)
    }
}

#[test]
fn a_web_link_is_a_shortcut_file_of_its_own_inode_kind() {
    let mut t = InodeTable::new("0");
    let l = add(
        &mut t,
        ROOT_INO,
        &web_link("9", "Manual", "https://e.com/", 1),
    );
    let inode = t.get(l).unwrap();
    assert_eq!(inode.kind(), Kind::Link);
    assert_eq!(inode.name(), "Manual.url");
    assert_eq!(inode.attrs().target(), Some("https://e.com/"));
    assert_eq!(
        inode.attrs().size,
        crate::fs::tree::shortcut::shortcut_len("https://e.com/")
    );
    assert_eq!(Some(l), derived_ino("9", Kind::Link));
    assert_ne!(derived_ino("9", Kind::Link), derived_ino("9", Kind::File));
    check_invariants(&t);
}

#[test]
fn a_file_keeps_the_name_a_web_link_would_show_with() {
    let mut t = InodeTable::new("0");
    let d = add(&mut t, ROOT_INO, &folder("1", "d", 1));
    // In one listing, whichever comes first: the file shows, the listing is complete.
    for listing in [
        vec![
            file("2", "Clash.url", 1),
            web_link("3", "Clash", "https://e.com/", 1),
        ],
        vec![
            web_link("3", "Clash", "https://e.com/", 1),
            file("2", "Clash.url", 1),
        ],
    ] {
        t.replace_listing(d, &listing).unwrap();
        let holder = t.lookup_child(d, "clash.url").unwrap();
        assert_eq!(t.get(holder).unwrap().kind(), Kind::File, "{listing:?}");
        assert_eq!(t.children(d).len(), 1);
        assert!(t.get(d).unwrap().listing_complete(), "{listing:?}");
        check_invariants(&t);
    }
    // An event of the link does not take the name either.
    let err = t
        .insert_or_update_from_item(d, &web_link("3", "Clash", "https://e.com/x", 2))
        .unwrap_err();
    assert_eq!(err, InodeError::NameTaken("Clash.url".into()));
    // Another web link holding the name is replaced, as a file would be.
    add(&mut t, d, &web_link("4", "Other", "https://e.com/", 1));
    add(&mut t, d, &web_link("5", "Other.url", "https://e.com/", 1));
    let holder = t.lookup_child(d, "other.url").unwrap();
    assert_eq!(t.get(holder).unwrap().box_id(), "5");
    check_invariants(&t);
}

#[test]
fn an_mtime_set_here_outlives_box_answers_about_the_same_content() {
    let mut t = InodeTable::with_limit("0", 16);
    let f = add(&mut t, ROOT_INO, &file("5", "a.txt", 1));
    let set = std::time::UNIX_EPOCH + Duration::from_secs(1_970_000_000);
    t.set_mtime(f, set);
    // Box's echo of a change that left the content as it was: a rename, a metadata write.
    let mut renamed = file("5", "b.txt", 2);
    renamed.modified_at = Some("2024-06-01T10:00:00-07:00".into());
    add(&mut t, ROOT_INO, &renamed);
    assert_eq!(t.get(f).unwrap().attrs().mtime, Some(set));
    // Set again: still measured against Box's time of the content.
    let again = std::time::UNIX_EPOCH + Duration::from_secs(1_980_000_000);
    t.set_mtime(f, again);
    add(&mut t, ROOT_INO, &renamed);
    assert_eq!(t.get(f).unwrap().attrs().mtime, Some(again));
    // New content on Box: its time wins, and the one set here is forgotten.
    let mut changed = file("5", "b.txt", 3);
    changed.content_modified_at = Some("2024-07-01T10:00:00-07:00".into());
    add(&mut t, ROOT_INO, &changed);
    let box_time = t.get(f).unwrap().attrs().mtime;
    assert_ne!(box_time, Some(again));
    assert_eq!(t.get(f).unwrap().attrs().mtime_set_here(), None);
    check_invariants(&t);
}
