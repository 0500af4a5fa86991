#!/usr/bin/env bash
# start DIR | stop DIR: throwaway PostgreSQL and Redis servers on free loopback ports for the tests.
# `start` prints shell exports (CAREDESK_TEST_PG_URL, CAREDESK_TEST_REDIS_URL) to eval.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?dir}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    pg_port=$(free_port)
    as_postgres "$pgbin/initdb" -D "$dir/pg" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
    # Durability off for tests (they hold only test data and die with the run); DURABLE=1 keeps
    # PostgreSQL's defaults, for benchmarks.
    opts="-p $pg_port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300"
    [ "${DURABLE:-0}" = "1" ] || opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    as_postgres "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w start -o "$opts" >/dev/null
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
    for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    echo "export CAREDESK_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"
    echo "export CAREDESK_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0"
    ;;
  stop)
    [ -d "$dir/pg" ] && as_postgres "$pgbin/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -rf "$dir"
    ;;
esac
