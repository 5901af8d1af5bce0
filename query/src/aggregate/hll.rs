//! APPROX_COUNT_DISTINCT: a HyperLogLog per group (the `datasketches` crate's, 2^12 registers), created on the
//! group's first value; over a dictionary-coded column each value's coupon is computed once per segment
//! ([`CouponTable`]).

use arrow_array::{Array, ArrayRef, Int64Array, StringArray};
use arrow_schema::DataType;
use datasketches::hll::{Coupon, HllSketch, HllType, HllUnion};
use std::sync::Arc;

use super::distinct::{DistinctKey, KeyReader};
use super::support::{by_group, internal, vec_bytes};
use super::Accumulator;
use crate::error::{QueryError, Result};

/// APPROX_COUNT_DISTINCT's state: a sketch per group, `None` before its first value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hll(pub(crate) Vec<Option<Box<HllGroup>>>);

impl Hll {
    /// Adds one value's key to group `g`. The same value hashes the same in every segment: strings by their
    /// 128-bit hash (see [`CouponTable`]), numbers as i64 / f64 bits.
    pub(crate) fn add_key(&mut self, g: usize, key: DistinctKey) -> Result<()> {
        let coupon = match key {
            DistinctKey::Int(i) => Coupon::from_value(i),
            DistinctKey::Float(f) => Coupon::from_value(f),
            DistinctKey::Str(s) => Coupon::from_value(s),
            DistinctKey::Bool(b) => Coupon::from_value(b),
        };
        self.add_coupon(g, coupon)
    }

    /// Adds a coupon (a hashed value) to group `g`.
    pub(crate) fn add_coupon(&mut self, g: usize, coupon: Coupon) -> Result<()> {
        let slot = self
            .0
            .get_mut(g)
            .ok_or_else(|| internal("a group id past the sketches"))?;
        add_to_sketch(slot, coupon)
    }
}

impl Accumulator for Hll {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn resize(&mut self, n: usize) {
        self.0.resize_with(n, || None);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.0) + self.0.iter().flatten().count() * HLL_BYTES
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let v = values.ok_or_else(|| internal("APPROX_COUNT_DISTINCT without argument"))?;
        let keys = KeyReader::new(v);
        for (g, r) in gids.iter().zip(rows) {
            let r = *r as usize;
            if v.is_valid(r) {
                self.add_key(*g as usize, keys.key(r)?)?;
            }
        }
        Ok(())
    }

    fn merge(&mut self, to: usize, other: &Hll, from: usize) -> Result<()> {
        if let Some(other) = &other.0[from] {
            match &mut self.0[to] {
                Some(h) => h.merge(other),
                slot => *slot = Some(other.clone()),
            }
        }
        Ok(())
    }

    fn finish(&mut self, _ty: &DataType) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(
            self.0
                .iter()
                .map(|h| h.as_ref().map_or(0, |h| h.estimate().round() as i64))
                .collect::<Vec<_>>(),
        )))
    }
}

/// HyperLogLog precision: 2^12 registers, about 1.6% relative standard error.
const HLL_LG_K: u8 = 12;

/// Bytes one HyperLogLog union holds at most (2^12 one-byte registers and its header), as memory accounting
/// counts it.
const HLL_BYTES: usize = (1 << HLL_LG_K) + 256;

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
    pub(crate) values: StringArray,
    pub(crate) coupons: Vec<Coupon>,
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

/// Adds `coupon` to a group's HyperLogLog, creating its sketch on the first value.
pub(crate) fn add_to_sketch(slot: &mut Option<Box<HllGroup>>, coupon: Coupon) -> Result<()> {
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

/// Adds the coupon of each row's code (`coupons[keys[rows[i]]]`) to group `gids[i]`'s sketch.
pub(crate) fn add_coupons<K: Copy + Into<u32>>(
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
