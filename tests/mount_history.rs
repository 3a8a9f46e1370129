//! Real mounts: Box's past as folders. `.trash` at the root (a link to the trash's folder:
//! `ls -a` shows it, `find` does not walk into it): trashed items under unique names with their original path, `mv` out restores (a
//! file and a folder, to another folder and name, also when the name is taken where the item
//! was; a name taken at the target is EEXIST), `rm`, `rmdir` and `rm -r` purge, and the listing follows deletions made through the mount and through the API.
//! Web links in the trash show as their `NAME.url` shortcuts, and come back as such.
//! `.versions` in every folder: a file's earlier versions listed (no request per file for
//! `ls .versions`), read byte for byte, their sizes and modes, writes refused, `cp` of one
//! over the file and promotion with `setfattr -n user.box.version` making new versions.
//! Each change is checked on the emulator's side through the API.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use box_emulator::EmulatorConfig;
use common::mount::{count_requests, eventually, TestMount};
use common::TestEmu;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Runs blocking filesystem work off the runtime that serves the emulator.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

fn api(emu: &TestEmu, method: Method, path: &str) -> (StatusCode, Value) {
    let rt = tokio::runtime::Handle::current();
    rt.block_on(TestEmu::send(emu.req(method, &emu.api(path))))
}

fn api_get(emu: &TestEmu, path: &str) -> Value {
    let (status, body) = api(emu, Method::GET, path);
    assert!(status.is_success(), "GET {path}: {status} {body}");
    body
}

fn upload(emu: &TestEmu, parent: &str, name: &str, content: &[u8]) -> String {
    let rt = tokio::runtime::Handle::current();
    let file = rt.block_on(emu.upload_file(parent, name, content));
    file["id"].as_str().expect("file id").to_string()
}

/// A new version of file `id` uploaded through the API.
fn upload_version(emu: &TestEmu, id: &str, content: &[u8]) {
    let rt = tokio::runtime::Handle::current();
    let form = reqwest::multipart::Form::new()
        .text("attributes", json!({}).to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(content.to_vec()).file_name("v"),
        );
    let (status, body) = rt.block_on(TestEmu::send(
        emu.req(Method::POST, &emu.upload(&format!("/files/{id}/content")))
            .multipart(form),
    ));
    assert_eq!(status, StatusCode::OK, "new version of {id}: {body}");
}

fn mkdir(emu: &TestEmu, parent: &str, name: &str) -> String {
    tokio::runtime::Handle::current().block_on(emu.mkdir(parent, name))
}

/// The id of `name` in folder `folder_id` according to Box, if any.
fn child_id(emu: &TestEmu, folder_id: &str, name: &str) -> Option<String> {
    let listing = api_get(emu, &format!("/folders/{folder_id}/items?limit=1000"));
    listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["id"].as_str().expect("id").to_string())
}

