#!/usr/bin/env bash
# Measures the resident memory the stack costs before any Gatehouse code runs: tiny Swift programs
# that link what the service must link (Foundation; FoundationNetworking for URLSession) and do what
# Hummingbird does at start (a Gregorian calendar in GMT for the Date header). Compare with the peak
# RSS scripts/bench.sh reports.
#
#   scripts/rss-floor.sh
set -euo pipefail
export PATH="/opt/swift/usr/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

program() { # name imports body
    cat >"$work/$1.swift" <<SWIFT
$2
$3
let status = try! String(contentsOfFile: "/proc/self/status", encoding: .utf8)
let rss = status.split(separator: "\n").first { \$0.hasPrefix("VmRSS") }!
print("$1", rss.split(separator: " ", omittingEmptySubsequences: true).dropFirst().joined(separator: " "))
SWIFT
    swiftc -O "$work/$1.swift" -o "$work/$1" 2>/dev/null
    "$work/$1"
}

echo "resident memory of programs that only load the stack (VmRSS):"
program foundation "import Foundation" 'print(Date().timeIntervalSince1970 > 0)' | tail -1
program foundation-networking "import Foundation
import FoundationNetworking" 'if CommandLine.arguments.count > 9 { print(URLSession.shared) }' | tail -1
program with-hummingbird-date-calendar "import Foundation
import FoundationNetworking" 'if CommandLine.arguments.count > 9 { print(URLSession.shared) }
var calendar = Calendar(identifier: .gregorian)
calendar.timeZone = .gmt
print(calendar.component(.year, from: Date()) > 2000)' | tail -1
