//! Files: reading one (with `fields`), downloading content (whole, by byte range, or as a
//! resolved URL for callers that read in parallel themselves), renaming, moving, copying,
//! deleting with `If-Match`, locks, shared links, versions, descriptions and the trash.
//!
//! Downloads: `GET /files/{id}/content` answers 302 with a URL on another host
//! (dl.boxcloud.com) that carries its own short-lived authorization. That URL is fetched
//! WITHOUT the `Authorization` and `As-User` headers, and never logged (its path is a
//! credential). Box answers 202 with `Retry-After` while a fresh upload is not ready to
//! download; the client waits and asks again. An expired download URL is resolved afresh
//! once. A server that ignores `Range` and sends everything is cut down to the range
//! asked for, so a ranged read always yields exactly the bytes requested.

use std::ops::{Range, RangeFrom, RangeInclusive};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, Stream, StreamExt};
use reqwest::header::{HeaderMap, CONTENT_RANGE, ETAG, LOCATION, RANGE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::client::Client;
use super::error::{ApiErrorInfo, BoxError, BoxResult};
use super::folders::{check_description, check_name, with_fields, Kind, SharedLinkSettings};
use super::types::{FileVersion, Item, SharedLink};
use super::users::check_id;

/// The fields of Box's standard file representation, plus `lock` (a full-only field).
pub const FILE_FIELDS_WITH_LOCK: &[&str] = &[
    "type",
    "id",
    "etag",
    "sequence_id",
    "name",
    "sha1",
    "file_version",
    "description",
    "size",
    "path_collection",
    "created_at",
    "modified_at",
    "trashed_at",
    "purged_at",
    "content_created_at",
    "content_modified_at",
    "created_by",
    "modified_by",
    "owned_by",
    "shared_link",
    "parent",
    "item_status",
    "lock",
];

/// How long the client keeps asking while Box says a file is not ready to download.
const NOT_READY_BUDGET: Duration = Duration::from_secs(300);
/// The longest single wait a `Retry-After` may impose.
const NOT_READY_MAX_WAIT: Duration = Duration::from_secs(30);
/// Attempts at fetching a download URL (transient failures only).
const FETCH_ATTEMPTS: u32 = 4;
/// Redirects followed from a download URL to the bytes.
const MAX_HOPS: u32 = 5;

/// A byte range of a file: `start` up to `end` (exclusive), or to the end of the file.
/// Built from Rust ranges: `0..1024`, `4096..`, `0..=1023`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Exclusive; `None` reads to the end.
    pub end: Option<u64>,
}

impl From<Range<u64>> for ByteRange {
    fn from(r: Range<u64>) -> Self {
        ByteRange {
            start: r.start,
            end: Some(r.end),
        }
    }
}

impl From<RangeFrom<u64>> for ByteRange {
    fn from(r: RangeFrom<u64>) -> Self {
        ByteRange {
            start: r.start,
            end: None,
        }
    }
}

impl From<RangeInclusive<u64>> for ByteRange {
    fn from(r: RangeInclusive<u64>) -> Self {
        ByteRange {
            start: *r.start(),
            end: Some(r.end().saturating_add(1)),
        }
    }
}

impl ByteRange {
    fn check(&self) -> BoxResult<()> {
        match self.end {
            Some(e) if e <= self.start => Err(BoxError::Invalid(format!(
                "the byte range {}..{e} is empty",
                self.start
            ))),
            _ => Ok(()),
        }
    }

    /// The `Range` header value (inclusive positions).
    fn header(&self) -> String {
        match self.end {
            Some(e) => format!("bytes={}-{}", self.start, e - 1),
            None => format!("bytes={}-", self.start),
        }
    }

    fn len(&self) -> Option<u64> {
        self.end.map(|e| e - self.start)
    }
}

/// What to download.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadOptions {
    /// A file version id; the current version when `None`.
    pub version: Option<String>,
    pub range: Option<ByteRange>,
}

/// A resolved download URL: it carries its own short-lived authorization, so it is sent
/// without the client's token, and its `Debug` shows only the host.
#[derive(Clone)]
pub struct DownloadUrl(Url);

impl DownloadUrl {
    /// The URL itself (a credential while it lives: do not log or store it).
    pub fn expose(&self) -> &Url {
        &self.0
    }
}

