#!/usr/bin/env python3
"""What each shipped binary needs from the system, checked against the
Lambda runtime (provided.al2023, Amazon Linux 2023) the binaries run on.

    check_artifacts.py [--max-glibc 2.34] BINARY...

For every binary: an ELF executable, dynamically linked against nothing but
glibc's own libraries and libgcc_s (all in provided.al2023), and needing no
glibc symbol version above --max-glibc (2.34, Amazon Linux 2023's). Prints
one line per binary, and fails naming the binary and what it needs.
Uses `readelf` (binutils), which reads ELF files of any architecture.
"""

import argparse
import re
import subprocess
import sys

# glibc's libraries, the loaders and libgcc_s: what provided.al2023 has.
ALLOWED_LIBRARIES = {
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
}
MACHINES = {"Advanced Micro Devices X86-64": "x86_64", "AArch64": "aarch64"}


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def readelf(flags: list[str], path: str) -> str:
    done = subprocess.run(["readelf", *flags, "--wide", path], capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(done.stderr.strip() or f"readelf {' '.join(flags)} failed")
    return done.stdout


def needs(header: str, dynamic: str, versions: str) -> dict:
    """What a binary needs, from readelf's -h, -d and -V outputs."""
    kind = re.search(r"^\s*Type:\s+(\w+)", header, re.M)
    machine = re.search(r"^\s*Machine:\s+(.+?)\s*$", header, re.M)
    libraries = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)
    glibc = sorted({m for m in re.findall(r"Name: GLIBC_([0-9.]+)", versions)}, key=version)
    return {
        "type": kind.group(1) if kind else "?",
        "machine": MACHINES.get(machine.group(1), machine.group(1)) if machine else "?",
        "libraries": libraries,
        "max_glibc": glibc[-1] if glibc else None,
    }


def problems(found: dict, max_glibc: str) -> list[str]:
    wrong = []
    if found["type"] not in ("EXEC", "DYN"):
        wrong.append(f"not an executable (ELF type {found['type']})")
    if found["machine"] not in ("x86_64", "aarch64"):
        wrong.append(f"built for {found['machine']}, not x86_64 or aarch64")
    extra = [lib for lib in found["libraries"] if lib not in ALLOWED_LIBRARIES]
    if extra:
        wrong.append(f"links {', '.join(extra)}, which the Lambda runtime (provided.al2023) lacks")
    if found["max_glibc"] and version(found["max_glibc"]) > version(max_glibc):
        wrong.append(f"needs GLIBC_{found['max_glibc']}, above the {max_glibc} of Amazon Linux 2023")
    return wrong


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-glibc", default="2.34")
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.binaries:
        try:
            found = needs(readelf(["-h"], path), readelf(["-d"], path), readelf(["-V"], path))
        except (ValueError, OSError) as error:
            print(f"FAIL {path}: cannot read it as ELF: {error}")
            failed += 1
            continue
        wrong = problems(found, args.max_glibc)
        libraries = ", ".join(found["libraries"]) or "none (static)"
        summary = f"{found['machine']}, GLIBC_{found['max_glibc'] or '-'} at most, links {libraries}"
        if wrong:
            failed += 1
            print(f"FAIL {path}: {'; '.join(wrong)} ({summary})")
        else:
            print(f"ok   {path}: {summary}")
    if failed:
        print(f"{failed} of {len(args.binaries)} binaries would not run on provided.al2023")
        return 1
    print(f"all {len(args.binaries)} binaries fit provided.al2023 (glibc {args.max_glibc})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
