//! boxfs: Box.com as a Linux filesystem. The crate is layered; each folder depends only on
//! those listed after it:
//!
//! - `cli`: the command line, one file per command, with logins and the log filter;
//! - `daemon`: a mount's life: claiming the cache, mounting, the record and control socket
//!   in the runtime directory, status figures, systemd readiness, `setuid=`, unmounting;
//! - `fuse`: the FUSE adapter and session, the only code that sees fuser's types;
//! - `fs`: the filesystem itself, async and testable without a kernel;
//! - `config` (the TOML configuration file), `human` (figures for people) and `private_fs`
//!   (files and directories no one else can read or plant) serve them all.
//!
//! The Box client is the crate `box_client`, and the Box API emulator that `boxfs emulator`
//! runs, and that every test and benchmark runs against, is the crate `box_emulator`.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod fs;
pub mod fuse;
pub mod human;
pub mod private_fs;
