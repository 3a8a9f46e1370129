//! A `BoxFs` without the kernel, against an in-process emulator, talking to it through a
//! `FaultyBox` (which passes every call through until rules are armed), and the few steps
//! of system calls the tests make of its operations (open, write, close; open, read,
//! close), by path.
//!
//! The filesystem is made deterministic: no prefetching and no write-back (nothing runs in
//! the background, so the calls of an operation come in the same order every time) and the
//! same long TTL whether or not an event stream runs (none does: only the mount's own
//! changes reach Box, and its cache must stay true by itself).

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use box_client::Client;
use box_client::RetryPolicy;
use boxfs::fs::backend::faults::FaultyBox;
use boxfs::fs::backend::BoxApi;
use boxfs::fs::errno::FsError;
use boxfs::fs::kernel::KernelQueue;
use boxfs::fs::tree::attr::FsAttr;
use boxfs::fs::tree::inode::{Ino, Kind, ROOT_INO};
use boxfs::fs::{BoxFs, FsOptions};

use super::TestEmu;

const LONG_TTL: Duration = Duration::from_secs(3600);

/// A filesystem over the emulator, with its staging area and the fault wrapper in between.
pub struct FsHarness {
    pub emu: Arc<TestEmu>,
    /// The Box folder shown as the mount's root.
    pub root_folder_id: String,
    pub faults: FaultyBox,
    pub fs: Arc<BoxFs>,
    _staging: tempfile::TempDir,
}

/// A client of `emu` with the admin's token.
pub fn client_of(emu: &TestEmu) -> Client {
    emu.client(RetryPolicy::default())
}

/// The options of the tests' filesystems (see the module note).
pub fn deterministic_options(root_folder_id: &str, staging: &std::path::Path) -> FsOptions {
    FsOptions {
        root_folder_id: root_folder_id.to_string(),
        ttl_healthy: LONG_TTL,
        ttl_unhealthy: LONG_TTL,
        prefetch_per_folder: 0,
        staging_dir: Some(staging.to_path_buf()),
        write_back: None,
        ..FsOptions::default()
    }
}

/// A filesystem of `root_folder_id`, talking to Box through `api`.
async fn filesystem(api: Arc<dyn BoxApi>, root_folder_id: &str) -> (Arc<BoxFs>, tempfile::TempDir) {
    let staging = tempfile::tempdir().expect("staging dir");
    let fs = Arc::new(BoxFs::new(
        api,
        deterministic_options(root_folder_id, staging.path()),
        None,
        KernelQueue::discard(),
    ));
    fs.init().await.expect("init");
    (fs, staging)
}

impl FsHarness {
    /// A new emulator, mounted from All Files.
    pub async fn start() -> FsHarness {
        Self::mount(Arc::new(TestEmu::start().await), "0").await
    }

    /// Mounts folder `root_folder_id` of `emu`.
    pub async fn mount(emu: Arc<TestEmu>, root_folder_id: &str) -> FsHarness {
        let faults = FaultyBox::new(Arc::new(client_of(&emu)));
        let (fs, staging) = filesystem(Arc::new(faults.clone()), root_folder_id).await;
        FsHarness {
            emu,
            root_folder_id: root_folder_id.to_string(),
            faults,
            fs,
            _staging: staging,
        }
    }

    /// Another mount of the same folder: nothing cached, no faults, a staging area of its
    /// own (kept with the returned directory). What it shows is what Box holds.
    pub async fn another_mount(&self) -> (Arc<BoxFs>, tempfile::TempDir) {
        let client = Arc::new(client_of(&self.emu));
        filesystem(client, &self.root_folder_id).await
    }
}

/// `path`'s components ("a/b" → ["a", "b"]; "" is the root).
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// The parent's path and the last name of `path`.
pub fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

