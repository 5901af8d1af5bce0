//! Constants of segment format v4. `FORMAT.md` quotes these numbers; `tests/format_constants.rs` asserts them.

/// The first eight bytes of every segment file.
pub const HEADER_MAGIC: [u8; 8] = *b"BASALTSG";
/// The last eight bytes of every segment file.
pub const TRAILER_MAGIC: [u8; 8] = *b"BSLTEND1";
/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest format version this build reads.
pub const MIN_READ_VERSION: u32 = 1;
/// Header: magic (8) + version (u32 LE) + zero padding up to [`ALIGNMENT`].
pub const HEADER_LEN: usize = 64;
/// Every region starts at a multiple of this many bytes, so numeric regions can be handed out as Arrow buffers.
pub const ALIGNMENT: usize = 64;
/// Trailer: footer length (u64 LE) + footer CRC32C (u32 LE) + format version (u32 LE) + [`TRAILER_MAGIC`].
pub const TRAILER_LEN: usize = 24;
/// Rows per block: the unit of compression, of per-block min/max, and of reads.
pub const BLOCK_ROWS: usize = 65_536;
/// A string column of a segment with at least [`INDEX_ALL_BELOW_ROWS`] rows has a bitmap index only when its
/// values average at least this many rows each (version 2; version 1 indexes every string column).
pub const INDEX_MIN_ROWS_PER_VALUE: usize = 8;
/// Segments with fewer rows index every string column.
pub const INDEX_ALL_BELOW_ROWS: usize = 65_536;
/// The file name extension of segment files.
pub const SEGMENT_EXTENSION: &str = "bslt";

/// Rounds `n` up to the next multiple of [`ALIGNMENT`].
pub fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}
