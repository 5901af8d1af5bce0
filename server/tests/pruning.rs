//! Pruning and index use, proven from the engine's counters rather than timings.
#![allow(clippy::unwrap_used)]

mod common;

use basalt_query::{run_sql, ExecOptions, QueryError};
use basalt_segment::FileCatalog;
use common::*;

fn births() -> (tempfile::TempDir, FileCatalog) {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let catalog = FileCatalog::open_read_only(dir.path()).unwrap();
    (dir, catalog)
}

#[test]
fn time_filters_prune_segments_and_string_filters_use_the_bitmap_index() {
    let (_dir, catalog) = births();
    let opts = ExecOptions::default();
    let all = run_sql(&catalog, "SELECT COUNT(*) FROM births", &opts).unwrap();
    assert_eq!(all.stats.segments_total, 44);
    assert_eq!(all.stats.segments_pruned, 0);
    assert_eq!(all.stats.rows_scanned, 75_691);

    // Births has one segment per year (daily chunks, data on Jan 1): 1965..1969 remain.
    let r = run_sql(
        &catalog,
        "SELECT COUNT(*) FROM births WHERE __time < '1970-01-01'",
        &opts,
    )
    .unwrap();
    assert_eq!(r.stats.segments_pruned, 39);
    assert_eq!(r.stats.segments_scanned, 5);
    assert_eq!(r.stats.rows_scanned, 7_724);

    // A string filter is answered by the index: only the rows it selects are visited, no residual runs.
    let r = run_sql(
        &catalog,
        "SELECT COUNT(*) FROM births WHERE state = 'CA' AND gender <> 'boy'",
        &opts,
    )
    .unwrap();
    assert!(r.stats.index_filter.as_deref().unwrap().contains("state"));
    assert!(!r.stats.residual_filter);
    let n = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(
        r.batch.column(0),
    )
    .value(0);
    assert_eq!(r.stats.rows_from_index, n as u64);

    // A numeric filter is a residual, evaluated by vectorized kernels.
    let r = run_sql(
        &catalog,
        "SELECT COUNT(*) FROM births WHERE num > 1000",
        &opts,
    )
    .unwrap();
    assert!(r.stats.index_filter.is_none());
    assert!(r.stats.residual_filter);

    // Segments whose num statistics cannot match are pruned: per DuckDB over the raw file, 155 rows in 28 of the
    // 44 years have num >= 20000, and no row has num > 37296.
    let r = run_sql(
        &catalog,
        "SELECT COUNT(*) FROM births WHERE num >= 20000",
        &opts,
    )
    .unwrap();
    assert_eq!(r.stats.segments_scanned, 28);
    assert_eq!(r.stats.segments_pruned, 16);
    assert!(
        r.stats
            .pruned
            .iter()
            .any(|(_, why)| why.starts_with("num ")),
        "{:?}",
        r.stats.pruned
    );
    let n = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(
        r.batch.column(0),
    )
    .value(0);
    assert_eq!(n, 155);
    let r = run_sql(
        &catalog,
        "SELECT COUNT(*) FROM births WHERE 37296 < num",
        &opts,
    )
    .unwrap();
    assert_eq!((r.stats.segments_scanned, r.stats.segments_pruned), (0, 44));

    // Bytes scanned: one 8-byte column of 75,691 rows (buffers rounded up to 64 bytes per block).
    let r = run_sql(&catalog, "SELECT SUM(num) FROM births", &opts).unwrap();
    let b = r.stats.bytes_scanned;
    assert!((75_691 * 8..=75_691 * 8 + 44 * 2 * 64).contains(&b), "{b}");

    // EXPLAIN says the same.
    let r = run_sql(&catalog, "EXPLAIN SELECT COUNT(*) FROM births WHERE state IN ('CA', 'NY') AND __time >= '2000-01-01'", &opts).unwrap();
    let text: Vec<String> = (0..r.batch.num_rows())
        .map(|i| {
            arrow_array::cast::AsArray::as_string::<i32>(r.batch.column(0))
                .value(i)
                .to_string()
        })
        .collect();
    let text = text.join("\n");
    assert!(text.contains("35 pruned"), "{text}");
    assert!(text.contains("bitmap index filter: state In"), "{text}");

    // The early LIMIT on a sorted group key shows, with the rows it spared; HAVING turns it off.
    let explain = |sql: &str| {
        let r = run_sql(&catalog, sql, &opts).unwrap();
        let col = arrow_array::cast::AsArray::as_string::<i32>(r.batch.column(0)).clone();
        col.iter().flatten().collect::<Vec<_>>().join("\n")
    };
    let text = explain("EXPLAIN ANALYZE SELECT name, SUM(num) FROM births GROUP BY name ORDER BY name DESC LIMIT 5");
    let line = text
        .lines()
        .find(|l| l.contains("early limit"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("first 5 keys of \"name\" (DESC)"), "{line}");
    let dropped: u64 = line
        .split(';')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped > 60_000, "{line}");
    let text = explain("EXPLAIN SELECT name, SUM(num) FROM births GROUP BY name HAVING SUM(num) > 1 ORDER BY name LIMIT 5");
    assert!(!text.contains("early limit"), "{text}");
}

