//! Box's limited event retention (`Knobs::event_retention_ms`): expired events leave every
//! stream, a long-poll from a position an expired event came after answers `out_of_date` at
//! once, and a position at or after the newest expired event has missed nothing.

mod store_fixtures;

use std::time::{Duration, Instant};

use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use store_fixtures as fx;

const RETENTION_MS: u64 = 300;
/// Past the retention, with a margin.
const PAST_RETENTION: Duration = Duration::from_millis(600);
/// Long enough that an answer "at once" cannot be the long-poll timing out.
const LONGPOLL_SECS: u64 = 4;
/// What "at once" allows.
const AT_ONCE: Duration = Duration::from_secs(1);

async fn start(retention_ms: u64) -> TestEmu {
    TestEmu::start_with(EmulatorConfig {
        longpoll_timeout_secs: LONGPOLL_SECS,
        knobs: Knobs {
            event_retention_ms: retention_ms,
            ..Knobs::default()
        },
        ..EmulatorConfig::default()
    })
    .await
}

async fn events(t: &TestEmu, query: &str) -> Value {
    let (status, body) = t.get(&format!("/events?{query}")).await;
    assert_eq!(status, StatusCode::OK, "GET /events?{query}: {body}");
    body
}

/// The names of the items the entries are about (user or enterprise stream).
fn names(body: &Value) -> Vec<String> {
    body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let src = &e["source"];
            src["name"]
                .as_str()
                .or(src["item_name"].as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

fn next_position(body: &Value) -> u64 {
    body["next_stream_position"]
        .as_u64()
        .expect("an integer position")
}

/// One long-poll of the `all` stream from `position`: the message and how long it took.
async fn poll_from(t: &TestEmu, position: u64) -> (String, Duration) {
    let (status, body) = TestEmu::send(t.req(Method::OPTIONS, &t.api("/events"))).await;
    assert_eq!(status, StatusCode::OK, "OPTIONS /events: {body}");
    let url = body["entries"][0]["url"].as_str().expect("a realtime url");
    let started = Instant::now();
    let (status, body) = TestEmu::send(
        t.http
            .get(format!("{url}&stream_position={position}"))
            .timeout(Duration::from_secs(20)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "long-poll: {body}");
    let message = body["message"].as_str().expect("a message").to_string();
    (message, started.elapsed())
}

/// A long-poll from `position` while a folder is made 300 ms in: it must wait for it.
async fn poll_through_a_change(t: &TestEmu, position: u64) -> (String, Duration) {
    let me = fx::admin(t);
    let (answer, ()) = tokio::join!(poll_from(t, position), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fx::folder(t, me, fx::root(t, me), "during");
    });
    answer
}

#[tokio::test]
async fn expired_events_leave_every_stream() {
    let t = start(RETENTION_MS).await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    fx::folder(&t, me, root, "old");
    let old = fx::latest(&t);
    assert_eq!(names(&events(&t, "stream_position=0").await), ["old"]);

    tokio::time::sleep(PAST_RETENTION).await;
    fx::folder(&t, me, root, "new");
    let latest = fx::latest(&t);
    // A position before the expired event is no error: the answer starts at what is kept.
    for from in [0, old - 1] {
        let page = events(&t, &format!("stream_position={from}")).await;
        assert_eq!(names(&page), ["new"], "from {from}: {page}");
        assert_eq!(next_position(&page), latest);
    }
    let changes = events(&t, "stream_position=0&stream_type=changes").await;
    assert_eq!(names(&changes), ["new"]);
    let logs = events(&t, "stream_position=0&stream_type=admin_logs").await;
    assert_eq!(names(&logs), ["new"], "{logs}");
    let now = events(&t, "stream_position=now").await;
    assert_eq!(next_position(&now), latest);
}

#[tokio::test]
async fn long_poll_from_before_an_expired_event_is_out_of_date_at_once() {
    let t = start(RETENTION_MS).await;
    let me = fx::admin(&t);
    let root = fx::root(&t, me);
    fx::folder(&t, me, root, "old");
    let old = fx::latest(&t);
    tokio::time::sleep(PAST_RETENTION).await;
    fx::folder(&t, me, root, "new");

    for from in [0, old - 1] {
        let (message, took) = poll_from(&t, from).await;
        assert_eq!(message, "out_of_date", "from {from}");
        assert!(took < AT_ONCE, "from {from}: {took:?}");
    }
    // At the expired event itself nothing was missed; the kept one after it is news.
    let (message, took) = poll_from(&t, old).await;
    assert_eq!(message, "new_change");
    assert!(took < AT_ONCE, "{took:?}");
}

#[tokio::test]
async fn a_position_current_when_every_event_expired_missed_nothing() {
    let t = start(RETENTION_MS).await;
    let me = fx::admin(&t);
    fx::folder(&t, me, fx::root(&t, me), "old");
    let latest = fx::latest(&t);
    tokio::time::sleep(PAST_RETENTION).await;

    for from in [latest - 1, latest] {
        let page = events(&t, &format!("stream_position={from}")).await;
        assert_eq!(names(&page), Vec::<String>::new(), "from {from}: {page}");
        assert_eq!(next_position(&page), latest);
    }
    let (message, took) = poll_from(&t, latest - 1).await;
    assert_eq!(message, "out_of_date");
    assert!(took < AT_ONCE, "{took:?}");
    // The latest position waits as always, and wakes on the next change.
    let (message, took) = poll_through_a_change(&t, latest).await;
    assert_eq!(message, "new_change");
    assert!(took >= Duration::from_millis(250), "{took:?}");
}

#[tokio::test]
async fn without_retention_nothing_expires_and_the_knob_applies_at_once() {
    let t = start(0).await;
    let me = fx::admin(&t);
    fx::folder(&t, me, fx::root(&t, me), "old");
    tokio::time::sleep(PAST_RETENTION).await;
    assert_eq!(names(&events(&t, "stream_position=0").await), ["old"]);
    let (message, _) = poll_from(&t, 0).await;
    assert_eq!(message, "new_change");

    // Set over HTTP, the retention applies to the events already recorded.
    let url = format!("{}/_emulator/knobs", t.base);
    let change = json!({"event_retention_ms": RETENTION_MS});
    let resp = t.req(Method::PUT, &url).json(&change).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(t.emulator().knobs().event_retention_ms, RETENTION_MS);
    let got: Value = t.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["event_retention_ms"], RETENTION_MS);
    assert_eq!(
        names(&events(&t, "stream_position=0").await),
        Vec::<String>::new()
    );
    let (message, took) = poll_from(&t, 0).await;
    assert_eq!(message, "out_of_date");
    assert!(took < AT_ONCE, "{took:?}");

    // The emulator keeps expired events: turned off, the knob shows them again.
    t.emulator().set_knobs(Knobs::default());
    assert_eq!(names(&events(&t, "stream_position=0").await), ["old"]);
}
