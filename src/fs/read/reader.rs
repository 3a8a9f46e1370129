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
fn is_box_id(s: &str) -> bool {
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

struct State {
    /// Parts by start offset; they never overlap.
    parts: BTreeMap<u64, Part>,
    stream: Stream,
    next_id: u64,
    /// Counts reads, for least-recently-used eviction.
    tick: u64,
    /// Ranged GETs holding a connection slot (at most `max_parallel`).
    running: usize,
    /// GETs waiting for a slot by `(offset, id)`: the lowest offset goes first, because the
    /// reader needs the bytes in order (tokio's semaphore would serve them in the order the
    /// tasks happened to run, and a sequential reader would wait for its next part while
    /// later ones download).
    queued: BTreeMap<(u64, u64), oneshot::Sender<()>>,
}

impl State {
    /// The parts overlapping `a..b`, in order.
    fn overlapping(&self, a: u64, b: u64) -> impl Iterator<Item = (&u64, &Part)> {
        let first = self.first_overlapping(a);
        self.parts.range(first..b.max(first))
    }

    fn overlapping_mut(&mut self, a: u64, b: u64) -> impl Iterator<Item = (&u64, &mut Part)> {
        let first = self.first_overlapping(a);
        self.parts.range_mut(first..b.max(first))
    }

    fn first_overlapping(&self, a: u64) -> u64 {
        match self.parts.range(..=a).next_back() {
            Some((&start, part)) if part.end > a => start,
            _ => a,
        }
    }

    /// The holes in `a..b` no part covers.
    fn holes(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let mut holes = Vec::new();
        let mut pos = a;
        for (&start, part) in self.overlapping(a, b) {
            if start > pos {
                holes.push((pos, start));
            }
            pos = pos.max(part.end);
        }
        if pos < b {
            holes.push((pos, b));
        }
        holes
    }

    /// Slices of `a..b` if parts in memory cover all of it.
    fn in_memory(&self, a: u64, b: u64) -> Option<Vec<Bytes>> {
        let mut out = Vec::new();
        let mut pos = a;
        for (&start, part) in self.overlapping(a, b) {
            if start > pos {
                return None;
            }
            let upto = part.end.min(b);
            part.data.as_ref()?.slices(pos, upto, &mut out);
            pos = upto;
        }
        (pos >= b).then_some(out)
    }

    fn buffered(&self) -> u64 {
        self.parts.iter().map(|(start, p)| p.end - start).sum()
    }
}

struct Part {
    end: u64,
    /// Tells a part from the one that replaced it at the same offset.
    id: u64,
    /// Set once fetched.
    data: Option<Arc<PartData>>,
    done: watch::Receiver<Outcome>,
    /// Scheduled ahead of need and not wanted by any read yet: cancelled on a seek.
    read_ahead: bool,
    last_use: u64,
    task: Option<AbortHandle>,
}

#[derive(Clone)]
enum Outcome {
    Pending,
    Ready(Arc<PartData>),
    Failed(FsError),
}

/// The bytes of a part, as the pieces they arrived in (cached chunks, network responses).
struct PartData {
    /// `(offset in the file, bytes)`, contiguous and in order.
    pieces: Vec<(u64, Bytes)>,
    /// The ranges that came from the network (the others came from the cache).
    fetched: Vec<(u64, u64)>,
}

impl PartData {
    /// Appends slices of `a..b` (inside this part) to `out`, without copying.
    fn slices(&self, a: u64, b: u64, out: &mut Vec<Bytes>) {
        let first = self
            .pieces
            .partition_point(|(start, data)| start + data.len() as u64 <= a);
        for (start, data) in &self.pieces[first..] {
            if *start >= b {
                break;
            }
            let from = a.max(*start) - start;
            let to = b.min(start + data.len() as u64) - start;
            out.push(data.slice(from as usize..to as usize));
        }
    }
}

/// One slice or a copy of several.
fn join(slices: Vec<Bytes>) -> Bytes {
    if slices.len() == 1 {
        return slices.into_iter().next().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(slices.iter().map(Bytes::len).sum());
    for s in &slices {
        out.extend_from_slice(s);
    }
    out.freeze()
}

/// Where reading is expected to continue, and how far ahead it is being fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stream {
    /// Where the stream began.
    start: u64,
    /// The end of its furthest read.
    next: u64,
    /// Bytes its reads asked for (repeated reads count again).
    bytes: u64,
    /// Its reads that went past `next`.
    advances: u32,
    window: u64,
    /// The end of the read-ahead scheduled.
    ahead_to: u64,
    /// As of the latest read.
    sequential: bool,
}

impl Stream {
    fn new(window: u64) -> Stream {
        Stream {
            start: 0,
            next: 0,
            bytes: 0,
            advances: 0,
            window,
            ahead_to: 0,
            sequential: false,
        }
    }

    /// Follows the read `offset..end`. Returns whether it left the stream (a seek): read-ahead
    /// nobody waits for is useless then.
    fn observe(&mut self, offset: u64, end: u64, cfg: &ReadConfig) -> bool {
        let behind = cfg.backlog.max(cfg.reorder_distance);
        let ahead = self
            .next
            .saturating_add(cfg.reorder_distance)
            .max(self.ahead_to);
        let continues =
            self.advances > 0 && offset.saturating_add(behind) >= self.next && offset <= ahead;
        if !continues {
            let seek = self.advances > 0;
            *self = Stream {
                start: offset,
                next: end,
                bytes: end - offset,
                advances: 1,
                window: cfg.initial_window,
                ahead_to: end,
                sequential: false,
            };
            return seek;
        }
        if end > self.next {
            self.advances = self.advances.saturating_add(1);
            self.next = end;
        }
        self.start = self.start.min(offset);
        self.bytes = self.bytes.saturating_add(end - offset);
        // Reads that skip ahead (a scan picking records here and there) are not sequential
        // however regular they are: they would read ahead mostly bytes nobody wants.
        let dense = self.bytes.saturating_mul(2) >= self.next - self.start;
        self.sequential = self.advances >= 2 && dense;
        false
    }

    /// Where read-ahead should now reach, when it needs extending after a read ending at
    /// `end`: a window past the read, once at least one step of it was consumed. Doubles the
    /// window for the next time.
    fn read_ahead_to(
        &mut self,
        end: u64,
        size: u64,
        part_size: u64,
        align: u64,
        max_window: u64,
    ) -> Option<u64> {
        if self.ahead_to >= size {
            return None;
        }
        let step = part_size.min(self.window / 2).max(1);
        if self.ahead_to.saturating_add(step) >= end.saturating_add(self.window) {
            return None;
        }
        let unit = if self.window >= part_size {
            part_size
        } else {
            align
        };
        let target = round_up(end.saturating_add(self.window), unit).min(size);
        self.ahead_to = self.ahead_to.max(target);
        self.window = self.window.saturating_mul(2).min(max_window);
        Some(target)
    }
}

/// What a read waits for: a part of `start..end`, in memory or on its way.
struct Wanted {
    start: u64,
    end: u64,
    slot: Slot,
}

enum Slot {
    Ready(Arc<PartData>),
    Pending(watch::Receiver<Outcome>),
}

enum Failure {
    Failed(FsError),
    /// The part's task ended without an outcome.
    Cancelled,
}

/// Waits for the parts and answers `offset..end` from them.
async fn collect(wanted: Vec<Wanted>, offset: u64, end: u64) -> Result<Bytes, Failure> {
    let mut slices = Vec::with_capacity(wanted.len());
    for w in wanted {
        let data = match w.slot {
            Slot::Ready(data) => data,
            Slot::Pending(mut done) => {
                let outcome = done
                    .wait_for(|o| !matches!(o, Outcome::Pending))
                    .await
                    .map_err(|_| Failure::Cancelled)?
                    .clone();
                match outcome {
                    Outcome::Ready(data) => data,
                    Outcome::Failed(e) => return Err(Failure::Failed(e)),
                    Outcome::Pending => return Err(Failure::Cancelled),
                }
            }
        };
        data.slices(offset.max(w.start), end.min(w.end), &mut slices);
    }
    Ok(join(slices))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a few assignments; it stays usable after a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Under the lock: notes the access, schedules the parts `offset..end` (and read-ahead)
    /// needs, and returns what the read must wait for.
    fn plan(self: &Arc<Self>, offset: u64, end: u64) -> Vec<Wanted> {
        let cfg = &self.cfg;
        let size = self.file.size;
        let mut guard = self.lock();
        let st = &mut *guard;
        st.tick += 1;
        let tick = st.tick;
        let cancelled = if st.stream.observe(offset, end, cfg) {
            self.take_read_ahead(st)
        } else {
            Vec::new()
        };
        let (fill_from, fill_to, unit) = if st.stream.sequential {
            // A quarter of the window per GET while the window is small, so that the first
            // read-ahead is fetched over several connections too; but no GET under 1 MiB,
            // where the latency of a request costs more than its transfer.
            let smallest = round_up(MIN_SPLIT_PART.min(cfg.part_size), self.seq_align);
            let unit = round_down(st.stream.window / 4, self.seq_align)
                .clamp(smallest, cfg.part_size.max(smallest));
            // From the furthest read: a late one (the kernel's reorderings) is behind it.
            let from = st.stream.next.max(end);
            let max_window = self.max_window();
            st.stream.window = st.stream.window.min(max_window);
            let to = st
                .stream
                .read_ahead_to(from, size, cfg.part_size, self.seq_align, max_window)
                .unwrap_or(end)
                .max(end);
            (
                round_down(offset, self.seq_align),
                round_up(to, self.seq_align).min(size),
                unit,
            )
        } else {
            (
                round_down(offset, cfg.random_align),
                round_up(end, cfg.random_align).min(size),
                cfg.part_size,
            )
        };
        for (a, b) in st.holes(fill_from, fill_to) {
            let mut p = a;
            while p < b {
                let q = round_up(p + 1, unit)
                    .min(round_up(p + 1, cfg.part_size))
                    .min(b);
                let read_ahead = q <= offset || p >= end;
                self.spawn_part(st, p, q, read_ahead);
                p = q;
            }
        }
        let mut wanted = Vec::new();
        for (&start, part) in st.overlapping_mut(offset, end) {
            part.read_ahead = false;
            part.last_use = tick;
            let slot = match &part.data {
                Some(data) => Slot::Ready(data.clone()),
                None => Slot::Pending(part.done.clone()),
            };
            wanted.push(Wanted {
                start,
                end: part.end,
                slot,
            });
        }
        self.evict(st, offset, end);
        self.admit_queued(st);
        self.report(st);
        drop(guard);
        for task in cancelled {
            task.abort();
        }
        wanted
    }

    /// The read-ahead window's bound: the configured one, within the reader's share of the
    /// budget (less one part, so that what is being read fits too), at least one part.
    fn max_window(&self) -> u64 {
        let cfg = &self.cfg;
        match &self.share {
            Some(share) => cfg
                .max_window
                .min(share.memory().saturating_sub(cfg.part_size))
                .max(cfg.part_size),
            None => cfg.max_window,
        }
    }

    /// GETs this reader may have in flight now.
    fn max_parallel(&self) -> usize {
        match &self.share {
            Some(share) => self.cfg.max_parallel.min(share.connections()),
            None => self.cfg.max_parallel,
        }
    }

    /// Tells the budget what the reader holds.
    fn report(&self, st: &State) {
        if let Some(share) = &self.share {
            share.report(st.buffered());
        }
    }

    /// Starts queued GETs while the reader's share of connections allows (it grows when other
    /// readers stop).
    fn admit_queued(&self, st: &mut State) {
        while st.running < self.max_parallel() {
            let Some((_, next)) = st.queued.pop_first() else {
                return;
            };
            if next.send(()).is_ok() {
                st.running += 1;
            }
        }
    }

    fn spawn_part(self: &Arc<Self>, st: &mut State, start: u64, end: u64, read_ahead: bool) {
        let id = st.next_id;
        st.next_id += 1;
        let (tx, rx) = watch::channel(Outcome::Pending);
        let inner = self.clone();
        let task = tokio::spawn(async move {
            let result = inner.load(start, end).await;
            inner.finish(start, end, id, result, tx);
        });
        st.parts.insert(
            start,
            Part {
                end,
                id,
                data: None,
                done: rx,
                read_ahead,
                last_use: st.tick,
                task: Some(task.abort_handle()),
            },
        );
        bump(&self.counters.parts, 1);
        if read_ahead {
            bump(&self.counters.read_ahead_parts, 1);
        }
    }

    /// After a seek: read-ahead still being fetched that no read waits for is useless.
    /// Removes it and returns its tasks, to be aborted once the lock is released.
    fn take_read_ahead(&self, st: &mut State) -> Vec<AbortHandle> {
        let doomed: Vec<u64> = st
            .parts
            .iter()
            .filter(|(_, p)| p.read_ahead && p.data.is_none())
            .map(|(&start, _)| start)
            .collect();
        bump(&self.counters.cancelled_parts, doomed.len() as u64);
        doomed
            .into_iter()
            .filter_map(|start| st.parts.remove(&start).and_then(|p| p.task))
            .collect()
    }

    /// Drops parts in memory that fell behind a sequential stream's backlog (random readers
    /// come back anywhere), then the least recently used ones
    /// while the reader holds more than its budget. Never the parts of `keep_a..keep_b`, nor
    /// parts being fetched.
    fn evict(&self, st: &mut State, keep_a: u64, keep_b: u64) {
        let cfg = &self.cfg;
        let behind = if st.stream.sequential {
            st.stream
                .next
                .saturating_sub(cfg.backlog.max(cfg.reorder_distance))
        } else {
            0
        };
        let mut budget = cfg
            .max_window
            .saturating_add(cfg.part_size.saturating_mul(2))
            .saturating_add(cfg.backlog);
        if let Some(share) = &self.share {
            // Within the share, but never below the window and the part being read.
            budget = budget.min(
                share
                    .memory()
                    .max(self.max_window().saturating_add(cfg.part_size)),
            );
        }
        let mut total = st.buffered();
        let mut candidates: Vec<(u64, u64, u64)> = st
            .parts
            .iter()
            .filter(|(&start, p)| p.data.is_some() && (p.end <= keep_a || start >= keep_b))
            .map(|(&start, p)| (p.last_use, start, p.end))
            .collect();
        candidates.retain(|&(_, start, end)| {
            if end <= behind {
                st.parts.remove(&start);
                total -= end - start;
                false
            } else {
                true
            }
        });
        if total <= budget {
            return;
        }
        candidates.sort_unstable();
        for (_, start, end) in candidates {
            if total <= budget {
                break;
            }
            st.parts.remove(&start);
            total -= end - start;
        }
    }

    /// Fetches part `start..end`: cached chunks from the cache, the rest from the network.
    async fn load(&self, start: u64, end: u64) -> FsResult<PartData> {
        let mut pieces = Vec::new();
        let mut missing: Vec<(u64, u64)> = Vec::new();
        match &self.cache {
            Some(cache) => {
                let chunk = cache.chunk_size();
                let (first, last) = (start / chunk, (end - 1) / chunk);
                let (cache2, key) = (cache.clone(), self.key.clone());
                let found = tokio::task::spawn_blocking(move || {
                    (first..=last)
                        .map(|c| cache2.get(&key, c))
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(|e| FsError::new(libc::EIO, format!("reading the content cache: {e}")))?;
                for (c, hit) in (first..=last).zip(found) {
                    let chunk_start = c * chunk;
                    let a = start.max(chunk_start);
                    let b = end.min(chunk_start + chunk).min(self.file.size);
                    match hit {
                        Some(data) => {
                            bump(&self.counters.cache_hits, 1);
                            bump(&self.counters.cache_bytes, b - a);
                            pieces
                                .push((a, piece_of_chunk(data, a - chunk_start, b - chunk_start)));
                        }
                        None => match missing.last_mut() {
                            Some(run) if run.1 == a => run.1 = b,
                            _ => missing.push((a, b)),
                        },
                    }
                }
            }
            None => missing.push((start, end)),
        }
        let fetched = try_join_all(missing.iter().map(|&(a, b)| self.fetch(a, b))).await?;
        pieces.extend(missing.iter().map(|&(a, _)| a).zip(fetched));
        pieces.sort_unstable_by_key(|(a, _)| *a);
        Ok(PartData {
            pieces,
            fetched: missing,
        })
    }

    /// Publishes a part's outcome to its readers, then stores the chunks it completed.
    fn finish(
        self: &Arc<Self>,
        start: u64,
        end: u64,
        id: u64,
        result: FsResult<PartData>,
        done: watch::Sender<Outcome>,
    ) {
        let mut chunks = Vec::new();
        let outcome = {
            let mut st = self.lock();
            let current = st.parts.get_mut(&start).filter(|p| p.id == id);
            match result {
                Ok(data) => {
                    let data = Arc::new(data);
                    if let Some(part) = current {
                        part.data = Some(data.clone());
                        part.task = None;
                    } else if st.holes(start, end) == [(start, end)] {
                        // Cancelled by a seek when its bytes had already arrived (this task
                        // was waiting for the lock): keep them rather than fetch them again.
                        let part = Part {
                            end,
                            id,
                            data: Some(data.clone()),
                            done: done.subscribe(),
                            read_ahead: false,
                            last_use: st.tick,
                            task: None,
                        };
                        st.parts.insert(start, part);
                    }
                    chunks = self.completed_chunks(&st, &data.fetched);
                    Outcome::Ready(data)
                }
                Err(e) => {
                    if current.is_some() {
                        // Gone from the map, so that the next read tries again.
                        st.parts.remove(&start);
                    }
                    Outcome::Failed(e)
                }
            }
        };
        done.send_replace(outcome);
        self.store(chunks);
    }

    /// The chunks touched by `fetched` that parts in memory now cover whole.
    fn completed_chunks(&self, st: &State, fetched: &[(u64, u64)]) -> Vec<(u64, Bytes)> {
        let Some(cache) = &self.cache else {
            return Vec::new();
        };
        let chunk = cache.chunk_size();
        let mut out: Vec<(u64, Bytes)> = Vec::new();
        for &(a, b) in fetched {
            for c in a / chunk..=(b - 1) / chunk {
                if out.last().is_some_and(|(last, _)| *last == c) {
                    continue;
                }
                let chunk_start = c * chunk;
                let chunk_end = (chunk_start + chunk).min(self.file.size);
                if let Some(slices) = st.in_memory(chunk_start, chunk_end) {
                    out.push((c, join(slices)));
                }
            }
        }
        out
    }

    /// Writes chunks to the cache off the reply path.
    fn store(self: &Arc<Self>, chunks: Vec<(u64, Bytes)>) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        if chunks.is_empty() {
            return;
        }
        bump(&self.counters.cache_writes_pending, chunks.len() as u64);
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            for (c, data) in chunks {
                match cache.put(&inner.key, c, &data) {
                    Ok(true) => bump(&inner.counters.cache_stores, 1),
                    Ok(false) => {}
                    Err(e) => log::debug!(
                        "content cache: chunk {c} of file {}: {e}",
                        inner.file.file_id
                    ),
                }
                inner
                    .counters
                    .cache_writes_pending
                    .fetch_sub(1, Ordering::Relaxed);
            }
        });
    }

    /// One ranged GET of `start..end`, holding one of the reader's connections.
    async fn fetch(&self, start: u64, end: u64) -> FsResult<Bytes> {
        let _slot = self.connection(start).await;
        let _in_flight = InFlight::enter(&self.counters);
        let _counted = self.share.as_ref().map(ReadShare::request);
        let range = ByteRange {
            start,
            end: Some(end),
        };
        let download = self.source.download(Some(range)).await?;
        if !self.version_is_id {
            // The current version was asked for: it must still be the one we serve.
            if let Some(etag) = download.etag().filter(|e| is_sha1(e)) {
                if !etag.eq_ignore_ascii_case(&self.file.version) {
                    return Err(FsError::new(
                        libc::ESTALE,
                        format!(
                            "file {} changed on Box (content {etag}, expected {})",
                            self.file.file_id, self.file.version
                        ),
                    ));
                }
            }
        }
        let bytes = download.bytes().await?;
        if bytes.len() as u64 != end - start {
            return Err(FsError::new(
                libc::EIO,
                format!(
                    "file {}: asked for bytes {start}..{end}, got {} bytes",
                    self.file.file_id,
                    bytes.len()
                ),
            ));
        }
        bump(&self.counters.network_requests, 1);
        bump(&self.counters.network_bytes, bytes.len() as u64);
        Ok(bytes)
    }

    /// Waits for one of the reader's `max_parallel` connection slots; the GET at the lowest
    /// offset is served first.
    async fn connection(&self, start: u64) -> ConnectionSlot<'_> {
        let waiting = {
            let mut st = self.lock();
            if st.running < self.max_parallel() {
                st.running += 1;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                let id = st.next_id;
                st.next_id += 1;
                st.queued.insert((start, id), tx);
                Some(rx)
            }
        };
        let mut slot = ConnectionSlot {
            inner: self,
            waiting,
        };
        if let Some(rx) = &mut slot.waiting {
            // The sender goes only with the reader, which aborts this task first.
            let _ = rx.await;
            slot.waiting = None;
        }
        slot
    }

    /// Hands a finished GET's slot to the lowest queued one, or frees it.
    fn release_connection(&self) {
        let mut st = self.lock();
        // The reader's share shrank (more readers): the slot goes back instead.
        while st.running <= self.max_parallel() {
            let Some((_, next)) = st.queued.pop_first() else {
                break;
            };
            if next.send(()).is_ok() {
                return;
            }
            // That GET was cancelled while it waited.
        }
        st.running = st.running.saturating_sub(1);
    }
}

