#!/usr/bin/env python3
"""Mutation testing of the core that decides who gets a punch and what HR receives (`make mutate`).

Runs mutmut over the modules named in setup.cfg [mutmut], each with only the tests that exercise it
(setup.cfg [mutate], plus any pytest arguments in [mutate-args]), then prints the score per module and
every surviving mutant. A survivor is either killed by a new test or listed in
tests/mutation-equivalent.txt with the reason it cannot change behaviour (``NAME  reason``).

    scripts/mutate.py                                  # every mutant of every module (hours on 2 cores)
    scripts/mutate.py --module kiosk/store/punches.py  # one module (what a change to it should run)
    scripts/mutate.py --changed main                   # the modules a branch changes against main
    scripts/mutate.py --sample 25                      # 25 mutants of one module, both drawn by today's date
    scripts/mutate.py --keep --module M NAME...        # re-run named mutants, keeping mutants/

Exits 1 when a mutant survives that is not listed as equivalent, or when a module scores under
--min-score (full runs only).
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "tests" / "mutation-equivalent.txt"
KILLED = {"killed", "timeout"}  # a mutant that hangs the tests is caught by the time limit
RESULT_RE = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")
NO_MUTANT = "kiosk.no_such_mutant"
NARROW_ENV = "MUTATE_NARROW"  # JSON {"modules": [...], "tests": [...]} for the mutmut child process


def module_tests() -> dict[str, list[str]]:
    """setup.cfg [mutate]: each mutated module and the test files that exercise it."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    sources = cfg.get("mutmut", "source_paths").split()
    table = {path: cfg.get("mutate", path, fallback="").split() for path in sources}
    missing = [path for path, tests in table.items() if not tests]
    if missing:
        sys.exit(f"mutate: setup.cfg [mutate] names no tests for {', '.join(missing)}; add `PATH = tests...`")
    return table


def module_pytest_args(module: str) -> list[str]:
    """setup.cfg [mutate-args]: extra pytest arguments for one module's stats run and mutants (e.g. -k)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return shlex.split(cfg.get("mutate-args", module, fallback=""))


def dotted(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def mutmut(args: list[str], modules: list[str], tests: list[str], children: int) -> subprocess.CompletedProcess:
    """mutmut in a child process, mutating only ``modules`` and collecting stats from ``tests`` only."""
    extra = [arg for module in modules for arg in module_pytest_args(module)]
    env = {**os.environ, NARROW_ENV: json.dumps({"modules": modules, "tests": tests, "args": extra})}
    if args and args[0] == "run":
        args = ["run", "--max-children", str(children), *args[1:]]
    return subprocess.run([sys.executable, __file__, "--mutmut", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def mutmut_narrowed(argv: list[str]) -> int:
    """Runs inside the child: mutmut's own command line with the module and test selection narrowed."""
    from mutmut import configuration

    narrow = json.loads(os.environ.get(NARROW_ENV, "{}"))
    cfg = configuration.config()
    if narrow.get("modules"):
        cfg.only_mutate = list(narrow["modules"])
    if narrow.get("tests"):
        cfg.pytest_add_cli_args_test_selection = list(narrow["tests"])
    if narrow.get("args"):
        cfg.pytest_add_cli_args = [*cfg.pytest_add_cli_args, *narrow["args"]]
    if argv[:1] == ["diffs"]:  # ours: the changed lines of many mutants in one process
        from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant

        diffs = {}
        for name in argv[1:]:
            lines = get_diff_for_mutant(name, path=find_mutant(name).path).splitlines()
            diffs[name] = ([ln[1:] for ln in lines if ln.startswith("-") and not ln.startswith("---")],
                           [ln[1:] for ln in lines if ln.startswith("+") and not ln.startswith("+++")])
        print(json.dumps(diffs))
        return 0
    from mutmut.__main__ import cli

    return cli(argv, prog_name="mutmut")


SQL_WORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|AND|ORDER BY|LIMIT)\b")  # as we write SQL
SQL_LITERAL = re.compile(r"'[^']*'")


def sql_case_only(removed: list[str], added: list[str]) -> bool:
    """The mutant only changes the letter case of SQL text outside its quoted literals: SQLite's keywords,
    table and column names are case-insensitive, so the statement does the same thing."""
    if not removed or len(removed) != len(added) or not any(SQL_WORD.search(line) for line in removed):
        return False
    return all(old != new and old.lower() == new.lower() and SQL_LITERAL.findall(old) == SQL_LITERAL.findall(new)
               for old, new in zip(removed, added, strict=True))


