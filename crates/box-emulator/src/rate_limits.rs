//! Box's rate limits, enforced when asked (`--rate-limits box`, or `Knobs::rate_limits`
//! while running). Box documents per user: about 1,000 API calls a minute, 240 upload
//! requests a minute, and 6 searches a second and 60 a minute; and 12 searches a second per
//! enterprise. Past a limit it answers 429 `rate_limit_exceeded` with `Retry-After` in
//! whole seconds.
//!
//! Each limit is a token bucket: it refills at the documented rate and holds at most a
//! modest burst (general 50, uploads 20, search 6 a second and 10 on the minute bucket,
//! enterprise search 12), so a client that has been quiet may send that many at once and
//! must then keep to the rate. An upload or a search also costs a general call: a request
//! is admitted only when every bucket it draws on has a token, and a refused request takes
//! none (it is answered before any work is done, so it is not counted as a call).
//!
//! Who pays: the user the access token belongs to, or the user named by `As-User` when the
//! caller may act as them (Box counts the limits per user). Requests without a valid access
//! token are not counted: the OAuth token and revoke endpoints (authenticated by the app,
//! not by a user's token; Box documents no per-user limit for them, and a client must
//! always be able to refresh), the download host's content fetches (`/dl/…`, the second
//! leg of `GET /files/{id}/content`, which is itself counted: Box's limits are on API calls
//! and the download host is not the API), and the realtime long-poll host.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::Method;
use serde::{Deserialize, Serialize};

use super::store::Id;

/// One limit: `calls` per `window_ms` sustained, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub calls: u32,
    pub window_ms: u64,
    pub burst: u32,
}

impl Rate {
    pub const fn new(calls: u32, window_ms: u64, burst: u32) -> Rate {
        Rate {
            calls,
            window_ms,
            burst,
        }
    }

    fn check(&self, name: &str) -> Result<(), String> {
        if self.calls == 0 || self.window_ms == 0 || self.burst == 0 {
            return Err(format!(
                "rate_limits.{name}: calls, window_ms and burst must all be at least 1"
            ));
        }
        Ok(())
    }

    /// Tokens gained per millisecond.
    fn per_ms(&self) -> f64 {
        self.calls as f64 / self.window_ms as f64
    }
}

/// The limits enforced; `RateLimits::BOX` (the default) is what Box documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Every API call, per user.
    pub general: Rate,
    /// `POST /files/content`, `POST /files/{id}/content` and upload-session creation
    /// (`POST /files/upload_sessions`, `POST /files/{id}/upload_sessions`), per user.
    pub uploads: Rate,
    /// `GET /search`, per user, second by second.
    pub search_per_second: Rate,
    /// `GET /search`, per user, minute by minute.
    pub search_per_minute: Rate,
    /// `GET /search`, per enterprise (shared by all its users).
    pub enterprise_search: Rate,
}

impl RateLimits {
    pub const BOX: RateLimits = RateLimits {
        general: Rate::new(1000, 60_000, 50),
        uploads: Rate::new(240, 60_000, 20),
        search_per_second: Rate::new(6, 1_000, 6),
        search_per_minute: Rate::new(60, 60_000, 10),
        enterprise_search: Rate::new(12, 1_000, 12),
    };

    /// A readable complaint about a limit that could never admit anything.
    pub fn validate(&self) -> Result<(), String> {
        self.general.check("general")?;
        self.uploads.check("uploads")?;
        self.search_per_second.check("search_per_second")?;
        self.search_per_minute.check("search_per_minute")?;
        self.enterprise_search.check("enterprise_search")
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::BOX
    }
}

/// The value of `--rate-limits`: `box` enforces Box's documented limits, `none` (the
/// default) none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimitPreset {
    #[default]
    None,
    Box,
}

impl RateLimitPreset {
    pub fn limits(self) -> Option<RateLimits> {
        match self {
            RateLimitPreset::None => None,
            RateLimitPreset::Box => Some(RateLimits::BOX),
        }
    }
}

impl FromStr for RateLimitPreset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "box" => Ok(RateLimitPreset::Box),
            "none" | "off" => Ok(RateLimitPreset::None),
            other => Err(format!(
                "'{other}' is not a rate-limit preset: expected 'box' (Box's documented limits) or 'none'"
            )),
        }
    }
}

/// What a request costs besides a general call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    General,
    Upload,
    Search,
}

