//! Writes one immutable segment file from a time-sorted Arrow batch.

use std::io::Write;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use roaring::RoaringBitmap;

use crate::codec::{compress_blocks, compress_whole, delta_encode};
use crate::footer::{
    Codec, ColumnMeta, ColumnStats, Encoding, Footer, Interval, Region, StatValue,
};
use crate::format::{
    align_up, BLOCK_ROWS, FORMAT_VERSION, HEADER_LEN, HEADER_MAGIC, INDEX_ALL_BELOW_ROWS,
    INDEX_MIN_ROWS_PER_VALUE, TRAILER_MAGIC,
};
use crate::schema::{ColumnDef, ColumnType, TableSchema};
use crate::{Error, Result};

/// Which string columns get a bitmap index (near-unique columns never do; see `FORMAT.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IndexPolicy {
    /// Those whose bitmaps take no more bytes than their codes uncompressed (and every column of a segment
    /// with fewer than [`INDEX_ALL_BELOW_ROWS`] rows). Bitmaps of values spread over the time chunk cost more
    /// than that (two bytes per row of a rare value), and a scan of the codes answers a filter about as fast;
    /// where rows of a value cluster, run containers make the bitmaps small, and they answer a selective
    /// filter without a scan.
    #[default]
    Auto,
    /// Every string column with enough rows per value, whatever the bitmaps cost.
    All,
}

/// Options of the segment writer.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Compression of numeric values, dictionary codes and dictionaries; applied only where it saves a fifth
    /// or more.
    pub codec: Codec,
    /// Rows per block (tests use small blocks to exercise block boundaries).
    pub block_rows: usize,
    pub index: IndexPolicy,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            codec: Codec::Zstd,
            block_rows: BLOCK_ROWS,
            index: IndexPolicy::default(),
        }
    }
}

/// Builds the bytes of a segment file.
pub struct SegmentWriter {
    options: WriteOptions,
}

/// Byte buffer that places regions at aligned offsets and checksums them.
struct FileBuf {
    bytes: Vec<u8>,
}

impl FileBuf {
    fn region(&mut self, data: &[u8], codec: Codec) -> Region {
        let offset = align_up(self.bytes.len());
        self.bytes.resize(offset, 0);
        self.bytes.extend_from_slice(data);
        Region {
            offset: offset as u64,
            len: data.len() as u64,
            crc32c: crc32c::crc32c(data),
            codec,
        }
    }
}

impl SegmentWriter {
    pub fn new(options: WriteOptions) -> Self {
        SegmentWriter { options }
    }

    /// Encodes `batch` (rows of `schema`'s table in the chunk `interval`, sorted by time) as segment bytes.
    /// Columns of the schema missing from the batch are not stored (they read as NULL).
    pub fn encode(
        &self,
        schema: &TableSchema,
        interval: Interval,
        batch: &RecordBatch,
    ) -> Result<Vec<u8>> {
        if self.options.block_rows == 0 {
            return Err(Error::InvalidInput("block_rows must be positive".into()));
        }
        let mut buf = FileBuf {
            bytes: Vec::with_capacity(HEADER_LEN + batch.get_array_memory_size()),
        };
        buf.bytes.extend_from_slice(&HEADER_MAGIC);
        buf.bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf.bytes.resize(HEADER_LEN, 0);

        // Columns are encoded independently (in parallel), each into its own buffer whose regions start at 0,
        // then placed one after another: a column starting at an aligned offset keeps every region aligned, and
        // the bytes are the same as encoding the columns in turn into one buffer.
        let defs: Vec<&ColumnDef> = schema.columns.iter().collect();
        let encoded = parallel_map(&defs, |def| self.encode_column(def, batch, interval))?;
        let mut columns = Vec::new();
        for (mut meta, bytes) in encoded.into_iter().flatten() {
            let base = align_up(buf.bytes.len());
            buf.bytes.resize(base, 0);
            buf.bytes.extend_from_slice(&bytes);
            shift(&mut meta, base as u64);
            columns.push(meta);
        }

        let footer = Footer {
            format_version: FORMAT_VERSION,
            table: schema.name.clone(),
            time_column: schema.time_column.clone(),
            interval,
            num_rows: batch.num_rows() as u64,
            block_rows: self.options.block_rows as u32,
            columns,
        };
        let footer_bytes = serde_json::to_vec(&footer)
            .map_err(|e| Error::InvalidInput(format!("footer encoding: {e}")))?;
        let footer_at = align_up(buf.bytes.len());
        buf.bytes.resize(footer_at, 0);
        buf.bytes.extend_from_slice(&footer_bytes);
        buf.bytes
            .extend_from_slice(&(footer_bytes.len() as u64).to_le_bytes());
        buf.bytes
            .extend_from_slice(&crc32c::crc32c(&footer_bytes).to_le_bytes());
        buf.bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf.bytes.extend_from_slice(&TRAILER_MAGIC);
        Ok(buf.bytes)
    }

