"""Black-box tests of stored files in `herald export`, `herald import` and
`herald check` (docs/storage.md, "Files").

A data folder gets real files the way an app stores them: `herald serve`
on a tiny app whose mutation calls ctx.storage:generateUploadUrl(), and
bytes POSTed to that URL. Then:

- export copies every `_storage` row's file to DIR/files/<id>, byte for
  byte (files larger than the copy buffer included), and leaves no
  temporary file;
- import into a fresh folder restores rows (ids kept) and files, which a
  server started on it serves (and which check and export read beside
  it); exporting that again gives the same rows and bytes; importing the same export again is refused and touches no
  file;
- an export whose file is missing, truncated or altered is refused with an
  error naming the row, and leaves no file without its row; `import
  --table _storage` is refused;
- `herald check` reports a row whose file is gone and a file whose size
  is not its row's as problems (exit 1), and a file without a row and a
  temporary file as notices (exit 0).

Run as: /usr/bin/python3 test_files.py <herald> <source root>
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from herald_testlib import Server, call, check, finish, write_app  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  attachments: defineTable({ storageId: v.id("_storage"), name: v.string() }),
});
"""

FUNCTIONS = r'''
local M = {}
M.uploadUrl = herald.mutation{handler = function(ctx) return ctx.storage:generateUploadUrl() end}
M.attach = herald.mutation{args = {storageId = v.id("_storage"), name = v.string()},
  handler = function(ctx, a) return ctx.db:insert("attachments", a) end}
M.url = herald.query{args = {id = v.id("_storage")}, handler = function(ctx, a)
  return ctx.storage:getUrl(a.id)
end}
return M
'''


def run(*args):
    return subprocess.run([HERALD, *args], capture_output=True, text=True, timeout=120)


def value(server, kind, path, args=None):
    status, reply = call(server, kind, path, args)
    if status != 200:
        raise RuntimeError(f"{path}: {status} {reply}")
    return reply["value"]


