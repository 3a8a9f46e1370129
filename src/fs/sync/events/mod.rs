//! Keeping caches true while other clients change Box: the task that follows the user's event
//! stream and applies each event to the inode table, the content cache and (through
//! [`KernelNotify`]) the kernel's dentry, attribute and page caches.
//!
//! # Design note
//!
//! **Pure core, thin task.** [`EventApplier::apply`] turns one event into table changes and
//! the list of [`Invalidation`]s the kernel needs; it does no I/O, so every event type is
//! tested against a plain [`InodeTable`]. The task ([`EventFollower`]) reads the long-polling
//! feed ([`BoxApi::event_stream`]), locks the table only around `apply`, and sends the
//! invalidations afterwards, off the async workers: the kernel may hold a notification while
//! it waits for a request that this very process must answer.
//!
//! **What an event means here.** For user events about files and folders Box sends the item
//! as it is after the event (`source`: the standard representation, with `parent`,
//! `sequence_id` and `etag`), so the applier does not interpret most event types: it upserts
//! the item under its parent and compares the inode before and after. A new inode is a
//! creation (the parent's listing and the negative dentry are invalidated); a new parent or
//! name is a move or rename (both the old and the new dentry and both listings); changed
//! content (version, sha1, size, mtime) invalidates the file's pages; other attribute changes
//! only the attributes. A few types need their own rule:
//! - `ITEM_TRASH` (or any source whose `item_status` is `trashed`/`deleted`): the inode is
//!   detached. The trashed item's `parent` is still its old folder (Box and the emulator
//!   agree), so the removal goes by the item, never by the parent.
//! - Locks, shared links, collaborations, descriptions/tags (`ITEM_MODIFY`) and metadata
//!   instances change what extended attributes show, not what `stat` shows: the table's
//!   attributes are marked stale (so the next `getxattr` fetches) and the kernel is told to
//!   drop the attributes only, keeping the pages.
//! - Downloads, previews, comments and tasks change nothing we cache: ignored.
//!
//! **Out of view.** An item whose new parent is not in the table (moved out of the mounted
//! subtree, or into a folder never listed) is detached as if deleted; when it moves back it is
//! inserted again (the same inode if the kernel still holds it). An event about an item we do
//! not know under a parent we do not know is ignored: nobody has looked there.
//!
//! **Duplicates, order and echoes.** Box may repeat an event and deliver events out of
//! order. Repeats are dropped by the feed ([`box_client::events::EventStream`], by `event_id`,
//! a bounded set of recent ids), which keeps that memory when the follower resumes it after it
//! ended; the applier sees each event once. Each item's
//! `sequence_id` grows with every change; the table ignores an update whose `sequence_id` is
//! lower than the one it holds, and removals are checked the same way here. The mount
//! updates the table from Box's answers to its own requests, so the event that follows one of
//! our own changes carries the `sequence_id` and `etag` we already hold, under the parent and
//! name we already hold: such an echo changes nothing and tells the kernel nothing. The echo
//! can outrun the answer, so the mount registers each change in flight with [`OwnChanges`]
//! and events about that item (or, for a creation, that name) wait until the answer is
//! recorded. Box records one event per aspect of one request (a rename and a lock in one
//! `PUT`) with the same `sequence_id`, so a second event at a `sequence_id` this applier
//! itself applied is not an echo. Metadata changes do not move an item's `sequence_id` at all
//! (on Box as in the emulator), so they are never taken for echoes.
//!
//! **Health.** While the feed delivers, the filesystem may trust its caches for long
//! ([`StreamHealth::is_healthy`]); from the first failure until the feed has worked again for
//! a moment ([`FollowerOptions::settle`]) it should use short TTLs. The feed resumes from its
//! last position, so nothing is lost over a short outage; after a long one
//! ([`FollowerOptions::revalidate_after`]), or when Box says the position is older than the
//! events it keeps, [`revalidate_all`] marks every listing and attribute stale and tells the
//! kernel to drop what it holds. Only a lost position marks the metadata store's listings
//! stale as well: after an outage the resumed stream's events mark those they touch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::fs::backend::BoxApi;
pub use crate::fs::kernel::{Invalidation, KernelNotify};
use crate::fs::read::content_cache::ContentCache;
use crate::fs::tree::inode::{Attrs, Ino, InodeTable, ROOT_INO, TRASH_INO};
use box_client::events::{Event, EventStreamOptions, FeedStatus, RecentIds, StreamType};
use box_client::types::Item;

mod applier;
mod catch_up;
mod follower;
mod health;
mod own_changes;

pub use applier::*;
pub use catch_up::*;
pub use follower::*;
pub use health::*;
pub use own_changes::*;

#[cfg(test)]
mod tests;
