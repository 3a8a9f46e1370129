//! The staging area: where written data waits on local disk until Box has confirmed its
//! upload (Box needs a file's size before the upload starts, so nothing is streamed).
//!
//! Each staged file is two files in `<cache-dir>/staging/`: `<key>.data`, the content, and
//! `<key>.json`, its *journal* ([`Journal`]): where the data goes on Box (a new file in a
//! folder, or a new version of a file with the etag the data was based on), the mtime to
//! give it, and the upload session once one was opened (so an interrupted large upload
//! resumes from the parts Box already holds). The journal is written atomically (a
//! temporary file renamed over the old one), so after a crash or `kill -9` of the daemon
//! each `.json` is either the old or the new journal, never half of one. Making it durable
//! against a crash of the whole machine (fsync of the file and of the directory, about 7 ms
//! on an ordinary disk) is [`StagingDir::sync_journal`], which runs in the background once
//! the data outlives the close that wrote it (`--write-back`, a failed upload), with an
//! fsync of the data. Until then the program was promised nothing (a close that uploads
//! returns only once Box confirmed), and fsync(2) on a file in the mount uploads it.
//!
//! A `.data` file without a journal holds nothing that must reach Box (a clean copy kept
//! for open handles, or a file whose journal was never written): [`StagingDir::recover`]
//! deletes those. A journal is removed only after Box confirmed the upload; the data goes
//! with it, or later when the last handle closes. The directory sits outside the content
//! cache and its size bound: staged data is never evicted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Where a staged file's data goes on Box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A file created through the mount: a new file `name` in folder `parent_id`.
    NewFile { parent_id: String, name: String },
    /// A new version of `file_id`, based on the version whose etag was `base_etag` (sent as
    /// `If-Match`; `None` replaces whatever Box holds). `parent_id` and `name` say where a
    /// conflict copy goes if Box's version moved on meanwhile.
    Version {
        file_id: String,
        base_etag: Option<String>,
        /// The `file_version` id of the content the data was based on. Box's etag changes
        /// with any change of the item (a rename, a lock), so a refused `If-Match` is a
        /// conflict only if the content moved on from this version. Journals written
        /// before it was kept have none: every refusal is a conflict then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_version: Option<String>,
        parent_id: String,
        name: String,
    },
}

impl Target {
    pub fn parent_id(&self) -> &str {
        match self {
            Target::NewFile { parent_id, .. } | Target::Version { parent_id, .. } => parent_id,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Target::NewFile { name, .. } | Target::Version { name, .. } => name,
        }
    }

    /// The same target under another folder and name (a rename of the staged file).
    pub fn moved(&self, new_parent_id: &str, new_name: &str) -> Target {
        match self.clone() {
            Target::NewFile { .. } => Target::NewFile {
                parent_id: new_parent_id.to_string(),
                name: new_name.to_string(),
            },
            Target::Version {
                file_id,
                base_etag,
                base_version,
                ..
            } => Target::Version {
                file_id,
                base_etag,
                base_version,
                parent_id: new_parent_id.to_string(),
                name: new_name.to_string(),
            },
        }
    }
}

/// The journal of one staged file (its `.json` sidecar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub target: Target,
    /// The content's modification time (RFC 3339), when set explicitly (`utimens`);
    /// otherwise the data file's own mtime is the content's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
    /// The upload session opened for this data, if any (large files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// A staged file found by [`StagingDir::recover`].
#[derive(Debug)]
pub struct Recovered {
    pub key: String,
    pub journal: Journal,
    /// The data's size and modification time on disk.
    pub size: u64,
    pub modified: SystemTime,
}

/// The staging directory.
#[derive(Debug)]
pub struct StagingDir {
    dir: PathBuf,
    next: AtomicU64,
}

