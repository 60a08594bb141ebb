"""Break the rules on purpose, one at a time, and check that their tests catch it.

Each breakage in tests/breakages/breakages.toml names a file, an exact text in it, the text that
breaks the rule, and the tests (pytest arguments) that must then fail. The project is copied to
a temporary directory (every file git tracks or would track, as the working tree has it); each
breakage is applied there alone and its tests run from that copy, so that sqitch deploys the
broken SQL and the relay imports the broken Python. A breakage is

    PASS    its tests failed: the rule is guarded
    MISSED  its tests passed: nothing guards the rule (write the test)
    ERROR   its tests could not run (not found, collection error, timeout)

A text not found exactly once in its file is an error before anything runs: the rule moved,
so update the data. First, unless --no-baseline, the named tests run once on the unbroken copy
and must pass, so that a PASS is the breakage's doing.

    bin/break-rules                       # every breakage
    bin/break-rules cooldown_30s ...      # some, by name
    bin/break-rules --list
    bin/break-rules --results tests/breakages/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().with_name("breakages.toml")
TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Breakage:
    name: str
    rule: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]


@dataclass
class Outcome:
    breakage: Breakage
    verdict: str
    seconds: float
    note: str


def load(path: Path) -> list[Breakage]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    breakages = []
    for entry in data.get("breakage", []):
        missing = {"name", "rule", "file", "find", "replace", "tests"} - entry.keys()
        if missing:
            raise SystemExit(f"{path}: breakage {entry.get('name', '?')!r} lacks {', '.join(sorted(missing))}")
        breakages.append(
            Breakage(
                entry["name"], entry["rule"], entry["file"], entry["find"], entry["replace"], tuple(entry["tests"])
            )
        )
    names = [b.name for b in breakages]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: breakage names repeat")
    return breakages


def check_texts(breakages: list[Breakage], root: Path) -> list[str]:
    """Every find text must be in its file exactly once, and differ from its replacement."""
    problems = []
    for b in breakages:
        target = root / b.file
        if not target.is_file():
            problems.append(f"{b.name}: {b.file} does not exist (the rule moved: update {DATA.name})")
            continue
        found = target.read_text(encoding="utf-8").count(b.find)
        if found != 1:
            problems.append(
                f"{b.name}: its text is in {b.file} {found} times, not once (the rule moved: update {DATA.name})"
            )
        if b.find == b.replace:
            problems.append(f"{b.name}: the replacement is the text itself")
    return problems


def copy_project(destination: Path, committed: bool = False) -> None:
    """The working tree's files that git tracks or would track (ignored ones, .venv and .local, stay),
    or with committed=True the files of the last commit."""
    if committed:
        destination.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=PROJECT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
        return
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = PROJECT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)


def environment(copy: Path) -> dict[str, str]:
    """The copy's app and kit come first on sys.path, for pytest and the servers it starts (the
    editable install's finder runs after sys.path); none of the service's settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_HANDLER_", "PYTEST_"))}
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(copy: Path) -> None:
    code = "import app, kit; print(app.__file__); print(kit.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=copy, env=environment(copy), check=True, capture_output=True, text=True
    ).stdout.split()
    for path in out:
        if not Path(path).resolve().is_relative_to(copy.resolve()):
            raise SystemExit(f"the copy imports {path}, not its own code: check the editable install")


def pytest(copy: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-n", "0", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(
            cmd, cwd=copy, env=environment(copy), capture_output=True, text=True, timeout=TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_SECONDS} s"
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return done.returncode, summary(lines)


def summary(lines: list[str]) -> str:
    """pytest's last line (`1 failed, 2 passed in 40.1s`), the first failed test and its first error line."""
    last = lines[-1].strip("= ") if lines else "no output"
    failed = next((line for line in lines if line.startswith(("FAILED ", "ERROR "))), "")
    failed = re.sub(r" - .*", "", failed)
    error = next((line[1:].strip() for line in lines if line.startswith("E ")), "")
    parts = [last, failed, error[:160]]
    return "; ".join(part for part in parts if part)


def baseline_runs(breakages: list[Breakage]) -> list[tuple[str, ...]]:
    """The pytest runs that check every chosen breakage's tests pass unbroken: the tests named by
    path or node id together, each set with options (-k ...) on its own."""
    plain = [t for b in breakages if not any(a.startswith("-") for a in b.tests) for t in b.tests]
    runs = [tuple(dict.fromkeys(plain))] if plain else []
    return runs + list(dict.fromkeys(b.tests for b in breakages if any(a.startswith("-") for a in b.tests)))


