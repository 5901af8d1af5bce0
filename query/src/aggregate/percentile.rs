//! PERCENTILE_CONT / PERCENTILE_DISC, exact: every value of each group, the percentile found by selection
//! (linear time) when the query finishes.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float64Array};
use arrow_schema::DataType;
use std::sync::Arc;

use super::support::{as_f64, internal, vec_bytes};
use super::{one_group, Accumulator};
use crate::error::Result;
use crate::expr::cast_to;

/// Every value of each group; `q` is the fraction, `cont` interpolates (PERCENTILE_CONT).
#[derive(Debug, Clone)]
pub(crate) struct Percentile {
    values: Vec<Vec<f64>>,
    q: f64,
    cont: bool,
}

impl Percentile {
    pub(crate) fn new(q: f64, cont: bool) -> Self {
        Percentile {
            values: Vec::new(),
            q,
            cont,
        }
    }
}

impl Accumulator for Percentile {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn resize(&mut self, n: usize) {
        self.values.resize_with(n, Vec::new);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.values) + self.values.iter().map(vec_bytes).sum::<usize>()
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let v = values.ok_or_else(|| internal("PERCENTILE without argument"))?;
        let v = as_f64_any(v)?;
        let a = v.as_primitive::<Float64Type>();
        for (g, r) in gids.iter().zip(rows) {
            if a.is_valid(*r as usize) {
                self.values[*g as usize].push(a.value(*r as usize));
            }
        }
        Ok(())
    }

    fn update_group(&mut self, g: usize, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        if values.is_none_or(|v| v.null_count() == 0) {
            let all = values.is_some_and(|v| rows.len() == v.len());
            let v = self.values.get_mut(g).ok_or_else(|| internal("no group"))?;
            let a = as_f64_any(values.ok_or_else(|| internal("PERCENTILE without argument"))?)?;
            let vals = a.as_primitive::<Float64Type>().values();
            if all {
                v.extend_from_slice(vals);
            } else {
                v.extend(rows.iter().map(|r| vals[*r as usize]));
            }
            return Ok(());
        }
        one_group(self, g, rows, values)
    }

    fn merge(&mut self, to: usize, other: &Percentile, from: usize) -> Result<()> {
        self.values[to].extend_from_slice(&other.values[from]);
        Ok(())
    }

    fn finish(&mut self, ty: &DataType) -> Result<ArrayRef> {
        // Selection reorders each group's values in place (no copy of them): this is the last use.
        let (q, cont) = (self.q, self.cont);
        let out: Vec<Option<f64>> = self
            .values
            .iter_mut()
            .map(|v| percentile_unsorted(v, q, cont))
            .collect();
        let a: ArrayRef = Arc::new(Float64Array::from(out));
        cast_to(&a, ty)
    }
}

/// The percentile `q` of `values`: interpolated (`cont`, as PERCENTILE_CONT) or the first value at or past
/// fraction `q` (as PERCENTILE_DISC) in `f64::total_cmp` order, found by selection (linear time) instead of a
/// sort. Reorders `values`. `None` for no values.
pub fn percentile_unsorted(values: &mut [f64], q: f64, cont: bool) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    if cont {
        let pos = q * (n - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        let frac = pos - lo as f64;
        let (_, lo_v, right) = values.select_nth_unstable_by(lo.min(n - 1), f64::total_cmp);
        let lo_v = *lo_v;
        // The next value in order is the smallest of those after the selected one.
        let hi_v = if hi > lo {
            right.iter().copied().min_by(f64::total_cmp).unwrap_or(lo_v)
        } else {
            lo_v
        };
        Some(lo_v + (hi_v - lo_v) * frac)
    } else {
        let idx = (((q * n as f64).ceil() as usize).max(1) - 1).min(n - 1);
        Some(*values.select_nth_unstable_by(idx, f64::total_cmp).1)
    }
}

/// Numbers and timestamps as doubles (timestamps as epoch milliseconds).
fn as_f64_any(a: &ArrayRef) -> Result<ArrayRef> {
    match a.data_type() {
        DataType::Timestamp(_, _) => {
            let i = crate::expr::cast_to(a, &DataType::Int64)?;
            crate::expr::cast_to(&i, &DataType::Float64)
        }
        _ => as_f64(a),
    }
}

#[cfg(test)]
mod percentile_tests {
    use super::percentile_unsorted;
    use proptest::prelude::*;

    /// The reference: the percentile `q` of sorted values, interpolated (`cont`, as PERCENTILE_CONT) or the first value at or past
    /// fraction `q` (as PERCENTILE_DISC). `None` for no values.
    fn percentile(sorted: &[f64], q: f64, cont: bool) -> Option<f64> {
        let n = sorted.len();
        if n == 0 {
            return None;
        }
        if cont {
            let pos = q * (n - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            let frac = pos - lo as f64;
            Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
        } else {
            let idx = ((q * n as f64).ceil() as usize).max(1) - 1;
            Some(sorted[idx.min(n - 1)])
        }
    }

    proptest! {
        /// Selection answers exactly what sorting answers, NaN, infinities and duplicates included.
        #[test]
        fn selection_matches_sorting(
            values in proptest::collection::vec(
                prop_oneof![
                    -1e6f64..1e6,
                    Just(f64::NAN),
                    Just(f64::INFINITY),
                    Just(0.0),
                    Just(-0.0),
                    (0i32..5).prop_map(f64::from),
                ],
                0..200,
            ),
            q in 0.0f64..=1.0,
            cont: bool,
        ) {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let want = percentile(&sorted, q, cont);
            let got = percentile_unsorted(&mut values.clone(), q, cont);
            prop_assert_eq!(want.map(f64::to_bits), got.map(f64::to_bits));
        }
    }
}
