#!/usr/bin/env python3
"""gateway_kill.py -- 200 SSE clients survive a gateway kill -9 (driven by gateway_kill.sh).

Usage: gateway_kill.py setup|before|after, with the environment gateway_kill.sh sets:
  GK_PORT        the gateway's port (the same for the old and the new process)
  GK_TOKENS      file: one "user_id token job_id" line per user
  GK_STATE       file this script keeps its clients' last event ids in
  GK_ADMIN_URL   administrative libpq URL
  GK_STREAMS     streams per user (half on the user's job, half global)

Phase "setup" submits each user's job (GK_CSV). Phase "before": opens every stream, waits until each has its first `job`
snapshot and then one more event id, writes each stream's last id to
GK_STATE and keeps the connections open until the gateway dies under them
(gateway_kill.sh sends SIGKILL once this phase prints "ready"); every stream
must then see its connection closed.
Phase "after": reconnects every stream to the new gateway with Last-Event-ID
and checks that each gets a snapshot first: the job's current state (status
and processed_items no older than the database said just before), an id not
below the one it had; the per-job streams then follow their job to
`completed` and `end`, the global ones see it completed (`end`, or in the
snapshot when it finished while no gateway ran); no
stream sees another user's job. Exit status 0 when every check passed.
"""
import json
import os
import selectors
import socket
import subprocess
import sys
import time

PORT = int(os.environ["GK_PORT"])
STATE = os.environ["GK_STATE"]
ADMIN_URL = os.environ["GK_ADMIN_URL"]
PER_USER = int(os.environ.get("GK_STREAMS", "20"))
USERS = []  # (user, token, job) from GK_TOKENS, read by main
problems = []


def fail(what):
    problems.append(what)
    if len(problems) <= 20:
        print("FAIL " + what, flush=True)


class Stream:
    def __init__(self, n, user, token, job, per_job, last_id=None):
        self.n, self.user, self.job, self.per_job = n, user, job, per_job
        self.buf, self.events, self.closed = b"", [], False
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=10)
        path = "/api/jobs/%s/events" % job if per_job else "/api/events"
        head = "GET %s HTTP/1.0\r\nAuthorization: Bearer %s\r\n" % (path, token)
        if last_id is not None:
            head += "Last-Event-ID: %s\r\n" % last_id
        self.sock.sendall((head + "\r\n").encode())
        self.sock.setblocking(False)
        self.status = None

    def feed(self, data):
        self.buf += data
        if self.status is None:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            self.status = int(head.split(b" ")[1])
            self.buf = rest
        while b"\n\n" in self.buf:
            block, _, self.buf = self.buf.partition(b"\n\n")
            ev = {"event": None, "id": None, "data": ""}
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith("event: "):
                    ev["event"] = line[7:]
                elif line.startswith("id: "):
                    ev["id"] = int(line[4:])
                elif line.startswith("data: "):
                    ev["data"] += line[6:]
            if ev["event"]:
                ev["json"] = json.loads(ev["data"]) if ev["data"] else None
                self.events.append(ev)

    def last_id(self):
        ids = [e["id"] for e in self.events if e["id"] is not None]
        return ids[-1] if ids else None


def pump(streams, until, seconds):
    """Reads every open stream until until() or the deadline; False on timeout."""
    sel = selectors.DefaultSelector()
    for s in streams:
        if not s.closed:
            sel.register(s.sock, selectors.EVENT_READ, s)
    deadline = time.monotonic() + seconds
    try:
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ in sel.select(min(left, 0.5)):
                s = key.data
                try:
                    data = s.sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:  # a killed gateway resets its connections
                    data = b""
                if data == b"":
                    s.closed = True
                    sel.unregister(s.sock)
                    s.sock.close()
                else:
                    s.feed(data)
        return True
    finally:
        sel.close()


def open_all(last_ids=None):
    streams = []
    for u, (user, token, job) in enumerate(USERS):
        for k in range(PER_USER):
            n = u * PER_USER + k
            streams.append(Stream(n, user, token, job, k % 2 == 0,
                                  None if last_ids is None else last_ids[str(n)]))
    return streams


def db_jobs():
    out = subprocess.run(["psql", "-X", "-q", "-At", ADMIN_URL, "-c",
                          "SELECT id, status, processed_items FROM importer.import_jobs"],
                         capture_output=True, text=True, check=True).stdout
    return {r.split("|")[0]: (r.split("|")[1], int(r.split("|")[2])) for r in out.split()}


def setup():
    """Submits the CSV in GK_CSV for every user (GK_TOKENS lines "user token")
    and rewrites GK_TOKENS as "user token job" lines."""
    body = open(os.environ["GK_CSV"], "rb").read()
    lines = []
    for user, token in (line.split()[:2] for line in open(os.environ["GK_TOKENS"]) if line.strip()):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        s.sendall(("POST /api/jobs?kind=csv&collection=gk&batch_size=50 HTTP/1.1\r\nHost: x\r\n"
                   "Connection: close\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
                   % (token, len(body))).encode() + body)
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        s.close()
        head, _, reply = raw.partition(b"\r\n\r\n")
        if b" 202 " not in head.split(b"\r\n")[0]:
            fail("submit for %s: %r" % (user, raw[:300]))
            return 1
        lines.append("%s %s %s\n" % (user, token, json.loads(reply)["id"]))
    with open(os.environ["GK_TOKENS"], "w") as f:
        f.writelines(lines)
    return 0


