#!/usr/bin/env bash
# Builds basalt, loads the bundled sample datasets (datasets/superset-examples) into ./data/sample,
# shows what was stored, then serves SQL on it (HTTP :8080, Druid API, PostgreSQL :5433) until Ctrl-C.
# Safe to run again: each table is reloaded with --replace.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p basalt-server
BASALT=./target/release/basalt
DATA=${BASALT_DATA_DIR:-./data/sample}
SAMPLES=datasets/superset-examples

$BASALT load --data-dir "$DATA" --table births --time-column ds --replace "$SAMPLES/birth_names2.json.gz"
$BASALT load --data-dir "$DATA" --table flights --time-column ts --replace \
  --transform "ts=concat(YEAR, '-', lpad(MONTH, 2, '0'), '-', lpad(DAY, 2, '0'))" "$SAMPLES/flight_data.csv.gz"
$BASALT load --data-dir "$DATA" --table sales --time-column order_date --time-format '%m/%d/%Y' \
  --segment-granularity month --replace "$SAMPLES/sales.csv.gz"

echo
$BASALT tables --data-dir "$DATA"
echo
$BASALT verify --data-dir "$DATA" | tail -n 1
echo
echo "+ basalt query --data-dir $DATA \"SELECT AIRLINE, COUNT(*) ... FROM flights ...\""
$BASALT query --data-dir "$DATA" \
  "SELECT AIRLINE, COUNT(*) AS flights, AVG(DEPARTURE_DELAY) AS avg_delay FROM flights
   WHERE ORIGIN_AIRPORT IN ('SFO', 'LAX', 'JFK') GROUP BY AIRLINE ORDER BY flights DESC LIMIT 5"
echo
HTTP=${BASALT_HTTP:-127.0.0.1:8080}
PG=${BASALT_PG:-127.0.0.1:5433}
echo "Serving SQL on the sample (Ctrl-C stops):"
echo "  curl -s $HTTP/v1/sql -d '{\"query\": \"SELECT state, SUM(num) FROM births GROUP BY 1 ORDER BY 2 DESC LIMIT 5\"}'"
echo "  curl -s $HTTP/druid/v2/sql -H 'content-type: application/json' -d '{\"query\": \"SELECT COUNT(*) FROM flights\"}'"
echo "  psql -h ${PG%:*} -p ${PG##*:} -U basalt -c 'SELECT gender, COUNT(*) FROM births GROUP BY 1'"
exec $BASALT serve --data-dir "$DATA" --http "$HTTP" --pg "$PG"
