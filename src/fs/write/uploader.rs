//! Uploads of staged data: one upload ([`BoxFs::upload_now`]), the queue that runs them in
//! the background several at a time and retries failures with a growing delay, the recovery
//! of staged files a previous run left (after a crash or `kill -9`), and the final drain
//! when the mount ends.
//!
//! An upload is a new file (`upload_file`) or a new version with `If-Match` of the etag the
//! data was based on (`upload_new_version`); the client sends one multipart request below
//! 20 MB and an upload session with parallel parts above. The session's id goes into the
//! journal as soon as Box opened it, so an interrupted upload resumes from the parts Box
//! holds. Box's answer is stored in the inode table while our [`crate::fs::sync::events::OwnChanges`]
//! guard is held, so the event Box sends about our upload changes nothing.
//!
//! **Conflicts never lose data.** If Box's version moved on since the data was staged
//! (412 on `If-Match` and another content than the data was based on: Box's etag also
//! changes with a rename or a lock, and then the data is sent again over the new etag), or
//! the file was deleted on Box meanwhile, the data is uploaded
//! beside it as `name (conflict YYYY-MM-DD HHMMSS).ext` (a deleted file gets its old name
//! back if it is free) and the conflict is logged as an error. Before that, a 412 or a
//! name clash is checked against the SHA1 of our data: after a crash between Box's commit
//! and the removal of the journal, the "conflict" is our own upload, and nothing is sent
//! again. An upload that failed without a clear answer (none came, or a 5xx) may have
//! reached Box, so the SHA1 of what it sent is remembered: when a later upload of changed
//! data meets a file holding it, that file is our own earlier upload and the data becomes
//! its next version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::fs::backend::priority::in_background;
use crate::fs::errno::FsError;
use crate::fs::kernel::Invalidation;
use crate::fs::write::staging::{conflict_name, Journal, Target};
use crate::fs::write::upload_progress::{RunningUpload, UploadCounters};
use crate::fs::write::writes::{blocking, Staged, StagedState, RENAME_GRACE, RENAME_GRACE_MAX};
use crate::fs::{lock, BoxFs, STAT_FIELDS};
use box_client::error::BoxError;
use box_client::types::Item;
use box_client::upload::{SessionHook, UploadOptions, MIN_CHUNKED_SIZE};

/// Uploads running at once from the queue. Small files cost Box a round trip each, so many
/// travel together; Box's own limit (240 uploads a minute per user) answers 429 with
/// Retry-After beyond it, which the client waits out.
pub const UPLOADS_IN_PARALLEL: usize = 8;
/// Of those, uploads through an upload session (files of [`MIN_CHUNKED_SIZE`] and more),
/// which hold [`PARTS_IN_PARALLEL`] parts in memory each.
pub const LARGE_UPLOADS_IN_PARALLEL: usize = 2;
/// Parts of one upload session in flight at once. Box throttles each connection well below
/// what a link carries (tens of MB/s), so a large file's upload time is set by how many
/// parts travel together. Parts are held in memory while they travel: the client caps that
/// at 128 MiB per upload (sixteen of Box's 8 MiB parts, fewer of its larger ones).
pub const PARTS_IN_PARALLEL: usize = 16;

/// First retry delay of a failed upload; doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
/// A full account is not going to empty itself within seconds.
/// Retry delay of an upload that found Box out of reach; the probe that finds it back
/// starts it earlier.
const OFFLINE_RETRY_DELAY: Duration = Duration::from_secs(60);
const QUOTA_RETRY_DELAY: Duration = Duration::from_secs(120);

/// The uploads of a mount at one moment ([`BoxFs::upload_status`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadStatus {
    /// Staged files whose data still has to reach Box (the running uploads included).
    pub pending_files: u64,
    /// Their sizes together.
    pub pending_bytes: u64,
    /// The uploads running now.
    pub running: Vec<RunningUpload>,
    /// Files and bytes Box confirmed since the mount started.
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
}

/// How one upload ended.
enum Outcome {
    /// Box holds the data as `item` (at the target, or our own earlier upload found there).
    Uploaded(Item),
    /// The target moved on or went away: the data is on Box as the conflict copy `item`.
    ConflictCopy(Item),
}

