//! The engine's operators through SQL over one committed table of 4M generated rows (4 day-segments of 1M):
//! a bitmap-index filter, a vectorized numeric filter with a sum, group-by on dictionary codes and on a
//! high-cardinality string, time bucketing, top-N, and an exact percentile. Throughput is input rows per second.
#![allow(clippy::unwrap_used)]

use basalt_benches::{events_batch, events_schema};
use basalt_query::{run_sql, ExecOptions};
use basalt_segment::{
    Catalog, Commit, FileCatalog, Interval, SegmentEntry, SegmentWriter, WriteOptions,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const ROWS_PER_DAY: usize = 1 << 20;
const DAYS: i64 = 4;

fn table() -> (tempfile::TempDir, FileCatalog) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "bench").unwrap();
    let schema = events_schema();
    let batch = events_batch(ROWS_PER_DAY);
    let mut add = Vec::new();
    for day in 0..DAYS {
        // The same rows shifted by whole days: one segment per day chunk.
        let shifted = {
            use arrow_array::cast::AsArray;
            use arrow_array::types::Int64Type;
            let ts = batch.column(0).as_primitive::<Int64Type>();
            let moved: arrow_array::Int64Array =
                ts.iter().map(|t| t.map(|t| t + day * 86_400_000)).collect();
            let mut cols = batch.columns().to_vec();
            cols[0] = std::sync::Arc::new(moved);
            arrow_array::RecordBatch::try_new(batch.schema(), cols).unwrap()
        };
        let interval = Interval::new(day * 86_400_000, (day + 1) * 86_400_000);
        let (id, path) = catalog.new_segment_path("events", interval).unwrap();
        let bytes = SegmentWriter::new(WriteOptions::default())
            .write(&path, &schema, interval, &shifted)
            .unwrap();
        add.push(SegmentEntry {
            id,
            table: "events".into(),
            interval,
            num_rows: ROWS_PER_DAY as u64,
            bytes,
            version: 0,
            crc32c: None,
        });
    }
    catalog
        .commit(Commit {
            tables: vec![schema],
            add,
            ..Default::default()
        })
        .unwrap();
    (dir, catalog)
}

fn operators(c: &mut Criterion) {
    let (_dir, catalog) = table();
    let opts = ExecOptions::default();
    let mut g = c.benchmark_group("query");
    g.throughput(Throughput::Elements(ROWS_PER_DAY as u64 * DAYS as u64));
    g.sample_size(10);
    for (name, sql) in [
        ("count_star", "SELECT COUNT(*) FROM events"),
        (
            "bitmap_filter",
            "SELECT COUNT(*) FROM events WHERE country IN ('C000', 'C001', 'C017')",
        ),
        (
            "numeric_filter_sum",
            "SELECT SUM(bytes) FROM events WHERE latency > 700",
        ),
        (
            "group_by_dictionary",
            "SELECT country, COUNT(*), SUM(bytes) FROM events GROUP BY country",
        ),
        (
            "group_by_high_cardinality",
            "SELECT path, COUNT(*) FROM events GROUP BY path",
        ),
        (
            "time_bucket",
            "SELECT DATE_TRUNC('hour', ts), AVG(latency) FROM events GROUP BY 1 ORDER BY 1",
        ),
        (
            "top_n",
            "SELECT path, SUM(bytes) AS b FROM events GROUP BY path ORDER BY b DESC LIMIT 10",
        ),
        (
            "percentile",
            "SELECT PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY latency) FROM events",
        ),
        (
            "approx_distinct",
            "SELECT APPROX_COUNT_DISTINCT(path) FROM events",
        ),
    ] {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| run_sql(&catalog, sql, &opts).unwrap());
        });
    }
    g.finish();
}

criterion_group!(benches, operators);
criterion_main!(benches);
