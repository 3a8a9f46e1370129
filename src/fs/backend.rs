//! The seam between the filesystem and Box: [`BoxApi`] is every call `fs` makes to Box
//! (listings, items, folders, web links, renames and moves, deletions, the trash (restores,
//! purges), uploads, download sources for ranged downloads, earlier versions, locks, shared
//! links, metadata, the event stream), with
//! `box_client`'s own types and errors. [`box_client::Client`] implements it by calling
//! itself; [`faults::FaultyBox`] wraps any implementation and fails chosen calls, so that a
//! failure can be replayed exactly. [`BoxFs`](super::BoxFs) holds an `Arc<dyn BoxApi>`
//! and knows nothing of HTTP. Each call a `Client` makes through it has the priority of the
//! task making it ([`priority`]: background work yields to calls a process waits on).
//!
//! The trait follows the client's names and arguments, so that a call site reads the same
//! through it; its own types are [`DownloadBody`], the content of a download as a stream of
//! chunks, because the client's `Download` wraps an HTTP response that nothing but the
//! client can make (and a wrapper must be able to cut a body short), and [`ContentSource`],
//! the client's [`DownloadSource`] (one file's shared download URL) as a trait object.

pub mod faults;
pub mod priority;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::{Map, Value};

use box_client::error::BoxResult;
use box_client::events::{
    EventPage, EventStream, EventStreamOptions, EventsQuery, LongPollMessage, StreamType,
};
use box_client::files::{ByteRange, Download, DownloadOptions, DownloadSource, LockOptions};
use box_client::folders::{ListOptions, SharedLinkSettings};
use box_client::metadata::{ItemRef, MetadataInstance, MetadataPatch, MetadataTemplate};
use box_client::reachability::ReachabilityState;
use box_client::stats::RequestStats;
use box_client::types::{FileVersion, Item, Items, User};
use box_client::upload::UploadOptions;
use box_client::web_links::WebLinkUpdate;
use box_client::{Client, PacerStats};

/// File content on its way from Box: the download server's etag and the body as a stream
/// of chunks (exactly the bytes asked for, as [`Download::into_stream`] yields them).
pub struct DownloadBody {
    etag: Option<String>,
    chunks: BoxStream<'static, BoxResult<Bytes>>,
}

impl std::fmt::Debug for DownloadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadBody")
            .field("etag", &self.etag)
            .finish_non_exhaustive()
    }
}

impl DownloadBody {
    pub fn new(etag: Option<String>, chunks: BoxStream<'static, BoxResult<Bytes>>) -> Self {
        DownloadBody { etag, chunks }
    }

    /// The content's etag as the download server sent it (Box sends the version's SHA1).
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The body as a stream of chunks.
    pub fn into_stream(self) -> BoxStream<'static, BoxResult<Bytes>> {
        self.chunks
    }

    /// The whole body in memory.
    pub async fn bytes(self) -> BoxResult<Bytes> {
        let mut out = BytesMut::new();
        let mut chunks = self.chunks;
        while let Some(chunk) = chunks.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }

    /// The same download with its chunks passed through `f` (see [`faults`]).
    pub fn map_stream(
        self,
        f: impl FnOnce(BoxStream<'static, BoxResult<Bytes>>) -> BoxStream<'static, BoxResult<Bytes>>,
    ) -> DownloadBody {
        DownloadBody {
            etag: self.etag,
            chunks: f(self.chunks),
        }
    }
}

impl From<Download> for DownloadBody {
    fn from(d: Download) -> Self {
        let etag = d.etag().map(str::to_string);
        DownloadBody::new(etag, d.into_stream().boxed())
    }
}

/// Every call the filesystem makes to Box. Arguments and answers are `box_client`'s; see
/// the [`Client`] method of the same name for what each does.
/// One file's content (its current version, or one version) for any number of ranged
/// downloads, in parallel if need be. The client's [`DownloadSource`] resolves the download
/// URL once, shares it, resolves it again when it expires, and retries and resumes a body
/// cut short under the client's policy: what comes out of it failed for good.
#[async_trait]
pub trait ContentSource: Send + Sync {
    /// `range` of the content, or all of it.
    async fn download(&self, range: Option<ByteRange>) -> BoxResult<DownloadBody>;
    /// How many times the download URL was resolved so far.
    fn resolutions(&self) -> u64;
}

