//! The bounded on-disk content cache: file content from Box, kept in fixed-size chunks under
//! one directory and evicted in least-recently-used order once the total passes a bound.
//!
//! Layout: `<dir>/<file id>/<version>/<chunk index>`, plus `<dir>/<file id>/<version>/meta`
//! holding the file size and the chunk size the chunks were cut with. The version is Box's
//! sha1 of the content or a file_version id, so a changed file lands in another directory and
//! is never served stale. Chunks are written to a `.tmp-*` file and renamed into place.
//!
//! Integrity: each chunk file carries a hash of its bytes (see [`crate::fs::read::chunk_file`]), and
//! every read checks the file's length and that hash before serving it, so a crash, a torn
//! write or bit rot leaves nothing that passes for a valid chunk: a chunk that fails is
//! deleted with one warning and read again from Box. Where the key carries Box's SHA-1 of the
//! file, the moment the cache holds every chunk of that version (the `put` of the last missing
//! chunk, on the blocking thread that stores chunks, never on a read) all chunks are read back
//! and the file's SHA-1 compared with Box's; on a mismatch the whole version is dropped, with
//! one warning. This costs one extra read of the file from disk (usually the page cache) and
//! SHA-1 at about 1 GB/s (SHA-NI), once per assembly: a version that stays complete is not
//! checked again, one whose chunk was evicted and fetched again is checked again when
//! complete. Between checks the per-chunk hashes guard what was verified.
//!
//! Modes: the cache directory and everything under it are the user's alone whatever the
//! umask: directories 0700, chunk and `meta` files 0600.
//!
//! The in-memory index (LRU order, byte counts, chunks being written) lives under one
//! `std::sync::Mutex` that is never held across file I/O. The methods are synchronous and use
//! plain `std::fs`; async code calls them through `tokio::task::spawn_blocking` (or
//! `block_in_place`) on an `Arc<ContentCache>`. The index is a hint: disk is checked on every
//! read, and a chunk that vanished or has the wrong length is dropped from the index.
//!
//! Accounting counts chunk bytes only (not `meta` files or directories). `used_bytes()` includes
//! chunks being written, and a `put` reserves its bytes (evicting first) before writing, so the
//! total never exceeds the bound.
//!
//! Pinned files ("available offline", see `crate::fs::pin`): the chunks of a file marked with
//! [`ContentCache::pin_file`] are held apart from the LRU, never evicted, and not counted
//! against the bound ([`ContentCache::pinned_bytes`] counts them); the bound is for the rest.
//! Whoever pins is responsible for the disk space. [`ContentCache::unpin_file`] puts the
//! chunks back in the LRU, at its old end, and evicts down to the bound. The set of pinned
//! files is not stored here: the caller passes it to [`ContentCache::open_keeping`], so that
//! a restart does not evict them. Content of a pinned file is still dropped when Box has a
//! newer version ([`ContentCache::invalidate_file`]); the listeners registered with
//! [`ContentCache::on_invalidate`] hear of every such drop, after it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use lru::LruCache;
use sha1::{Digest, Sha1};

use crate::fs::read::chunk_file;

/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;

const META: &str = "meta";
const TMP_PREFIX: &str = ".tmp-";

/// Which content a chunk belongs to: a Box file at one version, and that version's size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentKey {
    pub file_id: String,
    /// Box's sha1 of the content, or the file_version id.
    pub version: String,
    /// The size of this version in bytes; it decides how long each chunk must be.
    pub size: u64,
    /// Box's SHA-1 of this version's content (hex), if known: the whole file is checked
    /// against it once every chunk is cached.
    pub sha1: Option<String>,
}

impl ContentKey {
    pub fn new(file_id: impl Into<String>, version: impl Into<String>, size: u64) -> ContentKey {
        ContentKey {
            file_id: file_id.into(),
            version: version.into(),
            size,
            sha1: None,
        }
    }

