//! Reading file content: the per-open-file reader (access detection, read-ahead, parallel
//! ranged fetches), and the bounded on-disk content cache with its checked chunk files.

pub mod chunk_file;
pub mod content_cache;
pub mod reader;
