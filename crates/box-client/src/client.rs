//! The request layer every API call goes through: one pooled HTTP client, the
//! authenticator's token on each request (one refresh and one resend after a 401), the
//! As-User header, retries of 429, 5xx and dropped connections (Retry-After honoured,
//! else exponential backoff with jitter, bounded in count and total time), Box's error JSON
//! turned into [`BoxError`], and a debug log line per request with every secret redacted.
//!
//! Before each attempt, a request with the user's token waits at the account's pacer
//! (`pacer/`): a 429 pauses the pacer's bucket for its `Retry-After` and the request is sent
//! again after the pause without using up an attempt; time spent at the pacer does not count
//! against [`RetryPolicy`].
//!
//! This is the only place the client retries a failed request. Box's download URLs go
//! through it too ([`Request`]s marked pre-signed: no token, no As-User, and the URL, a
//! credential, never shown), and a download whose body breaks off part-way asks for the
//! rest under the same policy and the same count of attempts (`download.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::auth::Authenticator;
use super::endpoints::Endpoints;
use super::error::{ApiErrorInfo, BoxError, BoxResult};
use super::pacer::{Kind, Pacer, PacerConfig, PacerStats, Priority, Rate};
use super::reachability::Reachability;
use super::secret::{redact_url, Secret};
use super::stats::{RequestCounters, RequestStats};

/// How hard the client tries before it gives up on a transient failure.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No retry starts after this much time since the first attempt.
    pub max_total: Duration,
    /// First backoff; doubles each retry, with full jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            max_total: Duration::from_secs(120),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_delay);
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        exp.mul_f64(jitter)
    }
}

/// The attempts made at one request, or at one download and the resumptions of its body:
/// [`RetryPolicy`] bounds them together (their count, and the time since the first).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempts {
    started: Instant,
    made: u32,
    /// Time spent waiting for the pacer since `started`: not counted against the policy.
    paced: Duration,
}

impl Attempts {
    pub(crate) fn new() -> Attempts {
        Attempts {
            started: Instant::now(),
            made: 0,
            paced: Duration::ZERO,
        }
    }

    /// The attempt that just failed had delivered data first (a body that broke off after
    /// some bytes): the policy bounds a streak of failures, not the length of a download, so
    /// a new streak starts with that attempt.
    pub(crate) fn progressed(&mut self) {
        *self = Attempts {
            started: Instant::now(),
            made: 1,
            paced: Duration::ZERO,
        };
    }
}

/// A request body that can be produced again for a retry.
#[derive(Clone)]
pub enum Body {
    Empty,
    Json(Value),
    /// `application/x-www-form-urlencoded` fields.
    Form(Vec<(String, String)>),
    Bytes {
        data: Bytes,
        content_type: String,
    },
    /// Built afresh for every attempt (multipart forms cannot be cloned).
    Multipart(Arc<dyn Fn() -> reqwest::multipart::Form + Send + Sync>),
}

/// How long a probe ([`Client::probe`]) waits for Box's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One API request, described so that it can be sent again.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Body,
    /// Send the client's token (false for the OAuth endpoints and pre-signed URLs).
    pub authenticated: bool,
    /// A pre-signed download URL: its path and query are a credential, so logs and errors
    /// name only its host.
    presigned: bool,
    /// Sent while Box is unreachable, to find out whether it is still (one attempt).
    probe: bool,
}

impl Request {
    pub fn new(method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
            authenticated: true,
            presigned: false,
            probe: false,
        }
    }

    /// A request to a pre-signed URL (Box's download URLs): sent without the token and the
    /// As-User header, and shown as "download URL on <host>" only.
    pub(crate) fn presigned(method: Method, url: Url) -> Request {
        Request {
            authenticated: false,
            presigned: true,
            ..Request::new(method, url)
        }
    }
    pub fn query(mut self, key: &str, value: impl ToString) -> Request {
        self.query.push((key.to_string(), value.to_string()));
        self
    }
    pub fn query_opt(self, key: &str, value: Option<impl ToString>) -> Request {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }
    pub fn json(mut self, value: Value) -> Request {
        self.body = Body::Json(value);
        self
    }
    pub fn form(mut self, fields: Vec<(String, String)>) -> Request {
        self.body = Body::Form(fields);
        self
    }
    pub fn body(mut self, body: Body) -> Request {
        self.body = body;
        self
    }
    pub fn unauthenticated(mut self) -> Request {
        self.authenticated = false;
        self
    }
    /// The URL with its query, secrets redacted, for logs and errors.
    fn display_url(&self) -> String {
        if self.presigned {
            return format!(
                "download URL on {}://{}",
                self.url.scheme(),
                self.url.host_str().unwrap_or("")
            );
        }
        let mut u = self.url.clone();
        if !self.authenticated {
            redact_path(&mut u);
        }
        if !self.query.is_empty() {
            u.query_pairs_mut().extend_pairs(self.query.iter());
        }
        redact_url(&u)
    }
}

