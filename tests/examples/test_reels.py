"""The reels app of seed 000 (examples/reels), end to end on a live server:
Auth0 users sign in with JWTs, create prompt feeds, FastAPI workers (the
admin key over HTTP) fill the feeds with reels and flip them to ready, and
the users' live subscriptions follow; pagination, resume from the last seen
reel, status filters; and every refusal: other users' feeds and reels,
anonymous callers, bad arguments, unknown functions.

Run as: /usr/bin/python3 test_reels.py <herald> <source root>
"""
import asyncio
import os
import random
import shutil
import sys
import tempfile

HERALD, ROOT = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
from herald_client import Client  # noqa: E402
from herald_testlib import Issuer, Server, app_with_issuers, call, check, finish  # noqa: E402

APP = os.path.join(ROOT, "examples", "reels")
AUTH0 = Issuer("https://reels-demo.us.auth0.com/", "reels-web")
ALICE_SUB, BOB_SUB, CAROL_SUB = "auth0|alice-65f0", "google-oauth2|bob-1138", "auth0|carol-7"
ALICE = AUTH0.token(ALICE_SUB, email="alice@example.com", name="Alice",
                    picture="https://cdn.example.com/alice.png")
BOB = AUTH0.token(BOB_SUB)  # no profile claims: upsert takes them from its arguments
CAROL = AUTH0.token(CAROL_SUB)  # signed in, never upserted
PAGE = {"numItems": 10, "cursor": None}


class ReelsClient(Client):
    """A Client that also notes, per subscription, whether each change came
    as a diff or as a whole value, and the subscription errors it got."""

    def __init__(self, ws):
        super().__init__(ws)
        self.kinds = {}

    async def pump(self, timeout=30):
        m = await super().pump(timeout)
        if m["type"] == "update":
            for ch in m["changes"]:
                self.kinds.setdefault(ch["id"], []).append("diff" if "diff" in ch else "value")
        return m


async def query(c, path, args):
    return await c.request({"type": "query", "path": path, "args": args})


async def mutate(c, path, args):
    return await c.request({"type": "mutate", "path": path, "args": args})


async def sub(c, sid, path, args):
    c.pending_subs.add(sid)
    return await c.request({"type": "sub", "id": sid, "path": path, "args": args})


async def until(c, pred, what, timeout=20):
    """Reads messages until pred() holds; a failed check when it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        left = deadline - loop.time()
        if left <= 0:
            return check(False, f"timed out waiting for {what}")
        try:
            await c.pump(left)
        except asyncio.TimeoutError:
            pass
    return True


def value(r):
    return r.get("value") if r.get("type") in ("result", "ack") else ("ERROR", r)


def refused(r, code):
    """A structured refusal from the app: FunctionError with data.code."""
    return (r.get("type") == "error" and r.get("code") == "FunctionError" and
            isinstance(r.get("data"), dict) and r["data"].get("code") == code and
            bool(r.get("message")))


def http_refused(status, reply, code):
    return status == 400 and reply.get("status") == "error" and \
        (reply.get("errorData") or {}).get("code") == code


def worker(srv, path, args):
    """A FastAPI worker's call: HTTP with the admin key; returns the value."""
    status, reply = call(srv, "mutation", path, args, token=srv.key)
    check(status == 200 and reply.get("status") == "success",
          f"worker {path} {args}: {status} {reply}")
    return reply.get("value")


def worker_query(srv, path, args):
    status, reply = call(srv, "query", path, args, token=srv.key)
    check(status == 200, f"worker query {path}: {status} {reply}")
    return reply.get("value")


async def same_as_fresh(c, sid, path, args, what):
    """The result the subscription's diffs built equals a fresh query's."""
    fresh = await query(c, path, args)
    return check(fresh.get("type") == "result" and fresh["value"] == c.results.get(sid),
                 f"{what}: live result {c.results.get(sid)!r} != fresh {fresh!r}")


def reels_of(result):
    return (result or {}).get("page", [])


