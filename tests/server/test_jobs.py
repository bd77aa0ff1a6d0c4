"""The job-progress flow of seed 002, end to end: a worker pushes progress
0 -> 100 for 50 jobs over plain HTTP while 200 WebSocket clients watch.
Every client must end with every job at 100 and "Completed", and the
progress it saw for each job must never go backwards.

Run as: /usr/bin/python3 test_jobs.py <herald> <source root>
"""
import asyncio
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(__file__))
from herald_client import Client  # noqa: E402
from test_server import Server, http, check, failures  # noqa: E402

JOBS = int(os.environ.get("HERALD_JOBS", "50"))
CLIENTS = int(os.environ.get("HERALD_CLIENTS", "200"))
STEPS = list(range(0, 101, 10))


def worker(server, ids):
    """Pushes progress for every job, eight jobs at a time, then completes them."""
    def run(i):
        vid = ids[i]
        for p in STEPS[:-1]:
            st, r = http(server, "/api/mutation", {"ops": [{"op": "patch", "id": vid, "value": {
                "jobId": f"job-{i}", "progressPercentage": p, "currentStage": "Transcribing",
                "status": "Transcribing", "estimatedCompletionSeconds": 100 - p}}]}, server.key)
            check(st == 200, f"progress push {i} {p}: {st} {r}")
        st, r = http(server, "/api/mutation", {"ops": [{"op": "patch", "id": vid, "value": {
            "status": "Completed", "progressPercentage": 100, "currentStage": "Completed",
            "estimatedCompletionSeconds": 0}}]}, server.key)
        check(st == 200, f"completion {i}")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(run, range(len(ids))))


async def watcher(server, n, ids, ready, done):
    async with server.ws() as ws:
        c = Client(ws)
        seen = {}  # job id -> last progress seen
        seen_changes = []
        backwards = []

        def on_change(sub_id, value, version):
            seen_changes.append(version)
            docs = value if isinstance(value, list) else [value] if value else []
            for d in docs:
                p = d.get("progressPercentage")
                if p is None:
                    continue
                if p < seen.get(d["_id"], -1):
                    backwards.append((d["_id"], seen[d["_id"]], p))
                seen[d["_id"]] = p
        c.on_change = on_change
        r = await c.request({"type": "auth", "token": server.key})
        check(r["type"] == "ack", "watcher auth")
        # Most watch the whole list; some watch one job each, as a job page would.
        if n % 4:
            await c.subscribe("all", {"table": "videos", "index": "by_created_at"})
        else:
            await c.subscribe("one", {"table": "videos", "get": ids[n % len(ids)]})
        ready.release()

        def finished():
            docs = []
            for v in c.results.values():
                docs += v if isinstance(v, list) else [v] if v else []
            return docs and all(d.get("status") == "Completed" and d.get("progressPercentage") == 100
                                for d in docs) and (len(docs) == len(ids) or len(docs) == 1)
        while not finished():
            try:
                await c.pump(timeout=60)
            except asyncio.TimeoutError:
                break
        check(finished(), f"watcher {n} ends with every job Completed at 100")
        check(not backwards, f"watcher {n}: progress went backwards: {backwards[:3]}")
        check(not c.errors, f"watcher {n}: {c.errors[:3]}")
        done.append(len(seen_changes))


async def scenario(server, ids):
    ready = asyncio.Semaphore(0)
    done = []
    tasks = [asyncio.create_task(watcher(server, n, ids, ready, done)) for n in range(CLIENTS)]
    for _ in range(CLIENTS):
        await asyncio.wait_for(ready.acquire(), 120)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, worker, server, ids)
    await asyncio.wait_for(asyncio.gather(*tasks), 300)
    check(len(done) == CLIENTS, f"all {CLIENTS} watchers finished ({len(done)})")
    print(f"changes applied per watcher: min {min(done)}, max {max(done)}", flush=True)


def main():
    herald = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="herald-jobs-")
    server = None
    try:
        server = Server(os.path.join(tmp, "data"))
        ops = [{"op": "insert", "table": "videos", "value": {
            "twitchId": f"tw{i}", "title": f"Stream {i}", "status": "Queued", "createdAt": 1000 + i}}
            for i in range(JOBS)]
        st, r = http(server, "/api/mutation", {"ops": ops}, server.key)
        check(st == 200, f"create jobs: {r}")
        ids = r["value"]
        asyncio.run(scenario(server, ids))
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
    print(f"jobs: {JOBS} jobs, {CLIENTS} watchers: " + ("all passed" if not failures else f"{len(failures)} failures"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
