//! Group keys of a block as fixed-width words: dictionary codes for string columns, value bits otherwise,
//! computed strings interned; and the dense-table shapes for small dictionaries.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int64Type, TimestampMillisecondType, UInt16Type, UInt32Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, BooleanArray};
use arrow_schema::DataType;

use crate::error::Result;
use crate::expr::{scalar_at, Scalar};

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
    pub(crate) fn words(&self, rows: &[u32], strings: &mut Interner, out: &mut KeyBuffer) {
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

/// Dictionaries up to this size are indexed densely as the second of two keys.
pub(crate) const SMALL_DICTIONARY: usize = 1024;

/// One key column's words for the selected rows of a block, and which rows are NULL (when `has_nulls`): kept
/// by the group table and refilled per block.
#[derive(Default)]
pub(crate) struct KeyBuffer {
    pub(crate) words: Vec<u64>,
    pub(crate) nulls: Vec<bool>,
    pub(crate) has_nulls: bool,
}

/// Several dictionary-coded keys go through one dense table up to this many combinations (their dictionaries'
/// sizes, each plus one for NULL, multiplied): 256 KiB of group ids.
pub(crate) const MAX_COMBINED_SLOTS: usize = 65_536;

/// For keys that are all dictionary-coded with at most [`MAX_COMBINED_SLOTS`] combinations: each key's stride in
/// the combined slot, and the table size last.
pub(crate) fn combined_strides(key_cols: &[KeyWords]) -> Option<Vec<usize>> {
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
pub(crate) fn code_slot(
    codes: &[u32],
    valid: Option<&BooleanArray>,
    card: usize,
    r: usize,
) -> usize {
    if valid.is_some_and(|v| !v.value(r)) {
        card
    } else {
        codes[r] as usize
    }
}

/// The dictionary size of a dictionary-coded key column, when it is small.
pub(crate) fn small_codes(k: &KeyWords) -> Option<usize> {
    match k {
        KeyWords::Codes { values, .. } if values.len() <= SMALL_DICTIONARY => Some(values.len()),
        _ => None,
    }
}

/// Distinct strings of computed keys, numbered in order of first sight.
#[derive(Default)]
pub(crate) struct Interner(pub(crate) hashbrown::HashMap<Box<str>, u64>);

impl Interner {
    pub(crate) fn id(&mut self, s: &str) -> u64 {
        if let Some(id) = self.0.get(s) {
            return *id;
        }
        let id = self.0.len() as u64;
        self.0.insert(s.into(), id);
        id
    }
}
