//! How much pinned content the disk can take: the free space of the filesystem the content
//! cache is on, less what pinning leaves free for everything else (`keep_free`: by default
//! a twentieth of that filesystem, at most 1 GiB).

use std::io;
use std::path::Path;

/// At most this much is kept free by default.
const DEFAULT_KEEP_FREE_MAX: u64 = 1 << 30;

/// The cache's filesystem as pinning sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged user may still write there.
    pub free: u64,
    /// Bytes pinning leaves free.
    pub keep_free: u64,
}

impl Space {
    /// What pinned content may still take, before what pins still have to download.
    pub fn usable(&self) -> u64 {
        self.free.saturating_sub(self.keep_free)
    }
}

/// The space of the filesystem holding `path`; `keep_free` overrides the default margin.
pub fn space_at(path: &Path, keep_free: Option<u64>) -> io::Result<Space> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL"))?;
    // SAFETY: an all-zero statvfs is valid; statvfs fills it for a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    let total = (st.f_blocks as u64).saturating_mul(unit);
    let free = (st.f_bavail as u64).saturating_mul(unit);
    Ok(Space {
        free,
        keep_free: keep_free.unwrap_or_else(|| default_keep_free(total)),
    })
}

/// A twentieth of a filesystem of `total` bytes, at most 1 GiB.
pub fn default_keep_free(total: u64) -> u64 {
    (total / 20).min(DEFAULT_KEEP_FREE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_twentieth_up_to_a_gibibyte() {
        assert_eq!(default_keep_free(100 << 20), 5 << 20);
        assert_eq!(default_keep_free(1 << 40), 1 << 30);
        let here = space_at(Path::new("/"), None).unwrap();
        assert!(here.keep_free <= 1 << 30);
        assert_eq!(space_at(Path::new("/"), Some(7)).unwrap().keep_free, 7);
        assert!(space_at(Path::new("/no/such/dir"), None).is_err());
        let s = Space {
            free: 10,
            keep_free: 20,
        };
        assert_eq!(s.usable(), 0);
    }
}
