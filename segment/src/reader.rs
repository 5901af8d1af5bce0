//! Opens a segment file through `memmap2` and implements [`SegmentSource`] over it.
//!
//! Opening checks the header, the trailer and the footer checksum. Each region's checksum is checked when the
//! region is first read (by a query or by `verify`), once per open; a damaged region is an error naming the file,
//! the column and the region, never a panic.

use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arrow_array::types::{
    Float64Type, Int64Type, TimestampMillisecondType, UInt16Type, UInt32Type, UInt8Type,
};
use arrow_array::{ArrayRef, DictionaryArray, PrimitiveArray, StringArray};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use roaring::RoaringBitmap;

use crate::codec::{decompress_block, decompress_whole, delta_decode};
use crate::footer::{Codec, ColumnMeta, ColumnStats, Encoding, Footer, Interval, Region};
use crate::format::{
    ALIGNMENT, FORMAT_VERSION, HEADER_LEN, HEADER_MAGIC, MIN_READ_VERSION, TRAILER_LEN,
    TRAILER_MAGIC,
};
use crate::schema::ColumnType;
use crate::source::{ColumnInfo, Dictionary, SegmentSource};
use crate::{Error, Result};

/// The kinds of region a column has; used in error messages and `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Values,
    Dictionary,
    Bitmaps,
    Nulls,
}

impl RegionKind {
    pub const ALL: [RegionKind; 4] = [
        RegionKind::Values,
        RegionKind::Dictionary,
        RegionKind::Bitmaps,
        RegionKind::Nulls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RegionKind::Values => "values",
            RegionKind::Dictionary => "dictionary",
            RegionKind::Bitmaps => "bitmap index",
            RegionKind::Nulls => "null bitmap",
        }
    }

    fn of(self, meta: &ColumnMeta) -> Option<Region> {
        match self {
            RegionKind::Values => Some(meta.values),
            RegionKind::Dictionary => meta.dictionary,
            RegionKind::Bitmaps => meta.bitmaps,
            RegionKind::Nulls => meta.nulls,
        }
    }
}

/// Lazily computed per-column state: checksum results and decoded small structures.
#[derive(Default, Debug)]
struct ColumnState {
    checked: [OnceLock<std::result::Result<(), String>>; 4],
    dictionary: OnceLock<Arc<Dictionary>>,
    nulls: OnceLock<RoaringBitmap>,
    /// For a string column: whether each block's codes were checked to be within the dictionary
    /// (once per block; the checked blocks are then wrapped without Arrow's per-read key validation).
    codes_checked: OnceLock<Box<[AtomicBool]>>,
}

/// An open, memory-mapped segment file.
#[derive(Debug)]
pub struct Segment {
    id: String,
    /// This process's number for the segment (the block cache's key).
    number: u64,
    path: PathBuf,
    file: Buffer,
    footer: Footer,
    infos: Vec<ColumnInfo>,
    state: Vec<ColumnState>,
}

impl Segment {
    /// Opens and maps `path`; the segment id is the file stem.
    pub fn open(path: &Path) -> Result<Segment> {
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        Self::open_with_id(path, id)
    }

    /// Opens and maps `path` under the given id.
    pub fn open_with_id(path: &Path, id: String) -> Result<Segment> {
        let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len() as usize;
        let not_a_segment = |reason: String| Error::NotASegment {
            file: path.to_path_buf(),
            reason,
        };
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(not_a_segment(format!(
                "{len} bytes is shorter than header and trailer ({} bytes)",
                HEADER_LEN + TRAILER_LEN
            )));
        }
        // SAFETY: segment files are immutable once published: basalt never truncates or rewrites them in place
        // (new files are written and renamed into the catalog), so the mapping stays valid while it lives.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("mmap", path, e))?;
        let ptr = NonNull::new(mmap.as_ptr() as *mut u8)
            .ok_or_else(|| not_a_segment("empty mapping".into()))?;
        // SAFETY: `ptr` points at `mmap.len()` readable bytes owned by `mmap`, which the buffer keeps alive.
        let file_buf = unsafe { Buffer::from_custom_allocation(ptr, mmap.len(), Arc::new(mmap)) };
        let bytes = file_buf.as_slice();

