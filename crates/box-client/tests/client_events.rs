//! The client's events against the emulator: pages of the stream, the latest position, and
//! the long-polling feed: prompt delivery of another client's change, duplicates dropped,
//! polls that time out or are told to reconnect, recovery from injected faults, and a feed
//! that stops when dropped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use box_client::events::{
    Event, EventStream, EventStreamOptions, EventsQuery, LongPollMessage, StreamType,
};
use box_client::{BoxError, Client, DeveloperToken, Endpoints, RetryPolicy};
use box_emulator::testing::TestEmu;
use box_emulator::{EmulatorConfig, Knobs};
use futures_util::StreamExt;

fn client(t: &TestEmu, retry: RetryPolicy) -> Client {
    Client::with_http(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&t.base).unwrap(),
        box_client::client::http_client(),
        retry,
    )
}

fn quick_backoff(position: String) -> EventStreamOptions {
    EventStreamOptions {
        stream_position: Some(position),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..EventStreamOptions::default()
    }
}

/// Events from the feed until every folder in `want` has its ITEM_CREATE, or `within`
/// passes; errors are counted, not fatal.
async fn collect_creates(
    stream: &mut EventStream,
    want: &HashSet<String>,
    within: Duration,
) -> (Vec<Event>, usize) {
    let deadline = tokio::time::Instant::now() + within;
    let mut events = Vec::new();
    let mut errors = 0;
    let created = |events: &Vec<Event>| {
        events
            .iter()
            .filter(|e| e.event_type == "ITEM_CREATE")
            .filter_map(|e| e.item_id().map(str::to_string))
            .collect::<HashSet<_>>()
    };
    while !want.is_subset(&created(&events)) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(e))) => events.push(e),
            Ok(Some(Err(_))) => errors += 1,
            Ok(None) => panic!("the feed ended"),
            Err(_) => break,
        }
    }
    (events, errors)
}

fn assert_unique(events: &[Event]) {
    let mut seen = HashMap::new();
    for e in events {
        *seen.entry(e.event_id.clone()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
}

#[tokio::test]
async fn pages_and_the_latest_position() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let start = c.latest_stream_position(StreamType::All).await.unwrap();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(t.mkdir("0", &format!("page-{i}")).await);
    }
    // Two at a time from `start`, until a page is empty.
    let mut position = start.clone();
    let mut pages = 0;
    let mut created = Vec::new();
    loop {
        let page = c
            .get_events(&EventsQuery {
                limit: Some(2),
                ..EventsQuery::since(position.clone())
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.entries.len() <= 2);
        assert_eq!(page.chunk_size as usize, page.entries.len());
        for e in &page.entries {
            assert!(!e.event_id.is_empty());
            assert!(e.created_at.is_some());
            assert_eq!(e.created_by.as_ref().unwrap().login, "admin@example.com");
            if e.event_type == "ITEM_CREATE" {
                assert_eq!(e.item_type(), Some("folder"));
                assert_eq!(e.parent_id(), Some("0"));
                assert!(e.sequence_id().is_some());
                created.push(e.item_id().unwrap().to_string());
            }
        }
        position = page.next_stream_position;
        if page.chunk_size == 0 {
            break;
        }
        assert!(pages < 20, "paging does not end");
    }
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(created, made, "every creation, in order");
    // After the last page, the latest position is where paging ended.
    assert_eq!(
        c.latest_stream_position(StreamType::All).await.unwrap(),
        position
    );

    // Only what happened after a position; `changes` leaves out what changes nothing.
    let before = c.latest_stream_position(StreamType::Changes).await.unwrap();
    let one = t.mkdir("0", "after").await;
    let page = c
        .get_events(&EventsQuery {
            stream_type: StreamType::Changes,
            limit: Some(10_000), // lowered to Box's maximum
            ..EventsQuery::since(before)
        })
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].item_id(), Some(one.as_str()));
    // From the beginning: everything, creations included.
    let all = c.get_events(&EventsQuery::default()).await.unwrap();
    assert!(all.entries.len() >= 6);
    // Enterprise streams need an admin, and cannot be long-polled.
    assert!(matches!(
        c.long_poll_options(StreamType::AdminLogs).await,
        Err(BoxError::Invalid(_))
    ));
    let admin = c
        .get_events(&EventsQuery {
            stream_type: StreamType::AdminLogs,
            event_types: vec!["UPLOAD".into()],
            ..EventsQuery::default()
        })
        .await
        .unwrap();
    assert!(admin.entries.iter().all(|e| e.event_type == "UPLOAD"));
}

