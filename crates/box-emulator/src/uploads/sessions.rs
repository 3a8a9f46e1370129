//! Chunked upload sessions (`/api/2.0/files/upload_sessions/...`), for files of 20 MB and
//! more: create a session (the server picks the part size), upload parts in any order and in
//! parallel, list them, then commit with the list of parts and the whole file's SHA1.
//!
//! Part bytes stay in `Store::session_data` until the commit joins them into one blob (or
//! the session is aborted or expires). Box's quirks reproduced here:
//! - a part's `Digest: sha=<base64 SHA1>` is required; a wrong one is 400 `digest_mismatch`
//!   (what Box answers, also at commit; the spec's 412 is for If-Match on the commit);
//! - every part is exactly `part_size` bytes at a multiple of `part_size`, except the last;
//!   a range that does not fit is 416;
//! - sending the same part again is answered with the part already stored (a client may
//!   retry after a lost response), a different part on a used range is 409;
//! - a commit may be answered 202 + `Retry-After` while "parts are being processed"
//!   (`Knobs::commit_retry_polls` times per session), and a wrong list of parts is 400
//!   `parts_mismatch`.

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use super::{check_target, commit_content, files_json, random_hex, Target, UploadAttrs};
use crate::blob::Blob;
use crate::error::{ApiError, ApiResult};
use crate::http::{
    id_value, json_body, json_response, no_content, query_u64, AppState, Ctx, Query,
};
use crate::repr::{self, Fields};
use crate::store::{self, parse_id, Id, ItemKind, PrefixHash, Store, UploadSession, UploadedPart};

/// Box refuses upload sessions for files under 20 MB (use the multipart upload).
pub const MIN_SESSION_FILE_SIZE: u64 = 20_000_000;

const MIB: u64 = 1 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/2.0/files/upload_sessions", post(create_for_folder))
        .route(
            "/api/2.0/files/{file_id}/upload_sessions",
            post(create_for_version),
        )
        .route(
            "/api/2.0/files/upload_sessions/{upload_session_id}",
            get(status).put(upload_part).delete(abort),
        )
        .route(
            "/api/2.0/files/upload_sessions/{upload_session_id}/parts",
            get(list_parts),
        )
        .route(
            "/api/2.0/files/upload_sessions/{upload_session_id}/commit",
            post(commit),
        )
}

/// The part size Box chooses: 8 MiB up to about 1 GB (seen for 160 MB files), larger parts
/// for larger files (32 MiB was seen for a 1 GiB file), so a 50 GB file stays well under
/// Box's 10,000-part listing limit.
pub fn part_size_for(file_size: u64) -> u64 {
    if file_size <= 1_000_000_000 {
        8 * MIB
    } else if file_size <= 20_000_000_000 {
        32 * MIB
    } else {
        64 * MIB
    }
}

fn total_parts(s: &UploadSession) -> u64 {
    s.file_size.div_ceil(s.part_size)
}

/// `S.UploadSession`; every endpoint URL points back at this emulator, under the upload
/// host's name when the request came by Box's names.
fn session_json(base_url: &str, s: &UploadSession) -> Value {
    let upload = crate::box_hosts::Urls::current(base_url).upload();
    let url = format!("{upload}/api/2.0/files/upload_sessions/{}", s.id);
    json!({
        "id": s.id,
        "type": "upload_session",
        "session_expires_at": repr::time(s.expires_at),
        "part_size": s.part_size,
        "total_parts": total_parts(s),
        "num_parts_processed": s.parts.len(),
        "session_endpoints": {
            "upload_part": url,
            "commit": format!("{url}/commit"),
            "abort": url,
            "list_parts": format!("{url}/parts"),
            "status": url,
            "log_event": format!("{url}/log"),
        },
    })
}

fn part_json(p: &UploadedPart) -> Value {
    json!({"part_id": p.part_id, "offset": p.offset, "size": p.size, "sha1": p.sha1})
}

// ---------------------------------------------------------------------------------------
// Creating a session

