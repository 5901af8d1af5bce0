//! The bulk loader: files in, segments committed. Streams its input in bounded memory (sorted runs spilled to
//! scratch files, then merged), rejects bad rows with file and line, and commits nothing when it fails.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basalt_segment::catalog::fault;
use basalt_segment::{Catalog, Commit, TableSchema, WriteOptions};

use crate::build::SegmentBuilder;
use crate::infer::{self, Sampler};
use crate::input::{self, ByteCounter, Chunk, Item};
use crate::intern::{lock, Interner};
use crate::record::Rejection;
use crate::rollup::{rollup, sort_rows};
use crate::rows::{RowBuffer, RowPlan};
use crate::spec::{IngestSpec, InputFormat};
use crate::spill::{batch_rows_for, write_run, Merge, Run, PLAIN_SPILL_BYTES};
use crate::{Error, Result};

/// Rows per file read to discover columns and types.
pub const SAMPLE_ROWS: usize = 10_000;
/// Full buffers sorted and spilled at once, each on its own thread, while reading goes on.
const SPILLS_IN_FLIGHT: usize = 2;
/// How many rejected rows the summary quotes.
pub const QUOTED_REJECTIONS: usize = 10;

/// Options of one load.
#[derive(Default)]
pub struct LoadOptions {
    /// Replace the segments of every time chunk the load writes (as Druid's overwrite).
    pub replace: bool,
    pub write: WriteOptions,
    /// Called now and then with (bytes read, total bytes).
    pub progress: Option<Box<dyn Fn(u64, u64)>>,
}

/// What a load did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadSummary {
    pub table: String,
    pub files: usize,
    pub rows_read: u64,
    /// Rows stored (after rollup).
    pub rows_stored: u64,
    pub rows_rejected: u64,
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// The first few rejections, as `file:line: message`.
    pub first_rejections: Vec<String>,
    pub segments_written: usize,
    pub segments_replaced: usize,
    pub bytes_written: u64,
    pub spilled_runs: usize,
    pub elapsed: Duration,
    pub manifest_version: u64,
}

impl LoadSummary {
    pub fn rows_per_second(&self) -> f64 {
        self.rows_read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Loads files into a table.
pub struct Loader<'a> {
    catalog: &'a dyn Catalog,
    scratch: PathBuf,
    spec: IngestSpec,
    options: LoadOptions,
}

struct Progress {
    summary: LoadSummary,
    max_errors: u64,
}

impl Progress {
    fn reject(&mut self, file: &Path, line: u64, r: Rejection) -> Result<()> {
        let s = &mut self.summary;
        s.rows_rejected += 1;
        *s.rejected_by_reason.entry(r.reason.name()).or_default() += 1;
        let quoted = format!(
            "{}:{line}: {}: {}",
            file.display(),
            r.reason.name(),
            r.message
        );
        if s.first_rejections.len() < QUOTED_REJECTIONS {
            s.first_rejections.push(quoted.clone());
        }
        if s.rows_rejected > self.max_errors {
            return Err(Error::TooManyErrors {
                rejected: s.rows_rejected,
                max_errors: self.max_errors,
                first: s.first_rejections.first().cloned().unwrap_or(quoted),
            });
        }
        Ok(())
    }
}

impl<'a> Loader<'a> {
    /// `scratch` is a directory for spill files (removed when the load ends).
    pub fn new(
        catalog: &'a dyn Catalog,
        scratch: &Path,
        spec: IngestSpec,
        options: LoadOptions,
    ) -> Result<Self> {
        spec.validate()?;
        Ok(Loader {
            catalog,
            scratch: scratch.to_path_buf(),
            spec,
            options,
        })
    }

    /// Reads a sample of every file and returns the table schema the load will use.
    pub fn plan_schema(&self, files: &[PathBuf]) -> Result<(TableSchema, Vec<String>)> {
        let mut sampler = Sampler::new(&self.spec.null_values);
        for file in files {
            let format = input::resolve_format(file, self.spec.format)?;
            sampler.numbers_in_text = format == InputFormat::Csv;
            let mut n = 0usize;
            input::read_file(
                file,
                self.spec.format,
                &ByteCounter::default(),
                &mut |item| {
                    if let Ok(r) = item.row {
                        sampler.observe(r);
                    }
                    n += 1;
                    Ok(if n >= SAMPLE_ROWS {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    })
                },
            )?;
        }
        let inferred = infer::table_schema(&self.spec, &sampler)?;
        let snapshot = self.catalog.snapshot();
        Ok(match snapshot.tables.get(&self.spec.table) {
            Some(existing) => {
                let fixed = existing.columns.iter().map(|c| c.name.clone()).collect();
                (infer::reconcile(existing, &inferred)?, fixed)
            }
            None => (inferred, Vec::new()),
        })
    }

