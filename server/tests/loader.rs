//! The bulk loader end to end: the real binary on real files, results read back and compared with numbers
//! computed independently by Python from the raw files.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;

use basalt_segment::{Catalog, FileCatalog, SegmentSource, StringPredicate};
use common::*;

#[test]
fn births_json_array_with_pre_1970_times() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let file = dataset("birth_names2.json.gz");
    ok(&basalt(&[
        "load",
        "--data-dir",
        d,
        "--table",
        "births",
        "--time-column",
        "ds",
        file.to_str().unwrap(),
    ]));
    let want = python_stats("births", &file);
    let st = table_stats(dir.path(), "births");
    assert_eq!(st.rows, want["rows"].as_u64().unwrap());
    assert_eq!(st.long_sums["num"], want["sum_num"].as_i64().unwrap());
    assert_eq!(
        st.long_sums["num_boys"],
        want["sum_num_boys"].as_i64().unwrap()
    );
    assert_eq!(
        st.long_sums["num_girls"],
        want["sum_num_girls"].as_i64().unwrap()
    );
    assert_eq!(st.min_time, want["min_time"].as_i64());
    assert_eq!(st.max_time, want["max_time"].as_i64());
    assert_eq!(
        st.rows_before_1970,
        want["rows_before_1970"].as_u64().unwrap()
    );
    assert_eq!(
        st.distinct["state"].len() as u64,
        want["distinct_state"].as_u64().unwrap()
    );
    ok(&basalt(&["verify", "--data-dir", d]));
}

#[test]
fn births_rolled_up_keeps_input_row_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let file = dataset("birth_names2.json.gz");
    ok(&basalt(&[
        "load",
        "--data-dir",
        d,
        "--table",
        "b",
        "--time-column",
        "ds",
        "--rollup",
        "day",
        "--dimensions",
        "gender,state",
        "--metrics",
        "num:sum,num_boys:max",
        file.to_str().unwrap(),
    ]));
    let want = python_stats("births", &file);
    let st = table_stats(dir.path(), "b");
    assert_eq!(
        st.rows,
        want["rollup_day_gender_state_groups"].as_u64().unwrap()
    );
    assert_eq!(
        st.long_sums["count"],
        want["rows"].as_i64().unwrap(),
        "count records the input rows"
    );
    assert_eq!(st.long_sums["num"], want["sum_num"].as_i64().unwrap());
    assert_eq!(
        st.long_sums["num_boys"],
        want["max_num_boys_sum_over_groups"].as_i64().unwrap()
    );
    assert!(
        !st.long_sums.contains_key("num_girls"),
        "columns that are neither dimension nor metric are dropped"
    );
}

#[test]
fn flights_csv_with_time_built_by_a_transform() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let file = dataset("flight_data.csv.gz");
    ok(&basalt(&[
        "load",
        "--data-dir",
        d,
        "--table",
        "flights",
        "--time-column",
        "ts",
        "--transform",
        "ts=concat(YEAR, '-', lpad(MONTH, 2, '0'), '-', lpad(DAY, 2, '0'))",
        file.to_str().unwrap(),
    ]));
    let want = python_stats("flights", &file);
    let st = table_stats(dir.path(), "flights");
    assert_eq!(st.rows, want["rows"].as_u64().unwrap());
    assert_eq!(
        st.long_sums["DISTANCE"],
        want["sum_distance"].as_i64().unwrap()
    );
    assert_eq!(
        st.long_sums["DEPARTURE_DELAY"],
        want["sum_departure_delay"].as_i64().unwrap()
    );
    assert_eq!(
        st.nulls["DEPARTURE_DELAY"],
        want["null_departure_delay"].as_u64().unwrap(),
        "empty fields are NULL"
    );
    assert_eq!(st.min_time, want["min_time"].as_i64());
    assert_eq!(st.max_time, want["max_time"].as_i64());
    for (day, n) in want["rows_per_day"].as_object().unwrap() {
        assert_eq!(
            st.rows_per_chunk[&day.parse::<i64>().unwrap()],
            n.as_u64().unwrap(),
            "day {day}"
        );
    }
    assert_eq!(
        st.distinct["AIRLINE"].len() as u64,
        want["distinct_airline"].as_u64().unwrap()
    );
    // Zero-padded HHMM times stay strings ("0005" is not 5).
    assert!(st.distinct["SCHEDULED_DEPARTURE"].contains("0005"));
}

