//! The attributes `stat` shows, computed from what the inode table caches about a Box item
//! and the mount's identity options (owner, group, umask, read-only). Plain data, no fuser
//! types: `fuse.rs` converts.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::fs::tree::inode::{Ino, Inode, Kind, ROOT_INO};
use crate::fs::tree::posix::is_symlink;

/// The block size `stat` reports for files. `cp`, `cat` and friends size their buffers from
/// it, so a large one means fewer, larger reads through FUSE.
pub const FILE_BLKSIZE: u32 = 1 << 20;

/// Who owns everything in the mount and which permission bits it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Bits removed from 0o777 (directories) and 0o666 (files).
    pub umask: u32,
    pub read_only: bool,
}

impl Default for Identity {
    fn default() -> Self {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Identity {
            uid,
            gid,
            umask: 0o022,
            read_only: false,
        }
    }
}

/// What `stat` says about one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsAttr {
    pub ino: Ino,
    pub kind: Kind,
    /// A file kept on Box as a symbolic link (`--posix-attributes`).
    pub symlink: bool,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// Permission bits, set-id and sticky bits included.
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub blksize: u32,
}

impl FsAttr {
    /// The attributes of `inode` (number `ino`); `subdirs` is the number of folders known to
    /// be inside it (for a directory's link count). A mode kept on Box gives the permission
    /// bits; without one, the mount's defaults (0777 for folders and 0666 for files, less
    /// the umask). A read-only mount shows no write bits.
    pub fn of(ino: Ino, inode: &Inode, subdirs: usize, id: &Identity) -> FsAttr {
        let a = inode.attrs();
        // Removed while open (unlinked, or trashed elsewhere): no name links to it any more.
        let removed = ino != ROOT_INO && inode.parent().is_none();
        let mtime = a.mtime.unwrap_or(UNIX_EPOCH);
        let ctime = a.ctime.unwrap_or(mtime);
        let atime = a.atime.unwrap_or(mtime);
        let write_bits = if id.read_only { 0o7555 } else { 0o7777 };
        let kind = inode.kind();
        let kept = a.mode().filter(|_| kind != Kind::Link).map(|m| m & 0o7777);
        let uid = a.uid().unwrap_or(id.uid);
        let gid = a.gid().unwrap_or(id.gid);
        let perm = |default: u32| (kept.unwrap_or(default & !id.umask) & write_bits) as u16;
        match kind {
            Kind::Dir => FsAttr {
                ino,
                kind: Kind::Dir,
                symlink: false,
                // Box reports a folder's size as the total of its subtree; `du` would count it
                // twice, so directories show the conventional 4 KiB.
                size: 4096,
                blocks: 8,
                atime,
                mtime,
                ctime,
                perm: perm(0o777),
                nlink: if removed {
                    0
                } else {
                    2 + subdirs.min(u32::MAX as usize - 2) as u32
                },
                uid,
                gid,
                blksize: 4096,
            },
            kind @ (Kind::File | Kind::Link) => FsAttr {
                ino,
                kind,
                symlink: kind == Kind::File && is_symlink(a.mode()) && a.target().is_some(),
                size: a.size,
                blocks: a.size.div_ceil(512),
                atime,
                mtime,
                ctime,
                // A web link's file is made here from its URL: it can be read, renamed and
                // removed, not written (`user.box.url` changes the address).
                perm: match kind {
                    Kind::Link => (0o444 & !id.umask) as u16,
                    _ => perm(0o666),
                },
                nlink: u32::from(!removed),
                uid,
                gid,
                blksize: FILE_BLKSIZE,
            },
        }
    }
}
