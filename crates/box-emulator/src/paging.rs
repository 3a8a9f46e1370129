//! Marker paging of lists kept in id order (users, a folder's collaborations): the marker is
//! the id of the next page's first entry, opaque to clients as Box's markers are, so a page
//! boundary holds when entries are added or removed between pages. Folder and trash listings
//! sort by name and have their own markers (`folders.rs`, `files.rs`).

use std::collections::HashMap;

use base64::Engine;

use super::error::{ApiError, ApiResult};
use super::http::query_u64;
use super::store::Id;

/// Whether the query asks for marker paging (`usemarker=true`, any case: Box's Python SDK
/// sends `True`), or already carries a marker.
pub fn wants_marker(q: &HashMap<String, String>) -> bool {
    q.get("usemarker")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || q.get("marker").is_some_and(|m| !m.is_empty())
}

fn encode(id: Id) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("id:{id}"))
}

fn decode(raw: &str) -> ApiResult<Id> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("id:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::invalid_parameter("marker", "Invalid value for 'marker'"))
}

/// One marker page of `entries` (in ascending id order): the page, the `limit` used, and the
/// next page's marker (`None` on the last page). `limit` defaults to `default_limit` and is
/// clamped to `1..=max_limit`.
pub fn page<T>(
    q: &HashMap<String, String>,
    entries: Vec<(Id, T)>,
    default_limit: u64,
    max_limit: u64,
) -> ApiResult<(Vec<T>, u64, Option<String>)> {
    let limit = query_u64(q, "limit", default_limit)?.clamp(1, max_limit);
    let start = match q.get("marker").filter(|m| !m.is_empty()) {
        Some(raw) => Some(decode(raw)?),
        None => None,
    };
    let mut rest = entries
        .into_iter()
        .filter(|(id, _)| start.is_none_or(|s| *id >= s))
        .peekable();
    let mut out = Vec::new();
    while out.len() < limit as usize {
        match rest.next() {
            Some((_, entry)) => out.push(entry),
            None => break,
        }
    }
    let next = rest.peek().map(|(id, _)| encode(*id));
    Ok((out, limit, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pages_follow_ids_and_the_last_has_no_marker() {
        let entries: Vec<(Id, Id)> = [3, 5, 8, 13, 21].iter().map(|i| (*i, *i)).collect();
        let (first, limit, next) =
            page(&query(&[("limit", "2")]), entries.clone(), 100, 1000).expect("first page");
        assert_eq!((first, limit), (vec![3, 5], 2));
        let marker = next.expect("a next page");
        // An entry removed before the next page does not shift it.
        let fewer: Vec<(Id, Id)> = entries.iter().copied().filter(|e| e.0 != 3).collect();
        let (second, _, next) = page(
            &query(&[("limit", "2"), ("marker", &marker)]),
            fewer.clone(),
            100,
            1000,
        )
        .expect("second page");
        assert_eq!(second, vec![8, 13]);
        let (last, _, next) = page(
            &query(&[("limit", "2"), ("marker", &next.expect("a third page"))]),
            fewer,
            100,
            1000,
        )
        .expect("last page");
        assert_eq!((last, next), (vec![21], None));
    }

    #[test]
    fn bad_markers_and_limits_are_refused_or_clamped() {
        let entries: Vec<(Id, ())> = vec![(1, ())];
        assert!(page(
            &query(&[("marker", "not base64!")]),
            entries.clone(),
            100,
            1000
        )
        .is_err());
        assert!(page(&query(&[("marker", "aWQ6eA")]), entries.clone(), 100, 1000).is_err());
        let (_, limit, _) = page(&query(&[("limit", "0")]), entries.clone(), 100, 1000).unwrap();
        assert_eq!(limit, 1);
        let (_, limit, _) = page(&query(&[("limit", "5000")]), entries, 100, 1000).unwrap();
        assert_eq!(limit, 1000);
        assert!(wants_marker(&query(&[("usemarker", "True")])));
        assert!(!wants_marker(&query(&[("usemarker", "false")])));
    }
}
