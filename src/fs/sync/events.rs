//! Keeping caches true while other clients change Box: the task that follows the user's event
//! stream and applies each event to the inode table, the content cache and (through
//! [`KernelNotify`]) the kernel's dentry, attribute and page caches.
//!
//! # Design note
//!
//! **Pure core, thin task.** [`EventApplier::apply`] turns one event into table changes and
//! the list of [`Invalidation`]s the kernel needs; it does no I/O, so every event type is
//! tested against a plain [`InodeTable`]. The task ([`EventFollower`]) reads the long-polling
//! feed ([`BoxApi::event_stream`]), locks the table only around `apply`, and sends the
//! invalidations afterwards, off the async workers: the kernel may hold a notification while
//! it waits for a request that this very process must answer.
//!
//! **What an event means here.** For user events about files and folders Box sends the item
//! as it is after the event (`source`: the standard representation, with `parent`,
//! `sequence_id` and `etag`), so the applier does not interpret most event types: it upserts
//! the item under its parent and compares the inode before and after. A new inode is a
//! creation (the parent's listing and the negative dentry are invalidated); a new parent or
//! name is a move or rename (both the old and the new dentry and both listings); changed
//! content (version, sha1, size, mtime) invalidates the file's pages; other attribute changes
//! only the attributes. A few types need their own rule:
//! - `ITEM_TRASH` (or any source whose `item_status` is `trashed`/`deleted`): the inode is
//!   detached. The trashed item's `parent` is still its old folder (Box and the emulator
//!   agree), so the removal goes by the item, never by the parent.
//! - Locks, shared links, collaborations, descriptions/tags (`ITEM_MODIFY`) and metadata
//!   instances change what extended attributes show, not what `stat` shows: the table's
//!   attributes are marked stale (so the next `getxattr` fetches) and the kernel is told to
//!   drop the attributes only, keeping the pages.
//! - Downloads, previews, comments and tasks change nothing we cache: ignored.
//!
//! **Out of view.** An item whose new parent is not in the table (moved out of the mounted
//! subtree, or into a folder never listed) is detached as if deleted; when it moves back it is
//! inserted again (the same inode if the kernel still holds it). An event about an item we do
//! not know under a parent we do not know is ignored: nobody has looked there.
//!
//! **Duplicates, order and echoes.** Box may repeat an event and deliver events out of
//! order. Repeats are dropped by `event_id` (a bounded set of recent ids). Each item's
//! `sequence_id` grows with every change; the table ignores an update whose `sequence_id` is
//! lower than the one it holds, and removals are checked the same way here. The mount
//! updates the table from Box's answers to its own requests, so the event that follows one of
//! our own changes carries the `sequence_id` and `etag` we already hold, under the parent and
//! name we already hold: such an echo changes nothing and tells the kernel nothing. The echo
//! can outrun the answer, so the mount registers each change in flight with [`OwnChanges`]
//! and events about that item (or, for a creation, that name) wait until the answer is
//! recorded. Box records one event per aspect of one request (a rename and a lock in one
//! `PUT`) with the same `sequence_id`, so a second event at a `sequence_id` this applier
//! itself applied is not an echo. Metadata changes do not move an item's `sequence_id` at all
//! (on Box as in the emulator), so they are never taken for echoes.
//!
//! **Health.** While the feed delivers, the filesystem may trust its caches for long
//! ([`StreamHealth::is_healthy`]); from the first failure until the feed has worked again for
//! a moment ([`FollowerOptions::settle`]) it should use short TTLs. The feed resumes from its
//! last position, so nothing is lost over a short outage; after a long one
//! ([`FollowerOptions::revalidate_after`]), or when Box says the position is older than the
//! events it keeps, [`revalidate_all`] marks every listing and attribute stale and tells the
//! kernel to drop what it holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::fs::backend::BoxApi;
use crate::fs::read::content_cache::ContentCache;
pub use crate::fs::sync::kernel::{Invalidation, KernelNotify};
use crate::fs::tree::inode::{Attrs, Ino, InodeTable, ROOT_INO};
use box_client::events::{Event, EventStreamOptions, FeedStatus, RecentIds};
use box_client::types::Item;

// ---- health ------------------------------------------------------------------------

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
struct HealthTimes {
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

    fn record_event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.times().last_event = Some(Instant::now());
    }

    fn record_error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.times().last_error = Some((Instant::now(), message));
    }

    /// The feed ended; the follower starts it again after a pause.
    fn mark_ended(&self) {
        self.mark_unhealthy();
        self.times().ended = true;
    }

    /// Every cache was revalidated (after an outage, or on request).
    pub fn record_revalidation(&self) {
        self.revalidations.fetch_add(1, Ordering::Relaxed);
    }

    fn record_invalidations(&self, n: usize) {
        self.invalidations.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn times(&self) -> MutexGuard<'_, HealthTimes> {
        self.times.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ---- applying one event ----------------------------------------------------------------

/// What one event did beyond the table: what the kernel must drop, and which files' cached
/// content belongs to a superseded version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    pub kernel: Vec<Invalidation>,
    /// Box ids of files that have a new current version.
    pub superseded_content: Vec<Box<str>>,
}

impl Effects {
    fn push(&mut self, inv: Invalidation) {
        if !self.kernel.contains(&inv) {
            self.kernel.push(inv);
        }
    }

    /// `parent/name` appeared or disappeared: the dentry and the parent's listing.
    fn entry_changed(&mut self, parent: Ino, name: &str) {
        self.push(Invalidation::Entry {
            parent,
            name: name.into(),
        });
        self.push(Invalidation::Inode(parent));
    }
}

/// How an event type is handled (see the module note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Changes nothing we cache.
    Ignore,
    /// The item went to the trash.
    Remove,
    /// Changes extended attributes (lock, shared link, metadata, ...), maybe `stat` too.
    Xattrs { never_echo: bool },
    /// Anything else about an item: compare before and after.
    Upsert,
}

