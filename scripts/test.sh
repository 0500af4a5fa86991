#!/usr/bin/env bash
# The whole suite: every test on SQLite (with PostgreSQL and Redis running for the tests that use them),
# then the database tests again on PostgreSQL. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/caredesk-test.XXXXXX)
chmod 755 "$dir"
trap 'bash scripts/test_servers.sh stop "$dir"' EXIT
eval "$(bash scripts/test_servers.sh start "$dir")"
export CAREDESK_TEST_PG_URL CAREDESK_TEST_REDIS_URL
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "== tests on SQLite =="
.venv/bin/pytest -q "$@"
rc=$?
echo "== database tests on PostgreSQL =="
CAREDESK_TEST_DB=postgres .venv/bin/pytest -q -m "postgres" "$@"
rc2=$?
# pytest exits 5 when a selection holds no test: not a failure of the suite.
[ $rc2 -eq 5 ] && rc2=0
[ $rc -ne 0 ] && exit $rc
exit $rc2