async def anonymous(srv, ids):
    """Nobody signed in: every function refuses, over WebSocket and HTTP."""
    async with srv.ws() as ws:
        c = ReelsClient(ws)
        for kind, path, args in [
                ("mutate", "users:upsert", {}),
                ("query", "users:me", {}),
                ("query", "users:getByAuth0Id", {"auth0Id": ALICE_SUB}),
                ("query", "users:getById", {"userId": ids["alice"]}),
                ("mutate", "feeds:create", {"prompt": "anonymous prompt"}),
                ("query", "feeds:listByUser", {}),
                ("query", "feeds:getById", {"feedId": ids["feed"]}),
                ("mutate", "feeds:updateStatus", {"feedId": ids["feed"], "status": "archived"}),
                ("mutate", "feeds:updateProgress", {"feedId": ids["feed"], "lastSeenIndex": 1}),
                ("mutate", "reels:addToFeed", {"feedId": ids["feed"], "sourceType": "scraped"}),
                ("mutate", "reels:update", {"reelId": ids["reel"], "status": "failed"}),
                ("query", "reels:listForFeed", {"feedId": ids["feed"], "paginationOpts": PAGE}),
                ("query", "reels:getById", {"reelId": ids["reel"]})]:
            r = await c.request({"type": kind, "path": path, "args": args})
            check(refused(r, "UNAUTHENTICATED"), f"anonymous {path}: {r}")
        r = await sub(c, "anon", "reels:listForFeed", {"feedId": ids["feed"], "paginationOpts": PAGE})
        check(refused(r, "UNAUTHENTICATED"), f"anonymous subscription: {r}")
    status, reply = call(srv, "query", "feeds:listByUser", {})
    check(http_refused(status, reply, "UNAUTHENTICATED"), f"HTTP anonymous: {status} {reply}")
    status, reply = call(srv, "mutation", "reels:update", {"reelId": ids["reel"], "status": "failed"})
    check(http_refused(status, reply, "UNAUTHENTICATED"), f"HTTP anonymous write: {status} {reply}")
    r = worker_query(srv, "reels:getById", {"reelId": ids["reel"]})
    check(r and r["status"] != "failed", "refused anonymous writes changed nothing")


