"""caps.py -- per-user caps hold under concurrent HTTP requests.

Run by tests/e2e/hostile.sh against its gateway and worker (same environment
as tests/e2e/tenant_isolation.py). User C gets per-user settings rows
(max_active_jobs_per_user 5, max_sse_streams_per_user 3, and
max_running_per_user 0 so that its jobs stay pending and the active count
cannot drop while requests race); user D keeps the defaults. Then, each burst
released at once from threads behind a barrier:

- 24 submits from C and 8 from D: exactly 5 of C's get 202, the other 19 get
  429 with {"error":{"code":"limit_exceeded",...}}; C has exactly 5 active jobs
  in the database; all of D's get 202 and complete. One of C's jobs is
  cancelled, 6 more race for the one free place: exactly 1 wins.
- 12 SSE opens from C (global and per-job streams) and 4 from D: exactly 3 of
  C's get 200 and stay open, 9 get 429 with the error JSON; D's 4 all stream.
  Once C closes its 3 streams, 3 new ones open (the places come back) and a
  4th gets 429.
- 6 uploads from C declaring IMPORTER_MAX_UPLOAD_BYTES + 1 get 413; 6 chunks of
  8 MiB + 1 get 413 with {"error":{"code":"too_large",...}} while D uploads a
  file in chunks and submits it (202, completes); a chunk of exactly 8 MiB is
  accepted. Nothing of the refused requests reaches the database.
Exit status 0 when all checks pass.
"""
import json
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "inputs"))
import run_cases as rc  # noqa: E402  (raw HTTP, psql and job helpers)
import tenant_isolation as ti  # noqa: E402  (token minting, call, wait_status)

USER_C = "cccccccc-0000-4000-8000-00000000000c"
USER_D = "dddddddd-0000-4000-8000-00000000000d"
TOKEN_C = ti.token({"sub": USER_C, "iat": ti.NOW, "nbf": ti.NOW, "exp": ti.NOW + 3600})
TOKEN_D = ti.token({"sub": USER_D, "iat": ti.NOW, "nbf": ti.NOW, "exp": ti.NOW + 3600})
MAX_ACTIVE, MAX_STREAMS = 5, 3
MAX_UPLOAD = int(os.environ.get("IMPORTER_MAX_UPLOAD_BYTES") or 64 * 1024 * 1024)
MAX_CHUNK = 8 * 1024 * 1024
check = ti.check  # counts into ti.checks and ti.problems (this process only)


