#!/usr/bin/env python3
"""run_cases.py -- runs the hostile-input catalogue against a running gateway.

Each tests/inputs/cases/*.json is one case: an input (inline or a small recipe
that generates a big one at run time), the request that carries it, and the
outcome a user relies on (tests/inputs/README.md has the format). For every
case this script sends the request over a raw socket (so that malformed HTTP
reaches the gateway as written), compares the reply, follows a created job to
its terminal state, compares the job, its record errors and the records it
wrote, checks that the database is unchanged where the case says so, and
checks that the gateway and worker processes are still alive and answering.

It starts nothing: tests/e2e/hostile.sh starts PostgreSQL, a gateway and a
worker and passes them in the environment:
  HOSTILE_BASE       http://127.0.0.1:PORT of the gateway
  HOSTILE_TOKEN      a token for HOSTILE_USER
  HOSTILE_USER       the user's uuid
  HOSTILE_ADMIN_URL  an administrative libpq URL (psql reads the database directly)
  HOSTILE_PIDS       pids that must stay alive (space-separated)
  HOSTILE_CASES      optional glob of case names to run (default: all)
Exit status 0 when every case passed, 1 otherwise.
"""
import fnmatch
import glob
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.environ["HOSTILE_BASE"]
TOKEN = os.environ["HOSTILE_TOKEN"]
USER = os.environ["HOSTILE_USER"]
ADMIN_URL = os.environ["HOSTILE_ADMIN_URL"]
PIDS = [int(p) for p in os.environ.get("HOSTILE_PIDS", "").split()]
HOST, PORT = urllib.parse.urlsplit(BASE).hostname, urllib.parse.urlsplit(BASE).port
TERMINAL = ("completed", "failed", "cancelled")


# ---- inputs -------------------------------------------------------------------------


def build(spec):
    """Bytes from an input spec: a string (UTF-8), or a list of parts, each a
    string, {"hex": "ff fe"}, {"repeat": TEXT, "count": N} ("{i}" in TEXT
    becomes 1..N), or {"file": NAME} (a file under tests/inputs/files)."""
    if spec is None:
        return b""
    if isinstance(spec, str):
        return spec.encode("utf-8")
    out = []
    for part in spec:
        if isinstance(part, str):
            out.append(part.encode("utf-8"))
        elif "hex" in part:
            out.append(bytes.fromhex(part["hex"]))
        elif "repeat" in part:
            unit, n = part["repeat"], part["count"]
            if "{i}" in unit:
                out.append("".join(unit.replace("{i}", str(i)) for i in range(1, n + 1)).encode())
            else:
                out.append(unit.encode("utf-8") * n)
        elif "file" in part:
            with open(os.path.join(HERE, "files", part["file"]), "rb") as f:
                out.append(f.read())
        else:
            raise ValueError("unknown input part %r" % part)
    return b"".join(out)


def request_bytes(case):
    """The bytes to send: "raw" as given, or a request built from "request"."""
    if "raw" in case:
        return build(case["raw"]).replace(b"$TOKEN", TOKEN.encode())
    r = case["request"]
    body = build(case.get("body"))
    target = r["target"]
    lines = ["%s %s HTTP/1.1" % (r.get("method", "GET"), target), "Host: %s:%d" % (HOST, PORT)]
    lines.append("Connection: close")
    auth = r.get("auth", "bearer")
    if auth == "bearer":
        lines.append("Authorization: Bearer " + TOKEN)
    headers = r.get("headers", {})
    for k, v in headers.items():
        lines.append("%s: %s" % (k, v.replace("$TOKEN", TOKEN)))
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        lines.append("Content-Length: %d" % len(body))
    head = "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n"
    return head + body


# ---- HTTP over a raw socket --------------------------------------------------------


def send(data, timeout=60.0, half_close=False):
    """Sends data, reads until the server closes. Returns (status, headers,
    body bytes, raw reply) with status None when no status line came back."""
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    raw = b""
    try:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            raw += chunk
            if reply_complete(raw):
                break
    finally:
        s.close()
    return parse_reply(raw) + (raw,)


def reply_complete(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    _, headers, _ = parse_reply(raw)
    if "content-length" in headers:
        return len(body) >= int(headers["content-length"])
    return False


def parse_reply(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        return None, {}, raw
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        return None, {}, raw
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(body):
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        try:
            n = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2 :]
    return out


def api(method, target, body=b"", headers=None):
    """An ordinary well-formed request as the test user. Returns (status, json or None)."""
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: x", "Connection: close",
             "Authorization: Bearer " + TOKEN, "Content-Length: %d" % len(body)]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    status, _, rbody, _ = send("\r\n".join(lines).encode() + b"\r\n\r\n" + body, timeout=30)
    try:
        return status, json.loads(rbody) if rbody.strip() else None
    except ValueError:
        return status, None


# ---- the database ---------------------------------------------------------------------


def sql(query):
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", ADMIN_URL, "-c", query],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql: %s" % r.stderr.strip())
    return r.stdout.strip()


