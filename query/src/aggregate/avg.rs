//! AVG: a sum (double) and a count per group; the sum of a block's rows of one group is taken in eight lanes.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float64Array};
use arrow_schema::DataType;
use std::sync::Arc;

use super::sum::sum_f64;
use super::support::{as_f64, internal, vec_bytes};
use super::{one_group, Accumulator};
use crate::error::Result;

/// AVG's state: each group's sum and count of non-NULL values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Avg {
    sums: Vec<f64>,
    counts: Vec<i64>,
}

impl Accumulator for Avg {
    fn len(&self) -> usize {
        self.sums.len()
    }

    fn resize(&mut self, n: usize) {
        self.sums.resize(n, 0.0);
        self.counts.resize(n, 0);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.sums) + vec_bytes(&self.counts)
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let v = as_f64(values.ok_or_else(|| internal("AVG without argument"))?)?;
        let a = v.as_primitive::<Float64Type>();
        let vals = a.values();
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        if a.null_count() == 0 {
            for (g, r) in gids.iter().zip(rows) {
                sums[*g as usize] += vals[*r as usize];
                counts[*g as usize] += 1;
            }
            return Ok(());
        }
        for (g, r) in gids.iter().zip(rows) {
            if a.is_valid(*r as usize) {
                sums[*g as usize] += vals[*r as usize];
                counts[*g as usize] += 1;
            }
        }
        Ok(())
    }

    fn update_group(&mut self, g: usize, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        if values.is_none_or(|v| v.null_count() == 0) {
            let all = values.is_some_and(|v| rows.len() == v.len());
            let v = as_f64(values.ok_or_else(|| internal("AVG without argument"))?)?;
            self.sums[g] += sum_f64(v.as_primitive::<Float64Type>().values(), rows, all);
            self.counts[g] += rows.len() as i64;
            return Ok(());
        }
        one_group(self, g, rows, values)
    }

    fn merge(&mut self, to: usize, other: &Avg, from: usize) -> Result<()> {
        self.sums[to] += other.sums[from];
        self.counts[to] += other.counts[from];
        Ok(())
    }

    fn finish(&mut self, _ty: &DataType) -> Result<ArrayRef> {
        Ok(Arc::new(Float64Array::from(
            self.sums
                .iter()
                .zip(&self.counts)
                .map(|(s, c)| (*c > 0).then(|| s / *c as f64))
                .collect::<Vec<_>>(),
        )))
    }
}