    /// Encodes one column into a buffer of its own (regions relative to its start); `None` for a column the batch
    /// does not have.
    fn encode_column(
        &self,
        def: &ColumnDef,
        batch: &RecordBatch,
        interval: Interval,
    ) -> Result<Option<(ColumnMeta, Vec<u8>)>> {
        let mut buf = FileBuf { bytes: Vec::new() };
        let Some(array) = batch.column_by_name(&def.name) else {
            if def.ty == ColumnType::Timestamp {
                return Err(Error::InvalidInput(format!(
                    "the batch has no time column {:?}",
                    def.name
                )));
            }
            return Ok(None);
        };
        let mut meta = match def.ty {
            ColumnType::Boolean => {
                return Err(Error::InvalidInput(format!(
                    "column {:?} is boolean; segments do not store booleans (store 0/1 as a long)",
                    def.name
                )))
            }
            ColumnType::Timestamp => {
                let values = time_values(array.as_ref(), &def.name)?;
                check_time(&values, interval, &def.name)?;
                self.numeric_column(
                    &mut buf,
                    &def.name,
                    true,
                    &values,
                    None,
                    StatValue::Long,
                    |v: i64| v.to_le_bytes(),
                )?
            }
            ColumnType::Long => {
                let a = match array.data_type() {
                    DataType::Int64 => array.as_primitive::<Int64Type>(),
                    other => return Err(type_error(&def.name, def.ty, other)),
                };
                self.numeric_column(
                    &mut buf,
                    &def.name,
                    false,
                    a.values(),
                    a.nulls(),
                    StatValue::Long,
                    |v: i64| v.to_le_bytes(),
                )?
            }
            ColumnType::Double => {
                let a = match array.data_type() {
                    DataType::Float64 => array.as_primitive::<Float64Type>(),
                    other => return Err(type_error(&def.name, def.ty, other)),
                };
                self.numeric_column(
                    &mut buf,
                    &def.name,
                    false,
                    a.values(),
                    a.nulls(),
                    StatValue::Double,
                    |v: f64| v.to_le_bytes(),
                )?
            }
            ColumnType::String => match array.data_type() {
                DataType::Utf8 => {
                    self.string_column(&mut buf, &def.name, array.as_string::<i32>().iter())?
                }
                DataType::Dictionary(k, _) if **k == DataType::UInt32 => self.dictionary_column(
                    &mut buf,
                    &def.name,
                    array.as_dictionary::<arrow_array::types::UInt32Type>(),
                )?,
                DataType::Dictionary(k, _) if **k == DataType::Int32 => self.dictionary_column(
                    &mut buf,
                    &def.name,
                    array.as_dictionary::<arrow_array::types::Int32Type>(),
                )?,
                other => return Err(type_error(&def.name, def.ty, other)),
            },
        };
        meta.ty = def.ty;
        meta.role = def.role;
        meta.aggregator = def.aggregator;
        Ok(Some((meta, buf.bytes)))
    }

