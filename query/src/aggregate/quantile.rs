//! APPROX_QUANTILE's state for one group: the distinct values with their counts while they are few, a
//! t-digest (the `datasketches` crate's) once they are not.
//!
//! Dashboard metrics such as latencies in (tenths of) milliseconds take a few thousand distinct values even
//! over millions of rows. Runs of (value, count) answer such a group exactly and cost one merge of sorted runs
//! per block, where a t-digest sorts its buffer and compresses its centroids every thousand or so values (70%
//! of an hourly p95 query went there). A group past [`EXACT_VALUES`] distinct values turns into a t-digest,
//! its runs fed in, and goes on as one.

use datasketches::tdigest::TDigestMut;
use hashbrown::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float64Array};
use arrow_schema::DataType;
use std::sync::Arc;

use super::support::{as_f64, by_group, internal, merge_sorted, vec_bytes};
use super::Accumulator;
use crate::error::{QueryError, Result};

/// Distinct values a group keeps exactly (16 bytes each) before it turns into a t-digest.
pub const EXACT_VALUES: usize = 8192;
/// Fewer values than this are sorted into runs; more are counted in a hash table first.
const SORT_BELOW: usize = 256;
/// t-digest compression.
const TDIGEST_K: u16 = 200;
/// Bytes one t-digest holds at most (centroids and the unmerged buffer, 16 bytes each), as memory accounting
/// counts it.
const TDIGEST_BYTES: usize = 16 * 6 * TDIGEST_K as usize;

#[derive(Debug, Clone)]
pub enum QuantileState {
    /// Distinct finite values in ascending order, each with how often it occurred.
    Exact(Vec<(f64, u64)>),
    Digest(Box<TDigestMut>),
}

impl Default for QuantileState {
    fn default() -> Self {
        QuantileState::Exact(Vec::new())
    }
}

impl QuantileState {
    /// Adds values in any order (`values` may be reordered). Exact runs count many values in a hash table and
    /// sort only the distinct ones (a few thousand where a block has 64K rows: sorting the rows was half of
    /// an hourly p95 query), and sort a few values outright; a digest takes them sorted. NaN and infinities
    /// are skipped, as the t-digest skips them.
    pub fn add(&mut self, values: &mut [f64]) {
        match self {
            QuantileState::Exact(runs) => {
                let incoming = if values.len() < SORT_BELOW {
                    // A group's few rows of a block (a GROUP BY of many groups): sorting them costs less
                    // than a hash table per group.
                    values.sort_unstable_by(f64::total_cmp);
                    let mut r: Vec<(f64, u64)> = Vec::new();
                    for &x in values.iter().filter(|x| x.is_finite()) {
                        match r.last_mut() {
                            Some((v, c)) if v.to_bits() == x.to_bits() => *c += 1,
                            _ => r.push((x, 1)),
                        }
                    }
                    r
                } else {
                    let mut counts: HashMap<u64, u64> =
                        HashMap::with_capacity(values.len().min(1024));
                    for x in values.iter().filter(|x| x.is_finite()) {
                        *counts.entry(x.to_bits()).or_insert(0) += 1;
                    }
                    let mut r: Vec<(f64, u64)> = counts
                        .into_iter()
                        .map(|(b, c)| (f64::from_bits(b), c))
                        .collect();
                    r.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                    r
                };
                *runs = merge_runs(runs, &incoming);
                self.digest_if_large();
            }
            QuantileState::Digest(d) => {
                // The digest sorts its buffer (with the centroids it keeps) before it compresses it; a buffer
                // of sorted runs sorts in linear time, and sorting plain floats here is the cheaper sort.
                values.sort_unstable_by(f64::total_cmp);
                values.iter().for_each(|x| d.update(*x));
            }
        }
    }

