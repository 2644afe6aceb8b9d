"""soak.py -- the fault soak's driver and checker (run by tests/soak/run.sh).

For SOAK_SECONDS: SOAK_USERS users submit SOAK_JOBS jobs through the gateway
(their own JWTs) -- csv, ndjson, backup and noop, of random sizes, modes
(upsert, append, replace) and dry_run -- and randomly cancel, pause, resume
and retry (from the checkpoint and from zero) them, while SOAK_STREAMS global
SSE streams stay open and the chaos thread SIGKILLs a worker every
SOAK_KILL_EVERY seconds (and starts a new one) and SIGSTOPs one for longer than
the lease every SOAK_FREEZE_EVERY seconds. RSS of the gateway, the workers and
the PostgreSQL backends is sampled every SOAK_RSS_EVERY seconds.

Then: every job is terminal or resumable; paused jobs are resumed and every
job must end; every record of every job is checked against the file that
defines it (each job writes its own collections); the workers' JSON logs and
import_logs are replayed to prove that no job was ever held by two workers at
once except across a lease expiry in which the old holder committed nothing
(tests/soak/check_leases.py); the workers exit 0 on SIGTERM; RSS is flat.
Prints the figures and writes them to $SOAK_DIR/summary.json. Exit 0 when
every check passes.
"""
import base64
import csv
import hashlib
import hmac
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import check_leases  # noqa: E402

E = os.environ
HOST, PORT = "127.0.0.1", int(E["SOAK_HTTP_PORT"])
SECRET = E["SOAK_JWT_SECRET"].encode()
ADMIN_URL = E["SOAK_ADMIN_URL"]
WK_URL = E["SOAK_WK_URL"]
WORKER = E["SOAK_WORKER"]
DIR = E["SOAK_DIR"]
GATEWAY_PID = int(E["SOAK_GATEWAY_PID"])
POSTMASTER_PID = int(E["SOAK_POSTMASTER_PID"])
SECONDS = float(E.get("SOAK_SECONDS", "600"))
NJOBS = int(E.get("SOAK_JOBS", "2000"))
NUSERS = int(E.get("SOAK_USERS", "50"))
NWORKERS = int(E.get("SOAK_WORKERS", "8"))
MAX_ROWS = int(E.get("SOAK_MAX_ROWS", "15000"))
KILL_EVERY = float(E.get("SOAK_KILL_EVERY", "15"))
FREEZE_EVERY = float(E.get("SOAK_FREEZE_EVERY", "60"))
LEASE = int(E.get("SOAK_LEASE", "5"))
STREAMS = int(E.get("SOAK_STREAMS", "10"))
RSS_EVERY = float(E.get("SOAK_RSS_EVERY", "5"))
DRAIN = float(E.get("SOAK_DRAIN_SECONDS", "600"))
SEED = int(E.get("SOAK_SEED", str(int(time.time()))))
HOSTNAME = socket.gethostname()
T0 = time.monotonic()

problems = []
lock = threading.Lock()


def say(msg):
    print("soak.py: [%4ds] %s" % (time.monotonic() - T0, msg), flush=True)


def problem(msg):
    with lock:
        problems.append(msg)
        if len(problems) <= 50:
            print("soak.py: FAIL: " + msg, flush=True)


def sql(query):
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", ADMIN_URL, "-c", query],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("psql: %s" % r.stderr.strip())
    return r.stdout


# ---- users and their tokens ------------------------------------------------------------

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(user):
    """An HS256 JWT for user, valid for a day (as tests/e2e/tenant_isolation.py mints them)."""
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": user, "iat": now, "nbf": now - 5, "exp": now + 24 * 3600}).encode())
    return head + "." + body + "." + b64(hmac.new(SECRET, (head + "." + body).encode(), hashlib.sha256).digest())


USERS = ["50a50a00-0000-4000-8000-%012d" % u for u in range(1, NUSERS + 1)]
TOKENS = {u: token(u) for u in USERS}


