"""Superset-style checks through pydruid's SQLAlchemy dialect (what Superset's Druid engine uses).

Usage: superset_pydruid.py HTTP_PORT BIRTHS_JSON_GZ

Reflects schemas, tables and columns, then runs SQL shaped like Superset's Druid engine writes it and compares
every answer with DuckDB over the raw file (an independent engine). Exits non-zero with a message on mismatch.
"""
import datetime as dt
import sys

from births_duckdb import births
import sqlalchemy as sa

port, births_file = sys.argv[1], sys.argv[2]
engine = sa.create_engine(f"druid://127.0.0.1:{port}/druid/v2/sql/?header=true")
duck = births(births_file, "__time")

failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: basalt {got!r} != duckdb {want!r}")


insp = sa.inspect(engine)
schemas = insp.get_schema_names()
check("schemas contain druid", "druid" in schemas, True)
tables = insp.get_table_names(schema="druid")
check("tables", sorted(tables), ["births", "flights"])
# pydruid's has_table predates SQLAlchemy 2's keyword arguments; call the dialect's own method as it is written.
with engine.connect() as conn:
    check("has_table", engine.dialect.has_table(conn, "births", schema="druid"), True)
    check("has_table missing", engine.dialect.has_table(conn, "nosuch", schema="druid"), False)
cols = {c["name"]: c for c in insp.get_columns("births", schema="druid")}
check("columns", sorted(cols), sorted(["__time", "gender", "name", "num", "state", "num_boys", "num_girls"]))
check("time type", type(cols["__time"]["type"]).__name__, "TIMESTAMP")
check("num type", type(cols["num"]["type"]).__name__, "BigInteger")
check("name type", type(cols["name"]["type"]).__name__, "String")


def rows(sql):
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text(sql))]


def iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# Time series by year, Superset's TIME_FLOOR over a CAST, with a plain-string time filter.
got = rows(
    'SELECT TIME_FLOOR(CAST("__time" AS TIMESTAMP), \'P1Y\') AS "__timestamp", SUM("num") AS "SUM(num)" '
    'FROM "druid"."births" WHERE "__time" >= \'1990-01-01 00:00:00.000000\' AND "__time" < \'2000-01-01 00:00:00.000000\' '
    'GROUP BY TIME_FLOOR(CAST("__time" AS TIMESTAMP), \'P1Y\') ORDER BY "SUM(num)" DESC LIMIT 100'
)
want = duck.execute(
    "SELECT date_trunc('year', __time) AS t, SUM(num) AS s FROM births "
    "WHERE __time >= '1990-01-01' AND __time < '2000-01-01' GROUP BY 1 ORDER BY 2 DESC LIMIT 100"
).fetchall()
check("yearly series", got, [(iso(t), s) for t, s in want])

# Top-N with ORDER BY an aggregate's alias, SQL Lab's LIMIT appended.
got = rows(
    'SELECT "name" AS "name", SUM("num") AS "SUM(num)" FROM "druid"."births" WHERE "gender" = \'girl\' '
    'GROUP BY "name" ORDER BY "SUM(num)" DESC LIMIT 5'
)
want = duck.execute(
    "SELECT name, SUM(num) FROM births WHERE gender = 'girl' GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
).fetchall()
check("top names", got, want)

# Superset's series limit as a two-phase query: the top series first, then an IN filter.
top = [r[0] for r in rows('SELECT "state" FROM "druid"."births" GROUP BY "state" ORDER BY SUM("num") DESC LIMIT 3')]
in_list = ", ".join(f"'{s}'" for s in top)
got = rows(
    f'SELECT "state", TIME_FLOOR(CAST("__time" AS TIMESTAMP), \'P1Y\') AS "__timestamp", COUNT(*) AS "count" '
    f'FROM "druid"."births" WHERE "state" IN ({in_list}) GROUP BY 1, 2 ORDER BY 1, 2'
)
want = duck.execute(
    f"SELECT state, date_trunc('year', __time) AS t, COUNT(*) FROM births "
    f"WHERE state IN ({in_list}) GROUP BY 1, 2 ORDER BY 1, 2"
).fetchall()
check("series limit", got, [(s, iso(t), n) for s, t, n in want])

# A bad query surfaces as a DB-API error with Druid's error class in the message.
try:
    rows('SELECT "nope" FROM "druid"."births"')
    failures.append("unknown column: no error raised")
except sa.exc.DBAPIError as e:
    check("error names column", "nope" in str(e), True)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("pydruid/SQLAlchemy: all checks passed")
