//! The `boxfs` command line: subcommands and their flags (clap), and what each runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::daemon::DaemonRecord;
use crate::emulator::{Emulator, EmulatorConfig, Knobs};
use crate::fs::FsOptions;
use crate::mount::{
    default_cache_dir, identity, report_ready, unmount_path, Backend, MountRequest,
};

#[derive(Debug, Parser)]
#[command(
    name = "boxfs",
    version,
    about = "Box.com as a Linux filesystem, a Box client, and a Box API emulator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Box API server of our own (for trying boxfs without an account, and for tests).
    Emulator(EmulatorArgs),
    /// Mount a Box account (or a folder of it) as a filesystem.
    Mount(MountArgs),
    /// Unmount a boxfs mount.
    Unmount(UnmountArgs),
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Stay attached to the terminal (otherwise the command returns once the mount is ready
    /// and a daemon keeps serving it).
    #[arg(long)]
    pub foreground: bool,
    /// Serve a demo account from an emulator inside this process (no Box account needed).
    #[arg(long, conflicts_with_all = ["api_url", "token"])]
    pub emulator: bool,
    /// The base URL of the API, upload and OAuth hosts (as `boxfs emulator` serves them);
    /// Box itself when not given.
    #[arg(long, value_name = "URL", env = "BOXFS_API_URL")]
    pub api_url: Option<String>,
    /// An access token (a developer token, for instance).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BOXFS_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Mount read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Mount this Box folder instead of All Files ("0").
    #[arg(long, value_name = "ID", default_value = "0")]
    pub root_folder_id: String,
    /// Act as this user (admins and service accounts: Box's As-User header).
    #[arg(long, value_name = "USER_ID")]
    pub as_user: Option<String>,
    /// Where file content is cached (default: one directory per mount point under the XDG
    /// cache directory).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Bound of the content cache, in bytes (suffixes K, M, G, T).
    #[arg(long, value_name = "BYTES", default_value = "8G", value_parser = parse_size)]
    pub cache_size: u64,
    /// Bound of the metadata cache, in files and folders.
    #[arg(long, value_name = "N", default_value_t = FsOptions::default().max_inodes)]
    pub metadata_cache_entries: usize,
    /// Owner shown for every file (default: the mounting user).
    #[arg(long)]
    pub uid: Option<u32>,
    /// Group shown for every file (default: the mounting user's group).
    #[arg(long)]
    pub gid: Option<u32>,
    /// Permission bits removed from 0777 (directories) and 0666 (files), in octal.
    #[arg(long, value_parser = parse_octal, default_value = "022")]
    pub umask: u32,
    /// Let other users reach the mount (needs user_allow_other in /etc/fuse.conf unless root).
    #[arg(long)]
    pub allow_other: bool,
    /// Let close return at once and upload in the background, SECS after the first close
    /// (closes within that time join the same upload). Without it, close returns once Box
    /// has the data. fsync always waits for Box.
    #[arg(long, value_name = "SECS")]
    pub write_back: Option<u64>,
    /// Where the daemon logs once detached (default: boxfs.log in the cache directory).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UnmountArgs {
    pub mountpoint: PathBuf,
    /// Detach now even if files are open; the mount goes away when they are closed.
    #[arg(long)]
    pub lazy: bool,
}

/// `512M`, `8G`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (like 512M or 8G)"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

fn parse_octal(s: &str) -> Result<u32, String> {
    let v = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("'{s}' is not an octal mask like 022"))?;
    if v > 0o777 {
        return Err(format!("'{s}' is more than 0777"));
    }
    Ok(v)
}

impl MountArgs {
    /// The mount as the library takes it.
    pub fn request(&self) -> Result<MountRequest, String> {
        let backend = if self.emulator {
            Backend::Emulator
        } else {
            let token = self.token.clone().ok_or(
                "no credentials: pass --token TOKEN (or set BOXFS_TOKEN), or try --emulator",
            )?;
            Backend::Api {
                api_url: self.api_url.clone(),
                token,
            }
        };
        let cache_dir = self
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&self.mountpoint));
        Ok(MountRequest {
            mountpoint: self.mountpoint.clone(),
            backend,
            as_user: self.as_user.clone(),
            fs: FsOptions {
                root_folder_id: self.root_folder_id.clone(),
                identity: identity(self.uid, self.gid, Some(self.umask), self.read_only),
                max_inodes: self.metadata_cache_entries.max(1),
                staging_dir: Some(cache_dir.join("staging")),
                write_back: self.write_back.map(std::time::Duration::from_secs),
                ..FsOptions::default()
            },
            log_file: Some(
                self.log_file
                    .clone()
                    .unwrap_or_else(|| cache_dir.join("boxfs.log")),
            ),
            cache_dir: cache_dir.join("content"),
            cache_size: self.cache_size,
            allow_other: self.allow_other,
        })
    }
}

