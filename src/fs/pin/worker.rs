//! The pins' background task: turns signals into pinned items to walk, walks them one at a
//! time, and keeps a few downloads running from a queue of file ids (the version to fetch is
//! read when a download starts, so a file changed while it waited is fetched as it is now).
//! Everything it sends to Box runs with background priority.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use super::fetch::{fetch_file, PinnedFile};
use super::walk::Found;
use super::{chain_of, release, space_at, Held, Signal, ATTEMPTS, RETRY_AFTER};
use crate::fs::backend::priority::in_background;
use crate::fs::errno::FsError;
use crate::fs::read::content_cache::ContentCache;
use crate::fs::tree::inode::Ino;
use crate::fs::{lock, BoxFs};
use crate::human::human_bytes;

type Finished = (PinnedFile, Result<(), FsError>);

struct Worker {
    fs: Arc<BoxFs>,
    cache: Arc<ContentCache>,
    signals: mpsc::UnboundedReceiver<Signal>,
    /// Pinned items to walk.
    dirty: BTreeSet<String>,
    /// Pinned items to walk again after a failure, and when.
    later: BTreeSet<String>,
    later_at: Option<tokio::time::Instant>,
    /// Files to download, by id, in order.
    queue: VecDeque<String>,
    queued: HashSet<String>,
    /// Downloads running: file id → version.
    in_flight: HashMap<String, String>,
    running: JoinSet<Finished>,
    /// The file each download task is for (a task that panicked says only its id).
    tasks: HashMap<tokio::task::Id, String>,
}

impl BoxFs {
    /// Starts the pins' worker (once: a second call returns a task that ends at once). It
    /// runs until aborted, or until the filesystem is dropped.
    pub fn spawn_pin_worker(self: &Arc<Self>) -> JoinHandle<()> {
        let taken = lock(&self.pins.receiver).take();
        let (Some(signals), Some(cache)) = (taken, self.content_cache().cloned()) else {
            return tokio::spawn(async {});
        };
        let dirty = lock(&self.pins.state).roots.keys().cloned().collect();
        let worker = Worker {
            fs: self.clone(),
            cache,
            signals,
            dirty,
            later: BTreeSet::new(),
            later_at: None,
            queue: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashMap::new(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
        };
        tokio::spawn(in_background(worker.run()))
    }
}

impl Worker {
    async fn run(mut self) {
        loop {
            while let Ok(signal) = self.signals.try_recv() {
                self.route(signal);
            }
            // Downloads that ended are taken in before another walk, however busy.
            while let Some(done) = self.running.try_join_next_with_id() {
                self.joined(done);
            }
            self.start_downloads();
            if let Some(root) = self.dirty.pop_first() {
                self.walk(&root).await;
                continue;
            }
            self.let_go_of_unclaimed().await;
            let later_at = self.later_at;
            tokio::select! {
                signal = self.signals.recv() => match signal {
                    Some(s) => self.route(s),
                    None => return,
                },
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    self.joined(done);
                }
                _ = tokio::time::sleep_until(later_at.unwrap_or_else(tokio::time::Instant::now)),
                    if later_at.is_some() =>
                {
                    self.later_at = None;
                    self.dirty.append(&mut self.later);
                }
            }
        }
    }

    /// Which pinned items a signal concerns.
    fn route(&mut self, signal: Signal) {
        let (ino, child) = match signal.clone() {
            Signal::Walk(root) => {
                self.dirty.insert(root);
                return;
            }
            Signal::ContentDropped(file) => {
                if let Some(held) = lock(&self.fs.pins.state).files.get(&file) {
                    self.dirty.extend(held.roots.iter().cloned());
                }
                return;
            }
            Signal::EntryChanged(dir) => (dir, None),
            Signal::InodeChanged(ino) => (ino, None),
            Signal::Removed { parent, child } => (parent, Some(child)),
        };
        let chain = {
            let table = lock(&self.fs.table);
            if let Signal::InodeChanged(ino) = signal {
                // A folder's listing that came back different says so for the whole folder,
                // also when it only lists again what the metadata cache had evicted (as a
                // walk of a tree larger than that cache does every time): its names that
                // changed come as entries, its files' new content as their own inodes.
                if table.get(ino).is_some_and(|i| i.is_dir()) {
                    return;
                }
            }
            chain_of(&table, ino)
        };
        let state = lock(&self.fs.pins.state);
        for (id, root) in &state.roots {
            let at = |i: Ino| root.ino == Some(i);
            if chain.contains(id) || at(ino) || child.is_some_and(at) {
                self.dirty.insert(id.clone());
            }
        }
    }

