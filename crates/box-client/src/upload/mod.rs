//! Uploads: new files and new versions, from memory or from a file on disk, the way Box's
//! Python SDK offers them (`folder.upload`, `file.update_contents`, `preflight_check`,
//! chunked uploaders that can resume).
//!
//! [`Client::upload_file`] and [`Client::upload_new_version`] pick the transport by size:
//! one multipart request below [`UploadOptions::chunked_threshold`] (see [`multipart`]), an
//! upload session with parallel parts above it (see [`chunked`]). Box only accepts upload
//! sessions for files of 20 MB and more ([`MIN_CHUNKED_SIZE`]), so smaller files always go
//! multipart whatever the threshold says.
//!
//! Every upload sends the content's SHA1 (`Content-MD5` for multipart, despite its name,
//! and `Digest: sha=` for sessions), so Box refuses content that changed on the way, and a
//! file that changes on disk while it is uploaded fails instead of arriving half old, half new.
//! Failures are plain [`BoxError`]s: a name clash is 409 `item_name_in_use` (with
//! [`BoxError::conflict_id`]), a full account 403 `storage_limit_exceeded`, a stale
//! `If-Match` 412 `precondition_failed`.

pub mod chunked;
pub mod multipart;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha1::{Digest, Sha1};

use super::client::Client;
use super::error::{BoxError, BoxResult};
use super::items::with_fields;
use super::types::Item;
use super::users::check_id;

pub use chunked::{ChunkedUploader, SessionEndpoints, UploadPart, UploadSession};

/// Box refuses upload sessions for smaller files (`file_size_too_small`).
pub const MIN_CHUNKED_SIZE: u64 = 20_000_000;

/// Parts uploaded at the same time by default.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Where the content of an upload comes from.
#[derive(Debug, Clone)]
pub enum UploadSource {
    Bytes(Bytes),
    /// A regular file, read (and hashed) as it is sent, never held whole in memory.
    Path(PathBuf),
}

impl From<Bytes> for UploadSource {
    fn from(b: Bytes) -> Self {
        UploadSource::Bytes(b)
    }
}

impl From<Vec<u8>> for UploadSource {
    fn from(v: Vec<u8>) -> Self {
        UploadSource::Bytes(Bytes::from(v))
    }
}

impl From<&'static [u8]> for UploadSource {
    fn from(v: &'static [u8]) -> Self {
        UploadSource::Bytes(Bytes::from_static(v))
    }
}

impl From<PathBuf> for UploadSource {
    fn from(p: PathBuf) -> Self {
        UploadSource::Path(p)
    }
}

impl From<&Path> for UploadSource {
    fn from(p: &Path) -> Self {
        UploadSource::Path(p.to_path_buf())
    }
}

/// Called once with a new upload session, before any part is sent (to remember its id and
/// resume it after a crash).
pub type SessionHook = Arc<dyn Fn(&UploadSession) + Send + Sync>;

/// How an upload is made. `UploadOptions::default()` is what most callers want.
#[derive(Clone)]
pub struct UploadOptions {
    /// RFC 3339; a new file's creation time on the uploader's machine.
    pub content_created_at: Option<String>,
    /// RFC 3339; the content's modification time on the uploader's machine.
    pub content_modified_at: Option<String>,
    /// New versions only: the etag the file must still have (412 otherwise).
    pub if_match: Option<String>,
    /// New versions only: rename the file as the version is added.
    pub new_name: Option<String>,
    /// `fields=` for the returned file.
    pub fields: Vec<String>,
    /// Run Box's preflight check before sending any content.
    pub preflight: bool,
    /// Files of this size and more go through an upload session.
    pub chunked_threshold: u64,
    /// Parts of an upload session in flight at once.
    pub concurrency: usize,
    /// Bytes Box has confirmed so far (added to, never reset).
    pub progress: Option<Arc<AtomicU64>>,
    /// One-request uploads: bytes of the content handed to the connection so far in the
    /// current attempt (set back to 0 when an attempt starts). It runs ahead of what Box
    /// confirmed by what is buffered on the way; upload sessions report by confirmed parts
    /// in `progress` only.
    pub sending: Option<Arc<AtomicU64>>,
    /// Keep a failed upload session for [`Client::resume_upload`] instead of aborting it.
    /// (An upload whose future is dropped leaves its session in any case; Box expires it.)
    pub resumable: bool,
    pub on_session: Option<SessionHook>,
    /// How many times a commit answered 202 ("parts still processing") is repeated.
    pub max_commit_polls: u32,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            content_created_at: None,
            content_modified_at: None,
            if_match: None,
            new_name: None,
            fields: Vec::new(),
            preflight: false,
            chunked_threshold: MIN_CHUNKED_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            progress: None,
            sending: None,
            resumable: false,
            on_session: None,
            max_commit_polls: 60,
        }
    }
}

