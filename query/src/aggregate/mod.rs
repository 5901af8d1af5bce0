//! Aggregate functions. Each family is one file with one state type implementing [`Accumulator`] (per-group
//! state, typed update loops, a merge that returns `Result`, the final array); [`Acc`] is the closed set of
//! them the executor holds, dispatching each call to its family. Beside them: group keys as words
//! ([`keys`]), the group table of a segment share ([`group_table`]), dictionary codes buffered for distinct
//! counts ([`code_buffer`]) and the merge of per-segment partials ([`partial`]).
//!
//! A new aggregate function: a state type in its own file implementing [`Accumulator`], a variant in [`Acc`]
//! (and in the `each!` list and [`Acc::merge`] below), its constructor in [`Acc::new`], and its name in the
//! function registry (`crate::planner::registry`) and its binding in `crate::planner::aggregates`.

pub(crate) mod avg;
pub(crate) mod code_buffer;
pub(crate) mod collect;
pub(crate) mod count;
pub(crate) mod distinct;
pub(crate) mod group_table;
pub(crate) mod hll;
pub(crate) mod keys;
pub(crate) mod min_max;
pub(crate) mod partial;
pub(crate) mod percentile;
pub(crate) mod quantile;
pub(crate) mod sum;
pub(crate) mod support;
pub(crate) mod time_runs;

use arrow_array::ArrayRef;
use arrow_schema::DataType;

use crate::error::Result;
use crate::expr::Scalar;
use crate::plan::{AggCall, AggFunc};

pub(crate) use code_buffer::CodeBuffer;
pub(crate) use distinct::DistinctKey;
pub(crate) use group_table::GroupTable;
pub(crate) use hll::CouponTable;
pub(crate) use keys::KeyWords;
pub(crate) use partial::{merge_partials, Partial};
pub(crate) use support::same_strings;

use support::internal;

/// A key value, decoded (segment independent).
pub type KeyRow = Vec<Scalar>;

/// The per-group state of one aggregate function over the groups of a segment share (or of the merged total).
/// Groups are dense ids, `0..len()`; the executor sizes the state with [`Accumulator::resize`] before it adds
/// rows of new groups.
pub(crate) trait Accumulator {
    /// The number of groups the state is sized for.
    fn len(&self) -> usize;

    /// Makes room for `n` groups.
    fn resize(&mut self, n: usize);

    /// Estimated heap bytes of the state (see [`crate::memory`]).
    fn memory_bytes(&self) -> usize;

    /// Adds the selected rows: `rows[i]` of `values` belongs to group `gids[i]`. `values` is `None` for
    /// COUNT(*).
    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()>;

    /// Adds the selected `rows`, all of group `g` (sized past it). Families override this with a typed loop
    /// over the value slice (no group ids, no validity checks when the column has no NULLs).
    fn update_group(&mut self, g: usize, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        one_group(self, g, rows, values)
    }

    /// Merges group `from` of `other` into group `to` of `self`: an error (as a SUM past the bigint range)
    /// is the same across segments and shares as within one.
    fn merge(&mut self, to: usize, other: &Self, from: usize) -> Result<()>;

    /// The final values, one per group, as an array of type `ty`. The state may be consumed (left empty).
    fn finish(&mut self, ty: &DataType) -> Result<ArrayRef>;
}

/// [`Accumulator::update_group`] through the general loop, for rows a family's fast path does not take.
pub(crate) fn one_group<A: Accumulator + ?Sized>(
    acc: &mut A,
    g: usize,
    rows: &[u32],
    values: Option<&ArrayRef>,
) -> Result<()> {
    let gids = vec![g as u32; rows.len()];
    acc.update(&gids, rows, values)
}

/// The state of one aggregate call: one variant per family.
#[derive(Debug, Clone)]
pub(crate) enum Acc {
    Count(count::Count),
    SumInt(sum::SumInt),
    SumFloat(sum::SumFloat),
    Avg(avg::Avg),
    MinMaxInt(min_max::MinMaxInt),
    MinMaxFloat(min_max::MinMaxFloat),
    /// MIN/MAX of other types (strings).
    MinMax(min_max::MinMax),
    Distinct(distinct::Distinct),
    Percentile(percentile::Percentile),
    Hll(hll::Hll),
    Quantile(quantile::ApproxQuantile),
    Collect(collect::Collect),
}

/// Runs `$body` with `$a` bound to the family state of `$acc`.
macro_rules! each {
    ($acc:expr, $a:ident => $body:expr) => {
        match $acc {
            Acc::Count($a) => $body,
            Acc::SumInt($a) => $body,
            Acc::SumFloat($a) => $body,
            Acc::Avg($a) => $body,
            Acc::MinMaxInt($a) => $body,
            Acc::MinMaxFloat($a) => $body,
            Acc::MinMax($a) => $body,
            Acc::Distinct($a) => $body,
            Acc::Percentile($a) => $body,
            Acc::Hll($a) => $body,
            Acc::Quantile($a) => $body,
            Acc::Collect($a) => $body,
        }
    };
}