def burst(calls):
    """Runs the callables at the same moment (a barrier); returns their results in order."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = calls[i]()
        except Exception as e:  # reported as a result, so the check names it
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def is_error(status, body, want_status, want_code):
    return (status == want_status and isinstance(body, dict) and isinstance(body.get("error"), dict)
            and body["error"].get("code") == want_code and bool(body["error"].get("message")))


def submit(tok, collection):
    def go():
        status, body, _ = ti.call("POST", "/api/jobs?kind=csv&collection=" + collection, tok, b"id,v\n1,x\n")
        return status, body
    return go


def active_jobs(user):
    return int(rc.sql("SELECT count(*) FROM importer.import_jobs WHERE user_id = '%s'"
                      " AND status IN ('pending', 'processing', 'paused')" % user))


def check_active_jobs():
    results = burst([submit(TOKEN_C, "caps_c") for _ in range(24)] +
                    [submit(TOKEN_D, "caps_d") for _ in range(8)])
    c, d = results[:24], results[24:]
    accepted = [b["id"] for s, b in c if s == 202]
    refused = [1 for s, b in c if is_error(s, b, 429, "limit_exceeded")]
    check(len(accepted) == MAX_ACTIVE and len(refused) == 24 - MAX_ACTIVE,
          "24 concurrent submits under max_active_jobs_per_user %d: %d got 202, %d got 429 limit_exceeded "
          "(others: %s)" % (MAX_ACTIVE, len(accepted), len(refused),
                            [r for r in c if r[0] not in (202, 429)][:3]))
    check(active_jobs(USER_C) == MAX_ACTIVE, "C has %d active jobs, want %d" % (active_jobs(USER_C), MAX_ACTIVE))
    d_ids = [b["id"] for s, b in d if s == 202]
    check(len(d_ids) == 8, "D's 8 concurrent submits: %d got 202 (%s)" % (len(d_ids), d[:3]))
    # One place frees up: of 6 racing submits exactly one takes it.
    status, _, raw = ti.call("POST", "/api/jobs/%s/cancel" % accepted[0], TOKEN_C)
    check(status == 202, "cancel one of C's pending jobs: HTTP %s %.200r" % (status, raw))
    again = burst([submit(TOKEN_C, "caps_c") for _ in range(6)])
    won = sum(1 for s, _ in again if s == 202)
    lost = sum(1 for s, b in again if is_error(s, b, 429, "limit_exceeded"))
    check(won == 1 and lost == 5, "6 submits racing for 1 free place: %d got 202, %d got 429" % (won, lost))
    check(active_jobs(USER_C) == MAX_ACTIVE, "C has %d active jobs after the race, want %d"
          % (active_jobs(USER_C), MAX_ACTIVE))
    for j in d_ids:
        try:
            ti.wait_status(TOKEN_D, j, ("completed",), seconds=120)
        except RuntimeError as e:
            check(False, "D's job did not complete while C was at its cap: %s" % e)
            break
    return accepted[1]


class Stream:
    """One SSE request; open() reads the status line and headers (and, for a
    refusal, the body) and keeps an accepted stream's socket open."""

    def __init__(self, target, tok):
        self.target, self.tok, self.sock, self.status, self.body = target, tok, None, None, None

    def open(self):
        s = socket.create_connection((rc.HOST, rc.PORT), timeout=30)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Accept: text/event-stream\r\n\r\n" % (self.target, self.tok)).encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        body = raw.partition(b"\r\n\r\n")[2]
        self.status, headers, _ = rc.parse_reply(raw)
        if self.status == 200:
            self.sock = s
            return self
        want = int(headers.get("content-length", "0") or 0)
        while len(body) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        s.close()
        try:
            self.body = json.loads(body or b"null")
        except ValueError:
            self.body = None
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def check_streams(job_c):
    targets = ["/api/events" if i % 2 else "/api/jobs/%s/events" % job_c for i in range(12)]
    streams = [Stream(t, TOKEN_C) for t in targets] + [Stream("/api/events", TOKEN_D) for _ in range(4)]
    burst([s.open for s in streams])
    c, d = streams[:12], streams[12:]
    try:
        ok = [s for s in c if s.status == 200]
        refused = [s for s in c if is_error(s.status, s.body, 429, "limit_exceeded")]
        check(len(ok) == MAX_STREAMS and len(refused) == 12 - MAX_STREAMS,
              "12 concurrent SSE opens under max_sse_streams_per_user %d: %d got 200, %d got 429 "
              "limit_exceeded (statuses %s)" % (MAX_STREAMS, len(ok), len(refused), [s.status for s in c]))
        check(all(s.status == 200 for s in d), "D's 4 concurrent streams: %s" % [s.status for s in d])
    finally:
        for s in c:
            s.close()
    # The closed streams give their places back (the gateway sees the close
    # when it next writes, at the latest on a heartbeat): retry refusals until
    # 3 are open, then a 4th is refused.
    reopened, deadline = [], time.monotonic() + 30
    while len(reopened) < MAX_STREAMS and time.monotonic() < deadline:
        s = Stream("/api/events", TOKEN_C).open()
        if s.status == 200:
            reopened.append(s)
        else:
            time.sleep(0.1)
    fourth = Stream("/api/events", TOKEN_C).open()
    check(len(reopened) == MAX_STREAMS and is_error(fourth.status, fourth.body, 429, "limit_exceeded"),
          "after closing: %d of %d streams reopened within 30 s, then a 4th got HTTP %s"
          % (len(reopened), MAX_STREAMS, fourth.status))
    for s in reopened + [fourth] + d:
        s.close()


