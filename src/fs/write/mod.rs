//! Writing: staged data and its journal on local disk, the write operations that fill them,
//! renames and unlinks of staged files, the uploader that sends them to Box with its progress
//! figures, Box locks behind `flock`/`fcntl`, and modes and symbolic links kept on Box.

pub mod locks;
pub(crate) mod posix;
pub(crate) mod staged_names;
pub mod staging;
pub mod upload_progress;
pub(crate) mod uploader;
pub mod writes;
