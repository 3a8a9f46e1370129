//! A mount's cache directory: where it is by default, whether boxfs may use it, and who
//! uses it now. It holds `content/` (the content cache), `staging/` (written data waiting
//! for upload), `pins.json` (what is kept offline, see [`crate::fs::pin::store`]), the
//! metadata store, the daemon's log, `emulator/` (the same for `boxfs mount --emulator`, see
//! [`box_dir`]), and two files of its own:
//!
//! - `.boxfs-cache`, the mark: the content cache and the staging recovery delete what they
//!   do not recognise, so boxfs uses a directory only if it made it. A directory without the
//!   mark is taken (and marked) only when it is empty, or when it holds nothing but what an
//!   earlier boxfs, which made no mark, left there (`content/`, `staging/` and `boxfs.log` in
//!   their layouts); anything else is refused and left untouched.
//! - `boxfs.lock`, an exclusive `flock` held for the daemon's whole life, with the daemon's
//!   pid in it: two daemons on one cache would delete each other's staged data and upload
//!   the same journals, so a second one is refused, naming the first.
//!
//! The default directory is derived from the mount point's canonical path (symbolic links
//! and `..` resolved, relative spellings made absolute), as a readable prefix plus a digest
//! of the whole path, so two mount points never share one and two spellings of one mount
//! point never get two.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::private_fs;

/// The mark of a directory boxfs made.
pub const MARK: &str = ".boxfs-cache";
/// The lock file held by the daemon using the directory.
pub const LOCK: &str = "boxfs.lock";
/// The content cache's directory in it.
pub const CONTENT: &str = "content";
/// The staged files' directory in it.
pub const STAGING: &str = "staging";
/// Where a mount of the embedded emulator keeps what belongs to its Box (see [`box_dir`]).
pub const EMULATOR: &str = "emulator";

/// Where a mount keeps what belongs to the Box it mounts: its content cache, staged files,
/// pins and metadata store. That is the cache directory itself, except for the embedded
/// emulator (`boxfs mount --emulator`), whose Box lives in its process only and hands out
/// the same ids to other files at every run: its `emulator/` subdirectory, cleared at each
/// start ([`CacheDir::forget_an_earlier_emulator`]), so that a demo on a mount point never
/// touches what a mount of Box on the same mount point keeps there.
pub fn box_dir(cache_dir: &Path, embedded_emulator: bool) -> PathBuf {
    match embedded_emulator {
        true => cache_dir.join(EMULATOR),
        false => cache_dir.to_path_buf(),
    }
}
/// What the mark says to a person who finds it.
const MARK_TEXT: &str = "This directory is a boxfs cache: boxfs deletes whatever it does not \
recognise in it.\n";
/// The longest readable part of a derived name.
const READABLE_LEN: usize = 40;

/// A path as one file name: its letters and digits (the rest as `-`, at most the last
/// `READABLE_LEN`) and a digest of the whole path, so `/mnt/a-b` and `/mnt/a/b` differ
/// (`/mnt/box` → `mnt-box-1a2b3c4d5e6f`).
pub fn mount_file_name(path: &Path) -> String {
    use sha1::{Digest, Sha1};
    let readable: String = path
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let skip = readable.chars().count().saturating_sub(READABLE_LEN);
    let readable: String = readable.chars().skip(skip).collect();
    let digest = hex::encode(Sha1::digest(path.as_os_str().as_encoded_bytes()));
    let readable = if readable.is_empty() {
        "root"
    } else {
        &readable
    };
    format!("{readable}-{}", &digest[..12])
}

/// The mount point as the kernel will know it: canonical when it exists, else absolute.
pub fn canonical_mountpoint(mountpoint: &Path) -> PathBuf {
    std::fs::canonicalize(mountpoint)
        .or_else(|_| std::path::absolute(mountpoint))
        .unwrap_or_else(|_| mountpoint.to_path_buf())
}

/// The default cache directory of a mount point: `mounts/NAME` under the XDG cache directory
/// (`~/.cache/boxfs`), NAME from [`mount_file_name`] of the canonical path.
pub fn default_cache_dir(mountpoint: &Path) -> Result<PathBuf, String> {
    let base = directories::ProjectDirs::from("", "", "boxfs")
        .map(|d| d.cache_dir().to_path_buf())
        .ok_or("cannot find the home directory for the cache: name one with --cache-dir DIR")?;
    let mounts = base.join("mounts");
    let dir = mounts.join(mount_file_name(&canonical_mountpoint(mountpoint)));
    adopt_older_default(&mounts, mountpoint, &dir);
    Ok(dir)
}

