//! The mount's figures from its issue, each printed next to a baseline measured in the same
//! run, with the ratio, the target and PASS or MISS. Box is the in-process emulator with 20 ms
//! of latency per response and 50 MiB/s per connection, so round trips and bandwidth cost
//! about what they cost on a good link to Box. The mount is the real `boxfs` binary that cargo
//! builds for this bench (`CARGO_BIN_EXE_boxfs`, release settings), started on a fresh mount
//! point with an empty cache directory for every cold figure (a fresh mount also starts with
//! an empty page cache, which the container does not let us drop).
//!
//! Run: `cargo bench --bench mount`, or some parts of it: `cargo bench --bench mount -- ls find`
//! (parts: read, ls, find, changes, memory, writes, xattrs, remount; `remount-walk` and
//! `remount-store` run the halves of `remount` alone). These figures measure protocol
//! efficiency: the mounts run with `--api-rate unlimited` against an emulator without rate
//! limits. `cargo bench --bench mount -- limits` (run only when named: it takes about ten
//! minutes) measures the mount against Box's rate limits instead (`mount/limits.rs`).
//! Needs /dev/fuse and root (or fusermount3).
//! Mounts are unmounted when the bench ends or panics; an interrupted run leaves none either,
//! because the daemon unmounts on the same SIGINT.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use box_client::folders::ListOptions;
use box_client::upload::UploadOptions;
use box_client::{Client, DeveloperToken, Endpoints, PacerConfig};
use box_emulator::store::{Id, ItemKind, Store, Version};
use box_emulator::{Emulator, EmulatorConfig, Knobs};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use sha1::{Digest, Sha1};

#[path = "mount/limits.rs"]
mod limits;
#[path = "mount/remount.rs"]
mod remount;

/// The integration tests' real-mount helper.
#[path = "../tests/common/mount.rs"]
mod mount;

use mount::TestMount;

/// Where the mount finds the emulator (what `mount::TestMount::start` needs of it).
pub struct TestEmu {
    pub base: String,
    pub token: String,
}

const LATENCY_MS: u64 = 20;
const BANDWIDTH: u64 = 50 * 1024 * 1024;

const BIG_FILE_BYTES: usize = 512 * 1024 * 1024;
const READ_BUFFER: usize = 1024 * 1024;
/// A cold read slower than this is stopped and its rate reported from what it read.
const COLD_READ_LIMIT: Duration = Duration::from_secs(60);
const LISTING_ENTRIES: usize = 10_000;
const LISTING_PAGE: u32 = 1000;
/// The `find` tree: FANOUT folders, FANOUT in each of those, FANOUT in each of those.
const FANOUT: usize = 10;
const REMOTE_CHANGES: usize = 20;
/// A change not visible after this long counts as never.
const VISIBILITY_LIMIT: Duration = Duration::from_secs(15);
const MEMORY_FOLDERS: usize = 10;
const SMALL_FILE_BYTES: usize = 1000;
/// How often repeated figures are measured (the median is reported).
const REPEATS: usize = 3;
/// "Warm" once more: after this long without a look at the folder.
const IDLE: Duration = Duration::from_secs(3);
/// Any single step that takes longer than this is a hung mount: the daemon is killed.
const HANG_LIMIT: Duration = Duration::from_secs(180);

// ---- the report -------------------------------------------------------------------------

/// One figure of the report.
struct Row {
    figure: String,
    measured: String,
    baseline: String,
    ratio: String,
    target: String,
    pass: bool,
}

impl Row {
    fn print_header() {
        println!(
            "{:<52} {:>30}  {:<44} {:>12}  {:<18} result",
            "figure", "measured", "baseline (same run)", "ratio", "target"
        );
    }

    fn print(&self) {
        println!(
            "{:<52} {:>30}  {:<44} {:>12}  {:<18} {}",
            self.figure,
            self.measured,
            self.baseline,
            self.ratio,
            self.target,
            if self.pass { "PASS" } else { "MISS" }
        );
    }

    /// A figure that could not be measured.
    fn failed(figure: &str, target: &str, why: String) -> Row {
        Row {
            figure: figure.into(),
            measured: "failed".into(),
            baseline: why,
            ratio: "-".into(),
            target: target.into(),
            pass: false,
        }
    }
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The emulator's knobs for a good link to Box: its latency and bandwidth.
fn link_knobs() -> Knobs {
    Knobs {
        latency_ms: LATENCY_MS,
        bandwidth: BANDWIDTH,
        ..Knobs::default()
    }
}

// ---- the world --------------------------------------------------------------------------

/// The emulator and the clients the baselines use.
struct World {
    rt: tokio::runtime::Runtime,
    emu: Emulator,
    addr: TestEmu,
    http: reqwest::Client,
    client: Client,
    /// The emulator's request log (one JSON line per request), for counting calls.
    request_log: std::path::PathBuf,
    _log_dir: tempfile::TempDir,
}

impl World {
    fn start() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let log_dir = tempfile::tempdir().expect("request log dir");
        let request_log = log_dir.path().join("requests.jsonl");
        let config = EmulatorConfig {
            request_log: Some(request_log.clone()),
            knobs: link_knobs(),
            ..EmulatorConfig::default()
        };
        let emu = rt.block_on(Emulator::start(config)).expect("emulator");
        let addr = TestEmu {
            base: emu.base_url().to_string(),
            token: emu.info.developer_token.clone(),
        };
        let client = Client::builder(
            std::sync::Arc::new(DeveloperToken::new(addr.token.clone())),
            Endpoints::from_base(&addr.base).expect("endpoints"),
        )
        .pacing(PacerConfig::unlimited())
        .build()
        .expect("client");
        World {
            rt,
            emu,
            addr,
            http: reqwest::Client::new(),
            client,
            request_log,
            _log_dir: log_dir,
        }
    }

