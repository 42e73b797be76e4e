#!/usr/bin/env bash
# Builds the AWS artefacts, for arm64 (Graviton; the template's Lambda and Fargate task):
#
#   target/lambda/bibgate-import-processor/bootstrap.zip   the import processor function
#                                                          (provided.al2023; CodeUri of
#                                                          infra/template.yaml)
#   target/aws/shim/{Dockerfile,bibgate}                   the shim image's build context:
#       docker buildx build --platform linux/arm64 -t <registry>/bibgate-shim target/aws/shim
#
# Installs what it needs when missing: the aarch64 Rust target (rustup), cargo-lambda
# (cargo install) and zig (pip `ziglang`, cargo-lambda's cross linker). Release builds:
# expect tens of minutes on a small machine; the times and sizes are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add aarch64-unknown-linux-gnu >/dev/null
if ! command -v cargo-lambda >/dev/null 2>&1; then
  echo "installing cargo-lambda (cargo install)" >&2
  cargo install --locked cargo-lambda
fi
if ! python3 -c 'import ziglang' >/dev/null 2>&1; then
  echo "installing zig (pip ziglang)" >&2
  python3 -m pip install -q ziglang
fi

started=$(date +%s)
cargo lambda build --release --arm64 -p bibgate-import-processor --output-format zip
function_done=$(date +%s)
cargo lambda build --release --arm64 -p bibgate-cli --bin bibgate
shim_done=$(date +%s)

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target/aws/shim"
cp infra/shim/Dockerfile "$target/aws/shim/Dockerfile"
cp "$target/lambda/bibgate/bootstrap" "$target/aws/shim/bibgate"

size() { stat -c %s "$1" | awk '{ printf "%.1f MB", $1 / 1000000 }'; }
echo "function: $target/lambda/bibgate-import-processor/bootstrap.zip ($(size "$target/lambda/bibgate-import-processor/bootstrap.zip") zipped, $(size "$target/lambda/bibgate-import-processor/bootstrap") unzipped), built in $((function_done - started)) s"
echo "shim: $target/aws/shim/bibgate ($(size "$target/aws/shim/bibgate")), built in $((shim_done - function_done)) s"
