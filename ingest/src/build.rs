//! [`SegmentBuilder`]: cuts a time-sorted stream of rows into segments (one or more per time chunk) and writes
//! them through the catalog's storage. Nothing is published here; the caller commits the returned entries.
//!
//! A segment is encoded and written on a thread of its own while the caller goes on producing the next one's
//! rows (at most [`WRITES_IN_FLIGHT`] writes at once, so at most that many finished segments' rows are held
//! besides the pending ones).

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use basalt_segment::{Catalog, Interval, SegmentEntry, SegmentWriter, TableSchema, WriteOptions};

use std::sync::Arc;

use crate::intern::{decode, Dictionaries};
use crate::rollup::{rollup, sort_rows};
use crate::{Error, Result};

/// Segment writes at once. With one, a 100M load's merge phase kept 1.55 of 2 cores busy: a segment's columns
/// are encoded in parallel, but its longest columns and its fsync leave cores idle that the next segment fills.
pub const WRITES_IN_FLIGHT: usize = 2;
/// Segments of fewer bytes than this (a small memory budget) are written one at a time: a write's fixed cost
/// (its threads, compression contexts and buffers) would otherwise count against a budget of a few MiB.
const MIN_BYTES_FOR_TWO_WRITES: usize = 32 << 20;

pub struct SegmentBuilder<'a> {
    catalog: &'a dyn Catalog,
    schema: TableSchema,
    options: WriteOptions,
    max_rows: usize,
    max_bytes: usize,
    chunk: Option<Interval>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: usize,
    written: Vec<SegmentEntry>,
    /// The segments being written, oldest first, and the threads writing them (which return their sizes in bytes).
    in_flight: std::collections::VecDeque<(SegmentEntry, std::thread::JoinHandle<Result<u64>>)>,
    /// String columns that arrive as ids into these dictionaries (a bulk load's, see [`crate::intern`]).
    dictionaries: Arc<Dictionaries>,
}

impl<'a> SegmentBuilder<'a> {
    pub fn new(
        catalog: &'a dyn Catalog,
        schema: TableSchema,
        options: WriteOptions,
        max_rows: usize,
        max_bytes: usize,
    ) -> Self {
        SegmentBuilder {
            catalog,
            schema,
            options,
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
            chunk: None,
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
            written: Vec::new(),
            in_flight: Default::default(),
            dictionaries: Arc::default(),
        }
    }

    /// Rows pushed from now on carry their string columns as ids into `dictionaries`.
    pub fn with_dictionaries(mut self, dictionaries: Arc<Dictionaries>) -> Self {
        self.dictionaries = dictionaries;
        self
    }

    /// Gives up: waits for the writes in flight and returns every segment written or started, whose files the
    /// caller discards (the load failed before it committed).
    pub fn abandon(&mut self) -> Vec<SegmentEntry> {
        while let Some((entry, handle)) = self.in_flight.pop_front() {
            let _ = handle.join();
            self.written.push(entry);
        }
        std::mem::take(&mut self.written)
    }

