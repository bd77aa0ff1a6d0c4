"""Black-box tests of file storage in `herald serve` (docs/protocol.md,
"Files"; docs/functions.md, "Files"), over HTTP with raw sockets where the
client must misbehave:

- an upload URL from ctx.storage:generateUploadUrl() takes one file, byte
  for byte, whatever its size up to --max-file-size, and answers
  {"storageId"}; the same URL again gets the same id for the same bytes and
  409 for others; a forged URL is 404; a bad Content-Type is 415; a body over
  the limit is 413; uploads past --max-uploads are 503;
- a truncated upload (the client stops half-way and goes) and a stalled one
  (nothing for --request-timeout) leave no row and no file;
- a URL from ctx.storage:getUrl() serves the bytes with their type, length,
  ETag (the SHA-256), 304 for If-None-Match, single ranges (206, suffix
  ranges, 416 past the end); any other token, another id's token, or a path
  that is not an id is 404;
- functions cannot write `_storage` themselves; ctx.storage:delete removes
  the row at once and the bytes once that is durable (the URL then 404s);
- at start, what a crash left in DATA/files (a temporary file, a file
  without its row) is removed.

Run as: /usr/bin/python3 test_storage.py <herald> <source root>
"""
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import Server, check, finish, http, write_app  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  files: defineTable({ storageId: v.id("_storage"), name: v.string() }),
});
"""

FILES = r'''
local M = {}
M.uploadUrl = herald.mutation{handler = function(ctx) return ctx.storage:generateUploadUrl() end}
M.url = herald.query{args = {id = v.id("_storage")}, handler = function(ctx, a)
  return ctx.storage:getUrl(a.id)
end}
M.meta = herald.query{args = {id = v.id("_storage")}, handler = function(ctx, a)
  return ctx.storage:getMetadata(a.id)
end}
M.count = herald.query{handler = function(ctx)
  return #ctx.db.system:query("_storage"):collect()
end}
M.remove = herald.mutation{args = {id = v.id("_storage")}, handler = function(ctx, a)
  ctx.storage:delete(a.id)
end}
M.removeThenFail = herald.mutation{args = {id = v.id("_storage")}, handler = function(ctx, a)
  ctx.storage:delete(a.id)
  error("changed my mind")
end}
M.forge = herald.mutation{handler = function(ctx)
  return ctx.db:insert("_storage", {sha256 = "00", size = 1})
end}
return M
'''


def call(server, kind, path, args=None):
    status, reply = http(server, kind, {"path": path, "args": args or {}})
    if status != 200:
        raise RuntimeError(f"{path}: {status} {reply}")
    return reply["value"]


def request(url, data=None, headers=None, method=None):
    """(status, headers, body) of one HTTP request; errors are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def upload(server, data, content_type="application/octet-stream", url=None):
    url = url or call(server, "mutation", "files:uploadUrl")
    return request(url, data=data, headers={"Content-Type": content_type}), url


def raw_post(server, path, headers, body, then_close=True, wait=0.0):
    """Sends a POST by hand (a client that misbehaves); returns what came back before close."""
    s = socket.create_connection(("127.0.0.1", server.port))
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s.sendall(head.encode() + body)
    if wait:
        time.sleep(wait)
    if then_close:
        s.close()
        return b""
    return read_all(s)


def read_all(s):
    """Everything the server sends until it closes (or 10 s of silence); closes the socket."""
    s.settimeout(10)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    s.close()
    return got


def raw_get(server, path):
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return read_all(s)


