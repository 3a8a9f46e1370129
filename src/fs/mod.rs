//! The filesystem layer: Box seen as a tree of inodes, async and testable without the kernel.
//! So far it holds [`inode`], the bounded (LRU) table that maps Box item ids to stable inode
//! numbers and counts the kernel's references to them; [`errno`], the one place Box errors become
//! errnos; and [`content_cache`], the bounded on-disk cache of file content.

pub mod content_cache;
pub mod errno;
pub mod inode;
