//! The event stream over HTTP: paging, `now`, limits, stream types, per-user visibility,
//! duplicates, enterprise streams, `OPTIONS /events` and the realtime long-poll.

mod store_fixtures;

use std::time::{Duration, Instant};

use box_emulator::event_table::Action;
use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use store_fixtures as fx;

async fn events(t: &TestEmu, query: &str) -> Value {
    let (status, body) = t.get(&format!("/events?{query}")).await;
    assert_eq!(status, StatusCode::OK, "GET /events?{query}: {body}");
    body
}

fn types(body: &Value) -> Vec<String> {
    body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["event_type"].as_str().expect("event_type").to_string())
        .collect()
}

#[tokio::test]
async fn pages_through_the_stream_in_order() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(fx::folder(&t, me, root, &format!("f{i}")).to_string());
    }

    // Absent stream_position and 0 both start at the oldest event.
    let all = events(&t, "").await;
    assert_eq!(all["chunk_size"], 5);
    let all0 = events(&t, "stream_position=0").await;
    assert_eq!(all0["entries"], all["entries"]);

    let mut pos = "0".to_string();
    let mut seen = Vec::new();
    let mut event_ids = Vec::new();
    loop {
        let page = events(&t, &format!("stream_position={pos}&limit=2")).await;
        // An integer: rclone cannot parse a string here.
        let next = page["next_stream_position"]
            .as_u64()
            .expect("next_stream_position is a JSON integer");
        let entries = page["entries"].as_array().unwrap().clone();
        assert_eq!(page["chunk_size"], entries.len());
        assert!(entries.len() <= 2);
        if entries.is_empty() {
            assert_eq!(next, fx::latest(&t));
            break;
        }
        for e in &entries {
            assert_eq!(e["type"], "event");
            assert_eq!(e["event_type"], "ITEM_CREATE");
            assert_eq!(e["created_by"]["id"], me.to_string());
            assert_eq!(e["created_by"]["type"], "user");
            assert!(e["created_at"].as_str().unwrap().contains('T'));
            assert!(e["recorded_at"].is_string());
            assert_eq!(e["source"]["type"], "folder");
            seen.push(e["source"]["id"].as_str().unwrap().to_string());
            event_ids.push(e["event_id"].as_str().unwrap().to_string());
        }
        pos = next.to_string();
    }
    assert_eq!(seen, ids);
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 5, "event ids are unique");
}

#[tokio::test]
async fn now_gives_the_latest_position_and_nothing_else() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    fx::folder(&t, me, root, "old");
    let now = events(&t, "stream_position=now").await;
    assert_eq!(now["chunk_size"], 0);
    assert_eq!(now["entries"].as_array().unwrap().len(), 0);
    let pos = now["next_stream_position"].as_u64().unwrap();
    assert_eq!(pos, fx::latest(&t));

    let id = fx::folder(&t, me, root, "new");
    let later = events(&t, &format!("stream_position={pos}")).await;
    assert_eq!(later["chunk_size"], 1);
    assert_eq!(later["entries"][0]["source"]["id"], id.to_string());
    assert_eq!(later["entries"][0]["source"]["name"], "new");
    let next = later["next_stream_position"].as_u64().unwrap();
    let empty = events(&t, &format!("stream_position={next}")).await;
    assert_eq!(empty["chunk_size"], 0);
    assert_eq!(empty["next_stream_position"], next);
}

#[tokio::test]
async fn limit_is_clamped_to_500_and_checked() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    let f = fx::file(&t, me, root, "busy", b"x");
    for _ in 0..520 {
        fx::event(&t, Action::Download, me, f);
    }
    // More than the description's maximum of 500, on purpose: Box answers 500.
    let (status, page) = t.bad_get("/events?stream_position=0&limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["chunk_size"], 500);
    let default = events(&t, "stream_position=0").await;
    assert_eq!(default["chunk_size"], 100);
    let next = page["next_stream_position"].as_u64().unwrap();
    let rest = events(&t, &format!("stream_position={next}&limit=500")).await;
    assert_eq!(rest["chunk_size"], 21);

    // These break Box's description on purpose (marked so), except the stream position,
    // which the description types as any string.
    let (status, body) = t.bad_get("/events?limit=lots").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = t.get("/events?stream_position=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = t.bad_get("/events?stream_type=everything").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["type"], "error");
}

#[tokio::test]
async fn changes_stream_leaves_out_downloads_and_shares() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    let file = fx::file(&t, me, root, "a.txt", b"hello");
    fx::event(&t, Action::Download, me, file);
    fx::event(&t, Action::CreateSharedLink, me, file);
    fx::event(&t, Action::Rename, me, file);
    fx::event(&t, Action::Trash, me, file);

    let all = events(&t, "stream_type=all").await;
    assert_eq!(
        types(&all),
        [
            "ITEM_UPLOAD",
            "ITEM_DOWNLOAD",
            "ITEM_SHARED_CREATE",
            "ITEM_RENAME",
            "ITEM_TRASH"
        ]
    );
    let changes = events(&t, "stream_type=changes").await;
    assert_eq!(
        types(&changes),
        ["ITEM_UPLOAD", "ITEM_RENAME", "ITEM_TRASH"]
    );
    assert_eq!(
        changes["next_stream_position"], all["next_stream_position"],
        "both streams end at the latest position"
    );
    let sync = events(&t, "stream_type=sync").await;
    assert_eq!(types(&sync), ["ITEM_UPLOAD", "ITEM_RENAME", "ITEM_TRASH"]);
}

