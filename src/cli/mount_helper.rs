//! `mount.fuse.boxfs`: the helper mount(8) runs for `mount -t fuse.boxfs PROFILE DIR -o OPTS`
//! and for `fuse.boxfs` lines of `/etc/fstab`. mount(8) calls it as
//! `mount.fuse.boxfs SOURCE DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t fuse.boxfs]`; the same
//! binary answers to that name (a symlink to `boxfs`) and to the hidden `boxfs mount-helper`
//! (which the Debian package's `/usr/sbin/mount.fuse.boxfs`, a two-line script, runs).
//!
//! SOURCE names the profile of the configuration file (`-` for the one `boxfs mount` would
//! use). Each `-o` option becomes a `boxfs mount` flag: `ro`, `setuid=USER`, and any mount
//! flag written the FUSE way (`allow_other`, `cache_size=20G`, `root_folder_id=123`, …), so the
//! list follows [`crate::cli::MountArgs`] by itself. Options that mount(8), systemd or the
//! kernel handle, or that boxfs always applies, are ignored; anything else is refused
//! (`-s`, sloppy, only warns), so a typo in fstab is reported instead of silently dropped.
//! The mount then starts like `boxfs mount` in the background: the helper returns once the
//! mount serves (mount(8) waits for it), and a daemon keeps serving it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};

/// The name the helper is installed under (mount(8) looks for `/sbin/mount.fuse.boxfs`).
pub const HELPER_NAME: &str = "mount.fuse.boxfs";

/// mount(8)'s exit statuses, which helpers share: bad usage, and a failed mount.
const EXIT_USAGE: i32 = 1;
const EXIT_MOUNT_FAILURE: i32 = 32;

/// The helper's command line, as mount(8) passes it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = HELPER_NAME,
    version,
    about = "Mount boxfs through mount(8) and /etc/fstab",
    long_about = "Mount boxfs through mount(8) and /etc/fstab: `mount -t fuse.boxfs PROFILE DIR \
                  -o OPTIONS` runs this helper, which mounts like `boxfs mount DIR --profile \
                  PROFILE` with the options translated to its flags, and returns once the mount \
                  is ready."
)]
pub struct HelperArgs {
    /// The profile of the configuration file to mount ("-" for the default: BOXFS_PROFILE,
    /// else "default").
    #[arg(value_name = "PROFILE")]
    pub source: String,
    /// The directory to mount on (it must exist and be empty).
    #[arg(value_name = "DIR")]
    pub mountpoint: PathBuf,
    /// Comma-separated mount options (see MOUNT OPTIONS).
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Sloppy: warn about unknown options instead of refusing them.
    #[arg(short = 's')]
    pub sloppy: bool,
    /// Fake: check the options and the profile, but do not mount.
    #[arg(short = 'f')]
    pub fake: bool,
    /// Do not write /etc/mtab (accepted; boxfs never writes it).
    #[arg(short = 'n')]
    pub no_mtab: bool,
    /// Print the `boxfs mount` command that runs.
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Mount in another mount namespace (not supported).
    #[arg(short = 'N', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The filesystem type mount(8) was given: fuse.boxfs.
    #[arg(short = 't', value_name = "TYPE")]
    pub fstype: Option<String>,
}

/// Options that mount(8), systemd or the kernel handle, or that boxfs applies anyway, and why
/// each is ignored (shown with `-v`).
const IGNORED: &[(&str, &str)] = &[
    ("defaults", "the defaults apply"),
    ("rw", "read-write is the default"),
    ("auto", "for mount -a"),
    ("noauto", "for mount -a"),
    ("_netdev", "for systemd: the mount needs the network"),
    ("nofail", "for systemd and mount -a"),
    ("user", "for mount(8): users may mount it"),
    ("users", "for mount(8): users may mount and unmount it"),
    ("nouser", "for mount(8)"),
    ("owner", "for mount(8)"),
    ("group", "for mount(8)"),
    ("dev", "boxfs mounts are always nodev"),
    ("nodev", "boxfs mounts are always nodev"),
    ("suid", "boxfs mounts are always nosuid"),
    ("nosuid", "boxfs mounts are always nosuid"),
    ("exec", "Box keeps no execute bits: no file is executable"),
    ("noexec", "Box keeps no execute bits: no file is executable"),
    ("noatime", "boxfs mounts are always noatime"),
    ("async", "writes are staged on disk and uploaded on close"),
    (
        "default_permissions",
        "boxfs always lets the kernel check permissions",
    ),
];

