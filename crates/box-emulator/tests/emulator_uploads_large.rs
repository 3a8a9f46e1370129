//! A single-request upload of a few hundred MB, streamed with chunked encoding: accepted,
//! hashed right, stored whole, and held in memory once. Alone in its test binary so that
//! the process's peak memory measures this upload only.

use box_emulator::testing::uploads::*;
use box_emulator::testing::TestEmu;
use reqwest::StatusCode;
use serde_json::json;
use sha1::{Digest, Sha1};

/// ~200 MB in one request with chunked encoding: accepted, hashed right, stored whole.
#[tokio::test]
async fn large_single_request_upload() {
    let t = TestEmu::start().await;
    let p = std::sync::Arc::new(Pattern::new());
    const MIBS: usize = 200;
    let mut h = Sha1::new();
    for i in 0..MIBS {
        h.update(p.mib(i));
    }
    let want = hex::encode(h.finalize());
    let gen = p.clone();
    let (status, body) = upload_streamed(
        &t,
        "/files/content?fields=sha1,size",
        json!({"name": "large.bin", "parent": {"id": "0"}}),
        (0..MIBS).map(move |i| gen.mib(i)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let e = &body["entries"][0];
    assert_eq!(e["size"], (MIBS << 20) as u64);
    assert_eq!(e["sha1"], want);
    let stored = stored_content(&t, e["id"].as_str().unwrap());
    assert_eq!(stored.len(), MIBS << 20);
    assert_eq!(sha1_hex(&stored), want);
    assert_eq!(&stored[5 << 20..6 << 20], &p.mib(5)[..]);
    drop(stored);

    // The emulator held the content once: the process's peak memory stays well under two
    // copies (it is alone in this test binary).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    let one_copy_kib = (MIBS as u64) << 10;
    assert!(
        peak_kib < one_copy_kib + 100 * 1024,
        "peak memory {peak_kib} KiB for a {one_copy_kib} KiB upload"
    );
}
