//! Counts of the requests a [`super::Client`] sent: every attempt the request layer makes
//! (retries and the resend after a token refresh included, downloads from Box's download
//! servers too), and the answers that were errors, by HTTP status (`network` for a request
//! that got no answer at all). Shared by every clone of a client, so a program sees the
//! totals of everything it sent through one client.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The key of requests that got no HTTP answer (refused, reset, timed out).
pub const NETWORK_ERROR: &str = "network";

/// The live counters (inside a client).
#[derive(Debug, Default)]
pub(crate) struct RequestCounters {
    calls: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl RequestCounters {
    /// One request got an answer with `status`.
    pub(crate) fn answered(&self, status: u16) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if status >= 400 {
            self.error(status.to_string());
        }
    }

    /// One request got no answer.
    pub(crate) fn unanswered(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.error(NETWORK_ERROR.to_string());
    }

    fn error(&self, key: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(key).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        RequestStats {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// What a client sent so far ([`super::Client::request_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Requests sent (each attempt counts).
    pub calls: u64,
    /// Error answers by HTTP status (`"404"`, `"503"` …), and [`NETWORK_ERROR`].
    pub errors: BTreeMap<String, u64>,
}

impl RequestStats {
    /// All error answers together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_and_errors_by_status() {
        let c = RequestCounters::default();
        c.answered(200);
        c.answered(302);
        c.answered(404);
        c.answered(404);
        c.answered(503);
        c.unanswered();
        let s = c.snapshot();
        assert_eq!(s.calls, 6);
        assert_eq!(s.errors.get("404"), Some(&2));
        assert_eq!(s.errors.get("503"), Some(&1));
        assert_eq!(s.errors.get(NETWORK_ERROR), Some(&1));
        assert_eq!(s.error_count(), 4);
    }
}
