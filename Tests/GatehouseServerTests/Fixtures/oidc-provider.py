#!/usr/bin/env python3
"""An OpenID provider for Gatehouse's sign-in and workload-identity tests, on 127.0.0.1.

Built with Authlib (PKCE from authlib.oauth2.rfc7636; keys and signed tokens from joserfc, Authlib's
JOSE library). It serves discovery, a JWKS, the authorization code flow with PKCE (S256), state and
nonce, and a token endpoint with client_secret_basic or a public client; plus a few test controls:

  POST /test/person   {"sub": ..., "email": ..., "groups": [...]}  who the next sign-in is
  POST /test/mint     claims, "expires_in", "sign_with": "unpublished"  a workload's ID token
  POST /test/rotate   a new signing key, published beside the old one
  GET  /test/stats    how often the JWKS was fetched

Prints "PORT <n>" once listening; exits when its standard input closes (the test process is gone).
"""

import base64
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlencode, urlparse

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "gatehouse-dashboard"
CLIENT_SECRET = "dashboard-secret"

lock = threading.Lock()
keys = [RSAKey.generate_key(2048, parameters={"kid": "key-1"})]
unpublished = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
person = {"sub": "user-1", "email": "alice@example.com", "groups": []}
codes = {}
stats = {"jwks": 0, "token": 0}
issuer = ""


def sign(claims, key=None):
    key = key or keys[-1]
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode()

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/.well-known/openid-configuration":
            self.answer(200, {
                "issuer": issuer,
                "authorization_endpoint": issuer + "/authorize",
                "token_endpoint": issuer + "/token",
                "jwks_uri": issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            })
        elif url.path == "/jwks":
            with lock:
                stats["jwks"] += 1
                published = [key.as_dict(private=False) for key in keys]
            self.answer(200, {"keys": published})
        elif url.path == "/authorize":
            self.authorize(query)
        elif url.path == "/test/stats":
            with lock:
                self.answer(200, dict(stats))
        else:
            self.answer(404, {"error": "not_found"})

    def authorize(self, query):
        problems = []
        if query.get("response_type") != "code":
            problems.append("response_type must be code")
        if query.get("client_id") != CLIENT_ID:
            problems.append("unknown client")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            problems.append("PKCE with S256 is required")
        if not query.get("state") or not query.get("nonce"):
            problems.append("state and nonce are required")
        if "openid" not in query.get("scope", "").split():
            problems.append("the openid scope is required")
        redirect = query.get("redirect_uri", "")
        if urlparse(redirect).hostname not in ("127.0.0.1", "localhost") or not redirect.endswith("/sign-in/sso/callback"):
            problems.append("redirect_uri %s is not registered" % redirect)
        if problems:
            self.answer(400, {"error": "invalid_request", "error_description": "; ".join(problems)})
            return
        code = secrets.token_urlsafe(16)
        with lock:
            codes[code] = {
                "challenge": query["code_challenge"],
                "redirect": redirect,
                "nonce": query["nonce"],
                "person": dict(person),
            }
        target = redirect + ("&" if "?" in redirect else "?") + urlencode({"code": code, "state": query["state"]})
        self.answer(302, headers={"Location": target})

    def do_POST(self):
        url = urlparse(self.path)
        if url.path == "/token":
            self.token()
        elif url.path == "/test/person":
            with lock:
                person.clear()
                person.update(json.loads(self.body()))
            self.answer(200, {})
        elif url.path == "/test/mint":
            request = json.loads(self.body())
            now = int(time.time())
            claims = {"iss": issuer, "iat": now, "exp": now + int(request.pop("expires_in", 300))}
            key = unpublished if request.pop("sign_with", "") == "unpublished" else None
            claims.update(request)
            self.answer(200, {"token": sign(claims, key)})
        elif url.path == "/test/rotate":
            with lock:
                keys.append(RSAKey.generate_key(2048, parameters={"kid": "key-%d" % (len(keys) + 1)}))
            self.answer(200, {"kid": keys[-1].kid})
        else:
            self.answer(404, {"error": "not_found"})

    def token(self):
        form = {k: v[0] for k, v in parse_qs(self.body()).items()}
        authorization = self.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            client, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            client, secret = unquote_plus(client), unquote_plus(secret)
            if client != CLIENT_ID or secret != CLIENT_SECRET:
                self.answer(401, {"error": "invalid_client"})
                return
        elif form.get("client_id") != CLIENT_ID:
            self.answer(401, {"error": "invalid_client"})
            return
        with lock:
            stats["token"] += 1
            grant = codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            self.answer(400, {"error": "invalid_grant"})
            return
        if form.get("redirect_uri") != grant["redirect"]:
            self.answer(400, {"error": "invalid_grant", "error_description": "redirect_uri differs"})
            return
        if create_s256_code_challenge(form.get("code_verifier", "")) != grant["challenge"]:
            self.answer(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
            return
        now = int(time.time())
        claims = {"iss": issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant["nonce"]}
        claims.update(grant["person"])
        self.answer(200, {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": sign(claims),
        })


def main():
    global issuer
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer = "http://127.0.0.1:%d" % server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    sys.stdin.read()  # until the test process closes it, or is gone


if __name__ == "__main__":
    main()
