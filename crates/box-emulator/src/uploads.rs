//! Every way content gets into the emulator, as Box's upload host serves it: the multipart
//! upload of a new file or a new version (`/api/2.0/files/content`,
//! `/api/2.0/files/{file_id}/content`), the preflight check (`OPTIONS /2.0/files/content`)
//! and chunked upload sessions (`/api/2.0/files/upload_sessions/...`).
//!
//! All of them end in [`commit_content`], the one place that turns bytes into a file or a
//! file version: it checks the name, the parent, name clashes, locks and the quota, stores
//! the bytes once per SHA1, records the version and its upload event. Other modules
//! (copying, the demo tree, tests) call it to create content the same way uploads do.

mod multipart;
mod preflight;
mod sessions;

use axum::routing::{options, post};
use axum::Router;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::blob::Blob;
use super::error::{ApiError, ApiResult};
use super::event_table::Action;
use super::http::{opt_str, AppState};
use super::repr::{self, Fields};
use super::store::{self, Id, ItemKind, Store, Version};

pub use sessions::{part_size_for, MIN_SESSION_FILE_SIZE};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/2.0/files/content", post(multipart::upload_new_file))
        .route(
            "/api/2.0/files/{file_id}/content",
            post(multipart::upload_new_version),
        )
        // rclone sends the preflight with a trailing slash, others without.
        .route("/2.0/files/content", options(preflight::new_file))
        .route("/2.0/files/content/", options(preflight::new_file))
        .route(
            "/2.0/files/{file_id}/content",
            options(preflight::new_version),
        )
        .merge(sessions::routes())
        // Content is streamed, never buffered whole: the only routes without the body limit
        // every other route has (see `http::MAX_BODY`).
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Where uploaded content goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new file `name` in folder `parent` (the folder's real id, not `"0"`).
    NewFile { parent: Id, name: String },
    /// A new version of `file_id`, renaming it when `name` is given.
    NewVersion { file_id: Id, name: Option<String> },
}

/// What an upload sets on the item besides its content.
#[derive(Debug, Clone, Default)]
pub struct UploadAttrs {
    pub content_created_at: Option<DateTime<Utc>>,
    pub content_modified_at: Option<DateTime<Utc>>,
    pub description: Option<String>,
}

impl UploadAttrs {
    /// Reads `content_created_at`, `content_modified_at` (RFC 3339) and `description` from an
    /// `attributes` object.
    pub fn from_json(attrs: &Map<String, Value>) -> ApiResult<UploadAttrs> {
        Ok(UploadAttrs {
            content_created_at: opt_time(attrs, "content_created_at")?,
            content_modified_at: opt_time(attrs, "content_modified_at")?,
            description: opt_str(attrs, "description")?,
        })
    }
}

fn opt_time(attrs: &Map<String, Value>, key: &str) -> ApiResult<Option<DateTime<Utc>>> {
    match opt_str(attrs, key)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::invalid_parameter(key, format!("'{key}' must be an RFC 3339 date-time"))
            }),
    }
}

/// The 409 of an upload whose name is taken. Box sends the conflicting item as ONE object in
/// `context_info.conflicts` here (not the array the OpenAPI description's `ConflictError`
/// shows); rclone's preflight decodes it as an object and fails on an array.
pub fn name_in_use(store: &Store, other: Id) -> ApiError {
    let conflict = store
        .items
        .get(&other)
        .map(|o| repr::mini(store, o))
        .unwrap_or(Value::Null);
    ApiError::new(
        409,
        "item_name_in_use",
        "Item with the same name already exists",
    )
    .with_context(json!({ "conflicts": conflict }))
}

/// Whether `user` may put content into `id` (a folder for new files, the file itself for
/// versions): its owner, or a collaborator whose role allows uploads.
fn check_can_upload(store: &Store, user: Id, id: Id) -> ApiResult<()> {
    let mut cur = Some(id);
    while let Some(c) = cur {
        let Some(item) = store.items.get(&c) else {
            break;
        };
        if item.owner == user {
            return Ok(());
        }
        if let Some(col) = item.collaborations.iter().find(|col| col.user == user) {
            return match col.role.as_str() {
                "editor" | "co-owner" | "owner" | "uploader" | "previewer uploader"
                | "viewer uploader" => Ok(()),
                _ => Err(ApiError::forbidden(
                    "access_denied_insufficient_permissions",
                    "Access denied - insufficient permission",
                )),
            };
        }
        cur = item.parent;
    }
    Err(ApiError::forbidden(
        "access_denied_insufficient_permissions",
        "Access denied - insufficient permission",
    ))
}

/// Bytes still free in a user's quota (`None` = unlimited).
pub fn remaining_quota(store: &Store, user: Id) -> ApiResult<Option<u64>> {
    let u = store.user(user)?;
    if u.space_amount < 0 {
        return Ok(None);
    }
    Ok(Some(
        (u.space_amount as u64).saturating_sub(store.space_used(user)),
    ))
}

/// What [`check_target`] found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Who owns the content (whose quota it counts against).
    pub owner: Id,
    /// The folder a new file goes into, or the file that gets a version.
    pub dest: Id,
}

