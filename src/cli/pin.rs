//! `boxfs pin PATH…` and `boxfs unpin PATH…`: keep files and folders of a running mount on
//! disk ("available offline"), or stop keeping them. Each sets the `user.box.offline`
//! attribute on the path through the mount (`1` or `0`), the same as `setfattr` does, so the
//! mount's own rules apply (see [`crate::fs::pin`]); this command only checks the path and
//! turns a refusal into a sentence. A pin refused for want of disk space names the figures,
//! which it asks the mount's daemon for (`boxfs status` shows the same).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::cli::status::ask_status;
use crate::daemon::record::DaemonRecord;
use crate::daemon::status::MountStatus;
use crate::human::human_bytes;

/// The attribute both commands set.
pub const OFFLINE_XATTR: &str = "user.box.offline";

#[derive(Debug, Args)]
pub struct PinArgs {
    /// Files or folders inside a boxfs mount.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs `boxfs pin` (`on`) or `boxfs unpin`: every path is tried; the command fails if any
/// did, with one line for each.
pub fn run_pin(args: PinArgs, on: bool) -> Result<(), String> {
    let mut failures = Vec::new();
    for path in &args.paths {
        match set_offline(path, on) {
            Ok(()) if on => println!(
                "{}: kept offline (its content downloads in the background; `boxfs status` \
                 shows how far)",
                path.display()
            ),
            Ok(()) => println!("{}: no longer kept offline", path.display()),
            Err(e) => failures.push(e),
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => Err(failures.join("\nboxfs: ")),
    }
}

/// The error's text without Rust's "(os error N)".
fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{}: a path cannot hold a NUL byte", path.display()))
}

/// Sets `user.box.offline` on `path`, or says why not in words.
fn set_offline(path: &Path, on: bool) -> Result<(), String> {
    let shown = path.display();
    std::fs::metadata(path).map_err(|e| format!("{shown}: {}", describe(&e)))?;
    let c = c_path(path)?;
    let name = CString::new(OFFLINE_XATTR).expect("no NUL");
    let mut buf = [0u8; 8];
    // SAFETY: valid NUL-terminated strings and a buffer of the length given.
    let got = unsafe {
        libc::getxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if got < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENODATA | libc::EOPNOTSUPP) => {
                format!("{shown} is not inside a boxfs mount")
            }
            _ => format!("{shown}: {}", describe(&e)),
        });
    }
    let value: &[u8] = if on { b"1" } else { b"0" };
    // SAFETY: as above; the value's pointer and length match.
    let set = unsafe {
        libc::setxattr(
            c.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if set == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let verb = if on { "pin" } else { "unpin" };
    Err(match e.raw_os_error() {
        Some(libc::ENOSPC) => no_room(path),
        Some(libc::EPERM) if !on => format!(
            "cannot unpin {shown}: it is inside a pinned folder; unpin that folder instead \
             (`boxfs status` lists what is pinned)"
        ),
        Some(libc::EOPNOTSUPP) => {
            format!("cannot {verb} {shown}: its mount keeps no content cache")
        }
        _ => format!("cannot {verb} {shown}: {}", describe(&e)),
    })
}

/// The running mount `path` is in: the record whose mount point is the longest prefix of it.
fn mount_of(path: &Path) -> Option<DaemonRecord> {
    let path = std::fs::canonicalize(path).ok()?;
    DaemonRecord::running()
        .into_iter()
        .filter(|r| path.starts_with(&r.mountpoint))
        .max_by_key(|r| r.mountpoint.as_os_str().len())
}

/// Why a pin of `path` was refused for want of space, with the figures the daemon recorded.
fn no_room(path: &Path) -> String {
    let shown = path.display();
    let refusal = mount_of(path)
        .and_then(|record| ask_status(&record).ok())
        .and_then(|v| serde_json::from_value::<MountStatus>(v).ok())
        .and_then(|s| s.offline.refused);
    match refusal {
        Some(r) => format!(
            "cannot pin {shown}: it needs {} and the disk of the mount's cache has {} \
             available for it (boxfs keeps {} of that disk free)",
            human_bytes(r.needed),
            human_bytes(r.available),
            human_bytes(r.keep_free)
        ),
        None => format!(
            "cannot pin {shown}: the disk of the mount's cache cannot hold it (`boxfs status` \
             shows the figures)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe(&e), "No such file or directory");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing");
        let err = set_offline(&missing, true).unwrap_err();
        assert!(err.ends_with("No such file or directory"), "{err}");
        // A plain directory answers ENODATA (or EOPNOTSUPP) for a user.box attribute.
        let err = set_offline(dir.path(), true).unwrap_err();
        assert!(err.ends_with("is not inside a boxfs mount"), "{err}");
    }
}
