"""Black-box tests of replication over NATS JetStream (docs/replication.md):
Herald nodes, each with its own data folder, on a cluster of three
`nats-server`s with JetStream (nats_cluster.py), everything on loopback in
temporary folders. Every node runs the same small app: a table `events`
({n, worker}, index by_n), the mutations `events:add` and `events:bulk`
(many events at once) and the query `events:list` (every event, by n).

a) Fan-out: two clients subscribed to events:list on two replicas while a
   worker writes 200 events, most through the primary and some through a
   replica, forwarded: over HTTP, read back at once on that replica, and
   over the subscribed WebSocket, whose ack must come after the update that
   holds the write (read your writes). Each subscriber's versions only
   grow, each value it holds is exactly the events acknowledged up to its
   version (no write missed, none seen early), and its last value equals a
   fresh query on every node.
b) Failover: kill -9 the primary under a steady stream of mutations, each
   with its own n and idempotency key, retried with the same key until
   acknowledged; a replica takes the lease and the writers go on; a client
   subscribed on the primary reconnects to a replica and ends up with the
   same result; the old primary, started again, follows as a replica and
   catches up; only the primary answers forwarded writes. Every
   acknowledged n is there exactly once, no n twice; `herald check` passes
   on every node and all nodes' exports are equal.
c) NATS: kill the NATS server that leads the replication stream: writes are
   still acknowledged; start it again: writes go on, its copy of the stream
   catches up, and with another NATS server killed after that, writes are
   still acknowledged (the restarted one is part of the quorum again).
d) Catching up: a replica stopped while 400 groups commit catches up when
   started; a new replica started while the primary writes (and publishes a
   snapshot every 50 groups) starts from a snapshot and catches up. With
   --stream-retain 50 and --snapshot-every 20, a replica stopped while 120
   groups commit is past the stream's retention: it starts again from a
   snapshot and ends with the primary's data.
e) Two primaries: a second node started with --role primary while the first
   holds the lease never becomes primary; messages on the subject of
   forwarded writes that are not writes are answered, and the primary lives
   on. Fencing: the primary, busy with a writer, is stopped (SIGSTOP) past
   its lease; a replica takes over and commits; the old primary is woken
   with mutations already waiting in its socket. A refusal that does not
   say the write may have been applied must mean it was not; afterwards one
   node answers forwarded writes, both nodes hold the same data, every
   acknowledged write once, and pass `herald check`.
Large groups: on NATS servers with their default max_payload (1 MB), groups
   of 13 MB and 2.7 MB (appended in pieces) reach a replica and a new one.

Every node stopped by a test must exit with status 0 (a sanitizer's report
fails the run). HERALD_REPL_ONLY=name,name runs only those scenarios (the
names at the bottom). Skipped (exit 77) when nats-server is not installed.

Run as: /usr/bin/python3 test_replication.py <herald> <source root>
"""
import asyncio
import collections
import glob
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herald_testlib  # noqa: E402
from herald_client import Client  # noqa: E402
from herald_testlib import admin_key, check, finish, free_port, write_app  # noqa: E402
from nats_cluster import NATS_SERVER, NatsClient, NatsCluster  # noqa: E402

HERALD = sys.argv[1] if len(sys.argv) > 1 else None

