//! Segments written by format version 1 stay readable. `tests/data/format_v1.bslt` was written once by
//! `write_fixture` below (run with `BASALT_WRITE_FIXTURE=1`) by a version 1 build and is committed; its expected
//! contents are stated here by hand. (Run today, `write_fixture` would write the current version: do not
//! regenerate the committed file.)
#![allow(clippy::unwrap_used)]

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::Array;
use basalt_segment::{
    Codec, Interval, Segment, SegmentSource, SegmentWriter, StringPredicate, WriteOptions,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/format_v1.bslt");

#[test]
fn write_fixture() {
    if std::env::var("BASALT_WRITE_FIXTURE").is_err() {
        return;
    }
    let rows = common::sample_rows(12);
    let bytes = SegmentWriter::new(WriteOptions {
        codec: Codec::Lz4,
        block_rows: 5,
        ..Default::default()
    })
    .encode(
        &common::schema(),
        Interval::new(-86_400_000, 0),
        &common::batch(&rows),
    )
    .unwrap();
    std::fs::write(FIXTURE, bytes).unwrap();
}

#[test]
fn reads_format_v1() {
    let seg = Segment::open(std::path::Path::new(FIXTURE)).unwrap();
    seg.verify().unwrap();
    assert_eq!(seg.footer().format_version, 1);
    assert_eq!(seg.num_rows(), 12);
    assert_eq!(seg.num_blocks(), 3);
    assert_eq!(seg.interval(), Interval::new(-86_400_000, 0));
    // Block 1 holds rows 5..10.
    let ts = seg.read_block("ts", 1).unwrap().unwrap();
    assert_eq!(
        ts.as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec(),
        vec![
            -86_395_000,
            -86_394_000,
            -86_393_000,
            -86_392_000,
            -86_391_000
        ]
    );
    let l = seg.read_block("l", 0).unwrap().unwrap();
    let l = l.as_primitive::<Int64Type>();
    assert!(l.is_null(0));
    assert_eq!(l.value(1), i64::MIN);
    assert_eq!(l.value(2), i64::MAX);
    assert_eq!(l.value(3), -7);
    let d = seg.read_block("d", 0).unwrap().unwrap();
    let d = d.as_primitive::<Float64Type>();
    assert!(d.is_null(0));
    assert_eq!(d.value(1).to_bits(), (-0.0f64).to_bits());
    assert_eq!(d.value(2), f64::INFINITY);
    // Strings: "", "a", "b", "ü", "zz" cycling, NULL where i % 7 == 3 (rows 3 and 10).
    let dict = seg.dictionary("s").unwrap().unwrap();
    assert_eq!(
        dict.values().iter().flatten().collect::<Vec<_>>(),
        vec!["", "a", "b", "zz", "ü"]
    );
    let rows_b: Vec<u32> = seg
        .filter_strings("s", &StringPredicate::Eq("b".into()), 0..seg.num_blocks())
        .unwrap()
        .iter()
        .collect();
    assert_eq!(rows_b, vec![2, 7]);
    let nulls: Vec<u32> = seg.null_bitmap("s").unwrap().iter().collect();
    assert_eq!(nulls, vec![3, 10]);
}
