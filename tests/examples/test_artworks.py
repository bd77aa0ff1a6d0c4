"""The generative artworks app of seed 001 (examples/artworks), end to end
on a live server: Clerk sign-in (JWTs signed by a test issuer), artworks
with their visibilities, the public gallery watched live, featured
artworks, collections, share links with view limits and expiry, settings,
embeddings, the generation log, refusals and argument validation; then
uploaded files, and generations:generate, the action that calls the
user's model provider (a fake OpenAI-compatible API on loopback, herald
started with --allow-fetch 127.0.0.1) with the user's stored key: an
artwork and a successful generations row, or a failed row with the
provider's error and no artwork.

Run as: /usr/bin/python3 test_artworks.py <herald> <source root>
"""
import asyncio
import functools
import http.server as httpserver
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
from herald_client import Client  # noqa: E402
from herald_testlib import Issuer, Server, app_with_issuers, call, check, failures, finish, http  # noqa: E402

HERALD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "herald"
ROOT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.path.join(HERE, "..", "..")
APP = os.path.join(ROOT, "examples", "artworks")
ISS = "https://artworks-demo.clerk.accounts.dev"
AUD = "artworks"


def metadata(**kw):
    m = {"width": 64, "height": 64, "fps": 12, "generator": "p5", "model": "gpt-4o"}
    m.update(kw)
    return m


def err_code(r):
    """The app's own error code (FunctionError data), or the Herald code."""
    if r.get("type") != "error":
        return None
    if r.get("code") == "FunctionError" and isinstance(r.get("data"), dict):
        return r["data"].get("code")
    return r.get("code")


class User:
    """One browser tab: a connection, signed in (or not), calling functions."""

    def __init__(self, ws, name):
        self.c = Client(ws)
        self.name = name
        self.seen = {}  # subscription id -> every value it took

        def on_change(sid, value, version):
            self.seen.setdefault(sid, []).append(value)
        self.c.on_change = on_change

    async def auth(self, token):
        return await self.c.request({"type": "auth", "token": token})

    async def mutate(self, path, args=None):
        return await self.c.request({"type": "mutate", "path": path, "args": args or {}})

    async def query(self, path, args=None):
        return await self.c.request({"type": "query", "path": path, "args": args or {}})

    async def ok(self, kind, path, args=None):
        r = await (self.mutate if kind == "mutate" else self.query)(path, args)
        good = r["type"] in ("ack", "result")
        check(good, f"{self.name}: {path} {json.dumps(args)[:200]}: {r}")
        return r.get("value") if good else None

    async def sub(self, sid, path, args=None):
        self.c.pending_subs.add(sid)
        r = await self.c.request({"type": "sub", "id": sid, "path": path, "args": args or {}})
        check(r["type"] == "result", f"{self.name}: subscribe {path}: {r}")
        return r

    async def wait_for(self, sid, pred, what, timeout=20):
        """Pumps messages until the subscription's value satisfies pred."""
        deadline = time.time() + timeout
        while not pred(self.c.results.get(sid)):
            left = deadline - time.time()
            if left <= 0:
                check(False, f"{self.name}: {what} (now {json.dumps(self.c.results.get(sid))[:400]})")
                return False
            try:
                await self.c.pump(left)
            except asyncio.TimeoutError:
                pass
        return True


def ids(docs):
    return [d["_id"] for d in docs or []]


def page_ids(value):
    return ids((value or {}).get("page"))


def refused(r, code, what):
    check(err_code(r) == code, f"{what}: expected {code}, got {r}")


def validation(r, arg, what):
    check(r.get("type") == "error" and r.get("code") == "ValidationError" and
          (f"args.{arg}" in r.get("message", "") or f"args: missing required field `{arg}`" in r.get("message", "")),
          f"{what}: expected a ValidationError naming args.{arg}, got {r}")