async def main_flow(srv):
    ids = {}
    async with srv.ws() as wa, srv.ws() as wb:
        a, b = ReelsClient(wa), ReelsClient(wb)

        # 1. Users log in: users:upsert from the JWT identity.
        r = await a.request({"type": "auth", "token": ALICE})
        check(r.get("type") == "ack", f"Alice signs in with her Auth0 JWT: {r}")
        r = await sub(a, "me", "users:me", {})
        check(r.get("type") == "result" and r["value"] is None, f"no user record before upsert: {r}")
        r = await mutate(a, "users:upsert", {})
        alice_id = ids["alice"] = value(r)
        check(isinstance(alice_id, str) and len(alice_id) == 32, f"upsert returns the id: {r}")
        check(a.results["me"] is not None, "ack after the update it caused (users:me)")
        me = a.results["me"] or {}
        check(me.get("_id") == alice_id and me.get("auth0Id") == ALICE_SUB and
              me.get("email") == "alice@example.com" and me.get("name") == "Alice" and
              me.get("avatarUrl") == "https://cdn.example.com/alice.png" and
              me.get("createdAt") == me.get("lastLoginAt"),
              f"the user record comes from the identity: {me}")
        await same_as_fresh(a, "me", "users:me", {}, "users:me")
        r = await mutate(a, "users:upsert", {"auth0Id": ALICE_SUB, "name": "ignored: the token says Alice"})
        check(value(r) == alice_id, f"a second login updates the same user: {r}")
        me2 = a.results["me"] or {}
        check(me2.get("createdAt") == me.get("createdAt") and
              me2.get("lastLoginAt") >= me.get("lastLoginAt") and me2.get("name") == "Alice",
              f"second login: createdAt kept, lastLoginAt moves: {me} -> {me2}")
        r = await mutate(a, "users:upsert", {"auth0Id": BOB_SUB})
        check(refused(r, "FORBIDDEN"), f"upsert for another Auth0 id: {r}")
        r = await query(a, "users:getByAuth0Id", {"auth0Id": ALICE_SUB})
        check((value(r) or {}).get("_id") == alice_id, f"getByAuth0Id, own: {r}")
        r = await query(a, "users:getById", {"userId": alice_id})
        check((value(r) or {}).get("auth0Id") == ALICE_SUB, f"getById, own: {r}")

        r = await b.request({"type": "auth", "token": BOB})
        check(r.get("type") == "ack", f"Bob signs in: {r}")
        r = await mutate(b, "users:upsert", {"email": "bob@example.com", "name": "Bob",
                                             "avatarUrl": "https://cdn.example.com/bob.png"})
        bob_id = ids["bob"] = value(r)
        check(isinstance(bob_id, str) and bob_id != alice_id, f"Bob's upsert: {r}")
        r = await query(b, "users:getByAuth0Id", {"auth0Id": BOB_SUB})
        bob = value(r) or {}
        check(bob.get("email") == "bob@example.com" and bob.get("name") == "Bob" and
              bob.get("avatarUrl") == "https://cdn.example.com/bob.png",
              f"profile from the arguments when the token has none: {r}")
        # Bob's dashboard: the same function and arguments as Alice's, another identity.
        r = await sub(b, "feeds", "feeds:listByUser", {})
        check(value(r) == [], f"Bob's empty dashboard: {r}")
        u = worker_query(srv, "users:getByAuth0Id", {"auth0Id": ALICE_SUB})
        check((u or {}).get("_id") == alice_id, f"the admin key looks up any user: {u}")

        # 2. Alice creates prompts: feeds:create; her dashboard follows live.
        r = await sub(a, "feeds", "feeds:listByUser", {})
        check(value(r) == [], f"no feeds yet: {r}")
        r = await sub(a, "readyFeeds", "feeds:listByUser", {"status": "ready"})
        check(value(r) == [], f"no ready feeds yet: {r}")
        r = await mutate(a, "feeds:create", {"prompt": "cats doing parkour", "topic": "cats",
                                             "description": "short clips", "tags": ["cats", "parkour"]})
        feed = ids["feed"] = value(r)
        check(isinstance(feed, str) and len(feed) == 32, f"feeds:create returns the id: {r}")
        lst = a.results["feeds"]
        check(len(lst) == 1 and lst[0]["_id"] == feed and lst[0]["status"] == "pending" and
              lst[0]["userId"] == alice_id and lst[0]["tags"] == ["cats", "parkour"] and
              lst[0]["prompt"] == "cats doing parkour" and lst[0]["topic"] == "cats",
              f"the new feed arrives, pending, tied to Alice: {lst}")
        r = await mutate(a, "feeds:create", {"prompt": "the history of jazz"})
        feed2 = ids["feed2"] = value(r)
        lst = a.results["feeds"]
        check([f["_id"] for f in lst] == [feed2, feed] and lst[0]["tags"] == [],
              f"newest feed first; tags default to []: {lst}")
        await same_as_fresh(a, "feeds", "feeds:listByUser", {}, "feeds after create")
        r = await mutate(b, "feeds:create", {"prompt": "bob's woodworking"})
        bob_feed = ids["bob_feed"] = value(r)
        r = await mutate(a, "feeds:create", {"prompt": "   "})
        check(refused(r, "INVALID_ARGUMENT"), f"an empty prompt is refused: {r}")

        # 3. Workers fill the feed (admin key over HTTP); Alice's reels follow live.
        args = {"feedId": feed, "paginationOpts": PAGE}
        r = await sub(a, "reels", "reels:listForFeed", args)
        check(value(r) == {"page": [], "isDone": True, "continueCursor": (value(r) or {}).get("continueCursor")},
              f"an empty feed: {r}")
        placeholders = []
        for i in range(4):
            placeholders.append(worker(srv, "reels:addToFeed", {
                "feedId": feed, "sourceType": "generated",
                "metadata": {"prompt": "cats doing parkour", "shot": i, "model": "gen-2"}}))
        scraped = worker(srv, "reels:addToFeed", {
            "feedId": feed, "sourceType": "scraped", "videoUrl": "https://videos.example.com/s1.mp4",
            "thumbnailUrl": "https://videos.example.com/s1.jpg", "sourceReference": "yt:abc123"})
        ids["reel"] = placeholders[0]
        await until(a, lambda: len(reels_of(a.results["reels"])) == 5, "five reels in the live page")
        page = reels_of(a.results["reels"])
        check([x["_id"] for x in page] == placeholders + [scraped] and
              [x["position"] for x in page] == [0, 1, 2, 3, 4],
              f"reels in position order, positions assigned in turn: {page}")
        check([x["status"] for x in page] == ["pending"] * 4 + ["ready"] and
              page[0]["metadata"] == {"prompt": "cats doing parkour", "shot": 0, "model": "gen-2"} and
              page[4]["sourceReference"] == "yt:abc123" and "videoUrl" not in page[0],
              f"placeholders pending, a reel with its URL ready: {page}")
        await until(a, lambda: a.results["feeds"][1]["status"] == "curating",
                    "the first reel moves the feed to curating")
        await same_as_fresh(a, "reels", "reels:listForFeed", args, "reels after addToFeed")
        # FastAPI finishes: reels:update flips placeholders to ready with their URLs.
        for i, rid in enumerate(placeholders[:3]):
            worker(srv, "reels:update", {"reelId": rid, "status": "processing"})
            worker(srv, "reels:update", {"reelId": rid, "status": "ready",
                                         "videoUrl": f"https://videos.example.com/g{i}.mp4",
                                         "metadata": {"durationSeconds": 12 + i}})
        await until(a, lambda: [x["status"] for x in reels_of(a.results["reels"])] ==
                    ["ready", "ready", "ready", "pending", "ready"], "three reels flip to ready")
        page = reels_of(a.results["reels"])
        check(page[1]["videoUrl"] == "https://videos.example.com/g1.mp4" and
              page[1]["metadata"] == {"durationSeconds": 13} and page[1]["sourceType"] == "generated",
              f"update patches status, URL and metadata, keeps the rest: {page[1]}")
        await same_as_fresh(a, "reels", "reels:listForFeed", args, "reels after update")
        check("diff" in a.kinds.get("reels", []), f"reel changes arrive as diffs: {a.kinds.get('reels')}")
        worker(srv, "reels:update", {"reelId": placeholders[3], "status": "failed"})
        r = await query(a, "reels:getById", {"reelId": placeholders[3]})
        check((value(r) or {}).get("status") == "failed", f"reels:getById sees the failure: {r}")
        # The orchestrator marks the feed ready: both dashboard views follow.
        worker(srv, "feeds:updateStatus", {"feedId": feed, "status": "ready"})
        await until(a, lambda: [f["_id"] for f in a.results["readyFeeds"]] == [feed],
                    "the ready filter picks the feed up")
        check(a.results["feeds"][1]["status"] == "ready", f"status in the full list: {a.results['feeds']}")
        await same_as_fresh(a, "feeds", "feeds:listByUser", {}, "feeds after updateStatus")
        await same_as_fresh(a, "readyFeeds", "feeds:listByUser", {"status": "ready"}, "ready feeds")
        check("diff" in a.kinds.get("feeds", []), f"feed changes arrive as diffs: {a.kinds.get('feeds')}")
        # The owner may add to her own feed too (a reel she picked herself).
        r = await mutate(a, "reels:addToFeed", {"feedId": feed, "sourceType": "scraped",
                                                 "videoUrl": "https://videos.example.com/own.mp4"})
        check(isinstance(value(r), str) and len(reels_of(a.results["reels"])) == 6,
              f"the owner adds a reel; her page has it on the ack: {r}")
        r = await mutate(a, "reels:update", {"reelId": value(r), "thumbnailUrl": "https://t.example.com/o.jpg"})
        check(r.get("type") == "ack", f"the owner updates her reel: {r}")

        await pagination(srv, a, feed2)
        await progress(srv, a, feed, feed2, placeholders)
        await status_filter(srv, a, feed, feed2)
        await refusals(srv, a, b, ids)
    return ids


