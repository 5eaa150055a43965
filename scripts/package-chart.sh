#!/usr/bin/env bash
# Packages the Helm chart as the release publishes it: version and appVersion VERSION, and its
# default image the one the release pushed (IMAGE:VERSION), into OUTDIR/gatehouse-VERSION.tgz.
# Uses helm when it is installed, else the helm-python-sdk library.
#   scripts/package-chart.sh VERSION IMAGE OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: package-chart.sh VERSION IMAGE OUTDIR}
image=${2:?usage: package-chart.sh VERSION IMAGE OUTDIR}
out=$(mkdir -p "${3:?usage: package-chart.sh VERSION IMAGE OUTDIR}" && cd "$3" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R charts/gatehouse "$stage/gatehouse"
# The published chart's default image is the published one (the repository's chart has none).
python3 - "$stage/gatehouse/values.yaml" "$image" <<'PY'
import re, sys
path, image = sys.argv[1], sys.argv[2]
text = open(path).read()
text, count = re.subn(r'(?m)^(  repository: )""$', lambda m: m.group(1) + '"' + image + '"', text, count=1)
if count != 1:
    sys.exit("package-chart: values.yaml has no empty image.repository to set")
open(path, "w").write(text)
PY
if command -v helm >/dev/null; then
    helm package "$stage/gatehouse" --version "$version" --app-version "$version" --destination "$out" >&2
else
    python3 -c 'import sys, helm_python; print(helm_python.package(sys.argv[1], destination=sys.argv[2], version=sys.argv[3], app_version=sys.argv[3]), file=sys.stderr)' \
        "$stage/gatehouse" "$out" "$version"
fi
echo "$out/gatehouse-$version.tgz"
