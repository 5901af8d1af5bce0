//! SUM: exact over BIGINT (chunks summed in i64 lanes where they cannot overflow, else in i128; past the
//! bigint range an out-of-range error on every path, as PostgreSQL's bigint arithmetic), and in eight fixed
//! lanes over doubles so the same block always sums to the same bits.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow_schema::DataType;
use std::sync::Arc;

use super::count::{long_runs, runs};
use super::support::{as_f64, internal, vec_bytes};
use super::{one_group, Accumulator};
use crate::error::{QueryError, Result};

/// SUM of BIGINT: each group's sum, `None` until its first value.
#[derive(Debug, Clone, Default)]
pub(crate) struct SumInt(pub(crate) Vec<Option<i64>>);

/// SUM of DOUBLE: each group's sum, `None` until its first value.
#[derive(Debug, Clone, Default)]
pub(crate) struct SumFloat(Vec<Option<f64>>);

impl Accumulator for SumInt {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn resize(&mut self, n: usize) {
        self.0.resize(n, None);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.0)
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let sums = &mut self.0;
        let v = values.ok_or_else(|| internal("SUM without argument"))?;
        let a = v.as_primitive::<Int64Type>();
        let vals = a.values();
        let valid = |r: usize| a.null_count() == 0 || a.is_valid(r);
        // A run of rows of one group is summed in a register, then added to the group's sum: rows in
        // time order come in long runs, and adding to memory row by row waits on the last store.
        if !long_runs(gids) {
            for (g, r) in gids.iter().zip(rows) {
                if valid(*r as usize) {
                    add_checked(&mut sums[*g as usize], vals[*r as usize])?;
                }
            }
            return Ok(());
        }
        for (g, run) in runs(gids) {
            let mut total: Option<i64> = None;
            for r in &rows[run] {
                if valid(*r as usize) {
                    add_checked(&mut total, vals[*r as usize])?;
                }
            }
            if let Some(x) = total {
                let s = sums
                    .get_mut(g as usize)
                    .ok_or_else(|| internal("a group id past the sums"))?;
                add_checked(s, x)?;
            }
        }
        Ok(())
    }

    fn update_group(&mut self, g: usize, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        if values.is_none_or(|v| v.null_count() == 0) && !rows.is_empty() {
            let all = values.is_some_and(|v| rows.len() == v.len());
            let v = values.ok_or_else(|| internal("SUM without argument"))?;
            let vals = v.as_primitive::<Int64Type>().values();
            let part: i128 = if all {
                sum_i64(vals)
            } else {
                rows.iter().map(|r| i128::from(vals[*r as usize])).sum()
            };
            let total = part + i128::from(self.0[g].unwrap_or(0));
            self.0[g] = Some(i64::try_from(total).map_err(|_| out_of_range())?);
            return Ok(());
        }
        one_group(self, g, rows, values)
    }

    /// An integer SUM past the bigint range is the same error here, across segments and shares, as within one
    /// segment ([`add_checked`]).
    fn merge(&mut self, to: usize, other: &SumInt, from: usize) -> Result<()> {
        if let Some(x) = other.0[from] {
            add_checked(&mut self.0[to], x)?;
        }
        Ok(())
    }

    fn finish(&mut self, _ty: &DataType) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(self.0.clone())))
    }
}

impl Accumulator for SumFloat {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn resize(&mut self, n: usize) {
        self.0.resize(n, None);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.0)
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let sums = &mut self.0;
        let v = as_f64(values.ok_or_else(|| internal("SUM without argument"))?)?;
        let a = v.as_primitive::<Float64Type>();
        let vals = a.values();
        if a.null_count() == 0 {
            for (g, r) in gids.iter().zip(rows) {
                let s = &mut sums[*g as usize];
                *s = Some(s.unwrap_or(0.0) + vals[*r as usize]);
            }
            return Ok(());
        }
        for (g, r) in gids.iter().zip(rows) {
            if a.is_valid(*r as usize) {
                let s = &mut sums[*g as usize];
                *s = Some(s.unwrap_or(0.0) + vals[*r as usize]);
            }
        }
        Ok(())
    }

    fn update_group(&mut self, g: usize, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        if values.is_none_or(|v| v.null_count() == 0) && !rows.is_empty() {
            let all = values.is_some_and(|v| rows.len() == v.len());
            let v = as_f64(values.ok_or_else(|| internal("SUM without argument"))?)?;
            let part = sum_f64(v.as_primitive::<Float64Type>().values(), rows, all);
            self.0[g] = Some(self.0[g].unwrap_or(0.0) + part);
            return Ok(());
        }
        one_group(self, g, rows, values)
    }

    fn merge(&mut self, to: usize, other: &SumFloat, from: usize) -> Result<()> {
        if let Some(x) = other.0[from] {
            self.0[to] = Some(self.0[to].unwrap_or(0.0) + x);
        }
        Ok(())
    }

    fn finish(&mut self, _ty: &DataType) -> Result<ArrayRef> {
        Ok(Arc::new(Float64Array::from(self.0.clone())))
    }
}

fn out_of_range() -> QueryError {
    QueryError::OutOfRange("bigint out of range in SUM".into())
}

