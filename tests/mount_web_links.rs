//! Real mounts: Box's web links (bookmarks) as read-only `NAME.url` files. Listed with their
//! shortcut's size, read as an Internet shortcut, their URL in `user.box.url` (and changed
//! through it), refused for writing, renamed and moved through `/web_links`, removed to the
//! trash, kept current through events, and kept in the metadata store across a remount.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::mount::{eventually, TestMount};
use common::TestEmu;
use reqwest::Method;
use serde_json::{json, Value};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

fn rt() -> tokio::runtime::Handle {
    tokio::runtime::Handle::current()
}

fn api(emu: &TestEmu, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut rb = emu.req(method.clone(), &emu.api(path));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let (status, body) = rt().block_on(TestEmu::send(rb));
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}

fn create_link(emu: &TestEmu, parent: &str, name: &str, url: &str) -> String {
    let body = json!({"parent": {"id": parent}, "name": name, "url": url});
    let link = api(emu, Method::POST, "/web_links", Some(body));
    link["id"].as_str().expect("web link id").to_string()
}

fn shortcut(url: &str) -> String {
    format!("[InternetShortcut]\r\nURL={url}\r\n")
}

fn getfattr(path: &Path, name: &str) -> Result<String, String> {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(path)
        .output()
        .expect("getfattr runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn setfattr(path: &Path, name: &str, value: &str) -> Result<(), String> {
    let out = Command::new("setfattr")
        .args(["-n", name, "-v", value])
        .arg(path)
        .output()
        .expect("setfattr runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn web_links_are_read_only_shortcut_files() {
    let emu = TestEmu::start().await;
    let docs = emu.mkdir("0", "Docs").await;
    let archive = emu.mkdir("0", "Archive").await;
    blocking(move || {
        let manual = create_link(&emu, &docs, "Manual", "https://example.com/manual");
        let m = TestMount::start(&emu, &[]);
        let docs_dir = m.path("Docs");
        assert_eq!(names(&docs_dir), ["Manual.url"]);

        // A regular file of the shortcut's size, read-only, that reads as the shortcut.
        let path = docs_dir.join("Manual.url");
        let meta = fs::metadata(&path).unwrap();
        let expected = shortcut("https://example.com/manual");
        assert!(meta.is_file());
        assert_eq!(meta.len(), expected.len() as u64);
        assert_eq!(meta.permissions().mode() & 0o777, 0o444);
        assert_eq!(fs::read_to_string(&path).unwrap(), expected);

        // The URL and the facts as attributes.
        assert_eq!(
            getfattr(&path, "user.box.url").unwrap(),
            "https://example.com/manual"
        );
        assert_eq!(getfattr(&path, "user.box.type").unwrap(), "web_link");
        assert_eq!(getfattr(&path, "user.box.id").unwrap(), manual);
        let listed = Command::new("getfattr")
            .args(["-d", "-m", "user.box."])
            .arg(&path)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.contains("user.box.url="), "{listed}");
        assert!(!listed.contains("user.box.sha1"), "{listed}");

        // Never written: the content is made from the URL.
        let err = fs::OpenOptions::new().write(true).open(&path).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
        let err = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");

        // `user.box.url` re-points it: Box has the new address, the file reads it at once.
        setfattr(&path, "user.box.url", "https://example.org/v2").unwrap();
        let on_box = api(&emu, Method::GET, &format!("/web_links/{manual}"), None);
        assert_eq!(on_box["url"], "https://example.org/v2");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            shortcut("https://example.org/v2")
        );
        let err = setfattr(&path, "user.box.url", "ftp://example.org/").unwrap_err();
        assert!(err.contains("Invalid argument"), "{err}");
        let err = setfattr(&docs_dir, "user.box.url", "https://example.org/").unwrap_err();
        assert!(err.contains("Operation not permitted"), "{err}");

        // Renamed and moved: Box's name loses the `.url`.
        fs::rename(&path, docs_dir.join("Handbook.url")).unwrap();
        let on_box = api(&emu, Method::GET, &format!("/web_links/{manual}"), None);
        assert_eq!(on_box["name"], "Handbook");
        fs::rename(
            docs_dir.join("Handbook.url"),
            m.path("Archive/Handbook.url"),
        )
        .unwrap();
        let on_box = api(&emu, Method::GET, &format!("/web_links/{manual}"), None);
        assert_eq!(on_box["parent"]["id"], archive);
        assert_eq!(names(&m.path("Archive")), ["Handbook.url"]);
        // Only under a name that ends in .url.
        let err =
            fs::rename(m.path("Archive/Handbook.url"), m.path("Archive/Handbook")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");

        // Removed to Box's trash.
        fs::remove_file(m.path("Archive/Handbook.url")).unwrap();
        let trashed = api(
            &emu,
            Method::GET,
            &format!("/web_links/{manual}/trash"),
            None,
        );
        assert_eq!(trashed["item_status"], "trashed");
        assert!(names(&m.path("Archive")).is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn web_links_follow_events_and_survive_a_remount() {
    let emu = TestEmu::start().await;
    let docs = emu.mkdir("0", "Docs").await;
    // A file holding the name a web link would show with keeps it.
    emu.upload_file(&docs, "Clash.url", b"a file").await;
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().join("c").to_string_lossy().into_owned();
    blocking(move || {
        let link = create_link(&emu, &docs, "Clash", "https://example.com/clash");
        let mut m = TestMount::start(&emu, &["--cache-dir", &cache_arg]);
        let docs_dir = m.path("Docs");
        assert_eq!(names(&docs_dir), ["Clash.url"]);
        assert_eq!(fs::read(docs_dir.join("Clash.url")).unwrap(), b"a file");

        // Made, renamed, re-pointed and removed elsewhere: the mount follows.
        let made = create_link(&emu, &docs, "News", "https://news.example.com/");
        let shows = |want: &[&str]| {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            eventually(Duration::from_secs(10), || names(&docs_dir) == want).is_some()
        };
        assert!(shows(&["Clash.url", "News.url"]), "{:?}", names(&docs_dir));
        api(
            &emu,
            Method::PUT,
            &format!("/web_links/{made}"),
            Some(json!({"name": "Daily", "url": "https://daily.example.com/"})),
        );
        assert!(shows(&["Clash.url", "Daily.url"]), "{:?}", names(&docs_dir));
        assert!(eventually(Duration::from_secs(10), || {
            fs::read_to_string(docs_dir.join("Daily.url")).ok()
                == Some(shortcut("https://daily.example.com/"))
        })
        .is_some());
        api(&emu, Method::DELETE, &format!("/web_links/{link}"), None);
        assert_eq!(
            names(&docs_dir),
            ["Clash.url", "Daily.url"],
            "the file stays"
        );

        // Kept in the store: after a remount the link lists, reads and has its URL
        // without asking Box for the folder again.
        m.unmount();
        let m = TestMount::start(&emu, &["--cache-dir", &cache_arg]);
        let docs_dir = m.path("Docs");
        assert_eq!(names(&docs_dir), ["Clash.url", "Daily.url"]);
        assert_eq!(
            fs::read_to_string(docs_dir.join("Daily.url")).unwrap(),
            shortcut("https://daily.example.com/")
        );
        assert_eq!(
            getfattr(&docs_dir.join("Daily.url"), "user.box.url").unwrap(),
            "https://daily.example.com/"
        );
    })
    .await;
}
