//! The emulator answering for Box's own hosts through HTTPS CONNECT, the way clients with
//! fixed API URLs (rclone) reach it: TLS with the emulator's CA, nothing but Box hosts, and
//! each host serving its own part of the API.

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

/// Each of Box's hosts serves its own part only, as Box routes them: an upload sent to the
/// API host or an API call sent to the upload host is answered 404 with Box's error body.
/// The emulator's own URL still serves every path.
#[tokio::test]
async fn each_box_host_serves_its_own_part() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let t = TestEmu::start_with(EmulatorConfig {
        https_proxy_ca: Some(ca.clone()),
        ..Default::default()
    })
    .await;
    let pem = std::fs::read(&ca).unwrap();
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(&t.base).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let folder = t.mkdir("0", "Hosts").await;
    let upload = |url: &str| {
        let form = reqwest::multipart::Form::new()
            .text(
                "attributes",
                serde_json::json!({"name": "a.txt", "parent": {"id": folder}}).to_string(),
            )
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"abc".to_vec()).file_name("a.txt"),
            );
        client.post(url).bearer_auth(&t.token).multipart(form)
    };

    // Refused: the wrong host for the path.
    for rb in [
        upload("https://api.box.com/api/2.0/files/content"),
        client
            .get("https://upload.box.com/2.0/folders/0")
            .bearer_auth(&t.token),
        client
            .get("https://dl.boxcloud.com/2.0/users/me")
            .bearer_auth(&t.token),
        client
            .get("https://account.box.com/2.0/users/me")
            .bearer_auth(&t.token),
        client
            .get("https://api.box.com/_emulator/knobs")
            .bearer_auth(&t.token),
    ] {
        let (status, body) = TestEmu::send(rb).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["type"], "error");
        assert_eq!(body["code"], "not_found");
    }

    // Served: the right host. The upload is on upload.box.com; its download redirect
    // points at dl.boxcloud.com, which serves the bytes.
    let (status, body) =
        TestEmu::send(upload("https://upload.box.com/api/2.0/files/content")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let file = body["entries"][0]["id"].as_str().unwrap().to_string();
    let resp = client
        .get(format!("https://api.box.com/2.0/files/{file}/content"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("https://dl.boxcloud.com/dl/"),
        "{location}"
    );
    let bytes = client
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"abc");
    // The authorize page is on account.box.com (here without its parameters, on purpose).
    let resp = client
        .get("https://account.box.com/api/oauth2/authorize")
        .header(box_emulator::conformance::EXPECT_INVALID, "1")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::NOT_FOUND);
    // The realtime host, named with plain http:// as Box names it, through the proxy.
    let (status, body) = TestEmu::send(
        client
            .request(reqwest::Method::OPTIONS, "https://api.box.com/2.0/events")
            .bearer_auth(&t.token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let poll = body["entries"][0]["url"].as_str().unwrap().to_string();
    assert!(
        poll.starts_with("http://2.realtime.services.box.net/subscribe?"),
        "{poll}"
    );
    let (status, body) = TestEmu::send(client.get(format!("{poll}&stream_position=0"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "new_change");

    // The emulator's own URL serves every path, and hands out its own URLs.
    let (status, body) = TestEmu::send(t.req(
        reqwest::Method::GET,
        &t.api(&format!("/files/{file}/content")),
    ))
    .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let (status, _) = t.get("/users/me").await;
    assert_eq!(status, StatusCode::OK);
}
