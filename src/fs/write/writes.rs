//! Writing: create, write, truncate, utimens, flush, fsync and release, and what renames and
//! unlinks must do about files with staged data. Data never goes to Box as it is written:
//! it goes to a *staged* copy in the staging area ([`crate::fs::write::staging`]), which is uploaded
//! on close (flush), fsync, or from the upload queue (`write/uploader.rs`).
//!
//! # Design note
//!
//! **Staging.** A new file is staged from its creation: it gets a local inode
//! ([`crate::fs::tree::inode::InodeTable::insert_local_file`]) and an empty data file. An existing file is staged
//! at its first change (a write, a truncation, `O_TRUNC`): its current content is fetched
//! from Box first, the very version whose etag becomes the `If-Match` of the upload. An
//! open for writing only checks the file's lock and notes that version, so programs that
//! open read-write and only read (databases, `less -e`) cost no download. While an inode
//! is staged, every handle on it reads the staged data, and the inode is *pinned*: `stat`
//! shows the staged size and mtime whatever Box says. A staged entry stays while any handle
//! on the inode is open, or while its data still has to reach Box.
//!
//! **Dirty means journaled.** The first change to a clean staged file writes its journal
//! (atomically) before the change is acknowledged, so a crash or `kill -9` from then on
//! leaves data that the next mount uploads. Box's confirmation of the upload removes the
//! journal; the data goes once nothing needs it.
//!
//! **When uploads happen.** By default `close` (flush) and `fsync` upload and return only
//! when Box confirmed: a failure reaches the program as an errno (EIO, ENOSPC for a full
//! account, EACCES for a lock). A failed upload stays staged and is retried from the queue
//! with a growing delay, and on the next mount. With `--write-back SECS`, close returns at
//! once and the queue uploads `SECS` after the first close (later closes within that time
//! join the same upload); fsync still uploads at once. A truncate(2) or utimens by path on
//! a file nobody has open for writing is a change of its own: uploaded at once (or queued).
//!
//! **Locks.** `staged.upload` (one upload at a time) → `staged.content` (writes and
//! truncations share it, an upload holds it exclusively, so the data never changes under
//! an upload) → `staged.journal` → the std mutexes, never held across an `.await`:
//! `Writes::inner` before `staged.state`, and neither together with the inode table.
//!
//! **Renames and unlinks** of staged files: see `staged_names.rs`.
//!
//! **Times and modes.** utimens sets the staged data's mtime, which the upload sends as
//! `content_modified_at`. Box cannot change a file's modification time without new
//! content, so on a clean file a new mtime is kept in memory only (until Box's answers
//! carry another time of the file's content, see `Extra::mtime_set_here`) and nothing is
//! uploaded. Every change sets the inode's change time to its moment. chmod and chown
//! change the mode and owner only with `--posix-attributes` (`write::posix`); without it
//! they are accepted and change nothing.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::fs::errno::FsError;
use crate::fs::tree::attr::FsAttr;
use crate::fs::tree::inode::{Ino, Kind};
use crate::fs::write::staging::{Journal, StagingDir, Target};
use crate::fs::{box_name, lock, BoxFs, OpenContent, OpenFile, Opened, STAT_FIELDS};
use box_client::error::BoxError;
use box_client::files::DownloadOptions;
use box_client::types::Item;

/// How long a new file's staged copy is kept after its upload, for a rename over another
/// file (an editor's save) to turn into a new version of that file.
pub const RENAME_GRACE: Duration = Duration::from_secs(15);
/// Larger new files are not kept for [`RENAME_GRACE`].
pub const RENAME_GRACE_MAX: u64 = 64 << 20;

/// Blocks written to a staging file at once while its content is fetched from Box.
const FETCH_BLOCK: usize = 1 << 20;

/// One staged file: its data on local disk and what is known about it.
pub(in crate::fs) struct Staged {
    pub(in crate::fs) key: String,
    pub(in crate::fs) file: Arc<std::fs::File>,
    /// Writes and truncations take it shared, an upload exclusively.
    pub(in crate::fs) content: tokio::sync::RwLock<()>,
    /// One upload of this data at a time.
    pub(in crate::fs) upload: tokio::sync::Mutex<()>,
    /// The journal on disk, `Some` exactly while the data is dirty.
    pub(in crate::fs) journal: tokio::sync::Mutex<Option<Journal>>,
    pub(in crate::fs) state: Mutex<StagedState>,
}

#[derive(Debug, Clone)]
pub(in crate::fs) struct StagedState {
    /// The inode it is the data of (`None` for entries recovered at start-up).
    pub(in crate::fs) ino: Option<Ino>,
    pub(in crate::fs) target: Target,
    pub(in crate::fs) size: u64,
    pub(in crate::fs) mtime: SystemTime,
    /// `utimens` set `mtime` (it goes into the journal).
    pub(in crate::fs) explicit_mtime: bool,
    pub(in crate::fs) dirty: bool,
    /// The file was unlinked or replaced: its data never goes to Box.
    pub(in crate::fs) discarded: bool,
    /// Created through this mount (a rename over another file makes it a new version).
    pub(in crate::fs) created_here: bool,
    /// Kept after an upload until then, for a rename (see [`RENAME_GRACE`]).
    pub(in crate::fs) keep_until: Option<Instant>,
    /// An upload session Box holds parts of (recovered entries).
    pub(in crate::fs) session_id: Option<String>,
    /// The SHA1s of data sent in uploads whose answer never came (no answer, or a 5xx):
    /// Box may hold any of them. A later conflict with one of them is with ourselves.
    pub(in crate::fs) unconfirmed: Vec<String>,
    /// Box ids of the uploaded temporary files this data replaced (an editor's save, see
    /// `staged_names`): trashed at the rename, purged once Box holds this data.
    pub(in crate::fs) replaced_temporaries: Vec<String>,
}

