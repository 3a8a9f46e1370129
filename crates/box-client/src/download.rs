//! File content: whole, by byte range, or through a resolved download URL, for one read or
//! for many parallel ones ([`DownloadSource`]). Its types are public as `box_client::files`.
//!
//! Box's downloads: `GET /files/{id}/content` answers 302 with a URL on another host
//! (dl.boxcloud.com) that carries its own short-lived authorization. That URL is fetched
//! WITHOUT the `Authorization` and `As-User` headers, and never logged (its path is a
//! credential): the request layer sends it as a pre-signed request, with the same retries
//! as every other request. Box answers 202 with `Retry-After` while a fresh upload is not
//! ready to download; the client waits and asks again. A server that ignores `Range` and
//! sends everything is cut down to the range asked for, so a ranged read always yields
//! exactly the bytes requested.
//!
//! Two things are decided here and nowhere else:
//! - **An expired download URL** (the download host answers 401/403/404/410; Box's URLs
//!   live for minutes) is resolved again by [`DownloadSource`], once per fetch, and once
//!   for all the fetches that found the same URL refused. [`Client::download_with`] is a
//!   source used once; a bare URL ([`Client::download_from`]) is the caller's to renew.
//! - **A body that breaks off part-way** is asked for again from the first byte not yet
//!   received (a ranged GET of the rest), under the client's [`RetryPolicy`] and in the
//!   same count of attempts as the request that started it; a body that delivered bytes
//!   since its last failure starts a fresh count. The rest must come from the same
//!   content: a different ETag fails the download instead of splicing two versions.
//!
//! [`RetryPolicy`]: super::client::RetryPolicy