def snapshot():
    """What a rejected request must not change: every table's row count, the
    records' keys and their latest write, over all users (hashing the data
    itself would read every 10 MB field twice per case)."""
    return sql("""SELECT concat_ws(' ',
        (SELECT count(*) FROM importer.import_jobs),
        (SELECT count(*) FROM importer.import_files),
        (SELECT count(*) FROM importer.import_file_chunks),
        (SELECT count(*) FROM importer.import_errors),
        (SELECT count(*) FROM importer.records),
        (SELECT coalesce(sum(hashtext(collection || record_key)), 0) || '@' ||
                coalesce(max(updated_at)::text, '-') FROM importer.records),
        (SELECT count(*) FROM importer.settings),
        (SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'importer'))""")


def records(collection):
    rows = sql("SELECT coalesce(json_agg(json_build_object('k', record_key, 'd', data)), '[]') "
               "FROM importer.records WHERE user_id = '%s' AND collection = %s"
               % (USER, quote_literal(collection)))
    # Python refuses to make ints of over 4,300 digits: keep those as their text.
    parsed = json.loads(rows, parse_int=lambda t: int(t) if len(t) < 4000 else t)
    return {r["k"]: r["d"] for r in parsed}


def quote_literal(s):
    return "'" + s.replace("'", "''") + "'"


# ---- checks ---------------------------------------------------------------------------


class Case:
    def __init__(self, name, spec):
        self.name, self.spec, self.problems = name, spec, []

    def expect(self, ok, what):
        if not ok:
            self.problems.append(what)


def processes_alive():
    dead = []
    for p in PIDS:
        try:
            os.kill(p, 0)
        except OSError:
            dead.append(p)
    return dead


def healthy():
    try:
        status, _, _, _ = send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10)
        return status == 200
    except OSError:
        return False


def wait_job(job_id, seconds=90):
    deadline = time.monotonic() + seconds
    while True:
        status, job = api("GET", "/api/jobs/" + job_id)
        if status == 200 and job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def check_job(case, job_id, want):
    job = wait_job(job_id)
    if job is None:
        case.expect(False, "job %s not readable" % job_id)
        return
    for k in ("status", "processed_items", "failed_items", "total_items", "file_size",
              "collection", "file_name", "import_mode"):
        if k in want:
            case.expect(job.get(k) == want[k], "job %s = %r, want %r" % (k, job.get(k), want[k]))
    if "error_contains" in want:
        msg = job.get("error_message") or ""
        case.expect(want["error_contains"] in msg,
                    "job error_message %r does not contain %r" % (msg, want["error_contains"]))
    if "counts" in want:
        for k, v in want["counts"].items():
            case.expect(job["counts"].get(k) == v,
                        "counts.%s = %r, want %r" % (k, job["counts"].get(k), v))
    if "errors" in want:
        status, page = api("GET", "/api/jobs/%s/errors?limit=1000" % job_id)
        got = page["errors"] if status == 200 else []
        case.expect(len(got) == len(want["errors"]),
                    "%d record errors, want %d: %s" % (len(got), len(want["errors"]),
                                                        [(e["record_index"], e["message"]) for e in got]))
        for g, w in zip(got, want["errors"]):
            if "record_index" in w:
                case.expect(g["record_index"] == w["record_index"],
                            "record error index %r, want %r" % (g["record_index"], w["record_index"]))
            case.expect(w["contains"] in g["message"],
                        "record error %r does not contain %r" % (g["message"], w["contains"]))
    return job


def check_records(case, want, default_collection):
    coll = want.get("collection", default_collection)
    got = records(coll)
    if "count" in want:
        case.expect(len(got) == want["count"],
                    "%d records in %r, want %d" % (len(got), coll, want["count"]))
    for key, data in want.get("data", {}).items():
        case.expect(got.get(key) == data, "record %r = %.200r, want %.200r" % (key, got.get(key), data))
    for key, fields in want.get("lengths", {}).items():
        for field, n in fields.items():
            v = (got.get(key) or {}).get(field)
            if isinstance(v, int) and not isinstance(v, bool):
                v = str(v)  # a number's length is its digits
            case.expect(isinstance(v, str) and len(v) == n,
                        "record %r field %r has length %r, want %d"
                        % (key, field, None if v is None else len(v), n))
    if "fields" in want:  # number of fields of every record
        for key, data in got.items():
            case.expect(len(data) == want["fields"],
                        "record %r has %d fields, want %d" % (key, len(data), want["fields"]))


# Slow-loris connections opened by a case, checked at the end of the run
# (once the gateway's read timeout has passed) so that no case sleeps.
LINGERING = []


def open_slowloris(case):
    """Opens idle connections that sent half a request line and headers and
    then nothing; other requests must still be served at once."""
    spec, want = case.spec["slowloris"], case.spec["expect"]
    conns = []
    for _ in range(spec["connections"]):
        s = socket.create_connection((HOST, PORT), timeout=10)
        s.sendall(build(spec["partial"]).replace(b"$TOKEN", TOKEN.encode()))
        s.setblocking(False)
        conns.append(s)
    t = time.monotonic()
    status, _ = api("GET", "/api/jobs?limit=1")
    dt = time.monotonic() - t
    case.expect(status == 200 and dt < want["served_within_s"],
                "with %d half-open requests a list took %.1f s (HTTP %r)" % (len(conns), dt, status))
    LINGERING.append((case, conns, time.monotonic(), want["closed_within_s"]))
    case.observed = "%d idle connections open, others served in %.2f s" % (len(conns), dt)


