//! `OAuth2`: Box's three-legged OAuth 2.0 — the authorize URL with a CSRF `state`, the
//! code exchange, refresh ahead of expiry and after a 401, and revoke.
//!
//! Box refresh tokens work ONCE: each refresh returns a new access + refresh pair and voids
//! the old refresh token. So refreshes are single-flight (many concurrent callers, one
//! refresh; none at all if the rejected token was already replaced), the new pair is saved
//! to the [`TokenStore`] before it is used, and with a shared store the refresher takes the
//! store's lock and re-reads the pair first: if another process already rotated it, its
//! pair is used instead of refreshing again (which would fail, and log the other out).

use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::store::{token_lifetime, TokenPair, TokenStore};
use super::{revoke_token, Authenticator};
use crate::client::{http_client, Client, Request, RetryPolicy};
use crate::endpoints::Endpoints;
use crate::error::{BoxError, BoxResult};
use crate::secret::Secret;

/// Refresh when less than this is left (less for short-lived tokens, see
/// [`TokenPair::needs_refresh`]).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// After a failed refresh ahead of expiry, keep using the still-valid token this long
/// before trying again (instead of every caller trying in turn).
const AHEAD_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Called with every pair this authenticator gets from Box (code exchange and refreshes).
pub type TokenCallback = Arc<dyn Fn(&TokenPair) + Send + Sync>;

/// Box's `AccessToken` answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    /// Any JSON: an absurd value is clamped, never a reason to lose the new pair.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<Secret>,
}

impl TokenResponse {
    fn into_pair(self) -> TokenPair {
        TokenPair::new(
            self.access_token,
            self.refresh_token,
            self.expires_in.as_ref().and_then(token_lifetime),
        )
    }
}

/// The token endpoints take no bearer token; this authenticator is never asked for one.
struct NoToken;

#[async_trait]
impl Authenticator for NoToken {
    async fn access_token(&self) -> BoxResult<Secret> {
        Err(BoxError::Auth("the OAuth endpoints take no token".into()))
    }
    async fn refresh(&self, _rejected: &Secret) -> BoxResult<Secret> {
        Err(BoxError::Auth("the OAuth endpoints take no token".into()))
    }
}

/// Box's OAuth 2.0 for a user who logs in through the browser.
pub struct OAuth2 {
    client_id: String,
    client_secret: Secret,
    endpoints: Endpoints,
    /// Sends the token calls (unauthenticated requests; Box's OAuth errors parsed).
    http: Client,
    store: Option<Arc<dyn TokenStore>>,
    on_new_tokens: Option<TokenCallback>,
    refresh_margin: Duration,
    /// The pair in use. Readers take it briefly; only holders of `flight` replace it.
    current: RwLock<Option<TokenPair>>,
    /// Single flight: whoever refreshes (or loads, exchanges, revokes) holds it.
    flight: tokio::sync::Mutex<()>,
    /// When a refresh ahead of expiry last failed.
    ahead_failed: StdMutex<Option<Instant>>,
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("token_url", &self.endpoints.token_url().as_str())
            .field("store", &self.store)
            .field("has_tokens", &self.current().is_some())
            .finish()
    }
}

/// The retry policy of OAuth2's token calls unless [`OAuth2::with_http`] gives another: they
/// fail sooner than API calls (a person may be waiting at a browser).
pub fn token_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_total: Duration::from_secs(30),
        base_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(5),
    }
}

/// Compares two strings in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the `state` Box echoed back against the one [`OAuth2::authorization_url`] made.
/// A mismatch means the redirect did not come from the login this program started (CSRF).
pub fn check_state(expected: &str, returned: &str) -> BoxResult<()> {
    if !expected.is_empty() && constant_time_eq(expected.as_bytes(), returned.as_bytes()) {
        Ok(())
    } else {
        Err(BoxError::Auth(
            "the state returned with the authorization code does not match the one sent; \
             the redirect may be forged (CSRF), so the code was not used"
                .into(),
        ))
    }
}

