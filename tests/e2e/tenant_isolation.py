#!/usr/bin/env python3
"""tenant_isolation.py -- user B against user A's objects, and forged tokens, over HTTP.

Run by tests/e2e/hostile.sh against its gateway and worker (same environment
as tests/inputs/run_cases.py, plus HOSTILE_JWT_SECRET). User A gets a
completed job with records and an Idempotency-Key, a failed job, a paused job
and an upload. User B then tries every route on them: read, list, cancel,
pause, resume, retry, delete, clear, logs, errors, records, stats, the job's
SSE stream, the global stream (watched while A's job changes), logs_for, the
upload's chunks and a submit from it, and A's Idempotency-Key. Everything
must be 404 / empty / B's own, and A's rows must be exactly as before.
Then forged and misplaced tokens (alg none, HS512, RS256 with the secret as
HMAC key, wrong secret, expired, nbf ahead, no exp, no sub, sub of the wrong
type or not a UUID; Basic, cookie, query on a non-SSE route, a form field)
must all get 401 and change nothing. Exit status 0 when all checks pass.
"""
import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "inputs"))
import run_cases as rc  # noqa: E402  (raw HTTP, psql and job helpers)

SECRET = os.environ["HOSTILE_JWT_SECRET"].encode()
USER_A = rc.USER
USER_B = "b0b0b0b0-0000-4000-8000-00000000000b"
NO_SUCH = "0e0e0e0e-0000-4000-8000-0000000000ee"
problems, checks = [], 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        problems.append(what)
        print("FAIL " + what)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, header=None, key=SECRET, alg=hashlib.sha256, sign=True):
    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(key, (head + "." + body).encode(), alg).digest()) if sign else ""
    return head + "." + body + "." + sig


NOW = int(time.time())
TOKEN_A = rc.TOKEN
TOKEN_B = token({"sub": USER_B, "iat": NOW, "nbf": NOW, "exp": NOW + 3600})


def call(method, target, tok, body=b"", headers=None):
    """(status, parsed JSON or None, raw reply) for one request as tok (None: no header)."""
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: x", "Connection: close",
             "Content-Length: %d" % len(body)]
    if tok is not None:
        lines.append("Authorization: Bearer " + tok)
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    status, hdrs, rbody, raw = rc.send("\r\n".join(lines).encode() + b"\r\n\r\n" + body, timeout=30)
    try:
        parsed = json.loads(rbody) if rbody.strip() else None
    except ValueError:
        parsed = None
    return status, parsed, raw


def submit(tok, target, body, headers=None):
    status, job, raw = call("POST", target, tok, body, headers)
    if status != 202:
        raise RuntimeError("submit %s: HTTP %s %.300r" % (target, status, raw))
    return job["id"]


def wait_status(tok, job_id, statuses, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        status, job, _ = call("GET", "/api/jobs/" + job_id, tok)
        if status == 200 and job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise RuntimeError("job %s not %s after %d s: %s" % (job_id, statuses, seconds, job))
        time.sleep(0.1)


def a_state():
    """Everything of A's that B must not change or see change."""
    return rc.sql("""SELECT concat_ws(' | ',
      (SELECT string_agg(id || ':' || status || ':' || updated_at || ':' || coalesce(idempotency_key, ''),
                         ',' ORDER BY id) FROM importer.import_jobs WHERE user_id = '%(a)s'),
      (SELECT count(*) || ':' || coalesce(sum(hashtext(collection || record_key || data::text)), 0)
         FROM importer.records WHERE user_id = '%(a)s'),
      (SELECT count(*) FROM importer.import_logs l JOIN importer.import_jobs j ON j.id = l.job_id
        WHERE j.user_id = '%(a)s'),
      (SELECT count(*) FROM importer.import_errors e JOIN importer.import_jobs j ON j.id = e.job_id
        WHERE j.user_id = '%(a)s'),
      (SELECT count(*) || ':' || coalesce(sum(length(c.data)), 0) FROM importer.import_file_chunks c
         JOIN importer.import_files f ON f.id = c.file_id WHERE f.user_id = '%(a)s'))""" % {"a": USER_A})


def read_stream(target, tok, seconds, during=None):
    """Reads an SSE stream for `seconds`, calling during() once it is open."""
    s = socket.create_connection((rc.HOST, rc.PORT), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (target, tok)).encode())
    s.settimeout(0.2)
    got, end, called = b"", time.monotonic() + seconds, False
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
        if not called and b"\r\n\r\n" in got and during is not None:
            during()
            called = True
    s.close()
    return got.decode("utf-8", "replace")


