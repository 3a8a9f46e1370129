//! What the table changed since the metadata store last wrote it (`crate::fs::store`), and
//! how Box ids become inode numbers that stay the same at every mount.
//!
//! **The journal.** Off unless [`InodeTable::keep_journal`] turned it on (a mount without a
//! store pays nothing). Every change to an item's place or attributes marks its Box id; the
//! store writer takes a [`StoreBatch`] ([`InodeTable::take_store_batch`]) that reads each
//! marked id's inode as it is *then*: attached, it is a row to write; gone or detached, its
//! row goes. Evicting an inode is not a removal: its row stays, and if it was marked, the row
//! it had is kept in the journal for the next batch. Local files (not on Box yet) and files
//! with staged writes (their size and mtime are not Box's) are not written, and the stored
//! listing of a folder holding a file with staged writes is not complete (the store may have
//! no row for it: a file just uploaded and still held). Listings
//! becoming complete or stale, "every listing stale" and the event stream position ride in
//! the same batch, so the position is saved together with the changes it covers.
//!
//! **Stable inode numbers.** A Box id is a decimal number, and file, folder and web link ids
//! are separate sequences, so `4 + 4 × id + kind` (0 for a file, 1 for a folder, 2 for a web
//! link) is unique and the same at every mount: the store needs to keep no inode number. An
//! id that is not a number, too large, or whose number is held by another inode (an old item
//! replaced by a rename while still open), and local files, get numbers from
//! [`COUNTER_INOS`] on; the virtual history folders from [`VIRTUAL_INOS`] on.

use super::*;
use crate::fs::store::{StoreBatch, StoredItem, StoredKind, Touched};

/// Where numbers not derived from a Box id start: above every derived one.
pub const COUNTER_INOS: Ino = 1 << 62;

/// Where the numbers of the virtual history folders start (`crate::fs::history`: `.trash`,
/// `.versions` and what is below them): far above the counter's, so the two never meet.
/// They are never journaled or stored.
pub const VIRTUAL_INOS: Ino = COUNTER_INOS + (1 << 61);

/// The trash's folder at the mount's root: a fixed number, so that the events task can tell
/// the kernel (and the trash's own cache, on the same path) that the trash changed.
pub const TRASH_INO: Ino = VIRTUAL_INOS;

/// `.trash` in the root's listing, the symbolic link to the trash's folder.
pub const TRASH_LINK_INO: Ino = VIRTUAL_INOS + 1;

/// Ids up to this derive their inode number.
const MAX_DERIVED_ID: u64 = (COUNTER_INOS - 8) / 4;

/// The inode number Box id `box_id` of `kind` has at every mount, if it has one.
pub fn derived_ino(box_id: &str, kind: Kind) -> Option<Ino> {
    let id: u64 = box_id.parse().ok().filter(|&n| n <= MAX_DERIVED_ID)?;
    let code = match kind {
        Kind::File => 0,
        Kind::Dir => 1,
        Kind::Link => 2,
    };
    Some(4 + 4 * id + code)
}

/// One marked item.
#[derive(Debug)]
enum Pending {
    /// Read the inode when the batch is taken.
    Live,
    /// Evicted since it was marked: the row as it was.
    Evicted(Box<StoredItem>),
}

/// The changes not written yet.
#[derive(Debug, Default)]
pub(super) struct Journal {
    items: HashMap<Box<str>, Pending>,
    listings: HashMap<Box<str>, bool>,
    touched: Touched,
    all_listings_stale: bool,
    position: Option<String>,
}