    /// Walks pinned item `root`: finds it, lists what is below it, keeps its files and
    /// queues what the cache lacks.
    async fn walk(&mut self, root: &str) {
        let Some(kind) = lock(&self.fs.pins.state).roots.get(root).map(|r| r.kind) else {
            return;
        };
        let found = self.fs.find_pinned(root, kind).await;
        let ino = match found {
            Ok(Found::At(ino)) => ino,
            Ok(Found::Gone) => {
                log::info!(
                    "offline: pinned item {root} is no longer in the mount (trashed, deleted \
                     or moved out of it): unpinned"
                );
                let released = {
                    let mut state = lock(&self.fs.pins.state);
                    state.roots.remove(root);
                    self.fs.pins.update_active(&state);
                    state.let_go(root, |_| false)
                };
                release(&self.cache, released).await;
                self.fs.pins.save_or_warn().await;
                return;
            }
            Err(e) => {
                self.failed(root, format!("finding pinned item {root}: {}", e.message()));
                return;
            }
        };
        if let Some(r) = lock(&self.fs.pins.state).roots.get_mut(root) {
            r.ino = Some(ino);
        }
        let files = match self.fs.files_below(ino).await {
            Ok(files) => files,
            Err(e) => {
                self.failed(root, format!("listing pinned item {root}: {}", e.message()));
                return;
            }
        };
        let (wanted, released, changed) = self.claim(root, files);
        release(&self.cache, released).await;
        for id in wanted {
            if self.queued.insert(id.clone()) {
                self.queue.push_back(id);
            }
        }
        if changed {
            self.fs.pins.save_or_warn().await;
        }
    }

    /// Records `files` as what is below `root` now. Returns the files to download, those no
    /// pin holds any more, and whether the set of files kept changed.
    fn claim(&self, root: &str, files: Vec<PinnedFile>) -> (Vec<String>, Vec<String>, bool) {
        let mut state = lock(&self.fs.pins.state);
        let Some(r) = state.roots.get_mut(root) else {
            // Unpinned during the walk.
            return (Vec::new(), Vec::new(), false);
        };
        r.walked = true;
        let seen: HashSet<String> = files.iter().map(|f| f.box_id.clone()).collect();
        let mut wanted = Vec::new();
        let mut changed = false;
        for file in files {
            state.unclaimed.remove(&file.box_id);
            let id = file.box_id.clone();
            let held = state.files.entry(id.clone()).or_insert_with(|| {
                changed = true;
                self.cache.pin_file(&id);
                Held {
                    roots: BTreeSet::new(),
                    file: file.clone(),
                    done: false,
                    attempts: 0,
                }
            });
            held.roots.insert(root.to_string());
            if held.file != file {
                held.file = file;
                held.attempts = 0;
            }
            held.done = self.cache.missing_chunks(&held.file.key()).is_empty();
            let running = self.in_flight.get(&id) == Some(&held.file.version);
            if !held.done && !running && held.attempts < ATTEMPTS {
                wanted.push(id);
            }
        }
        let released = state.let_go(root, |id| seen.contains(id));
        changed |= !released.is_empty();
        state.waiting = (self.queued.len() + wanted.len()) as u64;
        (wanted, released, changed)
    }

