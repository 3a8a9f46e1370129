//! Wire types: what Box sends, as serde structs. Fields Box may leave out (with `fields=`
//! or in mini representations) are `Option` or defaulted, so a partial answer still
//! decodes. Ids are strings, as Box sends them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserMini {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub login: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Enterprise {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub login: String,
    pub status: Option<String>,
    pub role: Option<String>,
    pub space_amount: Option<i64>,
    pub space_used: Option<i64>,
    pub max_upload_size: Option<i64>,
    pub created_at: Option<String>,
    pub modified_at: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    pub is_platform_access_only: Option<bool>,
    pub external_app_user_id: Option<String>,
    pub enterprise: Option<Enterprise>,
}

/// A folder reference inside other objects (`parent`, `path_collection`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FolderMini {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub etag: Option<String>,
    pub sequence_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PathCollection {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub entries: Vec<FolderMini>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileVersion {
    pub id: String,
    pub sha1: Option<String>,
    pub name: Option<String>,
    pub size: Option<u64>,
    pub created_at: Option<String>,
    pub modified_at: Option<String>,
    pub modified_by: Option<UserMini>,
}

/// A file lock. Box answers `expired_at` (requests say `expires_at`); an expired lock
/// locks nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Lock {
    pub id: Option<String>,
    pub created_by: Option<UserMini>,
    pub created_at: Option<String>,
    pub expired_at: Option<String>,
    #[serde(default)]
    pub is_download_prevented: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SharedLinkPermissions {
    #[serde(default)]
    pub can_download: bool,
    #[serde(default)]
    pub can_preview: bool,
    #[serde(default)]
    pub can_edit: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SharedLink {
    pub url: String,
    pub download_url: Option<String>,
    pub vanity_url: Option<String>,
    pub access: Option<String>,
    pub effective_access: Option<String>,
    pub effective_permission: Option<String>,
    pub unshared_at: Option<String>,
    #[serde(default)]
    pub is_password_enabled: bool,
    pub permissions: Option<SharedLinkPermissions>,
    #[serde(default)]
    pub download_count: u64,
    #[serde(default)]
    pub preview_count: u64,
}

/// A file, a folder or a web link with whatever fields Box sent: mini, standard or full.
/// Folder listings and the trash decode to it, whatever the kind of each entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Item {
    /// `file`, `folder` or `web_link`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub etag: Option<String>,
    pub sequence_id: Option<String>,
    #[serde(default)]
    pub name: String,
    pub sha1: Option<String>,
    pub file_version: Option<FileVersion>,
    pub description: Option<String>,
    pub size: Option<u64>,
    pub path_collection: Option<PathCollection>,
    pub created_at: Option<String>,
    pub modified_at: Option<String>,
    pub trashed_at: Option<String>,
    pub purged_at: Option<String>,
    pub content_created_at: Option<String>,
    pub content_modified_at: Option<String>,
    pub created_by: Option<UserMini>,
    pub modified_by: Option<UserMini>,
    pub owned_by: Option<UserMini>,
    pub shared_link: Option<SharedLink>,
    pub parent: Option<FolderMini>,
    pub item_status: Option<String>,
    pub lock: Option<Lock>,
    pub tags: Option<Vec<String>>,
    pub extension: Option<String>,
    pub version_number: Option<String>,
    /// `metadata.<scope>.<template>` when asked for with `fields=`.
    pub metadata: Option<serde_json::Value>,
    pub item_collection: Option<Items>,
    /// A web link's address (its mini representation carries it, so listings have it).
    pub url: Option<String>,
}

impl Item {
    pub fn is_folder(&self) -> bool {
        self.kind == "folder"
    }
    pub fn is_file(&self) -> bool {
        self.kind == "file"
    }
    pub fn is_web_link(&self) -> bool {
        self.kind == "web_link"
    }
}

/// A web link (a bookmark in a folder) with whatever fields Box sent. `name` and `url` are
/// empty only when a `fields=` selection left them out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WebLink {
    pub id: String,
    pub etag: Option<String>,
    pub sequence_id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    pub description: Option<String>,
    pub path_collection: Option<PathCollection>,
    pub created_at: Option<String>,
    pub modified_at: Option<String>,
    pub trashed_at: Option<String>,
    pub purged_at: Option<String>,
    pub created_by: Option<UserMini>,
    pub modified_by: Option<UserMini>,
    pub owned_by: Option<UserMini>,
    pub shared_link: Option<SharedLink>,
    pub parent: Option<FolderMini>,
    /// `active`, `trashed` or `deleted`.
    pub item_status: Option<String>,
}

impl From<WebLink> for Item {
    /// The web link as an [`Item`] of kind `web_link`, the shape listings and the trash give
    /// it, so that code handling items of every kind takes a web link's own answers too.
    fn from(link: WebLink) -> Item {
        Item {
            kind: "web_link".to_string(),
            id: link.id,
            etag: link.etag,
            sequence_id: link.sequence_id,
            name: link.name,
            description: link.description,
            path_collection: link.path_collection,
            created_at: link.created_at,
            modified_at: link.modified_at,
            trashed_at: link.trashed_at,
            purged_at: link.purged_at,
            created_by: link.created_by,
            modified_by: link.modified_by,
            owned_by: link.owned_by,
            shared_link: link.shared_link,
            parent: link.parent,
            item_status: link.item_status,
            url: Some(link.url).filter(|u| !u.is_empty()),
            ..Item::default()
        }
    }
}

/// A page of items (folder listings, trash, `item_collection`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Items {
    pub total_count: Option<u64>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub next_marker: Option<String>,
    #[serde(default)]
    pub entries: Vec<Item>,
}

/// `{total_count, entries}` answers, as uploads return them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ItemList {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub entries: Vec<Item>,
}
