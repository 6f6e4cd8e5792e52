#!/usr/bin/env bash
# Manage the local FerretDB (MongoDB wire protocol) without Docker:
#   start | stop | status | restart [--kill] [--timeout S]
#   deploy/local/ferretdb.sh start      # prints LEADTRAIL_MONGO_URL=mongodb://127.0.0.1:PORT/
# State, data and ferretdb.log live in ${LEADTRAIL_FERRETDB_RUN_DIR:-<repo>/.run/ferretdb};
# see ops/infra/ferretdb.py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${LEADTRAIL_PYTHON:-$root/.venv/bin/python}"
run_dir="${LEADTRAIL_FERRETDB_RUN_DIR:-$root/.run/ferretdb}"

if [[ $# -eq 0 ]]; then
  echo "usage: $0 start|stop|status|restart [options]" >&2
  exit 2
fi
command="$1"
shift
cd "$root"
exec "$python" -m ops.infra ferretdb "$command" --run-dir "$run_dir" "$@"
