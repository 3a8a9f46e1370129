//! A reader's connections: at most `max_parallel` ranged GETs in flight (its share of the
//! mount's budget), queued by offset so the lowest is served first, and the count of GETs
//! in flight for the figures.

use super::*;

impl Inner {
    /// Waits for one of the reader's `max_parallel` connection slots; the GET at the lowest
    /// offset is served first.
    pub(super) async fn connection(&self, start: u64) -> ConnectionSlot<'_> {
        let waiting = {
            let mut st = self.lock();
            if st.running < self.max_parallel() {
                st.running += 1;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                let id = st.next_id;
                st.next_id += 1;
                st.queued.insert((start, id), tx);
                Some(rx)
            }
        };
        let mut slot = ConnectionSlot {
            inner: self,
            waiting,
        };
        if let Some(rx) = &mut slot.waiting {
            // The sender goes only with the reader, which aborts this task first.
            let _ = rx.await;
            slot.waiting = None;
        }
        slot
    }

    /// Hands a finished GET's slot to the lowest queued one, or frees it.
    pub(super) fn release_connection(&self) {
        let mut st = self.lock();
        // The reader's share shrank (more readers): the slot goes back instead.
        while st.running <= self.max_parallel() {
            let Some((_, next)) = st.queued.pop_first() else {
                break;
            };
            if next.send(()).is_ok() {
                return;
            }
            // That GET was cancelled while it waited.
        }
        st.running = st.running.saturating_sub(1);
    }
}

/// A connection slot, held (or waited for) by one ranged GET.
pub(super) struct ConnectionSlot<'a> {
    pub(super) inner: &'a Inner,
    /// Still queued.
    pub(super) waiting: Option<oneshot::Receiver<()>>,
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        let granted = match self.waiting.as_mut() {
            None => true,
            // Cancelled while queued: the slot may have been handed over meanwhile.
            Some(rx) => rx.try_recv().is_ok(),
        };
        if granted {
            self.inner.release_connection();
        }
    }
}

/// Counts a ranged GET in flight while it lives.
pub(super) struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    pub(super) fn enter(counters: &'a Counters) -> InFlight<'a> {
        let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        counters.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
