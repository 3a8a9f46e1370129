//! The event stream: `GET /events` (user streams `all`, `changes`, `sync`, and the
//! enterprise streams `admin_logs` and `admin_logs_streaming` for admins), `OPTIONS /events`
//! (the realtime long-poll server), and `GET /subscribe`, the long-poll itself.
//!
//! Events are recorded by the handlers that change things (`Store::item_event`, by action,
//! from the table in `event_table`); this module only reads them. Positions are the store's event counter, so a stream position
//! is a plain integer; `next_stream_position` is sent as a JSON integer (rclone cannot parse
//! a string there, although the spec allows both). Like Box, the stream may repeat an event
//! (`Knobs::duplicate_event_rate`); clients deduplicate by `event_id`. Like Box, which
//! delivers events seconds after the change, it may hold events back
//! (`Knobs::event_delay_ms`): both the stream and the long-poll see only events older than
//! the delay, and the stream never moves a position past one still held back. Like Box,
//! which keeps user events about two weeks, it may forget old events
//! (`Knobs::event_retention_ms`): every stream leaves them out, and a long-poll from a
//! position they came after answers `out_of_date`.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::event_table::{enterprise_type, in_changes};
use super::http::{json_response, query_u64, AppState, Ctx, Query};
use super::repr::{time, user_mini};
use super::store::{Event, Id, RealtimeChannel, Role, Store};
use super::Knobs;

/// The watch value that tells held long-polls the server is stopping.
pub const STOPPING: u64 = u64::MAX;

/// Most events one `GET /events` returns.
const MAX_LIMIT: u64 = 500;

/// Realtime channels unused for this long are forgotten.
const CHANNEL_IDLE_SECS: i64 = 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/2.0/events", get(get_events).options(realtime_servers))
        .route("/subscribe", get(subscribe))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamType {
    All,
    Changes,
    Sync,
    AdminLogs,
    AdminLogsStreaming,
}

impl StreamType {
    fn parse(raw: Option<&str>) -> ApiResult<StreamType> {
        Ok(match raw.unwrap_or("all") {
            "" | "all" => StreamType::All,
            "changes" => StreamType::Changes,
            "sync" => StreamType::Sync,
            "admin_logs" => StreamType::AdminLogs,
            "admin_logs_streaming" => StreamType::AdminLogsStreaming,
            other => {
                return Err(ApiError::invalid_parameter(
                    "stream_type",
                    format!("Invalid value '{other}' for 'stream_type': expected one of all, changes, sync, admin_logs, admin_logs_streaming"),
                ))
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            StreamType::All => "all",
            StreamType::Changes => "changes",
            StreamType::Sync => "sync",
            StreamType::AdminLogs => "admin_logs",
            StreamType::AdminLogsStreaming => "admin_logs_streaming",
        }
    }

    fn is_admin(self) -> bool {
        matches!(self, StreamType::AdminLogs | StreamType::AdminLogsStreaming)
    }

    /// Whether a user stream of this type carries the event (the event table's column).
    /// The emulator does not model Box Sync, so `sync` carries what `changes` carries
    /// (every folder counts as synced).
    fn carries(self, event_type: &str) -> bool {
        match self {
            StreamType::All => true,
            _ => in_changes(event_type),
        }
    }
}

/// Whether `user`'s stream of type `stream` shows the event.
fn visible(ev: &Event, user: Id, stream: StreamType) -> bool {
    ev.users.contains(&user) && stream.carries(&ev.event_type)
}

/// Index of the first event after `position` (events are kept in position order).
fn first_after(store: &Store, position: u64) -> usize {
    store.events.partition_point(|e| e.position <= position)
}

/// The longest delay honoured (a year): larger values hold every event back as well.
const MAX_DELAY_MS: u64 = 365 * 24 * 3600 * 1000;

/// The events delivered by `now` with a delay of `delay_ms`: the index of the first event
/// still held back (all of them are delivered when it is `events.len()`), and the stream
/// position just before it, which is as far as a stream may move. Events are recorded in
/// time order, so those held back are a run at the end.
fn delivered(store: &Store, delay_ms: u64, now: DateTime<Utc>) -> (usize, u64) {
    let all = (store.events.len(), store.next_position);
    if delay_ms == 0 {
        return all;
    }
    let delay = chrono::Duration::milliseconds(delay_ms.min(MAX_DELAY_MS) as i64);
    let cutoff = now - delay;
    let held = store
        .events
        .iter()
        .rev()
        .take_while(|e| e.created_at > cutoff)
        .count();
    if held == 0 {
        return all;
    }
    let end = store.events.len() - held;
    (end, store.events[end].position.saturating_sub(1))
}

/// When events created before this have expired, with a retention of `retention_ms`
/// (none when it is 0, or so long that nothing can have expired).
fn expiry_cutoff(retention_ms: u64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if retention_ms == 0 {
        return None;
    }
    let retention = chrono::Duration::try_milliseconds(i64::try_from(retention_ms).ok()?)?;
    now.checked_sub_signed(retention)
}

/// The events still kept at `now` with a retention of `retention_ms`: the index of the
/// oldest one kept, and the position of the newest one expired (0 when none has). Events
/// are recorded in time order, so the expired ones are a run at the start. The emulator
/// does not delete them, so that turning the knob back shows them again.
fn retained(store: &Store, retention_ms: u64, now: DateTime<Utc>) -> (usize, u64) {
    let Some(cutoff) = expiry_cutoff(retention_ms, now) else {
        return (0, 0);
    };
    let start = store.events.partition_point(|e| e.created_at < cutoff);
    let expired_through = start.checked_sub(1).map_or(0, |i| store.events[i].position);
    (start, expired_through)
}

/// The part of the event log a reader sees now: neither expired nor held back.
struct Window {
    /// Index of the oldest event kept ([`retained`]).
    start: usize,
    /// Index of the first event held back ([`delivered`]).
    end: usize,
    /// As far as a stream may move.
    latest: u64,
    /// Position of the newest expired event (0 when none has expired).
    expired_through: u64,
}

impl Window {
    fn now(store: &Store, knobs: &Knobs) -> Window {
        let now = Utc::now();
        let (end, latest) = delivered(store, knobs.event_delay_ms, now);
        let (start, expired_through) = retained(store, knobs.event_retention_ms, now);
        Window {
            start,
            end,
            latest,
            expired_through,
        }
    }

    /// The events of the window after `position`.
    fn after<'s>(&self, store: &'s Store, position: u64) -> &'s [Event] {
        let from = first_after(store, position).max(self.start).min(self.end);
        &store.events[from..self.end]
    }