/// Sum of `vals` at `rows` (or all of `vals`) in eight interleaved lanes, so the loop vectorizes; the lane
/// order is fixed, so the same block always sums to the same bits.
pub(crate) fn sum_f64(vals: &[f64], rows: &[u32], all: bool) -> f64 {
    let mut lanes = [0.0f64; 8];
    if all {
        let chunks = vals.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for (l, x) in lanes.iter_mut().zip(c) {
                *l += *x;
            }
        }
        for (l, x) in lanes.iter_mut().zip(rest) {
            *l += *x;
        }
    } else {
        let chunks = rows.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for (l, r) in lanes.iter_mut().zip(c) {
                *l += vals[*r as usize];
            }
        }
        for (l, r) in lanes.iter_mut().zip(rest) {
            *l += vals[*r as usize];
        }
    }
    lanes.iter().sum()
}

/// The exact sum of `vals`. Chunks whose values all lie within +-2^50 (one OR per value tells) cannot
/// overflow an i64 and are summed in i64 lanes, which the compiler vectorizes; any other chunk is summed in
/// i128 (add with carry, one value at a time: about half the speed).
pub(crate) fn sum_i64(vals: &[i64]) -> i128 {
    const CHUNK: usize = 4096;
    const BOUND: u64 = 1 << 50;
    vals.chunks(CHUNK)
        .map(|c| {
            let mut sum = 0i64;
            let mut bits = 0u64;
            for &x in c {
                sum = sum.wrapping_add(x);
                bits |= (x as u64).wrapping_add(BOUND);
            }
            if bits < 2 * BOUND {
                i128::from(sum)
            } else {
                c.iter().map(|x| i128::from(*x)).sum()
            }
        })
        .sum()
}

/// Adds `x` to an integer SUM's state (`None` until its first value); past the bigint range is an error, as in
/// PostgreSQL.
#[inline]
pub(crate) fn add_checked(sum: &mut Option<i64>, x: i64) -> Result<()> {
    *sum = Some(match *sum {
        Some(p) => p
            .checked_add(x)
            .ok_or_else(|| QueryError::OutOfRange("bigint out of range in SUM".into()))?,
        None => x,
    });
    Ok(())
}

#[cfg(test)]
mod run_tests {
    use super::SumInt;
    use crate::aggregate::count::count_runs;
    use crate::aggregate::Accumulator;
    use arrow_array::{ArrayRef, Int64Array};
    use proptest::prelude::*;
    use std::sync::Arc;

    proptest! {
        /// COUNT and SUM added a run at a time (long runs) or row by row (short ones) give the row-by-row sums.
        #[test]
        fn counts_and_sums_match_row_by_row(
            runs in proptest::collection::vec((0u32..5, 1usize..40), 1..60),
            nulls in any::<bool>(),
        ) {
            let gids: Vec<u32> = runs.iter().flat_map(|(g, n)| std::iter::repeat_n(*g, *n)).collect();
            let rows: Vec<u32> = (0..gids.len() as u32).collect();
            let values: Vec<Option<i64>> =
                rows.iter().map(|r| (!nulls || r % 3 != 0).then_some(*r as i64 * 7 - 50)).collect();
            let mut want_counts = [0i64; 5];
            let mut want_sums = [None::<i64>; 5];
            for (g, v) in gids.iter().zip(&values) {
                want_counts[*g as usize] += 1;
                if let Some(v) = v {
                    let s = &mut want_sums[*g as usize];
                    *s = Some(s.unwrap_or(0) + v);
                }
            }
            let mut counts = [0i64; 5];
            count_runs(&gids, &mut counts).unwrap();
            prop_assert_eq!(counts, want_counts);
            let mut acc = SumInt(vec![None; 5]);
            let a: ArrayRef = Arc::new(Int64Array::from(values));
            acc.update(&gids, &rows, Some(&a)).unwrap();
            let SumInt(sums) = acc;
            prop_assert_eq!(sums, want_sums.to_vec());
        }
    }

    #[test]
    fn a_sum_past_bigint_is_still_an_error_in_a_run() {
        let mut acc = SumInt(vec![None]);
        let a: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX; 64]));
        let err = acc.update(&[0; 64], &(0..64).collect::<Vec<u32>>(), Some(&a));
        assert!(err.is_err_and(|e| e.to_string().contains("bigint out of range")));
    }
}

#[cfg(test)]
mod sum_tests {
    use super::sum_i64;
    use proptest::prelude::*;

    proptest! {
        /// The chunked i64 sum answers what a plain i128 sum answers, whether values sit inside the bound
        /// (+-2^50), straddle it, or reach i64's ends, over lengths past one chunk (4,096).
        #[test]
        fn chunked_sum_matches_i128(
            values in proptest::collection::vec(
                prop_oneof![
                    8 => -1000i64..1000,
                    1 => Just((1i64 << 50) - 1),
                    1 => Just(-(1i64 << 50)),
                    1 => Just(1i64 << 50),
                    1 => Just(-(1i64 << 50) - 1),
                    1 => Just(i64::MAX),
                    1 => Just(i64::MIN),
                    1 => any::<i64>(),
                ],
                0..10_000,
            ),
        ) {
            let want: i128 = values.iter().map(|x| i128::from(*x)).sum();
            prop_assert_eq!(sum_i64(&values), want);
        }
    }

    #[test]
    fn values_at_the_bound_that_would_wrap_an_i64_are_summed_exactly() {
        // 4,096 values of 2^51 sum to 2^63, one past i64::MAX: they must take the i128 path.
        let big = vec![1i64 << 51; 4096];
        assert_eq!(sum_i64(&big), 1i128 << 63);
        // Just inside the bound, a full chunk sums to 2^62 - 4096 in i64 lanes.
        let inside = vec![(1i64 << 50) - 1; 4096];
        assert_eq!(sum_i64(&inside), 4096 * ((1i128 << 50) - 1));
    }
}
