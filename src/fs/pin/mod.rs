//! Pinning, "available offline": items whose content the mount keeps on disk at all times.
//! [`Pins`] owns the pinned items (by Box id), the files kept for them and their progress;
//! the operations are [`BoxFs::set_offline`] (the `user.box.offline` attribute, which
//! `boxfs pin`/`boxfs unpin` set) and [`BoxFs::offline_state`].
//!
//! # Design note
//!
//! **What is pinned.** A pin is a Box item id and its kind. A pinned folder pins everything
//! below it, also what appears there later; an item is "offline" when it or an ancestor is
//! pinned. Pins are kept in the cache directory ([`store`]) with the ids of the files kept
//! for them, so that the content cache keeps those from the moment it opens
//! ([`ContentCache::open_keeping`](crate::fs::read::content_cache::ContentCache::open_keeping)),
//! before any walk. The content cache holds the chunks of a pinned file apart from its LRU:
//! never evicted, not counted against `--cache-size`. Pinning is refused with ENOSPC when the
//! item's size (Box reports a folder's whole subtree) is more than the cache's filesystem can
//! take: its free space less a margin ([`space`]) and less what pins still have to download.
//!
//! **The worker.** One background task ([`BoxFs::spawn_pin_worker`], at background priority)
//! walks each pinned item that needs it ([`walk`]: the filesystem's own listings, so the
//! metadata is cached too), marks its files pinned in the content cache, and downloads what
//! the cache lacks of their current versions ([`fetch`]), a few files at a time. It walks a
//! pinned item again when something below it changed: it hears the invalidations the kernel
//! queue carries (a name that appeared or went in a folder, from an event or a listing that
//! came back different; a file's changed content; a trashed item), every file the content
//! cache dropped (the event applier drops the content Box superseded; the new version is then
//! fetched) and our own uploads. A folder's own invalidation is not a reason to walk: a
//! listing of a tree larger than the metadata cache brings back evicted entries every time,
//! and says so. A walk that finds a file no
//! longer below any pin lets its content go back to the LRU; a pinned item Box no longer
//! has, or that left the mount, is unpinned. Failed walks and downloads are tried again by
//! the queue after [`RETRY_AFTER`], never by repeating a request.
//!
//! **Lock order.** The table before `Pins::state`, `Pins::state` before the content cache's
//! index; signals are queued without a lock of ours (the kernel queue calls in with its own).

mod fetch;
mod space;
pub mod store;
mod walk;
mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

pub use fetch::PinnedFile;
pub use space::{default_keep_free, space_at, Space};
pub use store::{PinFile, SavedPin, SavedPins, PINS_FILE};

use crate::fs::errno::FsError;
use crate::fs::kernel::{Invalidation, StaleCache};
use crate::fs::read::content_cache::{ContentCache, InvalidationListener};
use crate::fs::tree::inode::{Ino, InodeTable, Kind, ROOT_INO};
use crate::fs::{lock, BoxFs};
use crate::human::human_bytes;

/// How long a failed walk or download waits before the queue tries it again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// How many times a download that left an incomplete copy is tried before it counts as
/// failed (until the next change or retry).
const ATTEMPTS: u32 = 3;

/// How pinned content is fetched and how much disk it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinOptions {
    /// Files downloaded at once.
    pub parallel: usize,
    /// Bytes pinning leaves free on the cache's filesystem (default: [`default_keep_free`]).
    pub keep_free: Option<u64>,
}

impl Default for PinOptions {
    fn default() -> Self {
        PinOptions {
            parallel: 4,
            keep_free: None,
        }
    }
}

/// One pinned item as `boxfs status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedItem {
    pub box_id: String,
    pub kind: Kind,
    /// Below the mount's root (`""` for the root), when the tree holds it.
    pub path: Option<String>,
    /// Files below it and their bytes, as of its last walk.
    pub files: u64,
    pub bytes: u64,
    /// Whether it was walked since the mount started.
    pub walked: bool,
}

