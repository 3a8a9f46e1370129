//! How much checking a validating emulator really did. A check that silently stopped (a
//! route that lost its matched path, a description whose paths no longer match the routes)
//! would leave every test green, so the emulator counts the API calls it routed next to the
//! requests and responses it validated, and [`Validator::coverage_gap`] names a run that made
//! calls but validated none. The test harness fails such a test.
//!
//! Routes the emulator serves that Box's description does not describe are listed in
//! [`NOT_DESCRIBED`] with the reason; any other undescribed route is a violation.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Validator;

/// Emulator routes that Box's OpenAPI description has no operation for: (method, route,
/// why). Calls to them are counted as skipped, not as checked.
pub const NOT_DESCRIBED: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/subscribe",
        "the realtime long-poll URL handed out by OPTIONS /events: Box serves it from its own \
         realtime hosts and does not describe it",
    ),
    (
        "OPTIONS",
        "/2.0/files/{file_id}/content",
        "the preflight check of a new version: Box's reference documents it next to the \
         new-file preflight, but the description has no operation for it",
    ),
    (
        "POST",
        "/api/oauth2/authorize",
        "the consent form that the authorization page posts back (HTML), not an API call",
    ),
];

/// Counts of one validator's work so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Requests to API paths (`/2.0`, `/api/2.0`, `/oauth2`) that reached a route.
    pub api_calls: u64,
    /// Requests checked against an operation of the description.
    pub requests_checked: u64,
    /// Requests to a route listed in [`NOT_DESCRIBED`].
    pub requests_skipped: u64,
    /// JSON responses to routed API calls.
    pub json_responses: u64,
    /// JSON responses checked against an operation of the description.
    pub responses_checked: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    api_calls: AtomicU64,
    requests_checked: AtomicU64,
    requests_skipped: AtomicU64,
    json_responses: AtomicU64,
    responses_checked: AtomicU64,
}

impl Counters {
    pub(super) fn request_checked(&self) {
        self.requests_checked.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn request_skipped(&self) {
        self.requests_skipped.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn response_checked(&self) {
        self.responses_checked.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether a request path is a Box API call (rather than a download URL, a shared-link
/// page or the emulator's own control routes).
pub fn is_api_path(path: &str) -> bool {
    ["/2.0/", "/api/2.0/", "/oauth2/", "/api/oauth2/"]
        .iter()
        .any(|p| path.starts_with(p))
}

impl Validator {
    /// Counts one routed request to `path`, and whether its answer was JSON: called by the
    /// middleware for every request, whether or not a check found its operation.
    pub fn count_call(&self, path: &str, json_response: bool) {
        if !is_api_path(path) {
            return;
        }
        let c = &self.coverage;
        c.api_calls.fetch_add(1, Ordering::Relaxed);
        if json_response {
            c.json_responses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts so far.
    pub fn coverage(&self) -> Coverage {
        let c = &self.coverage;
        Coverage {
            api_calls: c.api_calls.load(Ordering::Relaxed),
            requests_checked: c.requests_checked.load(Ordering::Relaxed),
            requests_skipped: c.requests_skipped.load(Ordering::Relaxed),
            json_responses: c.json_responses.load(Ordering::Relaxed),
            responses_checked: c.responses_checked.load(Ordering::Relaxed),
        }
    }

    /// A readable reason when API calls were made but no check ran: the validation has been
    /// switched off somewhere without anyone saying so.
    pub fn coverage_gap(&self) -> Option<String> {
        let c = self.coverage();
        let described_calls = c.api_calls.saturating_sub(c.requests_skipped);
        if described_calls > 0 && c.requests_checked == 0 {
            return Some(format!(
                "{} API call(s) reached the emulator but no request was checked against Box's \
                 OpenAPI description ({c:?})",
                c.api_calls
            ));
        }
        if c.json_responses > c.requests_skipped && c.responses_checked == 0 {
            return Some(format!(
                "{} JSON response(s) were sent but none was checked against Box's OpenAPI \
                 description ({c:?})",
                c.json_responses
            ));
        }
        None
    }
}

/// The reason a route is not described, when it is listed.
pub(super) fn not_described(method: &str, route: &str) -> Option<&'static str> {
    NOT_DESCRIBED
        .iter()
        .find(|(m, r, _)| m.eq_ignore_ascii_case(method) && *r == route)
        .map(|(_, _, why)| *why)
}
