//! Which segments a query reads, and in what units: segments whose time range or column min/max miss the
//! filter are pruned (with the reason, for EXPLAIN); large ones are cut into shares of a few blocks.

use std::sync::Arc;

use basalt_segment::{SegmentSource, StatValue};

use super::filter::{FilterPlan, IndexFilter, SegmentMatches};

/// Why a segment cannot hold matching rows, if it cannot.
pub(crate) fn prune_reason(
    src: &dyn SegmentSource,
    fp: &FilterPlan,
    time_col: &str,
) -> Option<String> {
    if src.num_rows() == 0 {
        return Some("empty".into());
    }
    let (min, max) = time_range(src, time_col);
    if fp.time_min.is_some_and(|lo| max < lo) || fp.time_max.is_some_and(|hi| min > hi) {
        return Some(format!(
            "time {}..{} outside the filter",
            basalt_segment::granularity::format_iso(min),
            basalt_segment::granularity::format_iso(max)
        ));
    }
    for r in &fp.ranges {
        let Some(info) = src.column_info(&r.column) else {
            continue;
        };
        let as_f64 = |v: &Option<StatValue>| match v {
            Some(StatValue::Long(i)) => Some(*i as f64),
            Some(StatValue::Double(d)) => Some(*d),
            _ => None,
        };
        if let (Some(lo), Some(hi)) = (as_f64(&info.stats.min), as_f64(&info.stats.max)) {
            if r.excludes(lo, hi, info.stats.has_nan) {
                return Some(format!("{} {lo}..{hi} outside the filter", r.column));
            }
        }
    }
    None
}

/// The first and last time (milliseconds, inclusive) of `src`'s rows: its time column's statistics, or its
/// time chunk where it has none.
pub(crate) fn time_range(src: &dyn SegmentSource, time_col: &str) -> (i64, i64) {
    match src
        .column_info(time_col)
        .map(|c| (&c.stats.min, &c.stats.max))
    {
        Some((Some(StatValue::Long(a)), Some(StatValue::Long(b)))) => (*a, *b),
        _ => (src.interval().start, src.interval().end - 1),
    }
}

/// A share of a segment: the source, its blocks, and what the segment's shares work out once for all of them.
pub(crate) type WorkUnit = (
    Arc<dyn SegmentSource>,
    std::ops::Range<usize>,
    Arc<SegmentMatches>,
);

/// Blocks per unit of work: a segment larger than this is scanned as several shares in parallel.
pub(crate) const SHARE_BLOCKS: usize = 4;

/// Blocks per unit of work when groups carry HyperLogLog sketches (4 KiB each). Every share starts its groups'
/// sketches afresh (list, then set, then array) and the merge unions them, so small shares multiply that work:
/// at 10M rows, APPROX_COUNT_DISTINCT by country took 372 ms with 4-block shares and 304 ms with 12. (A
/// t-digest per hour did not gain: its groups seldom span shares.)
pub(crate) const SKETCH_SHARE_BLOCKS: usize = 16;

/// The scan's work: segments, large ones split into shares of `share_blocks` blocks so that one segment also
/// keeps several cores busy. The split depends on the data and the query only, never on the thread count, and
/// units stay in segment and block order: partials (float sums included) merge the same way on every machine.
///
/// Only the segments `scan` picks (by position in `live`) are cut; each unit comes with its segment's position.
pub(crate) fn work_units(
    live: &[Arc<dyn SegmentSource>],
    share_blocks: usize,
    filter: Option<&IndexFilter>,
    scan: impl Fn(usize) -> bool,
) -> (Vec<WorkUnit>, Vec<usize>) {
    let mut units = Vec::new();
    let mut owners = Vec::new();
    for (pos, s) in live.iter().enumerate() {
        if !scan(pos) {
            continue;
        }
        let n = s.num_blocks();
        let matches = Arc::new(SegmentMatches::new(filter));
        // Shares of nearly equal size (22 blocks in 4-block shares: 4, 4, 4, 4, 3, 3).
        let shares = n.div_ceil(share_blocks.max(1)).max(1);
        for i in 0..shares {
            units.push((
                s.clone(),
                i * n / shares..(i + 1) * n / shares,
                matches.clone(),
            ));
            owners.push(pos);
        }
    }
    (units, owners)
}