impl std::fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("content_created_at", &self.content_created_at)
            .field("content_modified_at", &self.content_modified_at)
            .field("if_match", &self.if_match)
            .field("new_name", &self.new_name)
            .field("fields", &self.fields)
            .field("preflight", &self.preflight)
            .field("chunked_threshold", &self.chunked_threshold)
            .field("concurrency", &self.concurrency)
            .field("resumable", &self.resumable)
            .field("max_commit_polls", &self.max_commit_polls)
            .finish_non_exhaustive()
    }
}

impl UploadOptions {
    fn add_progress(&self, bytes: u64) {
        if let Some(p) = &self.progress {
            p.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn uses_session(&self, size: u64) -> bool {
        size >= self.chunked_threshold.max(MIN_CHUNKED_SIZE)
    }
}

/// What a successful preflight check answers (`S.UploadUrl`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UploadUrl {
    pub upload_url: Option<String>,
    pub upload_token: Option<String>,
}

/// Where an upload goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    NewFile { parent_id: String, name: String },
    NewVersion { file_id: String },
}

impl Client {
    /// Uploads a new file `name` into folder `parent_id`: multipart when small, an upload
    /// session with parallel parts when large. Returns the new file.
    pub async fn upload_file(
        &self,
        parent_id: &str,
        name: &str,
        source: impl Into<UploadSource>,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        check_id(parent_id)?;
        check_name(name)?;
        let content = Content::open(source.into()).await?;
        let target = Target::NewFile {
            parent_id: parent_id.to_string(),
            name: name.to_string(),
        };
        self.upload_content(target, content, opts).await
    }

    /// Uploads a new version of file `file_id` (with `opts.if_match` and `opts.new_name`
    /// when given). Returns the file.
    pub async fn upload_new_version(
        &self,
        file_id: &str,
        source: impl Into<UploadSource>,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        check_id(file_id)?;
        if let Some(name) = &opts.new_name {
            check_name(name)?;
        }
        let content = Content::open(source.into()).await?;
        let target = Target::NewVersion {
            file_id: file_id.to_string(),
        };
        self.upload_content(target, content, opts).await
    }

    async fn upload_content(
        &self,
        target: Target,
        content: Content,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        if opts.preflight {
            match &target {
                Target::NewFile { parent_id, name } => {
                    self.preflight_check(parent_id, name, content.size).await?;
                }
                Target::NewVersion { file_id } => {
                    self.preflight_check_version(file_id, content.size, opts.new_name.as_deref())
                        .await?;
                }
            }
        }
        if opts.uses_session(content.size) {
            chunked::upload(self, target, content, opts).await
        } else {
            multipart::upload(self, &target, &content, opts).await
        }
    }

    /// Box's preflight check for a new file: whether `name` of `size` bytes could be
    /// uploaded into `parent_id` now. A taken name is an `Err` with status 409 and
    /// [`BoxError::conflict_id`]; a full account 403 `storage_limit_exceeded`.
    pub async fn preflight_check(
        &self,
        parent_id: &str,
        name: &str,
        size: u64,
    ) -> BoxResult<UploadUrl> {
        check_id(parent_id)?;
        check_name(name)?;
        let body = json!({"name": name, "size": size, "parent": {"id": parent_id}});
        self.json(self.api(Method::OPTIONS, "/files/content").json(body))
            .await
    }

    /// The preflight check for a new version of `file_id` (renamed to `new_name` if given).
    pub async fn preflight_check_version(
        &self,
        file_id: &str,
        size: u64,
        new_name: Option<&str>,
    ) -> BoxResult<UploadUrl> {
        check_id(file_id)?;
        let mut body = json!({"size": size});
        if let Some(name) = new_name {
            check_name(name)?;
            body["name"] = json!(name);
        }
        self.json(
            self.api(Method::OPTIONS, &format!("/files/{file_id}/content"))
                .json(body),
        )
        .await
    }
}

/// Names Box refuses for certain are refused before anything is sent; Box judges the rest.
fn check_name(name: &str) -> BoxResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(BoxError::Invalid(format!(
            "'{name}' cannot be the name of a Box item"
        )));
    }
    Ok(())
}

/// The content of an upload, opened: bytes in memory or a file read with positioned reads
/// (no shared cursor, so parts can be read in parallel and a retry reads again from the start).
#[derive(Clone)]
pub(crate) struct Content {
    data: Data,
    pub(crate) size: u64,
}

#[derive(Clone)]
enum Data {
    Memory(Bytes),
    File {
        file: Arc<std::fs::File>,
        path: Arc<PathBuf>,
    },
}

/// File reads happen in blocks of this size.
const READ_BLOCK: usize = 1 << 20;

