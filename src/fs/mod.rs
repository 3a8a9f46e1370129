//! The filesystem layer: Box seen as a tree of inodes, async and testable without the kernel.
//! So far it holds [`inode`], the table that maps Box item ids to stable inode numbers and
//! counts the kernel's references to them; [`errno`], the one place Box errors become
//! errnos; [`content_cache`], the bounded on-disk cache of file content; and [`events`], the
//! task that follows the user's event stream and keeps those caches and the kernel's true.

pub mod content_cache;
pub mod errno;
pub mod events;
pub mod inode;
