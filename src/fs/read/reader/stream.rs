//! Access detection: the stream a reader follows (where reading is expected to continue),
//! whether it is sequential, and how far ahead it is read.

use super::*;

/// Where reading is expected to continue, and how far ahead it is being fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stream {
    /// Where the stream began.
    pub(super) start: u64,
    /// The end of its furthest read.
    pub(super) next: u64,
    /// Bytes its reads asked for (repeated reads count again).
    pub(super) bytes: u64,
    /// Its reads that went past `next`.
    pub(super) advances: u32,
    pub(super) window: u64,
    /// The end of the read-ahead scheduled.
    pub(super) ahead_to: u64,
    /// As of the latest read.
    pub(super) sequential: bool,
}

impl Stream {
    pub(super) fn new(window: u64) -> Stream {
        Stream {
            start: 0,
            next: 0,
            bytes: 0,
            advances: 0,
            window,
            ahead_to: 0,
            sequential: false,
        }
    }

    /// Follows the read `offset..end`. Returns whether it left the stream (a seek): read-ahead
    /// nobody waits for is useless then.
    pub(super) fn observe(&mut self, offset: u64, end: u64, cfg: &ReadConfig) -> bool {
        let behind = cfg.backlog.max(cfg.reorder_distance);
        let ahead = self
            .next
            .saturating_add(cfg.reorder_distance)
            .max(self.ahead_to);
        let continues =
            self.advances > 0 && offset.saturating_add(behind) >= self.next && offset <= ahead;
        if !continues {
            let seek = self.advances > 0;
            *self = Stream {
                start: offset,
                next: end,
                bytes: end - offset,
                advances: 1,
                window: cfg.initial_window,
                ahead_to: end,
                sequential: false,
            };
            return seek;
        }
        if end > self.next {
            self.advances = self.advances.saturating_add(1);
            self.next = end;
        }
        self.start = self.start.min(offset);
        self.bytes = self.bytes.saturating_add(end - offset);
        // Reads that skip ahead (a scan picking records here and there) are not sequential
        // however regular they are: they would read ahead mostly bytes nobody wants.
        let dense = self.bytes.saturating_mul(2) >= self.next - self.start;
        self.sequential = self.advances >= 2 && dense;
        false
    }

    /// Where read-ahead should now reach, when it needs extending after a read ending at
    /// `end`: a window past the read, once at least one step of it was consumed. Doubles the
    /// window for the next time.
    pub(super) fn read_ahead_to(
        &mut self,
        end: u64,
        size: u64,
        part_size: u64,
        align: u64,
        max_window: u64,
    ) -> Option<u64> {
        if self.ahead_to >= size {
            return None;
        }
        let step = part_size.min(self.window / 2).max(1);
        if self.ahead_to.saturating_add(step) >= end.saturating_add(self.window) {
            return None;
        }
        let unit = if self.window >= part_size {
            part_size
        } else {
            align
        };
        let target = round_up(end.saturating_add(self.window), unit).min(size);
        self.ahead_to = self.ahead_to.max(target);
        self.window = self.window.saturating_mul(2).min(max_window);
        Some(target)
    }
}