async fn create_for_folder(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let folder = match body.get("folder_id") {
        None | Some(Value::Null) => {
            return Err(ApiError::new(
                400,
                "missing_destination",
                "No folder_id was provided",
            ))
        }
        Some(v) => id_value(v, "folder_id")
            .ok()
            .filter(|f| f == "0" || parse_id(f).is_ok())
            .ok_or_else(|| {
                ApiError::new(400, "invalid_folder_id", "folder_id is not a valid id")
            })?,
    };
    let size = file_size(&body)?;
    let name = match body.get("file_name") {
        None | Some(Value::Null) => {
            return Err(ApiError::new(
                400,
                "missing_file_name",
                "No file_name was provided",
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::new(
                400,
                "item_name_invalid",
                "file_name must be a string",
            ))
        }
    };
    store::check_name(&name)?;
    let mut store = ctx.shared.store();
    let folder = store.resolve_parent(ctx.user, &folder)?;
    let target = Target::NewFile {
        parent: folder,
        name: name.clone(),
    };
    check_target(&store, ctx.user, &target, Some(size))?;
    let out = open_session(&ctx, &mut store, Some(folder), None, name, size);
    Ok(json_response(201, out))
}

async fn create_for_version(
    ctx: Ctx,
    Path(file_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let file_id = parse_id(&file_id)?;
    let body = json_body(&body)?;
    let size = file_size(&body)?;
    let name = match body.get("file_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::new(
                400,
                "item_name_invalid",
                "file_name must be a string",
            ))
        }
    };
    let mut store = ctx.shared.store();
    let file_id = store.resolve(ctx.user, &file_id.to_string(), ItemKind::File)?;
    let target = Target::NewVersion {
        file_id,
        name: name.clone(),
    };
    check_target(&store, ctx.user, &target, Some(size))?;
    // An empty file_name in the session means "keep the file's name".
    let out = open_session(
        &ctx,
        &mut store,
        None,
        Some(file_id),
        name.unwrap_or_default(),
        size,
    );
    Ok(json_response(201, out))
}

fn file_size(body: &Map<String, Value>) -> ApiResult<u64> {
    let size = match body.get("file_size") {
        None | Some(Value::Null) => {
            return Err(ApiError::new(
                400,
                "missing_file_size",
                "No file_size was provided",
            ))
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_file_size",
                "file_size must be a non-negative integer",
            )
        })?,
    };
    if size < MIN_SESSION_FILE_SIZE {
        return Err(ApiError::new(
            400,
            "file_size_too_small",
            format!(
                "file_size is below the minimum of {MIN_SESSION_FILE_SIZE} bytes for upload sessions"
            ),
        ));
    }
    Ok(size)
}

fn open_session(
    ctx: &Ctx,
    store: &mut Store,
    folder_id: Option<Id>,
    file_id: Option<Id>,
    file_name: String,
    file_size: u64,
) -> Value {
    let now = Utc::now();
    sweep(store, now);
    let ttl = i64::try_from(ctx.shared.config.upload_session_ttl_secs).unwrap_or(i64::MAX / 2);
    let session = UploadSession {
        id: random_hex(16),
        user: ctx.user,
        folder_id,
        file_id,
        file_name,
        file_size,
        part_size: part_size_for(file_size),
        created_at: now,
        expires_at: now + chrono::Duration::seconds(ttl.min(100 * 365 * 86400)),
        parts: Default::default(),
        pending_commit_polls: ctx.shared.knobs().commit_retry_polls,
    };
    let out = session_json(&ctx.shared.base_url, &session);
    store.sessions.insert(session.id.clone(), session);
    out
}

/// Drops the parts of expired sessions, and forgets sessions a day after they expired (until
/// then they answer 410).
fn sweep(store: &mut Store, now: DateTime<Utc>) {
    let expired: Vec<(String, bool)> = store
        .sessions
        .values()
        .filter(|s| s.expires_at <= now)
        .map(|s| {
            (
                s.id.clone(),
                s.expires_at + chrono::Duration::days(1) <= now,
            )
        })
        .collect();
    for (id, forget) in expired {
        drop_parts(store, &id);
        if forget {
            store.sessions.remove(&id);
        }
    }
}

