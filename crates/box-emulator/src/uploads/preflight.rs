//! The preflight check: `OPTIONS /2.0/files/content` (also with a trailing slash, as
//! rclone sends it) for a new file and `OPTIONS /2.0/files/{file_id}/content` for a new
//! version, with a JSON body `{name, size, parent: {id}}`. It runs the checks an upload
//! would (name, parent, clash, lock, quota for `size`) without any content and answers
//! `S.UploadUrl`. rclone also uses it to find a file by name: the 409 carries the item.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{check_target, random_hex, Target};
use crate::error::{ApiError, ApiResult};
use crate::http::{json_body, json_response, opt_str, parent_id, Ctx};
use crate::store::{parse_id, ItemKind};

pub async fn new_file(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let size = size(&body)?;
    let name = opt_str(&body, "name")?
        .ok_or_else(|| ApiError::invalid_parameter("name", "'name' is required"))?;
    let parent = parent_id(&body)?
        .ok_or_else(|| ApiError::invalid_parameter("parent", "'parent.id' is required"))?;
    let store = ctx.shared.store();
    let parent = store.resolve_parent(ctx.user, &parent)?;
    check_target(&store, ctx.user, &Target::NewFile { parent, name }, size)?;
    let url = format!("{}/api/2.0/files/content", upload_root(&ctx));
    Ok(answer(url))
}

pub async fn new_version(
    ctx: Ctx,
    Path(file_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let size = size(&body)?;
    let name = opt_str(&body, "name")?;
    let file_id = parse_id(&file_id)?;
    let store = ctx.shared.store();
    let file_id = store.resolve(ctx.user, &file_id.to_string(), ItemKind::File)?;
    check_target(
        &store,
        ctx.user,
        &Target::NewVersion { file_id, name },
        size,
    )?;
    let url = format!("{}/api/2.0/files/{file_id}/content", upload_root(&ctx));
    Ok(answer(url))
}

/// Where uploads go, for the host names this request used.
fn upload_root(ctx: &Ctx) -> String {
    crate::box_hosts::Urls::current(&ctx.shared.base_url).upload()
}

/// `size` is optional (rclone leaves it out when it does not know it).
fn size(body: &Map<String, Value>) -> ApiResult<Option<u64>> {
    match body.get("size") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::invalid_parameter("size", "'size' must be a non-negative integer")
        }),
    }
}

fn answer(upload_url: String) -> Response {
    json_response(
        200,
        json!({"upload_url": upload_url, "upload_token": random_hex(32)}),
    )
}