LEASE = 2  # seconds; the takeovers below wait a few leases at most
WAIT = 30  # seconds: the longest any single wait below may take

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  events: defineTable({ n: v.number(), worker: v.string() }).index("by_n", ["n"]),
});
"""

EVENTS = r'''
local M = {}
M.add = herald.mutation{args = {n = v.number(), worker = v.string()}, handler = function(ctx, a)
  return ctx.db:insert("events", {n = a.n, worker = a.worker})
end}
M.bulk = herald.mutation{args = {from = v.number(), count = v.number(), size = v.number()},
                         handler = function(ctx, a)
  local pad = string.rep("w", a.size)
  for i = 0, a.count - 1 do ctx.db:insert("events", {n = a.from + i, worker = pad}) end
  return a.count
end}
M.list = herald.query{handler = function(ctx)
  return ctx.db:query("events"):withIndex("by_n"):collect()
end}
return M
'''


# ---- HTTP ----------------------------------------------------------------------------

def fetch(req, timeout):
    """Opens `req` (a URL or a Request): (HTTP status, decoded JSON reply), or
    (None, {"error": ...}) when the node does not answer (down, killed mid-request)."""
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {}
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        return None, {"error": repr(e)}


def post(port, endpoint, body, timeout=WAIT):
    """POSTs JSON to /api/<endpoint> on 127.0.0.1:port."""
    return fetch(urllib.request.Request(f"http://127.0.0.1:{port}/api/{endpoint}",
                                        data=json.dumps(body).encode(), method="POST",
                                        headers={"Content-Type": "application/json"}), timeout)


def wait_until(cond, seconds=WAIT, step=0.05):
    """Polls `cond` until it returns something true or `seconds` pass; returns its last answer."""
    end = time.time() + seconds
    while True:
        got = cond()
        if got or time.time() >= end:
            return got
        time.sleep(step)


# ---- Herald nodes ----------------------------------------------------------------------

class Node:
    """One `herald serve --replicate` process: its own data folder and port, kept
    across restarts; output collected by a thread."""

    def __init__(self, scene, name, role="auto", extra=()):
        self.scene, self.name, self.role, self.extra = scene, name, role, list(extra)
        self.folder = os.path.join(scene.dir, name)
        self.data = os.path.join(self.folder, "data")
        os.makedirs(self.folder)
        self.port = free_port()
        self.proc = None
        self.lines = []
        self.starts = 0
        self.stopped = False  # SIGSTOPped
        self.killed = False  # SIGKILLed by the test: its exit status says nothing
        self.may_exit = False  # a start the test expects to end by itself
        self.reaped = True  # the last process ended and its exit was judged

    def argv(self):
        return [HERALD, "--data", self.data, "--app", self.scene.app, "--no-sync", "serve",
                "--port", str(self.port), "--replicate", self.scene.nats.urls(),
                "--node", self.name, "--cluster", self.scene.cluster, "--role", self.role,
                "--lease", str(LEASE), *self.extra]

    def start(self, wait=True):
        """Starts the node; with `wait`, returns once it listens ("listening"), or has
        exited ("exited"), or neither after WAIT seconds ("waiting")."""
        self.starts += 1
        self.killed = self.may_exit = self.reaped = False
        self.lines.append(f"==== start {self.starts}: {' '.join(self.argv()[1:])}\n")
        self.listening = threading.Event()
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     text=True, errors="replace")
        proc, listening = self.proc, self.listening

        def read():
            for line in proc.stdout:
                self.lines.append(line)
                if "listening on" in line:
                    listening.set()
        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not wait:
            return None
        return self.wait_started()

    def wait_started(self, seconds=WAIT):
        got = wait_until(lambda: self.listening.is_set() or self.proc.poll() is not None, seconds)
        if self.listening.is_set():
            return "listening"
        return "exited" if got else "waiting"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self, since_start=None):
        text = "".join(self.lines)
        if since_start is not None:
            text = text.split(f"==== start {since_start}:", 1)[-1]
        return text

    def key(self):
        return admin_key(self.data)

    def health(self):
        """The "replication" object of GET /healthz, or None."""
        if not self.running() or self.stopped:
            return None
        _, body = fetch(f"http://127.0.0.1:{self.port}/healthz", 2)
        return body.get("replication") if isinstance(body, dict) else None

    def role_now(self):
        return (self.health() or {}).get("role")

    def wait_role(self, role, seconds=WAIT):
        return wait_until(lambda: self.role_now() == role, seconds, 0.1)

    def mutate(self, n, worker, key=None, timeout=WAIT):
        body = {"path": "events:add", "args": {"n": n, "worker": worker}}
        if key is not None:
            body["idempotencyKey"] = key
        return post(self.port, "mutation", body, timeout)

    def mutate_bulk(self, start, count, size):
        """events:bulk: `count` events from n = `start` in one mutation, `size` bytes each."""
        return post(self.port, "mutation", {"path": "events:bulk",
                                            "args": {"from": start, "count": count, "size": size}})

    def events(self):
        """events:list on this node: the list of documents, or None when it fails."""
        status, reply = post(self.port, "query", {"path": "events:list", "args": {}})
        return reply.get("value") if status == 200 else None

    def signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)
            self.stopped = sig == signal.SIGSTOP

    def kill(self):
        """SIGKILL: no goodbye, no lease given back."""
        if self.proc is not None:
            if self.running():
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            self.proc.wait()
            self.reader.join(timeout=10)
            self.stopped = False
            self.killed = self.reaped = True

    def stop(self):
        """SIGTERM, and a check that the node had not ended by itself and now exits with
        status 0 (a sanitizer's report, a leak at exit included, makes it fail)."""
        if self.proc is None or self.reaped:
            return None if self.proc is None else self.proc.returncode
        died = self.proc.poll() is not None
        if not died:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.lines.append("==== did not stop within 30 s of SIGTERM: killed\n")
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=10)
        self.stopped = False
        self.reaped = True
        rc = self.proc.returncode
        if not self.killed and not self.may_exit:
            lines = self.output(since_start=self.starts).splitlines(True)
            report = next((i for i, line in enumerate(lines) if "Sanitizer" in line or
                           "runtime error:" in line), max(len(lines) - 15, 0))
            check(not died and rc == 0,
                  f"{self.name} {'ended by itself' if died else 'stopped'} with status {rc}:\n"
                  + "".join(lines[report:report + 40]))
        return rc

    def herald(self, *args):
        return subprocess.run([HERALD, "--data", self.data, *args], capture_output=True,
                              text=True, timeout=120)

    def check(self, what):
        r = self.herald("check")
        check(r.returncode == 0,
              f"{what}: herald check on {self.name}: exit {r.returncode}: {r.stdout} {r.stderr}")

    def export(self, what):
        """`herald export` of this node's folder: {file name: sorted lines}, or None."""
        out = os.path.join(self.folder, f"export-{time.monotonic_ns()}")
        r = self.herald("export", out)
        if not check(r.returncode == 0, f"{what}: export of {self.name}: {r.stdout} {r.stderr}"):
            return None
        files = {}
        for path in sorted(glob.glob(os.path.join(out, "*.json*"))):
            with open(path) as f:
                files[os.path.basename(path)] = sorted(line for line in f.read().splitlines()
                                                       if line.strip())
        shutil.rmtree(out, ignore_errors=True)
        return files


