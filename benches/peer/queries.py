"""The dashboard query suite (issue: benchmarks): what Superset and Grafana panels send over an events table.

Every query is one SQL text for all engines, except where ClickHouse spells a function differently; those
rewrites are listed in `clickhouse` and documented in benches/RESULTS.md. Every ORDER BY names enough columns
that the order is total, so results compare row by row. `tol` is the relative tolerance of the agreement
check: 1e-9 for exact answers (float sums in a different order). Approximate queries name an `exact` query
(run by DuckDB, untimed) and every engine's sketch answer is compared with its exact answer: 15% for distinct
counts (basalt's and ClickHouse's stay within 2%; DuckDB's HyperLogLog was 8.6% off at 10M rows), 20% for a tail quantile (a 95th percentile
over a few hundred rows per hour falls between order statistics that are far apart, and the engines' sketches,
DataSketches t-digest, DuckDB's and ClickHouse's, interpolate differently).
"""

EXACT = 1e-9

QUERIES = [
    dict(name="total", sql="SELECT COUNT(*) FROM events"),
    dict(name="sum_bytes", sql="SELECT SUM(bytes) FROM events"),
    dict(
        name="kpis_no_bots",
        sql="SELECT COUNT(*), SUM(revenue), AVG(latency_ms), MAX(latency_ms) FROM events WHERE is_bot = 0",
    ),
    dict(
        name="minute_series_6h",
        sql="SELECT DATE_TRUNC('minute', ts) AS t, COUNT(*) AS n FROM events "
        "WHERE ts >= '2024-01-03 00:00:00' AND ts < '2024-01-03 06:00:00' AND country = 'AB' GROUP BY 1 ORDER BY 1",
    ),
    dict(
        name="hourly_series",
        sql="SELECT DATE_TRUNC('hour', ts) AS t, COUNT(*) AS n, SUM(bytes) AS b FROM events GROUP BY 1 ORDER BY 1",
    ),
    dict(
        name="hourly_errors",
        sql="SELECT DATE_TRUNC('hour', ts) AS t, COUNT(*) AS n FROM events WHERE status >= 500 GROUP BY 1 ORDER BY 1",
    ),
    dict(
        name="daily_by_device",
        sql="SELECT DATE_TRUNC('day', ts) AS d, device, COUNT(*) AS n FROM events GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    dict(
        name="top_countries",
        sql="SELECT country, COUNT(*) AS n FROM events GROUP BY country ORDER BY n DESC, country LIMIT 10",
    ),
    dict(
        name="top_paths",
        sql="SELECT path, COUNT(*) AS n FROM events GROUP BY path ORDER BY n DESC, path LIMIT 10",
    ),
    dict(
        name="top_referrers_revenue",
        sql="SELECT referrer, SUM(revenue) AS r FROM events WHERE event_type = 'purchase' "
        "GROUP BY referrer ORDER BY r DESC, referrer LIMIT 10",
    ),
    dict(
        name="os_browser",
        sql="SELECT os, browser, SUM(bytes) AS b FROM events GROUP BY os, browser ORDER BY b DESC, os, browser LIMIT 20",
    ),
    dict(
        name="country_device",
        sql="SELECT country, device, COUNT(*) AS n, AVG(latency_ms) AS lat FROM events "
        "WHERE country IN ('AA', 'AB', 'AC', 'AD', 'AE') GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    dict(
        name="distinct_buyers",
        sql="SELECT COUNT(DISTINCT user_id) FROM events WHERE event_type = 'purchase'",
    ),
    dict(
        name="daily_distinct_users",
        sql="SELECT DATE_TRUNC('day', ts) AS d, COUNT(DISTINCT user_id) AS u FROM events GROUP BY 1 ORDER BY 1",
    ),
    dict(
        name="approx_users_by_country",
        sql="SELECT country, APPROX_COUNT_DISTINCT(user_id) AS u FROM events GROUP BY country ORDER BY country LIMIT 10",
        clickhouse="SELECT country, uniq(user_id) AS u FROM events GROUP BY country ORDER BY country LIMIT 10",
        exact="SELECT country, COUNT(DISTINCT user_id) AS u FROM events GROUP BY country ORDER BY country LIMIT 10",
        tol=0.15,
    ),
    dict(
        name="latency_percentiles",
        sql="SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50, "
        "PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99 FROM events WHERE device = 'mobile'",
        clickhouse="SELECT quantileExactInclusive(0.5)(latency_ms) AS p50, "
        "quantileExactInclusive(0.99)(latency_ms) AS p99 FROM events WHERE device = 'mobile'",
    ),
    dict(
        name="approx_p95_hourly",
        sql="SELECT DATE_TRUNC('hour', ts) AS t, APPROX_QUANTILE(latency_ms, 0.95) AS p95 FROM events "
        "WHERE ts >= '2024-01-05 00:00:00' AND ts < '2024-01-06 00:00:00' GROUP BY 1 ORDER BY 1",
        clickhouse="SELECT DATE_TRUNC('hour', ts) AS t, quantileTDigest(0.95)(latency_ms) AS p95 FROM events "
        "WHERE ts >= '2024-01-05 00:00:00' AND ts < '2024-01-06 00:00:00' GROUP BY 1 ORDER BY 1",
        exact="SELECT DATE_TRUNC('hour', ts) AS t, PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95 "
        "FROM events WHERE ts >= '2024-01-05 00:00:00' AND ts < '2024-01-06 00:00:00' GROUP BY 1 ORDER BY 1",
        tol=0.2,
    ),
    dict(
        name="in_like",
        sql="SELECT event_type, AVG(latency_ms) AS lat FROM events "
        "WHERE country IN ('AA', 'AB', 'AC') AND path LIKE '/shop/%' GROUP BY 1 ORDER BY 1",
    ),
    dict(name="like_contains", sql="SELECT COUNT(*) FROM events WHERE referrer LIKE '%-00%'"),
    dict(
        name="range_filters",
        sql="SELECT status, COUNT(*) AS n FROM events WHERE latency_ms BETWEEN 100 AND 500 AND bytes > 100000 "
        "GROUP BY 1 ORDER BY 1",
    ),
    dict(
        name="having",
        sql="SELECT city, SUM(revenue) AS r FROM events GROUP BY city HAVING SUM(revenue) > 1000 "
        "ORDER BY r DESC, city LIMIT 10",
    ),
    dict(
        name="case_buckets",
        sql="SELECT CASE WHEN latency_ms < 50 THEN 'fast' WHEN latency_ms < 200 THEN 'ok' ELSE 'slow' END AS bucket, "
        "COUNT(*) AS n FROM events GROUP BY 1 ORDER BY 1",
    ),
    dict(
        name="not_in_humans",
        sql="SELECT device, COUNT(*) AS n FROM events WHERE is_bot = 0 AND event_type NOT IN ('page_view', 'scroll') "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
    ),
    dict(
        name="user_drilldown",
        sql="SELECT ts, event_type, path, latency_ms FROM events WHERE user_id = 'u00000042' "
        "ORDER BY ts, event_type, path, latency_ms LIMIT 100",
    ),
    dict(
        name="live_15_minutes",
        sql="SELECT DATE_TRUNC('minute', ts) AS t, COUNT(*) AS n, AVG(latency_ms) AS lat FROM events "
        "WHERE ts >= '2024-01-07 23:45:00' GROUP BY 1 ORDER BY 1",
    ),
]
