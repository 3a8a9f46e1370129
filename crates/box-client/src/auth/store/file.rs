//! `FileTokenStore`: the pair as a JSON file, shared by every process of the machine (and
//! of any machine that sees the same file system with working `flock`).
//!
//! Writes are atomic: a temporary file in the same directory (mode 0600 from its creation),
//! fsync, rename over the old file, fsync of the directory — so a reader, or a crash, sees
//! the old pair or the new one, never half of one. The lock is an exclusive `flock` on a
//! sidecar `<file>.lock` (never deleted: deleting a lock file lets two holders lock two
//! different files). `flock` locks belong to the open file, so a holder that dies loses its
//! lock with its descriptors.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;

use super::{LockRelease, StoreLock, TokenPair, TokenStore, DEFAULT_LOCK_WAIT};
use crate::error::{BoxError, BoxResult};

/// How often a waiter tries the lock again.
const LOCK_POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
    lock_path: PathBuf,
    lock_wait: Duration,
}

impl FileTokenStore {
    pub fn new(path: impl Into<PathBuf>) -> FileTokenStore {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        FileTokenStore {
            path,
            lock_path: lock_path.into(),
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }

    /// How long `lock` waits for another holder before it fails.
    pub fn with_lock_wait(mut self, wait: Duration) -> FileTokenStore {
        self.lock_wait = wait;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, what: &str, e: io::Error) -> BoxError {
        BoxError::Store(format!("{what} {}: {e}", self.path.display()))
    }
}

fn read_pair(path: &Path) -> io::Result<Option<(Vec<u8>, u32)>> {
    match fs::read(path) {
        Ok(bytes) => {
            let mode = fs::metadata(path).map(|m| m.mode()).unwrap_or(0o600);
            Ok(Some((bytes, mode)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Temp file (mode 0600), fsync, rename, fsync of the directory; missing directories are
/// made with mode 0700.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tokens".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::thread_rng().gen::<u32>()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // The rename is durable only once the directory is. Some file systems refuse to sync a
    // directory; the data is then as safe as they make it.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// One non-blocking attempt at the exclusive lock.
fn try_flock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor this `File` owns; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => Ok(false),
        _ => Err(err),
    }
}

struct FileLock {
    file: File,
}

#[async_trait]
impl LockRelease for FileLock {
    async fn release(self: Box<Self>) -> BoxResult<()> {
        // SAFETY: as in `try_flock`. Closing the descriptor would release it as well.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
        Ok(())
    }
}

#[async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self) -> BoxResult<Option<TokenPair>> {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || read_pair(&path))
            .await
            .map_err(|e| BoxError::Store(format!("reading the token file: {e}")))?
            .map_err(|e| self.io_error("cannot read", e))?;
        let Some((bytes, mode)) = read else {
            return Ok(None);
        };
        if mode & 0o077 != 0 {
            log::warn!(
                "token file {} can be read by other users (mode {:o}); it will be 0600 after the next refresh",
                self.path.display(),
                mode & 0o777
            );
        }
        TokenPair::from_json(&bytes, &self.path.display().to_string()).map(Some)
    }

    async fn save(&self, pair: &TokenPair) -> BoxResult<()> {
        let bytes = pair.to_json()?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| BoxError::Store(format!("writing the token file: {e}")))?
            .map_err(|e| self.io_error("cannot write", e))
    }

    async fn clear(&self) -> BoxResult<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || remove(&path))
            .await
            .map_err(|e| BoxError::Store(format!("removing the token file: {e}")))?
            .map_err(|e| self.io_error("cannot remove", e))
    }

    async fn lock(&self) -> BoxResult<StoreLock> {
        let lock_path = self.lock_path.clone();
        let file = tokio::task::spawn_blocking(move || {
            if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&lock_path)
        })
        .await
        .map_err(|e| BoxError::Store(format!("opening the lock file: {e}")))?
        .map_err(|e| {
            BoxError::Store(format!(
                "cannot open the lock file {}: {e}",
                self.lock_path.display()
            ))
        })?;
        // Polling keeps the wait cancellable and bounded; a refresh takes well under a
        // second, so a 10 ms poll costs nothing.
        let started = Instant::now();
        loop {
            match try_flock(&file) {
                Ok(true) => return Ok(StoreLock::new(FileLock { file })),
                Ok(false) => {}
                Err(e) => {
                    return Err(BoxError::Store(format!(
                        "cannot lock {}: {e}",
                        self.lock_path.display()
                    )))
                }
            }
            if started.elapsed() >= self.lock_wait {
                return Err(BoxError::Store(format!(
                    "{} is still locked by another process after {} s",
                    self.lock_path.display(),
                    self.lock_wait.as_secs()
                )));
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_atomically_with_private_mode_and_locks_exclusively() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/tokens.json");
        let store = FileTokenStore::new(&path).with_lock_wait(Duration::from_millis(100));
        assert_eq!(store.load().await.unwrap(), None);
        let pair = TokenPair::new("a", Some("r".into()), None);
        store.save(&pair).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(pair));
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");

        let held = store.lock().await.unwrap();
        // A second open file description cannot take it (flock is per open file).
        assert!(matches!(store.lock().await, Err(BoxError::Store(_))));
        held.release().await.unwrap();
        let again = store.lock().await.unwrap();
        drop(again);
        store.lock().await.unwrap().release().await.unwrap();

        store.clear().await.unwrap();
        assert_eq!(store.load().await.unwrap(), None);
        store.clear().await.unwrap();

        fs::write(&path, b"not json").unwrap();
        assert!(matches!(store.load().await, Err(BoxError::Store(_))));
    }
}