async def scenario(server, clerk, rogue):
    async with server.ws() as wa, server.ws() as wb, server.ws() as wn:
        a, b, anon = User(wa, "alice"), User(wb, "bob"), User(wn, "anonymous")
        ta = clerk.token("user_alice", email="alice@example.com", name="Alice",
                         picture="https://img.example/alice.png")
        tb = clerk.token("user_bob", email="bob@example.com", name="Bob")

        # ---- sign-in ----------------------------------------------------
        r = await anon.auth(rogue.token("user_alice"))
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"token signed by another key: {r}")
        r = await anon.auth(clerk.token("user_alice", ttl=-3600))
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"expired token: {r}")
        r = await anon.query("users:me")
        check(r["type"] == "result" and r["value"] is None, f"refused tokens leave the tab signed out: {r}")
        check((await a.auth(ta))["type"] == "ack", "alice signs in")
        check((await b.auth(tb))["type"] == "ack", "bob signs in")

        refused(await anon.mutate("users:upsert"), "UNAUTHENTICATED", "anonymous upsert")
        ua = await a.ok("mutate", "users:upsert")
        ub = await b.ok("mutate", "users:upsert", {"name": "Robert", "email": "evil@example.com"})
        me = await a.ok("query", "users:me")
        check(me and me["_id"] == ua and me["clerkId"] == "user_alice" and me["email"] == "alice@example.com"
              and me["name"] == "Alice" and me["imageUrl"] == "https://img.example/alice.png",
              f"alice's user comes from her Clerk identity: {me}")
        check(me and me["createdAt"].endswith("Z") and len(me["createdAt"]) == 24,
              f"dates are ISO strings: {me and me['createdAt']}")
        meb = await b.ok("query", "users:me")
        check(meb and meb["email"] == "bob@example.com" and meb["name"] == "Bob",
              f"the token's claims win over the client's arguments: {meb}")
        check(await a.ok("mutate", "users:upsert") == ua, "upsert again: the same user")

        # ---- the public gallery, watched live by bob --------------------
        await b.sub("gallery", "artworks:listPublic", {"paginationOpts": {"numItems": 10, "cursor": None}})
        check(page_ids(b.c.results.get("gallery")) == [], "the gallery starts empty")
        await anon.sub("featured", "artworks:listFeatured")

        p1 = await a.ok("mutate", "artworks:create", {
            "prompt": "a spinning cube of light", "frames": ["f0", "f1", "f2"],
            "metadata": metadata(style="neon"), "visibility": "public"})
        await b.wait_for("gallery", lambda v: page_ids(v) == [p1], "bob's gallery gets alice's public artwork")
        updates_before = len(b.seen.get("gallery", []))
        x1 = await a.ok("mutate", "artworks:create", {
            "prompt": "a private sketch", "frames": ["s0"], "metadata": metadata(), "visibility": "private"})
        u1 = await a.ok("mutate", "artworks:create", {
            "prompt": "an unlisted wave", "frames": ["w0", "w1"], "metadata": metadata(), "visibility": "unlisted"})
        d1 = await a.ok("mutate", "artworks:create", {
            "prompt": "default visibility", "frames": [], "metadata": metadata()})
        p2 = await a.ok("mutate", "artworks:create", {
            "prompt": "fractal garden", "frames": ["g0"], "metadata": metadata(), "visibility": "public"})
        await b.wait_for("gallery", lambda v: page_ids(v) == [p2, p1], "the gallery is newest first")
        seen_ids = {i for v in b.seen.get("gallery", []) for i in page_ids(v)}
        check(not seen_ids & {x1, u1, d1}, "private and unlisted artworks never reach the gallery")
        check(len(b.seen["gallery"]) == updates_before + 1,
              f"private and unlisted creations send the gallery no update "
              f"({len(b.seen['gallery']) - updates_before} updates for one public artwork)")

        art = await a.ok("query", "artworks:get", {"id": d1})
        check(art and art["visibility"] == "private", f"an artwork is private unless asked otherwise: {art}")
        art = await a.ok("query", "artworks:get", {"id": p1})
        check(art and art["userId"] == "user_alice" and art["frames"] == ["f0", "f1", "f2"] and
              art["metadata"]["style"] == "neon" and art["likes"] == 0 and art["views"] == 0 and
              art["metadata"]["createdAt"] == art["createdAt"] and art["createdAt"] <= art["updatedAt"],
              f"the stored artwork: {art}")

        # Pages: one at a time, following the cursor.
        page = await anon.ok("query", "artworks:listPublic", {"paginationOpts": {"numItems": 1, "cursor": None}})
        check(page and page_ids(page) == [p2] and not page["isDone"], f"first page: {page}")
        if page:
            page = await anon.ok("query", "artworks:listPublic",
                                 {"paginationOpts": {"numItems": 1, "cursor": page["continueCursor"]}})
            check(page and page_ids(page) == [p1], f"second page: {page}")
        r = await anon.query("artworks:listPublic", {"paginationOpts": {"numItems": 0, "cursor": None}})
        refused(r, "INVALID_ARGUMENT", "a page of 0 items")

        # ---- who sees what -----------------------------------------------
        for who in (b, anon):
            got = await who.ok("query", "artworks:get", {"id": p1})
            check(got and got["_id"] == p1, f"{who.name} sees a public artwork")
            got = await who.ok("query", "artworks:get", {"id": u1})
            check(got and got["_id"] == u1, f"{who.name} sees an unlisted artwork by its id")
            refused(await who.query("artworks:get", {"id": x1}), "FORBIDDEN", f"{who.name} gets alice's private artwork")
        got = await a.ok("query", "artworks:get", {"id": x1})
        check(got and got["_id"] == x1, "alice sees her private artwork")

        mine = await a.ok("query", "artworks:listMine")
        check(ids(mine) == [p2, d1, u1, x1, p1], f"alice's artworks, newest first: {ids(mine)}")
        check(ids(await b.ok("query", "artworks:listMine")) == [], "bob has none")
        refused(await anon.query("artworks:listMine"), "UNAUTHENTICATED", "anonymous listMine")
        check(ids(await anon.ok("query", "artworks:listByUser", {"userId": "user_alice"})) == [p2, p1],
              "alice's profile shows her public artworks only")

        # ---- owner-only changes --------------------------------------------
        await b.sub("one", "artworks:get", {"id": p1})
        refused(await b.mutate("artworks:update", {"id": p1, "prompt": "mine now"}), "FORBIDDEN", "bob updates alice's artwork")
        refused(await b.mutate("artworks:remove", {"id": p1}), "FORBIDDEN", "bob removes alice's artwork")
        refused(await anon.mutate("artworks:update", {"id": p1, "prompt": "x"}), "UNAUTHENTICATED", "anonymous update")
        refused(await anon.mutate("artworks:create", {"prompt": "x", "frames": [], "metadata": metadata()}),
                "UNAUTHENTICATED", "anonymous create")
        got = await anon.ok("query", "artworks:get", {"id": p1})
        check(got and got["prompt"] == "a spinning cube of light", f"refused changes wrote nothing: {got}")
        upd = await a.ok("mutate", "artworks:update", {"id": p1, "prompt": "a spinning cube of dark light",
                                                         "metadata": metadata(fps=24)})
        check(upd and upd["metadata"]["fps"] == 24 and upd["metadata"]["createdAt"] == upd["createdAt"],
              f"the update keeps metadata.createdAt: {upd}")
        await b.wait_for("one", lambda v: v and v.get("prompt") == "a spinning cube of dark light",
                         "bob's artwork page follows alice's edit")
        await b.wait_for("gallery", lambda v: (v or {}).get("page") and v["page"][-1]["prompt"] ==
                         "a spinning cube of dark light", "the gallery follows the edit")
        await a.ok("mutate", "artworks:update", {"id": p2, "visibility": "private"})
        await b.wait_for("gallery", lambda v: page_ids(v) == [p1], "made private, it leaves the gallery")
        await a.ok("mutate", "artworks:update", {"id": p2, "visibility": "public"})
        await b.wait_for("gallery", lambda v: page_ids(v) == [p2, p1], "public again, it comes back")

        # ---- featured ------------------------------------------------------
        check(anon.c.results.get("featured") == [], "nothing featured yet")
        r = await b.mutate("artworks:setFeatured", {"id": p1, "featured": True})
        check(r["type"] == "error" and r["code"] == "NotFound", f"featuring is for curators only: {r}")
        st, r = call(server, "mutation", "artworks:setFeatured", {"id": p1, "featured": True}, server.key)
        check(st == 200 and r["status"] == "success", f"a curator features p1: {st} {r}")
        st, r = call(server, "mutation", "artworks:setFeatured", {"id": x1, "featured": True}, server.key)
        check(st == 200, f"a curator features a private one: {st} {r}")
        await anon.wait_for("featured", lambda v: ids(v) == [p1], "the featured list gets p1, not the private one")
        featured = await b.ok("query", "artworks:listFeatured")
        check(ids(featured) == [p1], f"listFeatured: {ids(featured)}")

        # ---- likes and views -------------------------------------------------
        check(await b.ok("mutate", "artworks:like", {"id": p1}) == 1, "bob likes p1")
        check(await a.ok("mutate", "artworks:like", {"id": p1}) == 2, "alice likes p1")
        refused(await anon.mutate("artworks:like", {"id": p1}), "UNAUTHENTICATED", "anonymous like")
        refused(await b.mutate("artworks:like", {"id": x1}), "FORBIDDEN", "bob likes a private artwork")
        check(await anon.ok("mutate", "artworks:view", {"id": p1}) == 1, "an anonymous view counts")
        refused(await anon.mutate("artworks:view", {"id": x1}), "FORBIDDEN", "anonymous view of a private artwork")
        await b.wait_for("one", lambda v: v and v.get("likes") == 2 and v.get("views") == 1,
                         "the artwork page shows the counters live")

        # ---- collections -----------------------------------------------------
        ca = await a.ok("mutate", "collections:create", {"name": "Best", "description": "favourites",
                                                          "visibility": "public", "artworkIds": [p1]})
        cp = await a.ok("mutate", "collections:create", {"name": "Drafts", "artworkIds": [x1]})
        check(await a.ok("mutate", "collections:addArtwork", {"collectionId": ca, "artworkId": u1}) == 2, "add u1")
        check(await a.ok("mutate", "collections:addArtwork", {"collectionId": ca, "artworkId": x1}) == 3,
              "alice may collect her own private artwork")
        check(await a.ok("mutate", "collections:addArtwork", {"collectionId": ca, "artworkId": p1}) == 3,
              "adding again changes nothing")
        refused(await b.mutate("collections:addArtwork", {"collectionId": ca, "artworkId": p2}),
                "FORBIDDEN", "bob adds to alice's collection")
        refused(await anon.mutate("collections:create", {"name": "x"}), "UNAUTHENTICATED", "anonymous collection")
        cb = await b.ok("mutate", "collections:create", {"name": "Found", "visibility": "public"})
        check(await b.ok("mutate", "collections:addArtwork", {"collectionId": cb, "artworkId": p1}) == 1,
              "bob collects alice's public artwork")
        refused(await b.mutate("collections:addArtwork", {"collectionId": cb, "artworkId": u1}),
                "FORBIDDEN", "bob collects alice's unlisted artwork")
        refused(await b.mutate("collections:addArtwork", {"collectionId": cb, "artworkId": x1}),
                "FORBIDDEN", "bob collects alice's private artwork")
        refused(await b.mutate("collections:create", {"name": "sneaky", "artworkIds": [x1]}),
                "FORBIDDEN", "bob creates a collection with alice's private artwork")
        mine = await a.ok("query", "collections:listMine")
        check(ids(mine) == [cp, ca] and mine[1]["userId"] == ua and mine[1]["artworkIds"] == [p1, u1, x1],
              f"alice's collections: {mine}")
        check(ids(await anon.ok("query", "collections:listPublic")) == [cb, ca], "public collections")
        got = await b.ok("query", "collections:get", {"id": ca})
        check(got and ids(got.get("artworks")) == [p1, u1], f"bob sees the collection without the private artwork: {got}")
        got = await a.ok("query", "collections:get", {"id": ca})
        check(got and ids(got.get("artworks")) == [p1, u1, x1], f"alice sees all of it: {got and ids(got.get('artworks'))}")
        refused(await b.query("collections:get", {"id": cp}), "FORBIDDEN", "bob reads alice's private collection")
        refused(await anon.query("collections:listMine"), "UNAUTHENTICATED", "anonymous collections:listMine")

        # ---- share links -----------------------------------------------------
        s2 = await a.ok("mutate", "shares:create", {"artworkId": x1, "maxViews": 2})
        code = s2 and s2["shareCode"]
        check(isinstance(code, str) and len(code) >= 12, f"a share code: {s2}")
        for i in (1, 2):
            got = await b.ok("mutate", "shares:open", {"shareCode": code})
            check(got and got["_id"] == x1 and got["prompt"] == "a private sketch",
                  f"open {i}: the shared private artwork")
        refused(await b.mutate("shares:open", {"shareCode": code}), "SHARE_EXHAUSTED", "the third open")
        refused(await anon.mutate("shares:open", {"shareCode": code}), "SHARE_EXHAUSTED", "the fourth open")
        links = await a.ok("query", "shares:listForArtwork", {"artworkId": x1})
        check(links and len(links) == 1 and links[0]["viewCount"] == 2 and links[0]["maxViews"] == 2,
              f"the link counted two views: {links}")
        got = await a.ok("query", "artworks:get", {"id": x1})
        check(got and got["views"] == 2, f"opens count as views: {got and got.get('views')}")
        refused(await b.query("artworks:get", {"id": x1}), "FORBIDDEN", "the share did not make it public")

        past = await a.ok("mutate", "shares:create", {"artworkId": x1, "expiresAt": "2020-01-01T00:00:00Z"})
        refused(await b.mutate("shares:open", {"shareCode": past and past["shareCode"]}), "SHARE_EXPIRED",
                "an expired link")
        just = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 5))
        past2 = await a.ok("mutate", "shares:create", {"artworkId": x1, "expiresAt": just})
        refused(await anon.mutate("shares:open", {"shareCode": past2 and past2["shareCode"]}), "SHARE_EXPIRED",
                "a link that expired seconds ago")
        soon = time.strftime("%Y-%m-%dT%H:%M:%S+02:00", time.gmtime(time.time() + 7200 + 3600))
        future = await a.ok("mutate", "shares:create", {"artworkId": x1, "expiresAt": soon})
        got = await anon.ok("mutate", "shares:open", {"shareCode": future and future["shareCode"]})
        check(got and got["_id"] == x1, "a link that has not expired opens, signed out too")
        links = await a.ok("query", "shares:listForArtwork", {"artworkId": x1}) or []
        by_code = {s["shareCode"]: s for s in links}
        check(by_code.get(past and past["shareCode"], {}).get("viewCount") == 0,
              "a refused open counts nothing")
        fut = by_code.get(future and future["shareCode"], {})
        check(fut.get("expiresAt", "").endswith("Z") and fut["expiresAt"] > just,
              f"expiresAt is stored in UTC: {fut.get('expiresAt')}")
        refused(await a.mutate("shares:create", {"artworkId": x1, "expiresAt": "next tuesday"}),
                "INVALID_ARGUMENT", "an expiresAt that is no date")
        refused(await a.mutate("shares:create", {"artworkId": x1, "maxViews": 0}), "INVALID_ARGUMENT", "maxViews 0")
        refused(await b.mutate("shares:create", {"artworkId": x1}), "FORBIDDEN", "bob shares alice's private artwork")
        refused(await b.mutate("shares:create", {"artworkId": p1}), "FORBIDDEN", "bob shares alice's public artwork")
        refused(await anon.mutate("shares:create", {"artworkId": p1}), "UNAUTHENTICATED", "anonymous share")
        refused(await b.query("shares:listForArtwork", {"artworkId": x1}), "FORBIDDEN", "bob lists alice's links")
        refused(await b.mutate("shares:open", {"shareCode": "no-such-code"}), "NOT_FOUND", "an unknown code")
        if links:
            refused(await b.mutate("shares:revoke", {"id": links[0]["_id"]}), "FORBIDDEN", "bob revokes a link")

        # ---- settings ----------------------------------------------------------
        s = await b.ok("query", "settings:get")
        check(s and s["theme"] == "system" and s["defaultVisibility"] == "private" and
              s["emailNotifications"] is True, f"default settings: {s}")
        await b.sub("settings", "settings:get")
        await b.ok("mutate", "settings:update", {"theme": "dark", "defaultVisibility": "public"})
        await b.wait_for("settings", lambda v: v and v.get("theme") == "dark" and v.get("defaultVisibility") == "public"
                         and v.get("userId") == ub, "bob's settings page follows the change")
        await b.ok("mutate", "settings:update", {"emailNotifications": False, "preferredModel": "flux"})
        s = await b.ok("query", "settings:get")
        check(s and s["theme"] == "dark" and s["emailNotifications"] is False and s["preferredModel"] == "flux",
              f"a second update keeps the first: {s}")
        check(await b.ok("mutate", "settings:setApiKey", {"name": "main", "key": "sk-secret-1234", "provider": "openai"}) == 1,
              "bob stores an API key")
        s = await b.ok("query", "settings:get")
        check(s and s["apiKeys"] and s["apiKeys"][0]["key"] == "...1234" and "secret" not in json.dumps(s),
              f"API keys are masked when read back: {s and s.get('apiKeys')}")
        st, r = call(server, "query", "settings:apiKeysFor", {"clerkId": "user_bob"}, server.key)
        check(st == 200 and r["value"][0]["key"] == "sk-secret-1234", f"the generator reads the key whole: {r}")
        r = await b.query("settings:apiKeysFor", {"clerkId": "user_bob"})
        check(r.get("code") == "NotFound", f"but users cannot: {r}")
        sa = await a.ok("query", "settings:get")
        check(sa and sa["theme"] == "system", f"alice's settings are her own: {sa}")
        bp = await b.ok("mutate", "artworks:create", {"prompt": "bob's first", "frames": ["b"], "metadata": metadata()})
        await b.wait_for("gallery", lambda v: page_ids(v) == [bp, p2, p1],
                         "bob's default visibility (public) puts his artwork in the gallery")
        refused(await anon.mutate("settings:update", {"theme": "dark"}), "UNAUTHENTICATED", "anonymous settings")
        refused(await anon.query("settings:get"), "UNAUTHENTICATED", "anonymous settings:get")

        # ---- validation ----------------------------------------------------------
        validation(await a.mutate("artworks:create", {"prompt": "x", "frames": "f0", "metadata": metadata()}),
                   "frames", "frames as a string")
        validation(await a.mutate("artworks:create", {"frames": [], "metadata": metadata()}), "prompt", "no prompt")
        validation(await a.mutate("artworks:create", {"prompt": "x", "frames": [], "metadata": metadata(),
                                                      "visibility": "secret"}), "visibility", "unknown visibility")
        validation(await a.mutate("artworks:create", {"prompt": "x", "frames": [], "metadata": {"width": 1}}),
                   "metadata", "incomplete metadata")
        validation(await a.query("artworks:get", {"id": ua}), "id", "a users id as an artwork id")
        validation(await a.mutate("shares:create", {"artworkId": x1, "maxViews": "2"}), "maxViews", "maxViews as a string")
        validation(await b.mutate("settings:update", {"theme": "neon"}), "theme", "unknown theme")
        validation(await a.mutate("collections:addArtwork", {"collectionId": p1, "artworkId": p1}),
                   "collectionId", "an artwork id as a collection id")
        validation(await anon.query("artworks:listPublic", {"paginationOpts": {"numItems": 5}}),
                   "paginationOpts", "paginationOpts without cursor")

        # ---- embeddings and the generation log ------------------------------------
        st, r = call(server, "mutation", "artworks:setEmbedding",
                     {"artworkId": p1, "embedding": [0.001 * i for i in range(1536)], "model": "text-embedding-3-small"},
                     server.key)
        check(st == 200 and r["status"] == "success", f"a 1536-dimension embedding: {st} {str(r)[:300]}")
        st, r = call(server, "mutation", "artworks:setEmbedding",
                     {"artworkId": p1, "embedding": [0.5, 0.5], "model": "m"}, server.key)
        check(r.get("errorData", {}).get("code") == "INVALID_ARGUMENT", f"a 2-dimension embedding: {r}")
        st, r = call(server, "query", "artworks:listRecent", {"limit": 2}, server.key)
        check(st == 200 and ids(r.get("value")) == [bp, p2], f"the console's recent list (by_created): {r}")
        g = await a.ok("mutate", "generations:log", {"prompt": "cube", "success": True, "duration": 1.5,
                                                    "model": "gpt-4o", "cost": 0.01})
        await anon.ok("mutate", "generations:log", {"prompt": "?", "success": False, "error": "rate limited",
                                                   "duration": 0.2, "model": "gpt-4o"})
        logs = await a.ok("query", "generations:listMine")
        check(ids(logs) == [g] and logs[0]["userId"] == ua, f"alice's generation log: {logs}")
        st, r = call(server, "query", "generations:listRecent", {}, server.key)
        check(st == 200 and len(r["value"]) == 2 and "userId" not in r["value"][0],
              f"anonymous generations are logged without a user: {r}")

        # ---- a worker over HTTP with alice's token -------------------------------
        st, r = call(server, "query", "artworks:listMine", {"limit": 1}, ta)
        check(st == 200 and ids(r.get("value")) == [p2], f"HTTP with a Clerk token: {st} {r}")
        st, r = call(server, "mutation", "artworks:remove", {"id": p1}, tb)
        check(r.get("errorData", {}).get("code") == "FORBIDDEN", f"HTTP remove by bob: {st} {r}")

        # ---- removing an artwork -------------------------------------------------
        share_p1 = await a.ok("mutate", "shares:create", {"artworkId": p1})
        await a.ok("mutate", "artworks:remove", {"id": p1})
        await b.wait_for("gallery", lambda v: page_ids(v) == [bp, p2], "a removed artwork leaves the gallery")
        await b.wait_for("one", lambda v: v is None, "and its page shows nothing")
        await anon.wait_for("featured", lambda v: ids(v) == [], "and the featured list")
        refused(await b.mutate("shares:open", {"shareCode": share_p1 and share_p1["shareCode"]}), "NOT_FOUND",
                "its share links went with it")
        got = await a.ok("query", "collections:get", {"id": ca})
        check(got and got["artworkIds"] == [u1, x1], f"alice's collection lost it: {got and got['artworkIds']}")
        got = await b.ok("query", "collections:get", {"id": cb})
        check(got is not None and got["artworks"] == [], f"bob's collection skips it: {got}")
        st, r = server_query(server, {"table": "artworkEmbeddings"})
        check(st == 200 and r["value"] == [], f"its embedding went with it: {str(r)[:200]}")

        # ---- full-text search (search_prompt) -------------------------------------
        r = await anon.query("artworks:search", {"query": "fractal"})
        check(r["type"] == "result" and ids(r["value"]) == [p2],
              f"search over prompts with the search_prompt index: {r}")
        r = await anon.query("artworks:search", {"query": "sketch"})
        check(r["type"] == "result" and r["value"] == [], f"search does not find private artworks: {r}")
        r = await a.query("artworks:search", {"query": "sketch", "mine": True})
        check(r["type"] == "result" and ids(r["value"]) == [x1], f"alice searches her own artworks: {r}")
        refused(await anon.query("artworks:search", {"query": "x", "mine": True}), "UNAUTHENTICATED",
                "anonymous search of one's own")

        # ---- semantic retrieval: artworks:similar over by_embedding ---------------
        # The expected neighbours are computed here, in plain Python (cosine
        # in double precision), from the embeddings the test stores.
        rnd = random.Random(1536)
        base = [rnd.gauss(0, 1) for _ in range(1536)]
        extra = []
        for i in range(10):
            extra.append(await a.ok("mutate", "artworks:create", {
                "prompt": f"variation {i}", "frames": [], "metadata": metadata(), "visibility": "public"}))
        vecs = {p2: base}
        for i, art in enumerate(extra + [bp, x1, u1]):
            vecs[art] = [x + rnd.gauss(0, 0.3 + 0.15 * i) for x in base]
        model = "text-embedding-3-small"
        for art, vec in vecs.items():
            st, r = call(server, "mutation", "artworks:setEmbedding",
                         {"artworkId": art, "embedding": vec, "model": model}, server.key)
            check(st == 200, f"embedding of {art}: {str(r)[:200]}")
        # Another model's embedding, the nearest of all, is never compared.
        st, r = call(server, "mutation", "artworks:setEmbedding",
                     {"artworkId": d1, "embedding": base, "model": "another-model"}, server.key)
        visibility = {art: "public" for art in extra + [p2, bp]}
        visibility.update({x1: "private", u1: "unlisted"})

        def cos(u, w):
            return sum(x * y for x, y in zip(u, w)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in w))

        def expected_similar(of, viewer_owns, limit):
            ranked = sorted(((cos(vecs[of], vecs[o]), o) for o in vecs if o != of
                             and (visibility[o] == "public" or o in viewer_owns)), reverse=True)
            return ranked[:limit]

        def same_neighbours(got, want, what):
            got = got or []
            check([g["artwork"]["_id"] for g in got] == [o for _, o in want]
                  and all(abs(g["score"] - sc) < 1e-5 for g, (sc, _) in zip(got, want)),
                  f"{what}: got {[(g['artwork']['_id'], round(g['score'], 6)) for g in got]}, "
                  f"want {[(o, round(sc, 6)) for sc, o in want]}")

        alice_owns = {x1, u1} | set(extra) | {p2}
        same_neighbours(await anon.ok("query", "artworks:similar", {"id": p2, "limit": 5}),
                        expected_similar(p2, set(), 5), "anonymous: public neighbours of p2")
        same_neighbours(await a.ok("query", "artworks:similar", {"id": p2, "limit": 13}),
                        expected_similar(p2, alice_owns, 13), "alice: her private and unlisted ones too")
        same_neighbours(await b.ok("query", "artworks:similar", {"id": extra[3]}),
                        expected_similar(extra[3], {bp}, 10), "bob: the default limit of 10, from another artwork")
        refused(await anon.query("artworks:similar", {"id": x1}), "FORBIDDEN", "similar of a private artwork")
        got = await a.ok("query", "artworks:similar", {"id": d1})
        check(got == [], f"an embedding of another model has no neighbours: {got}")
        # Live: a new embedding nearer than all reaches bob's subscription.
        await b.sub("similar", "artworks:similar", {"id": p2, "limit": 3})
        same_neighbours(b.c.results.get("similar"), expected_similar(p2, {bp}, 3), "bob subscribes")
        near = await a.ok("mutate", "artworks:create", {
            "prompt": "almost the same", "frames": [], "metadata": metadata(), "visibility": "public"})
        vecs[near], visibility[near] = [x * 2 + rnd.gauss(0, 0.01) for x in base], "public"
        st, r = call(server, "mutation", "artworks:setEmbedding",
                     {"artworkId": near, "embedding": vecs[near], "model": model}, server.key)
        await b.wait_for("similar", lambda v: bool(v) and v[0]["artwork"]["_id"] == near,
                         "a new, nearer embedding re-runs the subscription")
        same_neighbours(b.c.results.get("similar"), expected_similar(p2, {bp}, 3), "bob's new neighbours")

        for u in (a, b, anon):
            check(not u.c.errors, f"{u.name}: {u.c.errors}")


