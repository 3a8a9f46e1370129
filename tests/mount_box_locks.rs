//! Real mounts with `--box-locks`: two mounts of one account (two machines, as Box sees
//! them) exclude each other through Box locks. An exclusive `flock` or `fcntl` write lock on
//! one mount shows on Box as the file's lock, the other mount's non-blocking request fails
//! with EWOULDBLOCK, a blocking one waits until the lock is released, and unlocking or closing
//! removes the Box lock. Without the flag, locks stay in the kernel and nothing reaches Box.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use box_emulator::EmulatorConfig;
use common::mount::{count_requests, TestMount};
use common::TestEmu;
use reqwest::Method;
use serde_json::Value;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

fn upload(emu: &TestEmu, parent: &str, name: &str, content: &[u8]) -> String {
    let rt = tokio::runtime::Handle::current();
    let file = rt.block_on(emu.upload_file(parent, name, content));
    file["id"].as_str().expect("file id").to_string()
}

/// The file's `lock` as Box answers it (`null` when unlocked).
fn box_lock(emu: &TestEmu, file_id: &str) -> Value {
    let rt = tokio::runtime::Handle::current();
    let rb = emu.req(
        Method::GET,
        &emu.api(&format!("/files/{file_id}?fields=lock")),
    );
    let (status, body) = rt.block_on(TestEmu::send(rb));
    assert!(status.is_success(), "GET lock: {status} {body}");
    body.get("lock").cloned().unwrap_or(Value::Null)
}

fn flock(f: &File, op: i32) -> Result<(), i32> {
    // SAFETY: a valid descriptor and a plain flock(2) operation.
    match unsafe { libc::flock(f.as_raw_fd(), op) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

fn fcntl_lock(f: &File, typ: i32, cmd: i32) -> Result<(), i32> {
    // SAFETY: a zeroed `struct flock` is valid; the fields set describe the whole file.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = typ as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    // SAFETY: valid descriptor, valid pointer to a `struct flock` for the call's duration.
    match unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl) } {
        -1 => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        _ => Ok(()),
    }
}

fn open_rw(m: &TestMount, name: &str) -> File {
    File::options()
        .read(true)
        .write(true)
        .open(m.path(name))
        .expect("open in the mount")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flock_takes_a_box_lock_seen_by_another_mount() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let file_id = upload(&e, "0", "shared.txt", b"edited on two machines");
        let a = TestMount::start(&e, &["--box-locks"]);
        let b = TestMount::start(&e, &["--box-locks"]);
        let fa = open_rw(&a, "shared.txt");
        let fb = open_rw(&b, "shared.txt");
        assert!(box_lock(&e, &file_id).is_null());

        flock(&fa, libc::LOCK_EX | libc::LOCK_NB).expect("A takes the lock");
        let lock = box_lock(&e, &file_id);
        assert_eq!(lock["type"], "lock", "Box shows the lock: {lock}");
        // Taking it again through the same descriptor succeeds.
        flock(&fa, libc::LOCK_EX | libc::LOCK_NB).expect("A takes it again");

        // Same user, other mount: Box would let it lock again, we must not.
        assert_eq!(
            flock(&fb, libc::LOCK_EX | libc::LOCK_NB),
            Err(libc::EWOULDBLOCK)
        );
        assert_eq!(
            flock(&fb, libc::LOCK_SH | libc::LOCK_NB),
            Err(libc::EWOULDBLOCK),
            "a shared lock is refused too"
        );
        // B's failed attempt released nothing.
        assert_eq!(box_lock(&e, &file_id)["type"], "lock");

        flock(&fa, libc::LOCK_UN).expect("A unlocks");
        assert!(box_lock(&e, &file_id).is_null(), "the Box lock is gone");
        flock(&fb, libc::LOCK_EX | libc::LOCK_NB).expect("B takes it now");
        assert_eq!(box_lock(&e, &file_id)["type"], "lock");
        assert_eq!(
            flock(&fa, libc::LOCK_EX | libc::LOCK_NB),
            Err(libc::EWOULDBLOCK)
        );

        // A blocking request on A waits until B lets go (by closing its descriptor).
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            flock(&fa, libc::LOCK_EX).expect("A waits and takes it");
            (fa, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(800));
        assert!(!waiter.is_finished(), "A's blocking flock waits");
        drop(fb);
        let (fa, waited) = waiter.join().expect("waiter");
        assert!(waited >= Duration::from_millis(700), "{waited:?}");
        assert_eq!(box_lock(&e, &file_id)["type"], "lock", "now A's");

        // Closing the last descriptor releases the lock.
        drop(fa);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !box_lock(&e, &file_id).is_null() {
            assert!(Instant::now() < deadline, "the close released the Box lock");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcntl_write_locks_take_box_locks() {
    let emu = Arc::new(TestEmu::start().await);
    let e = emu.clone();
    blocking(move || {
        let file_id = upload(&e, "0", "posix.txt", b"record locks");
        let a = TestMount::start(&e, &["--box-locks"]);
        let b = TestMount::start(&e, &["--box-locks"]);
        let fa = open_rw(&a, "posix.txt");
        let fb = open_rw(&b, "posix.txt");

        fcntl_lock(&fa, libc::F_WRLCK, libc::F_SETLK).expect("A takes a write lock");
        assert_eq!(box_lock(&e, &file_id)["type"], "lock");
        let refused = fcntl_lock(&fb, libc::F_WRLCK, libc::F_SETLK).unwrap_err();
        assert!(
            refused == libc::EAGAIN || refused == libc::EACCES,
            "errno {refused}"
        );

        fcntl_lock(&fa, libc::F_UNLCK, libc::F_SETLK).expect("A unlocks");
        assert!(box_lock(&e, &file_id).is_null());
        fcntl_lock(&fb, libc::F_WRLCK, libc::F_SETLK).expect("B takes it");
        assert_eq!(box_lock(&e, &file_id)["type"], "lock");

        // POSIX: closing any descriptor of the owner drops its locks.
        drop(fb);
        assert!(box_lock(&e, &file_id).is_null(), "B's close released it");
        fcntl_lock(&fa, libc::F_WRLCK, libc::F_SETLKW).expect("A takes it, blocking");
        assert_eq!(box_lock(&e, &file_id)["type"], "lock");
        drop(fa);
        assert!(box_lock(&e, &file_id).is_null());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_locks_stay_in_the_kernel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("requests.jsonl");
    let emu = Arc::new(
        TestEmu::start_with(EmulatorConfig {
            request_log: Some(log.clone()),
            ..EmulatorConfig::default()
        })
        .await,
    );
    let e = emu.clone();
    blocking(move || {
        let file_id = upload(&e, "0", "local.txt", b"local locks");
        let a = TestMount::start(&e, &[]);
        let b = TestMount::start(&e, &[]);
        let fa = open_rw(&a, "local.txt");
        let fb = open_rw(&b, "local.txt");
        flock(&fa, libc::LOCK_EX | libc::LOCK_NB).expect("A locks");
        // The kernel locks the inode of each mount apart: B knows nothing of A's lock.
        flock(&fb, libc::LOCK_EX | libc::LOCK_NB).expect("B locks too");
        fcntl_lock(&fa, libc::F_WRLCK, libc::F_SETLK).expect("A's record lock");
        assert!(box_lock(&e, &file_id).is_null());
        drop((fa, fb));
        let puts = count_requests(&log, "PUT", |p| p.ends_with(&format!("/files/{file_id}")));
        assert_eq!(puts, 0, "no lock request reached Box");
    })
    .await;
}
