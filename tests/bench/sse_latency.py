#!/usr/bin/env python3
"""sse_latency.py -- how long after a worker commits does an SSE client see it.

Usage: sse_latency.py URL TOKEN JOBS OUT TIMEOUT_S READY_FILE

Opens URL (the gateway's GET /api/events) with the bearer TOKEN, creates
READY_FILE once the stream answered 200, then, for each `event: job` whose job
is `completed` and not seen before, writes to OUT the delay in milliseconds
between the job's `completed_at` (set by the worker's transaction; same host,
same clock) and the moment the event's data line was read. Stops after JOBS
such events or TIMEOUT_S seconds (exit 1 then).
"""
import datetime
import json
import sys
import time
import urllib.request


def main():
    url, token, jobs, out, timeout, ready = sys.argv[1:7]
    jobs, deadline = int(jobs), time.time() + float(timeout)
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}",
                                               "Accept": "text/event-stream"})
    resp = urllib.request.urlopen(req, timeout=float(timeout))
    if resp.status != 200:
        sys.exit(f"sse_latency.py: HTTP {resp.status}")
    open(ready, "w").close()
    seen = set()
    delays = []
    event = None
    while len(delays) < jobs:
        if time.time() > deadline:
            sys.exit(f"sse_latency.py: {len(delays)} of {jobs} completions after {timeout} s")
        line = resp.readline()
        now = time.time()
        if not line:
            sys.exit("sse_latency.py: stream closed")
        line = line.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "job":
            job = json.loads(line[5:])
            if job.get("status") == "completed" and job.get("completed_at") and job["id"] not in seen:
                seen.add(job["id"])
                done = datetime.datetime.fromisoformat(job["completed_at"]).timestamp()
                delays.append((now - done) * 1000.0)
        elif line == "":
            event = None
    with open(out, "w", encoding="utf-8") as f:
        for d in delays:
            f.write(f"{d:.3f}\n")


if __name__ == "__main__":
    main()
