//! The `limits` parts (`limits-find`, `limits-write-back`, `limits-close`, `limits-tls`;
//! naming `limits` runs them all): the mount against an emulator as strict as Box (`RateLimits::BOX`:
//! 1,000 calls a minute after a burst of 50, 240 uploads a minute after a burst of 20), paced
//! at Box's rates (`--api-rate 1000/min --upload-rate 240/min`). Each time is printed next to
//! the least time the limits allow for the calls it made, computed in the same run from the
//! emulator's request log as (calls − burst) / rate for the limit that binds; each figure also
//! says how many of its requests were answered 429. Between figures the bench waits for the
//! emulator's buckets to fill again, so each starts with a full burst as the formula assumes.
//! The last figure is a cold read over TLS against the same read over plain HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use box_emulator::{Emulator, EmulatorConfig, Knobs, RateLimits};
use bytes::Bytes;
use serde_json::Value;

use super::{
    cp, link_knobs, ls_l, mb_per_s, read_file, secs, unmount_waiting, Row, TestEmu, TestMount,
    Watchdog, World, BIG_FILE_BYTES, COLD_READ_LIMIT, FANOUT, SMALL_WRITES, SMALL_WRITE_BYTES,
};

const PACED: [&str; 6] = [
    "--cache-size",
    "2G",
    "--api-rate",
    "1000/min",
    "--upload-rate",
    "240/min",
];
/// Long enough for every bucket of `RateLimits::BOX` to be full again.
const REFILL: Duration = Duration::from_secs(6);
const WIDE_ENTRIES: usize = 1000;
/// 1,000 uploads at 240 a minute take about 4 minutes.
const COPY_LIMIT: Duration = Duration::from_secs(600);
const MAX_RATIO: f64 = 1.15;
const MAX_THROTTLED_SHARE: f64 = 0.01;

/// What the emulator answered after the first `from` lines of its request log.
struct Answered {
    /// Counted as general calls (everything but the download and long-poll hosts).
    general: usize,
    uploads: usize,
    throttled: usize,
}

fn log_lines(world: &World) -> Vec<Value> {
    super::mount::logged_requests(&world.request_log)
}

fn answered_since(world: &World, from: usize) -> Answered {
    let lines = log_lines(world);
    let mut a = Answered {
        general: 0,
        uploads: 0,
        throttled: 0,
    };
    for v in lines.iter().skip(from) {
        let path = v["path"].as_str().unwrap_or("");
        let counted = box_emulator::rate_limits::counted(path);
        if !counted {
            continue;
        }
        if v["status"] == 429 {
            a.throttled += 1;
            continue;
        }
        a.general += 1;
        let upload = v["method"] == "POST"
            && (path.ends_with("/files/content") || path.ends_with("/upload_sessions"));
        if upload {
            a.uploads += 1;
        }
    }
    a
}

impl Answered {
    /// The least time these calls take under Box's limits, and which limit binds.
    fn minimum(&self) -> (Duration, &'static str) {
        let b = RateLimits::BOX;
        let time = |calls: usize, r: box_emulator::Rate| {
            let over = calls.saturating_sub(r.burst as usize) as f64;
            Duration::from_secs_f64(over * r.window_ms as f64 / 1000.0 / r.calls as f64)
        };
        let general = time(self.general, b.general);
        let uploads = time(self.uploads, b.uploads);
        if uploads > general {
            (uploads, "uploads")
        } else {
            (general, "calls")
        }
    }

    fn throttled_share(&self) -> f64 {
        self.throttled as f64 / (self.general + self.throttled).max(1) as f64
    }

    fn describe(&self) -> String {
        format!(
            "{} calls, {} uploads, {} answered 429",
            self.general, self.uploads, self.throttled
        )
    }
}

