"""Run some tests several times on a deliberately busy machine: a test that relies on timing shows up.

    .venv/bin/python tests/under_load.py                       # the browser harness, 3 runs, 2 busy CPUs
    .venv/bin/python tests/under_load.py --runs 5 --burners 4 -- tests/browser -k "harness or 04_"

Beside the tests it starts `--burners` processes that each keep one CPU busy (a CI runner shared with
other jobs), runs pytest on the given arguments `--runs` times, one after the other, prints each
run's outcome and duration, and stops the burners it started (also on Ctrl-C or failure). Exits 0
only if every run passed. CI=true is set, so browser tests fail rather than skip without Chromium.

Tests must wait on events with generous bounded deadlines, never on fixed pauses; this script is
how to check that they do.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = ["tests/browser/test_harness.py"]
BURN = "while True: pass"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="how many times to run the tests (default 3)")
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside them (default 2)")
    parser.add_argument("pytest_args", nargs="*", help=f"arguments for pytest (default: {' '.join(DEFAULT_TESTS)})")
    args = parser.parse_args(argv)
    pytest_args = args.pytest_args or DEFAULT_TESTS
    env = {**os.environ, "CI": os.environ.get("CI", "true")}
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.burners)]
    results = []
    try:
        for run in range(1, args.runs + 1):
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            started = time.monotonic()
            code = subprocess.call(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args], cwd=REPO, env=env
            )
            took = time.monotonic() - started
            results.append(code)
            print(f"under_load: run {run}/{args.runs}: exit {code} in {took:.0f} s (load average {load:.1f})")
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    failed = sum(1 for code in results if code != 0)
    print(f"under_load: {len(results) - failed} of {len(results)} runs passed beside {args.burners} busy CPU(s)")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
