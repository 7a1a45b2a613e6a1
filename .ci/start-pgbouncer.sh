#!/usr/bin/env bash
# Start PgBouncer in transaction mode in front of the test PostgreSQL server (.ci/start-postgres.sh), as an
# unprivileged user on a local port, and print its URL.
# Usage: eval "$(bash .ci/start-pgbouncer.sh)"   → exports RETAILBLOCKS_TEST_PGBOUNCER_URL
# Every database of the server is reachable through it under its own name (the tests' fresh databases too).
set -euo pipefail
PG_PORT="${RB_PG_PORT:-54329}"
PORT="${RB_PGBOUNCER_PORT:-64329}"
DIR="${RB_PGBOUNCER_DIR:-/tmp/retailblocks-pgbouncer-$PORT}"
RUN_AS="${RB_PG_USER:-postgres}"

binary="$(command -v pgbouncer || true)"
[ -n "$binary" ] || { [ -x /usr/sbin/pgbouncer ] && binary=/usr/sbin/pgbouncer; } || true
if [ -z "$binary" ]; then
  echo "installing PgBouncer from the distribution's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq pgbouncer >&2
  binary="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
fi
[ -x "$binary" ] || { echo "no pgbouncer binary found" >&2; exit 1; }

if ! id "$RUN_AS" >/dev/null 2>&1; then
  useradd --system --create-home --shell /bin/bash "$RUN_AS" >&2
fi
as_user() {
  if [ "$(id -un)" = "$RUN_AS" ]; then "$@"; else su "$RUN_AS" -s /bin/bash -c "$(printf '%q ' "$@")"; fi
}

if [ -f "$DIR/pgbouncer.pid" ] && kill -0 "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null; then
  echo "PgBouncer already running on port $PORT" >&2
else
  rm -rf "$DIR"
  mkdir -p "$DIR"
  # The test server trusts local connections; PgBouncer still wants each user it lets in listed here.
  printf '"postgres" ""\n' >"$DIR/userlist.txt"
  cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
max_db_connections = 40
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
admin_users = postgres
EOF
  chown -R "$RUN_AS" "$DIR"
  as_user "$binary" -d "$DIR/pgbouncer.ini" >&2
  for _ in $(seq 1 50); do
    [ -f "$DIR/pgbouncer.pid" ] && break
    sleep 0.1
  done
  [ -f "$DIR/pgbouncer.pid" ] || { echo "PgBouncer did not start; see $DIR/pgbouncer.log" >&2; exit 1; }
fi
echo "export RETAILBLOCKS_TEST_PGBOUNCER_URL='postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres?pool_mode=transaction'"
