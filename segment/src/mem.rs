//! An in-memory [`SegmentSource`] over Arrow arrays: the rows of a derived table (a subquery, a common table
//! expression) or of a virtual catalog table (`information_schema`). String columns get a sorted dictionary and
//! a bitmap per value when the source is built, so the engine filters and groups them exactly as it does segment
//! files.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, DictionaryArray, StringArray, UInt32Array};
use arrow_schema::{DataType, TimeUnit};
use roaring::RoaringBitmap;

use crate::footer::{ColumnStats, Interval, StatValue};
use crate::schema::{ColumnRole, ColumnType};
use crate::source::{ColumnInfo, Dictionary, SegmentSource};
use crate::{Error, Result};

const BLOCK_ROWS: usize = 65_536;

#[derive(Debug)]
enum MemColumn {
    /// `Int64`, `Float64` or `Timestamp(ms)` values.
    Numeric(ArrayRef),
    Strings {
        dict: Arc<Dictionary>,
        codes: UInt32Array,
        bitmaps: Vec<RoaringBitmap>,
        nulls: RoaringBitmap,
    },
}

/// Rows held in memory, read through the same interface as a segment file.
#[derive(Debug)]
pub struct MemSource {
    id: String,
    interval: Interval,
    num_rows: usize,
    infos: Vec<ColumnInfo>,
    columns: Vec<MemColumn>,
}

impl MemSource {
    /// Builds a source from named columns of type `Utf8`, `Int64`, `Float64` or `Timestamp(ms)`, all of
    /// `num_rows` rows. `time_column` names the column whose min/max bound the interval, if any.
    pub fn new(
        id: impl Into<String>,
        columns: Vec<(String, ArrayRef)>,
        num_rows: usize,
        time_column: Option<&str>,
    ) -> Result<Self> {
        let id = id.into();
        let mut infos = Vec::with_capacity(columns.len());
        let mut data = Vec::with_capacity(columns.len());
        let mut interval = Interval::new(i64::MIN, i64::MAX);
        for (name, array) in columns {
            if array.len() != num_rows {
                return Err(Error::InMemory(format!(
                    "in-memory column {name:?} has {} rows, expected {num_rows}",
                    array.len()
                )));
            }
            let (ty, stats, col) = match array.data_type() {
                DataType::Utf8 => {
                    let (stats, col) = index_strings(array.as_string::<i32>());
                    (ColumnType::String, stats, col)
                }
                DataType::Int64 => {
                    let a = array.as_primitive::<Int64Type>();
                    let stats = numeric_stats(a.iter().flatten().map(StatValue::Long), a);
                    (ColumnType::Long, stats, MemColumn::Numeric(array.clone()))
                }
                DataType::Float64 => {
                    let a = array.as_primitive::<Float64Type>();
                    let mut stats = ColumnStats {
                        null_count: a.null_count() as u64,
                        ..Default::default()
                    };
                    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
                    for v in a.iter().flatten() {
                        if v.is_nan() {
                            stats.has_nan = true;
                        } else {
                            lo = lo.min(v);
                            hi = hi.max(v);
                        }
                    }
                    if lo <= hi {
                        stats.min = Some(StatValue::Double(lo));
                        stats.max = Some(StatValue::Double(hi));
                    }
                    (ColumnType::Double, stats, MemColumn::Numeric(array.clone()))
                }
                DataType::Boolean => {
                    let stats = ColumnStats {
                        null_count: array.null_count() as u64,
                        ..Default::default()
                    };
                    (
                        ColumnType::Boolean,
                        stats,
                        MemColumn::Numeric(array.clone()),
                    )
                }
                DataType::Timestamp(TimeUnit::Millisecond, None) => {
                    let a = array.as_primitive::<TimestampMillisecondType>();
                    let stats = numeric_stats(a.iter().flatten().map(StatValue::Long), a);
                    if time_column == Some(name.as_str()) {
                        if let (Some(StatValue::Long(lo)), Some(StatValue::Long(hi))) =
                            (&stats.min, &stats.max)
                        {
                            interval = Interval::new(*lo, hi.saturating_add(1));
                        }
                    }
                    (
                        ColumnType::Timestamp,
                        stats,
                        MemColumn::Numeric(array.clone()),
                    )
                }
                other => {
                    return Err(Error::InMemory(format!(
                        "in-memory column {name:?} has type {other}, which a table cannot hold"
                    )))
                }
            };
            let role = if time_column == Some(name.as_str()) {
                ColumnRole::Time
            } else if ty == ColumnType::String {
                ColumnRole::Dimension
            } else {
                ColumnRole::Metric
            };
            infos.push(ColumnInfo {
                name,
                ty,
                role,
                aggregator: None,
                stats,
            });
            data.push(col);
        }
        Ok(MemSource {
            id,
            interval,
            num_rows,
            infos,
            columns: data,
        })
    }

    fn column(&self, name: &str) -> Option<&MemColumn> {
        let i = self.infos.iter().position(|c| c.name == name)?;
        self.columns.get(i)
    }
}

