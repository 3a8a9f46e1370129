//! The kernel's lookup counts: one more for every entry a reply hands the kernel, fewer at
//! each `forget`; an unreferenced detached inode is dropped.

use super::*;

impl InodeTable {
    /// One more kernel reference (a lookup, create, mkdir or readdirplus entry reply).
    /// Returns false if the inode does not exist.
    pub fn add_lookup(&mut self, ino: Ino) -> bool {
        match self.inodes.get_mut(&ino) {
            Some(inode) => {
                if inode.lookups == 0 {
                    self.lru.pop(&ino);
                }
                inode.lookups = inode.lookups.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// The kernel dropped `n` references. Saturates at zero (logged at debug); drops the
    /// inode if it reaches zero while detached. An attached inode reaching zero becomes
    /// the most recent eviction candidate, and is evicted at once if the table is over its
    /// limit. Returns true if the inode is gone.
    pub fn forget(&mut self, ino: Ino, n: u64) -> bool {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            log::debug!("forget({ino}, {n}) of an unknown inode");
            return false;
        };
        if n > inode.lookups {
            log::debug!(
                "forget({ino}, {n}) exceeds the lookup count {}, saturating",
                inode.lookups
            );
        }
        let was_referenced = inode.lookups > 0;
        inode.lookups = inode.lookups.saturating_sub(n);
        if was_referenced {
            self.touch(ino);
        }
        self.maybe_drop(ino);
        self.evict_excess(None);
        !self.inodes.contains_key(&ino)
    }
}
