//! Compression of regions: fixed-width `values` regions block by block (LZ4 or zstd, one compressed block per
//! `BLOCK_ROWS` rows), dictionaries whole.
//!
//! A compressed `values` region is `(n_blocks + 1) x u64 LE` block offsets (relative to the end of that offset
//! table) followed by the compressed blocks. A compressed dictionary is one LZ4 block prefixed with its
//! decompressed length (u32 LE), or one zstd frame.

use crate::footer::Codec;

/// The zstd level of values and dictionaries.
const ZSTD_LEVEL: i32 = 1;

/// Compresses `raw` (`width` bytes per value) block by block; returns `None` when that saves less than a fifth.
pub fn compress_blocks(
    raw: &[u8],
    width: usize,
    block_rows: usize,
    codec: Codec,
) -> Option<Vec<u8>> {
    if codec == Codec::None || raw.is_empty() {
        return None;
    }
    let block_bytes = block_rows * width;
    // One zstd context serves every block (making one per block cost more than compressing a small block).
    let mut zstd = match codec {
        Codec::Zstd => zstd::bulk::Compressor::new(ZSTD_LEVEL).ok(),
        _ => None,
    };
    let blocks: Vec<Vec<u8>> = raw
        .chunks(block_bytes)
        .map(|chunk| match (codec, &mut zstd) {
            (Codec::Lz4, _) => lz4_flex::block::compress(chunk),
            (Codec::Zstd, Some(z)) => z.compress(chunk).unwrap_or_else(|_| chunk.to_vec()),
            _ => chunk.to_vec(),
        })
        .collect();
    let data_len: usize = blocks.iter().map(Vec::len).sum();
    let total = (blocks.len() + 1) * 8 + data_len;
    if total * 5 > raw.len() * 4 {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    let mut offset = 0u64;
    out.extend_from_slice(&offset.to_le_bytes());
    for b in &blocks {
        offset += b.len() as u64;
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for b in &blocks {
        out.extend_from_slice(b);
    }
    Some(out)
}

/// Decompresses block `block` of a compressed region into exactly `expected_len` bytes.
pub fn decompress_block(
    region: &[u8],
    n_blocks: usize,
    block: usize,
    expected_len: usize,
    codec: Codec,
) -> Result<Vec<u8>, String> {
    let table_len = (n_blocks + 1) * 8;
    if region.len() < table_len || block >= n_blocks {
        return Err(format!(
            "block table of {n_blocks} blocks does not fit in {} bytes",
            region.len()
        ));
    }
    let read = |i: usize| -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&region[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let (start, end) = (read(block), read(block + 1));
    let data = &region[table_len..];
    if start > end || end > data.len() as u64 {
        return Err(format!(
            "block {block} spans bytes {start}..{end} of {}",
            data.len()
        ));
    }
    let src = &data[start as usize..end as usize];
    let out = match codec {
        Codec::Lz4 => lz4_flex::block::decompress(src, expected_len)
            .map_err(|e| format!("lz4 block {block}: {e}"))?,
        Codec::Zstd => zstd::bulk::decompress(src, expected_len)
            .map_err(|e| format!("zstd block {block}: {e}"))?,
        Codec::None => src.to_vec(),
    };
    if out.len() != expected_len {
        return Err(format!(
            "block {block} decompressed to {} bytes, expected {expected_len}",
            out.len()
        ));
    }
    Ok(out)
}

/// Compresses a whole region (a dictionary); `None` when that saves less than a fifth.
pub fn compress_whole(raw: &[u8], codec: Codec) -> Option<Vec<u8>> {
    let out = match codec {
        Codec::None => return None,
        Codec::Lz4 => lz4_flex::block::compress_prepend_size(raw),
        Codec::Zstd => zstd::bulk::compress(raw, ZSTD_LEVEL).ok()?,
    };
    (out.len() * 5 <= raw.len() * 4).then_some(out)
}

/// Decompresses a region written by [`compress_whole`].
pub fn decompress_whole(src: &[u8], codec: Codec) -> Result<Vec<u8>, String> {
    match codec {
        Codec::None => Ok(src.to_vec()),
        Codec::Lz4 => {
            lz4_flex::block::decompress_size_prepended(src).map_err(|e| format!("lz4: {e}"))
        }
        Codec::Zstd => zstd::stream::decode_all(src).map_err(|e| format!("zstd: {e}")),
    }
}

/// Replaces each block of `raw` (8-byte LE integers, `block_rows` to a block) with its first value followed by
/// the wrapping differences of consecutive values ([`crate::footer::Encoding::Delta`]).
pub fn delta_encode(raw: &[u8], block_rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for block in raw.chunks(block_rows * 8) {
        let mut prev = 0i64;
        for v in block.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(v);
            let v = i64::from_le_bytes(b);
            out.extend_from_slice(&v.wrapping_sub(prev).to_le_bytes());
            prev = v;
        }
    }
    out
}

/// Undoes [`delta_encode`] on one decompressed block, in place.
pub fn delta_decode(block: &mut [u8]) {
    let mut acc = 0i64;
    for v in block.chunks_exact_mut(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(v);
        acc = acc.wrapping_add(i64::from_le_bytes(b));
        v.copy_from_slice(&acc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_round_trips_extremes_block_by_block() {
        let values = [i64::MIN, i64::MAX, 0, -1, i64::MIN, 5, 5, i64::MAX, 7];
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let encoded = delta_encode(&raw, 4);
        // Each block of 4 starts with its own first value.
        assert_eq!(encoded[32..40], i64::MIN.to_le_bytes());
        assert_eq!(encoded[64..72], 7i64.to_le_bytes());
        let mut decoded = Vec::new();
        for block in encoded.chunks(32) {
            let mut b = block.to_vec();
            delta_decode(&mut b);
            decoded.extend_from_slice(&b);
        }
        assert_eq!(decoded, raw);
    }
}
