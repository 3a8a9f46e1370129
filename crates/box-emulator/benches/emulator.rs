//! How fast the emulator serves: folder listings per second and download throughput, each
//! printed next to a baseline measured in the same run (a trivial API call for listings;
//! a raw loopback TCP transfer of the same bytes for downloads).
//!
//! Run: `cargo bench --bench emulator`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use box_emulator::store::{ItemKind, Version};
use box_emulator::{Emulator, EmulatorConfig};
use bytes::Bytes;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LISTING_ENTRIES: usize = 1000;
const CONCURRENCY: usize = 16;
const RUN_FOR: Duration = Duration::from_secs(3);
const DOWNLOAD_BYTES: usize = 256 * 1024 * 1024;

/// Requests per second of `url` over `CONCURRENCY` keep-alive connections.
async fn requests_per_second(http: &reqwest::Client, url: &str, token: &str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN_FOR;
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url, token, done) = (
            http.clone(),
            url.to_string(),
            token.to_string(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let resp = http
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request");
                assert!(resp.status().is_success(), "{} {}", url, resp.status());
                resp.bytes().await.expect("body");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// MB/s of moving `data` once over a plain loopback TCP connection.
async fn raw_loopback_mbps(data: Bytes) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sender = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        sock.write_all(&data).await.expect("write");
    });
    let started = Instant::now();
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        let n = sock.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        total += n;
    }
    sender.await.expect("sender");
    total as f64 / 1e6 / started.elapsed().as_secs_f64()
}

async fn download_mbps(http: &reqwest::Client, url: &str, token: &str, expected: usize) -> f64 {
    let started = Instant::now();
    let mut resp = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    assert!(
        resp.status().is_success(),
        "download status {}",
        resp.status()
    );
    let mut total = 0usize;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        total += chunk.len();
    }
    assert_eq!(total, expected);
    total as f64 / 1e6 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let token = emu.info.developer_token.clone();
    let base = emu.base_url().to_string();
    let (folder, file) = {
        let mut store = emu.shared.store();
        let admin = store.admin;
        let root = store.users[&admin].root_folder;
        let now = chrono::Utc::now();
        let folder = store.new_item(ItemKind::Folder, "Listing", root, admin, admin, now);
        let folder = store.insert_item(folder);
        for i in 0..LISTING_ENTRIES {
            let f = store.new_item(
                ItemKind::Folder,
                &format!("entry {i:05}"),
                folder,
                admin,
                admin,
                now,
            );
            store.insert_item(f);
        }
        let data: Vec<u8> = (0..DOWNLOAD_BYTES)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let sha1 = hex::encode(Sha1::digest(&data));
        store.blobs.insert(sha1.clone(), Bytes::from(data).into());
        let mut f = store.new_item(ItemKind::File, "big.bin", root, admin, admin, now);
        let vid = store.alloc_id();
        f.versions.push(Version {
            id: vid,
            sha1,
            size: DOWNLOAD_BYTES as u64,
            name: "big.bin".into(),
            created_at: now,
            modified_by: admin,
        });
        let file = store.insert_item(f);
        (folder, file)
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");

    println!(
        "emulator benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let baseline = requests_per_second(&http, &format!("{base}/2.0/users/me"), &token).await;
    let fields =
        "name,size,modified_at,content_modified_at,created_at,etag,sequence_id,item_status";
    let listing_url = format!("{base}/2.0/folders/{folder}/items?limit=1000&fields={fields}");
    let listings = requests_per_second(&http, &listing_url, &token).await;
    println!("GET /users/me (baseline)                  {baseline:10.0} req/s");
    println!(
        "GET /folders/ID/items, 1000 entries, fields {listings:10.0} req/s  ({:.0} entries/s; {:.2}x baseline)",
        listings * LISTING_ENTRIES as f64,
        listings / baseline
    );
    let small_listing_url = format!("{base}/2.0/folders/{folder}/items?limit=100");
    let small = requests_per_second(&http, &small_listing_url, &token).await;
    println!(
        "GET /folders/ID/items, 100 mini entries   {small:10.0} req/s  ({:.2}x baseline)",
        small / baseline
    );

    let data = emu
        .shared
        .store()
        .blobs
        .values()
        .next()
        .map(|b| b.to_bytes())
        .expect("blob");
    let raw = raw_loopback_mbps(data).await;
    let url = format!("{base}/2.0/files/{file}/content");
    let one = download_mbps(&http, &url, &token, DOWNLOAD_BYTES).await;
    println!("raw loopback TCP, 256 MiB (baseline)      {raw:10.0} MB/s");
    println!(
        "download, 256 MiB, one stream             {one:10.0} MB/s  ({:.2}x baseline)",
        one / raw
    );
    emu.stop().await;
}