/// A file being downloaded for a pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinDownload {
    pub name: String,
    pub size: u64,
    pub done: u64,
}

/// The last pin refused for want of disk space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRefusal {
    pub path: String,
    pub needed: u64,
    pub available: u64,
    pub keep_free: u64,
}

/// The pins' figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinStatus {
    pub items: Vec<PinnedItem>,
    /// Files kept for the pins (each once), and of them those whose current version is
    /// wholly in the cache; the same in bytes.
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub downloading: Vec<PinDownload>,
    /// Files waiting for a download slot.
    pub waiting: u64,
    /// Walks and downloads that failed since the mount started, and the last one.
    pub failures: u64,
    pub last_failure: Option<String>,
    pub refused: Option<PinRefusal>,
}

/// Something the worker should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Signal {
    /// Walk this pinned item.
    Walk(String),
    /// A name in this folder changed (appeared, or now means another item).
    EntryChanged(Ino),
    /// This inode changed: for a file, its content may have.
    InodeChanged(Ino),
    /// `child` left `parent`.
    Removed { parent: Ino, child: Ino },
    /// The content cache dropped this file's content.
    ContentDropped(String),
}

#[derive(Debug)]
struct Root {
    kind: Kind,
    ino: Option<Ino>,
    walked: bool,
}

#[derive(Debug)]
struct Held {
    /// The pinned items it is below.
    roots: BTreeSet<String>,
    file: PinnedFile,
    /// The version in `file` is wholly in the cache.
    done: bool,
    /// Downloads of this version that left it incomplete.
    attempts: u32,
}

#[derive(Debug, Default)]
struct State {
    roots: BTreeMap<String, Root>,
    /// By file id.
    files: HashMap<String, Held>,
    /// Kept since the last run and not found below a pin yet: let go once every pin was
    /// walked.
    unclaimed: BTreeSet<String>,
    downloading: BTreeMap<String, (String, u64, Arc<AtomicU64>)>,
    waiting: u64,
    failures: u64,
    last_failure: Option<String>,
    refused: Option<PinRefusal>,
}

impl State {
    fn fail(&mut self, what: String) {
        log::warn!("offline: {what}");
        self.failures += 1;
        self.last_failure = Some(what);
    }

    /// Files no longer below `root`; those below no pin at all are returned (to be unpinned
    /// in the content cache) and forgotten.
    fn let_go(&mut self, root: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut released = Vec::new();
        self.files.retain(|id, held| {
            if held.roots.contains(root) && !keep(id) {
                held.roots.remove(root);
                if held.roots.is_empty() {
                    released.push(id.clone());
                    return false;
                }
            }
            true
        });
        released
    }

    /// Bytes pins still have to download.
    fn outstanding(&self) -> u64 {
        self.files
            .values()
            .filter(|h| !h.done)
            .map(|h| h.file.size)
            .sum()
    }
}

/// The pins of a mount (see the module note).
pub struct Pins {
    opts: PinOptions,
    state: Mutex<State>,
    signals: mpsc::UnboundedSender<Signal>,
    /// Taken by the worker.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Signal>>>,
    /// Where the pins are kept (none: in memory only).
    file: Mutex<Option<PinFile>>,
    /// One save at a time, each of the state as it is then.
    saving: tokio::sync::Mutex<()>,
    /// Anything pinned: until then invalidations are not even queued.
    active: AtomicBool,
}

impl std::fmt::Debug for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pins").finish_non_exhaustive()
    }
}

impl Pins {
    pub fn new(opts: PinOptions) -> Arc<Pins> {
        let (signals, receiver) = mpsc::unbounded_channel();
        Arc::new(Pins {
            opts,
            state: Mutex::default(),
            signals,
            receiver: Mutex::new(Some(receiver)),
            file: Mutex::default(),
            saving: tokio::sync::Mutex::new(()),
            active: AtomicBool::new(false),
        })
    }

    fn signal(&self, s: Signal) {
        let _ = self.signals.send(s);
    }

