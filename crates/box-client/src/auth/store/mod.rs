//! Where OAuth tokens live between refreshes, and how several holders share them.
//!
//! Box refresh tokens work once: a refresh returns a new access + refresh pair and kills the
//! old refresh token. Two holders of one refresh token (two processes, two machines) would
//! log each other out, so every holder goes through a [`TokenStore`]: under the store's lock
//! it re-reads the stored pair, uses it if another holder already rotated it, and otherwise
//! refreshes and saves the new pair before using it. This module owns the pair, the trait and
//! the lock handle; `memory`, `file` and `redis` are the stores.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{BoxError, BoxResult};
use crate::secret::Secret;

pub mod file;
pub mod memory;
pub mod redis;

pub use file::FileTokenStore;
pub use memory::MemoryTokenStore;
pub use redis::RedisTokenStore;

/// The longest lifetime believed of an access token. Box's live about an hour; a token
/// endpoint that says 10^18 seconds is wrong, and such a value would overflow `Instant` and
/// chrono arithmetic (a panic, in the refresh path after Box already rotated the pair).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// The lifetime a token endpoint's `expires_in` (seconds, as a JSON number or string) gives,
/// clamped to [`MAX_TOKEN_LIFETIME`]. A negative, fractional-NaN or unreadable value says
/// nothing usable: `None`, the lifetime is unknown and only a 401 tells.
pub fn token_lifetime(expires_in: &serde_json::Value) -> Option<Duration> {
    let secs = match expires_in {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_TOKEN_LIFETIME.as_secs_f64()),
    ))
}

/// How long a holder waits for another holder's refresh before giving up.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(75);

/// An access token with the refresh token that replaces it, as a store keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: Secret,
    /// Absent for grants without one (JWT, client credentials, bare tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// When the access token stops working (unknown: only a 401 tells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When Box issued it; with `expires_at` it gives the token's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obtained_at: Option<DateTime<Utc>>,
}

impl TokenPair {
    /// A pair issued now that lives `expires_in` (Box's `expires_in`).
    pub fn new(
        access_token: impl Into<Secret>,
        refresh_token: Option<Secret>,
        expires_in: Option<Duration>,
    ) -> TokenPair {
        let now = Utc::now();
        TokenPair {
            access_token: access_token.into(),
            refresh_token,
            expires_at: expires_in
                .map(|d| d.min(MAX_TOKEN_LIFETIME))
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .and_then(|d| now.checked_add_signed(d)),
            obtained_at: Some(now),
        }
    }

    /// Whether the access token should be replaced now: less than `margin` left, where the
    /// margin shrinks to half the token's lifetime for short-lived tokens (so a fresh token
    /// is never "about to expire" the moment it arrives).
    pub fn needs_refresh(&self, margin: Duration) -> bool {
        let Some(expires_at) = self.expires_at else {
            return false;
        };
        let mut margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        if let Some(obtained) = self.obtained_at {
            let half_life = expires_at.signed_duration_since(obtained) / 2;
            if half_life < margin {
                margin = half_life.max(chrono::Duration::zero());
            }
        }
        Utc::now()
            .checked_add_signed(margin)
            .is_none_or(|t| t >= expires_at)
    }