/// Reads the redirect Box sent the browser to (`redirect_uri?code=..&state=..`, or
/// `?error=..`): checks the state, then returns the authorization code.
pub fn code_from_redirect(redirect: &str, expected_state: &str) -> BoxResult<Secret> {
    let url = Url::parse(redirect)
        .map_err(|e| BoxError::Invalid(format!("the redirect is not a URL: {e}")))?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    check_state(expected_state, &param("state").unwrap_or_default())?;
    if let Some(error) = param("error") {
        let description = param("error_description").unwrap_or_default();
        return Err(BoxError::Auth(format!(
            "the login was not granted: {error} {description}"
        )));
    }
    match param("code") {
        Some(code) if !code.is_empty() => Ok(Secret::new(code)),
        _ => Err(BoxError::Auth("the redirect carries no code".into())),
    }
}

fn random_state() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn not_logged_in() -> BoxError {
    BoxError::Auth("not logged in to Box: no OAuth tokens yet (log in first)".into())
}

/// Box says `invalid_grant` for a refresh token that was used, revoked or expired; say why
/// that happens, since the usual cause is a second holder of the same token.
fn explain_refresh_error(e: BoxError) -> BoxError {
    match e {
        BoxError::OAuth {
            status,
            error,
            description,
            request_id,
        } if error == "invalid_grant" => BoxError::OAuth {
            status,
            error,
            request_id,
            description: format!(
                "{description} (the refresh token was already used, revoked or has expired; \
                 Box refresh tokens work once, so another holder of the same token may have \
                 used it: share tokens through one token store, or log in again)"
            ),
        },
        other => other,
    }
}