/// Runs `boxfs mount --foreground` (also the daemon half of a background mount).
pub async fn run_mount(args: MountArgs) -> Result<(), String> {
    let request = args.request()?;
    let log_file = request.log_file.clone();
    let mounted = request.mount().await?;
    let record = DaemonRecord::write(&mounted.mountpoint, request_staging(&args));
    report_ready(log_file.as_deref());
    let result = mounted.serve_until_unmounted().await;
    if let Some(record) = record {
        record.remove();
    }
    result
}

fn request_staging(args: &MountArgs) -> PathBuf {
    args.cache_dir
        .clone()
        .unwrap_or_else(|| default_cache_dir(&args.mountpoint))
        .join("staging")
}

/// Runs `boxfs unmount`: unmounts, then waits for the daemon to finish the uploads it has
/// queued and exit (the data is on Box when this returns, unless it says otherwise). A lazy
/// unmount does not wait: the daemon serves the files still open until they are closed.
pub fn run_unmount(args: UnmountArgs) -> Result<(), String> {
    let record = DaemonRecord::find(&args.mountpoint);
    unmount_path(&args.mountpoint, args.lazy)?;
    match record {
        Some(record) if !args.lazy => record.wait_for_exit(),
        Some(record) => eprintln!(
            "boxfs: detached; the daemon (pid {}) uploads what is pending once the last \
             open file is closed",
            record.pid
        ),
        None => {}
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Start with a small realistic tree of folders and files.
    #[arg(long)]
    pub demo: bool,
    /// Keep state in this directory across restarts (in memory otherwise).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Register the app of this Box developer-console config JSON; created with a fresh RSA
    /// key if it does not exist.
    #[arg(long, value_name = "FILE")]
    pub jwt_config: Option<PathBuf>,
    /// Append one JSON line per request to this file.
    #[arg(long, value_name = "FILE")]
    pub request_log: Option<PathBuf>,
    /// Added to every response.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub latency_ms: u64,
    /// Bytes per second per connection and direction (0 = unlimited).
    #[arg(long, default_value_t = 0, value_name = "BYTES_PER_SEC")]
    pub bandwidth: u64,
    /// Probability of a random 500/503, 429 with Retry-After, or dropped connection.
    #[arg(long, default_value_t = 0.0, value_name = "R", value_parser = parse_rate)]
    pub fault_rate: f64,
    /// Probability that an event is delivered twice.
    #[arg(long, default_value_t = 0.0, value_name = "R", value_parser = parse_rate)]
    pub duplicate_event_rate: f64,
    /// How many times each upload-session commit first answers 202 with Retry-After.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub commit_retry_polls: u32,
    /// Lifetime of access tokens (OAuth, JWT, client credentials).
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub token_ttl: u64,
    /// How long a realtime long-poll waits before answering `reconnect`.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub longpoll_timeout: u64,
    /// Storage quota of each user, in bytes (-1 = unlimited).
    #[arg(long, default_value_t = 100 * 1024 * 1024 * 1024, value_name = "BYTES", allow_negative_numbers = true)]
    pub quota: i64,
    /// Check every JSON response against this OpenAPI description and log mismatches.
    #[arg(long, value_name = "OPENAPI_JSON")]
    pub validate_responses: Option<PathBuf>,
    /// Also answer HTTPS CONNECTs to Box's hosts (api.box.com, upload.box.com …) with a
    /// certificate from a fresh CA written to this file, so unmodified clients reach the
    /// emulator with HTTPS_PROXY=<base_url>.
    #[arg(long, value_name = "CA_FILE")]
    pub https_proxy_ca: Option<PathBuf>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is not a probability between 0 and 1"))
    }
}

impl EmulatorArgs {
    pub fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            listen: self.listen,
            demo: self.demo,
            data_dir: self.data.clone(),
            jwt_config: self.jwt_config.clone(),
            request_log: self.request_log.clone(),
            token_ttl_secs: self.token_ttl,
            longpoll_timeout_secs: self.longpoll_timeout,
            quota_bytes: self.quota,
            validate_responses: self.validate_responses.clone(),
            https_proxy_ca: self.https_proxy_ca.clone(),
            knobs: Knobs {
                latency_ms: self.latency_ms,
                bandwidth: self.bandwidth,
                fault_rate: self.fault_rate,
                duplicate_event_rate: self.duplicate_event_rate,
                commit_retry_polls: self.commit_retry_polls,
                ..Knobs::default()
            },
            ..EmulatorConfig::default()
        }
    }
}

/// Runs `boxfs emulator` until SIGINT or SIGTERM, then saves state and exits.
pub async fn run_emulator(args: EmulatorArgs) -> Result<(), String> {
    let emulator = Emulator::start(args.config())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&emulator.info).map_err(|e| e.to_string())?
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    emulator.stop().await;
    Ok(())
}
