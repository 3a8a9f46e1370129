//! What a running mount says about itself (`boxfs status`): the account, the event stream,
//! the caches, the uploads, the API calls and the pinned content, gathered by the daemon from
//! the filesystem, the uploader, the events task's health, the pins and the client's request
//! counters, and sent as JSON over the control socket ([`crate::daemon::control`]). The same
//! types read the JSON back on the command line. Times are ages in seconds at the moment of the answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::fs::BoxFs;
use box_client::stats::RequestStats;
use box_client::PacerStats;

/// Who the mount is signed in as, and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub login: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub user_id: String,
    /// The API the mount talks to.
    pub api_url: String,
    /// The As-User the mount acts as.
    #[serde(default)]
    pub as_user: Option<String>,
    /// The Box folder shown at the mount point.
    pub root_folder_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventsStatus {
    /// `healthy`, `reconnecting` or `failed`.
    pub state: String,
    /// Seconds since Box last answered the stream (a long-poll answered, events fetched).
    pub since_last_answer: Option<f64>,
    /// Seconds since the last event arrived.
    pub since_last_event: Option<f64>,
    pub last_error: Option<String>,
    pub since_last_error: Option<f64>,
    pub events: u64,
    pub errors: u64,
    pub outages: u64,
    pub revalidations: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStatus {
    /// Files and folders in the metadata cache, and its bound.
    pub inodes: u64,
    pub inode_limit: u64,
    /// Bytes in the content cache, and its bound (none without a content cache).
    pub content_bytes: Option<u64>,
    pub content_limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningUpload {
    pub name: String,
    pub size: u64,
    /// Bytes Box has confirmed.
    pub done: u64,
    pub elapsed: f64,
    /// Bytes per second so far.
    pub rate: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadsStatus {
    /// Files whose data still has to reach Box (the running ones included), and bytes.
    pub pending_files: u64,
    pub pending_bytes: u64,
    pub running: Vec<RunningUpload>,
    /// Since the mount started.
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
}

impl UploadsStatus {
    /// Bytes Box confirmed of the uploads running now.
    pub fn running_done(&self) -> u64 {
        self.running.iter().map(|u| u.done).sum()
    }

    /// Bytes per second of the uploads running now, together.
    pub fn running_rate(&self) -> f64 {
        self.running.iter().map(|u| u.rate).sum()
    }
}

/// The read budget all open files share (memory for read-ahead and fetched parts, ranged GETs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadsStatus {
    /// Open files reading (holding parts or fetching) now.
    pub active_readers: u64,
    /// Bytes they hold or are fetching, and the bound.
    pub memory_held: u64,
    pub memory_limit: u64,
    /// Ranged GETs in flight, and the bound.
    pub requests_in_flight: u64,
    pub connection_limit: u64,
}

/// One pinned item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PinnedItemStatus {
    pub id: String,
    /// `file` or `folder`.
    pub kind: String,
    /// Below the mount point (`""` for its root); absent while the item is not found yet.
    pub path: Option<String>,
    /// Files below it, and their bytes, as of its last walk.
    pub files: u64,
    pub bytes: u64,
    /// Walked since the mount started.
    pub walked: bool,
}

/// A file downloading for the pins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PinDownloadStatus {
    pub name: String,
    pub size: u64,
    pub done: u64,
}

/// The last pin refused for want of disk space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PinRefusalStatus {
    pub path: String,
    pub needed: u64,
    pub available: u64,
    pub keep_free: u64,
}

/// Pinned ("available offline") content: what is pinned, and how far its download is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OfflineStatus {
    pub items: Vec<PinnedItemStatus>,
    /// Files kept for the pins, and those wholly in the cache; the same in bytes.
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub downloading: Vec<PinDownloadStatus>,
    /// Files waiting for a download slot.
    pub waiting: u64,
    /// Walks and downloads that failed since the mount started, and the last one.
    pub failures: u64,
    pub last_failure: Option<String>,
    pub refused: Option<PinRefusalStatus>,
    /// Bytes of pinned content in the cache (not counted against its bound).
    pub pinned_bytes: Option<u64>,
}

impl OfflineStatus {
    fn of(fs: &BoxFs) -> OfflineStatus {
        let p = fs.pin_status();
        OfflineStatus {
            items: p
                .items
                .into_iter()
                .map(|i| PinnedItemStatus {
                    id: i.box_id,
                    kind: i.kind.box_type().into(),
                    path: i.path,
                    files: i.files,
                    bytes: i.bytes,
                    walked: i.walked,
                })
                .collect(),
            files_total: p.files_total,
            files_done: p.files_done,
            bytes_total: p.bytes_total,
            bytes_done: p.bytes_done,
            downloading: p
                .downloading
                .into_iter()
                .map(|d| PinDownloadStatus {
                    name: d.name,
                    size: d.size,
                    done: d.done,
                })
                .collect(),
            waiting: p.waiting,
            failures: p.failures,
            last_failure: p.last_failure,
            refused: p.refused.map(|r| PinRefusalStatus {
                path: r.path,
                needed: r.needed,
                available: r.available,
                keep_free: r.keep_free,
            }),
            pinned_bytes: fs.content_cache().map(|c| c.pinned_bytes()),
        }
    }
}

