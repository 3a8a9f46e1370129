//! The task that follows the stream: applies events, holds back echoes, watches the feed
//! and its health, restarts it, and revalidates after long outages.

use super::*;
use crate::fs::backend::priority::in_background;

/// How the follower runs.
#[derive(Debug, Clone)]
pub struct FollowerOptions {
    /// The feed's settings (its `stream_position` is replaced by the follower's); its
    /// `dedup_capacity` also bounds the applier's memory of applied changes.
    pub stream: EventStreamOptions,
    /// After a failure the stream counts as healthy again only once the feed has worked
    /// without a new failure for this long: a realtime server that refuses every poll while
    /// `GET /events` answers must not make the health flap.
    pub settle: Duration,
    /// An outage at least this long ends with [`revalidate_all`]. The feed resumes from its
    /// position, so a short one loses nothing; a long one may have outlived Box's retention,
    /// and meanwhile the kernel kept what it was given with long TTLs.
    pub revalidate_after: Duration,
    /// Waits before a feed that ended (credentials refused) is started again.
    pub restart_min_backoff: Duration,
    pub restart_max_backoff: Duration,
    /// The mount's changes in flight, whose echoes wait for them (see [`OwnChanges`]).
    pub own_changes: Option<Arc<OwnChanges>>,
}

impl Default for FollowerOptions {
    fn default() -> Self {
        FollowerOptions {
            stream: EventStreamOptions {
                max_backoff: Duration::from_secs(10),
                dedup_capacity: DEFAULT_DEDUP_CAPACITY,
                ..EventStreamOptions::default()
            },
            settle: Duration::from_secs(2),
            revalidate_after: Duration::from_secs(5),
            restart_min_backoff: Duration::from_secs(1),
            restart_max_backoff: Duration::from_secs(60),
            own_changes: None,
        }
    }
}

/// The task that follows the user's event stream (see the module note).
pub struct EventFollower {
    pub(super) client: Arc<dyn BoxApi>,
    pub(super) table: Arc<Mutex<InodeTable>>,
    cache: Option<Arc<ContentCache>>,
    notify: Arc<dyn KernelNotify>,
    health: Arc<StreamHealth>,
    applier: EventApplier,
    /// Events held back while one of our own changes to their item is in flight, in order.
    held_back: std::collections::VecDeque<Event>,
    opts: FollowerOptions,
}

/// Where the follower stands with the feed's failures.
#[derive(Debug, Default)]
pub(super) struct Watch {
    failures_seen: u64,
    out_of_date_seen: u64,
    /// Since when the stream has been down (as far as the follower noticed).
    outage_since: Option<Instant>,
    /// The feed works again; healthy at this moment unless it fails before.
    pub(super) healthy_at: Option<tokio::time::Instant>,
    last_ok: Option<Instant>,
}

impl EventFollower {
    pub fn with_options(
        client: Arc<dyn BoxApi>,
        table: Arc<Mutex<InodeTable>>,
        cache: Option<Arc<ContentCache>>,
        notify: Arc<dyn KernelNotify>,
        health: Arc<StreamHealth>,
        opts: FollowerOptions,
    ) -> EventFollower {
        EventFollower {
            client,
            table,
            cache,
            notify,
            health,
            applier: EventApplier::new(opts.stream.dedup_capacity),
            held_back: Default::default(),
            opts,
        }
    }

    /// Runs on the current tokio runtime until aborted.
    pub fn spawn(self, start_position: String) -> JoinHandle<()> {
        // Nobody waits on the stream or on what it fetches after an event.
        tokio::spawn(in_background(self.run(start_position)))
    }

