//! Folder listings stored page by page: begun, merged a page at a time while the table stays
//! usable, finished by removing only what the table has not heard of since the listing began.

use super::*;

impl InodeTable {
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
    /// items are added, renamed or moved-in ones updated, stale ones ignored, and so are
    /// items [`remove`](Self::remove)d since the listing began (the page is older than the
    /// removal). Returns the inodes of the page's items that are now children of `parent`
    /// (an item whose name a local file holds is not, nor a web link whose name a file
    /// holds), in page order. The entries are touched in page order, then `parent`; nothing
    /// is evicted or removed before [`finish_listing`](Self::finish_listing).
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
            if !(item.is_file() || item.is_folder() || item.is_web_link()) {
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
            let displaced_before = merge.diff.removed.len();
            let (ino, outcome) = match self.upsert(parent, item, now, &mut merge.diff.removed) {
                Ok(r) => r,
                Err(e @ (InodeError::UnusableName(_) | InodeError::NameTaken(_))) => {
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
            // A web link this listing showed, whose name a file of the listing took: it is
            // left out, which must not make the listing look incomplete.
            for d in &merge.diff.removed[displaced_before..] {
                if self
                    .inodes
                    .get(&d.ino)
                    .is_some_and(|i| i.kind == Kind::Link)
                {
                    merge.seen.remove(&d.ino);
                }
            }
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
        if whole {
            // The store drops the rows under a complete listing that the batch does not
            // write, so every child is written with it.
            for &child in &seen {
                self.journal_item(child);
            }
        }
        self.journal_listing(parent, whole);
        self.touch(parent);
        // The listing itself is spared: the caller is about to look a name up in it, and
        // evicting its children now would make that name missing from a listing just made.
        self.evict_excess_sparing(|t, victim| {
            victim == parent || t.inodes.get(&victim).and_then(|i| i.parent) == Some(parent)
        });
        Ok(diff)
    }
}
