//! Keeping the mount true to Box: the event follower and its applier, own-change echoes and
//! stream health (`events`), and the queue of kernel invalidations drained on its own thread
//! (`kernel`).

pub mod events;
pub mod freshness;
pub mod kernel;