    /// A fresh mount of All Files with an empty cache directory.
    fn mount(&self) -> TestMount {
        TestMount::start(&self.addr, &["--cache-size", "2G"])
    }

    fn seed<T>(&self, f: impl FnOnce(&mut Seeder) -> T) -> T {
        seed(&self.emu, f)
    }

    /// One listing of `folder` the way the mount asks for it: pages of 1,000 with the fields
    /// `stat` needs, marker paging, in sequence. Returns the number of entries.
    fn list(&self, folder: Id) -> usize {
        self.rt.block_on(async {
            let id = folder.to_string();
            let mut opts = ListOptions::marker()
                .limit(LISTING_PAGE)
                .fields(boxfs::fs::STAT_FIELDS);
            let mut entries = 0;
            loop {
                let page = self
                    .client
                    .folder_items_page(&id, &opts)
                    .await
                    .expect("listing page");
                entries += page.entries.len();
                match opts.next_page(&page) {
                    Some(next) => opts = next,
                    None => return entries,
                }
            }
        })
    }
}

/// Runs `f` on a [`Seeder`] of `emu`'s admin.
fn seed<T>(emu: &Emulator, f: impl FnOnce(&mut Seeder) -> T) -> T {
    let mut store = emu.shared.store();
    let admin = store.admin;
    let root = store.users[&admin].root_folder;
    let mut seeder = Seeder {
        store: &mut store,
        admin,
        root,
        now: chrono::Utc::now(),
    };
    f(&mut seeder)
}

/// Writes straight into the emulator's store (no HTTP, no events): fast, and the data is
/// there before the mount starts.
struct Seeder<'a> {
    store: &'a mut Store,
    admin: Id,
    root: Id,
    now: chrono::DateTime<chrono::Utc>,
}

impl Seeder<'_> {
    fn folder(&mut self, parent: Id, name: &str) -> Id {
        let item = self.store.new_item(
            ItemKind::Folder,
            name,
            parent,
            self.admin,
            self.admin,
            self.now,
        );
        self.store.insert_item(item)
    }

    /// Stores `data` once; returns its key for [`Seeder::file`].
    fn blob(&mut self, data: Bytes) -> (String, u64) {
        let sha1 = hex::encode(Sha1::digest(&data));
        let size = data.len() as u64;
        self.store.blobs.insert(sha1.clone(), data.into());
        (sha1, size)
    }

    fn file(&mut self, parent: Id, name: &str, blob: &(String, u64)) -> Id {
        let mut item = self.store.new_item(
            ItemKind::File,
            name,
            parent,
            self.admin,
            self.admin,
            self.now,
        );
        let version = self.store.alloc_id();
        item.versions.push(Version {
            id: version,
            sha1: blob.0.clone(),
            size: blob.1,
            name: name.into(),
            created_at: self.now,
            modified_by: self.admin,
        });
        self.store.insert_item(item)
    }
}

/// Kills the mount's daemon if the step it guards hangs, so that the reader blocked in the
/// mount gets ENOTCONN and the bench goes on (and reports the figure as failed).
struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    fn arm(mount: &TestMount, step: &'static str) -> Watchdog {
        Watchdog::arm_for(mount, step, HANG_LIMIT)
    }

    /// The same for a step that may rightly take up to `limit`.
    fn arm_for(mount: &TestMount, step: &'static str, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let pid = mount.pid();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("{step}: not done after {limit:?}; killing the mount daemon");
                if let Some(pid) = pid {
                    // SAFETY: kill(2) of the daemon we started.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
        });
        Watchdog { _disarm: tx }
    }
}

/// Runs a command with its output captured; returns how long it took and its stdout lines.
fn run_timed(program: &str, args: &[&Path]) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{program} {:?}: {}: {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((took, out.stdout.iter().filter(|&&b| b == b'\n').count()))
}

/// `ls -l DIR`, which must show `entries` entries (plus its "total" line).
fn ls_l(dir: &Path, entries: usize) -> Result<Duration, String> {
    let (took, lines) = run_timed("ls", &[Path::new("-l"), dir])?;
    if lines != entries + 1 {
        return Err(format!(
            "ls -l {} showed {} lines, not {}",
            dir.display(),
            lines,
            entries + 1
        ));
    }
    Ok(took)
}

/// Reads `path` with read(2) into a 1 MiB buffer, at most `max_bytes`, stopping early after
/// `stop_after`; compares the bytes with `expected` when given. Returns the bytes read and the
/// time, open included (as `cat` would pay it).
fn read_file(
    path: &Path,
    expected: Option<&[u8]>,
    max_bytes: u64,
    stop_after: Duration,
) -> Result<(u64, Duration), String> {
    let started = Instant::now();
    let mut file = std::fs::File::open(path).map_err(|e| format!("open: {e}"))?;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut total = 0u64;
    while total < max_bytes && started.elapsed() < stop_after {
        let want = (max_bytes - total).min(READ_BUFFER as u64) as usize;
        let n = file
            .read(&mut buf[..want])
            .map_err(|e| format!("read at {total}: {e}"))?;
        if n == 0 {
            break;
        }
        if let Some(expected) = expected {
            let at = total as usize;
            if expected.get(at..at + n) != Some(&buf[..n]) {
                return Err(format!("the bytes read at offset {at} are not the file's"));
            }
        }
        total += n as u64;
    }
    Ok((total, started.elapsed()))
}

