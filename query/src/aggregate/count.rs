//! COUNT(*) and COUNT(x): one `i64` per group, rows tallied a run of one group at a time when group ids come
//! in long runs (time buckets over rows in time order), in four lanes when groups are few.

use arrow_array::{Array, ArrayRef, Int64Array};
use arrow_schema::DataType;
use std::sync::Arc;

use super::support::{internal, vec_bytes};
use super::{one_group, Accumulator};
use crate::error::Result;

/// COUNT's state: the count of each group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Count(pub(crate) Vec<i64>);

impl Count {
    /// Adds `n` rows to group `g`.
    pub(crate) fn add(&mut self, g: usize, n: u64) {
        self.0[g] += n as i64;
    }
}

impl Accumulator for Count {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn resize(&mut self, n: usize) {
        self.0.resize(n, 0);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.0)
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        match values {
            Some(v) if v.null_count() > 0 => {
                for (g, r) in gids.iter().zip(rows) {
                    self.0[*g as usize] += i64::from(v.is_valid(*r as usize));
                }
                Ok(())
            }
            _ => count_runs(gids, &mut self.0),
        }
    }

    fn update_group(&mut self, g: usize, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        if values.is_none_or(|v| v.null_count() == 0) {
            self.0[g] += rows.len() as i64;
            return Ok(());
        }
        one_group(self, g, rows, values)
    }

    fn merge(&mut self, to: usize, other: &Count, from: usize) -> Result<()> {
        self.0[to] += other.0[from];
        Ok(())
    }

    fn finish(&mut self, _ty: &DataType) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(self.0.clone())))
    }
}

/// The runs of equal group ids in `gids`: each run's group and its positions.
pub(crate) fn runs(gids: &[u32]) -> impl Iterator<Item = (u32, std::ops::Range<usize>)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let g = *gids.get(i)?;
        let start = i;
        i += 1;
        while gids.get(i) == Some(&g) {
            i += 1;
        }
        Some((g, start..i))
    })
}

/// Whether `gids` comes in runs long enough (8 rows on average) to be worth adding up a run at a time: time
/// buckets over rows in time order do; a key like country does not, and there the run loop's branch costs more
/// than it saves (a day-by-device count went 80 -> 96 ms).
/// Judged on the first 1024 ids, so the check costs next to nothing per row.
pub(crate) fn long_runs(gids: &[u32]) -> bool {
    let sample = &gids[..gids.len().min(1024)];
    let changes = sample.windows(2).filter(|w| w[0] != w[1]).count();
    changes.saturating_mul(8) < sample.len()
}

/// Up to this many groups, a block's counts are tallied in four lanes (see [`count_runs`]).
const SPLIT_COUNT_GROUPS: usize = 4096;

/// Adds each row to its group's count, a run of one group at a time when runs are long (see [`runs`]).
pub(crate) fn count_runs(gids: &[u32], counts: &mut [i64]) -> Result<()> {
    if !long_runs(gids) {
        if counts.len() <= SPLIT_COUNT_GROUPS && gids.len() >= 4 * counts.len() {
            // Four tallies, one per lane of four rows: a frequent group's next row adds to another tally
            // instead of waiting on the store to the one it just added to.
            let n = counts.len();
            let mut lanes = vec![0u32; 4 * n];
            let (a, rest) = lanes.split_at_mut(n);
            let (b, rest) = rest.split_at_mut(n);
            let (c, d) = rest.split_at_mut(n);
            let mut quads = gids.chunks_exact(4);
            for q in &mut quads {
                a[q[0] as usize] += 1;
                b[q[1] as usize] += 1;
                c[q[2] as usize] += 1;
                d[q[3] as usize] += 1;
            }
            quads.remainder().iter().for_each(|g| a[*g as usize] += 1);
            for (i, total) in counts.iter_mut().enumerate() {
                *total += i64::from(a[i]) + i64::from(b[i]) + i64::from(c[i]) + i64::from(d[i]);
            }
            return Ok(());
        }
        gids.iter().for_each(|g| counts[*g as usize] += 1);
        return Ok(());
    }
    for (g, run) in runs(gids) {
        *counts
            .get_mut(g as usize)
            .ok_or_else(|| internal("a group id past the counts"))? += run.len() as i64;
    }
    Ok(())
}
