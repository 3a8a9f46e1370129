//! The on-disk form of one content-cache chunk, and the files and directories of the cache
//! created private to their user.
//!
//! A chunk file is the chunk's bytes followed by an 8-byte trailer: the XXH3-64 hash of those
//! bytes, little-endian. The hash is recorded when the chunk is written and checked on every
//! read, so bit rot, a torn write that reached the disk only in part, or a file changed by
//! anything else reads as "absent" rather than as content. XXH3 is not cryptographic: it
//! detects accidents (at tens of GB/s, far cheaper than the disk read it guards), while the
//! file's SHA-1 from Box checks whole files (see `content_cache`).
//!
//! Everything here is created owner-only whatever the umask: directories 0700, files 0600.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

/// Bytes the trailer adds to a chunk file.
pub const TRAILER_LEN: u64 = 8;

/// Why a chunk file's content was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The file has `found` bytes where the chunk and its trailer need `expected`.
    Length { found: u64, expected: u64 },
    /// The bytes do not hash to the recorded value.
    Checksum,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Length { found, expected } => {
                write!(f, "has {found} bytes, expected {expected}")
            }
            Damage::Checksum => write!(f, "fails its checksum"),
        }
    }
}

/// The length on disk of a chunk of `chunk_len` bytes.
pub fn file_len(chunk_len: u64) -> u64 {
    chunk_len + TRAILER_LEN
}

/// The trailer for `data`.
pub fn trailer(data: &[u8]) -> [u8; TRAILER_LEN as usize] {
    xxh3_64(data).to_le_bytes()
}

/// The chunk held in `file` (a whole chunk file as read from disk), if it has `chunk_len`
/// bytes and its hash matches. The chunk is `file` without its trailer (no copy).
pub fn decode(mut file: Vec<u8>, chunk_len: u64) -> Result<Vec<u8>, Damage> {
    let expected = file_len(chunk_len);
    if file.len() as u64 != expected {
        return Err(Damage::Length {
            found: file.len() as u64,
            expected,
        });
    }
    let (data, recorded) = file.split_at(chunk_len as usize);
    if trailer(data) != recorded {
        return Err(Damage::Checksum);
    }
    file.truncate(chunk_len as usize);
    Ok(file)
}

/// Creates `dir` and its missing parents 0700, and makes `dir` itself 0700 if it existed.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    create_private_dirs(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Creates `dir` and its missing parents 0700 (an existing directory keeps its mode).
pub fn create_private_dirs(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates a new file `path` (never an existing one, never through a symlink), 0600, and
/// writes `parts` into it one after the other.
pub fn write_new_private(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(data: &[u8]) -> Vec<u8> {
        let mut file = data.to_vec();
        file.extend_from_slice(&trailer(data));
        file
    }

    #[test]
    fn a_chunk_round_trips() {
        let data: Vec<u8> = (0..100u8).collect();
        assert_eq!(decode(encoded(&data), 100).unwrap(), data);
        assert_eq!(decode(encoded(&[]), 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let data: Vec<u8> = (0..64u8).collect();
        let good = encoded(&data);
        for byte in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[byte] ^= 1 << bit;
                assert_eq!(
                    decode(bad, 64),
                    Err(Damage::Checksum),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn a_short_or_long_file_is_caught() {
        let data = vec![7u8; 32];
        let mut file = encoded(&data);
        assert_eq!(
            decode(file[..20].to_vec(), 32),
            Err(Damage::Length {
                found: 20,
                expected: 40
            })
        );
        // A chunk written before trailers existed: right data, no trailer.
        assert!(decode(data.clone(), 32).is_err());
        file.push(0);
        assert!(decode(file, 32).is_err());
    }

    #[test]
    fn files_and_directories_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        write_new_private(&file, &[b"ab", b"cd"]).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"abcd");
        assert_eq!(mode(&file), 0o600);
        // Never over an existing file, nor through a planted link.
        assert!(write_new_private(&file, &[b"x"]).is_err());
        std::os::unix::fs::symlink(&file, dir.join("link")).unwrap();
        assert!(write_new_private(&dir.join("link"), &[b"x"]).is_err());
        assert_eq!(fs::read(&file).unwrap(), b"abcd");
    }
}
