//! Chunked upload sessions, for files of 20 MB and more: create a session (Box picks the
//! part size), upload the parts in parallel, commit with the ordered list of parts and the
//! whole file's SHA1. [`ChunkedUploader`] does all of it and can resume a session that was
//! interrupted: it lists the parts Box already holds and sends only the missing ones.
//!
//! Box's rules followed here:
//! - the session's follow-up URLs (`session_endpoints`) are absolute and may point at
//!   another host than the one that created the session: they are used exactly as given;
//! - each part is exactly `part_size` bytes at a multiple of `part_size` (the last one may
//!   be shorter), sent with `Content-Range: bytes a-b/total` and `Digest: sha=<base64 SHA1>`;
//!   sending the same part again is harmless, so the request layer's retries are safe;
//! - a commit may be answered 202 + `Retry-After` while Box still processes the parts: the
//!   same commit is repeated after the delay, a bounded number of times.
//!
//! Parts are read from the file with positioned reads, at most `concurrency + 1` parts in
//! memory at once; the whole file's SHA1 is computed on the way, in order.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderName, CONTENT_RANGE, IF_MATCH, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use url::Url;

use super::{first_entry, with_fields, Content, Target, UploadOptions, UploadSource};
use crate::client::{decode, Body, Client, Request};
use crate::error::{BoxError, BoxResult};
use crate::types::{Item, ItemList};
use crate::users::check_id;

/// RFC 3230's instance digest header, as Box reads it.
pub const DIGEST: HeaderName = HeaderName::from_static("digest");

/// Parts read into memory for one upload, at most: Box's part size grows with the file (8,
/// 32 then 64 MiB), and the parts in flight are held whole, so large parts travel fewer at
/// a time than `concurrency` asks.
const MAX_BYTES_IN_FLIGHT: u64 = 128 << 20;

/// A commit's 202 asks for at most this long a wait between polls.
const MAX_COMMIT_WAIT: Duration = Duration::from_secs(60);

/// `S.UploadSession`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UploadSession {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub session_expires_at: Option<String>,
    #[serde(default)]
    pub part_size: u64,
    pub total_parts: Option<u64>,
    pub num_parts_processed: Option<u64>,
    #[serde(default)]
    pub session_endpoints: SessionEndpoints,
}

/// Where a session's follow-up requests go (absolute URLs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionEndpoints {
    pub upload_part: Option<String>,
    pub commit: Option<String>,
    pub abort: Option<String>,
    pub list_parts: Option<String>,
    pub status: Option<String>,
    pub log_event: Option<String>,
}

/// `S.UploadPart`: one part Box holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UploadPart {
    pub part_id: String,
    pub offset: u64,
    pub size: u64,
    /// Hex SHA1 of the part.
    pub sha1: Option<String>,
}

#[derive(Deserialize)]
struct UploadedPart {
    part: UploadPart,
}

#[derive(Deserialize)]
struct UploadParts {
    #[serde(default)]
    total_count: Option<u64>,
    #[serde(default)]
    entries: Vec<UploadPart>,
}

enum Endpoint {
    UploadPart,
    Commit,
    Abort,
    ListParts,
    Status,
}

impl UploadSession {
    /// The URL Box gave for `which`; the upload host's usual layout when Box gave none.
    fn endpoint(&self, client: &Client, which: Endpoint) -> BoxResult<Url> {
        let e = &self.session_endpoints;
        let (given, suffix) = match which {
            Endpoint::UploadPart => (&e.upload_part, ""),
            Endpoint::Commit => (&e.commit, "/commit"),
            Endpoint::Abort => (&e.abort, ""),
            Endpoint::ListParts => (&e.list_parts, "/parts"),
            Endpoint::Status => (&e.status, ""),
        };
        match given {
            Some(url) => Url::parse(url).map_err(|err| {
                BoxError::Decode(format!(
                    "upload session endpoint '{url}' is not a URL: {err}"
                ))
            }),
            None => {
                check_session_id(&self.id)?;
                Ok(client
                    .endpoints()
                    .upload(&format!("/files/upload_sessions/{}{suffix}", self.id)))
            }
        }
    }

    /// How many parts a file of `size` bytes has in this session.
    pub fn parts_for(&self, size: u64) -> u64 {
        if self.part_size == 0 {
            0
        } else {
            size.div_ceil(self.part_size)
        }
    }
}

