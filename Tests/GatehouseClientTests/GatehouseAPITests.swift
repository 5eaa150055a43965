import Foundation
import GatehouseClient
import GatehouseCore
import Testing

@Suite("The client library against a live service", .timeLimit(.minutes(3)))
struct GatehouseAPITests {
    let podinfo = try! CanaryID(namespace: "test", name: "podinfo")

    @Test("open, close, roll back, status, events and freezes round-trip through the API")
    func operations() async throws {
        try await withLiveServer { server in
            let api = GatehouseAPI(server: server, actor: "alice")
            let opened = try await api.open(
                .traffic, of: podinfo, OpenOptions(reason: "go", ttl: "1h", steps: .count(2))
            ).value
            let traffic = try #require(opened.gate(.traffic))
            #expect(traffic.isOpen && traffic.remainingSteps == 2 && traffic.actor == "alice")
            #expect(try await api.close(.traffic, of: podinfo, reason: "stop").value.gate(.traffic)?.isOpen == false)

            let sticky = try await api.open(.promotion, of: podinfo, OpenOptions(sticky: true)).value
            #expect(sticky.gate(.promotion)?.mode == .sticky)

            await #expect(throws: ClientError.self) { try await api.rollback(podinfo, OpenOptions()) }
            #expect(
                try await api.rollback(podinfo, OpenOptions(reason: "bad", force: true)).value.gate(.rollback)?.isOpen
                    == true)

            let all = try await api.canaries().value
            #expect(all.map(\.name) == ["podinfo"])
            #expect(try await api.canaries(namespace: "other").value.isEmpty)
            let events = try await api.events(of: podinfo, limit: 3).value
            #expect(events.events.count == 3 && events.next != nil)

            let freeze = try await api.freeze(
                Area(cluster: nil, namespace: "test"), reason: "quarter end", until: nil, duration: "1h"
            )
            .value
            #expect(try await api.freezes().value.map(\.id) == [freeze.id])
            #expect(try await api.unfreeze(id: freeze.id).value.liftedBy == "alice")
            #expect(try await api.freezes().value.isEmpty)
            #expect(try await api.freezes(includingEnded: true).value.count == 1)
        }
    }

    @Test("the raw JSON is the API's own, for --output json")
    func rawJSON() async throws {
        try await withLiveServer { server in
            let reply = try await GatehouseAPI(server: server).open(.rollout, of: podinfo, OpenOptions())
            let object = try #require(try JSONSerialization.jsonObject(with: reply.json) as? [String: Any])
            #expect(object["namespace"] as? String == "test")
            #expect((object["gates"] as? [String: Any])?["rollout"] != nil)
        }
    }

    @Test("refused, unreachable and timed out are told apart, each with its exit code")
    func failures() async throws {
        try await withLiveServer { server in
            let refused = try #require(
                await clientError { _ = try await GatehouseAPI(server: server).rollback(podinfo, OpenOptions()) })
            guard case .refused(409, let message) = refused else { throw refused }
            #expect(message.contains("is not known to be in a rollout"))
            #expect(refused.exitCode == 2)
        }
        let unreachable = try #require(
            await clientError { _ = try await GatehouseAPI(server: URL(string: "http://127.0.0.1:1")!).canaries() })
        guard case .unreachable = unreachable else { throw unreachable }
        #expect(unreachable.exitCode == 3)
        let silent = try SilentListener()
        let timedOut = try #require(
            await clientError {
                _ = try await GatehouseAPI(server: URL(string: "http://127.0.0.1:\(silent.port)")!, timeout: 0.5)
                    .canaries()
            })
        guard case .timedOut = timedOut else { throw timedOut }
        #expect(timedOut.exitCode == 4)
    }
}

/// The client error a call ends with, or nil when it succeeds.
func clientError(_ body: () async throws -> Void) async -> ClientError? {
    do {
        try await body()
        return nil
    } catch {
        return error as? ClientError
    }
}

@Suite("Lists of canaries, page by page", .timeLimit(.minutes(3)))
struct CanaryPagingTests {
    @Test("the client pages through more canaries than one page holds, in order, each once")
    func pagesThrough() async throws {
        try await withLiveServer { server in
            let names = (0..<520).map { String(format: "app-%03d", $0) }
            for name in names {
                #expect(
                    try await flagger(server, "confirm-promotion", name: name, phase: "Progressing", checksum: "c1")
                        == 403)
            }
            let listed = try await GatehouseAPI(server: server).canaries().value
            #expect(listed.map(\.name) == names)
        }
    }
}

@Suite("Waiting for a rollout's outcome", .timeLimit(.minutes(3)))
struct WaitTests {
    let podinfo = try! CanaryID(namespace: "test", name: "podinfo")

    func status(_ phase: CanaryPhase, _ checksum: String) -> CanaryStatus {
        CanaryStatus(
            namespace: "test", name: "podinfo", phase: phase, checksum: checksum, lastSeen: nil, message: nil,
            inRollout: phase.isRollingOut, waitingOn: nil, gates: [:])
    }