/// Options with a value that mount(8) or systemd handle (`user=NAME` is how mount(8) records
/// who mounted a `user` line).
const IGNORED_WITH_VALUE: &[&str] = &["user", "comment"];

/// `boxfs mount` flags that are no mount option: the mount point is DIR, the profile is
/// PROFILE, and the helper always returns once the daemon serves.
const NOT_OPTIONS: &[&str] = &["mountpoint", "profile", "foreground", "help"];

/// Secrets do not belong in /etc/fstab (world-readable) or on a command line (`ps` shows it).
/// A token store may carry a Redis password or a command's secret arguments.
const SECRETS: &[&str] = &["token", "client_secret", "token_store"];

/// What the helper runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The `boxfs` arguments, starting with `mount`.
    pub args: Vec<String>,
    /// `setuid=USER`: the user the mount runs as (mount(8) runs helpers as root at boot).
    pub run_as: Option<String>,
    /// Options ignored, with why, for `-v`.
    pub ignored: Vec<String>,
    /// Unknown options let through by `-s`.
    pub warnings: Vec<String>,
}

/// Translates the helper's command line into `boxfs mount` arguments, or says which option
/// is wrong.
pub fn translate(helper: &HelperArgs) -> Result<Translation, String> {
    if let Some(t) = &helper.fstype {
        if t != "fuse.boxfs" && t != "boxfs" {
            return Err(format!("type {t} is not boxfs's (fuse.boxfs)"));
        }
    }
    if helper.namespace.is_some() {
        return Err("-N (mounting in another namespace) is not supported".into());
    }
    let mut out = Translation {
        args: vec![
            "mount".into(),
            helper.mountpoint.to_string_lossy().into_owned(),
        ],
        run_as: None,
        ignored: Vec::new(),
        warnings: Vec::new(),
    };
    match helper.source.as_str() {
        "-" => {}
        "" => return Err("the source (the profile name) is empty: use - for the default".into()),
        profile => out.args.extend(["--profile".into(), profile.into()]),
    }
    let cli = Cli::command();
    let mount = cli
        .find_subcommand("mount")
        .ok_or("the boxfs command line has no mount subcommand")?;
    let options = helper
        .options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty());
    for option in options {
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (option, None),
        };
        if let Some((_, why)) = IGNORED.iter().find(|(n, _)| *n == name && value.is_none()) {
            out.ignored.push(format!("{option}: {why}"));
            continue;
        }
        if name.starts_with("x-") || (IGNORED_WITH_VALUE.contains(&name) && value.is_some()) {
            out.ignored
                .push(format!("{option}: for mount(8) and systemd"));
            continue;
        }
        let key = name.replace('-', "_");
        if SECRETS.contains(&key.as_str()) {
            return Err(format!(
                "option {name}: secrets do not belong in mount options (fstab is readable by \
                 everyone); put `{key}` in the profile of the configuration file, or use \
                 `boxfs login`"
            ));
        }
        if key == "api_url"
            && value.is_some_and(|v| {
                v.split("//").nth(1).is_some_and(|rest| {
                    rest.split('/')
                        .next()
                        .is_some_and(|host| host.contains('@'))
                })
            })
        {
            return Err(format!(
                "option {name}: a URL with user:password@ does not belong in mount options \
                 (fstab is readable by everyone); put `api_url` in the profile of the \
                 configuration file"
            ));
        }
        match (key.as_str(), value) {
            ("ro", None) => {
                out.args.push("--read-only".into());
                continue;
            }
            ("setuid", Some(user)) if !user.is_empty() => {
                out.run_as = Some(user.into());
                continue;
            }
            ("setuid", _) => return Err("option setuid needs a user: setuid=NAME".into()),
            _ => {}
        }
        let arg = mount
            .get_arguments()
            .filter(|a| !NOT_OPTIONS.contains(&a.get_id().as_str()))
            .find(|a| a.get_long().is_some_and(|l| l.replace('-', "_") == key));
        let Some(arg) = arg else {
            let message = format!("unknown option {option}");
            if helper.sloppy {
                out.warnings.push(message);
                continue;
            }
            return Err(format!("{message} (see man {HELPER_NAME})"));
        };
        let long = arg.get_long().unwrap_or_default();
        let flag = match (arg.get_action().takes_values(), value) {
            (false, None) => format!("--{long}"),
            (false, Some(_)) => return Err(format!("option {name} takes no value")),
            (true, Some(v)) if !v.is_empty() => format!("--{long}={v}"),
            (true, _) => return Err(format!("option {name} needs a value: {name}=VALUE")),
        };
        check_parses(&["boxfs", "mount", "/", &flag])
            .map_err(|e| format!("option {option}: {e}"))?;
        out.args.push(flag);
    }
    let mut whole = vec!["boxfs".to_string()];
    whole.extend(out.args.iter().cloned());
    check_parses(&whole).map_err(|e| format!("the options do not go together: {e}"))?;
    Ok(out)
}

