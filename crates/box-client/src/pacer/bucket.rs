//! One token bucket of the local pacer: tokens refilled at an adaptive rate up to a burst,
//! a pause after a 429 that holds every request of its kind, and the queue of waiters in
//! which foreground requests go before background ones. Pure bookkeeping on
//! `tokio::time::Instant`s (no waiting here), so tests drive it with a paused clock.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::Priority;

/// Background requests leave this share of the burst to foreground ones.
const BACKGROUND_RESERVE: f64 = 0.25;
/// A 429 or 503 halves the rate, down to this share of the configured one.
const FLOOR_SHARE: f64 = 0.1;
const DECREASE_FACTOR: f64 = 0.5;
/// Each success gives back this share of the configured rate.
const RECOVERY_SHARE: f64 = 0.02;
/// Several 429s at once are one signal: the rate drops at most once per this interval.
const DECREASE_INTERVAL: Duration = Duration::from_secs(1);
/// A 429 without `Retry-After` pauses the bucket for this, doubling while they follow on.
const FALLBACK_PAUSE: Duration = Duration::from_secs(1);
const MAX_FALLBACK_PAUSE: Duration = Duration::from_secs(60);
const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct Bucket {
    /// Configured calls per second; `None` is unlimited (a 429 still pauses it).
    limit: Option<f64>,
    /// The adaptive rate, between the floor and `limit`.
    effective: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
    throttle_streak: u32,
    last_decrease: Option<Instant>,
    foreground: VecDeque<u64>,
    background: VecDeque<u64>,
    next_ticket: u64,
    granted: VecDeque<Instant>,
    throttled: u64,
}