struct Inner {
    http: reqwest::Client,
    auth: Arc<dyn Authenticator>,
    endpoints: Endpoints,
    retry: RetryPolicy,
    /// The `Date` header of the latest answer.
    server_date: Mutex<Option<SystemTime>>,
    /// Requests sent and error answers, for `boxfs status`.
    counters: RequestCounters,
    /// Keeps the account under Box's rate limits (shared with other clients of the
    /// account built with the same account key).
    pacer: Pacer,
    /// The pacers of the users acted as (`as_user`), made on first use.
    user_pacers: Mutex<std::collections::HashMap<String, Pacer>>,
}

/// Attempts of a request that finds Box unreachable, for a client
/// [`Client::detecting_offline`]: a second one rides out a blip; more would only make the
/// caller wait for what the probes will tell.
pub const UNREACHABLE_ATTEMPTS: u32 = 2;

/// A 429 sends the request again after the pacer's pause, without using up an attempt:
/// this many times at most per request, after which 429s count as failures.
const MAX_THROTTLED_RESENDS: u32 = 20;

/// A Box API client. Cheap to clone; `as_user` gives a client acting as another user,
/// `with_priority` one whose requests yield to (or go before) others at the pacer.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    as_user: Option<String>,
    priority: Priority,
    /// Set by [`Client::detecting_offline`]: shared by the clones made after.
    reachability: Option<Arc<Reachability>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.inner.endpoints.api.as_str())
            .field("as_user", &self.as_user)
            .field("priority", &self.priority)
            .finish()
    }
}

/// The HTTP client boxfs uses everywhere (see [`crate::http`] for a proxy or extra
/// trusted roots).
pub use super::http::http_client;

impl Client {
    pub fn new(auth: Arc<dyn Authenticator>, endpoints: Endpoints) -> Client {
        Client::with_http(auth, endpoints, http_client(), RetryPolicy::default())
    }

