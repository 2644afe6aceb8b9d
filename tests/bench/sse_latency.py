#!/usr/bin/env python3
"""sse_latency.py -- when does an SSE client see a job's completion.

Usage: sse_latency.py URL TOKEN JOBS OUT TIMEOUT_S READY_FILE

Opens URL (the gateway's GET /api/events) with the bearer TOKEN, creates
READY_FILE once the stream answered 200, then, for each `event: job` whose job
is `completed` and not seen before, writes to OUT one tab-separated line:
the job id, the event's id (the row's seq), and the moment (Unix epoch
seconds, this host's clock = the database's) the event's data line was read.
latency.sh turns them into delays from the database's own timestamps of the
row. Stops after JOBS such events or TIMEOUT_S seconds (exit 1 then).
"""
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
    got = []
    event = event_id = None
    while len(got) < jobs:
        if time.time() > deadline:
            sys.exit(f"sse_latency.py: {len(got)} of {jobs} completions after {timeout} s")
        line = resp.readline()
        now = time.time()
        if not line:
            sys.exit("sse_latency.py: stream closed")
        line = line.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:") and event == "job":
            job = json.loads(line[5:])
            if job.get("status") == "completed" and job["id"] not in seen:
                if event_id is None:
                    sys.exit(f"sse_latency.py: job event without an id: {line}")
                seen.add(job["id"])
                got.append((job["id"], event_id, now))
        elif line == "":
            event = event_id = None
    with open(out, "w", encoding="utf-8") as f:
        for job_id, seq, now in got:
            f.write(f"{job_id}\t{seq}\t{now:.6f}\n")


if __name__ == "__main__":
    main()
