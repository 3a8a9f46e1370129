//! The event follower against the emulator: changes made through the API by another client
//! reach the inode table and the (recorded) kernel within moments; echoes of the mount's own
//! changes tell the kernel nothing; a stream that is lost and comes back turns the health
//! unhealthy, then healthy, and ends with a revalidation; the events Box sends twice are
//! applied once.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use box_client::events::{EventStreamOptions, EventsQuery, StreamType};
use box_client::folders::ListOptions;
use box_client::upload::UploadOptions;
use box_client::{Client, RetryPolicy};
use box_emulator::{EmulatorConfig, Knobs};
use boxfs::fs::sync::events::{
    EventFollower, FollowerOptions, Invalidation, KernelNotify, OwnChanges, StreamHealth,
};
use boxfs::fs::tree::inode::{Ino, InodeTable, ROOT_INO};
use common::TestEmu;
use tokio::task::JoinHandle;

/// The kernel, as far as these tests care: every notification, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<Invalidation>>);

impl KernelNotify for Recorder {
    fn notify(&self, inv: &Invalidation) {
        self.0.lock().unwrap().push(inv.clone());
    }
}

impl Recorder {
    fn all(&self) -> Vec<Invalidation> {
        self.0.lock().unwrap().clone()
    }
    fn contains(&self, inv: &Invalidation) -> bool {
        self.0.lock().unwrap().contains(inv)
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

fn entry(parent: Ino, name: &str) -> Invalidation {
    Invalidation::Entry {
        parent,
        name: name.into(),
    }
}

/// Waits until `cond` holds, for at most two seconds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 2 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A mount's view: the root listed, then `a` listed, a follower from `position`.
struct Mount {
    table: Arc<Mutex<InodeTable>>,
    kernel: Arc<Recorder>,
    health: Arc<StreamHealth>,
    task: JoinHandle<()>,
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mount {
    async fn start(follower_client: Client, lister: &Client, listed: &[&str]) -> Mount {
        Self::start_with(follower_client, lister, listed, None).await
    }

    async fn start_with(
        follower_client: Client,
        lister: &Client,
        listed: &[&str],
        own_changes: Option<Arc<OwnChanges>>,
    ) -> Mount {
        let position = lister
            .latest_stream_position(StreamType::All)
            .await
            .unwrap();
        let mut table = InodeTable::default();
        for folder_id in listed {
            let page = lister
                .folder_items_page(folder_id, &ListOptions::marker().limit(1000))
                .await
                .unwrap();
            let ino = table.by_box_id(folder_id).expect("listed parent first");
            table.replace_listing(ino, &page.entries).unwrap();
        }
        let table = Arc::new(Mutex::new(table));
        let kernel = Arc::new(Recorder::default());
        let health = Arc::new(StreamHealth::new());
        let opts = FollowerOptions {
            stream: EventStreamOptions {
                min_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
                ..EventStreamOptions::default()
            },
            settle: Duration::from_millis(500),
            revalidate_after: Duration::ZERO,
            restart_min_backoff: Duration::from_millis(50),
            own_changes,
            ..FollowerOptions::default()
        };
        let task = EventFollower::with_options(
            Arc::new(follower_client),
            table.clone(),
            None,
            kernel.clone(),
            health.clone(),
            opts,
        )
        .spawn(position);
        let m = Mount {
            table,
            kernel,
            health,
            task,
        };
        let health = m.health.clone();
        eventually("the stream is healthy", || health.is_healthy()).await;
        m
    }

    fn with<R>(&self, f: impl FnOnce(&InodeTable) -> R) -> R {
        f(&self.table.lock().unwrap())
    }

    fn ino(&self, box_id: &str) -> Option<Ino> {
        self.with(|t| t.by_box_id(box_id))
    }

    fn child(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.with(|t| t.lookup_child(parent, name))
    }
}

/// Folder `a` in the root with `f.txt` in it: their ids.
async fn folder_a_with_a_file(t: &TestEmu) -> (String, String) {
    let a_id = t.mkdir("0", "a").await;
    let f_id = t.upload_file(&a_id, "f.txt", b"one").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    (a_id, f_id)
}

#[tokio::test]
async fn changes_made_elsewhere_reach_the_table_and_the_kernel() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let a_id = t.mkdir("0", "a").await;
    let b_id = t.mkdir("0", "b").await;
    let f_json = t.upload_file(&a_id, "f.txt", b"one").await;
    let f_id = f_json["id"].as_str().unwrap().to_string();
    // Known by name only (b is listed in the root, b's own listing never loaded).
    let hidden_id = t.mkdir(&b_id, "hidden").await;
    let m = Mount::start(c.clone(), &c, &["0", &a_id]).await;
    let (a, b, f) = (
        m.ino(&a_id).unwrap(),
        m.ino(&b_id).unwrap(),
        m.ino(&f_id).unwrap(),
    );
    let k = m.kernel.clone();

    // A new version.
    let up = c
        .upload_new_version(&f_id, b"two, longer".to_vec(), &UploadOptions::default())
        .await
        .unwrap();
    let new_version = up.file_version.unwrap().id;
    eventually("the new version is in the table", || {
        m.with(|t| t.get(f).unwrap().attrs().version.as_deref() == Some(new_version.as_str()))
    })
    .await;
    eventually("the file's pages dropped", || {
        k.contains(&Invalidation::Inode(f))
    })
    .await;
    assert_eq!(m.with(|t| t.get(f).unwrap().attrs().size), 11);

    // A rename, then a move.
    c.rename_file(&f_id, "g.txt").await.unwrap();
    eventually("renamed", || m.child(a, "g.txt") == Some(f)).await;
    assert_eq!(m.child(a, "f.txt"), None);
    eventually("both names invalidated", || {
        k.contains(&entry(a, "f.txt")) && k.contains(&entry(a, "g.txt"))
    })
    .await;
    c.move_file(&f_id, &b_id, None).await.unwrap();
    eventually("moved", || m.child(b, "g.txt") == Some(f)).await;
    eventually("old place and new listing invalidated", || {
        k.contains(&entry(b, "g.txt")) && k.contains(&Invalidation::Inode(b))
    })
    .await;

    // A creation and a copy.
    let made = c.create_folder(&a_id, "new").await.unwrap();
    eventually("created", || m.child(a, "new").is_some()).await;
    assert_eq!(m.ino(&made.id), m.child(a, "new"));
    eventually("negative dentry and listing", || {
        k.contains(&entry(a, "new")) && k.contains(&Invalidation::Inode(a))
    })
    .await;
    c.copy_file(&f_id, &a_id, Some("copy.txt")).await.unwrap();
    eventually("copied", || m.child(a, "copy.txt").is_some()).await;

    // To the trash (the kernel still holds it), and back.
    m.table.lock().unwrap().add_lookup(f);
    c.delete_file(&f_id, None).await.unwrap();
    eventually("trashed", || m.child(b, "g.txt").is_none()).await;
    eventually("deletion told", || {
        k.contains(&Invalidation::Delete {
            parent: b,
            child: f,
            name: "g.txt".into(),
        })
    })
    .await;
    c.restore_file(&f_id, None, None).await.unwrap();
    eventually("restored as the same inode", || {
        m.child(b, "g.txt") == Some(f)
    })
    .await;

    // Out of view and back.
    c.move_file(&f_id, &hidden_id, None).await.unwrap();
    eventually("moved out of view", || {
        m.with(|t| t.get(f).unwrap().parent().is_none())
    })
    .await;
    c.move_file(&f_id, &a_id, None).await.unwrap();
    eventually("back in view", || m.child(a, "g.txt") == Some(f)).await;
    assert!(m.health.is_healthy());
    assert_eq!(m.health.counters().errors, 0);
}

#[tokio::test]
async fn echoes_of_the_mounts_own_changes_tell_the_kernel_nothing() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let (a_id, f_id) = folder_a_with_a_file(&t).await;
    let own = OwnChanges::new();
    let m = Mount::start_with(c.clone(), &c, &["0", &a_id], Some(own.clone())).await;
    let a = m.ino(&a_id).unwrap();

    // What the mount does: mark the change in flight, change through the API, record Box's
    // answer in the table, end the change. The echo may arrive before the answer.
    let record = |parent: Ino, item: &box_client::types::Item| {
        m.table
            .lock()
            .unwrap()
            .insert_or_update_from_item(parent, item)
            .unwrap();
    };
    let change = own.item(&f_id);
    let renamed = c.rename_file(&f_id, "mine.txt").await.unwrap();
    record(a, &renamed);
    drop(change);
    let change = own.item(&f_id);
    let uploaded = c
        .upload_new_version(&f_id, b"two".to_vec(), &UploadOptions::default())
        .await
        .unwrap();
    // Let the echo arrive first, as it may.
    tokio::time::sleep(Duration::from_millis(100)).await;
    record(a, &uploaded);
    drop(change);
    let change = own.name(&a_id, "made");
    let made = c.create_folder(&a_id, "made").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    record(a, &made);
    drop(change);
    let change = own.item(&f_id);
    let locked = c
        .lock_file(&f_id, &box_client::files::LockOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    record(a, &locked);
    drop(change);

    // Another client's change after them: once it shows, the echoes were all handled.
    t.mkdir("0", "marker").await;
    eventually("the marker arrived", || {
        m.kernel.contains(&entry(ROOT_INO, "marker"))
    })
    .await;
    assert_eq!(
        m.kernel.all(),
        vec![entry(ROOT_INO, "marker"), Invalidation::Inode(ROOT_INO)],
        "echoes must not invalidate"
    );
    assert_eq!(m.child(a, "mine.txt"), m.ino(&f_id));
    assert_eq!(m.health.counters().events, 5);
}

#[tokio::test]
async fn events_box_sends_twice_are_applied_once() {
    let t = TestEmu::start().await;
    let c = t.client(RetryPolicy::default());
    let (a_id, f_id) = folder_a_with_a_file(&t).await;
    let m = Mount::start(c.clone(), &c, &["0", &a_id]).await;
    let f = m.ino(&f_id).unwrap();
    let position = c.latest_stream_position(StreamType::All).await.unwrap();
    t.emulator().set_knobs(Knobs {
        duplicate_event_rate: 1.0,
        ..Knobs::default()
    });

    // A lock changes only what extended attributes show: a second event at a sequence_id
    // the applier applied itself is not an echo, so a repeat that reached it would tell the
    // kernel twice.
    c.lock_file(&f_id, &box_client::files::LockOptions::default())
        .await
        .unwrap();
    t.mkdir("0", "marker").await;
    eventually("the marker arrived", || {
        m.kernel.contains(&entry(ROOT_INO, "marker"))
    })
    .await;
    // Box (the emulator) sent every event twice ...
    let raw = c.get_events(&EventsQuery::since(position)).await.unwrap();
    let ids: std::collections::HashSet<_> = raw.entries.iter().map(|e| &e.event_id).collect();
    assert_eq!(raw.entries.len(), 2 * ids.len(), "duplicates expected");
    // ... and the follower took each once.
    assert_eq!(m.health.counters().events, ids.len() as u64);
    let told = m.kernel.all();
    let about_f =
        |i: &&Invalidation| matches!(i, Invalidation::Attrs(x) | Invalidation::Inode(x) if *x == f);
    assert_eq!(told.iter().filter(about_f).count(), 1, "{told:?}");
}

#[tokio::test]
async fn a_lost_stream_turns_unhealthy_and_recovers_with_a_revalidation() {
    let t = TestEmu::start_with(EmulatorConfig {
        longpoll_timeout_secs: 1,
        ..EmulatorConfig::default()
    })
    .await;
    let c = t.client(RetryPolicy::default());
    // The follower's requests fail at once, not after retries.
    let feed_client = t.client(RetryPolicy::none());
    let a_id = t.mkdir("0", "a").await;
    let m = Mount::start(feed_client, &c, &["0"]).await;
    let a = m.ino(&a_id).unwrap();
    m.table.lock().unwrap().add_lookup(a);

    // The realtime server stops answering (the held long-poll ends within a second);
    // `GET /events` still works, which must not make the health flap.
    t.emulator().set_knobs(Knobs {
        fault_rate: 1.0,
        fault_path_prefix: "/subscribe".into(),
        ..Knobs::default()
    });
    let health = m.health.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while health.is_healthy() {
        assert!(tokio::time::Instant::now() < deadline, "never unhealthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(health.counters().errors > 0);
    assert_eq!(health.counters().outages, 1);
    // Meanwhile, a change elsewhere.
    c.rename_folder(&a_id, "renamed while down").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!health.is_healthy());
    assert_eq!(health.counters().outages, 1, "no flapping");
    m.kernel.clear();

    t.emulator().set_knobs(Knobs::default());
    eventually("healthy again", || health.is_healthy()).await;
    eventually("revalidated", || health.counters().revalidations == 1).await;
    // Every listing and attribute is stale; the kernel dropped what it held.
    m.with(|t| {
        for (_, inode) in t.iter() {
            assert!(!inode.listing_complete());
        }
    });
    let k = m.kernel.clone();
    eventually("kernel told", || {
        k.contains(&Invalidation::Inode(ROOT_INO)) && k.contains(&Invalidation::Inode(a))
    })
    .await;
    // The feed resumed from its position: the change made while down arrives too.
    eventually("the missed rename applied", || {
        m.child(ROOT_INO, "renamed while down") == Some(a)
    })
    .await;
}
