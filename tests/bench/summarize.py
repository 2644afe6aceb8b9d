#!/usr/bin/env python3
"""summarize.py -- turn a benchmark's raw measurements into Markdown.

Usage: summarize.py RAW [--target SPEC]... [--headline FILE] [--bench NAME]

RAW holds lines "case<TAB>value<TAB>unit<TAB>load1" (one per run, written by
lib.sh's `record`). Prints a table with, per case, the median, the spread
(min-max), the number of runs and the load average seen during them.

--target "LABEL|CASE|REF|OP|GOAL" adds a row to a second table: the median of
CASE divided by the median of REF (or the median of CASE itself when REF is
empty), compared with GOAL by OP (">=" or "<="; an empty GOAL only reports). With --headline, each such
row is also appended to FILE as "bench<TAB>label<TAB>value<TAB>goal<TAB>met"
for the README's headline table.
"""
import argparse
import statistics
import sys


def load(path):
    cases = {}
    order = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            case, value, unit, load1 = parts
            if case not in cases:
                cases[case] = {"values": [], "unit": unit, "loads": []}
                order.append(case)
            cases[case]["values"].append(float(value))
            cases[case]["loads"].append(float(load1))
    return order, cases


def fmt(x):
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--target", action="append", default=[])
    ap.add_argument("--headline")
    ap.add_argument("--bench", default="")
    args = ap.parse_args()

    order, cases = load(args.raw)
    out = sys.stdout
    out.write("| case | median | min – max | runs | unit | load avg (1 min) |\n")
    out.write("| --- | ---: | ---: | ---: | --- | --- |\n")
    for c in order:
        v = cases[c]["values"]
        lo, hi = min(cases[c]["loads"]), max(cases[c]["loads"])
        out.write(
            f"| {c} | {fmt(statistics.median(v))} | {fmt(min(v))} – {fmt(max(v))} | {len(v)} "
            f"| {cases[c]['unit']} | {lo:.2f} – {hi:.2f} |\n"
        )
    if not args.target:
        return
    out.write("\n| target | measured | goal | met |\n| --- | ---: | ---: | --- |\n")
    for spec in args.target:
        label, case, ref, op, goal = spec.split("|")
        goal_s = f"{op} {goal}" if goal else "—"
        if case not in cases or (ref and ref not in cases):
            out.write(f"| {label} | not measured | {goal_s} | no |\n")
            value_s, met = "not measured", "no"
        else:
            value = statistics.median(cases[case]["values"])
            if ref:
                value /= statistics.median(cases[ref]["values"])
                value_s = f"{value:.2f} ×"
            else:
                value_s = f"{fmt(value)} {cases[case]['unit']}"
            if goal:
                g = float(goal)
                met = "yes" if (value >= g if op == ">=" else value <= g) else "**no**"
            else:
                met = "(no target)"
            out.write(f"| {label} | {value_s} | {goal_s} | {met} |\n")
        if args.headline:
            with open(args.headline, "a", encoding="utf-8") as h:
                h.write(f"{args.bench}\t{label}\t{value_s}\t{goal_s}\t{met}\n")


if __name__ == "__main__":
    main()
