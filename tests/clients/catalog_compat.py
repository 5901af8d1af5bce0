"""Catalog compatibility with a real PostgreSQL: the queries psql, Grafana and SQLAlchemy (Superset's PostgreSQL
dialect, through psycopg2) send, answered by basalt and by a PostgreSQL 15+ server started here on the same table
definition; basalt's answers must have PostgreSQL's shape (and, where the data is the same, its values).

Usage: catalog_compat.py BASALT_PG_PORT

The births table is defined here by hand (the columns of datasets' birth_names2.json.gz, its time column NOT
NULL, as basalt declares it); basalt's other tables are created in PostgreSQL from basalt's
information_schema so that listings have the same rows. Exits non-zero, listing every difference.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2
import sqlalchemy as sa

BASALT_PORT = int(sys.argv[1])
BIRTHS = (
    "CREATE TABLE births (ds timestamp with time zone NOT NULL, gender text, name text, num bigint, "
    "state text, num_boys bigint, num_girls bigint)"
)
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}:\n  basalt:     {got!r}\n  postgresql: {want!r}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        sys.exit(f"PostgreSQL's {name} not found (Debian package postgresql)")
    return found[-1]


def start_postgres():
    """initdb into a temp dir and start on a loopback port; as nobody when run as root (initdb refuses root)."""
    tmp = tempfile.mkdtemp(prefix="basalt-pg-")
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "nobody")
        as_user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    data = os.path.join(tmp, "data")
    subprocess.run(
        as_user + [pg_bin("initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    subprocess.run(
        as_user
        + [
            pg_bin("pg_ctl"),
            "-D",
            data,
            "-l",
            os.path.join(tmp, "log"),
            "-w",
            "-o",
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    return tmp, data, port, as_user


def psql(port, user, command):
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", user, "-X", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    return out.stdout + out.stderr


def cells(text):
    """psql's aligned output as rows of stripped cells (header first), the title and row count dropped."""
    rows = []
    for line in text.splitlines():
        if "|" in line:
            rows.append([c.strip() for c in line.split("|")])
    return rows


