#!/usr/bin/env python3
"""Where the scaling curve flattens and what bounds it, from the figures.

Usage: scaling_verdict.py RAW_TSV WAITS_DIR CORES FLEET...

RAW_TSV holds scaling.sh's records (case, value, unit, load); WAITS_DIR its
scaling-waits-N.tsv (what the workers' sessions were doing). Prints a
paragraph for BENCHMARKS.md: the fleet size after which adding workers gains
less than 10 %, how busy the machine and the server were there, and what the
extra workers' sessions waited on instead.
"""
import statistics
import sys

FLAT = 0.10  # a gain below this is "flat"


def medians(path):
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            case, value = line.rstrip("\n").split("\t")[:2]
            values.setdefault(case, []).append(float(value))
    return {case: statistics.median(v) for case, v in values.items()}


def waits(path):
    shares = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            what, share = line.rstrip("\n").split("\t")
            shares[what] = float(share)
    return shares


def main():
    raw, waits_dir, cores = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fleets = [int(n) for n in sys.argv[4:]]
    m = medians(raw)
    rate = {n: m[f"{n} workers: records/s"] for n in fleets}
    flat = fleets[-1]
    for a, b in zip(fleets, fleets[1:]):
        if rate[b] < rate[a] * (1 + FLAT):
            flat = a
            break
    steps = ", ".join(f"{a} → {b} workers {100 * (rate[b] / rate[a] - 1):+.0f} %"
                      for a, b in zip(fleets, fleets[1:]))
    busy = m[f"{flat} workers: machine busy (all processes)"]
    server = m[f"{flat} workers: PostgreSQL CPU"]
    worker = m[f"{flat} workers: worker CPU"]
    print(f"**Where it flattens:** at {flat} workers ({steps}). There the machine is "
          f"{busy:.0f} % busy, PostgreSQL using {server:.2f} and the workers {worker:.2f} "
          f"of its {cores} cores", end="")
    if busy >= 85:
        print(": **CPU** is the bottleneck, most of it the server's.", end="")
    else:
        print("; the CPU is not saturated, so the limit is elsewhere (the waits below).",
              end="")
    last = fleets[-1]
    if last != flat:
        w_flat, w_last = waits(f"{waits_dir}/scaling-waits-{flat}.tsv"), \
            waits(f"{waits_dir}/scaling-waits-{last}.tsv")
        grown = sorted(((w_last.get(k, 0) - w_flat.get(k, 0), k) for k in w_last
                        if k.startswith("server: waiting")), reverse=True)
        if grown and grown[0][0] > 0:
            d, k = grown[0]
            print(f" Workers beyond that add waiting, not throughput: at {last} workers the "
                  f"sessions spend {w_last[k]:.1f} % of samples on "
                  f"`{k.removeprefix('server: waiting on ')}` (at {flat}: "
                  f"{w_flat.get(k, 0):.1f} %) and {w_last.get('server: running on CPU', 0):.1f} % "
                  f"running (at {flat}: {w_flat.get('server: running on CPU', 0):.1f} %)", end="")
            if k.endswith("Lock:extend"):
                print(" -- `Lock:extend` is the lock on growing a table or index by a page: "
                      "all imports append to `records` and its primary key at once", end="")
            print(".", end="")
        wal = {n: m[f"{n} workers: WAL written"] for n in (flat, last)}
        wal_waits = sum(v for k, v in w_last.items() if "WAL" in k)
        verdict = ": WAL is not what limits" if wal_waits < 5 else ""
        print(f" WAL written: {wal[flat]:.0f} MB/s at {flat} workers, {wal[last]:.0f} at "
              f"{last}, where waits on WAL were {wal_waits:.1f} % of samples{verdict}.")
    else:
        print()


if __name__ == "__main__":
    main()