impl Bucket {
    pub(crate) fn new(limit_per_sec: Option<f64>, burst: u32, now: Instant) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            limit: limit_per_sec,
            effective: limit_per_sec.unwrap_or(0.0),
            burst,
            tokens: burst,
            refilled: now,
            paused_until: None,
            throttle_streak: 0,
            last_decrease: None,
            foreground: VecDeque::new(),
            background: VecDeque::new(),
            next_ticket: 0,
            granted: VecDeque::new(),
            throttled: 0,
        }
    }

    /// A place in the queue for one request.
    pub(crate) fn enqueue(&mut self, priority: Priority) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        match priority {
            Priority::Foreground => self.foreground.push_back(ticket),
            Priority::Background => self.background.push_back(ticket),
        }
        ticket
    }

    /// The request holding `ticket` gave up (cancelled) or was served.
    pub(crate) fn dequeue(&mut self, ticket: u64) {
        self.foreground.retain(|t| *t != ticket);
        self.background.retain(|t| *t != ticket);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.effective).min(self.burst);
    }

    /// Takes a token for `ticket` if its turn has come, else says when to look again.
    pub(crate) fn try_take(
        &mut self,
        ticket: u64,
        priority: Priority,
        now: Instant,
    ) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if until > now {
                return Err(until);
            }
            self.paused_until = None;
        }
        // Ahead of this request: the waiters of its own class before it, and for a
        // background request every waiting foreground one.
        let (ahead, reserve) = match priority {
            Priority::Foreground => (position(&self.foreground, ticket), 0.0),
            Priority::Background => (
                self.foreground.len() + position(&self.background, ticket),
                (self.burst * BACKGROUND_RESERVE).floor(),
            ),
        };
        let Some(rate) = self.limit.map(|_| self.effective) else {
            // No limit: no tokens to share out, so no request waits for another (a queue
            // here would only make background work wait while foreground work streams by).
            self.grant(ticket, now);
            return Ok(());
        };
        self.refill(now);
        let needed = ahead as f64 + 1.0 + reserve;
        if ahead == 0 && self.tokens >= needed {
            self.tokens -= 1.0;
            self.grant(ticket, now);
            return Ok(());
        }
        let wait = ((needed - self.tokens) / rate).max(0.001);
        Err(now + Duration::from_secs_f64(wait))
    }

    fn grant(&mut self, ticket: u64, now: Instant) {
        self.dequeue(ticket);
        self.granted.push_back(now);
        self.prune(now);
    }

    fn prune(&mut self, now: Instant) {
        while let Some(t) = self.granted.front() {
            if now.saturating_duration_since(*t) < MINUTE {
                break;
            }
            self.granted.pop_front();
        }
    }

    /// A 429: every request of this kind waits `retry_after` (or a backoff), the tokens
    /// are gone, and the rate drops. Returns the pause.
    pub(crate) fn throttled(&mut self, retry_after: Option<Duration>, now: Instant) -> Duration {
        self.throttled += 1;
        let pause = retry_after.unwrap_or_else(|| {
            FALLBACK_PAUSE
                .saturating_mul(1 << self.throttle_streak.min(6))
                .min(MAX_FALLBACK_PAUSE)
        });
        self.throttle_streak += 1;
        let until = now + pause;
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
        self.decrease(now);
        pause
    }

    /// A 503: Box is overloaded; the rate drops without a pause.
    pub(crate) fn unavailable(&mut self, now: Instant) {
        self.decrease(now);
    }

    fn decrease(&mut self, now: Instant) {
        let Some(limit) = self.limit else { return };
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < DECREASE_INTERVAL)
        {
            return;
        }
        self.refill(now);
        self.last_decrease = Some(now);
        self.effective = (self.effective * DECREASE_FACTOR).max(limit * FLOOR_SHARE);
    }

    /// A request was answered without complaint: the rate climbs back.
    pub(crate) fn succeeded(&mut self, now: Instant) {
        self.throttle_streak = 0;
        if let Some(limit) = self.limit {
            self.refill(now);
            self.effective = (self.effective + limit * RECOVERY_SHARE).min(limit);
        }
    }

    pub(crate) fn effective_per_sec(&self) -> Option<f64> {
        self.limit.map(|_| self.effective)
    }

    pub(crate) fn limit_per_sec(&self) -> Option<f64> {
        self.limit
    }

    pub(crate) fn background_reserve(&self) -> u32 {
        (self.burst * BACKGROUND_RESERVE).floor() as u32
    }

    pub(crate) fn calls_last_minute(&mut self, now: Instant) -> u64 {
        self.prune(now);
        self.granted.len() as u64
    }

    pub(crate) fn throttled_count(&self) -> u64 {
        self.throttled
    }

    /// Whether the budget is tight: the bucket is paused after a 429, requests are queued
    /// for it, or less than half of its burst is left. Work nobody waits for should then not
    /// be started at all. An unlimited bucket is tight only while paused.
    pub(crate) fn tight(&mut self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|until| until > now) {
            return true;
        }
        if self.limit.is_none() {
            return false;
        }
        self.refill(now);
        !self.foreground.is_empty() || !self.background.is_empty() || self.tokens < self.burst / 2.0
    }
}

