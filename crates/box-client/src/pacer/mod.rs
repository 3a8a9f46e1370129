//! The pacer: keeps a client under Box's per-user rate limits instead of finding them by
//! 429s. Every authenticated request waits here for a token before it is sent: one from
//! the general bucket (about 1,000 calls a minute), and uploads (240 a minute) and searches
//! (60 a minute, 6 a second) one from their own bucket too. A 429 pauses the whole bucket
//! for its `Retry-After`, and the rate adapts (halved on 429 and 503, climbing back while
//! requests succeed). Foreground requests (a process is waiting) take tokens before
//! background ones, which also leave part of the burst unused. With Redis, the buckets are
//! shared by every process and machine of the account (`shared.rs`).
//!
//! One pacer serves a [`crate::Client`] and all its clones; clients built with the same
//! account key share one pacer per process. Waiting here is never a failure and is not
//! counted against the retry policy. Its figures ([`PacerStats`]) are for `boxfs status`;
//! it logs at most one summary line a minute about 429s.

mod bucket;
mod rate;
mod shared;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use bucket::Bucket;
pub use rate::{Kind, Rate, RateParseError};
use shared::SharedBuckets;

use crate::error::BoxResult;

/// Whether a process is waiting on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Priority {
    /// A process waits on it: a lookup, a listing, a read, an upload at close.
    #[default]
    Foreground,
    /// Nobody waits: prefetch, read-ahead, write-back uploads, event follow-ups.
    Background,
}

/// How fast a client may call Box. The defaults are Box's documented per-user limits.
#[derive(Debug, Clone)]
pub struct PacerConfig {
    pub api_rate: Rate,
    pub upload_rate: Rate,
    pub search_rate: Rate,
    /// Calls that may go at once before the rate applies, per bucket.
    pub api_burst: u32,
    pub upload_burst: u32,
    /// Box allows 6 searches a second: a burst of 5 plus the refill keeps under it.
    pub search_burst: u32,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            api_rate: Rate::per_minute(1000.0),
            upload_rate: Rate::per_minute(240.0),
            search_rate: Rate::per_minute(60.0),
            api_burst: 20,
            upload_burst: 10,
            search_burst: 5,
        }
    }
}

impl PacerConfig {
    /// No limits at all (a server that has none); a 429 still pauses.
    pub fn unlimited() -> PacerConfig {
        PacerConfig {
            api_rate: Rate::Unlimited,
            upload_rate: Rate::Unlimited,
            search_rate: Rate::Unlimited,
            ..PacerConfig::default()
        }
    }

    fn rate_and_burst(&self, kind: Kind) -> (Rate, u32) {
        match kind {
            Kind::General => (self.api_rate, self.api_burst),
            Kind::Upload => (self.upload_rate, self.upload_burst),
            Kind::Search => (self.search_rate, self.search_burst),
        }
    }
}

/// One bucket's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketStats {
    /// Requests let through in the last 60 s.
    pub calls_last_minute: u64,
    /// The configured limit per minute, `None` when unlimited.
    pub limit_per_minute: Option<f64>,
    /// The adaptive limit now (lower than the configured one after 429s and 503s).
    pub effective_per_minute: Option<f64>,
    /// 429 answers to requests of this kind.
    pub throttled: u64,
}

/// What the pacer did so far ([`crate::Client::pacer_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacerStats {
    pub api: BucketStats,
    pub upload: BucketStats,
    pub search: BucketStats,
    /// Time requests spent waiting for the pacer, all together.
    pub waited: Duration,
    /// 429 answers received, all kinds.
    pub throttled: u64,
    /// The Redis server the buckets are shared through, if any and reachable.
    pub shared_through: Option<String>,
}

/// The 429s of the current minute, for the one summary line a minute.
struct Summary {
    logged_at: Option<Instant>,
    throttled: u64,
    waited: Duration,
}

impl Summary {
    /// One more 429 at `now`: the line to log, if a minute went by since the last one.
    fn throttled(&mut self, now: Instant) -> Option<String> {
        self.throttled += 1;
        if self
            .logged_at
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60))
        {
            return None;
        }
        let line = format!(
            "{} request{} answered 429 (rate limit) in the last minute; waited {:.1} s for the pacer",
            self.throttled,
            if self.throttled == 1 { " was" } else { "s were" },
            self.waited.as_secs_f64()
        );
        self.logged_at = Some(now);
        self.throttled = 0;
        self.waited = Duration::ZERO;
        Some(line)
    }
}

