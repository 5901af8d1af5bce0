//! Aggregation: group keys per block as fixed-width words (dictionary codes, time buckets, number bits), group ids
//! from a dense array (one dictionary-coded key) or a hash table, typed accumulator loops over the selected rows,
//! and partials merged across segments by key value in a fixed order.

use hashbrown::HashSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int64Type, TimestampMillisecondType, UInt16Type, UInt32Type, UInt8Type,
};
use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::DataType;
use datasketches::hll::{Coupon, HllSketch, HllType, HllUnion};

use crate::error::{QueryError, Result};
use crate::expr::{Scalar, TS};
use crate::plan::{AggCall, AggFunc};
use crate::quantile::QuantileState;
use crate::time_runs::TimeRuns;

/// A key value, decoded (segment independent).
pub type KeyRow = Vec<Scalar>;

/// Per-group state of one aggregate.
#[derive(Debug, Clone)]
pub enum Acc {
    Count(Vec<i64>),
    SumInt(Vec<Option<i64>>),
    SumFloat(Vec<Option<f64>>),
    Avg(Vec<f64>, Vec<i64>),
    /// MIN/MAX of longs and timestamps, kept as plain integers.
    MinMaxInt {
        values: Vec<Option<i64>>,
        max: bool,
    },
    MinMaxFloat {
        values: Vec<Option<f64>>,
        max: bool,
    },
    /// MIN/MAX of other types (strings).
    MinMax {
        values: Vec<Option<Scalar>>,
        max: bool,
    },
    Distinct(Vec<DistinctSet>),
    /// Every value of each group, for exact percentiles (`q` is the fraction).
    Percentile {
        values: Vec<Vec<f64>>,
        q: f64,
        cont: bool,
    },
    /// A HyperLogLog per group (created on the group's first value).
    Hll(Vec<Option<Box<HllGroup>>>),
    /// APPROX_QUANTILE per group: exact runs of few distinct values, or a t-digest (created on the group's
    /// first value).
    Quantile {
        states: Vec<Option<QuantileState>>,
        q: f64,
    },
}

/// HyperLogLog precision: 2^12 registers, about 1.6% relative standard error.
const HLL_LG_K: u8 = 12;
/// Bytes one HyperLogLog union holds at most (2^12 one-byte registers and its header), as memory accounting
/// counts it.
const HLL_BYTES: usize = (1 << HLL_LG_K) + 256;

/// A value as COUNT(DISTINCT) and the HyperLogLog sketches see it. Strings are their 128-bit XXH3 hash, as
/// ClickHouse's `uniqExact` keeps them: no allocation per row, and a collision (two distinct strings, one
/// hash) has a probability below 1e-20 even at a billion distinct values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistinctKey {
    Int(i64),
    Float(u64),
    Str(u128),
    Bool(bool),
}

