//! Mounting the way the system does it, for real: `mount -t fuse.boxfs PROFILE DIR -o …`
//! through mount(8) and the helper `/sbin/mount.fuse.boxfs` (a symlink to the built binary,
//! installed for the test), `umount`, a refused option, mount(8)'s fake mode; and the
//! `setuid=USER` (checked with `-f`: a mount by another user would need /dev/fuse open to
//! it); and the readiness message systemd's `Type=notify` waits for. Needs root and /dev/fuse.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use boxfs::daemon::record::DaemonRecord;
use common::mount::{box_names, eventually, is_mounted};
use common::TestEmu;

/// Where mount(8) looks for the helper of type fuse.boxfs.
const HELPER: &str = "/sbin/mount.fuse.boxfs";

/// The helper installed as a symlink to the binary under test, removed when dropped. A helper
/// that is not such a symlink (a package's) is left alone and fails the test. Tests that use
/// it take turns (in blocking threads, never across an await).
struct InstalledHelper(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

static HELPER_IN_USE: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl InstalledHelper {
    fn install() -> InstalledHelper {
        let turn = HELPER_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        let binary = Path::new(env!("CARGO_BIN_EXE_boxfs"));
        match std::fs::read_link(HELPER) {
            Ok(target) if target.to_string_lossy().contains("/target/") => {
                std::fs::remove_file(HELPER).expect("replace an old test helper");
            }
            Ok(target) => panic!(
                "{HELPER} is installed (-> {}); not replacing it",
                target.display()
            ),
            Err(_) if Path::new(HELPER).exists() => {
                panic!("{HELPER} is installed; not replacing it")
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(binary, HELPER).expect("install the mount helper (root)");
        InstalledHelper(turn)
    }
}

impl Drop for InstalledHelper {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(HELPER);
    }
}

/// A configuration file with a profile `emu` for the test emulator, a mount point and a
/// cache directory.
struct Setup {
    dirs: tempfile::TempDir,
    config: PathBuf,
    mnt: PathBuf,
}

fn setup(t: &TestEmu) -> Setup {
    let dirs = tempfile::tempdir().unwrap();
    let config = dirs.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.emu]\napi_url = \"{}\"\ntoken = \"{}\"\napi_rate = \"unlimited\"\n",
            t.base, t.token
        ),
    )
    .unwrap();
    let mnt = dirs.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    Setup { dirs, config, mnt }
}