#[async_trait]
impl ContentSource for DownloadSource {
    async fn download(&self, range: Option<ByteRange>) -> BoxResult<DownloadBody> {
        DownloadSource::download(self, range)
            .await
            .map(DownloadBody::from)
    }
    fn resolutions(&self) -> u64 {
        DownloadSource::resolutions(self)
    }
}

#[async_trait]
pub trait BoxApi: Send + Sync {
    // ---- users -------------------------------------------------------------------------
    async fn me(&self) -> BoxResult<User>;
    async fn me_with_fields(&self, fields: &[&str]) -> BoxResult<User>;

    // ---- items and listings ------------------------------------------------------------
    async fn file_with_fields(&self, file_id: &str, fields: &[&str]) -> BoxResult<Item>;
    async fn folder_with_fields(&self, folder_id: &str, fields: &[&str]) -> BoxResult<Item>;
    async fn folder_items_page(&self, folder_id: &str, opts: &ListOptions) -> BoxResult<Items>;

    // ---- the tree ----------------------------------------------------------------------
    async fn create_folder(&self, parent_id: &str, name: &str) -> BoxResult<Item>;
    async fn rename_file(&self, file_id: &str, name: &str) -> BoxResult<Item>;
    async fn move_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item>;
    async fn rename_folder(&self, folder_id: &str, name: &str) -> BoxResult<Item>;
    async fn move_folder(
        &self,
        folder_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item>;
    async fn delete_file(&self, file_id: &str, if_match_etag: Option<&str>) -> BoxResult<()>;
    async fn delete_folder(
        &self,
        folder_id: &str,
        recursive: bool,
        if_match_etag: Option<&str>,
    ) -> BoxResult<()>;
    async fn restore_file(
        &self,
        file_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item>;
    async fn restore_folder(
        &self,
        folder_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item>;
    /// One page of Box's trash (the items deleted themselves, not what they held).
    async fn trash_items_page(&self, opts: &ListOptions) -> BoxResult<Items>;
    /// Deletes a trashed file for good.
    async fn purge_file(&self, file_id: &str) -> BoxResult<()>;
    /// Deletes a trashed folder, and all it held, for good.
    async fn purge_folder(&self, folder_id: &str) -> BoxResult<()>;
    /// Deletes a trashed web link for good.
    async fn purge_web_link(&self, web_link_id: &str) -> BoxResult<()>;

    /// A web link (Box's bookmark) as an [`Item`] of kind `web_link`.
    async fn web_link_with_fields(&self, web_link_id: &str, fields: &[&str]) -> BoxResult<Item>;
    /// Renames, moves or re-points a web link in one request.
    async fn update_web_link(&self, web_link_id: &str, changes: &WebLinkUpdate) -> BoxResult<Item>;
    async fn delete_web_link(&self, web_link_id: &str) -> BoxResult<()>;
    async fn restore_web_link(
        &self,
        web_link_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item>;

    // ---- content -----------------------------------------------------------------------
    /// Uploads the file at `source` as a new file (a staged copy: never held in memory).
    async fn upload_file(
        &self,
        parent_id: &str,
        name: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item>;
    async fn upload_new_version(
        &self,
        file_id: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item>;
    async fn resume_upload(
        &self,
        session_id: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item>;
    async fn download_with(&self, file_id: &str, opts: &DownloadOptions)
        -> BoxResult<DownloadBody>;
    /// One file's content for any number of ranged downloads, sharing one download URL.
    fn download_source(&self, file_id: &str, version: Option<&str>) -> Arc<dyn ContentSource>;
    /// A file's earlier versions, newest first (Box leaves the current one out).
    async fn file_versions(&self, file_id: &str) -> BoxResult<Vec<FileVersion>>;
    /// Makes an earlier version current; Box answers the new version it made of it.
    async fn promote_file_version(&self, file_id: &str, version_id: &str)
        -> BoxResult<FileVersion>;

    // ---- locks and shared links --------------------------------------------------------
    async fn lock_file_with_fields(
        &self,
        file_id: &str,
        opts: &LockOptions,
        fields: &[&str],
    ) -> BoxResult<Item>;
    async fn unlock_file_with_fields(&self, file_id: &str, fields: &[&str]) -> BoxResult<Item>;
    async fn share_item_with_fields(
        &self,
        item: &ItemRef,
        settings: &SharedLinkSettings,
        fields: &[&str],
    ) -> BoxResult<Item>;
    async fn unshare_item_with_fields(&self, item: &ItemRef, fields: &[&str]) -> BoxResult<Item>;

    // ---- metadata ----------------------------------------------------------------------
    async fn metadata_list(&self, item: &ItemRef) -> BoxResult<Vec<MetadataInstance>>;
    async fn metadata_template(
        &self,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<MetadataTemplate>;
    async fn create_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
        values: &Map<String, Value>,
    ) -> BoxResult<MetadataInstance>;
    async fn update_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
        patch: &MetadataPatch,
    ) -> BoxResult<MetadataInstance>;
    async fn delete_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<()>;

    // ---- events ------------------------------------------------------------------------
    async fn latest_stream_position(&self, stream_type: StreamType) -> BoxResult<String>;
    /// One page of the user's events after `position` (at most 500: Box's largest page).
    async fn events_since(&self, position: &str) -> BoxResult<EventPage>;
    /// Whether Box still keeps the events after `position`: one long-poll with it, which
    /// Box answers at once with `out_of_date` when it does not (and `new_change` when there
    /// are events after it). `None` if the poll gave no answer within `wait`.
    async fn position_is_retained(&self, position: &str, wait: Duration)
        -> BoxResult<Option<bool>>;
    /// The long-polling feed the event follower reads (a task of the client's own).
    fn event_stream(&self, opts: EventStreamOptions) -> EventStream;

    /// What the requests sent so far came to (`boxfs status`).
    fn request_stats(&self) -> RequestStats;

    /// The pacer's figures (calls in the last minute against Box's limits, time waited,
    /// 429s), if calls are paced.
    fn pacer_stats(&self) -> Option<PacerStats> {
        None
    }

    /// Whether the pacing budget is tight: work nobody waits for should not start now.
    fn pacing_is_tight(&self) -> bool {
        false
    }

    /// Whether Box can be reached, if this backend notices (a client
    /// [`Client::detecting_offline`]): `None` when it does not.
    fn reachability(&self) -> Option<ReachabilityState> {
        None
    }

    /// One request sent even while Box is known to be out of reach: `Ok` once Box answered,
    /// and every other call is sent again (see [`box_client::reachability`]).
    async fn probe(&self) -> BoxResult<()> {
        Ok(())
    }
}

#[async_trait]
impl BoxApi for Client {
    async fn me(&self) -> BoxResult<User> {
        Client::me(&paced(self)).await
    }
    async fn me_with_fields(&self, fields: &[&str]) -> BoxResult<User> {
        Client::me_with_fields(&paced(self), fields).await
    }

    async fn file_with_fields(&self, file_id: &str, fields: &[&str]) -> BoxResult<Item> {
        Client::file_with_fields(&paced(self), file_id, fields).await
    }
    async fn folder_with_fields(&self, folder_id: &str, fields: &[&str]) -> BoxResult<Item> {
        Client::folder_with_fields(&paced(self), folder_id, fields).await
    }
    async fn folder_items_page(&self, folder_id: &str, opts: &ListOptions) -> BoxResult<Items> {
        Client::folder_items_page(&paced(self), folder_id, opts).await
    }

    async fn create_folder(&self, parent_id: &str, name: &str) -> BoxResult<Item> {
        Client::create_folder(&paced(self), parent_id, name).await
    }
    async fn rename_file(&self, file_id: &str, name: &str) -> BoxResult<Item> {
        Client::rename_file(&paced(self), file_id, name).await
    }
    async fn move_file(
        &self,
        file_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        Client::move_file(&paced(self), file_id, parent_id, name).await
    }
    async fn rename_folder(&self, folder_id: &str, name: &str) -> BoxResult<Item> {
        Client::rename_folder(&paced(self), folder_id, name).await
    }
    async fn move_folder(
        &self,
        folder_id: &str,
        parent_id: &str,
        name: Option<&str>,
    ) -> BoxResult<Item> {
        Client::move_folder(&paced(self), folder_id, parent_id, name).await
    }
    async fn delete_file(&self, file_id: &str, if_match_etag: Option<&str>) -> BoxResult<()> {
        Client::delete_file(&paced(self), file_id, if_match_etag).await
    }
    async fn delete_folder(
        &self,
        folder_id: &str,
        recursive: bool,
        if_match_etag: Option<&str>,
    ) -> BoxResult<()> {
        Client::delete_folder(&paced(self), folder_id, recursive, if_match_etag).await
    }
    async fn restore_file(
        &self,
        file_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        Client::restore_file(&paced(self), file_id, name, parent_id).await
    }
    async fn restore_folder(
        &self,
        folder_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        Client::restore_folder(&paced(self), folder_id, name, parent_id).await
    }
    async fn trash_items_page(&self, opts: &ListOptions) -> BoxResult<Items> {
        Client::trash_items_page(&paced(self), opts).await
    }
    async fn purge_file(&self, file_id: &str) -> BoxResult<()> {
        Client::purge_file(&paced(self), file_id).await
    }
    async fn purge_folder(&self, folder_id: &str) -> BoxResult<()> {
        Client::purge_folder(&paced(self), folder_id).await
    }
    async fn purge_web_link(&self, web_link_id: &str) -> BoxResult<()> {
        Client::purge_web_link(&paced(self), web_link_id).await
    }

    async fn web_link_with_fields(&self, web_link_id: &str, fields: &[&str]) -> BoxResult<Item> {
        Client::web_link(&paced(self), web_link_id, fields)
            .await
            .map(Item::from)
    }
    async fn update_web_link(&self, web_link_id: &str, changes: &WebLinkUpdate) -> BoxResult<Item> {
        Client::update_web_link(&paced(self), web_link_id, changes)
            .await
            .map(Item::from)
    }
    async fn delete_web_link(&self, web_link_id: &str) -> BoxResult<()> {
        Client::delete_web_link(&paced(self), web_link_id).await
    }
    async fn restore_web_link(
        &self,
        web_link_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
    ) -> BoxResult<Item> {
        Client::restore_web_link(&paced(self), web_link_id, name, parent_id)
            .await
            .map(Item::from)
    }

    async fn upload_file(
        &self,
        parent_id: &str,
        name: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        Client::upload_file(&paced(self), parent_id, name, source, opts).await
    }
    async fn upload_new_version(
        &self,
        file_id: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        Client::upload_new_version(&paced(self), file_id, source, opts).await
    }
    async fn resume_upload(
        &self,
        session_id: &str,
        source: PathBuf,
        opts: &UploadOptions,
    ) -> BoxResult<Item> {
        Client::resume_upload(&paced(self), session_id, source, opts).await
    }
    async fn download_with(
        &self,
        file_id: &str,
        opts: &DownloadOptions,
    ) -> BoxResult<DownloadBody> {
        Client::download_with(&paced(self), file_id, opts)
            .await
            .map(DownloadBody::from)
    }
    fn download_source(&self, file_id: &str, version: Option<&str>) -> Arc<dyn ContentSource> {
        Arc::new(Client::download_source(&paced(self), file_id, version))
    }
    async fn file_versions(&self, file_id: &str) -> BoxResult<Vec<FileVersion>> {
        Client::file_versions(&paced(self), file_id).await
    }
    async fn promote_file_version(
        &self,
        file_id: &str,
        version_id: &str,
    ) -> BoxResult<FileVersion> {
        Client::promote_file_version(&paced(self), file_id, version_id).await
    }

    async fn lock_file_with_fields(
        &self,
        file_id: &str,
        opts: &LockOptions,
        fields: &[&str],
    ) -> BoxResult<Item> {
        Client::lock_file_with_fields(&paced(self), file_id, opts, fields).await
    }
    async fn unlock_file_with_fields(&self, file_id: &str, fields: &[&str]) -> BoxResult<Item> {
        Client::unlock_file_with_fields(&paced(self), file_id, fields).await
    }
    async fn share_item_with_fields(
        &self,
        item: &ItemRef,
        settings: &SharedLinkSettings,
        fields: &[&str],
    ) -> BoxResult<Item> {
        Client::share_item_with_fields(&paced(self), item, settings, fields).await
    }
    async fn unshare_item_with_fields(&self, item: &ItemRef, fields: &[&str]) -> BoxResult<Item> {
        Client::unshare_item_with_fields(&paced(self), item, fields).await
    }

    async fn metadata_list(&self, item: &ItemRef) -> BoxResult<Vec<MetadataInstance>> {
        Client::metadata_list(&paced(self), item).await
    }
    async fn metadata_template(
        &self,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<MetadataTemplate> {
        Client::metadata_template(&paced(self), scope, template_key).await
    }
    async fn create_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
        values: &Map<String, Value>,
    ) -> BoxResult<MetadataInstance> {
        Client::create_metadata(&paced(self), item, scope, template_key, values).await
    }
    async fn update_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
        patch: &MetadataPatch,
    ) -> BoxResult<MetadataInstance> {
        Client::update_metadata(&paced(self), item, scope, template_key, patch).await
    }
    async fn delete_metadata(
        &self,
        item: &ItemRef,
        scope: &str,
        template_key: &str,
    ) -> BoxResult<()> {
        Client::delete_metadata(&paced(self), item, scope, template_key).await
    }

    async fn latest_stream_position(&self, stream_type: StreamType) -> BoxResult<String> {
        Client::latest_stream_position(&paced(self), stream_type).await
    }
    async fn events_since(&self, position: &str) -> BoxResult<EventPage> {
        let query = EventsQuery {
            limit: Some(500),
            ..EventsQuery::since(position)
        };
        Client::get_events(&paced(self), &query).await
    }
    async fn position_is_retained(
        &self,
        position: &str,
        wait: Duration,
    ) -> BoxResult<Option<bool>> {
        let client = paced(self);
        let server = client.long_poll_options(StreamType::All).await?;
        Ok(
            match client.long_poll(&server, position, Some(wait)).await? {
                LongPollMessage::Other(m) if m == "out_of_date" => Some(false),
                LongPollMessage::NewChange => Some(true),
                LongPollMessage::Reconnect
                | LongPollMessage::TimedOut
                | LongPollMessage::Other(_) => None,
            },
        )
    }
    fn event_stream(&self, opts: EventStreamOptions) -> EventStream {
        Client::event_stream(&paced(self), opts)
    }

    fn request_stats(&self) -> RequestStats {
        Client::request_stats(self)
    }
    fn pacer_stats(&self) -> Option<PacerStats> {
        Some(Client::pacer_stats(self))
    }
    fn pacing_is_tight(&self) -> bool {
        Client::pacing_is_tight(self)
    }
    fn reachability(&self) -> Option<ReachabilityState> {
        Client::reachability(self).map(|r| r.snapshot())
    }
    async fn probe(&self) -> BoxResult<()> {
        Client::probe(self).await
    }
}

/// `client` with the priority of the task calling ([`priority::current`]).
fn paced(client: &Client) -> Cow<'_, Client> {
    let priority = priority::current();
    if client.priority() == priority {
        Cow::Borrowed(client)
    } else {
        Cow::Owned(client.with_priority(priority))
    }
}
