#!/usr/bin/env python3
"""The web demo's worker: a stand-in for the apps' processing backends that
talks to Herald over plain HTTP with the admin key, using only Python's
standard library.

It does two jobs, one small step per tick:

* Jobs (examples/twitch-jobs): picks up Queued videos (videos:list
  {status: "Queued"}), walks each through the stages Downloading, Fetching
  chat, Transcribing, Analyzing and Finding highlights, pushing
  videos:updateJobProgress (percentage, stage, ETA) at every step, then
  videos:completeJob. The stage is also written to the video's `status`
  (a raw patch, the "existing status updates" the jobs app keeps), so the
  dashboard and the by_status index show where each job is. Jobs left
  half-way by a worker that stopped (and the seed's) are taken over once
  they have not moved for --stale-seconds.
  Failures, so that the dashboard has errors to show: a video whose title
  contains "fail" fails on its first attempt with a retryable error (its
  retry succeeds); one whose title contains "broken" fails with an error
  that is not retryable; --fail-rate fails that share of the others.
* Reels (examples/reels): finds feeds that are `pending` or `curating`
  (a raw query on feeds.by_status, allowed with the admin key), adds a
  placeholder reel (reels:addToFeed, status pending), flips it to `ready`
  with its video URL on the next tick (reels:update), and once a feed has
  --reels-per-feed reels, marks it `ready` (feeds:updateStatus). The feed
  page shows each reel arrive live.

    /usr/bin/python3 web-demo/worker.py --url http://localhost:3210 --key-file herald-data/admin.key

The admin key comes from --key, --key-file, or $HERALD_ADMIN_KEY. The worker
survives the server going away (it retries with backoff) and stops cleanly
on SIGTERM or Ctrl-C, or by itself with --once or --max-seconds.
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

# (stage, share of the whole job in percent, steps); the shares add up to 100.
STAGES = [
    ("Downloading", 20, 4),
    ("Fetching chat", 10, 2),
    ("Transcribing", 30, 5),
    ("Analyzing", 20, 4),
    ("Finding highlights", 20, 4),
]
STAGE_NAMES = {s[0] for s in STAGES}
TOTAL_STEPS = sum(s[2] for s in STAGES)

# The error types of the jobs app's seed, and whether a retry may help.
# (errorType, isRetryable, errorMessage, errorDetails)
ERRORS = [
    ("network_error", True, "Connection reset while downloading", "ECONNRESET after 412 MB from the video CDN"),
    ("processing_timeout", True, "Transcription took longer than 30 minutes", "whisper job exceeded its 1800 s budget"),
    ("external_service_error", True, "The speech-to-text service is unavailable",
     "POST /v1/transcribe answered 503 Service Unavailable three times"),
    ("insufficient_resources", True, "No GPU worker free for analysis", "queue 'gpu-analysis' full (8/8 busy)"),
    ("invalid_video_url", False, "The video is private or was deleted", "GET /videos/{id} answered 404 Not Found"),
    ("video_too_large", False, "The video is longer than 12 hours", "duration 13:04:51 exceeds the 12:00:00 limit"),
]
ERROR_BY_TYPE = {e[0]: e for e in ERRORS}

REEL_WORDS = [
    ("Sunrise", "first light over the ridge"), ("Close-up", "every detail, slowed down"),
    ("Street view", "what the locals do"), ("Top 3", "ranked by the community"),
    ("Behind the scenes", "how it is made"), ("Quick tip", "thirty seconds, one idea"),
    ("Time-lapse", "a whole day in a minute"), ("Myth or fact", "settled on camera"),
    ("Beginner's guide", "start here"), ("Deep dive", "the part nobody explains"),
    ("Challenge", "can it be done in one take?"), ("Fan favourite", "the most replayed"),
]


class Stopped(Exception):
    pass


class HeraldHTTP:
    """POST /api/query and /api/mutation with the admin key; waits and retries
    (with backoff) while the server is unreachable, so a restart of Herald
    only pauses the worker."""

    def __init__(self, url, key, stop, log):
        self.url = url.rstrip("/")
        self.key = key
        self.stop = stop
        self.log = log
        self.down = False
        self.deadline = None  # time.monotonic() after which calls give up (--max-seconds)

    def _post(self, endpoint, body):
        data = json.dumps(body).encode()
        backoff = 0.25
        while True:
            if self.stop.is_set() or (self.deadline and time.monotonic() >= self.deadline):
                raise Stopped()
            req = urllib.request.Request(
                self.url + endpoint, data=data, method="POST",
                headers={"Content-Type": "application/json", "Authorization": "Bearer " + self.key})
            try:
                with urllib.request.urlopen(req, timeout=15) as r:
                    reply = json.loads(r.read())
            except urllib.error.HTTPError as e:
                try:
                    reply = json.loads(e.read())
                except ValueError:
                    reply = {"status": "error", "code": "HTTP%d" % e.code, "errorMessage": str(e)}
                if e.code == 401:
                    raise SystemExit("herald refused the admin key: %s" % reply.get("errorMessage"))
                if e.code >= 500:
                    print("worker: server error %s, retrying in %.1fs" % (reply.get("errorMessage"), backoff),
                          file=sys.stderr, flush=True)
                    self._pause(backoff)
                    backoff = min(backoff * 2, 5)
                    continue
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
                if not self.down:
                    self.down = True
                    print("worker: herald unreachable at %s (%s); retrying with backoff"
                          % (self.url, getattr(e, "reason", e)), file=sys.stderr, flush=True)
                self._pause(backoff)
                backoff = min(backoff * 2, 5)
                continue
            if self.down:
                self.down = False
                print("worker: herald is back", file=sys.stderr, flush=True)
            if reply.get("status") != "success":
                raise CallError(reply)
            return reply.get("value")

    def _pause(self, seconds):
        if self.deadline:
            seconds = max(0.0, min(seconds, self.deadline - time.monotonic()))
        self.stop.wait(seconds)

    def query(self, path, args=None):
        return self._post("/api/query", {"path": path, "args": args or {}})

    def raw_query(self, query):
        return self._post("/api/query", {"query": query})

    def mutation(self, path, args):
        return self._post("/api/mutation", {"path": path, "args": args})

    def ops(self, ops):
        return self._post("/api/mutation", {"ops": ops})


class CallError(Exception):
    def __init__(self, reply):
        super().__init__("%s: %s" % (reply.get("code"), reply.get("errorMessage")))
        self.reply = reply


class Job:
    """One video being processed: where it is in STAGES."""

    def __init__(self, video, fail):
        self.twitch_id = video["twitchId"]
        self.job_id = video.get("jobId") or "job-" + video["twitchId"]
        self.title = video["title"]
        self.fail = fail  # None, or how it fails (Worker.failure_for)
        # A job taken over half-way resumes at the step its progress says.
        done = float(video.get("progressPercentage") or 0)
        self.step = 0
        while self.step < TOTAL_STEPS and percent_after(self.step + 1) <= done:
            self.step += 1
        self.step = max(self.step, first_step(video.get("status")))


def first_step(stage):
    """The number of steps before `stage` (0 for anything that is not a stage)."""
    before = 0
    for name, _share, steps in STAGES:
        if name == stage:
            return before
        before += steps
    return 0


def stage_of(step):
    """The stage the step-th step (0-based) belongs to."""
    for name, _share, steps in STAGES:
        if step < steps:
            return name
        step -= steps
    return STAGES[-1][0]


def percent_after(steps_done):
    """Overall progress in percent after `steps_done` steps."""
    pct = 0.0
    for _name, share, steps in STAGES:
        k = min(steps_done, steps)
        pct += share * k / steps
        steps_done -= k
        if steps_done <= 0:
            break
    return round(pct, 1)


class Worker:
    def __init__(self, http, opts, log):
        self.http = http
        self.opts = opts
        self.log = log
        self.rng = random.Random(opts.seed)
        self.jobs = {}  # twitchId -> Job

    # --- jobs -----------------------------------------------------------

    def pick_up_jobs(self):
        free = self.opts.concurrency - len(self.jobs)
        if free <= 0:
            return
        queued = self.http.query("videos:list", {"status": "Queued"})
        # videos:list is newest first; serve the oldest first.
        candidates = list(reversed(queued))
        if len(candidates) < free:
            now_ms = time.time() * 1000
            stale = [v for v in self.http.query("videos:list", {})
                     if v["status"] in STAGE_NAMES and v["twitchId"] not in self.jobs
                     and now_ms - float(v.get("updatedAt") or 0) > self.opts.stale_seconds * 1000]
            candidates += list(reversed(stale))
        for video in candidates:
            if free <= 0:
                break
            if video["twitchId"] in self.jobs:
                continue
            job = Job(video, self.failure_for(video))
            self.jobs[job.twitch_id] = job
            free -= 1
            started = {"status": stage_of(job.step), "jobId": job.job_id}
            if video["status"] == "Queued":
                started["processingStartedAt"] = time.time() * 1000
                started["progressPercentage"] = 0
            self.http.ops([{"op": "patch", "id": video["_id"], "value": started}])
            self.log("job %s (%s): %s at %s%%" % (job.job_id, job.title,
                     "started" if video["status"] == "Queued" else "taken over", percent_after(job.step)))

    def failure_for(self, video):
        """None, or how this attempt fails: (errorType, isRetryable, message, details, step)."""
        title = video["title"].lower()
        retries = int(video.get("retryCount") or 0)
        if "broken" in title:  # found out while downloading
            return ERROR_BY_TYPE["invalid_video_url"] + (2,)
        if "fail" in title and retries == 0:  # half-way through transcription
            return ERROR_BY_TYPE["external_service_error"] + (8,)
        if self.rng.random() < self.opts.fail_rate:
            return self.rng.choice(ERRORS) + (self.rng.randrange(1, TOTAL_STEPS),)
        return None

    def advance_jobs(self):
        for job in list(self.jobs.values()):
            try:
                self.advance(job)
            except CallError as e:
                # The video was deleted, or retried and changed under us: let it go.
                self.log("job %s: %s; dropped" % (job.job_id, e))
                self.jobs.pop(job.twitch_id, None)

    def advance(self, job):
        if job.fail and job.step >= job.fail[4]:
            error_type, retryable, message, details, _ = job.fail
            self.http.mutation("videos:updateJobError", {
                "twitchId": job.twitch_id, "jobId": job.job_id, "errorType": error_type,
                "errorMessage": message, "errorDetails": details, "isRetryable": retryable,
            })
            self.log("job %s: failed with %s (%s)" % (job.job_id, error_type,
                     "retryable" if retryable else "not retryable"))
            del self.jobs[job.twitch_id]
            return
        if job.step >= TOTAL_STEPS:
            self.http.mutation("videos:completeJob", {"twitchId": job.twitch_id, "jobId": job.job_id})
            self.log("job %s: completed" % job.job_id)
            del self.jobs[job.twitch_id]
            return
        stage = stage_of(job.step)  # the stage of the step about to be done
        if job.step > 0 and stage != stage_of(job.step - 1):
            video = self.http.query("videos:getJobById", {"jobId": job.job_id})
            if not video or video["status"] not in STAGE_NAMES:
                raise CallError({"code": "Changed", "errorMessage": "no longer in progress"})
            self.http.ops([{"op": "patch", "id": video["_id"], "value": {"status": stage}}])
        job.step += 1
        self.http.mutation("videos:updateJobProgress", {
            "twitchId": job.twitch_id, "jobId": job.job_id,
            "progressPercentage": percent_after(job.step), "currentStage": stage,
            "estimatedCompletionSeconds": round((TOTAL_STEPS - job.step + 1) * self.opts.step_seconds, 1),
        })

    # --- reels ----------------------------------------------------------

    def feed_reels(self):
        feeds = []
        for status in ("pending", "curating"):
            feeds += self.http.raw_query({"table": "feeds", "index": "by_status",
                                          "range": [{"eq": ["status", status]}], "take": 50})
        for feed in feeds:
            try:
                self.feed_step(feed)
            except CallError as e:
                self.log("feed %s: %s" % (feed["_id"], e))

    def feed_step(self, feed):
        reels = self.http.raw_query({"table": "reels", "index": "by_feed_position",
                                     "range": [{"eq": ["feedId", feed["_id"]]}], "take": 1000})
        waiting = [r for r in reels if r["status"] in ("pending", "processing")]
        if waiting:
            reel = waiting[0]
            n = int(reel["position"])
            self.http.mutation("reels:update", {
                "reelId": reel["_id"], "status": "ready",
                "videoUrl": "https://videos.demo.herald.invalid/%s/%d.mp4" % (feed["_id"], n),
            })
            return
        if len(reels) >= self.opts.reels_per_feed:
            self.http.mutation("feeds:updateStatus", {"feedId": feed["_id"], "status": "ready"})
            self.log("feed %s (%s): ready with %d reels" % (feed["_id"], feed["prompt"], len(reels)))
            return
        n = len(reels)
        word, caption = REEL_WORDS[(n + len(feed["prompt"])) % len(REEL_WORDS)]
        self.http.mutation("reels:addToFeed", {
            "feedId": feed["_id"],
            "sourceType": "generated" if n % 3 else "scraped",
            "status": "pending",
            "metadata": {
                "title": "%s: %s" % (word, feed["prompt"]),
                "caption": caption,
                "hue": self.rng.randrange(360),
                "durationSeconds": self.rng.randrange(8, 60),
                "creator": self.rng.choice(["@studio.nine", "@wanderlens", "@quickcuts", "@the.archive", "@slowmo.lab"]),
            },
        })

    # --- loop -----------------------------------------------------------

    def tick(self):
        self.pick_up_jobs()
        self.advance_jobs()
        self.feed_reels()


def main(argv=None):
    p = argparse.ArgumentParser(description="The Herald web demo's worker: job progress and reels over HTTP.")
    p.add_argument("--url", default=os.environ.get("HERALD_URL", "http://localhost:3210"),
                   help="Herald's address (default http://localhost:3210)")
    p.add_argument("--key", help="the admin key (or $HERALD_ADMIN_KEY)")
    p.add_argument("--key-file", help="a file holding the admin key")
    p.add_argument("--step-seconds", type=float, default=0.7, help="delay between progress pushes (default 0.7)")
    p.add_argument("--concurrency", type=int, default=3, help="jobs processed at once (default 3)")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of jobs that fail at random (default 0)")
    p.add_argument("--reels-per-feed", type=int, default=12, help="reels added to each new feed (default 12)")
    p.add_argument("--stale-seconds", type=float, default=15,
                   help="take over jobs in progress that have not moved for this long (default 15)")
    p.add_argument("--once", action="store_true", help="run one tick and stop")
    p.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    p.add_argument("--seed", type=int, help="random seed (reel colours, random failures)")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    opts = p.parse_args(argv)

    key = opts.key or os.environ.get("HERALD_ADMIN_KEY")
    if opts.key_file:
        with open(opts.key_file) as f:
            key = f.read().strip()
    if not key:
        p.error("give the admin key with --key, --key-file or $HERALD_ADMIN_KEY")

    stop = threading.Event()

    def on_signal(_sig, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def log(message):
        if not opts.quiet:
            print("worker: " + message, flush=True)

    http = HeraldHTTP(opts.url, key, stop, log)
    worker = Worker(http, opts, log)
    deadline = time.monotonic() + opts.max_seconds if opts.max_seconds else None
    http.deadline = deadline
    log("working for %s (step %.2fs)" % (opts.url, opts.step_seconds))
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                worker.tick()
            except CallError as e:
                print("worker: %s" % e, file=sys.stderr, flush=True)
            if opts.once or (deadline and time.monotonic() >= deadline):
                break
            stop.wait(max(0.0, opts.step_seconds - (time.monotonic() - started)))
    except Stopped:
        pass
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