fn drop_parts(store: &mut Store, id: &str) {
    store.session_prefix.remove(id);
    if let Some(s) = store.sessions.get_mut(id) {
        for offset in std::mem::take(&mut s.parts).into_keys() {
            store.session_data.remove(&(id.to_string(), offset));
        }
    }
}

/// Hashes (and joins) the parts of session `id` that continue the prefix, one at a time and
/// away from the store's lock; a request that finds another one hashing leaves it the work (that
/// one looks again for the next part before it stops). Run before a part's answer, so that
/// once every part is answered the commit finds the whole file hashed.
async fn advance_prefix(shared: &AppState, id: &str) {
    loop {
        let (mut prefix, next) = {
            let mut store = shared.store();
            let Some(slot) = store.session_prefix.get_mut(id) else {
                return;
            };
            let Some(prefix) = slot.take() else {
                return;
            };
            match store
                .session_data
                .get(&(id.to_string(), prefix.upto))
                .cloned()
            {
                Some(next) => (prefix, next),
                None => {
                    store.session_prefix.insert(id.to_string(), Some(prefix));
                    return;
                }
            }
        };
        let hashed = tokio::task::spawn_blocking(move || {
            prefix.hasher.update(&next);
            prefix.upto += next.len() as u64;
            prefix
        })
        .await;
        let mut store = shared.store();
        match hashed {
            // Still open (not committed, aborted or expired meanwhile): put it back.
            Ok(prefix) if store.session_prefix.contains_key(id) => {
                store.session_prefix.insert(id.to_string(), Some(prefix));
            }
            _ => {
                store.session_prefix.remove(id);
                return;
            }
        }
    }
}

