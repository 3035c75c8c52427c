#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. build (Release with GCC, warnings as errors) and run the tests that need it (ctest
#      labels): `slow`, `numerics` (the comparisons with PyTorch, whose commands the other
#      tests run under the sanitizers too), `unsanitized` (checks that only a build without
#      the sanitizers runs: whole sweeps, malloc counts, peak memory) and `golden` (the
#      printed IR, the same whichever compiler built gradc);
#   2. build again with clang, AddressSanitizer + UndefinedBehaviorSanitizer and the libFuzzer
#      targets, and run every other test, and the `unsanitized` and `golden` ones again (the
#      former with what the sanitizers allow);
#   3. run each fuzz target of that build for GRADC_FUZZ_SECONDS (default 30).
# Exits non-zero when anything fails. Each stage's line gives the seconds since the start.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds=${GRADC_FUZZ_SECONDS:-30}

stage() { echo "== $1 [${SECONDS} s]"; }

stage "build (Release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRADC_WERROR=ON > /dev/null
cmake --build build -j"$jobs"
stage "tests (Release)"
ctest --test-dir build --output-on-failure -j"$jobs" -L 'slow|numerics|unsanitized|golden'

stage "build (clang, AddressSanitizer + UndefinedBehaviorSanitizer, fuzz targets)"
# -O1 and line tables only (-g1: the sanitizers' stack traces name file and line): half the
# build time of -O2 -g, and the tests run as fast. Clang, as libFuzzer needs: one build for
# both (on one host, GCC's sanitizer build took 231 s and the fuzz targets' own tree ~45 s
# more; clang's, fuzz targets included, 197 s).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRADC_SANITIZE=ON -DGRADC_FUZZ=ON \
  -DGRADC_WERROR=ON -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" > /dev/null
cmake --build build-asan -j"$jobs"
stage "tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
# A use after free is caught while the freed block is among the last 32 MB freed (the
# quarantine; 256 by default): with the default, LLVM's churn of small blocks in every
# compile kept the processes faulting in fresh pages, and the tests took 15-20% longer.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=32 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE 'slow|numerics|fuzz'

if [ "$fuzz_seconds" -gt 0 ]; then
  stage "fuzz targets (${fuzz_seconds}s each)"
  # Each fuzz_NAME ctest runs tests/fuzz/run_fuzz.sh for GRADC_FUZZ_SECONDS from corpus_NAME.
  GRADC_FUZZ_SECONDS=$fuzz_seconds ctest --test-dir build-asan --output-on-failure -j"$jobs" -L fuzz
fi
stage "all tests passed"
