"""The video-processing jobs app (examples/twitch-jobs, seed 002) end to
end: the Python backend's calls over HTTP with the admin key exactly as the
seed describes them (updateJobProgress, updateJobError, completeJob,
getJobById), a browser watching live over WebSocket, and what is refused;
then the jobs' webhooks: a job created with a callbackUrl is POSTed its
document once when it completes or fails (a receiver on loopback, herald
started with --allow-fetch 127.0.0.1), a receiver that fails the first
time gets the retry 1 s later and nothing after it, and every attempt is
listed by videos:callbackAttempts.

Run as: /usr/bin/python3 test_twitch_jobs.py <herald> <source root>
"""
import asyncio
import http.server as httpserver
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from herald_client import Client  # noqa: E402
from herald_testlib import Issuer, Server, app_with_issuers, call, check, finish  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]
APP = os.path.join(ROOT, "examples", "twitch-jobs")
STAGES = ["Queued", "Downloading", "Fetching chat", "Transcribing", "Analyzing",
          "Finding highlights"]
ERROR_TYPES = ["network_error", "invalid_video_url", "video_too_large", "processing_timeout",
               "insufficient_resources", "external_service_error", "unknown_error"]


async def flows(srv, user_token):
    key = srv.key
    async with srv.ws() as ws:
        browser = Client(ws)
        await browser.request({"type": "auth", "token": user_token})
        for sid, path, args in [("job", "videos:getJobById", {"jobId": "job-0001"}),
                                ("all", "videos:list", {}),
                                ("failed", "videos:list", {"status": "Failed"})]:
            browser.pending_subs.add(sid)
            r = await browser.request({"type": "sub", "id": sid, "path": path, "args": args})
            check(r["type"] == "result", f"subscribe {path}: {r}")
        check(browser.results["job"]["twitchId"] == "1900000000", "getJobById finds the seed job")
        seed_failed = {v["twitchId"] for v in browser.results["failed"]}
        check(len(browser.results["all"]) == 8 and
              all(v["status"] == "Failed" for v in browser.results["failed"]),
              "dashboard lists every seed video, and the failed ones")
        progress_seen = []
        browser.on_change = lambda sid, value, version: (
            sid == "job" and value and progress_seen.append(value.get("progressPercentage")))

        # The backend walks the job through its stages (seed: status values).
        for i, stage in enumerate(STAGES[1:], start=1):
            status, reply = call(srv, "mutation", "videos:updateJobProgress", {
                "twitchId": "1900000000", "jobId": "job-0001", "progressPercentage": i * 15,
                "currentStage": stage, "estimatedCompletionSeconds": 300 - i * 50,
                "stageProgress": {}}, token=key)
            check(status == 200 and reply["status"] == "success" and reply["value"] is None and
                  reply["version"] > 0,
                  f"updateJobProgress {stage}: {status} {reply}")
        while browser.results["job"].get("progressPercentage") != 75:
            await browser.pump(10)
        check(progress_seen == sorted(progress_seen), f"progress never goes back: {progress_seen}")
        job = browser.results["job"]
        check(job["currentStage"] == "Finding highlights" and
              job["estimatedCompletionSeconds"] == 50 and job["stageProgress"] == {},
              f"live job after progress: {job}")
        # A field the backend leaves out is removed, as `undefined` is in a Convex patch.
        call(srv, "mutation", "videos:updateJobProgress",
             {"twitchId": "1900000000", "jobId": "job-0001", "progressPercentage": 80}, token=key)
        while browser.results["job"].get("progressPercentage") != 80:
            await browser.pump(10)
        check("currentStage" not in browser.results["job"] and
              "estimatedCompletionSeconds" not in browser.results["job"],
              f"omitted fields removed: {browser.results['job']}")

        # completeJob: status, progress, stage and ETA as the seed sets them.
        status, reply = call(srv, "mutation", "videos:completeJob",
                             {"twitchId": "1900000000", "jobId": "job-0001", "urls": {}}, token=key)
        check(status == 200, f"completeJob: {reply}")
        while browser.results["job"].get("status") != "Completed":
            await browser.pump(10)
        job = browser.results["job"]
        check(job["progressPercentage"] == 100 and job["currentStage"] == "Completed" and
              job["estimatedCompletionSeconds"] == 0 and job["processingCompletedAt"] > 0 and
              job["updatedAt"] == job["processingCompletedAt"], f"completed job: {job}")

        # updateJobError for every listed error type; the Failed list follows live.
        videos = [v for v in browser.results["all"]
                  if v["twitchId"] != "1900000000" and v["twitchId"] not in seed_failed]
        for video, error_type in zip(videos, ERROR_TYPES):
            status, reply = call(srv, "mutation", "videos:updateJobError", {
                "twitchId": video["twitchId"], "jobId": video["jobId"], "errorType": error_type,
                "errorMessage": f"{error_type} happened", "isRetryable": error_type != "video_too_large"},
                token=key)
            check(status == 200, f"updateJobError {error_type}: {reply}")
        new = len(list(zip(videos, ERROR_TYPES)))
        while len(browser.results["failed"]) != new + len(seed_failed):
            await browser.pump(10)
        failed = {v["errorType"]: v for v in browser.results["failed"]
                  if v["twitchId"] not in seed_failed}
        check(set(failed) == set(ERROR_TYPES[:new]) and
              all(v["status"] == "Failed" and v["errorMessage"].startswith(v["errorType"])
                  for v in failed.values()), f"failed jobs: {failed}")
        check(failed["video_too_large"]["isRetryable"] is False, "isRetryable kept")

        # The dashboard's retry: only retryable failures go back to the queue.
        r = await browser.request({"type": "mutate", "path": "videos:retry",
                                   "args": {"twitchId": failed["network_error"]["twitchId"]}})
        check(r["type"] == "ack", f"retry: {r}")
        check(all(v["twitchId"] != failed["network_error"]["twitchId"]
                  for v in browser.results["failed"]),
              "retried job left the Failed list before the ack")
        r = await browser.request({"type": "mutate", "path": "videos:retry",
                                   "args": {"twitchId": failed["video_too_large"]["twitchId"]}})
        check(r["type"] == "error" and r["data"]["code"] == "NOT_RETRYABLE", f"not retryable: {r}")
        r = await browser.request({"type": "mutate", "path": "videos:create",
                                   "args": {"twitchId": "2000000001", "title": "New stream",
                                            "jobId": "job-new"}})
        check(r["type"] == "ack" and isinstance(r["value"], str), f"create: {r}")
        check(any(v["twitchId"] == "2000000001" and v["status"] == "Queued"
                  for v in browser.results["all"]), "new job on the dashboard")

        # Refused: progress from a browser, unknown videos, wrong argument types.
        r = await browser.request({"type": "mutate", "path": "videos:updateJobProgress",
                                   "args": {"twitchId": "2000000001", "jobId": "job-new",
                                            "progressPercentage": 99}})
        check(r["type"] == "error" and r["data"]["code"] == "FORBIDDEN",
              f"a browser cannot fake progress: {r}")
        status, reply = call(srv, "mutation", "videos:updateJobProgress",
                             {"twitchId": "0", "jobId": "x"}, token=key)
        check(status == 400 and reply["code"] == "FunctionError" and
              "Video not found: 0" in reply["errorMessage"], f"unknown video: {reply}")
        status, reply = call(srv, "mutation", "videos:updateJobError",
                             {"twitchId": "1900000000", "jobId": "job-0001", "errorType": "x",
                              "errorMessage": "m"}, token=key)
        check(status == 400 and reply["code"] == "ValidationError" and
              "isRetryable" in reply["errorMessage"], f"missing isRetryable: {reply}")
        status, reply = call(srv, "mutation", "videos:completeJob",
                             {"twitchId": "1900000000", "jobId": "job-0001",
                              "urls": {"chatUrl": "https://x"}}, token=key)
        check(status == 400 and reply["code"] == "ValidationError",
              f"urls is v.object({{}}) as written: {reply}")
        status, reply = call(srv, "query", "videos:getJobById", {"jobId": "no-such-job"})
        check(status == 200 and reply["value"] is None, "getJobById of an unknown job is null")
        status, reply = call(srv, "mutation", "videos:create", {"twitchId": "3", "title": "t"})
        check(status == 400 and reply.get("errorData", {}).get("code") == "UNAUTHENTICATED",
              f"anonymous create: {reply}")