    /// Adds another group's state (a partial of the same group from another segment or share).
    pub fn merge(&mut self, other: &QuantileState) {
        match (&mut *self, other) {
            (QuantileState::Exact(a), QuantileState::Exact(b)) => {
                *a = merge_runs(a, b);
                self.digest_if_large();
            }
            (QuantileState::Exact(a), QuantileState::Digest(b)) => {
                let mut d = b.clone();
                feed(&mut d, a);
                *self = QuantileState::Digest(d);
            }
            (QuantileState::Digest(a), QuantileState::Exact(b)) => feed(a, b),
            (QuantileState::Digest(a), QuantileState::Digest(b)) => a.merge(b),
        }
    }

    /// The value at fraction `q`: exact runs interpolate between the two nearest ranks (as PERCENTILE_CONT
    /// does); a t-digest estimates. `None` for a group without finite values.
    pub fn quantile(&self, q: f64) -> Result<Option<f64>> {
        match self {
            QuantileState::Exact(runs) => Ok(runs_quantile(runs, q)),
            QuantileState::Digest(d) => d
                .as_ref()
                .clone()
                .quantile(q)
                .map_err(|e| QueryError::Execution(format!("APPROX_QUANTILE: {e}"))),
        }
    }

    /// Estimated heap bytes.
    pub fn memory_bytes(&self) -> usize {
        match self {
            QuantileState::Exact(runs) => runs.capacity() * std::mem::size_of::<(f64, u64)>(),
            QuantileState::Digest(_) => TDIGEST_BYTES,
        }
    }

    fn digest_if_large(&mut self) {
        if let QuantileState::Exact(runs) = self {
            // `TDigestMut::new` fails only for a compression below 10; were it to, the runs would stay exact
            // (and right, only larger).
            if let (true, Ok(mut d)) = (runs.len() > EXACT_VALUES, TDigestMut::new(TDIGEST_K)) {
                feed(&mut d, runs);
                *self = QuantileState::Digest(Box::new(d));
            }
        }
    }
}

/// Each value of `runs` into `d`, as often as it occurred.
fn feed(d: &mut TDigestMut, runs: &[(f64, u64)]) {
    for &(v, c) in runs {
        for _ in 0..c {
            d.update(v);
        }
    }
}

/// The union of two ascending run lists, counts of equal values added.
fn merge_runs(a: &[(f64, u64)], b: &[(f64, u64)]) -> Vec<(f64, u64)> {
    merge_sorted(a, b, |x, y| x.0.total_cmp(&y.0), |x, y| (x.0, x.1 + y.1))
}

