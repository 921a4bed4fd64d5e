"""The lesson sequence as a learner meets it: numbered without gaps, each lesson shaped the same way.

Reads the committed lessons, notebooks/NN_*.ipynb with their outputs, and README.md; runs
nothing. Each lesson opens with "Before you start" (what you'll do, learn and need), asks at
least one **Predict:** question and shows something right after it, has an explorer widget and
a static timeline whose picture is committed (so a reader without a kernel still sees the
story), ends with a quiz of 3-5 questions and an "On your own" section whose links lead to
notebooks that exist, and carries no error, no stderr and no cell that never ran. The README's
"## Lessons" list names exactly these files, in order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
#: The sequence has this many lessons, 00 to 06.
LESSON_COUNT = 7

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
EXPLORERS = ("QueueExplorer", "DeliveryExplorer", "WorkflowExplorer")
EXPLORER_CALL = re.compile(r"\beb\.widgets\.(" + "|".join(EXPLORERS) + r")\(")
TIMELINE_CALL = re.compile(r"\beb\.plot\.timeline\(")
QUIZ_CALL = re.compile(r"\beb\.widgets\.Quiz\(")
OPENING_LABELS = ("**What you'll do**", "**What you'll learn**", "**What you'll need**")
# each label in bold, its colon inside or outside the bold: **What you'll do:** or **What you'll do**:
LABEL_PATTERNS = {
    label: re.compile(re.escape(label[:-2]).replace("'", "['\u2019]") + r":?\*\*") for label in OPENING_LABELS
}
HEADING = re.compile(r"^(#{1,2})\s+(.*?)\s*$")
# [text](target): the target up to a space or the closing parenthesis
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
PREDICT = re.compile(r"^\s*\*\*Predict:\*\*", re.MULTILINE)
QUIZ_QUESTION = re.compile(r"^\d+\. ", re.MULTILINE)


@dataclass
class Section:
    """A level-2 section of a notebook: its title, its markdown text and its code cells."""

    title: str
    markdown: str = ""
    code: list[dict[str, Any]] = field(default_factory=list)
    index: int = 0


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict[str, Any]) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def text_of(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def code_cells(nb: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def sections(nb: dict[str, Any]) -> list[Section]:
    """Split a notebook at its ``## `` headings (a ``# `` heading ends a section too)."""
    current = Section("", index=0)
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
                current = Section(heading.group(2) if heading.group(1) == "##" else "", index=len(found))
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


def outputs(cell: dict[str, Any]) -> list[dict[str, Any]]:
    return cell.get("outputs", [])


def plain_text(out: dict[str, Any]) -> str:
    return text_of(out.get("data", {}).get("text/plain", ""))


def lesson_params() -> Any:
    return pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])


# ---------------------------------------------------------------------------- the sequence


def test_lessons_are_numbered_00_to_06_without_gaps():
    numbers = [int(p.name[:2]) for p in LESSONS]
    expected = list(range(LESSON_COUNT))
    missing = [f"{n:02d}" for n in expected if n not in numbers]
    doubled = sorted({f"{n:02d}" for n in numbers if numbers.count(n) > 1})
    extra = [f"{n:02d}" for n in numbers if n >= LESSON_COUNT]
    assert numbers == expected, (
        f"notebooks/ should hold lessons 00 to {LESSON_COUNT - 1:02d}, one file each; "
        f"missing: {missing or 'none'}, more than one file: {doubled or 'none'}, beyond the sequence: "
        f"{extra or 'none'} (found: {', '.join(p.name for p in LESSONS) or 'no lessons'})"
    )


