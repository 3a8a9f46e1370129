//! Changes made by another client, straight through the API, show up in a real mount within
//! 2 s without remounting: new content, a rename, a move, a trash and a new file. The event
//! stream lost (every request failing) and recovered: the mount catches up. Late events about
//! a file the mount created and deleted at once do not bring it back.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use box_emulator::{EmulatorConfig, Knobs};
use common::mount::{eventually, TestMount};
use common::TestEmu;
use reqwest::Method;
use serde_json::Value;

const VISIBLE_WITHIN: Duration = Duration::from_secs(2);

async fn demo_emu() -> Arc<TestEmu> {
    Arc::new(
        TestEmu::start_with(EmulatorConfig {
            demo: true,
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

fn child_id(emu: &TestEmu, folder_id: &str, name: &str) -> String {
    let (_, listing) = rt().block_on(emu.get(&format!("/folders/{folder_id}/items?limit=1000")));
    listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["id"].as_str().expect("id").to_string())
        .unwrap_or_else(|| panic!("no {name} in folder {folder_id}"))
}

fn put(emu: &TestEmu, path: &str, body: Value) {
    let (status, body) = rt().block_on(emu.put_json(path, body));
    assert!(status.is_success(), "PUT {path}: {status} {body}");
}

/// Uploads a new version of a file through the API.
fn new_version(emu: &TestEmu, file_id: &str, content: &[u8]) {
    let form = reqwest::multipart::Form::new()
        .text("attributes", "{}")
        .part(
            "file",
            reqwest::multipart::Part::bytes(content.to_vec()).file_name("x"),
        );
    let (status, body) = rt().block_on(TestEmu::send(
        emu.req(
            Method::POST,
            &emu.upload(&format!("/files/{file_id}/content")),
        )
        .multipart(form),
    ));
    assert!(status.is_success(), "new version: {status} {body}");
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

fn listed(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).any(|e| e.file_name() == name))
        .unwrap_or(false)
}

fn seen_within(what: &str, check: impl FnMut() -> bool) {
    let took = eventually(VISIBLE_WITHIN, check);
    assert!(
        took.is_some(),
        "{what}: not visible in the mount within {VISIBLE_WITHIN:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_elsewhere_show_up_within_two_seconds() {
    let emu = demo_emu().await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        // Fill the kernel's and our caches first: names, attributes, listings, pages.
        let before = std::fs::read(m.path("Documents/notes.txt")).expect("read");
        assert!(listed(&m.path("Documents"), "notes.txt"));
        assert!(listed(&m.root, "Welcome.txt"));
        let docs = child_id(&e, "0", "Documents");
        let notes = child_id(&e, &docs, "notes.txt");

        // New content.
        let content = b"changed elsewhere, and longer than before".repeat(3);
        new_version(&e, &notes, &content);
        seen_within("new content", || {
            std::fs::read(m.path("Documents/notes.txt")).is_ok_and(|c| c == content)
        });
        assert_ne!(before, content);
        assert_eq!(
            std::fs::metadata(m.path("Documents/notes.txt"))
                .expect("stat")
                .len(),
            content.len() as u64
        );

        // Rename.
        let welcome = child_id(&e, "0", "Welcome.txt");
        put(
            &e,
            &format!("/files/{welcome}"),
            serde_json::json!({"name": "Renamed.txt"}),
        );
        seen_within("rename", || {
            exists(&m.path("Renamed.txt"))
                && !exists(&m.path("Welcome.txt"))
                && listed(&m.root, "Renamed.txt")
                && !listed(&m.root, "Welcome.txt")
        });

        // Move.
        put(
            &e,
            &format!("/files/{welcome}"),
            serde_json::json!({"parent": {"id": docs}}),
        );
        seen_within("move", || {
            exists(&m.path("Documents/Renamed.txt")) && !listed(&m.root, "Renamed.txt")
        });

        // Trash.
        let (status, _) = rt().block_on(e.delete(&format!("/files/{notes}")));
        assert!(status.is_success());
        seen_within("trash", || {
            !exists(&m.path("Documents/notes.txt")) && !listed(&m.path("Documents"), "notes.txt")
        });

        // New file and new folder.
        rt().block_on(e.upload_file(&docs, "fresh.txt", b"brand new"));
        rt().block_on(e.mkdir("0", "Fresh Folder"));
        seen_within("new file", || {
            std::fs::read(m.path("Documents/fresh.txt")).is_ok_and(|c| c == b"brand new")
        });
        seen_within("new folder", || listed(&m.root, "Fresh Folder"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mount_catches_up_after_the_event_stream_was_lost() {
    let emu = demo_emu().await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        assert!(listed(&m.root, "Welcome.txt"));
        // Everything fails for a while: the stream is lost.
        e.emulator().set_knobs(Knobs {
            fault_rate: 1.0,
            ..Knobs::default()
        });
        std::thread::sleep(Duration::from_millis(1500));
        // A change made while the mount cannot hear about it.
        let welcome = {
            e.emulator().set_knobs(Knobs::default());
            let id = child_id(&e, "0", "Welcome.txt");
            put(
                &e,
                &format!("/files/{id}"),
                serde_json::json!({"name": "During outage.txt"}),
            );
            e.emulator().set_knobs(Knobs {
                fault_rate: 1.0,
                ..Knobs::default()
            });
            id
        };
        std::thread::sleep(Duration::from_millis(1000));
        e.emulator().set_knobs(Knobs::default());
        // Recovered: reconnect, revalidate, and the change shows.
        let took = eventually(Duration::from_secs(10), || {
            listed(&m.root, "During outage.txt") && !listed(&m.root, "Welcome.txt")
        });
        assert!(
            took.is_some(),
            "the mount never caught up; log:\n{}",
            m.log()
        );
        // And changes keep arriving afterwards.
        put(
            &e,
            &format!("/files/{welcome}"),
            serde_json::json!({"name": "After.txt"}),
        );
        // The feed may still be in its reconnect backoff, when the short TTLs carry changes.
        let took = eventually(Duration::from_secs(6), || listed(&m.root, "After.txt"));
        assert!(
            took.is_some(),
            "rename after recovery not seen; log:\n{}",
            m.log()
        );
    })
    .await;
}

/// `user.box.lock` of `p`, if set.
fn lock_xattr(p: &Path) -> Option<String> {
    let out = std::process::Command::new("getfattr")
        .args(["--only-values", "-n", "user.box.lock"])
        .arg(p)
        .output()
        .expect("getfattr (package attr) runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_elsewhere_shows_in_the_xattrs_within_two_seconds() {
    let emu = demo_emu().await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        let file = m.path("Welcome.txt");
        assert!(lock_xattr(&file).is_none(), "unlocked at first");
        let id = child_id(&e, "0", "Welcome.txt");
        put(
            &e,
            &format!("/files/{id}"),
            serde_json::json!({"lock": {"access": "lock"}}),
        );
        seen_within("lock", || lock_xattr(&file).is_some());
        put(
            &e,
            &format!("/files/{id}"),
            serde_json::json!({"lock": null}),
        );
        seen_within("unlock", || lock_xattr(&file).is_none());
    })
    .await;
}

/// What a database or an editor does with its journal: create, write, fsync, write again,
/// fsync, close, delete, look again. Box's events about the uploads arrive after the delete
/// and must not bring the file back (it came back as a ghost whose reads failed, and SQLite
/// reported a disk I/O error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_created_and_deleted_at_once_stays_deleted() {
    const WRITERS: usize = 4;
    const ROUNDS: usize = 20;
    let emu = demo_emu().await;
    let e = emu.clone();
    blocking(move || {
        use std::io::Write;
        let m = Arc::new(TestMount::start(&e, &[]));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for r in 0..ROUNDS {
                        let path = m.path(&format!("journal-{w}-{r}"));
                        let mut f = std::fs::File::create(&path).expect("create");
                        f.write_all(&[1; 512]).expect("write");
                        f.sync_all().expect("fsync");
                        f.write_all(&[2; 12]).expect("write");
                        f.sync_all().expect("fsync");
                        drop(f);
                        std::fs::remove_file(&path).expect("unlink");
                        for _ in 0..20 {
                            let err = std::fs::metadata(&path).expect_err("deleted");
                            assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        // Every writer is joined before any failure is raised, so that the mount is still
        // unmounted when one of them failed.
        let results: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        for r in results {
            r.expect("writer");
        }
        // Once every event has arrived: none of them anywhere.
        std::thread::sleep(Duration::from_secs(1));
        let left: Vec<_> = std::fs::read_dir(&m.root)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("journal-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let (_, root) = rt().block_on(e.get("/folders/0/items?limit=1000"));
        let on_box: Vec<_> = root["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|i| {
                i["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("journal-"))
            })
            .collect();
        assert!(on_box.is_empty(), "{on_box:?}");
    })
    .await;
}

/// Kernel notifications go out from a thread of their own: eight threads looking things up
/// and listing while another client renames and uploads in a burst never see the mount
/// stall, and the view ends right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_during_a_burst_of_remote_changes() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let emu = Arc::new(TestEmu::start().await);
    let folder = emu.mkdir("0", "burst").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let f = emu
            .upload_file(&folder, &format!("f{i}"), format!("v{i}").as_bytes())
            .await;
        ids.push(f["id"].as_str().expect("id").to_string());
    }
    let e = emu.clone();
    blocking(move || {
        let m = Arc::new(TestMount::start(&e, &[]));
        let dir = m.path("burst");
        assert!(listed(&dir, "f0"));
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..8)
            .map(|t| {
                let (dir, stop, slowest_ms) = (dir.clone(), stop.clone(), slowest_ms.clone());
                std::thread::spawn(move || {
                    let mut ops = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let started = std::time::Instant::now();
                        if t % 2 == 0 {
                            let _ = std::fs::read_dir(&dir).map(|d| d.count());
                        } else {
                            let _ = std::fs::metadata(dir.join(format!("f{}", ops % 20)));
                            let _ = std::fs::metadata(dir.join(format!("g{}", ops % 20)));
                        }
                        let ms = started.elapsed().as_millis() as u64;
                        slowest_ms.fetch_max(ms, Ordering::Relaxed);
                        ops += 1;
                    }
                    ops
                })
            })
            .collect();
        for (i, id) in ids.iter().enumerate() {
            put(
                &e,
                &format!("/files/{id}"),
                serde_json::json!({"name": format!("g{i}")}),
            );
            rt().block_on(e.upload_file(&folder, &format!("n{i}"), b"new"));
        }
        let mut want: Vec<String> = (0..20)
            .flat_map(|i| [format!("g{i}"), format!("n{i}")])
            .collect();
        want.sort();
        let names = || {
            let mut got: Vec<String> = std::fs::read_dir(&dir)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            got.sort();
            got
        };
        let settled = eventually(Duration::from_secs(15), || names() == want);
        stop.store(true, Ordering::Relaxed);
        let ops: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        assert!(settled.is_some(), "the mount shows {:?}", names());
        assert!(ops > 100, "only {ops} lookups and listings went through");
        let slowest = slowest_ms.load(Ordering::Relaxed);
        assert!(slowest < 5_000, "one operation took {slowest} ms");
        assert!(!exists(&dir.join("f0")) && exists(&dir.join("g19")));
    })
    .await;
}