        if bytes[..8] != HEADER_MAGIC {
            return Err(not_a_segment("bad header magic".into()));
        }
        let header_version = u32::from_le_bytes(le4(&bytes[8..12]));
        let t = &bytes[len - TRAILER_LEN..];
        if t[16..24] != TRAILER_MAGIC {
            return Err(not_a_segment(
                "bad trailer magic (truncated or not a segment)".into(),
            ));
        }
        let footer_len = u64::from_le_bytes(le8(&t[0..8])) as usize;
        let footer_crc = u32::from_le_bytes(le4(&t[8..12]));
        let version = u32::from_le_bytes(le4(&t[12..16]));
        if version != header_version || !(MIN_READ_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(not_a_segment(format!(
                "format version {version} (header says {header_version}); this build reads {MIN_READ_VERSION}..={FORMAT_VERSION}"
            )));
        }
        let corrupt = |region: &str, reason: String| Error::Corrupt {
            file: path.to_path_buf(),
            column: String::new(),
            region: region.to_string(),
            reason,
        };
        let footer_end = len - TRAILER_LEN;
        if footer_len > footer_end - HEADER_LEN {
            return Err(corrupt(
                "footer",
                format!("footer length {footer_len} exceeds the file"),
            ));
        }
        let footer_start = footer_end - footer_len;
        let footer_bytes = &bytes[footer_start..footer_end];
        let actual = crc32c::crc32c(footer_bytes);
        if actual != footer_crc {
            return Err(corrupt(
                "footer",
                format!("checksum mismatch (stored {footer_crc:#010x}, computed {actual:#010x})"),
            ));
        }
        let footer: Footer = serde_json::from_slice(footer_bytes)
            .map_err(|e| corrupt("footer", format!("bad metadata: {e}")))?;
        validate_footer(&footer, footer_start).map_err(|(column, region, reason)| {
            Error::Corrupt {
                file: path.to_path_buf(),
                column,
                region,
                reason,
            }
        })?;
        let infos = footer
            .columns
            .iter()
            .map(|c| ColumnInfo {
                name: c.name.clone(),
                ty: c.ty,
                role: c.role,
                aggregator: c.aggregator,
                stats: c.stats.clone(),
            })
            .collect();
        let state = footer
            .columns
            .iter()
            .map(|_| ColumnState::default())
            .collect();
        Ok(Segment {
            id,
            number: crate::cache::segment_number(),
            path: path.to_path_buf(),
            file: file_buf,
            footer,
            infos,
            state,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> usize {
        self.file.len()
    }

    /// Checks every region's checksum and decodes every dictionary and bitmap; the first damage found is returned.
    pub fn verify(&self) -> Result<()> {
        for (ci, meta) in self.footer.columns.iter().enumerate() {
            for kind in RegionKind::ALL {
                if kind.of(meta).is_some() {
                    self.region(ci, kind)?;
                }
            }
            if meta.ty == ColumnType::String {
                let dict = self.dictionary_at(ci)?;
                for code in (0..dict.len() as u32).filter(|_| meta.bitmaps.is_some()) {
                    self.bitmap_at(ci, code)?;
                }
            }
            self.nulls_at(ci)?;
            for block in 0..self.num_blocks() {
                self.block_at(ci, block)?;
            }
        }
        Ok(())
    }

    fn corrupt(&self, ci: usize, kind: RegionKind, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            file: self.path.clone(),
            column: self.footer.columns[ci].name.clone(),
            region: kind.name().to_string(),
            reason: reason.into(),
        }
    }

    fn col_index(&self, name: &str) -> Option<usize> {
        self.footer.columns.iter().position(|c| c.name == name)
    }

    /// The region's bytes as a zero-copy buffer, its checksum checked on first use.
    fn region(&self, ci: usize, kind: RegionKind) -> Result<Buffer> {
        let meta = &self.footer.columns[ci];
        let region = kind
            .of(meta)
            .ok_or_else(|| self.corrupt(ci, kind, "region missing"))?;
        let buf = self
            .file
            .slice_with_length(region.offset as usize, region.len as usize);
        let checked = self.state[ci].checked[kind as usize].get_or_init(|| {
            let actual = crc32c::crc32c(buf.as_slice());
            if actual == region.crc32c {
                Ok(())
            } else {
                Err(format!(
                    "checksum mismatch (stored {:#010x}, computed {actual:#010x})",
                    region.crc32c
                ))
            }
        });
        match checked {
            Ok(()) => Ok(buf),
            Err(reason) => Err(self.corrupt(ci, kind, reason.clone())),
        }
    }

    fn nulls_at(&self, ci: usize) -> Result<&RoaringBitmap> {
        if let Some(n) = self.state[ci].nulls.get() {
            return Ok(n);
        }
        let bitmap = match self.footer.columns[ci].nulls {
            None => RoaringBitmap::new(),
            Some(_) => {
                let buf = self.region(ci, RegionKind::Nulls)?;
                let bm = RoaringBitmap::deserialize_from(buf.as_slice()).map_err(|e| {
                    self.corrupt(ci, RegionKind::Nulls, format!("bad roaring bitmap: {e}"))
                })?;
                if bm.max().is_some_and(|m| m as u64 >= self.footer.num_rows) {
                    return Err(self.corrupt(
                        ci,
                        RegionKind::Nulls,
                        "row number beyond the segment",
                    ));
                }
                bm
            }
        };
        Ok(self.state[ci].nulls.get_or_init(|| bitmap))
    }

    fn dictionary_at(&self, ci: usize) -> Result<Arc<Dictionary>> {
        if let Some(d) = self.state[ci].dictionary.get() {
            return Ok(d.clone());
        }
        let meta = &self.footer.columns[ci];
        let card = meta.stats.distinct.unwrap_or(0) as usize;
        let mut buf = self.region(ci, RegionKind::Dictionary)?;
        if let Some(codec) = meta
            .dictionary
            .map(|r| r.codec)
            .filter(|c| *c != Codec::None)
        {
            // A compressed dictionary (version 3) is decompressed once per open segment.
            let raw = decompress_whole(buf.as_slice(), codec)
                .map_err(|e| self.corrupt(ci, RegionKind::Dictionary, e))?;
            buf = Buffer::from_vec(raw);
        }
        let offsets_len = (card + 1) * 4;
        let data_at = offsets_len.next_multiple_of(8);
        if buf.len() < data_at {
            return Err(self.corrupt(
                ci,
                RegionKind::Dictionary,
                format!("{} bytes cannot hold {card} offsets", buf.len()),
            ));
        }
        let offsets: ScalarBuffer<i32> =
            ScalarBuffer::new(buf.slice_with_length(0, offsets_len), 0, card + 1);
        let data_len = (buf.len() - data_at) as i64;
        let ok = offsets.first() == Some(&0)
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.last().is_some_and(|l| *l as i64 == data_len);
        if !ok {
            return Err(self.corrupt(
                ci,
                RegionKind::Dictionary,
                "offsets are not monotonic or do not end at the data length",
            ));
        }
        let values = StringArray::try_new(OffsetBuffer::new(offsets), buf.slice(data_at), None)
            .map_err(|e| self.corrupt(ci, RegionKind::Dictionary, e.to_string()))?;
        if values
            .iter()
            .flatten()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] >= w[1])
        {
            return Err(self.corrupt(
                ci,
                RegionKind::Dictionary,
                "values are not sorted and distinct",
            ));
        }
        let dict = Arc::new(Dictionary::from_sorted(values));
        Ok(self.state[ci].dictionary.get_or_init(|| dict).clone())
    }

    fn bitmap_at(&self, ci: usize, code: u32) -> Result<RoaringBitmap> {
        let card = self.footer.columns[ci].stats.distinct.unwrap_or(0) as usize;
        if code as usize >= card {
            return Ok(RoaringBitmap::new());
        }
        let buf = self.region(ci, RegionKind::Bitmaps)?;
        let bytes = buf.as_slice();
        let table = (card + 1) * 8;
        if bytes.len() < table {
            return Err(self.corrupt(ci, RegionKind::Bitmaps, "offset table truncated"));
        }
        let at = |i: usize| u64::from_le_bytes(le8(&bytes[i * 8..i * 8 + 8])) as usize;
        let (start, end) = (at(code as usize), at(code as usize + 1));
        if start > end || table + end > bytes.len() {
            return Err(self.corrupt(
                ci,
                RegionKind::Bitmaps,
                format!("bitmap of code {code} spans {start}..{end}, beyond the region"),
            ));
        }
        let bm =
            RoaringBitmap::deserialize_from(&bytes[table + start..table + end]).map_err(|e| {
                self.corrupt(
                    ci,
                    RegionKind::Bitmaps,
                    format!("bitmap of code {code}: {e}"),
                )
            })?;
        if bm.max().is_some_and(|m| m as u64 >= self.footer.num_rows) {
            return Err(self.corrupt(
                ci,
                RegionKind::Bitmaps,
                format!("bitmap of code {code} names a row beyond the segment"),
            ));
        }
        Ok(bm)
    }

    /// Raw bytes of block `block` of the values region (decompressed if needed).
    fn block_bytes(&self, ci: usize, block: usize) -> Result<Buffer> {
        let meta = &self.footer.columns[ci];
        let range = self.block_range(block);
        let width = meta.width as usize;
        let buf = self.region(ci, RegionKind::Values)?;
        match meta.values.codec {
            Codec::None => Ok(buf.slice_with_length(range.start * width, range.len() * width)),
            codec => crate::cache::get_or_load((self.number, ci as u32, block as u32), || {
                let mut bytes = decompress_block(
                    buf.as_slice(),
                    self.num_blocks(),
                    block,
                    range.len() * width,
                    codec,
                )
                .map_err(|e| self.corrupt(ci, RegionKind::Values, e))?;
                if meta.encoding == Encoding::Delta {
                    delta_decode(&mut bytes);
                }
                Ok(Buffer::from_vec(bytes))
            }),
        }
    }

    fn block_nulls(&self, ci: usize, block: usize) -> Result<Option<NullBuffer>> {
        let nulls = self.nulls_at(ci)?;
        if nulls.is_empty() {
            return Ok(None);
        }
        let range = self.block_range(block);
        let mut valid = vec![true; range.len()];
        for row in nulls.range(range.start as u32..range.end as u32) {
            valid[row as usize - range.start] = false;
        }
        Ok(Some(NullBuffer::new(BooleanBuffer::from(valid))))
    }

    fn block_at(&self, ci: usize, block: usize) -> Result<ArrayRef> {
        let meta = &self.footer.columns[ci];
        let n = self.block_range(block).len();
        let bytes = self.block_bytes(ci, block)?;
        let nulls = self.block_nulls(ci, block)?;
        Ok(match meta.ty {
            ColumnType::Boolean => {
                return Err(self.corrupt(
                    ci,
                    RegionKind::Values,
                    "a boolean column (segments do not store booleans)",
                ))
            }
            ColumnType::Timestamp => Arc::new(PrimitiveArray::<TimestampMillisecondType>::new(
                scalar(bytes, n),
                nulls,
            )),
            ColumnType::Long => Arc::new(PrimitiveArray::<Int64Type>::new(scalar(bytes, n), nulls)),
            ColumnType::Double => {
                Arc::new(PrimitiveArray::<Float64Type>::new(scalar(bytes, n), nulls))
            }
            ColumnType::String => {
                let values: ArrayRef = Arc::new(self.dictionary_at(ci)?.values().clone());
                let dict_len = values.len();
                match meta.width {
                    1 => {
                        let keys = PrimitiveArray::<UInt8Type>::new(scalar(bytes, n), nulls);
                        self.check_codes(ci, block, &keys, dict_len)?;
                        // SAFETY: `check_codes` proved every non-null key below `dict_len`.
                        Arc::new(unsafe { DictionaryArray::new_unchecked(keys, values) })
                    }
                    2 => {
                        let keys = PrimitiveArray::<UInt16Type>::new(scalar(bytes, n), nulls);
                        self.check_codes(ci, block, &keys, dict_len)?;
                        // SAFETY: as above.
                        Arc::new(unsafe { DictionaryArray::new_unchecked(keys, values) })
                    }
                    _ => {
                        let keys = PrimitiveArray::<UInt32Type>::new(scalar(bytes, n), nulls);
                        self.check_codes(ci, block, &keys, dict_len)?;
                        // SAFETY: as above.
                        Arc::new(unsafe { DictionaryArray::new_unchecked(keys, values) })
                    }
                }
            }
        })
    }

    /// Checks, the first time block `block` of string column `ci` is read, that every non-null code names a
    /// dictionary entry; later reads of the block trust that check (the file is immutable and its region
    /// passed its checksum), which spares a pass over the keys on every read.
    fn check_codes<K>(
        &self,
        ci: usize,
        block: usize,
        keys: &PrimitiveArray<K>,
        dict_len: usize,
    ) -> Result<()>
    where
        K: arrow_array::types::ArrowPrimitiveType,
        K::Native: Into<u64>,
    {
        let flags = self.state[ci].codes_checked.get_or_init(|| {
            (0..self.num_blocks())
                .map(|_| AtomicBool::new(false))
                .collect()
        });
        let flag = flags.get(block);
        if flag.is_some_and(|f| f.load(Ordering::Acquire)) {
            return Ok(());
        }
        let limit = dict_len as u64;
        let bad = match arrow_array::Array::nulls(keys) {
            None => {
                keys.values().iter().fold(0u64, |m, k| m.max((*k).into())) >= limit
                    && !arrow_array::Array::is_empty(keys)
            }
            Some(n) => keys
                .values()
                .iter()
                .zip(n.iter())
                .any(|(k, valid)| valid && (*k).into() >= limit),
        };
        if bad {
            return Err(self.corrupt(
                ci,
                RegionKind::Values,
                format!("block {block} holds a code beyond the dictionary of {dict_len} values"),
            ));
        }
        if let Some(f) = flag {
            f.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// A typed view of `n` little-endian values. Uncompressed regions are 64-byte aligned in a page-aligned mapping;
/// decompressed blocks are copied into a fresh, aligned allocation when needed.
fn scalar<T: arrow_buffer::ArrowNativeType>(bytes: Buffer, n: usize) -> ScalarBuffer<T> {
    if bytes.as_ptr().align_offset(std::mem::align_of::<T>()) == 0 {
        ScalarBuffer::new(bytes, 0, n)
    } else {
        let mut v = arrow_buffer::MutableBuffer::new(bytes.len());
        v.extend_from_slice(bytes.as_slice());
        ScalarBuffer::new(v.into(), 0, n)
    }
}

fn le4(b: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    a
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

/// Checks that every region lies between the header and the footer, is aligned, and has the size its column needs.
fn validate_footer(
    footer: &Footer,
    footer_start: usize,
) -> std::result::Result<(), (String, String, String)> {
    let rows = footer.num_rows as usize;
    if footer.block_rows == 0 {
        return Err((String::new(), "footer".into(), "block_rows is 0".into()));
    }
    let n_blocks = rows.div_ceil(footer.block_rows as usize);
    if rows > u32::MAX as usize {
        return Err((
            String::new(),
            "footer".into(),
            format!("{rows} rows exceed the format's limit"),
        ));
    }
    for c in &footer.columns {
        let fail =
            |kind: RegionKind, reason: String| (c.name.clone(), kind.name().to_string(), reason);
        let expected_width = match c.ty {
            ColumnType::String => matches!(c.width, 1 | 2 | 4),
            ColumnType::Boolean => {
                return Err(fail(
                    RegionKind::Values,
                    "a boolean column (segments do not store booleans)".into(),
                ))
            }
            _ => c.width == 8,
        };
        if !expected_width {
            return Err(fail(
                RegionKind::Values,
                format!("value width {} is invalid for a {} column", c.width, c.ty),
            ));
        }
        // Version 1 indexes every string column; from version 2 a near-unique one may have no bitmaps.
        let needs_bitmaps = c.ty == ColumnType::String && footer.format_version < 2;
        if (c.ty == ColumnType::String) != c.dictionary.is_some()
            || (c.ty != ColumnType::String && c.bitmaps.is_some())
            || (needs_bitmaps && c.bitmaps.is_none())
        {
            return Err(fail(
                RegionKind::Dictionary,
                "dictionary regions must exist exactly for strings, bitmap regions only for strings".into(),
            ));
        }
        if c.ty == ColumnType::String && c.stats.distinct.is_none_or(|d| d > u32::MAX as u64) {
            return Err(fail(
                RegionKind::Dictionary,
                "dictionary size missing or too large".into(),
            ));
        }
        for kind in RegionKind::ALL {
            let Some(r) = kind.of(c) else { continue };
            let end = r.offset.checked_add(r.len);
            if (r.offset as usize) < HEADER_LEN || end.is_none_or(|e| e > footer_start as u64) {
                return Err(fail(
                    kind,
                    format!("bytes {}..+{} lie outside the data area", r.offset, r.len),
                ));
            }
            if !(r.offset as usize).is_multiple_of(ALIGNMENT) {
                return Err(fail(
                    kind,
                    format!("offset {} is not {ALIGNMENT}-byte aligned", r.offset),
                ));
            }
        }
        // Only `values` and (from version 3) `dictionary` regions may be compressed.
        for kind in [
            RegionKind::Dictionary,
            RegionKind::Bitmaps,
            RegionKind::Nulls,
        ] {
            let compressed = kind.of(c).is_some_and(|r| r.codec != Codec::None);
            if compressed && !(kind == RegionKind::Dictionary && footer.format_version >= 3) {
                return Err(fail(
                    kind,
                    "only values regions (and, from version 3, dictionaries) may be compressed"
                        .into(),
                ));
            }
        }
        if c.encoding == Encoding::Delta
            && (footer.format_version < 4
                || c.width != 8
                || !matches!(c.ty, ColumnType::Timestamp | ColumnType::Long)
                || c.values.codec == Codec::None)
        {
            return Err(fail(
                RegionKind::Values,
                "delta encoding is for compressed 8-byte integer values (format 4)".into(),
            ));
        }
        let raw = rows * c.width as usize;
        match c.values.codec {
            Codec::None if c.values.len as usize != raw => {
                return Err(fail(
                    RegionKind::Values,
                    format!("{} bytes, expected {raw} for {rows} rows", c.values.len),
                ));
            }
            Codec::None => {}
            _ if (c.values.len as usize) < (n_blocks + 1) * 8 => {
                return Err(fail(
                    RegionKind::Values,
                    "compressed region shorter than its block table".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

impl SegmentSource for Segment {
    fn id(&self) -> &str {
        &self.id
    }

    fn cacheable(&self) -> bool {
        true
    }

    fn interval(&self) -> Interval {
        self.footer.interval
    }

    fn num_rows(&self) -> usize {
        self.footer.num_rows as usize
    }

    fn columns(&self) -> &[ColumnInfo] {
        &self.infos
    }

    fn block_rows(&self) -> usize {
        self.footer.block_rows as usize
    }

    fn block_stats(&self, column: &str, block: usize) -> Option<&ColumnStats> {
        self.col_index(column)
            .and_then(|ci| self.footer.columns[ci].block_stats.get(block))
    }

    fn read_block(&self, column: &str, block: usize) -> Result<Option<ArrayRef>> {
        match self.col_index(column) {
            None => Ok(None),
            Some(_) if block >= self.num_blocks() => Ok(None),
            Some(ci) => self.block_at(ci, block).map(Some),
        }
    }

    fn dictionary(&self, column: &str) -> Result<Option<Arc<Dictionary>>> {
        match self.col_index(column) {
            Some(ci) if self.footer.columns[ci].ty == ColumnType::String => {
                self.dictionary_at(ci).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn value_bitmap(&self, column: &str, code: u32) -> Result<RoaringBitmap> {
        match self.col_index(column) {
            Some(ci) if self.footer.columns[ci].ty == ColumnType::String => {
                if self.footer.columns[ci].bitmaps.is_some() {
                    self.bitmap_at(ci, code)
                } else {
                    // No index on this column: the code's rows come from a scan of the codes.
                    let card = self.footer.columns[ci].stats.distinct.unwrap_or(0) as usize;
                    Ok(self
                        .scan_codes(column, card, &[code], 0..self.num_blocks())?
                        .unwrap_or_default())
                }
            }
            _ => Ok(RoaringBitmap::new()),
        }
    }

    /// A segment's rows are sorted by time (see FORMAT.md).
    fn sorted_by_time(&self) -> bool {
        true
    }

    fn has_bitmap_index(&self, column: &str) -> bool {
        self.col_index(column)
            .is_some_and(|ci| self.footer.columns[ci].bitmaps.is_some())
    }

    fn null_bitmap(&self, column: &str) -> Result<RoaringBitmap> {
        match self.col_index(column) {
            Some(ci) => self.nulls_at(ci).cloned(),
            None => {
                let mut all = RoaringBitmap::new();
                all.insert_range(0..self.footer.num_rows as u32);
                Ok(all)
            }
        }
    }
}
