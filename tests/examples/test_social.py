"""The social app of seed 004 (examples/social) end to end on a live
server: Better Auth users signed in with JWTs (the user id is the token's
subject), profiles, posts and the feed's pages, conversations found again
by their members, and messages that two members watch live while a third
user can neither read, watch nor post; re-authentication re-runs a
subscription under the new identity; and files: avatars, post images,
message attachments and product images uploaded as real bytes, read back
byte for byte (and by range), replaced and deleted, and never readable
by someone the app did not hand the URL to.

Run as: /usr/bin/python3 test_social.py <herald> <source root>
"""
import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from herald_client import Client  # noqa: E402
from herald_testlib import (Issuer, Server, app_with_issuers, call, check, failures,  # noqa: E402
                            finish, http)
import storage_http as files  # noqa: E402

HERALD = sys.argv[1]
ROOT = sys.argv[2]
APP = os.path.join(ROOT, "examples", "social")
ISSUER = "https://social.example"


def ok(reply):
    status, r = reply
    return r.get("value") if status == 200 and r.get("status") == "success" else None


def refused(reply, code):
    """An HTTP reply that is the app's herald.error with data.code `code`."""
    status, r = reply
    return (status != 200 and r.get("status") == "error" and r.get("code") == "FunctionError"
            and (r.get("errorData") or {}).get("code") == code)


def ws_refused(msg, code):
    return (msg.get("type") == "error" and msg.get("code") == "FunctionError"
            and (msg.get("data") or {}).get("code") == code)


def raw_count(server, table, index=None, rng=None):
    """Counts documents with a raw admin query (not through the app)."""
    q = {"table": table}
    if index:
        q["index"] = index
    if rng:
        q["range"] = rng
    st, r = http(server, "query", {"query": q}, server.key)
    return len(r["value"]) if st == 200 else None


