#!/usr/bin/env python3
"""Hostile clients and failing storage against a built gatehouse binary, on 127.0.0.1 only.

    scripts/faults.py BINARY [ATTACK ...]

Attacks (all when none is named): connections, slowloris, names, deleted, kill9, audit.
Each starts its own service on a fresh temporary database, attacks it, and prints one Markdown
table row of what it measured; a row ending in FAIL means the service did not hold. Every
wait is bounded; every service is stopped at the end. Exit status 1 if any attack failed.

- connections: the service under a 1,024-descriptor limit, 1,100 connections opened at once,
  while Flagger's own keep-alive connection goes on checking.
- slowloris: 200 connections that send a request head and never the body.
- names: 20,000 unknown canary names sent to the open check endpoint, with a cap and forgetting.
- deleted: the database file removed under the running service.
- kill9: writes acknowledged and then the process killed with SIGKILL, five rounds.
- audit: start-up, memory and audit-page latency with 1,000,000 audit rows.
"""
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import check_body, free_port, rss_mib  # noqa: E402


class Service:
    """One `gatehouse serve` on a fresh temporary database."""

    def __init__(self, binary, *options, nofile=None, directory=None, stdout=None):
        self.binary = binary
        self.directory = directory or tempfile.mkdtemp(prefix="gatehouse-faults-")
        self.database = os.path.join(self.directory, "faults.sqlite")
        self.port = free_port()
        self.options = list(options)
        self.nofile = nofile
        self.log = os.path.join(self.directory, "service.log")
        self.stdout = stdout
        self.process = None

    def start(self):
        def limit():
            if self.nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        began = time.monotonic()
        self.process = subprocess.Popen(
            [self.binary, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--database", self.database,
             "--log-level", "info", *self.options],
            stdout=self.stdout if self.stdout is not None else open(self.log, "a"), stderr=subprocess.STDOUT,
            preexec_fn=limit)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz", timeout=2)[0] == 200:
                    return time.monotonic() - began
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("the service did not become ready")

    def request(self, method, path, body=None, timeout=10, connection=None):
        own = connection is None
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            if own:
                connection.close()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, kill=False):
        if self.alive():
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=60)

    def remove(self):
        self.stop()
        if os.environ.get("FAULTS_KEEP"):
            print(f"(kept {self.directory})")
            return
        shutil.rmtree(self.directory, ignore_errors=True)


def verdict(ok):
    return "ok" if ok else "FAIL"


def attack_connections(binary):
    service = Service(binary, "--idle-timeout", "5s", nofile=1024)
    service.start()
    try:
        flagger = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        assert service.request("POST", "/gate/check", json.dumps({"name": "podinfo", "namespace": "test"}),
                               connection=flagger)[0] == 403
        flood = []
        for _ in range(1100):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", service.port))
            flood.append(s)
        answers = {}
        checks = []
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        unsent = set(flood)
        deadline = time.monotonic() + 15
        pending = list(flood)
        while pending and time.monotonic() < deadline:
            # Flagger goes on checking on its own connection meanwhile.
            try:
                checks.append(service.request("POST", "/gate/check",
                                              json.dumps({"name": "podinfo", "namespace": "test"}),
                                              connection=flagger)[0])
            except (OSError, http.client.HTTPException) as error:
                checks.append(type(error).__name__)
            still = []
            for s in pending:
                if s in unsent:
                    # A connection the kernel has not completed yet (the listen queue is full) is
                    # sent its request once it has.
                    try:
                        s.send(request)
                        unsent.discard(s)
                    except OSError:
                        pass
                    still.append(s)
                    continue
                try:
                    data = s.recv(4096)
                    status = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed"
                    answers[status] = answers.get(status, 0) + 1
                except BlockingIOError:
                    still.append(s)
                except OSError:
                    answers["reset"] = answers.get("reset", 0) + 1
            pending = still
            time.sleep(0.05)
        alive = service.alive()
        for s in flood:
            s.close()
        # The backlog drains as the flood closes: a new connection is served again.
        fresh = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and fresh != 200:
            try:
                fresh = service.request("GET", "/healthz", timeout=5)[0]
            except OSError:
                time.sleep(0.2)
        ok = alive and checks and all(status == 403 for status in checks) and fresh == 200 and service.alive()
        waiting = len(pending)
        never = len(unsent)
        print(f"| connections | 1,100 at once under a 1,024-descriptor limit | process alive: {alive}; answers: "
              f"{dict(sorted(answers.items()))}, {waiting} still waiting after 15 s ({never} not yet connected); "
              f"Flagger's keep-alive "
              f"connection answered {checks.count(403)} of {len(checks)} checks meanwhile; a new connection served after the flood: "
              f"{fresh == 200} | {verdict(ok)} |")
        return ok
    finally:
        service.remove()


