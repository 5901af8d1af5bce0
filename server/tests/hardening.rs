#![allow(clippy::unwrap_used)]
//! What a hostile client tries against `basalt serve` (issue: hardening): each attack is made through a real
//! client (HTTP with ureq, psql, psycopg, the Kafka ingest API) and followed by a query that must still be
//! answered. Expected counts are DuckDB's over the raw births file (75,691 rows) or worked out by hand.

mod common;

use basalt_query::limits::{MAX_EXPR_DEPTH, PARSER_RECURSION_LIMIT, STACK_BYTES};
use basalt_query::{ExecOptions, QueryError};
use common::*;

const BIRTHS: i64 = 75_691;

/// `n` copies of `term` joined by `op`.
fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

fn one_int(catalog: &basalt_segment::FileCatalog, sql: &str, describe_only: bool) -> Option<i64> {
    use arrow_array::cast::AsArray;
    let opts = ExecOptions {
        describe_only,
        ..Default::default()
    };
    let r = basalt_query::run_sql(catalog, sql, &opts)
        .unwrap_or_else(|e| panic!("{e}\n{}", &sql[..sql.len().min(200)]));
    if describe_only || r.batch.num_rows() == 0 {
        return None;
    }
    let col = arrow_cast::cast(r.batch.column(0), &arrow_schema::DataType::Int64).unwrap();
    Some(col.as_primitive::<arrow_array::types::Int64Type>().value(0))
}

/// Statements at every limit run through every pass (parse, bind, fold, plan, filter split, evaluation on the
/// engine's worker threads, EXPLAIN, Describe) on a thread with half the stack the server gives its threads;
/// one level more is refused as too complex.
#[test]
fn limits_fit_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let catalog = basalt_segment::FileCatalog::open_read_only(dir.path()).unwrap();
    // Chains a few levels short of the limit (a comparison, a function call and a product take the rest).
    let terms = MAX_EXPR_DEPTH - 4;
    let deep_filter = format!(
        "SELECT COUNT(*) FROM births WHERE {} = num",
        chain("num", " + 0 * ", terms)
    );
    let nested = PARSER_RECURSION_LIMIT - 4;
    let cases: Vec<(String, Option<i64>)> = vec![
        (deep_filter.clone(), Some(BIRTHS)),
        (format!("EXPLAIN {deep_filter}"), None),
        (format!("SELECT {}", chain("1", " + ", terms)), Some(terms as i64)),
        (
            format!("SELECT SUM({}) - SUM(num) FROM births", chain("num", " + 0 * ", terms)),
            Some(0),
        ),
        (
            format!(
                "SELECT COUNT(*) FROM (SELECT state, MAX(num) AS m FROM births GROUP BY state HAVING {} >= 0) s",
                chain("MAX(num)", " - ", terms)
            ),
            None,
        ),
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE length({}) > 0",
                chain("state", " || ", terms)
            ),
            Some(BIRTHS),
        ),
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE {}num{} > 0",
                "(".repeat(nested),
                ")".repeat(nested)
            ),
            Some(BIRTHS),
        ),
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE {} (num > 0)",
                "NOT NOT ".repeat(nested / 2 - 1)
            ),
            Some(BIRTHS),
        ),
        // 10,000 ANDs and 5,000 ORs: balanced, far inside the limit.
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE {}",
                (0..10_000)
                    .map(|i| format!("num <> {}", 1_000_000 + i))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            Some(BIRTHS),
        ),
        (
            format!(
                "SELECT COUNT(*) FROM births WHERE {} OR gender = 'boy' OR gender = 'girl'",
                (0..5_000)
                    .map(|i| format!("state = 'no such {i}'"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
            Some(BIRTHS),
        ),
    ];
    std::thread::Builder::new()
        .stack_size(STACK_BYTES / 2)
        .spawn(move || {
            for (sql, want) in &cases {
                let got = one_int(&catalog, sql, false);
                if want.is_some() {
                    assert_eq!(got, *want, "{}", &sql[..200.min(sql.len())]);
                }
                one_int(&catalog, sql, true);
            }
            let too_deep = [
                format!("SELECT {}", chain("1", " + ", MAX_EXPR_DEPTH + 1)),
                format!(
                    "SELECT COUNT(*) FROM births WHERE {}num{} > 0",
                    "(".repeat(PARSER_RECURSION_LIMIT + 1),
                    ")".repeat(PARSER_RECURSION_LIMIT + 1)
                ),
            ];
            for sql in too_deep {
                let e = basalt_query::run_sql(&catalog, &sql, &ExecOptions::default()).unwrap_err();
                assert!(matches!(e, QueryError::TooComplex { .. }), "{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
