//! The filesystem layer: Box seen as a tree of inodes, one `async fn` per filesystem operation,
//! testable without the kernel. [`BoxFs`] is a composition: the metadata cache (the
//! [`tree::inode`] table, bounded in LRU order) and one component per concern, each owning
//! its state: [`sync::freshness::Freshness`], the listings, [`handles::Handles`],
//! [`read::readers::Readers`] (the read path and the content cache), [`quota::Quota`], the
//! xattr cache, the staged writes, the Box locks and the pins ([`pin`]). It talks to Box
//! through the [`backend::BoxApi`] seam (a [`box_client::Client`] in a mount, a
//! fault-injecting wrapper in tests). `crate::fuse` is the only caller that sees fuser types; the events task
//! ([`sync::events`]) is the other way in.
//!
//! # Design note
//!
//! **Lock order.** `table` (the inode table) is a `std::sync::Mutex` held only for table
//! operations, never across an `.await`; `handles` likewise. A directory's `listing_lock` (a
//! tokio mutex) is held across the listing's requests so that concurrent lookups in a folder
//! not listed yet cost one listing, not one each; it is always taken before `table`. An open
//! directory's fill ([`tree::dir_handle`]) is taken after `table`.
//!
//! **Freshness.** Cached attributes and listings are trusted for `ttl_healthy` while the
//! event stream runs (events keep them true) and for `ttl_unhealthy` while it does not. The
//! kernel gets TTLs chosen the same way. A listing answers lookup and getattr for every child:
//! a folder listed once costs no per-entry request.
//!
//! **Writes** go to staged copies on local disk and reach Box on close, fsync or from the
//! upload queue: see `write.rs` (staging, the write operations, renames of staged files) and
//! `uploader.rs` (uploads, conflicts, the queue, recovery after a crash). Their std mutexes
//! (`Writes::inner`, then a staged file's state, in that order) are never held together
//! with `table`.
//!
//! **Kernel invalidations** computed here (a listing fetched again that differs from the cached
//! one) go through a [`kernel::KernelQueue`], never straight to the kernel: see `kernel.rs`.

pub mod backend;
pub mod errno;
pub mod handles;
pub mod history;
pub mod kernel;
pub mod offline;
pub mod pin;
pub mod quota;
pub mod read;
pub mod store;
pub mod sync;
pub mod tree;
pub mod write;
pub mod xattr;

pub use handles::{OpenContent, OpenFile};
pub use quota::{FsStats, Usage};
pub use write::uploader::UploadStatus;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use backend::BoxApi;
use box_client::error::BoxError;
use box_client::types::Item;
use errno::FsError;
use handles::Handles;
use kernel::KernelQueue;
use quota::Quota;
use read::budget::{ReadBudgetConfig, ReadBudgetStatus};
use read::content_cache::ContentCache;
use read::reader::ReadConfig;
use read::readers::Readers;
use sync::events::{OwnChanges, StreamHealth};
use sync::freshness::Freshness;
use tree::attr::{FsAttr, Identity};
use tree::dir_handle::{DirHandle, DirView};
use tree::inode::{Ino, InodeError, InodeTable, Kind, ROOT_INO};
use tree::listing::Listings;

/// Fields every item fetched for `stat` carries (listings and single items alike).
pub const STAT_FIELDS: &[&str] = &[
    "type",
    "id",
    "name",
    "size",
    "etag",
    "sequence_id",
    "created_at",
    "modified_at",
    "content_modified_at",
    "file_version",
    "sha1",
    // Web links: their file is made from it.
    "url",
];

/// [`STAT_FIELDS`] and the item's POSIX attributes (`--posix-attributes`).
pub const STAT_FIELDS_POSIX: &[&str] = &[
    "type",
    "id",
    "name",
    "size",
    "etag",
    "sequence_id",
    "created_at",
    "modified_at",
    "content_modified_at",
    "file_version",
    "sha1",
    "url",
    tree::posix::POSIX_FIELD,
];

/// How many times a lookup lists a folder whose listing lost names to eviction before it
/// answers ENOENT.
const LOOKUP_ATTEMPTS: u32 = 3;

