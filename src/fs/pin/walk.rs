//! Finding a pinned item in the tree and the files below it, through the filesystem's own
//! listing path ([`BoxFs::ensure_listing`]): a listing that is fresh costs nothing, one that
//! is not is fetched (and cached for `ls` too), at the priority of the task walking.
//!
//! A pin names a Box id. Its inode is found in the table when it is there; otherwise (after a
//! remount, or evicted from the metadata cache) Box is asked for the item and its
//! `path_collection`, and the folders from the mount's root down to it are listed. An item
//! Box no longer has (trashed, deleted) or that is no longer below the mount's root is gone.

use std::collections::VecDeque;
use std::sync::Arc;

use super::fetch::PinnedFile;
use crate::fs::errno::FsError;
use crate::fs::tree::inode::{Ino, Inode, InodeTable, Kind, ROOT_INO};
use crate::fs::{lock, BoxFs, STAT_FIELDS};

/// Where a pinned item is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    At(Ino),
    /// Box no longer has it, or it left the mounted folder.
    Gone,
}

/// The file an inode stands for, as the readers key its content.
fn pinned_file(inode: &Inode) -> Option<PinnedFile> {
    // A web link's file is made from its URL: nothing to download.
    if inode.kind() != Kind::File || inode.is_local() {
        return None;
    }
    let a = inode.attrs();
    let version = a.version.clone().or_else(|| a.sha1.clone())?;
    Some(PinnedFile {
        box_id: inode.box_id().to_string(),
        name: inode.name().to_string(),
        size: a.size,
        version: version.to_string(),
        sha1: a.sha1.as_deref().map(str::to_string),
    })
}

/// The inode of `box_id` if it is in the tree (attached below the root).
fn attached(table: &InodeTable, box_id: &str) -> Option<Ino> {
    if table.root_box_id() == box_id {
        return Some(ROOT_INO);
    }
    let ino = table.by_box_id(box_id)?;
    table.get(ino)?.parent().map(|_| ino)
}

impl BoxFs {
    /// Where the pinned item `box_id` is in the tree, listing folders down to it if need be.
    pub(super) async fn find_pinned(
        self: &Arc<Self>,
        box_id: &str,
        kind: Kind,
    ) -> Result<Found, FsError> {
        if let Some(ino) = attached(&lock(&self.table), box_id) {
            return Ok(Found::At(ino));
        }
        let fields: Vec<&str> = STAT_FIELDS
            .iter()
            .copied()
            .chain(["path_collection", "item_status"])
            .collect();
        let fetched = match kind {
            Kind::File => self.client.file_with_fields(box_id, &fields).await,
            Kind::Dir => self.client.folder_with_fields(box_id, &fields).await,
            Kind::Link => self.client.web_link_with_fields(box_id, &fields).await,
        };
        let item = match fetched {
            Ok(item) => item,
            Err(e) if e.is_not_found() => return Ok(Found::Gone),
            Err(e) => return Err(e.into()),
        };
        if matches!(item.item_status.as_deref(), Some("trashed" | "deleted")) {
            return Ok(Found::Gone);
        }
        let root_id = lock(&self.table).root_box_id().to_string();
        let path: Vec<String> = item
            .path_collection
            .map(|p| p.entries.into_iter().map(|e| e.id).collect())
            .unwrap_or_default();
        let Some(at) = path.iter().position(|id| *id == root_id) else {
            return Ok(Found::Gone);
        };
        let mut dir = ROOT_INO;
        for folder in &path[at + 1..] {
            self.ensure_listing(dir, false).await?;
            let table = lock(&self.table);
            dir = table
                .by_box_id(folder)
                .filter(|&c| table.get(c).and_then(|i| i.parent()) == Some(dir))
                .ok_or_else(|| {
                    FsError::not_found(format!("folder {folder} is not listed where Box says"))
                })?;
        }
        self.ensure_listing(dir, false).await?;
        let table = lock(&self.table);
        table
            .by_box_id(box_id)
            .filter(|&c| table.get(c).and_then(|i| i.parent()) == Some(dir))
            .map(Found::At)
            .ok_or_else(|| {
                FsError::not_found(format!("item {box_id} is not listed where Box says"))
            })
    }

    /// Every file at or below `root`, listing each folder (from the cache while fresh). A
    /// folder the metadata cache evicted before its turn is found again by its Box id.
    pub(super) async fn files_below(
        self: &Arc<Self>,
        root: Ino,
    ) -> Result<Vec<PinnedFile>, FsError> {
        let root_id = {
            let table = lock(&self.table);
            let inode = table
                .get(root)
                .ok_or_else(|| FsError::not_found(format!("no inode {root}")))?;
            if !inode.is_dir() {
                return Ok(pinned_file(inode).into_iter().collect());
            }
            inode.box_id().to_string()
        };
        let mut out = Vec::new();
        let mut dirs = VecDeque::from([(root, root_id)]);
        while let Some((dir, box_id)) = dirs.pop_front() {
            let still = {
                let table = lock(&self.table);
                table.get(dir).is_some_and(|i| i.box_id() == box_id)
                    && attached(&table, &box_id) == Some(dir)
            };
            let dir = if still {
                dir
            } else {
                match self.find_pinned(&box_id, Kind::Dir).await? {
                    Found::At(ino) => ino,
                    // Gone since it was listed: nothing below it to keep.
                    Found::Gone => continue,
                }
            };
            self.ensure_listing(dir, false).await?;
            let table = lock(&self.table);
            for child in table.children(dir) {
                let Some(inode) = table.get(child) else {
                    continue;
                };
                if inode.is_dir() {
                    dirs.push_back((child, inode.box_id().to_string()));
                } else if let Some(file) = pinned_file(inode) {
                    out.push(file);
                }
            }
        }
        Ok(out)
    }
}