    /// Whether a client at `position` has missed events: one after it has expired. A
    /// position at or after the newest expired event missed nothing, even when every event
    /// has expired since.
    fn is_out_of_date(&self, position: u64) -> bool {
        position < self.expired_through
    }
}

/// Whether `user` has an event of the stream in the window after `position`.
fn has_new(store: &Store, user: Id, stream: StreamType, position: u64, window: &Window) -> bool {
    window
        .after(store, position)
        .iter()
        .any(|e| visible(e, user, stream))
}

/// When the first event for `user` held back after `position` will be delivered, if any.
fn next_delivery(
    store: &Store,
    user: Id,
    stream: StreamType,
    position: u64,
    end: usize,
    delay_ms: u64,
) -> Option<tokio::time::Instant> {
    let ev = store.events[first_after(store, position).max(end)..]
        .iter()
        .find(|e| visible(e, user, stream))?;
    let delay = chrono::Duration::milliseconds(delay_ms.min(MAX_DELAY_MS) as i64);
    let wait = (ev.created_at + delay - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    // A millisecond late rather than early: the event is then surely delivered.
    Some(tokio::time::Instant::now() + wait + Duration::from_millis(1))
}

/// A user-stream event as Box sends it.
pub fn event_json(store: &Store, ev: &Event) -> Value {
    let mut v = json!({
        "type": "event",
        "event_id": ev.event_id,
        "event_type": ev.event_type,
        "created_at": time(ev.created_at),
        "recorded_at": time(ev.created_at),
        "created_by": user_mini(store, ev.created_by),
        // The item as it was when the event happened; Box sends null when it is gone
        // (for example the LOCK_DESTROY of a deleted file).
        "source": ev.source,
    });
    if let Some(s) = &ev.session_id {
        v["session_id"] = json!(s);
    }
    v
}

/// An enterprise event: the enterprise event type and an `EventSource` for items.
fn admin_event_json(store: &Store, ev: &Event) -> Value {
    let src = &ev.source;
    let source = match src.get("type").and_then(Value::as_str) {
        // Box's description has only `file` and `folder` for `item_type`; a web link's
        // source names its own type in the same shape (it then reads as a generic source).
        Some(kind @ ("file" | "folder" | "web_link")) => {
            let mut s = json!({
                "item_type": kind,
                "item_id": src["id"],
                "item_name": src["name"],
                "parent": src.get("parent").cloned().unwrap_or(Value::Null),
            });
            if let Some(owner) = src.get("owned_by").filter(|o| o.is_object()) {
                s["owned_by"] = owner.clone();
            }
            s
        }
        _ => src.clone(),
    };
    let mut v = json!({
        "type": "event",
        "event_id": ev.event_id,
        "event_type": enterprise_type(&ev.event_type),
        "created_at": time(ev.created_at),
        "recorded_at": time(ev.created_at),
        "created_by": user_mini(store, ev.created_by),
        "source": source,
    });
    if let Some(s) = &ev.session_id {
        v["session_id"] = json!(s);
    }
    v
}

/// `stream_position`: absent or `0` is the oldest retained event, `now` the latest.
enum Start {
    Now,
    After(u64),
}

fn parse_position(raw: Option<&str>) -> ApiResult<Start> {
    match raw.map(str::trim) {
        None | Some("") => Ok(Start::After(0)),
        Some(s) if s.eq_ignore_ascii_case("now") => Ok(Start::Now),
        Some(s) => s.parse().map(Start::After).map_err(|_| {
            ApiError::invalid_parameter(
                "stream_position",
                "Invalid value for 'stream_position': expected 'now' or a stream position",
            )
        }),
    }
}

fn parse_time(q: &Query, key: &str) -> ApiResult<Option<DateTime<Utc>>> {
    match q.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::invalid_parameter(key, format!("'{key}' must be an RFC 3339 date-time"))
            }),
    }
}

