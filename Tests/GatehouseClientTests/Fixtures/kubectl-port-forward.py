#!/usr/bin/env python3
"""Stands in for `kubectl port-forward` where no cluster is reachable: records the arguments it was
given (to $FORWARD_RECORD), listens on 127.0.0.1 on a port of its own, says so as kubectl does
("Forwarding from 127.0.0.1:PORT -> 8080"), and relays every connection to $FORWARD_TARGET
(host:port), the live service the test runs. It ends when it is told to (SIGTERM), as kubectl does.
"""

import json
import os
import socket
import sys
import threading


def relay(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    with open(os.environ["FORWARD_RECORD"], "w") as record:
        json.dump({"arguments": sys.argv[1:], "pid": os.getpid()}, record)
    host, port = os.environ["FORWARD_TARGET"].rsplit(":", 1)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print("Forwarding from 127.0.0.1:%d -> 8080" % listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection((host, int(port)))
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
        threading.Thread(target=relay, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    main()