fn retry_delay(failures: u32, err: &FsError) -> Duration {
    if err.errno() == libc::ENOSPC || err.errno() == libc::EDQUOT {
        return QUOTA_RETRY_DELAY;
    }
    // Box out of reach: tried again when it answers (`crate::fs::offline`), or after this.
    if err.is_unreachable() {
        return OFFLINE_RETRY_DELAY;
    }
    FIRST_RETRY_DELAY
        .saturating_mul(1 << failures.min(10))
        .min(MAX_RETRY_DELAY)
}

/// Whether Box's `item` holds data an upload of ours sent without an answer.
fn sent_unconfirmed(st: &StagedState, item: &Item) -> bool {
    item.sha1.as_deref().is_some_and(|theirs| {
        st.unconfirmed
            .iter()
            .any(|u| u.eq_ignore_ascii_case(theirs))
    })
}

/// Hex SHA1 of a staged data file.
async fn sha1_of(file: Arc<std::fs::File>, size: u64) -> Result<String, FsError> {
    blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut h = Sha1::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut offset = 0u64;
        while offset < size {
            let n = (size - offset).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], offset)?;
            h.update(&buf[..n]);
            offset += n as u64;
        }
        Ok(hex::encode(h.finalize()))
    })
    .await
}

impl BoxFs {
    /// Uploads `staged` now (waiting for an upload of it already running). On failure the
    /// data stays staged and a retry is queued.
    pub(in crate::fs) async fn upload_now(&self, staged: &Arc<Staged>) -> Result<(), FsError> {
        match self.upload_staged(staged).await {
            Ok(()) => {
                self.writes.inner().queue.remove(&staged.key);
                Ok(())
            }
            Err(e) => {
                self.requeue_failed(staged, &e);
                Err(e)
            }
        }
    }

    fn requeue_failed(&self, staged: &Staged, e: &FsError) {
        let target = staged.state().target.clone();
        let failures = {
            let mut inner = self.writes.inner();
            let p = inner.queue.entry(staged.key.clone()).or_insert(
                crate::fs::write::writes::Pending {
                    due: Instant::now(),
                    failures: 0,
                },
            );
            let delay = retry_delay(p.failures, e);
            p.due = Instant::now() + delay;
            p.failures += 1;
            p.failures
        };
        self.writes.sync_later(&staged.key);
        log::warn!(
            "upload of '{}' failed ({e}); the data stays staged and is retried \
             (attempt {failures} failed)",
            target.name()
        );
        self.writes.wake.notify_one();
    }

    /// One upload of `staged` if it is dirty: the data cannot change meanwhile.
    async fn upload_staged(&self, staged: &Arc<Staged>) -> Result<(), FsError> {
        let _one = staged.upload.lock().await;
        let _exclusive = staged.content.write().await;
        let mut journal_slot = staged.journal.lock().await;
        let Some(journal) = journal_slot.clone() else {
            return Ok(());
        };
        let st = staged.snapshot();
        if st.discarded {
            return Ok(());
        }
        let staging = self
            .writes
            .staging
            .clone()
            .ok_or_else(|| FsError::new(libc::EROFS, "no staging directory: writes are off"))?;
        let path = staging.data_path(&staged.key);
        let (counters, running) = self.writes.progress.start(st.target.name(), st.size);
        let outcome = self.send(staged, &st, &journal, &path, counters).await?;
        running.finished();
        // Box has it: the journal goes, then the state says clean.
        let key = staged.key.clone();
        let s = staging.clone();
        if let Err(e) = blocking(move || s.remove_journal(&key)).await {
            log::warn!("staged upload {}: removing its journal: {e}", staged.key);
        }
        *journal_slot = None;
        match outcome {
            Outcome::Uploaded(item) => {
                let keep = st.created_here && st.size <= RENAME_GRACE_MAX;
                {
                    let mut s = staged.state();
                    s.dirty = false;
                    s.session_id = None;
                    s.unconfirmed.clear();
                    s.keep_until = keep.then(|| Instant::now() + RENAME_GRACE);
                    s.target = Target::Version {
                        file_id: item.id.clone(),
                        base_etag: item.etag.clone(),
                        base_version: item.file_version.as_ref().map(|v| v.id.clone()),
                        parent_id: st.target.parent_id().to_string(),
                        name: if item.name.is_empty() {
                            st.target.name().to_string()
                        } else {
                            item.name.clone()
                        },
                    };
                }
                log::debug!(
                    "uploaded '{}' (Box id {}, {} bytes)",
                    st.target.name(),
                    item.id,
                    st.size
                );
                if let (Target::NewFile { .. }, Some(ino)) = (&st.target, st.ino) {
                    self.send_pending_posix(ino).await;
                }
            }
            Outcome::ConflictCopy(item) => {
                {
                    let mut s = staged.state();
                    s.dirty = false;
                    s.discarded = true;
                }
                self.after_conflict(&st, &item);
            }
        }
        drop(journal_slot);
        drop(_exclusive);
        drop(_one);
        // Box holds the data now (as the target's version or a conflict copy).
        self.purge_replaced_temporaries(staged).await;
        self.maybe_retire(staged).await;
        Ok(())
    }

