//! Files and the trash: `GET/PUT/DELETE /files/{id}` (rename, move, description, tags,
//! locks, shared links), copy, versions, downloads, and the trash endpoints of files and
//! folders (inspect, restore, purge, list). Web links' trash endpoints (`web_links.rs`) go
//! through the same [`get_trashed`], [`restore`] and [`purge`].
//!
//! Downloads answer 302 to `/dl/{token}` on this same server, as Box redirects to
//! dl.boxcloud.com. Clients drop `Authorization` when they follow the redirect, so the token
//! in that URL is its own short-lived authorization for one version of one file. `/dl`
//! serves byte ranges from the in-memory content without copying it.
//!
//! `POST /folders/{folder_id}` (restore a folder) is [`restore_folder`]; it is mounted with
//! the other methods of that path by the folders module, since two routers may not define
//! the same path.

// Handlers return Box's error JSON by value, as everywhere in the emulator.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::blob::Blob;
use super::error::{ApiError, ApiResult};
use super::event_table::Action;
use super::http::{
    id_value, json_body, json_response, no_content, not_modified, opt_bool, opt_str, parent_id,
    query_u64, required_parent_id, AppState, Ctx, Query,
};
use super::repr::{self, item_json, Fields};
use super::store::{check_name, parse_id, DownloadToken, Id, Item, ItemKind, Lock, Store};

/// How long a download URL stays valid.
const DOWNLOAD_TOKEN_TTL_SECS: i64 = 15 * 60;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/2.0/files/{file_id}",
            get(get_file)
                .put(update_file)
                .delete(delete_file)
                .post(restore_file),
        )
        .route("/2.0/files/{file_id}/copy", post(copy_file))
        .route("/2.0/files/{file_id}/content", get(download))
        .route("/2.0/files/{file_id}/versions", get(list_versions))
        .route(
            "/2.0/files/{file_id}/versions/current",
            post(promote_version),
        )
        .route(
            "/2.0/files/{file_id}/trash",
            get(get_trashed_file).delete(purge_file),
        )
        .route(
            "/2.0/folders/{folder_id}/trash",
            get(get_trashed_folder).delete(purge_folder),
        )
        .route("/2.0/folders/trash/items", get(list_trash))
        .route("/dl/{token}", get(serve_download))
}

fn fields(q: &Query) -> Fields {
    Fields::parse(q.get("fields").map(String::as_str))
}

/// 403 `access_denied_item_locked` when someone other than `user` holds an active lock.
pub fn check_not_locked(item: &Item, user: Id, now: DateTime<Utc>) -> ApiResult<()> {
    match &item.lock {
        Some(lock) if lock.is_active(now) && lock.created_by != user => Err(item_locked()),
        _ => Ok(()),
    }
}

fn item_locked() -> ApiError {
    ApiError::forbidden("access_denied_item_locked", "Access denied - item locked")
}

async fn get_file(ctx: Ctx, Path(file_id): Path<String>, q: Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = super::shared_links::resolve_with_boxapi(
        &store,
        ctx.user,
        &ctx.headers,
        &file_id,
        ItemKind::File,
        Utc::now(),
    )?;
    let item = store.item(id)?;
    if ctx.not_modified(item.etag) {
        return Ok(not_modified());
    }
    Ok(json_response(
        200,
        item_json(&store, item, ctx.user, &fields(&q)),
    ))
}

/// What a `lock` value in a PUT body asks for.
enum LockChange {
    Unchanged,
    Unlock,
    Lock {
        expires_at: Option<DateTime<Utc>>,
        is_download_prevented: bool,
    },
}

fn parse_lock(body: &Map<String, Value>, now: DateTime<Utc>) -> ApiResult<LockChange> {
    let lock = match body.get("lock") {
        None => return Ok(LockChange::Unchanged),
        Some(Value::Null) => return Ok(LockChange::Unlock),
        Some(Value::Object(lock)) => lock,
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "lock",
                "'lock' must be an object or null",
            ))
        }
    };
    // The spec names the property `access` but requires `type`; SDKs send either.
    let kind = match (lock.get("type"), lock.get("access")) {
        (Some(v), _) | (None, Some(v)) => v.as_str(),
        (None, None) => None,
    };
    if kind != Some("lock") {
        return Err(ApiError::invalid_parameter(
            "lock.access",
            "'lock.access' must be \"lock\"",
        ));
    }
    let expires_at = match opt_str(lock, "expires_at")? {
        None => None,
        Some(s) => {
            let t = parse_time(&s, "lock.expires_at")?;
            if t <= now {
                return Err(ApiError::invalid_parameter(
                    "lock.expires_at",
                    "'lock.expires_at' must be in the future",
                ));
            }
            Some(t)
        }
    };
    let is_download_prevented = opt_bool(lock, "is_download_prevented")?.unwrap_or(false);
    Ok(LockChange::Lock {
        expires_at,
        is_download_prevented,
    })
}