impl InodeTable {
    /// A number for a new inode of Box id `box_id`: the derived one when free.
    pub(super) fn allocate_ino(&mut self, box_id: &str, kind: Kind) -> Ino {
        if let Some(ino) = derived_ino(box_id, kind).filter(|i| !self.inodes.contains_key(i)) {
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    /// Starts journaling changes for the metadata store.
    pub fn keep_journal(&mut self) {
        self.journal.get_or_insert_with(Journal::default);
    }

    /// Marks `ino`'s item changed (its row is read when the batch is taken).
    pub(super) fn journal_item(&mut self, ino: Ino) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        if let Some(inode) = self.inodes.get(&ino) {
            if !inode.is_local() {
                journal.items.insert(inode.box_id.clone(), Pending::Live);
            }
        }
    }

    /// Marks `ino`'s listing complete or stale in the store.
    pub(super) fn journal_listing(&mut self, ino: Ino, complete: bool) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        if let Some(inode) = self.inodes.get(&ino) {
            journal.listings.insert(inode.box_id.clone(), complete);
        }
    }

    /// An event was about item `box_id`, now in folder `parent` if the event says: the stored
    /// listings it may have changed become stale (see [`Touched`]).
    pub fn journal_touched(&mut self, box_id: &str, parent: Option<&str>) {
        if let Some(journal) = &mut self.journal {
            journal.touched.note(box_id, parent);
        }
    }

