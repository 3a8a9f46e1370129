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
//! parent and is never dropped. A Box web link is an inode of [`Kind::Link`] named as its
//! shortcut file shows (`NAME.url`, see `tree::shortcut`); a file or folder holding that name
//! keeps it, and the link is left out.
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

mod eviction;
mod journal;
mod listings;
mod local;
mod lookups;
mod names;
mod updates;

pub use journal::{derived_ino, COUNTER_INOS, TRASH_INO, TRASH_LINK_INO, VIRTUAL_INOS};
use names::fold;
pub use names::{check_box_name, NAME_MAX_BYTES, NAME_MAX_CHARS};

pub use crate::fs::kernel::{Ino, ROOT_INO};

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
    /// A web link (Box's bookmark): a read-only regular file `NAME.url` whose content, an
    /// Internet shortcut, is made here from its URL (see [`shortcut`]).
    Link,
}

impl Kind {
    /// Folders are directories, files regular files, web links shortcut files.
    pub fn of(item: &Item) -> Kind {
        if item.is_folder() {
            Kind::Dir
        } else if item.is_web_link() {
            Kind::Link
        } else {
            Kind::File
        }
    }

    /// Box's name of the kind (the `type` of its items).
    pub fn box_type(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "folder",
            Kind::Link => "web_link",
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
    /// What few items have (a web link's URL, attributes kept with `--posix-attributes`),
    /// boxed so that the others pay one pointer for it.
    pub extra: Option<Box<Extra>>,
}

/// The attributes of [`Attrs::extra`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// Where the item points: a web link's URL, a symbolic link's target.
    pub target: Option<Box<str>>,
    /// The POSIX mode kept on Box, file type bits included; `None` shows the mount's
    /// defaults.
    pub mode: Option<u32>,
    /// The owner and group kept on Box; `None` shows the mount's.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// A modification time set here (`touch -d`, `utimensat`) on an item with no new
    /// content, which Box cannot take: kept, in memory, for as long as Box's own time of the
    /// item's content stays the one it had then (`.1`).
    pub mtime_set_here: Option<(SystemTime, Option<SystemTime>)>,
}

impl Attrs {
    pub fn target(&self) -> Option<&str> {
        self.extra.as_ref()?.target.as_deref()
    }

    pub fn mode(&self) -> Option<u32> {
        self.extra.as_ref()?.mode
    }

    pub fn uid(&self) -> Option<u32> {
        self.extra.as_ref()?.uid
    }

    pub fn gid(&self) -> Option<u32> {
        self.extra.as_ref()?.gid
    }

    /// See [`Extra::mtime_set_here`].
    pub fn mtime_set_here(&self) -> Option<(SystemTime, Option<SystemTime>)> {
        self.extra.as_ref()?.mtime_set_here
    }

    /// Changes [`Attrs::extra`], which is kept only while it holds something.
    pub fn change_extra(&mut self, change: impl FnOnce(&mut Extra)) {
        let mut extra = self.extra.take().map(|b| *b).unwrap_or_default();
        change(&mut extra);
        if extra != Extra::default() {
            self.extra = Some(Box::new(extra));
        }
    }
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
    /// A web link whose shown name a file or folder of its folder holds.
    #[error("'{0}' is the name of a file or folder beside this web link")]
    NameTaken(Box<str>),
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
    /// Next number to hand out to an item whose number is not derived from its Box id (see
    /// `journal.rs`); these are never reused within a mount.
    next_ino: Ino,
    /// Changes the metadata store has not written yet (`None`: no store).
    journal: Option<journal::Journal>,
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

pub(crate) fn parse_time(s: Option<&String>) -> Option<SystemTime> {
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
            next_ino: COUNTER_INOS,
            journal: None,
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

    /// How many children the table holds of `parent` (0 for a file or an unknown inode).
    pub fn child_count(&self, parent: Ino) -> usize {
        self.inodes
            .get(&parent)
            .and_then(|i| i.dir.as_ref())
            .map_or(0, |d| d.children.len())
    }

    /// The children of a directory, in no particular order (empty for files and unknowns).
    pub fn children(&self, parent: Ino) -> Vec<Ino> {
        self.inodes
            .get(&parent)
            .and_then(|i| i.dir.as_ref())
            .map(|d| d.children.values().copied().collect())
            .unwrap_or_default()
    }

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
        self.journal_listing(ino, false);
    }

    /// Box keeps no access time; the filesystem may track one in memory.
    pub fn set_atime(&mut self, ino: Ino, atime: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.attrs.atime = Some(atime);
        }
    }

    /// Records POSIX attributes just written to Box (`--posix-attributes`), and the change
    /// time of the change (Box's own times do not move for a metadata change).
    pub fn set_posix(&mut self, ino: Ino, change: impl FnOnce(&mut Extra), ctime: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            if inode.kind != Kind::Link {
                inode.attrs.change_extra(change);
            }
            inode.attrs.ctime = Some(ctime);
            self.journal_item(ino);
        }
    }

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
        self.journal_item(ino);
        self.touch(ino);
    }

    /// Unlink `ino` from its parent's index; returns where it was. It stops being an
    /// eviction candidate; a parent left childless while overdue is next in line.
    fn detach(&mut self, ino: Ino) -> Option<Detached> {
        let inode = self.inodes.get_mut(&ino)?;
        let parent = inode.parent.take()?;
        self.lru.pop(&ino);
        let name = inode.name.clone();
        self.journal_item(ino);
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
                    self.journal_item(child);
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

#[cfg(test)]
mod tests;
