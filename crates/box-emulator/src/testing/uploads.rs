//! Helpers shared by the upload tests: content patterns, multipart bodies built by hand
//! (any part order, streamed with chunked encoding) and direct looks into the store.

use crate::store::ItemKind;
use base64::Engine;
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha1::{Digest, Sha1};

use super::TestEmu;

pub const BOUNDARY: &str = "----boxfs-test-boundary-7d3a91";

pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

pub fn sha1_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(data))
}

/// Content that differs from offset to offset: a 1 MiB pseudo-random block, rotated by a
/// different amount for every MiB.
pub struct Pattern {
    block: Vec<u8>,
}

impl Default for Pattern {
    fn default() -> Self {
        Pattern::new()
    }
}

impl Pattern {
    pub fn new() -> Pattern {
        let mut x: u32 = 0x1234_5678;
        let block = (0..1 << 20)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        Pattern { block }
    }
    /// The `i`-th MiB of the content.
    pub fn mib(&self, i: usize) -> Vec<u8> {
        let r = (i * 7919) % self.block.len();
        let mut v = self.block[r..].to_vec();
        v.extend_from_slice(&self.block[..r]);
        v
    }
    /// The first `len` bytes of the content.
    pub fn bytes(&self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0;
        while out.len() < len {
            let m = self.mib(i);
            let take = m.len().min(len - out.len());
            out.extend_from_slice(&m[..take]);
            i += 1;
        }
        out
    }
}

/// A multipart upload through reqwest's form builder, with the content in field `field`.
pub async fn upload_form(
    t: &TestEmu,
    path: &str,
    attributes: Value,
    field: &str,
    content: &[u8],
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .text("attributes", attributes.to_string())
        .part(
            field.to_string(),
            reqwest::multipart::Part::bytes(content.to_vec()).file_name("unused"),
        );
    let mut rb = t.req(Method::POST, &t.upload(path)).multipart(form);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    TestEmu::send(rb).await
}

pub fn part_header(name: &str, file: bool) -> String {
    if file {
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
    } else {
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
    }
}

/// A hand-built multipart body with the parts in the given order.
pub fn raw_multipart(parts: &[(&str, bool, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, data) in parts {
        out.extend_from_slice(part_header(name, *file).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Sends a multipart body as a stream of chunks: no Content-Length, chunked encoding.
pub async fn upload_streamed(
    t: &TestEmu,
    path: &str,
    attributes: Value,
    chunks: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> (StatusCode, Value) {
    let head = format!(
        "{}{}\r\n{}",
        part_header("attributes", false),
        attributes,
        part_header("file", true)
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let stream = futures_util::stream::iter(
        std::iter::once(head.into_bytes())
            .chain(chunks)
            .chain(std::iter::once(tail.into_bytes()))
            .map(|c| Ok::<Bytes, std::io::Error>(Bytes::from(c))),
    );
    let rb = t
        .req(Method::POST, &t.upload(path))
        .header("content-type", multipart_type())
        .body(reqwest::Body::wrap_stream(stream));
    TestEmu::send(rb).await
}

pub fn root(t: &TestEmu) -> u64 {
    let store = t.emulator().shared.store();
    store.users[&store.admin].root_folder
}

/// A folder made directly in the store (the folder endpoints are not under test here).
pub fn make_folder(t: &TestEmu, parent: u64, name: &str) -> String {
    let mut store = t.emulator().shared.store();
    let owner = store.admin;
    let item = store.new_item(
        ItemKind::Folder,
        name,
        parent,
        owner,
        owner,
        chrono::Utc::now(),
    );
    store.insert_item(item).to_string()
}

/// The current content of a file, read from the emulator's blob store.
pub fn stored_content(t: &TestEmu, file_id: &str) -> Bytes {
    let store = t.emulator().shared.store();
    let item = &store.items[&file_id.parse::<u64>().unwrap()];
    let sha1 = &item.current_version().expect("a version").sha1;
    store.blob(sha1).expect("blob stored").to_bytes()
}

pub fn child_count(t: &TestEmu, folder: u64) -> usize {
    t.emulator().shared.store().active_children(folder).len()
}

pub fn last_event(t: &TestEmu) -> (String, Value) {
    let store = t.emulator().shared.store();
    let e = store.events.last().expect("an event");
    (e.event_type.clone(), e.source.clone())
}