#[test]
fn sales_csv_with_us_dates_and_quoted_commas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let file = dataset("sales.csv.gz");
    ok(&basalt(&[
        "load",
        "--data-dir",
        d,
        "--table",
        "sales",
        "--time-column",
        "order_date",
        "--time-format",
        "%m/%d/%Y",
        "--segment-granularity",
        "month",
        file.to_str().unwrap(),
    ]));
    let want = python_stats("sales", &file);
    let st = table_stats(dir.path(), "sales");
    assert_eq!(st.rows, want["rows"].as_u64().unwrap());
    let sum = st.double_sums["sales"];
    let expected = want["sum_sales"].as_f64().unwrap();
    assert!(
        ((sum - expected) / expected).abs() < 1e-9,
        "{sum} vs {expected}"
    );
    assert_eq!(
        st.long_sums["quantity_ordered"],
        want["sum_quantity_ordered"].as_i64().unwrap()
    );
    assert_eq!(st.min_time, want["min_time"].as_i64());
    assert_eq!(st.max_time, want["max_time"].as_i64());
    assert_eq!(
        st.distinct["city"].len() as u64,
        want["distinct_city"].as_u64().unwrap()
    );
    // Quoted fields with commas, counted through the bitmap index with a LIKE predicate.
    let catalog = FileCatalog::open_read_only(dir.path()).unwrap();
    let manifest = basalt_segment::Catalog::snapshot(&catalog);
    let mut with_commas = 0;
    for e in manifest.segments_of("sales") {
        let seg = basalt_segment::Catalog::open_segment(&catalog, e).unwrap();
        let pred = StringPredicate::Like {
            pattern: "%,%".into(),
            case_insensitive: false,
        };
        with_commas += seg
            .filter_strings("address_line1", &pred, 0..seg.num_blocks())
            .unwrap()
            .len();
    }
    assert_eq!(with_commas, want["addresses_with_commas"].as_u64().unwrap());
    // Month segments: 2003-01 .. 2005-05.
    assert_eq!(st.segments, 29);
}

fn write_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

const BAD_NDJSON: &str = r#"{"ts": "2024-01-01T00:00:00Z", "user": "a", "n": 1}
{"ts": "2024-01-01T00:00:01Z", "user": "b", "n": 2
[1, 2, 3]
{"user": "c", "n": 3}
{"ts": "yesterday", "user": "d", "n": 4}
{"ts": "2024-01-01T00:00:05Z", "user": "e", "n": "lots"}
{"ts": "2024-01-01T00:00:06Z", "user": "f", "n": 6}
"#;

#[test]
fn bad_rows_fail_the_load_by_default_and_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let file = write_file(dir.path(), "bad.ndjson", BAD_NDJSON);
    let out = basalt(&[
        "load",
        "--data-dir",
        d.to_str().unwrap(),
        "--table",
        "ev",
        "--time-column",
        "ts",
        &file,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.ndjson:2: malformed"), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    let tables = ok(&basalt(&["tables", "--data-dir", d.to_str().unwrap()]));
    assert!(!tables.contains("ev"), "{tables}");
    assert_eq!(
        std::fs::read_dir(d.join("tables"))
            .unwrap()
            .flatten()
            .flat_map(|t| std::fs::read_dir(t.path()).unwrap())
            .count(),
        0
    );
}

#[test]
fn bad_rows_within_max_errors_are_counted_by_reason_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let file = write_file(dir.path(), "bad.ndjson", BAD_NDJSON);
    let out = ok(&basalt(&[
        "load",
        "--data-dir",
        d.to_str().unwrap(),
        "--table",
        "ev",
        "--time-column",
        "ts",
        "--max-errors",
        "5",
        "--json",
        "--dimensions",
        "user,n:long",
        &file,
    ]));
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["rows_read"], 7);
    assert_eq!(s["rows_stored"], 2);
    assert_eq!(s["rows_rejected"], 5);
    let by = &s["rejected_by_reason"];
    assert_eq!(by["malformed"], 1);
    assert_eq!(by["not_an_object"], 1);
    assert_eq!(by["missing_timestamp"], 1);
    assert_eq!(by["unparsable_timestamp"], 1);
    assert_eq!(by["wrong_type"], 1);
    let first: Vec<String> = s["first_rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        first[0].contains("bad.ndjson:2: malformed: invalid JSON"),
        "{first:?}"
    );
    assert!(
        first[1].contains("bad.ndjson:3: not_an_object"),
        "{first:?}"
    );
    assert!(
        first[2].contains("bad.ndjson:4: missing_timestamp"),
        "{first:?}"
    );
    assert!(
        first.iter().any(
            |f| f.contains("bad.ndjson:5: unparsable_timestamp") && f.contains("\"yesterday\"")
        ),
        "{first:?}"
    );
    assert!(
        first.iter().any(|f| f.contains("bad.ndjson:6: wrong_type")
            && f.contains("column \"n\"")
            && f.contains("\"lots\"")),
        "{first:?}"
    );
    let st = table_stats(&d, "ev");
    assert_eq!(st.long_sums["n"], 7);
}