def call(method, target, user, body=b"", timeout=120):
    """(status, parsed JSON or None) of one request as user."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        c.request(method, target, body=body, headers={"Authorization": "Bearer " + TOKENS[user]})
        r = c.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data) if data.strip() else None
        except ValueError:
            return r.status, None
    finally:
        c.close()


# ---- jobs and the files that define them --------------------------------------------------

class Job:
    def __init__(self, idx, rng):
        self.idx = idx
        self.user = USERS[idx % NUSERS]
        self.kind = rng.choices(["csv", "ndjson", "backup", "noop"], [35, 25, 15, 25])[0]
        r = rng.random()
        if r < 0.70:
            self.rows = rng.randint(1, 300)
        elif r < 0.95:
            self.rows = rng.randint(300, 3000)
        else:
            self.rows = rng.randint(3000, MAX_ROWS)
        self.dry_run = rng.random() < 0.10
        self.mode = "upsert" if self.dry_run else rng.choices(["upsert", "append", "replace"], [55, 25, 20])[0]
        self.batch = rng.choice([20, 50, 100, 250, 500, 1000])
        self.id = None
        self.status = None  # last seen
        if self.kind == "backup":
            half = self.rows // 2
            self.collections = {"b%d_u" % idx: half, "b%d_v" % idx: self.rows - half}
        elif self.kind == "noop":
            self.collections, self.rows = {}, 0
        else:
            self.collections = {"c%d" % idx: self.rows}

    def record(self, i):
        return {"id": "k%d" % i, "n": i, "j": self.idx, "name": 'name "%d", x' % i}

    def body(self):
        if self.kind == "csv":
            lines = ["id,n,j,name"] + ['k%d,%d,%d,"name ""%d"", x"' % (i, i, self.idx, i)
                                       for i in range(1, self.rows + 1)]
            return ("\n".join(lines) + "\n").encode()
        if self.kind == "ndjson":
            return "".join(json.dumps(self.record(i)) + "\n" for i in range(1, self.rows + 1)).encode()
        if self.kind == "backup":
            doc = {"metadata": {"job": self.idx}}
            for name, m in self.collections.items():
                doc[name] = [self.record(i) for i in range(1, m + 1)]
            return json.dumps(doc).encode()
        return b""

    def target(self):
        q = "/api/jobs?kind=%s&mode=%s&batch_size=%d&file_name=f%d.%s" % (
            self.kind, self.mode, self.batch, self.idx, self.kind)
        if self.kind in ("csv", "ndjson"):
            q += "&collection=c%d" % self.idx
        if self.dry_run:
            q += "&dry_run=true"
        return q


# ---- the worker fleet -----------------------------------------------------------------------

class Fleet:
    def __init__(self):
        self.procs = {}  # slot -> Popen
        self.all = []    # (slot, gen, Popen, log path, started monotonic)
        self.kills = []  # (unix ts, worker_id)
        self.freezes = 0
        self.gen = 0
        self.frozen = {}  # pid -> monotonic time to continue

    def start(self, slot):
        self.gen += 1
        path = os.path.join(DIR, "worker-%d-%d.log" % (slot, self.gen))
        env = dict(E, DATABASE_URL=WK_URL, IMPORTER_LISTEN_DATABASE_URL=WK_URL,
                   IMPORTER_POLL_INTERVAL_MS="500", IMPORTER_LOG_LEVEL="debug")
        for k in ("IMPORTER_METRICS_ADDR", "IMPORTER_JWT_SECRET", "IMPORTER_HTTP_ADDR"):
            env.pop(k, None)
        with open(path, "wb") as log:
            p = subprocess.Popen([WORKER], env=env, stdout=subprocess.DEVNULL, stderr=log)
        self.procs[slot] = p
        self.all.append((slot, self.gen, p, path, time.monotonic()))

    def worker_id(self, p):
        return "%s:%d" % (HOSTNAME, p.pid)

    def busy_slots(self):
        ids = set(sql("SELECT worker_id FROM importer.import_jobs WHERE status = 'processing'"
                      " AND worker_id IS NOT NULL").split())
        return [s for s, p in self.procs.items() if self.worker_id(p) in ids and p.pid not in self.frozen]

    def kill(self, rng):
        busy = self.busy_slots()
        slots = busy if busy and rng.random() < 0.75 else [s for s, p in self.procs.items() if p.pid not in self.frozen]
        if not slots:
            return
        slot = rng.choice(slots)
        p = self.procs[slot]
        p.send_signal(signal.SIGKILL)
        self.kills.append((time.time(), self.worker_id(p)))
        p.wait(30)
        self.start(slot)

    def freeze(self, rng):
        busy = self.busy_slots()
        if not busy:
            return
        p = self.procs[rng.choice(busy)]
        p.send_signal(signal.SIGSTOP)
        self.frozen[p.pid] = (p, time.monotonic() + LEASE + 3)
        self.freezes += 1

    def thaw(self, force=False):
        for pid, (p, until) in list(self.frozen.items()):
            if force or time.monotonic() >= until:
                p.send_signal(signal.SIGCONT)
                del self.frozen[pid]


# ---- RSS -------------------------------------------------------------------------------------

def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pg_children():
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                if int(st.rsplit(")", 1)[1].split()[1]) == POSTMASTER_PID:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


class RssSampler(threading.Thread):
    def __init__(self, fleet, stop):
        super().__init__(daemon=True)
        self.fleet, self.stop, self.series = fleet, stop, {}  # name -> [(t, kB)]

    def sample(self):
        t = time.monotonic() - T0
        procs = [("gateway", GATEWAY_PID), ("postmaster", POSTMASTER_PID)]
        procs += [("worker %d" % p.pid, p.pid) for p in list(self.fleet.procs.values())]
        procs += [("pg backend %d" % pid, pid) for pid in pg_children()]
        for name, pid in procs:
            kb = rss_kb(pid)
            if kb is not None:
                self.series.setdefault(name, []).append((t, kb))

    def run(self):
        while not self.stop.wait(RSS_EVERY):
            self.sample()


# ---- users -----------------------------------------------------------------------------------

class Users:
    def __init__(self, jobs, deadline):
        self.jobs, self.deadline = jobs, deadline
        self.next = 0
        self.ops = {}        # "op status" -> count
        self.bad_ops = []
        self.restarts = 0

    def count(self, op, status):
        with lock:
            key = "%s %s" % (op, status)
            self.ops[key] = self.ops.get(key, 0) + 1

    def submit_due(self):
        """The next job to submit, if the schedule wants one now (all by 85% of the time)."""
        with lock:
            frac = (time.monotonic() - T0) / (SECONDS * 0.85)
            if self.next < len(self.jobs) and self.next < frac * len(self.jobs) + 1:
                j = self.jobs[self.next]
                self.next += 1
                return j
        return None

    def submit(self, job):
        for _ in range(200):
            status, body = call("POST", job.target(), job.user, job.body())
            self.count("submit", status)
            if status == 202:
                job.id, job.status = body["id"], body["status"]
                return
            if status != 429:
                self.bad("submit job %d: HTTP %s %s" % (job.idx, status, body))
                return
            time.sleep(0.5)  # at the user's cap: wait for one of its jobs to end
        self.bad("submit job %d: still at the user's cap after 200 tries" % job.idx)

    def bad(self, msg):
        with lock:
            self.bad_ops.append(msg)
        problem(msg)

    def refresh(self):
        """The jobs' current statuses (what each user would see in its list),
        so that the random operations mostly aim at jobs in a state that
        allows them; the rest are races and answer 409."""
        status = dict(line.split("|") for line in sql("SELECT id, status FROM importer.import_jobs").splitlines())
        for j in self.jobs[:self.next]:
            if j.id in status:
                j.status = status[j.id]

    def act(self, rng):
        live = [j for j in self.jobs[:self.next] if j.id is not None]
        if not live:
            return
        op = rng.choices(["cancel", "pause", "resume", "retry", "get"], [2, 3, 4, 4, 2])[0]
        want = {"cancel": ("pending", "processing"), "pause": ("pending", "processing"),
                "resume": ("paused",), "retry": ("failed", "cancelled")}.get(op)
        pool = [j for j in live if want is None or j.status in want] or live
        job = rng.choice(pool)
        target = "/api/jobs/%s" % job.id
        if op == "get":
            status, body = call("GET", target, job.user)
            ok = (200,)
        elif op == "retry":
            restart = rng.random() < 0.4
            status, body = call("POST", target + "/retry?restart=%s" % ("true" if restart else "false"), job.user)
            ok = (202, 409, 429)
            if status == 202 and restart:
                with lock:
                    self.restarts += 1
            op = "retry(restart)" if restart else "retry"
        else:
            status, body = call("POST", target + "/" + op, job.user)
            ok = (202, 409)
        self.count(op, status)
        if status not in ok:
            self.bad("%s job %d: HTTP %s %s" % (op, job.idx, status, body))
        elif isinstance(body, dict) and body.get("id") == job.id:
            job.status = body["status"]

    def run(self, seed):
        rng = random.Random(seed)
        while time.monotonic() < self.deadline:
            try:
                job = self.submit_due()
                if job is not None:
                    self.submit(job)
                else:
                    self.act(rng)
                    time.sleep(rng.uniform(0.05, 0.4))
            except (OSError, http.client.HTTPException) as e:
                self.bad("HTTP request failed: %r" % e)
                time.sleep(0.5)


class Stream(threading.Thread):
    """A global SSE stream held open for the whole soak (reconnecting with
    Last-Event-ID if it closes); every job event must be the user's own."""

    def __init__(self, user, stop):
        super().__init__(daemon=True)
        self.user, self.stop = user, stop
        self.events = self.reconnects = self.foreign = 0
        self.last_id = None

    def run(self):
        while not self.stop.is_set():
            try:
                s = socket.create_connection((HOST, PORT), timeout=30)
                hdr = "Last-Event-ID: %s\r\n" % self.last_id if self.last_id else ""
                s.sendall(("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s\r\n"
                           % (TOKENS[self.user], hdr)).encode())
                s.settimeout(1)
                buf = b""
                while not self.stop.is_set():
                    try:
                        chunk = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not chunk:
                        break
                    buf += chunk
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        self.parse(block.decode("utf-8", "replace"))
                s.close()
            except OSError:
                time.sleep(0.5)
            if not self.stop.is_set():
                self.reconnects += 1
                time.sleep(0.2)

    def parse(self, block):
        ev, data = None, []
        for line in block.replace("\r", "").split("\n"):
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line.startswith("id:"):
                self.last_id = line[3:].strip()
        if ev == "job":
            self.events += 1
            try:
                if json.loads("\n".join(data)).get("user_id") != self.user:
                    self.foreign += 1
            except ValueError:
                pass


