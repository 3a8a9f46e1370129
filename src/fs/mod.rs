//! The filesystem layer: Box seen as a tree of inodes, async and testable without the kernel.
//! So far it holds [`inode`], the table that maps Box item ids to stable inode numbers and
//! counts the kernel's references to them.

pub mod inode;
