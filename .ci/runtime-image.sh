#!/usr/bin/env bash
# The image's run-time half, tested as users get it, without Docker (no registry is reachable to
# pull base images from): builds the file system the Dockerfile's run-time stage describes (its
# Debian release, image/runtime-packages) with debootstrap, installs the release binary with
# image/install.sh as the Dockerfile does, checks that the packages satisfy the binary (ldd), and
# runs .ci/e2e.sh against the binary inside it (chroot, as the image's user 65532, with the
# image's environment). Then, when buildah is installed, packs that file system as an OCI image
# archive and prints its size.
#   .ci/runtime-image.sh RELEASE_BIN_DIR      (as root: debootstrap, chroot and mount need it)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: runtime-image.sh RELEASE_BIN_DIR}
release=$(sed -n 's/^FROM debian:\([a-z0-9]*\)-slim.*/\1/p' Dockerfile)
packages=$(grep -v '^#' image/runtime-packages | paste -sd, -)
if [[ -z "$release" || -z "$packages" ]]; then
    echo "cannot read the run-time stage's Debian release (Dockerfile) or packages (image/runtime-packages)"
    exit 1
fi
# The ENV instruction of the run-time stage, as KEY=VALUE words.
mapfile -t environment < <(python3 - <<'PY'
import re, shlex
text = open("Dockerfile").read().split("\nFROM debian:")[-1]
block = re.search(r"^ENV ((?:.*\\\n)*.*)$", text, re.M).group(1).replace("\\\n", " ")
print("\n".join(shlex.split(block)))
PY
)

root=$(mktemp -d /tmp/gatehouse-rootfs.XXXXXX)
chmod 755 "$root"   # it becomes /: the image's user must be able to enter it
work=$(mktemp -d /tmp/gatehouse-image-e2e.XXXXXX)
mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
    rm -rf "$root" "$work"
}
trap cleanup EXIT

echo "debootstrap $release with $packages"
debootstrap --variant=minbase --include="$packages" "$release" "$root" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work.debootstrap.log" 2>&1 \
    || { tail -20 "$work.debootstrap.log"; exit 1; }
rm -f "$work.debootstrap.log"
image/install.sh "$bin" "$root"

failures=0
missing=$(chroot "$root" ldd /usr/local/bin/gatehouse | grep "not found" || true)
if [[ -n "$missing" ]]; then
    echo "FAIL: image/runtime-packages does not satisfy the binary:"; echo "$missing"; failures=$((failures + 1))
else
    echo "ldd: every library the binary links is in the run-time file system"
fi

# What a container runtime provides: /proc (Swift reads the command line there) and /dev.
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
mount --bind /dev "$root/dev" && mounted+=("$root/dev")
version=$(chroot --userspec=65532:65532 "$root" /usr/local/bin/gatehouse --version)
if [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "gatehouse --version in the image, as user 65532: $version"
else
    echo "FAIL: gatehouse --version in the image printed: $version"; failures=$((failures + 1)); version=unknown
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
trap 'cleanup; rm -f "$wrapper"' EXIT
E2E_WORK="$work" .ci/e2e.sh "$wrapper" || failures=$((failures + 1))

if command -v buildah >/dev/null; then
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}"; done
    mounted=()
    rmdir -p "$root$work" 2>/dev/null || true
    rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*
    archive=${IMAGE_ARCHIVE:-/tmp/gatehouse-image.tar}
    storage=(--storage-driver vfs --root "$work/containers" --runroot "$work/run")
    container=$(buildah "${storage[@]}" from scratch)
    tar -C "$root" -cf "$work/rootfs.tar" .
    buildah "${storage[@]}" add "$container" "$work/rootfs.tar" / >/dev/null
    config=(--user 65532:65532 --entrypoint '["/usr/local/bin/gatehouse"]' --cmd serve --port 8080 --volume /data)
    for pair in "${environment[@]}"; do config+=(--env "$pair"); done
    buildah "${storage[@]}" config "${config[@]}" "$container"
    rm -f "$archive"
    buildah "${storage[@]}" commit --quiet "$container" "oci-archive:$archive:gatehouse:$version" >/dev/null
    echo "OCI image archive $archive: $(du -h "$archive" | cut -f1) ($(stat -c %s "$archive") bytes)"
fi

[[ $failures -eq 0 ]]