/// How long Redis is left alone after it failed before it is tried again.
const SHARED_RETRY: Duration = Duration::from_secs(30);

struct Inner {
    config: PacerConfig,
    buckets: [Mutex<Bucket>; 3],
    shared: Option<SharedBuckets>,
    /// The Redis URL and key the buckets are shared under, for the pacers of other users.
    shared_spec: Option<(String, String)>,
    /// Redis failed: the local buckets alone pace until this time.
    shared_down_until: Mutex<Option<Instant>>,
    shared_warned: AtomicBool,
    waited_micros: AtomicU64,
    summary: Mutex<Summary>,
}

/// A pacer; cheap to clone, clones share the buckets.
#[derive(Clone)]
pub struct Pacer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("config", &self.inner.config)
            .field("shared", &self.inner.shared.as_ref().map(|s| s.shown()))
            .finish()
    }
}

fn index(kind: Kind) -> usize {
    match kind {
        Kind::General => 0,
        Kind::Upload => 1,
        Kind::Search => 2,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a waiter from its bucket's queue if its request is dropped while it waits.
struct Waiting<'a> {
    bucket: &'a Mutex<Bucket>,
    ticket: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(self.bucket).dequeue(self.ticket);
    }
}

impl Pacer {
    /// A pacer of its own (local buckets).
    pub fn new(config: PacerConfig) -> Pacer {
        Pacer::build(config, None)
    }

    /// A pacer whose buckets live in Redis at `url` under `key` (the account's key:
    /// every process that paces the account must use the same one). If Redis cannot be
    /// reached, it paces locally and says so once.
    pub fn shared(config: PacerConfig, url: &str, key: &str) -> BoxResult<Pacer> {
        let buckets = SharedBuckets::new(url, key)?;
        Ok(Pacer::build(
            config,
            Some((buckets, (url.to_string(), key.to_string()))),
        ))
    }

    /// A pacer for another user of the same account (Box counts its limits per user, and
    /// requests made As-User count for the user acted as): the same settings, and shared
    /// through the same Redis under a key of that user's.
    pub fn for_user(&self, user_id: &str) -> Pacer {
        let config = self.inner.config.clone();
        match &self.inner.shared_spec {
            Some((url, key)) => {
                Pacer::shared(config.clone(), url, &format!("{key}:user:{user_id}"))
                    .unwrap_or_else(|_| Pacer::new(config))
            }
            None => Pacer::new(config),
        }
    }

    fn build(config: PacerConfig, shared: Option<(SharedBuckets, (String, String))>) -> Pacer {
        let (shared, shared_spec) = shared.unzip();
        let now = Instant::now();
        let bucket = |kind| {
            let (rate, burst) = config.rate_and_burst(kind);
            Mutex::new(Bucket::new(rate.per_sec(), burst, now))
        };
        Pacer {
            inner: Arc::new(Inner {
                buckets: [
                    bucket(Kind::General),
                    bucket(Kind::Upload),
                    bucket(Kind::Search),
                ],
                config,
                shared,
                shared_spec,
                shared_down_until: Mutex::new(None),
                shared_warned: AtomicBool::new(false),
                waited_micros: AtomicU64::new(0),
                summary: Mutex::new(Summary {
                    logged_at: None,
                    throttled: 0,
                    waited: Duration::ZERO,
                }),
            }),
        }
    }

    /// The pacer of `account` in this process, made with `make` if there is none yet. Every
    /// client of one account should pace through one pacer.
    pub fn for_account(account: &str, make: impl FnOnce() -> BoxResult<Pacer>) -> BoxResult<Pacer> {
        static PACERS: OnceLock<Mutex<HashMap<String, Weak<Inner>>>> = OnceLock::new();
        let mut pacers = lock(PACERS.get_or_init(Default::default));
        pacers.retain(|_, p| p.strong_count() > 0);
        if let Some(inner) = pacers.get(account).and_then(Weak::upgrade) {
            return Ok(Pacer { inner });
        }
        let pacer = make()?;
        pacers.insert(account.to_string(), Arc::downgrade(&pacer.inner));
        Ok(pacer)
    }