class Scene:
    """One scenario's world: a NATS cluster of three, a replication cluster name of its
    own, and the Herald nodes started in it; all stopped and removed at the end."""

    def __init__(self, work, app, name, max_payload="8MB"):
        self.name, self.app = name, app
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=work)
        self.cluster = name + "-" + os.path.basename(self.dir).rsplit("-", 1)[-1][:8]
        self.nodes = []
        self.nats = NatsCluster(3, self.dir, max_payload=max_payload)

    def node(self, name, role="auto", extra=(), start=True):
        n = Node(self, name, role, extra)
        self.nodes.append(n)
        if start:
            state = n.start()
            if state != "listening":
                raise RuntimeError(f"{name} did not start ({state}):\n{n.output()[-3000:]}")
        return n

    def primary(self, name="p", extra=()):
        """A node that becomes primary; returns it once /healthz says so."""
        n = self.node(name, "auto", extra)
        if not n.wait_role("primary"):
            raise RuntimeError(f"{name} did not become primary: {n.health()}\n"
                               f"{n.output()[-3000:]}")
        return n

    def replica(self, name, extra=()):
        n = self.node(name, "auto", extra)
        if not n.wait_role("replica"):
            raise RuntimeError(f"{name} did not become a replica: {n.health()}\n"
                               f"{n.output()[-3000:]}")
        return n

    def wait_converged(self, nodes=None, seconds=WAIT):
        """Waits until `nodes` (the running ones) report the same version and stream
        sequence and exactly one of them is primary; returns that version or None."""
        nodes = [n for n in (nodes or self.nodes) if n.running()]

        def same():
            hs = [n.health() for n in nodes]
            if any(h is None for h in hs):
                return None
            if [h.get("role") for h in hs].count("primary") != 1:
                return None
            if len({(h.get("version"), h.get("seq")) for h in hs}) != 1:
                return None
            return hs[0].get("version") or -1
        return wait_until(same, seconds, 0.1)

    def describe(self):
        return "; ".join(f"{n.name}: {n.health()}" for n in self.nodes if n.running())

    def close(self, failed):
        for n in self.nodes:
            n.stop()
        if failed:
            for n in self.nodes:
                lines = n.output().splitlines(True)
                print(f"---- {self.name}: output of {n.name}, but for its access lines "
                      f"(last 80 lines) ----")
                print("".join([line for line in lines if " http client=" not in line and
                               " websocket " not in line][-80:]), end="")
                # A sanitizer's report, whole: its first lines say what went wrong where.
                reports = [i for i, line in enumerate(lines)
                           if "ERROR: AddressSanitizer" in line or "runtime error:" in line or
                           "ERROR: LeakSanitizer" in line]
                if reports and reports[0] < len(lines) - 60:
                    print(f"---- {self.name}: {n.name}'s sanitizer report ----")
                    print("".join(lines[reports[0]:reports[0] + 120]), end="")
            print(self.nats.logs())
        self.nats.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def check_one_taker(scene, what):
    """Only the primary takes forwarded writes: a message on their subject gets exactly
    one answer (answers are collected for a second; a later one would go unseen)."""
    client = NatsClient(scene.nats.servers[0].url())
    try:
        answers = client.replies(f"herald.{scene.cluster}.write", b"not json", 1.0)
    except (OSError, ValueError) as e:
        answers = [repr(e)]
    finally:
        client.close()
    check(len(answers) == 1, f"{what}: one node answers on herald.{scene.cluster}.write: "
          f"{answers} ({scene.describe()})")


def compare_exports(what, nodes):
    """Exports every node's folder and checks that they are all equal to the first
    node's; returns the first node's export (or None)."""
    exports = [(n.name, n.export(what)) for n in nodes]
    first_name, first = exports[0]
    for name, other in exports[1:]:
        if first is None or other is None:
            continue
        for f in sorted(set(first) | set(other)):
            a, b = first.get(f), other.get(f)
            check(a == b, f"{what}: export {f} of {name} equals {first_name}'s: "
                  f"{len(a or [])} vs {len(b or [])} lines, only in {first_name}: "
                  f"{[line[:160] for line in sorted(set(a or []) - set(b or []))[:3]]}, "
                  f"only in {name}: "
                  f"{[line[:160] for line in sorted(set(b or []) - set(a or []))[:3]]}")
    return first


def stop_and_compare(scene, what):
    """Stops every node, runs `herald check` on each stopped folder, and compares
    their exports; returns the export of the node that was primary at the end (the
    first node's when none was)."""
    primary = next((n for n in scene.nodes if n.role_now() == "primary"), scene.nodes[0])
    for n in scene.nodes:
        n.stop()
    for n in scene.nodes:
        n.check(what)
    return compare_exports(what, [primary, *(n for n in scene.nodes if n is not primary)])


def exported_ns(export):
    return collections.Counter(json.loads(line)["n"] for line in (export or {}).get(
        "events.jsonl", []))


# ---- writers --------------------------------------------------------------------------

