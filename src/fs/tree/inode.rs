//! The inode table: Box item ids <-> inode numbers, the tree of names, cached attributes
//! and the kernel's lookup counts. A pure data structure: no I/O, no fuser types, no lock
//! of its own (callers wrap it in a `Mutex` and hold it only for table operations).
//!
//! # Design note
//!
//! **What an inode is.** One inode per Box item id (file or folder), allocated the first
//! time the id is seen and kept while it is in the tree or the kernel still references it.
//! Box ids are stable, so a rename or a move is a parent/name change of the *same* inode:
//! open files, cwds and the kernel's dentries stay valid. The mount root is [`ROOT_INO`]
//! and maps to a configurable Box folder id (`"0"`, "All Files", by default); it has no
//! parent and is never dropped. Box web links map to regular files when inserted directly;
//! [`InodeTable::replace_listing`] skips them.
//!
//! **Names.** Box compares names case-insensitively (`Report.txt` and `report.TXT` cannot
//! share a folder), so a directory's children index is keyed by the lower-cased name while
//! each inode keeps its display name. Lookups therefore ignore case.
//!
//! **Lookup counts, the kernel's way.** Every reply that hands the kernel an entry (lookup,
//! create, mkdir, and each readdirplus entry) is paired with one [`InodeTable::add_lookup`];
//! `forget(ino, n)` subtracts `n`. A count mismatch never panics: `forget` saturates at zero
//! and logs at debug. An inode is dropped when its count is zero *and* it is detached (no
//! longer in the tree); an attached inode with count zero stays as cached metadata. When a
//! directory is dropped, its children are detached and dropped in turn if unreferenced.
//!
//! **Detaching.** An item trashed or deleted elsewhere ([`InodeTable::remove`]), missing from
//! a fresh listing, or replaced by a rename loses its parent link and its children-index
//! entry. If the kernel still references it, it lives on (detached, still findable by Box
//! id so a restore from the trash gets the same inode back) until the last `forget`.
//!
//! **Renames and replacements.** [`InodeTable::rename`] (our own change) and an update from
//! Box that carries a new parent or name ([`InodeTable::insert_or_update_from_item`]) both
//! unlink the inode from the old parent's index and link it under the new key. If another
//! inode already holds the target name, that inode is detached: it was replaced, as
//! `rename(2)` over an existing file replaces it. Moving a directory under itself is refused.
//! Within one listing (begun, stored page by page, finished) drops are deferred to its end,
//! so names swapped between two items (a displaced early, back under the other name later)
//! keep their inodes.
//!
//! **Listings in pages.** A large listing is stored a page at a time as it arrives, with the
//! table unlocked between pages, so an open directory can hand out the first entries early.
//! Meanwhile events and lookups keep changing the table; the end of the listing therefore
//! removes only children the table has not heard of since the listing began, a page does not
//! bring back an item removed since the listing began (the table remembers recent removals),
//! and the listing counts as complete only if every item it showed is still in place.
//!
//! **Out-of-order updates.** Box events and listings can arrive late. Each item carries a
//! `sequence_id` that grows with every change; an update whose `sequence_id` is *lower* than
//! the one held is stale and ignored entirely (no attribute, name or parent change). An
//! update without a `sequence_id` (Box leaves it out for some mini items) is applied. The
//! table also remembers its recent removals with the `sequence_id` the item had: word of a
//! removed item that is no newer (the event of its upload, arriving after the mount deleted
//! it) is refused with [`InodeError::RemovedSince`], whether its inode is gone or still open.
//!
//! **TTLs.** The table records *when* attributes and listings were fetched; callers decide
//! freshness with [`InodeTable::attrs_fresh`] / [`InodeTable::listing_fresh`] and their own
//! TTLs (long while the event stream runs, short while it is down).
//!
//! **A bounded cache.** Attached inodes the kernel does not reference (`lookups == 0`) are
//! cached metadata, and the table keeps at most [`InodeTable::limit`] inodes
//! ([`DEFAULT_MAX_INODES`] unless set) by evicting them in least-recently-used order. An
//! inode is *touched* when Box tells us about it (insert, update, each entry of a listing in
//! listing order, the listed directory last), when the caller reports a lookup or getattr
//! hit ([`InodeTable::touch`]), and when the kernel forgets it down to zero. Referenced
//! inodes and the root are never evicted, so the table exceeds the limit while the kernel
//! holds more than that (their ancestors stay too). Evicting detaches and drops the inode
//! and marks its parent's listing incomplete, so the next lookup or readdir there asks Box
//! instead of answering `ENOENT` from a partial index; such parents are collected for
//! [`InodeTable::take_evicted_parents`]. The kernel needs no word about the evicted inode
//! itself: it holds no reference to it. The inode a call inserts or renames, and a listing
//! with all its children, are kept even over the limit, but only until the next call that
//! evicts: take the kernel's reference ([`InodeTable::add_lookup`]) under the same lock as
//! the insert.
//!
//! Eviction goes leaves first: a directory that reaches the old end of the LRU while it
//! still holds cached children waits ("overdue") while its children leave in their own LRU
//! order, and follows right after the last one. So a directory's cached subtree goes with
//! it, nothing touched more recently than the directory is dropped on its account, and a
//! referenced inode never loses its ancestors. A full listing larger than the limit is still
//! stored whole; the next call that evicts takes its first entries (after everything older),
//! the directory itself stays, and its listing is marked incomplete: names no longer cached
//! are not found by [`InodeTable::lookup_child`], and with the listing incomplete the caller
//! must ask Box for them, so such a directory is listed from Box every time.
//!
//! **Local files and pinned attributes.** A file created through the mount exists only in
//! the staging area until its upload is confirmed: it gets a *local* id
//! ([`InodeTable::insert_local_file`], ids starting with [`LOCAL_ID_PREFIX`], which Box never
//! uses) and is re-keyed to its Box id afterwards ([`InodeTable::rekey`]). Box knows nothing
//! of a local file, so neither a listing nor an item with the same name detaches it: a
//! listing leaves it in place, and a Box item arriving under its name stays out of the tree
//! until the local file is uploaded (the upload then settles the clash). A file with staged
//! writes is *pinned* ([`InodeTable::set_pinned`]): its size and mtime are the staged data's,
//! which no answer from Box overwrites, and it is never evicted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use box_client::types::Item;

/// An inode number as the kernel sees it.
pub type Ino = u64;

/// The mount root's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT_INO: Ino = 1;

/// How the ids of local files (created here, not uploaded yet) begin. Box ids are digits.
pub const LOCAL_ID_PREFIX: &str = "local:";

/// True for the id of a file that exists only on this machine so far.
pub fn is_local_id(box_id: &str) -> bool {
    box_id.starts_with(LOCAL_ID_PREFIX)
}

/// Box's id of the "All Files" folder, the default mount root.
pub const DEFAULT_ROOT_FOLDER_ID: &str = "0";

/// How many inodes [`InodeTable::new`] keeps cached: about 0.25 GB of metadata at most
/// (~490 bytes an inode, see `approx_heap_bytes`).
pub const DEFAULT_MAX_INODES: usize = 500_000;

/// What a Box item is, as far as the filesystem cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

impl Kind {
    /// Folders are directories; files (and web links) are regular files.
    pub fn of(item: &Item) -> Kind {
        if item.is_folder() {
            Kind::Dir
        } else {
            Kind::File
        }
    }
}

/// Attributes cached from Box, what `stat` and cache validation need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attrs {
    /// Bytes (for folders Box reports the size of the whole subtree).
    pub size: u64,
    /// From `content_modified_at` (falls back to `modified_at`).
    pub mtime: Option<SystemTime>,
    /// From `modified_at` (any change, metadata included).
    pub ctime: Option<SystemTime>,
    /// Box keeps no access time; starts as `mtime`, callers may move it.
    pub atime: Option<SystemTime>,
    pub etag: Option<Box<str>>,
    /// Box's `sequence_id`; grows with every change to the item.
    pub sequence_id: Option<u64>,
    /// `file_version.id` for files.
    pub version: Option<Box<str>>,
    pub sha1: Option<Box<str>>,
}

/// Per-directory state, boxed so that file inodes pay one pointer for it.
#[derive(Debug, Default)]
struct DirState {
    /// Lower-cased name -> child inode.
    /// INVARIANT: `children[k] == c` iff `inodes[c].parent == Some(this dir)` and
    /// `fold(&inodes[c].name) == k`.
    children: HashMap<Box<str>, Ino>,
    /// True once a full listing was stored by `replace_listing`; later single inserts and
    /// removals keep it complete, evicting a child makes it incomplete.
    listing_complete: bool,
    /// When the last full listing was stored.
    listing_fetched: Option<Instant>,
}

/// One inode.
#[derive(Debug)]
pub struct Inode {
    /// INVARIANT: `by_id[box_id] == this inode's number` while the inode exists.
    box_id: Box<str>,
    /// INVARIANT: `dir.is_some()` iff `kind == Kind::Dir`.
    kind: Kind,
    /// Display name as Box spells it (the root's is empty).
    name: Box<str>,
    /// INVARIANT: `None` only for the root and for detached inodes; `Some(p)` means `p`
    /// exists, is a directory, and indexes this inode under `fold(name)`.
    parent: Option<Ino>,
    /// The kernel's references. INVARIANT: a non-root inode with `lookups == 0` and
    /// `parent == None` does not exist (it is dropped at once). A non-root inode with
    /// `lookups == 0` and a parent is an eviction candidate (see `InodeTable::lru`).
    lookups: u64,
    attrs: Attrs,
    /// When `attrs` were last set from Box (or invalidated: `None`).
    attrs_fetched: Option<Instant>,
    dir: Option<Box<DirState>>,
    /// Staged writes decide size and mtime; never evicted while set.
    pinned: bool,
}

impl Inode {
    pub fn box_id(&self) -> &str {
        &self.box_id
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn parent(&self) -> Option<Ino> {
        self.parent
    }
    pub fn lookups(&self) -> u64 {
        self.lookups
    }
    pub fn attrs(&self) -> &Attrs {
        &self.attrs
    }
    pub fn attrs_fetched(&self) -> Option<Instant> {
        self.attrs_fetched
    }
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
    /// A file created here whose upload Box has not confirmed yet.
    pub fn is_local(&self) -> bool {
        is_local_id(&self.box_id)
    }
    /// Staged writes decide its size and mtime.
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }
    /// True if a full listing was stored (for directories).
    pub fn listing_complete(&self) -> bool {
        self.dir.as_ref().is_some_and(|d| d.listing_complete)
    }
    pub fn listing_fetched(&self) -> Option<Instant> {
        self.dir.as_ref().and_then(|d| d.listing_fetched)
    }
}

/// Why a table operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InodeError {
    #[error("no inode {0}")]
    NoSuchInode(Ino),
    #[error("inode {0} is not a directory")]
    NotADirectory(Ino),
    #[error("the root cannot be moved, renamed or removed")]
    Root,
    #[error("a directory cannot move under itself")]
    MoveUnderItself,
    #[error("empty name")]
    EmptyName,
    /// A name from Box no Linux directory entry can carry: see [`check_box_name`].
    #[error(
        "name {0:?} cannot be a file name here (a '/' or NUL, '.' or '..', or over 255 characters)"
    )]
    UnusableName(Box<str>),
    /// Box's word about an item the table removed, no newer than the removal (an event or a
    /// listing page that was on its way when the item was deleted or trashed).
    #[error("item {0} was removed since")]
    RemovedSince(Box<str>),
}

/// The longest name Box gives an item, in characters.
pub const NAME_MAX_CHARS: usize = 255;

/// The longest name a directory entry may have here, in bytes: Box's 255 characters of up
/// to four bytes each. FUSE carries names of up to 1,024 bytes, so a Japanese or Greek name
/// that Box accepts shows even when it is longer than ext4's 255 bytes. (`statfs` still
/// says 255 as `name_max`: the bound tools keep the names they make up within, and one Box
/// takes whatever the characters.)
pub const NAME_MAX_BYTES: usize = 4 * NAME_MAX_CHARS;