/// Entries beyond which a fresh listing is handed out by a task rather than while the
/// kernel's request thread waits (sorting 100,000 names takes tens of milliseconds, and
/// every other request would wait behind them).
const OPEN_AT_ONCE_MAX_ENTRIES: usize = 4_096;

/// How the filesystem behaves; `FsOptions::default()` is what `boxfs mount` uses.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// The Box folder shown as the mount's root ("0" is All Files).
    pub root_folder_id: String,
    pub identity: Identity,
    /// How long cached metadata is trusted while the event stream is healthy.
    pub ttl_healthy: Duration,
    /// ... and while it is not (lost, reconnecting, or not started).
    pub ttl_unhealthy: Duration,
    /// TTLs handed to the kernel for entries and attributes, healthy and not.
    pub kernel_ttl_healthy: Duration,
    pub kernel_ttl_unhealthy: Duration,
    /// Folder listings fetched ahead of a directory walk, at most this many at once.
    pub prefetch_parallel: usize,
    /// Subfolders of one listed folder that are listed ahead (0 turns prefetching off).
    pub prefetch_per_folder: usize,
    /// Bound of the metadata cache, in inodes (those the kernel holds are kept beyond it).
    pub max_inodes: usize,
    /// How open files read: parts, read-ahead window, parallel requests.
    pub read: ReadConfig,
    /// What all open files together may hold in memory and have in flight while reading.
    pub read_budget: ReadBudgetConfig,
    /// Where written data waits for its upload (`None`: writes are refused).
    pub staging_dir: Option<PathBuf>,
    /// `Some(delay)`: close returns at once and the upload is queued `delay` after the first
    /// close; `None`: close returns once Box has the data.
    pub write_back: Option<Duration>,
    /// Exclusive `flock`/`fcntl` locks take Box locks (see [`write::locks`]); without it the kernel
    /// keeps locks to itself.
    pub box_locks: bool,
    /// Pinned ("available offline") content: downloads at once, disk kept free (see [`pin`]).
    pub offline: pin::PinOptions,
    /// Modes and symbolic links kept in Box metadata (see [`tree::posix`]).
    pub posix_attributes: bool,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            root_folder_id: tree::inode::DEFAULT_ROOT_FOLDER_ID.to_string(),
            identity: Identity::default(),
            ttl_healthy: Duration::from_secs(3600),
            ttl_unhealthy: Duration::from_secs(2),
            kernel_ttl_healthy: Duration::from_secs(60),
            kernel_ttl_unhealthy: Duration::from_secs(1),
            prefetch_parallel: 16,
            prefetch_per_folder: 1000,
            // About 490 bytes each: some 120 MB at the bound.
            max_inodes: 250_000,
            read: ReadConfig::default(),
            read_budget: ReadBudgetConfig::default(),
            staging_dir: None,
            write_back: None,
            box_locks: false,
            offline: pin::PinOptions::default(),
            posix_attributes: false,
        }
    }
}

/// One directory entry of an open directory's snapshot.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Box<str>,
    pub attr: FsAttr,
}

/// What `open` and `opendir` answer besides the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// The kernel may keep the pages (or listing) it cached at an earlier open.
    pub keep_cache: bool,
}

/// Counters for `boxfs status` and tests.
#[derive(Debug, Default)]
pub struct FsCounters {
    pub listings: AtomicU64,
    pub listing_pages: AtomicU64,
    pub item_fetches: AtomicU64,
    pub prefetches: AtomicU64,
    /// Folder listings read back from the metadata store instead of Box.
    pub stored_listings: AtomicU64,
}