/// A row: `took` against the minimum the calls allow, within `MAX_RATIO` and with at most
/// 1 % answered 429 (and whatever else `also` demands).
fn limited_row(
    figure: &str,
    took: Result<Duration, String>,
    answered: &Answered,
    also: Result<(), String>,
) -> Row {
    let target = format!("<= {MAX_RATIO}x, <= 1% 429");
    let row = match took.and_then(|t| also.map(|_| t)) {
        Err(e) => Row::failed(figure, &target, e),
        Ok(took) => {
            let (min, binding) = answered.minimum();
            let ratio = took.as_secs_f64() / min.as_secs_f64().max(0.001);
            Row {
                figure: figure.into(),
                measured: format!("{} ({})", secs(took), answered.describe()),
                baseline: format!("the {binding} limit allows {}", secs(min)),
                ratio: format!("{ratio:.3}x"),
                target,
                pass: ratio <= MAX_RATIO && answered.throttled_share() <= MAX_THROTTLED_SHARE,
            }
        }
    };
    row.print();
    row
}

fn set_limits(world: &World, limits: Option<RateLimits>) {
    let knobs = Knobs {
        rate_limits: limits,
        ..world.emu.knobs()
    };
    world.emu.set_knobs(knobs);
}

/// Files of Box's that `folder_id` holds (through the store: no call is counted).
fn files_in(world: &World, name: &str) -> usize {
    let store = world.emu.shared.store();
    let admin = store.admin;
    let root = store.users[&admin].root_folder;
    let Some(folder) = store
        .items
        .values()
        .find(|i| i.parent == Some(root) && i.name == name && i.trash.is_none())
        .map(|i| i.id)
    else {
        return 0;
    };
    store
        .items
        .values()
        .filter(|i| i.parent == Some(folder) && i.trash.is_none())
        .count()
}

/// 1,000 files of 4 KiB on tmpfs, for the copies.
fn small_files() -> tempfile::TempDir {
    let tmpfs = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    for i in 0..SMALL_WRITES {
        let mut v = format!("file {i}\n").into_bytes();
        v.resize(SMALL_WRITE_BYTES, b'.');
        std::fs::write(tmpfs.path().join(format!("f{i:04}.txt")), v).expect("small file");
    }
    tmpfs
}

/// Runs `figures` with Box's limits enforced by the emulator.
fn under_limits(world: &World, figures: impl FnOnce(&mut Vec<Row>)) -> Vec<Row> {
    set_limits(world, Some(RateLimits::BOX));
    let mut rows = Vec::new();
    figures(&mut rows);
    set_limits(world, None);
    rows
}

/// The `limits-find` part: L1, a cold find over 1,111 folders.
pub fn bench_find(world: &World) -> Vec<Row> {
    let tree_len = world.seed(|s| {
        let root = s.root;
        let top = s.folder(root, "LimitsTree");
        let mut level = vec![top];
        let mut all = 1;
        for depth in 0..3 {
            let mut next = Vec::new();
            for &parent in &level {
                for i in 0..FANOUT {
                    next.push(s.folder(parent, &format!("d{depth}-{i}")));
                }
            }
            all += next.len();
            level = next;
        }
        all
    });
    under_limits(world, |rows| {
        std::thread::sleep(REFILL);
        let from = log_lines(world).len();
        let mount = TestMount::start(&world.addr, &PACED);
        let _watch = Watchdog::arm(&mount, "limits: find");
        let dir = mount.path("LimitsTree");
        let took = super::run_timed("find", &[&dir]).and_then(|(t, lines)| {
            if lines != tree_len {
                return Err(format!("find printed {lines} lines, not {tree_len}"));
            }
            Ok(t)
        });
        rows.push(limited_row(
            &format!("L1. cold find, {tree_len} folders, Box's limits"),
            took,
            &answered_since(world, from),
            Ok(()),
        ));
    })
}

