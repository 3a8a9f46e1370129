//! The record a running mount daemon leaves for `boxfs unmount`: its pid and its staging
//! directory, in a small JSON file per mount point under the user's runtime directory
//! (`$XDG_RUNTIME_DIR/boxfs/`, or `boxfs-<uid>` in the temporary directory). Unmounting only
//! ends the kernel's session; the daemon then still uploads what is staged, so
//! `boxfs unmount` finds the daemon here and waits for it to exit, saying how many uploads
//! it waits for. The record also says which Box folder the mount shows and on which API,
//! so that `boxfs search` can print its results as paths inside a running mount.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::fs::staging::StagingDir;
use crate::mount::file_name_of;

/// How often `boxfs unmount` says it is still waiting.
const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub pid: u32,
    pub mountpoint: PathBuf,
    pub staging_dir: PathBuf,
    /// The Box folder shown at the mount point (`0`: All Files).
    #[serde(default)]
    pub root_folder_id: Option<String>,
    /// The API the mount talks to: the `api_url` setting (none: Box itself; `emulator`
    /// for `--emulator`, whose account nothing else reaches).
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(skip)]
    path: PathBuf,
}

fn runtime_dir() -> PathBuf {
    directories::BaseDirs::new()
        .and_then(|d| d.runtime_dir().map(|r| r.join("boxfs")))
        .unwrap_or_else(|| {
            // SAFETY: getuid cannot fail.
            let uid = unsafe { libc::getuid() };
            std::env::temp_dir().join(format!("boxfs-{uid}"))
        })
}

fn record_path(mountpoint: &Path) -> PathBuf {
    let abs = std::path::absolute(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    runtime_dir().join(format!("{}.json", file_name_of(&abs)))
}

/// Whether `pid` is a live process (a zombie waiting for its parent is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

impl DaemonRecord {
    /// Records this process as the daemon of `mountpoint` (best effort: a mount works
    /// without it, `boxfs unmount` then just does not wait).
    pub fn write(
        mountpoint: &Path,
        staging_dir: PathBuf,
        root_folder_id: String,
        api_url: Option<String>,
    ) -> Option<DaemonRecord> {
        let path = record_path(mountpoint);
        let record = DaemonRecord {
            pid: std::process::id(),
            mountpoint: std::path::absolute(mountpoint)
                .unwrap_or_else(|_| mountpoint.to_path_buf()),
            staging_dir,
            root_folder_id: Some(root_folder_id),
            api_url,
            path: path.clone(),
        };
        let write = || -> std::io::Result<()> {
            let dir = path.parent().expect("a file in a directory");
            std::fs::create_dir_all(dir)?;
            let tmp = path.with_extension("json.tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec(&record).map_err(std::io::Error::other)?,
            )?;
            std::fs::rename(&tmp, &path)
        };
        match write() {
            Ok(()) => Some(record),
            Err(e) => {
                log::warn!("cannot record the daemon in {}: {e}", path.display());
                None
            }
        }
    }

    /// The live daemon of `mountpoint`, if one recorded itself.
    pub fn find(mountpoint: &Path) -> Option<DaemonRecord> {
        let path = record_path(mountpoint);
        let bytes = std::fs::read(&path).ok()?;
        let mut record: DaemonRecord = serde_json::from_slice(&bytes).ok()?;
        record.path = path;
        alive(record.pid).then_some(record)
    }

    /// Every live daemon that recorded itself.
    pub fn running() -> Vec<DaemonRecord> {
        let Ok(dir) = std::fs::read_dir(runtime_dir()) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let bytes = std::fs::read(e.path()).ok()?;
                let mut record: DaemonRecord = serde_json::from_slice(&bytes).ok()?;
                record.path = e.path();
                alive(record.pid).then_some(record)
            })
            .collect()
    }

    /// Removes the record (the daemon is exiting).
    pub fn remove(&self) {
        if let Ok(bytes) = std::fs::read(&self.path) {
            if let Ok(r) = serde_json::from_slice::<DaemonRecord>(&bytes) {
                if r.pid != self.pid {
                    return;
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }

    /// Waits until the daemon has exited, telling the user about pending uploads.
    pub fn wait_for_exit(&self) {
        let pending = StagingDir::pending_count(&self.staging_dir);
        if pending > 0 {
            eprintln!(
                "boxfs: waiting for {pending} pending upload(s) to reach Box \
                 (daemon pid {})...",
                self.pid
            );
        }
        let mut reported = Instant::now();
        while alive(self.pid) {
            std::thread::sleep(Duration::from_millis(50));
            if reported.elapsed() >= REPORT_EVERY {
                reported = Instant::now();
                eprintln!(
                    "boxfs: still waiting for {} upload(s)...",
                    StagingDir::pending_count(&self.staging_dir)
                );
            }
        }
        let left = StagingDir::pending_count(&self.staging_dir);
        if left > 0 {
            eprintln!(
                "boxfs: {left} file(s) could not be uploaded; they stay staged in {} and are \
                 uploaded at the next mount",
                self.staging_dir.display()
            );
        } else if pending > 0 {
            eprintln!("boxfs: all uploads done");
        }
    }
}