    /// Starts downloads from the queue while slots are free.
    fn start_downloads(&mut self) {
        let parallel = self.fs.pins.opts.parallel.max(1);
        while self.running.len() < parallel {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&id);
            let file = {
                let state = lock(&self.fs.pins.state);
                match state.files.get(&id) {
                    Some(held) if !held.done => held.file.clone(),
                    _ => continue,
                }
            };
            if self.in_flight.get(&id) == Some(&file.version) {
                continue;
            }
            let missing = self.cache.missing_chunks(&file.key()).len() as u64;
            let needed = (missing * self.cache.chunk_size()).min(file.size);
            let space = space_at(self.cache.dir(), self.fs.pins.opts.keep_free);
            if let Some(usable) = space.as_ref().ok().map(|s| s.usable()) {
                if needed > usable {
                    let roots = self.roots_of(&id);
                    for root in roots.iter().take(1) {
                        self.failed(
                            root,
                            format!(
                                "{} needs {}; the cache's disk has {} available",
                                file.name,
                                human_bytes(needed),
                                human_bytes(usable)
                            ),
                        );
                    }
                    continue;
                }
            }
            let done = Arc::new(AtomicU64::new(0));
            lock(&self.fs.pins.state)
                .downloading
                .insert(id.clone(), (file.name.clone(), file.size, done.clone()));
            self.in_flight.insert(id.clone(), file.version.clone());
            let client = self.fs.client().clone();
            let cache = self.cache.clone();
            let task = self.running.spawn(in_background(async move {
                let result = fetch_file(&client, &cache, &file, &done).await;
                (file, result)
            }));
            self.tasks.insert(task.id(), id);
        }
        lock(&self.fs.pins.state).waiting = self.queue.len() as u64;
    }

    fn joined(&mut self, done: Result<(tokio::task::Id, Finished), tokio::task::JoinError>) {
        match done {
            Ok((task, finished)) => {
                self.tasks.remove(&task);
                self.finished(finished);
            }
            Err(e) => self.lost(e),
        }
    }

    /// A download ended.
    fn finished(&mut self, (file, result): Finished) {
        let id = file.box_id.clone();
        if self.in_flight.get(&id) == Some(&file.version) {
            self.in_flight.remove(&id);
        }
        let complete = self.cache.missing_chunks(&file.key()).is_empty();
        let mut retry = Vec::new();
        let mut failure = None;
        let mut superseded = false;
        {
            let mut state = lock(&self.fs.pins.state);
            state.downloading.remove(&id);
            let Some(held) = state.files.get_mut(&id).filter(|h| h.file == file) else {
                // Unpinned, or changed since: the walk that noticed decides.
                return;
            };
            match result {
                Ok(()) if complete => {
                    held.done = true;
                    superseded = true;
                }
                Ok(()) => {
                    // Dropped while it was written (a new version, a failed check).
                    held.attempts += 1;
                    if held.attempts < ATTEMPTS {
                        retry.extend(held.roots.iter().cloned());
                    } else {
                        failure = Some(format!(
                            "{}: the cache did not keep a complete copy",
                            file.name
                        ));
                    }
                }
                Err(e) => {
                    failure = Some(format!("{}: {}", file.name, e.message()));
                    retry.extend(held.roots.iter().cloned());
                }
            }
            if let Some(f) = failure.clone() {
                state.fail(f);
            }
        }
        if failure.is_some() {
            self.retry_later(retry);
        } else {
            self.dirty.extend(retry);
        }
        if superseded {
            // Versions Box replaced while nobody said so (the mount was down): held, they
            // would never be evicted.
            let cache = self.cache.clone();
            tokio::task::spawn_blocking(move || cache.keep_only_version(&id, &file.version));
        }
    }

    /// A download task that ended without an answer (it panicked, or was cancelled).
    fn lost(&mut self, e: tokio::task::JoinError) {
        let Some(id) = self.tasks.remove(&e.id()) else {
            return;
        };
        self.in_flight.remove(&id);
        let roots = self.roots_of(&id);
        {
            let mut state = lock(&self.fs.pins.state);
            state.downloading.remove(&id);
            state.fail(format!("downloading file {id}: {e}"));
        }
        self.retry_later(roots);
    }

    fn roots_of(&self, file: &str) -> Vec<String> {
        lock(&self.fs.pins.state)
            .files
            .get(file)
            .map(|h| h.roots.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn failed(&mut self, root: &str, what: String) {
        lock(&self.fs.pins.state).fail(what);
        self.retry_later([root.to_string()]);
    }

    fn retry_later(&mut self, roots: impl IntoIterator<Item = String>) {
        self.later.extend(roots);
        if !self.later.is_empty() && self.later_at.is_none() {
            self.later_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
        }
    }

    /// Once every pinned item was walked, what an earlier run kept that no pin holds now
    /// goes back to the LRU.
    async fn let_go_of_unclaimed(&mut self) {
        let released: Vec<String> = {
            let mut state = lock(&self.fs.pins.state);
            if state.unclaimed.is_empty() || state.roots.values().any(|r| !r.walked) {
                return;
            }
            std::mem::take(&mut state.unclaimed).into_iter().collect()
        };
        release(&self.cache, released).await;
        self.fs.pins.save_or_warn().await;
    }
}