// ---- figures 1 and 2: reading a large file ------------------------------------------------

fn bench_read(world: &World) -> Vec<Row> {
    let data: Bytes = (0..BIG_FILE_BYTES)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect::<Vec<u8>>()
        .into();
    let file = world.seed(|s| {
        let blob = s.blob(data.clone());
        let root = s.root;
        s.file(root, "big.bin", &blob)
    });
    let size = BIG_FILE_BYTES as u64;
    let mut rows = Vec::new();

    // Baseline: one plain GET of the whole file (redirect to the download URL included).
    let url = format!("{}/2.0/files/{file}/content", world.addr.base);
    let get_took = world.rt.block_on(async {
        let started = Instant::now();
        let mut resp = world
            .http
            .get(&url)
            .bearer_auth(&world.addr.token)
            .send()
            .await
            .expect("download");
        assert!(resp.status().is_success(), "download: {}", resp.status());
        let mut total = 0u64;
        while let Some(chunk) = resp.chunk().await.expect("download body") {
            total += chunk.len() as u64;
        }
        assert_eq!(total, size, "the download's length");
        started.elapsed()
    });
    let get_rate = mb_per_s(size, get_took);

    let mount = world.mount();
    let path = mount.path("big.bin");
    let cold = {
        let _watch = Watchdog::arm(&mount, "cold read");
        read_file(&path, Some(&data), size, COLD_READ_LIMIT)
    };
    let cold_figure = "1. cold read, 512 MiB, 1 MiB read(2)s";
    let cold_target = ">= 3x the GET";
    let read_bytes = match cold {
        Ok((bytes, took)) => {
            let rate = mb_per_s(bytes, took);
            let stopped = if bytes < size {
                format!(" [stopped at {} MiB]", bytes >> 20)
            } else {
                String::new()
            };
            rows.push(Row {
                figure: format!("{cold_figure}{stopped}"),
                measured: format!("{rate:.1} MB/s ({})", secs(took)),
                baseline: format!("one GET: {get_rate:.1} MB/s ({})", secs(get_took)),
                ratio: format!("{:.2}x", rate / get_rate),
                target: cold_target.into(),
                pass: bytes == size && rate >= 3.0 * get_rate,
            });
            bytes
        }
        Err(e) => {
            rows.push(Row::failed(cold_figure, cold_target, e));
            0
        }
    };
    rows.last().expect("row").print();

    // Warm: the same bytes again through the same mount, then from a file on tmpfs (the
    // median of a few reads each: they are short, and the machine may be busy).
    let warm_figure = "2. warm re-read of the same bytes";
    let warm_target = ">= 1000 MB/s";
    if read_bytes == 0 {
        rows.push(Row::failed(warm_figure, warm_target, "no cold read".into()));
    } else {
        let timed_reads = |path: &Path| -> Result<Duration, String> {
            let mut took = Vec::new();
            for _ in 0..REPEATS {
                let (bytes, t) = read_file(path, None, read_bytes, HANG_LIMIT)?;
                if bytes != read_bytes {
                    return Err(format!("read {bytes} bytes, not {read_bytes}"));
                }
                took.push(t);
            }
            Ok(median(took))
        };
        let warm = {
            let _watch = Watchdog::arm(&mount, "warm read");
            timed_reads(&path)
        };
        let tmpfs = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
        let local = tmpfs.path().join("big.bin");
        std::fs::write(&local, &data[..read_bytes as usize]).expect("tmpfs file");
        let local_rate = mb_per_s(read_bytes, timed_reads(&local).expect("tmpfs read"));
        rows.push(match warm {
            Ok(took) => {
                let rate = mb_per_s(read_bytes, took);
                Row {
                    figure: warm_figure.into(),
                    measured: format!("{rate:.0} MB/s ({})", secs(took)),
                    baseline: format!("tmpfs file: {local_rate:.0} MB/s"),
                    ratio: format!("{:.2}x", rate / local_rate),
                    target: warm_target.into(),
                    pass: rate >= 1000.0,
                }
            }
            Err(e) => Row::failed(warm_figure, warm_target, e),
        });
        rows.last().expect("row").print();
    }
    drop(mount);
    world.emu.shared.store().blobs.retain(|_, b| b.len() < 1024);
    rows
}

// ---- figures 3 and 4: ls -l of a large folder --------------------------------------------

