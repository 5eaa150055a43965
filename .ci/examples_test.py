#!/usr/bin/env python3
"""Examples that cannot rot: every YAML in examples/ parses; every Canary there uses Flagger's
Canary fields correctly and points its webhooks at endpoints Gatehouse serves for that hook; the
README's curl block and the scripts in examples/curl run against the built binary with the
results they promise.

    .ci/examples_test.py PATH_TO_GATEHOUSE_BINARY
"""

import glob
import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from checks import check, finish  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


# The parts of Flagger's Canary CRD (flagger.app/v1beta1) that the examples use, with the same
# types and enums; webhook entries refuse unknown keys so a typo ("typ", "urls") is caught.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
WEBHOOK_TYPES = [
    "pre-rollout", "rollout", "confirm-rollout", "post-rollout", "confirm-traffic-increase",
    "confirm-promotion", "rollback", "event",
]
CANARY_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "flagger.app/v1beta1"},
        "kind": {"const": "Canary"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": DNS_SUBDOMAIN, "maxLength": 253},
                "namespace": {"type": "string", "pattern": DNS_LABEL, "maxLength": 63},
            },
        },
        "spec": {
            "type": "object",
            "required": ["targetRef", "service", "analysis"],
            "properties": {
                "targetRef": {
                    "type": "object",
                    "required": ["apiVersion", "kind", "name"],
                    "properties": {"kind": {"enum": ["Deployment", "DaemonSet", "Service"]}},
                },
                "progressDeadlineSeconds": {"type": "integer"},
                "service": {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}},
                "analysis": {
                    "type": "object",
                    "required": ["webhooks"],
                    "properties": {
                        "interval": {"type": "string"},
                        "threshold": {"type": "integer"},
                        "maxWeight": {"type": "integer"},
                        "stepWeight": {"type": "integer"},
                        "webhooks": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name", "url"],
                                "properties": {
                                    "name": {"type": "string", "minLength": 1},
                                    "type": {"enum": WEBHOOK_TYPES},
                                    "url": {"type": "string", "pattern": "^https?://"},
                                    "timeout": {"type": "string"},
                                    "muteAlert": {"type": "boolean"},
                                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "retries": {"type": "integer"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

# Which Gatehouse paths answer which webhook type.
ENDPOINTS_FOR_HOOK = {
    "confirm-rollout": {"/v1/flagger/confirm-rollout", "/gate/check", "/gate/approve", "/gate/halt"},
    "confirm-traffic-increase": {"/v1/flagger/confirm-traffic-increase", "/gate/check", "/gate/approve", "/gate/halt"},
    "confirm-promotion": {"/v1/flagger/confirm-promotion", "/gate/check", "/gate/approve", "/gate/halt"},
    "rollback": {"/v1/flagger/rollback", "/rollback/check"},
    "event": {"/v1/flagger/events"},
    "post-rollout": {"/v1/flagger/post-rollout", "/gate/approve"},
    "pre-rollout": {"/gate/approve", "/gate/halt"},
    "rollout": {"/gate/approve"},
}


def check_yaml_files():
    with open(os.path.join(ROOT, "Sources/GatehouseServer/Resources/openapi.yaml")) as handle:
        served = set(yaml.safe_load(handle)["paths"])
    files = sorted(glob.glob(os.path.join(ROOT, "examples/**/*.y*ml"), recursive=True))
    check(files, "examples/ holds YAML files")
    canaries = 0
    for path in files:
        name = os.path.relpath(path, ROOT)
        try:
            with open(path) as handle:
                documents = [d for d in yaml.safe_load_all(handle) if d is not None]
        except yaml.YAMLError as error:
            check(False, f"{name} does not parse: {error}")
            continue
        check(documents, f"{name} parses")
        for document in documents:
            if not (isinstance(document, dict) and document.get("kind") == "Canary"):
                continue
            canaries += 1
            errors = sorted(jsonschema.Draft7Validator(CANARY_SCHEMA).iter_errors(document), key=str)
            check(not errors, f"{name}: {[e.message for e in errors]}")
            for hook in document["spec"]["analysis"]["webhooks"]:
                kind = hook.get("type", "rollout")
                url = urlparse(hook["url"])
                check(url.path in served, f"{name}: {hook['name']} points at {url.path}, which Gatehouse does not serve")
                check(url.path in ENDPOINTS_FOR_HOOK[kind], f"{name}: {hook['name']} sends a {kind} hook to {url.path}")
                check(url.port in (None, 80), f"{name}: {hook['name']} uses the Service's port 80")
    check(canaries >= 2, "examples/ holds the native and the loadtester-compatible Canary")
    for path in sorted(glob.glob(os.path.join(ROOT, "examples/**/*.json"), recursive=True)):
        try:
            with open(path) as handle:
                json.load(handle)
            check(True, "")
        except ValueError as error:
            check(False, f"{os.path.relpath(path, ROOT)} does not parse: {error}")


def observability_queries():
    """Every PromQL expression in examples/observability, after checking the files' structure."""
    expressions = []
    with open(os.path.join(ROOT, "examples/observability/prometheus-rules.yaml")) as handle:
        rules = yaml.safe_load(handle)
    check(rules["apiVersion"] == "monitoring.coreos.com/v1" and rules["kind"] == "PrometheusRule", "a PrometheusRule")
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            check({"alert", "expr", "labels", "annotations"} <= set(rule), f"alert rule fields: {rule}")
            expressions.append(rule["expr"])
    with open(os.path.join(ROOT, "examples/observability/grafana-dashboard.json")) as handle:
        dashboard = json.load(handle)
    check(dashboard["panels"], "the dashboard has panels")
    for panel in dashboard["panels"]:
        check(panel["targets"], f"panel {panel['title']} queries something")
        expressions += [target["expr"] for target in panel["targets"]]
    return expressions


def check_metrics_exist(base):
    """The alerts and dashboard only name metrics that /metrics serves."""
    served = set()
    for line in urllib.request.urlopen(base + "/metrics", timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            served.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    for expression in observability_queries():
        for metric in set(re.findall(r"gatehouse_[a-z_]+", expression)):
            check(metric in served, f"examples/observability uses {metric}, which /metrics does not serve")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(binary, database, *arguments):
    """Starts `gatehouse serve` on a free port and waits until it is ready; returns it and its URL."""
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--database", database, *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1)
            return server, base
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"gatehouse serve {' '.join(arguments)} did not become ready")


def start(binary, directory):
    # Notifications go to a closed port on this machine: the metrics exist, nothing leaves it.
    notifications = os.path.join(directory, "notifications.yaml")
    with open(notifications, "w") as handle:
        handle.write("cluster: ci\ntargets:\n  - name: local\n    kind: webhook\n    url: http://127.0.0.1:1/hook\n")
    return serve(binary, os.path.join(directory, "db.sqlite"), "--notifications-file", notifications)


def readme_curl_lines(heading, containing="curl "):
    """The curl lines of the first sh block after `heading` that has them."""
    with open(os.path.join(ROOT, "README.md")) as handle:
        text = handle.read()
    section = text.split(heading, 1)[1]
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        lines = [line for line in block.splitlines() if line.startswith(containing)]
        if lines:
            return lines
    return []


def run_readme(base, heading="## Every operation, with curl", minimum=20):
    lines = readme_curl_lines(heading)
    check(len(lines) >= minimum, f"the README shows its curl commands under {heading}")
    for line in lines:
        command, _, comment = line.partition("#")
        expected = set(re.findall(r"\b([1-5]\d\d)\b", comment))
        arguments = shlex.split(command.replace("$GH", base).replace("localhost:8080", base))
        result = subprocess.run(arguments[:1] + ["-s", "-o", "/dev/null", "-w", "%{http_code}"] + arguments[1:],
                                capture_output=True, text=True)
        status = result.stdout.strip()
        if expected:
            check(status in expected, f"README: {line.strip()} answered {status}, wanted {sorted(expected)}")
        else:
            check(status.startswith("2"), f"README: {line.strip()} answered {status}, wanted 2xx")


def script(name, *arguments, base):
    result = subprocess.run(
        [os.path.join(ROOT, "examples/curl", name), *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "GATEHOUSE_URL": base},
    )
    return result.returncode, result.stdout + result.stderr


def run_scripts(base):
    # shop/cart is a progressive canary: Flagger asks traffic before promotion (the strategy in which
    # a passing promotion check promotes at once; Blue/Green would check rollback once more).
    code, out = script("flagger-check.sh", "confirm-traffic-increase", "shop", "cart", "Progressing", "c7", base=base)
    check(code == 0 and out.strip().endswith("403"), f"flagger-check.sh traffic: {out}")
    code, out = script("flagger-check.sh", "confirm-promotion", "shop", "cart", "Progressing", "c7", base=base)
    check(code == 0 and out.strip().endswith("403") and "promotion gate of shop/cart is closed" in out, f"flagger-check.sh: {out}")
    code, out = script("open-gate.sh", "promotion", "shop", "cart", '{"reason": "looks good", "ttl": "1h"}', base=base)
    check(code == 0 and json.loads(out)["gates"]["promotion"]["state"] == "open", f"open-gate.sh: {out}")
    code, out = script("flagger-check.sh", "confirm-promotion", "shop", "cart", "Progressing", "c7", base=base)
    check(code == 0 and out.strip().endswith("200"), f"flagger-check.sh after opening: {out}")
    code, out = script("open-gate.sh", "traffic", "shop", "cart", base=base)
    check(code == 0 and json.loads(out)["gates"]["traffic"]["mode"] == "once", f"open-gate.sh with no body: {out}")
    code, out = script("close-gate.sh", "promotion", "shop", "cart", "wait for the load test", base=base)
    check(code == 0 and json.loads(out)["gates"]["promotion"]["state"] == "closed", f"close-gate.sh: {out}")
    # shop/checkout is being analysed (Flagger asks its rollback hook): it can be rolled back.
    code, out = script("flagger-check.sh", "rollback", "shop", "checkout", "Progressing", "c8", base=base)
    check(code == 0 and out.strip().endswith("403"), f"flagger-check.sh rollback: {out}")
    code, out = script("rollback.sh", "shop", "checkout", "error rate up", base=base)
    check(code == 0 and json.loads(out)["gates"]["rollback"]["state"] == "open", f"rollback.sh: {out}")
    # shop/cart passed confirm-promotion above: no rollback check can come any more.
    code, out = script("rollback.sh", "shop", "cart", "too late", base=base)
    check(code != 0 and "is being promoted" in out, f"rollback.sh while promoting must fail: {out}")
    code, out = script("rollback.sh", "shop", "idle", "no rollout here", base=base)
    check(code != 0 and "is not known to be in a rollout" in out, f"rollback.sh outside a rollout must fail: {out}")
    code, out = script("rollback.sh", "shop", "idle", "insist", "force", base=base)
    check(code == 0, f"rollback.sh with force: {out}")
    code, out = script("freeze.sh", "shop", "inventory count", "2h", base=base)
    check(code == 0 and json.loads(out)["namespace"] == "shop", f"freeze.sh: {out}")
    freeze = json.loads(out)["id"]
    code, out = script("status.sh", base=base)
    check(code == 0 and "inventory count" in out and '"cart"' in out, f"status.sh: {out}")
    code, out = script("status.sh", "shop", "cart", base=base)
    check(code == 0 and json.loads(out)["name"] == "cart", f"status.sh NAMESPACE NAME: {out}")
    code, out = script("unfreeze.sh", str(freeze), base=base)
    check(code == 0 and json.loads(out)["liftedAt"], f"unfreeze.sh: {out}")
    code, out = script("events.sh", "shop", "cart", "5", base=base)
    check(code == 0 and len(json.loads(out)["events"]) == 5, f"events.sh NAMESPACE NAME LIMIT: {out}")
    code, out = script("events.sh", base=base)
    check(code == 0 and json.loads(out)["events"], f"events.sh: {out}")
    for action, status in [("check", "403"), ("open", "202"), ("check", "200"), ("close", "202"), ("check", "403")]:
        code, out = script("loadtester-gate.sh", action, "shop", "cart", base=base)
        check(code == 0 and out.strip().endswith(status), f"loadtester-gate.sh {action}: {out}")
    code, out = script("loadtester-gate.sh", "open", "shop", "cart", "rollback", base=base)
    check(code == 0 and out.strip().endswith("202"), f"loadtester-gate.sh open rollback: {out}")
    check_metrics_exist(base)


def check_access_example(binary, directory):
    """examples/access.yaml and examples/notifications.yaml are valid: the service starts with them and asks for tokens."""
    server, base = serve(
        binary, os.path.join(directory, "a.sqlite"), "--access-file", os.path.join(ROOT, "examples/access.yaml"),
        "--notifications-file", os.path.join(ROOT, "examples/notifications.yaml"), "--link-secret", "example")
    try:
        try:
            urllib.request.urlopen(base + "/v1/canaries", timeout=2)
            check(False, "with examples/access.yaml, /v1/canaries needs a token")
        except urllib.error.HTTPError as error:
            check(error.code == 401, f"with examples/access.yaml, /v1/canaries without a token is 401, got {error.code}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def check_multi_cluster(binary, directory):
    """examples/multi-cluster: with its access file (its hashes swapped for those of test secrets),
    each cluster's Canary webhooks reach one service and name their own canary."""
    with open(os.path.join(ROOT, "examples/multi-cluster/access.yaml")) as handle:
        access = yaml.safe_load(handle)
    secrets = {entry["cluster"]: f"test-secret-{entry['cluster']}" for entry in access["flagger"]}
    for entry in access["flagger"]:
        entry["sha256"] = hashlib.sha256(secrets[entry["cluster"]].encode()).hexdigest()
    path = os.path.join(directory, "multi-cluster-access.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(access, handle)
    server, base = serve(binary, os.path.join(directory, "multi.sqlite"), "--access-file", path)
    try:
        for cluster, secret in secrets.items():
            with open(os.path.join(ROOT, f"examples/multi-cluster/canary-{cluster}.yaml")) as handle:
                canary = yaml.safe_load(handle)
            for hook in canary["spec"]["analysis"]["webhooks"]:
                metadata = dict(hook["metadata"], token=secret)
                check(metadata["cluster"] == cluster, f"canary-{cluster}.yaml: {hook['name']} names cluster {cluster}")
                if hook["type"] != "confirm-rollout":
                    continue
                body = json.dumps({"name": "podinfo", "namespace": "test", "phase": "Progressing",
                                   "checksum": "rev1", "metadata": metadata}).encode()
                request = urllib.request.Request(base + urlparse(hook["url"]).path, data=body, method="POST")
                try:
                    urllib.request.urlopen(request, timeout=5)
                    check(False, f"canary-{cluster}.yaml: the closed rollout gate refuses")
                except urllib.error.HTTPError as error:
                    text = error.read().decode()
                    check(error.code == 403 and f"--cluster {cluster}" in text,
                          f"canary-{cluster}.yaml: {hook['name']} is refused for cluster {cluster}: {text}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def check_policy_example(binary, directory):
    """examples/policy.yaml is the README's, is valid, and the README's Guardrails curl lines answer as they say."""
    path = os.path.join(ROOT, "examples/policy.yaml")
    with open(path) as handle:
        policy = handle.read()
    with open(os.path.join(ROOT, "README.md")) as handle:
        section = handle.read().split("## Guardrails", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    check(blocks and blocks[0] == policy, "the README's Guardrails section shows examples/policy.yaml as it is")
    result = subprocess.run([binary, "policy", "check", path], capture_output=True, text=True)
    check(result.returncode == 0 and "valid, 10 rules" in result.stdout, f"gatehouse policy check: {result.stdout}{result.stderr}")
    command = next((line for line in section.splitlines() if line.startswith("gatehouse policy check")), "")
    result = subprocess.run([binary, *shlex.split(command)[1:]], capture_output=True, text=True, cwd=ROOT)
    check(result.returncode == 0 and "payments-two-approvers" in result.stdout and re.search(r"^Not applying: .*\bcheckout-after-cart\b", result.stdout, re.M),
          f"the README's {command}: {result.stdout}{result.stderr}")
    broken = os.path.join(directory, "broken-policy.yaml")
    with open(broken, "w") as handle:
        handle.write(policy.replace("limit: 2", "limit: none"))
    result = subprocess.run([binary, "policy", "check", broken], capture_output=True, text=True)
    check(result.returncode == 1 and "line 19: limit is a whole number" in result.stderr,
          f"a broken policy file is refused with its line: {result.returncode} {result.stderr}")
    server, base = serve(binary, os.path.join(directory, "policy.sqlite"), "--policy-file", path)
    try:
        run_readme(base, heading="## Guardrails", minimum=12)
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_quick_start(base):
    """The three curl lines a new user tries right after `swift run gatehouse serve`."""
    run_readme(base, heading="## The two commands", minimum=3)


def main():
    binary = sys.argv[1]
    check_yaml_files()
    with tempfile.TemporaryDirectory() as directory:
        for run in (run_quick_start, run_readme, run_scripts):
            os.makedirs(os.path.join(directory, run.__name__))
            server, base = start(binary, os.path.join(directory, run.__name__))
            try:
                run(base)
            finally:
                server.terminate()
                server.wait(timeout=10)
        check_access_example(binary, directory)
        check_multi_cluster(binary, directory)
        check_policy_example(binary, directory)
    return finish("examples")


if __name__ == "__main__":
    sys.exit(main())
