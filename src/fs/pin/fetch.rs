//! Downloading one pinned file into the content cache: the chunks of its version that the
//! cache lacks, each run of missing chunks as one ranged GET of the file's content source,
//! cut into chunks as the body arrives and stored through `spawn_blocking`. Runs inside the
//! worker's background priority; retries are the client's, as for every download. A file
//! unpinned meanwhile stops at the next chunk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::StreamExt;

use crate::fs::backend::BoxApi;
use crate::fs::errno::FsError;
use crate::fs::read::content_cache::{ContentCache, ContentKey};
use crate::fs::read::reader::is_box_id;
use box_client::files::ByteRange;

/// One version of one file to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedFile {
    pub box_id: String,
    pub name: String,
    pub size: u64,
    /// The file_version id, or Box's sha1 when the id is unknown (as the readers key it).
    pub version: String,
    pub sha1: Option<String>,
}

impl PinnedFile {
    pub fn key(&self) -> ContentKey {
        ContentKey::new(&self.box_id, &self.version, self.size).with_sha1(self.sha1.as_deref())
    }
}

/// Fetches what the cache lacks of `file`; `done` counts the file's bytes cached so far.
pub(super) async fn fetch_file(
    client: &Arc<dyn BoxApi>,
    cache: &Arc<ContentCache>,
    file: &PinnedFile,
    done: &AtomicU64,
) -> Result<(), FsError> {
    let key = file.key();
    let missing = cache.missing_chunks(&key);
    let chunk = cache.chunk_size();
    let count = cache.chunk_count(file.size);
    let held = (count - missing.len() as u64) * chunk;
    done.store(held.min(file.size), Ordering::Relaxed);
    if missing.is_empty() {
        return Ok(());
    }
    let version_is_id = is_box_id(&file.version);
    let source =
        client.download_source(&file.box_id, version_is_id.then_some(file.version.as_str()));
    for (first, last) in runs(&missing) {
        if !cache.is_pinned(&file.box_id) {
            return Ok(());
        }
        let start = first * chunk;
        let end = ((last + 1) * chunk).min(file.size);
        let body = source
            .download(Some(ByteRange {
                start,
                end: Some(end),
            }))
            .await?;
        if !version_is_id {
            // The current version was asked for: it must still be the one we keep.
            if let Some(etag) = body.etag().filter(|e| e.len() == 40) {
                if !etag.eq_ignore_ascii_case(&file.version) {
                    return Err(FsError::new(
                        libc::ESTALE,
                        format!("{} changed on Box while it was downloaded", file.name),
                    ));
                }
            }
        }
        let mut stream = body.into_stream();
        let mut buf = BytesMut::new();
        let mut index = first;
        while let Some(piece) = stream.next().await {
            buf.extend_from_slice(&piece?);
            while index <= last {
                let len = (file.size - index * chunk).min(chunk) as usize;
                if buf.len() < len {
                    break;
                }
                let data = buf.split_to(len).freeze();
                store(cache, &key, index, data).await?;
                done.fetch_add(len as u64, Ordering::Relaxed);
                index += 1;
            }
        }
        if index != last + 1 || !buf.is_empty() {
            return Err(FsError::new(
                libc::EIO,
                format!(
                    "{}: Box sent {} bytes of {start}..{end}",
                    file.name,
                    (index - first) * chunk + buf.len() as u64
                ),
            ));
        }
    }
    Ok(())
}

/// Stores one chunk, off the async workers.
async fn store(
    cache: &Arc<ContentCache>,
    key: &ContentKey,
    index: u64,
    data: bytes::Bytes,
) -> Result<(), FsError> {
    let (cache, key) = (cache.clone(), key.clone());
    tokio::task::spawn_blocking(move || cache.put(&key, index, &data))
        .await
        .map_err(|e| FsError::new(libc::EIO, format!("storing a chunk: {e}")))?
        .map(|_| ())
        .map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            FsError::new(errno, format!("the content cache: {e}"))
        })
}

/// Consecutive runs in a sorted list of chunk indexes, as `(first, last)`.
fn runs(chunks: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &c in chunks {
        match out.last_mut() {
            Some(run) if run.1 + 1 == c => run.1 = c,
            _ => out.push((c, c)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_chunks_are_fetched_in_runs() {
        assert_eq!(runs(&[]), []);
        assert_eq!(runs(&[0, 1, 2]), [(0, 2)]);
        assert_eq!(runs(&[1, 3, 4, 7]), [(1, 1), (3, 4), (7, 7)]);
    }
}
