//! The read path of the mount: one [`FileReader`] per open file handle, answering the kernel's
//! reads with ranged GETs of the file's download URL.
//!
//! The reader keeps the file as a map of non-overlapping *parts* (byte ranges), each being
//! fetched by its own task or already in memory. A read first fills the holes of the range it
//! needs with new parts, then waits for the parts that cover it and answers with slices of
//! their buffers (no copy unless the read spans two buffers). Parts are split on a fixed grid of
//! `part_size` (finer while the read-ahead window is small) and aligned to the content cache's
//! chunks, so they fill whole chunks.
//!
//! Access detection: the reader follows one *stream*, the position where reading is expected to
//! continue. A read near it (a little behind, or ahead by at most `reorder_distance` or inside the
//! read-ahead already scheduled) belongs to the stream; anything else starts a new stream and
//! cancels read-ahead nobody waits for. The kernel delivers its reads slightly out of order and
//! several at once, so "near" rather than "exactly at the end". A stream that went forward twice
//! and whose reads cover at least half of the bytes it spans is sequential: its reads schedule
//! read-ahead up to `window` bytes past the read, in parts fetched in parallel (at most
//! `max_parallel` requests in flight, the lowest offset first), and the window doubles at every
//! refill up to `max_window`.
//! Other reads fetch only their own range, rounded out to `random_align`.
//!
//! Memory: parts behind a sequential stream by more than `backlog` are dropped, and beyond that the least
//! recently used parts go once the reader holds more than the window, the backlog and two parts.
//! Parts being fetched are never dropped: a read may be waiting for them. A reader given a
//! share of the mount's [`ReadBudget`] also keeps its read-ahead window, what it holds and its
//! GETs in flight within that share (see `budget.rs`); the bytes a read asks for are fetched
//! whatever the share says.
//!
//! Content cache: a part consults the cache chunk by chunk before going to the network, and the
//! chunks a part completes (with its neighbours, when it starts or ends inside a chunk) are
//! stored through `spawn_blocking` after the part was handed to its readers. The cache key holds
//! the file's version, so a changed file is never served from an older version's chunks.
//!
//! Network: each reader holds one [`ContentSource`] of its file's version (the client's `DownloadSource`), whose download URL
//! all parts share. Everything about failures is the client's: it retries transient failures
//! and resumes a body cut short under its retry policy, and the source resolves an expired URL
//! again. What reaches a part is final, and becomes the part's errno.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use futures_util::future::try_join_all;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

use crate::fs::backend::BoxApi;
use crate::fs::backend::ContentSource;
use crate::fs::errno::{FsError, FsResult};
use crate::fs::read::budget::{ReadBudget, ReadShare};
use crate::fs::read::content_cache::{ContentCache, ContentKey};
use box_client::files::ByteRange;

mod connections;
mod fetch;
mod parts;
mod plan;
mod stream;
#[cfg(test)]
mod tests;

use connections::InFlight;
use parts::{join, Outcome, Part, PartData, State};
use plan::{collect, Failure};
use stream::Stream;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The smallest GET read-ahead is split into while its window is small.
const MIN_SPLIT_PART: u64 = MIB;

/// How a reader fetches. Sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadConfig {
    /// The size of one ranged request of read-ahead (rounded up to whole cache chunks).
    pub part_size: u64,
    /// Read-ahead of a stream just found sequential.
    pub initial_window: u64,
    /// The read-ahead a sequential stream grows to.
    pub max_window: u64,
    /// Ranged requests in flight at once, per reader.
    pub max_parallel: usize,
    /// Bytes kept in memory behind the stream, for short backward seeks and late reads.
    pub backlog: u64,
    /// How far past the stream's position a read may land and still continue it.
    pub reorder_distance: u64,
    /// Reads that are not sequential are rounded out to this.
    pub random_align: u64,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            part_size: 8 * MIB,
            initial_window: MIB,
            max_window: 64 * MIB,
            max_parallel: 8,
            backlog: 8 * MIB,
            reorder_distance: 4 * MIB,
            random_align: 64 * KIB,
        }
    }
}

/// The content a reader serves: one version of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersionRef {
    pub file_id: String,
    /// The file_version id (preferred: downloads ask for exactly that version), or Box's sha1
    /// of the content (downloads then read the current version and check its ETag).
    pub version: String,
    pub size: u64,
    /// Box's SHA-1 of this version's content, if known: the content cache checks whole files
    /// against it.
    pub sha1: Option<String>,
}

/// What a reader did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Calls to [`FileReader::read`] and the bytes they returned.
    pub reads: u64,
    pub bytes_read: u64,
    /// Ranged GETs that succeeded, and their bytes.
    pub network_requests: u64,
    pub network_bytes: u64,
    /// Chunks (and bytes of them) served from the content cache.
    pub cache_hits: u64,
    pub cache_bytes: u64,
    /// Chunks written to the content cache, and writes not finished yet.
    pub cache_stores: u64,
    pub cache_writes_pending: u64,
    pub url_resolutions: u64,
    /// Parts scheduled; of them, those scheduled ahead of any read; and those cancelled.
    pub parts: u64,
    pub read_ahead_parts: u64,
    pub cancelled_parts: u64,
    /// Ranged GETs in flight now, and the most there were at once.
    pub in_flight: u64,
    pub peak_in_flight: u64,
    /// The current read-ahead window and the bytes of parts held or being fetched.
    pub window: u64,
    pub buffered_bytes: u64,
}

/// Reads one version of one Box file for one open handle. See the module documentation.
pub struct FileReader {
    inner: Arc<Inner>,
}

