//! [`RealtimeIndex`]: the rows a streaming ingestion consumed but has not yet handed off into segments.
//!
//! Rows arrive in batches (one per poll of the consumer). Each batch is split by time chunk and, under rollup,
//! rolled up; each piece becomes an immutable [`MemSource`] (sorted dictionaries and bitmaps, like a segment) so
//! queries read it through the same interface as a segment file. Pieces of a chunk merge like a binary counter
//! (two pieces of similar size become one), so a chunk holds O(log n) pieces and each row is rebuilt O(log n)
//! times. A handoff takes every chunk's rows, time-sorted, for the segment builder.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, TimestampMillisecondArray};
use basalt_segment::{MemSource, SegmentSource, TableSchema};

use crate::rollup::{rollup, sort_rows};
use crate::{Error, Result};

struct Piece {
    batch: RecordBatch,
    source: Arc<MemSource>,
}

/// In-memory rows of one table, by time chunk.
pub struct RealtimeIndex {
    schema: TableSchema,
    chunks: BTreeMap<i64, Vec<Piece>>,
    rows: usize,
    bytes: usize,
    seq: u64,
}

impl RealtimeIndex {
    pub fn new(schema: TableSchema) -> Self {
        RealtimeIndex {
            schema,
            chunks: BTreeMap::new(),
            rows: 0,
            bytes: 0,
            seq: 0,
        }
    }

    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// Adopts a schema with more columns (pieces built before lack them; they read as NULL).
    pub fn set_schema(&mut self, schema: TableSchema) {
        self.schema = schema;
    }

    /// Rows held (after rollup).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds rows in the schema's layout (time first, as Int64 epoch milliseconds).
    pub fn add(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = self.prepare(&batch)?;
        let times = batch.column(0).as_primitive::<Int64Type>().values().clone();
        let g = self.schema.segment_granularity;
        let mut start = 0;
        while start < batch.num_rows() {
            let chunk = g.floor(times[start]);
            let end = start + times[start..].partition_point(|t| *t < g.next(times[start]));
            let mut piece = self.piece(batch.slice(start, end - start))?;
            // Binary-counter merging: the last piece absorbs a new one at least as large.
            loop {
                let pieces = self.chunks.entry(chunk).or_default();
                let absorb = pieces
                    .last()
                    .is_some_and(|last| last.batch.num_rows() <= piece.batch.num_rows());
                let prev = if absorb { pieces.pop() } else { None };
                let Some(prev) = prev else {
                    self.rows += piece.batch.num_rows();
                    self.bytes += piece_bytes(&piece);
                    pieces.push(piece);
                    break;
                };
                self.rows -= prev.batch.num_rows();
                self.bytes = self.bytes.saturating_sub(piece_bytes(&prev));
                let merged = Self::merge_pieces(&self.schema, &[&prev.batch, &piece.batch])?;
                piece = Self::build(&self.schema, merged, self.seq)?;
                self.seq += 1;
            }
            start = end;
        }
        Ok(())
    }

    /// Sorts (and under rollup, rolls up) a batch aligned to the schema.
    fn prepare(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let batch = align(batch, &self.schema)?;
        let sorted = sort_rows(&batch, &self.schema)?;
        if self.schema.is_rolled_up() {
            rollup(&sorted, &self.schema)
        } else {
            Ok(sorted)
        }
    }

    fn piece(&mut self, batch: RecordBatch) -> Result<Piece> {
        let seq = self.seq;
        self.seq += 1;
        Self::build(&self.schema, batch, seq)
    }

    fn build(schema: &TableSchema, batch: RecordBatch, seq: u64) -> Result<Piece> {
        let mut columns: Vec<(String, ArrayRef)> = Vec::with_capacity(batch.num_columns());
        for (i, field) in batch.schema().fields().iter().enumerate() {
            let array = batch.column(i).clone();
            let array: ArrayRef = if i == 0 {
                let t = array.as_primitive::<Int64Type>();
                Arc::new(TimestampMillisecondArray::new(
                    t.values().clone(),
                    t.nulls().cloned(),
                ))
            } else {
                array
            };
            columns.push((field.name().clone(), array));
        }
        let id = format!("realtime-{}-{seq}", schema.name);
        let source = MemSource::new(id, columns, batch.num_rows(), Some(&schema.time_column))?;
        Ok(Piece {
            batch,
            source: Arc::new(source),
        })
    }

    fn merge_pieces(schema: &TableSchema, batches: &[&RecordBatch]) -> Result<RecordBatch> {
        let aligned = batches
            .iter()
            .map(|b| align(b, schema))
            .collect::<Result<Vec<_>>>()?;
        let arrow_schema = Arc::new(schema.arrow_schema());
        let batch = arrow_select::concat::concat_batches(&arrow_schema, &aligned)
            .map_err(|e| Error::Spec(format!("internal: merging in-memory rows: {e}")))?;
        let sorted = sort_rows(&batch, schema)?;
        if schema.is_rolled_up() {
            rollup(&sorted, schema)
        } else {
            Ok(sorted)
        }
    }

