//! The OAuth 2.0 authenticator against the emulator: the browser flow with its CSRF state,
//! the code exchange, every new pair handed to the callback, refresh ahead of expiry and
//! after a 401, one refresh for many concurrent requests, revoke, and spent refresh tokens
//! (Box's are single use) as typed errors.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use box_client::auth::oauth::{check_state, code_from_redirect};
use box_client::auth::{OAuth2, TokenPair};
use box_client::{Authenticator, BoxError, Client, DeveloperToken, Endpoints, Secret};
use box_emulator::testing::TestEmu;
use box_emulator::EmulatorConfig;
use futures_util::future::join_all;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// Every pair the callback was given.
type Seen = Arc<Mutex<Vec<TokenPair>>>;

fn oauth(t: &TestEmu) -> (OAuth2, Seen) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let info = &t.emulator().info;
    let auth = OAuth2::new(
        info.client_id.clone(),
        info.client_secret.clone(),
        Endpoints::from_base(&t.base).unwrap(),
    )
    .on_new_tokens(move |p| sink.lock().unwrap().push(p.clone()));
    (auth, seen)
}

fn client(t: &TestEmu, auth: Arc<dyn Authenticator>) -> Client {
    Client::new(auth, Endpoints::from_base(&t.base).unwrap())
}

/// The browser's part: open the authorize URL, read where Box redirects to.
async fn approve(t: &TestEmu, url: &url::Url) -> String {
    let resp = t.http.get(url.as_str()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "authorize answers a redirect");
    resp.headers()["location"].to_str().unwrap().to_string()
}

/// The whole login: authorize, check the state, exchange the code.
async fn login(t: &TestEmu, auth: &OAuth2) -> TokenPair {
    let (url, state) = auth.authorization_url(REDIRECT);
    let location = approve(t, &url).await;
    let code = code_from_redirect(&location, &state).unwrap();
    auth.authenticate(code).await.unwrap()
}

/// A pair whose access token Box does not know, with a real refresh token.
fn bogus_access(real: &TokenPair) -> TokenPair {
    TokenPair {
        access_token: Secret::new("not-a-token"),
        refresh_token: real.refresh_token.clone(),
        expires_at: None,
        obtained_at: None,
    }
}

fn token_calls(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["path"] == "/oauth2/token")
        .map(|v| v["status"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn browser_flow_checks_state_and_hands_each_pair_to_the_callback() {
    let t = TestEmu::start().await;
    let (auth, seen) = oauth(&t);

    let (url, state) = auth.authorization_url(REDIRECT);
    let (_, other_state) = auth.authorization_url(REDIRECT);
    assert_ne!(state, other_state, "every login gets a fresh state");
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], t.emulator().info.client_id);
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["state"], state);

    let location = approve(&t, &url).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    // A redirect that carries another state is refused, and its code is not used.
    assert!(matches!(
        code_from_redirect(&location, &other_state),
        Err(BoxError::Auth(_))
    ));
    assert!(check_state(&state, &other_state).is_err());
    let code = code_from_redirect(&location, &state).unwrap();

    // Nothing yet: no token, a clear error.
    assert!(matches!(auth.access_token().await, Err(BoxError::Auth(_))));

    let pair = auth.authenticate(code.clone()).await.unwrap();
    assert!(pair.refresh_token.is_some() && pair.expires_at.is_some());
    assert_eq!(*seen.lock().unwrap(), vec![pair.clone()]);
    let auth = Arc::new(auth);
    let c = client(&t, auth.clone());
    assert_eq!(c.me().await.unwrap().login, "admin@example.com");

    // Codes work once.
    let err = auth.authenticate(code).await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_grant"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A wrong client secret is Box's invalid_client, typed.
    let wrong = OAuth2::new(
        t.emulator().info.client_id.clone(),
        "wrong secret",
        Endpoints::from_base(&t.base).unwrap(),
    );
    let (url, state) = wrong.authorization_url(REDIRECT);
    let code = code_from_redirect(&approve(&t, &url).await, &state).unwrap();
    match wrong.authenticate(code).await {
        Err(BoxError::OAuth { error, .. }) => assert_eq!(error, "invalid_client"),
        other => panic!("expected invalid_client, got {other:?}"),
    }
    // Debug shows neither the secret nor a token.
    let shown = format!("{auth:?} {pair:?}");
    assert!(!shown.contains(&t.emulator().info.client_secret), "{shown}");
    assert!(!shown.contains(pair.access_token.expose()), "{shown}");
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry_and_after_it() {
    let t = TestEmu::start_with(EmulatorConfig {
        token_ttl_secs: 2,
        ..EmulatorConfig::default()
    })
    .await;
    let (auth, seen) = oauth(&t);
    let first = login(&t, &auth).await;
    let auth = Arc::new(auth);
    let c = client(&t, auth.clone());
    c.me().await.unwrap();
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a fresh token is used as it is"
    );

    // Past half of a short token's life it is renewed before Box would refuse it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c.me().await.unwrap();
    let second = auth.tokens().unwrap();
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(
        second.refresh_token, first.refresh_token,
        "refresh tokens rotate"
    );
    assert_eq!(*seen.lock().unwrap(), vec![first, second.clone()]);

    // Long expired: renewed before the request goes out.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(second.is_expired());
    c.me().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(
        seen.lock().unwrap().last().cloned(),
        auth.tokens(),
        "the callback saw the pair in use"
    );
}