    /// Every listing in the store becomes stale (the event stream lost track).
    pub fn journal_all_listings_stale(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.all_listings_stale = true;
            journal.listings.clear();
        }
    }

    /// The event stream position everything applied to the table so far is current to.
    pub fn note_stream_position(&mut self, position: &str) {
        if let Some(journal) = &mut self.journal {
            journal.position = Some(position.to_string());
        }
    }

    /// Whether `ino`'s item has a change not written yet.
    pub(super) fn journal_has(&self, ino: Ino) -> bool {
        let (Some(journal), Some(inode)) = (&self.journal, self.inodes.get(&ino)) else {
            return false;
        };
        journal.items.contains_key(&inode.box_id)
    }

    /// After `box_id` was evicted: its row stays as `row` was (marked) or as the store has
    /// it (not marked).
    pub(super) fn journal_evicted(&mut self, box_id: &str, row: Option<StoredItem>) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        match row {
            Some(row) => journal
                .items
                .insert(box_id.into(), Pending::Evicted(Box::new(row))),
            None => journal.items.remove(box_id),
        };
    }

    /// The row `ino` has in the store now: `None` if it has none (detached, local, staged).
    pub(super) fn stored_row(&self, ino: Ino) -> Option<StoredItem> {
        let inode = self.inodes.get(&ino)?;
        if inode.is_local() || inode.pinned {
            return None;
        }
        let parent_id = match inode.parent {
            Some(p) => Some(self.inodes.get(&p)?.box_id.to_string()),
            None if ino == ROOT_INO => None,
            None => return None,
        };
        let a = &inode.attrs;
        Some(StoredItem {
            id: inode.box_id.to_string(),
            kind: match inode.kind {
                Kind::File => StoredKind::File,
                Kind::Dir => StoredKind::Folder,
                Kind::Link => StoredKind::WebLink,
            },
            parent_id,
            name: inode.name.to_string(),
            size: a.size,
            mtime: a.mtime,
            ctime: a.ctime,
            etag: a.etag.as_deref().map(str::to_string),
            sequence_id: a.sequence_id,
            version: a.version.as_deref().map(str::to_string),
            sha1: a.sha1.as_deref().map(str::to_string),
            target: a.target().map(str::to_string),
            mode: a.mode(),
            uid: a.uid(),
            gid: a.gid(),
        })
    }

    /// Takes what changed since the last batch (`None` if nothing did, or no journal is kept).
    pub fn take_store_batch(&mut self) -> Option<StoreBatch> {
        let journal = self.journal.as_mut()?;
        if journal.items.is_empty()
            && journal.listings.is_empty()
            && journal.touched.is_empty()
            && !journal.all_listings_stale
            && journal.position.is_none()
        {
            return None;
        }
        let taken = std::mem::take(journal);
        let mut batch = StoreBatch {
            all_listings_stale: taken.all_listings_stale,
            position: taken.position,
            touched: taken.touched,
            ..StoreBatch::default()
        };
        let mut listings = taken.listings;
        for (id, pending) in taken.items {
            match pending {
                Pending::Evicted(row) => batch.upserts.push(*row),
                Pending::Live => {
                    let live = self.by_id.get(&id).copied();
                    match live.map(|ino| (ino, self.stored_row(ino))) {
                        Some((_, Some(row))) => batch.upserts.push(row),
                        // Staged writes: Box's row stays until the upload answers. The store
                        // may have no row for it at all (a file just uploaded, still held
                        // for a rename), so its folder's stored listing is not complete: a
                        // mount after a crash or an unmount lists that folder from Box.
                        Some((ino, None)) if self.inodes[&ino].pinned => {
                            batch.kept.push(id.to_string());
                            let parent = self.inodes[&ino].parent;
                            if let Some(p) = parent.and_then(|p| self.inodes.get(&p)) {
                                listings.insert(p.box_id.clone(), false);
                            }
                        }
                        _ => batch.deletes.push(id.to_string()),
                    }
                }
            }
        }
        // Parents before children, so a reader never sees a row under a missing parent.
        batch.upserts.sort_by_key(|r| r.parent_id.is_some());
        batch.listings = listings
            .into_iter()
            .map(|(id, complete)| (id.to_string(), complete))
            .collect();
        Some(batch)
    }

    /// Stores the complete listing of `parent` that the metadata store kept: children the
    /// table does not hold come back with their stored attributes (fetched now: the store is
    /// as current as the event stream), those it holds keep what the table knows (it is
    /// newer), and items removed recently stay out. The listing counts as complete and
    /// fresh. Nothing is journaled: the store has it all already. Returns the new inodes.
    pub fn merge_stored_listing(
        &mut self,
        parent: Ino,
        rows: &[StoredItem],
    ) -> Result<Vec<Ino>, InodeError> {
        self.check_dir(parent)?;
        let journal = self.journal.take();
        let now = Instant::now();
        let mut added = Vec::new();
        for row in rows {
            if self.by_id.contains_key(row.id.as_str())
                || self.removed_at.peek(row.id.as_str()).is_some()
                || check_box_name(&row.name).is_err()
                || self.lookup_child(parent, &row.name).is_some()
            {
                continue;
            }
            let kind = match row.kind {
                StoredKind::File => Kind::File,
                StoredKind::Folder => Kind::Dir,
                StoredKind::WebLink => Kind::Link,
            };
            let ino = self.allocate_ino(&row.id, kind);
            let inode = Inode {
                box_id: row.id.as_str().into(),
                kind,
                name: row.name.as_str().into(),
                parent: None,
                lookups: 0,
                attrs: stored_attrs(row),
                attrs_fetched: Some(now),
                dir: (kind == Kind::Dir).then(Box::default),
                pinned: false,
            };
            self.by_id.insert(row.id.as_str().into(), ino);
            self.inodes.insert(ino, inode);
            let mut displaced = Vec::new();
            self.attach(parent, ino, &mut displaced);
            added.push(ino);
        }
        let dir = self.inodes.get_mut(&parent).and_then(|i| i.dir.as_mut());
        let dir = dir.expect("checked to be a directory");
        dir.listing_complete = true;
        dir.listing_fetched = Some(now);
        self.touch(parent);
        self.journal = journal;
        self.evict_excess_sparing(|t, victim| {
            victim == parent || t.inodes.get(&victim).and_then(|i| i.parent) == Some(parent)
        });
        Ok(added)
    }

    /// Gives `ino` the attributes of its stored row if Box never gave it any in this
    /// mount: the root of a mount started offline. Returns whether it did.
    pub fn restore_stored_attrs(&mut self, ino: Ino, row: &StoredItem) -> bool {
        match self.inodes.get_mut(&ino) {
            Some(inode) if inode.attrs_fetched.is_none() && *inode.box_id == *row.id => {
                inode.attrs = stored_attrs(row);
                true
            }
            _ => false,
        }
    }
}