impl Kind {
    /// The kind of a request to the route `template` (axum's matched path).
    pub fn of(method: &Method, template: Option<&str>) -> Kind {
        match (method, template) {
            (
                &Method::POST,
                Some(
                    "/api/2.0/files/content"
                    | "/api/2.0/files/{file_id}/content"
                    | "/api/2.0/files/upload_sessions"
                    | "/api/2.0/files/{file_id}/upload_sessions",
                ),
            ) => Kind::Upload,
            (&Method::GET, Some("/2.0/search")) => Kind::Search,
            _ => Kind::General,
        }
    }
}

/// Whether a request to `path` is an API call the limits count (see the module comment).
pub fn counted(path: &str) -> bool {
    !(path.starts_with("/_emulator")
        || path.starts_with("/oauth2/")
        || path.starts_with("/api/oauth2/")
        || path.starts_with("/dl/")
        || path == "/subscribe")
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    General(Id),
    Uploads(Id),
    SearchPerSecond(Id),
    SearchPerMinute(Id),
    EnterpriseSearch(String),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The bucket as it is at `now`, refilled since it was last looked at.
    fn refilled(self, rate: &Rate, now: Instant) -> Bucket {
        let ms = now.saturating_duration_since(self.at).as_secs_f64() * 1000.0;
        Bucket {
            tokens: (self.tokens + ms * rate.per_ms()).min(rate.burst as f64),
            at: now,
        }
    }
}

#[derive(Default)]
struct State {
    /// The limits the buckets were filled for: a change starts every bucket afresh.
    limits: Option<RateLimits>,
    buckets: HashMap<Key, Bucket>,
}

/// The buckets of every user and enterprise.
#[derive(Default)]
pub struct Limiter {
    state: Mutex<State>,
}

