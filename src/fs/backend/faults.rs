//! Deterministic failures between the filesystem and Box. [`FaultyBox`] wraps a
//! [`BoxApi`] and fails the calls its [`Rule`]s name: "the 2nd `upload_new_version` from now
//! answers 503", "the 1st `create_folder` is carried out by Box but its answer is lost",
//! "the 1st ranged download's body breaks after 100 bytes". Calls are counted per kind
//! from the moment the rules are armed, so the same rules and the same operations give the
//! same failures, unlike the emulator's random `--fault-rate`. Every failure it injects is
//! logged ([`FaultyBox::injected`]) so a test can say what it did.
//!
//! The failures are what the filesystem sees after the client gave up: the client retries
//! 429, 5xx and dropped connections itself, so an injected 503 is "still 503 after the
//! retries". The event stream is passed through untouched (it is a task of the client's own
//! that reports its trouble as items; the emulator's knobs break it).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::{BoxApi, ContentSource, DownloadBody};
use box_client::error::{ApiErrorInfo, BoxError, BoxResult};
use box_client::events::{EventPage, EventStream, EventStreamOptions, StreamType};
use box_client::files::{ByteRange, DownloadOptions, LockOptions};
use box_client::folders::{ListOptions, SharedLinkSettings};
use box_client::metadata::{ItemRef, MetadataInstance, MetadataPatch, MetadataTemplate};
use box_client::stats::RequestStats;
use box_client::types::{FileVersion, Item, Items, User};
use box_client::upload::UploadOptions;
use box_client::web_links::WebLinkUpdate;

/// One kind of call: one per [`BoxApi`] method that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Call {
    Me,
    MeWithFields,
    FileWithFields,
    FolderWithFields,
    FolderItemsPage,
    CreateFolder,
    RenameFile,
    MoveFile,
    RenameFolder,
    MoveFolder,
    DeleteFile,
    DeleteFolder,
    RestoreFile,
    RestoreFolder,
    TrashItemsPage,
    PurgeFile,
    PurgeFolder,
    PurgeWebLink,
    WebLinkWithFields,
    UpdateWebLink,
    DeleteWebLink,
    RestoreWebLink,
    UploadFile,
    UploadNewVersion,
    ResumeUpload,
    DownloadWith,
    /// One download of a [`ContentSource`] (the reader's ranged GETs).
    SourceDownload,
    FileVersions,
    PromoteFileVersion,
    LockFile,
    UnlockFile,
    ShareItem,
    UnshareItem,
    MetadataList,
    MetadataTemplate,
    CreateMetadata,
    UpdateMetadata,
    DeleteMetadata,
    LatestStreamPosition,
    EventsSince,
    PositionIsRetained,
}

impl Call {
    /// Every kind, in declaration order.
    pub const ALL: &'static [Call] = &[
        Call::Me,
        Call::MeWithFields,
        Call::FileWithFields,
        Call::FolderWithFields,
        Call::FolderItemsPage,
        Call::CreateFolder,
        Call::RenameFile,
        Call::MoveFile,
        Call::RenameFolder,
        Call::MoveFolder,
        Call::DeleteFile,
        Call::DeleteFolder,
        Call::RestoreFile,
        Call::RestoreFolder,
        Call::TrashItemsPage,
        Call::PurgeFile,
        Call::PurgeFolder,
        Call::PurgeWebLink,
        Call::WebLinkWithFields,
        Call::UpdateWebLink,
        Call::DeleteWebLink,
        Call::RestoreWebLink,
        Call::UploadFile,
        Call::UploadNewVersion,
        Call::ResumeUpload,
        Call::DownloadWith,
        Call::SourceDownload,
        Call::FileVersions,
        Call::PromoteFileVersion,
        Call::LockFile,
        Call::UnlockFile,
        Call::ShareItem,
        Call::UnshareItem,
        Call::MetadataList,
        Call::MetadataTemplate,
        Call::CreateMetadata,
        Call::UpdateMetadata,
        Call::DeleteMetadata,
        Call::LatestStreamPosition,
        Call::EventsSince,
        Call::PositionIsRetained,
    ];

    /// Whether the call changes something on Box (a lost answer then leaves it changed).
    pub fn changes_box(self) -> bool {
        matches!(
            self,
            Call::CreateFolder
                | Call::RenameFile
                | Call::MoveFile
                | Call::RenameFolder
                | Call::MoveFolder
                | Call::DeleteFile
                | Call::DeleteFolder
                | Call::RestoreFile
                | Call::RestoreFolder
                | Call::PurgeFile
                | Call::PurgeFolder
                | Call::PurgeWebLink
                | Call::PromoteFileVersion
                | Call::UpdateWebLink
                | Call::DeleteWebLink
                | Call::RestoreWebLink
                | Call::UploadFile
                | Call::UploadNewVersion
                | Call::ResumeUpload
                | Call::LockFile
                | Call::UnlockFile
                | Call::ShareItem
                | Call::UnshareItem
                | Call::CreateMetadata
                | Call::UpdateMetadata
                | Call::DeleteMetadata
        )
    }

    /// Whether the call answers with a body that [`Fault::CutAfter`] can cut.
    pub fn is_download(self) -> bool {
        matches!(self, Call::DownloadWith | Call::SourceDownload)
    }
}

