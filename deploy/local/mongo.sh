#!/usr/bin/env bash
# Manage the local MongoDB-wire store (mongo-java-server, H2 backend) without Docker:
#   start | stop | status | restart [--kill] [--timeout S]
#   deploy/local/mongo.sh start      # prints LEADTRAIL_MONGO_URL=mongodb://127.0.0.1:PORT/
# State, data and mongo.log live in ${LEADTRAIL_MONGO_RUN_DIR:-<repo>/.run/mongo};
# see devstack/mongo_server.py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${LEADTRAIL_PYTHON:-$root/.venv/bin/python}"
run_dir="${LEADTRAIL_MONGO_RUN_DIR:-$root/.run/mongo}"

if [[ $# -eq 0 ]]; then
  echo "usage: $0 start|stop|status|restart [options]" >&2
  exit 2
fi
command="$1"
shift
cd "$root"
exec "$python" -m devstack servers mongo "$command" --run-dir "$run_dir" "$@"
