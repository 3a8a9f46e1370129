//! The `boxfs` command line: subcommands and their flags (clap), and what each runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::emulator::{Emulator, EmulatorConfig, Knobs};

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