fn bench_ls(world: &World) -> Vec<Row> {
    let folder = world.seed(|s| {
        let blob = s.blob(Bytes::from(vec![b'x'; SMALL_FILE_BYTES]));
        let root = s.root;
        let folder = s.folder(root, "Listing");
        for i in 0..LISTING_ENTRIES {
            s.file(folder, &format!("file-{i:05}.txt"), &blob);
        }
        folder
    });

    // Baseline of the cold figure: the listing's API calls alone.
    let api = median(
        (0..REPEATS)
            .map(|_| {
                let started = Instant::now();
                assert_eq!(world.list(folder), LISTING_ENTRIES, "entries listed");
                started.elapsed()
            })
            .collect(),
    );
    // Baseline of the warm figures: the same folder on tmpfs, listed once before timing.
    let tmpfs = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    let local = tmpfs.path().join("Listing");
    std::fs::create_dir(&local).expect("tmpfs folder");
    let content = vec![b'x'; SMALL_FILE_BYTES];
    for i in 0..LISTING_ENTRIES {
        std::fs::write(local.join(format!("file-{i:05}.txt")), &content).expect("tmpfs file");
    }
    ls_l(&local, LISTING_ENTRIES).expect("ls -l on tmpfs");
    let local_took = median(
        (0..REPEATS)
            .map(|_| ls_l(&local, LISTING_ENTRIES).expect("ls -l on tmpfs"))
            .collect(),
    );

    // Cold: a fresh mount each time; the path to the folder is resolved first, so that only
    // the folder's own listing is timed. Warm: on the last mount, the same listing right
    // after, then again after idling longer than the short TTLs the mount falls back to
    // while it has no event stream (but far shorter than the long ones it uses with one).
    let (mut cold, mut warm, mut idle) = (Vec::new(), Vec::new(), Vec::new());
    let outcome = (|| -> Result<(), String> {
        for round in 0..REPEATS {
            let mount = world.mount();
            let dir = mount.path("Listing");
            let _watch = Watchdog::arm(&mount, "ls -l");
            std::fs::metadata(&dir).map_err(|e| format!("stat {}: {e}", dir.display()))?;
            cold.push(ls_l(&dir, LISTING_ENTRIES)?);
            if round == REPEATS - 1 {
                for _ in 0..REPEATS {
                    warm.push(ls_l(&dir, LISTING_ENTRIES)?);
                }
                for _ in 0..REPEATS {
                    std::thread::sleep(IDLE);
                    idle.push(ls_l(&dir, LISTING_ENTRIES)?);
                }
            }
        }
        Ok(())
    })();
    let tmpfs_text = format!("tmpfs: {}", secs(local_took));
    vec![
        ratio_row(
            "3. cold ls -l, 10,000 entries",
            cold,
            (format!("10 pages of 1,000: {}", secs(api)), api),
            1.3,
            &outcome,
        ),
        ratio_row(
            "4. warm ls -l, right after",
            warm,
            (tmpfs_text.clone(), local_took),
            3.0,
            &outcome,
        ),
        ratio_row(
            &format!("4b. warm ls -l, after {} s idle", IDLE.as_secs()),
            idle,
            (tmpfs_text, local_took),
            3.0,
            &outcome,
        ),
    ]
}

/// A timed figure (the median of `samples`) whose target is at most `max_ratio` times its
/// baseline (a label and a time). Printed as it is made.
fn ratio_row(
    figure: &str,
    samples: Vec<Duration>,
    baseline: (String, Duration),
    max_ratio: f64,
    outcome: &Result<(), String>,
) -> Row {
    let target = format!("<= {max_ratio}x baseline");
    let row = match outcome {
        Err(e) if samples.is_empty() => Row::failed(figure, &target, e.clone()),
        _ if samples.is_empty() => Row::failed(figure, &target, "not measured".into()),
        _ => {
            let took = median(samples);
            let ratio = took.as_secs_f64() / baseline.1.as_secs_f64();
            Row {
                figure: figure.into(),
                measured: secs(took),
                baseline: baseline.0,
                ratio: format!("{ratio:.3}x"),
                target,
                pass: ratio <= max_ratio,
            }
        }
    };
    row.print();
    row
}

// ---- figure 5: find over a tree of folders ------------------------------------------------

fn bench_find(world: &World) -> Vec<Row> {
    let folders = world.seed(|s| {
        let root = s.root;
        let top = s.folder(root, "Tree");
        let mut all = vec![top];
        let mut level = vec![top];
        for depth in 0..3 {
            let mut next = Vec::new();
            for &parent in &level {
                for i in 0..FANOUT {
                    next.push(s.folder(parent, &format!("d{depth}-{i}")));
                }
            }
            all.extend(&next);
            level = next;
        }
        all
    });

    // Baseline: one listing round trip per folder, in sequence.
    let started = Instant::now();
    for &f in &folders {
        world.list(f);
    }
    let sequential = started.elapsed();

    let mount = world.mount();
    let dir = mount.path("Tree");
    let _watch = Watchdog::arm(&mount, "find");
    let mut took = Vec::new();
    let outcome = std::fs::metadata(&dir)
        .map_err(|e| format!("stat {}: {e}", dir.display()))
        .and_then(|_| run_timed("find", &[&dir]))
        .and_then(|(t, lines)| {
            if lines != folders.len() {
                return Err(format!("find printed {lines} lines, not {}", folders.len()));
            }
            took.push(t);
            Ok(())
        });
    vec![ratio_row(
        &format!("5. cold find, {} folders (10+100+1000)", folders.len()),
        took,
        (
            format!(
                "{} listings in sequence: {}",
                folders.len(),
                secs(sequential)
            ),
            sequential,
        ),
        0.25,
        &outcome,
    )]
}

// ---- figure 6: remote changes until visible ----------------------------------------------

/// Polls until `visible` holds; returns how long it took.
fn time_until(visible: impl Fn() -> bool) -> Option<Duration> {
    mount::eventually(VISIBILITY_LIMIT, visible)
}

