//! The `boxfs` command line: subcommands and their flags (clap), and what each runs.

pub mod events;
pub mod generate;
pub mod log_filter;
pub mod login;
pub mod mount_helper;
pub mod pin;
pub mod search;
pub mod session;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use crate::cli::login::LoginOptions;
use crate::config::settings::{parse_octal, parse_size, SettingValue};
use crate::config::{
    self, AuthKind, Config, Effective, Mode, Selection, Settings, Size, StoreSpec,
};
use crate::daemon::cache_dir::default_cache_dir;
use crate::daemon::mount::{identity, report_ready, unmount_path, Backend, MountRequest};
use crate::daemon::record::DaemonRecord;
use crate::fs::read::budget::ReadBudgetConfig;
use crate::fs::FsOptions;
use box_client::{Rate, Secret};
use box_emulator::{Emulator, EmulatorConfig, Knobs};

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
    /// Log in to Box (the browser, JWT, client credentials, or a token) and record in the
    /// profile how, so that `boxfs mount` needs no credentials on its command line.
    Login(LoginArgs),
    /// Revoke the profile's OAuth tokens at Box and forget the stored tokens.
    Logout(ConnectionArgs),
    /// Show who the profile logs in as (or the running mount run from or named with
    /// --mount): login, name, enterprise and quota.
    Whoami(WhoamiArgs),
    /// Inspect the configuration.
    Config(ConfigArgs),
    /// Search Box (text, type, folder, metadata) and print the results as paths inside a
    /// running mount, or as Box paths. Exit status 1 when nothing matches.
    Search(crate::cli::search::SearchArgs),
    /// Show how running mounts are doing: account, event stream, caches, uploads, API calls.
    /// Exit status 1 when the mount is not running.
    Status(crate::cli::status::StatusArgs),
    /// Keep files and folders of a running mount on disk, "available offline" (a folder with
    /// everything below it, also what is added later); the content downloads in the
    /// background. Refused when the disk of the mount's cache cannot hold it.
    Pin(crate::cli::pin::PinArgs),
    /// Stop keeping files and folders offline: their content becomes ordinary cache content.
    Unpin(crate::cli::pin::PinArgs),
    /// Print the account's events (from Box's earliest retained, or --stream-position), or
    /// follow them as they happen with --follow.
    Events(crate::cli::events::EventsArgs),
    /// Print a shell completion script: `boxfs completions bash >
    /// ~/.local/share/bash-completion/completions/boxfs` (zsh, fish, elvish, powershell too).
    Completions(crate::cli::generate::CompletionsArgs),
    /// Write the manual pages into DIR (for packaging).
    #[command(hide = true)]
    ManPages(crate::cli::generate::ManPagesArgs),
    /// The mount(8) helper, as `mount.fuse.boxfs` runs it (see mount.fuse.boxfs(8)).
    #[command(hide = true)]
    MountHelper(crate::cli::mount_helper::HelperArgs),
}

/// A flag's text read as the configuration key reads it.
fn parse_setting<T: SettingValue>(s: &str) -> Result<T, String> {
    T::parse(s)
}

