//! `.trash/` at the mount's root: Box's trash as a folder. It lists what was deleted (files,
//! folders, and web links as their `NAME.url` shortcuts), each under a unique name
//! ([`super::names`]);
//! `mv .trash/NAME DEST` restores the item as DEST, `rm .trash/NAME` (a file) and `rmdir`
//! or `rm -r` (a folder) delete it for good, the only way this mount purges anything.
//!
//! **What Box shows of a trashed folder.** Box's trash lists only the items deleted
//! themselves: what a deleted folder held cannot be listed (GET `/folders/{id}/items` answers
//! 404 for it). So `.trash/FOLDER` is an empty directory, and `rmdir .trash/FOLDER` purges it
//! with all it held; restoring it brings all of it back.
//!
//! **Kept current.** The listing is cached for at most [`TRASH_TTL`]; our own deletions,
//! restores and purges drop it at once, and so do Box's events of items trashed or restored
//! anywhere (the events task sends `Invalidation::Inode(TRASH_INO)`, which reaches this cache
//! on the kernel's path). `.trash` is built afresh at every `opendir`, so a listing the
//! kernel cached earlier is never reused. A purge made elsewhere produces no event for us:
//! the TTL bounds how long its item still shows.
//!
//! **Where an item was.** Box gives a trashed item's `path_collection` as the trash itself
//! (the emulator does as Box does), but keeps its `parent`, the folder it was deleted from.
//! `user.box.original_path` is that folder's path (one request, when asked) and the item's
//! name, from Box's root ("All Files" left out): `/Projects/2026/report.txt`.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use box_client::folders::ListOptions;
use box_client::types::Item;
use box_client::web_links::WebLinkUpdate;

use super::names::{tagged_id, unique_trash_names};
use super::{finished_dir, virtual_attr, TRASH_DIR_NAME};
use crate::fs::errno::FsError;
use crate::fs::kernel::{Invalidation, StaleCache};
use crate::fs::tree::attr::FsAttr;
use crate::fs::tree::inode::{
    check_box_name, derived_ino, parse_time, Ino, InodeTable, Kind, ROOT_INO, TRASH_INO,
    TRASH_LINK_INO,
};
use crate::fs::tree::shortcut;
use crate::fs::{box_name, lock, BoxFs, DirEntry, Opened};

/// How long a trash listing is trusted without word of a change: Box sends no event to
/// us of a purge made elsewhere.
pub const TRASH_TTL: Duration = Duration::from_secs(10);

/// What a trash listing asks Box for.
const TRASH_FIELDS: &[&str] = &[
    "type",
    "id",
    "name",
    "size",
    "etag",
    "sequence_id",
    "created_at",
    "modified_at",
    "content_modified_at",
    "trashed_at",
    "parent",
    "path_collection",
    "file_version",
    "sha1",
    "url",
];

/// Where a trashed item was, as an attribute.
const ORIGINAL_PATH: &str = "user.box.original_path";

/// Box's own folder id of the trash, as it shows in a trashed item's `path_collection`.
const BOX_TRASH_FOLDER_ID: &str = "1";
/// Box's root folder ("All Files"), left out of the paths shown.
const BOX_ROOT_FOLDER_ID: &str = "0";

/// One trashed item as `.trash/` shows it.
#[derive(Debug, Clone)]
pub struct TrashEntry {
    pub ino: Ino,
    pub name: Box<str>,
    pub kind: Kind,
    pub item: Arc<Item>,
}

/// A trash listing as Box gave it.
#[derive(Debug)]
struct Listing {
    at: Instant,
    /// An invalidation came since (or while it was fetched): the next look asks Box again.
    stale: bool,
    entries: Arc<Vec<TrashEntry>>,
}

#[derive(Debug, Default)]
struct Cached {
    listing: Option<Listing>,
    /// Bumped at every invalidation: a listing fetched across one is stale at once.
    generation: u64,
}

/// The last trash listing, and its invalidation.
#[derive(Debug, Default)]
pub struct TrashCache {
    cached: Mutex<Cached>,
    /// One listing from Box at a time: concurrent `ls` share it.
    fetching: tokio::sync::Mutex<()>,
}

