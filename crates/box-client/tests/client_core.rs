//! The client's request layer against the emulator: typed errors with Box's fields,
//! retries of transient failures (bounded), one refresh and resend after a 401, As-User,
//! and log lines without secrets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use box_client::client::Request;
use box_client::{
    Authenticator, BoxError, BoxResult, Client, DeveloperToken, Endpoints, RetryPolicy, Secret,
};
use box_emulator::testing::TestEmu;
use box_emulator::Knobs;
use reqwest::Method;
use serde_json::{json, Value};

fn client(t: &TestEmu, retry: RetryPolicy) -> Client {
    Client::with_http(
        Arc::new(DeveloperToken::new(t.token.clone())),
        Endpoints::from_base(&t.base).unwrap(),
        box_client::client::http_client(),
        retry,
    )
}

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        max_total: Duration::from_secs(20),
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn errors_carry_what_box_said() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let me = c.me().await.unwrap();
    assert_eq!(me.login, "admin@example.com");
    assert!(me.space_amount.unwrap() > 0);

    // A malformed id never reaches the network.
    assert!(matches!(c.user("abc").await, Err(BoxError::Invalid(_))));
    let err = c.user("12345").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not_found"));
    assert!(err.api().unwrap().request_id.is_some());

    let make = || {
        c.api(Method::POST, "/folders")
            .json(json!({"name": "Dup", "parent": {"id": "0"}}))
    };
    let created: Value = c.json(make()).await.unwrap();
    let err = c.json::<Value>(make()).await.unwrap_err();
    assert_eq!(err.code(), Some("item_name_in_use"));
    assert_eq!(err.conflict_id().as_deref(), created["id"].as_str());
    assert!(err.to_string().contains("409"), "{err}");
}

#[tokio::test]
async fn transient_failures_are_retried_within_bounds() {
    let t = TestEmu::start().await;
    t.emulator().set_knobs(Knobs {
        fault_rate: 0.5,
        fault_path_prefix: "/2.0/users".into(),
        ..Knobs::default()
    });
    let c = client(&t, fast_retries(12));
    for _ in 0..10 {
        c.me().await.expect("retries ride out 50% faults");
    }
    // Always failing: gives up after the attempts allowed, quickly, with the last error.
    t.emulator().set_knobs(Knobs {
        fault_rate: 1.0,
        fault_path_prefix: "/2.0/users".into(),
        ..Knobs::default()
    });
    let c = client(&t, fast_retries(3));
    let started = Instant::now();
    let err = c.me().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Not transient: no retry (a 404 comes back at once).
    t.emulator().set_knobs(Knobs::default());
    assert_eq!(c.user("777").await.unwrap_err().status(), Some(404));
}

/// Hands out a bad token first, then the real one; counts refreshes.
struct FlakyAuth {
    good: Secret,
    current: Mutex<Secret>,
    refreshes: AtomicUsize,
}

#[async_trait]
impl Authenticator for FlakyAuth {
    async fn access_token(&self) -> BoxResult<Secret> {
        Ok(self.current.lock().unwrap().clone())
    }
    async fn refresh(&self, rejected: &Secret) -> BoxResult<Secret> {
        let mut cur = self.current.lock().unwrap();
        if &*cur == rejected {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            *cur = self.good.clone();
        }
        Ok(cur.clone())
    }
}

#[tokio::test]
async fn a_401_refreshes_once_and_resends() {
    let t = TestEmu::start().await;
    let auth = Arc::new(FlakyAuth {
        good: Secret::new(t.token.clone()),
        current: Mutex::new(Secret::new("stale")),
        refreshes: AtomicUsize::new(0),
    });
    let c = Client::new(auth.clone(), Endpoints::from_base(&t.base).unwrap());
    assert_eq!(c.me().await.unwrap().login, "admin@example.com");
    assert_eq!(auth.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(c.me().await.unwrap().login, "admin@example.com");
    assert_eq!(auth.refreshes.load(Ordering::SeqCst), 1);

    // A refresh that gives another refused token ends in an auth error, not a loop.
    let c = Client::new(
        Arc::new(DeveloperToken::new("never-valid")),
        Endpoints::from_base(&t.base).unwrap(),
    );
    assert!(matches!(c.me().await, Err(BoxError::Auth(_))));
}

#[tokio::test]
async fn as_user_follows_derived_clients() {
    let t = TestEmu::start().await;
    let c = client(&t, RetryPolicy::default());
    let user = c.create_app_user("Derived", Some("ext-1")).await.unwrap();
    assert_eq!(user.is_platform_access_only, Some(true));
    let as_user = c.as_user(&user.id);
    assert_eq!(as_user.me().await.unwrap().id, user.id);
    let derived = as_user.clone();
    assert_eq!(derived.me().await.unwrap().id, user.id);
    assert_eq!(c.me().await.unwrap().login, "admin@example.com");
    assert!(matches!(
        c.create_app_user("", None).await,
        Err(BoxError::Invalid(_))
    ));
}

#[tokio::test]
async fn network_errors_are_typed_and_redacted() {
    let c = Client::with_http(
        Arc::new(DeveloperToken::new("t")),
        Endpoints::from_base("http://127.0.0.1:9").unwrap(),
        box_client::client::http_client(),
        fast_retries(2),
    );
    let req = Request::new(Method::GET, c.endpoints().api("/users/me"))
        .query("access_token", "SUPERSECRET");
    let err = c.json::<Value>(req).await.unwrap_err();
    // Nothing listens there: the connection is refused, Box is out of reach.
    assert!(matches!(err, BoxError::Unreachable(_)), "{err}");
    assert!(!err.to_string().contains("SUPERSECRET"), "{err}");
}

#[tokio::test]
async fn a_client_detecting_offline_fails_at_once_until_a_probe_is_answered() {
    let emu = TestEmu::start().await;
    // A port nothing listens on, then the emulator's.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_base = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let offline = Client::with_http(
        Arc::new(DeveloperToken::new(emu.token.clone())),
        Endpoints::from_base(&dead_base).unwrap(),
        box_client::client::http_client(),
        fast_retries(5),
    )
    .detecting_offline();
    let r = offline.reachability().expect("detecting").clone();
    assert!(!r.is_offline());
    assert!(matches!(offline.me().await, Err(BoxError::Unreachable(_))));
    assert!(r.is_offline(), "the refusal is noticed");
    // Now every call fails without being sent, and quickly.
    let started = Instant::now();
    let err = offline.me().await.unwrap_err();
    assert!(err.to_string().contains("not sent"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(matches!(
        offline.probe().await,
        Err(BoxError::Unreachable(_))
    ));
    assert!(r.is_offline());

    // The same reachability, on a client that reaches Box: a probe brings it back.
    let online = Client::with_http(
        Arc::new(DeveloperToken::new(emu.token.clone())),
        Endpoints::from_base(&emu.base).unwrap(),
        box_client::client::http_client(),
        fast_retries(2),
    )
    .detecting_offline();
    let r2 = online.reachability().unwrap().clone();
    r2.lost("test");
    assert!(online.me().await.is_err(), "refused while offline");
    online.probe().await.expect("the probe is answered");
    assert!(!r2.is_offline());
    assert_eq!(online.me().await.unwrap().login, "admin@example.com");
}
