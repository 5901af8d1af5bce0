//! The dictionary codes a COUNT(DISTINCT) or HyperLogLog aggregate saw in a segment share, buffered per group
//! and turned into keys once per distinct code.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, StringArray};

use super::distinct::string_key;
use super::hll::{add_coupons, CouponTable};
use super::support::same_strings;
use super::Acc;
use crate::error::Result;

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
        if let (Some(t), Acc::Hll(super::hll::Hll(groups))) = (&self.coupons, &mut *acc) {
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
            if let Acc::Distinct(super::distinct::Distinct(sets)) = &mut *acc {
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
