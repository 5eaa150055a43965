#!/bin/sh
# Installs a built gatehouse into a root file system the way the image has it: the binary
# (stripped) and its resource bundle in /usr/local/bin, a /data volume owned by the non-root user 65532.
# Used by the Dockerfile (into /out, copied over the run-time stage) and by scripts/build-image.sh.
#   image/install.sh BUILD_BIN_DIR ROOT
set -eu
bin=${1:?usage: install.sh BUILD_BIN_DIR ROOT}
root=${2:?usage: install.sh BUILD_BIN_DIR ROOT}
mkdir -p "$root/usr/local/bin" "$root/data"
# Without its symbol tables the binary is half the size (about 90 MB instead of 185).
strip -o "$root/usr/local/bin/gatehouse" "$bin/gatehouse"
rm -rf "$root/usr/local/bin/gatehouse_GatehouseServer.resources"
cp -R "$bin/gatehouse_GatehouseServer.resources" "$root/usr/local/bin/"
chown 65532:65532 "$root/data"
