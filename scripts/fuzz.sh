#!/usr/bin/env bash
# Fuzzes each decoder for a fixed time (default 600 s a target), seeded from ../shared/corpus.
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]
# Crashes land in fuzz/artifacts/<target>/; keep each as a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(iso2709 marc8 marcxml connexion policy)
shared=${BIBGATE_SHARED:-../shared}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags; the machine's one toolchain is stable.
export RUSTC_BOOTSTRAP=1

seed() {
  local target=$1 dir=fuzz/corpus/$1
  mkdir -p "$dir"
  case $target in
    iso2709|marc8) find "$shared/corpus" -type f ! -name '*.xml' ! -name '*.md' ! -name '*.json' -size -200k -exec cp -n {} "$dir/" \; ;;
    marcxml) find "$shared/corpus" -type f -name '*.xml' -size -200k -exec cp -n {} "$dir/" \; ;;
    connexion)
      printf 'UEabcdeABfgPChij00010123\x1e\x1d' > "$dir/desktop"
      printf 'U5abcdeA2fgP3hij0001012345' > "$dir/decimal"
      printf ' UEabcde ABfg PChij 0001012345\x00' > "$dir/spaces-nul"
      printf 'GET / HTTP/1.1\r\n\r\n' > "$dir/http"
      ;;
    policy)
      # The example and adversarial policies as core modules (admission componentises them).
      rustup target add wasm32-unknown-unknown >/dev/null
      cargo build -q --profile policy --target wasm32-unknown-unknown \
        -p bibgate-policy-no-005-check -p bibgate-policy-protect-local-fields \
        -p bibgate-policy-elvl-m-is-full -p bibgate-policy-authentication-guard \
        -p bibgate-test-policy-adversarial
      cp -n target/wasm32-unknown-unknown/policy/*.wasm "$dir/"
      ;;
  esac
}

for target in "${targets[@]}"; do
  seed "$target"
  echo "fuzzing $target for $seconds s" >&2
  cargo fuzz run -O "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=120000 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E '^(stat::|==|#[0-9]+ +DONE|Done|INFO: Running|SUMMARY|ERROR)' || true
done
