"""Check that only the per-ISA translation units of fastconv's compiled core use AVX/AVX-512.

The wheel must run on any x86-64 CPU: baseline code (Cython modules, dispatch, conv2d.c,
pool2d.c, batchnorm.c, elementwise.c, the *_generic.c units) may use SSE2 only, and the
instructions of the AVX2 / AVX-512 kernels must stay inside the *_avx2.c / *_avx512.c units
(the files setup.py compiles with those flags), whose code runs only after run-time dispatch
chose them.

Each instruction of every extension module is disassembled (objdump) and attributed to the
C file it was compiled from through the DWARF address ranges, so the modules must be built
with debug information (the default `-g` of Python's CFLAGS; check before `auditwheel
repair --strip`). An instruction is VEX-encoded (AVX, AVX2, FMA) if its opcode starts with
C4/C5 and EVEX-encoded (AVX-512) if it starts with 62, after legacy prefixes: in 64-bit mode
those bytes have no other meaning there.

Also checked: the functions that return the kernel tables (fc_kernels_avx2/avx512), which
dispatch calls on every CPU, use no VEX/EVEX instruction.

Usage: python check_isa.py WHEEL_OR_DIRECTORY   (needs pyelftools and binutils' objdump)
Exit status 0 and a per-module summary when clean; 1 and the offending places otherwise.
"""
import bisect
import collections
import os
import re
import subprocess
import sys
import tempfile
import zipfile

from elftools.elf.elffile import ELFFile

# Which encodings a C file may use, by the suffix that gives it its ISA flags in setup.py;
# every other file: none.
ALLOWED_BY_SUFFIX = {"_avx2.c": {"vex"}, "_avx512.c": {"vex", "evex"}}


def allowed(source):
    for suffix, kinds in ALLOWED_BY_SUFFIX.items():
        if source.endswith(suffix):
            return kinds
    return set()


TABLE_GETTERS = ("fc_kernels_avx2", "fc_kernels_avx512", "fc_kernels_generic")
LEGACY_PREFIXES = {0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0xF0}
LINE = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f ]+)\t")
FUNCTION = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")


def encoding(raw):
    """"vex", "evex" or None for an instruction given as bytes."""
    i = 0
    while i < len(raw) and raw[i] in LEGACY_PREFIXES:
        i += 1
    if i < len(raw):
        if raw[i] in (0xC4, 0xC5):
            return "vex"
        if raw[i] == 0x62:
            return "evex"
    return None


def source_ranges(path):
    """[(low, high, C file base name)] for every compile unit, from .debug_aranges."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info() or elf.get_section_by_name(".debug_info") is None:
            raise SystemExit(f"{path}: no DWARF debug info; build with -g and check before stripping")
        dwarf = elf.get_dwarf_info()
        names = {}
        for cu in dwarf.iter_CUs():
            name = cu.get_top_DIE().attributes.get("DW_AT_name")
            names[cu.cu_offset] = os.path.basename(name.value.decode()) if name else "?"
        aranges = dwarf.get_aranges()
        if aranges is None:
            raise SystemExit(f"{path}: no .debug_aranges section")
        return sorted((e.begin_addr, e.begin_addr + e.length, names.get(e.info_offset, "?"))
                      for e in aranges.entries if e.length)


def instructions(path):
    """Yield (address, function symbol, encoding) for every VEX/EVEX instruction in .text."""
    out = subprocess.run(["objdump", "-d", "-w", "--section=.text", path],
                         capture_output=True, text=True, check=True).stdout
    function = "?"
    for line in out.splitlines():
        m = FUNCTION.match(line)
        if m:
            function = m.group(2)
            continue
        m = LINE.match(line)
        if m:
            kind = encoding(bytes.fromhex(m.group(2).replace(" ", "")))
            if kind:
                yield int(m.group(1), 16), function, kind


def check_module(path):
    """Return (summary counts per file and encoding, list of problems)."""
    ranges = source_ranges(path)
    starts = [r[0] for r in ranges]
    counts = collections.Counter()
    problems = []
    for address, function, kind in instructions(path):
        i = bisect.bisect_right(starts, address) - 1
        source = ranges[i][2] if i >= 0 and address < ranges[i][1] else "<no debug info>"
        counts[(source, kind)] += 1
        base = function.split(".")[0]
        if kind not in allowed(source):
            problems.append(f"{kind} instruction at {address:#x} in {function} ({source})")
        elif base in TABLE_GETTERS:
            problems.append(f"{kind} instruction in {function}, which runs on every CPU")
    return counts, problems


def modules(target, tmp):
    if os.path.isdir(target):
        root = target
    else:
        with zipfile.ZipFile(target) as wheel:
            wheel.extractall(tmp)
        root = tmp
    found = []
    for folder, _, files in os.walk(root):
        if ".libs" in folder:  # vendored runtimes (libgomp) are not ours
            continue
        found += [os.path.join(folder, f) for f in files if ".so" in f and "_core" in folder]
    return sorted(found)


def main(argv):
    if len(argv) != 2:
        raise SystemExit(__doc__)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        paths = modules(argv[1], tmp)
        if not paths:
            raise SystemExit(f"no compiled fastconv modules found in {argv[1]}")
        for path in paths:
            counts, problems = check_module(path)
            summary = ", ".join(f"{src}: {n} {kind}" for (src, kind), n in sorted(counts.items()))
            print(f"{os.path.basename(path)}: {summary or 'no VEX/EVEX instructions'}")
            for problem in problems[:20]:
                print(f"  PROBLEM: {problem}")
            failed |= bool(problems)
    if failed:
        print("check_isa: ISA-specific instructions outside their translation units", file=sys.stderr)
        return 1
    print("check_isa: AVX/AVX-512 only in the *_avx2.c / *_avx512.c units; baseline code is SSE2")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
