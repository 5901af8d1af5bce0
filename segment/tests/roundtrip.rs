//! Property test: random rows written to a segment read back equal, through every part of the read interface.
#![allow(clippy::unwrap_used)]

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef};
use basalt_segment::{
    Codec, ColumnType, IndexPolicy, Interval, Segment, SegmentSource, SegmentWriter, StatValue,
    StringMatch, StringPredicate, WriteOptions,
};
use proptest::prelude::*;

use common::{batch, schema, Rows};

fn decode_strings(a: &ArrayRef) -> Vec<Option<String>> {
    use arrow_array::types::{UInt16Type, UInt32Type, UInt8Type};
    let d = a.as_any_dictionary();
    let values = d.values().as_string::<i32>();
    let keys: Vec<usize> = match a.data_type() {
        arrow_schema::DataType::Dictionary(k, _) => match k.as_ref() {
            arrow_schema::DataType::UInt8 => a
                .as_dictionary::<UInt8Type>()
                .keys()
                .values()
                .iter()
                .map(|k| *k as usize)
                .collect(),
            arrow_schema::DataType::UInt16 => a
                .as_dictionary::<UInt16Type>()
                .keys()
                .values()
                .iter()
                .map(|k| *k as usize)
                .collect(),
            _ => a
                .as_dictionary::<UInt32Type>()
                .keys()
                .values()
                .iter()
                .map(|k| *k as usize)
                .collect(),
        },
        other => panic!("not a dictionary: {other}"),
    };
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| values.value(keys[i]).to_string()))
        .collect()
}

fn read_all(seg: &Segment) -> Rows {
    let mut out: Rows = Default::default();
    for b in 0..seg.num_blocks() {
        let ts = seg.read_block("ts", b).unwrap().unwrap();
        out.0.extend(
            ts.as_primitive::<TimestampMillisecondType>()
                .values()
                .iter(),
        );
        out.1
            .extend(decode_strings(&seg.read_block("s", b).unwrap().unwrap()));
        out.2.extend(
            seg.read_block("l", b)
                .unwrap()
                .unwrap()
                .as_primitive::<Int64Type>()
                .iter(),
        );
        out.3.extend(
            seg.read_block("d", b)
                .unwrap()
                .unwrap()
                .as_primitive::<Float64Type>()
                .iter(),
        );
    }
    out
}

fn write(rows: &Rows, options: WriteOptions) -> (tempfile::TempDir, Segment) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bslt");
    let start = rows.0.first().copied().unwrap_or(0);
    let end = rows.0.last().copied().unwrap_or(0) + 1;
    SegmentWriter::new(options)
        .write(&path, &schema(), Interval::new(start, end), &batch(rows))
        .unwrap();
    let seg = Segment::open(&path).unwrap();
    (dir, seg)
}

fn rows_strategy() -> impl Strategy<Value = Rows> {
    (0usize..300).prop_flat_map(|n| {
        let ts = proptest::collection::vec(-5_000_000_000_000i64..5_000_000_000_000, n).prop_map(
            |mut v| {
                v.sort();
                v
            },
        );
        let s = proptest::collection::vec(
            proptest::option::of(prop_oneof![Just(String::new()), "[a-c]{0,3}", "\\PC{0,6}"]),
            n,
        );
        let l = proptest::collection::vec(
            proptest::option::of(prop_oneof![
                Just(i64::MIN),
                Just(i64::MAX),
                Just(0i64),
                any::<i64>()
            ]),
            n,
        );
        let d = proptest::collection::vec(
            proptest::option::of(prop_oneof![
                Just(f64::NAN),
                Just(f64::NEG_INFINITY),
                Just(-0.0f64),
                Just(f64::MAX),
                any::<f64>()
            ]),
            n,
        );
        (ts, s, l, d)
    })
}

