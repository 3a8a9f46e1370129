//! Reading file content: the per-open-file reader (access detection, read-ahead, parallel
//! ranged fetches), the read budget all readers share, and the bounded on-disk content cache
//! with its checked chunk files.

pub mod budget;
pub mod chunk_file;
pub mod content_cache;
pub mod reader;
pub mod readers;
