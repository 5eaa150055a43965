#!/usr/bin/env python3
"""Replicas on PostgreSQL under faults, run under scripts/with-postgres.sh (its fresh database):

    scripts/with-postgres.sh scripts/pg-faults.py BINARY

- kill9: two replicas, eight writers opening gates through both; one replica is killed with
  SIGKILL mid-write. Every open either replica acknowledged is in the database, and the other
  replica answers every request throughout.
- restart: PostgreSQL itself restarted while Flagger's checks of a closed gate hammer both
  replicas. No check is approved (each is refused or 503), and both replicas answer normally
  again by themselves once the database is back, without being restarted.

Prints one Markdown table row per fault; exit status 1 if any did not hold. Every wait is bounded.
"""
import http.client
import json
import os
import shlex
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faults import Service, verdict  # noqa: E402

URL = os.environ.get("GATEHOUSE_TEST_POSTGRES")


class Replica(Service):
    """One `gatehouse serve` on the shared PostgreSQL database."""

    def __init__(self, binary, directory):
        super().__init__(binary, directory=directory)
        self.database = URL
        self.log = os.path.join(directory, f"replica-{self.port}.log")


def psql(query):
    result = subprocess.run(["psql", URL, "-At", "-c", query], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise SystemExit(f"psql: {result.stderr}")
    return result.stdout.splitlines()


def hammer(replicas, path_for, body_for, seconds, stop_early=None):
    """Eight workers, alternating between the replicas, for `seconds`; returns every (replica, body, status)."""
    results, lock, stop = [], threading.Lock(), threading.Event()

    def worker(number):
        replica = replicas[number % len(replicas)]
        connection = http.client.HTTPConnection("127.0.0.1", replica.port, timeout=10)
        index = 0
        while not stop.is_set():
            body = body_for(number, index)
            try:
                status = replica.request("POST", path_for(number), body, connection=connection)[0]
            except (OSError, http.client.HTTPException):
                status = None
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", replica.port, timeout=10)
                if not replica.alive():
                    return
                time.sleep(0.05)
            with lock:
                results.append((replica, body, status))
            index += 1

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop_early:
            stop_early()
            stop_early = None
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return results


def fault_kill9(binary, directory):
    a, b = Replica(binary, directory), Replica(binary, directory)
    a.start()
    b.start()
    try:
        def kill_a_later():
            time.sleep(2)
            a.stop(kill=True)
        killer = threading.Thread(target=kill_a_later)
        killer.start()
        results = hammer(
            [a, b], lambda number: f"/v1/canaries/kill/app-{number}/gates/rollout/open",
            lambda number, index: json.dumps({"reason": f"w{number}-{index}"}), seconds=4)
        killer.join(timeout=30)
        acknowledged = {body for _, body, status in results if status == 200}
        stored = {json.dumps({"reason": reason}) for reason in psql(
            "SELECT reason FROM audit WHERE action = 'opened' AND namespace = 'kill'")}
        lost = len(acknowledged - stored)
        on_b = [status for replica, _, status in results if replica is b]
        b_failed = sum(1 for status in on_b if status != 200)
        ok = lost == 0 and len(acknowledged) > 0 and b_failed == 0 and b.alive()
        print(f"| kill9 | 2 replicas, 8 writers, SIGKILL of one mid-write | {lost} of {len(acknowledged):,} "
              f"acknowledged opens lost; the other answered {len(on_b):,} requests, {b_failed} not 200 | {verdict(ok)} |")
        return ok
    finally:
        a.stop()
        b.stop()


def fault_restart(binary, directory):
    control = shlex.split(os.environ["GATEHOUSE_TEST_POSTGRES_CTL"])
    data = os.environ["GATEHOUSE_TEST_POSTGRES_DATA"]
    a, b = Replica(binary, directory), Replica(binary, directory)
    a.start()
    b.start()
    check = json.dumps({"name": "held", "namespace": "restart", "phase": "Progressing", "checksum": "c1"})
    try:
        def restart():
            time.sleep(1)
            subprocess.run([*control, "-D", data, "-m", "fast", "-w", "-t", "60",
                            "-l", os.path.join(os.path.dirname(data), "server.log"), "restart"],
                           check=True, capture_output=True, timeout=90)
        results = hammer([a, b], lambda _: "/v1/flagger/confirm-promotion", lambda *_: check, seconds=6,
                         stop_early=lambda: threading.Thread(target=restart).start())
        statuses = [status for _, _, status in results]
        approved = statuses.count(200)
        unavailable = statuses.count(503)
        # Back by themselves: each replica refuses the closed gate (403) again, then approves once opened.
        recovered = True
        for replica in (a, b):
            deadline = time.monotonic() + 60
            status = None
            while time.monotonic() < deadline:
                status = replica.request("POST", "/v1/flagger/confirm-promotion", check)[0]
                if status == 403:
                    break
                time.sleep(0.2)
            recovered = recovered and status == 403
        opened = a.request("POST", "/v1/canaries/restart/held/gates/promotion/open", json.dumps({"sticky": True}))[0]
        after = b.request("POST", "/v1/flagger/confirm-promotion", check)[0]
        ok = approved == 0 and recovered and opened == 200 and after == 200
        print(f"| restart | PostgreSQL restarted under 8 checkers of a closed gate | {len(statuses):,} checks: "
              f"{approved} approved, {unavailable:,} answered 503; recovered without a restart: "
              f"{'yes' if recovered and after == 200 else 'no'} | {verdict(ok)} |")
        return ok
    finally:
        a.stop()
        b.stop()


def main():
    if len(sys.argv) != 2 or not URL:
        raise SystemExit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    directory = subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip()
    print("| fault | what | measured | held |")
    print("|---|---|---|---|")
    results = [fault(binary, directory) for fault in (fault_kill9, fault_restart)]
    if not all(results):
        for name in sorted(os.listdir(directory)):
            print(f"--- {name}")
            with open(os.path.join(directory, name)) as handle:
                print(handle.read()[-4000:])
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