def upload(server, blob, content_type):
    url = value(server, "mutation", "files:uploadUrl")
    req = urllib.request.Request(url, data=blob, method="POST",
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["storageId"]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def storage_rows(export):
    with open(os.path.join(export, "_storage.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    work = tempfile.mkdtemp(prefix="herald-files-")
    try:
        app = write_app(work, SCHEMA, {"files": FUNCTIONS})

        # A data folder with files, stored as an app stores them.
        data = os.path.join(work, "data")
        blobs = {}
        server = Server(HERALD, app, data)
        try:
            # One byte, a few pages, and more than the export's 256 KiB copy buffer.
            for name, blob, ctype in (("one", b"x", "text/plain"),
                                      ("small", os.urandom(100_000), "image/png"),
                                      ("large", os.urandom(1_500_000), "application/pdf")):
                sid = upload(server, blob, ctype)
                value(server, "mutation", "files:attach", {"storageId": sid, "name": name})
                blobs[sid] = (blob, ctype)
        finally:
            server.stop()
        check(len(blobs) == 3, f"three files stored: {len(blobs)}")
        p = run("--data", data, "check")
        check(p.returncode == 0 and "notice" not in p.stdout and p.stdout.startswith("ok:"),
              f"check of a sound folder: {p.returncode} {p.stdout} {p.stderr}")

        # Export: rows like any table, and each row's file byte for byte.
        out = os.path.join(work, "export")
        p = run("--data", data, "export", out)
        check(p.returncode == 0, f"export: {p.stderr}")
        rows = storage_rows(out)
        check(sorted(r["_id"] for r in rows) == sorted(blobs), f"_storage rows exported: {rows}")
        for r in rows:
            blob, ctype = blobs[r["_id"]]
            check(r["size"] == len(blob) and r["sha256"] == hashlib.sha256(blob).hexdigest()
                  and r.get("contentType") == ctype, f"row {r}")
        check(listing(os.path.join(out, "files")) == sorted(blobs),
              f"the export's files are the rows' and nothing else: {listing(os.path.join(out, 'files'))}")
        for sid, (blob, _) in blobs.items():
            check(read(os.path.join(out, "files", sid)) == blob, f"exported bytes of {sid}")
        tables = json.loads(read(os.path.join(out, "_tables.json")))
        check("_storage" in tables and "attachments" in tables, f"_tables.json: {tables}")

        # Import into a fresh folder: the same rows, ids and bytes.
        data2 = os.path.join(work, "data2")
        p = run("--no-sync", "--data", data2, "import", out)
        check(p.returncode == 0 and "imported 6 documents" in p.stdout,
              f"import: {p.returncode} {p.stdout} {p.stderr}")
        check(listing(os.path.join(data2, "files")) == sorted(blobs),
              f"imported files: {listing(os.path.join(data2, 'files'))}")
        for sid, (blob, _) in blobs.items():
            check(read(os.path.join(data2, "files", sid)) == blob, f"imported bytes of {sid}")
        p = run("--data", data2, "check")
        check(p.returncode == 0 and "notice" not in p.stdout, f"check after import: {p.stdout} {p.stderr}")
        again = os.path.join(work, "export2")
        check(run("--data", data2, "export", again).returncode == 0, "export of the import")
        for name in ("_storage.jsonl", "attachments.jsonl", "_tables.json"):
            check(read(os.path.join(out, name)) == read(os.path.join(again, name)),
                  f"export of the import equals the original export ({name})")
        for sid, (blob, _) in blobs.items():
            check(read(os.path.join(again, "files", sid)) == blob, f"re-exported bytes of {sid}")

        # A server on the imported folder keeps the files (the start's sweep) and serves them.
        server = Server(HERALD, app, data2)
        try:
            for sid, (blob, ctype) in blobs.items():
                url = value(server, "query", "files:url", {"id": sid})
                with urllib.request.urlopen(url, timeout=30) as r:
                    got, gtype = r.read(), r.headers.get("Content-Type")
                check(got == blob and gtype == ctype, f"served after import: {sid} {gtype}")
            # Beside the running server: check and export read the folder as it is.
            p = run("--data", data2, "check")
            check(p.returncode == 0 and "notice" not in p.stdout,
                  f"check beside the server: {p.stdout} {p.stderr}")
            beside = os.path.join(work, "export-beside")
            p = run("--data", data2, "export", beside)
            check(p.returncode == 0 and listing(os.path.join(beside, "files")) == sorted(blobs),
                  f"export beside the server: {p.stderr}")
        finally:
            server.stop()
        check(listing(os.path.join(data2, "files")) == sorted(blobs), "the sweep kept every file")

        # The same export again: refused, and the files in place are not touched.
        before = {sid: os.stat(os.path.join(data2, "files", sid)).st_ino for sid in blobs}
        p = run("--no-sync", "--data", data2, "import", out)
        check(p.returncode == 1 and "already exists" in p.stderr, f"duplicate import: {p.stderr}")
        after = {sid: os.stat(os.path.join(data2, "files", sid)).st_ino for sid in blobs}
        check(before == after and listing(os.path.join(data2, "files")) == sorted(blobs),
              "a refused import leaves the files as they were")

        # Damaged exports: refused with the row named, and no file left without its row.
        small = next(s for s, (b, _) in blobs.items() if len(b) == 100_000)
        large = next(s for s, (b, _) in blobs.items() if len(b) == 1_500_000)
        damages = {
            "missing": lambda p: os.unlink(p),
            "truncated": lambda p: open(p, "r+b").truncate(1000),
            "altered": lambda p: open(p, "r+b").write(b"\0" * 8),
        }
        for what, damage in damages.items():
            broken = os.path.join(work, "broken-" + what)
            shutil.copytree(out, broken)
            damage(os.path.join(broken, "files", large))
            target = os.path.join(work, "data-" + what)
            p = run("--no-sync", "--data", target, "import", broken)
            check(p.returncode == 1 and large in p.stderr and "_storage" in p.stderr,
                  f"import of a {what} file is refused and names it: {p.returncode} {p.stderr}")
            check(listing(os.path.join(target, "files")) == [],
                  f"a refused import ({what}) leaves no file: {listing(os.path.join(target, 'files'))}")
            p = run("--data", target, "check")
            check(p.returncode == 0 and "notice" not in p.stdout,
                  f"check after a refused import ({what}): {p.stdout} {p.stderr}")
        check("no file in the export" in run("--no-sync", "--data", os.path.join(work, "x"),
                                             "import", os.path.join(work, "broken-missing")).stderr,
              "a missing file is called missing")
        p = run("--no-sync", "--data", data2, "import", "--table", "_storage",
                os.path.join(out, "_storage.jsonl"))
        check(p.returncode == 1 and "export folder" in p.stderr,
              f"import --table _storage is refused: {p.stderr}")

        # check: problems (exit 1) and notices (exit 0).
        data3 = os.path.join(work, "data3")
        check(run("--no-sync", "--data", data3, "import", out).returncode == 0, "a third copy")
        files3 = os.path.join(data3, "files")
        orphan = "0" * 32
        shutil.copy(os.path.join(files3, small), os.path.join(files3, orphan))
        with open(os.path.join(files3, ".tmp-leftover"), "wb") as f:
            f.write(b"half")
        p = run("--data", data3, "check")
        check(p.returncode == 0 and "ok: version" in p.stdout and
              f"notice: {os.path.join(files3, orphan)} has no _storage row" in p.stdout and
              ".tmp-leftover is a temporary file" in p.stdout,
              f"files without rows are notices: {p.returncode} {p.stdout} {p.stderr}")
        os.unlink(os.path.join(files3, large))
        with open(os.path.join(files3, small), "r+b") as f:
            f.truncate(99_999)
        p = run("--data", data3, "check")
        check(p.returncode == 1 and "Corrupt: 2 problems found" in p.stderr,
              f"check counts two problems: {p.returncode} {p.stderr}")
        check(f"_storage: row {large} has no file" in p.stdout,
              f"check names the row without its file: {p.stdout}")
        check(f"_storage: row {small} says 100000 bytes, its file" in p.stdout and "has 99999" in p.stdout,
              f"check names the file of the wrong size: {p.stdout}")
        check("notice:" in p.stdout, "notices are still shown beside problems")
        # Export refuses a folder whose file is gone, and says what to do.
        shutil.copy(os.path.join(out, "files", small), os.path.join(files3, small))
        p = run("--data", data3, "export", os.path.join(work, "export3"))
        check(p.returncode == 1 and large in p.stderr and "herald check" in p.stderr,
              f"export of a row without its file: {p.stderr}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("files")


sys.exit(main())