    /// Follows the stream from `start_position` (taken before the mount served anything)
    /// forever; a feed that ends is resumed from where it stopped, still dropping repeats of
    /// the events it delivered.
    pub async fn run(mut self, start_position: String) {
        let mut restart_wait = self.opts.restart_min_backoff;
        let mut watch = Watch::default();
        let own = self.opts.own_changes.clone();
        let mut stream = self.client.event_stream(EventStreamOptions {
            stream_position: Some(start_position),
            ..self.opts.stream.clone()
        });
        loop {
            let mut status = stream.status();
            let mut status_open = true;
            watch.failures_seen = 0;
            watch.out_of_date_seen = 0;
            loop {
                let far = tokio::time::Instant::now() + Duration::from_secs(3600);
                let healthy_at = watch.healthy_at.unwrap_or(far);
                tokio::select! {
                    next = stream.next_event() => match next {
                        Some(Ok(ev)) => {
                            self.health.record_event();
                            self.take_event(ev).await;
                            self.note_position(&mut stream);
                        }
                        Some(Err(e)) => {
                            self.health.record_error(e.to_string());
                            log::info!("event stream: {e}");
                        }
                        None => break,
                    },
                    changed = status.changed(), if status_open => {
                        if changed.is_err() {
                            status_open = false;
                            continue;
                        }
                        let now = status.borrow_and_update().clone();
                        self.on_status(&now, &mut watch).await;
                    }
                    _ = tokio::time::sleep_until(healthy_at), if watch.healthy_at.is_some() => {
                        self.recovered(&mut watch).await;
                        restart_wait = self.opts.restart_min_backoff;
                    }
                    _ = released(&own), if !self.held_back.is_empty() => {
                        self.apply_released().await;
                        self.note_position(&mut stream);
                    }
                }
            }
            log::warn!(
                "the event stream ended; starting it again in {:?}",
                restart_wait
            );
            self.health.mark_ended();
            watch.outage_since.get_or_insert_with(Instant::now);
            watch.healthy_at = None;
            tokio::time::sleep(restart_wait).await;
            restart_wait = (restart_wait * 2).min(self.opts.restart_max_backoff);
            stream = stream.resume();
        }
    }

    /// Follows the feed's status.
    pub(super) async fn on_status(&mut self, status: &FeedStatus, watch: &mut Watch) {
        if status.failures > watch.failures_seen {
            watch.failures_seen = status.failures;
            watch.outage_since.get_or_insert_with(Instant::now);
            watch.healthy_at = None;
            if self.health.mark_unhealthy() {
                log::warn!("event stream lost; caches fall back to short TTLs");
            }
        }
        if status.out_of_date > watch.out_of_date_seen {
            watch.out_of_date_seen = status.out_of_date;
            self.revalidate(
                "the stream position is out of date",
                RevalidateScope::MemoryAndStore,
            )
            .await;
        }
        watch.last_ok = status.last_ok.or(watch.last_ok);
        if !status.connected {
            watch.healthy_at = None;
        } else if self.health.is_healthy() || status.failures == 0 {
            // Never failed: the feed works from the position taken before the mount served
            // anything, so nothing was missed and long TTLs are right from the first answer.
            if !self.health.is_healthy() {
                log::debug!("event stream connected");
            }
            self.health.mark_healthy(status.last_ok);
        } else if watch.healthy_at.is_none() {
            watch.healthy_at = Some(tokio::time::Instant::now() + self.opts.settle);
        }
    }

    /// The feed has worked for `settle` without failing.
    pub(super) async fn recovered(&mut self, watch: &mut Watch) {
        watch.healthy_at = None;
        let outage = watch.outage_since.take().map(|t| t.elapsed());
        self.health.mark_healthy(watch.last_ok);
        match outage {
            None => log::debug!("event stream connected"),
            Some(d) => {
                log::info!("event stream back after {d:?}");
                if d >= self.opts.revalidate_after {
                    self.revalidate("the event stream was down", RevalidateScope::Memory)
                        .await;
                }
            }
        }
    }

    /// Notes for the metadata store how far the table is current: the stream's position,
    /// once no event taken from it waits for one of our own changes (a position past a
    /// held-back event would lose it if the mount stopped before applying it).
    fn note_position(&self, stream: &mut box_client::events::EventStream) {
        if !self.held_back.is_empty() {
            return;
        }
        if let Some(position) = stream.position() {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            table.note_stream_position(&position);
        }
    }

