//! A file's stored content, [`Blob`]: the pieces it arrived in, kept as they came. An
//! upload session's parts become the file's content without being joined into one buffer,
//! so a chunked upload of N bytes holds N bytes of the emulator's memory, not 2N, and its
//! commit copies nothing. Downloads send the pieces (or the slices of them a range asks for)
//! as they are.

use std::borrow::Cow;
use std::convert::Infallible;

use axum::body::Body;
use bytes::{Bytes, BytesMut};

/// Content as a sequence of shared byte pieces (no empty ones).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob {
    pieces: Vec<Bytes>,
    len: u64,
}

impl Blob {
    /// The content that is `pieces` one after the other.
    pub fn from_pieces(pieces: impl IntoIterator<Item = Bytes>) -> Blob {
        let pieces: Vec<Bytes> = pieces.into_iter().filter(|p| !p.is_empty()).collect();
        let len = pieces.iter().map(|p| p.len() as u64).sum();
        Blob { pieces, len }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// Bytes `start..end` (clamped to the content), as slices of the pieces: nothing copied.
    pub fn slices(&self, start: u64, end: u64) -> Vec<Bytes> {
        let end = end.min(self.len);
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let mut at = 0u64;
        for piece in &self.pieces {
            let (from, to) = (at, at + piece.len() as u64);
            at = to;
            if to <= start {
                continue;
            }
            if from >= end {
                break;
            }
            let a = start.saturating_sub(from) as usize;
            let b = (end.min(to) - from) as usize;
            out.push(piece.slice(a..b));
        }
        out
    }

    /// A response body of bytes `start..end`.
    pub fn body(&self, start: u64, end: u64) -> Body {
        let mut slices = self.slices(start, end);
        match slices.len() {
            0 => Body::empty(),
            1 => Body::from(slices.pop().expect("one slice")),
            _ => Body::from_stream(futures_util::stream::iter(
                slices.into_iter().map(Ok::<_, Infallible>),
            )),
        }
    }

    /// The first `n` bytes (or all, if shorter): borrowed when one piece holds them.
    pub fn prefix(&self, n: usize) -> Cow<'_, [u8]> {
        let n = (n as u64).min(self.len) as usize;
        match self.pieces.first() {
            None => Cow::Borrowed(&[]),
            Some(first) if first.len() >= n => Cow::Borrowed(&first[..n]),
            Some(_) => Cow::Owned(self.slices(0, n as u64).concat()),
        }
    }

    /// The whole content in one buffer (shared, not copied, when it is one piece).
    pub fn to_bytes(&self) -> Bytes {
        match self.pieces.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut buf = BytesMut::with_capacity(self.len as usize);
                for p in many {
                    buf.extend_from_slice(p);
                }
                buf.freeze()
            }
        }
    }
}

impl From<Bytes> for Blob {
    fn from(b: Bytes) -> Blob {
        Blob::from_pieces([b])
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Blob {
        Blob::from(Bytes::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Blob {
        Blob::from_pieces([
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"hi"),
        ])
    }

    #[test]
    fn slices_cross_pieces_and_clamp_to_the_end() {
        let b = three();
        assert_eq!(b.len(), 9);
        assert_eq!(b.pieces().len(), 3, "empty pieces are dropped");
        assert_eq!(b.slices(0, 9).concat(), b"abcdefghi");
        assert_eq!(b.slices(2, 8).concat(), b"cdefgh");
        assert_eq!(b.slices(3, 7), vec![Bytes::from_static(b"defg")]);
        assert_eq!(b.slices(5, 100).concat(), b"fghi");
        assert!(b.slices(9, 12).is_empty());
        assert!(b.slices(4, 4).is_empty());
    }

    #[test]
    fn prefix_borrows_within_the_first_piece_and_joins_beyond_it() {
        let b = three();
        assert!(matches!(b.prefix(2), Cow::Borrowed(b"ab")));
        assert_eq!(&*b.prefix(5), b"abcde");
        assert_eq!(&*b.prefix(50), b"abcdefghi");
        assert_eq!(&*Blob::default().prefix(5), b"");
    }

    #[test]
    fn to_bytes_shares_a_single_piece_and_joins_several() {
        let one = Bytes::from_static(b"only");
        assert_eq!(Blob::from(one.clone()).to_bytes().as_ptr(), one.as_ptr());
        assert_eq!(three().to_bytes(), Bytes::from_static(b"abcdefghi"));
        assert_eq!(Blob::default().to_bytes(), Bytes::new());
    }

    #[tokio::test]
    async fn a_body_of_several_slices_carries_exactly_the_range() {
        use http_body_util::BodyExt;
        let got = three().body(1, 8).collect().await.expect("body").to_bytes();
        assert_eq!(got, Bytes::from_static(b"bcdefgh"));
        let empty = three().body(9, 9).collect().await.expect("body").to_bytes();
        assert!(empty.is_empty());
    }
}
