//! The tree and the metadata store (`crate::fs::store`): complete listings read back from the
//! store instead of Box, and the table's journal written to the store, every second and when
//! the mount ends.
//!
//! A stored listing answers only while the event stream is healthy: then every change Box
//! made since the rows were written has been applied (the mount caught up before serving,
//! and the follower applies the rest), so the rows are as current as a listing from Box.
//! While the stream is down, folders are listed from Box as before; while Box is out of
//! reach, stored listings answer whatever their age (`crate::fs::offline`). Store trouble is never a
//! filesystem error: the store is a cache, and Box answers instead.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::fs::errno::FsError;
use crate::fs::store::{MetaStore, StoredItem};
use crate::fs::tree::inode::Ino;
use crate::fs::{lock, BoxFs};

/// Rows read from the store in one go by a walk's read-ahead, about.
const ROWS_PER_READ: usize = 4_000;

/// Rows a walk's read-ahead reads for one folder's subfolders and those below, about.
const READ_AHEAD_ROWS: usize = 20_000;

/// Folders whose listings the read-ahead reads at most, and how many levels down it goes:
/// a walk descends at once into the first folder it meets, so the levels below the next
/// one must be read already when it gets there (a tree of small folders costs few rows).
const READ_AHEAD_FOLDERS: usize = 2_000;
const READ_AHEAD_LEVELS: usize = 4;

/// How often the journal is written while the mount runs.
const WRITE_EVERY: Duration = Duration::from_secs(1);

impl BoxFs {
    /// Keeps this filesystem's metadata in `store` from now on (before it serves anything).
    pub fn with_store(mut self, store: Arc<MetaStore>) -> BoxFs {
        lock(&self.table).keep_journal();
        self.store = Some(store);
        self
    }

    /// The metadata store, if the mount keeps one.
    pub fn store(&self) -> Option<&Arc<MetaStore>> {
        self.store.as_ref()
    }

    /// Stores `dir`'s complete listing from the metadata store, if the store holds one and
    /// may be trusted now. Returns whether it did.
    pub(in crate::fs) async fn load_stored_listing(&self, dir: Ino) -> Result<bool, FsError> {
        // Offline, the store is the best there is; online, it is trusted only while every
        // event since it was written has been applied.
        if self.store.is_none() || (!self.health().is_healthy() && !self.is_offline()) {
            return Ok(false);
        }
        let box_id = match lock(&self.table).get(dir) {
            Some(inode) if inode.is_dir() => inode.box_id().to_string(),
            _ => return Ok(false),
        };
        let wanted = [(dir, box_id)];
        let Some((mut found, _)) = self.read_stored_listings(&wanted, usize::MAX).await else {
            return Ok(false);
        };
        let Some(rows) = found.remove(&wanted[0].1) else {
            return Ok(false);
        };
        lock(&self.table).merge_stored_listing(dir, &rows)?;
        self.counters
            .stored_listings
            .fetch_add(1, Ordering::Relaxed);
        let read = rows.len();
        drop(rows);
        super::listing::trim_after_listing(read);
        Ok(true)
    }

    /// Stores the complete listings the metadata store holds of the folders `dirs` (the
    /// subfolders a walk visits next), and of the folders below them, until about
    /// [`READ_AHEAD_ROWS`] rows (a quarter of the table at most) or [`READ_AHEAD_FOLDERS`]
    /// folders were read; returns the folders of `dirs` it did not store (the store holds
    /// no listing of them, or the budget ran out), for the caller to list from Box. After
    /// a remount a walk then finds each folder listed when it gets there, instead of
    /// waiting for one read of the store per folder. The rows are read a few thousand at a
    /// time, so that big folders never make the daemon hold many rows at once. A folder
    /// being listed meanwhile is left to that listing.
    pub(in crate::fs) async fn load_stored_listings(&self, dirs: Vec<Ino>) -> Vec<Ino> {
        if self.store.is_none()
            || dirs.is_empty()
            || (!self.health().is_healthy() && !self.is_offline())
        {
            return dirs;
        }
        let mut not_stored = Vec::new();
        let mut rows_loaded = 0;
        let mut folders_read = 0;
        // Reading ahead must never push out of memory what the walk is using: a quarter of
        // the table at most.
        let rows_budget = READ_AHEAD_ROWS.min(lock(&self.table).limit() / 4);
        let mut level = dirs;
        for depth in 0..READ_AHEAD_LEVELS {
            let wanted: Vec<(Ino, String)> = {
                let table = lock(&self.table);
                level
                    .iter()
                    .filter_map(|&d| Some((d, table.get(d)?.box_id().to_string())))
                    .collect()
            };
            let mut next_level = Vec::new();
            let mut rest = &wanted[..];
            // Folders not read once the budget is spent are read when they are opened.
            while !rest.is_empty() && rows_loaded < rows_budget && folders_read < READ_AHEAD_FOLDERS
            {
                let max_rows = ROWS_PER_READ.min(rows_budget - rows_loaded);
                let Some((mut found, looked_at)) = self.read_stored_listings(rest, max_rows).await
                else {
                    if depth == 0 {
                        not_stored.extend(rest.iter().map(|(d, _)| *d));
                    }
                    return not_stored;
                };
                let mut rows_read = 0;
                for (dir, id) in &rest[..looked_at] {
                    let Some(rows) = found.remove(id) else {
                        if depth == 0 {
                            not_stored.push(*dir);
                        }
                        continue;
                    };
                    rows_read += rows.len();
                    if self.merge_stored(*dir, &rows) {
                        next_level.extend(self.unlisted_subfolders(*dir));
                    }
                }
                rows_loaded += rows_read;
                folders_read += looked_at;
                super::listing::trim_after_listing(rows_read);
                rest = &rest[looked_at..];
            }
            // Folders asked for that the budget left unread: listed ahead as without a store
            // (each tries the store first).
            if depth == 0 {
                not_stored.extend(rest.iter().map(|(d, _)| *d));
            }
            if rows_loaded >= rows_budget || folders_read >= READ_AHEAD_FOLDERS {
                break;
            }
            level = next_level;
        }
        not_stored
    }

