//! Names: which names Box gives that a Linux directory entry can carry, and the
//! case-insensitive key under which a folder indexes its children.

use super::InodeError;

/// The longest name Box gives an item, in characters.
pub const NAME_MAX_CHARS: usize = 255;

/// The longest name a directory entry may have here, in bytes: Box's 255 characters of up
/// to four bytes each. FUSE carries names of up to 1,024 bytes, so a Japanese or Greek name
/// that Box accepts shows even when it is longer than ext4's 255 bytes. (`statfs` still
/// says 255 as `name_max`: the bound tools keep the names they make up within, and one Box
/// takes whatever the characters.)
pub const NAME_MAX_BYTES: usize = 4 * NAME_MAX_CHARS;

/// Whether a name Box gave can be a directory entry. A server can send names that Linux
/// cannot show: one containing `/` or NUL, `.` and `..`, and names longer than Box's 255
/// characters (which a kernel would refuse past 1,024 bytes, failing the whole listing). Such an
/// item is left out of the mount (the listing skips it with a warning, an event about it is
/// ignored) rather than shown under a made-up name: a made-up name could collide with a real
/// one, and writes through it would have to be mapped back. The rest of the folder lists.
pub fn check_box_name(name: &str) -> Result<(), InodeError> {
    if name.is_empty() {
        return Err(InodeError::EmptyName);
    }
    if name == "."
        || name == ".."
        || name.len() > NAME_MAX_BYTES
        || name.chars().count() > NAME_MAX_CHARS
        || name.bytes().any(|b| b == b'/' || b == 0)
    {
        return Err(InodeError::UnusableName(name.into()));
    }
    Ok(())
}

/// The children-index key of a name: Box compares names case-insensitively.
pub(super) fn fold(name: &str) -> Box<str> {
    if name.chars().any(char::is_uppercase) {
        name.to_lowercase().into_boxed_str()
    } else {
        name.into()
    }
}
