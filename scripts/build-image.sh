#!/usr/bin/env bash
# Builds Gatehouse's container image without a container daemon and without pulling a base image:
# the release binary (swift build, as the Dockerfile's build stage does), the run-time file system
# the Dockerfile's run-time stage describes (its Debian release and image/runtime-packages, made by
# debootstrap from a Debian mirror), the binary installed by image/install.sh, and that file system
# packed by buildah as an OCI image with the run-time stage's user, environment, entrypoint and
# volume. The result is an OCI archive: push it with `skopeo copy oci-archive:FILE docker://REF`
# or `buildah push`, or load it with `podman load -i FILE`.
#
#   scripts/build-image.sh [--tag NAME:TAG] [--archive FILE] [--bin-dir DIR] [--keep-rootfs DIR]
#
#   --tag NAME:TAG     the name the archive gives the image (default gatehouse:VERSION)
#   --archive FILE     where to write the OCI archive (default gatehouse-image.tar)
#   --bin-dir DIR      use a release build already made there (swift build -c release --show-bin-path)
#   --keep-rootfs DIR  also leave the run-time file system in DIR (it must not exist), to test it
#   --print-environment  print the run-time stage's ENV as KEY=VALUE lines, and nothing else
#
# Needs root (debootstrap and chroot do), debootstrap, buildah, a Swift 6.3 toolchain on PATH
# unless --bin-dir is given, and DEBIAN_MIRROR when deb.debian.org is not reachable.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '10,16p' "$0" | sed 's/^# \{0,1\}//'; }
# The ENV instruction of the Dockerfile's run-time stage, as KEY=VALUE lines (one definition: CI's
# image test runs the binary with it too, through --print-environment).
stage_environment() {
    python3 - <<'PY'
import re, shlex
text = open("Dockerfile").read().split("\nFROM docker.io/library/debian:")[-1]
block = re.search(r"^ENV ((?:.*\\\n)*.*)$", text, re.M).group(1).replace("\\\n", " ")
print("\n".join(shlex.split(block)))
PY
}

tag="" archive="gatehouse-image.tar" bin="" keep=""
while (($#)); do
    case $1 in
    --tag) tag=${2:?--tag needs NAME:TAG}; shift 2 ;;
    --archive) archive=${2:?--archive needs a file}; shift 2 ;;
    --bin-dir) bin=${2:?--bin-dir needs a folder}; shift 2 ;;
    --keep-rootfs) keep=${2:?--keep-rootfs needs a folder}; shift 2 ;;
    --print-environment) stage_environment; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-image.sh: unknown argument '$1'"; usage; exit 2 ;;
    esac
done
if [[ $(id -u) -ne 0 ]]; then
    echo "build-image.sh: run it as root: debootstrap and chroot need root"; exit 1
fi
for tool in debootstrap buildah; do
    command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is not installed (apt-get install $tool)"; exit 1; }
done
if [[ -n "$keep" && -e "$keep" ]]; then
    echo "build-image.sh: --keep-rootfs $keep exists already"; exit 1
fi

# What the Dockerfile's run-time stage says: its Debian release, packages and ENV instruction.
release=$(sed -n 's|^FROM docker.io/library/debian:\([a-z0-9]*\)-slim.*|\1|p' Dockerfile)
packages=$(grep -v '^#' image/runtime-packages | paste -sd, -)
if [[ -z "$release" || -z "$packages" ]]; then
    echo "build-image.sh: cannot read the run-time stage's Debian release (Dockerfile) or packages (image/runtime-packages)"
    exit 1
fi

mapfile -t environment < <(stage_environment)

if [[ -z "$bin" ]]; then
    echo "swift build -c release --product gatehouse --static-swift-stdlib"
    swift build -c release --product gatehouse --static-swift-stdlib
    bin=$(swift build -c release --show-bin-path)
fi
version=$("$bin/gatehouse" --version)
tag=${tag:-gatehouse:$version}

root=${keep:-$(mktemp -d /tmp/gatehouse-rootfs.XXXXXX)}
mkdir -p "$root"
chmod 755 "$root"   # it becomes /: the image's user must be able to enter it
work=$(mktemp -d /tmp/gatehouse-image.XXXXXX)
cleanup() {
    rm -rf "$work"
    [[ -n "$keep" ]] || rm -rf "$root"
}
trap cleanup EXIT

echo "debootstrap $release with $packages"
debootstrap --variant=minbase --include="$packages" "$release" "$root" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
image/install.sh "$bin" "$root"
missing=$(chroot "$root" ldd /usr/local/bin/gatehouse | grep "not found" || true)
if [[ -n "$missing" ]]; then
    echo "build-image.sh: image/runtime-packages does not satisfy the binary:"; echo "$missing"; exit 1
fi
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*

storage=(--storage-driver vfs --root "$work/containers" --runroot "$work/run")
container=$(buildah "${storage[@]}" from scratch)
tar -C "$root" -cf "$work/rootfs.tar" .
buildah "${storage[@]}" add "$container" "$work/rootfs.tar" / >/dev/null
config=(--user 65532:65532 --entrypoint '["/usr/local/bin/gatehouse"]' --cmd serve --port 8080 --volume /data)
for pair in "${environment[@]}"; do config+=(--env "$pair"); done
buildah "${storage[@]}" config "${config[@]}" "$container"
rm -f "$archive"
buildah "${storage[@]}" commit --quiet "$container" "oci-archive:$archive:$tag" >/dev/null
echo "OCI image archive $archive ($tag): $(du -h "$archive" | cut -f1) ($(stat -c %s "$archive") bytes)"
