#!/usr/bin/env python3
"""Replicas on PostgreSQL under faults, run under scripts/with-postgres.sh (its fresh database):

    scripts/with-postgres.sh scripts/pg-faults.py BINARY

- kill9: two replicas, eight writers opening gates through both; one replica is killed with
  SIGKILL mid-write. Every open either replica acknowledged is in the database, and the other
  replica answers every request throughout.
- restart: PostgreSQL itself restarted while Flagger's checks of a closed gate hammer both
  replicas. No check is approved (each is refused or 503), and both replicas answer normally
  again by themselves once the database is back, without being restarted.
- linearizable: eight callers, each owning a canary, open or close its promotion gate through a
  replica chosen at random and, once that is acknowledged, send Flagger's check to the other:
  thousands of times, while PostgreSQL is paused (SIGSTOP) for three seconds and later restarted.
  No check answers from before an acknowledged change (200 for a closed gate, 403 for an open
  one); while the database cannot answer, checks fail closed (503); a change that was not
  acknowledged is not counted on (it may or may not have committed) until the next one is.

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


def restart_postgres():
    """Restarts the throwaway server of scripts/with-postgres.sh (a fast shutdown), waiting until it answers."""
    data = os.environ["GATEHOUSE_TEST_POSTGRES_DATA"]
    subprocess.run([*shlex.split(os.environ["GATEHOUSE_TEST_POSTGRES_CTL"]), "-D", data, "-m", "fast", "-w", "-t", "60",
                    "-l", os.path.join(os.path.dirname(data), "server.log"), "restart"],
                   check=True, capture_output=True, timeout=90)


def fault_restart(binary, directory):
    a, b = Replica(binary, directory), Replica(binary, directory)
    a.start()
    b.start()
    check = json.dumps({"name": "held", "namespace": "restart", "phase": "Progressing", "checksum": "c1"})
    try:
        def restart():
            time.sleep(1)
            restart_postgres()
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


def postgres_processes():
    """The server's process ids: the postmaster (from its pid file) and its children."""
    data = os.environ["GATEHOUSE_TEST_POSTGRES_DATA"]
    with open(os.path.join(data, "postmaster.pid")) as handle:
        postmaster = handle.readline().strip()
    children = subprocess.run(["pgrep", "-P", postmaster], capture_output=True, text=True).stdout.split()
    return [int(postmaster)] + [int(child) for child in children]


def fault_linearizable(binary, directory):
    a, b = Replica(binary, directory), Replica(binary, directory)
    a.start()
    b.start()
    replicas = [a, b]
    lock, stop = threading.Lock(), threading.Event()
    tally = {"changes": 0, "unacknowledged": 0, "checks": 0, "stale": 0, "closed": 0, "examples": []}

    def worker(number):
        random = __import__("random").Random(number)
        connections = [http.client.HTTPConnection("127.0.0.1", r.port, timeout=15) for r in replicas]
        known = None  # whether the gate is open, as last acknowledged; None while a change is in doubt
        path = f"/v1/canaries/linear/app-{number}/gates/promotion/"
        check = json.dumps({"name": f"app-{number}", "namespace": "linear", "phase": "Progressing",
                            "checksum": "c1"})
        while not stop.is_set():
            through = random.randrange(2)
            opening = random.random() < 0.5
            body = json.dumps({"sticky": True}) if opening else "{}"
            try:
                status = replicas[through].request("POST", path + ("open" if opening else "close"), body,
                                                   connection=connections[through])[0]
            except (OSError, http.client.HTTPException):
                connections[through].close()
                status = None
            known = opening if status == 200 else None
            try:
                answer = replicas[1 - through].request("POST", "/v1/flagger/confirm-promotion", check,
                                                       connection=connections[1 - through])[0]
            except (OSError, http.client.HTTPException) as error:
                connections[1 - through].close()
                answer = type(error).__name__
            with lock:
                tally["changes"] += 1
                tally["unacknowledged"] += status != 200
                if known is None:
                    continue
                tally["checks"] += 1
                tally["closed"] += answer == 503
                if answer not in (503, 200 if known else 403):
                    tally["stale"] += 1
                    if len(tally["examples"]) < 5:
                        tally["examples"].append(f"app-{number}: {'opened' if known else 'closed'} through "
                                                 f"{'AB'[through]}, then {answer} from {'AB'[1 - through]}")

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(3)
        paused = postgres_processes()
        for pid in paused:
            os.kill(pid, 19)  # SIGSTOP
        time.sleep(3)
        for pid in paused:
            os.kill(pid, 18)  # SIGCONT
        time.sleep(3)
        restart_postgres()
        # Then on until a thousand checks followed an acknowledged change (a debug build is slow), at most a minute.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if tally["checks"] >= 1000:
                    break
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        a.stop()
        b.stop()
    ok = tally["stale"] == 0 and tally["checks"] >= 1000 and not any(thread.is_alive() for thread in threads)
    print(f"| linearizable | 8 callers: a change through one replica, then Flagger's check on the other; "
          f"PostgreSQL paused 3 s, then restarted | {tally['checks']:,} checks after an acknowledged change: "
          f"{tally['stale']} stale, {tally['closed']:,} failed closed (503); {tally['unacknowledged']:,} of "
          f"{tally['changes']:,} changes not acknowledged | {verdict(ok)} |")
    for example in tally["examples"]:
        print(f"  stale: {example}")
    return ok


def main():
    if len(sys.argv) != 2 or not URL:
        raise SystemExit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    directory = subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip()
    print("| fault | what | measured | held |")
    print("|---|---|---|---|")
    results = [fault(binary, directory) for fault in (fault_kill9, fault_restart, fault_linearizable)]
    if not all(results):
        for name in sorted(os.listdir(directory)):
            print(f"--- {name}")
            with open(os.path.join(directory, name)) as handle:
                print(handle.read()[-4000:])
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