fn same_f64(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.map(f64::to_bits) == y.map(f64::to_bits))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn written_rows_read_back_equal(rows in rows_strategy(), block_rows in 1usize..80, codec in prop_oneof![Just(Codec::None), Just(Codec::Lz4), Just(Codec::Zstd)]) {
        let (_dir, seg) = write(&rows, WriteOptions { codec, block_rows, ..Default::default() });
        prop_assert_eq!(seg.num_rows(), rows.0.len());
        let back = read_all(&seg);
        prop_assert_eq!(&back.0, &rows.0);
        prop_assert_eq!(&back.1, &rows.1);
        prop_assert_eq!(&back.2, &rows.2);
        prop_assert!(same_f64(&back.3, &rows.3));
        seg.verify().unwrap();

        // The bitmap index and null bitmap agree with the values.
        let nulls: Vec<u32> = seg.null_bitmap("s").unwrap().iter().collect();
        let expected_nulls: Vec<u32> = rows.1.iter().enumerate().filter(|(_, v)| v.is_none()).map(|(i, _)| i as u32).collect();
        prop_assert_eq!(nulls, expected_nulls);
        if let Some(Some(probe)) = rows.1.iter().find(|v| v.is_some()) {
            let hits: Vec<u32> = seg.filter_strings("s", &StringPredicate::Eq(probe.clone()), 0..seg.num_blocks()).unwrap().iter().collect();
            let expected: Vec<u32> = rows.1.iter().enumerate().filter(|(_, v)| v.as_deref() == Some(probe.as_str())).map(|(i, _)| i as u32).collect();
            prop_assert_eq!(hits, expected);
        }
        let none = seg.filter_strings("s", &StringPredicate::Eq("\u{1}never".into()), 0..seg.num_blocks()).unwrap();
        prop_assert!(none.is_empty());

        // Statistics.
        let l = seg.column_info("l").unwrap();
        prop_assert_eq!(l.stats.min.clone(), rows.2.iter().flatten().min().map(|v| StatValue::Long(*v)));
        prop_assert_eq!(l.stats.max.clone(), rows.2.iter().flatten().max().map(|v| StatValue::Long(*v)));
        prop_assert_eq!(l.stats.null_count, rows.2.iter().filter(|v| v.is_none()).count() as u64);
        let s = seg.column_info("s").unwrap();
        prop_assert_eq!(s.stats.min.clone(), rows.1.iter().flatten().min().map(|v| StatValue::String(v.clone())));
        let dict = seg.dictionary("s").unwrap().unwrap();
        let mut distinct: Vec<&String> = rows.1.iter().flatten().collect();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(dict.len(), distinct.len());
        for (code, v) in distinct.iter().enumerate() {
            prop_assert_eq!(dict.lookup(v), Some(code as u32));
        }

        // A scan of the codes (a column without an index, or a wide match) over any run of blocks selects the
        // rows of those blocks whose value has a wanted code; NULL rows (code 0 in the file) never match.
        let wanted: Vec<u32> = (0..dict.len() as u32).step_by(2).collect();
        let m = StringMatch::Codes { codes: wanted.clone(), dict_len: dict.len() };
        let nb = seg.num_blocks();
        for blocks in [0..nb, nb / 3..nb - nb / 3, nb / 2..nb, 0..nb.min(1)] {
            let got: Vec<u32> = seg.rows_matching("s", &m, blocks.clone()).unwrap().iter().collect();
            let range = seg.rows_of(&blocks);
            let expected: Vec<u32> = range
                .filter(|r| rows.1[*r as usize].as_deref().and_then(|v| dict.lookup(v)).is_some_and(|c| c % 2 == 0))
                .collect();
            prop_assert_eq!(got, expected, "blocks {:?}", blocks);
        }
    }

    /// A string column handed over as an Arrow dictionary (keys into values that may repeat a string, hold
    /// strings no row uses, or be NULL) encodes to the same bytes as the same strings handed over one by one.
    #[test]
    fn a_dictionary_column_encodes_as_its_strings_do(rows in rows_strategy(), extra in proptest::collection::vec("[a-d]{0,2}", 0..6), seed in any::<u64>()) {
        use arrow_array::types::UInt32Type;
        use arrow_array::{DictionaryArray, StringArray, UInt32Array};
        let plain = batch(&rows);
        // Values: every string of the rows twice (rows alternate between the copies), unused extras, a NULL.
        let mut values: Vec<Option<String>> = vec![None];
        values.extend(extra.iter().cloned().map(Some));
        let first = values.len();
        values.extend(rows.1.iter().flatten().cloned().map(Some));
        let second = values.len();
        values.extend(rows.1.iter().flatten().cloned().map(Some));
        let mut k = 0usize;
        let keys: Vec<Option<u32>> = rows.1.iter().enumerate().map(|(i, v)| {
            v.as_ref().map(|_| {
                let key = if (i as u64 ^ seed).is_multiple_of(2) { first + k } else { second + k };
                k += 1;
                key as u32
            }).or_else(|| (i as u64).wrapping_add(seed).is_multiple_of(3).then_some(0))
        }).collect();
        let dict = DictionaryArray::<UInt32Type>::try_new(UInt32Array::from(keys), std::sync::Arc::new(StringArray::from(values))).unwrap();
        let mut cols = plain.columns().to_vec();
        cols[1] = std::sync::Arc::new(dict);
        let fields: Vec<arrow_schema::Field> = plain.schema().fields().iter().zip(&cols).map(|(f, c)| arrow_schema::Field::new(f.name(), c.data_type().clone(), true)).collect();
        let keyed = arrow_array::RecordBatch::try_new(std::sync::Arc::new(arrow_schema::Schema::new(fields)), cols).unwrap();
        let interval = Interval::new(rows.0.first().copied().unwrap_or(0), rows.0.last().copied().unwrap_or(0) + 1);
        let w = SegmentWriter::new(WriteOptions { block_rows: 7, ..Default::default() });
        let from_keys = w.encode(&schema(), interval, &keyed).unwrap();
        let from_strings = w.encode(&schema(), interval, &plain).unwrap();
        prop_assert!(from_keys == from_strings);
    }
}