def check_lingering():
    """Every slow-loris connection must have been closed by the gateway."""
    for case, conns, opened, within in LINGERING:
        deadline = opened + within
        open_ones = list(conns)
        while open_ones:
            still = []
            for s in open_ones:
                try:
                    if s.recv(65536) == b"":
                        s.close()
                        continue
                    still.append(s)  # a reply (408/400) then the close
                except BlockingIOError:
                    still.append(s)
                except OSError:
                    s.close()
            open_ones = still
            if not open_ones or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        case.expect(not open_ones, "%d of %d idle connections still open %d s after they started"
                    % (len(open_ones), len(conns), within))
        for s in open_ones:
            s.close()


def run_case(case):
    spec, want = case.spec, case.spec["expect"]
    if "slowloris" in spec:
        open_slowloris(case)
        return
    before = snapshot()
    data = request_bytes(spec)
    status, headers, body, raw = send(data, timeout=spec.get("timeout", 60),
                                      half_close=spec.get("half_close", False))
    text = body.decode("utf-8", "replace")
    if "status" in want:
        allowed = want["status"] if isinstance(want["status"], list) else [want["status"]]
        case.expect(status in allowed, "HTTP %r, want %r (reply %.300r)" % (status, want["status"], raw))
    reply = None
    if body.strip() and headers.get("content-type", "").startswith("application/json"):
        try:
            reply = json.loads(body)
        except ValueError:
            case.expect(False, "reply is not JSON: %.200r" % text)
    if "error_code" in want:
        code = (reply or {}).get("error", {}).get("code") if isinstance(reply, dict) else None
        case.expect(code == want["error_code"], "error code %r, want %r" % (code, want["error_code"]))
    if "message_contains" in want:
        msg = ((reply or {}).get("error") or {}).get("message", "") if isinstance(reply, dict) else ""
        case.expect(want["message_contains"] in msg,
                    "error message %r does not contain %r" % (msg, want["message_contains"]))
    for needle in want.get("reply_lacks", []):
        case.expect(needle.encode() not in raw, "reply contains %r" % needle)
    job_id = reply.get("id") if isinstance(reply, dict) and status in (200, 202) else None
    if spec.get("twice"):  # the same request again (Idempotency-Key): the same job
        status2, _, body2, _ = send(data, timeout=spec.get("timeout", 60))
        try:
            id2 = json.loads(body2).get("id")
        except (ValueError, AttributeError):
            id2 = None
        case.expect(status2 == status and id2 == job_id,
                    "second request: HTTP %r job %r, first: HTTP %r job %r" % (status2, id2, status, job_id))
    if "job" in want:
        if job_id is None:
            case.expect(False, "no job in the reply")
        else:
            check_job(case, job_id, want["job"])
    if "records" in want:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(spec.get("request", {}).get("target", "")).query)
        check_records(case, want["records"], (q.get("collection") or [""])[0])
    if want.get("db_unchanged", status is not None and status >= 400 and job_id is None):
        after = snapshot()
        case.expect(after == before, "database changed: %s -> %s" % (before, after))
    dead = processes_alive()
    case.expect(not dead, "processes exited: %s" % dead)
    case.expect(healthy(), "gateway does not answer /healthz after the case")
    case.observed = "HTTP %s %.160s" % (status, text.replace("\n", " "))


def main():
    pattern = os.environ.get("HOSTILE_CASES", "*")
    files = sorted(glob.glob(os.path.join(HERE, "cases", "*.json")))
    failed, ran, t0 = [], 0, time.monotonic()
    for path in files:
        name = os.path.basename(path)[:-5]
        if not fnmatch.fnmatch(name, pattern):
            continue
        with open(path, encoding="utf-8") as f:
            case = Case(name, json.load(f))
        ran += 1
        t = time.monotonic()
        try:
            run_case(case)
        except Exception as e:  # a broken case is a failed case, not a crashed runner
            case.problems.append("%s: %s" % (type(e).__name__, e))
        dt = time.monotonic() - t
        if case.problems:
            failed.append(name)
            print("FAIL %-40s %5.1fs  %s" % (name, dt, getattr(case, "observed", "")))
            for p in case.problems:
                print("       - " + p)
        else:
            print("ok   %-40s %5.1fs  %s" % (name, dt, case.observed[:60]))
        sys.stdout.flush()
    check_lingering()
    for case, _, _, _ in LINGERING:
        if case.problems and case.name not in failed:
            failed.append(case.name)
            print("FAIL %-40s (after the run)" % case.name)
            for p in case.problems:
                print("       - " + p)
    print("hostile inputs: %d cases, %d passed, %d failed (%.0f s)"
          % (ran, ran - len(failed), len(failed), time.monotonic() - t0))
    if ran == 0:
        print("no case matched %r" % pattern)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
