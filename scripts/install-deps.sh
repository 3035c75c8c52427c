#!/usr/bin/env bash
# Installs everything gradc needs to build and test on Debian 12, test-only packages too.
# Run as root (or it uses sudo). Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  llvm-19-dev libzstd-dev          # the code generator and JIT (LLVM's CMake config needs zstd)
  libfmt-dev libcli11-dev nlohmann-json3-dev
  # tests
  doctest-dev llvm-19-tools        # unit tests; FileCheck and lit for golden tests
  file                             # tests/aot checks the kind of object it wrote (not in a minimal Debian)
  clang-19 libclang-rt-19-dev      # libFuzzer targets
  python3 python3-torch            # comparisons with PyTorch (run with /usr/bin/python3)
  libopenblas0-pthread             # PyTorch's BLAS in bench/ (without it Debian's torch uses the
                                   # reference BLAS, ~40x slower: an unfair comparison)
  python3-sklearn                  # the source of the data sets in examples/data (regeneration only)
  graphviz                         # renders `gradc inspect --format dot`
  libopenmpi-dev openmpi-bin       # data-parallel training (optional: CMake option GRADC_MPI)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
