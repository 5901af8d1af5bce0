#![allow(clippy::unwrap_used)]
//! An integer SUM past the bigint range is the same clear error on every path: within one segment, merged
//! across segments, per group and per time bucket. (PostgreSQL's SUM(bigint) is numeric and DuckDB's HUGEINT,
//! so both answer 10000000000000000000 for the table below; basalt's SUM is a bigint and refuses instead of
//! wrapping to -8446744073709551616, which it did when partials of two segments were merged.)

mod common;

use common::*;

#[test]
fn a_sum_past_bigint_is_an_error_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.ndjson");
    // Two rows of 5e18, on two days: two daily segments, each of whose sums fits.
    std::fs::write(
        &file,
        "{\"ts\": \"2026-01-01T00:00:00Z\", \"k\": \"a\", \"v\": 5000000000000000000}\n\
         {\"ts\": \"2026-01-02T00:00:00Z\", \"k\": \"a\", \"v\": 5000000000000000000}\n",
    )
    .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_str().unwrap().to_string();
    let data = data.as_str();
    load_table(data, "t", "ts", &file, &[]);
    for sql in [
        "SELECT SUM(v) FROM t",
        "SELECT k, SUM(v) FROM t GROUP BY k",
        "SELECT TIME_FLOOR(__time, 'P1M') AS m, SUM(v) FROM t GROUP BY 1",
        "SELECT SUM(v) FROM t WHERE k = 'a'",
    ] {
        let out = basalt(&["query", "--data-dir", data, sql]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(err.contains("bigint out of range"), "{sql}: {err}");
    }
    // Each segment alone still sums (5e18 fits), and so does the total as a double.
    let out = query_csv(
        data,
        "SELECT SUM(v) AS s FROM t WHERE __time < TIMESTAMP '2026-01-02'",
    );
    assert!(out.contains("5000000000000000000"), "{out}");
    let out = query_csv(data, "SELECT SUM(CAST(v AS DOUBLE)) AS s FROM t");
    assert_eq!(out.trim(), "s\n1e+19");
    // Served: SQLSTATE 22003 (numeric_value_out_of_range) on PostgreSQL, code out_of_range over HTTP.
    let s = serve_dir(data_dir, &[]);
    let out = psql(
        s.pg_port,
        &["-v", "VERBOSITY=verbose", "-c", "SELECT SUM(v) FROM t"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("22003") && err.contains("bigint out of range"),
        "{err}"
    );
    let (status, _, body) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        r#"{"query": "SELECT k, SUM(v) FROM t GROUP BY k"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"out_of_range\""), "{body}");
}