/// Where Box is and how to authenticate: flags every command that talks to Box takes. Each is
/// also a configuration key and a `BOXFS_*` environment variable.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    #[command(flatten)]
    pub select: Selection,
    /// The base URL of the API, upload and OAuth hosts (as `boxfs emulator` serves them);
    /// Box itself when not given.
    #[arg(long, value_name = "URL", env = "BOXFS_API_URL")]
    pub api_url: Option<String>,
    /// Also trust the CA certificates of this PEM file: the CA of a company proxy that
    /// re-signs TLS. The system's CAs (SSL_CERT_FILE, SSL_CERT_DIR) are trusted anyway.
    #[arg(long, value_name = "FILE", env = "BOXFS_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// An access token (a developer token, for instance), used as it is.
    #[arg(long, value_name = "TOKEN", env = "BOXFS_TOKEN", hide_env_values = true,
          value_parser = parse_setting::<Secret>)]
    pub token: Option<Secret>,
    // The help text shows the syntax as it is, brackets included.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Where tokens are kept: file (tokens.json in the XDG data directory), file:PATH,
    /// redis://HOST[:PORT][/DB][?key=KEY] (shared by several machines), or
    /// command:PROGRAM [ARGS] (a program that prints an access token).
    #[arg(long, value_name = "STORE", env = "BOXFS_TOKEN_STORE", hide_env_values = true,
          value_parser = parse_setting::<StoreSpec>)]
    pub token_store: Option<StoreSpec>,
    /// API calls a minute the account may make: a number, N/min, N/s, or unlimited for a
    /// server without limits [default: Box's 1000/min].
    #[arg(long, value_name = "RATE", env = "BOXFS_API_RATE", value_parser = parse_setting::<Rate>)]
    pub api_rate: Option<Rate>,
    /// Uploads a minute the account may start [default: Box's 240/min].
    #[arg(long, value_name = "RATE", env = "BOXFS_UPLOAD_RATE", value_parser = parse_setting::<Rate>)]
    pub upload_rate: Option<Rate>,
    /// The app's client id (Box developer console).
    #[arg(long, value_name = "ID", env = "BOXFS_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The app's client secret.
    #[arg(long, value_name = "SECRET", env = "BOXFS_CLIENT_SECRET", hide_env_values = true,
          value_parser = parse_setting::<Secret>)]
    pub client_secret: Option<Secret>,
}

impl ConnectionArgs {
    /// The values clap found (on the command line or in the environment).
    pub fn given(&self) -> Settings {
        Settings {
            api_url: self.api_url.clone(),
            ca_cert: self.ca_cert.clone(),
            token: self.token.clone(),
            token_store: self.token_store.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            api_rate: self.api_rate,
            upload_rate: self.upload_rate,
            ..Settings::default()
        }
    }

    /// Whether a flag or the environment names a session: a token, a token store, an API
    /// URL, an app or a profile. Commands that may borrow a running mount's session
    /// (`crate::cli::session`) then use the one named instead. A configuration file alone
    /// names none: its default profile may say nothing about logging in.
    pub fn given_connection(&self) -> bool {
        self.token.is_some()
            || self.token_store.is_some()
            || self.api_url.is_some()
            || self.client_id.is_some()
            || self.select.profile.is_some()
    }