    /// Tells the worker of every file whose content the cache drops.
    fn content_listener(self: &Arc<Self>) -> InvalidationListener {
        let pins: Weak<Pins> = Arc::downgrade(self);
        Arc::new(move |file_id: &str| {
            if let Some(pins) = pins.upgrade() {
                if pins.active.load(Ordering::Relaxed) {
                    pins.signal(Signal::ContentDropped(file_id.to_string()));
                }
            }
        })
    }

    /// The pins as saved.
    fn snapshot(&self) -> SavedPins {
        let state = lock(&self.state);
        let mut held_files: Vec<String> = state
            .files
            .keys()
            .chain(state.unclaimed.iter())
            .cloned()
            .collect();
        held_files.sort();
        held_files.dedup();
        SavedPins {
            pins: state
                .roots
                .iter()
                .map(|(id, r)| SavedPin {
                    box_id: id.clone(),
                    kind: r.kind,
                })
                .collect(),
            held_files,
        }
    }

    /// Writes the pins file (if there is one) as things are now.
    async fn save(self: &Arc<Self>) -> std::io::Result<()> {
        let _one = self.saving.lock().await;
        let Some(file) = lock(&self.file).clone() else {
            return Ok(());
        };
        let saved = self.snapshot();
        tokio::task::spawn_blocking(move || file.save(&saved))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Saves, with a warning on failure (the pins in memory stay right).
    async fn save_or_warn(self: &Arc<Self>) {
        if let Err(e) = self.save().await {
            log::warn!("offline: cannot save the pins: {e}");
        }
    }

    fn update_active(&self, state: &State) {
        self.active
            .store(!state.roots.is_empty(), Ordering::Relaxed);
    }

    /// Whether `chain` (an inode's Box id and its ancestors') holds a pinned item.
    fn covers(&self, chain: &[String]) -> Option<String> {
        let state = lock(&self.state);
        chain
            .iter()
            .find(|id| state.roots.contains_key(*id))
            .cloned()
    }
}

/// Hears every invalidation on its way to the kernel: something may have changed below a pin.
impl StaleCache for Pins {
    fn invalidate(&self, inv: &Invalidation) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let signal = match inv {
            Invalidation::Entry { parent, .. } => Signal::EntryChanged(*parent),
            Invalidation::Inode(ino) => Signal::InodeChanged(*ino),
            Invalidation::Delete { parent, child, .. } => Signal::Removed {
                parent: *parent,
                child: *child,
            },
            // A lock or metadata: the content stays.
            Invalidation::Attrs(_) => return,
        };
        self.signal(signal);
    }
}

/// `ino`'s Box id and those of its ancestors, up to the mount's root.
fn chain_of(table: &InodeTable, ino: Ino) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = Some(ino);
    while let Some(i) = at {
        let Some(inode) = table.get(i) else {
            break;
        };
        out.push(inode.box_id().to_string());
        if i == ROOT_INO || out.len() > 4096 {
            break;
        }
        at = inode.parent();
    }
    out
}

/// `ino`'s path below the mount's root (`""` for the root), if it is in the tree.
fn path_of(table: &InodeTable, ino: Ino) -> Option<String> {
    let mut names = Vec::new();
    let mut at = ino;
    while at != ROOT_INO {
        let inode = table.get(at)?;
        names.push(inode.name().to_string());
        at = inode.parent()?;
        if names.len() > 4096 {
            return None;
        }
    }
    names.reverse();
    Some(names.join("/"))
}

impl BoxFs {
    /// Takes up the pins saved in `file` (the mount, before it serves) and keeps them there
    /// from now on. The worker walks each of them when it starts.
    pub fn restore_pins(&self, file: PinFile, saved: SavedPins) {
        *lock(&self.pins.file) = Some(file);
        let mut state = lock(&self.pins.state);
        for pin in saved.pins {
            state.roots.insert(
                pin.box_id,
                Root {
                    kind: pin.kind,
                    ino: None,
                    walked: false,
                },
            );
        }
        state.unclaimed.extend(saved.held_files);
        self.pins.update_active(&state);
    }

