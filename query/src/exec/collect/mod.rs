//! Per-share collectors: what a scan does with the rows a block selected. One type per query shape, each with
//! one entry point ([`SegmentCollector::collect`]) and a one-line EXPLAIN form:
//!
//! - [`count::CountRows`]: `COUNT(*)` alone, no residual filter: the index (or the block size) is the answer.
//! - [`grouped::Grouped`]: GROUP BY (or a global aggregate): group ids per row, typed accumulator loops.
//! - [`time_runs::TimeRunGroups`]: GROUP BY time buckets (and maybe one string) over rows in time order, a
//!   stretch of rows per bucket.
//! - [`rows::Rows`]: no aggregation: output expressions over the selected rows, an early stop at LIMIT.
//!
//! Aggregating collectors share [`AggState`] (group table, accumulators, code buffers, memory reservation) and
//! end in a [`Partial`]; [`rows::Rows`] ends in record batches.

pub(crate) mod count;
pub(crate) mod grouped;
pub(crate) mod rows;
pub(crate) mod time_runs;

use arrow_array::{ArrayRef, RecordBatch};
use basalt_segment::SegmentSource;

use crate::aggregate::{Acc, CodeBuffer, CouponTable, GroupTable, Partial};
use crate::error::{QueryError, Result};
use crate::exec::ExecOptions;
use crate::expr::{filter_mask, Expr};
use crate::memory::Reservation;
use crate::plan::{AggCall, AggFunc, Aggregation};
use std::sync::Arc;

/// The selected rows of one block: the loaded columns (by table column index; columns the query does not read
/// are `None`), the positions kept by the filters, and the block's length.
pub(crate) struct Block<'b> {
    pub input: &'b [Option<ArrayRef>],
    pub rows: &'b [u32],
    pub len: usize,
}

/// Whether the scan goes on with the share's next block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// The share has all it needs (a LIMIT without ORDER BY is reached).
    Stop,
}

/// What one share of a scan produces.
pub(crate) enum SegmentOutput {
    Partial(Partial),
    Rows(Vec<RecordBatch>),
}

/// A share's output and the memory that holds it until the merge.
pub(crate) type ShareOutput<'o> = (SegmentOutput, Reservation<'o>);

/// What a scan does with each block's selected rows.
pub(crate) trait SegmentCollector<'o> {
    /// Adds one block's selected rows (never empty).
    fn collect(&mut self, block: &Block<'_>) -> Result<Flow>;

    /// The share's output, with the memory that holds it.
    fn finish(self: Box<Self>) -> Result<ShareOutput<'o>>;

    /// The collector's one-line EXPLAIN form.
    fn name(&self) -> &'static str;
}

/// Groups and states are measured at least this many rows apart.
const MEMORY_CHECK_ROWS: usize = 65_536;

/// The aggregation state of one share: group table, one accumulator per aggregate call, the code buffers of
/// COUNT(DISTINCT) / HyperLogLog over strings, and the memory they hold (measured again once as many rows as
/// there are groups, at least [`MEMORY_CHECK_ROWS`], went in: a constant cost per row).
pub(crate) struct AggState<'a, 'o> {
    pub agg: &'a Aggregation,
    pub groups: GroupTable,
    pub accs: Vec<Acc>,
    pub code_bufs: Vec<Option<CodeBuffer>>,
    pub gids: Vec<u32>,
    pub opts: &'o ExecOptions,
    mem: Reservation<'o>,
    unmeasured: usize,
}

impl<'a, 'o> AggState<'a, 'o> {
    pub fn new(
        agg: &'a Aggregation,
        src: &dyn SegmentSource,
        opts: &'o ExecOptions,
    ) -> Result<Self> {
        // COUNT(DISTINCT) and HyperLogLog over a string column collect codes and hash each one once.
        // HyperLogLog over a string column takes each dictionary value's coupon from a table built once per
        // segment.
        let mut code_bufs: Vec<Option<CodeBuffer>> = Vec::new();
        for c in &agg.aggs {
            let Some(Expr::Column { name, ty, .. }) = &c.arg else {
                code_bufs.push(None);
                continue;
            };
            if c.filter.is_some() || !(c.distinct || c.func == AggFunc::ApproxDistinct) {
                code_bufs.push(None);
                continue;
            }
            let table = if c.func == AggFunc::ApproxDistinct && *ty == arrow_schema::DataType::Utf8
            {
                coupons(src, name)?
            } else {
                None
            };
            code_bufs.push(Some(match table {
                Some(t) => CodeBuffer::with_coupons(t),
                None => CodeBuffer::default(),
            }));
        }
        Ok(AggState {
            agg,
            groups: GroupTable::default(),
            accs: agg.aggs.iter().map(Acc::new).collect(),
            code_bufs,
            gids: Vec::new(),
            opts,
            mem: opts.memory.reserve("groups and aggregate states"),
            unmeasured: 0,
        })
    }

