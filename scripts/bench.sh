#!/usr/bin/env bash
# make bench: the Go benchmarks of the hot paths, then an end-to-end load run
# (a generated catalog through the feed, a generated usage file through
# ingest -> mediate -> rate -> MURs, then every MUR aggregated and synced to
# the built-in fake core) on a fresh vivace dev. Results go to .data/bench/;
# copy the figures into docs/benchmarks.md with the machine's size.
set -euo pipefail
cd "$(dirname "$0")/.."

VIVACE=bin/vivace
OUT=.data/bench
RECORDS=${BENCH_RECORDS:-1000000}
ACCOUNTS=${BENCH_ACCOUNTS:-10000}
HTTP=${BENCH_HTTP_ADDR:-127.0.0.1:18180}
KAFKA=${BENCH_KAFKA_ADDR:-127.0.0.1:19192}
API=http://$HTTP
# The end-to-end file: realistic skew (a few large accounts, many small)
# and exceptions from both stages that make them: every 20th record bad
# (mediate: a bad quantity or timestamp) and every 8th of an unknown
# account (rate; 10% of the records, the bad ones left out): 15% in all.
HOT_ACCOUNTS=${BENCH_HOT_ACCOUNTS:-20}
HOT_PERCENT=${BENCH_HOT_PERCENT:-30}
BAD_EVERY=${BENCH_BAD_EVERY:-20}
UNKNOWN_EVERY=${BENCH_UNKNOWN_EVERY:-8}
# BENCH_DATABASE_URL runs vivace dev on that database (dropped and created
# first) instead of vivace_bench on the local server.
DB=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/vivace_bench?sslmode=disable}
# BENCH_SKIP_BARE=1 leaves out the bare COPY.
# BENCH_PROFILE=N takes an N-second CPU profile of vivace dev from the
# fifth second of the end-to-end run (.data/bench/e2e.cpu; go tool pprof
# -top bin/vivace .data/bench/e2e.cpu).
PROFILE=${BENCH_PROFILE:-0}
devflags=()
[ "$PROFILE" -gt 0 ] && devflags+=(--pprof)
mkdir -p "$OUT"

echo "==> machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB memory, $(go version | cut -d' ' -f3)"

if [ "${BENCH_SKIP_GO:-}" != 1 ]; then
  echo "==> Go benchmarks (go test -bench) -> $OUT/go.txt"
  go test -run '^$' -bench . -skip 'StageAlone|HopAlone' -benchmem -benchtime "${BENCH_TIME:-1s}" ./internal/... ./plugins/... | tee "$OUT/go.txt" | grep -E '^(Benchmark|ok|FAIL)' || true

  # The ingest and mediate pipelines each alone, built from their YAML,
  # against the embedded broker: records/s per stage, and the ingest
  # stage's peak heap (run with two BENCH_STAGE_RECORDS to see it stay flat);
  # and the floor of a hop between them (a bare Kafka client each way).
  echo "==> ingestion stages alone, ${BENCH_STAGE_RECORDS:-500000} records (go test -bench StageAlone) -> $OUT/stages-alone.txt"
  VIVACE_BENCH_RECORDS=${BENCH_STAGE_RECORDS:-500000} go test -run '^$' -bench 'StageAlone|HopAlone' -benchtime 1x \
    -count "${BENCH_STAGE_COUNT:-3}" ./plugins/benthos | tee "$OUT/stages-alone.txt" | grep -E '^(Benchmark|ok|FAIL)' || true

  # TMF635 streaming latency: usages posted at a steady rate to a vivace dev
  # of its own, each timed from when it was due to when its MUR is visible.
  echo "==> TMF635 POST /usage -> MUR, ${BENCH_TMF_RATE:-1000}/s for ${BENCH_TMF_SECONDS:-60} s (go test -bench TMF635PostToMUR) -> $OUT/tmf635.txt"
  VIVACE_BENCH_TMF_RATE=${BENCH_TMF_RATE:-1000} VIVACE_BENCH_TMF_SECONDS=${BENCH_TMF_SECONDS:-60} \
    go test -run '^$' -bench TMF635PostToMUR -benchtime 1x -timeout 30m ./tests/e2e | tee "$OUT/tmf635.txt" | grep -E '^(Benchmark|ok|FAIL)' || true
