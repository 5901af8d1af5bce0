//! A near-unique string column has no bitmap index in a large segment: a filter on it is answered by scanning
//! its dictionary codes, gives the rows a brute-force pass gives, and EXPLAIN says so. A column whose values
//! cluster (runs of rows) keeps its index, which is small, and a filter on it uses the bitmaps.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use basalt_query::{run_sql, ExecOptions};
use basalt_segment::{ColumnDef, ColumnRole, ColumnType, FileCatalog, Interval};

fn col(name: &str, ty: ColumnType) -> ColumnDef {
    let role = if ty == ColumnType::Timestamp {
        ColumnRole::Time
    } else {
        ColumnRole::Dimension
    };
    common::col(name, ty, role)
}

#[test]
fn a_filter_on_an_unindexed_column_scans_codes_and_explain_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let schema = common::table(
        "t",
        vec![
            col("ts", ColumnType::Timestamp),
            col("user", ColumnType::String),
            col("country", ColumnType::String),
        ],
    );
    let rows = 70_000i64;
    let users: Vec<Option<String>> = (0..rows)
        .map(|i| (i % 9 != 0).then(|| format!("u{:05}", (i * 13) % 30_000)))
        .collect();
    // 20 countries in runs of 3,500 rows.
    let countries: Vec<String> = (0..rows).map(|i| format!("c{}", i / 3_500)).collect();
    let batch = RecordBatch::try_new(
        Arc::new(schema.arrow_schema()),
        vec![
            Arc::new(Int64Array::from((0..rows).collect::<Vec<_>>())) as ArrayRef,
            Arc::new(StringArray::from(users.clone())),
            Arc::new(StringArray::from(countries.clone())),
        ],
    )
    .unwrap();
    let interval = Interval::new(0, 86_400_000);
    common::commit_segment(&catalog, &schema, interval, &batch, 65_536);
    let run = |sql: &str| run_sql(&catalog, sql, &ExecOptions::default()).unwrap();

    let r = run("SELECT COUNT(*) FROM t WHERE \"user\" = 'u00013' AND country <> 'c3'");
    let want = users
        .iter()
        .zip(&countries)
        .filter(|(u, c)| u.as_deref() == Some("u00013") && c.as_str() != "c3")
        .count() as i64;
    let got = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(
        r.batch.column(0),
    )
    .value(0);
    assert_eq!(got, want);
    assert!(want > 0);
    let names: Vec<&str> = r
        .stats
        .code_scan_columns
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(names, vec!["user"]);

    let plan = run("EXPLAIN SELECT COUNT(*) FROM t WHERE \"user\" = 'u00013'");
    let text: Vec<String> = (0..plan.batch.num_rows())
        .map(|i| {
            arrow_array::cast::AsArray::as_string::<i32>(plan.batch.column(0))
                .value(i)
                .to_string()
        })
        .collect();
    assert!(
        text.iter()
            .any(|l| l.contains("answered by scanning dictionary codes: user")),
        "{text:?}"
    );
    // An indexed column's filter uses its bitmaps, and EXPLAIN has no such line.
    let r = run("SELECT COUNT(*) FROM t WHERE country = 'c3'");
    assert!(r.stats.code_scan_columns.is_empty());
}
