//! Which Box session `boxfs search`, `events` and `whoami` use. Aimed into a running mount
//! (`--mount PATH` or, for search, `--in PATH` inside it; or run from a directory inside
//! it), they borrow that mount's session through its control socket
//! (`crate::daemon::control`'s `session` request): the same account and As-User, and no
//! second login. So do they when the configuration says nothing about how to log in and
//! exactly one mount is running, which is the quick start's case (`boxfs mount --emulator
//! ~/Box`, then `boxfs search apollo`). Connection options given on the command line or in
//! the environment (a token, an API URL, a token store, a profile) always win: they say
//! which session the caller wants.
//!
//! A borrowed token is the mount's own: when Box refuses it (it expired), the command asks
//! the mount again, which refreshes it as it does for itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use box_client::auth::Authenticator;
use box_client::endpoints::Endpoints;
use box_client::error::{BoxError, BoxResult};
use box_client::http::HttpOptions;
use box_client::secret::Secret;
use box_client::{Client, PacerConfig};
use clap::Args;

use crate::cli::ConnectionArgs;
use crate::config;
use crate::daemon::control::{self, ControlRequest, MountSession, SESSION_TIMEOUT};
use crate::daemon::record::DaemonRecord;

/// `--mount PATH`: the running mount whose session to use.
#[derive(Debug, Clone, Default, Args)]
pub struct MountSelect {
    /// Use the session of the running mount that holds PATH (default: the mount the
    /// current directory is in, if any).
    #[arg(long = "mount", value_name = "PATH")]
    pub mount: Option<PathBuf>,
}

/// The client a command talks to Box with, and what it needs to know about it.
pub struct CommandClient {
    pub client: Client,
    /// The API as mount records name it, to show results as paths inside mounts.
    pub api_url: Option<String>,
    /// The mount whose session is borrowed, if one is.
    pub mountpoint: Option<PathBuf>,
}

/// The client for a command with `conn`, aimed at `aimed_at` (a path the user gave that
/// may lie inside a mount); see the module note for the order of choice.
pub async fn client_for(
    conn: &ConnectionArgs,
    select: &MountSelect,
    aimed_at: Option<&Path>,
) -> Result<CommandClient, String> {
    if let Some(path) = &select.mount {
        let record = mount_holding(path).ok_or_else(|| {
            format!(
                "--mount {}: no running boxfs mount holds that path",
                path.display()
            )
        })?;
        return borrow(conn, &record).await;
    }
    let explicit = conn.given_connection();
    if !explicit {
        let cwd = std::env::current_dir().ok();
        let target = aimed_at.or(cwd.as_deref());
        if let Some(record) = target.and_then(mount_holding) {
            return borrow(conn, &record).await;
        }
    }
    let eff = conn.settings()?;
    match config::client(&eff) {
        Ok(client) => Ok(CommandClient {
            client,
            api_url: eff.values.api_url.clone(),
            mountpoint: None,
        }),
        Err(not_configured) if !explicit => {
            let mut running = DaemonRecord::running();
            if running.len() == 1 {
                let record = running.remove(0);
                return borrow(conn, &record).await;
            }
            if running.is_empty() {
                return Err(not_configured);
            }
            Err(format!(
                "{not_configured}\n(or use a running mount's session: run this inside one, or \
                 pass --mount PATH; mounts: {})",
                running
                    .iter()
                    .map(|r| r.mountpoint.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        Err(e) => Err(e),
    }
}

/// The running mount whose mount point holds `path` (the innermost, if mounts nest).
pub fn mount_holding(path: &Path) -> Option<DaemonRecord> {
    let absolute = std::path::absolute(path).ok()?;
    let canonical = std::fs::canonicalize(path).ok();
    DaemonRecord::running()
        .into_iter()
        .filter(|r| r.control_socket.is_some())
        .filter(|r| {
            absolute.starts_with(&r.mountpoint)
                || canonical
                    .as_ref()
                    .is_some_and(|c| c.starts_with(&r.mountpoint))
        })
        .max_by_key(|r| r.mountpoint.as_os_str().len())
}

/// A client on `record`'s session.
async fn borrow(conn: &ConnectionArgs, record: &DaemonRecord) -> Result<CommandClient, String> {
    let socket = record.control_socket.clone().ok_or_else(|| {
        format!(
            "the mount on {} has no control socket",
            record.mountpoint.display()
        )
    })?;
    let session = ask_session(&socket).await?;
    let endpoints = Endpoints::from_parts(
        &session.api_url,
        &session.upload_url,
        &session.oauth_url,
        &session.authorize_url,
    )
    .map_err(|e| format!("the mount on {}: {e}", record.mountpoint.display()))?;
    // The embedded emulator, or any server on this machine, is reached directly, never
    // through a proxy the environment names; Box through the configured proxy and CAs.
    let http = if endpoints.api.host_str().is_some_and(is_loopback) {
        HttpOptions::new()
            .direct()
            .build()
            .map_err(|e| e.to_string())?
    } else {
        config::http::http_client(&conn.settings()?)?
    };
    let auth = BorrowedSession {
        socket,
        token: tokio::sync::Mutex::new(Secret::new(session.access_token)),
    };
    let client = Client::builder(Arc::new(auth), endpoints)
        .http(http)
        .pacing(PacerConfig::default())
        .build()
        .map_err(|e| e.to_string())?;
    let client = match &session.as_user {
        Some(id) => client.as_user(id),
        None => client,
    };
    log::info!(
        "using the session of the mount on {}",
        session.mountpoint.display()
    );
    Ok(CommandClient {
        client,
        api_url: record.api_url.clone(),
        mountpoint: Some(record.mountpoint.clone()),
    })
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Asks the daemon at `socket` for its session.
async fn ask_session(socket: &Path) -> Result<MountSession, String> {
    let socket = socket.to_path_buf();
    let answer = tokio::task::spawn_blocking(move || {
        control::ask_waiting(&socket, ControlRequest::Session, SESSION_TIMEOUT)
    })
    .await
    .map_err(|e| e.to_string())??;
    serde_json::from_value(answer["session"].clone())
        .map_err(|e| format!("the mount's answer is not a session: {e}"))
}

/// A mount's token, asked for again when Box refuses it.
struct BorrowedSession {
    socket: PathBuf,
    token: tokio::sync::Mutex<Secret>,
}

#[async_trait]
impl Authenticator for BorrowedSession {
    async fn access_token(&self) -> BoxResult<Secret> {
        Ok(self.token.lock().await.clone())
    }

    async fn refresh(&self, rejected: &Secret) -> BoxResult<Secret> {
        let mut held = self.token.lock().await;
        if held.expose() != rejected.expose() {
            return Ok(held.clone());
        }
        let session = ask_session(&self.socket)
            .await
            .map_err(|e| BoxError::Auth(format!("asking the mount for a new token: {e}")))?;
        if session.access_token == rejected.expose() {
            return Err(BoxError::Auth(
                "Box refused the mount's token, and the mount has no other".into(),
            ));
        }
        *held = Secret::new(session.access_token);
        Ok(held.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_reached_directly() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("api.box.com"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
