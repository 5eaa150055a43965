#!/usr/bin/env bash
# What the release workflow does that can run without a registry: lint the workflows (zizmor,
# check-jsonschema's GitHub-workflow schema), pack the CLI as released and run it from the archive,
# check its SHA-256 and the krew manifest, and package the chart with the published image as default.
#   .ci/release_test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "release: $*" >&2; exit 1; }

zizmor --offline .github/workflows/
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
version=0.0.0-ci
archive=$(scripts/release-cli.sh "$version" "$dist")
(cd "$dist" && sha256sum -c "$(basename "$archive").sha256") || fail "the archive's checksum does not match"
mkdir "$dist/unpacked"
tar -C "$dist/unpacked" -xzf "$archive"
root="$dist/unpacked/$(basename "$archive" .tar.gz)"
[[ -x $root/gatehouse && -L $root/kubectl-gatehouse && -d $root/gatehouse_GatehouseServer.resources ]] \
    || fail "the archive lacks the binary, its kubectl link or its resources: $(ls "$root")"
file "$root/gatehouse" | grep -q "not stripped" && fail "the released binary is not stripped"
"$root/gatehouse" --version | grep -q . || fail "the released binary does not run"
"$root/kubectl-gatehouse" --help | grep -q "kubectl gatehouse" || fail "the kubectl link does not say kubectl gatehouse"
# The packed binary serves its dashboard and OpenAPI document from the bundle beside it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/gatehouse" serve --port "$port" --host 127.0.0.1 --database "$dist/g.sqlite" >"$dist/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/openapi.yaml" | grep -q '^openapi: 3' || { kill $server; fail "the packed binary does not serve its OpenAPI document"; }
kill $server; wait $server 2>/dev/null || true

python3 scripts/krew-manifest.py "$version" acme/gatehouse "$dist" > "$dist/krew.yaml"
python3 - "$dist/krew.yaml" "$archive" <<'PY'
import hashlib, sys, yaml
manifest = yaml.safe_load(open(sys.argv[1]))
assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "gatehouse", manifest
platform = manifest["spec"]["platforms"][0]
assert platform["sha256"] == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest(), "the krew manifest's sha256"
assert platform["uri"].endswith("/releases/download/v0.0.0-ci/" + sys.argv[2].rsplit("/", 1)[1]), platform["uri"]
assert platform["bin"] == "gatehouse"
print("krew manifest: ok")
PY

chart=$(scripts/package-chart.sh "$version" ghcr.io/acme/gatehouse "$dist")
python3 - "$chart" <<'PY'
import sys, tarfile, yaml
with tarfile.open(sys.argv[1]) as archive:
    chart = yaml.safe_load(archive.extractfile("gatehouse/Chart.yaml"))
    values = yaml.safe_load(archive.extractfile("gatehouse/values.yaml"))
assert chart["version"] == "0.0.0-ci" and chart["appVersion"] == "0.0.0-ci", chart
assert values["image"]["repository"] == "ghcr.io/acme/gatehouse", values["image"]
print("chart package: ok")
PY
echo "release: the workflow lints; the CLI archive, its checksum, the krew manifest and the chart package are as published"