# ---- the checks --------------------------------------------------------------------------------

def job_rows():
    out = {}
    q = ("SELECT id, status, processed_items, failed_items, total_items, total_is_estimate, counts,"
         " coalesce(error_message, ''), rescues, attempts FROM importer.import_jobs")
    for r in csv.reader(sql("COPY (%s) TO STDOUT WITH (FORMAT csv)" % q).splitlines()):
        out[r[0]] = {"status": r[1], "processed": int(r[2]), "failed": int(r[3]), "total": int(r[4] or 0),
                     "estimate": r[5] == "t", "counts": json.loads(r[6]), "error": r[7],
                     "rescues": int(r[8]), "attempts": int(r[9])}
    return out


def restarted_jobs():
    return set(sql("SELECT DISTINCT job_id FROM importer.import_logs WHERE event = 'job.retried'"
                   " AND message = 'retried from the beginning'").split())


def record_stats():
    """collection -> (user, count, distinct job ids, one job id, sum n, well-formed, min j, max j)."""
    out = {}
    q = """SELECT collection, user_id, count(*), count(DISTINCT job_id), min(job_id::text),
                  coalesce(sum((data->>'n')::bigint), 0),
                  count(*) FILTER (WHERE record_key = 'k' || (data->>'n') AND data->>'id' = record_key
                                     AND data->>'name' = 'name "' || (data->>'n') || '", x'),
                  min((data->>'j')::bigint), max((data->>'j')::bigint)
           FROM importer.records GROUP BY collection, user_id"""
    for line in sql(q).splitlines():
        c, u, n, nj, jid, s, good, jmin, jmax = line.split("|")
        out[c] = (u, int(n), int(nj), jid, int(s), int(good), jmin, jmax)
    return out