def server_query(server, query):
    """A raw query with the admin key, as the console makes it."""
    return http(server, "query", {"query": query}, server.key)


# ---- calls over HTTP, as a worker or a server-rendered page makes them ----

def http_ok(srv, kind, path, args, token):
    """A call that must succeed: its value (None, and a failed check, if not)."""
    st, r = call(srv, kind, path, args, token)
    good = check(st == 200 and r.get("status") == "success", f"{path} {json.dumps(args)[:200]}: {st} {r}")
    return r.get("value") if good else None


def http_refusal(srv, kind, path, args, token, code, what):
    """A call that the app must refuse with its error `code`: the reply."""
    st, r = call(srv, kind, path, args, token)
    check(st != 200 and (r.get("errorData") or {}).get("code") == code, f"{what}: expected {code}, got {st} {r}")
    return r


def stop_checked(srv, name):
    """Stops a scenario's own server: a clean stop, no sanitizer report, and
    its output's end when anything failed."""
    check(srv.stop() == 0, f"{name} stops cleanly")
    out = srv.output()
    if "ERROR: AddressSanitizer" in out or "runtime error:" in out or "LeakSanitizer" in out:
        check(False, f"sanitizer report in {name}'s output")
    if failures:
        print(out[-3000:])


# ---- files (seed 001's files table), over HTTP on a server of their own ----

