//! The client with Box's own host names (`Endpoints::box_com()`), reaching the emulator as a
//! company's TLS-inspecting proxy would be reached: every request goes through the
//! emulator as a proxy (`HttpOptions::proxy`) and TLS is signed by the emulator's CA
//! (`HttpOptions::add_root_certificates_file`). Nothing here can reach the real Box: only
//! loopback is allowed, so each call that succeeds went to `api.box.com`, `upload.box.com`,
//! `dl.boxcloud.com` or the realtime host inside the emulator, each serving its own part.

use std::sync::Arc;
use std::time::Duration;

use box_client::events::{EventsQuery, LongPollMessage, StreamType};
use box_client::folders::ListOptions;
use box_client::http::HttpOptions;
use box_client::upload::{UploadOptions, UploadSession, MIN_CHUNKED_SIZE};
use box_client::{Client, DeveloperToken, Endpoints, RetryPolicy};
use box_emulator::testing::TestEmu;
use box_emulator::EmulatorConfig;

/// Pseudo-random bytes (xorshift).
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

async fn intercepting_emulator() -> (TestEmu, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestEmu::start_with(EmulatorConfig {
        https_proxy_ca: Some(dir.path().join("ca.pem")),
        ..Default::default()
    })
    .await;
    (t, dir)
}

fn box_com_client(t: &TestEmu, dir: &tempfile::TempDir) -> Client {
    let http = HttpOptions::new()
        .proxy(&t.base)
        .expect("the emulator's URL is a proxy URL")
        .add_root_certificates_file(&dir.path().join("ca.pem"))
        .expect("the emulator's CA")
        .build()
        .expect("HTTP client");
    Client::with_http(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::box_com(),
        http,
        RetryPolicy::none(),
    )
}

#[tokio::test]
async fn the_client_runs_its_flows_on_boxs_host_names() {
    let (t, dir) = intercepting_emulator().await;
    let c = box_com_client(&t, &dir);
    let start = c
        .latest_stream_position(StreamType::All)
        .await
        .expect("GET https://api.box.com/2.0/events");

    // List a folder, create one.
    let folder = c.create_folder("0", "Through Box hosts").await.unwrap();
    let root = c
        .folder_items_page("0", &ListOptions::marker())
        .await
        .expect("listing on api.box.com");
    assert!(root.entries.iter().any(|e| e.id == folder.id));

    // A small upload (multipart, upload.box.com) and a chunked one (a session whose
    // endpoints the emulator names on upload.box.com).
    let small = c
        .upload_file(
            &folder.id,
            "small.txt",
            b"hello".to_vec(),
            &UploadOptions::default(),
        )
        .await
        .expect("multipart upload on upload.box.com");
    let big_content = data(MIN_CHUNKED_SIZE as usize + 1234);
    let session_commit = Arc::new(std::sync::Mutex::new(None));
    let seen = session_commit.clone();
    let opts = UploadOptions {
        on_session: Some(Arc::new(move |s: &UploadSession| {
            *seen.lock().unwrap() = s.session_endpoints.commit.clone();
        })),
        ..UploadOptions::default()
    };
    let big = c
        .upload_file(&folder.id, "big.bin", big_content.clone(), &opts)
        .await
        .expect("chunked upload on upload.box.com");
    assert_eq!(big.size, Some(big_content.len() as u64));
    let commit = session_commit.lock().unwrap().clone().expect("a session");
    assert!(
        commit.starts_with("https://upload.box.com/api/2.0/files/upload_sessions/"),
        "{commit}"
    );

    // Downloads: the API answers with a redirect to dl.boxcloud.com, fetched there.
    let url = c.download_url(&small.id, None).await.unwrap();
    assert!(
        url.expose()
            .as_str()
            .starts_with("https://dl.boxcloud.com/"),
        "{}",
        url.expose()
    );
    let got = c.download(&small.id).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"hello");
    let got = c.download(&big.id).await.unwrap().bytes().await.unwrap();
    assert!(
        got[..] == big_content[..],
        "the chunked file comes back whole"
    );

    // Events: a page from api.box.com, and a long-poll on the realtime host (Box names it
    // with plain http://; it goes through the same proxy).
    let page = c
        .get_events(&EventsQuery::since(start.clone()))
        .await
        .unwrap();
    let types: Vec<&str> = page.entries.iter().map(|e| e.event_type.as_str()).collect();
    // Three content requests: the URL alone, then the two downloads.
    assert_eq!(
        types,
        [
            "ITEM_CREATE",
            "ITEM_UPLOAD",
            "ITEM_UPLOAD",
            "ITEM_DOWNLOAD",
            "ITEM_DOWNLOAD",
            "ITEM_DOWNLOAD"
        ]
    );
    let server = c.long_poll_options(StreamType::Changes).await.unwrap();
    assert!(
        server
            .url
            .starts_with("http://2.realtime.services.box.net/subscribe?"),
        "{}",
        server.url
    );
    let answer = c
        .long_poll(&server, &start, Some(Duration::from_secs(20)))
        .await
        .expect("long-poll on the realtime host");
    assert_eq!(answer, LongPollMessage::NewChange);
}

#[tokio::test]
async fn without_the_emulators_ca_nothing_is_trusted() {
    let (t, _dir) = intercepting_emulator().await;
    let http = HttpOptions::new().proxy(&t.base).unwrap().build().unwrap();
    let c = Client::with_http(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::box_com(),
        http,
        RetryPolicy::none(),
    );
    let err = c
        .me()
        .await
        .expect_err("an untrusted certificate is refused");
    assert!(err.status().is_none(), "no answer was accepted: {err}");
}
