//! Open directories: the entries a reader pages through with offsets. A handle opened on a
//! fresh listing is complete at once. One opened while the listing is still being fetched
//! fills a page at a time, so `ls` works through the first thousand entries while the next
//! thousand are on their way; a reader that gets ahead of the listing waits for it.
//!
//! Entries only ever grow at the end, so an offset means the same entry for the whole life
//! of the handle. Every entry is pinned in the inode table (one reference) while the handle is
//! open, because a readdirplus reply hands the kernel a reference to each and none may be
//! evicted meanwhile. Lock order: the inode table before a handle's fill.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::fs::errno::FsError;
use crate::fs::tree::attr::FsAttr;
use crate::fs::tree::inode::{Ino, InodeTable, VIRTUAL_INOS};
use crate::fs::{lock, DirEntry};

/// An open directory.
#[derive(Debug)]
pub struct DirHandle {
    pub ino: Ino,
    pub parent: Ino,
    /// The directory's own attributes, for "." in readdirplus.
    pub attr: FsAttr,
    /// The directory's [`names_generation`](crate::fs::kernel::KernelQueue::names_generation)
    /// when it was opened: names invalidated since may still be among the entries.
    pub names_generation: u64,
    fill: Mutex<Fill>,
    /// Bumped whenever entries are added or the fill ends.
    progress: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Fill {
    /// The entries so far, a page (an `Arc`, cheap to hand out) at a time.
    pages: Vec<Arc<[DirEntry]>>,
    len: usize,
    present: HashSet<Ino>,
    /// `Some` once no entry will be added: the listing's outcome.
    done: Option<Result<(), FsError>>,
    /// Released: entries arriving later are not pinned (nobody would unpin them).
    closed: bool,
    /// Names left out of the listing: Box items the mount's own entries shadow.
    hidden: &'static [&'static str],
}

/// What a reader sees of an open directory at one moment.
#[derive(Debug, Clone)]
pub struct DirView {
    pub ino: Ino,
    pub parent: Ino,
    pub attr: FsAttr,
    pub names_generation: u64,
    pages: Vec<Arc<[DirEntry]>>,
    len: usize,
    /// `None` while more entries may come.
    pub done: Option<Result<(), FsError>>,
}

impl DirView {
    /// Entry `index` (0 is the first entry after "." and "..").
    pub fn get(&self, mut index: usize) -> Option<&DirEntry> {
        for page in &self.pages {
            if index < page.len() {
                return Some(&page[index]);
            }
            index -= page.len();
        }
        None
    }

    /// The entries from `index` on, each with its index: finds the page once, then walks
    /// (a reply hands out its entries in order, so `get` per entry would search every time).
    pub fn entries_from(&self, index: usize) -> impl Iterator<Item = (usize, &DirEntry)> {
        let mut skip = index;
        let mut first_page = self.pages.len();
        for (p, page) in self.pages.iter().enumerate() {
            if skip < page.len() {
                first_page = p;
                break;
            }
            skip -= page.len();
        }
        self.pages[first_page..]
            .iter()
            .flat_map(|page| page.iter())
            .skip(skip)
            .zip(index..)
            .map(|(entry, i)| (i, entry))
    }

    /// Whether entry `index` can be answered now: it exists, or no more will come.
    pub fn can_answer(&self, index: usize) -> bool {
        index < self.len || self.done.is_some()
    }
}

impl DirHandle {
    /// A handle whose entries will be added with [`add`](Self::add) and ended with
    /// [`finish`](Self::finish).
    pub fn filling(ino: Ino, parent: Ino, attr: FsAttr, names_generation: u64) -> DirHandle {
        DirHandle {
            ino,
            parent,
            attr,
            names_generation,
            fill: Mutex::new(Fill::default()),
            progress: watch::Sender::new(0),
        }
    }

    /// Appends `entries` not present yet, pinning each in `table` (unless the handle was
    /// released meanwhile).
    pub fn add(&self, table: &mut InodeTable, entries: Vec<DirEntry>) {
        let mut fill = lock(&self.fill);
        if fill.done.is_some() {
            return;
        }
        let hidden = fill.hidden;
        let fresh: Vec<DirEntry> = entries
            .into_iter()
            .filter(|e| !hidden.contains(&&*e.name) && fill.present.insert(e.attr.ino))
            .collect();
        if fresh.is_empty() {
            return;
        }
        if !fill.closed {
            for e in &fresh {
                table.add_lookup(e.attr.ino);
            }
        }
        fill.len += fresh.len();
        fill.pages.push(fresh.into());
        drop(fill);
        self.progress.send_modify(|n| *n += 1);
    }

