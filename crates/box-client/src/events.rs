//! Events: pages of the user's event stream (`GET /events`), the latest stream position,
//! Box's realtime long-poll (`OPTIONS /events`, then a held `GET` on the realtime server),
//! and [`EventStream`], the long-polling event feed of the Python SDK's
//! `generate_events_with_long_polling` as a `Stream`.
//!
//! Box's quirks handled here:
//! - `next_stream_position` is a JSON string or a number, and a realtime server's `ttl` and
//!   `max_retries` strings or numbers: both are accepted, positions are kept as strings;
//! - user events may come twice or out of order: an [`EventStream`] drops the event ids it
//!   has recently handed over (a bounded set of the last ids), and keeps that memory when it
//!   is resumed ([`EventStream::resume`]). This is the one place repeats are dropped: pages
//!   from [`Client::get_events`] are Box's answers as they are;
//! - the realtime URL carries its own channel and takes no token; it answers `new_change`
//!   (fetch the events from the last position), `reconnect` (poll again), or nothing at
//!   all before `retry_timeout` (poll again);
//! - one `GET /events` may return fewer events than asked for while more are pending:
//!   keep asking until `chunk_size` is 0;
//! - a long-poll can stay unanswered for ten minutes on a quiet account, so a feed that just
//!   (re)started would not know for that long whether it works: it first fetches what came
//!   after its position with `GET /events` (catching up on what it missed, and proving the
//!   stream answers), then long-polls. [`EventStream::status`] tells readers how it stands.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::client::{decode, Client, Request};
use super::error::{BoxError, BoxResult};
use super::types::{Item, UserMini};

/// Box answers at most this many events per `GET /events`.
pub const MAX_EVENTS_LIMIT: u32 = 500;

/// Which events a stream carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamType {
    /// Everything that happens to the user's items.
    #[default]
    All,
    /// Only events that change the tree (creations, moves, renames, trash, ...).
    Changes,
    /// Changes to synced folders.
    Sync,
    /// Enterprise events (admins only; no long-poll).
    AdminLogs,
    /// Enterprise events, recent and unordered (admins only; no long-poll).
    AdminLogsStreaming,
}

impl StreamType {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::All => "all",
            StreamType::Changes => "changes",
            StreamType::Sync => "sync",
            StreamType::AdminLogs => "admin_logs",
            StreamType::AdminLogsStreaming => "admin_logs_streaming",
        }
    }

    fn is_enterprise(self) -> bool {
        matches!(self, StreamType::AdminLogs | StreamType::AdminLogsStreaming)
    }
}

/// One event (`S.Event`). Every field is optional on the wire; a field of an unexpected
/// shape is dropped rather than failing the whole page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(default, deserialize_with = "lenient_string")]
    pub event_id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub event_type: String,
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub recorded_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_by: Option<UserMini>,
    #[serde(default, deserialize_with = "lenient")]
    pub session_id: Option<String>,
    /// The item (a File or Folder for user events, an EventSource for enterprise events, a
    /// user, ... or null when the item is gone).
    #[serde(default)]
    pub source: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_details: Option<Value>,
}

impl Event {
    fn source_str(&self, keys: &[&str]) -> Option<&str> {
        keys.iter()
            .find_map(|k| self.source.get(*k).and_then(Value::as_str))
    }

    /// `file`, `folder`, `user`, ... (from `type`, or `item_type` for enterprise events).
    pub fn item_type(&self) -> Option<&str> {
        self.source_str(&["type", "item_type"])
    }

    /// The id of the item the event is about.
    pub fn item_id(&self) -> Option<&str> {
        self.source_str(&["id", "item_id"])
    }

    pub fn item_name(&self) -> Option<&str> {
        self.source_str(&["name", "item_name"])
    }

    /// The item's `sequence_id` after the event: an event whose sequence id is not above
    /// the one already known is old news.
    pub fn sequence_id(&self) -> Option<&str> {
        self.source_str(&["sequence_id"])
    }

    /// The id of the folder the item is in (after the event).
    pub fn parent_id(&self) -> Option<&str> {
        self.source.get("parent")?.get("id")?.as_str()
    }