#[tokio::test]
async fn a_401_causes_one_refresh_and_a_resend() {
    let t = TestEmu::start().await;
    let (first, _) = oauth(&t);
    let real = login(&t, &first).await;
    let (auth, seen) = oauth(&t);
    let auth = Arc::new(auth.with_tokens(bogus_access(&real)));
    let c = client(&t, auth.clone());
    assert_eq!(c.me().await.unwrap().login, "admin@example.com");
    assert_eq!(seen.lock().unwrap().len(), 1);
    c.me().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "the new token keeps working");
}

#[tokio::test]
async fn thirty_concurrent_requests_cause_one_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let t = TestEmu::start_with(EmulatorConfig {
        request_log: Some(log.clone()),
        ..EmulatorConfig::default()
    })
    .await;
    let (first, _) = oauth(&t);
    let real = login(&t, &first).await;
    assert_eq!(token_calls(&log), vec![200]);

    // The token is past its expiry time (as far as the client knows).
    let mut expired = real.clone();
    expired.obtained_at = Some(chrono::Utc::now() - chrono::Duration::hours(2));
    expired.expires_at = Some(chrono::Utc::now() - chrono::Duration::hours(1));
    let (auth, seen) = oauth(&t);
    let auth = Arc::new(auth.with_tokens(expired));
    let c = client(&t, auth.clone());
    let results = join_all((0..30).map(|_| c.me())).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(token_calls(&log), vec![200, 200], "one refresh");

    // Box refuses the token (401) for 30 requests at once: still one refresh.
    let rotated = auth.tokens().unwrap();
    let (auth, seen) = oauth(&t);
    let auth = Arc::new(auth.with_tokens(bogus_access(&rotated)));
    let c = client(&t, auth.clone());
    let results = join_all((0..30).map(|_| c.me())).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(token_calls(&log), vec![200, 200, 200], "one refresh");
}

#[tokio::test]
async fn revoke_ends_the_session() {
    let t = TestEmu::start().await;
    let (auth, _) = oauth(&t);
    let pair = login(&t, &auth).await;
    let auth = Arc::new(auth);
    let c = client(&t, auth.clone());
    c.me().await.unwrap();
    auth.revoke().await.unwrap();

    assert!(auth.tokens().is_none());
    assert!(matches!(auth.access_token().await, Err(BoxError::Auth(_))));
    assert!(matches!(c.me().await, Err(BoxError::Auth(_))));
    // Box forgot both tokens.
    let old = client(&t, Arc::new(DeveloperToken::new(pair.access_token.clone())));
    assert!(matches!(old.me().await, Err(BoxError::Auth(_))));
    let (stale, _) = oauth(&t);
    let stale = Arc::new(stale.with_tokens(bogus_access(&pair)));
    let err = client(&t, stale).me().await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_grant"), "{err}");
    // Revoking with nothing to revoke is fine.
    auth.revoke().await.unwrap();
}

#[tokio::test]
async fn a_spent_refresh_token_is_a_clear_typed_error() {
    let t = TestEmu::start().await;
    let (a, _) = oauth(&t);
    let original = login(&t, &a).await;
    // Holder A refreshes: Box rotates the pair and kills the original refresh token.
    a.refresh(&original.access_token).await.unwrap();
    assert_ne!(a.tokens().unwrap().refresh_token, original.refresh_token);

    // Holder B still has the original pair.
    let (b, seen) = oauth(&t);
    let b = Arc::new(b.with_tokens(original.clone()));
    let err = b.refresh(&original.access_token).await.unwrap_err();
    match &err {
        BoxError::OAuth {
            error, description, ..
        } => {
            assert_eq!(error, "invalid_grant");
            assert!(description.contains("work once"), "{description}");
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty());
    // Through the request layer: the same typed error, no panic.
    let b_bogus = Arc::new(oauth(&t).0.with_tokens(bogus_access(&original)));
    let err = client(&t, b_bogus).me().await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_grant"), "{err}");
    // A still works.
    client(&t, Arc::new(a)).me().await.unwrap();
}

#[tokio::test]
async fn absurd_token_lifetimes_are_clamped_and_the_new_pair_is_kept() {
    for ttl in [1_000_000_000_000_000_000i64, i64::MAX, -5] {
        let t = TestEmu::start_with(EmulatorConfig {
            token_ttl_secs: ttl,
            ..EmulatorConfig::default()
        })
        .await;
        let (auth, seen) = oauth(&t);
        let first = login(&t, &auth).await;
        let year = chrono::Utc::now() + chrono::Duration::days(367);
        match first.expires_at {
            Some(at) => assert!(ttl > 0 && at < year, "ttl {ttl}: expires {at}"),
            None => assert!(ttl < 0, "ttl {ttl}: a negative lifetime is unknown"),
        }
        // A refresh, where a panic would lose the pair Box just rotated: it is handed on.
        let auth = Arc::new(auth);
        auth.refresh(&first.access_token).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "ttl {ttl}");
        assert_ne!(seen[1].refresh_token, first.refresh_token);
        assert_eq!(auth.tokens().as_ref(), Some(&seen[1]));
        if ttl > 0 {
            assert_eq!(
                client(&t, auth.clone()).me().await.unwrap().login,
                "admin@example.com"
            );
        }
    }
}
