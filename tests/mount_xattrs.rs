//! Real mounts: Box's features as `user.box.` extended attributes. Facts read and listed
//! (`getfattr -d`), size probes and ERANGE, absent and foreign names; the lock, the shared
//! link and metadata instances and fields set and removed, each change checked on the
//! emulator's side through the API; bad names and values refused with nothing changed on
//! Box; two writers of one field; a read-only mount. One test runs the filesystem without a
//! kernel, to see what our changes leave in the inode table.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use box_emulator::EmulatorConfig;
use common::mount::{count_requests, TestMount};
use common::TestEmu;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Runs blocking filesystem work off the runtime that serves the emulator.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

/// An API request from a blocking context.
fn api(emu: &TestEmu, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let rt = tokio::runtime::Handle::current();
    let mut rb = emu.req(method, &emu.api(path));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rt.block_on(TestEmu::send(rb))
}

fn api_get(emu: &TestEmu, path: &str) -> Value {
    let (status, body) = api(emu, Method::GET, path, None);
    assert!(status.is_success(), "GET {path}: {status} {body}");
    body
}

/// An unauthenticated GET: what anyone holding a shared link gets.
fn anonymous_get(emu: &TestEmu, url: &str) -> (StatusCode, Vec<u8>) {
    let rt = tokio::runtime::Handle::current();
    rt.block_on(async {
        let resp = emu.http.get(url).send().await.expect("request sent");
        let status = resp.status();
        (status, resp.bytes().await.expect("body").to_vec())
    })
}

fn upload(emu: &TestEmu, parent: &str, name: &str, content: &[u8]) -> String {
    let rt = tokio::runtime::Handle::current();
    let file = rt.block_on(emu.upload_file(parent, name, content));
    file["id"].as_str().expect("file id").to_string()
}

fn mkdir(emu: &TestEmu, parent: &str, name: &str) -> String {
    tokio::runtime::Handle::current().block_on(emu.mkdir(parent, name))
}

// ---- the system calls, errno on failure ------------------------------------------------

fn c(s: impl AsRef<[u8]>) -> CString {
    CString::new(s.as_ref()).expect("no NUL")
}

fn cpath(p: &Path) -> CString {
    c(p.as_os_str().as_bytes())
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `getxattr` into a buffer of `len` bytes (0: the size probe); the length it answered.
fn getx_len(path: &Path, name: &str, len: usize) -> Result<usize, i32> {
    let mut buf = vec![0u8; len];
    let ptr = if len == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    };
    // SAFETY: valid C strings; `ptr` points at `len` writable bytes or is null with len 0.
    let n = unsafe { libc::getxattr(cpath(path).as_ptr(), c(name).as_ptr(), ptr, len) };
    if n < 0 {
        Err(last_errno())
    } else {
        Ok(n as usize)
    }
}

