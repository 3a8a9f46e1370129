//! Box's own features as extended attributes, all under `user.box.`: facts about the item,
//! its lock, its shared link and its metadata instances. This module owns the
//! `getxattr`/`listxattr`/`setxattr`/`removexattr` operations of [`BoxFs`]; [`names`] the
//! names and the values read, [`values`] the checks of values written, and `cache` the
//! short-lived cache of what Box said.
//!
//! # The attributes
//!
//! | name | value | set | remove |
//! |---|---|---|---|
//! | `user.box.id`, `.type`, `.etag`, `.sha1` (files), `.owner`, `.modified_by` (logins), `.created_at` | text | EPERM | EPERM |
//! | `user.box.version` (files) | the current `file_version` id | the id of an earlier version makes it current (see [`crate::fs::history::versions`]; EINVAL for an id that is not one of the file's earlier versions) | EPERM |
//! | `user.box.url` (web links) | the address | an `http://` or `https://` address re-points the link (EINVAL otherwise) | EPERM |
//! | `user.box.lock` (files) | JSON `{"holder", "created_at", "expires_at", "is_download_prevented"}` | locks: empty or `lock`, or JSON with `expires_at` (RFC 3339 or null) and `is_download_prevented` (the other two keys are ignored, so a value read can be written back) | unlocks |
//! | `user.box.shared_link` | the URL | `open`, `company` or `collaborators` creates or changes the link (empty: Box's default access) | unshares |
//! | `user.box.shared_link.download_url` (files) | the URL | EPERM | EPERM |
//! | `user.box.offline` | `1` when the item or a folder above it is pinned (kept on disk, see [`crate::fs::pin`]), else `0` | `1` pins, `0` unpins (EPERM inside a pinned folder; ENOSPC when the disk cannot take it) | unpins |
//! | `user.box.metadata.<scope>.<template>` | the instance's values as a JSON object | a JSON object creates or replaces the instance | deletes the instance |
//! | `user.box.metadata.<scope>.<template>.<field>` | one value as JSON (`"text"`, `1.5`, `["a","b"]`) | sets the field (creating the instance if there is none) | removes the field |
//!
//! An attribute that does not exist for the item (no lock, no link, a folder's `sha1`) is
//! not listed and reads as ENODATA. `user.box.offline` is never listed: it is this mount's
//! setting, not the item's, and `cp -a` or `rsync -X` would copy it onto other files. `<scope>` is `global` or `enterprise_<id>` as Box
//! reports it; `enterprise` is accepted as shorthand for the caller's enterprise. Instance
//! values leave out Box's bookkeeping (`$id`, `$version`, ...); `$` keys in a value written
//! are ignored, so an instance copied from the API can be pasted.
//!
//! # Errors
//!
//! - Names outside `user.box.`: ENODATA on get and remove, EOPNOTSUPP on set. `cp -a` and
//!   `rsync -X` take EOPNOTSUPP as "this filesystem keeps no such attributes" and go on
//!   silently; the mount stores nothing Box cannot hold.
//! - Unknown names under `user.box.` (a typo, a malformed scope or template key): ENODATA on
//!   get and remove, EINVAL on set.
//! - Read-only attributes: EPERM on set and remove (as for an immutable file: the caller
//!   may not change this, whatever its permissions).
//! - `XATTR_CREATE` on an attribute that exists: EEXIST; `XATTR_REPLACE` on one that does
//!   not: ENODATA. A lock on a folder: EOPNOTSUPP on set (Box locks files only).
//! - Values: bad JSON, a value of the wrong type for the template field, an option the field
//!   does not have, an unknown template or field: EINVAL, checked before anything is sent, so
//!   nothing changes on Box.
//! - Two writers: a field written or removed is sent as a JSON Patch guarded by a `test` of
//!   the value this mount last read, and an instance replaced by one guarded by a `test` of
//!   each value; Box applies a patch all or nothing. When the test fails (someone changed the
//!   instance since) the answer is EBUSY and the cache is dropped, so that reading again
//!   shows the other writer's value; the same when we create an instance another writer
//!   created since we looked (unless the caller asked for `XATTR_CREATE`: EEXIST). Not
//!   ESTALE, which the kernel retries (and the retry would overwrite the other writer), nor
//!   EAGAIN, which the VFS turns into EOPNOTSUPP (see `metadata_errno_of` in `errno.rs`).
//!   JSON Patch cannot test that a key is absent, so adding a field that did not exist is
//!   guarded only by what a reader of this mount last saw (`seen`): Box reports another
//!   writer's change within a second and the events task drops the cache, so the values a
//!   write is decided on are remembered apart from it, and a write finding Box's values
//!   different from those is refused with EBUSY before anything is sent. Deleting an
//!   instance is checked the same way.
//! - A read-only mount: EROFS on set and remove.
//! - A file created here that is not on Box yet (still being written, or its upload
//!   failed): nothing listed, ENODATA on get and remove; a set uploads the file first
//!   (as fsync would) and fails as that upload does.
//!
//! # Cost
//!
//! Values are fetched on demand (the item with `fields=`, the metadata instances with one
//! `GET .../metadata` that lists them all) and kept for [`XATTR_TTL`], or until
//! an invalidation of the inode drops them (the cache hears of every one the kernel queue
//! carries, see `XattrCache`'s `StaleCache`); a cached item is also
//! dropped when the inode table learns a newer `sequence_id`. Our own changes put Box's
//! answer in the cache (a lock or link change is answered with the item and its fields, a
//! metadata change with the instance), so reading back what was just set asks nothing. `user.box.id` and
//! `user.box.type` and every name outside `user.box.` are answered without asking Box.
//! `listxattr` costs both requests, made at once; `getfattr -d` then reads from the cache.
//!
//! `ls -l` as GNU coreutils 9.1 does it asks for `security.selinux` and
//! `system.posix_acl_access`. Names outside `user.` are answered `EOPNOTSUPP` without a
//! task, and `ls` then stops asking for the rest of the mount (with `ENODATA` it would ask
//! every entry: 20,000 kernel round trips for 10,000 files). The mount does not negotiate
//! `FUSE_POSIX_ACL`: the kernel enforces no ACLs and passes their queries on. `ls` implementations that look for
//! ACLs with `listxattr` instead (uutils, newer gnulib) make a cold `ls -l` cost those two
//! requests per file. Answering that cheaply needs the attributes of a whole folder at once
//! (a listing with the `lock`, `shared_link` and `metadata.<scope>.<template>` fields).