class Writer:
    """Threads that commit events:add with n = base + k*threads + t (k = 1, 2, ...) one after
    the other, each with its own idempotency key, retried with the same key on any node
    until acknowledged (WAIT seconds at most for one n). acked: n -> version."""

    def __init__(self, nodes, tag, threads=2, base=0):
        self.nodes, self.tag, self.threads, self.base = nodes, tag, threads, base
        self.acked = {}
        self.sent = set()
        self.errors = []
        self.codes = collections.Counter()  # non-200 answers met on the way
        self.samples = {}  # one reply of each kind
        self.longest_wait = 0.0  # seconds from an n's first send to its acknowledgement
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self._run, args=(t,), daemon=True)
                        for t in range(threads)]
        for w in self.workers:
            w.start()

    def _run(self, t):
        target = t % len(self.nodes)
        k = 0
        while not self.stopping.is_set():
            k += 1
            n = self.base + k * self.threads + t
            self.sent.add(n)
            key = f"{self.tag}-{n}"
            first = time.time()
            end = first + WAIT
            while True:
                node = self.nodes[target]
                status, reply = node.mutate(n, f"w{t}", key, timeout=10) \
                    if node.running() and not node.stopped else (None, {"error": "down"})
                if status == 200:
                    with self.lock:
                        self.acked[n] = reply.get("version")
                        self.longest_wait = max(self.longest_wait, time.time() - first)
                    break
                kind = f"{node.name}: {status} {reply.get('code') or reply.get('error')}"
                with self.lock:
                    self.codes[kind] += 1
                    self.samples.setdefault(kind.split(": ", 1)[1], reply)
                if status in (400, 404, 500) and reply.get("code") in (
                        "ValidationError", "InvalidArgument", "NotFound", "IdempotencyConflict"):
                    self.errors.append(f"n={n} on {node.name}: {status} {reply}")
                if time.time() > end:
                    self.errors.append(f"n={n}: no node acknowledged it within {WAIT} s "
                                       f"(last: {node.name} {status} {reply})")
                    self.stopping.set()
                    return
                target = (target + 1) % len(self.nodes)
                time.sleep(0.05)

    def count(self):
        with self.lock:
            return len(self.acked)

    def wait_more(self, more, seconds=WAIT):
        """Waits until `more` writes past now are acknowledged; returns whether they were."""
        goal = self.count() + more
        return wait_until(lambda: self.count() >= goal or self.stopping.is_set(), seconds) \
            and self.count() >= goal

    def stop(self):
        self.stopping.set()
        for w in self.workers:
            w.join(timeout=WAIT + 15)


def check_exactly_once(what, export, writer, acked=(), sent=()):
    """Every n acknowledged (to `writer`, or in `acked`) is in the export exactly once;
    no n twice; no n that neither the writer nor `sent` sent."""
    ns = exported_ns(export)
    acked = {*writer.acked, *acked}
    sent = {*writer.sent, *sent}
    missing = sorted(n for n in acked if ns.get(n, 0) == 0)
    twice = sorted(n for n, c in ns.items() if c > 1)
    unknown = sorted(n for n in ns if n not in sent)
    check(not missing, f"{what}: acknowledged events lost: {missing[:10]} ({len(missing)})")
    check(not twice, f"{what}: events applied twice: {twice[:10]} ({len(twice)})")
    check(not unknown, f"{what}: events nobody sent: {unknown[:10]}")
    check(not writer.errors, f"{what}: writer errors: {writer.errors[:5]}")
    unacked = sorted(n for n in ns if n not in acked)
    print(f"{what}: {len(acked)} acknowledged, {len(ns)} stored (of which not acknowledged: "
          f"{unacked[:10]}); the longest an n "
          f"waited for its acknowledgement: {writer.longest_wait:.1f} s; refusals met on the "
          f"way: {dict(writer.codes)}; for example {list(writer.samples.values())[:3]}",
          flush=True)


# ---- a) fan-out to subscribers on replicas ---------------------------------------------

class Subscriber:
    """A WebSocket client subscribed to events:list on one node; records every value
    with its version. It also sends events:add on the same connection (mutate())."""

    def __init__(self, node):
        self.node = node
        self.history = []  # (version, [n...]) for the first result and each update
        self.update_versions = []
        self.value = None
        self.ws = None
        self.inflight = {}  # mutate id -> (n, future of (answer, whether the value held n))

    async def mutate(self, n):
        """Sends events:add n on this connection; returns (its answer, whether this
        subscription's value already held n when the answer came)."""
        fut = asyncio.get_running_loop().create_future()
        self.inflight[f"m{n}"] = (n, fut)
        await self.ws.send(json.dumps({"type": "mutate", "id": f"m{n}", "path": "events:add",
                                       "args": {"n": n, "worker": "ws-" + self.node.name}}))
        return await asyncio.wait_for(fut, WAIT)

    async def run(self, ready, done):
        import websockets
        async with websockets.connect(f"ws://127.0.0.1:{self.node.port}/ws", max_size=None) as ws:
            c = Client(ws)
            self.ws = ws

            def changed(sid, value, version):
                self.value = value
                self.history.append((version, [e["n"] for e in value]))
            c.on_change = changed
            c.pending_subs.add("list")
            r = await c.request({"type": "sub", "id": "list", "path": "events:list", "args": {}})
            if not check(r.get("type") == "result", f"a: subscribe on {self.node.name}: {r}"):
                ready.set()
                return
            original = c.pump

            async def pump(timeout=30):
                m = await original(timeout)
                if m.get("type") == "update":
                    self.update_versions.append(m["version"])
                return m
            c.pump = pump
            ready.set()
            deadline = None
            while True:
                goal = done()
                if goal is not None:
                    if self.history and self.history[-1][0] >= goal:
                        break
                    deadline = deadline or time.time() + WAIT
                    if time.time() > deadline:
                        break
                try:
                    await c.pump(0.2)
                except asyncio.TimeoutError:
                    pass
                for mid in [mid for mid in self.inflight if mid in c.answers]:
                    n, fut = self.inflight.pop(mid)
                    fut.set_result((c.answers.pop(mid),
                                    any(e["n"] == n for e in self.value or [])))


