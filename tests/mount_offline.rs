//! Working offline through real mounts: the emulator (Box) is stopped under a running mount,
//! which keeps listing, stat-ing and reading what it holds, refuses at once what needs Box
//! (content not cached, mkdir, rename, unlink) with ENETUNREACH, and accepts writes; the
//! emulator restarted from its `--data` directory brings the mount back online by itself,
//! and the queued writes arrive, one as a conflict copy because Box changed the file
//! meanwhile. A mount started while Box is down serves from its metadata store, a pinned
//! folder whole.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use box_emulator::{EmulatorConfig, Knobs};
use common::mount::{boxfs_cli, eventually, status_json, TestMount};
use common::TestEmu;

/// Box's `--data` directory and the address it listens on: the same Box after a restart.
struct Place {
    data: tempfile::TempDir,
    listen: std::net::SocketAddr,
}

impl Place {
    fn new() -> Place {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        Place {
            data: tempfile::tempdir().unwrap(),
            listen: port,
        }
    }

    async fn start(&self) -> TestEmu {
        TestEmu::start_with(EmulatorConfig {
            listen: self.listen,
            data_dir: Some(self.data.path().to_path_buf()),
            ..EmulatorConfig::default()
        })
        .await
    }
}

fn rt() -> tokio::runtime::Handle {
    tokio::runtime::Handle::current()
}

