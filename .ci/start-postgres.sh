#!/usr/bin/env bash
# Start a throwaway PostgreSQL server as an unprivileged user on a local port and print its URL.
# Usage: eval "$(bash .ci/start-postgres.sh)"   → exports RETAILBLOCKS_TEST_POSTGRES_URL
# wal_level=logical and room for replication slots: `blocks platform move` copies a merchant between two
# such servers by logical replication while it keeps serving (a server without it gets the paused copy).
set -euo pipefail
PORT="${RB_PG_PORT:-54329}"
DATA="${RB_PG_DATA:-/tmp/retailblocks-pg-$PORT}"
RUN_AS="${RB_PG_USER:-postgres}"

bindir=""
for candidate in /usr/lib/postgresql/*/bin; do
  [ -x "$candidate/initdb" ] && bindir="$candidate"
done
if [ -z "$bindir" ]; then
  echo "installing PostgreSQL from the distribution's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/initdb" ] && bindir="$candidate"
  done
fi
[ -n "$bindir" ] || { echo "no PostgreSQL binaries found" >&2; exit 1; }

if ! id "$RUN_AS" >/dev/null 2>&1; then
  useradd --system --create-home --shell /bin/bash "$RUN_AS" >&2
fi
as_user() {
  if [ "$(id -un)" = "$RUN_AS" ]; then "$@"; else su "$RUN_AS" -s /bin/bash -c "$(printf '%q ' "$@")"; fi
}

if [ -f "$DATA/postmaster.pid" ] && as_user "$bindir/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  echo "PostgreSQL already running on port $PORT" >&2
else
  rm -rf "$DATA"
  mkdir -p "$DATA"
  chown "$RUN_AS" "$DATA"
  as_user "$bindir/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
  as_user "$bindir/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
    -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
       -c wal_level=logical -c max_replication_slots=40 -c max_wal_senders=40 -c max_logical_replication_workers=16 -c max_worker_processes=32" \
    start >&2
fi
echo "export RETAILBLOCKS_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