fn numeric_stats(values: impl Iterator<Item = StatValue>, a: &dyn Array) -> ColumnStats {
    let mut stats = ColumnStats {
        null_count: a.null_count() as u64,
        ..Default::default()
    };
    for v in values {
        let StatValue::Long(x) = v else { continue };
        match (&stats.min, &stats.max) {
            (Some(StatValue::Long(lo)), Some(StatValue::Long(hi))) => {
                let (lo, hi) = ((*lo).min(x), (*hi).max(x));
                stats.min = Some(StatValue::Long(lo));
                stats.max = Some(StatValue::Long(hi));
            }
            _ => {
                stats.min = Some(StatValue::Long(x));
                stats.max = Some(StatValue::Long(x));
            }
        }
    }
    stats
}

/// Sorted dictionary, per-row codes, one bitmap per value and the NULL rows.
fn index_strings(a: &StringArray) -> (ColumnStats, MemColumn) {
    let mut distinct: BTreeMap<&str, u32> = BTreeMap::new();
    for v in a.iter().flatten() {
        distinct.entry(v).or_insert(0);
    }
    for (code, slot) in distinct.values_mut().enumerate() {
        *slot = code as u32;
    }
    let mut bitmaps = vec![RoaringBitmap::new(); distinct.len()];
    let mut nulls = RoaringBitmap::new();
    let codes: UInt32Array = a
        .iter()
        .enumerate()
        .map(|(row, v)| match v {
            Some(v) => {
                let code = distinct[v];
                bitmaps[code as usize].insert(row as u32);
                Some(code)
            }
            None => {
                nulls.insert(row as u32);
                None
            }
        })
        .collect();
    let stats = ColumnStats {
        null_count: a.null_count() as u64,
        min: distinct
            .keys()
            .next()
            .map(|s| StatValue::String(s.to_string())),
        max: distinct
            .keys()
            .next_back()
            .map(|s| StatValue::String(s.to_string())),
        distinct: Some(distinct.len() as u64),
        has_nan: false,
    };
    let values = StringArray::from_iter_values(distinct.keys());
    (
        stats,
        MemColumn::Strings {
            dict: Arc::new(Dictionary::from_sorted(values)),
            codes,
            bitmaps,
            nulls,
        },
    )
}

impl SegmentSource for MemSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn interval(&self) -> Interval {
        self.interval
    }

    fn num_rows(&self) -> usize {
        self.num_rows
    }

    fn columns(&self) -> &[ColumnInfo] {
        &self.infos
    }

    fn block_rows(&self) -> usize {
        BLOCK_ROWS
    }

    fn block_stats(&self, _column: &str, _block: usize) -> Option<&ColumnStats> {
        None
    }

    fn read_block(&self, column: &str, block: usize) -> Result<Option<ArrayRef>> {
        let range = self.block_range(block);
        Ok(match self.column(column) {
            None => None,
            Some(MemColumn::Numeric(a)) => Some(a.slice(range.start, range.len())),
            Some(MemColumn::Strings { dict, codes, .. }) => {
                let keys = codes.slice(range.start, range.len());
                let values: ArrayRef = Arc::new(dict.values().clone());
                Some(Arc::new(
                    DictionaryArray::try_new(keys, values)
                        .map_err(|e| Error::InMemory(e.to_string()))?,
                ))
            }
        })
    }

    fn dictionary(&self, column: &str) -> Result<Option<Arc<Dictionary>>> {
        Ok(match self.column(column) {
            Some(MemColumn::Strings { dict, .. }) => Some(dict.clone()),
            _ => None,
        })
    }

    fn value_bitmap(&self, column: &str, code: u32) -> Result<RoaringBitmap> {
        Ok(match self.column(column) {
            Some(MemColumn::Strings { bitmaps, .. }) => {
                bitmaps.get(code as usize).cloned().unwrap_or_default()
            }
            _ => RoaringBitmap::new(),
        })
    }

    fn null_bitmap(&self, column: &str) -> Result<RoaringBitmap> {
        Ok(match self.column(column) {
            Some(MemColumn::Strings { nulls, .. }) => nulls.clone(),
            Some(MemColumn::Numeric(a)) => (0..a.len())
                .filter(|i| a.is_null(*i))
                .map(|i| i as u32)
                .collect(),
            None => {
                let mut all = RoaringBitmap::new();
                all.insert_range(0..self.num_rows as u32);
                all
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::StringPredicate;
    use arrow_array::Int64Array;

    #[test]
    fn strings_are_indexed_like_a_segment() {
        let names: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            None,
            Some("a"),
            Some("b"),
        ]));
        let n: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4]));
        let src = MemSource::new(
            "mem",
            vec![("name".into(), names), ("n".into(), n)],
            4,
            None,
        )
        .unwrap();
        let dict = src.dictionary("name").unwrap().unwrap();
        assert_eq!(dict.len(), 2);
        assert_eq!(dict.lookup("b"), Some(1));
        let rows = src
            .filter_strings("name", &StringPredicate::Eq("b".into()), 0..1)
            .unwrap();
        assert_eq!(rows.iter().collect::<Vec<_>>(), vec![0, 3]);
        assert_eq!(
            src.null_bitmap("name").unwrap().iter().collect::<Vec<_>>(),
            vec![1]
        );
        let block = src.read_block("name", 0).unwrap().unwrap();
        assert_eq!(block.len(), 4);
        assert!(block.is_null(1));
        assert!(src.read_block("missing", 0).unwrap().is_none());
        assert_eq!(src.columns()[1].stats.max, Some(StatValue::Long(4)));
    }
}
