//! The record a running mount daemon leaves for `boxfs unmount`: its pid and its staging
//! directory, in a small JSON file per mount point under the user's runtime directory
//! (`$XDG_RUNTIME_DIR/boxfs/`, or `boxfs-<uid>` in the temporary directory). Unmounting only
//! ends the kernel's session; the daemon then still uploads what is staged, so
//! `boxfs unmount` finds the daemon here and waits for it to exit, saying how many uploads
//! it waits for. The record also says which Box folder the mount shows and on which API,
//! so that `boxfs search` can print its results as paths inside a running mount, and where
//! the daemon's control socket is ([`crate::control`]: `boxfs status`, and the progress line
//! of `boxfs unmount`). The directory is created private to the user (0700).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fs::staging::StagingDir;
use crate::mount::file_name_of;
use crate::unmount_progress::UnmountProgress;

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
    /// The daemon's control socket ([`crate::control`]), beside the record.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
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

/// The runtime directory, created private to the user if it is missing.
fn create_runtime_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = runtime_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    // An older boxfs created it with the default mode: the control sockets are in it.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    Ok(dir)
}

/// Where the daemon of `mountpoint` listens for `boxfs status` (the runtime directory is
/// created if needed).
pub fn control_socket_path(mountpoint: &Path) -> std::io::Result<PathBuf> {
    create_runtime_dir()?;
    Ok(crate::control::socket_beside(&record_path(mountpoint)))
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
        control_socket: Option<PathBuf>,
    ) -> Option<DaemonRecord> {
        let path = record_path(mountpoint);
        let record = DaemonRecord {
            pid: std::process::id(),
            mountpoint: std::path::absolute(mountpoint)
                .unwrap_or_else(|_| mountpoint.to_path_buf()),
            staging_dir,
            root_folder_id: Some(root_folder_id),
            api_url,
            control_socket,
            path: path.clone(),
        };
        let write = || -> std::io::Result<()> {
            create_runtime_dir()?;
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

    /// Removes the record and the control socket (the daemon is exiting).
    pub fn remove(&self) {
        if let Ok(bytes) = std::fs::read(&self.path) {
            if let Ok(r) = serde_json::from_slice::<DaemonRecord>(&bytes) {
                if r.pid != self.pid {
                    return;
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
        if let Some(socket) = &self.control_socket {
            let _ = std::fs::remove_file(socket);
        }
    }

    /// A record left by a daemon that is gone (it was killed): the pid it named.
    pub fn stale(mountpoint: &Path) -> Option<u32> {
        let bytes = std::fs::read(record_path(mountpoint)).ok()?;
        let record: DaemonRecord = serde_json::from_slice(&bytes).ok()?;
        (!alive(record.pid)).then_some(record.pid)
    }

    /// Waits until the daemon has exited, telling the user about pending uploads: a line
    /// when it starts waiting and one when it is done, and on a terminal a progress line
    /// kept updated in between.
    pub fn wait_for_exit(&self) {
        use std::io::IsTerminal;
        let pending = StagingDir::pending_count(&self.staging_dir);
        if pending > 0 {
            eprintln!(
                "boxfs: waiting for {pending} pending upload(s) to reach Box \
                 (daemon pid {})...",
                self.pid
            );
        }
        let mut progress = (pending > 0 && std::io::stderr().is_terminal())
            .then(|| UnmountProgress::new(self.control_socket.clone(), self.staging_dir.clone()));
        while alive(self.pid) {
            std::thread::sleep(Duration::from_millis(50));
            if let Some(p) = &mut progress {
                p.tick();
            }
        }
        if let Some(p) = &progress {
            p.clear();
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
