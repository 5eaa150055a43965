import Foundation
import GatehouseCore
import Testing

@Suite("Deploy windows keep their local hours across daylight-saving changes")
struct DeployWindowTests {
    static func date(_ text: String) throws -> Date { try Timestamp.date(from: text, field: "test") }

    @Test("rollouts only Mon-Thu 09:00-16:00 America/New_York, across the March 2026 change to daylight time")
    func newYork() throws {
        let window = try DeployWindow(kind: .open, spans: ["Mon-Thu 09:00-16:00"], timeZone: "America/New_York")
        // Monday 2 March 2026 (EST, UTC-5): 09:30 local is 14:30 UTC.
        #expect(window.allows(at: try Self.date("2026-03-02T14:30:00Z")))
        #expect(!window.allows(at: try Self.date("2026-03-02T13:30:00Z")))
        // Monday 9 March 2026 (EDT, UTC-4, since 8 March): 09:30 local is 13:30 UTC.
        #expect(window.allows(at: try Self.date("2026-03-09T13:30:00Z")))
        #expect(!window.allows(at: try Self.date("2026-03-09T20:30:00Z")), "16:30 local")
        #expect(!window.allows(at: try Self.date("2026-03-06T15:00:00Z")), "a Friday")
        // Closed on Thursday evening: it opens Monday 09:00 local, which is 13:00 UTC after the change.
        let thursday = try Self.date("2026-03-05T22:00:00Z")
        #expect(window.nextChange(after: thursday) == (try Self.date("2026-03-09T13:00:00Z")))
        #expect(window.localTime(try Self.date("2026-03-09T13:00:00Z")) == "Mon 09:00 America/New_York")
    }

    @Test("no promotions Fri 16:00 - Mon 08:00 Europe/Berlin, over the weekend the clocks go forward")
    func berlin() throws {
        let window = try DeployWindow(kind: .closed, spans: ["Fri 16:00 - Mon 08:00"], timeZone: "Europe/Berlin")
        // Friday 27 March 2026, CET (UTC+1): 15:59 local passes, 16:00 does not.
        #expect(window.allows(at: try Self.date("2026-03-27T14:59:00Z")))
        #expect(!window.allows(at: try Self.date("2026-03-27T15:00:00Z")))
        #expect(!window.allows(at: try Self.date("2026-03-29T12:00:00Z")), "Sunday")
        // Monday 30 March 2026, CEST (UTC+2) since the 29th: 08:00 local is 06:00 UTC.
        #expect(!window.allows(at: try Self.date("2026-03-30T05:59:00Z")))
        #expect(window.allows(at: try Self.date("2026-03-30T06:00:00Z")))
        #expect(
            window.nextChange(after: try Self.date("2026-03-28T10:00:00Z")) == (try Self.date("2026-03-30T06:00:00Z")))
    }

    @Test(
        "spans over midnight and over the week's end",
        arguments: [
            ("Sun 22:00-02:00", "2026-11-23T01:00:00Z", true),  // Monday 01:00 UTC
            ("Sun 22:00-02:00", "2026-11-23T03:00:00Z", false),
            ("Sat-Sun 00:00-24:00", "2026-11-22T23:59:00Z", true),
            ("Sat-Sun 00:00-24:00", "2026-11-23T00:00:00Z", false),
        ])
    func wrapping(_ span: String, _ at: String, _ inside: Bool) throws {
        let window = try DeployWindow(kind: .open, spans: [span], timeZone: "UTC")
        #expect(window.allows(at: try Self.date(at)) == inside)
    }
}
