"""Crash test at scale: a durable `herald serve` killed with SIGKILL, by
default 1,000 times, at random moments while several WebSocket and HTTP
clients send mutations; every mutation that was not acknowledged is sent
again, with the same idempotency key, to the restarted server. Not part of
CI: it takes about half an hour on two cores (docs/reliability.md has the
last full run).

    meson setup build-crash --buildtype=debugoptimized && ninja -C build-crash
    /usr/bin/python3 bench/crash_scale.py                 # 1,000 kills
    /usr/bin/python3 bench/crash_scale.py --kills 50      # a few minutes
    /usr/bin/python3 bench/crash_scale.py --seed 1234     # the same choices

It needs Debian's python3-websockets and python3-cryptography (the shared
test library, tests/server/herald_testlib.py, imports both). The seed
fixes what the clients do and how each kill is chosen; the moment a kill
lands depends on timing, so a run never repeats exactly.

The app is examples/twitch-jobs, its data folder a fresh one in /tmp (on
disk: the commits are fsynced). Clients, each a sequence of mutations it
sends one at a time ("lanes"): three WebSocket connections carry a function
lane and a raw lane each, four HTTP clients one lane each (two of each
kind), all with the admin key. A function lane creates videos and calls
updateJobProgress, updateJobError, completeJob and retry on them (retry
adds one to retryCount and create refuses an existing twitchId, so a
mutation run twice shows); a raw lane inserts, patches, replaces and
deletes documents with raw operations, every transaction also setting its
sequence number on the lane's own document. Every value a lane writes is
unique to its mutation, so the store tells whether a mutation committed.

A kill is one of:
- startup: during `herald serve`'s start, before it may be listening;
- early: 0-100 ms after it listens (while clients connect and retry);
- aimed: at the first acknowledgement after a random delay, when the next
  group commit is likely under way;
- idle: after the clients stopped and every answer arrived; the documents
  are then compared with the model in full (`herald export`);
- random: 50-1,200 ms into the load.

After every restart, before its retry, each lane reads all its current
documents and compares them with its model: they must be the model, or the
model with its unacknowledged mutation applied (then it committed before the
kill). Its retry must then be answered from the idempotency record (a
version no larger than the one the server restarted at) exactly when it had
committed; a committed mutation applied again, or a record without its
effects, is a finding. Also checked: each commit version belongs to one
mutation; the version a server restarts at is never below one acknowledged
before, and equals the number of committed mutations; a connection's updates
and acknowledgements never go back; some acknowledged mutations are sent
again and must get the same answer; `herald check` passes every
--check-every kills and at the end, after a clean stop, when the export must
match the model exactly (no missing, extra or duplicated document).

The first finding stops the run; its seed, the data folder, the server's
output (server.log) and a line per round (rounds.jsonl) are kept.
"""
import argparse
import asyncio
import concurrent.futures
import copy
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import herald_testlib as tl  # noqa: E402

TIMEOUT = 30  # seconds for any one answer of a live server
TABLE = "videos"
# Fields the functions set from the server's clock: the model cannot know them.
CLOCK_FIELDS = {"_creationTime", "createdAt", "updatedAt", "processingStartedAt",
                "processingCompletedAt"}
GENERATION = 30  # videos a function lane works on before it starts new ones
RAW_DOCS = 40  # documents a raw lane keeps, about
CATEGORIES = [("startup", 0.06), ("early", 0.10), ("idle", 0.10), ("aimed", 0.30),
              ("random", 0.44)]


class Finding(Exception):
    """A loss, a duplicate, a crash or another broken promise."""


class Unreachable(Exception):
    """The server did not answer: killed, or a finding if it was not."""


# ---- the admin key --------------------------------------------------------

def read_key(path):
    with open(path) as f:
        return f.read().strip()


def admin_key(lines, data):
    """The admin key from a start's output: the key printed on an `admin
    key` line, or the file such a line names, or else <data>/admin.key."""
    for line in lines:
        if not line.lower().startswith(("admin key", "admin-key")):
            continue
        for word in re.findall(r"[^\s'\"(),;:]*/[^\s'\"(),;:]+", line):
            if os.path.isfile(word):
                return read_key(word)
        word = line.rsplit(":", 1)[-1].strip()
        if word and " " not in word:
            return word
    path = os.path.join(data, "admin.key")
    return read_key(path) if os.path.isfile(path) else None


# ---- transports -----------------------------------------------------------

class Reply:
    def __init__(self, ok, value=None, version=None, code=None, message=None, data=None):
        self.ok, self.value, self.version = ok, value, version
        self.code, self.message, self.data = code, message, data

    def __repr__(self):
        if self.ok:
            return f"ok(version {self.version}, {json.dumps(self.value)[:200]})"
        return f"error({self.code}: {self.message}; {self.data})"


