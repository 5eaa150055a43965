#!/usr/bin/env python3
"""Chart tests: lint, render several value sets, validate every manifest against the oldest and
newest Kubernetes schemas kubernetes-validate bundles, assert what matters, check that the
values schema rejects bad values, and run checkov with every skip explained in .ci/checkov.yaml."""

import copy
import os
import subprocess
import sys
import tempfile

import helm_python
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from checks import check, finish  # noqa: E402

CHART = os.path.join(os.path.dirname(__file__), "..", "charts", "gatehouse")
KUBERNETES_VERSIONS = ["1.25.0", "1.37.0"]  # the oldest and newest kubernetes-validate bundles
CUSTOM_RESOURCES = {"ServiceMonitor"}  # not in Kubernetes' schemas; asserted below instead

# No image is published: every install names one (the chart refuses to render without it).
IMAGE = "registry.example.com/gatehouse"

VALUE_SETS = {
    "defaults": {},
    "existing-claim": {
        "persistence": {"existingClaim": "gatehouse-data", "mountPath": "/var/lib/gatehouse"},
        "gatehouse": {"logFormat": "text", "synchronous": "full"},
    },
    "observability": {
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}},
        "networkPolicy": {
            "enabled": True,
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "flagger-system"}}}],
        },
        "gatehouse": {"extraArgs": ["--log-level", "debug"], "extraEnv": [{"name": "TZ", "value": "UTC"}]},
        "podAnnotations": {"example.com/team": "release"},
    },
    "secured": {
        "security": {
            "accessFile": "tokens:\n  - name: ci\n    sha256: " + "a" * 64 + "\n    namespaces: [\"*\"]\n    actions: [read]\n",
            "flaggerToken": "s3cret",
            "slackSigningSecret": "slack-secret",
            "namespaceRegexp": "^(test|prod)$",
            "linkSecret": "link-secret",
            "sessionSecret": "session-secret",
        },
        "dashboard": {"enabled": False, "trustedProxies": ["10.0.0.0/8", "192.168.1.7"]},
        "notifications": {"file": "cluster: prod\ntargets:\n  - kind: webhook\n    url: https://example.com/hook\n"},
        "policy": {"rules": yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "examples", "policy.yaml")))["rules"]},
    },
    "existing-secret": {"security": {"existingSecret": "gatehouse-credentials"}},
    "single-sign-on": {
        "security": {
            "accessFile": "tokens:\n  - name: ci\n    sha256: " + "b" * 64 + "\n    namespaces: [\"*\"]\n    actions: [read]\n",
            "oidcClientSecret": "client-secret",
        },
        "dashboard": {"singleSignOn": {"issuer": "https://sso.example.com", "clientId": "gatehouse", "groupsClaim": "roles"}},
    },
    "postgres-replicas": {
        "replicaCount": 3,
        "security": {"sessionSecret": "one key for every replica"},
        "database": {
            "url": "postgres://gatehouse@db.example:5432/gatehouse?sslmode=verify-full",
            "passwordSecret": {"name": "gatehouse-db", "key": "password"},
        },
    },
    "node-port": {
        "image": {"digest": "sha256:" + "0" * 64},
        "service": {"type": "NodePort", "port": 8080},
        "persistence": {"storageClass": "fast-ssd", "size": "5Gi"},
        "serviceAccount": {"create": False, "name": "gatehouse-runner"},
    },
}

