import Foundation
import GatehouseCore
import GatehouseStore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// One-click approval links from notifications. GET shows what the link will do and changes
/// nothing (link unfurlers and prefetchers only GET); the page's button POSTs, which acts once.
struct LinkController {
    /// The actor recorded for changes made through a link.
    static let actor = "link"

    let store: GateStore
    let operations: GateOperations
    let signer: LinkSigner?
    let accessGuard: AccessGuard
    let cluster: String

    var endpoints: RouteCollection<GatehouseRequestContext> {
        let routes = RouteCollection(context: GatehouseRequestContext.self)
        routes.get(":token") { _, context -> HTMLPage in
            let link: ApprovalLink
            switch try verify(context) {
            case .success(let verified): link = verified
            case .failure(let page): return page
            }
            if try await store.isUsed(link.nonce) {
                return HTMLPage(
                    status: .gone, title: "Link already used", text: "This link was already used; it does nothing now.")
            }
            if let page = await signInInstead(link, status: .ok) { return page }
            return HTMLPage(
                status: .ok, title: Self.verb(link),
                text: "\(Self.describe(link, cluster: cluster)) Press the button to do it.",
                button: Self.verb(link))
        }
        routes.post(":token") { _, context -> HTMLPage in
            let link: ApprovalLink
            switch try verify(context) {
            case .success(let verified): link = verified
            case .failure(let page): return page
            }
            let canary = try link.canary()
            if let page = await signInInstead(link, status: .forbidden) { return page }
            do {
                // The signature is the whole authorization: this one canary, this one action.
                let asker = Caller(
                    Principal(.declared, Self.actor),
                    grants: [
                        Grant(
                            scope: Scope(
                                clusters: NameScope([canary.cluster]), namespaces: NameScope([canary.namespace])),
                            actions: [link.action == .rollback ? .rollback : .open])
                    ])
                _ = try await operations.act(on: link, by: asker)
            } catch StoreError.gone {
                return HTMLPage(
                    status: .gone, title: "Link already used", text: "This link was already used; nothing was done.")
            } catch let error as StoreError {
                let failure = GatehouseError.from(error, request: nil)
                return HTMLPage(status: failure.status, title: "Nothing was done", text: failure.message)
            } catch let failure as GatehouseError {
                return HTMLPage(status: failure.status, title: "Nothing was done", text: failure.message)
            }
            return HTMLPage(
                status: .ok, title: "Done", text: "Done: \(Self.describe(link, cluster: cluster, past: true))")
        }
        routes.rejectOtherMethods(than: [.get, .post], at: ":token")
        return routes
    }

    /// Where a rule counts people's approvals of the link's gate, the page that sends the reader to
    /// sign in and approve on the dashboard: a link says which canary, not which person.
    private func signInInstead(_ link: ApprovalLink, status: HTTPResponse.Status) async -> HTMLPage? {
        guard link.action == .approve, let canary = try? link.canary(),
            let rule = await operations.approvalRule(link.gate, of: canary)
        else { return nil }
        let page =
            "/canaries/\(canary.namespace)/\(canary.name)"
            + (canary.cluster.isEmpty ? "" : "?cluster=\(canary.cluster)")
        return HTMLPage(
            status: status, title: "Sign in to approve",
            text:
                "Rule \(rule) counts approvals of the \(link.gate.rawValue) gate of \(canary) from people, and a link cannot say who you are. Sign in and approve on the canary's page; nothing was done.",
            signIn: "/sign-in?next=" + CanaryModel.escape(page))
    }

    /// The link in the path, or the page that explains why it does not work.
    private func verify(_ context: GatehouseRequestContext) throws -> Result<ApprovalLink, HTMLPage> {
        guard let signer else {
            throw GatehouseError.notFound("approval links are not enabled: set GATEHOUSE_LINK_SECRET")
        }
        switch signer.verify(try context.parameters.require("token")) {
        case .success(let link):
            try accessGuard.requireNamespace(link.namespace)
            return .success(link)
        case .failure(.invalid):
            return .failure(
                HTMLPage(
                    status: .forbidden, title: "Link not valid",
                    text: "This link is not valid (altered or not ours); nothing was done."))
        case .failure(.expired(let at)):
            return .failure(
                HTMLPage(
                    status: .gone, title: "Link expired",
                    text: "This link expired at \(Timestamp.string(from: at)); nothing was done."))
        }
    }

    static func verb(_ link: ApprovalLink) -> String {
        switch (link.action, link.gate, link.steps) {
        case (.rollback, _, _): "Roll back"
        case (.approve, .traffic, nil): "Approve the rest of this rollout"
        case (.approve, .traffic, let steps?): "Approve \(steps) more traffic check\(steps == 1 ? "" : "s")"
        case (.approve, _, _): "Approve"
        }
    }

    /// `cluster` names the unnamed cluster of a single-cluster setup; a link to a named one says its own.
    static func describe(_ link: ApprovalLink, cluster: String, past: Bool = false) -> String {
        let rollout = link.checksum.isEmpty ? "" : " for rollout \(link.checksum)"
        let cluster = link.cluster ?? cluster
        switch link.action {
        case .approve:
            let coverage = link.openRequest.coverage(of: link.gate)
            return past
                ? "the \(link.gate.rawValue) gate of \(link.namespace)/\(link.name) is open\(rollout) (cluster \(cluster)): \(coverage)."
                : "This opens the \(link.gate.rawValue) gate of \(link.namespace)/\(link.name)\(rollout) on cluster \(cluster), for that rollout only: \(coverage)."
        case .rollback:
            return past
                ? "Flagger was asked to roll back \(link.namespace)/\(link.name)\(rollout) (cluster \(cluster))."
                : "This asks Flagger to roll back \(link.namespace)/\(link.name)\(rollout) on cluster \(cluster)."
        }
    }
}

/// A small HTML page, escaped.
struct HTMLPage: ResponseGenerator, Error {
    var status: HTTPResponse.Status
    var title: String
    var text: String
    var button: String?
    /// Where to sign in, when the page sends the reader there.
    var signIn: String?

    func response(from request: Request, context: some RequestContext) throws -> Response {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let form =
            (button.map { #"<form method="post"><button type="submit">\#(escape($0))</button></form>"# } ?? "")
            + (signIn.map { #"<p><a href="\#(escape($0))">Sign in</a></p>"# } ?? "")
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <meta name="robots" content="noindex"><title>Gatehouse: \(escape(title))</title>
            <style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}
            button{font-size:1.1rem;padding:.5rem 1.5rem}</style></head>
            <body><h1>\(escape(title))</h1><p>\(escape(text))</p>\(form)</body></html>

            """
        return Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                HTTPField.Name("Referrer-Policy")!: "no-referrer",
            ],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}