#[tokio::test]
async fn one_long_poll() {
    let t = TestEmu::start_with(EmulatorConfig {
        longpoll_timeout_secs: 1,
        ..EmulatorConfig::default()
    })
    .await;
    let c = client(&t, RetryPolicy::default());
    let server = c.long_poll_options(StreamType::All).await.unwrap();
    assert!(server.url.contains("channel="));
    assert!(server.max_retries.is_some() && server.ttl.is_some());
    let now = c.latest_stream_position(StreamType::All).await.unwrap();
    // Nothing happens: the server says reconnect after its timeout.
    let started = Instant::now();
    let m = c.long_poll(&server, &now, None).await.unwrap();
    assert_eq!(m, LongPollMessage::Reconnect);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Our own, shorter timeout.
    let m = c
        .long_poll(&server, &now, Some(Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(m, LongPollMessage::TimedOut);
    // Something new after the position: answered at once.
    t.mkdir("0", "poke").await;
    let started = Instant::now();
    let m = c.long_poll(&server, &now, None).await.unwrap();
    assert_eq!(m, LongPollMessage::NewChange);
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn the_feed_delivers_another_clients_change_promptly() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    // From now on (no position given).
    let mut stream = c.event_stream(EventStreamOptions::default());
    // Let the feed find its position and start polling.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = stream.position().expect("a position once started");
    for i in 0..3 {
        // Another client: plain HTTP with the admin's token.
        let id = t.mkdir("0", &format!("live-{i}")).await;
        let made = Instant::now();
        let want: HashSet<String> = [id.clone()].into();
        let (events, errors) = collect_creates(&mut stream, &want, Duration::from_secs(5)).await;
        assert_eq!(errors, 0);
        let took = made.elapsed();
        assert!(
            events.iter().any(|e| e.item_id() == Some(id.as_str())),
            "change {i} not delivered"
        );
        assert!(took < Duration::from_millis(1000), "took {took:?}");
    }
    let last = stream.position().unwrap();
    assert!(last.parse::<u64>().unwrap() > first.parse::<u64>().unwrap());

    // A feed resumed from an old position replays what came after it.
    let mut replay = c.event_stream(EventStreamOptions {
        stream_position: Some(first),
        ..EventStreamOptions::default()
    });
    let mut got = Vec::new();
    while got.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(5), replay.next_event())
            .await
            .expect("replayed in time")
            .unwrap()
            .unwrap();
        if e.event_type == "ITEM_CREATE" {
            got.push(e.item_name().unwrap().to_string());
        }
    }
    assert_eq!(got, ["live-0", "live-1", "live-2"]);

    // Resumed from where a reader stopped: nothing again, then what is new.
    let at = replay.position().unwrap();
    drop(replay);
    t.mkdir("0", "later").await;
    let mut resumed = c.event_stream(EventStreamOptions {
        stream_position: Some(at),
        ..EventStreamOptions::default()
    });
    let e = tokio::time::timeout(Duration::from_secs(5), resumed.next_event())
        .await
        .expect("delivered in time")
        .unwrap()
        .unwrap();
    assert_eq!(e.item_name(), Some("later"));
}

/// An emulator that sends every event twice, a client, and the stream's current end.
async fn every_event_twice() -> (TestEmu, Client, String) {
    let t = TestEmu::start().await;
    t.emulator().set_knobs(Knobs {
        duplicate_event_rate: 1.0,
        ..Knobs::default()
    });
    let c = client(&t, RetryPolicy::default());
    let start = c.latest_stream_position(StreamType::All).await.unwrap();
    (t, c, start)
}

#[tokio::test]
async fn duplicates_are_dropped() {
    let (t, c, start) = every_event_twice().await;
    let mut stream = c.event_stream(quick_backoff(start.clone()));
    let mut want = HashSet::new();
    for i in 0..4 {
        want.insert(t.mkdir("0", &format!("dup-{i}")).await);
    }
    // The emulator does send every event twice ...
    let raw = c.get_events(&EventsQuery::since(start)).await.unwrap();
    let ids: HashSet<_> = raw.entries.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(raw.entries.len(), 2 * ids.len(), "duplicates expected");
    // ... and the feed hands each over once.
    let (mut events, errors) = collect_creates(&mut stream, &want, Duration::from_secs(5)).await;
    assert_eq!(errors, 0);
    // A little longer: nothing comes again.
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(700), stream.next()).await {
        events.push(e.unwrap());
    }
    assert_eq!(events.len(), ids.len());
    assert_unique(&events);
}