fn rule_of(event_type: &str) -> Rule {
    match event_type {
        "ITEM_TRASH" => Rule::Remove,
        "ITEM_DOWNLOAD" | "ITEM_PREVIEW" => Rule::Ignore,
        t if t.starts_with("COMMENT_") || t.starts_with("TASK_") => Rule::Ignore,
        // Box keeps an item's sequence_id and etag when its metadata changes.
        t if t.starts_with("METADATA_INSTANCE_") => Rule::Xattrs { never_echo: true },
        "LOCK_CREATE"
        | "LOCK_DESTROY"
        | "ITEM_SHARED_CREATE"
        | "ITEM_SHARED_UPDATE"
        | "ITEM_SHARED_UNSHARE"
        | "ITEM_MODIFY"
        | "TAG_ITEM_CREATE"
        | "ITEM_SYNC"
        | "ITEM_UNSYNC" => Rule::Xattrs { never_echo: false },
        t if t.starts_with("COLLAB_") => Rule::Xattrs { never_echo: false },
        _ => Rule::Upsert,
    }
}

fn parse_seq(item: &Item) -> Option<u64> {
    item.sequence_id.as_deref().and_then(|s| s.parse().ok())
}

/// Whether an event about `item` is older than what the table holds.
fn is_stale(held: &Attrs, item: &Item) -> bool {
    matches!((held.sequence_id, parse_seq(item)), (Some(h), Some(e)) if e < h)
}

/// An inode's place and attributes, to compare before and after an update.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    parent: Option<Ino>,
    name: Box<str>,
    attrs: Attrs,
    is_dir: bool,
}

fn snapshot(table: &InodeTable, ino: Ino) -> Option<Snapshot> {
    table.get(ino).map(|i| Snapshot {
        parent: i.parent(),
        name: i.name().into(),
        attrs: Attrs {
            // Moved by reads, not by Box.
            atime: None,
            ..i.attrs().clone()
        },
        is_dir: i.is_dir(),
    })
}

/// Applies events to the inode table: drops repeats, ignores stale events and echoes of
/// our own changes, and says what the kernel must forget. Pure: no I/O.
#[derive(Debug)]
pub struct EventApplier {
    seen: RecentIds,
    /// `"<box id>@<sequence_id>"` of the changes applied recently: a second event of the same
    /// change is not an echo.
    applied: RecentIds,
}

impl Default for EventApplier {
    fn default() -> Self {
        EventApplier::new(DEFAULT_DEDUP_CAPACITY)
    }
}

/// Event ids remembered to drop repeats (the SDKs keep about a thousand).
pub const DEFAULT_DEDUP_CAPACITY: usize = 4096;

impl EventApplier {
    /// An applier that remembers the last `dedup_capacity` event ids.
    pub fn new(dedup_capacity: usize) -> EventApplier {
        EventApplier {
            seen: RecentIds::new(dedup_capacity),
            applied: RecentIds::new(dedup_capacity),
        }
    }

    /// Applies `ev` to `table`; returns what the kernel must be told.
    pub fn apply(&mut self, table: &mut InodeTable, ev: &Event) -> Vec<Invalidation> {
        self.apply_effects(table, ev).kernel
    }

    /// Like [`EventApplier::apply`], and also names the files whose cached content is
    /// superseded.
    pub fn apply_effects(&mut self, table: &mut InodeTable, ev: &Event) -> Effects {
        let mut fx = Effects::default();
        if !self.seen.insert(&ev.event_id) {
            log::trace!("event {} again: dropped", ev.event_id);
            return fx;
        }
        let rule = rule_of(&ev.event_type);
        if rule == Rule::Ignore {
            return fx;
        }
        // A null source (a locked file deleted), a user, a web link: nothing in the tree.
        let Some(item) = ev.source_item().filter(|i| i.is_file() || i.is_folder()) else {
            return fx;
        };
        if item.id.is_empty() {
            return fx;
        }
        let trashed = rule == Rule::Remove
            || matches!(item.item_status.as_deref(), Some("trashed" | "deleted"));
        let Some(ino) = table.by_box_id(&item.id) else {
            if !trashed {
                if let Some(parent) = known_parent(table, &item) {
                    self.upsert(table, parent, None, &item, &mut fx);
                }
            }
            return fx;
        };
        let Some(before) = snapshot(table, ino) else {
            return fx;
        };
        if trashed {
            if is_stale(&before.attrs, &item) {
                log::debug!("stale {} of {} ignored", ev.event_type, item.id);
            } else {
                detach(table, ino, &mut fx);
            }
            return fx;
        }
        if ino == ROOT_INO {
            // The mount root itself (renamed or moved elsewhere): attributes only.
            if table.insert_or_update_from_item(ROOT_INO, &item).is_ok()
                && snapshot(table, ROOT_INO).map(|s| s.attrs) != Some(before.attrs)
            {
                fx.push(Invalidation::Attrs(ROOT_INO));
            }
            return fx;
        }
        let parent = match item.parent.as_ref() {
            Some(p) => table.by_box_id(&p.id).filter(|&p| is_dir(table, p)),
            // No parent given (never for user events, but cheap to survive): where it is.
            None => before.parent,
        };
        let same_change = self.applied_change(&item);
        let echo = is_echo(&before, &item, parent)
            && match rule {
                Rule::Xattrs { never_echo } => !never_echo && !same_change,
                _ => true,
            };
        if echo {
            log::trace!(
                "{} of {}: our own change, nothing to do",
                ev.event_type,
                item.id
            );
            return fx;
        }
        match parent {
            Some(parent) => self.upsert(table, parent, Some(ino), &item, &mut fx),
            None => {
                if is_stale(&before.attrs, &item) {
                    return fx;
                }
                // Moved out of the mounted subtree, or into a folder nobody listed.
                detach(table, ino, &mut fx);
                return fx;
            }
        }
        if let Rule::Xattrs { .. } = rule {
            if !is_stale(&before.attrs, &item) && table.get(ino).is_some() {
                table.invalidate_attrs(ino);
                if !fx.kernel.contains(&Invalidation::Inode(ino)) {
                    fx.push(Invalidation::Attrs(ino));
                }
            }
        }
        fx
    }