def test_readme_lists_the_lessons_in_order():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Lessons[ \t]*\n(.*?)(?=^## |\Z)", readme, flags=re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Lessons' section listing notebooks/NN_name.ipynb links"
    listed = list(dict.fromkeys(re.findall(r"\]\(\s*(notebooks/\d\d_[^)\s]+\.ipynb)\s*\)", match.group(1))))
    files = [f"notebooks/{p.name}" for p in LESSONS]
    assert listed == files, (
        "README.md's '## Lessons' list and notebooks/ differ:\n"
        f"  listed only in README: {[x for x in listed if x not in files] or 'none'}\n"
        f"  files not in README:   {[x for x in files if x not in listed] or 'none'}\n"
        f"  README order: {listed}\n  file order:   {files}"
    )


# ---------------------------------------------------------------------------- each lesson's shape


@lesson_params()
def test_title_cell_names_the_lesson(path):
    nb = read(path)
    first = source(nb["cells"][0]).lstrip() if nb["cells"] else ""
    assert nb["cells"][0]["cell_type"] == "markdown" and first.startswith(f"# {path.name[:2]} · "), (
        f"{path.name}: the first cell should be the title, '# {path.name[:2]} · Title with a verb' "
        f"(got {first.splitlines()[0] if first else 'nothing'!r})"
    )


@lesson_params()
def test_opens_with_before_you_start(path):
    nb = read(path)
    titled = [s for s in sections(nb) if s.title]
    assert titled and titled[0].title == "Before you start", (
        f"{path.name}: the first '## ' section should be '## Before you start' (sections: {[s.title for s in titled]})"
    )
    missing = [label for label, pattern in LABEL_PATTERNS.items() if not pattern.search(titled[0].markdown)]
    assert not missing, f"{path.name}: '## Before you start' lacks {', '.join(missing)}"


@lesson_params()
def test_every_predict_is_answered_by_the_next_code_cell(path):
    nb = read(path)
    cells = nb["cells"]
    markdown = [(i, source(c)) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]
    assert any(text.lstrip().startswith("**Predict:**") for _, text in markdown), (
        f"{path.name}: no markdown cell starts with '**Predict:**'"
    )
    # every Predict, in a cell of its own or at the start of a paragraph, is followed by a run that shows the answer
    for i, text in markdown:
        if not PREDICT.search(text):
            continue
        following = next((c for c in cells[i + 1 :] if c["cell_type"] == "code"), None)
        assert following is not None and outputs(following), (
            f"{path.name}: the Predict in cell {i + 1} ({text.strip()[:60]!r}...) should be followed by a code "
            "cell whose output shows the answer"
        )


@lesson_params()
def test_has_an_explorer_widget_saved_with_its_state(path):
    nb = read(path)
    creators = [c for _, c in code_cells(nb) if EXPLORER_CALL.search(source(c))]
    assert creators, f"{path.name}: no code cell creates eb.widgets.{'/'.join(EXPLORERS)}"
    views = [
        out["data"][WIDGET_VIEW]["model_id"]
        for _, cell in code_cells(nb)
        for out in outputs(cell)
        if WIDGET_VIEW in out.get("data", {}) and plain_text(out).startswith(EXPLORERS)
    ]
    assert views, f"{path.name}: an explorer is created but never displayed (no widget output shows one)"
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    unsaved = [v for v in views if v not in state]
    assert not unsaved, (
        f"{path.name}: explorer widget state is not saved in the notebook (model ids {unsaved}); build it with "
        "`python -m evbroker.build notebooks " + f"notebooks/{path.name}` so readers without a kernel see it"
    )


@lesson_params()
def test_has_a_static_timeline_with_its_picture(path):
    nb = read(path)
    timelines = [c for _, c in code_cells(nb) if TIMELINE_CALL.search(source(c))]
    assert timelines, f"{path.name}: no code cell draws eb.plot.timeline(...)"
    pictured = [c for c in timelines if any("image/png" in out.get("data", {}) for out in outputs(c))]
    assert pictured, f"{path.name}: eb.plot.timeline(...) is called but no picture of it is committed"


@lesson_params()
def test_ends_with_a_quiz_of_three_to_five_questions(path):
    nb = read(path)
    check = section(nb, "Check your understanding")
    assert check is not None, f"{path.name}: no '## Check your understanding' section"
    quizzes = [c for c in check.code if QUIZ_CALL.search(source(c))]
    assert quizzes, f"{path.name}: '## Check your understanding' has no eb.widgets.Quiz([...]) cell"
    shown = [plain_text(out) for out in outputs(quizzes[0]) if WIDGET_VIEW in out.get("data", {})]
    assert shown, f"{path.name}: the quiz is never displayed (put it last in its cell)"
    questions = len(QUIZ_QUESTION.findall(shown[0]))
    assert 3 <= questions <= 5, f"{path.name}: the quiz has {questions} questions; a lesson's quiz has 3 to 5"


@lesson_params()
def test_on_your_own_links_to_notebooks_that_exist(path):
    nb = read(path)
    titles = [s.title for s in sections(nb)]
    own = section(nb, "On your own")
    assert own is not None, f"{path.name}: no '## On your own' section"
    assert "Check your understanding" in titles and titles.index("Check your understanding") < own.index, (
        f"{path.name}: '## On your own' should come after '## Check your understanding'"
    )
    links = notebook_links(own.markdown)
    assert links, f"{path.name}: '## On your own' links to no notebook (its exercise, or the next lesson)"
    broken = [link for link in links if not (NOTEBOOKS / link).resolve().is_file()]
    assert not broken, f"{path.name}: '## On your own' links to notebooks that do not exist: {broken}"


@lesson_params()
def test_every_notebook_link_resolves(path):
    nb = read(path)
    links = [link for c in nb["cells"] if c["cell_type"] == "markdown" for link in notebook_links(source(c))]
    broken = sorted({link for link in links if not (NOTEBOOKS / link).resolve().is_file()})
    assert not broken, f"{path.name}: links to notebooks that do not exist (relative to notebooks/): {broken}"


@lesson_params()
def test_outputs_hold_no_error_and_no_stderr(path):
    nb = read(path)
    problems = []
    for i, cell in code_cells(nb):
        for out in outputs(cell):
            if out.get("output_type") == "error":
                problems.append(f"cell {i + 1}: {out.get('ename')}: {out.get('evalue', '')[:80]}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                problems.append(f"cell {i + 1} wrote to stderr: {text_of(out.get('text', '')).strip()[:80]!r}")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@lesson_params()
def test_every_code_cell_ran_in_order(path):
    nb = read(path)
    cells = code_cells(nb)
    empty = [i + 1 for i, c in cells if not source(c).strip()]
    assert not empty, f"{path.name}: empty code cells {empty}; remove them"
    counts = [c.get("execution_count") for _, c in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: code cells should have run once each, top to bottom (execution counts 1..{len(cells)}); "
        f"got {counts}. Rebuild with `python -m evbroker.build notebooks notebooks/{path.name}`"
    )