    /// A client whose requests go through `http` (built with [`crate::http::HttpOptions`]
    /// to use a proxy or trust extra roots).
    pub fn with_http(
        auth: Arc<dyn Authenticator>,
        endpoints: Endpoints,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Client {
        Client::with_pacer(
            auth,
            endpoints,
            http,
            retry,
            Pacer::new(PacerConfig::default()),
        )
    }

    /// A client whose requests are paced by `pacer` (see [`ClientBuilder`] for the usual
    /// ways to make one).
    pub fn with_pacer(
        auth: Arc<dyn Authenticator>,
        endpoints: Endpoints,
        http: reqwest::Client,
        retry: RetryPolicy,
        pacer: Pacer,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                http,
                auth,
                endpoints,
                retry,
                server_date: Mutex::new(None),
                counters: RequestCounters::default(),
                pacer,
                user_pacers: Mutex::default(),
            }),
            as_user: None,
            priority: Priority::Foreground,
            reachability: None,
        }
    }

    /// A client to build: its HTTP client, retry policy and pacing.
    pub fn builder(auth: Arc<dyn Authenticator>, endpoints: Endpoints) -> ClientBuilder {
        ClientBuilder {
            auth,
            endpoints,
            http: None,
            retry: RetryPolicy::default(),
            pacing: PacerConfig::default(),
            account: None,
            shared: None,
            pacer: None,
        }
    }

    /// The same client acting as `user_id` (the As-User header; admins and service
    /// accounts only). Everything derived from it keeps acting as that user. Box counts
    /// its rate limits for the user acted as, so it paces through that user's pacer.
    pub fn as_user(&self, user_id: &str) -> Client {
        Client {
            as_user: Some(user_id.to_string()),
            ..self.clone()
        }
    }

    /// The same client (sharing everything, the pacer included) whose requests have
    /// `priority` at the pacer: background work passes it to stay out of the way of
    /// requests a process waits on.
    /// The same client (sharing everything) that notices when Box cannot be reached at all
    /// and then fails every request at once, until [`Client::probe`] or any answer reaches
    /// Box again (see [`crate::reachability`]). Clones made from it share what it noticed.
    /// Its requests try an unreachable Box [`UNREACHABLE_ATTEMPTS`] times, not the policy's
    /// full count: the caller has something better to do than wait.
    pub fn detecting_offline(&self) -> Client {
        Client {
            reachability: Some(
                self.reachability
                    .clone()
                    .unwrap_or_else(|| Arc::new(Reachability::new())),
            ),
            ..self.clone()
        }
    }

    /// Whether Box can be reached, for a client [`Client::detecting_offline`].
    pub fn reachability(&self) -> Option<&Arc<Reachability>> {
        self.reachability.as_ref()
    }

    /// One request to Box (`GET /users/me`), sent even while Box is known to be unreachable,
    /// without retries: `Ok` once Box answered anything at all (an error status included,
    /// which the caller's other requests will meet), and the client is online again.
    pub async fn probe(&self) -> BoxResult<()> {
        let mut req = self.api(Method::GET, "/users/me");
        req.query.push(("fields".into(), "id".into()));
        req.probe = true;
        match self.send(req).await {
            Ok(_) => Ok(()),
            Err(BoxError::Unreachable(why)) => Err(BoxError::Unreachable(why)),
            Err(BoxError::Api(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    pub fn with_priority(&self, priority: Priority) -> Client {
        Client {
            priority,
            ..self.clone()
        }
    }

    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The pacer this client's requests wait at: the account's, or that of the user it
    /// acts as.
    pub fn pacer(&self) -> Pacer {
        let Some(user) = &self.as_user else {
            return self.inner.pacer.clone();
        };
        let mut pacers = self
            .inner
            .user_pacers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        pacers
            .entry(user.clone())
            .or_insert_with(|| self.inner.pacer.for_user(user))
            .clone()
    }

    /// The pacer's figures: calls in the last minute against the limits, time waited,
    /// 429s received.
    pub fn pacer_stats(&self) -> PacerStats {
        self.pacer().stats()
    }

    /// Whether this client's pacer has little budget left ([`Pacer::is_tight`]).
    pub fn pacing_is_tight(&self) -> bool {
        self.pacer().is_tight()
    }

    pub fn acting_as(&self) -> Option<&str> {
        self.as_user.as_deref()
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    pub fn authenticator(&self) -> &Arc<dyn Authenticator> {
        &self.inner.auth
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The server's clock as of the latest answer (its `Date` header, error answers
    /// included): JWT assertions use it when Box refuses their `exp` because the local
    /// clock is off. Shared by clones of this client.
    pub fn last_server_date(&self) -> Option<SystemTime> {
        *self
            .inner
            .server_date
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Requests sent through this client (and its clones) so far, and the error answers.
    pub fn request_stats(&self) -> RequestStats {
        self.inner.counters.snapshot()
    }

    /// Counts one request sent: its answer's status, or `None` when none came.
    fn count_request(&self, status: Option<u16>) {
        match status {
            Some(s) => self.inner.counters.answered(s),
            None => self.inner.counters.unanswered(),
        }
    }

    /// A request to the API host: `api(Method::GET, "/folders/0")`.
    pub fn api(&self, method: Method, path: &str) -> Request {
        Request::new(method, self.inner.endpoints.api(path))
    }

    /// A request to the upload host.
    pub fn upload(&self, method: Method, path: &str) -> Request {
        Request::new(method, self.inner.endpoints.upload(path))
    }

    /// Sends a request and returns the response of any success status (2xx/3xx); errors
    /// become `BoxError`. Retries and the 401 refresh happen here.
    pub async fn send(&self, req: Request) -> BoxResult<reqwest::Response> {
        self.send_counted(req, &mut Attempts::new()).await
    }

    /// [`Client::send`], counting its attempts in `attempts` (shared with other requests
    /// that belong to the same operation, such as the resumptions of a download).
    pub(crate) async fn send_counted(
        &self,
        req: Request,
        attempts: &mut Attempts,
    ) -> BoxResult<reqwest::Response> {
        if let Some(offline) = self.offline_refusal(&req) {
            return Err(offline);
        }
        let mut refreshed = false;
        let mut token = if req.authenticated {
            Some(self.inner.auth.access_token().await?)
        } else {
            None
        };
        // Requests with the user's token count against the user's limits; the token
        // endpoint and pre-signed download URLs do not.
        let paced =
            (req.authenticated && !req.presigned).then(|| Kind::of(&req.method, req.url.path()));
        let mut throttled_resends = 0;
        let pacer = self.pacer();
        loop {
            if let Some(kind) = paced {
                attempts.paced += pacer.acquire(kind, self.priority).await;
            }
            attempts.made += 1;
            let sent_at = Instant::now();
            let result = self.build(&req, token.as_ref()).send().await;
            self.count_request(result.as_ref().ok().map(|r| r.status().as_u16()));
            let outcome = match result {
                Ok(resp) => {
                    let status = resp.status();
                    if let Some(r) = &self.reachability {
                        r.reached();
                    }
                    if let Some(date) = header_str(resp.headers(), "date")
                        .and_then(|d| httpdate::parse_http_date(d).ok())
                    {
                        *self
                            .inner
                            .server_date
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = Some(date);
                    }
                    let request_id = header_str(resp.headers(), "box-request-id");
                    log::debug!(
                        "{} {} -> {} in {} ms{}",
                        req.method,
                        req.display_url(),
                        status.as_u16(),
                        sent_at.elapsed().as_millis(),
                        request_id
                            .map(|r| format!(" (request id {r})"))
                            .unwrap_or_default()
                    );
                    if status.is_success() || status.is_redirection() {
                        if let Some(kind) = paced {
                            pacer.succeeded(kind);
                        }
                        return Ok(resp);
                    }
                    if status == StatusCode::UNAUTHORIZED && req.authenticated && !refreshed {
                        refreshed = true;
                        let rejected = token.take().unwrap_or_else(|| Secret::new(""));
                        token = Some(self.inner.auth.refresh(&rejected).await?);
                        attempts.made -= 1;
                        continue;
                    }
                    Err(error_from_response(&req, resp).await)
                }
                Err(e) => {
                    let cause = if req.presigned {
                        cause_of(&e, "the download URL")
                    } else {
                        without_url(&e)
                    };
                    log::debug!(
                        "{} {} -> failed after {} ms: {cause}",
                        req.method,
                        req.display_url(),
                        sent_at.elapsed().as_millis()
                    );
                    match super::http::certificate_refusal(&e) {
                        Some(problem) => Err(BoxError::Certificate {
                            origin: req.url.origin().ascii_serialization(),
                            problem,
                        }),
                        // No connection at all (refused, no such host, timed out): not a
                        // connection dropped halfway, which says Box was there.
                        None if e.is_connect() || e.is_timeout() => Err(BoxError::Unreachable(
                            format!("{} {}: {cause}", req.method, req.display_url()),
                        )),
                        None => Err(BoxError::Network(format!(
                            "{} {}: {cause}",
                            req.method,
                            req.display_url(),
                        ))),
                    }
                }
            };
            let err = match outcome {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            if let Some(kind) = paced {
                match err.status() {
                    // The pacer holds every request of this kind for the Retry-After; this
                    // one waits there with the others, without using up an attempt.
                    Some(429) if throttled_resends < MAX_THROTTLED_RESENDS => {
                        throttled_resends += 1;
                        // Bounded like any retry's wait, against an absurd Retry-After.
                        let retry_after = err
                            .api()
                            .and_then(|a| a.retry_after)
                            .map(|d| d.min(self.inner.retry.max_delay));
                        pacer.throttled(kind, retry_after).await;
                        log::debug!(
                            "{} {} answered 429; sent again after the pause",
                            req.method,
                            req.display_url()
                        );
                        attempts.made -= 1;
                        continue;
                    }
                    Some(429) => pacer.throttled(kind, None).await,
                    Some(503) => pacer.unavailable(kind),
                    _ => {}
                }
            }
            // A pre-signed URL's 401 is the URL's own refusal (it expired), not the token's.
            if err.status() == Some(401) && !req.presigned {
                return Err(BoxError::Auth(format!(
                    "Box refused the credentials even after a refresh: {err}"
                )));
            }
            let what = format!("{} {}", req.method, req.display_url());
            let unreachable = matches!(err, BoxError::Unreachable(_));
            let out_of_tries = unreachable
                && (req.probe
                    || (self.reachability.is_some() && attempts.made >= UNREACHABLE_ATTEMPTS));
            if out_of_tries || !self.wait_to_retry(attempts, &err, &what).await {
                if let (true, Some(r), BoxError::Unreachable(why)) =
                    (unreachable, &self.reachability, &err)
                {
                    r.lost(why);
                }
                return Err(err);
            }
        }
    }

    /// The error a request gets without being sent, while Box is known to be unreachable.
    fn offline_refusal(&self, req: &Request) -> Option<BoxError> {
        let r = self.reachability.as_ref()?;
        if req.probe {
            return None;
        }
        let state = r.snapshot();
        let since = state.offline_since?;
        let ago = SystemTime::now()
            .duration_since(since)
            .unwrap_or_default()
            .as_secs();
        Some(BoxError::Unreachable(format!(
            "{} {} not sent: Box has been out of reach for {ago} s ({})",
            req.method,
            req.display_url(),
            state.last_failure.as_deref().unwrap_or("no connection")
        )))
    }

    /// After an attempt failed with `err`: whether the policy allows another one. If it
    /// does, this waits first (Box's `Retry-After`, else backoff with jitter). Only transient
    /// failures (429, 5xx, no answer, a body cut short) are tried again.
    pub(crate) async fn wait_to_retry(
        &self,
        attempts: &mut Attempts,
        err: &BoxError,
        what: &str,
    ) -> bool {
        let policy = &self.inner.retry;
        if !err.is_transient() || attempts.made >= policy.max_attempts {
            return false;
        }
        let wait = err
            .api()
            .and_then(|a| a.retry_after)
            .map(|d| d.min(policy.max_delay))
            .unwrap_or_else(|| policy.backoff(attempts.made.saturating_sub(1)));
        if attempts.started.elapsed().saturating_sub(attempts.paced) + wait > policy.max_total {
            return false;
        }
        log::debug!(
            "retrying {what} in {} ms (attempt {}): {err}",
            wait.as_millis(),
            attempts.made
        );
        tokio::time::sleep(wait).await;
        true
    }

    fn build(&self, req: &Request, token: Option<&Secret>) -> reqwest::RequestBuilder {
        let mut rb = self.inner.http.request(req.method.clone(), req.url.clone());
        if req.probe {
            // A probe that gets no answer in time says what a refused one says: a server
            // that accepts connections but never answers (one shutting down, a captive
            // network) would otherwise hold the prober, and the mount offline, for good.
            rb = rb.timeout(PROBE_TIMEOUT);
        }
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        if let Some(t) = token {
            rb = rb.header(AUTHORIZATION, format!("Bearer {}", t.expose()));
        }
        if let (Some(user), true) = (&self.as_user, req.authenticated) {
            rb = rb.header("As-User", user.as_str());
        }
        for (name, value) in &req.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                rb = rb.header(name.clone(), v);
            }
        }
        match &req.body {
            Body::Empty => rb,
            Body::Json(v) => rb.json(v),
            Body::Form(fields) => rb.form(fields),
            Body::Bytes { data, content_type } => rb
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(data.clone()),
            Body::Multipart(make) => rb.multipart(make()),
        }
    }

    /// Sends and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, req: Request) -> BoxResult<T> {
        let what = format!("{} {}", req.method, req.display_url());
        let resp = self.send(req).await?;
        decode(resp, &what).await
    }

    /// Sends a request whose answer has no body worth reading (204 and the like).
    pub async fn empty(&self, req: Request) -> BoxResult<()> {
        let resp = self.send(req).await?;
        let _ = resp.bytes().await;
        Ok(())
    }
}

/// Builds a [`Client`]: `Client::builder(auth, endpoints).api_rate(..).build()`.
pub struct ClientBuilder {
    auth: Arc<dyn Authenticator>,
    endpoints: Endpoints,
    http: Option<reqwest::Client>,
    retry: RetryPolicy,
    pacing: PacerConfig,
    account: Option<String>,
    shared: Option<(String, String)>,
    pacer: Option<Pacer>,
}

impl ClientBuilder {
    /// The HTTP client (built with [`crate::http::HttpOptions`]); default [`http_client`].
    pub fn http(mut self, http: reqwest::Client) -> ClientBuilder {
        self.http = Some(http);
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> ClientBuilder {
        self.retry = retry;
        self
    }

    /// General API calls (default Box's 1,000 a minute).
    pub fn api_rate(mut self, rate: Rate) -> ClientBuilder {
        self.pacing.api_rate = rate;
        self
    }

    /// Uploads (default Box's 240 a minute).
    pub fn upload_rate(mut self, rate: Rate) -> ClientBuilder {
        self.pacing.upload_rate = rate;
        self
    }

    /// Every pacing setting at once.
    pub fn pacing(mut self, config: PacerConfig) -> ClientBuilder {
        self.pacing = config;
        self
    }

    /// The account this client works for: clients built with the same key in this
    /// process share one pacer (the first one built sets its rates).
    pub fn account(mut self, key: &str) -> ClientBuilder {
        self.account = Some(key.to_string());
        self
    }

    /// Shares the pacing with every process and machine that uses the same Redis server
    /// and account key (`redis://[:password@]host[:port][/db]`).
    pub fn shared_pacing(mut self, redis_url: &str, key: &str) -> ClientBuilder {
        self.shared = Some((redis_url.to_string(), key.to_string()));
        self
    }

    /// Paces through `pacer` (overrides the other pacing settings).
    pub fn pacer(mut self, pacer: Pacer) -> ClientBuilder {
        self.pacer = Some(pacer);
        self
    }

    /// The client; fails only on a Redis URL that cannot be used.
    pub fn build(self) -> BoxResult<Client> {
        let make = || match &self.shared {
            Some((url, key)) => Pacer::shared(self.pacing.clone(), url, key),
            None => Ok(Pacer::new(self.pacing.clone())),
        };
        let pacer = match (&self.pacer, &self.account) {
            (Some(p), _) => p.clone(),
            (None, Some(account)) => Pacer::for_account(account, make)?,
            (None, None) => make()?,
        };
        Ok(Client::with_pacer(
            self.auth,
            self.endpoints,
            self.http.unwrap_or_else(http_client),
            self.retry,
            pacer,
        ))
    }
}

pub async fn decode<T: DeserializeOwned>(resp: reqwest::Response, what: &str) -> BoxResult<T> {
    let bytes = resp.bytes().await.map_err(|e| {
        BoxError::Network(format!("{what}: reading the answer: {}", without_url(&e)))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| BoxError::Decode(format!("{what}: {e}")))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// reqwest's error text includes the URL, which may carry a secret: keep only the cause.
fn without_url(e: &reqwest::Error) -> String {
    let shown = e
        .url()
        .map(|url| {
            let mut shown = url.clone();
            redact_path(&mut shown);
            redact_url(&shown)
        })
        .unwrap_or_default();
    cause_of(e, &shown)
}

/// The error and its causes, with the URL it names (if any) replaced by `shown`.
pub(crate) fn cause_of(e: &reqwest::Error, shown: &str) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), shown);
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Pre-signed URLs (Box's download URLs on dl.boxcloud.com) carry their credential in a
/// long path segment; such segments are not shown. Box ids are shorter.
fn redact_path(url: &mut Url) {
    const LONG: usize = 24;
    let Some(segments) = url.path_segments() else {
        return;
    };
    let segments: Vec<String> = segments.map(str::to_string).collect();
    if segments.iter().all(|s| s.len() < LONG) {
        return;
    }
    let path: Vec<&str> = segments
        .iter()
        .map(|s| {
            if s.len() < LONG {
                s.as_str()
            } else {
                "[REDACTED]"
            }
        })
        .collect();
    url.set_path(&format!("/{}", path.join("/")));
}

/// Turns an error response into `BoxError`, keeping Box's fields.
async fn error_from_response(req: &Request, resp: reqwest::Response) -> BoxError {
    let status = resp.status().as_u16();
    let retry_after = header_str(resp.headers(), RETRY_AFTER.as_str())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let header_request_id = header_str(resp.headers(), "box-request-id").map(str::to_string);
    let body: Value = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(error) = text("error") {
        return BoxError::OAuth {
            status,
            error,
            description: text("error_description").unwrap_or_default(),
            request_id: text("request_id").or(header_request_id),
        };
    }
    BoxError::Api(Box::new(ApiErrorInfo {
        status,
        code: text("code").unwrap_or_else(|| default_code(status).to_string()),
        message: text("message").unwrap_or_else(|| {
            StatusCode::from_u16(status)
                .map(|s| s.to_string())
                .unwrap_or_default()
        }),
        request_id: text("request_id").or(header_request_id),
        context_info: body.get("context_info").filter(|v| !v.is_null()).cloned(),
        retry_after,
        method: req.method.to_string(),
        url: req.display_url(),
    }))
}

fn default_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        412 => "precondition_failed",
        416 => "requested_range_not_satisfiable",
        429 => "rate_limit_exceeded",
        500 => "internal_server_error",
        503 => "unavailable",
        _ => "error",
    }
}
