//! The result cache: a second query over the same segments answers from kept partials, equal to an uncached
//! run; a moving time bound that covers whole segments keeps hitting; the segment at the window's edge, a
//! changed filter and a changed GROUP BY are scanned again.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use basalt_query::{run_sql, ExecOptions, ResultCache};
use basalt_segment::{ColumnRole, ColumnType, FileCatalog, Interval};
use common::col;

const DAY: i64 = 86_400_000;

#[test]
fn cached_partials_answer_like_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let schema = common::table(
        "t",
        vec![
            col("ts", ColumnType::Timestamp, ColumnRole::Time),
            col("k", ColumnType::String, ColumnRole::Dimension),
            col("x", ColumnType::Double, ColumnRole::Metric),
        ],
    );
    // Two day segments of 5,000 rows, a row every 17.28 s; keys k0..k6, x with fractions (float sums).
    for day in 0..2i64 {
        let rows = 5_000i64;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(
                (0..rows)
                    .map(|i| day * DAY + i * (DAY / rows))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                (0..rows)
                    .map(|i| format!("k{}", (i + day) % 7))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                (0..rows).map(|i| (i % 13) as f64 * 0.1).collect::<Vec<_>>(),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema.arrow_schema()), cols).unwrap();
        common::commit_segment(
            &catalog,
            &schema,
            Interval::new(day * DAY, (day + 1) * DAY),
            &batch,
            1000,
        );
    }
    let cache = Arc::new(ResultCache::new(64 << 20));
    let cached = ExecOptions {
        cache: Some(cache.clone()),
        ..Default::default()
    };
    let plain = ExecOptions::default();
    let q = "SELECT k, COUNT(*), SUM(x) FROM t GROUP BY k ORDER BY k";
    let first = run_sql(&catalog, q, &cached).unwrap();
    assert_eq!((first.stats.cache_hits, first.stats.cache_misses), (0, 2));
    let second = run_sql(&catalog, q, &cached).unwrap();
    assert_eq!((second.stats.cache_hits, second.stats.cache_misses), (2, 0));
    assert_eq!(second.stats.rows_scanned, 0, "answered from the cache");
    assert_eq!(second.batch, run_sql(&catalog, q, &plain).unwrap().batch);
    assert_eq!(second.batch, first.batch);
    let counts = second
        .batch
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(counts.iter().map(|c| c.unwrap()).sum::<i64>(), 10_000);
    assert_eq!(cache.stats().hits, 2);

    // ORDER BY, LIMIT and HAVING apply after the merge: the same entries serve them.
    let top = "SELECT k, SUM(x) FROM t GROUP BY k HAVING COUNT(*) > 1000 ORDER BY 2 DESC LIMIT 3";
    let r = run_sql(&catalog, top, &cached).unwrap();
    assert_eq!(
        r.stats.cache_hits, 0,
        "SUM(x) alone is another aggregate list"
    );
    let r2 = run_sql(&catalog, top, &cached).unwrap();
    assert_eq!(r2.stats.cache_hits, 2);
    assert_eq!(r2.batch, run_sql(&catalog, top, &plain).unwrap().batch);

    // A window that moves but covers both days whole keeps hitting ("the last N days" as now() advances).
    let window = |from: &str| {
        format!("SELECT k, COUNT(*), SUM(x) FROM t WHERE ts >= '{from}' GROUP BY k ORDER BY k")
    };
    let w = run_sql(&catalog, &window("1969-12-30 00:00:00"), &cached).unwrap();
    assert_eq!(
        (w.stats.cache_hits, w.stats.cache_misses),
        (2, 0),
        "the bound holds for every row"
    );
    assert_eq!(w.batch, first.batch);
    // An edge inside day 1: day 0 is pruned, day 1 scanned again for each new edge, and right.
    for from in ["1970-01-02 06:00:00", "1970-01-02 12:00:00"] {
        let sql = window(from);
        let r = run_sql(&catalog, &sql, &cached).unwrap();
        assert_eq!((r.stats.cache_hits, r.stats.cache_misses), (0, 1), "{sql}");
        assert_eq!(
            r.batch,
            run_sql(&catalog, &sql, &plain).unwrap().batch,
            "{sql}"
        );
        let again = run_sql(&catalog, &sql, &cached).unwrap();
        assert_eq!(
            (again.stats.cache_hits, again.stats.cache_misses),
            (1, 0),
            "{sql}"
        );
        assert_eq!(again.batch, r.batch, "{sql}");
    }
    // A filter on another column is part of the key.
    let f = "SELECT k, COUNT(*), SUM(x) FROM t WHERE x > 0.5 GROUP BY k ORDER BY k";
    let r = run_sql(&catalog, f, &cached).unwrap();
    assert_eq!((r.stats.cache_hits, r.stats.cache_misses), (0, 2));
    assert_eq!(r.batch, run_sql(&catalog, f, &plain).unwrap().batch);

    // EXPLAIN counts what is cached without counting a hit; EXPLAIN ANALYZE reports hits and misses.
    let before = cache.stats();
    let e = run_sql(&catalog, &format!("EXPLAIN {q}"), &cached).unwrap();
    let text = format!("{:?}", e.batch);
    assert!(text.contains("result cache: 2 segments cached"), "{text}");
    assert_eq!(cache.stats().hits, before.hits);
    let e = run_sql(&catalog, &format!("EXPLAIN ANALYZE {q}"), &cached).unwrap();
    let text = format!("{:?}", e.batch);
    assert!(
        text.contains("result cache: 2 segments answered from it, 0 scanned"),
        "{text}"
    );

    // Rows without aggregation are never cached.
    let rows = run_sql(&catalog, "SELECT k FROM t LIMIT 3", &cached).unwrap();
    assert_eq!((rows.stats.cache_hits, rows.stats.cache_misses), (0, 0));
}

#[test]
fn a_tiny_cache_keeps_nothing_too_large_and_stays_right() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let schema = common::table(
        "t",
        vec![
            col("ts", ColumnType::Timestamp, ColumnRole::Time),
            col("n", ColumnType::Long, ColumnRole::Metric),
        ],
    );
    let rows = 20_000i64;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((0..rows).collect::<Vec<_>>())),
        Arc::new(Int64Array::from((0..rows).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema.arrow_schema()), cols).unwrap();
    common::commit_segment(&catalog, &schema, Interval::new(0, DAY), &batch, 4096);
    let cache = Arc::new(ResultCache::new(1024));
    let opts = ExecOptions {
        cache: Some(cache.clone()),
        ..Default::default()
    };
    // 20,000 groups: far past a quarter of 1 KiB.
    let q = "SELECT n, COUNT(*) FROM t GROUP BY n ORDER BY 2 DESC, 1 LIMIT 2";
    for _ in 0..2 {
        let r = run_sql(&catalog, q, &opts).unwrap();
        assert_eq!((r.stats.cache_hits, r.stats.cache_misses), (0, 1));
        assert_eq!(r.batch.num_rows(), 2);
    }
    assert_eq!(cache.stats().entries, 0);
}
