//! The operations of `--posix-attributes` (see `tree::posix` for how they are kept on Box):
//! `chmod`, `chown`, `symlink` and `readlink`, the mode and owner of a new file or folder
//! (given at `create`/`mkdir`, and the caller), and those of a file created here written once
//! its first upload gave it a Box id. Without the option, `symlink` stays EPERM and a mode or
//! an owner is accepted and changes nothing, as before.
//!
//! A change is one metadata call: a JSON Patch `add` of the keys on the item's
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
use crate::fs::tree::inode::{Extra, Ino, Kind, ROOT_INO};
use crate::fs::tree::posix::{
    format_mode, is_symlink, GID_KEY, MODE_KEY, SCOPE, SYMLINK_KEY, SYMLINK_MODE, TEMPLATE, UID_KEY,
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
        let held = self.posix_target(ino)?;
        let type_bits = match held.kind {
            _ if is_symlink(held.mode) => libc::S_IFLNK,
            Kind::Dir => libc::S_IFDIR,
            _ => libc::S_IFREG,
        };
        let default = match held.kind {
            Kind::Dir => 0o777,
            _ => 0o666,
        } & !self.opts.identity.umask;
        let mode = type_bits | (perm & 0o7777);
        let unchanged = held.mode.map_or(default, |m| m & 0o7777) == perm & 0o7777;
        // Nothing to keep when it shows that mode already (git sets every lock file's mode to
        // what it shows): only the change time moves, as for any chmod.
        let values = if unchanged {
            Vec::new()
        } else {
            vec![(MODE_KEY, format_mode(mode))]
        };
        self.keep_posix(ino, &held, &values).await?;
        let mode = if unchanged { held.mode } else { Some(mode) };
        lock(&self.table).set_posix(ino, |e| e.mode = mode, SystemTime::now());
        Ok(())
    }

    /// `chown`/`chgrp`: the owner and group kept on Box (the kernel has checked that the
    /// caller may: only root gives a file away). Ids it shows already are not written again.
    pub(in crate::fs) async fn set_owner(
        &self,
        ino: Ino,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<(), FsError> {
        let held = self.posix_target(ino)?;
        let id = &self.opts.identity;
        let uid = uid.filter(|&u| u != held.uid.unwrap_or(id.uid));
        let gid = gid.filter(|&g| g != held.gid.unwrap_or(id.gid));
        let mut values = Vec::new();
        if let Some(u) = uid {
            values.push((UID_KEY, u.to_string()));
        }
        if let Some(g) = gid {
            values.push((GID_KEY, g.to_string()));
        }
        self.keep_posix(ino, &held, &values).await?;
        let change = |e: &mut Extra| {
            if uid.is_some() {
                e.uid = uid;
            }
            if gid.is_some() {
                e.gid = gid;
            }
        };
        lock(&self.table).set_posix(ino, change, SystemTime::now());
        Ok(())
    }

    /// The mode given at `create`, `mkdir` or `symlink` and the caller who made it, kept
    /// where they differ from what an item without them shows (a plain `touch` or `mkdir`
    /// by the mount's owner costs no metadata call).
    pub(in crate::fs) async fn keep_new_attrs(
        &self,
        ino: Ino,
        requested: Option<u32>,
        caller: Option<(u32, u32)>,
    ) -> Result<(), FsError> {
        if !self.keeps_posix_attributes() {
            return Ok(());
        }
        if let Some(perm) = requested {
            self.set_mode(ino, perm).await?;
        }
        if let Some((uid, gid)) = caller {
            self.set_owner(ino, Some(uid), Some(gid)).await?;
        }
        Ok(())
    }

    /// After the first upload of a file created here: the mode and owner it was given go to
    /// Box. A failure loses only those (the data is on Box), and is logged.
    pub(in crate::fs) async fn send_pending_posix(&self, ino: Ino) {
        if !self.keeps_posix_attributes() {
            return;
        }
        let Ok(held) = self.posix_target(ino) else {
            return;
        };
        if held.local || held.kind != Kind::File {
            return;
        }
        let mut values = Vec::new();
        if let Some(mode) = held.mode {
            values.push((MODE_KEY, format_mode(mode)));
        }
        if let Some(uid) = held.uid {
            values.push((UID_KEY, uid.to_string()));
        }
        if let Some(gid) = held.gid {
            values.push((GID_KEY, gid.to_string()));
        }
        if values.is_empty() {
            return;
        }
        let item = ItemRef::File(held.box_id.clone());
        // The change time stays the creation's: these attributes were the file's from its
        // first moment, and Box's answers never move a change time backwards.
        if let Err(e) = self.write_posix(&item, &values).await {
            log::warn!(
                "the mode and owner of Box file {} were not kept on Box: {e}",
                held.box_id
            );
        }
    }

    /// What a change of `ino`'s POSIX attributes needs to know of it.
    fn posix_target(&self, ino: Ino) -> Result<PosixTarget, FsError> {
        let table = lock(&self.table);
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        if inode.kind() == Kind::Link {
            return Err(FsError::new(
                libc::EPERM,
                "a web link's mode and owner are fixed",
            ));
        }
        let a = inode.attrs();
        Ok(PosixTarget {
            box_id: inode.box_id().to_string(),
            kind: inode.kind(),
            root: ino == ROOT_INO,
            local: inode.is_local(),
            mode: a.mode(),
            uid: a.uid(),
            gid: a.gid(),
        })
    }

    /// Writes `values` for the item unless there are none; a file not on Box yet takes them
    /// there after its first upload.
    async fn keep_posix(
        &self,
        ino: Ino,
        held: &PosixTarget,
        values: &[(&str, String)],
    ) -> Result<(), FsError> {
        if values.is_empty() || held.local {
            return Ok(());
        }
        if held.root && held.box_id == ROOT_FOLDER {
            return Err(FsError::new(
                libc::EPERM,
                "Box keeps no metadata on All Files, so no mode or owner",
            ));
        }
        let item = match held.kind {
            Kind::Dir => ItemRef::Folder(held.box_id.clone()),
            _ => ItemRef::File(held.box_id.clone()),
        };
        self.write_posix(&item, values).await?;
        self.xattrs.invalidate(ino);
        Ok(())
    }

    /// `symlink`: a small file holding the target, marked as a link, owned by `caller`.
    pub async fn symlink(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
        target: &Path,
        caller: Option<(u32, u32)>,
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
        let mut values = vec![
            (MODE_KEY, format_mode(SYMLINK_MODE)),
            (SYMLINK_KEY, target.clone()),
        ];
        let id = &self.opts.identity;
        let (uid, gid) = caller.unwrap_or((id.uid, id.gid));
        let uid = (uid != id.uid).then_some(uid);
        let gid = (gid != id.gid).then_some(gid);
        if let Some(u) = uid {
            values.push((UID_KEY, u.to_string()));
        }
        if let Some(g) = gid {
            values.push((GID_KEY, g.to_string()));
        }
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
        self.entries_changed(&[parent]);
        let mut table = lock(&self.table);
        let link = |e: &mut Extra| {
            e.mode = Some(SYMLINK_MODE);
            e.target = Some(target.as_str().into());
            e.uid = uid;
            e.gid = gid;
        };
        table.set_posix(ino, link, SystemTime::now());
        self.kernel.send(Invalidation::Attrs(ino));
        self.cached_attr(&table, ino)
    }

    /// `readlink`: the target kept with the link.
    pub async fn readlink(&self, ino: Ino) -> Result<Bytes, FsError> {
        if let Some(target) = self.history_readlink(ino) {
            return target;
        }
        self.getattr(ino).await?;
        let table = lock(&self.table);
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        let a = inode.attrs();
        match (
            a.target(),
            is_symlink(a.mode()) && inode.kind() == Kind::File,
        ) {
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

/// What [`BoxFs::posix_target`] reads of an inode.
struct PosixTarget {
    box_id: String,
    kind: Kind,
    root: bool,
    local: bool,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}
