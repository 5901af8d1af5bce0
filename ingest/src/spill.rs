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

use crate::intern::Dictionaries;
use crate::{Error, Result};

/// Rows per batch in the merged stream, at most.
pub const MERGE_BATCH_ROWS: usize = 8192;
/// Runs merged at once; more runs are first merged in groups into longer runs, so merge memory stays bounded
/// (one batch per open run).
pub const MAX_FAN_IN: usize = 128;

/// Rows per batch for runs and merges such that `MAX_FAN_IN` open batches stay within half of `budget_bytes`.
pub fn batch_rows_for(budget_bytes: usize, row_bytes: usize) -> usize {
    (budget_bytes / (2 * MAX_FAN_IN * row_bytes.max(1))).clamp(64, MERGE_BATCH_ROWS)
}

/// A sorted run: in memory, or spilled to a file.
pub enum Run {
    Memory(RecordBatch),
    File(PathBuf),
}

/// Spilled runs are written plain while a load's projected spill stays within this many bytes (the OS then
/// keeps it in its page cache), LZ4-compressed beyond, where the disk becomes the bottleneck. Measured here: at
/// 10M rows (~1 GiB of runs, now ids and numbers) plain took the load from 12.3-13.1 to 11.1-11.4 s; at 100M
/// (~8 GiB) plain took 271 s against LZ4's 194 s.
pub const PLAIN_SPILL_BYTES: u64 = 4 << 30;

/// Writes a sorted batch to `path` as an Arrow IPC file, in batches of `batch_rows` rows, LZ4-compressed when
/// `compress`.
pub fn write_run(
    path: &Path,
    batch: &RecordBatch,
    batch_rows: usize,
    compress: bool,
) -> Result<()> {
    write_batches(
        path,
        compress,
        &batch.schema(),
        (0..batch.num_rows())
            .step_by(batch_rows.max(1))
            .map(|o| Ok(batch.slice(o, batch_rows.max(1).min(batch.num_rows() - o)))),
    )
}

fn write_batches(
    path: &Path,
    compress: bool,
    schema: &SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<()> {
    let err = |reason: String| Error::Spill {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    let options = arrow_ipc::writer::IpcWriteOptions::default()
        .try_with_compression(compress.then_some(arrow_ipc::CompressionType::LZ4_FRAME))
        .map_err(|e| err(e.to_string()))?;
    let mut w = arrow_ipc::writer::FileWriter::try_new_with_options(
        std::io::BufWriter::new(file),
        schema,
        options,
    )
    .map_err(|e| err(e.to_string()))?;
    for batch in batches {
        w.write(&batch?).map_err(|e| err(e.to_string()))?;
    }
    w.finish().map_err(|e| err(e.to_string()))?;
    Ok(())
}

type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>>>;

fn open_run(
    run: Run,
    target: SchemaRef,
    batch_rows: usize,
    dictionaries: Arc<Dictionaries>,
) -> Result<BatchIter> {
    match run {
        Run::Memory(batch) => {
            let n = batch.num_rows();
            let batch = conform(&batch, &target, &dictionaries)?;
            Ok(Box::new(
                (0..n)
                    .step_by(batch_rows)
                    .map(move |o| Ok(batch.slice(o, batch_rows.min(n - o)))),
            ))
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
                conform(&b, &target, &dictionaries)
            })))
        }
    }
}