    /// The source as a file or folder, when it is one.
    pub fn source_item(&self) -> Option<Item> {
        match self.source.get("type").and_then(Value::as_str) {
            Some("file" | "folder" | "web_link") => {
                serde_json::from_value(self.source.clone()).ok()
            }
            _ => None,
        }
    }
}

/// One page of events (`S.Events`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EventPage {
    #[serde(default)]
    pub chunk_size: u64,
    /// Where the next page starts; pass it back as `stream_position`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub next_stream_position: String,
    #[serde(default)]
    pub entries: Vec<Event>,
}

/// What `GET /events` is asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsQuery {
    /// `now`, a position from an earlier page, or `None` (= 0: everything Box still keeps).
    pub stream_position: Option<String>,
    pub stream_type: StreamType,
    /// At most 500 (larger values are lowered); Box's default is 100.
    pub limit: Option<u32>,
    /// Enterprise streams only.
    pub event_types: Vec<String>,
    /// Enterprise streams only (RFC 3339).
    pub created_after: Option<String>,
    pub created_before: Option<String>,
}

impl EventsQuery {
    /// The user's `all` stream from `position`.
    pub fn since(position: impl Into<String>) -> EventsQuery {
        EventsQuery {
            stream_position: Some(position.into()),
            ..EventsQuery::default()
        }
    }
}

/// A realtime long-poll server (`S.RealtimeServer`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RealtimeServer {
    pub url: String,
    /// Minutes the server may be used.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub ttl: Option<u64>,
    /// Polls before a fresh server should be asked for.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub max_retries: Option<u64>,
    /// Seconds a poll may stay unanswered.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub retry_timeout: Option<u64>,
}

#[derive(Deserialize)]
struct RealtimeServers {
    #[serde(default)]
    entries: Vec<RealtimeServer>,
}

/// What a long-poll answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LongPollMessage {
    /// There are events after the position polled with.
    NewChange,
    /// Nothing happened in time; poll again.
    Reconnect,
    /// No answer within the server's `retry_timeout`.
    TimedOut,
    /// Anything else Box may say (`out_of_date`, `max_retries`, ...).
    Other(String),
}

impl Client {
    /// One page of events.
    pub async fn get_events(&self, q: &EventsQuery) -> BoxResult<EventPage> {
        let mut req = self
            .api(Method::GET, "/events")
            .query("stream_type", q.stream_type.as_str())
            .query_opt("stream_position", q.stream_position.as_deref())
            .query_opt("limit", q.limit.map(|l| l.min(MAX_EVENTS_LIMIT)));
        if !q.event_types.is_empty() {
            req = req.query("event_type", q.event_types.join(","));
        }
        let req = req
            .query_opt("created_after", q.created_after.as_deref())
            .query_opt("created_before", q.created_before.as_deref());
        self.json(req).await
    }

    /// The stream's current end: events after it are the ones still to come.
    pub async fn latest_stream_position(&self, stream_type: StreamType) -> BoxResult<String> {
        let page = self
            .get_events(&EventsQuery {
                stream_position: Some("now".into()),
                stream_type,
                ..EventsQuery::default()
            })
            .await?;
        if page.next_stream_position.is_empty() {
            return Err(BoxError::Decode(
                "GET /events?stream_position=now gave no next_stream_position".into(),
            ));
        }
        Ok(page.next_stream_position)
    }

    /// The realtime server to long-poll for the user's `stream_type` events.
    pub async fn long_poll_options(&self, stream_type: StreamType) -> BoxResult<RealtimeServer> {
        if stream_type.is_enterprise() {
            return Err(BoxError::Invalid(
                "long polling is available for user events only".into(),
            ));
        }
        let servers: RealtimeServers = self
            .json(
                self.api(Method::OPTIONS, "/events")
                    .query("stream_type", stream_type.as_str()),
            )
            .await?;
        servers
            .entries
            .into_iter()
            .find(|s| !s.url.is_empty())
            .ok_or_else(|| BoxError::Decode("OPTIONS /events named no realtime server".into()))
    }