    /// Inserts or updates `item` under `parent`, and records what changed.
    fn upsert(
        &mut self,
        table: &mut InodeTable,
        parent: Ino,
        ino: Option<Ino>,
        item: &Item,
        fx: &mut Effects,
    ) {
        let before = ino.and_then(|i| snapshot(table, i));
        // Whoever holds the name (ignoring case) is replaced if the update goes through.
        let holder = table
            .lookup_child(parent, &item.name)
            .filter(|&h| Some(h) != ino)
            .and_then(|h| table.get(h).map(|i| (h, Box::<str>::from(i.name()))));
        let new_ino = match table.insert_or_update_from_item(parent, item) {
            Ok(i) => i,
            Err(e) => {
                // A move that cannot be right as things stand (under itself: events of
                // several items out of order): forget where it is, a listing will tell.
                // A name Linux cannot show leaves the item out of the mount.
                if matches!(e, crate::fs::tree::inode::InodeError::UnusableName(_)) {
                    log::warn!("leaving out Box item {}: {e}", item.id);
                } else {
                    log::debug!("event about {} not applied ({e}); detaching it", item.id);
                }
                if let Some(ino) = ino {
                    detach(table, ino, fx);
                }
                return;
            }
        };
        let Some(after) = snapshot(table, new_ino) else {
            return;
        };
        if let Some((h, name)) = holder {
            if table.lookup_child(parent, &name) != Some(h) {
                fx.push(Invalidation::Delete {
                    parent,
                    child: h,
                    name,
                });
            }
        }
        let Some(before) = before else {
            fx.entry_changed(parent, &after.name);
            self.remember(item);
            return;
        };
        if before == after {
            return;
        }
        self.remember(item);
        if before.parent != after.parent || before.name != after.name {
            if let Some(old_parent) = before.parent {
                fx.entry_changed(old_parent, &before.name);
            }
            if let Some(new_parent) = after.parent {
                fx.entry_changed(new_parent, &after.name);
            }
        }
        if before.attrs != after.attrs {
            let a = &after.attrs;
            let b = &before.attrs;
            let content_changed = a.version != b.version
                || a.sha1 != b.sha1
                || a.size != b.size
                || a.mtime != b.mtime;
            if content_changed && !after.is_dir {
                fx.push(Invalidation::Inode(new_ino));
                if a.version != b.version || a.sha1 != b.sha1 {
                    fx.superseded_content.push(item.id.as_str().into());
                }
            } else {
                fx.push(Invalidation::Attrs(new_ino));
            }
        }
    }

    fn remember(&mut self, item: &Item) {
        if let Some(seq) = parse_seq(item) {
            self.applied.insert(&format!("{}@{seq}", item.id));
        }
    }

    /// Whether this applier applied a change of `item` at the event's `sequence_id`.
    fn applied_change(&self, item: &Item) -> bool {
        parse_seq(item).is_some_and(|seq| self.applied.contains(&format!("{}@{seq}", item.id)))
    }
}

/// The table's directory inode for `item.parent`, if it has one.
fn known_parent(table: &InodeTable, item: &Item) -> Option<Ino> {
    let parent = table.by_box_id(&item.parent.as_ref()?.id)?;
    is_dir(table, parent).then_some(parent)
}

fn is_dir(table: &InodeTable, ino: Ino) -> bool {
    table.get(ino).is_some_and(|i| i.is_dir())
}

/// The event carries what we hold: same `sequence_id` and `etag`, same place.
fn is_echo(held: &Snapshot, item: &Item, parent: Option<Ino>) -> bool {
    let same_seq = matches!(
        (held.attrs.sequence_id, parse_seq(item)),
        (Some(h), Some(e)) if h == e
    );
    let same_etag = match (&held.attrs.etag, &item.etag) {
        (Some(h), Some(e)) => **h == **e,
        _ => true,
    };
    let same_place = parent.is_some()
        && held.parent == parent
        && (item.name.is_empty() || *held.name == *item.name);
    same_seq && same_etag && same_place
}

/// Detaches `ino` (trashed, or moved out of view) and says which dentry went away.
fn detach(table: &mut InodeTable, ino: Ino, fx: &mut Effects) {
    match table.remove(ino) {
        Ok(Some(d)) => {
            fx.push(Invalidation::Delete {
                parent: d.parent,
                child: d.ino,
                name: d.name,
            });
            fx.push(Invalidation::Inode(d.parent));
        }
        // Already detached (our own delete, or a repeat): the kernel knows.
        Ok(None) => {}
        Err(e) => log::debug!("cannot detach inode {ino}: {e}"),
    }
}

/// After an outage too long to trust, or a gap in the stream: every attribute and listing in
/// the table becomes stale, and the kernel drops every dentry and inode it holds from us.
/// Inodes the kernel does not reference have nothing in its caches; negative dentries cannot
/// be named, so they last until their (short, while unhealthy) TTL ends.
pub fn revalidate_all(table: &mut InodeTable) -> Vec<Invalidation> {
    let mut entries: Vec<(Ino, Box<str>)> = Vec::new();
    let mut held: Vec<Ino> = Vec::new();
    let all: Vec<Ino> = table.iter().map(|(ino, _)| ino).collect();
    for ino in all {
        table.invalidate_attrs(ino);
        table.invalidate_listing(ino);
        let Some(inode) = table.get(ino) else {
            continue;
        };
        if ino == ROOT_INO || inode.lookups() > 0 {
            held.push(ino);
            if let Some(parent) = inode.parent() {
                entries.push((parent, inode.name().into()));
            }
        }
    }
    entries.sort();
    held.sort_unstable();
    entries
        .into_iter()
        .map(|(parent, name)| Invalidation::Entry { parent, name })
        .chain(held.into_iter().map(Invalidation::Inode))
        .collect()
}

// ---- our own changes in flight -------------------------------------------------------

/// The mount's own changes that Box has not answered yet (or whose answer is not in the
/// table yet). The echo of a change can arrive before the answer is recorded; an event about
/// an item (or, for creations, a name) listed here waits until the change is done, and is
/// then applied as usual: by then the table holds what the echo carries, and it tells the
/// kernel nothing.
///
/// The mount takes a guard before it sends the request and drops it after recording Box's
/// answer (or the failure). Events about other items are not held up.
#[derive(Debug, Default)]
pub struct OwnChanges {
    busy: Mutex<std::collections::HashMap<Box<str>, usize>>,
    released: tokio::sync::Notify,
}

/// One change in flight; dropping it ends it.
#[derive(Debug)]
#[must_use = "the change ends when the guard is dropped"]
pub struct OwnChange {
    changes: Arc<OwnChanges>,
    key: Box<str>,
}

impl OwnChanges {
    pub fn new() -> Arc<OwnChanges> {
        Arc::new(OwnChanges::default())
    }

    /// A change of the existing item `box_id` (rename, move, new version, trash, lock, ...).
    pub fn item(self: &Arc<Self>, box_id: &str) -> OwnChange {
        self.begin(item_key(box_id))
    }

    /// A creation of `name` in the folder `parent_id` (file, folder, copy): the new item's
    /// id is not known until Box answers.
    pub fn name(self: &Arc<Self>, parent_id: &str, name: &str) -> OwnChange {
        self.begin(name_key(parent_id, name))
    }