/// What a failed call answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Box answered `status` with error `code` (as [`BoxError::Api`]).
    Status { status: u16, code: String },
    /// No answer came (as [`BoxError::Network`]).
    Network,
}

impl Failure {
    pub fn status(status: u16, code: &str) -> Failure {
        Failure::Status {
            status,
            code: code.to_string(),
        }
    }

    /// 500 `internal_server_error`.
    pub fn server_error() -> Failure {
        Failure::status(500, "internal_server_error")
    }

    /// 503 `unavailable`.
    pub fn unavailable() -> Failure {
        Failure::status(503, "unavailable")
    }

    /// 429 `rate_limit_exceeded` (what is left when the client's waits ran out).
    pub fn rate_limited() -> Failure {
        Failure::status(429, "rate_limit_exceeded")
    }

    /// 412 `precondition_failed`: an `If-Match` that no longer holds.
    pub fn precondition_failed() -> Failure {
        Failure::status(412, "precondition_failed")
    }

    fn error(&self, call: Call, nth: u64) -> BoxError {
        match self {
            Failure::Network => {
                BoxError::Network(format!("injected: call {nth} of {call:?} got no answer"))
            }
            Failure::Status { status, code } => BoxError::Api(Box::new(ApiErrorInfo {
                status: *status,
                code: code.clone(),
                message: format!("injected failure of call {nth} of {call:?}"),
                request_id: None,
                context_info: None,
                retry_after: None,
                method: "INJECTED".to_string(),
                url: format!("{call:?}"),
            })),
        }
    }
}

/// How a call named by a [`Rule`] fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call never reaches Box; the caller sees `Failure`.
    Fail(Failure),
    /// Box carries the call out but its answer is lost; the caller sees `Failure`.
    FailAfter(Failure),
    /// A download's body ends with a network error after this many bytes (a connection
    /// dropped midway). On any other call it is `Fail(Failure::Network)`.
    CutAfter(u64),
}

/// "Calls `nth` to `nth + times - 1` of kind `call` (counted from 1 since the rules were
/// armed) fail with `fault`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub call: Call,
    pub nth: u64,
    pub times: u64,
    pub fault: Fault,
}

impl Rule {
    /// The `nth` call of kind `call` fails with `fault`.
    pub fn new(call: Call, nth: u64, fault: Fault) -> Rule {
        Rule {
            call,
            nth: nth.max(1),
            times: 1,
            fault,
        }
    }

    /// The `nth` call of kind `call` never reaches Box and answers `failure`.
    pub fn fail(call: Call, nth: u64, failure: Failure) -> Rule {
        Rule::new(call, nth, Fault::Fail(failure))
    }

    /// Box carries out the `nth` call of kind `call`, but the caller sees `failure`.
    pub fn fail_after(call: Call, nth: u64, failure: Failure) -> Rule {
        Rule::new(call, nth, Fault::FailAfter(failure))
    }

    /// The body of the `nth` download of kind `call` breaks off after `bytes` bytes.
    pub fn cut_download(call: Call, nth: u64, bytes: u64) -> Rule {
        Rule::new(call, nth, Fault::CutAfter(bytes))
    }

    /// This many consecutive calls fail, from the `nth` on (enough to outlast a retry).
    pub fn times(mut self, times: u64) -> Rule {
        self.times = times.max(1);
        self
    }

    fn applies(&self, call: Call, nth: u64) -> bool {
        self.call == call && nth >= self.nth && nth - self.nth < self.times
    }
}

