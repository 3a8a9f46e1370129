//! The metadata store through real mounts: a remount lists from the store and catches up
//! with what changed on Box while nothing was mounted, without listing a folder again, and
//! with the same inode numbers; a saved position Box no longer keeps makes every listing
//! stale instead of trusting it; a `kill -9` in the middle of writing the store leaves one
//! the next mount opens and that agrees with Box; a store kept for another root folder is
//! not trusted.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use box_emulator::EmulatorConfig;
use common::mount::{count_requests, is_trash_link, TestMount};
use common::TestEmu;
use serde_json::{json, Value};

/// What a walk of the mount saw under each relative path: (inode, size, is a folder).
type Walked = BTreeMap<String, (u64, u64, bool)>;

async fn emu_with_log(log: &Path) -> Arc<TestEmu> {
    Arc::new(
        TestEmu::start_with(EmulatorConfig {
            request_log: Some(log.to_path_buf()),
            ..EmulatorConfig::default()
        })
        .await,
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

fn rt() -> tokio::runtime::Handle {
    tokio::runtime::Handle::current()
}

fn walk(root: &Path) -> Walked {
    fn into(root: &Path, dir: &Path, out: &mut Walked) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if is_trash_link(&path) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, (meta.ino(), meta.size(), meta.is_dir()));
            if meta.is_dir() {
                into(root, &path, out);
            }
        }
    }
    let mut out = Walked::new();
    into(root, root, &mut out);
    out
}

