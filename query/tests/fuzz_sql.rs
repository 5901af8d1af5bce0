//! The SQL front end on generated input (proptest, a bounded number of cases so it runs in CI): statements built
//! from SQL's own tokens over a real table, most of them wrong in some way, must each end in a result or a typed
//! error, never a panic, and leave the catalog answering. Failing inputs proptest finds are kept in
//! `fuzz_sql.proptest-regressions` beside this file and tried first on every run.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use basalt_segment::{ColumnRole, ColumnType, FileCatalog, Interval};
use common::*;
use proptest::prelude::*;

const DAY: i64 = 86_400_000;

fn catalog() -> (tempfile::TempDir, FileCatalog) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "fuzz").unwrap();
    let schema = table(
        "t",
        vec![
            col("ts", ColumnType::Timestamp, ColumnRole::Time),
            col("k", ColumnType::String, ColumnRole::Dimension),
            col("n", ColumnType::Long, ColumnRole::Metric),
            col("x", ColumnType::Double, ColumnRole::Metric),
        ],
    );
    let rows = 200;
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ])),
        vec![
            Arc::new(TimestampMillisecondArray::from_iter_values(
                (0..rows).map(|i| i * (DAY / rows)),
            )),
            Arc::new(StringArray::from_iter(
                (0..rows).map(|i| (i % 7 != 0).then(|| format!("k{}", i % 5))),
            )),
            Arc::new(Int64Array::from_iter(
                (0..rows).map(|i| (i % 11 != 0).then_some(i - 50)),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|i| i as f64 / 3.0),
            )),
        ],
    )
    .unwrap();
    commit_segment(&catalog, &schema, Interval::new(0, DAY), &batch, 64);
    (dir, catalog)
}

/// SQL's tokens: keywords, the table's columns, functions, operators, literals of every kind.
const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "t",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "BETWEEN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "DISTINCT",
    "UNION",
    "ALL",
    "WITH",
    "OVER",
    "PARTITION",
    "ASC",
    "DESC",
    "EXISTS",
    "CAST",
    "INTERVAL",
    "ts",
    "k",
    "n",
    "x",
    "__time",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "APPROX_COUNT_DISTINCT",
    "PERCENTILE_CONT",
    "WITHIN",
    "DATE_TRUNC",
    "TIME_FLOOR",
    "COALESCE",
    "NULLIF",
    "ROW_NUMBER",
    "LAG",
    "STRING_AGG",
    "ARRAY_AGG",
    "ANY",
    "ARRAY",
    "unnest",
    "(",
    ")",
    ",",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "<>",
    "<",
    ">=",
    "||",
    "::",
    "[",
    "]",
    ".",
    "1",
    "0",
    "-1",
    "2.5",
    "1e308",
    "9223372036854775807",
    "'k1'",
    "''",
    "'2024-01-01'",
    "'day'",
    "TRUE",
    "FALSE",
    "$1",
    "?",
    "bigint",
    "text",
    "double",
    "timestamp",
    "information_schema.tables",
    "pg_catalog.pg_class",
    "sys.queries",
];