    /// Encodes and writes a segment to `path` (which must not exist), then syncs it.
    pub fn write(
        &self,
        path: &Path,
        schema: &TableSchema,
        interval: Interval,
        batch: &RecordBatch,
    ) -> Result<u64> {
        let bytes = self.encode(schema, interval, batch)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        file.write_all(&bytes)
            .map_err(|e| Error::io("write", path, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", path, e))?;
        Ok(bytes.len() as u64)
    }

    /// A numeric column; `delta`: store its blocks delta-encoded when they are compressed (8-byte integers).
    /// `valid`: which rows are not NULL (a NULL row's value is stored as zeros). Worked block by block, a column
    /// without NULLs in tight loops over the values (row by row through an `Option` and a division per row, the
    /// numeric columns took a third of the writer's time).
    #[allow(clippy::too_many_arguments)]
    fn numeric_column<T: Copy + PartialOrd, const N: usize>(
        &self,
        buf: &mut FileBuf,
        name: &str,
        delta: bool,
        values: &[T],
        valid: Option<&NullBuffer>,
        stat: impl Fn(T) -> StatValue,
        to_le: impl Fn(T) -> [u8; N],
    ) -> Result<ColumnMeta> {
        let block_rows = self.options.block_rows;
        let valid = valid.filter(|v| v.null_count() > 0);
        let mut raw = vec![0u8; values.len() * N];
        let mut nulls = RoaringBitmap::new();
        let mut stats = StatsBuilder::default();
        let mut block_stats = Vec::new();
        for (b, (block, out)) in values
            .chunks(block_rows)
            .zip(raw.chunks_mut(block_rows * N))
            .enumerate()
        {
            let first = b * block_rows;
            let mut bs = StatsBuilder::default();
            match valid {
                None => {
                    for (v, o) in block.iter().zip(out.chunks_exact_mut(N)) {
                        o.copy_from_slice(&to_le(*v));
                    }
                    bs.add_all(block);
                }
                Some(valid) => {
                    for (i, (v, o)) in block.iter().zip(out.chunks_exact_mut(N)).enumerate() {
                        if valid.is_valid(first + i) {
                            o.copy_from_slice(&to_le(*v));
                            bs.add(*v);
                        } else {
                            append(&mut nulls, (first + i) as u32);
                            bs.nulls += 1;
                        }
                    }
                }
            }
            stats.merge(&bs);
            block_stats.push(bs.finish(&stat));
        }
        let mut encoding = Encoding::Plain;
        let delta = (delta && N == 8 && self.options.codec != Codec::None)
            .then(|| {
                compress_blocks(
                    &delta_encode(&raw, block_rows),
                    N,
                    block_rows,
                    self.options.codec,
                )
            })
            .flatten();
        let values = if let Some(c) = delta {
            encoding = Encoding::Delta;
            buf.region(&c, self.options.codec)
        } else {
            match compress_blocks(&raw, N, block_rows, self.options.codec) {
                Some(c) => buf.region(&c, self.options.codec),
                None => buf.region(&raw, Codec::None),
            }
        };
        let nulls = null_region(buf, &nulls)?;
        Ok(ColumnMeta {
            name: name.to_string(),
            ty: ColumnType::Long,
            role: crate::schema::ColumnRole::Dimension,
            aggregator: None,
            stats: stats.finish(&stat),
            values,
            width: N as u8,
            encoding,
            dictionary: None,
            bitmaps: None,
            nulls,
            block_stats,
        })
    }

    /// A string column from its values, one by one: each value hashed to find its provisional id.
    fn string_column<'a>(
        &self,
        buf: &mut FileBuf,
        name: &str,
        values: impl Iterator<Item = Option<&'a str>>,
    ) -> Result<ColumnMeta> {
        // Provisional ids in order of appearance.
        let mut ids: hashbrown::HashMap<&'a str, u32, foldhash::fast::FixedState> =
            hashbrown::HashMap::default();
        let mut distinct: Vec<&'a str> = Vec::new();
        let mut provisional: Vec<u32> = Vec::new();
        let mut nulls = RoaringBitmap::new();
        for (row, v) in values.enumerate() {
            match v {
                Some(s) => {
                    let id = *ids.entry(s).or_insert_with(|| {
                        distinct.push(s);
                        (distinct.len() - 1) as u32
                    });
                    provisional.push(id);
                }
                None => {
                    append(&mut nulls, row as u32);
                    provisional.push(u32::MAX);
                }
            }
        }
        self.coded_string_column(buf, name, provisional, &distinct, nulls)
    }

    /// A string column from dictionary keys into `values` (an Arrow dictionary array): each key looked up in a
    /// table as long as the dictionary, so no value is hashed or compared per row. The dictionary may hold
    /// values no row uses, and the same string more than once.
    fn dictionary_column<K: arrow_array::types::ArrowDictionaryKeyType>(
        &self,
        buf: &mut FileBuf,
        name: &str,
        array: &arrow_array::DictionaryArray<K>,
    ) -> Result<ColumnMeta> {
        let Some(values) = array.values().as_string_opt::<i32>() else {
            return Err(Error::InvalidInput(format!(
                "column {name:?}: a dictionary of {} cannot be stored as strings",
                array.values().data_type()
            )));
        };
        let mut id_of = vec![u32::MAX; values.len()];
        let mut distinct: Vec<&str> = Vec::new();
        let mut provisional: Vec<u32> = Vec::with_capacity(array.len());
        let mut nulls = RoaringBitmap::new();
        for (row, key) in array.keys().values().iter().enumerate() {
            let k = arrow_buffer::ArrowNativeType::as_usize(*key);
            let null = array.is_null(row) || k >= values.len() || values.is_null(k);
            if null {
                append(&mut nulls, row as u32);
                provisional.push(u32::MAX);
                continue;
            }
            let id = &mut id_of[k];
            if *id == u32::MAX {
                *id = distinct.len() as u32;
                distinct.push(values.value(k));
            }
            provisional.push(*id);
        }
        self.coded_string_column(buf, name, provisional, &distinct, nulls)
    }

    /// Encodes a string column given each row's provisional id into `distinct` (`u32::MAX` for NULL, also in
    /// `nulls`): sorts the dictionary (merging equal values), then writes codes, dictionary and bitmap index.
    fn coded_string_column(
        &self,
        buf: &mut FileBuf,
        name: &str,
        provisional: Vec<u32>,
        distinct: &[&str],
        nulls: RoaringBitmap,
    ) -> Result<ColumnMeta> {
        // Sort the dictionary and remap provisional ids to sorted codes; equal values share one code.
        let (order, remap) = sorted_dictionary(distinct);
        let card = order.len();
        let width: usize = if card <= 1 << 8 {
            1
        } else if card <= 1 << 16 {
            2
        } else {
            4
        };
        // Each row's code (`u32::MAX` stays NULL's mark until the codes are written, as code 0).
        let mut coded = provisional;
        for id in coded.iter_mut() {
            if *id != u32::MAX {
                *id = remap[*id as usize];
            }
        }
        // The bitmap index by counting sort: each code's rows land, ascending, in one slice of `by_code`, from
        // which its bitmap is built in one sequential pass (pushing rows into thousands of bitmaps at once
        // would miss the cache on nearly every row).
        // A near-unique column (fewer than INDEX_MIN_ROWS_PER_VALUE rows per value) gets no index: its
        // bitmaps would be most of the file, and scanning its codes answers a filter about as fast.
        let non_null = coded.len() - nulls.len() as usize;
        let small_segment = coded.len() < INDEX_ALL_BELOW_ROWS;
        let indexed = small_segment || non_null >= card.saturating_mul(INDEX_MIN_ROWS_PER_VALUE);
        let (starts, by_code) = if indexed {
            rows_by_code(&coded, card)
        } else {
            (vec![0], Vec::new())
        };
        let code_of = |c: &u32| if *c == u32::MAX { 0 } else { *c };
        let codes: Vec<u8> = match width {
            1 => coded.iter().map(|c| code_of(c) as u8).collect(),
            2 => coded
                .iter()
                .flat_map(|c| (code_of(c) as u16).to_le_bytes())
                .collect(),
            _ => coded
                .iter()
                .flat_map(|c| code_of(c).to_le_bytes())
                .collect(),
        };
        // Dictionary: (card + 1) i32 offsets, padded to 8 bytes, then the UTF-8 bytes.
        let mut dict = Vec::new();
        let mut offset = 0i64;
        dict.extend_from_slice(&0i32.to_le_bytes());
        for id in &order {
            offset += distinct[*id as usize].len() as i64;
            let off = i32::try_from(offset).map_err(|_| {
                Error::InvalidInput(format!("column {name:?}: dictionary larger than 2 GiB"))
            })?;
            dict.extend_from_slice(&off.to_le_bytes());
        }
        dict.resize(dict.len().next_multiple_of(8), 0);
        for id in &order {
            dict.extend_from_slice(distinct[*id as usize].as_bytes());
        }
        // Bitmap index: (card + 1) u64 offsets relative to the end of the table, then portable roaring bitmaps.
        // Under `IndexPolicy::Auto` a large segment keeps it only where it costs no more than the codes; its size
        // is first worked out from the sorted rows, so that an index plainly too large is never built (one near
        // the line is built and measured).
        let codes_len = codes.len();
        let build = indexed
            && (small_segment
                || self.options.index == IndexPolicy::All
                || (card + 1) * 8
                    + (0..card)
                        .map(|c| roaring_bytes(&by_code[starts[c]..starts[c + 1]]))
                        .sum::<usize>()
                    <= codes_len + codes_len / 8);
        let mut serialized = Vec::new();
        let mut index = Vec::with_capacity((card + 1) * 8);
        index.extend_from_slice(&0u64.to_le_bytes());
        for c in (0..card).filter(|_| build) {
            let rows = by_code[starts[c]..starts[c + 1]].iter().copied();
            let mut bm = RoaringBitmap::from_sorted_iter(rows)
                .map_err(|e| Error::InvalidInput(format!("column {name:?}: bitmap: {e}")))?;
            // Runs of rows (a value that clusters in time) as run containers.
            bm.optimize();
            bm.serialize_into(&mut serialized)
                .map_err(|e| Error::InvalidInput(format!("column {name:?}: bitmap: {e}")))?;
            index.extend_from_slice(&(serialized.len() as u64).to_le_bytes());
        }
        index.extend_from_slice(&serialized);

        let values =
            match compress_blocks(&codes, width, self.options.block_rows, self.options.codec) {
                Some(c) => buf.region(&c, self.options.codec),
                None => buf.region(&codes, Codec::None),
            };
        let dictionary = Some(match compress_whole(&dict, self.options.codec) {
            Some(c) => buf.region(&c, self.options.codec),
            None => buf.region(&dict, Codec::None),
        });
        let pays = index.len() <= codes.len();
        let bitmaps = (build && (small_segment || pays || self.options.index == IndexPolicy::All))
            .then(|| buf.region(&index, Codec::None));
        let stats = ColumnStats {
            null_count: nulls.len(),
            min: order
                .first()
                .map(|id| StatValue::String(distinct[*id as usize].to_string())),
            max: order
                .last()
                .map(|id| StatValue::String(distinct[*id as usize].to_string())),
            distinct: Some(card as u64),
            has_nan: false,
        };
        let nulls = null_region(buf, &nulls)?;
        Ok(ColumnMeta {
            name: name.to_string(),
            ty: ColumnType::String,
            role: crate::schema::ColumnRole::Dimension,
            aggregator: None,
            stats,
            values,
            width: width as u8,
            encoding: Encoding::Plain,
            dictionary,
            bitmaps,
            nulls,
            block_stats: Vec::new(),
        })
    }
}

/// Rows grouped by code, ascending within each code (counting sort; `u32::MAX`, NULL, left out): the rows of
/// code `c` are `by_code[starts[c]..starts[c + 1]]`. Four quarters of the rows are placed side by side, each
/// with its own fill positions: one row at a time, each placement waited on the previous one's position of the
/// same code (a column of ten values spent a third of its encoding there).
fn rows_by_code(coded: &[u32], card: usize) -> (Vec<usize>, Vec<u32>) {
    const LANES: usize = 4;
    let n = coded.len();
    let quarter = n.div_ceil(LANES);
    let lane = |k: usize| &coded[(k * quarter).min(n)..((k + 1) * quarter).min(n)];
    let mut counts = vec![[0u32; LANES]; card];
    for k in 0..LANES {
        for code in lane(k) {
            if let Some(c) = counts.get_mut(*code as usize) {
                c[k] += 1;
            }
        }
    }
    let mut starts = Vec::with_capacity(card + 1);
    let mut fill = vec![[0usize; LANES]; card];
    let mut at = 0usize;
    for (c, f) in counts.iter().zip(fill.iter_mut()) {
        starts.push(at);
        for k in 0..LANES {
            f[k] = at;
            at += c[k] as usize;
        }
    }
    starts.push(at);
    let mut by_code = vec![0u32; at];
    for i in 0..quarter {
        for k in 0..LANES {
            let row = k * quarter + i;
            if let Some(code) = coded.get(row) {
                if let Some(f) = fill.get_mut(*code as usize) {
                    by_code[f[k]] = row as u32;
                    f[k] += 1;
                }
            }
        }
    }
    (starts, by_code)
}

/// The dictionary of `distinct` in byte order: the index of each distinct string, ascending (the first of equal
/// ones), and each index's code (its place in that order). Sorted by an 8-byte big-endian prefix first (integer
/// compares over a compact array), then each run of equal prefixes by the whole strings: a segment's dictionary
/// of a million user ids sorted string against string spent a third of a 100M load's merge phase in `memcmp`.
fn sorted_dictionary(distinct: &[&str]) -> (Vec<u32>, Vec<u32>) {
    let prefix = |s: &str| {
        let mut p = [0u8; 8];
        let n = s.len().min(8);
        p[..n].copy_from_slice(&s.as_bytes()[..n]);
        u64::from_be_bytes(p)
    };
    let mut keyed: Vec<(u64, u32)> = distinct
        .iter()
        .enumerate()
        .map(|(i, s)| (prefix(s), i as u32))
        .collect();
    keyed.sort_unstable();
    let mut order: Vec<u32> = Vec::with_capacity(keyed.len());
    let mut remap = vec![0u32; distinct.len()];
    let mut tied: Vec<u32> = Vec::new();
    let mut start = 0;
    while start < keyed.len() {
        let p = keyed[start].0;
        let mut end = start + 1;
        while end < keyed.len() && keyed[end].0 == p {
            end += 1;
        }
        if end - start == 1 {
            // A prefix of its own: a string no other equals.
            let id = keyed[start].1;
            remap[id as usize] = order.len() as u32;
            order.push(id);
        } else {
            tied.clear();
            tied.extend(keyed[start..end].iter().map(|(_, i)| *i));
            tied.sort_unstable_by(|a, b| distinct[*a as usize].cmp(distinct[*b as usize]));
            for (k, id) in tied.iter().enumerate() {
                if k == 0 || distinct[tied[k - 1] as usize] != distinct[*id as usize] {
                    order.push(*id);
                }
                remap[*id as usize] = (order.len() - 1) as u32;
            }
        }
        start = end;
    }
    (order, remap)
}

fn null_region(buf: &mut FileBuf, nulls: &RoaringBitmap) -> Result<Option<Region>> {
    if nulls.is_empty() {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(nulls.serialized_size());
    nulls
        .serialize_into(&mut bytes)
        .map_err(|e| Error::InvalidInput(format!("null bitmap: {e}")))?;
    Ok(Some(buf.region(&bytes, Codec::None)))
}

fn type_error(name: &str, ty: ColumnType, actual: &DataType) -> Error {
    Error::InvalidInput(format!(
        "column {name:?} is {ty} in the schema but the batch holds {actual}"
    ))
}

fn time_values(array: &dyn Array, name: &str) -> Result<Vec<i64>> {
    if array.null_count() > 0 {
        return Err(Error::InvalidInput(format!(
            "time column {name:?} holds NULLs"
        )));
    }
    Ok(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().values().to_vec(),
        DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec(),
        other => return Err(type_error(name, ColumnType::Timestamp, other)),
    })
}

fn check_time(values: &[i64], interval: Interval, name: &str) -> Result<()> {
    if values.windows(2).any(|w| w[0] > w[1]) {
        return Err(Error::InvalidInput(format!(
            "time column {name:?} is not sorted"
        )));
    }
    if let (Some(first), Some(last)) = (values.first(), values.last()) {
        if !interval.contains(*first) || !interval.contains(*last) {
            return Err(Error::InvalidInput(format!(
                "time column {name:?} spans {first}..={last}, outside the segment interval {interval}"
            )));
        }
    }
    Ok(())
}

struct StatsBuilder<T> {
    min: Option<T>,
    max: Option<T>,
    nulls: u64,
    has_nan: bool,
}

impl<T> Default for StatsBuilder<T> {
    fn default() -> Self {
        StatsBuilder {
            min: None,
            max: None,
            nulls: 0,
            has_nan: false,
        }
    }
}

impl<T: Copy + PartialOrd> StatsBuilder<T> {
    fn add(&mut self, v: T) {
        #[allow(clippy::eq_op)]
        if v != v {
            self.has_nan = true;
            return;
        }
        if self.min.is_none_or(|m| v < m) {
            self.min = Some(v);
        }
        if self.max.is_none_or(|m| v > m) {
            self.max = Some(v);
        }
    }