    @Test("the previous rollout's Succeeded does not count")
    func previousOutcome() {
        var watch = RolloutWatch(target: .succeeded, initial: status(.succeeded, "c1"))
        #expect(watch.observe(status(.succeeded, "c1")) == .waiting)
        #expect(watch.observe(status(.progressing, "c2")) == .waiting)
        #expect(watch.observe(status(.succeeded, "c2")) == .reached)
    }

    @Test("a new checksum counts as a new rollout even if its progress was missed")
    func missedProgress() {
        var watch = RolloutWatch(target: .succeeded, initial: status(.failed, "c1"))
        #expect(watch.observe(status(.failed, "c2")) == .ended(.failed))
    }

    func tracked(_ phase: CanaryPhase, _ checksum: String, _ stage: Rollout.Stage, revision: String) -> CanaryStatus {
        var status = status(phase, checksum)
        status.rollout = RolloutStatus(stage: stage, revision: revision)
        return status
    }

    @Test("the next rollout's first events, which still carry the last outcome, do not end the wait")
    func laggingPhase() {
        var watch = RolloutWatch(target: .succeeded, initial: tracked(.failed, "rev3", .ended, revision: "rev3"))
        // "Halt … waiting for approval" carries Failed with the new checksum.
        #expect(watch.observe(tracked(.failed, "rev4", .waiting, revision: "rev3")) == .waiting)
        #expect(watch.observe(tracked(.progressing, "rev4", .progressing, revision: "rev4")) == .waiting)
        #expect(watch.observe(tracked(.succeeded, "rev4", .ended, revision: "rev4")) == .reached)
    }

    @Test("a rollout that started and ended between two looks counts")
    func wholeRolloutMissed() {
        var watch = RolloutWatch(target: .succeeded, initial: tracked(.succeeded, "rev1", .ended, revision: "rev1"))
        #expect(watch.observe(tracked(.succeeded, "rev1", .ended, revision: "rev1")) == .waiting)
        #expect(watch.observe(tracked(.failed, "rev2", .ended, revision: "rev2")) == .ended(.failed))
    }

    @Test("a rollout under way at the start counts")
    func underWay() {
        var watch = RolloutWatch(target: .succeeded, initial: status(.progressing, "c2"))
        #expect(watch.observe(status(.succeeded, "c2")) == .reached)
    }

    @Test("waiting ends when Flagger reports Succeeded for the new rollout")
    func liveSuccess() async throws {
        try await withLiveServer { server in
            let api = GatehouseAPI(server: server)
            #expect(try await flagger(server, "post-rollout", phase: "Succeeded", checksum: "c1") == 202)
            let (seen, next) = phasesSeen()
            let waiting = Task {
                try await api.wait(for: .succeeded, of: podinfo, timeout: 20, interval: 0.05, progress: next)
            }
            #expect(await seen.first { $0.hasSuffix("Succeeded") } != nil)
            #expect(
                try await flagger(
                    server, "events", phase: "Progressing", checksum: "c2", message: "Starting canary analysis") == 202)
            #expect(await seen.first { $0.hasSuffix("Progressing") } != nil)
            #expect(try await flagger(server, "post-rollout", phase: "Succeeded", checksum: "c2") == 202)
            let final = try await waiting.value
            #expect(final.value.checksum == "c2")
        }
    }

    @Test("waiting for Succeeded fails when the rollout fails")
    func liveFailure() async throws {
        try await withLiveServer { server in
            let api = GatehouseAPI(server: server)
            #expect(
                try await flagger(server, "events", phase: "Progressing", checksum: "c2", message: "Advance weight 10")
                    == 202)
            let (seen, next) = phasesSeen()
            let waiting = Task {
                try await api.wait(for: .succeeded, of: podinfo, timeout: 20, interval: 0.05, progress: next)
            }
            #expect(await seen.first { $0.hasSuffix("Progressing") } != nil)
            #expect(try await flagger(server, "post-rollout", phase: "Failed", checksum: "c2") == 202)
            let error = try #require(await clientError { _ = try await waiting.value })
            guard case .oppositeOutcome = error else { throw error }
            #expect(error.exitCode == 6)
        }
    }

    @Test("waiting times out when nothing happens")
    func liveTimeout() async throws {
        try await withLiveServer { server in
            let error = try #require(
                await clientError {
                    _ = try await GatehouseAPI(server: server).wait(
                        for: .succeeded, of: podinfo, timeout: 0.5, interval: 0.1)
                })
            guard case .timedOut = error else { throw error }
            #expect(error.exitCode == 4)
        }
    }
}

/// What `wait` reports as it watches, so a test acts only once the watch has seen the present.
func phasesSeen() -> (AsyncStream<String>, @Sendable (String) -> Void) {
    let (stream, continuation) = AsyncStream.makeStream(of: String.self)
    return (stream, { continuation.yield($0) })
}