/// `GET /events`.
async fn get_events(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let stream = StreamType::parse(q.get("stream_type").map(String::as_str))?;
    // Box answers at most 500 events however many are asked for.
    let limit = query_u64(&q, "limit", 100)?.min(MAX_LIMIT) as usize;
    let start = parse_position(q.get("stream_position").map(String::as_str))?;
    let knobs = ctx.shared.knobs();
    let duplicate_rate = knobs.duplicate_event_rate;
    let store = ctx.shared.store();
    let window = Window::now(&store, &knobs);
    let latest = window.latest;
    let admin_filter = if stream.is_admin() {
        let me = store.user(ctx.user)?;
        if !matches!(me.role, Role::Admin | Role::Coadmin | Role::ServiceAccount) {
            return Err(ApiError::forbidden(
                "access_denied_insufficient_permissions",
                "Enterprise events need an admin",
            ));
        }
        let types: Option<Vec<String>> = q.get("event_type").filter(|s| !s.is_empty()).map(|s| {
            s.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        });
        Some((
            types,
            parse_time(&q, "created_after")?,
            parse_time(&q, "created_before")?,
        ))
    } else {
        None
    };

    let after = match start {
        Start::Now => {
            return Ok(json_response(
                200,
                json!({"chunk_size": 0, "next_stream_position": latest, "entries": []}),
            ))
        }
        Start::After(p) => p,
    };

    let mut rng = rand::thread_rng();
    let mut entries = Vec::new();
    let mut next = latest;
    if limit == 0 {
        next = after.min(latest);
    }
    // A position older than the events kept is no error here: Box answers from what it
    // still keeps, so a client that missed events cannot tell from this answer (only the
    // long-poll says `out_of_date`).
    for ev in window.after(&store, after) {
        if entries.len() >= limit {
            break;
        }
        let json = match &admin_filter {
            None => {
                if !visible(ev, ctx.user, stream) {
                    continue;
                }
                event_json(&store, ev)
            }
            Some((types, created_after, created_before)) => {
                let kind = enterprise_type(&ev.event_type);
                if types.as_ref().is_some_and(|t| !t.iter().any(|x| x == kind))
                    || created_after.is_some_and(|t| ev.created_at < t)
                    || created_before.is_some_and(|t| ev.created_at > t)
                {
                    continue;
                }
                admin_event_json(&store, ev)
            }
        };
        // Box favours speed over exactness: an event may come twice, same event_id.
        let twice = duplicate_rate > 0.0 && rng.gen::<f64>() < duplicate_rate;
        entries.push(json.clone());
        if twice && entries.len() < limit {
            entries.push(json);
        }
        if entries.len() >= limit {
            next = ev.position;
        }
    }
    Ok(json_response(
        200,
        json!({
            "chunk_size": entries.len(),
            "next_stream_position": next,
            "entries": entries,
        }),
    ))
}

