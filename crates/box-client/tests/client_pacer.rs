//! The pacer in front of a server that counts what reaches it: a 429 pauses every request
//! of its kind, foreground requests overtake queued background ones, waiting is never a
//! failure nor a retry, the rate adapts, and two clients sharing pacing through Redis stay
//! together under the rate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use box_client::pacer::{PacerConfig, Priority, Rate};
use box_client::{Client, DeveloperToken, Endpoints, RetryPolicy};
use box_emulator::testing::redis::RedisServer;
use reqwest::Method;

/// What the server saw, and the 429s it still has to give.
#[derive(Default)]
struct Seen {
    requests: Vec<(Instant, String)>,
    /// Paths whose next request is answered 429, with this Retry-After (if any).
    throttle: Vec<(String, Option<u64>)>,
}

async fn counting_server() -> (String, Arc<Mutex<Seen>>) {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let state = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let state = state.clone();
        async move {
            let path = uri.path().to_string();
            let mut s = state.lock().unwrap();
            s.requests.push((Instant::now(), path.clone()));
            if let Some(i) = s.throttle.iter().position(|(p, _)| *p == path) {
                let (_, retry_after) = s.throttle.remove(i);
                let mut resp: Response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(serde_json::json!({
                        "type": "error", "status": 429, "code": "rate_limit_exceeded",
                        "message": "Request rate limit exceeded"})),
                )
                    .into_response();
                if let Some(secs) = retry_after {
                    resp.headers_mut()
                        .insert("retry-after", secs.to_string().parse().unwrap());
                }
                return resp;
            }
            axum::Json(serde_json::json!({"type": "folder", "id": "0"})).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn client(base: &str, config: PacerConfig) -> Client {
    Client::builder(
        Arc::new(DeveloperToken::new("token")),
        Endpoints::from_base(base).unwrap(),
    )
    .retry(RetryPolicy::none())
    .pacing(config)
    .build()
    .unwrap()
}

fn api(per_sec: f64, burst: u32) -> PacerConfig {
    PacerConfig {
        api_rate: Rate::per_second(per_sec),
        api_burst: burst,
        ..PacerConfig::default()
    }
}

async fn get(client: &Client, path: &str) {
    client
        .empty(client.api(Method::GET, path))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
}

fn arrivals(seen: &Arc<Mutex<Seen>>, path_end: &str) -> Vec<Instant> {
    seen.lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(_, p)| p.ends_with(path_end))
        .map(|(t, _)| *t)
        .collect()
}

#[tokio::test]
async fn a_429_pauses_the_other_requests_too() {
    let (base, seen) = counting_server().await;
    seen.lock()
        .unwrap()
        .throttle
        .push(("/2.0/folders/1".into(), Some(2)));
    // No retries allowed at all: the 429 must not use one up.
    let client = client(&base, api(100.0, 10));
    let first = tokio::spawn({
        let c = client.clone();
        async move { get(&c, "/folders/1").await }
    });
    while arrivals(&seen, "/folders/1").is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let throttled_at = arrivals(&seen, "/folders/1")[0];
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another request, of another clone, sent while the first waits out its Retry-After.
    get(&client.clone(), "/folders/2").await;
    first.await.unwrap();
    let other = arrivals(&seen, "/folders/2")[0];
    let resent = arrivals(&seen, "/folders/1")[1];
    assert!(
        other - throttled_at >= Duration::from_millis(1950),
        "{:?}",
        other - throttled_at
    );
    assert!(resent - throttled_at >= Duration::from_millis(1950));
    let stats = client.pacer_stats();
    assert_eq!(stats.throttled, 1);
    assert!(stats.waited >= Duration::from_millis(3500), "{stats:?}");
    assert_eq!(client.request_stats().errors.get("429"), Some(&1));
}