def files_scenario(work, clerk):
    """Uploads real bytes, reads them back (whole and by range), replaces
    and deletes them, and checks who gets a file's URL; then restarts the
    server and reads a kept file again."""
    import hashlib
    import storage_http as fs

    app = app_with_issuers(APP, [clerk], os.path.join(work, "files-app"))
    data = os.path.join(work, "files-data")
    srv = Server(HERALD, app, data)
    ta, tb = clerk.token("user_alice", email="alice@example.com"), clerk.token("user_bob")

    def ok(*a):  # on the server of the moment (it restarts below)
        return http_ok(srv, *a)

    def refusal(*a):
        return http_refusal(srv, *a)

    def upload(token, body, content_type):
        url = ok("mutation", "files:generateUploadUrl", {}, token)
        check(isinstance(url, str) and url.startswith(f"http://localhost:{srv.port}/api/storage/upload/"),
              f"an upload URL on Herald's port: {url}")
        r, sid = fs.upload(url or "", body, content_type)
        check(r.status == 200 and sid, f"upload of {len(body)} bytes: {r}")
        return sid

    def served(url, body, content_type, what):
        r = fs.get(url or "")
        check(r.status == 200 and r.body == body and r.header("Content-Type") == content_type
              and r.header("Content-Length") == str(len(body)) and r.header("ETag"),
              f"{what}: {r.status}, {len(r.body)} of {len(body)} bytes, equal {r.body == body}, {dict(r.headers)}")

    def gone(url, what):
        r = fs.get(url or "")
        check(r.status == 404, f"{what}: expected 404, got {r}")

    try:
        refusal("mutation", "files:generateUploadUrl", {}, None, "UNAUTHENTICATED", "anonymous upload URL")
        pub = ok("mutation", "artworks:create", {"prompt": "public loop", "frames": ["a"], "metadata": metadata(),
                                                  "visibility": "public"}, ta)
        priv = ok("mutation", "artworks:create", {"prompt": "private loop", "frames": ["b"], "metadata": metadata(),
                                                   "visibility": "private"}, ta)

        # A preview image of the private artwork: alice's only.
        preview = fs.png(40, 30, seed=3)
        s1 = upload(ta, preview, "image/png")
        refusal("mutation", "files:save", {"storageId": s1, "filename": "a/b.png"}, ta, "INVALID_ARGUMENT",
                "a filename with a slash")
        refusal("mutation", "files:save", {"storageId": s1, "filename": "p.png", "artworkId": priv}, tb,
                "FORBIDDEN", "bob saves a file to alice's artwork")
        f1 = ok("mutation", "files:save", {"storageId": s1, "filename": "preview.png", "artworkId": priv}, ta)
        got = ok("query", "files:get", {"id": f1}, ta)
        check(got and got["storageId"] == s1 and got["mimeType"] == "image/png" and got["size"] == len(preview)
              and got["filename"] == "preview.png" and got["artworkId"] == priv and got.get("url"),
              f"the files row takes mimeType and size from the stored file: {got}")
        url1 = got and got["url"]
        served(url1, preview, "image/png", "the private preview, for alice")
        refusal("query", "files:get", {"id": f1}, tb, "FORBIDDEN", "bob asks for the private preview")
        refusal("query", "files:get", {"id": f1}, None, "FORBIDDEN", "anonymous asks for the private preview")
        refusal("query", "files:listForArtwork", {"artworkId": priv}, tb, "FORBIDDEN",
                "bob lists the private artwork's files")
        refusal("mutation", "files:save", {"storageId": s1, "filename": "mine.png"}, tb, "INVALID_ARGUMENT",
                "bob saves alice's upload as his")
        refusal("mutation", "files:save", {"storageId": s1, "filename": "again.png"}, ta, "INVALID_ARGUMENT",
                "one files row per stored file")

        # A 1 MiB render of the public artwork: anyone.
        render = os.urandom(1 << 20)
        s2 = upload(ta, render, "video/webm")
        f2 = ok("mutation", "files:save", {"storageId": s2, "filename": "loop.webm", "artworkId": pub}, ta)
        listed = ok("query", "files:listForArtwork", {"artworkId": pub}, tb)
        check(listed and [f["_id"] for f in listed] == [f2] and listed[0].get("url"),
              f"bob lists the public artwork's files: {listed}")
        url2 = listed and listed[0]["url"]
        anon = ok("query", "files:get", {"id": f2}, None)
        check(anon and anon.get("url") == url2, "anonymous readers get the same URL")
        served(url2, render, "video/webm", "the 1 MiB render, byte for byte")
        r = fs.get(url2, "bytes=524288-525311")
        check(r.status == 206 and r.body == render[524288:525312]
              and r.header("Content-Range") == f"bytes 524288-525311/{len(render)}", f"a range: {r}")
        r = fs.get(url2, "bytes=0-0")
        check(r.status == 206 and r.body == render[:1] and r.header("Content-Length") == "1",
              f"a one-byte range: {r}")
        mine = ok("query", "files:listMine", {}, ta)
        check(mine and [f["_id"] for f in mine] == [f2, f1], f"alice's files, newest first: {mine}")
        check(ok("query", "files:listMine", {}, tb) == [], "bob has no files")

        # What bob can make of the URL he was given: nothing else.
        gone(fs.with_id(url2, s1), "bob's URL with the private file's id")
        gone(fs.with_token(url2, fs.flip(fs.split(url2)[2])), "a forged token")
        served(url1, preview, "image/png", "the private preview is still served to its URL")
        refusal("mutation", "files:replace", {"id": f2, "storageId": s1}, tb, "FORBIDDEN", "bob replaces alice's file")
        refusal("mutation", "files:remove", {"id": f2}, tb, "FORBIDDEN", "bob removes alice's file")
        served(url2, render, "video/webm", "bob's refused writes changed nothing")

        # Replace: the same row, new bytes; the old URL is gone.
        rerender = fs.png(64, 64, seed=4)
        s3 = upload(ta, rerender, "image/png")
        ok("mutation", "files:replace", {"id": f2, "storageId": s3, "filename": "loop.png"}, ta)
        got = ok("query", "files:get", {"id": f2}, tb)
        check(got and got["storageId"] == s3 and got["size"] == len(rerender) and got["mimeType"] == "image/png"
              and got["filename"] == "loop.png" and got["artworkId"] == pub,
              f"the replaced file: {got}")
        gone(url2, "the old render after the replace")
        served(got and got["url"], rerender, "image/png", "the new render")
        url3 = got and got["url"]
        refusal("mutation", "files:save", {"storageId": s2, "filename": "old.webm"}, ta, "NOT_FOUND",
                "the replaced upload cannot be saved again")
        st, r = http(srv, "query", {"query": {"table": "_storage"}}, srv.key)
        check(st == 200 and sorted(x["_id"] for x in r.get("value", [])) == sorted([s1, s3])
              and all(x["sha256"] == hashlib.sha256(preview if x["_id"] == s1 else rerender).hexdigest()
                      for x in r.get("value", [])), f"_storage holds the two kept files: {st} {r}")

        # Remove: the row and the bytes.
        ok("mutation", "files:remove", {"id": f1}, ta)
        gone(url1, "the removed preview")
        check(ok("query", "files:get", {"id": f1}, ta) is None, "the removed file's row is gone")

        # A restart keeps the kept file and its URL.
        check(srv.stop() == 0, "the files server stops cleanly")
        srv = Server(HERALD, app, data)
        _, sid3, token3 = fs.split(url3) or (None, None, None)
        served(f"http://localhost:{srv.port}/api/storage/{sid3}/{token3}", rerender, "image/png",
               "after a restart (on another port), the kept file at the same id and token")
        got = ok("query", "files:get", {"id": f2}, tb)
        check(got and fs.split(got["url"])[1:] == fs.split(url3)[1:], "after a restart, the same id and token")
    finally:
        stop_checked(srv, "the files server")