#[test]
fn missing_column_reads_as_null() {
    let (_dir, seg) = write(&common::sample_rows(10), WriteOptions::default());
    assert!(seg.read_block("nope", 0).unwrap().is_none());
    let a = seg.read_block_or_null("nope", ColumnType::Long, 0).unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(a.null_count(), 10);
    assert_eq!(seg.null_bitmap("nope").unwrap().len(), 10);
}

#[test]
fn uncompressed_numbers_are_not_copied() {
    let rows = common::sample_rows(1000);
    let (_dir, seg) = write(
        &rows,
        WriteOptions {
            codec: Codec::None,
            block_rows: 4096,
            ..Default::default()
        },
    );
    let a = seg.read_block("l", 0).unwrap().unwrap();
    let values = a.as_primitive::<Int64Type>().values();
    let file = std::fs::read(seg.path()).unwrap();
    // The array's bytes are the mapped file's bytes: same content at the region offset, and the pointer lies
    // inside the mapping rather than in a fresh allocation.
    let meta = seg.footer().columns.iter().find(|c| c.name == "l").unwrap();
    let off = meta.values.offset as usize;
    let bytes: &[u8] =
        unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u8, values.len() * 8) };
    assert_eq!(bytes, &file[off..off + values.len() * 8]);
    assert_eq!(
        values.as_ptr() as usize % 64,
        0,
        "regions are 64-byte aligned in a page-aligned mapping"
    );
}

