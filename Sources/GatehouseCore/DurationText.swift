import Foundation

/// Durations as Kubernetes users write them (`90s`, `15m`, `2h`, `1h30m`, `7d`).
public enum DurationText {
    private static let units: [(suffix: String, seconds: Double)] = [
        ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400),
    ]

    /// Parses a positive duration into seconds, or explains in one sentence what is wrong.
    public static func seconds(from text: String, field: String = "ttl") throws(InvalidInput) -> TimeInterval {
        let invalid = InvalidInput(
            "\(field) '\(text.prefix(40))' is not a duration; write it like 90s, 15m, 2h or 1h30m")
        var rest = Substring(text)
        guard !rest.isEmpty else { throw invalid }
        var total: TimeInterval = 0
        func digits(_ text: Substring) -> Substring { text.prefix { $0.isASCII && $0.isNumber } }
        while !rest.isEmpty {
            // Digits, then optionally '.' and more digits: `1.5h`, not `.5h` or `1.h`.
            var number = digits(rest)
            if !number.isEmpty, rest.dropFirst(number.count).first == "." {
                let fraction = digits(rest.dropFirst(number.count + 1))
                guard !fraction.isEmpty else { throw invalid }
                number = rest.prefix(number.count + 1 + fraction.count)
            }
            guard !number.isEmpty, let value = Double(number) else { throw invalid }
            rest = rest.dropFirst(number.count)
            guard
                let unit = units.first(where: {
                    rest.hasPrefix($0.suffix) && !rest.dropFirst($0.suffix.count).hasPrefix("s")
                })
            else { throw invalid }
            rest = rest.dropFirst(unit.suffix.count)
            total += value * unit.seconds
        }
        guard total > 0 else { throw InvalidInput("\(field) must be longer than zero") }
        guard total <= 366 * 86400 else { throw InvalidInput("\(field) must be at most a year") }
        return total
    }

    /// Formats seconds the way they are parsed, for messages (`1h30m`, `45s`).
    public static func format(_ seconds: TimeInterval) -> String {
        var remaining = Int(seconds.rounded())
        guard remaining > 0 else { return "0s" }
        var parts = ""
        for (suffix, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] where remaining >= size {
            parts += "\(remaining / size)\(suffix)"
            remaining %= size
        }
        return parts
    }
}

/// RFC 3339 timestamps as the API reads and writes them.
public enum Timestamp {
    /// Parses an RFC 3339 time, with or without fractional seconds, or explains what is wrong.
    public static func date(from given: String, field: String) throws(InvalidInput) -> Date {
        // RFC 3339's T and Z may be written in lower case.
        let text = given.uppercased()
        let refusal = InvalidInput(
            "\(field) '\(given.prefix(40))' is not an RFC 3339 time such as 2026-11-21T18:00:00Z")
        let shape = /[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})/
        guard text.wholeMatch(of: shape) != nil else { throw refusal }
        if let date = parse(text) { return date }
        // Foundation reads offsets up to ±18:00; RFC 3339 allows up to ±23:59 (the shape is checked
        // above): read the time as UTC and apply the offset.
        let offset = text.suffix(6)
        if let sign = offset.first, sign == "+" || sign == "-", let hours = Int(offset.dropFirst().prefix(2)),
            let minutes = Int(offset.suffix(2)),
            (0..<24).contains(hours), (0..<60).contains(minutes),
            let local = parse(String(text.dropLast(6)) + "Z")
        {
            let seconds = TimeInterval(hours * 3600 + minutes * 60)
            return local.addingTimeInterval(sign == "+" ? -seconds : seconds)
        }
        throw refusal
    }

    private static func parse(_ text: String) -> Date? {
        (try? Date(text, strategy: Date.ISO8601FormatStyle()))
            ?? (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
    }

    /// Formats a time as RFC 3339 in UTC.
    public static func string(from date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }
}
