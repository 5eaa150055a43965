import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// Where a PostgreSQL database is, from a `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` URL
/// with libpq's `sslmode` (`disable`, `prefer` — the default —, `require`, `verify-ca`,
/// `verify-full`) and `sslrootcert` (a CA file) query parameters.
public struct PostgresLocation: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    var password: String?
    var sslMode: String
    var rootCertificate: String?

    /// Whether `text` names PostgreSQL rather than a SQLite file.
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Reads a URL; `password`, when given (a file's or `PGPASSWORD`), is used if the URL has none.
    public init(url text: String, password: String? = nil) throws(DatabaseSetupError) {
        guard Self.isPostgres(text), let url = URLComponents(string: text) else {
            throw DatabaseSetupError("'\(Self.redacted(text))' is not a postgres://USER@HOST:PORT/DATABASE URL")
        }
        guard let host = url.host, !host.isEmpty else {
            throw DatabaseSetupError("the database URL names no host")
        }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw DatabaseSetupError("the database URL names no database (postgres://USER@HOST:PORT/DATABASE)")
        }
        guard let user = url.user, !user.isEmpty else {
            throw DatabaseSetupError("the database URL names no user (postgres://USER@HOST:PORT/DATABASE)")
        }
        var mode = "prefer"
        var rootCertificate: String?
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value,
                    ["disable", "prefer", "require", "verify-ca", "verify-full"].contains(value)
                else {
                    throw DatabaseSetupError(
                        "sslmode must be disable, prefer, require, verify-ca or verify-full, not '\(item.value ?? "")'")
                }
                mode = value
            case "sslrootcert":
                rootCertificate = item.value
            default:
                throw DatabaseSetupError(
                    "the database URL's parameter '\(item.name)' is not known (sslmode, sslrootcert)")
            }
        }
        self.host = host
        self.port = url.port ?? 5432
        self.user = user.removingPercentEncoding ?? user
        self.database = database
        self.password = url.password.map { $0.removingPercentEncoding ?? $0 } ?? password
        self.sslMode = mode
        self.rootCertificate = rootCertificate
    }

    /// The URL without its password, for logs.
    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)?sslmode=\(sslMode)" }

    static func redacted(_ text: String) -> String {
        guard let url = URLComponents(string: text), url.password != nil else { return text }
        var copy = url
        copy.password = "…"
        return copy.string ?? "postgres://…"
    }

    var configuration: PostgresClient.Configuration {
        get throws {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let rootCertificate { tls.trustRoots = .file(rootCertificate) }
            let choice: PostgresClient.Configuration.TLS
            switch sslMode {
            case "disable":
                choice = .disable
            case "prefer":
                tls.certificateVerification = .none
                choice = .prefer(tls)
            case "require":
                tls.certificateVerification = .none
                choice = .require(tls)
            case "verify-ca":
                tls.certificateVerification = .noHostnameVerification
                choice = .require(tls)
            default:
                choice = .require(tls)
            }
            var configuration = PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: choice)
            configuration.options.connectTimeout = .seconds(5)
            configuration.options.maximumConnections = 20
            return configuration
        }
    }
}

/// A database Gatehouse cannot use: a URL it cannot read, a server it cannot reach or prepare.
public struct DatabaseSetupError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