impl FileReader {
    pub fn new(
        client: Arc<dyn BoxApi>,
        cache: Option<Arc<ContentCache>>,
        file: FileVersionRef,
        cfg: ReadConfig,
    ) -> FileReader {
        let cfg = sanitize(cfg, cache.as_deref());
        // Parts of sequential reads start and end on cache chunks, so that they fill them.
        let seq_align = cache
            .as_ref()
            .map(|c| c.chunk_size())
            .unwrap_or(cfg.random_align);
        let version_is_id = is_box_id(&file.version);
        let key = ContentKey::new(&file.file_id, &file.version, file.size)
            .with_sha1(file.sha1.as_deref());
        let source = client.download_source(
            &file.file_id,
            version_is_id.then_some(file.version.as_str()),
        );
        FileReader {
            inner: Arc::new(Inner {
                source,
                cache,
                key,
                version_is_id,
                seq_align,
                state: Mutex::new(State {
                    parts: BTreeMap::new(),
                    stream: Stream::new(cfg.initial_window),
                    next_id: 0,
                    tick: 0,
                    running: 0,
                    queued: BTreeMap::new(),
                }),
                counters: Counters::default(),
                share: None,
                file,
                cfg,
            }),
        }
    }

    /// The reader keeps its read-ahead, memory and connections within a fair share of
    /// `budget`, shared with every other reader of the mount.
    pub fn with_budget(mut self, budget: &Arc<ReadBudget>) -> FileReader {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.share = Some(budget.share());
        }
        self
    }

    pub fn file(&self) -> &FileVersionRef {
        &self.inner.file
    }

    /// Exactly the bytes at `offset..min(offset + len, size)`; empty at or after the end.
    /// Safe to call concurrently.
    pub async fn read(&self, offset: u64, len: u32) -> FsResult<Bytes> {
        let inner = &self.inner;
        let end = offset.saturating_add(u64::from(len)).min(inner.file.size);
        inner.counters.reads.fetch_add(1, Ordering::Relaxed);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let wanted = inner.plan(offset, end);
        let bytes = collect(wanted, offset, end).await.map_err(|e| match e {
            Failure::Failed(e) => e,
            // The parts a read waits for are never cancelled by the reader (a seek cancels
            // only read-ahead no read waits for, and the reader outlives its reads): a part's
            // task ends without an outcome only when the runtime shuts down, which ends this
            // read too, or when it panicked, which planning again would only repeat.
            Failure::Cancelled => FsError::new(
                libc::EIO,
                format!(
                    "reading file {} at {offset}: the fetch ended without an answer",
                    inner.file.file_id
                ),
            ),
        })?;
        inner
            .counters
            .bytes_read
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    pub fn stats(&self) -> ReadStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (window, buffered_bytes) = {
            let st = self.inner.lock();
            (st.stream.window, st.buffered())
        };
        ReadStats {
            reads: get(&c.reads),
            bytes_read: get(&c.bytes_read),
            network_requests: get(&c.network_requests),
            network_bytes: get(&c.network_bytes),
            cache_hits: get(&c.cache_hits),
            cache_bytes: get(&c.cache_bytes),
            cache_stores: get(&c.cache_stores),
            cache_writes_pending: get(&c.cache_writes_pending),
            url_resolutions: self.inner.source.resolutions(),
            parts: get(&c.parts),
            read_ahead_parts: get(&c.read_ahead_parts),
            cancelled_parts: get(&c.cancelled_parts),
            in_flight: get(&c.in_flight),
            peak_in_flight: get(&c.peak_in_flight),
            window,
            buffered_bytes,
        }
    }
}

impl Drop for FileReader {
    /// Cancels the fetches in flight. Cache writes already started finish on their own.
    fn drop(&mut self) {
        let parts = std::mem::take(&mut self.inner.lock().parts);
        for task in parts.into_values().filter_map(|p| p.task) {
            task.abort();
        }
        if let Some(share) = &self.inner.share {
            share.report(0);
        }
    }
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("file", &self.inner.file)
            .finish()
    }
}

fn sanitize(mut cfg: ReadConfig, cache: Option<&ContentCache>) -> ReadConfig {
    cfg.random_align = cfg.random_align.max(1);
    cfg.max_parallel = cfg.max_parallel.max(1);
    cfg.initial_window = cfg.initial_window.max(1);
    cfg.max_window = cfg.max_window.max(cfg.initial_window);
    let unit = cache.map(|c| c.chunk_size()).unwrap_or(cfg.random_align);
    cfg.part_size = round_up(cfg.part_size.max(unit), unit);
    cfg
}

/// Box's `?version=` takes a file_version id (digits); a sha1 cannot be asked for.
pub(crate) fn is_box_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn round_down(x: u64, unit: u64) -> u64 {
    x - x % unit
}

fn round_up(x: u64, unit: u64) -> u64 {
    x.div_ceil(unit).saturating_mul(unit)
}

struct Inner {
    /// The file's content on Box; its download URL is shared by every part.
    source: Arc<dyn ContentSource>,
    cache: Option<Arc<ContentCache>>,
    file: FileVersionRef,
    key: ContentKey,
    /// Whether `file.version` can be sent as `?version=`.
    version_is_id: bool,
    cfg: ReadConfig,
    seq_align: u64,
    /// Never held across `.await`.
    state: Mutex<State>,
    counters: Counters,
    /// This reader's part of the mount's read budget, if it has one.
    share: Option<ReadShare>,
}

#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    bytes_read: AtomicU64,
    network_requests: AtomicU64,
    network_bytes: AtomicU64,
    cache_hits: AtomicU64,
    cache_bytes: AtomicU64,
    cache_stores: AtomicU64,
    cache_writes_pending: AtomicU64,
    parts: AtomicU64,
    read_ahead_parts: AtomicU64,
    cancelled_parts: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}