fn errno_of<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// The names in folder `id` on Box, with their content.
fn box_files(emu: &TestEmu, id: &str) -> Vec<(String, Vec<u8>)> {
    let (status, listing) = rt().block_on(emu.get(&format!("/folders/{id}/items?limit=1000")));
    assert!(status.is_success(), "{status} {listing}");
    let mut out = Vec::new();
    for e in listing["entries"].as_array().unwrap() {
        if e["type"] != "file" {
            continue;
        }
        let file_id = e["id"].as_str().unwrap();
        let content = rt().block_on(async {
            let resp = emu
                .req(
                    reqwest::Method::GET,
                    &emu.api(&format!("/files/{file_id}/content")),
                )
                .send()
                .await
                .expect("download");
            let url = resp.headers()["location"].to_str().unwrap().to_string();
            emu.http
                .get(url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec()
        });
        out.push((e["name"].as_str().unwrap().to_string(), content));
    }
    out.sort();
    out
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a mount that went offline does, and what arrives once Box is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_reads_writes_and_refusals_then_queued_work_arrives() {
    let place = Place::new();
    let mut emu = place.start().await;
    let docs = emu.mkdir("0", "Docs").await;
    emu.mkdir(&docs, "sub").await;
    emu.upload_file(&docs, "cached.txt", b"cached content")
        .await;
    emu.upload_file(&docs, "uncached.txt", b"never read").await;
    emu.upload_file(&docs, "edited.txt", b"before").await;
    let conflicted = emu
        .upload_file(&docs, "conflicted.txt", b"ours before")
        .await;
    let conflicted = conflicted["id"].as_str().unwrap().to_string();
    let token = emu.token.clone();
    let base = emu.base.clone();

    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap().to_string();
    let m = tokio::task::spawn_blocking(move || {
        let m = TestMount::start_with_base(&base, &token, &["--cache-dir", &cache_arg]);
        for name in ["cached.txt", "edited.txt", "conflicted.txt"] {
            read(m.path(&format!("Docs/{name}")));
        }
        assert!(std::fs::metadata(m.path("Docs/sub")).unwrap().is_dir());
        m
    })
    .await
    .unwrap();

    // Box changes conflicted.txt, and the mount does not hear of it before Box goes away.
    emu.emulator().set_knobs(Knobs {
        event_delay_ms: 600_000,
        ..emu.emulator().knobs()
    });
    let form = reqwest::multipart::Form::new()
        .text("attributes", "{}")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"theirs, changed on Box".to_vec()).file_name("x"),
        );
    let (status, body) = TestEmu::send(
        emu.req(
            reqwest::Method::POST,
            &emu.upload(&format!("/files/{conflicted}/content")),
        )
        .multipart(form),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    emu.stop().await;

    let m = tokio::task::spawn_blocking(move || {
        // Listings, stat and attributes from what the mount holds.
        let names: Vec<String> = std::fs::read_dir(m.path("Docs"))
            .expect("the folder lists offline")
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        for name in ["cached.txt", "uncached.txt", "edited.txt", "sub"] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
        assert_eq!(
            std::fs::metadata(m.path("Docs/uncached.txt"))
                .unwrap()
                .size(),
            10
        );
        assert_eq!(read(m.path("Docs/cached.txt")), b"cached content");
        let id = xattr(&m.path("Docs/cached.txt"), "user.box.id");
        assert!(id.is_ok(), "user.box.id offline: {id:?}");
        // What the store keeps answers; what only Box knows says it cannot be reached.
        for kept in ["user.box.etag", "user.box.sha1", "user.box.version"] {
            let v = xattr(&m.path("Docs/cached.txt"), kept);
            assert!(
                v.as_ref().is_ok_and(|v| !v.is_empty()),
                "{kept} offline: {v:?}"
            );
        }
        assert_eq!(
            xattr(&m.path("Docs/cached.txt"), "user.box.owner"),
            Err(libc::ENETUNREACH)
        );
        // `df` answers too.
        let statfs = std::process::Command::new("df")
            .arg(&m.root)
            .output()
            .unwrap();
        assert!(statfs.status.success(), "df offline: {statfs:?}");

        // What needs Box fails at once, and says why.
        let started = Instant::now();
        let uncached = std::fs::read(m.path("Docs/uncached.txt"));
        assert_eq!(errno_of(uncached), Some(libc::ENETUNREACH));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "an uncached read took {:?}",
            started.elapsed()
        );
        let renamed = std::fs::rename(m.path("Docs/cached.txt"), m.path("Docs/moved.txt"));
        assert_eq!(errno_of(renamed), Some(libc::ENETUNREACH));
        assert_eq!(
            errno_of(std::fs::create_dir(m.path("Docs/newdir"))),
            Some(libc::ENETUNREACH)
        );
        assert_eq!(
            errno_of(std::fs::remove_file(m.path("Docs/uncached.txt"))),
            Some(libc::ENETUNREACH)
        );
        assert!(m.path("Docs/cached.txt").exists(), "nothing was lost");

        // Writes are accepted: staged, and queued for Box.
        std::fs::write(m.path("Docs/new.txt"), b"written offline").expect("a new file");
        std::fs::write(m.path("Docs/edited.txt"), b"after, offline").expect("a change");
        std::fs::write(m.path("Docs/conflicted.txt"), b"ours, offline").expect("a change");
        assert_eq!(read(m.path("Docs/new.txt")), b"written offline");

        let status = status_json(&m.root);
        assert_eq!(status["connection"]["online"], false, "{status}");
        assert!(status["connection"]["offline_since"].is_u64(), "{status}");
        assert!(
            status["uploads"]["pending_files"].as_u64().unwrap() >= 3,
            "{status}"
        );
        let text = String::from_utf8_lossy(&boxfs_cli(&["status"], &[&m.root]).stdout).into_owned();
        assert!(text.contains("offline since"), "{text}");
        m
    })
    .await
    .unwrap();

    // The same Box comes back; the mount finds it, and the queued writes arrive.
    let emu = place.start().await;
    let expected = |files: &[(String, Vec<u8>)]| {
        let get = |n: &str| {
            files
                .iter()
                .find(|(name, _)| name == n)
                .map(|f| f.1.clone())
        };
        get("new.txt").as_deref() == Some(&b"written offline"[..])
            && get("edited.txt").as_deref() == Some(&b"after, offline"[..])
            && get("conflicted.txt").as_deref() == Some(&b"theirs, changed on Box"[..])
            && files
                .iter()
                .any(|(n, c)| n.starts_with("conflicted (conflict") && c == b"ours, offline")
    };
    let docs2 = docs.clone();
    tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let arrived = eventually(Duration::from_secs(40), || {
            seen = box_files(&emu, &docs2);
            expected(&seen)
        });
        let names: Vec<&String> = seen.iter().map(|f| &f.0).collect();
        assert!(
            arrived.is_some(),
            "Box holds {names:?}; status: {}; log:\n{}",
            status_json(&m.root),
            m.log()
        );
        let online = eventually(Duration::from_secs(10), || {
            status_json(&m.root)["connection"]["online"] == true
        });
        assert!(online.is_some(), "the mount did not come back online");
        // Online again, what needs Box works again.
        assert_eq!(read(m.path("Docs/uncached.txt")), b"never read");
        std::fs::create_dir(m.path("Docs/newdir")).expect("mkdir online");
        drop(m);
    })
    .await
    .unwrap();
}

