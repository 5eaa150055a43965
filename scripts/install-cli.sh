#!/usr/bin/env bash
# Builds gatehouse in release mode (about 7 minutes the first time) and installs it, stripped, with
# its resource bundle beside it (where the binary looks for it), into PREFIX/bin (default ~/.local/bin; /usr/local/bin when run as root),
# together with kubectl-gatehouse, so that `kubectl gatehouse …` works too (kubectl's plugin
# naming convention).
#   scripts/install-cli.sh [PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -gt 0 ]]; then prefix=$1; elif [[ $(id -u) -eq 0 ]]; then prefix=/usr/local; else prefix=$HOME/.local; fi
bin="$prefix/bin"
echo "building gatehouse (release)…" >&2
swift build -c release --product gatehouse --static-swift-stdlib >&2
built=$(swift build -c release --show-bin-path)
mkdir -p "$bin"
# Without its symbol tables the binary is half the size (about 90 MB instead of 185).
install -s -m 0755 "$built/gatehouse" "$bin/gatehouse"
rm -rf "$bin/gatehouse_GatehouseServer.resources"
cp -R "$built/gatehouse_GatehouseServer.resources" "$bin/"
ln -sf gatehouse "$bin/kubectl-gatehouse"
echo "installed $("$bin/gatehouse" --version) as $bin/gatehouse ($(du -h "$bin/gatehouse" | cut -f1)) and $bin/kubectl-gatehouse"
case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "$bin is not on your PATH; add it: export PATH=\"$bin:\$PATH\"" ;;
esac
