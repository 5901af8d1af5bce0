//! The result cache: the partial aggregates of one segment for one query shape, kept across queries. Segments are
//! immutable, so an entry never goes stale; the real-time index is never cached (its rows change), so a
//! dashboard refresh over a live table pays only for the newest rows.
//!
//! An entry is keyed by the segment (table and id) and a fingerprint of what decides a segment's partials: the
//! filter, the GROUP BY keys and the aggregate calls, bound (parameters and `now()` already resolved to
//! constants). Before the fingerprint is taken, each conjunct of the filter that bounds only the time column and
//! holds for the segment's whole time range is dropped: a panel over "the last 24 hours" keeps hitting for every
//! segment wholly inside the window while `now()` moves on; only the segment at the window's edge is scanned
//! again. ORDER BY, LIMIT, HAVING and the output expressions apply after the merge and do not take part, so
//! panels that differ only there share entries.
//!
//! Entries hold the shares' partials as the scan produced them, so a merge over cached and fresh partials adds
//! the same values in the same order as one without the cache (float sums included). Eviction is by bytes
//! (`quick_cache`, weighted by each entry's estimated heap size); an entry above a quarter of the bound is not
//! kept.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use basalt_segment::SegmentSource;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use super::filter::{split_and, time_bounds, FilterPlan};
use super::prune::time_range;
use crate::aggregate::Partial;
use crate::plan::SelectPlan;

/// The cached partials of one segment (its shares' partials, in share order).
pub(crate) struct Entry {
    pub partials: Vec<Partial>,
    /// Their estimated heap bytes.
    pub bytes: u64,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Arc<Entry>> for ByBytes {
    fn weight(&self, key: &String, val: &Arc<Entry>) -> u64 {
        (val.bytes + key.len() as u64).max(1)
    }
}

/// Per-segment partial results shared by the queries of one server, bounded in bytes.
pub struct ResultCache {
    entries: Cache<String, Arc<Entry>, ByBytes>,
    capacity: u64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What the cache holds and how it did, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub bytes: u64,
    pub capacity: u64,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl ResultCache {
    /// A cache of at most `capacity` bytes (estimated heap bytes of the partials).
    pub fn new(capacity: u64) -> ResultCache {
        // quick_cache sizes its tables by an item estimate: one entry per 64 KiB, within reason.
        let items = (capacity / 65_536).clamp(16, 1 << 20) as usize;
        ResultCache {
            entries: Cache::with_weighter(items, capacity.max(1), ByBytes),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.len() as u64,
            bytes: self.entries.weight(),
            capacity: self.capacity,
        }
    }

    /// Drops every entry (tests, and an operator who wants cold numbers).
    pub fn clear(&self) {
        self.entries.clear();
    }

    /// The entry of `key`, counted as a hit or a miss.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let e = self.entries.get(key);
        let counter = if e.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        e
    }

    /// Whether `key` has an entry, counted as nothing (EXPLAIN without ANALYZE).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.entries.peek(key).is_some()
    }

    /// Keeps `partials` under `key`, unless they are larger than a quarter of the cache.
    pub(crate) fn insert(&self, key: &str, partials: &[Partial]) {
        let bytes: u64 = partials.iter().map(|p| p.memory_bytes() as u64).sum();
        if bytes > self.capacity / 4 {
            return;
        }
        let partials = partials.to_vec();
        self.entries
            .insert(key.to_string(), Arc::new(Entry { partials, bytes }));
    }
}

/// The inclusive time bounds (milliseconds; either side open) a conjunct sets on the time column.
type TimeBounds = (Option<i64>, Option<i64>);

/// What a plan's cache keys share, worked out once per query: the table, its column types, the GROUP BY keys
/// and aggregate calls, and each filter conjunct with the time bounds it sets when it bounds only the time
/// column.
pub(crate) struct PlanKey {
    table: String,
    shape: String,
    conjuncts: Vec<(String, Option<TimeBounds>)>,
    time_column: String,
}

impl PlanKey {
    /// The key parts of `plan`, or `None` when its results are not cached (it does not aggregate).
    pub(crate) fn of(plan: &SelectPlan, time_col: usize) -> Option<PlanKey> {
        let agg = plan.aggregate.as_ref()?;
        let mut shape = String::new();
        for c in &plan.table.columns {
            let _ = write!(shape, "{}:{:?},", c.name, c.ty);
        }
        let _ = write!(shape, "\u{0}{:?}\u{0}{:?}", agg.group_by, agg.aggs);
        let mut all = Vec::new();
        if let Some(f) = &plan.filter {
            split_and(f, &mut all);
        }
        let conjuncts = all
            .into_iter()
            .map(|c| {
                let mut one = FilterPlan::default();
                time_bounds(c, time_col, &mut one);
                let bounds = (one.time_min.is_some() || one.time_max.is_some())
                    .then_some((one.time_min, one.time_max));
                (format!("{c:?}"), bounds)
            })
            .collect();
        Some(PlanKey {
            table: plan.table.name.clone(),
            shape,
            conjuncts,
            time_column: plan.table.time_column.clone(),
        })
    }

    /// The key of `src`'s partials, or `None` when the source is not an immutable segment. A time bound the
    /// whole segment satisfies selects every row of it, whatever its constant, and is left out.
    pub(crate) fn segment_key(&self, src: &dyn SegmentSource) -> Option<String> {
        if !src.cacheable() {
            return None;
        }
        let (min, max) = time_range(src, &self.time_column);
        let mut k = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            self.table,
            src.id(),
            src.num_rows(),
            self.shape
        );
        for (text, bounds) in &self.conjuncts {
            let holds = bounds.is_some_and(|(lo, hi)| {
                lo.is_none_or(|lo| min >= lo) && hi.is_none_or(|hi| max <= hi)
            });
            if !holds {
                let _ = write!(k, "\u{0}{text}");
            }
        }
        Some(k)
    }
}
