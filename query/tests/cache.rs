//! The result cache: a second query over the same segments answers from kept partials, with the answer computed
//! here by hand and equal (bit for bit) to an uncached run; a moving time bound that covers whole segments keeps
//! hitting; the segment at the window's edge, a changed filter and a changed aggregate list are scanned again.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use basalt_query::{run_sql, ExecOptions, ResultCache};
use basalt_segment::{ColumnRole, ColumnType, FileCatalog, Interval};
use common::col;

const DAY: i64 = 86_400_000;
const ROWS_PER_DAY: i64 = 5_000;

/// The rows of day `day`: a row every 17.28 s, keys k0..k6, x with fractions (float sums).
fn day_rows(day: i64) -> Vec<(i64, String, f64)> {
    (0..ROWS_PER_DAY)
        .map(|i| {
            let ts = day * DAY + i * (DAY / ROWS_PER_DAY);
            (ts, format!("k{}", (i + day) % 7), (i % 13) as f64 * 0.1)
        })
        .collect()
}

/// `k, COUNT(*), SUM(x) ... GROUP BY k ORDER BY k` over the rows `keep` selects, computed here by hand.
fn reference(keep: impl Fn(&(i64, String, f64)) -> bool) -> Vec<(String, i64, f64)> {
    let mut groups = std::collections::BTreeMap::<String, (i64, f64)>::new();
    for r in (0..2).flat_map(day_rows).filter(|r| keep(r)) {
        let g = groups.entry(r.1.clone()).or_default();
        g.0 += 1;
        g.1 += r.2;
    }
    groups.into_iter().map(|(k, (n, s))| (k, n, s)).collect()
}

/// Asserts that `batch` (k, count, sum) holds `want` (sums to 1e-9: the engine adds in another order).
fn assert_groups(batch: &RecordBatch, want: &[(String, i64, f64)], sql: &str) {
    let k = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let n = batch
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let x = batch
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(batch.num_rows(), want.len(), "{sql}");
    for (i, (wk, wn, wx)) in want.iter().enumerate() {
        assert_eq!((k.value(i), n.value(i)), (wk.as_str(), *wn), "{sql}");
        assert!(
            (x.value(i) - wx).abs() < 1e-9,
            "{sql}: {} vs {wx}",
            x.value(i)
        );
    }
}

/// Options with a fresh cache of `capacity` bytes.
fn cached_options(capacity: u64) -> (Arc<ResultCache>, ExecOptions) {
    let cache = Arc::new(ResultCache::new(capacity));
    let opts = ExecOptions {
        cache: Some(cache.clone()),
        ..Default::default()
    };
    (cache, opts)
}

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
    for day in 0..2i64 {
        let rows = day_rows(day);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema.arrow_schema()), cols).unwrap();
        let interval = Interval::new(day * DAY, (day + 1) * DAY);
        common::commit_segment(&catalog, &schema, interval, &batch, 1000);
    }
    let (cache, cached) = cached_options(64 << 20);
    let plain = ExecOptions::default();
    let q = "SELECT k, COUNT(*), SUM(x) FROM t GROUP BY k ORDER BY k";
    let first = run_sql(&catalog, q, &cached).unwrap();
    assert_eq!((first.stats.cache_hits, first.stats.cache_misses), (0, 2));
    assert_groups(&first.batch, &reference(|_| true), q);
    let second = run_sql(&catalog, q, &cached).unwrap();
    assert_eq!((second.stats.cache_hits, second.stats.cache_misses), (2, 0));
    assert_eq!(second.stats.rows_scanned, 0, "answered from the cache");
    assert_groups(&second.batch, &reference(|_| true), q);
    // The merge adds cached partials in the same order as scanned ones: not even the last float bit moves.
    assert_eq!(second.batch, run_sql(&catalog, q, &plain).unwrap().batch);
    assert_eq!(cache.stats().hits, 2);

    // ORDER BY, LIMIT and HAVING apply after the merge: the same entries serve them.
    let top = "SELECT k, COUNT(*), SUM(x) FROM t GROUP BY k HAVING COUNT(*) > 1000 ORDER BY 3 DESC LIMIT 3";
    let r = run_sql(&catalog, top, &cached).unwrap();
    assert_eq!((r.stats.cache_hits, r.stats.cache_misses), (2, 0), "{top}");
    let mut want = reference(|_| true);
    want.sort_by(|a, b| b.2.total_cmp(&a.2));
    want.truncate(3);
    assert_groups(&r.batch, &want, top);

    // A window that moves but covers both days whole keeps hitting ("the last N days" as now() advances).
    let window = |from: &str| {
        format!("SELECT k, COUNT(*), SUM(x) FROM t WHERE ts >= '{from}' GROUP BY k ORDER BY k")
    };
    for from in ["1969-12-30 00:00:00", "1969-12-31 12:00:00"] {
        let sql = window(from);
        let w = run_sql(&catalog, &sql, &cached).unwrap();
        assert_eq!((w.stats.cache_hits, w.stats.cache_misses), (2, 0), "{sql}");
        assert_groups(&w.batch, &reference(|_| true), &sql);
    }
    // An edge inside day 1: day 0 is pruned, day 1 scanned again for each new edge, and right.
    for (from, edge) in [
        ("1970-01-02 06:00:00", DAY + DAY / 4),
        ("1970-01-02 12:00:00", DAY + DAY / 2),
    ] {
        let sql = window(from);
        let want = reference(|row| row.0 >= edge);
        let r = run_sql(&catalog, &sql, &cached).unwrap();
        assert_eq!((r.stats.cache_hits, r.stats.cache_misses), (0, 1), "{sql}");
        assert_groups(&r.batch, &want, &sql);
        let again = run_sql(&catalog, &sql, &cached).unwrap();
        assert_eq!(
            (again.stats.cache_hits, again.stats.cache_misses),
            (1, 0),
            "{sql}"
        );
        assert_groups(&again.batch, &want, &sql);
    }
    // A filter on another column, and another aggregate list, are part of the key.
    let f = "SELECT k, COUNT(*), SUM(x) FROM t WHERE x > 0.5 GROUP BY k ORDER BY k";
    let r = run_sql(&catalog, f, &cached).unwrap();
    assert_eq!((r.stats.cache_hits, r.stats.cache_misses), (0, 2));
    assert_groups(&r.batch, &reference(|row| row.2 > 0.5), f);
    let other = "SELECT k, COUNT(*), MAX(x) FROM t GROUP BY k ORDER BY k";
    let r = run_sql(&catalog, other, &cached).unwrap();
    assert_eq!((r.stats.cache_hits, r.stats.cache_misses), (0, 2));

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
    let (cache, opts) = cached_options(1024);
    // 20,000 groups: far past a quarter of 1 KiB.
    let q = "SELECT n, COUNT(*) FROM t GROUP BY n ORDER BY 2 DESC, 1 LIMIT 2";
    for _ in 0..2 {
        let r = run_sql(&catalog, q, &opts).unwrap();
        assert_eq!((r.stats.cache_hits, r.stats.cache_misses), (0, 1));
        // Every n once: the two smallest n tie at one row each.
        let n = r
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(n.values().to_vec(), vec![0, 1]);
    }
    assert_eq!(cache.stats().entries, 0);
}