/// Parses a `boxfs` command line with the real definition; clap's first line on error.
fn check_parses<S: AsRef<str>>(argv: &[S]) -> Result<(), String> {
    match Cli::try_parse_from(argv.iter().map(|s| s.as_ref())) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            Err(first.trim_start_matches("error: ").to_string())
        }
    }
}

/// When the binary was started as `mount.fuse.boxfs`: runs the helper and returns its exit
/// status.
pub fn run_if_invoked_as_helper() -> Option<i32> {
    let argv0 = std::env::args_os().next()?;
    let name = PathBuf::from(argv0);
    if name.file_name()? != HELPER_NAME {
        return None;
    }
    Some(match HelperArgs::try_parse() {
        Ok(args) => run(&args),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                EXIT_USAGE
            } else {
                0
            }
        }
    })
}

/// Runs the helper; returns its exit status.
pub fn run(helper: &HelperArgs) -> i32 {
    let translation = match translate(helper) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("{HELPER_NAME}: {message}");
            return EXIT_USAGE;
        }
    };
    for warning in &translation.warnings {
        eprintln!("{HELPER_NAME}: ignoring {warning} (-s)");
    }
    if helper.verbose {
        for ignored in &translation.ignored {
            eprintln!("{HELPER_NAME}: ignoring {ignored}");
        }
        eprintln!("{HELPER_NAME}: boxfs {}", translation.args.join(" "));
    }
    let mut daemon_env = None;
    if let Some(user) = &translation.run_as {
        match crate::daemon::run_as::become_user(user) {
            Ok(env) => daemon_env = env,
            Err(message) => {
                eprintln!("{HELPER_NAME}: {message}");
                return EXIT_USAGE;
            }
        }
    }
    // The configuration is read as the user the mount runs as, so a missing profile or a bad
    // value in the file is reported here, before anything starts.
    let mut argv = vec!["boxfs".to_string()];
    argv.extend(translation.args.iter().cloned());
    match Cli::try_parse_from(&argv).map(|c| c.command) {
        Ok(Command::Mount(args)) => {
            if let Err(message) = args.settings() {
                eprintln!("{HELPER_NAME}: {message}");
                return EXIT_USAGE;
            }
        }
        Ok(_) => return EXIT_USAGE,
        Err(e) => {
            eprintln!("{HELPER_NAME}: {e}");
            return EXIT_USAGE;
        }
    }
    if helper.fake {
        return 0;
    }
    match &mut daemon_env {
        Some(env) => env.push((
            crate::daemon::mount::SOURCE_ENV.into(),
            (&helper.source).into(),
        )),
        // Still one thread: the daemon inherits the variable.
        None => std::env::set_var(crate::daemon::mount::SOURCE_ENV, &helper.source),
    }
    let args = translation.args.into_iter().map(OsString::from).collect();
    match crate::daemon::mount::spawn_daemon(args, daemon_env) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("{HELPER_NAME}: {message}");
            EXIT_MOUNT_FAILURE
        }
    }
}

