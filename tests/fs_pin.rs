//! Pinning ("available offline") without the kernel: `user.box.offline` pins a folder and the
//! worker downloads every file below it at background priority into the content cache, where
//! a small bound does not evict it while unpinned content goes; a pin the disk cannot hold is
//! ENOSPC; unpinning lets the content go; a file changed on Box, or added to a pinned folder,
//! is fetched again through the event stream (one written through the mount once it is
//! uploaded), and a pinned folder trashed on Box stops counting; pins and their content
//! survive a remount.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use box_client::events::{EventStreamOptions, StreamType};
use box_client::upload::UploadOptions;
use boxfs::fs::backend::faults::{Call, FaultyBox};
use boxfs::fs::backend::BoxApi;
use boxfs::fs::kernel::KernelQueue;
use boxfs::fs::pin::{PinFile, PinOptions, PinStatus};
use boxfs::fs::read::content_cache::ContentCache;
use boxfs::fs::sync::events::{EventFollower, FollowerOptions};
use boxfs::fs::{BoxFs, FsOptions};
use common::fs::{client_of, create_with, deterministic_options, ino_of, read_all};
use common::mount::eventually;
use common::TestEmu;
use tokio::task::JoinHandle;

const MIB: usize = 1 << 20;
const OFFLINE: &str = "user.box.offline";

/// Bytes that differ from one seed to the next.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A filesystem with a content cache in `dir` (bounded at `bound`), its pins kept in `dir`,
/// and the pins' worker running; with `events`, the event follower the daemon runs too.
struct Mount {
    faults: FaultyBox,
    fs: Arc<BoxFs>,
    cache: Arc<ContentCache>,
    tasks: Vec<JoinHandle<()>>,
    _staging: tempfile::TempDir,
}