def main():
    # ---- A's objects -----------------------------------------------------------------
    csv = b"id,secret\n1,alpha\n2,beta\n3,gamma\n"
    done = submit(TOKEN_A, "/api/jobs?kind=csv&collection=secret_a", csv, {"Idempotency-Key": "shared-key"})
    failed = submit(TOKEN_A, "/api/jobs?kind=csv&collection=secret_a_bad", b"id,x\n1,\"open\n")
    big = b"id,n\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(1, 20001))
    paused = submit(TOKEN_A, "/api/jobs?kind=csv&collection=secret_a_big&batch_size=50", big)
    call("POST", "/api/jobs/%s/pause" % paused, TOKEN_A)
    wait_status(TOKEN_A, done, ("completed",))
    wait_status(TOKEN_A, failed, ("failed",))
    wait_status(TOKEN_A, paused, ("paused",))
    status, up, _ = call("POST", "/api/uploads?file_name=a.csv", TOKEN_A)
    upload = up["upload_id"]
    call("PUT", "/api/uploads/%s/chunks/0" % upload, TOKEN_A, b"id\n1\n")
    a_ids = (done, failed, paused)
    before = a_state()
    print("user A: completed %s, failed %s, paused %s, upload %s" % (done, failed, paused, upload))

    def no_a_ids(text, where):
        leaked = [i for i in a_ids + (upload,) if i in text]
        check(not leaked, "%s shows A's ids %s" % (where, leaked))

    # ---- B on every route ------------------------------------------------------------
    for j in a_ids:
        for method, path in (("GET", ""), ("GET", "/logs"), ("GET", "/errors"), ("GET", "/events"),
                             ("POST", "/cancel"), ("POST", "/pause"), ("POST", "/resume"),
                             ("POST", "/retry"), ("POST", "/retry?restart=true"), ("DELETE", "")):
            status, body, raw = call(method, "/api/jobs/%s%s" % (j, path), TOKEN_B)
            code = (body or {}).get("error", {}).get("code") if isinstance(body, dict) else None
            check(status == 404 and code == "not_found",
                  "B %s /api/jobs/<A>%s: HTTP %s %s, want 404 not_found" % (method, path, status, code))
            # The reply may name the id B sent, and must read exactly as for
            # an id that does not exist ("never tell the two apart").
            text = raw.decode("utf-8", "replace").split("\r\n\r\n", 1)[-1]
            no_a_ids(text.replace(j, "<id>"), "B %s %s" % (method, path))
            _, _, raw2 = call(method, "/api/jobs/%s%s" % (NO_SUCH, path), TOKEN_B)
            text2 = raw2.decode("utf-8", "replace").split("\r\n\r\n", 1)[-1]
            check(text.replace(j, "<id>") == text2.replace(NO_SUCH, "<id>"),
                  "B %s %s: A's job and an unknown id answer differently: %r / %r"
                  % (method, path, text, text2))
        # the SSE token as a query parameter is B's too
        status, _, _ = call("GET", "/api/jobs/%s/events?access_token=%s" % (j, TOKEN_B), None)
        check(status == 404, "B's access_token on A's job stream: HTTP %s, want 404" % status)
        status, _, _ = call("GET", "/api/events?logs_for=%s" % j, TOKEN_B)
        check(status == 404, "B /api/events?logs_for=<A>: HTTP %s, want 404" % status)
    for target in ("/api/jobs", "/api/jobs?status=completed", "/api/jobs?status=failed",
                   "/api/jobs?status=paused", "/api/records", "/api/records?collection=secret_a",
                   "/api/stats?hours=24"):
        status, body, raw = call("GET", target, TOKEN_B)
        check(status == 200, "B GET %s: HTTP %s" % (target, status))
        no_a_ids(raw.decode("utf-8", "replace"), "B GET " + target)
        check(b"alpha" not in raw and b"secret_a" not in raw, "B GET %s shows A's data" % target)
    status, body, _ = call("GET", "/api/records?collection=secret_a", TOKEN_B)
    check(body == {"records": [], "next": None}, "B sees records of A's collection: %s" % body)
    status, body, _ = call("GET", "/api/stats?hours=24", TOKEN_B)
    check(status == 200 and body.get("by_kind") == [], "B's stats count A's jobs: %s" % body)
    for st in ("", "?status=completed", "?status=failed"):
        status, body, _ = call("DELETE", "/api/jobs" + st, TOKEN_B)
        check(status == 200 and body == {"deleted": 0}, "B DELETE /api/jobs%s: %s %s" % (st, status, body))
    status, _, _ = call("PUT", "/api/uploads/%s/chunks/1" % upload, TOKEN_B, b"2\n")
    check(status == 404, "B PUT a chunk into A's upload: HTTP %s, want 404" % status)
    status, body, _ = call("POST", "/api/jobs?kind=csv&upload_id=%s" % upload, TOKEN_B)
    check(status == 404, "B submits A's upload: HTTP %s, want 404 (%s)" % (status, body))

    # Idempotency-Key: B's use of A's key is B's own job; A's key still gives A's job.
    b_job = submit(TOKEN_B, "/api/jobs?kind=noop", b"", {"Idempotency-Key": "shared-key"})
    check(b_job not in a_ids, "B's Idempotency-Key 'shared-key' returned A's job")
    status, job, _ = call("GET", "/api/jobs/" + b_job, TOKEN_B)
    check(status == 200 and job["user_id"] == USER_B, "B's idempotent job is not B's: %s" % job)
    again = submit(TOKEN_A, "/api/jobs?kind=csv&collection=secret_a", csv, {"Idempotency-Key": "shared-key"})
    check(again == done, "A's Idempotency-Key now gives %s, want A's first job %s" % (again, done))

    mid = a_state()
    check(mid == before, "A's rows changed while B tried them:\n  %s\n  %s" % (before, mid))

    # The global stream: B watches while A's paused job resumes and changes;
    # B's own new job on the same stream shows that it is live.
    mine = []

    def meanwhile():
        call("POST", "/api/jobs/%s/resume" % paused, TOKEN_A)
        mine.append(submit(TOKEN_B, "/api/jobs?kind=noop", b""))

    text = read_stream("/api/events", TOKEN_B, 4.0, meanwhile)
    no_a_ids(text, "B's global stream")
    check(bool(mine) and mine[0] in text, "B's global stream did not show B's own new job")
    wait_status(TOKEN_A, paused, ("completed",), 120)
    check(rc.sql("SELECT count(*) FROM importer.records WHERE user_id = '%s' "
                 "AND collection = 'secret_a_big'" % USER_A) == "20000",
          "A's resumed job did not import all 20,000 rows")
    after = a_state()

    # ---- forged and misplaced tokens -----------------------------------------------------
    claims = {"sub": USER_A, "iat": NOW, "nbf": NOW, "exp": NOW + 600}
    forged = {
        "alg none": token(claims, {"alg": "none", "typ": "JWT"}, sign=False),
        "alg None, HS256 signature": token(claims, {"alg": "None"}),
        "alg HS512 signed with the secret": token(claims, {"alg": "HS512"}, alg=hashlib.sha512),
        "alg RS256 with the secret as HMAC key": token(claims, {"alg": "RS256"}),
        "alg missing": token(claims, {"typ": "JWT"}),
        "wrong secret": token(claims, key=b"not-the-secret"),
        "expired": token(dict(claims, exp=NOW - 1)),
        "nbf in the future": token(dict(claims, nbf=NOW + 300)),
        "no exp": token({"sub": USER_A, "iat": NOW}),
        "no sub": token({"iat": NOW, "exp": NOW + 600}),
        "sub a number": token(dict(claims, sub=12345)),
        "sub an array": token(dict(claims, sub=[USER_A])),
        "sub not a UUID": token(dict(claims, sub="admin")),
        "sub with SQL": token(dict(claims, sub=USER_A + "' OR '1'='1")),
        "exp a string": token(dict(claims, exp=str(NOW + 600))),
        "signature of another token": token(claims).rsplit(".", 1)[0] + "." + TOKEN_B.rsplit(".", 1)[1],
        "payload of B, signature of A": TOKEN_A.split(".")[0] + "." + TOKEN_B.split(".")[1] + "." + TOKEN_A.split(".")[2],
    }
    for what, tok in forged.items():
        status, body, raw = call("GET", "/api/jobs", tok)
        code = (body or {}).get("error", {}).get("code") if isinstance(body, dict) else None
        check(status == 401 and code == "unauthorized" and b"WWW-Authenticate: Bearer" in raw,
              "forged token (%s): HTTP %s %s, want 401 unauthorized" % (what, status, code))
    misplaced = {
        "Basic scheme": {"Authorization": "Basic " + base64.b64encode(b"a:" + TOKEN_A.encode()).decode()},
        "Token scheme": {"Authorization": "Token " + TOKEN_A},
        "no scheme": {"Authorization": TOKEN_A},
        "cookie": {"Cookie": "access_token=" + TOKEN_A},
        "X-Access-Token header": {"X-Access-Token": TOKEN_A},
    }
    for what, headers in misplaced.items():
        status, _, _ = call("GET", "/api/jobs", None, headers=headers)
        check(status == 401, "token in the wrong place (%s): HTTP %s, want 401" % (what, status))
    status, _, _ = call("GET", "/api/jobs?access_token=" + TOKEN_A, None)
    check(status == 401, "token as a query parameter on a non-SSE route: HTTP %s, want 401" % status)
    status, _, _ = call("POST", "/api/jobs?kind=noop", None, ("access_token=" + TOKEN_A).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"})
    check(status == 401, "token in a form body: HTTP %s, want 401" % status)
    check(a_state() == after, "forged tokens changed A's rows")

    b_rows = rc.sql("SELECT count(*) FROM importer.import_jobs WHERE user_id = '%s'" % USER_B)
    check(b_rows == "2", "B owns %s jobs, want 2 (its idempotent one and its stream probe)" % b_rows)
    check(rc.processes_alive() == [], "processes exited: %s" % rc.processes_alive())
    print("tenant isolation: %d checks, %d failed" % (checks, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
