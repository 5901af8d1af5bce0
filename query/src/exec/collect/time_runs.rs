//! GROUP BY time buckets (and at most one string key) over a segment's rows in time order: each bucket is a
//! stretch of the block ([`TimeRuns`]); a plain aggregate adds a stretch straight from the value slice.

use arrow_array::{Array, ArrayRef};

use super::{agg_values, update_groups, AggState, Block, Flow, SegmentCollector, ShareOutput};
use crate::aggregate::time_runs::TimeRuns;
use crate::aggregate::{Acc, KeyWords};
use crate::error::{QueryError, Result};

/// Groups rows stretch by stretch of time buckets.
pub(crate) struct TimeRunGroups<'a, 'o> {
    state: AggState<'a, 'o>,
    runs: TimeRuns,
    /// The dictionary size of the string key beside the buckets (0 without one).
    run_card: usize,
    /// The group and row range of each stretch of the current block.
    stretches: Vec<(u32, std::ops::Range<usize>)>,
    /// `0..len` positions, for stretches read as slices.
    iota: Vec<u32>,
    code_pool: Vec<Vec<u32>>,
}

impl<'a, 'o> TimeRunGroups<'a, 'o> {
    pub fn new(state: AggState<'a, 'o>, runs: TimeRuns, run_card: usize) -> Self {
        TimeRunGroups {
            state,
            runs,
            run_card,
            stretches: Vec::new(),
            iota: Vec::new(),
            code_pool: Vec::new(),
        }
    }
}

impl<'o> SegmentCollector<'o> for TimeRunGroups<'_, 'o> {
    fn collect(&mut self, block: &Block<'_>) -> Result<Flow> {
        let (input, rows, n) = (block.input, block.rows, block.len);
        let s = &mut self.state;
        let tr = &self.runs;
        let codes = match tr.code_column() {
            Some(c) => Some(KeyWords::from_array(
                input[c]
                    .clone()
                    .ok_or_else(|| QueryError::internal("key not loaded"))?,
                &mut self.code_pool,
            )),
            None => None,
        };
        s.gids.clear();
        self.stretches.clear();
        let (groups, gids, stretches, run_card) = (
            &mut s.groups,
            &mut s.gids,
            &mut self.stretches,
            self.run_card,
        );
        tr.execute(input, rows, |buckets, range| {
            let words = codes.as_ref().map(|c| (c, run_card));
            let stretch = &rows[range.clone()];
            if let Some(g) = groups.assign_run(tr, buckets, words, stretch, gids)? {
                stretches.push((g, range));
            }
            Ok(())
        })?;
        self.code_pool
            .extend(codes.into_iter().filter_map(KeyWords::into_buffer));
        s.check_groups()?;
        let groups = s.groups.len();
        for ((acc, call), buf) in s.accs.iter_mut().zip(&s.agg.aggs).zip(&mut s.code_bufs) {
            acc.resize(groups);
            let values = agg_values(call, input, n)?;
            if !self.stretches.is_empty() && buf.is_none() && call.filter.is_none() {
                for (g, range) in &self.stretches {
                    update_stretch(
                        acc,
                        *g,
                        &rows[range.clone()],
                        values.as_ref(),
                        &mut self.iota,
                    )?;
                }
                continue;
            }
            if !self.stretches.is_empty() && s.gids.len() != rows.len() {
                s.gids.clear();
                for (g, range) in &self.stretches {
                    s.gids.extend(std::iter::repeat_n(*g, range.len()));
                }
            }
            update_groups(acc, call, buf.as_mut(), &s.gids, block, values.as_ref())?;
        }
        s.measure(rows.len())?;
        Ok(Flow::Continue)
    }

    fn name(&self) -> &'static str {
        "grouped by time stretches"
    }

    fn finish(self: Box<Self>) -> Result<ShareOutput<'o>> {
        self.state.finish()
    }
}

/// Adds a stretch of rows of one group `g` to an aggregate; rows that are one unbroken range read the values as
/// a slice (`iota` holds `0..len` positions for it).
fn update_stretch(
    acc: &mut Acc,
    g: u32,
    rows: &[u32],
    values: Option<&ArrayRef>,
    iota: &mut Vec<u32>,
) -> Result<()> {
    let (Some(v), Some(first), Some(last)) = (values, rows.first(), rows.last()) else {
        return acc.update_group(g as usize, rows, values);
    };
    if (*last - *first) as usize + 1 != rows.len() {
        return acc.update_group(g as usize, rows, values);
    }
    if iota.len() < rows.len() {
        iota.clear();
        iota.extend(0..rows.len() as u32);
    }
    let slice = v.slice(*first as usize, rows.len());
    acc.update_group(g as usize, &iota[..rows.len()], Some(&slice))
}
