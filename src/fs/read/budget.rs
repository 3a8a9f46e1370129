//! The read budget of the whole mount: how much memory read-ahead and fetched parts may hold,
//! and how many ranged GETs may be in flight, across all open files together.
//!
//! Each open file's reader has its own limits (its read-ahead window, `max_parallel`), which
//! alone let ten files read at once hold ten windows and open ten times the connections. The
//! budget is shared fairly instead: every reader that holds parts or is fetching (an *active*
//! reader) gets an equal share of the memory and of the connections, never less than one part
//! and one connection, so a single stream still reads at full speed and many streams slow each
//! other down evenly instead of running the daemon out of memory. Shares follow the number of
//! active readers: a reader that starts makes the others shrink at their next read, and one that
//! is closed (or holds nothing any more) gives its share back.
//!
//! A read never waits for the budget: the bytes a read asks for are fetched whatever the
//! shares say, and only what is fetched *ahead* of need is bounded by them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The budget's bounds. Sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudgetConfig {
    /// Memory for parts in memory and being fetched, all open files together.
    pub memory: u64,
    /// Ranged GETs in flight, all open files together.
    pub connections: usize,
}

impl Default for ReadBudgetConfig {
    fn default() -> Self {
        // Three streams at their full 64 MiB window (plus backlog and parts in flight) before
        // shares shrink; 32 GETs is four streams at their full parallelism.
        ReadBudgetConfig {
            memory: 256 << 20,
            connections: 32,
        }
    }
}

/// The mount's read budget; readers take a [`ReadShare`] of it.
#[derive(Debug)]
pub struct ReadBudget {
    cfg: ReadBudgetConfig,
    /// Readers holding parts or fetching.
    active: AtomicUsize,
    /// Bytes of parts the readers hold or are fetching, as they last reported.
    held: AtomicU64,
    /// Ranged GETs in flight.
    in_flight: AtomicU64,
}

/// What `boxfs status` shows of the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadBudgetStatus {
    pub memory_limit: u64,
    pub connection_limit: u64,
    pub active_readers: u64,
    pub memory_held: u64,
    pub requests_in_flight: u64,
}

impl ReadBudget {
    pub fn new(cfg: ReadBudgetConfig) -> Arc<ReadBudget> {
        Arc::new(ReadBudget {
            cfg: ReadBudgetConfig {
                memory: cfg.memory.max(1),
                connections: cfg.connections.max(1),
            },
            active: AtomicUsize::new(0),
            held: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        })
    }

    /// A share for one reader (inactive until it holds or fetches something).
    pub fn share(self: &Arc<Self>) -> ReadShare {
        ReadShare {
            budget: self.clone(),
            active: AtomicBool::new(false),
            held: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> ReadBudgetConfig {
        self.cfg
    }

    pub fn status(&self) -> ReadBudgetStatus {
        ReadBudgetStatus {
            memory_limit: self.cfg.memory,
            connection_limit: self.cfg.connections as u64,
            active_readers: self.active.load(Ordering::Relaxed) as u64,
            memory_held: self.held.load(Ordering::Relaxed),
            requests_in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Readers sharing the budget, counting the one asking even before it is active.
    fn sharers(&self, asking_is_active: bool) -> u64 {
        let active = self.active.load(Ordering::Relaxed) as u64;
        if asking_is_active {
            active.max(1)
        } else {
            active + 1
        }
    }
}

/// One reader's part of the [`ReadBudget`]. Dropping it gives the share back.
#[derive(Debug)]
pub struct ReadShare {
    budget: Arc<ReadBudget>,
    active: AtomicBool,
    /// What this reader last reported holding.
    held: AtomicU64,
}

impl ReadShare {
    /// The memory this reader may hold: an equal part of the budget.
    pub fn memory(&self) -> u64 {
        let sharers = self.budget.sharers(self.active.load(Ordering::Relaxed));
        self.budget.cfg.memory / sharers
    }

    /// The ranged GETs this reader may have in flight: an equal part, at least one.
    pub fn connections(&self) -> usize {
        let sharers = self.budget.sharers(self.active.load(Ordering::Relaxed));
        (self.budget.cfg.connections as u64 / sharers).max(1) as usize
    }

    /// Reports what the reader holds now (parts in memory and being fetched, in bytes); a
    /// reader holding nothing stops counting as active.
    pub fn report(&self, held: u64) {
        let before = self.held.swap(held, Ordering::Relaxed);
        if held >= before {
            self.budget.held.fetch_add(held - before, Ordering::Relaxed);
        } else {
            self.budget.held.fetch_sub(before - held, Ordering::Relaxed);
        }
        let active = held > 0;
        if self.active.swap(active, Ordering::Relaxed) != active {
            if active {
                self.budget.active.fetch_add(1, Ordering::Relaxed);
            } else {
                self.budget.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one ranged GET in flight until the guard is dropped.
    pub fn request(&self) -> InFlightRequest<'_> {
        self.budget.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightRequest(&self.budget)
    }
}

impl Drop for ReadShare {
    fn drop(&mut self) {
        self.report(0);
    }
}

/// A ranged GET counted in the budget's figures.
pub struct InFlightRequest<'a>(&'a ReadBudget);

impl Drop for InFlightRequest<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(memory: u64, connections: usize) -> Arc<ReadBudget> {
        ReadBudget::new(ReadBudgetConfig {
            memory,
            connections,
        })
    }

    #[test]
    fn shares_split_evenly_between_active_readers_and_come_back() {
        let b = budget(300, 9);
        let one = b.share();
        assert_eq!((one.memory(), one.connections()), (300, 9), "alone");
        one.report(10);
        let two = b.share();
        // Asking before holding anything: it counts itself.
        assert_eq!((two.memory(), two.connections()), (150, 4));
        two.report(10);
        let three = b.share();
        three.report(10);
        assert_eq!((one.memory(), one.connections()), (100, 3));
        assert_eq!(b.status().active_readers, 3);
        assert_eq!(b.status().memory_held, 30);
        drop(three);
        two.report(0);
        assert_eq!(
            (one.memory(), one.connections()),
            (300, 9),
            "the others gave back"
        );
        assert_eq!(b.status().memory_held, 10);
        drop(one);
        drop(two);
        assert_eq!(
            b.status(),
            ReadBudgetStatus {
                memory_limit: 300,
                connection_limit: 9,
                ..ReadBudgetStatus::default()
            }
        );
    }

    #[test]
    fn a_share_is_never_less_than_one_connection() {
        let b = budget(100, 2);
        let shares: Vec<ReadShare> = (0..5).map(|_| b.share()).collect();
        for s in &shares {
            s.report(1);
        }
        assert!(shares
            .iter()
            .all(|s| s.connections() == 1 && s.memory() == 20));
    }

    #[test]
    fn requests_in_flight_are_counted_while_they_run() {
        let b = budget(100, 2);
        let s = b.share();
        let r1 = s.request();
        let r2 = s.request();
        assert_eq!(b.status().requests_in_flight, 2);
        drop(r1);
        drop(r2);
        assert_eq!(b.status().requests_in_flight, 0);
    }
}
