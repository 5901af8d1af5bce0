//! A query without aggregation: the selected rows taken first (a dictionary column decoded only for the rows
//! kept), the output expressions evaluated over them, and the share stopped once LIMIT + OFFSET rows exist
//! (without ORDER BY or DISTINCT), or past an ORDER BY time LIMIT's bound ([`TimeLimit`]).

use arrow_array::{RecordBatch, UInt32Array};

use super::{Block, Flow, SegmentCollector, SegmentOutput, ShareOutput};
use crate::error::{QueryError, Result};
use crate::exec::scan::output_schema;
use crate::exec::time_limit::TimeLimit;
use crate::exec::{data_bytes, ExecOptions};
use crate::memory::Reservation;
use crate::plan::SelectPlan;

/// Buffers output rows.
pub(crate) struct Rows<'a, 'o> {
    plan: &'a SelectPlan,
    time_limit: Option<&'a TimeLimit>,
    opts: &'o ExecOptions,
    mem: Reservation<'o>,
    batches: Vec<Vec<arrow_array::ArrayRef>>,
    produced: usize,
    limit_times: Vec<i64>,
}

impl<'a, 'o> Rows<'a, 'o> {
    pub fn new(
        plan: &'a SelectPlan,
        time_limit: Option<&'a TimeLimit>,
        opts: &'o ExecOptions,
    ) -> Self {
        Rows {
            plan,
            time_limit,
            opts,
            mem: opts.memory.reserve("buffered rows"),
            batches: Vec::new(),
            produced: 0,
            limit_times: Vec::new(),
        }
    }
}

impl<'o> SegmentCollector<'o> for Rows<'_, 'o> {
    fn collect(&mut self, block: &Block<'_>) -> Result<Flow> {
        let rows = block.rows;
        let idx = UInt32Array::from(rows.to_vec());
        let taken = block
            .input
            .iter()
            .map(|a| {
                a.as_ref()
                    .map(|a| arrow_select::take::take(a.as_ref(), &idx, None))
                    .transpose()
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut cols = Vec::new();
        for (e, _) in &self.plan.output {
            cols.push(e.eval(&taken, rows.len())?);
        }
        self.produced += rows.len();
        if let Some(tl) = self.time_limit {
            tl.execute(&cols, &mut self.limit_times);
        }
        self.mem
            .add(cols.iter().map(data_bytes).sum::<u64>() as usize)?;
        self.batches.push(cols);
        if self.produced > self.opts.max_groups {
            return Err(QueryError::TooManyGroups {
                limit: self.opts.max_groups,
                what: "buffered rows".into(),
            });
        }
        // Without ORDER BY or DISTINCT, stop once LIMIT + OFFSET rows exist.
        if self.plan.order_by.is_empty() && !self.plan.distinct {
            if let Some(l) = self.plan.limit {
                if self.produced >= l.saturating_add(self.plan.offset) {
                    return Ok(Flow::Stop);
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn name(&self) -> &'static str {
        "rows"
    }

    fn finish(self: Box<Self>) -> Result<ShareOutput<'o>> {
        let schema = output_schema(self.plan);
        let out = self
            .batches
            .into_iter()
            .map(|cols| RecordBatch::try_new(schema.clone(), cols).map_err(QueryError::from))
            .collect::<Result<Vec<_>>>()?;
        Ok((SegmentOutput::Rows(out), self.mem))
    }
}