    /// The same key with Box's SHA-1 of the content.
    pub fn with_sha1(mut self, sha1: Option<&str>) -> ContentKey {
        self.sha1 = sha1.map(str::to_ascii_lowercase);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChunkId {
    file_id: String,
    version: String,
    index: u64,
}

struct Index {
    /// Chunks on disk, least recently used first; the value is the chunk's length.
    lru: LruCache<ChunkId, u64>,
    /// Bytes of the chunks in `lru`.
    used: u64,
    /// Bytes reserved by `put`s still writing.
    reserved: u64,
    /// Files whose chunks are kept apart from `lru` (never evicted, not counted in `used`).
    pinned: HashSet<String>,
    /// Chunks of pinned files on disk, with their lengths.
    /// INVARIANT: a chunk is in `held` or in `lru`, never in both.
    held: HashMap<ChunkId, u64>,
    /// Bytes of the chunks in `held`, and reserved by `put`s of pinned files still writing.
    held_bytes: u64,
    held_reserved: u64,
    /// Chunks being written; `true` once `invalidate_file` cancelled them.
    writing: HashMap<ChunkId, bool>,
    /// Versions whose `meta` file is on disk, with the size recorded there. An entry outlives
    /// the eviction of its version's last chunk (as does the `meta` file, a few bytes): removing
    /// the directory then would race with a `put` of the same version. `open` clears both.
    versions: HashMap<(String, String), u64>,
    /// The versions in `versions`, by file: what a file's chunks can be found by without
    /// going through every chunk. INVARIANT: the same pairs as `versions`' keys, and every
    /// chunk's version is in `versions`.
    file_versions: HashMap<String, HashSet<String>>,
    /// Per version with chunks in `lru`: how many, and whether the whole file was checked
    /// against Box's SHA-1 since it was last complete.
    assembly: HashMap<(String, String), Assembly>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Assembly {
    chunks: u64,
    verified: bool,
}

impl Index {
    /// Records chunk `id` of `len` bytes as cached (most recently used, unless its file is
    /// pinned: then it is held).
    fn insert_chunk(&mut self, id: ChunkId, len: u64) {
        let vkey = version_of(&id);
        let old = if self.pinned.contains(&id.file_id) {
            let old = self.held.insert(id, len);
            self.held_bytes = self.held_bytes - old.unwrap_or(0) + len;
            old
        } else {
            let old = self.lru.put(id, len);
            self.used = self.used - old.unwrap_or(0) + len;
            old
        };
        if old.is_none() {
            self.assembly.entry(vkey).or_default().chunks += 1;
        }
    }

    fn has_chunk(&self, id: &ChunkId) -> bool {
        self.lru.contains(id) || self.held.contains_key(id)
    }

    /// Forgets chunk `id`, returning its length if it was cached.
    fn remove_chunk(&mut self, id: &ChunkId) -> Option<u64> {
        let len = match self.lru.pop(id) {
            Some(len) => {
                self.used -= len;
                len
            }
            None => {
                let len = self.held.remove(id)?;
                self.held_bytes -= len;
                len
            }
        };
        self.uncount(id);
        Some(len)
    }

    /// Every cached chunk of `file_id` (held or not) for which `also` holds, found through
    /// its versions (cut into chunks of `chunk_size`), not by going through every chunk.
    fn chunks_of(
        &self,
        file_id: &str,
        chunk_size: u64,
        also: impl Fn(&ChunkId) -> bool,
    ) -> Vec<ChunkId> {
        let Some(versions) = self.file_versions.get(file_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for version in versions {
            let key = (file_id.to_string(), version.clone());
            let size = self.versions.get(&key).copied().unwrap_or(0);
            for index in 0..size.div_ceil(chunk_size) {
                let id = ChunkId {
                    file_id: key.0.clone(),
                    version: key.1.clone(),
                    index,
                };
                if self.has_chunk(&id) && also(&id) {
                    out.push(id);
                }
            }
        }
        out
    }

    fn add_version(&mut self, vkey: (String, String), size: u64) {
        self.file_versions
            .entry(vkey.0.clone())
            .or_default()
            .insert(vkey.1.clone());
        self.versions.insert(vkey, size);
    }

    fn remove_version(&mut self, file_id: &str, version: &str) {
        self.versions
            .remove(&(file_id.to_string(), version.to_string()));
        if let Some(set) = self.file_versions.get_mut(file_id) {
            set.remove(version);
            if set.is_empty() {
                self.file_versions.remove(file_id);
            }
        }
    }

    fn remove_file_versions(&mut self, file_id: &str) {
        for version in self.file_versions.remove(file_id).unwrap_or_default() {
            self.versions.remove(&(file_id.to_string(), version));
        }
    }

    /// Forgets the least recently used chunk.
    fn pop_lru(&mut self) -> Option<(ChunkId, u64)> {
        let (id, len) = self.lru.pop_lru()?;
        self.used -= len;
        self.uncount(&id);
        Some((id, len))
    }

    /// Evicts least recently used chunks until the unpinned total fits `max_bytes`; returns
    /// them (their files are deleted by the caller, outside the lock).
    fn evict_to(&mut self, max_bytes: u64) -> Vec<ChunkId> {
        let mut victims = Vec::new();
        while self.used + self.reserved > max_bytes {
            let Some((victim, _)) = self.pop_lru() else {
                break;
            };
            victims.push(victim);
        }
        victims
    }

    /// One chunk of `id`'s version fewer: the version is no longer complete, so it is checked
    /// again once it is.
    fn uncount(&mut self, id: &ChunkId) {
        let vkey = version_of(id);
        if let Some(a) = self.assembly.get_mut(&vkey) {
            a.chunks = a.chunks.saturating_sub(1);
            a.verified = false;
            if a.chunks == 0 {
                self.assembly.remove(&vkey);
            }
        }
    }
}

/// Told of every file whose cached content was dropped (see [`ContentCache::on_invalidate`]).
pub type InvalidationListener = Arc<dyn Fn(&str) + Send + Sync>;

/// A bounded on-disk cache of file content in chunks. See the module documentation.
pub struct ContentCache {
    dir: PathBuf,
    max_bytes: u64,
    chunk_size: u64,
    index: Mutex<Index>,
    listeners: Mutex<Vec<InvalidationListener>>,
}

impl ContentCache {
    /// Opens (creating if needed) a cache in `dir` holding at most `max_bytes` of chunks of
    /// [`DEFAULT_CHUNK_SIZE`].
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> io::Result<ContentCache> {
        ContentCache::open_with_chunk_size(dir, max_bytes, DEFAULT_CHUNK_SIZE)
    }

    /// Opens a cache with a chosen chunk size. Rebuilds the index from disk: temporary files,
    /// chunks of the wrong length, versions cut with another chunk size and anything not
    /// matching the layout are deleted; the rest is ordered by modification time (the best
    /// approximation of recency a restart has) and evicted down to `max_bytes`.
    pub fn open_with_chunk_size(
        dir: impl Into<PathBuf>,
        max_bytes: u64,
        chunk_size: u64,
    ) -> io::Result<ContentCache> {
        ContentCache::open_keeping(dir, max_bytes, chunk_size, std::iter::empty())
    }

    /// Opens a cache as [`ContentCache::open_with_chunk_size`] does, with the files `pinned`
    /// pinned from the start: the rebuild keeps their chunks whatever the bound.
    pub fn open_keeping(
        dir: impl Into<PathBuf>,
        max_bytes: u64,
        chunk_size: u64,
        pinned: impl IntoIterator<Item = String>,
    ) -> io::Result<ContentCache> {
        if max_bytes == 0 {
            return Err(invalid("content cache size must be greater than zero"));
        }
        if chunk_size == 0 {
            return Err(invalid(
                "content cache chunk size must be greater than zero",
            ));
        }
        let dir = dir.into();
        chunk_file::create_private_dir(&dir)?;
        let cache = ContentCache {
            dir,
            max_bytes,
            chunk_size,
            index: Mutex::new(Index {
                lru: LruCache::unbounded(),
                used: 0,
                reserved: 0,
                pinned: pinned.into_iter().filter(|f| valid_name(f)).collect(),
                held: HashMap::new(),
                held_bytes: 0,
                held_reserved: 0,
                writing: HashMap::new(),
                versions: HashMap::new(),
                file_versions: HashMap::new(),
                assembly: HashMap::new(),
            }),
            listeners: Mutex::default(),
        };
        cache.rebuild()?;
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Number of chunks a file of `size` bytes has.
    pub fn chunk_count(&self, size: u64) -> u64 {
        size.div_ceil(self.chunk_size)
    }

    /// Bytes of cached chunks, including chunks being written, except those of pinned files:
    /// what the bound applies to.
    pub fn used_bytes(&self) -> u64 {
        let index = self.lock();
        index.used + index.reserved
    }

    /// Bytes of chunks of pinned files, including chunks being written.
    pub fn pinned_bytes(&self) -> u64 {
        let index = self.lock();
        index.held_bytes + index.held_reserved
    }

    /// Pins `file_id`: its chunks, cached now or later, are never evicted and no longer
    /// count against the bound. Idempotent.
    pub fn pin_file(&self, file_id: &str) {
        if !valid_name(file_id) {
            return;
        }
        let mut index = self.lock();
        if !index.pinned.insert(file_id.to_string()) {
            return;
        }
        for id in index.chunks_of(file_id, self.chunk_size, |_| true) {
            if let Some(len) = index.lru.pop(&id) {
                index.used -= len;
                index.held.insert(id, len);
                index.held_bytes += len;
            }
        }
    }

    /// Unpins `file_id`: its chunks become ordinary content again, the least recently used,
    /// and the cache evicts down to its bound. Idempotent.
    pub fn unpin_file(&self, file_id: &str) {
        let victims = {
            let mut index = self.lock();
            if !index.pinned.remove(file_id) {
                return;
            }
            let mut mine = index.chunks_of(file_id, self.chunk_size, |_| true);
            // The last chunk demoted ends at the old end: the file goes from its end first.
            mine.sort_by_key(|id| std::cmp::Reverse(id.index));
            for id in mine {
                if let Some(len) = index.held.remove(&id) {
                    index.held_bytes -= len;
                    index.lru.put(id.clone(), len);
                    index.lru.demote(&id);
                    index.used += len;
                }
            }
            index.evict_to(self.max_bytes)
        };
        for victim in &victims {
            remove_file_quietly(&self.chunk_path(victim));
        }
    }

    /// Whether `file_id` is pinned.
    pub fn is_pinned(&self, file_id: &str) -> bool {
        self.lock().pinned.contains(file_id)
    }

    /// The chunks of `key` not cached (all of them when another size of the version is).
    /// Empty for a complete version, and for an empty file.
    pub fn missing_chunks(&self, key: &ContentKey) -> Vec<u64> {
        let count = self.chunk_count(key.size);
        let Some(first) = self.chunk_id(key, 0) else {
            return (0..count).collect();
        };
        let index = self.lock();
        if count > 0 && index.versions.get(&version_of(&first)) != Some(&key.size) {
            return (0..count).collect();
        }
        (0..count)
            .filter(|&c| {
                !index.has_chunk(&ChunkId {
                    index: c,
                    ..first.clone()
                })
            })
            .collect()
    }

    /// Calls `listener` with the file id after each [`ContentCache::invalidate_file`], and
    /// after a version is dropped for failing its SHA-1 check (outside the cache's lock).
    pub fn on_invalidate(&self, listener: InvalidationListener) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }

    fn tell_listeners(&self, file_id: &str) {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for listener in listeners {
            listener(file_id);
        }
    }

    /// Whether chunk `chunk` of `key` is in the index. Does not touch the LRU order.
    pub fn contains(&self, key: &ContentKey, chunk: u64) -> bool {
        let Some(id) = self.chunk_id(key, chunk) else {
            return false;
        };
        let index = self.lock();
        index.has_chunk(&id) && index.versions.get(&version_of(&id)) == Some(&key.size)
    }

    /// Chunk `chunk` of `key`, if cached and intact. A hit becomes the most recently used.
    pub fn get(&self, key: &ContentKey, chunk: u64) -> Option<Bytes> {
        let id = self.chunk_id(key, chunk)?;
        let expected = self.expected_len(key.size, chunk)?;
        {
            let mut index = self.lock();
            // A key whose size disagrees with the stored version is a different content.
            if index.versions.get(&version_of(&id)) != Some(&key.size) {
                return None;
            }
            if index.lru.get(&id).is_none() && !index.held.contains_key(&id) {
                return None;
            }
        }
        self.read_chunk(&id, expected).map(Bytes::from)
    }

    /// Reads chunk `id` from disk and checks it. A chunk that is missing, or fails its length
    /// or hash, is dropped from the index (and disk) and reads as `None`.
    fn read_chunk(&self, id: &ChunkId, expected: u64) -> Option<Vec<u8>> {
        let path = self.chunk_path(id);
        let damage = match fs::read(&path) {
            Ok(file) => match chunk_file::decode(file, expected) {
                Ok(data) => return Some(data),
                Err(damage) => damage,
            },
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!("content cache: reading {}: {e}", path.display());
                }
                // Evicted or invalidated between the index lookup and the read, or lost.
                self.forget(id);
                return None;
            }
        };
        log::warn!(
            "content cache: chunk {} of file {} (version {}) {damage}; dropping it, it will be \
             read from Box again",
            id.index,
            id.file_id,
            id.version
        );
        self.forget(id);
        remove_file_quietly(&path);
        None
    }

    /// Stores chunk `chunk` of `key`, evicting least recently used chunks to make room.
    /// Returns whether the chunk is now cached: `false` if it is larger than the whole cache,
    /// already cached or being written by someone else, or cancelled by `invalidate_file`
    /// while it was written. A wrong length or an index past the end is an error.
    pub fn put(&self, key: &ContentKey, chunk: u64, data: &[u8]) -> io::Result<bool> {
        let id = self
            .chunk_id(key, chunk)
            .ok_or_else(|| invalid("file id or version is not a valid cache name"))?;
        let expected = self.expected_len(key.size, chunk).ok_or_else(|| {
            invalid(format!(
                "chunk {chunk} is past the end of a {}-byte file",
                key.size
            ))
        })?;
        if data.len() as u64 != expected {
            return Err(invalid(format!(
                "chunk {chunk} of a {}-byte file must have {expected} bytes, not {}",
                key.size,
                data.len()
            )));
        }
        let vkey = version_of(&id);

        // Reserve the bytes, choosing victims, under the lock; delete them after.
        let (victims, write_meta, pinned) = {
            let mut index = self.lock();
            if let Some(&size) = index.versions.get(&vkey) {
                if size != key.size {
                    return Err(invalid(format!(
                        "version {} of file {} is cached with size {size}, not {}",
                        key.version, key.file_id, key.size
                    )));
                }
            }
            let pinned = index.pinned.contains(&key.file_id);
            if (!pinned && expected > self.max_bytes)
                || index.has_chunk(&id)
                || index.writing.contains_key(&id)
            {
                return Ok(false);
            }
            let mut victims = Vec::new();
            if pinned {
                // Never evicts: the pin made sure of the disk space.
                index.held_reserved += expected;
            } else {
                while index.used + index.reserved + expected > self.max_bytes {
                    // Chunks being written are not in `lru`, so they are never victims.
                    let Some((victim, _)) = index.pop_lru() else {
                        // Everything left is being written: no room now.
                        return Ok(false);
                    };
                    victims.push(victim);
                }
                index.reserved += expected;
            }
            index.writing.insert(id.clone(), false);
            (victims, !index.versions.contains_key(&vkey), pinned)
        };
        for victim in &victims {
            remove_file_quietly(&self.chunk_path(victim));
        }

        let written = self.write_chunk(&id, key.size, write_meta, data);

        let mut index = self.lock();
        if pinned {
            index.held_reserved -= expected;
        } else {
            index.reserved -= expected;
        }
        let cancelled = index.writing.remove(&id).unwrap_or(true);
        match written {
            Ok(()) if !cancelled => {
                index.add_version(vkey.clone(), key.size);
                index.insert_chunk(id, expected);
                // Unpinned while it was written: it counts against the bound now.
                let victims = index.evict_to(self.max_bytes);
                let now_complete = index.assembly.get_mut(&vkey).is_some_and(|a| {
                    let first = !a.verified && a.chunks == self.chunk_count(key.size);
                    // Marked before checking, so that two `put`s never both check.
                    a.verified |= first;
                    first
                });
                drop(index);
                for victim in &victims {
                    remove_file_quietly(&self.chunk_path(victim));
                }
                if now_complete {
                    self.verify_whole_file(key);
                }
                Ok(true)
            }
            Ok(()) => {
                drop(index);
                remove_file_quietly(&self.chunk_path(&id));
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets and deletes every cached version of `file_id`. Chunks being written for it are
    /// cancelled: their `put` deletes them when it finishes.
    pub fn invalidate_file(&self, file_id: &str) {
        if !valid_name(file_id) {
            return;
        }
        {
            let mut index = self.lock();
            for id in index.chunks_of(file_id, self.chunk_size, |_| true) {
                index.remove_chunk(&id);
            }
            for (id, cancelled) in index.writing.iter_mut() {
                if id.file_id == file_id {
                    *cancelled = true;
                }
            }
            index.remove_file_versions(file_id);
        }
        let path = self.dir.join(file_id);
        if let Err(e) = fs::remove_dir_all(&path) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("content cache: removing {}: {e}", path.display());
            }
        }
        self.tell_listeners(file_id);
    }

    fn write_chunk(
        &self,
        id: &ChunkId,
        size: u64,
        write_meta: bool,
        data: &[u8],
    ) -> io::Result<()> {
        let vdir = self.dir.join(&id.file_id).join(&id.version);
        chunk_file::create_private_dirs(&vdir)?;
        if write_meta {
            let meta = format!("{size} {}\n", self.chunk_size);
            write_atomically(&vdir, META, &[meta.as_bytes()])?;
        }
        let trailer = chunk_file::trailer(data);
        write_atomically(&vdir, &id.index.to_string(), &[data, &trailer])
    }

    /// Reads every chunk of `key` back and compares the file's SHA-1 with Box's, dropping the
    /// whole version on a mismatch. Called once the last missing chunk was stored; a chunk
    /// that fails its own check (or vanished) ends the check: the version is incomplete again.
    fn verify_whole_file(&self, key: &ContentKey) {
        let Some(want) = key.sha1.as_deref().filter(|s| is_sha1_hex(s)) else {
            return;
        };
        let mut hasher = Sha1::new();
        for chunk in 0..self.chunk_count(key.size) {
            let (Some(id), Some(expected)) = (
                self.chunk_id(key, chunk),
                self.expected_len(key.size, chunk),
            ) else {
                return;
            };
            let Some(data) = self.read_chunk(&id, expected) else {
                return;
            };
            hasher.update(&data);
        }
        let got = hex::encode(hasher.finalize());
        if got != want {
            log::warn!(
                "content cache: file {} (version {}) has SHA-1 {got} in the cache where Box \
                 says {want}; dropping the cached copy, it will be read from Box again",
                key.file_id,
                key.version
            );
            self.invalidate_version(&key.file_id, &key.version);
        }
    }

    /// Forgets and deletes every cached version of `file_id` but `version` (a pinned file
    /// whose new version is complete: the old ones would never be evicted). Listeners are not
    /// told: the content they care for is the version kept.
    pub fn keep_only_version(&self, file_id: &str, version: &str) {
        let others: Vec<String> = self
            .lock()
            .file_versions
            .get(file_id)
            .map(|set| set.iter().filter(|v| *v != version).cloned().collect())
            .unwrap_or_default();
        for other in others {
            self.drop_version(file_id, &other);
        }
    }

    /// Forgets and deletes one version of a file (see [`ContentCache::invalidate_file`]).
    fn invalidate_version(&self, file_id: &str, version: &str) {
        self.drop_version(file_id, version);
        self.tell_listeners(file_id);
    }

    fn drop_version(&self, file_id: &str, version: &str) {
        let of_version = |id: &ChunkId| id.file_id == file_id && id.version == version;
        {
            let mut index = self.lock();
            for id in index.chunks_of(file_id, self.chunk_size, of_version) {
                index.remove_chunk(&id);
            }
            for (id, cancelled) in index.writing.iter_mut() {
                if of_version(id) {
                    *cancelled = true;
                }
            }
            index.remove_version(file_id, version);
        }
        remove_anything(&self.dir.join(file_id).join(version));
    }

    /// Drops `id` from the index (if there) after its file turned out missing or damaged.
    fn forget(&self, id: &ChunkId) {
        self.lock().remove_chunk(id);
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // The index stays consistent across a panic in another thread (every update is a few
        // plain assignments), so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn chunk_id(&self, key: &ContentKey, chunk: u64) -> Option<ChunkId> {
        if !valid_name(&key.file_id) || !valid_name(&key.version) {
            return None;
        }
        Some(ChunkId {
            file_id: key.file_id.clone(),
            version: key.version.clone(),
            index: chunk,
        })
    }

    fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        self.dir
            .join(&id.file_id)
            .join(&id.version)
            .join(id.index.to_string())
    }

    /// The length chunk `chunk` of a `size`-byte file must have; `None` past the end. Every
    /// chunk is `chunk_size` long except the last, which may be shorter.
    fn expected_len(&self, size: u64, chunk: u64) -> Option<u64> {
        let start = chunk.checked_mul(self.chunk_size)?;
        if start >= size {
            return None;
        }
        Some((size - start).min(self.chunk_size))
    }

    fn rebuild(&self) -> io::Result<()> {
        let mut found: Vec<(SystemTime, ChunkId, u64)> = Vec::new();
        let mut versions = HashMap::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !valid_name(&name) || !entry.file_type()?.is_dir() {
                remove_anything(&path);
                continue;
            }
            for ventry in fs::read_dir(&path)? {
                let ventry = ventry?;
                let version = ventry.file_name().to_string_lossy().into_owned();
                let vpath = ventry.path();
                if !valid_name(&version) || !ventry.file_type()?.is_dir() {
                    remove_anything(&vpath);
                    continue;
                }
                let Some(size) = self.read_meta(&vpath) else {
                    remove_anything(&vpath);
                    continue;
                };
                let before = found.len();
                self.scan_version(&name, &version, size, &vpath, &mut found)?;
                if found.len() == before {
                    // Nothing usable left: drop the directory and its meta.
                    remove_anything(&vpath);
                } else {
                    versions.insert((name.clone(), version), size);
                }
            }
            // Removes the file's directory only if no version is left in it.
            let _ = fs::remove_dir(&path);
        }

        found.sort_by_key(|(mtime, _, _)| *mtime);
        let mut victims = Vec::new();
        {
            let mut index = self.lock();
            for (vkey, size) in versions {
                index.add_version(vkey, size);
            }
            for (_, id, len) in found {
                index.insert_chunk(id, len);
            }
            victims.extend(index.evict_to(self.max_bytes));
        }
        for victim in &victims {
            remove_file_quietly(&self.chunk_path(victim));
        }
        Ok(())
    }

    /// Collects the valid chunks of one version directory, deleting everything else in it.
    fn scan_version(
        &self,
        file_id: &str,
        version: &str,
        size: u64,
        vpath: &Path,
        found: &mut Vec<(SystemTime, ChunkId, u64)>,
    ) -> io::Result<()> {
        for centry in fs::read_dir(vpath)? {
            let centry = centry?;
            let cname = centry.file_name().to_string_lossy().into_owned();
            if cname == META {
                continue;
            }
            let cpath = centry.path();
            let meta = centry.metadata()?;
            // Chunk names are canonical decimal numbers ("007" would alias "7").
            let index = cname.parse::<u64>().ok().filter(|i| i.to_string() == cname);
            let expected = index.and_then(|i| self.expected_len(size, i));
            match (index, expected) {
                (Some(index), Some(expected))
                    if meta.is_file() && meta.len() == chunk_file::file_len(expected) =>
                {
                    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    let id = ChunkId {
                        file_id: file_id.to_string(),
                        version: version.to_string(),
                        index,
                    };
                    found.push((mtime, id, expected));
                }
                // Temp files of interrupted writes, truncated chunks (or chunks written before
                // they carried a hash), strangers.
                _ => remove_anything(&cpath),
            }
        }
        Ok(())
    }

    /// The file size from a version's `meta`, if it is readable and was cut with our chunk
    /// size (a cache reopened with another chunk size cannot use the old chunks).
    fn read_meta(&self, vpath: &Path) -> Option<u64> {
        let text = fs::read_to_string(vpath.join(META)).ok()?;
        let mut parts = text.split_whitespace();
        let size = parts.next()?.parse::<u64>().ok()?;
        let chunk_size = parts.next()?.parse::<u64>().ok()?;
        (chunk_size == self.chunk_size && parts.next().is_none()).then_some(size)
    }
}

fn version_of(id: &ChunkId) -> (String, String) {
    (id.file_id.clone(), id.version.clone())
}

/// File ids and versions become directory names, so only plain names are accepted: Box ids
/// are digits, sha1s hex, version ids digits. No dots, so nothing can be `.`, `..` or `.tmp-*`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name != META
}

