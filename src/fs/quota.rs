//! What `statfs` answers: the account's quota from Box (`space_amount`, `space_used`), asked
//! at most every 30 seconds however often `df` or a file manager polls.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use box_client::error::BoxError;

use crate::fs::backend::BoxApi;
use crate::fs::errno::FsError;
use crate::fs::lock;
use crate::fs::tree::inode::NAME_MAX_CHARS;

/// How long an answer from Box is reused.
const QUOTA_TTL: Duration = Duration::from_secs(30);
const BLOCK: u64 = 4096;

/// What `statfs` answers, in 4 KiB blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub files: u64,
    pub name_max: u32,
}

/// The last quota Box gave, and when.
#[derive(Default)]
pub struct Quota {
    last: Mutex<Option<(Instant, FsStats)>>,
}

impl Quota {
    /// The quota as of at most 30 seconds ago; `files` is how many inodes the mount
    /// knows (Box has no file count to give).
    pub async fn statfs(&self, client: &dyn BoxApi, files: u64) -> Result<FsStats, FsError> {
        if let Some((at, stats)) = *lock(&self.last) {
            if at.elapsed() < QUOTA_TTL {
                return Ok(stats);
            }
        }
        let me = match client.me_with_fields(&["space_amount", "space_used"]).await {
            Ok(me) => me,
            // Out of reach (`crate::fs::offline`), `df` still answers: with the last quota
            // Box gave, whatever its age, or as an unlimited account before any.
            Err(BoxError::Unreachable(_)) => {
                let last = lock(&self.last).map(|(_, stats)| stats);
                return Ok(last.unwrap_or_else(|| Self::stats(1 << 50, 0, files)));
            }
            Err(e) => return Err(e.into()),
        };
        let used = me.space_used.unwrap_or(0).max(0) as u64;
        // Box reports an unlimited account as a huge or negative amount.
        let total = match me.space_amount {
            Some(a) if a > 0 => a as u64,
            _ => 1 << 50,
        };
        let stats = Self::stats(total, used, files);
        *lock(&self.last) = Some((Instant::now(), stats));
        Ok(stats)
    }

    fn stats(total: u64, used: u64, files: u64) -> FsStats {
        FsStats {
            block_size: BLOCK as u32,
            blocks: total / BLOCK,
            blocks_free: total.saturating_sub(used) / BLOCK,
            files,
            // What tools keep the names they make within (see `tree::inode::NAME_MAX_BYTES`).
            name_max: NAME_MAX_CHARS as u32,
        }
    }
}
