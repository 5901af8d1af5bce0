//! Streaming readers of input files (CSV, JSON array, NDJSON, Parquet; `.gz` too), each handing rows one at a
//! time to a callback, with the line (or row) number each came from.

mod csv;
pub(crate) mod json;
mod parquet;

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::record::{Record, Rejection};
use crate::spec::InputFormat;
use crate::{Error, Result};

/// A row of input or the reason it could not be read, with its location.
pub struct Item<'a> {
    /// 1-based line number (row number for Parquet).
    pub line: u64,
    pub row: std::result::Result<&'a dyn Record, Rejection>,
}

/// Counts bytes read from the underlying file (before decompression), for progress reporting.
#[derive(Clone, Default)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }
}

struct Counting<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.add(n);
        Ok(n)
    }
}

/// The format of `path`: `format` unless it is `Auto`, else by extension (a trailing `.gz` is looked through).
pub fn resolve_format(path: &Path, format: InputFormat) -> Result<InputFormat> {
    if format != InputFormat::Auto {
        return Ok(format);
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let ext = name.rsplit('.').next().unwrap_or_default();
    match ext {
        "csv" | "tsv" => Ok(InputFormat::Csv),
        "json" => Ok(InputFormat::Json),
        "ndjson" | "jsonl" => Ok(InputFormat::Ndjson),
        "parquet" | "pq" => Ok(InputFormat::Parquet),
        _ => Err(Error::Input {
            file: path.to_path_buf(),
            reason:
                "cannot tell the format from the extension; pass --format csv|json|ndjson|parquet"
                    .into(),
        }),
    }
}

/// Opens `path` as a byte stream, decompressing `.gz`.
fn open_text(path: &Path, counter: &ByteCounter) -> Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let counted = Counting {
        inner: file,
        counter: counter.clone(),
    };
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(BufReader::new(counted)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, counted))
    })
}

/// What [`read_chunks`] hands over: one row, or a whole Arrow batch of Parquet input with the row number of its
/// first row (which [`batch_rows`] turns into rows when the caller cannot take it whole).
pub enum Chunk<'a> {
    Row(Item<'a>),
    Batch(u64, &'a RecordBatch),
}

/// As [`read_file`], but Parquet input comes as whole batches.
pub fn read_chunks(
    path: &Path,
    format: InputFormat,
    counter: &ByteCounter,
    f: &mut dyn FnMut(Chunk<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    if resolve_format(path, format)? != InputFormat::Parquet {
        return read_file(path, format, counter, &mut |item| f(Chunk::Row(item)));
    }
    parquet_batches(path, counter, &mut |first_line, batch| {
        f(Chunk::Batch(first_line, batch))
    })
}

/// Reads a Parquet file batch by batch; an error that is not already about the input or I/O is reported as one
/// about this file.
fn parquet_batches(
    path: &Path,
    counter: &ByteCounter,
    f: &mut dyn FnMut(u64, &RecordBatch) -> Result<ControlFlow<()>>,
) -> Result<()> {
    parquet::read_batches(path, counter, f).map_err(|e| match e {
        Error::Input { .. } | Error::Io { .. } => e,
        other => Error::Input {
            file: PathBuf::from(path),
            reason: other.to_string(),
        },
    })
}

/// Calls `f` with each row of a Parquet batch (numbered from `first_line`) until it breaks.
pub fn batch_rows(
    batch: &RecordBatch,
    first_line: u64,
    f: &mut dyn FnMut(Item<'_>) -> Result<ControlFlow<()>>,
) -> Result<ControlFlow<()>> {
    parquet::each_row(batch, first_line, f)
}

/// Reads every row of `path` in `format`, calling `f` for each until it breaks.
pub fn read_file(
    path: &Path,
    format: InputFormat,
    counter: &ByteCounter,
    f: &mut dyn FnMut(Item<'_>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let input_error = |reason: String| Error::Input {
        file: PathBuf::from(path),
        reason,
    };
    match resolve_format(path, format)? {
        InputFormat::Csv => csv::read(open_text(path, counter)?, path, f),
        InputFormat::Json => json::read(open_text(path, counter)?, path, true, f),
        InputFormat::Ndjson => json::read(open_text(path, counter)?, path, false, f),
        InputFormat::Parquet => parquet_batches(path, counter, &mut |first_line, batch| {
            parquet::each_row(batch, first_line, f)
        }),
        InputFormat::Auto => Err(input_error("format could not be resolved".into())),
    }
}