/// Box's SHA-1s are 40 hex digits; anything else cannot be checked against.
fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes `parts` to `dir/name` through a temporary file (0600) and a rename, so `dir/name`
/// is either absent, the old content or the whole new content. No fsync: this is a cache, and
/// a torn write after a crash is caught by the length and hash checks.
fn write_atomically(dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let result =
        chunk_file::write_new_private(&tmp, parts).and_then(|()| fs::rename(&tmp, dir.join(name)));
    if result.is_err() {
        remove_file_quietly(&tmp);
    }
    result
}

fn remove_file_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("content cache: removing {}: {e}", path.display());
        }
    }
}

fn remove_anything(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("content cache: removing {}: {e}", path.display());
        }
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: u64 = 16;

    fn key(file: &str, version: &str, size: u64) -> ContentKey {
        ContentKey::new(file, version, size)
    }

    fn content(len: u64, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_add(seed)).collect()
    }

    fn open(dir: &Path, max: u64) -> ContentCache {
        ContentCache::open_with_chunk_size(dir, max, CHUNK).unwrap()
    }

    #[test]
    fn round_trip_including_a_short_last_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 1024);
        let k = key("123", "abc", 40);
        let data = content(40, 1);
        assert_eq!(cache.chunk_count(40), 3);
        for i in 0..3 {
            let start = (i * CHUNK) as usize;
            let end = (start + CHUNK as usize).min(40);
            assert!(cache.put(&k, i, &data[start..end]).unwrap());
        }
        assert_eq!(cache.used_bytes(), 40);
        let mut back = Vec::new();
        for i in 0..3 {
            assert!(cache.contains(&k, i));
            back.extend_from_slice(&cache.get(&k, i).unwrap());
        }
        assert_eq!(back, data);
        assert!(tmp.path().join("123/abc/2").is_file());
        // Putting an already cached chunk is a no-op.
        assert!(!cache.put(&k, 0, &data[..16]).unwrap());
        assert_eq!(cache.used_bytes(), 40);
    }

    #[test]
    fn a_new_version_misses() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 1024);
        let old = key("123", "v1", 10);
        cache.put(&old, 0, &content(10, 0)).unwrap();
        let new = key("123", "v2", 10);
        assert!(cache.get(&new, 0).is_none());
        assert!(!cache.contains(&new, 0));
        // Same version id with another size is not the same content either.
        assert!(cache.get(&key("123", "v1", 12), 0).is_none());
        assert!(cache.put(&new, 0, &content(10, 9)).unwrap());
        assert_eq!(&cache.get(&new, 0).unwrap()[..], &content(10, 9)[..]);
        assert_eq!(&cache.get(&old, 0).unwrap()[..], &content(10, 0)[..]);
    }

    #[test]
    fn the_total_never_exceeds_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 50);
        let k = key("7", "s", 16 * 20);
        for i in 0..20 {
            assert!(cache.put(&k, i, &content(16, i as u8)).unwrap());
            assert!(cache.used_bytes() <= 50, "after chunk {i}");
        }
        assert_eq!(cache.used_bytes(), 48);
        // The three most recent survive, the rest were deleted from disk.
        for i in 0..17 {
            assert!(cache.get(&k, i).is_none(), "chunk {i}");
            assert!(!tmp.path().join(format!("7/s/{i}")).exists());
        }
        for i in 17..20 {
            assert!(cache.get(&k, i).is_some(), "chunk {i}");
        }
        // A chunk larger than the whole cache is not cached.
        let small = open(&tmp.path().join("small"), 10);
        assert!(!small.put(&key("8", "s", 16), 0, &content(16, 0)).unwrap());
        assert_eq!(small.used_bytes(), 0);
    }

    #[test]
    fn a_recently_read_chunk_survives_eviction() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 48);
        let k = key("9", "s", 16 * 4);
        for i in 0..3 {
            cache.put(&k, i, &content(16, 0)).unwrap();
        }
        // Chunk 0 is the oldest write, but reading it makes chunk 1 the least recent.
        assert!(cache.get(&k, 0).is_some());
        cache.put(&k, 3, &content(16, 0)).unwrap();
        assert!(cache.contains(&k, 0));
        assert!(!cache.contains(&k, 1));
        assert!(cache.contains(&k, 2));
        assert!(cache.contains(&k, 3));
        // Order is now 2, 0, 3 (`contains` does not refresh), so the next victim is chunk 2.
        cache.put(&key("10", "s", 16), 0, &content(16, 0)).unwrap();
        assert!(!cache.contains(&k, 2));
        assert!(cache.contains(&k, 0));
    }

    #[test]
    fn restart_rebuilds_the_index_and_cleans_debris() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key("55", "sha", 40);
        {
            let cache = open(tmp.path(), 1024);
            cache.put(&k, 0, &content(16, 3)).unwrap();
            cache.put(&k, 2, &content(8, 4)).unwrap();
        }
        let vdir = tmp.path().join("55/sha");
        // A crash mid-write leaves a temp file; a torn chunk is short; strangers appear.
        fs::write(vdir.join(".tmp-1-deadbeef"), content(16, 0)).unwrap();
        fs::write(vdir.join("1"), content(5, 0)).unwrap();
        fs::write(vdir.join("99"), content(16, 0)).unwrap();
        fs::write(tmp.path().join(".tmp-stray"), b"x").unwrap();
        fs::create_dir_all(tmp.path().join("66/nometa")).unwrap();
        fs::write(tmp.path().join("66/nometa/0"), content(16, 0)).unwrap();

        let cache = open(tmp.path(), 1024);
        assert_eq!(cache.used_bytes(), 24);
        assert_eq!(&cache.get(&k, 0).unwrap()[..], &content(16, 3)[..]);
        assert_eq!(&cache.get(&k, 2).unwrap()[..], &content(8, 4)[..]);
        assert!(cache.get(&k, 1).is_none());
        assert!(!vdir.join(".tmp-1-deadbeef").exists());
        assert!(!vdir.join("1").exists());
        assert!(!vdir.join("99").exists());
        assert!(!tmp.path().join(".tmp-stray").exists());
        assert!(!tmp.path().join("66").exists());
        // The torn chunk can be cached again.
        assert!(cache.put(&k, 1, &content(16, 5)).unwrap());
    }

    #[test]
    fn restart_with_a_smaller_bound_or_another_chunk_size() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key("1", "v", 64);
        {
            let cache = open(tmp.path(), 1024);
            for i in 0..4 {
                cache.put(&k, i, &content(16, 0)).unwrap();
            }
        }
        let cache = open(tmp.path(), 32);
        assert_eq!(cache.used_bytes(), 32);
        drop(cache);
        let cache = ContentCache::open_with_chunk_size(tmp.path(), 1024, 32).unwrap();
        assert_eq!(cache.used_bytes(), 0);
        assert!(!tmp.path().join("1").exists());
    }

    #[test]
    fn a_damaged_chunk_is_a_miss_not_bad_data() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 1024);
        let k = key("3", "v", 16);
        cache.put(&k, 0, &content(16, 0)).unwrap();
        fs::write(tmp.path().join("3/v/0"), b"short").unwrap();
        assert!(cache.get(&k, 0).is_none());
        assert_eq!(cache.used_bytes(), 0);
        cache.put(&k, 0, &content(16, 0)).unwrap();
        fs::remove_file(tmp.path().join("3/v/0")).unwrap();
        assert!(cache.get(&k, 0).is_none());
        assert!(!cache.contains(&k, 0));
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn a_flipped_byte_is_a_miss_and_the_chunk_can_be_stored_again() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 1024);
        let k = key("4", "v", 40);
        for i in 0..3 {
            let len = if i == 2 { 8 } else { 16 };
            cache.put(&k, i, &content(len, i as u8)).unwrap();
        }
        let path = tmp.path().join("4/v/1");
        let mut bytes = fs::read(&path).unwrap();
        bytes[5] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert!(cache.get(&k, 1).is_none());
        assert!(!cache.contains(&k, 1));
        assert!(!path.exists());
        assert_eq!(cache.used_bytes(), 24);
        // Its neighbours are untouched, and the chunk is stored again from Box.
        assert_eq!(&cache.get(&k, 0).unwrap()[..], &content(16, 0)[..]);
        assert!(cache.put(&k, 1, &content(16, 1)).unwrap());
        assert_eq!(&cache.get(&k, 1).unwrap()[..], &content(16, 1)[..]);
        // A damaged trailer is caught as well, also after a restart.
        let mut bytes = fs::read(tmp.path().join("4/v/2")).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        fs::write(tmp.path().join("4/v/2"), &bytes).unwrap();
        drop(cache);
        let cache = open(tmp.path(), 1024);
        assert!(cache.get(&k, 2).is_none());
        assert_eq!(cache.used_bytes(), 32);
    }

    #[test]
    fn chunks_without_a_hash_are_not_trusted_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key("5", "v", 16);
        {
            let cache = open(tmp.path(), 1024);
            cache.put(&k, 0, &content(16, 0)).unwrap();
        }
        // A chunk as an older cache wrote it: the bytes alone.
        fs::write(tmp.path().join("5/v/0"), content(16, 0)).unwrap();
        let cache = open(tmp.path(), 1024);
        assert_eq!(cache.used_bytes(), 0);
        assert!(cache.get(&k, 0).is_none());
    }

    fn sha1_of(data: &[u8]) -> String {
        hex::encode(Sha1::digest(data))
    }

    #[test]
    fn a_complete_file_is_checked_against_box_sha1() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 1024);
        let data = content(40, 7);
        let store_all = |k: &ContentKey, data: &[u8]| {
            // Out of order, as parallel parts arrive.
            for i in [2u64, 0, 1] {
                let start = (i * CHUNK) as usize;
                let end = (start + CHUNK as usize).min(data.len());
                cache.put(k, i, &data[start..end]).unwrap();
            }
        };
        let good = key("6", "v1", 40).with_sha1(Some(&sha1_of(&data).to_uppercase()));
        store_all(&good, &data);
        assert_eq!(cache.used_bytes(), 40);
        assert!((0..3).all(|i| cache.contains(&good, i)));

        // Box's SHA-1 disagrees with what was stored (a file that changed under a download
        // by sha1, say): the whole version goes once its last chunk arrives.
        let bad = key("6", "v2", 40).with_sha1(Some(&sha1_of(b"something else")));
        store_all(&bad, &data);
        assert!((0..3).all(|i| !cache.contains(&bad, i)));
        assert!(!tmp.path().join("6/v2").exists());
        assert_eq!(cache.used_bytes(), 40);
        // Without a SHA-1 (or a malformed one) there is nothing to check against.
        let unknown = key("7", "v", 40).with_sha1(Some("not-a-sha1"));
        store_all(&unknown, &data);
        assert!((0..3).all(|i| cache.contains(&unknown, i)));
    }

    #[test]
    fn a_version_evicted_in_part_is_checked_again_when_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 1024);
        let data = content(32, 1);
        let k = key("8", "v", 32).with_sha1(Some(&sha1_of(&data)));
        cache.put(&k, 0, &data[..16]).unwrap();
        cache.put(&k, 1, &data[16..]).unwrap();
        assert!(cache.contains(&k, 0) && cache.contains(&k, 1));
        // Chunk 1 rots and is dropped; what comes back from "Box" is wrong this time.
        let path = tmp.path().join("8/v/1");
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(cache.get(&k, 1).is_none());
        cache.put(&k, 1, &content(16, 99)).unwrap();
        assert!(!cache.contains(&k, 0) && !cache.contains(&k, 1));
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn invalidate_file_drops_every_version() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 1024);
        let a1 = key("100", "v1", 16);
        let a2 = key("100", "v2", 16);
        let b = key("200", "v1", 16);
        for k in [&a1, &a2, &b] {
            cache.put(k, 0, &content(16, 0)).unwrap();
        }
        cache.invalidate_file("100");
        assert!(cache.get(&a1, 0).is_none());
        assert!(cache.get(&a2, 0).is_none());
        assert!(cache.get(&b, 0).is_some());
        assert_eq!(cache.used_bytes(), 16);
        assert!(!tmp.path().join("100").exists());
        cache.invalidate_file("never-cached");
        cache.invalidate_file("../escape");
        assert!(cache.put(&a2, 0, &content(16, 0)).unwrap());
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(ContentCache::open(tmp.path(), 0).is_err());
        assert!(ContentCache::open_with_chunk_size(tmp.path(), 100, 0).is_err());
        let cache = open(tmp.path(), 100);
        let k = key("1", "v", 20);
        // Wrong length, past the end, empty file, unsafe names.
        assert!(cache.put(&k, 0, &content(15, 0)).is_err());
        assert!(cache.put(&k, 1, &content(16, 0)).is_err());
        assert!(cache.put(&k, 2, &content(4, 0)).is_err());
        assert!(cache.put(&k, u64::MAX, &content(4, 0)).is_err());
        assert!(cache.put(&key("1", "v0", 0), 0, &[]).is_err());
        assert!(cache.put(&key("..", "v", 16), 0, &content(16, 0)).is_err());
        assert!(cache.put(&key("1", "a/b", 16), 0, &content(16, 0)).is_err());
        assert!(cache.put(&key("", "v", 16), 0, &content(16, 0)).is_err());
        assert!(cache.get(&key("..", "v", 16), 0).is_none());
        assert!(cache.get(&k, u64::MAX).is_none());
        assert!(!cache.contains(&key("1", "", 16), 0));
        // The same version with two sizes is refused once one is cached.
        cache.put(&k, 1, &content(4, 0)).unwrap();
        assert!(cache.put(&key("1", "v", 32), 0, &content(16, 0)).is_err());
        assert_eq!(cache.used_bytes(), 4);
    }

    #[test]
    fn pinned_chunks_outlive_the_bound_and_unpinned_ones_are_evicted() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 32);
        let pinned = key("1", "v", 16 * 4);
        cache.pin_file("1");
        for i in 0..4 {
            assert!(cache.put(&pinned, i, &content(16, i as u8)).unwrap());
        }
        // 64 bytes held, none of them counted against the 32-byte bound.
        assert_eq!(cache.used_bytes(), 0);
        assert_eq!(cache.pinned_bytes(), 64);
        let other = key("2", "v", 16 * 6);
        for i in 0..6 {
            assert!(cache.put(&other, i, &content(16, 0)).unwrap());
            assert!(cache.used_bytes() <= 32);
        }
        assert!(cache.missing_chunks(&pinned).is_empty());
        assert_eq!(cache.missing_chunks(&other), [0, 1, 2, 3]);
        for i in 0..4 {
            assert_eq!(
                &cache.get(&pinned, i).unwrap()[..],
                &content(16, i as u8)[..]
            );
        }

        // Unpinned, the file is ordinary content at the old end of the LRU: the bound holds
        // again, and it goes before what was read recently.
        cache.unpin_file("1");
        assert_eq!(cache.pinned_bytes(), 0);
        assert!(cache.used_bytes() <= 32);
        assert!((0..4).all(|i| !cache.contains(&pinned, i)));
        assert!(cache.contains(&other, 5));
        assert!(!cache.is_pinned("1"));
    }

    #[test]
    fn pinning_takes_cached_chunks_out_of_the_lru_and_a_restart_keeps_them() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key("7", "v", 48);
        {
            let cache = open(tmp.path(), 1024);
            for i in 0..3 {
                cache.put(&k, i, &content(16, 0)).unwrap();
            }
            cache.pin_file("7");
            assert_eq!((cache.used_bytes(), cache.pinned_bytes()), (0, 48));
            cache.pin_file("7");
            assert_eq!(cache.pinned_bytes(), 48);
        }
        // Reopened with a bound smaller than the pinned file: kept when it is named pinned...
        let cache = ContentCache::open_keeping(tmp.path(), 16, CHUNK, ["7".to_string()]).unwrap();
        assert_eq!((cache.used_bytes(), cache.pinned_bytes()), (0, 48));
        assert!(cache.missing_chunks(&k).is_empty());
        drop(cache);
        // ...and evicted down to the bound when it is not.
        let cache = open(tmp.path(), 16);
        assert_eq!(cache.used_bytes(), 16);
        assert_eq!(cache.missing_chunks(&k).len(), 2);
    }

    #[test]
    fn a_new_version_of_a_pinned_file_is_dropped_and_the_listeners_hear_of_it() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = open(tmp.path(), 1024);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        cache.on_invalidate(Arc::new(move |id: &str| {
            h.lock().unwrap().push(id.to_string())
        }));
        cache.pin_file("9");
        let k = key("9", "v1", 16);
        cache.put(&k, 0, &content(16, 0)).unwrap();
        cache.invalidate_file("9");
        assert_eq!(cache.pinned_bytes(), 0);
        assert_eq!(cache.missing_chunks(&k), [0]);
        assert_eq!(*heard.lock().unwrap(), ["9"]);
        // Still pinned: the next version is held too.
        let k2 = key("9", "v2", 16);
        cache.put(&k2, 0, &content(16, 1)).unwrap();
        assert_eq!(cache.pinned_bytes(), 16);
        assert!(cache.missing_chunks(&key("9", "v0", 0)).is_empty());
        // A version that changed without an invalidation (while unmounted) goes once the
        // new one is kept; nobody is told.
        let k3 = key("9", "v3", 16);
        cache.put(&k3, 0, &content(16, 2)).unwrap();
        assert_eq!(cache.pinned_bytes(), 32);
        cache.keep_only_version("9", "v3");
        assert_eq!(cache.pinned_bytes(), 16);
        assert_eq!(cache.missing_chunks(&k2), [0]);
        assert!(cache.missing_chunks(&k3).is_empty());
        assert!(!tmp.path().join("9/v2").exists());
        assert_eq!(*heard.lock().unwrap(), ["9"]);
    }

    #[test]
    fn concurrent_puts_and_gets_respect_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = std::sync::Arc::new(open(tmp.path(), 16 * 10));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let k = key(&format!("f{t}"), "v", 16 * 50);
                    for i in 0..50 {
                        let data = content(16, (t * 50 + i) as u8);
                        cache.put(&k, i, &data).unwrap();
                        assert!(cache.used_bytes() <= 160);
                        if let Some(got) = cache.get(&k, i) {
                            assert_eq!(&got[..], &data[..]);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(cache.used_bytes() <= 160);
        drop(cache);
        let reopened = open(tmp.path(), 16 * 10);
        assert!(reopened.used_bytes() <= 160);
    }
}
