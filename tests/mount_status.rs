//! A running mount seen from outside, with real mounts and real daemon processes:
//! `boxfs status` (the account, a healthy stream, API calls that grow with use, an upload in
//! progress under `--write-back` on a throttled emulator, a mount that is not running or
//! whose daemon was killed), SIGHUP dropping the metadata cache, SIGTERM finishing pending
//! uploads, a lost event stream with its last error, `boxfs unmount` staying quiet when
//! stderr is not a terminal, and a metadata cache held to its bound.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use box_emulator::store::ItemKind;
use box_emulator::{EmulatorConfig, Knobs};
use bytes::Bytes;
use common::mount::{box_names, count_requests, eventually, is_mounted, TestMount};
use common::TestEmu;
use serde_json::Value;

fn boxfs(args: &[&str], mountpoint: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxfs"));
    cmd.args(args);
    if let Some(mp) = mountpoint {
        cmd.arg(mp);
    }
    cmd.env("BOXFS_CONFIG", "/dev/null")
        .env_remove("BOXFS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .expect("boxfs runs")
}

/// `boxfs status --json MOUNTPOINT`, parsed.
fn status_json(mp: &Path) -> Value {
    let out = boxfs(&["status", "--json"], Some(mp));
    assert!(
        out.status.success(),
        "boxfs status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

fn status_text(mp: &Path) -> String {
    let out = boxfs(&["status"], Some(mp));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

fn rt() -> tokio::runtime::Handle {
    tokio::runtime::Handle::current()
}

/// The file `name` in folder `folder_id`, if Box has it.
fn child(emu: &TestEmu, folder_id: &str, name: &str) -> Option<Value> {
    let (_, listing) = rt().block_on(emu.get(&format!(
        "/folders/{folder_id}/items?limit=1000&fields=name,size"
    )));
    listing["entries"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

fn wait_healthy(mp: &Path) {
    let healthy = eventually(Duration::from_secs(10), || {
        status_json(mp)["events"]["state"] == "healthy"
    });
    assert!(healthy.is_some(), "the event stream never became healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_account_the_stream_and_calls_that_grow() {
    let emu = Arc::new(TestEmu::start().await);
    let docs = emu.mkdir("0", "Docs").await;
    emu.upload_file(&docs, "a.txt", b"hello").await;
    let (_, me) = emu.get("/users/me").await;
    let login = me["login"].as_str().expect("login").to_string();
    let e = emu.clone();
    blocking(move || {
        let mut m = TestMount::start(&e, &["--read-budget", "64M", "--read-connections", "12"]);
        wait_healthy(&m.root);
        let before = status_json(&m.root);
        assert_eq!(before["reads"]["memory_limit"], 64 << 20);
        assert_eq!(before["reads"]["connection_limit"], 12);
        assert_eq!(before["reads"]["requests_in_flight"], 0);
        assert_eq!(before["account"]["login"], login.as_str());
        assert!(before["account"]["api_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&e.base)));
        assert_eq!(before["pid"], m.pid().expect("running"));
        assert_eq!(before["cache"]["inode_limit"], 250_000);
        let calls = before["api"]["calls"].as_u64().expect("calls");
        assert!(calls > 0, "{before}");

        let names: Vec<_> = std::fs::read_dir(m.path("Docs"))
            .expect("ls Docs")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["a.txt"]);
        assert_eq!(std::fs::read(m.path("Docs/a.txt")).unwrap(), b"hello");
        let after = status_json(&m.root);
        let more = after["api"]["calls"].as_u64().expect("calls");
        assert!(more > calls, "calls {calls} -> {more} after ls and cat");
        assert!(after["cache"]["inodes"].as_u64().unwrap() >= 3, "{after}");
        assert!(
            after["cache"]["content_bytes"].as_u64().unwrap() >= 5,
            "{after}"
        );

        let text = status_text(&m.root);
        for part in [
            login.as_str(),
            "healthy",
            "files and folders",
            "of 64 MiB in memory",
            "calls",
            "none pending",
        ] {
            assert!(text.contains(part), "{part:?} missing in:\n{text}");
        }

        // Not a mount: a message and exit status 1.
        let nowhere = tempfile::tempdir().unwrap();
        let out = boxfs(&["status"], Some(nowhere.path()));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no boxfs mount is running there"),
            "{out:?}"
        );

        // A daemon killed without unmounting leaves a record that is not a running mount.
        m.kill();
        let out = boxfs(&["status"], Some(&m.root));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not running"),
            "{out:?}"
        );
        let out = boxfs(&["status", "--json"], Some(&m.root));
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_drops_the_metadata_cache_and_the_mount_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("requests.log");
    let emu = Arc::new(
        TestEmu::start_with(EmulatorConfig {
            request_log: Some(log.clone()),
            ..EmulatorConfig::default()
        })
        .await,
    );
    emu.upload_file("0", "old-name.txt", b"v1").await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        wait_healthy(&m.root);
        let listings = || count_requests(&log, "GET", |p| p == "/2.0/folders/0/items");
        let ls = || box_names(&m.root);
        assert_eq!(ls(), ["old-name.txt"]);
        let listed = listings();
        assert_eq!(ls(), ["old-name.txt"]);
        std::fs::metadata(m.path("old-name.txt")).expect("stat");
        assert_eq!(listings(), listed, "a second ls is answered from the cache");

        m.signal(libc::SIGHUP);
        let asked = eventually(Duration::from_secs(5), || {
            let _ = ls();
            listings() > listed
        });
        assert!(asked.is_some(), "after SIGHUP ls did not ask Box again");
        assert!(is_mounted(&m.root), "SIGHUP must not end the mount");
        let status = status_json(&m.root);
        assert_eq!(status["events"]["revalidations"], 1, "{status}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_uploads_in_progress_and_unmount_waits_quietly() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let mut m = TestMount::start(&e, &["--write-back", "1"]);
        wait_healthy(&m.root);
        e.emulator().set_knobs(Knobs {
            bandwidth: 512 << 10,
            latency_ms: 50,
            ..Knobs::default()
        });
        let big = vec![7u8; 2 << 20];
        std::fs::write(m.path("big.bin"), &big).unwrap();
        let mut seen = Value::Null;
        // Running, with some of its bytes sent.
        let running = eventually(Duration::from_secs(15), || {
            seen = status_json(&m.root);
            seen["uploads"]["running"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|u| u["name"] == "big.bin" && u["done"].as_u64() > Some(0))
            })
        });
        assert!(running.is_some(), "no upload in progress: {seen}");
        let uploads = &seen["uploads"];
        assert_eq!(uploads["pending_files"], 1, "{seen}");
        assert_eq!(uploads["pending_bytes"], 2 << 20, "{seen}");
        let upload = &uploads["running"][0];
        assert_eq!(upload["size"], 2 << 20);
        assert!(upload["done"].as_u64().unwrap() <= 2 << 20);
        assert!(upload["rate"].as_f64().unwrap() > 0.0, "{seen}");
        let text = status_text(&m.root);
        assert!(
            text.contains("1 pending (2 MiB), 1 running")
                && text.contains("big.bin: ")
                && text.contains("of 2 MiB"),
            "{text}"
        );

        // Queued behind it when the unmount starts: unmount waits, and says only that.
        std::fs::write(m.path("second.bin"), vec![1u8; 256 << 10]).unwrap();
        let out = boxfs(&["unmount"], Some(&m.root));
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("waiting for"), "{stderr}");
        assert!(stderr.contains("all uploads done"), "{stderr}");
        assert!(
            !stderr.contains('\r') && !stderr.contains("left,") && stderr.lines().count() == 2,
            "progress lines on a non-terminal: {stderr:?}"
        );
        assert!(m.wait_exit(Duration::from_secs(20)).success());
        e.emulator().set_knobs(Knobs::default());
        assert_eq!(
            child(&e, "0", "big.bin").expect("uploaded")["size"],
            2 << 20
        );
        assert_eq!(
            child(&e, "0", "second.bin").expect("uploaded")["size"],
            256 << 10
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_unmounts_after_pending_uploads_reach_box() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let mut m = TestMount::start(&e, &["--write-back", "30"]);
        e.emulator().set_knobs(Knobs {
            latency_ms: 200,
            ..Knobs::default()
        });
        std::fs::write(m.path("late.txt"), b"written before SIGTERM").unwrap();
        assert!(child(&e, "0", "late.txt").is_none(), "not uploaded yet");
        m.signal(libc::SIGTERM);
        assert!(m.wait_exit(Duration::from_secs(20)).success());
        assert!(!is_mounted(&m.root));
        e.emulator().set_knobs(Knobs::default());
        assert_eq!(
            child(&e, "0", "late.txt").expect("uploaded before exiting")["size"],
            22
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_lost_stream_with_its_last_error_and_the_errors_by_status() {
    // Long-polls end every second, so the next one meets the faults at once.
    let emu = Arc::new(
        TestEmu::start_with(EmulatorConfig {
            longpoll_timeout_secs: 1,
            ..EmulatorConfig::default()
        })
        .await,
    );
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        wait_healthy(&m.root);
        // Every request fails (5xx, 429 or a dropped connection): the stream is lost.
        e.emulator().set_knobs(Knobs {
            fault_rate: 1.0,
            ..Knobs::default()
        });
        let mut seen = Value::Null;
        let lost = eventually(Duration::from_secs(15), || {
            seen = status_json(&m.root);
            seen["events"]["state"] == "reconnecting" && seen["events"]["last_error"].is_string()
        });
        assert!(lost.is_some(), "{seen}");
        let text = status_text(&m.root);
        assert!(
            text.contains("reconnecting") && text.contains("last error"),
            "{text}"
        );
        e.emulator().set_knobs(Knobs::default());
        let back = eventually(Duration::from_secs(15), || {
            seen = status_json(&m.root);
            seen["events"]["state"] == "healthy"
        });
        assert!(back.is_some(), "{seen}");
        let errors = seen["api"]["errors"].as_object().expect("errors by status");
        assert!(!errors.is_empty(), "{seen}");
        assert!(
            errors
                .keys()
                .all(|k| k == "network" || ["429", "500", "503"].contains(&k.as_str())),
            "{seen}"
        );
    })
    .await;
}

/// A metadata cache far smaller than what is browsed: every listing, stat and read stays
/// right (folders whose children were evicted are listed again), the kernel's references keep
/// what it holds, and once the kernel lets go of its dentries the daemon holds no more than
/// its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_metadata_cache_stays_within_its_bound_and_right() {
    const FILES: usize = 150;
    const BOUND: u64 = 60;
    let emu = Arc::new(TestEmu::start().await);
    let content = |name: &str, i: usize| name.repeat(i % 7 + 1);
    {
        let shared = &emu.emulator().shared;
        let mut store = shared.store();
        let admin = store.admin;
        let root = store.users[&admin].root_folder;
        let now = chrono::Utc::now();
        for folder in ["A", "B"] {
            let item = store.new_item(ItemKind::Folder, folder, root, admin, admin, now);
            let id = store.insert_item(item);
            for i in 0..FILES {
                let name = format!("{folder}{i:03}.txt");
                let data = Bytes::from(content(&name, i));
                store.add_file(id, &name, admin, data, now);
            }
        }
        shared.changed(&store);
    }
    let e = emu.clone();
    blocking(move || {
        let bound = BOUND.to_string();
        let m = TestMount::start(&e, &["--metadata-cache-entries", &bound, "--read-only"]);
        for folder in ["A", "B", "A"] {
            let listed = std::fs::read_dir(m.path(folder)).expect("readdir").count();
            assert_eq!(listed, FILES, "{folder}");
            for i in 0..FILES {
                let name = format!("{folder}{i:03}.txt");
                let path = m.path(&format!("{folder}/{name}"));
                let expected = content(&name, i);
                let meta = std::fs::metadata(&path).expect("stat");
                assert_eq!(meta.len(), expected.len() as u64, "{name}");
                if i % 40 == 0 {
                    assert_eq!(std::fs::read(&path).expect("read"), expected.as_bytes());
                }
            }
        }
        let held = status_json(&m.root)["cache"]["inodes"].as_u64().unwrap();
        assert!(held > BOUND, "the kernel's references are kept: {held}");
        // The kernel lets go of its unused dentries (and forgets their inodes): the daemon's
        // table shrinks to its bound.
        std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop_caches (needs root)");
        let shrunk = eventually(Duration::from_secs(5), || {
            status_json(&m.root)["cache"]["inodes"].as_u64().unwrap() <= BOUND
        });
        assert!(shrunk.is_some(), "{}", status_json(&m.root));
        // Still right afterwards.
        let name = format!("B{:03}.txt", FILES - 1);
        assert_eq!(
            std::fs::read(m.path(&format!("B/{name}"))).expect("read"),
            content(&name, FILES - 1).as_bytes()
        );
        assert_eq!(
            std::fs::read_dir(m.path("B")).expect("readdir").count(),
            FILES
        );
    })
    .await;
}

/// The account's size and free space as `statvfs` gives them for `path`, in bytes.
fn statvfs_bytes(path: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid C string and `st` is written by statvfs before it is read.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs");
    (st.f_blocks * st.f_frsize, st.f_bfree * st.f_frsize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn df_right_after_a_mount_shows_the_quota_of_the_sign_in_without_asking_box() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let emu = Arc::new(
        TestEmu::start_with(EmulatorConfig {
            request_log: Some(log.path().to_path_buf()),
            ..EmulatorConfig::default()
        })
        .await,
    );
    emu.upload_file("0", "a.bin", &[7u8; 8192]).await;
    let (_, me) = emu.get("/users/me").await;
    let amount = me["space_amount"].as_u64().expect("space_amount");
    let used = me["space_used"].as_u64().expect("space_used");
    assert_eq!(used, 8192);
    let log = log.path().to_path_buf();
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        let user_calls = || count_requests(&log, "GET", |p| p == "/2.0/users/me");
        let at_mount = user_calls();
        let (size, free) = statvfs_bytes(&m.root);
        // `find` and `ls` make a `statfs` before they walk: after a remount it should cost
        // no round trip, and the sign-in's answer held the quota already.
        assert_eq!(user_calls(), at_mount, "statfs asked Box again");
        assert_eq!(size, amount / 4096 * 4096);
        assert_eq!(free, (amount - used) / 4096 * 4096);
    })
    .await;
}