/// The `limits-write-back` part: L2, cp -r of 1,000 files with --write-back 1 until all are
/// on Box, and L4, meanwhile an `ls -l` of a folder not listed yet against the same on an
/// idle mount.
pub fn bench_write_back(world: &World) -> Vec<Row> {
    world.seed(|s| {
        let blob = s.blob(Bytes::from(vec![b'x'; 1000]));
        let root = s.root;
        let wide = s.folder(root, "LimitsWide");
        for i in 0..WIDE_ENTRIES {
            s.file(wide, &format!("file-{i:04}.txt"), &blob);
        }
    });
    let small = small_files();
    let small_dir = small.path();
    under_limits(world, |rows| {
        let idle_ls = {
            std::thread::sleep(REFILL);
            let mount = TestMount::start(&world.addr, &PACED);
            let dir = mount.path("LimitsWide");
            std::fs::metadata(&dir).ok();
            ls_l(&dir, WIDE_ENTRIES)
        };
        {
            std::thread::sleep(REFILL);
            let from = log_lines(world).len();
            let mut flags = PACED.to_vec();
            flags.extend(["--write-back", "1"]);
            let mount = TestMount::start(&world.addr, &flags);
            let _watch = Watchdog::arm_for(&mount, "limits: cp --write-back", COPY_LIMIT);
            let started = Instant::now();
            let copied = cp(small_dir, &mount.path("LimitsBack"));
            // The uploads are queued now and go on in the background: list a folder meanwhile.
            std::thread::sleep(Duration::from_secs(5));
            let wide = mount.path("LimitsWide");
            std::fs::metadata(&wide).ok();
            let busy_ls = ls_l(&wide, WIDE_ENTRIES);
            let pending = mount_pending(&mount);
            let all_on_box = copied
                .and_then(|_| unmount_waiting(&mount))
                .map(|_| started.elapsed());
            let log = std::fs::read_to_string(&mount.log_file).unwrap_or_default();
            let on_box = files_in(world, "LimitsBack");
            let also = if on_box != SMALL_WRITES {
                Err(format!("{on_box} of {SMALL_WRITES} files on Box"))
            } else if let Some(line) = log
                .lines()
                .find(|l| l.contains("upload") && l.contains("failed"))
            {
                Err(format!("the daemon logged: {line}"))
            } else {
                Ok(())
            };
            rows.push(limited_row(
                "L2. cp -r 1,000 x 4 KiB, --write-back 1, until on Box",
                all_on_box,
                &answered_since(world, from),
                also,
            ));
            let figure = "L4. ls -l 1,000 entries during that copy";
            let target = "<= 3x idle";
            let row = match (busy_ls, &idle_ls) {
                (Ok(busy), Ok(idle)) => {
                    let ratio = busy.as_secs_f64() / idle.as_secs_f64();
                    Row {
                        figure: figure.into(),
                        measured: format!("{} ({pending} uploads pending)", secs(busy)),
                        baseline: format!("idle mount: {}", secs(*idle)),
                        ratio: format!("{ratio:.2}x"),
                        target: target.into(),
                        pass: ratio <= 3.0 && pending > 0,
                    }
                }
                (Err(e), _) => Row::failed(figure, target, e),
                (_, Err(e)) => Row::failed(figure, target, format!("idle: {e}")),
            };
            row.print();
            rows.push(row);
        }
    })
}

/// The `limits-close` part: L3, the same copy with each close waiting for its upload.
pub fn bench_close(world: &World) -> Vec<Row> {
    let small = small_files();
    let small_dir = small.path();
    under_limits(world, |rows| {
        std::thread::sleep(REFILL);
        let from = log_lines(world).len();
        let mount = TestMount::start(&world.addr, &PACED);
        let _watch = Watchdog::arm_for(&mount, "limits: cp", COPY_LIMIT);
        let took = cp(small_dir, &mount.path("LimitsClose"));
        let on_box = files_in(world, "LimitsClose");
        let also = if on_box == SMALL_WRITES {
            Ok(())
        } else {
            Err(format!("{on_box} of {SMALL_WRITES} files on Box"))
        };
        rows.push(limited_row(
            "L3. cp -r 1,000 x 4 KiB, close uploads (no close fails)",
            took,
            &answered_since(world, from),
            also,
        ));
    })
}