/// PERCENTILE_CONT over values given as ascending runs: the value at position `q * (n - 1)`, interpolated
/// between its two neighbours.
fn runs_quantile(runs: &[(f64, u64)], q: f64) -> Option<f64> {
    let n: u64 = runs.iter().map(|r| r.1).sum();
    if n == 0 {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = pos.floor() as u64;
    let frac = pos - lo as f64;
    // The value at 0-based rank `k`.
    let at = |k: u64| {
        let mut seen = 0u64;
        for &(v, c) in runs {
            seen += c;
            if k < seen {
                return v;
            }
        }
        runs[runs.len() - 1].0
    };
    let (a, b) = (at(lo), at((lo + 1).min(n - 1)));
    Some(a + (b - a) * frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::percentile::percentile_unsorted;
    use proptest::prelude::*;

    fn state_of(values: &[f64]) -> QuantileState {
        let mut s = QuantileState::default();
        s.add(&mut values.to_vec());
        s
    }

    proptest! {
        /// While a group holds few distinct values the answer is PERCENTILE_CONT's, whether the values went in
        /// at once or as partials merged.
        #[test]
        fn few_distinct_values_answer_exactly(
            values in proptest::collection::vec((0i32..300).prop_map(|v| f64::from(v) / 10.0), 1..3000),
            split in 0usize..3000,
            q in 0.0f64..=1.0,
        ) {
            let split = split.min(values.len());
            let mut merged = state_of(&values[..split]);
            merged.merge(&state_of(&values[split..]));
            let mut all = values.clone();
            let want = percentile_unsorted(&mut all, q, true);
            for s in [state_of(&values), merged] {
                prop_assert!(matches!(s, QuantileState::Exact(_)));
                let got = s.quantile(q).unwrap();
                prop_assert!(
                    matches!((got, want), (Some(g), Some(w)) if (g - w).abs() <= 1e-9 * w.abs().max(1.0)),
                    "{got:?} against {want:?}"
                );
            }
        }
    }

    #[test]
    fn many_distinct_values_turn_into_a_digest_that_keeps_every_row() {
        let values: Vec<f64> = (0..50_000).map(|i| f64::from(i) * 0.5).collect();
        let mut s = state_of(&values[..EXACT_VALUES]);
        assert!(matches!(s, QuantileState::Exact(_)));
        s.merge(&state_of(&values[EXACT_VALUES..]));
        let QuantileState::Digest(d) = &s else {
            panic!("still exact past {EXACT_VALUES} distinct values");
        };
        assert_eq!(d.total_weight(), 50_000);
        let p95 = s.quantile(0.95).unwrap().unwrap();
        assert!((p95 - 23_750.0).abs() < 250.0, "p95 {p95}");
    }

    #[test]
    fn nan_and_infinities_are_skipped() {
        let s = state_of(&[f64::NAN, 1.0, f64::INFINITY, 3.0, f64::NEG_INFINITY]);
        assert_eq!(s.quantile(0.5).unwrap(), Some(2.0));
        assert_eq!(state_of(&[f64::NAN]).quantile(0.5).unwrap(), None);
    }
}

/// APPROX_QUANTILE's state: per group exact runs of few distinct values, or a t-digest (created on the group's
/// first value).
#[derive(Debug, Clone)]
pub(crate) struct ApproxQuantile {
    states: Vec<Option<QuantileState>>,
    q: f64,
}

impl ApproxQuantile {
    pub(crate) fn new(q: f64) -> Self {
        ApproxQuantile {
            states: Vec::new(),
            q,
        }
    }
}

impl Accumulator for ApproxQuantile {
    fn len(&self) -> usize {
        self.states.len()
    }

    fn resize(&mut self, n: usize) {
        self.states.resize_with(n, || None);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.states)
            + self
                .states
                .iter()
                .flatten()
                .map(QuantileState::memory_bytes)
                .sum::<usize>()
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let v = values.ok_or_else(|| internal("APPROX_QUANTILE without argument"))?;
        let v = as_f64(v)?;
        let a = v.as_primitive::<Float64Type>();
        // Values go in group by group (see `QuantileState::add`).
        let pairs: Vec<(u32, f64)> = gids
            .iter()
            .zip(rows)
            .filter(|(_, r)| a.is_valid(**r as usize))
            .map(|(g, r)| (*g, a.value(*r as usize)))
            .collect();
        let (starts, mut sorted) = by_group(self.states.len(), &pairs)?;
        for (g, slot) in self.states.iter_mut().enumerate() {
            let part = &mut sorted[starts[g]..starts[g + 1]];
            if part.is_empty() {
                continue;
            }
            slot.get_or_insert_with(QuantileState::default).add(part);
        }
        Ok(())
    }

    fn merge(&mut self, to: usize, other: &ApproxQuantile, from: usize) -> Result<()> {
        if let Some(other) = &other.states[from] {
            match &mut self.states[to] {
                Some(d) => d.merge(other),
                slot => *slot = Some(other.clone()),
            }
        }
        Ok(())
    }

    fn finish(&mut self, _ty: &DataType) -> Result<ArrayRef> {
        let mut out = Vec::with_capacity(self.states.len());
        for d in &self.states {
            out.push(match d {
                Some(d) => d.quantile(self.q)?,
                None => None,
            });
        }
        Ok(Arc::new(Float64Array::from(out)))
    }
}
