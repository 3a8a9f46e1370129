//! Updates from Box and our own changes to the tree: an item inserted or updated (by
//! `sequence_id`, never older over newer), removed (remembered for late word of it), renamed.

use super::*;
use crate::fs::tree::posix::PosixAttrs;
use crate::fs::tree::shortcut::{shortcut_len, shown_name};

impl InodeTable {
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

    pub(super) fn upsert(
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
        let shown = shown_name(item);
        if let Some(&ino) = self.by_id.get(item.id.as_str()) {
            // Checked before anything changes: an item renamed to an unusable name must look
            // unseen, so that a listing detaches it.
            if !shown.is_empty() && ino != ROOT_INO {
                check_box_name(&shown)?;
                self.check_link_name_free(parent, Some(ino), Kind::of(item), &shown)?;
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
            let new_name = if shown.is_empty() {
                inode.name.clone()
            } else {
                shown.as_ref().into()
            };
            let in_place = inode.parent == Some(parent) && inode.name == new_name;
            let kind = inode.kind;
            if changed {
                self.journal_item(ino);
            }
            if ino == ROOT_INO {
                return Ok((ino, Outcome::Updated { changed }));
            }
            if in_place {
                self.touch(ino);
                return Ok((ino, Outcome::Updated { changed }));
            }
            if kind == Kind::Dir && self.is_ancestor_or_self(ino, parent) {
                return Err(InodeError::MoveUnderItself);
            }
            let moved = self.relink(ino, parent, new_name, displaced);
            return Ok((ino, Outcome::Moved(moved)));
        }
        check_box_name(&shown)?;
        let kind = Kind::of(item);
        self.check_link_name_free(parent, None, kind, &shown)?;
        let ino = self.allocate_ino(&item.id, kind);
        let mut attrs = Attrs::default();
        apply_attrs(&mut attrs, item);
        let inode = Inode {
            box_id: item.id.as_str().into(),
            kind,
            name: shown.as_ref().into(),
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

    /// A web link never takes its shown name from a file or folder that holds it (a file
    /// named `Manual.url` beside a link named `Manual`): the file stays, the link is left
    /// out of the mount. Another web link holding the name is replaced, as a file is.
    fn check_link_name_free(
        &self,
        parent: Ino,
        ino: Option<Ino>,
        kind: Kind,
        shown: &str,
    ) -> Result<(), InodeError> {
        if kind != Kind::Link {
            return Ok(());
        }
        let holder = self
            .lookup_child(parent, shown)
            .filter(|&h| Some(h) != ino)
            .and_then(|h| self.inodes.get(&h));
        match holder {
            Some(h) if h.kind != Kind::Link => Err(InodeError::NameTaken(shown.into())),
            _ => Ok(()),
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
}

/// [`apply_attrs`] for a pinned inode: size and mtime stay those of the staged data.
pub(super) fn apply_attrs_pinned(attrs: &mut Attrs, item: &Item) -> bool {
    let (size, mtime) = (attrs.size, attrs.mtime);
    let changed = apply_attrs(attrs, item);
    attrs.size = size;
    attrs.mtime = mtime;
    changed
}

/// Copy what `item` says into `attrs`, keeping fields it leaves out (mini representations).
/// Returns true if anything `stat` or cache validation looks at changed.
pub(super) fn apply_attrs(attrs: &mut Attrs, item: &Item) -> bool {
    let before = attrs.clone();
    if let Some(size) = item.size {
        attrs.size = size;
    }
    let modified = parse_time(item.modified_at.as_ref());
    let content_modified = parse_time(item.content_modified_at.as_ref()).or(modified);
    if let Some(t) = content_modified {
        match attrs.mtime_set_here() {
            // Box's answer about the same content (the echo of our own upload, a rename, a
            // metadata change): the time set here stays.
            Some((ours, box_then)) if box_then == Some(t) => attrs.mtime = Some(ours),
            Some(_) => {
                attrs.change_extra(|e| e.mtime_set_here = None);
                attrs.mtime = Some(t);
            }
            None => attrs.mtime = Some(t),
        }
        if attrs.atime.is_none_or(|a| a < t) {
            attrs.atime = Some(t);
        }
    }
    if modified.is_some() {
        // Never backwards: a change made here (a chmod, an entry added) set it to the
        // moment it happened, and Box's `modified_at` of that change, whole seconds, or
        // unmoved by a metadata change, is no later.
        attrs.ctime = attrs.ctime.max(modified);
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
    if let Some(url) = &item.url {
        // A web link: its file is the shortcut made from the URL.
        attrs.size = shortcut_len(url);
        attrs.change_extra(|e| e.target = Some(url.as_str().into()));
    } else if let Some(posix) = PosixAttrs::of(item) {
        // Fetched with its POSIX attributes (`--posix-attributes`): they are current.
        attrs.change_extra(|e| {
            e.mode = posix.mode;
            e.target = posix.symlink.map(Into::into);
            e.uid = posix.uid;
            e.gid = posix.gid;
        });
    }
    let atime_only = |a: &Attrs| Attrs {
        atime: None,
        ..a.clone()
    };
    atime_only(attrs) != atime_only(&before)
}
