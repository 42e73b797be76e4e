#!/usr/bin/env bash
# A consortium from nothing to merge policies, on either backend, with the commands we ship:
#
#   scripts/consortium-scenario.sh local    # a new data directory
#   scripts/consortium-scenario.sh aws      # a new moto (scripts/aws-local.sh), the shim with
#                                           # --backend aws, the function as
#                                           # `bibgate-import-processor poll`
#
# Steps: consortium apply (three institutions) -> serve (and the function) -> an export from
# each institution -> policy publish (two policies) and activate for one institution: an
# export that is NOT_ADDED_OLD elsewhere merges there -> policy rollback: NOT_ADDED_OLD
# again -> password rotation with a grace period -> a logon lock-out lifted with profile
# unlock -> each failure of the CARLI table (locked, multi-match, brief, MARCXML, no
# profile) resolved with the staff commands and exported again into the expected MMS ID ->
# (aws) a message forced into the dead-letter queue, re-driven and imported once.
#
# Binaries: $BIBGATE_BIN and $BIBGATE_PROCESSOR_BIN (default: target/debug/, built first
# with `cargo build -p bibgate-cli -p bibgate-import-processor`). The merge policies are
# built from plugins/policies/ by `bibgate policy publish` (the wasm32 target is needed:
# `rustup target add wasm32-unknown-unknown`). Exit 0 when every check held; otherwise the
# first failed check is printed and the exit is 1.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
backend=${1:-local}
case "$backend" in local | aws) ;; *) echo "usage: $0 local|aws" >&2; exit 2 ;; esac
bibgate=${BIBGATE_BIN:-$repo/target/debug/bibgate}
processor=${BIBGATE_PROCESSOR_BIN:-$repo/target/debug/bibgate-import-processor}
[ -x "$bibgate" ] || { echo "no bibgate binary at $bibgate (cargo build -p bibgate-cli)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${keep:-}" != 1 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "FAILED ($backend): $*" >&2
  for log in "$work"/*.log; do echo "--- $log" >&2; tail -n 20 "$log" >&2; done
  exit 1
}
step() { echo "== $*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

export BIBGATE_SHARED=${BIBGATE_SHARED:-$repo/../shared}
data=(--data-dir "$work/data")
if [ "$backend" = aws ]; then
  [ -x "$processor" ] || { echo "no processor binary at $processor (cargo build -p bibgate-import-processor)" >&2; exit 2; }
  step "aws-local.sh: moto with the template's bucket, table and queues"
  exports=$(scripts/aws-local.sh "$(free_port)") || fail "scripts/aws-local.sh failed"
  eval "$exports"
  pids+=("$MOTO_PID")
fi
b() { "$bibgate" "${data[@]}" "$@"; }

# A record as MARCXML: OCLC number, 005, title[, Leader/17].
record() {
  cat <<XML
<record xmlns="http://www.loc.gov/MARC21/slim"><leader>00000nam a2200000${4:- }a 4500</leader><controlfield tag="001">ocm$1</controlfield><controlfield tag="003">OCoLC</controlfield><controlfield tag="005">$2</controlfield><controlfield tag="008">240101s2024    ilu           000 0 eng d</controlfield><datafield tag="035" ind1=" " ind2=" "><subfield code="a">(OCoLC)$1</subfield></datafield><datafield tag="245" ind1="0" ind2="0"><subfield code="a">$3</subfield></datafield></record>
XML
}

step "consortium apply: a network zone and three institutions"
cat >"$work/consortium.toml" <<'TOML'
network = { code = "01SCEN_NETWORK", name = "Scenario Network" }
[[institutions]]
code = "01SCEN_AAA"
name = "Library A"
connexion = { target_zone = "iz", check_005 = true }
[[institutions]]
code = "01SCEN_BBB"
name = "Library B"
connexion = { target_zone = "iz", check_005 = true }
[[institutions]]
code = "01SCEN_CCC"
name = "Library C"
connexion = { target_zone = "iz", check_005 = true }
TOML
b consortium apply "$work/consortium.toml" >"$work/apply.out" 2>&1 || fail "consortium apply: $(cat "$work/apply.out")"
declare -A password
for inst in 01SCEN_AAA 01SCEN_BBB 01SCEN_CCC; do
  password[$inst]=$(sed -n "s/.*Connexion logon $inst, password \([^ ]*\) (shown once).*/\1/p" "$work/apply.out")
  [ -n "${password[$inst]}" ] || fail "no password printed for $inst: $(cat "$work/apply.out")"
done
b consortium apply "$work/consortium.toml" 2>&1 | grep -q "nothing to change" || fail "a second apply changed something"
b institution list | grep -q 01SCEN_CCC || fail "institution list does not show 01SCEN_CCC"

step "serve$( [ "$backend" = aws ] && echo ' (--backend aws) and bibgate-import-processor poll')"
port=$(free_port)
"$bibgate" "${data[@]}" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pids+=($!)
if [ "$backend" = aws ]; then
  BIBGATE_INVOKE_TIMEOUT_S=60 "$processor" poll >"$work/processor.log" 2>&1 &
  pids+=($!)
fi
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# send INSTITUTION FILE [PASSWORD]: the host message of the one record.
send() {
  local out
  out=$("$bibgate" send --host 127.0.0.1 --port "$port" --logon "$1" --password "${3:-${password[$1]}}" "$2" 2>&1) || true
  echo "$out" | sed -n 's/^record 1: //p'
}
expect_reply() { # INSTITUTION FILE TEXT [PASSWORD]
  local reply
  reply=$(send "$1" "$2" "${4:-}")
  case "$reply" in *"$3"*) echo "   $1: $reply" >&2 ;; *) fail "$1 sent $(basename "$2"): expected \"$3\", got \"$reply\"" ;; esac
}

