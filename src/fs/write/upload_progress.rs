//! What the uploader is doing, for `boxfs status` and `boxfs unmount`: the uploads running
//! now (each with the bytes done so far: what the upload layer has sent of a one-request
//! upload, or the parts Box confirmed of an upload session), and totals since the mount
//! started. The uploader
//! registers each upload for as long as it runs; the [`Running`] guard takes it off the list
//! however the upload ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One upload running now.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningUpload {
    /// The file's name on Box.
    pub name: String,
    /// Bytes to send.
    pub size: u64,
    /// Bytes sent (one request) or confirmed (upload sessions) so far.
    pub done: u64,
    /// Since the upload started.
    pub elapsed: Duration,
}

impl RunningUpload {
    /// Bytes per second so far.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        }
    }
}

struct Entry {
    name: String,
    size: u64,
    counters: UploadCounters,
    started: Instant,
}

/// The counters one upload hands the upload layer (`UploadOptions::progress` and
/// `UploadOptions::sending`).
#[derive(Debug, Clone, Default)]
pub struct UploadCounters {
    pub confirmed: Arc<AtomicU64>,
    pub sending: Arc<AtomicU64>,
}

impl UploadCounters {
    fn done(&self) -> u64 {
        self.confirmed
            .load(Ordering::Relaxed)
            .max(self.sending.load(Ordering::Relaxed))
    }
}

/// The registry (one per filesystem).
#[derive(Default)]
pub struct UploadProgress {
    running: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    uploaded_files: AtomicU64,
    uploaded_bytes: AtomicU64,
}

/// Keeps an upload on the running list until dropped.
pub struct Running<'a> {
    registry: &'a UploadProgress,
    id: u64,
    size: u64,
}

impl Running<'_> {
    /// The upload succeeded: count it in the totals.
    pub fn finished(self) {
        self.registry.uploaded_files.fetch_add(1, Ordering::Relaxed);
        self.registry
            .uploaded_bytes
            .fetch_add(self.size, Ordering::Relaxed);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl UploadProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An upload of `size` bytes to `name` starts: the counters to hand the upload layer,
    /// and the guard that keeps it listed.
    pub fn start(&self, name: &str, size: u64) -> (UploadCounters, Running<'_>) {
        let counters = UploadCounters::default();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            Entry {
                name: name.to_string(),
                size,
                counters: counters.clone(),
                started: Instant::now(),
            },
        );
        (
            counters,
            Running {
                registry: self,
                id,
                size,
            },
        )
    }

    /// The uploads running now, oldest first.
    pub fn running(&self) -> Vec<RunningUpload> {
        let mut list: Vec<(Instant, RunningUpload)> = self
            .lock()
            .values()
            .map(|e| {
                (
                    e.started,
                    RunningUpload {
                        name: e.name.clone(),
                        size: e.size,
                        // A retried part may be counted again: never show more than all.
                        done: e.counters.done().min(e.size),
                        elapsed: e.started.elapsed(),
                    },
                )
            })
            .collect();
        list.sort_by_key(|(started, _)| *started);
        list.into_iter().map(|(_, u)| u).collect()
    }

    /// Files and bytes Box confirmed since the mount started.
    pub fn uploaded(&self) -> (u64, u64) {
        (
            self.uploaded_files.load(Ordering::Relaxed),
            self.uploaded_bytes.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_uploads_are_listed_until_their_guard_goes() {
        let p = UploadProgress::default();
        let (counters, a) = p.start("a.bin", 100);
        let (other, b) = p.start("b.bin", 50);
        counters.sending.fetch_add(40, Ordering::Relaxed);
        other.confirmed.fetch_add(80, Ordering::Relaxed);
        let list = p.running();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].name.as_str(), list[0].done), ("a.bin", 40));
        assert_eq!((list[1].name.as_str(), list[1].done), ("b.bin", 50));
        a.finished();
        drop(b);
        assert!(p.running().is_empty());
        assert_eq!(p.uploaded(), (1, 100));
    }
}
