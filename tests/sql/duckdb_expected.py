#!/usr/bin/env python3
"""Expected results for basalt's .slt files, computed by DuckDB (an independent engine), never by basalt.

    python3 tests/sql/duckdb_expected.py           # rewrite every query's expected block from DuckDB
    python3 tests/sql/duckdb_expected.py --check   # fail if any block differs from what DuckDB answers

Each `query` record is run on DuckDB over the same files basalt loads. Where basalt's SQL is not DuckDB's, a
`# duckdb: <sql>` comment line right before the record gives DuckDB's spelling; the differences are documented
in tests/sql/README.md (integer division, NULL ordering under DESC, Druid time functions, `__time`).
Values are rendered as basalt's runner renders them: NULL, (empty), integers, floats with 6 decimals,
timestamps as ISO 8601 UTC with milliseconds.
"""
import datetime
import glob
import os
import sys

import duckdb

ROOT = os.path.dirname(os.path.abspath(__file__))
DATASETS = os.path.join(ROOT, "..", "..", "datasets", "superset-examples")


def connect():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    births = os.path.join(DATASETS, "birth_names2.json.gz")
    con.execute(
        f"""CREATE TABLE births AS SELECT make_timestamp(ds::BIGINT * 1000) AS ds, gender, name, num::BIGINT AS num,
        state, num_boys::BIGINT AS num_boys, num_girls::BIGINT AS num_girls FROM read_json_auto('{births}')"""
    )
    flights = os.path.join(DATASETS, "flight_data.csv.gz")
    con.execute(
        f"""CREATE TABLE flights AS SELECT make_timestamp("YEAR"::BIGINT, "MONTH"::BIGINT, "DAY"::BIGINT, 0, 0, 0) AS ts,
        * FROM read_csv('{flights}', header = true, all_varchar = true)"""
    )
    con.execute(
        """CREATE OR REPLACE TABLE flights AS SELECT ts, "AIRLINE", "ORIGIN_AIRPORT", "DESTINATION_AIRPORT",
        TRY_CAST("DEPARTURE_DELAY" AS BIGINT) AS "DEPARTURE_DELAY", CAST("DISTANCE" AS BIGINT) AS "DISTANCE",
        CAST("CANCELLED" AS BIGINT) AS "CANCELLED", NULLIF("TAIL_NUMBER", '') AS "TAIL_NUMBER" FROM flights"""
    )
    events = os.path.join(ROOT, "data", "events.csv")
    con.execute(
        f"""CREATE TABLE events AS SELECT CAST(ts AS TIMESTAMP) AS ts, user_id, NULLIF(country, '') AS country,
        NULLIF(device, '') AS device, TRY_CAST(NULLIF(latency, '') AS DOUBLE) AS latency,
        TRY_CAST(NULLIF(bytes, '') AS BIGINT) AS bytes, CAST(status AS BIGINT) AS status
        FROM read_csv('{events}', header = true, all_varchar = true)"""
    )
    return con


def render(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "%.6f" % v
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (v.microsecond // 1000)
    if isinstance(v, datetime.date):
        return v.strftime("%Y-%m-%dT00:00:00.000Z")
    if hasattr(v, "as_integer_ratio"):  # Decimal
        return "%.6f" % float(v)
    s = str(v)
    return "(empty)" if s == "" else s


def records(lines):
    """Yields (start, end, header, sql_lines, duckdb_sql) for each query record; end is exclusive."""
    i = 0
    while i < len(lines):
        if lines[i].startswith("query "):
            duck = None
            if i > 0 and lines[i - 1].startswith("# duckdb:"):
                duck = lines[i - 1][len("# duckdb:"):].strip()
            start = i
            i += 1
            sql = []
            while i < len(lines) and lines[i].strip() != "----":
                sql.append(lines[i])
                i += 1
            i += 1  # ----
            while i < len(lines) and lines[i].strip() != "":
                i += 1
            yield start, i, lines[start], sql, duck
        else:
            i += 1


def expected(con, header, sql, duck):
    rows = con.execute(duck or "\n".join(sql)).fetchall()
    out = [" ".join(render(v) for v in row) for row in rows]
    if "rowsort" in header.split():
        out.sort()
    return out


def main():
    check = "--check" in sys.argv
    con = connect()
    failed = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "*.slt"))):
        lines = open(path).read().split("\n")
        out = []
        last = 0
        for start, end, header, sql, duck in records(lines):
            want = expected(con, header, sql, duck)
            sep = start + 1 + len(sql)
            have = lines[sep + 1:end]
            if check and have != want:
                failed += 1
                print(f"{os.path.basename(path)}:{start + 1}: DuckDB answers\n  " + "\n  ".join(want) + "\nthe file says\n  " + "\n  ".join(have))
            out.extend(lines[last:sep + 1])
            out.extend(want)
            last = end
        out.extend(lines[last:])
        if not check:
            open(path, "w").write("\n".join(out))
    if failed:
        print(f"{failed} record(s) differ from DuckDB")
        sys.exit(1)
    print("all expected results agree with DuckDB" if check else "expected results written")


if __name__ == "__main__":
    main()
