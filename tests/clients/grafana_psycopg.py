"""Grafana-style and driver checks through psycopg 3 (extended protocol, server-side parameters, binary results).

Usage: grafana_psycopg.py PG_PORT BIRTHS_JSON_GZ

Runs the SQL Grafana's PostgreSQL data source sends (macros expanded) and catalog queries, and compares answers
with DuckDB over the raw file. Exits non-zero with a message on mismatch.
"""
import datetime as dt
import sys

from births_duckdb import births
import psycopg

port, births_file = sys.argv[1], sys.argv[2]
duck = births(births_file, "ds")
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: basalt {got!r} != expected {want!r}")


UTC = dt.timezone.utc
conn = psycopg.connect(f"host=127.0.0.1 port={port} user=basalt dbname=basalt", autocommit=True)
cur = conn.cursor()

cur.execute("SELECT version()")
check("version", cur.fetchone()[0].startswith("PostgreSQL"), True)
check("server_version", conn.info.server_version >= 160000, True)
cur.execute("SELECT current_setting('server_version_num'), current_schema()")
check("settings", cur.fetchone(), ("160006", "public"))
cur.execute("SHOW TimeZone")
check("timezone", cur.fetchone(), ("UTC",))

# Catalog: Grafana's table and column pickers.
cur.execute(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
    "AND table_type = 'BASE TABLE' ORDER BY table_name"
)
check("tables", cur.fetchall(), [("births",), ("flights",)])
cur.execute(
    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
    ("births",),
)
cols = cur.fetchall()
check("first column", cols[0], ("ds", "timestamp with time zone"))
check("num column", ("num", "bigint") in cols, True)

# Grafana's query builder lists tables and columns with catalog queries built from quote_ident, the schemas in
# current_setting('search_path') (string_to_array, array_lower/array_upper, generate_series in FROM, subscripts,
# `user`), parse_ident and array_length. These are written here in the same shape as its PostgreSQL data source
# sends them (unqualified names for tables on the search path, qualified ones otherwise).
ON_SEARCH_PATH = """quote_ident(table_schema) IN (
    SELECT CASE WHEN trim(p[k]) = '"$user"' THEN user ELSE trim(p[k]) END
    FROM generate_series(array_lower(string_to_array(current_setting('search_path'), ','), 1),
                         array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS k,
         string_to_array(current_setting('search_path'), ',') p)"""
cur.execute(
    f"""SELECT CASE WHEN {ON_SEARCH_PATH} THEN quote_ident(table_name)
               ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS "table"
        FROM information_schema.tables
        WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_catalog')
        ORDER BY CASE WHEN {ON_SEARCH_PATH} THEN 0 ELSE 1 END, 1"""
)
check("builder: tables", cur.fetchall(), [("births",), ("flights",)])
cur.execute(
    """SELECT quote_ident(table_name) AS "table" FROM information_schema.tables
       WHERE quote_ident(table_schema) = 'public' ORDER BY 1"""
)
check("builder: tables of a schema", cur.fetchall(), [("births",), ("flights",)])
PG_TYPE = {"VARCHAR": "text", "BIGINT": "bigint", "DOUBLE": "double precision", "TIMESTAMP": "timestamp with time zone"}
want_cols = [(name, PG_TYPE[ty]) for name, ty, *_ in duck.execute("DESCRIBE births").fetchall()]
for table in ["births", "public.births", 'public."births"']:
    lit = "'" + table.replace("'", "''") + "'"
    cur.execute(
        f"""SELECT quote_ident(column_name) AS "column", data_type AS "type" FROM information_schema.columns
            WHERE CASE WHEN array_length(parse_ident({lit}), 1) = 2
                THEN quote_ident(table_schema) = (parse_ident({lit}))[1]
                     AND quote_ident(table_name) = (parse_ident({lit}))[2]
                ELSE quote_ident(table_name) = {lit} AND {ON_SEARCH_PATH} END
            ORDER BY ordinal_position"""
    )
    check(f"builder: columns of {table}", sorted(cur.fetchall()), sorted(want_cols))
