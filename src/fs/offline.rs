//! Working while Box cannot be reached. The client notices (`box_client::reachability`:
//! connection refused, no such host, timeouts; never an HTTP answer) and then fails every
//! call at once with `BoxError::Unreachable`, which is the errno `ENETUNREACH`. This module
//! owns what the filesystem does about it:
//!
//! - **Probing.** While offline, one request is sent after 1 s, then after twice as long
//!   each time, up to every 30 s ([`BoxFs::spawn_reachability_probe`]). When one is
//!   answered the mount is online again by itself: uploads that failed are tried at once,
//!   and the event follower, which kept trying on its own backoff, catches up from its
//!   position.
//! - **What keeps working** (in the operations themselves, which ask [`BoxFs::is_offline`]):
//!   listings, `stat` and xattrs from the table and the metadata store, stale or not;
//!   content from the content cache (pinned folders whole); new and changed files, staged
//!   on disk and uploaded when Box is back, with a conflict copy if Box changed the file
//!   meanwhile (`close` and `fsync` succeed once the data is safe on the local disk).
//! - **What is refused**, with `ENETUNREACH` at once: content that is not cached, a folder
//!   never listed, and mkdir, rmdir, unlink and rename of items on Box. They are refused
//!   rather than queued: replayed later, each could meet a Box changed meanwhile (a name
//!   taken, a folder gone) with nobody left to tell, while a refusal loses nothing and says
//!   so at once.

use std::sync::Arc;
use std::time::Duration;

use box_client::error::BoxError;
use box_client::reachability::ReachabilityState;
use tokio::task::JoinHandle;

use crate::fs::BoxFs;

/// The first probe's wait after Box was found out of reach; doubled after each failure.
const FIRST_PROBE_AFTER: Duration = Duration::from_secs(1);
/// The longest wait between two probes.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// How often an online mount looks whether a call found Box out of reach.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

impl BoxFs {
    /// Whether Box is out of reach now (as far as the client noticed).
    pub fn is_offline(&self) -> bool {
        self.client
            .reachability()
            .is_some_and(|r| r.offline_since.is_some())
    }

    /// Where the mount stands with Box, if its client notices (`None` for a backend that
    /// does not).
    pub fn reachability(&self) -> Option<ReachabilityState> {
        self.client.reachability()
    }

    /// Probes Box while it is out of reach, until aborted (see the module note).
    pub fn spawn_reachability_probe(self: &Arc<Self>) -> JoinHandle<()> {
        let fs = Arc::clone(self);
        tokio::spawn(async move {
            let mut outages_handled = 0;
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                let Some(state) = fs.reachability() else {
                    return;
                };
                if state.offline_since.is_none() {
                    // An outage may have come and gone since the last look (another call
                    // reached Box first): what waited for Box goes all the same.
                    if state.outages > outages_handled {
                        outages_handled = state.outages;
                        fs.back_online();
                    }
                    continue;
                }
                outages_handled = state.outages;
                let mut wait = FIRST_PROBE_AFTER;
                loop {
                    tokio::time::sleep(wait).await;
                    match fs.client.probe().await {
                        Ok(()) => break,
                        Err(BoxError::Unreachable(why)) => {
                            log::debug!("Box is still out of reach: {why}");
                        }
                        Err(e) => log::info!("probing Box: {e}"),
                    }
                    // Another call may have reached Box meanwhile.
                    if !fs.is_offline() {
                        break;
                    }
                    wait = (wait * 2).min(MAX_PROBE_INTERVAL);
                }
                // Outages that began while this one was probed end here too.
                outages_handled = fs.reachability().map_or(outages_handled, |s| s.outages);
                fs.back_online();
            }
        })
    }

    /// Box answered again: what waited for it goes now.
    fn back_online(&self) {
        let uploads = self.writes.retry_failed_now();
        log::info!("Box can be reached again; {uploads} upload(s) waiting are sent now");
    }
}
