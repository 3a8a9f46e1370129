//! Which of the filesystem's calls to Box have background priority at the client's pacer:
//! listing folders ahead of a walk and write-back uploads do; the calls an operation waits
//! on (a listing asked for, a close that uploads) do not. And while the pacing budget is
//! tight, folders nobody opened are not listed ahead at all. The calls are told apart by
//! the fault wrapper, which counts each kind and how many of them were background work.

mod common;

use std::sync::Arc;
use std::time::Duration;

use box_client::{Client, DeveloperToken, Endpoints, PacerConfig, Rate};
use boxfs::fs::backend::faults::{Call, FaultyBox};
use boxfs::fs::kernel::KernelQueue;
use boxfs::fs::{BoxFs, FsOptions};
use common::fs::{client_of, create_with, deterministic_options, list};
use common::mount::eventually;
use common::TestEmu;

/// A filesystem over `faults` that lists subfolders ahead and, with `write_back`, uploads
/// from its queue.
async fn filesystem(
    faults: &FaultyBox,
    write_back: Option<Duration>,
) -> (Arc<BoxFs>, tempfile::TempDir) {
    let staging = tempfile::tempdir().expect("staging dir");
    let fs = Arc::new(BoxFs::new(
        Arc::new(faults.clone()),
        FsOptions {
            prefetch_per_folder: 8,
            write_back,
            ..deterministic_options("0", staging.path())
        },
        None,
        KernelQueue::discard(),
    ));
    fs.init().await.expect("init");
    fs.spawn_uploader();
    (fs, staging)
}

/// A folder `a` with two subfolders.
async fn folder_with_subfolders(emu: &TestEmu) {
    let a = emu.mkdir("0", "a").await;
    emu.mkdir(&a, "x").await;
    emu.mkdir(&a, "y").await;
}

/// Waits (off the runtime's worker) until `check` holds, for at most 10 s.
async fn until(check: impl Fn() -> bool + Send + 'static) -> bool {
    tokio::task::spawn_blocking(move || eventually(Duration::from_secs(10), check).is_some())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_ahead_and_write_back_are_background_work_and_a_close_is_not() {
    let emu = Arc::new(TestEmu::start().await);
    folder_with_subfolders(&emu).await;

    let faults = FaultyBox::new(Arc::new(client_of(&emu)));
    let (fs, _staging) = filesystem(&faults, Some(Duration::from_millis(100))).await;
    list(&fs, "a").await.expect("list a");
    // The listing asked for waited on Box; its two subfolders were listed ahead.
    let ahead = faults.clone();
    assert!(
        until(move || ahead.background_calls(Call::FolderItemsPage) >= 2).await,
        "the subfolders were not listed ahead in the background"
    );
    let foreground =
        faults.calls(Call::FolderItemsPage) - faults.background_calls(Call::FolderItemsPage);
    assert!(foreground >= 2, "root and a were listed for the caller");

    // With write-back, the close returns at once and the queue uploads in the background.
    create_with(&fs, "later.txt", b"written back")
        .await
        .expect("close");
    let queued = faults.clone();
    assert!(
        until(move || queued.calls(Call::UploadFile) == 1).await,
        "the queued upload never went"
    );
    assert_eq!(faults.background_calls(Call::UploadFile), 1);

    // Without it, the close waits for the upload: foreground.
    let waited = FaultyBox::new(Arc::new(client_of(&emu)));
    let (fs, _staging) = filesystem(&waited, None).await;
    create_with(&fs, "now.txt", b"uploaded at close")
        .await
        .expect("close");
    assert_eq!(waited.calls(Call::UploadFile), 1);
    assert_eq!(waited.background_calls(Call::UploadFile), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_budget_stops_listing_folders_nobody_opened() {
    let emu = Arc::new(TestEmu::start().await);
    folder_with_subfolders(&emu).await;
    // One call a second, a burst of 20: after 15 calls less than half the burst is left.
    let client = Client::builder(
        Arc::new(DeveloperToken::new(emu.token.clone())),
        Endpoints::from_base(&emu.base).expect("endpoints"),
    )
    .pacing(PacerConfig {
        api_rate: Rate::per_minute(60.0),
        ..PacerConfig::default()
    })
    .build()
    .expect("client");
    for _ in 0..15 {
        client.me().await.expect("me");
    }
    assert!(client.pacing_is_tight());

    let faults = FaultyBox::new(Arc::new(client));
    let (fs, _staging) = filesystem(&faults, None).await;
    list(&fs, "a").await.expect("list a");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(faults.background_calls(Call::FolderItemsPage), 0);
    let stats = fs.client().pacer_stats().expect("a paced client");
    assert!(stats.api.calls_last_minute >= 17, "{stats:?}");
    assert_eq!(stats.api.limit_per_minute, Some(60.0));
}
