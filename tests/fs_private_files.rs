//! What the daemon keeps on disk is its user's alone whatever the umask: the content cache
//! (directories 0700, chunks and their `meta` 0600) and the staging area (directory 0700,
//! data and journals 0600). One test in its own binary, because the umask is per process.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use boxfs::fs::read::content_cache::{ContentCache, ContentKey};
use boxfs::fs::write::staging::{Journal, StagingDir, Target};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        out.push(e.path());
        if e.path().is_dir() {
            walk(&e.path(), out);
        }
    }
}

#[test]
fn cache_and_staging_are_private_under_umask_000() {
    // SAFETY: umask(2) cannot fail; this binary runs only this test.
    unsafe { libc::umask(0) };
    let tmp = tempfile::tempdir().expect("tempdir");
    let staging = StagingDir::open(&tmp.path().join("cache/staging")).expect("staging");
    let cache_dir = tmp.path().join("cache/content");
    let cache = ContentCache::open_with_chunk_size(&cache_dir, 1 << 20, 16).expect("cache");
    let key = ContentKey::new("123", "456", 20);
    assert!(cache.put(&key, 0, &[1u8; 16]).expect("put"));
    assert!(cache.put(&key, 1, &[2u8; 4]).expect("put"));

    let (key, _file) = staging.create().expect("data file");
    let journal = Journal {
        target: Target::NewFile {
            parent_id: "0".into(),
            name: "a".into(),
        },
        mtime: None,
        session_id: None,
    };
    staging.write_journal(&key, &journal).expect("journal");

    let mut all = vec![tmp.path().join("cache")];
    walk(&tmp.path().join("cache"), &mut all);
    assert!(all.len() >= 9, "{all:?}");
    for p in all {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
    }
}