fn bench_changes(world: &World) -> Vec<Row> {
    let renames = REMOTE_CHANGES / 2;
    let (folder, seeded) = world.seed(|s| {
        let blob = s.blob(Bytes::from(vec![b'x'; SMALL_FILE_BYTES]));
        let root = s.root;
        let folder = s.folder(root, "Changes");
        let files: Vec<Id> = (0..renames)
            .map(|i| s.file(folder, &format!("seed-{i}.txt"), &blob))
            .collect();
        (folder, files)
    });
    let figure = "6. remote change until visible";
    let target = "median <= 1 s";
    let mount = world.mount();
    let dir = mount.path("Changes");
    let _watch = Watchdog::arm(&mount, "remote changes");
    if let Err(e) = std::fs::read_dir(&dir).map(|d| d.count()) {
        let row = Row::failed(figure, target, format!("listing {}: {e}", dir.display()));
        row.print();
        return vec![row];
    }
    // Changes arrive at random moments, not right after the mount last looked.
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut seen = Vec::new();
    let mut api_calls = Vec::new();
    let mut missed = 0;
    for i in 0..REMOTE_CHANGES {
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..2000)));
        let started = Instant::now();
        let visible: Box<dyn Fn() -> bool> = if i % 2 == 0 {
            let name = format!("new-{i}.txt");
            world
                .rt
                .block_on(world.client.upload_file(
                    &folder.to_string(),
                    &name,
                    Bytes::from(format!("change {i}\n")),
                    &UploadOptions::default(),
                ))
                .expect("upload");
            let new = dir.join(name);
            Box::new(move || new.exists())
        } else {
            let k = i / 2;
            let name = format!("renamed-{k}.txt");
            world
                .rt
                .block_on(world.client.rename_file(&seeded[k].to_string(), &name))
                .expect("rename");
            let (old, new) = (dir.join(format!("seed-{k}.txt")), dir.join(name));
            Box::new(move || new.exists() && !old.exists())
        };
        api_calls.push(started.elapsed());
        match time_until(visible) {
            Some(d) => seen.push(d),
            None => missed += 1,
        }
    }
    let row = if seen.is_empty() {
        Row::failed(figure, target, "no change became visible".into())
    } else {
        let max = seen.iter().max().copied().expect("one");
        let med = median(seen);
        let api = median(api_calls);
        let missed_text = if missed > 0 {
            format!(", {missed} never (>{VISIBILITY_LIMIT:?})")
        } else {
            String::new()
        };
        Row {
            figure: format!("{figure} ({REMOTE_CHANGES}: new file, rename)"),
            measured: format!("median {}, max {}{missed_text}", secs(med), secs(max)),
            baseline: format!("the API call itself: {}", secs(api)),
            ratio: format!("{:.1}x", med.as_secs_f64() / api.as_secs_f64()),
            target: target.into(),
            pass: missed == 0 && med <= Duration::from_secs(1),
        }
    };
    row.print();
    vec![row]
}

// ---- figure 7: memory with many inodes ----------------------------------------------------

