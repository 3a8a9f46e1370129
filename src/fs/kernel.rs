//! What the kernel must be told when its caches went stale, and the queue that tells it.
//!
//! The kernel caches names (dentries), attributes, directory listings and page contents, each
//! with the TTLs we hand it. When Box changes under it (an event from another client, or a
//! listing we fetched again that differs) the filesystem computes [`Invalidation`]s and pushes
//! them into a [`KernelQueue`]. A dedicated OS thread drains the queue into a [`KernelNotify`]
//! (fuser's `Notifier` in the mount, a recorder in tests). Sending from a thread of its own
//! matters twice: an invalidation of a directory sent from inside a FUSE handler working on
//! that directory deadlocks the whole mount, because the kernel holds the directory's lock
//! while it waits for our reply; and `inval_entry`/`inval_inode` can block on kernel locks
//! held by requests that wait for replies the tokio workers are computing, so a notification
//! blocked on a worker could starve the very replies that would unblock it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::fs::lock;

/// An inode number as the kernel sees it. Defined here, with what the kernel is told, so that
/// every part of the filesystem (the tree included) can speak of inodes to the kernel without
/// depending on the others.
pub type Ino = u64;

/// The mount root's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT_INO: Ino = 1;

/// One thing the kernel must forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// The name `parent/name` may now mean something else (or nothing): drop the dentry,
    /// including a cached "does not exist".
    Entry { parent: Ino, name: Box<str> },
    /// The attributes, the listing (for a directory) or the content (for a file) of `ino`
    /// changed: drop them (`inval_inode(ino, 0, 0)`).
    Inode(Ino),
    /// Only the attributes changed (a lock, metadata): the pages stay (`inval_inode(ino, -1, 0)`).
    Attrs(Ino),
    /// `parent/name`, which was `child`, is gone: drop the dentry and tell watchers.
    Delete {
        parent: Ino,
        child: Ino,
        name: Box<str>,
    },
}

/// Something that can tell the kernel (fuser's `Notifier` in the mount). Errors such as
/// "the kernel does not know that inode" (ENOENT) are expected and ignored by implementors.
pub trait KernelNotify: Send + Sync + 'static {
    fn notify(&self, inv: &Invalidation);
}

/// The sending half: cheap to clone, never blocks, never fails (invalidations sent after the
/// mount ended are dropped).
#[derive(Clone)]
pub struct KernelQueue {
    tx: mpsc::UnboundedSender<Invalidation>,
    names: Arc<NameChanges>,
    also: Arc<Mutex<Vec<Arc<dyn StaleCache>>>>,
}

impl std::fmt::Debug for KernelQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelQueue").finish_non_exhaustive()
    }
}

/// A cache of the filesystem's own that goes stale with the kernel's (the extended
/// attributes: a lock or metadata changed elsewhere moves no etag it could check). It is told
/// when an invalidation is queued, on the same path as the kernel, whether a kernel drains the
/// queue or not (tests of the filesystem run without one).
pub trait StaleCache: Send + Sync + 'static {
    fn invalidate(&self, inv: &Invalidation);
}

/// How many times the names in each directory were invalidated. An open directory's entries
/// were read before the changes counted after its opening; handed to the kernel with
/// `readdirplus`, they would bring back a name just invalidated, for a whole entry TTL (the
/// kernel orders an invalidation only after lookups already running, not after a
/// `readdirplus` answered later from an older listing).
#[derive(Debug, Default)]
struct NameChanges {
    by_dir: Mutex<HashMap<Ino, u64>>,
}

impl KernelQueue {
    /// A queue and its receiving end, to hand to [`drain_blocking`].
    pub fn new() -> (KernelQueue, mpsc::UnboundedReceiver<Invalidation>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let names = Arc::default();
        let also = Arc::default();
        (KernelQueue { tx, names, also }, rx)
    }

    /// A queue whose invalidations go nowhere (tests of the filesystem without a kernel).
    pub fn discard() -> KernelQueue {
        KernelQueue::new().0
    }

    /// Tells `cache` of every invalidation queued from now on, by any clone of this queue.
    pub fn also_invalidate(&self, cache: Arc<dyn StaleCache>) {
        lock(&self.also).push(cache);
    }

    pub fn send(&self, inv: Invalidation) {
        for cache in lock(&self.also).iter() {
            cache.invalidate(&inv);
        }
        if let Invalidation::Entry { parent, .. } | Invalidation::Delete { parent, .. } = &inv {
            *lock(&self.names.by_dir).entry(*parent).or_default() += 1;
        }
        let _ = self.tx.send(inv);
    }

    /// A count that changes whenever a name in `dir` is invalidated: taken when a directory
    /// is opened, compared with [`names_changed_since`](Self::names_changed_since) later.
    pub fn names_generation(&self, dir: Ino) -> u64 {
        lock(&self.names.by_dir).get(&dir).copied().unwrap_or(0)
    }

    /// Whether a name in `dir` was invalidated since `generation` was taken.
    pub fn names_changed_since(&self, dir: Ino, generation: u64) -> bool {
        self.names_generation(dir) != generation
    }

    pub fn send_all(&self, invs: impl IntoIterator<Item = Invalidation>) {
        for inv in invs {
            self.send(inv);
        }
    }
}

/// The events task hands its invalidations to the queue like everyone else.
impl KernelNotify for KernelQueue {
    fn notify(&self, inv: &Invalidation) {
        self.send(inv.clone());
    }
}