fn getx(path: &Path, name: &str) -> Result<Vec<u8>, i32> {
    let size = getx_len(path, name, 0)?;
    let mut buf = vec![0u8; size.max(1)];
    // SAFETY: as above.
    let n = unsafe {
        libc::getxattr(
            cpath(path).as_ptr(),
            c(name).as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(last_errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn gets(path: &Path, name: &str) -> Result<String, i32> {
    getx(path, name).map(|v| String::from_utf8(v).expect("UTF-8 value"))
}

fn getj(path: &Path, name: &str) -> Result<Value, i32> {
    getx(path, name).map(|v| serde_json::from_slice(&v).expect("a JSON value"))
}

fn setx(path: &Path, name: &str, value: &[u8], flags: i32) -> Result<(), i32> {
    // SAFETY: valid C strings and a value buffer of its own length.
    let r = unsafe {
        libc::setxattr(
            cpath(path).as_ptr(),
            c(name).as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

fn set(path: &Path, name: &str, value: &str) -> Result<(), i32> {
    setx(path, name, value.as_bytes(), 0)
}

fn removex(path: &Path, name: &str) -> Result<(), i32> {
    // SAFETY: valid C strings.
    let r = unsafe { libc::removexattr(cpath(path).as_ptr(), c(name).as_ptr()) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// `listxattr` into a buffer of `len` bytes (0: the size probe).
fn listx_len(path: &Path, len: usize) -> Result<usize, i32> {
    let mut buf = vec![0u8; len];
    let ptr = if len == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    };
    // SAFETY: valid C string; `ptr` points at `len` writable bytes or is null with len 0.
    let n = unsafe { libc::listxattr(cpath(path).as_ptr(), ptr, len) };
    if n < 0 {
        Err(last_errno())
    } else {
        Ok(n as usize)
    }
}

fn listx(path: &Path) -> Vec<String> {
    let size = listx_len(path, 0).expect("listxattr size");
    let mut buf = vec![0u8; size.max(1)];
    // SAFETY: as above.
    let n = unsafe { libc::listxattr(cpath(path).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "listxattr: errno {}", last_errno());
    buf.truncate(n as usize);
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).expect("UTF-8 name"))
        .collect()
}

/// `getfattr -d -m - PATH`: each name with its value.
fn getfattr_dump(path: &Path) -> Vec<(String, String)> {
    let out = Command::new("getfattr")
        .args(["-d", "-m", "-", "--absolute-names"])
        .arg(path)
        .output()
        .expect("getfattr runs");
    assert!(
        out.status.success(),
        "getfattr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').expect("name=value");
            (k.to_string(), unquoted(v))
        })
        .collect()
}

/// A value as getfattr prints it: in double quotes, with `\"`, `\\` and `\ooo` escapes.
fn unquoted(v: &str) -> String {
    let inner = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .expect("a quoted value");
    let mut out = Vec::new();
    let mut bytes = inner.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let mut octal = 0u32;
        let mut digits = 0;
        while digits < 3 {
            match bytes.peek() {
                Some(d @ b'0'..=b'7') => {
                    octal = octal * 8 + u32::from(d - b'0');
                    bytes.next();
                    digits += 1;
                }
                _ => break,
            }
        }
        if digits > 0 {
            out.push(u8::try_from(octal).expect("an octal escape of one byte"));
        } else if let Some(escaped) = bytes.next() {
            out.push(escaped);
        }
    }
    String::from_utf8(out).expect("UTF-8 value")
}

const FACTS: [&str; 8] = [
    "user.box.id",
    "user.box.type",
    "user.box.etag",
    "user.box.sha1",
    "user.box.version",
    "user.box.owner",
    "user.box.modified_by",
    "user.box.created_at",
];

// ---- tests ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_are_read_listed_and_never_changed() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let file_id = upload(&e, "0", "plain.txt", b"some content");
        let folder_id = mkdir(&e, "0", "Folder");
        let m = TestMount::start(&e, &[]);
        let file = m.path("plain.txt");
        let folder = m.path("Folder");

        let api_file = api_get(&e, &format!("/files/{file_id}"));
        let login = |u: &Value| u["login"].as_str().expect("login").to_string();
        let expected = [
            ("user.box.id", file_id.clone()),
            ("user.box.type", "file".to_string()),
            (
                "user.box.etag",
                api_file["etag"].as_str().unwrap().to_string(),
            ),
            (
                "user.box.sha1",
                api_file["sha1"].as_str().unwrap().to_string(),
            ),
            (
                "user.box.version",
                api_file["file_version"]["id"].as_str().unwrap().to_string(),
            ),
            ("user.box.owner", login(&api_file["owned_by"])),
            ("user.box.modified_by", login(&api_file["modified_by"])),
            (
                "user.box.created_at",
                api_file["created_at"].as_str().unwrap().to_string(),
            ),
        ];
        for (name, want) in &expected {
            assert_eq!(gets(&file, name).as_deref(), Ok(want.as_str()), "{name}");
        }
        // listxattr names exactly the attributes the file has (no lock, no link, no
        // metadata), and `getfattr -d` shows each with its value.
        assert_eq!(listx(&file), FACTS);
        let mut dump = getfattr_dump(&file);
        dump.sort();
        let mut want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        want.sort();
        assert_eq!(dump, want);

        // A folder has no sha1 or version; the root is "0".
        assert_eq!(
            listx(&folder),
            [
                "user.box.id",
                "user.box.type",
                "user.box.etag",
                "user.box.owner",
                "user.box.modified_by",
                "user.box.created_at"
            ]
        );
        assert_eq!(gets(&folder, "user.box.id"), Ok(folder_id));
        assert_eq!(gets(&folder, "user.box.type").as_deref(), Ok("folder"));
        assert_eq!(gets(&folder, "user.box.sha1"), Err(libc::ENODATA));
        assert_eq!(gets(&m.root, "user.box.id").as_deref(), Ok("0"));

        // Size probe, a buffer one byte short (ERANGE), an exact one.
        let len = file_id.len();
        assert_eq!(getx_len(&file, "user.box.id", 0), Ok(len));
        assert_eq!(getx_len(&file, "user.box.id", len - 1), Err(libc::ERANGE));
        assert_eq!(getx_len(&file, "user.box.id", len), Ok(len));
        let list_len: usize = FACTS.iter().map(|n| n.len() + 1).sum();
        assert_eq!(listx_len(&file, 0), Ok(list_len));
        assert_eq!(listx_len(&file, list_len - 1), Err(libc::ERANGE));
        assert_eq!(listx_len(&file, list_len), Ok(list_len));

        // Absent, foreign and unknown names.
        for name in [
            "user.box.lock",
            "user.box.shared_link",
            "user.box.shared_link.download_url",
            "user.box.metadata.global.properties",
            "user.box.metadata.global.properties.color",
            "user.box.nope",
            "user.other",
        ] {
            assert_eq!(getx(&file, name), Err(libc::ENODATA), "{name}");
        }
        // Namespaces other than user. are unsupported (so `ls -l` stops asking for them).
        for name in [
            "security.selinux",
            "system.posix_acl_access",
            "system.posix_acl_default",
            "trusted.x",
        ] {
            assert_eq!(getx(&file, name), Err(libc::EOPNOTSUPP), "{name}");
            // (Changes to POSIX ACLs the kernel checks and answers itself.)
            if !name.starts_with("system.") {
                assert_eq!(removex(&file, name), Err(libc::EOPNOTSUPP), "remove {name}");
                assert_eq!(set(&file, name, "x"), Err(libc::EOPNOTSUPP), "set {name}");
            }
        }

        // Read-only attributes refuse changes; foreign names are not stored; unknown names
        // under user.box. are mistakes.
        for name in FACTS
            .iter()
            .copied()
            .chain(["user.box.shared_link.download_url"])
        {
            assert_eq!(removex(&file, name), Err(libc::EPERM), "remove {name}");
            if name == "user.box.version" {
                // Written, it promotes an earlier version (see mount_history): "x" is none.
                assert_eq!(set(&file, name, "x"), Err(libc::EINVAL), "set {name}");
                continue;
            }
            assert_eq!(set(&file, name, "x"), Err(libc::EPERM), "set {name}");
        }
        assert_eq!(set(&file, "user.other", "x"), Err(libc::EOPNOTSUPP));
        assert_eq!(removex(&file, "user.other"), Err(libc::ENODATA));
        assert_eq!(set(&file, "user.box.nope", "x"), Err(libc::EINVAL));
        assert_eq!(removex(&file, "user.box.nope"), Err(libc::ENODATA));
        assert_eq!(
            setx(
                &file,
                "user.box.lock",
                b"",
                libc::XATTR_CREATE | libc::XATTR_REPLACE
            ),
            Err(libc::EINVAL)
        );

        // Nothing changed on Box.
        let after = api_get(
            &e,
            &format!("/files/{file_id}?fields=etag,lock,shared_link"),
        );
        assert_eq!(after["etag"], api_file["etag"]);
        assert_eq!(after["lock"], Value::Null);
        assert_eq!(after["shared_link"], Value::Null);

        // `cp -a` out of the mount carries the attributes along.
        let out = tempfile::tempdir().expect("tempdir");
        let copy = out.path().join("copy.txt");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&file)
            .arg(&copy)
            .status()
            .expect("cp runs");
        assert!(status.success());
        assert_eq!(gets(&copy, "user.box.id"), gets(&file, "user.box.id"));
    })
    .await;
}

/// `ls -l` asks for the ACLs and SELinux label (`getxattr` of names outside `user.`):
/// answered without a request to Box, as unsupported, so that GNU `ls` asks only once. (Newer `ls` implementations call
/// `listxattr` instead, which costs requests; see `fs/xattr/mod.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_l_costs_no_attribute_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
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
        for i in 0..20 {
            upload(&e, "0", &format!("f{i}.txt"), b"x");
        }
        let m = TestMount::start(&e, &[]);
        let out = Command::new("ls")
            .arg("-l")
            .arg(&m.root)
            .output()
            .expect("ls runs");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 21);
        let per_file = count_requests(&log, "GET", |p| p.starts_with("/2.0/files/"));
        assert_eq!(per_file, 0, "ls -l asked Box about single files");
        assert_eq!(
            getx(&m.path("f0.txt"), "security.selinux"),
            Err(libc::EOPNOTSUPP)
        );
        assert_eq!(
            count_requests(&log, "GET", |p| p.starts_with("/2.0/files/")),
            0
        );
        // (What an attribute of Box's does cost, to show the count is not blind.)
        gets(&m.path("f0.txt"), "user.box.etag").expect("etag");
        assert_eq!(
            count_requests(&log, "GET", |p| p.starts_with("/2.0/files/")),
            1
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_shared_link_are_set_and_removed() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let content = b"shared content";
        let file_id = upload(&e, "0", "doc.txt", content);
        let folder_id = mkdir(&e, "0", "Shared");
        let m = TestMount::start(&e, &[]);
        let file = m.path("doc.txt");
        let folder = m.path("Shared");
        let lock_on_box = || api_get(&e, &format!("/files/{file_id}?fields=lock"))["lock"].clone();
        let link_on_box =
            || api_get(&e, &format!("/files/{file_id}?fields=shared_link"))["shared_link"].clone();
        let me = api_get(&e, "/users/me")["login"]
            .as_str()
            .expect("login")
            .to_string();

        // Bad values change nothing.
        for bad in [
            "{",
            "unlock",
            r#"{"expires_at": "soon"}"#,
            r#"{"expire_at": null}"#,
        ] {
            assert_eq!(set(&file, "user.box.lock", bad), Err(libc::EINVAL), "{bad}");
        }
        assert_eq!(lock_on_box(), Value::Null);
        assert_eq!(
            setx(&file, "user.box.lock", b"", libc::XATTR_REPLACE),
            Err(libc::ENODATA)
        );
        assert_eq!(lock_on_box(), Value::Null);

        // Lock (an empty value), read it, refuse XATTR_CREATE, unlock.
        set(&file, "user.box.lock", "").expect("lock");
        let lock = lock_on_box();
        assert_eq!(lock["created_by"]["login"], me.as_str(), "{lock}");
        let shown = getj(&file, "user.box.lock").expect("lock attribute");
        assert_eq!(shown["holder"], me.as_str());
        assert_eq!(shown["created_at"], lock["created_at"]);
        assert_eq!(shown["expires_at"], Value::Null);
        assert_eq!(shown["is_download_prevented"], false);
        assert!(listx(&file).contains(&"user.box.lock".to_string()));
        assert_eq!(
            setx(&file, "user.box.lock", b"lock", libc::XATTR_CREATE),
            Err(libc::EEXIST)
        );
        removex(&file, "user.box.lock").expect("unlock");
        assert_eq!(lock_on_box(), Value::Null);
        assert_eq!(getx(&file, "user.box.lock"), Err(libc::ENODATA));
        assert_eq!(removex(&file, "user.box.lock"), Err(libc::ENODATA));
        assert!(!listx(&file).contains(&"user.box.lock".to_string()));

        // A lock with an expiry that prevents downloads.
        let expires = (chrono::Utc::now() + chrono::Duration::days(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        set(
            &file,
            "user.box.lock",
            &json!({"expires_at": expires, "is_download_prevented": true}).to_string(),
        )
        .expect("lock with options");
        let lock = lock_on_box();
        assert_eq!(lock["is_download_prevented"], true, "{lock}");
        let on_box = chrono::DateTime::parse_from_rfc3339(lock["expired_at"].as_str().unwrap())
            .expect("expiry");
        assert_eq!(
            on_box.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            expires
        );
        let shown = getj(&file, "user.box.lock").expect("lock attribute");
        assert_eq!(shown["expires_at"], lock["expired_at"]);
        assert_eq!(shown["is_download_prevented"], true);
        // The value read can be written back (re-locking with the same settings).
        set(&file, "user.box.lock", &shown.to_string()).expect("lock again");
        assert_eq!(lock_on_box()["is_download_prevented"], true);
        removex(&file, "user.box.lock").expect("unlock");
        assert_eq!(lock_on_box(), Value::Null);

        // Folders have no lock.
        assert_eq!(set(&folder, "user.box.lock", ""), Err(libc::EOPNOTSUPP));
        assert_eq!(getx(&folder, "user.box.lock"), Err(libc::ENODATA));
        assert_eq!(removex(&folder, "user.box.lock"), Err(libc::ENODATA));

        // An open link: anyone can download through it.
        assert_eq!(
            set(&file, "user.box.shared_link", "everyone"),
            Err(libc::EINVAL)
        );
        assert_eq!(link_on_box(), Value::Null);
        set(&file, "user.box.shared_link", "open").expect("share");
        let link = link_on_box();
        assert_eq!(link["access"], "open", "{link}");
        let url = gets(&file, "user.box.shared_link").expect("link attribute");
        assert_eq!(url, link["url"].as_str().unwrap());
        let download = gets(&file, "user.box.shared_link.download_url").expect("download url");
        assert_eq!(download, link["download_url"].as_str().unwrap());
        let (status, body) = anonymous_get(&e, &download);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, content);
        assert_eq!(
            setx(&file, "user.box.shared_link", b"open", libc::XATTR_CREATE),
            Err(libc::EEXIST)
        );

        // Narrowed to collaborators: the same link, no anonymous download.
        set(&file, "user.box.shared_link", "collaborators").expect("change the link");
        let link = link_on_box();
        assert_eq!(link["access"], "collaborators");
        assert_eq!(link["url"].as_str(), Some(url.as_str()));
        assert!(!anonymous_get(&e, &download).0.is_success());
        assert_eq!(
            set(&file, "user.box.shared_link", "public"),
            Err(libc::EINVAL)
        );
        assert_eq!(link_on_box()["access"], "collaborators");

        // Unshared: the link is gone.
        removex(&file, "user.box.shared_link").expect("unshare");
        assert_eq!(link_on_box(), Value::Null);
        assert_eq!(getx(&file, "user.box.shared_link"), Err(libc::ENODATA));
        assert_eq!(removex(&file, "user.box.shared_link"), Err(libc::ENODATA));
        assert_eq!(anonymous_get(&e, &url).0, StatusCode::NOT_FOUND);
        assert_eq!(
            setx(&file, "user.box.shared_link", b"open", libc::XATTR_REPLACE),
            Err(libc::ENODATA)
        );
        assert_eq!(link_on_box(), Value::Null);

        // Folders share too (a link, no download URL).
        set(&folder, "user.box.shared_link", "open").expect("share the folder");
        let link =
            api_get(&e, &format!("/folders/{folder_id}?fields=shared_link"))["shared_link"].clone();
        assert_eq!(link["access"], "open");
        assert_eq!(
            gets(&folder, "user.box.shared_link").ok().as_deref(),
            link["url"].as_str()
        );
        assert_eq!(
            getx(&folder, "user.box.shared_link.download_url"),
            Err(libc::ENODATA)
        );
        removex(&folder, "user.box.shared_link").expect("unshare the folder");
        assert_eq!(
            api_get(&e, &format!("/folders/{folder_id}?fields=shared_link"))["shared_link"],
            Value::Null
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_instances_and_fields_are_checked_and_changed() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let (status, body) = api(
            &e,
            Method::POST,
            "/metadata_templates/schema",
            Some(json!({
                "scope": "enterprise",
                "displayName": "Contract Info",
                "templateKey": "contractInfo",
                "fields": [
                    {"type": "string", "key": "customer", "displayName": "Customer"},
                    {"type": "float", "key": "amount", "displayName": "Amount"},
                    {"type": "date", "key": "signed", "displayName": "Signed"},
                    {"type": "enum", "key": "stage", "displayName": "Stage",
                     "options": [{"key": "draft"}, {"key": "final"}]},
                    {"type": "multiSelect", "key": "regions", "displayName": "Regions",
                     "options": [{"key": "emea"}, {"key": "amer"}, {"key": "apac"}]},
                ],
            })),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let eid = e.emulator().info.enterprise_id.clone();
        let file_id = upload(&e, "0", "contract.pdf", b"%PDF");
        let folder_id = mkdir(&e, "0", "Deals");
        let m = TestMount::start(&e, &[]);
        let file = m.path("contract.pdf");

        let inst = "user.box.metadata.enterprise.contractInfo";
        let listed = format!("user.box.metadata.enterprise_{eid}.contractInfo");
        let field = |k: &str| format!("{inst}.{k}");
        let on_box_path = format!("/files/{file_id}/metadata/enterprise/contractInfo");
        let on_box = || api(&e, Method::GET, &on_box_path, None);
        let values_on_box = || {
            let (status, v) = on_box();
            assert_eq!(status, StatusCode::OK, "{v}");
            let mut v = v.as_object().expect("an instance").clone();
            v.retain(|k, _| !k.starts_with('$'));
            Value::Object(v)
        };

        assert_eq!(getx(&file, inst), Err(libc::ENODATA));
        assert_eq!(
            setx(&file, inst, b"{}", libc::XATTR_REPLACE),
            Err(libc::ENODATA)
        );
        assert_eq!(on_box().0, StatusCode::NOT_FOUND);

        // Create the instance from a JSON object (a `$` key is ignored).
        set(
            &file,
            inst,
            r#"{"customer": "ACME", "amount": 12.5, "stage": "draft", "$version": 9}"#,
        )
        .expect("create the instance");
        assert_eq!(
            values_on_box(),
            json!({"customer": "ACME", "amount": 12.5, "stage": "draft"})
        );
        assert!(listx(&file).contains(&listed));
        let shown = getj(&file, inst).expect("instance attribute");
        assert_eq!(
            shown,
            json!({"customer": "ACME", "amount": 12.5, "stage": "draft"})
        );
        assert_eq!(getj(&file, &listed), Ok(shown));
        assert_eq!(
            setx(&file, inst, b"{}", libc::XATTR_CREATE),
            Err(libc::EEXIST)
        );

        // Fields, one at a time, each type.
        set(&file, &field("stage"), r#""final""#).expect("enum");
        set(&file, &field("signed"), r#""2024-01-31""#).expect("date");
        set(&file, &field("regions"), r#"["emea", "apac"]"#).expect("multiSelect");
        set(&file, &field("amount"), "3").expect("float");
        assert_eq!(
            values_on_box(),
            json!({"customer": "ACME", "amount": 3, "stage": "final",
                   "signed": "2024-01-31T00:00:00.000Z", "regions": ["emea", "apac"]})
        );
        assert_eq!(getj(&file, &field("customer")), Ok(json!("ACME")));
        assert_eq!(getj(&file, &field("regions")), Ok(json!(["emea", "apac"])));
        assert_eq!(
            setx(&file, &field("customer"), br#""X""#, libc::XATTR_CREATE),
            Err(libc::EEXIST)
        );
        removex(&file, &field("customer")).expect("remove a field");
        assert_eq!(values_on_box().get("customer"), None);
        assert_eq!(getx(&file, &field("customer")), Err(libc::ENODATA));
        assert_eq!(removex(&file, &field("customer")), Err(libc::ENODATA));
        assert_eq!(
            setx(&file, &field("customer"), br#""X""#, libc::XATTR_REPLACE),
            Err(libc::ENODATA)
        );

        // Bad JSON, wrong types, unknown options, fields, templates and scopes: EINVAL, and
        // the instance on Box is exactly as it was (its $version too).
        let (_, before) = on_box();
        let bad: &[(&str, &str)] = &[
            (&field("stage"), r#""nope""#),
            (&field("stage"), "final"),
            (&field("amount"), r#""12""#),
            (&field("amount"), "12x"),
            (&field("signed"), r#""last tuesday""#),
            (&field("regions"), r#"["emea", "mars"]"#),
            (&field("nosuch"), r#""x""#),
            (inst, "{"),
            (inst, "[]"),
            (inst, r#"{"stage": "bad", "customer": "B"}"#),
            (inst, r#"{"customer": 7}"#),
            ("user.box.metadata.enterprise.noSuchTemplate", "{}"),
            ("user.box.metadata.enterprise.noSuchTemplate.x", r#""x""#),
            ("user.box.metadata.elsewhere.contractInfo", "{}"),
            ("user.box.metadata.global.properties.flag", "true"),
            (
                "user.box.metadata.global.properties",
                r#"{"nested": {"a": 1}}"#,
            ),
        ];
        for (name, value) in bad {
            assert_eq!(
                set(&file, name, value),
                Err(libc::EINVAL),
                "{name} = {value}"
            );
        }
        assert_eq!(on_box().1, before);
        let all = api_get(&e, &format!("/files/{file_id}/metadata"));
        assert_eq!(all["entries"].as_array().map(Vec::len), Some(1), "{all}");

        // Replacing the instance: keys not in the new value go.
        set(&file, inst, r#"{"customer": "Other", "regions": ["amer"]}"#).expect("replace");
        assert_eq!(
            values_on_box(),
            json!({"customer": "Other", "regions": ["amer"]})
        );

        // Two writers: we read the field, someone else changes it, our write of the value
        // we read is refused (EBUSY) and theirs stays; reading again shows theirs.
        assert_eq!(getj(&file, &field("customer")), Ok(json!("Other")));
        let rt = tokio::runtime::Handle::current();
        let (status, body) = rt.block_on(TestEmu::send(
            e.req(Method::PUT, &e.api(&on_box_path))
                .header("content-type", "application/json-patch+json")
                .body(
                    json!([{"op": "replace", "path": "/customer", "value": "Third"}]).to_string(),
                ),
        ));
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            set(&file, &field("customer"), r#""Mine""#),
            Err(libc::EBUSY)
        );
        assert_eq!(values_on_box()["customer"], "Third");
        assert_eq!(getj(&file, &field("customer")), Ok(json!("Third")));
        set(&file, &field("customer"), r#""Mine""#).expect("write after reading again");
        assert_eq!(values_on_box()["customer"], "Mine");
        // The same for a removal.
        assert_eq!(getj(&file, &field("customer")), Ok(json!("Mine")));
        let (status, body) = rt.block_on(TestEmu::send(
            e.req(Method::PUT, &e.api(&on_box_path))
                .header("content-type", "application/json-patch+json")
                .body(
                    json!([{"op": "replace", "path": "/customer", "value": "Theirs"}]).to_string(),
                ),
        ));
        assert_eq!(status, StatusCode::OK, "{body}");
        // Here the event reporting their change surely arrived first and dropped the cache:
        // the write is still checked against what we read.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(removex(&file, &field("customer")), Err(libc::EBUSY));
        assert_eq!(values_on_box()["customer"], "Theirs");
        set(&file, &field("customer"), r#""Mine""#).expect("write after a failed removal");

        // A field absent when we read it, which someone else then added: JSON Patch cannot
        // test for absence, the check of what we saw refuses it.
        assert_eq!(getj(&file, &field("stage")), Err(libc::ENODATA));
        let (status, body) = rt.block_on(TestEmu::send(
            e.req(Method::PUT, &e.api(&on_box_path))
                .header("content-type", "application/json-patch+json")
                .body(json!([{"op": "add", "path": "/stage", "value": "final"}]).to_string()),
        ));
        assert_eq!(status, StatusCode::OK, "{body}");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(set(&file, &field("stage"), r#""draft""#), Err(libc::EBUSY));
        assert_eq!(values_on_box()["stage"], "final");
        assert_eq!(getj(&file, &field("stage")), Ok(json!("final")));
        removex(&file, &field("stage")).expect("remove after reading again");

        // global.properties takes any key; a field set on an item without the instance
        // creates it.
        set(
            &file,
            "user.box.metadata.global.properties.color",
            r#""blue""#,
        )
        .expect("free-form field");
        let props = api_get(&e, &format!("/files/{file_id}/metadata/global/properties"));
        assert_eq!(props["color"], "blue");
        let mut dump: Vec<(String, Value)> = getfattr_dump(&file)
            .into_iter()
            .filter(|(k, _)| k.starts_with("user.box.metadata."))
            .map(|(k, v)| (k, serde_json::from_str(&v).expect("JSON")))
            .collect();
        dump.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            dump,
            [
                (
                    listed.clone(),
                    json!({"customer": "Mine", "regions": ["amer"]})
                ),
                (
                    "user.box.metadata.global.properties".to_string(),
                    json!({"color": "blue"})
                ),
            ]
        );

        // Removing instances.
        removex(&file, inst).expect("delete the instance");
        assert_eq!(on_box().0, StatusCode::NOT_FOUND);
        assert_eq!(removex(&file, inst), Err(libc::ENODATA));
        assert!(!listx(&file).contains(&listed));
        removex(&file, "user.box.metadata.global.properties").expect("delete properties");
        let all = api_get(&e, &format!("/files/{file_id}/metadata"));
        assert_eq!(all["entries"], json!([]));

        // Folders carry metadata too; the root (All Files) has none.
        let folder = m.path("Deals");
        set(
            &folder,
            "user.box.metadata.global.properties",
            r#"{"team": "sales"}"#,
        )
        .expect("folder metadata");
        let props = api_get(
            &e,
            &format!("/folders/{folder_id}/metadata/global/properties"),
        );
        assert_eq!(props["team"], "sales");
        assert_eq!(
            getj(&folder, "user.box.metadata.global.properties.team"),
            Ok(json!("sales"))
        );
        assert_eq!(
            getx(&m.root, "user.box.metadata.global.properties"),
            Err(libc::ENODATA)
        );

        // Someone else creates the instance after we saw there was none: our create of it is
        // refused (EBUSY) and theirs stays.
        assert_eq!(getx(&folder, inst), Err(libc::ENODATA));
        let (status, body) = api(
            &e,
            Method::POST,
            &format!("/folders/{folder_id}/metadata/enterprise/contractInfo"),
            Some(json!({"customer": "Them"})),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            set(&folder, &field("customer"), r#""Us""#),
            Err(libc::EBUSY)
        );
        assert_eq!(getj(&folder, &field("customer")), Ok(json!("Them")));
        assert!(!listx(&m.root).iter().any(|n| n.contains(".metadata.")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mount_refuses_changes() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let file_id = upload(&e, "0", "ro.txt", b"x");
        let m = TestMount::start(&e, &["--read-only"]);
        let file = m.path("ro.txt");
        assert_eq!(gets(&file, "user.box.id"), Ok(file_id.clone()));
        assert_eq!(set(&file, "user.box.lock", ""), Err(libc::EROFS));
        assert_eq!(set(&file, "user.box.shared_link", "open"), Err(libc::EROFS));
        assert_eq!(
            set(&file, "user.box.metadata.global.properties.a", r#""b""#),
            Err(libc::EROFS)
        );
        assert_eq!(removex(&file, "user.box.lock"), Err(libc::EROFS));
        let after = api_get(&e, &format!("/files/{file_id}?fields=lock,shared_link"));
        assert_eq!(after["lock"], Value::Null);
        assert_eq!(after["shared_link"], Value::Null);
        let all = api_get(&e, &format!("/files/{file_id}/metadata"));
        assert_eq!(all["entries"], json!([]));
    })
    .await;
}

/// Without a kernel: our own changes store Box's answer (its new etag and sequence_id) in
/// the inode table, so that the event Box sends about them later finds nothing new; and
/// an invalidation of the inode queued for the kernel (the events task's way in) drops values
/// cached from before a change made elsewhere, with no kernel draining the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_record_boxs_answer_and_invalidation_drops_the_cache() {
    use box_client::RetryPolicy;
    use boxfs::fs::kernel::KernelQueue;
    use boxfs::fs::tree::inode::ROOT_INO;
    use boxfs::fs::{BoxFs, FsOptions};
    use std::ffi::OsStr;
    use std::sync::atomic::Ordering;

    let emu = TestEmu::start().await;
    let file_id = emu.upload_file("0", "doc.txt", b"x").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let client = emu.client(RetryPolicy::default());
    let fs = Arc::new(BoxFs::new(
        Arc::new(client),
        FsOptions::default(),
        None,
        KernelQueue::discard(),
    ));
    fs.init().await.expect("init");
    let ino = fs
        .lookup(ROOT_INO, OsStr::new("doc.txt"))
        .await
        .expect("lookup")
        .ino;
    let cached = |fs: &BoxFs| {
        let table = fs.table().lock().expect("table");
        let a = table.get(ino).expect("inode").attrs().clone();
        (a.etag.map(|e| e.to_string()), a.sequence_id)
    };
    let on_box = || async {
        let (_, v) = emu
            .get(&format!("/files/{file_id}?fields=etag,sequence_id"))
            .await;
        (
            v["etag"].as_str().map(str::to_string),
            v["sequence_id"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok()),
        )
    };
    let before = on_box().await;
    let changes: [(&str, Option<&[u8]>); 4] = [
        ("user.box.lock", Some(b"")),
        ("user.box.shared_link", Some(b"open")),
        ("user.box.lock", None),
        ("user.box.shared_link", None),
    ];
    for (name, value) in changes {
        match value {
            Some(v) => fs.setxattr(ino, OsStr::new(name), v, 0).await,
            None => fs.removexattr(ino, OsStr::new(name)).await,
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let now = on_box().await;
        assert_ne!(now, before, "{name} changed the item on Box");
        assert_eq!(cached(&fs), now, "after {name:?} = {value:?}");
        // Box's answer is cached: reading back what was just set asks nothing.
        let fetches = fs.counters.item_fetches.load(Ordering::Relaxed);
        let read = fs.getxattr(ino, OsStr::new(name)).await;
        assert_eq!(read.is_ok(), value.is_some(), "{name} read back: {read:?}");
        assert_eq!(
            fs.counters.item_fetches.load(Ordering::Relaxed),
            fetches,
            "{name} read back from Box's answer"
        );
    }

    // A lock read (and cached), then removed elsewhere: still shown until invalidated.
    fs.setxattr(ino, OsStr::new("user.box.lock"), b"", 0)
        .await
        .expect("lock");
    let lock = OsStr::new("user.box.lock");
    assert!(fs.getxattr(ino, lock).await.is_ok());
    let (status, body) = emu
        .put_json(&format!("/files/{file_id}"), json!({"lock": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        fs.getxattr(ino, lock).await.is_ok(),
        "served from the cache"
    );
    fs.kernel_queue()
        .send(boxfs::fs::kernel::Invalidation::Attrs(ino));
    assert_eq!(
        fs.getxattr(ino, lock).await.map_err(|e| e.errno()),
        Err(libc::ENODATA)
    );
}