cur.execute("SELECT current_setting('server_version_num')::int/100 AS version")
check("builder: version", cur.fetchone(), (1600,))
cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
check("builder: no timescaledb", cur.fetchall(), [])
cur.execute("SELECT quote_ident('Mixed Case'), quote_ident('plain_1'), quote_ident('select')")
check("quote_ident", cur.fetchone(), ('"Mixed Case"', "plain_1", '"select"'))

# Grafana's time-series macro expansions: $__timeFilter, $__timeGroup as epoch arithmetic, GROUP BY 1 ORDER BY 1.
cur.execute(
    "SELECT floor(extract(epoch from ds)/31536000)*31536000 AS \"time\", sum(num) AS value FROM births "
    "WHERE ds BETWEEN '1990-01-01T00:00:00Z' AND '1994-12-31T23:59:59Z' GROUP BY 1 ORDER BY 1"
)
got = [(float(t), v) for t, v in cur.fetchall()]
want = duck.execute(
    "SELECT floor(epoch(ds)/31536000)*31536000, sum(num) FROM births "
    "WHERE ds BETWEEN '1990-01-01' AND '1994-12-31 23:59:59' GROUP BY 1 ORDER BY 1"
).fetchall()
check("epoch buckets", got, [(float(t), v) for t, v in want])

cur.execute(
    "SELECT date_trunc('year', ds) AS time, count(*) FROM births "
    "WHERE ds >= to_timestamp(631152000) AND ds < to_timestamp(788918400) GROUP BY 1 ORDER BY 1"
)
got = cur.fetchall()
want = duck.execute(
    "SELECT date_trunc('year', ds), count(*) FROM births WHERE ds >= '1990-01-01' AND ds < '1995-01-01' "
    "GROUP BY 1 ORDER BY 1"
).fetchall()
check("timestamps come back as aware datetimes", got, [(t.replace(tzinfo=UTC), n) for t, n in want])

# Server-side parameters (extended protocol), text and binary.
q = "SELECT name, sum(num) FROM births WHERE state = %s AND gender = %s GROUP BY name ORDER BY 2 DESC, 1 LIMIT 3"
want = duck.execute(q.replace("%s", "?"), ["CA", "boy"]).fetchall()
cur.execute(q, ("CA", "boy"))
check("parameters", cur.fetchall(), want)
cur.execute(q, ("CA", "boy"), binary=True)
check("binary results", cur.fetchall(), want)
cur.execute("SELECT count(*) FROM births WHERE num > %s", (1000,))
check("int parameter", cur.fetchone()[0], duck.execute("SELECT count(*) FROM births WHERE num > 1000").fetchone()[0])
cur.execute("SELECT avg(num) FROM births", binary=True)
check("binary float", round(cur.fetchone()[0], 6), round(duck.execute("SELECT avg(num) FROM births").fetchone()[0], 6))

# Errors carry SQLSTATEs and leave the connection usable.
for sql, state in [
    ("SELECT nope FROM births", "42703"),
    ("SELECT * FROM nosuch", "42P01"),
    ("SELEC 1", "42601"),
    ("SELECT 1/0 FROM births", "22012"),
]:
    try:
        cur.execute(sql)
        failures.append(f"{sql!r}: no error")
    except psycopg.Error as e:
        check(f"sqlstate of {sql!r}", e.sqlstate, state)
cur.execute("SELECT count(*) FROM births")
check("usable after errors", cur.fetchone()[0], duck.execute("SELECT count(*) FROM births").fetchone()[0])

# Transactions: BEGIN/COMMIT accepted with the right status.
tx = psycopg.connect(f"host=127.0.0.1 port={port} user=basalt dbname=basalt")
with tx.cursor() as c:
    c.execute("SELECT 1")
    check("in transaction", tx.info.transaction_status, psycopg.pq.TransactionStatus.INTRANS)