/// An RFC 3339 timestamp from a request body; anything else is a 400.
pub fn parse_time(s: &str, key: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid_parameter(key, format!("'{key}' must be a date-time")))
}

fn parse_tags(body: &Map<String, Value>) -> ApiResult<Option<Vec<String>>> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => {
            if a.len() > 100 {
                return Err(ApiError::invalid_parameter(
                    "tags",
                    "An item has at most 100 tags",
                ));
            }
            let mut tags: Vec<String> = Vec::new();
            for t in a {
                let t = t.as_str().ok_or_else(|| {
                    ApiError::invalid_parameter("tags", "'tags' must be an array of strings")
                })?;
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.to_string());
                }
            }
            Ok(Some(tags))
        }
        Some(_) => Err(ApiError::invalid_parameter(
            "tags",
            "'tags' must be an array of strings",
        )),
    }
}

/// A description of at most 256 characters (Box's write limit).
pub fn parse_description(body: &Map<String, Value>) -> ApiResult<Option<String>> {
    let d = opt_str(body, "description")?;
    if d.as_ref().is_some_and(|d| d.chars().count() > 256) {
        return Err(ApiError::invalid_parameter(
            "description",
            "'description' is at most 256 characters",
        ));
    }
    Ok(d)
}

/// `PUT /files/{id}`: rename, move (a file may combine both, unlike a folder), description,
/// tags, lock/unlock and shared link, all checked before any of it is applied.
async fn update_file(
    ctx: Ctx,
    Path(file_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let now = Utc::now();
    let name = opt_str(&body, "name")?;
    let parent_raw = parent_id(&body)?;
    let description = parse_description(&body)?;
    let tags = parse_tags(&body)?;
    let lock = parse_lock(&body, now)?;
    let shared_link = body.get("shared_link");
    let fields = fields(&q);
    // Not in the OpenAPI request body, but Box honours it: rclone's Box backend sets a
    // file's modification time (`rclone touch`, SetModTime) with `{"content_modified_at"}`,
    // and rclone's integration tests against Box check that it sticks.
    let content_modified_at = opt_str(&body, "content_modified_at")?
        .map(|s| parse_time(&s, "content_modified_at"))
        .transpose()?;

    let mut store = ctx.shared.store();
    let user = ctx.user;
    let id = store.resolve(user, &file_id, ItemKind::File)?;
    ctx.check_if_match(store.item(id)?.etag)?;
    let target = store.relink_target(user, id, name, parent_raw.as_deref())?;
    let item = store.item(id)?;
    let lock_changes = !matches!(lock, LockChange::Unchanged);
    if target.changes() || lock_changes {
        check_not_locked(item, user, now)?;
    }
    target.check(&store)?;
    let had_lock = item.lock.as_ref().is_some_and(|l| l.is_active(now));
    let description_changed = description.as_ref().is_some_and(|d| *d != item.description);
    let tags_changed = tags.as_ref().is_some_and(|t| *t != item.tags);
    let mtime_changed = content_modified_at.is_some_and(|t| t != item.content_modified_at);

    // Everything is checked; the shared link goes first because it may still refuse.
    if let Some(value) = shared_link {
        super::shared_links::apply(&mut store, id, value, user, now)?;
    }
    let mut events = target.apply(&mut store);
    let lock_id = match lock {
        LockChange::Lock { .. } => store.alloc_id(),
        _ => 0,
    };
    let item = store.item_mut(id)?;
    let mut changed = target.changes();
    if let Some(d) = description {
        if description_changed {
            item.description = d;
            changed = true;
        }
    }
    if let Some(t) = tags {
        if tags_changed {
            item.tags = t;
            changed = true;
        }
    }
    if let Some(t) = content_modified_at {
        if mtime_changed {
            item.content_modified_at = t;
            changed = true;
        }
    }
    if (description_changed || tags_changed || mtime_changed) && !target.changes() {
        events.push(Action::EditInfo);
    }
    match lock {
        LockChange::Unchanged => {}
        LockChange::Unlock => {
            if item.lock.take().is_some() {
                changed = true;
                if had_lock {
                    events.push(Action::Unlock);
                }
            }
        }
        LockChange::Lock {
            expires_at,
            is_download_prevented,
        } => {
            item.lock = Some(Lock {
                id: lock_id,
                created_by: user,
                created_at: now,
                expires_at,
                is_download_prevented,
            });
            changed = true;
            events.push(Action::Lock);
        }
    }
    if changed {
        item.touch(user, now);
    }
    for e in events {
        store.item_event(e, user, id, now);
    }
    let out = item_json(&store, store.item(id)?, user, &fields);
    ctx.shared.changed(&store);
    Ok(json_response(200, out))
}

/// `DELETE /files/{id}`: to the trash (this enterprise keeps deleted files in the trash).
async fn delete_file(ctx: Ctx, Path(file_id): Path<String>) -> ApiResult<Response> {
    let now = Utc::now();
    let mut store = ctx.shared.store();
    let id = store.resolve(ctx.user, &file_id, ItemKind::File)?;
    let item = store.item(id)?;
    ctx.check_if_match(item.etag)?;
    check_not_locked(item, ctx.user, now)?;
    store.trash_item(id, ctx.user, now);
    store.item_event(Action::Trash, ctx.user, id, now);
    ctx.shared.changed(&store);
    Ok(no_content())
}

/// Box sanitizes a file copy's name instead of refusing it: `/`, `\` and control
/// characters are dropped, and so are trailing spaces.
pub fn sanitize_copy_name(name: &str) -> ApiResult<String> {
    let cleaned: String = name
        .chars()
        .filter(|c| *c != '/' && *c != '\\' && !c.is_control())
        .collect();
    let cleaned = cleaned.trim_end_matches(' ').to_string();
    check_name(&cleaned)?;
    Ok(cleaned)
}

/// `POST /files/{id}/copy`: a new file with the current (or the given) version's content.
async fn copy_file(
    ctx: Ctx,
    Path(file_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let parent_raw = required_parent_id(&body)?;
    let name = opt_str(&body, "name")?
        .map(|n| sanitize_copy_name(&n))
        .transpose()?;
    let version_raw = match body.get("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(id_value(v, "version")?),
    };
    let now = Utc::now();
    let mut store = ctx.shared.store();
    let user = ctx.user;
    let id = store.resolve(user, &file_id, ItemKind::File)?;
    let parent = store.resolve_parent(user, &parent_raw)?;
    let src = store.item(id)?.clone();
    let version = match &version_raw {
        None => src
            .current_version()
            .cloned()
            .ok_or_else(|| ApiError::internal("file has no version"))?,
        Some(raw) => {
            let vid = parse_id(raw)?;
            src.versions
                .iter()
                .find(|v| v.id == vid)
                .cloned()
                .ok_or_else(|| ApiError::not_found("file version"))?
        }
    };
    let name = name.unwrap_or_else(|| src.name.clone());
    store.check_name_free(parent, &name, None)?;
    let owner = store.item(parent)?.owner;
    store.check_quota(owner, version.size)?;

    let mut copy = store.new_item(ItemKind::File, &name, parent, owner, user, now);
    copy.description = src.description.clone();
    copy.tags = src.tags.clone();
    copy.content_created_at = src.content_created_at;
    copy.content_modified_at = src.content_modified_at;
    let vid = store.alloc_id();
    copy.versions.push(super::store::Version {
        id: vid,
        name: name.clone(),
        created_at: now,
        modified_by: user,
        ..version
    });
    let new_id = store.insert_item(copy);
    store.item_event(Action::Copy, user, new_id, now);
    let out = item_json(&store, store.item(new_id)?, user, &fields(&q));
    ctx.shared.changed(&store);
    Ok(json_response(201, out))
}

/// `GET /files/{id}/content`: 302 to a short-lived `/dl/{token}` URL on this server.
async fn download(ctx: Ctx, Path(file_id): Path<String>, q: Query) -> ApiResult<Response> {
    let now = Utc::now();
    let mut store = ctx.shared.store();
    let id = super::shared_links::resolve_with_boxapi(
        &store,
        ctx.user,
        &ctx.headers,
        &file_id,
        ItemKind::File,
        now,
    )?;
    let item = store.item(id)?;
    if let Some(lock) = &item.lock {
        if lock.is_active(now) && lock.is_download_prevented && lock.created_by != ctx.user {
            return Err(item_locked());
        }
    }
    let version = match q.get("version").filter(|v| !v.is_empty()) {
        None => item
            .current_version()
            .map(|v| v.id)
            .ok_or_else(|| ApiError::internal("file has no version"))?,
        Some(raw) => {
            let vid = parse_id(raw)?;
            item.versions
                .iter()
                .find(|v| v.id == vid)
                .map(|v| v.id)
                .ok_or_else(|| ApiError::not_found("file version"))?
        }
    };
    store.download_tokens.retain(|_, t| t.expires_at > now);
    let token = super::users::random_token(40);
    store.download_tokens.insert(
        token.clone(),
        DownloadToken {
            item: id,
            version,
            user: ctx.user,
            expires_at: now + chrono::Duration::seconds(DOWNLOAD_TOKEN_TTL_SECS),
        },
    );
    store.item_event(Action::Download, ctx.user, id, now);
    let location = format!(
        "{}/dl/{token}",
        super::box_hosts::Urls::current(&ctx.shared.base_url).download()
    );
    ctx.shared.changed(&store);
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-cache, no-store".to_string()),
        ],
    )
        .into_response())
}

