//! Fetching a part: its chunks from the content cache, the rest with ranged GETs of the
//! file's content source; handing the bytes to the waiting reads and storing completed
//! chunks in the cache.

use super::*;

impl Inner {
    /// Fetches part `start..end`: cached chunks from the cache, the rest from the network.
    pub(super) async fn load(&self, start: u64, end: u64) -> FsResult<PartData> {
        let mut pieces = Vec::new();
        let mut missing: Vec<(u64, u64)> = Vec::new();
        match &self.cache {
            Some(cache) => {
                let chunk = cache.chunk_size();
                let (first, last) = (start / chunk, (end - 1) / chunk);
                let (cache2, key) = (cache.clone(), self.key.clone());
                let found = tokio::task::spawn_blocking(move || {
                    (first..=last)
                        .map(|c| cache2.get(&key, c))
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(|e| FsError::new(libc::EIO, format!("reading the content cache: {e}")))?;
                for (c, hit) in (first..=last).zip(found) {
                    let chunk_start = c * chunk;
                    let a = start.max(chunk_start);
                    let b = end.min(chunk_start + chunk).min(self.file.size);
                    match hit {
                        Some(data) => {
                            bump(&self.counters.cache_hits, 1);
                            bump(&self.counters.cache_bytes, b - a);
                            pieces
                                .push((a, piece_of_chunk(data, a - chunk_start, b - chunk_start)));
                        }
                        None => match missing.last_mut() {
                            Some(run) if run.1 == a => run.1 = b,
                            _ => missing.push((a, b)),
                        },
                    }
                }
            }
            None => missing.push((start, end)),
        }
        let fetched = try_join_all(missing.iter().map(|&(a, b)| self.fetch(a, b))).await?;
        pieces.extend(missing.iter().map(|&(a, _)| a).zip(fetched));
        pieces.sort_unstable_by_key(|(a, _)| *a);
        Ok(PartData {
            pieces,
            fetched: missing,
        })
    }

    /// Publishes a part's outcome to its readers, then stores the chunks it completed.
    pub(super) fn finish(
        self: &Arc<Self>,
        start: u64,
        end: u64,
        id: u64,
        result: FsResult<PartData>,
        done: watch::Sender<Outcome>,
    ) {
        let mut chunks = Vec::new();
        let outcome = {
            let mut st = self.lock();
            let current = st.parts.get_mut(&start).filter(|p| p.id == id);
            match result {
                Ok(data) => {
                    let data = Arc::new(data);
                    if let Some(part) = current {
                        part.data = Some(data.clone());
                        part.task = None;
                    } else if st.holes(start, end) == [(start, end)] {
                        // Cancelled by a seek when its bytes had already arrived (this task
                        // was waiting for the lock): keep them rather than fetch them again.
                        let part = Part {
                            end,
                            id,
                            data: Some(data.clone()),
                            done: done.subscribe(),
                            read_ahead: false,
                            last_use: st.tick,
                            task: None,
                        };
                        st.parts.insert(start, part);
                    }
                    chunks = self.completed_chunks(&st, &data.fetched);
                    Outcome::Ready(data)
                }
                Err(e) => {
                    if current.is_some() {
                        // Gone from the map, so that the next read tries again.
                        st.parts.remove(&start);
                    }
                    Outcome::Failed(e)
                }
            }
        };
        done.send_replace(outcome);
        self.store(chunks);
    }

    /// The chunks touched by `fetched` that parts in memory now cover whole.
    pub(super) fn completed_chunks(&self, st: &State, fetched: &[(u64, u64)]) -> Vec<(u64, Bytes)> {
        let Some(cache) = &self.cache else {
            return Vec::new();
        };
        let chunk = cache.chunk_size();
        let mut out: Vec<(u64, Bytes)> = Vec::new();
        for &(a, b) in fetched {
            for c in a / chunk..=(b - 1) / chunk {
                if out.last().is_some_and(|(last, _)| *last == c) {
                    continue;
                }
                let chunk_start = c * chunk;
                let chunk_end = (chunk_start + chunk).min(self.file.size);
                if let Some(slices) = st.in_memory(chunk_start, chunk_end) {
                    out.push((c, join(slices)));
                }
            }
        }
        out
    }

    /// Writes chunks to the cache off the reply path.
    pub(super) fn store(self: &Arc<Self>, chunks: Vec<(u64, Bytes)>) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        if chunks.is_empty() {
            return;
        }
        bump(&self.counters.cache_writes_pending, chunks.len() as u64);
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            for (c, data) in chunks {
                match cache.put(&inner.key, c, &data) {
                    Ok(true) => bump(&inner.counters.cache_stores, 1),
                    Ok(false) => {}
                    Err(e) => log::debug!(
                        "content cache: chunk {c} of file {}: {e}",
                        inner.file.file_id
                    ),
                }
                inner
                    .counters
                    .cache_writes_pending
                    .fetch_sub(1, Ordering::Relaxed);
            }
        });
    }

    /// One ranged GET of `start..end`, holding one of the reader's connections.
    pub(super) async fn fetch(&self, start: u64, end: u64) -> FsResult<Bytes> {
        let _slot = self.connection(start).await;
        let _in_flight = InFlight::enter(&self.counters);
        let _counted = self.share.as_ref().map(ReadShare::request);
        let range = ByteRange {
            start,
            end: Some(end),
        };
        let download = self.source.download(Some(range)).await?;
        if !self.version_is_id {
            // The current version was asked for: it must still be the one we serve.
            if let Some(etag) = download.etag().filter(|e| is_sha1(e)) {
                if !etag.eq_ignore_ascii_case(&self.file.version) {
                    return Err(FsError::new(
                        libc::ESTALE,
                        format!(
                            "file {} changed on Box (content {etag}, expected {})",
                            self.file.file_id, self.file.version
                        ),
                    ));
                }
            }
        }
        let bytes = download.bytes().await?;
        if bytes.len() as u64 != end - start {
            return Err(FsError::new(
                libc::EIO,
                format!(
                    "file {}: asked for bytes {start}..{end}, got {} bytes",
                    self.file.file_id,
                    bytes.len()
                ),
            ));
        }
        bump(&self.counters.network_requests, 1);
        bump(&self.counters.network_bytes, bytes.len() as u64);
        Ok(bytes)
    }
}

pub(super) fn is_sha1(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A slice of a cached chunk; copied when it is a small part of it, so that a random read
/// does not keep a whole chunk alive.
pub(super) fn piece_of_chunk(chunk: Bytes, from: u64, to: u64) -> Bytes {
    let slice = chunk.slice(from as usize..to as usize);
    if slice.len() * 2 < chunk.len() {
        Bytes::copy_from_slice(&slice)
    } else {
        slice
    }
}