    /// Sends the data to its target, handling conflicts; stores Box's answer in the table.
    async fn send(
        &self,
        staged: &Arc<Staged>,
        st: &StagedState,
        journal: &Journal,
        path: &std::path::Path,
        counters: UploadCounters,
    ) -> Result<Outcome, FsError> {
        let mut opts = self.upload_options(staged, st, journal);
        opts.progress = Some(counters.confirmed);
        opts.sending = Some(counters.sending);
        match &st.target {
            Target::NewFile { parent_id, name } => {
                // Recovered entries (no inode) leave the table to the events task.
                let _own = st.ino.map(|_| self.own.name(parent_id, name));
                let sent = match self.resume(journal, path, &opts).await {
                    Some(r) => r,
                    None => {
                        self.client
                            .upload_file(parent_id, name, path.to_path_buf(), &opts)
                            .await
                    }
                };
                match sent {
                    Ok(item) => {
                        self.store_upload(st, &item);
                        return Ok(Outcome::Uploaded(item));
                    }
                    Err(e) if e.code() == Some("item_name_in_use") => {
                        let theirs = match e.conflict_id() {
                            Some(id) => self.client.file_with_fields(&id, STAT_FIELDS).await.ok(),
                            None => None,
                        };
                        if let Some(theirs) = theirs {
                            // Our own upload that a crash or a lost answer kept us from
                            // recording.
                            if self.holds_our_data(staged, st, &theirs).await {
                                self.store_upload(st, &theirs);
                                return Ok(Outcome::Uploaded(theirs));
                            }
                            // An earlier state of this data, whose upload's answer never
                            // came: this data is that file's next version.
                            if sent_unconfirmed(st, &theirs) {
                                opts.if_match = theirs.etag.clone();
                                let sent = self
                                    .client
                                    .upload_new_version(&theirs.id, path.to_path_buf(), &opts)
                                    .await;
                                return match sent {
                                    Ok(item) => {
                                        self.store_upload(st, &item);
                                        Ok(Outcome::Uploaded(item))
                                    }
                                    Err(e) => {
                                        self.note_unconfirmed(staged, st, &e).await;
                                        Err(FsError::from(e))
                                    }
                                };
                            }
                        }
                        log::warn!("'{name}' exists on Box already: {e}");
                    }
                    Err(e) if e.is_not_found() => {
                        log::warn!("the folder of '{name}' is gone from Box: {e}");
                    }
                    Err(e) => {
                        self.note_unconfirmed(staged, st, &e).await;
                        return Err(FsError::from(e));
                    }
                }
            }
            Target::Version {
                file_id,
                base_etag,
                base_version,
                name,
                ..
            } => {
                opts.if_match = base_etag.clone();
                let _own = st.ino.map(|_| self.own.item(file_id));
                let mut sent = match self.resume(journal, path, &opts).await {
                    Some(r) => r,
                    None => {
                        self.client
                            .upload_new_version(file_id, path.to_path_buf(), &opts)
                            .await
                    }
                };
                let mut sent_again = false;
                loop {
                    match sent {
                        Ok(item) => {
                            self.store_upload(st, &item);
                            return Ok(Outcome::Uploaded(item));
                        }
                        Err(e) if e.status() == Some(412) => {
                            let current =
                                match self.client.file_with_fields(file_id, STAT_FIELDS).await {
                                    Ok(current) => current,
                                    Err(gone) if gone.is_not_found() => {
                                        log::error!(
                                            "'{name}' was deleted on Box while it was being \
                                         written here; uploading this copy again"
                                        );
                                        break;
                                    }
                                    // Whether Box's file moved on is unknown: the data stays
                                    // staged, and the next attempt asks again.
                                    Err(unknown) => return Err(FsError::from(unknown)),
                                };
                            if self.holds_our_data(staged, st, &current).await {
                                self.store_upload(st, &current);
                                return Ok(Outcome::Uploaded(current));
                            }
                            // Box's etag changes with the name, the lock, the shared link:
                            // a file only renamed since (here or elsewhere) still has the
                            // content the data was based on, and takes it as a new version.
                            // So does a file that holds what an earlier upload of ours sent
                            // (its answer never came).
                            let same_content = (base_version.is_some()
                                && current.file_version.as_ref().map(|v| &v.id)
                                    == base_version.as_ref())
                                || sent_unconfirmed(st, &current);
                            if same_content && !sent_again {
                                log::debug!(
                                    "'{name}' changed on Box but not its content: \
                                     uploading the new version over etag {:?}",
                                    current.etag
                                );
                                sent_again = true;
                                opts.if_match = current.etag.clone();
                                sent = self
                                    .client
                                    .upload_new_version(file_id, path.to_path_buf(), &opts)
                                    .await;
                                continue;
                            }
                            log::error!(
                                "'{name}' changed on Box while it was being written here \
                                 ({e}); keeping this copy beside it"
                            );
                            break;
                        }
                        Err(e) if e.is_not_found() => {
                            log::error!(
                                "'{name}' was deleted on Box while it was being written here; \
                                 uploading this copy again"
                            );
                            break;
                        }
                        Err(e) => {
                            self.note_unconfirmed(staged, st, &e).await;
                            return Err(FsError::from(e));
                        }
                    }
                }
            }
        }
        self.upload_conflict_copy(st, path)
            .await
            .map(Outcome::ConflictCopy)
    }