mod cache;
pub mod names;
mod seen;
pub mod values;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::{Map, Value};

use super::{lock, BoxFs, STAT_FIELDS};
use crate::fs::errno::FsError;
use crate::fs::kernel::Invalidation;
use crate::fs::tree::inode::{is_local_id, Ino, Kind, ROOT_INO};
use box_client::error::BoxResult;
use box_client::folders::{SharedLinkSettings, ROOT_FOLDER};
use box_client::metadata::{ItemRef, MetadataInstance, MetadataPatch};
use box_client::types::{FileVersion, Item};
use box_client::web_links::{check_url, WebLinkUpdate};
pub use cache::{XattrCache, XATTR_TTL};
use names::{
    active_lock, attribute_names, find_instance, item_value, to_json_bytes, Fact, NameError,
    TemplateRef, XattrName,
};
pub use names::{sized_reply, XattrReply, PREFIX};
use values::{
    field_patch, invalid, no_data, not_ours, parse_json, parse_link_access, parse_lock_value,
    parse_offline, read_only, replace_patch, Mode, Schema,
};

/// Item fields the attributes need besides [`STAT_FIELDS`] (which come along so that every
/// fetch refreshes the inode's `stat` too).
const EXTRA_FIELDS: &[&str] = &["owned_by", "modified_by", "shared_link"];

