"""Fondation (seed 003) end to end on Herald: documentation-generation jobs
for GitHub users, driven by an external worker holding per-job callback
tokens.

User A signs in with a JWT minted by the app's own auth server (subject =
GitHub user id), syncs their repositories and clicks "Generate Docs"; the
job list, the job and its log are watched live over WebSocket while a
worker, over plain HTTP and without any session, moves the job
pending -> running, appends log messages, saves the generated document
and completes the job. Every step must arrive as a live update. Then the
refusals: wrong, near-miss and empty callback tokens, illegal status
transitions, user B reading A's job, log and documents, B's listing, the
callback token in anything B or any listing sees, anonymous callers, and
ValidationErrors that name the argument.

Then the two flows that go through actions, against a fake GitHub on
loopback (herald started with --allow-fetch 127.0.0.1): user D's
repositories:sync reads GitHub's REST API page by page (per_page, page,
the Link header's rel="next") with D's OAuth token, or the public listing
without one, and caches what it read as the repositories rows the seed
describes; a second sync follows renames, additions and deletions on
GitHub. And the worker's callback route, POST /http/jobs/callback: the
right token (X-Callback-Token or Authorization: Bearer) moves the job
and appends to its log; a missing token is refused with 401, a wrong one
with 403, and neither changes anything.

Run as: /usr/bin/python3 test_fondation.py <herald> <source root>
"""
import asyncio
import http.server as httpserver
import json
import os
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from herald_client import Client  # noqa: E402
from herald_testlib import (Issuer, Server, app_with_issuers, call, check,  # noqa: E402
                            failures, finish, http)

ISSUER = "https://fondation.example/auth"
AUDIENCE = "fondation"
TIMEOUT = 20  # a guard only: every wait below waits for an event


class Recorder(Client):
    """A client that keeps every message it received and counts the live
    updates per subscription."""

    def __init__(self, ws, name):
        super().__init__(ws)
        self.name = name
        self.seen = []
        self.updates = {}

    async def pump(self, timeout=30):
        m = await super().pump(timeout)
        self.seen.append(m)
        if m["type"] == "update":
            for ch in m["changes"]:
                self.updates[ch["id"]] = self.updates.get(ch["id"], 0) + 1
        return m

    async def call(self, kind, path, args=None):
        """A function call; kind is "query" or "mutation" (sent as "mutate")."""
        kind = "mutate" if kind == "mutation" else kind
        return await self.request({"type": kind, "path": path, "args": args or {}})

    async def sub(self, sid, path, args=None):
        self.pending_subs.add(sid)
        return await self.request({"type": "sub", "id": sid, "path": path, "args": args or {}})

    async def wait_for(self, pred, what, timeout=TIMEOUT):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred():
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                await self.pump(left)
            except asyncio.TimeoutError:
                break
        return check(pred(), f"{self.name}: {what}")


def ok(r):
    return r.get("type") in ("result", "ack")


def names(message, arg):
    """Whether a ValidationError message names argument `arg` ("args.x"):
    as a path, or as the missing field `x` of args."""
    field = arg.split(".", 1)[1]
    return arg in message or f"args: missing required field `{field}`" in message


def val(r):
    return r.get("value")


def app_code(r):
    """The app's own error code (herald.error{code=...}) of a WS error frame."""
    if r.get("type") != "error":
        return None
    return (r.get("data") or {}).get("code")


def http_code(reply):
    """The app's error code of an HTTP reply."""
    if reply.get("status") != "error":
        return None
    return (reply.get("errorData") or {}).get("code")


