//! Writing through a real mount: new files (small and large, checked by Box's SHA1), one
//! upload per small file, appends, truncation, O_TRUNC, random writes into an existing file,
//! an editor's save (temporary file renamed over the original keeps its Box id), utimens,
//! failures (5xx, a full account, a lock held by another user, a 412 conflict), staged data
//! surviving `kill -9`, and `--write-back`.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use box_emulator::{EmulatorConfig, Knobs};
use common::mount::{count_requests, eventually, TestMount};
use common::uploads::{sha1_hex, stored_content, Pattern};
use common::TestEmu;
use serde_json::Value;

async fn emu_with(config: EmulatorConfig) -> Arc<TestEmu> {
    Arc::new(TestEmu::start_with(config).await)
}

/// An emulator that logs its requests to `requests.log` in `dir`; the log's path.
async fn emu_logging(dir: &Path) -> (Arc<TestEmu>, std::path::PathBuf) {
    let log = dir.join("requests.log");
    let emu = emu_with(EmulatorConfig {
        request_log: Some(log.clone()),
        ..EmulatorConfig::default()
    })
    .await;
    (emu, log)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

fn rt() -> tokio::runtime::Handle {
    tokio::runtime::Handle::current()
}

fn api_get(emu: &TestEmu, path: &str) -> Value {
    let (status, body) = rt().block_on(emu.get(path));
    assert!(status.is_success(), "GET {path}: {status} {body}");
    body
}

/// The file `name` in folder `folder_id` as Box lists it.
fn child(emu: &TestEmu, folder_id: &str, name: &str) -> Option<Value> {
    let listing = api_get(
        emu,
        &format!("/folders/{folder_id}/items?limit=1000&fields=name,size,sha1,etag,file_version"),
    );
    listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

/// The names of the files in Box's trash.
fn trashed_names(emu: &TestEmu) -> Vec<String> {
    api_get(emu, "/folders/trash/items?limit=1000&fields=name")["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn versions(emu: &TestEmu, file_id: &str) -> usize {
    api_get(emu, &format!("/files/{file_id}/versions"))["entries"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Writes `data` to a new file and closes it, returning close's own result (dropping a
/// `File` ignores it).
fn write_and_close(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    let fd = f.into_raw_fd();
    // SAFETY: a descriptor we own, closed once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn errno(r: std::io::Result<impl Sized>) -> i32 {
    r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
}

/// Parts of upload sessions that Box stored (`PUT` answered 200), from the request log.
fn parts_stored(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["method"] == "PUT"
                && v["status"] == 200
                && v["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/api/2.0/files/upload_sessions/"))
        })
        .count()
}

fn staged_journals(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("staging"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_new_files_arrive_with_one_upload_each() {
    let tmp = tempfile::tempdir().unwrap();
    let (emu, log) = emu_logging(tmp.path()).await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        let before = count_requests(&log, "POST", |p| p == "/api/2.0/files/content");
        let files: Vec<(String, Vec<u8>)> = (0..5)
            .map(|i| {
                (
                    format!("small-{i}.bin"),
                    Pattern::new().bytes(1000 + i * 4096),
                )
            })
            .collect();
        for (name, data) in &files {
            std::fs::write(m.path(name), data).expect("write");
        }
        // An empty file is a file too. Nothing was written through its descriptor, so its
        // close does not wait for the upload: the release queues it.
        std::fs::File::create(m.path("empty")).expect("create");
        let uploads = || count_requests(&log, "POST", |p| p == "/api/2.0/files/content") - before;
        eventually(Duration::from_secs(5), || uploads() > files.len());
        assert_eq!(uploads(), files.len() + 1, "one upload per new file");
        for (name, data) in &files {
            let f = child(&e, "0", name).unwrap_or_else(|| panic!("{name} on Box"));
            assert_eq!(f["size"], data.len() as u64);
            assert_eq!(f["sha1"], sha1_hex(data));
            // Read back through the mount.
            assert_eq!(&std::fs::read(m.path(name)).unwrap(), data);
        }
        assert_eq!(child(&e, "0", "empty").expect("empty on Box")["size"], 0);
        assert_eq!(
            std::fs::metadata(m.path("small-3.bin")).unwrap().len(),
            1000 + 3 * 4096
        );
        // Nothing left staged.
        assert_eq!(staged_journals(&m.cache_dir), 0);
        // O_EXCL on an existing name.
        let excl = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.path("small-0.bin"));
        assert_eq!(errno(excl), libc::EEXIST);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_truncation_and_random_writes_make_new_versions() {
    let emu = emu_with(EmulatorConfig::default()).await;
    let e = emu.clone();
    blocking(move || {
        let original = Pattern::new().bytes(300_000);
        let id = id_of(&rt().block_on(e.upload_file("0", "data.bin", &original)));
        let m = TestMount::start(&e, &[]);
        let p = m.path("data.bin");

        // Append (`>>`).
        let mut expected = original.clone();
        {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"appended line\n").unwrap();
        }
        expected.extend_from_slice(b"appended line\n");
        assert_eq!(stored_content(&e, &id), &expected[..]);
        assert_eq!(std::fs::read(&p).unwrap(), expected);

        // Random writes (pwrite) into the existing file, one beyond the end.
        {
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.write_all_at(b"AAAA", 10).unwrap();
            f.write_all_at(b"BBBB", 200_000).unwrap();
            let end = expected.len() as u64;
            f.write_all_at(b"CC", end + 10).unwrap();
        }
        expected[10..14].copy_from_slice(b"AAAA");
        expected[200_000..200_004].copy_from_slice(b"BBBB");
        expected.extend_from_slice(&[0u8; 10]);
        expected.extend_from_slice(b"CC");
        assert_eq!(stored_content(&e, &id), &expected[..]);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), expected.len() as u64);

        // truncate(2) by path (`truncate -s`), shorter then longer.
        let status = std::process::Command::new("truncate")
            .args(["-s", "1000"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(status.success());
        expected.truncate(1000);
        assert_eq!(stored_content(&e, &id), &expected[..]);
        let status = std::process::Command::new("truncate")
            .args(["-s", "1500"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(status.success());
        expected.resize(1500, 0);
        assert_eq!(stored_content(&e, &id), &expected[..]);

        // ftruncate on an open handle, then a write.
        {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&p)
                .unwrap();
            f.set_len(100).unwrap();
            f.seek(SeekFrom::End(0)).unwrap();
            f.write_all(b"tail").unwrap();
        }
        expected.truncate(100);
        expected.extend_from_slice(b"tail");
        assert_eq!(stored_content(&e, &id), &expected[..]);

        // O_TRUNC (`>`): one new version with the new content.
        let before = versions(&e, &id);
        std::fs::write(&p, b"replaced whole").unwrap();
        assert_eq!(&stored_content(&e, &id)[..], b"replaced whole");
        assert_eq!(
            versions(&e, &id),
            before + 1,
            "O_TRUNC + write is one version"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"replaced whole");

        // The Box id never changed.
        assert_eq!(id_of(&child(&e, "0", "data.bin").unwrap()), id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_save_keeps_the_box_id_and_adds_a_version() {
    let emu = emu_with(EmulatorConfig::default()).await;
    let e = emu.clone();
    blocking(move || {
        let id = id_of(&rt().block_on(e.upload_file("0", "notes.txt", b"first draft\n")));
        let m = TestMount::start(&e, &[]);
        assert_eq!(
            std::fs::read(m.path("notes.txt")).unwrap(),
            b"first draft\n"
        );
        // Write `.notes.txt.swp`, fsync, close, rename it over `notes.txt`.
        {
            let mut f = std::fs::File::create(m.path(".notes.txt.swp")).unwrap();
            f.write_all(b"second draft, saved by an editor\n").unwrap();
            f.sync_all().unwrap();
        }
        std::fs::rename(m.path(".notes.txt.swp"), m.path("notes.txt")).unwrap();
        assert_eq!(
            std::fs::read(m.path("notes.txt")).unwrap(),
            b"second draft, saved by an editor\n"
        );
        assert!(!m.path(".notes.txt.swp").exists());
        let f = child(&e, "0", "notes.txt").expect("on Box");
        assert_eq!(id_of(&f), id, "the target keeps its Box id");
        assert_eq!(
            &stored_content(&e, &id)[..],
            b"second draft, saved by an editor\n"
        );
        // Box lists the versions before the current one.
        assert_eq!(versions(&e, &id), 1, "one new version");
        assert!(child(&e, "0", ".notes.txt.swp").is_none());
        // The temporary file reached Box at its close; its data is the new version now, so
        // it does not stay in the trash either.
        assert!(
            eventually(Duration::from_secs(5), || trashed_names(&e).is_empty()).is_some(),
            "left in the trash: {:?}",
            trashed_names(&e)
        );

        // The same with a temporary file renamed before it was ever uploaded (the rename
        // before the close).
        {
            let mut f = std::fs::File::create(m.path("notes.txt.tmp")).unwrap();
            f.write_all(b"third draft\n").unwrap();
            std::fs::rename(m.path("notes.txt.tmp"), m.path("notes.txt")).unwrap();
        }
        assert_eq!(&stored_content(&e, &id)[..], b"third draft\n");
        assert_eq!(id_of(&child(&e, "0", "notes.txt").unwrap()), id);
        assert!(child(&e, "0", "notes.txt.tmp").is_none());

        // A new file renamed to a free name and unlinked before upload never reaches Box.
        {
            let mut f = std::fs::File::create(m.path("scratch")).unwrap();
            f.write_all(b"x").unwrap();
            std::fs::rename(m.path("scratch"), m.path("scratch2")).unwrap();
            std::fs::remove_file(m.path("scratch2")).unwrap();
        }
        assert!(child(&e, "0", "scratch").is_none());
        assert!(child(&e, "0", "scratch2").is_none());
        assert_eq!(staged_journals(&m.cache_dir), 0);

        // A temporary file whose data never became the target's version stays in the trash:
        // uploaded by its fsync, renamed over `notes.txt` while still open, and `notes.txt`
        // removed before the close could upload it.
        {
            let mut f = std::fs::File::create(m.path("notes.txt.new")).unwrap();
            f.write_all(b"fourth draft, never saved\n").unwrap();
            f.sync_all().unwrap();
            assert!(child(&e, "0", "notes.txt.new").is_some(), "fsync uploads");
            std::fs::rename(m.path("notes.txt.new"), m.path("notes.txt")).unwrap();
            std::fs::remove_file(m.path("notes.txt")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let trashed = trashed_names(&e);
        assert!(
            trashed.iter().any(|n| n == "notes.txt.new"),
            "the unsaved draft left the trash: {trashed:?}"
        );
        assert_eq!(staged_journals(&m.cache_dir), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_redirect_uploads_once_and_adds_one_version() {
    let tmp = tempfile::tempdir().unwrap();
    let (emu, log) = emu_logging(tmp.path()).await;
    let e = emu.clone();
    blocking(move || {
        let id = id_of(&rt().block_on(e.upload_file("0", "out.txt", b"first\n")));
        let m = TestMount::start(&e, &[]);
        let uploads = || {
            count_requests(&log, "POST", |p| {
                p.starts_with("/api/2.0/files/") && p.ends_with("/content")
            })
        };
        let before = uploads();
        // The shell opens the file (O_TRUNC), makes the descriptor the command's standard
        // output and closes its own before `echo` writes: the kernel flushes at that close.
        let sh = |script: &str| {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(&m.root)
                .status()
                .unwrap();
            assert!(status.success(), "{script}");
        };
        sh("echo second > out.txt");
        assert_eq!(&stored_content(&e, &id)[..], b"second\n");
        assert_eq!(
            versions(&e, &id),
            1,
            "one new version, no empty one before it"
        );
        sh("echo new > new.txt");
        let new = child(&e, "0", "new.txt").expect("on Box when the shell returns");
        assert_eq!(new["size"], 4);
        assert_eq!(versions(&e, &id_of(&new)), 0, "created with its content");
        assert_eq!(uploads() - before, 2, "one upload per redirect");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_lock_files_leave_nothing_in_the_trash_but_removed_data_stays_there() {
    let emu = emu_with(EmulatorConfig::default()).await;
    let e = emu.clone();
    blocking(move || {
        rt().block_on(e.upload_file("0", "empty-before.txt", b""));
        let m = TestMount::start(&e, &[]);
        // As git takes and gives up a lock: an empty file made, closed (on Box now) and
        // removed.
        let lock = m.path("index.lock");
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
                .unwrap(),
        );
        assert!(
            eventually(Duration::from_secs(5), || child(&e, "0", "index.lock")
                .is_some())
            .is_some(),
            "released, it is uploaded"
        );
        std::fs::remove_file(&lock).unwrap();
        assert!(child(&e, "0", "index.lock").is_none());
        assert!(
            eventually(Duration::from_secs(5), || trashed_names(&e).is_empty()).is_some(),
            "left in the trash: {:?}",
            trashed_names(&e)
        );
        // A new file with data goes to the trash like any other: it can be restored.
        write_and_close(&m.path("draft.txt"), b"a paragraph").unwrap();
        std::fs::remove_file(m.path("draft.txt")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(trashed_names(&e), ["draft.txt"]);
        // So does an empty file that was on Box before this mount.
        std::fs::remove_file(m.path("empty-before.txt")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut trashed = trashed_names(&e);
        trashed.sort();
        assert_eq!(trashed, ["draft.txt", "empty-before.txt"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabyte_copy_arrives_whole() {
    let emu = emu_with(EmulatorConfig::default()).await;
    let e = emu.clone();
    blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("big.bin");
        let data = Pattern::new().bytes(100 << 20);
        std::fs::write(&src, &data).unwrap();
        let m = TestMount::start(&e, &[]);
        let status = std::process::Command::new("cp")
            .arg(&src)
            .arg(m.path("big.bin"))
            .status()
            .unwrap();
        assert!(status.success());
        let f = child(&e, "0", "big.bin").expect("on Box");
        assert_eq!(f["size"], data.len() as u64);
        assert_eq!(f["sha1"], sha1_hex(&data));
        assert_eq!(staged_journals(&m.cache_dir), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_killed_midway_resumes_at_the_next_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let (emu, log) = emu_logging(tmp.path()).await;
    let e = emu.clone();
    blocking(move || {
        let cache = tmp.path().join("cache");
        let cache_arg = cache.to_str().unwrap().to_string();
        let src = tmp.path().join("large.bin");
        // Five parts of 8 MiB; the first four go in parallel, the fifth after them.
        let data = Pattern::new().bytes(36 << 20);
        std::fs::write(&src, &data).unwrap();
        let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        e.emulator().set_knobs(Knobs {
            bandwidth: 12 << 20,
            ..Knobs::default()
        });
        let mut cp = std::process::Command::new("cp")
            .arg(&src)
            .arg(m.path("large.bin"))
            .spawn()
            .unwrap();
        let some_parts = eventually(Duration::from_secs(20), || parts_stored(&log) >= 1);
        assert!(some_parts.is_some(), "no part uploaded; log:\n{}", m.log());
        m.kill();
        let _ = cp.wait();
        e.emulator().set_knobs(Knobs::default());
        // Parts cut off by the kill are answered (with errors) a moment later.
        std::thread::sleep(Duration::from_millis(300));
        let parts_before = parts_stored(&log);
        assert!(parts_before < 5, "the upload finished before the kill");
        assert!(child(&e, "0", "large.bin").is_none());
        assert_eq!(staged_journals(&cache), 1, "the data stays staged");

        let m2 = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        let arrived = eventually(Duration::from_secs(20), || {
            child(&e, "0", "large.bin").is_some_and(|f| f["sha1"] == sha1_hex(&data))
        });
        assert!(arrived.is_some(), "never arrived; log:\n{}", m2.log());
        let parts_after = parts_stored(&log) - parts_before;
        assert!(
            parts_after < 5,
            "the session was resumed, not started over ({parts_after} parts sent again); log:\n{}",
            m2.log()
        );
        assert!(eventually(Duration::from_secs(5), || staged_journals(&cache) == 0).is_some());
        assert_eq!(
            std::fs::metadata(m2.path("large.bin")).unwrap().len(),
            data.len() as u64
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_failing_with_server_errors_succeeds_on_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let (emu, log) = emu_logging(tmp.path()).await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        e.emulator().set_knobs(Knobs {
            fault_rate: 1.0,
            fault_path_prefix: "/api/2.0/files/content".into(),
            ..Knobs::default()
        });
        let path = m.path("flaky.txt");
        let writer = std::thread::spawn(move || write_and_close(&path, b"made it through"));
        std::thread::sleep(Duration::from_millis(1200));
        e.emulator().set_knobs(Knobs::default());
        writer
            .join()
            .unwrap()
            .expect("close succeeds once Box answers");
        let f = child(&e, "0", "flaky.txt").expect("on Box");
        assert_eq!(&stored_content(&e, &id_of(&f))[..], b"made it through");
        let attempts = count_requests(&log, "POST", |p| p == "/api/2.0/files/content");
        assert!(attempts >= 2, "{attempts} attempt(s)");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_account_is_enospc_and_the_data_waits_for_the_next_mount() {
    let emu = emu_with(EmulatorConfig {
        quota_bytes: 1_000_000,
        ..EmulatorConfig::default()
    })
    .await;
    let e = emu.clone();
    blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        let cache_arg = cache.to_str().unwrap().to_string();
        let data = Pattern::new().bytes(2_000_000);
        let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        let r = write_and_close(&m.path("too-big.bin"), &data);
        assert_eq!(errno(r), libc::ENOSPC);
        assert!(child(&e, "0", "too-big.bin").is_none());
        assert_eq!(staged_journals(&cache), 1, "the data stays staged");
        // Still readable through the mount.
        assert_eq!(std::fs::read(m.path("too-big.bin")).unwrap(), data);
        m.unmount();
        assert_eq!(staged_journals(&cache), 1, "still staged after unmounting");

        // More space; the next mount uploads it.
        {
            let mut store = e.emulator().shared.store();
            for u in store.users.values_mut() {
                u.space_amount = -1;
            }
        }
        let _m2 = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        let arrived = eventually(Duration::from_secs(10), || {
            child(&e, "0", "too-big.bin").is_some_and(|f| f["sha1"] == sha1_hex(&data))
        });
        assert!(arrived.is_some());
        assert!(eventually(Duration::from_secs(5), || staged_journals(&cache) == 0).is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_box_meanwhile_leaves_a_conflict_copy() {
    let emu = emu_with(EmulatorConfig::default()).await;
    let e = emu.clone();
    blocking(move || {
        let id = id_of(&rt().block_on(e.upload_file("0", "shared.txt", b"version one\n")));
        let m = TestMount::start(&e, &[]);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(m.path("shared.txt"))
            .unwrap();
        f.write_all(b"written here").unwrap();
        // Someone else uploads a new version before we close.
        let form = reqwest::multipart::Form::new()
            .text("attributes", "{}")
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"written elsewhere\n".to_vec()).file_name("x"),
            );
        let (status, body) = rt().block_on(TestEmu::send(
            e.req(
                reqwest::Method::POST,
                &e.upload(&format!("/files/{id}/content")),
            )
            .multipart(form),
        ));
        assert!(status.is_success(), "{status} {body}");
        drop(f);
        // Box's version stays; ours is beside it.
        assert_eq!(&stored_content(&e, &id)[..], b"written elsewhere\n");
        let listing = api_get(&e, "/folders/0/items?limit=1000");
        let copy = listing["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                let n = e["name"].as_str().unwrap();
                n.starts_with("shared (conflict ") && n.ends_with(").txt")
            })
            .cloned()
            .expect("a conflict copy");
        let mut ours = b"version one\n".to_vec();
        ours[..12].copy_from_slice(b"written here");
        assert_eq!(&stored_content(&e, &id_of(&copy))[..], &ours[..]);
        assert!(m.log().contains("conflict"), "the conflict is logged");
        let shown = eventually(Duration::from_secs(3), || {
            std::fs::read(m.path("shared.txt")).is_ok_and(|c| c == b"written elsewhere\n")
        });
        assert!(shown.is_some(), "the mount shows Box's version again");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_locked_by_another_user_refuses_writes() {
    let emu = emu_with(EmulatorConfig::default()).await;
    let e = emu.clone();
    blocking(move || {
        let team = rt().block_on(e.mkdir("0", "Team"));
        let id = id_of(&rt().block_on(e.upload_file(&team, "locked.txt", b"hands off")));
        // A second user, collaborating on the folder, mounts it.
        let (_, token) = e.other_user(Some(team.parse().unwrap()));
        // The owner locks the file.
        let (status, body) = rt().block_on(e.put_json(
            &format!("/files/{id}"),
            serde_json::json!({"lock": {"access": "lock"}}),
        ));
        assert!(status.is_success(), "{status} {body}");
        let m = TestMount::start_with_base(&e.base, &token, &["--root-folder-id", &team]);
        let p = m.path("locked.txt");
        assert_eq!(std::fs::read(&p).unwrap(), b"hands off");
        let open = std::fs::OpenOptions::new().write(true).open(&p);
        assert_eq!(errno(open), libc::EACCES);
        let status = std::process::Command::new("truncate")
            .args(["-s", "0"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(!status.status.success());
        assert!(m.log().contains("locked"), "the log says why: {}", m.log());
        assert_eq!(&stored_content(&e, &id)[..], b"hands off");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_returns_at_once_and_unmount_waits_for_the_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let (emu, log) = emu_logging(tmp.path()).await;
    let e = emu.clone();
    blocking(move || {
        let mut m = TestMount::start(&e, &["--write-back", "1"]);
        e.emulator().set_knobs(Knobs {
            latency_ms: 300,
            ..Knobs::default()
        });
        // Three saves within the delay: close returns at once, one upload follows.
        let started = std::time::Instant::now();
        for i in 0..3 {
            std::fs::write(m.path("draft.txt"), format!("save {i}")).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "closes waited for Box: {:?}",
            started.elapsed()
        );
        let arrived = eventually(Duration::from_secs(5), || {
            child(&e, "0", "draft.txt")
                .is_some_and(|f| stored_content(&e, &id_of(&f))[..] == b"save 2"[..])
        });
        assert!(arrived.is_some(), "log:\n{}", m.log());
        let uploads = count_requests(&log, "POST", |p| {
            p == "/api/2.0/files/content" || p.ends_with("/content")
        });
        assert_eq!(uploads, 1, "repeated closes joined one upload");

        // Queued at unmount: `boxfs unmount` returns once the daemon has uploaded it.
        std::fs::write(m.path("last.txt"), b"written just before unmounting").unwrap();
        assert!(child(&e, "0", "last.txt").is_none());
        let status = m.unmount();
        assert!(status.success());
        let f = child(&e, "0", "last.txt").expect("uploaded before the daemon exited");
        assert_eq!(
            &stored_content(&e, &id_of(&f))[..],
            b"written just before unmounting"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mount_refuses_every_write() {
    let emu = emu_with(EmulatorConfig::default()).await;
    let e = emu.clone();
    blocking(move || {
        rt().block_on(e.upload_file("0", "ro.txt", b"read only"));
        let m = TestMount::start(&e, &["--read-only"]);
        assert_eq!(errno(std::fs::write(m.path("new.txt"), b"x")), libc::EROFS);
        let open = std::fs::OpenOptions::new()
            .write(true)
            .open(m.path("ro.txt"));
        assert_eq!(errno(open), libc::EROFS);
        let truncated = std::process::Command::new("truncate")
            .args(["-s", "0"])
            .arg(m.path("ro.txt"))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&truncated.stderr).contains("Read-only file system"));
        assert_eq!(errno(std::fs::create_dir(m.path("dir"))), libc::EROFS);
        assert_eq!(std::fs::read(m.path("ro.txt")).unwrap(), b"read only");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utimens_before_close_sets_the_content_time_and_chmod_is_accepted() {
    let emu = emu_with(EmulatorConfig::default()).await;
    let e = emu.clone();
    blocking(move || {
        use std::os::unix::fs::PermissionsExt;
        let m = TestMount::start(&e, &[]);
        let when = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        {
            let mut f = std::fs::File::create(m.path("dated.txt")).unwrap();
            f.write_all(b"old news").unwrap();
            f.set_modified(when).unwrap();
        }
        let f = child(&e, "0", "dated.txt").expect("on Box");
        let item = api_get(
            &e,
            &format!("/files/{}?fields=content_modified_at", id_of(&f)),
        );
        let on_box = chrono::DateTime::parse_from_rfc3339(
            item["content_modified_at"]
                .as_str()
                .expect("content_modified_at"),
        )
        .unwrap();
        assert_eq!(on_box.timestamp(), 1_600_000_000);
        let shown = std::fs::metadata(m.path("dated.txt"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(shown, when);
        // chmod changes nothing on Box and is not an error.
        std::fs::set_permissions(m.path("dated.txt"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod accepted");
    })
    .await;
}
