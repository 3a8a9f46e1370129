//! `--data DIR`: the emulator's state survives restarts.
//!
//! Layout: `DIR/state.json` is the whole [`Store`] (serde; the derived indexes, the blobs
//! and the base URL are skipped) and `DIR/blobs/<sha1>` holds each content blob once.
//! `state.json` is the truth: it is replaced atomically (temporary file, fsync, rename,
//! fsync of the directory), and only after the blobs it names are on disk, so a crash leaves
//! either the old or the new state, never a torn one. Blob files no state refers to are
//! removed on load.
//!
//! Changes are saved by a background flusher at most every [`FLUSH_INTERVAL`] while there
//! are unsaved changes ([`Persister::mark_dirty`], called by `Shared::changed`), and once
//! more when the emulator stops. The store is serialized while its mutex is held (a
//! consistent snapshot); the files are written after it is released. Snapshots are numbered
//! so that a slow, older write can never overwrite a newer one.
//!
//! Not kept across restarts: the bytes of parts uploaded to open upload sessions
//! (`Store::session_data`). Sessions themselves survive, with their part list emptied, so a
//! client sees no parts and uploads them again.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::anyhow_like::{Result, StartError};
use super::blob::Blob;
use super::store::Store;
use super::Shared;

/// Unsaved changes are written at most this long after they happen.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

const STATE_FILE: &str = "state.json";
const BLOB_DIR: &str = "blobs";

/// What is written for one save: taken under the store lock, written after it.
struct Snapshot {
    generation: u64,
    state: Vec<u8>,
    new_blobs: Vec<(String, Blob)>,
}

pub struct Persister {
    pub dir: PathBuf,
    dirty: AtomicBool,
    /// Number of the latest snapshot taken.
    generation: AtomicU64,
    /// Number of the latest snapshot written; held while writing, so writes never interleave.
    written_generation: Mutex<u64>,
    /// Blobs known to be on disk.
    written_blobs: Mutex<HashSet<String>>,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StartError {
    StartError(format!("{what} {}: {e}", path.display()))
}

/// A blob's file name is its lower-case hex SHA1; nothing else is ever read or written.
fn is_sha1_name(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes `path` atomically: a temporary file in the same directory, fsync, rename. The file
/// is 0600 whatever the umask: `state.json` holds client secrets and tokens.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic_pieces(path, &[data])
}

/// [`write_atomic`] of the pieces one after the other.
fn write_atomic_pieces(path: &Path, pieces: &[&[u8]]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        for piece in pieces {
            f.write_all(piece)?;
        }
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Persister {
    /// Uses (and creates if needed) `dir` for the state.
    pub fn new(dir: PathBuf) -> Result<Persister> {
        std::fs::create_dir_all(dir.join(BLOB_DIR))
            .map_err(|e| io_error("cannot create the data directory", &dir, e))?;
        // Fail now, not at the first save, if the directory is not writable.
        let probe = dir.join(format!(".probe-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&probe, b"")
            .map_err(|e| io_error("cannot write to the data directory", &dir, e))?;
        let _ = std::fs::remove_file(&probe);
        Ok(Persister {
            dir,
            dirty: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            written_generation: Mutex::new(0),
            written_blobs: Mutex::new(HashSet::new()),
        })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn blob_dir(&self) -> PathBuf {
        self.dir.join(BLOB_DIR)
    }

    /// The saved state, or `None` on a first start (no `state.json` yet).
    pub fn load(&self) -> Result<Option<Store>> {
        let path = self.state_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("cannot read the emulator state", &path, e)),
        };
        let mut store: Store = serde_json::from_slice(&bytes).map_err(|e| {
            StartError(format!(
                "{} is not a valid emulator state ({e}); move it away to start afresh",
                path.display()
            ))
        })?;
        let referenced: HashSet<String> = store
            .items
            .values()
            .flat_map(|i| i.versions.iter().map(|v| v.sha1.clone()))
            .collect();
        let blob_dir = self.blob_dir();
        let entries = std::fs::read_dir(&blob_dir)
            .map_err(|e| io_error("cannot list the blobs in", &blob_dir, e))?;
        let mut written = self.written_blobs.lock().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            let entry = entry.map_err(|e| io_error("cannot list the blobs in", &blob_dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let file = entry.path();
            if !is_sha1_name(&name) || !referenced.contains(&name) {
                // Leftover temporary files and content no item refers to any more.
                let _ = std::fs::remove_file(&file);
                continue;
            }
            let data = std::fs::read(&file).map_err(|e| io_error("cannot read", &file, e))?;
            if hex::encode(Sha1::digest(&data)) != name {
                log::error!(
                    "emulator: {} does not hold the content its name says; ignored",
                    file.display()
                );
                let _ = std::fs::remove_file(&file);
                continue;
            }
            store.blobs.insert(name.clone(), Blob::from(data));
            written.insert(name);
        }
        drop(written);
        for sha1 in &referenced {
            if !store.blobs.contains_key(sha1) {
                log::error!(
                    "emulator: content {sha1} is missing from {}; downloads of it will fail",
                    blob_dir.display()
                );
            }
        }
        // The bytes of uploaded parts are not kept; forget the parts so they are sent again.
        for session in store.sessions.values_mut() {
            session.parts.clear();
        }
        store.rebuild_indexes();
        Ok(Some(store))
    }

    /// Writes the state now (the caller holds the store lock).
    pub fn save(&self, store: &Store) -> Result<()> {
        self.dirty.store(false, Ordering::SeqCst);
        let snapshot = self.snapshot(store)?;
        self.write(snapshot).inspect_err(|_| self.mark_dirty())
    }

    /// Notes an unsaved change; the flusher writes it soon.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// Saves while there are unsaved changes, at most every [`FLUSH_INTERVAL`], until the
    /// emulator's shared state is gone.
    pub fn spawn_flusher(&self, shared: Weak<Shared>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(sh) = shared.upgrade() else {
                    return;
                };
                if !sh
                    .persist
                    .as_ref()
                    .is_some_and(|p| p.dirty.load(Ordering::SeqCst))
                {
                    continue;
                }
                let flushed = tokio::task::spawn_blocking(move || match &sh.persist {
                    Some(p) => p.flush(&sh.store),
                    None => Ok(()),
                })
                .await;
                match flushed {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => log::error!("emulator: saving state failed: {e}"),
                    Err(e) => log::error!("emulator: saving state failed: {e}"),
                }
            }
        });
    }

    /// Saves if there are unsaved changes, holding the store lock only to take a snapshot.
    fn flush(&self, store: &Mutex<Store>) -> Result<()> {
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let snapshot = {
            let store = store.lock().unwrap_or_else(|e| e.into_inner());
            self.snapshot(&store)
        };
        snapshot
            .and_then(|s| self.write(s))
            .inspect_err(|_| self.mark_dirty())
    }

    fn snapshot(&self, store: &Store) -> Result<Snapshot> {
        // Taken under the store lock, so snapshot numbers follow the order of the states.
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let state = serde_json::to_vec(store)
            .map_err(|e| StartError(format!("cannot serialize the emulator state: {e}")))?;
        let written = self.written_blobs.lock().unwrap_or_else(|e| e.into_inner());
        let new_blobs = store
            .blobs
            .iter()
            .filter(|(sha1, _)| !written.contains(*sha1))
            .map(|(sha1, data)| (sha1.clone(), data.clone()))
            .collect();
        Ok(Snapshot {
            generation,
            state,
            new_blobs,
        })
    }

    fn write(&self, snapshot: Snapshot) -> Result<()> {
        let mut last = self
            .written_generation
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if snapshot.generation <= *last {
            // A newer state is already on disk.
            return Ok(());
        }
        let blob_dir = self.blob_dir();
        let mut new_files = false;
        for (sha1, data) in &snapshot.new_blobs {
            if !is_sha1_name(sha1) {
                log::error!("emulator: not saving a blob with the malformed name {sha1:?}");
                continue;
            }
            let path = blob_dir.join(sha1);
            if !path.exists() {
                let pieces: Vec<&[u8]> = data.pieces().iter().map(|p| &p[..]).collect();
                write_atomic_pieces(&path, &pieces)
                    .map_err(|e| io_error("cannot write", &path, e))?;
                new_files = true;
            }
            self.written_blobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(sha1.clone());
        }
        if new_files {
            sync_dir(&blob_dir).map_err(|e| io_error("cannot sync", &blob_dir, e))?;
        }
        let path = self.state_path();
        write_atomic(&path, &snapshot.state).map_err(|e| io_error("cannot write", &path, e))?;
        sync_dir(&self.dir).map_err(|e| io_error("cannot sync", &self.dir, e))?;
        *last = snapshot.generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("write");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "state.json holds secrets");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.json")]);
    }

