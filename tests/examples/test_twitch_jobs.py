"""The video-processing jobs app (examples/twitch-jobs, seed 002) end to
end: the Python backend's calls over HTTP with the admin key exactly as the
seed describes them (updateJobProgress, updateJobError, completeJob,
getJobById), a browser watching live over WebSocket, and what is refused.

Run as: /usr/bin/python3 test_twitch_jobs.py <herald> <source root>
"""
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile

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


def main():
    work = tempfile.mkdtemp(prefix="herald-jobs-app-")
    issuer = Issuer("https://jobs.example.test/", "twitch-jobs")
    app = app_with_issuers(APP, [issuer], work)
    data = os.path.join(work, "data")
    out = subprocess.run([HERALD, "--data", data, "--app", app, "import", "--table", "videos",
                          os.path.join(APP, "seed", "videos.jsonl")], capture_output=True, text=True)
    check(out.returncode == 0, "import: " + out.stderr)
    srv = Server(HERALD, app, data)
    try:
        asyncio.run(flows(srv, issuer.token("viewer-1", name="Viewer")))
    finally:
        rc = srv.stop()
        check(rc == 0, f"server exit code {rc}")
        check("AddressSanitizer" not in srv.output() and "runtime error:" not in srv.output(),
              "sanitizers quiet")
    shutil.rmtree(work, ignore_errors=True)
    return finish("test_twitch_jobs")


if __name__ == "__main__":
    sys.exit(main())