#[tokio::test]
async fn each_user_sees_only_their_events() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let (bob, bob_token) = fx::user(&t, "Bob");
    fx::folder(&t, me, fx::root(&t, me), "mine");
    let theirs = fx::folder(&t, bob, fx::root(&t, bob), "bobs");

    let admin_view = events(&t, "").await;
    assert_eq!(admin_view["chunk_size"], 1);
    assert_eq!(admin_view["entries"][0]["source"]["name"], "mine");

    let (status, body) = TestEmu::send(t.http.get(t.api("/events")).bearer_auth(&bob_token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["chunk_size"], 1);
    assert_eq!(body["entries"][0]["source"]["id"], theirs.to_string());

    // As-User reads the other user's stream.
    let (status, body) = TestEmu::send(
        t.req(Method::GET, &t.api("/events"))
            .header("As-User", bob.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["chunk_size"], 1);
    assert_eq!(body["entries"][0]["source"]["name"], "bobs");
}

#[tokio::test]
async fn duplicate_event_knob_repeats_events_with_the_same_id() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    for i in 0..3 {
        fx::folder(&t, me, root, &format!("d{i}"));
    }
    t.emulator().set_knobs(Knobs {
        duplicate_event_rate: 1.0,
        ..Knobs::default()
    });
    let doubled = events(&t, "").await;
    let entries = doubled["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(doubled["chunk_size"], 6);
    for pair in entries.chunks(2) {
        assert_eq!(pair[0]["event_id"], pair[1]["event_id"]);
    }
    // Duplicates never push a page past the limit, and paging still covers every event.
    let page = events(&t, "limit=3").await;
    assert_eq!(page["chunk_size"], 3);
    let next = page["next_stream_position"].as_u64().unwrap();
    let rest = events(&t, &format!("stream_position={next}")).await;
    let mut ids: Vec<String> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["entries"].as_array().unwrap())
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    t.emulator().set_knobs(Knobs::default());
    let single = events(&t, "").await;
    assert_eq!(single["chunk_size"], 3);
}