/// A `Vm…` line of /proc/PID/status, in bytes.
fn proc_status_bytes(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn bench_memory(world: &World) -> Vec<Row> {
    world.seed(|s| {
        let blob = s.blob(Bytes::from(vec![b'x'; SMALL_FILE_BYTES]));
        let root = s.root;
        let top = s.folder(root, "Memory");
        for f in 0..MEMORY_FOLDERS {
            let folder = s.folder(top, &format!("m{f}"));
            for i in 0..LISTING_ENTRIES {
                s.file(folder, &format!("file-{i:05}.txt"), &blob);
            }
        }
    });
    let inodes = MEMORY_FOLDERS * LISTING_ENTRIES;
    let figure = "7. daemon RSS, 100,000 inodes cached";
    let target = "<= 150 MB";
    let mount = world.mount();
    let Some(pid) = mount.pid() else {
        let row = Row::failed(figure, target, "no daemon pid".into());
        row.print();
        return vec![row];
    };
    std::thread::sleep(Duration::from_millis(300));
    let at_start = proc_status_bytes(pid, "VmRSS:").unwrap_or(0);
    let _watch = Watchdog::arm(&mount, "ls -l of 100,000 entries");
    let listed: Result<Vec<Duration>, String> = (0..MEMORY_FOLDERS)
        .map(|f| ls_l(&mount.path(&format!("Memory/m{f}")), LISTING_ENTRIES))
        .collect();
    let row = match listed {
        Err(e) => Row::failed(figure, target, e),
        Ok(_) => {
            let rss = proc_status_bytes(pid, "VmRSS:").unwrap_or(0);
            let peak = proc_status_bytes(pid, "VmHWM:").unwrap_or(0);
            Row {
                figure: figure.into(),
                measured: format!("{:.1} MB (peak {:.1})", rss as f64 / 1e6, peak as f64 / 1e6),
                baseline: format!("right after mount: {:.1} MB", at_start as f64 / 1e6),
                ratio: format!(
                    "{:.0} B/inode",
                    rss.saturating_sub(at_start) as f64 / inodes as f64
                ),
                target: target.into(),
                pass: rss > 0 && rss as f64 <= 150e6,
            }
        }
    };
    row.print();
    vec![row]
}

// ---- figures 8 and 9: writing files through the mount -------------------------------------

const SMALL_WRITES: usize = 1000;
const SMALL_WRITE_BYTES: usize = 4096;
/// Figure 9's file: the same size as the read figure's.
const BIG_WRITE_BYTES: usize = BIG_FILE_BYTES;
/// Files locked and given metadata in figure 10 (the median of them is reported).
const XATTR_FILES: usize = 5;
const UPLOAD_PATH: &str = "/api/2.0/files/content";

/// Calls so far to `method` on paths that `path_matches`, from the emulator's request log.
fn requests(world: &World, method: &str, path_matches: impl Fn(&str) -> bool) -> usize {
    mount::count_requests(&world.request_log, method, path_matches)
}

fn upload_calls(world: &World) -> usize {
    requests(world, "POST", |p| p == UPLOAD_PATH)
}

/// One plain upload (a multipart POST, as Box's docs show it), built before the clock starts.
fn upload_form(parent: Id, name: &str, data: Vec<u8>) -> reqwest::multipart::Form {
    let attributes = serde_json::json!({"name": name, "parent": {"id": parent.to_string()}});
    reqwest::multipart::Form::new()
        .text("attributes", attributes.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(data).file_name(name.to_string()),
        )
}

impl World {
    async fn upload_direct(&self, form: reqwest::multipart::Form) -> Result<(), String> {
        let resp = self
            .http
            .post(format!("{}{UPLOAD_PATH}", self.addr.base))
            .bearer_auth(&self.addr.token)
            .multipart(form)
            .send()
            .await
            .map_err(|e| format!("upload: {e}"))?;
        let status = resp.status();
        let _ = resp.bytes().await;
        if status.as_u16() != 201 {
            return Err(format!("upload: {status}"));
        }
        Ok(())
    }
}

/// `cp -r from to`, timed.
fn cp(from: &Path, to: &Path) -> Result<Duration, String> {
    run_timed("cp", &[Path::new("-r"), from, to]).map(|(took, _)| took)
}

/// `boxfs unmount`, which returns once the queued uploads are on Box.
fn unmount_waiting(mount: &TestMount) -> Result<Duration, String> {
    run_timed(
        env!("CARGO_BIN_EXE_boxfs"),
        &[Path::new("unmount"), &mount.root],
    )
    .map(|(took, _)| took)
}

/// A row whose target is at least `min_speedup` times faster than its baseline.
fn speedup_row(
    figure: &str,
    measured: Result<(String, Duration), String>,
    baseline: (String, Duration),
    min_speedup: f64,
) -> Row {
    let target = format!(">= {min_speedup}x faster");
    let row = match measured {
        Err(e) => Row::failed(figure, &target, e),
        Ok((text, took)) => {
            let speedup = baseline.1.as_secs_f64() / took.as_secs_f64();
            Row {
                figure: figure.into(),
                measured: text,
                baseline: baseline.0,
                ratio: format!("{speedup:.2}x faster"),
                target,
                pass: speedup >= min_speedup,
            }
        }
    };
    row.print();
    row
}

/// Checks that `cp` made exactly one upload per file: `before` is the count before it.
fn one_upload_each(world: &World, before: usize) -> Result<(), String> {
    let uploads = upload_calls(world) - before;
    if uploads != SMALL_WRITES {
        return Err(format!("{uploads} uploads for {SMALL_WRITES} files"));
    }
    Ok(())
}

fn bench_writes(world: &World) -> Vec<Row> {
    let base_folder = world.seed(|s| {
        let root = s.root;
        s.folder(root, "WritesBaseline")
    });
    let tmpfs = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    let small_dir = tmpfs.path().join("small");
    std::fs::create_dir(&small_dir).expect("small dir");
    let contents: Vec<Vec<u8>> = (0..SMALL_WRITES)
        .map(|i| {
            let mut v = format!("file {i}\n").into_bytes();
            v.resize(SMALL_WRITE_BYTES, b'.');
            v
        })
        .collect();
    for (i, c) in contents.iter().enumerate() {
        std::fs::write(small_dir.join(format!("f{i:04}.txt")), c).expect("small file");
    }
    let mut rows = Vec::new();

    // Baseline: the same 1,000 uploads straight to Box, one after another.
    let forms: Vec<_> = contents
        .into_iter()
        .enumerate()
        .map(|(i, c)| upload_form(base_folder, &format!("f{i:04}.txt"), c))
        .collect();
    let started = Instant::now();
    let baseline = world.rt.block_on(async {
        for form in forms {
            world.upload_direct(form).await?;
        }
        Ok::<_, String>(())
    });
    let sequential = started.elapsed();
    if let Err(e) = baseline {
        let row = Row::failed("8. cp of 1,000 files of 4 KiB", "-", e);
        row.print();
        return vec![row];
    }
    let baseline_text = format!("1,000 uploads in sequence: {}", secs(sequential));

    // Default: close waits for the upload.
    {
        let mount = world.mount();
        let _watch = Watchdog::arm(&mount, "cp of small files");
        let before = upload_calls(world);
        let took = cp(&small_dir, &mount.path("Writes"))
            .and_then(|t| one_upload_each(world, before).map(|_| t));
        let outcome = took.as_ref().map(|_| ()).map_err(Clone::clone);
        rows.push(ratio_row(
            "8. cp of 1,000 files of 4 KiB (1 upload each)",
            took.into_iter().collect(),
            (baseline_text.clone(), sequential),
            1.2,
            &outcome,
        ));
    }

    // --write-back 1: cp returns at once; `boxfs unmount` waits until all are on Box.
    {
        let mount = TestMount::start(&world.addr, &["--cache-size", "2G", "--write-back", "1"]);
        let _watch = Watchdog::arm(&mount, "cp of small files, write-back");
        let before = upload_calls(world);
        let started = Instant::now();
        let cp_took = cp(&small_dir, &mount.path("WritesBack"));
        let all_on_box = cp_took
            .clone()
            .and_then(|_| unmount_waiting(&mount))
            .map(|_| started.elapsed())
            .and_then(|t| one_upload_each(world, before).map(|_| t));
        let baseline = (baseline_text, sequential);
        rows.push(speedup_row(
            "8b. same, --write-back 1: until cp returns",
            cp_took.map(|t| (secs(t), t)),
            baseline.clone(),
            4.0,
        ));
        rows.push(speedup_row(
            "8c. same, --write-back 1: until all on Box",
            all_on_box.map(|t| (format!("{} (1 upload each)", secs(t)), t)),
            baseline,
            4.0,
        ));
    }

    // A 512 MiB file: one plain upload against the mount's parallel parts.
    let data: Vec<u8> = (0..BIG_WRITE_BYTES)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let big = tmpfs.path().join("big-up.bin");
    std::fs::write(&big, &data).expect("big file on tmpfs");
    let size = BIG_WRITE_BYTES as u64;
    let form = upload_form(base_folder, "big-up.bin", data);
    let started = Instant::now();
    let single = world.rt.block_on(world.upload_direct(form));
    let single_took = started.elapsed();
    let figure = "9. cp of a 512 MiB file";
    let row = match single {
        Err(e) => Row::failed(figure, ">= 3x faster", format!("single upload: {e}")),
        Ok(()) => {
            let mount = world.mount();
            let _watch = Watchdog::arm(&mount, "cp of a big file");
            let commits = |w: &World| {
                requests(w, "POST", |p| {
                    p.starts_with("/api/2.0/files/upload_sessions/") && p.ends_with("/commit")
                })
            };
            let (commits_before, uploads_before) = (commits(world), upload_calls(world));
            let parts_before = requests(world, "PUT", |p| {
                p.starts_with("/api/2.0/files/upload_sessions/")
            });
            let took = cp(&big, &mount.path("big-up.bin")).and_then(|t| {
                let calls = commits(world) - commits_before + upload_calls(world) - uploads_before;
                if calls != 1 {
                    return Err(format!("{calls} uploads or commits, not 1"));
                }
                Ok(t)
            });
            let parts = requests(world, "PUT", |p| {
                p.starts_with("/api/2.0/files/upload_sessions/")
            }) - parts_before;
            speedup_row(
                figure,
                took.map(|t| {
                    (
                        format!("{:.1} MB/s ({}, {parts} parts)", mb_per_s(size, t), secs(t)),
                        t,
                    )
                }),
                (
                    format!(
                        "one POST: {:.1} MB/s ({})",
                        mb_per_s(size, single_took),
                        secs(single_took)
                    ),
                    single_took,
                ),
                3.0,
            )
        }
    };
    rows.push(row);
    rows
}

// ---- figure 10: a lock and metadata through extended attributes --------------------------

const TEMPLATE: &str = "benchReview";

fn c_path(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

fn set_xattr(path: &Path, name: &str, value: &str) -> Result<(), String> {
    let (p, n) = (c_path(path), std::ffi::CString::new(name).expect("name"));
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(format!(
            "setxattr {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn get_xattr(path: &Path, name: &str) -> Result<String, String> {
    let (p, n) = (c_path(path), std::ffi::CString::new(name).expect("name"));
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid C strings and a buffer of the given length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(format!(
            "getxattr {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    buf.truncate(len as usize);
    String::from_utf8(buf).map_err(|_| format!("getxattr {name}: not UTF-8"))
}

fn bench_xattrs(world: &World) -> Vec<Row> {
    use box_client::files::LockOptions;
    use box_client::metadata::{FieldType, ItemRef, NewTemplate, TemplateField};

    let figure = "10. lock + metadata set, both read back";
    let target = "<= 1.2x baseline";
    let created = world.rt.block_on(world.client.create_metadata_template(
        &NewTemplate::new(TEMPLATE, "Bench review").field(TemplateField::new(
            FieldType::String,
            "status",
            "Status",
        )),
    ));
    if let Err(e) = created {
        let row = Row::failed(figure, target, format!("template: {e}"));
        row.print();
        return vec![row];
    }
    let scope = format!("enterprise_{}", world.emu.info.enterprise_id);
    let (api_files, _mount_files) = world.seed(|s| {
        let blob = s.blob(Bytes::from(vec![b'x'; SMALL_FILE_BYTES]));
        let root = s.root;
        let folder = s.folder(root, "Xattrs");
        let mut files = |prefix: &str| -> Vec<Id> {
            (0..XATTR_FILES)
                .map(|i| s.file(folder, &format!("{prefix}-{i}.txt"), &blob))
                .collect()
        };
        (files("api"), files("mount"))
    });

    // Baseline: PUT /files/ID {lock}, POST the instance, GET the lock, GET the instance.
    let mut api_took = Vec::new();
    for id in &api_files {
        let id = id.to_string();
        let started = Instant::now();
        let done: Result<(), String> = world.rt.block_on(async {
            let c = &world.client;
            c.lock_file(&id, &LockOptions::default())
                .await
                .map_err(|e| format!("lock: {e}"))?;
            let mut values = serde_json::Map::new();
            values.insert("status".into(), "approved".into());
            c.create_metadata(&ItemRef::file(id.clone()), &scope, TEMPLATE, &values)
                .await
                .map_err(|e| format!("metadata: {e}"))?;
            let item = c
                .file_with_fields(&id, &["lock"])
                .await
                .map_err(|e| format!("get lock: {e}"))?;
            if item.lock.is_none() {
                return Err("no lock read back".into());
            }
            c.metadata(&ItemRef::file(id.clone()), &scope, TEMPLATE)
                .await
                .map_err(|e| format!("get metadata: {e}"))?;
            Ok(())
        });
        if let Err(e) = done {
            let row = Row::failed(figure, target, format!("baseline: {e}"));
            row.print();
            return vec![row];
        }
        api_took.push(started.elapsed());
    }
    let api = median(api_took);

    let mount = world.mount();
    let _watch = Watchdog::arm(&mount, "xattrs");
    let lock_name = "user.box.lock";
    let metadata_name = format!("user.box.metadata.{scope}.{TEMPLATE}");
    let mut took = Vec::new();
    let outcome = (|| -> Result<(), String> {
        for i in 0..XATTR_FILES {
            let path = mount.path(&format!("Xattrs/mount-{i}.txt"));
            // The lookup is not part of the figure.
            std::fs::metadata(&path).map_err(|e| format!("stat {}: {e}", path.display()))?;
            let started = Instant::now();
            set_xattr(&path, lock_name, "lock")?;
            set_xattr(&path, &metadata_name, r#"{"status":"approved"}"#)?;
            let lock = get_xattr(&path, lock_name)?;
            let metadata = get_xattr(&path, &metadata_name)?;
            took.push(started.elapsed());
            if !lock.contains("holder") {
                return Err(format!("lock read back as {lock:?}"));
            }
            if !metadata.contains("approved") {
                return Err(format!("metadata read back as {metadata:?}"));
            }
        }
        Ok(())
    })();
    vec![ratio_row(
        &format!("{figure} ({XATTR_FILES} files, median)"),
        took,
        (format!("4 API calls: {}", secs(api)), api),
        1.2,
        &outcome,
    )]
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// How fast memory the process never used before fills, against memory it already holds.
/// In a virtual machine whose host takes back freed memory (a balloon with free page
/// reporting, proactive reclaim), first-touch pages cost a fault in the host each, and can
/// be thirty times slower than reused ones. Every figure that moves hundreds of MB (staging a
/// big file, the emulator keeping an upload) pays that, so the run says which state it met.
fn memory_speed() -> String {
    const BYTES: usize = 256 << 20;
    let gb_per_s = |t: Duration| BYTES as f64 / t.as_secs_f64() / 1e9;
    let started = Instant::now();
    // `vec![1; n]` writes every byte: each page is faulted in fresh, then filled.
    let mut fresh = std::hint::black_box(vec![1u8; BYTES]);
    let first = started.elapsed();
    let started = Instant::now();
    fresh.fill(2);
    std::hint::black_box(&fresh);
    let again = started.elapsed();
    format!(
        "memory: first touch {:.2} GB/s, reused {:.2} GB/s (256 MiB each)",
        gb_per_s(first),
        gb_per_s(again)
    )
}

// ---- main -------------------------------------------------------------------------------

type Part = (&'static str, fn(&World) -> Vec<Row>);

const PARTS: &[Part] = &[
    ("read", bench_read),
    ("ls", bench_ls),
    ("find", bench_find),
    ("changes", bench_changes),
    ("memory", bench_memory),
    ("writes", bench_writes),
    ("xattrs", bench_xattrs),
    ("remount", remount::bench_remount),
    ("remount-walk", remount::walk_figures),
    ("remount-store", remount::large_store_figures),
    ("limits-find", limits::bench_find),
    ("limits-write-back", limits::bench_write_back),
    ("limits-close", limits::bench_close),
    ("limits-tls", limits::bench_tls_read),
];

/// Parts that run only when named (`limits` names all four; `remount` names its two halves
/// too, so the whole run skips them and `-- remount` runs them only once).
const ON_REQUEST: &[&str] = &[
    "remount-walk",
    "remount-store",
    "limits-find",
    "limits-write-back",
    "limits-close",
    "limits-tls",
];

fn main() {
    // `cargo bench` passes `--bench`; any other argument names parts to run.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // A filter that is a part's whole name runs that part alone (`remount`, not also
    // `remount-walk`); any other filter runs every part whose name contains it (`limits`).
    let names_part = |f: &String, name: &str| match PARTS.iter().any(|(n, _)| n == f) {
        true => name == f,
        false => name.contains(f.as_str()),
    };
    let chosen: Vec<&Part> = PARTS
        .iter()
        .filter(|(name, _)| match filters.is_empty() {
            true => !ON_REQUEST.contains(name),
            false => filters.iter().any(|f| names_part(f, name)),
        })
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = PARTS.iter().map(|(n, _)| *n).collect();
        eprintln!("no part matches {filters:?}; parts: {}", names.join(", "));
        std::process::exit(2);
    }
    let world = World::start();
    println!(
        "mount benchmark: emulator with {LATENCY_MS} ms latency and {} MiB/s per connection, {} cores",
        BANDWIDTH >> 20,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    // Other work on the machine shows in every figure: say how busy it was.
    println!("load average: {}", load_average());
    println!("{}", memory_speed());
    Row::print_header();
    let started = Instant::now();
    let mut rows = Vec::new();
    for (_, part) in chosen {
        rows.extend(part(&world));
    }
    println!(
        "\nsummary ({} in all; load average {}):",
        secs(started.elapsed()),
        load_average()
    );
    println!("{}", memory_speed());
    Row::print_header();
    for row in &rows {
        row.print();
    }
    let World { rt, emu, .. } = world;
    rt.block_on(emu.stop());
}