impl Staged {
    pub(in crate::fs) fn state(&self) -> std::sync::MutexGuard<'_, StagedState> {
        lock(&self.state)
    }

    pub(in crate::fs) fn snapshot(&self) -> StagedState {
        self.state().clone()
    }
}

/// What [`BoxFs::drop_staged`] found the file to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::fs) enum Dropped {
    /// Created here and never uploaded: gone from the table, nothing on Box.
    Local,
    /// On Box. `fresh_empty_upload`: an empty file this mount created and uploaded moments
    /// ago (its staged copy was still kept for a rename), such as a lock file.
    OnBox { fresh_empty_upload: bool },
}

/// An open file handle, as far as writing is concerned.
#[derive(Debug, Clone)]
struct Handle {
    ino: Ino,
    writer: bool,
    append: bool,
    /// For writers of a file not staged yet: the version to stage from.
    base: Option<Base>,
    /// Something was written, or a size set, through this handle (see [`BoxFs::flush`]).
    wrote: bool,
}

/// The Box version a write handle was opened on.
#[derive(Debug, Clone)]
struct Base {
    file_id: String,
    etag: Option<String>,
    version: Option<String>,
    size: u64,
    mtime: SystemTime,
}

/// Changes a `setattr` asks for.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub mtime: Option<SystemTime>,
    pub atime: Option<SystemTime>,
    /// chmod: kept on Box with `--posix-attributes`, else accepted and changing nothing.
    pub mode: Option<u32>,
    /// chown/chgrp: kept on Box with `--posix-attributes`, else accepted and changing
    /// nothing.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Pending uploads: when each is due and how often it failed.
#[derive(Debug, Clone, Copy)]
pub(in crate::fs) struct Pending {
    pub(in crate::fs) due: Instant,
    pub(in crate::fs) failures: u32,
}

#[derive(Default)]
pub(in crate::fs) struct WritesInner {
    /// Staged entries by key (all of them, recovered ones included).
    pub(in crate::fs) entries: HashMap<String, Arc<Staged>>,
    /// Staged entries by inode.
    pub(in crate::fs) by_ino: HashMap<Ino, Arc<Staged>>,
    handles: HashMap<u64, Handle>,
    /// Uploads waiting in the queue, by staged key.
    pub(in crate::fs) queue: HashMap<String, Pending>,
    /// Per-inode locks so that two first writes stage a file once.
    stage_locks: HashMap<Ino, Arc<tokio::sync::Mutex<()>>>,
}

/// The write side of the filesystem.
pub(in crate::fs) struct Writes {
    pub(in crate::fs) staging: Option<Arc<StagingDir>>,
    pub(in crate::fs) write_back: Option<Duration>,
    pub(in crate::fs) inner: Mutex<WritesInner>,
    /// Wakes the upload queue.
    pub(in crate::fs) wake: tokio::sync::Notify,
    /// The uploads running now, and totals.
    pub(in crate::fs) progress: crate::fs::write::upload_progress::UploadProgress,
}

impl Writes {
    pub(in crate::fs) fn new(staging: Option<StagingDir>, write_back: Option<Duration>) -> Writes {
        Writes {
            staging: staging.map(Arc::new),
            write_back,
            inner: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            progress: Default::default(),
        }
    }

    pub(in crate::fs) fn inner(&self) -> std::sync::MutexGuard<'_, WritesInner> {
        lock(&self.inner)
    }

    pub(in crate::fs) fn staged(&self, ino: Ino) -> Option<Arc<Staged>> {
        self.inner().by_ino.get(&ino).cloned()
    }

    pub(in crate::fs) fn staging(&self) -> Result<&Arc<StagingDir>, FsError> {
        self.staging
            .as_ref()
            .ok_or_else(|| FsError::new(libc::EROFS, "no staging directory: writes are off"))
    }

    /// Queues the upload of `key` in `delay`; an earlier due time already queued stays.
    pub(in crate::fs) fn schedule(&self, key: &str, delay: Duration) {
        let due = Instant::now() + delay;
        {
            let mut inner = self.inner();
            let p = inner
                .queue
                .entry(key.to_string())
                .or_insert(Pending { due, failures: 0 });
            p.due = p.due.min(due);
        }
        self.sync_later(key);
        self.wake.notify_one();
    }

    /// Makes `key`'s staged data and journal durable against a crash of the machine, in the
    /// background. Called whenever an upload is queued: the data then outlives the close
    /// that wrote it (`--write-back`, a failed upload), and the program was told it is
    /// safe. Data uploaded by the close itself never needs it: until Box confirmed, the
    /// program was promised nothing, and a crash of the daemon alone loses nothing that is
    /// written but not synced.
    pub(in crate::fs) fn sync_later(&self, key: &str) {
        let Some(staging) = self.staging.clone() else {
            return;
        };
        let Some(staged) = self.inner().entries.get(key).cloned() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn_blocking(move || {
            if let Err(e) = sync_staged(&staging, &staged) {
                log::warn!("staged upload {}: syncing it to disk: {e}", staged.key);
            }
        });
    }

    /// [`Writes::sync_later`], awaited: for data left staged when the mount ends.
    pub(in crate::fs) async fn sync_now(&self, staged: &Arc<Staged>) -> Result<(), FsError> {
        let staging = self.staging()?.clone();
        let staged = staged.clone();
        blocking(move || sync_staged(&staging, &staged)).await
    }

    /// Queues the upload of `key` in `delay` unless it is queued already (a retry after a
    /// failure keeps its delay).
    /// Every upload waiting to be tried again is due now (Box can be reached again). One
    /// already running is not started twice: a second run waits for it and finds the data
    /// uploaded.
    pub(in crate::fs) fn retry_failed_now(&self) -> usize {
        let now = Instant::now();
        let mut n = 0;
        for p in self.inner().queue.values_mut() {
            if p.failures > 0 && p.due > now {
                p.due = now;
                n += 1;
            }
        }
        self.wake.notify_one();
        n
    }

    fn schedule_unless_queued(&self, key: &str, delay: Duration) {
        if !self.inner().queue.contains_key(key) {
            self.schedule(key, delay);
        }
    }

    /// Whether any handle on `ino` is open, and whether any of them writes.
    pub(in crate::fs) fn open_on(&self, ino: Ino) -> (bool, bool) {
        let inner = self.inner();
        let mut any = false;
        let mut writer = false;
        for h in inner.handles.values().filter(|h| h.ino == ino) {
            any = true;
            writer |= h.writer;
        }
        (any, writer)
    }
}