#[test]
fn a_timeout_and_a_group_limit_end_the_query_with_a_clear_error() {
    let (_dir, catalog) = births();
    let opts = ExecOptions {
        max_groups: 100,
        ..Default::default()
    };
    let err = run_sql(
        &catalog,
        "SELECT name, COUNT(*) FROM births GROUP BY name",
        &opts,
    )
    .unwrap_err();
    assert!(
        matches!(err, QueryError::TooManyGroups { limit: 100, .. }),
        "{err}"
    );
    let opts = ExecOptions {
        deadline: Some(std::time::Instant::now()),
        timeout_ms: 1,
        ..Default::default()
    };
    let err = run_sql(
        &catalog,
        "SELECT name, COUNT(*) FROM births GROUP BY name",
        &opts,
    )
    .unwrap_err();
    assert!(matches!(err, QueryError::Timeout(1)), "{err}");
    // The catalog keeps serving afterwards.
    assert!(run_sql(
        &catalog,
        "SELECT COUNT(*) FROM births",
        &ExecOptions::default()
    )
    .is_ok());
}

#[test]
fn the_memory_limit_ends_a_query_that_outgrows_it_with_what_it_was_building() {
    let (_dir, catalog) = births();
    let sql =
        "SELECT name, COUNT(DISTINCT state), PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY num) \
               FROM births GROUP BY name";
    // Unlimited: the answer, and a peak that reflects the groups (thousands of names, each with a set of
    // states and a list of counts).
    let unlimited = ExecOptions {
        max_memory_bytes: 0,
        ..Default::default()
    };
    let ok = run_sql(&catalog, sql, &unlimited).unwrap();
    let peak = ok.stats.peak_memory_bytes;
    assert!(peak > 1_000_000, "peak {peak}");
    // A limit below that peak ends the query with the limit and the part that outgrew it named.
    let limit = (peak / 4) as usize;
    let opts = ExecOptions {
        max_memory_bytes: limit,
        ..Default::default()
    };
    let err = run_sql(&catalog, sql, &opts).unwrap_err();
    match &err {
        QueryError::MemoryLimit {
            limit: l,
            needed,
            what,
        } => {
            assert_eq!(*l, limit);
            assert!(*needed > limit);
            assert!(what.contains("groups"), "{what}");
        }
        other => panic!("expected a memory limit error, got {other}"),
    }
    assert!(err.to_string().contains("query_max_memory_bytes"), "{err}");
    // A small query under the same limit runs, and its peak is far below the grouping query's.
    let small = run_sql(&catalog, "SELECT COUNT(*), SUM(num) FROM births", &opts).unwrap();
    assert!(small.stats.peak_memory_bytes < peak / 100);
    // Rows buffered for a plain SELECT count too, and so does a join's build side.
    let rows = run_sql(
        &catalog,
        "SELECT name, num FROM births",
        &ExecOptions {
            max_memory_bytes: 100_000,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&rows, QueryError::MemoryLimit { what, .. } if what.contains("rows")),
        "{rows}"
    );
    // The join matches each birth row with the 1965 'J' names of its state: a million row pairs, from a build
    // side of 157 rows.
    let join = "SELECT COUNT(*) FROM births b JOIN \
                (SELECT state, name FROM births WHERE __time < '1966-01-01' AND name LIKE 'J%') t \
                ON b.state = t.state";
    let pairs = run_sql(&catalog, join, &unlimited).unwrap();
    assert!(
        pairs.stats.peak_memory_bytes > 10_000_000,
        "{:?}",
        pairs.stats
    );
    let join = run_sql(
        &catalog,
        join,
        &ExecOptions {
            max_memory_bytes: 4_000_000,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&join, QueryError::MemoryLimit { what, .. } if what.contains("join")),
        "{join}"
    );
}

