//! Approximate aggregates, checked against what they approximate: the rank of APPROX_QUANTILE's answer is near
//! the asked fraction (counted by a second query over the 75,691 rows), and exact where few distinct values
//! allow it; APPROX_COUNT_DISTINCT is near the exact distinct count. The totals are DuckDB's over the raw file: 75,691 rows, 6,656 distinct values of num.
#![allow(clippy::unwrap_used)]

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use basalt_query::{run_sql, ExecOptions};
use basalt_segment::FileCatalog;
use common::load_births;

fn one_f64(catalog: &FileCatalog, sql: &str) -> f64 {
    let r = run_sql(catalog, sql, &ExecOptions::default()).unwrap();
    r.batch.column(0).as_primitive::<Float64Type>().value(0)
}

fn one_i64(catalog: &FileCatalog, sql: &str) -> i64 {
    let r = run_sql(catalog, sql, &ExecOptions::default()).unwrap();
    r.batch.column(0).as_primitive::<Int64Type>().value(0)
}

#[test]
fn approximate_quantiles_land_near_the_asked_rank() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let catalog = FileCatalog::open_read_only(dir.path()).unwrap();
    let total = 75_691.0;
    // num's 6,656 distinct values stay exact runs (up to 8,192); the second expression's 45,780 (DuckDB) go
    // through the t-digest.
    for (expr, distinct) in [
        ("num", 6_656),
        ("num * 100 + EXTRACT(YEAR FROM ds)", 45_780),
    ] {
        let n = one_i64(
            &catalog,
            &format!("SELECT COUNT(DISTINCT {expr}) FROM births"),
        );
        assert_eq!(n, distinct, "{expr}");
        let exact_runs = n <= basalt_query::APPROX_QUANTILE_EXACT_VALUES as i64;
        for q in [0.1, 0.5, 0.9, 0.99] {
            for f in ["APPROX_QUANTILE", "APPROX_PERCENTILE_CONT"] {
                let f = format!("{f}({expr}, {q})");
                let v = one_f64(&catalog, &format!("SELECT {f} FROM births"));
                let below = one_i64(
                    &catalog,
                    &format!("SELECT COUNT(*) FROM births WHERE {expr} < {v}"),
                ) as f64;
                let at_or_below = one_i64(
                    &catalog,
                    &format!("SELECT COUNT(*) FROM births WHERE {expr} <= {v}"),
                ) as f64;
                // The answer's rank range must come within 1% of q.
                let (lo, hi) = (below / total, at_or_below / total);
                assert!(
                    lo - 0.01 <= q && q <= hi + 0.01,
                    "{f} = {v}: rank {lo:.4}..{hi:.4}, asked {q}"
                );
                if exact_runs {
                    let cont = one_f64(
                        &catalog,
                        &format!(
                            "SELECT PERCENTILE_CONT({q}) WITHIN GROUP (ORDER BY {expr}) FROM births"
                        ),
                    );
                    assert_eq!(v, cont, "{f} over few distinct values is exact");
                }
            }
        }
    }
}

#[test]
fn approximate_distinct_counts_are_close() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let catalog = FileCatalog::open_read_only(dir.path()).unwrap();
    // num has thousands of distinct values: the sketch estimates (2^12 registers: ~1.6% standard error).
    let exact = one_i64(&catalog, "SELECT COUNT(DISTINCT num) FROM births") as f64;
    let approx = one_i64(&catalog, "SELECT APPROX_COUNT_DISTINCT(num) FROM births") as f64;
    assert!(exact > 1000.0);
    assert!(
        (approx - exact).abs() / exact < 0.05,
        "approx {approx}, exact {exact}"
    );
}