    /// Something at `ino` changed that no invalidation tells of (our own upload): the pins
    /// above it are walked again.
    pub(in crate::fs) fn pins_hear_of(&self, ino: Ino) {
        if self.pins.active.load(Ordering::Relaxed) {
            self.pins.signal(Signal::InodeChanged(ino));
        }
    }

    /// Whether `ino` is kept offline: it or an ancestor is pinned.
    pub fn offline_state(&self, ino: Ino) -> Result<bool, FsError> {
        let chain = {
            let table = lock(&self.table);
            if table.get(ino).is_none() {
                return Err(FsError::not_found(format!("no inode {ino}")));
            }
            chain_of(&table, ino)
        };
        Ok(self.pins.covers(&chain).is_some())
    }

    /// Pins (`on`) or unpins `ino`. Pinning something already offline changes nothing;
    /// pinning more than the disk can take is ENOSPC; unpinning what is offline only through
    /// a pinned folder is EPERM (unpin the folder); unpinning what is not pinned is fine.
    pub async fn set_offline(&self, ino: Ino, on: bool) -> Result<(), FsError> {
        let Some(cache) = self.content_cache().cloned() else {
            return Err(FsError::new(
                libc::EOPNOTSUPP,
                "this mount keeps no content cache, so nothing can be kept offline",
            ));
        };
        if on {
            self.pin(ino, &cache).await
        } else {
            self.unpin(ino, &cache).await
        }
    }

