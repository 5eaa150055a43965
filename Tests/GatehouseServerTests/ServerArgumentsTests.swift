import Foundation
import GatehouseCore
import GatehouseServer
import Testing

@Suite("serve's options and their GATEHOUSE_* fallbacks", .timeLimit(.minutes(3)))
struct ServerArgumentsTests {
    @Test("flags win over the environment, which wins over the defaults")
    func precedence() throws {
        let arguments = try ServerArguments(
            flags: ["port": "9000"], environment: ["GATEHOUSE_PORT": "7000", "GATEHOUSE_DATABASE": "/data/g.sqlite"])
        #expect(arguments.port == 9000)
        #expect(arguments.databasePath == "/data/g.sqlite")
        #expect(arguments.host == "0.0.0.0")
        #expect(try ServerArguments(flags: [:], environment: [:]).port == 8080)
    }

    @Test(
        "bad values are refused with a sentence",
        arguments: [
            ["port": "http"], ["port": "70000"], ["log-format": "xml"], ["rollback-ttl": "soon"],
            ["synchronous": "maybe"], ["max-connections": "0"], ["request-timeout": "-1s"], ["prot": "true"],
        ])
    func refused(flags: [String: String]) {
        #expect(throws: InvalidInput.self) { try ServerArguments(flags: flags, environment: [:]) }
    }

    @Test("secrets can be files: read and trimmed, a missing one leaves the feature off, an empty one is refused")
    func secretFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let token = directory.appendingPathComponent("flagger-token").path
        try "s3cret\n".write(toFile: token, atomically: true, encoding: .utf8)
        let missing = directory.appendingPathComponent("slack-signing-secret").path
        let arguments = try ServerArguments(
            flags: [:],
            environment: ["GATEHOUSE_FLAGGER_TOKEN_FILE": token, "GATEHOUSE_SLACK_SIGNING_SECRET_FILE": missing])
        #expect(arguments.flaggerToken == "s3cret")
        #expect(arguments.slackSigningSecret == nil)
        #expect(arguments.missingSecretFiles == [missing])
        try "".write(toFile: token, atomically: true, encoding: .utf8)
        #expect(throws: InvalidInput.self) {
            try ServerArguments(flags: ["flagger-token-file": token], environment: [:])
        }
    }

    @Test("the command line takes --name value and --name=value; a typo or a missing value is refused")
    func commandLine() throws {
        let arguments = try ServerArguments(
            commandLine: ["--port", "9000", "--request-timeout=2s", "--max-connections", "10"], environment: [:])
        #expect(arguments.port == 9000)
        #expect(arguments.requestTimeout == 2)
        #expect(arguments.maximumConnections == 10)
        #expect(throws: InvalidInput("there is no option --prot; `gatehouse serve --help` lists them")) {
            try ServerArguments(commandLine: ["--prot", "1"], environment: [:])
        }
        #expect(throws: InvalidInput("--port needs a value")) {
            try ServerArguments(commandLine: ["--port"], environment: [:])
        }
    }

    @Test("every option is read from its GATEHOUSE_* variable and listed in help with it")
    func everyOption() throws {
        let help = ServeOption.helpText
        for option in ServeOption.all {
            #expect(help.contains("--\(option.name) <\(option.value)>  [\(option.environmentName)]"))
        }
        let environment = Dictionary(
            uniqueKeysWithValues: ServeOption.all.map { option in
                (option.environmentName, option.value == "duration" ? "7s" : "")
            })
        let arguments = try ServerArguments(flags: [:], environment: environment)
        #expect(arguments.idleTimeout == 7)
        #expect(arguments.requestTimeout == 7)
        #expect(arguments.storageTimeout == 7)
        #expect(arguments.notificationRetryBase == 7)
    }

    @Test("the README's configuration table names every option with its variable")
    func readme() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        for option in ServeOption.all {
            #expect(readme.contains("`--\(option.name)`"), "README lacks --\(option.name)")
            #expect(readme.contains("`\(option.environmentName)`"), "README lacks \(option.environmentName)")
        }
    }
}