def diffs(names: list[str], modules: list[str], tests: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    if not names:
        return {}
    proc = mutmut(["diffs", *names], modules, tests, 1)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def results(modules: list[str], tests: list[str]) -> dict[str, str]:
    """Every generated mutant of ``modules`` and its status."""
    proc = mutmut(["results", "--all", "true"], modules, tests, 1)
    prefixes = tuple(dotted(m) + ".x" for m in modules)
    return {m.group(1): m.group(2).strip() for line in proc.stdout.splitlines()
            if (m := RESULT_RE.match(line)) and m.group(1).startswith(prefixes)}


def module_of(name: str) -> str:
    return name.split(".x", 1)[0]


def equivalent() -> dict[str, str]:
    out = {}
    for line in EQUIVALENT.read_text().splitlines() if EQUIVALENT.exists() else []:
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.strip().partition(" ")
            out[name] = reason.strip()
    return out


def run(names: list[str], modules: list[str], tests: list[str], children: int) -> None:
    proc = mutmut(["run", *names], modules, tests, children)
    output = proc.stdout + proc.stderr
    if names == [NO_MUTANT] and "nothing matches" in output:
        return  # mutants generated and tests mapped to functions; none was meant to run
    if proc.returncode != 0 and ("failed to collect stats" in output or "Failed to run clean test" in output):
        sys.exit("mutate: the selected tests fail without any mutant; fix them first:\n" + output[-3000:])
    if proc.returncode != 0:
        sys.exit(f"mutate: mutmut failed (exit {proc.returncode}):\n" + output[-3000:])


def report(status: dict[str, str], known: dict[str, str], min_score: float | None) -> int:
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    stale = sorted(name for name, state in status.items() if name in known and state in KILLED)
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
        print(f"survived: {name} ({state})  -> `python -m mutmut show {name}`")
    for name in stale:
        print(f"stale: {name} is listed in {EQUIVALENT.name} but was killed (the code moved?): remove or fix it")
    print(f"{len(survivors)} unexplained survivor(s)")
    return 1 if survivors or failing or stale else 0


def classify(status: dict[str, str], known: dict[str, str], modules: list[str], tests: list[str]) -> None:
    """Add the survivors that only change the case of SQL text to ``known`` (equivalent by rule)."""
    open_names = [n for n, state in status.items() if state not in KILLED | {"not checked"} and n not in known]
    for name, (removed, added) in diffs(open_names, modules, tests).items():
        if sql_case_only(removed, added):
            known[name] = "SQL letter case only (SQLite keywords and names are case-insensitive)"


def changed_modules(base: str, table: dict[str, list[str]]) -> list[str]:
    """The mutated modules whose source or tests differ from ``base``."""
    proc = subprocess.run(["git", "diff", "--name-only", f"{base}...HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    changed = set(proc.stdout.split())
    return [m for m, tests in table.items() if m in changed or changed & set(tests)]


def main() -> int:
    if sys.argv[1:2] == ["--mutmut"]:
        return mutmut_narrowed(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="only this source path (repeatable); default: all")
    parser.add_argument("--changed", metavar="BASE", help="only the modules changed (or whose tests changed) "
                        "since BASE, e.g. main")
    parser.add_argument("--sample", type=int, help="run only this many mutants, drawn with --seed")
    parser.add_argument("--seed", default=datetime.date.today().isoformat(), help="sample seed (default: today)")
    parser.add_argument("--min-score", type=float, default=0.90, help="least killed share per module (full runs)")
    parser.add_argument("--keep", action="store_true", help="keep mutants/ and earlier results (iterating)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutants")
    parser.add_argument("names", nargs="*", help="run only these mutants (with --module; globs allowed)")
    args = parser.parse_args()
    table = module_tests()
    modules = args.module or (changed_modules(args.changed, table) if args.changed else list(table))
    unknown = [m for m in modules if m not in table]
    if unknown:
        sys.exit(f"mutate: {', '.join(unknown)} is not in setup.cfg [mutmut] source_paths ({', '.join(table)})")
    if not modules:
        print("mutate: no mutated module changed")
        return 0
    known = equivalent()
    if not args.keep:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    exit_code = 0
    if args.sample:
        # A bounded sample for `make test`: one module a day (the seed picks it, so every module comes
        # round), then N of its mutants, so only that module's tests are mapped and run.
        rng = random.Random(args.seed)
        module = modules[0] if len(modules) == 1 else rng.choice(modules)
        run([NO_MUTANT], [module], table[module], args.max_children)  # generates mutants, runs none
        candidates = sorted(n for n in results([module], table[module]) if n not in known)
        picked = rng.sample(candidates, min(args.sample, len(candidates)))
        print(f"mutate: {len(picked)} of {len(candidates)} mutants of {module} (seed {args.seed})", flush=True)
        run(picked, [module], table[module], args.max_children)
        status = {n: s for n, s in results([module], table[module]).items() if n in picked}
        classify(status, known, [module], table[module])
        return report(status, known, None)
    status = {}
    for module in modules:
        # One module at a time with its own tests: the stats run and every mutant use only those.
        print(f"mutate: {module} with {' '.join(table[module])}", flush=True)
        run(args.names or [dotted(module) + ".*"], [module], table[module], args.max_children)
        module_status = results([module], table[module])
        if args.names:
            module_status = {n: s for n, s in module_status.items() if any(fnmatch(n, p) for p in args.names)}
        classify(module_status, known, [module], table[module])
        status.update(module_status)
    exit_code = report(status, known, None if args.names else args.min_score)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