    /// One long-poll: waits on `server` until something happens after `position`, the
    /// server gives up (`Reconnect`), or `timeout` (default: the server's `retry_timeout`)
    /// passes (`TimedOut`).
    pub async fn long_poll(
        &self,
        server: &RealtimeServer,
        position: &str,
        timeout: Option<Duration>,
    ) -> BoxResult<LongPollMessage> {
        let url = url::Url::parse(&server.url)
            .map_err(|e| BoxError::Decode(format!("the realtime server URL is not a URL: {e}")))?;
        let server_timeout = Duration::from_secs(server.retry_timeout.unwrap_or(610).max(1));
        let timeout = timeout.map_or(server_timeout, |t| t.min(server_timeout));
        // The URL carries a channel bound to the user: no token goes to the realtime host.
        let req = Request::new(Method::GET, url)
            .query("stream_position", position)
            .unauthenticated();
        let answer = tokio::time::timeout(timeout, async {
            let resp = self.send(req).await?;
            decode::<Value>(resp, "realtime long-poll").await
        })
        .await;
        let body = match answer {
            Err(_) => return Ok(LongPollMessage::TimedOut),
            Ok(result) => result?,
        };
        Ok(match body.get("message").and_then(Value::as_str) {
            Some("new_change") => LongPollMessage::NewChange,
            Some("reconnect") => LongPollMessage::Reconnect,
            Some(other) => LongPollMessage::Other(other.to_string()),
            None => LongPollMessage::Other(body.to_string()),
        })
    }

    /// A long-polling feed of the user's events from `opts.stream_position` (the current
    /// end of the stream when `None`), each event once. Runs as a task on the current
    /// tokio runtime (call it inside one) until the returned stream is dropped. Trouble is
    /// reported as `Err` items while the feed reconnects and resumes from its last
    /// position; the feed ends only when the credentials are refused for good or the
    /// options cannot work.
    pub fn event_stream(&self, opts: EventStreamOptions) -> EventStream {
        let seen = RecentIds::new(opts.dedup_capacity);
        self.start_event_stream(opts, seen)
    }

    /// A feed whose reader drops the event ids in `seen` (and those it hands over).
    fn start_event_stream(&self, opts: EventStreamOptions, seen: RecentIds) -> EventStream {
        let (tx, rx) = mpsc::channel(opts.buffer.max(1));
        let (status_tx, status) = watch::channel(FeedStatus::default());
        let position = opts.stream_position.clone();
        let feed = Feed {
            client: self.clone(),
            backoff: Backoff::new(opts.min_backoff, opts.max_backoff),
            tx,
            status: status_tx,
            opts: opts.clone(),
        };
        let task = tokio::spawn(feed.run());
        EventStream {
            rx,
            task,
            status,
            position,
            peeked: None,
            seen,
            client: self.clone(),
            opts,
        }
    }
}

/// How an [`EventStream`] runs.
#[derive(Debug, Clone)]
pub struct EventStreamOptions {
    /// Start after this position; `None` = from now on.
    pub stream_position: Option<String>,
    /// `All`, `Changes` or `Sync` (enterprise streams cannot be long-polled).
    pub stream_type: StreamType,
    /// Events asked for per `GET /events`.
    pub page_limit: u32,
    /// How many recent event ids are remembered to drop duplicates.
    pub dedup_capacity: usize,
    /// Give up on an unanswered poll sooner than the server's `retry_timeout`.
    pub poll_timeout: Option<Duration>,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Events held for a slow reader before the feed waits.
    pub buffer: usize,
}

impl Default for EventStreamOptions {
    fn default() -> Self {
        EventStreamOptions {
            stream_position: None,
            stream_type: StreamType::All,
            page_limit: MAX_EVENTS_LIMIT,
            dedup_capacity: 1000,
            poll_timeout: None,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            buffer: 256,
        }
    }
}

/// How a feed stands, published as it changes ([`EventStream::status`]). Unlike the `Err`
/// items, which queue behind the events, this is always the feed's current state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStatus {
    /// True from the feed's last successful exchange with Box (events fetched, a long-poll
    /// answered) until its next failure: events that happen now will be delivered promptly.
    /// False until the first success.
    pub connected: bool,
    /// Failures so far (each is also reported as an `Err` item).
    pub failures: u64,
    /// Times Box said the position was older than the events it keeps (`out_of_date`):
    /// events may have been lost, whatever depends on them should be checked again.
    pub out_of_date: u64,
    /// When the last successful exchange ended.
    pub last_ok: Option<Instant>,
}