fn errno_of(r: std::io::Result<impl Sized>) -> i32 {
    r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("ls {}: {e}", dir.display()))
        .map(|d| d.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// What `ls -a` prints for `dir`.
/// The paths `find DIR` prints.
fn find(dir: &Path) -> Vec<String> {
    let out = Command::new("find").arg(dir).output().expect("find");
    assert!(out.status.success(), "find: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn ls_a(dir: &Path) -> Vec<String> {
    let out = Command::new("ls")
        .arg("-a")
        .arg(dir)
        .output()
        .expect("ls -a");
    assert!(out.status.success(), "ls -a: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL")
}

fn getx(path: &Path, name: &str) -> Result<String, i32> {
    let mut buf = vec![0u8; 4096];
    let name = CString::new(name).expect("no NUL");
    // SAFETY: valid NUL-terminated strings and a buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            cpath(path).as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    buf.truncate(n as usize);
    Ok(String::from_utf8(buf).expect("UTF-8 value"))
}

fn setx(path: &Path, name: &str, value: &str) -> Result<(), i32> {
    let name = CString::new(name).expect("no NUL");
    // SAFETY: valid NUL-terminated strings and a value of the length given.
    let r = unsafe {
        libc::setxattr(
            cpath(path).as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trash_lists_restores_and_purges() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let docs = mkdir(&e, "0", "docs");
        let in_docs = upload(&e, &docs, "report.txt", b"from docs");
        let in_root = upload(&e, "0", "report.txt", b"from the root");
        let old = mkdir(&e, "0", "old");
        upload(&e, &old, "inner.txt", b"kept inside");
        upload(&e, "0", "taken.txt", b"in the way");
        let m = TestMount::start(&e, &[]);
        let trash = m.path(".trash");

        // Shown by `ls -a` as a link to the trash's folder, which `find` does not walk into
        // unless it is named.
        assert!(ls_a(&m.root).contains(&".trash".to_string()));
        assert!(!ls_a(&m.root).contains(&".box-trash".to_string()));
        assert!(std::fs::symlink_metadata(&trash)
            .expect("lstat .trash")
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_link(&trash).expect("readlink"),
            Path::new(".box-trash")
        );
        assert!(std::fs::metadata(&trash).expect("stat .trash").is_dir());
        assert!(names(&trash).is_empty());
        assert_eq!(
            errno_of(std::fs::remove_file(&trash)),
            libc::EPERM,
            "rm .trash is refused"
        );

        // Two files of one name: both shown, each with its Box id.
        std::fs::remove_file(m.path("docs/report.txt")).expect("rm docs/report.txt");
        std::fs::remove_file(m.path("report.txt")).expect("rm report.txt");
        let (docs_name, root_name) = (
            format!("report (box {in_docs}).txt"),
            format!("report (box {in_root}).txt"),
        );
        assert_eq!(names(&trash), [docs_name.clone(), root_name.clone()]);
        let found = find(&m.root);
        assert!(found.iter().any(|p| p.ends_with("/.trash")), "{found:?}");
        assert!(
            !found.iter().any(|p| p.contains("report (box")),
            "find walked into the trash: {found:?}"
        );
        let named = find(&m.path(".trash/"));
        assert!(
            named.iter().any(|p| p.ends_with(&root_name)),
            "find .trash/ walks it: {named:?}"
        );
        assert_eq!(
            getx(&trash.join(&docs_name), "user.box.original_path").as_deref(),
            Ok("/docs/report.txt")
        );
        assert_eq!(
            getx(&trash.join(&root_name), "user.box.original_path").as_deref(),
            Ok("/report.txt")
        );
        assert_eq!(
            getx(&trash.join(&docs_name), "user.box.id").as_deref(),
            Ok(in_docs.as_str())
        );
        let meta = std::fs::metadata(trash.join(&docs_name)).expect("stat trashed file");
        assert_eq!(meta.len(), 9);
        assert!(meta.is_file());

        // A folder deleted through the API shows up (its event, or the listing's TTL).
        let (status, _) = api(
            &e,
            Method::DELETE,
            &format!("/folders/{old}?recursive=true"),
        );
        assert!(status.is_success());
        assert!(
            eventually(Duration::from_secs(20), || names(&trash)
                .contains(&"old".into()))
            .is_some(),
            "the folder deleted through the API reached .trash: {:?}",
            names(&trash)
        );
        assert!(names(&trash.join("old")).is_empty(), "Box lists no content");

        // mv restores: to another folder and name (Box puts it back where it was; the
        // mount then moves it), content and Box id kept.
        std::fs::rename(trash.join(&docs_name), m.path("restored.txt")).expect("mv restore");
        assert_eq!(
            std::fs::read(m.path("restored.txt")).expect("cat"),
            b"from docs"
        );
        assert_eq!(child_id(&e, "0", "restored.txt"), Some(in_docs.clone()));
        assert_eq!(child_id(&e, &docs, "report.txt"), None);
        // Its namesake holds the name alone now; the tagged name still finds it.
        assert!(names(&trash).contains(&"report.txt".to_string()));
        assert!(std::fs::metadata(trash.join(&root_name)).is_ok());

        // A folder, with all it held.
        std::fs::rename(trash.join("old"), m.path("docs/again")).expect("mv folder");
        assert_eq!(names(&m.path("docs/again")), ["inner.txt"]);
        assert_eq!(child_id(&e, &docs, "again"), Some(old.clone()));
        assert_eq!(
            std::fs::read(m.path("docs/again/inner.txt")).expect("cat"),
            b"kept inside"
        );

        // The name taken where the file was deleted from, free where it goes: Box would
        // refuse to put it back there, so it comes back under another name and then moves.
        let clash = upload(&e, &docs, "clash.txt", b"the old one");
        assert!(eventually(Duration::from_secs(20), || m
            .path("docs/clash.txt")
            .exists())
        .is_some());
        std::fs::remove_file(m.path("docs/clash.txt")).expect("rm clash.txt");
        let newer = upload(&e, &docs, "clash.txt", b"the new one");
        std::fs::rename(trash.join("clash.txt"), m.path("clash.txt")).expect("mv clash.txt");
        assert_eq!(
            std::fs::read(m.path("clash.txt")).expect("cat"),
            b"the old one"
        );
        assert_eq!(child_id(&e, "0", "clash.txt"), Some(clash));
        assert_eq!(child_id(&e, &docs, "clash.txt"), Some(newer));

        // Never over an existing name; never into a folder that is not there.
        assert_eq!(
            errno_of(std::fs::rename(
                trash.join("report.txt"),
                m.path("taken.txt")
            )),
            libc::EEXIST
        );
        assert_eq!(
            errno_of(std::fs::rename(
                trash.join("report.txt"),
                m.path("nowhere/report.txt")
            )),
            libc::ENOENT
        );
        assert_eq!(
            errno_of(std::fs::rename(trash.join("nothing.txt"), m.path("x.txt"))),
            libc::ENOENT
        );
        // Nothing is made in the trash.
        assert_ne!(errno_of(std::fs::write(trash.join("new.txt"), b"x")), 0);
        assert_ne!(errno_of(std::fs::create_dir(trash.join("dir"))), 0);

        // rm purges a file, rmdir (and rm -r) a folder whatever it holds.
        std::fs::remove_file(trash.join("report.txt")).expect("rm purges");
        assert!(!names(&trash).contains(&"report.txt".to_string()));
        let (status, _) = api(&e, Method::GET, &format!("/files/{in_root}/trash"));
        assert_eq!(status, StatusCode::NOT_FOUND, "purged for good");
        let tmp = mkdir(&e, "0", "tmp");
        upload(&e, &tmp, "a.txt", b"a");
        let (status, _) = api(
            &e,
            Method::DELETE,
            &format!("/folders/{tmp}?recursive=true"),
        );
        assert!(status.is_success());
        assert!(eventually(Duration::from_secs(20), || names(&trash)
            .contains(&"tmp".into()))
        .is_some());
        let rm = Command::new("rm")
            .arg("-r")
            .arg(trash.join("tmp"))
            .status()
            .expect("rm -r");
        assert!(rm.success());
        let (status, _) = api(&e, Method::GET, &format!("/folders/{tmp}/trash"));
        assert_eq!(status, StatusCode::NOT_FOUND, "rm -r purged it");
        let scratch = mkdir(&e, "0", "scratch");
        upload(&e, &scratch, "b.txt", b"b");
        let (status, _) = api(
            &e,
            Method::DELETE,
            &format!("/folders/{scratch}?recursive=true"),
        );
        assert!(status.is_success());
        assert!(eventually(Duration::from_secs(20), || names(&trash)
            .contains(&"scratch".into()))
        .is_some());
        std::fs::remove_dir(trash.join("scratch")).expect("rmdir purges");
        let (status, _) = api(&e, Method::GET, &format!("/folders/{scratch}/trash"));
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!names(&trash).contains(&"scratch".to_string()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_links_in_the_trash_show_as_shortcuts() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let docs = mkdir(&e, "0", "docs");
        let rt = tokio::runtime::Handle::current();
        let url = "https://example.com/a";
        let (status, link) = rt.block_on(e.post_json(
            "/web_links",
            json!({"parent": {"id": "0"}, "name": "site", "url": url}),
        ));
        assert!(status.is_success(), "{link}");
        let id = link["id"].as_str().expect("web link id").to_string();
        let m = TestMount::start(&e, &[]);
        let trash = m.path(".trash");

        std::fs::remove_file(m.path("site.url")).expect("rm site.url");
        assert_eq!(names(&trash), ["site.url"]);
        let shortcut = format!("[InternetShortcut]\r\nURL={url}\r\n");
        let meta = std::fs::metadata(trash.join("site.url")).expect("stat");
        assert_eq!(meta.len(), shortcut.len() as u64);
        assert_eq!(
            getx(&trash.join("site.url"), "user.box.type").as_deref(),
            Ok("web_link")
        );
        assert_eq!(
            getx(&trash.join("site.url"), "user.box.original_path").as_deref(),
            Ok("/site.url")
        );
        // Restored under a name that shows it as a shortcut, into another folder.
        assert_eq!(
            errno_of(std::fs::rename(trash.join("site.url"), m.path("docs/site"))),
            libc::EINVAL
        );
        std::fs::rename(trash.join("site.url"), m.path("docs/moved.url")).expect("mv");
        assert_eq!(
            std::fs::read_to_string(m.path("docs/moved.url")).expect("cat"),
            shortcut
        );
        let on_box = api_get(&e, &format!("/web_links/{id}"));
        assert_eq!(on_box["name"], "moved");
        assert_eq!(on_box["parent"]["id"], docs.as_str());
        // And purged, by rm only.
        std::fs::remove_file(m.path("docs/moved.url")).expect("rm moved.url");
        assert_eq!(
            errno_of(std::fs::remove_dir(trash.join("moved.url"))),
            libc::ENOTDIR
        );
        std::fs::remove_file(trash.join("moved.url")).expect("rm purges");
        let (status, _) = api(&e, Method::GET, &format!("/web_links/{id}/trash"));
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trash_follows_deletions_at_once() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        upload(&e, "0", "first.txt", b"1");
        let second = upload(&e, "0", "second.txt", b"2");
        let m = TestMount::start(&e, &[]);
        let trash = m.path(".trash");
        // Listed (and cached by the kernel and by the mount) while empty.
        assert!(names(&trash).is_empty());
        assert_eq!(
            errno_of(std::fs::metadata(trash.join("first.txt"))),
            libc::ENOENT
        );
        // A deletion elsewhere in the mount shows at once.
        std::fs::remove_file(m.path("first.txt")).expect("rm");
        assert_eq!(names(&trash), ["first.txt"]);
        assert!(std::fs::metadata(trash.join("first.txt")).is_ok());
        // A deletion through the API shows once Box's event arrives.
        let (status, _) = api(&e, Method::DELETE, &format!("/files/{second}"));
        assert!(status.is_success());
        let took = eventually(Duration::from_secs(20), || {
            names(&trash) == ["first.txt", "second.txt"]
        });
        assert!(took.is_some(), "{:?}", names(&trash));
        // And a restore through the API takes it out again.
        let rt = tokio::runtime::Handle::current();
        let (status, body) = rt.block_on(e.post_json(&format!("/files/{second}"), json!({})));
        assert!(status.is_success(), "{body}");
        let took = eventually(Duration::from_secs(20), || names(&trash) == ["first.txt"]);
        assert!(took.is_some(), "{:?}", names(&trash));
    })
    .await;
}

/// The one earlier version in `dir` whose name starts with `prefix`.
fn version_path(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<String> = names(dir)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{prefix} in {:?}", names(dir));
    dir.join(&found[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_versions_read_copy_back_and_promote() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("requests.jsonl");
    let emu = Arc::new(
        TestEmu::start_with(EmulatorConfig {
            request_log: Some(log.clone()),
            ..EmulatorConfig::default()
        })
        .await,
    );
    let e = emu.clone();
    blocking(move || {
        let docs = mkdir(&e, "0", "docs");
        let id = upload(&e, &docs, "notes.txt", b"one");
        upload_version(&e, &id, b"two two");
        upload_version(&e, &id, b"three three three");
        for n in 0..3 {
            upload(&e, &docs, &format!("other{n}.md"), b"x");
        }
        let m = TestMount::start(&e, &[]);
        let versions = m.path("docs/.versions");

        assert!(!ls_a(&m.path("docs")).contains(&".versions".to_string()));
        let before = count_requests(&log, "GET", |p| p.ends_with("/versions"));
        assert_eq!(
            names(&versions),
            ["notes.txt", "other0.md", "other1.md", "other2.md"]
        );
        assert_eq!(
            count_requests(&log, "GET", |p| p.ends_with("/versions")),
            before,
            "ls .versions asks nothing per file"
        );
        let of_notes = versions.join("notes.txt");
        assert!(std::fs::metadata(&of_notes).expect("stat").is_dir());
        let listed = names(&of_notes);
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed
            .iter()
            .all(|n| n.ends_with(".txt") && !n.contains(':')));
        assert_eq!(
            count_requests(&log, "GET", |p| p.ends_with("/versions")),
            before + 1,
            "one request for the one file listed"
        );

        let v1 = version_path(&of_notes, "v1 ");
        let v2 = version_path(&of_notes, "v2 ");
        assert_eq!(std::fs::read(&v1).expect("cat v1"), b"one");
        assert_eq!(std::fs::read(&v2).expect("cat v2"), b"two two");
        let meta = std::fs::metadata(&v2).expect("stat v2");
        assert_eq!(meta.len(), 7);
        assert_eq!(meta.mode() & 0o777, 0o444);
        assert!(meta.mtime() > 0);
        let out = dir.path().join("v1.txt");
        let cp = Command::new("cp").arg(&v1).arg(&out).status().expect("cp");
        assert!(cp.success());
        assert_eq!(std::fs::read(&out).expect("copy"), b"one");

        // Read-only: no writes, no new names, no removals.
        assert_ne!(errno_of(std::fs::write(&v1, b"changed")), 0);
        assert_ne!(errno_of(std::fs::write(of_notes.join("new.txt"), b"x")), 0);
        assert_ne!(errno_of(std::fs::remove_file(&v1)), 0);
        let touch = Command::new("touch").arg(&v1).output().expect("touch");
        assert!(!touch.status.success(), "touch of a version: {touch:?}");
        assert_eq!(std::fs::read(&v1).expect("cat v1"), b"one");

        // cp of an earlier version over the file: a new current version.
        let cp = Command::new("cp")
            .arg(&v1)
            .arg(m.path("docs/notes.txt"))
            .status()
            .expect("cp back");
        assert!(cp.success());
        assert_eq!(
            std::fs::read(m.path("docs/notes.txt")).expect("cat"),
            b"one"
        );
        let on_box = api_get(&e, &format!("/files/{id}/versions"));
        assert_eq!(on_box["total_count"], 3, "{on_box}");
        assert_eq!(names(&of_notes).len(), 3);

        // Promotion, the way Box does it: the file reads as that version.
        let v2 = version_path(&of_notes, "v2 ");
        let v2_id = getx(&v2, "user.box.version").expect("the version's id");
        setx(&m.path("docs/notes.txt"), "user.box.version", &v2_id).expect("promote");
        assert_eq!(
            std::fs::read(m.path("docs/notes.txt")).expect("cat"),
            b"two two"
        );
        assert_eq!(
            std::fs::metadata(m.path("docs/notes.txt")).unwrap().len(),
            7
        );
        let file = api_get(&e, &format!("/files/{id}"));
        assert_eq!(file["size"], 7);
        assert_eq!(
            getx(&m.path("docs/notes.txt"), "user.box.version").expect("current"),
            file["file_version"]["id"].as_str().expect("version id")
        );
        assert_eq!(names(&of_notes).len(), 4, "every version kept");
        assert_eq!(
            setx(&m.path("docs/notes.txt"), "user.box.version", "12345678"),
            Err(libc::EINVAL)
        );
        assert_eq!(
            setx(&m.path("docs/notes.txt"), "user.box.version", "v2"),
            Err(libc::EINVAL)
        );
        // Folders are not files: nothing under .versions for them.
        std::fs::create_dir(m.path("docs/sub")).expect("mkdir");
        assert_eq!(
            errno_of(std::fs::metadata(versions.join("sub"))),
            libc::ENOENT
        );
    })
    .await;
}
