"""``python -m evbroker.grading check NB`` | ``grade FOLDER --out DIR`` | ``validate NB...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = """usage:
  python -m evbroker.grading check exercises/NN_name.ipynb [--cell-timeout S] [--timeout S]
  python -m evbroker.grading grade FOLDER --out DIR [--jobs N] [--cell-timeout S] [--timeout S] [--source DIR]
                                   [--memory MB] [--checks MODULE] [--unsandboxed]
  python -m evbroker.grading validate solutions/NN_name.ipynb ...
  python -m evbroker.grading class OUT      (the class edition: lessons and exercises, no solutions)
"""


def check_command(argv: Sequence[str]) -> int:
    from evbroker.grading.selfcheck import self_check

    p = argparse.ArgumentParser(prog="python -m evbroker.grading check", description="Check one exercise notebook.")
    p.add_argument("notebook", type=Path)
    p.add_argument("--cell-timeout", type=float, default=120, help="seconds one cell may run (default 120)")
    p.add_argument("--timeout", type=float, default=900, help="seconds the notebook may run (default 900)")
    args = p.parse_args(argv)
    if not args.notebook.is_file():
        print(f"check: no such notebook: {args.notebook}", file=sys.stderr)
        return 2
    report = self_check(args.notebook, cell_timeout=args.cell_timeout, timeout=args.timeout)
    return 1 if report.status in ("invalid-notebook", "kernel-failed") else 0


def validate_command(argv: Sequence[str]) -> int:
    from evbroker.grading.cells import validate_solution

    paths = [Path(a) for a in argv] or sorted(Path("solutions").glob("*.ipynb"))
    problems = [problem for path in paths for problem in validate_solution(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(paths)} notebook(s), {len(problems)} problem(s)")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "check":
        return check_command(rest)
    if command == "grade":
        from evbroker.grading.grader import main as grade_main

        return grade_main(rest)
    if command == "validate":
        return validate_command(rest)
    if command == "class" and len(rest) == 1:
        from evbroker.grading.edition import write_class_edition

        written = write_class_edition(Path(rest[0]))
        print(f"class edition: {len(written)} file(s) in {rest[0]} (lessons and exercises; no solutions)")
        return 0
    print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
