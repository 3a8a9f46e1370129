//! `.trash` and `.versions` without a kernel, where what the filesystem holds can be looked
//! at: a trash listing takes an item deleted elsewhere out of its folder (no event stream
//! runs here), a restore hands the kernel's references to the table's inode of the same
//! number, `ls .versions` asks Box nothing per file and a file's versions are listed once
//! while it stays as it is, and nothing is written into the history.

mod common;

use std::ffi::OsStr;
use std::sync::Arc;

use boxfs::fs::backend::faults::Call;
use boxfs::fs::tree::inode::{derived_ino, Kind, ROOT_INO, TRASH_INO};
use common::fs::{create_with, list, list_all, lookup, read_all, write_at, FsHarness};

/// The errno a call failed with (a test failure if it succeeded).
fn errno<T>(r: Result<T, boxfs::fs::errno::FsError>) -> i32 {
    match r {
        Ok(_) => panic!("succeeded"),
        Err(e) => e.errno(),
    }
}

fn names(entries: &[(String, boxfs::fs::tree::attr::FsAttr)]) -> Vec<&str> {
    entries.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn a_trash_listing_takes_an_item_deleted_elsewhere_out_of_its_folder() {
    let h = FsHarness::start().await;
    let file = h.emu.upload_file("0", "a.txt", b"gone elsewhere").await;
    let id = file["id"].as_str().expect("id").to_string();
    let before = lookup(&h.fs, "a.txt").await.expect("a.txt listed");
    let (status, _) = h.emu.delete(&format!("/files/{id}")).await;
    assert!(status.is_success());
    // No event tells this filesystem: its listing of the root still shows the file.
    assert!(lookup(&h.fs, "a.txt").await.is_ok());

    let trash = list(&h.fs, ".box-trash").await.expect("ls .trash");
    assert_eq!(names(&trash), ["a.txt"]);
    assert_eq!(trash[0].1.ino, before.ino, "the inode it had");
    assert_eq!(
        lookup(&h.fs, "a.txt").await.unwrap_err().errno(),
        libc::ENOENT,
        "Box's trash is newer word than the listing"
    );
    let root = list_all(&h.fs, "").await.expect("ls");
    assert!(!names(&root).contains(&"a.txt"));
    assert!(
        names(&root).contains(&".trash"),
        "the link to the trash is listed"
    );
    assert!(!names(&root).contains(&".box-trash"), "the folder is not");
    let link = root.iter().find(|(n, _)| n == ".trash").expect(".trash");
    assert!(link.1.symlink);
    assert_eq!(
        &h.fs.readlink(link.1.ino).await.expect("readlink")[..],
        b".box-trash"
    );
    // The link stays: removing or renaming it, or the folder, is refused.
    assert_eq!(
        errno(h.fs.unlink(ROOT_INO, OsStr::new(".trash")).await),
        libc::EPERM
    );
    assert_eq!(
        errno(h.fs.rmdir(ROOT_INO, OsStr::new(".box-trash")).await),
        libc::EPERM
    );
    assert_eq!(
        errno(
            h.fs.rename(ROOT_INO, OsStr::new(".trash"), ROOT_INO, OsStr::new("t"), 0)
                .await
        ),
        libc::EPERM
    );
    let attr = h.fs.getattr(before.ino).await.expect("getattr");
    assert_eq!(attr.size, 14);
}

#[tokio::test]
async fn where_a_trashed_item_was_costs_a_request_only_when_read() {
    let h = FsHarness::start().await;
    let docs = h.emu.mkdir("0", "docs").await;
    h.emu.upload_file(&docs, "b.txt", b"b").await;
    h.fs.unlink(
        lookup(&h.fs, "docs").await.expect("docs").ino,
        OsStr::new("b.txt"),
    )
    .await
    .expect("rm docs/b.txt");
    let ino = lookup(&h.fs, ".box-trash/b.txt")
        .await
        .expect("in the trash")
        .ino;
    h.faults.arm(Vec::new());
    let listed = h.fs.listxattr(ino).await.expect("listxattr");
    let listed: Vec<&[u8]> = listed
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    assert!(
        listed.contains(&&b"user.box.original_path"[..]),
        "{listed:?}"
    );
    assert!(listed.contains(&&b"user.box.id"[..]));
    assert_eq!(h.faults.calls(Call::FolderWithFields), 0, "names only");
    let path =
        h.fs.getxattr(ino, OsStr::new("user.box.original_path"))
            .await
            .expect("getxattr");
    assert_eq!(path, b"/docs/b.txt");
    assert_eq!(h.faults.calls(Call::FolderWithFields), 1);
    assert_eq!(
        h.fs.getxattr(ino, OsStr::new("user.box.lock"))
            .await
            .unwrap_err()
            .errno(),
        libc::ENODATA
    );
}

#[tokio::test]
async fn a_restore_hands_the_kernels_references_to_the_table() {
    let h = FsHarness::start().await;
    h.emu.upload_file("0", "b.txt", b"bee").await;
    let ino = lookup(&h.fs, "b.txt").await.expect("b.txt").ino;
    // The kernel forgets it.
    h.fs.forget(ino, 1);
    h.fs.unlink(ROOT_INO, OsStr::new("b.txt"))
        .await
        .expect("rm");
    assert!(
        h.fs.table().lock().unwrap().get(ino).is_none(),
        "unreferenced: dropped from the table"
    );
    // Two lookups in .trash: two kernel references the table does not hold.
    let trashed = lookup(&h.fs, ".box-trash/b.txt")
        .await
        .expect("in the trash");
    lookup(&h.fs, ".box-trash/b.txt").await.expect("again");
    assert_eq!(trashed.ino, ino);
    h.fs.rename(
        TRASH_INO,
        OsStr::new("b.txt"),
        ROOT_INO,
        OsStr::new("c.txt"),
        0,
    )
    .await
    .expect("restore");
    {
        let table = h.fs.table().lock().unwrap();
        let inode = table.get(ino).expect("the same inode, back in the tree");
        assert_eq!(inode.name(), "c.txt");
        assert_eq!(inode.parent(), Some(ROOT_INO));
        assert_eq!(inode.lookups(), 2);
        assert_eq!(derived_ino(inode.box_id(), Kind::File), Some(ino));
    }
    assert_eq!(read_all(&h.fs, "c.txt").await.expect("cat"), b"bee");
    assert!(list(&h.fs, ".box-trash").await.expect("ls").is_empty());
}

#[tokio::test]
async fn versions_cost_one_listing_per_file_looked_at() {
    let h = FsHarness::start().await;
    create_with(&h.fs, "x.txt", b"first").await.expect("create");
    write_at(&h.fs, "x.txt", 0, b"FIRST, longer")
        .await
        .expect("write");
    for n in 0..5 {
        create_with(&h.fs, &format!("f{n}.txt"), b"f")
            .await
            .expect("create");
    }
    h.fs.mkdir(ROOT_INO, OsStr::new("sub"))
        .await
        .expect("mkdir");
    h.faults.arm(Vec::new());

    let files = list(&h.fs, ".versions").await.expect("ls .versions");
    assert_eq!(
        names(&files),
        ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "x.txt"]
    );
    assert!(files.iter().all(|(_, a)| a.kind == Kind::Dir));
    assert_eq!(h.faults.calls(Call::FileVersions), 0);

    let versions = list(&h.fs, ".versions/x.txt").await.expect("ls");
    assert_eq!(versions.len(), 1);
    let (name, attr) = &versions[0];
    assert!(name.starts_with("v1 ") && name.ends_with(".txt"), "{name}");
    assert_eq!(attr.size, 5);
    assert_eq!(attr.perm, 0o444);
    list(&h.fs, ".versions/x.txt").await.expect("ls again");
    assert_eq!(h.faults.calls(Call::FileVersions), 1, "kept while x.txt is");
    let path = format!(".versions/x.txt/{name}");
    assert_eq!(read_all(&h.fs, &path).await.expect("cat"), b"first");

    // A new version of the file: listed again, with one more.
    write_at(&h.fs, "x.txt", 0, b"third").await.expect("write");
    assert_eq!(list(&h.fs, ".versions/x.txt").await.expect("ls").len(), 2);
    assert_eq!(h.faults.calls(Call::FileVersions), 2);
    assert_eq!(
        lookup(&h.fs, ".versions/sub").await.unwrap_err().errno(),
        libc::ENOENT,
        "folders have no versions"
    );
}

