#!/usr/bin/env python3
"""Moves each dependency Package.swift pins (`exact:`) to the newest release its repository has.

    scripts/update-pins.py [--check] [--major] [--package FILE]

Package.resolved cannot be committed here, so Package.swift pins every dependency to the exact
version tested. For each `.package(url: URL, exact: VERSION)` this asks the repository for its tags
(`git ls-remote --tags URL`, through whatever mirror git is configured with) and moves the pin to
the newest release (X.Y.Z, no pre-release) of the same major version — with --major, of any. A
dependency named with `from:` is left as it is. Then build and test (`swift test`) before
committing the new pins.

  --check          change nothing; exit 1 when a pin has a newer release (the table says which)
  --major          also move to a new major version (expect source changes)
  --package FILE   the manifest to read and rewrite (default: Package.swift beside scripts/)
"""
import argparse
import os
import re
import subprocess
import sys

PIN = re.compile(r'\.package\(\s*url:\s*"(?P<url>[^"]+)"\s*,\s*exact:\s*"(?P<version>\d+\.\d+\.\d+)"\s*\)')
RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def releases(url):
    """The repository's release tags as (major, minor, patch, tag text)."""
    listed = subprocess.run(["git", "ls-remote", "--tags", url], capture_output=True, text=True, timeout=120)
    if listed.returncode != 0:
        raise SystemExit(f"update-pins: cannot list the tags of {url}: {listed.stderr.strip()}")
    found = set()
    for line in listed.stdout.splitlines():
        tag = line.split("refs/tags/", 1)[-1].removesuffix("^{}")
        match = RELEASE.match(tag)
        if match:
            found.add((*map(int, match.groups()), tag.lstrip("v")))
    return sorted(found)


def newest(url, current, any_major):
    major = int(current.split(".")[0])
    candidates = [r for r in releases(url) if any_major or r[0] == major]
    return candidates[-1][3] if candidates else current


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--major", action="store_true")
    parser.add_argument("--package", default=os.path.join(os.path.dirname(__file__), "..", "Package.swift"))
    arguments = parser.parse_args()

    text = open(arguments.package).read()
    pins = list(PIN.finditer(text))
    if not pins:
        raise SystemExit(f"update-pins: {arguments.package} pins nothing with exact:")
    outdated = []
    rows = []
    for pin in pins:
        url, version = pin["url"], pin["version"]
        latest = newest(url, version, arguments.major)
        name = url.rstrip("/").split("/")[-1]
        behind = tuple(map(int, latest.split("."))) > tuple(map(int, version.split(".")))
        rows.append((name, version, latest if behind else "up to date"))
        if behind:
            outdated.append((pin, latest))
    width = max(len(row[0]) for row in rows)
    for name, version, latest in rows:
        print(f"{name:<{width}}  {version:>8}  {latest}")

    if arguments.check:
        if outdated:
            print(f"{len(outdated)} of {len(pins)} pins have a newer release; scripts/update-pins.py moves them")
            return 1
        print(f"all {len(pins)} pins are the newest release" + ("" if arguments.major else " of their major version"))
        return 0
    for pin, latest in reversed(outdated):  # from the end, so earlier offsets stay true
        replaced = pin.group(0).replace(f'"{pin["version"]}"', f'"{latest}"')
        text = text[: pin.start()] + replaced + text[pin.end():]
    with open(arguments.package, "w") as file:
        file.write(text)
    print(f"moved {len(outdated)} of {len(pins)} pins; now build and test (swift test) before committing them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