    /// The effective configuration with these flags.
    pub fn settings(&self) -> Result<Effective, String> {
        Config::load(&self.select)?.resolve(self.given())
    }
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An empty directory to mount on.
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Stay attached to the terminal (otherwise the command returns once the mount is ready
    /// and a daemon keeps serving it).
    #[arg(long, env = "BOXFS_FOREGROUND", value_parser = BoolishValueParser::new())]
    pub foreground: bool,
    /// Serve a demo account from an emulator inside this process (no Box account needed).
    #[arg(long, conflicts_with_all = ["api_url", "token"])]
    pub emulator: bool,
    /// Mount read-only.
    #[arg(long, env = "BOXFS_READ_ONLY", value_parser = BoolishValueParser::new())]
    pub read_only: bool,
    /// Mount this Box folder instead of All Files [default: 0].
    #[arg(long, value_name = "ID", env = "BOXFS_ROOT_FOLDER_ID")]
    pub root_folder_id: Option<String>,
    /// Act as this user (admins and service accounts: Box's As-User header).
    #[arg(long, value_name = "USER_ID", env = "BOXFS_AS_USER")]
    pub as_user: Option<String>,
    /// Where file content is cached and writes are staged (default: one directory per mount
    /// point under the XDG cache directory). An existing directory must be empty or boxfs's,
    /// and one mount at a time uses it.
    #[arg(long, value_name = "DIR", env = "BOXFS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Bound of the content cache, in bytes (suffixes K, M, G, T) [default: 8G].
    #[arg(long, value_name = "BYTES", env = "BOXFS_CACHE_SIZE", value_parser = parse_size)]
    pub cache_size: Option<u64>,
    /// Memory all open files together may hold while reading ahead, shared fairly between
    /// the files being read (suffixes K, M, G) [default: 256M].
    #[arg(long, value_name = "BYTES", env = "BOXFS_READ_BUDGET", value_parser = parse_size)]
    pub read_budget: Option<u64>,
    /// Ranged downloads all open files together may have in flight, shared fairly
    /// [default: 32].
    #[arg(long, value_name = "N", env = "BOXFS_READ_CONNECTIONS")]
    pub read_connections: Option<usize>,
    /// Bound of the metadata cache, in files and folders [default: 250000].
    #[arg(long, value_name = "N", env = "BOXFS_METADATA_CACHE_ENTRIES")]
    pub metadata_cache_entries: Option<usize>,
    /// Owner shown for every file (default: the mounting user).
    #[arg(long, env = "BOXFS_UID")]
    pub uid: Option<u32>,
    /// Group shown for every file (default: the mounting user's group).
    #[arg(long, env = "BOXFS_GID")]
    pub gid: Option<u32>,
    /// Permission bits removed from 0777 (directories) and 0666 (files), in octal
    /// [default: 022].
    #[arg(long, env = "BOXFS_UMASK", value_parser = parse_octal)]
    pub umask: Option<u32>,
    /// Let other users reach the mount (needs user_allow_other in /etc/fuse.conf unless root).
    #[arg(long, env = "BOXFS_ALLOW_OTHER", value_parser = BoolishValueParser::new())]
    pub allow_other: bool,
    /// Let close return at once and upload in the background, SECS after the first close
    /// (closes within that time join the same upload). Without it, close returns once Box
    /// has the data. fsync always waits for Box.
    #[arg(long, value_name = "SECS", env = "BOXFS_WRITE_BACK")]
    pub write_back: Option<u64>,
    /// Make exclusive `flock` and `fcntl` write locks on files Box locks, so that programs on
    /// other machines (through boxfs or not) see them; shared locks test for a Box lock.
    /// Without it, locks are local to this machine.
    #[arg(long, env = "BOXFS_BOX_LOCKS", value_parser = BoolishValueParser::new())]
    pub box_locks: bool,
    /// Keep modes (`chmod`, `+x`) and symbolic links (`ln -s`) on Box, in each item's
    /// global.properties metadata, read in the same listing call. Without it, a mode is
    /// accepted and changes nothing, and `ln -s` is refused.
    #[arg(long, env = "BOXFS_POSIX_ATTRIBUTES", value_parser = BoolishValueParser::new())]
    pub posix_attributes: bool,
    /// Where the daemon logs once detached (default: boxfs.log in the cache directory).
    #[arg(long, value_name = "FILE", env = "BOXFS_LOG_FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UnmountArgs {
    pub mountpoint: PathBuf,
    /// Detach now even if files are open; the mount goes away when they are closed.
    #[arg(long)]
    pub lazy: bool,
}

impl MountArgs {
    /// The values clap found (on the command line or in the environment).
    fn given(&self) -> Settings {
        Settings {
            foreground: self.foreground.then_some(true),
            read_only: self.read_only.then_some(true),
            root_folder_id: self.root_folder_id.clone(),
            as_user: self.as_user.clone(),
            cache_dir: self.cache_dir.clone(),
            cache_size: self.cache_size.map(Size),
            read_budget: self.read_budget.map(Size),
            read_connections: self.read_connections,
            metadata_cache_entries: self.metadata_cache_entries,
            uid: self.uid,
            gid: self.gid,
            umask: self.umask.map(Mode),
            allow_other: self.allow_other.then_some(true),
            log_file: self.log_file.clone(),
            write_back: self.write_back,
            box_locks: self.box_locks.then_some(true),
            posix_attributes: self.posix_attributes.then_some(true),
            ..self.connection.given()
        }
    }

    /// The effective configuration of this mount.
    pub fn settings(&self) -> Result<Effective, String> {
        Config::load(&self.connection.select)?.resolve(self.given())
    }

