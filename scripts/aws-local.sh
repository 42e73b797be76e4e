#!/usr/bin/env bash
# A local stand-in for the AWS deployment: starts moto (S3, DynamoDB, SQS) on 127.0.0.1:PORT
# (installing moto when it is missing), creates the bucket, the table and the queues with the
# bucket's S3 -> SQS notifications as infra/template.yaml declares them (scripts/aws_local.py),
# and prints `export` lines for a shell:
#
#   eval "$(scripts/aws-local.sh 5123)"
#   bibgate consortium apply my-consortium.toml     # BIBGATE_BACKEND=aws is set
#   bibgate-import-processor poll &                 # the Lambda function, polling the queues
#   bibgate serve &                                 # the Connexion shim
#   ...
#   kill "$MOTO_PID"                                 # everything is in moto's memory
#
# Messages go to stderr; stdout is only the export lines.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-5123}
environment=${BIBGATE_ENVIRONMENT:-}

if ! python3 -c 'import moto, flask, werkzeug, boto3, yaml' >/dev/null 2>&1; then
  echo "installing moto[server] (pip)" >&2
  python3 -m pip install -q "moto[server]==5.2.*" >&2
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "aws-local.sh: something already listens on 127.0.0.1:$port; pick another port" >&2
  exit 2
fi
log=${TMPDIR:-/tmp}/bibgate-moto-$port.log
setsid python3 scripts/moto_server.py -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "moto_server exited (log: $log):" >&2; cat "$log" >&2; exit 2; }
  sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" \
  || { echo "moto_server did not answer on port $port (log: $log)" >&2; kill "$pid"; exit 2; }
endpoint="http://127.0.0.1:$port"
if ! python3 scripts/aws_local.py provision --endpoint "$endpoint" ${environment:+--environment "$environment"}; then
  kill "$pid"
  exit 2
fi
if ! python3 scripts/aws_local.py check --endpoint "$endpoint" ${environment:+--environment "$environment"} >&2; then
  kill "$pid"
  exit 2
fi
echo "export MOTO_PID=$pid"
echo "moto on $endpoint (pid $pid, log $log); stop it with: kill \$MOTO_PID" >&2