/// Whether a name Box gave can be a directory entry. A server can send names that Linux
/// cannot show: one containing `/` or NUL, `.` and `..`, and names longer than Box's 255
/// characters (which a kernel would refuse past 1,024 bytes, failing the whole listing). Such an
/// item is left out of the mount (the listing skips it with a warning, an event about it is
/// ignored) rather than shown under a made-up name: a made-up name could collide with a real
/// one, and writes through it would have to be mapped back. The rest of the folder lists.
pub fn check_box_name(name: &str) -> Result<(), InodeError> {
    if name.is_empty() {
        return Err(InodeError::EmptyName);
    }
    if name == "."
        || name == ".."
        || name.len() > NAME_MAX_BYTES
        || name.chars().count() > NAME_MAX_CHARS
        || name.bytes().any(|b| b == b'/' || b == 0)
    {
        return Err(InodeError::UnusableName(name.into()));
    }
    Ok(())
}

/// An entry that lost its place in the tree: tell the kernel `inval_entry(parent, name)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detached {
    pub ino: Ino,
    pub parent: Ino,
    pub name: Box<str>,
}

/// An inode whose parent or name changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub ino: Ino,
    /// `None` if it was detached before (e.g. restored from the trash).
    pub old_parent: Option<Ino>,
    pub old_name: Box<str>,
    pub new_name: Box<str>,
}

/// What [`InodeTable::replace_listing`] changed, so the caller can invalidate the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingDiff {
    /// New inodes.
    pub added: Vec<Ino>,
    /// Children that are gone (absent from the listing, or displaced by another item's name).
    pub removed: Vec<Detached>,
    /// Renamed in place, or moved in from another directory.
    pub moved: Vec<Moved>,
    /// Same place, but the content or metadata changed (etag, sequence_id, size, times).
    pub changed: Vec<Ino>,
}

impl ListingDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.moved.is_empty()
            && self.changed.is_empty()
    }
}

/// A listing being stored page by page (see [`InodeTable::begin_listing`]).
#[derive(Debug)]
pub struct ListingMerge {
    started: Instant,
    diff: ListingDiff,
    /// Every inode the pages named so far.
    seen: HashSet<Ino>,
    /// Drop candidates kept until the end (see `InodeTable::deferred_drops`).
    deferred_drops: Vec<Ino>,
}

/// What one upsert did.
enum Outcome {
    Added,
    Moved(Moved),
    Updated { changed: bool },
    Stale,
}

/// The inode table. See the module note for the invariants.
#[derive(Debug)]
pub struct InodeTable {
    /// INVARIANT: always contains `ROOT_INO`, a directory.
    inodes: HashMap<Ino, Inode>,
    /// INVARIANT: the inverse of `inodes[..].box_id` (a bijection).
    by_id: HashMap<Box<str>, Ino>,
    /// Next number to hand out; numbers are never reused within a mount.
    next_ino: Ino,
    /// While `Some` (inside `merge_listing_page`), drop candidates are collected here instead
    /// of dropped, so an item displaced early in a listing (two names swapped) keeps its
    /// inode when it shows up again later in the same listing.
    deferred_drops: Option<Vec<Ino>>,
    /// Eviction candidates, least recently used first.
    /// INVARIANT: holds only candidates (non-root, attached, `lookups == 0`); a candidate
    /// missing from it is an overdue directory that still has children.
    lru: lru::LruCache<Ino, ()>,
    /// The most entries `lru` ever held: its index never shrinks (for `approx_heap_bytes`).
    lru_peak: usize,
    /// How many inodes to keep; exceeded only while nothing more can be evicted.
    /// INVARIANT (between public calls): `inodes.len() <= limit`, or the only inodes in
    /// `lru` that are evictable (not a directory with children) are what the last call kept:
    /// one inode, or a listed directory and its children.
    limit: usize,
    /// Directories that lost a cached child to eviction since the caller last asked.
    /// INVARIANT: only live inodes.
    evicted_parents: HashSet<Ino>,
    /// Inodes evicted since the table was made.
    evictions: u64,
    /// Recently removed Box items (by Box id; the most recent [`REMOVALS_REMEMBERED`]): an
    /// event or a listing page that was on its way when an item was removed must not bring
    /// it back once its inode is gone (see [`Removal`]).
    removed_at: lru::LruCache<Box<str>, Removal>,
}

/// When an item was removed, and the `sequence_id` it had then.
#[derive(Debug, Clone, Copy)]
struct Removal {
    at: Instant,
    sequence_id: Option<u64>,
}

impl Removal {
    /// Whether Box's `item` is no newer than this removal: its `sequence_id` is not above
    /// the one removed (a restore from the trash raises it).
    fn outdates(&self, item: &Item) -> bool {
        matches!((self.sequence_id, parse_seq(item)), (Some(removed), Some(seq)) if seq <= removed)
    }
}

/// How many removals the table remembers for listings in progress.
const REMOVALS_REMEMBERED: usize = 4096;

/// The children-index key of a name: Box compares names case-insensitively.
fn fold(name: &str) -> Box<str> {
    if name.chars().any(char::is_uppercase) {
        name.to_lowercase().into_boxed_str()
    } else {
        name.into()
    }
}

fn parse_time(s: Option<&String>) -> Option<SystemTime> {
    s.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(SystemTime::from)
}

fn parse_seq(item: &Item) -> Option<u64> {
    item.sequence_id.as_deref().and_then(|s| s.parse().ok())
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new(DEFAULT_ROOT_FOLDER_ID)
    }
}

impl InodeTable {
    /// A table whose root ([`ROOT_INO`]) is the Box folder `root_folder_id`, keeping up to
    /// [`DEFAULT_MAX_INODES`] inodes.
    pub fn new(root_folder_id: &str) -> Self {
        Self::with_limit(root_folder_id, DEFAULT_MAX_INODES)
    }

    /// A table keeping up to `max_inodes` inodes, the root included, while the kernel does
    /// not reference more than that.
    pub fn with_limit(root_folder_id: &str, max_inodes: usize) -> Self {
        let root = Inode {
            box_id: root_folder_id.into(),
            kind: Kind::Dir,
            name: "".into(),
            parent: None,
            lookups: 0,
            attrs: Attrs::default(),
            attrs_fetched: None,
            dir: Some(Box::default()),
            pinned: false,
        };
        let mut table = InodeTable {
            inodes: HashMap::new(),
            by_id: HashMap::new(),
            next_ino: ROOT_INO + 1,
            deferred_drops: None,
            lru: lru::LruCache::unbounded(),
            lru_peak: 0,
            limit: max_inodes,
            evicted_parents: HashSet::new(),
            evictions: 0,
            removed_at: lru::LruCache::new(
                std::num::NonZeroUsize::new(REMOVALS_REMEMBERED).expect("not zero"),
            ),
        };
        table.by_id.insert(root_folder_id.into(), ROOT_INO);
        table.inodes.insert(ROOT_INO, root);
        table
    }

    pub fn get(&self, ino: Ino) -> Option<&Inode> {
        self.inodes.get(&ino)
    }

