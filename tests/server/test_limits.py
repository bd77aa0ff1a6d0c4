"""Hostile and careless clients against `herald serve`, black-box: HTTP
requests answered exactly once (pipelined, trailing bytes, bodies that
are too large, chunked, without or with a bad Content-Length, never
finished), connections admitted and bounded (in all, per address, at the
descriptor limit), silent and stuck connections closed, memory budgets
that count what is really held, laggards decided by progress and not by
the size of one frame, and the Origin check on WebSocket upgrades and API
requests.

A server that spins is detected by another client not being served,
never by a wall-clock threshold: the waits below only bound how long a
test waits for something that must happen.

Run as: /usr/bin/python3 test_limits.py <herald> <source root>
"""
import asyncio
import base64
import json
import os
import resource
import shutil
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herald_testlib as testlib  # noqa: E402
from herald_testlib import check, failures  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]
APP = os.path.join(ROOT, "examples", "twitch-jobs")
WAIT = 20  # seconds to wait for what must happen (never a speed threshold)


def Server(data, extra=(), **kw):
    return testlib.Server(HERALD, APP, data, extra, **kw)


# ---- raw HTTP ----------------------------------------------------------------

def raw_http(port, data, wait=WAIT, closed=None):
    """Sends bytes as they are; returns everything the server sent until it
    closed the connection or went quiet for `wait` seconds (`closed`, a list,
    gets True or False: which of the two it was)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    s.settimeout(wait)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                if closed is not None:
                    closed.append(True)
                break
            got += d
    except socket.timeout:
        if closed is not None:
            closed.append(False)
    s.close()
    return got


def responses(raw):
    """Splits a byte stream into (status, headers, JSON body) answers."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode(errors="replace").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
                   for ln in lines[1:] if ":" in ln}
        n = int(headers.get("content-length", "0"))
        body, raw = rest[:n], rest[n:]
        try:
            body = json.loads(body) if body else None
        except ValueError:
            pass
        out.append((status, headers, body))
    return out


def post(path, body, key=None, extra=b""):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    return head.encode() + extra + f"Content-Length: {len(data)}\r\n\r\n".encode() + data


def served(server):
    """Another client gets an answer (the loop is not stuck)."""
    try:
        status, reply = testlib.http(server, "query", {"path": "videos:list", "args": {}})
    except OSError:
        return False
    return status == 200 and isinstance(reply.get("value"), list)


def count_videos(server, twitch_id):
    status, reply = testlib.http(server, "query", {"path": "videos:list", "args": {}})
    return sum(1 for v in reply.get("value", []) if v.get("twitchId") == twitch_id)