fn position(queue: &VecDeque<u64>, ticket: u64) -> usize {
    queue.iter().position(|t| *t == ticket).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(b: &mut Bucket, p: Priority, now: Instant) -> Result<(), Instant> {
        let t = b.enqueue(p);
        let r = b.try_take(t, p, now);
        if r.is_err() {
            b.dequeue(t);
        }
        r
    }

    #[test]
    fn the_budget_is_tight_when_half_the_burst_is_gone_or_paused() {
        let now = Instant::now();
        let mut b = Bucket::new(Some(1.0), 4, now);
        assert!(!b.tight(now));
        take(&mut b, Priority::Foreground, now).unwrap();
        assert!(!b.tight(now));
        take(&mut b, Priority::Foreground, now).unwrap();
        take(&mut b, Priority::Foreground, now).unwrap();
        assert!(b.tight(now));
        assert!(!b.tight(now + Duration::from_secs(2)));
        let mut unlimited = Bucket::new(None, 4, now);
        for _ in 0..10 {
            take(&mut unlimited, Priority::Foreground, now).unwrap();
        }
        assert!(!unlimited.tight(now));
        unlimited.throttled(Some(Duration::from_secs(3)), now);
        assert!(unlimited.tight(now + Duration::from_secs(1)));
        assert!(!unlimited.tight(now + Duration::from_secs(4)));
    }

    #[test]
    fn burst_then_the_rate() {
        let now = Instant::now();
        let mut b = Bucket::new(Some(2.0), 3, now);
        for _ in 0..3 {
            take(&mut b, Priority::Foreground, now).unwrap();
        }
        let again = take(&mut b, Priority::Foreground, now).unwrap_err();
        assert_eq!(again - now, Duration::from_millis(500));
        take(&mut b, Priority::Foreground, again).unwrap();
        assert_eq!(b.calls_last_minute(again), 4);
        assert_eq!(
            b.calls_last_minute(now + MINUTE + Duration::from_secs(1)),
            0
        );
    }

    #[test]
    fn a_429_pauses_the_bucket_and_halves_the_rate_then_successes_restore_it() {
        let now = Instant::now();
        let mut b = Bucket::new(Some(10.0), 5, now);
        let pause = b.throttled(Some(Duration::from_secs(2)), now);
        assert_eq!(pause, Duration::from_secs(2));
        assert_eq!(
            take(&mut b, Priority::Foreground, now).unwrap_err(),
            now + pause
        );
        assert_eq!(b.effective_per_sec(), Some(5.0));
        // A storm of 429s at once is one signal.
        b.throttled(Some(Duration::from_secs(2)), now);
        assert_eq!(b.effective_per_sec(), Some(5.0));
        // Later ones keep halving, down to the floor.
        for i in 1..10 {
            b.throttled(None, now + Duration::from_secs(2 * i));
        }
        assert_eq!(b.effective_per_sec(), Some(1.0));
        // After the pause the tokens come back at the lowered rate.
        let later = now + Duration::from_secs(200);
        take(&mut b, Priority::Foreground, later).unwrap();
        for _ in 0..50 {
            b.succeeded(later);
        }
        assert_eq!(b.effective_per_sec(), Some(10.0));
        b.unavailable(later);
        assert_eq!(b.effective_per_sec(), Some(5.0));
        assert_eq!(b.throttled_count(), 11);
    }

    #[test]
    fn a_429_without_retry_after_backs_off_longer_each_time() {
        let now = Instant::now();
        let mut b = Bucket::new(None, 1, now);
        assert_eq!(b.throttled(None, now), Duration::from_secs(1));
        assert_eq!(b.throttled(None, now), Duration::from_secs(2));
        assert_eq!(b.throttled(None, now), Duration::from_secs(4));
        b.succeeded(now);
        assert_eq!(b.throttled(None, now), Duration::from_secs(1));
        // Unlimited, yet the pause holds.
        assert!(take(&mut b, Priority::Foreground, now).is_err());
        take(&mut b, Priority::Foreground, now + Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn foreground_goes_first_and_background_keeps_a_reserve() {
        let now = Instant::now();
        let mut b = Bucket::new(Some(1.0), 4, now);
        let bg = b.enqueue(Priority::Background);
        let fg = b.enqueue(Priority::Foreground);
        // The background request came first but must wait for the foreground one.
        assert!(b.try_take(bg, Priority::Background, now).is_err());
        b.try_take(fg, Priority::Foreground, now).unwrap();
        b.try_take(bg, Priority::Background, now).unwrap();
        // 2 tokens left, the reserve is 1: one more background request, then only
        // foreground ones until the bucket refills.
        take(&mut b, Priority::Background, now).unwrap();
        let retry = take(&mut b, Priority::Background, now).unwrap_err();
        assert_eq!(retry - now, Duration::from_secs(1));
        take(&mut b, Priority::Foreground, now).unwrap();
        // With no foreground traffic, background requests still get the whole rate.
        let mut t = now;
        for _ in 0..5 {
            t = take(&mut b, Priority::Background, t).unwrap_err();
            take(&mut b, Priority::Background, t).unwrap();
        }
        assert!(t - now <= Duration::from_secs(7), "{:?}", t - now);
    }
}