    /// Adds every value of `values` (none NULL).
    fn add_all(&mut self, values: &[T]) {
        for v in values {
            self.add(*v);
        }
    }

    /// Takes in a later block's statistics (a minimum or maximum equal to this one's stays this one's, as
    /// adding the values one by one would keep it).
    fn merge(&mut self, other: &Self) {
        if let Some(v) = other.min {
            if self.min.is_none_or(|m| v < m) {
                self.min = Some(v);
            }
        }
        if let Some(v) = other.max {
            if self.max.is_none_or(|m| v > m) {
                self.max = Some(v);
            }
        }
        self.nulls += other.nulls;
        self.has_nan |= other.has_nan;
    }

    fn finish(self, stat: &impl Fn(T) -> StatValue) -> ColumnStats {
        ColumnStats {
            null_count: self.nulls,
            min: self.min.map(stat),
            max: self.max.map(stat),
            distinct: None,
            has_nan: self.has_nan,
        }
    }
}

/// About the bytes of the portable serialization of a roaring bitmap of `rows` (ascending, distinct) after
/// `optimize`: for each container of 65,536 rows the least of an array (2 bytes a row, up to 4,096 rows), a
/// bitmap (8 KiB) and runs (4 bytes a run), plus 8 bytes of header per container and 8 per bitmap.
fn roaring_bytes(rows: &[u32]) -> usize {
    let mut total = 8;
    let mut i = 0;
    while i < rows.len() {
        let key = rows[i] >> 16;
        let (mut card, mut runs) = (0usize, 0usize);
        let mut next = None;
        while i < rows.len() && rows[i] >> 16 == key {
            if next != Some(rows[i]) {
                runs += 1;
            }
            next = rows[i].checked_add(1);
            card += 1;
            i += 1;
        }
        let plain = if card <= 4096 { 2 * card } else { 8192 };
        total += 8 + plain.min(2 + 4 * runs);
    }
    total
}

/// `f` over `items` on up to one thread per core; results in the order of `items`, the first error (in that
/// order) if any.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Result<R>>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| {
                    Err(Error::InvalidInput(
                        "internal: a column was not encoded".into(),
                    ))
                })
        })
        .collect()
}

