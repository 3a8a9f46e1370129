//! Pinning through real mounts and the real command line: `boxfs pin` on a folder downloads
//! every file below it (the emulator's request log shows the downloads) with the progress in
//! `boxfs status`; pinned content stays under a small `--cache-size` while unpinned content
//! is evicted, and `boxfs unpin` lets it go; a pin bigger than the cache's disk (a small
//! tmpfs) is refused with the figures; a file changed on Box while pinned, and one added to
//! a pinned folder, are downloaded without a read; pins and their content survive unmount
//! and mount.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use box_client::upload::UploadOptions;
use box_emulator::EmulatorConfig;
use boxfs::fs::backend::BoxApi;
use common::fs::client_of;
use common::mount::{boxfs_cli, count_requests, eventually, status_json, TestMount};
use common::TestEmu;
use serde_json::Value;

const MIB: usize = 1 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// Waits until every file kept for the pins (`files` of them) is on disk; the status then.
fn until_downloaded(mp: &Path, files: u64) -> Value {
    let mut seen = Value::Null;
    let done = eventually(Duration::from_secs(30), || {
        seen = status_json(mp);
        let o = &seen["offline"];
        o["files_total"] == files
            && o["files_done"] == files
            && o["downloading"].as_array().is_some_and(|d| d.is_empty())
            && o["items"]
                .as_array()
                .is_some_and(|i| i.iter().all(|i| i["walked"] == true))
    });
    assert!(done.is_some(), "not {files} pinned files on disk: {seen}");
    seen
}

/// `getxattr(path, "user.box.offline")`, or the errno.
fn offline(path: &Path) -> Result<String, i32> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: valid C strings and a buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"user.box.offline".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
    }
    Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

/// `setxattr(path, "user.box.offline", value)`, or the errno.
fn set_offline(path: &Path, value: &str) -> Result<(), i32> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings and a value of its own length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            c"user.box.offline".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
    }
    Ok(())
}

fn downloads(log: &Path) -> usize {
    count_requests(log, "GET", |p| {
        p.contains("/content") || p.starts_with("/dl/")
    })
}

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

/// `Docs/` with `a.bin` (2.5 MiB) and `sub/b.txt`, and `other.bin` (`other` MiB) beside it.
/// Returns the ids of `Docs`, `a.bin` and `b.txt`.
async fn tree(emu: &TestEmu, other: usize) -> (String, String, String) {
    let docs = emu.mkdir("0", "Docs").await;
    let sub = emu.mkdir(&docs, "sub").await;
    let a = emu
        .upload_file(&docs, "a.bin", &pattern(5 * MIB / 2, 1))
        .await;
    let b = emu.upload_file(&sub, "b.txt", b"bee").await;
    emu.upload_file("0", "other.bin", &pattern(other * MIB, 2))
        .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    (docs, id(&a), id(&b))
}