BAD_VALUES = {
    "a policy rule without a name": {"policy": {"rules": [{"gates": ["traffic"], "automatic": True}]}},
    "a port that is a string": {"service": {"port": "80"}},
    "a size that is not a quantity": {"persistence": {"size": "lots"}},
    "more than one replica on SQLite": {"replicaCount": 2},
    "no replica": {"replicaCount": 0, "database": {"url": "postgres://gatehouse@db:5432/gatehouse"}},
    "replicas with the dashboard and no session secret": {
        "replicaCount": 3, "database": {"url": "postgres://gatehouse@db:5432/gatehouse"}},
    "a database URL that is not PostgreSQL's": {"database": {"url": "mysql://gatehouse@db/gatehouse"}},
    "a password in the database URL": {"database": {"url": "postgres://gatehouse:hunter2@db:5432/gatehouse"}},
    "an unknown log format": {"gatehouse": {"logFormat": "xml"}},
    "a duration with a space": {"gatehouse": {"rollbackTTL": "1 hour"}},
    "an unknown pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "a relative mount path": {"persistence": {"mountPath": "data"}},
    "a digest that is not sha256": {"image": {"digest": "latest"}},
    "single sign-on without a client id": {"dashboard": {"singleSignOn": {"issuer": "https://sso.example.com"}}},
    "single sign-on with an issuer that is not a URL": {
        "dashboard": {"singleSignOn": {"issuer": "sso.example.com", "clientId": "gatehouse"}}},
}



def with_image(values):
    merged = copy.deepcopy(values)
    merged.setdefault("image", {}).setdefault("repository", IMAGE)
    return merged


def render(values):
    values = with_image(values)
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values=values, name="gatehouse", namespace="gatehouse")
    documents = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                documents.append(document)
    return documents, rendered


def by_kind(documents, kind):
    return [d for d in documents if d["kind"] == kind]


