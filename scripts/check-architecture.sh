#!/usr/bin/env bash
# The dependency rules of ARCHITECTURE.md, checked with `cargo tree` (and the docs built with
# warnings as errors). Run by .ci/run; exits non-zero naming the first rule broken.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "architecture check failed: $*" >&2; exit 1; }

# The normal (non-dev) dependency tree of a package, one crate name per line.
tree() { cargo tree -q -p "$1" -e normal --prefix none | awk '{print $1}' | sort -u; }
# The packages that depend on crate $1 directly (normal dependencies, whole workspace).
dependents() { cargo tree -q -e normal -i "$1" --depth 1 --prefix none | awk 'NR > 1 {print $1}' | sort -u; }

# Pure cores and the ports: no runtime, no adapter, no plugin host.
for pure in bibgate-marc bibgate-marc8 bibgate-matching bibgate-engine bibgate-connexion \
  bibgate-store bibgate-import; do
  deps=$(tree "$pure")
  bad=$(grep -E '^(tokio|aws-|wasmtime|rusqlite|bibgate-store-(local|aws)|bibgate-plugin-host|bibgate-gateway|bibgate-inbox)' <<<"$deps" || true)
  [ -z "$bad" ] || fail "$pure must do no I/O but depends on: $bad"
done

# Each adapter's heavy dependency enters the workspace through that adapter only.
for pair in aws-sdk-dynamodb:bibgate-store-aws aws-sdk-s3:bibgate-store-aws \
  aws-config:bibgate-store-aws wasmtime:bibgate-plugin-host rusqlite:bibgate-store-local; do
  crate=${pair%%:*} owner=${pair##*:}
  users=$(dependents "$crate")
  [ -n "$users" ] || fail "nothing depends on $crate any more: update this rule"
  others=$(grep '^bibgate' <<<"$users" | grep -v "^$owner\$" || true)
  [ -z "$others" ] || fail "only $owner may depend on $crate, but so do: $others"
done

# The Lambda function is the pipeline, not the Connexion shim: no gateway, and TLS only as
# the AWS SDK's HTTPS client.
lambda=$(tree bibgate-import-processor)
if grep -qx bibgate-gateway <<<"$lambda"; then
  fail "bibgate-import-processor depends on bibgate-gateway"
fi
tls_users=$(cargo tree -q -p bibgate-import-processor -e normal -i tokio-rustls --depth 1 --prefix none \
  | awk 'NR > 1 {print $1}')
tls=$(grep -vE '^(aws-smithy-http-client|hyper-rustls)$' <<<"$tls_users" || true)
[ -z "$tls" ] || fail "bibgate-import-processor links tokio-rustls through: $tls"

# Test support is never shipped.
for shipped in bibgate-cli bibgate-import-processor bibgate-gateway bibgate-inbox; do
  deps=$(tree "$shipped")
  if grep -qx bibgate-test-support <<<"$deps"; then
    fail "$shipped depends on bibgate-test-support (a dev-dependency only)"
  fi
done

# The docs build without warnings (broken links name moved code).
RUSTDOCFLAGS="-D warnings" cargo doc -q --workspace --no-deps --all-features
echo "architecture: dependency rules hold; docs build without warnings"