/// The filesystem. Cheap operations answer from the caches; the rest await Box.
pub struct BoxFs {
    /// Box, through the seam that lets tests put failures in its way.
    client: Arc<dyn BoxApi>,
    opts: FsOptions,
    /// The metadata cache. See the lock order in the module note.
    table: Arc<Mutex<InodeTable>>,
    /// Invalidations on their way to the kernel (and to our own caches of what it shows).
    kernel: KernelQueue,
    /// Which TTLs apply now, by the event stream's health.
    freshness: Freshness,
    /// Our own changes in flight, so the events task waits for their answers before it
    /// applies Box's echo of them.
    own: Arc<OwnChanges>,
    /// Folder listings in progress and ahead of a walk.
    listings: Listings,
    handles: Handles,
    /// The readers of open files, their content cache and read budget.
    readers: Readers,
    quota: Quota,
    /// Values of the `user.box.` extended attributes, kept briefly (see [`xattr`]).
    xattrs: Arc<xattr::XattrCache>,
    /// Staged writes and their uploads (see `write.rs`).
    writes: write::writes::Writes,
    /// The Box locks this mount took (`Some` with `--box-locks` only).
    locks: Option<write::locks::BoxLocks>,
    /// The metadata kept on disk across mounts (see [`store`]), if the mount keeps it.
    store: Option<Arc<store::MetaStore>>,
    /// What is kept offline, and the worker's progress (see [`pin`]).
    pins: Arc<pin::Pins>,
    /// `.trash` and `.versions`: Box's past as folders (see [`history`]).
    history: history::History,
    pub counters: FsCounters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not take the whole mount down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl From<InodeError> for FsError {
    fn from(e: InodeError) -> FsError {
        let errno = match e {
            InodeError::NoSuchInode(_) | InodeError::RemovedSince(_) => libc::ENOENT,
            InodeError::NotADirectory(_) => libc::ENOTDIR,
            InodeError::Root => libc::EBUSY,
            InodeError::NameTaken(_) => libc::EEXIST,
            InodeError::MoveUnderItself | InodeError::EmptyName | InodeError::UnusableName(_) => {
                libc::EINVAL
            }
        };
        FsError::new(errno, e.to_string())
    }
}

/// A name from the kernel as Box would spell it. Box names are UTF-8, so a name that is not
/// cannot exist there (ENOENT when looked up, EINVAL when created).
fn box_name(name: &OsStr) -> Result<&str, FsError> {
    let name = std::str::from_utf8(name.as_bytes())
        .map_err(|_| FsError::new(libc::EINVAL, format!("{name:?} is not valid UTF-8")))?;
    // Box counts characters, not bytes: 255 characters are fine however many bytes they take.
    if name.chars().count() > tree::inode::NAME_MAX_CHARS {
        return Err(FsError::new(
            libc::ENAMETOOLONG,
            "Box allows names of at most 255 characters",
        ));
    }
    Ok(name)
}

/// The name a lookup asks for, as Box would hold it: one Box cannot hold is not there.
fn lookup_name(name: &OsStr) -> Result<&str, FsError> {
    box_name(name).map_err(|e| match e.errno() {
        libc::EINVAL => FsError::not_found("not a name Box can hold"),
        _ => e,
    })
}

/// The child of `parent` called exactly `name`. Box compares names case-insensitively,
/// Linux programs case-sensitively: a lookup matches the exact spelling only. Otherwise the
/// kernel would take `mv a A` for a rename of a file onto itself and do nothing, and `ls`
/// would show a name other than the one `stat` succeeded on. Creating `a` beside `A` still
/// fails (EEXIST from Box).
fn child_named(table: &InodeTable, parent: Ino, name: &str) -> Option<Ino> {
    table
        .lookup_child(parent, name)
        .filter(|&ino| table.get(ino).is_some_and(|i| i.name() == name))
}

impl BoxFs {
    pub fn new(
        client: Arc<dyn BoxApi>,
        opts: FsOptions,
        cache: Option<Arc<ContentCache>>,
        kernel: KernelQueue,
    ) -> BoxFs {
        let table = InodeTable::with_limit(&opts.root_folder_id, opts.max_inodes);
        let staging = opts.staging_dir.as_deref().and_then(|dir| {
            write::staging::StagingDir::open(dir)
                .map_err(|e| {
                    log::error!("staging directory {}: {e}; writes are off", dir.display())
                })
                .ok()
        });
        let locks = opts
            .box_locks
            .then(|| write::locks::BoxLocks::new(client.clone()));
        // Our own caches go stale on the same path as the kernel's.
        let xattrs = Arc::new(xattr::XattrCache::default());
        kernel.also_invalidate(xattrs.clone());
        let pins = pin::Pins::new(opts.offline.clone());
        pin::attach(&pins, &kernel, cache.as_ref());
        let history = history::History::default();
        kernel.also_invalidate(history.trash_cache());
        BoxFs {
            table: Arc::new(Mutex::new(table)),
            freshness: Freshness::new(
                (opts.ttl_healthy, opts.ttl_unhealthy),
                (opts.kernel_ttl_healthy, opts.kernel_ttl_unhealthy),
            ),
            own: OwnChanges::new(),
            listings: Listings::new(opts.prefetch_parallel, opts.prefetch_per_folder, &kernel),
            handles: Handles::default(),
            readers: Readers::new(client.clone(), cache, opts.read.clone(), opts.read_budget),
            quota: Quota::default(),
            xattrs,
            writes: write::writes::Writes::new(staging, opts.write_back),
            locks,
            store: None,
            pins,
            history,
            counters: FsCounters::default(),
            kernel,
            client,
            opts,
        }
    }

