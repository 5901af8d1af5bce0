//! The end of a query over one table: DISTINCT, ORDER BY (a top-N partial sort under LIMIT), OFFSET / LIMIT,
//! and dropping the hidden sort columns.

use std::collections::HashSet;

use arrow_array::{RecordBatch, UInt32Array};

use crate::error::Result;
use crate::expr::scalar_at;
use crate::plan::SelectPlan;

/// DISTINCT, ORDER BY, OFFSET/LIMIT, and dropping hidden sort columns.
pub(crate) fn finish(plan: &SelectPlan, mut batch: RecordBatch) -> Result<RecordBatch> {
    if plan.distinct {
        batch = distinct_rows(&batch, plan.output.len() - plan.hidden)?;
    }
    let batch = order_and_limit(batch, &plan.order_by, plan.limit, plan.offset)?;
    let visible: Vec<usize> = (0..plan.output.len() - plan.hidden).collect();
    Ok(batch.project(&visible)?)
}

/// The first row of each distinct combination of the first `width` columns, in order.
pub fn distinct_rows(batch: &RecordBatch, width: usize) -> Result<RecordBatch> {
    let mut seen = HashSet::new();
    let mut keep = Vec::new();
    for r in 0..batch.num_rows() {
        let key: Vec<String> = (0..width)
            .map(|c| scalar_at(batch.column(c), r).map(|s| format!("{s:?}")))
            .collect::<Result<_>>()?;
        if seen.insert(key) {
            keep.push(r as u32);
        }
    }
    Ok(arrow_select::take::take_record_batch(
        batch,
        &UInt32Array::from(keep),
    )?)
}

/// ORDER BY (top-N partial sort when a LIMIT applies), then OFFSET and LIMIT.
pub fn order_and_limit(
    mut batch: RecordBatch,
    order_by: &[crate::plan::SortKey],
    limit: Option<usize>,
    offset: usize,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let end = limit.map_or(n, |l| offset.saturating_add(l).min(n));
    let start = offset.min(end);
    if !order_by.is_empty() && n > 0 {
        let keys: Vec<arrow_ord::sort::SortColumn> = order_by
            .iter()
            .map(|k| arrow_ord::sort::SortColumn {
                values: batch.column(k.column).clone(),
                options: Some(arrow_schema::SortOptions {
                    descending: k.descending,
                    nulls_first: k.nulls_first,
                }),
            })
            .collect();
        let idx = arrow_ord::sort::lexsort_to_indices(&keys, (end < n).then_some(end))?;
        batch = arrow_select::take::take_record_batch(&batch, &idx)?;
    }
    let end = end.min(batch.num_rows());
    Ok(batch.slice(start, end - start))
}
