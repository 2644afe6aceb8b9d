#!/usr/bin/env python3
"""churn_report.py -- per-interval series and a summary of tests/soak/churn.sh runs.

Usage: churn_report.py OUT_DIR RUN...  (reads OUT_DIR/<run>.samples.tsv)
Writes OUT_DIR/<run>.series.tsv per run and OUT_DIR/summary.md, and prints the
summary. An interval belongs to a phase (start, middle, end: the thirds of the
run; in the held run the middle third is the one with the open transaction)
when both of its samples lie in that phase; the first interval (workers
starting) and intervals that straddle a phase boundary count in no phase.
"""
import csv
import os
import sys

TABLES = ["import_jobs", "import_logs", "import_errors", "import_file_chunks", "records"]
PHASES = ["start", "middle", "end"]
MIB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")


def read_samples(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if len(rows) < 3:
        sys.exit(f"churn_report.py: {path}: {len(rows)} samples, need at least 3")
    for r in rows:
        for k, v in r.items():
            if k != "phase":
                r[k] = float(v)
    return rows


def per_ms(dms, dcalls):
    return dms / dcalls if dcalls > 0 else None


def series(rows):
    out = []
    for i in range(1, len(rows)):
        a, b = rows[i - 1], rows[i]
        dt = b["t"] - a["t"]
        s = {
            "t": round(b["t"] - rows[0]["t"]),
            "phase": b["phase"] if a["phase"] == b["phase"] and i > 1 else "-",
            "load1": b["load1"],
            "small_jobs_s": (b["noop_done"] + b["tiny_done"]) / dt,
            "noop_s": b["noop_done"] / dt,
            "tiny_csv_s": b["tiny_done"] / dt,
            "long_done": int(b["long_done"]),
            # records imported (processed_items of the CSV jobs finished);
            # older runs sampled only the records written (inserts + updates)
            "records_s": (b["records_done"] / dt if "records_done" in b
                          else (b["records_written"] - a["records_written"]) / dt),
            "written_s": (b["records_written"] - a["records_written"]) / dt,
            # CPU seconds the cluster and the workers used per wall second
            # (absent from samples of older runs)
            "cpu": (b["cpu_ticks"] - a["cpu_ticks"]) / TICKS / dt if "cpu_ticks" in b else None,
            "claim_ms": per_ms(b["claim_ms"] - a["claim_ms"], b["claim_calls"] - a["claim_calls"]),
            "noops_ms": per_ms(b["noops_ms"] - a["noops_ms"], b["noops_calls"] - a["noops_calls"]),
            # shared buffers per call (absent from samples of older runs)
            "claim_blks": per_ms(b.get("claim_blks", 0) - a.get("claim_blks", 0),
                                 b["claim_calls"] - a["claim_calls"]) if "claim_blks" in b else None,
            "noops_blks": per_ms(b.get("noops_blks", 0) - a.get("noops_blks", 0),
                                 b["noops_calls"] - a["noops_calls"]) if "noops_blks" in b else None,
            "xmin_age": int(b["xmin_age"]),
            # share of import_jobs updates that were HOT (absent from older runs)
            "jobs_hot_pct": (100 * (b["jobs_hot_upd"] - a["jobs_hot_upd"])
                             / (b["jobs_upd"] - a["jobs_upd"])
                             if "jobs_upd" in b and b["jobs_upd"] > a["jobs_upd"] else None),
            "pending": int(b["pending"]),
        }
        # work per CPU second: what a machine shared with other work does not blur
        s["small_jobs_cpu_s"] = s["small_jobs_s"] / s["cpu"] if s["cpu"] else None
        s["records_cpu_s"] = s["records_s"] / s["cpu"] if s["cpu"] else None
        for tb in TABLES:
            s[tb + "_dead"] = int(b[tb + "_dead"])
            s[tb + "_mib"] = b[tb + "_bytes"] / MIB
        out.append(s)
    return out


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def write_series(path, rows):
    keys = list(rows[0].keys())
    with open(path, "w") as f:
        f.write("\t".join(keys) + "\n")
        for r in rows:
            f.write("\t".join("" if r[k] is None else (f"{r[k]:.3f}" if isinstance(r[k], float)
                                                          else str(r[k])) for k in keys) + "\n")


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarize(name, rows):
    lines = [f"### {name}", ""]
    by_phase = {p: [r for r in rows if r["phase"] == p] for p in PHASES}
    base = {k: mean(r[k] for r in by_phase["start"])
            for k in ("small_jobs_s", "records_s", "small_jobs_cpu_s", "records_cpu_s")}
    lines.append("| phase | intervals | small jobs/s | vs start | records/s | vs start "
                 "| small jobs per CPU s | vs start | records per CPU s | vs start | CPU s/s "
                 "| claim_job ms | claim_job buffers | complete_noops ms | complete_noops buffers "
                 "| import_jobs HOT updates % | max xmin age | load1 |")
    lines.append("| --- |" + " ---: |" * 17)
    for p in PHASES:
        rs = by_phase[p]
        if not rs:
            lines.append(f"| {p} | 0 |" + " |" * 16)
            continue
        jobs, recs = mean(r["small_jobs_s"] for r in rs), mean(r["records_s"] for r in rs)
        jobs_cpu, recs_cpu = mean(r["small_jobs_cpu_s"] for r in rs), mean(r["records_cpu_s"] for r in rs)
        rel = lambda v, k: f"{v / base[k]:.2f}" if base[k] and v is not None else "-"
        lines.append(
            f"| {p} | {len(rs)} | {fmt(jobs)} | {rel(jobs, 'small_jobs_s')} | {fmt(recs, 0)} "
            f"| {rel(recs, 'records_s')} | {fmt(jobs_cpu)} | {rel(jobs_cpu, 'small_jobs_cpu_s')} "
            f"| {fmt(recs_cpu, 0)} | {rel(recs_cpu, 'records_cpu_s')} "
            f"| {fmt(mean(r['cpu'] for r in rs), 2)} | {fmt(mean(r['claim_ms'] for r in rs), 2)} "
            f"| {fmt(mean(r['claim_blks'] for r in rs), 0)} | {fmt(mean(r['noops_ms'] for r in rs), 2)} "
            f"| {fmt(mean(r['noops_blks'] for r in rs), 0)} | {fmt(mean(r['jobs_hot_pct'] for r in rs))} "
            f"| {fmt(max(r['xmin_age'] for r in rs))} "
            f"| {fmt(mean(r['load1'] for r in rs), 2)} |")
    lines += ["", "Size (MiB) and dead tuples at the end of each phase (max dead tuples in the phase):", ""]
    lines.append("| table | " + " | ".join(f"{p} MiB | {p} dead (max)" for p in PHASES) + " |")
    lines.append("| --- |" + " ---: | ---: |" * len(PHASES))
    for tb in TABLES:
        cells = []
        for p in PHASES:
            rs = [r for r in rows if r["phase"] == p]
            if not rs:
                cells += ["", ""]
                continue
            cells += [fmt(rs[-1][tb + "_mib"]),
                      f"{fmt(rs[-1][tb + '_dead'])} ({fmt(max(r[tb + '_dead'] for r in rs))})"]
        lines.append(f"| {tb} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def read_statements(path):
    """queryid -> (calls, ms, buffers, query) from a statements snapshot."""
    stats = {}
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 5 and parts[0]:
                stats[parts[0]] = (float(parts[1]), float(parts[2]), float(parts[3]), parts[4])
    return stats


def statements(out_dir, name, top=8):
    """The statements that took the most server time in each third."""
    lines, before = [], {}
    for p in PHASES:
        now = read_statements(os.path.join(out_dir, f"{name}.statements.{p}.tsv"))
        if now is None:
            return []
        diff = []
        for qid, (calls, ms, blks, query) in now.items():
            c0, m0, b0, _ = before.get(qid, (0, 0, 0, ""))
            if calls > c0:
                diff.append((ms - m0, calls - c0, blks - b0, query))
        diff.sort(reverse=True)
        total = sum(d[0] for d in diff)
        lines += [f"Server time by statement, {p} third ({total / 1000:,.0f} s in all; "
                  "top-level statements: a function call includes the statements it runs):", "",
                  "| statement | calls | s | ms/call | buffers/call |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for ms, calls, blks, query in diff[:top]:
            q = query.replace("|", "\\|")
            lines.append(f"| `{q}` | {int(calls):,} | {ms / 1000:,.1f} | {ms / calls:,.2f} "
                         f"| {blks / calls:,.0f} |")
        lines.append("")
        before = now
    return lines


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: churn_report.py OUT_DIR RUN...")
    out_dir, runs = sys.argv[1], sys.argv[2:]
    doc = ["# Churn study (tests/soak/churn.sh)", ""]
    for name in runs:
        rows = series(read_samples(os.path.join(out_dir, f"{name}.samples.tsv")))
        write_series(os.path.join(out_dir, f"{name}.series.tsv"), rows)
        doc += summarize(name, rows)
        doc += statements(out_dir, name)
    text = "\n".join(doc) + "\n"
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
