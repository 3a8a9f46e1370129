//! The emulator's whole state: users, apps, tokens, the item tree with versions and blobs,
//! locks, shared links, metadata, upload sessions and the event log. One `Store` sits behind
//! one mutex; every API call locks it once, checks everything, then applies its change, so a
//! refused request never leaves half a change behind.
//!
//! Items keep numeric ids. Every user has a real root folder item, which the API shows as
//! folder `"0"` to its owner, as Box does.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::blob::Blob;
use super::error::{ApiError, ApiResult};
use super::event_table::Action;

pub type Id = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Coadmin,
    User,
    /// The service account of a JWT/CCG app (`AutomationUser_…`).
    ServiceAccount,
    /// An app user (`is_platform_access_only`).
    AppUser,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub name: String,
    pub login: String,
    pub role: Role,
    pub enterprise_id: String,
    /// Bytes this user may store; -1 means unlimited (as Box).
    pub space_amount: i64,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub root_folder: Id,
    pub status: String,
    pub language: String,
    pub timezone: String,
    pub external_app_user_id: Option<String>,
    /// The app that created this user (service accounts and app users).
    pub app_client_id: Option<String>,
}

impl User {
    pub fn can_act_as_others(&self) -> bool {
        matches!(
            self.role,
            Role::Admin | Role::Coadmin | Role::ServiceAccount
        )
    }
}

