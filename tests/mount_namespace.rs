//! Real mounts of the emulator's demo tree: ls, stat, cat, cp out, mkdir, rmdir, rm, mv and
//! rename (within a folder, across folders, both, over an existing target, NOREPLACE), bad
//! names, what listings cost, unmounting with open files, and mount errors. Each change is
//! checked on the emulator's side through the API.

mod common;

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use box_emulator::EmulatorConfig;
use common::mount::{box_names, count_requests, eventually, TestMount};
use common::TestEmu;
use serde_json::Value;
use sha1::{Digest, Sha1};

async fn demo_emu(request_log: Option<&Path>) -> Arc<TestEmu> {
    Arc::new(
        TestEmu::start_with(EmulatorConfig {
            demo: true,
            request_log: request_log.map(Path::to_path_buf),
            ..EmulatorConfig::default()
        })
        .await,
    )
}

/// Runs blocking filesystem work off the runtime that serves the emulator.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

/// The API's view, from a blocking context.
fn api_get(emu: &TestEmu, path: &str) -> Value {
    let rt = tokio::runtime::Handle::current();
    let (status, body) = rt.block_on(emu.get(path));
    assert!(status.is_success(), "GET {path}: {status} {body}");
    body
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

fn renameat2(from: &Path, to: &Path, flags: u32) -> std::io::Result<()> {
    let from = CString::new(from.as_os_str().as_bytes()).expect("path");
    let to = CString::new(to.as_os_str().as_bytes()).expect("path");
    // SAFETY: valid NUL-terminated paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_stat_cat_and_cp_out_show_box_content() {
    let emu = demo_emu(None).await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        let names = box_names(&m.root);
        let root = api_get(&e, "/folders/0/items?limit=1000");
        let mut expected: Vec<String> = root["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|x| x["name"].as_str().expect("name").to_string())
            .collect();
        expected.sort();
        assert_eq!(names, expected);

        let id = child_id(&e, "0", "Welcome.txt").expect("Welcome.txt on Box");
        let file = api_get(&e, &format!("/files/{id}"));
        let meta = std::fs::metadata(m.path("Welcome.txt")).expect("stat");
        assert_eq!(meta.len(), file["size"].as_u64().expect("size"));
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o644);
        let mtime = chrono::DateTime::parse_from_rfc3339(
            file["content_modified_at"]
                .as_str()
                .expect("content_modified_at"),
        )
        .expect("time");
        assert_eq!(meta.mtime(), mtime.timestamp());
        assert!(std::fs::metadata(m.path("Documents"))
            .expect("stat")
            .is_dir());

        let content = std::fs::read(m.path("Welcome.txt")).expect("cat");
        assert_eq!(content.len() as u64, meta.len());
        assert!(String::from_utf8_lossy(&content).contains("Box emulator"));

        // cp out of a binary file: byte-identical, SHA1 as Box reports it.
        let photos = child_id(&e, "0", "Photos").expect("Photos");
        let photo_id = child_id(&e, &photos, "photo.jpg").expect("photo");
        let photo = api_get(&e, &format!("/files/{photo_id}"));
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("photo.jpg");
        let status = Command::new("cp")
            .arg(m.path("Photos/photo.jpg"))
            .arg(&out)
            .status()
            .expect("cp");
        assert!(status.success());
        let bytes = std::fs::read(&out).expect("copy");
        assert_eq!(hex::encode(Sha1::digest(&bytes)), photo["sha1"]);

        // A name that is not there, in any case spelling.
        assert_eq!(
            errno_of(std::fs::metadata(m.path("nope.txt"))),
            libc::ENOENT
        );
        // Lookups match the exact spelling, though Box compares names case-insensitively.
        assert_eq!(
            errno_of(std::fs::metadata(m.path("welcome.TXT"))),
            libc::ENOENT
        );
        let df = Command::new("df").arg(&m.root).output().expect("df");
        assert!(df.status.success(), "df: {df:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkdir_rmdir_rm_and_mv_become_box_changes() {
    let emu = demo_emu(None).await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        std::fs::create_dir(m.path("New Folder")).expect("mkdir");
        let new_id = child_id(&e, "0", "New Folder").expect("folder created on Box");
        assert_eq!(
            errno_of(std::fs::create_dir(m.path("New Folder"))),
            libc::EEXIST
        );
        assert_eq!(
            errno_of(std::fs::create_dir(m.path("new folder"))),
            libc::EEXIST
        );
        std::fs::create_dir(m.path("New Folder/inner")).expect("mkdir inside");
        assert_eq!(
            errno_of(std::fs::remove_dir(m.path("New Folder"))),
            libc::ENOTEMPTY
        );
        std::fs::remove_dir(m.path("New Folder/inner")).expect("rmdir");
        assert!(child_id(&e, &new_id, "inner").is_none());

        // Rename in place keeps the inode and the Box id.
        let welcome_id = child_id(&e, "0", "Welcome.txt").expect("welcome");
        let ino = std::fs::metadata(m.path("Welcome.txt"))
            .expect("stat")
            .ino();
        std::fs::rename(m.path("Welcome.txt"), m.path("Hello.txt")).expect("rename");
        assert_eq!(
            child_id(&e, "0", "Hello.txt").as_deref(),
            Some(welcome_id.as_str())
        );
        assert_eq!(
            std::fs::metadata(m.path("Hello.txt")).expect("stat").ino(),
            ino
        );
        assert_eq!(
            errno_of(std::fs::metadata(m.path("Welcome.txt"))),
            libc::ENOENT
        );

        // Move to another folder, then move and rename at once.
        std::fs::rename(m.path("Hello.txt"), m.path("New Folder/Hello.txt")).expect("move");
        let item = api_get(&e, &format!("/files/{welcome_id}"));
        assert_eq!(item["parent"]["id"], new_id.as_str());
        std::fs::rename(m.path("New Folder/Hello.txt"), m.path("Documents/Hi.txt"))
            .expect("move and rename");
        let item = api_get(&e, &format!("/files/{welcome_id}"));
        assert_eq!(item["name"], "Hi.txt");
        assert_eq!(item["parent"]["name"], "Documents");
        assert_eq!(
            std::fs::metadata(m.path("Documents/Hi.txt"))
                .expect("stat")
                .ino(),
            ino
        );

        // Folders move with their contents.
        std::fs::rename(m.path("Projects"), m.path("New Folder/Old Projects"))
            .expect("move folder");
        assert!(std::fs::metadata(m.path("New Folder/Old Projects/boxfs/todo.txt")).is_ok());
        let projects = child_id(&e, &new_id, "Old Projects").expect("moved folder");
        assert!(child_id(&e, &projects, "boxfs").is_some());

        // rm puts the file in Box's trash; rmdir of the emptied folder too.
        std::fs::remove_file(m.path("Documents/Hi.txt")).expect("rm");
        let (status, _) =
            tokio::runtime::Handle::current().block_on(e.get(&format!("/files/{welcome_id}")));
        assert_eq!(status.as_u16(), 404);
        let trashed = api_get(&e, &format!("/files/{welcome_id}/trash"));
        assert_eq!(trashed["item_status"], "trashed");
        assert_eq!(
            errno_of(std::fs::remove_file(m.path("Documents"))),
            libc::EISDIR
        );
        assert_eq!(
            errno_of(std::fs::remove_dir(m.path("Photos/photo.jpg"))),
            libc::ENOTDIR
        );
        std::fs::remove_dir_all(m.path("New Folder")).expect("rm -r");
        assert!(child_id(&e, "0", "New Folder").is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_over_an_existing_target_follows_posix() {
    let emu = demo_emu(None).await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        let docs = child_id(&e, "0", "Documents").expect("Documents");
        let notes_id = child_id(&e, &docs, "notes.txt").expect("notes");
        let readme_id = child_id(&e, &docs, "README.md").expect("readme");
        let notes = std::fs::read(m.path("Documents/notes.txt")).expect("notes");

        // NOREPLACE: refused, both intact.
        let r = renameat2(
            &m.path("Documents/notes.txt"),
            &m.path("Documents/README.md"),
            libc::RENAME_NOREPLACE,
        );
        assert_eq!(errno_of(r), libc::EEXIST);
        assert_eq!(
            child_id(&e, &docs, "README.md").as_deref(),
            Some(readme_id.as_str())
        );
        // EXCHANGE cannot be done on Box.
        let r = renameat2(
            &m.path("Documents/notes.txt"),
            &m.path("Documents/README.md"),
            libc::RENAME_EXCHANGE,
        );
        assert_eq!(errno_of(r), libc::EINVAL);

        // Plain rename over a file replaces it (the old one goes to the trash).
        std::fs::rename(m.path("Documents/notes.txt"), m.path("Documents/README.md"))
            .expect("rename over");
        assert_eq!(
            child_id(&e, &docs, "README.md").as_deref(),
            Some(notes_id.as_str())
        );
        assert!(child_id(&e, &docs, "notes.txt").is_none());
        let old = api_get(&e, &format!("/files/{readme_id}/trash"));
        assert_eq!(old["item_status"], "trashed");
        assert_eq!(
            std::fs::read(m.path("Documents/README.md")).expect("read"),
            notes
        );

        // Directories: not over a file, not over a non-empty directory, yes over an empty one.
        assert_eq!(
            errno_of(std::fs::rename(m.path("Archive"), m.path("Welcome.txt"))),
            libc::ENOTDIR
        );
        assert_eq!(
            errno_of(std::fs::rename(m.path("Welcome.txt"), m.path("Archive"))),
            libc::EISDIR
        );
        assert_eq!(
            errno_of(std::fs::rename(m.path("Archive"), m.path("Documents"))),
            libc::ENOTEMPTY
        );
        std::fs::create_dir(m.path("Empty")).expect("mkdir");
        let archive_id = child_id(&e, "0", "Archive").expect("archive");
        std::fs::rename(m.path("Archive"), m.path("Empty")).expect("dir over empty dir");
        assert_eq!(
            child_id(&e, "0", "Empty").as_deref(),
            Some(archive_id.as_str())
        );
        assert!(child_id(&e, "0", "Archive").is_none());
        // A directory cannot move under itself.
        assert_eq!(
            errno_of(std::fs::rename(
                m.path("Documents"),
                m.path("Documents/Reports/x")
            )),
            libc::EINVAL
        );
        // Case-only rename of the same item.
        std::fs::rename(m.path("Welcome.txt"), m.path("WELCOME.txt")).expect("case rename");
        assert!(child_id(&e, "0", "WELCOME.txt").is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_box_refuses_get_clear_errnos() {
    let emu = demo_emu(None).await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        assert_eq!(
            errno_of(std::fs::create_dir(m.path("back\\slash"))),
            libc::EINVAL
        );
        assert_eq!(
            errno_of(std::fs::create_dir(m.path("trailing "))),
            libc::EINVAL
        );
        assert_eq!(
            errno_of(std::fs::create_dir(m.path("tab\there"))),
            libc::EINVAL
        );
        let long = "x".repeat(256);
        assert_eq!(
            errno_of(std::fs::create_dir(m.path(&long))),
            libc::ENAMETOOLONG
        );
        assert_eq!(
            errno_of(std::fs::metadata(m.path(&long))),
            libc::ENAMETOOLONG
        );
        // 255 characters of two bytes each: long in bytes, fine for Box.
        let wide = "é".repeat(255);
        std::fs::create_dir(m.path(&wide)).expect("255-character name");
        assert!(child_id(&e, "0", &wide).is_some());
        let not_utf8 = std::ffi::OsStr::from_bytes(b"bad\xffname");
        assert_eq!(
            errno_of(std::fs::create_dir(m.root.join(not_utf8))),
            libc::EINVAL
        );
        assert_eq!(
            errno_of(std::fs::metadata(m.root.join(not_utf8))),
            libc::ENOENT
        );
        // New files follow the same rules.
        assert_eq!(
            errno_of(std::fs::write(m.path("back\\slash.txt"), b"x")),
            libc::EINVAL
        );
        assert_eq!(
            errno_of(std::fs::write(m.path(&long), b"x")),
            libc::ENAMETOOLONG
        );

        // Box takes names that differ only in case for one name: a second spelling is
        // EEXIST at once, for a new file, a folder and a rename, and the first one stays.
        assert_eq!(
            errno_of(std::fs::write(m.path("welcome.txt"), b"other")),
            libc::EEXIST
        );
        assert_eq!(
            errno_of(std::fs::create_dir(m.path("welcome.TXT"))),
            libc::EEXIST
        );
        std::fs::write(m.path("draft.txt"), b"a draft").unwrap();
        assert_eq!(
            errno_of(std::fs::rename(m.path("draft.txt"), m.path("WELCOME.txt"))),
            libc::EEXIST
        );
        // Not yet on Box (still open): renamed here only, and refused the same.
        let open = std::fs::File::create(m.path("local.txt")).unwrap();
        assert_eq!(
            errno_of(std::fs::rename(m.path("local.txt"), m.path("Welcome.TXT"))),
            libc::EEXIST
        );
        drop(open);
        let names = box_names(&m.root);
        assert!(names.contains(&"Welcome.txt".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("conflict")), "{names:?}");
        assert!(std::fs::read_to_string(m.path("Welcome.txt"))
            .unwrap()
            .starts_with("Hello from the Box emulator"));
        // Its own name in another case is a rename of it.
        std::fs::rename(m.path("Welcome.txt"), m.path("WELCOME.txt")).unwrap();
        assert!(child_id(&e, "0", "WELCOME.txt").is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_l_of_a_big_folder_costs_two_listing_calls_and_nothing_per_entry() {
    let log = tempfile::NamedTempFile::new().expect("log");
    let emu = demo_emu(Some(log.path())).await;
    let folder = emu.mkdir("0", "Big").await;
    {
        use box_emulator::store::ItemKind;
        let mut store = emu.emulator().shared.store();
        let admin = store.admin;
        let parent: u64 = folder.parse().expect("id");
        let now = chrono::Utc::now();
        for i in 0..2000 {
            let kind = if i % 10 == 0 {
                ItemKind::Folder
            } else {
                ItemKind::File
            };
            let item = store.new_item(kind, &format!("entry {i:04}"), parent, admin, admin, now);
            store.insert_item(item);
        }
    }
    let e = emu.clone();
    let log_path = log.path().to_path_buf();
    blocking(move || {
        let m = TestMount::start(&e, &["--read-only"]);
        std::fs::write(&log_path, b"").expect("reset log");
        let out = Command::new("ls")
            .arg("-l")
            .arg(m.path("Big"))
            .output()
            .expect("ls");
        assert!(out.status.success());
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(lines, 2001, "total line plus 2000 entries");
        let listings = count_requests(&log_path, "GET", |p| p.ends_with("/items"));
        let per_entry = count_requests(&log_path, "GET", |p| {
            (p.starts_with("/2.0/files/") || p.starts_with("/2.0/folders/"))
                && !p.ends_with("/items")
        });
        // Subfolders are listed ahead of a walk: those listings are not per-entry stat calls,
        // but the folder itself must take at most two pages.
        let own = count_requests(&log_path, "GET", |p| {
            p == format!("/2.0/folders/{folder}/items")
        });
        assert!(own <= 2, "{own} listing calls for one folder of 2000");
        assert_eq!(per_entry, 0, "per-entry calls: {per_entry}");
        assert!(listings >= own);
        // A warm listing costs nothing at all.
        std::fs::write(&log_path, b"").expect("reset log");
        let _ = std::fs::metadata(m.path("Big/entry 1999")).expect("stat");
        let out = Command::new("ls")
            .arg("-l")
            .arg(m.path("Big"))
            .output()
            .expect("ls");
        assert!(out.status.success());
        assert_eq!(
            count_requests(&log_path, "GET", |p| p
                == format!("/2.0/folders/{folder}/items")),
            0
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmount_with_an_open_file_is_refused_then_lazy_works() {
    let emu = demo_emu(None).await;
    let e = emu.clone();
    blocking(move || {
        let mut m = TestMount::start(&e, &[]);
        let mut f = std::fs::File::open(m.path("Welcome.txt")).expect("open");
        let out = Command::new(env!("CARGO_BIN_EXE_boxfs"))
            .arg("unmount")
            .arg(&m.root)
            .output()
            .expect("unmount");
        assert!(!out.status.success(), "unmount of a busy mount must fail");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("busy"),
            "{out:?}"
        );
        let mut s = String::new();
        f.read_to_string(&mut s).expect("still readable");
        let out = Command::new(env!("CARGO_BIN_EXE_boxfs"))
            .args(["unmount", "--lazy"])
            .arg(&m.root)
            .output()
            .expect("unmount --lazy");
        assert!(out.status.success(), "{out:?}");
        drop(f);
        let status = m.wait_exit(std::time::Duration::from_secs(10));
        // Once in a whole test run the daemon exited 1 here; its log says why.
        assert!(
            status.success(),
            "daemon exit: {status}; its log:\n{}",
            m.log()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_errors_are_reported_before_mounting() {
    let emu = demo_emu(None).await;
    let base = emu.base.clone();
    let token = emu.token.clone();
    blocking(move || {
        let dir = tempfile::tempdir().expect("tmp");
        let mp = dir.path().join("mnt");
        std::fs::create_dir(&mp).expect("mkdir");
        let run = |args: &[&str], mp: &Path| {
            Command::new(env!("CARGO_BIN_EXE_boxfs"))
                .arg("mount")
                .arg(mp)
                .args(args)
                .arg("--cache-dir")
                .arg(dir.path().join("cache"))
                .env_remove("BOXFS_TOKEN")
                .output()
                .expect("boxfs runs")
        };
        let bad_token = run(&["--api-url", &base, "--token", "wrong"], &mp);
        assert!(!bad_token.status.success());
        assert!(
            String::from_utf8_lossy(&bad_token.stderr).contains("cannot sign in"),
            "{bad_token:?}"
        );
        let unreachable = run(&["--api-url", "http://127.0.0.1:9", "--token", "x"], &mp);
        assert!(!unreachable.status.success());
        let missing = run(
            &["--api-url", &base, "--token", &token],
            &dir.path().join("nope"),
        );
        assert!(!missing.status.success());
        assert!(
            String::from_utf8_lossy(&missing.stderr).contains("nope"),
            "{missing:?}"
        );
        std::fs::write(mp.join("file"), b"x").expect("write");
        let nonempty = run(&["--api-url", &base, "--token", &token], &mp);
        assert!(!nonempty.status.success());
        assert!(
            String::from_utf8_lossy(&nonempty.stderr).contains("not empty"),
            "{nonempty:?}"
        );
        std::fs::remove_file(mp.join("file")).expect("rm");
        let no_creds = run(&["--api-url", &base], &mp);
        assert!(!no_creds.status.success());
        assert!(
            String::from_utf8_lossy(&no_creds.stderr).contains("--token"),
            "{no_creds:?}"
        );
        let bad_root = run(
            &[
                "--api-url",
                &base,
                "--token",
                &token,
                "--root-folder-id",
                "999999",
            ],
            &mp,
        );
        assert!(!bad_root.status.success(), "{bad_root:?}");
        // Nothing was left mounted by any of these.
        assert!(!common::mount::is_mounted(&mp));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_mount_returns_when_ready_and_sigterm_unmounts() {
    let emu = demo_emu(None).await;
    let base = emu.base.clone();
    let token = emu.token.clone();
    blocking(move || {
        let dir = tempfile::tempdir().expect("tmp");
        let mp = dir.path().join("mnt");
        std::fs::create_dir(&mp).expect("mkdir");
        let out = Command::new(env!("CARGO_BIN_EXE_boxfs"))
            .arg("mount")
            .arg(&mp)
            .args(["--api-url", &base, "--token", &token, "--cache-dir"])
            .arg(dir.path().join("cache"))
            .output()
            .expect("boxfs mount");
        assert!(out.status.success(), "{out:?}");
        // Ready when the command returned: no waiting needed.
        assert!(std::fs::metadata(mp.join("Welcome.txt")).is_ok());
        let pid = Command::new("pgrep")
            .args(["-f", &format!("boxfs mount {}", mp.display())])
            .output()
            .expect("pgrep");
        let pid: i32 = String::from_utf8_lossy(&pid.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("daemon pid");
        // SAFETY: plain kill(2).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let gone = eventually(std::time::Duration::from_secs(10), || {
            !common::mount::is_mounted(&mp)
        });
        assert!(gone.is_some(), "SIGTERM did not unmount");
    })
    .await;
}

/// What Box has no counterpart for gets the errno a filesystem without it gives: links,
/// symbolic links and special files are EPERM (and nothing reaches Box), ioctls ENOTTY; fsync
/// of a directory succeeds (namespace changes are on Box when their call returns); `cp` within
/// the mount and `posix_fallocate` work through the kernel's fallbacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_special_files_are_refused_and_fallbacks_work() {
    let emu = demo_emu(None).await;
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        let welcome = m.path("Welcome.txt");
        assert_eq!(
            errno_of(std::os::unix::fs::symlink("Welcome.txt", m.path("sym"))),
            libc::EPERM
        );
        assert_eq!(
            errno_of(std::fs::hard_link(&welcome, m.path("hard"))),
            libc::EPERM
        );
        let fifo = CString::new(m.path("fifo").as_os_str().as_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        let made = unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
        assert_eq!(made, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPERM)
        );
        for name in ["sym", "hard", "fifo"] {
            assert!(child_id(&e, "0", name).is_none(), "{name} reached Box");
        }

        let file = std::fs::File::open(&welcome).expect("open");
        let mut flags: libc::c_long = 0;
        // SAFETY: FS_IOC_GETFLAGS writes one long into `flags`.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
        assert_eq!(r, -1);
        let ioctl_errno = std::io::Error::last_os_error().raw_os_error();
        assert!(
            matches!(ioctl_errno, Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP)),
            "{ioctl_errno:?}"
        );
        std::fs::File::open(&m.root)
            .expect("open the root")
            .sync_all()
            .expect("fsync of a directory");

        let copy = m.path("Welcome copy.txt");
        std::fs::copy(&welcome, &copy).expect("cp within the mount");
        assert_eq!(
            std::fs::read(&copy).expect("read"),
            std::fs::read(&welcome).expect("read")
        );
        let out = std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .expect("open");
        // SAFETY: a valid descriptor; the range is in bounds of off_t.
        let r = unsafe { libc::posix_fallocate(out.as_raw_fd(), 0, 4096) };
        assert_eq!(r, 0, "posix_fallocate");
        drop(out);
        assert_eq!(std::fs::metadata(&copy).expect("stat").len(), 4096);
        let id = child_id(&e, "0", "Welcome copy.txt").expect("the copy is on Box");
        assert_eq!(api_get(&e, &format!("/files/{id}"))["size"], 4096);
    })
    .await;
}

/// Box allows names a directory entry cannot carry; the emulator's API refuses most of them,
/// so they go into its store directly. Such items are left out with a warning, and the rest
/// of the folder lists and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_linux_cannot_show_are_left_out_and_the_folder_still_lists() {
    use box_emulator::store::{ItemKind, Version};
    let emu = Arc::new(TestEmu::start().await);
    let long = "l".repeat(256);
    {
        let mut store = emu.emulator().shared.store();
        let admin = store.admin;
        let root = store.users[&admin].root_folder;
        let now = chrono::Utc::now();
        for name in ["a/b", "nul\0x", ".", "..", long.as_str(), "fine.txt"] {
            let data = bytes::Bytes::from(format!("content of {name}"));
            let sha1 = hex::encode(Sha1::digest(&data));
            let size = data.len() as u64;
            store.blobs.insert(sha1.clone(), data.into());
            let mut f = store.new_item(ItemKind::File, name, root, admin, admin, now);
            let id = store.alloc_id();
            f.versions.push(Version {
                id,
                sha1,
                size,
                name: name.into(),
                created_at: now,
                modified_by: admin,
            });
            store.insert_item(f);
        }
    }
    let e = emu.clone();
    tokio::task::spawn_blocking(move || {
        let m = TestMount::start(&e, &[]);
        assert_eq!(box_names(&m.root), vec!["fine.txt".to_string()]);
        assert_eq!(
            std::fs::read_to_string(m.path("fine.txt")).expect("read"),
            "content of fine.txt"
        );
        // The log is written by the daemon as it goes: give a loaded machine a moment.
        let logged = eventually(std::time::Duration::from_secs(5), || {
            m.log().contains("leaving out Box item")
        });
        assert!(logged.is_some(), "{}", m.log());
    })
    .await
    .expect("test body");
}

/// POSIX: a directory's modification and change times move when it gains or loses an entry
/// (make, remove, rename in and out), as `make` and backup tools expect.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_s_times_move_when_its_entries_change() {
    let emu = demo_emu(None).await;
    blocking(move || {
        let m = TestMount::start(&emu, &[]);
        std::fs::create_dir(m.path("a")).unwrap();
        std::fs::create_dir(m.path("b")).unwrap();
        let times = |p: &str| {
            let md = std::fs::metadata(m.path(p)).unwrap();
            (md.mtime_nsec() + md.mtime() * 1_000_000_000, md.ctime())
        };
        let steps: [(&str, &dyn Fn()); 5] = [
            ("a", &|| std::fs::write(m.path("a/f"), b"x").unwrap()),
            ("a", &|| std::fs::create_dir(m.path("a/d")).unwrap()),
            ("b", &|| {
                std::fs::rename(m.path("a/f"), m.path("b/f")).unwrap()
            }),
            ("b", &|| std::fs::remove_file(m.path("b/f")).unwrap()),
            ("a", &|| std::fs::remove_dir(m.path("a/d")).unwrap()),
        ];
        for (dir, step) in steps {
            let before = times(dir);
            std::thread::sleep(std::time::Duration::from_millis(1100));
            step();
            let after = times(dir);
            assert!(
                after.0 > before.0 && after.1 > before.1,
                "{dir}: {before:?} -> {after:?}"
            );
        }
    })
    .await;
}

#[test]
fn a_mount_of_the_embedded_emulator_forgets_what_an_earlier_one_cached() {
    // Each `boxfs mount --emulator` starts a new Box that hands out the same ids again, in
    // the same order: what an earlier run cached under an id is another file's now.
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let content = cache.path().join("emulator/content");
    let mut m = TestMount::start_embedded(&["--cache-dir", cache_dir]);
    let welcome = std::fs::read(m.path("Welcome.txt")).unwrap();
    let cached = xattr_of(&m.path("Welcome.txt"), "user.box.id");
    let path = m.path("Documents/first.txt");
    std::fs::write(&path, b"the first run's words").unwrap();
    let first = xattr_of(&path, "user.box.id");
    assert!(m.unmount().success(), "unmount; log:\n{}", m.log());
    assert!(
        content.join(&cached).is_dir(),
        "the read is in the content cache"
    );
    // A staged file of that run (its upload never happened): its Box is gone too, and the
    // mount says so on its standard error before it is ready.
    let staging = cache.path().join("emulator/staging");
    std::fs::write(staging.join("0-1-1.json"), b"{}").unwrap();
    std::fs::write(staging.join("0-1-1.data"), b"unsent").unwrap();
    // What a mount of Box on the same mount point keeps beside it is not the demo's.
    let real_staging = cache.path().join("staging");
    std::fs::create_dir_all(&real_staging).unwrap();
    std::fs::write(real_staging.join("0-2-2.json"), b"{}").unwrap();
    std::fs::write(real_staging.join("0-2-2.data"), b"a real account's data").unwrap();

    let mut m = TestMount::start_embedded(&["--cache-dir", cache_dir]);
    assert!(
        !content.join(&cached).exists(),
        "the earlier run's content is gone"
    );
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    assert_eq!(
        std::fs::read(real_staging.join("0-2-2.data")).unwrap(),
        b"a real account's data"
    );
    let path = m.path("Documents/second.txt");
    std::fs::write(&path, b"the second run's text").unwrap();
    assert_eq!(xattr_of(&path, "user.box.id"), first, "the same id again");
    assert_eq!(std::fs::read(&path).unwrap(), b"the second run's text");
    assert_eq!(std::fs::read(m.path("Welcome.txt")).unwrap(), welcome);
    assert!(m.unmount().success(), "unmount; log:\n{}", m.log());
}

/// The value of extended attribute `name` of `path`.
fn xattr_of(path: &Path, name: &str) -> String {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(path)
        .output()
        .expect("getfattr runs");
    assert!(out.status.success(), "getfattr: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