    /// A previous run opened an upload session for this data: resume it (`None` when there
    /// is none, or Box no longer has it).
    async fn resume(
        &self,
        journal: &Journal,
        path: &std::path::Path,
        opts: &UploadOptions,
    ) -> Option<Result<Item, BoxError>> {
        let session = journal.session_id.as_deref()?;
        match self
            .client
            .resume_upload(session, path.to_path_buf(), opts)
            .await
        {
            Ok(item) => {
                log::info!(
                    "resumed upload session {session} of '{}'",
                    journal.target.name()
                );
                Some(Ok(item))
            }
            Err(e) if e.status() == Some(404) || matches!(e, BoxError::Invalid(_)) => {
                log::info!("upload session {session} cannot be resumed ({e}); starting over");
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    fn upload_options(&self, staged: &Arc<Staged>, st: &StagedState, j: &Journal) -> UploadOptions {
        let staging = self.writes.staging.clone();
        let key = staged.key.clone();
        let journal = j.clone();
        // Remember the session the moment Box opens it, so a crash resumes it.
        let hook: SessionHook = Arc::new(move |session| {
            if let Some(staging) = &staging {
                let mut j = journal.clone();
                j.session_id = Some(session.id.clone());
                if let Err(e) = staging.write_journal(&key, &j) {
                    log::warn!("staged upload {key}: recording its session: {e}");
                }
            }
        });
        UploadOptions {
            content_modified_at: Some(
                j.mtime.clone().unwrap_or_else(|| {
                    chrono::DateTime::<chrono::Utc>::from(st.mtime).to_rfc3339()
                }),
            ),
            fields: STAT_FIELDS.iter().map(|s| s.to_string()).collect(),
            resumable: true,
            on_session: Some(hook),
            concurrency: PARTS_IN_PARALLEL,
            ..UploadOptions::default()
        }
    }

    /// An upload that failed without a clear answer (none came, or a 5xx) may have reached
    /// Box: the SHA1 of what it sent is remembered (the data cannot change during an
    /// upload), so that a later conflict with it is known to be with ourselves.
    async fn note_unconfirmed(&self, staged: &Arc<Staged>, st: &StagedState, e: &BoxError) {
        let unclear = matches!(e, BoxError::Network(_)) || e.status().is_some_and(|s| s >= 500);
        if !unclear {
            return;
        }
        if let Ok(sha1) = sha1_of(staged.file.clone(), st.size).await {
            let mut s = staged.state();
            if !s.unconfirmed.contains(&sha1) {
                s.unconfirmed.push(sha1);
            }
        }
    }

    /// Whether `item` (as Box holds it now) has our staged data: same size, same SHA1.
    async fn holds_our_data(&self, staged: &Arc<Staged>, st: &StagedState, item: &Item) -> bool {
        let Some(theirs) = item.sha1.clone() else {
            return false;
        };
        if item.size != Some(st.size) {
            return false;
        }
        let Ok(ours) = sha1_of(staged.file.clone(), st.size).await else {
            return false;
        };
        let same = theirs.eq_ignore_ascii_case(&ours);
        if same {
            log::info!(
                "'{}' is on Box already with this content (Box id {})",
                st.target.name(),
                item.id
            );
        }
        same
    }

    /// Uploads the data beside its target as a conflict copy (or, for a file deleted on
    /// Box, under its old name if that is free). A folder that is gone sends it to the
    /// mount's root folder.
    async fn upload_conflict_copy(
        &self,
        st: &StagedState,
        path: &std::path::Path,
    ) -> Result<Item, FsError> {
        let name = st.target.name().to_string();
        let mut parent_id = st.target.parent_id().to_string();
        let restore_name = matches!(st.target, Target::Version { .. });
        let opts = UploadOptions {
            content_modified_at: Some(chrono::DateTime::<chrono::Utc>::from(st.mtime).to_rfc3339()),
            fields: STAT_FIELDS.iter().map(|s| s.to_string()).collect(),
            ..UploadOptions::default()
        };
        let stamp = chrono::Local::now();
        let mut candidates: Vec<String> = Vec::new();
        let deleted = restore_name
            && self
                .client
                .file_with_fields(
                    match &st.target {
                        Target::Version { file_id, .. } => file_id,
                        Target::NewFile { .. } => "0",
                    },
                    &["id"],
                )
                .await
                .is_err_and(|e| e.is_not_found());
        if deleted {
            candidates.push(name.clone());
        }
        let base = conflict_name(&name, stamp);
        candidates.push(base.clone());
        for n in 2..6 {
            candidates.push(conflict_name(&format!("{name} {n}"), stamp));
        }
        let mut last: Option<BoxError> = None;
        let mut tried_root = false;
        let mut i = 0;
        while i < candidates.len() {
            let candidate = &candidates[i];
            match self
                .client
                .upload_file(&parent_id, candidate, path.to_path_buf(), &opts)
                .await
            {
                Ok(item) => {
                    log::error!(
                        "conflict: the data written here to '{name}' is on Box as \
                         '{candidate}' (Box id {}) in folder {parent_id}",
                        item.id
                    );
                    return Ok(item);
                }
                Err(e) if e.code() == Some("item_name_in_use") => {
                    last = Some(e);
                    i += 1;
                }
                Err(e) if e.is_not_found() && !tried_root => {
                    // The folder went away too: the mount's root keeps it.
                    tried_root = true;
                    parent_id = lock(&self.table).root_box_id().to_string();
                    last = Some(e);
                }
                Err(e) => return Err(FsError::from(e)),
            }
        }
        Err(last.map(FsError::from).unwrap_or_else(|| {
            FsError::new(
                libc::EIO,
                format!("no free name for a conflict copy of '{name}'"),
            )
        }))
    }

    /// Stores Box's answer to an upload: a local inode takes its Box id; the attributes
    /// are Box's (the size and mtime stay the staged ones while the entry is pinned, and
    /// they are the same).
    fn store_upload(&self, st: &StagedState, item: &Item) {
        let Some(ino) = st.ino else {
            return;
        };
        let mut table = lock(&self.table);
        let Some(inode) = table.get(ino) else {
            return;
        };
        let parent = inode.parent();
        if inode.box_id() != item.id {
            if let Err(e) = table.rekey(ino, &item.id) {
                log::debug!("re-keying inode {ino} to {}: {e}", item.id);
                return;
            }
            self.xattrs.invalidate(ino);
        }
        if let Some(p) = parent {
            if let Err(e) = table.insert_or_update_from_item(p, item) {
                log::debug!("storing the uploaded {}: {e}", item.id);
            }
        }
        drop(table);
        // Box's echo of our upload tells nobody: a pin above the file hears of it here.
        self.pins_hear_of(ino);
    }

    /// After a conflict copy: the inode shows Box's file again (a local inode, which has
    /// no Box file, becomes the copy).
    fn after_conflict(&self, st: &StagedState, copy: &Item) {
        let Some(ino) = st.ino else {
            return;
        };
        let mut invs = Vec::new();
        {
            let mut table = lock(&self.table);
            let Some(inode) = table.get(ino) else {
                return;
            };
            let parent = inode.parent();
            if inode.is_local() {
                let old_name: Box<str> = inode.name().into();
                if table.rekey(ino, &copy.id).is_ok() {
                    if let Some(p) = parent {
                        let _ = table.insert_or_update_from_item(p, copy);
                        invs.push(Invalidation::Entry {
                            parent: p,
                            name: old_name,
                        });
                        invs.push(Invalidation::Inode(p));
                    }
                }
            } else {
                table.invalidate_attrs(ino);
            }
            table.set_pinned(ino, false);
        }
        invs.push(Invalidation::Inode(ino));
        self.kernel.send_all(invs);
    }

    // ---- the queue -----------------------------------------------------------------

    /// Runs the upload queue until aborted: due uploads, a few at a time;
    /// failures come back with a growing delay. Also drops staged copies whose grace ended.
    pub fn spawn_uploader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let fs = Arc::clone(self);
        tokio::spawn(async move {
            let slots = Arc::new(UploadSlots::new());
            loop {
                let now = Instant::now();
                let (due, next) = {
                    let mut inner = fs.writes.inner();
                    let due: Vec<String> = inner
                        .queue
                        .iter()
                        .filter(|(_, p)| p.due <= now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    // Taken out while running; a failure puts them back.
                    for k in &due {
                        if let Some(p) = inner.queue.get_mut(k) {
                            p.due = now + Duration::from_secs(3600);
                        }
                    }
                    let next = inner.queue.values().map(|p| p.due).min();
                    (due, next)
                };
                for key in due {
                    let staged = fs.writes.inner().entries.get(&key).cloned();
                    let Some(staged) = staged else {
                        fs.writes.inner().queue.remove(&key);
                        continue;
                    };
                    // A file open for writing may be half rewritten: its close queues it.
                    let ino = staged.state().ino;
                    if ino.is_some_and(|ino| fs.writes.open_on(ino).1) {
                        fs.writes.inner().queue.remove(&key);
                        continue;
                    }
                    let fs = fs.clone();
                    let slots = slots.clone();
                    tokio::spawn(async move {
                        let size = staged.state().size;
                        let Some(_slot) = slots.acquire(size).await else {
                            return;
                        };
                        // Queued uploads (write-back, retries): nobody waits on them.
                        let _ = in_background(fs.upload_now(&staged)).await;
                    });
                }
                fs.retire_expired().await;
                let wait = next
                    .map(|t| t.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_secs(5))
                    .min(Duration::from_secs(5));
                tokio::select! {
                    _ = fs.writes.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    /// Drops clean staged copies whose rename grace is over.
    async fn retire_expired(&self) {
        let now = Instant::now();
        let expired: Vec<Arc<Staged>> = self
            .writes
            .inner()
            .entries
            .values()
            .filter(|s| {
                let st = s.state();
                !st.dirty && st.keep_until.is_some_and(|t| t <= now)
            })
            .cloned()
            .collect();
        for s in expired {
            s.state().keep_until = None;
            self.maybe_retire(&s).await;
        }
    }

    /// The staged entries whose data still has to reach Box.
    fn pending_entries(&self) -> Vec<Arc<Staged>> {
        self.writes
            .inner()
            .entries
            .values()
            .filter(|s| {
                let st = s.state();
                st.dirty && !st.discarded
            })
            .cloned()
            .collect()
    }

    /// How many staged files still have to reach Box.
    pub fn pending_uploads(&self) -> usize {
        self.pending_entries().len()
    }

    /// The uploads waiting and running, and what went to Box since the mount started.
    pub fn upload_status(&self) -> UploadStatus {
        let pending = self.pending_entries();
        let (uploaded_files, uploaded_bytes) = self.writes.progress.uploaded();
        UploadStatus {
            pending_files: pending.len() as u64,
            pending_bytes: pending.iter().map(|s| s.state().size).sum(),
            running: self.writes.progress.running(),
            uploaded_files,
            uploaded_bytes,
        }
    }

    /// At start-up: the staged files a previous run left are queued for upload at once.
    /// Returns how many there are.
    pub fn recover_staged(&self) -> usize {
        let Some(staging) = self.writes.staging.clone() else {
            return 0;
        };
        let found = match staging.recover() {
            Ok(found) => found,
            Err(e) => {
                log::error!("reading the staging area {}: {e}", staging.path().display());
                return 0;
            }
        };
        let mut n = 0;
        for r in found {
            let file = match staging.open_data(&r.key) {
                Ok(f) => f,
                Err(e) => {
                    log::error!("staged upload {}: {e}", r.key);
                    continue;
                }
            };
            let mtime = r
                .journal
                .mtime
                .as_deref()
                .and_then(|m| chrono::DateTime::parse_from_rfc3339(m).ok())
                .map(std::time::SystemTime::from)
                .unwrap_or(r.modified);
            log::info!(
                "found '{}' ({} bytes) staged by an earlier run: uploading it",
                r.journal.target.name(),
                r.size
            );
            let staged = Arc::new(Staged {
                key: r.key.clone(),
                file: Arc::new(file),
                content: tokio::sync::RwLock::new(()),
                upload: tokio::sync::Mutex::new(()),
                state: std::sync::Mutex::new(StagedState {
                    ino: None,
                    target: r.journal.target.clone(),
                    size: r.size,
                    mtime,
                    explicit_mtime: r.journal.mtime.is_some(),
                    dirty: true,
                    discarded: false,
                    created_here: false,
                    keep_until: None,
                    session_id: r.journal.session_id.clone(),
                    unconfirmed: Vec::new(),
                    // Not kept across a restart: a temporary file stays in the trash then.
                    replaced_temporaries: Vec::new(),
                }),
                journal: tokio::sync::Mutex::new(Some(r.journal)),
            });
            self.writes.inner().entries.insert(r.key.clone(), staged);
            self.writes.schedule(&r.key, Duration::ZERO);
            n += 1;
        }
        n
    }

    /// When the mount ends: uploads everything still staged, a few at a
    /// time, and returns how many could not be uploaded (they stay staged for the next
    /// mount, synced to disk first).
    pub async fn finish_uploads(self: &Arc<Self>) -> usize {
        let pending = self.pending_entries();
        if pending.is_empty() {
            return 0;
        }
        log::info!("finishing {} pending upload(s)", pending.len());
        let slots = Arc::new(UploadSlots::new());
        let mut tasks = JoinSet::new();
        for staged in pending {
            let fs = self.clone();
            let slots = slots.clone();
            tasks.spawn(async move {
                let size = staged.state().size;
                let _slot = slots.acquire(size).await;
                let Err(e) = fs.upload_staged(&staged).await else {
                    return Ok(());
                };
                log::error!(
                    "'{}' could not be uploaded ({e}); it stays staged for the next mount",
                    staged.state().target.name()
                );
                // Safe on disk before the daemon exits, not only in the page cache.
                if let Err(e) = fs.writes.sync_now(&staged).await {
                    log::error!("staged upload {}: syncing it to disk: {e}", staged.key);
                }
                Err(())
            });
        }
        let mut failed = 0;
        while let Some(r) = tasks.join_next().await {
            if !matches!(r, Ok(Ok(()))) {
                failed += 1;
            }
        }
        failed
    }
}

/// The right to run one upload from the queue: [`UPLOADS_IN_PARALLEL`] at once, of which
/// at most [`LARGE_UPLOADS_IN_PARALLEL`] large ones.
struct UploadSlots {
    any: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

impl UploadSlots {
    fn new() -> UploadSlots {
        UploadSlots {
            any: Arc::new(Semaphore::new(UPLOADS_IN_PARALLEL)),
            large: Arc::new(Semaphore::new(LARGE_UPLOADS_IN_PARALLEL)),
        }
    }

    /// Waits for a slot for an upload of `size` bytes (the large slot first, so that large
    /// uploads waiting for one leave the others to small files).
    async fn acquire(&self, size: u64) -> Option<Vec<OwnedSemaphorePermit>> {
        let mut permits = Vec::with_capacity(2);
        if size >= MIN_CHUNKED_SIZE {
            permits.push(self.large.clone().acquire_owned().await.ok()?);
        }
        permits.push(self.any.clone().acquire_owned().await.ok()?);
        Some(permits)
    }
}
