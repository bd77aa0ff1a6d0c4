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

Run as: /usr/bin/python3 test_fondation.py <herald> <source root>
"""
import asyncio
import json
import os
import shutil
import sys
import tempfile

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
        r = await a.call("mutation", "repositories:sync", {"repositories": [REPO_1, REPO_2]})
        check(ok(r) and isinstance(r.get("value"), list) and len(val(r) or []) == 2,
              f"A syncs two repositories: {r}")
        repo1, repo2 = (r.get("value") or [None, None])[:2]
        changed = dict(REPO_1, description="Now with docs", defaultBranch="trunk")
        r = await a.call("mutation", "repositories:sync", {"repositories": [changed, REPO_2]})
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
        r = await b.call("mutation", "repositories:sync", {"repositories": [REPO_1]})
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
                      ("mutation", "repositories:sync", {"repositories": [REPO_3]}),
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
                ("mutation", "repositories:sync",
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
        r = await a.call("mutation", "repositories:sync", {"repositories": [REPO_3]})
        repo3 = (r.get("value") or [None])[0]
        check(ok(r) and repo3, "a third repository")
        r = await a.call("mutation", "repositories:remove", {"repositoryId": repo3})
        check(ok(r), f"the owner removes a repository: {r}")
        r = await a.call("mutation", "repositories:sync", {"repositories": [REPO_3, REPO_2], "prune": True})
        repo3b = (r.get("value") or [None])[0]
        r = await a.call("query", "repositories:list")
        ids = sorted(x["_id"] for x in r.get("value") or [])
        check(ok(r) and ids == sorted([repo1, repo2, repo3b]) and repo3b != repo3,
              f"prune keeps the repository with an active job: {r}")
        r = await a.call("mutation", "repositories:sync", {"repositories": [REPO_2], "prune": True})
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
        check("15 functions loaded" in plain.output(), f"15 functions loaded: {plain.output()}")
        check(plain.stop() == 0, "the first server stops cleanly")

        issuer = Issuer(ISSUER, AUDIENCE)
        test_app = app_with_issuers(app, [issuer], os.path.join(tmp, "app"))
        server = Server(herald, test_app, os.path.join(tmp, "data"))
        servers.append(server)
        asyncio.run(scenario(server, issuer))
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
