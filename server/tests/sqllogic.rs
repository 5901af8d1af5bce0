//! Runs the SQL behaviour files `tests/sql/*.slt` against basalt. Their expected results come from DuckDB
//! (`tests/sql/duckdb_expected.py`) or were written by hand (errors), never from basalt's own output.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use arrow_array::Array;
use basalt_query::{ExecOptions, QueryError};
use basalt_segment::FileCatalog;
use common::*;
use sqllogictest::{DBOutput, DefaultColumnType};

struct Basalt {
    catalog: FileCatalog,
}

impl sqllogictest::DB for Basalt {
    type Error = QueryError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, QueryError> {
        let result = basalt_query::run_sql(&self.catalog, sql, &ExecOptions::default())?;
        let b = &result.batch;
        let rows = (0..b.num_rows())
            .map(|r| b.columns().iter().map(|c| render(c.as_ref(), r)).collect())
            .collect();
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; b.num_columns()],
            rows,
        })
    }
}

/// Renders a value as tests/sql/duckdb_expected.py does.
fn render(a: &dyn Array, r: usize) -> String {
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType;
    if a.is_null(r) {
        return "NULL".into();
    }
    match a.data_type() {
        DataType::Float64 => format!(
            "{:.6}",
            a.as_primitive::<arrow_array::types::Float64Type>().value(r)
        ),
        DataType::Int64 => a
            .as_primitive::<arrow_array::types::Int64Type>()
            .value(r)
            .to_string(),
        DataType::Boolean => a.as_boolean().value(r).to_string(),
        DataType::Timestamp(_, _) => basalt_segment::granularity::format_iso(
            a.as_primitive::<arrow_array::types::TimestampMillisecondType>()
                .value(r),
        ),
        DataType::Utf8 => match a.as_string::<i32>().value(r) {
            "" => "(empty)".into(),
            s => s.to_string(),
        },
        other => format!("<{other}>"),
    }
}

fn load_all(dir: &Path) {
    let d = dir.to_str().unwrap();
    load_births(dir);
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
        dataset("flight_data.csv.gz").to_str().unwrap(),
    ]));
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sql/data/events.csv");
    ok(&basalt(&[
        "load",
        "--data-dir",
        d,
        "--table",
        "events",
        "--time-column",
        "ts",
        "--segment-granularity",
        "month",
        events.to_str().unwrap(),
    ]));
}

#[test]
fn sql_behaviour_files() {
    let dir = tempfile::tempdir().unwrap();
    load_all(dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sql");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the .slt files under {}",
        root.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let data = dir.path().to_path_buf();
        let mut runner = sqllogictest::Runner::new(move || {
            let catalog = FileCatalog::open_read_only(&data);
            async move {
                catalog
                    .map(|catalog| Basalt { catalog })
                    .map_err(QueryError::from)
            }
        });
        if let Err(e) = runner.run_file(file) {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