    /// Box as this filesystem talks to it (the daemon asks it for the event stream and the
    /// request figures).
    pub fn client(&self) -> &Arc<dyn BoxApi> {
        &self.client
    }

    pub fn options(&self) -> &FsOptions {
        &self.opts
    }

    /// The metadata cache, shared with the events task.
    pub fn table(&self) -> &Arc<Mutex<InodeTable>> {
        &self.table
    }

    pub fn content_cache(&self) -> Option<&Arc<ContentCache>> {
        self.readers.content_cache()
    }

    pub fn kernel_queue(&self) -> &KernelQueue {
        &self.kernel
    }

    /// The event stream's state, shared with the events task.
    pub fn health(&self) -> &Arc<StreamHealth> {
        self.freshness.health()
    }

    /// Our own changes in flight, shared with the events task.
    pub fn own_changes(&self) -> &Arc<OwnChanges> {
        &self.own
    }

    /// Drops the metadata cache (SIGHUP to the daemon): every attribute and listing becomes
    /// stale, so the next access asks Box; the attribute values go too, and the kernel is
    /// told to drop the entries and attributes it holds, as after an event-stream outage.
    /// Staged files keep their data and their local attributes. Returns how many kernel
    /// invalidations were sent.
    pub fn drop_metadata_cache(&self) -> usize {
        let invs = sync::events::revalidate_all(
            &mut lock(&self.table),
            sync::events::RevalidateScope::MemoryAndStore,
        );
        self.xattrs.clear();
        self.health().record_revalidation();
        let n = invs.len();
        self.kernel.send_all(invs);
        n
    }

    /// How long the kernel may keep the names and attributes `readdirplus` hands it from
    /// `view`: not at all if a name in the directory was invalidated since it was opened
    /// (the entries may predate the change), else the usual [`kernel_ttl`](Self::kernel_ttl).
    pub fn readdirplus_ttl(&self, view: &DirView) -> Duration {
        if self
            .kernel
            .names_changed_since(view.ino, view.names_generation)
        {
            Duration::ZERO
        } else {
            self.kernel_ttl()
        }
    }

    /// The TTL to hand the kernel for entries and attributes right now.
    pub fn kernel_ttl(&self) -> Duration {
        self.freshness.kernel_ttl()
    }

    fn check_writable(&self) -> Result<(), FsError> {
        if self.opts.identity.read_only {
            Err(FsError::new(libc::EROFS, "mounted read-only"))
        } else {
            Ok(())
        }
    }

    /// Fetches the root folder: checks that the credentials work and the root exists. The
    /// mount calls it before it serves anything.
    pub async fn init(&self) -> Result<FsAttr, FsError> {
        self.refresh_attrs(ROOT_INO).await
    }

    // ---- attributes -------------------------------------------------------------------

    /// The attributes of `ino` as the table holds them, without asking Box.
    fn cached_attr(&self, table: &InodeTable, ino: Ino) -> Result<FsAttr, FsError> {
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        let subdirs = if inode.is_dir() {
            table
                .children(ino)
                .iter()
                .filter(|c| table.get(**c).is_some_and(|i| i.is_dir()))
                .count()
        } else {
            0
        };
        Ok(FsAttr::of(ino, inode, subdirs, &self.opts.identity))
    }

