//! Whether Box can be reached at all, for a client that works offline
//! ([`crate::Client::detecting_offline`]).
//!
//! "Unreachable" means no answer could be had: the connection was refused, the host name
//! did not resolve, or the connection or request timed out ([`crate::error::BoxError::Unreachable`]).
//! Any HTTP answer, an error status included, means Box was reached. Once a request found
//! Box unreachable (after its retries), every later request of the client and its clones
//! fails at once with `Unreachable` instead of waiting for timeouts again, until a probe
//! ([`crate::Client::probe`], which alone passes) or any answer reaches Box again. Whoever
//! holds the client runs the probes, with its own backoff.

use std::sync::Mutex;
use std::time::SystemTime;

/// Where a client stands with Box; shared by a client and its clones.
#[derive(Debug, Default)]
pub struct Reachability {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone)]
struct State {
    offline_since: Option<SystemTime>,
    last_reached: Option<SystemTime>,
    last_failure: Option<String>,
    outages: u64,
}

/// A snapshot of [`Reachability`], for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachabilityState {
    /// When Box was found unreachable, while it still is.
    pub offline_since: Option<SystemTime>,
    /// When Box last answered anything.
    pub last_reached: Option<SystemTime>,
    /// Why the last request that found it unreachable failed.
    pub last_failure: Option<String>,
    /// How many times Box was found unreachable since the client was made. A watcher that
    /// looks now and then sees from it that an outage came and went between two looks.
    pub outages: u64,
}

impl Reachability {
    pub fn new() -> Reachability {
        Reachability::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether Box was found unreachable and has not answered since.
    pub fn is_offline(&self) -> bool {
        self.state().offline_since.is_some()
    }

    /// When Box was found unreachable, while it still is.
    pub fn offline_since(&self) -> Option<SystemTime> {
        self.state().offline_since
    }

    pub fn snapshot(&self) -> ReachabilityState {
        let s = self.state().clone();
        ReachabilityState {
            offline_since: s.offline_since,
            last_reached: s.last_reached,
            last_failure: s.last_failure,
            outages: s.outages,
        }
    }

    /// Box answered. Returns true if it was offline until now.
    pub fn reached(&self) -> bool {
        let mut s = self.state();
        s.last_reached = Some(SystemTime::now());
        let was_offline = s.offline_since.take().is_some();
        if was_offline {
            log::info!("Box can be reached again");
        }
        was_offline
    }

    /// A request found Box unreachable (`why`). Returns true if it was online until now.
    pub fn lost(&self, why: &str) -> bool {
        let mut s = self.state();
        s.last_failure = Some(why.to_string());
        if s.offline_since.is_some() {
            return false;
        }
        s.offline_since = Some(SystemTime::now());
        s.outages += 1;
        log::warn!("Box cannot be reached ({why}): working offline");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_from_the_first_loss_until_an_answer() {
        let r = Reachability::new();
        assert!(!r.is_offline());
        assert!(r.lost("connection refused"));
        let since = r.offline_since().expect("offline");
        assert!(!r.lost("again"), "already offline");
        assert_eq!(r.offline_since(), Some(since), "the first loss counts");
        assert_eq!(r.snapshot().last_failure.as_deref(), Some("again"));
        assert!(r.reached());
        assert!(!r.is_offline());
        assert!(r.snapshot().last_reached.is_some());
        assert!(!r.reached(), "already online");
        assert_eq!(r.snapshot().outages, 1);
        r.lost("once more");
        assert_eq!(r.snapshot().outages, 2);
    }
}
