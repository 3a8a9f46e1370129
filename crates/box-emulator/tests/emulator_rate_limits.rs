//! Box's rate limits in the emulator (`--rate-limits box`, `Knobs::rate_limits`): each
//! kind of limit, counted per user (As-User for the user acted as), a burst then 429 with
//! Box's error JSON and a `Retry-After` that is enough, changes at runtime, and that the
//! 429s match Box's OpenAPI description. Also the event delay and HTTPS serving. The tests
//! use small windows so that they wait seconds, not minutes.

use std::time::{Duration, Instant};

use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs, Rate, RateLimitPreset, RateLimits};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Limits that never get in the way, to change one at a time.
fn generous() -> RateLimits {
    RateLimits {
        general: Rate::new(1000, 1_000, 1000),
        uploads: Rate::new(1000, 1_000, 1000),
        search_per_second: Rate::new(1000, 1_000, 1000),
        search_per_minute: Rate::new(1000, 1_000, 1000),
        enterprise_search: Rate::new(1000, 1_000, 1000),
    }
}

async fn with_limits(limits: RateLimits) -> TestEmu {
    TestEmu::start_with(EmulatorConfig {
        knobs: Knobs {
            rate_limits: Some(limits),
            ..Knobs::default()
        },
        ..Default::default()
    })
    .await
}

/// Sends and returns status, `Retry-After` (whole seconds) and the JSON body.
async fn send(rb: reqwest::RequestBuilder) -> (StatusCode, Option<u64>, Value) {
    let resp = rb.send().await.expect("request sent");
    let status = resp.status();
    let retry_after = resp.headers().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse()
            .expect("Retry-After in whole seconds")
    });
    let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, retry_after, body)
}

async fn me(t: &TestEmu, token: &str, as_user: Option<u64>) -> (StatusCode, Option<u64>, Value) {
    let mut rb = t.http.get(t.api("/users/me")).bearer_auth(token);
    if let Some(u) = as_user {
        rb = rb.header("as-user", u.to_string());
    }
    send(rb).await
}

async fn search(t: &TestEmu, token: &str) -> (StatusCode, Option<u64>, Value) {
    send(t.http.get(t.api("/search?query=report")).bearer_auth(token)).await
}

/// A multipart upload body: a new file in `parent`, or a new version without one.
fn multipart(parent: Option<&str>, name: &str) -> reqwest::multipart::Form {
    let attributes = match parent {
        Some(parent) => json!({"name": name, "parent": {"id": parent}}),
        None => json!({"name": name}),
    }
    .to_string();
    reqwest::multipart::Form::new()
        .text("attributes", attributes)
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name(name.to_string()),
        )
}

/// Box's 429: its error JSON, and a Retry-After of at least one second.
fn assert_rate_limited(status: StatusCode, retry_after: Option<u64>, body: &Value) -> u64 {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["status"], 429, "{body}");
    assert_eq!(body["code"], "rate_limit_exceeded", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    let secs = retry_after.expect("a 429 carries Retry-After");
    assert!(secs >= 1, "{secs}");
    secs
}