/// The directories whose listing the kernel may hold stale: a name in them changed since
/// they were last opened. The kernel's cached listing (kept across opens) can be refilled
/// after an invalidation by a reader that opened before the change, so an invalidation
/// alone does not make it true; the next open of such a directory must not keep it.
#[derive(Debug, Default)]
pub struct DirsChanged(Mutex<std::collections::HashSet<Ino>>);

impl DirsChanged {
    /// `dir`'s listing changed (a listing fetched again that differs).
    pub fn mark(&self, dir: Ino) {
        lock(&self.0).insert(dir);
    }

    /// Whether `dir` changed since the last call for it (an open of it).
    pub fn take(&self, dir: Ino) -> bool {
        lock(&self.0).remove(&dir)
    }
}

/// Every name invalidated in a directory marks it: events and listings alike.
impl StaleCache for DirsChanged {
    fn invalidate(&self, inv: &Invalidation) {
        if let Invalidation::Entry { parent, .. } | Invalidation::Delete { parent, .. } = inv {
            self.mark(*parent);
        }
    }
}

/// Delivers queued invalidations to `notify` until every sender is gone, blocking the
/// calling thread (see the module note for why it must be a thread of its own).
pub fn drain_blocking(mut rx: mpsc::UnboundedReceiver<Invalidation>, notify: impl KernelNotify) {
    while let Some(inv) = rx.blocking_recv() {
        // The notifier writes to /dev/fuse: usually a short write, never a network wait,
        // but it may wait for kernel locks.
        notify.notify(&inv);
    }
}

/// Starts [`drain_blocking`] on a dedicated OS thread (never a tokio worker). The returned
/// task ends when the thread does; aborting it leaves the thread to end with the last sender.
/// Needs a tokio runtime.
pub fn spawn_drain(
    rx: mpsc::UnboundedReceiver<Invalidation>,
    notify: impl KernelNotify,
) -> tokio::task::JoinHandle<()> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("boxfs-kernel".into())
        .spawn(move || {
            drain_blocking(rx, notify);
            let _ = done_tx.send(());
        });
    tokio::spawn(async move {
        match spawned {
            Ok(_) => {
                let _ = done_rx.await;
            }
            Err(e) => log::error!(
                "cannot start the kernel notification thread ({e}); the kernel's caches \
                 will only expire with their TTLs"
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_name_invalidated_in_a_directory_keeps_its_next_open_from_reusing_the_kernel_listing() {
        let queue = KernelQueue::discard();
        let dirs = Arc::new(DirsChanged::default());
        queue.also_invalidate(dirs.clone());
        queue.send(Invalidation::Attrs(5));
        queue.send(Invalidation::Inode(5));
        assert!(!dirs.take(5), "no name changed");
        queue.send(Invalidation::Entry {
            parent: 5,
            name: "f0".into(),
        });
        queue.clone().send(Invalidation::Delete {
            parent: 6,
            child: 9,
            name: "g0".into(),
        });
        assert!(dirs.take(5) && dirs.take(6));
        assert!(!dirs.take(5), "told once, at the next open");
    }

    #[test]
    fn a_directory_whose_names_were_invalidated_says_so_to_earlier_readers() {
        let queue = KernelQueue::discard();
        let (dir, other) = (5, 6);
        let opened = queue.names_generation(dir);
        let other_opened = queue.names_generation(other);
        queue.send(Invalidation::Attrs(dir));
        queue.send(Invalidation::Inode(dir));
        assert!(!queue.names_changed_since(dir, opened), "not a name");
        queue.send(Invalidation::Entry {
            parent: dir,
            name: "f0".into(),
        });
        assert!(queue.names_changed_since(dir, opened));
        let clone = queue.clone();
        let reopened = clone.names_generation(dir);
        clone.send(Invalidation::Delete {
            parent: dir,
            child: 9,
            name: "g0".into(),
        });
        assert!(
            queue.names_changed_since(dir, reopened),
            "clones share the counts"
        );
        assert!(!queue.names_changed_since(other, other_opened));
    }

    /// A notifier that blocks, as `inval_entry` may on a kernel lock.
    struct Slow(Arc<Mutex<Vec<(Invalidation, String)>>>);

    impl KernelNotify for Slow {
        fn notify(&self, inv: &Invalidation) {
            std::thread::sleep(Duration::from_millis(300));
            let thread = std::thread::current().name().unwrap_or("").to_string();
            self.0.lock().unwrap().push((inv.clone(), thread));
        }
    }

    #[test]
    fn a_blocked_notification_never_holds_a_runtime_worker() {
        // One worker only: a drain on it would stall every other task for 300 ms a time.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let (queue, rx) = KernelQueue::new();
            let drained = spawn_drain(rx, Slow(seen.clone()));
            queue.send_all((1..=3).map(Invalidation::Inode));
            let started = Instant::now();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                started.elapsed() < Duration::from_millis(250),
                "the runtime stalled for {:?}",
                started.elapsed()
            );
            drop(queue);
            tokio::time::timeout(Duration::from_secs(5), drained)
                .await
                .expect("the drain ends with its senders")
                .unwrap();
        });
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.iter().map(|(inv, _)| inv.clone()).collect::<Vec<_>>(),
            (1..=3).map(Invalidation::Inode).collect::<Vec<_>>()
        );
        assert!(seen.iter().all(|(_, thread)| thread == "boxfs-kernel"));
    }
}
