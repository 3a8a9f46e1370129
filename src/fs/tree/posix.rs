//! POSIX attributes kept on Box (`--posix-attributes`): how a file's mode bits and a
//! symbolic link are written in the item's free-form `global.properties` metadata, and read
//! back from an item that carries it. Pure data: the operations that write them are in
//! `write::posix`.
//!
//! Box has no modes and no symbolic links. With the option, `chmod` writes the mode, with
//! its file type bits, as the octal text `posix_mode` (`"100755"`), and `ln -s` makes a small
//! file whose content is the link's target, marked with the mode of a link (`"120777"`) and
//! carrying the target in `posix_symlink` too, so that `ls -l` and `readlink` need no
//! download. Listings ask for the instance in the same call (`fields=` takes
//! `metadata.global.properties`), so `ls -l` costs no extra call. The metadata stays with the
//! item through renames and moves, on Box's web app as well, and every mount of the account
//! reads it. An item without the keys shows the mount's defaults.

use box_client::types::Item;
use serde_json::Value;

/// The field a listing or an item fetch asks for to get the instance inline.
pub const POSIX_FIELD: &str = "metadata.global.properties";
/// Box's free-form template, where any key may be written.
pub const SCOPE: &str = "global";
pub const TEMPLATE: &str = "properties";
/// The mode, file type bits included, as octal text.
pub const MODE_KEY: &str = "posix_mode";
/// A symbolic link's target.
pub const SYMLINK_KEY: &str = "posix_symlink";

/// The file type and permission bits this mount keeps (set-id and sticky bits included).
const KEPT_BITS: u32 = libc::S_IFMT | 0o7777;

/// What the item's `global.properties` says, when the item was fetched with
/// [`POSIX_FIELD`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PosixAttrs {
    pub mode: Option<u32>,
    pub symlink: Option<String>,
}

impl PosixAttrs {
    /// `None` when the item was fetched without [`POSIX_FIELD`] (what the table holds stays);
    /// otherwise what its instance says, nothing when it has none.
    pub fn of(item: &Item) -> Option<PosixAttrs> {
        let metadata = item.metadata.as_ref()?;
        let Some(values) = metadata.get(SCOPE).and_then(|s| s.get(TEMPLATE)) else {
            return Some(PosixAttrs::default());
        };
        let mode = values
            .get(MODE_KEY)
            .and_then(Value::as_str)
            .and_then(parse_mode);
        let symlink = values
            .get(SYMLINK_KEY)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && is_symlink(mode))
            .map(str::to_string);
        // A link mark without its target cannot be shown as a link.
        let mode = match (mode, &symlink) {
            (Some(m), None) if is_symlink(Some(m)) => None,
            _ => mode,
        };
        Some(PosixAttrs { mode, symlink })
    }
}

/// Parses `posix_mode`: octal digits, file type bits allowed; anything else is ignored.
pub fn parse_mode(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 7 {
        return None;
    }
    let mode = u32::from_str_radix(text, 8).ok()?;
    (mode & !KEPT_BITS == 0).then_some(mode)
}

/// `posix_mode` as written: octal text.
pub fn format_mode(mode: u32) -> String {
    format!("{:o}", mode & KEPT_BITS)
}

/// Whether `mode` is that of a symbolic link.
pub fn is_symlink(mode: Option<u32>) -> bool {
    mode.is_some_and(|m| m & libc::S_IFMT == libc::S_IFLNK)
}

/// The mode a new symbolic link has: every permission, as Linux shows links.
pub const SYMLINK_MODE: u32 = libc::S_IFLNK | 0o777;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(metadata: Option<Value>) -> Item {
        Item {
            kind: "file".into(),
            id: "1".into(),
            metadata,
            ..Item::default()
        }
    }

    #[test]
    fn modes_are_octal_text_with_their_type_bits() {
        assert_eq!(parse_mode("100755"), Some(libc::S_IFREG | 0o755));
        assert_eq!(parse_mode("755"), Some(0o755));
        assert_eq!(parse_mode("120777"), Some(SYMLINK_MODE));
        assert_eq!(format_mode(libc::S_IFREG | 0o4755), "104755");
        for bad in ["", "9", "rwx", "1000000000", "-1", "0x1ed"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_instance_gives_the_mode_and_the_link() {
        assert_eq!(PosixAttrs::of(&with(None)), None, "not asked for");
        assert_eq!(
            PosixAttrs::of(&with(Some(json!({"global": {}})))),
            Some(PosixAttrs::default()),
            "asked for, none there"
        );
        let script = with(Some(json!({"global": {"properties": {
            "$id": "x", "posix_mode": "100755", "other": "kept"
        }}})));
        assert_eq!(
            PosixAttrs::of(&script).unwrap().mode,
            Some(libc::S_IFREG | 0o755)
        );
        let link = with(Some(json!({"global": {"properties": {
            "posix_mode": "120777", "posix_symlink": "../target"
        }}})));
        let link = PosixAttrs::of(&link).unwrap();
        assert_eq!(link.mode, Some(SYMLINK_MODE));
        assert_eq!(link.symlink.as_deref(), Some("../target"));
        // A link mark without a target, or a target without the mark: a plain file.
        let half = with(Some(
            json!({"global": {"properties": {"posix_mode": "120777"}}}),
        ));
        assert_eq!(PosixAttrs::of(&half).unwrap(), PosixAttrs::default());
        let stray = with(Some(json!({"global": {"properties": {
            "posix_mode": "100644", "posix_symlink": "x"
        }}})));
        assert_eq!(PosixAttrs::of(&stray).unwrap().symlink, None);
    }
}