fi

echo "==> generating $RECORDS records over $ACCOUNTS accounts"
"$VIVACE" feed generate --client bench --accounts "$ACCOUNTS" --plans 10 --out "$OUT/catalog.jsonl"
"$VIVACE" usage generate --client bench --records "$RECORDS" --accounts "$ACCOUNTS" --seed "$(date +%s)" \
  --hot-accounts "$HOT_ACCOUNTS" --hot-percent "$HOT_PERCENT" --bad-every "$BAD_EVERY" --unknown-every "$UNKNOWN_EVERY" \
  --out "$OUT/usage.csv"
ls -l "$OUT/usage.csv"

if [ -n "${BENCH_DATABASE_URL:-}" ]; then
  admin=$(echo "$DB" | sed -E 's#/[^/?]+(\?|$)#/postgres\1#')
  name=$(echo "$DB" | sed -E 's#.*/([^/?]+)(\?.*)?$#\1#')
  psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name"
  rm -rf "$OUT/dev"
  DATABASE_URL=$DB "$VIVACE" dev --http-addr "$HTTP" --kafka-addr "$KAFKA" --data-dir "$OUT/dev" \
    --log-level warn "${devflags[@]}" >"$OUT/dev.log" 2>&1 &
else
  unset DATABASE_URL
  "$VIVACE" dev --http-addr "$HTTP" --kafka-addr "$KAFKA" --data-dir "$OUT/dev" --database vivace_bench --reset \
    --log-level warn "${devflags[@]}" >"$OUT/dev.log" 2>&1 &
fi
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
# The commands below find vivace dev's local admin token there.
export VIVACE_DATA_DIR="$OUT/dev"
for i in $(seq 1 120); do
  curl -fsS "$API/readyz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { tail -n 30 "$OUT/dev.log"; exit 1; }
  sleep 0.5
done

# No scheduled sync cycle during the load: the MUR sync is measured on its
# own below.
"$VIVACE" config set --api "$API" mur_sync.interval 24h >/dev/null
"$VIVACE" config set --api "$API" mur_sync.batch_size "${BENCH_SYNC_BATCH:-1000}" >/dev/null

echo "==> catalog through the feed"
start=$(date +%s.%N)
"$VIVACE" feed publish --brokers "$KAFKA" --api "$API" --wait "$OUT/catalog.jsonl"
end=$(date +%s.%N)
events=$(wc -l <"$OUT/catalog.jsonl")
awk -v n="$events" -v a="$start" -v b="$end" 'BEGIN{printf "feed: %d events in %.1f s = %.0f events/s\n", n, b-a, n/(b-a)}' 