    async fn pin(&self, ino: Ino, cache: &Arc<ContentCache>) -> Result<(), FsError> {
        // Box's size now: a folder's is its whole subtree.
        self.getattr(ino).await?;
        let (box_id, kind, size, chain, path) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            if inode.is_local() {
                return Err(FsError::new(libc::EBUSY, "the file is not on Box yet"));
            }
            (
                inode.box_id().to_string(),
                inode.kind(),
                inode.attrs().size,
                chain_of(&table, ino),
                path_of(&table, ino).unwrap_or_default(),
            )
        };
        if self.pins.covers(&chain).is_some() {
            return Ok(());
        }
        let space = space_at(cache.dir(), self.pins.opts.keep_free).map_err(|e| {
            FsError::new(
                libc::EIO,
                format!("the content cache's disk ({}): {e}", cache.dir().display()),
            )
        })?;
        // Pins below this item already hold what they downloaded.
        let inside: Vec<Ino> = lock(&self.pins.state)
            .roots
            .values()
            .filter_map(|r| r.ino)
            .collect();
        let inside: BTreeSet<String> = {
            let table = lock(&self.table);
            inside
                .into_iter()
                .filter(|&r| chain_of(&table, r).contains(&box_id))
                .filter_map(|r| table.get(r).map(|i| i.box_id().to_string()))
                .collect()
        };
        let (held_inside, outstanding) = {
            let state = lock(&self.pins.state);
            let held: u64 = state
                .files
                .values()
                .filter(|h| h.done && h.roots.iter().any(|r| inside.contains(r)))
                .map(|h| h.file.size)
                .sum();
            (held, state.outstanding())
        };
        let needed = size.saturating_sub(held_inside);
        let available = space.usable().saturating_sub(outstanding);
        let shown = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        if needed > available {
            let refusal = PinRefusal {
                path: shown.clone(),
                needed,
                available,
                keep_free: space.keep_free,
            };
            lock(&self.pins.state).refused = Some(refusal);
            return Err(FsError::new(
                libc::ENOSPC,
                format!(
                    "pinning {shown} needs {}, and the cache's disk has {} available for it \
                     (keeping {} free)",
                    human_bytes(needed),
                    human_bytes(available),
                    human_bytes(space.keep_free)
                ),
            ));
        }
        {
            let mut state = lock(&self.pins.state);
            state.roots.insert(
                box_id.clone(),
                Root {
                    kind,
                    ino: Some(ino),
                    walked: false,
                },
            );
            self.pins.update_active(&state);
        }
        if let Err(e) = self.pins.save().await {
            let mut state = lock(&self.pins.state);
            state.roots.remove(&box_id);
            self.pins.update_active(&state);
            return Err(FsError::new(
                libc::EIO,
                format!("cannot save the pins: {e}"),
            ));
        }
        log::info!("offline: pinned {shown} (Box id {box_id})");
        self.pins.signal(Signal::Walk(box_id));
        Ok(())
    }

    async fn unpin(&self, ino: Ino, cache: &Arc<ContentCache>) -> Result<(), FsError> {
        let (box_id, chain) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            (inode.box_id().to_string(), chain_of(&table, ino))
        };
        let released = {
            let mut state = lock(&self.pins.state);
            if state.roots.remove(&box_id).is_none() {
                drop(state);
                return match self.pins.covers(&chain) {
                    None => Ok(()),
                    Some(_) => Err(FsError::new(
                        libc::EPERM,
                        "it is inside a pinned folder: unpin that folder",
                    )),
                };
            }
            self.pins.update_active(&state);
            state.let_go(&box_id, |_| false)
        };
        release(cache, released).await;
        self.pins.save_or_warn().await;
        log::info!("offline: unpinned {box_id}");
        Ok(())
    }

    /// The pins' figures (no network; the table's and the pins' locks briefly).
    pub fn pin_status(&self) -> PinStatus {
        let roots: Vec<(String, Kind, Option<Ino>, bool)> = lock(&self.pins.state)
            .roots
            .iter()
            .map(|(id, r)| (id.clone(), r.kind, r.ino, r.walked))
            .collect();
        let paths: Vec<Option<String>> = {
            let table = lock(&self.table);
            roots
                .iter()
                .map(|(id, _, ino, _)| {
                    ino.filter(|&i| table.get(i).is_some_and(|n| n.box_id() == id))
                        .and_then(|i| path_of(&table, i))
                })
                .collect()
        };
        let state = lock(&self.pins.state);
        let mut out = PinStatus {
            items: roots
                .into_iter()
                .zip(paths)
                .map(|((box_id, kind, _, walked), path)| {
                    let mine = state.files.values().filter(|h| h.roots.contains(&box_id));
                    let (files, bytes) = mine.fold((0, 0), |(n, b), h| (n + 1, b + h.file.size));
                    PinnedItem {
                        box_id,
                        kind,
                        path,
                        files,
                        bytes,
                        walked,
                    }
                })
                .collect(),
            downloading: state
                .downloading
                .values()
                .map(|(name, size, done)| PinDownload {
                    name: name.clone(),
                    size: *size,
                    done: done.load(Ordering::Relaxed),
                })
                .collect(),
            waiting: state.waiting,
            failures: state.failures,
            last_failure: state.last_failure.clone(),
            refused: state.refused.clone(),
            ..PinStatus::default()
        };
        for held in state.files.values() {
            out.files_total += 1;
            out.bytes_total += held.file.size;
            if held.done {
                out.files_done += 1;
                out.bytes_done += held.file.size;
            }
        }
        out
    }
}

/// Lets the content of `files` go back to the content cache's LRU (which may evict at once).
async fn release(cache: &Arc<ContentCache>, files: Vec<String>) {
    if files.is_empty() {
        return;
    }
    let cache = cache.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for id in &files {
            cache.unpin_file(id);
        }
    })
    .await;
}

/// Wires the pins into a new filesystem: they hear the kernel queue and the content cache.
pub(crate) fn attach(
    pins: &Arc<Pins>,
    kernel: &crate::fs::kernel::KernelQueue,
    cache: Option<&Arc<ContentCache>>,
) {
    kernel.also_invalidate(pins.clone());
    if let Some(cache) = cache {
        cache.on_invalidate(pins.content_listener());
    }
}
