"""File storage over HTTP, as a browser or a worker uses it, for the
example apps' tests (test_social.py, test_artworks.py): real PNG images
made here, uploads to the URLs ctx.storage:generateUploadUrl() hands out,
downloads (whole, and by byte range) from the URLs of getUrl, and URLs
forged from real ones. Nothing here knows the server's internals.
"""
import json
import os
import re
import struct
import urllib.error
import urllib.request
import zlib


def png(width, height, seed=0):
    """A valid 8-bit RGB PNG of width x height whose pixels depend on seed."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    rows = b"".join(
        b"\0" + b"".join(bytes(((x * 7 + y * 13 + seed * 31) % 256, (x * 5 + seed) % 256, (y * 3) % 256))
                         for x in range(width))
        for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        return f"<{self.status} {dict(self.headers)} {self.body[:200]!r}>"


def request(url, method="GET", data=None, headers=None, timeout=60):
    """One HTTP request; a Reply whatever the status."""
    req = urllib.request.Request(url, data=data, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


def upload(url, data, content_type):
    """POSTs data to an upload URL; (Reply, storage id or None)."""
    r = request(url, "POST", data, {"Content-Type": content_type})
    sid = None
    if r.status == 200:
        body = r.json() or {}
        sid = body.get("storageId")
    return r, sid


def get(url, range_=None):
    return request(url, headers={"Range": range_} if range_ else None)


def split(url):
    """(prefix up to /api/storage/, id, token) of a read URL, or None."""
    m = re.match(r"^(https?://[^/]+/api/storage/)([^/]+)/([^/?#]+)$", url or "")
    return m.groups() if m else None


def with_token(url, token):
    prefix, sid, _ = split(url)
    return f"{prefix}{sid}/{token}"


def with_id(url, sid):
    prefix, _, token = split(url)
    return f"{prefix}{sid}/{token}"


def flip(s):
    """s with its middle character changed (a forged token)."""
    i = len(s) // 2
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


def storage_rows(call, server, path):
    """The `_storage` rows as the app's internal query `path` lists them
    (ctx.db.system), called with the admin key: {id: row}, or None."""
    st, r = call(server, "query", path, {"limit": 1000}, server.key)
    if st != 200 or r.get("status") != "success":
        print("storage_rows:", st, r)
        return None
    return {row["_id"]: row for row in r["value"]}