# ---- generations:generate against a fake model provider ----------------------

class FakeProvider(httpserver.ThreadingHTTPServer):
    """OpenAI's chat completions API, as far as the app uses it: POST
    /v1/chat/completions with `Authorization: Bearer <key>`. The one good
    key gets a JSON object of SVG frames (as many as the system prompt
    asks for); any other key a 401 that quotes it, as OpenAI's does. A
    prompt with "broken" gets an answer without frames, one with "fenced"
    its JSON in a Markdown fence."""
    daemon_threads = True
    GOOD_KEY = "sk-alice-good"

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), FakeProviderHandler)

    def seen(self):
        with self.lock:
            return list(self.requests)


def svg_frames(n, w, h):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">'
            f'<circle cx="{w // 2}" cy="{h // 2}" r="{5 + i}"/></svg>' for i in range(n)]


class FakeProviderHandler(httpserver.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, status, body):
        out = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        with srv.lock:
            srv.requests.append({"path": self.path, "body": body,
                                 "headers": {k.lower(): v for k, v in self.headers.items()}})
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": {"message": "Unknown path", "type": "invalid_request_error"}})
        key = (self.headers.get("Authorization") or "")[len("Bearer "):]
        if key != srv.GOOD_KEY:
            return self.reply(401, {"error": {"message": f"Incorrect API key provided: {key}.",
                                              "type": "invalid_request_error", "code": "invalid_api_key"}})
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        n, w, h = (int(x) for x in re.search(r"exactly (\d+) frames.*?width (\d+) and height (\d+)",
                                             system, re.S).groups())
        content = json.dumps({"frames": svg_frames(n, w, h)})
        if "broken" in user:
            content = "I would rather not draw that."
        elif "fenced" in user:
            content = "```json\n" + content + "\n```"
        self.reply(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": 60, "completion_tokens": 400, "total_tokens": 460,
                                   "cost": 0.0042}})