    fn begin(self: &Arc<Self>, key: Box<str>) -> OwnChange {
        *self.lock().entry(key.clone()).or_insert(0) += 1;
        OwnChange {
            changes: self.clone(),
            key,
        }
    }

    /// Whether an event about `item` must wait for one of our changes.
    fn holds(&self, item: &Item) -> bool {
        let busy = self.lock();
        if busy.is_empty() {
            return false;
        }
        busy.contains_key(&item_key(&item.id))
            || item
                .parent
                .as_ref()
                .is_some_and(|p| busy.contains_key(&name_key(&p.id, &item.name)))
    }

    fn lock(&self) -> MutexGuard<'_, std::collections::HashMap<Box<str>, usize>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for OwnChange {
    fn drop(&mut self) {
        let mut busy = self.changes.lock();
        if let Some(n) = busy.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.key);
            }
        }
        drop(busy);
        // One waiter (the follower); a permit is kept if it is busy right now.
        self.changes.released.notify_one();
    }
}

fn item_key(box_id: &str) -> Box<str> {
    format!("i/{box_id}").into()
}

fn name_key(parent_id: &str, name: &str) -> Box<str> {
    format!("n/{parent_id}/{}", name.to_lowercase()).into()
}

// ---- the task --------------------------------------------------------------------------

