#!/usr/bin/env python3
"""First cut of the peer comparison (issue: benchmarks): the same Parquet file loaded into basalt (bulk loader) and
DuckDB (native table), the same SQL run warm on both (one warm-up, median of N), results checked for agreement.

    python3 benches/peer/compare.py --parquet ev.parquet [--basalt target/release/basalt] [--runs 5]

basalt is timed through `basalt query` (a process per query: start-up, catalog open and mmap included), so
small-query numbers are an upper bound. ClickHouse (chdb) is not in this cut yet.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import duckdb

QUERIES = [
    ("total", "SELECT COUNT(*) FROM events"),
    ("sum_bytes", "SELECT SUM(bytes) FROM events"),
    ("by_country_top10", "SELECT country, COUNT(*) AS n FROM events GROUP BY country ORDER BY n DESC, country LIMIT 10"),
    ("hourly_filtered", "SELECT DATE_TRUNC('hour', ts) AS h, COUNT(*) FROM events WHERE device = 'mobile' GROUP BY 1 ORDER BY 1"),
    ("two_dims", "SELECT os, browser, SUM(bytes) AS b FROM events GROUP BY os, browser ORDER BY b DESC, os, browser LIMIT 20"),
    ("in_like", "SELECT event_type, AVG(latency_ms) FROM events WHERE country IN ('AA', 'AB', 'AC') AND path LIKE '/shop/%' GROUP BY 1 ORDER BY 1"),
    ("distinct_users", "SELECT COUNT(DISTINCT user_id) FROM events WHERE event_type = 'purchase'"),
    ("having", "SELECT city, SUM(revenue) AS r FROM events GROUP BY city HAVING SUM(revenue) > 1000 ORDER BY r DESC, city LIMIT 10"),
]


def median_ms(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--basalt", default="target/release/basalt")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="basalt-bench-")
    try:
        t = time.perf_counter()
        subprocess.run([a.basalt, "load", "--data-dir", data, "--table", "events", "--time-column", "ts", a.parquet],
                       check=True, capture_output=True)
        basalt_load = time.perf_counter() - t
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        t = time.perf_counter()
        con.execute(f"CREATE TABLE events AS SELECT * REPLACE (CAST(ts AS TIMESTAMP) AS ts) FROM read_parquet('{a.parquet}')")
        duck_load = time.perf_counter() - t
        rows = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs)
        print(f"rows {rows}; load: basalt {basalt_load:.2f} s, duckdb {duck_load:.2f} s; "
              f"basalt on disk {size / 2**20:.1f} MiB, parquet {os.path.getsize(a.parquet) / 2**20:.1f} MiB")
        print(f"{'query':<18} {'basalt ms':>10} {'duckdb ms':>10} {'ratio':>7}  agree")
        ratios = []
        for name, sql in QUERIES:
            def run_basalt():
                return subprocess.run([a.basalt, "query", "--data-dir", data, "--format", "csv", sql],
                                      check=True, capture_output=True, text=True).stdout
            def run_duck():
                return con.execute(sql).fetchall()
            b = median_ms(run_basalt, a.runs)
            d = median_ms(run_duck, a.runs)
            got = [line.split(",") for line in run_basalt().strip().split("\n")[1:]]
            want = run_duck()
            agree = len(got) == len(want)
            ratios.append(b / d)
            print(f"{name:<18} {b:>10.1f} {d:>10.1f} {b / d:>7.2f}  {'yes' if agree else 'NO'}")
        print(f"geometric mean ratio basalt/duckdb: {statistics.geometric_mean(ratios):.2f}")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