/// `OPTIONS /events`: one realtime server whose URL carries a channel bound to the caller.
async fn realtime_servers(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let stream = StreamType::parse(q.get("stream_type").map(String::as_str))?;
    if stream.is_admin() {
        return Err(ApiError::invalid_parameter(
            "stream_type",
            "Long polling is available for user events only",
        ));
    }
    let channel = super::users::random_token(20);
    let now = Utc::now();
    {
        let mut store = ctx.shared.store();
        store
            .realtime_channels
            .retain(|_, c| (now - c.last_used).num_seconds() < CHANNEL_IDLE_SECS);
        store.realtime_channels.insert(
            channel.clone(),
            RealtimeChannel {
                user: ctx.user,
                stream_type: stream.as_str().to_string(),
                last_used: now,
            },
        );
    }
    let url = format!(
        "{}/subscribe?channel={channel}&stream_type={}",
        super::box_hosts::Urls::current(&ctx.shared.base_url).realtime(),
        stream.as_str()
    );
    // The schema types ttl and max_retries as strings, retry_timeout as an integer.
    let retry_timeout = 610.max(ctx.shared.config.longpoll_timeout_secs + 10);
    Ok(json_response(
        200,
        json!({
            "chunk_size": 1,
            "entries": [{
                "type": "realtime_server",
                "url": url,
                "ttl": "10",
                "max_retries": "10",
                "retry_timeout": retry_timeout,
            }],
        }),
    ))
}

fn new_change() -> Response {
    json_response(200, json!({"message": "new_change"}))
}

fn reconnect() -> Response {
    json_response(200, json!({"version": 1, "message": "reconnect"}))
}

fn out_of_date() -> Response {
    json_response(200, json!({"message": "out_of_date"}))
}

/// `GET /subscribe?channel=..&stream_position=..`: the realtime long-poll. Box's realtime
/// host takes no Authorization header (the SDKs send none); the channel names the user.
/// Answers `new_change` as soon as the user has an event after `stream_position` (after the
/// moment of the request when absent), or `reconnect` after the long-poll timeout. An
/// unknown or forgotten channel gets `reconnect`, which sends the client back to
/// `OPTIONS /events` for a fresh one. A `stream_position` that an expired event came after
/// gets `out_of_date` at once (checked when the poll starts, whatever the user or stream:
/// positions are the whole log's); the client has missed events and must rescan.
async fn subscribe(State(sh): State<AppState>, q: Query) -> Response {
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(sh.config.longpoll_timeout_secs);
    let knobs = sh.knobs();
    let (user, stream, after, mut pending, mut rx) = {
        let mut store = sh.store();
        let window = Window::now(&store, &knobs);
        let Some(channel) = q
            .get("channel")
            .and_then(|c| store.realtime_channels.get_mut(c))
        else {
            return reconnect();
        };
        channel.last_used = Utc::now();
        let user = channel.user;
        let stream = q
            .get("stream_type")
            .and_then(|s| StreamType::parse(Some(s)).ok())
            .filter(|s| !s.is_admin())
            .or_else(|| StreamType::parse(Some(&channel.stream_type)).ok())
            .unwrap_or(StreamType::All);
        let given = match parse_position(q.get("stream_position").map(String::as_str)) {
            Ok(Start::After(p)) if q.get("stream_position").is_some_and(|s| !s.is_empty()) => {
                Some(p)
            }
            _ => None,
        };
        if given.is_some_and(|p| window.is_out_of_date(p)) {
            return out_of_date();
        }
        let after = given.unwrap_or(window.latest);
        if has_new(&store, user, stream, after, &window) {
            return new_change();
        }
        let pending = next_delivery(
            &store,
            user,
            stream,
            after,
            window.end,
            knobs.event_delay_ms,
        );
        // Subscribed while the store is locked: every later change is seen, since
        // handlers announce changes with the store still locked.
        (user, stream, after, pending, sh.events_tx.subscribe())
    };
    loop {
        // Woken by a change, or when an event held back is due.
        let wake = pending.map_or(deadline, |p| p.min(deadline));
        match tokio::time::timeout_at(wake, rx.changed()).await {
            Ok(Ok(())) => {
                if *rx.borrow_and_update() == STOPPING {
                    return reconnect();
                }
            }
            Ok(Err(_)) => return reconnect(),
            Err(_) if wake >= deadline => return reconnect(),
            Err(_) => {}
        }
        let knobs = sh.knobs();
        let store = sh.store();
        let window = Window::now(&store, &knobs);
        if has_new(&store, user, stream, after, &window) {
            return new_change();
        }
        pending = next_delivery(
            &store,
            user,
            stream,
            after,
            window.end,
            knobs.event_delay_ms,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_too_long_to_reach_back_expires_nothing() {
        let now = Utc::now();
        assert_eq!(expiry_cutoff(0, now), None);
        assert_eq!(
            expiry_cutoff(1500, now),
            Some(now - chrono::Duration::milliseconds(1500))
        );
        assert_eq!(expiry_cutoff(i64::MAX as u64, now), None);
        assert_eq!(expiry_cutoff(u64::MAX, now), None);
    }
}
