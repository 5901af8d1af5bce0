//! The peer benchmark's runner (benches/peer/run.py) on a small generated file: it loads the same Parquet file
//! into basalt, DuckDB and ClickHouse (chdb), runs the 25-query dashboard suite on each, and exits non-zero when
//! any engine's answer differs. This checks that the runner works and that basalt agrees with both peers; it
//! asserts no timings (benchmarks are not tests).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use basalt_datasets::{schema, Config, Generator};
use parquet::arrow::ArrowWriter;

#[test]
fn runner_loads_all_three_engines_and_they_agree() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.parquet");
    let generator = Generator::new(Config {
        rows: 30_000,
        ..Config::default()
    });
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), schema(), None).unwrap();
    for batch in generator {
        w.write(&batch).unwrap();
    }
    w.close().unwrap();

    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/peer/run.py");
    let out = Command::new("python3")
        .arg(runner)
        .arg("--parquet")
        .arg(&file)
        .arg("--basalt")
        .arg(env!("CARGO_BIN_EXE_basalt"))
        .arg("--baseline")
        .arg(env!("CARGO_BIN_EXE_basalt"))
        .arg("--runs")
        .arg("1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("all 25 answers agree across basalt, duckdb, clickhouse, baseline"),
        "{stdout}"
    );
    // `--baseline` (here the same build) adds its column and its ratio.
    assert!(stdout.contains("basalt / baseline"), "{stdout}");
    // One timing row per query and engine, and the summary lines.
    assert!(stdout.contains("user_drilldown"), "{stdout}");
    assert!(stdout.contains("rows 30,000"), "{stdout}");
}