async def wait_until(c, cond, timeout=20):
    """Pumps messages until cond() holds; False when the guard ran out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        left = deadline - loop.time()
        if left <= 0:
            return False
        try:
            await c.pump(left)
        except asyncio.TimeoutError:
            return False
    return True


async def connect(server, token):
    ws = await server.ws()
    c = Client(ws)
    if token is not None:
        r = await c.request({"type": "auth", "token": token})
        check(r["type"] == "ack", f"sign-in over WebSocket: {r}")
    return c


async def sub(c, sid, path, args):
    c.pending_subs.add(sid)
    return await c.request({"type": "sub", "id": sid, "path": path, "args": args})


def test_shipped_config(work):
    """The app folder as shipped (placeholder Better Auth JWKS) starts."""
    data = tempfile.mkdtemp(prefix="data-", dir=work)
    srv = Server(HERALD, APP, data)
    try:
        check("21 functions loaded, 1 auth providers" in srv.output(),
              f"shipped app loads its functions and provider: {srv.output()[-400:]}")
        st, r = call(srv, "query", "posts:feed", {"paginationOpts": {"numItems": 5, "cursor": None}})
        check(st == 200 and r["value"]["page"] == [] and r["value"]["isDone"],
              f"empty feed: {st} {r}")
    finally:
        check(srv.stop() == 0, "shipped app: clean stop")
        check_sanitizers(srv, "shipped app")


def check_sanitizers(srv, what):
    out = srv.output()
    check("ERROR: AddressSanitizer" not in out and "runtime error:" not in out
          and "LeakSanitizer" not in out, f"{what}: sanitizer report: {out[-3000:]}")


def test_anonymous_and_validation(srv, tA):
    for path, args in [("posts:create", {"text": "hi"}),
                       ("profiles:upsertMine", {"displayName": "Anon"}),
                       ("conversations:create", {"memberIds": ["user_B"]})]:
        check(refused(call(srv, "mutation", path, args), "UNAUTHENTICATED"),
              f"anonymous {path} refused")
    check(refused(call(srv, "query", "conversations:listMine", {}), "UNAUTHENTICATED"),
          "anonymous conversations:listMine refused")
    check(ok(call(srv, "query", "profiles:getMine", {})) is None
          and call(srv, "query", "profiles:getMine", {})[0] == 200, "anonymous getMine is null")
    check(raw_count(srv, "posts") == 0 and raw_count(srv, "profiles") == 0
          and raw_count(srv, "conversations") == 0, "anonymous calls wrote nothing")
    # A bad JWT is refused outright, not treated as anonymous.
    st, r = call(srv, "mutation", "posts:create", {"text": "hi"}, token=tA[:-6] + "AAAAAA")
    check(st == 401 and r.get("code") == "Unauthorized", f"tampered token: {st} {r}")

    def validation(path, args, kind, needle):
        st, r = call(srv, kind, path, args, token=tA)
        check(st == 400 and r.get("code") == "ValidationError" and needle in r.get("errorMessage", ""),
              f"{path} {args}: ValidationError naming {needle}: {st} {r}")

    validation("posts:create", {"text": 5}, "mutation", "args.text")
    validation("posts:create", {}, "mutation", "text")
    validation("posts:create", {"text": "x", "mediaIds": "nope"}, "mutation", "args.mediaIds")
    validation("posts:feed", {}, "query", "paginationOpts")
    validation("posts:feed", {"paginationOpts": {"numItems": "ten", "cursor": None}}, "query",
               "args.paginationOpts.numItems")
    validation("profiles:upsertMine", {"displayName": "A", "bio": False}, "mutation", "args.bio")
    validation("conversations:create", {"memberIds": "user_B"}, "mutation", "args.memberIds")
    validation("conversations:create", {"memberIds": ["user_B", 3]}, "mutation", "args.memberIds[1]")
    validation("messages:send", {"conversationId": "not-an-id", "text": "x"}, "mutation",
               "args.conversationId")
    validation("profiles:getByUserId", {"userId": "u", "extra": 1}, "query", "extra")
    check(raw_count(srv, "posts") == 0, "refused arguments wrote nothing")


def test_profiles(srv, tA, tB, tC, tD):
    id1 = ok(call(srv, "mutation", "profiles:upsertMine",
                  {"displayName": "Alice", "bio": "hello"}, token=tA))
    id2 = ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia"}, token=tA))
    check(id1 is not None and id1 == id2, f"second upsert updates the same profile: {id1} {id2}")
    check(raw_count(srv, "profiles") == 1, "upsert twice keeps one profile")
    mine = ok(call(srv, "query", "profiles:getMine", {}, token=tA))
    check(mine and mine["userId"] == "user_A" and mine["displayName"] == "Alicia"
          and mine["bio"] == "hello" and mine["updatedAt"] >= mine["createdAt"],
          f"getMine after the update: {mine}")
    ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia", "clearBio": True},
            token=tA))
    mine = ok(call(srv, "query", "profiles:getMine", {}, token=tA))
    check(mine and "bio" not in mine, f"bio cleared: {mine}")
    ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Bob"}, token=tB))
    ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alison"}, token=tC))
    ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "\u00c9lo\u00efse"}, token=tD))
    got = ok(call(srv, "query", "profiles:getByUserId", {"userId": "user_B"}))
    check(got and got["displayName"] == "Bob", f"getByUserId: {got}")
    check(ok(call(srv, "query", "profiles:getByUserId", {"userId": "nobody"})) is None,
          "getByUserId of an unknown user is null")
    check(refused(call(srv, "mutation", "profiles:upsertMine", {"displayName": "  "}, token=tA),
                  "INVALID"), "blank displayName refused")

    def names(prefix, **kw):
        r = ok(call(srv, "query", "profiles:searchByDisplayName", dict(prefix=prefix, **kw)))
        return [p["displayName"] for p in r] if r is not None else None
    check(names("Ali") == ["Alicia", "Alison"], f"prefix Ali: {names('Ali')}")
    check(names("Alic") == ["Alicia"], f"prefix Alic: {names('Alic')}")
    check(names("") == ["Alicia", "Alison", "Bob", "\u00c9lo\u00efse"], f"empty prefix: {names('')}")
    check(names("\u00c9") == ["\u00c9lo\u00efse"] and names("\u00c9lo\u00ef") == ["\u00c9lo\u00efse"]
          and names("E") == [], "non-ASCII prefixes")
    check(names("B") == ["Bob"] and names("Z") == [] and names("Bobby") == [],
          "prefixes B, Z, Bobby")
    check(names("", limit=2) == ["Alicia", "Alison"], "limit")


def test_posts(srv, tA, tB):
    ids = {}
    for i in range(10):
        who, tok = ("A", tA) if i % 3 else ("B", tB)
        ids[i] = ok(call(srv, "mutation", "posts:create", {"text": f"post {i} by {who}"}, token=tok))
    check(all(ids.values()), f"posts created: {ids}")
    first = ok(call(srv, "query", "posts:listByAuthor", {"authorId": "user_A"}))
    check(first and all(p["authorId"] == "user_A" for p in first) and len(first) == 6,
          f"listByAuthor user_A: {first}")
    check(first and [p["text"] for p in first] ==
          [f"post {i} by A" for i in reversed(range(10)) if i % 3], "listByAuthor newest first")
    # The feed a page at a time: every post once, newest first.
    seen, cursor, pages = [], None, 0
    while pages < 10:
        page = ok(call(srv, "query", "posts:feed", {"paginationOpts": {"numItems": 4, "cursor": cursor}}))
        if not check(page is not None, "feed page"):
            break
        pages += 1
        check(len(page["page"]) <= 4, "page size")
        seen += page["page"]
        cursor = page["continueCursor"]
        if page["isDone"]:
            break
    check(pages == 3, f"10 posts in pages of 4: {pages} pages")
    check([p["text"] for p in seen] == [f"post {i} by {'B' if i % 3 == 0 else 'A'}"
                                        for i in reversed(range(10))],
          f"feed newest first, each post once: {[p['text'] for p in seen]}")
    keys = [(p["createdAt"], p["_creationTime"]) for p in seen]
    check(keys == sorted(keys, reverse=True), "feed ordered by createdAt desc")
    by_author = ok(call(srv, "query", "posts:listByAuthor",
                        {"authorId": "user_B", "paginationOpts": {"numItems": 3, "cursor": None}}))
    check(by_author and len(by_author["page"]) == 3 and by_author["page"][0]["text"] == "post 9 by B",
          f"listByAuthor paginated: {by_author}")
    # Only the author deletes.
    check(refused(call(srv, "mutation", "posts:remove", {"postId": ids[1]}, token=tB), "FORBIDDEN"),
          "B cannot delete A's post")
    check(raw_count(srv, "posts") == 10, "refused delete kept the post")
    check(refused(call(srv, "mutation", "posts:remove", {"postId": ids[1]}), "UNAUTHENTICATED"),
          "anonymous delete refused")
    st, r = call(srv, "mutation", "posts:remove", {"postId": ids[1]}, token=tA)
    check(st == 200, f"author deletes: {st} {r}")
    check(refused(call(srv, "mutation", "posts:remove", {"postId": ids[1]}, token=tA), "NOT_FOUND"),
          "deleting twice: NOT_FOUND")
    page = ok(call(srv, "query", "posts:feed", {"paginationOpts": {"numItems": 50, "cursor": None}}))
    check(page and len(page["page"]) == 9 and ids[1] not in [p["_id"] for p in page["page"]]
          and page["isDone"], "deleted post left the feed")
    st, r = call(srv, "mutation", "posts:remove", {"postId": ok(call(
        srv, "query", "profiles:getByUserId", {"userId": "user_A"}))["_id"]}, token=tA)
    check(st == 400 and r.get("code") == "ValidationError" and "args.postId" in r.get("errorMessage", ""),
          f"a profile id is not a post id: {r}")


def test_products(srv, tA):
    check(refused(call(srv, "mutation", "products:create", {"name": "Mug"}, token=tA), "FORBIDDEN"),
          "a signed-in user cannot add products")
    check(refused(call(srv, "mutation", "products:create", {"name": "Mug"}), "FORBIDDEN"),
          "anonymous cannot add products")
    pid = ok(call(srv, "mutation", "products:create", {"name": "Mug", "price": 9.5}, token=srv.key))
    check(pid is not None, "the admin key adds a product")
    lst = ok(call(srv, "query", "products:list", {}))
    check(lst and len(lst) == 1 and lst[0]["name"] == "Mug" and lst[0]["price"] == 9.5
          and "description" not in lst[0], f"products:list: {lst}")


def test_conversations(srv, tA, tB, tC):
    cid = ok(call(srv, "mutation", "conversations:create", {"memberIds": ["user_B"]}, token=tA))
    check(cid is not None, "A starts a conversation with B")
    again = ok(call(srv, "mutation", "conversations:create", {"memberIds": ["user_A"]}, token=tB))
    check(again == cid, f"B finds the same conversation: {again} {cid}")
    again = ok(call(srv, "mutation", "conversations:create",
                    {"memberIds": ["user_B", "user_A", "user_B"]}, token=tA))
    check(again == cid, "duplicates and the caller listed: still the same conversation")
    check(raw_count(srv, "conversations") == 1, "one conversation stored")
    conv = ok(call(srv, "query", "conversations:get", {"conversationId": cid}, token=tB))
    check(conv and conv["memberIds"] == ["user_A", "user_B"] and "lastMessageAt" not in conv,
          f"members sorted: {conv}")
    check(raw_count(srv, "conversations", "by_memberIds",
                    [{"eq": ["memberIds", ["user_A", "user_B"]]}]) == 1,
          "by_memberIds finds the conversation by its sorted members")
    check(refused(call(srv, "mutation", "conversations:create", {"memberIds": []}, token=tA), "INVALID"),
          "a conversation with nobody else refused")
    check(refused(call(srv, "mutation", "conversations:create", {"memberIds": ["user_A"]}, token=tA),
                  "INVALID"), "a conversation with oneself refused")
    cid2 = ok(call(srv, "mutation", "conversations:create", {"memberIds": ["user_C", "user_A"]}, token=tA))
    check(cid2 and cid2 != cid, "A and C get their own conversation")

    def mine(tok):
        r = ok(call(srv, "query", "conversations:listMine", {}, token=tok))
        return sorted(c["_id"] for c in r) if r is not None else None
    check(mine(tA) == sorted([cid, cid2]), "A's conversations")
    check(mine(tB) == [cid], "B's conversations")
    check(mine(tC) == [cid2], "C's conversations")
    check(refused(call(srv, "query", "conversations:get", {"conversationId": cid}, token=tC), "FORBIDDEN"),
          "C cannot read A and B's conversation")
    check(refused(call(srv, "query", "conversations:get", {"conversationId": cid}), "UNAUTHENTICATED"),
          "anonymous cannot read a conversation")
    return cid, cid2


async def test_live(srv, tA, tB, tC, cid, cid2):
    a = await connect(srv, tA)
    b = await connect(srv, tB)
    c = await connect(srv, tC)
    a2 = await connect(srv, tA)  # A's second tab: shares the evaluation of A's subscription
    try:
        args = {"conversationId": cid}
        r = await sub(a, "msgs", "messages:list", args)
        check(r["type"] == "result" and r["value"] == [], f"A subscribes: {r}")
        r = await sub(b, "msgs", "messages:list", args)
        check(r["type"] == "result" and r["value"] == [], f"B subscribes: {r}")
        r = await sub(a2, "msgs", "messages:list", args)
        check(r["type"] == "result" and r["value"] == [], f"A's second tab subscribes: {r}")
        r = await sub(a, "conv", "conversations:get", args)
        check(r["type"] == "result" and r["value"]["_id"] == cid, f"A watches the conversation: {r}")
        r = await sub(b, "mine", "conversations:listMine", {})
        check(r["type"] == "result" and [x["_id"] for x in r["value"]] == [cid], f"B's list: {r}")
        # C, not a member, can neither subscribe, read, nor post.
        r = await sub(c, "spy", "messages:list", args)
        check(ws_refused(r, "FORBIDDEN"), f"C's subscription is an error: {r}")
        c.pending_subs.discard("spy")
        r = await c.request({"type": "query", "path": "messages:list", "args": args})
        check(ws_refused(r, "FORBIDDEN"), f"C's query is refused: {r}")

        updates = {"A": [], "B": []}
        a.on_change = lambda sid, value, version: updates["A"].append((sid, version))
        b.on_change = lambda sid, value, version: updates["B"].append((sid, version))
        sent = []
        for i in range(8):
            who, conn = ("A", a) if i % 2 == 0 else ("B", b)
            text = f"message {i} from {who}"
            r = await conn.request({"type": "mutate", "path": "messages:send",
                                    "args": {"conversationId": cid, "text": text}})
            if not check(r["type"] == "ack", f"{who} sends: {r}"):
                continue
            sent.append(text)
            # Read your writes: the sender's update came before its ack.
            check([m["text"] for m in conn.results["msgs"]] == sent,
                  f"{who}'s own message is in its subscription when the ack arrives")
            for name, cl in (("A", a), ("B", b)):
                got = await wait_until(cl, lambda: [m["text"] for m in cl.results["msgs"]] == sent)
                check(got, f"{name} sees message {i} live: {[m['text'] for m in cl.results['msgs']]}")
            await wait_until(a, lambda: (a.results["conv"] or {}).get("lastMessageAt") ==
                             a.results["msgs"][-1]["createdAt"])
            check(a.results["conv"].get("lastMessageAt") == a.results["msgs"][-1]["createdAt"],
                  f"lastMessageAt follows message {i}")
        check(sum(1 for sid, _ in updates["A"] if sid == "msgs") == 8 and
              sum(1 for sid, _ in updates["B"] if sid == "msgs") == 8,
              f"each message arrived as one update at each member: {updates}")
        msgs = a.results["msgs"]
        check([m["createdAt"] for m in msgs] == sorted(m["createdAt"] for m in msgs)
              and all(m["senderId"] == ("user_A" if i % 2 == 0 else "user_B") for i, m in enumerate(msgs)),
              "messages in createdAt order with their senders")
        check(b.results["msgs"] == a.results["msgs"], "both members hold the same messages")
        check(not a.errors and not b.errors, f"versions only grow: {a.errors} {b.errors}")
        await wait_until(b, lambda: b.results["mine"] and "lastMessageAt" in b.results["mine"][0])
        check(b.results["mine"][0].get("lastMessageAt") == msgs[-1]["createdAt"],
              "B's conversation list follows lastMessageAt")

        # Sends that arrive together (pipelined, committed in groups) reach
        # both members whole and in createdAt order.
        burst = []
        for i in range(6):
            who, conn = ("A", a) if i % 2 == 0 else ("B", b)
            burst.append(f"burst {i} from {who}")
            await conn.ws.send(json.dumps({"type": "mutate", "id": f"burst{i}", "path": "messages:send",
                                           "args": {"conversationId": cid, "text": burst[-1]}}))
        for name, cl in (("A", a), ("B", b)):
            got = await wait_until(cl, lambda: len(cl.results["msgs"]) == len(sent) + len(burst)
                                   and all(f"burst{i}" in cl.answers for i in range(6)
                                           if (i % 2 == 0) == (cl is a)))
            check(got, f"{name} sees the burst: {[m['text'] for m in cl.results['msgs']]}")
            keys = [(m["createdAt"], m["_creationTime"]) for m in cl.results["msgs"]]
            check(keys == sorted(keys) and sorted(m["text"] for m in cl.results["msgs"][len(sent):]) ==
                  sorted(burst), f"{name}: the burst in createdAt order")
        check(all(a.answers.get(f"burst{i}", {}).get("type") == "ack" for i in range(0, 6, 2)) and
              all(b.answers.get(f"burst{i}", {}).get("type") == "ack" for i in range(1, 6, 2)),
              "every burst send acknowledged")
        sent = [m["text"] for m in a.results["msgs"]]
        check(b.results["msgs"] == a.results["msgs"], "both members agree after the burst")
        await wait_until(a2, lambda: [m["text"] for m in a2.results["msgs"]] == sent)
        check([m["text"] for m in a2.results["msgs"]] == sent, "A's second tab follows too")
        msgs = a.results["msgs"]
        await wait_until(a, lambda: a.results["conv"].get("lastMessageAt") == msgs[-1]["createdAt"])
        check(a.results["conv"].get("lastMessageAt") == msgs[-1]["createdAt"],
              "lastMessageAt is the newest message's createdAt after the burst")

        # C's send is refused and wrote nothing (checked as a member).
        r = await c.request({"type": "mutate", "path": "messages:send",
                             "args": {"conversationId": cid, "text": "let me in"}})
        check(ws_refused(r, "FORBIDDEN"), f"C's send is refused: {r}")
        r = await a.request({"type": "query", "path": "messages:list", "args": args})
        check(r["type"] == "result" and [m["text"] for m in r["value"]] == sent,
              f"nothing written by C's send: {r}")
        r = await a.request({"type": "query", "path": "conversations:get", "args": args})
        check(r["type"] == "result" and r["value"]["lastMessageAt"] == msgs[-1]["createdAt"],
              "C's send did not move lastMessageAt")
        check(raw_count(srv, "messages") == 14, "fourteen messages stored")
        # Anonymous sends are refused too.
        st, reply = call(srv, "mutation", "messages:send", {"conversationId": cid, "text": "x"})
        check(refused((st, reply), "UNAUTHENTICATED"), f"anonymous send refused: {reply}")
        # take(n): the most recent, oldest first; older history by pages.
        last3 = ok(call(srv, "query", "messages:list", {"conversationId": cid, "limit": 3}, token=tB))
        check(last3 and [m["text"] for m in last3] == sent[-3:], f"limit 3: {last3}")
        history, cursor, pages, done = [], None, 0, False
        while pages < 10 and not done:
            page = ok(call(srv, "query", "messages:listPage",
                           {"conversationId": cid, "paginationOpts": {"numItems": 5, "cursor": cursor}},
                           token=tB))
            if not check(page is not None, "listPage page"):
                break
            pages += 1
            history += page["page"]
            cursor, done = page["continueCursor"], page["isDone"]
        check(pages == 3 and [m["text"] for m in history] == sent[::-1],
              f"listPage: newest first, 14 messages in 3 pages: {pages}")
        check(refused(call(srv, "query", "messages:listPage",
                           {"conversationId": cid, "paginationOpts": {"numItems": 5, "cursor": None}},
                           token=tC), "FORBIDDEN"), "C cannot page through it either")
        # Messages of A and C's conversation do not reach A and B's subscribers.
        n_before = len(updates["B"])
        r = await c.request({"type": "mutate", "path": "messages:send",
                             "args": {"conversationId": cid2, "text": "hi A, it's C"}})
        check(r["type"] == "ack", f"C posts in its own conversation: {r}")
        r = await b.request({"type": "ping"})
        check(not any(sid == "msgs" for sid, _ in updates["B"][n_before:]),
              "another conversation's message is not sent to B's subscription")
        check([m["text"] for m in b.results["msgs"]] == sent, "B's messages unchanged")

        # A's connection signs in as C: the subscription re-runs as C and fails.
        a.answers.pop("msgs", None)
        r = await a.request({"type": "auth", "token": tC})
        check(r["type"] == "ack", f"A's connection re-authenticates as C: {r}")
        got = await wait_until(a, lambda: "msgs" in a.answers)
        check(got and ws_refused(a.answers.get("msgs", {}), "FORBIDDEN"),
              f"after re-authentication as C the subscription is an error: {a.answers.get('msgs')}")
        a.answers.pop("msgs", None)
        # B posts: A's connection (now C) must not receive it.
        seen_by_a = []
        a.on_change = lambda sid, value, version: seen_by_a.append((sid, value))
        r = await b.request({"type": "mutate", "path": "messages:send",
                             "args": {"conversationId": cid, "text": "secret for A"}})
        check(r["type"] == "ack", "B sends while A's connection is signed in as C")
        sent.append("secret for A")
        r = await a.request({"type": "ping"})  # after everything that commit queued for it
        leaked = [v for sid, v in seen_by_a if sid == "msgs" and "secret for A" in str(v)]
        check(not leaked, f"the message does not reach the connection now signed in as C: {leaked}")
        got = await wait_until(a2, lambda: [m["text"] for m in a2.results["msgs"]] == sent)
        check(got, "A's second tab, still signed in as A, receives it")
        err = a.answers.get("msgs")
        check(err is None or ws_refused(err, "FORBIDDEN"), f"at most another refusal: {err}")
        r = await a.request({"type": "query", "path": "messages:list", "args": args})
        check(ws_refused(r, "FORBIDDEN"), "the connection now reads as C")
        # Signed out: refused as anonymous; back as A: the whole current list.
        a.answers.pop("msgs", None)
        r = await a.request({"type": "auth", "token": None})
        check(r["type"] == "ack", "sign-out")
        got = await wait_until(a, lambda: "msgs" in a.answers)
        check(got and ws_refused(a.answers.get("msgs", {}), "UNAUTHENTICATED"),
              f"signed out, the subscription is refused: {a.answers.get('msgs')}")
        r = await a.request({"type": "auth", "token": tA})
        check(r["type"] == "ack", "A signs in again")
        got = await wait_until(a, lambda: [m["text"] for m in a.results["msgs"]] == sent)
        check(got, f"as A again the subscription has every message: {[m['text'] for m in a.results['msgs']]}")
        # ...and is live again.
        r = await b.request({"type": "mutate", "path": "messages:send",
                             "args": {"conversationId": cid, "text": "welcome back"}})
        sent.append("welcome back")
        got = await wait_until(a, lambda: [m["text"] for m in a.results["msgs"]] == sent)
        check(got, "live again after signing back in")
    finally:
        for cl in (a, b, c, a2):
            await cl.ws.close()


# ---- files -----------------------------------------------------------------

def upload_url(srv, token):
    """media:generateUploadUrl as `token`: the URL, checked for its form."""
    url = ok(call(srv, "mutation", "media:generateUploadUrl", {}, token=token))
    check(isinstance(url, str) and url.startswith(f"http://localhost:{srv.port}/api/storage/upload/"),
          f"an upload URL on Herald's own port: {url}")
    return url


def put_file(srv, token, data, content_type):
    """Uploads data as `token`; the new storage id (None and a failed check otherwise)."""
    url = upload_url(srv, token)
    if not url:
        return None
    r, sid = files.upload(url, data, content_type)
    check(r.status == 200 and sid, f"upload of {len(data)} bytes ({content_type}): {r}")
    return sid


def served(url, data, content_type, what):
    """The URL serves exactly `data` with its content type and caching headers."""
    r = files.get(url)
    good = check(r.status == 200 and r.body == data, f"{what}: {r.status}, {len(r.body)} bytes of {len(data)}, "
                 f"equal: {r.body == data}")
    check(r.header("Content-Type") == content_type, f"{what}: Content-Type {r.header('Content-Type')}")
    check(r.header("Content-Length") == str(len(data)), f"{what}: Content-Length {r.header('Content-Length')}")
    check(bool(r.header("ETag")) and bool(r.header("Cache-Control")),
          f"{what}: ETag and Cache-Control: {dict(r.headers)}")
    return good


def gone(url, what):
    r = files.get(url)
    check(r.status == 404, f"{what}: 404, got {r}")


def test_files(srv, tA, tB, tC, cid, cid2):
    def rows():
        got = files.storage_rows(call, srv, "media:storedFiles")
        check(got is not None, "media:storedFiles lists _storage for the admin key")
        return got
    check(refused(call(srv, "mutation", "media:generateUploadUrl", {}), "UNAUTHENTICATED"),
          "anonymous callers get no upload URL")

    # -- avatars: upload, show, replace, clear --
    avatar1 = files.png(32, 24, seed=1)
    url = upload_url(srv, tA)
    r, a1 = files.upload(url, avatar1, "image/png")
    check(r.status == 200 and a1, f"A uploads an avatar: {r}")
    r2, _ = files.upload(url, files.png(2, 2), "image/png")
    check(r2.status in (400, 403, 404, 409, 410), f"an upload URL is single-use: {r2}")
    row = (rows() or {}).get(a1)
    check(row and row["size"] == len(avatar1) and row["contentType"] == "image/png"
          and row["sha256"] == hashlib.sha256(avatar1).hexdigest() and row["_creationTime"] > 0,
          f"the _storage row of the avatar: {row}")
    check(list(rows() or {}) == [a1] and (rows() or {})[a1].get("held") is False,
          f"the refused second upload stored nothing, and no document holds the first yet: {rows()}")
    ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia", "avatarId": a1}, token=tA))
    check((rows() or {}).get(a1, {}).get("held") is True, "the avatar is held by the profile")
    st, r = call(srv, "query", "media:storedFiles", {}, token=tA)
    check(st != 200, f"media:storedFiles is internal: {st} {r}")
    mine = ok(call(srv, "query", "profiles:getMine", {}, token=tA))
    avatar_url1 = mine and mine.get("avatarUrl")
    check(mine and mine.get("avatarId") == a1 and files.split(avatar_url1)
          and avatar_url1.startswith(f"http://localhost:{srv.port}/api/storage/{a1}/"),
          f"getMine: avatarId and avatarUrl: {mine}")
    served(avatar_url1, avatar1, "image/png", "the avatar URL serves the PNG")
    public = ok(call(srv, "query", "profiles:getByUserId", {"userId": "user_A"}))
    check(public and public.get("avatarUrl") == avatar_url1, "avatars are public: the same URL for anyone")
    found = ok(call(srv, "query", "profiles:searchByDisplayName", {"prefix": "Alicia"}))
    check(found and found[0].get("avatarUrl") == avatar_url1, f"search results carry avatarUrl: {found}")

    # Not an image: refused, the avatar stays.
    txt = put_file(srv, tA, b"just some text\n", "text/plain")
    check(refused(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia", "avatarId": txt},
                       token=tA), "INVALID"), "a text file as avatar is refused")
    # Another user's file, or a file of no one: refused, nothing deleted.
    check(refused(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Bob", "avatarId": a1},
                       token=tB), "INVALID"), "B cannot take A's avatar as his own")
    check(refused(call(srv, "mutation", "media:discard", {"storageId": a1}, token=tB), "FORBIDDEN"),
          "B cannot discard A's avatar")
    served(avatar_url1, avatar1, "image/png", "A's avatar is untouched by B's attempts")
    ok(call(srv, "mutation", "media:discard", {"storageId": txt}, token=tA))
    check(txt not in (rows() or {}), "an upload never attached can be discarded")
    check(refused(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia", "avatarId": txt},
                       token=tA), "NOT_FOUND"), "a discarded file cannot be attached")

    # Replacing the avatar deletes the old bytes; the old URL is then 404.
    avatar2 = files.png(48, 48, seed=2)
    a2 = put_file(srv, tA, avatar2, "image/png")
    ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia", "avatarId": a2}, token=tA))
    mine = ok(call(srv, "query", "profiles:getMine", {}, token=tA))
    avatar_url2 = mine and mine.get("avatarUrl")
    check(mine and mine.get("avatarId") == a2 and avatar_url2 != avatar_url1, f"the new avatar: {mine}")
    served(avatar_url2, avatar2, "image/png", "the new avatar URL serves the new PNG")
    gone(avatar_url1, "the replaced avatar's URL")
    check(a1 not in (rows() or {}) and a2 in (rows() or {}), "the old avatar's _storage row is gone")
    ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia", "avatarId": a2}, token=tA))
    served(avatar_url2, avatar2, "image/png", "upserting the same avatar again keeps it")

    # -- post images: in order, public, deleted with the post --
    imgs = [files.png(16, 16, seed=10 + i) for i in range(2)]
    m = [put_file(srv, tA, data, "image/png") for data in imgs]
    check(refused(call(srv, "mutation", "posts:create", {"text": "reused", "mediaIds": [a2]}, token=tA),
                  "INVALID"), "an avatar cannot also be a post image")
    pid = ok(call(srv, "mutation", "posts:create", {"text": "two pictures", "mediaIds": m}, token=tA))
    page = ok(call(srv, "query", "posts:feed", {"paginationOpts": {"numItems": 1, "cursor": None}}))
    post = page and page["page"][0]
    check(post and post["_id"] == pid and post["mediaIds"] == m and len(post.get("mediaUrls", [])) == 2,
          f"the feed shows the post with its media URLs: {post}")
    if post and len(post.get("mediaUrls", [])) == 2:
        for i in range(2):
            served(post["mediaUrls"][i], imgs[i], "image/png", f"post image {i}, in mediaIds order")
    by_author = ok(call(srv, "query", "posts:listByAuthor", {"authorId": "user_A"}, token=tC))
    check(by_author and by_author[0].get("mediaUrls") == (post or {}).get("mediaUrls"),
          "listByAuthor hands the same URLs to anyone")
    check(refused(call(srv, "mutation", "posts:create", {"text": "again", "mediaIds": [m[0]]}, token=tB),
                  "INVALID"), "B cannot reuse A's post image")
    ok(call(srv, "mutation", "posts:remove", {"postId": pid}, token=tA))
    for i in range(2):
        if post and len(post.get("mediaUrls", [])) == 2:
            gone(post["mediaUrls"][i], f"post image {i} after the post was deleted")
    check(not (set(m) & set(rows() or {})), "the post's files are gone with it")

    # -- message attachments: 1 MiB, members only, ranges, forged URLs --
    blob = os.urandom(1 << 20)
    att = put_file(srv, tA, blob, "application/octet-stream")
    mid = ok(call(srv, "mutation", "messages:send", {"conversationId": cid, "text": "the file", "mediaId": att},
                  token=tA))
    check(mid is not None, "A sends a 1 MiB attachment to B")
    msgs = ok(call(srv, "query", "messages:list", {"conversationId": cid, "limit": 1}, token=tB))
    att_url = msgs and msgs[-1].get("mediaUrl")
    check(msgs and msgs[-1]["_id"] == mid and msgs[-1]["mediaId"] == att and files.split(att_url),
          f"B, a member, gets the attachment's URL: {msgs}")
    served(att_url, blob, "application/octet-stream", "the 1 MiB attachment, byte for byte")
    r = files.get(att_url, "bytes=1000-1999")
    check(r.status == 206 and r.body == blob[1000:2000]
          and r.header("Content-Range") == f"bytes 1000-1999/{len(blob)}"
          and r.header("Content-Length") == "1000", f"a range request: {r}")
    r = files.get(att_url, f"bytes={len(blob) - 10}-{len(blob) + 500}")
    check(r.status == 206 and r.body == blob[-10:]
          and r.header("Content-Range") == f"bytes {len(blob) - 10}-{len(blob) - 1}/{len(blob)}",
          f"a range past the end is cut at the end: {r}")
    page = ok(call(srv, "query", "messages:listPage",
                   {"conversationId": cid, "paginationOpts": {"numItems": 1, "cursor": None}}, token=tA))
    check(page and page["page"][0].get("mediaUrl") == att_url, "listPage hands the same URL to members")
    # C is no member: no URL, and none to be made from what C has.
    check(refused(call(srv, "query", "messages:list", {"conversationId": cid}, token=tC), "FORBIDDEN"),
          "C gets no attachment URL")
    prefix, _, token = files.split(att_url)
    gone(files.with_token(att_url, files.flip(token)), "the attachment with a forged token")
    gone(files.with_id(avatar_url2, att), "the attachment's id with the avatar's token")
    gone(files.with_id(att_url, a2), "the avatar's id with the attachment's token")
    gone(f"{prefix}{att}/", "the attachment without a token")
    gone(f"{prefix}{att}", "the attachment's id alone")
    gone(files.with_token(att_url, "A" * len(token)), "the attachment with a made-up token")
    served(avatar_url2, avatar2, "image/png", "the avatar is still served after the forgeries")
    r, _ = files.upload(f"http://127.0.0.1:{srv.port}/api/storage/upload/{files.flip(token)}", b"x", "text/plain")
    check(r.status in (400, 403, 404), f"an upload to a made-up URL is refused: {r}")
    # Deleting the message deletes the attachment; only the sender may.
    check(refused(call(srv, "mutation", "messages:remove", {"messageId": mid}, token=tB), "FORBIDDEN"),
          "B cannot delete A's message")
    check(refused(call(srv, "mutation", "messages:remove", {"messageId": mid}, token=tC), "FORBIDDEN"),
          "C cannot delete a message of a conversation he is not in")
    served(att_url, blob, "application/octet-stream", "refused deletes kept the attachment")
    ok(call(srv, "mutation", "messages:remove", {"messageId": mid}, token=tA))
    gone(att_url, "the deleted message's attachment")
    check(att not in (rows() or {}), "the attachment's row is gone")

    # -- product images: the admin key's --
    check(refused(call(srv, "mutation", "products:create", {"name": "Poster", "imageId": a2}, token=srv.key),
                  "INVALID"), "a user's avatar cannot become a product image")
    p1 = files.png(20, 10, seed=5)
    i1 = put_file(srv, srv.key, p1, "image/png")
    prod = ok(call(srv, "mutation", "products:create", {"name": "Poster", "imageId": i1}, token=srv.key))
    listed = {p["_id"]: p for p in ok(call(srv, "query", "products:list", {})) or []}
    img_url1 = listed.get(prod, {}).get("imageUrl")
    check(img_url1 and files.split(img_url1), f"products:list hands out the image URL: {listed.get(prod)}")
    served(img_url1, p1, "image/png", "the product image")
    p2 = files.png(10, 20, seed=6)
    i2 = put_file(srv, srv.key, p2, "image/png")
    check(refused(call(srv, "mutation", "products:setImage", {"productId": prod, "imageId": i2}, token=tA),
                  "FORBIDDEN"), "a user cannot change a product's image")
    ok(call(srv, "mutation", "products:setImage", {"productId": prod, "imageId": i2}, token=srv.key))
    listed = {p["_id"]: p for p in ok(call(srv, "query", "products:list", {})) or []}
    served(listed.get(prod, {}).get("imageUrl"), p2, "image/png", "the replaced product image")
    gone(img_url1, "the product's old image")
    ok(call(srv, "mutation", "products:setImage", {"productId": prod}, token=srv.key))
    listed = {p["_id"]: p for p in ok(call(srv, "query", "products:list", {})) or []}
    check(prod in listed and "imageId" not in listed[prod] and "imageUrl" not in listed[prod],
          f"the image removed: {listed.get(prod)}")
    check(i2 not in (rows() or {}), "the removed product image's row is gone")

    # -- clearing the avatar deletes it --
    ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia", "clearAvatar": True}, token=tA))
    mine = ok(call(srv, "query", "profiles:getMine", {}, token=tA))
    check(mine and "avatarId" not in mine and "avatarUrl" not in mine, f"avatar cleared: {mine}")
    gone(avatar_url2, "the cleared avatar")
    check(rows() == {}, f"every file deleted is gone from _storage: {rows()}")
    check(raw_count(srv, "uploads") == 0, "no uploads row outlives its file")


async def test_files_live(srv, tA, tB):
    """A profile watched over WebSocket follows its avatar's replacement."""
    a = await connect(srv, tA)
    b = await connect(srv, None)
    try:
        first = files.png(8, 8, seed=21)
        s1 = put_file(srv, tA, first, "image/png")
        ok(call(srv, "mutation", "profiles:upsertMine", {"displayName": "Alicia", "avatarId": s1}, token=tA))
        r = await sub(a, "me", "profiles:getMine", {})
        url1 = r.get("value", {}).get("avatarUrl") if r["type"] == "result" else None
        check(url1 and files.split(url1), f"A watches her profile with its avatar: {r}")
        r = await sub(b, "alice", "profiles:getByUserId", {"userId": "user_A"})
        check(r["type"] == "result" and r["value"].get("avatarUrl") == url1, f"anyone watches it too: {r}")
        second = files.png(8, 8, seed=22)
        m = await a.request({"type": "mutate", "path": "media:generateUploadUrl", "args": {}})
        check(m["type"] == "ack", f"an upload URL over WebSocket: {m}")
        reply, s2 = files.upload(m.get("value"), second, "image/png")
        check(reply.status == 200 and s2, f"upload: {reply}")
        m = await a.request({"type": "mutate", "path": "profiles:upsertMine",
                             "args": {"displayName": "Alicia", "avatarId": s2}})
        check(m["type"] == "ack", f"replace over WebSocket: {m}")
        url2 = (a.results.get("me") or {}).get("avatarUrl")
        check(url2 and url2 != url1 and (a.results["me"] or {}).get("avatarId") == s2,
              "the new avatar URL is in A's subscription when the ack arrives")
        got = await wait_until(b, lambda: (b.results.get("alice") or {}).get("avatarUrl") == url2)
        check(got, "the other watcher sees the new avatar URL")
        served(url2, second, "image/png", "the URL from the subscription serves the new avatar")
        gone(url1, "the replaced avatar, after a live replace")
    finally:
        for cl in (a, b):
            await cl.ws.close()