/// Makes a staged file's data and journal durable against a crash of the machine.
fn sync_staged(staging: &StagingDir, staged: &Staged) -> std::io::Result<()> {
    staged.file.sync_data()?;
    staging.sync_journal(&staged.key)
}

/// Box's documented rules for names (`\\`, control characters, a trailing space). Folders
/// learn of a refused name from Box at once; a new file would only at its upload, on close,
/// so its name is checked when it is created.
fn check_new_name(name: &str) -> Result<(), FsError> {
    if name.contains('\\') || name.chars().any(char::is_control) || name.ends_with(' ') {
        return Err(FsError::new(
            libc::EINVAL,
            format!("Box does not accept the name {name:?}"),
        ));
    }
    Ok(())
}

fn has(flags: i32, flag: i32) -> bool {
    flags & flag != 0
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()
}

/// Async wrapper for blocking file work.
pub(in crate::fs) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FsError::new(libc::EIO, format!("staging task failed: {e}")))?
        .map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            FsError::new(errno, format!("staging area: {e}"))
        })
}

/// Who holds a lock on `item` other than `me`, if anyone (an expired lock locks nothing).
fn locked_by_other(item: &Item, me: &str) -> Option<String> {
    let lock = item.lock.as_ref()?;
    if let Some(exp) = lock.expired_at.as_deref() {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(exp) {
            if t < chrono::Utc::now() {
                return None;
            }
        }
    }
    let by = lock.created_by.as_ref();
    if by.is_some_and(|u| u.id == me) {
        return None;
    }
    Some(by.map_or_else(
        || "another user".to_string(),
        |u| format!("{} ({})", u.name, u.login),
    ))
}

impl BoxFs {
    /// Notes that handle `fh` changed its file's data (see [`BoxFs::flush`]).
    fn note_written(&self, fh: u64) {
        if let Some(h) = self.writes.inner().handles.get_mut(&fh) {
            h.wrote = true;
        }
    }

