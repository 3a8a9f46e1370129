//! The operations of `--posix-attributes` (see `tree::posix` for how they are kept on Box):
//! `chmod`, `chown` (only to the mount's own owner), `symlink` and `readlink`, a new file's
//! or folder's mode given at `create`/`mkdir`, and the mode of a file created here written
//! once its first upload gave it a Box id. Without the option, `symlink` stays EPERM and a
//! mode is accepted and changes nothing, as before.
//!
//! A mode is one metadata call: a JSON Patch `add` of `posix_mode` on the item's
//! `global.properties` instance, or, when the item has none yet (404), the instance created
//! with it. A symbolic link is two: its content (the target) uploaded as a small file, then
//! its instance created with the link's mode and target; if the second fails the file is
//! deleted again, so no half-made link is left behind.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::fs::errno::FsError;
use crate::fs::kernel::Invalidation;
use crate::fs::tree::attr::FsAttr;
use crate::fs::tree::inode::{Ino, Kind, ROOT_INO};
use crate::fs::tree::posix::{
    format_mode, is_symlink, MODE_KEY, SCOPE, SYMLINK_KEY, SYMLINK_MODE, TEMPLATE,
};
use crate::fs::write::writes::blocking;
use crate::fs::{box_name, lock, BoxFs, STAT_FIELDS};
use box_client::folders::ROOT_FOLDER;
use box_client::metadata::{ItemRef, MetadataPatch};
use box_client::upload::UploadOptions;

/// The longest symbolic link target kept (Linux's `PATH_MAX`, with its NUL).
const SYMLINK_MAX: usize = libc::PATH_MAX as usize - 1;

impl BoxFs {
    /// Whether modes and symbolic links are kept on Box (`--posix-attributes`).
    pub fn keeps_posix_attributes(&self) -> bool {
        self.opts.posix_attributes
    }

    /// `chmod`: the permission bits `perm` (set-id and sticky included) kept on Box. A mode
    /// the item shows already is not written again.
    pub(in crate::fs) async fn set_mode(&self, ino: Ino, perm: u32) -> Result<(), FsError> {
        let (box_id, kind, held, local, target) = {
            let table = lock(&self.table);
            let inode = table
                .get(ino)
                .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
            let a = inode.attrs();
            (
                inode.box_id().to_string(),
                inode.kind(),
                a.mode,
                inode.is_local(),
                a.target.as_deref().map(str::to_string),
            )
        };
        let type_bits = match (kind, held) {
            (Kind::Link, _) => {
                return Err(FsError::new(libc::EPERM, "a web link's mode is fixed"));
            }
            (_, Some(m)) if is_symlink(Some(m)) => libc::S_IFLNK,
            (Kind::Dir, _) => libc::S_IFDIR,
            (Kind::File, _) => libc::S_IFREG,
        };
        if ino == ROOT_INO && box_id == ROOT_FOLDER {
            // Box keeps no metadata on All Files.
            return Err(FsError::new(libc::EPERM, "All Files keeps no mode on Box"));
        }
        let mode = type_bits | (perm & 0o7777);
        let default = match kind {
            Kind::Dir => 0o777,
            _ => 0o666,
        } & !self.opts.identity.umask;
        if held.map_or(default, |m| m & 0o7777) == perm & 0o7777 {
            // Nothing to keep (git sets every lock file's mode to what it shows): only the
            // change time moves, as for any chmod.
            let symlink = is_symlink(held).then_some(target).flatten();
            lock(&self.table).set_posix(ino, held, symlink.as_deref(), SystemTime::now());
            return Ok(());
        }
        if !local {
            let item = item_ref(kind, &box_id);
            self.write_posix(&item, &[(MODE_KEY, format_mode(mode))])
                .await?;
            self.xattrs.invalidate(ino);
        }
        // A file not on Box yet takes its mode there after its first upload.
        let symlink = is_symlink(Some(mode)).then_some(target).flatten();
        lock(&self.table).set_posix(ino, Some(mode), symlink.as_deref(), SystemTime::now());
        Ok(())
    }

    /// `chown`/`chgrp`: Box keeps no owners, so only the mount's own owner and group are
    /// taken (changing nothing); any other is EPERM.
    pub(in crate::fs) fn check_owner(
        &self,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), FsError> {
        let id = &self.opts.identity;
        if uid.is_some_and(|u| u != id.uid) || gid.is_some_and(|g| g != id.gid) {
            return Err(FsError::new(
                libc::EPERM,
                "Box keeps no owners: every item belongs to the mount's owner",
            ));
        }
        Ok(())
    }

    /// The mode given at `create` or `mkdir`, kept only where it differs from what an item
    /// without one shows (a plain `touch` or `mkdir` costs no metadata call: see
    /// [`BoxFs::set_mode`]).
    pub(in crate::fs) async fn keep_new_mode(
        &self,
        ino: Ino,
        requested: Option<u32>,
    ) -> Result<(), FsError> {
        let Some(perm) = requested.filter(|_| self.keeps_posix_attributes()) else {
            return Ok(());
        };
        self.set_mode(ino, perm).await
    }