    /// Whether the access token's lifetime is over.
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|t| Utc::now() >= t)
    }

    pub(crate) fn to_json(&self) -> BoxResult<Vec<u8>> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| BoxError::Store(format!("cannot encode the token pair: {e}")))
    }

    pub(crate) fn from_json(bytes: &[u8], origin: &str) -> BoxResult<TokenPair> {
        // serde's message may quote the offending input, which may be a token: keep only
        // the position.
        serde_json::from_slice(bytes).map_err(|e| {
            BoxError::Store(format!(
                "{origin} does not hold a token pair (JSON error at line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }
}

/// A place a token pair is kept and shared, with a lock that serializes refreshes across
/// every holder (threads, processes, machines — as far as the store reaches).
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored pair, or `None` when nothing was stored yet (or it was cleared).
    async fn load(&self) -> BoxResult<Option<TokenPair>>;

    /// Replaces the stored pair durably: when this returns, a crash keeps the new pair.
    async fn save(&self, pair: &TokenPair) -> BoxResult<()>;

    /// Forgets the stored pair (after a revoke).
    async fn clear(&self) -> BoxResult<()>;

    /// Waits for the store's exclusive lock. A refresher holds it from re-reading the pair
    /// until the new pair is saved. The lock ends with [`StoreLock::release`] (or when the
    /// handle is dropped, or — for stores that outlive their holders — when it expires).
    async fn lock(&self) -> BoxResult<StoreLock>;
}

/// What a store does to let its lock go.
#[async_trait]
pub trait LockRelease: Send {
    async fn release(self: Box<Self>) -> BoxResult<()>;
}

/// A held store lock.
pub struct StoreLock {
    inner: Option<Box<dyn LockRelease>>,
}

impl StoreLock {
    pub fn new(inner: impl LockRelease + 'static) -> StoreLock {
        StoreLock {
            inner: Some(Box::new(inner)),
        }
    }

    /// Lets the lock go now and says whether that worked.
    pub async fn release(mut self) -> BoxResult<()> {
        match self.inner.take() {
            Some(inner) => inner.release().await,
            None => Ok(()),
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLock")
            .field("held", &self.inner.is_some())
            .finish()
    }
}

/// Opens a store from a short spec: `file:PATH`, `redis://HOST[:PORT][/DB][?key=KEY]`
/// (also `rediss://`, `redis+unix://`), or `memory:`.
pub fn open(spec: &str) -> BoxResult<Arc<dyn TokenStore>> {
    if let Some(path) = spec.strip_prefix("file:") {
        if path.is_empty() {
            return Err(BoxError::Config("file: token store needs a path".into()));
        }
        return Ok(Arc::new(FileTokenStore::new(path)));
    }
    if spec.starts_with("redis://") || spec.starts_with("rediss://") || spec.starts_with("redis+") {
        return Ok(Arc::new(RedisTokenStore::from_spec(spec)?));
    }
    if spec == "memory:" || spec == "memory" {
        return Ok(Arc::new(MemoryTokenStore::new()));
    }
    Err(BoxError::Config(format!(
        "unknown token store '{}': use file:PATH or redis://HOST:PORT[/DB][?key=KEY]",
        crate::auth::store::redis::redact_url_str(spec)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_read_leniently_and_clamped() {
        use serde_json::json;
        let secs = |v: serde_json::Value| token_lifetime(&v).map(|d| d.as_secs());
        assert_eq!(secs(json!(3600)), Some(3600));
        assert_eq!(secs(json!("3600")), Some(3600));
        assert_eq!(secs(json!(3599.5)), Some(3599));
        let max = MAX_TOKEN_LIFETIME.as_secs();
        assert_eq!(secs(json!(1_000_000_000_000_000_000u64)), Some(max));
        assert_eq!(secs(json!(u64::MAX)), Some(max));
        assert_eq!(secs(json!("1e300")), Some(max));
        assert_eq!(secs(json!(-5)), None);
        assert_eq!(secs(json!("-1")), None);
        assert_eq!(secs(json!("NaN")), None);
        assert_eq!(secs(json!(null)), None);
        assert_eq!(secs(json!("soon")), None);
    }

    #[test]
    fn short_lived_tokens_are_not_stale_on_arrival() {
        let p = TokenPair::new("a", None, Some(Duration::from_secs(10)));
        assert!(!p.needs_refresh(Duration::from_secs(60)));
        let p = TokenPair::new("a", None, Some(Duration::from_secs(3600)));
        assert!(!p.needs_refresh(Duration::from_secs(60)));
        let p = TokenPair::new("a", None, Some(Duration::from_secs(30)));
        assert!(!p.needs_refresh(Duration::from_secs(3600)));
        let mut p = TokenPair::new("a", None, Some(Duration::from_secs(3600)));
        p.obtained_at = Some(Utc::now() - chrono::Duration::seconds(3570));
        p.expires_at = Some(Utc::now() + chrono::Duration::seconds(30));
        assert!(p.needs_refresh(Duration::from_secs(60)));
        assert!(!TokenPair::new("a", None, None).needs_refresh(Duration::from_secs(60)));
        // Absurd lifetimes are clamped to a year, never a panic.
        for huge in [
            Duration::MAX,
            Duration::from_secs(1_000_000_000_000_000_000),
        ] {
            let p = TokenPair::new("a", None, Some(huge));
            let at = p.expires_at.expect("clamped");
            assert!(at <= Utc::now() + chrono::Duration::days(367));
            assert!(!p.needs_refresh(Duration::MAX));
            assert!(!p.is_expired());
        }
    }

    #[test]
    fn pairs_round_trip_and_bad_json_names_no_secret() {
        let p = TokenPair::new(
            "zq-acc",
            Some("zq-ref".into()),
            Some(Duration::from_secs(60)),
        );
        let back = TokenPair::from_json(&p.to_json().unwrap(), "x").unwrap();
        assert_eq!(back, p);
        let err = TokenPair::from_json(b"{\"access_token\": 5, \"hunter2\"", "f").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{p:?}").contains("zq-"));
        assert!(open("nonsense").is_err());
        assert!(open("file:").is_err());
    }
}