/// Whether the table keeps attribute `name` (offline it answers from there).
fn kept_offline(name: &XattrName) -> bool {
    matches!(
        name,
        XattrName::Fact(Fact::Etag | Fact::Sha1 | Fact::Version | Fact::Url)
    )
}

/// What the attributes of an inode are about.
#[derive(Debug, Clone)]
struct Target {
    box_id: String,
    kind: Kind,
    sequence_id: Option<u64>,
}

impl Target {
    /// The item as the metadata and shared link calls name it. Box has no metadata on web
    /// links, and this mount does not share them.
    fn item_ref(&self) -> Result<ItemRef, FsError> {
        match self.kind {
            Kind::File => Ok(ItemRef::File(self.box_id.clone())),
            Kind::Dir => Ok(ItemRef::Folder(self.box_id.clone())),
            Kind::Link => Err(FsError::new(
                libc::EOPNOTSUPP,
                "a web link has only its facts and its URL as attributes",
            )),
        }
    }

    fn fields(&self) -> Vec<&'static str> {
        let mut fields: Vec<&'static str> =
            STAT_FIELDS.iter().chain(EXTRA_FIELDS).copied().collect();
        if self.kind == Kind::File {
            // Box locks files only: `lock` is not a folder field.
            fields.push("lock");
        }
        fields
    }

    /// Box keeps no metadata on the root folder ("All Files" answers 403), nor on web links.
    fn has_metadata(&self) -> bool {
        self.box_id != ROOT_FOLDER && self.kind != Kind::Link
    }

    /// A file created here whose upload has not happened yet (it failed, or the file is
    /// still being written): Box knows nothing of it, so it has no attributes.
    fn not_on_box(&self) -> bool {
        is_local_id(&self.box_id)
    }
}

impl BoxFs {
    fn xattr_target(&self, ino: Ino) -> Result<Target, FsError> {
        let table = lock(&self.table);
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        Ok(Target {
            box_id: inode.box_id().to_string(),
            kind: inode.kind(),
            sequence_id: inode.attrs().sequence_id,
        })
    }

    /// Stores Box's answer about `ino` (a fetch, or the answer to our own change) in the inode
    /// table, so that `stat` sees it and the event echoing our change finds nothing new.
    fn record_item(&self, ino: Ino, item: &Item) {
        let mut table = lock(&self.table);
        let parent = match table.get(ino).map(|i| i.parent()) {
            Some(Some(p)) => p,
            Some(None) if ino == ROOT_INO => ROOT_INO,
            // Detached, or evicted meanwhile: nothing to update.
            _ => return,
        };
        if let Err(e) = table.insert_or_update_from_item(parent, item) {
            log::debug!("keeping inode {ino} as it was: {e}");
        }
    }