impl std::fmt::Debug for DownloadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DownloadUrl({}://{}/***)",
            self.0.scheme(),
            self.0.host_str().unwrap_or("")
        )
    }
}

/// File content on its way: a body to stream or collect, exactly the bytes asked for.
pub struct Download {
    resp: reqwest::Response,
    /// Bytes to drop from the front (a server that ignored `Range`).
    skip: u64,
    /// Bytes to yield at most (`None`: all).
    take: Option<u64>,
    total_size: Option<u64>,
    etag: Option<String>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("status", &self.resp.status().as_u16())
            .field("content_length", &self.content_length())
            .field("total_size", &self.total_size)
            .finish()
    }
}

impl Download {
    fn new(resp: reqwest::Response, range: Option<ByteRange>) -> Download {
        let headers = resp.headers();
        let etag = header(headers, ETAG.as_str()).map(|e| e.trim_matches('"').to_string());
        let (skip, take, total_size) = if resp.status() == StatusCode::PARTIAL_CONTENT {
            let total = header(headers, CONTENT_RANGE.as_str()).and_then(parse_content_range_total);
            (0, None, total)
        } else {
            // The whole file: cut it down to the range asked for, if any.
            let total = resp.content_length();
            match range {
                Some(r) => (r.start, Some(r.len().unwrap_or(u64::MAX)), total),
                None => (0, None, total),
            }
        };
        Download {
            resp,
            skip,
            take,
            total_size,
            etag,
        }
    }

    /// How many bytes the body will yield, when known.
    pub fn content_length(&self) -> Option<u64> {
        let sent = self.resp.content_length()?;
        let after_skip = sent.saturating_sub(self.skip);
        Some(match self.take {
            Some(t) => after_skip.min(t),
            None => after_skip,
        })
    }

    /// The size of the whole file (from `Content-Range`, or the body of a full answer).
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }

    /// The content's etag as the download server sent it (Box sends the version's SHA1).
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The body as a stream of chunks.
    pub fn into_stream(self) -> impl Stream<Item = BoxResult<Bytes>> + Send + 'static {
        let body = self.resp.bytes_stream().boxed();
        stream::try_unfold(
            (body, self.skip, self.take),
            |(mut body, mut skip, mut left)| async move {
                loop {
                    if left == Some(0) {
                        return Ok(None);
                    }
                    let Some(chunk) = body.next().await else {
                        return Ok(None);
                    };
                    let mut chunk = chunk.map_err(|e| {
                        BoxError::Network(format!("reading a download: {}", e.without_url()))
                    })?;
                    if skip > 0 {
                        if chunk.len() as u64 <= skip {
                            skip -= chunk.len() as u64;
                            continue;
                        }
                        chunk = chunk.slice(skip as usize..);
                        skip = 0;
                    }
                    if let Some(n) = left {
                        if chunk.len() as u64 > n {
                            chunk.truncate(n as usize);
                        }
                        left = Some(n - chunk.len() as u64);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    return Ok(Some((chunk, (body, skip, left))));
                }
            },
        )
    }

    /// The whole body in memory.
    pub async fn bytes(self) -> BoxResult<Bytes> {
        let mut out =
            BytesMut::with_capacity(self.content_length().unwrap_or(0).min(1 << 26) as usize);
        let mut s = std::pin::pin!(self.into_stream());
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The total of `bytes a-b/total`.
fn parse_content_range_total(v: &str) -> Option<u64> {
    v.rsplit_once('/')?.1.trim().parse().ok()
}

/// What `GET /files/{id}/content` led to.
enum Resolved {
    Url(Url),
    /// The API host answered with the content itself.
    Direct(reqwest::Response),
}

/// Changes to a file in one request (Box lets a file rename and move at once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileUpdate {
    pub name: Option<String>,
    /// Move into this folder.
    pub parent_id: Option<String>,
    /// At most 256 characters.
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

impl FileUpdate {
    fn to_json(&self) -> BoxResult<Value> {
        let mut body = json!({});
        if let Some(n) = &self.name {
            check_name(n)?;
            body["name"] = json!(n);
        }
        if let Some(p) = &self.parent_id {
            check_id(p)?;
            body["parent"] = json!({ "id": p });
        }
        if let Some(d) = &self.description {
            check_description(d)?;
            body["description"] = json!(d);
        }
        if let Some(t) = &self.tags {
            body["tags"] = json!(t);
        }
        Ok(body)
    }
}

/// A lock to put on a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockOptions {
    /// When the lock ends by itself; never when `None`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether others are kept from downloading the file meanwhile.
    pub is_download_prevented: bool,
}

