#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first (idempotent):
# - yaz (yaz-marcdump), the peer tool of the differential MARCXML test.
# - moto (local S3/DynamoDB/SQS, started on a free loopback port), cfn-lint and
#   prometheus_client (pip).
# - systemd (systemd-analyze, for the Debian package's unit).
# - chromium (Debian) and playwright (pip): the staff console's browser test
#   (crates/cli/tests/console_browser.rs fails, never skips, without them).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v yaz-marcdump >/dev/null 2>&1 || need_apt+=(yaz)
# /usr/bin/time -v measures the peak RSS of `bibgate import` in crates/cli/tests/input.rs.
[ -x /usr/bin/time ] || need_apt+=(time)
# systemd-analyze verifies bibgate.service in scripts/test-deb.sh (dpkg-deb is always there).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# The staff console's browser test drives Debian's Chromium (Playwright's own browser
# download cannot be fetched here).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -f ../shared/corpus/SOURCES.md ] && [ -z "${BIBGATE_SHARED:-}" ]; then
  echo "the shared corpus is missing: expected ../shared beside the repository (or set BIBGATE_SHARED)" >&2
  exit 2
fi

# --- AWS (issue 6): moto serves S3, DynamoDB and SQS on loopback for crates/store-aws and
# functions/import-processor (their tests fail, never skip, without it); cfn-lint checks
# infra/template.yaml offline.
need_pip=()
python3 -c 'import moto, flask, werkzeug' >/dev/null 2>&1 && command -v moto_server >/dev/null 2>&1 \
  || need_pip+=("moto[server]==5.2.*")
cfn-lint --version 2>/dev/null | grep -q 'cfn-lint 1\.58\.' || need_pip+=("cfn-lint==1.58.*")
# The Prometheus text-format parser that crates/cli/tests/metrics.rs checks /metrics with.
python3 -c 'import prometheus_client' >/dev/null 2>&1 || need_pip+=("prometheus_client==0.21.*")
# scripts/console_browser.py (the staff console in Chromium).
python3 -c 'import playwright.sync_api' >/dev/null 2>&1 || need_pip+=("playwright==1.*")
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing ${need_pip[*]} (pip)" >&2
  python3 -m pip install -q "${need_pip[@]}"
fi
cfn-lint infra/template.yaml
moto_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
moto_log=$(mktemp)
python3 scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; rm -f "$moto_log"' EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" 2>/dev/null && break
  kill -0 "$moto_pid" 2>/dev/null || { echo "moto_server exited:" >&2; cat "$moto_log" >&2; exit 2; }
  sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" \
  || { echo "moto_server did not answer on port $moto_port" >&2; cat "$moto_log" >&2; exit 2; }
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
# --- end AWS

# --- Merge policies (issue 5): the wasm32 target, the example and adversarial policies built
# for it (crates/plugin-host/tests read target/wasm32-unknown-unknown/policy/*.wasm and fail,
# never skip, without them), then each example policy's fixtures through `bibgate policy test`.
rustup target add wasm32-unknown-unknown >/dev/null
policy_crates=(no-005-check protect-local-fields elvl-m-is-full authentication-guard)
policy_args=()
for p in "${policy_crates[@]}"; do policy_args+=(-p "bibgate-policy-$p"); done
cargo build --profile policy --target wasm32-unknown-unknown "${policy_args[@]}" -p bibgate-test-policy-adversarial
cargo build -p bibgate-cli -p bibgate-import-processor
policy_data=$(mktemp -d)
for p in "${policy_crates[@]}"; do
  ./target/debug/bibgate --data-dir "$policy_data" policy test "plugins/policies/$p"
done
rm -rf "$policy_data"
# --- end merge policies

# --- The Debian package (issue 19): built from the debug binary above, checked, verified by
# systemd-analyze and installed into a throw-away root.
bash scripts/test-deb.sh "${CARGO_TARGET_DIR:-target}/debug/bibgate"

cargo test --workspace --all-features "$@"

# --- The drop benchmark's stand-ins (issue 15, scripts/dynamo_standin.py and s3_standin.py):
# the store's contract suite passes against them (served by the latency proxy at 0 ms), so
# the benchmark measures the DynamoDB and S3 the adapters were tested against.
proxy_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
python3 scripts/latency_proxy.py --upstream "http://127.0.0.1:$moto_port" --dynamodb-standin --s3-standin \
  -p "$proxy_port" --dynamodb-ms 0 --s3-ms 0 --sqs-ms 0 >/dev/null 2>&1 &
proxy_pid=$!
trap 'kill "$moto_pid" "$proxy_pid" 2>/dev/null || true; rm -f "$moto_log"' EXIT
for _ in $(seq 1 50); do
  curl -fsS -o /dev/null "http://127.0.0.1:$proxy_port/__proxy/stats" 2>/dev/null && break
  sleep 0.2
done
AWS_ENDPOINT_URL="http://127.0.0.1:$proxy_port" cargo test -p bibgate-store-aws --all-features --test contract