    /// The item with the fields the attributes need, from the cache or from Box.
    async fn xattr_item(&self, ino: Ino, t: &Target) -> Result<Arc<Item>, FsError> {
        if let Some(item) = self.xattrs.item(ino, t.sequence_id) {
            return Ok(item);
        }
        let started = Instant::now();
        self.counters.item_fetches.fetch_add(1, Ordering::Relaxed);
        let fields = t.fields();
        let fetched = match t.kind {
            Kind::File => self.client.file_with_fields(&t.box_id, &fields).await,
            Kind::Dir => self.client.folder_with_fields(&t.box_id, &fields).await,
            Kind::Link => self.client.web_link_with_fields(&t.box_id, &fields).await,
        };
        let item = match fetched {
            Ok(item) => Arc::new(item),
            Err(e) if e.is_not_found() && ino != ROOT_INO => {
                self.forget_removed(ino);
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        self.record_item(ino, &item);
        self.xattrs.store_item(ino, started, item.clone());
        Ok(item)
    }

    /// Every metadata instance on the item, from the cache or from Box (one request).
    async fn xattr_instances(
        &self,
        ino: Ino,
        t: &Target,
    ) -> Result<Arc<Vec<MetadataInstance>>, FsError> {
        if !t.has_metadata() {
            return Ok(Arc::default());
        }
        if let Some(list) = self.xattrs.instances(ino) {
            return Ok(list);
        }
        let started = Instant::now();
        let list = self
            .client
            .metadata_list(&t.item_ref()?)
            .await
            .map_err(FsError::from_metadata)?;
        let list = Arc::new(list);
        self.xattrs.store_instances(ino, started, list.clone());
        Ok(list)
    }

    /// The schema values of `tref` are checked against. An unknown template is EINVAL: the
    /// name refers to nothing that can be written.
    async fn template_schema(&self, tref: &TemplateRef) -> Result<Arc<Schema>, FsError> {
        if tref.is_free_form() {
            return Ok(Arc::new(Schema::FreeForm));
        }
        if let Some(schema) = self.xattrs.template(tref) {
            return Ok(schema);
        }
        let template = match self
            .client
            .metadata_template(&tref.scope, &tref.template)
            .await
        {
            Ok(t) => t,
            Err(e) if e.is_not_found() => {
                return Err(invalid(format!(
                    "there is no metadata template {}.{}",
                    tref.scope, tref.template
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let schema = Arc::new(Schema::of(&template));
        self.xattrs.store_template(tref, schema.clone());
        Ok(schema)
    }

    /// `getxattr`: the value of attribute `name` of `ino`.
    pub async fn getxattr(&self, ino: Ino, name: &OsStr) -> Result<Vec<u8>, FsError> {
        if let Some(value) = self.history_getxattr(ino, name).await {
            return value;
        }
        let name = match XattrName::parse(name.as_bytes()) {
            Ok(n) => n,
            Err(_) => return Err(not_ours(name.as_bytes())),
        };
        if name == XattrName::Offline {
            let on = self.offline_state(ino)?;
            return Ok(if on { b"1".to_vec() } else { b"0".to_vec() });
        }
        let t = self.xattr_target(ino)?;
        if t.not_on_box() {
            return Err(no_data());
        }
        let value = match &name {
            // Known without asking Box.
            XattrName::Fact(Fact::Id) => Some(t.box_id.clone().into_bytes()),
            XattrName::Fact(Fact::Type) => Some(t.kind.box_type().into()),
            XattrName::Instance(tref) => {
                let list = self.xattr_instances(ino, &t).await?;
                let inst = find_instance(&list, tref);
                self.xattrs
                    .seen
                    .record(ino, tref, inst.map(|i| i.values.clone()));
                inst.map(|i| to_json_bytes(&i.values)).transpose()?
            }
            XattrName::Field(tref, key) => {
                let list = self.xattr_instances(ino, &t).await?;
                let inst = find_instance(&list, tref);
                self.xattrs
                    .seen
                    .record(ino, tref, inst.map(|i| i.values.clone()));
                inst.and_then(|i| i.get(key))
                    .map(to_json_bytes)
                    .transpose()?
            }
            _ => {
                let item = match self.xattr_item(ino, &t).await {
                    Ok(item) => item,
                    Err(e) if e.is_unreachable() && kept_offline(&name) => {
                        Arc::new(self.item_from_table(ino, &t)?)
                    }
                    Err(e) => return Err(e),
                };
                item_value(&name, &item, Utc::now()).map(String::into_bytes)
            }
        };
        value.ok_or_else(no_data)
    }

    /// Box out of reach (`crate::fs::offline`): the item as the table and the metadata store
    /// keep it, which is its id, type, etag, sha1 and version. Its owner, lock, shared link
    /// and metadata are not kept; reading them offline fails with ENETUNREACH.
    fn item_from_table(&self, ino: Ino, t: &Target) -> Result<Item, FsError> {
        let table = lock(&self.table);
        let inode = table
            .get(ino)
            .ok_or_else(|| FsError::not_found(format!("no inode {ino}")))?;
        let attrs = inode.attrs();
        Ok(Item {
            kind: t.kind.box_type().into(),
            id: t.box_id.clone(),
            etag: attrs.etag.as_deref().map(Into::into),
            sha1: attrs.sha1.as_deref().map(Into::into),
            file_version: attrs.version.as_deref().map(|id| FileVersion {
                id: id.into(),
                ..FileVersion::default()
            }),
            url: attrs.target().map(Into::into),
            ..Item::default()
        })
    }

    /// `listxattr`: the names of the attributes `ino` has, each followed by a NUL.
    pub async fn listxattr(&self, ino: Ino) -> Result<Vec<u8>, FsError> {
        if let Some(names) = self.history_listxattr(ino).await {
            return names;
        }
        let t = self.xattr_target(ino)?;
        if t.not_on_box() {
            return Ok(Vec::new());
        }
        let (item, instances) =
            match tokio::try_join!(self.xattr_item(ino, &t), self.xattr_instances(ino, &t)) {
                Ok(both) => both,
                // Offline: the attributes the table keeps (see `item_from_table`).
                Err(e) if e.is_unreachable() => {
                    (Arc::new(self.item_from_table(ino, &t)?), Arc::default())
                }
                Err(e) => return Err(e),
            };
        let mut out = Vec::new();
        for name in attribute_names(&item, &instances, Utc::now()) {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// `setxattr`: changes the lock, the shared link or metadata of `ino`.
    pub async fn setxattr(
        &self,
        ino: Ino,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<(), FsError> {
        self.history_refuses(ino)?;
        if name.as_bytes() == format!("{PREFIX}{}", names::OFFLINE).as_bytes() {
            // Local to this mount, so also on a read-only one. The attribute always exists.
            Mode::of(flags)?.check(true)?;
            let on = parse_offline(value)?;
            if on && self.xattr_target(ino)?.not_on_box() {
                self.upload_staged_file(ino).await?;
            }
            return self.set_offline(ino, on).await;
        }
        self.check_writable()?;
        let mode = Mode::of(flags)?;
        let parsed = match XattrName::parse(name.as_bytes()) {
            Ok(n) => n,
            Err(NameError::Foreign) => {
                return Err(FsError::new(
                    libc::EOPNOTSUPP,
                    "Box keeps only the user.box. attributes",
                ))
            }
            Err(NameError::Unknown(why)) => return Err(invalid(why)),
        };
        let mut t = self.xattr_target(ino)?;
        if t.not_on_box()
            && !matches!(
                parsed,
                XattrName::Fact(_) | XattrName::SharedLinkDownloadUrl
            )
        {
            // What is set goes on Box's file: the file goes there first (as fsync would).
            self.upload_staged_file(ino).await?;
            t = self.xattr_target(ino)?;
        }
        match &parsed {
            XattrName::Fact(Fact::Version) if t.kind == Kind::File && !t.not_on_box() => {
                mode.check(true)?;
                self.promote_version(ino, &t.box_id, value).await
            }
            XattrName::Fact(Fact::Url) if t.kind == Kind::Link => {
                self.set_url(ino, &t, value, mode).await
            }
            XattrName::Fact(_) | XattrName::SharedLinkDownloadUrl => Err(read_only(name)),
            XattrName::Offline => self.set_offline(ino, parse_offline(value)?).await,
            XattrName::Lock => self.set_lock(ino, &t, value, mode).await,
            XattrName::SharedLink => self.set_shared_link(ino, &t, value, mode).await,
            XattrName::Instance(tref) => self.set_instance(ino, &t, tref, value, mode).await,
            XattrName::Field(tref, key) => self.set_field(ino, &t, tref, key, value, mode).await,
        }
    }

    /// `removexattr`: unlocks, unshares, or deletes metadata of `ino`.
    pub async fn removexattr(&self, ino: Ino, name: &OsStr) -> Result<(), FsError> {
        self.history_refuses(ino)?;
        let parsed = XattrName::parse(name.as_bytes()).map_err(|_| not_ours(name.as_bytes()))?;
        if parsed == XattrName::Offline {
            return self.set_offline(ino, false).await;
        }
        self.check_writable()?;
        let t = self.xattr_target(ino)?;
        if t.not_on_box() {
            return Err(no_data());
        }
        match &parsed {
            XattrName::Fact(_) | XattrName::SharedLinkDownloadUrl => Err(read_only(name)),
            XattrName::Offline => self.set_offline(ino, false).await,
            XattrName::Lock => self.remove_lock(ino, &t).await,
            XattrName::SharedLink => self.remove_shared_link(ino, &t).await,
            XattrName::Instance(_) if !t.has_metadata() => Err(no_data()),
            XattrName::Instance(tref) => self.delete_instance(ino, &t, tref).await,
            XattrName::Field(tref, key) => {
                self.change_field(ino, &t, tref, key, None, Mode::Any).await
            }
        }
    }

    /// Uploads the staged data of `ino` now (a file created here that is not on Box yet).
    async fn upload_staged_file(&self, ino: Ino) -> Result<(), FsError> {
        let staged = self
            .writes
            .staged(ino)
            .ok_or_else(|| FsError::not_found(format!("inode {ino} is not on Box")))?;
        self.upload_now(&staged).await
    }

    /// Awaits a change of `ino`'s lock or shared link that Box answers with the item (with
    /// the fields the attributes need), and records the answer in the table and the cache.
    /// A failure drops the cached item: Box may have applied the change before it failed.
    async fn change_item(
        &self,
        ino: Ino,
        change: impl std::future::Future<Output = BoxResult<Item>>,
    ) -> Result<(), FsError> {
        match change.await {
            Ok(item) => {
                self.record_item(ino, &item);
                self.xattrs.replace_item(ino, Arc::new(item));
                Ok(())
            }
            Err(e) => {
                self.xattrs.invalidate_item(ino);
                Err(e.into())
            }
        }
    }

    /// Awaits a change of `ino`'s metadata instance of `tref`: Box's answer (the instance, or
    /// `None` when it was deleted) goes into the cached list. A failure drops the list:
    /// after a failed `test` that is the point (reading again shows the other writer's
    /// value), and Box may have applied a change before it failed.
    async fn change_instance(
        &self,
        ino: Ino,
        tref: &TemplateRef,
        change: impl std::future::Future<Output = BoxResult<Option<MetadataInstance>>>,
    ) -> BoxResult<()> {
        match change.await {
            Ok(answer) => {
                self.xattrs.change_instances(
                    ino,
                    Some(|list: &mut Vec<MetadataInstance>| {
                        list.retain(|i| !tref.matches(i));
                        list.extend(answer);
                    }),
                );
                Ok(())
            }
            Err(e) => {
                self.xattrs
                    .change_instances(ino, None::<fn(&mut Vec<MetadataInstance>)>);
                Err(e)
            }
        }
    }

    async fn set_lock(
        &self,
        ino: Ino,
        t: &Target,
        value: &[u8],
        mode: Mode,
    ) -> Result<(), FsError> {
        if t.kind != Kind::File {
            return Err(FsError::new(libc::EOPNOTSUPP, "Box locks files only"));
        }
        let opts = parse_lock_value(value)?;
        if mode != Mode::Any {
            let item = self.xattr_item(ino, t).await?;
            mode.check(active_lock(&item, Utc::now()).is_some())?;
        }
        let fields = t.fields();
        let lock = self.client.lock_file_with_fields(&t.box_id, &opts, &fields);
        self.change_item(ino, lock).await
    }

    async fn remove_lock(&self, ino: Ino, t: &Target) -> Result<(), FsError> {
        if t.kind != Kind::File {
            return Err(no_data());
        }
        let item = self.xattr_item(ino, t).await?;
        if active_lock(&item, Utc::now()).is_none() {
            return Err(no_data());
        }
        let fields = t.fields();
        let unlock = self.client.unlock_file_with_fields(&t.box_id, &fields);
        self.change_item(ino, unlock).await
    }

    /// Points a web link at another address (`user.box.url`). Box keeps only `http://` and
    /// `https://` addresses: anything else is EINVAL before anything is sent. The link's file
    /// changes with it, so the kernel drops what it read of it.
    async fn set_url(&self, ino: Ino, t: &Target, value: &[u8], mode: Mode) -> Result<(), FsError> {
        mode.check(true)?;
        let url = std::str::from_utf8(value)
            .map_err(|_| invalid("a URL is text"))?
            .trim();
        check_url(url).map_err(|e| invalid(e.to_string()))?;
        let changes = WebLinkUpdate {
            url: Some(url.to_string()),
            ..WebLinkUpdate::default()
        };
        self.change_item(ino, self.client.update_web_link(&t.box_id, &changes))
            .await?;
        self.kernel.send(Invalidation::Inode(ino));
        Ok(())
    }

    async fn set_shared_link(
        &self,
        ino: Ino,
        t: &Target,
        value: &[u8],
        mode: Mode,
    ) -> Result<(), FsError> {
        let mut settings = SharedLinkSettings::new();
        if let Some(access) = parse_link_access(value)? {
            settings = settings.access(access);
        }
        if mode != Mode::Any {
            let item = self.xattr_item(ino, t).await?;
            mode.check(item.shared_link.is_some())?;
        }
        let (item, fields) = (t.item_ref()?, t.fields());
        let share = self
            .client
            .share_item_with_fields(&item, &settings, &fields);
        self.change_item(ino, share).await
    }

    async fn remove_shared_link(&self, ino: Ino, t: &Target) -> Result<(), FsError> {
        let item = self.xattr_item(ino, t).await?;
        if item.shared_link.is_none() {
            return Err(no_data());
        }
        let (item, fields) = (t.item_ref()?, t.fields());
        let unshare = self.client.unshare_item_with_fields(&item, &fields);
        self.change_item(ino, unshare).await
    }

    async fn set_instance(
        &self,
        ino: Ino,
        t: &Target,
        tref: &TemplateRef,
        value: &[u8],
        mode: Mode,
    ) -> Result<(), FsError> {
        // Checked before anything else: bad JSON is EINVAL even for an unknown template.
        parse_json(value)?;
        let schema = self.template_schema(tref).await?;
        let new = schema.check_instance(value)?;
        let list = self.xattr_instances(ino, t).await?;
        let existing = find_instance(&list, tref);
        mode.check(existing.is_some())?;
        self.unchanged_since_seen(ino, tref, existing, None)?;
        match existing.map(|old| replace_patch(&old.values, &new)) {
            None => self.create_instance(ino, t, tref, &new, mode).await,
            Some(Some(patch)) => self.patch_instance(ino, t, tref, &patch).await,
            Some(None) => Ok(()),
        }
    }

    async fn set_field(
        &self,
        ino: Ino,
        t: &Target,
        tref: &TemplateRef,
        key: &str,
        value: &[u8],
        mode: Mode,
    ) -> Result<(), FsError> {
        let v = parse_json(value)?;
        let schema = self.template_schema(tref).await?;
        let v = schema.check(key, &v)?;
        let list = self.xattr_instances(ino, t).await?;
        let old = find_instance(&list, tref).and_then(|i| i.get(key));
        mode.check(old.is_some())?;
        self.change_field(ino, t, tref, key, Some(v), mode).await
    }

    /// Sets (`Some`) or removes (`None`) one field, guarded by the value last read; creates
    /// the instance when a field is set on an item without one.
    async fn change_field(
        &self,
        ino: Ino,
        t: &Target,
        tref: &TemplateRef,
        key: &str,
        new: Option<Value>,
        mode: Mode,
    ) -> Result<(), FsError> {
        let list = self.xattr_instances(ino, t).await?;
        self.unchanged_since_seen(ino, tref, find_instance(&list, tref), Some(key))?;
        let Some(inst) = find_instance(&list, tref) else {
            let Some(v) = new else {
                return Err(no_data());
            };
            let values = Map::from_iter([(key.to_string(), v)]);
            return self.create_instance(ino, t, tref, &values, mode).await;
        };
        let old = inst.get(key);
        if old.is_none() && new.is_none() {
            return Err(no_data());
        }
        self.patch_instance(ino, t, tref, &field_patch(key, old, new))
            .await
    }

    /// Deletes the item's instance of `tref`, unless it changed since a reader last saw it.
    async fn delete_instance(
        &self,
        ino: Ino,
        t: &Target,
        tref: &TemplateRef,
    ) -> Result<(), FsError> {
        if self.xattrs.seen.get(ino, tref).is_some() {
            let list = self.xattr_instances(ino, t).await?;
            self.unchanged_since_seen(ino, tref, find_instance(&list, tref), None)?;
        }
        let item = t.item_ref()?;
        let delete = async {
            self.client
                .delete_metadata(&item, &tref.scope, &tref.template)
                .await
                .map(|()| None)
        };
        self.change_instance(ino, tref, delete)
            .await
            .map_err(FsError::from_metadata)
    }

    /// Refuses (EBUSY) a write to `tref` on `ino` when Box's values, `now`, differ from what
    /// a reader of this mount last saw (the field `key`, or the whole instance): someone
    /// changed it since, and the write was decided on the old values. The event reporting
    /// that change drops the attribute cache, so without this check the write would be
    /// tested against the other writer's values, pass, and overwrite them. Either way this
    /// write is now the basis: what was seen is forgotten.
    fn unchanged_since_seen(
        &self,
        ino: Ino,
        tref: &TemplateRef,
        now: Option<&MetadataInstance>,
        key: Option<&str>,
    ) -> Result<(), FsError> {
        let Some(seen) = self.xattrs.seen.get(ino, tref) else {
            return Ok(());
        };
        self.xattrs.seen.forget(ino, tref);
        let same = match key {
            Some(k) => seen.as_ref().and_then(|v| v.get(k)) == now.and_then(|i| i.get(k)),
            None => seen.as_ref() == now.map(|i| &i.values),
        };
        if same {
            return Ok(());
        }
        self.xattrs.invalidate(ino);
        Err(FsError::new(
            libc::EBUSY,
            format!(
                "{}.{} changed on Box since it was read; read it again",
                tref.scope, tref.template
            ),
        ))
    }

    /// Puts a new instance on the item. If someone else put one there since we looked, that
    /// is EEXIST when the caller asked for `XATTR_CREATE`, and otherwise the same "changed
    /// since you read it" as a failed `test` (EBUSY, see `metadata_errno_of`).
    async fn create_instance(
        &self,
        ino: Ino,
        t: &Target,
        tref: &TemplateRef,
        values: &Map<String, Value>,
        mode: Mode,
    ) -> Result<(), FsError> {
        let item = t.item_ref()?;
        let create = async {
            self.client
                .create_metadata(&item, &tref.scope, &tref.template, values)
                .await
                .map(Some)
        };
        match self.change_instance(ino, tref, create).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = FsError::from_metadata(e);
                if e.errno() == libc::EEXIST && mode != Mode::Create {
                    Err(FsError::new(libc::EBUSY, e.message()))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Applies a patch to the item's instance (all or nothing on Box's side).
    async fn patch_instance(
        &self,
        ino: Ino,
        t: &Target,
        tref: &TemplateRef,
        patch: &MetadataPatch,
    ) -> Result<(), FsError> {
        let item = t.item_ref()?;
        let update = async {
            self.client
                .update_metadata(&item, &tref.scope, &tref.template, patch)
                .await
                .map(Some)
        };
        self.change_instance(ino, tref, update)
            .await
            .map_err(FsError::from_metadata)
    }
}