/// One failure [`FaultyBox`] injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub call: Call,
    /// Which call of its kind it was (from 1, since the rules were armed).
    pub nth: u64,
    pub fault: Fault,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    counts: HashMap<Call, u64>,
    /// Of those, the calls made with background priority ([`super::priority`]).
    background: HashMap<Call, u64>,
    injected: Vec<Injected>,
}

/// A [`BoxApi`] that fails the calls its rules name and passes every other call to the
/// one it wraps. Clones share the rules and counts, so a test keeps one to arm while the
/// filesystem holds another.
#[derive(Clone)]
pub struct FaultyBox {
    inner: Arc<dyn BoxApi>,
    state: Arc<Mutex<State>>,
}

impl FaultyBox {
    /// Passes everything through until rules are armed.
    pub fn new(inner: Arc<dyn BoxApi>) -> FaultyBox {
        FaultyBox {
            inner,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the rules and starts counting calls from zero.
    pub fn arm(&self, rules: Vec<Rule>) {
        let mut st = self.state();
        st.rules = rules;
        st.counts.clear();
        st.background.clear();
        st.injected.clear();
    }

    /// Drops the rules (calls pass through again) and returns what was injected since
    /// they were armed.
    pub fn disarm(&self) -> Vec<Injected> {
        let mut st = self.state();
        st.rules.clear();
        st.counts.clear();
        st.background.clear();
        std::mem::take(&mut st.injected)
    }

    /// The failures injected since the rules were armed.
    pub fn injected(&self) -> Vec<Injected> {
        self.state().injected.clone()
    }

    /// How many calls of kind `call` were made since the rules were armed.
    pub fn calls(&self, call: Call) -> u64 {
        self.state().counts.get(&call).copied().unwrap_or(0)
    }

    /// How many of them had background priority (work nobody waited for).
    pub fn background_calls(&self, call: Call) -> u64 {
        self.state().background.get(&call).copied().unwrap_or(0)
    }

    /// Counts a call of kind `call` and returns the fault it gets, if any.
    fn next(&self, call: Call) -> Option<(u64, Fault)> {
        let mut st = self.state();
        if super::priority::current() == box_client::Priority::Background {
            *st.background.entry(call).or_insert(0) += 1;
        }
        let count = st.counts.entry(call).or_insert(0);
        *count += 1;
        let nth = *count;
        let fault = st
            .rules
            .iter()
            .find(|r| r.applies(call, nth))
            .map(|r| r.fault.clone())?;
        st.injected.push(Injected {
            call,
            nth,
            fault: fault.clone(),
        });
        Some((nth, fault))
    }

    /// Runs `request` (a call of kind `call`) under the rules.
    async fn run<T>(
        &self,
        call: Call,
        request: impl Future<Output = BoxResult<T>> + Send,
    ) -> BoxResult<T> {
        match self.next(call) {
            None => request.await,
            Some((nth, Fault::Fail(f))) => Err(f.error(call, nth)),
            Some((nth, Fault::FailAfter(f))) => {
                let _ = request.await;
                Err(f.error(call, nth))
            }
            Some((nth, Fault::CutAfter(_))) => Err(Failure::Network.error(call, nth)),
        }
    }

    /// Runs a download under the rules: [`Fault::CutAfter`] cuts its body.
    async fn run_download(
        &self,
        call: Call,
        request: impl Future<Output = BoxResult<DownloadBody>> + Send,
    ) -> BoxResult<DownloadBody> {
        match self.next(call) {
            Some((nth, Fault::CutAfter(limit))) => {
                let body = request.await?;
                Ok(body.map_stream(|chunks| cut_after(chunks, limit, call, nth)))
            }
            Some((nth, Fault::Fail(f))) => Err(f.error(call, nth)),
            Some((nth, Fault::FailAfter(f))) => {
                let _ = request.await;
                Err(f.error(call, nth))
            }
            None => request.await,
        }
    }
}

/// A [`ContentSource`] whose downloads count as [`Call::SourceDownload`] under its
/// [`FaultyBox`]'s rules.
struct FaultySource {
    faults: FaultyBox,
    inner: Arc<dyn ContentSource>,
}

#[async_trait]
impl ContentSource for FaultySource {
    async fn download(&self, range: Option<ByteRange>) -> BoxResult<DownloadBody> {
        let request = self.inner.download(range);
        self.faults
            .run_download(Call::SourceDownload, request)
            .await
    }
    fn resolutions(&self) -> u64 {
        self.inner.resolutions()
    }
}

/// `chunks` up to `limit` bytes, then a network error instead of the rest (none if the
/// body is no longer).
fn cut_after(
    chunks: BoxStream<'static, BoxResult<Bytes>>,
    limit: u64,
    call: Call,
    nth: u64,
) -> BoxStream<'static, BoxResult<Bytes>> {
    chunks
        .scan((limit, false), move |(left, broken), chunk| {
            if *broken {
                return futures_util::future::ready(None);
            }
            let mut out: Vec<BoxResult<Bytes>> = Vec::with_capacity(2);
            match chunk {
                Ok(chunk) if chunk.len() as u64 <= *left => {
                    *left -= chunk.len() as u64;
                    out.push(Ok(chunk));
                }
                Ok(mut chunk) => {
                    // The part before the break arrives; the break comes next.
                    chunk.truncate(*left as usize);
                    if !chunk.is_empty() {
                        out.push(Ok(chunk));
                    }
                    out.push(Err(Failure::Network.error(call, nth)));
                    *left = 0;
                    *broken = true;
                }
                Err(e) => {
                    out.push(Err(e));
                    *broken = true;
                }
            }
            futures_util::future::ready(Some(stream::iter(out)))
        })
        .flatten()
        .boxed()
}

#[async_trait]
impl BoxApi for FaultyBox {
    async fn me(&self) -> BoxResult<User> {
        self.run(Call::Me, self.inner.me()).await
    }
    async fn me_with_fields(&self, fields: &[&str]) -> BoxResult<User> {
        self.run(Call::MeWithFields, self.inner.me_with_fields(fields))
            .await
    }

