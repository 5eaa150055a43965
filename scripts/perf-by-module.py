#!/usr/bin/env python3
"""Where a profile's samples went, by Swift module (from the mangled symbol), Swift runtime, libc
and kernel: how docs/benchmarks.md compares Gatehouse with the bare Hummingbird router.

    perf record -F 2000 -g -p PID -o gatehouse.data -- sleep 5    # while wrk drives the service
    scripts/perf-by-module.py gatehouse.data
"""
import collections
import re
import subprocess
import sys


def by_module(path):
    report = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "symbol", "--stdio"],
                            capture_output=True, text=True, check=True).stdout
    shares = collections.Counter()
    for line in report.splitlines():
        sample = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
        if not sample:
            continue
        share, space, symbol = float(sample.group(1)), sample.group(2), sample.group(3)
        if space == "k":
            module = "kernel"
        elif symbol.startswith("$s"):
            # A mangled Swift symbol starts with its module's name, length first: $s11Hummingbird…
            named = re.match(r"\$ss?(\d+)", symbol)
            module = symbol[named.end():named.end() + int(named.group(1))] if named else "Swift standard library"
        elif symbol.startswith(("swift", "_swift")) or "swift::" in symbol:
            module = "Swift runtime"
        else:
            module = "libc and other C"
        shares[module] += share
    return shares


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for module, share in by_module(sys.argv[1]).most_common(25):
        print(f"{share:6.2f}%  {module}")
