//! The tree of the mount: the inode table (Box ids and inode numbers, names, cached
//! attributes, lookup counts, eviction, tombstones), complete folder listings fetched page by
//! page, open directories, what `stat` shows, and the namespace operations (mkdir, rmdir,
//! unlink, rename) that change it through Box.

pub mod attr;
pub mod dir_handle;
pub mod inode;
pub(crate) mod listing;
pub(crate) mod namespace;
pub mod posix;
pub mod shortcut;
pub(crate) mod stored;
