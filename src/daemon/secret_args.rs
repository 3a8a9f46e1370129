//! Secrets on the command line of a background mount. `boxfs mount` without `--foreground`
//! starts itself again as the daemon; its command line stays readable by every local user in
//! `/proc/PID/cmdline` for the mount's whole life. So the flags that may carry a secret
//! (`--token`, `--client-secret`, `--token-store` with a Redis password or a command's
//! arguments, `--api-url` with `user:password@`) are taken out of the daemon's arguments and
//! sent through a pipe the daemon inherits: [`SECRETS_FD_ENV`] names its descriptor, and the
//! daemon reads it to the end, closes it and puts the flags back into the command line it
//! parses, before any thread starts.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

/// Names the descriptor of the pipe the secret flags come through.
pub const SECRETS_FD_ENV: &str = "BOXFS_SECRET_ARGS_FD";

/// `boxfs mount` flags whose value may be a secret.
const SECRET_FLAGS: &[&str] = &["--token", "--client-secret", "--token-store", "--api-url"];

/// Splits a `boxfs mount …` argument list into the arguments that may show and the secret
/// flags with their values (both `--flag VALUE` and `--flag=VALUE`).
pub fn split(args: Vec<OsString>) -> (Vec<OsString>, Vec<OsString>) {
    let mut public = Vec::new();
    let mut secret = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            public.push(arg);
            public.extend(args);
            break;
        }
        if SECRET_FLAGS.contains(&text.as_ref()) {
            secret.push(arg);
            secret.extend(args.next());
        } else if SECRET_FLAGS
            .iter()
            .any(|f| text.starts_with(&format!("{f}=")))
        {
            secret.push(arg);
        } else {
            public.push(arg);
        }
    }
    (public, secret)
}

/// A pipe holding `secret` for a child: the read end (close-on-exec: the child's `pre_exec`
/// clears that on its copy) and the bytes to write into the write end once the child runs.
pub struct SecretPipe {
    pub read: OwnedFd,
    write: OwnedFd,
    bytes: Vec<u8>,
}

impl SecretPipe {
    pub fn new(secret: &[OsString]) -> std::io::Result<SecretPipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors, owned at once below.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both are new descriptors nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let strings: Vec<String> = secret
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let bytes = serde_json::to_vec(&strings).map_err(std::io::Error::other)?;
        Ok(SecretPipe { read, write, bytes })
    }

    /// In the parent, once the child runs: writes the flags and closes both ends, so the
    /// child reads them and then the end of the pipe.
    pub fn send(self) -> std::io::Result<()> {
        drop(self.read);
        let mut file = File::from(self.write);
        file.write_all(&self.bytes)
    }
}

/// In the daemon, before the command line is parsed (one thread only): this process's
/// arguments with the secret flags from the inherited pipe put back after the subcommand.
/// Without the variable, the arguments as they are.
pub fn argv_with_received_secrets() -> Result<Vec<OsString>, String> {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let Some(fd) = std::env::var_os(SECRETS_FD_ENV) else {
        return Ok(argv);
    };
    // No other thread runs yet (the caller's contract); the daemon's children never see it.
    std::env::remove_var(SECRETS_FD_ENV);
    let fd: i32 = fd
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|fd| *fd > 2)
        .ok_or_else(|| format!("{SECRETS_FD_ENV} is not a descriptor number"))?;
    // SAFETY: the parent passed this descriptor for us alone; it is closed when `file` drops.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the secret flags from the parent: {e}"))?;
    let secret: Vec<String> = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the secret flags from the parent are garbled: {e}"))?;
    let at = argv.len().min(2);
    argv.splice(at..at, secret.into_iter().map(OsString::from));
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|s| s.to_str().unwrap()).collect()
    }

    #[test]
    fn secret_flags_are_split_off_in_both_spellings() {
        let args: Vec<OsString> = [
            "mount",
            "/mnt/box",
            "--token",
            "T0KEN",
            "--client-secret=S3CRET",
            "--token-store",
            "redis://:pw@h/0",
            "--api-url=http://u:p@h",
            "--cache-dir",
            "/c",
            "--",
            "--token",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let (public, secret) = split(args);
        assert_eq!(
            strings(&public),
            ["mount", "/mnt/box", "--cache-dir", "/c", "--", "--token"]
        );
        assert_eq!(
            strings(&secret),
            [
                "--token",
                "T0KEN",
                "--client-secret=S3CRET",
                "--token-store",
                "redis://:pw@h/0",
                "--api-url=http://u:p@h"
            ]
        );
    }
}
