#!/bin/sh
# Runs one libFuzzer target for GRADC_FUZZ_SECONDS seconds (default 60) from its seed corpus
# under ASan and UBSan: the ctest `fuzz_NAME` (label `fuzz`) of a -DGRADC_FUZZ=ON build.
# New inputs go to a scratch copy of the corpus; the committed seed corpus stays as it is.
#   run_fuzz.sh build-fuzz/tests/fuzz_csv tests/fuzz/corpus_csv
set -eu
target=$1
corpus=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
exec_status=0
"$target" -max_total_time="${GRADC_FUZZ_SECONDS:-60}" -close_fd_mask=2 -timeout=30 \
  -rss_limit_mb=2048 -print_final_stats=1 "$work" || exec_status=$?
exit $exec_status
