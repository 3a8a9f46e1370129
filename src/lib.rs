//! boxfs: Box.com as a Linux filesystem. The crate holds the Rust Box client (`api`), the
//! command line (`cli`), the filesystem layer (`fs`), and the Box API emulator (`emulator`)
//! that every test and benchmark runs against.

pub mod api;
pub mod cli;
pub mod daemon;
pub mod emulator;
pub mod fs;
pub mod fuse;
pub mod mount;
