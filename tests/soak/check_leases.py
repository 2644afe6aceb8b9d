"""check_leases.py -- proves from the workers' logs that no job was processed by
two workers at once (used by tests/soak/soak.py).

Sources: each worker's JSON log (IMPORTER_LOG_LEVEL=debug): `job.claimed`
(job_id, worker_id, lease_id, processed_items = the checkpoint the lease starts
from), `job.step` (one per committed batch, processed_items after it),
`job.step_done`, `job.lost`, `job.retry`, `job.connection_lost`,
`job.reattached`; the kill -9 times of the soak; and import_logs
(`job.rescued`, `job.retried` "from the beginning") from the database.

Per job, the leases in claim order; for each lease A followed by lease B
(unless the job was retried from zero in between): every batch A committed
carries processed_items <= the checkpoint B started from. That is the proof,
and it does not depend on clocks: a batch A committed after B's claim would
carry more than B's start, and one done again by B would show as B starting
from less than A reached. A's holding interval is [A's claim, A's last line]
(a killed worker's ends at its kill); when it reaches past B's claim, the
overlap is counted as across a lease expiry (a `job.rescued` of the job
between the two claims) or as a late log line (A's last lines written after
B's claim on a loaded machine); the value rule above must hold for both.
"""
import json
import subprocess
from datetime import datetime

END_EVENTS = ("job.step_done", "job.lost", "job.retry", "job.connection_lost")


def ts(s):
    return datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def db_events(admin_url):
    q = ("SELECT job_id, event, extract(epoch FROM ts), coalesce(message, '') FROM importer.import_logs"
         " WHERE event IN ('job.rescued', 'job.retried') ORDER BY id")
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", admin_url, "-c", q],
                       capture_output=True, text=True, timeout=300, check=True)
    rescues, restarts = {}, {}
    for line in r.stdout.splitlines():
        job, event, t, msg = line.split("|", 3)
        if event == "job.rescued":
            rescues.setdefault(job, []).append(float(t))
        elif msg == "retried from the beginning":
            restarts.setdefault(job, []).append(float(t))
    return rescues, restarts


def read_logs(paths):
    leases = {}  # lease_id -> dict
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    e = json.loads(raw)
                except ValueError:
                    continue  # soak.py reports non-JSON lines
                ev, lease = e.get("event"), e.get("lease_id")
                if lease is None or not ev or not ev.startswith("job."):
                    continue
                t = ts(e["ts"])
                L = leases.setdefault(lease, {"lease": lease, "job": e.get("job_id"), "worker": e.get("worker_id"),
                                              "claim": None, "start": 0, "commits": [], "last": t, "ends": []})
                if ev == "job.claimed":
                    L["claim"], L["start"] = t, e.get("processed_items", 0)
                elif ev == "job.step":
                    L["commits"].append((t, e["processed_items"]))
                elif ev in END_EVENTS:
                    L["ends"].append((t, ev))
                L["last"] = max(L["last"], t)
    return leases


def between(times, a, b):
    return any(a < t < b for t in times)


def check(paths, kills, admin_url):
    """kills: [(unix ts, worker_id)]. Returns the tally and a list of violations."""
    leases = read_logs(paths)
    rescues, restarts = db_events(admin_url)
    killed = {}
    for t, w in kills:
        killed.setdefault(w, t)
    by_job = {}
    out = {"leases": 0, "commits": 0, "jobs": 0, "handovers": 0, "overlaps_across_expiry": 0, "overlaps_late_log_line": 0,
           "late_logged_commits": 0, "leases_without_claim_line": 0, "violations": []}
    for L in leases.values():
        if L["claim"] is None:
            # claimed, then killed before the claim line was written (or a
            # lease from a log that was cut): nothing to order it by
            out["leases_without_claim_line"] += 1
            continue
        if not L["ends"] and L["worker"] in killed and killed[L["worker"]] >= L["last"]:
            L["last"] = killed[L["worker"]]
        by_job.setdefault(L["job"], []).append(L)
        out["leases"] += 1
        out["commits"] += len(L["commits"])
    v = out["violations"]
    for job, ls in by_job.items():
        out["jobs"] += 1
        ls.sort(key=lambda L: L["claim"])
        for A, B in zip(ls, ls[1:]):
            out["handovers"] += 1
            restarted = between(restarts.get(job, []), A["claim"], B["claim"])
            a_max = max([p for _, p in A["commits"]], default=None)
            if A["last"] > B["claim"]:
                # A's lines reach past B's claim: either A's lease expired
                # (a rescue in between) or A's last lines were written late
                # (a loaded machine, a SIGSTOP between its commit and its
                # log line). Either way the values below decide.
                if between(rescues.get(job, []), A["claim"], B["claim"]):
                    out["overlaps_across_expiry"] += 1
                else:
                    out["overlaps_late_log_line"] += 1
                out["late_logged_commits"] += sum(1 for t, _ in A["commits"] if t > B["claim"])
            if a_max is not None and not restarted and B["start"] < a_max:
                v.append("job %s: lease %s (%s) committed processed_items %d, but lease %s (%s) claimed at"
                         " %.3f started from %d: a batch committed after the job changed hands, or done"
                         " twice" % (job, A["lease"], A["worker"], a_max, B["lease"], B["worker"], B["claim"],
                                     B["start"]))
    return out