#[tokio::test]
async fn foreground_requests_overtake_queued_background_ones() {
    let (base, seen) = counting_server().await;
    let client = client(&base, api(5.0, 1));
    get(&client, "/folders/warm").await;
    let background = client.with_priority(Priority::Background);
    assert_eq!(background.priority(), Priority::Background);
    assert!(background.pacer().same_as(&client.pacer()));
    // Box counts As-User requests for the user acted as.
    let alice = client.as_user("11");
    assert!(!alice.pacer().same_as(&client.pacer()));
    assert!(alice
        .pacer()
        .same_as(&alice.with_priority(Priority::Background).pacer()));
    let queued: Vec<_> = (0..4)
        .map(|i| {
            let c = background.clone();
            tokio::spawn(async move { get(&c, &format!("/folders/bg{i}")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    get(&client, "/folders/fg").await;
    for t in queued {
        t.await.unwrap();
    }
    let order: Vec<String> = seen
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|(_, p)| p.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(order.len(), 6, "{order:?}");
    assert_eq!(&order[..2], ["warm", "fg"], "{order:?}");
}

#[tokio::test]
async fn a_burst_beyond_the_rate_all_succeeds_without_retries() {
    let (base, seen) = counting_server().await;
    let client = client(&base, api(20.0, 2));
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { get(&c, &format!("/folders/{i}")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(850), "{took:?}");
    assert_eq!(seen.lock().unwrap().requests.len(), 20);
    let stats = client.request_stats();
    assert_eq!((stats.calls, stats.error_count()), (20, 0));
    assert_eq!(client.pacer_stats().api.calls_last_minute, 20);
    assert_eq!(client.pacer_stats().api.limit_per_minute, Some(1200.0));
}

#[tokio::test]
async fn the_rate_backs_off_on_429_and_recovers() {
    let (base, seen) = counting_server().await;
    seen.lock()
        .unwrap()
        .throttle
        .push(("/2.0/folders/0".into(), None));
    let client = client(&base, api(100.0, 50));
    get(&client, "/folders/0").await;
    let stats = client.pacer_stats().api;
    assert_eq!(stats.throttled, 1);
    assert!(
        stats.effective_per_minute.unwrap() < 6000.0 * 0.6,
        "{stats:?}"
    );
    for _ in 0..30 {
        get(&client, "/folders/0").await;
    }
    assert_eq!(client.pacer_stats().api.effective_per_minute, Some(6000.0));
}

#[tokio::test]
async fn uploads_and_searches_count_against_their_own_limit_too() {
    let (base, seen) = counting_server().await;
    let client = client(
        &base,
        PacerConfig {
            upload_rate: Rate::per_second(10.0),
            upload_burst: 1,
            ..PacerConfig::unlimited()
        },
    );
    let started = Instant::now();
    for _ in 0..3 {
        client
            .empty(client.upload(Method::POST, "/files/content"))
            .await
            .unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(190));
    for _ in 0..3 {
        get(&client, "/folders/0").await;
    }
    let stats = client.pacer_stats();
    assert_eq!(stats.upload.calls_last_minute, 3);
    assert_eq!(stats.api.calls_last_minute, 6);
    assert_eq!(arrivals(&seen, "/files/content").len(), 3);
}

#[tokio::test]
async fn two_clients_sharing_redis_stay_together_under_the_rate() {
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let (base, seen) = counting_server().await;
    let make = || {
        Client::builder(
            Arc::new(DeveloperToken::new("token")),
            Endpoints::from_base(&base).unwrap(),
        )
        .retry(RetryPolicy::none())
        .pacing(api(10.0, 2))
        .shared_pacing(&url, "acct:42")
        .build()
        .unwrap()
    };
    let (a, b) = (make(), make());
    assert!(!a.pacer().same_as(&b.pacer()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { get(&c, &format!("/folders/{i}")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Alone, each would have sent its 10 in under a second.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1700), "{took:?}");
    let times = arrivals(&seen, "");
    for (i, t) in times.iter().enumerate() {
        let in_a_second = times[i..]
            .iter()
            .filter(|u| **u - *t < Duration::from_secs(1))
            .count();
        assert!(in_a_second <= 13, "{in_a_second} requests within a second");
    }
    assert!(a.pacer_stats().shared_through.is_some());
}

#[tokio::test]
async fn a_429_pauses_the_other_client_sharing_redis_too() {
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let (base, seen) = counting_server().await;
    seen.lock()
        .unwrap()
        .throttle
        .push(("/2.0/folders/1".into(), Some(2)));
    let make = || {
        Client::builder(
            Arc::new(DeveloperToken::new("token")),
            Endpoints::from_base(&base).unwrap(),
        )
        .retry(RetryPolicy::none())
        .pacing(api(100.0, 10))
        .shared_pacing(&url, "acct:pause")
        .build()
        .unwrap()
    };
    let (a, b) = (make(), make());
    let first = tokio::spawn(async move { get(&a, "/folders/1").await });
    while arrivals(&seen, "/folders/1").is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let throttled_at = arrivals(&seen, "/folders/1")[0];
    tokio::time::sleep(Duration::from_millis(200)).await;
    get(&b, "/folders/2").await;
    first.await.unwrap();
    let other = arrivals(&seen, "/folders/2")[0];
    assert!(
        other - throttled_at >= Duration::from_millis(1950),
        "{:?}",
        other - throttled_at
    );
    assert_eq!(b.pacer_stats().throttled, 0);
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_local_pacing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (base, _seen) = counting_server().await;
    let client = Client::builder(
        Arc::new(DeveloperToken::new("token")),
        Endpoints::from_base(&base).unwrap(),
    )
    .pacing(api(1000.0, 10))
    .shared_pacing(&format!("redis://127.0.0.1:{port}/"), "acct")
    .build()
    .unwrap();
    for _ in 0..3 {
        get(&client, "/folders/0").await;
    }
    let stats = client.pacer_stats();
    assert_eq!(stats.api.calls_last_minute, 3);
    assert_eq!(stats.shared_through, None);
}

#[test]
fn bad_rates_and_redis_urls_are_refused_readably() {
    let err = "lots".parse::<Rate>().unwrap_err().to_string();
    assert!(err.contains("'lots'") && err.contains("20/s"), "{err}");
    let err = Client::builder(Arc::new(DeveloperToken::new("token")), Endpoints::box_com())
        .shared_pacing("not a url", "acct")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("Redis URL"), "{err}");
}
