//! The emulator answering for Box's own hosts through HTTPS CONNECT, the way clients with
//! fixed API URLs (rclone) reach it: TLS with the emulator's CA, and nothing but Box hosts.

use box_emulator::testing::TestEmu;
use box_emulator::EmulatorConfig;
use reqwest::StatusCode;

#[tokio::test]
async fn box_hosts_are_served_through_connect_and_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let t = TestEmu::start_with(EmulatorConfig {
        https_proxy_ca: Some(ca.clone()),
        ..Default::default()
    })
    .await;
    let pem = std::fs::read(&ca).unwrap();
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(&t.base).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let resp = client
        .get("https://api.box.com/2.0/users/me")
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let me: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(me["login"], "admin@example.com");
    // Several requests over one tunnel, to the upload host too.
    let resp = client
        .get("https://upload.box.com/api/2.0/no-such-endpoint")
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A non-Box host is refused at CONNECT; nothing is forwarded.
    assert!(client.get("https://example.org/").send().await.is_err());
    // Without trusting the CA, TLS fails.
    let untrusting = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(&t.base).unwrap())
        .build()
        .unwrap();
    assert!(untrusting
        .get("https://api.box.com/2.0/users/me")
        .send()
        .await
        .is_err());
}
