//! Becoming another user before anything runs: `setuid=USER` of the mount helper, for lines
//! of /etc/fstab that root mounts at boot on behalf of a user. The process takes the user's
//! groups, gid and uid, and the user's home and XDG directories, so the mount reads that
//! user's configuration and tokens, caches in that user's home, and shows files as that
//! user's.

use std::ffi::CString;
use std::path::PathBuf;

/// `setuid=USER`: becomes that user (groups, gid, uid) with its home directory, so the mount
/// reads that user's configuration and tokens and its files show as that user's. Called before
/// any thread starts.
pub fn become_user(name: &str) -> Result<(), String> {
    let account = lookup_user(name)?;
    // SAFETY: plain system calls.
    if unsafe { libc::geteuid() } != 0 {
        if unsafe { libc::geteuid() } == account.uid {
            return Ok(());
        }
        return Err(format!(
            "setuid={name} needs root (mount(8) run by root, or a line of /etc/fstab)"
        ));
    }
    let c_name = CString::new(name).map_err(|_| format!("setuid={name}: not a user name"))?;
    // SAFETY: a valid NUL-terminated name; the ids come from the password database.
    let failed = unsafe {
        libc::initgroups(c_name.as_ptr(), account.gid) != 0
            || libc::setgid(account.gid) != 0
            || libc::setuid(account.uid) != 0
    };
    if failed {
        return Err(format!(
            "cannot become user {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    std::env::set_var("HOME", &account.home);
    std::env::set_var("USER", name);
    std::env::set_var("LOGNAME", name);
    // The caller's XDG directories are not the user's.
    for var in [
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
    ] {
        std::env::remove_var(var);
    }
    let runtime = PathBuf::from(format!("/run/user/{}", account.uid));
    if runtime.is_dir() {
        std::env::set_var("XDG_RUNTIME_DIR", runtime);
    } else {
        std::env::remove_var("XDG_RUNTIME_DIR");
    }
    Ok(())
}

#[derive(Debug)]
struct Account {
    uid: libc::uid_t,
    gid: libc::gid_t,
    home: PathBuf,
}

fn lookup_user(name: &str) -> Result<Account, String> {
    let c_name = CString::new(name).map_err(|_| format!("setuid={name}: not a user name"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, and the buffer outlives the strings read.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(format!("setuid={name}: no such user"));
    }
    // SAFETY: pw_dir points into `buf`, NUL-terminated, filled by getpwnam_r.
    let home = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
    Ok(Account {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: PathBuf::from(home.to_string_lossy().into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_in_the_password_database() {
        let root = lookup_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(root.home, PathBuf::from("/root"));
        assert!(lookup_user("no-such-user-x")
            .unwrap_err()
            .contains("no such user"));
        assert!(lookup_user("a\0b").unwrap_err().contains("not a user name"));
    }
}
