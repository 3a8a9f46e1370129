//! What Box keeps of the past, as read-mostly folders that no listing shows: `.trash/` at
//! the mount's root (Box's trash: `mv` out of it restores, `rm`/`rmdir` in it deletes for
//! good) and `.versions/` in every folder (each file's earlier versions, readable). This
//! module owns those folders: their inode numbers ([`nodes`]), their names ([`names`]), the
//! trash ([`trash`]) and the versions ([`versions`]); the rest of `fs` reaches it only at the
//! seams of each operation (`lookup`, `getattr`, `opendir`, `open`, `rename`, `unlink`,
//! `rmdir`, the xattrs, `forget`), through the `history_*` methods below, each answering
//! `None` when the inode or name is not one of ours.
//!
//! **Seen, but not walked.** The trash's folder is `.box-trash` in the root, and the root's
//! listing holds `.trash`, a symbolic link to it: `ls -a` shows it, while `find`, `du`,
//! `cp -r` and backups, which do not follow links, never walk Box's whole trash; a path
//! through it (`ls .trash/`, `cd .trash`, `mv .trash/x y`) reaches the folder. `.versions`
//! in every folder is not listed at all, but a `lookup` of it succeeds: a user names it
//! (`cd .versions`). Where a Box item has one of these names, the history's shadows it: the
//! listing leaves it out and a lookup finds the history's.
//!
//! **Inode numbers.** A trashed item has the number its Box id derives
//! (`tree::inode::derived_ino`; the table's own number if it still holds the item), the
//! number an item listed from Box has, and has again once restored, so that the kernel's
//! inode follows the item through `mv .trash/x dest` (a rename keeps the inode). Everything else here (`.trash` itself, the `.versions` folders, the
//! version files) has a number from [`VIRTUAL_INOS`] on, kept by [`nodes::Nodes`] for the
//! mount's life and never journaled or stored: there is nothing to keep across mounts.

pub mod names;
pub mod nodes;
pub mod trash;
pub mod versions;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::fs::errno::FsError;
use crate::fs::tree::attr::{FsAttr, Identity, FILE_BLKSIZE};
use crate::fs::tree::dir_handle::DirHandle;
use crate::fs::tree::inode::{Ino, Kind, ROOT_INO, TRASH_INO, TRASH_LINK_INO, VIRTUAL_INOS};
use crate::fs::{lock, BoxFs, DirEntry, Opened};
use nodes::Nodes;

/// The name in the root's listing of the symbolic link to the trash's folder.
pub const TRASH_NAME: &str = ".trash";
/// The trash's folder in the mount's root, which only a lookup finds (the link's target).
pub const TRASH_DIR_NAME: &str = ".box-trash";
/// The name of the folder of earlier versions in every folder.
pub const VERSIONS_NAME: &str = ".versions";

/// The history's state in a mount: the virtual inodes, the cached trash and version lists,
/// and the kernel's references to trashed items the inode table does not hold.
pub struct History {
    nodes: Nodes,
    trash: Arc<trash::TrashCache>,
    versions: versions::VersionLists,
    /// Kernel references to trashed items looked up in `.trash` that the inode table does not
    /// hold; handed to the table when the item is restored (the kernel's inode stays).
    trash_refs: Mutex<HashMap<Ino, u64>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            nodes: Nodes::default(),
            trash: Arc::new(trash::TrashCache::default()),
            versions: versions::VersionLists::default(),
            trash_refs: Mutex::default(),
        }
    }
}

impl History {
    /// The trash listing's cache, which goes stale with the kernel's view of `.trash`.
    pub fn trash_cache(&self) -> Arc<trash::TrashCache> {
        self.trash.clone()
    }

    fn add_trash_ref(&self, ino: Ino) {
        *lock(&self.trash_refs).entry(ino).or_default() += 1;
    }

    fn forget_trash_refs(&self, ino: Ino, n: u64) {
        let mut refs = lock(&self.trash_refs);
        if let Some(held) = refs.get_mut(&ino) {
            *held = held.saturating_sub(n);
            if *held == 0 {
                refs.remove(&ino);
            }
        }
    }

    fn take_trash_refs(&self, ino: Ino) -> u64 {
        lock(&self.trash_refs).remove(&ino).unwrap_or(0)
    }
}

