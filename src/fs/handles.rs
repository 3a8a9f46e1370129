//! Open file and directory handles: the numbers (`fh`) the kernel gets from `open` and
//! `opendir`, and what each stands for until `release`/`releasedir`. Handles of both kinds
//! come from one counter, so an `fh` never names a file and a directory at once. Writers'
//! extra state (their staged file, `O_APPEND`, the content they started from) is kept by
//! the write path under the same `fh`.

use std::collections::HashMap;

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::fs::errno::FsError;
use crate::fs::lock;
use crate::fs::read::reader::FileReader;
use crate::fs::tree::dir_handle::DirHandle;
use crate::fs::tree::inode::Ino;

/// An open regular file.
pub struct OpenFile {
    pub ino: Ino,
    pub content: OpenContent,
}

/// Where an open file's bytes come from.
pub enum OpenContent {
    /// Box: this version of the file's content (ranged, parallel, through the cache).
    Box(FileReader),
    /// Made here: a web link's shortcut.
    Made(Bytes),
}

/// The open files and directories of a mount.
pub struct Handles {
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_fh: AtomicU64,
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            files: Mutex::default(),
            dirs: Mutex::default(),
            // 0 is left unused: some tools take it for "no handle".
            next_fh: AtomicU64::new(1),
        }
    }
}

impl Handles {
    fn next(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers an open file and returns its handle.
    pub fn add_file(&self, file: OpenFile) -> u64 {
        let fh = self.next();
        lock(&self.files).insert(fh, Arc::new(file));
        fh
    }

    /// The open file `fh` (EBADF if there is none).
    pub fn file(&self, fh: u64) -> Result<Arc<OpenFile>, FsError> {
        lock(&self.files)
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, format!("no open file {fh}")))
    }

    pub fn remove_file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        lock(&self.files).remove(&fh)
    }

    /// Registers an open directory and returns its handle.
    pub fn add_dir(&self, handle: Arc<DirHandle>) -> u64 {
        let fh = self.next();
        lock(&self.dirs).insert(fh, handle);
        fh
    }

    /// The open directory `fh` (EBADF if there is none).
    pub fn dir(&self, fh: u64) -> Result<Arc<DirHandle>, FsError> {
        lock(&self.dirs)
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, format!("no open directory {fh}")))
    }

    pub fn remove_dir(&self, fh: u64) -> Option<Arc<DirHandle>> {
        lock(&self.dirs).remove(&fh)
    }
}
