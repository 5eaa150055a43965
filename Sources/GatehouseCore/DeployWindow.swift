import Foundation

/// A recurring weekly deploy window in a time zone: the times a gate may pass (`open`), or may not
/// (`closed`). Times are wall-clock times of the zone, so a window keeps its local hours across a
/// daylight-saving change.
public struct DeployWindow: Sendable, Equatable, CustomStringConvertible {
    /// Whether the spans are when gates may pass, or when they may not.
    public enum Kind: String, Sendable, Equatable {
        /// Gates pass only inside a span.
        case open
        /// Gates do not pass inside a span.
        case closed
    }

    /// Open or closed.
    public var kind: Kind
    /// The spans as written.
    public var written: [String]
    /// The spans, as minutes of the week (Monday 00:00 is 0), end excluded; a span over the week's
    /// end runs past the week's last minute.
    public var spans: [Range<Int>]
    /// The zone the times are in.
    public var timeZone: TimeZone
    /// The zone's name as written (Foundation calls UTC "GMT").
    public var zoneName: String

    static let week = 7 * 24 * 60
    private static let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    private static let dayNames = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

    /// Reads spans such as `Fri 16:00 - Mon 08:00` (from one moment of the week to another) or
    /// `Mon-Thu 09:00-16:00` (the same hours on each of those days), in an IANA time zone.
    public init(kind: Kind, spans written: [String], timeZone identifier: String) throws(InvalidInput) {
        guard let zone = TimeZone(identifier: identifier) else {
            throw InvalidInput("'\(identifier)' is not an IANA time zone (for example Europe/Berlin or UTC)")
        }
        guard !written.isEmpty else { throw InvalidInput("a window needs at least one span") }
        var spans: [Range<Int>] = []
        for text in written { spans += try Self.parse(text) }
        self.kind = kind
        self.written = written
        self.spans = spans
        self.timeZone = zone
        self.zoneName = identifier
    }

    /// Whether gates may pass at `date`.
    public func allows(at date: Date) -> Bool {
        let inside = contains(minute: minuteOfWeek(date))
        return kind == .open ? inside : !inside
    }

    /// The next moment after `date` when `allows` changes, within two weeks.
    public func nextChange(after date: Date) -> Date? {
        let now = allows(at: date)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let boundaries = Set(spans.flatMap { [$0.lowerBound, $0.upperBound % Self.week] })
        let candidates = boundaries.compactMap { minute -> Date? in
            var components = DateComponents()
            components.weekday = (minute / (24 * 60) + 1) % 7 + 1  // Calendar: Sunday is 1
            components.hour = minute % (24 * 60) / 60
            components.minute = minute % 60
            return calendar.nextDate(after: date, matching: components, matchingPolicy: .nextTime)
        }
        .sorted()
        return candidates.first { allows(at: $0) != now }
    }

    /// The date as the window's zone reads it, e.g. "Mon 08:00 Europe/Berlin".
    public func localTime(_ date: Date) -> String {
        let minute = minuteOfWeek(date)
        let day = Self.days[minute / (24 * 60)].capitalized
        return String(format: "%@ %02d:%02d %@", day, minute % (24 * 60) / 60, minute % 60, zoneName)
    }

    public var description: String {
        let listed = written.joined(separator: ", ")
        return kind == .open
            ? "passes only during \(listed) (\(zoneName))"
            : "does not pass during \(listed) (\(zoneName))"
    }

    private func contains(minute: Int) -> Bool {
        // A span over the week's end runs past `week`: the minute is also looked for a week later.
        spans.contains { $0.contains(minute) || $0.contains(minute + Self.week) }
    }

    private func minuteOfWeek(_ date: Date) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        let day = ((parts.weekday ?? 2) + 5) % 7  // Monday is 0
        return day * 24 * 60 + (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
    }

    private static func parse(_ text: String) throws(InvalidInput) -> [Range<Int>] {
        let problem = InvalidInput(
            "'\(text)' is not a span: write 'Fri 16:00 - Mon 08:00' or 'Mon-Thu 09:00-16:00' (days Mon…Sun, times 00:00–24:00)"
        )
        let words = text.replacingOccurrences(of: " - ", with: " – ").split(separator: " ").map(String.init)
        // "Fri 16:00 – Mon 08:00": from one moment of the week to another.
        if words.count == 5, words[2] == "–", let from = day(words[0]), let start = time(words[1]),
            let to = day(words[3]), let end = time(words[4])
        {
            let lower = from * 24 * 60 + start
            let upper = to * 24 * 60 + end
            guard lower != upper else { throw problem }
            return [lower..<(upper < lower ? upper + week : upper)]
        }
        // "Mon-Thu 09:00-16:00" or "Sat 10:00-12:00": the same hours on each day.
        guard words.count == 2 else { throw problem }
        let dayParts = words[0].split(separator: "-").map(String.init)
        let timeParts = words[1].replacingOccurrences(of: "–", with: "-").split(separator: "-").map(String.init)
        guard (1...2).contains(dayParts.count), timeParts.count == 2, let first = day(dayParts[0]),
            let last = day(dayParts[dayParts.count - 1]), let start = time(timeParts[0]), let end = time(timeParts[1]),
            start != end
        else { throw problem }
        var spans: [Range<Int>] = []
        var current = first
        while true {
            let lower = current * 24 * 60 + start
            let upper = current * 24 * 60 + end + (end < start ? 24 * 60 : 0)
            spans.append(lower..<upper)
            if current == last { break }
            current = (current + 1) % 7
        }
        return spans
    }

    private static func day(_ word: String) -> Int? {
        let lower = word.lowercased()
        return days.firstIndex { lower == $0 } ?? dayNames.firstIndex { lower == $0.lowercased() }
    }

    private static func time(_ word: String) -> Int? {
        let parts = word.split(separator: ":")
        guard parts.count == 2, parts[0].count <= 2, parts[1].count == 2, let hour = Int(parts[0]),
            let minute = Int(parts[1]), (0...59).contains(minute), (0...24).contains(hour),
            hour < 24 || minute == 0
        else { return nil }
        return hour * 60 + minute
    }
}
