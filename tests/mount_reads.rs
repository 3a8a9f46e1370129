//! Reads through a real mount: a 100 MB file byte-identical (SHA1 as Box reports it),
//! concurrent readers of one file and of several, random reads, the content cache serving a
//! re-read after a remount without downloading, and staying within a small `--cache-size`.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use box_emulator::store::{ItemKind, Version};
use box_emulator::EmulatorConfig;
use bytes::Bytes;
use common::mount::{count_requests, TestMount};
use common::TestEmu;
use sha1::{Digest, Sha1};

const BIG: usize = 100 * 1000 * 1000;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

/// Deterministic bytes that do not compress or repeat in short cycles.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Puts a file straight into the emulator's store (fast for big files); returns its SHA1.
fn seed_file(emu: &TestEmu, name: &str, data: Vec<u8>) -> String {
    let mut store = emu.emulator().shared.store();
    let admin = store.admin;
    let root = store.users[&admin].root_folder;
    let now = chrono::Utc::now();
    let sha1 = hex::encode(Sha1::digest(&data));
    let size = data.len() as u64;
    store.blobs.insert(sha1.clone(), Bytes::from(data).into());
    let mut f = store.new_item(ItemKind::File, name, root, admin, admin, now);
    let id = store.alloc_id();
    f.versions.push(Version {
        id,
        sha1: sha1.clone(),
        size,
        name: name.into(),
        created_at: now,
        modified_by: admin,
    });
    store.insert_item(f);
    sha1
}

fn sha1_of_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).expect("open");
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

async fn emu_with_log(log: &Path) -> Arc<TestEmu> {
    Arc::new(
        TestEmu::start_with(EmulatorConfig {
            request_log: Some(log.to_path_buf()),
            ..EmulatorConfig::default()
        })
        .await,
    )
}