/// A mount started while Box cannot be reached serves from its store; a pinned folder is
/// whole; once Box is back, what was written arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_started_while_box_is_down_serves_from_the_store() {
    let place = Place::new();
    let mut emu = place.start().await;
    let docs = emu.mkdir("0", "Docs").await;
    let kept = emu.mkdir("0", "Kept").await;
    emu.upload_file(&docs, "read.txt", b"read before").await;
    emu.upload_file(&docs, "unread.txt", b"not read").await;
    emu.upload_file(&kept, "one.txt", b"pinned one").await;
    emu.upload_file(&kept, "two.txt", b"pinned two").await;
    let token = emu.token.clone();
    let base = emu.base.clone();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap().to_string();

    let (token, base, cache_arg, root_mtime) = tokio::task::spawn_blocking(move || {
        let mut m = TestMount::start_with_base(&base, &token, &["--cache-dir", &cache_arg]);
        assert_eq!(read(m.path("Docs/read.txt")), b"read before");
        let out = boxfs_cli(&["pin"], &[&m.path("Kept")]);
        assert!(out.status.success(), "{out:?}");
        let pinned = eventually(Duration::from_secs(20), || {
            let o = &status_json(&m.root)["offline"];
            o["files_total"] == 2 && o["files_done"] == 2
        });
        assert!(pinned.is_some(), "the pinned folder was not downloaded");
        let root_mtime = std::fs::metadata(&m.root).unwrap().mtime();
        assert!(m.unmount().success(), "{}", m.log());
        (token, base, cache_arg, root_mtime)
    })
    .await
    .unwrap();
    emu.stop().await;

    let m = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let m = TestMount::start_with_base(&base, &token, &["--cache-dir", &cache_arg]);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "mounting offline took {took:?}"
        );
        let mut names: Vec<String> = std::fs::read_dir(m.path("Docs"))
            .expect("a stored listing")
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["read.txt", "unread.txt"]);
        // The root keeps its own times, from the store.
        assert_eq!(std::fs::metadata(&m.root).unwrap().mtime(), root_mtime);
        assert_eq!(read(m.path("Docs/read.txt")), b"read before");
        assert_eq!(
            errno_of(std::fs::read(m.path("Docs/unread.txt"))),
            Some(libc::ENETUNREACH)
        );
        // The pinned folder lists and reads whole.
        assert_eq!(read(m.path("Kept/one.txt")), b"pinned one");
        assert_eq!(read(m.path("Kept/two.txt")), b"pinned two");
        std::fs::write(m.path("Docs/offline.txt"), b"made while Box was down").unwrap();
        let status = status_json(&m.root);
        assert_eq!(status["connection"]["online"], false, "{status}");
        m
    })
    .await
    .unwrap();

    let emu = place.start().await;
    tokio::task::spawn_blocking(move || {
        let arrived = eventually(Duration::from_secs(40), || {
            box_files(&emu, &docs)
                .iter()
                .any(|(n, c)| n == "offline.txt" && c == b"made while Box was down")
        });
        assert!(
            arrived.is_some(),
            "the file written offline did not arrive; log:\n{}",
            m.log()
        );
        assert_eq!(read(m.path("Docs/unread.txt")), b"not read");
        drop(m);
    })
    .await
    .unwrap();
}

/// `getxattr(path, name)` as a string, or the errno.
fn xattr(path: &Path, name: &str) -> Result<String, i32> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: valid C strings and a buffer of the length given.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
    }
    Ok(String::from_utf8_lossy(&buf[..len as usize]).into_owned())
}