impl TrashCache {
    /// The trashed item `ino` as the last listing showed it (whatever its age).
    pub fn entry(&self, ino: Ino) -> Option<TrashEntry> {
        let cached = lock(&self.cached);
        let listing = cached.listing.as_ref()?;
        listing.entries.iter().find(|e| e.ino == ino).cloned()
    }

    fn fresh(&self) -> Option<Arc<Vec<TrashEntry>>> {
        let cached = lock(&self.cached);
        match &cached.listing {
            Some(l) if !l.stale && l.at.elapsed() < TRASH_TTL => Some(l.entries.clone()),
            _ => None,
        }
    }

    fn generation(&self) -> u64 {
        lock(&self.cached).generation
    }

    /// Keeps `entries`, fetched from `generation` on. They are what `entry` answers from
    /// now on (the kernel is handed their names) even if an invalidation came meanwhile;
    /// then they are stale at once.
    fn store(&self, generation: u64, entries: Arc<Vec<TrashEntry>>) {
        let mut cached = lock(&self.cached);
        let stale = cached.generation != generation;
        cached.listing = Some(Listing {
            at: Instant::now(),
            stale,
            entries,
        });
    }

    /// The trash changed: the next look asks Box. The entries stay known (for `getattr` of
    /// names the kernel still holds) until the next listing replaces them.
    pub fn invalidate(&self) {
        let mut cached = lock(&self.cached);
        cached.generation += 1;
        if let Some(l) = &mut cached.listing {
            l.stale = true;
        }
    }
}

impl StaleCache for TrashCache {
    fn invalidate(&self, inv: &Invalidation) {
        if *inv == Invalidation::Inode(TRASH_INO) {
            TrashCache::invalidate(self);
        }
    }
}

/// The entries of a trash listing: files, folders and web links whose names Linux can show
/// (a web link's with `.url`, as in its folder), each under its unique name and with its
/// inode number.
fn trash_entries(table: &InodeTable, items: Vec<Item>) -> Vec<TrashEntry> {
    let items: Vec<(Item, String)> = items
        .into_iter()
        .filter(|i| i.is_file() || i.is_folder() || i.is_web_link())
        .map(|i| {
            let shown = shortcut::shown_name(&i).into_owned();
            (i, shown)
        })
        .filter(|(_, shown)| check_box_name(shown).is_ok())
        .collect();
    let names = unique_trash_names(
        items
            .iter()
            .map(|(i, shown)| (i.id.as_str(), shown.as_str())),
    );
    items
        .into_iter()
        .zip(names)
        .filter_map(|((item, _), name)| {
            let kind = Kind::of(&item);
            // The number the item had before it was deleted (and has again once restored).
            let ino = table
                .by_box_id(&item.id)
                .filter(|&i| table.get(i).is_some_and(|n| n.kind() == kind))
                .or_else(|| derived_ino(&item.id, kind));
            let Some(ino) = ino else {
                log::debug!("trashed item {} has no inode number; left out", item.id);
                return None;
            };
            Some(TrashEntry {
                ino,
                name: name.into(),
                kind,
                item: Arc::new(item),
            })
        })
        .collect()
}

/// `user.box.original_path` from where Box says the item was: `folders` are the folder's
/// own path (root first) and the folder's name, if known.
fn original_path(folders: &[&str], name: &str) -> String {
    let mut path = String::new();
    for f in folders {
        path.push('/');
        path.push_str(f);
    }
    path.push('/');
    path.push_str(name);
    path
}

impl BoxFs {
    /// `.trash` itself: writable by its owner (entries are removed and renamed out of it).
    pub(super) fn trash_dir_attr(&self) -> FsAttr {
        let root = self.getattr_cached(ROOT_INO);
        virtual_attr(
            TRASH_INO,
            Kind::Dir,
            0,
            (root.as_ref().map(|a| a.mtime), None),
            0o755,
            &self.opts.identity,
        )
    }

    /// `.trash` in the root: a symbolic link to the trash's folder.
    pub(super) fn trash_link_attr(&self) -> FsAttr {
        let mut attr = self.trash_dir_attr();
        attr.ino = TRASH_LINK_INO;
        attr.kind = Kind::File;
        attr.size = TRASH_DIR_NAME.len() as u64;
        attr.blocks = 0;
        attr.nlink = 1;
        attr.perm = 0o777;
        attr.symlink = true;
        attr
    }

