#![allow(clippy::unwrap_used)]
//! Two `basalt serve` nodes over one PostgreSQL catalog (`--catalog postgres://...`) and one deep storage: rows
//! loaded through either node are answered by both (the other follows within `catalog_refresh_ms`, downloading
//! the segments from the store), and the catalog in PostgreSQL holds one row per segment. Expected values are
//! worked out by hand from the generated rows.

mod common;
#[path = "../../segment/tests/common/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use common::*;

/// `n` events, one a minute from 2024-01-01, `k` = k0..k6 by `i % 7`, `v` = i + `offset`.
fn events(n: usize, offset: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"ts\":\"2024-01-01T{:02}:{:02}:00Z\",\"k\":\"k{}\",\"v\":{}}}\n",
                i / 60,
                i % 60,
                i % 7,
                i + offset
            )
        })
        .collect()
}

fn csv(s: &Served, sql: &str) -> (u16, String) {
    let (st, _, body) = post(
        &format!("{}/v1/sql", s.http),
        "application/json",
        &serde_json::json!({"query": sql, "format": "csv"}).to_string(),
    );
    (st, body)
}

/// Waits until `s` answers `sql` with `want` (another node's commit reaches it within a refresh).
fn eventually(s: &Served, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (st, body) = csv(s, sql);
        if st == 200 && body == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {st} {body}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_nodes_over_one_postgresql_catalog_answer_the_same() {
    let pg = postgres::Postgres::start();
    let store = tempfile::tempdir().unwrap();
    let deep = format!("deep_storage=file://{}", store.path().display());
    let url = pg.url();
    let args = [
        "--catalog",
        url.as_str(),
        "--set",
        deep.as_str(),
        "--set",
        "catalog_refresh_ms=300",
    ];
    let a = serve_dir(tempfile::tempdir().unwrap(), &args);
    let b = serve_dir(tempfile::tempdir().unwrap(), &args);

    // 1,000 rows through node a: 0..999, so SUM(v) = 999 * 1000 / 2 and k0 holds i = 0, 7, ..., 994 (143 rows).
    let (st, _, body) = post(
        &format!(
            "{}/v1/tables/events/load?format=ndjson&time_column=ts",
            a.http
        ),
        "application/x-ndjson",
        &events(1000, 0),
    );
    assert_eq!(st, 200, "{body}");
    let kpi = "SELECT COUNT(*) AS n, SUM(v) AS total FROM events";
    assert_eq!(csv(&a, kpi), (200, "n,total\n1000,499500\n".to_string()));
    eventually(&b, kpi, "n,total\n1000,499500\n");
    eventually(
        &b,
        "SELECT COUNT(*) AS n FROM events WHERE k = 'k0'",
        "n\n143\n",
    );

    // 100 more through node b (v = 1000..1099, sum 104,950): both nodes see all 1,100.
    let (st, _, body) = post(
        &format!("{}/v1/tables/events/load?format=ndjson", b.http),
        "application/x-ndjson",
        &events(100, 1000),
    );
    assert_eq!(st, 200, "{body}");
    eventually(&a, kpi, "n,total\n1100,604450\n");
    eventually(&b, kpi, "n,total\n1100,604450\n");
    assert_eq!(
        pg.psql("SELECT COUNT(*), SUM(num_rows) FROM basalt_segments WHERE table_name = 'events'")
            .split('|')
            .nth(1),
        Some("1100")
    );

    // The bulk loader on another machine (its own data directory) commits into the same catalog and store:
    // 10 more rows, v = 2000..2009 (sum 20,045).
    let loader_dir = tempfile::tempdir().unwrap();
    let file = loader_dir.path().join("more.ndjson");
    std::fs::write(&file, events(10, 2000)).unwrap();
    let store_url = format!("file://{}", store.path().display());
    ok(&basalt(&[
        "load",
        "--data-dir",
        loader_dir.path().join("data").to_str().unwrap(),
        "--catalog",
        &url,
        "--deep-storage",
        &store_url,
        "--table",
        "events",
        "--time-column",
        "ts",
        file.to_str().unwrap(),
    ]));
    eventually(&a, kpi, "n,total\n1110,624495\n");
    eventually(&b, kpi, "n,total\n1110,624495\n");

    // A third node on an empty data directory answers from the catalog and the store alone.
    drop(a);
    let c = serve_dir(tempfile::tempdir().unwrap(), &args);
    assert_eq!(csv(&c, kpi), (200, "n,total\n1110,624495\n".to_string()));
}
