//! The FUSE adapter. It exists so that everything else can be async and tested without a
//! kernel. A request that may wait for Box is turned into a call on [`BoxFs`] that runs as
//! a task on the tokio runtime and answers the kernel when it is done, so the FUSE dispatch
//! thread never waits for the network and many processes can list and read at once. What
//! the filesystem can answer from memory (`lookup` in a fresh listing, `getattr` of fresh
//! attributes, `opendir`, `readdirplus` of entries already listed, `releasedir`) is
//! answered on the dispatch thread itself: a task costs two thread switches, most of such a
//! request's time. Kernel invalidations go out through [`FuseNotifier`], from the queue's
//! own thread, never from inside a handler.

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::fs::errno::FsError;
use crate::fs::kernel::{Invalidation, KernelNotify};
use crate::fs::tree::attr::FsAttr;
use crate::fs::tree::dir_handle::DirView;
use crate::fs::tree::inode::Kind;
use crate::fs::write::writes::SetAttr;
use crate::fs::xattr::{sized_reply, XattrReply};
use crate::fs::{BoxFs, Opened};

/// Largest read-ahead we ask the kernel for (it caps it at its own maximum).
const MAX_READAHEAD: u32 = 16 << 20;
/// Requests the kernel may have outstanding in the background (read-ahead, async reads).
const MAX_BACKGROUND: u16 = 64;

/// The filesystem as fuser sees it.
pub struct FuseAdapter {
    fs: Arc<BoxFs>,
    rt: tokio::runtime::Handle,
}

impl FuseAdapter {
    pub fn new(fs: Arc<BoxFs>, rt: tokio::runtime::Handle) -> FuseAdapter {
        FuseAdapter { fs, rt }
    }

    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.rt.spawn(fut);
    }
}

fn reply_entry(fs: &BoxFs, attr: Result<FsAttr, FsError>, reply: ReplyEntry) {
    match attr {
        Ok(a) => reply.entry(&fs.kernel_ttl(), &to_file_attr(&a), Generation(0)),
        Err(e) => reply.error(errno("lookup", &e)),
    }
}

fn reply_attr(fs: &BoxFs, attr: Result<FsAttr, FsError>, reply: ReplyAttr) {
    match attr {
        Ok(a) => reply.attr(&fs.kernel_ttl(), &to_file_attr(&a)),
        Err(e) => reply.error(errno("getattr", &e)),
    }
}

fn reply_opendir(opened: Result<Opened, FsError>, reply: ReplyOpen) {
    match opened {
        Ok(o) => reply.opened(FileHandle(o.fh), open_flags(o.keep_cache, true)),
        Err(e) => reply.error(errno("opendir", &e)),
    }
}

fn file_type(a: &FsAttr) -> FileType {
    match a.kind {
        _ if a.symlink => FileType::Symlink,
        Kind::Dir => FileType::Directory,
        Kind::File | Kind::Link => FileType::RegularFile,
    }
}

/// Who made a request: a new item is theirs (kept with `--posix-attributes`).
fn caller_of(req: &Request) -> (u32, u32) {
    (req.uid(), req.gid())
}

fn to_file_attr(a: &FsAttr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: file_type(a),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: a.blksize,
        flags: 0,
    }
}

/// Answers `getxattr`/`listxattr` with `value` sized for the caller's buffer.
fn reply_xattr(op: &str, value: Result<Vec<u8>, FsError>, size: u32, reply: ReplyXattr) {
    match value.and_then(|v| sized_reply(v, size)) {
        Ok(XattrReply::Size(n)) => reply.size(n),
        Ok(XattrReply::Data(d)) => reply.data(&d),
        Err(e) => reply.error(xattr_errno(op, &e)),
    }
}

/// [`errno`] for attribute changes, where refusing a name or value is an answer to the
/// caller, not a failure of the mount: `cp -a` into the mount offers every attribute of every
/// file it copies, and a warning for each would bury the ones that matter.
fn xattr_errno(op: &str, e: &FsError) -> Errno {
    match e.errno() {
        libc::EOPNOTSUPP | libc::EPERM | libc::EINVAL | libc::EEXIST | libc::ENODATA => {
            log::debug!("{op}: {e}");
            Errno::from_i32(e.errno())
        }
        _ => errno(op, e),
    }
}

/// The errno for the kernel, with a log line when the failure is worth one.
fn errno(op: &str, e: &FsError) -> Errno {
    if e.should_warn() {
        log::warn!("{op}: {e}");
    } else {
        log::debug!("{op}: {e}");
    }
    Errno::from_i32(e.errno())
}