    /// Whether the mount stays attached to the terminal (`--foreground` or `foreground`).
    pub fn runs_in_foreground(&self) -> Result<bool, String> {
        Ok(self.foreground || self.settings()?.values.foreground == Some(true))
    }

    /// The mount as the library takes it.
    pub fn request(&self) -> Result<MountRequest, String> {
        let eff = self.settings()?;
        let v = &eff.values;
        let backend = if self.emulator {
            Backend::Emulator
        } else {
            Backend::Api(config::client(&eff)?)
        };
        let cache_dir = match &v.cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir(&self.mountpoint)?,
        };
        Ok(MountRequest {
            mountpoint: self.mountpoint.clone(),
            backend,
            as_user: v.as_user.clone(),
            fs: FsOptions {
                root_folder_id: v
                    .root_folder_id
                    .clone()
                    .unwrap_or_else(|| config::DEFAULT_ROOT_FOLDER.into()),
                identity: identity(
                    v.uid,
                    v.gid,
                    Some(v.umask.map_or(config::DEFAULT_UMASK, |m| m.0)),
                    v.read_only == Some(true),
                ),
                max_inodes: v
                    .metadata_cache_entries
                    .unwrap_or(FsOptions::default().max_inodes)
                    .max(1),
                staging_dir: Some(
                    crate::daemon::cache_dir::box_dir(&cache_dir, self.emulator)
                        .join(crate::daemon::cache_dir::STAGING),
                ),
                write_back: v.write_back.map(std::time::Duration::from_secs),
                box_locks: v.box_locks == Some(true),
                posix_attributes: v.posix_attributes == Some(true),
                read_budget: ReadBudgetConfig {
                    memory: v
                        .read_budget
                        .map_or(ReadBudgetConfig::default().memory, |s| s.0)
                        .max(1),
                    connections: v
                        .read_connections
                        .unwrap_or(ReadBudgetConfig::default().connections)
                        .max(1),
                },
                ..FsOptions::default()
            },
            log_file: Some(
                v.log_file
                    .clone()
                    .unwrap_or_else(|| cache_dir.join("boxfs.log")),
            ),
            cache_dir: cache_dir.clone(),
            cache_size: v.cache_size.map_or(config::DEFAULT_CACHE_SIZE, |s| s.0),
            allow_other: v.allow_other == Some(true),
        })
    }
}

/// Runs `boxfs mount --foreground` (also the daemon half of a background mount).
pub async fn run_mount(args: MountArgs) -> Result<(), String> {
    crate::daemon::record::check_runtime_dir()?;
    let request = args.request()?;
    let log_file = request.log_file.clone();
    let staging_dir = request.fs.staging_dir.clone().unwrap_or_default();
    let root_folder_id = request.fs.root_folder_id.clone();
    let api_url = if args.emulator {
        Some("emulator".to_string())
    } else {
        args.settings()?.values.api_url
    };
    let mounted = request.mount().await?;
    let control = crate::daemon::control::serve_control(&mounted);
    let record = DaemonRecord::write(
        &mounted.mountpoint,
        staging_dir,
        root_folder_id,
        api_url,
        control.as_ref().map(|(path, _)| path.clone()),
    );
    report_ready(log_file.as_deref());
    let result = mounted.serve_until_unmounted().await;
    if let Some((path, task)) = control {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    if let Some(record) = record {
        record.remove();
    }
    result
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
pub struct LoginArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Log in with JWT: the app's config JSON from Box's developer console. Tokens act as
    /// the app's service account unless --user is given. (In the environment:
    /// BOXFS_AUTH=jwt and BOXFS_JWT_CONFIG.)
    #[arg(long, value_name = "CONFIG.json", conflicts_with = "ccg")]
    pub jwt: Option<PathBuf>,
    /// Log in with client credentials (--client-id, --client-secret, and --user or
    /// --enterprise). (In the environment: BOXFS_AUTH=ccg.)
    #[arg(long)]
    pub ccg: bool,
    /// How to log in: oauth (the browser; the default), jwt, ccg, token or command.
    #[arg(long, value_name = "KIND", env = "BOXFS_AUTH", value_parser = parse_setting::<AuthKind>)]
    pub auth: Option<AuthKind>,
    /// JWT or client credentials: act as this user (an app user or a managed user).
    #[arg(long = "user", value_name = "ID", env = "BOXFS_USER_ID")]
    pub user_id: Option<String>,
    /// JWT or client credentials: act as the service account of enterprise ID (for JWT the
    /// ID may be left out: the app config's enterprise).
    #[arg(long = "enterprise", value_name = "ID", env = "BOXFS_ENTERPRISE_ID",
          num_args = 0..=1, default_missing_value = "")]
    pub enterprise_id: Option<String>,
    /// The loopback port Box sends the browser back to; register
    /// http://127.0.0.1:PORT/callback as the app's redirect URI [default: a free port].
    #[arg(long, value_name = "PORT", env = "BOXFS_LOGIN_PORT")]
    pub port: Option<u16>,
    /// How long to wait for the browser, in seconds [default: 300].
    #[arg(long, value_name = "SECS", env = "BOXFS_LOGIN_TIMEOUT")]
    pub timeout: Option<u64>,
}

