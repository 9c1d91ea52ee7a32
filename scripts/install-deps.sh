#!/usr/bin/env bash
# Installs the Debian (bookworm) packages quiver needs. Run as root.
#   scripts/install-deps.sh          build, tests and the demo
#   scripts/install-deps.sh --bench  plus the peers the benchmarks compare with
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  librocksdb-dev flatbuffers-compiler libflatbuffers-dev libtbb-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libhdf5-dev nlohmann-json3-dev
  dataset-fashion-mnist
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(libfaiss-dev libopenblas0-pthread python3-faiss python3-sklearn python3-matplotlib
             python3-numpy)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