class WsConn:
    """One WebSocket connection shared by lanes: requests matched to answers
    by id by one reader, update versions checked as they come."""

    def __init__(self, ws, run):
        self.ws, self.run = ws, run
        self.futures, self.next_id, self.closed = {}, 0, False
        self.last_version = 0
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                m = json.loads(raw)
                if m.get("version") is not None and m["type"] in ("update", "ack"):
                    if m["type"] == "update" and m["version"] < self.last_version:
                        self.run.fail(f"an update's version went back from "
                                      f"{self.last_version} to {m['version']}")
                    self.last_version = max(self.last_version, m["version"])
                fut = self.futures.pop(m.get("id"), None)
                if fut and not fut.done():
                    fut.set_result(m)
                elif m["type"] == "error":
                    self.run.fail(f"unexpected error on a connection: {m}")
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            for fut in self.futures.values():
                if not fut.done():
                    fut.set_exception(Unreachable("connection closed"))

    async def request(self, msg):
        if self.closed:
            raise Unreachable("connection closed")
        self.next_id += 1
        rid = f"r{self.next_id}"
        fut = asyncio.get_running_loop().create_future()
        self.futures[rid] = fut
        try:
            await self.ws.send(json.dumps(dict(msg, id=rid)))
            return await asyncio.wait_for(fut, TIMEOUT)
        except websockets.ConnectionClosed as e:
            raise Unreachable(str(e)) from e
        except asyncio.TimeoutError as e:
            raise Unreachable(f"no answer in {TIMEOUT} s to {msg}") from e
        finally:
            self.futures.pop(rid, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # the reader may have failed it after a failed send

    async def mutate(self, body):
        m = await self.request(dict(body, type="mutate"))
        if m["type"] == "ack":
            return Reply(True, m.get("value"), m.get("version"))
        return Reply(False, code=m.get("code"), message=m.get("message"), data=m.get("data"))

    async def query(self, q):
        m = await self.request({"type": "query", "query": q})
        if m["type"] != "result":
            raise Finding(f"a raw query failed: {m}")
        return m["value"]

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 2)
        except (asyncio.TimeoutError, websockets.WebSocketException, OSError):
            pass
        self.reader.cancel()


class HttpClient:
    """A worker's HTTP client: one request at a time, each on a new connection."""

    def __init__(self, server, key):
        self.server, self.key = server, key

    async def post(self, endpoint, body):
        try:
            return await asyncio.to_thread(tl.http, self.server, endpoint, body, self.key)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            raise Unreachable(f"{type(e).__name__}: {e}") from e

    async def mutate(self, body):
        status, r = await self.post("mutation", body)
        if r.get("status") == "success":
            return Reply(True, r.get("value"), r.get("version"))
        return Reply(False, code=r.get("code") or f"HTTP {status}", message=r.get("errorMessage"),
                     data=r.get("errorData"))

    async def query(self, q):
        status, r = await self.post("query", {"query": q})
        if r.get("status") != "success":
            raise Finding(f"a raw query over HTTP failed ({status}): {r}")
        return r["value"]


# ---- the model ------------------------------------------------------------

class Op:
    """One mutation: its key, what is sent, and its effect as steps:
    ("insert", twitchId, fields, where its id is in the answer: None for
    the whole answer, else an index), ("patch", twitchId, set, unset),
    ("replace", twitchId, fields), ("delete", twitchId)."""

    def __init__(self, key, body, steps, label):
        self.key, self.body, self.steps, self.label = key, body, steps, label

    def request(self):
        return dict(self.body, idempotencyKey=self.key)


def apply_steps(model, steps, value):
    """Applies an op to a model (twitchId -> document); ids of inserted
    documents come from the answer, None while it is unknown."""
    for step in steps:
        kind, tid = step[0], step[1]
        if kind == "insert":
            where = step[3]
            new_id = None if value is None else (value if where is None else value[where])
            model[tid] = dict(step[2], _id=new_id)
        elif kind == "patch":
            model[tid].update(step[2])
            for name in step[3]:
                model[tid].pop(name, None)
        elif kind == "replace":
            model[tid] = dict(step[2], _id=model[tid]["_id"])
        elif kind == "delete":
            del model[tid]


def stored_fields(doc):
    return {k: v for k, v in doc.items() if k not in CLOCK_FIELDS and k != "_id"}


