//! Real FUSE mounts for integration tests: runs the `boxfs` binary (`mount --foreground`)
//! against a test emulator on a fresh temporary mount point, waits until the kernel serves
//! it, and unmounts it when dropped. Needs /dev/fuse and root (or fusermount3).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestEmu;

/// The variables that choose proxies and trusted CAs: a test mount gets only those its test
/// sets.
pub const NETWORK_VARS: [&str; 10] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// How long `TestMount::start` waits for the daemon to say it serves the mount.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestMount {
    pub root: PathBuf,
    pub cache_dir: PathBuf,
    pub log_file: PathBuf,
    child: Option<Child>,
    _dirs: tempfile::TempDir,
}

impl TestMount {
    /// Mounts the emulator's admin account with `extra` flags added.
    pub fn start(emu: &TestEmu, extra: &[&str]) -> TestMount {
        Self::start_with_base(&emu.base, &emu.token, extra)
    }

    pub fn start_with_base(base: &str, token: &str, extra: &[&str]) -> TestMount {
        Self::start_with_env(Some(base), token, extra, &[])
    }

    /// Mounts with `env` set on the boxfs process (the proxy and CA variables of the test
    /// run's own environment are not passed on); with no `base`, Box's own host names.
    pub fn start_with_env(
        base: Option<&str>,
        token: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> TestMount {
        let mut backend = vec!["--token", token];
        if let Some(base) = base {
            backend.extend(["--api-url", base]);
        }
        Self::start_on(&backend, extra, env)
    }

    /// Mounts the emulator that `boxfs mount --emulator` starts inside the daemon.
    pub fn start_embedded(extra: &[&str]) -> TestMount {
        Self::start_on(&["--emulator"], extra, &[])
    }

    /// Mounts the Box that `backend` names (`--token` and `--api-url`, or `--emulator`).
    fn start_on(backend: &[&str], extra: &[&str], env: &[(&str, &str)]) -> TestMount {
        let dirs = tempfile::tempdir().expect("tempdir");
        let root = dirs.path().join("mnt");
        let cache_dir = dirs.path().join("cache");
        let log_file = dirs.path().join("boxfs.log");
        std::fs::create_dir(&root).expect("mount point");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxfs"));
        cmd.arg("mount")
            .arg(&root)
            .arg("--foreground")
            .args(backend);
        for var in NETWORK_VARS {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        if !extra.contains(&"--cache-dir") {
            cmd.arg("--cache-dir").arg(&cache_dir);
        }
        let mut child = cmd
            .arg("--log-file")
            .arg(&log_file)
            .args(extra)
            .env(boxfs::daemon::mount::READY_ENV, "1")
            // Whatever the user running the tests configured stays out of the test mounts.
            .env("BOXFS_CONFIG", "/dev/null")
            .env_remove("BOXFS_PROFILE")
            // The emulator enforces no rate limits unless a test asks (`--api-rate` wins).
            .env("BOXFS_API_RATE", "unlimited")
            .env("BOXFS_UPLOAD_RATE", "unlimited")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("boxfs runs");
        let stdout = child.stdout.take().expect("stdout");
        // The readiness line is read on its own thread, so a daemon that hangs before it
        // fails the test after `READY_TIMEOUT` instead of blocking it forever.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ready = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.contains("boxfs-mount-ready"));
            let _ = tx.send(ready);
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(true) => {}
            Ok(false) => panic!(
                "boxfs mount did not become ready: {:?}\n{}",
                child.wait(),
                std::fs::read_to_string(&log_file).unwrap_or_default()
            ),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = Command::new("fusermount3").arg("-uz").arg(&root).output();
                panic!(
                    "boxfs mount was not ready within {READY_TIMEOUT:?}; log:\n{}",
                    std::fs::read_to_string(&log_file).unwrap_or_default()
                );
            }
        }
        TestMount {
            root,
            cache_dir,
            log_file,
            child: Some(child),
            _dirs: dirs,
        }
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Unmounts through the CLI and waits for the daemon to exit; returns its exit status.
    pub fn unmount(&mut self) -> std::process::ExitStatus {
        let out = Command::new(env!("CARGO_BIN_EXE_boxfs"))
            .arg("unmount")
            .arg(&self.root)
            .output()
            .expect("boxfs unmount runs");
        assert!(
            out.status.success(),
            "boxfs unmount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_exit(Duration::from_secs(20))
    }

    /// Waits for the daemon to exit (kills it after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "the mount daemon did not exit within {limit:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon with SIGKILL (the mount is left stale).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        if let Some(child) = &self.child {
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
    }
}

/// Runs the `boxfs` binary with `args`, then `paths`, outside the configuration of whoever
/// runs the tests.
pub fn boxfs_cli(args: &[&str], paths: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_boxfs"))
        .args(args)
        .args(paths)
        .env("BOXFS_CONFIG", "/dev/null")
        .env_remove("BOXFS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .expect("boxfs runs")
}

/// `boxfs status --json` of the mount at `mountpoint`.
pub fn status_json(mountpoint: &Path) -> serde_json::Value {
    let out = boxfs_cli(&["status", "--json"], &[mountpoint]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

/// Polls `check` until it returns true or `limit` passes; returns how long it took.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

pub fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let p = path.to_string_lossy().to_string();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(p.as_str()))
}

impl Drop for TestMount {
    fn drop(&mut self) {
        if self.child.is_some() || is_mounted(&self.root) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.root)
                .output();
            if is_mounted(&self.root) {
                let _ = Command::new("umount").arg("-l").arg(&self.root).output();
            }
        }
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The emulator's request log so far: one JSON object per request (method, path, status …).
pub fn logged_requests(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Counts request-log lines matching `method` and a path predicate.
pub fn count_requests(log: &Path, method: &str, path_matches: impl Fn(&str) -> bool) -> usize {
    logged_requests(log)
        .into_iter()
        .filter(|v| v["method"] == method && v["path"].as_str().is_some_and(&path_matches))
        .count()
}

/// Whether `path` is a mount root's `.trash`, the link to Box's trash that the root lists
/// beside Box's items.
pub fn is_trash_link(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == ".trash")
        && std::fs::read_link(path).is_ok_and(|t| t == Path::new(".box-trash"))
}

/// The names in directory `dir`, sorted, as Box holds them: the root's `.trash` link is left
/// out.
pub fn box_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("ls {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| !is_trash_link(p))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
