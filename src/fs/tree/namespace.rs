//! Changes to the tree: mkdir, rmdir, unlink and rename, each translated into Box calls and
//! applied to the inode table from Box's answer (so the event Box sends about our own change
//! later finds nothing to do).
//!
//! Box has no atomic "rename over": a rename onto an existing name moves the old item to the
//! trash first, then renames; if the rename fails, the old item is restored from the trash,
//! so nothing is lost whichever step fails.

use std::ffi::OsStr;
use std::sync::Arc;

use crate::fs::errno::FsError;
use crate::fs::tree::attr::FsAttr;
use crate::fs::tree::inode::{is_local_id, Ino, Kind, ROOT_INO, TRASH_INO};
use crate::fs::tree::shortcut;
use crate::fs::write::writes::Dropped;
use crate::fs::{box_name, lock, BoxFs};
use box_client::types::Item;
use box_client::web_links::WebLinkUpdate;

/// `renameat2` flags (the kernel passes them through FUSE unchanged).
pub const RENAME_NOREPLACE: u32 = libc::RENAME_NOREPLACE;

/// What a name refers to, for the checks before a change.
#[derive(Debug, Clone)]
struct Target {
    ino: Ino,
    box_id: String,
    kind: Kind,
    name: String,
}

impl BoxFs {
    fn target(&self, ino: Ino) -> Result<Target, FsError> {
        let table = lock(&self.table);
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        Ok(Target {
            ino,
            box_id: inode.box_id().to_string(),
            kind: inode.kind(),
            name: inode.name().to_string(),
        })
    }

    /// Directories that gained or lost entries through this mount: their times move (see
    /// [`InodeTable::note_entries_changed`](crate::fs::tree::inode::InodeTable::note_entries_changed)).
    pub(in crate::fs) fn entries_changed(&self, dirs: &[Ino]) {
        let now = std::time::SystemTime::now();
        let mut table = lock(&self.table);
        for &dir in dirs {
            table.note_entries_changed(dir, now);
        }
    }

    pub(in crate::fs) fn box_id_of_dir(&self, ino: Ino) -> Result<String, FsError> {
        // Nothing is created in, or moved into, Box's history.
        self.history_refuses(ino)?;
        let t = self.target(ino)?;
        if t.kind != Kind::Dir {
            return Err(FsError::new(libc::ENOTDIR, "not a directory"));
        }
        Ok(t.box_id)
    }