    /// Whether two handles are the same pacer.
    pub fn same_as(&self, other: &Pacer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Waits until a request of `kind` may be sent; returns how long that took.
    pub async fn acquire(&self, kind: Kind, priority: Priority) -> Duration {
        let started = Instant::now();
        if kind != Kind::General {
            self.acquire_bucket(kind, priority).await;
        }
        self.acquire_bucket(Kind::General, priority).await;
        let waited = started.elapsed();
        self.inner
            .waited_micros
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        if !waited.is_zero() {
            lock(&self.inner.summary).waited += waited;
        }
        waited
    }

    async fn acquire_bucket(&self, kind: Kind, priority: Priority) {
        let bucket = &self.inner.buckets[index(kind)];
        let ticket = lock(bucket).enqueue(priority);
        let _waiting = Waiting { bucket, ticket };
        loop {
            let next = lock(bucket).try_take(ticket, priority, Instant::now());
            match next {
                Ok(()) => break,
                Err(at) => tokio::time::sleep_until(at).await,
            }
        }
        self.acquire_shared(kind, priority).await;
    }

    /// The shared bucket's token, after the local one (which orders local waiters).
    async fn acquire_shared(&self, kind: Kind, priority: Priority) {
        let Some(shared) = &self.inner.shared else {
            return;
        };
        let (rate, burst) = self.inner.config.rate_and_burst(kind);
        let Some(limit) = rate.per_sec() else { return };
        loop {
            if self.shared_down() {
                return;
            }
            let (per_sec, reserve) = {
                let b = lock(&self.inner.buckets[index(kind)]);
                let reserve = match priority {
                    Priority::Foreground => 0,
                    Priority::Background => b.background_reserve(),
                };
                (b.effective_per_sec().unwrap_or(limit), reserve)
            };
            match shared.take(kind, per_sec, burst, reserve).await {
                Ok(None) => return,
                Ok(Some(wait)) => tokio::time::sleep(wait).await,
                Err(e) => {
                    self.shared_failed(&e.to_string());
                    return;
                }
            }
        }
    }

    fn shared_down(&self) -> bool {
        let mut down = lock(&self.inner.shared_down_until);
        match *down {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }

    fn shared_failed(&self, error: &str) {
        *lock(&self.inner.shared_down_until) = Some(Instant::now() + SHARED_RETRY);
        if !self.inner.shared_warned.swap(true, Ordering::Relaxed) {
            log::warn!(
                "cannot pace through Redis ({error}); pacing this process alone, so together \
                 with other processes it may exceed Box's limits"
            );
        } else {
            log::debug!("pacing through Redis failed again: {error}");
        }
    }

    /// A request of `kind` was answered 429: the bucket pauses for `retry_after` (or a
    /// backoff), in every process that shares it.
    pub async fn throttled(&self, kind: Kind, retry_after: Option<Duration>) {
        let pause = lock(&self.inner.buckets[index(kind)]).throttled(retry_after, Instant::now());
        self.note_throttled();
        if let Some(shared) = &self.inner.shared {
            if !self.shared_down() {
                if let Err(e) = shared.pause(kind, pause).await {
                    self.shared_failed(&e.to_string());
                }
            }
        }
    }

    /// A request of `kind` was answered 503: the rate drops.
    pub fn unavailable(&self, kind: Kind) {
        lock(&self.inner.buckets[index(kind)]).unavailable(Instant::now());
    }

    /// A request of `kind` succeeded: the rate recovers a little.
    pub fn succeeded(&self, kind: Kind) {
        let now = Instant::now();
        if kind != Kind::General {
            lock(&self.inner.buckets[index(kind)]).succeeded(now);
        }
        lock(&self.inner.buckets[index(Kind::General)]).succeeded(now);
    }

    /// Counts a 429 for the summary: one line a minute at most, never one per request.
    fn note_throttled(&self) {
        let line = lock(&self.inner.summary).throttled(Instant::now());
        if let Some(line) = line {
            log::warn!("{line}");
        }
    }

    /// Whether the general budget is tight (paused after a 429, requests waiting, or less
    /// than half the burst left): work that nobody waits for, such as listing folders ahead
    /// of a walk, should not be started now.
    pub fn is_tight(&self) -> bool {
        lock(&self.inner.buckets[index(Kind::General)]).tight(Instant::now())
    }

    pub fn config(&self) -> &PacerConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> PacerStats {
        let now = Instant::now();
        let bucket = |kind| {
            let mut b = lock(&self.inner.buckets[index(kind)]);
            BucketStats {
                calls_last_minute: b.calls_last_minute(now),
                limit_per_minute: b.limit_per_sec().map(|r| r * 60.0),
                effective_per_minute: b.effective_per_sec().map(|r| r * 60.0),
                throttled: b.throttled_count(),
            }
        };
        let (api, upload, search) = (
            bucket(Kind::General),
            bucket(Kind::Upload),
            bucket(Kind::Search),
        );
        let throttled = api.throttled + upload.throttled + search.throttled;
        PacerStats {
            api,
            upload,
            search,
            waited: Duration::from_micros(self.inner.waited_micros.load(Ordering::Relaxed)),
            throttled,
            shared_through: self
                .inner
                .shared
                .as_ref()
                .filter(|_| !self.shared_down())
                .map(|s| s.shown().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_sec: f64, burst: u32) -> PacerConfig {
        PacerConfig {
            api_rate: Rate::per_second(per_sec),
            api_burst: burst,
            ..PacerConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_beyond_the_rate_just_waits() {
        let pacer = Pacer::new(config(10.0, 5));
        let started = Instant::now();
        let tasks: Vec<_> = (0..25)
            .map(|_| {
                let p = pacer.clone();
                tokio::spawn(async move { p.acquire(Kind::General, Priority::Foreground).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let took = started.elapsed();
        assert!(
            (Duration::from_millis(1990)..Duration::from_millis(2100)).contains(&took),
            "{took:?}"
        );
        let stats = pacer.stats();
        assert_eq!(stats.api.calls_last_minute, 25);
        assert!(stats.waited > Duration::from_secs(10), "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_request_of_its_kind_only() {
        let pacer = Pacer::new(config(100.0, 10));
        pacer
            .throttled(Kind::Upload, Some(Duration::from_secs(3)))
            .await;
        let t = Instant::now();
        pacer.acquire(Kind::General, Priority::Foreground).await;
        assert!(t.elapsed() < Duration::from_millis(10));
        pacer.acquire(Kind::Upload, Priority::Foreground).await;
        assert!(t.elapsed() >= Duration::from_secs(3));
        assert_eq!(pacer.stats().upload.throttled, 1);
        assert_eq!(pacer.stats().throttled, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_leaves_the_queue() {
        let pacer = Pacer::new(config(1.0, 1));
        pacer.acquire(Kind::General, Priority::Foreground).await;
        let waiting = tokio::time::timeout(
            Duration::from_millis(100),
            pacer.acquire(Kind::General, Priority::Foreground),
        )
        .await;
        assert!(waiting.is_err());
        // The cancelled request holds no place: a background one is not kept behind it.
        let t = Instant::now();
        pacer.acquire(Kind::General, Priority::Background).await;
        assert!(t.elapsed() <= Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[test]
    fn rate_limit_answers_are_summed_up_in_one_line_a_minute() {
        let now = Instant::now();
        let mut s = Summary {
            logged_at: None,
            throttled: 0,
            waited: Duration::ZERO,
        };
        let first = s.throttled(now).unwrap();
        assert!(first.starts_with("1 request was answered 429"), "{first}");
        for i in 1..30 {
            assert_eq!(s.throttled(now + Duration::from_secs(i)), None);
        }
        s.waited = Duration::from_millis(12_500);
        let next = s.throttled(now + Duration::from_secs(61)).unwrap();
        assert!(
            next.starts_with("30 requests were answered 429")
                && next.ends_with("waited 12.5 s for the pacer"),
            "{next}"
        );
    }

    #[test]
    fn clients_of_one_account_share_one_pacer() {
        let a = Pacer::for_account("acct-1", || Ok(Pacer::new(PacerConfig::default()))).unwrap();
        let b = Pacer::for_account("acct-1", || Ok(Pacer::new(PacerConfig::unlimited()))).unwrap();
        let c = Pacer::for_account("acct-2", || Ok(Pacer::new(PacerConfig::default()))).unwrap();
        assert!(a.same_as(&b));
        assert!(!a.same_as(&c));
    }
}