async def pagination(srv, a, feed2):
    """25 reels added out of order, read in pages of 10 by position; a reel
    added mid-walk shows up once, at the end; no repeats, no skips."""
    positions = list(range(25))
    random.Random(7).shuffle(positions)
    by_pos = {}
    for p in positions:
        by_pos[p] = worker(srv, "reels:addToFeed", {"feedId": feed2, "position": p,
                                                    "sourceType": "generated", "status": "processing"})
    status, reply = call(srv, "mutation", "reels:addToFeed",
                         {"feedId": feed2, "position": 5, "sourceType": "scraped"}, token=srv.key)
    check(http_refused(status, reply, "CONFLICT"), f"a taken position: CONFLICT: {status} {reply}")
    status, reply = call(srv, "mutation", "reels:addToFeed",
                         {"feedId": feed2, "position": 2.5, "sourceType": "scraped"}, token=srv.key)
    check(http_refused(status, reply, "INVALID_ARGUMENT"), f"a fractional position: {status} {reply}")
    seen, pages, cursor = [], [], None
    while True:
        r = await query(a, "reels:listForFeed", {"feedId": feed2,
                                                 "paginationOpts": {"numItems": 10, "cursor": cursor}})
        res = value(r)
        if not check(isinstance(res, dict), f"a page: {r}"):
            break
        pages.append(len(res["page"]))
        seen += [(x["position"], x["_id"]) for x in res["page"]]
        if len(pages) == 1:
            # A worker adds a reel after the end while Alice is on page one.
            by_pos[25] = worker(srv, "reels:addToFeed", {"feedId": feed2, "sourceType": "generated"})
        if res["isDone"] or len(pages) > 10:
            break
        cursor = res["continueCursor"]
    check([p for p, _ in seen] == list(range(26)), f"every reel once, in position order: {seen}")
    check(all(by_pos[p] == rid for p, rid in seen), "each page holds the reel at its position")
    check(pages[:2] == [10, 10] and sum(pages) == 26 and len(pages) <= 4, f"pages of 10: {pages}")
    # A live page of 10 stays 10 long while reels beyond it are added.
    r = await sub(a, "page2", "reels:listForFeed", {"feedId": feed2, "paginationOpts": {"numItems": 10, "cursor": None}})
    check(len(reels_of(value(r))) == 10 and not value(r)["isDone"], f"live first page: {r}")
    worker(srv, "reels:update", {"reelId": by_pos[3], "status": "ready", "videoUrl": "https://v.example.com/3.mp4"})
    await until(a, lambda: reels_of(a.results["page2"])[3]["status"] == "ready", "a reel on the live page flips")
    check(len(reels_of(a.results["page2"])) == 10, "the live page keeps its 10 reels")
    await same_as_fresh(a, "page2", "reels:listForFeed",
                        {"feedId": feed2, "paginationOpts": {"numItems": 10, "cursor": None}}, "live page")
    r = await a.request({"type": "unsub", "id": "page2"})
    check(r.get("type") == "ack", f"unsub: {r}")
    a.by_pos = by_pos


