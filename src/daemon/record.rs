//! The record a running mount daemon leaves for `boxfs unmount`: its pid and its staging
//! directory, in a small JSON file per mount point under the user's runtime directory
//! (`$XDG_RUNTIME_DIR/boxfs/`, or `boxfs-<uid>` in the temporary directory). Unmounting only
//! ends the kernel's session; the daemon then still uploads what is staged, so
//! `boxfs unmount` finds the daemon here and waits for it to exit, saying how many uploads
//! it waits for. The record also says which Box folder the mount shows and on which API,
//! so that `boxfs search` can print its results as paths inside a running mount, and where
//! the daemon's control socket is ([`crate::daemon::control`]: `boxfs status`, and the progress line
//! of `boxfs unmount`). The directory is created private to the user (0700), records are
//! written 0600 under a random name and renamed into place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use std::os::unix::fs::MetadataExt;

use crate::daemon::cache_dir::mount_file_name;
use crate::daemon::unmount_progress::UnmountProgress;
use crate::fs::write::staging::StagingDir;

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
    /// The daemon's control socket ([`crate::daemon::control`]), beside the record.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
    #[serde(skip)]
    path: PathBuf,
}

/// Where daemon records and control sockets live, private to the effective user:
/// `$XDG_RUNTIME_DIR/boxfs` when that directory is the user's own and closed to others;
/// else `/run/boxfs` for root; else `boxfs-UID` in the temporary directory. Any of them is
/// used only as a real directory owned by the user with mode 0700
/// ([`crate::private_fs::check_private_dir`]): anyone can create `/tmp/boxfs-0` first.
fn runtime_dir_for(euid: u32, xdg_runtime_dir: Option<PathBuf>, temp: &Path) -> PathBuf {
    let usable_xdg = xdg_runtime_dir.filter(|dir| {
        dir.is_absolute()
            && std::fs::symlink_metadata(dir)
                .is_ok_and(|m| m.is_dir() && m.uid() == euid && m.mode() & 0o022 == 0)
    });
    match usable_xdg {
        Some(dir) => dir.join("boxfs"),
        None if euid == 0 => PathBuf::from("/run/boxfs"),
        None => temp.join(format!("boxfs-{euid}")),
    }
}

fn chosen_runtime_dir() -> PathBuf {
    runtime_dir_for(
        crate::private_fs::euid(),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        &std::env::temp_dir(),
    )
}

/// The runtime directory, created private to the user if it is missing; an unsafe one is
/// refused with a message that names it and its owner.
fn create_runtime_dir() -> Result<PathBuf, String> {
    let dir = chosen_runtime_dir();
    crate::private_fs::ensure_private_dir(&dir, crate::private_fs::euid())?;
    Ok(dir)
}

/// The runtime directory if it exists and is safe to read records from (a record planted
/// by someone else could name any socket).
fn existing_runtime_dir() -> Option<PathBuf> {
    let dir = chosen_runtime_dir();
    match crate::private_fs::check_private_dir(&dir, crate::private_fs::euid()) {
        Ok(()) => Some(dir),
        Err(e) => {
            if dir.exists() {
                log::warn!("{e}");
            }
            None
        }
    }
}

/// The record's file name for `mountpoint` (the mount point made absolute).
fn record_name(mountpoint: &Path) -> String {
    let abs = std::path::absolute(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    format!("{}.json", mount_file_name(&abs))
}

/// Checks, before anything is mounted, that the runtime directory is safe to hold this
/// mount's record and control socket (creating it if needed): a mount refuses to start
/// rather than run without them or put them where someone else could reach them.
pub fn check_runtime_dir() -> Result<(), String> {
    create_runtime_dir()
        .map(|_| ())
        .map_err(|e| format!("unsafe runtime directory: {e}"))
}

/// Where the daemon of `mountpoint` listens for `boxfs status` (the runtime directory is
/// created if needed).
pub fn control_socket_path(mountpoint: &Path) -> Result<PathBuf, String> {
    let dir = create_runtime_dir()?;
    Ok(crate::daemon::control::socket_beside(
        &dir.join(record_name(mountpoint)),
    ))
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
        let dir = match create_runtime_dir() {
            Ok(dir) => dir,
            Err(e) => {
                log::warn!("cannot record the daemon: {e}");
                return None;
            }
        };
        let name = record_name(mountpoint);
        let path = dir.join(&name);
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
            let bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
            crate::private_fs::replace_file(&dir, &name, &bytes)
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
        let path = existing_runtime_dir()?.join(record_name(mountpoint));
        let bytes = std::fs::read(&path).ok()?;
        let mut record: DaemonRecord = serde_json::from_slice(&bytes).ok()?;
        record.path = path;
        alive(record.pid).then_some(record)
    }

    /// Every live daemon that recorded itself.
    pub fn running() -> Vec<DaemonRecord> {
        let Some(Ok(dir)) = existing_runtime_dir().map(std::fs::read_dir) else {
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
        let path = existing_runtime_dir()?.join(record_name(mountpoint));
        let bytes = std::fs::read(path).ok()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_directory_is_the_users_own_or_root_s_run() {
        let tmp = tempfile::tempdir().unwrap();
        let temp = Path::new("/tmp");
        let me = crate::private_fs::euid();
        let xdg = tmp.path().join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            runtime_dir_for(me, Some(xdg.clone()), temp),
            xdg.join("boxfs")
        );
        // Writable by others, or someone else's: not used.
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o777)).unwrap();
        let fallback = if me == 0 {
            PathBuf::from("/run/boxfs")
        } else {
            temp.join(format!("boxfs-{me}"))
        };
        assert_eq!(runtime_dir_for(me, Some(xdg.clone()), temp), fallback);
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            runtime_dir_for(me + 1, Some(xdg.clone()), temp),
            temp.join(format!("boxfs-{}", me + 1))
        );
        assert_eq!(runtime_dir_for(0, None, temp), PathBuf::from("/run/boxfs"));
        assert_eq!(runtime_dir_for(1000, None, temp), temp.join("boxfs-1000"));
        assert_eq!(
            runtime_dir_for(1000, Some("relative".into()), temp),
            temp.join("boxfs-1000")
        );
    }
}
