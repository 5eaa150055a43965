import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL schema: the same tables as SQLite's (`Schema`), as migrations that are never
/// edited once shipped. Replicas starting at once migrate one after the other: each takes a
/// session advisory lock first and applies only what the `schemaVersion` table does not list.
enum PostgresSchema {
    static let migrations: [(name: String, statements: [String])] = [
        (
            "v1: canaries, gates, freezes, audit, outbox, used links",
            [
                """
                CREATE TABLE canary (
                    namespace text NOT NULL, name text NOT NULL, lastPhase text, lastChecksum text,
                    lastSeen timestamptz, lastMessage text, lastEventType text,
                    rolloutStage text NOT NULL DEFAULT 'idle'
                        CHECK (rolloutStage IN ('idle', 'waiting', 'admitted', 'progressing', 'promoting', 'ended')),
                    rolloutRevision text, unapprovedRevision text, lastProgressCheckAt timestamptz,
                    usesRolloutGate boolean NOT NULL DEFAULT false, rolloutSince timestamptz,
                    PRIMARY KEY (namespace, name))
                """,
                """
                CREATE TABLE gate (
                    namespace text NOT NULL, name text NOT NULL,
                    kind text NOT NULL CHECK (kind IN ('rollout', 'traffic', 'promotion', 'rollback', 'shared')),
                    isOpen boolean NOT NULL, mode text NOT NULL CHECK (mode IN ('once', 'sticky')),
                    boundChecksum text, expiresAt timestamptz,
                    remainingSteps bigint CHECK (remainingSteps IS NULL OR remainingSteps > 0),
                    actor text, reason text, changedAt timestamptz, openedAt timestamptz,
                    lastVerdict text CHECK (lastVerdict IS NULL OR lastVerdict IN ('approved', 'refused')),
                    lastVerdictChecksum text, lastVerdictAt timestamptz,
                    PRIMARY KEY (namespace, name, kind),
                    FOREIGN KEY (namespace, name) REFERENCES canary ON DELETE CASCADE)
                """,
                """
                CREATE TABLE "freeze" (
                    id bigserial PRIMARY KEY, namespace text, reason text NOT NULL, actor text NOT NULL,
                    createdAt timestamptz NOT NULL, endsAt timestamptz, liftedAt timestamptz, liftedBy text)
                """,
                """
                CREATE TABLE audit (
                    id bigserial PRIMARY KEY, at timestamptz NOT NULL, namespace text, name text, gate text,
                    action text NOT NULL, actor text NOT NULL, reason text, checksum text, phase text)
                """,
                "CREATE INDEX audit_at ON audit (at)",
                "CREATE INDEX audit_by_canary ON audit (namespace, name, id)",
                "CREATE TABLE heartbeat (id integer PRIMARY KEY CHECK (id = 1), at timestamptz NOT NULL)",
                """
                CREATE TABLE outbox (
                    id bigserial PRIMARY KEY, key text UNIQUE, target text NOT NULL, url text NOT NULL,
                    contentType text NOT NULL, body bytea NOT NULL, createdAt timestamptz NOT NULL,
                    nextAttemptAt timestamptz NOT NULL, giveUpAt timestamptz NOT NULL,
                    attempts bigint NOT NULL DEFAULT 0, lastError text, deliveredAt timestamptz, failedAt timestamptz)
                """,
                "CREATE INDEX outbox_due ON outbox (deliveredAt, failedAt, nextAttemptAt)",
                """
                CREATE TABLE usedLink (
                    nonce text PRIMARY KEY, usedAt timestamptz NOT NULL, expiresAt timestamptz NOT NULL)
                """,
            ]
        ),
        (
            "v2: canaries identified by cluster, namespace and name",
            [
                "ALTER TABLE gate DROP CONSTRAINT gate_namespace_name_fkey",
                "ALTER TABLE gate DROP CONSTRAINT gate_pkey",
                "ALTER TABLE canary DROP CONSTRAINT canary_pkey",
                "ALTER TABLE canary ADD COLUMN cluster text NOT NULL DEFAULT ''",
                "ALTER TABLE gate ADD COLUMN cluster text NOT NULL DEFAULT ''",
                "ALTER TABLE canary ADD PRIMARY KEY (cluster, namespace, name)",
                "ALTER TABLE gate ADD PRIMARY KEY (cluster, namespace, name, kind)",
                """
                ALTER TABLE gate ADD FOREIGN KEY (cluster, namespace, name) REFERENCES canary ON DELETE CASCADE
                """,
                #"ALTER TABLE "freeze" ADD COLUMN cluster text"#,
                "ALTER TABLE audit ADD COLUMN cluster text",
                "DROP INDEX audit_by_canary",
                "CREATE INDEX audit_by_canary ON audit (namespace, name, cluster, id)",
            ]
        ),
        (
            "v3: the checksum of Flagger's last event",
            ["ALTER TABLE canary ADD COLUMN lastMessageChecksum text"]
        ),
        (
            "v4: guardrails: labels, approvals, requests, queue places, overrides",
            Schema.guardrailColumns.postgres
        ),
        (
            "v5: rollout boundaries: promotion passed, gates asked, the admitting call, approvals seen",
            Schema.rolloutBoundaryColumns.postgres
        ),
        ("v6: change versions, for replicas' copies in memory to catch up with", Schema.changeVersions.map(\.postgres)),
        ("v7: audit searches by actor, action or both use indexes", Schema.auditSearchIndexes),
        (
            "v8: guardrail adoption: traffic weight, last success, dry runs",
            Schema.adoptionColumns.postgres + [Schema.lastSuccessFromOutcome]
        ),
        ("v9: a gate as if never touched has no row", [Schema.untouchedGates]),
    ]

    /// An arbitrary constant naming the lock replicas take to migrate one at a time.
    static let migrationLock: Int64 = 0x6761_7465_686f_7573

    /// Applies the migrations the database lacks; returns their names.
    @discardableResult
    static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [String] {
        try await client.withConnection { connection in
            _ = try await connection.query("SELECT pg_advisory_lock(\(migrationLock))", logger: logger).collect()
            do {
                let applied = try await apply(on: connection, logger: logger)
                _ = try await connection.query("SELECT pg_advisory_unlock(\(migrationLock))", logger: logger).collect()
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(migrationLock))", logger: logger).collect()
                throw error
            }
        }
    }

    private static func apply(on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schemaVersion (
                version integer PRIMARY KEY, name text NOT NULL, appliedAt timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        var done = 0
        for try await version in try await connection.query("SELECT max(version) FROM schemaVersion", logger: logger)
            .decode(Int?.self)
        {
            done = version ?? 0
        }
        var applied: [String] = []
        for (index, migration) in migrations.enumerated() where index + 1 > done {
            try await connection.query("BEGIN", logger: logger)
            do {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schemaVersion (version, name) VALUES (\(index + 1), \(migration.name))", logger: logger
                )
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            applied.append(migration.name)
        }
        return applied
    }
}