async def progress(srv, a, feed, feed2, placeholders):
    """feeds:updateProgress, then resume: the feed gives lastSeenReelId back,
    and reading from its position starts at that reel."""
    by_pos = a.by_pos
    r = await mutate(a, "feeds:updateProgress", {"feedId": feed2, "lastSeenReelId": by_pos[12]})
    check(r.get("type") == "ack", f"updateProgress: {r}")
    async with srv.ws() as ws:  # later, on another device: a new connection
        c = ReelsClient(ws)
        await c.request({"type": "auth", "token": ALICE})
        r = await query(c, "feeds:getById", {"feedId": feed2})
        f = value(r) or {}
        check(f.get("lastSeenReelId") == by_pos[12] and f.get("lastSeenIndex") == 12,
              f"resume: the feed gives the last seen reel back: {r}")
        r = await query(c, "reels:listForFeed", {"feedId": feed2, "fromPosition": f.get("lastSeenIndex"),
                                                 "paginationOpts": {"numItems": 5, "cursor": None}})
        res = value(r) or {}
        check([x["position"] for x in res.get("page", [])] == [12, 13, 14, 15, 16] and
              res["page"][0]["_id"] == by_pos[12], f"resume reads from the last seen reel: {r}")
        r = await query(c, "reels:listForFeed", {"feedId": feed2, "fromPosition": 12,
                                                 "paginationOpts": {"numItems": 5,
                                                                    "cursor": res.get("continueCursor")}})
        check([x["position"] for x in (value(r) or {}).get("page", [])] == [17, 18, 19, 20, 21],
              f"the next page after resuming: {r}")
    r = await mutate(a, "feeds:updateProgress", {"feedId": feed2, "lastSeenIndex": 14})
    r = await query(a, "feeds:getById", {"feedId": feed2})
    f = value(r) or {}
    check(f.get("lastSeenIndex") == 14 and "lastSeenReelId" not in f,
          f"an index alone replaces the position and forgets the old reel: {r}")
    r = await mutate(a, "feeds:updateProgress", {"feedId": feed2, "lastSeenReelId": by_pos[20],
                                                  "lastSeenIndex": 20})
    r = await query(a, "feeds:getById", {"feedId": feed2})
    check((value(r) or {}).get("lastSeenReelId") == by_pos[20], f"progress moves on: {r}")
    r = await mutate(a, "feeds:updateProgress", {"feedId": feed2, "lastSeenReelId": placeholders[0]})
    check(refused(r, "INVALID_ARGUMENT"), f"a reel of another feed is refused: {r}")
    r = await mutate(a, "feeds:updateProgress", {"feedId": feed2})
    check(refused(r, "INVALID_ARGUMENT"), f"progress without reel or index: {r}")
    r = await query(a, "feeds:getById", {"feedId": feed2})
    check((value(r) or {}).get("lastSeenReelId") == by_pos[20], f"refused progress changed nothing: {r}")
    # The feed list shows the progress too.
    await until(a, lambda: a.results["feeds"][0].get("lastSeenIndex") == 20, "progress in the live feed list")


