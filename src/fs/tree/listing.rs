//! Folder listings: fetching a folder's complete listing (pages of 1,000 with markers and the
//! fields `stat` needs), storing it in the inode table a page at a time (handing each page to
//! the open directory waiting for it), telling the kernel what changed, and
//! listing subfolders ahead of a directory walk so that `find` does not pay one round trip
//! per folder in sequence.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::fs::backend::priority::{in_background, spawn_keeping_priority};
use crate::fs::errno::FsError;
use crate::fs::kernel::{DirsChanged, Invalidation, KernelQueue};
use crate::fs::tree::dir_handle::{DirHandle, FinishOnDrop};
use crate::fs::tree::inode::{Ino, InodeTable, ListingDiff};
use crate::fs::{lock, BoxFs, DirEntry};
use box_client::folders::ListOptions;
use box_client::types::Items;
use box_client::BoxResult;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// How many times an open directory's listing is made complete before it is handed out
/// as it is (see [`BoxFs::fill_dir`]).
const FINISH_ATTEMPTS: u32 = 3;

/// Entries per listing page: Box's maximum.
const PAGE_LIMIT: u32 = 1000;

/// What listing keeps besides the table: a lock per folder being listed (concurrent callers
/// share one fetch), the mount-wide bound on folders listed ahead of a walk, and the folders
/// whose listing changed since the kernel last opened them.
pub(in crate::fs) struct Listings {
    locks: Mutex<HashMap<Ino, Arc<tokio::sync::Mutex<()>>>>,
    prefetch_slots: Arc<Semaphore>,
    /// Subfolders of one listed folder that are listed ahead (0: none).
    prefetch_per_folder: usize,
    changed: Arc<DirsChanged>,
}

impl Listings {
    /// Listings fetched ahead at most `prefetch_parallel` at once, `prefetch_per_folder`
    /// subfolders of each listed folder. A folder's listing also counts as changed when
    /// `kernel` is told to drop a name in it.
    pub(in crate::fs) fn new(
        prefetch_parallel: usize,
        prefetch_per_folder: usize,
        kernel: &KernelQueue,
    ) -> Listings {
        let changed = Arc::new(DirsChanged::default());
        kernel.also_invalidate(changed.clone());
        Listings {
            locks: Mutex::default(),
            prefetch_slots: Arc::new(Semaphore::new(prefetch_parallel.max(1))),
            prefetch_per_folder,
            changed,
        }
    }

    /// The lock that one listing of `dir` at a time holds.
    pub(in crate::fs) fn lock_for(&self, dir: Ino) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&self.locks);
        // Drop locks nobody holds any more, so the map does not grow with every folder seen.
        if locks.len() > 4096 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(dir).or_default().clone()
    }

    /// Whether `dir`'s listing changed since the kernel last asked; asking resets it.
    pub(in crate::fs) fn take_changed(&self, dir: Ino) -> bool {
        self.changed.take(dir)
    }
}

impl BoxFs {
    /// Makes sure `dir`'s cached listing is complete and fresh, fetching it if not. Concurrent
    /// callers for one folder share one fetch. With `prefetch`, subfolders not listed yet are
    /// then listed in the background (a directory walk is likely to visit them next).
    pub(in crate::fs) async fn ensure_listing(
        self: &Arc<Self>,
        dir: Ino,
        prefetch: bool,
    ) -> Result<(), FsError> {
        let listed = self.list_if_stale(dir, None).await?;
        trim_after_listing(listed);
        if prefetch {
            self.prefetch_subfolders(dir);
        }
        Ok(())
    }

    /// Lists `dir` unless its cached listing is fresh, one caller at a time per folder (a
    /// caller that waited finds the listing fresh and asks nothing); with `sink`, each page
    /// is handed to that open directory as it is stored. Returns how many entries Box listed
    /// (0 when the cache was fresh).
    async fn list_if_stale(&self, dir: Ino, sink: Option<&DirHandle>) -> Result<usize, FsError> {
        if self.listing_is_fresh(dir)? {
            return Ok(0);
        }
        let guard = self.listings.lock_for(dir);
        let _held = guard.lock().await;
        if self.listing_is_fresh(dir)? || self.load_stored_listing(dir).await? {
            return Ok(0);
        }
        match self.fetch_listing(dir, sink).await {
            Err(e) if e.is_unreachable() => self.list_offline(dir, e),
            listed => listed,
        }
    }

