//! The mount's read path (`fs::read::FileReader`) against the emulator: exact bytes for any
//! read pattern, parallel read-ahead for sequential readers that survives the kernel's
//! reorderings, small fetches for random reads, the content cache (warm reads without the
//! network, never another version's chunks), expired download URLs, failures and
//! cancellation.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use box_client::upload::UploadOptions;
use box_client::Client;
use box_client::RetryPolicy;
use box_emulator::{EmulatorConfig, Knobs};
use boxfs::fs::read::content_cache::ContentCache;
use boxfs::fs::read::reader::{FileReader, FileVersionRef, ReadConfig, ReadStats};
use common::TestEmu;
use sha1::{Digest, Sha1};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

fn client(t: &TestEmu) -> Client {
    t.client(RetryPolicy::default())
}

/// Bytes that differ at every offset, so that a misplaced slice shows.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// Small sizes, so that a few MiB exercise every part of the machinery.
fn small_cfg() -> ReadConfig {
    ReadConfig {
        part_size: 256 * KIB,
        initial_window: 128 * KIB,
        max_window: MIB,
        max_parallel: 4,
        backlog: 512 * KIB,
        reorder_distance: 512 * KIB,
        random_align: 16 * KIB,
    }
}

fn small_cache(dir: &tempfile::TempDir) -> Arc<ContentCache> {
    Arc::new(ContentCache::open_with_chunk_size(dir.path(), 64 * MIB, 64 * KIB).unwrap())
}

struct Uploaded {
    id: String,
    version: String,
    sha1: String,
    data: Vec<u8>,
}

impl Uploaded {
    fn by_version(&self) -> FileVersionRef {
        FileVersionRef {
            file_id: self.id.clone(),
            version: self.version.clone(),
            size: self.data.len() as u64,
            sha1: None,
        }
    }
}

async fn upload(t: &TestEmu, name: &str, data: Vec<u8>) -> Uploaded {
    let file = t.upload_file("0", name, &data).await;
    Uploaded {
        id: file["id"].as_str().unwrap().to_string(),
        version: file["file_version"]["id"].as_str().unwrap().to_string(),
        sha1: file["sha1"].as_str().unwrap().to_string(),
        data,
    }
}

fn reader(t: &TestEmu, cache: Option<Arc<ContentCache>>, file: FileVersionRef) -> FileReader {
    FileReader::new(Arc::new(client(t)), cache, file, small_cfg())
}