/// `GET /dl/{token}`: the bytes behind a download URL; no bearer token needed.
async fn serve_download(
    State(sh): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let now = Utc::now();
    let (content, sha1, name) = {
        let store = sh.store();
        let t = store
            .download_tokens
            .get(&token)
            .filter(|t| t.expires_at > now)
            .ok_or_else(|| ApiError::not_found("download"))?;
        let item = store
            .items
            .get(&t.item)
            .filter(|_| store.trashed_ancestor(t.item).is_none())
            .ok_or_else(|| ApiError::not_found("file"))?;
        let version = item
            .versions
            .iter()
            .find(|v| v.id == t.version)
            .ok_or_else(|| ApiError::not_found("file version"))?;
        (
            store.blob(&version.sha1)?,
            version.sha1.clone(),
            item.name.clone(),
        )
    };
    Ok(serve_bytes(&headers, content, &sha1, &name))
}

/// Where a `Range` header leaves a response.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    Full,
    /// Inclusive byte positions.
    Partial(u64, u64),
    Unsatisfiable,
}

/// Parses a single `bytes=` range (`a-b`, `a-`, `-n`). Syntax it does not understand,
/// and multiple ranges, are ignored (RFC 9110 allows serving the whole content).
pub fn parse_range(value: &str, len: u64) -> RangeOutcome {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeOutcome::Full;
        };
        if n == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeOutcome::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeOutcome::Full,
        }
    };
    if start >= len {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial(start, end.min(len - 1))
}