/// The attributes a stored row keeps.
fn stored_attrs(row: &StoredItem) -> Attrs {
    Attrs {
        size: row.size,
        mtime: row.mtime,
        ctime: row.ctime,
        atime: row.mtime,
        etag: row.etag.as_deref().map(Into::into),
        sequence_id: row.sequence_id,
        version: row.version.as_deref().map(Into::into),
        sha1: row.sha1.as_deref().map(Into::into),
        extra: Some(Box::new(Extra {
            target: row.target.as_deref().map(Into::into),
            mode: row.mode,
            uid: row.uid,
            gid: row.gid,
            mtime_set_here: None,
        }))
        .filter(|e| **e != Extra::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tree::inode::tests::item;

    fn journaled() -> InodeTable {
        let mut t = InodeTable::new("0");
        t.keep_journal();
        t
    }

    fn ids(rows: &[StoredItem]) -> Vec<&str> {
        let mut v: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn inode_numbers_follow_box_ids_and_kinds() {
        let mut t = InodeTable::new("0");
        let a = t
            .insert_or_update_from_item(ROOT_INO, &item("folder", "7", "a", 1))
            .unwrap();
        let f = t
            .insert_or_update_from_item(a, &item("file", "8", "f", 1))
            .unwrap();
        assert_eq!(a, derived_ino("7", Kind::Dir).unwrap());
        assert_eq!(f, derived_ino("8", Kind::File).unwrap());
        assert_ne!(derived_ino("7", Kind::File), derived_ino("7", Kind::Dir));
        let odd = t
            .insert_or_update_from_item(ROOT_INO, &item("file", "x1", "odd", 1))
            .unwrap();
        assert!(odd >= COUNTER_INOS);
        let local = t
            .insert_local_file(ROOT_INO, "new", SystemTime::now())
            .unwrap();
        assert!(local >= COUNTER_INOS && local != odd);
    }

    #[test]
    fn no_journal_no_batch() {
        let mut t = InodeTable::new("0");
        t.insert_or_update_from_item(ROOT_INO, &item("file", "5", "f", 1))
            .unwrap();
        t.note_stream_position("9");
        assert_eq!(t.take_store_batch(), None);
    }

    #[test]
    fn changes_become_rows_and_removals_deletes() {
        let mut t = journaled();
        let a = t
            .insert_or_update_from_item(ROOT_INO, &item("folder", "1", "a", 1))
            .unwrap();
        let f = t
            .insert_or_update_from_item(a, &item("file", "2", "f", 1))
            .unwrap();
        t.replace_listing(a, &[item("file", "2", "f", 1)]).unwrap();
        t.note_stream_position("40");
        let b = t.take_store_batch().unwrap();
        assert_eq!(ids(&b.upserts), vec!["1", "2"]);
        assert_eq!(b.listings, vec![("1".to_string(), true)]);
        assert_eq!(b.position.as_deref(), Some("40"));
        assert_eq!(t.take_store_batch(), None, "taken once");

        // The same listing again writes its children with it (the store drops any other
        // row under a complete listing), and deletes nothing.
        t.replace_listing(a, &[item("file", "2", "f", 1)]).unwrap();
        let b = t.take_store_batch().unwrap();
        assert_eq!(ids(&b.upserts), vec!["2"]);
        assert!(b.deletes.is_empty());

        t.rename(f, ROOT_INO, "g").unwrap();
        let b = t.take_store_batch().unwrap();
        assert_eq!(b.upserts.len(), 1);
        assert_eq!(b.upserts[0].parent_id.as_deref(), Some("0"));
        assert_eq!(b.upserts[0].name, "g");

        t.remove(a).unwrap();
        let b = t.take_store_batch().unwrap();
        assert_eq!(b.deletes, vec!["1".to_string()]);
        assert_eq!(b.listings, vec![("1".to_string(), false)]);
    }

    #[test]
    fn a_file_held_for_staged_writes_keeps_its_folder_listing_incomplete() {
        let mut t = journaled();
        let a = t
            .insert_or_update_from_item(ROOT_INO, &item("folder", "1", "a", 1))
            .unwrap();
        t.replace_listing(a, &[]).unwrap();
        t.take_store_batch().unwrap();
        // Created here, uploaded, still held (pinned) for a rename that may follow.
        let f = t.insert_local_file(a, "new", SystemTime::now()).unwrap();
        t.set_pinned(f, true);
        t.rekey(f, "2").unwrap();
        t.insert_or_update_from_item(a, &item("file", "2", "new", 1))
            .unwrap();
        let b = t.take_store_batch().unwrap();
        assert!(b.upserts.iter().all(|r| r.id != "2"), "no row while held");
        assert_eq!(b.kept, vec!["2".to_string()]);
        assert_eq!(
            b.listings,
            vec![("1".to_string(), false)],
            "the store has no row for it: its folder must be listed again"
        );
        // Let go: its row is written.
        t.set_pinned(f, false);
        let b = t.take_store_batch().unwrap();
        assert_eq!(ids(&b.upserts), vec!["2"]);
    }

    #[test]
    fn eviction_keeps_the_row() {
        let mut t = journaled();
        t.set_limit(3);
        t.insert_or_update_from_item(ROOT_INO, &item("file", "1", "a", 1))
            .unwrap();
        t.take_store_batch();
        // Changed, then evicted before the batch was taken: the changed row is written.
        t.insert_or_update_from_item(ROOT_INO, &item("file", "1", "a", 2))
            .unwrap();
        t.insert_or_update_from_item(ROOT_INO, &item("file", "2", "b", 1))
            .unwrap();
        t.insert_or_update_from_item(ROOT_INO, &item("file", "3", "c", 1))
            .unwrap();
        assert!(t.by_box_id("1").is_none(), "evicted");
        let b = t.take_store_batch().unwrap();
        assert!(b.deletes.is_empty(), "eviction deletes nothing: {b:?}");
        let a = b.upserts.iter().find(|r| r.id == "1").unwrap();
        assert_eq!(a.sequence_id, Some(2));
        // Evicted unchanged: nothing to write.
        t.insert_or_update_from_item(ROOT_INO, &item("file", "4", "d", 1))
            .unwrap();
        let b = t.take_store_batch().unwrap();
        assert_eq!(ids(&b.upserts), vec!["4"]);
        assert!(b.deletes.is_empty());
    }

    #[test]
    fn a_stored_listing_comes_back_complete_without_journaling() {
        let mut t = journaled();
        let a = t
            .insert_or_update_from_item(ROOT_INO, &item("folder", "1", "a", 1))
            .unwrap();
        t.take_store_batch();
        let row = |id: &str, name: &str| StoredItem {
            id: id.into(),
            parent_id: Some("1".into()),
            name: name.into(),
            size: 4,
            sequence_id: Some(1),
            ..StoredItem::default()
        };
        let added = t
            .merge_stored_listing(a, &[row("2", "x"), row("3", "y")])
            .unwrap();
        assert_eq!(added.len(), 2);
        assert_eq!(added[0], derived_ino("2", Kind::File).unwrap());
        assert!(t.get(a).unwrap().listing_complete());
        assert!(t.lookup_child(a, "y").is_some());
        assert_eq!(t.take_store_batch(), None);
        // A removed item does not come back from the store.
        let x = t.by_box_id("2").unwrap();
        t.remove(x).unwrap();
        t.invalidate_listing(a);
        t.merge_stored_listing(a, &[row("2", "x"), row("3", "y")])
            .unwrap();
        assert!(t.lookup_child(a, "x").is_none());
    }
}