    async fn file_with_fields(&self, file_id: &str, fields: &[&str]) -> BoxResult<Item> {
        let request = self.inner.file_with_fields(file_id, fields);
        self.run(Call::FileWithFields, request).await
    }
    async fn folder_with_fields(&self, folder_id: &str, fields: &[&str]) -> BoxResult<Item> {
        let request = self.inner.folder_with_fields(folder_id, fields);
        self.run(Call::FolderWithFields, request).await
    }
    async fn folder_items_page(&self, folder_id: &str, opts: &ListOptions) -> BoxResult<Items> {
        let request = self.inner.folder_items_page(folder_id, opts);
        self.run(Call::FolderItemsPage, request).await
    }

    async fn create_folder(&self, parent_id: &str, name: &str) -> BoxResult<Item> {
        let request = self.inner.create_folder(parent_id, name);
        self.run(Call::CreateFolder, request).await
    }
    async fn rename_file(&self, file_id: &str, name: &str) -> BoxResult<Item> {
        let request = self.inner.rename_file(file_id, name);
        self.run(Call::RenameFile, request).await
    }
    async fn move_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        let request = self.inner.move_file(file_id, parent_id, name);
        self.run(Call::MoveFile, request).await
    }
    async fn rename_folder(&self, folder_id: &str, name: &str) -> BoxResult<Item> {
        let request = self.inner.rename_folder(folder_id, name);
        self.run(Call::RenameFolder, request).await
    }
    async fn move_folder(
        &self,
        folder_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        let request = self.inner.move_folder(folder_id, parent_id, name);
        self.run(Call::MoveFolder, request).await
    }
    async fn delete_file(&self, file_id: &str, if_match_etag: Option<&str>) -> BoxResult<()> {
        let request = self.inner.delete_file(file_id, if_match_etag);
        self.run(Call::DeleteFile, request).await
    }
    async fn delete_folder(
        &self,
        folder_id: &str,
        recursive: bool,
        if_match_etag: Option<&str>,
    ) -> BoxResult<()> {
        let request = self
            .inner
            .delete_folder(folder_id, recursive, if_match_etag);
        self.run(Call::DeleteFolder, request).await
    }
    async fn restore_file(
        &self,
        file_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        let request = self.inner.restore_file(file_id, name, parent_id);
        self.run(Call::RestoreFile, request).await
    }
    async fn restore_folder(
        &self,
        folder_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        let request = self.inner.restore_folder(folder_id, name, parent_id);
        self.run(Call::RestoreFolder, request).await
    }
    async fn trash_items_page(&self, opts: &ListOptions) -> BoxResult<Items> {
        let request = self.inner.trash_items_page(opts);
        self.run(Call::TrashItemsPage, request).await
    }
    async fn purge_file(&self, file_id: &str) -> BoxResult<()> {
        let request = self.inner.purge_file(file_id);
        self.run(Call::PurgeFile, request).await
    }
    async fn purge_folder(&self, folder_id: &str) -> BoxResult<()> {
        let request = self.inner.purge_folder(folder_id);
        self.run(Call::PurgeFolder, request).await
    }
    async fn purge_web_link(&self, web_link_id: &str) -> BoxResult<()> {
        let request = self.inner.purge_web_link(web_link_id);
        self.run(Call::PurgeWebLink, request).await
    }
    async fn web_link_with_fields(&self, web_link_id: &str, fields: &[&str]) -> BoxResult<Item> {
        let request = self.inner.web_link_with_fields(web_link_id, fields);
        self.run(Call::WebLinkWithFields, request).await
    }
    async fn update_web_link(&self, web_link_id: &str, changes: &WebLinkUpdate) -> BoxResult<Item> {
        let request = self.inner.update_web_link(web_link_id, changes);
        self.run(Call::UpdateWebLink, request).await
    }
    async fn delete_web_link(&self, web_link_id: &str) -> BoxResult<()> {
        let request = self.inner.delete_web_link(web_link_id);
        self.run(Call::DeleteWebLink, request).await
    }
    async fn restore_web_link(
        &self,
        web_link_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        let request = self.inner.restore_web_link(web_link_id, name, parent_id);
        self.run(Call::RestoreWebLink, request).await
    }