async def fanout(scene):
    p = scene.primary("p")
    r1 = scene.replica("r1")
    r2 = scene.replica("r2")
    subs = [Subscriber(r1), Subscriber(r2)]
    readies = [asyncio.Event() for _ in subs]
    state = {"goal": None}
    tasks = [asyncio.create_task(s.run(ev, lambda: state["goal"])) for s, ev in zip(subs, readies)]
    await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in readies)), WAIT)

    acked = {}  # n -> version
    problems = []

    loop = asyncio.get_running_loop()

    def work():
        for n in range(1, 201):
            if n % 8 == 4:  # through r1's subscribed WebSocket: its update comes before the ack
                answer, held = asyncio.run_coroutine_threadsafe(subs[0].mutate(n), loop).result()
                if answer.get("type") != "ack":
                    problems.append(f"add {n} over r1's WebSocket: {answer}")
                    continue
                acked[n] = answer.get("version")
                if not held:
                    problems.append(f"read your writes on r1's WebSocket: the ack of {n} came "
                                    f"before the update that holds it")
                continue
            through = r1 if n % 8 == 0 else p
            status, reply = through.mutate(n, through.name)
            if status != 200:
                problems.append(f"add {n} through {through.name}: {status} {reply}")
                continue
            acked[n] = reply.get("version")
            if through is r1:
                seen = r1.events()
                if not (seen and any(e["n"] == n for e in seen)):
                    problems.append(f"read your writes on r1: {n} missing after its ack")
    await asyncio.to_thread(work)
    check(not problems, f"a: writes: {problems[:5]} ({len(problems)})")
    versions = [acked[n] for n in sorted(acked)]
    check(all(isinstance(v, int) for v in versions) and
          all(a < b for a, b in zip(versions, versions[1:])),
          f"a: acknowledged versions grow, through either node: {versions[:10]}...")
    state["goal"] = max(versions) if versions else 0
    await asyncio.gather(*tasks)
    top = scene.wait_converged()
    check(top and top >= state["goal"], f"a: all nodes at the last version: {scene.describe()}")

    by_version = sorted((v, n) for n, v in acked.items())
    for s in subs:
        name = s.node.name
        vs = [v for v, _ in s.history]
        check(all(a < b for a, b in zip(vs, vs[1:])),
              f"a: versions seen on {name} only grow: {vs[:20]}")
        # A re-run that went to an evaluator thread merges the commits made meanwhile
        # into one update (docs/protocol.md, "Slow queries"): no commit may be missing
        # from a value, but not every commit needs an update of its own.
        print(f"a: {name}'s subscriber: {len(s.update_versions)} updates for "
              f"{len(by_version)} commits", flush=True)
        wrong = [(v, ns) for v, ns in s.history
                 if ns != sorted(n for w, n in by_version if w <= v)]
        check(not wrong, f"a: every value seen on {name} is the events acknowledged up to its "
              f"version: first wrong {wrong[:1]}")
        for node in scene.nodes:
            fresh = node.events()
            check(fresh is not None and fresh == s.value,
                  f"a: {name}'s subscription equals a fresh query on {node.name}: "
                  f"{len(s.value or [])} vs {len(fresh or [])} events")
    check(sorted(acked) == list(range(1, 201)) and
          [e["n"] for e in (s.value or [])] == list(range(1, 201)),
          f"a: 200 events, n = 1..200: {len(subs[0].value or [])}")
    for n in scene.nodes:
        n.check("a")


def scenario_fanout(scene):
    asyncio.run(fanout(scene))


# ---- b) failover under writes ------------------------------------------------------------

class Follower:
    """A WebSocket client that keeps a subscription to events:list, as an app does: on
    the first node of `nodes` that takes its connection, and when that connection
    dies, on the next one (it subscribes again there). Runs on a thread of its own."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.value = None
        self.reconnects = 0
        self.errors = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    async def _run(self):
        import websockets
        i = 0
        while not self.stopping.is_set():
            node = self.nodes[i % len(self.nodes)]
            try:
                async with websockets.connect(f"ws://127.0.0.1:{node.port}/ws",
                                              max_size=None, open_timeout=5) as ws:
                    c = Client(ws)
                    c.on_change = lambda sid, value, version: setattr(self, "value", value)
                    c.pending_subs.add("list")
                    r = await c.request({"type": "sub", "id": "list", "path": "events:list",
                                         "args": {}}, timeout=10)
                    if r.get("type") != "result":
                        self.errors.append(f"subscribe on {node.name}: {r}")
                    while not self.stopping.is_set():
                        try:
                            await c.pump(0.2)
                        except asyncio.TimeoutError:
                            pass
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                self.reconnects += 1
                i += 1
                await asyncio.sleep(0.1)

    def holds(self, node):
        """Whether this client's value equals a fresh query on `node`."""
        fresh = node.events()
        return fresh is not None and self.value == fresh

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=WAIT)


