//! Sorted runs and their k-way merge: how a load sorts input larger than memory by time.
//!
//! A full buffer is sorted and written to a scratch file (Arrow IPC); at the end every run is read back batch
//! by batch and merged in time order, so memory holds one batch per run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{new_null_array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};

use crate::{Error, Result};

/// Rows per batch in runs and in the merged stream.
pub const MERGE_BATCH_ROWS: usize = 8192;

/// A sorted run: in memory, or spilled to a file.
pub enum Run {
    Memory(RecordBatch),
    File(PathBuf),
}

/// Writes a sorted batch to `path` as an Arrow IPC file.
pub fn write_run(path: &Path, batch: &RecordBatch) -> Result<()> {
    let err = |reason: String| Error::Spill {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut w =
        arrow_ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &batch.schema())
            .map_err(|e| err(e.to_string()))?;
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = MERGE_BATCH_ROWS.min(batch.num_rows() - offset);
        w.write(&batch.slice(offset, len))
            .map_err(|e| err(e.to_string()))?;
        offset += len;
    }
    w.finish().map_err(|e| err(e.to_string()))?;
    Ok(())
}

type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>>>;

fn open_run(run: Run, target: SchemaRef) -> Result<BatchIter> {
    match run {
        Run::Memory(batch) => {
            let n = batch.num_rows();
            let batch = conform(&batch, &target)?;
            Ok(Box::new((0..n).step_by(MERGE_BATCH_ROWS).map(move |o| {
                Ok(batch.slice(o, MERGE_BATCH_ROWS.min(n - o)))
            })))
        }
        Run::File(path) => {
            let file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
            let reader =
                arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
                    .map_err(|e| Error::Spill {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
            Ok(Box::new(reader.map(move |b| {
                let b = b.map_err(|e| Error::Spill {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                conform(&b, &target)
            })))
        }
    }
}

/// Makes a batch written under an older schema fit `target`: missing columns become NULL, longs that have since
/// widened become doubles.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *target {
        return Ok(batch.clone());
    }
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for f in target.fields() {
        cols.push(match batch.column_by_name(f.name()) {
            None => new_null_array(f.data_type(), batch.num_rows()),
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) if *c.data_type() == DataType::Int64 && *f.data_type() == DataType::Float64 => {
                crate::rows::widen_array(c)
            }
            Some(c) => {
                return Err(Error::Spec(format!(
                    "column {:?} changed type from {} to {}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )))
            }
        });
    }
    RecordBatch::try_new(target.clone(), cols).map_err(|e| Error::Spec(format!("internal: {e}")))
}

struct Cursor {
    batch: RecordBatch,
    row: usize,
    source: BatchIter,
}

impl Cursor {
    fn time(&self) -> i64 {
        self.batch
            .column(0)
            .as_primitive::<Int64Type>()
            .value(self.row)
    }
}

/// Merges sorted runs into one stream of time-sorted batches (ties broken by run order, so output is
/// deterministic).
pub struct Merge {
    target: SchemaRef,
    cursors: Vec<Option<Cursor>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    single: Option<BatchIter>,
}

impl Merge {
    pub fn new(runs: Vec<Run>, target: SchemaRef) -> Result<Merge> {
        let mut sources: Vec<BatchIter> = runs
            .into_iter()
            .map(|r| open_run(r, target.clone()))
            .collect::<Result<_>>()?;
        if sources.len() == 1 {
            return Ok(Merge {
                target,
                cursors: Vec::new(),
                heap: BinaryHeap::new(),
                single: sources.pop(),
            });
        }
        let mut merge = Merge {
            target,
            cursors: Vec::new(),
            heap: BinaryHeap::new(),
            single: None,
        };
        for (i, source) in sources.into_iter().enumerate() {
            merge.cursors.push(None);
            merge.advance_source(i, source)?;
        }
        Ok(merge)
    }

    /// Loads the next non-empty batch of `source` into cursor `i`.
    fn advance_source(&mut self, i: usize, mut source: BatchIter) -> Result<()> {
        for batch in source.by_ref() {
            let batch = batch?;
            if batch.num_rows() > 0 {
                let c = Cursor {
                    batch,
                    row: 0,
                    source,
                };
                self.heap.push(Reverse((c.time(), i)));
                self.cursors[i] = Some(c);
                return Ok(());
            }
        }
        self.cursors[i] = None;
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if let Some(single) = &mut self.single {
            return single.next().transpose();
        }
        let mut slots: Vec<RecordBatch> = Vec::new();
        let mut slot_of: Vec<Option<usize>> = vec![None; self.cursors.len()];
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(MERGE_BATCH_ROWS);
        while picks.len() < MERGE_BATCH_ROWS {
            let Some(Reverse((_, i))) = self.heap.pop() else {
                break;
            };
            let Some(cursor) = self.cursors[i].as_mut() else {
                continue;
            };
            let slot = *slot_of[i].get_or_insert_with(|| {
                slots.push(cursor.batch.clone());
                slots.len() - 1
            });
            picks.push((slot, cursor.row));
            cursor.row += 1;
            if cursor.row < cursor.batch.num_rows() {
                let t = cursor.time();
                self.heap.push(Reverse((t, i)));
            } else if let Some(c) = self.cursors[i].take() {
                slot_of[i] = None;
                self.advance_source(i, c.source)?;
            }
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let refs: Vec<&RecordBatch> = slots.iter().collect();
        let batch = arrow_select::interleave::interleave_record_batch(&refs, &picks)
            .map_err(|e| Error::Spec(format!("internal: merging runs: {e}")))?;
        Ok(Some(batch))
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.target)
    }
}

impl Iterator for Merge {
    type Item = Result<RecordBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}