/// Reads distinct keys from one block's array with the type resolved once, so the per-row loop neither
/// dispatches on the Arrow type nor decodes dictionary strings into owned values.
enum KeyReader<'a> {
    Int(&'a [i64]),
    Float(&'a [f64]),
    Str(&'a StringArray),
    Dict8(&'a [u8], &'a StringArray),
    Dict16(&'a [u16], &'a StringArray),
    Dict32(&'a [u32], &'a StringArray),
    Other(&'a ArrayRef),
}

impl<'a> KeyReader<'a> {
    fn new(a: &'a ArrayRef) -> KeyReader<'a> {
        let dict_values = |v: &'a ArrayRef| v.as_string_opt::<i32>();
        match a.data_type() {
            DataType::Int64 => KeyReader::Int(a.as_primitive::<Int64Type>().values()),
            DataType::Timestamp(_, _) => {
                KeyReader::Int(a.as_primitive::<TimestampMillisecondType>().values())
            }
            DataType::Float64 => KeyReader::Float(a.as_primitive::<Float64Type>().values()),
            DataType::Utf8 => KeyReader::Str(a.as_string::<i32>()),
            DataType::Dictionary(k, _) => match k.as_ref() {
                DataType::UInt8 => {
                    let d = a.as_dictionary::<UInt8Type>();
                    dict_values(d.values()).map_or(KeyReader::Other(a), |v| {
                        KeyReader::Dict8(d.keys().values(), v)
                    })
                }
                DataType::UInt16 => {
                    let d = a.as_dictionary::<UInt16Type>();
                    dict_values(d.values()).map_or(KeyReader::Other(a), |v| {
                        KeyReader::Dict16(d.keys().values(), v)
                    })
                }
                DataType::UInt32 => {
                    let d = a.as_dictionary::<UInt32Type>();
                    dict_values(d.values()).map_or(KeyReader::Other(a), |v| {
                        KeyReader::Dict32(d.keys().values(), v)
                    })
                }
                _ => KeyReader::Other(a),
            },
            _ => KeyReader::Other(a),
        }
    }

    /// The key of row `r` (not NULL).
    fn key(&self, r: usize) -> Result<DistinctKey> {
        let s = |v: &StringArray, i: usize| string_key(v.value(i));
        Ok(match self {
            KeyReader::Int(v) => DistinctKey::Int(v[r]),
            KeyReader::Float(v) => DistinctKey::Float(if v[r] == 0.0 { 0 } else { v[r].to_bits() }),
            KeyReader::Str(v) => s(v, r),
            KeyReader::Dict8(k, v) => s(v, usize::from(k[r])),
            KeyReader::Dict16(k, v) => s(v, usize::from(k[r])),
            KeyReader::Dict32(k, v) => s(v, k[r] as usize),
            KeyReader::Other(a) => distinct_key(a, r)?,
        })
    }
}

impl Acc {
    pub fn new(call: &AggCall) -> Acc {
        let q = call.param.unwrap_or(0.5);
        match (call.func, call.distinct, &call.ty) {
            (AggFunc::PercentileCont | AggFunc::PercentileDisc, _, _) => Acc::Percentile {
                values: Vec::new(),
                q,
                cont: call.func == AggFunc::PercentileCont,
            },
            (AggFunc::ApproxDistinct, _, _) => Acc::Hll(Vec::new()),
            (AggFunc::ApproxQuantile, _, _) => Acc::Quantile {
                states: Vec::new(),
                q,
            },
            (AggFunc::Count, true, _) => Acc::Distinct(Vec::new()),
            (AggFunc::CountStar | AggFunc::Count, _, _) => Acc::Count(Vec::new()),
            (AggFunc::Sum, _, DataType::Int64) => Acc::SumInt(Vec::new()),
            (AggFunc::Sum, _, _) => Acc::SumFloat(Vec::new()),
            (AggFunc::Avg, _, _) => Acc::Avg(Vec::new(), Vec::new()),
            (AggFunc::Min | AggFunc::Max, _, t) => {
                let max = call.func == AggFunc::Max;
                match t {
                    DataType::Int64 | DataType::Timestamp(_, _) => Acc::MinMaxInt {
                        values: Vec::new(),
                        max,
                    },
                    DataType::Float64 => Acc::MinMaxFloat {
                        values: Vec::new(),
                        max,
                    },
                    _ => Acc::MinMax {
                        values: Vec::new(),
                        max,
                    },
                }
            }
        }
    }

    /// The number of groups the states are sized for.
    pub fn len(&self) -> usize {
        match self {
            Acc::Count(v) => v.len(),
            Acc::SumInt(v) | Acc::MinMaxInt { values: v, .. } => v.len(),
            Acc::SumFloat(v) | Acc::MinMaxFloat { values: v, .. } => v.len(),
            Acc::Avg(s, _) => s.len(),
            Acc::MinMax { values, .. } => values.len(),
            Acc::Distinct(v) => v.len(),
            Acc::Percentile { values, .. } => values.len(),
            Acc::Hll(v) => v.len(),
            Acc::Quantile { states, .. } => states.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for `n` groups.
    pub fn resize(&mut self, n: usize) {
        match self {
            Acc::Count(v) => v.resize(n, 0),
            Acc::SumInt(v) => v.resize(n, None),
            Acc::SumFloat(v) => v.resize(n, None),
            Acc::Avg(s, c) => {
                s.resize(n, 0.0);
                c.resize(n, 0);
            }
            Acc::MinMaxInt { values, .. } => values.resize(n, None),
            Acc::MinMaxFloat { values, .. } => values.resize(n, None),
            Acc::MinMax { values, .. } => values.resize(n, None),
            Acc::Distinct(v) => v.resize_with(n, DistinctSet::default),
            Acc::Percentile { values, .. } => values.resize_with(n, Vec::new),
            Acc::Hll(v) => v.resize_with(n, || None),
            Acc::Quantile { states, .. } => states.resize_with(n, || None),
        }
    }

    /// Estimated heap bytes of the states (see [`crate::memory`]). Visits every group of the kinds that hold a
    /// variable amount per group (distinct sets, percentile values, strings, sketches).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        fn vec<T>(v: &Vec<T>) -> usize {
            v.capacity() * size_of::<T>()
        }
        match self {
            Acc::Count(v) => vec(v),
            Acc::SumInt(v) => vec(v),
            Acc::SumFloat(v) => vec(v),
            Acc::Avg(s, c) => vec(s) + vec(c),
            Acc::MinMaxInt { values, .. } => vec(values),
            Acc::MinMaxFloat { values, .. } => vec(values),
            Acc::MinMax { values, .. } => {
                vec(values)
                    + values
                        .iter()
                        .map(|v| match v {
                            Some(Scalar::Str(s)) => s.capacity(),
                            _ => 0,
                        })
                        .sum::<usize>()
            }
            Acc::Distinct(sets) => {
                vec(sets) + sets.iter().map(DistinctSet::memory_bytes).sum::<usize>()
            }
            Acc::Percentile { values, .. } => vec(values) + values.iter().map(vec).sum::<usize>(),
            Acc::Hll(v) => vec(v) + v.iter().flatten().count() * HLL_BYTES,
            Acc::Quantile { states, .. } => {
                vec(states)
                    + states
                        .iter()
                        .flatten()
                        .map(QuantileState::memory_bytes)
                        .sum::<usize>()
            }
        }
    }

    /// Adds the selected `rows` to the one group of an aggregate without GROUP BY (see [`Acc::update_group`]).
    pub fn update_single(&mut self, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        self.resize(1);
        self.update_group(0, rows, values)
    }

    /// Adds the selected `rows`, all of group `g` (the states already sized past it): typed loops over the value
    /// slice, with no group ids and (when the column has no NULLs) no validity checks. `rows` covering the
    /// whole block (`rows.len() == len`) reads the slice straight through.
    pub fn update_group(
        &mut self,
        g: usize,
        rows: &[u32],
        values: Option<&ArrayRef>,
    ) -> Result<()> {
        if g >= self.len() {
            return Err(internal("a group past the states"));
        }
        let no_nulls = values.is_none_or(|v| v.null_count() == 0);
        let all = values.is_some_and(|v| rows.len() == v.len());
        match self {
            Acc::Count(c) if no_nulls => {
                c[g] += rows.len() as i64;
                return Ok(());
            }
            Acc::SumInt(s) if no_nulls && !rows.is_empty() => {
                let v = values.ok_or_else(|| internal("SUM without argument"))?;
                let vals = v.as_primitive::<Int64Type>().values();
                let part: i128 = if all {
                    sum_i64(vals)
                } else {
                    rows.iter().map(|r| i128::from(vals[*r as usize])).sum()
                };
                let total = part + i128::from(s[g].unwrap_or(0));
                s[g] =
                    Some(i64::try_from(total).map_err(|_| {
                        QueryError::OutOfRange("bigint out of range in SUM".into())
                    })?);
                return Ok(());
            }
            Acc::SumFloat(s) if no_nulls && !rows.is_empty() => {
                let v = as_f64(values.ok_or_else(|| internal("SUM without argument"))?)?;
                let part = sum_f64(v.as_primitive::<Float64Type>().values(), rows, all);
                s[g] = Some(s[g].unwrap_or(0.0) + part);
                return Ok(());
            }
            Acc::Avg(s, c) if no_nulls => {
                let v = as_f64(values.ok_or_else(|| internal("AVG without argument"))?)?;
                s[g] += sum_f64(v.as_primitive::<Float64Type>().values(), rows, all);
                c[g] += rows.len() as i64;
                return Ok(());
            }
            Acc::Percentile { values: v, .. } if no_nulls => {
                let v = v.get_mut(g).ok_or_else(|| internal("no group"))?;
                let a = as_f64_any(values.ok_or_else(|| internal("PERCENTILE without argument"))?)?;
                let vals = a.as_primitive::<Float64Type>().values();
                if all {
                    v.extend_from_slice(vals);
                } else {
                    v.extend(rows.iter().map(|r| vals[*r as usize]));
                }
                return Ok(());
            }
            Acc::MinMaxFloat { values: st, max } if no_nulls && !rows.is_empty() => {
                let v = values.ok_or_else(|| internal("MIN/MAX without argument"))?;
                let vals = v.as_primitive::<Float64Type>().values();
                let pick = |a: f64, b: f64| match (*max, b.total_cmp(&a)) {
                    (true, std::cmp::Ordering::Greater) | (false, std::cmp::Ordering::Less) => b,
                    _ => a,
                };
                let first = vals[rows[0] as usize];
                let m = if all {
                    vals.iter().fold(first, |a, b| pick(a, *b))
                } else {
                    rows.iter().fold(first, |a, r| pick(a, vals[*r as usize]))
                };
                st[g] = Some(st[g].map_or(m, |c| pick(c, m)));
                return Ok(());
            }
            _ => {}
        }
        let gids = vec![g as u32; rows.len()];
        self.update(&gids, rows, values)
    }

    /// Adds the selected rows: `rows[i]` of `values` belongs to group `gids[i]`. `values` is `None` for COUNT(*).
    pub fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        match self {
            Acc::Count(counts) => match values {
                None => count_runs(gids, counts)?,
                Some(v) if v.null_count() == 0 => count_runs(gids, counts)?,
                Some(v) => {
                    for (g, r) in gids.iter().zip(rows) {
                        counts[*g as usize] += i64::from(v.is_valid(*r as usize));
                    }
                }
            },
            Acc::SumInt(sums) => {
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
            }
            Acc::SumFloat(sums) => {
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
            }
            Acc::Avg(sums, counts) => {
                let v = as_f64(values.ok_or_else(|| internal("AVG without argument"))?)?;
                let a = v.as_primitive::<Float64Type>();
                let vals = a.values();
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
            }
            Acc::MinMax {
                values: states,
                max,
            } => {
                let v = values.ok_or_else(|| internal("MIN/MAX without argument"))?;
                let max = *max;
                for (g, r) in gids.iter().zip(rows) {
                    let r = *r as usize;
                    if v.is_null(r) {
                        continue;
                    }
                    let x = scalar_at(v, r)?;
                    let s = &mut states[*g as usize];
                    let better = match s {
                        None => true,
                        Some(cur) => {
                            let ord = compare_scalars(&x, cur);
                            if max {
                                ord == std::cmp::Ordering::Greater
                            } else {
                                ord == std::cmp::Ordering::Less
                            }
                        }
                    };
                    if better {
                        *s = Some(x);
                    }
                }
            }
            Acc::MinMaxInt {
                values: states,
                max,
            } => {
                let v = values.ok_or_else(|| internal("MIN/MAX without argument"))?;
                let v = crate::expr::cast_to(v, &DataType::Int64)?;
                let a = v.as_primitive::<Int64Type>();
                let vals = a.values();
                for (g, r) in gids.iter().zip(rows) {
                    if a.is_valid(*r as usize) {
                        let x = vals[*r as usize];
                        let s = &mut states[*g as usize];
                        *s = Some(match *s {
                            None => x,
                            Some(c) if *max => c.max(x),
                            Some(c) => c.min(x),
                        });
                    }
                }
            }
            Acc::MinMaxFloat {
                values: states,
                max,
            } => {
                let v = values.ok_or_else(|| internal("MIN/MAX without argument"))?;
                let a = v.as_primitive::<Float64Type>();
                let vals = a.values();
                for (g, r) in gids.iter().zip(rows) {
                    if a.is_valid(*r as usize) {
                        let x = vals[*r as usize];
                        let s = &mut states[*g as usize];
                        *s = Some(match *s {
                            Some(c) if *max && x.total_cmp(&c).is_le() => c,
                            Some(c) if !*max && x.total_cmp(&c).is_ge() => c,
                            _ => x,
                        });
                    }
                }
            }
            Acc::Distinct(sets) => {
                let v = values.ok_or_else(|| internal("COUNT DISTINCT without argument"))?;
                let keys = KeyReader::new(v);
                for (g, r) in gids.iter().zip(rows) {
                    let r = *r as usize;
                    if v.is_valid(r) {
                        sets[*g as usize].insert_key(keys.key(r)?);
                    }
                }
            }
            Acc::Percentile { values: groups, .. } => {
                let v = values.ok_or_else(|| internal("PERCENTILE without argument"))?;
                let v = as_f64_any(v)?;
                let a = v.as_primitive::<Float64Type>();
                for (g, r) in gids.iter().zip(rows) {
                    if a.is_valid(*r as usize) {
                        groups[*g as usize].push(a.value(*r as usize));
                    }
                }
            }
            Acc::Hll(_) => {
                let v = values.ok_or_else(|| internal("APPROX_COUNT_DISTINCT without argument"))?;
                let keys = KeyReader::new(v);
                for (g, r) in gids.iter().zip(rows) {
                    let r = *r as usize;
                    if v.is_valid(r) {
                        self.add_key(*g as usize, keys.key(r)?)?;
                    }
                }
            }
            Acc::Quantile { states, .. } => {
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
                let (starts, mut sorted) = by_group(states.len(), &pairs)?;
                for (g, slot) in states.iter_mut().enumerate() {
                    let part = &mut sorted[starts[g]..starts[g + 1]];
                    if part.is_empty() {
                        continue;
                    }
                    slot.get_or_insert_with(QuantileState::default).add(part);
                }
            }
        }
        Ok(())
    }

    /// Adds `n` rows to the one group of a COUNT(*) without GROUP BY.
    pub fn add_count(&mut self, n: u64) -> Result<()> {
        self.resize(1);
        match self {
            Acc::Count(c) => {
                c[0] += n as i64;
                Ok(())
            }
            _ => Err(internal("a row count for an aggregate other than COUNT(*)")),
        }
    }

    /// Adds one distinct key to group `g` of a COUNT(DISTINCT) or HyperLogLog state.
    pub fn add_key(&mut self, g: usize, key: DistinctKey) -> Result<()> {
        match self {
            Acc::Distinct(sets) => {
                sets[g].insert_key(key);
            }
            Acc::Hll(_) => {
                // The same value hashes the same in every segment: strings by their 128-bit hash (see
                // [`CouponTable`]), numbers as i64 / f64 bits.
                let coupon = match key {
                    DistinctKey::Int(i) => Coupon::from_value(i),
                    DistinctKey::Float(f) => Coupon::from_value(f),
                    DistinctKey::Str(s) => Coupon::from_value(s),
                    DistinctKey::Bool(b) => Coupon::from_value(b),
                };
                self.add_coupon(g, coupon)?;
            }
            _ => {
                return Err(internal(
                    "a distinct key for an aggregate without distinct keys",
                ))
            }
        }
        Ok(())
    }

    /// Adds a HyperLogLog coupon (a hashed value) to group `g`.
    pub fn add_coupon(&mut self, g: usize, coupon: Coupon) -> Result<()> {
        let Acc::Hll(groups) = self else {
            return Err(internal(
                "a coupon for an aggregate that is not a HyperLogLog",
            ));
        };
        let slot = groups
            .get_mut(g)
            .ok_or_else(|| internal("a group id past the sketches"))?;
        add_to_sketch(slot, coupon)
    }

    /// Turns COUNT(DISTINCT) sets kept as dictionary codes into hashed keys.
    fn hash_codes(&mut self) {
        if let Acc::Distinct(sets) = self {
            sets.iter_mut().for_each(DistinctSet::hash_codes);
        }
    }

    /// Merges group `from` of `other` into group `to` of `self` (same kind). An integer SUM past the bigint
    /// range is the same error here, across segments and shares, as within one segment ([`add_checked`]).
    pub fn merge(&mut self, to: usize, other: &Acc, from: usize) -> Result<()> {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => a[to] += b[from],
            (Acc::SumInt(a), Acc::SumInt(b)) => {
                if let Some(x) = b[from] {
                    add_checked(&mut a[to], x)?;
                }
            }
            (Acc::SumFloat(a), Acc::SumFloat(b)) => {
                if let Some(x) = b[from] {
                    a[to] = Some(a[to].unwrap_or(0.0) + x);
                }
            }
            (Acc::Avg(s, c), Acc::Avg(s2, c2)) => {
                s[to] += s2[from];
                c[to] += c2[from];
            }
            (Acc::MinMaxInt { values: a, max }, Acc::MinMaxInt { values: b, .. }) => {
                if let Some(x) = b[from] {
                    a[to] = Some(match a[to] {
                        None => x,
                        Some(c) if *max => c.max(x),
                        Some(c) => c.min(x),
                    });
                }
            }
            (Acc::MinMaxFloat { values: a, max }, Acc::MinMaxFloat { values: b, .. }) => {
                if let Some(x) = b[from] {
                    a[to] = Some(match a[to] {
                        None => x,
                        Some(c) if *max => {
                            if x.total_cmp(&c).is_gt() {
                                x
                            } else {
                                c
                            }
                        }
                        Some(c) => {
                            if x.total_cmp(&c).is_lt() {
                                x
                            } else {
                                c
                            }
                        }
                    });
                }
            }
            (Acc::MinMax { values: a, max }, Acc::MinMax { values: b, .. }) => {
                if let Some(x) = &b[from] {
                    let better = match &a[to] {
                        None => true,
                        Some(cur) => {
                            let ord = compare_scalars(x, cur);
                            if *max {
                                ord == std::cmp::Ordering::Greater
                            } else {
                                ord == std::cmp::Ordering::Less
                            }
                        }
                    };
                    if better {
                        a[to] = Some(x.clone());
                    }
                }
            }
            (Acc::Distinct(a), Acc::Distinct(b)) => a[to].merge(&b[from]),
            (Acc::Percentile { values: a, .. }, Acc::Percentile { values: b, .. }) => {
                a[to].extend_from_slice(&b[from]);
            }
            (Acc::Hll(a), Acc::Hll(b)) => {
                if let Some(other) = &b[from] {
                    match &mut a[to] {
                        Some(h) => h.merge(other),
                        slot => *slot = Some(other.clone()),
                    }
                }
            }
            (Acc::Quantile { states: a, .. }, Acc::Quantile { states: b, .. }) => {
                if let Some(other) = &b[from] {
                    match &mut a[to] {
                        Some(d) => d.merge(other),
                        slot => *slot = Some(other.clone()),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The final values as an array of type `ty`.
    pub fn finish(&mut self, ty: &DataType) -> Result<ArrayRef> {
        Ok(match self {
            Acc::Count(v) => Arc::new(Int64Array::from(v.clone())),
            Acc::SumInt(v) => Arc::new(Int64Array::from(v.clone())),
            Acc::SumFloat(v) => Arc::new(Float64Array::from(v.clone())),
            Acc::Avg(s, c) => Arc::new(Float64Array::from(
                s.iter()
                    .zip(c)
                    .map(|(s, c)| (*c > 0).then(|| s / *c as f64))
                    .collect::<Vec<_>>(),
            )),
            Acc::MinMax { values, .. } => {
                scalars_to_array(values.iter().map(|v| v.clone().unwrap_or(Scalar::Null)), ty)?
            }
            Acc::MinMaxInt { values, .. } => {
                let a: ArrayRef = Arc::new(Int64Array::from(values.clone()));
                crate::expr::cast_to(&a, ty)?
            }
            Acc::MinMaxFloat { values, .. } => Arc::new(Float64Array::from(values.clone())),
            Acc::Distinct(sets) => Arc::new(Int64Array::from(
                sets.iter().map(|s| s.len() as i64).collect::<Vec<_>>(),
            )),
            Acc::Percentile { values, q, cont } => {
                // Selection reorders each group's values in place (no copy of them): this is the last use.
                let out: Vec<Option<f64>> = values
                    .iter_mut()
                    .map(|v| percentile_unsorted(v, *q, *cont))
                    .collect();
                let a: ArrayRef = Arc::new(Float64Array::from(out));
                crate::expr::cast_to(&a, ty)?
            }
            Acc::Hll(groups) => Arc::new(Int64Array::from(
                groups
                    .iter()
                    .map(|h| h.as_ref().map_or(0, |h| h.estimate().round() as i64))
                    .collect::<Vec<_>>(),
            )),
            Acc::Quantile { states, q } => {
                let mut out = Vec::with_capacity(states.len());
                for d in states {
                    out.push(match d {
                        Some(d) => d.quantile(*q)?,
                        None => None,
                    });
                }
                Arc::new(Float64Array::from(out))
            }
        })
    }
}

fn new_sketch() -> Result<HllSketch> {
    HllSketch::new(HLL_LG_K, HllType::Hll8)
        .map_err(|e| QueryError::Execution(format!("HyperLogLog: {e}")))
}

/// One group's HyperLogLog: a sketch while a share adds values to it (coupons go straight in), a union once
/// partials merge into it.
#[derive(Debug, Clone)]
pub enum HllGroup {
    Sketch(HllSketch),
    Union(HllUnion),
}

impl HllGroup {
    #[inline]
    fn add(&mut self, coupon: Coupon) -> Result<()> {
        match self {
            HllGroup::Sketch(s) => s.update_with_coupon(coupon),
            HllGroup::Union(u) => {
                // (Values arrive before merges; this keeps a late one correct all the same.)
                let mut s = new_sketch()?;
                s.update_with_coupon(coupon);
                u.update(&s);
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: &HllGroup) {
        let sketch = match other {
            HllGroup::Sketch(s) => std::borrow::Cow::Borrowed(s),
            HllGroup::Union(u) => std::borrow::Cow::Owned(u.to_sketch(HllType::Hll8)),
        };
        match self {
            HllGroup::Union(u) => u.update(&sketch),
            HllGroup::Sketch(mine) => {
                // HLL_LG_K is a valid precision: creating the union does not fail.
                if let Ok(mut u) = HllUnion::new(HLL_LG_K) {
                    u.update(mine);
                    u.update(&sketch);
                    *self = HllGroup::Union(u);
                }
            }
        }
    }

    fn estimate(&self) -> f64 {
        match self {
            HllGroup::Sketch(s) => s.estimate(),
            HllGroup::Union(u) => u.estimate(),
        }
    }
}

/// Each value of a segment's dictionary as a HyperLogLog coupon (its XXH3-128 hash, hashed as the sketch
/// hashes: the same coupon `DistinctKey::Str` gives), computed once per segment in one sequential pass, so
/// APPROX_COUNT_DISTINCT over a dictionary-coded column costs a table lookup and a sketch update per row.
pub struct CouponTable {
    values: StringArray,
    coupons: Vec<Coupon>,
}

impl CouponTable {
    pub fn new(values: &StringArray) -> CouponTable {
        let coupons = (0..values.len())
            .map(|i| {
                Coupon::from_value(twox_hash::XxHash3_128::oneshot(values.value(i).as_bytes()))
            })
            .collect();
        CouponTable {
            values: values.clone(),
            coupons,
        }
    }

    /// Estimated heap bytes.
    pub fn memory_bytes(&self) -> usize {
        self.coupons.capacity() * std::mem::size_of::<Coupon>()
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

fn internal(what: &str) -> QueryError {
    QueryError::internal(what)
}

/// Sum of `vals` at `rows` (or all of `vals`) in eight interleaved lanes, so the loop vectorizes; the lane
/// order is fixed, so the same block always sums to the same bits.
fn sum_f64(vals: &[f64], rows: &[u32], all: bool) -> f64 {
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
fn sum_i64(vals: &[i64]) -> i128 {
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

fn as_f64(a: &ArrayRef) -> Result<ArrayRef> {
    crate::expr::cast_to(a, &DataType::Float64)
}

/// The value at row `r` (not null) as a scalar.
pub fn scalar_at(a: &ArrayRef, r: usize) -> Result<Scalar> {
    if a.is_null(r) {
        return Ok(Scalar::Null);
    }
    Ok(match a.data_type() {
        DataType::Int64 => Scalar::Int(a.as_primitive::<Int64Type>().value(r)),
        DataType::Float64 => Scalar::Float(a.as_primitive::<Float64Type>().value(r)),
        DataType::Utf8 => Scalar::Str(a.as_string::<i32>().value(r).to_string()),
        DataType::Boolean => Scalar::Bool(a.as_boolean().value(r)),
        DataType::Timestamp(_, _) => {
            Scalar::Timestamp(a.as_primitive::<TimestampMillisecondType>().value(r))
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            if d.values().is_empty() {
                return Ok(Scalar::Null);
            }
            let k = d.normalized_keys()[r];
            scalar_at(d.values(), k)?
        }
        DataType::Null => Scalar::Null,
        other => {
            return Err(QueryError::Execution(format!(
                "unsupported value type {other}"
            )))
        }
    })
}

fn distinct_key(a: &ArrayRef, r: usize) -> Result<DistinctKey> {
    Ok(match scalar_at(a, r)? {
        Scalar::Int(i) | Scalar::Timestamp(i) => DistinctKey::Int(i),
        Scalar::Float(f) => DistinctKey::Float(if f == 0.0 { 0 } else { f.to_bits() }),
        Scalar::Str(s) => string_key(&s),
        Scalar::Bool(b) => DistinctKey::Bool(b),
        Scalar::Null => DistinctKey::Int(0),
    })
}

/// Orders scalars of one type; NULL last.
pub fn compare_scalars(a: &Scalar, b: &Scalar) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Scalar::Null, Scalar::Null) => Ordering::Equal,
        (Scalar::Null, _) => Ordering::Greater,
        (_, Scalar::Null) => Ordering::Less,
        (Scalar::Int(x), Scalar::Int(y)) | (Scalar::Timestamp(x), Scalar::Timestamp(y)) => x.cmp(y),
        (Scalar::Float(x), Scalar::Float(y)) => x.total_cmp(y),
        (Scalar::Str(x), Scalar::Str(y)) => x.cmp(y),
        (Scalar::Bool(x), Scalar::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Builds an array of type `ty` from scalars.
pub fn scalars_to_array(values: impl Iterator<Item = Scalar>, ty: &DataType) -> Result<ArrayRef> {
    let values: Vec<Scalar> = values.collect();
    Ok(match ty {
        DataType::Int64 => Arc::new(Int64Array::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Int(i) => Some(*i),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Float64 => Arc::new(Float64Array::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Float(f) => Some(*f),
                    Scalar::Int(i) => Some(*i as f64),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Utf8 => Arc::new(StringArray::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Boolean => Arc::new(BooleanArray::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        t if *t == TS => Arc::new(TimestampMillisecondArray::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Timestamp(t) => Some(*t),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Null => new_null_array(&DataType::Null, values.len()),
        other => {
            return Err(QueryError::Execution(format!(
                "cannot build a column of type {other}"
            )))
        }
    })
}

/// One key column of a block, as words: dictionary codes for string columns, value bits otherwise.
pub enum KeyWords {
    /// Codes into a dictionary (per segment), with the dictionary's values to decode them.
    Codes {
        codes: Vec<u32>,
        valid: Option<BooleanArray>,
        values: ArrayRef,
    },
    /// Any other array, decoded per group when the segment ends.
    Values(ArrayRef),
}

impl KeyWords {
    /// The key column `a`; dictionary codes are widened into a buffer taken from `pool` (block-sized buffers
    /// handed back by [`KeyWords::into_buffer`], so blocks reuse one allocation instead of faulting in fresh
    /// pages). Other columns leave the pool as it is.
    pub fn from_array(a: ArrayRef, pool: &mut Vec<Vec<u32>>) -> KeyWords {
        fn widen<K: Copy + Into<u32>>(buf: &mut Vec<u32>, keys: &[K]) {
            buf.extend(keys.iter().map(|k| (*k).into()));
        }
        if let DataType::Dictionary(k, _) = a.data_type() {
            let d = a.as_any_dictionary();
            let values = d.values().clone();
            let mut buf = pool.pop().unwrap_or_default();
            buf.clear();
            match k.as_ref() {
                DataType::UInt8 => widen(&mut buf, a.as_dictionary::<UInt8Type>().keys().values()),
                DataType::UInt16 => {
                    widen(&mut buf, a.as_dictionary::<UInt16Type>().keys().values())
                }
                DataType::UInt32 => {
                    widen(&mut buf, a.as_dictionary::<UInt32Type>().keys().values())
                }
                _ => buf.extend(d.normalized_keys().iter().map(|c| *c as u32)),
            };
            let valid = a
                .nulls()
                .map(|n| BooleanArray::new(n.inner().clone(), None));
            return KeyWords::Codes {
                codes: buf,
                valid,
                values,
            };
        }
        KeyWords::Values(a)
    }

    /// The codes buffer, for the next block's [`KeyWords::from_array`].
    pub fn into_buffer(self) -> Option<Vec<u32>> {
        match self {
            KeyWords::Codes { codes, .. } => Some(codes),
            KeyWords::Values(_) => None,
        }
    }

    /// The words of the selected `rows` (one typed loop per block) and, when the column has NULLs, which are
    /// NULL. Strings computed by expressions are interned in `strings`, so their words are exact too.
    fn words(&self, rows: &[u32], strings: &mut Interner, out: &mut KeyBuffer) {
        fn pick(out: &mut Vec<u64>, rows: &[u32], f: impl Fn(usize) -> u64) {
            out.extend(rows.iter().map(|r| f(*r as usize)));
        }
        let (words, nulls) = (&mut out.words, &mut out.nulls);
        words.clear();
        nulls.clear();
        out.has_nulls = false;
        match self {
            KeyWords::Codes { codes, valid, .. } => {
                pick(words, rows, |r| u64::from(codes[r]));
                if let Some(v) = valid {
                    out.has_nulls = true;
                    nulls.extend(rows.iter().map(|r| !v.value(*r as usize)));
                }
            }
            KeyWords::Values(a) => {
                if a.null_count() > 0 {
                    out.has_nulls = true;
                    nulls.extend(rows.iter().map(|r| a.is_null(*r as usize)));
                }
                match a.data_type() {
                    DataType::Int64 => {
                        let v = a.as_primitive::<Int64Type>().values();
                        pick(words, rows, |r| v[r] as u64)
                    }
                    DataType::Timestamp(_, _) => {
                        let v = a.as_primitive::<TimestampMillisecondType>().values();
                        pick(words, rows, |r| v[r] as u64)
                    }
                    DataType::Float64 => {
                        let v = a.as_primitive::<Float64Type>().values();
                        // -0.0 and 0.0 are one group.
                        pick(
                            words,
                            rows,
                            |r| if v[r] == 0.0 { 0 } else { v[r].to_bits() },
                        )
                    }
                    DataType::Boolean => {
                        let v = a.as_boolean();
                        pick(words, rows, |r| u64::from(v.value(r)))
                    }
                    DataType::Utf8 => {
                        let v = a.as_string::<i32>();
                        words.extend(rows.iter().map(|r| strings.id(v.value(*r as usize))))
                    }
                    _ => words.extend(rows.iter().map(|r| {
                        let text = scalar_at(a, *r as usize)
                            .map(|s| format!("{s:?}"))
                            .unwrap_or_default();
                        strings.id(&text)
                    })),
                }
            }
        }
    }

    pub fn scalar(&self, r: usize) -> Result<Scalar> {
        match self {
            KeyWords::Codes {
                codes,
                valid,
                values,
            } => {
                if valid.as_ref().is_some_and(|v| !v.value(r)) {
                    Ok(Scalar::Null)
                } else {
                    scalar_at(values, codes[r] as usize)
                }
            }
            KeyWords::Values(a) => scalar_at(a, r),
        }
    }
}

/// The dictionary codes a COUNT(DISTINCT) or HyperLogLog aggregate saw in one segment share, per group, before
/// they become keys: a row costs a push of its code, and each distinct code is hashed once per share (when the
/// share ends) instead of once per row.
#[derive(Default)]
pub struct CodeBuffer {
    codes: Vec<Vec<u32>>,
    /// The dictionary values the codes index (the segment's dictionary).
    values: Option<StringArray>,
    /// HyperLogLog over a segment's dictionary: its values' coupons, so rows go straight into the sketches.
    coupons: Option<Arc<CouponTable>>,
}

impl CodeBuffer {
    /// A buffer for HyperLogLog over the dictionary `table` was built from.
    pub fn with_coupons(table: Arc<CouponTable>) -> CodeBuffer {
        CodeBuffer {
            coupons: Some(table),
            ..Default::default()
        }
    }

    /// Buffers the codes of `rows` (group `gids[i]` for `rows[i]`) when `v` is a dictionary-coded string array
    /// over the same dictionary as before; returns false (nothing buffered) otherwise.
    pub fn add(&mut self, acc: &mut Acc, gids: &[u32], rows: &[u32], v: &ArrayRef) -> Result<bool> {
        let Some(d) = v.as_any_dictionary_opt() else {
            return Ok(false);
        };
        let Some(values) = d.values().as_string_opt::<i32>() else {
            return Ok(false);
        };
        if let (Some(t), Acc::Hll(groups)) = (&self.coupons, &mut *acc) {
            if same_strings(&t.values, values) {
                // The keys at their stored width, read in place; NULLs checked only when the block has any.
                use arrow_array::types::{UInt16Type, UInt32Type, UInt8Type};
                let nulls = v.logical_nulls();
                if let Some(k) = v.as_dictionary_opt::<UInt8Type>() {
                    add_coupons(groups, &t.coupons, k.keys().values(), gids, rows, nulls)?;
                } else if let Some(k) = v.as_dictionary_opt::<UInt16Type>() {
                    add_coupons(groups, &t.coupons, k.keys().values(), gids, rows, nulls)?;
                } else if let Some(k) = v.as_dictionary_opt::<UInt32Type>() {
                    add_coupons(groups, &t.coupons, k.keys().values(), gids, rows, nulls)?;
                } else {
                    let keys: Vec<u32> = d.normalized_keys().iter().map(|k| *k as u32).collect();
                    add_coupons(groups, &t.coupons, &keys, gids, rows, nulls)?;
                }
                return Ok(true);
            }
        }
        let same = self
            .values
            .as_ref()
            .is_some_and(|p| same_strings(p, values));
        if !same {
            self.flush(acc)?;
            self.values = Some(values.clone());
        }
        let keys = d.normalized_keys();
        for (g, r) in gids.iter().zip(rows) {
            let r = *r as usize;
            if v.is_valid(r) {
                let g = *g as usize;
                if self.codes.len() <= g {
                    self.codes.resize_with(g + 1, Vec::new);
                }
                self.codes[g].push(keys[r] as u32);
            }
        }
        Ok(true)
    }

    /// Estimated heap bytes of the buffered codes.
    pub fn memory_bytes(&self) -> usize {
        self.codes.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.codes.iter().map(|c| c.capacity() * 4).sum::<usize>()
            + self.coupons.as_ref().map_or(0, |t| t.memory_bytes())
    }

    /// Turns the buffered codes into keys of `acc`.
    pub fn flush(&mut self, acc: &mut Acc) -> Result<()> {
        let Some(values) = &self.values else {
            return Ok(());
        };
        for (g, codes) in self.codes.iter_mut().enumerate() {
            codes.sort_unstable();
            codes.dedup();
            if let Acc::Distinct(sets) = &mut *acc {
                if let Some(set) = sets.get_mut(g) {
                    set.add_codes(values, codes);
                    codes.clear();
                    continue;
                }
            }
            for c in codes.iter() {
                let s = values.value(*c as usize);
                acc.add_key(g, string_key(s))?;
            }
            codes.clear();
        }
        Ok(())
    }
}

/// Adds the coupon of each row's code (`coupons[keys[rows[i]]]`) to group `gids[i]`'s sketch.
fn add_coupons<K: Copy + Into<u32>>(
    groups: &mut [Option<Box<HllGroup>>],
    coupons: &[Coupon],
    keys: &[K],
    gids: &[u32],
    rows: &[u32],
    nulls: Option<arrow_buffer::NullBuffer>,
) -> Result<()> {
    // Two passes: first every row's coupon (loads from a table the size of the dictionary that do not depend on
    // one another, so the CPU overlaps their cache misses), then the sketch updates.
    let mut picked: Vec<(u32, Coupon)> = Vec::with_capacity(rows.len());
    for (g, r) in gids.iter().zip(rows) {
        let r = *r as usize;
        if nulls.as_ref().is_some_and(|n| n.is_null(r)) {
            continue;
        }
        let code = keys.get(r).map(|k| (*k).into() as usize);
        let c = code
            .and_then(|c| coupons.get(c))
            .copied()
            .ok_or_else(|| internal("a dictionary code past the segment's dictionary"))?;
        picked.push((*g, c));
    }
    // Then the updates group by group, so each group's sketch stays in cache while its rows go in, instead of
    // every row touching another group's sketch.
    let (starts, sorted) = by_group(groups.len(), &picked)?;
    for (g, slot) in groups.iter_mut().enumerate() {
        for c in &sorted[starts[g]..starts[g + 1]] {
            add_to_sketch(slot, *c)?;
        }
    }
    Ok(())
}

/// Adds `x` to an integer SUM's state (`None` until its first value); past the bigint range is an error, as in
/// PostgreSQL.
#[inline]
fn add_checked(sum: &mut Option<i64>, x: i64) -> Result<()> {
    *sum = Some(match *sum {
        Some(p) => p
            .checked_add(x)
            .ok_or_else(|| QueryError::OutOfRange("bigint out of range in SUM".into()))?,
        None => x,
    });
    Ok(())
}

/// The runs of equal group ids in `gids`: each run's group and its positions.
fn runs(gids: &[u32]) -> impl Iterator<Item = (u32, std::ops::Range<usize>)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let g = *gids.get(i)?;
        let start = i;
        i += 1;
        while gids.get(i) == Some(&g) {
            i += 1;
        }
        Some((g, start..i))
    })
}

/// Whether `gids` comes in runs long enough (8 rows on average) to be worth adding up a run at a time: time
/// buckets over rows in time order do; a key like country does not, and there the run loop's branch costs more
/// than it saves (a day-by-device count went 80 -> 96 ms).
/// Judged on the first 1024 ids, so the check costs next to nothing per row.
fn long_runs(gids: &[u32]) -> bool {
    let sample = &gids[..gids.len().min(1024)];
    let changes = sample.windows(2).filter(|w| w[0] != w[1]).count();
    changes.saturating_mul(8) < sample.len()
}

/// Up to this many groups, a block's counts are tallied in four lanes (see [`count_runs`]).
const SPLIT_COUNT_GROUPS: usize = 4096;

/// Adds each row to its group's count, a run of one group at a time when runs are long (see [`runs`]).
fn count_runs(gids: &[u32], counts: &mut [i64]) -> Result<()> {
    if !long_runs(gids) {
        if counts.len() <= SPLIT_COUNT_GROUPS && gids.len() >= 4 * counts.len() {
            // Four tallies, one per lane of four rows: a frequent group's next row adds to another tally
            // instead of waiting on the store to the one it just added to.
            let n = counts.len();
            let mut lanes = vec![0u32; 4 * n];
            let (a, rest) = lanes.split_at_mut(n);
            let (b, rest) = rest.split_at_mut(n);
            let (c, d) = rest.split_at_mut(n);
            let mut quads = gids.chunks_exact(4);
            for q in &mut quads {
                a[q[0] as usize] += 1;
                b[q[1] as usize] += 1;
                c[q[2] as usize] += 1;
                d[q[3] as usize] += 1;
            }
            quads.remainder().iter().for_each(|g| a[*g as usize] += 1);
            for (i, total) in counts.iter_mut().enumerate() {
                *total += i64::from(a[i]) + i64::from(b[i]) + i64::from(c[i]) + i64::from(d[i]);
            }
            return Ok(());
        }
        gids.iter().for_each(|g| counts[*g as usize] += 1);
        return Ok(());
    }
    for (g, run) in runs(gids) {
        *counts
            .get_mut(g as usize)
            .ok_or_else(|| internal("a group id past the counts"))? += run.len() as i64;
    }
    Ok(())
}

/// `(group, value)` pairs regrouped by a counting sort: group `g`'s values are `sorted[starts[g]..starts[g + 1]]`,
/// in their order in `pairs`.
fn by_group<T: Copy>(groups: usize, pairs: &[(u32, T)]) -> Result<(Vec<usize>, Vec<T>)> {
    let mut starts = vec![0usize; groups + 1];
    for (g, _) in pairs {
        let s = starts
            .get_mut(*g as usize + 1)
            .ok_or_else(|| internal("a group id past the groups"))?;
        *s += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let Some(&(_, fill)) = pairs.first() else {
        return Ok((starts, Vec::new()));
    };
    let mut sorted = vec![fill; pairs.len()];
    let mut at = starts.clone();
    for (g, v) in pairs {
        let i = &mut at[*g as usize];
        sorted[*i] = *v;
        *i += 1;
    }
    Ok((starts, sorted))
}

/// Adds `coupon` to a group's HyperLogLog, creating its sketch on the first value.
fn add_to_sketch(slot: &mut Option<Box<HllGroup>>, coupon: Coupon) -> Result<()> {
    match slot {
        Some(h) => h.add(coupon),
        None => {
            let mut s = new_sketch()?;
            s.update_with_coupon(coupon);
            *slot = Some(Box::new(HllGroup::Sketch(s)));
            Ok(())
        }
    }
}

/// One group's distinct values for COUNT(DISTINCT). While every value came from dictionaries, one run per
/// dictionary of its codes, sorted and distinct: the shares of a segment merge by a sorted union, and since a
/// dictionary is sorted, each run lists its strings in order, so the count over several segments is a merge of
/// sorted string lists (reading each dictionary in order) instead of hashing every string into a table of
/// millions (82% of a 100M-row distinct-users-per-day query, where a day spans three segments). Values not from
/// a dictionary, or more than [`MAX_RUNS`] dictionaries, turn the set into hashed keys.
#[derive(Debug, Clone, Default)]
pub struct DistinctSet {
    /// Set only while `keys` is empty; one per dictionary.
    runs: Vec<CodeSet>,
    keys: HashSet<DistinctKey>,
}

/// Dictionaries one distinct set keeps as sorted runs before it hashes them.
const MAX_RUNS: usize = 256;

#[derive(Debug, Clone)]
struct CodeSet {
    values: StringArray,
    /// Sorted, distinct, each below `values.len()`.
    codes: Vec<u32>,
}

impl DistinctSet {
    /// The number of distinct values (with several runs, a merge of their sorted strings).
    pub fn len(&self) -> usize {
        match self.runs.as_slice() {
            [] => self.keys.len(),
            [one] => one.codes.len(),
            runs => distinct_in_runs(runs),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.iter().all(|r| r.codes.is_empty()) && self.keys.is_empty()
    }

    fn memory_bytes(&self) -> usize {
        self.runs
            .iter()
            .map(|r| r.codes.capacity() * 4)
            .sum::<usize>()
            + self.runs.capacity() * std::mem::size_of::<CodeSet>()
            + crate::memory::table_bytes(self.keys.capacity(), std::mem::size_of::<DistinctKey>())
    }

    pub fn insert_key(&mut self, key: DistinctKey) {
        self.hash_codes();
        self.keys.insert(key);
    }

    /// Adds sorted, distinct `codes` of dictionary `values`.
    fn add_codes(&mut self, values: &StringArray, codes: &[u32]) {
        if !self.keys.is_empty() {
            self.keys.reserve(codes.len());
            self.keys
                .extend(codes.iter().map(|c| string_key(values.value(*c as usize))));
            return;
        }
        if let Some(mine) = self
            .runs
            .iter_mut()
            .find(|r| same_strings(&r.values, values))
        {
            mine.codes = sorted_union(&mine.codes, codes);
            return;
        }
        self.runs.push(CodeSet {
            values: values.clone(),
            codes: codes.to_vec(),
        });
        if self.runs.len() > MAX_RUNS {
            self.hash_codes();
        }
    }

    /// Turns runs of codes into hashed keys.
    fn hash_codes(&mut self) {
        for c in std::mem::take(&mut self.runs) {
            self.keys.reserve(c.codes.len());
            self.keys.extend(
                c.codes
                    .iter()
                    .map(|code| string_key(c.values.value(*code as usize))),
            );
        }
    }

    fn merge(&mut self, other: &DistinctSet) {
        if other.keys.is_empty() {
            for run in &other.runs {
                self.add_codes(&run.values, &run.codes);
            }
            return;
        }
        self.hash_codes();
        let theirs = &other.keys;
        if self.keys.len() < theirs.len() {
            // Copy the larger set's table and insert the smaller one into it.
            let small = std::mem::replace(&mut self.keys, theirs.clone());
            self.keys.extend(small);
        } else {
            self.keys.reserve(theirs.len());
            self.keys.extend(theirs.iter().copied());
        }
    }
}

/// The number of distinct strings in several runs, each sorted and distinct: a k-way merge that counts a string
/// when it differs from the one before.
fn distinct_in_runs(runs: &[CodeSet]) -> usize {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let at = |run: usize, i: usize| -> Option<&str> {
        let r = &runs[run];
        r.codes.get(i).map(|c| r.values.value(*c as usize))
    };
    let mut heap: BinaryHeap<Reverse<(&str, usize, usize)>> = (0..runs.len())
        .filter_map(|run| at(run, 0).map(|s| Reverse((s, run, 0))))
        .collect();
    let mut count = 0;
    let mut last: Option<&str> = None;
    while let Some(Reverse((s, run, i))) = heap.pop() {
        if last != Some(s) {
            count += 1;
            last = Some(s);
        }
        if let Some(next) = at(run, i + 1) {
            heap.push(Reverse((next, run, i + 1)));
        }
    }
    count
}

/// A string as COUNT(DISTINCT) keys it.
fn string_key(s: &str) -> DistinctKey {
    DistinctKey::Str(twox_hash::XxHash3_128::oneshot(s.as_bytes()))
}

/// The sorted union of two sorted, distinct lists.
fn sorted_union(a: &[u32], b: &[u32]) -> Vec<u32> {
    merge_sorted(a, b, u32::cmp, |x, _| x)
}

/// Two lists sorted by `cmp`, each without equal items, merged into one; items equal in both become
/// `both(from a, from b)`.
pub(crate) fn merge_sorted<T: Copy>(
    a: &[T],
    b: &[T],
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
    both: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match cmp(&a[i], &b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(both(a[i], b[j]));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Whether two string arrays are the same buffers (a segment's dictionary handed to every block): pointers
/// compared, nothing copied.
pub(crate) fn same_strings(a: &StringArray, b: &StringArray) -> bool {
    a.len() == b.len()
        && a.values().as_ptr() == b.values().as_ptr()
        && a.offsets().as_ptr() == b.offsets().as_ptr()
}

/// Dictionaries up to this size are indexed densely as the second of two keys.
const SMALL_DICTIONARY: usize = 1024;

/// One key column's words for the selected rows of a block, and which rows are NULL (when `has_nulls`): kept
/// by the group table and refilled per block.
#[derive(Default)]
struct KeyBuffer {
    words: Vec<u64>,
    nulls: Vec<bool>,
    has_nulls: bool,
}

/// Several dictionary-coded keys go through one dense table up to this many combinations (their dictionaries'
/// sizes, each plus one for NULL, multiplied): 256 KiB of group ids.
const MAX_COMBINED_SLOTS: usize = 65_536;

/// For keys that are all dictionary-coded with at most [`MAX_COMBINED_SLOTS`] combinations: each key's stride in
/// the combined slot, and the table size last.
fn combined_strides(key_cols: &[KeyWords]) -> Option<Vec<usize>> {
    let mut strides = vec![1usize];
    for k in key_cols {
        let KeyWords::Codes { values, .. } = k else {
            return None;
        };
        let next = strides.last()?.checked_mul(values.len() + 1)?;
        if next > MAX_COMBINED_SLOTS {
            return None;
        }
        strides.push(next);
    }
    Some(strides)
}

/// The dense slot of row `r` of a dictionary-coded key: its code, or `card` (the dictionary's size) for NULL.
fn code_slot(codes: &[u32], valid: Option<&BooleanArray>, card: usize, r: usize) -> usize {
    if valid.is_some_and(|v| !v.value(r)) {
        card
    } else {
        codes[r] as usize
    }
}

/// The dictionary size of a dictionary-coded key column, when it is small.
fn small_codes(k: &KeyWords) -> Option<usize> {
    match k {
        KeyWords::Codes { values, .. } if values.len() <= SMALL_DICTIONARY => Some(values.len()),
        _ => None,
    }
}

/// Distinct strings of computed keys, numbered in order of first sight.
#[derive(Default)]
struct Interner(hashbrown::HashMap<Box<str>, u64>);

impl Interner {
    fn id(&mut self, s: &str) -> u64 {
        if let Some(id) = self.0.get(s) {
            return *id;
        }
        let id = self.0.len() as u64;
        self.0.insert(s.into(), id);
        id
    }
}

/// Group table of one segment: words of a key to a group id, the decoded key of each group.
#[derive(Default)]
pub struct GroupTable {
    /// One or two words (the common shapes: a time bucket, a bucket and a dimension, two dimensions).
    map1: hashbrown::HashMap<u64, u32>,
    map2: hashbrown::HashMap<[u64; 2], u32>,
    /// Two words whose second is a small dictionary code: first word to a row of `nested`, indexed by code.
    nested_index: hashbrown::HashMap<u64, usize>,
    nested: Vec<Vec<u32>>,
    /// Any other shape: the words, then a word of NULL flags.
    map: hashbrown::HashMap<Box<[u64]>, u32>,
    strings: Interner,
    /// Dense ids for one dictionary-coded key: `dense[code]` (+1 slot for NULL); u32::MAX = unassigned.
    dense: Vec<u32>,
    /// Dense groups keep their code (the dictionary's length for NULL) and are decoded only after the shares
    /// of a segment are merged by code: `keys` holds empty placeholders for them meanwhile.
    dense_codes: Vec<u32>,
    dense_values: Option<ArrayRef>,
    /// Some block took another path: keys are decoded as groups appear.
    mixed: bool,
    /// Per key column, the words of the current block.
    buffers: Vec<KeyBuffer>,
    /// Several dictionary-coded keys with few combinations: the group of each combined slot (u32::MAX = none
    /// yet), and the current block's slots.
    combined: Vec<u32>,
    combined_values: Vec<ArrayRef>,
    slots: Vec<u32>,
    /// Shares grouped stretch by stretch ([`TimeRuns`]): the time keys of a stretch to a row of `run_rows`,
    /// which holds the group of each code of the string key (its last slot for NULL), or the one group.
    run_index: hashbrown::HashMap<Vec<i64>, usize>,
    run_rows: Vec<Vec<u32>>,
    pub keys: Vec<KeyRow>,
}

impl GroupTable {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Estimated heap bytes of the table and its decoded keys.
    pub fn memory_bytes(&self) -> usize {
        use crate::memory::table_bytes;
        use std::mem::size_of;
        table_bytes(self.map1.capacity(), 12)
            + table_bytes(self.map2.capacity(), 20)
            + table_bytes(self.nested_index.capacity(), 16)
            + self.nested.capacity() * size_of::<Vec<u32>>()
            + self.nested.iter().map(|r| r.capacity() * 4).sum::<usize>()
            + table_bytes(self.map.capacity(), size_of::<Box<[u64]>>() + 4)
            + self.map.keys().map(|k| k.len() * 8).sum::<usize>()
            + table_bytes(self.strings.0.capacity(), size_of::<Box<str>>() + 8)
            + self.strings.0.keys().map(|k| k.len()).sum::<usize>()
            + self.dense.capacity() * 4
            + (self.combined.capacity() + self.slots.capacity()) * 4
            + table_bytes(self.run_index.capacity(), size_of::<Vec<i64>>() + 8)
            + self
                .run_rows
                .iter()
                .map(|r| r.capacity() * 4 + 8 * 4)
                .sum::<usize>()
            + key_rows_bytes(&self.keys)
    }

    /// Group ids of the selected `rows`, into `gids` (cleared first).
    pub fn assign(
        &mut self,
        key_cols: &[KeyWords],
        rows: &[u32],
        dict_len: Option<usize>,
        gids: &mut Vec<u32>,
    ) -> Result<()> {
        gids.clear();
        if key_cols.is_empty() {
            if self.keys.is_empty() {
                self.keys.push(Vec::new());
            }
            gids.resize(rows.len(), 0);
            return Ok(());
        }
        if let (1, Some(card), Some(KeyWords::Codes { codes, valid, .. })) =
            (key_cols.len(), dict_len, key_cols.first())
        {
            if self.dense.len() < card + 1 {
                self.dense.resize(card + 1, u32::MAX);
            }
            let KeyWords::Codes { values, .. } = &key_cols[0] else {
                return Err(QueryError::internal("dense key without codes"));
            };
            let defer = !self.mixed
                && self
                    .dense_values
                    .as_ref()
                    .is_none_or(|v| same_values(v, values))
                && values.len() == card;
            if defer && self.dense_values.is_none() {
                self.dense_values = Some(values.clone());
            }
            if valid.is_none() {
                // Known codes take a plain gather; rows of codes not seen before are given groups after it,
                // in row order (new groups are rare after a segment's first block).
                let dense = &self.dense;
                gids.extend(rows.iter().map(|r| {
                    dense
                        .get(codes[*r as usize] as usize)
                        .copied()
                        .unwrap_or(u32::MAX)
                }));
                if !gids.contains(&u32::MAX) {
                    return Ok(());
                }
                for (g, r) in gids.iter_mut().zip(rows) {
                    if *g != u32::MAX {
                        continue;
                    }
                    let slot = codes[*r as usize] as usize;
                    *g = self.dense_group(slot, defer, &key_cols[0], *r as usize)?;
                }
                return Ok(());
            }
            for r in rows {
                let r = *r as usize;
                let slot = code_slot(codes, valid.as_ref(), card, r);
                gids.push(self.dense_group(slot, defer, &key_cols[0], r)?);
            }
            return Ok(());
        }
        if key_cols.len() > 1 {
            if let Some(strides) = combined_strides(key_cols) {
                // Slots mean the same keys only under the same dictionaries (one segment's, in every block).
                let same = self.combined_values.is_empty()
                    || key_cols.iter().zip(&self.combined_values).all(|(k, v)| {
                        matches!(k, KeyWords::Codes { values, .. } if same_values(values, v))
                    });
                if same {
                    if self.combined_values.is_empty() {
                        self.combined_values = key_cols
                            .iter()
                            .filter_map(|k| match k {
                                KeyWords::Codes { values, .. } => Some(values.clone()),
                                KeyWords::Values(_) => None,
                            })
                            .collect();
                    }
                    return self.assign_combined(key_cols, &strides, rows, gids);
                }
            }
        }
        self.decode_deferred()?;
        let mut cols = std::mem::take(&mut self.buffers);
        cols.resize_with(key_cols.len(), KeyBuffer::default);
        for (c, buf) in key_cols.iter().zip(cols.iter_mut()) {
            c.words(rows, &mut self.strings, buf);
        }
        let result = self.assign_words(key_cols, &cols, rows, gids);
        self.buffers = cols;
        result
    }

    /// The group of dense slot `slot` (one dictionary key), made on first sight from row `r` of `key`: kept as
    /// its code while the share's groups are deferred, decoded otherwise.
    fn dense_group(&mut self, slot: usize, defer: bool, key: &KeyWords, r: usize) -> Result<u32> {
        if let Some(g) = self.dense.get(slot).copied().filter(|g| *g != u32::MAX) {
            return Ok(g);
        }
        let g = self.keys.len() as u32;
        if defer {
            self.keys.push(Vec::new());
            self.dense_codes.push(slot as u32);
        } else {
            self.decode_deferred()?;
            self.keys.push(vec![key.scalar(r)?]);
        }
        if let Some(d) = self.dense.get_mut(slot) {
            *d = g;
        }
        Ok(g)
    }

    /// Groups of a stretch of rows whose time keys are `buckets` (a share grouped by [`TimeRuns`]): the
    /// stretch's one group when the keys are all time keys; otherwise each row's group, appended to `gids`, from
    /// the codes of the string key (`card` codes in its dictionary).
    pub fn assign_run(
        &mut self,
        shape: &TimeRuns,
        buckets: &[i64],
        codes: Option<(&KeyWords, usize)>,
        rows: &[u32],
        gids: &mut Vec<u32>,
    ) -> Result<Option<u32>> {
        let slots = codes.map_or(1, |(_, card)| card + 1);
        let at = match self.run_index.get(buckets) {
            Some(i) => *i,
            None => {
                self.run_index.insert(buckets.to_vec(), self.run_rows.len());
                self.run_rows.push(vec![u32::MAX; slots]);
                self.run_rows.len() - 1
            }
        };
        let keys = &mut self.keys;
        let mut new_group = |code: Option<Scalar>| -> u32 {
            let mut times = buckets.iter();
            let key = (0..buckets.len() + usize::from(code.is_some()))
                .map(|pos| match (&code, shape.code_position()) {
                    (Some(c), Some(p)) if p == pos => c.clone(),
                    _ => Scalar::Timestamp(times.next().copied().unwrap_or_default()),
                })
                .collect();
            keys.push(key);
            keys.len() as u32 - 1
        };
        let row = &mut self.run_rows[at];
        let Some((words, card)) = codes else {
            if row[0] == u32::MAX {
                row[0] = new_group(None);
            }
            return Ok(Some(row[0]));
        };
        let KeyWords::Codes { codes, valid, .. } = words else {
            return Err(internal("a stretch's string key without codes"));
        };
        for r in rows {
            let r = *r as usize;
            let slot = code_slot(codes, valid.as_ref(), card, r);
            let cell = row
                .get_mut(slot)
                .ok_or_else(|| internal("a code past the dictionary"))?;
            if *cell == u32::MAX {
                *cell = new_group(Some(words.scalar(r)?));
            }
            gids.push(*cell);
        }
        Ok(None)
    }

    /// Group ids of several dictionary-coded keys whose code combinations are few (see [`combined_strides`]):
    /// each row's codes make one slot of a dense table (a key's NULL is the slot past its dictionary), built a
    /// key column at a time, then a gather as for one key; rows of combinations not seen before get groups after
    /// it, in row order.
    fn assign_combined(
        &mut self,
        key_cols: &[KeyWords],
        strides: &[usize],
        rows: &[u32],
        gids: &mut Vec<u32>,
    ) -> Result<()> {
        let size = strides.last().copied().unwrap_or(1);
        if self.combined.len() < size {
            self.combined.resize(size, u32::MAX);
        }
        let slots = &mut self.slots;
        slots.clear();
        slots.resize(rows.len(), 0);
        for (col, stride) in key_cols.iter().zip(strides) {
            let KeyWords::Codes {
                codes,
                valid,
                values,
            } = col
            else {
                return Err(internal("a combined key without codes"));
            };
            let (stride, card) = (*stride as u32, values.len() as u32);
            match valid {
                None => slots.iter_mut().zip(rows).for_each(|(s, r)| {
                    *s = s.wrapping_add(codes[*r as usize].wrapping_mul(stride))
                }),
                Some(v) => slots.iter_mut().zip(rows).for_each(|(s, r)| {
                    let r = *r as usize;
                    let code = if v.value(r) { codes[r] } else { card };
                    *s = s.wrapping_add(code.wrapping_mul(stride));
                }),
            }
        }
        let table = &self.combined;
        gids.extend(
            slots
                .iter()
                .map(|s| table.get(*s as usize).copied().unwrap_or(u32::MAX)),
        );
        if !gids.contains(&u32::MAX) {
            return Ok(());
        }
        for (i, g) in gids.iter_mut().enumerate() {
            if *g != u32::MAX {
                continue;
            }
            let slot = self.slots[i] as usize;
            let cell = self
                .combined
                .get_mut(slot)
                .ok_or_else(|| internal("a combined key past its table"))?;
            if *cell == u32::MAX {
                let r = rows[i] as usize;
                let key = key_cols
                    .iter()
                    .map(|c| c.scalar(r))
                    .collect::<Result<Vec<_>>>()?;
                self.keys.push(key);
                *cell = self.keys.len() as u32 - 1;
            }
            *g = *cell;
        }
        Ok(())
    }

    /// Group ids from the words of each key column (the general path of [`GroupTable::assign`]).
    fn assign_words(
        &mut self,
        key_cols: &[KeyWords],
        cols: &[KeyBuffer],
        rows: &[u32],
        gids: &mut Vec<u32>,
    ) -> Result<()> {
        let any_nulls = cols.iter().any(|c| c.has_nulls);
        let new_group = |keys: &mut Vec<KeyRow>, i: usize| -> Result<u32> {
            let r = rows[i] as usize;
            let key = key_cols
                .iter()
                .map(|c| c.scalar(r))
                .collect::<Result<Vec<_>>>()?;
            keys.push(key);
            Ok(keys.len() as u32 - 1)
        };
        // Sorted time and clustered dimensions come in runs: the previous row's group is checked first.
        let second_card = key_cols.get(1).and_then(small_codes);
        match (cols, any_nulls) {
            ([KeyBuffer { words: w, .. }], false) => {
                let mut last = (u64::MAX, u32::MAX);
                for (i, w) in w.iter().enumerate() {
                    if *w != last.0 || last.1 == u32::MAX {
                        let g = match self.map1.get(w) {
                            Some(g) => *g,
                            None => {
                                let g = new_group(&mut self.keys, i)?;
                                self.map1.insert(*w, g);
                                g
                            }
                        };
                        last = (*w, g);
                    }
                    gids.push(last.1);
                }
            }
            ([KeyBuffer { words: a, .. }, KeyBuffer { words: b, .. }], false)
                if second_card.is_some() =>
            {
                // A first key (often a time bucket, in runs) and a small dictionary-coded second key: one
                // dense row of group ids per first-key value, indexed by the second key's code.
                let card = second_card.unwrap_or(0);
                let mut last = (u64::MAX, usize::MAX);
                for (i, (a, b)) in a.iter().zip(b).enumerate() {
                    if *a != last.0 || last.1 == usize::MAX {
                        let next = self.nested.len();
                        let slot = *self.nested_index.entry(*a).or_insert(next);
                        if slot == next {
                            self.nested.push(vec![u32::MAX; card]);
                        }
                        last = (*a, slot);
                    }
                    let row = &mut self.nested[last.1];
                    if row.len() < card {
                        row.resize(card, u32::MAX);
                    }
                    let code = *b as usize;
                    let g = match row.get(code) {
                        Some(g) if *g != u32::MAX => *g,
                        _ => {
                            let g = new_group(&mut self.keys, i)?;
                            if let Some(cell) = self.nested[last.1].get_mut(code) {
                                *cell = g;
                            }
                            g
                        }
                    };
                    gids.push(g);
                }
            }
            ([KeyBuffer { words: a, .. }, KeyBuffer { words: b, .. }], false) => {
                let mut last = ([u64::MAX; 2], u32::MAX);
                for (i, (a, b)) in a.iter().zip(b).enumerate() {
                    let w = [*a, *b];
                    if w != last.0 || last.1 == u32::MAX {
                        let g = match self.map2.get(&w) {
                            Some(g) => *g,
                            None => {
                                let g = new_group(&mut self.keys, i)?;
                                self.map2.insert(w, g);
                                g
                            }
                        };
                        last = (w, g);
                    }
                    gids.push(last.1);
                }
            }
            _ => {
                let k = cols.len();
                let mut word = vec![0u64; k + 1];
                for i in 0..rows.len() {
                    let mut nulls = 0u64;
                    for (j, c) in cols.iter().enumerate() {
                        let null = c.has_nulls && c.nulls[i];
                        // A NULL's word is 0, told apart from a value 0 by its flag.
                        word[j] = if null { 0 } else { c.words[i] };
                        if null {
                            nulls |= 1 << j.min(63);
                        }
                    }
                    word[k] = nulls;
                    let g = match self.map.get(word.as_slice()) {
                        Some(g) => *g,
                        None => {
                            let g = new_group(&mut self.keys, i)?;
                            self.map.insert(word.clone().into_boxed_slice(), g);
                            g
                        }
                    };
                    gids.push(g);
                }
            }
        }
        Ok(())
    }
}

impl GroupTable {
    /// Decodes the keys of groups kept as codes; from then on keys are decoded as groups appear.
    fn decode_deferred(&mut self) -> Result<()> {
        self.mixed = true;
        if let Some(values) = self.dense_values.take() {
            let mut codes = std::mem::take(&mut self.dense_codes).into_iter();
            for k in self.keys.iter_mut().filter(|k| k.is_empty()) {
                if let Some(c) = codes.next() {
                    *k = vec![decode_code(&values, c)?];
                }
            }
        }
        Ok(())
    }

    /// The share's partial: keys kept as dictionary codes when every group is one.
    pub fn into_partial(mut self, accs: Vec<Acc>) -> Result<Partial> {
        let codes = match self.dense_values.take() {
            Some(values) if !self.mixed && self.dense_codes.len() == self.keys.len() => {
                Some(DenseKeys {
                    values,
                    codes: std::mem::take(&mut self.dense_codes),
                })
            }
            Some(values) => {
                self.dense_values = Some(values);
                self.decode_deferred()?;
                None
            }
            None => None,
        };
        Ok(Partial {
            keys: self.keys,
            accs,
            codes,
        })
    }
}

/// Whether two dictionaries are the same arrays (one segment's dictionary, handed to every block).
fn same_values(a: &ArrayRef, b: &ArrayRef) -> bool {
    match (a.as_string_opt::<i32>(), b.as_string_opt::<i32>()) {
        (Some(a), Some(b)) => same_strings(a, b),
        _ => false,
    }
}

/// The key of dictionary code `c` (the dictionary's length stands for NULL).
fn decode_code(values: &ArrayRef, c: u32) -> Result<Scalar> {
    if c as usize >= values.len() {
        Ok(Scalar::Null)
    } else {
        scalar_at(values, c as usize)
    }
}

/// Group keys of a share as codes of its segment's dictionary.
pub struct DenseKeys {
    values: ArrayRef,
    codes: Vec<u32>,
}

/// The partial result of one segment (or the merged total).
pub struct Partial {
    pub keys: Vec<KeyRow>,
    pub accs: Vec<Acc>,
    /// When set, the keys are these codes (and `keys` holds placeholders): shares of one segment merge by code.
    pub codes: Option<DenseKeys>,
}

impl Partial {
    pub fn new(aggs: &[AggCall]) -> Partial {
        Partial {
            keys: Vec::new(),
            accs: aggs.iter().map(Acc::new).collect(),
            codes: None,
        }
    }

    /// Estimated heap bytes of the keys and aggregate states.
    pub fn memory_bytes(&self) -> usize {
        key_rows_bytes(&self.keys)
            + self.codes.as_ref().map_or(0, |c| c.codes.capacity() * 4)
            + self.accs.iter().map(Acc::memory_bytes).sum::<usize>()
    }

    /// Replaces code keys by decoded keys.
    fn decoded(mut self) -> Result<Partial> {
        if let Some(d) = self.codes.take() {
            self.keys = d
                .codes
                .iter()
                .map(|c| decode_code(&d.values, *c).map(|k| vec![k]))
                .collect::<Result<_>>()?;
        }
        Ok(self)
    }
}

/// Merges runs of partials over the same dictionary (the shares of one segment) by code, with an array lookup
/// instead of hashing decoded keys; the runs stay coded (see [`merge_partials`]). Order is kept, so merges stay
/// deterministic.
fn merge_by_code(partials: Vec<Partial>) -> Result<Vec<Partial>> {
    let mut out: Vec<Partial> = Vec::new();
    let mut run: Option<(Partial, Vec<u32>)> = None;
    for p in partials {
        let joins = match (&run, &p.codes) {
            (Some((r, _)), Some(c)) => r
                .codes
                .as_ref()
                .is_some_and(|rc| same_values(&rc.values, &c.values)),
            _ => false,
        };
        if !joins {
            if let Some((r, _)) = run.take() {
                out.push(r);
            }
            match &p.codes {
                Some(c) => {
                    let mut slots = vec![u32::MAX; c.values.len() + 1];
                    for (g, code) in c.codes.iter().enumerate() {
                        if let Some(s) = slots.get_mut(*code as usize) {
                            *s = g as u32;
                        }
                    }
                    run = Some((p, slots));
                }
                None => out.push(p),
            }
            continue;
        }
        let Some((r, slots)) = run.as_mut() else {
            continue;
        };
        let (Some(rc), Some(pc)) = (r.codes.as_mut(), p.codes.as_ref()) else {
            continue;
        };
        let mut targets = Vec::with_capacity(pc.codes.len());
        for code in &pc.codes {
            let Some(slot) = slots.get_mut(*code as usize) else {
                return Err(QueryError::internal("code past the dictionary"));
            };
            if *slot == u32::MAX {
                *slot = rc.codes.len() as u32;
                rc.codes.push(*code);
                r.keys.push(Vec::new());
            }
            targets.push(*slot as usize);
        }
        for (a, b) in r.accs.iter_mut().zip(&p.accs) {
            a.resize(r.keys.len());
            for (local, g) in targets.iter().enumerate() {
                a.merge(*g, b, local)?;
            }
        }
    }
    if let Some((r, _)) = run {
        out.push(r);
    }
    Ok(out)
}

/// Heap bytes of decoded group keys.
fn key_rows_bytes(keys: &Vec<KeyRow>) -> usize {
    use std::mem::size_of;
    keys.capacity() * size_of::<KeyRow>()
        + keys
            .iter()
            .map(|k| {
                k.capacity() * size_of::<Scalar>()
                    + k.iter()
                        .map(|v| match v {
                            Scalar::Str(s) => s.capacity(),
                            _ => 0,
                        })
                        .sum::<usize>()
            })
            .sum::<usize>()
}

/// A partial's group keys encoded: one byte arena, and each group's (start, end) in it.
type EncodedKeys = (Vec<u8>, Vec<(usize, usize)>);

/// Groups below this many (over all partials) are merged on one thread.
const PARALLEL_MERGE_GROUPS: usize = 32_768;

/// Merges partials in the order given (deterministic float sums): the shares of a segment by dictionary code,
/// then across segments by key, with many groups on several threads (see [`merge_keyed`]).
pub fn merge_partials(partials: Vec<Partial>, aggs: &[AggCall], threads: usize) -> Result<Partial> {
    let partials = merge_by_code(partials)?;
    let total: usize = partials.iter().map(|p| p.keys.len()).sum();
    let parts = if total < PARALLEL_MERGE_GROUPS {
        1
    } else {
        threads.max(1)
    };
    // One string key kept as codes in every partial (a GROUP BY on one dimension): merge by the dictionaries'
    // strings, borrowed, so only the merged groups get an owned key.
    let dicts: Option<Vec<(&StringArray, &[u32])>> = partials
        .iter()
        .map(|p| {
            let c = p.codes.as_ref()?;
            Some((c.values.as_string_opt::<i32>()?, c.codes.as_slice()))
        })
        .collect();
    if let Some(dicts) = dicts {
        let keys: Vec<Vec<(u64, Option<&str>)>> = dicts
            .iter()
            .map(|(values, codes)| {
                codes
                    .iter()
                    .map(|c| {
                        let v = (*c as usize) < values.len();
                        let key = v.then(|| values.value(*c as usize));
                        (key.map_or(0, |k| hash_bytes(k.as_bytes())), key)
                    })
                    .collect()
            })
            .collect();
        return merge_keyed(&partials, &keys, aggs, parts, |p, local| {
            vec![keys[p][local]
                .1
                .map_or(Scalar::Null, |k| Scalar::Str(k.to_string()))]
        });
    }
    let mut partials = partials
        .into_iter()
        .map(Partial::decoded)
        .collect::<Result<Vec<_>>>()?;
    if partials.len() > 1
        && partials.iter().all(|p| p.keys.iter().all(Vec::is_empty))
        && partials
            .iter()
            .any(|p| p.accs.iter().any(|a| matches!(a, Acc::Distinct(_))))
    {
        // One group over several segments: every segment's distinct codes will become hashed keys in the
        // merge, so hash them now, a segment per thread, instead of one after another in the merge.
        let chunk = partials.len().div_ceil(threads.max(1));
        let hash = |part: &mut [Partial]| {
            part.iter_mut()
                .flat_map(|p| p.accs.iter_mut())
                .for_each(Acc::hash_codes)
        };
        std::thread::scope(|s| {
            for part in partials.chunks_mut(chunk) {
                s.spawn(move || hash(part));
            }
        });
    }
    // Each group's encoded key and its hash, computed once: one byte arena per partial, with each group's
    // (start, end) in it, so no allocation per group.
    let arenas: Vec<EncodedKeys> = partials
        .iter()
        .map(|p| {
            let mut arena = Vec::new();
            let spans = p
                .keys
                .iter()
                .map(|k| {
                    let start = arena.len();
                    key_bytes_into(k, &mut arena);
                    (start, arena.len())
                })
                .collect();
            (arena, spans)
        })
        .collect();
    let keys: Vec<Vec<(u64, &[u8])>> = arenas
        .iter()
        .map(|(arena, spans)| {
            spans
                .iter()
                .map(|(a, b)| (hash_bytes(&arena[*a..*b]), &arena[*a..*b]))
                .collect()
        })
        .collect();
    merge_keyed(&partials, &keys, aggs, parts, |p, local| {
        partials[p].keys[local].clone()
    })
}

/// Merges the groups of `partials`, in order, by a borrowed key per group (`keys[partial][group]`, with its
/// hash). With `parts` > 1 the key space is split by hash into one partition per thread; each partition merges
/// its groups in the same partial order, so the answer does not depend on the thread count, only the order of
/// groups (which ORDER BY fixes) does. `owned` makes a merged group's key.
fn merge_keyed<K>(
    partials: &[Partial],
    keys: &[Vec<(u64, K)>],
    aggs: &[AggCall],
    parts: usize,
    owned: impl Fn(usize, usize) -> KeyRow + Sync,
) -> Result<Partial>
where
    K: Eq + std::hash::Hash + Copy + Sync,
{
    let merge_part = |part: usize| -> Result<Partial> {
        // Keyed by the hash computed once per group (a map that hashed the keys again spent a tenth of a
        // 100,000-group top-N doing it).
        let mut index: hashbrown::HashTable<(u64, K, usize)> = hashbrown::HashTable::new();
        let mut out = Partial::new(aggs);
        for (pi, (p, keys)) in partials.iter().zip(keys).enumerate() {
            out.accs
                .iter_mut()
                .for_each(|a| a.resize(out.keys.len() + p.keys.len()));
            for (local, (h, key)) in keys.iter().enumerate() {
                if parts > 1 && (*h as usize) % parts != part {
                    continue;
                }
                let g = match index.find(*h, |e| e.0 == *h && e.1 == *key) {
                    Some(e) => e.2,
                    None => {
                        out.keys.push(owned(pi, local));
                        let g = out.keys.len() - 1;
                        index.insert_unique(*h, (*h, *key, g), |e| e.0);
                        g
                    }
                };
                for (a, b) in out.accs.iter_mut().zip(&p.accs) {
                    a.merge(g, b, local)?;
                }
            }
            out.accs.iter_mut().for_each(|a| a.resize(out.keys.len()));
        }
        Ok(out)
    };
    if parts <= 1 {
        return merge_part(0);
    }
    let merged: Vec<Result<Partial>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..parts)
            .map(|i| {
                let merge_part = &merge_part;
                s.spawn(move || merge_part(i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    // Partitions hold disjoint keys: concatenate them.
    let mut out = Partial::new(aggs);
    for p in merged {
        let p = p?;
        let base = out.keys.len();
        out.accs
            .iter_mut()
            .for_each(|a| a.resize(base + p.keys.len()));
        for (a, b) in out.accs.iter_mut().zip(&p.accs) {
            for local in 0..p.keys.len() {
                a.merge(base + local, b, local)?;
            }
        }
        out.keys.extend(p.keys);
    }
    Ok(out)
}

fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    // A fixed seed: the same key lands in the same partition on every run.
    foldhash::fast::FixedState::with_seed(0x6261_7361_6c74).hash_one(b)
}

fn key_bytes_into(key: &KeyRow, out: &mut Vec<u8>) {
    for s in key {
        match s {
            Scalar::Null => out.push(0),
            Scalar::Bool(b) => out.extend([1, u8::from(*b)]),
            Scalar::Int(i) | Scalar::Timestamp(i) => {
                out.push(2);
                out.extend(i.to_le_bytes());
            }
            Scalar::Float(f) => {
                out.push(3);
                out.extend(
                    (if *f == 0.0 { 0.0f64 } else { *f })
                        .to_bits()
                        .to_le_bytes(),
                );
            }
            Scalar::Str(s) => {
                out.push(4);
                out.extend((s.len() as u64).to_le_bytes());
                out.extend(s.as_bytes());
            }
        }
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

#[cfg(test)]
mod run_tests {
    use super::{count_runs, Acc};
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
            let mut acc = Acc::SumInt(vec![None; 5]);
            let a: ArrayRef = Arc::new(Int64Array::from(values));
            acc.update(&gids, &rows, Some(&a)).unwrap();
            let Acc::SumInt(sums) = acc else { unreachable!() };
            prop_assert_eq!(sums, want_sums.to_vec());
        }
    }

    #[test]
    fn a_sum_past_bigint_is_still_an_error_in_a_run() {
        let mut acc = Acc::SumInt(vec![None]);
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
