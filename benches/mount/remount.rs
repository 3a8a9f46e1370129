//! The `remount` part: what the metadata store buys after an unmount. A 1,111-folder tree
//! is walked with `find` right after a remount, against the same `find` on the mount that
//! had just walked it, with the API calls the remount and its walk made; a change made on
//! Box while nothing was mounted, timed from `boxfs mount` until it shows; and with
//! 100,000 items in the store, how long `boxfs mount` takes to return, the daemon's memory
//! after listing them all, and the store's size per item.

use std::path::Path;
use std::time::{Duration, Instant};

use box_client::Client;

use super::{
    ls_l, median, mount, proc_status_bytes, run_timed, secs, Row, TestMount, Watchdog, World,
    FANOUT, LISTING_ENTRIES, MEMORY_FOLDERS, SMALL_FILE_BYTES,
};

/// Walks of each kind in R1 and R1b, of which the median counts.
const WALKS: usize = 5;

/// Figure 7 before the store (README): the daemon's RSS after listing 100,000 items.
const RSS_BEFORE_STORE_MB: f64 = 77.6;

fn mount_with(world: &World, cache: &Path) -> TestMount {
    TestMount::start(
        &world.addr,
        &["--cache-size", "2G", "--cache-dir", cache.to_str().unwrap()],
    )
}

fn log_lines(world: &World) -> usize {
    mount::logged_requests(&world.request_log).len()
}

fn row(
    figure: &str,
    measured: String,
    baseline: String,
    ratio: String,
    target: &str,
    pass: bool,
) -> Row {
    let row = Row {
        figure: figure.into(),
        measured,
        baseline,
        ratio,
        target: target.into(),
        pass,
    };
    row.print();
    row
}

/// The CPU the walks of R1 run on: `find` and the daemon both. On this machine (a VM) a
/// wakeup across CPUs costs about 30 µs, and a walk is a ping-pong of 2,000 to 4,500 of
/// them between `find` and the daemon's FUSE thread: unpinned, a walk runs at one of two
/// speeds 5x apart depending only on where the scheduler put `find`. Both walks of the
/// ratio are pinned alike, and the daemon's other threads (the store's read-ahead) share
/// that one CPU, which only makes the walk after a remount slower.
fn walk_cpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
}