/// An earlier boxfs named the default directory after the mount point as typed, without a
/// digest: its staged data is recovered only if the directory moves to the new name.
fn adopt_older_default(mounts: &Path, mountpoint: &Path, dir: &Path) {
    if dir.exists() {
        return;
    }
    let older: String = mountpoint
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if older.is_empty() {
        return;
    }
    let older = mounts.join(older);
    if older.is_dir() && older.join(MARK).symlink_metadata().is_err() && holds_only_ours(&older) {
        match std::fs::rename(&older, dir) {
            Ok(()) => log::info!(
                "moved the cache of {} from {} to {}",
                mountpoint.display(),
                older.display(),
                dir.display()
            ),
            Err(e) => log::warn!("cannot move the older cache {}: {e}", older.display()),
        }
    }
}

/// A cache directory in use by this process: the lock is held until it is dropped.
#[derive(Debug)]
pub struct CacheDir {
    path: PathBuf,
    _lock: File,
}

impl CacheDir {
    /// Claims `dir` for this daemon: creates it (0700) if missing, refuses it if someone
    /// else owns it or if it is not empty and not boxfs's, marks it, and takes its lock.
    pub fn claim(dir: &Path) -> Result<CacheDir, String> {
        let shown = dir.display();
        private_fs::create_dirs_private(dir)
            .map_err(|e| format!("cannot create the cache directory {shown}: {e}"))?;
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(|e| format!("cache directory {shown}: {e}"))?;
        let meta = handle
            .metadata()
            .map_err(|e| format!("cache directory {shown}: {e}"))?;
        let me = private_fs::euid();
        if meta.uid() != me {
            return Err(format!(
                "the cache directory {shown} belongs to {}: boxfs keeps its cache in a \
                 directory of its own user ({}); name another with --cache-dir",
                private_fs::user_name(meta.uid()),
                private_fs::user_name(me)
            ));
        }
        let marked = dir.join(MARK).symlink_metadata().is_ok_and(|m| m.is_file());
        if !marked {
            let empty = std::fs::read_dir(dir)
                .map_err(|e| format!("cache directory {shown}: {e}"))?
                .next()
                .is_none();
            if !empty && !holds_only_ours(dir) {
                return Err(format!(
                    "the cache directory {shown} is not empty and boxfs did not make it (it \
                     has no {MARK}); boxfs deletes what it does not recognise in its cache, \
                     so it uses only an empty or new directory: name one with --cache-dir"
                ));
            }
            if !empty {
                log::info!("{shown}: a cache of an earlier boxfs, now marked as boxfs's");
            }
            private_fs::replace_file(dir, MARK, MARK_TEXT.as_bytes())
                .map_err(|e| format!("cannot mark the cache directory {shown}: {e}"))?;
        }
        if meta.mode() & 0o077 != 0 {
            handle
                .set_permissions(std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot make the cache directory {shown} private: {e}"))?;
        }
        let lock = lock(dir)?;
        Ok(CacheDir {
            path: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clears the embedded emulator's part of this directory ([`box_dir`]): an earlier run's
    /// cached content would be served as the files that hold its ids now, and its staged
    /// data uploaded over them. Returns how many staged files were dropped (their Box ended
    /// with its process).
    pub fn forget_an_earlier_emulator(&self) -> std::io::Result<usize> {
        let dir = box_dir(&self.path, true);
        let staged = match std::fs::read_dir(dir.join(STAGING)) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(staged),
        }
    }
}

/// Takes the exclusive lock of `dir` and writes our pid into it, or says who holds it.
fn lock(dir: &Path) -> Result<File, String> {
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| format!("cannot open the lock {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor `file` owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim().parse::<u32>() {
            Ok(pid) => format!("the boxfs daemon with pid {pid}"),
            Err(_) => "another boxfs daemon".to_string(),
        };
        return Err(format!(
            "the cache directory {} is in use by {holder}: each mount needs a cache \
             directory of its own (--cache-dir)",
            dir.display()
        ));
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(0o600)));
    if let Err(e) = written {
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(file)
}

/// Whether `dir` holds nothing but what an earlier boxfs puts in a cache directory:
/// `content/FILE_ID/VERSION/{meta,N,.tmp-*}`, `staging/*.{data,json,tmp}` and `boxfs.log`.
fn holds_only_ours(dir: &Path) -> bool {
    let entries = |d: &Path| -> Option<Vec<(String, std::fs::FileType)>> {
        std::fs::read_dir(d)
            .ok()?
            .map(|e| {
                let e = e.ok()?;
                Some((e.file_name().into_string().ok()?, e.file_type().ok()?))
            })
            .collect()
    };
    let plain = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let Some(top) = entries(dir) else {
        return false;
    };
    top.iter().all(|(name, kind)| match name.as_str() {
        "boxfs.log" => kind.is_file(),
        STAGING => {
            kind.is_dir()
                && entries(&dir.join(name)).is_some_and(|files| {
                    files.iter().all(|(f, k)| {
                        k.is_file() && [".data", ".json", ".tmp"].iter().any(|s| f.ends_with(s))
                    })
                })
        }
        CONTENT => {
            kind.is_dir()
                && entries(&dir.join(name)).is_some_and(|ids| {
                    ids.iter().all(|(id, k)| {
                        k.is_dir()
                            && plain(id)
                            && entries(&dir.join(name).join(id)).is_some_and(|versions| {
                                versions.iter().all(|(v, k)| {
                                    k.is_dir()
                                        && plain(v)
                                        && entries(&dir.join(name).join(id).join(v)).is_some_and(
                                            |chunks| {
                                                chunks.iter().all(|(c, k)| {
                                                    k.is_file()
                                                        && (c == "meta"
                                                            || c.starts_with(".tmp-")
                                                            || c.bytes()
                                                                .all(|b| b.is_ascii_digit()))
                                                })
                                            },
                                        )
                                })
                            })
                    })
                })
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_mount_points_never_share_a_name_and_spellings_of_one_do() {
        assert_ne!(
            mount_file_name(Path::new("/mnt/a-b")),
            mount_file_name(Path::new("/mnt/a/b"))
        );
        assert!(mount_file_name(Path::new("/mnt/box")).starts_with("mnt-box-"));
        assert!(mount_file_name(Path::new("/")).starts_with("root-"));
        let long = format!("/{}", "x".repeat(300));
        assert!(mount_file_name(Path::new(&long)).len() <= READABLE_LEN + 13);

        let tmp = tempfile::tempdir().unwrap();
        let abs = tmp.path().join("Box");
        std::fs::create_dir(&abs).unwrap();
        // The same directory spelled relative to the working directory (up to / and down).
        let cwd = std::env::current_dir().unwrap();
        let mut relative = PathBuf::new();
        for _ in cwd.components().skip(1) {
            relative.push("..");
        }
        relative.push(abs.strip_prefix("/").unwrap());
        assert!(relative.is_relative());
        let name = |p: &Path| mount_file_name(&canonical_mountpoint(p));
        assert_eq!(name(&relative), name(&abs));
        std::fs::create_dir(tmp.path().join("x")).unwrap();
        assert_eq!(name(&tmp.path().join("x/../Box")), name(&abs));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&abs, &link).unwrap();
        assert_eq!(name(&link), name(&abs));
    }

    #[test]
    fn a_second_claim_is_refused_naming_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let first = CacheDir::claim(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().mode() & 0o777,
            0o700,
            "created private"
        );
        let err = CacheDir::claim(&dir).unwrap_err();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains("in use"),
            "{err}"
        );
        drop(first);
        CacheDir::claim(&dir).unwrap();
    }

    #[test]
    fn a_directory_with_someone_elses_files_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mine");
        std::fs::create_dir_all(dir.join("content")).unwrap();
        std::fs::write(dir.join("content/important.txt"), b"keep me").unwrap();
        let err = CacheDir::claim(&dir).unwrap_err();
        assert!(err.contains("not empty") && err.contains(MARK), "{err}");
        assert_eq!(
            std::fs::read(dir.join("content/important.txt")).unwrap(),
            b"keep me"
        );
        assert!(!dir.join(MARK).exists() && !dir.join(LOCK).exists());

        // An empty directory is taken and marked; a marked one is taken whatever it holds.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        drop(CacheDir::claim(&empty).unwrap());
        assert!(empty.join(MARK).is_file());
        std::fs::write(empty.join("anything"), b"x").unwrap();
        drop(CacheDir::claim(&empty).unwrap());
    }

    #[test]
    fn a_cache_of_an_earlier_boxfs_is_adopted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("old");
        std::fs::create_dir_all(dir.join("content/123/abcdef/")).unwrap();
        std::fs::write(dir.join("content/123/abcdef/meta"), b"5 1048576").unwrap();
        std::fs::write(dir.join("content/123/abcdef/0"), b"hello").unwrap();
        std::fs::create_dir_all(dir.join("staging")).unwrap();
        std::fs::write(dir.join("staging/18a-1-0.data"), b"x").unwrap();
        std::fs::write(dir.join("staging/18a-1-0.json"), b"{}").unwrap();
        std::fs::write(dir.join("boxfs.log"), b"").unwrap();
        drop(CacheDir::claim(&dir).unwrap());
        assert!(dir.join(MARK).is_file());
        // One stranger among them is enough to refuse.
        let other = tmp.path().join("other");
        std::fs::create_dir_all(other.join("content/123/abcdef/")).unwrap();
        std::fs::write(other.join("content/123/abcdef/notes.txt"), b"mine").unwrap();
        assert!(CacheDir::claim(&other).is_err());
        assert!(other.join("content/123/abcdef/notes.txt").exists());
    }

