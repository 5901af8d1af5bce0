//! Segments written by every format version the reader accepts stay readable. `tests/data/format_v1.bslt` was
//! written once by a version 1 build (12 rows; its expected contents are stated here by hand);
//! `format_v2.bslt` to `format_v4.bslt` were each written by the build that introduced that version, running
//! `tests/write_fixture.rs` with `BASALT_WRITE_FIXTURE=1`, and are checked against the rows that file generates.
//! (Run today, the generator writes the current version only: never regenerate a committed older file.)
#![allow(clippy::unwrap_used)]

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::Array;
use basalt_segment::{Interval, Segment, SegmentSource, StringPredicate};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/format_v1.bslt");

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

/// The rows every later fixture holds (the generator that wrote them, run by each version's build).
#[path = "write_fixture.rs"]
mod later;

/// One value as text (floats by their bits, so -0.0 and NaN compare exactly), whatever the array's encoding.
fn value(a: &dyn Array, r: usize) -> Option<String> {
    use arrow_schema::DataType;
    if a.is_null(r) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Int64 => a.as_primitive::<Int64Type>().value(r).to_string(),
        DataType::Timestamp(_, _) => a
            .as_primitive::<TimestampMillisecondType>()
            .value(r)
            .to_string(),
        DataType::Float64 => a
            .as_primitive::<Float64Type>()
            .value(r)
            .to_bits()
            .to_string(),
        DataType::Utf8 => a.as_string::<i32>().value(r).to_string(),
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let k = d.normalized_keys()[r];
            d.values().as_string::<i32>().value(k).to_string()
        }
        other => panic!("unexpected type {other}"),
    })
}

/// Reads `format_v{version}.bslt` and checks every value against the generator's rows, the index choices the
/// version made, and filters through the index and through codes.
fn reads_fixture(version: u32) {
    let path = format!(
        "{}/tests/data/format_v{version}.bslt",
        env!("CARGO_MANIFEST_DIR")
    );
    let seg = Segment::open(std::path::Path::new(&path)).unwrap();
    seg.verify().unwrap();
    assert_eq!(seg.footer().format_version, version);
    assert_eq!(seg.num_rows(), later::ROWS);
    assert_eq!(seg.num_blocks(), 4);
    let want = later::batch();
    for (ci, name) in ["ts", "s", "u", "l", "d"].iter().enumerate() {
        let mut got = Vec::new();
        for b in 0..seg.num_blocks() {
            let a = seg.read_block(name, b).unwrap().unwrap();
            got.extend((0..a.len()).map(|r| value(a.as_ref(), r)));
        }
        let expected: Vec<Option<String>> = (0..later::ROWS)
            .map(|r| value(want.column(ci).as_ref(), r))
            .collect();
        assert_eq!(got, expected, "column {name} of format {version}");
    }
    // A near-unique column (7 rows per value) has no bitmap index from version 2 on; its filters scan codes.
    assert!(!seg.has_bitmap_index("u"));
    let rows: Vec<u32> = seg
        .filter_strings(
            "u",
            &StringPredicate::Eq("u0007".into()),
            0..seg.num_blocks(),
        )
        .unwrap()
        .iter()
        .collect();
    assert_eq!(rows, (49..56).collect::<Vec<u32>>());
    let b = seg
        .filter_strings("s", &StringPredicate::Eq("b".into()), 0..seg.num_blocks())
        .unwrap();
    let want_b = (0..later::ROWS)
        .filter(|i| i % 5 == 2 && i % 7 != 3)
        .count();
    assert_eq!(b.len() as usize, want_b);
    assert!(
        b.contains(2) && !b.contains(17),
        "row 17 is NULL (17 % 7 == 3)"
    );
    let nulls = seg.null_bitmap("s").unwrap();
    assert_eq!(
        nulls.len() as usize,
        (0..later::ROWS).filter(|i| i % 7 == 3).count()
    );
}

#[test]
fn reads_format_v2() {
    reads_fixture(2);
}

#[test]
fn reads_format_v3() {
    reads_fixture(3);
}

#[test]
fn reads_format_v4() {
    reads_fixture(4);
}

/// Every version the reader accepts has a committed fixture written by that version's build.
#[test]
fn a_fixture_for_every_readable_version() {
    use basalt_segment::format::{FORMAT_VERSION, MIN_READ_VERSION};
    for v in MIN_READ_VERSION..=FORMAT_VERSION {
        let path = format!("{}/tests/data/format_v{v}.bslt", env!("CARGO_MANIFEST_DIR"));
        assert!(
            std::path::Path::new(&path).exists(),
            "no fixture for format {v}: write one with the build of that version (tests/write_fixture.rs)"
        );
    }
}