/// The caller's live session: 404 unknown, 403 another user's, 410 expired (its parts are
/// dropped then).
fn check_session(store: &mut Store, user: Id, id: &str, now: DateTime<Utc>) -> ApiResult<()> {
    let s = store.sessions.get(id).ok_or_else(|| {
        ApiError::new(
            404,
            "not_found",
            "Not Found: the upload session does not exist",
        )
    })?;
    if s.user != user {
        return Err(ApiError::forbidden(
            "forbidden",
            "Only the user who created the upload session may use it",
        ));
    }
    if now >= s.expires_at {
        drop_parts(store, id);
        return Err(ApiError::new(
            410,
            "session_expired",
            "The upload session has expired",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Status, parts listing, abort

async fn status(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let mut store = ctx.shared.store();
    check_session(&mut store, ctx.user, &id, Utc::now())?;
    Ok(json_response(
        200,
        session_json(&ctx.shared.base_url, &store.sessions[&id]),
    ))
}

async fn list_parts(ctx: Ctx, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let offset = query_u64(&q, "offset", 0)?;
    if offset > 10_000 {
        return Err(ApiError::invalid_parameter(
            "offset",
            "'offset' must not be more than 10000",
        ));
    }
    let limit = query_u64(&q, "limit", 100)?.clamp(1, 1000);
    let mut store = ctx.shared.store();
    check_session(&mut store, ctx.user, &id, Utc::now())?;
    let s = &store.sessions[&id];
    let entries: Vec<Value> = s
        .parts
        .values()
        .skip(offset as usize)
        .take(limit as usize)
        .map(part_json)
        .collect();
    Ok(json_response(
        200,
        json!({
            "total_count": s.parts.len(),
            "limit": limit,
            "offset": offset,
            // What Box sends with every offset page of parts (its Java SDK's fixtures), odd
            // as it is: the parts come by offset.
            "order": [{"by": "type", "direction": "ASC"}],
            "entries": entries,
        }),
    ))
}

/// Abort: the session and its parts are gone (an expired session can be aborted too).
async fn abort(ctx: Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let mut store = ctx.shared.store();
    match check_session(&mut store, ctx.user, &id, Utc::now()) {
        Ok(()) => {}
        Err(e) if e.status == StatusCode::GONE => {}
        Err(e) => return Err(e),
    }
    drop_parts(&mut store, &id);
    store.sessions.remove(&id);
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------
// Uploading a part

async fn upload_part(ctx: Ctx, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let now = Utc::now();
    // Check the headers against the session first, but read the body in every case, so the
    // client (still sending) gets the answer instead of a reset connection.
    let pre = {
        let mut store = ctx.shared.store();
        check_session(&mut store, ctx.user, &id, now).and_then(|()| {
            let s = &store.sessions[&id];
            let (offset, size) = parse_range(ctx.header("content-range"), s)?;
            let digest = parse_digest(ctx.header("digest"))?;
            Ok((offset, size, digest))
        })
    };
    let keep = pre.as_ref().map(|p| p.1).unwrap_or(0);
    let (data, received) = read_body(body, keep).await?;
    let (offset, size, digest) = pre?;
    if received != size {
        return Err(ApiError::bad_request(format!(
            "The body has {received} bytes but Content-Range announces {size}"
        )));
    }
    let data = data.unwrap_or_default();
    let got = {
        let mut h = Sha1::new();
        h.update(&data);
        h.finalize()
    };
    if got.as_slice() != digest.as_slice() {
        return Err(digest_mismatch(got.as_slice(), &digest));
    }
    let sha1 = hex::encode(got);

    let part = {
        let mut store = ctx.shared.store();
        check_session(&mut store, ctx.user, &id, Utc::now())?;
        let s = store.sessions.get_mut(&id).expect("checked session");
        if let Some(existing) = s.parts.get(&offset) {
            if existing.size == size && existing.sha1 == sha1 {
                // The same part again (a retry after a lost response): same answer.
                return Ok(json_response(200, json!({"part": part_json(existing)})));
            }
            return Err(ApiError::new(
                409,
                "conflict",
                "A different part was already uploaded at this range",
            ));
        }
        let part = UploadedPart {
            part_id: random_hex(4),
            offset,
            size,
            sha1,
        };
        s.parts.insert(offset, part.clone());
        store.session_data.insert((id.clone(), offset), data);
        store
            .session_prefix
            .entry(id.clone())
            .or_insert_with(|| Some(PrefixHash::default()));
        part
    };
    advance_prefix(&ctx.shared, &id).await;
    Ok(json_response(200, json!({"part": part_json(&part)})))
}

/// `Content-Range: bytes <first>-<last>/<total>` → (offset, size), checked against the
/// session: total is the file size, the offset a multiple of the part size, and the part
/// exactly `part_size` long unless it is the last one.
fn parse_range(raw: Option<&str>, s: &UploadSession) -> ApiResult<(u64, u64)> {
    let raw = raw.ok_or_else(|| ApiError::bad_request("The Content-Range header is required"))?;
    let bad = |why: &str| {
        ApiError::new(
            416,
            "requested_range_not_satisfiable",
            format!("Content-Range '{raw}' does not fit the upload session: {why}"),
        )
    };
    let spec = raw
        .trim()
        .strip_prefix("bytes ")
        .ok_or_else(|| bad("expected 'bytes <first>-<last>/<total>'"))?;
    let (range, total) = spec
        .split_once('/')
        .ok_or_else(|| bad("expected 'bytes <first>-<last>/<total>'"))?;
    let (first, last) = range
        .split_once('-')
        .ok_or_else(|| bad("expected 'bytes <first>-<last>/<total>'"))?;
    let num = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| bad("expected 'bytes <first>-<last>/<total>'"))
    };
    let (first, last, total) = (num(first)?, num(last)?, num(total)?);
    if total != s.file_size {
        return Err(bad(&format!(
            "the total must be the session's file size {}",
            s.file_size
        )));
    }
    if last < first || last >= total {
        return Err(bad("the range is empty or beyond the end of the file"));
    }
    if first % s.part_size != 0 {
        return Err(bad(&format!(
            "the first byte must be a multiple of the part size {}",
            s.part_size
        )));
    }
    let size = last - first + 1;
    let expected = s.part_size.min(total - first);
    if size != expected {
        return Err(bad(&format!(
            "this part must be {expected} bytes long (part size {}, only the last part is shorter)",
            s.part_size
        )));
    }
    Ok((first, size))
}

/// `Digest: sha=<base64 of the raw SHA1>` (RFC 3230; the Python SDK writes `SHA=`).
fn parse_digest(raw: Option<&str>) -> ApiResult<Vec<u8>> {
    let raw = raw.ok_or_else(|| {
        ApiError::bad_request("The Digest header (sha=<base64 SHA1>) is required")
    })?;
    raw.split(',')
        .filter_map(|d| d.trim().split_once('='))
        .find(|(alg, _)| alg.trim().eq_ignore_ascii_case("sha"))
        .and_then(|(_, v)| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .filter(|d| d.len() == 20)
        .ok_or_else(|| ApiError::bad_request("The Digest header must be sha=<base64 of the SHA1>"))
}

fn digest_mismatch(actual: &[u8], expected: &[u8]) -> ApiError {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    ApiError::new(
        400,
        "digest_mismatch",
        format!(
            "File digest was incorrect. Actual: {} Expected: {}",
            b64(actual),
            b64(expected)
        ),
    )
}

/// Reads a request body, keeping at most `keep` bytes (the rest is read and dropped).
/// Returns the kept bytes (`None` when there were more) and the total length.
async fn read_body(body: Body, keep: u64) -> ApiResult<(Option<Bytes>, u64)> {
    let mut stream = body.into_data_stream();
    let mut buf = Some(BytesMut::with_capacity(keep.min(256 * MIB) as usize));
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the body failed: {e}")))?;
        total += chunk.len() as u64;
        if total > keep {
            buf = None;
        }
        if let Some(b) = buf.as_mut() {
            b.extend_from_slice(&chunk);
        }
    }
    Ok((buf.map(BytesMut::freeze), total))
}

// ---------------------------------------------------------------------------------------
// Commit

async fn commit(ctx: Ctx, Path(id): Path<String>, q: Query, body: Bytes) -> ApiResult<Response> {
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    let digest = parse_digest(ctx.header("digest"))?;
    let body = json_body(&body)?;
    let listed = match body.get("parts") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_parameter("parts", "'parts' is required"))
        }
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "parts",
                "'parts' must be an array of parts",
            ))
        }
    };
    let attrs = match body.get("attributes") {
        None | Some(Value::Null) => UploadAttrs::default(),
        Some(Value::Object(a)) => UploadAttrs::from_json(a)?,
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "attributes",
                "'attributes' must be an object",
            ))
        }
    };

    // Everything that can be checked without touching the bytes, then maybe a 202.
    let (target, content, hashed) = {
        let mut guard = ctx.shared.store();
        let store = &mut *guard;
        check_session(store, ctx.user, &id, Utc::now())?;
        let s = &store.sessions[&id];
        check_listed_parts(s, &listed)?;
        let target = session_target(s);
        check_conditions(&ctx, store, &target)?;
        check_target(store, ctx.user, &target, Some(s.file_size))?;
        let s = store.sessions.get_mut(&id).expect("checked session");
        if s.pending_commit_polls > 0 {
            s.pending_commit_polls -= 1;
            return Ok((StatusCode::ACCEPTED, [(header::RETRY_AFTER, "1")]).into_response());
        }
        // Part bytes are not persisted: after a restart a session has its parts' records
        // but not their bytes, and can only fail, as Box's `upload_failed`.
        let pieces: Option<Vec<Bytes>> = s
            .parts
            .keys()
            .map(|o| store.session_data.get(&(id.clone(), *o)).cloned())
            .collect();
        let Some(pieces) = pieces else {
            drop_parts(store, &id);
            return Err(ApiError::new(
                410,
                "upload_failed",
                "The upload session lost its parts; start a new session",
            ));
        };
        // The whole file hashed as its parts arrived, if it is (not while a request still
        // works on a part, nor with a gap).
        let content = Blob::from_pieces(pieces);
        let hashed = match store.session_prefix.get(&id) {
            Some(Some(p)) if p.upto == content.len() => Some(p.hasher.clone().finalize()),
            _ => None,
        };
        (target, content, hashed)
    };

    // Otherwise hash the parts now, away from the store lock. The parts themselves become
    // the file's content: nothing is joined or copied.
    let got = match hashed {
        Some(got) => got,
        None => {
            let content = content.clone();
            tokio::task::spawn_blocking(move || {
                let mut h = Sha1::new();
                for p in content.pieces() {
                    h.update(p);
                }
                h.finalize()
            })
            .await
            .map_err(|e| ApiError::internal(format!("hashing the parts failed: {e}")))?
        }
    };
    if got.as_slice() != digest.as_slice() {
        return Err(digest_mismatch(got.as_slice(), &digest));
    }

    let mut store = ctx.shared.store();
    check_session(&mut store, ctx.user, &id, Utc::now())?;
    check_conditions(&ctx, &store, &target)?;
    let sha1 = hex::encode(got);
    let file = commit_content(
        &mut store,
        ctx.user,
        &target,
        content,
        &sha1,
        &attrs,
        Utc::now(),
    )?;
    drop_parts(&mut store, &id);
    store.sessions.remove(&id);
    let out = files_json(&store, file, ctx.user, &fields)?;
    ctx.shared.changed(&store);
    Ok(json_response(201, out))
}

