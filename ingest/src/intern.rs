//! Load-wide string dictionaries: while a bulk load sorts and spills, each string column travels as `u32` ids
//! into one dictionary per column kept for the whole load, not as strings. Sorting, spilling and merging then
//! move four bytes a row instead of the string, and the segment writer gets keys into one shared dictionary, so
//! no string is hashed twice. An input column that is already a dictionary (Parquet's) is mapped value by value,
//! not row by row.
//!
//! The dictionaries together stay within a byte budget, so a load's memory stays bounded whatever its input: a
//! column whose dictionary outgrows it (a near-unique string, such as a request id) is *full*: its later rows stay
//! strings, and its ids in earlier runs are turned back into strings when the runs are merged.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowDictionaryKeyType, Int32Type, UInt32Type};
use arrow_array::{Array, ArrayRef, DictionaryArray, RecordBatch, StringArray, UInt32Array};
use arrow_buffer::{ArrowNativeType, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::{Error, Result};

/// Bytes of a string kept in its hash table entry.
const INLINE: usize = 11;

/// A hash table entry: an id, and its string's length and first [`INLINE`] bytes. A string that fits is compared
/// in the entry alone; a lookup otherwise went from the table to the offsets to the bytes, three cache misses
/// a row for a column of millions of user ids (a third of a 100M load's read phase).
#[derive(Clone, Copy)]
struct Entry {
    id: u32,
    len: u8,
    head: [u8; INLINE],
}

impl Entry {
    fn new(id: u32, s: &[u8]) -> Entry {
        let mut head = [0u8; INLINE];
        let n = s.len().min(INLINE);
        head[..n].copy_from_slice(&s[..n]);
        Entry {
            id,
            len: s.len().min(u8::MAX as usize) as u8,
            head,
        }
    }

    /// The whole string, when the entry holds it.
    fn inline(&self) -> Option<&[u8]> {
        (self.len as usize <= INLINE).then(|| &self.head[..self.len as usize])
    }
}

/// The distinct strings of one column, each with its id (its position).
#[derive(Default)]
struct Strings {
    /// Ids, found by the hash of their string.
    table: hashbrown::HashTable<Entry>,
    bytes: Vec<u8>,
    /// `offsets[id]..offsets[id + 1]` is the string of `id`.
    offsets: Vec<i32>,
    hasher: foldhash::fast::FixedState,
    /// The last dictionary input mapped (kept alive, so its address cannot be reused) and the id of each of its
    /// values: Parquet hands the same dictionary to every batch of a column chunk.
    memo: Option<(ArrayRef, Arc<[Option<u32>]>)>,
    /// No more strings are added: the column travels as strings from now on.
    full: bool,
    /// A full column's dictionary (its strings moved here), to turn ids of earlier batches back into strings.
    frozen: Option<StringArray>,
}

impl Strings {
    fn id(&mut self, column: &str, s: &str) -> Result<u32> {
        use std::hash::BuildHasher;
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let s = s.as_bytes();
        let hash = self.hasher.hash_one(s);
        let (bytes, offsets) = (&self.bytes, &self.offsets);
        let probe = Entry::new(0, s);
        let found = self.table.find(hash, |e| {
            e.len == probe.len
                && e.head == probe.head
                && (e.inline().is_some() || {
                    let id = e.id as usize;
                    &bytes[offsets[id] as usize..offsets[id + 1] as usize] == s
                })
        });
        if let Some(e) = found {
            return Ok(e.id);
        }
        let id = u32::try_from(self.offsets.len() - 1)
            .ok()
            .filter(|id| *id < u32::MAX)
            .ok_or_else(|| too_large(column))?;
        let end = i32::try_from(self.bytes.len() + s.len()).map_err(|_| too_large(column))?;
        self.bytes.extend_from_slice(s);
        self.offsets.push(end);
        let hasher = &self.hasher;
        let (bytes, offsets) = (&self.bytes, &self.offsets);
        self.table
            .insert_unique(hash, Entry::new(id, s), |e| match e.inline() {
                Some(s) => hasher.hash_one(s),
                None => {
                    let id = e.id as usize;
                    hasher.hash_one(&bytes[offsets[id] as usize..offsets[id + 1] as usize])
                }
            });
        Ok(id)
    }

    /// Bytes held (the strings, their offsets and the hash table, or the frozen dictionary).
    fn bytes(&self) -> usize {
        let frozen = self
            .frozen
            .as_ref()
            .map_or(0, |a| a.get_buffer_memory_size());
        frozen
            + self.bytes.len()
            + self.offsets.len() * 4
            + self.table.capacity() * (std::mem::size_of::<Entry>() + 1)
    }

    /// Stops adding strings: the dictionary moves into `frozen`.
    fn freeze(&mut self) {
        self.full = true;
        self.memo = None;
        self.table = hashbrown::HashTable::new();
        self.frozen = Some(self.take_array());
    }

    fn take_array(&mut self) -> StringArray {
        if let Some(a) = self.frozen.take() {
            return a;
        }
        let mut offsets = std::mem::take(&mut self.offsets);
        if offsets.is_empty() {
            offsets.push(0);
        }
        // Offsets start at 0, never decrease and end at the data length; every value came from a &str.
        StringArray::new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(std::mem::take(&mut self.bytes)),
            None,
        )
    }
}