async def status_filter(srv, a, feed, feed2):
    r = await query(a, "feeds:listByUser", {"status": "curating"})
    check([f["_id"] for f in value(r) or []] == [feed2], f"curating: the feed being filled: {r}")
    r = await query(a, "feeds:listByUser", {"status": "pending"})
    check(value(r) == [], f"no pending feeds left: {r}")
    r = await mutate(a, "feeds:create", {"prompt": "ocean documentaries", "tags": ["ocean"]})
    feed3 = value(r)
    r = await query(a, "feeds:listByUser", {"status": "pending"})
    check([f["_id"] for f in value(r) or []] == [feed3], f"pending: the new feed: {r}")
    r = await mutate(a, "feeds:updateStatus", {"feedId": feed2, "status": "archived"})
    check(r.get("type") == "ack", f"the owner archives her feed: {r}")
    r = await query(a, "feeds:listByUser", {"status": "archived"})
    check([f["_id"] for f in value(r) or []] == [feed2], f"archived: {r}")
    whole = value(await query(a, "feeds:listByUser", {}))
    for st in ("pending", "curating", "ready", "archived"):
        part = value(await query(a, "feeds:listByUser", {"status": st}))
        check(part == [f for f in whole if f["status"] == st], f"filter {st} is the subset of the list")
    await until(a, lambda: [f["_id"] for f in a.results["feeds"]] == [feed3, feed2, feed],
                "the live list has all three feeds")
    await same_as_fresh(a, "feeds", "feeds:listByUser", {}, "feeds at the end")
    r = await query(a, "feeds:listByUser", {"status": "done"})
    check(r.get("code") == "ValidationError" and "status" in r.get("message", ""),
          f"an unknown status is a ValidationError naming it: {r}")
    v = worker_query(srv, "feeds:listByUser", {"userId": a.results["me"]["_id"], "status": "archived"})
    check([f["_id"] for f in v or []] == [feed2], f"the admin key lists a user's feeds: {v}")
    status, reply = call(srv, "query", "feeds:listByUser", {}, token=srv.key)
    check(http_refused(status, reply, "INVALID_ARGUMENT"), f"admin must say whose feeds: {status} {reply}")