def tri(m):
    return m * (m + 1) // 2


def expected_prefix(job, p):
    """Records per collection when the first p records of the file committed."""
    out = {}
    for name, m in job.collections.items():
        out[name] = min(p, m)
        p -= out[name]
    return out


def check_job(job, row, stats, restarted, tally):
    st = row["status"]
    tally[st] = tally.get(st, 0) + 1
    where = "job %d (%s %s%s, %d rows, batch %d, id %s)" % (
        job.idx, job.kind, job.mode, " dry_run" if job.dry_run else "", job.rows, job.batch, job.id)
    if st not in ("completed", "failed", "cancelled"):
        problem("%s: still %s after the drain" % (where, st))
        return
    if st == "failed" and "abandoned by its worker" not in row["error"]:
        problem("%s: failed: %s" % (where, row["error"]))
    if job.kind == "noop":
        return
    seen = {c: stats.get(c) for c in job.collections}
    if job.dry_run or (job.mode == "replace" and st != "completed"):
        for c, s in seen.items():
            if s is not None:
                problem("%s: %s has %d records, want none (%s)" % (where, c, s[1],
                        "dry_run" if job.dry_run else "replace that did not complete"))
        tally["records_checked_absent"] = tally.get("records_checked_absent", 0) + 1
        if job.dry_run and st == "completed" and row["processed"] != job.rows:
            problem("%s: dry_run processed %d, want %d" % (where, row["processed"], job.rows))
        return
    if st == "completed":
        if row["processed"] != job.rows or row["total"] != job.rows or row["estimate"]:
            problem("%s: processed %d, total %d (estimate %s), want %d exact"
                    % (where, row["processed"], row["total"], row["estimate"], job.rows))
        fresh = job.id not in restarted
        if fresh and (row["failed"] != 0 or row["counts"].get("failed") != 0):
            problem("%s: failed_items %d, counts %s, want 0" % (where, row["failed"], row["counts"]))
        if fresh and job.mode in ("upsert", "append") and (
                row["counts"].get("inserted") != job.rows or row["counts"].get("updated") != 0):
            problem("%s: counts %s, want inserted %d and updated 0 (no batch written twice)"
                    % (where, row["counts"], job.rows))
        want = dict(job.collections)
    elif job.id in restarted:
        want = None  # restarted from zero and not finished: any prefix
    else:
        want = expected_prefix(job, row["processed"] - row["failed"])
    for c, m in job.collections.items():
        s = seen[c]
        n = s[1] if s else 0
        if want is None:
            # the records written form a prefix of the collection's records
            ok = s is None or (s[4] == tri(n) and s[5] == n)
        else:
            ok = n == want[c] and (s is None or (s[4] == tri(n) and s[5] == n))
        if s is not None:
            ok = ok and s[0] == job.user and s[2] == 1 and s[3] == job.id and s[6] == s[7] == str(job.idx)
        if not ok:
            problem("%s: collection %s: %s, want %s records k1..k%s, each its own data, written by the job"
                    % (where, c, s, want[c] if want else "a prefix of", want[c] if want else m))
        tally["records_checked"] = tally.get("records_checked", 0) + n