#[tokio::test]
async fn a_resumed_stream_loses_nothing_and_repeats_nothing() {
    let (t, c, start) = every_event_twice().await;
    let mut want = HashSet::new();
    for i in 0..6 {
        want.insert(t.mkdir("0", &format!("resumed-{i}")).await);
    }
    // One page of events (each sent twice); two of them taken, the rest still waiting.
    let mut stream = c.event_stream(quick_backoff(start.clone()));
    let mut events = Vec::new();
    while events.len() < 2 {
        events.push(stream.next().await.unwrap().unwrap());
    }
    assert_eq!(stream.position(), Some(start), "the page was taken in part");
    // The new feed fetches the page again: only what was not taken comes.
    let mut stream = stream.resume();
    let (rest, errors) = collect_creates(&mut stream, &want, Duration::from_secs(5)).await;
    assert_eq!(errors, 0);
    events.extend(rest);
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(700), stream.next()).await {
        events.push(e.unwrap());
    }
    assert_unique(&events);
    let created: HashSet<String> = events
        .iter()
        .filter_map(|e| e.item_id().map(str::to_string))
        .collect();
    assert_eq!(created, want);
}

#[tokio::test]
async fn the_feed_keeps_going_across_reconnects_and_timeouts() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let t = TestEmu::start_with(EmulatorConfig {
        longpoll_timeout_secs: 1,
        request_log: Some(log.path().to_path_buf()),
        ..EmulatorConfig::default()
    })
    .await;
    let c = client(&t, RetryPolicy::default());
    let start = c.latest_stream_position(StreamType::All).await.unwrap();
    let mut stream = c.event_stream(quick_backoff(start.clone()));
    // Several polls are answered `reconnect` meanwhile.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let id = t.mkdir("0", "after-reconnects").await;
    let made = Instant::now();
    let (events, errors) = collect_creates(&mut stream, &[id].into(), Duration::from_secs(3)).await;
    assert_eq!(errors, 0);
    assert_eq!(events.len(), 1);
    assert!(made.elapsed() < Duration::from_millis(1000));
    let polls = |log: &std::path::Path| {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("/subscribe"))
            .count()
    };
    assert!(polls(log.path()) >= 2, "reconnects expected");

    // A feed that gives up on unanswered polls itself (the server would hold a minute).
    let t2 = TestEmu::start().await;
    let c2 = client(&t2, RetryPolicy::default());
    let start = c2
        .latest_stream_position(StreamType::Changes)
        .await
        .unwrap();
    let mut stream2 = c2.event_stream(EventStreamOptions {
        stream_type: StreamType::Changes,
        poll_timeout: Some(Duration::from_millis(300)),
        ..quick_backoff(start)
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let id = t2.mkdir("0", "after-timeouts").await;
    let (events, _) = collect_creates(&mut stream2, &[id].into(), Duration::from_secs(3)).await;
    assert_eq!(events.len(), 1);

    // Dropping the feed stops it: no more polls.
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_drop = polls(log.path());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(polls(log.path()), after_drop, "the feed still polls");
}

#[tokio::test]
async fn the_feed_recovers_from_faults() {
    let t = TestEmu::start_with(EmulatorConfig {
        longpoll_timeout_secs: 1,
        ..EmulatorConfig::default()
    })
    .await;
    // No retries in the request layer: every fault reaches the feed itself.
    let c = client(&t, RetryPolicy::none());
    let start = c.latest_stream_position(StreamType::All).await.unwrap();
    let mut stream = c.event_stream(quick_backoff(start));
    let mut all = Vec::new();
    let mut total_errors = 0;
    for prefix in ["/subscribe", "/2.0/events"] {
        t.emulator().set_knobs(Knobs {
            fault_rate: 0.5,
            fault_path_prefix: prefix.into(),
            ..Knobs::default()
        });
        let mut want = HashSet::new();
        for i in 0..6 {
            want.insert(t.mkdir("0", &format!("{}-{i}", &prefix[1..4])).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (events, errors) = collect_creates(&mut stream, &want, Duration::from_secs(20)).await;
        let got: HashSet<String> = events
            .iter()
            .filter_map(|e| e.item_id().map(str::to_string))
            .collect();
        assert!(
            want.is_subset(&got),
            "{prefix}: missing {:?}",
            want.difference(&got)
        );
        total_errors += errors;
        all.extend(events);
    }
    assert!(total_errors > 0, "faults should have been reported");
    t.emulator().set_knobs(Knobs::default());
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
        if let Ok(e) = e {
            all.push(e);
        }
    }
    assert_unique(&all);
}

#[tokio::test]
async fn refused_credentials_end_the_feed() {
    let t = TestEmu::start().await;
    let c = Client::new(
        Arc::new(DeveloperToken::new("not-a-token")),
        Endpoints::from_base(&t.base).unwrap(),
    );
    let mut stream = c.event_stream(EventStreamOptions::default());
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next_event())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, Err(BoxError::Auth(_))), "{first:?}");
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next_event())
        .await
        .unwrap();
    assert!(end.is_none());
    let mut admin = c.event_stream(EventStreamOptions {
        stream_type: StreamType::AdminLogs,
        ..EventStreamOptions::default()
    });
    assert!(matches!(
        admin.next_event().await,
        Some(Err(BoxError::Invalid(_)))
    ));
}
