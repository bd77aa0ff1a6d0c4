"""A small Python client for Herald's native protocol, used by the
black-box tests: it keeps each subscription's result up to date by
applying the diffs the server sends (docs/diffs.md), as a browser client
would.
"""
import asyncio
import json


def apply_patch(obj, patch):
    removed = set(patch.get("u", []))
    out = {k: v for k, v in obj.items() if k not in removed}
    out.update(patch.get("s", {}))
    if "p" in patch:
        out["page"] = apply_list(obj["page"], patch["p"])
    return out


def apply_list(lst, diff):
    """Removed and moved documents leave; changed ones are patched; moves and
    inserts take their positions in ascending order; the rest fill the gaps
    in their old order."""
    removes = set(diff.get("r", []))
    moves = diff.get("m", [])
    inserts = diff.get("i", [])
    index = {doc["_id"]: i for i, doc in enumerate(lst)}
    current = list(lst)
    for doc_id, patch in diff.get("c", []):
        i = index[doc_id]
        current[i] = apply_patch(lst[i], patch)
    moved = {doc_id for doc_id, _ in moves}
    stay = iter([current[i] for i, doc in enumerate(lst)
                 if doc["_id"] not in removes and doc["_id"] not in moved])
    placed = sorted([(pos, current[index[doc_id]]) for doc_id, pos in moves] +
                    [(pos, doc) for pos, doc in inserts], key=lambda p: p[0])
    out, k = [], 0
    for position in range(len(lst) - len(removes) + len(inserts)):
        if k < len(placed) and placed[k][0] == position:
            out.append(placed[k][1])
            k += 1
        else:
            out.append(next(stay))
    return out


def apply_diff(value, diff):
    if "v" in diff:
        return diff["v"]
    if "a" in diff:
        return apply_list(value, diff["a"])
    if "o" in diff:
        return apply_patch(value, diff["o"])
    raise ValueError(f"unknown diff {diff!r}")


class Client:
    """One connection: request/answer by id, and live subscription results."""

    def __init__(self, ws):
        self.ws = ws
        self.results = {}   # subscription id -> current value
        self.versions = {}  # subscription id -> version of that value
        self.answers = {}   # request id -> answer message
        self.on_change = None  # called (sub_id, value, version) after each change
        self.next_id = 0
        self.errors = []
        self.last_version = 0
        self.pending_subs = set()

    async def request(self, msg, timeout=30):
        self.next_id += 1
        msg = dict(msg, id=msg.get("id", f"r{self.next_id}"))
        await self.ws.send(json.dumps(msg))
        deadline = asyncio.get_running_loop().time() + timeout
        while msg["id"] not in self.answers:
            await self.pump(deadline - asyncio.get_running_loop().time())
        return self.answers.pop(msg["id"])

    async def pump(self, timeout=30):
        """Reads one message and applies it."""
        m = json.loads(await asyncio.wait_for(self.ws.recv(), max(timeout, 0.01)))
        if m["type"] == "update":
            if m["version"] < self.last_version:
                self.errors.append(f"version went back: {m['version']} < {self.last_version}")
            self.last_version = m["version"]
            for ch in m["changes"]:
                sid = ch["id"]
                if "value" in ch:
                    self.results[sid] = ch["value"]
                else:
                    self.results[sid] = apply_diff(self.results.get(sid), ch["diff"])
                self.versions[sid] = m["version"]
                if self.on_change:
                    self.on_change(sid, self.results[sid], m["version"])
        elif m["type"] == "result" and m["id"] in self.pending_subs:
            self.pending_subs.discard(m["id"])
            self.results[m["id"]] = m["value"]
            self.versions[m["id"]] = m["version"]
            self.answers[m["id"]] = m
            if self.on_change:
                self.on_change(m["id"], m["value"], m["version"])
        else:
            if "version" in m and m["type"] == "ack":
                self.last_version = max(self.last_version, m["version"])
            self.answers[m.get("id")] = m
        return m

    async def subscribe(self, sub_id, query):
        self.pending_subs.add(sub_id)
        return await self.request({"type": "sub", "id": sub_id, "query": query})
