// The benchmark's baseline: Hummingbird's router alone, answering a constant on the routes the
// benchmark drives (`scripts/bench.sh` builds it in the same run and measures it beside Gatehouse).
//
//   bare-router PORT
import Hummingbird

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 8080
let router = Router()
router.get("healthz") { _, _ in "ok\n" }
router.post("v1/flagger/confirm-promotion") { _, _ in "ok\n" }
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