impl OAuth2 {
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        endpoints: Endpoints,
    ) -> OAuth2 {
        let http = Client::with_http(
            Arc::new(NoToken),
            endpoints.clone(),
            http_client(),
            token_retries(),
        );
        OAuth2 {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            endpoints,
            http,
            store: None,
            on_new_tokens: None,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            current: RwLock::new(None),
            flight: tokio::sync::Mutex::new(()),
            ahead_failed: StdMutex::new(None),
        }
    }

    /// Starts from a pair obtained earlier. With a store as well, the store's pair wins
    /// whenever it differs.
    pub fn with_tokens(self, pair: TokenPair) -> OAuth2 {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(pair);
        self
    }

    /// Keeps (and shares) the pair in `store`; the pair is loaded from it on first use.
    pub fn with_store(mut self, store: Arc<dyn TokenStore>) -> OAuth2 {
        self.store = Some(store);
        self
    }

    /// Calls `f` with every new pair from Box, before the pair is used (Box's SDKs call this
    /// `store_tokens`).
    pub fn on_new_tokens(mut self, f: impl Fn(&TokenPair) + Send + Sync + 'static) -> OAuth2 {
        self.on_new_tokens = Some(Arc::new(f));
        self
    }

    /// Refresh when less than this is left on the access token (default 60 s).
    pub fn with_refresh_margin(mut self, margin: Duration) -> OAuth2 {
        self.refresh_margin = margin;
        self
    }

    /// The HTTP client (and retry policy) for the token calls.
    pub fn with_http(mut self, http: reqwest::Client, retry: RetryPolicy) -> OAuth2 {
        self.http = Client::with_http(Arc::new(NoToken), self.endpoints.clone(), http, retry);
        self
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The pair in use, if any.
    pub fn tokens(&self) -> Option<TokenPair> {
        self.current()
    }

    fn current(&self) -> Option<TokenPair> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_current(&self, pair: Option<TokenPair>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
    }

    /// The URL to send the user's browser to, and the `state` to check the redirect against
    /// (fresh and random for each call; keep it until the redirect comes back).
    pub fn authorization_url(&self, redirect_uri: &str) -> (Url, String) {
        self.authorization_url_with_scopes(redirect_uri, &[])
    }

    /// `authorization_url` asking for `scopes` (default: the app's configured scopes).
    pub fn authorization_url_with_scopes(
        &self,
        redirect_uri: &str,
        scopes: &[&str],
    ) -> (Url, String) {
        let state = random_state();
        let mut url = self.endpoints.authorize.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", &state);
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes.join(" "));
            }
        }
        (url, state)
    }

    async fn token_call(&self, fields: Vec<(&str, &str)>) -> BoxResult<TokenPair> {
        let mut form: Vec<(String, String)> = vec![
            ("client_id".into(), self.client_id.clone()),
            (
                "client_secret".into(),
                self.client_secret.expose().to_string(),
            ),
        ];
        form.extend(fields.into_iter().map(|(k, v)| (k.into(), v.into())));
        let req = Request::new(Method::POST, self.endpoints.token_url())
            .form(form)
            .unauthenticated();
        let resp: TokenResponse = self.http.json(req).await?;
        if resp.access_token.is_empty() {
            return Err(BoxError::Decode(
                "the token endpoint answered an empty access token".into(),
            ));
        }
        Ok(resp.into_pair())
    }

    async fn revoke_call(&self, token: &Secret) -> BoxResult<()> {
        revoke_token(&self.http, &self.client_id, &self.client_secret, token).await
    }

    fn notify(&self, pair: &TokenPair) {
        if let Some(f) = &self.on_new_tokens {
            f(pair);
        }
    }

    /// Exchanges the authorization code from the redirect for a pair, which is saved to the
    /// store, passed to the callback, and used from now on.
    pub async fn authenticate(&self, code: impl Into<Secret>) -> BoxResult<TokenPair> {
        let code = code.into();
        if code.is_empty() {
            return Err(BoxError::Invalid("the authorization code is empty".into()));
        }
        let _flight = self.flight.lock().await;
        let pair = self
            .token_call(vec![
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
            ])
            .await?;
        if let Some(store) = &self.store {
            let lock = store.lock().await?;
            let saved = store.save(&pair).await;
            let released = lock.release().await;
            saved?;
            released?;
        }
        self.notify(&pair);
        self.set_current(Some(pair.clone()));
        Ok(pair)
    }

    /// Loads the stored pair if none is in use yet.
    async fn ensure_loaded(&self) -> BoxResult<TokenPair> {
        if let Some(p) = self.current() {
            return Ok(p);
        }
        let _flight = self.flight.lock().await;
        if let Some(p) = self.current() {
            return Ok(p);
        }
        let store = self.store.as_ref().ok_or_else(not_logged_in)?;
        let pair = store.load().await?.ok_or_else(not_logged_in)?;
        self.set_current(Some(pair.clone()));
        Ok(pair)
    }

    /// Replaces `rejected` (single flight). See the module documentation.
    async fn refresh_from(&self, rejected: &Secret) -> BoxResult<Secret> {
        let _flight = self.flight.lock().await;
        // Someone in this process already replaced it while we waited.
        if let Some(cur) = self.current() {
            if cur.access_token != *rejected && !cur.needs_refresh(self.refresh_margin) {
                return Ok(cur.access_token);
            }
        }
        let Some(store) = &self.store else {
            let cur = self.current().ok_or_else(not_logged_in)?;
            let pair = self.refresh_grant(&cur).await?;
            self.notify(&pair);
            self.set_current(Some(pair.clone()));
            return Ok(pair.access_token);
        };
        let lock = store.lock().await?;
        let result = self.refresh_locked(store.as_ref(), rejected).await;
        let released = lock.release().await;
        let token = result?;
        if let Err(e) = released {
            log::warn!("the token store's lock was not released cleanly: {e}");
        }
        Ok(token)
    }

    /// The refresh proper, under the store's lock.
    async fn refresh_locked(&self, store: &dyn TokenStore, rejected: &Secret) -> BoxResult<Secret> {
        let stored = store.load().await?;
        let base = match stored {
            Some(p) => p,
            None => self.current().ok_or_else(not_logged_in)?,
        };
        // Another holder already rotated the pair: use theirs. Refreshing with our refresh
        // token now would fail (it is spent) — and with theirs would log them out.
        if base.access_token != *rejected && !base.needs_refresh(self.refresh_margin) {
            log::debug!("another holder refreshed the Box tokens; using the stored pair");
            self.set_current(Some(base.clone()));
            return Ok(base.access_token);
        }
        let pair = self.refresh_grant(&base).await?;
        // Persist before use: the old refresh token is already dead at Box.
        if let Err(e) = store.save(&pair).await {
            // Still use the pair in memory (the old one no longer works), but say loudly
            // that a restart will need a new login.
            log::error!(
                "the new Box tokens could not be saved ({e}); a restart will need a new login"
            );
            self.notify(&pair);
            self.set_current(Some(pair));
            return Err(e);
        }
        self.notify(&pair);
        self.set_current(Some(pair.clone()));
        Ok(pair.access_token)
    }

    async fn refresh_grant(&self, base: &TokenPair) -> BoxResult<TokenPair> {
        let refresh = base.refresh_token.as_ref().ok_or_else(|| {
            BoxError::Auth(
                "the access token expired and there is no refresh token to renew it; log in again"
                    .into(),
            )
        })?;
        let pair = self
            .token_call(vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
            ])
            .await
            .map_err(explain_refresh_error)?;
        log::debug!("refreshed the Box access token");
        Ok(pair)
    }
}