/// What the feed sends its reader: events and trouble, and where the stream stands
/// after the events sent before.
#[derive(Debug)]
enum Note {
    Event(Box<BoxResult<Event>>),
    Position(String),
}

/// The events of a long-polling feed, as a `Stream`, each event once. Dropping it stops the
/// feed.
///
/// Repeats are dropped as events are taken from the stream, not as the feed fetches them:
/// an event waiting in the stream's buffer has not been seen, so a stream resumed from
/// [`EventStream::position`] loses nothing and repeats nothing.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Note>,
    task: JoinHandle<()>,
    status: watch::Receiver<FeedStatus>,
    /// After the events taken from this stream so far.
    position: Option<String>,
    /// An event read ahead by `position()`, not taken yet.
    peeked: Option<BoxResult<Event>>,
    /// The ids of the events taken recently: a repeat of one is dropped.
    seen: RecentIds,
    /// What started the feed, for [`EventStream::resume`].
    client: Client,
    opts: EventStreamOptions,
}

impl EventStream {
    /// The next event (or reported trouble); `None` once the feed has ended.
    pub async fn next_event(&mut self) -> Option<BoxResult<Event>> {
        futures_util::StreamExt::next(self).await
    }

    /// The feed's state as it changes; `changed()` fails once the feed has ended.
    pub fn status(&self) -> watch::Receiver<FeedStatus> {
        self.status.clone()
    }

    /// Where a feed resumed later (`EventStreamOptions::stream_position`) loses nothing
    /// that was not taken from this stream yet. Positions come per page of events, so the
    /// events of a page taken only in part come again then (with their event ids, like
    /// Box's own repeats). `None` until the feed knows where it starts.
    pub fn position(&mut self) -> Option<String> {
        while self.peeked.is_none() {
            match self.rx.try_recv() {
                Ok(Note::Position(p)) => self.position = Some(p),
                Ok(Note::Event(e)) if self.is_repeat(&e) => {}
                Ok(Note::Event(e)) => self.peeked = Some(*e),
                Err(_) => break,
            }
        }
        self.position.clone()
    }

    /// A new feed from where this one's reader stands ([`EventStream::position`]; the
    /// starting position if none is known yet), with the same options, that drops repeats
    /// of the events taken from this one too. For a reader that starts a feed again after
    /// it ended: the events of a page taken in part come again, and only the ones not
    /// taken yet are handed over.
    pub fn resume(mut self) -> EventStream {
        let position = self.position();
        let opts = EventStreamOptions {
            stream_position: position,
            ..self.opts.clone()
        };
        let seen = std::mem::replace(&mut self.seen, RecentIds::new(1));
        self.client.start_event_stream(opts, seen)
    }

    /// Whether `event` repeats one taken already.
    fn is_repeat(&self, event: &BoxResult<Event>) -> bool {
        matches!(event, Ok(e) if self.seen.contains(&e.event_id))
    }

    /// Hands `event` over: from now on a repeat of it is dropped.
    fn take(&mut self, event: BoxResult<Event>) -> BoxResult<Event> {
        if let Ok(e) = &event {
            self.seen.insert(&e.event_id);
        }
        event
    }
}

