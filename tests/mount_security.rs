//! What a running mount shows of itself to other local users: no secret in the daemon's
//! command line, no inherited descriptor, no file or directory others can read whatever the
//! umask; and what it refuses: a second daemon on one cache directory, a cache directory
//! full of someone's files, root's environment passed to a user's daemon, a runtime
//! directory planted by someone else. Needs root and /dev/fuse.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use boxfs::daemon::record::DaemonRecord;
use common::mount::{eventually, is_mounted};
use common::TestEmu;

const BOXFS: &str = env!("CARGO_BIN_EXE_boxfs");

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o777
}

/// Runs `boxfs ARGS` from a shell with umask 000 and descriptor 9 open on `inherited`.
fn boxfs_with_umask_000(args: &[&str], inherited: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec 9<\"$0\"; exec \"$@\"")
        .arg(inherited)
        .arg(BOXFS)
        .args(args)
        .env("BOXFS_CONFIG", "/dev/null")
        .env_remove("BOXFS_PROFILE")
        .env_remove("BOXFS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("sh runs")
}

fn unmount(mnt: &Path) {
    let out = Command::new(BOXFS)
        .arg("unmount")
        .arg(mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "boxfs unmount: {out:?}");
}

/// Unmounts when dropped, so a failing test leaves no mount behind.
struct UnmountOnDrop(std::path::PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("fusermount3").arg("-uz").arg(&self.0).output();
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_mount_shows_no_secret_and_nothing_it_writes_is_readable_by_others() {
    let t = TestEmu::start().await;
    t.upload_file("0", "hello.txt", b"hello from Box").await;
    let (base, token) = (t.base.clone(), t.token.clone());
    blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let cache = dir.path().join("cache");
        let planted = dir.path().join("inherited.txt");
        std::fs::write(&planted, b"root's open file").unwrap();
        let token_flag = format!("--token={token}");
        let out = boxfs_with_umask_000(
            &[
                "mount",
                mnt.to_str().unwrap(),
                "--api-url",
                &base,
                &token_flag,
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            &planted,
        );
        let _guard = UnmountOnDrop(mnt.clone());
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read(mnt.join("hello.txt")).unwrap(),
            b"hello from Box"
        );

        let daemon = DaemonRecord::find(&mnt).expect("the daemon recorded itself");
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", daemon.pid)).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(cmdline.contains(" mount "), "{cmdline}");
        assert!(!cmdline.contains(&token), "the token is in argv: {cmdline}");
        assert!(
            !cmdline.contains(&base),
            "the API URL is in argv: {cmdline}"
        );
        for fd in std::fs::read_dir(format!("/proc/{}/fd", daemon.pid)).unwrap() {
            let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
            assert_ne!(target, planted, "the daemon inherited descriptor 9");
        }

        // Private whatever the umask.
        let record_dir = daemon.control_socket.as_ref().unwrap().parent().unwrap();
        assert_eq!(mode(record_dir), 0o700);
        let socket = daemon.control_socket.clone().unwrap();
        assert_eq!(mode(&socket), 0o600, "{}", socket.display());
        for entry in std::fs::read_dir(record_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "json") {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
        assert_eq!(mode(&cache), 0o700);
        for file in ["boxfs.log", "boxfs.lock", ".boxfs-cache"] {
            assert_eq!(mode(&cache.join(file)), 0o600, "{file}");
        }
        let lock = std::fs::read_to_string(cache.join("boxfs.lock")).unwrap();
        assert_eq!(lock.trim(), daemon.pid.to_string());

        // A second mount on the same cache directory is refused, naming the first daemon.
        let mnt2 = dir.path().join("mnt2");
        std::fs::create_dir(&mnt2).unwrap();
        let second = Command::new(BOXFS)
            .arg("mount")
            .arg(&mnt2)
            .args(["--foreground", "--api-url", &base, "--token", &token])
            .arg("--cache-dir")
            .arg(&cache)
            .env("BOXFS_CONFIG", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&second.stderr);
        assert!(!second.status.success(), "{second:?}");
        assert!(
            said.contains("in use") && said.contains(&format!("pid {}", daemon.pid)),
            "{said}"
        );
        assert!(!is_mounted(&mnt2));

        unmount(&mnt);
        assert!(
            eventually(Duration::from_secs(20), || DaemonRecord::find(&mnt)
                .is_none())
            .is_some()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_directory_holding_someones_files_is_refused_and_left_intact() {
    let t = TestEmu::start().await;
    let (base, token) = (t.base.clone(), t.token.clone());
    blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let theirs = dir.path().join("documents");
        std::fs::create_dir_all(theirs.join("content")).unwrap();
        std::fs::write(theirs.join("content/important.txt"), b"keep me").unwrap();
        std::fs::write(theirs.join("notes.txt"), b"mine").unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(BOXFS)
            .arg("mount")
            .arg(&mnt)
            .args(["--foreground", "--api-url", &base, "--token", &token])
            .arg("--cache-dir")
            .arg(&theirs)
            .env("BOXFS_CONFIG", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{out:?}");
        assert!(
            said.contains("not empty") && said.contains(theirs.to_str().unwrap()),
            "{said}"
        );
        assert!(!is_mounted(&mnt));
        assert_eq!(
            std::fs::read(theirs.join("content/important.txt")).unwrap(),
            b"keep me"
        );
        assert_eq!(std::fs::read(theirs.join("notes.txt")).unwrap(), b"mine");
        let mut names: Vec<String> = std::fs::read_dir(&theirs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["content", "notes.txt"]);
        assert_eq!(mode(&theirs), 0o755, "its mode is not touched either");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_for_a_user_gets_the_users_environment_only() {
    let t = TestEmu::start().await;
    let (base, token) = (t.base.clone(), t.token.clone());
    blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!("[profiles.emu]\napi_url = \"{base}\"\ntoken = \"{token}\"\n"),
        )
        .unwrap();
        let options = format!(
            "setuid=root,config={},cache_dir={}",
            config.display(),
            dir.path().join("cache").display()
        );
        let out = Command::new(BOXFS)
            .args(["mount-helper", "emu", mnt.to_str().unwrap(), "-o", &options])
            .env("PLANTED_BY_ROOT", "1")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("RUST_LOG", "warn")
            .env_remove("BOXFS_CONFIG")
            .env_remove("BOXFS_PROFILE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _guard = UnmountOnDrop(mnt.clone());
        assert!(out.status.success(), "{out:?}");
        let daemon = DaemonRecord::find(&mnt).expect("the daemon recorded itself");
        let environ = std::fs::read(format!("/proc/{}/environ", daemon.pid)).unwrap();
        let environ: Vec<String> = String::from_utf8_lossy(&environ)
            .split('\0')
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect();
        for absent in ["PLANTED_BY_ROOT=", "XDG_CONFIG_HOME="] {
            assert!(
                !environ.iter().any(|v| v.starts_with(absent)),
                "{absent} in {environ:?}"
            );
        }
        for present in [
            "HOME=/root",
            "USER=root",
            "RUST_LOG=warn",
            "BOXFS_MOUNT_SOURCE=emu",
        ] {
            assert!(
                environ.iter().any(|v| v == present),
                "{present} in {environ:?}"
            );
        }
        unmount(&mnt);
        assert!(
            eventually(Duration::from_secs(20), || DaemonRecord::find(&mnt)
                .is_none())
            .is_some()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_writes_the_configuration_and_tokens_private_under_umask_000() {
    let t = TestEmu::start().await;
    let (base, token) = (t.base.clone(), t.token.clone());
    blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("umask 000; exec \"$@\"")
            .arg("sh")
            .arg(BOXFS)
            .args(["login", "--api-url", &base, "--token", &token])
            .env("HOME", dir.path().join("home"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .stdin(Stdio::null());
        for (var, _) in std::env::vars() {
            if var.starts_with("BOXFS_") {
                cmd.env_remove(var);
            }
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        for private_dir in ["config", "config/boxfs", "data", "data/boxfs"] {
            assert_eq!(mode(&dir.path().join(private_dir)), 0o700, "{private_dir}");
        }
        for private_file in ["config/boxfs/config.toml", "data/boxfs/tokens.json"] {
            assert_eq!(
                mode(&dir.path().join(private_file)),
                0o600,
                "{private_file}"
            );
        }
    })
    .await;
}

/// Runs `boxfs ARGS` as user nobody (uid and gid 65534) with `tmp` as its temporary
/// directory and no `XDG_RUNTIME_DIR`: the case of a user whose runtime directory is
/// `boxfs-UID` under the temporary directory, where anyone may have planted it first.
fn boxfs_as_nobody(args: &[&str], tmp: &Path) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BOXFS);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", tmp)
        .env("TMPDIR", tmp)
        .env("BOXFS_CONFIG", "/dev/null")
        .stdin(Stdio::null());
    // SAFETY: setgroups, setgid and setuid are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("boxfs runs")
}

#[test]
fn a_mount_refuses_a_runtime_directory_someone_else_planted() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::os::unix::fs::chown(&mnt, Some(65534), Some(65534)).unwrap();
    let runtime = tmp.path().join("boxfs-65534");
    let args = [
        "mount",
        mnt.to_str().unwrap(),
        "--foreground",
        "--api-url",
        "http://127.0.0.1:9",
        "--token",
        "x",
    ];

    // A directory of root's, open to all, where nobody's records would go.
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = boxfs_as_nobody(&args, tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unsafe runtime directory")
            && stderr.contains(runtime.to_str().unwrap())
            && stderr.contains("root"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&runtime).unwrap().count(), 0);

    // A link to a directory that is nobody's own is refused too: it could be swapped.
    std::fs::remove_dir(&runtime).unwrap();
    let target = tmp.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::symlink(&target, &runtime).unwrap();
    let out = boxfs_as_nobody(&args, tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}
