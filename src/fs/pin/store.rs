//! Where pins outlive the process: `pins.json` in the mount's cache directory, holding the
//! Box ids (and kinds) of the pinned items and the ids of the files whose content is kept
//! for them. It is replaced whole (a private temporary file renamed over it, see
//! [`crate::private_fs::replace_file`]), so a crash leaves the old list or the new one. The
//! file's content is this module's business alone: [`PinFile::load`] and [`PinFile::save`]
//! are the whole API, so the list can move into another store without touching the rest.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fs::tree::inode::Kind;

/// The file's name in the cache directory.
pub const PINS_FILE: &str = "pins.json";
/// The format written; a file of another format is not read (and is replaced at the next
/// change).
const FORMAT: u32 = 1;

/// One pinned item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedPin {
    pub box_id: String,
    pub kind: Kind,
}

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedPins {
    pub pins: Vec<SavedPin>,
    /// Files whose cached content is kept for the pins: the content cache keeps them from
    /// the moment it opens, before the pinned folders are walked again.
    pub held_files: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    pins: Vec<PinRow>,
    #[serde(default)]
    held_files: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct PinRow {
    id: String,
    kind: String,
}

/// A mount's pins file.
#[derive(Debug, Clone)]
pub struct PinFile {
    dir: PathBuf,
}

impl PinFile {
    /// The pins file of the cache directory `dir`.
    pub fn in_dir(dir: &Path) -> PinFile {
        PinFile {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(PINS_FILE)
    }

    /// The saved pins. A missing file is no pins; an unreadable or malformed one is no pins
    /// too, with a warning (the mount still works; the user pins again).
    pub fn load(&self) -> SavedPins {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return SavedPins::default(),
            Err(e) => {
                log::warn!("{}: {e}; nothing is pinned", path.display());
                return SavedPins::default();
            }
        };
        match parse(&text) {
            Ok(saved) => saved,
            Err(why) => {
                log::warn!("{}: {why}; nothing is pinned", path.display());
                SavedPins::default()
            }
        }
    }

    /// Replaces the file with `pins`.
    pub fn save(&self, pins: &SavedPins) -> io::Result<()> {
        let rows = pins
            .pins
            .iter()
            .map(|p| PinRow {
                id: p.box_id.clone(),
                kind: Kind::box_type(p.kind).into(),
            })
            .collect();
        let disk = OnDisk {
            format: FORMAT,
            pins: rows,
            held_files: pins.held_files.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&disk).map_err(io::Error::other)?;
        bytes.push(b'\n');
        crate::private_fs::replace_file(&self.dir, PINS_FILE, &bytes)
    }
}

/// Box ids are digits; anything else in the file was not written by us.
fn plain_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit())
}

fn parse(text: &str) -> Result<SavedPins, String> {
    let disk: OnDisk = serde_json::from_str(text).map_err(|e| format!("not a pins file: {e}"))?;
    if disk.format != FORMAT {
        return Err(format!("pins file format {} is not known", disk.format));
    }
    let mut pins = Vec::new();
    for row in disk.pins {
        let kind = match row.kind.as_str() {
            "file" => Kind::File,
            "folder" => Kind::Dir,
            "web_link" => Kind::Link,
            other => return Err(format!("pin {} has an unknown kind {other:?}", row.id)),
        };
        if !plain_id(&row.id) {
            return Err(format!("{:?} is not a Box id", row.id));
        }
        if !pins.iter().any(|p: &SavedPin| p.box_id == row.id) {
            pins.push(SavedPin {
                box_id: row.id,
                kind,
            });
        }
    }
    let mut held_files: Vec<String> = disk
        .held_files
        .into_iter()
        .filter(|f| plain_id(f))
        .collect();
    held_files.sort();
    held_files.dedup();
    Ok(SavedPins { pins, held_files })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn pins_round_trip_through_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = PinFile::in_dir(dir.path());
        assert_eq!(file.load(), SavedPins::default());
        let saved = SavedPins {
            pins: vec![
                SavedPin {
                    box_id: "12".into(),
                    kind: Kind::Dir,
                },
                SavedPin {
                    box_id: "34".into(),
                    kind: Kind::File,
                },
            ],
            held_files: vec!["34".into(), "56".into()],
        };
        file.save(&saved).unwrap();
        assert_eq!(file.load(), saved);
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Replaced, not appended; no temporary file left behind.
        file.save(&SavedPins::default()).unwrap();
        assert_eq!(file.load(), SavedPins::default());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_damaged_or_foreign_file_means_no_pins() {
        let dir = tempfile::tempdir().unwrap();
        let file = PinFile::in_dir(dir.path());
        for text in [
            "",
            "{",
            r#"{"format": 2, "pins": []}"#,
            r#"{"format": 1, "pins": [{"id": "1", "kind": "link"}]}"#,
            r#"{"format": 1, "pins": [{"id": "../x", "kind": "file"}]}"#,
        ] {
            std::fs::write(file.path(), text).unwrap();
            assert_eq!(file.load(), SavedPins::default(), "{text}");
        }
        std::fs::write(
            file.path(),
            r#"{"format": 1, "pins": [{"id": "1", "kind": "file"}, {"id": "1", "kind": "file"}],
                "held_files": ["2", "x/y", "2"]}"#,
        )
        .unwrap();
        let loaded = file.load();
        assert_eq!(loaded.pins.len(), 1);
        assert_eq!(loaded.held_files, ["2"]);
    }
}