    /// Loads `files`; on success the new segments are committed, on failure nothing is.
    pub fn load(self, files: &[PathBuf]) -> Result<LoadSummary> {
        let started = Instant::now();
        let mut total = 0u64;
        for f in files {
            total += std::fs::metadata(f)
                .map_err(|e| Error::io("stat", f, e))?
                .len();
        }
        let (schema, fixed) = self.plan_schema(files)?;
        // String columns travel as ids into load-wide dictionaries (see `crate::intern`).
        let tuning = &self.spec.tuning;
        let dictionary_budget = tuning.max_bytes_in_memory / 4;
        let interner = Arc::new(Mutex::new(Interner::new(
            &self.spec.null_values,
            dictionary_budget,
        )));
        let mut buffer = RowBuffer::new(RowPlan::new(&self.spec, &schema, &fixed)?)
            .with_interner(interner.clone());
        let scratch = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(&self.scratch)
            .map_err(|e| Error::io("create scratch directory in", &self.scratch, e))?;
        let mut progress = Progress {
            summary: LoadSummary {
                table: self.spec.table.clone(),
                files: files.len(),
                ..Default::default()
            },
            max_errors: self.spec.max_errors,
        };
        let mut runs: Vec<Run> = Vec::new();
        let interner = &*interner;
        let mut done_before = 0u64;
        let mut buffered = 0u64;
        let mut row_bytes = 64usize;
        let run_budget = (tuning.max_bytes_in_memory - dictionary_budget) / (SPILLS_IN_FLIGHT + 1);
        // A full buffer is sorted and spilled on a thread of its own while reading goes on; at most
        // SPILLS_IN_FLIGHT spills run at once (so at most that many buffers and the one filling, the memory
        // budget, are held), and every spill has ended, one way or the other, when the scope does.
        std::thread::scope(|scope| -> Result<()> {
            let mut pending: std::collections::VecDeque<
                std::thread::ScopedJoinHandle<'_, Result<()>>,
            > = std::collections::VecDeque::new();
            for file in files {
                let counter = ByteCounter::default();
                let mut since_report = 0u32;
                input::read_chunks(file, self.spec.format, &counter, &mut |chunk| {
                    let rows = match chunk {
                        Chunk::Row(item) => {
                            take_row(&mut buffer, &mut progress, file, item)?;
                            1
                        }
                        Chunk::Batch(first_line, batch) => {
                            match buffer.push_arrow(batch) {
                                Some(rejected) => {
                                    progress.summary.rows_read += batch.num_rows() as u64;
                                    for (row, rej) in rejected {
                                        progress.reject(file, first_line + row as u64, rej)?;
                                    }
                                }
                                None => {
                                    // (`take_row` never breaks: every row is read.)
                                    let _ = input::batch_rows(batch, first_line, &mut |item| {
                                        take_row(&mut buffer, &mut progress, file, item)?;
                                        Ok(ControlFlow::Continue(()))
                                    })?;
                                }
                            }
                            batch.num_rows() as u32
                        }
                    };
                    if buffer.len() >= tuning.max_rows_in_memory || buffer.bytes() >= run_budget {
                        let path = scratch.path().join(format!("run-{}.arrow", runs.len()));
                        row_bytes = buffer.bytes() / buffer.len().max(1);
                        let batch_rows = batch_rows_for(tuning.max_bytes_in_memory, row_bytes);
                        let schema = buffer.plan().schema().clone();
                        // Spill plain unless the whole load's spill, projected from what was read so far,
                        // would pass PLAIN_SPILL_BYTES.
                        buffered += buffer.bytes() as u64;
                        let read = (done_before + counter.get()).max(1);
                        let compress = buffered as f64 * total.max(read) as f64 / read as f64
                            > PLAIN_SPILL_BYTES as f64;
                        let rows = buffer.take_rows();
                        if pending.len() >= SPILLS_IN_FLIGHT {
                            if let Some(h) = pending.pop_front() {
                                joined(h)?;
                            }
                        }
                        runs.push(Run::File(path.clone()));
                        pending.push_back(scope.spawn(move || {
                            let batch = rows.into_batch()?;
                            write_run(&path, &sort_batch(&batch, &schema)?, batch_rows, compress)
                        }));
                    }
                    since_report += rows;
                    if since_report >= 65_536 {
                        since_report = 0;
                        if let Some(p) = &self.options.progress {
                            p(done_before + counter.get(), total);
                        }
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
                done_before += counter.get();
            }
            while let Some(h) = pending.pop_front() {
                joined(h)?;
            }
            Ok(())
        })?;
        if let Some(p) = &self.options.progress {
            p(total, total);
        }
        progress.summary.spilled_runs = runs.len();
        let final_schema = buffer.plan().schema().clone();
        if !buffer.is_empty() {
            if !runs.is_empty() {
                row_bytes = buffer.bytes() / buffer.len().max(1);
            }
            if runs.is_empty() {
                row_bytes = buffer.bytes() / buffer.len().max(1);
            }
            let batch = buffer.take_batch()?;
            runs.push(Run::Memory(sort_batch(&batch, &final_schema)?));
        }
        drop(buffer);
        let target = lock(interner).encoded_schema(&final_schema.arrow_schema());
        let dictionaries = Arc::new(std::mem::take(&mut *lock(interner)).finish());

        // Merge the runs in time order into segments.
        let mut builder = SegmentBuilder::new(
            self.catalog,
            final_schema.clone(),
            self.options.write,
            tuning.max_rows_per_segment,
            tuning.max_bytes_in_memory / 4,
        )
        .with_dictionaries(dictionaries.clone());
        let result = (|| -> Result<()> {
            if !runs.is_empty() {
                let batch_rows = batch_rows_for(tuning.max_bytes_in_memory, row_bytes);
                for batch in Merge::new(runs, target, batch_rows, scratch.path(), dictionaries)? {
                    builder.push(batch?)?;
                }
            }
            Ok(())
        })();
        let entries = match result {
            Ok(()) => builder.finish(),
            Err(e) => {
                self.catalog.discard(&builder.abandon());
                return Err(e);
            }
        };
        let entries = entries?;
        fault::point(fault::AFTER_SEGMENT_WRITE);

        // (The snapshot is dropped before the commit, so that the files it replaces can be deleted at once.)
        let remove: Vec<String> = if self.options.replace {
            self.catalog
                .snapshot()
                .segments_of(&self.spec.table)
                .filter(|s| entries.iter().any(|e| e.interval.overlaps(&s.interval)))
                .map(|s| s.id.clone())
                .collect()
        } else {
            Vec::new()
        };
        let summary = &mut progress.summary;
        summary.rows_stored = entries.iter().map(|e| e.num_rows).sum();
        summary.segments_written = entries.len();
        summary.segments_replaced = remove.len();
        summary.bytes_written = entries.iter().map(|e| e.bytes).sum();
        let commit = Commit {
            tables: vec![final_schema],
            add: entries.clone(),
            remove,
            sources: Vec::new(),
            ..Default::default()
        };
        match self.catalog.commit(commit) {
            Ok(m) => summary.manifest_version = m.version,
            Err(e) => {
                self.catalog.discard(&entries);
                return Err(e.into());
            }
        }
        summary.elapsed = started.elapsed();
        Ok(progress.summary)
    }
}

/// Converts one row into `buffer`, or records why it was rejected.
fn take_row(
    buffer: &mut RowBuffer,
    progress: &mut Progress,
    file: &Path,
    item: Item<'_>,
) -> Result<()> {
    progress.summary.rows_read += 1;
    match item.row {
        Ok(record) => {
            if let Err(rej) = buffer.push(record) {
                progress.reject(file, item.line, rej)?;
            }
        }
        Err(rej) => progress.reject(file, item.line, rej)?,
    }
    Ok(())
}

/// The result of a spill thread (a panic in it is reported, not propagated).
fn joined(h: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    h.join()
        .unwrap_or_else(|_| Err(Error::Spec("internal: a spill thread panicked".into())))
}

/// Rows sorted by time (and rolled up when the table is).
fn sort_batch(
    batch: &arrow_array::RecordBatch,
    schema: &basalt_segment::TableSchema,
) -> Result<arrow_array::RecordBatch> {
    let batch = sort_rows(batch, schema)?;
    if schema.is_rolled_up() {
        rollup(&batch, schema)
    } else {
        Ok(batch)
    }
}
