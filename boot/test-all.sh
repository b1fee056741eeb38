#!/usr/bin/env bash
# Runs every test kernel (the library's unit tests and each tests/*.rs) and
# prints the aggregate over all of them as the last line:
#   N passed, N failed
# Exits non-zero if any kernel failed, hung, triple-faulted, or did not build,
# or if no test at all was selected (a filter that matches nothing is an
# error, not a pass: it counts as one failure).
# Arguments are a test filter passed to every kernel (test=NAME).
#
# The whole suite runs once per CPU count in PROBE_SMP_MATRIX (default
# "1 4": every test kernel on one CPU and on four), the passes side by side
# on a machine with the cores for it; a kernel whose source names its own
# --smp (a `// run.sh:` line) runs once, in the first pass.
set -u
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
mkdir -p "$target_dir"

passed=0; failed=0; kernels=0; selected=0; cargo_status=0

# Build every test kernel once, so the passes below only run them (and a
# build error is reported once, not per pass).
if ! cargo test --no-run --quiet; then
    echo "cargo test --no-run failed: the test kernels do not build"
    echo "0 passed, 1 failed"
    exit 1
fi

# The passes run side by side when the machine has a core for each
# (PROBE_TEST_JOBS overrides nproc): QEMU runs one pass's kernels one after
# another, so two passes on two cores take the time of the longer one. The
# first pass prints as it goes; the others print when they end.
matrix=(${PROBE_SMP_MATRIX:-1 4})
jobs=${PROBE_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
run_pass() { # index smp
    local skip_own=""; [ "$1" -gt 0 ] && skip_own=1
    PROBE_TEST_RESULTS="$target_dir/test-results-smp$2.txt" PROBE_TEST_FAILURES="$target_dir/test-failures-smp$2.txt" PROBE_SMP=$2 PROBE_SKIP_OWN_SMP=$skip_own \
        cargo test --no-fail-fast -- "${@:3}"
}
pids=()
for i in "${!matrix[@]}"; do
    smp=${matrix[$i]}
    rm -f "$target_dir/test-results-smp$smp.txt" "$target_dir/test-failures-smp$smp.txt" "$target_dir/test-pass-smp$smp.log" "$target_dir/test-pass-smp$smp.status"
    if [ "$i" = 0 ] || [ "$jobs" -le 1 ]; then continue; fi
    ( run_pass "$i" "$smp" "$@" > "$target_dir/test-pass-smp$smp.log" 2>&1; echo $? > "$target_dir/test-pass-smp$smp.status" ) &
    pids+=($!)
done
for i in "${!matrix[@]}"; do
    smp=${matrix[$i]}
    echo "== test kernels at -smp $smp =="
    if [ "$i" = 0 ] || [ "$jobs" -le 1 ]; then
        run_pass "$i" "$smp" "$@"
        status=$?
    else
        wait "${pids[$((i - 1))]}"
        cat "$target_dir/test-pass-smp$smp.log"
        status=$(cat "$target_dir/test-pass-smp$smp.status" 2>/dev/null || echo 1)
    fi
    results="$target_dir/test-results-smp$smp.txt"
    pass_failed=0
    if [ -f "$results" ]; then
        while read -r name p f s verdict; do
            kernels=$((kernels + 1)); passed=$((passed + p)); failed=$((failed + f)); selected=$((selected + s))
            pass_failed=$((pass_failed + f))
            [ "$f" != 0 ] && echo "FAILED kernel: $name at -smp $smp ($verdict)"
        done < "$results"
    fi
    if [ "$status" != 0 ]; then
        cargo_status=$status
        if [ "$pass_failed" = 0 ]; then
            echo "cargo test at -smp $smp failed before running every kernel"
            failed=$((failed + 1))
        fi
    fi
done

# Host tests of the workspace's pure crates (the engine's algorithms, the
# probe event definitions, the symbol table's format and the post-link
# tool), counted in from libtest's "test result:" lines. They run through
# boot/host-cargo.sh, which says why plain cargo cannot.
host_filter=()
for arg in "$@"; do [[ "$arg" == -* ]] || host_filter+=("$arg"); done
host_log=$(mktemp)
CARGO_TARGET_DIR="$target_dir" boot/host-cargo.sh test --no-fail-fast -p probe-engine-core -p probe-events -p trace-buffer -p event-filter -p ksyms-table -p ksyms-tool -- ${host_filter[@]+"${host_filter[@]}"} 2>&1 | tee "$host_log"
host_status=${PIPESTATUS[0]}
host_passed=0; host_failed=0
while read -r p f; do
    host_passed=$((host_passed + p)); host_failed=$((host_failed + f))
done < <(sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' "$host_log")
rm -f "$host_log"
if [ "$host_status" != 0 ] && [ "$host_failed" = 0 ]; then
    echo "host tests failed before running (build error?)"
    host_failed=1
fi
[ "$host_failed" != 0 ] && echo "FAILED host tests: $host_failed"
echo "host tests: $host_passed passed, $host_failed failed"
passed=$((passed + host_passed)); failed=$((failed + host_failed))
selected=$((selected + host_passed + host_failed))

# What each failed kernel said, last, where a log's tail shows it.
for smp in "${matrix[@]}"; do
    if [ -s "$target_dir/test-failures-smp$smp.txt" ]; then
        echo "== what the failed kernels at -smp $smp said =="
        cat "$target_dir/test-failures-smp$smp.txt"
    fi
done

if [ "$selected" = 0 ]; then
    if [ "$#" -gt 0 ]; then
        echo "no test matched filter '$*'"
    else
        echo "no test ran (no test kernel reported its results)"
    fi
    failed=$((failed + 1))
fi
echo "$kernels test kernel runs (over -smp ${PROBE_SMP_MATRIX:-1 4}) and the host tests, $selected tests selected"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$cargo_status" = 0 ] && [ "$host_status" = 0 ]