    /// After the first upload of a file created here: the mode it was given goes to Box.
    /// A failure loses only the mode (the data is on Box), and is logged.
    pub(in crate::fs) async fn send_pending_mode(&self, ino: Ino) {
        if !self.keeps_posix_attributes() {
            return;
        }
        let (box_id, mode) = {
            let table = lock(&self.table);
            match table.get(ino) {
                Some(i) if !i.is_local() && i.kind() == Kind::File => {
                    (i.box_id().to_string(), i.attrs().mode)
                }
                _ => return,
            }
        };
        let Some(mode) = mode else {
            return;
        };
        let item = ItemRef::File(box_id.clone());
        if let Err(e) = self
            .write_posix(&item, &[(MODE_KEY, format_mode(mode))])
            .await
        {
            log::warn!("the mode of Box file {box_id} was not kept on Box: {e}");
        }
    }

    /// `symlink`: a small file holding the target, marked as a link.
    pub async fn symlink(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
        target: &Path,
    ) -> Result<FsAttr, FsError> {
        if !self.keeps_posix_attributes() {
            return Err(FsError::new(
                libc::EPERM,
                "Box has no symbolic links (mount with --posix-attributes to keep them)",
            ));
        }
        self.check_writable()?;
        let name = box_name(name)?;
        let target = target
            .to_str()
            .filter(|t| !t.is_empty() && t.len() <= SYMLINK_MAX)
            .ok_or_else(|| {
                FsError::new(
                    libc::EINVAL,
                    "a link's target is UTF-8 text of 1 to 4095 bytes",
                )
            })?
            .to_string();
        let parent_id = self.box_id_of_dir(parent)?;
        if self.existing(parent, OsStr::new(name)).await?.is_some() {
            return Err(FsError::new(libc::EEXIST, "the name exists"));
        }
        let staging = self.writes.staging()?.clone();
        let content = Bytes::from(target.clone().into_bytes());
        let (key, path) = blocking(move || {
            use std::io::Write;
            let (key, mut file) = staging.create()?;
            file.write_all(&content)?;
            Ok((key.clone(), staging.data_path(&key)))
        })
        .await?;
        let _own = self.own.name(&parent_id, name);
        let opts = UploadOptions {
            fields: STAT_FIELDS.iter().map(|s| s.to_string()).collect(),
            ..UploadOptions::default()
        };
        let uploaded = self.client.upload_file(&parent_id, name, path, &opts).await;
        let staging = self.writes.staging()?.clone();
        if let Err(e) = blocking(move || staging.remove(&key)).await {
            log::warn!("removing a symbolic link's staged content: {e}");
        }
        let item = uploaded?;
        let values = [
            (MODE_KEY, format_mode(SYMLINK_MODE)),
            (SYMLINK_KEY, target.clone()),
        ];
        if let Err(e) = self
            .write_posix(&ItemRef::File(item.id.clone()), &values)
            .await
        {
            // Not a link without its mark: the file goes again.
            if let Err(undo) = self.client.delete_file(&item.id, None).await {
                log::warn!("removing the unmarked link file {}: {undo}", item.id);
            }
            return Err(e);
        }
        let (ino, _) = self.store_item(parent, &item, true)?;
        let mut table = lock(&self.table);
        table.set_posix(ino, Some(SYMLINK_MODE), Some(&target), SystemTime::now());
        self.kernel.send(Invalidation::Attrs(ino));
        self.cached_attr(&table, ino)
    }

    /// `readlink`: the target kept with the link.
    pub async fn readlink(&self, ino: Ino) -> Result<Bytes, FsError> {
        self.getattr(ino).await?;
        let table = lock(&self.table);
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        let a = inode.attrs();
        match (&a.target, is_symlink(a.mode) && inode.kind() == Kind::File) {
            (Some(target), true) => Ok(Bytes::from(target.to_string())),
            _ => Err(FsError::new(libc::EINVAL, "not a symbolic link")),
        }
    }

    /// Writes `values` into the item's `global.properties`: a patch of the instance, or the
    /// instance made when there is none.
    async fn write_posix(&self, item: &ItemRef, values: &[(&str, String)]) -> Result<(), FsError> {
        let mut patch = MetadataPatch::new();
        for (key, value) in values {
            patch = patch.add(key, value.as_str());
        }
        match self
            .client
            .update_metadata(item, SCOPE, TEMPLATE, &patch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                let values: Map<String, Value> = values
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                    .collect();
                self.client
                    .create_metadata(item, SCOPE, TEMPLATE, &values)
                    .await
                    .map(|_| ())
                    .map_err(FsError::from_metadata)
            }
            Err(e) => Err(FsError::from_metadata(e)),
        }
    }
}

fn item_ref(kind: Kind, box_id: &str) -> ItemRef {
    match kind {
        Kind::Dir => ItemRef::Folder(box_id.to_string()),
        _ => ItemRef::File(box_id.to_string()),
    }
}
