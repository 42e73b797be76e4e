#!/usr/bin/env bash
# A drop file through the import processor on local stand-ins for AWS, with latency:
# scripts/latency_proxy.py counts every AWS request by operation and delays it (8 ms
# DynamoDB, 20 ms S3, 10 ms SQS by default) while letting requests overlap, in front of
# moto (scripts/moto_server.py: SQS, and S3 for the process runs); DynamoDB and S3 requests
# are served in the proxy's process by scripts/dynamo_standin.py and scripts/s3_standin.py
# (in memory, answering in well under a millisecond, where moto spends ~9 ms of Python on a
# DynamoDB request and ~7 ms on an S3 one, one at a time: more than the latency being
# simulated). Before the benchmark, the store's contract suite runs against the stand-ins
# (their fidelity check).
#
#   scripts/bench-aws-drop.sh [RECORDS] [RSS_RECORDS...]     (default 2000, then 2000 20000)
#
# 1. The same RECORDS-record drop file (distinct OCLC numbers, all new) through
#    `Processor::handle` (functions/import-processor/examples/bench_drop.rs), per variant
#    on a fresh table: `before` (a lookup per record, commits one by one), `baseline` (the
#    chunk's lookups in one round, commit concurrency 1, one chunk at a time) and `after`
#    (BIBGATE_BENCH_CONCURRENCY commits in flight, default 16) and `fanout` (the file split
#    into chunk tasks of 100 records run by BIBGATE_BENCH_PARALLEL invocations at once,
#    default 20; BIBGATE_BENCH_VARIANTS picks variants). Prints requests per imported
#    record by operation, wall time, overlap factor (injected latency / wall time) and the
#    ratio to the baseline.
# 2. For each RSS_RECORDS, the function as a process (`bibgate-import-processor poll`) on tables and queues provisioned from infra/template.yaml (scripts/aws_local.py),
#    fed the drop file through the bucket's notification, under /usr/bin/time -v: its peak
#    RSS and wall time.
#
# Latencies: BIBGATE_BENCH_DYNAMODB_MS, BIBGATE_BENCH_S3_MS, BIBGATE_BENCH_SQS_MS.
# BIBGATE_BENCH_DYNAMODB=moto serves DynamoDB from moto instead of the stand-in,
# BIBGATE_BENCH_S3=moto S3 (the handler's variants; the process runs always use moto's S3);
# BIBGATE_BENCH_VARIANTS= (empty) runs only the process runs;
# BIBGATE_BENCH_CHECK=0 skips the contract suite; BIBGATE_BENCH_PROFILE=debug benchmarks a
# debug build (default release). Builds into $CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-2000}
shift || true
rss_records=("$@")
[ ${#rss_records[@]} -gt 0 ] || rss_records=(2000 20000)
target=${CARGO_TARGET_DIR:-target}
dynamodb_ms=${BIBGATE_BENCH_DYNAMODB_MS:-8}
s3_ms=${BIBGATE_BENCH_S3_MS:-20}
sqs_ms=${BIBGATE_BENCH_SQS_MS:-10}

dynamodb=${BIBGATE_BENCH_DYNAMODB:-standin}
s3=${BIBGATE_BENCH_S3:-standin}
case $s3 in moto|standin) ;; *) echo "BIBGATE_BENCH_S3 is moto or standin, not $s3" >&2; exit 2 ;; esac
profile=${BIBGATE_BENCH_PROFILE:-release}
case $dynamodb in moto|standin) ;; *) echo "BIBGATE_BENCH_DYNAMODB is moto or standin, not $dynamodb" >&2; exit 2 ;; esac
case $profile in
  release) cargo build -q --release -p bibgate-import-processor --example bench_drop --bin bibgate-import-processor ;;
  debug) cargo build -q -p bibgate-import-processor --example bench_drop --bin bibgate-import-processor ;;
  *) echo "BIBGATE_BENCH_PROFILE is release or debug, not $profile" >&2; exit 2 ;;
esac
bench=$target/$profile/examples/bench_drop
processor=$target/$profile/bibgate-import-processor

# The interpreter itself (not a version manager's shim), so that $! is the server's pid.
python=$(python3 -c 'import sys; print(sys.executable)')
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