#[test]
fn a_damaged_segment_fails_the_query_with_the_file_and_region_named() {
    let (dir, catalog) = births();
    // Flip a byte inside the `num` values of one segment file (the catalog opens segments lazily).
    let seg_dir = dir.path().join("tables/births");
    let file = std::fs::read_dir(&seg_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .min()
        .unwrap();
    let seg = basalt_segment::Segment::open(&file).unwrap();
    let region = seg
        .footer()
        .columns
        .iter()
        .find(|c| c.name == "num")
        .unwrap()
        .values;
    drop(seg);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[(region.offset + region.len / 2) as usize] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let err = run_sql(
        &catalog,
        "SELECT SUM(num) FROM births",
        &ExecOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("damaged") && msg.contains("\"num\"") && msg.contains("values"),
        "{msg}"
    );
    // Queries that do not touch the damaged region still answer.
    assert!(run_sql(
        &catalog,
        "SELECT COUNT(*) FROM births WHERE state = 'CA'",
        &ExecOptions::default()
    )
    .is_ok());
    let out = basalt(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

/// EXPLAIN prints the plan tree of any query (WITH, joins, UNION, subqueries as values) without reading a row of
/// the relations it plans; EXPLAIN ANALYZE runs it and shows what each scan touched.
#[test]
fn explain_prints_the_plan_tree_of_nested_queries_without_reading_rows() {
    let (_dir, catalog) = births();
    let opts = ExecOptions::default();
    let explain = |sql: &str| {
        let r = run_sql(&catalog, sql, &opts).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let col = arrow_array::cast::AsArray::as_string::<i32>(r.batch.column(0)).clone();
        let text = col.iter().flatten().collect::<Vec<_>>().join("\n");
        (text, r.stats)
    };
    let sql =
        "WITH ca AS (SELECT name, SUM(num) AS n FROM births WHERE state = 'CA' GROUP BY name) \
               SELECT b.state, SUM(ca.n) FROM births b JOIN ca ON b.name = ca.name \
               WHERE b.gender = 'girl' GROUP BY b.state \
               UNION ALL SELECT 'total', SUM(num) FROM births WHERE gender IN (SELECT 'boy')";
    let (text, stats) = explain(&format!("EXPLAIN {sql}"));
    // The IN subquery's values shape the plan and are computed (its one row); the relations are planned, not
    // read.
    assert_eq!(stats.rows_scanned, 1, "{text}");
    let want = [
        "Union: 2 branches",
        "  Relation WITH ca: computed first",
        "    Scan table \"births\"",
        "      segments: 44 total, 0 pruned, 44 to scan",
        "      bitmap index filter: state Eq(\"CA\")",
        "      residual filter (vectorized): none",
        "      Aggregate: 1 group key(s), 1 aggregate(s)",
        "  Scan the joined rows",
        "    in memory, computed first",
        "    bitmap index filter: b.gender Eq(\"girl\")",
        "    residual filter (vectorized): none",
        "    Aggregate: 1 group key(s), 1 aggregate(s)",
        "    reads:",
        "      Join (broadcast hash): 2 relations",
        "        Scan table \"births\"",
        "          segments: 44 total, 0 pruned, 44 to scan",
        "          bitmap index filter: gender Eq(\"girl\")",
        "          residual filter (vectorized): none",
        "        Scan table \"ca\"",
        "          in memory, computed first",
        "          bitmap index filter: none",
        "          residual filter (vectorized): none",
        "  Scan table \"births\"",
        "    segments: 44 total, 0 pruned, 44 to scan",
        "    bitmap index filter: gender In([\"boy\"])",
        "    residual filter (vectorized): none",
        "    Aggregate: 0 group key(s), 1 aggregate(s)",
        "    reads:",
        "      Subquery as values: computed first, inlined as literals",
        "        Scan no table (one row)",
        "          segments: 1 total, 0 pruned, 1 to scan",
        "          bitmap index filter: none",
        "          residual filter (vectorized): none",
        "          collected: rows (1 shares)",
    ];
    assert_eq!(text, want.join("\n"));
    assert!(text.contains("bitmap index filter: state"), "{text}");
    assert!(text.contains("to scan"), "{text}");
    assert!(!text.contains("rows scanned"), "{text}");

    // ANALYZE runs every part: rows scanned per scan, the joined rows, how shares collected rows.
    let (text, stats) = explain(&format!("EXPLAIN ANALYZE {sql}"));
    assert!(stats.rows_scanned > 75_691, "{text}");
    assert!(text.contains("rows scanned"), "{text}");
    assert!(text.contains("relations into"), "{text}");
    assert!(text.contains("collected: grouped by"), "{text}");
    assert!(text.contains("Memory: peak"), "{text}");

    // EXPLAIN of a plain query reads nothing but still prunes by time.
    let (text, stats) = explain("EXPLAIN SELECT COUNT(*) FROM births WHERE __time >= '2000-01-01'");
    assert_eq!(
        (stats.rows_scanned, stats.segments_scanned),
        (0, 0),
        "{text}"
    );
    assert!(text.contains("44 total, 35 pruned, 9 to scan"), "{text}");
}
