import GRDB

/// The database schema, as a list of migrations that are never edited once shipped.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: canaries, gates, freezes, audit") { db in
            try db.create(table: "canary") { table in
                table.column("namespace", .text).notNull()
                table.column("name", .text).notNull()
                table.column("lastPhase", .text)
                table.column("lastChecksum", .text)
                table.column("lastSeen", .datetime)
                table.column("lastMessage", .text)
                table.column("lastEventType", .text)
                table.primaryKey(["namespace", "name"])
            }
            try db.create(table: "gate") { table in
                table.column("namespace", .text).notNull()
                table.column("name", .text).notNull()
                table.column("kind", .text).notNull()
                    .check(sql: "kind IN ('rollout', 'traffic', 'promotion', 'rollback', 'shared')")
                table.column("isOpen", .boolean).notNull()
                table.column("mode", .text).notNull().check(sql: "mode IN ('once', 'sticky')")
                table.column("boundChecksum", .text)
                table.column("expiresAt", .datetime)
                table.column("remainingSteps", .integer).check(sql: "remainingSteps IS NULL OR remainingSteps > 0")
                table.column("actor", .text)
                table.column("reason", .text)
                table.column("changedAt", .datetime)
                table.column("lastVerdict", .text).check(
                    sql: "lastVerdict IS NULL OR lastVerdict IN ('approved', 'refused')")
                table.column("lastVerdictChecksum", .text)
                table.column("lastVerdictAt", .datetime)
                table.primaryKey(["namespace", "name", "kind"])
                table.foreignKey(["namespace", "name"], references: "canary", onDelete: .cascade)
            }
            try db.create(table: "freeze") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("namespace", .text)
                table.column("reason", .text).notNull()
                table.column("actor", .text).notNull()
                table.column("createdAt", .datetime).notNull()
                table.column("endsAt", .datetime)
                table.column("liftedAt", .datetime)
                table.column("liftedBy", .text)
            }
            try db.create(table: "audit") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("at", .datetime).notNull().indexed()
                table.column("namespace", .text)
                table.column("name", .text)
                table.column("gate", .text)
                table.column("action", .text).notNull()
                table.column("actor", .text).notNull()
                table.column("reason", .text)
                table.column("checksum", .text)
                table.column("phase", .text)
            }
            try db.create(index: "audit_by_canary", on: "audit", columns: ["namespace", "name", "id"])
            try db.create(table: "heartbeat") { table in
                table.primaryKey("id", .integer).check(sql: "id = 1")
                table.column("at", .datetime).notNull()
            }
        }
        migrator.registerMigration("v2: notification outbox, used approval links") { db in
            try db.create(table: "outbox") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("key", .text).unique()
                table.column("target", .text).notNull()
                table.column("url", .text).notNull()
                table.column("contentType", .text).notNull()
                table.column("body", .blob).notNull()
                table.column("createdAt", .datetime).notNull()
                table.column("nextAttemptAt", .datetime).notNull()
                table.column("giveUpAt", .datetime).notNull()
                table.column("attempts", .integer).notNull().defaults(to: 0)
                table.column("lastError", .text)
                table.column("deliveredAt", .datetime)
                table.column("failedAt", .datetime)
            }
            try db.create(index: "outbox_due", on: "outbox", columns: ["deliveredAt", "failedAt", "nextAttemptAt"])
            try db.create(table: "usedLink") { table in
                table.primaryKey("nonce", .text)
                table.column("usedAt", .datetime).notNull()
                table.column("expiresAt", .datetime).notNull()
            }
        }
        migrator.registerMigration("v3: rollouts tracked from Flagger's reliable signals") { db in
            try db.alter(table: "canary") { table in
                table.add(column: "rolloutStage", .text).notNull().defaults(to: "idle")
                    .check(
                        sql:
                            "rolloutStage IN ('idle', 'waiting', 'admitted', 'progressing', 'promoting', 'ended')")
                table.add(column: "rolloutRevision", .text)
                table.add(column: "unapprovedRevision", .text)
                table.add(column: "lastProgressCheckAt", .datetime)
                table.add(column: "usesRolloutGate", .boolean).notNull().defaults(to: false)
                table.add(column: "rolloutSince", .datetime)
            }
            try db.alter(table: "gate") { table in
                table.add(column: "openedAt", .datetime)
            }
            // Gates open before this version were opened no later than their last change.
            try db.execute(sql: "UPDATE gate SET openedAt = changedAt WHERE isOpen")
        }
        migrator.registerMigration("v4: canaries identified by cluster, namespace and name") { db in
            // SQLite cannot change a primary key in place: the two keyed tables are made anew and
            // copied; canaries stored so far belong to the unnamed cluster ('').
            try db.execute(
                sql: """
                    CREATE TABLE newCanary (
                        cluster TEXT NOT NULL DEFAULT '', namespace TEXT NOT NULL, name TEXT NOT NULL, lastPhase TEXT,
                        lastChecksum TEXT, lastSeen DATETIME, lastMessage TEXT, lastEventType TEXT,
                        rolloutStage TEXT NOT NULL DEFAULT 'idle' CHECK (rolloutStage IN
                            ('idle', 'waiting', 'admitted', 'progressing', 'promoting', 'ended')),
                        rolloutRevision TEXT, unapprovedRevision TEXT, lastProgressCheckAt DATETIME,
                        usesRolloutGate BOOLEAN NOT NULL DEFAULT 0, rolloutSince DATETIME,
                        PRIMARY KEY (cluster, namespace, name));
                    INSERT INTO newCanary (namespace, name, lastPhase, lastChecksum, lastSeen, lastMessage,
                        lastEventType, rolloutStage, rolloutRevision, unapprovedRevision, lastProgressCheckAt,
                        usesRolloutGate, rolloutSince)
                    SELECT namespace, name, lastPhase, lastChecksum, lastSeen, lastMessage, lastEventType,
                        rolloutStage, rolloutRevision, unapprovedRevision, lastProgressCheckAt, usesRolloutGate,
                        rolloutSince FROM canary;
                    CREATE TABLE newGate (
                        cluster TEXT NOT NULL DEFAULT '', namespace TEXT NOT NULL, name TEXT NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('rollout', 'traffic', 'promotion', 'rollback', 'shared')),
                        isOpen BOOLEAN NOT NULL, mode TEXT NOT NULL CHECK (mode IN ('once', 'sticky')),
                        boundChecksum TEXT, expiresAt DATETIME,
                        remainingSteps INTEGER CHECK (remainingSteps IS NULL OR remainingSteps > 0),
                        actor TEXT, reason TEXT, changedAt DATETIME,
                        lastVerdict TEXT CHECK (lastVerdict IS NULL OR lastVerdict IN ('approved', 'refused')),
                        lastVerdictChecksum TEXT, lastVerdictAt DATETIME, openedAt DATETIME,
                        PRIMARY KEY (cluster, namespace, name, kind),
                        FOREIGN KEY (cluster, namespace, name) REFERENCES canary ON DELETE CASCADE);
                    INSERT INTO newGate (namespace, name, kind, isOpen, mode, boundChecksum, expiresAt,
                        remainingSteps, actor, reason, changedAt, lastVerdict, lastVerdictChecksum, lastVerdictAt,
                        openedAt)
                    SELECT namespace, name, kind, isOpen, mode, boundChecksum, expiresAt, remainingSteps, actor,
                        reason, changedAt, lastVerdict, lastVerdictChecksum, lastVerdictAt, openedAt FROM gate;
                    DROP TABLE gate;
                    DROP TABLE canary;
                    ALTER TABLE newCanary RENAME TO canary;
                    ALTER TABLE newGate RENAME TO gate;
                    ALTER TABLE "freeze" ADD COLUMN cluster TEXT;
                    ALTER TABLE audit ADD COLUMN cluster TEXT;
                    DROP INDEX audit_by_canary;
                    CREATE INDEX audit_by_canary ON audit (namespace, name, cluster, id);
                    """)
        }
        migrator.registerMigration("v5: the checksum of Flagger's last event") { db in
            try db.execute(sql: "ALTER TABLE canary ADD COLUMN lastMessageChecksum TEXT")
        }
        migrator.registerMigration("v6: guardrails: labels, approvals, requests, queue places, overrides") { db in
            try db.execute(sql: Schema.guardrailColumns.sqlite)
        }
        migrator.registerMigration(
            "v7: rollout boundaries: promotion passed, gates asked, the admitting call, approvals seen"
        ) { db in
            try db.execute(sql: Schema.rolloutBoundaryColumns.sqlite)
        }
        migrator.registerMigration("v8: change versions, for copies in memory to catch up with") { db in
            try db.execute(sql: Schema.changeVersions.map(\.sqlite).joined(separator: ";\n"))
        }
        migrator.registerMigration("v9: audit searches by actor, action or both use indexes") { db in
            try db.execute(sql: Schema.auditSearchIndexes.joined(separator: ";\n"))
        }
        migrator.registerMigration("v10: guardrail adoption: traffic weight, last success, dry runs") { db in
            try db.execute(sql: Schema.adoptionColumns.sqlite + ";\n" + Schema.lastSuccessFromOutcome)
        }
        migrator.registerMigration("v11: a gate as if never touched has no row") { db in
            try db.execute(sql: Schema.untouchedGates)
        }
        migrator.registerMigration("v12: canaries and gates stored in key order") { db in
            try Schema.storeInKeyOrder(["canary", "gate"], db)
        }
        return migrator
    }

    /// Makes each table anew as a WITHOUT ROWID table, its columns and indexes as they are: its rows
    /// then lie in the order of their key, as start-up reads them, rather than in the order they
    /// came, found through an index of keys (100,000 canaries: ready 2.25 → 2.1 s). Foreign keys are
    /// checked once the migration ends (GRDB's default), so a table others refer to can be replaced.
    static func storeInKeyOrder(_ tables: [String], _ db: Database) throws {
        for table in tables {
            guard
                let created = try String.fetchOne(
                    db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", arguments: [table]),
                let columns = created.firstIndex(of: "(")
            else { throw DatabaseError(message: "no table \(table) to store in key order") }
            let indexes = try String.fetchAll(
                db, sql: "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                arguments: [table])
            try db.execute(
                sql: """
                    CREATE TABLE keyOrdered \(created[columns...]) WITHOUT ROWID;
                    INSERT INTO keyOrdered SELECT * FROM \(table);
                    DROP TABLE \(table);
                    ALTER TABLE keyOrdered RENAME TO \(table);
                    """)
            for index in indexes { try db.execute(sql: index) }
        }
    }

    /// What v11 deletes, the same in both databases: the rows of gates that are just closed, as if
    /// never touched (a rollout's end leaves a gate it did not open so, such as most canaries'
    /// traffic gate), which no gate has any more (`Records.save`, `GateSet`).
    static let untouchedGates = """
        DELETE FROM gate WHERE NOT isOpen AND mode = 'once' AND boundChecksum IS NULL AND expiresAt IS NULL
        AND remainingSteps IS NULL AND actor IS NULL AND reason IS NULL AND changedAt IS NULL AND openedAt IS NULL
        AND lastVerdict IS NULL AND lastVerdictChecksum IS NULL AND lastVerdictAt IS NULL AND approvals IS NULL
        """

    /// What v9 adds, the same in both databases: an audit search by actor, action or both reads its
    /// newest entries from an index, however many entries the trail holds (one by canary or
    /// namespace uses `audit_by_canary`, one by time the index of times). An index by namespace and
    /// id made pruning ten times slower (each batch of the oldest entries touches every namespace's
    /// first page), so there is none.
    static let auditSearchIndexes = [
        "CREATE INDEX audit_by_actor ON audit (actor, id)",
        "CREATE INDEX audit_by_action ON audit (action, id)",
        "CREATE INDEX audit_by_actor_action ON audit (actor, action, id)",
    ]

    /// What v8 adds, the same in both databases: the version of the latest change and of the latest
    /// save of observations (one row), the versions that last wrote each canary row (and its
    /// observations) and each freeze row, and the canaries forgotten, by version.
    static let changeVersions: [(sqlite: String, postgres: String)] =
        [
            (
                "CREATE TABLE storeVersion (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, forgottenThrough INTEGER NOT NULL, observed INTEGER NOT NULL)",
                "CREATE TABLE storeVersion (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL, forgottenThrough bigint NOT NULL, observed bigint NOT NULL)"
            ),
            (
                "INSERT INTO storeVersion (id, version, forgottenThrough, observed) VALUES (1, 0, 0, 0)",
                "INSERT INTO storeVersion (id, version, forgottenThrough, observed) VALUES (1, 0, 0, 0)"
            ),
            (
                "ALTER TABLE canary ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE canary ADD COLUMN version bigint NOT NULL DEFAULT 0"
            ),
            (
                "CREATE INDEX canary_by_version ON canary (version)",
                "CREATE INDEX canary_by_version ON canary (version)"
            ),
            (
                "ALTER TABLE canary ADD COLUMN observedVersion INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE canary ADD COLUMN observedVersion bigint NOT NULL DEFAULT 0"
            ),
            (
                "CREATE INDEX canary_by_observed ON canary (observedVersion)",
                "CREATE INDEX canary_by_observed ON canary (observedVersion)"
            ),
            (
                #"ALTER TABLE "freeze" ADD COLUMN version INTEGER NOT NULL DEFAULT 0"#,
                #"ALTER TABLE "freeze" ADD COLUMN version bigint NOT NULL DEFAULT 0"#
            ),
            (
                "CREATE TABLE forgotten (version INTEGER NOT NULL, at DATETIME NOT NULL, cluster TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL)",
                "CREATE TABLE forgotten (version bigint NOT NULL, at timestamptz NOT NULL, cluster text NOT NULL, namespace text NOT NULL, name text NOT NULL)"
            ),
            (
                "CREATE INDEX forgotten_by_version ON forgotten (version)",
                "CREATE INDEX forgotten_by_version ON forgotten (version)"
            ),
        ]
        + revisionColumns.map { column in
            // A revision is never empty: none is NULL (only a gate's binding keeps '', for a call that named none).
            let statement = "UPDATE \(column.table) SET \(column.name) = NULL WHERE \(column.name) = ''"
            return (statement, statement)
        }

    /// The columns that hold a `Revision`.
    static let revisionColumns: [(table: String, name: String)] = [
        ("canary", "lastChecksum"),
        ("canary", "lastMessageChecksum"),
        ("canary", "rolloutRevision"),
        ("canary", "unapprovedRevision"),
        ("canary", "admittedChecksum"),
        ("gate", "lastVerdictChecksum"),
        ("audit", "checksum"),
    ]

    /// The columns v10 adds, with their SQLite and PostgreSQL types: the canary weight Flagger's
    /// events last reported, when a rollout last succeeded (a first-rollout rule), and what dry-run
    /// rules would have done differently in the rollout under way.
    static let adoptionColumns: [AddedColumn] = [
        AddedColumn("canary", "trafficWeight", sqlite: "INTEGER", postgres: "bigint"),
        AddedColumn("canary", "succeededAt", sqlite: "DATETIME", postgres: "timestamptz"),
        AddedColumn("canary", "dryRuns", sqlite: "TEXT", postgres: "text"),
    ]

    /// A canary whose last rollout succeeded before v10 has had a successful rollout: it is not new
    /// to a first-rollout rule (one whose last rollout failed is, unless the rule names a day after).
    static let lastSuccessFromOutcome =
        "UPDATE canary SET succeededAt = rolloutSince WHERE rolloutOutcome = 'Succeeded' AND rolloutSince IS NOT NULL"

    /// The columns v7 adds, with their SQLite and PostgreSQL types.
    static let rolloutBoundaryColumns: [AddedColumn] = [
        AddedColumn("canary", "promotionPassedAt", sqlite: "DATETIME", postgres: "timestamptz"),
        AddedColumn("canary", "rolloutAsked", sqlite: "TEXT", postgres: "text"),
        AddedColumn("canary", "admittedPhase", sqlite: "TEXT", postgres: "text"),
        AddedColumn("canary", "admittedChecksum", sqlite: "TEXT", postgres: "text"),
        AddedColumn("canary", "approvalsSeenAt", sqlite: "DATETIME", postgres: "timestamptz"),
    ]

    /// The columns v6 adds, with their SQLite and PostgreSQL types.
    static let guardrailColumns: [AddedColumn] = [
        AddedColumn("canary", "rolloutStartedAt", sqlite: "DATETIME", postgres: "timestamptz"),
        AddedColumn("canary", "rolloutOutcome", sqlite: "TEXT", postgres: "text"),
        AddedColumn("canary", "labels", sqlite: "TEXT", postgres: "text"),
        AddedColumn("canary", "requestedBy", sqlite: "TEXT", postgres: "text"),
        AddedColumn("canary", "requestedAt", sqlite: "DATETIME", postgres: "timestamptz"),
        AddedColumn("canary", "queuedAt", sqlite: "DATETIME", postgres: "timestamptz"),
        AddedColumn("canary", "overrides", sqlite: "TEXT", postgres: "text"),
        AddedColumn("gate", "approvals", sqlite: "TEXT", postgres: "text"),
    ]
}

/// A column a migration adds, with its type in each database.
struct AddedColumn {
    let table: String
    let column: String
    let sqlite: String
    let postgres: String

    init(_ table: String, _ column: String, sqlite: String, postgres: String) {
        self.table = table
        self.column = column
        self.sqlite = sqlite
        self.postgres = postgres
    }
}

extension [AddedColumn] {
    /// SQLite's statements adding these columns, as one script.
    var sqlite: String {
        map { "ALTER TABLE \($0.table) ADD COLUMN \($0.column) \($0.sqlite)" }.joined(separator: ";\n")
    }

    /// PostgreSQL's statements adding these columns.
    var postgres: [String] { map { "ALTER TABLE \($0.table) ADD COLUMN \($0.column) \($0.postgres)" } }
}