/// `filename*` value: RFC 5987 percent-encoding of UTF-8.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Serves file content with ranges, ETag (the version's SHA1) and If-None-Match, sharing
/// the stored bytes instead of copying them.
pub fn serve_bytes(headers: &HeaderMap, content: Blob, sha1: &str, name: &str) -> Response {
    let etag = format!("\"{sha1}\"");
    let len = content.len();
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        percent_encode(name)
    );
    let mut builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "private, no-cache")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        builder = builder.header(header::CONTENT_DISPOSITION, v);
    }
    let none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim().trim_start_matches("W/");
                t == "*" || t.trim_matches('"') == sha1
            })
        });
    if none_match {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::NOT_MODIFIED.into_response());
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len))
        .unwrap_or(RangeOutcome::Full);
    let response = match range {
        RangeOutcome::Full => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, len)
            .body(content.body(0, len)),
        RangeOutcome::Partial(a, b) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}"))
            .header(header::CONTENT_LENGTH, b - a + 1)
            .body(content.body(a, b + 1)),
        RangeOutcome::Unsatisfiable => {
            return ApiError::new(
                416,
                "requested_range_not_satisfiable",
                "The range header does not fit within the size of the file",
            )
            .with_header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .into_response()
        }
    };
    response.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// FileVersion--Full.
