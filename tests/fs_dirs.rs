//! Open directories without the kernel, against the emulator with latency: a directory whose
//! listing must be fetched is handed out a page at a time as the pages arrive (so `ls` works
//! while the rest is on its way), ends complete and cached, and a listing that fails midway
//! fails the reader past the last entry it got. `opendir` and `getattr` answer without a
//! task whenever they need nothing from Box.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use box_client::RetryPolicy;
use box_emulator::Knobs;
use boxfs::fs::kernel::KernelQueue;
use boxfs::fs::tree::inode::{Ino, ROOT_INO, TRASH_INO};
use boxfs::fs::{BoxFs, FsOptions};
use bytes::Bytes;
use common::TestEmu;

/// Latency of every response: far longer than storing a page takes.
const LATENCY_MS: u64 = 300;
const ENTRIES: usize = 2500;

/// A folder "Big" of `ENTRIES` files, written straight into the store; returns its id.
fn seed_big_folder(emu: &TestEmu) -> u64 {
    seed_folder(emu, "Big", ENTRIES)
}

/// A folder `name` of `entries` files, written straight into the store; returns its id.
fn seed_folder(emu: &TestEmu, name: &str, entries: usize) -> u64 {
    let shared = &emu.emulator().shared;
    let mut store = shared.store();
    let admin = store.admin;
    let root = store.users[&admin].root_folder;
    let now = chrono::Utc::now();
    let item = store.new_item(
        box_emulator::store::ItemKind::Folder,
        name,
        root,
        admin,
        admin,
        now,
    );
    let big = store.insert_item(item);
    for i in 0..entries {
        store.add_file(big, &format!("file {i:04}"), admin, Bytes::new(), now);
    }
    shared.changed(&store);
    big
}

async fn filesystem(emu: &TestEmu) -> Arc<BoxFs> {
    let client = emu.client(RetryPolicy::default());
    let fs = Arc::new(BoxFs::new(
        Arc::new(client),
        FsOptions {
            prefetch_per_folder: 0,
            ..FsOptions::default()
        },
        None,
        KernelQueue::discard(),
    ));
    fs.init().await.expect("init");
    fs
}

