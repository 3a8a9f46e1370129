//! Local files (created here, not uploaded yet) and staged writes: local ids, re-keying to
//! the Box id after the upload, pinned attributes.

use super::*;

impl InodeTable {
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
        // The item `ino` was loses its row: the store's listing of its folder is no longer
        // known to be complete.
        if !is_local_id(&self.inodes[&ino].box_id) && *self.inodes[&ino].box_id != *box_id {
            if let Some(parent) = self.inodes[&ino].parent {
                self.journal_listing(parent, false);
            }
            self.journal_item(ino);
        }
        let inode = self.inodes.get_mut(&ino).expect("checked");
        let old_sequence_id = inode.attrs.sequence_id;
        let old = std::mem::replace(&mut inode.box_id, box_id.into());
        if *old != *box_id && !is_local_id(&old) {
            // The Box item `ino` was is out of the tree now (the temporary file an editor
            // saved and renamed over the target, trashed by the caller): Box's late word of
            // it, such as its upload's event, must not bring it back under its old name.
            let removal = Removal {
                at: Instant::now(),
                sequence_id: old_sequence_id,
            };
            self.removed_at.put(old.clone(), removal);
        }
        let inode = self.inodes.get_mut(&ino).expect("checked");
        if *old != *box_id {
            let a = &mut inode.attrs;
            a.etag = None;
            a.sequence_id = None;
            a.version = None;
            a.sha1 = None;
        }
        self.by_id.remove(&old);
        self.by_id.insert(box_id.into(), ino);
        self.journal_item(ino);
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
            self.journal_item(ino);
            self.touch(ino);
        }
    }

    /// The size and mtime of staged data (the inode should be pinned, or Box's next answer
    /// replaces them).
    pub fn set_local_attrs(&mut self, ino: Ino, size: u64, mtime: SystemTime, now: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.attrs.size = size;
            inode.attrs.mtime = Some(mtime);
        }
        self.note_changed(ino, now);
    }

    /// `ino` itself changed through this mount (its times set, renamed, written): its change
    /// time moves to `now`, never backwards, in memory only (Box keeps no change time; its
    /// next answer about the item carries no later one).
    pub fn note_changed(&mut self, ino: Ino, now: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.attrs.ctime = Some(inode.attrs.ctime.map_or(now, |c| c.max(now)));
        }
    }

    /// Directory `dir` gained or lost an entry through this mount: its modification and
    /// change times move, as POSIX says, in memory only (Box's own folder times come with
    /// its next answer).
    pub fn note_entries_changed(&mut self, dir: Ino, now: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&dir) {
            inode.attrs.mtime = Some(now);
            inode.attrs.ctime = Some(now);
        }
    }

    /// An mtime set by `utimens` on an item without new content: kept in memory only, until
    /// Box's answers carry another time of the item's content (see
    /// [`Extra::mtime_set_here`]).
    pub fn set_mtime(&mut self, ino: Ino, mtime: SystemTime) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let attrs = &mut inode.attrs;
            let box_mtime = match attrs.mtime_set_here() {
                Some((_, box_mtime)) => box_mtime,
                None => attrs.mtime,
            };
            attrs.mtime = Some(mtime);
            attrs.change_extra(|e| e.mtime_set_here = Some((mtime, box_mtime)));
        }
    }
}
