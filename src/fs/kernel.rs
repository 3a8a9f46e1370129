//! What the kernel must be told when its caches went stale, and the queue that tells it.
//!
//! The kernel caches names (dentries), attributes, directory listings and page contents, each
//! with the TTLs we hand it. When Box changes under it (an event from another client, or a
//! listing we fetched again that differs) the filesystem computes [`Invalidation`]s and pushes
//! them into a [`KernelQueue`]. A separate task drains the queue into a [`KernelNotify`] (fuser's
//! `Notifier` in the mount, a recorder in tests). Sending from a task of its own matters: an
//! invalidation of a directory sent from inside a FUSE handler working on that directory
//! deadlocks the whole mount, because the kernel holds the directory's lock while it waits for
//! our reply.

use tokio::sync::mpsc;

use super::inode::Ino;

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
#[derive(Debug, Clone)]
pub struct KernelQueue {
    tx: mpsc::UnboundedSender<Invalidation>,
}

impl KernelQueue {
    /// A queue and its receiving end, to hand to [`drain`].
    pub fn new() -> (KernelQueue, mpsc::UnboundedReceiver<Invalidation>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (KernelQueue { tx }, rx)
    }

    /// A queue whose invalidations go nowhere (tests of the filesystem without a kernel).
    pub fn discard() -> KernelQueue {
        KernelQueue::new().0
    }

    pub fn send(&self, inv: Invalidation) {
        let _ = self.tx.send(inv);
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

/// Delivers queued invalidations to `notify` until every sender is gone. Runs as a task of
/// its own (see the module note for why).
pub async fn drain(mut rx: mpsc::UnboundedReceiver<Invalidation>, notify: impl KernelNotify) {
    while let Some(inv) = rx.recv().await {
        // The notifier writes to /dev/fuse: a short blocking write, never a network wait.
        notify.notify(&inv);
    }
}