def compare(model, found):
    """Differences between a model and stored documents (twitchId -> list
    of documents), as lines; an empty list when they agree."""
    out = []
    for tid in sorted(set(model) | set(found)):
        want, got = model.get(tid), found.get(tid, [])
        if len(got) > 1:
            out.append(f"{tid}: {len(got)} documents (a duplicate): {got}")
        elif want is None:
            out.append(f"{tid}: stored, not in the model: {got[0]}")
        elif not got:
            out.append(f"{tid}: missing; the model has {want}")
        elif stored_fields(got[0]) != stored_fields(want) or \
                want["_id"] not in (None, got[0]["_id"]):
            out.append(f"{tid}: stored {got[0]}, the model has {want}")
    return out


def by_twitch_id(docs):
    found = {}
    for d in docs:
        found.setdefault(d["twitchId"], []).append(d)
    return found


# ---- lanes ----------------------------------------------------------------

class Lane:
    """A client that sends its mutations one at a time and keeps a model of
    the documents it owns (no other lane touches them)."""

    def __init__(self, name, kind, transport_kind, rng, run_id, conn=None):
        self.name, self.kind, self.transport_kind = name, kind, transport_kind
        self.conn = conn  # which WebSocket connection carries it
        self.rng, self.run_id = rng, run_id
        self.seq = 0
        self.generation = 0
        self.models = [{}]  # one per generation; lanes work on the last one
        self.pending = None  # the op sent and not answered
        self.last_version = 0  # of its last new commit
        self.resolved = False

    @property
    def model(self):
        return self.models[-1]

    def prefix(self):
        if self.kind == "fn":
            return f"{self.name}g{self.generation}."
        return f"{self.name}."

    def range_query(self):
        p = self.prefix()
        return {"table": TABLE, "index": "by_twitch_id",
                "range": [{"gte": ["twitchId", p]}, {"lt": ["twitchId", p[:-1] + "/"]}]}

    def next_op(self):
        self.seq += 1
        key = f"{self.run_id}:{self.name}:{self.seq}"
        return (self.fn_op if self.kind == "fn" else self.raw_op)(key)

    def fn_op(self, key):
        n, rng = self.seq, self.rng
        if len(self.model) >= GENERATION:
            self.generation += 1
            self.models.append({})
        if not self.model or rng.random() < 0.2:
            tid = f"{self.prefix()}{n:06d}"
            args = {"twitchId": tid, "title": f"video {n}", "jobId": f"job-{self.name}-{n}"}
            fields = dict(args, status="Queued", progressPercentage=0, retryCount=0)
            return Op(key, {"path": "videos:create", "args": args},
                      [("insert", tid, fields, None)], "create")
        tid = rng.choice(sorted(self.model))
        doc = self.model[tid]
        # A new job id in every call: no two calls leave the same document.
        base = {"twitchId": tid, "jobId": f"job-{self.name}-{n}"}
        if doc["status"] == "Failed" and doc.get("isRetryable") and rng.random() < 0.7:
            return Op(key, {"path": "videos:retry", "args": {"twitchId": tid}},
                      [("patch", tid, {"status": "Queued", "progressPercentage": 0,
                                       "retryCount": doc["retryCount"] + 1},
                        ["currentStage", "errorType", "errorMessage", "errorDetails",
                         "isRetryable"])], "retry")
        r = rng.random()
        if r < 0.55:
            args = dict(base, progressPercentage=rng.randrange(100), currentStage=f"s{n}")
            unset = ["stageProgress"]
            if rng.random() < 0.7:
                args["estimatedCompletionSeconds"] = rng.randrange(1000)
            else:
                unset.append("estimatedCompletionSeconds")
            fields = {k: v for k, v in args.items() if k != "twitchId"}
            return Op(key, {"path": "videos:updateJobProgress", "args": args},
                      [("patch", tid, fields, unset)], "progress")
        if r < 0.8:
            args = dict(base, errorType="Timeout", errorMessage=f"e{n}",
                        isRetryable=rng.random() < 0.7)
            unset = []
            if rng.random() < 0.6:
                args["errorDetails"] = f"d{n}"
            else:
                unset.append("errorDetails")
            fields = {k: v for k, v in args.items() if k != "twitchId"}
            fields["status"] = "Failed"
            return Op(key, {"path": "videos:updateJobError", "args": args},
                      [("patch", tid, fields, unset)], "error")
        # `urls` is declared v.object({}): an object without fields.
        args = dict(base, urls={}) if rng.random() < 0.5 else base
        fields = dict(jobId=base["jobId"], status="Completed", progressPercentage=100,
                      currentStage="Completed", estimatedCompletionSeconds=0)
        return Op(key, {"path": "videos:completeJob", "args": args},
                  [("patch", tid, fields, [])], "complete")

    def raw_op(self, key):
        n, rng = self.seq, self.rng
        lane_doc = self.prefix() + "lane"
        if lane_doc not in self.model:
            steps = [("insert", lane_doc, {"twitchId": lane_doc, "title": "lane",
                                           "status": "lane", "retryCount": n}, 0)]
            return self.raw_body(key, steps, "insert")
        own = sorted(t for t in self.model if t != lane_doc)
        steps, labels = [], []
        for _ in range(1 if rng.random() < 0.75 else 2):
            r = rng.random()
            if len(own) > RAW_DOCS and r < 0.5:
                r = 0.9  # a delete, to keep the lane's documents few
            if not own or r < 0.4:
                for j in range(rng.randrange(1, 4)):
                    tid = f"{self.prefix()}{n:06d}.{len(steps)}.{j}"
                    steps.append(("insert", tid, {"twitchId": tid, "title": f"raw {n}",
                                                  "status": "raw", "retryCount": n,
                                                  "progressPercentage": j}, len(steps)))
                labels.append("insert")
                continue
            tid = own.pop(rng.randrange(len(own)))
            if r < 0.65:
                unset = ["errorMessage"] if rng.random() < 0.3 else []
                steps.append(("patch", tid, {"currentStage": f"p{n}",
                                             "progressPercentage": rng.randrange(101)}, unset))
                labels.append("patch")
            elif r < 0.8:
                steps.append(("replace", tid, {"twitchId": tid, "title": f"replaced {n}",
                                               "status": "raw", "errorMessage": f"m{n}",
                                               "retryCount": n}))
                labels.append("replace")
            else:
                steps.append(("delete", tid))
                labels.append("delete")
        # The lane's document carries the sequence number of its last
        # transaction: no two transactions leave the same state.
        steps.append(("patch", lane_doc, {"retryCount": n}, []))
        return self.raw_body(key, steps, "+".join(labels))

    def raw_body(self, key, steps, label):
        ops = []
        for step in steps:
            kind, tid = step[0], step[1]
            if kind == "insert":
                ops.append({"op": "insert", "table": TABLE, "value": step[2]})
            elif kind == "patch":
                op = {"op": "patch", "id": self.model[tid]["_id"], "value": step[2]}
                if step[3]:
                    op["unset"] = step[3]
                ops.append(op)
            elif kind == "replace":
                ops.append({"op": "replace", "id": self.model[tid]["_id"], "value": step[2]})
            else:
                ops.append({"op": "delete", "id": self.model[tid]["_id"]})
        return Op(key, {"ops": ops}, steps, "raw " + label)

    async def run(self, rnd):
        """Resolves the mutation left unanswered by the last kill, then sends
        new ones until the round stops or the server goes away."""
        transport = rnd.conns[self.conn] if self.transport_kind == "ws" else rnd.http
        self.resolved = False
        try:
            await self.resolve(rnd, transport)
            while not rnd.stopping:
                op = self.pending = self.next_op()
                reply = await transport.mutate(op.request())
                self.acknowledged(rnd, op, reply)
                if rnd.rng_resend.random() < 0.03:
                    await self.resend(rnd, transport, op, reply)
        except Unreachable as e:
            rnd.unreachable(self, e)

    def acknowledged(self, rnd, op, reply):
        """A first answer: a new commit, later than all of this lane's."""
        if not reply.ok:
            raise Finding(f"{self.name}: {op.label} {op.key} failed: {reply}")
        if reply.version is None or reply.version <= max(rnd.start_version, self.last_version):
            raise Finding(f"{self.name}: {op.label} {op.key}, sent once, was answered with "
                          f"version {reply.version}, not above the restart's "
                          f"{rnd.start_version} and this lane's last {self.last_version}")
        self.last_version = reply.version
        rnd.run.record_version(reply.version, op.key)
        apply_steps(self.model, op.steps, reply.value)
        self.pending = None
        rnd.run.stats["acked"] += 1
        rnd.run.stats["acked_" + self.transport_kind] += 1
        rnd.acked()

    async def resend(self, rnd, transport, op, first):
        """An acknowledged mutation sent again: the same answer, nothing applied."""
        try:
            again = await transport.mutate(op.request())
        except Unreachable:
            return  # killed meanwhile: nothing to check
        if not again.ok or again.version != first.version or again.value != first.value:
            raise Finding(f"{self.name}: {op.key} sent again got {again}, first {first}")
        rnd.run.stats["resent"] += 1

    async def resolve(self, rnd, transport):
        """Compares the lane's documents with its model and settles the
        unanswered mutation: committed before the kill or not, its retry
        must be answered from the idempotency record, or applied, accordingly."""
        found = by_twitch_id(await transport.query(self.range_query()))
        rnd.run.stats["docs_compared"] += len(found)
        op = self.pending
        diff = compare(self.model, found)
        if op is None:
            if diff:
                raise Finding(f"{self.name}: the documents are not the acknowledged state "
                              f"(round {rnd.number}):\n  " + "\n  ".join(diff[:10]))
            self.resolved = True
            return
        with_op = copy.deepcopy(self.model)
        apply_steps(with_op, op.steps, None)
        diff_with = compare(with_op, found)
        if diff and diff_with:
            raise Finding(f"{self.name}: the documents are neither the acknowledged state nor "
                          f"that state with {op.label} {op.key} applied (round {rnd.number}):\n"
                          "  without: " + "\n  ".join(diff[:10]) +
                          "\n  with: " + "\n  ".join(diff_with[:10]))
        committed = not diff_with
        reply = await transport.mutate(op.request())
        rnd.run.stats["retries"] += 1
        rnd.run.stats["inflight_committed" if committed else "inflight_lost"] += 1
        if not reply.ok:
            what = "a duplicate: " if committed else ""
            raise Finding(f"{self.name}: the retry of {op.label} {op.key} failed, {what}"
                          f"{reply} (committed before the kill: {committed})")
        replayed = reply.version is not None and reply.version <= rnd.start_version
        if committed and not replayed:
            raise Finding(f"{self.name}: a duplicate: {op.label} {op.key} had committed before "
                          f"the kill and its retry was applied again, version {reply.version} "
                          f"(restart at {rnd.start_version})")
        if replayed and not committed:
            raise Finding(f"{self.name}: the retry of {op.label} {op.key} was answered from an "
                          f"idempotency record (version {reply.version}) but its effects are "
                          f"not stored")
        if replayed:
            rnd.run.stats["replayed"] += 1
            rnd.run.record_version(reply.version, op.key)
            apply_steps(self.model, op.steps, reply.value)
            self.pending = None
            diff = compare(self.model, found)  # now with the ids of the answer
            if diff:
                raise Finding(f"{self.name}: the replayed answer of {op.key} names other "
                              f"documents than the stored ones:\n  " + "\n  ".join(diff[:10]))
        else:
            rnd.run.stats["retried_applied"] += 1
            self.acknowledged(rnd, op, reply)
        # Every mutation of this lane committed before the start has its version.
        self.resolved = True


