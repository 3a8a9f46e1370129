//! Keeping the mount true to Box: the event follower and its applier, own-change echoes and
//! stream health (`events`), and the TTLs chosen by that health (`freshness`). What the
//! kernel is told goes through `crate::fs::kernel`, shared with the tree and the writes.

pub mod events;
pub mod freshness;
