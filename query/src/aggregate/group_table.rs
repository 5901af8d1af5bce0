//! The group table of one segment share: the words of a key to a group id (a dense array for one
//! dictionary-coded key, nested or combined dense tables for small dictionaries, hash tables otherwise), and
//! the decoded key of each group.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};

use super::keys::*;
use super::partial::{key_rows_bytes, DenseKeys, Partial};
use super::support::{internal, same_strings};
use super::time_runs::TimeRuns;
use super::{Acc, KeyRow};
use crate::error::{QueryError, Result};
use crate::expr::{scalar_at, Scalar};

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
pub(crate) fn same_values(a: &ArrayRef, b: &ArrayRef) -> bool {
    match (a.as_string_opt::<i32>(), b.as_string_opt::<i32>()) {
        (Some(a), Some(b)) => same_strings(a, b),
        _ => false,
    }
}

/// The key of dictionary code `c` (the dictionary's length stands for NULL).
pub(crate) fn decode_code(values: &ArrayRef, c: u32) -> Result<Scalar> {
    if c as usize >= values.len() {
        Ok(Scalar::Null)
    } else {
        scalar_at(values, c as usize)
    }
}
