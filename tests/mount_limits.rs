//! Real mounts against an emulator that enforces rate limits the way Box does (a burst, then
//! a steady rate, then 429 with `Retry-After`): a mount paced at the limit walks a tree with
//! no 429 storm, where an unpaced one sets one off; two daemons sharing an account through
//! Redis share its pacing too, and stay under the limit together; `boxfs status` shows the
//! budget. The emulator's request log says what it answered.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use box_emulator::testing::redis::RedisServer;
use box_emulator::{EmulatorConfig, Knobs, Rate, RateLimits};
use common::mount::{logged_requests, TestMount};
use common::TestEmu;
use serde_json::Value;

/// General calls: 20 a second after a burst of 50 (Box's shape, faster, so the tests take
/// seconds); uploads and searches out of the way.
const RATE_PER_MINUTE: u32 = 1200;
const SERVER_BURST: u32 = 50;

fn limits() -> RateLimits {
    let generous = Rate::new(10_000, 1_000, 10_000);
    RateLimits {
        general: Rate::new(RATE_PER_MINUTE, 60_000, SERVER_BURST),
        uploads: generous,
        search_per_second: generous,
        search_per_minute: generous,
        enterprise_search: generous,
    }
}

/// An emulator with a request log and `tree/f0..f9`, each holding 14 folders (151 folders
/// in all); the limits are turned on once the tree is made.
async fn limited_emu(log: &Path) -> Arc<TestEmu> {
    let emu = TestEmu::start_with(EmulatorConfig {
        request_log: Some(log.to_path_buf()),
        ..EmulatorConfig::default()
    })
    .await;
    let tree = emu.mkdir("0", "tree").await;
    for f in 0..10 {
        let folder = emu.mkdir(&tree, &format!("f{f}")).await;
        for g in 0..14 {
            emu.mkdir(&folder, &format!("g{g}")).await;
        }
    }
    let knobs = Knobs {
        rate_limits: Some(limits()),
        ..emu.emulator().knobs()
    };
    emu.emulator().set_knobs(knobs);
    Arc::new(emu)
}

/// The statuses the emulator answered, in order.
fn statuses(log: &Path) -> Vec<u64> {
    logged_requests(log)
        .into_iter()
        .filter(|v| !v["path"].as_str().unwrap_or("").starts_with("/_emulator"))
        .filter_map(|v| v["status"].as_u64())
        .collect()
}

/// Requests and 429s answered since `from` requests were logged.
fn since(log: &Path, from: usize) -> (usize, usize) {
    let all = statuses(log);
    let new = &all[from.min(all.len())..];
    (new.len(), new.iter().filter(|s| **s == 429).count())
}

/// `find` over `dirs`, which must succeed; returns how long it took.
fn find(dirs: &[std::path::PathBuf]) -> Duration {
    let started = Instant::now();
    let out = Command::new("find")
        .args(dirs)
        .stdin(Stdio::null())
        .output()
        .expect("find runs");
    assert!(
        out.status.success(),
        "find: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(found >= dirs.len() * 15, "find listed only {found} entries");
    started.elapsed()
}

/// The least time `calls` general calls can take under the limits (a full burst first).
fn minimum(calls: usize) -> Duration {
    let over = calls.saturating_sub(SERVER_BURST as usize) as f64;
    Duration::from_secs_f64(over * 60.0 / RATE_PER_MINUTE as f64)
}

fn status_json(mountpoint: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_boxfs"))
        .args(["status", "--json"])
        .arg(mountpoint)
        .env("BOXFS_CONFIG", "/dev/null")
        .output()
        .expect("boxfs status runs");
    assert!(out.status.success(), "boxfs status: {out:?}");
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_walk_gets_no_429_storm_where_an_unpaced_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let emu = limited_emu(&log).await;
    let rate = format!("{RATE_PER_MINUTE}/min");
    let (log2, emu2) = (log.clone(), emu.clone());
    blocking(move || {
        let (log, emu) = (log2, emu2);
        let before = statuses(&log).len();
        let mut paced = TestMount::start(&emu, &["--api-rate", &rate]);
        let took = find(&[paced.path("tree")]);
        let (calls, refused) = since(&log, before);
        eprintln!("paced: {calls} requests, {refused} answered 429, {took:?}");
        assert!(
            refused * 100 <= calls,
            "{refused} of {calls} requests were answered 429 on a paced walk"
        );
        // The limit was what set the pace: the walk could not have been quicker.
        assert!(calls > 150, "{calls} requests");
        assert!(
            took >= minimum(calls).mul_f64(0.8),
            "{calls} calls in {took:?}: the limit allows no less than {:?}",
            minimum(calls)
        );
        let status = status_json(&paced.root);
        let api = &status["pacing"]["api"];
        assert_eq!(api["limit_per_minute"], RATE_PER_MINUTE as f64, "{status}");
        assert!(
            api["calls_last_minute"].as_u64().unwrap() >= 150,
            "{status}"
        );
        assert_eq!(status["pacing"]["throttled"], refused as u64, "{status}");
        paced.unmount();

        // The same walk unpaced, once the server's burst has come back: Box would refuse it.
        std::thread::sleep(Duration::from_secs(3));
        let before = statuses(&log).len();
        let mut unpaced = TestMount::start(&emu, &["--api-rate", "unlimited"]);
        let took = find(&[unpaced.path("tree")]);
        let (calls, refused) = since(&log, before);
        eprintln!("unpaced: {calls} requests, {refused} answered 429, {took:?}");
        assert!(
            refused * 20 > calls,
            "only {refused} of {calls} requests answered 429 without pacing: the test shows nothing"
        );
        let status = status_json(&unpaced.root);
        assert!(status["pacing"]["throttled"].as_u64().unwrap() > 0);
        unpaced.unmount();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_sharing_redis_share_the_pacing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let emu = limited_emu(&log).await;
    let store = format!("redis://127.0.0.1:{}/?key=boxfs-test-account", redis.port);
    let rate = format!("{RATE_PER_MINUTE}/min");
    blocking(move || {
        let flags = ["--api-rate", &rate, "--token-store", &store];
        let mut a = TestMount::start(&emu, &flags);
        let mut b = TestMount::start(&emu, &flags);
        let before = statuses(&log).len();
        let started = Instant::now();
        let halves = [
            (0..5)
                .map(|f| a.path(&format!("tree/f{f}")))
                .collect::<Vec<_>>(),
            (5..10)
                .map(|f| b.path(&format!("tree/f{f}")))
                .collect::<Vec<_>>(),
        ];
        std::thread::scope(|s| {
            for half in &halves {
                s.spawn(move || find(half));
            }
        });
        let took = started.elapsed();
        let (calls, refused) = since(&log, before);
        eprintln!("two daemons: {calls} requests, {refused} answered 429, {took:?}");
        assert!(
            refused * 100 <= calls,
            "{refused} of {calls} requests were answered 429 with two daemons"
        );
        // Each alone was paced at the whole limit: only sharing it keeps them this slow.
        assert!(calls > 150, "{calls} requests");
        assert!(
            took >= minimum(calls).mul_f64(0.8),
            "{calls} calls in {took:?}: together under the limit takes at least {:?}",
            minimum(calls)
        );
        for mount in [&a, &b] {
            let status = status_json(&mount.root);
            let shared = status["pacing"]["shared_through"].as_str().unwrap_or("");
            assert!(shared.contains("127.0.0.1"), "{status}");
        }
        a.unmount();
        b.unmount();
    })
    .await;
}
