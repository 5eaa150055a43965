#!/usr/bin/env python3
"""Scale and abuse figures for a built gatehouse binary, on 127.0.0.1 only.

    scripts/scale.py BINARY [CANARIES ...]

For each count: a fresh database, that many canaries made known by unauthenticated checks
(8 keep-alive connections), then: resident memory, database size, the time of a /metrics scrape,
the p50/p99 of checks answered while scrapes run, the first page of GET /v1/canaries, and the
start-up time on the full database. Every request loop is bounded; the server is stopped at the end.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, database, port):
    started = time.monotonic()
    process = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--database", database,
         "--log-level", "warning", "--max-canaries", "1000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return process, time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the server did not become ready")


def check_body(name):
    return json.dumps({"name": name, "namespace": "scale", "phase": "Progressing", "checksum": "c1"})


def make_canaries(port, count, workers=8):
    def work(start):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for index in range(start, count, workers):
            connection.request("POST", "/v1/flagger/confirm-promotion", body=check_body(f"app-{index:06d}"))
            connection.getresponse().read()
    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(workers)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / (time.monotonic() - began)


def timed_get(port, path, timeout=600):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    began = time.monotonic()
    connection.request("GET", path)
    body = connection.getresponse().read()
    return time.monotonic() - began, len(body)


def checks_during_scrapes(port, scrapes=3, checks=300):
    """Check latencies while /metrics is scraped again and again (with no scrapes: the baseline)."""
    done = threading.Event()

    def scrape():
        for _ in range(scrapes):
            timed_get(port, "/metrics")
        done.set()
    thread = threading.Thread(target=scrape)
    thread.start()
    latencies = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while len(latencies) < checks and not (scrapes and done.is_set() and len(latencies) >= 50):
        began = time.monotonic()
        connection.request("POST", "/v1/flagger/confirm-promotion", body=check_body("app-000001"))
        connection.getresponse().read()
        latencies.append(time.monotonic() - began)
    thread.join()
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    binary = sys.argv[1]
    counts = [int(text) for text in sys.argv[2:]] or [10_000]
    print("| canaries | made per s | RSS MiB | database MiB | /metrics s (KiB) | check p50 / p99 ms, no scrape "
          "| check p50 / p99 ms during scrapes | first page of /v1/canaries s | start-up s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for count in counts:
        directory = tempfile.mkdtemp(prefix="gatehouse-scale-")
        database = os.path.join(directory, "scale.sqlite")
        port = free_port()
        process, _ = start(binary, database, port)
        try:
            rate = make_canaries(port, count)
            scrape, size = timed_get(port, "/metrics")
            quiet50, quiet99 = checks_during_scrapes(port, scrapes=0)
            p50, p99 = checks_during_scrapes(port)
            page, _ = timed_get(port, "/v1/canaries")
            rss = rss_mib(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        database_mib = sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory)) / 2**20
        process, startup = start(binary, database, port)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        shutil.rmtree(directory, ignore_errors=True)
        print(f"| {count} | {rate:.0f} | {rss:.1f} | {database_mib:.1f} | {scrape:.3f} ({size // 1024}) "
              f"| {quiet50 * 1000:.2f} / {quiet99 * 1000:.2f} | {p50 * 1000:.2f} / {p99 * 1000:.2f} | {page:.3f} "
              f"| {startup:.2f} |")


if __name__ == "__main__":
    main()
