#!/usr/bin/env python3
"""Writes the krew plugin manifest of a release to standard output: one platform per CLI archive in
DIST (gatehouse-VERSION-linux-ARCH.tar.gz), each with its download address on the GitHub release of
REPOSITORY and its SHA-256. krew installs the archive and links kubectl-gatehouse to its binary.

    scripts/krew-manifest.py VERSION OWNER/REPOSITORY DIST
"""

import glob
import hashlib
import os
import re
import sys

import yaml


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    version, repository, dist = sys.argv[1:]
    platforms = []
    for path in sorted(glob.glob(os.path.join(dist, f"gatehouse-{version}-linux-*.tar.gz"))):
        arch = re.search(r"-linux-(amd64|arm64)\.tar\.gz$", path)
        if not arch:
            continue
        with open(path, "rb") as archive:
            digest = hashlib.sha256(archive.read()).hexdigest()
        name = os.path.basename(path)
        platforms.append({
            "selector": {"matchLabels": {"os": "linux", "arch": arch.group(1)}},
            "uri": f"https://github.com/{repository}/releases/download/v{version}/{name}",
            "sha256": digest,
            "files": [{"from": f"{name[:-len('.tar.gz')]}/*", "to": "."}],
            "bin": "gatehouse",
        })
    if not platforms:
        sys.exit(f"krew-manifest: no gatehouse-{version}-linux-*.tar.gz in {dist}")
    manifest = {
        "apiVersion": "krew.googlecontainertools.github.com/v1alpha2",
        "kind": "Plugin",
        "metadata": {"name": "gatehouse"},
        "spec": {
            "version": f"v{version}",
            "homepage": f"https://github.com/{repository}",
            "shortDescription": "Durable manual gates for Flagger canaries",
            "description": "Open, close and watch Gatehouse's gates for Flagger canaries: approve a rollout,\n"
                           "its traffic steps or its promotion, ask for a rollback, freeze a namespace,\n"
                           "and see what each canary waits on.\n",
            "caveats": "Point it at Gatehouse with --server URL or GATEHOUSE_URL (see the README).\n",
            "platforms": platforms,
        },
    }
    yaml.safe_dump(manifest, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
