"""The lesson sequence as a learner meets it: numbered without gaps, each lesson shaped the same way.

Reads the committed lessons, notebooks/NN_*.ipynb with their outputs, and README.md; runs
nothing. Each lesson opens with "Before you start" (what you'll do, learn and need), asks at
least one **Predict:** question and shows the answer right after it, has an explorer widget and
a static timeline whose picture is committed (so a reader without a kernel still sees the
story), ends with a quiz of 3-5 questions and an "On your own" section whose links lead to
notebooks that exist, and carries no error, no stderr and no cell that never ran. The README's
"## Lessons" list names exactly these files, in order.

Each check is a function returning the problems it found (empty: fine), so the last tests can
prove that every check rejects a lesson missing what it looks for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
#: The sequence has this many lessons, 00 to 07.
LESSON_COUNT = 8

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
EXPLORERS = ("QueueExplorer", "DeliveryExplorer", "WorkflowExplorer")
EXPLORER_CALL = re.compile(r"\beb\.widgets\.(" + "|".join(EXPLORERS) + r")\(")
TIMELINE_CALL = re.compile(r"\beb\.plot\.timeline\(")
QUIZ_CALL = re.compile(r"\beb\.widgets\.Quiz\(")
OPENING_LABELS = ("What you'll do", "What you'll learn", "What you'll need")
# each label in bold, its colon inside or outside the bold: **What you'll do:** or **What you'll do**:
LABEL_PATTERNS = {
    label: re.compile(r"\*\*" + re.escape(label).replace("'", "['\u2019]") + r":?\*\*") for label in OPENING_LABELS
}
HEADING = re.compile(r"^(#{1,2})\s+(.*?)\s*$")
# [text](target): the target up to a space or the closing parenthesis
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
PREDICT = re.compile(r"^\s*\*\*Predict:\*\*", re.MULTILINE)
QUIZ_QUESTION = re.compile(r"^\d+\. ", re.MULTILINE)
README_LINK = re.compile(r"\]\(\s*(notebooks/\d\d_[^)\s]+\.ipynb)\s*\)")


@dataclass
class Section:
    """A level-2 section of a notebook: its title, its markdown text and its code cells."""

    title: str
    index: int
    markdown: str = ""
    code: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------- reading notebooks


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def text_of(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def source(cell: dict[str, Any]) -> str:
    return text_of(cell.get("source", ""))


def outputs(cell: dict[str, Any]) -> list[dict[str, Any]]:
    return cell.get("outputs", [])


def plain_text(out: dict[str, Any]) -> str:
    return text_of(out.get("data", {}).get("text/plain", ""))


def code_cells(nb: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def sections(nb: dict[str, Any]) -> list[Section]:
    """Split a notebook at its ``## `` headings (a ``# `` heading ends a section too; fenced code is skipped)."""
    current = Section("", 0)
    found = [current]
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            current.code.append(cell)
            continue
        if cell["cell_type"] != "markdown":
            continue
        in_fence = False
        for line in source(cell).splitlines():
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
            heading = None if in_fence else HEADING.match(line)
            if heading:
                current = Section(heading.group(2) if heading.group(1) == "##" else "", len(found))
                found.append(current)
            else:
                current.markdown += line + "\n"
    return found


def section(nb: dict[str, Any], title: str) -> Section | None:
    return next((s for s in sections(nb) if s.title.lower() == title.lower()), None)


def notebook_links(markdown: str) -> list[str]:
    """Relative links to notebooks in ``markdown``, without any #anchor."""
    targets = [m.group(1).split("#", 1)[0] for m in LINK.finditer(markdown)]
    return [t for t in targets if t.endswith(".ipynb") and "://" not in t]


# ---------------------------------------------------------------------------- the checks


def numbering_problems(names: list[str], count: int = LESSON_COUNT) -> list[str]:
    numbers = [int(n[:2]) for n in names]
    if numbers == list(range(count)):
        return []
    missing = [f"{n:02d}" for n in range(count) if n not in numbers]
    doubled = sorted({f"{n:02d}" for n in numbers if numbers.count(n) > 1})
    extra = sorted({f"{n:02d}" for n in numbers if n >= count})
    return [
        f"notebooks/ should hold lessons 00 to {count - 1:02d}, one file each; missing: {missing or 'none'}, "
        f"more than one file: {doubled or 'none'}, beyond the sequence: {extra or 'none'} "
        f"(found: {', '.join(names) or 'no lessons'})"
    ]