#[derive(Deserialize)]
struct Versions {
    #[serde(default)]
    total_count: u64,
    #[serde(default)]
    entries: Vec<FileVersion>,
}

impl Client {
    /// A file's standard representation.
    pub async fn file(&self, file_id: &str) -> BoxResult<Item> {
        self.file_with_fields(file_id, &[] as &[&str]).await
    }

    /// A file with exactly the named fields (plus `type`, `id` and `etag`), e.g.
    /// `["name", "size", "lock", "permissions"]`.
    pub async fn file_with_fields<S: AsRef<str>>(
        &self,
        file_id: &str,
        fields: &[S],
    ) -> BoxResult<Item> {
        check_id(file_id)?;
        self.json(with_fields(
            self.api(Method::GET, &format!("/files/{file_id}")),
            fields,
        ))
        .await
    }

    /// The content of the file's current version.
    pub async fn download(&self, file_id: &str) -> BoxResult<Download> {
        self.download_with(file_id, &DownloadOptions::default())
            .await
    }

    /// A byte range of the file's current version: `download_range(id, 0..4096)`.
    /// Yields exactly those bytes (fewer only past the end of the file); a range that
    /// starts past the end is a 416 error.
    pub async fn download_range(
        &self,
        file_id: &str,
        range: impl Into<ByteRange>,
    ) -> BoxResult<Download> {
        self.download_with(
            file_id,
            &DownloadOptions {
                version: None,
                range: Some(range.into()),
            },
        )
        .await
    }