/// Moves a column's regions `by` bytes further into the file.
fn shift(meta: &mut ColumnMeta, by: u64) {
    meta.values.offset += by;
    for r in [&mut meta.dictionary, &mut meta.bitmaps, &mut meta.nulls]
        .into_iter()
        .flatten()
    {
        r.offset += by;
    }
}

/// Adds `row` to `bm`: an append when it is past the largest row (rows are visited in order), an insert otherwise.
fn append(bm: &mut RoaringBitmap, row: u32) {
    if bm.try_push(row).is_err() {
        bm.insert(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The prefix-keyed sort orders strings as comparing them whole does and merges equal ones (short strings,
        /// shared prefixes, NUL bytes, duplicates).
        #[test]
        fn dictionary_order_is_byte_order(strings in proptest::collection::vec("[a\\x00b]{0,11}", 0..200)) {
            let distinct: Vec<&str> = strings.iter().map(String::as_str).collect();
            let (order, remap) = sorted_dictionary(&distinct);
            let got: Vec<&str> = order.iter().map(|i| distinct[*i as usize]).collect();
            let mut want = distinct.clone();
            want.sort();
            want.dedup();
            proptest::prop_assert_eq!(&got, &want);
            for (i, s) in distinct.iter().enumerate() {
                proptest::prop_assert_eq!(got[remap[i] as usize], *s);
            }
        }
    }

    proptest::proptest! {
        /// The four-quarter counting sort lists each code's rows, ascending, as a plain pass does.
        #[test]
        fn rows_by_code_lists_each_codes_rows_in_order(
            codes in proptest::collection::vec(proptest::prop_oneof![0u32..5, proptest::strategy::Just(u32::MAX)], 0..300)
        ) {
            let (starts, by_code) = rows_by_code(&codes, 5);
            proptest::prop_assert_eq!(starts.len(), 6);
            for c in 0..5u32 {
                let want: Vec<u32> = (0..codes.len() as u32).filter(|r| codes[*r as usize] == c).collect();
                proptest::prop_assert_eq!(&by_code[starts[c as usize]..starts[c as usize + 1]], &want[..]);
            }
        }
    }

    /// The estimate that spares building an index stays within a few percent of the real serialized size.
    #[test]
    fn roaring_bytes_is_close_to_the_serialized_size() {
        let cases: Vec<Vec<u32>> = vec![
            (0..200_000).step_by(97).collect(), // sparse: array containers
            (0..300_000).filter(|r| r % 3 != 0).collect(), // dense: bitmap containers
            (0..300_000).filter(|r| r % 5000 < 3500).collect(), // runs
            (0..10).chain(70_000..70_003).collect(), // two small containers
        ];
        for rows in cases {
            let mut bm = RoaringBitmap::from_sorted_iter(rows.iter().copied()).unwrap();
            bm.optimize();
            let real = bm.serialized_size() as f64;
            let estimate = roaring_bytes(&rows) as f64;
            assert!(
                (estimate - real).abs() <= real * 0.05 + 16.0,
                "estimate {estimate}, serialized {real}"
            );
        }
    }
}
