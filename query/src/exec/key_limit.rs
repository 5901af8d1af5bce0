//! An early LIMIT for `GROUP BY k ... ORDER BY k LIMIT n`: only the first `n` distinct keys (in the order asked)
//! can reach the answer, and a segment's dictionary is sorted, so each share of a scan tracks which key codes it
//! has seen and drops rows whose code sorts after the `n`-th smallest seen so far (before the `n`-th largest,
//! for DESC). Those rows' groups would be cut by the LIMIT anyway; their aggregates (a HyperLogLog update per
//! row, say) are never computed.
//!
//! Why it is exact: a key among the first `n` of the whole table has fewer than `n` smaller keys in the table,
//! so fewer than `n` smaller keys in any share's rows, so no share drops it. The bound only moves toward the
//! first key as codes are seen, so a row kept early and dropped by a later bound only adds a group that the
//! final ORDER BY and LIMIT remove. NULL keys are always kept (where they sort depends on NULLS FIRST/LAST).

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt8Type};
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_buffer::NullBuffer;
use basalt_segment::ColumnType;

use crate::aggregate::same_strings;
use crate::expr::Expr;
use crate::plan::SelectPlan;

/// Which group key bounds the scan, and how many of its values the query can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimit {
    /// The key's column in the table.
    pub column: usize,
    /// LIMIT plus OFFSET: how many distinct keys can reach the answer.
    pub n: usize,
    pub descending: bool,
}

impl KeyLimit {
    /// The bound a plan allows: an aggregate whose first ORDER BY term is a string column it groups by, with a
    /// LIMIT, and no HAVING or DISTINCT (which could drop groups after the limit was applied).
    pub fn of(plan: &SelectPlan) -> Option<KeyLimit> {
        let agg = plan.aggregate.as_ref()?;
        if plan.having.is_some() || plan.distinct {
            return None;
        }
        let n = plan.limit?.checked_add(plan.offset)?;
        let first = plan.order_by.first()?;
        let Expr::Column { index: key, .. } = &plan.output.get(first.column)?.0 else {
            return None;
        };
        let Some(Expr::Column { index: column, .. }) = agg.group_by.get(*key) else {
            return None;
        };
        (plan.table.columns.get(*column)?.ty == ColumnType::String).then_some(KeyLimit {
            column: *column,
            n,
            descending: first.descending,
        })
    }
}

/// One share's key codes seen so far, and the bound they set.
pub struct SeenKeys {
    limit: KeyLimit,
    /// The dictionary the codes index (sorted, so codes compare as their strings do).
    dictionary: StringArray,
    /// One bit per dictionary code.
    seen: Vec<u64>,
    /// Rows whose code is past this one are dropped (ASC: greater; DESC: smaller); `None` until `n` keys were
    /// seen.
    bound: Option<u32>,
}

impl SeenKeys {
    /// Tracking for a share of a segment whose key column has `dictionary`.
    pub fn new(limit: KeyLimit, dictionary: StringArray) -> SeenKeys {
        let words = dictionary.len().div_ceil(64);
        SeenKeys {
            limit,
            dictionary,
            seen: vec![0; words],
            bound: None,
        }
    }

    /// Drops from `rows` (positions in `keys`) those whose key cannot be among the first `n`. A block whose
    /// array is not coded against this share's dictionary is left whole.
    pub fn execute(&mut self, keys: &ArrayRef, rows: &mut Vec<u32>) {
        let Some(d) = keys.as_any_dictionary_opt() else {
            return;
        };
        let same = d
            .values()
            .as_string_opt::<i32>()
            .is_some_and(|v| same_strings(v, &self.dictionary));
        if !same {
            return;
        }
        let nulls = keys.logical_nulls();
        if let Some(k) = keys.as_dictionary_opt::<UInt8Type>() {
            self.restrict(k.keys().values(), nulls.as_ref(), rows);
        } else if let Some(k) = keys.as_dictionary_opt::<UInt16Type>() {
            self.restrict(k.keys().values(), nulls.as_ref(), rows);
        } else if let Some(k) = keys.as_dictionary_opt::<UInt32Type>() {
            self.restrict(k.keys().values(), nulls.as_ref(), rows);
        }
    }

    fn restrict<K: Copy + Into<u32>>(
        &mut self,
        codes: &[K],
        nulls: Option<&NullBuffer>,
        rows: &mut Vec<u32>,
    ) {
        let desc = self.limit.descending;
        let within = |code: u32, bound: Option<u32>| match bound {
            None => true,
            Some(b) if desc => code >= b,
            Some(b) => code <= b,
        };
        let code_of = |r: u32| -> Option<u32> {
            let r = r as usize;
            if nulls.is_some_and(|n| n.is_null(r)) {
                return None;
            }
            codes.get(r).map(|c| (*c).into())
        };
        for &r in rows.iter() {
            if let Some(c) = code_of(r) {
                if within(c, self.bound) {
                    if let Some(w) = self.seen.get_mut(c as usize / 64) {
                        *w |= 1 << (c % 64);
                    }
                }
            }
        }
        self.bound = self.nth_seen();
        let bound = self.bound;
        if bound.is_some() {
            // A code past the dictionary keeps its row: the aggregation reports the damage, not this filter.
            rows.retain(|&r| {
                code_of(r).is_none_or(|c| within(c, bound) || c as usize >= self.dictionary.len())
            });
        }
    }