fn too_large(column: &str) -> Error {
    Error::Spec(format!(
        "column {column:?}: more than 2 GiB of distinct strings in one load; load the files in several parts"
    ))
}

/// The dictionaries of a load's string columns, by column name.
#[derive(Default)]
pub struct Interner {
    columns: HashMap<String, Strings>,
    /// Strings that mean NULL in a dictionary input (a plain input has them made NULL before).
    null_values: Vec<String>,
    /// Bytes the dictionaries may hold together.
    budget: usize,
}

/// Locks shared dictionaries. A thread that panicked holding them left them whole: a string and its id are
/// added together.
pub fn lock(interner: &std::sync::Mutex<Interner>) -> std::sync::MutexGuard<'_, Interner> {
    interner.lock().unwrap_or_else(|p| p.into_inner())
}

/// The finished dictionaries: column name to its values, whose position is the id a row carries.
pub type Dictionaries = HashMap<String, ArrayRef>;

impl Interner {
    /// Dictionaries of at most about `budget` bytes together, whose dictionary inputs spell NULL as one of
    /// `null_values`.
    pub fn new(null_values: &[String], budget: usize) -> Interner {
        Interner {
            columns: HashMap::new(),
            null_values: null_values.to_vec(),
            budget,
        }
    }

    fn is_full(&self, column: &str) -> bool {
        self.columns.get(column).is_some_and(|s| s.full)
    }