def leftovers(data):
    d = os.path.join(data, "files")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def main():
    work = tempfile.mkdtemp(prefix="herald-storage-")
    app = write_app(work, SCHEMA, {"files": FILES})
    data = os.path.join(work, "data")
    extra = ["--max-file-size", "2", "--max-uploads", "2", "--request-timeout", "2",
             "--allow-origin", "http://page.example"]
    server = Server(HERALD, app, data, extra=extra)
    try:
        # One file, byte for byte.
        blob = os.urandom(300_000)
        (status, _, body), url = upload(server, blob, "image/png")
        check(status == 200, f"upload: {status} {body[:200]}")
        sid = json.loads(body)["storageId"]
        meta = call(server, "query", "files:meta", {"id": sid})
        check(meta["size"] == len(blob) and meta["sha256"] == hashlib.sha256(blob).hexdigest()
              and meta["contentType"] == "image/png", f"metadata: {meta}")
        get = call(server, "query", "files:url", {"id": sid})
        status, headers, body = request(get)
        headers = {k.lower(): v for k, v in headers.items()}
        check(status == 200 and body == blob, f"download: {status}, {len(body)} bytes")
        check(headers.get("content-type") == "image/png"
              and headers.get("content-length") == str(len(blob)), f"download headers: {headers}")
        etag = headers.get("etag")
        check(etag == '"' + hashlib.sha256(blob).hexdigest() + '"', f"ETag is the SHA-256: {etag}")
        check("immutable" in headers.get("cache-control", ""), "caching headers")
        status, _, body = request(get, headers={"If-None-Match": etag})
        check(status == 304 and body == b"", f"If-None-Match: {status}")
        status, headers, body = request(get, headers={"Range": "bytes=100-199"})
        headers = {k.lower(): v for k, v in headers.items()}
        check(status == 206 and body == blob[100:200]
              and headers.get("content-range") == f"bytes 100-199/{len(blob)}",
              f"range: {status} {headers.get('content-range')} {len(body)}")
        status, _, body = request(get, headers={"Range": "bytes=-10"})
        check(status == 206 and body == blob[-10:], f"suffix range: {status} {len(body)}")
        status, _, _ = request(get, headers={"Range": f"bytes={len(blob)}-"})
        check(status == 416, f"a range past the end: {status}")

        # A page of an allowed origin may upload from another origin (CORS); others may not.
        u = call(server, "mutation", "files:uploadUrl")
        status, headers, _ = request(u, method="OPTIONS", headers={
            "Origin": "http://page.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        headers = {k.lower(): v for k, v in headers.items()}
        check(status == 204 and headers.get("access-control-allow-origin") == "http://page.example"
              and "content-type" in headers.get("access-control-allow-headers", ""),
              f"preflight of an allowed origin: {status} {headers}")
        status, _, _ = request(u, method="OPTIONS", headers={"Origin": "http://evil.example"})
        check(status == 403, f"preflight of another origin: {status}")
        status, headers, body = request(u, data=b"cross", headers={
            "Origin": "http://page.example", "Content-Type": "text/plain"})
        headers = {k.lower(): v for k, v in headers.items()}
        check(status == 200 and headers.get("access-control-allow-origin") == "http://page.example",
              f"a cross-origin upload reads its answer: {status} {headers}")
        status, _, _ = request(call(server, "mutation", "files:uploadUrl"), data=b"x",
                               headers={"Origin": "http://evil.example"})
        check(status == 403, f"an upload from another origin is refused: {status}")

        # Only the URL a function handed out reads the file.
        base, token = get.rsplit("/", 1)
        forged = token[:-1] + ("A" if token[-1] != "A" else "B")
        check(request(f"{base}/{forged}")[0] == 404, "a forged read token is 404")
        (status, _, body2), _ = upload(server, b"second file", "text/plain")
        sid2 = json.loads(body2)["storageId"]
        check(request(get.replace(sid, sid2))[0] == 404, "another id with this id's token is 404")
        got = raw_get(server, f"/api/storage/../admin.key/{token}")
        check(got.split(b"\r\n", 1)[0].split(b" ")[1] in (b"404", b"405") and b"hk_" not in got,
              f"a path that is not an id serves nothing: {got[:80]}")

        # The upload URL takes one file.
        (status, _, body), _ = upload(server, blob, "image/png", url=url)
        check(status == 200 and json.loads(body)["storageId"] == sid,
              f"the same bytes again: the same id ({status} {body[:100]})")
        (status, _, body), _ = upload(server, b"other bytes", "image/png", url=url)
        check(status == 409, f"other bytes to a used URL: {status} {body[:200]}")
        bad = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
        (status, _, _), _ = upload(server, b"x", url=bad)
        check(status == 404, f"a forged upload URL: {status}")
        (status, _, body), _ = upload(server, b"x", content_type="not a type")
        check(status == 415, f"a bad Content-Type: {status} {body[:200]}")
        u = call(server, "mutation", "files:uploadUrl")
        got = raw_post(server, u[u.index("/api/"):], {"Content-Length": str(3 * 1024 * 1024)}, b"",
                       then_close=False)
        check(b" 413 " in got.split(b"\r\n", 1)[0], f"a file over --max-file-size: {got[:120]}")

        # A client that stops half-way, or stalls, leaves nothing behind.
        rows = call(server, "query", "files:count")
        path = call(server, "mutation", "files:uploadUrl").split("127.0.0.1", 1)[-1]
        path = path[path.index("/api/"):]
        raw_post(server, path, {"Content-Length": "100000", "Content-Type": "text/plain"},
                 b"x" * 5000)
        u = call(server, "mutation", "files:uploadUrl")
        stalled = raw_post(server, u[u.index("/api/"):], {"Content-Length": "100000"}, b"y" * 100,
                           then_close=False)
        check(b" 408 " in stalled.split(b"\r\n", 1)[0], f"a stalled upload is 408: {stalled[:120]}")
        time.sleep(0.5)
        check(call(server, "query", "files:count") == rows, "no row from broken uploads")
        names = leftovers(data)
        check(not [n for n in names if n.startswith(".tmp-")], f"no temporary files left: {names}")

        # Too many at once: the third waits at the door.
        socks = []
        for _ in range(2):
            u = call(server, "mutation", "files:uploadUrl")
            s = socket.create_connection(("127.0.0.1", server.port))
            p = u[u.index("/api/"):]
            s.sendall(f"POST {p} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc".encode())
            socks.append(s)
        time.sleep(0.3)
        (status, _, body), _ = upload(server, b"third")
        check(status == 503, f"an upload past --max-uploads: {status} {body[:200]}")
        for s in socks:
            s.close()

        # Functions cannot write _storage; a deletion rolled back keeps the file.
        status, reply = http(server, "mutation", {"path": "files:forge", "args": {}})
        check(status == 401 and "written by Herald only" in reply["errorMessage"],
              f"a direct insert into _storage: {status} {reply}")
        status, _ = http(server, "mutation", {"path": "files:removeThenFail", "args": {"id": sid}})
        time.sleep(0.3)
        check(status != 200 and request(get)[0] == 200, "a rolled-back delete keeps the file")
        call(server, "mutation", "files:remove", {"id": sid})
        time.sleep(0.3)
        check(request(get)[0] == 404, "the file is gone once its deletion commits")
        check(call(server, "query", "files:url", {"id": sid}) is None, "getUrl of a deleted file is null")
        check(sid not in leftovers(data), "its bytes are gone from DATA/files")
    finally:
        code = server.stop()
        check(code == 0, f"server stops cleanly ({code}): {server.output()[-2000:]}")

    # What a crash leaves is swept at start.
    files = os.path.join(data, "files")
    with open(os.path.join(files, ".tmp-crashed"), "wb") as f:
        f.write(b"half")
    orphan = "000000" + "a" * 26
    with open(os.path.join(files, orphan), "wb") as f:
        f.write(b"no row")
    server = Server(HERALD, app, data, extra=extra)
    try:
        names = leftovers(data)
        check(".tmp-crashed" not in names and orphan not in names, f"swept at start: {names}")
        check(sid2 in names, f"a file with its row stays: {names}")
        check(server.wait_for_line("removed 2 files"), "the sweep is logged")
    finally:
        server.stop()

    # --max-storage bounds all stored files together; --public-url starts every URL.
    server = Server(HERALD, app, data, extra=["--max-storage", "1", "--public-url",
                                              "http://files.example:9/"])
    try:
        u = call(server, "mutation", "files:uploadUrl")
        check(u.startswith("http://files.example:9/api/storage/upload/"), f"--public-url: {u}")
        local = server.url(u[len("http://files.example:9"):])
        (status, _, body), _ = upload(server, os.urandom(700_000), url=local)
        check(status == 200, f"an upload within --max-storage: {status} {body[:200]}")
        sid3 = json.loads(body)["storageId"]
        check(call(server, "query", "files:url", {"id": sid3}).startswith("http://files.example:9/api/storage/"),
              "read URLs start with --public-url too")
        u = call(server, "mutation", "files:uploadUrl")
        # Refused at its headers: sent by hand, since the answer comes before the body is read.
        got = raw_post(server, u[u.index("/api/"):], {"Content-Length": "700000"}, b"",
                       then_close=False)
        check(b" 507 " in got.split(b"\r\n", 1)[0], f"an upload past --max-storage: {got[:120]}")
        call(server, "mutation", "files:remove", {"id": sid3})
        u = call(server, "mutation", "files:uploadUrl")
        (status, _, _), _ = upload(server, os.urandom(700_000),
                                   url=server.url(u[len("http://files.example:9"):]))
        check(status == 200, f"room again once a file is deleted: {status}")
    finally:
        server.stop()
    shutil.rmtree(work, ignore_errors=True)
    return finish("storage")


if __name__ == "__main__":
    sys.exit(main())