step "an export from each institution is added"
n=0
for inst in 01SCEN_AAA 01SCEN_BBB 01SCEN_CCC; do
  n=$((n + 1))
  record "9000000$n" 20230101000000.0 "Book $n." >"$work/new-$inst.xml"
  expect_reply "$inst" "$work/new-$inst.xml" "processed successfully"
done
# The same OCLC number with an older 005, for AAA and BBB.
record 90000001 20220101000000.0 "Book 1, older." >"$work/old-01SCEN_AAA.xml"
record 90000002 20220101000000.0 "Book 2, older." >"$work/old-01SCEN_BBB.xml"
record 90000001 20210101000000.0 "Book 1, oldest." >"$work/oldest-01SCEN_AAA.xml"
expect_reply 01SCEN_AAA "$work/old-01SCEN_AAA.xml" "NOT_ADDED_OLD"

step "policy publish (two policies) and activate for 01SCEN_AAA"
# The policy folders (built by `policy publish`), or the modules already built in
# $BIBGATE_POLICY_WASM_DIR (the test suite builds them once, before any test).
publish() { # NAME
  local source=plugins/policies/$1
  if [ -n "${BIBGATE_POLICY_WASM_DIR:-}" ]; then
    source=$BIBGATE_POLICY_WASM_DIR/bibgate_policy_${1//-/_}.wasm
  fi
  b policy publish "$source" --name "$1" >>"$work/publish.log" 2>&1 || fail "publish $1: $(tail -5 "$work/publish.log")"
}
publish elvl-m-is-full
publish no-005-check
b policy activate elvl-m-is-full --institution 01SCEN_AAA >/dev/null 2>&1 || fail "activate elvl-m-is-full"
b policy activate no-005-check --institution 01SCEN_AAA >/dev/null 2>&1 || fail "activate no-005-check"
sleep 3 # activations are re-read every 2 s
expect_reply 01SCEN_AAA "$work/old-01SCEN_AAA.xml" "processed successfully"
expect_reply 01SCEN_BBB "$work/old-01SCEN_BBB.xml" "NOT_ADDED_OLD"
b policy list 2>&1 | grep -q "01SCEN_AAA.*no-005-check" || fail "policy list does not show 01SCEN_AAA's active policy: $(b policy list 2>&1)"
# The merge names the policy that decided it (name@revision sha256:...).
b results --institution 01SCEN_AAA --outcome merged --json >"$work/merged.json" 2>&1
grep -q '"no-005-check@2 sha256:[0-9a-f]\{64\}"' "$work/merged.json" \
  || fail "the merged result does not name the policy: $(cat "$work/merged.json")"

step "policy rollback: NOT_ADDED_OLD again for 01SCEN_AAA"
b policy rollback --institution 01SCEN_AAA >/dev/null 2>&1 || fail "rollback"
sleep 3
expect_reply 01SCEN_AAA "$work/oldest-01SCEN_AAA.xml" "NOT_ADDED_OLD"

step "password rotation with a grace period (01SCEN_CCC)"
old=${password[01SCEN_CCC]}
new=NewSecret-$RANDOM$RANDOM
b profile set 01SCEN_CCC-connexion --password "$new" --keep-previous-for 1h >/dev/null 2>&1 || fail "rotate"
record 90000009 20230101000000.0 "Book 9." >"$work/rotate.xml"
expect_reply 01SCEN_CCC "$work/rotate.xml" "processed successfully" "$old"
expect_reply 01SCEN_CCC "$work/rotate.xml" "processed successfully" "$new"
b profile set 01SCEN_CCC-connexion --password "$new-2" --keep-previous-for 0 >/dev/null 2>&1 || fail "rotate again"
expect_reply 01SCEN_CCC "$work/rotate.xml" "Logon Failed" "$new"

step "logon lock-out shared by the shims, lifted with profile unlock (01SCEN_BBB)"
for _ in $(seq 1 10); do
  reply=$(send 01SCEN_BBB "$work/rotate.xml" "not-the-password")
  case "$reply" in *"Logon Failed"*) ;; *) fail "a wrong password got \"$reply\"" ;; esac
