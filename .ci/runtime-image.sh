#!/usr/bin/env bash
# The image as users build it without a container daemon (no registry is reachable here to pull
# base images from): scripts/build-image.sh makes the run-time file system the Dockerfile's run-time
# stage describes (debootstrap of its Debian release with image/runtime-packages, the release
# binary installed by image/install.sh, ldd checked) and packs it as an OCI archive. Then, in that
# same file system, the binary runs as the image's user 65532 with the image's environment: its
# version, and .ci/e2e.sh against it (chroot).
#   .ci/runtime-image.sh RELEASE_BIN_DIR      (as root: debootstrap, chroot and mount need it)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: runtime-image.sh RELEASE_BIN_DIR}
# The run-time stage's ENV, as KEY=VALUE words (read where the image is built).
mapfile -t environment < <(scripts/build-image.sh --print-environment)

parent=$(mktemp -d /tmp/gatehouse-image-ci.XXXXXX)
root="$parent/rootfs"
work=$(mktemp -d /tmp/gatehouse-image-e2e.XXXXXX)
mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
    rm -rf "$parent" "$work" "$root.gatehouse"
}
trap cleanup EXIT

scripts/build-image.sh --bin-dir "$bin" --keep-rootfs "$root" --archive "${IMAGE_ARCHIVE:-/tmp/gatehouse-image.tar}"

failures=0
# What a container runtime provides: /proc (Swift reads the command line there) and /dev.
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
mount --bind /dev "$root/dev" && mounted+=("$root/dev")
version=$(chroot --userspec=65532:65532 "$root" /usr/local/bin/gatehouse --version)
if [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "gatehouse --version in the image, as user 65532: $version"
else
    echo "FAIL: gatehouse --version in the image printed: $version"; failures=$((failures + 1))
fi

# The end-to-end script's work folder has the same path inside and outside, owned by the image's user.
chown 65532:65532 "$work"
mkdir -p "$root$work"
mount --bind "$work" "$root$work" && mounted+=("$root$work")
wrapper="$root.gatehouse"
{
    echo '#!/bin/sh'
    printf 'exec chroot --userspec=65532:65532 %q env -i HOME=/ PATH=/usr/local/bin:/usr/bin:/bin' "$root"
    printf ' %q' "${environment[@]}"
    echo ' /usr/local/bin/gatehouse "$@"'
} >"$wrapper"
chmod +x "$wrapper"
E2E_WORK="$work" .ci/e2e.sh "$wrapper" || failures=$((failures + 1))

[[ $failures -eq 0 ]]
