//! Damaged segment files: every flipped byte inside a region, the footer or the trailer, and every truncation,
//! gives a precise error through reads and through `verify`, and no byte anywhere causes a panic.
#![allow(clippy::unwrap_used)]

mod common;

use basalt_segment::footer::Encoding;
use basalt_segment::format::{HEADER_LEN, TRAILER_LEN};
use basalt_segment::reader::RegionKind;
use basalt_segment::{Codec, Error, Interval, Segment, SegmentSource, SegmentWriter, WriteOptions};
use proptest::prelude::*;

fn good_bytes(codec: Codec) -> Vec<u8> {
    let rows = common::sample_rows(500);
    let interval = Interval::new(-86_400_000, 0);
    SegmentWriter::new(WriteOptions {
        codec,
        block_rows: 128,
        ..Default::default()
    })
    .encode(&common::schema(), interval, &common::batch(&rows))
    .unwrap()
}

/// Reads everything through the query path (not `verify`); returns the first error.
fn read_everything(seg: &Segment) -> Result<(), Error> {
    for c in seg.columns() {
        for b in 0..seg.num_blocks() {
            seg.read_block(&c.name, b)?;
        }
        seg.null_bitmap(&c.name)?;
        if let Some(d) = seg.dictionary(&c.name)? {
            for code in 0..d.len() as u32 {
                seg.value_bitmap(&c.name, code)?;
            }
        }
    }
    Ok(())
}

fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<Segment, Error>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.bslt");
    std::fs::write(&path, bytes).unwrap();
    let seg = Segment::open(&path);
    (dir, seg)
}

#[test]
fn a_flipped_byte_in_every_region_is_found_and_named() {
    for codec in [Codec::None, Codec::Lz4] {
        let good = good_bytes(codec);
        let (_d, seg) = open_bytes(&good);
        let footer = seg.unwrap().footer().clone();
        for col in &footer.columns {
            for kind in RegionKind::ALL {
                let region = match kind {
                    RegionKind::Values => Some(col.values),
                    RegionKind::Dictionary => col.dictionary,
                    RegionKind::Bitmaps => col.bitmaps,
                    RegionKind::Nulls => col.nulls,
                };
                let Some(region) = region else { continue };
                for at in [
                    region.offset,
                    region.offset + region.len / 2,
                    region.offset + region.len - 1,
                ] {
                    let mut bad = good.clone();
                    bad[at as usize] ^= 0x40;
                    let (_dir, seg) = open_bytes(&bad);
                    let seg =
                        seg.expect("region damage is found when the region is read, not at open");
                    let err = read_everything(&seg).expect_err("damage must be reported by reads");
                    let msg = err.to_string();
                    assert!(msg.contains(&format!("column {:?}", col.name)), "{msg}");
                    assert!(msg.contains(kind.name()), "{msg}");
                    assert!(msg.contains("damaged.bslt"), "{msg}");
                    assert!(matches!(err, Error::Corrupt { .. }));
                    assert!(seg.verify().is_err());
                }
            }
        }
    }
}

#[test]
fn damage_to_footer_trailer_or_header_fails_open() {
    let good = good_bytes(Codec::Lz4);
    let len = good.len();
    for at in [
        0,
        4,
        8,
        len - 1,
        len - 5,
        len - 9,
        len - 13,
        len - 17,
        len - TRAILER_LEN - 1,
        len - TRAILER_LEN - 40,
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        let (_dir, seg) = open_bytes(&bad);
        let err = seg.expect_err(&format!("byte {at} of {len}"));
        assert!(
            matches!(err, Error::Corrupt { .. } | Error::NotASegment { .. }),
            "{err}"
        );
    }
}

#[test]
fn every_truncation_fails_cleanly() {
    let good = good_bytes(Codec::Lz4);
    for cut in
        (0..good.len())
            .step_by(97)
            .chain([HEADER_LEN, good.len() - 1, good.len() - TRAILER_LEN])
    {
        let (_dir, seg) = open_bytes(&good[..cut]);
        assert!(seg.is_err(), "truncated to {cut} bytes");
    }
}

