//! `.versions/` in every folder: one folder per file of the folder (`.versions/NAME/`; web
//! links have no versions),
//! holding one read-only file per earlier version of it, named by [`version_name`]. Box's
//! `GET /files/{id}/versions` lists the earlier versions only, newest first; the current one
//! is the file itself.
//!
//! **Cost.** `ls .versions` lists the folder's files from the folder's own listing (no
//! request per file); only `ls .versions/NAME` (or a lookup in it) asks Box for that one
//! file's versions. The list is kept while the file's current version stays the one it was
//! listed for (a new upload or a promotion changes it) and the mount's metadata TTL allows.
//!
//! **Reading.** A version file reads through the ordinary read path: a `FileReader` of
//! that `file_version` id (ranged downloads with `?version=`, the content cache keyed by
//! file id and version), so `cat` and `cp` get the exact bytes and the kernel may keep the
//! pages (a version's content never changes). Writes are refused (EACCES; the files are
//! 0444): a new version is made by writing the file itself, e.g.
//! `cp .versions/NAME/v1… NAME`.
//!
//! **Promotion.** `setfattr -n user.box.version -v ID NAME` makes earlier version `ID` the
//! current one as Box's web app does (`POST /files/{id}/versions/current`): Box copies it
//! into a new version, so the history keeps them all.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use box_client::types::FileVersion;

use super::names::version_name;
use super::nodes::{Node, VersionFile};
use super::{finished_dir, virtual_attr};
use crate::fs::errno::FsError;
use crate::fs::handles::{OpenContent, OpenFile};
use crate::fs::kernel::Invalidation;
use crate::fs::tree::attr::FsAttr;
use crate::fs::tree::inode::{parse_time, Ino, Kind};
use crate::fs::{lock, BoxFs, DirEntry, Opened, STAT_FIELDS};

/// One file's earlier versions as Box listed them.
#[derive(Debug)]
struct Listed {
    /// The file's current version when they were listed.
    current: Option<Box<str>>,
    at: Instant,
    versions: Arc<Vec<FileVersion>>,
}

/// The version lists fetched, by file id.
#[derive(Debug, Default)]
pub struct VersionLists {
    by_file: Mutex<HashMap<Box<str>, Listed>>,
}

/// When a version was uploaded, as its name and `mtime` show it.
fn uploaded_at(v: &FileVersion) -> Option<SystemTime> {
    parse_time(v.modified_at.as_ref()).or_else(|| parse_time(v.created_at.as_ref()))
}

/// The version files of a file named `file_name` whose earlier versions Box listed as
/// `versions` (newest first): numbered from the oldest (1).
fn version_files(file_id: &str, file_name: &str, versions: &[FileVersion]) -> Vec<VersionFile> {
    let count = versions.len();
    versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let number = count - i;
            let uploaded = uploaded_at(v).map(chrono::DateTime::<chrono::Utc>::from);
            VersionFile {
                file_id: file_id.into(),
                number,
                name: version_name(number, uploaded, file_name).into(),
                version: v.clone(),
            }
        })
        .collect()
}

/// A version id as `setfattr` writes it.
fn parse_version_id(value: &[u8]) -> Result<&str, FsError> {
    std::str::from_utf8(value)
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            FsError::new(
                libc::EINVAL,
                "user.box.version takes the id of an earlier version (its user.box.version \
                 in .versions/)",
            )
        })
}

impl BoxFs {
    /// `.versions` of folder `folder`.
    pub(super) fn versions_dir(&self, folder: Ino) -> Result<FsAttr, FsError> {
        let ino = self.history.nodes.ino_of(Node::VersionsDir { folder });
        self.versions_attr(ino)
    }

    /// The times of a real inode, for the virtual folders that stand for it.
    fn times_of(&self, ino: Ino) -> Result<(Option<SystemTime>, Option<SystemTime>), FsError> {
        let table = lock(&self.table);
        let a = self.cached_attr(&table, ino)?;
        Ok((Some(a.mtime), Some(a.ctime)))
    }

    /// `getattr` of a virtual inode below `.versions`.
    pub(super) fn versions_attr(&self, ino: Ino) -> Result<FsAttr, FsError> {
        let id = &self.opts.identity;
        match self.history.nodes.get(ino) {
            Some(Node::VersionsDir { folder }) => Ok(virtual_attr(
                ino,
                Kind::Dir,
                0,
                self.times_of(folder)?,
                0o555,
                id,
            )),
            Some(Node::FileVersions { file, .. }) => Ok(virtual_attr(
                ino,
                Kind::Dir,
                0,
                self.times_of(file)?,
                0o555,
                id,
            )),
            Some(Node::Version { file, .. }) => {
                let v = &file.version;
                let times = (uploaded_at(v), parse_time(v.created_at.as_ref()));
                Ok(virtual_attr(
                    ino,
                    Kind::File,
                    v.size.unwrap_or(0),
                    times,
                    0o444,
                    id,
                ))
            }
            None => Err(FsError::not_found(format!("no inode {ino}"))),
        }
    }