/// Answers an operation that returns nothing but success or an errno.
fn reply_empty(op: &str, result: Result<(), FsError>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(op, &e)),
    }
}

fn open_flags(keep_cache: bool, dir: bool) -> FopenFlags {
    let mut flags = FopenFlags::empty();
    if keep_cache {
        flags |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if dir {
        flags |= FopenFlags::FOPEN_CACHE_DIR;
    }
    flags
}

/// Directory offsets: 1 is after ".", 2 after "..", n + 3 after entry n. The index of the
/// first entry (after the dots) an `offset` asks for.
fn entry_index(offset: u64) -> usize {
    offset.saturating_sub(2) as usize
}

/// Whether a reply starting at `offset` must be the listing's failure: no entry to give,
/// and the listing ended with an error.
fn listing_failure(view: &DirView, offset: u64) -> Option<&FsError> {
    match &view.done {
        Some(Err(e)) if offset >= 2 && view.get(entry_index(offset)).is_none() => Some(e),
        _ => None,
    }
}

/// The offset after entry `index`.
fn offset_after(index: usize) -> u64 {
    index as u64 + 3
}

/// Answers `readdir` from `offset` with as many entries of `view` as fit.
fn reply_readdir(view: &DirView, offset: u64, mut reply: ReplyDirectory) {
    if let Some(e) = listing_failure(view, offset) {
        return reply.error(errno("readdir", e));
    }
    let dots = [(view.ino, ".", 1), (view.parent, "..", 2)];
    for &(ino, name, next) in dots.iter().skip(offset as usize) {
        if reply.add(INodeNo(ino), next, FileType::Directory, name) {
            return reply.ok();
        }
    }
    for (i, e) in view.entries_from(entry_index(offset)) {
        let kind = file_type(&e.attr);
        if reply.add(INodeNo(e.attr.ino), offset_after(i), kind, &*e.name) {
            break;
        }
    }
    reply.ok();
}

/// Answers `readdirplus` from `offset` with as many entries of `view` as fit, each with its
/// attributes; every entry handed over is one more kernel reference.
fn reply_readdirplus(fs: &BoxFs, view: &DirView, offset: u64, mut reply: ReplyDirectoryPlus) {
    if let Some(e) = listing_failure(view, offset) {
        return reply.error(errno("readdirplus", e));
    }
    let ttl = fs.readdirplus_ttl(view);
    let dir_attr = to_file_attr(&view.attr);
    let dots = [(view.ino, ".", 1), (view.parent, "..", 2)];
    for &(ino, name, next) in dots.iter().skip(offset as usize) {
        let attr = FileAttr {
            ino: INodeNo(ino),
            ..dir_attr
        };
        if reply.add(INodeNo(ino), next, name, &ttl, &attr, Generation(0)) {
            return reply.ok();
        }
    }
    let mut handed = Vec::new();
    for (i, e) in view.entries_from(entry_index(offset)) {
        let attr = to_file_attr(&e.attr);
        let name = &*e.name;
        if reply.add(
            INodeNo(e.attr.ino),
            offset_after(i),
            name,
            &ttl,
            &attr,
            Generation(0),
        ) {
            break;
        }
        // The kernel takes a reference to each entry it was handed (but not to "." and "..").
        handed.push(e.attr.ino);
    }
    fs.add_lookups(&handed);
    reply.ok();
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_READ,
            // O_TRUNC arrives with the open instead of as a separate truncation first, so
            // `> file` uploads one new version, not an empty one and then the content.
            InitFlags::FUSE_ATOMIC_O_TRUNC,
        ] {
            if let Err(missing) = config.add_capabilities(cap) {
                log::debug!("the kernel lacks {missing:?}");
            }
        }
        // Only with --box-locks: without these the kernel keeps flock and fcntl locks itself.
        if self.fs.options().box_locks {
            for cap in [InitFlags::FUSE_POSIX_LOCKS, InitFlags::FUSE_FLOCK_LOCKS] {
                if let Err(missing) = config.add_capabilities(cap) {
                    log::warn!("the kernel lacks {missing:?}: locks stay local");
                }
            }
        }
        let _ = config.set_max_readahead(MAX_READAHEAD);
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if let Some(attr) = self.fs.lookup_at_once(parent.0, name) {
            return reply_entry(&self.fs, attr, reply);
        }
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move { reply_entry(&fs, fs.lookup(parent.0, &name).await, reply) });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(attr) = self.fs.getattr_at_once(ino.0) {
            return reply_attr(&self.fs, attr, reply);
        }
        let fs = self.fs.clone();
        self.spawn(async move { reply_attr(&fs, fs.getattr(ino.0).await, reply) });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let fs = self.fs.clone();
        let name = name.to_owned();
        let caller = caller_of(req);
        self.spawn(async move {
            match fs
                .mkdir_with_mode(parent.0, &name, Some(mode & !umask), Some(caller))
                .await
            {
                Ok(a) => reply.entry(&fs.kernel_ttl(), &to_file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno("mkdir", &e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move { reply_empty("unlink", fs.unlink(parent.0, &name).await, reply) });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move { reply_empty("rmdir", fs.rmdir(parent.0, &name).await, reply) });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.spawn(async move {
            match fs
                .rename(parent.0, &name, newparent.0, &newname, flags.bits())
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("rename", &e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        self.spawn(async move {
            let opened = if write {
                fs.open_for_write(ino.0, flags.0).await
            } else {
                fs.open(ino.0, false).await
            };
            match opened {
                Ok(o) => reply.opened(FileHandle(o.fh), open_flags(o.keep_cache, false)),
                Err(e) => reply.error(errno("open", &e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno("read", &e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            fs.release_locks_of_handle(fh.0).await;
            fs.release_file(fh.0).await;
            reply.ok();
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let fs = self.fs.clone();
        let name = name.to_owned();
        let caller = caller_of(req);
        self.spawn(async move {
            match fs
                .create_with_mode(parent.0, &name, flags, Some(mode & !umask), Some(caller))
                .await
            {
                Ok((a, o)) => reply.created(
                    &fs.kernel_ttl(),
                    &to_file_attr(&a),
                    Generation(0),
                    FileHandle(o.fh),
                    open_flags(o.keep_cache, false),
                ),
                Err(e) => reply.error(errno("create", &e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let fs = self.fs.clone();
        let data = data.to_vec();
        self.spawn(async move {
            match fs.write(fh.0, offset, data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno("write", &e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let time = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        };
        let change = SetAttr {
            size,
            mtime: mtime.map(time),
            atime: atime.map(time),
            mode,
            uid,
            gid,
        };
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.setattr(ino.0, fh.map(|f| f.0), change).await {
                Ok(a) => reply.attr(&fs.kernel_ttl(), &to_file_attr(&a)),
                Err(e) => reply.error(errno("setattr", &e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            fs.release_locks_of_owner(lock_owner.0).await;
            reply_empty("close", fs.flush(fh.0).await, reply)
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move { reply_empty("fsync", fs.fsync(fh.0).await, reply) });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let at_once = {
            let _runtime = self.rt.enter();
            self.fs.opendir_at_once(ino.0)
        };
        if let Some(opened) = at_once {
            return reply_opendir(opened, reply);
        }
        let fs = self.fs.clone();
        self.spawn(async move { reply_opendir(fs.opendir(ino.0).await, reply) });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let handle = match self.fs.dir_handle(fh.0) {
            Ok(h) => h,
            Err(e) => return reply.error(errno("readdir", &e)),
        };
        let index = entry_index(offset);
        let view = handle.view();
        if view.can_answer(index) {
            return reply_readdir(&view, offset, reply);
        }
        // The listing is still arriving: answer once the entry is there.
        self.spawn(async move {
            let view = handle.view_answering(index).await;
            reply_readdir(&view, offset, reply);
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let handle = match self.fs.dir_handle(fh.0) {
            Ok(h) => h,
            Err(e) => return reply.error(errno("readdirplus", &e)),
        };
        let index = entry_index(offset);
        let view = handle.view();
        if view.can_answer(index) {
            return reply_readdirplus(&self.fs, &view, offset, reply);
        }
        let fs = self.fs.clone();
        self.spawn(async move {
            let view = handle.view_answering(index).await;
            reply_readdirplus(&fs, &view, offset, reply);
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // Answered at once, without a task: `ls -l` asks every entry for security.selinux
        // and the POSIX ACLs (20,000 round trips for 10,000 files) unless told that the
        // namespace is unsupported, after which it stops asking on this mount.
        let bytes = name.as_encoded_bytes();
        if crate::fs::xattr::names::namespace_unsupported(bytes) {
            return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
        }
        if !bytes.starts_with(crate::fs::xattr::PREFIX.as_bytes()) {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move {
            reply_xattr("getxattr", fs.getxattr(ino.0, &name).await, size, reply);
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let fs = self.fs.clone();
        self.spawn(async move {
            reply_xattr("listxattr", fs.listxattr(ino.0).await, size, reply);
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        let name = name.to_owned();
        let value = value.to_vec();
        self.spawn(async move {
            match fs.setxattr(ino.0, &name, &value, flags).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(xattr_errno("setxattr", &e)),
            }
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        let name = name.to_owned();
        self.spawn(async move {
            match fs.removexattr(ino.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(xattr_errno("removexattr", &e)),
            }
        });
    }

    // setlk and getlk are only called when init asked for lock requests (--box-locks).
    fn setlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        typ: i32,
        _pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.setlk(ino.0, fh.0, lock_owner.0, typ, sleep).await {
                Ok(()) => reply.ok(),
                // Someone else holds the lock: an answer, not a failure of the mount.
                Err(e) if e.flock_errno() == libc::EWOULDBLOCK => {
                    log::debug!("setlk: {e}");
                    reply.error(Errno::from_i32(libc::EWOULDBLOCK))
                }
                Err(e) => reply.error(errno("setlk", &e)),
            }
        });
    }

    fn getlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.getlk(ino.0, fh.0, lock_owner.0).await {
                // Box says nothing of which process holds it: no pid.
                Ok(true) => reply.locked(start, end, libc::F_WRLCK, 0),
                Ok(false) => reply.locked(start, end, libc::F_UNLCK, 0),
                Err(e) => reply.error(errno("getlk", &e)),
            }
        });
    }

    // ---- what Box has no counterpart for: clear answers, without fuser's warning --------

    /// Namespace changes reach Box before their call returns: nothing is left to flush.
    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    /// Box has no hard links.
    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::from_i32(libc::EPERM));
    }

    /// Box has no symbolic links: kept as marked files with `--posix-attributes`, else EPERM.
    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let fs = self.fs.clone();
        let name = link_name.to_owned();
        let target = target.to_owned();
        let caller = caller_of(req);
        self.spawn(async move {
            match fs.symlink(parent.0, &name, &target, Some(caller)).await {
                Ok(a) => reply.entry(&fs.kernel_ttl(), &to_file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno("symlink", &e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.readlink(ino.0).await {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(errno("readlink", &e)),
            }
        });
    }

    /// Box has no device nodes, fifos or sockets (regular files come through `create`).
    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::from_i32(libc::EPERM));
    }

    /// No ioctls (`lsattr`, `chattr`): "inappropriate ioctl", as for any file without them.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::from_i32(libc::ENOTTY));
    }

    /// ENOSYS tells the kernel to stop asking and do it itself (always-ready polling, a
    /// generic `lseek` without holes) or to make the caller fall back (`cp` copies through
    /// read and write; `posix_fallocate` writes zeros).
    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.statfs().await {
                Ok(s) => reply.statfs(
                    s.blocks,
                    s.blocks_free,
                    s.blocks_free,
                    s.files,
                    u64::MAX / 2,
                    s.block_size,
                    s.name_max,
                    s.block_size,
                ),
                Err(e) => reply.error(errno("statfs", &e)),
            }
        });
    }
}

/// Kernel invalidations through fuser's `Notifier`.
pub struct FuseNotifier(pub fuser::Notifier);

impl KernelNotify for FuseNotifier {
    fn notify(&self, inv: &Invalidation) {
        let result = match inv {
            Invalidation::Entry { parent, name } => {
                self.0.inval_entry(INodeNo(*parent), OsStr::new(&**name))
            }
            Invalidation::Inode(ino) => self.0.inval_inode(INodeNo(*ino), 0, 0),
            // A negative offset keeps the cached pages and drops only the attributes.
            Invalidation::Attrs(ino) => self.0.inval_inode(INodeNo(*ino), -1, 0),
            Invalidation::Delete {
                parent,
                child,
                name,
            } => self
                .0
                .delete(INodeNo(*parent), INodeNo(*child), OsStr::new(&**name))
                // The kernel had no such dentry (or not for that inode): still forget the name.
                .or_else(|_| self.0.inval_entry(INodeNo(*parent), OsStr::new(&**name))),
        };
        // ENOENT: the kernel holds nothing for it, which is what we wanted.
        if let Err(e) = result {
            if e.raw_os_error() != Some(libc::ENOENT) {
                log::debug!("kernel invalidation {inv:?} failed: {e}");
            }
        }
    }
}