impl Drop for Mount {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn mount(emu: &TestEmu, dir: &Path, bound: u64, offline: PinOptions, events: bool) -> Mount {
    mount_with(emu, dir, bound, events, |o| o.offline = offline).await
}

/// [`mount`] with the filesystem's options changed by `adjust`.
async fn mount_with(
    emu: &TestEmu,
    dir: &Path,
    bound: u64,
    events: bool,
    adjust: impl FnOnce(&mut FsOptions),
) -> Mount {
    let staging = tempfile::tempdir().unwrap();
    let faults = FaultyBox::new(Arc::new(client_of(emu)));
    let pins = PinFile::in_dir(dir);
    let saved = pins.load();
    let cache = Arc::new(
        ContentCache::open_keeping(
            dir.join("content"),
            bound,
            MIB as u64,
            saved.held_files.clone(),
        )
        .unwrap(),
    );
    let mut opts = deterministic_options("0", staging.path());
    adjust(&mut opts);
    let fs = Arc::new(BoxFs::new(
        Arc::new(faults.clone()),
        opts,
        Some(cache.clone()),
        KernelQueue::discard(),
    ));
    fs.restore_pins(pins, saved);
    let position = fs
        .client()
        .latest_stream_position(StreamType::All)
        .await
        .unwrap();
    fs.init().await.unwrap();
    let mut tasks = vec![fs.spawn_pin_worker()];
    if events {
        let follower = EventFollower::with_options(
            fs.client().clone(),
            fs.table().clone(),
            fs.content_cache().cloned(),
            Arc::new(fs.kernel_queue().clone()),
            fs.health().clone(),
            FollowerOptions {
                stream: EventStreamOptions {
                    min_backoff: Duration::from_millis(20),
                    max_backoff: Duration::from_millis(200),
                    ..EventStreamOptions::default()
                },
                own_changes: Some(fs.own_changes().clone()),
                ..FollowerOptions::default()
            },
        );
        tasks.push(follower.spawn(position));
    }
    Mount {
        faults,
        fs,
        cache,
        tasks,
        _staging: staging,
    }
}

/// Waits (off the runtime's workers) until `check` holds, for at most 20 s.
async fn until(what: &str, check: impl Fn() -> bool + Send + 'static) {
    let met =
        tokio::task::spawn_blocking(move || eventually(Duration::from_secs(20), check).is_some())
            .await
            .unwrap();
    assert!(met, "not within 20 s: {what}");
}

/// Waits until every file kept for the pins is on disk, `files` of them.
async fn until_downloaded(fs: &Arc<BoxFs>, files: u64) -> PinStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = fs.pin_status();
        if s.files_total == files
            && s.files_done == files
            && s.items.iter().all(|i| i.walked)
            && s.downloading.is_empty()
        {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {files} pinned files on disk within 20 s: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get_offline(fs: &Arc<BoxFs>, path: &str) -> String {
    let ino = ino_of(fs, path).await.unwrap();
    String::from_utf8(fs.getxattr(ino, OsStr::new(OFFLINE)).await.unwrap()).unwrap()
}

async fn set_offline(fs: &Arc<BoxFs>, path: &str, value: &str) -> Result<(), i32> {
    let ino = ino_of(fs, path).await.unwrap();
    fs.setxattr(ino, OsStr::new(OFFLINE), value.as_bytes(), 0)
        .await
        .map_err(|e| e.errno())
}

/// `docs/` with a 2.5 MiB file and `deep/b.txt`, and `other.bin` (2 MiB) beside it.
async fn tree(emu: &TestEmu) -> (String, Vec<u8>, Vec<u8>) {
    let docs = emu.mkdir("0", "docs").await;
    let deep = emu.mkdir(&docs, "deep").await;
    let a = pattern(5 * MIB / 2, 1);
    emu.upload_file(&docs, "a.bin", &a).await;
    emu.upload_file(&deep, "b.txt", b"bee").await;
    let other = pattern(2 * MIB, 2);
    emu.upload_file("0", "other.bin", &other).await;
    (docs, a, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_a_folder_downloads_everything_below_it_in_the_background() {
    let emu = Arc::new(TestEmu::start().await);
    let (_, a, _) = tree(&emu).await;
    let dir = tempfile::tempdir().unwrap();
    let m = mount(&emu, dir.path(), 64 << 20, PinOptions::default(), false).await;
    let fs = &m.fs;
    assert_eq!(get_offline(fs, "docs").await, "0");

    set_offline(fs, "docs", "1").await.unwrap();
    let status = until_downloaded(fs, 2).await;
    assert_eq!(status.bytes_total, a.len() as u64 + 3);
    assert_eq!(status.items.len(), 1);
    assert_eq!(status.items[0].path.as_deref(), Some("docs"));
    assert_eq!(status.failures, 0);
    // Every download was background work, and the content is in the cache, pinned.
    let downloads = m.faults.calls(Call::SourceDownload);
    assert!(downloads >= 2, "{downloads}");
    assert_eq!(m.faults.background_calls(Call::SourceDownload), downloads);
    assert_eq!(m.cache.pinned_bytes(), a.len() as u64 + 3);
    assert_eq!(m.cache.used_bytes(), 0);
    // Reading it back costs nothing; the listings were cached on the way.
    let listings = m.faults.calls(Call::FolderItemsPage);
    assert_eq!(read_all(fs, "docs/a.bin").await.unwrap(), a);
    assert_eq!(read_all(fs, "docs/deep/b.txt").await.unwrap(), b"bee");
    assert_eq!(m.faults.calls(Call::SourceDownload), downloads);
    assert_eq!(m.faults.calls(Call::FolderItemsPage), listings);

    // Offline: the folder and what is below it, not its neighbours.
    assert_eq!(get_offline(fs, "docs").await, "1");
    assert_eq!(get_offline(fs, "docs/deep/b.txt").await, "1");
    assert_eq!(get_offline(fs, "other.bin").await, "0");
    assert_eq!(get_offline(fs, "").await, "0");
    // Not listed: `cp -a` would carry it onto copies.
    let names = fs
        .listxattr(ino_of(fs, "docs/a.bin").await.unwrap())
        .await
        .unwrap();
    assert!(!names.split(|b| *b == 0).any(|n| n == OFFLINE.as_bytes()));

    // Bad input is an errno: a value other than 0 or 1, XATTR_CREATE on what always exists,
    // unpinning something pinned only through its folder. Pinning it again changes nothing.
    assert_eq!(set_offline(fs, "docs", "yes").await, Err(libc::EINVAL));
    let docs = ino_of(fs, "docs").await.unwrap();
    let created = fs
        .setxattr(docs, OsStr::new(OFFLINE), b"1", libc::XATTR_CREATE)
        .await;
    assert_eq!(created.unwrap_err().errno(), libc::EEXIST);
    assert_eq!(set_offline(fs, "docs/deep", "0").await, Err(libc::EPERM));
    set_offline(fs, "docs/deep/b.txt", "1").await.unwrap();
    set_offline(fs, "other.bin", "0").await.unwrap();
    assert_eq!(fs.pin_status().items.len(), 1);

    // A file written through the mount into the pinned folder is kept once it is on Box.
    create_with(fs, "docs/mine.txt", b"written here")
        .await
        .unwrap();
    until_downloaded(fs, 3).await;
    assert_eq!(get_offline(fs, "docs/mine.txt").await, "1");

    // The mount's root can be pinned too; then everything is offline.
    set_offline(fs, "", "1").await.unwrap();
    until_downloaded(fs, 4).await;
    assert_eq!(get_offline(fs, "other.bin").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_content_outlives_a_small_bound_and_unpinning_lets_it_go() {
    let emu = Arc::new(TestEmu::start().await);
    let (_, a, other) = tree(&emu).await;
    let dir = tempfile::tempdir().unwrap();
    // Room for one chunk of unpinned content.
    let m = mount(&emu, dir.path(), MIB as u64, PinOptions::default(), false).await;
    let fs = &m.fs;
    set_offline(fs, "docs", "1").await.unwrap();
    until_downloaded(fs, 2).await;
    assert_eq!(m.cache.pinned_bytes(), a.len() as u64 + 3);

    // 2 MiB of unpinned content through a 1 MiB bound: it is evicted, the pins are not.
    assert_eq!(read_all(fs, "other.bin").await.unwrap(), other);
    let c = m.cache.clone();
    until("the unpinned chunk stored", move || {
        c.used_bytes() == MIB as u64
    })
    .await;
    let before = m.faults.calls(Call::SourceDownload);
    assert_eq!(read_all(fs, "other.bin").await.unwrap(), other);
    assert!(
        m.faults.calls(Call::SourceDownload) > before,
        "other.bin was cached whole"
    );
    let before = m.faults.calls(Call::SourceDownload);
    assert_eq!(read_all(fs, "docs/a.bin").await.unwrap(), a);
    assert_eq!(m.faults.calls(Call::SourceDownload), before);
    assert!(m.cache.used_bytes() <= MIB as u64);

    // Unpinned, it is ordinary content under the bound again.
    set_offline(fs, "docs", "0").await.unwrap();
    let status = fs.pin_status();
    assert!(status.items.is_empty());
    assert_eq!(status.files_total, 0);
    assert_eq!(m.cache.pinned_bytes(), 0);
    assert!(m.cache.used_bytes() <= MIB as u64);
    assert_eq!(get_offline(fs, "docs/a.bin").await, "0");
    let before = m.faults.calls(Call::SourceDownload);
    assert_eq!(read_all(fs, "docs/a.bin").await.unwrap(), a);
    assert!(m.faults.calls(Call::SourceDownload) > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_the_disk_cannot_hold_is_refused_with_enospc() {
    let emu = Arc::new(TestEmu::start().await);
    let (_, a, _) = tree(&emu).await;
    let dir = tempfile::tempdir().unwrap();
    // Keep all but 1 MiB of the disk free... or rather: say so, whatever the disk has.
    let free = boxfs::fs::pin::space_at(dir.path(), Some(0)).unwrap().free;
    let offline = PinOptions {
        keep_free: Some(free.saturating_sub(MIB as u64)),
        ..PinOptions::default()
    };
    let m = mount(&emu, dir.path(), 64 << 20, offline, false).await;
    let fs = &m.fs;
    let ino = ino_of(fs, "docs").await.unwrap();
    let err = fs
        .setxattr(ino, OsStr::new(OFFLINE), b"1", 0)
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::ENOSPC);
    assert!(err.message().contains("needs 2.5 MiB"), "{}", err.message());
    let status = fs.pin_status();
    assert!(status.items.is_empty());
    let refused = status.refused.expect("the refusal is recorded");
    assert_eq!(refused.path, "docs");
    assert_eq!(refused.needed, a.len() as u64 + 3);
    assert!(refused.available < refused.needed);
    assert_eq!(get_offline(fs, "docs").await, "0");
    // What fits is pinned.
    set_offline(fs, "docs/deep/b.txt", "1").await.unwrap();
    until_downloaded(fs, 1).await;
    assert_eq!(m.faults.calls(Call::SourceDownload), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_box_are_fetched_while_pinned_and_a_trashed_pin_stops_counting() {
    let emu = Arc::new(TestEmu::start().await);
    let (docs, _, _) = tree(&emu).await;
    let dir = tempfile::tempdir().unwrap();
    let m = mount(&emu, dir.path(), 64 << 20, PinOptions::default(), true).await;
    let fs = &m.fs;
    set_offline(fs, "docs", "1").await.unwrap();
    until_downloaded(fs, 2).await;
    let box_id = |path: &'static str| {
        let fs = fs.clone();
        async move {
            let ino = ino_of(&fs, path).await.unwrap();
            String::from_utf8(fs.getxattr(ino, OsStr::new("user.box.id")).await.unwrap()).unwrap()
        }
    };
    let a_id = box_id("docs/a.bin").await;

    // Another client changes a.bin and adds c.bin: both are fetched without a read.
    let other: Arc<dyn BoxApi> = Arc::new(client_of(&emu));
    let src = tempfile::NamedTempFile::new().unwrap();
    let new_a = pattern(3 * MIB / 2, 9);
    std::fs::write(src.path(), &new_a).unwrap();
    other
        .upload_new_version(&a_id, src.path().to_path_buf(), &UploadOptions::default())
        .await
        .unwrap();
    emu.upload_file(&docs, "c.bin", b"sea").await;
    let f = fs.clone();
    let want = new_a.len() as u64 + 3 + 3;
    until("the new version and the new file on disk", move || {
        let s = f.pin_status();
        s.files_total == 3 && s.files_done == 3 && s.bytes_done == want
    })
    .await;
    assert_eq!(m.cache.pinned_bytes(), want);
    let downloads = m.faults.calls(Call::SourceDownload);
    assert_eq!(read_all(fs, "docs/a.bin").await.unwrap(), new_a);
    assert_eq!(read_all(fs, "docs/c.bin").await.unwrap(), b"sea");
    assert_eq!(m.faults.calls(Call::SourceDownload), downloads);

    // A file trashed on Box leaves the pin; the pinned folder trashed, the pin goes.
    let c_id = box_id("docs/c.bin").await;
    other.delete_file(&c_id, None).await.unwrap();
    let f = fs.clone();
    until("c.bin no longer counted", move || {
        f.pin_status().files_total == 2
    })
    .await;
    other.delete_folder(&docs, true, None).await.unwrap();
    let f = fs.clone();
    let path = dir.path().to_path_buf();
    until(
        "the trashed folder unpinned, also in the pins file",
        move || {
            let s = f.pin_status();
            let saved = PinFile::in_dir(&path).load();
            s.items.is_empty() && s.files_total == 0 && saved.pins.is_empty()
        },
    )
    .await;
    let c = m.cache.clone();
    until("its content released", move || c.pinned_bytes() == 0).await;
    let saved = PinFile::in_dir(dir.path()).load();
    assert!(
        saved.pins.is_empty() && saved.held_files.is_empty(),
        "{saved:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_and_their_content_survive_a_remount() {
    let emu = Arc::new(TestEmu::start().await);
    let (_, a, _) = tree(&emu).await;
    let dir = tempfile::tempdir().unwrap();
    let b_id = {
        let m = mount(&emu, dir.path(), 64 << 20, PinOptions::default(), false).await;
        set_offline(&m.fs, "docs", "1").await.unwrap();
        until_downloaded(&m.fs, 2).await;
        let ino = ino_of(&m.fs, "docs/deep/b.txt").await.unwrap();
        String::from_utf8(m.fs.getxattr(ino, OsStr::new("user.box.id")).await.unwrap()).unwrap()
    };
    let saved = PinFile::in_dir(dir.path()).load();
    assert_eq!(saved.pins.len(), 1);
    assert_eq!(saved.held_files.len(), 2);

    // A bound far below the pinned content: the cache keeps it from the moment it opens.
    let m = mount(&emu, dir.path(), MIB as u64, PinOptions::default(), false).await;
    assert_eq!(m.cache.pinned_bytes(), a.len() as u64 + 3);
    let status = until_downloaded(&m.fs, 2).await;
    assert_eq!(status.items[0].path.as_deref(), Some("docs"));
    assert_eq!(m.faults.calls(Call::SourceDownload), 0);
    assert_eq!(get_offline(&m.fs, "docs/a.bin").await, "1");
    assert_eq!(read_all(&m.fs, "docs/a.bin").await.unwrap(), a);
    assert_eq!(m.faults.calls(Call::SourceDownload), 0);
    drop(m);

    // b.txt changes while nothing is mounted: the next mount fetches the new version and
    // lets the old one go (held, it would never be evicted).
    let other: Arc<dyn BoxApi> = Arc::new(client_of(&emu));
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), b"bee, again").unwrap();
    other
        .upload_new_version(&b_id, src.path().to_path_buf(), &UploadOptions::default())
        .await
        .unwrap();
    let m = mount(&emu, dir.path(), MIB as u64, PinOptions::default(), false).await;
    let status = until_downloaded(&m.fs, 2).await;
    let want = a.len() as u64 + 10;
    assert_eq!(status.bytes_done, want);
    assert_eq!(m.faults.calls(Call::SourceDownload), 1);
    let c = m.cache.clone();
    until("the old version of b.txt dropped", move || {
        c.pinned_bytes() == want
    })
    .await;
    assert_eq!(
        read_all(&m.fs, "docs/deep/b.txt").await.unwrap(),
        b"bee, again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mount_pins_too_and_changes_nothing_on_box() {
    let emu = Arc::new(TestEmu::start().await);
    tree(&emu).await;
    let dir = tempfile::tempdir().unwrap();
    let m = mount_with(&emu, dir.path(), 64 << 20, false, |o| {
        o.identity.read_only = true
    })
    .await;
    set_offline(&m.fs, "docs/deep", "1").await.unwrap();
    until_downloaded(&m.fs, 1).await;
    let ino = ino_of(&m.fs, "docs/deep").await.unwrap();
    m.fs.removexattr(ino, OsStr::new(OFFLINE)).await.unwrap();
    assert!(m.fs.pin_status().items.is_empty());
    // Box's own attributes stay read-only there.
    let err =
        m.fs.setxattr(ino, OsStr::new("user.box.shared_link"), b"open", 0)
            .await
            .unwrap_err();
    assert_eq!(err.errno(), libc::EROFS);
    assert!(Call::ALL
        .iter()
        .filter(|c| c.changes_box())
        .all(|c| m.faults.calls(*c) == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_tree_larger_than_the_metadata_cache_is_walked_whole() {
    let emu = Arc::new(TestEmu::start().await);
    let big = emu.mkdir("0", "big").await;
    for d in 0..5 {
        let sub = emu.mkdir(&big, &format!("d{d}")).await;
        for f in 0..2 {
            emu.upload_file(&sub, &format!("f{f}.txt"), format!("{d}{f}").as_bytes())
                .await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // 17 files and folders through a table of 6: folders leave it before their turn.
    let m = mount_with(&emu, dir.path(), 64 << 20, false, |o| o.max_inodes = 6).await;
    set_offline(&m.fs, "big", "1").await.unwrap();
    let status = until_downloaded(&m.fs, 10).await;
    assert_eq!(status.bytes_total, 20);
    assert_eq!(status.failures, 0, "{:?}", status.last_failure);
    assert_eq!(m.cache.pinned_bytes(), 20);
}