def rss_summary(series):
    out = {}
    for name, pts in series.items():
        kbs = [kb for _, kb in pts]
        out[name] = {"samples": len(kbs), "seconds": round(pts[-1][0] - pts[0][0]),
                     "first_mb": round(kbs[0] / 1024, 1), "last_mb": round(kbs[-1] / 1024, 1),
                     "max_mb": round(max(kbs) / 1024, 1),
                     # the shape: at 0, 1/6, ..., 6/6 of the process's sampled life
                     "series_mb": [round(kbs[min(len(kbs) - 1, i * len(kbs) // 6)] / 1024, 1)
                                   for i in range(6)] + [round(kbs[-1] / 1024, 1)]}
    return out


def rss_flat(name, pts):
    """Flat: the median of the last third at most 25% + 16 MB above the median
    of the middle third (the first third is warm-up: pools, caches, ASan's
    bounded quarantine filling)."""
    if len(pts) < 9:
        return True
    k = len(pts) // 3
    mid = sorted(kb for _, kb in pts[k:2 * k])[k // 2]
    last = sorted(kb for _, kb in pts[2 * k:])[len(pts[2 * k:]) // 2]
    return last <= mid * 1.25 + 16 * 1024


def main():
    rng = random.Random(SEED)
    say("seed %d: %d jobs, %d users, %d workers, %d s, kill every %g s, freeze every %g s, lease %d s"
        % (SEED, NJOBS, NUSERS, NWORKERS, SECONDS, KILL_EVERY, FREEZE_EVERY, LEASE))
    jobs = [Job(i, rng) for i in range(1, NJOBS + 1)]
    fleet = Fleet()
    for slot in range(NWORKERS):
        fleet.start(slot)
    stop = threading.Event()
    sampler = RssSampler(fleet, stop)
    sampler.sample()
    sampler.start()
    streams = [Stream(USERS[i % NUSERS], stop) for i in range(STREAMS)]
    for s in streams:
        s.start()
    deadline = T0 + SECONDS
    users = Users(jobs, deadline)
    threads = [threading.Thread(target=users.run, args=(SEED + i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()

    def refresh():  # apart from the chaos loop: psql takes seconds on a loaded machine
        while time.monotonic() < deadline:
            users.refresh()
            time.sleep(2)
    threading.Thread(target=refresh, daemon=True).start()

    # ---- chaos until the deadline
    next_kill, next_freeze, next_report = T0 + KILL_EVERY, T0 + FREEZE_EVERY / 2, T0 + 60
    while time.monotonic() < deadline:
        now = time.monotonic()
        fleet.thaw()
        if now >= next_kill:
            fleet.kill(rng)
            next_kill = now + KILL_EVERY * rng.uniform(0.5, 1.5)
        if now >= next_freeze:
            fleet.freeze(rng)
            next_freeze = now + FREEZE_EVERY * rng.uniform(0.5, 1.5)
        if now >= next_report:
            say("submitted %d, kills %d, freezes %d, jobs: %s" % (
                users.next, len(fleet.kills), fleet.freezes,
                sql("SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) AS n"
                    " FROM importer.import_jobs GROUP BY 1 ORDER BY 1) s").strip()))
            next_report = now + 60
        time.sleep(0.2)
    for t in threads:
        t.join(180)
    fleet.thaw(force=True)
    submitted = sum(1 for j in jobs if j.id is not None)
    at_end = sql("SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) AS n"
                 " FROM importer.import_jobs GROUP BY 1 ORDER BY 1) s").strip()
    say("chaos over: %d jobs submitted, %d kills, %d freezes; jobs: %s" % (
        submitted, len(fleet.kills), fleet.freezes, at_end))
    if submitted != NJOBS:
        problem("%d of %d jobs submitted" % (submitted, NJOBS))
    odd = sql("SELECT count(*) FROM importer.import_jobs WHERE NOT (status IN"
              " ('completed', 'failed', 'cancelled', 'paused', 'pending', 'processing'))").strip()
    if odd != "0":
        problem("%s jobs in an unknown state" % odd)

    # ---- resume the paused ones; everything must end
    paused_ids = set(sql("SELECT id FROM importer.import_jobs WHERE status = 'paused'").split())
    for j in jobs:
        if j.id is not None and j.id in paused_ids:
            status, body = call("POST", "/api/jobs/%s/resume" % j.id, j.user)
            if status != 202:
                problem("resume job %d at the end: HTTP %s %s" % (j.idx, status, body))
    say("resumed %d paused jobs; draining (at most %d s)" % (len(paused_ids), DRAIN))
    drain_deadline = time.monotonic() + DRAIN
    while time.monotonic() < drain_deadline:
        left = sql("SELECT count(*) FROM importer.import_jobs WHERE status NOT IN"
                   " ('completed', 'failed', 'cancelled')").strip()
        if left == "0":
            break
        time.sleep(1)
    say("drained in %d s" % (time.monotonic() - (drain_deadline - DRAIN)))
    stop.set()
    sampler.sample()

    # ---- workers exit 0 on SIGTERM
    for p in fleet.procs.values():
        p.send_signal(signal.SIGTERM)
    for slot, p in fleet.procs.items():
        try:
            rc = p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "timeout"
        if rc != 0:
            problem("worker pid %d exited %s on SIGTERM" % (p.pid, rc))
    for _, _, p, path, _ in fleet.all:
        with open(path, "rb") as f:
            data = f.read()
        for line in data.splitlines():
            if not line.startswith(b"{"):
                problem("%s: non-JSON line %.200r" % (os.path.basename(path), line))
                break
        if b"Sanitizer" in data or b"runtime error:" in data:
            problem("%s: sanitizer report" % os.path.basename(path))

    # ---- every job against its file
    rows, stats, restarted = job_rows(), record_stats(), restarted_jobs()
    tally = {}
    for j in jobs:
        if j.id is None:
            continue
        if j.id not in rows:
            problem("job %d (%s) is gone" % (j.idx, j.id))
            continue
        check_job(j, rows[j.id], stats, restarted, tally)
    known = {c for j in jobs for c in j.collections}
    stray = [c for c in stats if c not in known]
    if stray:
        problem("records in collections no job defines: %s" % stray[:5])

    # ---- lease ownership from the logs
    leases = check_leases.check([path for _, _, _, path, _ in fleet.all], fleet.kills, ADMIN_URL)
    for v in leases["violations"]:
        problem("lease: " + v)

    # ---- RSS
    rss = rss_summary(sampler.series)
    long_lived = {n: pts for n, pts in sampler.series.items()
                  if (n == "gateway" or n.startswith("worker") or n == "postmaster")
                  and pts[-1][0] - pts[0][0] >= SECONDS * 0.5}
    # PostgreSQL backends that lived as long (the gateway's pool and LISTEN
    # connections): reported, not asserted -- their RSS counts the pages of
    # shared_buffers they have touched, which only grows.
    long_pg = {n: pts for n, pts in sampler.series.items()
               if n.startswith("pg backend") and pts[-1][0] - pts[0][0] >= SECONDS * 0.5}
    for n, pts in long_lived.items():
        if not rss_flat(n, pts):
            problem("RSS of %s not flat: %s" % (n, rss[n]))
    foreign = sum(s.foreign for s in streams)
    if foreign:
        problem("%d job events of another user on the global streams" % foreign)

    summary = {
        "seed": SEED, "seconds": SECONDS, "jobs": NJOBS, "users": NUSERS, "workers": NWORKERS,
        "jobs_by_kind": {k: sum(1 for j in jobs if j.kind == k) for k in ("csv", "ndjson", "backup", "noop")},
        "jobs_by_mode": {m: sum(1 for j in jobs if j.kind != "noop" and j.mode == m and not j.dry_run)
                         for m in ("upsert", "append", "replace")},
        "dry_run": sum(1 for j in jobs if j.dry_run and j.kind != "noop"),
        "rows_in_files": sum(j.rows for j in jobs),
        "at_end_of_chaos": at_end, "final": tally,
        "kills": len(fleet.kills), "freezes": fleet.freezes, "worker_processes": len(fleet.all),
        "ops": dict(sorted(users.ops.items())), "restarts_from_zero": users.restarts,
        "streams": {"count": len(streams), "job_events": sum(s.events for s in streams),
                    "reconnects": sum(s.reconnects for s in streams)},
        "leases": {k: v for k, v in leases.items() if k != "violations"},
        "lease_violations": len(leases["violations"]),
        "rss": {n: v for n, v in rss.items() if n in long_lived or n in long_pg},
        "workers_sampled": sum(1 for n in rss if n.startswith("worker")),
        "pg_backends_max_mb": max([v["max_mb"] for n, v in rss.items() if n.startswith("pg backend")] or [0]),
        "problems": len(problems),
    }
    with open(os.path.join(DIR, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    say("%s: %d problems" % ("PASS" if not problems else "FAIL", len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
