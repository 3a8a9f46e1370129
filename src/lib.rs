//! boxfs: Box.com as a Linux filesystem. This crate holds the filesystem layer (`fs`), the
//! FUSE adapter (`fuse`), the mount's daemon (`mount`, `daemon`, `control`), and the command
//! line (`cli`) with its configuration file (`config`) and logins (`login`). The Box client
//! is the crate `box_client`, and the Box API emulator that `boxfs emulator` runs, and that
//! every test and benchmark runs against, is the crate `box_emulator`.

pub mod cache_dir;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod events_cli;
pub mod fs;
pub mod fuse;
pub mod generate;
pub mod human;
pub mod log_filter;
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