/// Reads the whole file front to back with read sizes taken in turn from `sizes`.
async fn read_all(r: &FileReader, size: u64, sizes: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(size as usize);
    let mut i = 0;
    loop {
        let len = sizes[i % sizes.len()];
        i += 1;
        let got = r.read(out.len() as u64, len).await.unwrap();
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= len as usize);
        out.extend_from_slice(&got);
    }
    assert_eq!(out.len() as u64, size);
    out
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Waits until the reader's cache writes are done.
async fn cache_writes_settle(r: &FileReader) -> ReadStats {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = r.stats();
        if stats.cache_writes_pending == 0 && stats.in_flight == 0 {
            return stats;
        }
        assert!(Instant::now() < deadline, "cache writes never finished");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const ODD_SIZES: &[u32] = &[1, 4093, 65_537, 100_000, 7, 131_072, 333_333];

#[tokio::test]
async fn whole_file_reads_are_byte_identical_with_odd_read_sizes() {
    let t = TestEmu::start().await;
    let f = upload(&t, "odd.bin", content(3 * MIB as usize + 12_345, 1)).await;
    let r = reader(&t, None, f.by_version());
    let got = read_all(&r, f.data.len() as u64, ODD_SIZES).await;
    assert_eq!(sha1_hex(&got), f.sha1);
    let stats = r.stats();
    assert_eq!(
        stats.network_bytes,
        f.data.len() as u64,
        "nothing fetched twice: {stats:?}"
    );
    assert_eq!(stats.url_resolutions, 1, "{stats:?}");
}

#[tokio::test]
async fn sequential_reading_fetches_parts_in_parallel_and_grows_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let t = TestEmu::start_with(EmulatorConfig {
        request_log: Some(log.clone()),
        ..Default::default()
    })
    .await;
    let f = upload(&t, "seq.bin", content(4 * MIB as usize, 2)).await;
    t.emulator().set_knobs(Knobs {
        latency_ms: 10,
        ..Default::default()
    });
    let r = reader(&t, None, f.by_version());
    let got = read_all(&r, f.data.len() as u64, &[128 * 1024]).await;
    assert_eq!(got, f.data);

    let stats = r.stats();
    assert_eq!(
        stats.window, MIB,
        "the window grew to its maximum: {stats:?}"
    );
    assert!(stats.read_ahead_parts > 0, "{stats:?}");
    assert!(stats.peak_in_flight >= 2, "parts overlap: {stats:?}");
    assert!(stats.peak_in_flight <= 4, "at most max_parallel: {stats:?}");
    assert_eq!(stats.network_bytes, f.data.len() as u64, "{stats:?}");
    // 32 reads of 128 KiB, but GETs of whole 256 KiB parts once the window grew.
    assert!(
        stats.network_requests <= 4 * MIB / (256 * KIB) + 4,
        "{stats:?}"
    );
    // The emulator saw exactly those GETs of the download URL.
    let dl_requests = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"path\":\"/dl/"))
        .count() as u64;
    assert_eq!(dl_requests, stats.network_requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_and_repeated_kernel_reads_do_not_refetch() {
    let t = TestEmu::start().await;
    let size = 4 * MIB as usize;
    let f = upload(&t, "kernel.bin", content(size, 3)).await;
    let r = Arc::new(reader(&t, None, f.by_version()));
    const READ: u64 = 128 * KIB;
    // The kernel's read-ahead: four reads in flight at once, answered in any order, some
    // asked twice, and now and then a short step back.
    let orders: [[u64; 4]; 3] = [[2, 0, 3, 1], [0, 1, 2, 3], [3, 2, 1, 0]];
    let mut group = 0u64;
    while group * 4 * READ < size as u64 {
        let order = orders[group as usize % orders.len()];
        if group % 3 == 2 {
            let back = group * 4 * READ - 200 * KIB;
            let got = r.read(back, 64 * 1024).await.unwrap();
            assert_eq!(&got[..], &f.data[back as usize..back as usize + 64 * 1024]);
        }
        let mut tasks = Vec::new();
        for (n, i) in order.iter().chain([order[0]].iter()).enumerate() {
            let offset = (group * 4 + i) * READ;
            let r = r.clone();
            tasks.push(tokio::spawn(async move {
                if n == 2 {
                    tokio::task::yield_now().await;
                }
                (offset, r.read(offset, READ as u32).await.unwrap())
            }));
        }
        for task in tasks {
            let (offset, got) = task.await.unwrap();
            let o = offset as usize;
            assert_eq!(&got[..], &f.data[o..(o + READ as usize).min(size)]);
        }
        // The window, two parts and the backlog at most.
        let held = r.stats().buffered_bytes;
        assert!(held <= 2 * MIB, "{held} bytes held");
        group += 1;
    }
    let stats = r.stats();
    assert_eq!(
        stats.network_bytes, size as u64,
        "each byte fetched once: {stats:?}"
    );
    assert!(stats.read_ahead_parts > 0, "still sequential: {stats:?}");
    assert_eq!(
        stats.cancelled_parts, 0,
        "no read-ahead was dropped: {stats:?}"
    );
}

#[tokio::test]
async fn random_small_reads_fetch_only_small_ranges() {
    let t = TestEmu::start().await;
    let f = upload(&t, "random.bin", content(4 * MIB as usize, 4)).await;
    let r = reader(&t, None, f.by_version());
    let offsets = [
        3_100_000u64,
        200_000,
        2_500_000,
        1_300_001,
        3_900_000,
        700_000,
        2_000_000,
        3_500_000,
    ];
    for &o in &offsets {
        let got = r.read(o, 4096).await.unwrap();
        assert_eq!(&got[..], &f.data[o as usize..o as usize + 4096]);
    }
    let stats = r.stats();
    assert_eq!(stats.read_ahead_parts, 0, "{stats:?}");
    assert_eq!(stats.network_requests, offsets.len() as u64, "{stats:?}");
    // Each 4 KiB read rounds out to one or two 16 KiB blocks.
    assert!(
        stats.network_bytes <= offsets.len() as u64 * 32 * KIB,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_second_read_comes_from_the_content_cache() {
    let t = TestEmu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(&dir);
    let f = upload(&t, "cached.bin", content(2 * MIB as usize + 777, 5)).await;
    let size = f.data.len() as u64;

    let first = reader(&t, Some(cache.clone()), f.by_version());
    assert_eq!(read_all(&first, size, ODD_SIZES).await, f.data);
    let stats = cache_writes_settle(&first).await;
    let chunks = cache.chunk_count(size);
    assert_eq!(stats.cache_stores, chunks, "every chunk stored: {stats:?}");
    drop(first);

    let second = reader(&t, Some(cache.clone()), f.by_version());
    assert_eq!(read_all(&second, size, &[131_072, 5000]).await, f.data);
    let stats = second.stats();
    assert_eq!(stats.network_bytes, 0, "{stats:?}");
    assert_eq!(stats.url_resolutions, 0, "{stats:?}");
    assert_eq!(stats.cache_hits, chunks, "{stats:?}");

    // Random reads are served from the cache too.
    let third = reader(&t, Some(cache), f.by_version());
    let got = third.read(1_500_000, 10).await.unwrap();
    assert_eq!(&got[..], &f.data[1_500_000..1_500_010]);
    assert_eq!(third.stats().network_bytes, 0);
}

#[tokio::test]
async fn a_new_version_is_never_served_from_the_old_versions_cache() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(&dir);
    let v1 = upload(&t, "versions.bin", content(MIB as usize, 6)).await;
    let size = v1.data.len() as u64;
    let old = reader(&t, Some(cache.clone()), v1.by_version());
    read_all(&old, size, &[65_536]).await;
    cache_writes_settle(&old).await;

    // Same size, other bytes.
    let v2_data = content(size as usize, 7);
    let item = c
        .upload_new_version(&v1.id, v2_data.clone(), &UploadOptions::default())
        .await
        .unwrap();
    let v2 = item.file_version.unwrap();
    let new = reader(
        &t,
        Some(cache.clone()),
        FileVersionRef {
            file_id: v1.id.clone(),
            version: v2.id.clone(),
            size,
            sha1: None,
        },
    );
    assert_eq!(read_all(&new, size, &[65_536]).await, v2_data);
    assert_eq!(new.stats().network_bytes, size);
    assert_eq!(new.stats().cache_hits, 0);

    // The old version by its id, without the cache: Box serves that version.
    let old_again = reader(&t, None, v1.by_version());
    assert_eq!(read_all(&old_again, size, &[300_000]).await, v1.data);

    // A sha1 for version: the current content is read and checked against it.
    let by_sha1 = |sha1: &str| FileVersionRef {
        file_id: v1.id.clone(),
        version: sha1.to_string(),
        size,
        sha1: None,
    };
    let current = reader(&t, None, by_sha1(&sha1_hex(&v2_data)));
    assert_eq!(read_all(&current, size, &[300_000]).await, v2_data);
    let stale = reader(&t, None, by_sha1(&v1.sha1));
    let err = stale.read(0, 4096).await.unwrap_err();
    assert_eq!(err.errno(), libc::ESTALE, "{err}");
}

#[tokio::test]
async fn reads_at_and_past_the_end() {
    let t = TestEmu::start().await;
    let f = upload(&t, "short.bin", content(100_000, 8)).await;
    let r = reader(&t, None, f.by_version());
    assert!(r.read(100_000, 10).await.unwrap().is_empty());
    assert!(r.read(100_005, 10).await.unwrap().is_empty());
    assert!(r.read(u64::MAX - 3, u32::MAX).await.unwrap().is_empty());
    assert_eq!(r.stats().url_resolutions, 0, "no network for nothing");
    let tail = r.read(99_990, 4096).await.unwrap();
    assert_eq!(&tail[..], &f.data[99_990..]);
    assert!(r.read(0, 0).await.unwrap().is_empty());

    let empty = upload(&t, "empty.bin", Vec::new()).await;
    let r = reader(&t, None, empty.by_version());
    assert!(r.read(0, 4096).await.unwrap().is_empty());
    assert_eq!(r.stats().network_requests, 0);
}

#[tokio::test]
async fn an_expired_url_is_resolved_again_and_a_refusal_is_an_errno() {
    let t = TestEmu::start().await;
    let c = client(&t);
    let f = upload(&t, "expiring.bin", content(3 * MIB as usize, 9)).await;
    let r = reader(&t, None, f.by_version());
    let expire_urls = || t.emulator().shared.store().download_tokens.clear();

    assert_eq!(&r.read(0, 1000).await.unwrap()[..], &f.data[..1000]);
    assert_eq!(r.stats().url_resolutions, 1);
    expire_urls();
    let got = r.read(MIB, 1000).await.unwrap();
    assert_eq!(&got[..], &f.data[MIB as usize..MIB as usize + 1000]);
    assert_eq!(r.stats().url_resolutions, 2);

    // The file went to the trash: the URL is refused and resolving it again fails too.
    c.delete_file(&f.id, None).await.unwrap();
    expire_urls();
    let err = r.read(2 * MIB, 1000).await.unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    // A failed part is not remembered as data: the read fails again, it does not hang.
    assert!(r.read(2 * MIB, 1000).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_of_one_handle() {
    let t = TestEmu::start().await;
    let size = 4 * MIB as usize;
    let f = upload(&t, "shared.bin", content(size, 10)).await;
    let data = Arc::new(f.data.clone());
    let r = Arc::new(reader(&t, None, f.by_version()));
    let mut tasks = Vec::new();
    for n in 0..8u64 {
        let (r, data) = (r.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let mut reads = 0u64;
            if n % 2 == 0 {
                // Sequential through one quarter, with its own read size.
                let quarter = size as u64 / 4;
                let (mut pos, end) = ((n / 2) * quarter, (n / 2 + 1) * quarter);
                let len = 50_000 + n as u32 * 10_000;
                while pos < end {
                    let got = r.read(pos, len).await.unwrap();
                    let p = pos as usize;
                    assert_eq!(&got[..], &data[p..p + got.len()]);
                    pos += got.len() as u64;
                    reads += 1;
                }
            } else {
                // Scattered reads.
                for i in 0..40u64 {
                    let pos = (i * 7_919 * 131 + n * 100_003) % size as u64;
                    let got = r.read(pos, 9_000).await.unwrap();
                    let p = pos as usize;
                    assert_eq!(&got[..], &data[p..(p + 9_000).min(size)]);
                    reads += 1;
                }
            }
            reads
        }));
    }
    let mut reads = 0;
    for task in tasks {
        reads += task.await.unwrap();
    }
    assert_eq!(r.stats().reads, reads);
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let t = TestEmu::start().await;
    let f = upload(&t, "flaky.bin", content(768 * KIB as usize, 11)).await;
    t.emulator().set_knobs(Knobs {
        fault_rate: 0.15,
        fault_path_prefix: "/dl/".into(),
        ..Default::default()
    });
    let r = reader(&t, None, f.by_version());
    assert_eq!(read_all(&r, f.data.len() as u64, &[131_072]).await, f.data);
}

#[tokio::test]
async fn dropping_a_reader_cancels_its_fetches() {
    let t = TestEmu::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = small_cache(&dir);
    let f = upload(&t, "dropped.bin", content(4 * MIB as usize, 12)).await;
    t.emulator().set_knobs(Knobs {
        latency_ms: 100,
        ..Default::default()
    });
    let r = reader(&t, Some(cache.clone()), f.by_version());
    for i in 0..3 {
        r.read(i * 128 * KIB, 128 * 1024).await.unwrap();
    }
    // Let the read-ahead's GETs go out; they wait for their answers for 100 ms.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = r.stats();
    assert!(stats.in_flight > 0, "read-ahead under way: {stats:?}");
    drop(r);
    // Every task held the reader (and through it the cache); they end at once, long before
    // their responses could arrive.
    let deadline = Instant::now() + Duration::from_millis(50);
    while Arc::strong_count(&cache) > 1 {
        assert!(Instant::now() < deadline, "fetches still running");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Open files share the mount's read budget: each reader's read-ahead, memory and requests in
/// flight stay within an equal share while others read, and a reader that is closed gives its
/// share back; the bytes are right throughout.
#[tokio::test]
async fn readers_share_the_mount_budget_fairly() {
    use boxfs::fs::read::budget::{ReadBudget, ReadBudgetConfig};
    let t = TestEmu::start().await;
    let a = upload(&t, "a.bin", content(4 * MIB as usize, 7)).await;
    let b = upload(&t, "b.bin", content(4 * MIB as usize, 8)).await;
    t.emulator().set_knobs(Knobs {
        latency_ms: 5,
        ..Default::default()
    });
    let budget = ReadBudget::new(ReadBudgetConfig {
        memory: MIB,
        connections: 4,
    });
    let ra = reader(&t, None, a.by_version()).with_budget(&budget);
    let rb = reader(&t, None, b.by_version()).with_budget(&budget);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let step = 128 * KIB as u32;
    let mut peak_active = 0;
    // Both read, in turns, the first half of their files.
    while (got_a.len() as u64) < 2 * MIB {
        got_a.extend_from_slice(&ra.read(got_a.len() as u64, step).await.unwrap());
        got_b.extend_from_slice(&rb.read(got_b.len() as u64, step).await.unwrap());
        peak_active = peak_active.max(budget.status().active_readers);
        for (name, r) in [("a", &ra), ("b", &rb)] {
            let s = r.stats();
            // Half of the budget each: a window of a part (512 KiB less the part being
            // read), and what it holds within its half plus the parts still arriving.
            assert!(s.window <= 256 * KIB, "{name}: {s:?}");
            assert!(
                s.buffered_bytes <= 512 * KIB + 2 * 256 * KIB,
                "{name}: {s:?}"
            );
            assert!(s.peak_in_flight <= 4, "{name}: {s:?}");
        }
    }
    assert_eq!(peak_active, 2);
    assert!(ra.stats().peak_in_flight <= 2 && rb.stats().peak_in_flight <= 2);
    // b is closed: a gets the whole budget back and its window grows past half of it.
    drop(rb);
    assert_eq!(budget.status().active_readers, 1);
    while (got_a.len() as u64) < a.data.len() as u64 {
        let got = ra.read(got_a.len() as u64, step).await.unwrap();
        got_a.extend_from_slice(&got);
    }
    assert!(ra.stats().window > 256 * KIB, "{:?}", ra.stats());
    assert!(ra.stats().window <= 768 * KIB, "{:?}", ra.stats());
    assert_eq!(got_a, a.data);
    assert_eq!(got_b, b.data[..got_b.len()]);
    drop(ra);
    let status = budget.status();
    assert_eq!(
        (
            status.active_readers,
            status.memory_held,
            status.requests_in_flight
        ),
        (0, 0, 0)
    );
}
