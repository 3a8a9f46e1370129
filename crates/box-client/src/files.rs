//! Files: reading one (with `fields`), renaming, moving, copying, deleting with
//! `If-Match`, locks, shared links, versions, descriptions and the trash; and, from the
//! `download` module, their content (whole, by byte range, through a shared
//! [`DownloadSource`], or as a resolved URL for callers that read in parallel themselves).

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::Client;
use super::error::BoxResult;
use super::folders::SharedLinkSettings;
use super::items::{changes_body, ItemKind, STANDARD_FIELDS};
use super::types::{FileVersion, Item, SharedLink};
use super::users::check_id;

pub use super::download::{ByteRange, Download, DownloadOptions, DownloadSource, DownloadUrl};

/// The fields of Box's standard file representation, plus `lock` (a full-only field).
pub const FILE_FIELDS_WITH_LOCK: &[&str] = &[
    "type",
    "id",
    "etag",
    "sequence_id",
    "name",
    "sha1",
    "file_version",
    "description",
    "size",
    "path_collection",
    "created_at",
    "modified_at",
    "trashed_at",
    "purged_at",
    "content_created_at",
    "content_modified_at",
    "created_by",
    "modified_by",
    "owned_by",
    "shared_link",
    "parent",
    "item_status",
    "lock",
];

/// Changes to a file in one request (Box lets a file rename and move at once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileUpdate {
    pub name: Option<String>,
    /// Move into this folder.
    pub parent_id: Option<String>,
    /// At most 256 characters.
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

impl FileUpdate {
    fn to_json(&self) -> BoxResult<Value> {
        let mut body = changes_body(
            self.name.as_deref(),
            self.description.as_deref(),
            self.tags.as_deref(),
        )?;
        if let Some(p) = &self.parent_id {
            check_id(p)?;
            body["parent"] = json!({ "id": p });
        }
        Ok(body)
    }
}

/// A lock to put on a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockOptions {
    /// When the lock ends by itself; never when `None`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether others are kept from downloading the file meanwhile.
    pub is_download_prevented: bool,
}

#[derive(Deserialize)]
struct Versions {
    #[serde(default)]
    total_count: u64,
    #[serde(default)]
    entries: Vec<FileVersion>,
}

impl Client {
    /// A file's standard representation.
    pub async fn file(&self, file_id: &str) -> BoxResult<Item> {
        self.file_with_fields(file_id, &[] as &[&str]).await
    }

    /// A file with exactly the named fields (plus `type`, `id` and `etag`), e.g.
    /// `["name", "size", "lock", "permissions"]`.
    pub async fn file_with_fields<S: AsRef<str>>(
        &self,
        file_id: &str,
        fields: &[S],
    ) -> BoxResult<Item> {
        self.item_with_fields(ItemKind::File, file_id, fields).await
    }

    /// Renames a file.
    pub async fn rename_file(&self, file_id: &str, name: &str) -> BoxResult<Item> {
        self.rename_item(ItemKind::File, file_id, name).await
    }

