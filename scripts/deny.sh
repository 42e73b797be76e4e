#!/usr/bin/env bash
# Checks the dependency tree with cargo-deny (configuration: deny.toml):
# - licences, bans (wildcards, aws-lc/OpenSSL) and sources (crates.io only): always;
# - advisories (RustSec): the database is cloned from GitHub at run time. Where GitHub
#   cannot be reached, BIBGATE_DENY_ADVISORIES decides:
#     auto (default): say loudly that advisories were NOT checked, and go on;
#     require: fail;
#     skip: do not try.
#   Advisories found (or any other advisories error) always fail.
# Installs cargo-deny (pinned, from crates.io, ~10 min to build on 2 cores) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
mode="${BIBGATE_DENY_ADVISORIES:-auto}"
case "$mode" in
  auto | require | skip) ;;
  *)
    echo "BIBGATE_DENY_ADVISORIES must be auto, require or skip, not ${mode:?}" >&2
    exit 2
    ;;
esac

if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $DENY_VERSION"; then
  echo "installing cargo-deny $DENY_VERSION (cargo install --locked)" >&2
  cargo install --locked cargo-deny --version "$DENY_VERSION"
fi

cargo deny --locked check --hide-inclusion-graph licenses bans sources

if [ "$mode" = skip ]; then
  echo "deny: advisories NOT checked (BIBGATE_DENY_ADVISORIES=skip)" >&2
  exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if cargo deny --locked check --hide-inclusion-graph advisories >"$log" 2>&1; then
  cat "$log"
  exit 0
fi
cat "$log" >&2
if grep -q "failed to fetch advisory database" "$log"; then
  reason="$(grep -m1 "^fatal:" "$log" || grep -m1 "failed to fetch" "$log" || true)"
  if [ "$mode" = require ]; then
    echo "deny: advisories could not be checked: the RustSec database could not be fetched (${reason})" >&2
    exit 1
  fi
  echo "deny: WARNING: advisories NOT checked: the RustSec database could not be fetched (${reason}); licences, bans and sources passed" >&2
  exit 0
fi
echo "deny: advisories failed" >&2
exit 1
