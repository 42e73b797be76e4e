#!/usr/bin/env bash
# The import processor function's cold start, on the local stand-in (moto): each run is a new
# process (`bibgate-import-processor invoke`, the same handler the Lambda runtime calls) that
# imports one export, so each pays the whole start: tracing, configuration, clients, the
# wasmtime engine, and, when the institution has an active merge policy, loading it.
#
#   scripts/bench-cold-start.sh [RUNS]      (default 5 runs per case)
#
# Cases, each against the same table:
#   baseline      an institution without a policy (the start and one import)
#   cached        an institution with a policy whose code for this engine is cached
#   compile       the same after its cached code was deleted (compiled, then cached again)
# Prints each case's median wall time, the function's own `init_ms`, and the ratio to the
# baseline. Binaries: $BIBGATE_BIN (debug build is fine: it only sets the stack up) and
# $BIBGATE_PROCESSOR_BIN (default target/release/bibgate-import-processor).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bibgate=${BIBGATE_BIN:-target/debug/bibgate}
processor=${BIBGATE_PROCESSOR_BIN:-target/release/bibgate-import-processor}
[ -x "$processor" ] || { echo "build it first: cargo build --release -p bibgate-import-processor" >&2; exit 2; }
wasm=${BIBGATE_POLICY_WASM_DIR:-target/wasm32-unknown-unknown/policy}/bibgate_policy_no_005_check.wasm
[ -f "$wasm" ] || { echo "build the policies first (scripts/test.sh does)" >&2; exit 2; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
eval "$(scripts/aws-local.sh "$port")"
work=$(mktemp -d)
trap 'kill "$MOTO_PID" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bibgate" init --password bench >/dev/null 2>&1
"$bibgate" policy publish "$wasm" --name no-005-check >/dev/null 2>&1
"$bibgate" policy activate no-005-check --institution 01DEMO_ALPHA >/dev/null 2>&1

# run CASE INSTITUTION N: puts one export into the inbox, invokes a new process on its event,
# prints "wall_ms init_ms".
run() {
  python3 - "$2" "$3" "$work/event.json" <<'PY'
import json, os, sys, time, boto3
inst, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
number = 95_000_000 + n
leader = "00000nam a2200000 a 4500"
fields = [("001", f"ocm{number}"), ("003", "OCoLC"), ("005", "20230101000000.0"),
          ("245", f"00\x1faBench {n}.")]
directory, data = "", ""
for tag, value in fields:
    body = value + "\x1e"
    directory += f"{tag}{len(body.encode()):04d}{len(data.encode()):05d}"
    data += body
directory += "\x1e"
base = 24 + len(directory.encode())
total = base + len(data.encode()) + 1
record = f"{total:05d}{leader[5:12]}{base:05d}{leader[17:]}" + directory + data + "\x1d"
key = f"inbox/{inst}/{inst}-{int(time.time() * 1000)}-bench-{n}.mrc"
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
boto3.client("s3", **kw).put_object(Bucket=os.environ["BIBGATE_BUCKET"], Key=key, Body=record.encode())
# Take the event S3 sent, so the queue stays empty; the invocation gets the same event.
sqs = boto3.client("sqs", **kw)
queue = os.environ["BIBGATE_QUEUE_URL"].split(",")[0]  # the inbox queue
while True:
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for m in got:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        if key.rsplit("/", 1)[1] in m["Body"]:
            event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": "x", "body": m["Body"],
                                  "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                                  "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                                  "awsRegion": "us-east-1"}]}
            json.dump(event, open(path, "w"))
            sys.exit(0)
PY
  local started ended
  started=$(date +%s%N)
  AWS_LAMBDA_LOG_FORMAT=json "$processor" invoke "$work/event.json" >"$work/out.json" 2>"$work/err.log"
  ended=$(date +%s%N)
  grep -q '"batchItemFailures":\[\]' "$work/out.json" || { echo "the invocation failed: $(cat "$work/err.log")" >&2; exit 1; }
  local init
  init=$(grep -o 'init_ms[^0-9]*[0-9]*' "$work/err.log" | grep -o '[0-9]*$' | head -1)
  echo "$(((ended - started) / 1000000)) ${init:-?}"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# drop_cache: removes the cached precompiled code of every policy (items and objects).
drop_cache() {
  python3 - <<'PY'
import os, boto3
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
db, s3 = boto3.client("dynamodb", **kw), boto3.client("s3", **kw)
table, bucket = os.environ["BIBGATE_TABLE"], os.environ["BIBGATE_BUCKET"]
for item in db.scan(TableName=table)["Items"]:
    if item["pk"]["S"].startswith("POLICYART#"):
        db.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
        s3.delete_object(Bucket=bucket, Key=item["key"]["S"])
PY
}

n=0
declare -A wall init
for case in baseline cached compile; do
  walls=() inits=()
  for _ in $(seq 1 "$runs"); do
    n=$((n + 1))
    case $case in
      baseline) out=$(run "$case" 01DEMO_BETA "$n") ;;
      cached) out=$(run "$case" 01DEMO_ALPHA "$n") ;;
      compile) drop_cache; out=$(run "$case" 01DEMO_ALPHA "$n") ;;
    esac
    walls+=("${out% *}") inits+=("${out#* }")
  done
  wall[$case]=$(printf '%s\n' "${walls[@]}" | median)
  init[$case]=$(printf '%s\n' "${inits[@]}" | median)
done
echo "cold start of bibgate-import-processor ($processor), one export per new process, median of $runs:"
for case in baseline cached compile; do
  awk -v c="$case" -v w="${wall[$case]}" -v i="${init[$case]}" -v b="${wall[baseline]}" \
    'BEGIN { printf "  %-9s %6d ms wall (init_ms %s), %.2fx the baseline, +%d ms\n", c, w, i, w / b, w - b }'
done
