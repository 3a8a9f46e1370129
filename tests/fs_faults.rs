//! Failures put between the filesystem and Box by `FaultyBox`, without the kernel: the same
//! rules fail the same calls every time; a failed upload keeps its data for the retry; a
//! download cut short is fetched again (and fails the read once the retries are spent); a
//! download that breaks while a file is staged fails the write and changes nothing; a
//! version Box refuses (412) over the content it was based on is sent again; a change Box
//! made whose answer was lost is on Box, and later writes to a file whose upload answer
//! was lost go to that same file; a file not on Box yet has no attributes.

mod common;

use std::ffi::OsStr;

use boxfs::fs::backend::faults::{Call, Failure, Fault, Injected, Rule};
use boxfs::fs::errno::FsError;
use boxfs::fs::tree::inode::ROOT_INO;
use common::fs::{create_with, ino_of, list, lookup, read_all, write_at, FsHarness};

/// What one run of the replay scenario saw: each step's errno (0 for success), what was
/// injected, and the file's content at the end.
#[derive(Debug, PartialEq)]
struct Run {
    errnos: Vec<i32>,
    injected: Vec<Injected>,
    content: Vec<u8>,
}

fn errno_of(result: Result<(), FsError>) -> i32 {
    result.err().map_or(0, |e| e.errno())
}