impl Acc {
    /// The empty state of `call`.
    pub fn new(call: &AggCall) -> Acc {
        let q = call.param.unwrap_or(0.5);
        match (call.func, call.distinct, &call.ty) {
            (AggFunc::PercentileCont | AggFunc::PercentileDisc, _, _) => Acc::Percentile(
                percentile::Percentile::new(q, call.func == AggFunc::PercentileCont),
            ),
            (AggFunc::ApproxDistinct, _, _) => Acc::Hll(hll::Hll::default()),
            (AggFunc::Collect, _, _) => {
                let (into, order) = call
                    .collect
                    .clone()
                    .unwrap_or((crate::plan::CollectInto::Array, Vec::new()));
                Acc::Collect(collect::Collect::new(into, order))
            }
            (AggFunc::ApproxQuantile, _, _) => Acc::Quantile(quantile::ApproxQuantile::new(q)),
            (AggFunc::Count, true, _) => Acc::Distinct(distinct::Distinct::default()),
            (AggFunc::CountStar | AggFunc::Count, _, _) => Acc::Count(count::Count::default()),
            (AggFunc::Sum, _, DataType::Int64) => Acc::SumInt(sum::SumInt::default()),
            (AggFunc::Sum, _, _) => Acc::SumFloat(sum::SumFloat::default()),
            (AggFunc::Avg, _, _) => Acc::Avg(avg::Avg::default()),
            (AggFunc::Min | AggFunc::Max, _, t) => {
                let max = call.func == AggFunc::Max;
                match t {
                    DataType::Int64 | DataType::Timestamp(_, _) => {
                        Acc::MinMaxInt(min_max::MinMaxInt::new(max))
                    }
                    DataType::Float64 => Acc::MinMaxFloat(min_max::MinMaxFloat::new(max)),
                    _ => Acc::MinMax(min_max::MinMax::new(max)),
                }
            }
        }
    }

    /// The number of groups the states are sized for.
    pub fn len(&self) -> usize {
        each!(self, a => a.len())
    }

    /// Makes room for `n` groups.
    pub fn resize(&mut self, n: usize) {
        each!(self, a => a.resize(n))
    }

    /// Estimated heap bytes of the states (see [`crate::memory`]). Visits every group of the kinds that hold a
    /// variable amount per group (distinct sets, percentile values, strings, sketches).
    pub fn memory_bytes(&self) -> usize {
        each!(self, a => a.memory_bytes())
    }

    /// Adds the selected `rows` to the one group of an aggregate without GROUP BY (see [`Acc::update_group`]).
    pub fn update_single(&mut self, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        self.resize(1);
        self.update_group(0, rows, values)
    }

    /// Adds the selected `rows`, all of group `g` (the states already sized past it): see
    /// [`Accumulator::update_group`].
    pub fn update_group(
        &mut self,
        g: usize,
        rows: &[u32],
        values: Option<&ArrayRef>,
    ) -> Result<()> {
        if g >= self.len() {
            return Err(internal("a group past the states"));
        }
        each!(self, a => a.update_group(g, rows, values))
    }

    /// Adds the selected rows: `rows[i]` of `values` belongs to group `gids[i]`. `values` is `None` for COUNT(*).
    pub fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        each!(self, a => a.update(gids, rows, values))
    }

    /// Merges group `from` of `other` into group `to` of `self`; both must be states of the same call.
    pub fn merge(&mut self, to: usize, other: &Acc, from: usize) -> Result<()> {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => a.merge(to, b, from),
            (Acc::SumInt(a), Acc::SumInt(b)) => a.merge(to, b, from),
            (Acc::SumFloat(a), Acc::SumFloat(b)) => a.merge(to, b, from),
            (Acc::Avg(a), Acc::Avg(b)) => a.merge(to, b, from),
            (Acc::MinMaxInt(a), Acc::MinMaxInt(b)) => a.merge(to, b, from),
            (Acc::MinMaxFloat(a), Acc::MinMaxFloat(b)) => a.merge(to, b, from),
            (Acc::MinMax(a), Acc::MinMax(b)) => a.merge(to, b, from),
            (Acc::Distinct(a), Acc::Distinct(b)) => a.merge(to, b, from),
            (Acc::Percentile(a), Acc::Percentile(b)) => a.merge(to, b, from),
            (Acc::Hll(a), Acc::Hll(b)) => a.merge(to, b, from),
            (Acc::Quantile(a), Acc::Quantile(b)) => a.merge(to, b, from),
            (Acc::Collect(a), Acc::Collect(b)) => a.merge(to, b, from),
            _ => Err(internal("partials of different aggregates merged")),
        }
    }

    /// The final values as an array of type `ty`.
    pub fn finish(&mut self, ty: &DataType) -> Result<ArrayRef> {
        each!(self, a => a.finish(ty))
    }

    /// Adds `n` rows to the one group of a COUNT(*) without GROUP BY.
    pub fn add_count(&mut self, n: u64) -> Result<()> {
        self.resize(1);
        match self {
            Acc::Count(c) => {
                c.add(0, n);
                Ok(())
            }
            _ => Err(internal("a row count for an aggregate other than COUNT(*)")),
        }
    }

    /// Adds one distinct key to group `g` of a COUNT(DISTINCT) or HyperLogLog state.
    pub fn add_key(&mut self, g: usize, key: DistinctKey) -> Result<()> {
        match self {
            Acc::Distinct(d) => d.add_key(g, key),
            Acc::Hll(h) => h.add_key(g, key),
            _ => Err(internal(
                "a distinct key for an aggregate without distinct keys",
            )),
        }
    }

    /// Turns COUNT(DISTINCT) sets kept as dictionary codes into hashed keys.
    pub(crate) fn hash_codes(&mut self) {
        if let Acc::Distinct(d) = self {
            d.hash_codes();
        }
    }
}
