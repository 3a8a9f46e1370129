//! A Box API v2.0 server of our own, for tests, benchmarks and trying Box clients without
//! an account (`boxfs emulator` runs it). One port serves what Box spreads over several
//! hosts (api, upload, account/OAuth, download and realtime), and every URL it hands out
//! points back at it. With [`EmulatorConfig::validate_responses`] it checks every request it
//! receives and every JSON body it sends against Box's OpenAPI description
//! ([`conformance`]); the `testing` feature adds `testing::TestEmu`, which fails a test
//! on any mismatch.
//!
//! The state lives in one [`store::Store`] behind a mutex; handlers lock it once per request.
//! Knobs (latency, bandwidth, faults, duplicate events, Box's rate limits, event delay and
//! retention) can be changed while it runs, in-process through [`Emulator::knobs`] or over HTTP at
//! `/_emulator/knobs`. With [`EmulatorConfig::serve_https`] it serves HTTPS with a
//! certificate from a CA made at start-up ([`tls`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use box_emulator::{Emulator, EmulatorConfig};
//!
//! let emulator = Emulator::start(EmulatorConfig { demo: true, ..Default::default() }).await?;
//! // Any Box client: the base URL stands for https://api.box.com, and the developer token
//! // belongs to the emulator's admin.
//! let me: serde_json::Value = reqwest::Client::new()
//!     .get(format!("{}/2.0/users/me", emulator.base_url()))
//!     .bearer_auth(&emulator.info.developer_token)
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(me["id"], emulator.info.user_id.as_str());
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod blob;
pub mod box_hosts;
pub mod collaborations;
pub mod conformance;
pub mod demo;
pub mod error;
pub mod error_codes;
pub mod event_table;
pub mod events;
pub mod files;
pub mod folders;
pub mod http;
pub mod intercept;
pub mod jwt_config;
pub mod metadata;
pub mod net;
pub mod paging;
pub mod persist;
pub mod rate_limits;
pub mod repr;
pub mod search;
pub mod shared_links;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod uploads;
pub mod users;
pub mod web_links;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

pub use error::{ApiError, ApiResult};
pub use rate_limits::{Rate, RateLimitPreset, RateLimits};
use store::Store;

/// How an emulator is started (the `boxfs emulator` flags).
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    /// Populate a small realistic tree on first start.
    pub demo: bool,
    /// Keep state in this directory across restarts; in memory when `None`.
    pub data_dir: Option<PathBuf>,
    /// A Box developer-console config JSON to register (created if missing).
    pub jwt_config: Option<PathBuf>,
    /// One JSON line per request.
    pub request_log: Option<PathBuf>,
    /// Lifetime of OAuth, JWT and client-credentials access tokens, answered as `expires_in`
    /// as it is: tests set absurd values (10^18, negative) to check that clients survive them.
    pub token_ttl_secs: i64,
    /// How long the realtime long-poll holds before answering `reconnect`.
    pub longpoll_timeout_secs: u64,
    /// Lifetime of chunked upload sessions.
    pub upload_session_ttl_secs: u64,
    /// Storage quota of each new user in bytes (-1 unlimited).
    pub quota_bytes: i64,
    /// Validate every request and every JSON response against this OpenAPI description
    /// (the name predates the request checks).
    pub validate_responses: Option<PathBuf>,
    /// Answer HTTPS `CONNECT`s to Box's hosts, writing the CA certificate clients must
    /// trust to this file.
    pub https_proxy_ca: Option<PathBuf>,
    /// Serve HTTPS instead of plain HTTP, with a certificate for 127.0.0.1 and localhost
    /// (and the listening address) from a fresh CA whose certificate is written to this
    /// file; the base URL is then `https://…`.
    pub serve_https: Option<PathBuf>,
    pub knobs: Knobs,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            demo: false,
            data_dir: None,
            jwt_config: None,
            request_log: None,
            token_ttl_secs: 3600,
            longpoll_timeout_secs: 60,
            upload_session_ttl_secs: 7 * 24 * 3600,
            quota_bytes: 100 * 1024 * 1024 * 1024,
            validate_responses: None,
            https_proxy_ca: None,
            serve_https: None,
            knobs: Knobs::default(),
        }
    }
}

