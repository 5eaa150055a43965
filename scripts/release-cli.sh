#!/usr/bin/env bash
# Builds the CLI in release mode and packs it as the release publishes it: gatehouse (stripped, the
# Swift runtime linked in; it needs glibc, libsqlite3 and libcurl, as on any Debian or Ubuntu), the
# kubectl-gatehouse link, its resource bundle beside it, README and LICENSE, in
# OUTDIR/gatehouse-VERSION-linux-ARCH.tar.gz, with that file's SHA-256 beside it.
#   scripts/release-cli.sh VERSION OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: release-cli.sh VERSION OUTDIR}
out=${2:?usage: release-cli.sh VERSION OUTDIR}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || { echo "release-cli: '$version' is not a version (1.2.3)" >&2; exit 2; }
case $(uname -m) in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "release-cli: no release for $(uname -m)" >&2; exit 2 ;;
esac
built_version=$(sed -n 's/^public let gatehouseVersion = "\(.*\)"$/\1/p' Sources/GatehouseCore/Version.swift)
if [[ $version != "$built_version" && $version != *-* ]]; then
    echo "release-cli: the tag says $version but Sources/GatehouseCore/Version.swift says $built_version" >&2
    exit 2
fi
swift build -c release --product gatehouse --static-swift-stdlib >&2
built=$(swift build -c release --show-bin-path)
name="gatehouse-$version-linux-$arch"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name" "$out"
install -s -m 0755 "$built/gatehouse" "$stage/$name/gatehouse"
cp -R "$built/gatehouse_GatehouseServer.resources" "$stage/$name/"
ln -s gatehouse "$stage/$name/kubectl-gatehouse"
cp README.md LICENSE "$stage/$name/"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