    #[test]
    fn the_default_directory_of_an_earlier_boxfs_moves_to_the_new_name() {
        let tmp = tempfile::tempdir().unwrap();
        let mounts = tmp.path().join("mounts");
        std::fs::create_dir_all(mounts.join("mnt-box/staging")).unwrap();
        std::fs::write(mounts.join("mnt-box/staging/1-2-3.data"), b"x").unwrap();
        let new = mounts.join(mount_file_name(Path::new("/mnt/box")));
        adopt_older_default(&mounts, Path::new("/mnt/box"), &new);
        assert!(new.join("staging/1-2-3.data").is_file());
        assert!(!mounts.join("mnt-box").exists());
        // A directory that is not an earlier cache stays where it is.
        std::fs::create_dir_all(mounts.join("mnt-other")).unwrap();
        std::fs::write(mounts.join("mnt-other/notes.txt"), b"mine").unwrap();
        let other = mounts.join(mount_file_name(Path::new("/mnt/other")));
        adopt_older_default(&mounts, Path::new("/mnt/other"), &other);
        assert!(mounts.join("mnt-other/notes.txt").is_file() && !other.exists());
    }

    #[test]
    fn a_cache_directory_of_another_user_is_refused() {
        if private_fs::euid() != 0 {
            return; // chown needs root
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("theirs");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let err = CacheDir::claim(&dir).unwrap_err();
        assert!(err.contains("uid 65534"), "{err}");
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    }

    #[test]
    fn forgetting_an_earlier_emulator_leaves_a_mount_of_box_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let cache = CacheDir::claim(&dir).unwrap();
        // What a mount of Box keeps here, and what a demo keeps in its own part.
        for base in [dir.clone(), box_dir(&dir, true)] {
            std::fs::create_dir_all(base.join(CONTENT).join("123").join("456")).unwrap();
            std::fs::create_dir_all(base.join(STAGING)).unwrap();
            for f in ["k.json", "k.data", "j.json", "j.data", "x.tmp"] {
                std::fs::write(base.join(STAGING).join(f), b"").unwrap();
            }
            std::fs::write(base.join("pins.json"), b"").unwrap();
        }
        assert_eq!(cache.forget_an_earlier_emulator().unwrap(), 2);
        assert!(!box_dir(&dir, true).exists());
        assert_eq!(box_dir(&dir, false), dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [MARK, "boxfs.lock", CONTENT, "pins.json", STAGING]);
        assert_eq!(std::fs::read_dir(dir.join(STAGING)).unwrap().count(), 5);
        // Nothing to forget is no error.
        assert_eq!(cache.forget_an_earlier_emulator().unwrap(), 0);
    }
}