    fn handle(&self, fh: u64) -> Result<Handle, FsError> {
        self.writes
            .inner()
            .handles
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, format!("no open file {fh}")))
    }

    /// Records a handle opened for reading, so that a staged copy it reads stays.
    pub(in crate::fs) fn note_reader(&self, fh: u64, ino: Ino) {
        self.writes.inner().handles.insert(
            fh,
            Handle {
                ino,
                writer: false,
                append: false,
                base: None,
                wrote: false,
            },
        );
    }

    /// The staged data of `ino`, if it is staged: what `read` answers instead of Box.
    pub(in crate::fs) async fn read_staged(
        &self,
        ino: Ino,
        offset: u64,
        size: u32,
    ) -> Option<Result<Bytes, FsError>> {
        let staged = self.writes.staged(ino)?;
        let len = staged.state().size;
        if offset >= len || size == 0 {
            return Some(Ok(Bytes::new()));
        }
        let n = (len - offset).min(u64::from(size)) as usize;
        let file = staged.file.clone();
        Some(
            blocking(move || {
                let mut buf = vec![0u8; n];
                let mut done = 0;
                while done < n {
                    match file.read_at(&mut buf[done..], offset + done as u64)? {
                        0 => break,
                        k => done += k,
                    }
                }
                buf.truncate(done);
                Ok(Bytes::from(buf))
            })
            .await,
        )
    }

    // ---- opening ----------------------------------------------------------------------

    /// Fetches `ino`'s item with its lock and refuses if another user holds the lock.
    async fn check_writable_file(&self, ino: Ino) -> Result<Base, FsError> {
        let (box_id, parent, kind) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            (inode.box_id().to_string(), inode.parent(), inode.kind())
        };
        match kind {
            Kind::Dir => return Err(FsError::new(libc::EISDIR, "is a directory")),
            // Its content is made from its URL: `user.box.url` changes that.
            Kind::Link => return Err(FsError::new(libc::EACCES, "a web link is read-only")),
            Kind::File => {}
        }
        let mut fields: Vec<&str> = STAT_FIELDS.to_vec();
        fields.push("lock");
        let item = match self.client.file_with_fields(&box_id, &fields).await {
            Ok(item) => item,
            Err(e) if e.is_not_found() => {
                self.forget_removed(ino);
                return Err(FsError::from(e));
            }
            // Offline (`crate::fs::offline`): the version the table holds is the base; the
            // upload's `If-Match` finds out later whether Box changed it meanwhile.
            Err(BoxError::Unreachable(_)) => return Ok(self.base_as_held(ino, box_id)),
            Err(e) => return Err(FsError::from(e)),
        };
        if item.lock.is_some() {
            let me = self.client.me().await?;
            if let Some(holder) = locked_by_other(&item, &me.id) {
                log::warn!(
                    "'{}' (Box id {box_id}) is locked on Box by {holder}: refusing to write it",
                    item.name
                );
                return Err(FsError::new(
                    libc::EACCES,
                    format!("'{}' is locked by {holder}", item.name),
                ));
            }
        }
        if let Some(p) = parent {
            lock(&self.table).insert_or_update_from_item(p, &item)?;
        }
        let a = lock(&self.table)
            .get(ino)
            .map(|i| i.attrs().clone())
            .unwrap_or_default();
        Ok(Base {
            file_id: box_id,
            etag: item.etag.clone(),
            version: item.file_version.as_ref().map(|v| v.id.clone()),
            size: item.size.unwrap_or(a.size),
            mtime: a.mtime.unwrap_or_else(SystemTime::now),
        })
    }

    /// The write base of `ino` (Box id `box_id`) as the table holds it, without asking Box.
    fn base_as_held(&self, ino: Ino, box_id: String) -> Base {
        let a = lock(&self.table)
            .get(ino)
            .map(|i| i.attrs().clone())
            .unwrap_or_default();
        Base {
            file_id: box_id,
            etag: a.etag.as_deref().map(str::to_string),
            version: a.version.as_deref().map(str::to_string),
            size: a.size,
            mtime: a.mtime.unwrap_or_else(SystemTime::now),
        }
    }

    /// `open` for writing (`O_WRONLY`/`O_RDWR`, with `O_TRUNC`, `O_APPEND`).
    pub async fn open_for_write(&self, ino: Ino, flags: i32) -> Result<Opened, FsError> {
        self.check_writable()?;
        self.history_refuses(ino)?;
        self.writes.staging()?;
        let truncate = has(flags, libc::O_TRUNC);
        let (staged, base) = match self.writes.staged(ino) {
            Some(s) if !s.state().discarded => (Some(s), None),
            _ => {
                let base = self.check_writable_file(ino).await?;
                let staged = if truncate {
                    Some(self.ensure_staged(ino, &base, Some(0)).await?)
                } else {
                    None
                };
                (staged, Some(base))
            }
        };
        if let (Some(staged), true) = (&staged, truncate) {
            self.truncate_staged(staged, 0).await?;
        }
        let (file_id, size) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            (inode.box_id().to_string(), inode.attrs().size)
        };
        let fh = self.register_handle(ino, file_id, size, flags, base);
        Ok(Opened {
            fh,
            keep_cache: false,
        })
    }

    fn register_handle(
        &self,
        ino: Ino,
        file_id: String,
        size: u64,
        flags: i32,
        base: Option<Base>,
    ) -> u64 {
        let (version, sha1) = lock(&self.table)
            .get(ino)
            .map(|i| {
                let a = i.attrs();
                (a.version.clone().or_else(|| a.sha1.clone()), a.sha1.clone())
            })
            .unwrap_or_default();
        // Reads before the first write (nothing staged yet) come from Box like any reader's.
        let reader = self
            .readers
            .reader_of(file_id, version.as_deref(), sha1.as_deref(), size);
        let fh = self.handles.add_file(OpenFile {
            ino,
            content: OpenContent::Box(reader),
        });
        self.writes.inner().handles.insert(
            fh,
            Handle {
                ino,
                writer: true,
                append: has(flags, libc::O_APPEND),
                base,
                wrote: false,
            },
        );
        fh
    }

    /// `create`: a new file, staged locally until its upload, with one kernel reference
    /// and an open handle. An existing name is opened instead (EEXIST with `O_EXCL`).
    pub async fn create(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
        flags: i32,
    ) -> Result<(FsAttr, Opened), FsError> {
        self.create_with_mode(parent, name, flags, None, None).await
    }

    /// `create` with the mode asked for, by `caller` (uid, gid): a new file takes them
    /// (kept on Box with `--posix-attributes`, after its first upload); an existing one
    /// keeps its own.
    pub async fn create_with_mode(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
        flags: i32,
        mode: Option<u32>,
        caller: Option<(u32, u32)>,
    ) -> Result<(FsAttr, Opened), FsError> {
        self.check_writable()?;
        let staging = self.writes.staging()?.clone();
        let name_str = box_name(name)?;
        check_new_name(name_str)?;
        let parent_id = self.box_id_of_dir(parent)?;
        if let Some(ino) = self.existing(parent, name).await? {
            if has(flags, libc::O_EXCL) {
                return Err(FsError::new(libc::EEXIST, "the name exists"));
            }
            let opened = self.open_for_write(ino, flags).await?;
            let mut table = lock(&self.table);
            table.add_lookup(ino);
            return Ok((self.cached_attr(&table, ino)?, opened));
        }
        self.refuse_case_twin(parent, name_str, None)?;
        let (key, file) = blocking(move || staging.create()).await?;
        let now = SystemTime::now();
        let target = Target::NewFile {
            parent_id,
            name: name_str.to_string(),
        };
        let ino = {
            let mut table = lock(&self.table);
            let ino = table.insert_local_file(parent, name_str, now)?;
            table.add_lookup(ino);
            ino
        };
        self.entries_changed(&[parent]);
        // Not on Box yet: the table takes the mode, Box after the first upload.
        self.keep_new_attrs(ino, mode, caller).await?;
        let staged = Arc::new(Staged {
            key: key.clone(),
            file: Arc::new(file),
            content: tokio::sync::RwLock::new(()),
            upload: tokio::sync::Mutex::new(()),
            journal: tokio::sync::Mutex::new(None),
            state: Mutex::new(StagedState {
                ino: Some(ino),
                target,
                size: 0,
                mtime: now,
                explicit_mtime: false,
                dirty: false,
                discarded: false,
                created_here: true,
                keep_until: None,
                session_id: None,
                unconfirmed: Vec::new(),
                replaced_temporaries: Vec::new(),
            }),
        });
        {
            let mut inner = self.writes.inner();
            inner.entries.insert(key, staged.clone());
            inner.by_ino.insert(ino, staged.clone());
        }
        // An empty file is a file too: it is uploaded on close like any other.
        if let Err(e) = self.mark_dirty(&staged).await {
            self.drop_local(ino, &staged).await;
            return Err(e);
        }
        let box_id = lock(&self.table)
            .get(ino)
            .map(|i| i.box_id().to_string())
            .unwrap_or_default();
        let fh = self.register_handle(ino, box_id, 0, flags, None);
        let attr = {
            let table = lock(&self.table);
            self.cached_attr(&table, ino)?
        };
        Ok((
            attr,
            Opened {
                fh,
                keep_cache: false,
            },
        ))
    }

    /// Stages `ino` from `base` unless it is staged already; with `initial_size` `Some(n)`
    /// only the first `n` bytes are needed (nothing is fetched for 0).
    async fn ensure_staged(
        &self,
        ino: Ino,
        base: &Base,
        initial_size: Option<u64>,
    ) -> Result<Arc<Staged>, FsError> {
        if let Some(s) = self.writes.staged(ino) {
            return Ok(s);
        }
        let stage_lock = self
            .writes
            .inner()
            .stage_locks
            .entry(ino)
            .or_default()
            .clone();
        let _held = stage_lock.lock().await;
        if let Some(s) = self.writes.staged(ino) {
            return Ok(s);
        }
        let result = self.stage_from_box(ino, base, initial_size).await;
        let mut inner = self.writes.inner();
        if Arc::strong_count(&stage_lock) <= 2 {
            inner.stage_locks.remove(&ino);
        }
        let staged = result?;
        inner.entries.insert(staged.key.clone(), staged.clone());
        inner.by_ino.insert(ino, staged.clone());
        drop(inner);
        lock(&self.table).set_pinned(ino, true);
        Ok(staged)
    }

    /// Fetches `base`'s content (the first `initial_size` bytes of it) into a new staging
    /// file.
    async fn stage_from_box(
        &self,
        ino: Ino,
        base: &Base,
        initial_size: Option<u64>,
    ) -> Result<Arc<Staged>, FsError> {
        let staging = self.writes.staging()?.clone();
        let (parent_id, name) = self.place_of(ino)?;
        let s = staging.clone();
        let (key, file) = blocking(move || s.create()).await?;
        let file = Arc::new(file);
        let want = initial_size.map_or(base.size, |n| n.min(base.size));
        if want > 0 {
            if let Err(e) = self.fetch_into(&file, base, want).await {
                let k = key.clone();
                let _ = blocking(move || staging.remove(&k)).await;
                return Err(e);
            }
        }
        log::debug!("staged '{name}' (Box id {}): {want} bytes", base.file_id);
        Ok(Arc::new(Staged {
            key,
            file,
            content: tokio::sync::RwLock::new(()),
            upload: tokio::sync::Mutex::new(()),
            journal: tokio::sync::Mutex::new(None),
            state: Mutex::new(StagedState {
                ino: Some(ino),
                target: Target::Version {
                    file_id: base.file_id.clone(),
                    base_etag: base.etag.clone(),
                    base_version: base.version.clone(),
                    parent_id,
                    name,
                },
                size: want,
                mtime: base.mtime,
                explicit_mtime: false,
                dirty: false,
                discarded: false,
                created_here: false,
                keep_until: None,
                session_id: None,
                unconfirmed: Vec::new(),
                replaced_temporaries: Vec::new(),
            }),
        }))
    }

    /// The Box folder id and name of `ino`.
    pub(in crate::fs) fn place_of(&self, ino: Ino) -> Result<(String, String), FsError> {
        let table = lock(&self.table);
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        let parent = inode
            .parent()
            .and_then(|p| table.get(p))
            .ok_or_else(|| FsError::not_found("the file was removed"))?;
        Ok((parent.box_id().to_string(), inode.name().to_string()))
    }

    /// Downloads the first `len` bytes of `base`'s version into `file`.
    async fn fetch_into(
        &self,
        file: &Arc<std::fs::File>,
        base: &Base,
        len: u64,
    ) -> Result<(), FsError> {
        let opts = DownloadOptions {
            version: base.version.clone(),
            range: (len < base.size).then(|| (0..len).into()),
        };
        let download = self.client.download_with(&base.file_id, &opts).await?;
        let mut stream = std::pin::pin!(download.into_stream());
        let mut offset = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(FETCH_BLOCK);
        loop {
            let chunk = stream.next().await;
            let done = chunk.is_none();
            if let Some(chunk) = chunk {
                buf.extend_from_slice(&chunk?);
            }
            if buf.len() >= FETCH_BLOCK || (done && !buf.is_empty()) {
                let data = std::mem::replace(&mut buf, Vec::with_capacity(FETCH_BLOCK));
                let f = file.clone();
                let at = offset;
                offset += data.len() as u64;
                blocking(move || f.write_all_at(&data, at)).await?;
            }
            if done {
                break;
            }
        }
        if offset != len {
            return Err(FsError::new(
                libc::EIO,
                format!(
                    "Box sent {offset} bytes of file {} instead of {len}",
                    base.file_id
                ),
            ));
        }
        Ok(())
    }

    /// Makes `staged` dirty: writes its journal first (so the change survives a crash).
    pub(in crate::fs) async fn mark_dirty(&self, staged: &Arc<Staged>) -> Result<(), FsError> {
        let mut journal = staged.journal.lock().await;
        if journal.is_some() {
            return Ok(());
        }
        let j = {
            let st = staged.state();
            if st.discarded {
                return Ok(());
            }
            Journal {
                target: st.target.clone(),
                mtime: st.explicit_mtime.then(|| rfc3339(st.mtime)),
                session_id: None,
            }
        };
        self.publish_journal(&staged.key, &j).await?;
        *journal = Some(j);
        let mut st = staged.state();
        st.dirty = true;
        st.keep_until = None;
        Ok(())
    }

    /// Rewrites the journal of a dirty entry after its target or mtime changed.
    pub(in crate::fs) async fn rewrite_journal(&self, staged: &Arc<Staged>) -> Result<(), FsError> {
        let mut journal = staged.journal.lock().await;
        let Some(old) = journal.clone() else {
            return Ok(());
        };
        let j = {
            let st = staged.state();
            Journal {
                target: st.target.clone(),
                mtime: st.explicit_mtime.then(|| rfc3339(st.mtime)),
                session_id: old.session_id.clone(),
            }
        };
        if j == old {
            return Ok(());
        }
        self.publish_journal(&staged.key, &j).await?;
        *journal = Some(j);
        Ok(())
    }

    /// Writes `key`'s journal so that a crash of the daemon cannot lose it, before the change
    /// it records is acknowledged. Not durable against a crash of the machine yet: that is
    /// for when the data outlives the close that wrote it ([`Writes::schedule`]).
    async fn publish_journal(&self, key: &str, journal: &Journal) -> Result<(), FsError> {
        let staging = self.writes.staging()?.clone();
        let (key, journal) = (key.to_string(), journal.clone());
        blocking(move || staging.publish_journal(&key, &journal)).await
    }

    /// Publishes the staged size and mtime to the inode table.
    fn publish_attrs(&self, staged: &Staged) {
        let st = staged.snapshot();
        if let Some(ino) = st.ino {
            lock(&self.table).set_local_attrs(ino, st.size, st.mtime, SystemTime::now());
        }
    }

    // ---- changing data -----------------------------------------------------------------

    /// `write`: `data` at `offset` (at the end for `O_APPEND` handles). Returns the bytes
    /// written.
    pub async fn write(&self, fh: u64, offset: u64, data: Vec<u8>) -> Result<u32, FsError> {
        let h = self.handle(fh)?;
        if !h.writer {
            return Err(FsError::new(libc::EBADF, "not open for writing"));
        }
        let staged = self.staged_for_handle(&h, None).await?;
        let _shared = staged.content.read().await;
        self.mark_dirty(&staged).await?;
        if !h.wrote {
            self.note_written(fh);
        }
        let len = data.len() as u64;
        // Appends go at the staged end whatever offset the kernel computed from its own,
        // possibly stale, idea of the size.
        let at = if h.append {
            staged.state().size
        } else {
            offset
        };
        let file = staged.file.clone();
        blocking(move || file.write_all_at(&data, at)).await?;
        {
            let mut st = staged.state();
            st.size = st.size.max(at + len);
            st.mtime = SystemTime::now();
            st.explicit_mtime = false;
        }
        self.publish_attrs(&staged);
        Ok(len as u32)
    }

    /// The staged entry of a write handle's inode, staged from its base version now if it
    /// is not yet (`initial_size` as for [`BoxFs::ensure_staged`]).
    async fn staged_for_handle(
        &self,
        h: &Handle,
        initial_size: Option<u64>,
    ) -> Result<Arc<Staged>, FsError> {
        if let Some(s) = self.writes.staged(h.ino) {
            return Ok(s);
        }
        let base = match &h.base {
            Some(b) => b.clone(),
            None => self.check_writable_file(h.ino).await?,
        };
        self.ensure_staged(h.ino, &base, initial_size).await
    }

    /// Cuts or extends the staged data to `size` bytes.
    async fn truncate_staged(&self, staged: &Arc<Staged>, size: u64) -> Result<(), FsError> {
        let _shared = staged.content.write().await;
        self.mark_dirty(staged).await?;
        let file = staged.file.clone();
        blocking(move || file.set_len(size)).await?;
        {
            let mut st = staged.state();
            st.size = size;
            st.mtime = SystemTime::now();
            st.explicit_mtime = false;
        }
        self.publish_attrs(staged);
        Ok(())
    }

    /// `setattr`: size (truncate, ftruncate), mtime (utimens), atime; the mode and the
    /// owner with `--posix-attributes` (see `write::posix`); without it, mode, uid and gid
    /// are accepted and change nothing.
    pub async fn setattr(
        &self,
        ino: Ino,
        fh: Option<u64>,
        change: SetAttr,
    ) -> Result<FsAttr, FsError> {
        let changes_something = change.size.is_some()
            || change.mtime.is_some()
            || change.mode.is_some()
            || change.uid.is_some()
            || change.gid.is_some();
        if let Some(attr) = self.history_setattr(ino, changes_something) {
            return attr;
        }
        if changes_something {
            self.check_writable()?;
        }
        if self.keeps_posix_attributes() {
            if change.uid.is_some() || change.gid.is_some() {
                self.set_owner(ino, change.uid, change.gid).await?;
            }
            if let Some(mode) = change.mode {
                self.set_mode(ino, mode).await?;
            }
        }
        if let Some(size) = change.size {
            let kind = lock(&self.table).get(ino).map(|i| i.kind());
            if kind == Some(Kind::Dir) {
                return Err(FsError::new(libc::EISDIR, "is a directory"));
            }
            self.writes.staging()?;
            let handle = fh.and_then(|fh| self.handle(fh).ok()).filter(|h| h.writer);
            let staged = match (&handle, self.writes.staged(ino)) {
                (_, Some(s)) => s,
                (Some(h), None) => self.staged_for_handle(h, Some(size)).await?,
                (None, None) => {
                    let base = self.check_writable_file(ino).await?;
                    self.ensure_staged(ino, &base, Some(size)).await?
                }
            };
            self.truncate_staged(&staged, size).await?;
            match (fh, &handle) {
                (Some(fh), Some(_)) => self.note_written(fh),
                _ => self.changed_without_writer(&staged).await?,
            }
        }
        if let Some(mtime) = change.mtime {
            match self.writes.staged(ino) {
                Some(staged) => {
                    {
                        let mut st = staged.state();
                        st.mtime = mtime;
                        st.explicit_mtime = true;
                    }
                    self.publish_attrs(&staged);
                    self.rewrite_journal(&staged).await?;
                }
                // A clean file: Box cannot take a new mtime without new content; kept in
                // memory (see the module note).
                None => lock(&self.table).set_mtime(ino, mtime),
            }
        }
        if let Some(atime) = change.atime {
            lock(&self.table).set_atime(ino, atime);
        }
        let mut table = lock(&self.table);
        // Setting any of its attributes is a change of the inode (utimensat included).
        if changes_something || change.atime.is_some() {
            table.note_changed(ino, SystemTime::now());
        }
        self.cached_attr(&table, ino)
    }

    /// A change made without a write handle (truncate(2) by path): nobody will close the
    /// file, so it is uploaded now (queued with `--write-back`), unless a writer has it
    /// open (then its close uploads).
    async fn changed_without_writer(&self, staged: &Arc<Staged>) -> Result<(), FsError> {
        let Some(ino) = staged.state().ino else {
            return Ok(());
        };
        let (_, writer) = self.writes.open_on(ino);
        if writer {
            return Ok(());
        }
        self.upload_on_close(staged).await
    }

    /// Uploads now, or queues the upload with `--write-back`.
    pub(in crate::fs) async fn upload_on_close(&self, staged: &Arc<Staged>) -> Result<(), FsError> {
        if !staged.state().dirty {
            return Ok(());
        }
        match self.writes.write_back {
            Some(delay) => {
                self.writes.schedule(&staged.key, delay);
                Ok(())
            }
            None => match self.upload_now(staged).await {
                // Offline: the data is staged on disk and queued for when Box is back.
                Err(e) if e.is_unreachable() => self.writes.sync_now(staged).await,
                done => done,
            },
        }
    }

    /// `flush` (each `close` of a descriptor): a dirty file written through this handle is
    /// uploaded (or queued with `--write-back`). Its result is what `close` returns.
    ///
    /// A handle nothing was written through yet uploads nothing here: the kernel flushes at
    /// every `close`, also of a descriptor whose copies stay open, and a shell's `cmd > file`
    /// closes the descriptor it opened before `cmd` writes through its copy. Uploading then
    /// put an empty version on Box before the real one (or made an empty file first). What
    /// such a handle changed (`O_TRUNC`, a new file) goes at a later flush of it, after a
    /// write, or is queued when it is released (`touch`, `: > file`).
    pub async fn flush(&self, fh: u64) -> Result<(), FsError> {
        let Ok(h) = self.handle(fh) else {
            return Ok(());
        };
        if !h.writer || !h.wrote {
            return Ok(());
        }
        match self.writes.staged(h.ino) {
            Some(staged) => self.upload_on_close(&staged).await,
            None => Ok(()),
        }
    }

    /// `fsync`: the data is on Box when it returns, in every mode; while Box is out of
    /// reach, on the local disk, queued for Box (see `crate::fs::offline`).
    pub async fn fsync(&self, fh: u64) -> Result<(), FsError> {
        let h = self.handle(fh)?;
        match self.writes.staged(h.ino) {
            Some(staged) if staged.state().dirty => match self.upload_now(&staged).await {
                Err(e) if e.is_unreachable() => self.writes.sync_now(&staged).await,
                done => done,
            },
            _ => Ok(()),
        }
    }

    /// `release` (the last reference to an open file is gone). Anything still dirty is
    /// queued (a failed close's retry stays as it was scheduled).
    pub async fn release_file(&self, fh: u64) {
        let h = self.writes.inner().handles.remove(&fh);
        self.release(fh);
        let Some(h) = h else {
            return;
        };
        if let Some(staged) = self.writes.staged(h.ino) {
            if h.writer && staged.state().dirty {
                self.writes.schedule_unless_queued(
                    &staged.key,
                    self.writes.write_back.unwrap_or_default(),
                );
            }
            self.maybe_retire(&staged).await;
        }
    }

    /// Drops a staged entry nothing needs any more: clean (or discarded), no handle open on
    /// its inode, no grace left, no upload running. Its inode is unpinned.
    pub(in crate::fs) async fn maybe_retire(&self, staged: &Arc<Staged>) {
        let st = staged.snapshot();
        if st.dirty && !st.discarded {
            return;
        }
        if st.keep_until.is_some_and(|t| t > Instant::now()) {
            return;
        }
        if let Some(ino) = st.ino {
            if self.writes.open_on(ino).0 {
                return;
            }
        }
        let Ok(_upload) = staged.upload.try_lock() else {
            return;
        };
        {
            let mut inner = self.writes.inner();
            inner.entries.remove(&staged.key);
            inner.queue.remove(&staged.key);
            if let Some(ino) = st.ino {
                if inner
                    .by_ino
                    .get(&ino)
                    .is_some_and(|s| Arc::ptr_eq(s, staged))
                {
                    inner.by_ino.remove(&ino);
                }
            }
        }
        if let Some(ino) = st.ino {
            let mut table = lock(&self.table);
            if table.get(ino).is_some_and(|i| !i.is_local()) {
                table.set_pinned(ino, false);
            }
        }
        if let Some(staging) = self.writes.staging.clone() {
            let key = staged.key.clone();
            let _ = blocking(move || staging.remove(&key)).await;
        }
        log::trace!("staged entry {} retired", staged.key);
    }

    /// The data of `staged` will never go to Box (its file was unlinked or replaced).
    /// Handles still open keep reading and writing it.
    pub(in crate::fs) async fn discard(&self, staged: &Arc<Staged>) {
        self.forget_staged_data(staged).await;
        self.maybe_retire(staged).await;
    }

    /// `discard` but for retiring the entry: callable while holding `staged.upload`.
    async fn forget_staged_data(&self, staged: &Arc<Staged>) {
        {
            let mut journal = staged.journal.lock().await;
            *journal = None;
            let mut st = staged.state();
            st.discarded = true;
            st.dirty = false;
            st.keep_until = None;
        }
        self.writes.inner().queue.remove(&staged.key);
        if let Some(staging) = self.writes.staging.clone() {
            let key = staged.key.clone();
            let _ = blocking(move || staging.remove_journal(&key)).await;
        }
    }

    /// A local file goes away before it ever reached Box.
    pub(in crate::fs) async fn drop_local(&self, ino: Ino, staged: &Arc<Staged>) {
        let _ = lock(&self.table).remove(ino);
        self.discard(staged).await;
    }

    /// The staged data of `ino`, whose name goes (unlinked, or replaced by a rename), never
    /// goes to Box. A local file (never on Box) is gone from the table too; otherwise its
    /// Box item is the caller's to trash.
    ///
    /// What it was is read, and the data given up, under the upload lock: an upload queued
    /// at the file's release could otherwise start in between and create on Box the file
    /// just removed here (git takes a lock file, closes it and removes it at once).
    pub(in crate::fs) async fn drop_staged(&self, ino: Ino, staged: &Arc<Staged>) -> Dropped {
        let upload = staged.upload.lock().await;
        // The state's lock is never held together with the table's (ARCHITECTURE.md).
        let st = staged.snapshot();
        let local = {
            let mut table = lock(&self.table);
            let local = table.get(ino).is_some_and(|i| i.is_local());
            if local {
                let _ = table.remove(ino);
            }
            local
        };
        let dropped = match local {
            true => Dropped::Local,
            false => Dropped::OnBox {
                fresh_empty_upload: st.created_here
                    && st.keep_until.is_some()
                    && !st.dirty
                    && !st.discarded
                    && st.size == 0,
            },
        };
        self.forget_staged_data(staged).await;
        drop(upload);
        self.maybe_retire(staged).await;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use box_client::types::{Lock, UserMini};

    fn locked(by: &str, expires: Option<String>) -> Item {
        Item {
            kind: "file".into(),
            id: "1".into(),
            name: "f".into(),
            lock: Some(Lock {
                created_by: Some(UserMini {
                    id: by.into(),
                    name: "Other".into(),
                    login: "other@example.com".into(),
                }),
                expired_at: expires,
                ..Lock::default()
            }),
            ..Item::default()
        }
    }

    #[test]
    fn names_box_refuses_are_refused_at_create() {
        for bad in ["back\\slash", "tab\there", "trailing ", "nl\n"] {
            assert_eq!(
                check_new_name(bad).unwrap_err().errno(),
                libc::EINVAL,
                "{bad:?}"
            );
        }
        for good in ["plain.txt", " leading", "été", ".hidden"] {
            assert!(check_new_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn only_live_locks_of_others_refuse_writes() {
        assert!(locked_by_other(&locked("7", None), "7").is_none());
        let holder = locked_by_other(&locked("8", None), "7").expect("locked");
        assert!(holder.contains("other@example.com"));
        let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        assert!(locked_by_other(&locked("8", Some(past)), "7").is_none());
        let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        assert!(locked_by_other(&locked("8", Some(future)), "7").is_some());
        let unlocked = Item::default();
        assert!(locked_by_other(&unlocked, "7").is_none());
    }
}