/// The options section of the helper's manual page: every option a fstab line may carry.
pub fn options_manual() -> Vec<(String, String)> {
    let mut rows = vec![
        (
            "ro".to_string(),
            "Mount read-only (boxfs mount --read-only).".to_string(),
        ),
        (
            "setuid=USER".to_string(),
            "Run the mount as USER, with USER's configuration file, tokens and cache (for \
             lines mounted by root at boot)."
                .to_string(),
        ),
    ];
    let cli = Cli::command();
    if let Some(mount) = cli.find_subcommand("mount") {
        for arg in mount.get_arguments() {
            let id = arg.get_id().as_str();
            let Some(long) = arg.get_long() else { continue };
            if NOT_OPTIONS.contains(&id) || SECRETS.contains(&id) || long == "read-only" {
                continue;
            }
            let name = long.replace('-', "_");
            let option = if arg.get_action().takes_values() {
                let value = arg
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map_or("VALUE".to_string(), |v| v.to_string());
                format!("{name}={value}")
            } else {
                name
            };
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            rows.push((option, format!("boxfs mount --{long}: {help}")));
        }
    }
    let ignored: Vec<&str> = IGNORED.iter().map(|(n, _)| *n).collect();
    rows.push((
        "ignored".to_string(),
        format!(
            "{}, user=NAME, comment=TEXT and x-* (for mount(8), systemd or the kernel, or \
             applied anyway).",
            ignored.join(", ")
        ),
    ));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(source: &str, options: &str) -> HelperArgs {
        HelperArgs::try_parse_from([HELPER_NAME, source, "/mnt/box", "-o", options]).unwrap()
    }

    fn args(source: &str, options: &str) -> Vec<String> {
        translate(&helper(source, options)).unwrap().args
    }

    #[test]
    fn mount_8_calling_convention_parses() {
        let h = HelperArgs::try_parse_from([
            HELPER_NAME,
            "work",
            "/mnt/box",
            "-sfnv",
            "-o",
            "ro,allow_other",
            "-t",
            "fuse.boxfs",
        ])
        .unwrap();
        assert!(h.sloppy && h.fake && h.no_mtab && h.verbose);
        assert_eq!(h.options, ["ro,allow_other"]);
        assert_eq!(h.fstype.as_deref(), Some("fuse.boxfs"));
        let h =
            HelperArgs::try_parse_from([HELPER_NAME, "-", "/m", "-orw", "-o", "uid=5"]).unwrap();
        assert_eq!(h.options, ["rw", "uid=5"]);
    }

    #[test]
    fn options_become_mount_flags() {
        assert_eq!(
            args(
                "work",
                "ro,allow_other,uid=1000,gid=100,umask=077,cache_size=20G,write_back=5,\
                 root_folder_id=123,box_locks,log_file=/tmp/b.log,metadata-cache-entries=9"
            ),
            [
                "mount",
                "/mnt/box",
                "--profile",
                "work",
                "--read-only",
                "--allow-other",
                "--uid=1000",
                "--gid=100",
                "--umask=077",
                "--cache-size=20G",
                "--write-back=5",
                "--root-folder-id=123",
                "--box-locks",
                "--log-file=/tmp/b.log",
                "--metadata-cache-entries=9",
            ]
        );
        assert_eq!(
            args("-", "config=/etc/boxfs.toml")[2..],
            ["--config=/etc/boxfs.toml"]
        );
        // A proxy's CA, for mounts at boot behind a TLS-inspecting proxy.
        assert_eq!(
            args("-", "ca_cert=/etc/ssl/corp-ca.pem")[2..],
            ["--ca-cert=/etc/ssl/corp-ca.pem"]
        );
        assert_eq!(args("default", "rw")[2..], ["--profile", "default"]);
    }

    #[test]
    fn what_mount_and_systemd_handle_is_ignored() {
        let t = translate(&helper(
            "-",
            "defaults,_netdev,noauto,auto,user,users,nofail,exec,noexec,dev,nodev,suid,nosuid,\
             noatime,x-systemd.automount,x-systemd.idle-timeout=60,user=me,comment=x,rw",
        ))
        .unwrap();
        assert_eq!(t.args, ["mount", "/mnt/box"]);
        assert_eq!(t.ignored.len(), 19);
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn setuid_names_the_user() {
        let t = translate(&helper("-", "setuid=me,ro")).unwrap();
        assert_eq!(t.run_as.as_deref(), Some("me"));
        assert_eq!(t.args[2..], ["--read-only"]);
        assert!(translate(&helper("-", "setuid")).is_err());
    }

    #[test]
    fn unknown_and_wrong_options_are_refused_with_a_reason() {
        let err = |source: &str, options: &str| translate(&helper(source, options)).unwrap_err();
        assert!(err("-", "cache_szie=1G").contains("unknown option cache_szie=1G"));
        assert!(err("-", "sync").contains("unknown option sync"));
        assert!(
            err("-", "uid=abc").contains("option uid=abc"),
            "{}",
            err("-", "uid=abc")
        );
        assert!(err("-", "umask=999").contains("option umask=999"));
        assert!(err("-", "allow_other=1").contains("takes no value"));
        assert!(err("-", "cache_size").contains("needs a value"));
        assert!(err("-", "token=abc").contains("secrets"));
        assert!(err("-", "client_secret=abc").contains("secrets"));
        let store = err("-", "token_store=redis://:pw@h/0");
        assert!(
            store.contains("configuration file") && !store.contains(":pw@"),
            "{store}"
        );
        let url = err("-", "api_url=https://me:pw@h/box");
        assert!(
            url.contains("configuration file") && !url.contains(":pw@"),
            "{url}"
        );
        assert!(translate(&helper("-", "api_url=http://h/box")).is_ok());
        assert!(err("-", "foreground").contains("unknown option"));
        assert!(err("-", "profile=x").contains("unknown option"));
        assert!(err("-", "emulator,api_url=http://x").contains("do not go together"));
        assert!(err("", "ro").contains("empty"));
        let mut h = helper("-", "ro");
        h.fstype = Some("fuse.sshfs".into());
        assert!(translate(&h).unwrap_err().contains("fuse.sshfs"));
        h.fstype = None;
        h.namespace = Some("/proc/1/ns/mnt".into());
        assert!(translate(&h).unwrap_err().contains("-N"));
    }

    #[test]
    fn sloppy_warns_instead() {
        let mut h = helper("-", "ro,frobnicate,allow_other");
        h.sloppy = true;
        let t = translate(&h).unwrap();
        assert_eq!(t.args[2..], ["--read-only", "--allow-other"]);
        assert_eq!(t.warnings, ["unknown option frobnicate"]);
    }

    #[test]
    fn the_manual_lists_every_mount_flag_but_secrets() {
        let rows = options_manual();
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "ro",
            "setuid=USER",
            "allow_other",
            "cache_size=BYTES",
            "config=FILE",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| ["token=", "client_secret=", "token_store=", "profile="]
                .iter()
                .any(|p| n.starts_with(p))));
        // Every listed option translates.
        for (name, _) in &rows[2..rows.len() - 1] {
            let option = name.split('=').next().unwrap();
            let option = if name.contains('=') {
                format!("{option}=1")
            } else {
                option.to_string()
            };
            let result = translate(&helper("-", &option));
            assert!(
                result.is_ok() || !result.as_ref().unwrap_err().contains("unknown"),
                "{option}: {result:?}"
            );
        }
    }
}