echo "==> end to end: file -> usage.raw -> usage.mediated -> MURs"
# CPU time, besides the wall clock: vivace dev's, and that of the server
# processes connected to the database (readable when the server runs on
# this machine). On a machine shared with other work the wall clock
# moves with the others' load; CPU time per record much less.
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
db_cpu() {
  local t=0 p
  for p in $(psql "$DB" -qAt -c "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); do
    t=$((t + $(proc_cpu "$p")))
  done
  echo $t
}
dev_cpu0=$(proc_cpu $pid)
db_cpu0=$(db_cpu)
# Each stage's output counter, sampled every quarter second, gives the
# stage's own rate: records over the time between its first and last move.
sample() {
  while true; do
    printf '%s ' "$(date +%s.%N)"
    curl -fsS "$API/metrics" 2>/dev/null | awk '
      /^output_sent_total\{label="raw",.*stream="ingest"/ {raw=$2}
      /^output_sent_total\{label="mediated",.*stream="mediate"/ {med=$2}
      /^output_sent_total\{label="rate",.*stream="rate"/ {rated=$2}
      END {printf "%d %d %d\n", raw, med, rated}'
    sleep 0.25
  done
}
sample >"$OUT/stages.txt" &
sampler=$!
if [ "$PROFILE" -gt 0 ]; then
  (sleep 5; curl -fsS -H "Authorization: Bearer $(cat "$OUT/dev/token")" \
    "$API/debug/pprof/profile?seconds=$PROFILE" -o "$OUT/e2e.cpu") &
fi
start=$(date +%s.%N)
"$VIVACE" ingest --client bench --api "$API" --wait "$OUT/usage.csv" | tee "$OUT/ingest.json"
end=$(date +%s.%N)
kill $sampler 2>/dev/null || true
awk '
  { for (i = 2; i <= 4; i++) { if ($i > last[i]) { if (!(i in first)) { first[i] = prev[i]; base[i] = last[i] } t1[i] = $1; n[i] = $i } last[i] = $i; prev[i] = $1 } }
  END {
    split("file -> usage.raw,usage.raw -> usage.mediated,usage.mediated -> MURs", name, ",")
    for (i = 2; i <= 4; i++) if (t1[i] > first[i])
      printf "stage %s: %d records in %.1f s = %.0f records/s\n", name[i-1], n[i]-base[i], t1[i]-first[i], (n[i]-base[i])/(t1[i]-first[i])
  }' "$OUT/stages.txt" | tee "$OUT/stages-summary.txt"
dev_cpu=$(( $(proc_cpu $pid) - dev_cpu0 ))
db_cpu=$(( $(db_cpu) - db_cpu0 ))
rss=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
awk -v n="$RECORDS" -v a="$start" -v b="$end" -v rss="$rss" \
  'BEGIN{printf "end to end: %d records in %.1f s = %.0f records/s; peak RSS of vivace dev %d MiB\n", n, b-a, n/(b-a), rss/1024}' | tee "$OUT/e2e.txt"
hz=$(getconf CLK_TCK)
awk -v n="$RECORDS" -v d="$dev_cpu" -v p="$db_cpu" -v hz="$hz" \
  'BEGIN{printf "end to end CPU: vivace dev %.1f s (%.1f us/record), database %.1f s (%.1f us/record)\n", d/hz, d/hz/n*1e6, p/hz, p/hz/n*1e6}' | tee -a "$OUT/e2e.txt"
e2e_s=$(awk -v a="$start" -v b="$end" 'BEGIN{print b-a}')

# What each record became, and how long from the upload (the file's
# received_at) to its MUR (rated_at): the file is read as it arrives, so
# the median is about half the run.
psql "$DB" -qAt -F' ' -c "
  SELECT 'outcomes: ' || murs || ' MURs, ' || exceptions || ' exceptions (' ||
         round(100.0 * exceptions / greatest(records, 1), 1) || '%), ' || filtered || ' filtered'
  FROM files WHERE client = 'bench' ORDER BY received_at DESC LIMIT 1" | tee -a "$OUT/e2e.txt"
psql "$DB" -qAt -F' ' -c "
  SELECT 'latency upload -> MUR: p50 ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s)::numeric, 1) ||
         ' s, p99 ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY s)::numeric, 1) || ' s'
  FROM (SELECT extract(epoch FROM m.rated_at - f.received_at) AS s
        FROM murs m JOIN files f USING (file_id) WHERE m.client = 'bench') t" | tee -a "$OUT/e2e.txt"

# The limit to compare with: PostgreSQL alone writing as many finished MUR
# rows of the same shape (the MURs just made, repeated to $RECORDS rows
# with new ids) with one COPY into a fresh table like murs (its indexes and
# constraints) in the same database.
if [ "${BENCH_SKIP_BARE:-}" != 1 ]; then
echo "==> bare COPY of $RECORDS MUR rows into a fresh table like murs"
cols="mur_id, client, record_id, file_id, line, part, account_id, usage_type, quantity, usage_time, currency, gross_amount, discount_amount, net_amount, rate_detail, qualifiers, attributes"
psql "$DB" -qc "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS bench_bare_murs" -c "CREATE TABLE bench_bare_murs (LIKE murs INCLUDING ALL)"
# (\copy takes one line)
q=$(tr '\n' ' ' <<SQL
SELECT (substr(m.mur_id::text, 1, 24) || lpad(to_hex(g), 4, '0') || substr(m.mur_id::text, 29))::uuid,
  client, record_id || '-' || g, file_id, line, part, account_id, usage_type, quantity, usage_time, currency,
  gross_amount, discount_amount, net_amount, rate_detail, qualifiers, attributes
FROM generate_series(0, 2) g, murs m WHERE m.client = 'bench' LIMIT $RECORDS
SQL
)
psql "$DB" -qc "\\copy ($q) TO '$OUT/bare-murs.txt'"
start=$(date +%s.%N)
psql "$DB" -qAt >"$OUT/bare-cpu.txt" <<SQL
SELECT pg_backend_pid() AS pid \\gset
\\setenv PID :pid
\\! awk '{print \$14 + \$15}' /proc/\$PID/stat
\\copy bench_bare_murs ($cols) FROM '$OUT/bare-murs.txt'
\\! awk '{print \$14 + \$15}' /proc/\$PID/stat
SQL
end=$(date +%s.%N)
bare_cpu=$(awk 'NR==1{a=$1} NR==2{b=$1} END{print b-a}' "$OUT/bare-cpu.txt")
rows=$(wc -l <"$OUT/bare-murs.txt")
psql "$DB" -qc "DROP TABLE bench_bare_murs"
rm -f "$OUT/bare-murs.txt"
awk -v n="$rows" -v a="$start" -v b="$end" -v e="$e2e_s" \
  'BEGIN{printf "bare COPY: %d MUR rows in %.1f s = %.0f rows/s; end to end / bare COPY = %.1f\n", n, b-a, n/(b-a), e/(b-a)}' | tee -a "$OUT/e2e.txt"
awk -v c="$bare_cpu" -v d="$dev_cpu" -v p="$db_cpu" -v n="$rows" -v hz="$hz" \
  'BEGIN{if (c > 0) printf "bare COPY CPU: %.1f s (%.1f us/row); end to end CPU (vivace dev + database) / bare COPY CPU = %.1f\n", c/hz, c/hz/n*1e6, (d+p)/c}' | tee -a "$OUT/e2e.txt"
fi

if [ "${BENCH_SKIP_SYNC:-}" != 1 ]; then
  echo "==> MUR sync: every MUR aggregated and synced to the built-in fake core, batch size ${BENCH_SYNC_BATCH:-1000}"
  start=$(date +%s.%N)
  "$VIVACE" sync run --client bench --api "$API" --timeout 60m | tee "$OUT/sync.json"
  end=$(date +%s.%N)
  murs=$(sed -n 's/.*"murs":\([0-9]*\).*/\1/p' "$OUT/sync.json")
  records=$(sed -n 's/.*"aggregates":\([0-9]*\).*/\1/p' "$OUT/sync.json")
  rss=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
  awk -v n="$murs" -v r="$records" -v a="$start" -v b="$end" -v rss="$rss" \
    'BEGIN{printf "sync: %d MURs (%d aggregated records) in %.1f s = %.0f MURs/s; peak RSS of vivace dev %d MiB\n", n, r, b-a, n/(b-a), rss/1024}' | tee "$OUT/sync.txt"
fi

if [ "${BENCH_FLOOD_ACCOUNTS:-0}" -gt 0 ]; then
  echo "==> feed flood: $BENCH_FLOOD_ACCOUNTS accounts, every 10th event followed by a troublesome one"
  "$VIVACE" feed generate --client flood --accounts "$BENCH_FLOOD_ACCOUNTS" --plans 10 --trouble-every 10 \
    --out "$OUT/flood.jsonl" 2>"$OUT/flood.expected"
  cat "$OUT/flood.expected"
  start=$(date +%s.%N)
  # Failed events are expected here; the counts are what is checked.
  "$VIVACE" feed publish --brokers "$KAFKA" --api "$API" --wait --timeout 60m "$OUT/flood.jsonl" \
    2>"$OUT/flood.err" | tee "$OUT/flood.json" || true
  end=$(date +%s.%N)
  sed 's/^expected: //' "$OUT/flood.expected" | cmp -s - "$OUT/flood.json" \
    && echo "flood: counts as expected" || { echo "flood: counts differ from the expected ones"; exit 1; }
  events=$(wc -l <"$OUT/flood.jsonl")
  rss=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
  awk -v n="$events" -v a="$start" -v b="$end" -v rss="$rss" \
    'BEGIN{printf "flood: %d events in %.1f s = %.0f events/s; peak RSS of vivace dev %d MiB\n", n, b-a, n/(b-a), rss/1024}'
fi
