#!/usr/bin/env python3
"""Every `gatehouse` command the README's shell blocks and the subcommands' --help texts show, run as
written against a live service (a fresh database, examples/policy.yaml in force, Flagger's calls for
the canaries they name), so that no documented command rots: each must exit 0. A command that runs
until stopped (`status --watch`, `wait`) must still be running after three seconds. A command that
needs what no CI machine has (PostgreSQL elsewhere, the service itself) is listed in SKIPPED with
the reason.

    .ci/doc_commands_test.py PATH_TO_GATEHOUSE_BINARY
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SKIPPED = {
    "gatehouse serve": "the service these commands run against is already serving",
    "gatehouse migrate": "copies into a PostgreSQL elsewhere (the PostgreSQL step of CI runs migrate)",
}
# Commands whose documented exit code says an answer, not a failure: `policy simulate` exits 7 when a
# rule of the file would have held a rollout (the service here has a history the example rules hold).
ANSWERING = {re.compile(r"\bpolicy simulate\b"): (0, 7)}
# Commands that run until they are stopped: still running after this long is success.
LONG_RUNNING = [re.compile(r"\bstatus\b.*--watch"), re.compile(r"\bwait\b")]

failures = []


def commands_in_readme():
    text = open(os.path.join(ROOT, "README.md")).read()
    found = []
    for language, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if language not in ("sh", "bash", ""):
            continue
        for line in body.splitlines():
            line = line.strip()
            if re.match(r"^(\w+=\S+ )*(kubectl )?gatehouse\b", line) or re.search(r"\| *gatehouse\b", line):
                found.append(("README", line))
    return found


def commands_in_help(binary):
    found = []
    top = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    names = re.findall(r"^  ([a-z]+) {2,}", top.split("SUBCOMMANDS:")[1], re.M)
    paths = []
    for name in names:
        text = subprocess.run([binary, name, "--help"], capture_output=True, text=True).stdout
        if "SUBCOMMANDS:" in text:
            for sub in re.findall(r"^  ([a-z]+) {2,}", text.split("SUBCOMMANDS:")[1], re.M):
                paths.append([name, sub])
        else:
            paths.append([name])
    for path in paths:
        text = subprocess.run([binary, *path, "--help"], capture_output=True, text=True).stdout
        before_usage = text.split("USAGE:")[0]
        lines = before_usage.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index].strip()
            # A command continued on the next line (a trailing backslash); one broken by the help's
            # wrapping is not, and fails as a reader copying it would.
            while line.endswith("\\") and index + 1 < len(lines):
                index += 1
                line = line[:-1] + " " + lines[index].strip()
            if re.match(r"^(\w+=\S+ )*gatehouse\b", line):
                found.append((f"gatehouse {' '.join(path)} --help", line))
            index += 1
    return found


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url, body=None):
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def flagger(base, hook, namespace, name, checksum, phase="Progressing"):
    return post(f"{base}/v1/flagger/{hook}",
                {"name": name, "namespace": namespace, "phase": phase, "checksum": checksum})


def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="gatehouse-doc-commands-")
    bin_dir = os.path.join(work, "bin")
    os.makedirs(bin_dir)
    os.symlink(binary, os.path.join(bin_dir, "gatehouse"))
    shutil.copy(os.path.join(ROOT, "examples/policy.yaml"), os.path.join(work, "policy.yaml"))
    os.symlink(os.path.join(ROOT, "examples"), os.path.join(work, "examples"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--database", os.path.join(work, "gatehouse.sqlite"),
         "--policy-file", os.path.join(work, "policy.yaml")],
        stdout=open(os.path.join(work, "serve.log"), "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        # The canaries the commands name, as Flagger makes them known: test/podinfo with a rollout
        # under way (so a rollback request has a rollout to belong to), payments/ledger and shop/shop asking.
        flagger(base, "confirm-rollout", "test", "podinfo", "c1")
        post(f"{base}/v1/canaries/test/podinfo/gates/rollout/open", {"reason": "setup"})
        flagger(base, "confirm-rollout", "test", "podinfo", "c1")
        flagger(base, "confirm-traffic-increase", "test", "podinfo", "c1")
        flagger(base, "confirm-promotion", "payments", "ledger", "p1")
        flagger(base, "confirm-rollout", "shop", "shop", "s1")
        # Freezes 1 and 2, so that the README's `unfreeze 3` lifts the one its `freeze` sets.
        for namespace in ("setup-a", "setup-b"):
            post(f"{base}/v1/freezes", {"namespace": namespace, "reason": "setup"})

        environment = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"], GATEHOUSE_URL=base,
                           USER="alice", TOKEN="gh_example-token", HOME=work)
        environment.pop("GATEHOUSE_TOKEN", None)
        seen = set()
        ran = 0
        for source, line in commands_in_readme() + commands_in_help(binary):
            command = re.sub(r"^kubectl gatehouse\b", "gatehouse", line)
            # The service's addresses the docs name (a public one, the in-cluster Service) are this one.
            command = re.sub(r"https://gatehouse\.example\.com|http://gatehouse\.gatehouse(:\d+)?", base, command)
            if command in seen:
                continue
            seen.add(command)
            skip = next((reason for prefix, reason in SKIPPED.items()
                         if re.match(r"^(\w+=\S+ )*(swift run )?" + re.escape(prefix) + r"\b", command)), None)
            if skip or command.startswith("swift run"):
                print(f"skipped ({source}): {line}\n    {skip or 'builds and starts the service'}")
                continue
            ran += 1
            long_running = any(pattern.search(command) for pattern in LONG_RUNNING)
            process = subprocess.Popen(["bash", "-c", command], cwd=work, env=environment, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                output, errors = process.communicate(timeout=3 if long_running else 30)
                accepted = next((codes for pattern, codes in ANSWERING.items() if pattern.search(command)), (0,))
                if process.returncode not in accepted or long_running:
                    failures.append(f"{source}: `{line}` exited {process.returncode}: {errors.strip()[:300]}")
                else:
                    print(f"ok ({source}): {line}")
            except subprocess.TimeoutExpired:
                process.kill()
                output, errors = process.communicate()
                if long_running and "Error" not in errors:
                    print(f"ok, still running after 3 s ({source}): {line}")
                else:
                    failures.append(f"{source}: `{line}` did not finish: {errors.strip()[:300]}")
        if ran < 20:
            failures.append(f"only {ran} documented commands were found; the extraction is broken")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print("FAIL:", failure)
    print(f"documented commands: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
