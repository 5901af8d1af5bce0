//! Per-query memory accounting. Every part of a query that holds memory in proportion to the data (a share's
//! group table and aggregate states, buffered rows, merged groups, a join's build side) holds a
//! [`Reservation`] of the query's [`MemoryBudget`] and resizes it as it grows; a reservation that would take the
//! query past its limit ends the query with [`QueryError::MemoryLimit`], naming what was being built.
//!
//! Sizes are estimates from container capacities (hash table buckets, vector capacities, string bytes), not an
//! allocator hook: close enough to stop a runaway GROUP BY or COUNT(DISTINCT) long before the process runs out
//! of memory, cheap enough to keep on. Column blocks read from segments are not counted: they live in the
//! shared block cache, which has its own bound (`block_cache_bytes`).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{QueryError, Result};

/// The default per-query limit: 4 GiB.
pub const DEFAULT_LIMIT: usize = 4 << 30;

/// One query's memory: a limit (0: none), the bytes reserved now and the most reserved at once.
#[derive(Debug, Default)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            limit,
            ..Default::default()
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes reserved at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// An empty reservation for `what` (named in the error when it outgrows the limit).
    pub fn reserve(&self, what: &'static str) -> Reservation<'_> {
        Reservation {
            budget: self,
            bytes: 0,
            what,
        }
    }

    fn grow(&self, delta: usize, what: &str) -> Result<()> {
        let now = self.used.fetch_add(delta, Ordering::Relaxed) + delta;
        if self.limit > 0 && now > self.limit {
            self.used.fetch_sub(delta, Ordering::Relaxed);
            return Err(QueryError::MemoryLimit {
                limit: self.limit,
                needed: now,
                what: what.to_string(),
            });
        }
        self.peak.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    fn shrink(&self, delta: usize) {
        self.used.fetch_sub(delta, Ordering::Relaxed);
    }
}

/// Bytes one part of a query holds; given back when dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    budget: &'a MemoryBudget,
    bytes: usize,
    what: &'static str,
}

impl Reservation<'_> {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sets the reservation to `bytes`: an error (and the reservation unchanged) when growing it would take the
    /// query past its limit.
    pub fn resize(&mut self, bytes: usize) -> Result<()> {
        if bytes > self.bytes {
            self.budget.grow(bytes - self.bytes, self.what)?;
        } else {
            self.budget.shrink(self.bytes - bytes);
        }
        self.bytes = bytes;
        Ok(())
    }

    /// Grows the reservation by `bytes`.
    pub fn add(&mut self, bytes: usize) -> Result<()> {
        self.resize(self.bytes.saturating_add(bytes))
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.shrink(self.bytes);
    }
}

/// Heap bytes of a hash table with `capacity` buckets of `entry` bytes (hashbrown: one control byte each).
pub fn table_bytes(capacity: usize, entry: usize) -> usize {
    capacity.saturating_mul(entry + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reservations_add_up_fail_past_the_limit_and_give_back_on_drop() {
        let b = MemoryBudget::new(1000);
        let mut a = b.reserve("groups");
        a.resize(600).unwrap();
        {
            let mut c = b.reserve("rows");
            c.resize(300).unwrap();
            assert_eq!(b.used(), 900);
            let err = c.resize(500).unwrap_err();
            assert!(
                matches!(&err, QueryError::MemoryLimit { limit: 1000, needed: 1100, what } if what == "rows"),
                "{err}"
            );
            assert_eq!(c.bytes(), 300, "a failed resize changes nothing");
        }
        assert_eq!(b.used(), 600, "dropped reservations give their bytes back");
        a.resize(100).unwrap();
        assert_eq!(b.used(), 100);
        assert_eq!(b.peak(), 900);
        let unlimited = MemoryBudget::new(0);
        unlimited.reserve("x").resize(usize::MAX / 2).unwrap();
        assert_eq!(unlimited.used(), 0);
    }
}
