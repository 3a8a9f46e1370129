//! Writing through a real mount: new files (small and large, checked by Box's SHA1), one
//! upload per small file, appends, truncation, O_TRUNC, random writes into an existing file,
//! an editor's save (temporary file renamed over the original keeps its Box id), utimens,
//! failures (5xx, a full account, a lock held by another user, a 412 conflict), staged data
//! surviving `kill -9`, and `--write-back`.

mod common;
mod upload_helpers;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use boxfs::emulator::EmulatorConfig;
use common::mount::{count_requests, TestMount};
use common::TestEmu;
use serde_json::Value;
use upload_helpers::{sha1_hex, stored_content, Pattern};

async fn emu_with(config: EmulatorConfig) -> Arc<TestEmu> {
    Arc::new(TestEmu::start_with(config).await)
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

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn versions(emu: &TestEmu, file_id: &str) -> usize {
    api_get(emu, &format!("/files/{file_id}/versions"))["entries"]
        .as_array()
        .map_or(0, Vec::len)
}

fn errno(r: std::io::Result<impl Sized>) -> i32 {
    r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
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
    let log = tmp.path().join("requests.log");
    let emu = emu_with(EmulatorConfig {
        request_log: Some(log.clone()),
        ..EmulatorConfig::default()
    })
    .await;
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
        // An empty file is a file too.
        std::fs::File::create(m.path("empty")).expect("create");
        let after = count_requests(&log, "POST", |p| p == "/api/2.0/files/content");
        assert_eq!(after - before, files.len() + 1, "one upload per new file");
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
    })
    .await;
}
