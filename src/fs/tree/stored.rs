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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::fs::errno::FsError;
use crate::fs::store::MetaStore;
use crate::fs::tree::inode::Ino;
use crate::fs::{lock, BoxFs};

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
        let Some(store) = self.store.clone() else {
            return Ok(false);
        };
        // Offline, the store is the best there is; online, it is trusted only while every
        // event since it was written has been applied.
        if !self.health().is_healthy() && !self.is_offline() {
            return Ok(false);
        }
        let box_id = {
            let table = lock(&self.table);
            match table.get(dir) {
                Some(inode) if inode.is_dir() => inode.box_id().to_string(),
                _ => return Ok(false),
            }
        };
        let table = self.table.clone();
        // What the table changed is written first: the rows read are then no older than it.
        let read = tokio::task::spawn_blocking(move || {
            store.apply_taken(|| lock(&table).take_store_batch())?;
            store.listing(&box_id)
        })
        .await;
        let rows = match read {
            Ok(Ok(Some(rows))) => rows,
            Ok(Ok(None)) => return Ok(false),
            Ok(Err(e)) => {
                log::warn!("{e}; listing from Box instead");
                return Ok(false);
            }
            Err(e) => {
                log::warn!("reading the metadata store: {e}");
                return Ok(false);
            }
        };
        lock(&self.table).merge_stored_listing(dir, &rows)?;
        self.counters
            .stored_listings
            .fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Stores the complete listings the metadata store holds of the folders `dirs` (the
    /// subfolders a walk visits next), all in one read of the store, and returns the folders
    /// it holds none of. After a remount a walk then finds each folder listed when it gets
    /// there, instead of waiting for one read per folder. A folder being listed meanwhile
    /// is left to that listing.
    pub(in crate::fs) async fn load_stored_listings(&self, dirs: Vec<Ino>) -> Vec<Ino> {
        let Some(store) = self.store.clone() else {
            return dirs;
        };
        if dirs.is_empty() || (!self.health().is_healthy() && !self.is_offline()) {
            return dirs;
        }
        let wanted: Vec<(Ino, String)> = {
            let table = lock(&self.table);
            dirs.iter()
                .filter_map(|&d| Some((d, table.get(d)?.box_id().to_string())))
                .collect()
        };
        let ids: Vec<String> = wanted.iter().map(|(_, id)| id.clone()).collect();
        let table = self.table.clone();
        let read = tokio::task::spawn_blocking(move || {
            store.apply_taken(|| lock(&table).take_store_batch())?;
            store.listings(&ids)
        })
        .await;
        let mut found = match read {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                log::warn!("{e}; listing from Box instead");
                return dirs;
            }
            Err(e) => {
                log::warn!("reading the metadata store: {e}");
                return dirs;
            }
        };
        let ttl = self.freshness.ttl();
        let mut not_stored = Vec::new();
        for (dir, id) in wanted {
            let Some(rows) = found.remove(&id) else {
                not_stored.push(dir);
                continue;
            };
            let guard = self.listings.lock_for(dir);
            let Ok(_listing) = guard.try_lock() else {
                continue;
            };
            let mut table = lock(&self.table);
            if table.get(dir).is_none() || table.listing_fresh(dir, ttl, Instant::now()) {
                continue;
            }
            if table.merge_stored_listing(dir, &rows).is_ok() {
                self.counters
                    .stored_listings
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        not_stored
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