/// Looks `path` up from the root, as the kernel does for each component.
pub async fn lookup(fs: &Arc<BoxFs>, path: &str) -> Result<FsAttr, FsError> {
    let mut attr = fs.getattr(ROOT_INO).await?;
    for name in components(path) {
        attr = fs.lookup(attr.ino, OsStr::new(name)).await?;
    }
    Ok(attr)
}

pub async fn ino_of(fs: &Arc<BoxFs>, path: &str) -> Result<Ino, FsError> {
    Ok(lookup(fs, path).await?.ino)
}

/// `open(path, O_RDWR)`, `pwrite(data, offset)`, `close`: what `close` answered is the
/// result (a failed open or write comes first).
pub async fn write_at(
    fs: &Arc<BoxFs>,
    path: &str,
    offset: u64,
    data: &[u8],
) -> Result<(), FsError> {
    let ino = ino_of(fs, path).await?;
    let opened = fs.open_for_write(ino, libc::O_RDWR).await?;
    let written = fs.write(opened.fh, offset, data.to_vec()).await;
    let closed = match written {
        Ok(n) if n as usize == data.len() => fs.flush(opened.fh).await,
        Ok(n) => Err(FsError::new(libc::EIO, format!("short write: {n} bytes"))),
        Err(e) => Err(e),
    };
    fs.release_file(opened.fh).await;
    closed
}

/// `open(path, O_CREAT | O_EXCL | O_WRONLY)`, `write(data)`, `close`.
pub async fn create_with(fs: &Arc<BoxFs>, path: &str, data: &[u8]) -> Result<(), FsError> {
    let (dir, name) = split(path);
    let parent = ino_of(fs, dir).await?;
    let (_, opened) = fs
        .create(
            parent,
            OsStr::new(name),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
        )
        .await?;
    let written = if data.is_empty() {
        Ok(0)
    } else {
        fs.write(opened.fh, 0, data.to_vec()).await
    };
    let closed = match written {
        Ok(_) => fs.flush(opened.fh).await,
        Err(e) => Err(e),
    };
    fs.release_file(opened.fh).await;
    closed
}

/// `open(path, O_RDONLY)`, reads to the end, `close`.
pub async fn read_all(fs: &Arc<BoxFs>, path: &str) -> Result<Vec<u8>, FsError> {
    let attr = lookup(fs, path).await?;
    if attr.kind != Kind::File {
        return Err(FsError::new(libc::EISDIR, "is a directory"));
    }
    let opened = fs.open(attr.ino, false).await?;
    let mut out = Vec::new();
    let result = loop {
        match fs.read(opened.fh, out.len() as u64, 64 * 1024).await {
            Ok(bytes) if bytes.is_empty() => break Ok(out),
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => break Err(e),
        }
    };
    fs.release_file(opened.fh).await;
    result
}

/// The names and attributes in directory `path`, as `readdir` hands them out (sorted by name),
/// less the root's link `.trash`.
pub async fn list(fs: &Arc<BoxFs>, path: &str) -> Result<Vec<(String, FsAttr)>, FsError> {
    let mut entries = list_all(fs, path).await?;
    entries.retain(|(name, attr)| !(path.is_empty() && name == ".trash" && attr.symlink));
    Ok(entries)
}

/// Every entry of the folder at `path`, also the root's link `.trash` to Box's trash, which
/// [`list`] leaves out (tests compare listings with what Box holds).
#[allow(dead_code)]
pub async fn list_all(fs: &Arc<BoxFs>, path: &str) -> Result<Vec<(String, FsAttr)>, FsError> {
    let ino = ino_of(fs, path).await?;
    let opened = fs.opendir(ino).await?;
    let handle = fs.dir_handle(opened.fh)?;
    let view = handle.view_answering(usize::MAX).await;
    fs.releasedir(opened.fh);
    if let Some(Err(e)) = view.done {
        return Err(e);
    }
    let mut entries: Vec<(String, FsAttr)> = view
        .entries_from(0)
        .map(|(_, e)| (e.name.to_string(), e.attr.clone()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}