/// An expression of SQL's grammar over the table's columns: most type-check, many do not.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(
        &[
            "ts",
            "k",
            "n",
            "x",
            "k",
            "n",
            "x",
            "__time",
            "1",
            "0",
            "-1",
            "2.5",
            "1e308",
            "9223372036854775807",
            "'k1'",
            "''",
            "'2024-01-01'",
            "NULL",
            "TRUE",
            "INTERVAL '1' DAY",
            "CURRENT_TIMESTAMP",
        ][..],
    )
    .prop_map(str::to_string);
    leaf.prop_recursive(3, 10, 3, |inner| {
        let f = prop::sample::select(
            &[
                "COUNT",
                "SUM",
                "AVG",
                "MIN",
                "MAX",
                "APPROX_COUNT_DISTINCT",
                "COALESCE",
                "NULLIF",
                "ABS",
                "LOWER",
                "UPPER",
                "LENGTH",
                "SUBSTRING",
                "CONCAT",
                "DATE_TRUNC",
                "TIME_FLOOR",
                "FLOOR",
                "ROUND",
                "STRING_AGG",
                "ARRAY_AGG",
                "BOOL_AND",
                "EXTRACT",
                "LPAD",
                "unnest",
                "pg_size_pretty",
                "format_type",
            ][..],
        );
        let op = prop::sample::select(
            &[
                "+",
                "-",
                "*",
                "/",
                "%",
                "=",
                "<>",
                "<",
                ">=",
                "AND",
                "OR",
                "||",
                "LIKE",
                "IS DISTINCT FROM",
            ][..],
        );
        let ty = prop::sample::select(
            &[
                "bigint",
                "text",
                "double precision",
                "timestamp",
                "boolean",
                "int2",
            ][..],
        );
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("({a} {o} {b})")),
            (f, prop::collection::vec(inner.clone(), 0..3), any::<bool>()).prop_map(
                |(f, args, d)| {
                    format!(
                        "{f}({}{})",
                        if d { "DISTINCT " } else { "" },
                        args.join(", ")
                    )
                }
            ),
            (inner.clone(), ty).prop_map(|(e, t)| format!("CAST({e} AS {t})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("CASE WHEN {c} THEN {a} ELSE {b} END")),
            (inner.clone(), prop::collection::vec(inner.clone(), 1..3))
                .prop_map(|(e, l)| format!("{e} IN ({})", l.join(", "))),
            (inner.clone(), any::<bool>())
                .prop_map(|(e, n)| format!("{e} IS {}NULL", if n { "NOT " } else { "" })),
            inner.prop_map(|e| format!("(SELECT {e} FROM t LIMIT 1)")),
        ]
    })
}

/// A SELECT of the grammar, sometimes with one token of SQL dropped in at a random place.
fn statement() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(expr(), 1..3),
        prop::option::weighted(0.3, expr()),
        prop::collection::vec(expr(), 0..2),
        prop::option::weighted(0.2, expr()),
        prop::collection::vec((expr(), any::<bool>()), 0..2),
        prop::option::of(0u32..5),
        prop::option::weighted(
            0.2,
            (prop::sample::select(TOKENS), any::<prop::sample::Index>()),
        ),
    )
        .prop_map(|(items, filter, group, having, order, limit, noise)| {
            let mut sql = format!("SELECT {} FROM t", items.join(", "));
            if let Some(w) = filter {
                sql.push_str(&format!(" WHERE {w}"));
            }
            if !group.is_empty() {
                sql.push_str(&format!(" GROUP BY {}", group.join(", ")));
            }
            if let Some(h) = having {
                sql.push_str(&format!(" HAVING {h}"));
            }
            if !order.is_empty() {
                let keys: Vec<String> = order
                    .iter()
                    .map(|(e, d)| format!("{e}{}", if *d { " DESC" } else { "" }))
                    .collect();
                sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
            }
            if let Some(l) = limit {
                sql.push_str(&format!(" LIMIT {l}"));
            }
            if let Some((token, at)) = noise {
                let spaces: Vec<usize> = sql.match_indices(' ').map(|(i, _)| i).collect();
                let i = spaces[at.index(spaces.len())];
                sql.insert_str(i, &format!(" {token}"));
            }
            sql
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn generated_sql_ends_in_a_result_or_an_error_never_a_panic(sql in statement()) {
        thread_local! {
            static CATALOG: (tempfile::TempDir, FileCatalog) = catalog();
        }
        CATALOG.with(|(_, catalog)| {
            let opts = basalt_query::ExecOptions { threads: 2, timeout_ms: 5_000, ..Default::default() };
            // Either outcome is fine; a panic fails the property (and proptest shrinks it to a small input).
            let _ = basalt_query::run_sql(catalog, &sql, &opts);
            let still = basalt_query::run_sql(catalog, "SELECT COUNT(*) FROM t", &opts).unwrap();
            prop_assert_eq!(still.batch.num_rows(), 1);
            Ok(())
        })?;
    }
}
