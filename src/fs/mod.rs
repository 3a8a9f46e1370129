//! The filesystem layer: Box content and errors as the kernel sees them.
pub mod content_cache;
pub mod errno;