/// Pins every thread of the daemon of `m` to [`walk_cpu`]; threads it starts later inherit
/// it.
fn pin_daemon(m: &TestMount) -> Result<(), String> {
    let pid = m.pid().ok_or("the daemon is not running")?.to_string();
    let cpu = walk_cpu().to_string();
    let out = std::process::Command::new("taskset")
        .args(["--all-tasks", "--pid", "--cpu-list", &cpu, &pid])
        .output()
        .map_err(|e| format!("taskset: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pinning the daemon: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// `find DIR` on [`walk_cpu`], which must print `expected` lines. `taskset` pins it: a
/// `pre_exec` hook would make the standard library fork this process, which holds the
/// emulator's gigabytes by the end of a whole run, instead of spawning (15 to 30 ms more a
/// walk, measured).
fn find_folders(dir: &Path, expected: usize) -> Result<Duration, String> {
    let cpu = walk_cpu().to_string();
    let (took, lines) = run_timed(
        "taskset",
        &[Path::new("-c"), Path::new(&cpu), Path::new("find"), dir],
    )?;
    if lines != expected {
        return Err(format!("find printed {lines} lines, not {expected}"));
    }
    Ok(took)
}

/// Makes the kernel forget every dentry and inode it does not use, this mount's included:
/// its state after a remount, with the daemon still holding everything. Needs root.
fn drop_kernel_caches() -> Result<(), String> {
    std::fs::write("/proc/sys/vm/drop_caches", "2")
        .map_err(|e| format!("cannot drop the kernel's caches (root only): {e}"))?;
    // The forgets reach the daemon asynchronously.
    std::thread::sleep(Duration::from_millis(200));
    Ok(())
}

pub fn bench_remount(world: &World) -> Vec<Row> {
    let mut rows = walk_figures(world);
    rows.extend(large_store_figures(world));
    rows
}

/// Figures R1, R2 and R3: the walk after a remount, its calls, and a change made while
/// nothing was mounted. Also the part `remount-walk`.
pub fn walk_figures(world: &World) -> Vec<Row> {
    let folders = world.seed(|s| {
        let root = s.root;
        let top = s.folder(root, "Remount");
        let mut count = 1;
        let mut level = vec![top];
        for depth in 0..3 {
            let mut next = Vec::new();
            for &parent in &level {
                for i in 0..FANOUT {
                    next.push(s.folder(parent, &format!("r{depth}-{i}")));
                }
            }
            count += next.len();
            level = next;
        }
        count
    });
    let cache = tempfile::tempdir().expect("cache dir");
    let figure1 = format!("R1. find after remount, {folders} folders (median of {WALKS})");
    let figure1b = "R1b. the same, kernel's caches dropped, no remount";
    let figure2 = "R2. API calls: remount and that find";
    struct Walks {
        warm: Duration,
        dropped: Result<Duration, String>,
        after: Duration,
        calls: usize,
    }
    let outcome = (|| -> Result<Walks, String> {
        let mut first = mount_with(world, cache.path());
        let dir = first.path("Remount");
        let _watch = Watchdog::arm(&first, "find before the remount");
        pin_daemon(&first)?;
        find_folders(&dir, folders)?;
        // The first walk after a listing asks every folder's attributes again (reading a
        // folder makes the kernel forget its atime): the walks measured come after it.
        find_folders(&dir, folders)?;
        let warm: Vec<Duration> = (0..WALKS)
            .map(|_| find_folders(&dir, folders))
            .collect::<Result<_, _>>()?;
        // The kernel's part of a walk after a remount: its caches empty, the daemon's full.
        let dropped = (0..WALKS)
            .map(|_| {
                drop_kernel_caches()?;
                find_folders(&dir, folders)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(median);
        if !first.unmount().success() {
            return Err("unmount failed".into());
        }
        // Remounts, each walked once: the median, and the calls of the first.
        let mut after = Vec::new();
        let mut calls = 0;
        for round in 0..WALKS {
            let before = log_lines(world);
            let mut again = mount_with(world, cache.path());
            let _watch = Watchdog::arm(&again, "find after the remount");
            pin_daemon(&again)?;
            after.push(find_folders(&again.path("Remount"), folders)?);
            if round == 0 {
                calls = log_lines(world) - before;
            }
            if !again.unmount().success() {
                return Err("unmount failed".into());
            }
        }
        Ok(Walks {
            warm: median(warm),
            dropped,
            after: median(after),
            calls,
        })
    })();
    let mut rows = Vec::new();
    match outcome {
        Err(e) => {
            for f in [figure1.as_str(), figure1b, figure2] {
                let r = Row::failed(f, "", e.clone());
                r.print();
                rows.push(r);
            }
        }
        Ok(w) => {
            let ratio = w.after.as_secs_f64() / w.warm.as_secs_f64();
            rows.push(row(
                &figure1,
                secs(w.after),
                format!(
                    "the same find on the mount that walked it: {}",
                    secs(w.warm)
                ),
                format!("{ratio:.2}x"),
                "<= 2x baseline",
                ratio <= 2.0,
            ));
            // No target: what the kernel alone costs, for reading R1.
            rows.push(match w.dropped {
                Ok(dropped) => row(
                    figure1b,
                    secs(dropped),
                    format!(
                        "the mount that walked it: {}; R1 is {:.2}x this",
                        secs(w.warm),
                        w.after.as_secs_f64() / dropped.as_secs_f64()
                    ),
                    format!("{:.2}x", dropped.as_secs_f64() / w.warm.as_secs_f64()),
                    "- (reference)",
                    true,
                ),
                Err(e) => {
                    let r = Row::failed(figure1b, "- (reference)", e);
                    r.print();
                    r
                }
            });
            rows.push(row(
                figure2,
                format!("{} calls", w.calls),
                format!("a cold walk lists {folders} folders"),
                "-".into(),
                "<= 10 calls",
                w.calls <= 10,
            ));
        }
    }
    rows.push(change_while_unmounted(world, cache.path()));
    rows
}

/// Figure R3: a folder renamed on Box while nothing was mounted, from `boxfs mount` until
/// the new name shows.
fn change_while_unmounted(world: &World, cache: &Path) -> Row {
    let figure = "R3. change made while unmounted, visible after";
    let client: &Client = &world.client;
    let outcome = (|| -> Result<(Duration, Duration), String> {
        let id = world.rt.block_on(async {
            let page = client
                .folder_items_page("0", &box_client::folders::ListOptions::marker().limit(1000))
                .await
                .map_err(|e| e.to_string())?;
            let top = page
                .entries
                .iter()
                .find(|e| e.name == "Remount")
                .ok_or("no Remount folder")?
                .id
                .clone();
            let page = client
                .folder_items_page(
                    &top,
                    &box_client::folders::ListOptions::marker().limit(1000),
                )
                .await
                .map_err(|e| e.to_string())?;
            let first = page
                .entries
                .first()
                .ok_or("empty Remount folder")?
                .id
                .clone();
            Ok::<String, String>(first)
        })?;
        world
            .rt
            .block_on(client.rename_folder(&id, "renamed-while-unmounted"))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let m = mount_with(world, cache);
        let mounted = started.elapsed();
        let seen = mount::eventually(Duration::from_secs(15), || {
            m.path("Remount/renamed-while-unmounted").exists()
        })
        .ok_or("the new name never showed")?;
        Ok((mounted, mounted + seen))
    })();
    let r = match outcome {
        Err(e) => Row::failed(figure, "<= 2 s", e),
        Ok((mounted, visible)) => Row {
            figure: figure.into(),
            measured: secs(visible),
            baseline: format!("boxfs mount returned in {}", secs(mounted)),
            ratio: "-".into(),
            target: "<= 2 s".into(),
            pass: visible <= Duration::from_secs(2),
        },
    };
    r.print();
    r
}

fn store_bytes(cache: &Path) -> u64 {
    ["metadata.sqlite3", "metadata.sqlite3-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(cache.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Figures R4, R5 and R6: 100,000 items in the store. Also the part `remount-store`.
pub fn large_store_figures(world: &World) -> Vec<Row> {
    world.seed(|s| {
        let blob = s.blob(bytes::Bytes::from(vec![b'x'; SMALL_FILE_BYTES]));
        let root = s.root;
        let top = s.folder(root, "Stored");
        for f in 0..MEMORY_FOLDERS {
            let folder = s.folder(top, &format!("s{f}"));
            for i in 0..LISTING_ENTRIES {
                s.file(folder, &format!("file-{i:05}.txt"), &blob);
            }
        }
    });
    let items = MEMORY_FOLDERS * LISTING_ENTRIES;
    let cache = tempfile::tempdir().expect("cache dir");
    let list_all = |m: &TestMount| -> Result<(), String> {
        for f in 0..MEMORY_FOLDERS {
            ls_l(&m.path(&format!("Stored/s{f}")), LISTING_ENTRIES)?;
        }
        Ok(())
    };
    let rss_mb = |m: &TestMount| {
        m.pid()
            .and_then(|pid| proc_status_bytes(pid, "VmRSS:"))
            .map_or(0.0, |b| b as f64 / 1e6)
    };
    // The resident size the daemon keeps once the listing's rows are written to the store
    // (every second, 100,000 rows in one transaction) and the memory that took is given
    // back: the least of samples over 5 s. Sampled at once, it varied by 15 MB with the
    // moment the store's writer had reached.
    let settled_rss = |m: &TestMount| {
        let mut least = f64::MAX;
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(250));
            least = least.min(rss_mb(m));
        }
        least
    };
    let outcome = (|| -> Result<(Duration, Duration, f64, f64, u64), String> {
        let started = Instant::now();
        let mut first = mount_with(world, cache.path());
        let empty_mount = started.elapsed();
        let _watch = Watchdog::arm(&first, "ls -l of 100,000 items");
        list_all(&first)?;
        let rss_listed = settled_rss(&first);
        if !first.unmount().success() {
            return Err("unmount failed".into());
        }
        let bytes = store_bytes(cache.path());
        let started = Instant::now();
        let second = mount_with(world, cache.path());
        let full_mount = started.elapsed();
        let _watch = Watchdog::arm(&second, "ls -l of 100,000 stored items");
        list_all(&second)?;
        let rss_stored = settled_rss(&second);
        Ok((empty_mount, full_mount, rss_listed, rss_stored, bytes))
    })();
    let figures = [
        "R4. boxfs mount returns, 100,000 items stored",
        "R5. daemon RSS, 100,000 items, with the store",
        "R6. store size per item",
    ];
    let Ok((empty_mount, full_mount, rss_listed, rss_stored, bytes)) = outcome else {
        let e = outcome.err().unwrap_or_default();
        return figures
            .iter()
            .map(|f| {
                let r = Row::failed(f, "", e.clone());
                r.print();
                r
            })
            .collect();
    };
    let rss = rss_listed.max(rss_stored);
    let rss_limit = RSS_BEFORE_STORE_MB * 1.2;
    vec![
        row(
            figures[0],
            secs(full_mount),
            format!("with an empty store: {}", secs(empty_mount)),
            format!("{:.2}x", full_mount.as_secs_f64() / empty_mount.as_secs_f64()),
            "<= 1 s",
            full_mount <= Duration::from_secs(1),
        ),
        row(
            figures[1],
            format!("{rss:.1} MB"),
            format!(
                "listed from Box {rss_listed:.1} MB, from the store {rss_stored:.1} MB; before the store {RSS_BEFORE_STORE_MB} MB"
            ),
            format!("{:.2}x", rss / RSS_BEFORE_STORE_MB),
            &format!("<= {rss_limit:.1} MB"),
            rss > 0.0 && rss <= rss_limit,
        ),
        row(
            figures[2],
            format!("{:.0} B/item", bytes as f64 / items as f64),
            format!("{:.1} MB for {items} items", bytes as f64 / 1e6),
            "-".into(),
            "<= 400 B/item",
            bytes as f64 / items as f64 <= 400.0,
        ),
    ]
}