    /// The in-memory sources, in time order, for queries.
    pub fn sources(&self) -> Vec<Arc<dyn SegmentSource>> {
        self.chunks
            .values()
            .flatten()
            .map(|p| p.source.clone() as Arc<dyn SegmentSource>)
            .collect()
    }

    /// Every chunk's rows, merged and time-sorted, chunks in time order (for a handoff).
    pub fn chunk_batches(&self) -> Result<Vec<RecordBatch>> {
        self.chunks
            .values()
            .filter(|p| !p.is_empty())
            .map(|pieces| {
                let batches: Vec<&RecordBatch> = pieces.iter().map(|p| &p.batch).collect();
                Self::merge_pieces(&self.schema, &batches)
            })
            .collect()
    }

    /// Drops every row (after a handoff committed them).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.rows = 0;
        self.bytes = 0;
    }
}

fn piece_bytes(p: &Piece) -> usize {
    // The batch plus the source's dictionaries and bitmaps, roughly as large again.
    p.batch.get_array_memory_size() * 2
}

/// `batch` with the schema's columns in the schema's order; columns it lacks are NULL.
fn align(batch: &RecordBatch, schema: &TableSchema) -> Result<RecordBatch> {
    let arrow_schema = Arc::new(schema.arrow_schema());
    if batch.schema().fields() == arrow_schema.fields() {
        return Ok(batch.clone());
    }
    let columns = arrow_schema
        .fields()
        .iter()
        .map(|f| {
            batch
                .column_by_name(f.name())
                .cloned()
                .unwrap_or_else(|| new_null_array(f.data_type(), batch.num_rows()))
        })
        .collect();
    RecordBatch::try_new(arrow_schema, columns)
        .map_err(|e| Error::Spec(format!("internal: aligning in-memory rows: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use basalt_segment::{ColumnDef, ColumnRole, ColumnType, Granularity};

    fn schema(cols: &[&str]) -> TableSchema {
        let mut columns = vec![ColumnDef {
            name: "ts".into(),
            ty: ColumnType::Timestamp,
            role: ColumnRole::Time,
            aggregator: None,
        }];
        for c in cols {
            columns.push(ColumnDef {
                name: c.to_string(),
                ty: ColumnType::String,
                role: ColumnRole::Dimension,
                aggregator: None,
            });
        }
        TableSchema {
            name: "t".into(),
            time_column: "ts".into(),
            columns,
            segment_granularity: Granularity::Hour,
            rollup: None,
        }
    }

    fn batch(s: &TableSchema, times: &[i64], country: &[&str]) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(times.to_vec()))];
        if s.columns.len() > 1 {
            cols.push(Arc::new(StringArray::from(country.to_vec())));
        }
        RecordBatch::try_new(Arc::new(s.arrow_schema()), cols).unwrap()
    }

    #[test]
    fn pieces_split_by_chunk_and_merge_logarithmically() {
        let s = schema(&["country"]);
        let mut idx = RealtimeIndex::new(s.clone());
        let hour = 3_600_000;
        for i in 0..64 {
            idx.add(batch(&s, &[i, hour + i], &["fr", "de"])).unwrap();
        }
        assert_eq!(idx.rows(), 128);
        let sources = idx.sources();
        // Two chunks, each a binary counter of 64 equal pieces: one piece each.
        assert_eq!(sources.len(), 2);
        assert_eq!(sources.iter().map(|s| s.num_rows()).sum::<usize>(), 128);
        assert_eq!(sources[0].interval().start, 0);
        let batches = idx.chunk_batches().unwrap();
        assert_eq!(batches.len(), 2);
        let t = batches[0].column(0).as_primitive::<Int64Type>();
        assert!(t.values().windows(2).all(|w| w[0] <= w[1]));
        idx.clear();
        assert!(idx.is_empty() && idx.sources().is_empty());
    }

    #[test]
    fn a_new_column_reads_as_null_in_older_pieces() {
        let s1 = schema(&[]);
        let s2 = schema(&["country"]);
        let mut idx = RealtimeIndex::new(s1.clone());
        idx.add(batch(&s1, &[5, 6, 7], &[])).unwrap();
        idx.set_schema(s2.clone());
        idx.add(batch(&s2, &[1, 2, 3, 4], &["a", "b", "c", "d"]))
            .unwrap();
        let b = idx.chunk_batches().unwrap();
        assert_eq!(b[0].num_rows(), 7);
        assert_eq!(b[0].column(1).null_count(), 3);
    }
}