    /// The `n`-th smallest seen code (the `n`-th largest for DESC), if `n` codes were seen.
    fn nth_seen(&self) -> Option<u32> {
        let mut left = self.limit.n;
        if left == 0 {
            return None;
        }
        let pick = |i: usize, w: u64, left: usize| -> u32 {
            // The `left`-th set bit of `w` from the low end (from the high end for DESC).
            let mut w = w;
            for _ in 1..left {
                if self.limit.descending {
                    w &= !(1u64 << (63 - w.leading_zeros()));
                } else {
                    w &= w - 1;
                }
            }
            let bit = if self.limit.descending {
                63 - w.leading_zeros()
            } else {
                w.trailing_zeros()
            };
            (i * 64) as u32 + bit
        };
        let mut visit = |i: usize| -> Option<u32> {
            let w = self.seen[i];
            let ones = w.count_ones() as usize;
            if ones >= left {
                return Some(pick(i, w, left));
            }
            left -= ones;
            None
        };
        if self.limit.descending {
            (0..self.seen.len()).rev().find_map(&mut visit)
        } else {
            (0..self.seen.len()).find_map(&mut visit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{DictionaryArray, UInt8Array};
    use std::sync::Arc;

    fn keys(dict: &StringArray, codes: &[Option<u8>]) -> ArrayRef {
        Arc::new(
            DictionaryArray::<UInt8Type>::try_new(
                UInt8Array::from(codes.to_vec()),
                Arc::new(dict.clone()),
            )
            .unwrap(),
        )
    }

    fn limit(n: usize, descending: bool) -> KeyLimit {
        KeyLimit {
            column: 0,
            n,
            descending,
        }
    }

    #[test]
    fn keeps_the_rows_of_the_first_n_keys_and_nulls() {
        let dict = StringArray::from(vec!["a", "b", "c", "d", "e"]);
        let mut seen = SeenKeys::new(limit(2, false), dict.clone());
        // Block 1 sees d and b: the bound is d, nothing past it yet.
        let block = keys(&dict, &[Some(3), Some(1), Some(3)]);
        let mut rows = vec![0, 1, 2];
        seen.execute(&block, &mut rows);
        assert_eq!(rows, vec![0, 1, 2]);
        // Block 2 sees a: the bound moves to b, so d and e go; the NULL stays.
        let block = keys(&dict, &[Some(4), Some(0), None, Some(3), Some(1)]);
        let mut rows = vec![0, 1, 2, 3, 4];
        seen.execute(&block, &mut rows);
        assert_eq!(rows, vec![1, 2, 4]);
    }

    #[test]
    fn descending_keeps_the_last_keys() {
        let dict = StringArray::from(vec!["a", "b", "c", "d", "e"]);
        let mut seen = SeenKeys::new(limit(2, true), dict.clone());
        let block = keys(&dict, &[Some(0), Some(4), Some(2), Some(3), Some(1)]);
        let mut rows = vec![0, 1, 2, 3, 4];
        seen.execute(&block, &mut rows);
        assert_eq!(rows, vec![1, 3]);
    }

    #[test]
    fn another_dictionary_or_fewer_keys_than_n_keeps_every_row() {
        let dict = StringArray::from(vec!["a", "b", "c"]);
        let mut seen = SeenKeys::new(limit(5, false), dict.clone());
        let mut rows = vec![0, 1, 2];
        seen.execute(&keys(&dict, &[Some(2), Some(1), Some(0)]), &mut rows);
        assert_eq!(rows, vec![0, 1, 2]);
        let mut seen = SeenKeys::new(limit(1, false), dict);
        let other = StringArray::from(vec!["a", "b", "c"]);
        let mut rows = vec![0, 1];
        seen.execute(&keys(&other, &[Some(2), Some(1)]), &mut rows);
        assert_eq!(rows, vec![0, 1]);
    }

    #[test]
    fn the_nth_code_is_found_across_words() {
        let values: Vec<String> = (0..200).map(|i| format!("k{i:03}")).collect();
        let dict = StringArray::from(values);
        for descending in [false, true] {
            let mut seen = SeenKeys::new(limit(2, descending), dict.clone());
            for c in [5u32, 70, 130, 199, 64] {
                seen.seen[c as usize / 64] |= 1 << (c % 64);
            }
            let want = if descending { 130 } else { 64 };
            assert_eq!(seen.nth_seen(), Some(want), "descending {descending}");
        }
        let mut seen = SeenKeys::new(limit(2, true), dict);
        seen.seen[3] |= 1 << 7; // code 199
        seen.seen[0] |= 1 << 1; // code 1
        assert_eq!(seen.nth_seen(), Some(1));
    }
}