/// Uploads the daemon has queued, from `boxfs status --json`.
fn mount_pending(mount: &TestMount) -> u64 {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_boxfs"))
        .args(["status", "--json"])
        .arg(&mount.root)
        .output();
    out.ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
        .and_then(|v| v["uploads"]["pending_files"].as_u64())
        .unwrap_or(0)
}

/// The `limits-tls` part (also run by `-- limits`): L5, a cold read of 512 MiB through a
/// mount of an emulator serving HTTPS (its CA given with `--ca-cert`), against the same read
/// through a mount of the plain-HTTP emulator.
pub fn bench_tls_read(world: &World) -> Vec<Row> {
    vec![tls_read(world)]
}

fn tls_read(world: &World) -> Row {
    let figure = "L5. cold read 512 MiB over TLS";
    let target = ">= 0.8x plain HTTP";
    let data: Bytes = (0..BIG_FILE_BYTES)
        .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
        .collect::<Vec<u8>>()
        .into();
    let dir = tempfile::tempdir().expect("CA dir");
    let ca = dir.path().join("ca.pem");
    let https = world.rt.block_on(Emulator::start(EmulatorConfig {
        serve_https: Some(ca.clone()),
        knobs: link_knobs(),
        ..EmulatorConfig::default()
    }));
    let https = match https {
        Ok(e) => Arc::new(e),
        Err(e) => {
            let row = Row::failed(figure, target, format!("HTTPS emulator: {e}"));
            row.print();
            return row;
        }
    };
    seed_file(&https, "tls.bin", &data);
    world.seed(|s| {
        let blob = s.blob(data.clone());
        let root = s.root;
        s.file(root, "plain.bin", &blob)
    });
    let read = |mount: &TestMount, name: &str| -> Result<Duration, String> {
        let _watch = Watchdog::arm(mount, "limits: cold read");
        let (bytes, took) = read_file(
            &mount.path(name),
            Some(&data),
            data.len() as u64,
            COLD_READ_LIMIT,
        )?;
        if bytes != data.len() as u64 {
            return Err(format!("read {bytes} bytes in {}", secs(took)));
        }
        Ok(took)
    };
    let plain = read(&world.mount(), "plain.bin");
    let tls_addr = TestEmu {
        base: https.base_url().to_string(),
        token: https.info.developer_token.clone(),
    };
    let ca_arg = ca.display().to_string();
    let tls = read(
        &TestMount::start(&tls_addr, &["--cache-size", "2G", "--ca-cert", &ca_arg]),
        "tls.bin",
    );
    let size = data.len() as u64;
    let row = match (tls, plain) {
        (Ok(tls), Ok(plain)) => {
            let (tls_rate, plain_rate) = (mb_per_s(size, tls), mb_per_s(size, plain));
            Row {
                figure: figure.into(),
                measured: format!("{tls_rate:.1} MB/s ({})", secs(tls)),
                baseline: format!("plain HTTP: {plain_rate:.1} MB/s ({})", secs(plain)),
                ratio: format!("{:.2}x", tls_rate / plain_rate),
                target: target.into(),
                pass: tls_rate >= 0.8 * plain_rate,
            }
        }
        (Err(e), _) => Row::failed(figure, target, format!("over TLS: {e}")),
        (_, Err(e)) => Row::failed(figure, target, format!("plain: {e}")),
    };
    row.print();
    world.emu.shared.store().blobs.retain(|_, b| b.len() < 1024);
    if let Ok(https) = Arc::try_unwrap(https) {
        world.rt.block_on(https.stop());
    }
    row
}

/// Stores `data` as `name` in the root of `emu`'s admin.
fn seed_file(emu: &Emulator, name: &str, data: &Bytes) {
    super::seed(emu, |s| {
        let blob = s.blob(data.clone());
        let root = s.root;
        s.file(root, name, &blob);
    });
}