/// The emulator with "Big", a filesystem that looked it up (its inode, its Box id), and the
/// latency turned on from then on.
async fn slow_big_folder() -> (TestEmu, Arc<BoxFs>, Ino, u64) {
    let emu = TestEmu::start().await;
    let big_id = seed_big_folder(&emu);
    let fs = filesystem(&emu).await;
    let big = fs
        .lookup(ROOT_INO, OsStr::new("Big"))
        .await
        .expect("lookup")
        .ino;
    emu.emulator().set_knobs(Knobs {
        latency_ms: LATENCY_MS,
        ..Knobs::default()
    });
    (emu, fs, big, big_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_directory_hands_out_pages_before_the_listing_ends() {
    let (_emu, fs, big, _) = slow_big_folder().await;

    let opened = fs.opendir(big).await.expect("opendir");
    assert!(
        !opened.keep_cache,
        "a listing being fetched cannot keep the kernel's"
    );
    let handle = fs.dir_handle(opened.fh).expect("handle");
    // The first page is there while two more are still to come (each 300 ms away).
    let first = handle.view_answering(0).await;
    assert!(first.get(0).is_some());
    assert!(first.get(999).is_some(), "a whole page at once");
    assert!(
        first.done.is_none(),
        "the listing ended with its first page"
    );
    assert!(!first.can_answer(1000));

    let all = handle.view_answering(ENTRIES).await;
    assert!(matches!(all.done, Some(Ok(()))), "{:?}", all.done);
    let names: HashSet<String> = (0..ENTRIES)
        .map(|i| all.get(i).expect("entry").name.to_string())
        .collect();
    assert_eq!(names.len(), ENTRIES, "every entry once");
    assert!(all.get(ENTRIES).is_none());
    assert!(names.contains("file 2499"));
    fs.releasedir(opened.fh);

    // Complete and cached now: a lookup and a second open cost no listing.
    let pages = fs.counters.listing_pages.load(Ordering::Relaxed);
    fs.lookup(big, OsStr::new("file 1234"))
        .await
        .expect("lookup");
    let again = fs.opendir(big).await.expect("opendir");
    let view = fs.dir_view(again.fh).expect("view");
    assert!(matches!(view.done, Some(Ok(()))), "whole at once");
    assert!(view.get(ENTRIES - 1).is_some());
    assert_eq!(fs.counters.listing_pages.load(Ordering::Relaxed), pages);
    fs.releasedir(again.fh);
    // Every pin was released: nothing is referenced from the open directories any more.
    let table = fs.table().lock().expect("table");
    let lookups = |name: &str| {
        let child = table.lookup_child(big, name).expect("child");
        table.get(child).expect("inode").lookups()
    };
    assert_eq!(lookups("file 0000"), 0);
    assert_eq!(lookups("file 1234"), 1, "the lookup's own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_failing_midway_fails_the_reader_past_what_it_got() {
    let (emu, fs, big, big_id) = slow_big_folder().await;

    let opened = fs.opendir(big).await.expect("opendir");
    let handle = fs.dir_handle(opened.fh).expect("handle");
    let first = handle.view_answering(0).await;
    assert!(first.done.is_none());
    // The folder goes to the trash while the second page is on its way (the emulator
    // waits out its latency before it answers).
    {
        let shared = &emu.emulator().shared;
        let mut store = shared.store();
        let admin = store.admin;
        store.trash_item(big_id, admin, chrono::Utc::now());
        shared.changed(&store);
    }
    let end = handle.view_answering(1000).await;
    assert!(end.get(999).is_some(), "the first page stays readable");
    assert!(end.get(1000).is_none());
    let err = end.done.expect("ended").expect_err("failed");
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    fs.releasedir(opened.fh);
}

/// Opens `dir` the way the FUSE adapter does: without a task when the filesystem can.
fn open_at_once(fs: &Arc<BoxFs>, dir: Ino) -> Option<boxfs::fs::Opened> {
    fs.opendir_at_once(dir)
        .map(|opened| opened.expect("opendir"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opendir_answers_at_once_unless_box_must_be_asked_first_or_the_listing_is_huge() {
    let emu = TestEmu::start().await;
    seed_folder(&emu, "Small", 3);
    seed_folder(&emu, "Huge", 5_000);
    let fs = filesystem(&emu).await;
    let small = fs.lookup(ROOT_INO, OsStr::new("Small")).await.unwrap().ino;
    let huge = fs.lookup(ROOT_INO, OsStr::new("Huge")).await.unwrap().ino;

    // A folder not listed yet: the handle comes at once and fills from a task.
    let opened = open_at_once(&fs, small).expect("a small folder opens at once");
    assert!(!opened.keep_cache, "a listing still to fetch");
    let view = fs.dir_handle(opened.fh).unwrap().view_answering(3).await;
    assert!(matches!(view.done, Some(Ok(()))), "{:?}", view.done);
    assert_eq!((0..3).filter(|&i| view.get(i).is_some()).count(), 3);
    fs.releasedir(opened.fh);
    // Listed now: whole at once, and the kernel may keep what it cached.
    let again = open_at_once(&fs, small).expect("a listed folder opens at once");
    assert!(again.keep_cache);
    let view = fs.dir_view(again.fh).unwrap();
    assert!(
        matches!(view.done, Some(Ok(()))),
        "finished before the answer"
    );
    assert!(view.get(2).is_some() && view.get(3).is_none());
    fs.releasedir(again.fh);

    // Too big to sort while the kernel waits: left to a task, listed or not.
    let opened = fs.opendir(huge).await.unwrap();
    let view = fs
        .dir_handle(opened.fh)
        .unwrap()
        .view_answering(5_000)
        .await;
    assert!(matches!(view.done, Some(Ok(()))), "{:?}", view.done);
    fs.releasedir(opened.fh);
    assert!(open_at_once(&fs, huge).is_none());

    // `.trash` is listed from Box when it is opened.
    assert!(open_at_once(&fs, TRASH_INO).is_none());
    // An inode the filesystem does not know fails at once.
    assert!(fs.opendir_at_once(999_999).is_some_and(|o| o.is_err()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getattr_answers_at_once_while_the_attributes_are_fresh_and_else_asks_box() {
    let emu = TestEmu::start().await;
    seed_folder(&emu, "Small", 3);
    let fs = filesystem(&emu).await;
    let small = fs.lookup(ROOT_INO, OsStr::new("Small")).await.unwrap();
    let at_once = fs
        .getattr_at_once(small.ino)
        .expect("fresh after the lookup");
    assert_eq!(at_once.expect("attributes").ino, small.ino);
    assert!(fs.getattr_at_once(999_999).is_some_and(|a| a.is_err()));

    // Nothing stays fresh: every getattr is Box's to answer.
    let client = emu.client(RetryPolicy::default());
    let stale = Arc::new(BoxFs::new(
        Arc::new(client),
        FsOptions {
            prefetch_per_folder: 0,
            ttl_healthy: std::time::Duration::ZERO,
            ttl_unhealthy: std::time::Duration::ZERO,
            ..FsOptions::default()
        },
        None,
        KernelQueue::discard(),
    ));
    stale.init().await.expect("init");
    let small = stale.lookup(ROOT_INO, OsStr::new("Small")).await.unwrap();
    assert!(stale.getattr_at_once(small.ino).is_none());
    let fetches = stale.counters.item_fetches.load(Ordering::Relaxed);
    assert_eq!(stale.getattr(small.ino).await.unwrap().ino, small.ino);
    assert_eq!(
        stale.counters.item_fetches.load(Ordering::Relaxed),
        fetches + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_answers_at_once_in_a_fresh_listing_and_else_leaves_it_to_a_task() {
    use std::os::unix::ffi::OsStrExt;
    let emu = TestEmu::start().await;
    seed_folder(&emu, "Small", 3);
    let fs = filesystem(&emu).await;
    let small = fs.lookup(ROOT_INO, OsStr::new("Small")).await.unwrap().ino;
    // Not listed yet: a task lists it first.
    assert!(fs.lookup_at_once(small, OsStr::new("file 0000")).is_none());
    let listed = fs.lookup(small, OsStr::new("file 0000")).await.unwrap();

    let again = fs.lookup_at_once(small, OsStr::new("file 0000"));
    assert_eq!(again.expect("fresh").expect("found").ino, listed.ino);
    // Names the fresh listing lacks are ENOENT at once: another spelling of the same name,
    // and a name that is not UTF-8, which Box cannot hold.
    for missing in [
        OsStr::new("FILE 0000"),
        OsStr::new("file 9999"),
        OsStr::from_bytes(b"\xff"),
    ] {
        let err = fs
            .lookup_at_once(small, missing)
            .expect("fresh")
            .unwrap_err();
        assert_eq!(err.errno(), libc::ENOENT, "{missing:?}");
    }
    // The history's names that need no listing, and the ones that do.
    assert!(fs
        .lookup_at_once(ROOT_INO, OsStr::new(".trash"))
        .is_some_and(|a| a.is_ok()));
    assert!(fs.lookup_at_once(TRASH_INO, OsStr::new("any")).is_none());
    // A file is no folder to look in.
    let err = fs
        .lookup_at_once(listed.ino, OsStr::new("x"))
        .expect("answered")
        .unwrap_err();
    assert_eq!(err.errno(), libc::ENOTDIR);
}