fn downloads(log: &Path) -> usize {
    count_requests(log, "GET", |p| {
        p.contains("/content") || p.starts_with("/dl/")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_file_reads_back_byte_identical_and_the_cache_serves_a_reread() {
    let log = tempfile::NamedTempFile::new().expect("log");
    let emu = emu_with_log(log.path()).await;
    let data = pattern(BIG, 1);
    let sha1 = seed_file(&emu, "big.bin", data.clone());
    let e = emu.clone();
    let log_path = log.path().to_path_buf();
    blocking(move || {
        let cache = tempfile::tempdir().expect("cache");
        let cache_arg = cache.path().to_str().expect("path").to_string();
        let mut m = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        assert_eq!(sha1_of_file(&m.path("big.bin")), sha1);
        // Random reads anywhere in it.
        let mut f = std::fs::File::open(m.path("big.bin")).expect("open");
        for (i, off) in [77_777_777u64, 3, 50_000_000, 99_999_000, 12_345_678]
            .into_iter()
            .enumerate()
        {
            let mut buf = vec![0u8; 1000 + i * 4096];
            f.seek(SeekFrom::Start(off)).expect("seek");
            let n = f.read(&mut buf).expect("read");
            let end = (off as usize + buf.len()).min(BIG);
            assert_eq!(&buf[..n], &data[off as usize..end], "at {off}");
        }
        drop(f);
        m.unmount();
        // A new mount on the same cache directory reads it without downloading it again.
        std::fs::write(&log_path, b"").expect("reset log");
        let m = TestMount::start(&e, &["--cache-dir", &cache_arg]);
        assert_eq!(sha1_of_file(&m.path("big.bin")), sha1);
        let fetched = downloads(&log_path);
        assert!(
            fetched <= 1,
            "{fetched} download requests for a cached file"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_each_get_the_right_bytes() {
    let log = tempfile::NamedTempFile::new().expect("log");
    let emu = emu_with_log(log.path()).await;
    let a = pattern(20 << 20, 2);
    let b = pattern(7 << 20, 3);
    let sha_a = seed_file(&emu, "a.bin", a);
    let sha_b = seed_file(&emu, "b.bin", b);
    let e = emu.clone();
    blocking(move || {
        let m = Arc::new(TestMount::start(&e, &[]));
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let m = m.clone();
                let (name, sha) = if i % 2 == 0 {
                    ("a.bin", sha_a.clone())
                } else {
                    ("b.bin", sha_b.clone())
                };
                std::thread::spawn(move || assert_eq!(sha1_of_file(&m.path(name)), sha))
            })
            .collect();
        for h in handles {
            h.join().expect("reader");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_cache_size_bounds_the_content_cache() {
    let log = tempfile::NamedTempFile::new().expect("log");
    let emu = emu_with_log(log.path()).await;
    let mut shas = Vec::new();
    for i in 0..4 {
        shas.push(seed_file(
            &emu,
            &format!("f{i}.bin"),
            pattern(6 << 20, 10 + i),
        ));
    }
    let e = emu.clone();
    blocking(move || {
        let cache = tempfile::tempdir().expect("cache");
        let cache_arg = cache.path().to_str().expect("path").to_string();
        let m = TestMount::start(&e, &["--cache-dir", &cache_arg, "--cache-size", "8M"]);
        for (i, sha) in shas.iter().enumerate() {
            assert_eq!(&sha1_of_file(&m.path(&format!("f{i}.bin"))), sha);
        }
        // The content only: the directory also holds the daemon's lock and boxfs's mark.
        let used = du(&cache.path().join("content"));
        assert!(
            used <= 8 << 20,
            "content cache holds {used} bytes, bound 8 MiB"
        );
        // Evicted content is fetched again, correctly.
        assert_eq!(sha1_of_file(&m.path("f0.bin")), shas[0]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_cached_chunk_is_caught_and_read_again() {
    let log = tempfile::NamedTempFile::new().expect("log");
    let emu = emu_with_log(log.path()).await;
    let data = pattern(3 << 20, 21);
    let sha1 = seed_file(&emu, "rot.bin", data);
    let e = emu.clone();
    blocking(move || {
        let m = TestMount::start(&e, &[]);
        assert_eq!(sha1_of_file(&m.path("rot.bin")), sha1);
        // Chunks are stored off the reply path: wait for all three.
        let content = m.cache_dir.join("content");
        let chunks = || -> Vec<std::path::PathBuf> {
            let mut found = Vec::new();
            let mut stack = vec![content.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_dir() {
                        stack.push(e.path());
                    } else if name.parse::<u64>().is_ok() {
                        found.push(e.path());
                    }
                }
            }
            found.sort();
            found
        };
        assert!(
            common::mount::eventually(std::time::Duration::from_secs(10), || chunks().len() == 3)
                .is_some(),
            "chunks cached: {:?}",
            chunks()
        );
        // Bit rot in the middle chunk.
        let victim = chunks()
            .into_iter()
            .find(|p| p.file_name().is_some_and(|n| n == "1"))
            .expect("chunk 1");
        let mut bytes = std::fs::read(&victim).expect("chunk");
        bytes[12_345] ^= 0x20;
        std::fs::write(&victim, &bytes).expect("flip");
        // The kernel's copy must go too, or the next read never reaches the daemon.
        std::fs::write("/proc/sys/vm/drop_caches", "1").expect("drop_caches (needs root)");
        let before = downloads(&log_path_of(&e));
        assert_eq!(sha1_of_file(&m.path("rot.bin")), sha1);
        assert!(
            downloads(&log_path_of(&e)) > before,
            "the damaged chunk was fetched again"
        );
        let warnings = m.log().matches("fails its checksum").count();
        assert_eq!(
            warnings,
            1,
            "one warning for the damaged chunk:\n{}",
            m.log()
        );
    })
    .await;
}

fn log_path_of(emu: &TestEmu) -> std::path::PathBuf {
    emu.emulator()
        .shared
        .config
        .request_log
        .clone()
        .expect("request log")
}

/// Bytes of cached chunks under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = e.metadata().expect("meta");
            if meta.is_dir() {
                stack.push(e.path());
            } else if e.file_name() != "meta" {
                // What the cache accounts: chunk bytes, without each chunk's 8-byte hash.
                total += meta.len().saturating_sub(8);
            }
        }
    }
    total
}