fn mount(args: &[&str]) -> Output {
    Command::new("mount")
        .args(args)
        .env_remove("BOXFS_PROFILE")
        .env_remove("BOXFS_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("mount(8) runs")
}

/// The source and type /proc/mounts shows for `path`.
fn mounted_as(path: &Path) -> Option<(String, String)> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let p = path.to_string_lossy().to_string();
    mounts.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        (fields.get(1) == Some(&p.as_str())).then(|| (fields[0].to_string(), fields[2].to_string()))
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_8_mounts_a_profile_with_options_and_umount_ends_the_daemon() {
    let t = TestEmu::start().await;
    t.mkdir("0", "Documents").await;
    t.upload_file("0", "hello.txt", b"hello from Box").await;
    let s = setup(&t);
    let mnt = s.mnt.clone();
    let options = format!(
        "config={},cache_dir={},log_file={},uid=1234,gid=2345,umask=077,_netdev,nofail,noexec",
        s.config.display(),
        s.dirs.path().join("cache").display(),
        s.dirs.path().join("boxfs.log").display()
    );
    blocking(move || {
        let _helper = InstalledHelper::install();
        let out = mount(&[
            "-t",
            "fuse.boxfs",
            "emu",
            mnt.to_str().unwrap(),
            "-o",
            &options,
        ]);
        assert!(
            out.status.success(),
            "mount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // mount(8) returned: the mount serves already.
        assert!(is_mounted(&mnt));
        // As the fstab line names it, so that `mount -a` sees it mounted and leaves it.
        assert_eq!(mounted_as(&mnt), Some(("emu".into(), "fuse.boxfs".into())));
        let fstab = mnt.with_file_name("fstab");
        std::fs::write(
            &fstab,
            format!("emu {} fuse.boxfs {options} 0 0\n", mnt.display()),
        )
        .unwrap();
        let out = mount(&["--fstab", fstab.to_str().unwrap(), "-a", "-v"]);
        assert!(out.status.success(), "mount -a: {:?}", out);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("already mounted"), "mount -a: {said}");
        assert_eq!(box_names(&mnt), ["Documents", "hello.txt"]);
        let file = mnt.join("hello.txt");
        assert_eq!(std::fs::read(&file).unwrap(), b"hello from Box");
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (1234, 2345, 0o600)
        );

        let daemon = DaemonRecord::find(&mnt).expect("the daemon recorded itself");
        let out = Command::new("umount").arg(&mnt).output().unwrap();
        assert!(out.status.success(), "umount: {:?}", out);
        assert!(!is_mounted(&mnt));
        assert!(
            eventually(Duration::from_secs(20), || DaemonRecord::find(&mnt)
                .is_none())
            .is_some(),
            "the daemon (pid {}) did not exit after umount",
            daemon.pid
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_8_refuses_an_unknown_option_and_fakes_without_mounting() {
    let t = TestEmu::start().await;
    let s = setup(&t);
    let mnt = s.mnt.clone();
    let config = format!("config={}", s.config.display());
    let (dir, config_file) = (s.dirs.path().to_path_buf(), s.config.clone());
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    blocking(move || {
        let _helper = InstalledHelper::install();
        let mp = mnt.to_str().unwrap();
        let out = mount(&[
            "-t",
            "fuse.boxfs",
            "emu",
            mp,
            "-o",
            &format!("{config},cache_szie=1G"),
        ]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unknown option cache_szie=1G"), "{stderr}");
        assert!(!is_mounted(&mnt));

        let out = mount(&["-t", "fuse.boxfs", "nosuchprofile", mp, "-o", &config]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("profile 'nosuchprofile'"), "{stderr}");

        // -f: everything but the mount itself.
        let out = mount(&["-f", "-t", "fuse.boxfs", "emu", mp, "-o", &config]);
        assert!(
            out.status.success(),
            "mount -f: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!is_mounted(&mnt));

        // setuid=USER: the helper becomes that user before it reads the configuration, so a
        // file only root may read is refused, and one the user may read is used.
        let with_user = format!("{config},setuid=nobody");
        let out = mount(&["-f", "-t", "fuse.boxfs", "emu", mp, "-o", &with_user]);
        assert!(
            !out.status.success(),
            "nobody read a file only root may read"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("ermission denied"), "{stderr}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = mount(&["-f", "-t", "fuse.boxfs", "emu", mp, "-o", &with_user]);
        assert!(
            out.status.success(),
            "mount -f as nobody: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = mount(&[
            "-f",
            "-t",
            "fuse.boxfs",
            "emu",
            mp,
            "-o",
            "setuid=no-such-user-x",
        ]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
    })
    .await;
}

/// What systemd's `Type=notify` waits for: READY=1 on $NOTIFY_SOCKET, sent by the foreground
/// mount once it serves, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_mount_tells_systemd_when_it_is_ready() {
    let t = TestEmu::start().await;
    t.upload_file("0", "ready.txt", b"ready").await;
    let s = setup(&t);
    let socket_path = s.dirs.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mnt = s.mnt.clone();
    let config = s.config.clone();
    blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_boxfs"))
            .args(["mount", "--foreground", "--profile", "emu", "--config"])
            .arg(&config)
            .arg(&mnt)
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove(boxfs::daemon::mount::READY_ENV)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
        assert_eq!(&buf[..n], b"READY=1");
        // Ready means served: the listing works at once.
        assert!(is_mounted(&mnt));
        assert!(mnt.join("ready.txt").exists());
        // SIGTERM (systemctl stop) unmounts and the daemon exits 0.
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}");
        assert!(!is_mounted(&mnt));
    })
    .await;
}