    /// Moves a file into `parent_id`, renaming it too when `name` is given (one request:
    /// unlike folders, Box takes both at once for files).
    pub async fn move_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        self.update_file(
            file_id,
            &FileUpdate {
                name: name.map(str::to_string),
                parent_id: Some(parent_id.to_string()),
                ..FileUpdate::default()
            },
            None,
        )
        .await
    }

    /// Changes a file's name, folder, description or tags in one request; with
    /// `if_match`, only if its etag is still that (else 412 `precondition_failed`).
    pub async fn update_file(
        &self,
        file_id: &str,
        update: &FileUpdate,
        if_match_etag: Option<&str>,
    ) -> BoxResult<Item> {
        check_id(file_id)?;
        let body = update.to_json()?;
        self.put_item(
            ItemKind::File,
            file_id,
            body,
            if_match_etag,
            STANDARD_FIELDS,
        )
        .await
    }

    /// Sets a file's description (at most 256 characters).
    pub async fn set_file_description(&self, file_id: &str, description: &str) -> BoxResult<Item> {
        self.update_file(
            file_id,
            &FileUpdate {
                description: Some(description.to_string()),
                ..FileUpdate::default()
            },
            None,
        )
        .await
    }

    /// Copies a file's current version into `parent_id` (under `name` if given).
    pub async fn copy_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        self.copy_file_version(file_id, None, parent_id, name).await
    }

    /// Copies one version of a file (the current one when `version` is `None`).
    pub async fn copy_file_version(
        &self,
        file_id: &str,
        version: Option<&str>,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        self.copy_item(ItemKind::File, file_id, parent_id, name, version)
            .await
    }

    /// Deletes a file (to the trash, unless the enterprise purges at once); with
    /// `if_match`, only if its etag is still that (else 412 `precondition_failed`).
    pub async fn delete_file(&self, file_id: &str, if_match_etag: Option<&str>) -> BoxResult<()> {
        self.delete_item(ItemKind::File, file_id, false, if_match_etag)
            .await
    }

    /// Locks a file; returns it with its `lock`.
    pub async fn lock_file(&self, file_id: &str, opts: &LockOptions) -> BoxResult<Item> {
        self.lock_file_with_fields(file_id, opts, FILE_FIELDS_WITH_LOCK)
            .await
    }

    /// [`Client::lock_file`], returning the file with `fields` (which should name `lock`).
    pub async fn lock_file_with_fields<S: AsRef<str>>(
        &self,
        file_id: &str,
        opts: &LockOptions,
        fields: &[S],
    ) -> BoxResult<Item> {
        check_id(file_id)?;
        let mut lock = json!({
            "access": "lock",
            "is_download_prevented": opts.is_download_prevented,
        });
        if let Some(t) = opts.expires_at {
            lock["expires_at"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        self.put_item(
            ItemKind::File,
            file_id,
            json!({ "lock": lock }),
            None,
            fields,
        )
        .await
    }

    /// Unlocks a file (`"lock": null`); returns it (with `lock` absent or null).
    pub async fn unlock_file(&self, file_id: &str) -> BoxResult<Item> {
        self.unlock_file_with_fields(file_id, FILE_FIELDS_WITH_LOCK)
            .await
    }

    /// [`Client::unlock_file`], returning the file with `fields`.
    pub async fn unlock_file_with_fields<S: AsRef<str>>(
        &self,
        file_id: &str,
        fields: &[S],
    ) -> BoxResult<Item> {
        let body = json!({ "lock": null });
        self.put_item(ItemKind::File, file_id, body, None, fields)
            .await
    }

    /// The file's shared link, `None` when it has none.
    pub async fn file_shared_link(&self, file_id: &str) -> BoxResult<Option<SharedLink>> {
        self.shared_link_of(ItemKind::File, file_id).await
    }

    /// Creates the file's shared link or changes it; returns the link.
    pub async fn share_file(
        &self,
        file_id: &str,
        settings: &SharedLinkSettings,
    ) -> BoxResult<SharedLink> {
        self.set_shared_link(ItemKind::File, file_id, settings)
            .await
    }

    /// Removes the file's shared link.
    pub async fn unshare_file(&self, file_id: &str) -> BoxResult<()> {
        self.remove_shared_link(ItemKind::File, file_id).await
    }

    /// The file's previous versions, newest first (Box does not list the current one).
    pub async fn file_versions(&self, file_id: &str) -> BoxResult<Vec<FileVersion>> {
        check_id(file_id)?;
        let mut out: Vec<FileVersion> = Vec::new();
        loop {
            let page: Versions = self
                .json(
                    self.api(Method::GET, &format!("/files/{file_id}/versions"))
                        .query("limit", 1000)
                        .query("offset", out.len()),
                )
                .await?;
            let got = page.entries.len();
            out.extend(page.entries);
            if got == 0 || out.len() as u64 >= page.total_count {
                return Ok(out);
            }
        }
    }

    /// Makes an earlier version (`version_id`, from [`Client::file_versions`]) the current
    /// one. Box copies it into a new version, so the history keeps every version; the answer
    /// is that new version, not the file (whose etag and `sequence_id` changed too).
    pub async fn promote_file_version(
        &self,
        file_id: &str,
        version_id: &str,
    ) -> BoxResult<FileVersion> {
        check_id(file_id)?;
        check_id(version_id)?;
        self.json(
            self.api(Method::POST, &format!("/files/{file_id}/versions/current"))
                .json(json!({ "type": "file_version", "id": version_id })),
        )
        .await
    }

    /// Brings a file back from the trash, into its old folder, or into `parent_id` if
    /// that is gone; `name` renames it on the way.
    pub async fn restore_file(
        &self,
        file_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        self.restore_item(ItemKind::File, file_id, name, parent_id)
            .await
    }

    /// A file in the trash.
    pub async fn trashed_file(&self, file_id: &str) -> BoxResult<Item> {
        self.trashed_item(ItemKind::File, file_id).await
    }

    /// Deletes a trashed file for good.
    pub async fn purge_file(&self, file_id: &str) -> BoxResult<()> {
        self.purge_item(ItemKind::File, file_id).await
    }
}