/// Session ids are opaque, but only letters, digits, `-` and `_` may go into a URL path.
fn check_session_id(id: &str) -> BoxResult<()> {
    if !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(BoxError::Invalid(format!(
            "'{id}' is not an upload session id"
        )))
    }
}

fn b64(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

impl Client {
    /// Opens an upload session for a new file `file_name` of `file_size` bytes in
    /// `folder_id` (Box checks the name, the quota and the size, at least 20 MB, here).
    pub async fn create_upload_session(
        &self,
        folder_id: &str,
        file_name: &str,
        file_size: u64,
    ) -> BoxResult<UploadSession> {
        check_id(folder_id)?;
        super::check_name(file_name)?;
        let body = json!({"folder_id": folder_id, "file_size": file_size, "file_name": file_name});
        self.json(
            self.upload(Method::POST, "/files/upload_sessions")
                .json(body),
        )
        .await
    }

    /// Opens an upload session for a new version of `file_id` (renamed to `file_name` if
    /// given).
    pub async fn create_version_upload_session(
        &self,
        file_id: &str,
        file_size: u64,
        file_name: Option<&str>,
    ) -> BoxResult<UploadSession> {
        check_id(file_id)?;
        let mut body = json!({"file_size": file_size});
        if let Some(name) = file_name {
            super::check_name(name)?;
            body["file_name"] = json!(name);
        }
        self.json(
            self.upload(Method::POST, &format!("/files/{file_id}/upload_sessions"))
                .json(body),
        )
        .await
    }

    /// A session by id, as Box describes it now (its endpoints, parts processed).
    pub async fn get_upload_session(&self, session_id: &str) -> BoxResult<UploadSession> {
        check_session_id(session_id)?;
        self.json(self.upload(Method::GET, &format!("/files/upload_sessions/{session_id}")))
            .await
    }

    /// The session as Box describes it now, through its `status` endpoint.
    pub async fn upload_session_status(&self, session: &UploadSession) -> BoxResult<UploadSession> {
        let url = session.endpoint(self, Endpoint::Status)?;
        self.json(Request::new(Method::GET, url)).await
    }

    /// Sends one part: `data` at `offset` of a file of `file_size` bytes.
    pub async fn upload_part(
        &self,
        session: &UploadSession,
        offset: u64,
        file_size: u64,
        data: Bytes,
    ) -> BoxResult<UploadPart> {
        let digest: [u8; 20] = {
            let d = data.clone();
            tokio::task::spawn_blocking(move || Sha1::digest(&d).into())
                .await
                .map_err(|e| BoxError::Invalid(format!("hashing a part failed: {e}")))?
        };
        self.upload_part_with_digest(session, offset, file_size, data, &digest)
            .await
    }

    async fn upload_part_with_digest(
        &self,
        session: &UploadSession,
        offset: u64,
        file_size: u64,
        data: Bytes,
        digest: &[u8; 20],
    ) -> BoxResult<UploadPart> {
        if data.is_empty() || offset + data.len() as u64 > file_size {
            return Err(BoxError::Invalid(format!(
                "a part of {} bytes at {offset} does not fit a file of {file_size} bytes",
                data.len()
            )));
        }
        let last = offset + data.len() as u64 - 1;
        let url = session.endpoint(self, Endpoint::UploadPart)?;
        let req = Request::new(Method::PUT, url)
            .header(CONTENT_RANGE, format!("bytes {offset}-{last}/{file_size}"))
            .header(DIGEST, format!("sha={}", b64(digest)))
            .body(Body::Bytes {
                data,
                content_type: "application/octet-stream".into(),
            });
        let answer: UploadedPart = self.json(req).await?;
        Ok(answer.part)
    }

    /// Every part Box holds for the session, in offset order (all pages).
    pub async fn list_upload_parts(&self, session: &UploadSession) -> BoxResult<Vec<UploadPart>> {
        const PAGE: u64 = 1000;
        // Box lists at most 10,000 parts (larger offsets are refused).
        const MAX_PAGES: usize = 11;
        let url = session.endpoint(self, Endpoint::ListParts)?;
        let mut parts = Vec::new();
        for _ in 0..MAX_PAGES {
            let req = Request::new(Method::GET, url.clone())
                .query("offset", parts.len())
                .query("limit", PAGE);
            let page: UploadParts = self.json(req).await?;
            let got = page.entries.len() as u64;
            parts.extend(page.entries);
            let done = match page.total_count {
                Some(total) => got == 0 || parts.len() as u64 >= total,
                None => got < PAGE,
            };
            if done {
                break;
            }
        }
        parts.sort_by_key(|p| p.offset);
        parts.dedup_by_key(|p| p.offset);
        Ok(parts)
    }

    /// Commits the session: `parts` in order, `sha1` of the whole file. Repeats the commit
    /// while Box answers 202 (parts still processing), up to `opts.max_commit_polls` times.
    /// Uses `opts.if_match`, `opts.fields`, and the content times as commit attributes.
    pub async fn commit_upload_session(
        &self,
        session: &UploadSession,
        parts: &[UploadPart],
        sha1: &[u8; 20],
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        let url = session.endpoint(self, Endpoint::Commit)?;
        let mut body = json!({ "parts": parts });
        let mut attributes = serde_json::Map::new();
        if let Some(t) = &opts.content_created_at {
            attributes.insert("content_created_at".into(), json!(t));
        }
        if let Some(t) = &opts.content_modified_at {
            attributes.insert("content_modified_at".into(), json!(t));
        }
        if !attributes.is_empty() {
            // Not in Box's OpenAPI description, but sent by its Python SDK and honoured.
            body["attributes"] = Value::Object(attributes);
        }
        let mut req = Request::new(Method::POST, url)
            .header(DIGEST, format!("sha={}", b64(sha1)))
            .json(body);
        if let Some(etag) = &opts.if_match {
            req = req.header(IF_MATCH, etag.clone());
        }
        let req = with_fields(req, &opts.fields);
        let mut polls = 0u32;
        loop {
            let resp = self.send(req.clone()).await?;
            if resp.status() != StatusCode::ACCEPTED {
                let list: ItemList = decode(resp, "commit upload session").await?;
                return first_entry(list, "commit upload session");
            }
            polls += 1;
            if polls > opts.max_commit_polls {
                return Err(BoxError::Network(format!(
                    "upload session {} was still processing its parts after {} commits",
                    session.id, polls
                )));
            }
            let wait = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_COMMIT_WAIT);
            let _ = resp.bytes().await;
            log::debug!(
                "upload session {} still processing; committing again in {} ms",
                session.id,
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Aborts the session: Box forgets it and its parts.
    pub async fn abort_upload_session(&self, session: &UploadSession) -> BoxResult<()> {
        let url = session.endpoint(self, Endpoint::Abort)?;
        self.empty(Request::new(Method::DELETE, url)).await
    }

    /// Resumes an interrupted upload session `session_id` with the same `source`: sends
    /// the parts Box does not hold yet, then commits. Unless `opts.resumable`, the session
    /// is aborted if this fails too.
    pub async fn resume_upload(
        &self,
        session_id: &str,
        source: impl Into<UploadSource>,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        let session = self.get_upload_session(session_id).await?;
        let uploader = ChunkedUploader::new(self.clone(), session, source)
            .await?
            .options(opts.clone());
        match uploader.resume().await {
            Ok(item) => Ok(item),
            Err(e) => Err(uploader.abort_unless_resumable(e).await),
        }
    }
}

/// Uploads `content` to `target` through a new session (the large-file path of
/// `upload_file` / `upload_new_version`).
pub(crate) async fn upload(
    client: &Client,
    target: Target,
    content: Content,
    opts: &UploadOptions,
) -> BoxResult<Item> {
    let session = match &target {
        Target::NewFile { parent_id, name } => {
            client
                .create_upload_session(parent_id, name, content.size)
                .await?
        }
        Target::NewVersion { file_id } => {
            client
                .create_version_upload_session(file_id, content.size, opts.new_name.as_deref())
                .await?
        }
    };
    if let Some(hook) = &opts.on_session {
        hook(&session);
    }
    let uploader = ChunkedUploader {
        client: client.clone(),
        session,
        content,
        opts: opts.clone(),
    };
    match uploader.start().await {
        Ok(item) => Ok(item),
        Err(e) => Err(uploader.abort_unless_resumable(e).await),
    }
}

/// Uploads one file through one upload session, in parallel parts; can resume the session
/// after an interruption (in this process or another one, given the session id). It never
/// aborts the session by itself: call [`ChunkedUploader::abort`] to give up.
///
/// ```no_run
/// # async fn f(client: box_client::Client) -> box_client::BoxResult<()> {
/// use box_client::upload::{ChunkedUploader, UploadOptions};
/// let path = std::path::Path::new("/tmp/big.iso");
/// let size = std::fs::metadata(path)?.len();
/// let session = client.create_upload_session("0", "big.iso", size).await?;
/// let uploader = ChunkedUploader::new(client.clone(), session, path).await?;
/// let file = match uploader.start().await {
///     Ok(file) => file,
///     Err(_) => uploader.resume().await?,
/// };
/// # Ok(()) }
/// ```
pub struct ChunkedUploader {
    client: Client,
    session: UploadSession,
    content: Content,
    opts: UploadOptions,
}

impl std::fmt::Debug for ChunkedUploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedUploader")
            .field("session", &self.session.id)
            .field("size", &self.content.size)
            .finish_non_exhaustive()
    }
}

impl ChunkedUploader {
    /// An uploader of `source` into `session` (whose file size must be the source's).
    pub async fn new(
        client: Client,
        session: UploadSession,
        source: impl Into<UploadSource>,
    ) -> BoxResult<ChunkedUploader> {
        let content = Content::open(source.into()).await?;
        Ok(ChunkedUploader {
            client,
            session,
            content,
            opts: UploadOptions::default(),
        })
    }

    /// Concurrency, progress, If-Match, fields, content times and commit polls from `opts`.
    pub fn options(mut self, opts: UploadOptions) -> ChunkedUploader {
        self.opts = opts;
        self
    }

    pub fn session(&self) -> &UploadSession {
        &self.session
    }

    /// Uploads every part and commits.
    pub async fn start(&self) -> BoxResult<Item> {
        self.run(BTreeMap::new()).await
    }

    /// Asks Box which parts it holds, uploads the others and commits.
    pub async fn resume(&self) -> BoxResult<Item> {
        let held = self.client.list_upload_parts(&self.session).await?;
        let held = held.into_iter().map(|p| (p.offset, p)).collect();
        self.run(held).await
    }

    pub async fn abort(&self) -> BoxResult<()> {
        self.client.abort_upload_session(&self.session).await
    }

    /// After a failure: aborts the session unless it is to be resumed; returns `err`.
    async fn abort_unless_resumable(&self, err: BoxError) -> BoxError {
        if !self.opts.resumable {
            if let Err(e) = self.abort().await {
                log::debug!("aborting upload session {}: {e}", self.session.id);
            }
        }
        err
    }

    /// Reads every part in order (hashing the whole file on the way), uploads those Box
    /// does not hold (`held`, by offset) with at most `concurrency` in flight, then commits.
    async fn run(&self, held: BTreeMap<u64, UploadPart>) -> BoxResult<Item> {
        let size = self.content.size;
        let part_size = self.session.part_size;
        if part_size == 0 {
            return Err(BoxError::Decode(format!(
                "upload session {} has no part size",
                self.session.id
            )));
        }
        let count = self.session.parts_for(size);
        if let Some(expected) = self.session.total_parts {
            if expected != count {
                return Err(BoxError::Invalid(format!(
                    "upload session {} expects {expected} parts of {part_size} bytes, \
                     but the content ({size} bytes) has {count}",
                    self.session.id
                )));
            }
        }
        let progress = self.opts.progress.clone();
        let add_progress = move |n: u64| {
            if let Some(p) = &progress {
                p.fetch_add(n, Ordering::Relaxed);
            }
        };
        let by_memory = (MAX_BYTES_IN_FLIGHT / part_size).max(1) as usize;
        let slots = Arc::new(Semaphore::new(self.opts.concurrency.min(by_memory).max(1)));
        let mut tasks: JoinSet<BoxResult<(usize, UploadPart)>> = JoinSet::new();
        let mut parts: Vec<Option<UploadPart>> = vec![None; count as usize];
        // The whole file's SHA1 (for the commit) is computed on its own thread as the parts
        // are read, each part's (for its upload) in the part's own task: hashing in line
        // would make the parts wait for it.
        let (to_hasher, mut from_reader) = tokio::sync::mpsc::channel::<Bytes>(2);
        let whole = tokio::task::spawn_blocking(move || {
            let mut whole = Sha1::new();
            while let Some(data) = from_reader.blocking_recv() {
                whole.update(&data);
            }
            <[u8; 20]>::from(whole.finalize())
        });

        let spare_buffers = SpareBuffers::default();
        for index in 0..count as usize {
            let offset = index as u64 * part_size;
            let len = part_size.min(size - offset);
            let data = self.content.read(offset, len, spare_buffers.take()).await?;
            to_hasher
                .send(data.clone())
                .await
                .map_err(|_| BoxError::Invalid("hashing the file failed".into()))?;

            if let Some(part) = held.get(&offset) {
                let digest = part_digest(data).await?;
                let same = part.size == len
                    && part
                        .sha1
                        .as_deref()
                        .is_none_or(|h| h.eq_ignore_ascii_case(&hex::encode(digest)));
                if !same {
                    return Err(BoxError::Invalid(format!(
                        "upload session {} holds a different part at offset {offset}: \
                         the content changed since the upload started",
                        self.session.id
                    )));
                }
                parts[index] = Some(part.clone());
                add_progress(len);
                continue;
            }

            // A free slot first: no more than `concurrency` parts in flight (and one read ahead).
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| BoxError::Invalid("upload slots closed".into()))?;
            while let Some(done) = tasks.try_join_next() {
                let (i, part) = joined(done)?;
                parts[i] = Some(part);
            }
            let client = self.client.clone();
            let session = self.session.clone();
            let add = add_progress.clone();
            let spare = spare_buffers.clone();
            tasks.spawn(async move {
                let digest = part_digest(data.clone()).await?;
                let part = client
                    .upload_part_with_digest(&session, offset, size, data.clone(), &digest)
                    .await?;
                spare.give_back(data);
                drop(slot);
                if part.offset != offset || part.size != len {
                    return Err(BoxError::Decode(format!(
                        "Box stored the part at {offset} ({len} bytes) as {} ({} bytes)",
                        part.offset, part.size
                    )));
                }
                add(len);
                Ok((index, part))
            });
        }
        drop(to_hasher);
        while let Some(done) = tasks.join_next().await {
            let (i, part) = joined(done)?;
            parts[i] = Some(part);
        }
        let parts: Vec<UploadPart> = parts.into_iter().flatten().collect();
        if parts.len() as u64 != count {
            return Err(BoxError::Invalid(format!(
                "only {} of {count} parts were uploaded",
                parts.len()
            )));
        }
        let sha1 = whole
            .await
            .map_err(|e| BoxError::Invalid(format!("hashing the file failed: {e}")))?;
        self.client
            .commit_upload_session(&self.session, &parts, &sha1, &self.opts)
            .await
    }
}