def declared_oversize():
    """A submit declaring one byte over the cap, with the start of its body."""
    head = ("POST /api/jobs?kind=csv&collection=caps_big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n" % (TOKEN_C, MAX_UPLOAD + 1)).encode()
    status, _, _, raw = rc.send(head + b"id\n" + b"1\n" * 32768, timeout=30)
    return status, raw


def chunk(tok, upload, seq, size):
    def go():
        status, body, _ = ti.call("PUT", "/api/uploads/%s/chunks/%d" % (upload, seq), tok, b"x" * size)
        return status, body
    return go


def d_chunked_upload():
    status, up, raw = ti.call("POST", "/api/uploads?file_name=d.csv", TOKEN_D)
    if status not in (200, 201, 202):
        return ("upload", status, raw)
    for seq, data in enumerate([b"id,v\n1,a\n", b"2,b\n3,c\n"]):
        status, _, raw = ti.call("PUT", "/api/uploads/%s/chunks/%d" % (up["upload_id"], seq), TOKEN_D, data)
        if status not in (200, 201, 202, 204):
            return ("chunk", status, raw)
    status, job, raw = ti.call("POST", "/api/jobs?kind=csv&collection=caps_d_up&upload_id=" + up["upload_id"], TOKEN_D)
    return ("submit", status, job["id"] if status == 202 else raw)


def c_uploads_state():
    return rc.sql("""SELECT concat_ws(' ',
        (SELECT count(*) FROM importer.import_jobs WHERE user_id = '%(c)s'),
        (SELECT count(*) || ':' || coalesce(sum(length(ch.data)), 0) FROM importer.import_file_chunks ch
           JOIN importer.import_files f ON f.id = ch.file_id WHERE f.user_id = '%(c)s'))""" % {"c": USER_C})


def check_uploads():
    status, up, raw = ti.call("POST", "/api/uploads?file_name=c.csv", TOKEN_C)
    check(status in (200, 201, 202) and up and "upload_id" in up, "C begins an upload: HTTP %s %.200r" % (status, raw))
    if not (up and "upload_id" in up):
        return
    before = c_uploads_state()
    results = burst([declared_oversize for _ in range(6)] +
                    [chunk(TOKEN_C, up["upload_id"], i, MAX_CHUNK + 1) for i in range(6)] + [d_chunked_upload])
    declared, chunks, d = results[:6], results[6:12], results[12]
    check(all(s == 413 for s, _ in declared),
          "6 concurrent submits declaring %d bytes (cap + 1): statuses %s, want 413"
          % (MAX_UPLOAD + 1, [s for s, _ in declared]))
    check(all(is_error(s, b, 413, "too_large") for s, b in chunks),
          "6 concurrent chunks of 8 MiB + 1: %s, want 413 too_large" % [(s, b) for s, b in chunks][:3])
    check(c_uploads_state() == before, "refused uploads changed C's jobs or chunks: %s -> %s"
          % (before, c_uploads_state()))
    check(d[0] == "submit" and d[1] == 202, "D's chunked upload meanwhile: %s" % (d,))
    if d[0] == "submit" and d[1] == 202:
        try:
            ti.wait_status(TOKEN_D, d[2], ("completed",), seconds=120)
        except RuntimeError as e:
            check(False, "D's uploaded job did not complete: %s" % e)
    status, body = chunk(TOKEN_C, up["upload_id"], 0, MAX_CHUNK)()
    check(status in (200, 201, 202, 204), "a chunk of exactly 8 MiB: HTTP %s %.200r" % (status, body))


def main():
    rc.sql("""INSERT INTO importer.settings (key, value, user_id) VALUES
        ('max_active_jobs_per_user', '%d', '%s'), ('max_sse_streams_per_user', '%d', '%s'),
        ('max_running_per_user', '0', '%s')""" % (MAX_ACTIVE, USER_C, MAX_STREAMS, USER_C, USER_C))
    job_c = check_active_jobs()
    check_streams(job_c)
    check_uploads()
    dead = rc.processes_alive()
    check(dead == [], "processes that exited during the caps checks: %s" % dead)
    print("caps: %d checks, %d failed" % (ti.checks, len(ti.problems)))
    return 1 if ti.problems else 0


if __name__ == "__main__":
    sys.exit(main())