#[test]
fn a_near_unique_string_column_has_no_bitmap_index_and_filters_by_scanning_its_codes() {
    // 70,000 rows (past INDEX_ALL_BELOW_ROWS): `s` holds 35,000 values (2 rows each, some NULL), so it gets no
    // bitmaps; every filter must still select exactly the rows a brute-force pass over the input selects.
    let n = 70_000usize;
    let ts: Vec<i64> = (0..n as i64).map(|i| i * 10).collect();
    let s: Vec<Option<String>> = (0..n)
        .map(|i| (i % 13 != 0).then(|| format!("u{:05}", (i * 3) % 35_000)))
        .collect();
    let l: Vec<Option<i64>> = (0..n).map(|i| Some(i as i64)).collect();
    let d: Vec<Option<f64>> = vec![None; n];
    let rows = (ts, s.clone(), l, d);
    let (_dir, seg) = write(&rows, WriteOptions::default());
    let meta = seg.footer().columns.iter().find(|c| c.name == "s").unwrap();
    assert!(meta.bitmaps.is_none(), "near-unique: no index");
    // 35,000 similar strings compress: the dictionary is stored zstd-compressed (version 3).
    assert_eq!(meta.dictionary.unwrap().codec, Codec::Zstd);
    assert!(!seg.has_bitmap_index("s"));
    assert_eq!(
        seg.footer().format_version,
        basalt_segment::format::FORMAT_VERSION
    );
    seg.verify().unwrap();
    let brute = |f: &dyn Fn(&str) -> bool| -> Vec<u32> {
        s.iter()
            .enumerate()
            .filter(|(_, v)| v.as_deref().is_some_and(f))
            .map(|(i, _)| i as u32)
            .collect()
    };
    let got = |p: StringPredicate| -> Vec<u32> {
        seg.filter_strings("s", &p, 0..seg.num_blocks())
            .unwrap()
            .iter()
            .collect()
    };
    let eq = got(StringPredicate::Eq("u00007".into()));
    assert_eq!(eq, brute(&|v| v == "u00007"));
    assert!(!eq.is_empty());
    // Code 0 is also what NULL rows hold: those must not match.
    let first = got(StringPredicate::Eq("u00000".into()));
    assert_eq!(first, brute(&|v| v == "u00000"));
    assert!(!first.is_empty());
    assert_eq!(
        got(StringPredicate::In(vec!["u00000".into(), "u00003".into()])),
        brute(&|v| v == "u00000" || v == "u00003")
    );
    assert!(got(StringPredicate::Eq("nope".into())).is_empty());
    assert_eq!(
        got(StringPredicate::In(vec![
            "u00014".into(),
            "u34993".into(),
            "nope".into()
        ])),
        brute(&|v| v == "u00014" || v == "u34993")
    );
    assert_eq!(
        got(StringPredicate::Like {
            pattern: "u0001%".into(),
            case_insensitive: false
        }),
        brute(&|v| v.starts_with("u0001"))
    );
    // One code's rows, as the bitmap of an indexed column would give them.
    let dict = seg.dictionary("s").unwrap().unwrap();
    let code = dict.lookup("u00021").unwrap();
    let rows21: Vec<u32> = seg.value_bitmap("s", code).unwrap().iter().collect();
    assert_eq!(rows21, brute(&|v| v == "u00021"));
    // A column with many rows per value spread over the segment: its bitmaps cost more than its codes, so it
    // is indexed only when asked for every column.
    let spread: Vec<Option<String>> = (0..n).map(|i| Some(format!("v{}", i % 100))).collect();
    let rows_spread = (rows.0.clone(), spread, rows.2.clone(), rows.3.clone());
    let (_dir2, seg2) = write(&rows_spread, WriteOptions::default());
    assert!(!seg2.has_bitmap_index("s"));
    let all = WriteOptions {
        index: IndexPolicy::All,
        ..Default::default()
    };
    let (_dir3, seg3) = write(&rows_spread, all);
    assert!(seg3.has_bitmap_index("s"));
    // Both answer a filter alike.
    let p = StringPredicate::In(vec!["v7".into(), "v70".into()]);
    let a: Vec<u32> = seg2
        .filter_strings("s", &p, 0..seg2.num_blocks())
        .unwrap()
        .iter()
        .collect();
    let b: Vec<u32> = seg3
        .filter_strings("s", &p, 0..seg3.num_blocks())
        .unwrap()
        .iter()
        .collect();
    assert_eq!(a.len(), 1400);
    assert_eq!(a, b);
    // Values that cluster (each holds a run of 700 rows): run containers make the bitmaps small, so the
    // default keeps the index.
    let clustered: Vec<Option<String>> = (0..n).map(|i| Some(format!("v{:03}", i / 700))).collect();
    let rows_clustered = (rows.0.clone(), clustered, rows.2.clone(), rows.3.clone());
    let (_dir4, seg4) = write(&rows_clustered, WriteOptions::default());
    assert!(seg4.has_bitmap_index("s"));
    let hits: Vec<u32> = seg4
        .filter_strings(
            "s",
            &StringPredicate::Eq("v005".into()),
            0..seg4.num_blocks(),
        )
        .unwrap()
        .iter()
        .collect();
    assert_eq!(hits, (3500..4200).collect::<Vec<u32>>());
}