/// Requests for the content of file `id` (the download URL's resolution).
fn content_requests(log: &Path, id: &str) -> usize {
    let path = format!("/files/{id}/content");
    count_requests(log, "GET", |p| p.ends_with(&path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_downloads_a_folder_shows_progress_and_survives_a_remount() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let emu = emu_with_log(log.path()).await;
    let (_, a_id, b_id) = tree(&emu, 1).await;
    let e = emu.clone();
    let log = log.path().to_path_buf();
    blocking(move || {
        let cache = tempfile::tempdir().unwrap();
        let cache_arg = cache.path().to_str().unwrap().to_string();
        let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        assert_eq!(offline(&m.path("Docs")), Ok("0".into()));
        std::fs::write(&log, b"").unwrap();

        let out = boxfs_cli(&["pin"], &[&m.path("Docs")]);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("kept offline"));
        let status = until_downloaded(&m.root, 2);
        let o = &status["offline"];
        assert_eq!(o["bytes_done"], (5 * MIB / 2 + 3) as u64);
        assert_eq!(o["items"][0]["path"], "Docs");
        assert_eq!(o["items"][0]["kind"], "folder");
        assert_eq!(o["pinned_bytes"], (5 * MIB / 2 + 3) as u64);
        // Both files came from Box without anyone reading them; nothing else did.
        let fetched = downloads(&log);
        assert_eq!(content_requests(&log, &a_id), 1);
        assert_eq!(content_requests(&log, &b_id), 1);
        let from_dl = count_requests(&log, "GET", |p| p.starts_with("/dl/"));
        assert_eq!(fetched, 2 + from_dl, "content of other files was requested");
        let text = String::from_utf8_lossy(&boxfs_cli(&["status"], &[&m.root]).stdout).into_owned();
        let pinned_line = format!("pinned {}: 2 files", m.path("Docs").display());
        for part in ["offline  1 pinned; 2 of 2 files", pinned_line.as_str()] {
            assert!(text.contains(part), "{part:?} missing in:\n{text}");
        }
        // The attribute, read and written by hand.
        assert_eq!(offline(&m.path("Docs/sub/b.txt")), Ok("1".into()));
        assert_eq!(offline(&m.path("other.bin")), Ok("0".into()));
        assert_eq!(set_offline(&m.path("Docs"), "maybe"), Err(libc::EINVAL));
        // Reading costs no download.
        assert_eq!(std::fs::read(m.path("Docs/sub/b.txt")).unwrap(), b"bee");
        assert_eq!(downloads(&log), fetched);
        m.unmount();

        // Mounted again on the same cache: still pinned, nothing downloaded again.
        std::fs::write(&log, b"").unwrap();
        let m = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        until_downloaded(&m.root, 2);
        assert_eq!(offline(&m.path("Docs/a.bin")), Ok("1".into()));
        assert_eq!(
            std::fs::read(m.path("Docs/a.bin")).unwrap(),
            pattern(5 * MIB / 2, 1)
        );
        assert_eq!(downloads(&log), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_content_stays_under_a_small_cache_size_and_unpin_lets_it_go() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let emu = emu_with_log(log.path()).await;
    tree(&emu, 3).await;
    let e = emu.clone();
    let log = log.path().to_path_buf();
    blocking(move || {
        let m = TestMount::start(&e, &["--cache-size", "1M"]);
        let out = boxfs_cli(&["pin"], &[&m.path("Docs")]);
        assert!(out.status.success(), "{out:?}");
        until_downloaded(&m.root, 2);
        // 3 MiB of unpinned content through a 1 MiB cache: read twice, downloaded twice.
        let other = pattern(3 * MIB, 2);
        std::fs::write(&log, b"").unwrap();
        assert_eq!(std::fs::read(m.path("other.bin")).unwrap(), other);
        let once = downloads(&log);
        assert!(once > 0);
        // The kernel may keep the pages of a closed file: dropped, the read reaches the mount.
        drop_page_cache(&m.path("other.bin"));
        assert_eq!(std::fs::read(m.path("other.bin")).unwrap(), other);
        assert!(
            downloads(&log) > once,
            "other.bin was served from a 1 MiB cache"
        );
        // The pinned file is still there whole.
        let before = downloads(&log);
        drop_page_cache(&m.path("Docs/a.bin"));
        assert_eq!(
            std::fs::read(m.path("Docs/a.bin")).unwrap(),
            pattern(5 * MIB / 2, 1)
        );
        assert_eq!(downloads(&log), before);
        let s = status_json(&m.root);
        assert!(
            s["cache"]["content_bytes"].as_u64().unwrap() <= MIB as u64,
            "{s}"
        );
        assert_eq!(s["offline"]["pinned_bytes"], (5 * MIB / 2 + 3) as u64);

        // Unpinning a file that is pinned only through its folder is refused, clearly.
        let out = boxfs_cli(&["unpin"], &[&m.path("Docs/a.bin")]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("inside a pinned folder"), "{err}");
        // Unpinned: ordinary content under the bound, read from Box again.
        let out = boxfs_cli(&["unpin"], &[&m.path("Docs")]);
        assert!(out.status.success(), "{out:?}");
        let s = status_json(&m.root);
        assert_eq!(s["offline"]["items"].as_array().unwrap().len(), 0, "{s}");
        assert_eq!(s["offline"]["pinned_bytes"], 0);
        assert!(
            s["cache"]["content_bytes"].as_u64().unwrap() <= MIB as u64,
            "{s}"
        );
        assert_eq!(offline(&m.path("Docs/a.bin")), Ok("0".into()));
        let before = downloads(&log);
        drop_page_cache(&m.path("Docs/a.bin"));
        std::fs::read(m.path("Docs/a.bin")).unwrap();
        assert!(downloads(&log) > before);
    })
    .await;
}

/// Asks the kernel to drop the pages it caches of `path` (so that a read reaches the mount).
fn drop_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: posix_fadvise on an open descriptor.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// A tmpfs of `mib` MiB, unmounted when dropped.
struct Tmpfs {
    at: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn new(mib: usize) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("cache");
        std::fs::create_dir(&at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(&at)
            .output()
            .expect("mount runs");
        assert!(out.status.success(), "mount tmpfs: {out:?}");
        Tmpfs { at, _parent: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_bigger_than_the_cache_disk_is_refused_with_the_figures() {
    let emu = Arc::new(TestEmu::start().await);
    let big = emu.mkdir("0", "Big").await;
    emu.upload_file(&big, "huge.bin", &pattern(20 * MIB, 3))
        .await;
    emu.upload_file("0", "small.bin", &pattern(MIB, 4)).await;
    let e = emu.clone();
    blocking(move || {
        let disk = Tmpfs::new(16);
        let cache_arg = disk.at.to_str().unwrap().to_string();
        let m = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        let out = boxfs_cli(&["pin"], &[&m.path("Big")]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "cannot pin {}: it needs 20 MiB",
                m.path("Big").display()
            )) && err.contains("available"),
            "{err}"
        );
        assert_eq!(set_offline(&m.path("Big"), "1"), Err(libc::ENOSPC));
        assert_eq!(offline(&m.path("Big")), Ok("0".into()));
        let s = status_json(&m.root);
        assert_eq!(s["offline"]["refused"]["needed"], (20 * MIB) as u64, "{s}");
        // What fits is pinned.
        let out = boxfs_cli(&["pin"], &[&m.path("small.bin")]);
        assert!(out.status.success(), "{out:?}");
        until_downloaded(&m.root, 1);

        // A path outside any mount, and one that does not exist: readable errors.
        let elsewhere = tempfile::tempdir().unwrap();
        let out = boxfs_cli(&["pin"], &[elsewhere.path(), &m.path("nothing")]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not inside a boxfs mount"), "{err}");
        assert!(err.contains("No such file or directory"), "{err}");
        drop(m);
        drop(disk);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_changed_or_added_on_box_while_pinned_are_downloaded() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let emu = emu_with_log(log.path()).await;
    let (docs, a_id, _) = tree(&emu, 1).await;
    let e = emu.clone();
    let log_path = log.path().to_path_buf();
    let m = blocking(move || {
        let m = TestMount::start(&e, &[]);
        assert!(boxfs_cli(&["pin"], &[&m.path("Docs")]).status.success());
        until_downloaded(&m.root, 2);
        m
    })
    .await;
    std::fs::write(&log_path, b"").unwrap();
    let new_a = pattern(3 * MIB / 2, 7);
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), &new_a).unwrap();
    let other: Arc<dyn BoxApi> = Arc::new(client_of(&emu));
    other
        .upload_new_version(&a_id, src.path().to_path_buf(), &UploadOptions::default())
        .await
        .unwrap();
    let c = emu.upload_file(&docs, "c.txt", b"sea").await;
    let c_id = c["id"].as_str().unwrap().to_string();
    blocking(move || {
        // Both downloaded by themselves: nobody reads them.
        let want = (3 * MIB / 2 + 3 + 3) as u64;
        let mut seen = Value::Null;
        let fetched = eventually(Duration::from_secs(30), || {
            seen = status_json(&m.root);
            seen["offline"]["bytes_done"] == want && seen["offline"]["files_done"] == 3
        });
        assert!(fetched.is_some(), "the changes were not fetched: {seen}");
        assert_eq!(content_requests(&log_path, &a_id), 1);
        assert_eq!(content_requests(&log_path, &c_id), 1);
        let downloads_now = downloads(&log_path);
        assert_eq!(std::fs::read(m.path("Docs/a.bin")).unwrap(), new_a);
        assert_eq!(std::fs::read(m.path("Docs/c.txt")).unwrap(), b"sea");
        assert_eq!(downloads(&log_path), downloads_now);
        drop(m);
    })
    .await;
}
