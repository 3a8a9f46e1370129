//! The single-request uploads: `POST /api/2.0/files/content` (a new file, 201) and
//! `POST /api/2.0/files/{file_id}/content` (a new version, 200), both `multipart/form-data`
//! with an `attributes` JSON part first and the content second.
//!
//! The body is parsed as it arrives (it may be chunked and hundreds of MB long): the
//! attributes are checked as soon as they are read, and the content is hashed while it is
//! copied into one buffer, so the data is held once. When a request is refused part-way,
//! the rest of its body is still read (and dropped) so that the client, which is still
//! sending, sees the error response rather than a reset connection.

use axum::body::Body;
use axum::extract::Path;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::{check_target, commit_content, files_json, remaining_quota, Target, UploadAttrs};
use crate::error::{ApiError, ApiResult};
use crate::http::{id_value, json_response, opt_str, parent_id, Ctx, Query};
use crate::repr::Fields;
use crate::store::{parse_id, ItemKind};

/// The `attributes` part is a small JSON document; anything longer is refused.
const MAX_ATTRIBUTES_LEN: usize = 1 << 20;
/// The content buffer is sized from Content-Length up to this much; beyond it, it grows.
const MAX_RESERVE: u64 = 1 << 30;

pub async fn upload_new_file(ctx: Ctx, q: Query, body: Body) -> ApiResult<Response> {
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    let upload = receive(&ctx, body, None).await?;
    let mut store = ctx.shared.store();
    let id = commit_content(
        &mut store,
        ctx.user,
        &upload.target,
        upload.content.into(),
        &upload.sha1,
        &upload.attrs,
        Utc::now(),
    )?;
    let out = files_json(&store, id, ctx.user, &fields)?;
    ctx.shared.changed(&store);
    Ok(json_response(201, out))
}

pub async fn upload_new_version(
    ctx: Ctx,
    Path(file_id): Path<String>,
    q: Query,
    body: Body,
) -> ApiResult<Response> {
    let fields = Fields::parse(q.get("fields").map(String::as_str));
    let file_id = parse_id(&file_id)?;
    let upload = receive(&ctx, body, Some(file_id)).await?;
    let mut store = ctx.shared.store();
    // The etag may have moved while the body was on its way; check again under this lock.
    let current = store.resolve(ctx.user, &file_id.to_string(), ItemKind::File)?;
    ctx.check_if_match(store.item(current)?.etag)?;
    let id = commit_content(
        &mut store,
        ctx.user,
        &upload.target,
        upload.content.into(),
        &upload.sha1,
        &upload.attrs,
        Utc::now(),
    )?;
    let out = files_json(&store, id, ctx.user, &fields)?;
    ctx.shared.changed(&store);
    Ok(json_response(200, out))
}

/// A fully received, checked upload, ready for [`commit_content`].
struct Received {
    target: Target,
    attrs: UploadAttrs,
    content: Bytes,
    sha1: String,
}