async def refusals(srv, a, b, ids):
    alice_id, feed, reel = ids["alice"], ids["feed"], ids["reel"]
    before = worker_query(srv, "reels:getById", {"reelId": reel})
    feed_before = worker_query(srv, "feeds:getById", {"feedId": feed})
    # Bob sees his own things only, live as well as fresh.
    r = await query(b, "feeds:listByUser", {})
    check([f["_id"] for f in value(r) or []] == [ids["bob_feed"]], f"Bob lists his own feeds only: {r}")
    check(b.results.get("feeds") == value(r),
          f"Bob's live dashboard never saw Alice's feeds: {b.results.get('feeds')}")
    for kind, path, args in [
            ("query", "feeds:listByUser", {"userId": alice_id}),
            ("query", "feeds:getById", {"feedId": feed}),
            ("query", "reels:listForFeed", {"feedId": feed, "paginationOpts": PAGE}),
            ("query", "reels:getById", {"reelId": reel}),
            ("query", "users:getById", {"userId": alice_id}),
            ("query", "users:getByAuth0Id", {"auth0Id": ALICE_SUB}),
            ("mutate", "feeds:updateStatus", {"feedId": feed, "status": "archived"}),
            ("mutate", "feeds:updateProgress", {"feedId": feed, "lastSeenReelId": reel}),
            ("mutate", "reels:addToFeed", {"feedId": feed, "sourceType": "scraped"}),
            ("mutate", "reels:update", {"reelId": reel, "status": "failed", "videoUrl": "https://evil"})]:
        r = await b.request({"type": kind, "path": path, "args": args})
        check(refused(r, "FORBIDDEN"), f"Bob: {path} on Alice's data is FORBIDDEN: {r}")
    r = await sub(b, "steal", "reels:listForFeed", {"feedId": feed, "paginationOpts": PAGE})
    check(refused(r, "FORBIDDEN") and "steal" not in b.results, f"Bob cannot subscribe to Alice's reels: {r}")
    check(worker_query(srv, "reels:getById", {"reelId": reel}) == before and
          worker_query(srv, "feeds:getById", {"feedId": feed}) == feed_before,
          "Bob's refused writes changed nothing")
    # Alice's connection signs in as Bob: her subscriptions re-run as Bob and are refused.
    r = await a.request({"type": "auth", "token": BOB})
    check(r.get("type") == "ack", f"re-authentication: {r}")
    await until(a, lambda: refused(a.answers.get("reels", {}), "FORBIDDEN"),
                "Alice's reels subscription refused once the connection is Bob's")
    await until(a, lambda: [f["_id"] for f in a.results["feeds"]] == [ids["bob_feed"]],
                "the feed list follows the new identity")
    r = await a.request({"type": "auth", "token": None})
    await until(a, lambda: refused(a.answers.get("feeds", {}), "UNAUTHENTICATED"),
                "signed out: the feed list subscription is refused")
    # Signed in, never upserted: no feeds, and creating one says why not.
    async with srv.ws() as ws:
        c = ReelsClient(ws)
        await c.request({"type": "auth", "token": CAROL})
        r = await query(c, "feeds:listByUser", {})
        check(value(r) == [], f"a user without a record has no feeds: {r}")
        r = await mutate(c, "feeds:create", {"prompt": "hello"})
        check(refused(r, "USER_NOT_FOUND"), f"feeds:create before users:upsert: {r}")
        r = await query(c, "users:me", {})
        check(r.get("type") == "result" and r["value"] is None, f"users:me before upsert: {r}")
        r = await query(c, "feeds:getById", {"feedId": feed})
        check(refused(r, "FORBIDDEN"), f"Carol: Alice's feed: {r}")
    # A JWT of another issuer, or one for another audience, does not sign in.
    other = Issuer("https://reels-evil.us.auth0.com/", "reels-web")
    wrong_aud = Issuer(AUTH0.issuer, "another-app")
    wrong_aud.key, wrong_aud.kid = AUTH0.key, AUTH0.kid
    async with srv.ws() as ws:
        c = ReelsClient(ws)
        for tok, what in [(other.token(ALICE_SUB), "another issuer"),
                          (wrong_aud.token(ALICE_SUB), "another audience"),
                          (AUTH0.token(ALICE_SUB, ttl=-600), "expired")]:
            r = await c.request({"type": "auth", "token": tok})
            check(r.get("type") == "error" and r.get("code") == "Unauthorized", f"{what}: {r}")
            r = await query(c, "feeds:listByUser", {})
            check(refused(r, "UNAUTHENTICATED"), f"after a refused token ({what}): {r}")


