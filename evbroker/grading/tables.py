"""Plain-text and markdown renderings of a notebook's grade, for a terminal and for feedback files."""

from __future__ import annotations

from evbroker.grading.marking import Question
from evbroker.grading.outcome import format_points
from evbroker.grading.reports import NotebookReport

RESULT_WORDS = {
    "passed": "✔ passed",
    "partial": "◐ partly right",
    "failed": "✘ not yet right",
    "unanswered": "… not answered",
    "error": "✘ raised an error",
    "timeout": "✘ took too long",
    "missing": "✘ cell missing",
    "not-run": "✘ not run",
}


def result_word(q: Question) -> str:
    return RESULT_WORDS.get(q.status, q.status)


def text_table(report: NotebookReport) -> str:
    """Points per question and the total, aligned for a terminal."""
    rows = [("question", "title", "points", "result")]
    rows += [(q.id, q.title, _score(q.points, q.max_points), result_word(q)) for q in report.questions]
    rows.append(("total", "", _score(report.points, report.max_points), "" if report.status == "ok" else report.status))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(_align(cell, width, i == 2) for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def details(report: NotebookReport) -> list[str]:
    """One paragraph per question that did not earn full points, then the run's notes."""
    out = []
    for q in report.questions:
        if q.status != "passed" and q.message:
            out.append(f"{q.id} ({result_word(q)}):\n" + _indent(q.message))
    out += [f"note: {note}" for note in report.notes if note]
    out += [f"note: {error}" for error in report.cell_errors]
    return out


def markdown_section(report: NotebookReport) -> str:
    """A feedback section for one notebook: a table of questions, then what to look at."""
    lines = [
        f"## {report.notebook}: {_score(report.points, report.max_points)} points",
        "",
        f"Status: {report.status}",
        "",
        "| question | title | points | result |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {q.id} | {q.title} | {_score(q.points, q.max_points)} | {result_word(q)} |" for q in report.questions]
    for q in report.questions:
        if q.status != "passed" and q.message:
            lines += ["", f"### {q.id}: {result_word(q)}", "", "```text", q.message, "```"]
    notes = [n for n in report.notes if n] + report.cell_errors
    if notes:
        lines += ["", "### Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _score(points: float, max_points: float) -> str:
    return f"{format_points(points)} / {format_points(max_points)}"


def _align(cell: str, width: int, right: bool) -> str:
    return cell.rjust(width) if right else cell.ljust(width)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