    /// `schema` with every string column as it now travels: `u32` ids, or strings once its dictionary is full.
    pub fn encoded_schema(&self, schema: &Schema) -> SchemaRef {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                if self.is_full(f.name()) {
                    Field::new(f.name(), DataType::Utf8, f.is_nullable())
                } else if is_strings(f.data_type()) {
                    Field::new(f.name(), DataType::UInt32, f.is_nullable())
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// String column `name` as it now travels: ids, or strings once its dictionary is full (ids of earlier
    /// batches then turned back). A column of other values is returned as it is.
    pub fn encode_column(&mut self, name: &str, column: &ArrayRef) -> Result<ArrayRef> {
        let ids = *column.data_type() == DataType::UInt32;
        if self.is_full(name) {
            return self.strings_of(name, column);
        }
        if ids || !is_strings(column.data_type()) {
            return Ok(column.clone());
        }
        let encoded = self.ids_of(name, column)?;
        let used: usize = self.columns.values().map(Strings::bytes).sum();
        if used > self.budget {
            // The largest dictionary still growing stops (most likely a near-unique column, whose dictionary
            // saves the least); the others keep theirs while they add no string.
            let largest = self
                .columns
                .iter_mut()
                .filter(|(_, s)| !s.full)
                .max_by_key(|(_, s)| s.bytes());
            if let Some((column, s)) = largest {
                tracing::debug!(
                    column = column.as_str(),
                    bytes = used,
                    "string dictionaries full: the column goes on as strings"
                );
                s.freeze();
            }
            if self.is_full(name) {
                return self.strings_of(name, &encoded);
            }
        }
        Ok(encoded)
    }

    /// A string column as plain strings: ids looked up in the column's dictionary, a dictionary decoded.
    fn strings_of(&self, name: &str, column: &ArrayRef) -> Result<ArrayRef> {
        let internal = |e: arrow_schema::ArrowError| {
            Error::Spec(format!("internal: ids back into strings: {e}"))
        };
        match column.data_type() {
            DataType::UInt32 => {
                let values = self.columns.get(name).and_then(|s| s.frozen.as_ref());
                ids_to_strings(name, values.map(|v| v as &dyn Array), column)
            }
            DataType::Dictionary(..) => {
                let text = arrow_cast::cast(column, &DataType::Utf8).map_err(internal)?;
                Ok(crate::rows::null_markers(
                    text.as_string::<i32>(),
                    &self.null_values,
                ))
            }
            _ => Ok(column.clone()),
        }
    }

    fn ids_of(&mut self, name: &str, column: &ArrayRef) -> Result<ArrayRef> {
        let strings = self.columns.entry(name.to_string()).or_default();
        Ok(match column.data_type() {
            DataType::Utf8 => {
                let a = column.as_string::<i32>();
                let mut ids = Vec::with_capacity(a.len());
                for i in 0..a.len() {
                    ids.push(if a.is_valid(i) {
                        strings.id(name, a.value(i))?
                    } else {
                        0
                    });
                }
                Arc::new(UInt32Array::new(ids.into(), a.nulls().cloned()))
            }
            DataType::Dictionary(k, _) if **k == DataType::Int32 => keyed(
                strings,
                name,
                column.as_dictionary::<Int32Type>(),
                &self.null_values,
            )?,
            DataType::Dictionary(k, _) if **k == DataType::UInt32 => keyed(
                strings,
                name,
                column.as_dictionary::<UInt32Type>(),
                &self.null_values,
            )?,
            other => {
                return Err(Error::Spec(format!(
                    "internal: column {name:?} of type {other} reached the string dictionaries"
                )))
            }
        })
    }

    /// The dictionaries, for turning ids back into strings.
    pub fn finish(self) -> Dictionaries {
        self.columns
            .into_iter()
            .map(|(name, mut s)| (name, Arc::new(s.take_array()) as ArrayRef))
            .collect()
    }
}

/// Ids of column `name` (`UInt32`) looked up in its dictionary `values`: the strings again, NULL kept.
pub fn ids_to_strings(name: &str, values: Option<&dyn Array>, ids: &ArrayRef) -> Result<ArrayRef> {
    let values = values
        .ok_or_else(|| Error::Spec(format!("internal: no dictionary for column {name:?}")))?;
    arrow_select::take::take(values, ids.as_primitive::<UInt32Type>(), None)
        .map_err(|e| Error::Spec(format!("internal: ids back into strings: {e}")))
}

/// Whether a column of this type travels as ids: strings, plain or as a dictionary.
fn is_strings(ty: &DataType) -> bool {
    match ty {
        DataType::Utf8 => true,
        DataType::Dictionary(_, v) => **v == DataType::Utf8,
        _ => false,
    }
}

/// Ids of a dictionary column: its values interned once each (once per dictionary, when batches share it),
/// then each row's key mapped.
fn keyed<K: ArrowDictionaryKeyType>(
    strings: &mut Strings,
    name: &str,
    a: &DictionaryArray<K>,
    null_values: &[String],
) -> Result<ArrayRef> {
    let ids_of_values = match &strings.memo {
        Some((values, ids)) if Arc::ptr_eq(values, a.values()) => ids.clone(),
        _ => {
            let values = a.values().as_string::<i32>();
            let mut ids = Vec::with_capacity(values.len());
            for i in 0..values.len() {
                let v = values.value(i);
                ids.push(
                    if values.is_valid(i) && !null_values.iter().any(|n| n == v) {
                        Some(strings.id(name, v)?)
                    } else {
                        None
                    },
                );
            }
            let ids: Arc<[Option<u32>]> = ids.into();
            strings.memo = Some((a.values().clone(), ids.clone()));
            ids
        }
    };
    let mut ids = Vec::with_capacity(a.len());
    let mut valid = Vec::with_capacity(a.len());
    for (row, key) in a.keys().values().iter().enumerate() {
        let id = if a.is_valid(row) {
            ids_of_values.get(key.as_usize()).copied().flatten()
        } else {
            None
        };
        ids.push(id.unwrap_or(0));
        valid.push(id.is_some());
    }
    let nulls = NullBuffer::from(valid);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Ok(Arc::new(UInt32Array::new(ids.into(), nulls)))
}

/// Turns the id columns of `batch` named in `dictionaries` back into strings, as Arrow dictionary arrays over
/// the shared values (no string is copied).
pub fn decode(batch: &RecordBatch, dictionaries: &Dictionaries) -> Result<RecordBatch> {
    let internal =
        |e: arrow_schema::ArrowError| Error::Spec(format!("internal: ids back into strings: {e}"));
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match (dictionaries.get(field.name()), column.data_type()) {
            (Some(values), DataType::UInt32) => {
                let keys = column.as_primitive::<UInt32Type>().clone();
                let dict = DictionaryArray::<UInt32Type>::try_new(keys, values.clone())
                    .map_err(internal)?;
                fields.push(Field::new(
                    field.name(),
                    dict.data_type().clone(),
                    field.is_nullable(),
                ));
                columns.push(Arc::new(dict) as ArrayRef);
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_ids_and_a_dictionary_input_maps_to_the_same_ids() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let plain = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    None,
                    Some("a"),
                    Some("b"),
                ])),
            ],
        )
        .unwrap();
        let mut interner = Interner::new(&["-".to_string()], 1 << 20);
        let ids = interner.encode_column("s", plain.column(1)).unwrap();
        let got: Vec<Option<u32>> = ids.as_primitive::<UInt32Type>().iter().collect();
        assert_eq!(got, vec![Some(0), None, Some(1), Some(0)]);
        // A dictionary input (values in another order, one unused, one NULL key, one NULL marker) reuses the ids.
        let keyed = DictionaryArray::<Int32Type>::try_new(
            arrow_array::Int32Array::from(vec![Some(2), None, Some(0), Some(3)]),
            Arc::new(StringArray::from(vec!["a", "zz", "b", "-"])),
        )
        .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("s", keyed.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow_array::Int64Array::from(vec![5, 6, 7, 8])),
                Arc::new(keyed),
            ],
        )
        .unwrap();
        let ids2 = interner.encode_column("s", batch.column(1)).unwrap();
        let got: Vec<Option<u32>> = ids2.as_primitive::<UInt32Type>().iter().collect();
        assert_eq!(got, vec![Some(0), None, Some(1), None]);
        let dictionaries = interner.finish();
        let id_batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("t", DataType::Int64, false),
                Field::new("s", DataType::UInt32, true),
            ])),
            vec![plain.column(0).clone(), ids],
        )
        .unwrap();
        let back = decode(&id_batch, &dictionaries).unwrap();
        let strings = arrow_cast::cast(back.column(1), &DataType::Utf8).unwrap();
        assert_eq!(strings.as_ref(), plain.column(1).as_ref());
        assert_eq!(dictionaries["s"].len(), 3, "a, b and the unused zz");
    }

    /// A string seen again gets its first id, across the table's growth, whether it fits in an entry (short) or
    /// not (long, sharing its first bytes with others): the table's rehash must place an entry where a lookup
    /// looks for it.
    #[test]
    fn every_string_keeps_its_id_as_the_table_grows() {
        let mut s = Strings::default();
        let text = |i: usize| {
            if i.is_multiple_of(2) {
                format!("u{i:08}")
            } else {
                format!("/a/shared/prefix/{i}")
            }
        };
        let first: Vec<u32> = (0..50_000).map(|i| s.id("c", &text(i)).unwrap()).collect();
        let again: Vec<u32> = (0..50_000).map(|i| s.id("c", &text(i)).unwrap()).collect();
        assert_eq!(first, again);
        assert_eq!(first, (0..50_000).collect::<Vec<u32>>());
        let values = s.take_array();
        assert_eq!(values.len(), 50_000);
        assert_eq!(values.value(12_345), text(12_345));
    }

    #[test]
    fn a_column_whose_dictionary_outgrows_the_budget_goes_on_as_strings() {
        let strings = |v: Vec<Option<String>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let mut interner = Interner::new(&[], 200);
        let early = interner
            .encode_column(
                "s",
                &strings(vec![Some("a".into()), None, Some("b".into())]),
            )
            .unwrap();
        assert_eq!(
            *early.data_type(),
            DataType::UInt32,
            "within the budget: ids"
        );
        let long: Vec<Option<String>> = (0..20).map(|i| Some(format!("{i:0>30}"))).collect();
        let late = interner.encode_column("s", &strings(long.clone())).unwrap();
        assert_eq!(
            late.as_ref(),
            strings(long).as_ref(),
            "past it: the strings"
        );
        // Earlier ids, and later input of any form, now come out as strings.
        let back = interner.encode_column("s", &early).unwrap();
        assert_eq!(
            back.as_ref(),
            strings(vec![Some("a".into()), None, Some("b".into())]).as_ref()
        );
        let schema = Schema::new(vec![Field::new("s", DataType::Utf8, true)]);
        assert_eq!(
            *interner.encoded_schema(&schema).field(0).data_type(),
            DataType::Utf8
        );
        // The budget counts the frozen dictionary: another column that then adds a string stops too.
        let other = interner
            .encode_column("o", &strings(vec![Some("x".into())]))
            .unwrap();
        assert_eq!(*other.data_type(), DataType::Utf8);
    }
}
