//! GROUP BY over any keys (or a global aggregate): each block's key columns as words, group ids from the
//! share's [`GroupTable`](crate::aggregate::GroupTable), then every aggregate's typed loop over the selected
//! rows.

use basalt_segment::{ColumnType, TableSchema};

use super::{agg_values, update_groups, AggState, Block, Flow, SegmentCollector, ShareOutput};
use crate::aggregate::KeyWords;
use crate::error::{QueryError, Result};
use crate::expr::{filter_mask, Expr};

/// Groups rows by the GROUP BY keys.
pub(crate) struct Grouped<'a, 'o> {
    state: AggState<'a, 'o>,
    table: &'a TableSchema,
    /// The dictionary size of a lone string key (a dense table of group ids instead of a hash table).
    dict_len: Option<usize>,
    /// Block-sized code buffers handed from block to block.
    code_pool: Vec<Vec<u32>>,
}

impl<'a, 'o> Grouped<'a, 'o> {
    pub fn new(state: AggState<'a, 'o>, table: &'a TableSchema, dict_len: Option<usize>) -> Self {
        Grouped {
            state,
            table,
            dict_len,
            code_pool: Vec::new(),
        }
    }
}

impl<'o> SegmentCollector<'o> for Grouped<'_, 'o> {
    fn collect(&mut self, block: &Block<'_>) -> Result<Flow> {
        let (input, rows, n) = (block.input, block.rows, block.len);
        let s = &mut self.state;
        let a = s.agg;
        let key_cols: Vec<KeyWords> = a
            .group_by
            .iter()
            .map(|g| match g {
                Expr::Column { index, .. }
                    if self.table.columns[*index].ty == ColumnType::String =>
                {
                    Ok(KeyWords::from_array(
                        input[*index]
                            .clone()
                            .ok_or_else(|| QueryError::internal("key not loaded"))?,
                        &mut self.code_pool,
                    ))
                }
                e => Ok(KeyWords::from_array(
                    e.eval_key(input, n)?,
                    &mut self.code_pool,
                )),
            })
            .collect::<Result<_>>()?;
        let single = a.group_by.is_empty();
        if single {
            s.groups.assign(&[], &[], None, &mut s.gids)?
        } else {
            s.groups
                .assign(&key_cols, rows, self.dict_len, &mut s.gids)?
        };
        self.code_pool
            .extend(key_cols.into_iter().filter_map(KeyWords::into_buffer));
        s.check_groups()?;
        let groups = s.groups.len();
        for ((acc, call), buf) in s.accs.iter_mut().zip(&a.aggs).zip(&mut s.code_bufs) {
            acc.resize(groups);
            let values = agg_values(call, input, n)?;
            if single {
                // No GROUP BY: the one group's loops, without group ids.
                if let (Some(buf), Some(v)) = (buf.as_mut(), values.as_ref()) {
                    if buf.add(acc, &vec![0u32; rows.len()], rows, v)? {
                        continue;
                    }
                }
                match &call.filter {
                    None => acc.update_single(rows, values.as_ref())?,
                    Some(f) => {
                        let m = filter_mask(&f.eval(input, n)?)?;
                        let r2: Vec<u32> = rows
                            .iter()
                            .copied()
                            .filter(|r| m.value(*r as usize))
                            .collect();
                        acc.update_single(&r2, values.as_ref())?;
                    }
                }
                continue;
            }
            update_groups(acc, call, buf.as_mut(), &s.gids, block, values.as_ref())?;
        }
        s.measure(rows.len())?;
        Ok(Flow::Continue)
    }

    fn name(&self) -> &'static str {
        "grouped by key words"
    }

    fn finish(self: Box<Self>) -> Result<ShareOutput<'o>> {
        self.state.finish()
    }
}
