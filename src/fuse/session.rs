//! The FUSE session of a mount: the options boxfs mounts with, and the fuser session that
//! serves a [`BoxFs`] on its own threads until it is unmounted. The daemon holds a
//! [`FuseSession`] and never a fuser type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};

use super::{FuseAdapter, FuseNotifier};
use crate::fs::BoxFs;

/// How the kernel sees the mount.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The mount's source as /proc/mounts shows it (the fstab profile, or `boxfs`).
    pub source: String,
    pub read_only: bool,
    /// Other users may enter the mount (`allow_other`; permissions still apply).
    pub allow_other: bool,
}

/// A mounted, serving FUSE session.
pub struct FuseSession(BackgroundSession);

/// Mounts `fs` on `mountpoint` and serves it on fuser's threads, with requests running on the
/// current tokio runtime. Returns the session and the notifier that sends the kernel its
/// invalidations.
pub async fn start(
    fs: Arc<BoxFs>,
    mountpoint: &Path,
    opts: SessionOptions,
) -> Result<(FuseSession, FuseNotifier), String> {
    // The kernel shows the type as fuse.boxfs (/proc/mounts, findmnt, what fstab lines
    // name) only when the subtype reaches it. fuser hands its Subtype option to
    // fusermount3 alone, so root, which mounts without fusermount3, passes it as a kernel
    // option (fusermount3 would take that form as well).
    // SAFETY: geteuid cannot fail.
    let subtype = if unsafe { libc::geteuid() } == 0 {
        MountOption::CUSTOM("subtype=boxfs".into())
    } else {
        MountOption::Subtype("boxfs".into())
    };
    let mut options = vec![
        MountOption::FSName(opts.source),
        subtype,
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.read_only {
        options.push(MountOption::RO);
    }
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let adapter = FuseAdapter::new(fs, tokio::runtime::Handle::current());
    let mp: PathBuf = mountpoint.to_path_buf();
    let session = tokio::task::spawn_blocking(move || fuser::Session::new(adapter, &mp, &config))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot mount on {}: {e}", mountpoint.display()))?;
    let notifier = FuseNotifier(session.notifier());
    let session = session
        .spawn()
        .map_err(|e| format!("cannot start serving {}: {e}", mountpoint.display()))?;
    Ok((FuseSession(session), notifier))
}

impl FuseSession {
    /// Waits until the kernel ends the session (an unmount from anywhere). Blocks.
    pub fn join(self) -> std::io::Result<()> {
        self.0.join()
    }

    /// Unmounts, then waits for the session to end. Blocks.
    pub fn unmount_and_join(self) -> std::io::Result<()> {
        self.0.umount_and_join()
    }
}