def attack_slowloris(binary):
    service = Service(binary, "--request-timeout", "2s")
    service.start()
    try:
        stalled = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", service.port), timeout=30)
            s.sendall(b"POST /v1/flagger/confirm-rollout HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"name\":")
            stalled.append(s)
        latencies = []
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        for _ in range(100):
            began = time.monotonic()
            status = service.request("POST", "/v1/flagger/confirm-rollout", check_body("scale", "podinfo", checksum="c1"),
                                     connection=connection)[0]
            latencies.append((time.monotonic() - began, status))
        closed, answered_408 = 0, 0
        began = time.monotonic()
        for s in stalled:
            try:
                data = s.recv(4096)
                closed += 1
                answered_408 += data.startswith(b"HTTP/1.1 408")
            except OSError:
                pass
            s.close()
        waited = time.monotonic() - began
        p99 = sorted(t for t, _ in latencies)[98] * 1000
        ok = closed == 200 and all(status == 403 for _, status in latencies)
        print(f"| slowloris | 200 connections send a head and never the body (`--request-timeout 2s`) | "
              f"{closed} of 200 closed ({answered_408} with 408) within {waited:.1f} s; 100 checks answered "
              f"meanwhile, p99 {p99:.1f} ms | {verdict(ok)} |")
        return ok
    finally:
        service.remove()


def flood_names(service, count):
    statuses = {}
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    for index in range(count):
        status = service.request("POST", "/gate/check", json.dumps({"name": f"junk-{index:06d}", "namespace": "junk"}),
                                 connection=connection)[0]
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def attack_names(binary):
    count, cap = 20_000, 5_000
    # The cap: beyond it a new name is refused, whatever the flood.
    service = Service(binary, "--max-canaries", str(cap))
    service.start()
    try:
        before = rss_mib(service.process.pid)
        statuses = flood_names(service, count)
        peak = rss_mib(service.process.pid)
        database = sum(os.path.getsize(os.path.join(service.directory, name))
                       for name in os.listdir(service.directory) if name.startswith("faults.sqlite")) / 2**20
        capped = statuses.get(429, 0) == count - cap
        # The flood does not lock real canaries out: one a person acts on is taken on, and Flagger's
        # checks of it are answered; the refusal counts truly what fills the cap.
        refusal = service.request("POST", "/gate/check", json.dumps({"name": "late", "namespace": "junk"}))[1]
        truthful = f"remembers {cap} canaries that only asked" in refusal
        opened = service.request("POST", "/v1/canaries/prod/checkout/gates/rollout/open", "{}")[0]
        checked = service.request("POST", "/v1/flagger/confirm-rollout", json.dumps(
            {"name": "checkout", "namespace": "prod", "checksum": "a1"}))[0]
        real_served = opened == 200 and checked == 200
    finally:
        service.remove()
    # Forgetting: names nobody acted on go once they stop calling; a canary somebody acted on stays.
    service = Service(binary, "--forget-canaries-after", "3s", "--maintenance-interval", "1s")
    service.start()
    try:
        flood_names(service, cap)
        service.request("POST", "/v1/canaries/prod/podinfo/gates/promotion/open", json.dumps({"reason": "ok"}))
        remaining = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            remaining = json.loads(service.request("GET", "/v1/canaries?limit=1000")[1])["canaries"]
            if len(remaining) <= 1:
                break
            time.sleep(0.5)
        kept = [f"{c['namespace']}/{c['name']}" for c in remaining or []]
        shown = kept if len(kept) <= 3 else f"{len(kept)} canaries"
        ok = capped and truthful and real_served and kept == ["prod/podinfo"]
        print(f"| names | {count:,} unknown names at the open check endpoint (`--max-canaries {cap}`), then a "
              f"person opens a gate of a new canary and Flagger checks it; then {cap:,} names with "
              f"`--forget-canaries-after 3s` | answers {dict(sorted(statuses.items()))}; the refusal counts "
              f"{cap} that only asked: {truthful}; the real canary opened and approved: {real_served}; RSS "
              f"{before:.1f} → {peak:.1f} MiB; database {database:.1f} MiB; after forgetting: {shown} | "
              f"{verdict(ok)} |")
        return ok
    finally:
        service.remove()