#[tokio::test]
async fn admin_logs_need_an_admin() {
    let t = TestEmu::start().await;
    let me = fx::admin(&t);
    let (bob, bob_token) = fx::user(&t, "Bob");
    let f = fx::file(&t, bob, fx::root(&t, bob), "report.txt", b"x");
    fx::event(&t, Action::Trash, bob, f);
    fx::folder(&t, me, fx::root(&t, me), "adminstuff");

    let logs = events(&t, "stream_type=admin_logs").await;
    assert_eq!(types(&logs), ["UPLOAD", "DELETE", "UPLOAD"]);
    let src = &logs["entries"][0]["source"];
    assert_eq!(src["item_type"], "file");
    assert_eq!(src["item_id"], f.to_string());
    assert_eq!(src["item_name"], "report.txt");
    assert!(logs["next_stream_position"].is_u64());

    let deletes = events(&t, "stream_type=admin_logs&event_type=DELETE").await;
    assert_eq!(types(&deletes), ["DELETE"]);
    let future = events(
        &t,
        "stream_type=admin_logs_streaming&created_after=2999-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(future["chunk_size"], 0);

    let (status, body) = TestEmu::send(
        t.http
            .get(t.api("/events?stream_type=admin_logs"))
            .bearer_auth(&bob_token),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = TestEmu::send(
        t.http
            .get(t.api("/events?stream_type=admin_logs_streaming&stream_position=now"))
            .bearer_auth(&bob_token),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn options(t: &TestEmu, token: &str, query: &str) -> Value {
    let (status, body) = TestEmu::send(
        t.http
            .request(Method::OPTIONS, t.api(&format!("/events{query}")))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "OPTIONS /events: {body}");
    body
}

#[tokio::test]
async fn options_lists_one_realtime_server() {
    let t = TestEmu::start().await;
    let body = options(&t, &t.token, "").await;
    assert_eq!(body["chunk_size"], 1);
    let server = &body["entries"][0];
    assert_eq!(server["type"], "realtime_server");
    // The schema types these as strings.
    assert_eq!(server["ttl"], "10");
    assert_eq!(server["max_retries"], "10");
    assert!(server["retry_timeout"].as_u64().unwrap() >= 610);
    let url = server["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/subscribe?channel=", t.base)),
        "{url}"
    );
    assert!(url.ends_with("&stream_type=all"), "{url}");
    let changes = options(&t, &t.token, "?stream_type=changes").await;
    assert!(changes["entries"][0]["url"]
        .as_str()
        .unwrap()
        .ends_with("stream_type=changes"));
    let other = options(&t, &t.token, "").await;
    assert_ne!(
        other["entries"][0]["url"], server["url"],
        "fresh channel each time"
    );

    let (status, _) = TestEmu::send(t.http.request(Method::OPTIONS, t.api("/events"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn longpoll_config() -> TestEmu {
    TestEmu::start_with(EmulatorConfig {
        longpoll_timeout_secs: 2,
        ..EmulatorConfig::default()
    })
    .await
}

/// One long-poll without an Authorization header, as the SDKs send it.
async fn poll(t: &TestEmu, url: &str) -> (StatusCode, Value) {
    TestEmu::send(t.http.get(url).timeout(Duration::from_secs(20))).await
}

#[tokio::test]
async fn long_poll_answers_at_once_when_events_are_pending() {
    let t = longpoll_config().await;
    let me = fx::admin(&t);
    let before = fx::latest(&t);
    fx::folder(&t, me, fx::root(&t, me), "pending");
    let url = options(&t, &t.token, "").await["entries"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let (status, body) = poll(&t, &format!("{url}&stream_position={before}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "new_change");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn long_poll_wakes_on_a_change_during_the_wait() {
    let t = longpoll_config().await;
    let me = fx::admin(&t);
    let pos = events(&t, "stream_position=now").await["next_stream_position"]
        .as_u64()
        .unwrap();
    let url = options(&t, &t.token, "").await["entries"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let poll_url = format!("{url}&stream_position={pos}");
    let (result, ()) = tokio::join!(poll(&t, &poll_url), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fx::folder(&t, me, fx::root(&t, me), "during");
    });
    assert_eq!(result.0, StatusCode::OK);
    assert_eq!(result.1["message"], "new_change");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_millis(1900), "{waited:?}");
    // The client then reads the new event from its position.
    let page = events(&t, &format!("stream_position={pos}")).await;
    assert_eq!(page["entries"][0]["source"]["name"], "during");
}

#[tokio::test]
async fn long_poll_reconnects_after_the_timeout() {
    let t = longpoll_config().await;
    let me = fx::admin(&t);
    // Old events do not count when no stream_position is given.
    fx::folder(&t, me, fx::root(&t, me), "old");
    let url = options(&t, &t.token, "").await["entries"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let (status, body) = poll(&t, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "reconnect");
    assert_eq!(body["version"], 1);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // An unknown channel is told to reconnect (to fetch a fresh one) at once.
    let started = Instant::now();
    let (status, body) = poll(&t, &format!("{}/subscribe?channel=nope", t.base)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "reconnect");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn long_poll_ignores_other_users_and_filtered_events() {
    let t = longpoll_config().await;
    let me = fx::admin(&t);
    let (bob, _) = fx::user(&t, "Bob");
    let pos = fx::latest(&t);
    let file = fx::file(&t, me, fx::root(&t, me), "f.txt", b"x");
    let pos_after_upload = fx::latest(&t);
    let changes_url = options(&t, &t.token, "?stream_type=changes").await["entries"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let all_url = options(&t, &t.token, "").await["entries"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    // A download is not a change; another user's folder is not ours.
    fx::event(&t, Action::Download, me, file);
    fx::folder(&t, bob, fx::root(&t, bob), "bobs");
    let (_, body) = poll(
        &t,
        &format!("{changes_url}&stream_position={pos_after_upload}"),
    )
    .await;
    assert_eq!(body["message"], "reconnect");
    let (_, body) = poll(&t, &format!("{all_url}&stream_position={pos_after_upload}")).await;
    assert_eq!(body["message"], "new_change");
    let (_, body) = poll(&t, &format!("{changes_url}&stream_position={pos}")).await;
    assert_eq!(body["message"], "new_change");
}

#[tokio::test]
async fn stopping_the_emulator_releases_held_long_polls() {
    let mut config = EmulatorConfig {
        longpoll_timeout_secs: 30,
        ..EmulatorConfig::default()
    };
    config.validate_responses = Some(box_emulator::testing::openapi_path());
    let emu = box_emulator::Emulator::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let (_, body) = TestEmu::send(
        http.request(Method::OPTIONS, format!("{}/2.0/events", emu.base_url()))
            .bearer_auth(&emu.info.developer_token),
    )
    .await;
    let url = body["entries"][0]["url"].as_str().unwrap().to_string();
    let held = tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), emu.stop())
        .await
        .expect("stop does not wait for the long-poll timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    let status = held.await.unwrap().expect("the held poll got an answer");
    assert_eq!(status, StatusCode::OK);
}