    /// Number of live inodes, the root included.
    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    /// Always false: the root is always there.
    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }

    pub fn root_box_id(&self) -> &str {
        &self.inodes[&ROOT_INO].box_id
    }

    /// Every live inode (attached or not), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Ino, &Inode)> + '_ {
        self.inodes.iter().map(|(&ino, inode)| (ino, inode))
    }

    pub fn by_box_id(&self, box_id: &str) -> Option<Ino> {
        self.by_id.get(box_id).copied()
    }

    /// The child of `parent` called `name`, ignoring case.
    pub fn lookup_child(&self, parent: Ino, name: &str) -> Option<Ino> {
        let dir = self.inodes.get(&parent)?.dir.as_ref()?;
        dir.children.get(&*fold(name)).copied()
    }

    /// The children of a directory, in no particular order (empty for files and unknowns).
    pub fn children(&self, parent: Ino) -> Vec<Ino> {
        self.inodes
            .get(&parent)
            .and_then(|i| i.dir.as_ref())
            .map(|d| d.children.values().copied().collect())
            .unwrap_or_default()
    }

    // ---- the bound -------------------------------------------------------------------

    /// How many inodes the table keeps while the kernel references fewer.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Change the bound; evicts at once if the table holds more.
    pub fn set_limit(&mut self, max_inodes: usize) {
        self.limit = max_inodes;
        self.evict_excess(None);
    }

    /// `ino` was just used (a lookup or getattr answered from the table): it moves to the
    /// recent end of the eviction order. Harmless for referenced or unknown inodes; never
    /// evicts.
    pub fn touch(&mut self, ino: Ino) {
        if self.is_candidate(ino) {
            self.enqueue(ino);
        }
    }

    /// The directories that lost cached children to eviction since the last call (each
    /// once, in no particular order). Their listings are now incomplete; a caller that let
    /// the kernel cache a listing may want to invalidate it.
    pub fn take_evicted_parents(&mut self) -> Vec<Ino> {
        self.evicted_parents.drain().collect()
    }

    /// How many inodes were evicted since the table was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    // ---- lookup counts -------------------------------------------------------------

    /// One more kernel reference (a lookup, create, mkdir or readdirplus entry reply).
    /// Returns false if the inode does not exist.
    pub fn add_lookup(&mut self, ino: Ino) -> bool {
        match self.inodes.get_mut(&ino) {
            Some(inode) => {
                if inode.lookups == 0 {
                    self.lru.pop(&ino);
                }
                inode.lookups = inode.lookups.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// The kernel dropped `n` references. Saturates at zero (logged at debug); drops the
    /// inode if it reaches zero while detached. An attached inode reaching zero becomes
    /// the most recent eviction candidate, and is evicted at once if the table is over its
    /// limit. Returns true if the inode is gone.
    pub fn forget(&mut self, ino: Ino, n: u64) -> bool {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            log::debug!("forget({ino}, {n}) of an unknown inode");
            return false;
        };
        if n > inode.lookups {
            log::debug!(
                "forget({ino}, {n}) exceeds the lookup count {}, saturating",
                inode.lookups
            );
        }
        let was_referenced = inode.lookups > 0;
        inode.lookups = inode.lookups.saturating_sub(n);
        if was_referenced {
            self.touch(ino);
        }
        self.maybe_drop(ino);
        self.evict_excess(None);
        !self.inodes.contains_key(&ino)
    }

    // ---- TTLs -----------------------------------------------------------------------

    /// True if the attributes were fetched less than `ttl` before `now`.
    pub fn attrs_fresh(&self, ino: Ino, ttl: Duration, now: Instant) -> bool {
        self.inodes
            .get(&ino)
            .and_then(|i| i.attrs_fetched)
            .is_some_and(|t| now.saturating_duration_since(t) < ttl)
    }

    /// True if a complete listing was fetched less than `ttl` before `now`.
    pub fn listing_fresh(&self, ino: Ino, ttl: Duration, now: Instant) -> bool {
        self.inodes
            .get(&ino)
            .and_then(|i| i.dir.as_ref())
            .filter(|d| d.listing_complete)
            .and_then(|d| d.listing_fetched)
            .is_some_and(|t| now.saturating_duration_since(t) < ttl)
    }

    pub fn invalidate_attrs(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.attrs_fetched = None;
        }
    }

    /// Forget that the listing is complete; the children stay as cached entries.
    pub fn invalidate_listing(&mut self, ino: Ino) {
        if let Some(dir) = self.inodes.get_mut(&ino).and_then(|i| i.dir.as_mut()) {
            dir.listing_complete = false;
            dir.listing_fetched = None;
        }
    }

    /// Box keeps no access time; the filesystem may track one in memory.
    pub fn set_atime(&mut self, ino: Ino, atime: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.attrs.atime = Some(atime);
        }
    }

    // ---- updates from Box -------------------------------------------------------------

    /// Record `item` as a child of `parent`: a new inode on first sight of its id, else an
    /// update of the existing one (moving or renaming it if Box says so; the old parent's
    /// index is fixed). An item with a lower `sequence_id` than the one held is ignored.
    /// Another inode holding the same name in `parent` is detached. If `item` is the root
    /// folder, only its attributes are updated. The inode is touched; if the table is over
    /// its limit, others are evicted (never the one returned).
    pub fn insert_or_update_from_item(
        &mut self,
        parent: Ino,
        item: &Item,
    ) -> Result<Ino, InodeError> {
        let mut displaced = Vec::new();
        let (ino, _) = self.upsert(parent, item, Instant::now(), &mut displaced)?;
        // Told of it since it was removed (restored from the trash, say): listings may show
        // it again.
        self.removed_at.pop(item.id.as_str());
        self.evict_excess(Some(ino));
        Ok(ino)
    }

    fn upsert(
        &mut self,
        parent: Ino,
        item: &Item,
        now: Instant,
        displaced: &mut Vec<Detached>,
    ) -> Result<(Ino, Outcome), InodeError> {
        self.check_dir(parent)?;
        let seq = parse_seq(item);
        // Removed (its inode dropped, or detached but still open): word of it that is no
        // newer than the removal must not put it back in the tree.
        if self
            .removed_at
            .peek(item.id.as_str())
            .is_some_and(|r| r.outdates(item))
        {
            return Err(InodeError::RemovedSince(item.id.as_str().into()));
        }
        if let Some(&ino) = self.by_id.get(item.id.as_str()) {
            // Checked before anything changes: an item renamed to an unusable name must look
            // unseen, so that a listing detaches it.
            if !item.name.is_empty() && ino != ROOT_INO {
                check_box_name(&item.name)?;
            }
            let inode = self
                .inodes
                .get_mut(&ino)
                .expect("by_id points at a live inode");
            if let (Some(held), Some(new)) = (inode.attrs.sequence_id, seq) {
                if new < held {
                    log::debug!(
                        "ignoring stale update of Box item {} (sequence_id {new} < {held})",
                        item.id
                    );
                    self.touch(ino);
                    return Ok((ino, Outcome::Stale));
                }
            }
            let changed = if inode.pinned {
                apply_attrs_pinned(&mut inode.attrs, item)
            } else {
                apply_attrs(&mut inode.attrs, item)
            };
            inode.attrs_fetched = Some(now);
            if ino == ROOT_INO {
                return Ok((ino, Outcome::Updated { changed }));
            }
            let new_name = if item.name.is_empty() {
                inode.name.clone()
            } else {
                item.name.as_str().into()
            };
            if inode.parent == Some(parent) && inode.name == new_name {
                self.touch(ino);
                return Ok((ino, Outcome::Updated { changed }));
            }
            if inode.kind == Kind::Dir && self.is_ancestor_or_self(ino, parent) {
                return Err(InodeError::MoveUnderItself);
            }
            let moved = self.relink(ino, parent, new_name, displaced);
            return Ok((ino, Outcome::Moved(moved)));
        }
        check_box_name(&item.name)?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let kind = Kind::of(item);
        let mut attrs = Attrs::default();
        apply_attrs(&mut attrs, item);
        let inode = Inode {
            box_id: item.id.as_str().into(),
            kind,
            name: item.name.as_str().into(),
            parent: None,
            lookups: 0,
            attrs,
            attrs_fetched: Some(now),
            dir: (kind == Kind::Dir).then(Box::default),
            pinned: false,
        };
        self.by_id.insert(item.id.as_str().into(), ino);
        self.inodes.insert(ino, inode);
        self.attach(parent, ino, displaced);
        Ok((ino, Outcome::Added))
    }

    // ---- local files and staged writes ---------------------------------------------

    /// A file created here, not on Box yet: a new inode with a local id under
    /// `parent/name`, pinned, empty, modified `now`. Whoever held the name is detached.
    pub fn insert_local_file(
        &mut self,
        parent: Ino,
        name: &str,
        now: SystemTime,
    ) -> Result<Ino, InodeError> {
        self.check_dir(parent)?;
        if name.is_empty() {
            return Err(InodeError::EmptyName);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let box_id: Box<str> = format!("{LOCAL_ID_PREFIX}{ino}").into();
        let inode = Inode {
            box_id: box_id.clone(),
            kind: Kind::File,
            name: name.into(),
            parent: None,
            lookups: 0,
            attrs: Attrs {
                mtime: Some(now),
                ctime: Some(now),
                atime: Some(now),
                ..Attrs::default()
            },
            attrs_fetched: Some(Instant::now()),
            dir: None,
            pinned: true,
        };
        self.by_id.insert(box_id, ino);
        self.inodes.insert(ino, inode);
        let mut displaced = Vec::new();
        self.attach(parent, ino, &mut displaced);
        self.evict_excess(Some(ino));
        Ok(ino)
    }

    /// `ino` is now known to Box as `box_id` (a local file uploaded, or a staged file that
    /// became a new version of another). An inode that held `box_id` before loses it: it
    /// is detached and can no longer be found by id (it was replaced). What `ino` knew of
    /// its old Box item (etag, `sequence_id`, version, SHA1) is dropped: those of the other
    /// item are not comparable with it, and a `sequence_id` kept from the old one would
    /// make the new one's answers look stale.
    pub fn rekey(&mut self, ino: Ino, box_id: &str) -> Result<(), InodeError> {
        if ino == ROOT_INO {
            return Err(InodeError::Root);
        }
        if !self.inodes.contains_key(&ino) {
            return Err(InodeError::NoSuchInode(ino));
        }
        if let Some(other) = self.by_id.get(box_id).copied().filter(|&o| o != ino) {
            self.detach(other);
            let dead: Box<str> = format!("{LOCAL_ID_PREFIX}replaced:{other}").into();
            self.by_id.remove(box_id);
            self.by_id.insert(dead.clone(), other);
            if let Some(o) = self.inodes.get_mut(&other) {
                o.box_id = dead;
            }
            self.maybe_drop(other);
        }
        let inode = self.inodes.get_mut(&ino).expect("checked");
        let old = std::mem::replace(&mut inode.box_id, box_id.into());
        if *old != *box_id {
            let a = &mut inode.attrs;
            a.etag = None;
            a.sequence_id = None;
            a.version = None;
            a.sha1 = None;
        }
        self.by_id.remove(&old);
        self.by_id.insert(box_id.into(), ino);
        Ok(())
    }

    /// Pins (staged writes decide size and mtime, never evicted) or unpins `ino`.
    pub fn set_pinned(&mut self, ino: Ino, pinned: bool) {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        inode.pinned = pinned;
        if pinned {
            self.lru.pop(&ino);
        } else {
            self.touch(ino);
        }
    }

    /// The size and mtime of staged data (the inode should be pinned, or Box's next answer
    /// replaces them).
    pub fn set_local_attrs(&mut self, ino: Ino, size: u64, mtime: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.attrs.size = size;
            inode.attrs.mtime = Some(mtime);
            inode.attrs.ctime = Some(inode.attrs.ctime.map_or(mtime, |c| c.max(mtime)));
        }
    }

    /// An mtime set by `utimens`, kept in memory only (until Box's next answer).
    pub fn set_mtime(&mut self, ino: Ino, mtime: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.attrs.mtime = Some(mtime);
        }
    }

    /// Detach `ino` (trashed or deleted elsewhere). It stays alive while the kernel
    /// references it. Returns where it was, if it was attached.
    pub fn remove(&mut self, ino: Ino) -> Result<Option<Detached>, InodeError> {
        if ino == ROOT_INO {
            return Err(InodeError::Root);
        }
        let Some(inode) = self.inodes.get(&ino) else {
            return Err(InodeError::NoSuchInode(ino));
        };
        let removal = Removal {
            at: Instant::now(),
            sequence_id: inode.attrs.sequence_id,
        };
        log::debug!(
            "removed {} at sequence_id {:?}",
            inode.box_id,
            removal.sequence_id
        );
        self.removed_at.put(inode.box_id.clone(), removal);
        let was = self.detach(ino);
        self.invalidate_listing(ino);
        self.maybe_drop(ino);
        self.evict_excess(None);
        Ok(was)
    }

    /// Our own rename/move: `ino` becomes `new_parent/new_name`. An inode already holding
    /// that name (ignoring case) is detached and returned: it was replaced.
    pub fn rename(
        &mut self,
        ino: Ino,
        new_parent: Ino,
        new_name: &str,
    ) -> Result<Option<Detached>, InodeError> {
        if ino == ROOT_INO {
            return Err(InodeError::Root);
        }
        if new_name.is_empty() {
            return Err(InodeError::EmptyName);
        }
        self.check_dir(new_parent)?;
        let inode = self.inodes.get(&ino).ok_or(InodeError::NoSuchInode(ino))?;
        if inode.kind == Kind::Dir && self.is_ancestor_or_self(ino, new_parent) {
            return Err(InodeError::MoveUnderItself);
        }
        let mut displaced = Vec::new();
        self.relink(ino, new_parent, new_name.into(), &mut displaced);
        self.evict_excess(Some(ino));
        Ok(displaced.pop())
    }

    /// Store a full listing of `parent`: new items are added, children missing from
    /// `items` are detached, renamed or moved-in ones are updated, stale ones ignored.
    /// Web links are skipped. Marks the listing complete as of now. The same as
    /// [`begin_listing`](Self::begin_listing), one [`merge_listing_page`](Self::merge_listing_page)
    /// and [`finish_listing`](Self::finish_listing).
    pub fn replace_listing(
        &mut self,
        parent: Ino,
        items: &[Item],
    ) -> Result<ListingDiff, InodeError> {
        let mut merge = self.begin_listing(parent)?;
        self.merge_listing_page(parent, items, &mut merge)?;
        self.finish_listing(parent, merge)
    }

    /// Starts storing a listing of `parent` that arrives in pages, with the table unlocked
    /// between them: the listing counts as of this moment.
    pub fn begin_listing(&self, parent: Ino) -> Result<ListingMerge, InodeError> {
        self.check_dir(parent)?;
        Ok(ListingMerge {
            started: Instant::now(),
            diff: ListingDiff::default(),
            seen: HashSet::new(),
            deferred_drops: Vec::new(),
        })
    }

    /// Stores one page of a listing begun with [`begin_listing`](Self::begin_listing): new
    /// items are added, renamed or moved-in ones updated, stale ones ignored, web links
    /// skipped, and so are items [`remove`](Self::remove)d since the listing began (the page
    /// is older than the removal). Returns the inodes of the page's items that are now
    /// children of `parent` (an
    /// item whose name a local file holds is not), in page order. The entries are touched in
    /// page order, then `parent`; nothing is evicted or removed before
    /// [`finish_listing`](Self::finish_listing).
    pub fn merge_listing_page(
        &mut self,
        parent: Ino,
        items: &[Item],
        merge: &mut ListingMerge,
    ) -> Result<Vec<Ino>, InodeError> {
        self.check_dir(parent)?;
        let now = Instant::now();
        let mut children = Vec::with_capacity(items.len());
        self.deferred_drops = Some(std::mem::take(&mut merge.deferred_drops));
        for item in items {
            if !(item.is_file() || item.is_folder()) {
                continue;
            }
            // Removed after the listing began: this page is older than the removal.
            if self
                .removed_at
                .peek(item.id.as_str())
                .is_some_and(|r| r.at > merge.started)
            {
                log::debug!("listing of inode {parent}: {} was removed since", item.id);
                continue;
            }
            let (ino, outcome) = match self.upsert(parent, item, now, &mut merge.diff.removed) {
                Ok(r) => r,
                Err(e @ InodeError::UnusableName(_)) => {
                    log::warn!(
                        "listing of inode {parent}: leaving out Box item {}: {e}",
                        item.id
                    );
                    continue;
                }
                Err(e) => {
                    log::debug!("listing of inode {parent}: skipping {}: {e}", item.id);
                    continue;
                }
            };
            merge.seen.insert(ino);
            if self
                .inodes
                .get(&ino)
                .is_some_and(|i| i.parent == Some(parent))
            {
                children.push(ino);
            }
            match outcome {
                Outcome::Added => merge.diff.added.push(ino),
                Outcome::Moved(m) => merge.diff.moved.push(m),
                Outcome::Updated { changed: true } => merge.diff.changed.push(ino),
                Outcome::Updated { changed: false } | Outcome::Stale => {}
            }
        }
        merge.deferred_drops = self.deferred_drops.take().unwrap_or_default();
        self.touch(parent);
        Ok(children)
    }

    /// Ends a listing: children it did not show are detached, unless they are local (not on
    /// Box yet) or the table learned of them after the listing began (an event or a lookup
    /// is newer than the pages). Marks the listing complete as of its start, unless one of
    /// its items left `parent` meanwhile (evicted, or moved by an event): then a later
    /// lookup lists again rather than trust a listing with a hole.
    ///
    /// Evictions wait for the end; then the least recent inodes go, but never `parent` or
    /// its children: a listing larger than the limit (or arriving when the kernel holds the
    /// whole bound) is kept whole until the next call that evicts.
    pub fn finish_listing(
        &mut self,
        parent: Ino,
        merge: ListingMerge,
    ) -> Result<ListingDiff, InodeError> {
        self.check_dir(parent)?;
        let ListingMerge {
            started,
            mut diff,
            seen,
            deferred_drops,
        } = merge;
        let learned_since = |i: &Inode| i.attrs_fetched.is_some_and(|t| t > started);
        let gone: Vec<Ino> = self
            .children(parent)
            .into_iter()
            .filter(|c| {
                !seen.contains(c)
                    && self
                        .inodes
                        .get(c)
                        .is_some_and(|i| !i.is_local() && !learned_since(i))
            })
            .collect();
        for ino in gone {
            if let Some(d) = self.detach(ino) {
                diff.removed.push(d);
            }
            self.maybe_drop(ino);
        }
        for ino in deferred_drops {
            self.maybe_drop(ino);
        }
        let whole = seen
            .iter()
            .all(|i| self.inodes.get(i).is_some_and(|n| n.parent == Some(parent)));
        let dir = self.inodes.get_mut(&parent).and_then(|i| i.dir.as_mut());
        let dir = dir.expect("checked to be a directory");
        dir.listing_complete = whole;
        dir.listing_fetched = Some(started);
        self.touch(parent);
        // The listing itself is spared: the caller is about to look a name up in it, and
        // evicting its children now would make that name missing from a listing just made.
        self.evict_excess_sparing(|t, victim| {
            victim == parent || t.inodes.get(&victim).and_then(|i| i.parent) == Some(parent)
        });
        Ok(diff)
    }

    // ---- internals -------------------------------------------------------------------

    fn check_dir(&self, ino: Ino) -> Result<(), InodeError> {
        match self.inodes.get(&ino) {
            None => Err(InodeError::NoSuchInode(ino)),
            Some(i) if i.kind != Kind::Dir => Err(InodeError::NotADirectory(ino)),
            Some(_) => Ok(()),
        }
    }

    /// True if `a` is `b` or one of `b`'s ancestors.
    fn is_ancestor_or_self(&self, a: Ino, b: Ino) -> bool {
        let mut cur = Some(b);
        while let Some(c) = cur {
            if c == a {
                return true;
            }
            cur = self.inodes.get(&c).and_then(|i| i.parent);
        }
        false
    }

    /// Move `ino` to `parent/name`, detaching whoever held that name there.
    fn relink(
        &mut self,
        ino: Ino,
        parent: Ino,
        name: Box<str>,
        displaced: &mut Vec<Detached>,
    ) -> Moved {
        let old_parent = self.detach(ino).map(|d| d.parent);
        let inode = self.inodes.get_mut(&ino).expect("live inode");
        let old_name = std::mem::replace(&mut inode.name, name.clone());
        self.attach(parent, ino, displaced);
        Moved {
            ino,
            old_parent,
            old_name,
            new_name: name,
        }
    }

    /// Link a detached `ino` under `parent` by its current name. A different inode holding
    /// the key is detached (and dropped if unreferenced) and reported in `displaced`.
    fn attach(&mut self, parent: Ino, ino: Ino, displaced: &mut Vec<Detached>) {
        let key = fold(&self.inodes[&ino].name);
        let dir = self.inodes.get_mut(&parent).and_then(|i| i.dir.as_mut());
        let dir = dir.expect("parent is a directory");
        let previous = dir.children.insert(key.clone(), ino);
        let incoming_local = self.inodes[&ino].is_local();
        if let Some(other) = previous.filter(|&o| o != ino) {
            if self.inodes[&other].is_local() && !incoming_local {
                // A local file keeps its name until its upload settles the clash; the Box
                // item stays out of the tree meanwhile.
                let dir = self.inodes.get_mut(&parent).and_then(|i| i.dir.as_mut());
                dir.expect("parent is a directory")
                    .children
                    .insert(key, other);
                self.inodes.get_mut(&ino).expect("live inode").parent = None;
                self.lru.pop(&ino);
                self.maybe_drop(ino);
                return;
            }
            let other_inode = self.inodes.get_mut(&other).expect("indexed child is live");
            other_inode.parent = None;
            self.lru.pop(&other);
            displaced.push(Detached {
                ino: other,
                parent,
                name: other_inode.name.clone(),
            });
            self.maybe_drop(other);
        }
        self.inodes.get_mut(&ino).expect("live inode").parent = Some(parent);
        self.touch(ino);
    }

    /// Unlink `ino` from its parent's index; returns where it was. It stops being an
    /// eviction candidate; a parent left childless while overdue is next in line.
    fn detach(&mut self, ino: Ino) -> Option<Detached> {
        let inode = self.inodes.get_mut(&ino)?;
        let parent = inode.parent.take()?;
        self.lru.pop(&ino);
        let name = inode.name.clone();
        let key = fold(&name);
        let mut parent_emptied = false;
        if let Some(dir) = self.inodes.get_mut(&parent).and_then(|i| i.dir.as_mut()) {
            if dir.children.get(&key) == Some(&ino) {
                dir.children.remove(&key);
                parent_emptied = dir.children.is_empty();
            }
        }
        if parent_emptied && self.is_candidate(parent) && !self.lru.contains(&parent) {
            self.enqueue(parent);
            self.lru.demote(&parent);
        }
        Some(Detached { ino, parent, name })
    }

    /// Put `ino` at the recent end of the LRU (moving it if it is there).
    fn enqueue(&mut self, ino: Ino) {
        self.lru.put(ino, ());
        self.lru_peak = self.lru_peak.max(self.lru.len());
    }

    /// Non-root, attached and unreferenced: cached metadata that may be evicted.
    fn is_candidate(&self, ino: Ino) -> bool {
        ino != ROOT_INO
            && self
                .inodes
                .get(&ino)
                .is_some_and(|i| i.lookups == 0 && i.parent.is_some() && !i.pinned)
    }

    /// Evict least recently used candidates while the table is over its limit, never
    /// `protect`. See [`evict_excess_sparing`](Self::evict_excess_sparing).
    fn evict_excess(&mut self, protect: Option<Ino>) {
        self.evict_excess_sparing(|_, victim| Some(victim) == protect);
    }

    /// Evict least recently used candidates while the table is over its limit, passing over
    /// those `spare` names (they are touched again afterwards, in their old order). A
    /// candidate directory with children is left out of the LRU (overdue) until `detach`
    /// takes its last child; nothing else is skipped, so every call ends within the limit or
    /// with nothing but spared inodes left to evict. Not for use inside a listing
    /// (`deferred_drops` would keep evicted inodes).
    fn evict_excess_sparing(&mut self, spare: impl Fn(&Self, Ino) -> bool) {
        debug_assert!(self.deferred_drops.is_none());
        let mut spared = Vec::new();
        while self.inodes.len() > self.limit {
            let Some((victim, ())) = self.lru.pop_lru() else {
                break;
            };
            if spare(self, victim) {
                spared.push(victim);
                continue;
            }
            let has_children = |i: &Inode| i.dir.as_ref().is_some_and(|d| !d.children.is_empty());
            if self.inodes.get(&victim).is_none_or(has_children) {
                continue;
            }
            let Some(gone) = self.detach(victim) else {
                continue;
            };
            if let Some(dir) = self
                .inodes
                .get_mut(&gone.parent)
                .and_then(|i| i.dir.as_mut())
            {
                dir.listing_complete = false;
            }
            self.evicted_parents.insert(gone.parent);
            self.evictions += 1;
            self.maybe_drop(victim);
        }
        for ino in spared {
            self.touch(ino);
        }
    }

    /// Drop `ino` if it is unreferenced and detached; a dropped directory's children are
    /// detached and dropped in turn if unreferenced. Returns true if `ino` was dropped.
    fn maybe_drop(&mut self, ino: Ino) -> bool {
        let droppable = |t: &Self, i: Ino| {
            i != ROOT_INO
                && t.inodes
                    .get(&i)
                    .is_some_and(|n| n.lookups == 0 && n.parent.is_none())
        };
        if !droppable(self, ino) {
            return false;
        }
        if let Some(deferred) = &mut self.deferred_drops {
            deferred.push(ino);
            return false;
        }
        let mut work = vec![ino];
        while let Some(i) = work.pop() {
            if !droppable(self, i) {
                continue;
            }
            let inode = self.inodes.remove(&i).expect("checked");
            self.by_id.remove(&inode.box_id);
            if let Some(dir) = inode.dir {
                self.evicted_parents.remove(&i);
                for (_, child) in dir.children {
                    if let Some(c) = self.inodes.get_mut(&child) {
                        c.parent = None;
                        self.lru.pop(&child);
                        work.push(child);
                    }
                }
            }
        }
        true
    }

    /// An estimate of the heap the table uses: hash-table slots plus strings, directory
    /// states and the LRU. For tests and diagnostics, not exact.
    pub fn approx_heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let slot = |k: usize, v: usize| k + v + 1;
        let str_opt = |s: &Option<Box<str>>| s.as_ref().map_or(0, |s| s.len());
        // The LRU: one boxed list node per entry (key, prev, next; the allocator rounds
        // to 16 bytes) and a hashbrown index (key pointer, node pointer) sized for the most
        // entries it ever held, at most 7/8 full, in power-of-two buckets.
        let lru_node = (size_of::<Ino>() + 2 * size_of::<usize>()).next_multiple_of(16);
        let lru_buckets = (self.lru_peak * 8 / 7).next_power_of_two();
        let lru =
            self.lru.len() * lru_node + lru_buckets * slot(size_of::<usize>(), size_of::<usize>());
        let mut total = self.inodes.capacity() * slot(size_of::<Ino>(), size_of::<Inode>())
            + self.by_id.capacity() * slot(size_of::<Box<str>>(), size_of::<Ino>())
            + self.evicted_parents.capacity() * slot(size_of::<Ino>(), 0)
            + lru;
        // Remembered removals: an LRU node (key, value, links) and index slot each.
        for (id, _) in self.removed_at.iter() {
            total += id.len() + 64;
        }
        for inode in self.inodes.values() {
            total += 2 * inode.box_id.len() + inode.name.len();
            total += str_opt(&inode.attrs.etag)
                + str_opt(&inode.attrs.version)
                + str_opt(&inode.attrs.sha1);
            if let Some(dir) = &inode.dir {
                total += size_of::<DirState>()
                    + dir.children.capacity() * slot(size_of::<Box<str>>(), size_of::<Ino>());
                total += dir.children.keys().map(|k| k.len()).sum::<usize>();
            }
        }
        total
    }
}