fn session_target(s: &UploadSession) -> Target {
    match s.file_id {
        Some(file_id) => Target::NewVersion {
            file_id,
            name: (!s.file_name.is_empty()).then(|| s.file_name.clone()),
        },
        None => Target::NewFile {
            parent: s.folder_id.unwrap_or_default(),
            name: s.file_name.clone(),
        },
    }
}

/// If-Match / If-None-Match on a new version's commit: 412 when they do not hold.
fn check_conditions(ctx: &Ctx, store: &Store, target: &Target) -> ApiResult<()> {
    if let Target::NewVersion { file_id, .. } = target {
        let etag = store.item(*file_id)?.etag;
        ctx.check_if_match(etag)?;
        if ctx.not_modified(etag) {
            return Err(ApiError::precondition_failed());
        }
    }
    Ok(())
}

/// The commit's `parts` must be every part of the file, in order, as they were uploaded.
fn check_listed_parts(s: &UploadSession, listed: &[Value]) -> ApiResult<()> {
    let mismatch = |why: String| ApiError::new(400, "parts_mismatch", why);
    let uploaded: u64 = s.parts.values().map(|p| p.size).sum();
    if uploaded != s.file_size {
        return Err(mismatch(format!(
            "Not all parts were uploaded: {} of {} parts, {uploaded} of {} bytes",
            s.parts.len(),
            total_parts(s),
            s.file_size
        )));
    }
    if listed.len() != s.parts.len() {
        return Err(mismatch(format!(
            "The commit lists {} parts but the session has {}",
            listed.len(),
            s.parts.len()
        )));
    }
    for (i, (entry, part)) in listed.iter().zip(s.parts.values()).enumerate() {
        let Some(entry) = entry.as_object() else {
            return Err(mismatch(format!("Part {i} of the list is not an object")));
        };
        let part_id = entry.get("part_id").and_then(Value::as_str);
        if part_id != Some(part.part_id.as_str()) {
            return Err(mismatch(format!(
                "Part {i} of the list should be part_id {} (offset {}), not {}",
                part.part_id,
                part.offset,
                part_id.unwrap_or("missing")
            )));
        }
        let offset_ok = entry
            .get("offset")
            .is_none_or(|v| v.as_u64() == Some(part.offset));
        let size_ok = entry
            .get("size")
            .is_none_or(|v| v.as_u64() == Some(part.size));
        let sha1_ok = entry.get("sha1").is_none_or(|v| {
            v.as_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&part.sha1))
        });
        if !(offset_ok && size_ok && sha1_ok) {
            return Err(mismatch(format!(
                "Part {} in the list does not match the uploaded part (offset {}, size {}, sha1 {})",
                part.part_id, part.offset, part.size, part.sha1
            )));
        }
    }
    Ok(())
}