def assert_manifests(name, values, documents, rendered):
    merged = copy.deepcopy(values)
    deployment = by_kind(documents, "Deployment")
    check(len(deployment) == 1, f"{name}: one Deployment")
    deployment = deployment[0]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    postgres = merged.get("database", {}).get("url")
    replicas = merged.get("replicaCount", 1) if postgres else 1
    check(spec["replicas"] == replicas, f"{name}: {replicas} replicas")
    if postgres:
        check(spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
              f"{name}: replicas on PostgreSQL roll one at a time, a new one ready before an old one stops")
    else:
        check(spec["strategy"]["type"] == "Recreate", f"{name}: Recreate strategy (SQLite has one writer)")
    budgets = by_kind(documents, "PodDisruptionBudget")
    check(len(budgets) == (1 if postgres and replicas > 1 else 0), f"{name}: a PodDisruptionBudget only for replicas")
    for budget in budgets:
        check(budget["spec"]["minAvailable"] == 1 and budget["spec"]["selector"]["matchLabels"]
              == spec["selector"]["matchLabels"], f"{name}: the budget keeps one replica of these pods")
    check(container["args"][0] == "serve", f"{name}: the container runs `gatehouse serve`")
    digest = merged.get("image", {}).get("digest")
    expected_image = f"{IMAGE}@{digest}" if digest else f"{IMAGE}:0.1.0"
    check(container["image"] == expected_image, f"{name}: the image is {expected_image}")

    config = by_kind(documents, "ConfigMap")[0]["data"]
    database = config["GATEHOUSE_DATABASE"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    existing = merged.get("persistence", {}).get("existingClaim")
    pvcs = by_kind(documents, "PersistentVolumeClaim")
    env = {e["name"]: e for e in container["env"]}
    if postgres:
        check(database == postgres, f"{name}: the service is pointed at the PostgreSQL URL")
        check(not pvcs and "data" not in volumes, f"{name}: no claim and no data volume with PostgreSQL")
        password = merged["database"]["passwordSecret"]
        check(volumes["database-password"]["secret"] == {
            "secretName": password["name"], "defaultMode": 0o440, "items": [{"key": password["key"], "path": "password"}]},
            f"{name}: the password Secret's key is mounted as a file")
        check(env["GATEHOUSE_DATABASE_PASSWORD_FILE"]["value"]
              == os.path.join(mounts["database-password"], "password"), f"{name}: the password is read from that file")
    else:
        check(os.path.dirname(database) == mounts["data"], f"{name}: the database {database} is on the data volume {mounts['data']}")
        claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    if postgres:
        pass
    elif existing:
        check(claim == existing and not pvcs, f"{name}: the existing claim is used and none is created")
    else:
        check([p["metadata"]["name"] for p in pvcs] == [claim], f"{name}: the pod mounts the claim the chart creates")
        size = merged.get("persistence", {}).get("size", "1Gi")
        check(pvcs[0]["spec"]["resources"]["requests"]["storage"] == size, f"{name}: the claim's size")
        storage_class = merged.get("persistence", {}).get("storageClass")
        check(pvcs[0]["spec"].get("storageClassName") == storage_class, f"{name}: the claim's storage class")
    check(config["GATEHOUSE_PORT"] == "8080", f"{name}: the service listens on 8080")
    check(config["GATEHOUSE_HOST"] == "0.0.0.0", f"{name}: the service listens on every interface of the pod")

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports == {"http": 8080}, f"{name}: the container port http is 8080")
    check(container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, f"{name}: liveness on /healthz")
    check(container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, f"{name}: readiness on /readyz")
    check(container["startupProbe"]["httpGet"]["path"] == "/readyz", f"{name}: a startup probe")

    security = container["securityContext"]
    check(security["readOnlyRootFilesystem"] is True, f"{name}: read-only root filesystem")
    check(security["allowPrivilegeEscalation"] is False, f"{name}: no privilege escalation")
    check(security["capabilities"]["drop"] == ["ALL"], f"{name}: every capability dropped")
    check(pod["securityContext"]["runAsNonRoot"] is True, f"{name}: runs as non-root")
    check(pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", f"{name}: seccomp RuntimeDefault")
    check(mounts.get("tmp") == "/tmp", f"{name}: a writable /tmp for SQLite's temporary files")
    check(container["resources"].get("limits", {}).get("memory"), f"{name}: a memory limit")

    annotations = spec["template"]["metadata"]["annotations"]
    check(annotations.get("checksum/config"), f"{name}: a checksum annotation rolls the pod when the config changes")

    service = by_kind(documents, "Service")[0]
    service_port = service["spec"]["ports"][0]
    check(service_port["targetPort"] == "http", f"{name}: the Service targets the http port")
    check(service_port["port"] == merged.get("service", {}).get("port", 80), f"{name}: the Service port")
    check(service["spec"]["selector"] == spec["selector"]["matchLabels"], f"{name}: the Service selects the pod")

    account = merged.get("serviceAccount", {})
    expected_account = account.get("name") or "gatehouse"
    check(pod["serviceAccountName"] == expected_account, f"{name}: the ServiceAccount")
    check(bool(by_kind(documents, "ServiceAccount")) == account.get("create", True), f"{name}: ServiceAccount created only when asked")

    monitor = merged.get("serviceMonitor", {})
    monitors = by_kind(documents, "ServiceMonitor")
    check(len(monitors) == (1 if monitor.get("enabled") else 0), f"{name}: ServiceMonitor only when enabled")
    for m in monitors:
        endpoint = m["spec"]["endpoints"][0]
        check(endpoint["port"] == "http" and endpoint["path"] == "/metrics", f"{name}: the ServiceMonitor scrapes /metrics")
        check(m["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"], f"{name}: the ServiceMonitor selects the Service")
    policies = by_kind(documents, "NetworkPolicy")
    check(len(policies) == (1 if merged.get("networkPolicy", {}).get("enabled") else 0), f"{name}: NetworkPolicy only when enabled")

    security = merged.get("security", {})
    secrets = by_kind(documents, "Secret")
    existing = security.get("existingSecret")
    secret_values = ["accessFile", "flaggerToken", "slackSigningSecret", "linkSecret", "sessionSecret", "oidcClientSecret"]
    if existing or any(security.get(value) for value in secret_values) or merged.get("notifications", {}).get("file"):
        secret_name = existing or "gatehouse"
        check(len(secrets) == (0 if existing else 1), f"{name}: a Secret is created unless an existing one is named")
        check(volumes["secrets"]["secret"]["secretName"] == secret_name, f"{name}: the secrets volume is the Secret")
        check(("GATEHOUSE_ACCESS_FILE" in env) == bool(existing or security.get("accessFile")),
              f"{name}: an access file only when one is given")
        for variable, key in [("GATEHOUSE_ACCESS_FILE", "access.yaml")] * bool(existing or security.get("accessFile")) + [
            ("GATEHOUSE_FLAGGER_TOKEN_FILE", "flagger-token"),
            ("GATEHOUSE_SLACK_SIGNING_SECRET_FILE", "slack-signing-secret"),
            ("GATEHOUSE_LINK_SECRET_FILE", "link-secret"),
            ("GATEHOUSE_SESSION_SECRET_FILE", "session-secret"),
            ("GATEHOUSE_OIDC_CLIENT_SECRET_FILE", "oidc-client-secret"),
        ]:
            path = env[variable]["value"]
            check(path == os.path.join(mounts.get("secrets", "?"), key), f"{name}: {variable} is the Secret's {key}")
        check(not any("valueFrom" in e for e in container["env"]), f"{name}: secrets are files, not environment variables")
        if not existing:
            given = {
                "access.yaml": security.get("accessFile"), "flagger-token": security.get("flaggerToken"),
                "slack-signing-secret": security.get("slackSigningSecret"), "link-secret": security.get("linkSecret"),
                "session-secret": security.get("sessionSecret"),
                "oidc-client-secret": security.get("oidcClientSecret"),
                "notifications.yaml": merged.get("notifications", {}).get("file"),
            }
            check(set(secrets[0]["stringData"]) == {key for key, value in given.items() if value},
                  f"{name}: the Secret holds what was given, only")
        if not existing and security.get("accessFile") and security.get("oidcClientSecret"):
            check(secrets[0]["stringData"]["oidc-client-secret"] == "client-secret", f"{name}: the OIDC client secret")
        elif not existing and security.get("accessFile"):
            data = secrets[0]["stringData"]
            check(yaml.safe_load(data["access.yaml"])["tokens"][0]["name"] == "ci", f"{name}: the Secret holds the access file")
            check(data["flagger-token"] == "s3cret" and data["slack-signing-secret"] == "slack-secret", f"{name}: the Secret's keys")
            check(data["link-secret"] == "link-secret", f"{name}: the link secret")
            check(data["session-secret"] == "session-secret", f"{name}: the dashboard's session secret")
            check(yaml.safe_load(data["notifications.yaml"])["cluster"] == "prod", f"{name}: the notifications file")
            check(env["GATEHOUSE_NOTIFICATIONS_FILE"]["value"] == os.path.join(mounts["secrets"], "notifications.yaml"),
                  f"{name}: the notifications file is read from the Secret")
        check(config.get("GATEHOUSE_NAMESPACE_REGEXP") == security.get("namespaceRegexp"), f"{name}: the namespace regexp")
    else:
        check(not secrets and "GATEHOUSE_ACCESS_FILE" not in env and "secrets" not in mounts, f"{name}: no Secret by default")
    sso = merged.get("dashboard", {}).get("singleSignOn", {})
    check(config.get("GATEHOUSE_OIDC_ISSUER") == sso.get("issuer"), f"{name}: single sign-on's issuer only when set")
    if sso:
        check(config["GATEHOUSE_OIDC_CLIENT_ID"] == sso["clientId"], f"{name}: single sign-on's client id")
        check(config["GATEHOUSE_OIDC_GROUPS_CLAIM"] == sso.get("groupsClaim", "groups"), f"{name}: the groups claim")
        check(config["GATEHOUSE_OIDC_NAME_CLAIM"] == sso.get("nameClaim", "email"), f"{name}: the name claim")
    dashboard = merged.get("dashboard", {})
    check(config.get("GATEHOUSE_DASHBOARD") == str(dashboard.get("enabled", True)).lower(), f"{name}: the dashboard switch")
    check(config.get("GATEHOUSE_TRUSTED_PROXIES") == (",".join(dashboard["trustedProxies"]) if dashboard.get("trustedProxies") else None),
          f"{name}: the dashboard's trusted proxies")

    rules = merged.get("policy", {}).get("rules")
    policies = [d for d in by_kind(documents, "ConfigMap") if d["metadata"]["name"].endswith("-policy")]
    if rules:
        check(len(policies) == 1 and yaml.safe_load(policies[0]["data"]["policy.yaml"]) == {"rules": rules},
              f"{name}: the policy rules are rendered into their own ConfigMap, as written")
        check(env.get("GATEHOUSE_POLICY_FILE", {}).get("value") == os.path.join(mounts.get("policy", "?"), "policy.yaml"),
              f"{name}: the policy file is read from its mounted ConfigMap")
    else:
        check(not policies and "GATEHOUSE_POLICY_FILE" not in env and "policy" not in mounts, f"{name}: no policy by default")

    notes = next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))
    port = merged.get("service", {}).get("port", 80)
    base = "http://gatehouse.gatehouse" + ("" if port == 80 else f":{port}")
    check(f"{base}/v1/flagger/confirm-promotion" in notes, f"{name}: NOTES.txt prints the webhook URLs")


