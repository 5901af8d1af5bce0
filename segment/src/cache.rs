//! A process-wide cache of decompressed blocks, bounded in bytes.
//!
//! Compressed regions are decompressed block by block on every read; a query that scans the same hot columns
//! again (a dashboard refreshing) would pay that again. Decompressed blocks are kept here, keyed by (segment,
//! column, block) and weighed by their length, under a byte budget set once at start-up (`set_capacity`,
//! basalt serve's `block_cache_bytes`); the least recently useful blocks go first. Segments are immutable, so
//! an entry never goes stale: a segment opened again gets a fresh number and its old entries age out.
//! Uncompressed regions are not cached: they are read straight from the mapping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use arrow_buffer::Buffer;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// (segment number, column index, block index).
pub(crate) type BlockKey = (u64, u32, u32);

#[derive(Clone)]
struct ByLength;

impl Weighter<BlockKey, Buffer> for ByLength {
    fn weight(&self, _key: &BlockKey, val: &Buffer) -> u64 {
        val.len().max(1) as u64
    }
}

/// Smallest default budget: 1 GiB.
pub const MIN_DEFAULT_CAPACITY: u64 = 1 << 30;

/// Default budget: a quarter of the machine's memory, at least [`MIN_DEFAULT_CAPACITY`] (1 GiB where the
/// memory size cannot be read). Columns that compress well are the ones a dashboard scans again and again;
/// with a budget below their decompressed size every refresh pays the decompression again.
pub fn default_capacity() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    total.map_or(MIN_DEFAULT_CAPACITY, |t| (t / 4).max(MIN_DEFAULT_CAPACITY))
}

/// `UNSET` until [`set_capacity`]: the cache then takes [`default_capacity`].
static CAPACITY: AtomicU64 = AtomicU64::new(UNSET);
const UNSET: u64 = u64::MAX;
static CACHE: OnceLock<Option<Cache<BlockKey, Buffer, ByLength>>> = OnceLock::new();
static NEXT_SEGMENT: AtomicU64 = AtomicU64::new(0);

/// Sets the byte budget (0 turns caching off). Takes effect only before the first block is read; without a
/// call the budget is [`default_capacity`].
pub fn set_capacity(bytes: u64) {
    CAPACITY.store(bytes, Ordering::Relaxed);
}

/// Bytes held now.
pub fn weight() -> u64 {
    cache().map_or(0, Cache::weight)
}

/// A number for a newly opened segment, unique in this process.
pub(crate) fn segment_number() -> u64 {
    NEXT_SEGMENT.fetch_add(1, Ordering::Relaxed)
}

fn cache() -> Option<&'static Cache<BlockKey, Buffer, ByLength>> {
    CACHE
        .get_or_init(|| {
            let bytes = match CAPACITY.load(Ordering::Relaxed) {
                UNSET => default_capacity(),
                b => b,
            };
            // Blocks are 64K rows of 1 to 8 bytes: estimate ~256 KiB each for the item count.
            (bytes > 0).then(|| {
                Cache::with_weighter((bytes / (256 << 10)).max(16) as usize, bytes, ByLength)
            })
        })
        .as_ref()
}

/// The cached block, or `load`'s result (cached when it succeeds).
pub(crate) fn get_or_load<E>(
    key: BlockKey,
    load: impl FnOnce() -> Result<Buffer, E>,
) -> Result<Buffer, E> {
    match cache() {
        Some(c) => c.get_or_insert_with(&key, load),
        None => load(),
    }
}
