//! A mount's daemon, from `boxfs mount` to the end of the last upload: claiming the cache
//! directory (`cache_dir`), mounting and serving (`mount`), the record and control socket in
//! the runtime directory (`record`, `control`), the figures `boxfs status` shows (`status`),
//! the progress `boxfs unmount` prints (`unmount_progress`), systemd readiness
//! (`sd_notify`), the user a root mount runs as (`run_as`), and the secret flags a
//! background daemon receives through a pipe (`secret_args`).

pub mod cache_dir;
pub mod control;
pub mod mount;
pub mod record;
pub mod run_as;
pub mod sd_notify;
pub mod secret_args;
pub mod status;
pub mod unmount_progress;