class Receiver(httpserver.ThreadingHTTPServer):
    """The backend's webhook receiver on loopback: keeps every POST (with
    the time it came), and answers 500 to the first `fail_first` POSTs of
    a path, 200 to the others."""
    daemon_threads = True

    def __init__(self):
        self.posts = []
        self.fail_first = {"/flaky": 1}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ReceiverHandler)

    def to(self, path):
        with self.lock:
            return [p for p in self.posts if p["path"] == path]


class ReceiverHandler(httpserver.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with srv.lock:
            seen = len([p for p in srv.posts if p["path"] == self.path])
            srv.posts.append({"path": self.path, "at": time.monotonic(), "headers": {k.lower(): v for k, v in self.headers.items()},
                              "body": json.loads(body or b"null")})
            failing = seen < srv.fail_first.get(self.path, 0)
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def wait_until(cond, seconds=10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def attempts(srv, job_id):
    status, reply = call(srv, "query", "videos:callbackAttempts", {"jobId": job_id}, token=srv.key)
    return reply.get("value") if status == 200 else reply


def webhooks(srv, receiver, base):
    key = srv.key
    before = len(receiver.posts)

    def create(twitch_id, job_id, path):
        status, reply = call(srv, "mutation", "videos:create",
                             {"twitchId": twitch_id, "title": "Hooked " + twitch_id, "jobId": job_id,
                              "callbackUrl": base + path}, token=key)
        check(status == 200, f"create {twitch_id} with a callbackUrl: {status} {reply}")

    def job(job_id):
        return call(srv, "query", "videos:getJobById", {"jobId": job_id})[1].get("value")

    # A completed job: exactly one POST, the job's document as getJobById shows it.
    create("2100000001", "job-hook-1", "/ok")
    call(srv, "mutation", "videos:updateJobProgress",
         {"twitchId": "2100000001", "jobId": "job-hook-1", "progressPercentage": 60,
          "currentStage": "Analyzing"}, token=key)
    check(receiver.to("/ok") == [], "no POST while the job is in progress")
    status, reply = call(srv, "mutation", "videos:completeJob",
                         {"twitchId": "2100000001", "jobId": "job-hook-1", "urls": {}}, token=key)
    check(status == 200, f"completeJob of a job with a callbackUrl: {reply}")
    check(wait_until(lambda: len(receiver.to("/ok")) >= 1), "the webhook arrives")
    time.sleep(1.5)  # past the first retry's delay: no second POST may come
    posts = receiver.to("/ok")
    check(len(posts) == 1, f"exactly one POST for a completed job: {len(posts)}")
    done = job("job-hook-1")
    if posts:
        post = posts[0]
        check(post["body"] == done, f"the POST carries the job's document: {post['body']} vs {done}")
        check(post["body"].get("status") == "Completed" and post["body"].get("progressPercentage") == 100
              and post["body"].get("twitchId") == "2100000001", f"the completed job's data: {post['body']}")
        check(post["headers"].get("content-type") == "application/json", f"sent as JSON: {post['headers']}")
        check(post["headers"].get("x-callback-attempt") == "1" and post["headers"].get("idempotency-key"),
              f"attempt number and idempotency key: {post['headers']}")
    a = attempts(srv, "job-hook-1")
    check(isinstance(a, list) and [(x["attempt"], x["state"]) for x in a] == [(1, "success")],
          f"one attempt, a success: {a}")

    # A receiver that fails once: the retry comes 1 s later, then nothing more.
    create("2100000002", "job-hook-2", "/flaky")
    call(srv, "mutation", "videos:completeJob",
         {"twitchId": "2100000002", "jobId": "job-hook-2", "urls": {}}, token=key)
    check(wait_until(lambda: len(receiver.to("/flaky")) >= 2, 15), "the retry arrives")
    time.sleep(6)  # past the next retry's delay (5 s): nothing more may come
    posts = receiver.to("/flaky")
    check(len(posts) == 2, f"two POSTs: the failed one and its retry: {len(posts)}")
    if len(posts) == 2:
        check(posts[1]["at"] - posts[0]["at"] >= 0.9, f"the retry waits 1 s: {posts[1]['at'] - posts[0]['at']:.2f}")
        check(posts[0]["body"] == posts[1]["body"] == job("job-hook-2"), "both carry the same document")
        check([p["headers"].get("x-callback-attempt") for p in posts] == ["1", "2"], "attempts 1 and 2")
        check(posts[0]["headers"].get("idempotency-key") == posts[1]["headers"].get("idempotency-key"),
              "the retry has the first attempt's idempotency key")
    a = attempts(srv, "job-hook-2")
    check(isinstance(a, list) and [(x["attempt"], x["state"]) for x in a] == [(1, "failed"), (2, "success")],
          f"attempt 1 failed, attempt 2 succeeded: {a}")
    if isinstance(a, list) and a:
        check("answered 500" in a[0].get("error", "") and "attempt 2 in 1 s" in a[0].get("error", ""),
              f"the failed attempt says why and what comes next: {a[0]}")

    # A failed job notifies too; a job without a callbackUrl never does.
    create("2100000003", "job-hook-3", "/failed")
    call(srv, "mutation", "videos:updateJobError",
         {"twitchId": "2100000003", "jobId": "job-hook-3", "errorType": "network_error",
          "errorMessage": "lost the stream", "isRetryable": True}, token=key)
    check(wait_until(lambda: len(receiver.to("/failed")) >= 1), "the failed job's webhook arrives")
    posts = receiver.to("/failed")
    check(len(posts) == 1 and posts[0]["body"].get("status") == "Failed"
          and posts[0]["body"].get("errorType") == "network_error", f"the failure, posted: {posts}")
    paths = {p["path"] for p in receiver.posts[before:]}
    check(paths == {"/ok", "/flaky", "/failed"}, f"only jobs with a callbackUrl were posted: {paths}")

    # A job whose completion is refused sends nothing.
    status, reply = call(srv, "mutation", "videos:completeJob",
                         {"twitchId": "2100000001", "jobId": "job-hook-1", "urls": {"x": 1}}, token=key)
    check(status == 400, f"a refused completeJob: {reply}")
    time.sleep(0.5)
    check(len(receiver.to("/ok")) == 1, "a rolled-back completion schedules no POST")

    # Refused: a callbackUrl that is no web address; the delivery action from outside.
    status, reply = call(srv, "mutation", "videos:create",
                         {"twitchId": "2100000009", "title": "t", "callbackUrl": "file:///etc/passwd"}, token=key)
    check(status == 400 and reply.get("errorData", {}).get("code") == "INVALID_CALLBACK_URL",
          f"a file: callbackUrl: {reply}")
    status, reply = call(srv, "action", "videos:deliverCallback",
                         {"url": base + "/ok", "job": {}, "attempt": 1})
    check(status == 404 and reply.get("code") == "NotFound",
          f"no client can run the delivery (it would make Herald POST anywhere): {status} {reply}")
    status, reply = call(srv, "query", "videos:callbackAttempts", {"jobId": "job-hook-1"})
    check(status == 404, f"the attempts are for the admin key only: {status} {reply}")


def main():
    work = tempfile.mkdtemp(prefix="herald-jobs-app-")
    issuer = Issuer("https://jobs.example.test/", "twitch-jobs")
    app = app_with_issuers(APP, [issuer], work)
    data = os.path.join(work, "data")
    out = subprocess.run([HERALD, "--data", data, "--app", app, "import", "--table", "videos",
                          os.path.join(APP, "seed", "videos.jsonl")], capture_output=True, text=True)
    check(out.returncode == 0, "import: " + out.stderr)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    srv = Server(HERALD, app, data, extra=["--allow-fetch", "127.0.0.1"])
    try:
        asyncio.run(flows(srv, issuer.token("viewer-1", name="Viewer")))
        webhooks(srv, receiver, f"http://127.0.0.1:{receiver.server_address[1]}")
        check(receiver.to("/") == [], "no stray POST")
    finally:
        receiver.shutdown()
        rc = srv.stop()
        check(rc == 0, f"server exit code {rc}")
        check("AddressSanitizer" not in srv.output() and "runtime error:" not in srv.output(),
              "sanitizers quiet")
    shutil.rmtree(work, ignore_errors=True)
    return finish("test_twitch_jobs")


if __name__ == "__main__":
    sys.exit(main())