async def worker(server, kind, path, args, token=None):
    """One call of the documentation worker: plain HTTP, no session."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, call, server, kind, path, args, token)


def statuses(jobs):
    return {j["_id"]: j["status"] for j in jobs or []}


def contains_key(value, key):
    if isinstance(value, dict):
        return key in value or any(contains_key(x, key) for x in value.values())
    if isinstance(value, list):
        return any(contains_key(x, key) for x in value)
    return False


REPO_1 = {"githubRepoId": "987654321", "name": "my-project", "fullName": "alice/my-project",
          "description": "An awesome project", "defaultBranch": "main"}
REPO_2 = {"githubRepoId": "555", "name": "dotfiles", "fullName": "alice/dotfiles",
          "defaultBranch": "master"}
REPO_3 = {"githubRepoId": "777", "name": "scratch", "fullName": "alice/scratch",
          "defaultBranch": "main"}


async def scenario(server, issuer):
    tok_a = issuer.token("1001", preferred_username="alice", name="Alice Liddell",
                         email="alice@example.com",
                         picture="https://avatars.githubusercontent.com/u/1001")
    tok_b = issuer.token("2002", preferred_username="bob", name="Bob",
                         picture="https://avatars.githubusercontent.com/u/2002")
    tok_c = issuer.token("3003", preferred_username="carol")   # signs in, never registers
    tok_bad_sub = issuer.token("github|4004", preferred_username="mallory")
    forger = Issuer(ISSUER, AUDIENCE)                           # same names, other key
    other_aud = Issuer(ISSUER, "another-app")
    other_aud.key = issuer.key
    other_aud.kid = issuer.kid

    async with server.ws() as wa, server.ws() as wb, server.ws() as wanon:
        a, b, anon = Recorder(wa, "A"), Recorder(wb, "B"), Recorder(wanon, "anonymous")

        # ---- signing in ---------------------------------------------------
        r = await a.request({"type": "auth", "token": tok_a})
        check(r["type"] == "ack", f"A signs in with the auth server's JWT: {r}")
        r = await b.request({"type": "auth", "token": tok_b})
        check(r["type"] == "ack", f"B signs in: {r}")
        for name, tok in (("forged signature", forger.token("1001")),
                          ("wrong audience", other_aud.token("1001")),
                          ("expired", issuer.token("1001", ttl=-3600))):
            async with server.ws() as wx:
                x = Recorder(wx, name)
                r = await x.request({"type": "auth", "token": tok})
                check(r["type"] == "error" and r["code"] == "Unauthorized",
                      f"a JWT with a {name} is refused: {r}")
                r = await x.call("query", "users:me")
                check(ok(r) and val(r) is None, f"after a refused {name} JWT the caller is anonymous: {r}")

        r = await a.call("query", "users:me")
        check(ok(r) and val(r) is None, f"users:me before registering is null: {r}")
        await a.sub("me", "users:me")
        r = await a.call("mutation", "users:upsertFromGitHub")
        check(ok(r) and isinstance(r.get("value"), str), f"A registers from the token's claims: {r}")
        user_a = r.get("value")
        await a.wait_for(lambda: (a.results.get("me") or {}).get("_id") == user_a,
                         "users:me subscription shows the new user")
        me = a.results.get("me") or {}
        check(me.get("githubId") == "1001", f"githubId is the token's subject: {me}")
        check(me.get("username") == "alice", f"username from the preferred_username claim: {me}")
        check(me.get("email") == "alice@example.com", f"email from the claim: {me}")
        check(me.get("avatarUrl") == "https://avatars.githubusercontent.com/u/1001",
              f"avatar from the picture claim: {me}")
        check(isinstance(me.get("createdAt"), (int, float)) and me.get("createdAt") > 1.6e12,
              f"createdAt in milliseconds: {me}")
        created = me.get("createdAt")

        r = await a.call("mutation", "users:upsertFromGitHub",
                         {"username": "alice-gh", "avatarUrl": "https://avatars.example/a2"})
        check(ok(r) and r.get("value") == user_a, f"a second login updates the same user: {r}")
        await a.wait_for(lambda: (a.results.get("me") or {}).get("username") == "alice-gh",
                         "users:me follows the profile update")
        me = a.results.get("me") or {}
        check(me.get("avatarUrl") == "https://avatars.example/a2" and me.get("createdAt") == created,
              f"avatar patched, createdAt kept: {me}")
        r = await a.call("query", "users:me")
        check(ok(r) and (val(r) or {}).get("githubId") == "1001", "users:me by one-shot query")

        r = await b.call("mutation", "users:upsertFromGitHub", {"username": "bob"})
        check(ok(r) and r.get("value") not in (None, user_a), f"B registers as another user: {r}")

        st, rep = http(server, "query", {"query": {"table": "users", "index": "by_github_id"}}, server.key)
        check(st == 200 and [u.get("githubId") for u in rep.get("value") or []] == ["1001", "2002"],
              f"one users row per GitHub account after repeated logins: {rep}")
        check([u.get("email") for u in rep.get("value") or []] == ["alice@example.com", None],
              f"A keeps the email of the claim, B has none: {rep}")

        async with server.ws() as wx:
            x = Recorder(wx, "mallory")
            await x.request({"type": "auth", "token": tok_bad_sub})
            r = await x.call("mutation", "users:upsertFromGitHub")
            check(app_code(r) == "INVALID_GITHUB_ID", f"a subject that is no GitHub id is refused: {r}")

        # ---- repositories -------------------------------------------------
        r = await a.call("mutation", "repositories:save", {"repositories": [REPO_1, REPO_2]})
        check(ok(r) and isinstance(r.get("value"), list) and len(val(r) or []) == 2,
              f"A syncs two repositories: {r}")
        repo1, repo2 = (r.get("value") or [None, None])[:2]
        changed = dict(REPO_1, description="Now with docs", defaultBranch="trunk")
        r = await a.call("mutation", "repositories:save", {"repositories": [changed, REPO_2]})
        check(ok(r) and r.get("value") == [repo1, repo2],
              f"syncing again finds the existing repositories (by_user + githubRepoId): {r}")
        r = await a.call("query", "repositories:list")
        repos = r.get("value") or []
        check(ok(r) and sorted(x["_id"] for x in repos) == sorted([repo1, repo2]),
              f"A's list holds exactly the two repositories: {r}")
        one = [x for x in repos if x["_id"] == repo1]
        check(one and one[0]["description"] == "Now with docs" and one[0]["defaultBranch"] == "trunk"
              and one[0]["userId"] == user_a, f"the refreshed repository: {one}")
        two = [x for x in repos if x["_id"] == repo2]
        check(two and "description" not in two[0], f"no description stays absent: {two}")
        r = await a.call("query", "repositories:findByGithubRepoId", {"githubRepoId": "987654321"})
        check(ok(r) and (r.get("value") or {}).get("_id") == repo1, f"check for existing repository: {r}")
        r = await a.call("query", "repositories:findByGithubRepoId", {"githubRepoId": "424242"})
        check(ok(r) and r.get("value") is None, f"a repository not cached: {r}")

        # B caches a repository with the same GitHub id: it is B's own row.
        r = await b.call("mutation", "repositories:save", {"repositories": [REPO_1]})
        repo_b = (r.get("value") or [None])[0]
        check(ok(r) and repo_b not in (None, repo1, repo2), f"B's copy of the same GitHub repo is B's: {r}")
        r = await b.call("query", "repositories:list")
        check(ok(r) and [x["_id"] for x in r.get("value") or []] == [repo_b], f"B lists only B's: {r}")
        r = await a.call("query", "repositories:list")
        check(ok(r) and len(r.get("value") or []) == 2, "A's list is unchanged by B's sync")
        r = await b.call("query", "repositories:findByGithubRepoId", {"githubRepoId": "987654321"})
        check(ok(r) and (r.get("value") or {}).get("_id") == repo_b, "B's lookup finds B's row")

        # ---- live subscriptions -------------------------------------------
        await a.sub("mine", "jobs:listMine")
        check(a.results.get("mine") == [], f"A has no jobs yet: {a.results.get('mine')}")
        await b.sub("mine", "jobs:listMine")
        check(b.results.get("mine") == [], "B has no jobs yet")
        await a.sub("docs", "documents:listForRepository", {"repositoryId": repo1})
        check(a.results.get("docs") == [], "no documents yet")
        seen_status = {}  # job id -> its statuses as A's job list showed them, each change once

        def on_change_a(sid, value, version):
            if sid != "mine":
                return
            for jid, s in statuses(value).items():
                seen = seen_status.setdefault(jid, [])
                if not seen or seen[-1] != s:
                    seen.append(s)
        a.on_change = on_change_a

        # ---- "Generate Docs" ----------------------------------------------
        r = await a.call("mutation", "jobs:create", {"repositoryId": repo1})
        created_job = r.get("value") or {}
        check(ok(r) and isinstance(created_job.get("jobId"), str)
              and isinstance(created_job.get("callbackToken"), str)
              and len(created_job.get("callbackToken")) >= 32,
              f"jobs:create returns the job id and a callback token: {r}")
        job1, token1 = created_job.get("jobId"), created_job.get("callbackToken", "")
        await a.wait_for(lambda: statuses(a.results.get("mine")).get(job1) == "pending",
                         "the new job appears in listMine as pending")
        check(seen_status.get(job1) == ["pending"], f"j1 seen pending: {seen_status}")
        await a.sub("job", "jobs:get", {"jobId": job1})
        j = a.results.get("job") or {}
        check(j.get("status") == "pending" and j.get("repositoryId") == repo1 and j.get("userId") == user_a
              and j.get("prompt") == "Generate comprehensive documentation for this repository"
              and isinstance(j.get("createdAt"), (int, float)),
              f"jobs:get shows the job: {j}")
        check("callbackToken" not in j, f"jobs:get does not show the callback token, even to its owner: {j}")
        await a.sub("log", "messages:listForJob", {"jobId": job1})
        check(a.results.get("log") == [], "the job's log is empty")

        # B tries to watch A's job and log: refused, and nothing follows later.
        for sid, path in (("spy-job", "jobs:get"), ("spy-log", "messages:listForJob"),
                          ("spy-doc", "documents:getForJob")):
            r = await b.sub(sid, path, {"jobId": job1})
            check(app_code(r) == "FORBIDDEN", f"B cannot subscribe to A's {path}: {r}")
        r = await b.sub("spy-docs", "documents:listForRepository", {"repositoryId": repo1})
        check(app_code(r) == "FORBIDDEN", f"B cannot subscribe to A's documents: {r}")

        r = await a.call("mutation", "jobs:create", {"repositoryId": repo2, "prompt": "Only the API"})
        job2, token2 = (r.get("value") or {}).get("jobId"), (r.get("value") or {}).get("callbackToken", "")
        check(ok(r) and job2 and token2 and token2 != token1, f"a second job, its own token: {r}")
        await a.wait_for(lambda: len(a.results.get("mine") or []) == 2, "listMine shows both jobs")
        check([x["_id"] for x in a.results.get("mine") or []] == [job2, job1],
              f"listMine is newest first: {a.results.get('mine')}")
        check((a.results.get("mine") or [{}])[0].get("prompt") == "Only the API", "the given prompt is kept")

        # ---- the worker: plain HTTP, no session ------------------------------
        st, rep = await worker(server, "mutation", "jobs:updateStatus",
                               {"jobId": job1, "callbackToken": token1, "status": "running"})
        check(st == 200 and rep.get("status") == "success", f"worker: pending -> running: {st} {rep}")
        await a.wait_for(lambda: statuses(a.results.get("mine")).get(job1) == "running",
                         "listMine shows j1 running")
        await a.wait_for(lambda: (a.results.get("job") or {}).get("status") == "running",
                         "jobs:get shows running")

        log_lines = [("log", "Cloning alice/my-project"), ("tool", "read_file README.md"),
                     ("error", "docs/ folder missing, creating it")]
        for n, (kind, content) in enumerate(log_lines):
            st, rep = await worker(server, "mutation", "messages:append",
                                   {"jobId": job1, "callbackToken": token1, "type": kind, "content": content})
            check(st == 200 and isinstance(rep.get("value"), str), f"worker appends a {kind} message: {rep}")
            await a.wait_for(lambda: len(a.results.get("log") or []) == n + 1,
                             f"the log subscription shows message {n + 1}")
        log = a.results.get("log") or []
        check([(m.get("type"), m.get("content")) for m in log] == log_lines, f"log in order: {log}")
        check(all(m.get("jobId") == job1 and isinstance(m.get("timestamp"), (int, float)) for m in log),
              f"messages carry their job and timestamp: {log}")
        check([m.get("timestamp") for m in log] == sorted(m.get("timestamp") for m in log),
              "timestamps never go back")

        metadata = {"pages": 3, "sections": ["Overview", "API"], "model": "doc-gen-1"}
        st, rep = await worker(server, "mutation", "documents:save",
                               {"jobId": job1, "callbackToken": token1, "content": "# my-project\n",
                                "format": "markdown", "metadata": metadata})
        check(st == 200 and isinstance(rep.get("value"), str), f"worker saves the document: {st} {rep}")
        doc1 = rep.get("value")
        await a.wait_for(lambda: len(a.results.get("docs") or []) == 1,
                         "documents:listForRepository shows the document")
        d = (a.results.get("docs") or [{}])[0]
        check(d.get("_id") == doc1 and d.get("jobId") == job1 and d.get("repositoryId") == repo1
              and d.get("format") == "markdown" and d.get("content") == "# my-project\n"
              and d.get("metadata") == metadata and isinstance(d.get("createdAt"), (int, float)),
              f"the document as saved: {d}")
        full = "# my-project\n\n" + "Generated documentation. " * 2000
        st, rep = await worker(server, "mutation", "documents:save",
                               {"jobId": job1, "callbackToken": token1, "content": full, "format": "html"})
        check(st == 200 and rep.get("value") == doc1, f"saving again replaces the job's document: {rep}")
        await a.wait_for(lambda: ((a.results.get("docs") or [{}])[0]).get("format") == "html",
                         "the document subscription follows the replacement")
        d = (a.results.get("docs") or [{}])[0]
        check(len(a.results.get("docs") or []) == 1 and d.get("content") == full and "metadata" not in d,
              "one document per job, replaced whole")

        st, rep = await worker(server, "mutation", "jobs:updateStatus",
                               {"jobId": job1, "callbackToken": token1, "status": "completed"})
        check(st == 200 and rep.get("status") == "success", f"worker: running -> completed: {rep}")
        await a.wait_for(lambda: statuses(a.results.get("mine")).get(job1) == "completed",
                         "listMine shows j1 completed")
        await a.wait_for(lambda: (a.results.get("job") or {}).get("status") == "completed",
                         "jobs:get shows completed")
        check(seen_status.get(job1) == ["pending", "running", "completed"],
              f"A saw every status of j1: {seen_status}")
        for sid, least in (("mine", 3), ("job", 2), ("log", 3), ("docs", 2), ("me", 2)):
            check(a.updates.get(sid, 0) >= least,
                  f"subscription {sid} followed by live updates ({a.updates.get(sid, 0)} >= {least})")
        r = await a.call("query", "documents:getForJob", {"jobId": job1})
        check(ok(r) and (r.get("value") or {}).get("_id") == doc1, f"documents:getForJob: {r}")

        # ---- callback-token refusals ---------------------------------------
        async def refused_token(path, args, what, code="INVALID_TOKEN"):
            st, rep = await worker(server, "mutation", path, args)
            check(st != 200 and rep.get("code") == "FunctionError" and http_code(rep) == code,
                  f"{what}: refused with {code}: {st} {rep}")
            check(token1 not in json.dumps(rep) and token2 not in json.dumps(rep),
                  f"{what}: the refusal does not echo a token")

        last = "A" if token2[-1] != "A" else "B"
        near2 = token2[:-1] + last
        r = await a.call("mutation", "jobs:create", {"repositoryId": repo1})
        job3, token3 = (r.get("value") or {}).get("jobId"), (r.get("value") or {}).get("callbackToken", "")
        check(ok(r) and job3, "a third job, left pending")
        bad_tokens = [("a wrong callback token", "x" * len(token2)),
                      ("a token differing only in its last character", near2),
                      ("an empty token", ""),
                      ("the token without its last character", token2[:-1]),
                      ("the token with a character added", token2 + "A"),
                      ("another job's token", token3),
                      ("the token in another case", token2.swapcase())]
        for what, bad in bad_tokens:
            base = {"jobId": job2, "callbackToken": bad}
            await refused_token("jobs:updateStatus", dict(base, status="running"), "updateStatus with " + what)
            await refused_token("messages:append", dict(base, type="log", content="spoofed"),
                                "messages:append with " + what)
            await refused_token("documents:save", dict(base, content="spoofed", format="markdown"),
                                "documents:save with " + what)
        # A NUL cannot hide a suffix: Herald refuses such strings on the wire.
        for path, extra in (("jobs:updateStatus", {"status": "running"}),
                            ("messages:append", {"type": "log", "content": "spoofed"})):
            st, rep = await worker(server, "mutation", path,
                                   dict(extra, jobId=job2, callbackToken=token2 + "\u0000xyz"))
            check(st == 400 and (rep.get("code") == "InvalidArgument" or http_code(rep) == "INVALID_TOKEN"),
                  f"{path}: the token followed by a NUL and more is refused: {st} {rep}")
        r = await a.call("query", "jobs:get", {"jobId": job2})
        check(ok(r) and (val(r) or {}).get("status") == "pending", f"j2 untouched by refused tokens: {r}")
        r = await a.call("query", "messages:listForJob", {"jobId": job2})
        check(ok(r) and val(r) == [], f"no spoofed message in j2's log: {r}")

        # ---- status transitions -------------------------------------------
        async def transition(job, token, to, allowed, message=None):
            args = {"jobId": job, "callbackToken": token, "status": to}
            if message:
                args["message"] = message
            st, rep = await worker(server, "mutation", "jobs:updateStatus", args)
            if allowed:
                check(st == 200 and rep.get("status") == "success", f"transition to {to} accepted: {rep}")
            else:
                data = rep.get("errorData") or {}
                check(st != 200 and http_code(rep) == "INVALID_TRANSITION"
                      and f"to {to}" in rep.get("errorMessage", ""),
                      f"illegal transition to {to} refused with a clear error: {st} {rep}")
                return data.get("from")

        check(await transition(job2, token2, "completed", False) == "pending", "pending -> completed refused")
        await transition(job2, token2, "failed", False)
        await transition(job2, token2, "pending", False)
        st, rep = await worker(server, "mutation", "documents:save",
                               {"jobId": job2, "callbackToken": token2, "content": "x", "format": "pdf"})
        check(http_code(rep) == "JOB_NOT_RUNNING", f"no document for a pending job: {rep}")
        await transition(job2, token2, "running", True)
        await transition(job2, token2, "running", False)
        await transition(job2, token2, "pending", False)
        await transition(job2, token2, "failed", True, message="worker crashed: out of memory")
        check(await transition(job2, token2, "running", False) == "failed", "failed -> running refused")
        await transition(job2, token2, "completed", False)
        check(await transition(job1, token1, "running", False) == "completed", "completed -> running refused")
        await transition(job1, token1, "failed", False)
        await transition(job1, token1, "pending", False)
        st, rep = await worker(server, "mutation", "jobs:updateStatus",
                               {"jobId": job1, "callbackToken": token1, "status": "running",
                                "message": "should not be logged"})
        check(http_code(rep) == "INVALID_TRANSITION", "a refused transition with a message")
        r = await a.call("query", "messages:listForJob", {"jobId": job1})
        check(ok(r) and len(val(r) or []) == 3, f"a refused transition logs nothing (rolled back): {r}")
        r = await a.call("query", "messages:listForJob", {"jobId": job2})
        check(ok(r) and [(m["type"], m["content"]) for m in val(r) or []] == [("error", "worker crashed: out of memory")],
              f"the failure message is in j2's log: {r}")
        st, rep = await worker(server, "mutation", "messages:append",
                               {"jobId": job1, "callbackToken": token1, "type": "log", "content": "late"})
        check(http_code(rep) == "JOB_FINISHED", f"a finished job's log is closed: {rep}")
        st, rep = await worker(server, "mutation", "documents:save",
                               {"jobId": job1, "callbackToken": token1, "content": "late", "format": "markdown"})
        check(http_code(rep) == "JOB_NOT_RUNNING", f"no document after completion: {rep}")
        await a.wait_for(lambda: statuses(a.results.get("mine")) == {job1: "completed", job2: "failed",
                                                                     job3: "pending"},
                         "listMine ends with j1 completed, j2 failed, j3 pending")

        # ---- B may not see or touch A's jobs -----------------------------
        r = await b.call("mutation", "jobs:create", {"repositoryId": repo_b})
        job_b, token_b = (r.get("value") or {}).get("jobId"), (r.get("value") or {}).get("callbackToken", "")
        check(ok(r) and job_b, f"B creates a job on B's repository: {r}")
        await b.wait_for(lambda: [x["_id"] for x in b.results.get("mine") or []] == [job_b],
                         "B's listMine shows only B's job")
        st, rep = await worker(server, "mutation", "jobs:updateStatus",
                               {"jobId": job3, "callbackToken": token_b, "status": "running"})
        check(http_code(rep) == "INVALID_TOKEN", f"B's job token does not drive A's job: {rep}")
        for path, args in (("jobs:get", {"jobId": job1}),
                           ("messages:listForJob", {"jobId": job1}),
                           ("documents:listForRepository", {"repositoryId": repo1}),
                           ("documents:getForJob", {"jobId": job1})):
            r = await b.call("query", path, args)
            check(app_code(r) == "FORBIDDEN", f"B cannot read A's {path}: {r}")
        for path, args in (("jobs:create", {"repositoryId": repo1}),
                           ("repositories:remove", {"repositoryId": repo2})):
            r = await b.call("mutation", path, args)
            check(app_code(r) == "FORBIDDEN", f"B cannot {path} on A's repository: {r}")
        r = await a.call("query", "repositories:list")
        check(ok(r) and len(val(r) or []) == 2, "A's repositories survive B's attempt")
        r = await b.call("query", "jobs:listMine")
        check(ok(r) and [x["_id"] for x in val(r) or []] == [job_b], f"B's one-shot listMine: {r}")
        r = await b.call("query", "repositories:findByGithubRepoId", {"githubRepoId": "555"})
        check(ok(r) and val(r) is None, "B's lookup never finds A's repository")
        r = await a.call("query", "jobs:listMine")
        check(ok(r) and job_b not in [x["_id"] for x in val(r) or []], "A's listing never holds B's job")

        # Everything B ever received: A's jobs never, any callback token never.
        b_text = json.dumps(b.seen)
        for t in (token1, token2, token3):
            check(t not in b_text, "no callback token of A's reached B")
        for jid in (job1, job2, job3):
            check(jid not in b_text, f"A's job {jid} never appeared in anything B received")
        b_results = [m for m in b.seen if m["type"] in ("result", "update")]
        check(not contains_key(b_results, "callbackToken"), "no query result seen by B has a callbackToken")
        a_results = [m for m in a.seen if m["type"] in ("result", "update")]
        check(not contains_key(a_results, "callbackToken") and not any(
            t in json.dumps(a_results) for t in (token1, token2, token3)),
            "no query result seen by A (its own listings included) has a callback token")
        check(not contains_key(list(a.results.values()), "callbackToken"), "A's live results hold no token")

        # A signed-in user who never registered.
        async with server.ws() as wx:
            x = Recorder(wx, "C")
            await x.request({"type": "auth", "token": tok_c})
            r = await x.call("query", "jobs:listMine")
            check(ok(r) and val(r) == [], f"an unregistered user has no jobs: {r}")
            r = await x.call("query", "users:me")
            check(ok(r) and val(r) is None, "an unregistered user's users:me is null")
            r = await x.call("mutation", "jobs:create", {"repositoryId": repo1})
            check(app_code(r) == "NOT_REGISTERED", f"an unregistered user cannot create jobs: {r}")

        # ---- anonymous callers ---------------------------------------------
        anon_calls = [("mutation", "users:upsertFromGitHub", {"username": "ghost"}),
                      ("mutation", "repositories:save", {"repositories": [REPO_3]}),
                      ("action", "repositories:sync", {"githubToken": "gho_anyone"}),
                      ("query", "repositories:list", {}),
                      ("mutation", "repositories:remove", {"repositoryId": repo2}),
                      ("mutation", "jobs:create", {"repositoryId": repo1}),
                      ("query", "jobs:listMine", {}),
                      ("query", "jobs:get", {"jobId": job1}),
                      ("query", "messages:listForJob", {"jobId": job1}),
                      ("query", "documents:listForRepository", {"repositoryId": repo1}),
                      ("query", "documents:getForJob", {"jobId": job1})]
        for kind, path, args in anon_calls:
            r = await anon.call(kind, path, args)
            check(app_code(r) == "UNAUTHENTICATED", f"anonymous {path} over WebSocket refused: {r}")
            st, rep = await worker(server, kind, path, args)
            check(http_code(rep) == "UNAUTHENTICATED", f"anonymous {path} over HTTP refused: {st} {rep}")
        r = await anon.call("query", "users:me")
        check(ok(r) and val(r) is None, "anonymous users:me is null")
        st, rep = await worker(server, "query", "repositories:hasActiveJob", {})
        check(rep.get("code") == "NotFound", f"module helpers are not callable: {rep}")
        check(token1 not in json.dumps(anon.seen), "no token reached the anonymous client")

        # A user's JWT over HTTP, as ConvexHttpClient.setAuth sends it.
        st, rep = await worker(server, "query", "jobs:listMine", {}, tok_a)
        check(st == 200 and [x["_id"] for x in rep.get("value") or []] == [job3, job2, job1],
              f"A's JWT as an HTTP bearer token ({len(tok_a)} bytes) signs A in: {st} {rep}")

        # ---- validation ------------------------------------------------------
        bad_args = [("jobs:updateStatus", {"jobId": job1, "callbackToken": token1, "status": "done"},
                     "args.status"),
                    ("jobs:updateStatus", {"jobId": repo1, "callbackToken": token1, "status": "running"},
                     "args.jobId"),
                    ("jobs:updateStatus", {"jobId": job1, "status": "running"}, "args.callbackToken"),
                    ("jobs:updateStatus", {"jobId": job1, "callbackToken": 12, "status": "running"},
                     "args.callbackToken"),
                    ("messages:append", {"jobId": job3, "callbackToken": token3, "type": "debug",
                                         "content": "x"}, "args.type"),
                    ("messages:append", {"jobId": job3, "callbackToken": token3, "type": "log"},
                     "args.content"),
                    ("documents:save", {"jobId": job3, "callbackToken": token3, "content": "x",
                                        "format": "docx"}, "args.format")]
        for path, args, name in bad_args:
            st, rep = await worker(server, "mutation", path, args)
            check(rep.get("code") == "ValidationError" and names(rep.get("errorMessage", ""), name),
                  f"{path} with a bad {name}: ValidationError naming it: {rep}")
        for kind, path, args, name in (
                ("mutation", "jobs:create", {"repositoryId": job1}, "args.repositoryId"),
                ("mutation", "jobs:create", {"repositoryId": repo1, "prompt": 5}, "args.prompt"),
                ("query", "jobs:get", {"jobId": "nope"}, "args.jobId"),
                ("mutation", "repositories:save",
                 {"repositories": [{"githubRepoId": "1", "name": "n", "defaultBranch": "main"}]},
                 "args.repositories"),
                ("mutation", "users:upsertFromGitHub", {"username": ["alice"]}, "args.username"),
                ("query", "documents:listForRepository", {"repositoryId": job1}, "args.repositoryId")):
            r = await a.call(kind, path, args)
            check(r.get("type") == "error" and r.get("code") == "ValidationError"
                  and names(r.get("message", ""), name), f"{path}: ValidationError naming {name}: {r}")

        # ---- removing repositories -----------------------------------------
        r = await a.call("mutation", "repositories:remove", {"repositoryId": repo1})
        check(app_code(r) == "REPOSITORY_BUSY", f"a repository with a pending job stays: {r}")
        r = await a.call("mutation", "repositories:save", {"repositories": [REPO_3]})
        repo3 = (r.get("value") or [None])[0]
        check(ok(r) and repo3, "a third repository")
        r = await a.call("mutation", "repositories:remove", {"repositoryId": repo3})
        check(ok(r), f"the owner removes a repository: {r}")
        r = await a.call("mutation", "repositories:save", {"repositories": [REPO_3, REPO_2], "prune": True})
        repo3b = (r.get("value") or [None])[0]
        r = await a.call("query", "repositories:list")
        ids = sorted(x["_id"] for x in r.get("value") or [])
        check(ok(r) and ids == sorted([repo1, repo2, repo3b]) and repo3b != repo3,
              f"prune keeps the repository with an active job: {r}")
        r = await a.call("mutation", "repositories:save", {"repositories": [REPO_2], "prune": True})
        r = await a.call("query", "repositories:list")
        check(ok(r) and sorted(x["_id"] for x in val(r)) == sorted([repo1, repo2]),
              f"prune drops the repository no longer on GitHub: {r}")
        r = await b.call("query", "repositories:list")
        check(ok(r) and [x["_id"] for x in val(r) or []] == [repo_b], "A's prune leaves B's cache alone")

        # A job that no longer exists gets the same answer as a wrong token.
        loop = asyncio.get_running_loop()
        st, rep = await loop.run_in_executor(None, http, server, "mutation",
                                             {"ops": [{"op": "delete", "id": job_b}]}, server.key)
        check(st == 200, f"the admin deletes B's job: {st} {rep}")
        await b.wait_for(lambda: b.results.get("mine") == [], "B's listMine follows the deletion")
        st, rep = await worker(server, "mutation", "jobs:updateStatus",
                               {"jobId": job_b, "callbackToken": token_b, "status": "running"})
        check(http_code(rep) == "INVALID_TOKEN", f"a deleted job: INVALID_TOKEN, as for a wrong token: {rep}")

        for c in (a, b, anon):
            check(not c.errors, f"{c.name}: protocol errors {c.errors[:3]}")


# ---- a fake GitHub REST API on loopback ------------------------------------

def api_repo(login, n, private=False, description="", branch="main", name=None):
    """A repository as GitHub's REST API sends it (the fields that matter,
    and a few that do not)."""
    name = name or f"repo-{n:03d}"
    return {"id": 5_000_000 + n, "node_id": f"R_kgDO{n:06d}", "name": name,
            "full_name": f"{login}/{name}", "private": private,
            "owner": {"login": login, "id": 4242, "type": "User"},
            "html_url": f"https://github.com/{login}/{name}",
            "description": description if description != "" else f"Project number {n}",
            "fork": False, "default_branch": branch, "stargazers_count": n % 7,
            "created_at": "2024-01-01T00:00:00Z"}


class FakeGitHub(httpserver.ThreadingHTTPServer):
    """GET /user/repos (a token's own repositories, private ones too) and
    GET /users/{login}/repos (public ones), paginated as GitHub does:
    per_page (default 30, at most 100), page, and a Link header with
    rel="next" / "last" (and "prev" / "first" after page 1)."""
    daemon_threads = True

    def __init__(self):
        self.repos = {"dora": [api_repo("dora", n, private=(n % 40 == 7),
                                        description=None if n % 3 == 0 else "",
                                        branch="master" if n % 5 == 0 else "main")
                               for n in range(130)]}
        self.tokens = {"gho_dora": "dora"}
        self.requests = []
        self.next_base = None  # a Link to another server, when set
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), FakeGitHubHandler)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def seen(self):
        with self.lock:
            return list(self.requests)


class FakeGitHubHandler(httpserver.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, status, body, headers=()):
        out = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):
        gh = self.server
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with gh.lock:
            gh.requests.append({"path": url.path, "query": query,
                                "headers": {k.lower(): v for k, v in self.headers.items()}})
        auth = self.headers.get("Authorization", "")
        if url.path == "/user/repos":
            login = gh.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
            if not login:
                return self.reply(401, {"message": "Bad credentials",
                                        "documentation_url": "https://docs.github.com/rest"})
            repos = gh.repos.get(login, [])
        elif url.path.startswith("/users/") and url.path.endswith("/repos"):
            login = url.path[len("/users/"):-len("/repos")]
            if login not in gh.repos:
                return self.reply(404, {"message": "Not Found"})
            repos = [r for r in gh.repos[login] if not r["private"]]
        else:
            return self.reply(404, {"message": "Not Found"})
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        last = max(1, -(-len(repos) // per_page))
        base = gh.next_base or gh.base

        def link(n, rel):
            return f'<{base}{url.path}?per_page={per_page}&page={n}>; rel="{rel}"'
        links = []
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = [("X-RateLimit-Remaining", "4999")]
        if links:
            headers.append(("Link", ", ".join(links)))
        self.reply(200, repos[(page - 1) * per_page:page * per_page], headers)


def admin(server, kind, path, args):
    st, rep = call(server, kind, path, args, server.key)
    check(st == 200, f"admin {path} {args}: {st} {rep}")
    return rep.get("value")


async def github_sync(server, issuer, gh):
    tok_d = issuer.token("4242", preferred_username="dora")
    async with server.ws() as wd, server.ws() as wanon:
        d, anon = Recorder(wd, "D"), Recorder(wanon, "anonymous")
        await d.request({"type": "auth", "token": tok_d})
        r = await d.call("action", "repositories:sync", {"githubToken": "gho_dora"})
        check(app_code(r) == "NOT_REGISTERED", f"sync before registering: {r}")
        r = await anon.call("action", "repositories:sync", {})
        check(app_code(r) == "UNAUTHENTICATED", f"anonymous sync: {r}")
        check(gh.seen() == [], "nobody reached GitHub yet")
        r = await d.call("mutation", "users:upsertFromGitHub")
        user_d = val(r)
        check(ok(r) and user_d, f"D registers: {r}")

        # The GitHub API's URL is the operator's setting.
        st, rep = await worker(server, "mutation", "settings:set", {"key": "githubApiUrl", "value": gh.base})
        check(rep.get("code") == "NotFound", f"settings:set without the admin key: {st} {rep}")
        r = await d.call("mutation", "settings:set", {"key": "githubApiUrl", "value": gh.base})
        check(r.get("code") == "NotFound", f"a signed-in user cannot set it either: {r}")
        st, rep = await worker(server, "query", "settings:get", {"key": "githubApiUrl"})
        check(rep.get("code") == "NotFound", f"nor read it: {rep}")
        check(admin(server, "query", "settings:get", {"key": "githubApiUrl"}) == "https://api.github.com",
              "the default is the real GitHub API")
        st, rep = call(server, "mutation", "settings:set", {"key": "githubApiUrl", "value": "ftp://x"}, server.key)
        check(http_code(rep) == "INVALID_SETTING", f"a URL that is not http(s): {rep}")
        st, rep = call(server, "mutation", "settings:set", {"key": "color", "value": "red"}, server.key)
        check(http_code(rep) == "UNKNOWN_SETTING", f"an unknown setting: {rep}")
        check(admin(server, "mutation", "settings:set", {"key": "githubApiUrl", "value": gh.base + "/"}) == gh.base,
              "the operator points the app at the fake GitHub (the trailing / dropped)")

        # ---- sync with D's OAuth token: /user/repos, two pages -------------
        await d.sub("repos", "repositories:list")
        check(d.results.get("repos") == [], "D has no repositories cached")
        r = await d.call("action", "repositories:sync", {"githubToken": "gho_dora"})
        check(ok(r) and len(val(r) or []) == 130, f"sync reads and caches 130 repositories: {str(r)[:300]}")
        first_ids = val(r) or []
        reqs = gh.seen()
        check([(q["path"], q["query"]) for q in reqs] ==
              [("/user/repos", {"per_page": "100", "page": "1"}), ("/user/repos", {"per_page": "100", "page": "2"})],
              f"two pages of 100, the second from the Link header: {[(q['path'], q['query']) for q in reqs]}")
        check(all(q["headers"].get("authorization") == "Bearer gho_dora"
                  and q["headers"].get("accept") == "application/vnd.github+json"
                  and q["headers"].get("x-github-api-version") and q["headers"].get("user-agent")
                  for q in reqs), f"each request as GitHub wants it: {reqs[0]['headers'] if reqs else None}")
        await d.wait_for(lambda: len(d.results.get("repos") or []) == 130, "D's repository list follows live")

        def cached():
            return {x["githubRepoId"]: x for x in d.results.get("repos") or []}

        def expected(api):
            row = {"githubRepoId": str(api["id"]), "name": api["name"], "fullName": api["full_name"],
                   "defaultBranch": api["default_branch"], "userId": user_d}
            if api["description"] is not None:
                row["description"] = api["description"]
            return row

        def matches(api_list):
            rows = cached()
            wrong = [a["name"] for a in api_list
                     if {k: rows.get(str(a["id"]), {}).get(k) for k in expected(a)} != expected(a)
                     or ("description" not in expected(a) and "description" in rows.get(str(a["id"]), {}))]
            return len(rows) == len(api_list) and not wrong, wrong

        good, wrong = matches(gh.repos["dora"])
        check(good, f"every row is GitHub's repository in the seed's shape (wrong: {wrong[:5]})")
        row = cached().get(str(5_000_000 + 7)) or {}
        check(row.get("fullName") == "dora/repo-007", f"private repositories come with the token: {row}")
        check(sorted(x["_id"] for x in d.results.get("repos") or []) == sorted(first_ids),
              "the action returns the cached rows' ids")

        # ---- GitHub changes; a second sync follows --------------------------
        repos = gh.repos["dora"]
        repos[:] = [x for x in repos if x["name"] != "repo-005"]
        renamed = next(x for x in repos if x["name"] == "repo-010")
        renamed.update(name="renamed", full_name="dora/renamed", description="Now renamed", default_branch="trunk")
        repos.append(api_repo("dora", 999, description=None))
        before = {x["githubRepoId"]: x["_id"] for x in d.results.get("repos") or []}
        n0 = len(gh.seen())
        r = await d.call("action", "repositories:sync", {"githubToken": "gho_dora"})
        check(ok(r) and len(val(r) or []) == 130, f"the second sync: {str(r)[:200]}")
        check(len(gh.seen()) - n0 == 2, "two pages again")
        await d.wait_for(lambda: str(5_000_999) in cached() and str(5_000_005) not in cached()
                         and (cached().get(str(5_000_010)) or {}).get("name") == "renamed",
                         "the list follows: repo-005 gone, repo-999 new, repo-010 renamed")
        good, wrong = matches(repos)
        check(good, f"the cache is GitHub's list again (wrong: {wrong[:5]})")
        check(all(before.get(k) == x["_id"] for k, x in cached().items() if k != str(5_000_999)),
              "repositories still on GitHub keep their rows (and ids)")

        # ---- without a token: the public listing, nothing dropped ------------
        n0 = len(gh.seen())
        r = await d.call("action", "repositories:sync", {})
        public = [x for x in repos if not x["private"]]
        check(ok(r) and len(val(r) or []) == len(public), f"the public sync: {str(r)[:200]}")
        reqs = gh.seen()[n0:]
        check([q["path"] for q in reqs] == ["/users/dora/repos"] * 2
              and all("authorization" not in q["headers"] for q in reqs),
              f"GET /users/dora/repos without a token: {[(q['path'], q['query']) for q in reqs]}")
        r = await d.call("query", "repositories:list")
        check(ok(r) and len(val(r) or []) == 130,
              f"the private repositories stay (the public list cannot see them): {len(val(r) or [])}")

        # ---- failures leave the cache as it was -------------------------------
        r = await d.call("action", "repositories:sync", {"githubToken": "gho_wrong"})
        check(app_code(r) == "GITHUB_UNAUTHORIZED" and "Bad credentials" in r.get("message", ""),
              f"a token GitHub refuses: {r}")
        check("gho_wrong" not in json.dumps(r), "the error does not echo the token")
        gh.next_base = "http://127.0.0.1:1"
        n0 = len(gh.seen())
        r = await d.call("action", "repositories:sync", {"githubToken": "gho_dora"})
        gh.next_base = None
        check(app_code(r) == "GITHUB_ERROR" and len(gh.seen()) - n0 == 1,
              f"a Link to another server is not followed with the token: {r}")
        admin(server, "mutation", "settings:set", {"key": "githubApiUrl", "value": "http://127.0.0.1:1"})
        r = await d.call("action", "repositories:sync", {"githubToken": "gho_dora"})
        check(app_code(r) == "GITHUB_UNREACHABLE", f"GitHub down: {r}")
        admin(server, "mutation", "settings:set", {"key": "githubApiUrl", "value": gh.base})
        r = await d.call("query", "repositories:list")
        check(ok(r) and len(val(r) or []) == 130, "no failed sync changed the cache")
        check(not d.errors and not anon.errors, f"protocol errors: {d.errors[:3]} {anon.errors[:3]}")


# ---- the worker's callback route ---------------------------------------------

def post_callback(server, body, headers=None, method="POST"):
    """One request of the worker to POST /http/jobs/callback: (status, JSON, headers)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(server.url("/http/jobs/callback"), data=data if method == "POST" else None,
                                 method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null"), r.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"null"), e.headers
        except ValueError:
            return e.code, raw.decode(errors="replace"), e.headers


async def callback_route(server, issuer):
    tok_d = issuer.token("4242", preferred_username="dora")
    loop = asyncio.get_running_loop()

    async def post(body, headers=None, method="POST"):
        return await loop.run_in_executor(None, post_callback, server, body, headers, method)

    async with server.ws() as wd:
        d = Recorder(wd, "D")
        await d.request({"type": "auth", "token": tok_d})
        repo = ((await d.call("query", "repositories:list")).get("value") or [{}])[0].get("_id")
        r = await d.call("mutation", "jobs:create", {"repositoryId": repo})
        job, token = (val(r) or {}).get("jobId"), (val(r) or {}).get("callbackToken", "")
        check(ok(r) and job and token, f"D starts a job: {r}")
        r = await d.call("mutation", "jobs:create", {"repositoryId": repo})
        other_job, other_token = (val(r) or {}).get("jobId"), (val(r) or {}).get("callbackToken", "")
        await d.sub("job", "jobs:get", {"jobId": job})
        await d.sub("log", "messages:listForJob", {"jobId": job})

        # Refused: no token, a wrong one, and each leaves the job as it was.
        st, rep, hdrs = await post({"jobId": job, "status": "running"})
        check(st == 401 and rep.get("error") == "MISSING_TOKEN" and "Bearer" in (hdrs.get("WWW-Authenticate") or ""),
              f"no token: 401 with WWW-Authenticate: {st} {rep}")
        st, rep, _ = await post({"jobId": job, "status": "running"}, {"X-Callback-Token": ""})
        check(st == 401, f"an empty X-Callback-Token is no token: {st} {rep}")
        st, rep, _ = await post({"jobId": job, "status": "running"}, {"Authorization": "Basic " + token})
        check(st == 401, f"a token that is not a bearer token is none: {st} {rep}")
        near = token[:-1] + ("A" if token[-1] != "A" else "B")
        for what, headers in (("a wrong token", {"X-Callback-Token": "x" * len(token)}),
                              ("a token differing in its last character", {"X-Callback-Token": near}),
                              ("a prefix of the token", {"X-Callback-Token": token[:-1]}),
                              ("another job's token", {"X-Callback-Token": other_token}),
                              ("a wrong bearer token", {"Authorization": "Bearer " + near})):
            st, rep, _ = await post({"jobId": job, "status": "running"}, headers)
            check(st == 403 and rep.get("error") == "INVALID_TOKEN", f"{what}: 403: {st} {rep}")
            check(token not in json.dumps(rep) and other_token not in json.dumps(rep), f"{what}: no token echoed")
            st, rep, _ = await post({"jobId": job, "message": "spoofed"}, headers)
            check(st == 403, f"{what}: no log message either: {st} {rep}")
        r = await d.call("query", "jobs:get", {"jobId": job})
        check(ok(r) and val(r).get("status") == "pending", f"the refused callbacks changed nothing: {r}")
        r = await d.call("query", "messages:listForJob", {"jobId": job})
        check(ok(r) and val(r) == [], f"and logged nothing: {r}")

        # The right token, in either place, drives the job; the page follows live.
        st, rep, _ = await post({"jobId": job, "status": "running"}, {"X-Callback-Token": token})
        check(st == 200 and rep == {"ok": True, "status": "running"}, f"running, by X-Callback-Token: {st} {rep}")
        await d.wait_for(lambda: (d.results.get("job") or {}).get("status") == "running", "jobs:get shows running")
        st, rep, _ = await post({"jobId": job, "message": "Cloning dora/repo-000"}, {"Authorization": "Bearer " + token})
        check(st == 200 and rep.get("ok") is True and isinstance(rep.get("messageId"), str),
              f"a log message, by Authorization: Bearer: {st} {rep}")
        st, rep, _ = await post({"jobId": job, "message": "read_file README.md", "type": "tool"},
                                {"X-Callback-Token": token})
        check(st == 200, f"a tool message: {st} {rep}")
        await d.wait_for(lambda: [(m["type"], m["content"]) for m in d.results.get("log") or []] ==
                         [("log", "Cloning dora/repo-000"), ("tool", "read_file README.md")],
                         "the log follows the callbacks")
        st, rep, _ = await post({"jobId": job, "status": "pending"}, {"X-Callback-Token": token})
        check(st == 409 and rep.get("error") == "INVALID_TRANSITION", f"running -> pending: 409: {st} {rep}")
        for what, body in (("a body that is not JSON", b"status=running"),
                           ("no jobId", {"status": "running"}),
                           ("an unknown status", {"jobId": job, "status": "done"}),
                           ("a jobId of another table", {"jobId": repo, "status": "completed"})):
            st, rep, _ = await post(body, {"X-Callback-Token": token})
            check(st == 400 and rep.get("error") == "BAD_REQUEST", f"{what}: 400: {st} {rep}")
        st, rep, _ = await post({"jobId": job, "status": "completed", "message": "Docs written"},
                                {"Authorization": "Bearer " + token})
        check(st == 200 and rep == {"ok": True, "status": "completed"}, f"completed: {st} {rep}")
        await d.wait_for(lambda: (d.results.get("job") or {}).get("status") == "completed", "jobs:get shows completed")
        await d.wait_for(lambda: len(d.results.get("log") or []) == 3, "the completion's message is logged")
        st, rep, _ = await post({"jobId": job, "message": "late"}, {"X-Callback-Token": token})
        check(st == 409 and rep.get("error") == "JOB_FINISHED", f"a finished job's log is closed: {st} {rep}")
        st, rep, _ = await post({"jobId": job}, {"X-Callback-Token": token}, method="GET")
        check(st == 405, f"GET on the callback route: {st}")

        # A job that no longer exists: the same answer as a wrong token.
        st, rep = await loop.run_in_executor(None, http, server, "mutation",
                                             {"ops": [{"op": "delete", "id": other_job}]}, server.key)
        check(st == 200, f"the admin deletes the other job: {st} {rep}")
        st, rep, _ = await post({"jobId": other_job, "status": "running"}, {"X-Callback-Token": other_token})
        check(st == 403 and rep.get("error") == "INVALID_TOKEN", f"a deleted job: 403, as a wrong token: {st} {rep}")
        check(not d.errors, f"D: protocol errors {d.errors[:3]}")


def main():
    herald, root = sys.argv[1], sys.argv[2]
    app = os.path.join(root, "examples", "fondation")
    tmp = tempfile.mkdtemp(prefix="herald-fondation-")
    servers = []
    try:
        # The app folder as shipped loads, with its auth provider.
        plain = Server(herald, app, os.path.join(tmp, "data0"))
        servers.append(plain)
        check("1 auth providers" in plain.output(), f"the shipped app has one auth provider: {plain.output()}")
        check("18 functions loaded" in plain.output(), f"18 functions loaded: {plain.output()}")
        check(plain.stop() == 0, "the first server stops cleanly")

        issuer = Issuer(ISSUER, AUDIENCE)
        test_app = app_with_issuers(app, [issuer], os.path.join(tmp, "app"))
        github = FakeGitHub()
        threading.Thread(target=github.serve_forever, daemon=True).start()
        server = Server(herald, test_app, os.path.join(tmp, "data"), extra=["--allow-fetch", "127.0.0.1"])
        servers.append(server)
        asyncio.run(scenario(server, issuer))
        asyncio.run(github_sync(server, issuer, github))
        asyncio.run(callback_route(server, issuer))
        github.shutdown()
        code = server.stop()
        check(code == 0, f"server stops cleanly on SIGTERM (exit {code})")
    except Exception as e:  # the report says what broke; the checks above say what else
        failures.append(repr(e))
        print("FAIL: exception", repr(e), flush=True)
        import traceback
        traceback.print_exc()
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
        out = "".join(s.output() for s in servers)
        check("ERROR: AddressSanitizer" not in out and "runtime error:" not in out,
              "no sanitizer report in the server output")
        if failures:
            print(out[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(finish("test_fondation"))


if __name__ == "__main__":
    main()