async fn replay_scenario() -> Run {
    let h = FsHarness::start().await;
    h.emu.upload_file("0", "r.txt", b"read me").await;
    h.faults.arm(vec![
        Rule::fail(Call::UploadFile, 1, Failure::unavailable()),
        Rule::fail(Call::UploadNewVersion, 2, Failure::Network),
        Rule::cut_download(Call::SourceDownload, 1, 3),
        Rule::fail_after(Call::CreateFolder, 2, Failure::server_error()),
    ]);
    let fs = &h.fs;
    let mkdir =
        |name: &'static str| async move { fs.mkdir(ROOT_INO, OsStr::new(name)).await.map(|_| ()) };
    let mut errnos = vec![
        errno_of(mkdir("d").await),
        errno_of(create_with(fs, "d/f", b"hello world").await),
        errno_of(create_with(fs, "d/g", b"second").await),
        errno_of(write_at(fs, "d/g", 0, b"S").await),
        errno_of(write_at(fs, "d/g", 6, b"!").await),
        errno_of(mkdir("e").await),
        errno_of(read_all(fs, "r.txt").await.map(|_| ())),
    ];
    errnos.push(fs.finish_uploads().await as i32);
    let content = read_all(fs, "d/g").await.expect("read");
    Run {
        errnos,
        injected: h.faults.disarm(),
        content,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rules_fail_the_same_calls_every_time() {
    let first = replay_scenario().await;
    assert_eq!(
        first.errnos,
        // mkdir d; create d/f (its upload refused); d/g; S at 0; ! at 6 (no answer); mkdir e
        // (made, answer lost); r.txt read (its body broken after the client's retries); no
        // upload left after the retries at the end.
        vec![0, libc::EIO, 0, 0, libc::EIO, libc::EIO, libc::EIO, 0]
    );
    assert_eq!(first.content, b"Second!");
    assert_eq!(first.injected.len(), 4, "{:?}", first.injected);
    let second = replay_scenario().await;
    assert_eq!(first, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_keeps_its_data_until_the_retry_delivers_it() {
    let h = FsHarness::start().await;
    h.faults.arm(vec![Rule::fail(
        Call::UploadFile,
        1,
        Failure::rate_limited(),
    )]);
    let err = create_with(&h.fs, "notes.txt", b"kept").await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    // Still here, with its data, but not on Box.
    assert_eq!(read_all(&h.fs, "notes.txt").await.unwrap(), b"kept");
    assert_eq!(h.fs.pending_uploads(), 1);
    let (other, _staging) = h.another_mount().await;
    assert!(list(&other, "").await.unwrap().is_empty());

    assert_eq!(h.fs.finish_uploads().await, 0);
    assert_eq!(h.faults.calls(Call::UploadFile), 2);
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "notes.txt").await.unwrap(), b"kept");
    assert_eq!(h.fs.pending_uploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_broken_for_good_fails_the_read_and_leaves_nothing_behind() {
    let h = FsHarness::start().await;
    h.emu.upload_file("0", "data.bin", b"0123456789").await;

    // The client retries and resumes broken bodies itself; one that still breaks is final
    // for the read: EIO, without a second GET above the client.
    h.faults
        .arm(vec![Rule::cut_download(Call::SourceDownload, 1, 4)]);
    let err = read_all(&h.fs, "data.bin").await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    assert_eq!(h.faults.calls(Call::SourceDownload), 1);
    assert_eq!(
        h.faults.injected().last().map(|i| (i.nth, i.fault.clone())),
        Some((1, Fault::CutAfter(4)))
    );

    // Nothing of the broken body was kept: the next read fetches all of it again.
    assert_eq!(read_all(&h.fs, "data.bin").await.unwrap(), b"0123456789");
    assert_eq!(h.faults.calls(Call::SourceDownload), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_broken_while_staging_fails_the_write_and_changes_nothing() {
    let h = FsHarness::start().await;
    h.emu.upload_file("0", "doc.txt", b"original text").await;

    h.faults
        .arm(vec![Rule::cut_download(Call::DownloadWith, 1, 5)]);
    let err = write_at(&h.fs, "doc.txt", 2, b"XX").await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    h.faults.disarm();
    assert_eq!(h.fs.pending_uploads(), 0);
    assert_eq!(lookup(&h.fs, "doc.txt").await.unwrap().size, 13);
    assert_eq!(read_all(&h.fs, "doc.txt").await.unwrap(), b"original text");

    // The next write stages it whole.
    write_at(&h.fs, "doc.txt", 2, b"XX").await.unwrap();
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "doc.txt").await.unwrap(), b"orXXinal text");
}

/// Box's etag changes with any change of the item (a rename elsewhere, a lock): a refused
/// `If-Match` whose file still has the content the data was based on is no conflict, and the
/// data goes up again over the etag Box has now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_if_match_over_unchanged_content_is_sent_again() {
    let h = FsHarness::start().await;
    h.emu.upload_file("0", "doc.txt", b"theirs").await;

    h.faults.arm(vec![Rule::fail(
        Call::UploadNewVersion,
        1,
        Failure::precondition_failed(),
    )]);
    write_at(&h.fs, "doc.txt", 0, b"OURS!!").await.unwrap();
    assert_eq!(h.faults.calls(Call::UploadNewVersion), 2);
    h.faults.disarm();

    let (other, _staging) = h.another_mount().await;
    let names: Vec<String> = list(&other, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["doc.txt"]);
    assert_eq!(read_all(&other, "doc.txt").await.unwrap(), b"OURS!!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_answer_was_lost_is_on_box() {
    let h = FsHarness::start().await;
    h.faults.arm(vec![Rule::fail_after(
        Call::CreateFolder,
        1,
        Failure::Network,
    )]);
    let err = h.fs.mkdir(ROOT_INO, OsStr::new("made")).await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    let (other, _staging) = h.another_mount().await;
    assert!(lookup(&other, "made").await.is_ok());
}

/// A file created here whose upload failed is not on Box: it has no attributes (not an
/// error about its local id), and setting one sends the file to Box first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_not_on_box_yet_has_no_attributes_until_one_is_set() {
    let h = FsHarness::start().await;
    h.faults
        .arm(vec![Rule::fail(Call::UploadFile, 1, Failure::Network)]);
    create_with(&h.fs, "new.txt", b"data").await.unwrap_err();
    h.faults.disarm();
    let ino = ino_of(&h.fs, "new.txt").await.unwrap();
    let field = OsStr::new("user.box.metadata.global.properties.k");
    let err = h.fs.getxattr(ino, field).await.unwrap_err();
    assert_eq!(err.errno(), libc::ENODATA, "{err}");
    assert_eq!(h.fs.listxattr(ino).await.unwrap(), b"");
    let err = h.fs.removexattr(ino, field).await.unwrap_err();
    assert_eq!(err.errno(), libc::ENODATA, "{err}");

    h.fs.setxattr(ino, field, b"\"v\"", 0).await.unwrap();
    assert_eq!(h.fs.pending_uploads(), 0);
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "new.txt").await.unwrap(), b"data");
    let on_box = ino_of(&other, "new.txt").await.unwrap();
    assert_eq!(other.getxattr(on_box, field).await.unwrap(), b"\"v\"");
}

/// Names in the mount's root as another mount sees them on Box.
async fn names_on_box(h: &FsHarness) -> Vec<String> {
    let (other, _staging) = h.another_mount().await;
    list(&other, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// An upload Box carried out but whose answer was lost, then more writes before the retry:
/// the file on Box is our own earlier upload, so the data becomes its next version (not a
/// conflict copy beside it), for a new file and for a new version alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_writes_after_a_lost_answer_go_to_the_same_file() {
    let h = FsHarness::start().await;
    h.faults.arm(vec![Rule::fail_after(
        Call::UploadFile,
        1,
        Failure::Network,
    )]);
    assert!(create_with(&h.fs, "new", b"first").await.is_err());
    h.faults.disarm();
    write_at(&h.fs, "new", 5, b" and more").await.unwrap();

    create_with(&h.fs, "old", b"one").await.unwrap();
    h.faults.arm(vec![Rule::fail_after(
        Call::UploadNewVersion,
        1,
        Failure::server_error(),
    )]);
    assert!(write_at(&h.fs, "old", 3, b" two").await.is_err());
    h.faults.disarm();
    write_at(&h.fs, "old", 7, b" three").await.unwrap();

    assert_eq!(names_on_box(&h).await, ["new", "old"]);
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "new").await.unwrap(), b"first and more");
    assert_eq!(read_all(&other, "old").await.unwrap(), b"one two three");
    assert_eq!(h.fs.pending_uploads(), 0);
}