/// The attributes of an inode of the history: `perm` bits as given (the mount's umask is
/// applied), times as Box gave them.
fn virtual_attr(
    ino: Ino,
    kind: Kind,
    size: u64,
    times: (Option<SystemTime>, Option<SystemTime>),
    perm: u16,
    id: &Identity,
) -> FsAttr {
    let mtime = times.0.unwrap_or(UNIX_EPOCH);
    let ctime = times.1.unwrap_or(mtime);
    let perm = perm & !(id.umask as u16) & if id.read_only { 0o555 } else { 0o777 };
    match kind {
        Kind::Dir => FsAttr {
            ino,
            kind,
            size: 4096,
            blocks: 8,
            atime: mtime,
            mtime,
            ctime,
            perm,
            nlink: 2,
            uid: id.uid,
            gid: id.gid,
            blksize: 4096,
            symlink: false,
        },
        Kind::File | Kind::Link => FsAttr {
            ino,
            kind,
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime,
            perm,
            nlink: 1,
            uid: id.uid,
            gid: id.gid,
            blksize: FILE_BLKSIZE,
            // Box's history holds no symbolic links: a trashed one shows as the file Box keeps.
            symlink: false,
        },
    }
}

/// What the history refuses to change: its folders hold Box's past, written only by the
/// operations that restore or purge.
fn read_only() -> FsError {
    FsError::new(libc::EACCES, "Box's history is read-only here")
}

/// An open directory of the history, complete at once.
fn finished_dir(fs: &BoxFs, ino: Ino, parent: Ino, attr: FsAttr, entries: Vec<DirEntry>) -> Opened {
    let handle = Arc::new(DirHandle::filling(
        ino,
        parent,
        attr,
        fs.kernel.names_generation(ino),
    ));
    handle.add(&mut lock(&fs.table), entries);
    handle.finish(Ok(()));
    Opened {
        fh: fs.handles.add_dir(handle),
        // Built afresh at every open: the kernel's copy from an earlier one may be stale.
        keep_cache: false,
    }
}

impl BoxFs {
    /// Whether the history shows `ino`: a virtual inode, or a trashed item not in a folder
    /// of the tree. Its attributes, listing and content are the history's.
    fn history_shows(&self, ino: Ino) -> bool {
        ino >= VIRTUAL_INOS || self.trashed(ino).is_some()
    }

    /// Whether `ino` is the history's alone: a virtual inode, or a trashed item the inode
    /// table does not hold at all. Changes to it are refused; a file the table still holds
    /// (deleted while open, the kernel keeps it) goes on by the table's rules, as it did
    /// before it showed in `.trash`.
    fn history_only(&self, ino: Ino) -> bool {
        ino >= VIRTUAL_INOS
            || (lock(&self.table).get(ino).is_none() && self.history.trash.entry(ino).is_some())
    }

    /// The trashed item `ino`, unless the tree holds it in a folder (deleted elsewhere and
    /// no event told us yet): an inode the table keeps detached (the kernel still holds it)
    /// is the trashed item.
    fn trashed(&self, ino: Ino) -> Option<trash::TrashEntry> {
        let attached = lock(&self.table)
            .get(ino)
            .is_some_and(|i| ino == ROOT_INO || i.parent().is_some());
        if attached {
            return None;
        }
        self.history.trash.entry(ino)
    }

    /// `lookup` of `name` in `parent` when the history answers it without Box: the root's
    /// `.trash` link and `.box-trash` folder, a trashed folder's content (nothing: Box's
    /// trash lists no folder's content) and a folder's `.versions`. `None` for anything else,
    /// names in `.trash` and the `.versions` folders included (see
    /// [`Self::history_lookup_listed`]).
    pub(in crate::fs) fn history_lookup_at_once(
        &self,
        parent: Ino,
        name: &OsStr,
    ) -> Option<Result<FsAttr, FsError>> {
        let name_bytes = name.as_bytes();
        if parent == ROOT_INO && name_bytes == TRASH_NAME.as_bytes() {
            return Some(Ok(self.trash_link_attr()));
        }
        if parent == ROOT_INO && name_bytes == TRASH_DIR_NAME.as_bytes() {
            return Some(Ok(self.trash_dir_attr()));
        }
        if Self::history_lists_when_opened(parent) {
            return None;
        }
        if self.history_shows(parent) {
            return Some(Err(FsError::not_found(
                "Box's trash lists no folder's content",
            )));
        }
        if name_bytes == VERSIONS_NAME.as_bytes() && self.is_real_dir(parent) {
            return Some(self.versions_dir(parent));
        }
        None
    }