def readme_problems(readme: str, files: list[str]) -> list[str]:
    """``files`` as README links would name them: ``notebooks/NN_name.ipynb``, in order."""
    match = re.search(r"^## Lessons[ \t]*\n(.*?)(?=^## |\Z)", readme, flags=re.MULTILINE | re.DOTALL)
    if not match:
        return ["README.md has no '## Lessons' section listing notebooks/NN_name.ipynb links"]
    listed = list(dict.fromkeys(README_LINK.findall(match.group(1))))
    if listed == files:
        return []
    return [
        "README.md's '## Lessons' list and notebooks/ differ: "
        f"listed only in README: {[x for x in listed if x not in files] or 'none'}; "
        f"files not in README: {[x for x in files if x not in listed] or 'none'}; "
        f"README order: {listed}; file order: {files}"
    ]


def title_problems(nb: dict[str, Any], name: str) -> list[str]:
    cells = nb["cells"]
    first = source(cells[0]).lstrip() if cells else ""
    if cells and cells[0]["cell_type"] == "markdown" and first.startswith(f"# {name[:2]} · "):
        return []
    shown = first.splitlines()[0] if first else "nothing"
    return [f"the first cell should be the title, '# {name[:2]} · Title with a verb' (got {shown!r})"]


def opening_problems(nb: dict[str, Any], name: str) -> list[str]:
    titled = [s for s in sections(nb) if s.title]
    if not titled or titled[0].title != "Before you start":
        return [f"the first '## ' section should be '## Before you start' (sections: {[s.title for s in titled]})"]
    missing = [f"**{label}**" for label, pattern in LABEL_PATTERNS.items() if not pattern.search(titled[0].markdown)]
    return [f"'## Before you start' lacks {', '.join(missing)}"] if missing else []


def predict_problems(nb: dict[str, Any], name: str) -> list[str]:
    cells = nb["cells"]
    markdown = [(i, source(c)) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]
    if not any(text.lstrip().startswith("**Predict:**") for _, text in markdown):
        return ["no markdown cell starts with '**Predict:**'"]
    problems = []
    # every Predict, in a cell of its own or opening a paragraph, is followed by a run that shows the answer
    for i, text in markdown:
        if not PREDICT.search(text):
            continue
        following = next((c for c in cells[i + 1 :] if c["cell_type"] == "code"), None)
        if following is None or not outputs(following):
            problems.append(
                f"the Predict in cell {i + 1} ({text.strip()[:50]!r}...) should be followed by a code cell whose "
                "output shows the answer"
            )
    return problems


def explorer_problems(nb: dict[str, Any], name: str) -> list[str]:
    if not any(EXPLORER_CALL.search(source(c)) for _, c in code_cells(nb)):
        return [f"no code cell creates eb.widgets.{'/'.join(EXPLORERS)}"]
    views = [
        out["data"][WIDGET_VIEW].get("model_id")
        for _, cell in code_cells(nb)
        for out in outputs(cell)
        if WIDGET_VIEW in out.get("data", {}) and plain_text(out).startswith(EXPLORERS)
    ]
    if not views:
        return ["an explorer is created but never displayed (no widget output shows one)"]
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    unsaved = [v for v in views if v not in state]
    if unsaved:
        return [
            f"the explorer's widget state is not saved in the notebook (model ids {unsaved}); build it with "
            f"`python -m evbroker.build notebooks notebooks/{name}` so readers without a kernel see it"
        ]
    return []


def timeline_problems(nb: dict[str, Any], name: str) -> list[str]:
    timelines = [c for _, c in code_cells(nb) if TIMELINE_CALL.search(source(c))]
    if not timelines:
        return ["no code cell draws eb.plot.timeline(...)"]
    if not any("image/png" in out.get("data", {}) for c in timelines for out in outputs(c)):
        return ["eb.plot.timeline(...) is called but no picture of it is committed"]
    return []


