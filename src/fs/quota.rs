//! What `statfs` answers: the account's quota from Box (`space_amount`, `space_used`), asked
//! at most every 30 seconds however often `df` or a file manager polls. The mount's sign-in
//! already carries the quota (Box's standard user object has both fields), so the first
//! `statfs` after a mount, which `find` and `ls` make before they walk, asks Box nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use box_client::error::BoxError;
use box_client::types::User;

use crate::fs::backend::BoxApi;
use crate::fs::errno::FsError;
use crate::fs::lock;
use crate::fs::tree::inode::NAME_MAX_CHARS;

/// How long an answer from Box is reused.
const QUOTA_TTL: Duration = Duration::from_secs(30);
const BLOCK: u64 = 4096;
/// What an unlimited account (or one whose quota is not known yet) shows as its size.
const UNLIMITED: u64 = 1 << 50;

/// What `statfs` answers, in 4 KiB blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub files: u64,
    pub name_max: u32,
}

/// An account's space in bytes, as a user object gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub total: u64,
    pub used: u64,
}

impl Usage {
    /// What `statfs` shows before Box gave any quota: an unlimited account, empty.
    const UNKNOWN: Usage = Usage {
        total: UNLIMITED,
        used: 0,
    };

    /// The usage `user` carries; `None` if it was asked for without the quota fields.
    pub fn of_user(user: &User) -> Option<Usage> {
        let amount = user.space_amount?;
        Some(Usage {
            // Box reports an unlimited account as a huge or negative amount.
            total: if amount > 0 { amount as u64 } else { UNLIMITED },
            used: user.space_used.unwrap_or(0).max(0) as u64,
        })
    }
}

/// The last quota Box gave, and when.
#[derive(Default)]
pub struct Quota {
    last: Mutex<Option<(Instant, Usage)>>,
}

impl Quota {
    /// Keeps `usage`, just read from Box, as the answer of the next 30 seconds.
    pub fn remember(&self, usage: Usage) {
        *lock(&self.last) = Some((Instant::now(), usage));
    }

    /// The quota as of at most 30 seconds ago; `files` is how many inodes the mount
    /// knows (Box has no file count to give).
    pub async fn statfs(&self, client: &dyn BoxApi, files: u64) -> Result<FsStats, FsError> {
        if let Some((at, usage)) = *lock(&self.last) {
            if at.elapsed() < QUOTA_TTL {
                return Ok(Self::stats(usage, files));
            }
        }
        let usage = match client.me_with_fields(&["space_amount", "space_used"]).await {
            Ok(me) => Usage::of_user(&me).unwrap_or(Usage::UNKNOWN),
            // Out of reach (`crate::fs::offline`), `df` still answers: with the last quota
            // Box gave, whatever its age, or as an unlimited account before any.
            Err(BoxError::Unreachable(_)) => {
                let last = lock(&self.last).map(|(_, usage)| usage);
                return Ok(Self::stats(last.unwrap_or(Usage::UNKNOWN), files));
            }
            Err(e) => return Err(e.into()),
        };
        self.remember(usage);
        Ok(Self::stats(usage, files))
    }

    fn stats(usage: Usage, files: u64) -> FsStats {
        FsStats {
            block_size: BLOCK as u32,
            blocks: usage.total / BLOCK,
            blocks_free: usage.total.saturating_sub(usage.used) / BLOCK,
            files,
            // What tools keep the names they make within (see `tree::inode::NAME_MAX_BYTES`).
            name_max: NAME_MAX_CHARS as u32,
        }
    }
}
