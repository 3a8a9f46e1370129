//! Pinning, "available offline": items whose content the mount keeps on disk at all times.
//! [`Pins`] owns the pinned items (by Box id), the files kept for them and their progress;
//! the operations are [`BoxFs::set_offline`] (the `user.box.offline` attribute, which
//! `boxfs pin`/`boxfs unpin` set; in `offline`), [`BoxFs::offline_state`] and
//! [`BoxFs::pin_status`] (in `status`).
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
//! take: its free space less a margin (`space`) and less what pins still have to download.
//!
//! **The worker.** One background task ([`BoxFs::spawn_pin_worker`], at background priority)
//! walks each pinned item that needs it (`walk`: the filesystem's own listings, so the
//! metadata is cached too), marks its files pinned in the content cache, and downloads what
//! the cache lacks of their current versions (`fetch`), a few files at a time. It walks a
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
mod offline;
mod space;
mod status;
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
pub use status::{PinDownload, PinRefusal, PinStatus, PinnedItem};
pub use store::{PinFile, SavedPin, SavedPins, PINS_FILE};

use crate::fs::errno::FsError;
use crate::fs::kernel::{Invalidation, StaleCache};
use crate::fs::read::content_cache::{ContentCache, InvalidationListener};
use crate::fs::tree::inode::{Ino, InodeTable, Kind, ROOT_INO};
use crate::fs::{lock, BoxFs};

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