#[tokio::test]
async fn nothing_is_written_into_the_history() {
    let h = FsHarness::start().await;
    let (status, link) = h
        .emu
        .post_json(
            "/web_links",
            serde_json::json!({"parent": {"id": "0"}, "name": "site", "url": "https://a.example/"}),
        )
        .await;
    assert!(status.is_success(), "{link}");
    create_with(&h.fs, "x.txt", b"one").await.expect("create");
    write_at(&h.fs, "x.txt", 0, b"two").await.expect("write");
    let versions = list(&h.fs, ".versions/x.txt").await.expect("ls");
    let version = lookup(&h.fs, &format!(".versions/x.txt/{}", versions[0].0))
        .await
        .expect("lookup");
    let dir = lookup(&h.fs, ".versions/x.txt").await.expect("lookup");
    let fs = Arc::clone(&h.fs);
    assert_eq!(
        errno(fs.open_for_write(version.ino, libc::O_RDWR).await),
        libc::EACCES
    );
    assert_eq!(
        errno(
            fs.create(dir.ino, OsStr::new("new.txt"), libc::O_CREAT)
                .await
        ),
        libc::EACCES
    );
    assert_eq!(
        errno(fs.mkdir(TRASH_INO, OsStr::new("d")).await),
        libc::EACCES
    );
    assert_eq!(
        errno(fs.unlink(dir.ino, OsStr::new(&versions[0].0)).await),
        libc::EACCES
    );
    assert_eq!(
        errno(
            fs.setxattr(version.ino, OsStr::new("user.box.lock"), b"lock", 0)
                .await
        ),
        libc::EACCES
    );
    // Renaming into the history is refused, and a version's content is as it was.
    assert_eq!(
        errno(
            fs.rename(
                ROOT_INO,
                OsStr::new("x.txt"),
                TRASH_INO,
                OsStr::new("x.txt"),
                0
            )
            .await
        ),
        libc::EACCES
    );
    let path = format!(".versions/x.txt/{}", versions[0].0);
    assert_eq!(read_all(&h.fs, &path).await.expect("cat"), b"one");

    // Purges go by kind: rm for files and web links, rmdir for folders.
    lookup(&h.fs, "site.url")
        .await
        .expect("the link's shortcut");
    fs.unlink(ROOT_INO, OsStr::new("site.url"))
        .await
        .expect("rm");
    fs.unlink(ROOT_INO, OsStr::new("x.txt")).await.expect("rm");
    assert_eq!(
        errno(fs.rmdir(TRASH_INO, OsStr::new("site.url")).await),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(fs.rmdir(TRASH_INO, OsStr::new("x.txt")).await),
        libc::ENOTDIR
    );
    fs.unlink(TRASH_INO, OsStr::new("site.url"))
        .await
        .expect("rm purges the link");
    assert_eq!(
        names(&list(&fs, ".box-trash").await.expect("ls")),
        ["x.txt"]
    );
}