/// [`apply_attrs`] for a pinned inode: size and mtime stay those of the staged data.
fn apply_attrs_pinned(attrs: &mut Attrs, item: &Item) -> bool {
    let (size, mtime) = (attrs.size, attrs.mtime);
    let changed = apply_attrs(attrs, item);
    attrs.size = size;
    attrs.mtime = mtime;
    changed
}

/// Copy what `item` says into `attrs`, keeping fields it leaves out (mini representations).
/// Returns true if anything `stat` or cache validation looks at changed.
fn apply_attrs(attrs: &mut Attrs, item: &Item) -> bool {
    let before = attrs.clone();
    if let Some(size) = item.size {
        attrs.size = size;
    }
    let modified = parse_time(item.modified_at.as_ref());
    let content_modified = parse_time(item.content_modified_at.as_ref()).or(modified);
    if let Some(t) = content_modified {
        attrs.mtime = Some(t);
        if attrs.atime.is_none_or(|a| a < t) {
            attrs.atime = Some(t);
        }
    }
    if modified.is_some() {
        attrs.ctime = modified;
    }
    if let Some(etag) = &item.etag {
        attrs.etag = Some(etag.as_str().into());
    }
    if let Some(seq) = parse_seq(item) {
        attrs.sequence_id = Some(seq);
    }
    if let Some(v) = &item.file_version {
        attrs.version = Some(v.id.as_str().into());
    }
    let sha1 = item
        .sha1
        .as_ref()
        .or_else(|| item.file_version.as_ref().and_then(|v| v.sha1.as_ref()));
    if let Some(sha1) = sha1 {
        attrs.sha1 = Some(sha1.as_str().into());
    }
    let atime_only = |a: &Attrs| Attrs {
        atime: None,
        ..a.clone()
    };
    atime_only(attrs) != atime_only(&before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &str, id: &str, name: &str, seq: u64) -> Item {
        Item {
            kind: kind.into(),
            id: id.into(),
            name: name.into(),
            etag: Some(seq.to_string()),
            sequence_id: Some(seq.to_string()),
            size: Some(10),
            modified_at: Some("2024-05-01T10:00:00-07:00".into()),
            content_modified_at: Some("2024-04-01T10:00:00-07:00".into()),
            ..Default::default()
        }
    }
    fn file(id: &str, name: &str, seq: u64) -> Item {
        item("file", id, name, seq)
    }
    fn folder(id: &str, name: &str, seq: u64) -> Item {
        item("folder", id, name, seq)
    }

    /// Checks every INVARIANT of the module against the table's current state.
    fn check_invariants(t: &InodeTable) {
        assert!(t
            .get(ROOT_INO)
            .is_some_and(|r| r.is_dir() && r.parent.is_none()));
        assert_eq!(t.inodes.len(), t.by_id.len());
        for (&ino, inode) in &t.inodes {
            assert_eq!(t.by_id[&inode.box_id], ino);
            assert_eq!(inode.dir.is_some(), inode.kind == Kind::Dir);
            match inode.parent {
                Some(p) => {
                    let dir = t.inodes[&p].dir.as_ref().expect("parent is a dir");
                    assert_eq!(dir.children.get(&fold(&inode.name)), Some(&ino));
                }
                None => assert!(ino == ROOT_INO || inode.lookups > 0, "orphan {ino} kept"),
            }
            if let Some(dir) = &inode.dir {
                for (k, c) in &dir.children {
                    let child = &t.inodes[c];
                    assert_eq!(child.parent, Some(ino));
                    assert_eq!(&fold(&child.name), k);
                }
            }
            let has_children = inode.dir.as_ref().is_some_and(|d| !d.children.is_empty());
            if t.lru.contains(&ino) {
                assert!(t.is_candidate(ino), "{ino} in the LRU but not a candidate");
            } else if t.is_candidate(ino) {
                assert!(has_children, "candidate {ino} missing from the LRU");
            }
        }
        for (&ino, ()) in t.lru.iter() {
            assert!(t.inodes.contains_key(&ino), "dead {ino} in the LRU");
        }
        assert!(t.lru.len() <= t.lru_peak);
        let evictable: Vec<Ino> = t
            .lru
            .iter()
            .map(|(&ino, ())| ino)
            .filter(|ino| {
                t.inodes[ino]
                    .dir
                    .as_ref()
                    .is_none_or(|d| d.children.is_empty())
            })
            .collect();
        // What the last call kept: one inode, or a listed directory and its children.
        let one_listing = |dir: Ino| {
            evictable
                .iter()
                .all(|&i| i == dir || t.inodes[&i].parent == Some(dir))
        };
        let kept = evictable.len() <= 1
            || evictable
                .iter()
                .filter_map(|i| t.inodes[i].parent)
                .any(one_listing);
        assert!(
            t.len() <= t.limit() || kept,
            "{} inodes over the limit {} with {} evictable ones left",
            t.len(),
            t.limit(),
            evictable.len()
        );
        for p in &t.evicted_parents {
            assert!(t.get(*p).is_some_and(|i| i.is_dir()), "evicted parent {p}");
        }
    }

    /// The files `prefix0..prefix{n-1}`, named like their ids.
    fn files(prefix: &str, n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| {
                let id = format!("{prefix}{i}");
                file(&id, &id, 1)
            })
            .collect()
    }

    fn add(t: &mut InodeTable, parent: Ino, it: &Item) -> Ino {
        t.insert_or_update_from_item(parent, it).unwrap()
    }

    fn gone(t: &InodeTable, box_id: &str) -> bool {
        t.by_box_id(box_id).is_none()
    }

    #[test]
    fn new_table_has_root_with_configured_id() {
        let t = InodeTable::default();
        assert_eq!(t.by_box_id("0"), Some(ROOT_INO));
        let t = InodeTable::new("12345");
        assert_eq!(t.root_box_id(), "12345");
        assert_eq!(t.by_box_id("12345"), Some(ROOT_INO));
        check_invariants(&t);
    }

    #[test]
    fn attributes_come_from_the_item() {
        let mut t = InodeTable::default();
        let mut it = file("f1", "a.txt", 3);
        it.sha1 = Some("abc".into());
        it.file_version = Some(box_client::types::FileVersion {
            id: "v9".into(),
            ..Default::default()
        });
        let ino = t.insert_or_update_from_item(ROOT_INO, &it).unwrap();
        let a = t.get(ino).unwrap().attrs();
        assert_eq!(a.size, 10);
        assert_eq!(a.sequence_id, Some(3));
        assert_eq!(a.etag.as_deref(), Some("3"));
        assert_eq!(a.version.as_deref(), Some("v9"));
        assert_eq!(a.sha1.as_deref(), Some("abc"));
        let mtime =
            SystemTime::from(chrono::DateTime::parse_from_rfc3339("2024-04-01T17:00:00Z").unwrap());
        assert_eq!(a.mtime, Some(mtime));
        assert_eq!(a.atime, Some(mtime));
        assert!(a.ctime > a.mtime);
        assert!(t.attrs_fresh(ino, Duration::from_secs(60), Instant::now()));
        t.invalidate_attrs(ino);
        assert!(!t.attrs_fresh(ino, Duration::from_secs(60), Instant::now()));
    }

    #[test]
    fn inode_is_stable_across_rename_and_move() {
        let mut t = InodeTable::default();
        let d1 = t
            .insert_or_update_from_item(ROOT_INO, &folder("d1", "A", 1))
            .unwrap();
        let d2 = t
            .insert_or_update_from_item(ROOT_INO, &folder("d2", "B", 1))
            .unwrap();
        let f = t
            .insert_or_update_from_item(d1, &file("f", "x.txt", 1))
            .unwrap();

        // Box says: renamed.
        let same = t
            .insert_or_update_from_item(d1, &file("f", "y.txt", 2))
            .unwrap();
        assert_eq!(same, f);
        assert_eq!(t.lookup_child(d1, "x.txt"), None);
        assert_eq!(t.lookup_child(d1, "y.txt"), Some(f));

        // Box says: moved to d2 (the old parent's index is fixed).
        let same = t
            .insert_or_update_from_item(d2, &file("f", "y.txt", 3))
            .unwrap();
        assert_eq!(same, f);
        assert_eq!(t.lookup_child(d1, "y.txt"), None);
        assert_eq!(t.lookup_child(d2, "y.txt"), Some(f));
        assert_eq!(t.get(f).unwrap().parent(), Some(d2));

        // Our own rename and move.
        assert_eq!(t.rename(f, d1, "z.txt").unwrap(), None);
        assert_eq!(t.lookup_child(d1, "z.txt"), Some(f));
        assert_eq!(t.by_box_id("f"), Some(f));
        assert!(t.children(d2).is_empty());
        check_invariants(&t);
    }

    #[test]
    fn directory_cannot_move_under_itself() {
        let mut t = InodeTable::default();
        let a = t
            .insert_or_update_from_item(ROOT_INO, &folder("a", "a", 1))
            .unwrap();
        let b = t
            .insert_or_update_from_item(a, &folder("b", "b", 1))
            .unwrap();
        assert_eq!(t.rename(a, b, "a"), Err(InodeError::MoveUnderItself));
        assert_eq!(t.rename(a, a, "a"), Err(InodeError::MoveUnderItself));
        assert_eq!(
            t.insert_or_update_from_item(b, &folder("a", "a", 2)),
            Err(InodeError::MoveUnderItself)
        );
        assert_eq!(t.rename(ROOT_INO, a, "r"), Err(InodeError::Root));
        let f = t.insert_or_update_from_item(a, &file("f", "f", 1)).unwrap();
        assert_eq!(t.rename(a, f, "x"), Err(InodeError::NotADirectory(f)));
        check_invariants(&t);
    }

    #[test]
    fn lookup_ignores_case_but_keeps_display_name() {
        let mut t = InodeTable::default();
        let f = t
            .insert_or_update_from_item(ROOT_INO, &file("f", "ReadMe.TXT", 1))
            .unwrap();
        assert_eq!(t.lookup_child(ROOT_INO, "readme.txt"), Some(f));
        assert_eq!(t.lookup_child(ROOT_INO, "README.txt"), Some(f));
        assert_eq!(t.lookup_child(ROOT_INO, "ReadMe.TXT"), Some(f));
        assert_eq!(t.get(f).unwrap().name(), "ReadMe.TXT");
        // A case-only rename is a rename of the same inode.
        assert_eq!(t.rename(f, ROOT_INO, "README.txt").unwrap(), None);
        assert_eq!(t.get(f).unwrap().name(), "README.txt");
        assert_eq!(t.lookup_child(ROOT_INO, "readme.TXT"), Some(f));
        assert_eq!(t.len(), 2);
        // Non-ASCII case folding.
        let g = t
            .insert_or_update_from_item(ROOT_INO, &file("g", "ÄRGER", 1))
            .unwrap();
        assert_eq!(t.lookup_child(ROOT_INO, "ärger"), Some(g));
        check_invariants(&t);
    }

    #[test]
    fn a_listing_in_pages_hands_out_children_as_they_come() {
        let mut t = InodeTable::default();
        let d = t
            .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
            .unwrap();
        let old = t
            .insert_or_update_from_item(d, &file("9", "old", 1))
            .unwrap();
        // A full listing earlier, so that "old" counts as learned before the next one.
        t.replace_listing(d, &[file("9", "old", 1)]).unwrap();

        let mut merge = t.begin_listing(d).unwrap();
        let page1 = t
            .merge_listing_page(d, &[file("1", "a", 1), file("2", "b", 1)], &mut merge)
            .unwrap();
        assert_eq!(page1.len(), 2);
        assert_eq!(t.lookup_child(d, "a"), Some(page1[0]));
        check_invariants(&t);
        // Between the pages an event reports a new file the pages will not show.
        std::thread::sleep(Duration::from_millis(2));
        let evented = t
            .insert_or_update_from_item(d, &file("7", "from-an-event", 1))
            .unwrap();
        let page2 = t
            .merge_listing_page(d, &[file("3", "c", 1)], &mut merge)
            .unwrap();
        assert_eq!(page2.len(), 1);
        let diff = t.finish_listing(d, merge).unwrap();
        // "old" was not in the pages: gone. The file the event told of stays.
        assert_eq!(
            diff.removed.iter().map(|r| r.ino).collect::<Vec<_>>(),
            [old]
        );
        assert_eq!(t.lookup_child(d, "from-an-event"), Some(evented));
        assert_eq!(t.children(d).len(), 4);
        assert!(t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
        check_invariants(&t);
    }

    #[test]
    fn a_page_older_than_a_removal_does_not_bring_the_item_back() {
        let mut t = InodeTable::default();
        let d = t
            .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
            .unwrap();
        let x = t.insert_or_update_from_item(d, &file("1", "x", 1)).unwrap();
        let mut merge = t.begin_listing(d).unwrap();
        // The trash event arrives before the page that still shows "x".
        t.remove(x).unwrap();
        assert!(t.get(x).is_none(), "dropped: nothing referenced it");
        let page = t
            .merge_listing_page(d, &[file("1", "x", 1), file("2", "y", 1)], &mut merge)
            .unwrap();
        assert_eq!(page.len(), 1);
        t.finish_listing(d, merge).unwrap();
        assert_eq!(t.lookup_child(d, "x"), None);
        assert!(t.lookup_child(d, "y").is_some());
        // A listing begun after the removal shows it again (restored from the trash).
        t.replace_listing(d, &[file("1", "x", 2), file("2", "y", 1)])
            .unwrap();
        assert!(t.lookup_child(d, "x").is_some());
        check_invariants(&t);
    }

    #[test]
    fn word_of_a_removed_item_no_newer_than_its_removal_is_refused() {
        let mut t = InodeTable::default();
        let x = t
            .insert_or_update_from_item(ROOT_INO, &file("1", "x", 3))
            .unwrap();
        t.remove(x).unwrap();
        for seq in [2, 3] {
            assert!(matches!(
                t.insert_or_update_from_item(ROOT_INO, &file("1", "x", seq)),
                Err(InodeError::RemovedSince(_))
            ));
        }
        assert_eq!(t.lookup_child(ROOT_INO, "x"), None);
        // A listing begun later that still shows the old item skips it too.
        t.replace_listing(ROOT_INO, &[file("1", "x", 3)]).unwrap();
        assert_eq!(t.lookup_child(ROOT_INO, "x"), None);
        // Newer: restored.
        t.insert_or_update_from_item(ROOT_INO, &file("1", "x", 4))
            .unwrap();
        assert!(t.lookup_child(ROOT_INO, "x").is_some());
        check_invariants(&t);
    }

    #[test]
    fn a_listing_whose_item_moved_away_meanwhile_is_not_complete() {
        let mut t = InodeTable::default();
        let d = t
            .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
            .unwrap();
        let mut merge = t.begin_listing(d).unwrap();
        t.merge_listing_page(d, &[file("1", "a", 1)], &mut merge)
            .unwrap();
        // An event moves "a" to the root before the last page.
        t.insert_or_update_from_item(ROOT_INO, &file("1", "a", 2))
            .unwrap();
        t.merge_listing_page(d, &[file("2", "b", 1)], &mut merge)
            .unwrap();
        t.finish_listing(d, merge).unwrap();
        assert_eq!(t.children(d).len(), 1);
        assert!(t.lookup_child(ROOT_INO, "a").is_some());
        assert!(!t.get(d).unwrap().listing_complete());
        check_invariants(&t);
    }

    #[test]
    fn replace_listing_reports_the_diff() {
        let mut t = InodeTable::default();
        let d = t
            .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
            .unwrap();
        let other = t
            .insert_or_update_from_item(ROOT_INO, &folder("o", "o", 1))
            .unwrap();
        let first = vec![
            file("1", "keep", 1),
            file("2", "rename-me", 1),
            file("3", "delete-me", 1),
            file("4", "change-me", 1),
        ];
        let diff = t.replace_listing(d, &first).unwrap();
        assert_eq!(diff.added.len(), 4);
        assert!(diff.removed.is_empty() && diff.moved.is_empty() && diff.changed.is_empty());
        assert!(t.get(d).unwrap().listing_complete());
        assert!(t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
        let [i1, i2, i3, i4] = ["1", "2", "3", "4"].map(|id| t.by_box_id(id).unwrap());
        let m = t
            .insert_or_update_from_item(other, &file("5", "moved-in", 1))
            .unwrap();

        // The same listing again: nothing changed.
        assert!(t.replace_listing(d, &first).unwrap().is_empty());

        let second = vec![
            file("1", "keep", 1),
            file("2", "renamed", 2),
            file("4", "change-me", 2),
            file("5", "moved-in", 2),
            file("6", "new", 1),
            Item {
                kind: "web_link".into(),
                id: "7".into(),
                name: "link".into(),
                ..Default::default()
            },
        ];
        let diff = t.replace_listing(d, &second).unwrap();
        assert_eq!(diff.added, vec![t.by_box_id("6").unwrap()]);
        assert_eq!(
            diff.removed,
            vec![Detached {
                ino: i3,
                parent: d,
                name: "delete-me".into()
            }]
        );
        assert_eq!(diff.changed, vec![i4]);
        assert_eq!(
            diff.moved,
            vec![
                Moved {
                    ino: i2,
                    old_parent: Some(d),
                    old_name: "rename-me".into(),
                    new_name: "renamed".into()
                },
                Moved {
                    ino: m,
                    old_parent: Some(other),
                    old_name: "moved-in".into(),
                    new_name: "moved-in".into()
                },
            ]
        );
        assert_eq!(t.get(i1).unwrap().parent(), Some(d));
        assert!(t.get(i3).is_none(), "unreferenced and detached: dropped");
        assert_eq!(t.by_box_id("7"), None, "web links are skipped");
        assert!(t.children(other).is_empty());
        assert_eq!(t.children(d).len(), 5);
        check_invariants(&t);
    }

    #[test]
    fn replace_listing_with_swapped_names_keeps_both_inodes() {
        let mut t = InodeTable::default();
        t.replace_listing(ROOT_INO, &[file("1", "a", 1), file("2", "b", 1)])
            .unwrap();
        let [i1, i2] = ["1", "2"].map(|id| t.by_box_id(id).unwrap());
        let diff = t
            .replace_listing(ROOT_INO, &[file("1", "b", 2), file("2", "a", 2)])
            .unwrap();
        assert!(diff.added.is_empty());
        assert_eq!(diff.moved.len(), 2);
        assert_eq!(t.lookup_child(ROOT_INO, "b"), Some(i1));
        assert_eq!(t.lookup_child(ROOT_INO, "a"), Some(i2));
        assert_eq!(t.len(), 3);
        check_invariants(&t);
    }

    #[test]
    fn replace_listing_keeps_referenced_removed_children_alive() {
        let mut t = InodeTable::default();
        t.replace_listing(ROOT_INO, &[file("1", "a", 1)]).unwrap();
        let a = t.by_box_id("1").unwrap();
        t.add_lookup(a);
        let diff = t.replace_listing(ROOT_INO, &[]).unwrap();
        assert_eq!(diff.removed.len(), 1);
        assert_eq!(t.get(a).unwrap().parent(), None);
        assert_eq!(t.lookup_child(ROOT_INO, "a"), None);
        // Restored from the trash: the same inode comes back.
        let diff = t.replace_listing(ROOT_INO, &[file("1", "a", 2)]).unwrap();
        assert_eq!(diff.moved.len(), 1);
        assert_eq!(diff.moved[0].old_parent, None);
        assert_eq!(t.lookup_child(ROOT_INO, "a"), Some(a));
        check_invariants(&t);
    }

    #[test]
    fn lookup_counts_and_forget() {
        let mut t = InodeTable::default();
        let f = t
            .insert_or_update_from_item(ROOT_INO, &file("f", "f", 1))
            .unwrap();
        assert!(t.add_lookup(f));
        assert!(t.add_lookup(f));
        assert!(t.add_lookup(f));
        // In the tree: not dropped even at zero.
        assert!(!t.forget(f, 3));
        assert_eq!(t.get(f).unwrap().lookups(), 0);
        // Over-forgetting saturates instead of panicking.
        assert!(!t.forget(f, 10));
        assert_eq!(t.get(f).unwrap().lookups(), 0);

        // Detached but referenced: alive until the last forget.
        t.add_lookup(f);
        t.add_lookup(f);
        t.remove(f).unwrap();
        assert!(t.get(f).is_some());
        assert_eq!(t.by_box_id("f"), Some(f));
        assert!(!t.forget(f, 1));
        assert!(t.get(f).is_some());
        assert!(t.forget(f, 1));
        assert!(t.get(f).is_none());
        assert_eq!(t.by_box_id("f"), None);
        // Forgetting an unknown inode is harmless.
        assert!(!t.forget(f, 1));
        assert!(!t.add_lookup(f));

        // Detached and unreferenced: dropped at once.
        let g = t
            .insert_or_update_from_item(ROOT_INO, &file("g", "g", 1))
            .unwrap();
        t.remove(g).unwrap();
        assert!(t.get(g).is_none());
        check_invariants(&t);
    }

    #[test]
    fn dropping_a_directory_drops_its_unreferenced_children() {
        let mut t = InodeTable::default();
        let d = t
            .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
            .unwrap();
        let e = t
            .insert_or_update_from_item(d, &folder("e", "e", 1))
            .unwrap();
        let f = t.insert_or_update_from_item(e, &file("f", "f", 1)).unwrap();
        let g = t.insert_or_update_from_item(d, &file("g", "g", 1)).unwrap();
        t.add_lookup(d);
        t.add_lookup(g);
        t.remove(d).unwrap();
        // d is referenced: it and its subtree stay.
        assert!(t.get(e).is_some() && t.get(f).is_some());
        check_invariants(&t);
        t.forget(d, 1);
        assert!(t.get(d).is_none() && t.get(e).is_none() && t.get(f).is_none());
        // g is still referenced by the kernel: detached but alive.
        assert_eq!(t.get(g).unwrap().parent(), None);
        check_invariants(&t);
        t.forget(g, 1);
        assert_eq!(t.len(), 1);
        check_invariants(&t);
    }

    /// A file that becomes a new version of another (an editor's save) takes the other's
    /// id; Box's answers about that item apply whatever `sequence_id` the inode had.
    #[test]
    fn a_rekeyed_inode_takes_the_new_items_answers() {
        let mut t = InodeTable::default();
        let tmp = t
            .insert_or_update_from_item(ROOT_INO, &file("tmp", "tmp", 9))
            .unwrap();
        let target = t
            .insert_or_update_from_item(ROOT_INO, &file("doc", "doc", 2))
            .unwrap();
        t.remove(target).unwrap();
        t.rekey(tmp, "doc").unwrap();
        assert_eq!(t.get(tmp).unwrap().attrs().sequence_id, None);
        assert_eq!(t.get(tmp).unwrap().attrs().version, None);
        let mut uploaded = file("doc", "doc", 3);
        uploaded.size = Some(77);
        assert_eq!(
            t.insert_or_update_from_item(ROOT_INO, &uploaded).unwrap(),
            tmp
        );
        assert_eq!(t.get(tmp).unwrap().attrs().size, 77);
        assert_eq!(t.get(tmp).unwrap().attrs().sequence_id, Some(3));
    }

    #[test]
    fn out_of_order_sequence_id_is_ignored() {
        let mut t = InodeTable::default();
        let d = t
            .insert_or_update_from_item(ROOT_INO, &folder("d", "d", 1))
            .unwrap();
        let f = t
            .insert_or_update_from_item(ROOT_INO, &file("f", "new-name", 5))
            .unwrap();
        let mut old = file("f", "old-name", 4);
        old.size = Some(999);
        assert_eq!(t.insert_or_update_from_item(d, &old).unwrap(), f);
        let inode = t.get(f).unwrap();
        assert_eq!(inode.name(), "new-name");
        assert_eq!(inode.parent(), Some(ROOT_INO));
        assert_eq!(inode.attrs().size, 10);
        assert_eq!(inode.attrs().sequence_id, Some(5));
        // A stale listing neither moves it in nor adds it.
        let diff = t.replace_listing(d, &[old.clone()]).unwrap();
        assert!(diff.is_empty());
        assert!(t.children(d).is_empty());
        // Equal or higher sequence ids apply.
        let mut newer = file("f", "newest", 6);
        newer.size = Some(20);
        t.insert_or_update_from_item(ROOT_INO, &newer).unwrap();
        assert_eq!(t.get(f).unwrap().name(), "newest");
        assert_eq!(t.get(f).unwrap().attrs().size, 20);
        check_invariants(&t);
    }

    #[test]
    fn rename_over_an_existing_target_detaches_it() {
        let mut t = InodeTable::default();
        let a = t
            .insert_or_update_from_item(ROOT_INO, &file("a", "a.txt", 1))
            .unwrap();
        let b = t
            .insert_or_update_from_item(ROOT_INO, &file("b", "b.txt", 1))
            .unwrap();
        t.add_lookup(b);
        let replaced = t.rename(a, ROOT_INO, "B.TXT").unwrap();
        assert_eq!(
            replaced,
            Some(Detached {
                ino: b,
                parent: ROOT_INO,
                name: "b.txt".into()
            })
        );
        assert_eq!(t.lookup_child(ROOT_INO, "b.txt"), Some(a));
        assert_eq!(t.lookup_child(ROOT_INO, "a.txt"), None);
        assert_eq!(t.get(b).unwrap().parent(), None, "kept while referenced");
        t.forget(b, 1);
        assert!(t.get(b).is_none());

        // Box reporting a new item under a name we hold replaces the old inode too.
        let c = t
            .insert_or_update_from_item(ROOT_INO, &file("c", "b.txt", 1))
            .unwrap();
        assert!(t.get(a).is_none(), "unreferenced, replaced: dropped");
        assert_eq!(t.lookup_child(ROOT_INO, "B.txt"), Some(c));
        check_invariants(&t);
    }

    #[test]
    fn root_is_never_dropped() {
        let mut t = InodeTable::new("42");
        t.add_lookup(ROOT_INO);
        assert!(!t.forget(ROOT_INO, 5));
        assert!(!t.forget(ROOT_INO, u64::MAX));
        assert_eq!(t.remove(ROOT_INO), Err(InodeError::Root));
        assert!(t.get(ROOT_INO).is_some());
        // The root's own item updates attributes only.
        let mut root = folder("42", "Some Name", 3);
        root.size = Some(1234);
        assert_eq!(
            t.insert_or_update_from_item(ROOT_INO, &root).unwrap(),
            ROOT_INO
        );
        let r = t.get(ROOT_INO).unwrap();
        assert_eq!(r.parent(), None);
        assert_eq!(r.name(), "");
        assert_eq!(r.attrs().size, 1234);
        // Nor does a listing that mentions the root.
        t.replace_listing(ROOT_INO, &[]).unwrap();
        assert!(t.get(ROOT_INO).is_some());
        check_invariants(&t);
    }

    #[test]
    fn errors_for_unknown_or_non_directory_parents() {
        let mut t = InodeTable::default();
        let f = t
            .insert_or_update_from_item(ROOT_INO, &file("f", "f", 1))
            .unwrap();
        assert_eq!(
            t.insert_or_update_from_item(f, &file("g", "g", 1)),
            Err(InodeError::NotADirectory(f))
        );
        assert_eq!(
            t.insert_or_update_from_item(99, &file("g", "g", 1)),
            Err(InodeError::NoSuchInode(99))
        );
        assert_eq!(t.replace_listing(f, &[]), Err(InodeError::NotADirectory(f)));
        assert_eq!(t.remove(99), Err(InodeError::NoSuchInode(99)));
        assert_eq!(
            t.insert_or_update_from_item(ROOT_INO, &file("g", "", 1)),
            Err(InodeError::EmptyName)
        );
        check_invariants(&t);
    }

    #[test]
    fn names_linux_cannot_show_are_left_out_and_the_rest_lists() {
        let mut t = InodeTable::default();
        let long = "x".repeat(NAME_MAX_CHARS + 1);
        // 255 characters of two bytes: longer than ext4 allows, a name Box takes.
        let longest = "é".repeat(NAME_MAX_CHARS);
        let items = vec![
            file("1", "a/b", 1),
            file("2", "nul\0name", 1),
            file("3", ".", 1),
            file("4", "..", 1),
            file("5", &long, 1),
            file("6", "fine", 1),
            file("7", &longest, 1),
            file("8", "...", 1),
        ];
        let diff = t.replace_listing(ROOT_INO, &items).unwrap();
        assert_eq!(diff.added.len(), 3);
        let mut names: Vec<String> = t
            .children(ROOT_INO)
            .into_iter()
            .map(|ino| t.get(ino).unwrap().name().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["...".to_string(), "fine".into(), longest.clone()]
        );
        assert!(t.lookup_child(ROOT_INO, ".").is_none());
        // A listed file renamed on Box to an unusable name leaves the folder.
        let diff = t
            .replace_listing(ROOT_INO, &[file("6", "x/y", 2), file("7", &longest, 1)])
            .unwrap();
        assert_eq!(diff.removed.len() + diff.moved.len(), 2, "{diff:?}");
        assert!(t.lookup_child(ROOT_INO, "fine").is_none());
        assert!(t.lookup_child(ROOT_INO, "x/y").is_none());
        assert_eq!(
            t.insert_or_update_from_item(ROOT_INO, &file("9", "..", 1)),
            Err(InodeError::UnusableName("..".into()))
        );
        check_invariants(&t);
    }

    #[test]
    fn hundred_thousand_inodes_fit_in_memory() {
        let mut t = InodeTable::default();
        let mut dirs = Vec::new();
        for d in 0..100 {
            let it = folder(&format!("9{d:010}"), &format!("Folder {d}"), 1);
            dirs.push(t.insert_or_update_from_item(ROOT_INO, &it).unwrap());
        }
        let mut n = 0;
        for (d, &dir) in dirs.iter().enumerate() {
            let items: Vec<Item> = (0..1000)
                .map(|i| {
                    n += 1;
                    let mut it = file(&format!("1{n:011}"), &format!("Document {d}-{i}.pdf"), 3);
                    it.sha1 = Some("da39a3ee5e6b4b0d3255bfef95601890afd80709".into());
                    it.file_version = Some(box_client::types::FileVersion {
                        id: format!("2{n:011}"),
                        ..Default::default()
                    });
                    it
                })
                .collect();
            t.replace_listing(dir, &items).unwrap();
        }
        assert_eq!(t.len(), 100_101);
        let bytes = t.approx_heap_bytes();
        println!(
            "100,101 inodes: ~{:.1} MiB heap (~{} bytes/inode; size_of::<Inode>() = {})",
            bytes as f64 / (1024.0 * 1024.0),
            bytes / t.len(),
            std::mem::size_of::<Inode>()
        );
        assert!(bytes < 150 * 1024 * 1024, "{bytes} bytes");
        assert!(t.lookup_child(dirs[7], "document 7-123.PDF").is_some());
    }

    #[test]
    fn eviction_follows_lru_order() {
        let mut t = InodeTable::with_limit("0", 4);
        assert_eq!(t.limit(), 4);
        t.replace_listing(ROOT_INO, &files("f", 3)).unwrap();
        let [f0, f1, f2] = ["f0", "f1", "f2"].map(|id| t.by_box_id(id).unwrap());
        assert!(t.get(ROOT_INO).unwrap().listing_complete());
        assert!(t.take_evicted_parents().is_empty());

        // A lookup hit on f0 makes f1 the least recently used.
        t.touch(f0);
        let n = add(&mut t, ROOT_INO, &file("n", "n", 1));
        assert!(t.get(f1).is_none() && gone(&t, "f1"));
        assert_eq!(t.lookup_child(ROOT_INO, "f1"), None);
        assert_eq!(t.len(), 4);
        assert_eq!(t.evictions(), 1);
        // The partial index must not answer ENOENT any more.
        assert!(!t.get(ROOT_INO).unwrap().listing_complete());
        assert!(!t.listing_fresh(ROOT_INO, Duration::from_secs(60), Instant::now()));
        assert_eq!(t.take_evicted_parents(), vec![ROOT_INO]);
        assert!(t.take_evicted_parents().is_empty());
        check_invariants(&t);

        // An update from Box touches too: f2 becomes recent, f0 goes next.
        add(&mut t, ROOT_INO, &file("f2", "f2", 2));
        add(&mut t, ROOT_INO, &file("m", "m", 1));
        assert!(t.get(f0).is_none());
        assert!(t.get(f2).is_some() && t.get(n).is_some());
        check_invariants(&t);

        // Shrinking the bound evicts at once, oldest first.
        t.set_limit(2);
        assert!(t.get(f2).is_none() && t.get(n).is_none());
        assert_eq!(t.lookup_child(ROOT_INO, "m"), t.by_box_id("m"));
        assert_eq!(t.len(), 2);
        assert_eq!(t.evictions(), 4);
        check_invariants(&t);
    }

    #[test]
    fn referenced_inodes_are_never_evicted() {
        let mut t = InodeTable::with_limit("0", 2);
        let held: Vec<Ino> = files("r", 10)
            .iter()
            .map(|it| {
                let ino = add(&mut t, ROOT_INO, it);
                assert!(t.add_lookup(ino));
                ino
            })
            .collect();
        // Over the limit, but the kernel holds them all.
        assert_eq!(t.len(), 11);
        check_invariants(&t);
        // An insert never evicts the inode it returns...
        let a = add(&mut t, ROOT_INO, &file("a", "a", 1));
        assert!(t.get(a).is_some());
        check_invariants(&t);
        // ...but the next one does, and the referenced ones stay.
        let b = add(&mut t, ROOT_INO, &file("b", "b", 1));
        assert!(t.get(a).is_none() && t.get(b).is_some());
        for &ino in &held {
            assert_eq!(t.get(ino).unwrap().lookups(), 1);
        }
        // Referenced and detached (trashed elsewhere): still kept.
        t.remove(held[0]).unwrap();
        t.set_limit(0);
        assert!(held.iter().all(|&i| t.get(i).is_some()));
        assert!(t.get(b).is_none());
        assert!(t.get(ROOT_INO).is_some(), "the root is never evicted");
        check_invariants(&t);
    }

    #[test]
    fn forget_to_zero_makes_an_inode_evictable() {
        let mut t = InodeTable::with_limit("0", 4);
        let [a, b, c] = ["a", "b", "c"].map(|id| {
            let ino = add(&mut t, ROOT_INO, &file(id, id, 1));
            t.add_lookup(ino);
            ino
        });
        let d = add(&mut t, ROOT_INO, &file("d", "d", 1));
        assert_eq!(t.len(), 5, "d is kept while nothing else can go");
        check_invariants(&t);
        // b joins the candidates as the most recent one: d, older, goes first.
        assert!(!t.forget(b, 1));
        assert!(t.get(d).is_none() && t.get(b).is_some());
        check_invariants(&t);
        let e = add(&mut t, ROOT_INO, &file("e", "e", 1));
        assert!(t.get(b).is_none() && t.get(e).is_some());
        check_invariants(&t);
        // At the limit: forgetting keeps it cached, in LRU order after e.
        assert!(!t.forget(a, 1));
        assert_eq!(t.len(), 4);
        t.set_limit(3);
        assert!(t.get(e).is_none() && t.get(a).is_some());
        let f = add(&mut t, ROOT_INO, &file("f", "f", 1));
        t.add_lookup(f);
        assert!(t.get(a).is_none());
        // Over the limit (the kernel holds c and f): the last forget evicts at once.
        t.set_limit(2);
        assert_eq!(t.len(), 3);
        check_invariants(&t);
        assert!(t.forget(c, 1));
        assert!(t.get(c).is_none());
        check_invariants(&t);
    }

    #[test]
    fn directory_is_evicted_with_its_cached_subtree() {
        let mut t = InodeTable::with_limit("0", 100);
        let d = add(&mut t, ROOT_INO, &folder("d", "d", 1));
        let x = add(&mut t, d, &file("x", "x", 1));
        let e = add(&mut t, d, &folder("e", "e", 1));
        let y = add(&mut t, e, &file("y", "y", 1));
        let f = add(&mut t, ROOT_INO, &file("f", "f", 1));
        t.set_limit(2);
        for ino in [d, x, e, y] {
            assert!(t.get(ino).is_none(), "{ino} evicted");
        }
        assert!(t.get(f).is_some());
        assert_eq!(t.evictions(), 4);
        // Dropped directories are not reported, their surviving parent is.
        assert_eq!(t.take_evicted_parents(), vec![ROOT_INO]);
        check_invariants(&t);
    }

    #[test]
    fn directory_waits_for_its_more_recent_children() {
        let mut t = InodeTable::with_limit("0", 100);
        let d = add(&mut t, ROOT_INO, &folder("d", "d", 1));
        let z = add(&mut t, ROOT_INO, &file("z", "z", 1));
        let x = add(&mut t, d, &file("x", "x", 1));
        // Oldest is d, but x (touched after z) keeps it: z goes instead.
        t.set_limit(3);
        assert!(t.get(z).is_none());
        assert!(t.get(d).is_some() && t.get(x).is_some());
        check_invariants(&t);
        // Once x goes, d (overdue) is next in line.
        let w = add(&mut t, ROOT_INO, &file("w", "w", 1));
        assert!(t.get(x).is_none() && t.get(d).is_some());
        t.set_limit(2);
        assert!(t.get(d).is_none() && t.get(w).is_some());
        check_invariants(&t);

        // A referenced descendant keeps its ancestors until it is forgotten.
        t.set_limit(100);
        let d = add(&mut t, ROOT_INO, &folder("d", "d", 2));
        let e = add(&mut t, d, &folder("e", "e", 1));
        let y = add(&mut t, e, &file("y", "y", 1));
        t.add_lookup(y);
        t.set_limit(1);
        assert!(t.get(d).is_some() && t.get(e).is_some() && t.get(y).is_some());
        assert!(t.get(w).is_none());
        check_invariants(&t);
        assert!(t.forget(y, 1));
        assert!(t.get(e).is_none() && t.get(d).is_none());
        assert_eq!(t.len(), 1);
        check_invariants(&t);
    }

    #[test]
    fn eviction_marks_the_parent_listing_incomplete() {
        let mut t = InodeTable::with_limit("0", 5);
        let d = add(&mut t, ROOT_INO, &folder("d", "d", 1));
        t.replace_listing(d, &files("a", 2)).unwrap();
        assert!(t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
        t.add_lookup(d);
        add(&mut t, ROOT_INO, &file("o1", "o1", 1));
        assert!(t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
        add(&mut t, ROOT_INO, &file("o2", "o2", 1));
        assert!(gone(&t, "a0") && !gone(&t, "a1"));
        let dir = t.get(d).unwrap();
        assert!(!dir.listing_complete());
        assert!(!t.listing_fresh(d, Duration::from_secs(60), Instant::now()));
        assert_eq!(t.take_evicted_parents(), vec![d]);
        // The next listing from Box makes it whole again.
        t.replace_listing(d, &files("a", 2)).unwrap();
        assert!(t.get(d).unwrap().listing_complete());
        check_invariants(&t);
    }

    #[test]
    fn listing_larger_than_the_limit_is_kept_whole_until_the_next_eviction() {
        let mut t = InodeTable::with_limit("0", 10);
        add(&mut t, ROOT_INO, &file("old1", "old1", 1));
        add(&mut t, ROOT_INO, &file("old2", "old2", 1));
        let d = add(&mut t, ROOT_INO, &folder("d", "d", 1));
        let diff = t.replace_listing(d, &files("f", 50)).unwrap();
        assert_eq!(diff.added.len(), 50);
        assert!(
            gone(&t, "old1") && gone(&t, "old2"),
            "older entries go first"
        );
        // Root, d and all fifty entries: a lookup right after the listing finds any name.
        assert_eq!(t.len(), 52);
        assert!(t.lookup_child(d, "f0").is_some());
        assert!(t.get(d).unwrap().listing_complete());
        check_invariants(&t);

        // The next call that evicts takes the listing's first entries, never the directory.
        add(&mut t, ROOT_INO, &file("new", "new", 1));
        assert_eq!(t.len(), 10);
        assert_eq!(t.lookup_child(d, "f0"), None);
        assert!(t.lookup_child(d, "f49").is_some());
        assert!(!t.get(d).unwrap().listing_complete());
        let mut parents = t.take_evicted_parents();
        parents.sort();
        assert_eq!(parents, vec![ROOT_INO, d]);
        check_invariants(&t);

        // Even with no room at all the listing is stored and the directory kept.
        t.set_limit(1);
        assert!(t.get(d).is_none());
        let d = add(&mut t, ROOT_INO, &folder("d", "d", 2));
        assert_eq!(t.replace_listing(d, &files("g", 5)).unwrap().added.len(), 5);
        assert!(t.get(d).is_some_and(|i| i.listing_complete()));
        assert!(t.lookup_child(d, "g4").is_some());
        check_invariants(&t);
    }

    /// The kernel references more inodes than the bound: a new folder's listing must still
    /// answer a lookup in it (it used to be evicted as the only candidate at once).
    #[test]
    fn a_listing_made_while_the_kernel_holds_the_whole_bound_stays_for_its_lookup() {
        let mut t = InodeTable::with_limit("0", 5);
        let a = add(&mut t, ROOT_INO, &folder("a", "a", 1));
        t.add_lookup(a);
        for ino in t.replace_listing(a, &files("f", 10)).unwrap().added {
            t.add_lookup(ino);
        }
        let b = add(&mut t, ROOT_INO, &folder("b", "b", 1));
        assert!(t.get(b).is_some(), "kept by the call that inserted it");
        t.replace_listing(ROOT_INO, &[folder("a", "a", 1), folder("b", "b", 1)])
            .unwrap();
        assert_eq!(t.lookup_child(ROOT_INO, "b"), Some(b));
        assert!(t.get(ROOT_INO).unwrap().listing_complete());
        check_invariants(&t);
    }

    #[test]
    fn bounded_table_stays_within_its_limit() {
        let mut t = InodeTable::with_limit("0", 10_000);
        let mut dirs = Vec::new();
        for d in 0..30 {
            // The kernel holds a directory while it lists it, then lets go.
            let dir = add(
                &mut t,
                ROOT_INO,
                &folder(&format!("d{d}"), &format!("D{d}"), 1),
            );
            t.add_lookup(dir);
            t.replace_listing(dir, &files(&format!("{d}-"), 1000))
                .unwrap();
            t.forget(dir, 1);
            assert!(t.len() <= 10_000);
            dirs.push(dir);
        }
        assert!(t.get(dirs[0]).is_none(), "emptied directories go too");
        assert!(t.get(dirs[29]).is_some_and(|i| i.listing_complete()));
        assert!(t.approx_heap_bytes() < 10 * 1024 * 1024);
        check_invariants(&t);
    }

    #[test]
    fn invariants_hold_under_random_operations() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut t = InodeTable::with_limit("0", rng.gen_range(1..30));
            // What the kernel holds, as the kernel sees it.
            let mut kernel: HashMap<Ino, u64> = HashMap::new();
            let random_item = |rng: &mut StdRng| {
                let n = rng.gen_range(0..60);
                let name = ["a", "B", "c", "D", "e", "F", "g"][rng.gen_range(0..7)];
                let seq = rng.gen_range(1..30);
                if n < 15 {
                    folder(&format!("d{n}"), name, seq)
                } else {
                    file(&format!("f{n}"), name, seq)
                }
            };
            for _ in 0..1500 {
                let mut inos: Vec<Ino> = t.inodes.keys().copied().collect();
                inos.sort_unstable();
                let dirs: Vec<Ino> = inos
                    .iter()
                    .copied()
                    .filter(|&i| t.inodes[&i].is_dir())
                    .collect();
                let any = inos[rng.gen_range(0..inos.len())];
                let dir = dirs[rng.gen_range(0..dirs.len())];
                match rng.gen_range(0..10) {
                    0 | 1 => {
                        let _ = t.insert_or_update_from_item(dir, &random_item(&mut rng));
                    }
                    2 => {
                        let items: Vec<Item> = (0..rng.gen_range(0..8))
                            .map(|_| random_item(&mut rng))
                            .collect();
                        t.replace_listing(dir, &items).unwrap();
                    }
                    3 => {
                        if t.add_lookup(any) {
                            *kernel.entry(any).or_default() += 1;
                        }
                    }
                    4 => {
                        let held: Vec<Ino> = {
                            let mut h: Vec<Ino> = kernel.keys().copied().collect();
                            h.sort_unstable();
                            h
                        };
                        if !held.is_empty() {
                            let ino = held[rng.gen_range(0..held.len())];
                            let n = rng.gen_range(1..=kernel[&ino]);
                            t.forget(ino, n);
                            *kernel.get_mut(&ino).unwrap() -= n;
                            kernel.retain(|_, n| *n > 0);
                        }
                    }
                    5 => {
                        let _ = t.remove(any);
                    }
                    6 => {
                        let name = ["a", "b", "C", "x"][rng.gen_range(0..4)];
                        let _ = t.rename(any, dir, name);
                    }
                    7 => t.touch(any),
                    8 => t.set_limit(rng.gen_range(1..30)),
                    _ => {
                        for p in t.take_evicted_parents() {
                            assert!(t.get(p).is_some());
                        }
                    }
                }
                check_invariants(&t);
                for (&ino, &n) in &kernel {
                    let inode = t.get(ino);
                    assert!(inode.is_some(), "seed {seed}: referenced {ino} was dropped");
                    assert_eq!(inode.unwrap().lookups(), n);
                }
            }
        }
    }

    #[test]
    fn table_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<InodeTable>();
    }

    #[test]
    fn local_files_survive_listings_and_name_clashes_then_rekey() {
        let mut t = InodeTable::new("0");
        let now = SystemTime::now();
        let dir = t
            .insert_or_update_from_item(ROOT_INO, &folder("10", "d", 1))
            .unwrap();
        let local = t.insert_local_file(dir, "new.txt", now).unwrap();
        assert!(t.get(local).unwrap().is_local());
        assert!(t.get(local).unwrap().is_pinned());
        check_invariants(&t);

        // A listing without it leaves it in place; a Box item with its name stays out.
        let diff = t.replace_listing(dir, &[file("11", "other", 1)]).unwrap();
        assert!(diff.removed.is_empty());
        assert_eq!(t.lookup_child(dir, "new.txt"), Some(local));
        t.insert_or_update_from_item(dir, &file("12", "NEW.txt", 1))
            .ok();
        assert_eq!(t.lookup_child(dir, "new.txt"), Some(local));
        assert!(t.by_box_id("12").is_none());
        check_invariants(&t);

        // Uploaded: the same inode under its Box id, attributes from Box once unpinned.
        t.set_local_attrs(local, 42, now);
        t.rekey(local, "13").unwrap();
        assert_eq!(t.by_box_id("13"), Some(local));
        let up = file("13", "new.txt", 3);
        t.insert_or_update_from_item(dir, &up).unwrap();
        assert_eq!(t.get(local).unwrap().attrs().size, 42, "pinned size kept");
        t.set_pinned(local, false);
        t.insert_or_update_from_item(dir, &up).unwrap();
        assert_eq!(t.get(local).unwrap().attrs().size, 10);
        check_invariants(&t);

        // Now an ordinary Box file: a listing without it detaches it.
        t.replace_listing(dir, &[]).unwrap();
        assert!(t.get(local).is_none());
        check_invariants(&t);
    }

    #[test]
    fn rekey_onto_an_existing_id_replaces_that_inode() {
        let mut t = InodeTable::new("0");
        let target = t
            .insert_or_update_from_item(ROOT_INO, &file("20", "doc", 1))
            .unwrap();
        t.add_lookup(target);
        let tmp = t
            .insert_local_file(ROOT_INO, ".doc.swp", SystemTime::now())
            .unwrap();
        t.rekey(tmp, "20").unwrap();
        t.rename(tmp, ROOT_INO, "doc").unwrap();
        assert_eq!(t.by_box_id("20"), Some(tmp));
        assert_eq!(t.lookup_child(ROOT_INO, "doc"), Some(tmp));
        let old = t.get(target).expect("still referenced by the kernel");
        assert!(old.parent().is_none());
        assert_ne!(old.box_id(), "20");
        check_invariants(&t);
        t.forget(target, 1);
        assert!(t.get(target).is_none());
        check_invariants(&t);
    }

    #[test]
    fn pinned_inodes_are_not_evicted() {
        let mut t = InodeTable::with_limit("0", 3);
        let a = t
            .insert_or_update_from_item(ROOT_INO, &file("1", "a", 1))
            .unwrap();
        t.set_pinned(a, true);
        for i in 2..10 {
            t.insert_or_update_from_item(ROOT_INO, &file(&i.to_string(), &format!("f{i}"), 1))
                .unwrap();
        }
        assert!(t.get(a).is_some());
        check_invariants(&t);
        t.set_pinned(a, false);
        for i in 10..14 {
            t.insert_or_update_from_item(ROOT_INO, &file(&i.to_string(), &format!("f{i}"), 1))
                .unwrap();
        }
        assert!(t.get(a).is_none());
        check_invariants(&t);
    }
}