    /// Box is out of reach (`crate::fs::offline`): a complete listing the table holds
    /// answers, however old (a stored one was tried already); else `err`.
    fn list_offline(&self, dir: Ino, err: FsError) -> Result<usize, FsError> {
        let table = lock(&self.table);
        match table.get(dir) {
            Some(inode) if inode.listing_complete() => Ok(0),
            _ => Err(err),
        }
    }

    pub(in crate::fs) fn listing_is_fresh(&self, dir: Ino) -> Result<bool, FsError> {
        self.listing_is_fresh_in(&lock(&self.table), dir)
    }

    /// [`Self::listing_is_fresh`] under a lock of the table the caller holds.
    pub(in crate::fs) fn listing_is_fresh_in(
        &self,
        table: &InodeTable,
        dir: Ino,
    ) -> Result<bool, FsError> {
        let inode = table
            .get(dir)
            .ok_or_else(|| FsError::not_found(format!("no inode {dir}")))?;
        if !inode.is_dir() {
            return Err(FsError::new(libc::ENOTDIR, "not a directory"));
        }
        Ok(table.listing_fresh(dir, self.freshness.ttl(), Instant::now()))
    }

    /// Fills an open directory's handle: with the listing as it arrives when it must be
    /// fetched, or whole if another caller listed the folder meanwhile.
    pub(in crate::fs) async fn fill_dir(self: Arc<Self>, handle: Arc<DirHandle>) {
        let _unblock_readers = FinishOnDrop(handle.clone());
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.list_if_stale(handle.ino, Some(&handle)).await {
                Ok(listed) => {
                    trim_after_listing(listed);
                    // A small table may evict children between the listing and its end;
                    // the folder is then listed again (the last time, handed out as it is).
                    if self.finish_dir(&handle) {
                        return;
                    }
                    if attempts >= FINISH_ATTEMPTS {
                        return self.finish_dir_as_it_is(&handle);
                    }
                }
                Err(e) => return handle.finish(Err(e)),
            }
        }
    }

    /// Ends the handle of a directory whose listing is complete: the children not handed out
    /// yet (all of them for a listing that was fresh; local files not uploaded yet otherwise)
    /// in name order, then the end. Starts listing subfolders ahead of a walk. Returns false,
    /// and ends nothing, if the listing is no longer complete (the table evicted a child
    /// since it was checked): the caller lists the folder again.
    pub(in crate::fs) fn finish_dir(self: &Arc<Self>, handle: &DirHandle) -> bool {
        {
            let mut table = lock(&self.table);
            if !table.get(handle.ino).is_some_and(|i| i.listing_complete()) {
                return false;
            }
            self.hand_out_the_rest(&mut table, handle);
        }
        handle.finish(Ok(()));
        self.prefetch_subfolders(handle.ino);
        true
    }

    /// [`Self::finish_dir`] whatever the listing's state.
    fn finish_dir_as_it_is(self: &Arc<Self>, handle: &DirHandle) {
        self.hand_out_the_rest(&mut lock(&self.table), handle);
        handle.finish(Ok(()));
    }

    fn hand_out_the_rest(&self, table: &mut InodeTable, handle: &DirHandle) {
        let mut entries: Vec<DirEntry> = handle
            .missing(table.children(handle.ino))
            .into_iter()
            .filter_map(|c| self.dir_entry(table, c))
            .collect();
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        handle.add(table, entries);
    }

    /// Lists `dir` completely and stores the listing a page at a time; with `sink`, each
    /// page's entries are handed to that open directory as soon as they are stored. Returns
    /// how many entries Box listed.
    async fn fetch_listing(&self, dir: Ino, sink: Option<&DirHandle>) -> Result<usize, FsError> {
        let (box_id, had_listing, mut merge) = {
            let table = lock(&self.table);
            let inode = table
                .get(dir)
                .ok_or_else(|| FsError::not_found(format!("no inode {dir}")))?;
            (
                inode.box_id().to_string(),
                inode.listing_fetched().is_some(),
                table.begin_listing(dir)?,
            )
        };
        self.counters.listings.fetch_add(1, Ordering::Relaxed);
        let opts = ListOptions::marker()
            .limit(PAGE_LIMIT)
            .fields(self.listing_fields());
        let mut in_flight = Some(self.request_page(&box_id, opts));
        let mut listed = 0;
        while let Some(request) = in_flight.take() {
            let (page, opts) = match request.await {
                Ok((Ok(page), opts)) => (page, opts),
                Ok((Err(e), _)) if e.is_not_found() => {
                    self.forget_removed(dir);
                    return Err(FsError::from(e));
                }
                Ok((Err(e), _)) => return Err(FsError::from(e)),
                Err(e) => return Err(FsError::new(libc::EIO, format!("listing task: {e}"))),
            };
            // The next page is asked for before this one is stored: the request's round trip
            // then overlaps the work of storing and handing out this one.
            in_flight = opts
                .next_page(&page)
                .map(|next| self.request_page(&box_id, next));
            listed += page.entries.len();
            let mut table = lock(&self.table);
            let children = table.merge_listing_page(dir, &page.entries, &mut merge)?;
            if let Some(handle) = sink {
                let entries = children
                    .into_iter()
                    .filter_map(|c| self.dir_entry(&table, c))
                    .collect();
                handle.add(&mut table, entries);
            }
        }
        let diff = lock(&self.table).finish_listing(dir, merge)?;
        if !diff.is_empty() && had_listing {
            self.listings.changed.mark(dir);
            self.kernel.send_all(invalidations_of(dir, &diff));
        }
        Ok(listed)
    }

    /// One listing page of folder `box_id`, requested at once in a task of its own; the
    /// task answers with the options it was asked with (the next page's come from both).
    fn request_page(
        &self,
        box_id: &str,
        opts: ListOptions,
    ) -> JoinHandle<(BoxResult<Items>, ListOptions)> {
        self.counters.listing_pages.fetch_add(1, Ordering::Relaxed);
        let client = self.client.clone();
        let box_id = box_id.to_string();
        spawn_keeping_priority(async move {
            let page = client.folder_items_page(&box_id, &opts).await;
            (page, opts)
        })
    }

    /// Lists the subfolders of `dir` that are not listed yet, in the background: first
    /// those the metadata store holds, at once and without asking Box; then the rest from
    /// Box, a bounded number at a time across the whole mount.
    fn prefetch_subfolders(self: &Arc<Self>, dir: Ino) {
        let per_folder = self.listings.prefetch_per_folder;
        if per_folder == 0 {
            return;
        }
        let ttl = self.freshness.ttl();
        let now = Instant::now();
        let todo: Vec<Ino> = {
            let table = lock(&self.table);
            table
                .children(dir)
                .into_iter()
                .filter(|&c| {
                    table.get(c).is_some_and(|i| i.is_dir()) && !table.listing_fresh(c, ttl, now)
                })
                .take(per_folder)
                .collect()
        };
        if todo.is_empty() {
            return;
        }
        let fs = Arc::clone(self);
        tokio::spawn(in_background(async move {
            let not_stored = fs.load_stored_listings(todo).await;
            fs.prefetch_from_box(not_stored);
        }));
    }

    /// Lists `dirs` from Box in the background, at most `prefetch_parallel` at once.
    fn prefetch_from_box(self: &Arc<Self>, dirs: Vec<Ino>) {
        // Under Box's rate limits, listing folders nobody opened yet is the first work to go.
        if self.client.pacing_is_tight() {
            return;
        }
        for child in dirs {
            let fs = Arc::clone(self);
            tokio::spawn(in_background(async move {
                let Ok(_slot) = fs.listings.prefetch_slots.clone().acquire_owned().await else {
                    return;
                };
                if fs.client.pacing_is_tight() {
                    return;
                }
                fs.counters.prefetches.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = fs.ensure_listing(child, false).await {
                    log::debug!("listing inode {child} ahead failed: {e}");
                }
            }));
        }
    }
}

