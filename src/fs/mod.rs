//! The filesystem layer: Box seen as a tree of inodes, async and testable without the kernel.
//! So far it holds [`inode`], the table that maps Box item ids to stable inode numbers and
//! counts the kernel's references to them; [`errno`], the one place Box errors become
//! errnos; [`content_cache`], the bounded on-disk cache of file content; and [`read`], the
//! read path of an open file (ranged, parallel read-ahead, backed by the content cache).

pub mod content_cache;
pub mod errno;
pub mod inode;
pub mod read;