fn version_json(store: &Store, item: &Item, index: usize) -> Value {
    let v = &item.versions[index];
    json!({
        "type": "file_version",
        "id": v.id.to_string(),
        "sha1": v.sha1,
        "name": v.name,
        "size": v.size,
        "created_at": repr::time(v.created_at),
        "modified_at": repr::time(v.created_at),
        "modified_by": repr::user_mini(store, v.modified_by),
        "trashed_at": Value::Null,
        "restored_at": Value::Null,
        "purged_at": Value::Null,
        "uploader_display_name": repr::user_mini(store, v.modified_by)["name"],
        "version_number": (index + 1).to_string(),
    })
}

/// Keeps `type`, `id` and the named fields of an object when `fields` is given.
fn filter_fields(v: Value, fields: &Fields) -> Value {
    match (&fields.0, v) {
        (Some(set), Value::Object(m)) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| matches!(k.as_str(), "type" | "id") || set.contains(k))
                .collect(),
        ),
        (_, v) => v,
    }
}

/// `GET /files/{id}/versions`: the previous versions, newest first (the current version
/// is not listed, as on Box).
async fn list_versions(ctx: Ctx, Path(file_id): Path<String>, q: Query) -> ApiResult<Response> {
    let limit = query_u64(&q, "limit", 1000)?.clamp(1, 1000) as usize;
    let offset = query_u64(&q, "offset", 0)? as usize;
    let fields = fields(&q);
    let store = ctx.shared.store();
    let id = store.resolve(ctx.user, &file_id, ItemKind::File)?;
    let item = store.item(id)?;
    let previous = item.versions.len().saturating_sub(1);
    let entries: Vec<Value> = (0..previous)
        .rev()
        .skip(offset)
        .take(limit)
        .map(|i| filter_fields(version_json(&store, item, i), &fields))
        .collect();
    Ok(json_response(
        200,
        json!({"total_count": previous, "entries": entries, "limit": limit, "offset": offset}),
    ))
}