def quiz_problems(nb: dict[str, Any], name: str) -> list[str]:
    check = section(nb, "Check your understanding")
    if check is None:
        return ["no '## Check your understanding' section"]
    quizzes = [c for c in check.code if QUIZ_CALL.search(source(c))]
    if not quizzes:
        return ["'## Check your understanding' has no eb.widgets.Quiz([...]) cell"]
    shown = [plain_text(out) for out in outputs(quizzes[0]) if WIDGET_VIEW in out.get("data", {})]
    if not shown:
        return ["the quiz is never displayed (put it last in its cell)"]
    questions = len(QUIZ_QUESTION.findall(shown[0]))
    return [] if 3 <= questions <= 5 else [f"the quiz has {questions} questions; a lesson's quiz has 3 to 5"]


def on_your_own_problems(nb: dict[str, Any], name: str, folder: Path = NOTEBOOKS) -> list[str]:
    titles = [s.title for s in sections(nb)]
    own = section(nb, "On your own")
    if own is None:
        return ["no '## On your own' section"]
    if "Check your understanding" not in titles or titles.index("Check your understanding") > own.index:
        return ["'## On your own' should come after '## Check your understanding'"]
    links = notebook_links(own.markdown)
    if not links:
        return ["'## On your own' links to no notebook (its exercise, or the next lesson)"]
    broken = [link for link in links if not (folder / link).resolve().is_file()]
    return [f"'## On your own' links to notebooks that do not exist: {broken}"] if broken else []


def link_problems(nb: dict[str, Any], name: str, folder: Path = NOTEBOOKS) -> list[str]:
    links = [link for c in nb["cells"] if c["cell_type"] == "markdown" for link in notebook_links(source(c))]
    broken = sorted({link for link in links if not (folder / link).resolve().is_file()})
    return [f"links to notebooks that do not exist (relative to notebooks/): {broken}"] if broken else []


def output_problems(nb: dict[str, Any], name: str) -> list[str]:
    problems = []
    for i, cell in code_cells(nb):
        for out in outputs(cell):
            if out.get("output_type") == "error":
                problems.append(f"cell {i + 1}: {out.get('ename')}: {str(out.get('evalue', ''))[:80]}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                problems.append(f"cell {i + 1} wrote to stderr: {text_of(out.get('text', '')).strip()[:80]!r}")
    return problems


def execution_problems(nb: dict[str, Any], name: str) -> list[str]:
    cells = code_cells(nb)
    empty = [i + 1 for i, c in cells if not source(c).strip()]
    if empty:
        return [f"empty code cells {empty}; remove them"]
    counts = [c.get("execution_count") for _, c in cells]
    if counts != list(range(1, len(cells) + 1)):
        return [
            f"code cells should have run once each, top to bottom (execution counts 1..{len(cells)}); got {counts}. "
            f"Rebuild with `python -m evbroker.build notebooks notebooks/{name}`"
        ]
    return []


CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "title": title_problems,
    "opening": opening_problems,
    "predict": predict_problems,
    "explorer": explorer_problems,
    "timeline": timeline_problems,
    "quiz": quiz_problems,
    "on-your-own": on_your_own_problems,
    "links": link_problems,
    "outputs": output_problems,
    "execution": execution_problems,
}


# ---------------------------------------------------------------------------- the sequence


def test_lessons_are_numbered_00_to_07_without_gaps():
    assert numbering_problems([p.name for p in LESSONS]) == []


def test_readme_lists_the_lessons_in_order():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_problems(readme, [f"notebooks/{p.name}" for p in LESSONS]) == []


# ---------------------------------------------------------------------------- each lesson's shape


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_has_its_part(path, check):
    problems = CHECKS[check](read(path), path.name)
    assert not problems, f"{path.name} ({check}):\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------------------- the checks can fail


def _md(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text: str, count: int | None, *outs: dict[str, Any]) -> dict[str, Any]:
    return {"cell_type": "code", "metadata": {}, "source": text, "execution_count": count, "outputs": list(outs)}


def _widget(model_id: str, text: str) -> dict[str, Any]:
    data = {WIDGET_VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0}, "text/plain": text}
    return {"output_type": "execute_result", "data": data, "metadata": {}, "execution_count": 1}