    #[test]
    fn an_older_snapshot_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Persister::new(dir.path().to_path_buf()).expect("new");
        let mut store = Store {
            enterprise_name: "old".into(),
            ..Store::default()
        };
        let older = p.snapshot(&store).expect("snapshot");
        store.enterprise_name = "new".into();
        let newer = p.snapshot(&store).expect("snapshot");
        p.write(newer).expect("write");
        p.write(older).expect("write");
        let loaded = p.load().expect("load").expect("state");
        assert_eq!(loaded.enterprise_name, "new");
    }

    #[test]
    fn blobs_round_trip_and_unreferenced_ones_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Persister::new(dir.path().to_path_buf()).expect("new");
        let mut store = Store::default();
        // Stored in two pieces, as an upload session's parts are; written as one file.
        let data = bytes::Bytes::from_static(b"hello");
        let sha1 = hex::encode(Sha1::digest(&data));
        let pieces = [data.slice(..3), data.slice(3..)];
        store.blobs.insert(sha1.clone(), Blob::from_pieces(pieces));
        let now = chrono::Utc::now();
        let mut item = store.new_item(super::super::store::ItemKind::File, "a", 1, 1, 1, now);
        item.versions.push(super::super::store::Version {
            id: 9,
            sha1: sha1.clone(),
            size: 5,
            name: "a".into(),
            created_at: now,
            modified_by: 1,
        });
        store.insert_item(item);
        let stray = "0".repeat(40);
        std::fs::write(dir.path().join(BLOB_DIR).join(&stray), b"x").expect("write");
        p.save(&store).expect("save");
        let p2 = Persister::new(dir.path().to_path_buf()).expect("new");
        let loaded = p2.load().expect("load").expect("state");
        assert_eq!(loaded.blobs.get(&sha1).map(Blob::to_bytes), Some(data));
        assert!(!dir.path().join(BLOB_DIR).join(&stray).exists());
        assert_eq!(loaded.children.get(&1).map(Vec::len), Some(1));
    }

    #[test]
    fn unusable_directories_give_readable_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"").expect("write");
        let err = Persister::new(file.join("sub")).err().expect("fails");
        assert!(
            err.to_string()
                .starts_with("cannot create the data directory"),
            "{err}"
        );
        let p = Persister::new(dir.path().join("d")).expect("new");
        std::fs::write(p.state_path(), b"{not json").expect("write");
        let err = p.load().expect_err("fails");
        assert!(
            err.to_string().contains("is not a valid emulator state"),
            "{err}"
        );
    }
}