#[tokio::test]
async fn a_burst_then_429_and_retry_after_is_enough_to_wait() {
    let t = with_limits(RateLimits {
        general: Rate::new(1, 1_000, 3),
        ..generous()
    })
    .await;
    for i in 0..3 {
        let (s, _, body) = me(&t, &t.token, None).await;
        assert_eq!(s, StatusCode::OK, "call {i}: {body}");
    }
    let (s, retry_after, body) = me(&t, &t.token, None).await;
    let secs = assert_rate_limited(s, retry_after, &body);
    assert_eq!(secs, 1, "one call a second");
    // Still refused while the bucket is empty, and refused calls cost nothing: waiting
    // what Retry-After says is enough.
    let (s, _, _) = me(&t, &t.token, None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (s, _, body) = me(&t, &t.token, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn each_user_has_limits_of_their_own() {
    let t = with_limits(RateLimits {
        general: Rate::new(1, 60_000, 2),
        ..generous()
    })
    .await;
    let (_, other) = t.other_user(None);
    for _ in 0..2 {
        assert_eq!(me(&t, &t.token, None).await.0, StatusCode::OK);
    }
    let (s, retry_after, body) = me(&t, &t.token, None).await;
    let secs = assert_rate_limited(s, retry_after, &body);
    // One call a minute: the next token is a minute away.
    assert!((59..=60).contains(&secs), "{secs}");
    // The admin's limit is not the other user's.
    for _ in 0..2 {
        let (s, _, body) = me(&t, &other, None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    assert_eq!(me(&t, &other, None).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn as_user_calls_count_for_the_user_acted_as() {
    let t = with_limits(RateLimits {
        general: Rate::new(1, 60_000, 2),
        ..generous()
    })
    .await;
    let (uid, other) = t.other_user(None);
    for _ in 0..2 {
        let (s, _, body) = me(&t, &t.token, Some(uid)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["id"], uid.to_string());
    }
    let (s, retry_after, body) = me(&t, &t.token, Some(uid)).await;
    assert_rate_limited(s, retry_after, &body);
    // The user acted as has used up their own budget …
    assert_eq!(me(&t, &other, None).await.0, StatusCode::TOO_MANY_REQUESTS);
    // … and the admin, whose token it was, has spent nothing.
    for _ in 0..2 {
        assert_eq!(me(&t, &t.token, None).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn uploads_have_a_limit_of_their_own_on_top_of_the_general_one() {
    let t = with_limits(RateLimits {
        uploads: Rate::new(1, 1_000, 2),
        general: Rate::new(1, 60_000, 5),
        ..generous()
    })
    .await;
    // A new file (multipart) and an upload session: two uploads, two general calls.
    let (s, _, body) = send(
        t.req(Method::POST, &t.upload("/files/content"))
            .multipart(multipart(Some("0"), "a.txt")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let file = body["entries"][0]["id"].as_str().unwrap().to_string();
    let (s, _, body) = send(
        t.req(Method::POST, &t.upload("/files/upload_sessions"))
            .json(&json!({"folder_id": "0", "file_size": 30_000_000, "file_name": "big.bin"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // A new version is a third upload: refused, while other calls still go through.
    let version = || {
        t.req(Method::POST, &t.upload(&format!("/files/{file}/content")))
            .multipart(multipart(None, "a.txt"))
    };
    let (s, retry_after, body) = send(version()).await;
    let secs = assert_rate_limited(s, retry_after, &body);
    assert_eq!(secs, 1);
    let (s, _, body) = send(t.req(Method::GET, &t.api(&format!("/files/{file}")))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (s, _, body) = send(version()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Four general calls so far (the refused one cost nothing); the fifth is the last the
    // general bucket holds, and an upload session for a new version then finds it empty
    // although the upload bucket is not.
    let (s, _, body) = send(t.req(Method::GET, &t.api(&format!("/files/{file}")))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, retry_after, body) = send(
        t.req(
            Method::POST,
            &t.upload(&format!("/files/{file}/upload_sessions")),
        )
        .json(&json!({"file_size": 30_000_000, "file_name": "a.txt"})),
    )
    .await;
    let secs = assert_rate_limited(s, retry_after, &body);
    assert!(
        secs > 30,
        "the general bucket refills once a minute: {secs}"
    );
}

#[tokio::test]
async fn searches_are_limited_per_second() {
    let t = with_limits(RateLimits {
        search_per_second: Rate::new(2, 1_000, 2),
        ..generous()
    })
    .await;
    for _ in 0..2 {
        let (s, _, body) = search(&t, &t.token).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, retry_after, body) = search(&t, &t.token).await;
    let secs = assert_rate_limited(s, retry_after, &body);
    assert_eq!(secs, 1);
    // Only searches: other calls go on.
    assert_eq!(me(&t, &t.token, None).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    assert_eq!(search(&t, &t.token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn searches_are_limited_per_minute() {
    let t = with_limits(RateLimits {
        search_per_second: Rate::new(10, 1_000, 10),
        search_per_minute: Rate::new(3, 60_000, 3),
        ..generous()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(search(&t, &t.token).await.0, StatusCode::OK);
    }
    let (s, retry_after, body) = search(&t, &t.token).await;
    let secs = assert_rate_limited(s, retry_after, &body);
    // Three a minute: the next one is about 20 s away (not the second the per-second
    // bucket would ask for).
    assert!((19..=21).contains(&secs), "{secs}");
}

#[tokio::test]
async fn the_enterprise_search_limit_is_shared_by_its_users() {
    let t = with_limits(RateLimits {
        search_per_second: Rate::new(2, 1_000, 2),
        enterprise_search: Rate::new(3, 1_000, 3),
        ..generous()
    })
    .await;
    let (_, second) = t.other_user(None);
    let (_, third) = t.other_user(None);
    assert_eq!(search(&t, &t.token).await.0, StatusCode::OK);
    assert_eq!(search(&t, &t.token).await.0, StatusCode::OK);
    assert_eq!(search(&t, &second).await.0, StatusCode::OK);
    // The second and third users are within their own per-second limit, but the
    // enterprise's is spent.
    let (s, retry_after, body) = search(&t, &second).await;
    assert_rate_limited(s, retry_after, &body);
    let (s, retry_after, body) = search(&t, &third).await;
    assert_eq!(assert_rate_limited(s, retry_after, &body), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(search(&t, &third).await.0, StatusCode::OK);
}

#[tokio::test]
async fn box_limits_allow_a_burst_of_fifty_then_keep_to_a_thousand_a_minute() {
    let t = TestEmu::start_with(EmulatorConfig {
        knobs: Knobs {
            rate_limits: RateLimitPreset::Box.limits(),
            ..Knobs::default()
        },
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let mut admitted = 0u64;
    loop {
        let (s, retry_after, body) = me(&t, &t.token, None).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(assert_rate_limited(s, retry_after, &body), 1);
            break;
        }
        assert_eq!(s, StatusCode::OK, "{body}");
        admitted += 1;
        assert!(admitted < 1000, "never limited");
    }
    // 50 at once, plus what 1,000 a minute refilled meanwhile.
    let refilled = (started.elapsed().as_secs_f64() * 1000.0 / 60.0).ceil() as u64;
    assert!(
        admitted >= 50 && admitted <= 50 + refilled,
        "{admitted} admitted in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn limits_change_at_runtime_through_the_knobs() {
    let t = TestEmu::start().await;
    for _ in 0..5 {
        assert_eq!(me(&t, &t.token, None).await.0, StatusCode::OK);
    }
    // On, over the control endpoint; the limits not named are Box's.
    let knobs = json!({"rate_limits": {"general": {"calls": 1, "window_ms": 60000, "burst": 2}}});
    let (s, _, body) = send(
        t.req(Method::PUT, &format!("{}/_emulator/knobs", t.base))
            .json(&knobs),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["rate_limits"]["uploads"]["calls"], 240, "{body}");
    let (s, _, body) = send(t.req(Method::GET, &format!("{}/_emulator/knobs", t.base))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["rate_limits"]["general"]["burst"], 2, "{body}");
    for _ in 0..2 {
        assert_eq!(me(&t, &t.token, None).await.0, StatusCode::OK);
    }
    let (s, retry_after, body) = me(&t, &t.token, None).await;
    assert_rate_limited(s, retry_after, &body);
    // A limit that could never admit anything is refused, and changes nothing.
    let bad = json!({"rate_limits": {"general": {"calls": 1, "window_ms": 1000, "burst": 0}}});
    let (s, _, body) = send(
        t.req(Method::PUT, &format!("{}/_emulator/knobs", t.base))
            .json(&bad),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("general"),
        "{body}"
    );
    assert_eq!(
        me(&t, &t.token, None).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A higher rate applies at once (the buckets start afresh), in-process too.
    t.emulator().set_knobs(Knobs {
        rate_limits: Some(RateLimits {
            general: Rate::new(1, 60_000, 4),
            ..generous()
        }),
        ..Knobs::default()
    });
    for _ in 0..4 {
        assert_eq!(me(&t, &t.token, None).await.0, StatusCode::OK);
    }
    assert_eq!(
        me(&t, &t.token, None).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Off.
    let (s, _, _) = send(
        t.req(Method::PUT, &format!("{}/_emulator/knobs", t.base))
            .json(&json!({"rate_limits": null})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..10 {
        assert_eq!(me(&t, &t.token, None).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn token_requests_and_downloads_are_not_counted() {
    let t = with_limits(RateLimits {
        general: Rate::new(1, 60_000, 3),
        ..generous()
    })
    .await;
    let file = t.upload_file("0", "d.txt", b"content").await;
    let id = file["id"].as_str().unwrap();
    // The upload took one call of three; the two `GET /files/{id}/content` (a redirect)
    // take the rest, and their download-host legs none.
    let (s, _, _) = send(t.req(Method::GET, &t.api(&format!("/files/{id}/content")))).await;
    assert_eq!(s, StatusCode::FOUND);
    let resp = t
        .req(Method::GET, &t.api(&format!("/files/{id}/content")))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    for _ in 0..3 {
        let resp = t.http.get(&location).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap().as_ref(), b"content");
    }
    // The limit is spent, yet a client can still get a token.
    assert_eq!(
        me(&t, &t.token, None).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let info = &t.emulator().info;
    let (s, _, body) = send(t.http.post(format!("{}/oauth2/token", t.base)).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", info.client_id.as_str()),
        ("client_secret", info.client_secret.as_str()),
        ("box_subject_type", "enterprise"),
        ("box_subject_id", info.enterprise_id.as_str()),
    ]))
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn rate_limited_answers_match_box_s_description_on_every_kind_of_endpoint() {
    let t = TestEmu::start().await;
    let folder = t.mkdir("0", "limits").await;
    let file = t.upload_file(&folder, "f.txt", b"x").await;
    let file = file["id"].as_str().unwrap().to_string();
    t.emulator().set_knobs(Knobs {
        rate_limits: Some(RateLimits {
            general: Rate::new(1, 60_000, 1),
            ..generous()
        }),
        ..Knobs::default()
    });
    assert_eq!(me(&t, &t.token, None).await.0, StatusCode::OK);
    let requests = [
        t.req(Method::GET, &t.api(&format!("/folders/{folder}"))),
        t.req(Method::GET, &t.api(&format!("/folders/{folder}/items"))),
        t.req(Method::PUT, &t.api(&format!("/folders/{folder}")))
            .json(&json!({"name": "renamed"})),
        t.req(Method::POST, &t.api("/folders"))
            .json(&json!({"name": "n", "parent": {"id": "0"}})),
        t.req(Method::GET, &t.api(&format!("/files/{file}"))),
        t.req(Method::GET, &t.api(&format!("/files/{file}/content"))),
        t.req(Method::DELETE, &t.api(&format!("/files/{file}"))),
        t.req(Method::GET, &t.api("/events?stream_position=now")),
        t.req(Method::OPTIONS, &t.api("/events")),
        t.req(Method::GET, &t.api("/search?query=f")),
        t.req(Method::POST, &t.upload("/files/content"))
            .multipart(multipart(Some(&folder), "g.txt")),
        t.req(Method::POST, &t.upload(&format!("/files/{file}/content")))
            .multipart(multipart(None, "f.txt")),
        t.req(Method::POST, &t.upload("/files/upload_sessions"))
            .json(&json!({"folder_id": folder, "file_size": 30_000_000, "file_name": "big.bin"})),
    ];
    for rb in requests {
        let (s, retry_after, body) = send(rb).await;
        assert_rate_limited(s, retry_after, &body);
    }
    assert!(t.violations().is_empty(), "{:?}", t.violations());
}

#[tokio::test]
async fn events_are_visible_only_after_the_delay() {
    let delay = Duration::from_millis(1200);
    let t = TestEmu::start_with(EmulatorConfig {
        longpoll_timeout_secs: 10,
        knobs: Knobs {
            event_delay_ms: delay.as_millis() as u64,
            ..Knobs::default()
        },
        ..Default::default()
    })
    .await;
    let (_, body) = t.get("/events?stream_position=now").await;
    let position = body["next_stream_position"].as_u64().unwrap();
    let url = t
        .req(Method::OPTIONS, &t.api("/events"))
        .send()
        .await
        .unwrap();
    let url: Value = url.json().await.unwrap();
    let poll_url = format!(
        "{}&stream_position={position}",
        url["entries"][0]["url"].as_str().unwrap()
    );

    let changed_at = Instant::now();
    t.mkdir("0", "late").await;
    let (s, body) = t.get(&format!("/events?stream_position={position}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["entries"], json!([]), "{body}");
    // The stream does not move past the event held back.
    assert_eq!(body["next_stream_position"], position, "{body}");

    // The long-poll answers once the event is delivered, not at the change.
    let (s, body) = TestEmu::send(t.http.get(&poll_url).timeout(Duration::from_secs(20))).await;
    let waited = changed_at.elapsed();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["message"], "new_change", "{body}");
    assert!(waited >= delay, "{waited:?}");
    assert!(waited < delay + Duration::from_secs(2), "{waited:?}");

    let (_, body) = t.get(&format!("/events?stream_position={position}")).await;
    let names: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["source"]["name"].as_str())
        .collect();
    assert!(names.contains(&"late"), "{body}");
    assert!(body["next_stream_position"].as_u64().unwrap() > position);

    // The delay is a knob: off, events are there at once.
    t.emulator().set_knobs(Knobs::default());
    let position = body["next_stream_position"].as_u64().unwrap();
    t.mkdir("0", "prompt").await;
    let (_, body) = t.get(&format!("/events?stream_position={position}")).await;
    assert_eq!(body["entries"][0]["source"]["name"], "prompt", "{body}");
}

#[tokio::test]
async fn the_emulator_serves_https_with_a_ca_written_to_a_file() {
    let t = TestEmu::start_https().await;
    assert!(t.base.starts_with("https://127.0.0.1:"), "{}", t.base);
    let ca_file = t.ca_file.clone().expect("a CA file");
    let pem = std::fs::read_to_string(&ca_file).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    // A client that trusts the CA: the API, and a download through the URL handed out.
    let (s, body) = t.get("/users/me").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let file = t.upload_file("0", "tls.txt", b"over tls").await;
    let resp = t
        .req(
            Method::GET,
            &t.api(&format!("/files/{}/content", file["id"].as_str().unwrap())),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&t.base), "{location}");
    let content = t
        .http
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(content.as_ref(), b"over tls");
    // `localhost` is in the certificate too.
    let localhost = t.api("/users/me").replace("127.0.0.1", "localhost");
    let resp = t
        .http
        .get(&localhost)
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // A client that does not trust it fails the handshake.
    let stranger = reqwest::Client::new();
    let err = stranger
        .get(t.api("/users/me"))
        .bearer_auth(&t.token)
        .send()
        .await
        .expect_err("an unknown CA is refused");
    let chain = format!("{err:?}");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("certificate"),
        "{chain}"
    );
    // Plain HTTP to the HTTPS port gets nothing it could take for an answer.
    let plain = t.base.replace("https://", "http://");
    let answer = reqwest::Client::new()
        .get(format!("{plain}/2.0/users/me"))
        .bearer_auth(&t.token)
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(
        answer.as_ref().map_or(true, |r| !r.status().is_success()),
        "{answer:?}"
    );

    drop(t);
    assert!(!ca_file.exists(), "the test's CA file is removed");
}