/// How the follower runs.
#[derive(Debug, Clone)]
pub struct FollowerOptions {
    /// The feed's settings (its `stream_position` is replaced by the follower's).
    pub stream: EventStreamOptions,
    /// Event ids remembered by the applier.
    pub dedup_capacity: usize,
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
                ..EventStreamOptions::default()
            },
            dedup_capacity: DEFAULT_DEDUP_CAPACITY,
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
    client: Arc<dyn BoxApi>,
    table: Arc<Mutex<InodeTable>>,
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
struct Watch {
    failures_seen: u64,
    out_of_date_seen: u64,
    /// Since when the stream has been down (as far as the follower noticed).
    outage_since: Option<Instant>,
    /// The feed works again; healthy at this moment unless it fails before.
    healthy_at: Option<tokio::time::Instant>,
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
            applier: EventApplier::new(opts.dedup_capacity),
            held_back: Default::default(),
            opts,
        }
    }

    /// Runs on the current tokio runtime until aborted.
    pub fn spawn(self, start_position: String) -> JoinHandle<()> {
        tokio::spawn(self.run(start_position))
    }

    /// Follows the stream from `start_position` (taken before the mount served anything)
    /// forever; a feed that ends is started again from where it stopped.
    pub async fn run(mut self, start_position: String) {
        let mut position = start_position;
        let mut restart_wait = self.opts.restart_min_backoff;
        let mut watch = Watch::default();
        let own = self.opts.own_changes.clone();
        loop {
            let mut stream = self.client.event_stream(EventStreamOptions {
                stream_position: Some(position.clone()),
                ..self.opts.stream.clone()
            });
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
                    }
                }
            }
            if let Some(p) = stream.position() {
                position = p;
            }
            drop(stream);
            log::warn!(
                "the event stream ended; starting it again in {:?}",
                restart_wait
            );
            self.health.mark_ended();
            watch.outage_since.get_or_insert_with(Instant::now);
            watch.healthy_at = None;
            tokio::time::sleep(restart_wait).await;
            restart_wait = (restart_wait * 2).min(self.opts.restart_max_backoff);
        }
    }

    /// Follows the feed's status.
    async fn on_status(&mut self, status: &FeedStatus, watch: &mut Watch) {
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
            self.revalidate("the stream position is out of date").await;
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
    async fn recovered(&mut self, watch: &mut Watch) {
        watch.healthy_at = None;
        let outage = watch.outage_since.take().map(|t| t.elapsed());
        self.health.mark_healthy(watch.last_ok);
        match outage {
            None => log::debug!("event stream connected"),
            Some(d) => {
                log::info!("event stream back after {d:?}");
                if d >= self.opts.revalidate_after {
                    self.revalidate("the event stream was down").await;
                }
            }
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

    async fn handle_event(&mut self, ev: &Event) {
        let fx = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
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
        self.send(fx.kernel).await;
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

    async fn revalidate(&self, why: &str) {
        let invs = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            revalidate_all(&mut table)
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
async fn released(own: &Option<Arc<OwnChanges>>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A file or folder as an event's `source` (or an API answer) shows it.
    fn source(kind: &str, id: &str, name: &str, parent: &str, seq: u64) -> Value {
        let mut v = json!({
            "type": kind, "id": id, "name": name, "sequence_id": seq.to_string(),
            "etag": seq.to_string(), "size": 10, "item_status": "active",
            "parent": {"type": "folder", "id": parent},
            "modified_at": "2024-05-01T10:00:00Z", "content_modified_at": "2024-04-01T10:00:00Z",
        });
        if kind == "file" {
            v["sha1"] = json!(format!("sha-{id}-1"));
            v["file_version"] = json!({"type": "file_version", "id": format!("v-{id}-1")});
        }
        v
    }
    fn file(id: &str, name: &str, parent: &str, seq: u64) -> Value {
        source("file", id, name, parent, seq)
    }
    fn folder(id: &str, name: &str, parent: &str, seq: u64) -> Value {
        source("folder", id, name, parent, seq)
    }
    fn item(v: &Value) -> Item {
        serde_json::from_value(v.clone()).unwrap()
    }
    fn event(event_id: &str, event_type: &str, source: Value) -> Event {
        Event {
            event_id: event_id.into(),
            event_type: event_type.into(),
            source,
            ..Event::default()
        }
    }
    fn entry(parent: Ino, name: &str) -> Invalidation {
        Invalidation::Entry {
            parent,
            name: name.into(),
        }
    }
    fn delete(parent: Ino, child: Ino, name: &str) -> Invalidation {
        Invalidation::Delete {
            parent,
            child,
            name: name.into(),
        }
    }
    fn sorted(mut v: Vec<Invalidation>) -> Vec<Invalidation> {
        v.sort_by_key(|i| format!("{i:?}"));
        v
    }

    /// Root ("0") holds folders `a` (id 10) and `b` (id 20); `a` holds `f.txt` (id 100).
    struct Fixture {
        t: InodeTable,
        ap: EventApplier,
        a: Ino,
        b: Ino,
        f: Ino,
    }

    fn fixture() -> Fixture {
        let mut t = InodeTable::default();
        t.replace_listing(
            ROOT_INO,
            &[
                item(&folder("10", "a", "0", 1)),
                item(&folder("20", "b", "0", 1)),
            ],
        )
        .unwrap();
        let a = t.by_box_id("10").unwrap();
        let b = t.by_box_id("20").unwrap();
        t.replace_listing(a, &[item(&file("100", "f.txt", "10", 1))])
            .unwrap();
        let f = t.by_box_id("100").unwrap();
        Fixture {
            t,
            ap: EventApplier::default(),
            a,
            b,
            f,
        }
    }

    impl Fixture {
        fn apply(&mut self, ev: &Event) -> Vec<Invalidation> {
            sorted(self.ap.apply(&mut self.t, ev))
        }
    }

    #[test]
    fn created_uploaded_and_copied_items_appear_in_known_parents() {
        let mut x = fixture();
        for (n, (ty, src)) in [
            ("ITEM_CREATE", folder("30", "new dir", "10", 1)),
            ("ITEM_UPLOAD", file("31", "up.bin", "10", 1)),
            ("ITEM_COPY", file("32", "f (copy).txt", "20", 1)),
        ]
        .into_iter()
        .enumerate()
        {
            let parent =
                x.t.by_box_id(src["parent"]["id"].as_str().unwrap())
                    .unwrap();
            let name = src["name"].as_str().unwrap().to_string();
            let invs = x.apply(&event(&format!("e{n}"), ty, src));
            let ino = x.t.lookup_child(parent, &name).expect("inserted");
            assert_eq!(x.t.get(ino).unwrap().parent(), Some(parent));
            assert_eq!(
                invs,
                sorted(vec![entry(parent, &name), Invalidation::Inode(parent)]),
                "{ty}"
            );
        }
        assert!(x.t.get(x.t.by_box_id("30").unwrap()).unwrap().is_dir());
        // A listing that was complete stays complete: the event made it true again.
        assert!(x.t.get(x.a).unwrap().listing_complete());
    }

    #[test]
    fn a_new_version_updates_attributes_and_drops_the_pages() {
        let mut x = fixture();
        let mut src = file("100", "f.txt", "10", 2);
        src["size"] = json!(99);
        src["sha1"] = json!("sha-100-2");
        src["file_version"] = json!({"type": "file_version", "id": "v-100-2"});
        src["content_modified_at"] = json!("2024-06-01T10:00:00Z");
        let fx =
            x.ap.apply_effects(&mut x.t, &event("e1", "ITEM_UPLOAD", src));
        assert_eq!(fx.kernel, vec![Invalidation::Inode(x.f)]);
        assert_eq!(fx.superseded_content, vec![Box::<str>::from("100")]);
        let attrs = x.t.get(x.f).unwrap().attrs().clone();
        assert_eq!(attrs.size, 99);
        assert_eq!(attrs.version.as_deref(), Some("v-100-2"));
        assert_eq!(attrs.sequence_id, Some(2));

        // An older version made current again is a content change too.
        let mut src = file("100", "f.txt", "10", 3);
        src["size"] = json!(10);
        let fx =
            x.ap.apply_effects(&mut x.t, &event("e2", "ITEM_MAKE_CURRENT_VERSION", src));
        assert_eq!(fx.kernel, vec![Invalidation::Inode(x.f)]);
        assert_eq!(
            x.t.get(x.f).unwrap().attrs().version.as_deref(),
            Some("v-100-1")
        );
    }

    #[test]
    fn renames_and_moves_relink_and_invalidate_both_places() {
        let mut x = fixture();
        let (a, b, f) = (x.a, x.b, x.f);
        let invs = x.apply(&event("e1", "ITEM_RENAME", file("100", "g.txt", "10", 2)));
        assert_eq!(x.t.lookup_child(a, "g.txt"), Some(f));
        assert_eq!(x.t.lookup_child(a, "f.txt"), None);
        assert_eq!(
            invs,
            sorted(vec![
                entry(a, "f.txt"),
                entry(a, "g.txt"),
                Invalidation::Inode(a),
                Invalidation::Attrs(f),
            ])
        );

        let invs = x.apply(&event("e2", "ITEM_MOVE", file("100", "g.txt", "20", 3)));
        assert_eq!(x.t.lookup_child(b, "g.txt"), Some(f));
        assert!(x.t.children(a).is_empty());
        assert_eq!(
            invs,
            sorted(vec![
                entry(a, "g.txt"),
                entry(b, "g.txt"),
                Invalidation::Inode(a),
                Invalidation::Inode(b),
                Invalidation::Attrs(f),
            ])
        );

        // A folder moves with its subtree.
        let invs = x.apply(&event("e3", "ITEM_MOVE", folder("20", "b", "10", 2)));
        assert_eq!(x.t.lookup_child(a, "b"), Some(b));
        assert_eq!(x.t.lookup_child(b, "g.txt"), Some(f));
        assert!(invs.contains(&entry(ROOT_INO, "b")) && invs.contains(&entry(a, "b")));
    }

    #[test]
    fn moved_out_of_view_is_detached_and_comes_back() {
        let mut x = fixture();
        let (a, f) = (x.a, x.f);
        // Into a folder the table never saw (outside the mount, or never listed).
        let invs = x.apply(&event("e1", "ITEM_MOVE", file("100", "f.txt", "999", 2)));
        assert_eq!(
            invs,
            sorted(vec![delete(a, f, "f.txt"), Invalidation::Inode(a)])
        );
        assert_eq!(x.t.by_box_id("100"), None, "unreferenced: dropped");
        // Events about it out there are ignored.
        assert!(x
            .apply(&event("e2", "ITEM_RENAME", file("100", "h.txt", "999", 3)))
            .is_empty());
        assert_eq!(x.t.by_box_id("100"), None);
        // Back into view: a new inode.
        let invs = x.apply(&event("e3", "ITEM_MOVE", file("100", "h.txt", "10", 4)));
        let back = x.t.lookup_child(a, "h.txt").unwrap();
        assert_eq!(
            invs,
            sorted(vec![entry(a, "h.txt"), Invalidation::Inode(a)])
        );

        // While the kernel holds it, it keeps its inode out there and back.
        x.t.add_lookup(back);
        x.apply(&event("e4", "ITEM_MOVE", file("100", "h.txt", "999", 5)));
        assert_eq!(x.t.get(back).unwrap().parent(), None);
        assert_eq!(x.t.lookup_child(a, "h.txt"), None);
        let invs = x.apply(&event("e5", "ITEM_MOVE", file("100", "h.txt", "20", 6)));
        assert_eq!(x.t.lookup_child(x.b, "h.txt"), Some(back));
        assert!(invs.contains(&entry(x.b, "h.txt")));
    }

    #[test]
    fn trash_removes_and_undelete_restores() {
        let mut x = fixture();
        let (a, f) = (x.a, x.f);
        x.t.add_lookup(f);
        // Box's trashed source still names the old parent; the removal goes by the item.
        let mut src = file("100", "f.txt", "10", 2);
        src["item_status"] = json!("trashed");
        let invs = x.apply(&event("e1", "ITEM_TRASH", src));
        assert_eq!(
            invs,
            sorted(vec![delete(a, f, "f.txt"), Invalidation::Inode(a)])
        );
        assert_eq!(x.t.lookup_child(a, "f.txt"), None);
        assert_eq!(x.t.by_box_id("100"), Some(f), "still referenced");
        // The same trash again (a repeat with another id): nothing more to say.
        let mut src = file("100", "f.txt", "10", 2);
        src["item_status"] = json!("trashed");
        assert!(x.apply(&event("e1b", "ITEM_TRASH", src)).is_empty());

        let invs = x.apply(&event(
            "e2",
            "ITEM_UNDELETE_VIA_TRASH",
            file("100", "f.txt", "10", 3),
        ));
        assert_eq!(x.t.lookup_child(a, "f.txt"), Some(f), "same inode back");
        assert!(invs.contains(&entry(a, "f.txt")) && invs.contains(&Invalidation::Inode(a)));

        // A folder goes with its subtree; unknown items in the trash are nobody's business.
        let mut src = folder("10", "a", "0", 2);
        src["item_status"] = json!("trashed");
        let invs = x.apply(&event("e3", "ITEM_TRASH", src));
        assert_eq!(
            invs,
            sorted(vec![
                delete(ROOT_INO, a, "a"),
                Invalidation::Inode(ROOT_INO)
            ])
        );
        let mut src = file("555", "x", "10", 2);
        src["item_status"] = json!("trashed");
        assert!(x.apply(&event("e4", "ITEM_TRASH", src)).is_empty());
    }

    #[test]
    fn lock_shared_link_and_metadata_refresh_attributes() {
        let mut x = fixture();
        let f = x.f;
        for (n, ty) in [
            "LOCK_CREATE",
            "ITEM_SHARED_CREATE",
            "COLLAB_ADD_COLLABORATOR",
        ]
        .into_iter()
        .enumerate()
        {
            let seq = n as u64 + 2;
            let invs = x.apply(&event(
                &format!("e{n}"),
                ty,
                file("100", "f.txt", "10", seq),
            ));
            assert_eq!(invs, vec![Invalidation::Attrs(f)], "{ty}");
            assert_eq!(x.t.get(f).unwrap().attrs_fetched(), None, "{ty}");
            assert_eq!(x.t.get(f).unwrap().attrs().sequence_id, Some(seq));
        }
        // Metadata leaves sequence_id and etag alone: always refreshed.
        let invs = x.apply(&event(
            "m1",
            "METADATA_INSTANCE_CREATE",
            file("100", "f.txt", "10", 4),
        ));
        assert_eq!(invs, vec![Invalidation::Attrs(f)]);
        assert_eq!(x.t.get(f).unwrap().attrs_fetched(), None);
        // An old lock event after a newer change: stale, ignored.
        assert!(x
            .apply(&event("e9", "LOCK_DESTROY", file("100", "f.txt", "10", 3)))
            .is_empty());
    }

    #[test]
    fn one_request_two_events_is_not_an_echo() {
        // Another client renamed and locked in one PUT: two events, one sequence_id.
        let mut x = fixture();
        let (a, f) = (x.a, x.f);
        let src = file("100", "g.txt", "10", 2);
        let invs = x.apply(&event("e1", "ITEM_RENAME", src.clone()));
        assert!(invs.contains(&entry(a, "g.txt")));
        let invs = x.apply(&event("e2", "LOCK_CREATE", src));
        assert_eq!(invs, vec![Invalidation::Attrs(f)]);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut x = fixture();
        let ev = event("same", "ITEM_CREATE", folder("30", "n", "0", 1));
        assert_eq!(x.apply(&ev).len(), 2);
        let n30 = x.t.by_box_id("30").unwrap();
        // The folder is removed meanwhile; a repeat of the creation must not bring it back.
        let mut gone = folder("30", "n", "0", 2);
        gone["item_status"] = json!("trashed");
        x.apply(&event("trash", "ITEM_TRASH", gone));
        assert!(x.t.get(n30).is_none());
        assert!(x.apply(&ev).is_empty());
        assert_eq!(x.t.by_box_id("30"), None);
    }

    #[test]
    fn stale_sequence_ids_change_nothing() {
        let mut x = fixture();
        let (a, f) = (x.a, x.f);
        x.apply(&event("e1", "ITEM_RENAME", file("100", "new.txt", "10", 5)));
        let held = x.t.get(f).unwrap().attrs().clone();
        // Late events from before: a rename, a move, an upload, a trash.
        let mut upload = file("100", "f.txt", "10", 3);
        upload["size"] = json!(1);
        let mut trash = file("100", "f.txt", "10", 4);
        trash["item_status"] = json!("trashed");
        for (n, (ty, src)) in [
            ("ITEM_RENAME", file("100", "old.txt", "10", 2)),
            ("ITEM_MOVE", file("100", "new.txt", "20", 4)),
            ("ITEM_MOVE", file("100", "new.txt", "999", 4)),
            ("ITEM_UPLOAD", upload),
            ("ITEM_TRASH", trash),
        ]
        .into_iter()
        .enumerate()
        {
            assert!(
                x.apply(&event(&format!("s{n}"), ty, src)).is_empty(),
                "{ty}"
            );
            assert_eq!(x.t.lookup_child(a, "new.txt"), Some(f), "{ty}");
            assert_eq!(x.t.get(f).unwrap().attrs(), &held, "{ty}");
        }
    }

    #[test]
    fn echoes_of_our_own_changes_invalidate_nothing() {
        let mut x = fixture();
        let (a, b, f) = (x.a, x.b, x.f);
        // The mount renamed the file and recorded Box's answer; the event follows.
        let answer = file("100", "mine.txt", "10", 2);
        x.t.rename(f, a, "mine.txt").unwrap();
        x.t.insert_or_update_from_item(a, &item(&answer)).unwrap();
        assert!(x.apply(&event("e1", "ITEM_RENAME", answer)).is_empty());
        // Moved, then a new version uploaded, by us.
        let moved = file("100", "mine.txt", "20", 3);
        x.t.insert_or_update_from_item(b, &item(&moved)).unwrap();
        assert!(x.apply(&event("e2", "ITEM_MOVE", moved)).is_empty());
        let mut uploaded = file("100", "mine.txt", "20", 4);
        uploaded["file_version"] = json!({"type": "file_version", "id": "v-100-2"});
        x.t.insert_or_update_from_item(b, &item(&uploaded)).unwrap();
        let fx =
            x.ap.apply_effects(&mut x.t, &event("e3", "ITEM_UPLOAD", uploaded));
        assert_eq!(fx, Effects::default());
        // Created by us; locked by us (the lock moves sequence_id).
        let created = folder("40", "made", "10", 1);
        x.t.insert_or_update_from_item(a, &item(&created)).unwrap();
        assert!(x.apply(&event("e4", "ITEM_CREATE", created)).is_empty());
        let locked = file("100", "mine.txt", "20", 5);
        x.t.insert_or_update_from_item(b, &item(&locked)).unwrap();
        assert!(x.apply(&event("e5", "LOCK_CREATE", locked)).is_empty());
        // Deleted by us (the table dropped it): the trash event finds nothing.
        let n40 = x.t.by_box_id("40").unwrap();
        x.t.remove(n40).unwrap();
        let mut trashed = folder("40", "made", "10", 2);
        trashed["item_status"] = json!("trashed");
        assert!(x.apply(&event("e6", "ITEM_TRASH", trashed)).is_empty());
        assert_eq!(x.t.get(f).unwrap().attrs().sequence_id, Some(5));
        assert!(x.t.get(f).unwrap().attrs_fetched().is_some());
    }

    /// A file the mount created and deleted at once (an editor's or a database's journal):
    /// the event of its creation arrives after the delete, and must not bring it back.
    #[test]
    fn the_late_event_of_an_item_we_deleted_does_not_bring_it_back() {
        let mut x = fixture();
        let a = x.a;
        let created = file("55", "db-journal", "10", 0);
        let ino = x.t.insert_or_update_from_item(a, &item(&created)).unwrap();
        x.t.remove(ino).unwrap();
        assert!(x
            .apply(&event("j1", "ITEM_UPLOAD", created.clone()))
            .is_empty());
        assert_eq!(x.t.lookup_child(a, "db-journal"), None);
        assert_eq!(x.t.by_box_id("55"), None);
        // The same while the file is still open (its inode detached, not dropped), after a
        // second version: neither version's event brings it back.
        let journal = file("56", "db2-journal", "10", 0);
        let ino = x.t.insert_or_update_from_item(a, &item(&journal)).unwrap();
        x.t.add_lookup(ino);
        let second = file("56", "db2-journal", "10", 1);
        x.t.insert_or_update_from_item(a, &item(&second)).unwrap();
        x.t.remove(ino).unwrap();
        assert!(x.t.get(ino).is_some(), "still open");
        for (n, ev) in [journal, second].into_iter().enumerate() {
            assert!(x
                .apply(&event(&format!("k{n}"), "ITEM_UPLOAD", ev))
                .is_empty());
            assert_eq!(x.t.lookup_child(a, "db2-journal"), None);
        }
        // Restored from the trash elsewhere (a higher sequence_id): it is back.
        let restored = file("55", "db-journal", "10", 2);
        assert!(!x
            .apply(&event("j2", "ITEM_UNDELETE_VIA_TRASH", restored))
            .is_empty());
        assert!(x.t.lookup_child(a, "db-journal").is_some());
    }

    #[test]
    fn unknown_items_under_unknown_parents_are_ignored() {
        let mut x = fixture();
        let len = x.t.len();
        for (n, (ty, src)) in [
            ("ITEM_CREATE", folder("70", "x", "999", 1)),
            ("ITEM_UPLOAD", file("71", "y", "999", 1)),
            ("ITEM_MOVE", file("72", "z", "998", 3)),
            ("LOCK_CREATE", file("73", "w", "999", 2)),
        ]
        .into_iter()
        .enumerate()
        {
            assert!(
                x.apply(&event(&format!("u{n}"), ty, src)).is_empty(),
                "{ty}"
            );
        }
        assert_eq!(x.t.len(), len);
        // Neither are noise, null sources, users or web links.
        assert!(x
            .apply(&event("n1", "ITEM_DOWNLOAD", file("100", "f.txt", "10", 9)))
            .is_empty());
        assert_eq!(x.t.get(x.f).unwrap().attrs().sequence_id, Some(1));
        assert!(x
            .apply(&event("n2", "LOCK_DESTROY", Value::Null))
            .is_empty());
        assert!(x
            .apply(&event(
                "n3",
                "ITEM_CREATE",
                json!({"type": "user", "id": "5"})
            ))
            .is_empty());
        assert!(x
            .apply(&event(
                "n4",
                "ITEM_CREATE",
                source("web_link", "80", "l", "10", 1)
            ))
            .is_empty());
        assert_eq!(x.t.len(), len);
    }

    #[test]
    fn an_item_taking_a_held_name_replaces_the_holder() {
        let mut x = fixture();
        let (a, f) = (x.a, x.f);
        let invs = x.apply(&event("e1", "ITEM_UPLOAD", file("101", "F.TXT", "10", 1)));
        let new = x.t.lookup_child(a, "f.txt").unwrap();
        assert_ne!(new, f);
        assert_eq!(
            invs,
            sorted(vec![
                delete(a, f, "f.txt"),
                entry(a, "F.TXT"),
                Invalidation::Inode(a)
            ])
        );
    }

    #[test]
    fn a_move_that_cannot_be_right_detaches() {
        // Out of order across items: `a` reported under its own child.
        let mut x = fixture();
        let a = x.a;
        let c =
            x.t.insert_or_update_from_item(a, &item(&folder("11", "c", "10", 1)))
                .unwrap();
        let invs = x.apply(&event("e1", "ITEM_MOVE", folder("10", "a", "11", 2)));
        assert!(invs.contains(&delete(ROOT_INO, a, "a")));
        assert_eq!(x.t.lookup_child(ROOT_INO, "a"), None);
        assert!(x.t.get(c).is_none(), "the detached subtree is dropped");
    }

    #[test]
    fn the_mount_root_is_updated_in_place() {
        let mut t = InodeTable::new("10");
        let mut ap = EventApplier::default();
        let invs = ap.apply(
            &mut t,
            &event("e1", "ITEM_RENAME", folder("10", "x", "0", 5)),
        );
        assert_eq!(invs, vec![Invalidation::Attrs(ROOT_INO)]);
        assert_eq!(t.get(ROOT_INO).unwrap().name(), "");
        let mut src = folder("10", "x", "0", 6);
        src["item_status"] = json!("trashed");
        assert!(ap.apply(&mut t, &event("e2", "ITEM_TRASH", src)).is_empty());
        assert!(t.get(ROOT_INO).is_some());
    }

    #[test]
    fn revalidate_all_marks_everything_stale() {
        let mut x = fixture();
        let (a, f) = (x.a, x.f);
        x.t.add_lookup(a);
        x.t.add_lookup(f);
        let invs = revalidate_all(&mut x.t);
        assert_eq!(
            invs,
            vec![
                entry(ROOT_INO, "a"),
                entry(a, "f.txt"),
                Invalidation::Inode(ROOT_INO),
                Invalidation::Inode(a),
                Invalidation::Inode(f),
            ]
        );
        for (ino, inode) in x.t.iter() {
            assert_eq!(inode.attrs_fetched(), None, "{ino}");
            assert!(!inode.listing_complete(), "{ino}");
        }
    }

    #[test]
    fn health_flips_and_counts() {
        let h = StreamHealth::new();
        assert!(!h.is_healthy());
        assert_eq!(
            h.ttl(Duration::from_secs(60), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert!(h.mark_healthy(Some(Instant::now())));
        assert!(!h.mark_healthy(None));
        assert!(h.is_healthy() && h.last_ok().is_some() && h.lag().is_some());
        assert!(h.mark_unhealthy());
        assert!(!h.mark_unhealthy());
        assert_eq!(h.counters().outages, 1);
        assert!(h.changed_at().is_some());
    }

    #[test]
    fn health_says_reconnecting_or_failed_with_the_last_error() {
        let h = StreamHealth::new();
        assert_eq!(h.state(), StreamState::Reconnecting);
        h.record_error("connection refused".into());
        assert_eq!(
            h.last_error().map(|(_, m)| m).as_deref(),
            Some("connection refused")
        );
        h.mark_ended();
        assert_eq!(h.state(), StreamState::Failed);
        h.mark_healthy(Some(Instant::now()));
        assert_eq!(h.state(), StreamState::Healthy);
        assert_eq!(h.state().as_str(), "healthy");
        h.mark_unhealthy();
        assert_eq!(h.state(), StreamState::Reconnecting);
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Invalidation>>);

    impl KernelNotify for Recorder {
        fn notify(&self, inv: &Invalidation) {
            self.0.lock().unwrap().push(inv.clone());
        }
    }

    #[tokio::test]
    async fn follower_health_settles_and_gaps_revalidate() {
        // Never contacted: only the status logic runs.
        let client = box_client::Client::new(
            Arc::new(box_client::DeveloperToken::new("unused")),
            box_client::Endpoints::from_base("http://127.0.0.1:9").unwrap(),
        );
        let x = fixture();
        let kernel = Arc::new(Recorder::default());
        let health = Arc::new(StreamHealth::new());
        let mut f = EventFollower::with_options(
            Arc::new(client),
            Arc::new(Mutex::new(x.t)),
            None,
            kernel.clone(),
            health.clone(),
            FollowerOptions {
                revalidate_after: Duration::from_secs(3600),
                ..FollowerOptions::default()
            },
        );
        let mut w = Watch::default();
        let ok = |failures, out_of_date| FeedStatus {
            connected: true,
            failures,
            out_of_date,
            last_ok: Some(Instant::now()),
        };
        let failed = |failures| FeedStatus {
            connected: false,
            failures,
            ..FeedStatus::default()
        };

        // First contact without any failure: healthy at once, nothing to revalidate.
        f.on_status(&ok(0, 0), &mut w).await;
        assert!(health.is_healthy() && health.last_ok().is_some());
        assert!(w.healthy_at.is_none());

        // A failure; the feed works again but fails before settling: still unhealthy.
        f.on_status(&failed(1), &mut w).await;
        assert!(!health.is_healthy());
        f.on_status(&ok(1, 0), &mut w).await;
        let first = w.healthy_at.expect("settling");
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Failed and worked again between two looks: the settle time starts over.
        f.on_status(&ok(2, 0), &mut w).await;
        assert!(!health.is_healthy());
        assert!(w.healthy_at.expect("settling again") > first);
        f.on_status(&failed(3), &mut w).await;
        assert!(w.healthy_at.is_none());
        f.on_status(&ok(3, 0), &mut w).await;
        f.recovered(&mut w).await;
        assert!(health.is_healthy());
        assert_eq!(health.counters().outages, 1);
        // Short outage: the feed resumed from its position, nothing to revalidate.
        assert_eq!(health.counters().revalidations, 0);
        assert!(kernel.0.lock().unwrap().is_empty());

        // Box says the position is too old: revalidate at once.
        f.on_status(&ok(3, 1), &mut w).await;
        assert_eq!(health.counters().revalidations, 1);
        assert!(kernel
            .0
            .lock()
            .unwrap()
            .contains(&Invalidation::Inode(ROOT_INO)));
        assert!(health.is_healthy());
    }

    #[test]
    fn own_changes_hold_their_item_and_name_until_done() {
        let own = OwnChanges::new();
        let f = item(&file("100", "f.txt", "10", 2));
        let made = item(&folder("300", "New", "10", 1));
        assert!(!own.holds(&f) && !own.holds(&made));
        let a = own.item("100");
        let b = own.item("100");
        let c = own.name("10", "new");
        assert!(own.holds(&f));
        assert!(own.holds(&made), "names compare ignoring case");
        assert!(!own.holds(&item(&folder("301", "new", "20", 1))));
        drop(a);
        assert!(own.holds(&f), "two changes of one item");
        drop(b);
        drop(c);
        assert!(!own.holds(&f) && !own.holds(&made));
    }
}