done
expect_reply 01SCEN_BBB "$work/new-01SCEN_BBB.xml" "Logon Failed"
b profile show 01SCEN_BBB-connexion 2>&1 | grep -q "logon locked      for address 127.0.0.1" \
  || fail "profile show does not tell the lock: $(b profile show 01SCEN_BBB-connexion 2>&1)"
b profile unlock 01SCEN_BBB-connexion 2>&1 | grep -q "^1 logon lock lifted" || fail "profile unlock"
sleep 2.5
expect_reply 01SCEN_BBB "$work/new-01SCEN_BBB.xml" "processed successfully"
b profile show 01SCEN_BBB-connexion 2>&1 | grep -q "logon lock-out    none" || fail "the lock is still shown"

# The CARLI table's failures through the socket, each resolved with our commands and
# exported again (issue 16's staff tools; the README's "When an import fails").
mms_in() { echo "$1" | sed -n 's/.*MMS ID: \([0-9]*\).*/\1/p'; }
step "NOT_ADDED_LOCKED: editor list, editor release, export again"
record 91000001 20230101000000.0 "Locked." >"$work/locked.xml"
m1=$(mms_in "$(send 01SCEN_AAA "$work/locked.xml")")
[ -n "$m1" ] || fail "the record to lock was not added"
b editor open "$m1" --institution 01SCEN_AAA --user cataloguer1 >/dev/null 2>&1 || fail "editor open"
record 91000001 20240101000000.0 "Locked, newer." >"$work/locked-2.xml"
expect_reply 01SCEN_AAA "$work/locked-2.xml" "NOT_ADDED_LOCKED"
b editor list --institution 01SCEN_AAA >"$work/locks.out" 2>&1; grep -q "$m1" "$work/locks.out" || fail "editor list does not show $m1: $(cat "$work/locks.out")"
b editor release "$m1" --institution 01SCEN_AAA >/dev/null 2>&1 || fail "editor release"
expect_reply 01SCEN_AAA "$work/locked-2.xml" "processed successfully. MMS ID: $m1"

step "multi-match: duplicates, record merge, export again"
record 91000002 20230101000000.0 "Kept." >"$work/kept.xml"
record 91000003 20230101000000.0 "Duplicate." >"$work/dup.xml"
keep=$(mms_in "$(send 01SCEN_AAA "$work/kept.xml")")
dup=$(mms_in "$(send 01SCEN_AAA "$work/dup.xml")")
[ -n "$keep" ] && [ -n "$dup" ] || fail "the records to merge were not added"
# A cataloguer's edit gives the second record the first one's number as well.
b record show "$dup" --institution 01SCEN_AAA --format mrk >"$work/dup.mrk" 2>/dev/null || fail "record show --format mrk"
printf '=035  \\\\$z(OCoLC)91000002\n' >>"$work/dup.mrk"
b record edit "$dup" --institution 01SCEN_AAA --from "$work/dup.mrk" >/dev/null 2>&1 || fail "record edit --from: $(b record edit "$dup" --institution 01SCEN_AAA --from "$work/dup.mrk" 2>&1)"
record 91000002 20240101000000.0 "Kept, newer." >"$work/kept-2.xml"
expect_reply 01SCEN_AAA "$work/kept-2.xml" "Multi matches found"
b duplicates --institution 01SCEN_AAA >"$work/dups.out" 2>&1; grep -q 91000002 "$work/dups.out" || fail "duplicates does not list 91000002: $(cat "$work/dups.out")"
b record merge --keep "$keep" --from "$dup" --institution 01SCEN_AAA >/dev/null 2>&1 || fail "record merge"
expect_reply 01SCEN_AAA "$work/kept-2.xml" "processed successfully. MMS ID: $keep"

