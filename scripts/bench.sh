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
mkdir -p "$OUT"

echo "==> machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB memory, $(go version | cut -d' ' -f3)"

if [ "${BENCH_SKIP_GO:-}" != 1 ]; then
  echo "==> Go benchmarks (go test -bench) -> $OUT/go.txt"
  go test -run '^$' -bench . -skip StageAlone -benchmem -benchtime "${BENCH_TIME:-1s}" ./internal/... ./plugins/... | tee "$OUT/go.txt" | grep -E '^(Benchmark|ok|FAIL)' || true

  # The ingest and mediate pipelines each alone, built from their YAML,
  # against the embedded broker: records/s per stage, and the ingest
  # stage's peak heap (run with two BENCH_STAGE_RECORDS to see it stay flat).
  echo "==> ingestion stages alone, ${BENCH_STAGE_RECORDS:-500000} records (go test -bench StageAlone) -> $OUT/stages-alone.txt"
  VIVACE_BENCH_RECORDS=${BENCH_STAGE_RECORDS:-500000} go test -run '^$' -bench StageAlone -benchtime 1x \
    -count "${BENCH_STAGE_COUNT:-3}" ./plugins/benthos | tee "$OUT/stages-alone.txt" | grep -E '^(Benchmark|ok|FAIL)' || true

  # TMF635 streaming latency: usages posted at a steady rate to a vivace dev
  # of its own, each timed from when it was due to when its MUR is visible.
  echo "==> TMF635 POST /usage -> MUR, ${BENCH_TMF_RATE:-1000}/s for ${BENCH_TMF_SECONDS:-60} s (go test -bench TMF635PostToMUR) -> $OUT/tmf635.txt"
  VIVACE_BENCH_TMF_RATE=${BENCH_TMF_RATE:-1000} VIVACE_BENCH_TMF_SECONDS=${BENCH_TMF_SECONDS:-60} \
    go test -run '^$' -bench TMF635PostToMUR -benchtime 1x -timeout 30m ./tests/e2e | tee "$OUT/tmf635.txt" | grep -E '^(Benchmark|ok|FAIL)' || true
fi

echo "==> generating $RECORDS records over $ACCOUNTS accounts"
"$VIVACE" feed generate --client bench --accounts "$ACCOUNTS" --plans 10 --out "$OUT/catalog.jsonl"
"$VIVACE" usage generate --client bench --records "$RECORDS" --accounts "$ACCOUNTS" --seed "$(date +%s)" --out "$OUT/usage.csv"
ls -l "$OUT/usage.csv"

unset DATABASE_URL
"$VIVACE" dev --http-addr "$HTTP" --kafka-addr "$KAFKA" --data-dir "$OUT/dev" --database vivace_bench --reset \
  --log-level warn >"$OUT/dev.log" 2>&1 &
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
rss=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
awk -v n="$RECORDS" -v a="$start" -v b="$end" -v rss="$rss" \
  'BEGIN{printf "end to end: %d records in %.1f s = %.0f records/s; peak RSS of vivace dev %d MiB\n", n, b-a, n/(b-a), rss/1024}' | tee "$OUT/e2e.txt"

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