    /// Applies `ev`, or holds it back while one of our own changes to its item is in flight.
    async fn take_event(&mut self, ev: Event) {
        if !self.held_back.is_empty() {
            self.apply_released().await;
        }
        let held = self
            .opts
            .own_changes
            .as_ref()
            .is_some_and(|own| ev.source_item().is_some_and(|item| own.holds(&item)));
        // An event about an item with held-back events waits behind them: keep their order.
        if held || self.held_back.iter().any(|h| h.item_id() == ev.item_id()) {
            log::trace!(
                "{} of {:?} waits for our own change",
                ev.event_type,
                ev.item_id()
            );
            self.held_back.push_back(ev);
        } else {
            self.handle_event(&ev).await;
        }
    }

    /// Applies the held-back events whose changes are done, in order.
    async fn apply_released(&mut self) {
        let Some(own) = self.opts.own_changes.clone() else {
            return;
        };
        let mut still = std::collections::VecDeque::new();
        while let Some(ev) = self.held_back.pop_front() {
            let held = ev.source_item().is_some_and(|item| own.holds(&item))
                || still.iter().any(|h: &Event| h.item_id() == ev.item_id());
            if held {
                still.push_back(ev);
            } else {
                self.handle_event(&ev).await;
            }
        }
        self.held_back = still;
    }

    pub(super) async fn handle_event(&mut self, ev: &Event) {
        let fx = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(id) = ev.item_id() {
                table.journal_touched(id, ev.parent_id());
            }
            self.applier.apply_effects(&mut table, ev)
        };
        if !fx.kernel.is_empty() {
            log::debug!(
                "{} {:?}: {} invalidation(s)",
                ev.event_type,
                ev.item_id(),
                fx.kernel.len()
            );
        }
        let mut invs = fx.kernel;
        if fx.trash_changed {
            invs.push(Invalidation::Inode(TRASH_INO));
        }
        self.send(invs).await;
        if let (Some(cache), false) = (&self.cache, fx.superseded_content.is_empty()) {
            let cache = cache.clone();
            let ids = fx.superseded_content;
            let _ = tokio::task::spawn_blocking(move || {
                for id in &ids {
                    cache.invalidate_file(id);
                }
            })
            .await;
        }
    }

    async fn revalidate(&self, why: &str, scope: RevalidateScope) {
        let invs = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            revalidate_all(&mut table, scope)
        };
        log::info!(
            "{why}: revalidating every cache ({} kernel invalidations)",
            invs.len()
        );
        self.health.record_revalidation();
        self.send(invs).await;
    }

    /// Tells the kernel, from a blocking thread: a notification can wait on the kernel.
    async fn send(&self, invs: Vec<Invalidation>) {
        if invs.is_empty() {
            return;
        }
        self.health.record_invalidations(invs.len());
        let notify = self.notify.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for inv in &invs {
                notify.notify(inv);
            }
        })
        .await;
    }
}

/// Resolves when one of our own changes ends (never without [`OwnChanges`]).
pub(super) async fn released(own: &Option<Arc<OwnChanges>>) {
    match own {
        Some(own) => own.released.notified().await,
        None => std::future::pending().await,
    }
}

/// Starts following the user's events from `start_position` (the mount takes it with
/// `latest_stream_position` before serving). Abort the handle to stop.
pub fn spawn_follower(
    client: Arc<dyn BoxApi>,
    table: Arc<Mutex<InodeTable>>,
    cache: Option<Arc<ContentCache>>,
    notify: Arc<dyn KernelNotify>,
    health: Arc<StreamHealth>,
    start_position: String,
) -> JoinHandle<()> {
    EventFollower::with_options(
        client,
        table,
        cache,
        notify,
        health,
        FollowerOptions::default(),
    )
    .spawn(start_position)
}