fn covered(footer: &basalt_segment::footer::Footer, len: usize, at: usize) -> bool {
    if at < 12 || at >= len - TRAILER_LEN - 2 {
        return true; // header magic and version; trailer (and the footer's last bytes)
    }
    footer.columns.iter().any(|c| {
        [Some(c.values), c.dictionary, c.bitmaps, c.nulls]
            .into_iter()
            .flatten()
            .any(|r| (r.offset as usize..(r.offset + r.len) as usize).contains(&at))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_byte_change_panics(pos in any::<prop::sample::Index>(), mask in 1u8..=255, codec in prop_oneof![Just(Codec::None), Just(Codec::Lz4), Just(Codec::Zstd)]) {
        let good = good_bytes(codec);
        let (_d, seg) = open_bytes(&good);
        let footer = seg.unwrap().footer().clone();
        let at = pos.index(good.len());
        let mut bad = good.clone();
        bad[at] ^= mask;
        let (_dir, seg) = open_bytes(&bad);
        let outcome = seg.and_then(|s| { read_everything(&s)?; s.verify()?; Ok(()) });
        if covered(&footer, good.len(), at) {
            prop_assert!(outcome.is_err(), "flipping byte {} with {:#x} went unnoticed", at, mask);
        }
    }
}

/// A code beyond the dictionary in a file whose checksums all match (a writer bug, or a crafted file): reading
/// the block fails with the column and the block named, every time, and the other blocks still read.
#[test]
fn a_code_beyond_the_dictionary_is_an_error_even_with_valid_checksums() {
    let good = good_bytes(Codec::None);
    let (_d, seg) = open_bytes(&good);
    let mut footer = seg.unwrap().footer().clone();
    let col = footer.columns.iter().position(|c| c.name == "s").unwrap();
    assert_eq!(
        footer.columns[col].width, 1,
        "the sample's string column has a one-byte code"
    );
    let region = footer.columns[col].values;
    let mut bytes = good.clone();
    // Row 200 lies in block 1 (128 rows a block).
    bytes[region.offset as usize + 200] = 0xFF;
    footer.columns[col].values.crc32c =
        crc32c::crc32c(&bytes[region.offset as usize..(region.offset + region.len) as usize]);
    let bytes = with_footer(bytes, &footer);

    let (_d2, seg) = open_bytes(&bytes);
    let seg = seg.unwrap();
    seg.read_block("s", 0).unwrap();
    for _ in 0..2 {
        let err = seg.read_block("s", 1).unwrap_err().to_string();
        assert!(
            err.contains("column \"s\", region values") && err.contains("damaged.bslt"),
            "{err}"
        );
        assert!(
            err.contains("block 1") && err.contains("beyond the dictionary"),
            "{err}"
        );
    }
    seg.read_block("s", 2).unwrap();
}

/// `bytes` (a whole segment file) with its footer replaced by `footer`, checksummed.
fn with_footer(mut bytes: Vec<u8>, footer: &basalt_segment::footer::Footer) -> Vec<u8> {
    let len = bytes.len();
    let old_footer_len =
        u64::from_le_bytes(bytes[len - TRAILER_LEN..][..8].try_into().unwrap()) as usize;
    let footer_at = len - TRAILER_LEN - old_footer_len;
    let json = serde_json::to_vec(footer).unwrap();
    let trailer = bytes[len - TRAILER_LEN..].to_vec();
    bytes.truncate(footer_at);
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    bytes.extend_from_slice(&trailer[12..]);
    bytes
}

/// `bytes` (with `footer` saying `version` too) rewritten to say format `version` in header and trailer.
fn as_version(mut bytes: Vec<u8>, version: u32) -> Vec<u8> {
    let len = bytes.len();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    bytes[len - 12..len - 8].copy_from_slice(&version.to_le_bytes());
    bytes
}

/// Delta encoding is for the compressed 8-byte integer values of a format 4 file: a footer that claims it for
/// a double column, for an uncompressed time column, or in a version 3 file, fails to open with the column and
/// region named.
#[test]
fn delta_encoding_only_where_format_4_allows_it() {
    let good = good_bytes(Codec::Zstd);
    let footer = open_bytes(&good).1.unwrap().footer().clone();
    let at = |name: &str| footer.columns.iter().position(|c| c.name == name).unwrap();
    assert_eq!(footer.columns[at("ts")].encoding, Encoding::Delta);
    assert_eq!(footer.columns[at("l")].encoding, Encoding::Plain);
    let refused = |bytes: Vec<u8>, column: &str| {
        let err = open_bytes(&bytes).1.unwrap_err().to_string();
        assert!(
            err.contains(&format!("column \"{column}\", region values"))
                && err.contains("delta encoding"),
            "{err}"
        );
    };

    let mut double = footer.clone();
    double.columns[at("d")].encoding = Encoding::Delta;
    refused(with_footer(good.clone(), &double), "d");

    let mut v3 = footer.clone();
    v3.format_version = 3;
    refused(as_version(with_footer(good.clone(), &v3), 3), "ts");

    let plain = good_bytes(Codec::None);
    let mut raw = open_bytes(&plain).1.unwrap().footer().clone();
    assert_eq!(raw.columns[at("ts")].encoding, Encoding::Plain);
    raw.columns[at("ts")].encoding = Encoding::Delta;
    refused(with_footer(plain, &raw), "ts");
}

/// Only values regions and (from version 3) dictionaries may be compressed: a footer that says a bitmaps
/// region is, or a version 2 file whose dictionary is, fails to open with the column and region named.
#[test]
fn a_compressed_bitmaps_region_or_a_v2_compressed_dictionary_fails_open() {
    let good = good_bytes(Codec::Zstd);
    let (_d, seg) = open_bytes(&good);
    let footer = seg.unwrap().footer().clone();
    let col = footer.columns.iter().position(|c| c.name == "s").unwrap();

    let mut bad = footer.clone();
    bad.columns[col]
        .bitmaps
        .as_mut()
        .expect("a small segment indexes every string column")
        .codec = Codec::Zstd;
    let (_d2, seg) = open_bytes(&with_footer(good.clone(), &bad));
    let err = seg.unwrap_err().to_string();
    assert!(
        err.contains("column \"s\", region bitmap index") && err.contains("may be compressed"),
        "{err}"
    );

    let mut v2 = footer.clone();
    v2.format_version = 2;
    v2.columns[col].dictionary.as_mut().unwrap().codec = Codec::Zstd;
    // (Version 2 knew no delta encoding either.)
    for c in &mut v2.columns {
        c.encoding = Encoding::Plain;
    }
    let (_d3, seg) = open_bytes(&as_version(with_footer(good.clone(), &v2), 2));
    let err = seg.unwrap_err().to_string();
    assert!(
        err.contains("column \"s\", region dictionary") && err.contains("may be compressed"),
        "{err}"
    );
}