    /// `lookup` in a virtual folder below `.versions`.
    pub(super) async fn lookup_in_versions(
        self: &Arc<Self>,
        parent: Ino,
        name: &OsStr,
    ) -> Result<FsAttr, FsError> {
        match self.history.nodes.get(parent) {
            Some(Node::VersionsDir { folder }) => {
                let file = self.resolve(folder, name).await?;
                let file_id = {
                    let table = lock(&self.table);
                    match table.get(file) {
                        Some(i) if i.kind() == Kind::File && !i.is_local() => {
                            i.box_id().to_string()
                        }
                        _ => {
                            return Err(FsError::not_found(
                                ".versions holds the folder's files on Box",
                            ))
                        }
                    }
                };
                let ino = self.history.nodes.ino_of(Node::FileVersions {
                    versions_dir: parent,
                    file,
                    file_id: file_id.into(),
                });
                self.versions_attr(ino)
            }
            Some(Node::FileVersions { file, file_id, .. }) => {
                let name = name.to_str().unwrap_or_default();
                let found = self
                    .version_files(file, &file_id)
                    .await?
                    .into_iter()
                    .find(|v| &*v.name == name)
                    .ok_or_else(|| FsError::not_found(format!("no version '{name}'")))?;
                let ino = self.history.nodes.ino_of(Node::Version {
                    dir: parent,
                    file: Box::new(found),
                });
                self.versions_attr(ino)
            }
            Some(Node::Version { .. }) => Err(FsError::new(libc::ENOTDIR, "not a directory")),
            None => Err(FsError::not_found(format!("no inode {parent}"))),
        }
    }

    /// The earlier versions of file `file` (inode) with Box id `file_id`, from the list
    /// kept while the file's current version is unchanged, else from Box.
    async fn version_files(&self, file: Ino, file_id: &str) -> Result<Vec<VersionFile>, FsError> {
        let (current, name) = {
            let table = lock(&self.table);
            let inode = table
                .get(file)
                .ok_or_else(|| FsError::not_found(format!("no inode {file}")))?;
            (inode.attrs().version.clone(), inode.name().to_string())
        };
        let ttl = self.freshness.ttl();
        let kept = lock(&self.history.versions.by_file)
            .get(file_id)
            .filter(|l| l.current == current && l.at.elapsed() < ttl)
            .map(|l| l.versions.clone());
        let versions = match kept {
            Some(v) => v,
            None => {
                let versions = Arc::new(self.client.file_versions(file_id).await?);
                lock(&self.history.versions.by_file).insert(
                    file_id.into(),
                    Listed {
                        current,
                        at: Instant::now(),
                        versions: versions.clone(),
                    },
                );
                versions
            }
        };
        Ok(version_files(file_id, &name, &versions))
    }

    /// `opendir` of a virtual folder below `.versions`.
    pub(super) async fn open_versions_dir(self: &Arc<Self>, ino: Ino) -> Result<Opened, FsError> {
        let attr = self.versions_attr(ino)?;
        match self.history.nodes.get(ino) {
            Some(Node::VersionsDir { folder }) => {
                self.ensure_listing(folder, false).await?;
                let files: Vec<(Ino, String, String)> = {
                    let table = lock(&self.table);
                    table
                        .children(folder)
                        .into_iter()
                        .filter_map(|c| {
                            let i = table.get(c)?;
                            (i.kind() == Kind::File && !i.is_local())
                                .then(|| (c, i.name().to_string(), i.box_id().to_string()))
                        })
                        .collect()
                };
                let entries = files
                    .into_iter()
                    .filter_map(|(file, name, file_id)| {
                        let node = Node::FileVersions {
                            versions_dir: ino,
                            file,
                            file_id: file_id.into(),
                        };
                        let attr = self.versions_attr(self.history.nodes.ino_of(node)).ok()?;
                        Some(DirEntry {
                            name: name.into(),
                            attr,
                        })
                    })
                    .collect();
                Ok(finished_dir(self, ino, folder, attr, entries))
            }
            Some(Node::FileVersions {
                versions_dir,
                file,
                file_id,
            }) => {
                let entries = self
                    .version_files(file, &file_id)
                    .await?
                    .into_iter()
                    .filter_map(|v| {
                        let name = v.name.clone();
                        let node = Node::Version {
                            dir: ino,
                            file: Box::new(v),
                        };
                        let attr = self.versions_attr(self.history.nodes.ino_of(node)).ok()?;
                        Some(DirEntry { name, attr })
                    })
                    .collect();
                Ok(finished_dir(self, ino, versions_dir, attr, entries))
            }
            Some(Node::Version { .. }) => Err(FsError::new(libc::ENOTDIR, "not a directory")),
            None => Err(FsError::not_found(format!("no inode {ino}"))),
        }
    }