    /// One read of the store for [`Self::load_stored_listings`]: the listings it holds of
    /// the first of `wanted`, and how many were looked at. `None` if the store failed.
    async fn read_stored_listings(
        &self,
        wanted: &[(Ino, String)],
        max_rows: usize,
    ) -> Option<(HashMap<String, Vec<StoredItem>>, usize)> {
        let store = self.store.clone()?;
        let ids: Vec<String> = wanted.iter().map(|(_, id)| id.clone()).collect();
        let table = self.table.clone();
        // What the table changed is written first: the rows read are then no older than it.
        let read = tokio::task::spawn_blocking(move || {
            store.apply_taken(|| lock(&table).take_store_batch())?;
            store.listings(&ids, max_rows)
        })
        .await;
        match read {
            // Always at least one looked at, so that the caller moves on.
            Ok(Ok((found, looked_at))) => Some((found, looked_at.max(1))),
            Ok(Err(e)) => {
                log::warn!("{e}; listing from Box instead");
                None
            }
            Err(e) => {
                log::warn!("reading the metadata store: {e}");
                None
            }
        }
    }

    /// Stores `dir`'s listing read from the store, unless someone is listing it or it is
    /// fresh already. Returns whether it did.
    fn merge_stored(&self, dir: Ino, rows: &[StoredItem]) -> bool {
        let guard = self.listings.lock_for(dir);
        let Ok(_listing) = guard.try_lock() else {
            return false;
        };
        let mut table = lock(&self.table);
        if table.get(dir).is_none()
            || table.listing_fresh(dir, self.freshness.ttl(), Instant::now())
        {
            return false;
        }
        let merged = table.merge_stored_listing(dir, rows).is_ok();
        if merged {
            self.counters
                .stored_listings
                .fetch_add(1, Ordering::Relaxed);
        }
        merged
    }

    /// The subfolders of `dir` whose listing the table does not hold fresh.
    fn unlisted_subfolders(&self, dir: Ino) -> Vec<Ino> {
        let table = lock(&self.table);
        let ttl = self.freshness.ttl();
        let now = Instant::now();
        table
            .children(dir)
            .into_iter()
            .filter(|&c| {
                table.get(c).is_some_and(|i| i.is_dir()) && !table.listing_fresh(c, ttl, now)
            })
            .collect()
    }

    /// Gives `ino` the attributes of its stored row if Box never described it in this
    /// mount: offline, the root of a mount started offline has its own times and etag
    /// rather than none.
    pub(in crate::fs) async fn restore_stored_attrs(&self, ino: Ino) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let box_id = match lock(&self.table).get(ino) {
            Some(inode) if inode.attrs_fetched().is_none() => inode.box_id().to_string(),
            _ => return,
        };
        match tokio::task::spawn_blocking(move || store.item(&box_id)).await {
            Ok(Ok(Some(row))) => {
                lock(&self.table).restore_stored_attrs(ino, &row);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => log::warn!("{e}"),
            Err(e) => log::warn!("reading the metadata store: {e}"),
        }
    }

    /// Writes what the table changed since the last write to the store. Returns how many
    /// rows and listing marks were written.
    pub async fn write_store(&self) -> usize {
        let Some(store) = self.store.clone() else {
            return 0;
        };
        let table = self.table.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.apply_taken(|| lock(&table).take_store_batch())
        })
        .await;
        match written {
            Ok(Ok(n)) => {
                super::listing::trim_after_listing(n);
                n
            }
            Ok(Err(e)) => {
                log::warn!("{e}");
                0
            }
            Err(e) => {
                log::warn!("writing the metadata store: {e}");
                0
            }
        }
    }

    /// Writes the journal to the store every second until aborted.
    pub fn spawn_store_writer(self: &Arc<Self>) -> JoinHandle<()> {
        let fs = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WRITE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                fs.write_store().await;
            }
        })
    }
}