impl Limiter {
    /// Admits one request of `kind` by `user` of `enterprise` at `now`, or says how long
    /// until it would be admitted.
    pub fn admit(
        &self,
        limits: &RateLimits,
        user: Id,
        enterprise: &str,
        kind: Kind,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut draws = vec![(Key::General(user), limits.general)];
        match kind {
            Kind::General => {}
            Kind::Upload => draws.push((Key::Uploads(user), limits.uploads)),
            Kind::Search => {
                draws.push((Key::SearchPerSecond(user), limits.search_per_second));
                draws.push((Key::SearchPerMinute(user), limits.search_per_minute));
                draws.push((
                    Key::EnterpriseSearch(enterprise.to_string()),
                    limits.enterprise_search,
                ));
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.limits.as_ref() != Some(limits) {
            state.limits = Some(*limits);
            state.buckets.clear();
        }
        let mut wait = Duration::ZERO;
        let mut refilled = Vec::with_capacity(draws.len());
        for (key, rate) in &draws {
            let bucket = state
                .buckets
                .get(key)
                .copied()
                .unwrap_or(Bucket {
                    tokens: rate.burst as f64,
                    at: now,
                })
                .refilled(rate, now);
            if bucket.tokens < 1.0 {
                let ms = (1.0 - bucket.tokens) / rate.per_ms();
                wait = wait.max(Duration::from_secs_f64(ms / 1000.0));
            }
            refilled.push((key.clone(), bucket));
        }
        let admitted = wait.is_zero();
        for (key, mut bucket) in refilled {
            if admitted {
                bucket.tokens -= 1.0;
            }
            state.buckets.insert(key, bucket);
        }
        if admitted {
            Ok(())
        } else {
            Err(wait)
        }
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> RateLimits {
        RateLimits {
            general: Rate::new(1, 1_000, 3),
            uploads: Rate::new(1, 1_000, 2),
            search_per_second: Rate::new(2, 1_000, 2),
            search_per_minute: Rate::new(1, 10_000, 3),
            enterprise_search: Rate::new(3, 1_000, 3),
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_keeps_to_its_rate() {
        let l = Limiter::default();
        let limits = small();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.admit(&limits, 1, "e", Kind::General, t0).is_ok());
        }
        let wait = l.admit(&limits, 1, "e", Kind::General, t0).unwrap_err();
        assert!(wait > Duration::from_millis(990) && wait <= Duration::from_secs(1));
        assert_eq!(retry_after_secs(wait), 1);
        // Refused calls take nothing: after the wait, one is admitted, the next is not.
        let t1 = t0 + Duration::from_millis(1001);
        assert!(l.admit(&limits, 1, "e", Kind::General, t1).is_ok());
        assert!(l.admit(&limits, 1, "e", Kind::General, t1).is_err());
        // Another user has a bucket of their own.
        assert!(l.admit(&limits, 2, "e", Kind::General, t1).is_ok());
    }

    #[test]
    fn a_search_draws_on_every_search_bucket_and_the_general_one() {
        let l = Limiter::default();
        let mut limits = small();
        limits.general = Rate::new(100, 1_000, 100);
        let t0 = Instant::now();
        assert!(l.admit(&limits, 1, "e", Kind::Search, t0).is_ok());
        assert!(l.admit(&limits, 1, "e", Kind::Search, t0).is_ok());
        // Per second: 2.
        let wait = l.admit(&limits, 1, "e", Kind::Search, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        // A second later the per-minute bucket (3, then one per 10 s) is the one that
        // refuses, with a longer wait.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.admit(&limits, 1, "e", Kind::Search, t1).is_ok());
        let t2 = t1 + Duration::from_secs(1);
        let wait = l.admit(&limits, 1, "e", Kind::Search, t2).unwrap_err();
        assert!(
            wait > Duration::from_millis(7_900) && wait < Duration::from_millis(8_100),
            "{wait:?}"
        );
        assert!((8..=9).contains(&retry_after_secs(wait)), "{wait:?}");
        // Enterprise: users 2 and 3 have fresh buckets of their own, but share the
        // enterprise's 3 a second, of which user 1 took none at t2.
        assert!(l.admit(&limits, 2, "e", Kind::Search, t2).is_ok());
        assert!(l.admit(&limits, 2, "e", Kind::Search, t2).is_ok());
        assert!(l.admit(&limits, 3, "e", Kind::Search, t2).is_ok());
        assert!(l.admit(&limits, 3, "e", Kind::Search, t2).is_err());
        assert!(l.admit(&limits, 3, "other", Kind::Search, t2).is_ok());
        // General calls are not held up by the search buckets.
        assert!(l.admit(&limits, 1, "e", Kind::General, t2).is_ok());
    }

    #[test]
    fn changed_limits_start_afresh() {
        let l = Limiter::default();
        let mut limits = small();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.admit(&limits, 1, "e", Kind::General, t0).unwrap();
        }
        assert!(l.admit(&limits, 1, "e", Kind::General, t0).is_err());
        limits.general.burst = 5;
        assert!(l.admit(&limits, 1, "e", Kind::General, t0).is_ok());
    }

    #[test]
    fn routes_are_classified_as_box_counts_them() {
        let k = |m: Method, t: &str| Kind::of(&m, Some(t));
        assert_eq!(k(Method::POST, "/api/2.0/files/content"), Kind::Upload);
        assert_eq!(
            k(Method::POST, "/api/2.0/files/{file_id}/content"),
            Kind::Upload
        );
        assert_eq!(
            k(Method::POST, "/api/2.0/files/upload_sessions"),
            Kind::Upload
        );
        assert_eq!(
            k(Method::POST, "/api/2.0/files/{file_id}/upload_sessions"),
            Kind::Upload
        );
        assert_eq!(
            k(
                Method::PUT,
                "/api/2.0/files/upload_sessions/{upload_session_id}"
            ),
            Kind::General
        );
        assert_eq!(k(Method::GET, "/2.0/search"), Kind::Search);
        assert_eq!(k(Method::GET, "/2.0/folders/{folder_id}"), Kind::General);
        assert!(counted("/2.0/users/me"));
        assert!(!counted("/oauth2/token"));
        assert!(!counted("/dl/abc"));
        assert!(!counted("/subscribe"));
        assert!(!counted("/_emulator/knobs"));
    }

    #[test]
    fn presets_parse() {
        assert_eq!("box".parse(), Ok(RateLimitPreset::Box));
        assert_eq!("none".parse(), Ok(RateLimitPreset::None));
        assert!("fast".parse::<RateLimitPreset>().is_err());
        assert_eq!(RateLimitPreset::Box.limits(), Some(RateLimits::BOX));
        assert!(RateLimits::BOX.validate().is_ok());
        let mut bad = RateLimits::BOX;
        bad.uploads.burst = 0;
        assert!(bad.validate().unwrap_err().contains("uploads"));
    }
}