tx.commit()
check("idle after commit", tx.info.transaction_status, psycopg.pq.TransactionStatus.IDLE)
tx.close()

# Cancellation (Grafana cancels superseded panel queries): a CancelRequest ends the running statement with
# SQLSTATE 57014, and the connection stays usable.
import threading
import time

victim = psycopg.connect(f"host=127.0.0.1 port={port} user=basalt dbname=basalt", autocommit=True)
cancel = getattr(victim, "cancel_safe", victim.cancel)
timer = threading.Timer(0.5, cancel)
timer.start()
started = time.monotonic()
try:
    victim.execute("SELECT pg_sleep(30)")
    failures.append("pg_sleep(30) was not cancelled")
except psycopg.errors.QueryCanceled as e:
    check("cancel sqlstate", e.sqlstate, "57014")
check("cancelled within seconds", time.monotonic() - started < 10, True)
check("usable after cancel", victim.execute("SELECT count(*) FROM births").fetchone()[0],
      duck.execute("SELECT count(*) FROM births").fetchone()[0])
timer.join()
victim.close()

# Window functions over an aggregation (Superset's "advanced analytics": running total, moving average, rank),
# with server-side parameters and binary results, against DuckDB.
WINDOWS = [
    (
        "SELECT date_trunc('year', ds) AS y, SUM(num) AS n, SUM(SUM(num)) OVER (ORDER BY date_trunc('year', ds)) AS running, "
        "AVG(SUM(num)) OVER (ORDER BY date_trunc('year', ds) ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS avg7 "
        "FROM births WHERE state = %s GROUP BY 1 ORDER BY 1",
        ("NY",),
        lambda r: (r[0].year, r[1], r[2], round(r[3], 6)),
    ),
    (
        "SELECT name, SUM(num) AS n, RANK() OVER (ORDER BY SUM(num) DESC) AS r, "
        "LAG(name) OVER (ORDER BY SUM(num) DESC, name) AS prev FROM births WHERE gender = %s "
        "GROUP BY name ORDER BY r, name LIMIT 10",
        ("girl",),
        lambda r: tuple(r),
    ),
]
for sql, params, norm in WINDOWS:
    want = [norm(r) for r in duck.execute(sql.replace("%s", "?"), params).fetchall()]
    for binary in (False, True):
        cur.execute(sql, params, binary=binary, prepare=True)
        check(f"window query (binary={binary}) {sql[:50]!r}", [norm(r) for r in cur.fetchall()], want)

# Describe(Statement) of a named statement with parameters, as pgx and JDBC send it before any Bind: parameter
# and column descriptions for catalog queries too, without running them.
pg = conn.pgconn
for i, (sql, nfields) in enumerate([
    ("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2", 2),
    ("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
     "WHERE n.nspname = $1", 1),
    ("SELECT current_setting($1)", 1),
    ("SELECT setting, short_desc FROM pg_catalog.pg_settings WHERE name = $1", 2),
    ("SELECT state, SUM(num) FROM births WHERE gender = $1 AND num > $2 GROUP BY 1", 2),
]):
    name = f"described_{i}".encode()
    r = pg.prepare(name, sql.encode())
    check(f"prepare {sql!r}", r.status, psycopg.pq.ExecStatus.COMMAND_OK)
    d = pg.describe_prepared(name)
    check(f"describe {sql!r}", (d.status, d.error_message), (psycopg.pq.ExecStatus.COMMAND_OK, b""))
    check(f"described columns of {sql!r}", d.nfields, nfields)
    check(f"described parameters of {sql!r}", d.nparams, sql.count("$"))
cur.execute("SELECT current_setting(%s), current_setting(%s)", ("TimeZone", "server_version_num"), prepare=True)
check("current_setting of a parameter", cur.fetchone(), ("UTC", "160006"))
cur.execute("SELECT setting FROM pg_catalog.pg_settings WHERE name = %s", ("max_identifier_length",))
check("pg_settings", cur.fetchall(), [("63",)])

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("psycopg/Grafana-style: all checks passed")
