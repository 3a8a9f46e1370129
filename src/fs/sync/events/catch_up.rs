//! Catching up at mount: the events Box recorded since the position the metadata store was
//! saved at are read and applied before the mount serves anything, so a change made while
//! nothing was mounted shows at once, without a walk.
//!
//! Box gives no error for a position it no longer keeps events after (it keeps user events
//! two weeks to two months): `GET /events` simply starts at its oldest event. Its one sign
//! is the long-poll, which answers `out_of_date` at once for such a position. So when events
//! did happen since (the stream moved on), one long-poll with the saved position tells
//! whether they are all there; a position saved more than [`TRUSTED_AGE`] ago is not asked
//! about at all, and neither is one that Box's current position is behind (another Box, or
//! its events were reset). A position that fails these is [`CatchUp::Lost`]: the caller
//! keeps the store but marks every listing stale ([`revalidate_all`]).

use std::time::SystemTime;

use super::*;
use box_client::BoxResult;

/// How old a saved position may be and still be caught up from: Box keeps user events at
/// least two weeks.
pub const TRUSTED_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// How long the long-poll that checks a saved position may take. Box answers at once for a
/// position behind its stream (`new_change` or `out_of_date`).
const CHECK_WAIT: Duration = Duration::from_secs(5);

/// More events than this since the saved position: listing what is visited again costs
/// less than applying them all before the mount serves.
const MOST_EVENTS: usize = 50_000;

/// How catching up went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    /// Every event since the saved position was applied; the stream goes on from `position`.
    Current { position: String, events: usize },
    /// The events since the saved position cannot all be had: nothing cached is trusted
    /// until listed again. The stream goes on from `position` (Box's current one).
    Lost { position: String, why: String },
}

impl CatchUp {
    pub fn position(&self) -> &str {
        match self {
            CatchUp::Current { position, .. } | CatchUp::Lost { position, .. } => position,
        }
    }
}

impl EventFollower {
    /// Applies every event since `saved` (saved at `saved_at`) to the table; see the module
    /// note. The position reached is noted in the table's journal for the store.
    pub async fn catch_up(&mut self, saved: &str, saved_at: SystemTime) -> BoxResult<CatchUp> {
        let age = SystemTime::now()
            .duration_since(saved_at)
            .unwrap_or_default();
        let outcome = if age > TRUSTED_AGE {
            self.lost(format!(
                "the saved event position is {} days old, older than Box keeps events",
                age.as_secs() / 86_400
            ))
            .await?
        } else {
            self.read_since(saved).await?
        };
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let CatchUp::Lost { .. } = &outcome {
            revalidate_all(&mut table, RevalidateScope::MemoryAndStore);
        }
        table.note_stream_position(outcome.position());
        Ok(outcome)
    }

    async fn read_since(&mut self, saved: &str) -> BoxResult<CatchUp> {
        let mut position = saved.to_string();
        let mut events = 0;
        loop {
            let page = self.client.events_since(&position).await?;
            for ev in &page.entries {
                self.handle_event(ev).await;
            }
            events += page.entries.len();
            let next = page.next_stream_position;
            let done = page.entries.is_empty() || next.is_empty() || next == position;
            if !next.is_empty() {
                position = next;
            }
            if done {
                break;
            }
            if events > MOST_EVENTS {
                return self
                    .lost(format!(
                        "more than {MOST_EVENTS} changes since the last mount"
                    ))
                    .await;
            }
        }
        let behind = matches!(
            (saved.parse::<u128>(), position.parse::<u128>()),
            (Ok(s), Ok(p)) if p < s
        );
        if behind {
            return Ok(CatchUp::Lost {
                why: format!(
                    "Box's event stream ({position}) is behind the saved position ({saved})"
                ),
                position,
            });
        }
        if position != saved
            && self.client.position_is_retained(saved, CHECK_WAIT).await? == Some(false)
        {
            return Ok(CatchUp::Lost {
                position,
                why: "Box no longer keeps the events since the saved position".into(),
            });
        }
        Ok(CatchUp::Current { position, events })
    }

    async fn lost(&self, why: String) -> BoxResult<CatchUp> {
        let position = self.client.latest_stream_position(StreamType::All).await?;
        Ok(CatchUp::Lost { position, why })
    }
}