impl StagingDir {
    /// Opens (creating it, private to the user) the staging directory `dir`.
    pub fn open(dir: &Path) -> std::io::Result<StagingDir> {
        // Missing parents are created 0700 too, whatever the umask.
        crate::fs::read::chunk_file::create_private_dir(dir)?;
        Ok(StagingDir {
            dir: dir.to_path_buf(),
            next: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn data_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.data"))
    }

    fn journal_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// A new, empty data file and its key (unique across restarts: time, pid, counter).
    pub fn create(&self) -> std::io::Result<(String, File)> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let key = format!("{nanos:x}-{}-{n}", std::process::id());
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(self.data_path(&key))
            {
                Ok(f) => return Ok((key, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens the data file of `key` for reading and writing (a recovered entry).
    pub fn open_data(&self, key: &str) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.data_path(key))
    }

    /// Writes `key`'s journal atomically and durably: the old one or the new one survives a
    /// crash of the daemon or of the machine, never a mix.
    pub fn write_journal(&self, key: &str, journal: &Journal) -> std::io::Result<()> {
        self.publish_journal(key, journal)?;
        self.sync_journal(key)
    }

    /// Writes `key`'s journal atomically (a temporary file renamed over the old one): once
    /// this returns, a crash or `kill -9` of the daemon leaves the old journal or the new
    /// one, never a mix. Not yet durable against a crash of the machine: see
    /// [`StagingDir::sync_journal`].
    pub fn publish_journal(&self, key: &str, journal: &Journal) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(journal).map_err(std::io::Error::other)?;
        // One temporary name per write: a durable write of an older journal running in the
        // background never renames a half-written newer one.
        static TMP_SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("{key}.{seq}.json.tmp"));
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&json)?;
        }
        std::fs::rename(&tmp, self.journal_path(key))
    }

    /// Makes `key`'s journal, as it is now, durable: fsync of the file and of the directory.
    /// A journal removed meanwhile (the upload was confirmed) needs nothing.
    pub fn sync_journal(&self, key: &str) -> std::io::Result<()> {
        match File::open(self.journal_path(key)) {
            Ok(f) => f.sync_all()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.sync_dir()
    }

    /// Removes `key`'s journal: its data no longer needs to reach Box.
    pub fn remove_journal(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.journal_path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes `key`'s journal, then its data.
    pub fn remove(&self, key: &str) -> std::io::Result<()> {
        self.remove_journal(key)?;
        match std::fs::remove_file(self.data_path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether `key` still has a journal (its data must reach Box).
    pub fn has_journal(&self, key: &str) -> bool {
        self.journal_path(key).exists()
    }

    /// How many staged files wait for an upload (journals present).
    pub fn pending_count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// At start-up: the staged files whose uploads a previous run did not finish. Data
    /// without a journal and leftover temporary journals are deleted; a journal without
    /// data (or one that cannot be read) is reported and set aside as `<key>.json.bad`.
    pub fn recover(&self) -> std::io::Result<Vec<Recovered>> {
        let mut out = Vec::new();
        let mut data_keys = Vec::new();
        let mut journal_keys = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(key) = name.strip_suffix(".data") {
                data_keys.push(key.to_string());
            } else if let Some(key) = name.strip_suffix(".json") {
                journal_keys.push(key.to_string());
            } else if name.ends_with(".json.tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        for key in &data_keys {
            if !journal_keys.contains(key) {
                let _ = std::fs::remove_file(self.data_path(key));
            }
        }
        journal_keys.sort();
        for key in journal_keys {
            let journal: Option<Journal> = std::fs::read(self.journal_path(&key))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let meta = std::fs::metadata(self.data_path(&key)).ok();
            match (journal, meta) {
                (Some(journal), Some(meta)) => out.push(Recovered {
                    size: meta.len(),
                    modified: meta.modified().unwrap_or_else(|_| SystemTime::now()),
                    key,
                    journal,
                }),
                _ => {
                    log::error!(
                        "staged upload {key} in {} has no data or an unreadable journal; \
                         set aside as {key}.json.bad",
                        self.dir.display()
                    );
                    let _ = std::fs::rename(
                        self.journal_path(&key),
                        self.dir.join(format!("{key}.json.bad")),
                    );
                }
            }
        }
        Ok(out)
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// The name of a conflict copy of `name`: `report (conflict 2024-05-01 142233).txt`. A
/// leading dot is part of the name, not an extension (`.bashrc (conflict ...)`).
pub fn conflict_name(name: &str, when: chrono::DateTime<chrono::Local>) -> String {
    let stamp = when.format("%Y-%m-%d %H%M%S");
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} (conflict {stamp}){}", &name[..i], &name[i..]),
        _ => format!("{name} (conflict {stamp})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn new_file(name: &str) -> Journal {
        Journal {
            target: Target::NewFile {
                parent_id: "12".into(),
                name: name.into(),
            },
            mtime: None,
            session_id: None,
        }
    }

    /// Journals written before `base_version` was kept still read (every refused
    /// `If-Match` is then a conflict, as it was).
    #[test]
    fn a_journal_without_a_base_version_reads() {
        let old = r#"{"target":{"kind":"version","file_id":"99","base_etag":"3","parent_id":"0","name":"b.txt"}}"#;
        let j: Journal = serde_json::from_str(old).unwrap();
        assert!(matches!(
            j.target,
            Target::Version { base_version: None, ref base_etag, .. } if base_etag.as_deref() == Some("3")
        ));
    }

    #[test]
    fn journals_round_trip_and_recover() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = StagingDir::open(&tmp.path().join("staging")).unwrap();
        let (a, mut fa) = staging.create().unwrap();
        fa.write_all(b"hello").unwrap();
        staging.write_journal(&a, &new_file("a.txt")).unwrap();
        let (b, _) = staging.create().unwrap();
        let version = Journal {
            target: Target::Version {
                file_id: "99".into(),
                base_etag: Some("3".into()),
                base_version: Some("v3".into()),
                parent_id: "0".into(),
                name: "b.txt".into(),
            },
            mtime: Some("2024-05-01T10:00:00+00:00".into()),
            session_id: Some("sess1".into()),
        };
        staging.write_journal(&b, &version).unwrap();
        // A clean copy (no journal) and a stray temporary journal.
        let (clean, _) = staging.create().unwrap();
        std::fs::write(staging.dir.join("x.json.tmp"), b"{").unwrap();
        assert_eq!(StagingDir::pending_count(staging.path()), 2);

        let again = StagingDir::open(staging.path()).unwrap();
        let found = again.recover().unwrap();
        assert_eq!(found.len(), 2);
        let fa = found.iter().find(|r| r.key == a).unwrap();
        assert_eq!(fa.journal, new_file("a.txt"));
        assert_eq!(fa.size, 5);
        let fb = found.iter().find(|r| r.key == b).unwrap();
        assert_eq!(fb.journal, version);
        assert!(
            !again.data_path(&clean).exists(),
            "data without journal removed"
        );
        assert!(!staging.dir.join("x.json.tmp").exists());

        again.remove(&a).unwrap();
        assert!(!again.data_path(&a).exists());
        assert!(!again.has_journal(&a));
        assert_eq!(again.recover().unwrap().len(), 1);
    }

    #[test]
    fn a_journal_without_data_is_set_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = StagingDir::open(tmp.path()).unwrap();
        let (k, _) = staging.create().unwrap();
        staging.write_journal(&k, &new_file("gone")).unwrap();
        std::fs::remove_file(staging.data_path(&k)).unwrap();
        assert!(staging.recover().unwrap().is_empty());
        assert!(tmp.path().join(format!("{k}.json.bad")).exists());
    }

    #[test]
    fn rewriting_a_journal_replaces_it_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = StagingDir::open(tmp.path()).unwrap();
        let (k, _) = staging.create().unwrap();
        let mut j = new_file("a");
        staging.write_journal(&k, &j).unwrap();
        j.session_id = Some("s".into());
        j.target = j.target.moved("7", "b");
        staging.write_journal(&k, &j).unwrap();
        let found = staging.recover().unwrap();
        assert_eq!(found[0].journal, j);
        assert_eq!(found[0].journal.target.name(), "b");
        assert_eq!(found[0].journal.target.parent_id(), "7");
    }

    #[test]
    fn conflict_names_keep_the_extension() {
        let when = chrono::Local
            .with_ymd_and_hms(2024, 5, 1, 14, 22, 33)
            .unwrap();
        assert_eq!(
            conflict_name("report.txt", when),
            "report (conflict 2024-05-01 142233).txt"
        );
        assert_eq!(
            conflict_name("a.tar.gz", when),
            "a.tar (conflict 2024-05-01 142233).gz"
        );
        assert_eq!(
            conflict_name(".bashrc", when),
            ".bashrc (conflict 2024-05-01 142233)"
        );
        assert_eq!(
            conflict_name("README", when),
            "README (conflict 2024-05-01 142233)"
        );
    }
}
