#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first (idempotent):
# - yaz (yaz-marcdump), the peer tool of the differential MARCXML test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v yaz-marcdump >/dev/null 2>&1 || need_apt+=(yaz)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -f ../shared/corpus/SOURCES.md ] && [ -z "${BIBGATE_SHARED:-}" ]; then
  echo "the shared corpus is missing: expected ../shared beside the repository (or set BIBGATE_SHARED)" >&2
  exit 2
fi

cargo test --workspace --all-features "$@"
