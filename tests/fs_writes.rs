//! Writes and renames through `BoxFs` without the kernel, in the order programs make them,
//! against the emulator: cases the model test (`fs_model`) found, kept as plain regressions.

mod common;

use std::ffi::OsStr;

use box_client::upload::UploadOptions;
use boxfs::fs::tree::inode::ROOT_INO;
use common::fs::{client_of, create_with, ino_of, list, read_all, write_at, FsHarness};

/// Names in the mount's root, as another mount sees them on Box.
async fn names_on_box(h: &FsHarness) -> Vec<String> {
    let (other, _staging) = h.another_mount().await;
    list(&other, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// A rename changes the file's etag on Box, but not its content: the next write is a new
/// version of the same file, not a conflict with the rename.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_after_a_rename_gets_a_new_version_not_a_conflict_copy() {
    let h = FsHarness::start().await;
    create_with(&h.fs, "b", b"bccebc").await.unwrap();
    h.fs.rename(ROOT_INO, OsStr::new("b"), ROOT_INO, OsStr::new("c"), 0)
        .await
        .unwrap();
    write_at(&h.fs, "c", 4, b"DADED").await.unwrap();
    assert_eq!(read_all(&h.fs, "c").await.unwrap(), b"bcceDADED");
    assert_eq!(names_on_box(&h).await, ["c"]);
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "c").await.unwrap(), b"bcceDADED");
}

/// Another client uploads a version while the file is open for writing here: the data
/// written here is kept beside it as a conflict copy, and Box's version stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_uploaded_elsewhere_meanwhile_leaves_ours_as_a_conflict_copy() {
    let h = FsHarness::start().await;
    let id = h.emu.upload_file("0", "doc.txt", b"first").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ino = ino_of(&h.fs, "doc.txt").await.unwrap();
    let opened = h.fs.open_for_write(ino, libc::O_RDWR).await.unwrap();
    h.fs.write(opened.fh, 0, b"OURS".to_vec()).await.unwrap();
    client_of(&h.emu)
        .upload_new_version(&id, b"theirs".to_vec(), &UploadOptions::default())
        .await
        .unwrap();
    // Nothing is lost, so the close succeeds: our data is on Box under another name.
    h.fs.flush(opened.fh).await.unwrap();
    h.fs.release_file(opened.fh).await;

    let names = names_on_box(&h).await;
    assert_eq!(names.len(), 2, "{names:?}");
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "doc.txt").await.unwrap(), b"theirs");
    let copy = names
        .iter()
        .find(|n| n.starts_with("doc (conflict "))
        .expect("a conflict copy");
    assert!(copy.ends_with(").txt"), "{copy}");
    assert_eq!(read_all(&other, copy).await.unwrap(), b"OURSt");
}

/// An editor's save: a file created here, changed a few times (its `sequence_id` grows),
/// renamed over an older file, becomes a new version of it; this mount then shows that
/// version, not one of the temporary file it was written as.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_renamed_over_an_older_one_shows_the_version_it_became() {
    let h = FsHarness::start().await;
    create_with(&h.fs, "doc", b"old").await.unwrap();
    create_with(&h.fs, "tmp", b"").await.unwrap();
    write_at(&h.fs, "tmp", 2, b"A").await.unwrap();
    write_at(&h.fs, "tmp", 4, b"CA").await.unwrap();
    h.fs.rename(ROOT_INO, OsStr::new("tmp"), ROOT_INO, OsStr::new("doc"), 0)
        .await
        .unwrap();
    assert_eq!(read_all(&h.fs, "doc").await.unwrap(), b"\0\0A\0CA");
    assert_eq!(names_on_box(&h).await, ["doc"]);
    let (other, _staging) = h.another_mount().await;
    assert_eq!(read_all(&other, "doc").await.unwrap(), b"\0\0A\0CA");
}

/// The same save, with metadata on the older file: the version keeps it, and this mount
/// shows it even though it read the temporary file's (none) just before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_saved_over_another_shows_the_others_metadata() {
    let h = FsHarness::start().await;
    let field = OsStr::new("user.box.metadata.global.properties.k");
    create_with(&h.fs, "doc", b"old").await.unwrap();
    let doc = ino_of(&h.fs, "doc").await.unwrap();
    h.fs.setxattr(doc, field, b"\"kept\"", 0).await.unwrap();
    create_with(&h.fs, "tmp", b"new").await.unwrap();
    let tmp = ino_of(&h.fs, "tmp").await.unwrap();
    assert_eq!(
        h.fs.getxattr(tmp, field).await.unwrap_err().errno(),
        libc::ENODATA
    );
    h.fs.rename(ROOT_INO, OsStr::new("tmp"), ROOT_INO, OsStr::new("doc"), 0)
        .await
        .unwrap();
    let doc = ino_of(&h.fs, "doc").await.unwrap();
    assert_eq!(h.fs.getxattr(doc, field).await.unwrap(), b"\"kept\"");
    assert_eq!(read_all(&h.fs, "doc").await.unwrap(), b"new");
}

/// `mv c b/b` where `b/c` exists: Box moves and renames a folder in two requests, and each
/// order clashes with a name (the old one in the target, the new one where it is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_moved_and_renamed_past_both_names_arrives() {
    let h = FsHarness::start().await;
    let b = h.fs.mkdir(ROOT_INO, OsStr::new("b")).await.unwrap().ino;
    create_with(&h.fs, "b/c", b"file").await.unwrap();
    h.fs.mkdir(ROOT_INO, OsStr::new("c")).await.unwrap();
    h.fs.rename(ROOT_INO, OsStr::new("c"), b, OsStr::new("b"), 0)
        .await
        .unwrap();
    let names: Vec<String> = list(&h.fs, "b")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["b", "c"]);
    let (other, _staging) = h.another_mount().await;
    let on_box: Vec<String> = list(&other, "b")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(on_box, ["b", "c"]);
    assert_eq!(names_on_box(&h).await, ["b"]);
}
