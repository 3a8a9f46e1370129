//! Real mounts with `--posix-attributes`: modes (`chmod`, `+x`, `mkdir -m`, a new file's
//! mode) and symbolic links (`ln -s`, `readlink`) kept in Box metadata, seen by another
//! mount, kept across a Box web rename, and a git checkout that is clean after a remount.
//! Without the option: a mode changes nothing and `ln -s` is EPERM.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::mount::TestMount;
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

/// The item's `global.properties` as Box keeps them.
fn properties(emu: &TestEmu, kind: &str, id: &str) -> Value {
    api(
        emu,
        Method::GET,
        &format!("/{kind}/{id}/metadata/global/properties"),
        None,
    )
}

fn box_id(path: &Path) -> String {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", "user.box.id"])
        .arg(path)
        .output()
        .expect("getfattr runs");
    assert!(out.status.success(), "{path:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The Box id of `name` in folder `folder` (the id of a symbolic link cannot be read as an
/// attribute: Linux keeps `user.` attributes off links).
fn id_in(emu: &TestEmu, folder: &str, name: &str) -> String {
    let items = api(emu, Method::GET, &format!("/folders/{folder}/items"), None);
    let entries = items["entries"].as_array().expect("entries");
    let found = entries.iter().find(|e| e["name"] == name).expect("listed");
    found["id"].as_str().unwrap().to_string()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?} in {dir:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn modes_and_symlinks_are_kept_on_box() {
    let emu = TestEmu::start().await;
    let docs = emu.mkdir("0", "Docs").await;
    emu.upload_file(&docs, "run.sh", b"#!/bin/sh\necho hi\n")
        .await;
    blocking(move || {
        let m = TestMount::start(&emu, &["--posix-attributes"]);
        let script = m.path("Docs/run.sh");
        assert_eq!(mode(&script), libc::S_IFREG | 0o644, "the default");

        // chmod +x: on Box as octal text, shown at once.
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(mode(&script), libc::S_IFREG | 0o755);
        let id = box_id(&script);
        assert_eq!(properties(&emu, "files", &id)["posix_mode"], "100755");
        // Set-id bits are kept too; a second chmod patches the instance.
        fs::set_permissions(&script, fs::Permissions::from_mode(0o4750)).unwrap();
        assert_eq!(mode(&script) & 0o7777, 0o4750);
        assert_eq!(properties(&emu, "files", &id)["posix_mode"], "104750");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();

        // mkdir -m, and a new file created with a mode (kept after its upload).
        fs::DirBuilder::new()
            .mode(0o700)
            .create(m.path("Docs/private"))
            .unwrap();
        assert_eq!(mode(&m.path("Docs/private")), libc::S_IFDIR | 0o700);
        let private_id = box_id(&m.path("Docs/private"));
        assert_eq!(
            properties(&emu, "folders", &private_id)["posix_mode"],
            "40700"
        );
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o750)
            .open(m.path("Docs/tool"))
            .unwrap();
        assert_eq!(mode(&m.path("Docs/tool")) & 0o777, 0o750);
        // A plain new file costs no metadata call.
        fs::write(m.path("Docs/plain.txt"), b"x").unwrap();
        let plain_id = box_id(&m.path("Docs/plain.txt"));
        let (status, _) =
            rt().block_on(emu.get(&format!("/files/{plain_id}/metadata/global/properties")));
        assert_eq!(status, 404);

        // ln -s: a link, read back with readlink, followed by the kernel.
        symlink("run.sh", m.path("Docs/latest")).unwrap();
        let link = m.path("Docs/latest");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("run.sh"));
        assert_eq!(fs::read(&link).unwrap(), b"#!/bin/sh\necho hi\n");
        let link_id = id_in(&emu, &docs, "latest");
        let marks = properties(&emu, "files", &link_id);
        assert_eq!(marks["posix_mode"], "120777");
        assert_eq!(marks["posix_symlink"], "run.sh");
        // On Box the link is a small file holding its target.
        let content = rt().block_on(async {
            let client = emu.client(box_client::RetryPolicy::default());
            client
                .download(&link_id)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
        assert_eq!(&content[..], b"run.sh");
        let err = symlink("elsewhere", &link).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));

        // Box keeps no owners: only the mount's own.
        let own = fs::metadata(&script).unwrap();
        std::os::unix::fs::chown(&script, Some(own.uid()), Some(own.gid())).unwrap();
        let err = std::os::unix::fs::chown(&script, Some(own.uid() + 1), None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));

        // Renamed on Box's web app: the metadata goes with the item.
        api(
            &emu,
            Method::PUT,
            &format!("/files/{id}"),
            Some(json!({"name": "start.sh"})),
        );
        drop(m);

        // Another mount of the account (no store of its own) sees it all.
        let m = TestMount::start(&emu, &["--posix-attributes"]);
        assert_eq!(mode(&m.path("Docs/start.sh")), libc::S_IFREG | 0o755);
        assert_eq!(mode(&m.path("Docs/private")), libc::S_IFDIR | 0o700);
        assert_eq!(mode(&m.path("Docs/tool")) & 0o777, 0o750);
        assert_eq!(
            fs::read_link(m.path("Docs/latest")).unwrap(),
            Path::new("run.sh")
        );
        drop(m);

        // Without the option: the defaults, a mode changes nothing, no new links.
        let m = TestMount::start(&emu, &[]);
        let start = m.path("Docs/start.sh");
        assert_eq!(mode(&start), libc::S_IFREG | 0o644);
        fs::set_permissions(&start, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(mode(&start), libc::S_IFREG | 0o644);
        assert!(fs::symlink_metadata(m.path("Docs/latest"))
            .unwrap()
            .is_file());
        let err = symlink("x", m.path("Docs/new-link")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert_eq!(properties(&emu, "files", &id)["posix_mode"], "100755");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_git_checkout_is_clean_after_a_remount() {
    let emu = TestEmu::start().await;
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().join("c").to_string_lossy().into_owned();
    let source = tempfile::tempdir().unwrap();
    blocking(move || {
        // A repository with an executable script, a symbolic link and a plain file.
        let src = source.path().join("repo");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("README"), "hello\n").unwrap();
        fs::write(src.join("bin/build.sh"), "#!/bin/sh\nmake\n").unwrap();
        fs::set_permissions(src.join("bin/build.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("bin/build.sh", src.join("build")).unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        git(&src, &["add", "."]);
        git(&src, &["commit", "-q", "-m", "first"]);

        let mut m = TestMount::start(&emu, &["--posix-attributes", "--cache-dir", &cache_arg]);
        let clone = m.path("repo");
        let url = format!("file://{}", src.display());
        git(&m.root, &["clone", "-q", &url, "repo"]);
        assert_eq!(git(&clone, &["status", "--porcelain"]), "");
        assert_eq!(mode(&clone.join("bin/build.sh")) & 0o111, 0o111);
        assert_eq!(
            fs::read_link(clone.join("build")).unwrap(),
            Path::new("bin/build.sh")
        );
        m.unmount();

        let m = TestMount::start(&emu, &["--posix-attributes", "--cache-dir", &cache_arg]);
        let clone = m.path("repo");
        assert_eq!(
            git(&clone, &["status", "--porcelain"]),
            "",
            "clean after a remount"
        );
        assert_eq!(mode(&clone.join("bin/build.sh")) & 0o111, 0o111);
        assert_eq!(
            fs::read_link(clone.join("build")).unwrap(),
            Path::new("bin/build.sh")
        );
        assert_eq!(git(&clone, &["config", "core.filemode"]).trim(), "true");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mode_changed_elsewhere_shows_within_seconds() {
    let emu = TestEmu::start().await;
    let docs = emu.mkdir("0", "Docs").await;
    let file = emu.upload_file(&docs, "tool", b"#!/bin/sh\n").await;
    let file_id = file["id"].as_str().unwrap().to_string();
    blocking(move || {
        let a = TestMount::start(&emu, &["--posix-attributes"]);
        let b = TestMount::start(&emu, &["--posix-attributes"]);
        assert_eq!(mode(&b.path("Docs/tool")) & 0o777, 0o644);
        fs::set_permissions(a.path("Docs/tool"), fs::Permissions::from_mode(0o700)).unwrap();
        let seen = common::mount::eventually(std::time::Duration::from_secs(10), || {
            mode(&b.path("Docs/tool")) & 0o777 == 0o700
        });
        assert!(
            seen.is_some(),
            "mount b still shows {:o}",
            mode(&b.path("Docs/tool"))
        );
        // And through Box's API, as another client would write it.
        rt().block_on(async {
            let client = emu.client(box_client::RetryPolicy::default());
            let patch = box_client::metadata::MetadataPatch::new().replace("posix_mode", "100711");
            let item = box_client::metadata::ItemRef::file(file_id.clone());
            client
                .update_metadata(&item, "global", "properties", &patch)
                .await
                .unwrap();
        });
        let seen = common::mount::eventually(std::time::Duration::from_secs(10), || {
            mode(&a.path("Docs/tool")) & 0o777 == 0o711
        });
        assert!(
            seen.is_some(),
            "mount a still shows {:o}",
            mode(&a.path("Docs/tool"))
        );
    })
    .await;
}