# ---- rounds ---------------------------------------------------------------

class Round:
    """One life of the server, from its start to the kill."""

    def __init__(self, run, number, category):
        self.run, self.number, self.category = run, number, category
        self.server = None
        self.conns, self.http = [], None
        self.start_version = None
        self.stopping = False
        self.killed = False
        self.aim = None  # a future set at the next acknowledgement, when aiming
        self.rng_resend = random.Random(run.rng.random())
        self.problem = None

    def kill(self):
        if self.killed:
            return
        self.killed = True
        if self.server.proc.poll() is not None:
            self.fail(f"the server exited by itself with {self.server.proc.returncode}")
        self.server.proc.send_signal(signal.SIGKILL)

    def acked(self):
        if self.aim is not None and not self.killed:
            self.kill()

    def fail(self, what):
        if not self.problem:
            self.problem = what

    def unreachable(self, lane, e):
        if not self.killed:
            self.fail(f"{lane.name}: the server stopped answering before it was killed: {e}")


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.run_id = f"{args.seed:x}"
        self.work = tempfile.mkdtemp(prefix="herald-crash-scale-", dir=args.workdir)
        self.data = os.path.join(self.work, "data")
        self.app = os.path.abspath(args.app)
        self.key = None
        self.log = open(os.path.join(self.work, "server.log"), "w")
        self.rounds_log = open(os.path.join(self.work, "rounds.jsonl"), "w")
        self.versions = {}  # commit version -> idempotency key of its mutation
        self.max_version = 0
        self.last_start_version = 0
        self.checked_version = None  # from `herald check` since the last start
        self.start_seconds = []  # how long starts took, to aim startup kills
        self.stats = {k: 0 for k in (
            "kills", "acked", "acked_ws", "acked_http", "retries", "replayed",
            "retried_applied", "inflight_committed", "inflight_lost", "resent",
            "docs_compared", "checks", "full_compares", "full_docs", "startup_early",
            "startup_listening")}
        self.kinds = {name: 0 for name, _ in CATEGORIES}
        rng = self.rng
        self.lanes = []
        for i in range(args.ws):
            for kind in ("fn", "raw"):
                self.lanes.append(Lane(f"W{i:02d}{kind[0]}", kind, "ws",
                                       random.Random(rng.random()), self.run_id, conn=i))
        for i in range(args.http):
            kind = "fn" if i % 2 == 0 else "raw"
            self.lanes.append(Lane(f"H{i:02d}{kind[0]}", kind, "http",
                                   random.Random(rng.random()), self.run_id))

    def record_version(self, version, key):
        known = self.versions.setdefault(version, key)
        if known != key:
            raise Finding(f"version {version} was given to {known} and to {key}")
        self.max_version = max(self.max_version, version)

    def committed(self):
        return len(self.versions)

    def herald(self, *args, what):
        p = subprocess.run([self.args.herald, "--data", self.data, *args], capture_output=True,
                           text=True, timeout=600)
        if p.returncode != 0:
            raise Finding(f"{what} exited {p.returncode}:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
        return p.stdout

    def check(self):
        """`herald check` on the stopped server's folder; its version must be
        at least every acknowledged one."""
        out = self.herald("check", what="herald check")
        self.stats["checks"] += 1
        m = re.match(r"ok: version (\d+)", out)
        if not m:
            raise Finding(f"herald check printed {out!r}")
        version = int(m.group(1))
        # Each lane has at most one mutation whose fate is not known yet.
        known = self.committed()
        unknown = sum(1 for lane in self.lanes if lane.pending)
        if version < self.max_version or not known <= version <= known + unknown:
            raise Finding(f"herald check reports version {version}; the highest acknowledged "
                          f"is {self.max_version}, {known} mutations are known to have "
                          f"committed and {unknown} may have")
        self.checked_version = version
        return version

    def full_compare(self):
        """The whole table against every lane's models, after `herald export`."""
        out = os.path.join(self.work, "export")
        shutil.rmtree(out, ignore_errors=True)
        self.herald("export", out, what="herald export")
        docs = []
        path = os.path.join(out, TABLE + ".jsonl")
        if os.path.exists(path):
            with open(path) as f:
                docs = [json.loads(line) for line in f]
        model = {}
        for lane in self.lanes:
            for m in lane.models:
                model.update(m)
        diff = compare(model, by_twitch_id(docs))
        if diff:
            raise Finding(f"the exported documents are not the acknowledged state "
                          f"({len(diff)} differences):\n  " + "\n  ".join(diff[:20]))
        self.stats["full_compares"] += 1
        self.stats["full_docs"] += len(docs)
        return len(docs)

    def start_server(self, rnd):
        started = time.monotonic()
        self.log.write(f"--- round {rnd.number} ({rnd.category})\n")
        rnd.server = tl.Server(self.args.herald, self.app, self.data, expect_start=False,
                               no_sync=False)
        if rnd.server.reader is None:
            raise Finding(f"round {rnd.number}: the server did not start (exit "
                          f"{rnd.server.proc.returncode}):\n{rnd.server.output()}")
        self.start_seconds = (self.start_seconds + [time.monotonic() - started])[-20:]
        if self.key is None:
            self.key = admin_key(rnd.server.lines, self.data)
            if not self.key:
                raise Finding("no admin key on the first start:\n" + rnd.server.output())

    def startup_kill(self, rnd):
        """Killed while starting, perhaps before listening."""
        out_path = os.path.join(self.work, "startup.out")
        with open(out_path, "w") as out:
            proc = subprocess.Popen([self.args.herald, "--data", self.data, "--app", self.app,
                                     "serve", "--port", str(tl.free_port())],
                                    stdout=out, stderr=subprocess.STDOUT)
        longest = max(self.start_seconds) if self.start_seconds else 0.05
        time.sleep(self.rng.uniform(0, longest * 1.2))
        exited = proc.poll()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with open(out_path) as f:
            output = f.read()
        self.log.write(f"--- round {rnd.number} (startup)\n{output}")
        if exited is not None:
            raise Finding(f"round {rnd.number}: the server exited by itself during its start "
                          f"with {exited}:\n{output}")
        self.stats["startup_listening" if "listening on" in output else "startup_early"] += 1

    async def live_round(self, rnd, final=False):
        """Starts the server, connects, lets the lanes resolve their
        unanswered mutations and send new ones, and kills the server the
        way the round's category says (the final round stops it cleanly)."""
        self.start_server(rnd)
        loop = asyncio.get_running_loop()
        lanes, timers = [], []
        try:
            if rnd.category == "early":
                timers.append(loop.call_later(self.rng.uniform(0, 0.1), rnd.kill))
            rnd.http = HttpClient(rnd.server, self.key)
            try:
                for _ in range(self.args.ws):
                    conn = WsConn(await rnd.server.ws(), rnd)
                    rnd.conns.append(conn)
                    r = await conn.request({"type": "auth", "token": self.key})
                    if r["type"] != "ack":
                        raise Finding(f"the admin key was refused: {r}")
                    # A live query, so that commits also push updates.
                    await conn.ws.send(json.dumps({"type": "sub", "id": "failed",
                                                   "path": "videos:list",
                                                   "args": {"status": "Failed"}}))
                r = await rnd.conns[0].request({"type": "admin", "op": "stats"})
                if r["type"] != "result":
                    raise Finding(f"admin stats failed: {r}")
                rnd.start_version = r["value"]["version"]
            except (Unreachable, OSError, websockets.WebSocketException,
                    asyncio.TimeoutError) as e:
                if not rnd.killed:
                    raise Finding(f"round {rnd.number}: connecting failed: {e}") from e
            if rnd.start_version is not None:
                self.check_start_version(rnd)
                rnd.stopping = final
                lanes = [loop.create_task(lane.run(rnd)) for lane in self.lanes]
                if rnd.category == "early":
                    await self.wait_lanes(lanes, until_killed=rnd)
                elif rnd.category in ("random", "aimed", "idle"):
                    await asyncio.sleep(self.rng.uniform(0.05, 1.2 if rnd.category == "random"
                                                         else 0.9))
                    if rnd.category == "random":
                        rnd.kill()
                    elif rnd.category == "aimed":
                        rnd.aim = True
                        # In case every lane stops before an acknowledgement.
                        timers.append(loop.call_later(2.0, rnd.kill))
                    else:
                        rnd.stopping = True
                        await self.wait_lanes(lanes)
                        await asyncio.sleep(self.rng.uniform(0, 0.2))
                        rnd.kill()
                await self.wait_lanes(lanes)
                if all(lane.resolved for lane in self.lanes):
                    # Every mutation committed before the start now has its version.
                    below = sum(1 for v in self.versions if v <= rnd.start_version)
                    if below != rnd.start_version:
                        raise Finding(f"round {rnd.number}: the server restarted at version "
                                      f"{rnd.start_version}, but {below} mutations committed "
                                      f"before it")
            elif not rnd.killed:
                raise Finding(f"round {rnd.number}: no version from the server")
            if final:
                code = rnd.server.stop()
                if code != 0:
                    raise Finding(f"the final server exited {code}:\n" + rnd.server.output())
        finally:
            for timer in timers:
                timer.cancel()
            if not final:
                rnd.kill()
            rnd.server.stop()
            for conn in rnd.conns:
                await conn.close()
            if lanes:  # after a finding: let the others see the kill
                await asyncio.wait(lanes, timeout=TIMEOUT + 5)
                for task in lanes:
                    if task.done():
                        task.exception()  # retrieved: asyncio need not report it
            self.log.write(rnd.server.output())
            self.log.flush()
        for task in lanes:
            if task.done() and task.exception():
                raise task.exception()
        if rnd.problem:
            raise Finding(f"round {rnd.number}: {rnd.problem}")

    async def wait_lanes(self, lanes, until_killed=None):
        if not lanes:
            return
        deadline = time.monotonic() + 4 * TIMEOUT
        while not all(t.done() for t in lanes):
            if until_killed and until_killed.killed:
                break
            if time.monotonic() > deadline:
                raise Finding("the clients did not finish: a hung server or client")
            await asyncio.sleep(0.005)
            for t in lanes:
                if t.done() and t.exception():
                    raise t.exception()

    def check_start_version(self, rnd):
        v = rnd.start_version
        if v < self.max_version or v < self.last_start_version:
            raise Finding(f"round {rnd.number}: the server restarted at version {v}, below an "
                          f"earlier one (acknowledged {self.max_version}, last start "
                          f"{self.last_start_version})")
        if self.checked_version is not None and v != self.checked_version:
            raise Finding(f"round {rnd.number}: the server restarted at version {v}; herald "
                          f"check said {self.checked_version}")
        self.last_start_version, self.checked_version = v, None

    def pick_category(self, number):
        if number == 1 or self.key is None:
            return "random"  # the first start prints the admin key: let it
        r, acc = self.rng.random(), 0
        for name, p in CATEGORIES:
            acc += p
            if r < acc:
                return name
        return CATEGORIES[-1][0]

    async def main(self):
        started = time.monotonic()
        n = self.args.kills
        print(f"crash_scale: {n} kills, seed {self.args.seed}, {len(self.lanes)} lanes "
              f"({self.args.ws} WebSocket connections, {self.args.http} HTTP clients), "
              f"work folder {self.work}", flush=True)
        print(f"machine: {machine(self.work)}", flush=True)
        for number in range(1, n + 1):
            rnd = Round(self, number, self.pick_category(number))
            self.kinds[rnd.category] += 1
            if rnd.category == "startup":
                self.startup_kill(rnd)
            else:
                await self.live_round(rnd)
            self.stats["kills"] += 1
            in_flight = sum(1 for lane in self.lanes if lane.pending)
            version = None
            if rnd.category == "idle" or number % self.args.check_every == 0:
                version = self.check()
            if rnd.category == "idle" and in_flight == 0:
                self.full_compare()
            self.rounds_log.write(json.dumps({
                "round": number, "category": rnd.category, "start_version": rnd.start_version,
                "checked_version": version, "in_flight": in_flight,
                "acked": self.stats["acked"]}) + "\n")
            if number % self.args.progress == 0 or number == n:
                el = time.monotonic() - started
                s = self.stats
                print(f"{number}/{n} kills, {el:.0f} s (~{el / number * (n - number):.0f} s "
                      f"left): {s['acked']} acknowledged, {s['retries']} retries "
                      f"({s['replayed']} answered from records), version {self.max_version}, "
                      f"{s['checks']} checks", flush=True)
        # The last start: every unanswered mutation is retried, then a clean stop.
        rnd = Round(self, n + 1, "final")
        await self.live_round(rnd, final=True)
        left = [lane.name for lane in self.lanes if lane.pending or not lane.resolved]
        if left:
            raise Finding(f"lanes with unresolved mutations after the final start: {left}")
        version = self.check()
        if version != self.committed() or version != self.max_version:
            raise Finding(f"the final version is {version}; {self.committed()} mutations "
                          f"committed, the highest acknowledged version is {self.max_version}")
        docs = self.full_compare()
        return time.monotonic() - started, docs, version


def machine(folder):
    """CPUs, CPU model, kernel, the data folder's file system, date, load."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    fs = subprocess.run(["df", "--output=fstype", folder], capture_output=True,
                        text=True).stdout.split()[-1:]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs, {model}, {os.uname().sysname} {os.uname().release}, "
            f"data on {''.join(fs) or '?'}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"load average {load}")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=1000)
    p.add_argument("--seed", type=int, default=random.randrange(1, 1 << 31))
    p.add_argument("--herald", default=os.path.join(ROOT, "build-crash", "herald"))
    p.add_argument("--app", default=os.path.join(ROOT, "examples", "twitch-jobs"))
    p.add_argument("--ws", type=int, default=3, help="WebSocket connections, two lanes each")
    p.add_argument("--http", type=int, default=4, help="HTTP clients, one lane each")
    p.add_argument("--check-every", type=int, default=10,
                   help="run `herald check` after every Nth kill (and every idle one)")
    p.add_argument("--progress", type=int, default=25, help="print a line every N kills")
    p.add_argument("--workdir", default=None, help="where the work folder goes (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work folder after a pass")
    return p.parse_args()


def main():
    args = parse_args()
    args.herald = os.path.abspath(args.herald)
    run = Run(args)
    loop = asyncio.new_event_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=args.http + 4))
    try:
        seconds, docs, version = loop.run_until_complete(run.main())
    except (Finding, subprocess.TimeoutExpired) as e:
        print(f"FINDING (seed {args.seed}): {e}")
        print(f"kept: {run.work} (data/, server.log, rounds.jsonl)")
        return 1
    finally:
        run.log.close()
        run.rounds_log.close()
    s = run.stats
    kinds = ", ".join(f"{v} {k}" for k, v in run.kinds.items())
    print(f"ok: {s['kills']} kills ({kinds}) in {seconds:.0f} s, seed {args.seed}")
    print(f"machine: {machine(run.work)}")
    print(f"  committed mutations: {version} = the final version: {s['acked']} acknowledged "
          f"at once ({s['acked_ws']} WebSocket, {s['acked_http']} HTTP), "
          f"{s['replayed']} on their retry, from the idempotency record")
    print(f"  startup kills: {s['startup_early']} before the server listened, "
          f"{s['startup_listening']} after")
    print(f"  in flight at a kill: {s['inflight_committed'] + s['inflight_lost']} "
          f"({s['inflight_committed']} had committed, {s['inflight_lost']} had not)")
    print(f"  retries: {s['retries']}: {s['replayed']} answered from idempotency records, "
          f"{s['retried_applied']} applied; acknowledged ones sent again: {s['resent']}, "
          f"same answers")
    print(f"  duplicates 0, losses 0; documents compared after restarts {s['docs_compared']}, "
          f"in {s['full_compares']} full exports {s['full_docs']}; final table {docs} documents")
    print(f"  herald check: {s['checks']} runs, all ok")
    if args.keep:
        print(f"kept: {run.work}")
    else:
        shutil.rmtree(run.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