def test_http(tmp):
    server = Server(os.path.join(tmp, "http"), ["--request-timeout", "3"])
    try:
        port, key = server.port, server.key
        # Two requests in one packet: both answered in order, or the first answered
        # and the connection closed (announced by `Connection: close`, or right
        # after the answer, the second never handled); the server goes on serving.
        q = post("/api/query", {"path": "videos:list", "args": {}})
        closed = []
        got = responses(raw_http(port, q + q, closed=closed))
        check(len(got) >= 1 and got[0][0] == 200, f"pipelined: first answered: {got}")
        check(len(got) == 2 or closed == [True],
              f"pipelined: second answered or connection closed: {got} {closed}")
        check(served(server), "pipelined: another client is still served")

        # A mutation followed by a stray CRLF: committed once, and told so.
        m = post("/api/mutation", {"path": "videos:create",
                                   "args": {"twitchId": "crlf", "title": "t"}}, key)
        got = responses(raw_http(port, m + b"\r\n"))
        check(len(got) == 1 and got[0][0] == 200 and got[0][2].get("status") == "success",
              f"mutation + CRLF: told it succeeded: {got}")
        check(count_videos(server, "crlf") == 1, "mutation + CRLF: committed exactly once")
        # Pipelined mutations: the first is committed and answered; nothing is
        # committed without its answer.
        m2 = post("/api/mutation", {"path": "videos:create",
                                    "args": {"twitchId": "pipe2", "title": "t"}}, key)
        m3 = post("/api/mutation", {"path": "videos:create",
                                    "args": {"twitchId": "pipe3", "title": "t"}}, key)
        got = responses(raw_http(port, m2 + m3))
        answered = sum(1 for g in got if g[0] == 200)
        committed = count_videos(server, "pipe2") + count_videos(server, "pipe3")
        check(answered >= 1 and committed == answered,
              f"pipelined mutations: {answered} answered, {committed} committed: {got}")

        # Bodies: too large (413), chunked (411), no length (411), a bad length (400),
        # each answered at once, before --request-timeout could end them.
        big = (b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{")
        got = responses(raw_http(port, big, wait=2))
        check(got and got[0][0] == 413 and got[0][2]["code"] == "LimitExceeded",
              f"oversize body: 413 at once: {got}")
        chunked = (b"POST /api/query HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\n{}\r\n0\r\n\r\n")
        got = responses(raw_http(port, chunked, wait=2))
        check(got and got[0][0] == 411, f"chunked body: 411 at once: {got}")
        nolen = b"POST /api/query HTTP/1.1\r\nHost: x\r\n\r\n{}"
        got = responses(raw_http(port, nolen, wait=2))
        check(got and got[0][0] == 411, f"no Content-Length: 411 at once: {got}")
        for bad in (b"-5", b"12abc", b"0x10"):
            req = b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Length: " + bad + b"\r\n\r\n{}"
            got = responses(raw_http(port, req, wait=2))
            check(got and got[0][0] == 400, f"Content-Length {bad}: 400 at once: {got}")
        # Headers lws has no room for (over 16 KiB): lws 4.1 closes the connection and
        # logs it; fifty of them neither stop the server nor fill its log.
        huge = b"POST /api/query HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n" \
               b"Content-Length: 2\r\n\r\n{}"
        before = len(server.lines)
        for _ in range(50):
            raw_http(port, huge, wait=5)
        check(served(server), "oversize headers: another client is served")
        logged = sum(1 for ln in server.lines[before:] if "header" in ln)
        check(logged <= 12, f"oversize headers: the log is not flooded ({logged} lines)")
        # A body that stops arriving: 408 after --request-timeout.
        slow = b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pa"
        got = responses(raw_http(port, slow))
        check(got and got[0][0] == 408, f"unfinished body: 408: {got}")
        check(served(server), "after the bad requests, another client is served")
    finally:
        check(server.stop() == 0, "http server stopped cleanly")


# ---- connections ---------------------------------------------------------------

def refused(port):
    """Connects and reads what the server says at once; (status, body) or None."""
    got = responses(raw_http(port, b"", wait=5))
    return (got[0][0], got[0][2]) if got else None


def test_admission(tmp):
    server = Server(os.path.join(tmp, "admit"), ["--max-connections", "4"])
    try:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        time.sleep(0.3)
        r = refused(server.port)
        check(r and r[0] == 503 and r[1]["code"] == "Busy" and "connections" in
              r[1]["errorMessage"], f"over --max-connections: refused with a reason: {r}")
        held.pop().close()
        time.sleep(0.5)
        check(served(server), "a connection closed: a new client is served")
        for s in held:
            s.close()
    finally:
        server.stop()
    server = Server(os.path.join(tmp, "peraddr"), ["--max-per-address", "3"])
    try:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        time.sleep(0.3)
        r = refused(server.port)
        check(r and r[0] == 503 and "this address" in r[1]["errorMessage"],
              f"over --max-per-address: refused with a reason: {r}")
        for s in held:
            s.close()
        time.sleep(0.5)
        check(served(server), "per address: served again once others closed")
    finally:
        server.stop()


def test_descriptors(tmp):
    """At the descriptor limit accept() must not spin: accepting pauses (one log
    line), the clients hear why, and it resumes when descriptors come free."""
    limit = 96

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    server = testlib.Server(HERALD, APP, os.path.join(tmp, "fds"),
                            ["--max-connections", "5000", "--max-per-address", "5000"],
                            preexec_fn=low_limit)
    try:
        held = []
        for _ in range(limit + 20):
            try:
                held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            except OSError:
                break
        time.sleep(1)
        said = []
        for s in held:
            s.setblocking(False)
            try:
                said.append(s.recv(4096))
            except OSError:
                said.append(b"")
        # Those accepted past the limit are told why; the rest wait in the backlog.
        check(any(b"file descriptors" in x for x in said),
              f"clients over the descriptor limit are told why: {[x for x in said if x][:2]}")
        for s in held:
            s.close()
        time.sleep(1)
        check(served(server), "descriptors free again: a new client is served")
        out = server.output()
        # Once per shortage (closing the backlog's clients can make a second one),
        # never once per refused accept.
        check(1 <= out.count("out of file descriptors") <= 2,
              "the limit is logged once, not per accept: " +
              "".join(ln for ln in server.lines if "descriptors" in ln or "accepting" in ln))
        check("accepting connections again" in out, "resuming is logged")
    finally:
        check(server.stop() == 0, "descriptor-limited server stopped cleanly")


# ---- raw WebSocket ----------------------------------------------------------------

class RawWs:
    """A WebSocket client that does exactly what it is told (masks, fragments, silence)."""

    def __init__(self, port, origin=None, rcvbuf=None):
        """`rcvbuf`: a small receive buffer makes a client on a slow link that fills at once."""
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n")
        if origin:
            req += f"Origin: {origin}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.sock.settimeout(WAIT)
        head = b""
        while b"\r\n\r\n" not in head:
            d = self.sock.recv(1)
            if not d:
                break
            head += d
        self.status = int(head.split()[1]) if head else 0
        self.buf = b""

    def frame(self, opcode, payload, fin=True, mask=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            k = os.urandom(4)
            payload = bytes(c ^ k[i % 4] for i, c in enumerate(payload)) if n < 4096 else \
                (int.from_bytes(payload, "big") ^ int.from_bytes((k * (n // 4 + 1))[:n], "big")
                 ).to_bytes(n, "big")
            head += k
        return head + payload

    def send(self, opcode, payload, fin=True):
        self.sock.sendall(self.frame(opcode, payload, fin))

    def read_frame(self):
        """(opcode, payload), or None when the server closed the socket."""
        def need(n):
            while len(self.buf) < n:
                d = self.sock.recv(65536)
                if not d:
                    return False
                self.buf += d
            return True
        if not need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            if not need(4):
                return None
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            if not need(10):
                return None
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        if not need(off + n):
            return None
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        self.fin = bool(b0 & 0x80)
        return b0 & 0x0F, payload

    def read_message(self):
        """One whole text message (its fragments joined), decoded; None when closed."""
        data = b""
        while True:
            f = self.read_frame()
            if f is None or f[0] == 0x8:
                return None
            if f[0] in (0x1, 0x0):
                data += f[1]
                if self.fin:
                    return json.loads(data)

    def until_closed(self):
        """Reads until the server closes; returns the opcodes seen (None if it never closed)."""
        seen = []
        try:
            while True:
                f = self.read_frame()
                if f is None:
                    return seen
                seen.append(f[0])
        except socket.timeout:
            return None


def test_silent_and_stuck(tmp):
    server = Server(os.path.join(tmp, "idle"), ["--idle-timeout", "4", "--request-timeout", "3"])
    try:
        # Never answers the server's pings: pinged, then closed.
        silent = RawWs(server.port)
        seen = silent.until_closed()
        check(seen is not None and 0x9 in seen, f"silent WebSocket: pinged then closed: {seen}")
        # Stuck in the middle of a frame.
        stuck = RawWs(server.port)
        whole = stuck.frame(0x1, b'{"type":"ping","id":"p","pad":"' + b"x" * 1000 + b'"}')
        stuck.sock.sendall(whole[:50])
        check(stuck.until_closed() is not None, "stuck mid-frame: closed")
        # A message whose fragments stop coming (the client answers pings).
        frag = RawWs(server.port)
        frag.send(0x1, b'{"type":"ping",', fin=False)
        seen = []
        deadline = time.time() + WAIT
        closed = False
        while time.time() < deadline:
            f = frag.read_frame()
            if f is None:
                closed = True
                break
            seen.append(f[0])
            if f[0] == 0x9:
                frag.send(0xA, f[1])
            if f[0] == 0x8:
                closed = True
                break
        check(closed, f"unfinished message: closed after --request-timeout: {seen}")
        # A client that answers pings stays.
        async def lively():
            async with server.ws() as ws:
                await asyncio.sleep(9)
                await ws.send(json.dumps({"type": "ping", "id": "still"}))
                return json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        r = asyncio.run(lively())
        check(r.get("type") == "pong", f"a client that answers pings stays: {r}")
    finally:
        check(server.stop() == 0, "idle server stopped cleanly")


async def admin_ws(server):
    ws = await server.ws()
    await ws.send(json.dumps({"type": "auth", "id": "a", "token": server.key}))
    r = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert r["type"] == "ack", r
    return ws


async def next_of(ws, pred):
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if pred(m):
            return m


async def stats(server):
    ws = await admin_ws(server)
    await ws.send(json.dumps({"type": "admin", "id": "s", "op": "stats"}))
    r = await next_of(ws, lambda m: m.get("id") == "s")
    await ws.close()
    return r.get("value", {})


def test_memory(tmp):
    server = Server(os.path.join(tmp, "mem"), ["--max-memory", "16"])
    try:
        async def big_messages():
            clients = [await server.ws() for _ in range(12)]
            pad = "x" * (1024 * 1024)
            for i, ws in enumerate(clients):
                await ws.send(json.dumps({"type": "ping", "id": f"p{i}", "pad": pad}))
            for ws in clients:
                r = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                check(r.get("type") == "pong", f"1 MiB message answered: {str(r)[:100]}")
            st = await stats(server)
            mem = st.get("clientMemory", {})
            check(mem.get("readingBytes", 1 << 40) <= 12 * 65536,
                  f"reassembly buffers given back after a large message: {mem}")
            for ws in clients:
                await ws.close()
        asyncio.run(big_messages())
        # Messages held open across many connections: past --max-memory a message is
        # refused with Busy, the connection lives, and memory comes back.
        holders = [RawWs(server.port) for _ in range(17)]
        for h in holders:
            h.send(0x1, b'{"type":"ping","id":"h","pad":"' + b"y" * (1024 * 1024), fin=False)
        for h in holders:
            h.send(0x0, b'"}', fin=True)
        codes = []
        for h in holders:
            f = h.read_frame()
            codes.append(json.loads(f[1]).get("code", "ok") if f and f[0] == 1 else None)
        check("Busy" in codes, f"past --max-memory a message is refused with Busy: {codes}")
        # Buffers grow by doubling: a 1 MiB message holds up to 2 MiB while it is read.
        check(codes.count("ok") >= 4, f"messages within the budget are served: {codes}")
        for h in holders:
            h.sock.close()
        check(served(server), "after the memory pressure another client is served")
    finally:
        check(server.stop() == 0, "memory server stopped cleanly")


async def fill_big(server, prefix, n=8):
    """Inserts n videos of ~90 KB each: videos:list then answers ~720 KB."""
    ws = await admin_ws(server)
    title = "t" * (90 * 1024)
    for i in range(n):
        await ws.send(json.dumps({"type": "mutate", "id": f"m{i}", "path": "videos:create",
                                  "args": {"twitchId": f"{prefix}{i}", "title": title}}))
        r = await next_of(ws, lambda m: m.get("id") == f"m{i}")
        check(r["type"] == "ack", f"insert {prefix}{i}: {str(r)[:200]}")
    return ws


def test_large_results(tmp):
    """A client that reads is never culled for the size of what it asked for."""
    server = Server(os.path.join(tmp, "large"))
    try:
        async def scenario():
            ws = await fill_big(server, "big")
            # Two subscriptions to a ~720 KB result on one connection.
            for sid in ("a", "b"):
                await ws.send(json.dumps({"type": "sub", "id": sid, "path": "videos:list",
                                          "args": {}}))
            got = set()
            while len(got) < 2:
                r = await next_of(ws, lambda m: m.get("type") in ("result", "error"))
                check(r["type"] == "result" and len(r["value"]) == 8,
                      f"large result delivered: {str(r)[:200]}")
                got.add(r["id"])
            # A 700 KB insert while watching: the update and the ack both arrive.
            await ws.send(json.dumps({"type": "mutate", "id": "huge", "path": "videos:create",
                                      "args": {"twitchId": "huge", "title": "h" * 700000}}))
            seen_update = False
            while True:
                r = await next_of(ws, lambda m: True)
                if r["type"] == "update":
                    seen_update = True
                if r.get("id") == "huge":
                    check(r["type"] == "ack", f"700 KB insert acknowledged: {str(r)[:200]}")
                    break
            check(seen_update, "700 KB insert: the watcher got its update before the ack")
            await ws.send(json.dumps({"type": "ping", "id": "alive"}))
            r = await next_of(ws, lambda m: m.get("id") == "alive")
            check(r["type"] == "pong", "the reading client is still connected")
            await ws.close()
        asyncio.run(scenario())
        check("too far behind" not in server.output(), "nobody was culled")
    finally:
        check(server.stop() == 0, "large-result server stopped cleanly")


def test_outbound_budget(tmp):
    """Clients that never read cannot make the server hold more than --max-memory:
    past it, a connection that is already behind is closed; one that reads is served."""
    server = Server(os.path.join(tmp, "outbound"), ["--max-memory", "16"])
    try:
        async def fill():
            await (await fill_big(server, "o")).close()
        asyncio.run(fill())
        silent = []
        for i in range(30):
            c = RawWs(server.port, rcvbuf=4096)
            for sid in ("a", "b", "c"):
                c.send(0x1, json.dumps({"type": "sub", "id": sid, "path": "videos:list",
                                        "args": {}}).encode())
            silent.append(c)
        time.sleep(2)
        st = asyncio.run(stats(server))
        mem = st.get("clientMemory", {})
        check(mem.get("queuedBytes", 1 << 40) + mem.get("readingBytes", 0) <= 16 << 20,
              f"queued bytes stay within --max-memory: {mem}")
        check("memory for clients is used up" in server.output(),
              "connections behind past the budget are closed with the reason")
        check(served(server), "a client that reads is served meanwhile")
        for c in silent:
            c.sock.close()
    finally:
        check(server.stop() == 0, "outbound-budget server stopped cleanly")


def test_http_reader(tmp):
    """An HTTP client that stops reading a large answer: its connection ends after
    --max-behind without progress, and the memory comes back."""
    server = Server(os.path.join(tmp, "httpread"), ["--max-behind", "2"])
    try:
        async def fill():
            await (await fill_big(server, "h")).close()
        asyncio.run(fill())
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(post("/api/query", {"path": "videos:list", "args": {}}))
        time.sleep(1)
        held = asyncio.run(stats(server)).get("clientMemory", {}).get("queuedBytes", 0)
        check(held > 100000, f"the unread answer counts as held memory: {held}")
        deadline, gone = time.time() + WAIT, False
        while time.time() < deadline and not gone:
            time.sleep(0.5)
            gone = asyncio.run(stats(server)).get("clientMemory", {}).get("queuedBytes", 1) == 0
        check(gone, "the connection that stopped reading was closed and its answer dropped")
        sock.close()
        check(served(server), "another HTTP client is served")
    finally:
        check(server.stop() == 0, "http-reader server stopped cleanly")


def test_ack_after_merged(tmp):
    """Read your writes for a client that fell behind: its merged updates (whole
    results at least as new as its commit) arrive before its mutation's ack."""
    server = Server(os.path.join(tmp, "ackorder"))
    try:
        async def fill():
            await (await fill_big(server, "r")).close()
        asyncio.run(fill())
        c = RawWs(server.port, rcvbuf=4096)
        sock = c.sock
        for msg in ({"type": "auth", "id": "a", "token": server.key},
                    {"type": "sub", "id": "all", "path": "videos:list", "args": {}},
                    {"type": "mutate", "id": "m1", "path": "videos:create",
                     "args": {"twitchId": "mine", "title": "x"}}):
            c.send(0x1, json.dumps(msg).encode())
        time.sleep(1.5)  # the first result is stuck, the commit's update merged, the ack queued
        sock.settimeout(WAIT)
        seen = None
        while True:
            m = c.read_message()
            if m is None:
                check(False, "ack order: the connection closed")
                break
            if m.get("type") in ("result", "update"):
                vals = [m.get("value")] if m["type"] == "result" else \
                    [ch.get("value") for ch in m.get("changes", []) if "value" in ch]
                if any(isinstance(v, list) and any(x.get("twitchId") == "mine" for x in v)
                       for v in vals):
                    seen = m.get("version")
            if m.get("id") == "m1":
                check(m["type"] == "ack", f"ack order: the mutation was acknowledged: {m}")
                check(seen is not None and seen >= m.get("version", 0),
                      f"ack order: its own write was seen before the ack (seen at {seen})")
                break
        sock.close()
    finally:
        check(server.stop() == 0, "ack-order server stopped cleanly")


# ---- origins and addresses ------------------------------------------------------

def test_origins(tmp):
    server = Server(os.path.join(tmp, "origin"), ["--allow-origin", "https://app.example"])
    try:
        port, key = server.port, server.key
        evil = RawWs(port, origin="https://evil.example")
        check(evil.status == 403, f"WebSocket from a foreign origin: 403 ({evil.status})")
        own = RawWs(port, origin=f"http://127.0.0.1:{port}")
        check(own.status == 101, f"WebSocket from the server's own origin: 101 ({own.status})")
        listed = RawWs(port, origin="https://app.example")
        check(listed.status == 101, f"WebSocket from an allowed origin: 101 ({listed.status})")
        none = RawWs(port)
        check(none.status == 101, f"WebSocket without Origin (not a browser): 101 ({none.status})")
        # A cross-site form-style POST never reaches the API.
        body = json.dumps({"path": "videos:create", "args": {"twitchId": "csrf", "title": "t"}})
        req = (f"POST /api/mutation HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Origin: https://evil.example\r\nContent-Type: text/plain\r\n"
               f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        got = responses(raw_http(port, req.encode(), wait=5))
        check(got and got[0][0] == 403, f"cross-site POST refused: {got}")
        check(count_videos(server, "csrf") == 0, "cross-site POST committed nothing")
        for c in (evil, own, listed, none):
            c.sock.close()
    finally:
        server.stop()


def outside_address():
    """An address of this machine that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_dev_binds_loopback(tmp):
    addr = outside_address()
    server = Server(os.path.join(tmp, "dev"), ["--dev"])
    try:
        check(served(server), "--dev: served on 127.0.0.1")
        if addr:
            try:
                socket.create_connection((addr, server.port), timeout=3).close()
                reached = True
            except OSError:
                reached = False
            check(not reached, f"--dev: not reachable on {addr}")
        else:
            print("no non-loopback address here: the --dev binding check is partial")
    finally:
        server.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="herald-limits-")
    try:
        for t in (test_http, test_admission, test_descriptors, test_silent_and_stuck,
                  test_memory, test_large_results, test_outbound_budget, test_http_reader,
                  test_ack_after_merged,
                  test_origins,
                  test_dev_binds_loopback):
            print("--", t.__name__, flush=True)
            try:
                t(tmp)
            except Exception as e:  # one broken scenario must not hide the others
                check(False, f"{t.__name__}: {type(e).__name__}: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return testlib.finish("limits")


if __name__ == "__main__":
    sys.exit(main())
