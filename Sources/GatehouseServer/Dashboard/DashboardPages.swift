import Foundation
import GatehouseCore
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore

/// The dashboard's templates and assets, read from the resource bundle once, and rendering with them.
struct DashboardPages: Sendable {
    /// The templates, or why they could not be read (the bundle is not beside the binary).
    let library: Result<MustacheLibrary, InvalidInput>
    /// The style sheet and script, by file name.
    let assets: [String: ByteBuffer]

    /// Reads the bundle's `dashboard` folder.
    static let bundled = DashboardPages(folder: Bundle.module.url(forResource: "dashboard", withExtension: nil))

    init(folder: URL?) {
        guard let folder else {
            library = .failure(
                InvalidInput(
                    "the dashboard's templates are missing: the gatehouse_GatehouseServer.resources bundle must be beside the binary"
                ))
            assets = [:]
            return
        }
        var library = MustacheLibrary()
        var problem: InvalidInput?
        let templates = folder.appendingPathComponent("templates")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: templates.path)) ?? []
        for file in names.sorted() where file.hasSuffix(".mustache") {
            let name = String(file.dropLast(".mustache".count))
            do {
                let text = try String(contentsOf: templates.appendingPathComponent(file), encoding: .utf8)
                try library.register(text, named: name)
            } catch {
                problem = InvalidInput("the dashboard template \(file) cannot be read: \(error)")
            }
        }
        if problem == nil && library.getTemplate(named: "header") == nil {
            problem = InvalidInput("the dashboard's templates are missing from \(templates.path)")
        }
        self.library = problem.map { .failure($0) } ?? .success(library)
        var assets: [String: ByteBuffer] = [:]
        for file in ["dashboard.css", "dashboard.js"] {
            if let data = FileManager.default.contents(atPath: folder.appendingPathComponent(file).path) {
                assets[file] = ByteBuffer(bytes: data)
            }
        }
        self.assets = assets
    }

    /// `model` rendered with `template`, as an HTML answer.
    func render(_ template: String, _ model: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let library: MustacheLibrary
        switch self.library {
        case .success(let loaded): library = loaded
        case .failure(let problem): throw GatehouseError.unavailable(problem.message)
        }
        guard let html = library.render(model, withTemplate: template) else {
            throw GatehouseError.unavailable("the dashboard template \(template) is missing")
        }
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A refusal or failure as a page with its status and one sentence; a viewer who must sign
    /// in first is sent to the sign-in page.
    func failure(_ error: any Error, request: Request, context: GatehouseRequestContext) throws -> Response {
        if let redirect = error as? SignInRequired {
            return Response(status: .seeOther, headers: [.location: redirect.location])
        }
        let failure = GatehouseError.from(error, request: request)
        if failure.status.code >= 500 && failure.status != .serviceUnavailable {
            context.logger.error(
                "dashboard request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
        }
        let heading = failure.status.code >= 500 ? "Nothing was done" : "Not allowed or not possible"
        // Back to the page the form was on (this site's pages send their address to this site only).
        let back = request.headers[.referer].flatMap(URL.init(string:)).map { url in
            url.path + (url.query.map { "?" + $0 } ?? "")
        }
        let text = failure.message.hasSuffix(".") ? failure.message : failure.message + "."
        let model = MessagePage(
            page: PageFrame(title: heading, context: context), heading: heading, text: text,
            back: back.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/")
        do {
            return try render("message", model, status: failure.status)
        } catch {
            return failure.response(asText: true)
        }
    }
}

/// Thrown by a page whose viewer must sign in first.
struct SignInRequired: Error {
    /// The sign-in page, returning to the page asked for.
    var location: String
}

/// What every page's frame shows: title, navigation, the viewer, the CSRF token of its forms.
struct PageFrame {
    struct NavItem {
        var label: String
        var href: String
        var current: Bool
    }

    var title: String
    var version = gatehouseVersion
    var nav: [NavItem]
    var viewer: String?
    var method: String?
    var canSignOut: Bool
    var openWarning: Bool
    var csrf: String
    var notice: String?

    init(title: String, context: GatehouseRequestContext, section: String? = nil, notice: String? = nil) {
        self.title = title
        let visit = context.visit
        nav = [("Canaries", "/"), ("Freezes", "/freezes"), ("Audit", "/audit")].map {
            NavItem(label: $0.0, href: $0.1, current: $0.0 == section)
        }
        switch visit?.method {
        case .token?:
            viewer = context.caller?.principal.name
            method =
                context.caller?.principal.kind == .person
                ? "signed in with a personal access token"
                : "signed in with the shared access token \(context.caller?.principal.name ?? "")"
        case .singleSignOn?:
            viewer = context.caller?.actor
            method = "signed in through single sign-on"
        case .proxy?:
            viewer = context.caller?.actor
            method = "signed in through the authenticating proxy"
        case .open?:
            method = "open: no access control"
        case .none?, nil:
            method = nil
        }
        canSignOut = visit?.method == .token || visit?.method == .singleSignOn
        openWarning = visit?.method == .open
        csrf = visit?.csrfToken ?? ""
        self.notice = notice
    }
}

/// A page of one sentence.
struct MessagePage {
    var page: PageFrame
    var heading: String
    var text: String
    var back: String?
}