    async fn upload_file(
        &self,
        parent_id: &str,
        name: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        let request = self.inner.upload_file(parent_id, name, source, opts);
        self.run(Call::UploadFile, request).await
    }
    async fn upload_new_version(
        &self,
        file_id: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        let request = self.inner.upload_new_version(file_id, source, opts);
        self.run(Call::UploadNewVersion, request).await
    }
    async fn resume_upload(
        &self,
        session_id: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        let request = self.inner.resume_upload(session_id, source, opts);
        self.run(Call::ResumeUpload, request).await
    }
    async fn download_with(
        &self,
        file_id: &str,
        opts: &DownloadOptions,
    ) -> BoxResult<DownloadBody> {
        let request = self.inner.download_with(file_id, opts);
        self.run_download(Call::DownloadWith, request).await
    }
    fn download_source(&self, file_id: &str, version: Option<&str>) -> Arc<dyn ContentSource> {
        Arc::new(FaultySource {
            faults: self.clone(),
            inner: self.inner.download_source(file_id, version),
        })
    }
    async fn file_versions(&self, file_id: &str) -> BoxResult<Vec<FileVersion>> {
        let request = self.inner.file_versions(file_id);
        self.run(Call::FileVersions, request).await
    }
    async fn promote_file_version(
        &self,
        file_id: &str,
        version_id: &str,
    ) -> BoxResult<FileVersion> {
        let request = self.inner.promote_file_version(file_id, version_id);
        self.run(Call::PromoteFileVersion, request).await
    }

    async fn lock_file_with_fields(
        &self,
        file_id: &str,
        opts: &LockOptions,
        fields: &[&str],
    ) -> BoxResult<Item> {
        let request = self.inner.lock_file_with_fields(file_id, opts, fields);
        self.run(Call::LockFile, request).await
    }
    async fn unlock_file_with_fields(&self, file_id: &str, fields: &[&str]) -> BoxResult<Item> {
        let request = self.inner.unlock_file_with_fields(file_id, fields);
        self.run(Call::UnlockFile, request).await
    }
    async fn share_item_with_fields(
        &self,
        item: &ItemRef,
        settings: &SharedLinkSettings,
        fields: &[&str],
    ) -> BoxResult<Item> {
        let request = self.inner.share_item_with_fields(item, settings, fields);
        self.run(Call::ShareItem, request).await
    }
    async fn unshare_item_with_fields(&self, item: &ItemRef, fields: &[&str]) -> BoxResult<Item> {
        let request = self.inner.unshare_item_with_fields(item, fields);
        self.run(Call::UnshareItem, request).await
    }