/// Makes a batch written under an older schema fit `target`: missing columns become NULL, longs that have since
/// widened become doubles, ids of a string column whose dictionary has since filled up become strings (see
/// [`crate::intern`]).
pub fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    dictionaries: &Dictionaries,
) -> Result<RecordBatch> {
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
            Some(c) if *c.data_type() == DataType::UInt32 && *f.data_type() == DataType::Utf8 => {
                let values = dictionaries.get(f.name()).map(|v| v.as_ref());
                crate::intern::ids_to_strings(f.name(), values, c)?
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
    batch_rows: usize,
    cursors: Vec<Option<Cursor>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    single: Option<BatchIter>,
}

impl Merge {
    /// Merges `runs`, emitting batches of at most `batch_rows` rows. With more than [`MAX_FAN_IN`] runs, groups
    /// of runs are first merged into longer runs under `scratch`.
    /// String columns that are ids in some runs and strings in `target` are looked up in `dictionaries`.
    pub fn new(
        mut runs: Vec<Run>,
        target: SchemaRef,
        batch_rows: usize,
        scratch: &Path,
        dictionaries: Arc<Dictionaries>,
    ) -> Result<Merge> {
        let batch_rows = batch_rows.clamp(1, MERGE_BATCH_ROWS);
        let mut pass = 0;
        while runs.len() > MAX_FAN_IN {
            let rest = runs.split_off(MAX_FAN_IN);
            let path = scratch.join(format!("merged-{pass}.arrow"));
            let merged = Merge::new(
                runs,
                target.clone(),
                batch_rows,
                scratch,
                dictionaries.clone(),
            )?;
            // (Only a load of more than MAX_FAN_IN runs gets here: a large one, its merged runs compressed.)
            write_batches(&path, true, &target, merged)?;
            runs = std::iter::once(Run::File(path)).chain(rest).collect();
            pass += 1;
        }
        let mut sources: Vec<BatchIter> = runs
            .into_iter()
            .map(|r| open_run(r, target.clone(), batch_rows, dictionaries.clone()))
            .collect::<Result<_>>()?;
        let mut merge = Merge {
            target,
            batch_rows,
            cursors: Vec::new(),
            heap: BinaryHeap::new(),
            single: None,
        };
        if sources.len() == 1 {
            merge.single = sources.pop();
            return Ok(merge);
        }
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
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.batch_rows);
        while picks.len() < self.batch_rows {
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
            // Every row of this run that sorts before the next run's head goes at once (input mostly in time
            // order spills runs that barely overlap: one heap step per stretch, not per row).
            let times = cursor.batch.column(0).as_primitive::<Int64Type>().values();
            let end = (cursor.row + self.batch_rows - picks.len()).min(times.len());
            let take = match self.heap.peek() {
                None => end - cursor.row,
                Some(Reverse((t2, j))) => {
                    let (t2, later) = (*t2, i < *j);
                    times[cursor.row..end].partition_point(|t| *t < t2 || (*t == t2 && later))
                }
            }
            .max(1);
            picks.extend((cursor.row..cursor.row + take).map(|r| (slot, r)));
            cursor.row += take;
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
        if let ([one], Some((_, first))) = (slots.as_slice(), picks.first()) {
            // One stretch of one run: a slice, nothing copied.
            return Ok(Some(one.slice(*first, picks.len())));
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray, UInt32Array};
    use arrow_schema::{Field, Schema};

    /// Runs written plain and LZ4-compressed merge in time order; a run that carried a string column as ids
    /// (before its dictionary filled up) merges with one that carried strings.
    #[test]
    fn plain_and_compressed_runs_with_ids_or_strings_merge_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let ids_schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("s", DataType::UInt32, true),
        ]));
        let text_schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let early = RecordBatch::try_new(
            ids_schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 3, 5])),
                Arc::new(UInt32Array::from(vec![Some(1), None, Some(0)])),
            ],
        )
        .unwrap();
        let late = RecordBatch::try_new(
            text_schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![2, 4, 6])),
                Arc::new(StringArray::from(vec![Some("c"), Some("a"), None])),
            ],
        )
        .unwrap();
        let (a, b) = (dir.path().join("a.arrow"), dir.path().join("b.arrow"));
        write_run(&a, &early, 2, false).unwrap();
        write_run(&b, &late, 2, true).unwrap();
        let dictionaries: Dictionaries = [(
            "s".to_string(),
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        )]
        .into();
        let merged: Vec<RecordBatch> = Merge::new(
            vec![Run::File(a), Run::File(b)],
            text_schema,
            4,
            dir.path(),
            Arc::new(dictionaries),
        )
        .unwrap()
        .collect::<Result<_>>()
        .unwrap();
        let mut times = Vec::new();
        let mut strings = Vec::new();
        for batch in &merged {
            times.extend(
                batch
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
            strings.extend(
                batch
                    .column(1)
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(String::from)),
            );
        }
        assert_eq!(times, vec![1, 2, 3, 4, 5, 6]);
        let want = [Some("b"), Some("c"), None, Some("a"), Some("a"), None];
        assert_eq!(strings, want.map(|v| v.map(String::from)));
    }

    /// More runs than merge at once are first merged in groups through scratch files; ties in time keep run
    /// order; stretches of one run that sort before the others come through whole.
    #[test]
    fn more_runs_than_the_fan_in_merge_completely_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("run", DataType::Int64, false),
        ]));
        let n = MAX_FAN_IN + 5;
        let runs: Vec<Run> = (0..n as i64)
            .map(|r| {
                // Run r: a stretch of its own (times 1000r..), then times shared with every run.
                let times: Vec<i64> = (0..20).map(|k| 1000 * r + k).chain(0..5).collect();
                let mut times = times;
                times.sort();
                let len = times.len();
                Run::Memory(
                    RecordBatch::try_new(
                        schema.clone(),
                        vec![
                            Arc::new(Int64Array::from(times)),
                            Arc::new(Int64Array::from(vec![r; len])),
                        ],
                    )
                    .unwrap(),
                )
            })
            .collect();
        let merged: Vec<RecordBatch> = Merge::new(runs, schema, 7, dir.path(), Arc::default())
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let rows: Vec<(i64, i64)> = merged
            .iter()
            .flat_map(|b| {
                let t = b.column(0).as_primitive::<Int64Type>().clone();
                let r = b.column(1).as_primitive::<Int64Type>().clone();
                (0..b.num_rows()).map(move |i| (t.value(i), r.value(i)))
            })
            .collect();
        let mut want: Vec<(i64, i64)> = (0..n as i64)
            .flat_map(|r| {
                (0..20)
                    .map(move |k| (1000 * r + k, r))
                    .chain((0..5).map(move |k| (k, r)))
            })
            .collect();
        want.sort();
        assert_eq!(rows, want);
        assert!(merged.iter().all(|b| b.num_rows() <= 7));
    }
}