def attack_deleted(binary):
    service = Service(binary, "--maintenance-interval", "1s")
    service.start()
    try:
        service.request("POST", "/v1/canaries/test/podinfo/gates/rollout/open", json.dumps({"reason": "before"}))
        for name in os.listdir(service.directory):
            if name.startswith("faults.sqlite"):
                os.remove(os.path.join(service.directory, name))
        readiness, answered_in = None, None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and readiness != 503:
            began = time.monotonic()
            readiness = service.request("GET", "/readyz", timeout=5)[0]
            answered_in = time.monotonic() - began
            time.sleep(0.2)
        write = service.request("POST", "/v1/canaries/test/podinfo/gates/rollout/open",
                                json.dumps({"reason": "after"}))[0]
        # Only a restart mends it: liveness fails, so the orchestrator restarts the service.
        liveness = service.request("GET", "/healthz", timeout=5)[0]
        with open(service.log) as log:
            said = [json.loads(line)["message"] for line in log if line.startswith("{")
                    and json.loads(line).get("level") in ("error", "critical")]
        ok = readiness == 503 and write == 503 and liveness == 503 and bool(said)
        print(f"| deleted | the database file removed under the running service | /readyz {readiness} "
              f"(answered in {answered_in * 1000:.0f} ms); /healthz {liveness}; a write {write}; log: {said[:1]} "
              f"| {verdict(ok)} |")
        return ok
    finally:
        service.remove()