    fn getattr_cached(&self, ino: Ino) -> Option<FsAttr> {
        let table = lock(&self.table);
        self.cached_attr(&table, ino).ok()
    }

    pub(super) fn trash_entry_attr(&self, e: &TrashEntry) -> FsAttr {
        let item = &e.item;
        let mtime = parse_time(item.content_modified_at.as_ref())
            .or_else(|| parse_time(item.modified_at.as_ref()));
        // When it went to the trash is the last change Box made to it.
        let ctime = parse_time(item.trashed_at.as_ref()).or(mtime);
        let (perm, size) = match e.kind {
            Kind::Dir => (0o755, 0),
            Kind::File => (0o644, item.size.unwrap_or(0)),
            // As in its folder: read-only, the size of its shortcut.
            Kind::Link => (
                0o444,
                shortcut::shortcut_len(item.url.as_deref().unwrap_or("")),
            ),
        };
        virtual_attr(
            e.ino,
            e.kind,
            size,
            (mtime, ctime),
            perm,
            &self.opts.identity,
        )
    }

    /// The trash, from the cache while fresh, else from Box (every page).
    async fn trash_listing(&self) -> Result<Arc<Vec<TrashEntry>>, FsError> {
        let cache = &self.history.trash;
        if let Some(entries) = cache.fresh() {
            return Ok(entries);
        }
        let _one = cache.fetching.lock().await;
        if let Some(entries) = cache.fresh() {
            return Ok(entries);
        }
        let generation = cache.generation();
        let mut opts = ListOptions::marker().limit(1000).fields(TRASH_FIELDS);
        let mut items = Vec::new();
        loop {
            let page = self.client.trash_items_page(&opts).await?;
            let next = opts.next_page(&page);
            items.extend(page.entries);
            match next {
                Some(o) => opts = o,
                None => break,
            }
        }
        self.forget_trashed(&items);
        let entries = Arc::new(trash_entries(&lock(&self.table), items));
        cache.store(generation, entries.clone());
        Ok(entries)
    }

    /// Takes out of the tree the items Box's trash holds that the table still shows in a
    /// folder (the event of their deletion has not come yet): the trash is Box's newer word,
    /// unless the table holds a later `sequence_id` (restored since). Otherwise a name would
    /// mean a trashed item in `.trash` and a live one in its folder at once.
    fn forget_trashed(&self, items: &[Item]) {
        let stale: Vec<Ino> = {
            let table = lock(&self.table);
            items
                .iter()
                .filter_map(|item| {
                    let ino = table.by_box_id(&item.id)?;
                    let inode = table.get(ino)?;
                    let held = inode.attrs().sequence_id;
                    let trashed: Option<u64> =
                        item.sequence_id.as_deref().and_then(|s| s.parse().ok());
                    let newer = !matches!((held, trashed), (Some(h), Some(t)) if t <= h);
                    (ino != ROOT_INO && inode.parent().is_some() && newer).then_some(ino)
                })
                .collect()
        };
        for ino in stale {
            self.forget_removed(ino);
        }
    }

    /// The trashed item shown as `name`; a tagged name (`x (box ID).txt`) also finds its
    /// item after it stopped sharing its name.
    async fn trash_entry_named(&self, name: &OsStr) -> Result<TrashEntry, FsError> {
        let name = box_name(name).map_err(|_| FsError::not_found("not a name in the trash"))?;
        let entries = self.trash_listing().await?;
        entries
            .iter()
            .find(|e| &*e.name == name)
            .or_else(|| {
                let id = tagged_id(name)?;
                entries.iter().find(|e| e.item.id == id)
            })
            .cloned()
            .ok_or_else(|| FsError::not_found(format!("no '{name}' in the trash")))
    }

    /// `lookup` in `.trash`.
    pub(super) async fn lookup_in_trash(&self, name: &OsStr) -> Result<FsAttr, FsError> {
        let entry = self.trash_entry_named(name).await?;
        self.history_add_lookup(entry.ino);
        Ok(self.trash_entry_attr(&entry))
    }