/// Reads the multipart body. `version_of` is the file a new version is for.
async fn receive(ctx: &Ctx, body: Body, version_of: Option<u64>) -> ApiResult<Received> {
    let content_type = ctx.header("content-type").unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::bad_request("The request must be multipart/form-data with a boundary")
    })?;
    let length_hint = ctx
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    let want_sha1 = ctx
        .header("content-md5")
        .map(|v| v.trim().to_ascii_lowercase());
    let mut form = multer::Multipart::new(body.into_data_stream(), boundary);

    let mut target: Option<Target> = None;
    let mut attrs = UploadAttrs::default();
    // Bytes the content may still take before the owner's quota is exceeded.
    let mut room: Option<u64> = None;
    let mut file: Option<(Bytes, String)> = None;
    // The first refusal; once set, the rest of the body is read and dropped.
    let mut refusal: Option<ApiError> = None;

    loop {
        let mut field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(refusal.unwrap_or_else(|| malformed(e))),
        };
        let is_attributes = field.name() == Some("attributes");
        if refusal.is_some() || (!is_attributes && file.is_some()) {
            // Refused already, or a part after the content: nothing to keep.
            drain(&mut field).await;
            continue;
        }
        if is_attributes {
            if file.is_some() {
                refusal = Some(after_file());
                continue;
            }
            let raw = match read_small(&mut field).await {
                Ok(raw) => raw,
                Err(e) => {
                    refusal = Some(e);
                    continue;
                }
            };
            match check_attributes(ctx, &raw, version_of) {
                Ok((t, a, r)) => {
                    target = Some(t);
                    attrs = a;
                    room = r;
                }
                Err(e) => refusal = Some(e),
            }
            continue;
        }
        // The content part, whatever its field name (`file`, rclone's `contents`, ...).
        if target.is_none() {
            refusal = Some(after_file());
            drain(&mut field).await;
            continue;
        }
        let cap = length_hint.unwrap_or(0).min(MAX_RESERVE) as usize;
        let mut buf = BytesMut::with_capacity(cap);
        let mut hasher = Sha1::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if refusal.is_some() {
                        continue;
                    }
                    if room.is_some_and(|r| (buf.len() + chunk.len()) as u64 > r) {
                        // Over quota: stop keeping the data, but read the rest.
                        refusal = Some(ApiError::forbidden(
                            "storage_limit_exceeded",
                            "Account storage limit reached",
                        ));
                        buf = BytesMut::new();
                        continue;
                    }
                    hasher.update(&chunk);
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(refusal.unwrap_or_else(|| malformed(e))),
            }
        }
        file = Some((buf.freeze(), hex::encode(hasher.finalize())));
    }

    if let Some(e) = refusal {
        return Err(e);
    }
    let Some(target) = target else {
        return Err(ApiError::bad_request(
            "The 'attributes' part of the multipart body is missing",
        ));
    };
    let Some((content, sha1)) = file else {
        return Err(ApiError::bad_request(
            "The file part of the multipart body is missing",
        ));
    };
    if let Some(want) = want_sha1 {
        // Box's Content-MD5 carries the SHA1 of the content, in hex.
        if want != sha1 {
            return Err(ApiError::new(
                400,
                "bad_digest",
                "The specified content-md5 did not match what we received",
            ));
        }
    }
    Ok(Received {
        target,
        attrs,
        content,
        sha1,
    })
}

/// Parses `attributes` and checks the destination before the content is received, so a
/// refused upload does not have to be buffered. Returns the target, the attributes and the
/// room left in the owner's quota.
fn check_attributes(
    ctx: &Ctx,
    raw: &[u8],
    version_of: Option<u64>,
) -> ApiResult<(Target, UploadAttrs, Option<u64>)> {
    let attributes = match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(ApiError::invalid_parameter(
                "attributes",
                "'attributes' must be a JSON object",
            ))
        }
    };
    let attrs = UploadAttrs::from_json(&attributes)?;
    let store = ctx.shared.store();
    let target = match version_of {
        None => {
            let name = opt_str(&attributes, "name")?
                .ok_or_else(|| ApiError::invalid_parameter("name", "'name' is required"))?;
            let parent = new_file_parent(&attributes)?;
            let parent = store.resolve_parent(ctx.user, &parent)?;
            Target::NewFile { parent, name }
        }
        Some(file_id) => {
            let id = store.resolve(ctx.user, &file_id.to_string(), ItemKind::File)?;
            ctx.check_if_match(store.item(id)?.etag)?;
            Target::NewVersion {
                file_id: id,
                name: opt_str(&attributes, "name")?,
            }
        }
    };
    let checked = check_target(&store, ctx.user, &target, None)?;
    let room = remaining_quota(&store, checked.owner)?;
    Ok((target, attrs, room))
}

/// `parent.id` of a new file; also accepts the older `parent_id` attribute.
fn new_file_parent(attributes: &Map<String, Value>) -> ApiResult<String> {
    if let Some(id) = parent_id(attributes)? {
        return Ok(id);
    }
    match attributes.get("parent_id") {
        Some(v) if !v.is_null() => id_value(v, "parent_id"),
        _ => Err(ApiError::invalid_parameter(
            "parent",
            "'parent.id' is required",
        )),
    }
}

fn after_file() -> ApiError {
    ApiError::new(
        400,
        "metadata_after_file_contents",
        "The attributes part must come before the file part in the multipart body",
    )
}

fn malformed(e: multer::Error) -> ApiError {
    ApiError::bad_request(format!("Malformed multipart body: {e}"))
}

async fn read_small(field: &mut multer::Field<'_>) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        if out.len() + chunk.len() > MAX_ATTRIBUTES_LEN {
            drain(field).await;
            return Err(ApiError::invalid_parameter(
                "attributes",
                "'attributes' is too long",
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn drain(field: &mut multer::Field<'_>) {
    while let Ok(Some(_)) = field.chunk().await {}
}
