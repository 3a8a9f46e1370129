//! A server whose TLS certificate no trusted CA signed: the emulator serving HTTPS with a CA
//! of its own, directly and as a TLS-inspecting proxy for Box's host names. The request
//! fails at once as `BoxError::Certificate` (never retried) naming the origin, for API
//! calls and for an authenticator's token requests alike; trusting the CA makes it work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use box_client::auth::{CcgAuth, Subject};
use box_client::error::CertificateProblem;
use box_client::http::HttpOptions;
use box_client::{BoxError, Client, DeveloperToken, Endpoints, RetryPolicy};
use box_emulator::testing::TestEmu;
use box_emulator::EmulatorConfig;

fn untrusting(auth: Arc<dyn box_client::Authenticator>, endpoints: Endpoints) -> Client {
    Client::with_http(
        auth,
        endpoints,
        HttpOptions::new().direct().build().unwrap(),
        RetryPolicy::default(),
    )
}

fn assert_unknown_issuer(err: &BoxError, origin: &str) {
    match err {
        BoxError::Certificate {
            origin: got,
            problem: CertificateProblem::UnknownIssuer,
        } => assert_eq!(got, origin),
        other => panic!("expected an unknown issuer, got {other:?}"),
    }
    assert!(!err.is_transient());
    let shown = err.to_string();
    assert_eq!(
        shown,
        format!("cannot reach {origin}: its TLS certificate is not signed by a trusted CA")
    );
}

#[tokio::test]
async fn an_untrusted_server_fails_at_once_and_says_so() {
    let t = TestEmu::start_https().await;
    let endpoints = Endpoints::from_base(&t.base).unwrap();
    let c = untrusting(
        Arc::new(DeveloperToken::new(t.token.clone())),
        endpoints.clone(),
    );
    let started = Instant::now();
    let err = c.me().await.expect_err("the emulator's CA is not trusted");
    assert_unknown_issuer(&err, &t.base);
    // One attempt, no backoff: the default policy would wait between attempts.
    assert_eq!(c.request_stats().calls, 1, "{:?}", c.request_stats());
    assert!(started.elapsed() < Duration::from_secs(5));

    let ca = t.ca_file.clone().expect("the emulator's CA file");
    let trusting = Client::with_http(
        Arc::new(DeveloperToken::new(t.token.clone())),
        endpoints,
        HttpOptions::new()
            .direct()
            .add_root_certificates_file(&ca)
            .unwrap()
            .build()
            .unwrap(),
        RetryPolicy::none(),
    );
    trusting.me().await.expect("its CA trusted");
}

#[tokio::test]
async fn box_hosts_behind_an_inspecting_proxy_fail_for_api_and_token_calls() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestEmu::start_with(EmulatorConfig {
        https_proxy_ca: Some(dir.path().join("ca.pem")),
        ..Default::default()
    })
    .await;
    let http = HttpOptions::new().proxy(&t.base).unwrap().build().unwrap();
    let c = Client::with_http(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::box_com(),
        http.clone(),
        RetryPolicy::default(),
    );
    assert_unknown_issuer(&c.me().await.unwrap_err(), "https://api.box.com");

    // The token request of client credentials goes the same way, and fails the same way.
    let ccg = CcgAuth::with_http(
        &t.emulator().info.client_id,
        t.emulator().info.client_secret.clone(),
        Subject::Enterprise(t.emulator().info.enterprise_id.clone()),
        &Endpoints::box_com(),
        http,
        RetryPolicy::default(),
    )
    .unwrap();
    let err = box_client::Authenticator::access_token(&ccg)
        .await
        .unwrap_err();
    assert_unknown_issuer(&err, "https://api.box.com");
}