impl Content {
    pub(crate) async fn open(source: UploadSource) -> BoxResult<Content> {
        match source {
            UploadSource::Bytes(b) => Ok(Content {
                size: b.len() as u64,
                data: Data::Memory(b),
            }),
            UploadSource::Path(path) => {
                let shown = path.display().to_string();
                let (file, size) = blocking(move || {
                    let file = std::fs::File::open(&path)?;
                    let meta = file.metadata()?;
                    if !meta.is_file() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "not a regular file",
                        ));
                    }
                    Ok((file, meta.len()))
                })
                .await
                .map_err(|e| io_error(&shown, e))?;
                Ok(Content {
                    data: Data::File {
                        file: Arc::new(file),
                        path: Arc::new(PathBuf::from(shown)),
                    },
                    size,
                })
            }
        }
    }

    fn describe(&self) -> String {
        match &self.data {
            Data::Memory(_) => "the upload buffer".to_string(),
            Data::File { path, .. } => path.display().to_string(),
        }
    }

    /// `len` bytes at `offset`; a file that became shorter is an error. Read into `spare`, a
    /// buffer done with, when one is given: a large upload reads hundreds of parts, and a
    /// fresh buffer for each means fresh pages from the kernel for each (zeroed first, and in
    /// a virtual machine that gives freed memory back to its host, the slowest memory there
    /// is).
    pub(crate) async fn read(
        &self,
        offset: u64,
        len: u64,
        spare: Option<BytesMut>,
    ) -> BoxResult<Bytes> {
        match &self.data {
            Data::Memory(b) => {
                let end = offset.saturating_add(len);
                if end > b.len() as u64 {
                    return Err(BoxError::Invalid("read beyond the upload buffer".into()));
                }
                Ok(b.slice(offset as usize..end as usize))
            }
            Data::File { file, .. } => {
                let file = file.clone();
                let len = usize::try_from(len)
                    .map_err(|_| BoxError::Invalid("part too large for memory".into()))?;
                blocking(move || read_at_into(&file, offset, len, spare.unwrap_or_default()))
                    .await
                    .map_err(|e| io_error(&self.describe(), e))
            }
        }
    }

    /// The SHA1 of the whole content (one streaming pass for files).
    pub(crate) async fn sha1(&self) -> BoxResult<[u8; 20]> {
        let this = self.clone();
        let what = self.describe();
        blocking(move || {
            let mut h = Sha1::new();
            match &this.data {
                Data::Memory(b) => h.update(b),
                Data::File { file, .. } => {
                    let mut offset = 0;
                    while offset < this.size {
                        let n = (this.size - offset).min(READ_BLOCK as u64) as usize;
                        let block = read_at(file, offset, n)?;
                        h.update(&block);
                        offset += n as u64;
                    }
                }
            }
            Ok(h.finalize().into())
        })
        .await
        .map_err(|e| io_error(&what, e))
    }

    /// The content as a request body, produced afresh for each attempt; `sent` (when given)
    /// counts the bytes as the connection takes them.
    pub(crate) fn body(&self, sent: Option<Arc<AtomicU64>>) -> reqwest::Body {
        match &self.data {
            Data::Memory(b) => {
                if let Some(sent) = &sent {
                    sent.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                reqwest::Body::from(b.clone())
            }
            Data::File { file, .. } => {
                let stream = futures_util::stream::unfold(
                    (file.clone(), 0u64, self.size),
                    |(file, offset, size)| async move {
                        if offset >= size {
                            return None;
                        }
                        let n = (size - offset).min(READ_BLOCK as u64) as usize;
                        let f = file.clone();
                        let block = blocking(move || read_at(&f, offset, n)).await;
                        let next = offset + n as u64;
                        // After an error the stream ends (the request fails).
                        let state = match block {
                            Ok(_) => (file, next, size),
                            Err(_) => (file, size, size),
                        };
                        Some((block, state))
                    },
                );
                let stream = futures_util::StreamExt::inspect(stream, move |block| {
                    if let (Some(sent), Ok(block)) = (&sent, block) {
                        sent.fetch_add(block.len() as u64, Ordering::Relaxed);
                    }
                });
                reqwest::Body::wrap_stream(stream)
            }
        }
    }
}

/// Positioned read of exactly `len` bytes.
fn read_at(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    read_at_into(file, offset, len, BytesMut::new())
}

/// `len` bytes at `offset` into `buf` (grown or shrunk to `len`; its old bytes are
/// overwritten).
fn read_at_into(
    file: &std::fs::File,
    offset: u64,
    len: usize,
    mut buf: BytesMut,
) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    if buf.capacity() < len {
        // Zeroed through calloc: fresh pages are zero already and not written twice.
        buf = BytesMut::zeroed(len);
    } else {
        buf.resize(len, 0);
    }
    file.read_exact_at(&mut buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was uploaded",
            )
        } else {
            e
        }
    })?;
    Ok(buf.freeze())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| std::io::Error::other(format!("reading task failed: {e}")))?
}

fn io_error(what: &str, e: std::io::Error) -> BoxError {
    BoxError::Io(std::io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// The one file of an upload's `{total_count, entries}` answer.
fn first_entry(list: super::types::ItemList, what: &str) -> BoxResult<Item> {
    list.entries
        .into_iter()
        .next()
        .ok_or_else(|| BoxError::Decode(format!("{what}: the answer lists no file")))
}
