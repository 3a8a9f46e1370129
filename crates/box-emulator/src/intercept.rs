//! Answering for Box's own hosts, so that clients whose API URLs cannot be changed (rclone's
//! Box backend is one) still reach the emulator: the emulator accepts HTTP `CONNECT` to
//! `api.box.com`, `upload.box.com` and the other Box hosts, terminates TLS itself with a
//! certificate from a CA made at start-up, and serves the tunnelled requests with its own
//! router, held to what the named host serves (`box_hosts`). Point a client at it with
//! `HTTPS_PROXY=<base_url>` and have it trust the CA file. A `CONNECT` to any other host is
//! refused: nothing is ever forwarded anywhere.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio_rustls::TlsAcceptor;

use super::anyhow_like::Result;
use super::http::AppState;

/// Hosts the emulator answers for (Box spreads its API over these).
const BOX_HOSTS: [&str; 8] = [
    "api.box.com",
    "upload.box.com",
    "account.box.com",
    "app.box.com",
    "dl.boxcloud.com",
    "public.boxcloud.com",
    "*.box.com",
    "*.boxcloud.com",
];

pub struct Interceptor {
    acceptor: TlsAcceptor,
    /// The CA certificate (PEM) that clients must trust.
    pub ca_pem: String,
}

impl Interceptor {
    /// Makes a fresh CA and a server certificate for Box's hosts signed by it.
    pub fn new() -> Result<Interceptor> {
        let ca = super::tls::Ca::new()?;
        let names: Vec<String> = BOX_HOSTS.iter().map(|h| h.to_string()).collect();
        let config = ca.server_config(&names, "api.box.com")?;
        Ok(Interceptor {
            acceptor: TlsAcceptor::from(config),
            ca_pem: ca.pem,
        })
    }
}

/// The host a tunnelled request was sent to (its `CONNECT`'s): the middleware routes it as
/// that Box host does (`box_hosts`).
#[derive(Debug, Clone)]
pub struct TunnelHost(pub String);

/// Answers a `CONNECT`: 200 and a TLS server on the tunnel for Box hosts, 403 otherwise.
pub fn handle_connect(sh: &AppState, req: Request) -> Response {
    let host = req
        .uri()
        .authority()
        .map(|a| a.host().to_string())
        .unwrap_or_default();
    let (Some(interceptor), Some(router)) = (sh.interceptor.as_ref(), sh.router.get().cloned())
    else {
        return super::error::ApiError::new(
            405,
            "method_not_allowed",
            "This emulator was started without --https-proxy-ca",
        )
        .into_response();
    };
    if !super::box_hosts::is_box_host(&host) {
        return super::error::ApiError::new(
            403,
            "forbidden",
            format!("The emulator only answers for Box hosts, not '{host}'"),
        )
        .into_response();
    }
    let acceptor = interceptor.acceptor.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                log::debug!("emulator: CONNECT upgrade failed: {e}");
                return;
            }
        };
        let tls = match acceptor.accept(TokioIo::new(upgraded)).await {
            Ok(t) => t,
            Err(e) => {
                log::debug!("emulator: TLS handshake for {host} failed: {e}");
                return;
            }
        };
        let router = router.layer(axum::Extension(TunnelHost(host.clone())));
        let service = TowerToHyperService::new(router);
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades()
            .await
        {
            log::debug!("emulator: tunnelled connection for {host} ended: {e}");
        }
    });
    StatusCode::OK.into_response()
}
