#!/usr/bin/env bash
# Runs every test kernel (the library's unit tests and each tests/*.rs) and
# prints the aggregate over all of them as the last line:
#   N passed, N failed
# Exits non-zero if any kernel failed, hung, triple-faulted, or did not build,
# or if no test at all was selected (a filter that matches nothing is an
# error, not a pass: it counts as one failure).
# Arguments are a test filter passed to every kernel (test=NAME).
set -u
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export PROBE_TEST_RESULTS="$target_dir/test-results.txt"
mkdir -p "$target_dir"; rm -f "$PROBE_TEST_RESULTS"

cargo test --no-fail-fast -- "$@"
cargo_status=$?

passed=0; failed=0; kernels=0; selected=0
if [ -f "$PROBE_TEST_RESULTS" ]; then
    while read -r name p f s verdict; do
        kernels=$((kernels + 1)); passed=$((passed + p)); failed=$((failed + f)); selected=$((selected + s))
        [ "$f" != 0 ] && echo "FAILED kernel: $name ($verdict)"
    done < "$PROBE_TEST_RESULTS"
fi
if [ "$cargo_status" != 0 ] && [ "$failed" = 0 ]; then
    echo "cargo test failed before running every kernel (build error?)"
    failed=$((failed + 1))
fi
if [ "$selected" = 0 ]; then
    if [ "$#" -gt 0 ]; then
        echo "no test matched filter '$*'"
    else
        echo "no test ran (no test kernel reported its results)"
    fi
    failed=$((failed + 1))
fi
echo "$kernels test kernels, $selected tests selected"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$cargo_status" = 0 ]