/// Behaviour that tests and benchmarks change while the emulator runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Knobs {
    /// Added before every response.
    pub latency_ms: u64,
    /// Per connection and direction; 0 = unlimited.
    pub bandwidth: u64,
    /// Probability of a random 500/503, 429 with Retry-After, or dropped connection.
    pub fault_rate: f64,
    /// Only requests whose path starts with this are faulted (all when empty).
    pub fault_path_prefix: String,
    /// Probability that an event is delivered twice, as Box may.
    pub duplicate_event_rate: f64,
    /// How many times each upload-session commit answers 202 + Retry-After first.
    pub commit_retry_polls: u32,
    /// Box's per-user rate limits, enforced with 429 + Retry-After (`rate_limits`); none
    /// when `None`. Changing them starts every bucket afresh.
    pub rate_limits: Option<RateLimits>,
    /// Events become visible to `GET /events` and to the realtime long-poll only this long
    /// after the change, as Box's arrive seconds late.
    pub event_delay_ms: u64,
    /// Events older than this (by when they happened) are gone, as Box keeps user events
    /// only about two weeks: no stream returns them, and a long-poll from a position an
    /// expired event came after answers `out_of_date` at once. 0 keeps them forever.
    pub event_retention_ms: u64,
}

/// The credentials printed as the first line of `boxfs emulator`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartInfo {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub enterprise_id: String,
    pub user_id: String,
    pub developer_token: String,
}

/// State shared by every handler.
pub struct Shared {
    pub store: Mutex<Store>,
    pub config: EmulatorConfig,
    pub knobs: Mutex<Knobs>,
    pub bandwidth: Arc<AtomicU64>,
    pub base_url: String,
    /// Latest event position; long-polls wait on it.
    pub events_tx: tokio::sync::watch::Sender<u64>,
    pub request_log: Option<Mutex<std::fs::File>>,
    pub conformance: Option<conformance::Validator>,
    pub persist: Option<persist::Persister>,
    pub interceptor: Option<intercept::Interceptor>,
    /// The router itself, for connections tunnelled through `CONNECT`.
    pub router: std::sync::OnceLock<axum::Router>,
    /// The rate-limit buckets of every user (used while `Knobs::rate_limits` is set).
    pub limiter: rate_limits::Limiter,
}

impl Shared {
    /// Locks the store. A panic while it was held cannot leave a half-applied change (every
    /// handler checks before it changes), so a poisoned lock is taken over.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn knobs(&self) -> Knobs {
        self.knobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.bandwidth.store(knobs.bandwidth, Ordering::Relaxed);
        *self.knobs.lock().unwrap_or_else(|e| e.into_inner()) = knobs;
    }

    /// After a change: wake long-polls and schedule a save.
    pub fn changed(&self, store: &Store) {
        self.events_tx.send_replace(store.next_position);
        if let Some(p) = &self.persist {
            p.mark_dirty();
        }
    }
}

/// A running emulator.
pub struct Emulator {
    pub info: StartInfo,
    pub shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Starts an emulator on the current tokio runtime and returns once it accepts
    /// connections.
    pub async fn start(config: EmulatorConfig) -> anyhow_like::Result<Emulator> {
        http::start(config).await
    }

    pub fn base_url(&self) -> &str {
        &self.info.base_url
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.set_knobs(knobs)
    }

    /// Requests and responses that did not match Box's OpenAPI description so far.
    pub fn conformance_violations(&self) -> Vec<String> {
        self.shared
            .conformance
            .as_ref()
            .map(|c| c.violations())
            .unwrap_or_default()
    }

    /// With validation on: why the checks look switched off (API calls were made but none
    /// was checked), if they do.
    pub fn conformance_gap(&self) -> Option<String> {
        self.shared
            .conformance
            .as_ref()
            .and_then(|c| c.coverage_gap())
    }

    /// Stops serving and writes the state to disk (with `--data`).
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        // Held long-polls answer `reconnect` at once instead of delaying the shutdown.
        self.shared.events_tx.send_replace(events::STOPPING);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(p) = &self.shared.persist {
            let store = self.shared.store();
            if let Err(e) = p.save(&store) {
                log::error!("emulator: saving state failed: {e}");
            }
        }
    }

    /// Waits until the server ends (it ends only through `stop` or a signal handler).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub(crate) fn from_parts(
        info: StartInfo,
        shared: Arc<Shared>,
        shutdown: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    ) -> Emulator {
        Emulator {
            info,
            shared,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            self.shared.events_tx.send_replace(events::STOPPING);
            let _ = tx.send(());
        }
    }
}

/// Errors from starting the emulator: a readable message.
pub mod anyhow_like {
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct StartError(pub String);
    pub type Result<T> = std::result::Result<T, StartError>;
}