    /// The error for a share past the query's group limit.
    pub fn check_groups(&self) -> Result<()> {
        if self.groups.len() > self.opts.max_groups {
            return Err(QueryError::TooManyGroups {
                limit: self.opts.max_groups,
                what: "groups".into(),
            });
        }
        Ok(())
    }

    /// Counts `rows` more rows towards the next measurement of the state's memory.
    pub fn measure(&mut self, rows: usize) -> Result<()> {
        self.unmeasured += rows;
        if self.unmeasured >= self.groups.len().max(MEMORY_CHECK_ROWS) {
            self.unmeasured = 0;
            self.mem
                .resize(state_bytes(&self.groups, &self.accs, &self.code_bufs))?;
        }
        Ok(())
    }

    /// The share's partial: every state sized to the groups, code buffers turned into keys.
    pub fn finish(mut self) -> Result<ShareOutput<'o>> {
        let n = self.groups.len();
        self.accs.iter_mut().for_each(|a| a.resize(n));
        for (acc, buf) in self.accs.iter_mut().zip(&mut self.code_bufs) {
            if let Some(buf) = buf {
                buf.flush(acc)?;
            }
        }
        self.mem
            .resize(state_bytes(&self.groups, &self.accs, &[]))?;
        let partial = self.groups.into_partial(self.accs)?;
        Ok((SegmentOutput::Partial(partial), self.mem))
    }
}

/// Estimated bytes of a share's aggregation state.
fn state_bytes(groups: &GroupTable, accs: &[Acc], bufs: &[Option<CodeBuffer>]) -> usize {
    groups.memory_bytes()
        + accs.iter().map(Acc::memory_bytes).sum::<usize>()
        + bufs
            .iter()
            .flatten()
            .map(CodeBuffer::memory_bytes)
            .sum::<usize>()
}

/// The HyperLogLog coupon table of `column`'s dictionary in `src` (`None` when it has no dictionary): built
/// once per dictionary, so once per open segment, and kept with it.
fn coupons(src: &dyn SegmentSource, column: &str) -> Result<Option<Arc<CouponTable>>> {
    Ok(src.dictionary(column)?.map(|d| d.derived(CouponTable::new)))
}

/// An aggregate's argument over one block. COUNT(DISTINCT) and HyperLogLog read a string column's dictionary
/// codes and values directly, so the column stays dictionary-coded for them; everything else sees plain values.
pub(crate) fn agg_values(
    call: &AggCall,
    input: &[Option<ArrayRef>],
    n: usize,
) -> Result<Option<ArrayRef>> {
    match &call.arg {
        Some(Expr::Column { index, name, .. })
            if call.distinct || call.func == AggFunc::ApproxDistinct =>
        {
            input
                .get(*index)
                .cloned()
                .flatten()
                .map(Some)
                .ok_or_else(|| QueryError::internal(format!("column {name:?} was not loaded")))
        }
        Some(e) => e.eval(input, n).map(Some),
        None => Ok(None),
    }
}

/// Adds the selected `rows` of a block, `rows[i]` in group `gids[i]`, to one aggregate: through the string
/// codes buffer of a COUNT(DISTINCT) or HyperLogLog, or the aggregate's own loops (after its FILTER clause).
pub(crate) fn update_groups(
    acc: &mut Acc,
    call: &AggCall,
    buf: Option<&mut CodeBuffer>,
    gids: &[u32],
    block: &Block<'_>,
    values: Option<&ArrayRef>,
) -> Result<()> {
    let rows = block.rows;
    if let (Some(buf), Some(v)) = (buf, values) {
        if buf.add(acc, gids, rows, v)? {
            return Ok(());
        }
    }
    match &call.filter {
        None => acc.update(gids, rows, values),
        Some(f) => {
            let m = filter_mask(&f.eval(block.input, block.len)?)?;
            let (g2, r2): (Vec<u32>, Vec<u32>) = gids
                .iter()
                .zip(rows)
                .filter(|(_, r)| m.value(**r as usize))
                .map(|(g, r)| (*g, *r))
                .unzip();
            acc.update(&g2, &r2, values)
        }
    }
}