impl LoginArgs {
    /// The values clap found, and what is not a configuration value.
    fn given(&self) -> (Settings, LoginOptions) {
        let auth = match (&self.jwt, self.ccg) {
            (Some(_), _) => Some(AuthKind::Jwt),
            (None, true) => Some(AuthKind::Ccg),
            (None, false) => self.auth,
        };
        let settings = Settings {
            auth,
            jwt_config: self.jwt.clone(),
            user_id: self.user_id.clone(),
            enterprise_id: self.enterprise_id.clone().filter(|id| !id.is_empty()),
            login_port: self.port,
            login_timeout: self.timeout,
            ..self.connection.given()
        };
        let options = LoginOptions {
            app_enterprise: self.enterprise_id.as_deref() == Some(""),
        };
        (settings, options)
    }
}

/// Runs `boxfs login`.
pub async fn run_login(args: LoginArgs) -> Result<(), String> {
    let config = Config::load_for_login(&args.connection.select)?;
    let (given, options) = args.given();
    println!(
        "{}",
        crate::cli::login::login(&config, given, options).await?
    );
    Ok(())
}

/// Runs `boxfs logout`.
pub async fn run_logout(args: ConnectionArgs) -> Result<(), String> {
    println!("{}", crate::cli::login::logout(&args.settings()?).await?);
    Ok(())
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub mount: crate::cli::session::MountSelect,
}