use std::ops::{Range, RangeFrom, RangeInclusive};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use reqwest::header::{HeaderMap, CONTENT_RANGE, ETAG, LOCATION, RANGE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use url::Url;

use super::client::{cause_of, Attempts, Client, Request};
use super::error::{ApiErrorInfo, BoxError, BoxResult};
use super::users::check_id;

/// How long the client keeps asking while Box says a file is not ready to download.
const NOT_READY_BUDGET: Duration = Duration::from_secs(300);
/// The longest single wait a `Retry-After` may impose.
const NOT_READY_MAX_WAIT: Duration = Duration::from_secs(30);
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

/// File content on its way: a body to stream or collect, exactly the bytes asked for. A
/// body that breaks off is resumed by the client (see the module notes).
pub struct Download {
    resp: reqwest::Response,
    /// Bytes to drop from the front (a server that ignored `Range`).
    skip: u64,
    /// Bytes to yield at most (`None`: all).
    take: Option<u64>,
    total_size: Option<u64>,
    etag: Option<String>,
    /// Where the rest comes from if the body breaks off.
    resume: Resume,
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

/// How the rest of a download is asked for.
struct Resume {
    client: Client,
    origin: Origin,
    /// The range asked for at first (the whole file: `0..`).
    range: ByteRange,
    /// Shared by the first request and every resumption.
    attempts: Attempts,
}

/// Where a download's bytes come from.
#[derive(Clone)]
enum Origin {
    /// A URL the caller resolved ([`Client::download_from`]): fetched as it is.
    Url(Url),
    /// A file's content: its source resolves the URL, again when it expired.
    Source(DownloadSource),
}

impl Origin {
    async fn fetch(
        &self,
        client: &Client,
        range: ByteRange,
        attempts: &mut Attempts,
    ) -> BoxResult<reqwest::Response> {
        match self {
            Origin::Url(url) => client.fetch_download(url, Some(range), attempts).await,
            Origin::Source(source) => source.fetch(Some(range), attempts).await,
        }
    }
}

impl Download {
    fn new(resp: reqwest::Response, range: Option<ByteRange>, resume: Resume) -> Download {
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
            resume,
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
        let body = Body {
            pos: self.resume.range.start,
            chunks: self.resp.bytes_stream().boxed(),
            skip: self.skip,
            left: self.take,
            end: self.total_size,
            etag: self.etag,
            since_failure: 0,
            resume: self.resume,
        };
        stream::try_unfold(body, |mut body| async move {
            Ok(body.next_chunk().await?.map(|chunk| (chunk, body)))
        })
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

/// A download's body as it is read: the bytes still to yield, and how to resume.
struct Body {
    chunks: BoxStream<'static, reqwest::Result<Bytes>>,
    /// Bytes of the current response to drop before the first one yielded.
    skip: u64,
    /// Bytes still to yield at most (`None`: whatever comes).
    left: Option<u64>,
    /// The file offset of the next byte to yield.
    pos: u64,
    /// The size of the file, when known: nothing is left to resume from there.
    end: Option<u64>,
    etag: Option<String>,
    /// Bytes yielded since the response being read was asked for.
    since_failure: u64,
    resume: Resume,
}

impl Body {
    async fn next_chunk(&mut self) -> BoxResult<Option<Bytes>> {
        loop {
            if self.left == Some(0) {
                return Ok(None);
            }
            let mut chunk = match self.chunks.next().await {
                None => return Ok(None),
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    let err = BoxError::Network(format!(
                        "reading a download: {}",
                        cause_of(&e, "the download URL")
                    ));
                    if self.end.is_some_and(|end| self.pos >= end) {
                        // Everything arrived; only the end of the answer was lost.
                        return Ok(None);
                    }
                    self.resume_after(err).await?;
                    continue;
                }
            };
            if self.skip > 0 {
                if chunk.len() as u64 <= self.skip {
                    self.skip -= chunk.len() as u64;
                    continue;
                }
                chunk = chunk.slice(self.skip as usize..);
                self.skip = 0;
            }
            if let Some(n) = self.left {
                if chunk.len() as u64 > n {
                    chunk.truncate(n as usize);
                }
                self.left = Some(n - chunk.len() as u64);
            }
            if chunk.is_empty() {
                continue;
            }
            self.pos += chunk.len() as u64;
            self.since_failure += chunk.len() as u64;
            return Ok(Some(chunk));
        }
    }

    /// The body broke off with `err`: asks for the rest, if the policy allows another
    /// attempt, and reads on from its answer.
    async fn resume_after(&mut self, err: BoxError) -> BoxResult<()> {
        let resume = &mut self.resume;
        if self.since_failure > 0 {
            resume.attempts.progressed();
        }
        self.since_failure = 0;
        let what = format!("the download at byte {}", self.pos);
        if !resume
            .client
            .wait_to_retry(&mut resume.attempts, &err, &what)
            .await
        {
            return Err(err);
        }
        let rest = ByteRange {
            start: self.pos,
            end: match self.left {
                Some(n) => Some(self.pos + n),
                None => resume.range.end,
            },
        };
        let resp = resume
            .origin
            .fetch(&resume.client, rest, &mut resume.attempts)
            .await?;
        let etag = header(resp.headers(), ETAG.as_str()).map(|e| e.trim_matches('"').to_string());
        if let (Some(before), Some(now)) = (&self.etag, &etag) {
            if before != now {
                return Err(BoxError::Decode(format!(
                    "the content changed while it was downloaded (etag {before}, then {now})"
                )));
            }
        }
        self.skip = if resp.status() == StatusCode::PARTIAL_CONTENT {
            0
        } else {
            // The server ignored `Range` this time: the rest starts `pos` bytes in.
            self.pos
        };
        log::debug!("{what}: resumed");
        self.chunks = resp.bytes_stream().boxed();
        Ok(())
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

/// The content of one file (its current version, or one version) for any number of
/// downloads, in parallel if need be: the download URL is resolved on first need and
/// shared, and resolved again when the download host refuses it. Cheap to clone; clones
/// share the URL.
///
/// ```no_run
/// # async fn f(client: box_client::Client) -> box_client::BoxResult<()> {
/// let source = client.download_source("12345", None);
/// let (head, tail) = tokio::join!(
///     source.download(Some((0..4096).into())),
///     source.download(Some((4096..8192).into())),
/// );
/// let (head, tail) = (head?.bytes().await?, tail?.bytes().await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DownloadSource {
    inner: Arc<SourceInner>,
}

struct SourceInner {
    client: Client,
    file_id: String,
    version: Option<String>,
    /// Held while the URL is resolved, so that parallel downloads wait for one resolution.
    url: tokio::sync::Mutex<UrlSlot>,
    resolutions: AtomicU64,
}

/// Where a source's download goes.
enum Located {
    /// The shared URL, as of its `generation`-th resolution.
    Url { url: Url, generation: u64 },
    /// The API host answered with the content itself.
    Content(reqwest::Response),
}

struct UrlSlot {
    url: Option<Url>,
    /// Counts resolutions, so that downloads refused together resolve only once.
    generation: u64,
}

impl std::fmt::Debug for DownloadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadSource")
            .field("file_id", &self.inner.file_id)
            .field("version", &self.inner.version)
            .finish()
    }
}

impl DownloadSource {
    /// Content of the file: `range`, or all of it. Yields exactly those bytes (fewer only
    /// past the end of the file); a range that starts past the end is a 416 error.
    pub async fn download(&self, range: Option<ByteRange>) -> BoxResult<Download> {
        check_id(&self.inner.file_id)?;
        if let Some(v) = &self.inner.version {
            check_id(v)?;
        }
        if let Some(r) = &range {
            r.check()?;
        }
        let mut attempts = Attempts::new();
        let resp = self.fetch(range, &mut attempts).await?;
        Ok(Download::new(
            resp,
            range,
            Resume {
                client: self.inner.client.clone(),
                origin: Origin::Source(self.clone()),
                range: range.unwrap_or(ByteRange {
                    start: 0,
                    end: None,
                }),
                attempts,
            },
        ))
    }

    /// How many times the download URL was resolved so far.
    pub fn resolutions(&self) -> u64 {
        self.inner.resolutions.load(Ordering::Relaxed)
    }

    /// The response for `range`: the one place a refused (expired) download URL is
    /// resolved again.
    async fn fetch(
        &self,
        range: Option<ByteRange>,
        attempts: &mut Attempts,
    ) -> BoxResult<reqwest::Response> {
        let inner = &self.inner;
        let mut resolved_again = false;
        loop {
            let (url, generation) = match self.locate(range).await? {
                Located::Url { url, generation } => (url, generation),
                Located::Content(resp) => return Ok(resp),
            };
            match inner.client.fetch_download(&url, range, attempts).await {
                Ok(resp) => return Ok(resp),
                Err(e) if !resolved_again && matches!(e.status(), Some(401 | 403 | 404 | 410)) => {
                    // Box's download URLs expire after minutes (and the emulator's too).
                    resolved_again = true;
                    log::debug!(
                        "file {}: download URL refused ({e}); resolving again",
                        inner.file_id
                    );
                    let mut slot = inner.url.lock().await;
                    if slot.generation == generation {
                        slot.url = None;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The shared URL, resolved if there is none.
    async fn locate(&self, range: Option<ByteRange>) -> BoxResult<Located> {
        let inner = &self.inner;
        let mut slot = inner.url.lock().await;
        if let Some(url) = &slot.url {
            return Ok(Located::Url {
                url: url.clone(),
                generation: slot.generation,
            });
        }
        let resolved = inner
            .client
            .resolve_download(&inner.file_id, inner.version.as_deref(), range)
            .await?;
        match resolved {
            Resolved::Url(url) => {
                inner.resolutions.fetch_add(1, Ordering::Relaxed);
                slot.generation += 1;
                slot.url = Some(url.clone());
                Ok(Located::Url {
                    url,
                    generation: slot.generation,
                })
            }
            Resolved::Direct(resp) => Ok(Located::Content(resp)),
        }
    }
}

impl Client {
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
        self.download_source(file_id, opts.version.as_deref())
            .download(opts.range)
            .await
    }

    /// The content of a file (of one version when `version` is given) as a source of
    /// downloads that share one download URL, resolved when first needed and again when
    /// it expires. Ids are checked by the first download.
    pub fn download_source(&self, file_id: &str, version: Option<&str>) -> DownloadSource {
        DownloadSource {
            inner: Arc::new(SourceInner {
                client: self.clone(),
                file_id: file_id.to_string(),
                version: version.map(str::to_string),
                url: tokio::sync::Mutex::new(UrlSlot {
                    url: None,
                    generation: 0,
                }),
                resolutions: AtomicU64::new(0),
            }),
        }
    }

    /// The URL the content of a file (or of one version) can be fetched from without the
    /// client's token, for callers that read ranges in parallel themselves (with
    /// [`Client::download_from`] or any HTTP client). It expires after minutes;
    /// [`Client::download_source`] renews it by itself.
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
        let mut attempts = Attempts::new();
        let resp = self.fetch_download(&url.0, range, &mut attempts).await?;
        Ok(Download::new(
            resp,
            range,
            Resume {
                client: self.clone(),
                origin: Origin::Url(url.0.clone()),
                range: range.unwrap_or(ByteRange {
                    start: 0,
                    end: None,
                }),
                attempts,
            },
        ))
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
                // Not ready yet (a fresh upload): Box says when to ask again. This is Box
                // telling when the content will exist, not a failure: it has its own budget.
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

    /// GET of a download URL as a pre-signed request (no token, no As-User, the URL in no
    /// log line or error), following the download host's own redirects. Failures are
    /// retried by the request layer, counted in `attempts`.
    async fn fetch_download(
        &self,
        url: &Url,
        range: Option<ByteRange>,
        attempts: &mut Attempts,
    ) -> BoxResult<reqwest::Response> {
        let mut url = url.clone();
        for _ in 0..=MAX_HOPS {
            let mut req = Request::presigned(Method::GET, url.clone());
            if let Some(r) = range {
                req = req.header(RANGE, r.header());
            }
            let resp = self.send_counted(req, attempts).await?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            url = header(resp.headers(), LOCATION.as_str())
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| {
                    BoxError::Decode(format!(
                        "the download server on {} redirected without a usable Location",
                        url.host_str().unwrap_or("")
                    ))
                })?;
        }
        Err(BoxError::Decode(format!(
            "the download from {} redirected more than {MAX_HOPS} times",
            url.host_str().unwrap_or("")
        )))
    }
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