def scenario_failover(scene):
    p = scene.primary("p")
    r1 = scene.replica("r1")
    r2 = scene.replica("r2")
    follower = Follower([p, r1, r2])  # subscribed on the primary, which is killed
    writer = Writer([p, r2, r1], scene.cluster)
    try:
        check(writer.wait_more(40), f"b: writes before the kill: {writer.count()}")
        p.kill()
        killed_at = writer.count()
        new = wait_until(lambda: next((n for n in (r1, r2) if n.role_now() == "primary"), None),
                         WAIT, 0.1)
        check(new is not None, f"b: a replica takes over: {scene.describe()}")
        check(writer.wait_more(40), f"b: writes after the takeover: {writer.count()} "
              f"(at the kill: {killed_at}); {writer.errors[:3]}")
        check(p.start() == "listening", "b: the old primary starts again")
        check(p.wait_role("replica"), f"b: the old primary follows: {p.health()}")
        check(writer.wait_more(20), "b: writes with the old primary back")
    finally:
        writer.stop()
    check(scene.wait_converged(), f"b: every node at the same version: {scene.describe()}")
    check(wait_until(lambda: follower.holds(r1)) and follower.reconnects >= 1 and
          not follower.errors,
          f"b: a client subscribed on the killed primary reconnects to a replica and its "
          f"subscription ends equal to a fresh query ({follower.reconnects} reconnects, "
          f"{len(follower.value or [])} events, {follower.errors[:2]})")
    follower.stop()
    check_one_taker(scene, "b")
    if new is not None:
        check(all((n.health() or {}).get("primary") == new.name for n in scene.nodes),
              f"b: everyone names {new.name} primary: {scene.describe()}")
    for n in scene.nodes:
        n.check("b (beside the server)")
    export = stop_and_compare(scene, "b")
    check_exactly_once("b", export, writer)


# ---- c) a NATS server dies and comes back ---------------------------------------------

def repl_stream(scene, i):
    """Name and state of the replication stream as NATS server i holds it (the stream
    of this cluster that is neither the snapshots' nor a key-value bucket's)."""
    for name, state in scene.nats.streams(i).items():
        if scene.cluster in name and not name.endswith("_SNAP") and not name.startswith("KV_"):
            return name, state
    return None, {}


def scenario_nats(scene):
    p = scene.primary("p")
    r1 = scene.replica("r1")
    writer = Writer([p, r1], scene.cluster)
    try:
        check(writer.wait_more(20), "c: writes before")
        names = {i: repl_stream(scene, i)[0] for i in range(3)}
        leader_name = (repl_stream(scene, 0)[1].get("cluster") or {}).get("leader")
        victim = next((s.index for s in scene.nats.servers if s.name == leader_name), 0)
        print(f"c: streams {names}; replication stream leader {leader_name}", flush=True)
        scene.nats.kill(victim)
        check(writer.wait_more(30), f"c: writes go on with NATS server {victim} down: "
              f"{writer.count()} {writer.errors[:3]}")
        check(scene.nats.start(victim), "c: the NATS server starts again")
        check(writer.wait_more(30), "c: writes go on with it back")
        seq = (p.health() or {}).get("seq") or 0
        check(wait_until(lambda: (repl_stream(scene, victim)[1].get("last_seq") or 0) >= seq),
              f"c: the restarted NATS server's copy of the stream reaches {seq}: "
              f"{repl_stream(scene, victim)}")
        other = (victim + 1) % 3
        scene.nats.kill(other)
        check(writer.wait_more(30), f"c: writes go on with another NATS server down, so the "
              f"restarted one holds the stream: {writer.count()} {writer.errors[:3]}")
        scene.nats.start(other)
        check(writer.wait_more(10), "c: writes with all three NATS servers")
    finally:
        writer.stop()
    check(scene.wait_converged(), f"c: both nodes at the same version: {scene.describe()}")
    export = stop_and_compare(scene, "c")
    check_exactly_once("c", export, writer)


# ---- d) a replica that missed many groups, and one past the retention -----------------

def write_range(node, ns, what):
    bad = []
    for n in ns:
        status, reply = node.mutate(n, node.name)
        if status != 200:
            bad.append((n, status, reply))
    check(not bad, f"{what}: writes refused: {bad[:3]} ({len(bad)})")


