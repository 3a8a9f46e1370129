//! The emulator's knobs over loopback HTTP: added latency, per-connection bandwidth,
//! injected faults (which never apply half a change), the HTTP control endpoint, and the
//! request log.

use std::time::{Duration, Instant};

use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn latency_is_added_to_every_request() {
    let t = TestEmu::start_with(EmulatorConfig {
        knobs: Knobs {
            latency_ms: 150,
            ..Knobs::default()
        },
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let (s, _) = t.get("/users/me").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    t.emulator().set_knobs(Knobs::default());
    // Without the knob a keep-alive round trip takes no 40 ms delayed-ACK stall:
    // 20 small requests stay far below 20 × 40 ms. (Each is refused, so nothing changes:
    // an empty name, outside Box's description on purpose.)
    let started = Instant::now();
    for _ in 0..20 {
        let (s, _) = t
            .bad_post_json("/folders", json!({"name": "", "parent": {"id": "0"}}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bandwidth_paces_each_connection() {
    let t = TestEmu::start_with(EmulatorConfig {
        knobs: Knobs {
            bandwidth: 1_000_000,
            ..Knobs::default()
        },
        ..Default::default()
    })
    .await;
    // 600 KB sent to the server at 1 MB/s takes at least ~0.6 s: the server reads the
    // whole body before it answers. (A folder's description is not a field of Box's
    // POST /folders: outside the description on purpose, to make the body large.)
    let body = json!({"name": "x", "parent": {"id": "0"}, "description": "d".repeat(600_000)});
    let started = Instant::now();
    let (s, _) = t.bad_post_json("/folders", body).await;
    let elapsed = started.elapsed();
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        elapsed >= Duration::from_millis(500),
        "paced upload took {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "pacing too slow: {elapsed:?}"
    );
}

#[tokio::test]
async fn faults_are_injected_and_never_half_applied() {
    let t = TestEmu::start().await;
    t.emulator().set_knobs(Knobs {
        fault_rate: 1.0,
        fault_path_prefix: "/2.0/folders".into(),
        ..Knobs::default()
    });
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..60 {
        let resp = t
            .req(Method::POST, &t.api("/folders"))
            .json(&json!({"name": format!("f{i}"), "parent": {"id": "0"}}))
            .send()
            .await;
        match resp {
            Err(_) => {
                seen.insert("dropped".to_string());
            }
            Ok(r) => {
                let status = r.status().as_u16();
                if status == 429 || status == 503 {
                    assert_eq!(r.headers()["retry-after"], "1");
                }
                let body: Value = r.json().await.unwrap_or(Value::Null);
                assert_eq!(body["type"], "error");
                seen.insert(status.to_string());
            }
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["429", "500", "503", "dropped"]
    );
    // Requests outside the prefix are not faulted.
    assert_eq!(t.get("/users/me").await.0, StatusCode::OK);
    // Nothing was created by a faulted request.
    t.emulator().set_knobs(Knobs::default());
    let (_, items) = t.get("/folders/0/items").await;
    assert_eq!(items["total_count"], 0);
}

#[tokio::test]
async fn knobs_can_be_changed_over_http() {
    let t = TestEmu::start().await;
    let url = format!("{}/_emulator/knobs", t.base);
    let change = json!({"latency_ms": 5, "duplicate_event_rate": 0.5});
    // Without a token, or with another user's, nothing changes.
    let resp = t.http.put(&url).json(&change).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, other_token) = t.other_user(None);
    let resp = t
        .http
        .put(&url)
        .bearer_auth(&other_token)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(t.emulator().knobs().latency_ms, 0);
    let resp = t.req(Method::PUT, &url).json(&change).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(t.emulator().knobs().latency_ms, 5);
    let got: Value = t.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["duplicate_event_rate"], 0.5);
    let resp = t.req(Method::PUT, &url).body("{nope").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn request_log_has_one_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let t = TestEmu::start_with(EmulatorConfig {
        request_log: Some(log.clone()),
        ..Default::default()
    })
    .await;
    let (s, user) = t
        .post_json(
            "/users",
            json!({"name": "Logged", "is_platform_access_only": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let uid = user["id"].as_str().unwrap();
    TestEmu::send(
        t.req(Method::GET, &t.api("/folders/0/items?limit=5"))
            .header("As-User", uid),
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["status"], 201);
    assert_eq!(lines[1]["path"], "/2.0/folders/0/items");
    assert_eq!(lines[1]["query"], "limit=5");
    assert_eq!(lines[1]["as_user"], uid);
    assert!(lines[1]["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        !text.contains(&t.token),
        "tokens never reach the request log"
    );
}
