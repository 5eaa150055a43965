#!/usr/bin/env bash
# scripts/update-pins.py against repositories made here: a pin moves to the newest release of its
# major version (pre-releases and other tags ignored), --major crosses majors, --check changes
# nothing and says so by its exit code, and a `from:` dependency is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
check() { # description command...
    local description=$1; shift
    if "$@"; then echo "ok: $description"; else echo "FAIL: $description"; failures=$((failures + 1)); fi
}

make_repository() { # name tags...
    local repository="$work/$1"; shift
    git init -q "$repository"
    git -C "$repository" -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m start
    for tag in "$@"; do git -C "$repository" tag "$tag"; done
}
make_repository alpha 1.2.0 1.3.1 v1.10.0 1.11.0-beta.1 2.0.0 nightly
make_repository beta 0.4.0 0.4.1
cat >"$work/Package.swift" <<SWIFT
    dependencies: [
        .package(url: "file://$work/alpha", exact: "1.2.0"),
        .package(url: "file://$work/beta", exact: "0.4.1"),
        .package(url: "file://$work/beta", from: "0.4.0"),
    ],
SWIFT
cp "$work/Package.swift" "$work/before.swift"

check "--check exits 1 when a pin is behind" bash -c "! scripts/update-pins.py --check --package '$work/Package.swift' >/dev/null"
check "--check changes nothing" cmp -s "$work/Package.swift" "$work/before.swift"
scripts/update-pins.py --package "$work/Package.swift" >/dev/null
check "a pin moves to the newest release of its major (v1.10.0 read as 1.10.0)" \
    grep -q "alpha\", exact: \"1.10.0\"" "$work/Package.swift"
check "a pin already newest stays" grep -q "beta\", exact: \"0.4.1\"" "$work/Package.swift"
check "from: is left alone" grep -q "from: \"0.4.0\"" "$work/Package.swift"
check "then --check passes" scripts/update-pins.py --check --package "$work/Package.swift"
scripts/update-pins.py --major --package "$work/Package.swift" >/dev/null
check "--major crosses to 2.0.0" grep -q "alpha\", exact: \"2.0.0\"" "$work/Package.swift"
[[ $failures -eq 0 ]]