def attack_kill9(binary, rounds=5):
    directory = tempfile.mkdtemp(prefix="gatehouse-faults-")
    acknowledged, lost = 0, 0
    try:
        for round_number in range(rounds):
            service = Service(binary, directory=directory)
            service.start()
            acked = []
            lock = threading.Lock()
            stop = threading.Event()

            def writer(worker):
                connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
                index = 0
                while not stop.is_set():
                    reason = f"r{round_number}-w{worker}-{index}"
                    try:
                        status = service.request("POST", f"/v1/canaries/kill/app-{worker}/gates/rollout/open",
                                                 json.dumps({"reason": reason}), connection=connection)[0]
                    except (OSError, http.client.HTTPException):
                        return
                    if status == 200:
                        with lock:
                            acked.append(reason)
                    index += 1
            threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(8)]
            for thread in threads:
                thread.start()
            time.sleep(2)
            service.stop(kill=True)
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            stored = set(row[0] for row in sqlite3.connect(service.database).execute(
                "SELECT reason FROM audit WHERE action = 'opened'"))
            acknowledged += len(acked)
            lost += sum(1 for reason in acked if reason not in stored)
        ok = lost == 0 and acknowledged > 0
        print(f"| kill9 | {rounds} rounds of 8 writers, SIGKILL mid-write | {lost} of {acknowledged:,} "
              f"acknowledged opens lost | {verdict(ok)} |")
        return ok
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def attack_audit(binary, rows=1_000_000):
    service = Service(binary)
    service.start()
    service.stop()
    database = sqlite3.connect(service.database)
    base = time.time() - 30 * 86400
    database.executemany(
        "INSERT INTO audit (at, namespace, name, gate, action, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(base + i)) + ".000", f"ns-{i % 100}",
          f"app-{i % 1000}", "promotion", "opened", "bulk", f"row {i}") for i in range(rows)))
    database.commit()
    database.close()
    try:
        startup = service.start()
        rss = rss_mib(service.process.pid)

        def timed(path):
            began = time.monotonic()
            status, body = service.request("GET", path, timeout=60)
            return status, (time.monotonic() - began) * 1000
        page = timed("/v1/events?limit=500")
        deep = timed(f"/v1/events?limit=500&before={rows // 2}")
        filtered = timed("/v1/events?limit=50&namespace=ns-7")
        canary = timed("/v1/canaries/ns-7/app-7/events?limit=50")
        metrics = timed("/metrics")
        ok = all(status == 200 for status, _ in (page, deep, filtered, canary, metrics))
        print(f"| audit | {rows:,} audit rows | start-up {startup:.2f} s; RSS {rss:.1f} MiB; newest page of 500 "
              f"{page[1]:.0f} ms; a page from the middle {deep[1]:.0f} ms; one namespace {filtered[1]:.0f} ms; "
              f"one canary {canary[1]:.0f} ms; /metrics {metrics[1]:.0f} ms | {verdict(ok)} |")
        return ok
    finally:
        service.remove()


def attack_stalled_log(binary, changes=4_000):
    # The log goes to a pipe nobody reads: it fills after a few hundred lines, and every change logs one.
    read_end, write_end = os.pipe()
    service = Service(binary, stdout=write_end)
    try:
        service.start()
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        answered, health, errors = 0, [], 0
        for index in range(changes):
            verb = "open" if index % 2 == 0 else "close"
            try:
                status = service.request("POST", f"/v1/canaries/prod/app-{index % 50}/gates/promotion/{verb}", "{}",
                                         connection=connection)[0]
                answered += status == 200
            except OSError:
                errors += 1
                connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
            if index % 500 == 0:
                began = time.monotonic()
                health.append((service.request("GET", "/healthz", timeout=5)[0], time.monotonic() - began))
        check = service.request("POST", "/v1/flagger/confirm-promotion", check_body("prod", "app-0"), timeout=5)[0]
        metrics = service.request("GET", "/metrics", timeout=5)[1]
        dropped = next((line.split()[-1] for line in metrics.splitlines()
                        if line.startswith("gatehouse_log_lines_dropped_total")), None)
        ok = answered == changes and errors == 0 and all(status == 200 for status, _ in health) and check in (200, 403)
        print(f"| stalled-log | the log is a pipe nobody reads; {changes:,} gate changes, each logged | "
              f"{answered:,} answered 200; /healthz {len(health)} × {sorted({s for s, _ in health})}, slowest "
              f"{max(t for _, t in health) * 1000:.0f} ms; a check answered {check}; lines dropped so far: {dropped} | "
              f"{verdict(ok)} |")
        return ok
    finally:
        service.remove()
        os.close(read_end)
        os.close(write_end)


ATTACKS = {
    "connections": attack_connections, "slowloris": attack_slowloris, "names": attack_names,
    "deleted": attack_deleted, "kill9": attack_kill9, "audit": attack_audit, "stalled-log": attack_stalled_log,
}


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    names = sys.argv[2:] or list(ATTACKS)
    # The connection flood needs more descriptors on this side than the service is given.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard or (hard == resource.RLIM_INFINITY and soft < 4096):
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    print("| attack | what | measured | held |")
    print("|---|---|---|---|")
    failed = [name for name in names if not ATTACKS[name](binary)]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