def scenario_catchup(scene):
    often = ["--snapshot-every", "50"]
    p = scene.primary("p", often)
    r1 = scene.replica("r1", often)
    write_range(p, range(1, 11), "d")
    check(scene.wait_converged(), f"d: caught up before the stop: {scene.describe()}")
    r1.stop()
    write_range(p, range(11, 411), "d")
    check(r1.start() == "listening", "d: the replica starts again")
    check(r1.wait_role("replica"), f"d: it follows: {r1.health()}")
    check(scene.wait_converged(), f"d: it catches up 400 groups: {scene.describe()}")
    check(len(r1.events() or []) == 410, f"d: 410 events on the replica: {len(r1.events() or [])}")
    out = "\n".join(r1.output(since_start=2).lower().splitlines()[1:])
    check(not glob.glob(r1.data + ".stale-*") and "from snapshot" not in out,
          f"d: within the retention the replica kept its folder (no snapshot): {out[-800:]}")
    # A new replica joins while the primary writes and publishes a snapshot every 50
    # groups (a snapshot may be replaced while the new replica fetches it).
    writer = Writer([p], scene.cluster, base=1000)
    try:
        check(writer.wait_more(30), "d: writes before the new replica")
        r2 = scene.replica("r2", often)
        check(writer.wait_more(100), "d: writes while the new replica catches up")
    finally:
        writer.stop()
    check(scene.wait_converged(), f"d: the new replica caught up: {scene.describe()}")
    check("from snapshot" in r2.output().lower(),
          f"d: the new replica started from a snapshot: {r2.output()[-800:]}")
    export = stop_and_compare(scene, "d")
    check_exactly_once("d", export, writer, acked=range(1, 411), sent=range(1, 411))


def scenario_retention(scene):
    small = ["--stream-retain", "50", "--snapshot-every", "20"]
    p = scene.primary("p", small)
    r1 = scene.replica("r1", small)
    write_range(p, range(1, 11), "d'")
    check(scene.wait_converged(), f"d': caught up before the stop: {scene.describe()}")
    r1.stop()
    write_range(p, range(11, 131), "d'")
    state = r1.start()
    check(state == "listening", f"d': the replica past the retention starts again ({state})")
    check(r1.wait_role("replica"), f"d': it follows: {r1.health()}")
    check(scene.wait_converged(), f"d': it caught up: {scene.describe()}")
    out = "\n".join(r1.output(since_start=2).lower().splitlines()[1:])  # not the command line
    stale = glob.glob(r1.data + ".stale-*")
    check(stale or "snapshot" in out,
          f"d': it started again from a snapshot (its folder moved aside, or its log says so):"
          f" {stale} {out[-1500:]}")
    print("d': the replica's start past the retention:",
          [line for line in out.splitlines() if "snapshot" in line or "stale" in line][:3],
          [os.path.basename(s) for s in stale], flush=True)
    write_range(p, range(131, 141), "d'")
    check(scene.wait_converged(), f"d': it follows new writes: {scene.describe()}")
    check(len(r1.events() or []) == 140, f"d': 140 events on the replica: {len(r1.events() or [])}")
    export = stop_and_compare(scene, "d'")
    check(sorted(exported_ns(export)) == list(range(1, 141)), "d': the 140 events")


# ---- e) two primaries ---------------------------------------------------------------------

def scenario_two_primaries(scene):
    a = scene.node("a", "primary")
    check(a.wait_role("primary"), f"e: a (--role primary) is primary: {a.health()}")
    write_range(a, range(1, 6), "e")
    b = scene.node("b", "primary", start=False)
    state = b.start()
    b.may_exit = True
    # b cannot get the lease: it either refuses to start, or waits ("starting", maybe
    # not listening yet); it must not become primary while a holds the lease.
    roles = set()
    for n in range(6, 26):  # writes through a meanwhile, a few leases long
        status, reply = a.mutate(n, "a")
        check(status == 200, f"e: a goes on committing with b started: {status} {reply}")
        if b.running():
            roles.add(b.role_now())
            time.sleep(LEASE / 10)
    check("primary" not in roles and (a.health() or {}).get("role") == "primary",
          f"e: b never became primary while a held the lease: b's start {state}, its roles "
          f"{roles}, a {a.health()}")
    check(state == "exited" or roles <= {"starting", None},
          f"e: b refused to start or stayed starting: {state} {roles}")
    if state == "exited":
        check(b.proc.returncode != 0, f"e: b's refusal is an error exit: {b.proc.returncode}")
        print("e: b refused to start:", "".join(b.output().splitlines(True)[-3:]), flush=True)
    b.stop()
    check(len(a.events() or []) == 25, "e: a holds its 25 events")
    # Whatever arrives on the subject of forwarded writes is answered, and the primary
    # lives on: messages that are not writes, many, for the answer to race the message's
    # release inside the NATS client.
    client = NatsClient(scene.nats.servers[0].url())
    try:
        answers = [client.request(f"herald.{scene.cluster}.write", body, timeout=5)
                   for body in (b"not json", b"{}", b'{"path": 7}') * 300]
    except (OSError, ValueError) as e:
        answers = [repr(e)]
    finally:
        client.close()
    wrong = [x for x in answers if not isinstance(x, dict) or "version" in x]
    check(not wrong, f"e: 900 messages that are not writes on herald.{scene.cluster}.write "
          f"are each answered, none as a commit: {wrong[:3]}")
    check(a.running() and a.role_now() == "primary" and len(a.events() or []) == 25,
          f"e: a is still the primary after them, its data unchanged: {a.health()}")


