//! The table's bound: inodes the kernel does not reference are cached metadata, kept in
//! least-recently-used order and evicted leaves first once the table holds more than its
//! limit (see the module note of [`super`]).

use super::*;

impl InodeTable {
    /// How many inodes the table keeps while the kernel references fewer.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Change the bound; evicts at once if the table holds more.
    pub fn set_limit(&mut self, max_inodes: usize) {
        self.limit = max_inodes;
        self.evict_excess(None);
    }

    /// `ino` was just used (a lookup or getattr answered from the table): it moves to the
    /// recent end of the eviction order. Harmless for referenced or unknown inodes; never
    /// evicts.
    pub fn touch(&mut self, ino: Ino) {
        if self.is_candidate(ino) {
            self.enqueue(ino);
        }
    }

    /// The directories that lost cached children to eviction since the last call (each
    /// once, in no particular order). Their listings are now incomplete; a caller that let
    /// the kernel cache a listing may want to invalidate it.
    pub fn take_evicted_parents(&mut self) -> Vec<Ino> {
        self.evicted_parents.drain().collect()
    }

    /// How many inodes were evicted since the table was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Put `ino` at the recent end of the LRU (moving it if it is there).
    pub(super) fn enqueue(&mut self, ino: Ino) {
        self.lru.put(ino, ());
        self.lru_peak = self.lru_peak.max(self.lru.len());
    }

    /// Non-root, attached and unreferenced: cached metadata that may be evicted.
    pub(super) fn is_candidate(&self, ino: Ino) -> bool {
        ino != ROOT_INO
            && self
                .inodes
                .get(&ino)
                .is_some_and(|i| i.lookups == 0 && i.parent.is_some() && !i.pinned)
    }

    /// Evict least recently used candidates while the table is over its limit, never
    /// `protect`. See [`evict_excess_sparing`](Self::evict_excess_sparing).
    pub(super) fn evict_excess(&mut self, protect: Option<Ino>) {
        self.evict_excess_sparing(|_, victim| Some(victim) == protect);
    }

    /// Evict least recently used candidates while the table is over its limit, passing over
    /// those `spare` names (they are touched again afterwards, in their old order). A
    /// candidate directory with children is left out of the LRU (overdue) until `detach`
    /// takes its last child; nothing else is skipped, so every call ends within the limit or
    /// with nothing but spared inodes left to evict. Not for use inside a listing
    /// (`deferred_drops` would keep evicted inodes).
    pub(super) fn evict_excess_sparing(&mut self, spare: impl Fn(&Self, Ino) -> bool) {
        debug_assert!(self.deferred_drops.is_none());
        let mut spared = Vec::new();
        while self.inodes.len() > self.limit {
            let Some((victim, ())) = self.lru.pop_lru() else {
                break;
            };
            if spare(self, victim) {
                spared.push(victim);
                continue;
            }
            let has_children = |i: &Inode| i.dir.as_ref().is_some_and(|d| !d.children.is_empty());
            if self.inodes.get(&victim).is_none_or(has_children) {
                continue;
            }
            let kept_row = self
                .journal_has(victim)
                .then(|| self.stored_row(victim))
                .flatten();
            let box_id = self.inodes[&victim].box_id.clone();
            let Some(gone) = self.detach(victim) else {
                continue;
            };
            if let Some(dir) = self
                .inodes
                .get_mut(&gone.parent)
                .and_then(|i| i.dir.as_mut())
            {
                dir.listing_complete = false;
            }
            self.evicted_parents.insert(gone.parent);
            self.evictions += 1;
            self.maybe_drop(victim);
            // Evicted from memory, not from the store.
            self.journal_evicted(&box_id, kept_row);
        }
        for ino in spared {
            self.touch(ino);
        }
    }
}