    /// Content by version and range.
    pub async fn download_with(
        &self,
        file_id: &str,
        opts: &DownloadOptions,
    ) -> BoxResult<Download> {
        check_id(file_id)?;
        if let Some(v) = &opts.version {
            check_id(v)?;
        }
        if let Some(r) = &opts.range {
            r.check()?;
        }
        let mut resolved_again = false;
        loop {
            let url = match self
                .resolve_download(file_id, opts.version.as_deref(), opts.range)
                .await?
            {
                Resolved::Direct(resp) => return Ok(Download::new(resp, opts.range)),
                Resolved::Url(u) => u,
            };
            match self.fetch_download(&url, opts.range).await {
                Ok(resp) => return Ok(Download::new(resp, opts.range)),
                // An expired or already-used URL: ask Box for a fresh one, once.
                Err(e) if !resolved_again && matches!(e.status(), Some(401 | 403 | 404 | 410)) => {
                    resolved_again = true;
                    log::debug!("file {file_id}: download URL refused ({e}); resolving again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The URL the content of a file (or of one version) can be fetched from without the
    /// client's token, for callers that read ranges in parallel themselves (with
    /// [`Client::download_from`] or any HTTP client). It expires after minutes.
    pub async fn download_url(
        &self,
        file_id: &str,
        version: Option<&str>,
    ) -> BoxResult<DownloadUrl> {
        check_id(file_id)?;
        if let Some(v) = version {
            check_id(v)?;
        }
        match self.resolve_download(file_id, version, None).await? {
            Resolved::Url(u) => Ok(DownloadUrl(u)),
            Resolved::Direct(_) => Err(BoxError::Decode(format!(
                "Box sent the content of file {file_id} instead of a download URL"
            ))),
        }
    }

    /// Fetches (a range of) a resolved download URL, without the client's token. An
    /// expired URL fails with its status (403/404/410): resolve a new one.
    pub async fn download_from(
        &self,
        url: &DownloadUrl,
        range: Option<ByteRange>,
    ) -> BoxResult<Download> {
        if let Some(r) = &range {
            r.check()?;
        }
        let resp = self.fetch_download(&url.0, range).await?;
        Ok(Download::new(resp, range))
    }

    /// Asks the API where the content is, waiting while Box says it is not ready (202).
    async fn resolve_download(
        &self,
        file_id: &str,
        version: Option<&str>,
        range: Option<ByteRange>,
    ) -> BoxResult<Resolved> {
        let started = Instant::now();
        loop {
            let mut req = self
                .api(Method::GET, &format!("/files/{file_id}/content"))
                .query_opt("version", version);
            if let Some(r) = range {
                req = req.header(RANGE, r.header());
            }
            let base = req.url.clone();
            let resp = self.send(req).await?;
            let status = resp.status();
            if status.is_redirection() {
                let location = header(resp.headers(), LOCATION.as_str()).ok_or_else(|| {
                    BoxError::Decode(format!(
                        "Box redirected the download of file {file_id} without a Location"
                    ))
                })?;
                let url = base.join(location).map_err(|e| {
                    BoxError::Decode(format!(
                        "Box redirected the download of file {file_id} to an invalid URL: {e}"
                    ))
                })?;
                return Ok(Resolved::Url(url));
            }
            if status == StatusCode::ACCEPTED {
                // Not ready yet (a fresh upload): Box says when to ask again.
                let wait = header(resp.headers(), RETRY_AFTER.as_str())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(Duration::from_secs(1))
                    .min(NOT_READY_MAX_WAIT);
                if started.elapsed() + wait > NOT_READY_BUDGET {
                    return Err(BoxError::Api(Box::new(ApiErrorInfo {
                        status: 202,
                        code: "not_ready".into(),
                        message: format!(
                            "file {file_id} was still not ready to download after {} s",
                            started.elapsed().as_secs()
                        ),
                        request_id: header(resp.headers(), "box-request-id").map(str::to_string),
                        context_info: None,
                        retry_after: Some(wait),
                        method: "GET".into(),
                        url: format!("/files/{file_id}/content"),
                    })));
                }
                log::debug!(
                    "file {file_id} is not ready to download; asking again in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
                return Ok(Resolved::Direct(resp));
            }
            return Err(BoxError::Decode(format!(
                "Box answered the download of file {file_id} with {status}"
            )));
        }
    }

    /// GET of a download URL: no Authorization, no As-User, no URL in any log line or
    /// error; follows further redirects; retries transient failures.
    async fn fetch_download(
        &self,
        url: &Url,
        range: Option<ByteRange>,
    ) -> BoxResult<reqwest::Response> {
        let host = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = self.fetch_following(url.clone(), range, &host).await;
            match outcome {
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_transient() && attempt < FETCH_ATTEMPTS => {
                    let wait = e
                        .api()
                        .and_then(|a| a.retry_after)
                        .unwrap_or(Duration::from_millis(200 << attempt))
                        .min(NOT_READY_MAX_WAIT);
                    log::debug!(
                        "download from {host} failed ({e}); retrying in {} ms",
                        wait.as_millis()
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn fetch_following(
        &self,
        mut url: Url,
        range: Option<ByteRange>,
        host: &str,
    ) -> BoxResult<reqwest::Response> {
        for _ in 0..=MAX_HOPS {
            let mut rb = self.http().get(url.clone());
            if let Some(r) = range {
                rb = rb.header(RANGE, r.header());
            }
            let sent_at = Instant::now();
            let sent = rb.send().await;
            self.count_request(sent.as_ref().ok().map(|r| r.status().as_u16()));
            let resp = sent.map_err(|e| {
                BoxError::Network(format!("GET download URL on {host}: {}", e.without_url()))
            })?;
            let status = resp.status();
            log::debug!(
                "GET download URL on {host} -> {} in {} ms",
                status.as_u16(),
                sent_at.elapsed().as_millis()
            );
            if status.is_success() {
                return Ok(resp);
            }
            if status.is_redirection() {
                let next = header(resp.headers(), LOCATION.as_str())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| {
                        BoxError::Decode(format!(
                            "the download server on {host} redirected without a usable Location"
                        ))
                    })?;
                url = next;
                continue;
            }
            return Err(download_error(resp, host).await);
        }
        Err(BoxError::Decode(format!(
            "the download from {host} redirected more than {MAX_HOPS} times"
        )))
    }

    /// Renames a file.
    pub async fn rename_file(&self, file_id: &str, name: &str) -> BoxResult<Item> {
        self.update_file(
            file_id,
            &FileUpdate {
                name: Some(name.to_string()),
                ..FileUpdate::default()
            },
            None,
        )
        .await
    }

    /// Moves a file into `parent_id`, renaming it too when `name` is given (one request:
    /// unlike folders, Box takes both at once for files).
    pub async fn move_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        self.update_file(
            file_id,
            &FileUpdate {
                name: name.map(str::to_string),
                parent_id: Some(parent_id.to_string()),
                ..FileUpdate::default()
            },
            None,
        )
        .await
    }

    /// Changes a file's name, folder, description or tags in one request; with
    /// `if_match`, only if its etag is still that (else 412 `precondition_failed`).
    pub async fn update_file(
        &self,
        file_id: &str,
        update: &FileUpdate,
        if_match_etag: Option<&str>,
    ) -> BoxResult<Item> {
        check_id(file_id)?;
        let body = update.to_json()?;
        let mut req = self
            .api(Method::PUT, &format!("/files/{file_id}"))
            .json(body);
        if let Some(e) = if_match_etag {
            req = req.header(reqwest::header::IF_MATCH, e);
        }
        self.json(req).await
    }

    /// Sets a file's description (at most 256 characters).
    pub async fn set_file_description(&self, file_id: &str, description: &str) -> BoxResult<Item> {
        self.update_file(
            file_id,
            &FileUpdate {
                description: Some(description.to_string()),
                ..FileUpdate::default()
            },
            None,
        )
        .await
    }

    /// Copies a file's current version into `parent_id` (under `name` if given).
    pub async fn copy_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        self.copy_file_version(file_id, None, parent_id, name).await
    }

    /// Copies one version of a file (the current one when `version` is `None`).
    pub async fn copy_file_version(
        &self,
        file_id: &str,
        version: Option<&str>,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        check_id(file_id)?;
        check_id(parent_id)?;
        let mut body = json!({"parent": {"id": parent_id}});
        if let Some(n) = name {
            // Box would quietly strip bad characters from a copy's name; refuse instead,
            // as for every other name.
            check_name(n)?;
            body["name"] = json!(n);
        }
        if let Some(v) = version {
            check_id(v)?;
            body["version"] = json!(v);
        }
        self.json(
            self.api(Method::POST, &format!("/files/{file_id}/copy"))
                .json(body),
        )
        .await
    }

    /// Deletes a file (to the trash, unless the enterprise purges at once); with
    /// `if_match`, only if its etag is still that (else 412 `precondition_failed`).
    pub async fn delete_file(&self, file_id: &str, if_match_etag: Option<&str>) -> BoxResult<()> {
        check_id(file_id)?;
        let mut req = self.api(Method::DELETE, &format!("/files/{file_id}"));
        if let Some(e) = if_match_etag {
            req = req.header(reqwest::header::IF_MATCH, e);
        }
        self.empty(req).await
    }

    /// Locks a file; returns it with its `lock`.
    pub async fn lock_file(&self, file_id: &str, opts: &LockOptions) -> BoxResult<Item> {
        self.lock_file_with_fields(file_id, opts, FILE_FIELDS_WITH_LOCK)
            .await
    }

    /// [`Client::lock_file`], returning the file with `fields` (which should name `lock`).
    pub async fn lock_file_with_fields<S: AsRef<str>>(
        &self,
        file_id: &str,
        opts: &LockOptions,
        fields: &[S],
    ) -> BoxResult<Item> {
        check_id(file_id)?;
        let mut lock = json!({
            "access": "lock",
            "is_download_prevented": opts.is_download_prevented,
        });
        if let Some(t) = opts.expires_at {
            lock["expires_at"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        self.json(with_fields(
            self.api(Method::PUT, &format!("/files/{file_id}"))
                .json(json!({ "lock": lock })),
            fields,
        ))
        .await
    }

    /// Unlocks a file (`"lock": null`); returns it (with `lock` absent or null).
    pub async fn unlock_file(&self, file_id: &str) -> BoxResult<Item> {
        self.unlock_file_with_fields(file_id, FILE_FIELDS_WITH_LOCK)
            .await
    }

    /// [`Client::unlock_file`], returning the file with `fields`.
    pub async fn unlock_file_with_fields<S: AsRef<str>>(
        &self,
        file_id: &str,
        fields: &[S],
    ) -> BoxResult<Item> {
        check_id(file_id)?;
        self.json(with_fields(
            self.api(Method::PUT, &format!("/files/{file_id}"))
                .json(json!({ "lock": null })),
            fields,
        ))
        .await
    }

    /// The file's shared link, `None` when it has none.
    pub async fn file_shared_link(&self, file_id: &str) -> BoxResult<Option<SharedLink>> {
        self.shared_link_of(Kind::File, file_id).await
    }

    /// Creates the file's shared link or changes it; returns the link.
    pub async fn share_file(
        &self,
        file_id: &str,
        settings: &SharedLinkSettings,
    ) -> BoxResult<SharedLink> {
        self.set_shared_link(Kind::File, file_id, settings).await
    }

    /// Removes the file's shared link.
    pub async fn unshare_file(&self, file_id: &str) -> BoxResult<()> {
        self.remove_shared_link(Kind::File, file_id).await
    }

    /// The file's previous versions, newest first (Box does not list the current one).
    pub async fn file_versions(&self, file_id: &str) -> BoxResult<Vec<FileVersion>> {
        check_id(file_id)?;
        let mut out: Vec<FileVersion> = Vec::new();
        loop {
            let page: Versions = self
                .json(
                    self.api(Method::GET, &format!("/files/{file_id}/versions"))
                        .query("limit", 1000)
                        .query("offset", out.len()),
                )
                .await?;
            let got = page.entries.len();
            out.extend(page.entries);
            if got == 0 || out.len() as u64 >= page.total_count {
                return Ok(out);
            }
        }
    }

    /// Brings a file back from the trash, into its old folder, or into `parent_id` if
    /// that is gone; `name` renames it on the way.
    pub async fn restore_file(
        &self,
        file_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        self.restore_item(Kind::File, file_id, name, parent_id)
            .await
    }

    /// A file in the trash.
    pub async fn trashed_file(&self, file_id: &str) -> BoxResult<Item> {
        self.trashed_item(Kind::File, file_id).await
    }

    /// Deletes a trashed file for good.
    pub async fn purge_file(&self, file_id: &str) -> BoxResult<()> {
        self.purge_item(Kind::File, file_id).await
    }
}

/// A failed download fetch as a typed error, without the URL (it is a credential).
async fn download_error(resp: reqwest::Response, host: &str) -> BoxError {
    let status = resp.status().as_u16();
    let retry_after = header(resp.headers(), RETRY_AFTER.as_str())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let request_id = header(resp.headers(), "box-request-id").map(str::to_string);
    let body: Value = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    BoxError::Api(Box::new(ApiErrorInfo {
        status,
        code: text("code").unwrap_or_else(|| match status {
            403 => "forbidden".into(),
            404 => "not_found".into(),
            416 => "requested_range_not_satisfiable".into(),
            _ => "download_failed".into(),
        }),
        message: text("message").unwrap_or_else(|| {
            StatusCode::from_u16(status)
                .map(|s| s.to_string())
                .unwrap_or_default()
        }),
        request_id: text("request_id").or(request_id),
        context_info: body.get("context_info").filter(|v| !v.is_null()).cloned(),
        retry_after,
        method: "GET".into(),
        url: format!("download URL on {host}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_from_rust_ranges() {
        assert_eq!(ByteRange::from(0..10).header(), "bytes=0-9");
        assert_eq!(ByteRange::from(5..=5).header(), "bytes=5-5");
        assert_eq!(ByteRange::from(100..).header(), "bytes=100-");
        assert!(ByteRange::from(3..3).check().is_err());
        assert_eq!(parse_content_range_total("bytes 0-9/1234"), Some(1234));
        assert_eq!(parse_content_range_total("bytes */1234"), Some(1234));
    }

    #[test]
    fn download_urls_do_not_print() {
        let u =
            DownloadUrl(Url::parse("https://dl.boxcloud.com/d/1/SECRETTOKEN/download").unwrap());
        let shown = format!("{u:?}");
        assert!(!shown.contains("SECRETTOKEN"), "{shown}");
        assert!(shown.contains("dl.boxcloud.com"));
    }
}