impl futures_util::Stream for EventStream {
    type Item = BoxResult<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(e) = self.peeked.take() {
            return Poll::Ready(Some(self.take(e)));
        }
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Note::Position(p))) => self.position = Some(p),
                Poll::Ready(Some(Note::Event(e))) if self.is_repeat(&e) => {}
                Poll::Ready(Some(Note::Event(e))) => return Poll::Ready(Some(self.take(*e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reader is gone: stop.
struct Closed;

/// The task behind an [`EventStream`].
struct Feed {
    client: Client,
    opts: EventStreamOptions,
    backoff: Backoff,
    tx: mpsc::Sender<Note>,
    status: watch::Sender<FeedStatus>,
}

impl Feed {
    async fn run(mut self) {
        let _ = self.run_until_closed().await;
    }

    async fn run_until_closed(&mut self) -> Result<(), Closed> {
        if self.opts.stream_type.is_enterprise() {
            let err = BoxError::Invalid("long polling is available for user events only".into());
            return self.send(Note::Event(Box::new(Err(err)))).await;
        }
        // A given position may be behind (or the stream may not answer): catch up first.
        let mut catch_up = self.opts.stream_position.is_some();
        let mut position = match self.opts.stream_position.clone() {
            Some(p) => p,
            None => loop {
                match self
                    .client
                    .latest_stream_position(self.opts.stream_type)
                    .await
                {
                    Ok(p) => {
                        self.connected();
                        self.send(Note::Position(p.clone())).await?;
                        break p;
                    }
                    Err(e) => self.trouble(e).await?,
                }
            },
        };
        loop {
            if catch_up {
                if let Err(e) = self.drain(&mut position).await? {
                    self.trouble(e).await?;
                    continue;
                }
                catch_up = false;
            }
            let server = match self.client.long_poll_options(self.opts.stream_type).await {
                Ok(s) => s,
                Err(e) => {
                    self.trouble(e).await?;
                    catch_up = true;
                    continue;
                }
            };
            let renew_at = Instant::now()
                + Duration::from_secs(server.ttl.unwrap_or(10).clamp(1, 24 * 60) * 60);
            let max_polls = server.max_retries.unwrap_or(10).clamp(1, 1000);
            let mut polls = 0;
            while polls < max_polls && Instant::now() < renew_at {
                polls += 1;
                let answer = self
                    .client
                    .long_poll(&server, &position, self.opts.poll_timeout)
                    .await;
                match answer {
                    Ok(LongPollMessage::NewChange) => {
                        if let Err(e) = self.drain(&mut position).await? {
                            self.trouble(e).await?;
                            catch_up = true;
                            break;
                        }
                        self.backoff.reset();
                    }
                    // Box's sign that the position is older than it keeps: fetch what
                    // there is from it, then poll with the fresh position.
                    Ok(LongPollMessage::Other(m)) if m == "out_of_date" => {
                        self.status.send_modify(|s| s.out_of_date += 1);
                        if let Err(e) = self.drain(&mut position).await? {
                            self.trouble(e).await?;
                            catch_up = true;
                            break;
                        }
                    }
                    Ok(LongPollMessage::Reconnect) => {
                        self.connected();
                        self.backoff.reset();
                    }
                    // No answer in time: maybe a quiet account, maybe a dead connection.
                    Ok(LongPollMessage::TimedOut) => self.backoff.reset(),
                    Ok(LongPollMessage::Other(m)) => {
                        log::debug!("realtime server said '{m}'; asking for a fresh one");
                        break;
                    }
                    Err(e) => {
                        self.trouble(e).await?;
                        catch_up = true;
                        break;
                    }
                }
            }
        }
    }

    /// Fetches and hands over every event after `position`, moving it on. The outer
    /// `Err` means the reader is gone; the inner one is a failed request (the events
    /// handed over so far stay handed over, and `position` stays after them).
    async fn drain(&mut self, position: &mut String) -> Result<BoxResult<()>, Closed> {
        loop {
            let q = EventsQuery {
                stream_position: Some(position.clone()),
                stream_type: self.opts.stream_type,
                limit: Some(self.opts.page_limit.clamp(1, MAX_EVENTS_LIMIT)),
                ..EventsQuery::default()
            };
            let page = match self.client.get_events(&q).await {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            self.connected();
            for event in page.entries {
                self.send(Note::Event(Box::new(Ok(event)))).await?;
            }
            let moved =
                !page.next_stream_position.is_empty() && page.next_stream_position != *position;
            if moved {
                *position = page.next_stream_position;
                self.send(Note::Position(position.clone())).await?;
            }
            if page.chunk_size == 0 || !moved {
                return Ok(Ok(()));
            }
        }
    }

    /// Reports `err` and waits before the next try; ends the feed when trying again cannot
    /// help.
    async fn trouble(&mut self, err: BoxError) -> Result<(), Closed> {
        let fatal = matches!(
            err,
            BoxError::Auth(_) | BoxError::OAuth { .. } | BoxError::Config(_) | BoxError::Invalid(_)
        );
        log::debug!("event stream: {err}");
        self.status.send_modify(|s| {
            s.connected = false;
            s.failures += 1;
        });
        self.send(Note::Event(Box::new(Err(err)))).await?;
        if fatal {
            return Err(Closed);
        }
        let wait = self.backoff.next();
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = self.tx.closed() => Err(Closed),
        }
    }

    /// A successful exchange with Box.
    fn connected(&self) {
        self.status.send_modify(|s| {
            s.connected = true;
            s.last_ok = Some(Instant::now());
        });
    }

    async fn send(&self, note: Note) -> Result<(), Closed> {
        self.tx.send(note).await.map_err(|_| Closed)
    }
}

/// The last `capacity` distinct ids seen, oldest forgotten first: how event ids are
/// de-duplicated without growing forever.
#[derive(Debug)]
pub struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl RecentIds {
    pub fn new(capacity: usize) -> RecentIds {
        let capacity = capacity.max(1);
        RecentIds {
            set: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Whether `id` is among the remembered ones.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Whether `id` is new (it is remembered). Events without an id always pass.
    pub fn insert(&mut self, id: &str) -> bool {
        if id.is_empty() {
            return true;
        }
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

/// Exponential backoff with jitter between failed attempts.
struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    fn next(&mut self) -> Duration {
        let exp = self
            .min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        exp.mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A string, or a number written as one; anything else is empty.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

/// A number, or a string holding one.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// The value when it has the expected shape, else `None`.
fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_and_counts_come_as_strings_or_numbers() {
        let page: EventPage = serde_json::from_value(json!({
            "chunk_size": 1, "next_stream_position": 1234567890123u64,
            "entries": [{"type": "event", "event_id": "e1", "event_type": "ITEM_UPLOAD",
                         "created_by": {"type": "user", "id": "7", "name": "A", "login": "a@x"},
                         "source": {"type": "file", "id": "42", "sequence_id": "3",
                                    "name": "f.txt", "parent": {"type": "folder", "id": "0"}}}]
        }))
        .unwrap();
        assert_eq!(page.next_stream_position, "1234567890123");
        let e = &page.entries[0];
        assert_eq!(e.item_type(), Some("file"));
        assert_eq!(e.item_id(), Some("42"));
        assert_eq!(e.sequence_id(), Some("3"));
        assert_eq!(e.parent_id(), Some("0"));
        assert_eq!(e.item_name(), Some("f.txt"));
        assert_eq!(e.created_by.as_ref().unwrap().id, "7");
        assert_eq!(e.source_item().unwrap().id, "42");

        let page: EventPage = serde_json::from_value(
            json!({"chunk_size": 0, "next_stream_position": "99", "entries": []}),
        )
        .unwrap();
        assert_eq!(page.next_stream_position, "99");

        let s: RealtimeServer = serde_json::from_value(
            json!({"type": "realtime_server", "url": "http://x/s", "ttl": "10", "max_retries": 5, "retry_timeout": 610}),
        )
        .unwrap();
        assert_eq!(
            (s.ttl, s.max_retries, s.retry_timeout),
            (Some(10), Some(5), Some(610))
        );
    }

    #[test]
    fn odd_fields_do_not_lose_the_event() {
        let e: Event = serde_json::from_value(json!({
            "event_id": "x", "event_type": "ITEM_TRASH", "created_by": {"type": "user"},
            "source": null, "session_id": 5,
        }))
        .unwrap();
        assert_eq!(e.event_id, "x");
        assert!(e.created_by.is_none());
        assert!(e.item_id().is_none());
        let admin: Event = serde_json::from_value(json!({
            "event_id": "y", "event_type": "UPLOAD",
            "source": {"item_type": "file", "item_id": "9", "item_name": "n", "parent": {"id": "3"}},
        }))
        .unwrap();
        assert_eq!(
            (admin.item_type(), admin.item_id(), admin.parent_id()),
            (Some("file"), Some("9"), Some("3"))
        );
    }

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut ids = RecentIds::new(2);
        assert!(ids.insert("a"));
        assert!(!ids.insert("a"));
        assert!(ids.insert("b"));
        assert!(ids.insert("c"));
        assert!(ids.insert("a"));
        assert!(!ids.insert("c"));
        assert!(ids.insert(""));
        assert!(ids.insert(""));
    }
}