def before():
    streams = open_all()
    ok = pump(streams, lambda: all(s.events or s.closed for s in streams), 60)
    # (a per-job stream whose job already finished sends its snapshot, `end` and closes)
    bad = ["%d: HTTP %s, %d events%s" % (s.n, s.status, len(s.events), ", closed" if s.closed else "")
           for s in streams if s.status != 200 or not s.events]
    if not ok or bad:
        fail("%d of %d streams did not open with a snapshot: %s" % (len(bad), len(streams), bad[:10]))
    first_is_job = sum(1 for s in streams if s.events and s.events[0]["event"] == "job")
    if first_is_job != len(streams):
        fail("%d of %d streams did not start with a job snapshot" % (len(streams) - first_is_job, len(streams)))
    # a little longer, so that some streams also carry progress events
    pump(streams, lambda: False, 1.0)
    with open(STATE, "w") as f:
        json.dump({str(s.n): s.last_id() for s in streams}, f)
    print("ready: %d streams open, each with a snapshot (%d events in all)"
          % (len(streams), sum(len(s.events) for s in streams)), flush=True)
    # gateway_kill.sh kills the gateway now: every connection must close.
    pump(streams, lambda: all(s.closed for s in streams), 30)
    still = [s.n for s in streams if not s.closed]
    if still:
        fail("%d streams still open 30 s after the gateway was killed" % len(still))
    else:
        print("all %d streams saw their connection close" % len(streams), flush=True)
    return 1 if problems else 0


def after():
    with open(STATE) as f:
        last_ids = json.load(f)
    seen = db_jobs()  # what the database says before the clients reconnect
    streams = open_all(last_ids)
    job_of = {user: job for user, _, job in USERS}
    pump(streams, lambda: all(s.events or s.closed for s in streams), 30)
    for s in streams:
        if s.status != 200 or not s.events:
            fail("stream %d: HTTP %s, %d events after reconnecting" % (s.n, s.status, len(s.events)))
            continue
        first = s.events[0]
        if first["event"] != "job" or first["json"].get("id") != s.job:
            mine = [e for e in s.events if e["event"] == "job" and e["json"].get("id") == s.job]
            if s.per_job or not mine:
                fail("stream %d: first event after reconnecting is %s, not its job's snapshot"
                     % (s.n, first["event"]))
                continue
            first = mine[0]
        j = first["json"]
        st, processed = seen[s.job]
        order = ["pending", "processing", "paused", "completed"]
        if j["processed_items"] < processed or order.index(j["status"]) < order.index(st):
            fail("stream %d: snapshot %s/%d older than the database before reconnecting (%s/%d)"
                 % (s.n, j["status"], j["processed_items"], st, processed))
        if first["id"] is not None and last_ids[str(s.n)] is not None and first["id"] < last_ids[str(s.n)]:
            fail("stream %d: snapshot id %s below Last-Event-ID %s" % (s.n, first["id"], last_ids[str(s.n)]))
    print("reconnected: %d streams, each got its job's current state first" % len(streams), flush=True)


    # A per-job stream ends with `end` (status completed) and closes. A global
    # stream sends `end` when it sees the job finish; a job that finished
    # while no gateway ran shows up completed in the snapshot instead.
    def done(s):
        for e in s.events:
            if (e["json"] or {}).get("id") == s.job and e["json"].get("status") == "completed" \
                    and (e["event"] == "end" or not s.per_job):
                return True
        return False
    pump(streams, lambda: all(s.closed if s.per_job else done(s) for s in streams), 120)
    for s in streams:
        if not done(s):
            fail("stream %d (%s): never saw its job completed%s (last events: %s)"
                 % (s.n, "job" if s.per_job else "global", " with `end`" if s.per_job else "",
                    [e["event"] for e in s.events[-5:]]))
        others = {e["json"].get("id") for e in s.events if e["json"] and e["event"] in ("job", "end")} - {s.job}
        foreign = [o for o in others if o in job_of.values() and o != job_of[s.user]]
        if foreign:
            fail("stream %d sees other users' jobs: %s" % (s.n, foreign))
        if s.per_job and not s.closed:
            fail("per-job stream %d still open after `end`" % s.n)
        # A job's states never go back in seq (log lines of one commit may
        # carry lower ids than its job event).
        ids = [e["id"] for e in s.events if e["event"] == "job" and e["json"].get("id") == s.job
               and e["id"] is not None]
        if any(b < a for a, b in zip(ids, ids[1:])):
            fail("stream %d: its job's states go back in seq: %s" % (s.n, ids))
    for s in streams:
        if not s.closed:
            s.sock.close()
    print("after the kill: %d streams reconnected, all followed their job to completed; "
          "%d problems" % (len(streams), len(problems)), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        sys.exit(setup())
    USERS.extend(line.split() for line in open(os.environ["GK_TOKENS"]) if line.strip())
    sys.exit(before() if sys.argv[1] == "before" else after())
