#!/usr/bin/env bash
# Build fastconv's compiled core with AddressSanitizer + UndefinedBehaviorSanitizer in a copy of
# the source tree and run the kernel tests under it. Exits non-zero on any sanitizer finding
# (or test failure). The checkout itself is not touched: no build products land in it.
#
# Usage: tools/sanitize.sh [pytest arguments...]
#   default tests: the kernel suites (tests/test_ops_*.py tests/test_elementwise.py
#   tests/test_reference.py, and tests/test_losses.py for the loss kernel), the thread tests (tests/test_threads.py: 2 OpenMP threads) and the
#   fuzzers (tests/test_fuzz.py tests/test_invalid_inputs.py), once per instruction-set path
#   in $FASTCONV_SANITIZE_ISAS (default "avx512 avx2 generic"; paths the CPU lacks are skipped).
#   The build's generic path is the portable C (FASTCONV_PORTABLE_GENERIC=1: the kernels
#   compilers without GCC vector extensions build), which no other test runs; the SSE2
#   generic path of the regular build is tested by tools/build_wheel.sh.
# Environment:
#   FASTCONV_SANITIZE_DIR   where to copy and build (default: a new folder under /tmp)
#   FASTCONV_SANITIZE_ISAS  ISA paths to test, e.g. "generic" for a quick run
#   FASTCONV_SANITIZE_KEEP=1  keep the build folder afterwards
#   FASTCONV_SANITIZE_REUSE=1 with FASTCONV_SANITIZE_DIR of a kept build: skip copy and build
#                           (the tests are still copied from that folder, not the checkout)
# Requires gcc with libasan/libubsan, and the test requirements (pytest, hypothesis).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${FASTCONV_SANITIZE_DIR:-$(mktemp -d /tmp/fastconv-sanitize.XXXXXX)}
isas=${FASTCONV_SANITIZE_ISAS:-"avx512 avx2 generic"}
python=${PYTHON:-python3}
start=$(date +%s)

cleanup() {
    if [ "${FASTCONV_SANITIZE_KEEP:-0}" != "1" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

if [ "${FASTCONV_SANITIZE_REUSE:-0}" = "1" ] && [ -d "$work/src/fastconv/_core" ]; then
    echo "== reusing the sanitized build in $work"
    rm -rf "$work/logs"
    mkdir -p "$work/logs"
    cd "$work/src"
else
echo "== copying the working tree of $repo to $work"
mkdir -p "$work/src" "$work/logs"
# Tracked and untracked-but-not-ignored files: what is on disk now, without old build products.
# (--ignore-failed-read: a tracked file deleted or renamed in the working tree is skipped.)
(cd "$repo" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$work/src"
cd "$work/src"
# The sanitizers need the -O1 they are given, not setup.py's -O3 (this edits the copy only).
sed -i 's/"-O3", //' setup.py
grep -q '"-O3"' setup.py && { echo "sanitize.sh: could not drop -O3 from setup.py" >&2; exit 2; }

echo "== building with -fsanitize=address,undefined"
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -g"
CC=gcc CFLAGS="$san" LDFLAGS="-fsanitize=address,undefined" \
    FASTCONV_PORTABLE_GENERIC=1 \
    "$python" setup.py build_ext --inplace --build-temp "$work/build" > "$work/logs/build.log" 2>&1 \
    || { tail -50 "$work/logs/build.log"; echo "sanitize.sh: build failed" >&2; exit 2; }
# The threads are part of what is checked (the shared loops, the per-thread buffers): a build
# that lost OpenMP (setup.py's check failing under these flags) would test one thread only.
if [[ "${FASTCONV_NO_OPENMP:-0}" =~ ^0?$ ]] && ! grep -q "^openmp = True" fastconv/_core/_build_info.py; then
    echo "sanitize.sh: the sanitized build has no OpenMP (see $work/logs/build.log)" >&2
    exit 2
fi
fi
built=$(date +%s)

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
# Python leaks by design at exit: leak checking off. allocator_may_return_null: a huge request
# (tests of "array is too big") must become MemoryError, not an ASan abort. Reports go to files,
# so that output captured by pytest cannot hide them.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:log_path=$work/logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$work/logs/ubsan"
export PYTHONPATH="$work/src"
export OMP_NUM_THREADS=2
export PYTHONFAULTHANDLER=1

if [ "$#" -gt 0 ]; then
    tests=("$@")
else
    tests=(tests/test_ops_*.py tests/test_elementwise.py tests/test_losses.py tests/test_reference.py
           tests/test_threads.py tests/test_fuzz.py tests/test_invalid_inputs.py)
fi

status=0
runs=0
for isa in $isas; do
    # fastconv._core.cpu refuses (ValueError/RuntimeError, exit 1) an ISA this CPU lacks.
    check=0
    FASTCONV_ISA=$isa LD_PRELOAD="$libasan:$libubsan" "$python" -c "import fastconv._core.cpu" \
        > "$work/logs/isa-$isa.log" 2>&1 || check=$?
    if [ "$check" -eq 1 ]; then
        echo "== $isa: not available on this CPU, skipped"
        continue
    elif [ "$check" -ne 0 ]; then
        status=1
        echo "sanitize.sh: importing the sanitized core failed (exit $check) with FASTCONV_ISA=$isa:" >&2
        tail -20 "$work/logs/isa-$isa.log" >&2
        continue
    fi
    runs=$((runs + 1))
    echo "== running ${tests[*]} with FASTCONV_ISA=$isa under ASan+UBSan"
    if ! FASTCONV_ISA=$isa LD_PRELOAD="$libasan:$libubsan" \
            "$python" -m pytest -q -p no:cacheprovider -x "${tests[@]}" > "$work/logs/pytest-$isa.log" 2>&1; then
        status=1
        echo "sanitize.sh: tests FAILED or aborted with FASTCONV_ISA=$isa; last lines:" >&2
        tail -30 "$work/logs/pytest-$isa.log" >&2
    else
        tail -1 "$work/logs/pytest-$isa.log"
    fi
done

if [ "$runs" -eq 0 ]; then
    status=1
    echo "sanitize.sh: no test run happened (no usable ISA in: $isas)" >&2
fi

reports=$(find "$work/logs" -name 'asan.*' -o -name 'ubsan.*' | sort)
if [ -n "$reports" ]; then
    status=1
    echo "sanitize.sh: sanitizer reports:" >&2
    for report in $reports; do
        echo "---- $report" >&2
        head -60 "$report" >&2
    done
fi
end=$(date +%s)
echo "== build $((built - start)) s, tests $((end - built)) s, total $((end - start)) s"
if [ "$status" -eq 0 ]; then
    echo "sanitize.sh: clean (no ASan/UBSan reports, all tests passed)"
else
    echo "sanitize.sh: FINDINGS (see above; logs in $work/logs with FASTCONV_SANITIZE_KEEP=1)" >&2
fi
exit "$status"