/// Box's own view of the tree under folder `id`: relative path → (size, is a folder).
fn box_tree(emu: &TestEmu, id: &str) -> BTreeMap<String, (u64, bool)> {
    fn into(emu: &TestEmu, id: &str, prefix: &str, out: &mut BTreeMap<String, (u64, bool)>) {
        let (status, listing) = rt().block_on(emu.get(&format!(
            "/folders/{id}/items?limit=1000&fields=name,size,type"
        )));
        assert!(status.is_success(), "{status} {listing}");
        for e in listing["entries"].as_array().expect("entries") {
            let name = e["name"].as_str().unwrap();
            let rel = format!("{prefix}{name}");
            let is_dir = e["type"] == "folder";
            let size = if is_dir {
                0
            } else {
                e["size"].as_u64().unwrap()
            };
            out.insert(rel.clone(), (size, is_dir));
            if is_dir {
                into(emu, e["id"].as_str().unwrap(), &format!("{rel}/"), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    into(emu, id, "", &mut out);
    out
}

/// The walk without inode numbers, and folders without sizes, to compare with Box.
fn shape(walked: &Walked) -> BTreeMap<String, (u64, bool)> {
    walked
        .iter()
        .map(|(p, &(_, size, dir))| (p.clone(), (if dir { 0 } else { size }, dir)))
        .collect()
}

fn folder_listings(log: &Path) -> usize {
    count_requests(log, "GET", |p| {
        p.starts_with("/2.0/folders/") && p.ends_with("/items")
    })
}

/// `A/` with `a1.txt`, `A/B/` with `b1.txt` and `b2.txt`, `C/` with `c1.txt`, and `top.txt`.
/// Returns the ids of `A`, `B`, `C`, `b2.txt` and `c1.txt`.
async fn tree(emu: &TestEmu) -> (String, String, String, String, String) {
    let a = emu.mkdir("0", "A").await;
    let b = emu.mkdir(&a, "B").await;
    let c = emu.mkdir("0", "C").await;
    emu.upload_file(&a, "a1.txt", b"one").await;
    emu.upload_file(&b, "b1.txt", b"bee one").await;
    let b2 = emu.upload_file(&b, "b2.txt", b"bee two").await;
    let c1 = emu.upload_file(&c, "c1.txt", b"sea").await;
    emu.upload_file("0", "top.txt", b"top").await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    (a, b, c, id(&b2), id(&c1))
}

/// How many files and folders the daemon's metadata cache holds now (`boxfs status`).
fn status_items(mp: &Path) -> u64 {
    common::mount::status_json(mp)["cache"]["inodes"]
        .as_u64()
        .expect("inodes")
}

fn cache_arg(dir: &tempfile::TempDir) -> String {
    dir.path().to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remount_catches_up_from_the_store_without_listing_again() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let emu = emu_with_log(log.path()).await;
    let (_, b, c, b2, c1) = tree(&emu).await;
    let e = emu.clone();
    let log = log.path().to_path_buf();
    blocking(move || {
        let cache = tempfile::tempdir().unwrap();
        let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg(&cache)]);
        let first = walk(&m.root);
        assert_eq!(shape(&first), box_tree(&e, "0"));
        assert!(m.unmount().success(), "{}", m.log());
        assert!(cache.path().join("metadata.sqlite3").exists());

        // While nothing is mounted: a new file, a rename, a move and a trash.
        rt().block_on(e.upload_file(&c, "new.txt", b"made while unmounted"));
        let (s, body) =
            rt().block_on(e.put_json(&format!("/files/{b2}"), json!({"name": "b2-renamed.txt"})));
        assert!(s.is_success(), "{s} {body}");
        let (s, body) =
            rt().block_on(e.put_json(&format!("/files/{c1}"), json!({"parent": {"id": b}})));
        assert!(s.is_success(), "{s} {body}");
        let (s, body) = rt().block_on(e.delete(&format!("/files/{c1}")));
        assert!(s.is_success(), "{s} {body}");

        std::fs::write(&log, b"").unwrap();
        let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg(&cache)]);
        let second = walk(&m.root);
        // Only the two folders the events touched (`B` and `C`) are listed from Box; every
        // other listing comes from the store.
        let listings = folder_listings(&log);
        assert_eq!(
            listings, 2,
            "{listings} folder listings after the remount; the store should have answered"
        );
        assert_eq!(
            shape(&second),
            box_tree(&e, "0"),
            "the remount disagrees with Box"
        );
        assert!(second.contains_key("C/new.txt"));
        assert!(second.contains_key("A/B/b2-renamed.txt"));
        assert!(!second.contains_key("C/c1.txt") && !second.contains_key("A/B/c1.txt"));
        // What was there before keeps its inode number.
        for (path, &(ino, _, _)) in &first {
            if let Some(&(again, _, _)) = second.get(path) {
                assert_eq!(ino, again, "{path} changed its inode number");
            }
        }
        assert_eq!(first["A/B/b2.txt"].0, second["A/B/b2-renamed.txt"].0);
        assert!(m.unmount().success(), "{}", m.log());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_for_another_root_folder_is_not_trusted() {
    let emu = Arc::new(TestEmu::start().await);
    let (a, _, c, _, _) = tree(&emu).await;
    let e = emu.clone();
    blocking(move || {
        let cache = tempfile::tempdir().unwrap();
        let mut m = TestMount::start(
            &e,
            &["--cache-dir", &cache_arg(&cache), "--root-folder-id", &a],
        );
        assert_eq!(shape(&walk(&m.root)), box_tree(&e, &a));
        assert!(m.unmount().success(), "{}", m.log());

        let mut m = TestMount::start(
            &e,
            &["--cache-dir", &cache_arg(&cache), "--root-folder-id", &c],
        );
        assert_eq!(shape(&walk(&m.root)), box_tree(&e, &c));
        assert!(m.unmount().success(), "{}", m.log());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_the_store_is_written_leaves_a_store_that_agrees_with_box() {
    let emu = Arc::new(TestEmu::start().await);
    let (a, _, _, _, _) = tree(&emu).await;
    let many = emu.mkdir(&a, "many").await;
    let e = emu.clone();
    blocking(move || {
        let cache = tempfile::tempdir().unwrap();
        for round in 0..3u64 {
            let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg(&cache)]);
            assert_eq!(shape(&walk(&m.root)), box_tree(&e, "0"), "round {round}");
            // Changes stream in while the mount lists and writes its store; the daemon
            // dies in the middle of it, at a different moment each round.
            let writer = {
                let e = e.clone();
                let many = many.clone();
                let handle = rt();
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let name = format!("r{round}-{i}.txt");
                        handle.block_on(e.upload_file(&many, &name, name.as_bytes()));
                    }
                })
            };
            std::thread::sleep(Duration::from_millis(400 + 450 * round));
            let _ = walk(&m.root);
            m.kill();
            writer.join().unwrap();
            drop(m);

            let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg(&cache)]);
            let walked = walk(&m.root);
            assert_eq!(
                shape(&walked),
                box_tree(&e, "0"),
                "round {round} after kill -9"
            );
            assert!(m.unmount().success(), "{}", m.log());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_folder_evicted_from_memory_shows_when_it_is_visited_again() {
    let emu = Arc::new(TestEmu::start().await);
    let (_, b, _, b2, _) = tree(&emu).await;
    for i in 0..30 {
        let d = emu.mkdir("0", &format!("filler-{i:02}")).await;
        emu.upload_file(&d, "f.txt", b"filler").await;
    }
    let e = emu.clone();
    blocking(move || {
        let cache = tempfile::tempdir().unwrap();
        // Room for a few dozen items: walking the fillers evicts `A/B` from memory, and its
        // listing stays only in the store.
        let mut m = TestMount::start(
            &e,
            &[
                "--cache-dir",
                &cache_arg(&cache),
                "--metadata-cache-entries",
                "40",
            ],
        );
        assert_eq!(shape(&walk(&m.root)), box_tree(&e, "0"));
        // The kernel forgets the inodes it looked up, so the table may evict them.
        std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop the kernel's caches");
        let evicted =
            common::mount::eventually(Duration::from_secs(5), || status_items(&m.root) <= 40);
        assert!(evicted.is_some(), "nothing was evicted");
        let (s, body) = rt().block_on(e.put_json(
            &format!("/files/{b2}"),
            json!({"name": "renamed-while-evicted.txt"}),
        ));
        assert!(s.is_success(), "{s} {body}");
        rt().block_on(e.upload_file(&b, "added-while-evicted.txt", b"new"));
        let expected = box_tree(&e, "0");
        let seen =
            common::mount::eventually(Duration::from_secs(5), || shape(&walk(&m.root)) == expected);
        assert!(
            seen.is_some(),
            "the mount still shows {:?}",
            shape(&walk(&m.root))
        );
        assert!(m.unmount().success(), "{}", m.log());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_position_box_no_longer_keeps_makes_every_listing_stale() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let emu = emu_with_log(log.path()).await;
    let (_, _, c, _, _) = tree(&emu).await;
    let e = emu.clone();
    let log = log.path().to_path_buf();
    blocking(move || {
        let cache = tempfile::tempdir().unwrap();
        let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg(&cache)]);
        assert_eq!(shape(&walk(&m.root)), box_tree(&e, "0"));
        assert!(m.unmount().success(), "{}", m.log());

        // Box keeps events 300 ms from now on: the change below, and every event before
        // it, is gone by the time the mount comes back.
        e.emulator().set_knobs(box_emulator::Knobs {
            event_retention_ms: 300,
            ..e.emulator().knobs()
        });
        rt().block_on(e.upload_file(&c, "after-the-retention.txt", b"late"));
        std::thread::sleep(Duration::from_millis(800));

        std::fs::write(&log, b"").unwrap();
        let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg(&cache)]);
        let walked = walk(&m.root);
        // Nothing stored is trusted: every folder (the root, A, A/B, C) is listed again.
        let listings = folder_listings(&log);
        assert_eq!(listings, 4, "the stored listings were trusted");
        assert_eq!(shape(&walked), box_tree(&e, "0"));
        assert!(walked.contains_key("C/after-the-retention.txt"));
        assert!(m.unmount().success(), "{}", m.log());
    })
    .await;
}