/// `POST /files/{id}/versions/current` `{"type": "file_version", "id"}`: a copy of an older
/// version becomes the current one; the history keeps every version (boxsdk's
/// `File.promote_version`).
async fn promote_version(
    ctx: Ctx,
    Path(file_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let version_id = match body.get("id") {
        Some(v) => id_value(v, "id")?,
        None => return Err(ApiError::invalid_parameter("id", "'id' is required")),
    };
    if let Some(t) = opt_str(&body, "type")? {
        if t != "file_version" {
            return Err(ApiError::invalid_parameter(
                "type",
                "'type' must be 'file_version'",
            ));
        }
    }
    let fields = fields(&q);
    let now = Utc::now();
    let mut store = ctx.shared.store();
    let id = store.resolve(ctx.user, &file_id, ItemKind::File)?;
    let item = store.item(id)?;
    ctx.check_if_match(item.etag)?;
    check_not_locked(item, ctx.user, now)?;
    let old = item
        .versions
        .iter()
        .find(|v| v.id.to_string() == version_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("file version"))?;
    let promoted = super::store::Version {
        id: store.alloc_id(),
        created_at: now,
        modified_by: ctx.user,
        ..old
    };
    let item = store.item_mut(id)?;
    item.versions.push(promoted);
    item.touch(ctx.user, now);
    let index = item.versions.len() - 1;
    store.item_event(Action::PromoteVersion, ctx.user, id, now);
    let out = filter_fields(version_json(&store, store.item(id)?, index), &fields);
    ctx.shared.changed(&store);
    Ok(json_response(201, out))
}

/// The trash as a folder in a trashed item's `path_collection`.
fn trash_path() -> Value {
    json!({"total_count": 1, "entries": [
        {"type": "folder", "id": "1", "sequence_id": Value::Null, "etag": Value::Null, "name": "Trash"}
    ]})
}

/// TrashFile / TrashFolder: the item as it sits in the trash. Box shows the trash as its
/// path and no shared link.
fn trashed_json(store: &Store, item: &Item, viewer: Id, fields: &Fields) -> Value {
    let mut v = item_json(store, item, viewer, fields);
    if v.get("path_collection").is_some() {
        v["path_collection"] = trash_path();
    }
    if fields.is_standard() || v.get("shared_link").is_some() {
        v["shared_link"] = Value::Null;
    }
    v
}

/// TrashFileRestored / TrashFolderRestored: the item back in place; Box answers a null
/// shared link even though the link works again.
fn restored_json(store: &Store, item: &Item, viewer: Id, fields: &Fields) -> Value {
    let mut v = item_json(store, item, viewer, fields);
    if fields.is_standard() || v.get("shared_link").is_some() {
        v["shared_link"] = Value::Null;
    }
    v
}

pub(crate) fn get_trashed(ctx: &Ctx, raw: &str, kind: ItemKind, q: &Query) -> ApiResult<Response> {
    let store = ctx.shared.store();
    let id = store.resolve_trashed(ctx.user, raw, kind)?;
    let item = store.item(id)?;
    Ok(json_response(
        200,
        trashed_json(&store, item, ctx.user, &fields(q)),
    ))
}

async fn get_trashed_file(ctx: Ctx, Path(file_id): Path<String>, q: Query) -> ApiResult<Response> {
    get_trashed(&ctx, &file_id, ItemKind::File, &q)
}

async fn get_trashed_folder(
    ctx: Ctx,
    Path(folder_id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    get_trashed(&ctx, &folder_id, ItemKind::Folder, &q)
}

pub(crate) fn purge(ctx: &Ctx, raw: &str, kind: ItemKind) -> ApiResult<Response> {
    let mut store = ctx.shared.store();
    let id = store.resolve_trashed(ctx.user, raw, kind)?;
    store.purge(id);
    ctx.shared.changed(&store);
    Ok(no_content())
}

async fn purge_file(ctx: Ctx, Path(file_id): Path<String>) -> ApiResult<Response> {
    purge(&ctx, &file_id, ItemKind::File)
}

async fn purge_folder(ctx: Ctx, Path(folder_id): Path<String>) -> ApiResult<Response> {
    purge(&ctx, &folder_id, ItemKind::Folder)
}

/// Restores an item from the trash: into its old folder when that still exists outside
/// the trash, else into the `parent` of the body, else into the owner's root.
pub(crate) fn restore(
    ctx: &Ctx,
    raw: &str,
    kind: ItemKind,
    q: &Query,
    body: &Bytes,
) -> ApiResult<Response> {
    let body = json_body(body)?;
    let name = opt_str(&body, "name")?;
    let parent_raw = parent_id(&body)?;
    let now = Utc::now();
    let mut store = ctx.shared.store();
    let user = ctx.user;
    let id = store.resolve_trashed(user, raw, kind)?;
    let item = store.item(id)?;
    let name = name.unwrap_or_else(|| item.name.clone());
    check_name(&name)?;
    let original = item
        .parent
        .filter(|p| store.items.contains_key(p) && store.trashed_ancestor(*p).is_none());
    let owner_root = store.user(item.owner)?.root_folder;
    let parent = match (original, &parent_raw) {
        (Some(p), _) => p,
        (None, Some(raw)) => store.resolve_parent(user, raw)?,
        (None, None) => owner_root,
    };
    store.check_name_free(parent, &name, Some(id))?;
    store.restore_item(id, parent, &name, user, now);
    store.item_event(Action::RestoreFromTrash, user, id, now);
    let out = restored_json(&store, store.item(id)?, user, &fields(q));
    ctx.shared.changed(&store);
    Ok(json_response(201, out))
}

/// `POST /files/{file_id}`: restore a file from the trash.
async fn restore_file(
    ctx: Ctx,
    Path(file_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    restore(&ctx, &file_id, ItemKind::File, &q, &body)
}

/// `POST /folders/{folder_id}`: restore a folder (and what it held) from the trash.
/// Mounted by the folders module next to GET/PUT/DELETE of the same path.
pub async fn restore_folder(
    ctx: Ctx,
    Path(folder_id): Path<String>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    restore(&ctx, &folder_id, ItemKind::Folder, &q, &body)
}

/// Sort key of a trash listing: type first (folders, files, web links), then the chosen
/// field.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum SortValue {
    Name(String),
    Num(i64),
}

type TrashKey = (u8, SortValue, String, Id);

/// The type order whatever the direction; then the sort field, the name and the id.
fn trash_order(a: &TrashKey, b: &TrashKey, descending: bool) -> std::cmp::Ordering {
    let second =
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3));
    a.0.cmp(&b.0)
        .then(if descending { second.reverse() } else { second })
}

