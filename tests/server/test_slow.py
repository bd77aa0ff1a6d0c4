"""Slow and bad clients: 1,000 clients that subscribe and never read while
a worker pushes large updates. The server's memory must stay bounded (the
per-connection queues stop growing and updates merge), the laggards must
be closed with a reason, and a client that does read must still see every
commit's final state. Also: floods of subscriptions and oversized
messages get errors and the connection lives on.

Run as: /usr/bin/python3 test_slow.py <herald> <source root>
"""
import asyncio
import json
import os
import shutil
import sys
import socket
import tempfile
import time

import websockets

sys.path.insert(0, os.path.dirname(__file__))
from herald_client import Client  # noqa: E402
from test_server import Server, check, failures, http  # noqa: E402

SLOW = int(os.environ.get("HERALD_SLOW_CLIENTS", "1000"))
UPDATES = 200
QUEUE_BOUND = 65536
MAX_BEHIND = 1


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def silent_client(server, query, rcvbuf=None):
    """Connects, subscribes, and never reads again (TCP back-pressure does the rest).
    A small receive buffer makes it a client on a slow link: it fills at once."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.port))
    ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/ws", sock=sock, max_queue=1,
                                  max_size=None, read_limit=2 ** 12, write_limit=2 ** 12)
    await ws.send(json.dumps({"type": "auth", "id": "a", "token": server.key}))
    await ws.send(json.dumps({"type": "sub", "id": "s", "query": query}))
    return ws


async def bad_input(server):
    async with server.ws() as ws:
        c = Client(ws)
        await c.request({"type": "auth", "token": server.key})
        # A message over the limit: an error, and the connection lives on.
        await ws.send("x" * (2 * 1024 * 1024))
        r = await c.pump()
        check(r["type"] == "error" and r["code"] == "LimitExceeded", f"oversized message: {r}")
        # A flood of subscriptions: the ones over the limit are refused.
        codes = {}
        for i in range(1100):
            await ws.send(json.dumps({"type": "sub", "id": f"f{i}", "query": {"table": "videos", "take": 1 + i % 5}}))
        for i in range(1100):
            m = await c.pump()
            codes[m.get("code", m["type"])] = codes.get(m.get("code", m["type"]), 0) + 1
        check(codes.get("result") == 1000 and codes.get("LimitExceeded") == 100, f"subscription flood: {codes}")
        r = await c.request({"type": "ping"})
        check(r["type"] == "pong", "alive after the flood")


async def scenario(server):
    await bad_input(server)
    big = "x" * 2000
    st, r = http(server, "/api/mutation", {"ops": [{"op": "insert", "table": "videos", "value": {
        "twitchId": f"s{i}", "title": big, "status": "Transcribing", "progressPercentage": 0}} for i in range(20)]},
        server.key)
    ids = r["value"]
    query = {"table": "videos", "index": "by_status", "range": [{"eq": ["status", "Transcribing"]}]}
    silent = []
    for i in range(SLOW):
        silent.append(await silent_client(server, query))
    stuck = [await silent_client(server, query, rcvbuf=4096) for _ in range(10)]
    async with server.ws() as ws:
        reader = Client(ws)
        await reader.request({"type": "auth", "token": server.key})
        await reader.subscribe("r", query)
        await asyncio.sleep(1)
        base = rss_kib(server.proc.pid)
        peak = base
        # Each update rewrites a 2 KB field: unbounded queues would hold UPDATES x 2 KB per client.
        for n in range(UPDATES):
            vid = ids[n % len(ids)]
            http(server, "/api/mutation", {"ops": [{"op": "patch", "id": vid, "value": {
                "title": f"{n:05d}" + big, "progressPercentage": n}}]}, server.key)
            peak = max(peak, rss_kib(server.proc.pid))
            while True:  # the reading client keeps up
                try:
                    await reader.pump(timeout=0.001)
                except asyncio.TimeoutError:
                    break
        growth_mib = (peak - base) / 1024
        unbounded_mib = SLOW * UPDATES * 2 / 1024
        print(f"RSS {base // 1024} MiB with {SLOW} silent clients, peak growth {growth_mib:.0f} MiB "
              f"(unbounded queues would need ~{unbounded_mib:.0f} MiB)", flush=True)
        check(growth_mib < SLOW * QUEUE_BOUND * 3 / 2 ** 20 + 64, f"memory bounded: grew {growth_mib:.0f} MiB")
        final = await reader.request({"type": "query", "query": query})
        while reader.results["r"] != final["value"]:
            await reader.pump(timeout=30)
        check(reader.results["r"] == final["value"], "the reading client is current")
    # Clients on a slow link stay behind: while none of them reads (this thread
    # blocks), the server closes them after --max-behind, telling them why.
    time.sleep(3 * MAX_BEHIND)
    reasons = {}

    async def drain(ws):
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as e:
            reason = e.rcvd.reason if e.rcvd else "(none)"
        except asyncio.TimeoutError:
            reason = "still open"
        reasons[reason] = reasons.get(reason, 0) + 1
    await asyncio.gather(*(drain(ws) for ws in stuck))
    print(f"clients on a slow link: {reasons}", flush=True)
    check(reasons and all("behind" in r for r in reasons), f"laggards closed with a reason: {reasons}")
    for ws in silent + stuck:
        ws.transport.abort()


def main():
    # Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
    # default) and would read as growth: measure the server without it.
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
    tmp = tempfile.mkdtemp(prefix="herald-slow-")
    server = None
    try:
        server = Server(os.path.join(tmp, "data"), ["--max-outbound", str(QUEUE_BOUND), "--max-behind", str(MAX_BEHIND),
                                                    "--max-per-address", str(SLOW + 100)])
        asyncio.run(scenario(server))
        check(server.stop() == 0, "clean stop")
    except Exception as e:
        failures.append(repr(e))
        print("FAIL: exception", repr(e))
        if server:
            print("".join(server.lines)[-2000:])
    finally:
        if server and server.proc.poll() is None:
            server.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("slow: all passed" if not failures else f"slow: {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