moto_port=$(free_port)
"$python" scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
upstreams=(--upstream "http://127.0.0.1:$moto_port")
[ "$dynamodb" = moto ] || upstreams+=(--dynamodb-standin)
# The handler's variants take S3 from the stand-in too; the process runs need moto's S3
# (its notifications start the import).
handler_upstreams=("${upstreams[@]}")
[ "$s3" = moto ] || handler_upstreams+=(--s3-standin)
# The proxy at the given latencies, on its own port; its URL in $started.
start_proxy() {
  local port
  port=$(free_port)
  "$python" scripts/latency_proxy.py "${@:4}" -p "$port" --dynamodb-ms "$1" \
    --s3-ms "$2" --sqs-ms "$3" >"$work/proxy-$port.log" 2>&1 &
  pids+=($!)
  started=http://127.0.0.1:$port
}
start_proxy "$dynamodb_ms" "$s3_ms" "$sqs_ms" "${handler_upstreams[@]}"
proxy=$started
start_proxy "$dynamodb_ms" "$s3_ms" "$sqs_ms" "${upstreams[@]}"
process_proxy=$started
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" 2>/dev/null \
    && curl -fsS -o /dev/null "$proxy/__proxy/stats" 2>/dev/null \
    && curl -fsS -o /dev/null "$process_proxy/__proxy/stats" 2>/dev/null && break
  sleep 0.2
done
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  BIBGATE_SHARED=${BIBGATE_SHARED:-../shared}

if [ "$dynamodb$s3" != motomoto ] && [ "${BIBGATE_BENCH_CHECK:-1}" != 0 ]; then
  echo "== the store's contract suite against the stand-ins (no latency)"
  start_proxy 0 0 0 "${handler_upstreams[@]}"
  check_proxy=$started
  sleep 1
  AWS_ENDPOINT_URL=$check_proxy cargo test -q -p bibgate-store-aws --all-features --test contract 2>&1 \
    | grep -E '^test result|FAILED|panicked' || { echo "the contract suite failed on the stand-in" >&2; exit 1; }
fi
export AWS_ENDPOINT_URL=$proxy

variants=${BIBGATE_BENCH_VARIANTS-before,baseline,after,fanout}
if [ -n "$variants" ]; then
echo "== $records records through Processor::handle ($profile build; DynamoDB: $dynamodb, S3: $s3); latency: DynamoDB $dynamodb_ms ms, S3 $s3_ms ms, SQS $sqs_ms ms"
"$bench" --records "$records" --concurrency "${BIBGATE_BENCH_CONCURRENCY:-16}" \
  --parallel "${BIBGATE_BENCH_PARALLEL:-20}" \
  --variants "$variants" | tee "$work/bench.out" | grep -v '^BENCH '
fi

echo
echo "== peak RSS of bibgate-import-processor poll ($processor; DynamoDB: $dynamodb, S3: moto; the functions' settings of infra/template.yaml, e.g. MALLOC_MMAP_THRESHOLD_)"
export AWS_ENDPOINT_URL=$process_proxy
eval "$(python3 scripts/aws_local.py provision --endpoint "$AWS_ENDPOINT_URL")"
for n in "${rss_records[@]}"; do
  file=rss-$n.mrc
  /usr/bin/time -v "$processor" poll >"$work/poll-$n.out" 2>"$work/poll-$n.err" &
  time_pid=$!
  pids+=("$time_pid")
  sleep 1
  started=$(date +%s%N)
  "$bench" setup "$BIBGATE_TABLE" "$BIBGATE_BUCKET" "$file" --records "$n"
  # Done when the report is written.
  until python3 - "$file" <<'PY'
import os, sys, boto3, botocore
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
try:
    s3.head_object(Bucket=os.environ["BIBGATE_BUCKET"], Key=f"reports/01DEMO_ALPHA/{sys.argv[1]}.results.jsonl")
except botocore.exceptions.ClientError:
    sys.exit(1)
PY
  do
    kill -0 "$time_pid" 2>/dev/null || { echo "the poller exited:" >&2; tail -20 "$work/poll-$n.err" >&2; exit 1; }
    sleep 2
  done
  ended=$(date +%s%N)
  pkill -TERM -P "$time_pid" || true
  wait "$time_pid" || true
  rss_kb=$(grep 'Maximum resident set size' "$work/poll-$n.err" | grep -o '[0-9]*$')
  awk -v n="$n" -v kb="$rss_kb" -v ns="$((ended - started))" \
    'BEGIN { printf "  %6d records: peak RSS %6.1f MB, %.1f s from upload to report\n", n, kb / 1024, ns / 1e9 }'
done