def _stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def good_lesson() -> dict[str, Any]:
    """A tiny lesson with every part, as the build would commit it."""
    png = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}
    quiz = _widget("q1", "1. One?\n   (0) a\n   (1) b\n2. Two?\n   (0) a\n   (1) b\n3. Three?\n   (0) a\n   (1) b")
    cells = [
        _md("# 00 · Start here: send one message"),
        _md(
            "## Before you start\n\n**What you'll do:** run.\n\n**What you'll learn**: acks.\n\n"
            "**What you'll need:** 10 min."
        ),
        _code("import evbroker as eb", 1),
        _md("**Predict:** when does the ack arrive?"),
        _code("print(b.trace.table())", 2, _stream("time kind\n")),
        _code("ax = eb.plot.timeline(b)", 3, png),
        _code("eb.widgets.QueueExplorer()", 4, _widget("e1", "QueueExplorer(mode='queue'): published 4")),
        _md("## Check your understanding"),
        _code("eb.widgets.Quiz([...])", 5, quiz),
        _md("## On your own\n\n```\n## not a heading\n```\n\n**Next:** [01 · Announce](01_announce.ipynb)"),
    ]
    state = {WIDGET_STATE: {"state": {"e1": {}, "q1": {}}, "version_major": 2, "version_minor": 0}}
    return {"cells": cells, "metadata": {"widgets": state}, "nbformat": 4, "nbformat_minor": 5}


def _check(nb: dict[str, Any], check: str, folder: Path) -> list[str]:
    if check in ("on-your-own", "links"):
        return CHECKS[check](nb, "00_start_here.ipynb", folder)  # type: ignore[call-arg]
    return CHECKS[check](nb, "00_start_here.ipynb")


@pytest.fixture
def lesson_folder(tmp_path: Path) -> Path:
    (tmp_path / "01_announce.ipynb").write_text("{}", encoding="utf-8")
    return tmp_path


def test_a_lesson_with_every_part_passes_every_check(lesson_folder):
    nb = good_lesson()
    assert {check: _check(nb, check, lesson_folder) for check in CHECKS} == {check: [] for check in CHECKS}


def _replace(nb: dict[str, Any], index: int, cell: dict[str, Any] | None) -> dict[str, Any]:
    cells = list(nb["cells"])
    if cell is None:
        del cells[index]
    else:
        cells[index] = cell
    return {**nb, "cells": cells}


BROKEN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "title": lambda nb: _replace(nb, 0, _md("# Start here")),
    "opening": lambda nb: _replace(nb, 1, _md("## Before you start\n\n**What you'll do:** run.")),
    "predict": lambda nb: _replace(nb, 4, _code("b.run()", 2)),
    "explorer": lambda nb: _replace(nb, 6, _code("eb.widgets.QueueExplorer()", 4)),
    "timeline": lambda nb: _replace(nb, 5, _code("ax = eb.plot.timeline(b)", 3)),
    "quiz": lambda nb: _replace(nb, 8, _code("eb.widgets.Quiz([...])", 5, _widget("q1", "1. One?\n2. Two?"))),
    "on-your-own": lambda nb: _replace(nb, 9, _md("## On your own\n\nTry [the exercise](../exercises/00_x.ipynb).")),
    "links": lambda nb: _replace(nb, 3, _md("**Predict:** see [lesson 09](09_missing.ipynb).")),
    "outputs": lambda nb: _replace(nb, 4, _code("print(b.trace.table())", 2, _stream("DeprecationWarning", "stderr"))),
    "execution": lambda nb: _replace(nb, 5, _code("ax = eb.plot.timeline(b)", None)),
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_each_check_rejects_a_lesson_missing_its_part(check, lesson_folder):
    broken = BROKEN[check](good_lesson())
    problems = _check(broken, check, lesson_folder)
    assert len(problems) == 1, f"{check}: {problems}"


def test_the_sequence_checks_catch_a_gap_and_a_stale_readme():
    assert numbering_problems(["00_a.ipynb", "01_b.ipynb", "03_d.ipynb"], count=4) != []
    assert numbering_problems(["00_a.ipynb", "01_b.ipynb", "01_c.ipynb"], count=3) != []
    assert numbering_problems(["00_a.ipynb", "01_b.ipynb"], count=2) == []
    readme = (
        "# kit\n\n## Lessons\n\n1. [notebooks/00_a.ipynb](notebooks/00_a.ipynb)\n\n"
        "## Tests\n\n[x](notebooks/01_b.ipynb)\n"  # a link outside the Lessons section does not count
    )
    assert readme_problems(readme, ["notebooks/00_a.ipynb"]) == []
    assert readme_problems(readme, ["notebooks/00_a.ipynb", "notebooks/01_b.ipynb"]) != []
    assert readme_problems("# kit\n", ["notebooks/00_a.ipynb"]) != []