    /// `lookup` of `name` in `.trash` or in a `.versions` folder, which are listed from Box
    /// (see [`Self::history_lists_when_opened`]); `None` for any other parent.
    pub(in crate::fs) async fn history_lookup_listed(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
    ) -> Option<Result<FsAttr, FsError>> {
        if parent == TRASH_INO {
            return Some(self.lookup_in_trash(name).await);
        }
        if parent >= VIRTUAL_INOS {
            return Some(self.lookup_in_versions(parent, name).await);
        }
        None
    }

    fn is_real_dir(&self, ino: Ino) -> bool {
        lock(&self.table).get(ino).is_some_and(|i| i.is_dir())
    }

    /// `readlink` of the history's one link, `.trash`.
    pub(in crate::fs) fn history_readlink(&self, ino: Ino) -> Option<Result<Bytes, FsError>> {
        if ino == TRASH_LINK_INO {
            return Some(Ok(Bytes::from_static(TRASH_DIR_NAME.as_bytes())));
        }
        if ino >= VIRTUAL_INOS {
            return Some(Err(FsError::new(libc::EINVAL, "not a symbolic link")));
        }
        None
    }

    /// What the history adds to the listing of `dir` (`.trash` in the root), and the names
    /// it leaves out there: Box items the history's own names shadow.
    pub(in crate::fs) fn history_listing(
        &self,
        dir: Ino,
    ) -> (Vec<DirEntry>, &'static [&'static str]) {
        if dir != ROOT_INO {
            return (Vec::new(), &[VERSIONS_NAME]);
        }
        let link = DirEntry {
            name: TRASH_NAME.into(),
            attr: self.trash_link_attr(),
        };
        (vec![link], &[TRASH_NAME, TRASH_DIR_NAME, VERSIONS_NAME])
    }

    /// Refuses to remove or rename away the history's own names in the root (`rm .trash`),
    /// which would otherwise reach a Box item they shadow.
    pub(in crate::fs) fn history_names_kept(
        &self,
        parent: Ino,
        name: &OsStr,
    ) -> Result<(), FsError> {
        let name = name.as_bytes();
        let ours = (parent == ROOT_INO
            && (name == TRASH_NAME.as_bytes() || name == TRASH_DIR_NAME.as_bytes()))
            || (name == VERSIONS_NAME.as_bytes() && parent < VIRTUAL_INOS);
        if ours {
            return Err(FsError::new(
                libc::EPERM,
                "the mount's own view of Box's history cannot be removed or renamed",
            ));
        }
        Ok(())
    }

    /// `getattr` of an inode of the history.
    pub(in crate::fs) fn history_getattr(&self, ino: Ino) -> Option<Result<FsAttr, FsError>> {
        if ino == TRASH_INO {
            return Some(Ok(self.trash_dir_attr()));
        }
        if ino == TRASH_LINK_INO {
            return Some(Ok(self.trash_link_attr()));
        }
        if ino >= VIRTUAL_INOS {
            return Some(self.versions_attr(ino));
        }
        self.trashed(ino).map(|e| Ok(self.trash_entry_attr(&e)))
    }

    /// Whether `opendir` of `ino` waits for Box: `.trash` and the `.versions` folders are
    /// listed from Box when they are opened.
    pub(in crate::fs) fn history_lists_when_opened(ino: Ino) -> bool {
        ino == TRASH_INO || ino >= VIRTUAL_INOS
    }

    /// `opendir` of `.trash` or a `.versions` folder (see
    /// [`Self::history_lists_when_opened`]); `None` for any other inode.
    pub(in crate::fs) async fn history_opendir_listed(
        self: &Arc<Self>,
        ino: Ino,
    ) -> Option<Result<Opened, FsError>> {
        if ino == TRASH_INO {
            return Some(self.open_trash().await);
        }
        if ino >= VIRTUAL_INOS {
            return Some(self.open_versions_dir(ino).await);
        }
        None
    }

    /// `opendir` of a trashed folder under `.trash`, from what the trash's listing holds;
    /// `None` for an inode outside the history.
    pub(in crate::fs) fn history_opendir_trashed(
        &self,
        ino: Ino,
    ) -> Option<Result<Opened, FsError>> {
        self.history_shows(ino)
            .then(|| self.open_trashed_folder(ino))
    }

    /// `open` of an inode of the history: version files read, nothing is written.
    pub(in crate::fs) fn history_open(
        &self,
        ino: Ino,
        write: bool,
    ) -> Option<Result<Opened, FsError>> {
        if !self.history_shows(ino) {
            return None;
        }
        if write {
            return Some(Err(read_only()));
        }
        if ino >= VIRTUAL_INOS {
            return Some(self.open_version(ino));
        }
        Some(Err(FsError::new(
            libc::EACCES,
            "Box serves no content of a trashed file: restore it first",
        )))
    }

    /// A change inside the history other than a restore or a purge (a file created, a
    /// folder made, an attribute set): refused.
    pub(in crate::fs) fn history_refuses(&self, ino: Ino) -> Result<(), FsError> {
        if self.history_only(ino) {
            Err(read_only())
        } else {
            Ok(())
        }
    }

    /// `setattr` of an inode of the history: refused if it changes anything (`touch`,
    /// `chmod`, a truncation), else its attributes (an access time is not kept).
    pub(in crate::fs) fn history_setattr(
        &self,
        ino: Ino,
        changes_something: bool,
    ) -> Option<Result<FsAttr, FsError>> {
        if !self.history_only(ino) {
            return None;
        }
        if changes_something {
            return Some(Err(read_only()));
        }
        self.history_getattr(ino)
    }

    /// One more kernel reference to `ino`, an entry the history handed out: the table's if
    /// it holds the inode, else the history's own count (virtual inodes need none: they live
    /// as long as the mount).
    pub(in crate::fs) fn history_add_lookup(&self, ino: Ino) {
        if ino >= VIRTUAL_INOS {
            return;
        }
        if !lock(&self.table).add_lookup(ino) {
            self.history.add_trash_ref(ino);
        }
    }

    /// The kernel dropped `n` references to `ino`, which the table does not hold.
    pub(in crate::fs) fn history_forget(&self, ino: Ino, n: u64) {
        if ino < VIRTUAL_INOS {
            self.history.forget_trash_refs(ino, n);
        }
    }

    /// `getxattr` of an inode of the history.
    pub(in crate::fs) async fn history_getxattr(
        &self,
        ino: Ino,
        name: &OsStr,
    ) -> Option<Result<Vec<u8>, FsError>> {
        if !self.history_shows(ino) {
            return None;
        }
        let names = self.history_xattrs(ino, Some(name.as_bytes())).await;
        Some(names.and_then(|attrs| {
            attrs
                .into_iter()
                .find(|(n, _)| n.as_bytes() == name.as_bytes())
                .map(|(_, v)| v.into_bytes())
                .ok_or_else(|| FsError::new(libc::ENODATA, "no such attribute"))
        }))
    }

    /// `listxattr` of an inode of the history.
    pub(in crate::fs) async fn history_listxattr(
        &self,
        ino: Ino,
    ) -> Option<Result<Vec<u8>, FsError>> {
        if !self.history_shows(ino) {
            return None;
        }
        Some(self.history_xattrs(ino, None).await.map(|attrs| {
            let mut out = Vec::new();
            for (name, _) in attrs {
                out.extend_from_slice(name.as_bytes());
                out.push(0);
            }
            out
        }))
    }

    /// The attributes (name, value) of an inode of the history; a value that costs a request
    /// is worked out only if `asked` names it.
    async fn history_xattrs(
        &self,
        ino: Ino,
        asked: Option<&[u8]>,
    ) -> Result<Vec<(String, String)>, FsError> {
        if ino >= VIRTUAL_INOS {
            return Ok(self.version_xattrs(ino));
        }
        self.trash_entry_xattrs(ino, asked).await
    }
}