/// After a big listing (`listed` entries) or a big write to the metadata store, returns the
/// memory its decoded pages or rows took (about 1 KiB an entry) to the kernel: glibc keeps
/// freed memory in its arenas, so without a trim the daemon's resident size would stay at
/// the peak of the largest listings it ever fetched or stored at once. Done after the
/// listing was handed out, off the path a reader waits on.
pub(in crate::fs) fn trim_after_listing(listed: usize) {
    if listed >= PAGE_LIMIT as usize {
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe { libc::malloc_trim(0) };
    }
}

/// What the kernel must forget after a folder's listing came back different.
fn invalidations_of(dir: Ino, diff: &ListingDiff) -> Vec<Invalidation> {
    let mut out = vec![Invalidation::Inode(dir)];
    for d in &diff.removed {
        out.push(Invalidation::Delete {
            parent: d.parent,
            child: d.ino,
            name: d.name.clone(),
        });
    }
    for m in &diff.moved {
        if let Some(old_parent) = m.old_parent {
            out.push(Invalidation::Entry {
                parent: old_parent,
                name: m.old_name.clone(),
            });
            if old_parent != dir {
                out.push(Invalidation::Inode(old_parent));
            }
        }
    }
    for &ino in &diff.changed {
        out.push(Invalidation::Inode(ino));
    }
    out
}