    /// `getattr`: from the cache while fresh, else from Box.
    pub async fn getattr(&self, ino: Ino) -> Result<FsAttr, FsError> {
        match self.getattr_at_once(ino) {
            Some(attr) => attr,
            None => self.refresh_attrs(ino).await,
        }
    }

    /// [`Self::getattr`] when it needs no call to Box: the cached attributes while fresh
    /// (or the history's, or an error); `None` when they must be fetched. The FUSE adapter
    /// answers these without a task: a second walk of a tree asks every folder's
    /// attributes again (the kernel forgets a folder's atime when it reads the folder).
    pub fn getattr_at_once(&self, ino: Ino) -> Option<Result<FsAttr, FsError>> {
        if let Some(attr) = self.history_getattr(ino) {
            return Some(attr);
        }
        let mut table = lock(&self.table);
        table.touch(ino);
        let Some(inode) = table.get(ino) else {
            return Some(Err(FsError::not_found(format!("no inode {ino}"))));
        };
        // A detached inode (deleted or moved out of view while open) keeps its last
        // attributes: there is nothing on Box to ask about it any more.
        let detached = ino != ROOT_INO && inode.parent().is_none();
        if detached || table.attrs_fresh(ino, self.freshness.ttl(), Instant::now()) {
            return Some(self.cached_attr(&table, ino));
        }
        None
    }

    /// Fetches `ino`'s item from Box and stores it; a 404 removes the inode from the tree.
    async fn refresh_attrs(&self, ino: Ino) -> Result<FsAttr, FsError> {
        let (box_id, kind, parent) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            // A file created here and not uploaded yet: Box knows nothing of it.
            if inode.is_local() {
                return self.cached_attr(&table, ino);
            }
            (inode.box_id().to_string(), inode.kind(), inode.parent())
        };
        self.counters.item_fetches.fetch_add(1, Ordering::Relaxed);
        let fields = self.stat_fields(kind, &box_id);
        let fetched = match kind {
            Kind::Dir => self.client.folder_with_fields(&box_id, fields).await,
            Kind::File => self.client.file_with_fields(&box_id, fields).await,
            Kind::Link => self.client.web_link_with_fields(&box_id, fields).await,
        };
        let item = match fetched {
            Ok(item) => item,
            Err(e) if e.is_not_found() && ino != ROOT_INO => {
                self.forget_removed(ino);
                return Err(FsError::from(e));
            }
            // Offline (see `offline`): what the table holds, however old.
            Err(BoxError::Unreachable(_)) => {
                self.restore_stored_attrs(ino).await;
                let table = lock(&self.table);
                return self.cached_attr(&table, ino);
            }
            Err(e) => return Err(FsError::from(e)),
        };
        let mut table = lock(&self.table);
        match parent {
            Some(p) => {
                table.insert_or_update_from_item(p, &item)?;
            }
            None if ino == ROOT_INO => {
                table.insert_or_update_from_item(ROOT_INO, &item)?;
            }
            // Detached while we asked: keep what we had.
            None => {}
        }
        self.cached_attr(&table, ino)
    }

