//! FUSE: the only code that sees fuser's types. `adapter` turns each kernel request into a
//! call on [`crate::fs::BoxFs`] and sends the kernel its invalidations; `session` mounts with
//! boxfs's options and runs the fuser session that serves the adapter.

pub mod adapter;
pub mod session;

pub use adapter::{FuseAdapter, FuseNotifier};
pub use session::{FuseSession, SessionOptions};
