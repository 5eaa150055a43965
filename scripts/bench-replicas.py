#!/usr/bin/env python3
"""Two replicas on one PostgreSQL answering Flagger's checks of 100,000 canaries, paced at a rate
(1,700 checks/s by default: 100,000 canaries at Flagger's 60 s interval), run by scripts/bench.sh
under scripts/with-postgres.sh on its fresh database:

    scripts/with-postgres.sh scripts/bench-replicas.py BINARY [SECONDS] [RATE] [CANARIES]

The canaries are seeded the way a fleet in mid-rollout looks: one canary is taken through real
checks by the service (its promotion gate open, a rollout in progress), then its rows are copied
under CANARIES names, and the replicas start on that. Both replicas and the database's processes
run on core 0, the load (one wrk per replica, each checking canaries at random, paced with wrk's
`delay()`) on core 1. Prints one Markdown table row: the rate reached, the share of 200s, p99 and
worst latency over both replicas, and the CPU time per check of both replicas and the database
together. Exit status 1 if a check was not answered 200.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faults import Service  # noqa: E402

URL = os.environ.get("GATEHOUSE_TEST_POSTGRES")
SERVER_CORE, LOAD_CORE = "0", "1"


def psql(query):
    result = subprocess.run(["psql", URL, "-At", "-c", query], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"psql: {result.stderr}")
    return result.stdout.splitlines()


class Replica(Service):
    def __init__(self, binary, directory):
        super().__init__(binary, "--log-level", "warning", directory=directory)
        self.database = URL
        self.log = os.path.join(directory, f"replica-{self.port}.log")

    def start(self):
        began = super().start()
        subprocess.run(["taskset", "-pc", SERVER_CORE, str(self.process.pid)], check=True, capture_output=True)
        # Threads started before the call keep their core: pin every one of them.
        for task in os.listdir(f"/proc/{self.process.pid}/task"):
            subprocess.run(["taskset", "-pc", SERVER_CORE, task], capture_output=True)
        return began


def ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def database_pids():
    with open(os.path.join(os.environ["GATEHOUSE_TEST_POSTGRES_DATA"], "postmaster.pid")) as handle:
        postmaster = handle.readline().strip()
    children = subprocess.run(["pgrep", "-P", postmaster], capture_output=True, text=True).stdout.split()
    return [int(postmaster)] + [int(child) for child in children]


def seed(binary, directory, canaries):
    """One canary taken into a rollout by real checks, then its rows copied under `canaries` names."""
    service = Replica(binary, directory)
    service.start()
    check = '{"name": "app-0", "namespace": "scale", "phase": "Progressing", "checksum": "c1"}'
    try:
        assert service.request("POST", "/v1/canaries/scale/app-0/gates/promotion/open", '{"sticky": true}')[0] == 200
        for _ in range(3):
            answer = service.request("POST", "/v1/flagger/confirm-promotion", check)
            assert answer[0] == 200, answer
    finally:
        service.stop()
    for table in ("canary", "gate"):
        columns = psql(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' "
                       "AND column_name <> 'name' ORDER BY ordinal_position")
        listed = ", ".join(columns)
        psql(f"INSERT INTO {table} (name, {listed}) SELECT 'app-' || n, {listed} FROM {table}, "
             f"generate_series(1, {canaries - 1}) AS n WHERE name = 'app-0'")
    psql("ANALYZE")


def main():
    if len(sys.argv) < 2 or not URL:
        raise SystemExit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 1700
    canaries = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
    directory = tempfile.mkdtemp(prefix="gatehouse-bench-replicas-")
    seed(binary, directory, canaries)
    for pid in database_pids():
        subprocess.run(["taskset", "-pc", SERVER_CORE, str(pid)], capture_output=True)
    replicas = [Replica(binary, directory), Replica(binary, directory)]
    for replica in replicas:
        replica.start()
    connections = 32
    # Each connection waits this long before each request (less what an answer and wrk's own turn
    # take, about 3 ms here): together they send about `rate` a second; the rate reached is printed.
    delay_ms = 2 * connections * 1000 / rate - 3
    script = os.path.join(directory, "checks.lua")
    with open(script, "w") as handle:
        handle.write(f"""
math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16))
function delay() return {delay_ms:.3f} end
function request()
  local n = math.random(0, {canaries - 1})
  local body = '{{"name": "app-' .. n .. '", "namespace": "scale", "phase": "Progressing", "checksum": "c1"}}'
  return wrk.format("POST", "/v1/flagger/confirm-promotion", {{["Content-Type"] = "application/json"}}, body)
end
""")
    try:
        watched = [replica.process.pid for replica in replicas] + database_pids()
        before = ticks(watched)
        replicas_before = ticks(watched[:2])
        loads = [subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
             f"http://127.0.0.1:{replica.port}"], stdout=subprocess.PIPE, text=True) for replica in replicas]
        profile = os.environ.get("BENCH_PROFILE")  # a perf.data path: the first replica is profiled
        if profile:
            subprocess.run(["perf", "record", "-F", "1000", "-g", "-p", str(replicas[0].process.pid), "-o", profile,
                            "--", "sleep", str(max(1, seconds - 4))], capture_output=True)
        outputs = [load.communicate(timeout=seconds + 60)[0] for load in loads]
        if os.environ.get("BENCH_VERBOSE"):
            print(*outputs, sep="\n")
        used = ticks(watched) - before
        used_by_replicas = ticks(watched[:2]) - replicas_before
    finally:
        for replica in replicas:
            replica.stop()
    requests = non_ok = 0
    p99 = worst = 0.0
    for output in outputs:
        requests += int(re.search(r"(\d+) requests in", output).group(1))
        found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        non_ok += int(found.group(1)) if found else 0
        p99 = max(p99, milliseconds(re.search(r"99%\s+(\S+)", output).group(1)))
        worst = max(worst, milliseconds(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", output).group(1)))
    cpu = used / os.sysconf("SC_CLK_TCK") * 1e6 / max(requests, 1)
    replicas_cpu = used_by_replicas / os.sysconf("SC_CLK_TCK") * 1e6 / max(requests, 1)
    print(f"| two replicas, {canaries:,} canaries, paced at {rate:,} checks/s | {requests / seconds:,.0f} | "
          f"{cpu:.1f} µs ({replicas_cpu:.1f} µs in the replicas) | {p99:.2f} ms (worst {worst:.2f} ms) | {requests - non_ok:,} of {requests:,} answered 200 |")
    sys.exit(0 if non_ok == 0 else 1)


def milliseconds(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


if __name__ == "__main__":
    main()