step "NOT_ADDED_BRIEF: record edit Leader/17, export again"
record 91000004 20230101000000.0 "Full." >"$work/full.xml"
full=$(mms_in "$(send 01SCEN_AAA "$work/full.xml")")
record 91000004 20240101000000.0 "Brief." 3 >"$work/brief.xml"
expect_reply 01SCEN_AAA "$work/brief.xml" "NOT_ADDED_BRIEF"
b record show "$full" --institution 01SCEN_AAA --format mrk >"$work/full.mrk" 2>/dev/null || fail "record show"
sed -i '1s/^\(=LDR  .\{17\}\)./\13/' "$work/full.mrk"
b record edit "$full" --institution 01SCEN_AAA --from "$work/full.mrk" >/dev/null 2>&1 || fail "record edit Leader/17"
expect_reply 01SCEN_AAA "$work/brief.xml" "processed successfully. MMS ID: $full"

step "failed MARCXML conversion: the record corrected and exported again"
record 91000006 20230101000000.0 "Bad_title." >"$work/bad.xml"
b convert --to marc -o "$work/good.mrc" "$work/bad.xml" 2>/dev/null || fail "convert"
# A control character in 245 $a (same length, so the directory still holds).
python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(d.replace(b"Bad_title", b"Bad\x01title"))' "$work/good.mrc" "$work/bad.mrc"
expect_reply 01SCEN_AAA "$work/bad.mrc" "Failed to convert marc record to marc xml"
expect_reply 01SCEN_AAA "$work/good.mrc" "processed successfully"

step "no integration profile: profile add, export again"
b profile delete 01SCEN_CCC-connexion >/dev/null 2>&1 || fail "profile delete"
record 91000005 20230101000000.0 "No profile." >"$work/noprofile.xml"
expect_reply 01SCEN_CCC "$work/noprofile.xml" "No integration profile found" "$new-2"
b profile add --institution 01SCEN_CCC --password "Again-$new" >/dev/null 2>&1 || fail "profile add"
expect_reply 01SCEN_CCC "$work/noprofile.xml" "processed successfully" "Again-$new"

if [ "$backend" = aws ]; then
  step "a message forced into the dead-letter queue is re-driven and imported once"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
  record 90000010 20230101000000.0 "Book 10." >"$work/dlq.xml"
  b convert --to marc -o "$work/dlq.mrc" "$work/dlq.xml" 2>/dev/null
  export_id="01SCEN_BBB-$(date +%s%3N)-dlq-1"
  python3 - "$work/dlq.mrc" "$export_id" <<'PY' || fail "could not force the message into the dead-letter queue"
import os, sys, time, boto3
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
# The inbox path's queues: the first of each list (scripts/aws_local.py).
queue, dlq = (os.environ[name].split(",")[0] for name in ("BIBGATE_QUEUE_URL", "BIBGATE_DLQ_URL"))
s3.put_object(Bucket=os.environ["BIBGATE_BUCKET"], Key=f"inbox/01SCEN_BBB/{sys.argv[2]}.mrc",
              Body=open(sys.argv[1], "rb").read())
deadline = time.time() + 20
while time.time() < deadline:
    for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
        sqs.send_message(QueueUrl=dlq, MessageBody=m["Body"])
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        if sys.argv[2] in m["Body"]:
            sys.exit(0)
sys.exit(1)
PY
  BIBGATE_INVOKE_TIMEOUT_S=60 "$processor" poll >>"$work/processor.log" 2>&1 &
  pids+=($!)
  sleep 2
  b result "$export_id" >/dev/null 2>&1 && fail "the export was imported before the re-drive"
  b redrive >"$work/redrive.out" 2>&1 || fail "redrive: $(cat "$work/redrive.out")"
  grep -q "inbox/01SCEN_BBB/$export_id.mrc" "$work/redrive.out" || fail "redrive did not move the export: $(cat "$work/redrive.out")"
  for _ in $(seq 1 100); do b result "$export_id" >"$work/result.out" 2>&1 && break; sleep 0.2; done
  grep -q "processed successfully" "$work/result.out" || fail "the re-driven export: $(cat "$work/result.out")"
  # Captured, not piped into grep -q: with two dead-letter queues, grep would stop reading
  # after the first line and the second would fail on a closed pipe.
  b redrive >"$work/redrive-again.out" 2>&1 || fail "redrive: $(cat "$work/redrive-again.out")"
  if grep -q "moved [1-9]" "$work/redrive-again.out" || ! grep -q "moved 0 messages" "$work/redrive-again.out"; then
    fail "the dead-letter queues are not empty after the re-drive: $(cat "$work/redrive-again.out")"
  fi
  found=$(b record find --institution 01SCEN_BBB --oclc 90000010 2>/dev/null | grep -c "^99" || true)
  [ "$found" = 1 ] || fail "the re-driven export made $found records, not 1"
  echo "   01SCEN_BBB: $export_id re-driven, imported once" >&2
else
  b redrive >/dev/null 2>&1 && fail "redrive should explain that the embedded backend has no dead-letter queue"
fi
echo "PASSED ($backend)" >&2
