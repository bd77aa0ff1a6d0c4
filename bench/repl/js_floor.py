"""The floor under Herald's append (bench/repl/run.sh, docs/performance.md
"Replication"): a JetStream publish acknowledged by a stream kept on three
nats-servers on loopback, one at a time, as Herald's writer appends one
group after another. Starts its own cluster (tests/server/nats_cluster.py),
makes a stream with 3 copies (file storage, as Herald's), publishes --count
messages of --size bytes, each waiting for its acknowledgement, and prints
the round trip's p50 / p99 / max, the rate and the three servers' CPU time
per publish, then stops the cluster.

    python3 bench/repl/js_floor.py [--count 5000] [--size 200] [--copies 3]

Python's own cost per publish (~20-40 us here) is inside the figure.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "server"))
import nats_cluster  # noqa: E402


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--copies", type=int, default=3)
    a = ap.parse_args()
    with nats_cluster.NatsCluster(3) as cluster:
        client = nats_cluster.NatsClient(cluster.servers[0].url())
        r = client.request("$JS.API.STREAM.CREATE.FLOOR", {
            "name": "FLOOR", "subjects": ["floor.log"], "num_replicas": a.copies, "storage": "file"})
        if "error" in r:
            raise SystemExit(f"stream: {r}")
        payload = b"x" * a.size
        for _ in range(200):  # warm-up
            client.request("floor.log", payload)
        rtt = []
        pids = [s.proc.pid for s in cluster.servers]
        cpu0 = sum(cpu_seconds(p) for p in pids)
        t0 = time.perf_counter()
        for _ in range(a.count):
            t = time.perf_counter()
            ack = client.request("floor.log", payload)
            rtt.append((time.perf_counter() - t) * 1000)
            if "seq" not in ack:
                raise SystemExit(f"publish: {ack}")
        secs = time.perf_counter() - t0
        nats_cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        client.close()
    rtt.sort()
    pct = lambda p: rtt[min(len(rtt) - 1, max(0, int(p / 100 * len(rtt) + 0.999) - 1))]
    out = {"copies": a.copies, "count": a.count, "size": a.size, "p50": pct(50), "p99": pct(99),
           "max": rtt[-1], "per_s": a.count / secs,
           "nats_cpu_ms_per_publish": 1000 * nats_cpu / a.count}
    print(f"JetStream publish with ack, {a.copies} copies, {a.size} bytes, one at a time: "
          f"p50 {out['p50']:.3f} ms, p99 {out['p99']:.3f} ms, max {out['max']:.2f} ms, {out['per_s']:.0f}/s; "
          f"the three servers' CPU {out['nats_cpu_ms_per_publish']:.3f} ms per publish")
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