#[test]
fn later_loads_add_columns_and_reject_type_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let ds = d.to_str().unwrap();
    let f1 = write_file(
        dir.path(),
        "a.csv",
        "ts,city,n\n2024-01-01,Paris,1\n2024-01-02,Oslo,2\n",
    );
    let f2 = write_file(
        dir.path(),
        "b.csv",
        "ts,city,n,extra\n2024-01-03,Rome,3,x\n",
    );
    let f3 = write_file(dir.path(), "c.csv", "ts,city,n\n2024-01-04,Lima,many\n");
    ok(&basalt(&[
        "load",
        "--data-dir",
        ds,
        "--table",
        "t",
        "--time-column",
        "ts",
        &f1,
    ]));
    ok(&basalt(&[
        "load",
        "--data-dir",
        ds,
        "--table",
        "t",
        "--time-column",
        "ts",
        &f2,
    ]));
    let tables = ok(&basalt(&["tables", "--data-dir", ds]));
    assert!(tables.contains("extra:string"), "{tables}");
    let st = table_stats(&d, "t");
    assert_eq!(st.rows, 3);
    assert_eq!(
        st.nulls["extra"], 2,
        "older segments read the new column as NULL"
    );
    let out = basalt(&[
        "load",
        "--data-dir",
        ds,
        "--table",
        "t",
        "--time-column",
        "ts",
        &f3,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("column \"n\"") && err.contains("long"),
        "{err}"
    );
    assert_eq!(table_stats(&d, "t").rows, 3);
}

#[test]
fn replace_swaps_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let ds = d.to_str().unwrap();
    let f1 = write_file(
        dir.path(),
        "a.csv",
        "ts,n\n2024-01-01T01:00:00,1\n2024-01-01T02:00:00,2\n2024-01-02T00:00:00,5\n",
    );
    let f2 = write_file(dir.path(), "b.csv", "ts,n\n2024-01-01T03:00:00,10\n");
    ok(&basalt(&[
        "load",
        "--data-dir",
        ds,
        "--table",
        "t",
        "--time-column",
        "ts",
        &f1,
    ]));
    ok(&basalt(&[
        "load",
        "--data-dir",
        ds,
        "--table",
        "t",
        "--time-column",
        "ts",
        &f2,
    ]));
    assert_eq!(
        table_stats(&d, "t").long_sums["n"],
        18,
        "appending adds a segment"
    );
    ok(&basalt(&[
        "load",
        "--data-dir",
        ds,
        "--table",
        "t",
        "--time-column",
        "ts",
        "--replace",
        &f2,
    ]));
    let st = table_stats(&d, "t");
    assert_eq!(
        st.long_sums["n"], 15,
        "day 1 replaced by the new file, day 2 untouched"
    );
    assert_eq!(st.segments, 2);
    // Replaced files are gone from disk.
    assert_eq!(std::fs::read_dir(d.join("tables/t")).unwrap().count(), 2);
}

#[test]
fn a_second_writer_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = FileCatalog::open(dir.path(), "test holder").unwrap();
    let f = write_file(dir.path(), "a.csv", "ts,n\n2024-01-01,1\n");
    let out = basalt(&[
        "load",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--table",
        "t",
        "--time-column",
        "ts",
        &f,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("locked by another basalt process")
            && err.contains("test holder")
            && err.contains("/v1/tables/"),
        "{err}"
    );
}

