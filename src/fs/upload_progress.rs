//! What the uploader is doing, for `boxfs status` and `boxfs unmount`: the uploads running
//! now (each with the bytes Box has confirmed so far, which the upload layer adds to as
//! parts or whole files are accepted), and totals since the mount started. The uploader
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
    /// Bytes Box has confirmed so far.
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
    done: Arc<AtomicU64>,
    started: Instant,
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

    /// An upload of `size` bytes to `name` starts: the counter to hand the upload layer
    /// (`UploadOptions::progress`), and the guard that keeps it listed.
    pub fn start(&self, name: &str, size: u64) -> (Arc<AtomicU64>, Running<'_>) {
        let done = Arc::new(AtomicU64::new(0));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            Entry {
                name: name.to_string(),
                size,
                done: done.clone(),
                started: Instant::now(),
            },
        );
        (
            done,
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
                        done: e.done.load(Ordering::Relaxed).min(e.size),
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
        let (done, a) = p.start("a.bin", 100);
        let (_, b) = p.start("b.bin", 50);
        done.fetch_add(40, Ordering::Relaxed);
        let list = p.running();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].name.as_str(), list[0].done), ("a.bin", 40));
        a.finished();
        drop(b);
        assert!(p.running().is_empty());
        assert_eq!(p.uploaded(), (1, 100));
    }
}
