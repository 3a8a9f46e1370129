//! The one-request upload: `POST {upload}/files/content` for a new file (201) and
//! `POST {upload}/files/{id}/content` for a new version (200), `multipart/form-data` with the
//! `attributes` JSON part FIRST and the content second (the other order is 400
//! `metadata_after_file_contents`). `Content-MD5` carries the content's hex SHA1 (Box's
//! name, SHA1's value), so Box refuses content that does not match with 400 `bad_digest`.
//!
//! The form is built afresh for each attempt of the request layer; a file is read again
//! from the start each time, in blocks, and never held whole in memory.

use std::sync::Arc;

use reqwest::header::{HeaderName, IF_MATCH};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use super::{first_entry, with_fields, Content, Target, UploadOptions};
use crate::client::{Body, Client};
use crate::error::BoxResult;
use crate::types::{Item, ItemList};

/// Box's header for the content's SHA1.
pub const CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");

/// Uploads `content` to `target` in one multipart request.
pub(crate) async fn upload(
    client: &Client,
    target: &Target,
    content: &Content,
    opts: &UploadOptions,
) -> BoxResult<Item> {
    let sha1 = hex::encode(content.sha1().await?);
    let mut attributes = serde_json::Map::new();
    let (path, file_name) = match target {
        Target::NewFile { parent_id, name } => {
            attributes.insert("name".into(), json!(name));
            attributes.insert("parent".into(), json!({"id": parent_id}));
            if let Some(t) = &opts.content_created_at {
                attributes.insert("content_created_at".into(), json!(t));
            }
            ("/files/content".to_string(), name.clone())
        }
        Target::NewVersion { file_id } => {
            if let Some(name) = &opts.new_name {
                attributes.insert("name".into(), json!(name));
            }
            (
                format!("/files/{file_id}/content"),
                opts.new_name.clone().unwrap_or_else(|| "unused".into()),
            )
        }
    };
    if let Some(t) = &opts.content_modified_at {
        attributes.insert("content_modified_at".into(), json!(t));
    }
    let attributes = Value::Object(attributes).to_string();
    let form_content = content.clone();
    let size = content.size;
    let sending = opts.sending.clone();
    let make = move || {
        // A new attempt sends everything again.
        if let Some(s) = &sending {
            s.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        let body = || form_content.body(sending.clone());
        let part = Part::stream_with_length(body(), size)
            .file_name(file_name.clone())
            .mime_str("application/octet-stream")
            .unwrap_or_else(|_| Part::stream_with_length(body(), size));
        Form::new()
            .text("attributes", attributes.clone())
            .part("file", part)
    };
    let mut req = client
        .upload(Method::POST, &path)
        .header(CONTENT_MD5, sha1)
        .body(Body::Multipart(Arc::new(make)));
    if let (Target::NewVersion { .. }, Some(etag)) = (target, &opts.if_match) {
        req = req.header(IF_MATCH, etag.clone());
    }
    let req = with_fields(req, &opts.fields);
    let list: ItemList = client.json(req).await?;
    let item = first_entry(list, &path)?;
    opts.add_progress(size);
    Ok(item)
}
