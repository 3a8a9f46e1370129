//! Files and directories private to the user, made safely in places others may reach: a
//! directory is used only if it is a real directory (not a symbolic link) owned by the
//! effective user, and its mode is brought to 0700 through an open descriptor (never by
//! path, which someone could swap in between); files are created 0600 whatever the umask,
//! under a fresh random name with `O_CREAT|O_EXCL` (which never follows a link) and then
//! renamed into place, so a link planted at any predictable name is replaced, not followed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::Rng;

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The name of user `uid` from the password database (its number when unknown).
pub fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, and the buffer outlives the name read.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: pw_name points into `buf`, NUL-terminated, filled by getpwuid_r.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    format!("{} (uid {uid})", name.to_string_lossy())
}

/// Opens `dir` without following a link at its last component, and checks that it is a
/// directory owned by `uid`; a mode open to anyone else is brought to 0700 on the descriptor.
pub fn check_private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir);
    let handle = match opened {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            let link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
            return Err(format!(
                "{} is {}: refusing to use it (remove it)",
                dir.display(),
                if link {
                    "a symbolic link, not a directory"
                } else {
                    "not a directory"
                }
            ));
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let meta = handle
        .metadata()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if meta.uid() != uid {
        return Err(format!(
            "{} belongs to {}, not to {}: refusing to use a directory someone else made \
             (remove it, or set XDG_RUNTIME_DIR to a private directory)",
            dir.display(),
            user_name(meta.uid()),
            user_name(uid)
        ));
    }
    if meta.mode() & 0o077 != 0 {
        handle
            .set_permissions(std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: cannot make it private: {e}", dir.display()))?;
    }
    Ok(())
}

/// Creates `dir` (mode 0700; its parent must exist) unless it exists, then checks it as
/// [`check_private_dir`] does.
pub fn ensure_private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(format!("cannot create {}: {e}", dir.display()))
        }
        _ => {}
    }
    check_private_dir(dir, uid)
}

/// Creates missing directories of `dir` (each 0700 whatever the umask), as `mkdir -p`.
pub fn create_dirs_private(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Replaces `dir/name` with `bytes`: written to a random new name (0600, `O_EXCL`,
/// `O_NOFOLLOW`) in the same directory, then renamed over `name` (a rename replaces a link
/// found there, never follows it).
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(
        ".{name}.{:016x}.tmp",
        rand::thread_rng().gen::<u64>()
    ));
    let written = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    let result = written.and_then(|()| std::fs::rename(&tmp, dir.join(name)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file at `path`, mode 0600 whatever the umask; fails if anything (a link
/// included) is there already.
pub fn create_private(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // The umask may have taken bits away from 0600, never added any: set it exactly.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Opens `path` to append to it, creating it 0600; an existing file of ours that others
/// could read is made 0600 through the descriptor.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    let meta = f.metadata()?;
    if meta.uid() == euid() && meta.mode() & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn a_directory_of_another_user_or_a_link_is_refused_and_ours_made_private() {
        if euid() != 0 {
            return; // chown needs root
        }
        let tmp = tempfile::tempdir().unwrap();
        let theirs = tmp.path().join("boxfs-0");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let err = ensure_private_dir(&theirs, 0).unwrap_err();
        assert!(
            err.contains(&theirs.display().to_string()) && err.contains("uid 65534"),
            "{err}"
        );
        // As that user, it would be fine.
        check_private_dir(&theirs, 65534).unwrap();

        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let link = tmp.path().join("boxfs-link");
        symlink(&elsewhere, &link).unwrap();
        let err = ensure_private_dir(&link, euid()).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");

        let ours = tmp.path().join("ours");
        std::fs::create_dir(&ours).unwrap();
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o777)).unwrap();
        ensure_private_dir(&ours, euid()).unwrap();
        assert_eq!(mode(&ours), 0o700);
        let fresh = tmp.path().join("fresh");
        ensure_private_dir(&fresh, euid()).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }

    #[test]
    fn replacing_a_file_never_writes_through_a_planted_link() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("shadow");
        std::fs::write(&target, b"precious").unwrap();
        // The names an older boxfs wrote through, and the record's own name.
        symlink(&target, tmp.path().join("mnt-box.json.tmp")).unwrap();
        symlink(&target, tmp.path().join("mnt-box.json")).unwrap();
        replace_file(tmp.path(), "mnt-box.json", b"{}").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let record = tmp.path().join("mnt-box.json");
        assert!(std::fs::symlink_metadata(&record).unwrap().is_file());
        assert_eq!(std::fs::read(&record).unwrap(), b"{}");
        assert_eq!(mode(&record), 0o600);
        assert!(create_private(&tmp.path().join("mnt-box.json.tmp")).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }

    #[test]
    fn a_log_file_is_private_even_when_it_existed() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("boxfs.log");
        std::fs::write(&log, b"old\n").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_private_append(&log).unwrap();
        assert_eq!(mode(&log), 0o600);
        let new = tmp.path().join("new.log");
        open_private_append(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
    }
}