def main():
    work = tempfile.mkdtemp(prefix="herald-social-")
    srv = None
    try:
        test_shipped_config(work)
        iss = Issuer(ISSUER, "social", "EdDSA")  # Better Auth's default algorithm
        app = app_with_issuers(APP, [iss], workdir=os.path.join(work, "app"))
        srv = Server(HERALD, app, os.path.join(work, "data"))
        tA = iss.token("user_A", email="a@social.example", name="A")
        tB = iss.token("user_B")
        tC = iss.token("user_C")
        forged = Issuer(ISSUER, "social", "EdDSA").token("user_A")  # same kid, another Ed25519 key
        st, r = call(srv, "query", "profiles:getMine", {}, token=forged)
        check(st == 401 and r.get("code") == "Unauthorized", f"a forged EdDSA token: {st} {r}")
        test_anonymous_and_validation(srv, tA)
        test_profiles(srv, tA, tB, tC, iss.token("user_D"))
        test_posts(srv, tA, tB)
        test_products(srv, tA)
        cid, cid2 = test_conversations(srv, tA, tB, tC)
        asyncio.run(test_live(srv, tA, tB, tC, cid, cid2))
        test_files(srv, tA, tB, tC, cid, cid2)
        asyncio.run(test_files_live(srv, tA, tB))
    except Exception as e:  # a crash of the test itself is a failure too
        import traceback
        traceback.print_exc()
        check(False, f"exception: {e!r}")
    finally:
        if srv:
            rc = srv.stop()
            check(rc == 0, f"server exit code on SIGTERM: {rc}")
            check_sanitizers(srv, "server")
            if failures:
                print(srv.output()[-4000:])
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(finish("test_social"))


if __name__ == "__main__":
    main()