def scenario_fencing(scene):
    a = scene.primary("a")
    b = scene.replica("b")
    write_range(a, range(1, 11), "e'")
    check(scene.wait_converged(), f"e': b caught up: {scene.describe()}")
    # A writer keeps a's writer busy, so that the stop may catch a between its lease's
    # check and its append; its requests wait for a to wake.
    writer = Writer([a, b], scene.cluster, base=1000)
    try:
        check(writer.wait_more(20), "e': writes before the stop")
        a.signal(signal.SIGSTOP)
        check(b.wait_role("primary"), f"e': b takes over while a is stopped: {b.health()}")
        write_range(b, range(11, 21), "e'")
        # Mutations wait in a's socket before it wakes: the first thing a does is to take
        # them, maybe before it learns it lost the lease.
        late = {}
        senders = [threading.Thread(target=lambda n=n: late.update({n: a.mutate(n, "a",
                                                                                f"late-{n}")}))
                   for n in range(21, 26)]
        for t in senders:
            t.start()
        time.sleep(0.2)  # bounds nothing: gives the requests time to reach a's socket
        a.signal(signal.SIGCONT)
        for t in senders:
            t.join(WAIT + 5)
        print("e': a's answers after waking:", [(n, s, r.get("version") or r.get("errorMessage"))
                                                for n, (s, r) in sorted(late.items())], flush=True)
        check(a.wait_role("replica"), f"e': a steps down and follows b: {a.health()}")
        check(writer.wait_more(20), "e': writes after a woke")
    finally:
        writer.stop()
    check(scene.wait_converged(), f"e': a and b at the same version: {scene.describe()}")
    check_one_taker(scene, "e'")
    write_range(a, range(26, 31), "e' (through a, now forwarding)")
    check(scene.wait_converged(), f"e': converged after: {scene.describe()}")
    export = stop_and_compare(scene, "e'")
    # A refusal that does not say the write may have been applied says it was not.
    stored = exported_ns(export)
    applied = [(n, reply.get("errorMessage")) for n, (status, reply) in sorted(late.items())
               if status != 200 and stored.get(n) and "may" not in reply.get("errorMessage", "")]
    check(not applied, f"e': writes refused as not applied (retry) were applied: {applied}")
    check_exactly_once("e'", export, writer,
                       acked=[*range(1, 21), *range(26, 31),
                              *(n for n, (s, _) in late.items() if s == 200)],
                       sent=range(1, 31))


# ---- groups larger than a NATS message ---------------------------------------------------

def scenario_large(scene):
    """On NATS servers that take messages of 1 MB (their default), commit groups of about
    13 MB and 2.7 MB, so each is appended in pieces, one after the other, through the
    primary and through a replica; the replica and a new one started after them hold
    them all."""
    p = scene.primary("p")
    r1 = scene.replica("r1")
    expected = set()
    for start, count, node in ((1, 12000, p), (20001, 12000, p), (40001, 2500, r1)):
        status, reply = node.mutate_bulk(start, count, 1000)
        check(status == 200, f"large: {count} events of 1 KB from {start} through {node.name}: "
              f"{status} {reply.get('errorMessage')}")
        expected.update(range(start, start + count))
    write_range(p, range(50001, 50006), "large")
    expected.update(range(50001, 50006))
    # A write forwarded by a replica is one NATS message: past max_payload it is refused
    # at once with the reason, and nothing is written.
    status, reply = r1.mutate(60001, "x" * 1_060_000)
    check(status == 400 and reply.get("code") == "LimitExceeded" and
          "could not be sent to the primary" in (reply.get("errorMessage") or ""),
          f"large: a forwarded write larger than a NATS message: {status} "
          f"{reply.get('code')} {reply.get('errorMessage')}")
    check(scene.wait_converged(), f"large: the replica applied the large groups: "
          f"{scene.describe()}")
    scene.replica("r2")
    check(scene.wait_converged(), f"large: a new replica applied them: {scene.describe()}")
    export = stop_and_compare(scene, "large")
    check(set(exported_ns(export)) == expected, "large: every event of the large groups")


# ---- main ---------------------------------------------------------------------------------

SCENARIOS = [
    ("fanout", scenario_fanout),
    ("failover", scenario_failover),
    ("nats", scenario_nats),
    ("catchup", scenario_catchup),
    ("retention", scenario_retention),
    ("primaries", scenario_two_primaries),
    ("fencing", scenario_fencing),
    ("large", scenario_large),
]
SCENE_OPTIONS = {"large": {"max_payload": "1MB"}}


def main():
    if NATS_SERVER is None:
        print("replication: skipped, nats-server is not installed")
        return 77
    only = set(os.environ.get("HERALD_REPL_ONLY", "").split(",")) - {""}
    work = tempfile.mkdtemp(prefix="herald-repl-")
    try:
        app = write_app(work, SCHEMA, {"events": EVENTS})
        for name, run in SCENARIOS:
            if only and name not in only:
                continue
            started = time.time()
            before = len(herald_testlib.failures)
            scene = None
            try:
                scene = Scene(work, app, name, **SCENE_OPTIONS.get(name, {}))
                run(scene)
            except Exception:  # noqa: BLE001 - reported as a failed check, the next scenario runs
                check(False, f"{name}: {traceback.format_exc()}")
            finally:
                failed = len(herald_testlib.failures) > before
                if scene is not None:
                    scene.close(failed)
            print(f"{name}: {'FAILED' if failed else 'ok'} ({time.time() - started:.1f} s)",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("replication")


if __name__ == "__main__":
    sys.exit(main())
