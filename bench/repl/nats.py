"""Holds a NATS cluster for Herald's replication benchmarks (bench/repl/run.sh):
three nats-server processes with JetStream clustered on loopback, through
tests/server/nats_cluster.py, each in its own folder under a temporary one.

    python3 bench/repl/nats.py [--servers 3] [--dir PARENT]

Prints one line, the servers' URLs (comma-separated), once JetStream has a
meta leader; stops the servers and removes their folders when its standard
input closes or on SIGTERM / SIGINT. Optional: --core CPU pins the servers
(taskset) to one CPU list.
"""
import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "server"))
import nats_cluster  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--core", default=None)
    a = ap.parse_args()
    if a.core:
        os.sched_setaffinity(0, {int(c) for c in a.core.split(",")})  # children inherit it
    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    cluster = nats_cluster.NatsCluster(a.servers, a.dir)
    try:
        pids = ",".join(str(s.proc.pid) for s in cluster.servers)
        print(f"{cluster.urls()} {pids}", flush=True)
        try:
            sys.stdin.read()
        except KeyboardInterrupt:
            pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
