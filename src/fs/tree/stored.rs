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

use std::sync::Arc;
use std::time::Duration;

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
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
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
            Ok(Ok(n)) => n,
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