    /// `open` of a version file, for reading.
    pub(super) fn open_version(&self, ino: Ino) -> Result<Opened, FsError> {
        let Some(Node::Version { file, .. }) = self.history.nodes.get(ino) else {
            return Err(FsError::new(libc::EISDIR, "is a directory"));
        };
        let v = &file.version;
        let reader = self.readers.reader_of(
            file.file_id.to_string(),
            Some(&v.id),
            v.sha1.as_deref(),
            v.size.unwrap_or(0),
        );
        let fh = self.handles.add_file(OpenFile {
            ino,
            content: OpenContent::Box(reader),
        });
        // A version's content never changes: the pages the kernel has are right.
        Ok(Opened {
            fh,
            keep_cache: true,
        })
    }

    /// The attributes of a version file: the file's id, the version's id and SHA-1.
    pub(super) fn version_xattrs(&self, ino: Ino) -> Vec<(String, String)> {
        let Some(Node::Version { file, .. }) = self.history.nodes.get(ino) else {
            return Vec::new();
        };
        let mut attrs = vec![
            ("user.box.id".to_string(), file.file_id.to_string()),
            ("user.box.type".to_string(), "file".to_string()),
            ("user.box.version".to_string(), file.version.id.clone()),
        ];
        if let Some(sha1) = &file.version.sha1 {
            attrs.push(("user.box.sha1".to_string(), sha1.clone()));
        }
        attrs
    }

    /// `setxattr(user.box.version)` of file `ino` (Box id `file_id`): makes earlier version
    /// `value` the current one. Box answers the new version only, while the file's etag and
    /// `sequence_id` changed too (and the next upload's `If-Match` needs the etag), so the
    /// file is read once after it.
    pub(in crate::fs) async fn promote_version(
        &self,
        ino: Ino,
        file_id: &str,
        value: &[u8],
    ) -> Result<(), FsError> {
        let version_id = parse_version_id(value)?;
        if self.writes.staged(ino).is_some_and(|s| s.state().dirty) {
            return Err(FsError::new(
                libc::EBUSY,
                "the file has writes not on Box yet: they would replace the promoted version",
            ));
        }
        let current = lock(&self.table)
            .get(ino)
            .and_then(|i| i.attrs().version.clone());
        if current.as_deref() == Some(version_id) {
            return Ok(());
        }
        let known = self
            .version_files(ino, file_id)
            .await?
            .iter()
            .any(|v| v.version.id == version_id);
        if !known {
            return Err(FsError::new(
                libc::EINVAL,
                format!("{version_id} is not an earlier version of this file"),
            ));
        }
        let _own = self.own.item(file_id);
        self.client
            .promote_file_version(file_id, version_id)
            .await?;
        let item = self.client.file_with_fields(file_id, STAT_FIELDS).await;
        // The file's pages and attributes changed whatever the read says.
        self.kernel.send(Invalidation::Inode(ino));
        let item = item?;
        let mut table = lock(&self.table);
        if let Some(parent) = table.get(ino).and_then(|i| i.parent()) {
            table.insert_or_update_from_item(parent, &item)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str, at: &str, size: u64) -> FileVersion {
        FileVersion {
            id: id.into(),
            size: Some(size),
            created_at: Some(at.into()),
            modified_at: Some(at.into()),
            ..FileVersion::default()
        }
    }

    #[test]
    fn versions_are_numbered_from_the_oldest_and_named_with_the_extension() {
        // Box lists newest first.
        let listed = [
            version("30", "2026-12-04T10:20:00Z", 3),
            version("20", "2026-12-04T10:15:03Z", 2),
            version("10", "2026-12-03T08:00:00Z", 1),
        ];
        let files = version_files("5", "report.txt", &listed);
        let names: Vec<&str> = files.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            [
                "v3 2026-12-04 10.20.00.txt",
                "v2 2026-12-04 10.15.03.txt",
                "v1 2026-12-03 08.00.00.txt"
            ]
        );
        assert_eq!(files[2].version.id, "10");
        assert_eq!(files[2].number, 1);
    }

    #[test]
    fn a_version_id_is_digits() {
        assert_eq!(parse_version_id(b"123\n").unwrap(), "123");
        for bad in [&b""[..], b"v1", b"12 3", b"\xff"] {
            assert_eq!(parse_version_id(bad).unwrap_err().errno(), libc::EINVAL);
        }
    }
}