def generation_scenario(work, clerk):
    """generations:generate on a server of its own, against FakeProvider."""
    provider = FakeProvider()
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{provider.server_address[1]}"
    app = app_with_issuers(APP, [clerk], os.path.join(work, "generate-app"))
    srv = Server(HERALD, app, os.path.join(work, "generate-data"), extra=["--allow-fetch", "127.0.0.1"])
    ta = clerk.token("user_alice", email="alice@example.com", name="Alice")
    tb, tc = clerk.token("user_bob", email="bob@example.com"), clerk.token("user_carol", email="carol@example.com")

    ok = functools.partial(http_ok, srv)
    refusal = functools.partial(http_refusal, srv)

    try:
        ua = ok("mutation", "users:upsert", {}, ta)
        ok("mutation", "users:upsert", {}, tb)
        ok("mutation", "settings:setApiKey", {"name": "main", "key": FakeProvider.GOOD_KEY, "provider": "openai"}, ta)
        ok("mutation", "settings:update", {"preferredModel": "gpt-4o-mini"}, ta)

        # The operator points openai at the fake; no user may.
        st, r = call(srv, "mutation", "generations:setProvider", {"name": "openai", "baseUrl": base + "/v1"}, ta)
        check(st == 404 and r.get("code") == "NotFound", f"a user cannot move a provider: {st} {r}")
        ok("mutation", "generations:setProvider", {"name": "openai", "baseUrl": base + "/v1/"}, srv.key)
        for path, kind in (("generations:plan", "query"), ("generations:record", "mutation")):
            st, r = call(srv, kind, path, {"prompt": "x", "model": "m", "startedAt": 0}, ta)
            check(st == 404 and r.get("code") == "NotFound", f"{path} is internal (it sees keys): {st} {r}")

        # ---- success: an artwork and its generations row -------------------
        got = ok("action", "generations:generate",
                 {"prompt": "a spinning cube of light", "style": "neon", "visibility": "public",
                  "frameCount": 3, "width": 256, "height": 256}, ta) or {}
        check(isinstance(got.get("artworkId"), str) and isinstance(got.get("generationId"), str),
              f"generate returns the artwork and the generation: {got}")
        reqs = provider.seen()
        check(len(reqs) == 1, f"one call to the provider: {len(reqs)}")
        if reqs:
            req = reqs[0]
            check(req["headers"].get("authorization") == "Bearer " + FakeProvider.GOOD_KEY,
                  f"the user's key, as a bearer token: {req['headers']}")
            check(req["headers"].get("content-type") == "application/json", "a JSON body")
            body = req["body"]
            check(body.get("model") == "gpt-4o-mini" and body.get("response_format") == {"type": "json_object"}
                  and [m["role"] for m in body.get("messages", [])] == ["system", "user"],
                  f"the user's preferred model, JSON mode, a system and a user message: {body}")
            check("exactly 3 frames" in body["messages"][0]["content"]
                  and "a spinning cube of light" in body["messages"][1]["content"]
                  and "Style: neon" in body["messages"][1]["content"], f"what is asked: {body['messages']}")
        art = ok("query", "artworks:get", {"id": got.get("artworkId")}, ta) or {}
        check(art.get("frames") == svg_frames(3, 256, 256) and art.get("userId") == "user_alice"
              and art.get("visibility") == "public" and art.get("prompt") == "a spinning cube of light",
              f"the artwork holds the provider's frames: {str(art)[:400]}")
        meta = art.get("metadata") or {}
        check({k: meta.get(k) for k in ("width", "height", "fps", "generator", "model", "style")} ==
              {"width": 256, "height": 256, "fps": 12, "generator": "svg", "model": "gpt-4o-mini", "style": "neon"}
              and meta.get("createdAt") == art.get("createdAt"), f"its metadata: {meta}")
        logs = ok("query", "generations:listMine", {}, ta) or []
        g = logs[0] if logs else {}
        check([x["_id"] for x in logs] == [got.get("generationId")], f"one generations row: {logs}")
        check(g.get("prompt") == "a spinning cube of light" and g.get("success") is True and "error" not in g
              and g.get("model") == "gpt-4o-mini" and g.get("cost") == 0.0042 and g.get("userId") == ua
              and isinstance(g.get("duration"), (int, float)) and 0 <= g.get("duration") < 30
              and isinstance(g.get("createdAt"), str) and g.get("createdAt").endswith("Z"),
              f"the row as the seed describes it: {g}")

        got = ok("action", "generations:generate", {"prompt": "fenced waves"}, ta) or {}
        art = ok("query", "artworks:get", {"id": got.get("artworkId")}, ta) or {}
        check(len(art.get("frames") or []) == 8 and art.get("visibility") == "private"
              and (art.get("metadata") or {}).get("width") == 512,
              f"JSON in a Markdown fence is read; 8 frames of 512 by default, private by default: {str(art)[:300]}")

        # ---- failures: a failed row with the error, no artwork --------------
        artworks_before = ok("query", "artworks:listMine", {}, ta) or []
        r = refusal("action", "generations:generate", {"prompt": "a broken dream"}, ta, "GENERATION_FAILED",
                    "an answer without frames")
        check("no frames" in r.get("errorMessage", ""), f"the error says why: {r}")
        check(len(ok("query", "artworks:listMine", {}, ta) or []) == len(artworks_before), "no artwork made")
        g = (ok("query", "generations:listMine", {}, ta) or [{}])[0]
        check(g.get("success") is False and "no frames" in g.get("error", "") and g.get("prompt") == "a broken dream"
              and g.get("_id") == (r.get("errorData") or {}).get("generationId"),
              f"the failed generation is logged, and the error names its row: {g}")

        bad_key = "sk-bob-wrong-0001"
        ok("mutation", "settings:setApiKey", {"name": "k", "key": bad_key, "provider": "openai"}, tb)
        r = refusal("action", "generations:generate", {"prompt": "a red balloon"}, tb, "GENERATION_FAILED",
                    "a key the provider refuses")
        check("openai answered 401" in r.get("errorMessage", "") and "Incorrect API key" in r.get("errorMessage", ""),
              f"the provider's refusal, in its words: {r}")
        check(provider.seen()[-1]["headers"].get("authorization") == "Bearer " + bad_key, "bob's own key was sent")
        logs = ok("query", "generations:listMine", {}, tb) or []
        g = logs[0] if logs else {}
        check(len(logs) == 1 and g.get("success") is False and "401" in g.get("error", "")
              and g.get("model") == "gpt-4o" and g.get("prompt") == "a red balloon", f"bob's failed row: {logs}")
        check(bad_key not in json.dumps(logs) and bad_key not in json.dumps(r),
              "the key the provider quoted back is not kept in the log nor returned")
        check(ok("query", "artworks:listMine", {}, tb) == [], "bob has no artwork")

        ok("mutation", "generations:setProvider", {"name": "local", "baseUrl": "http://127.0.0.1:1/v1"}, srv.key)
        ok("mutation", "settings:setApiKey", {"name": "l", "key": "sk-local", "provider": "local"}, ta)
        r = refusal("action", "generations:generate", {"prompt": "offline", "provider": "local"}, ta,
                    "GENERATION_FAILED", "a provider that cannot be reached")
        check("could not be reached" in r.get("errorMessage", ""), f"the error says so: {r}")
        g = (ok("query", "generations:listMine", {}, ta) or [{}])[0]
        check(g.get("success") is False and g.get("prompt") == "offline", f"and it is logged: {g}")

        # ---- refused before any provider is called --------------------------
        n = len(provider.seen())
        st, r = call(srv, "query", "generations:listRecent", {}, srv.key)
        rows = len(r.get("value") or [])
        refusal("action", "generations:generate", {"prompt": "x"}, tc, "NO_API_KEY", "a user without a key")
        refusal("action", "generations:generate", {"prompt": "x", "provider": "nope"}, ta, "UNKNOWN_PROVIDER",
                "an unknown provider")
        refusal("action", "generations:generate", {"prompt": "x"}, None, "UNAUTHENTICATED", "anonymous")
        refusal("action", "generations:generate", {"prompt": ""}, ta, "INVALID_ARGUMENT", "an empty prompt")
        refusal("action", "generations:generate", {"prompt": "x", "frameCount": 0}, ta, "INVALID_ARGUMENT",
                "no frames asked for")
        st, r = call(srv, "action", "generations:generate", {"prompt": 5}, ta)
        check(st == 400 and r.get("code") == "ValidationError" and "args.prompt" in r.get("errorMessage", ""),
              f"a prompt that is no string: {st} {r}")
        check(len(provider.seen()) == n, "none of them reached the provider")
        st, r = call(srv, "query", "generations:listRecent", {}, srv.key)
        check(len(r.get("value") or []) == rows, "nor logged a generation")
    finally:
        provider.shutdown()
        stop_checked(srv, "the generation server")


