"""Users and grants through the real clients: psycopg (SCRAM-SHA-256), pydruid (HTTP basic auth, as Superset's
Druid engine sends it) and requests (basic auth and Bearer tokens).

Usage: auth_clients.py HTTP_PORT PG_PORT ADMIN_PASSWORD BIRTHS_JSON_GZ

The server runs with auth on, an admin user `basalt`, tables births and flights, and users made by the calling
test: ana (a member of reader, which may read births) and wes (may read and write flights). Expected counts come
from DuckDB over the raw births file. Exits non-zero with every mismatch listed.
"""
import sys

import psycopg
import pydruid.db
import requests

from births_duckdb import births

http_port, pg_port, admin_pw, births_file = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{http_port}"
want_births = births(births_file, "ds").execute("SELECT COUNT(*) FROM births").fetchone()[0]
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


def pg(user, password):
    return psycopg.connect(host="127.0.0.1", port=pg_port, user=user, password=password, dbname="basalt",
                           autocommit=True)


def sqlstate_of(conn, sql):
    try:
        conn.execute(sql).fetchall()
        return None
    except psycopg.Error as e:
        return e.sqlstate


def admin_sql(sql):
    r = requests.post(f"{base}/v1/sql", json={"query": sql}, auth=("basalt", admin_pw))
    check(f"admin {sql}", r.status_code, 200)


# psycopg: SCRAM-SHA-256 logins, grants per table, SQLSTATE 42501 and 28P01.
with pg("ana", "ana-pw") as ana:
    check("psycopg ana births", ana.execute("SELECT COUNT(*) FROM births").fetchone()[0], want_births)
    check("psycopg ana flights", sqlstate_of(ana, "SELECT COUNT(*) FROM flights"), "42501")
    tables = [r[0] for r in ana.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")]
    check("psycopg ana sees only births", tables, ["births"])
    check("psycopg ana cannot grant", sqlstate_of(ana, "GRANT SELECT ON flights TO ana"), "42501")
    check("psycopg ana cannot drop", sqlstate_of(ana, "DROP TABLE births"), "42501")
    # A grant revoked while the connection is open is gone for its next statement.
    admin_sql("REVOKE SELECT ON births FROM reader")
    check("psycopg ana after revoke", sqlstate_of(ana, "SELECT COUNT(*) FROM births"), "42501")
    admin_sql("GRANT SELECT ON births TO reader")
    check("psycopg ana after re-grant", ana.execute("SELECT COUNT(*) FROM births").fetchone()[0], want_births)
try:
    pg("ana", "not-her-password").close()
    failures.append("psycopg: a wrong password logged in")
except psycopg.OperationalError as e:
    check("psycopg wrong password message", "password authentication failed" in str(e).lower(), True)
with pg("wes", "wes-pw") as wes:
    check("psycopg wes births", sqlstate_of(wes, "SELECT COUNT(*) FROM births"), "42501")
    check("psycopg wes flights", sqlstate_of(wes, "SELECT COUNT(*) FROM flights"), None)

# pydruid: basic auth on the Druid SQL API.
conn = pydruid.db.connect(host="127.0.0.1", port=int(http_port), path="/druid/v2/sql/", scheme="http",
                          user="ana", password="ana-pw")
check("pydruid ana births", conn.cursor().execute("SELECT COUNT(*) FROM births").fetchone()[0], want_births)
try:
    conn.cursor().execute("SELECT COUNT(*) FROM flights").fetchone()
    failures.append("pydruid: ana read flights")
except Exception as e:  # pydruid raises its own exception types, with Druid's error text
    check("pydruid forbidden says why", "permission denied for table flights" in str(e), True)
bad = pydruid.db.connect(host="127.0.0.1", port=int(http_port), path="/druid/v2/sql/", scheme="http",
                         user="ana", password="wrong")
try:
    bad.cursor().execute("SELECT 1").fetchone()
    failures.append("pydruid: a wrong password was answered")
except Exception as e:
    check("pydruid wrong password", "Unauthorized" in str(e) or "401" in str(e), True)

# requests: Druid's error shapes, tokens (as Bearer and as a basic-auth password), revocation at once.
r = requests.post(f"{base}/druid/v2/sql", json={"query": "SELECT 1"})
check("druid 401 status", r.status_code, 401)
check("druid 401 shape", r.json().get("error"), "Unauthorized")
r = requests.post(f"{base}/druid/v2/sql", json={"query": "SELECT * FROM flights"}, auth=("ana", "ana-pw"))
check("druid 403 status", r.status_code, 403)
check("druid 403 shape", (r.json().get("error"), r.json().get("errorClass")),
      ("Forbidden", "org.apache.druid.server.security.ForbiddenException"))
r = requests.post(f"{base}/v1/users/ana/tokens", json={"name": "dashboard"}, auth=("ana", "ana-pw"))
check("ana makes her own token", r.status_code, 201)
token, token_id = r.json()["token"], r.json()["id"]
bearer = {"Authorization": f"Bearer {token}"}
r = requests.post(f"{base}/v1/sql", json={"query": "SELECT COUNT(*) FROM births", "format": "csv"}, headers=bearer)
check("bearer token query", r.text.splitlines()[-1] if r.ok else r.text, str(want_births))
r = requests.post(f"{base}/v1/sql", json={"query": "SELECT 1"}, auth=("ana", token))
check("token as basic-auth password", r.status_code, 200)
r = requests.post(f"{base}/v1/users/wes/tokens", json={}, auth=("ana", "ana-pw"))
check("ana cannot make wes a token", r.status_code, 403)
r = requests.delete(f"{base}/v1/users/ana/tokens/{token_id}", auth=("basalt", admin_pw))
check("admin revokes the token", r.status_code, 200)
r = requests.post(f"{base}/v1/sql", json={"query": "SELECT 1"}, headers=bearer)
check("revoked token at once", r.status_code, 401)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("auth clients: all checks passed")