#[test]
fn shuffled_input_larger_than_the_memory_budget_loads_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let path = dir.path().join("shuffled.ndjson");
    // 600,000 rows over 3 days, in a scrambled order (a fixed permutation: i * 7919 mod n).
    let n: u64 = 600_000;
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut expected_sum = 0i64;
    for i in 0..n {
        let k = (i * 7919) % n;
        let ts = 1_704_067_200_000 + (k as i64) * 432; // 3 days
        expected_sum += k as i64;
        writeln!(
            f,
            r#"{{"ts": {ts}, "user": "user-{}", "page": "/p/{}/{}", "k": {k}, "pad": "{}"}}"#,
            k % 5000,
            k % 97,
            k,
            "x".repeat(40)
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let size = std::fs::metadata(&path).unwrap().len();
    let out = ok(&basalt(&[
        "load",
        "--data-dir",
        d.to_str().unwrap(),
        "--table",
        "t",
        "--time-column",
        "ts",
        "--json",
        "--max-bytes-in-memory",
        "4M",
        path.to_str().unwrap(),
    ]));
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(s["spilled_runs"].as_u64().unwrap() >= 4, "{s}");
    let rss = s["peak_rss_bytes"].as_u64().unwrap();
    assert!(
        rss * 2 < size,
        "peak RSS {rss} is not well below the file size {size}"
    );
    let st = table_stats(&d, "t");
    assert_eq!(st.rows, n);
    assert_eq!(st.long_sums["k"], expected_sum);
    assert_eq!(st.rows_per_chunk.len(), 3);
    assert_eq!(st.min_time, Some(1_704_067_200_000));
    // Every row's strings belong to its k: "page" (near-unique) outgrew the load's dictionary budget midway,
    // so its early runs carried ids and its later ones strings; "user" kept ids throughout.
    let catalog = FileCatalog::open_read_only(&d).unwrap();
    let mut checked = 0u64;
    for entry in catalog.snapshot().segments_of("t") {
        let seg = catalog.open_segment(entry).unwrap();
        for b in 0..seg.num_blocks() {
            let text = |name: &str| {
                let a = seg.read_block(name, b).unwrap().unwrap();
                let a = arrow_cast::cast(&a, &arrow_schema::DataType::Utf8).unwrap();
                a.as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap().to_string())
                    .collect::<Vec<_>>()
            };
            let (pages, users) = (text("page"), text("user"));
            let k = seg.read_block("k", b).unwrap().unwrap();
            for (i, k) in k.as_primitive::<Int64Type>().values().iter().enumerate() {
                assert_eq!(pages[i], format!("/p/{}/{k}", k % 97));
                assert_eq!(users[i], format!("user-{}", k % 5000));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, n);
    ok(&basalt(&["verify", "--data-dir", d.to_str().unwrap()]));
}

/// Writes `rows` generated events to a Parquet file: the time (in microseconds, or in seconds as a plain
/// integer when `seconds`) missing on every 1000th row, text with NULLs and empty strings, a dictionary-encoded
/// text column, and integer, float, boolean and date columns.
fn write_events_parquet(path: &std::path::Path, rows: usize, seconds: bool) {
    use arrow_array::*;
    use std::sync::Arc;
    let t0 = 1_700_000_000i64; // 2023-11-14T22:13:20Z
    let secs: Vec<Option<i64>> = (0..rows as i64)
        .map(|i| (i % 1000 != 0).then_some(t0 + (i * 37) % 200_000))
        .collect();
    let ts: ArrayRef = if seconds {
        Arc::new(Int64Array::from(secs))
    } else {
        Arc::new(
            TimestampMicrosecondArray::from(
                secs.iter()
                    .map(|s| s.map(|s| s * 1_000_000))
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        )
    };
    let country: ArrayRef = Arc::new(StringArray::from(
        (0..rows)
            .map(|i| match (i % 7, i % 11) {
                (0, _) => Some(String::new()),
                (_, 0) => None,
                _ => Some(format!("c{}", i % 5)),
            })
            .collect::<Vec<_>>(),
    ));
    let device: ArrayRef = Arc::new(
        (0..rows)
            .map(|i| ["ios", "android", "web"][i % 3])
            .collect::<DictionaryArray<arrow_array::types::Int32Type>>(),
    );
    let n: ArrayRef = Arc::new(Int32Array::from(
        (0..rows as i32).map(|i| i % 100).collect::<Vec<_>>(),
    ));
    let price: ArrayRef = Arc::new(Float32Array::from(
        (0..rows).map(|i| (i % 10) as f32 * 0.5).collect::<Vec<_>>(),
    ));
    let flag: ArrayRef = Arc::new(BooleanArray::from(
        (0..rows).map(|i| i % 3 == 0).collect::<Vec<_>>(),
    ));
    let day: ArrayRef = Arc::new(Date32Array::from(
        (0..rows as i32).map(|i| 19_000 + i % 4).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_from_iter([
        ("ts", ts),
        ("country", country),
        ("device", device),
        ("n", n),
        ("price", price),
        ("flag", flag),
        ("day", day),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_loads_whole_batches_as_row_by_row_would() {
    // Timestamps in microseconds convert a batch at a time; the same times as epoch seconds go row by row
    // (a time in seconds is checked per value). Both loads must store the same table, and the numbers below
    // are worked out from the generator, not read from basalt.
    let rows = 20_000usize;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let ds = d.to_str().unwrap();
    let whole = dir.path().join("events.parquet");
    let by_row = dir.path().join("seconds.parquet");
    write_events_parquet(&whole, rows, false);
    write_events_parquet(&by_row, rows, true);
    let load = |table: &str, file: &std::path::Path, extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "load",
            "--data-dir",
            ds,
            "--table",
            table,
            "--time-column",
            "ts",
            "--max-errors",
            "100",
            "--json",
            // Runs spill and merge (an input batch holds 8,192 rows).
            "--max-rows-in-memory",
            "6000",
            // A segment holds at most 2 MiB of rows (a quarter): a day's ~0.5 MiB fits in one.
            "--max-bytes-in-memory",
            "8M",
        ];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        serde_json::from_str(&ok(&basalt(&args))).unwrap()
    };
    let a = load("whole", &whole, &[]);
    let b = load("by_row", &by_row, &["--time-format", "epoch_s"]);
    let kept: Vec<usize> = (0..rows).filter(|i| i % 1000 != 0).collect();
    for s in [&a, &b] {
        assert_eq!(s["rows_read"], rows as u64);
        assert_eq!(s["rows_rejected"], 20);
        assert_eq!(s["rejected_by_reason"]["missing_timestamp"], 20);
        assert!(s["spilled_runs"].as_u64().unwrap() >= 2, "{s}");
    }
    let first = a["first_rejections"].to_string();
    assert!(
        first.contains("events.parquet:1: missing_timestamp: no value in time column \\\"ts\\\""),
        "{first}"
    );
    assert!(
        first.contains("events.parquet:1001: missing_timestamp"),
        "{first}"
    );
    assert!(
        first.contains("events.parquet:9001: missing_timestamp"),
        "{first}"
    );

    let (sa, sb) = (table_stats(&d, "whole"), table_stats(&d, "by_row"));
    assert_eq!(sa.rows, kept.len() as u64);
    // One segment per day: merged stretches of spilled runs count their own rows' bytes, not the buffers
    // they share with the rest of their run.
    for st in [&sa, &sb] {
        assert_eq!(
            st.segments,
            st.rows_per_chunk.len(),
            "{:?}",
            st.rows_per_chunk
        );
    }
    let sum = |f: &dyn Fn(usize) -> i64| kept.iter().map(|i| f(*i)).sum::<i64>();
    assert_eq!(sa.long_sums["n"], sum(&|i| (i % 100) as i64));
    assert_eq!(sa.long_sums["flag"], sum(&|i| i64::from(i % 3 == 0)));
    assert_eq!(
        sa.long_sums["day"],
        sum(&|i| (19_000 + (i % 4) as i64) * 86_400_000)
    );
    let price: f64 = kept.iter().map(|i| (i % 10) as f64 * 0.5).sum();
    assert!((sa.double_sums["price"] - price).abs() < 1e-6);
    let null_countries = kept.iter().filter(|i| *i % 7 == 0 || *i % 11 == 0).count();
    assert_eq!(sa.nulls["country"], null_countries as u64);
    assert_eq!(sa.nulls["ts"], 0);
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        sa.distinct["country"],
        names(&["c0", "c1", "c2", "c3", "c4"])
    );
    assert_eq!(sa.distinct["device"], names(&["android", "ios", "web"]));
    let t0 = 1_700_000_000_000i64;
    let times = || {
        kept.iter()
            .map(|i| t0 + ((*i as i64 * 37) % 200_000) * 1000)
    };
    assert_eq!(sa.min_time, times().min());
    assert_eq!(sa.max_time, times().max());

    assert_eq!(sa.rows, sb.rows);
    assert_eq!(sa.long_sums, sb.long_sums);
    assert_eq!(sa.double_sums, sb.double_sums);
    assert_eq!(sa.nulls, sb.nulls);
    assert_eq!(sa.distinct, sb.distinct);
    assert_eq!(sa.rows_per_chunk, sb.rows_per_chunk);
    assert_eq!((sa.min_time, sa.max_time), (sb.min_time, sb.max_time));
}

/// `--null-values NA,n/a FILE`: the option takes one comma-separated value, so the file name after it stays a
/// file (it used to take any number of values and swallow it). Counts worked out by hand from the four rows.
#[test]
fn null_values_take_one_comma_separated_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nulls.csv");
    std::fs::write(
        &file,
        "ts,city,n\n2026-01-01,Paris,1\n2026-01-01,NA,2\n2026-01-02,n/a,NA\n2026-01-02,Rome,4\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    load_table(data, "t", "ts", &file, &["--null-values", "NA,n/a"]);
    let out = query_csv(
        data,
        "SELECT COUNT(*) AS rows, COUNT(city) AS cities, COUNT(n) AS ns, SUM(n) AS total FROM t",
    );
    assert_eq!(out.trim(), "rows,cities,ns,total\n4,2,3,7");
}