    /// Hands out the mount's own `entries` (virtual inodes, which the table does not hold)
    /// and leaves the `hidden` names out of everything added later. Called before any
    /// [`add`](Self::add).
    pub fn add_own(&self, entries: Vec<DirEntry>, hidden: &'static [&'static str]) {
        let mut fill = lock(&self.fill);
        fill.hidden = hidden;
        let fresh: Vec<DirEntry> = entries
            .into_iter()
            .filter(|e| fill.present.insert(e.attr.ino))
            .collect();
        if fresh.is_empty() {
            return;
        }
        fill.len += fresh.len();
        fill.pages.push(fresh.into());
        drop(fill);
        self.progress.send_modify(|n| *n += 1);
    }

    /// Those of `inos` not handed out yet.
    pub fn missing(&self, mut inos: Vec<Ino>) -> Vec<Ino> {
        let fill = lock(&self.fill);
        inos.retain(|i| !fill.present.contains(i));
        inos
    }

    /// No more entries: `result` is what a reader past the last one gets.
    pub fn finish(&self, result: Result<(), FsError>) {
        lock(&self.fill).done.get_or_insert(result);
        self.progress.send_modify(|n| *n += 1);
    }

    /// The entries so far.
    pub fn view(&self) -> DirView {
        let fill = lock(&self.fill);
        DirView {
            ino: self.ino,
            parent: self.parent,
            attr: self.attr.clone(),
            names_generation: self.names_generation,
            pages: fill.pages.clone(),
            len: fill.len,
            done: fill.done.clone(),
        }
    }

    /// The entries once entry `index` can be answered (see [`DirView::can_answer`]).
    pub async fn view_answering(&self, index: usize) -> DirView {
        let mut progress = self.progress.subscribe();
        loop {
            let view = self.view();
            if view.can_answer(index) {
                return view;
            }
            // The sender lives as long as `self`: this cannot fail while we borrow it.
            if progress.changed().await.is_err() {
                return view;
            }
        }
    }

    /// Releases the handle: unpins the entries handed out so far; later ones are not pinned.
    pub fn release(&self, table: &mut InodeTable) {
        let mut fill = lock(&self.fill);
        fill.closed = true;
        for page in &fill.pages {
            for e in page.iter().filter(|e| e.attr.ino < VIRTUAL_INOS) {
                table.forget(e.attr.ino, 1);
            }
        }
    }
}

/// Ends a fill with EIO when dropped before [`DirHandle::finish`] was called (the task filling
/// it panicked), so that no reader waits forever.
pub struct FinishOnDrop(pub Arc<DirHandle>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish(Err(FsError::new(
            libc::EIO,
            "the listing stopped unfinished",
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tree::attr::Identity;
    use box_client::types::Item;
    use std::time::Duration;

    fn entry(table: &mut InodeTable, id: &str) -> DirEntry {
        let item: Item = serde_json::from_value(serde_json::json!({
            "type": "file", "id": id, "name": format!("f{id}"), "sequence_id": "1",
        }))
        .unwrap();
        let ino = table
            .insert_or_update_from_item(crate::fs::tree::inode::ROOT_INO, &item)
            .unwrap();
        let attr = FsAttr::of(ino, table.get(ino).unwrap(), 0, &Identity::default());
        DirEntry {
            name: format!("f{id}").into(),
            attr,
        }
    }

    fn root_attr(table: &InodeTable) -> FsAttr {
        let ino = crate::fs::tree::inode::ROOT_INO;
        FsAttr::of(ino, table.get(ino).unwrap(), 0, &Identity::default())
    }

    #[tokio::test]
    async fn a_reader_ahead_of_the_listing_waits_for_the_next_page() {
        let mut table = InodeTable::default();
        let h = Arc::new(DirHandle::filling(1, 1, root_attr(&table), 0));
        let a = entry(&mut table, "1");
        h.add(&mut table, vec![a.clone()]);
        assert!(h.view().can_answer(0));
        assert!(!h.view().can_answer(1));
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.view_answering(1).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        let b = entry(&mut table, "2");
        // An entry already present is not repeated.
        h.add(&mut table, vec![a.clone(), b.clone()]);
        let view = waiter.await.unwrap();
        assert_eq!(view.get(1).unwrap().attr.ino, b.attr.ino);
        assert!(view.done.is_none());
        h.finish(Ok(()));
        let view = h.view_answering(5).await;
        assert!(view.get(2).is_none());
        assert!(matches!(view.done, Some(Ok(()))));
        // Pinned once each while open, unpinned at release.
        assert_eq!(table.get(a.attr.ino).unwrap().lookups(), 1);
        h.release(&mut table);
        assert_eq!(table.get(a.attr.ino).unwrap().lookups(), 0);
        assert_eq!(table.get(b.attr.ino).unwrap().lookups(), 0);
    }

    #[tokio::test]
    async fn a_failed_listing_reaches_the_reader_and_a_late_page_after_release_is_not_pinned() {
        let mut table = InodeTable::default();
        let h = DirHandle::filling(1, 1, root_attr(&table), 0);
        h.release(&mut table);
        let a = entry(&mut table, "1");
        h.add(&mut table, vec![a.clone()]);
        assert_eq!(table.get(a.attr.ino).unwrap().lookups(), 0);
        h.finish(Err(FsError::new(libc::EIO, "listing failed")));
        let view = h.view_answering(7).await;
        assert_eq!(view.done.unwrap().unwrap_err().errno(), libc::EIO);
    }

    #[tokio::test]
    async fn a_fill_that_panics_ends_with_eio_instead_of_a_reader_waiting_forever() {
        let table = InodeTable::default();
        let h = Arc::new(DirHandle::filling(1, 1, root_attr(&table), 0));
        let guard = FinishOnDrop(h.clone());
        let task = tokio::spawn(async move {
            let _guard = guard;
            panic!("a bug while listing");
        });
        assert!(task.await.is_err());
        let view = h.view_answering(0).await;
        assert_eq!(view.done.unwrap().unwrap_err().errno(), libc::EIO);
    }

    #[test]
    fn entries_from_walks_across_pages_like_get() {
        let mut table = InodeTable::default();
        let h = DirHandle::filling(1, 1, root_attr(&table), 0);
        let page1 = vec![entry(&mut table, "1"), entry(&mut table, "2")];
        let page2 = vec![entry(&mut table, "3")];
        h.add(&mut table, page1);
        h.add(&mut table, page2);
        let view = h.view();
        for from in 0..5 {
            let walked: Vec<(usize, Ino)> = view
                .entries_from(from)
                .map(|(i, e)| (i, e.attr.ino))
                .collect();
            let by_get: Vec<(usize, Ino)> = (from..3)
                .map(|i| (i, view.get(i).unwrap().attr.ino))
                .collect();
            assert_eq!(walked, by_get, "from {from}");
        }
    }
}