/// A marker: the sort position of the first entry of the next page, so that pages stay
/// right while the trash changes between requests.
fn encode_marker(rank: u8, name: &str, id: Id) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!([rank, name, id.to_string()]).to_string())
}

fn decode_marker(marker: &str) -> ApiResult<(u8, String, Id)> {
    let bad = || ApiError::invalid_parameter("marker", "Invalid value for 'marker'");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rank = v[0].as_u64().ok_or_else(bad)? as u8;
    let name = v[1].as_str().ok_or_else(bad)?.to_string();
    let id = v[2].as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    Ok((rank, name, id))
}

/// `GET /folders/trash/items`: the items the user put (or could see put) in the trash
/// themselves; their contents come back with them and are not listed.
async fn list_trash(ctx: Ctx, q: Query) -> ApiResult<Response> {
    let limit = query_u64(&q, "limit", 100)?.clamp(1, 1000) as usize;
    let offset = query_u64(&q, "offset", 0)?;
    if offset > 10_000 {
        return Err(ApiError::invalid_parameter(
            "offset",
            "Queries with an offset above 10000 are not supported",
        ));
    }
    let offset = offset as usize;
    let usemarker = match q.get("usemarker").map(String::as_str) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "usemarker",
                "'usemarker' must be true or false",
            ))
        }
    };
    let sort = q.get("sort").map(String::as_str).unwrap_or("");
    if usemarker && !sort.is_empty() {
        return Err(ApiError::invalid_parameter(
            "sort",
            "'sort' cannot be used with marker-based pagination",
        ));
    }
    let by = match sort {
        "" | "name" => "name",
        "date" => "date",
        "size" => "size",
        _ => {
            return Err(ApiError::invalid_parameter(
                "sort",
                "'sort' must be one of name, date, size",
            ))
        }
    };
    let descending = match q.get("direction").map(String::as_str) {
        None | Some("") | Some("ASC") => false,
        Some("DESC") => true,
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "direction",
                "'direction' must be ASC or DESC",
            ))
        }
    };
    let fields = fields(&q);
    let store = ctx.shared.store();
    let mut trashed: Vec<TrashKey> = store
        .items
        .values()
        .filter(|i| i.trash.is_some() && store.can_access(ctx.user, i.id))
        .map(|i| {
            let rank = i.kind.listing_rank();
            let lower = i.name.to_lowercase();
            let key = match by {
                "date" => SortValue::Num(
                    i.trash
                        .as_ref()
                        .map(|t| t.trashed_at.timestamp_millis())
                        .unwrap_or(0),
                ),
                "size" => SortValue::Num(store.tree_size(i.id) as i64),
                _ => SortValue::Name(lower.clone()),
            };
            (rank, key, lower, i.id)
        })
        .collect();
    trashed.sort_by(|a, b| trash_order(a, b, descending));
    let entry = |id: Id| -> Value {
        let item = &store.items[&id];
        if fields.is_standard() {
            repr::mini(&store, item)
        } else {
            trashed_json(&store, item, ctx.user, &fields)
        }
    };
    if usemarker {
        let start = match q.get("marker").filter(|m| !m.is_empty()) {
            None => 0,
            Some(m) => {
                let (rank, name, id) = decode_marker(m)?;
                let at = (rank, SortValue::Name(name.clone()), name, id);
                trashed
                    .iter()
                    .position(|e| trash_order(e, &at, descending) != std::cmp::Ordering::Less)
                    .unwrap_or(trashed.len())
            }
        };
        let page: Vec<Value> = trashed
            .iter()
            .skip(start)
            .take(limit)
            .map(|e| entry(e.3))
            .collect();
        let next_marker = trashed
            .get(start + limit)
            .map(|e| json!(encode_marker(e.0, &e.2, e.3)))
            .unwrap_or(Value::Null);
        return Ok(json_response(
            200,
            json!({"entries": page, "limit": limit, "next_marker": next_marker}),
        ));
    }
    let page: Vec<Value> = trashed
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| entry(e.3))
        .collect();
    let direction = if descending { "DESC" } else { "ASC" };
    Ok(json_response(
        200,
        json!({
            "total_count": trashed.len(),
            "entries": page,
            "offset": offset,
            "limit": limit,
            "order": [
                {"by": "type", "direction": "ASC"},
                {"by": by, "direction": direction},
            ],
        }),
    ))
}
