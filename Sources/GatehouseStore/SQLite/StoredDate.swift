import Foundation
import GRDB

extension Date {
    /// The date as GRDB stores it — `yyyy-MM-dd HH:mm:ss.SSS` in UTC — written without the
    /// DateFormatter GRDB uses for that, which loads ICU's locale and calendar data (megabytes of
    /// memory) and is slow. GRDB reads it back as it reads its own. Every date the store binds goes
    /// through this.
    var storedText: String {
        let milliseconds = (timeIntervalSince1970 * 1000).rounded()
        var seconds = time_t((milliseconds / 1000).rounded(.down))
        let fraction = Int(milliseconds - Double(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2)) "
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2))."
            + padded(Int32(fraction), 3)
    }

    /// Reads `storedText` back, likewise without the Calendar GRDB uses (and without copying the
    /// text or asking the C library: start-up reads a dozen dates a canary); nil if the text has another form.
    init?(storedText text: String) {
        var text = text
        guard let date = text.withUTF8({ Date(storedText: $0) }) else { return nil }
        self = date
    }

    /// Reads `storedText` back from its bytes (UTF-8).
    init?(storedText bytes: UnsafeBufferPointer<UInt8>) {
        guard let seconds = Date.secondsSince1970(storedText: bytes) else { return nil }
        self.init(timeIntervalSince1970: seconds)
    }

    private static func secondsSince1970(storedText bytes: UnsafeBufferPointer<UInt8>) -> TimeInterval? {
        guard bytes.count == 23 else { return nil }
        let separators: [(Int, Unicode.Scalar)] = [(4, "-"), (7, "-"), (10, " "), (13, ":"), (16, ":"), (19, ".")]
        for (index, separator) in separators where bytes[index] != UInt8(ascii: separator) {
            return nil
        }
        func number(_ range: Range<Int>, in valid: ClosedRange<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return valid.contains(value) ? value : nil
        }
        guard let year = number(0..<4, in: 1...9999), let month = number(5..<7, in: 1...12),
            let day = number(8..<10, in: 1...31), let hour = number(11..<13, in: 0...23),
            let minute = number(14..<16, in: 0...59), let second = number(17..<19, in: 0...59),
            let milliseconds = number(20..<23, in: 0...999)
        else { return nil }
        let days = daysSince1970(year: year, month: month, day: day)
        return TimeInterval(((days * 24 + hour) * 60 + minute) * 60 + second) + TimeInterval(milliseconds) / 1000
    }

    /// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (as `timegm` counts them;
    /// a day past the month's end runs into the next month, as there). The count of days in whole
    /// 400-year eras, years and months from March, the month after the leap day.
    static func daysSince1970(year: Int, month: Int, day: Int) -> Int {
        let yearFromMarch = month <= 2 ? year - 1 : year
        let era = (yearFromMarch >= 0 ? yearFromMarch : yearFromMarch - 399) / 400
        let yearOfEra = yearFromMarch - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// A stored date: `storedText`, or whatever else GRDB reads as a date.
    init?(stored value: DatabaseValue) {
        if let text = String.fromDatabaseValue(value), let date = Date(storedText: text) {
            self = date
        } else if let date = Date.fromDatabaseValue(value) {
            self = date
        } else {
            return nil
        }
    }
}