def validate_with_kubernetes(name, documents, directory):
    paths = []
    for index, document in enumerate(documents):
        if document["kind"] in CUSTOM_RESOURCES:
            continue
        path = os.path.join(directory, f"{name}-{index}-{document['kind'].lower()}.yaml")
        with open(path, "w") as handle:
            yaml.safe_dump(document, handle)
        paths.append(path)
    for version in KUBERNETES_VERSIONS:
        result = subprocess.run(
            ["kubernetes-validate", "--strict", "--quiet", "-k", version, *paths], capture_output=True, text=True
        )
        check(result.returncode == 0, f"{name}: kubernetes-validate --strict {version}: {result.stdout}{result.stderr}")


def main():
    lint = helm_python.lint(CHART, strict=True)
    problems = [m for m in lint["messages"] if m["severity"] >= 2] + [{"error": e} for e in lint["errors"]]
    check(not problems, f"helm lint --strict: {problems}")

    with tempfile.TemporaryDirectory() as directory:
        all_documents = []
        checksums = set()
        for name, values in VALUE_SETS.items():
            documents, rendered = render(values)
            assert_manifests(name, values, documents, rendered)
            validate_with_kubernetes(name, documents, directory)
            all_documents.append((name, documents))
            checksums.add(by_kind(documents, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"]["checksum/config"])
        check(len(checksums) > 1, "different configurations give different checksum annotations")

        # Without an image the chart explains what to do instead of rendering a pod that cannot pull.
        try:
            with helm_python.Chart.load(CHART) as chart:
                chart.render(values={}, name="gatehouse", namespace="gatehouse")
            check(False, "the chart renders without image.repository")
        except Exception as error:  # helm's template error, whatever class helm_python gives it
            said = str(error)
            check("image.repository is not set" in said and "Dockerfile" in said,
                  f"installing without image.repository explains how to get an image: {said[:300]}")

        for reason, values in BAD_VALUES.items():
            with helm_python.Chart.load(CHART) as chart:
                try:
                    chart.validate_schema(values)
                    check(False, f"values.schema.json accepts {reason}")
                except helm_python.HelmValuesError:
                    check(True, "")

        checkov_directory = os.path.join(directory, "checkov")
        os.makedirs(checkov_directory)
        for name, documents in all_documents:
            with open(os.path.join(checkov_directory, f"{name}.yaml"), "w") as handle:
                yaml.safe_dump_all(documents, handle)
        config = os.path.join(os.path.dirname(__file__), "checkov.yaml")
        # BC_SKIP_MAPPING: checkov would otherwise try to fetch guidelines from its vendor's API.
        result = subprocess.run(
            ["checkov", "--config-file", config, "-d", checkov_directory, "--framework", "kubernetes", "--compact", "--quiet"],
            capture_output=True,
            text=True,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        )
        check(result.returncode == 0, f"checkov found failed checks:\n{result.stdout}{result.stderr}")

    return finish("chart")


if __name__ == "__main__":
    sys.exit(main())
