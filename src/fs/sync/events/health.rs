//! The health of the event stream: healthy, reconnecting or failed, with counters and
//! times, from which the filesystem chooses its TTLs (see the module note of [`super`]).

use super::*;

/// Counters of a [`StreamHealth`], for logs and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounters {
    /// Events received from the feed (duplicates dropped by the feed not included).
    pub events: u64,
    /// Failures the feed reported.
    pub errors: u64,
    /// Times the stream went from healthy to unhealthy.
    pub outages: u64,
    /// Times every cache was revalidated.
    pub revalidations: u64,
    /// Invalidations sent to the kernel.
    pub invalidations: u64,
}

#[derive(Debug, Default)]
pub(super) struct HealthTimes {
    last_ok: Option<Instant>,
    last_event: Option<Instant>,
    /// When `healthy` last flipped.
    changed_at: Option<Instant>,
    /// The feed's last failure, and when.
    last_error: Option<(Instant, String)>,
    /// The feed ended (it is started again after a pause) and has not worked since.
    ended: bool,
}

/// Where the event stream stands, as `boxfs status` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// The feed delivers: changes made elsewhere reach the caches within moments.
    Healthy,
    /// Not working yet or any more; the feed retries by itself.
    Reconnecting,
    /// The feed gave up (credentials refused, for instance) and is started again after a
    /// pause.
    Failed,
}

impl StreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Healthy => "healthy",
            StreamState::Reconnecting => "reconnecting",
            StreamState::Failed => "failed",
        }
    }
}

/// Whether the event stream can be trusted right now, shared by the follower (which sets
/// it) and the filesystem (which picks its TTLs by it). Starts unhealthy: the follower marks
/// it healthy once the feed has answered.
#[derive(Debug, Default)]
pub struct StreamHealth {
    healthy: AtomicBool,
    times: Mutex<HealthTimes>,
    events: AtomicU64,
    errors: AtomicU64,
    outages: AtomicU64,
    revalidations: AtomicU64,
    invalidations: AtomicU64,
}

impl StreamHealth {
    pub fn new() -> StreamHealth {
        StreamHealth::default()
    }

    /// True while the feed delivers: changes made elsewhere reach the caches within moments.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// `long` while healthy, `short` while not.
    pub fn ttl(&self, long: Duration, short: Duration) -> Duration {
        if self.is_healthy() {
            long
        } else {
            short
        }
    }

    /// When the feed last exchanged with Box successfully. A quiet account's long-poll is
    /// answered only every few minutes, so this is not a measure of freshness by itself.
    pub fn last_ok(&self) -> Option<Instant> {
        self.times().last_ok
    }

    /// How long ago [`StreamHealth::last_ok`] was.
    pub fn lag(&self) -> Option<Duration> {
        self.last_ok().map(|t| t.elapsed())
    }

    /// When the last event arrived.
    pub fn last_event(&self) -> Option<Instant> {
        self.times().last_event
    }

    /// When the state last changed (healthy to unhealthy or back).
    pub fn changed_at(&self) -> Option<Instant> {
        self.times().changed_at
    }

    /// The feed's last failure (its message) and when it happened.
    pub fn last_error(&self) -> Option<(Instant, String)> {
        self.times().last_error.clone()
    }

    /// Healthy, reconnecting or failed.
    pub fn state(&self) -> StreamState {
        let times = self.times();
        if self.is_healthy() {
            StreamState::Healthy
        } else if times.ended {
            StreamState::Failed
        } else {
            StreamState::Reconnecting
        }
    }

    pub fn counters(&self) -> HealthCounters {
        HealthCounters {
            events: self.events.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            outages: self.outages.load(Ordering::Relaxed),
            revalidations: self.revalidations.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
        }
    }

    /// The feed works. Returns true if the stream was unhealthy before.
    pub fn mark_healthy(&self, last_ok: Option<Instant>) -> bool {
        let mut times = self.times();
        times.last_ok = last_ok.or(times.last_ok);
        times.ended = false;
        let was = self.healthy.swap(true, Ordering::AcqRel);
        if !was {
            times.changed_at = Some(Instant::now());
        }
        !was
    }

    /// The feed failed (or ended). Returns true if the stream was healthy before.
    pub fn mark_unhealthy(&self) -> bool {
        let mut times = self.times();
        let was = self.healthy.swap(false, Ordering::AcqRel);
        if was {
            times.changed_at = Some(Instant::now());
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
        was
    }

    pub(super) fn record_event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.times().last_event = Some(Instant::now());
    }

    pub(super) fn record_error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.times().last_error = Some((Instant::now(), message));
    }

    /// The feed ended; the follower starts it again after a pause.
    pub(super) fn mark_ended(&self) {
        self.mark_unhealthy();
        self.times().ended = true;
    }

    /// Every cache was revalidated (after an outage, or on request).
    pub fn record_revalidation(&self) {
        self.revalidations.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_invalidations(&self, n: usize) {
        self.invalidations.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn times(&self) -> MutexGuard<'_, HealthTimes> {
        self.times.lock().unwrap_or_else(|e| e.into_inner())
    }
}
