#!/usr/bin/env bash
# make demo: start vivace dev on a fresh data directory and database, load
# the sample catalog through the feed, ingest the sample usage file, print
# the counts, the MURs and the exceptions, then stop.
set -euo pipefail
cd "$(dirname "$0")/.."

VIVACE=bin/vivace
DATA=${DEMO_DATA_DIR:-.data/demo}
HTTP=${DEMO_HTTP_ADDR:-127.0.0.1:18080}
KAFKA=${DEMO_KAFKA_ADDR:-127.0.0.1:19092}
API=http://$HTTP
SAMPLE=tests/testdata/demo

mkdir -p "$(dirname "$DATA")"
log="$DATA.log"
args=(dev --http-addr "$HTTP" --kafka-addr "$KAFKA" --data-dir "$DATA" --clients "$SAMPLE/clients.yaml")
if [ -z "${DATABASE_URL:-}" ] || [ "${DEMO_USE_DATABASE_URL:-}" != 1 ]; then
  # The demo runs on a database of its own, emptied at each run.
  unset DATABASE_URL
  args+=(--database vivace_demo --reset)
fi

echo "==> starting vivace dev (log: $log)"
"$VIVACE" "${args[@]}" >"$log" 2>&1 &
pid=$!
stop() {
  if kill -0 "$pid" 2>/dev/null; then
    echo "==> stopping vivace dev"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap stop EXIT

for i in $(seq 1 120); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "vivace dev exited; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  if curl -fsS "$API/readyz" >/dev/null 2>&1; then
    break
  fi
  if [ "$i" = 120 ]; then
    echo "vivace dev not ready after 60 s; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  sleep 0.5
done

# The commands below find vivace dev's local admin token there.
export VIVACE_DATA_DIR="$DATA"
echo "==> vivace dev is up at $API; its local admin token is in $DATA/token"

echo "==> loading the sample catalog through the feed"
"$VIVACE" feed publish --brokers "$KAFKA" --api "$API" --wait "$SAMPLE/catalog.jsonl"

echo "==> ingesting $SAMPLE/usage.csv"
set +e
result=$("$VIVACE" ingest --client demo --api "$API" --wait "$SAMPLE/usage.csv")
rc=$?
set -e
echo "$result"
[ $rc -eq 0 ] || { echo "ingest failed" >&2; exit 1; }

# records = murs + exceptions + filtered, or the demo fails.
num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$result"; }
records=$(num records) murs=$(num murs) exceptions=$(num exceptions) filtered=$(num filtered)
if [ $((murs + exceptions + filtered)) -ne "$records" ]; then
  echo "counts do not add up: $records records, $murs MURs, $exceptions exceptions, $filtered filtered" >&2
  exit 1
fi
echo "$records records = $murs MURs + $exceptions exceptions + $filtered filtered"

echo "==> MURs (vivace murs export --client demo --format csv)"
"$VIVACE" murs export --client demo --api "$API" --format csv | cut -d, -f3,5,7-9,11-14 | column -s, -t 2>/dev/null || \
  "$VIVACE" murs export --client demo --api "$API" --format csv
echo "==> exceptions (vivace exceptions export --client demo --format csv)"
"$VIVACE" exceptions export --client demo --api "$API" --format csv | cut -d, -f3,5,7,8 | column -s, -t 2>/dev/null || \
  "$VIVACE" exceptions export --client demo --api "$API" --format csv
