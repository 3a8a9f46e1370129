//! Becoming another user before anything runs: `setuid=USER` of the mount helper, for lines
//! of /etc/fstab that root mounts at boot on behalf of a user. The process takes the user's
//! groups, gid and uid, and the user's home and XDG directories, so the mount reads that
//! user's configuration and tokens, caches in that user's home, and shows files as that
//! user's. The daemon started then gets a minimal environment of the user's, not the
//! caller's (`user_environment`).

use std::ffi::{CString, OsString};
use std::path::{Path, PathBuf};

/// The search path a daemon started for another user gets.
const USER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The whole environment of the daemon started for `account` (named `name`): HOME, USER,
/// LOGNAME and PATH set for the user, the user's runtime directory when it exists, and of
/// `current` (the caller's environment, root's at boot) only what was given for boxfs on
/// purpose: `BOXFS_*` and `RUST_LOG`. Nothing else of root's (its XDG directories, proxies,
/// LD_* or shell state) reaches the user's daemon.
fn user_environment(
    name: &str,
    home: &Path,
    runtime_dir: Option<PathBuf>,
    current: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("HOME".into(), home.into()),
        ("USER".into(), name.into()),
        ("LOGNAME".into(), name.into()),
        ("PATH".into(), USER_PATH.into()),
    ];
    if let Some(dir) = runtime_dir {
        env.push(("XDG_RUNTIME_DIR".into(), dir.into()));
    }
    env.extend(current.into_iter().filter(|(k, _)| {
        let k = k.to_string_lossy();
        k.starts_with("BOXFS_") || k == "RUST_LOG"
    }));
    env
}

/// `setuid=USER`: becomes that user (groups, gid, uid) with its home directory, so the mount
/// reads that user's configuration and tokens and its files show as that user's. Called before
/// any thread starts. Returns the environment the user's daemon starts with
/// (`user_environment`); `None` when nothing changed (the caller is that user already).
pub fn become_user(name: &str) -> Result<Option<Vec<(OsString, OsString)>>, String> {
    let account = lookup_user(name)?;
    // SAFETY: plain system calls.
    if unsafe { libc::geteuid() } != 0 {
        if unsafe { libc::geteuid() } == account.uid {
            return Ok(None);
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
    let runtime = runtime.is_dir().then_some(runtime);
    match &runtime {
        Some(dir) => std::env::set_var("XDG_RUNTIME_DIR", dir),
        None => std::env::remove_var("XDG_RUNTIME_DIR"),
    }
    Ok(Some(user_environment(
        name,
        &account.home,
        runtime,
        std::env::vars_os(),
    )))
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
    fn the_users_daemon_gets_a_minimal_environment() {
        let current = [
            ("HOME", "/root"),
            ("XDG_CONFIG_HOME", "/root/.config"),
            ("LD_PRELOAD", "/x.so"),
            ("SSH_AUTH_SOCK", "/tmp/agent"),
            ("PATH", "/root/bin:/usr/bin"),
            ("BOXFS_CONFIG", "/etc/boxfs.toml"),
            ("BOXFS_MOUNT_SOURCE", "work"),
            ("RUST_LOG", "debug"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = user_environment(
            "me",
            Path::new("/home/me"),
            Some("/run/user/1000".into()),
            current,
        );
        let got: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        let want = [
            ("HOME", "/home/me"),
            ("USER", "me"),
            ("LOGNAME", "me"),
            ("PATH", USER_PATH),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("BOXFS_CONFIG", "/etc/boxfs.toml"),
            ("BOXFS_MOUNT_SOURCE", "work"),
            ("RUST_LOG", "debug"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(got, want);
    }

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