/// Checks that `user` may upload `size` bytes (when known) to `target`. Errors as Box: bad name 400, parent or
/// file missing 404 (`trashed` when in the trash), no right 403, locked by someone else
/// 403 `access_denied_item_locked`, name taken 409 `item_name_in_use`, quota 403
/// `storage_limit_exceeded`.
pub fn check_target(
    store: &Store,
    user: Id,
    target: &Target,
    size: Option<u64>,
) -> ApiResult<Checked> {
    let checked = match target {
        Target::NewFile { parent, name } => {
            store::check_name(name)?;
            let parent = store.resolve(user, &parent.to_string(), ItemKind::Folder)?;
            check_can_upload(store, user, parent)?;
            if let Some(other) = store.child_by_name(parent, name) {
                return Err(name_in_use(store, other));
            }
            Checked {
                owner: store.item(parent)?.owner,
                dest: parent,
            }
        }
        Target::NewVersion { file_id, name } => {
            let id = store.resolve(user, &file_id.to_string(), ItemKind::File)?;
            check_can_upload(store, user, id)?;
            let item = store.item(id)?;
            if item
                .lock
                .as_ref()
                .is_some_and(|l| l.is_active(Utc::now()) && l.created_by != user)
            {
                return Err(ApiError::forbidden(
                    "access_denied_item_locked",
                    "The file is locked by another user",
                ));
            }
            if let Some(name) = name {
                store::check_name(name)?;
                if let Some(parent) = item.parent {
                    match store.child_by_name(parent, name) {
                        Some(other) if other != id => return Err(name_in_use(store, other)),
                        _ => {}
                    }
                }
            }
            Checked {
                owner: item.owner,
                dest: id,
            }
        }
    };
    if let Some(size) = size {
        store.check_quota(checked.owner, size)?;
    }
    Ok(checked)
}

/// Creates a file or adds a version from `content` whose hex SHA1 is `sha1` (the caller
/// computed it while receiving the bytes; it is trusted). Runs every check of
/// [`check_target`] first and changes nothing when one fails. Stores the bytes in
/// `store.blobs` once per SHA1, records the version and its upload event, and returns
/// the file's id. The caller answers the request and calls `Shared::changed`.
///
/// A new file starts with etag and sequence_id `0`, as on Box; a new version moves both.
pub fn commit_content(
    store: &mut Store,
    user: Id,
    target: &Target,
    content: Blob,
    sha1: &str,
    attrs: &UploadAttrs,
    now: DateTime<Utc>,
) -> ApiResult<Id> {
    let size = content.len();
    let Checked { owner, dest } = check_target(store, user, target, Some(size))?;
    let sha1 = sha1.to_ascii_lowercase();
    store.blobs.entry(sha1.clone()).or_insert(content);
    let version_id = store.alloc_id();
    let (id, action) = match target {
        Target::NewFile { name, .. } => {
            let mut item = store.new_item(ItemKind::File, name, dest, owner, user, now);
            item.content_created_at = attrs.content_created_at.unwrap_or(now);
            item.content_modified_at = attrs.content_modified_at.unwrap_or(now);
            if let Some(d) = &attrs.description {
                item.description = d.clone();
            }
            item.versions.push(Version {
                id: version_id,
                sha1,
                size,
                name: name.clone(),
                created_at: now,
                modified_by: user,
            });
            (store.insert_item(item), Action::UploadFile)
        }
        Target::NewVersion { name, .. } => {
            let id = dest;
            let (parent, old_name) = {
                let item = store.item(id)?;
                (item.parent, item.name.clone())
            };
            if let (Some(name), Some(parent)) = (name, parent) {
                if old_name != *name {
                    store.relink(id, parent, name);
                }
            }
            let item = store.item_mut(id)?;
            if let Some(t) = attrs.content_created_at {
                item.content_created_at = t;
            }
            item.content_modified_at = attrs.content_modified_at.unwrap_or(now);
            if let Some(d) = &attrs.description {
                item.description = d.clone();
            }
            let name = item.name.clone();
            item.versions.push(Version {
                id: version_id,
                sha1,
                size,
                name,
                created_at: now,
                modified_by: user,
            });
            item.touch(user, now);
            (id, Action::UploadVersion)
        }
    };
    store.item_event(action, user, id, now);
    Ok(id)
}

/// Creates file `name` in folder `parent` (its real id) with `content`, as an upload by
/// `user` would (all checks, the upload event). For the demo tree and tests.
pub fn create_file(
    store: &mut Store,
    user: Id,
    parent: Id,
    name: &str,
    content: Bytes,
) -> ApiResult<Id> {
    let sha1 = sha1_hex(&content);
    let target = Target::NewFile {
        parent,
        name: name.to_string(),
    };
    commit_content(
        store,
        user,
        &target,
        content.into(),
        &sha1,
        &UploadAttrs::default(),
        Utc::now(),
    )
}

/// `S.Files` with the one uploaded file, honouring `fields=`.
pub fn files_json(store: &Store, id: Id, viewer: Id, fields: &Fields) -> ApiResult<Value> {
    let item = store.item(id)?;
    Ok(json!({
        "total_count": 1,
        "entries": [repr::item_json(store, item, viewer, fields)],
    }))
}

/// Hex SHA1 of some bytes.
pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    hex::encode(Sha1::digest(data))
}

/// A random upper-case hex string of `n` bytes (Box's session and part ids look like this).
fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode_upper(buf)
}
