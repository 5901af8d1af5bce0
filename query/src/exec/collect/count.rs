//! `COUNT(*)` alone with no residual filter: each block adds the number of rows its index filter selects (or its
//! length), and no column is read.

use super::{AggState, Block, Flow, SegmentCollector, ShareOutput};
use crate::error::Result;

/// Counts rows without reading them.
pub(crate) struct CountRows<'a, 'o> {
    state: AggState<'a, 'o>,
}

impl<'a, 'o> CountRows<'a, 'o> {
    pub fn new(state: AggState<'a, 'o>) -> Self {
        CountRows { state }
    }

    /// Adds `n` selected rows of a block.
    pub fn count(&mut self, n: u64) -> Result<()> {
        if n > 0 {
            let s = &mut self.state;
            s.groups.assign(&[], &[], None, &mut s.gids)?;
            s.accs.iter_mut().try_for_each(|a| a.add_count(n))?;
        }
        Ok(())
    }
}

impl<'o> SegmentCollector<'o> for CountRows<'_, 'o> {
    fn collect(&mut self, block: &Block<'_>) -> Result<Flow> {
        self.count(block.rows.len() as u64)?;
        Ok(Flow::Continue)
    }

    fn name(&self) -> &'static str {
        "count from the index or block sizes, no column read"
    }

    fn finish(self: Box<Self>) -> Result<ShareOutput<'o>> {
        self.state.finish()
    }
}