    async fn metadata_list(&self, item: &ItemRef) -> BoxResult<Vec<MetadataInstance>> {
        let request = self.inner.metadata_list(item);
        self.run(Call::MetadataList, request).await
    }
    async fn metadata_template(
        &self,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<MetadataTemplate> {
        let request = self.inner.metadata_template(scope, template_key);
        self.run(Call::MetadataTemplate, request).await
    }
    async fn create_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
        values: &Map<String, Value>,
    ) -> BoxResult<MetadataInstance> {
        let request = self
            .inner
            .create_metadata(item, scope, template_key, values);
        self.run(Call::CreateMetadata, request).await
    }
    async fn update_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
        patch: &MetadataPatch,
    ) -> BoxResult<MetadataInstance> {
        let request = self.inner.update_metadata(item, scope, template_key, patch);
        self.run(Call::UpdateMetadata, request).await
    }
    async fn delete_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<()> {
        let request = self.inner.delete_metadata(item, scope, template_key);
        self.run(Call::DeleteMetadata, request).await
    }

    async fn latest_stream_position(&self, stream_type: StreamType) -> BoxResult<String> {
        let request = self.inner.latest_stream_position(stream_type);
        self.run(Call::LatestStreamPosition, request).await
    }
    async fn events_since(&self, position: &str) -> BoxResult<EventPage> {
        let request = self.inner.events_since(position);
        self.run(Call::EventsSince, request).await
    }
    async fn position_is_retained(
        &self,
        position: &str,
        wait: std::time::Duration,
    ) -> BoxResult<Option<bool>> {
        let request = self.inner.position_is_retained(position, wait);
        self.run(Call::PositionIsRetained, request).await
    }
    fn event_stream(&self, opts: EventStreamOptions) -> EventStream {
        self.inner.event_stream(opts)
    }

    fn request_stats(&self) -> RequestStats {
        self.inner.request_stats()
    }
    fn pacer_stats(&self) -> Option<box_client::PacerStats> {
        self.inner.pacer_stats()
    }
    fn pacing_is_tight(&self) -> bool {
        self.inner.pacing_is_tight()
    }
    fn reachability(&self) -> Option<box_client::reachability::ReachabilityState> {
        self.inner.reachability()
    }
    async fn probe(&self) -> BoxResult<()> {
        self.inner.probe().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> BoxStream<'static, BoxResult<Bytes>> {
        let owned: Vec<BoxResult<Bytes>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        stream::iter(owned).boxed()
    }

    /// The bytes a stream yields before it ends or fails, and whether it failed.
    async fn drain(mut s: BoxStream<'static, BoxResult<Bytes>>) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            match chunk {
                Ok(c) => out.extend_from_slice(&c),
                Err(e) => {
                    assert!(matches!(e, BoxError::Network(_)), "{e}");
                    // Nothing comes after the break.
                    assert!(s.next().await.is_none());
                    return (out, true);
                }
            }
        }
        (out, false)
    }

    #[tokio::test]
    async fn a_cut_body_yields_exactly_the_bytes_before_the_break() {
        let cut = |limit| {
            cut_after(
                body(&[b"abc", b"def", b"gh"]),
                limit,
                Call::SourceDownload,
                1,
            )
        };
        assert_eq!(drain(cut(0)).await, (vec![], true));
        assert_eq!(drain(cut(2)).await, (b"ab".to_vec(), true));
        assert_eq!(drain(cut(3)).await, (b"abc".to_vec(), true));
        assert_eq!(drain(cut(7)).await, (b"abcdefg".to_vec(), true));
        // A body no longer than the limit is not cut.
        assert_eq!(drain(cut(8)).await, (b"abcdefgh".to_vec(), false));
        assert_eq!(drain(cut(100)).await, (b"abcdefgh".to_vec(), false));
    }

    #[test]
    fn a_rule_names_calls_by_kind_and_count() {
        let r = Rule::fail(Call::UploadFile, 2, Failure::unavailable()).times(2);
        assert!(!r.applies(Call::UploadFile, 1));
        assert!(r.applies(Call::UploadFile, 2));
        assert!(r.applies(Call::UploadFile, 3));
        assert!(!r.applies(Call::UploadFile, 4));
        assert!(!r.applies(Call::UploadNewVersion, 2));
        // Counting starts at 1: a rule for the 0th call is the first call's.
        assert!(Rule::fail(Call::Me, 0, Failure::Network).applies(Call::Me, 1));
    }

    #[test]
    fn injected_errors_look_like_boxs() {
        let e = Failure::precondition_failed().error(Call::UploadNewVersion, 3);
        assert_eq!(e.status(), Some(412));
        assert_eq!(e.code(), Some("precondition_failed"));
        assert!(Failure::unavailable().error(Call::Me, 1).is_transient());
        assert!(matches!(
            Failure::Network.error(Call::Me, 1),
            BoxError::Network(_)
        ));
    }
}