    /// `opendir` of `.trash`.
    pub(super) async fn open_trash(&self) -> Result<Opened, FsError> {
        let entries = self.trash_listing().await?;
        let listed = entries
            .iter()
            .map(|e| DirEntry {
                name: e.name.clone(),
                attr: self.trash_entry_attr(e),
            })
            .collect();
        Ok(finished_dir(
            self,
            TRASH_INO,
            ROOT_INO,
            self.trash_dir_attr(),
            listed,
        ))
    }

    /// `opendir` of a trashed folder: empty (see the module note).
    pub(super) fn open_trashed_folder(&self, ino: Ino) -> Result<Opened, FsError> {
        let entry = self
            .history
            .trash
            .entry(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        if entry.kind != Kind::Dir {
            return Err(FsError::new(libc::ENOTDIR, "not a directory"));
        }
        let attr = self.trash_entry_attr(&entry);
        Ok(finished_dir(self, ino, TRASH_INO, attr, Vec::new()))
    }

    /// Tells the kernel and the trash's cache that the trash changed (an item of ours went
    /// there or left it). Box's event about it would say so too, later.
    pub(in crate::fs) fn trash_changed(&self) {
        self.kernel.send(Invalidation::Inode(TRASH_INO));
    }

    /// `unlink` (`dir` false) or `rmdir` (`dir` true) in `.trash`: deletes the item for good.
    pub(in crate::fs) async fn purge_from_trash(
        &self,
        name: &OsStr,
        dir: bool,
    ) -> Result<(), FsError> {
        self.check_writable()?;
        let entry = self.trash_entry_named(name).await?;
        match (entry.kind, dir) {
            (Kind::Dir, false) => return Err(FsError::new(libc::EISDIR, "is a directory")),
            (Kind::File | Kind::Link, true) => {
                return Err(FsError::new(libc::ENOTDIR, "not a directory"))
            }
            _ => {}
        }
        let id = &entry.item.id;
        let _own = self.own.item(id);
        let purged = match entry.kind {
            Kind::File => self.client.purge_file(id).await,
            Kind::Dir => self.client.purge_folder(id).await,
            Kind::Link => self.client.purge_web_link(id).await,
        };
        self.trash_changed();
        purged?;
        self.history.forget_trash_refs(entry.ino, u64::MAX);
        Ok(())
    }

    /// `rename` out of `.trash`: restores the item as `new_parent/new_name`, never over an
    /// existing name (EEXIST).
    pub(in crate::fs) async fn restore_from_trash(
        self: &Arc<Self>,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<(), FsError> {
        self.check_writable()?;
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(FsError::new(libc::EINVAL, "a restore cannot exchange"));
        }
        let entry = self.trash_entry_named(name).await?;
        if new_parent == TRASH_INO {
            return Err(FsError::new(
                libc::EACCES,
                "names in the trash are Box's: restore the item to rename it",
            ));
        }
        self.history_refuses(new_parent)?;
        let new_name = box_name(new_name)?;
        // A web link shows as NAME.url: Box's name is NAME.
        let name_on_box = match entry.kind {
            Kind::Link => shortcut::box_name_of(new_name).ok_or_else(|| {
                FsError::new(
                    libc::EINVAL,
                    "a web link shows as NAME.url: its name must end in .url",
                )
            })?,
            Kind::File | Kind::Dir => new_name,
        };
        let parent_id = self.box_id_of_dir(new_parent)?;
        if self
            .existing(new_parent, OsStr::new(new_name))
            .await?
            .is_some()
        {
            return Err(FsError::new(libc::EEXIST, "the target name exists"));
        }
        let id = entry.item.id.clone();
        let _own = self.own.item(&id);
        let restored = self.restore_as(&entry, &parent_id, name_on_box).await;
        self.trash_changed();
        let item = restored?;
        let mut table = lock(&self.table);
        let ino = table.insert_or_update_from_item(new_parent, &item)?;
        // The kernel keeps the inode it looked up in `.trash` under its new name: its
        // references now belong to the table's inode (the same number, see the module note
        // of `history`).
        for _ in 0..self.history.take_trash_refs(entry.ino) {
            table.add_lookup(ino);
        }
        Ok(())
    }

    /// Box's restore, then a move if Box did not put the item where it was asked to.
    ///
    /// Box restores an item into the folder it was deleted from whenever that folder still
    /// exists, whatever `parent` says (`parent` counts only when the folder is gone). So a
    /// restore elsewhere is a restore, then a move; and a name taken in the old folder (but
    /// free where the item is going) would fail the restore with 409, so then the item comes
    /// back under a temporary name first.
    async fn restore_as(
        &self,
        entry: &TrashEntry,
        parent_id: &str,
        name: &str,
    ) -> Result<Item, FsError> {
        let id = entry.item.id.as_str();
        let restore = |name: String| async move {
            match entry.kind {
                Kind::File => {
                    self.client
                        .restore_file(id, Some(&name), Some(parent_id))
                        .await
                }
                Kind::Dir => {
                    self.client
                        .restore_folder(id, Some(&name), Some(parent_id))
                        .await
                }
                Kind::Link => {
                    self.client
                        .restore_web_link(id, Some(&name), Some(parent_id))
                        .await
                }
            }
        };
        let elsewhere = entry
            .item
            .parent
            .as_ref()
            .is_some_and(|p| p.id != parent_id);
        let item = match restore(name.to_string()).await {
            Err(e) if elsewhere && e.code() == Some("item_name_in_use") => {
                restore(format!("{name} (restoring {id})")).await?
            }
            other => other?,
        };
        let in_place = item.parent.as_ref().is_some_and(|p| p.id == parent_id);
        if in_place && item.name == name {
            return Ok(item);
        }
        let moved = match entry.kind {
            Kind::File => self.client.move_file(id, parent_id, Some(name)).await,
            Kind::Dir => self.client.move_folder(id, parent_id, Some(name)).await,
            Kind::Link => {
                let changes = WebLinkUpdate {
                    name: Some(name.to_string()),
                    parent_id: Some(parent_id.to_string()),
                    ..WebLinkUpdate::default()
                };
                self.client.update_web_link(id, &changes).await
            }
        };
        moved.map_err(|e| {
            log::warn!(
                "'{}' (Box id {id}) was restored to where it was deleted from, but moving it \
                 to where it was asked for failed: {e}",
                entry.item.name
            );
            FsError::from(e)
        })
    }

    /// The attributes of a trashed item: its id, type, where it was and when it was deleted.
    /// Where it was costs a request, made only when `asked` is that attribute (`listxattr`
    /// needs its name only).
    pub(super) async fn trash_entry_xattrs(
        &self,
        ino: Ino,
        asked: Option<&[u8]>,
    ) -> Result<Vec<(String, String)>, FsError> {
        let entry = self
            .history
            .trash
            .entry(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        let item = &entry.item;
        let kind = match entry.kind {
            Kind::Dir => "folder",
            Kind::File => "file",
            Kind::Link => "web_link",
        };
        let mut attrs = vec![
            ("user.box.id".to_string(), item.id.clone()),
            ("user.box.type".to_string(), kind.to_string()),
        ];
        if item.parent.is_some() || item.path_collection.is_some() {
            let path = if asked == Some(ORIGINAL_PATH.as_bytes()) {
                self.original_path_of(item).await?
            } else {
                Some(String::new())
            };
            if let Some(path) = path {
                attrs.push((ORIGINAL_PATH.to_string(), path));
            }
        }
        if let Some(at) = &item.trashed_at {
            attrs.push(("user.box.trashed_at".to_string(), at.clone()));
        }
        Ok(attrs)
    }

    /// Where `item` was before it went to the trash (see the module note), by the names the
    /// mount shows.
    async fn original_path_of(&self, item: &Item) -> Result<Option<String>, FsError> {
        // The name it showed with in the mount (a web link's with `.url`).
        let shown = shortcut::shown_name(item);
        let named = |entries: &[box_client::types::FolderMini]| -> Vec<String> {
            entries
                .iter()
                .filter(|f| f.id != BOX_ROOT_FOLDER_ID)
                .map(|f| f.name.clone())
                .collect()
        };
        // Box's path of a trashed item, when it is not just the trash.
        if let Some(pc) = &item.path_collection {
            if pc
                .entries
                .first()
                .is_some_and(|f| f.id != BOX_TRASH_FOLDER_ID)
            {
                let folders = named(&pc.entries);
                let folders: Vec<&str> = folders.iter().map(String::as_str).collect();
                return Ok(Some(original_path(&folders, &shown)));
            }
        }
        let Some(parent) = &item.parent else {
            return Ok(None);
        };
        if parent.id == BOX_ROOT_FOLDER_ID {
            return Ok(Some(original_path(&[], &shown)));
        }
        match self
            .client
            .folder_with_fields(&parent.id, &["name", "path_collection"])
            .await
        {
            Ok(folder) => {
                let mut folders = folder
                    .path_collection
                    .as_ref()
                    .map(|pc| named(&pc.entries))
                    .unwrap_or_default();
                folders.push(folder.name.clone());
                let folders: Vec<&str> = folders.iter().map(String::as_str).collect();
                Ok(Some(original_path(&folders, &shown)))
            }
            // The folder went to the trash too (or for good): its name is all Box says.
            Err(e) if e.is_not_found() => Ok(Some(format!("{}/{shown}", parent.name))),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tree::inode::InodeTable;

    fn item(kind: &str, id: &str, name: &str) -> Item {
        serde_json::from_value(serde_json::json!({
            "type": kind, "id": id, "name": name, "trashed_at": "2026-12-04T10:15:03Z",
        }))
        .unwrap()
    }

    #[test]
    fn entries_are_unique_take_derived_numbers_and_web_links_show_as_shortcuts() {
        let table = InodeTable::default();
        let entries = trash_entries(
            &table,
            vec![
                item("folder", "7", "old"),
                item("file", "11", "report.txt"),
                item("file", "12", "report.txt"),
                item("web_link", "13", "site"),
                item("web_link", "14", "report.txt"),
                item("user", "15", "someone"),
            ],
        );
        let names: Vec<&str> = entries.iter().map(|e| &*e.name).collect();
        assert_eq!(
            names,
            [
                "old",
                "report (box 11).txt",
                "report (box 12).txt",
                "site.url",
                "report.txt.url"
            ]
        );
        assert_eq!(entries[3].kind, Kind::Link);
        assert_eq!(entries[3].ino, derived_ino("13", Kind::Link).unwrap());
        assert_eq!(entries[0].ino, derived_ino("7", Kind::Dir).unwrap());
        assert_eq!(entries[0].kind, Kind::Dir);
        assert_eq!(entries[1].ino, derived_ino("11", Kind::File).unwrap());
    }

    #[test]
    fn original_paths_start_at_boxs_root() {
        assert_eq!(original_path(&["a", "b"], "x.txt"), "/a/b/x.txt");
        assert_eq!(original_path(&[], "x.txt"), "/x.txt");
    }

    #[test]
    fn an_invalidation_makes_the_listing_stale_and_one_fetched_across_it_is_stale_at_once() {
        let cache = TrashCache::default();
        let generation = cache.generation();
        cache.store(generation, Arc::new(Vec::new()));
        assert!(cache.fresh().is_some());
        StaleCache::invalidate(&cache, &Invalidation::Inode(ROOT_INO));
        assert!(
            cache.fresh().is_some(),
            "another inode changes nothing here"
        );
        StaleCache::invalidate(&cache, &Invalidation::Inode(TRASH_INO));
        assert!(cache.fresh().is_none());
        // A listing fetched across the invalidation is not trusted, but it is what the
        // kernel was shown.
        let item = Arc::new(item("file", "11", "a.txt"));
        let ino = derived_ino("11", Kind::File).unwrap();
        let shown = TrashEntry {
            ino,
            name: "a.txt".into(),
            kind: Kind::File,
            item,
        };
        cache.store(generation, Arc::new(vec![shown]));
        assert!(cache.fresh().is_none());
        assert!(cache.entry(ino).is_some());
        cache.store(cache.generation(), Arc::new(Vec::new()));
        assert!(cache.fresh().is_some());
    }
}