fn is_sha1(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A slice of a cached chunk; copied when it is a small part of it, so that a random read
/// does not keep a whole chunk alive.
fn piece_of_chunk(chunk: Bytes, from: u64, to: u64) -> Bytes {
    let slice = chunk.slice(from as usize..to as usize);
    if slice.len() * 2 < chunk.len() {
        Bytes::copy_from_slice(&slice)
    } else {
        slice
    }
}

/// A connection slot, held (or waited for) by one ranged GET.
struct ConnectionSlot<'a> {
    inner: &'a Inner,
    /// Still queued.
    waiting: Option<oneshot::Receiver<()>>,
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        let granted = match self.waiting.as_mut() {
            None => true,
            // Cancelled while queued: the slot may have been handed over meanwhile.
            Some(rx) => rx.try_recv().is_ok(),
        };
        if granted {
            self.inner.release_connection();
        }
    }
}

/// Counts a ranged GET in flight while it lives.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn enter(counters: &'a Counters) -> InFlight<'a> {
        let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        counters.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ReadConfig {
        ReadConfig {
            part_size: 256 * KIB,
            initial_window: 128 * KIB,
            max_window: MIB,
            max_parallel: 4,
            backlog: 512 * KIB,
            reorder_distance: 512 * KIB,
            random_align: 16 * KIB,
        }
    }

    /// Feeds reads of `len` at `offsets` and returns the stream after each.
    fn follow(offsets: &[u64], len: u64) -> Vec<(bool, bool)> {
        let cfg = cfg();
        let mut s = Stream::new(cfg.initial_window);
        offsets
            .iter()
            .map(|&o| {
                let seek = s.observe(o, o + len, &cfg);
                (seek, s.sequential)
            })
            .collect()
    }

    #[test]
    fn two_reads_in_a_row_make_a_sequential_stream() {
        let seen = follow(&[0, 4096, 8192], 4096);
        assert_eq!(seen, vec![(false, false), (false, true), (false, true)]);
        // Starting anywhere.
        let seen = follow(&[10 * MIB, 10 * MIB + 4096], 4096);
        assert_eq!(seen, vec![(false, false), (false, true)]);
    }

    #[test]
    fn the_kernels_reorderings_stay_in_the_stream() {
        let r = 128 * KIB;
        let seen = follow(&[2 * r, 0, 3 * r, r, 4 * r, 6 * r, 5 * r, 5 * r, 7 * r], r);
        assert!(seen.iter().all(|(seek, _)| !seek), "{seen:?}");
        assert!(seen[2..].iter().all(|(_, seq)| *seq), "{seen:?}");
    }

    #[test]
    fn far_jumps_are_seeks_and_reset_the_window() {
        let cfg = cfg();
        let mut s = Stream::new(cfg.initial_window);
        for o in [0, 4096, 8192] {
            s.observe(o, o + 4096, &cfg);
        }
        s.read_ahead_to(12288, 100 * MIB, cfg.part_size, 64 * KIB, cfg.max_window);
        assert!(s.window > cfg.initial_window);
        // Forward past the reorder distance and the read-ahead.
        assert!(s.observe(5 * MIB, 5 * MIB + 4096, &cfg));
        assert!(!s.sequential);
        assert_eq!(s.window, cfg.initial_window);
        // Backward past the backlog.
        s.observe(5 * MIB + 4096, 5 * MIB + 8192, &cfg);
        assert!(s.sequential);
        assert!(s.observe(MIB, MIB + 4096, &cfg));
        // A short step back is no seek.
        s.observe(MIB + 4096, MIB + 8192, &cfg);
        assert!(!s.observe(MIB - 100 * KIB, MIB - 96 * KIB, &cfg));
    }

    #[test]
    fn reads_that_skip_ahead_are_not_sequential() {
        // 4 KiB every 256 KiB: forward, close together, but mostly skipping.
        let offsets: Vec<u64> = (0..10).map(|i| i * 256 * KIB).collect();
        let seen = follow(&offsets, 4096);
        assert!(seen.iter().all(|&(seek, seq)| !seek && !seq), "{seen:?}");
    }

    #[test]
    fn the_read_ahead_window_doubles_up_to_its_maximum() {
        let cfg = cfg();
        let size = 100 * MIB;
        let mut s = Stream::new(cfg.initial_window);
        s.observe(0, 64 * KIB, &cfg);
        s.observe(64 * KIB, 128 * KIB, &cfg);
        let mut pos = 128 * KIB;
        let mut targets = Vec::new();
        let mut windows = Vec::new();
        while pos < 8 * MIB {
            if let Some(t) = s.read_ahead_to(pos, size, cfg.part_size, 64 * KIB, cfg.max_window) {
                assert!(t >= pos + windows.last().copied().unwrap_or(0) / 2);
                targets.push(t);
                windows.push(s.window);
            }
            pos += 64 * KIB;
        }
        assert_eq!(&windows[..4], &[256 * KIB, 512 * KIB, MIB, MIB]);
        assert!(targets.windows(2).all(|w| w[0] < w[1]), "{targets:?}");
        // Once the window holds whole parts, read-ahead ends on the part grid.
        assert!(
            targets[3..].iter().all(|t| t % cfg.part_size == 0),
            "{targets:?}"
        );
        // Refills come once a step was read, not at every read: 8 MiB in 64 KiB reads.
        assert!(targets.len() < 40, "{}", targets.len());
        // Never past the end of the file.
        assert_eq!(
            s.read_ahead_to(size - 10, size, cfg.part_size, 64 * KIB, cfg.max_window),
            Some(size)
        );
        assert_eq!(
            s.read_ahead_to(size - 5, size, cfg.part_size, 64 * KIB, cfg.max_window),
            None
        );
    }

    fn part(end: u64, data: Option<Vec<(u64, &'static [u8])>>) -> Part {
        let (_tx, done) = watch::channel(Outcome::Pending);
        Part {
            end,
            id: 0,
            data: data.map(|pieces| {
                Arc::new(PartData {
                    pieces: pieces
                        .into_iter()
                        .map(|(o, d)| (o, Bytes::from_static(d)))
                        .collect(),
                    fetched: Vec::new(),
                })
            }),
            done,
            read_ahead: false,
            last_use: 0,
            task: None,
        }
    }

    fn state(parts: Vec<(u64, Part)>) -> State {
        State {
            parts: parts.into_iter().collect(),
            stream: Stream::new(1),
            next_id: 0,
            tick: 0,
            running: 0,
            queued: BTreeMap::new(),
        }
    }

    #[test]
    fn holes_are_what_no_part_covers() {
        let st = state(vec![
            (10, part(20, None)),
            (20, part(25, None)),
            (40, part(50, None)),
        ]);
        assert_eq!(st.holes(0, 60), vec![(0, 10), (25, 40), (50, 60)]);
        assert_eq!(st.holes(15, 45), vec![(25, 40)]);
        assert_eq!(st.holes(12, 18), vec![]);
        assert_eq!(st.holes(30, 35), vec![(30, 35)]);
        assert_eq!(st.holes(0, 0), vec![]);
    }

    #[test]
    fn bytes_in_memory_are_sliced_across_parts_and_pieces() {
        let st = state(vec![
            (0, part(6, Some(vec![(0, b"abc"), (3, b"def")]))),
            (6, part(9, Some(vec![(6, b"ghi")]))),
            (9, part(12, None)),
        ]);
        let got = st.in_memory(1, 8).unwrap();
        assert_eq!(got.len(), 3, "one slice per piece");
        assert_eq!(join(got), Bytes::from_static(b"bcdefgh"));
        let one = st.in_memory(3, 6).unwrap();
        assert_eq!(one, vec![Bytes::from_static(b"def")]);
        assert!(
            st.in_memory(5, 10).is_none(),
            "the last part is still on its way"
        );
        assert!(st.in_memory(11, 14).is_none(), "nothing past 12");
    }

    #[test]
    fn the_config_is_made_consistent() {
        let odd = ReadConfig {
            part_size: 100 * KIB,
            initial_window: 0,
            max_window: 0,
            max_parallel: 0,
            backlog: 0,
            reorder_distance: 0,
            random_align: 0,
        };
        let fixed = sanitize(odd.clone(), None);
        assert_eq!(fixed.part_size, 100 * KIB);
        assert_eq!(fixed.max_parallel, 1);
        assert!(fixed.initial_window >= 1 && fixed.max_window >= fixed.initial_window);
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::open_with_chunk_size(dir.path(), MIB, 64 * KIB).unwrap();
        // Parts hold whole chunks.
        assert_eq!(sanitize(odd, Some(&cache)).part_size, 128 * KIB);
    }

    #[test]
    fn versions_that_can_be_asked_for() {
        assert!(is_box_id("123456789"));
        assert!(!is_box_id("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
        assert!(!is_box_id(""));
        assert!(is_sha1("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
        assert!(!is_sha1("123"));
    }

    #[test]
    fn small_slices_of_cached_chunks_are_copied() {
        let chunk = Bytes::from(vec![7u8; 1000]);
        let small = piece_of_chunk(chunk.clone(), 10, 20);
        assert_eq!(small.len(), 10);
        let large = piece_of_chunk(chunk.clone(), 0, 900);
        assert_eq!(
            large.as_ptr(),
            chunk.as_ptr(),
            "a large slice shares the chunk"
        );
    }
}
