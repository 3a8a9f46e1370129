//! Planning a read: the parts that cover it (new ones for its holes, read-ahead for a
//! sequential stream), waiting for them, and what a reader lets go of (read-ahead nobody
//! waits for, parts beyond its memory).

use super::*;

/// What a read waits for: a part of `start..end`, in memory or on its way.
pub(super) struct Wanted {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) slot: Slot,
}

pub(super) enum Slot {
    Ready(Arc<PartData>),
    Pending(watch::Receiver<Outcome>),
}

pub(super) enum Failure {
    Failed(FsError),
    /// The part's task ended without an outcome.
    Cancelled,
}

/// Waits for the parts and answers `offset..end` from them.
pub(super) async fn collect(wanted: Vec<Wanted>, offset: u64, end: u64) -> Result<Bytes, Failure> {
    let mut slices = Vec::with_capacity(wanted.len());
    for w in wanted {
        let data = match w.slot {
            Slot::Ready(data) => data,
            Slot::Pending(mut done) => {
                let outcome = done
                    .wait_for(|o| !matches!(o, Outcome::Pending))
                    .await
                    .map_err(|_| Failure::Cancelled)?
                    .clone();
                match outcome {
                    Outcome::Ready(data) => data,
                    Outcome::Failed(e) => return Err(Failure::Failed(e)),
                    Outcome::Pending => return Err(Failure::Cancelled),
                }
            }
        };
        data.slices(offset.max(w.start), end.min(w.end), &mut slices);
    }
    Ok(join(slices))
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a few assignments; it stays usable after a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Under the lock: notes the access, schedules the parts `offset..end` (and read-ahead)
    /// needs, and returns what the read must wait for.
    pub(super) fn plan(self: &Arc<Self>, offset: u64, end: u64) -> Vec<Wanted> {
        let cfg = &self.cfg;
        let size = self.file.size;
        let mut guard = self.lock();
        let st = &mut *guard;
        st.tick += 1;
        let tick = st.tick;
        let cancelled = if st.stream.observe(offset, end, cfg) {
            self.take_read_ahead(st)
        } else {
            Vec::new()
        };
        let (fill_from, fill_to, unit) = if st.stream.sequential {
            // A quarter of the window per GET while the window is small, so that the first
            // read-ahead is fetched over several connections too; but no GET under 1 MiB,
            // where the latency of a request costs more than its transfer.
            let smallest = round_up(MIN_SPLIT_PART.min(cfg.part_size), self.seq_align);
            let unit = round_down(st.stream.window / 4, self.seq_align)
                .clamp(smallest, cfg.part_size.max(smallest));
            // From the furthest read: a late one (the kernel's reorderings) is behind it.
            let from = st.stream.next.max(end);
            let max_window = self.max_window();
            st.stream.window = st.stream.window.min(max_window);
            let to = st
                .stream
                .read_ahead_to(from, size, cfg.part_size, self.seq_align, max_window)
                .unwrap_or(end)
                .max(end);
            (
                round_down(offset, self.seq_align),
                round_up(to, self.seq_align).min(size),
                unit,
            )
        } else {
            (
                round_down(offset, cfg.random_align),
                round_up(end, cfg.random_align).min(size),
                cfg.part_size,
            )
        };
        for (a, b) in st.holes(fill_from, fill_to) {
            let mut p = a;
            while p < b {
                let q = round_up(p + 1, unit)
                    .min(round_up(p + 1, cfg.part_size))
                    .min(b);
                let read_ahead = q <= offset || p >= end;
                self.spawn_part(st, p, q, read_ahead);
                p = q;
            }
        }
        let mut wanted = Vec::new();
        for (&start, part) in st.overlapping_mut(offset, end) {
            part.read_ahead = false;
            part.last_use = tick;
            let slot = match &part.data {
                Some(data) => Slot::Ready(data.clone()),
                None => Slot::Pending(part.done.clone()),
            };
            wanted.push(Wanted {
                start,
                end: part.end,
                slot,
            });
        }
        self.evict(st, offset, end);
        self.admit_queued(st);
        self.report(st);
        drop(guard);
        for task in cancelled {
            task.abort();
        }
        wanted
    }

    /// The read-ahead window's bound: the configured one, within the reader's share of the
    /// budget (less one part, so that what is being read fits too), at least one part.
    pub(super) fn max_window(&self) -> u64 {
        let cfg = &self.cfg;
        match &self.share {
            Some(share) => cfg
                .max_window
                .min(share.memory().saturating_sub(cfg.part_size))
                .max(cfg.part_size),
            None => cfg.max_window,
        }
    }

    /// GETs this reader may have in flight now.
    pub(super) fn max_parallel(&self) -> usize {
        match &self.share {
            Some(share) => self.cfg.max_parallel.min(share.connections()),
            None => self.cfg.max_parallel,
        }
    }

    /// Tells the budget what the reader holds.
    pub(super) fn report(&self, st: &State) {
        if let Some(share) = &self.share {
            share.report(st.buffered());
        }
    }

    /// Starts queued GETs while the reader's share of connections allows (it grows when other
    /// readers stop).
    pub(super) fn admit_queued(&self, st: &mut State) {
        while st.running < self.max_parallel() {
            let Some((_, next)) = st.queued.pop_first() else {
                return;
            };
            if next.send(()).is_ok() {
                st.running += 1;
            }
        }
    }

    pub(super) fn spawn_part(
        self: &Arc<Self>,
        st: &mut State,
        start: u64,
        end: u64,
        read_ahead: bool,
    ) {
        let id = st.next_id;
        st.next_id += 1;
        let (tx, rx) = watch::channel(Outcome::Pending);
        let inner = self.clone();
        let task = tokio::spawn(async move {
            let result = inner.load(start, end).await;
            inner.finish(start, end, id, result, tx);
        });
        st.parts.insert(
            start,
            Part {
                end,
                id,
                data: None,
                done: rx,
                read_ahead,
                last_use: st.tick,
                task: Some(task.abort_handle()),
            },
        );
        bump(&self.counters.parts, 1);
        if read_ahead {
            bump(&self.counters.read_ahead_parts, 1);
        }
    }

    /// After a seek: read-ahead still being fetched that no read waits for is useless.
    /// Removes it and returns its tasks, to be aborted once the lock is released.
    pub(super) fn take_read_ahead(&self, st: &mut State) -> Vec<AbortHandle> {
        let doomed: Vec<u64> = st
            .parts
            .iter()
            .filter(|(_, p)| p.read_ahead && p.data.is_none())
            .map(|(&start, _)| start)
            .collect();
        bump(&self.counters.cancelled_parts, doomed.len() as u64);
        doomed
            .into_iter()
            .filter_map(|start| st.parts.remove(&start).and_then(|p| p.task))
            .collect()
    }

    /// Drops parts in memory that fell behind a sequential stream's backlog (random readers
    /// come back anywhere), then the least recently used ones
    /// while the reader holds more than its budget. Never the parts of `keep_a..keep_b`, nor
    /// parts being fetched.
    pub(super) fn evict(&self, st: &mut State, keep_a: u64, keep_b: u64) {
        let cfg = &self.cfg;
        let behind = if st.stream.sequential {
            st.stream
                .next
                .saturating_sub(cfg.backlog.max(cfg.reorder_distance))
        } else {
            0
        };
        let mut budget = cfg
            .max_window
            .saturating_add(cfg.part_size.saturating_mul(2))
            .saturating_add(cfg.backlog);
        if let Some(share) = &self.share {
            // Within the share, but never below the window and the part being read.
            budget = budget.min(
                share
                    .memory()
                    .max(self.max_window().saturating_add(cfg.part_size)),
            );
        }
        let mut total = st.buffered();
        let mut candidates: Vec<(u64, u64, u64)> = st
            .parts
            .iter()
            .filter(|(&start, p)| p.data.is_some() && (p.end <= keep_a || start >= keep_b))
            .map(|(&start, p)| (p.last_use, start, p.end))
            .collect();
        candidates.retain(|&(_, start, end)| {
            if end <= behind {
                st.parts.remove(&start);
                total -= end - start;
                false
            } else {
                true
            }
        });
        if total <= budget {
            return;
        }
        candidates.sort_unstable();
        for (_, start, end) in candidates {
            if total <= budget {
                break;
            }
            st.parts.remove(&start);
            total -= end - start;
        }
    }
}