/// Runs `boxfs whoami`.
pub async fn run_whoami(args: WhoamiArgs) -> Result<(), String> {
    println!(
        "{}",
        crate::cli::login::whoami(&args.connection, &args.mount).await?
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every configuration key with its effective value (secrets masked) and where
    /// the value came from: command line, environment, profile, file or default.
    Show(ConnectionArgs),
}

/// Runs `boxfs config …`.
pub fn run_config(args: ConfigArgs) -> Result<(), String> {
    match args.command {
        ConfigCommand::Show(connection) => print!("{}", connection.settings()?.show()),
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
    /// Any value, even negative, is answered as `expires_in` (to test clients).
    #[arg(
        long,
        default_value_t = 3600,
        value_name = "SECS",
        allow_negative_numbers = true
    )]
    pub token_ttl: i64,
    /// How long a realtime long-poll waits before answering `reconnect`.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub longpoll_timeout: u64,
    /// Storage quota of each user, in bytes (-1 = unlimited).
    #[arg(long, default_value_t = 100 * 1024 * 1024 * 1024, value_name = "BYTES", allow_negative_numbers = true)]
    pub quota: i64,
    /// Check every request and every JSON response against this OpenAPI description (Box's
    /// is in crates/box-emulator/openapi/) and log each mismatch as a warning.
    #[arg(long, value_name = "OPENAPI_JSON")]
    pub validate_responses: Option<PathBuf>,
    /// Also answer HTTPS CONNECTs to Box's hosts (api.box.com, upload.box.com …) with a
    /// certificate from a fresh CA written to this file, so unmodified clients reach the
    /// emulator with HTTPS_PROXY=<base_url>.
    #[arg(long, value_name = "CA_FILE")]
    pub https_proxy_ca: Option<PathBuf>,
    /// Enforce Box's documented per-user rate limits (`box`: 1,000 calls, 240 uploads and
    /// 60 searches a minute, 429 with Retry-After past them) or none (`none`).
    #[arg(long, default_value = "none", value_name = "PRESET")]
    pub rate_limits: box_emulator::RateLimitPreset,
    /// Deliver events only this many milliseconds after the change, as Box's arrive late.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub event_delay_ms: u64,
    /// Forget events this many milliseconds old (0 = keep them), as Box keeps them about
    /// two weeks; a long-poll from before a forgotten event answers `out_of_date`.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub event_retention_ms: u64,
    /// Serve HTTPS (instead of HTTP) with a certificate from a fresh CA written to this file.
    #[arg(long, value_name = "CA_FILE")]
    pub serve_https: Option<PathBuf>,
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
            serve_https: self.serve_https.clone(),
            knobs: Knobs {
                latency_ms: self.latency_ms,
                bandwidth: self.bandwidth,
                fault_rate: self.fault_rate,
                duplicate_event_rate: self.duplicate_event_rate,
                commit_retry_polls: self.commit_retry_polls,
                rate_limits: self.rate_limits.limits(),
                event_delay_ms: self.event_delay_ms,
                event_retention_ms: self.event_retention_ms,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Flags that are no configuration value: the demo switch, the login modes (the
    /// modes are the `auth` key, BOXFS_AUTH) and the running mount a command borrows the
    /// session of.
    const NOT_KEYS: [&str; 6] = ["mountpoint", "emulator", "jwt", "ccg", "help", "mount"];

    #[test]
    fn every_mount_and_login_flag_has_a_key_and_a_variable() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        for sub in ["mount", "login", "logout", "whoami"] {
            let command = cli.find_subcommand(sub).unwrap();
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if NOT_KEYS.contains(&id) {
                    continue;
                }
                let var = arg
                    .get_env()
                    .unwrap_or_else(|| panic!("boxfs {sub} --{id} has no variable"))
                    .to_str()
                    .unwrap();
                if var == "BOXFS_CONFIG" || var == "BOXFS_PROFILE" {
                    continue;
                }
                let key = var.strip_prefix("BOXFS_").unwrap().to_ascii_lowercase();
                assert!(
                    Settings::KEYS.contains(&key.as_str()),
                    "{sub} --{id}: {var}"
                );
            }
        }
    }

    #[test]
    fn login_modes_become_the_auth_key() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Login(args) => args.given(),
            _ => unreachable!(),
        };
        let (s, o) = parse(&["boxfs", "login", "--jwt", "c.json", "--enterprise"]);
        assert_eq!(s.auth, Some(AuthKind::Jwt));
        assert!(o.app_enterprise && s.enterprise_id.is_none());
        let (s, o) = parse(&["boxfs", "login", "--ccg", "--enterprise", "42"]);
        assert_eq!(s.auth, Some(AuthKind::Ccg));
        assert_eq!(s.enterprise_id.as_deref(), Some("42"));
        assert!(!o.app_enterprise);
        let (s, _) = parse(&["boxfs", "login", "--token-store", "command:x y"]);
        assert_eq!(s.auth, None);
        assert!(matches!(s.token_store, Some(StoreSpec::Command(_))));
        assert!(Cli::try_parse_from(["boxfs", "login", "--token-store", "ftp:x"]).is_err());
        let shown = format!(
            "{:?}",
            Cli::try_parse_from([
                "boxfs",
                "whoami",
                "--token",
                "t0k",
                "--client-secret",
                "s3c"
            ])
            .unwrap()
        );
        assert!(!shown.contains("t0k") && !shown.contains("s3c"), "{shown}");
    }
}
