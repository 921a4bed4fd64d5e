"""A one-page picture of a class's grades: points per question and the most common failure of each.

The grader writes it as ``summary.png`` next to ``gradebook.csv``.
"""

from __future__ import annotations

import textwrap
from collections import Counter, defaultdict
from pathlib import Path

from evbroker.grading.reports import NotebookReport

SUMMARY = "summary.png"


def failure_counts(reports: list[NotebookReport]) -> dict[str, Counter]:
    """For each question id, how often each failure message (its first line) came up."""
    found: dict[str, Counter] = defaultdict(Counter)
    for r in reports:
        for q in r.questions:
            if q.points < q.max_points:
                found[q.id][(q.message.splitlines() or [q.status])[0][:160]] += 1
    return found


def draw_summary(reports: list[NotebookReport], out: Path) -> Path:
    """Draw the class summary into ``out/summary.png``; return its path."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    earned: dict[str, list[float]] = defaultdict(list)
    most: dict[str, float] = {}
    for r in sorted(reports, key=lambda r: r.notebook):
        for q in r.questions:
            earned[q.id].append(q.points)
            most[q.id] = q.max_points
    ids = list(earned)
    failures = failure_counts(reports)
    height = max(3.0, 0.55 * len(ids) + 1.5)
    fig, (bars, notes) = plt.subplots(1, 2, figsize=(11.7, height), gridspec_kw={"width_ratios": [1, 1.6]})
    students = len({r.student for r in reports})
    fig.suptitle(f"Class summary: {students} student(s), {len(reports)} notebook(s)", fontsize=12)
    y = list(range(len(ids)))[::-1]
    means = [sum(earned[i]) / len(earned[i]) if earned[i] else 0 for i in ids]
    bars.barh(y, [most[i] for i in ids], color="#e6e6e6", label="points available")
    bars.barh(y, means, color="#3b7dd8", label="mean points earned")
    bars.set_yticks(y, ids, fontsize=8)
    bars.set_xlabel("points")
    bars.set_xlim(0, max(most.values(), default=1) * 1.45)
    bars.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    for yy, i, m in zip(y, ids, means, strict=True):
        full = sum(p >= most[i] for p in earned[i])
        bars.text(most[i], yy, f" {m:.1f}/{most[i]:g} · {full} full", va="center", fontsize=7)
    notes.set_axis_off()
    notes.set_ylim(-0.5, len(ids) - 0.5)
    notes.set_title("most common failure (times seen)", fontsize=9, loc="left")
    for yy, i in zip(y, ids, strict=True):
        common = failures.get(i)
        text = "no failures"
        if common:
            message, count = common.most_common(1)[0]
            text = f"{count}×  " + textwrap.shorten(message, 110)
        notes.text(0, yy, "\n".join(textwrap.wrap(text, 80)), va="center", fontsize=7)
    fig.tight_layout()
    path = Path(out) / SUMMARY
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