/// A refused `If-Match` whose file cannot be looked at (Box fails that request too) is not
/// taken for a conflict: the upload fails, the data stays staged, and the retry decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_if_match_that_cannot_be_checked_is_retried_not_a_conflict() {
    let h = FsHarness::start().await;
    h.emu.upload_file("0", "doc.txt", b"theirs").await;
    let ino = ino_of(&h.fs, "doc.txt").await.unwrap();
    let opened = h.fs.open_for_write(ino, libc::O_RDWR).await.unwrap();
    h.faults.arm(vec![
        Rule::fail(Call::UploadNewVersion, 1, Failure::precondition_failed()),
        Rule::fail(Call::FileWithFields, 1, Failure::rate_limited()),
    ]);
    h.fs.write(opened.fh, 0, b"OURS!!".to_vec()).await.unwrap();
    let err = h.fs.flush(opened.fh).await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    h.faults.disarm();
    h.fs.release_file(opened.fh).await;
    assert_eq!(h.fs.finish_uploads().await, 0);
    assert_eq!(names_on_box(&h).await, ["doc.txt"]);
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "doc.txt").await.unwrap(), b"OURS!!");
}

/// A file created here whose upload failed holds its name although Box has never heard of
/// it: mkdir of that name is EEXIST, and no folder appears on Box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_of_a_file_not_on_box_yet_is_taken() {
    let h = FsHarness::start().await;
    h.faults.arm(vec![Rule::fail(
        Call::UploadFile,
        1,
        Failure::unavailable(),
    )]);
    create_with(&h.fs, "a", b"data").await.unwrap_err();
    h.faults.disarm();
    let err = h.fs.mkdir(ROOT_INO, OsStr::new("a")).await.unwrap_err();
    assert_eq!(err.errno(), libc::EEXIST, "{err}");
    assert_eq!(h.faults.calls(Call::CreateFolder), 0);
    assert_eq!(h.fs.finish_uploads().await, 0);
    assert_eq!(names_on_box(&h).await, ["a"]);
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "a").await.unwrap(), b"data");
}