async def bad_calls(srv, ids):
    async with srv.ws() as ws:
        c = ReelsClient(ws)
        await c.request({"type": "auth", "token": ALICE})
        for kind, path, args, name in [
                ("query", "reels:listForFeed", {"feedId": 5, "paginationOpts": PAGE}, "feedId"),
                ("query", "reels:listForFeed", {"feedId": ids["reel"], "paginationOpts": PAGE}, "feedId"),
                ("query", "reels:listForFeed", {"feedId": ids["feed"]}, "paginationOpts"),
                ("query", "reels:listForFeed", {"feedId": ids["feed"],
                                                "paginationOpts": {"numItems": "ten", "cursor": None}}, "numItems"),
                ("query", "reels:listForFeed", {"feedId": ids["feed"],
                                                "paginationOpts": {"numItems": 10, "cursor": 3}}, "cursor"),
                ("mutate", "feeds:create", {"topic": "no prompt"}, "prompt"),
                ("mutate", "feeds:create", {"prompt": "p", "tags": "cats"}, "tags"),
                ("mutate", "feeds:updateStatus", {"feedId": ids["feed"], "status": "done"}, "status"),
                ("mutate", "feeds:updateProgress", {"feedId": ids["feed"], "lastSeenIndex": "3"}, "lastSeenIndex"),
                ("mutate", "reels:addToFeed", {"feedId": ids["feed"], "sourceType": "tiktok"}, "sourceType"),
                ("mutate", "reels:update", {"reelId": ids["feed"], "status": "ready"}, "reelId"),
                ("mutate", "reels:update", {"reelId": ids["reel"], "status": "done"}, "status"),
                ("query", "users:getById", {"userId": ids["feed"]}, "userId")]:
            r = await c.request({"type": kind, "path": path, "args": args})
            check(r.get("type") == "error" and r.get("code") == "ValidationError" and
                  name in r.get("message", ""), f"{path} {args}: ValidationError naming {name}: {r}")
        r = await query(c, "reels:listForFeed", {"feedId": ids["feed"],
                                                 "paginationOpts": {"numItems": 0, "cursor": None}})
        check(refused(r, "INVALID_ARGUMENT"), f"numItems 0: {r}")
        for path in ["reels:nothing", "nothing:listForFeed", "access:identity", "reels:delete"]:
            r = await query(c, path, {})
            check(r.get("type") == "error" and r.get("code") == "NotFound", f"unknown {path}: {r}")
        r = await query(c, "reels:addToFeed", {"feedId": ids["feed"], "sourceType": "scraped"})
        check(r.get("type") == "error" and r.get("code") == "InvalidArgument", f"a mutation as a query: {r}")
        r = await mutate(c, "reels:listForFeed", {"feedId": ids["feed"], "paginationOpts": PAGE})
        check(r.get("type") == "error" and r.get("code") == "InvalidArgument", f"a query as a mutation: {r}")
        r = await c.request({"type": "ping"})
        check(r.get("type") == "pong", "the connection lives on after the errors")
    status, reply = call(srv, "query", "reels:nothing", {}, token=srv.key)
    check(status == 404 and reply.get("code") == "NotFound", f"HTTP unknown function: {status} {reply}")
    status, reply = call(srv, "mutation", "reels:update", {"reelId": 12}, token=srv.key)
    check(status == 400 and reply.get("code") == "ValidationError" and "reelId" in reply.get("errorMessage", ""),
          f"HTTP bad argument: {status} {reply}")
    # A user's own JWT works over HTTP too (a server-side render, a script).
    status, reply = call(srv, "query", "feeds:listByUser", {"status": "ready"}, token=ALICE)
    check(status == 200 and [f["_id"] for f in reply.get("value") or []] == [ids["feed"]],
          f"HTTP with Alice's JWT (a {len(ALICE)}-character token) lists her feeds: {status} {reply}")


def main():
    work = tempfile.mkdtemp(prefix="herald-reels-")
    app = app_with_issuers(APP, [AUTH0], work)
    srv = None
    try:
        srv = Server(HERALD, app, os.path.join(work, "data"))
        check("13 functions loaded, 1 auth providers" in srv.output(), f"app loaded: {srv.output()}")
        ids = asyncio.run(main_flow(srv))
        asyncio.run(anonymous(srv, ids))
        asyncio.run(bad_calls(srv, ids))
    except Exception as e:  # a crash of the test is a failure too, with the server's story
        check(False, f"exception: {e!r}")
        import traceback
        traceback.print_exc()
    finally:
        if srv:
            rc = srv.stop()
            out = srv.output()
            check(rc == 0, f"server exit code {rc}: {out[-3000:]}")
            check("ERROR: AddressSanitizer" not in out and "runtime error:" not in out,
                  "sanitizers quiet: " + out[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    return finish("test_reels")


if __name__ == "__main__":
    sys.exit(main())