def run(breakage: Breakage, copy: Path) -> Outcome:
    target = copy / breakage.file
    original = target.read_text(encoding="utf-8")
    started = time.monotonic()
    try:
        target.write_text(original.replace(breakage.find, breakage.replace, 1), encoding="utf-8")
        code, note = pytest(copy, breakage.tests)
    finally:
        target.write_text(original, encoding="utf-8")
    # pytest: 0 all passed, 1 some failed, 2 interrupted or collection errors, 4 usage, 5 no tests.
    verdict = {0: "MISSED", 1: "PASS"}.get(code, "ERROR")
    if verdict == "ERROR":
        note = f"pytest exit {code}: {note}"
    return Outcome(breakage, verdict, time.monotonic() - started, note)


def write_results(path: Path, outcomes: list[Outcome], command: str, committed: bool) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=PROJECT, capture_output=True, text=True, check=False
    ).stdout.strip()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        f"| `{o.breakage.name}` | {o.breakage.rule} | `{o.breakage.file}` | **{o.verdict}** | {o.note} |"
        for o in outcomes
    ]
    tree = f"{head} with uncommitted changes" if dirty and not committed else head
    text = "\n".join(
        [
            "# Deliberate breakages and the tests that catch them",
            "",
            f"Written by `{command}` on {when}, from commit {tree}. Each breakage is applied alone to a",
            "copy of the project and its tests run there: PASS means they failed (the rule is guarded),",
            "MISSED that they passed. The breakages are listed in `tests/breakages/breakages.toml`;",
            "docs/conventions.md says how to add one.",
            "",
            "| breakage | rule | file | verdict | tests |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/break-rules", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="breakages to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the breakages and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip running the tests on the unbroken copy")
    parser.add_argument("--results", type=Path, help="write the outcomes as a Markdown table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--head", action="store_true", help="copy the last commit instead of the working tree")
    parser.add_argument("--data", type=Path, default=DATA, help="the breakages (default: %(default)s)")
    args = parser.parse_args(argv)

    breakages = load(args.data)
    if args.list:
        for b in breakages:
            print(f"{b.name:32} {b.file}: {b.rule}")
        return 0
    unknown = set(args.names) - {b.name for b in breakages}
    if unknown:
        print(f"break-rules: no breakage named {', '.join(sorted(unknown))} (--list shows them)", file=sys.stderr)
        return 2
    chosen = [b for b in breakages if not args.names or b.name in args.names]

    workdir = Path(tempfile.mkdtemp(prefix="break-rules-"))
    copy = workdir / "project"
    outcomes: list[Outcome] = []
    try:
        copy_project(copy, committed=args.head)
        problems = check_texts(chosen, copy)
        if problems:
            print("break-rules: the data does not match the code:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
        check_imports(copy)
        print(f"break-rules: {len(chosen)} breakages, copy in {copy}", flush=True)
        if not args.no_baseline:
            for tests in baseline_runs(chosen):
                started = time.monotonic()
                code, note = pytest(copy, tests)
                seconds = time.monotonic() - started
                print(f"{'ok' if code == 0 else 'ERROR':7} baseline ({seconds:.0f} s): {note}", flush=True)
                if code != 0:
                    print(f"break-rules: {' '.join(tests)} fail unbroken; fix that first", file=sys.stderr)
                    return 2
        outcomes = []
        for b in chosen:
            outcome = run(b, copy)
            outcomes.append(outcome)
            print(f"{outcome.verdict:7} {b.name} ({outcome.seconds:.0f} s): {outcome.note}", flush=True)
    finally:
        if args.keep:
            print(f"break-rules: kept {copy}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    verdicts = [o.verdict for o in outcomes]
    print(
        f"break-rules: {verdicts.count('PASS')} caught, {verdicts.count('MISSED')} missed, "
        f"{verdicts.count('ERROR')} errors"
    )
    if args.results:
        write_results(args.results, outcomes, "bin/break-rules " + " ".join(argv or sys.argv[1:]), args.head)
    if "ERROR" in verdicts:
        return 2
    return 1 if "MISSED" in verdicts else 0


if __name__ == "__main__":
    sys.exit(main())
