#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster (Debian's postgresql package): initdb into a
# temporary folder, start it on a free local port (listening on 127.0.0.1 only), run the command
# with OCR_DB_ENGINE=postgresql and the POSTGRES_* variables pointing at it, then stop the cluster
# and delete it, whatever the command did. `make test` runs the database-touching tests through it.
#   scripts/with-postgres.sh .venv/bin/python -m pytest tests/api
set -euo pipefail
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$BIN/initdb" ] || { echo "no PostgreSQL server binaries: scripts/system-deps.sh test installs postgresql" >&2; exit 1; }
DIR="$(mktemp -d /tmp/ocr-pg-XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
AS=()
if [ "$(id -u)" -eq 0 ]; then  # the server refuses to run as root: run it as the package's user
  chown postgres "$DIR"
  AS=(runuser -u postgres --)
fi
cleanup() {
  "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U ocr --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
"${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
export OCR_DB_ENGINE=postgresql POSTGRES_HOST=127.0.0.1 POSTGRES_PORT="$PORT" POSTGRES_USER=ocr POSTGRES_DB=ocr POSTGRES_PASSWORD=
"$@"
