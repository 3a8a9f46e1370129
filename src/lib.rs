//! boxfs: Box.com as a Linux filesystem. The crate holds the Rust Box client (`api`), the
//! command line (`cli`) with its configuration file (`config`) and logins (`login`), the
//! filesystem layer (`fs`), and the Box API emulator (`emulator`) that every test and
//! benchmark runs against.

pub mod api;
pub mod cache_dir;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod emulator;
pub mod events_cli;
pub mod fs;
pub mod fuse;
pub mod generate;
pub mod human;
pub mod login;
pub mod mount;
pub mod mount_helper;
pub mod mount_status;
pub mod private_fs;
pub mod run_as;
pub mod sd_notify;
pub mod search_cli;
pub mod secret_args;
pub mod status_cli;
pub mod unmount_progress;
