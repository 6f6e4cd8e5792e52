#!/usr/bin/env bash
# Manage the local Kafka without Docker: start | stop | status | restart [--kill] [--timeout S].
#   deploy/local/kafka.sh start      # prints LEADTRAIL_KAFKA_BOOTSTRAP=127.0.0.1:PORT
# State, data and kafka.log live in ${LEADTRAIL_KAFKA_RUN_DIR:-<repo>/.run/kafka}; see devstack/kafka.py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${LEADTRAIL_PYTHON:-$root/.venv/bin/python}"
run_dir="${LEADTRAIL_KAFKA_RUN_DIR:-$root/.run/kafka}"

if [[ $# -eq 0 ]]; then
  echo "usage: $0 start|stop|status|restart [options]" >&2
  exit 2
fi
command="$1"
shift
cd "$root"
exec "$python" -m devstack servers kafka "$command" --run-dir "$run_dir" "$@"