#[async_trait]
impl Authenticator for OAuth2 {
    async fn access_token(&self) -> BoxResult<Secret> {
        let pair = self.ensure_loaded().await?;
        if !pair.needs_refresh(self.refresh_margin) {
            return Ok(pair.access_token);
        }
        let still_valid = !pair.is_expired();
        if still_valid {
            let paused = self
                .ahead_failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|t| t.elapsed() < AHEAD_RETRY_PAUSE);
            if paused {
                return Ok(pair.access_token);
            }
        }
        match self.refresh_from(&pair.access_token).await {
            Ok(token) => Ok(token),
            // Refreshing early is a courtesy: while the token still works, a failure waits.
            Err(e) if still_valid => {
                log::warn!("refreshing the Box token ahead of expiry failed (will retry): {e}");
                *self.ahead_failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                Ok(pair.access_token)
            }
            Err(e) => Err(e),
        }
    }

    async fn refresh(&self, rejected: &Secret) -> BoxResult<Secret> {
        self.ensure_loaded().await?;
        self.refresh_from(rejected).await
    }

    /// Revokes the pair at Box (the newest one, re-read from the store) and forgets it
    /// here and in the store.
    async fn revoke(&self) -> BoxResult<()> {
        let _flight = self.flight.lock().await;
        let lock = match &self.store {
            Some(store) => Some(store.lock().await?),
            None => None,
        };
        let result = async {
            let stored = match &self.store {
                Some(store) => store.load().await?,
                None => None,
            };
            if let Some(pair) = stored.or_else(|| self.current()) {
                // Revoking either token ends the grant at Box; revoking both also covers
                // an access token that already expired (RFC 7009: an unknown token is no
                // error).
                self.revoke_call(&pair.access_token).await?;
                if let Some(refresh) = &pair.refresh_token {
                    self.revoke_call(refresh).await?;
                }
            }
            if let Some(store) = &self.store {
                store.clear().await?;
            }
            self.set_current(None);
            Ok(())
        }
        .await;
        if let Some(lock) = lock {
            lock.release().await?;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_checks_are_exact() {
        assert!(check_state("abc", "abc").is_ok());
        assert!(check_state("abc", "abd").is_err());
        assert!(check_state("abc", "ab").is_err());
        assert!(check_state("", "").is_err());
        assert_ne!(random_state(), random_state());
        assert_eq!(random_state().len(), 43);
    }

    #[test]
    fn redirects_give_the_code_only_with_the_right_state() {
        let code = code_from_redirect("http://127.0.0.1/cb?code=c1&state=s1", "s1").unwrap();
        assert_eq!(code.expose(), "c1");
        assert!(matches!(
            code_from_redirect("http://127.0.0.1/cb?code=c1&state=s2", "s1"),
            Err(BoxError::Auth(_))
        ));
        assert!(code_from_redirect("http://127.0.0.1/cb?code=c1", "s1").is_err());
        let denied = code_from_redirect("http://127.0.0.1/cb?error=access_denied&state=s1", "s1")
            .unwrap_err();
        assert!(denied.to_string().contains("access_denied"));
        assert!(code_from_redirect("not a url", "s1").is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let o = OAuth2::new(
            "cid",
            "topsecret",
            Endpoints::from_base("http://127.0.0.1:1").unwrap(),
        )
        .with_tokens(TokenPair::new("acc-tok", Some("ref-tok".into()), None));
        let shown = format!("{o:?}");
        assert!(shown.contains("cid"), "{shown}");
        for s in ["topsecret", "acc-tok", "ref-tok"] {
            assert!(!shown.contains(s), "{shown}");
        }
        let (url, state) = o.authorization_url("http://127.0.0.1:9/cb");
        assert!(url.as_str().contains(&state) && url.as_str().contains("response_type=code"));
    }
}
