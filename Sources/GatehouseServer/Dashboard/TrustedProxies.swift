import Foundation
import GatehouseCore
import NIOCore

/// An IPv4 or IPv6 address block (`10.0.0.0/8`, `fd00::/8`, or one address).
struct AddressBlock: Sendable, Equatable {
    let bytes: [UInt8]
    let prefix: Int

    /// Parses `ADDRESS[/PREFIX]`, or explains what is wrong naming `option`.
    init(_ text: String, option: String) throws(InvalidInput) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.bytes(of: String(parts[0])) else {
            throw InvalidInput("\(option): '\(text.prefix(60))' is not an IP address or CIDR block")
        }
        let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
        guard let prefix, (0...bytes.count * 8).contains(prefix) else {
            throw InvalidInput("\(option): '\(text.prefix(60))' has a prefix length out of range")
        }
        self.bytes = bytes
        self.prefix = prefix
    }

    /// Whether the block holds `address` (an IPv4 address mapped into IPv6 counts as IPv4).
    func contains(_ address: [UInt8]) -> Bool {
        guard address.count == bytes.count else { return false }
        var left = prefix
        for index in bytes.indices where left > 0 {
            let bits = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if bytes[index] & mask != address[index] & mask { return false }
            left -= bits
        }
        return true
    }

    /// The 4 or 16 bytes of an address; an IPv4-mapped IPv6 address gives its 4.
    static func bytes(of text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return Array(bytes[12...])
        }
        return bytes
    }
}

/// The authenticating proxies whose user header names the dashboard's viewer, and those headers.
struct TrustedProxies: Sendable {
    let blocks: [AddressBlock]
    let userHeader: String
    let groupsHeader: String

    /// Whether a request from `address` comes from a trusted proxy.
    func trusts(_ address: SocketAddress?) -> Bool {
        guard let text = address?.ipAddress, let bytes = AddressBlock.bytes(of: text) else { return false }
        return blocks.contains { $0.contains(bytes) }
    }
}
