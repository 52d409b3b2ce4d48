#!/usr/bin/env python3
"""Mutation testing of the core that decides who gets a punch and what HR receives (`make mutate`).

Runs mutmut over the modules named in setup.cfg [mutmut] with the tests named there, then prints
the score per module and every surviving mutant. A survivor is either killed by a new test or listed
in tests/mutation-equivalent.txt with the reason it cannot change behaviour (``NAME  reason``).

    scripts/mutate.py                # every mutant (about an hour on 2 cores)
    scripts/mutate.py --sample 20    # 20 mutants drawn with today's date as the seed (`make test`)

Exits 1 when a mutant survives that is not listed as equivalent, or when a module scores under
--min-score (full runs only).
"""

from __future__ import annotations

import argparse
import datetime
import random
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "tests" / "mutation-equivalent.txt"
KILLED = {"killed", "timeout"}  # a mutant that hangs the tests is caught by the time limit
RESULT_RE = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")


def mutmut(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=ROOT, capture_output=True, text=True)


def results() -> dict[str, str]:
    """Every generated mutant and its status."""
    proc = mutmut("results", "--all", "true")
    return {m.group(1): m.group(2).strip() for line in proc.stdout.splitlines() if (m := RESULT_RE.match(line))}


def module_of(name: str) -> str:
    return name.split(".x", 1)[0]


def equivalent() -> dict[str, str]:
    out = {}
    for line in EQUIVALENT.read_text().splitlines() if EQUIVALENT.exists() else []:
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.strip().partition(" ")
            out[name] = reason.strip()
    return out


def run(names: list[str]) -> None:
    proc = mutmut("run", *names)
    if proc.returncode != 0 and "failed to collect stats" in proc.stdout + proc.stderr:
        sys.exit("mutate: the selected tests fail without any mutant; fix them first:\n" + proc.stdout[-3000:])


def report(status: dict[str, str], known: dict[str, str], min_score: float | None) -> int:
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for name, state in sorted(status.items()):
        if state == "not checked":
            continue
        counts = by_module[module_of(name)]
        counts["checked"] += 1
        if state in KILLED:
            counts["killed"] += 1
        elif name in known:
            counts["equivalent"] += 1
        else:
            counts["survived"] += 1
            survivors.append((name, state))
    failing = 0
    print(f"{'module':<32} {'checked':>7} {'killed':>7} {'equiv':>6} {'survived':>8} {'score':>7}")
    for module, c in sorted(by_module.items()):
        real = c["checked"] - c["equivalent"]
        score = c["killed"] / real if real else 1.0
        low = min_score is not None and score < min_score
        failing += low
        print(f"{module:<32} {c['checked']:>7} {c['killed']:>7} {c['equivalent']:>6} {c['survived']:>8} "
              f"{score:>6.1%}{'  < goal' if low else ''}")
    for name, state in survivors:
        print(f"survived: {name} ({state})  -> `mutmut show {name}`")
    print(f"{len(survivors)} unexplained survivor(s)")
    return 1 if survivors or failing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, help="run only this many mutants, drawn with --seed")
    parser.add_argument("--seed", default=datetime.date.today().isoformat(), help="sample seed (default: today)")
    parser.add_argument("--min-score", type=float, default=0.90, help="least killed share per module (full runs)")
    args = parser.parse_args()
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    known = equivalent()
    if args.sample:
        run(["kiosk.no_such_mutant"])  # generates the mutants and maps tests to functions, runs none
        candidates = sorted(n for n in results() if n not in known)
        picked = random.Random(args.seed).sample(candidates, min(args.sample, len(candidates)))
        print(f"mutate: {len(picked)} of {len(candidates)} mutants (seed {args.seed})")
        run(picked)
        status = {n: s for n, s in results().items() if n in picked}
        return report(status, known, None)
    run([])
    return report(results(), known, args.min_score)


if __name__ == "__main__":
    sys.exit(main())