/// Everything `boxfs status` shows of one mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountStatus {
    pub mountpoint: PathBuf,
    pub pid: u32,
    /// Seconds since the mount was ready.
    pub uptime: f64,
    pub read_only: bool,
    pub account: Account,
    pub events: EventsStatus,
    pub cache: CacheStatus,
    /// Absent from daemons older than the read budget.
    #[serde(default)]
    pub reads: ReadsStatus,
    pub uploads: UploadsStatus,
    /// API requests since the mount started, and error answers by HTTP status.
    pub api: RequestStats,
    /// The pacer: calls in the last minute against Box's limits, time spent waiting, 429s.
    /// Absent from daemons older than the pacer.
    #[serde(default)]
    pub pacing: Option<PacerStats>,
    /// What is pinned and how far its download is. Absent from daemons older than pinning.
    #[serde(default)]
    pub offline: OfflineStatus,
    /// Whether Box can be reached (`None` for a backend that does not tell, and from
    /// daemons older than offline mode).
    #[serde(default)]
    pub connection: Option<ConnectionStatus>,
}

/// Whether Box can be reached, as `boxfs status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionStatus {
    /// Box answers: the mount is online.
    pub online: bool,
    /// While offline: since when (seconds since the Unix epoch).
    pub offline_since: Option<u64>,
    /// When Box last answered anything (seconds since the Unix epoch).
    pub last_reached: Option<u64>,
    /// Why the last request that found Box out of reach failed.
    pub last_failure: Option<String>,
}

impl ConnectionStatus {
    fn of(fs: &BoxFs) -> Option<ConnectionStatus> {
        let unix = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .ok()
        };
        fs.reachability().map(|r| ConnectionStatus {
            online: r.offline_since.is_none(),
            offline_since: r.offline_since.and_then(unix),
            last_reached: r.last_reached.and_then(unix),
            last_failure: r.last_failure,
        })
    }
}

/// What the daemon knows of itself besides the filesystem.
pub struct Daemon {
    pub fs: Arc<BoxFs>,
    pub account: Account,
    pub mountpoint: PathBuf,
    pub started: Instant,
}

fn age(t: Option<Instant>) -> Option<f64> {
    t.map(|t| t.elapsed().as_secs_f64())
}

impl Daemon {
    /// The figures now. Takes the inode table's lock briefly; no network.
    pub fn status(&self) -> MountStatus {
        let fs = &self.fs;
        let health = fs.health();
        let counters = health.counters();
        let last_error = health.last_error();
        let (inodes, inode_limit) = {
            let table = fs.table().lock().unwrap_or_else(|e| e.into_inner());
            (table.len() as u64, table.limit() as u64)
        };
        let uploads = fs.upload_status();
        MountStatus {
            mountpoint: self.mountpoint.clone(),
            pid: std::process::id(),
            uptime: self.started.elapsed().as_secs_f64(),
            read_only: fs.options().identity.read_only,
            account: self.account.clone(),
            events: EventsStatus {
                state: health.state().as_str().to_string(),
                since_last_answer: age(health.last_ok()),
                since_last_event: age(health.last_event()),
                since_last_error: age(last_error.as_ref().map(|(t, _)| *t)),
                last_error: last_error.map(|(_, m)| m),
                events: counters.events,
                errors: counters.errors,
                outages: counters.outages,
                revalidations: counters.revalidations,
            },
            cache: CacheStatus {
                inodes,
                inode_limit,
                content_bytes: fs.content_cache().map(|c| c.used_bytes()),
                content_limit: fs.content_cache().map(|c| c.max_bytes()),
            },
            reads: {
                let r = fs.read_budget();
                ReadsStatus {
                    active_readers: r.active_readers,
                    memory_held: r.memory_held,
                    memory_limit: r.memory_limit,
                    requests_in_flight: r.requests_in_flight,
                    connection_limit: r.connection_limit,
                }
            },
            uploads: UploadsStatus {
                pending_files: uploads.pending_files,
                pending_bytes: uploads.pending_bytes,
                running: uploads
                    .running
                    .iter()
                    .map(|u| RunningUpload {
                        name: u.name.clone(),
                        size: u.size,
                        done: u.done,
                        elapsed: u.elapsed.as_secs_f64(),
                        rate: u.rate(),
                    })
                    .collect(),
                uploaded_files: uploads.uploaded_files,
                uploaded_bytes: uploads.uploaded_bytes,
            },
            api: fs.client().request_stats(),
            pacing: fs.client().pacer_stats(),
            offline: OfflineStatus::of(fs),
            connection: ConnectionStatus::of(fs),
        }
    }
}