    /// Waits for the oldest write in flight, if any, and records its segment.
    fn land(&mut self) -> Result<()> {
        let Some((mut entry, handle)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let result = handle
            .join()
            .unwrap_or_else(|_| Err(Error::Spec("internal: a segment writer panicked".into())));
        match result {
            Ok(bytes) => {
                entry.bytes = bytes;
                tracing::debug!(segment = %entry.id, rows = entry.num_rows, bytes, "wrote segment");
                self.written.push(entry);
                Ok(())
            }
            Err(e) => {
                // (The file may be partly written: it is discarded with the rest.)
                self.written.push(entry);
                Err(e)
            }
        }
    }

    /// Adds time-sorted rows (time must not go backwards across calls).
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let mut rest = batch;
        while rest.num_rows() > 0 {
            let times = rest.column(0).as_primitive::<Int64Type>().values().clone();
            let first = times[0];
            let g = self.schema.segment_granularity;
            let chunk = Interval::new(g.floor(first), g.next(first));
            if self.chunk.is_some_and(|c| c != chunk) {
                self.flush()?;
            }
            self.chunk = Some(chunk);
            let in_chunk = times.partition_point(|t| *t < chunk.end);
            let room = self.max_rows - self.pending_rows;
            let mut take = in_chunk.min(room);
            if take < in_chunk && self.schema.is_rolled_up() {
                // Cut a full segment only between distinct times, so rollup stays perfect.
                let cut_time = times[take];
                let back = times[..take].partition_point(|t| *t < cut_time);
                take = if back == 0 && self.pending_rows == 0 {
                    times.partition_point(|t| *t <= cut_time)
                } else {
                    back
                };
            }
            let part = rest.slice(0, take);
            rest = rest.slice(take, rest.num_rows() - take);
            self.pending_rows += part.num_rows();
            self.pending_bytes += slice_bytes(&part);
            if part.num_rows() > 0 {
                self.pending.push(part);
            }
            if self.pending_rows >= self.max_rows
                || self.pending_bytes >= self.max_bytes
                || take < in_chunk
            {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let (Some(chunk), false) = (self.chunk, self.pending.is_empty()) else {
            return Ok(());
        };
        let schema = self.pending[0].schema();
        let batch = arrow_select::concat::concat_batches(&schema, &self.pending)
            .map_err(|e| Error::Spec(format!("internal: {e}")))?;
        self.pending.clear();
        self.pending_rows = 0;
        self.pending_bytes = 0;
        let batch = if self.schema.is_rolled_up() {
            rollup(&sort_rows(&batch, &self.schema)?, &self.schema)?
        } else {
            batch
        };
        let (id, path) = self.catalog.new_segment_path(&self.schema.name, chunk)?;
        let writes = if self.max_bytes >= MIN_BYTES_FOR_TWO_WRITES {
            WRITES_IN_FLIGHT
        } else {
            1
        };
        if self.in_flight.len() >= writes {
            self.land()?;
        }
        let entry = SegmentEntry {
            id,
            table: self.schema.name.clone(),
            interval: chunk,
            num_rows: batch.num_rows() as u64,
            bytes: 0,
            version: 0,
            crc32c: None,
        };
        let (writer, schema) = (SegmentWriter::new(self.options), self.schema.clone());
        let dictionaries = self.dictionaries.clone();
        let handle = std::thread::spawn(move || -> Result<u64> {
            let batch = if dictionaries.is_empty() {
                batch
            } else {
                decode(&batch, &dictionaries)?
            };
            Ok(writer.write(&path, &schema, chunk, &batch)?)
        });
        self.in_flight.push_back((entry, handle));
        Ok(())
    }

    /// Writes what is pending and returns every segment written.
    /// On failure the segments it wrote are discarded.
    pub fn finish(mut self) -> Result<Vec<SegmentEntry>> {
        let landed = self.flush().and_then(|()| {
            while !self.in_flight.is_empty() {
                self.land()?;
            }
            Ok(())
        });
        match landed {
            Ok(()) => Ok(std::mem::take(&mut self.written)),
            Err(e) => {
                let written = self.abandon();
                self.catalog.discard(&written);
                Err(e)
            }
        }
    }
}

/// The bytes of the rows of `batch` (a slice of a larger batch, such as a merged stretch of a spilled run, counts
/// its own rows, not the buffers it shares).
fn slice_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

impl Drop for SegmentBuilder<'_> {
    /// A builder dropped with writes in flight (neither finished nor abandoned) waits for them and removes their
    /// files.
    fn drop(&mut self) {
        while let Some((entry, handle)) = self.in_flight.pop_front() {
            let _ = handle.join();
            self.catalog.discard(&[entry]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stretch of a larger batch (as the merge hands over, sliced from a spilled run) counts its own rows.
    #[test]
    fn a_slice_counts_its_own_rows_not_the_buffers_it_shares() {
        let n = 100_000i64;
        let batch = RecordBatch::try_from_iter([
            (
                "t",
                Arc::new(arrow_array::Int64Array::from_iter_values(0..n)) as _,
            ),
            (
                "v",
                Arc::new(arrow_array::Float64Array::from_iter_values(
                    (0..n).map(|v| v as f64),
                )) as _,
            ),
        ])
        .unwrap();
        assert_eq!(slice_bytes(&batch), 16 * n as usize);
        assert_eq!(slice_bytes(&batch.slice(10, 1000)), 16_000);
    }
}
