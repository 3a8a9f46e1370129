//! What a reader holds: its parts (non-overlapping byte ranges, each being fetched or in
//! memory), the holes between them, and slicing the bytes of a range out of their buffers.

use super::*;

pub(super) struct State {
    /// Parts by start offset; they never overlap.
    pub(super) parts: BTreeMap<u64, Part>,
    pub(super) stream: Stream,
    pub(super) next_id: u64,
    /// Counts reads, for least-recently-used eviction.
    pub(super) tick: u64,
    /// Ranged GETs holding a connection slot (at most `max_parallel`).
    pub(super) running: usize,
    /// GETs waiting for a slot by `(offset, id)`: the lowest offset goes first, because the
    /// reader needs the bytes in order (tokio's semaphore would serve them in the order the
    /// tasks happened to run, and a sequential reader would wait for its next part while
    /// later ones download).
    pub(super) queued: BTreeMap<(u64, u64), oneshot::Sender<()>>,
}

impl State {
    /// The parts overlapping `a..b`, in order.
    pub(super) fn overlapping(&self, a: u64, b: u64) -> impl Iterator<Item = (&u64, &Part)> {
        let first = self.first_overlapping(a);
        self.parts.range(first..b.max(first))
    }

    pub(super) fn overlapping_mut(
        &mut self,
        a: u64,
        b: u64,
    ) -> impl Iterator<Item = (&u64, &mut Part)> {
        let first = self.first_overlapping(a);
        self.parts.range_mut(first..b.max(first))
    }

    pub(super) fn first_overlapping(&self, a: u64) -> u64 {
        match self.parts.range(..=a).next_back() {
            Some((&start, part)) if part.end > a => start,
            _ => a,
        }
    }

    /// The holes in `a..b` no part covers.
    pub(super) fn holes(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let mut holes = Vec::new();
        let mut pos = a;
        for (&start, part) in self.overlapping(a, b) {
            if start > pos {
                holes.push((pos, start));
            }
            pos = pos.max(part.end);
        }
        if pos < b {
            holes.push((pos, b));
        }
        holes
    }

    /// Slices of `a..b` if parts in memory cover all of it.
    pub(super) fn in_memory(&self, a: u64, b: u64) -> Option<Vec<Bytes>> {
        let mut out = Vec::new();
        let mut pos = a;
        for (&start, part) in self.overlapping(a, b) {
            if start > pos {
                return None;
            }
            let upto = part.end.min(b);
            part.data.as_ref()?.slices(pos, upto, &mut out);
            pos = upto;
        }
        (pos >= b).then_some(out)
    }

    pub(super) fn buffered(&self) -> u64 {
        self.parts.iter().map(|(start, p)| p.end - start).sum()
    }
}

pub(super) struct Part {
    pub(super) end: u64,
    /// Tells a part from the one that replaced it at the same offset.
    pub(super) id: u64,
    /// Set once fetched.
    pub(super) data: Option<Arc<PartData>>,
    pub(super) done: watch::Receiver<Outcome>,
    /// Scheduled ahead of need and not wanted by any read yet: cancelled on a seek.
    pub(super) read_ahead: bool,
    pub(super) last_use: u64,
    pub(super) task: Option<AbortHandle>,
}

#[derive(Clone)]
pub(super) enum Outcome {
    Pending,
    Ready(Arc<PartData>),
    Failed(FsError),
}

/// The bytes of a part, as the pieces they arrived in (cached chunks, network responses).
pub(super) struct PartData {
    /// `(offset in the file, bytes)`, contiguous and in order.
    pub(super) pieces: Vec<(u64, Bytes)>,
    /// The ranges that came from the network (the others came from the cache).
    pub(super) fetched: Vec<(u64, u64)>,
}

impl PartData {
    /// Appends slices of `a..b` (inside this part) to `out`, without copying.
    pub(super) fn slices(&self, a: u64, b: u64, out: &mut Vec<Bytes>) {
        let first = self
            .pieces
            .partition_point(|(start, data)| start + data.len() as u64 <= a);
        for (start, data) in &self.pieces[first..] {
            if *start >= b {
                break;
            }
            let from = a.max(*start) - start;
            let to = b.min(start + data.len() as u64) - start;
            out.push(data.slice(from as usize..to as usize));
        }
    }
}

/// One slice or a copy of several.
pub(super) fn join(slices: Vec<Bytes>) -> Bytes {
    if slices.len() == 1 {
        return slices.into_iter().next().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(slices.iter().map(Bytes::len).sum());
    for s in &slices {
        out.extend_from_slice(s);
    }
    out.freeze()
}