    /// The child `name` of `parent`, if there is one.
    pub(in crate::fs) async fn existing(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
    ) -> Result<Option<Ino>, FsError> {
        match self.resolve(parent, name).await {
            Ok(ino) => Ok(Some(ino)),
            Err(e) if e.errno() == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Refuses the new name `name` in `parent` (EEXIST) when the table holds an item there
    /// whose name differs from it only in case, other than `renamed`, the item being renamed
    /// (`mv a A`). Box takes such names for one: it would refuse the name, and for a new file
    /// only at its upload, which then lands as a conflict copy. Called once no item has
    /// exactly `name`.
    pub(in crate::fs) fn refuse_case_twin(
        &self,
        parent: Ino,
        name: &str,
        renamed: Option<Ino>,
    ) -> Result<(), FsError> {
        let table = lock(&self.table);
        match table.lookup_child(parent, name) {
            Some(twin) if Some(twin) != renamed => {
                let twin_name = table.get(twin).map_or("", |i| i.name());
                Err(FsError::new(
                    libc::EEXIST,
                    format!(
                        "'{twin_name}' is there: Box takes names that differ only in case for one"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// `mkdir`: a new folder, with one kernel reference.
    pub async fn mkdir(self: &Arc<Self>, parent: Ino, name: &OsStr) -> Result<FsAttr, FsError> {
        self.mkdir_with_mode(parent, name, None, None).await
    }

    /// `mkdir` with the mode asked for, by `caller` (uid, gid): kept on Box with
    /// `--posix-attributes`.
    pub async fn mkdir_with_mode(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
        mode: Option<u32>,
        caller: Option<(u32, u32)>,
    ) -> Result<FsAttr, FsError> {
        self.check_writable()?;
        let name = box_name(name)?;
        let parent_id = self.box_id_of_dir(parent)?;
        // Box refuses a name it holds (EEXIST), but not one of a file created here and not
        // uploaded yet: that name is taken all the same (Box compares names ignoring case).
        let local = {
            let table = lock(&self.table);
            table
                .lookup_child(parent, name)
                .is_some_and(|c| table.get(c).is_some_and(|i| i.is_local()))
        };
        if local {
            return Err(FsError::new(libc::EEXIST, "the name exists"));
        }
        let _own = self.own.name(&parent_id, name);
        let item = self.client.create_folder(&parent_id, name).await?;
        let (ino, attr) = self.store_item(parent, &item, true)?;
        self.entries_changed(&[parent]);
        if mode.is_some() || caller.is_some() {
            self.keep_new_attrs(ino, mode, caller).await?;
            return self.cached_attr(&lock(&self.table), ino);
        }
        Ok(attr)
    }

    /// `unlink`: the file (or web link) goes to Box's trash.
    pub async fn unlink(self: &Arc<Self>, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.unlink_entry(parent, name).await?;
        self.entries_changed(&[parent]);
        Ok(())
    }

    async fn unlink_entry(self: &Arc<Self>, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        if parent == TRASH_INO {
            return self.purge_from_trash(name, false).await;
        }
        self.history_names_kept(parent, name)?;
        self.check_writable()?;
        self.history_refuses(parent)?;
        let ino = self.resolve(parent, name).await?;
        let t = self.target(ino)?;
        if t.kind == Kind::Dir {
            return Err(FsError::new(libc::EISDIR, "is a directory"));
        }
        // Staged data goes with the file; a file that never reached Box is gone already. An
        // empty file made and uploaded here moments ago (a lock file, which `git` makes and
        // removes by the dozen) is purged from the trash too: nothing there to restore.
        let lock_file = match self.unlink_staged(ino).await {
            Some(Dropped::Local) => return Ok(()),
            Some(Dropped::OnBox { fresh_empty_upload }) => fresh_empty_upload,
            None => false,
        };
        let t = self.target(ino)?;
        let _own = self.own.item(&t.box_id);
        self.trash(&t).await?;
        lock(&self.table).remove(ino)?;
        if lock_file {
            self.purge_temporaries(&[t.box_id]).await;
        }
        Ok(())
    }

    /// `rmdir`: only an empty folder, which goes to Box's trash.
    pub async fn rmdir(self: &Arc<Self>, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.rmdir_entry(parent, name).await?;
        self.entries_changed(&[parent]);
        Ok(())
    }

    async fn rmdir_entry(self: &Arc<Self>, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        if parent == TRASH_INO {
            return self.purge_from_trash(name, true).await;
        }
        self.history_names_kept(parent, name)?;
        self.check_writable()?;
        self.history_refuses(parent)?;
        let ino = self.resolve(parent, name).await?;
        let t = self.target(ino)?;
        if t.kind != Kind::Dir {
            return Err(FsError::new(libc::ENOTDIR, "not a directory"));
        }
        if ino == ROOT_INO {
            return Err(FsError::new(libc::EBUSY, "the mount's root"));
        }
        // Files created here but not uploaded yet are not on Box: it would see it empty.
        if self.has_local_children(&lock(&self.table), ino) {
            return Err(FsError::new(libc::ENOTEMPTY, "directory not empty"));
        }
        // Box refuses a non-empty folder without `recursive` (folder_not_empty → ENOTEMPTY),
        // which also covers children we have not listed.
        let _own = self.own.item(&t.box_id);
        self.client.delete_folder(&t.box_id, false, None).await?;
        self.trash_changed();
        lock(&self.table).remove(ino)?;
        Ok(())
    }

    /// `rename`, with `renameat2`'s NOREPLACE; EXCHANGE cannot be done on Box (EINVAL).
    pub async fn rename(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<(), FsError> {
        self.rename_entry(parent, name, new_parent, new_name, flags)
            .await?;
        self.entries_changed(&[parent, new_parent]);
        // The item renamed changed too, as on Linux's own filesystems.
        let mut table = lock(&self.table);
        let moved = new_name
            .to_str()
            .and_then(|n| table.lookup_child(new_parent, n));
        if let Some(moved) = moved {
            table.note_changed(moved, std::time::SystemTime::now());
        }
        Ok(())
    }

    async fn rename_entry(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<(), FsError> {
        self.history_names_kept(new_parent, new_name)?;
        if parent == TRASH_INO {
            return self
                .restore_from_trash(name, new_parent, new_name, flags)
                .await;
        }
        self.history_names_kept(parent, name)?;
        self.check_writable()?;
        self.history_refuses(parent)?;
        if flags & !RENAME_NOREPLACE != 0 {
            return Err(FsError::new(
                libc::EINVAL,
                "Box cannot exchange two items atomically",
            ));
        }
        let new_name_str = box_name(new_name)?;
        let src = self.target(self.resolve(parent, name).await?)?;
        let new_parent_id = self.box_id_of_dir(new_parent)?;
        let dst = self.existing(new_parent, new_name).await?;
        if dst.is_none() {
            self.refuse_case_twin(new_parent, new_name_str, Some(src.ino))?;
        }
        let replaced = match dst {
            // The same item under another spelling ("a" -> "A") or itself: just rename.
            Some(d) if d == src.ino => None,
            Some(_) if flags & RENAME_NOREPLACE != 0 => {
                return Err(FsError::new(libc::EEXIST, "the target name exists"));
            }
            Some(d) => Some(self.check_replaceable(&src, self.target(d)?).await?),
            None => None,
        };
        if src.name == new_name_str && parent == new_parent {
            return Ok(());
        }
        // A file not on Box yet is renamed here; a new file renamed over a Box file becomes
        // a new version of it (see `write.rs`).
        if src.kind == Kind::File
            && self
                .rename_staged(src.ino, new_parent, &new_parent_id, new_name_str, dst)
                .await?
        {
            return Ok(());
        }
        let mut replaced = replaced;
        if let Some(old) = replaced.clone() {
            if let Some(staged) = self.writes.staged(old.ino) {
                if self.drop_staged(old.ino, &staged).await == Dropped::Local {
                    // Not on Box: nothing to trash there.
                    replaced = None;
                } else if is_local_id(&old.box_id) {
                    // Its upload ended meanwhile: trash the item Box made.
                    replaced = Some(self.target(old.ino)?);
                }
            }
        }
        let _own_src = self.own.item(&src.box_id);
        let _own_old = replaced.as_ref().map(|old| self.own.item(&old.box_id));
        if let Some(old) = &replaced {
            self.trash(old).await?;
        }
        match self
            .move_item(&src, parent == new_parent, &new_parent_id, new_name_str)
            .await
        {
            Ok(item) => {
                {
                    let mut table = lock(&self.table);
                    if let Some(old) = &replaced {
                        table.remove(old.ino)?;
                    }
                    table.insert_or_update_from_item(new_parent, &item)?;
                }
                self.staged_moved(src.ino, &new_parent_id, new_name_str)
                    .await;
                Ok(())
            }
            Err(e) => {
                if let Some(old) = &replaced {
                    self.untrash(old).await;
                }
                Err(e)
            }
        }
    }

    /// POSIX's rules for replacing `dst` by `src`: a directory only by a directory and only if
    /// empty, a file only by a file.
    async fn check_replaceable(
        self: &Arc<Self>,
        src: &Target,
        dst: Target,
    ) -> Result<Target, FsError> {
        match (src.kind, dst.kind) {
            (Kind::Dir, Kind::File | Kind::Link) => {
                Err(FsError::new(libc::ENOTDIR, "target is not a directory"))
            }
            (Kind::File | Kind::Link, Kind::Dir) => {
                Err(FsError::new(libc::EISDIR, "target is a directory"))
            }
            (Kind::Dir, Kind::Dir) => {
                self.ensure_listing(dst.ino, false).await?;
                if !lock(&self.table).children(dst.ino).is_empty() {
                    return Err(FsError::new(libc::ENOTEMPTY, "target directory not empty"));
                }
                Ok(dst)
            }
            (Kind::File | Kind::Link, Kind::File | Kind::Link) => Ok(dst),
        }
    }

    async fn trash(&self, t: &Target) -> Result<(), FsError> {
        match t.kind {
            Kind::File => self.client.delete_file(&t.box_id, None).await?,
            Kind::Dir => self.client.delete_folder(&t.box_id, false, None).await?,
            Kind::Link => self.client.delete_web_link(&t.box_id).await?,
        }
        self.trash_changed();
        Ok(())
    }

    /// Brings back an item [`BoxFs::trash`] removed, after the rename that was to replace it
    /// failed.
    async fn untrash(&self, t: &Target) {
        let restored = match t.kind {
            Kind::File => self.client.restore_file(&t.box_id, None, None).await,
            Kind::Dir => self.client.restore_folder(&t.box_id, None, None).await,
            Kind::Link => self.client.restore_web_link(&t.box_id, None, None).await,
        };
        self.trash_changed();
        if let Err(e) = restored {
            log::error!(
                "'{}' (Box id {}) was moved to the trash to be replaced, the replacement failed, \
                 and restoring it failed too: {e}. It is in Box's trash.",
                t.name,
                t.box_id
            );
        }
    }

    /// Box's rename (same folder) or move (another folder, with the new name at once). A web
    /// link keeps showing as `NAME.url`, so it takes only a new name ending in `.url`
    /// (EINVAL otherwise), and Box gets the name without it.
    async fn move_item(
        &self,
        src: &Target,
        same_parent: bool,
        new_parent_id: &str,
        new_name: &str,
    ) -> Result<Item, FsError> {
        let item = match (src.kind, same_parent) {
            (Kind::File, true) => self.client.rename_file(&src.box_id, new_name).await?,
            (Kind::File, false) => {
                self.client
                    .move_file(&src.box_id, new_parent_id, Some(new_name))
                    .await?
            }
            (Kind::Dir, true) => self.client.rename_folder(&src.box_id, new_name).await?,
            (Kind::Dir, false) => {
                let name = (new_name != src.name).then_some(new_name);
                self.client
                    .move_folder(&src.box_id, new_parent_id, name)
                    .await?
            }
            (Kind::Link, same_parent) => {
                let box_name = shortcut::box_name_of(new_name).ok_or_else(|| {
                    FsError::new(
                        libc::EINVAL,
                        "a web link shows as NAME.url: its new name must end in .url",
                    )
                })?;
                let changes = WebLinkUpdate {
                    name: Some(box_name.to_string()),
                    parent_id: (!same_parent).then(|| new_parent_id.to_string()),
                    ..WebLinkUpdate::default()
                };
                self.client.update_web_link(&src.box_id, &changes).await?
            }
        };
        Ok(item)
    }
}
