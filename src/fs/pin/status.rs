//! What the pins show `boxfs status`: the pinned items with their paths, the files kept
//! for them and how many are wholly on disk, what is downloading or waiting, failures, and
//! the last pin refused for want of space. Gathered from memory, never from Box.

use std::sync::atomic::Ordering;

use super::path_of;
use crate::fs::tree::inode::{Ino, Kind};
use crate::fs::{lock, BoxFs};

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

impl BoxFs {
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
