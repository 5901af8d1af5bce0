//! Compression of regions: fixed-width `values` regions block by block (LZ4 or zstd, one compressed block per
//! `BLOCK_ROWS` rows), dictionaries whole.
//!
//! A compressed `values` region is `(n_blocks + 1) x u64 LE` block offsets (relative to the end of that offset
//! table) followed by the compressed blocks. A compressed dictionary is one LZ4 block prefixed with its
//! decompressed length (u32 LE), or one zstd frame.

use crate::footer::Codec;

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
    let blocks: Vec<Vec<u8>> = raw
        .chunks(block_bytes)
        .map(|chunk| match codec {
            Codec::Lz4 => lz4_flex::block::compress(chunk),
            Codec::Zstd => zstd::bulk::compress(chunk, 3).unwrap_or_else(|_| chunk.to_vec()),
            Codec::None => chunk.to_vec(),
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
        Codec::Zstd => zstd::bulk::compress(raw, 3).ok()?,
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