/// Part buffers whose upload is done, for the next parts to be read into: at most
/// `concurrency + 1` buffers then serve a whole upload, instead of one new buffer per part.
#[derive(Clone, Default)]
struct SpareBuffers(Arc<std::sync::Mutex<Vec<BytesMut>>>);

impl SpareBuffers {
    fn take(&self) -> Option<BytesMut> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Keeps `data`'s buffer if nothing else holds it any more (the whole-file hasher may
    /// still: then it is simply dropped).
    fn give_back(&self, data: Bytes) {
        if let Ok(buf) = data.try_into_mut() {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
        }
    }
}

/// The SHA1 of one part, away from the async threads.
async fn part_digest(data: Bytes) -> BoxResult<[u8; 20]> {
    tokio::task::spawn_blocking(move || Sha1::digest(&data).into())
        .await
        .map_err(|e| BoxError::Invalid(format!("hashing a part failed: {e}")))
}

fn joined(
    done: Result<BoxResult<(usize, UploadPart)>, tokio::task::JoinError>,
) -> BoxResult<(usize, UploadPart)> {
    done.map_err(|e| BoxError::Invalid(format!("a part upload task failed: {e}")))?
}

/// Bytes already confirmed by Box for a session, for progress displays.
pub fn confirmed_bytes(parts: &[UploadPart]) -> u64 {
    parts.iter().map(|p| p.size).sum()
}
