#!/usr/bin/env bash
# make demo: start vivace dev on a fresh data directory and database, load
# the sample catalog through the feed, ingest the sample usage file, print
# the counts, the MURs and the exceptions, sync the MURs to the built-in
# fake core billing system and print its totals next to the MURs', then
# stop (DEMO_KEEP=1: keep running for the console at / until Ctrl-C).
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
echo "==> console: $API/ (log in with the token in $DATA/token)"

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

echo "==> syncing the MURs to the core billing system (vivace sync run --client demo)"
"$VIVACE" sync run --client demo --api "$API" --timeout 2m

# The built-in fake core's totals per account and usage type must equal
# the MURs', to the minor unit, or the demo fails.
core=$(cat "$DATA/fake-core.url")
echo "==> totals per account and usage type: the MURs (vivace sync totals) | the fake core ($core/fake/totals)"
# account usage_type murs units amount synced_murs
murs_totals=$("$VIVACE" sync totals --client demo --api "$API" |
  sed -n 's/.*"account_id":"\([^"]*\)","usage_type":"\([^"]*\)",.*"murs":\([0-9]*\),"units":"\([^"]*\)","amount":"\([^"]*\)","synced_murs":\([0-9]*\).*/\1|\2 \3 \4 \5 \6/p' | LC_ALL=C sort)
# account usage_type records units amount
core_totals=$(curl -fsS "$core/fake/totals" | tr -d ' \n' | sed 's/},{/}\n{/g' |
  sed -n 's/.*"account":"\([^"]*\)","usage_type":"\([^"]*\)","records":\([0-9]*\),"units":"\([^"]*\)","amount":"\([^"]*\)".*/\1|\2 \3 \4 \5/p' | LC_ALL=C sort)
LC_ALL=C join -a1 -a2 -e - -o 0,1.2,1.3,1.4,1.5,2.2,2.3,2.4 <(echo "$murs_totals") <(echo "$core_totals") | awk '
  # Decimals compared as written without trailing zeros: exact, no floats.
  function norm(x) { if (x ~ /\./) { sub(/0+$/, "", x); sub(/\.$/, "", x) } return x }
  BEGIN { print "account usage_type murs units amount synced | records units amount same" }
  { split($1, k, "|"); same = (norm($3) == norm($7) && norm($4) == norm($8)) ? "yes" : "NO"; if (same == "NO") bad = 1
    print k[1], k[2], $2, $3, $4, $5, "|", $6, $7, $8, same }
  END { exit bad }' >"$DATA.totals" && ok=1 || ok=0
column -t "$DATA.totals" 2>/dev/null || cat "$DATA.totals"
if [ "$ok" != 1 ]; then
  echo "the fake core's totals differ from the MURs'" >&2
  exit 1
fi
synced=$(awk '{s += $5} END {print s + 0}' <<<"$murs_totals")
echo "$synced of $murs MURs synced; the core's totals equal the MURs' per account and usage type"

if [ "${DEMO_KEEP:-}" = 1 ]; then
  echo "==> the console is at $API/: log in with the token in $DATA/token; Ctrl-C stops vivace dev"
  wait "$pid" || true
else
  echo "==> to look around in the console ($API/, token in $DATA/token) before vivace dev stops: DEMO_KEEP=1 make demo"
fi