tmp, data, pg_port, as_user = start_postgres()
try:
    basalt = psycopg2.connect(host="127.0.0.1", port=BASALT_PORT, user="basalt", dbname="basalt")
    basalt.autocommit = True
    pg = psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", dbname="postgres")
    pg.autocommit = True
    bc, pc = basalt.cursor(), pg.cursor()
    pc.execute(BIRTHS)
    bc.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name <> 'births' ORDER BY table_name, ordinal_position"
    )
    others = {}
    for table, column, ty, nullable in bc.fetchall():
        others.setdefault(table, []).append(f'"{column}" {ty}' + (" NOT NULL" if nullable == "NO" else ""))
    for table, cols in others.items():
        pc.execute(f'CREATE TABLE "{table}" ({", ".join(cols)})')

    # psql's describe commands: the same table, column by column.
    for cmd in [r"\d births", r"\d+ births"]:
        check(cmd, psql(BASALT_PORT, "basalt", cmd), psql(pg_port, "postgres", cmd))
    # Listings: same headers, same names (owners, sizes and databases differ by nature).
    for cmd, key in [(r"\dt", 1), (r"\d", 1), (r"\dt+", 1), (r"\dn", 0), (r"\dn+", 0), (r"\dn+", 3), (r"\l", None), (r"\l+", None),
                     (r"\du", None), (r"\df", None), (r"\dp", 1), (r"\dx", 0)]:
        b, p = cells(psql(BASALT_PORT, "basalt", cmd)), cells(psql(pg_port, "postgres", cmd))
        if not b:
            failures.append(f"{cmd}: basalt answered {psql(BASALT_PORT, 'basalt', cmd)!r}")
            continue
        check(f"{cmd} header", b[0], p[0])
        if key is not None:
            # (A row with an empty name continues the one above: a multi-line access-privileges cell.)
            names = lambda rows: [r[key] for r in rows[1:] if r[key]]  # noqa: E731
            check(f"{cmd} names", names(b), names(p))
    size = cells(psql(BASALT_PORT, "basalt", r"\dt+ births"))
    check(r"\dt+ size is PostgreSQL's format", bool(re.fullmatch(r"\d+ (bytes|kB|MB|GB)", size[1][6])), True)

    # Grafana and driver catalog queries: same column names, types and rows.
    queries = [
        "SELECT column_name, data_type, is_nullable, ordinal_position, numeric_scale, udt_name "
        "FROM information_schema.columns WHERE table_name = 'births' ORDER BY ordinal_position",
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'public' ORDER BY table_name",
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attnum "
        "FROM pg_catalog.pg_attribute a WHERE a.attrelid = 'births'::regclass AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum",
        "SELECT c.relname, c.relkind, n.nspname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = ANY (ARRAY['r', 'p']) AND n.nspname = 'public' ORDER BY 1",
        "SELECT 'births'::regclass::oid = c.oid FROM pg_catalog.pg_class c WHERE c.relname = 'births'",
        "SELECT t.typname, format_type(t.oid, NULL) FROM pg_catalog.pg_type t "
        "WHERE t.typname IN ('int8', 'text', 'timestamptz', 'float8', 'bool') ORDER BY 1",
        "SELECT quote_ident(table_name) AS \"table\" FROM information_schema.tables "
        "WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache') "
        "AND table_type = 'BASE TABLE' ORDER BY 1",
        "SELECT pg_size_pretty(1000::bigint), pg_size_pretty(123456789::bigint), pg_size_pretty(10240::bigint)",
        # DBeaver's schema and table lists.
        "SELECT n.oid, n.nspname, d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d "
        "ON d.objoid = n.oid AND d.objsubid = 0 AND d.classoid = 'pg_namespace'::regclass WHERE n.nspname = 'public'",
        "SELECT c.relname, c.relkind, d.description, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS partition_expr, "
        "pg_catalog.pg_get_partkeydef(c.oid) AS partition_key FROM pg_catalog.pg_class c LEFT OUTER JOIN "
        "pg_catalog.pg_description d ON d.objoid = c.oid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass "
        "WHERE c.relnamespace = 2200 AND c.relkind NOT IN ('i', 'I', 'c') ORDER BY 1",
    ]
    # Data queries as Grafana's macros expand them: PostgreSQL's births table is empty, so only the result's shape
    # (names and type families) is compared.
    shape_queries = [
        "SELECT floor(extract(epoch from ds) / 86400) * 86400 AS \"time\", count(*) AS \"value\" FROM births "
        "WHERE ds BETWEEN '1970-01-01T00:00:00Z' AND '1975-01-01T00:00:00Z' GROUP BY 1 ORDER BY 1",
        "SELECT extract(epoch from ds) AS \"time\", state AS metric, num AS value FROM births ORDER BY 1 LIMIT 5",
        # (SUM of a bigint is numeric in PostgreSQL and bigint in basalt, as in Druid and ClickHouse: not compared.)
        "SELECT date_trunc('month', ds) AS \"time\", gender, count(*) AS n, avg(num) AS a FROM births GROUP BY 1, 2 "
        "ORDER BY 1, 2 LIMIT 5",
        "SELECT DISTINCT state FROM births ORDER BY 1",
    ]
    # Type families: basalt's catalog columns are text, bigint, double and boolean, where PostgreSQL's are name,
    # "char", varchar, int2, int4, oid, float4 ...; clients read them alike.
    family = {19: "text", 18: "text", 25: "text", 1043: "text", 20: "int", 21: "int", 23: "int", 26: "int",
              700: "float", 701: "float", 1700: "float", 16: "bool", 1184: "timestamptz"}

    def types(desc):
        return [family.get(d.type_code, d.type_code) for d in desc]

    for q in queries:
        try:
            bc.execute(q)
            got = ([d.name for d in bc.description], types(bc.description), bc.fetchall())
        except psycopg2.Error as e:
            got = f"error: {e}".strip()
        pc.execute(q)
        want = ([d.name for d in pc.description], types(pc.description), pc.fetchall())
        check(q, got, want)

    for q in shape_queries:
        try:
            bc.execute(q)
            got = ([d.name for d in bc.description], types(bc.description))
        except psycopg2.Error as e:
            got = f"error: {e}".strip()
        pc.execute(q)
        check(q, got, ([d.name for d in pc.description], types(pc.description)))

    # SQLAlchemy's PostgreSQL dialect over psycopg2, as Superset reflects a table.
    def reflect(url):
        engine = sa.create_engine(url)
        insp = sa.inspect(engine)
        out = {
            "schemas": [s for s in insp.get_schema_names() if s == "public"],
            "tables": sorted(insp.get_table_names()),
            "views": insp.get_view_names(),
            "has_table": insp.has_table("births"),
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c["default"]) for c in insp.get_columns("births")
            ],
            "pk": insp.get_pk_constraint("births")["constrained_columns"],
            "fks": insp.get_foreign_keys("births"),
            "indexes": insp.get_indexes("births"),
            "unique": insp.get_unique_constraints("births"),
            "checks": insp.get_check_constraints("births"),
            "comment": insp.get_table_comment("births"),
        }
        with engine.connect() as conn:
            out["select"] = conn.execute(sa.text("SELECT 1 AS one")).fetchall()
        engine.dispose()
        return out

    want = reflect(f"postgresql+psycopg2://postgres@127.0.0.1:{pg_port}/postgres")
    try:
        got = reflect(f"postgresql+psycopg2://basalt@127.0.0.1:{BASALT_PORT}/basalt")
        for k in want:
            check(f"sqlalchemy {k}", got.get(k), want[k])
    except Exception as e:  # noqa: BLE001 - report any failure of the reflection as a difference
        failures.append(f"sqlalchemy reflection over psycopg2 failed: {type(e).__name__}: {e}")
finally:
    subprocess.run(as_user + [pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("catalog compatibility: all checks agree with PostgreSQL")