    /// The fields an item of `kind` is fetched with for `stat`: its POSIX attributes too
    /// when they are kept (never for web links, which have no metadata, nor All Files,
    /// whose metadata Box refuses).
    pub(crate) fn stat_fields(&self, kind: Kind, box_id: &str) -> &'static [&'static str] {
        let posix = self.opts.posix_attributes
            && kind != Kind::Link
            && box_id != box_client::folders::ROOT_FOLDER;
        if posix {
            STAT_FIELDS_POSIX
        } else {
            STAT_FIELDS
        }
    }

    /// The fields of a folder listing's entries (see [`BoxFs::stat_fields`]).
    pub(crate) fn listing_fields(&self) -> &'static [&'static str] {
        if self.opts.posix_attributes {
            STAT_FIELDS_POSIX
        } else {
            STAT_FIELDS
        }
    }

    /// Box says `ino` is gone: drop it from the tree and tell the kernel.
    fn forget_removed(&self, ino: Ino) {
        let detached = lock(&self.table).remove(ino).ok().flatten();
        if let Some(d) = detached {
            self.kernel.send(kernel::Invalidation::Delete {
                parent: d.parent,
                child: d.ino,
                name: d.name,
            });
        }
    }

    /// Records `item` (Box's answer to one of our own changes) under `parent` and returns its
    /// inode and attributes. Because the table then holds the item's new `sequence_id`, the
    /// event Box sends about our change later changes nothing.
    /// With `kernel_ref`, the kernel's reference is taken under the same lock hold (the new
    /// inode could be evicted right after otherwise).
    fn store_item(
        &self,
        parent: Ino,
        item: &Item,
        kernel_ref: bool,
    ) -> Result<(Ino, FsAttr), FsError> {
        let mut table = lock(&self.table);
        let ino = table.insert_or_update_from_item(parent, item)?;
        if kernel_ref {
            table.add_lookup(ino);
        }
        let attr = self.cached_attr(&table, ino)?;
        Ok((ino, attr))
    }

    // ---- names ----------------------------------------------------------------------

    /// The child `name` of directory `parent`, listing the folder first if its cached
    /// listing is missing or stale.
    async fn resolve(self: &Arc<Self>, parent: Ino, name: &OsStr) -> Result<Ino, FsError> {
        self.resolve_with(parent, name, |_, _| ())
            .await
            .map(|(ino, ())| ino)
    }

    /// [`BoxFs::resolve`], then `then(table, ino)` under the same hold of the table lock (an
    /// inode found is only safe from eviction until the lock is released).
    async fn resolve_with<T>(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
        then: impl FnOnce(&mut InodeTable, Ino) -> T,
    ) -> Result<(Ino, T), FsError> {
        let name = lookup_name(name)?;
        // A miss is only an answer if the listing is still complete: under a full metadata
        // cache another call may have evicted the name between the listing and this lookup,
        // and then the folder is listed again (a few times at most).
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.ensure_listing(parent, false).await?;
            let mut table = lock(&self.table);
            if let Some(ino) = child_named(&table, parent, name) {
                let out = then(&mut table, ino);
                return Ok((ino, out));
            }
            let complete = table.get(parent).is_some_and(|i| i.listing_complete());
            if complete || attempts >= LOOKUP_ATTEMPTS {
                return Err(FsError::not_found(format!("no '{name}' in inode {parent}")));
            }
        }
    }

    /// `lookup`: the child's attributes, and one more kernel reference to it.
    pub async fn lookup(self: &Arc<Self>, parent: Ino, name: &OsStr) -> Result<FsAttr, FsError> {
        if let Some(attr) = self.history_lookup_at_once(parent, name) {
            return attr;
        }
        if let Some(attr) = self.history_lookup_listed(parent, name).await {
            return attr;
        }
        let (_, attr) = self
            .resolve_with(parent, name, |table, ino| {
                table.add_lookup(ino);
                self.cached_attr(table, ino)
            })
            .await?;
        attr
    }

    /// [`Self::lookup`] when it needs no call to Box: in a folder whose listing is fresh
    /// (a name it lacks is ENOENT at once), and the history's names that need no listing;
    /// `None` when the folder must be listed first, or the name is in `.trash` or a
    /// `.versions` folder. The FUSE adapter answers these without a task.
    pub fn lookup_at_once(&self, parent: Ino, name: &OsStr) -> Option<Result<FsAttr, FsError>> {
        if let Some(attr) = self.history_lookup_at_once(parent, name) {
            return Some(attr);
        }
        if Self::history_lists_when_opened(parent) {
            return None;
        }
        let mut table = lock(&self.table);
        match self.listing_is_fresh_in(&table, parent) {
            Err(e) => return Some(Err(e)),
            Ok(false) => return None,
            Ok(true) => {}
        }
        let name = match lookup_name(name) {
            Ok(name) => name,
            Err(e) => return Some(Err(e)),
        };
        // A fresh listing is complete: a name it lacks is not there.
        let Some(ino) = child_named(&table, parent, name) else {
            return Some(Err(FsError::not_found(format!(
                "no '{name}' in inode {parent}"
            ))));
        };
        table.add_lookup(ino);
        Some(self.cached_attr(&table, ino))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: Ino, n: u64) {
        let mut table = lock(&self.table);
        if table.get(ino).is_some() {
            table.forget(ino, n);
        } else {
            drop(table);
            self.history_forget(ino, n);
        }
    }

    // ---- directories ------------------------------------------------------------------

    /// `opendir`: a handle on the listing. A fresh listing is handed out whole; a stale one
    /// is fetched in the background and handed out page by page as it arrives (see
    /// [`tree::dir_handle`]). Starts listing subfolders ahead of a walk.
    pub async fn opendir(self: &Arc<Self>, ino: Ino) -> Result<Opened, FsError> {
        match self.history_opendir_listed(ino).await {
            Some(opened) => opened,
            None => self.open_without_waiting(ino),
        }
    }

    /// [`Self::opendir`] answered at once, without a task: every folder but `.trash` and
    /// the `.versions` folders (`None`), and but one whose fresh listing is too big to
    /// hand out while the kernel waits (`None` too, for [`Self::opendir`] in a task). A
    /// directory walk opens every folder it meets, and a task's two thread switches were
    /// most of the time of each open. Runs inside the tokio runtime's context (it starts
    /// tasks: the stale listing's fetch, the read-ahead).
    pub fn opendir_at_once(self: &Arc<Self>, ino: Ino) -> Option<Result<Opened, FsError>> {
        if Self::history_lists_when_opened(ino) {
            return None;
        }
        {
            let table = lock(&self.table);
            if table.child_count(ino) > OPEN_AT_ONCE_MAX_ENTRIES {
                return None;
            }
        }
        Some(self.open_without_waiting(ino))
    }

    /// The part of `opendir` that never waits: a trashed folder's handle, or a handle on a
    /// folder's listing, finished at once if the listing is fresh and else filled by a task.
    fn open_without_waiting(self: &Arc<Self>, ino: Ino) -> Result<Opened, FsError> {
        if let Some(opened) = self.history_opendir_trashed(ino) {
            return opened;
        }
        let fresh = self.listing_is_fresh(ino)?;
        // Taken before the entries are read: a name invalidated after this is not trusted.
        let names_generation = self.kernel.names_generation(ino);
        let handle = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            let parent = inode.parent().unwrap_or(ROOT_INO);
            Arc::new(DirHandle::filling(
                ino,
                parent,
                self.cached_attr(&table, ino)?,
                names_generation,
            ))
        };
        let (own, hidden) = self.history_listing(ino);
        handle.add_own(own, hidden);
        // Finished at once if the listing is still complete now, under the table's lock.
        let finished = fresh && self.finish_dir(&handle);
        if !finished {
            let fs = Arc::clone(self);
            let filling = Arc::clone(&handle);
            tokio::spawn(async move { fs.fill_dir(filling).await });
        }
        // The kernel may reuse the listing it cached at an earlier open only if nothing
        // changed since, which a listing still to be fetched cannot promise. The kernel
        // continues a cached listing with this handle's entries at the offsets where the
        // cache ends, so the two must be the same listing: asked only after the entries
        // were read, so that a change made before them resets the kernel's copy too (one
        // made after them is left for the next open).
        let changed = self.listings.take_changed(ino);
        let fh = self.handles.add_dir(handle);
        Ok(Opened {
            fh,
            keep_cache: finished && !changed,
        })
    }

    fn dir_entry(&self, table: &InodeTable, ino: Ino) -> Option<DirEntry> {
        Some(DirEntry {
            name: table.get(ino)?.name().into(),
            attr: self.cached_attr(table, ino).ok()?,
        })
    }

    /// An open directory.
    pub fn dir_handle(&self, fh: u64) -> Result<Arc<DirHandle>, FsError> {
        self.handles.dir(fh)
    }

    /// What an open directory holds so far.
    pub fn dir_view(&self, fh: u64) -> Result<DirView, FsError> {
        Ok(self.dir_handle(fh)?.view())
    }

    /// One more kernel reference to each entry a readdirplus reply handed over.
    pub fn add_lookups(&self, inos: &[Ino]) {
        let mut table = lock(&self.table);
        let mut elsewhere = Vec::new();
        for &ino in inos {
            if !table.add_lookup(ino) {
                elsewhere.push(ino);
            }
        }
        drop(table);
        // Entries of the history's folders (`.trash`, `.versions`).
        for ino in elsewhere {
            self.history_add_lookup(ino);
        }
    }

    pub fn releasedir(&self, fh: u64) {
        if let Some(handle) = self.handles.remove_dir(fh) {
            handle.release(&mut lock(&self.table));
        }
    }

    // ---- files ------------------------------------------------------------------------

    /// `open` of a regular file for reading.
    pub async fn open(&self, ino: Ino, write: bool) -> Result<Opened, FsError> {
        if let Some(opened) = self.history_open(ino, write) {
            return opened;
        }
        if write {
            return self.open_for_write(ino, libc::O_RDWR).await;
        }
        let fresh = lock(&self.table).attrs_fresh(ino, self.freshness.ttl(), Instant::now());
        if !fresh {
            self.getattr(ino).await?;
        }
        let (file_id, size, version, sha1) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            if inode.is_dir() {
                return Err(FsError::new(libc::EISDIR, "is a directory"));
            }
            if inode.kind() == Kind::Link {
                return self.open_shortcut(ino, inode.attrs().target());
            }
            let a = inode.attrs();
            (
                inode.box_id().to_string(),
                a.size,
                a.version.clone().or_else(|| a.sha1.clone()),
                a.sha1.clone(),
            )
        };
        // The kernel's pages of this file are still right if the version did not change
        // since it last opened it.
        let keep_cache = self.readers.kernel_opens(ino, version.clone());
        let reader = self
            .readers
            .reader_of(file_id, version.as_deref(), sha1.as_deref(), size);
        let fh = self.handles.add_file(OpenFile {
            ino,
            content: OpenContent::Box(reader),
        });
        self.note_reader(fh, ino);
        Ok(Opened { fh, keep_cache })
    }

    /// A web link opened: its shortcut, made from the URL the table holds. The kernel may
    /// not keep what it read before: the URL can have changed since.
    fn open_shortcut(&self, ino: Ino, url: Option<&str>) -> Result<Opened, FsError> {
        let url =
            url.ok_or_else(|| FsError::new(libc::EIO, "Box gave no URL for this web link"))?;
        let content = Bytes::from(tree::shortcut::shortcut(url));
        let fh = self.handles.add_file(OpenFile {
            ino,
            content: OpenContent::Made(content),
        });
        Ok(Opened {
            fh,
            keep_cache: false,
        })
    }

    /// The read budget shared by all open files, as `boxfs status` shows it.
    pub fn read_budget(&self) -> ReadBudgetStatus {
        self.readers.budget_status()
    }

    /// `read`: the bytes at `offset`, fewer only at the end of the file.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        let file = self.handles.file(fh)?;
        // Staged data (written here, not on Box yet, or being written) is read locally.
        if let Some(staged) = self.read_staged(file.ino, offset, size).await {
            return staged;
        }
        match &file.content {
            OpenContent::Box(reader) => reader.read(offset, size).await,
            OpenContent::Made(bytes) => {
                let start = offset.min(bytes.len() as u64) as usize;
                let end = (start + size as usize).min(bytes.len());
                Ok(bytes.slice(start..end))
            }
        }
    }

    pub fn release(&self, fh: u64) {
        self.handles.remove_file(fh);
    }

    // ---- the whole filesystem ---------------------------------------------------------

    /// Keeps the account's quota read at sign-in, so that `statfs` asks Box nothing for
    /// the next 30 s.
    pub fn remember_quota(&self, usage: Usage) {
        self.quota.remember(usage);
    }

    /// `statfs`: the account's quota (asked at most every 30 s).
    pub async fn statfs(&self) -> Result<FsStats, FsError> {
        let files = lock(&self.table).len() as u64;
        self.quota.statfs(self.client.as_ref(), files).await
    }
}