def main():
    work = tempfile.mkdtemp(prefix="herald-artworks-")
    servers = []
    try:
        # The app as shipped starts (its Clerk configuration loads) and
        # serves the gallery to anyone.
        srv = Server(HERALD, APP, os.path.join(work, "shipped"))
        servers.append(srv)
        check("1 auth provider" in srv.output(), f"the shipped auth.config.json: {srv.output()[-500:]}")
        st, r = call(srv, "query", "artworks:listPublic", {})
        check(st == 200 and r["value"]["page"] == [], f"the shipped app serves the gallery: {st} {r}")
        check(srv.stop() == 0, "the shipped app stops cleanly")

        clerk = Issuer(ISS, AUD)
        rogue = Issuer(ISS, AUD)  # same issuer name and kid, another key
        app = app_with_issuers(APP, [clerk], os.path.join(work, "app"))
        srv = Server(HERALD, app, os.path.join(work, "data"))
        servers.append(srv)
        asyncio.run(asyncio.wait_for(scenario(srv, clerk, rogue), 120))
        code = srv.stop()
        check(code == 0, f"the server stops cleanly (exit {code})")
        files_scenario(work, clerk)
        generation_scenario(work, clerk)
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        check(False, f"exception: {e!r}")
    finally:
        for s in servers:
            s.stop()
            out = s.output()
            if "ERROR: AddressSanitizer" in out or "runtime error:" in out:
                check(False, "sanitizer report in the server output")
            if failures:
                print(out[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(finish("test_artworks"))


if __name__ == "__main__":
    main()
