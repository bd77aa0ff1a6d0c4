"""Black-box tests of `herald backup` and `herald restore` (docs/operations.md,
"Backups"):

- backups taken while a server commits numbered mutations, one after the
  other, and uploads and deletes files: each backup passes `herald check`,
  holds exactly the numbers 1..k for a k between the last number
  acknowledged before the backup started and the last one sent when it
  ended, and holds the file of every `_storage` row (its SHA-256) and no
  other file; the folder's secrets come along, mode 0600;
- a backup with no server running holds every acknowledged number;
- a backup into a non-empty folder and a restore into a non-empty data
  folder are refused, writing nothing; no temporary folder is left behind;
- a restored folder passes `herald check`, and `herald serve` on it answers
  queries and serves its files with the URLs of the original;
- a folder whose stored file went missing behind Herald's back is refused
  (Corrupt, naming the row), and leaves nothing behind.

Run as: /usr/bin/python3 test_backup.py <herald> <source root>
"""
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import Server, call_value, check, finish, value, write_app  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  nums: defineTable({ n: v.number() }),
});
"""

NUMS = r'''
local M = {}
M.add = herald.mutation{args = {n = v.number()}, handler = function(ctx, a)
  ctx.db:insert("nums", {n = a.n})
end}
M.count = herald.query{handler = function(ctx) return #ctx.db:query("nums"):collect() end}
return M
'''

FILES = r'''
local M = {}
M.uploadUrl = herald.mutation{handler = function(ctx) return ctx.storage:generateUploadUrl() end}
M.url = herald.query{args = {id = v.id("_storage")}, handler = function(ctx, a)
  return ctx.storage:getUrl(a.id)
end}
M.remove = herald.mutation{args = {id = v.id("_storage")}, handler = function(ctx, a)
  ctx.storage:delete(a.id)
end}
return M
'''


def herald(*args):
    return subprocess.run([HERALD, *args], capture_output=True, text=True, timeout=300)


class Writers:
    """A thread that commits nums:add 1, 2, 3... one at a time, and one that
    uploads files and deletes some of them, until stopped."""

    def __init__(self, server):
        self.server = server
        self.sent = 0   # the last number sent (it may be committed, not yet acknowledged)
        self.acked = 0  # the last number acknowledged
        self.errors = []
        self.uploads = 0
        self.deletes = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._numbers, daemon=True),
                        threading.Thread(target=self._files, daemon=True)]
        for t in self.threads:
            t.start()

    def _numbers(self):
        while not self.stopping.is_set():
            n = self.sent + 1
            self.sent = n
            status, reply = call_value(self.server, "mutation", "nums:add", {"n": n})
            if status != 200:
                self.errors.append(f"nums:add {n}: {status} {reply}")
                return
            self.acked = n

    def _files(self):
        rng = random.Random(15)
        live = []
        try:
            while not self.stopping.is_set():
                url = value(self.server, "mutation", "files:uploadUrl")
                blob = rng.randbytes(rng.randint(1, 200_000))
                req = urllib.request.Request(url, data=blob, method="POST",
                                             headers={"Content-Type": "application/octet-stream"})
                with urllib.request.urlopen(req, timeout=30) as r:
                    live.append(json.loads(r.read())["storageId"])
                self.uploads += 1
                if len(live) > 3 and rng.random() < 0.6:
                    victim = live.pop(rng.randrange(len(live)))
                    value(self.server, "mutation", "files:remove", {"id": victim})
                    self.deletes += 1
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            self.errors.append(f"files: {e!r}")

    def wait_for_progress(self, numbers=20, files=2):
        start_n, start_f = self.acked, self.uploads + self.deletes
        end = time.time() + 30
        while (self.acked < start_n + numbers or self.uploads + self.deletes < start_f + files) \
                and time.time() < end and not self.errors:
            self.stopping.wait(0.01)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def verify_backup(name, backup, work, low, high, source):
    """`herald check` passes on `backup`; it holds the numbers 1..k, low <= k <= high, and
    exactly the files of its `_storage` rows. Returns k."""
    r = herald("--data", backup, "check")
    check(r.returncode == 0, f"{name}: herald check: {r.returncode} {r.stdout} {r.stderr}")
    out = os.path.join(work, name + "-export")
    r = herald("--data", backup, "export", out)
    if not check(r.returncode == 0, f"{name}: export: {r.stderr}"):
        return 0
    numbers = sorted(doc["n"] for doc in read_jsonl(os.path.join(out, "nums.jsonl")))
    k = len(numbers)
    check(numbers == list(range(1, k + 1)), f"{name}: the numbers are not 1..{k}: "
          f"{[x for i, x in enumerate(numbers) if x != i + 1][:5]}")
    check(low <= k <= high, f"{name}: holds 1..{k}, expected between {low} and {high}")
    rows = {doc["_id"]: doc for doc in read_jsonl(os.path.join(out, "_storage.jsonl"))}
    files = set(os.listdir(os.path.join(backup, "files")))
    check(files == set(rows), f"{name}: files {len(files)} vs rows {len(rows)}: "
          f"extra {sorted(files - set(rows))[:3]}, missing {sorted(set(rows) - files)[:3]}")
    for sid in files & set(rows):
        with open(os.path.join(backup, "files", sid), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        check(digest == rows[sid]["sha256"], f"{name}: file {sid} is not its row's bytes")
    for secret in ("storage.key", "admin.key", "admin-key.sha256"):
        path = os.path.join(backup, secret)
        if not check(os.path.exists(path), f"{name}: {secret} is in the backup"):
            continue
        check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, f"{name}: {secret} is mode 0600")
        with open(path, "rb") as a, open(os.path.join(source, secret), "rb") as b:
            check(a.read() == b.read(), f"{name}: {secret} is the source's")
    return k


def no_temporaries(work):
    left = [n for n in os.listdir(work) if ".tmp-" in n]
    check(not left, f"no temporary backup folder is left behind: {left}")


def main():
    work = tempfile.mkdtemp(prefix="herald-backup-")
    app = write_app(work, SCHEMA, {"nums": NUMS, "files": FILES})
    data = os.path.join(work, "data")
    server = Server(HERALD, app, data)
    writers = None
    try:
        writers = Writers(server)
        writers.wait_for_progress()
        # Hot backups, each while numbers and files are being written.
        backups = []
        for i in range(4):
            writers.wait_for_progress()
            low = writers.acked
            dest = os.path.join(work, f"backup-{i}")
            if i == 1:
                os.mkdir(dest)  # an empty folder is a fine destination too
            r = herald("--data", data, "backup", dest)
            high = writers.sent
            print(f"backup {i} (acknowledged {low}, sent {high}):", r.stdout.strip(), flush=True)
            check(r.returncode == 0 and "backed up to" in r.stdout,
                  f"backup {i}: {r.returncode} {r.stdout} {r.stderr}")
            backups.append((dest, low, high))
        writers.wait_for_progress()
        writers.stop()
        check(not writers.errors, f"the writers ran without errors: {writers.errors[:3]}")
        check(writers.uploads > 4 and writers.deletes > 0,
              f"files were uploaded ({writers.uploads}) and deleted ({writers.deletes})")
        for i, (dest, low, high) in enumerate(backups):
            verify_backup(f"backup-{i}", dest, work, low, high, data)

        # Many files deleted one after the other while a backup copies them: files of its
        # snapshot go before it gets to them, and it takes newer snapshots until one has
        # all its files.
        many = []
        for i in range(200):
            req = urllib.request.Request(value(server, "mutation", "files:uploadUrl"),
                                         data=os.urandom(2000 + i), method="POST",
                                         headers={"Content-Type": "text/plain"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                many.append(json.loads(resp.read())["storageId"])
        deleter = threading.Thread(target=lambda: [
            value(server, "mutation", "files:remove", {"id": sid}) for sid in many], daemon=True)
        deleter.start()
        dest = os.path.join(work, "backup-deleting")
        r = herald("--data", data, "backup", dest)
        print("backup while deleting:", r.stdout.strip(), flush=True)
        check(r.returncode == 0, f"backup while files are deleted: {r.returncode} {r.stderr}")
        deleter.join(timeout=120)
        verify_backup("backup-deleting", dest, work, writers.acked, writers.sent, data)

        # Refusals: a folder with something in it is never written to.
        full = os.path.join(work, "full")
        os.mkdir(full)
        with open(os.path.join(full, "keep.txt"), "w") as f:
            f.write("mine")
        r = herald("--data", data, "backup", full)
        check(r.returncode == 1 and "not empty" in r.stderr, f"backup into a non-empty folder: "
              f"{r.returncode} {r.stderr}")
        r = herald("--data", full, "restore", backups[0][0])
        check(r.returncode == 1 and "not empty" in r.stderr, f"restore into a non-empty folder: "
              f"{r.returncode} {r.stderr}")
        check(os.listdir(full) == ["keep.txt"], f"the non-empty folder is untouched: "
              f"{os.listdir(full)}")
        # A file kept to the end, and the URL the original hands out for it.
        keeper = os.urandom(5000)
        req = urllib.request.Request(value(server, "mutation", "files:uploadUrl"), data=keeper,
                                     method="POST", headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            keeper_id = json.loads(resp.read())["storageId"]
        url = value(server, "query", "files:url", {"id": keeper_id})
    finally:
        if writers:
            writers.stop()
        server.stop()

    # With no server running: every acknowledged number.
    cold = os.path.join(work, "backup-cold")
    r = herald("--data", data, "backup", cold + "/")
    check(r.returncode == 0, f"backup without a server: {r.returncode} {r.stderr}")
    k = verify_backup("backup-cold", cold, work, writers.acked, writers.sent, data)

    # Restore, then serve the restored folder.
    restored = os.path.join(work, "restored")
    r = herald("--data", restored, "restore", cold)
    check(r.returncode == 0 and "restored into" in r.stdout,
          f"restore: {r.returncode} {r.stdout} {r.stderr}")
    verify_backup("restored", restored, work, k, k, data)
    no_temporaries(work)
    server = Server(HERALD, app, restored)
    try:
        check(value(server, "query", "nums:count") == k, "the restored server counts k numbers")
        check(value(server, "mutation", "nums:add", {"n": k + 1}) is None,
              "the restored server takes mutations")
        # The storage key came along: the URL the original handed out reads the file.
        host = url.split("/")[2]
        with urllib.request.urlopen(url.replace(host, f"127.0.0.1:{server.port}", 1),
                                    timeout=30) as resp:
            check(resp.status == 200 and resp.read() == keeper,
                  "a file URL of the original reads the file from the restored folder")
    finally:
        check(server.stop() == 0, "the restored server stops cleanly")

    # A folder that lost a stored file (not deleted through Herald) is refused, naming the row.
    os.remove(os.path.join(restored, "files", keeper_id))
    damaged = os.path.join(work, "backup-damaged")
    r = herald("--data", restored, "backup", damaged)
    check(r.returncode == 1 and keeper_id in r.stderr and "has no file" in r.stderr,
          f"a row without its file fails the backup: {r.returncode} {r.stderr}")
    check(not os.path.exists(damaged), "a failed backup leaves nothing at its destination")
    no_temporaries(work)
    code = finish("test_backup")
    if code == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("left for a look:", work)
    return code


if __name__ == "__main__":
    sys.exit(main())