/// A registered application (what the Box developer console holds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    /// `kid` → public key PEM, for JWT assertions.
    pub public_keys: BTreeMap<String, String>,
    pub enterprise_id: String,
    pub service_account: Id,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    OAuth,
    Jwt,
    ClientCredentials,
    Developer,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessToken {
    pub user: Id,
    pub client_id: String,
    pub kind: TokenKind,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshToken {
    pub user: Id,
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
    /// The access token issued with it: revoking either one ends both.
    pub access_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthCode {
    pub user: Id,
    pub client_id: String,
    pub redirect_uri: Option<String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    File,
    Folder,
    /// A bookmark: a URL kept in a folder, named like a file or folder (`web_links.rs`).
    WebLink,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::File => "file",
            ItemKind::Folder => "folder",
            ItemKind::WebLink => "web_link",
        }
    }

    /// Where the kind stands in a listing: Box orders folder items and the trash by type
    /// first (folders, files, web links) whatever the sort and its direction.
    pub fn listing_rank(self) -> u8 {
        match self {
            ItemKind::Folder => 0,
            ItemKind::File => 1,
            ItemKind::WebLink => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub id: Id,
    pub sha1: String,
    pub size: u64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub modified_by: Id,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lock {
    pub id: Id,
    pub created_by: Id,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub is_download_prevented: bool,
}

impl Lock {
    /// Box may report an expired lock instead of `null`; an expired lock locks nothing.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharedLink {
    pub token: String,
    pub access: String,
    pub password: Option<String>,
    pub unshared_at: Option<DateTime<Utc>>,
    pub vanity_name: Option<String>,
    pub can_download: bool,
    pub can_edit: bool,
    pub download_count: u64,
    pub preview_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trash {
    pub trashed_at: DateTime<Utc>,
    pub trashed_by: Id,
}

/// A metadata instance: the template's values plus Box's bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataInstance {
    pub id: String,
    pub scope: String,
    pub template: String,
    pub version: u64,
    pub type_version: u64,
    pub values: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Collaboration {
    pub id: Id,
    pub user: Id,
    pub role: String,
    pub created_by: Id,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub id: Id,
    pub kind: ItemKind,
    pub name: String,
    /// `None` only for a user's root folder.
    pub parent: Option<Id>,
    pub owner: Id,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub content_created_at: DateTime<Utc>,
    pub content_modified_at: DateTime<Utc>,
    pub created_by: Id,
    pub modified_by: Id,
    pub description: String,
    pub etag: u64,
    pub sequence_id: u64,
    /// Set on the item that was itself trashed; its descendants are trashed with it.
    pub trash: Option<Trash>,
    pub shared_link: Option<SharedLink>,
    pub lock: Option<Lock>,
    pub tags: Vec<String>,
    /// `"<scope>/<templateKey>"` → instance.
    pub metadata: BTreeMap<String, MetadataInstance>,
    /// File versions, oldest first; the last is current. Empty for folders and web links.
    pub versions: Vec<Version>,
    pub collaborations: Vec<Collaboration>,
    /// What a web link points at; `None` for files and folders (and absent from the state
    /// files of emulators older than web links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Item {
    /// An item with no content, lock, link or metadata yet.
    pub fn blank(
        id: Id,
        kind: ItemKind,
        name: &str,
        parent: Option<Id>,
        owner: Id,
        by: Id,
        now: DateTime<Utc>,
    ) -> Item {
        Item {
            id,
            kind,
            name: name.to_string(),
            parent,
            owner,
            created_at: now,
            modified_at: now,
            content_created_at: now,
            content_modified_at: now,
            created_by: by,
            modified_by: by,
            description: String::new(),
            etag: 0,
            sequence_id: 0,
            trash: None,
            shared_link: None,
            lock: None,
            tags: Vec::new(),
            metadata: BTreeMap::new(),
            versions: Vec::new(),
            collaborations: Vec::new(),
            url: None,
        }
    }

    pub fn is_folder(&self) -> bool {
        self.kind == ItemKind::Folder
    }
    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }
    pub fn current_version(&self) -> Option<&Version> {
        self.versions.last()
    }
    pub fn size(&self) -> u64 {
        self.current_version().map(|v| v.size).unwrap_or(0)
    }
    /// A change to the item: Box moves both counters and `modified_at`.
    pub fn touch(&mut self, by: Id, now: DateTime<Utc>) {
        self.etag += 1;
        self.sequence_id += 1;
        self.modified_at = now;
        self.modified_by = by;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateField {
    pub id: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub key: String,
    pub display_name: String,
    pub description: Option<String>,
    pub hidden: bool,
    /// Option keys for enum and multiSelect fields.
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataTemplate {
    pub id: String,
    pub scope: String,
    pub template_key: String,
    pub display_name: String,
    pub hidden: bool,
    pub copy_instance_on_item_copy: bool,
    pub fields: Vec<TemplateField>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadedPart {
    pub part_id: String,
    pub offset: u64,
    pub size: u64,
    pub sha1: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadSession {
    pub id: String,
    pub user: Id,
    /// Where a new file goes, or which file gets a new version.
    pub folder_id: Option<Id>,
    pub file_id: Option<Id>,
    pub file_name: String,
    pub file_size: u64,
    pub part_size: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// offset → part; the bytes live in `Store::session_data`.
    pub parts: BTreeMap<u64, UploadedPart>,
    /// Commits still to be answered with 202 + Retry-After before one succeeds.
    pub pending_commit_polls: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    /// Position in the stream; `next_stream_position` is the last delivered one.
    pub position: u64,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Id,
    pub session_id: Option<String>,
    /// The item as it was when the event happened (null when it no longer exists).
    pub source: Value,
    /// Users whose stream shows this event.
    pub users: Vec<Id>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Store {
    pub next_id: Id,
    pub enterprise_id: String,
    pub enterprise_name: String,
    pub admin: Id,
    pub users: BTreeMap<Id, User>,
    pub apps: BTreeMap<String, App>,
    pub items: HashMap<Id, Item>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub auth_codes: HashMap<String, AuthCode>,
    /// JWT ids already used, with their expiry (a `jti` may never be reused).
    pub used_jtis: HashMap<String, DateTime<Utc>>,
    pub templates: BTreeMap<String, MetadataTemplate>,
    pub sessions: HashMap<String, UploadSession>,
    pub events: Vec<Event>,
    pub next_position: u64,
    /// Shared-link token → item.
    pub shared_links: HashMap<String, Id>,
    /// Where this emulator is reached; every URL it hands out starts with it.
    #[serde(skip)]
    pub base_url: String,
    /// Content by SHA1 (hex); persisted as files, not in the JSON state.
    #[serde(skip)]
    pub blobs: HashMap<String, Blob>,
    /// Part bytes of open upload sessions: (session, offset) → bytes.
    #[serde(skip)]
    pub session_data: HashMap<(String, u64), Bytes>,
    /// Each open session's parts from the start of the file up to the first part not
    /// received yet, hashed as parts arrive so that a commit only finishes the digest.
    /// `None` while a request is adding the next part.
    #[serde(skip)]
    pub session_prefix: HashMap<String, Option<PrefixHash>>,
    /// (parent, lower-cased name) → child, for active children: Box names are unique
    /// case-insensitively, files and folders alike.
    #[serde(skip)]
    pub names: HashMap<(Id, String), Id>,
    /// parent → children (active and trashed).
    #[serde(skip)]
    pub children: HashMap<Id, Vec<Id>>,
    /// Download URLs handed out by `GET /files/{id}/content`: token → what it serves.
    #[serde(skip)]
    pub download_tokens: HashMap<String, DownloadToken>,
    /// Realtime long-poll channels handed out by `OPTIONS /events`: channel → listener.
    /// Not persisted; after a restart a poll on an old channel is told to reconnect.
    #[serde(skip)]
    pub realtime_channels: HashMap<String, RealtimeChannel>,
}

/// A short-lived download URL's authorization. Box redirects downloads to another host and
/// clients drop the `Authorization` header when they follow it, so the URL itself must carry
/// the right to read that one version.
#[derive(Debug, Clone)]
pub struct DownloadToken {
    pub item: Id,
    pub version: Id,
    pub user: Id,
    pub expires_at: DateTime<Utc>,
}

/// Who listens on a realtime channel, and for which stream.
#[derive(Debug, Clone)]
pub struct RealtimeChannel {
    pub user: Id,
    pub stream_type: String,
    pub last_used: DateTime<Utc>,
}

/// Box's name rules: 1–255 characters, no `/` or `\`, no control characters, no trailing
/// space, not `.` or `..`.
/// A rename and/or move asked of an item ([`Store::relink_target`]).
#[derive(Debug, Clone)]
pub struct Relink {
    pub id: Id,
    pub name: String,
    pub parent: Id,
    pub renamed: bool,
    pub moved: bool,
}

impl Relink {
    pub fn changes(&self) -> bool {
        self.renamed || self.moved
    }

    /// A new name must be valid, and the target name free in the target folder.
    pub fn check(&self, store: &Store) -> ApiResult<()> {
        if self.renamed {
            check_name(&self.name)?;
        }
        if self.changes() {
            store.check_name_free(self.parent, &self.name, Some(self.id))?;
        }
        Ok(())
    }

    /// Moves and renames the item, and says which events that makes (each reported).
    pub fn apply(&self, store: &mut Store) -> Vec<Action> {
        if !self.changes() {
            return Vec::new();
        }
        store.relink(self.id, self.parent, &self.name);
        let mut events = Vec::new();
        if self.renamed {
            events.push(Action::Rename);
        }
        if self.moved {
            events.push(Action::Move);
        }
        events
    }
}

pub fn check_name(name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::new(
            400,
            "item_name_invalid",
            "Item name invalid: the name is empty",
        ));
    }
    if name.chars().count() > 255 {
        return Err(ApiError::new(
            400,
            "item_name_too_long",
            "Item name too long: at most 255 characters",
        ));
    }
    if name == "." || name == ".." {
        return Err(ApiError::new(
            400,
            "item_name_invalid",
            "Item name invalid: '.' and '..' are reserved",
        ));
    }
    if name.contains('/') || name.contains('\\') || name.chars().any(|c| c.is_control()) {
        return Err(ApiError::new(
            400,
            "item_name_invalid",
            "Item name invalid: it contains '/', '\\' or a control character",
        ));
    }
    if name.ends_with(' ') {
        return Err(ApiError::new(
            400,
            "item_name_invalid",
            "Item name invalid: it ends with a space",
        ));
    }
    Ok(())
}

/// Parses a Box id from a URL path: digits only, else Box answers 405.
pub fn parse_id(raw: &str) -> ApiResult<Id> {
    if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::malformed_id());
    }
    raw.parse().map_err(|_| ApiError::malformed_id())
}

impl Store {
    pub fn alloc_id(&mut self) -> Id {
        self.next_id += 1;
        self.next_id
    }

    pub fn user(&self, id: Id) -> ApiResult<&User> {
        self.users
            .get(&id)
            .ok_or_else(|| ApiError::not_found("user"))
    }

    pub fn item(&self, id: Id) -> ApiResult<&Item> {
        self.items
            .get(&id)
            .ok_or_else(|| ApiError::not_found("item"))
    }

    pub fn item_mut(&mut self, id: Id) -> ApiResult<&mut Item> {
        self.items
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("item"))
    }

    /// Rebuilds the derived indexes (after loading persisted state).
    pub fn rebuild_indexes(&mut self) {
        self.names.clear();
        self.children.clear();
        let mut ids: Vec<Id> = self.items.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let item = &self.items[&id];
            if let Some(parent) = item.parent {
                self.children.entry(parent).or_default().push(id);
                if item.trash.is_none() {
                    self.names.insert((parent, item.name.to_lowercase()), id);
                }
            }
        }
    }

    /// Whether the item or one of its ancestors is in the trash.
    pub fn trashed_ancestor(&self, id: Id) -> Option<Id> {
        let mut cur = Some(id);
        while let Some(c) = cur {
            let item = self.items.get(&c)?;
            if item.trash.is_some() {
                return Some(c);
            }
            cur = item.parent;
        }
        None
    }

    /// Ancestors from the root down to the parent of `id`.
    pub fn ancestors(&self, id: Id) -> Vec<Id> {
        let mut out = Vec::new();
        let mut cur = self.items.get(&id).and_then(|i| i.parent);
        while let Some(c) = cur {
            out.push(c);
            cur = self.items.get(&c).and_then(|i| i.parent);
        }
        out.reverse();
        out
    }

    pub fn is_descendant_or_self(&self, id: Id, ancestor: Id) -> bool {
        id == ancestor || self.ancestors(id).contains(&ancestor)
    }

    /// Who may see an item: its owner, and collaborators on it or any ancestor.
    pub fn can_access(&self, user: Id, id: Id) -> bool {
        let Some(item) = self.items.get(&id) else {
            return false;
        };
        if item.owner == user {
            return true;
        }
        let mut cur = Some(id);
        while let Some(c) = cur {
            let Some(i) = self.items.get(&c) else {
                return false;
            };
            if i.collaborations.iter().any(|col| col.user == user) {
                return true;
            }
            cur = i.parent;
        }
        false
    }

    /// Users that see events about this item.
    pub fn audience(&self, id: Id) -> Vec<Id> {
        let mut users = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            let Some(i) = self.items.get(&c) else { break };
            if !users.contains(&i.owner) {
                users.push(i.owner);
            }
            for col in &i.collaborations {
                if !users.contains(&col.user) {
                    users.push(col.user);
                }
            }
            cur = i.parent;
        }
        users
    }

    /// Resolves an id from a URL to an item of the wanted kind that `user` can reach.
    /// `"0"` is the user's root folder; a trashed item answers 404 `trashed`.
    pub fn resolve(&self, user: Id, raw: &str, kind: ItemKind) -> ApiResult<Id> {
        let id = if raw == "0" && kind == ItemKind::Folder {
            self.user(user)?.root_folder
        } else {
            parse_id(raw)?
        };
        let what = kind.as_str();
        let item = self
            .items
            .get(&id)
            .filter(|i| i.kind == kind)
            .ok_or_else(|| ApiError::not_found(what))?;
        if !self.can_access(user, item.id) {
            return Err(ApiError::not_found(what));
        }
        if self.trashed_ancestor(id).is_some() {
            return Err(ApiError::trashed(what));
        }
        Ok(id)
    }

    /// Resolves an item that is itself in the trash (trash endpoints).
    pub fn resolve_trashed(&self, user: Id, raw: &str, kind: ItemKind) -> ApiResult<Id> {
        let id = parse_id(raw)?;
        let item = self
            .items
            .get(&id)
            .filter(|i| i.kind == kind)
            .ok_or_else(|| ApiError::not_found(kind.as_str()))?;
        if item.trash.is_none() || !self.can_access(user, id) {
            return Err(ApiError::new(
                404,
                "not_trashed",
                "Item is not in the trash",
            ));
        }
        Ok(id)
    }

    /// Resolves a parent given in a request body (`{"parent": {"id": ...}}`), which is a
    /// folder the user can write to.
    pub fn resolve_parent(&self, user: Id, raw: &str) -> ApiResult<Id> {
        self.resolve(user, raw, ItemKind::Folder)
    }

    /// Where a `PUT` asks item `id` to go: `name` and the body's parent (either may be
    /// left out: the item keeps its own). Nothing is checked yet ([`Relink::check`]).
    pub fn relink_target(
        &self,
        user: Id,
        id: Id,
        name: Option<String>,
        parent_raw: Option<&str>,
    ) -> ApiResult<Relink> {
        let item = self.item(id)?;
        let old_parent = item.parent.unwrap_or_default();
        let name = name.unwrap_or_else(|| item.name.clone());
        let parent = match parent_raw {
            Some(raw) => self.resolve_parent(user, raw)?,
            None => old_parent,
        };
        Ok(Relink {
            id,
            renamed: name != item.name,
            moved: parent != old_parent,
            name,
            parent,
        })
    }

    pub fn child_by_name(&self, parent: Id, name: &str) -> Option<Id> {
        self.names.get(&(parent, name.to_lowercase())).copied()
    }

    /// 409 `item_name_in_use` when `name` is taken in `parent` by another item.
    pub fn check_name_free(&self, parent: Id, name: &str, except: Option<Id>) -> ApiResult<()> {
        match self.child_by_name(parent, name) {
            Some(other) if Some(other) != except => {
                let conflict = self
                    .items
                    .get(&other)
                    .map(|o| super::repr::mini(self, o))
                    .unwrap_or(Value::Null);
                Err(ApiError::new(
                    409,
                    "item_name_in_use",
                    "Item with the same name already exists",
                )
                .with_context(serde_json::json!({"conflicts": [conflict]})))
            }
            _ => Ok(()),
        }
    }

    /// Active children of a folder (not trashed).
    pub fn active_children(&self, parent: Id) -> Vec<Id> {
        self.children
            .get(&parent)
            .map(|c| {
                c.iter()
                    .copied()
                    .filter(|id| self.items.get(id).is_some_and(|i| i.trash.is_none()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Bytes stored by a user: every version of every file they own.
    pub fn space_used(&self, user: Id) -> u64 {
        self.items
            .values()
            .filter(|i| i.owner == user)
            .flat_map(|i| i.versions.iter())
            .map(|v| v.size)
            .sum()
    }

    /// 403 `storage_limit_exceeded` if `extra` more bytes do not fit the user's quota.
    pub fn check_quota(&self, user: Id, extra: u64) -> ApiResult<()> {
        let u = self.user(user)?;
        if u.space_amount >= 0
            && self.space_used(user).saturating_add(extra) > u.space_amount as u64
        {
            return Err(ApiError::forbidden(
                "storage_limit_exceeded",
                "Account storage limit reached",
            ));
        }
        Ok(())
    }

    /// Recursive size of a folder (Box reports it on folders), or a file's size.
    pub fn tree_size(&self, id: Id) -> u64 {
        let Some(item) = self.items.get(&id) else {
            return 0;
        };
        if !item.is_folder() {
            return item.size();
        }
        self.active_children(id)
            .iter()
            .map(|c| self.tree_size(*c))
            .sum()
    }

    /// Inserts a new item under `parent` (names already checked).
    pub fn insert_item(&mut self, item: Item) -> Id {
        let id = item.id;
        if let Some(parent) = item.parent {
            self.children.entry(parent).or_default().push(id);
            if item.trash.is_none() {
                self.names.insert((parent, item.name.to_lowercase()), id);
            }
        }
        self.items.insert(id, item);
        id
    }

    /// A fresh item with the usual defaults; the caller fills in the rest.
    pub fn new_item(
        &mut self,
        kind: ItemKind,
        name: &str,
        parent: Id,
        owner: Id,
        by: Id,
        now: DateTime<Utc>,
    ) -> Item {
        let id = self.alloc_id();
        Item::blank(id, kind, name, Some(parent), owner, by, now)
    }

    /// Changes an item's name and/or parent, keeping the indexes right.
    pub fn relink(&mut self, id: Id, new_parent: Id, new_name: &str) {
        let (old_parent, old_name, trashed) = {
            let item = &self.items[&id];
            (item.parent, item.name.clone(), item.trash.is_some())
        };
        if let Some(op) = old_parent {
            if !trashed {
                self.names.remove(&(op, old_name.to_lowercase()));
            }
            if op != new_parent {
                if let Some(c) = self.children.get_mut(&op) {
                    c.retain(|x| *x != id);
                }
                self.children.entry(new_parent).or_default().push(id);
            }
        }
        if !trashed {
            self.names.insert((new_parent, new_name.to_lowercase()), id);
        }
        let item = self.items.get_mut(&id).expect("relinked item exists");
        item.parent = Some(new_parent);
        item.name = new_name.to_string();
    }

    /// Puts an item in the trash (its descendants follow it implicitly).
    pub fn trash_item(&mut self, id: Id, by: Id, now: DateTime<Utc>) {
        let (parent, name) = {
            let item = &self.items[&id];
            (item.parent, item.name.to_lowercase())
        };
        if let Some(p) = parent {
            self.names.remove(&(p, name));
        }
        let item = self.items.get_mut(&id).expect("trashed item exists");
        item.trash = Some(Trash {
            trashed_at: now,
            trashed_by: by,
        });
        item.touch(by, now);
    }

    /// Takes an item out of the trash, into `parent` under `name` (already checked free).
    pub fn restore_item(&mut self, id: Id, parent: Id, name: &str, by: Id, now: DateTime<Utc>) {
        let old_parent = self.items[&id].parent;
        if old_parent != Some(parent) {
            if let Some(op) = old_parent {
                if let Some(c) = self.children.get_mut(&op) {
                    c.retain(|x| *x != id);
                }
            }
            self.children.entry(parent).or_default().push(id);
        }
        self.names.insert((parent, name.to_lowercase()), id);
        let item = self.items.get_mut(&id).expect("restored item exists");
        item.parent = Some(parent);
        item.name = name.to_string();
        item.trash = None;
        item.touch(by, now);
    }

    /// Removes an item and its whole subtree for good (permanent delete).
    pub fn purge(&mut self, id: Id) {
        let mut stack = vec![id];
        let mut all = Vec::new();
        while let Some(c) = stack.pop() {
            all.push(c);
            if let Some(kids) = self.children.get(&c) {
                stack.extend(kids.iter().copied());
            }
        }
        if let Some(item) = self.items.get(&id) {
            if let Some(p) = item.parent {
                if item.trash.is_none() {
                    self.names.remove(&(p, item.name.to_lowercase()));
                }
                if let Some(c) = self.children.get_mut(&p) {
                    c.retain(|x| *x != id);
                }
            }
        }
        for c in all {
            if let Some(item) = self.items.remove(&c) {
                if let Some(link) = item.shared_link {
                    self.shared_links.remove(&link.token);
                }
            }
            self.children.remove(&c);
        }
    }

    /// Content of a stored version.
    pub fn blob(&self, sha1: &str) -> ApiResult<Blob> {
        self.blobs
            .get(sha1)
            .cloned()
            .ok_or_else(|| ApiError::internal("content missing from the store"))
    }

    /// Records the event `action` produces (see [`super::event_table`]) about an item for
    /// everyone who can see it, and returns its position.
    pub fn record_event(
        &mut self,
        action: Action,
        by: Id,
        item: Option<Id>,
        source: Value,
        now: DateTime<Utc>,
    ) -> u64 {
        let users = match item {
            Some(id) => self.audience(id),
            None => vec![by],
        };
        self.next_position += 1;
        let position = self.next_position;
        self.events.push(Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            position,
            event_type: action.event_type().to_string(),
            created_at: now,
            created_by: by,
            session_id: None,
            source,
            users,
        });
        position
    }

    /// Records the event of `action` on item `id`, whose source is the item as it is now
    /// (standard representation).
    pub fn item_event(&mut self, action: Action, by: Id, id: Id, now: DateTime<Utc>) -> u64 {
        let source = self
            .items
            .get(&id)
            .map(|i| super::repr::standard(self, i, i.owner))
            .unwrap_or(Value::Null);
        self.record_event(action, by, Some(id), source, now)
    }

    /// Names already used by JWT assertions are kept until they expire.
    pub fn forget_expired(&mut self, now: DateTime<Utc>) {
        self.used_jtis
            .retain(|_, exp| *exp > now - chrono::Duration::seconds(120));
        self.access_tokens.retain(|_, t| t.expires_at > now);
        self.refresh_tokens.retain(|_, t| t.expires_at > now);
        self.auth_codes.retain(|_, c| c.expires_at > now);
    }

    pub fn ids_in_use(&self) -> HashSet<Id> {
        self.items.keys().copied().collect()
    }

    /// Stores content as a new version (not yet attached to an item) and keeps its blob.
    pub fn new_version(
        &mut self,
        content: Bytes,
        name: &str,
        by: Id,
        now: DateTime<Utc>,
    ) -> Version {
        use sha1::Digest;
        let sha1 = hex::encode(sha1::Sha1::digest(&content));
        let size = content.len() as u64;
        self.blobs.entry(sha1.clone()).or_insert(content.into());
        Version {
            id: self.alloc_id(),
            sha1,
            size,
            name: name.to_string(),
            created_at: now,
            modified_by: by,
        }
    }

    /// Creates a file with one version under `parent` (name already checked) and records
    /// its upload event, as an upload does.
    pub fn add_file(
        &mut self,
        parent: Id,
        name: &str,
        owner: Id,
        content: Bytes,
        now: DateTime<Utc>,
    ) -> Id {
        let mut item = self.new_item(ItemKind::File, name, parent, owner, owner, now);
        let version = self.new_version(content, name, owner, now);
        item.versions.push(version);
        let id = self.insert_item(item);
        self.item_event(Action::UploadFile, owner, id, now);
        id
    }

    /// Adds a new current version to a file and records its upload event.
    pub fn add_file_version(&mut self, id: Id, content: Bytes, by: Id, now: DateTime<Utc>) {
        let name = self.items[&id].name.clone();
        let version = self.new_version(content, &name, by, now);
        let item = self.items.get_mut(&id).expect("file exists");
        item.versions.push(version);
        item.content_modified_at = now;
        item.touch(by, now);
        self.item_event(Action::UploadVersion, by, id, now);
    }
}

/// The SHA1 of an upload session's bytes `0..upto`. (The bytes are the parts in
/// `Store::session_data`, which become the file's [`Blob`] at the commit.)
#[derive(Debug, Clone, Default)]
pub struct PrefixHash {
    pub upto: u64,
    pub hasher: sha1::Sha1,
}
