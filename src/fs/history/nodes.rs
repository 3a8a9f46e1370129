//! The inode numbers of the virtual history folders and what each stands for: the
//! `.versions` folder of a folder, a file's folder of versions in it, one earlier version.
//! Numbers come from [`VIRTUAL_INOS`] on (the trash's folder and its link `.trash` are the
//! first two, fixed), and the same thing
//! keeps its number for the mount's life, so the kernel's inodes stay valid however often it
//! forgets and looks them up again. Nothing here is ever stored: the table's journal and the
//! metadata store never see these numbers. The registry only grows, by what a user browsed
//! (a few hundred bytes per version looked at).

use std::collections::HashMap;
use std::sync::Mutex;

use box_client::types::FileVersion;

use crate::fs::lock;
use crate::fs::tree::inode::{Ino, TRASH_LINK_INO, VIRTUAL_INOS};

/// One earlier version of a file, as its folder of versions shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionFile {
    /// The file it is a version of.
    pub file_id: Box<str>,
    /// Its place counted from the oldest version Box keeps (1).
    pub number: usize,
    /// The name shown ([`super::names::version_name`]).
    pub name: Box<str>,
    pub version: FileVersion,
}

/// What a virtual inode stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `.versions` in folder `folder` (the folder's own inode).
    VersionsDir { folder: Ino },
    /// `.versions/NAME`: the earlier versions of file `file` (its inode), in `versions_dir`.
    FileVersions {
        versions_dir: Ino,
        file: Ino,
        file_id: Box<str>,
    },
    /// `.versions/NAME/<version>`, in `dir` (the file's folder of versions).
    Version { dir: Ino, file: Box<VersionFile> },
}

/// What keeps a node's number: the same folder, file or version gets the same inode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    VersionsDir(Ino),
    FileVersions(Box<str>),
    Version(Box<str>),
}

impl Node {
    fn key(&self) -> Key {
        match self {
            Node::VersionsDir { folder } => Key::VersionsDir(*folder),
            Node::FileVersions { file_id, .. } => Key::FileVersions(file_id.clone()),
            Node::Version { file, .. } => Key::Version(file.version.id.as_str().into()),
        }
    }
}

#[derive(Debug)]
struct Registry {
    by_ino: HashMap<Ino, Node>,
    by_key: HashMap<Key, Ino>,
    next: Ino,
}

/// The virtual inodes of a mount.
#[derive(Debug)]
pub struct Nodes {
    inner: Mutex<Registry>,
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes {
            inner: Mutex::new(Registry {
                by_ino: HashMap::new(),
                by_key: HashMap::new(),
                next: TRASH_LINK_INO + 1,
            }),
        }
    }
}

impl Nodes {
    /// The inode of `node`: the one it had, with what it stands for brought up to date (a
    /// file renamed, a version listed again), or a new number.
    pub fn ino_of(&self, node: Node) -> Ino {
        let mut reg = lock(&self.inner);
        let key = node.key();
        if let Some(&ino) = reg.by_key.get(&key) {
            reg.by_ino.insert(ino, node);
            return ino;
        }
        let ino = reg.next;
        reg.next += 1;
        reg.by_key.insert(key, ino);
        reg.by_ino.insert(ino, node);
        ino
    }

    /// What `ino` stands for, if it is a virtual inode handed out.
    pub fn get(&self, ino: Ino) -> Option<Node> {
        if ino <= VIRTUAL_INOS {
            return None;
        }
        lock(&self.inner).by_ino.get(&ino).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str, number: usize) -> Node {
        Node::Version {
            dir: VIRTUAL_INOS + 9,
            file: Box::new(VersionFile {
                file_id: "5".into(),
                number,
                name: format!("v{number}").into(),
                version: FileVersion {
                    id: id.into(),
                    ..FileVersion::default()
                },
            }),
        }
    }

    #[test]
    fn the_same_thing_keeps_its_number_and_others_get_new_ones() {
        let nodes = Nodes::default();
        let dir = nodes.ino_of(Node::VersionsDir { folder: 1 });
        assert!(dir > TRASH_LINK_INO);
        assert_eq!(nodes.ino_of(Node::VersionsDir { folder: 1 }), dir);
        let v1 = nodes.ino_of(version("100", 1));
        assert_ne!(v1, dir);
        // Listed again with another number (an older version dropped by Box): same inode,
        // what it stands for brought up to date.
        assert_eq!(nodes.ino_of(version("100", 2)), v1);
        match nodes.get(v1) {
            Some(Node::Version { file, .. }) => assert_eq!(file.number, 2),
            other => panic!("{other:?}"),
        }
        assert_ne!(nodes.ino_of(version("101", 1)), v1);
        assert_eq!(nodes.get(crate::fs::tree::inode::TRASH_INO), None);
        assert_eq!(nodes.get(TRASH_LINK_INO), None);
        assert_eq!(nodes.get(5), None);
    }
}
