"""The lessons as a learner works through them: fair quizzes, no untaught API, short code, honest lengths.

Reads the committed sources of notebooks/NN_*.ipynb, solutions/NN_*.ipynb and README.md; runs
nothing. Each rule is a function returning the problems it finds (empty: fine), and the last
tests feed each one a doctored lesson, exercise or README to show it can fail.

- **Fair quizzes.** Over the whole sequence, no answer position holds more than 40 % of the
  questions (a learner who always picks the second choice scores no better than chance allows),
  and the right answer is the longest choice in at most a third of them.
- **The seed's questions.** "Queue or pub/sub?", "When does orchestration beat choreography?"
  and "Why does an at-least-once broker deliver duplicates?" are each asked as such, by their
  id, in the lesson that teaches them.
- **No untaught API.** Every name an exercise answer uses (an attribute such as ``.on``, a
  keyword such as ``on_reject=``, a kit name such as ``Reject``) appears in the code of a lesson
  numbered no later than the exercise.
- **Short code.** A code cell a learner reads, in a lesson or an exercise, is at most 15 lines;
  longer helpers live in the package or in a folded cell whose first line says what it is for.
  An exercise's answer cells are the learner's own and are not counted.
- **Honest lengths.** Each lesson's opening and the README's lesson list state the same time,
  close to an estimate made from its words, code, predictions, pictures, explorers and quiz.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))

#: No answer position may hold more than this share of the sequence's questions.
MAX_POSITION_SHARE = 0.40
#: The right answer may be the longest choice (or tied for it) in at most this share of them.
MAX_LONGEST_SHARE = 1 / 3
#: The seed's three questions, by id, and the lesson that teaches each.
SEED_QUESTIONS = {"seed-queue-vs-pubsub": "02", "seed-orchestration": "03", "seed-duplicates": "04"}
#: Lines a learner-facing code cell may have.
MAX_CODE_LINES = 15
#: How far a lesson's stated time may be from the estimate (stated / estimated).
TIME_RANGE = (0.7, 1.4)

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
#: Calls whose keywords are a business record's fields, chosen by the task: ctx.effect("charge", order=...).
DATA_CALLS = ("effect", "call")
#: Methods of Python's own types: an answer calling ``CARRIERS.get`` uses no kit API.
PYTHON_NAMES = set(dir(builtins)) | {
    name for kind in (dict, list, str, int, float, set, tuple, bytes) for name in dir(kind)
}


# ---------------------------------------------------------------------------- reading


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict[str, Any]) -> str:
    value = cell.get("source", "")
    return "".join(value) if isinstance(value, list) else str(value)


def folded(cell: dict[str, Any]) -> bool:
    return bool(cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"))


def python(text: str) -> str:
    """Cell source without IPython magics and shell lines, so ``ast`` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines())


def quiz_questions(nb: dict[str, Any]) -> list[dict[str, Any]]:
    """The question dicts of every ``eb.widgets.Quiz([...])`` in the notebook, read from the source."""
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "Quiz(" not in source(cell):
            continue
        for node in ast.walk(ast.parse(python(source(cell)))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Quiz":
                found += ast.literal_eval(node.args[0])
    return found


def code_names(text: str) -> set[str]:
    """Every identifier a piece of code uses or defines: names, attributes, keywords, defs, args."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(python(text))):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def solution_region(text: str) -> str:
    """The code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, dedented to parse alone."""
    lines = text.splitlines()
    inside = [i for i, line in enumerate(lines) if line.strip() in (BEGIN, END)]
    body = lines[inside[0] + 1 : inside[1]] if len(inside) >= 2 else []
    indent = min((len(line) - len(line.lstrip()) for line in body if line.strip()), default=0)
    return "\n".join(line[indent:] for line in body)


# ---------------------------------------------------------------------------- the rules


def quiz_balance_problems(quizzes: dict[str, list[dict[str, Any]]]) -> list[str]:
    """``quizzes``: lesson name -> its questions. Checks the sequence as a whole."""
    questions = [q for qs in quizzes.values() for q in qs]
    if not questions:
        return ["the lessons hold no quiz questions"]
    problems = []
    positions = Counter(q["answer"] for q in questions)
    for position, count in sorted(positions.items()):
        if count / len(questions) > MAX_POSITION_SHARE:
            problems.append(
                f"the right answer is choice {position + 1} in {count} of {len(questions)} questions "
                f"({count / len(questions):.0%}); at most {MAX_POSITION_SHARE:.0%} may share a position "
                f"(positions: {dict(sorted(positions.items()))})"
            )
    longest = [
        f"{lesson}: {q['q'][:60]!r}"
        for lesson, qs in quizzes.items()
        for q in qs
        if len(q["choices"][q["answer"]]) >= max(len(c) for i, c in enumerate(q["choices"]) if i != q["answer"])
    ]
    if len(longest) > MAX_LONGEST_SHARE * len(questions):
        problems.append(
            f"the right answer is the longest choice in {len(longest)} of {len(questions)} questions; at most "
            f"a third may be: " + "; ".join(longest)
        )
    return problems


def seed_question_problems(quizzes: dict[str, list[dict[str, Any]]]) -> list[str]:
    problems = []
    for qid, number in SEED_QUESTIONS.items():
        where = [lesson for lesson, qs in quizzes.items() if any(q.get("id") == qid for q in qs)]
        if not any(lesson.startswith(number) for lesson in where):
            problems.append(
                f"the seed's question {qid!r} should be in lesson {number}'s quiz (found in: {where or 'none'})"
            )
    return problems


def provided_names(solution: dict[str, Any]) -> set[str]:
    """Names an exercise hands the learner in its own set-up cells: its helpers, data and imports.

    A name bound to a kit attribute (``Service = eb.workflows.Service``) is not a helper: it is
    the kit's API under its own name, and a lesson must show it.
    """
    names: set[str] = set()
    for cell in solution["cells"]:
        if cell["cell_type"] != "code" or BEGIN in source(cell):
            continue
        for node in ast.walk(ast.parse(python(source(cell)))):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.Assign):
                targets = [n for t in node.targets for n in (t.elts if isinstance(t, ast.Tuple) else [t])]
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value] * len(targets)
                for target, value in zip(targets, values, strict=False):
                    if isinstance(target, ast.Name) and not _kit_alias(target.id, value):
                        names.add(target.id)
    return names


def _kit_alias(name: str, value: ast.expr) -> bool:
    """``Service = eb.workflows.Service``: the kit's own name, reached through ``eb``."""
    if not (isinstance(value, ast.Attribute) and value.attr == name):
        return False
    root = value
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id == "eb"


def answer_names(solution: dict[str, Any]) -> dict[str, set[str]]:
    """Kit names each answer uses: grade id -> names, minus what it defines and Python's own."""
    provided = provided_names(solution)
    used: dict[str, set[str]] = {}
    for cell in solution["cells"]:
        text = source(cell)
        if cell["cell_type"] != "code" or BEGIN not in text:
            continue
        tree = ast.parse(solution_region(text))
        defined: set[str] = set()
        modules: set[str] = set()
        for node in ast.walk(ast.parse(python(text))):  # the whole cell: a def line may sit above the region
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.alias):
                modules.add((node.asname or node.name).split(".")[0])
        # ctx.effect("shipped", to=...): the fields of a business record are data the task names, not API
        data_fields = {
            id(k)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in DATA_CALLS
            for k in node.keywords
        }
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and id(node) in data_fields:
                continue
            if isinstance(node, ast.Attribute):
                root = node
                while isinstance(root, ast.Attribute):
                    root = root.value
                if not (isinstance(root, ast.Name) and root.id in modules):
                    names.add(node.attr)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                names.add(node.id)
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "?")
        used[gid] = names - defined - modules - provided - PYTHON_NAMES
    return used


def untaught_problems(solution: dict[str, Any], number: str, lessons: dict[str, dict[str, Any]]) -> list[str]:
    """``lessons``: lesson name -> notebook; those numbered ``number`` or lower are the ones taught by then."""
    taught: set[str] = set()
    for name, nb in lessons.items():
        if name[:2] <= number:
            for cell in nb["cells"]:
                if cell["cell_type"] == "code":
                    taught |= code_names(source(cell))
    return [
        f"exercise {number}'s answer {gid!r} uses {', '.join(sorted(missing))}, which no lesson up to "
        f"{number} shows in its code"
        for gid, names in answer_names(solution).items()
        if (missing := names - taught)
    ]


def code_length_problems(nb: dict[str, Any]) -> list[str]:
    """Long cells a learner must read; an exercise's answer cells are the learner's own and not counted."""
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            continue
        text = source(cell).strip("\n")
        if folded(cell):
            if not text.startswith("# "):
                problems.append(
                    f"cell {i + 1} is folded but does not open with a one-line '# purpose' comment "
                    f"(it starts {text.splitlines()[0][:50]!r})"
                )
        elif len(text.splitlines()) > MAX_CODE_LINES:
            problems.append(
                f"cell {i + 1} has {len(text.splitlines())} lines of code; a learner-facing cell has at most "
                f"{MAX_CODE_LINES}: move helpers to the package or a folded cell "
                f"(it starts {text.splitlines()[0][:50]!r})"
            )
    return problems


def estimated_minutes(nb: dict[str, Any]) -> float:
    """Reading at 200 words a minute and 10 lines of code a minute, half a minute to run and look at
    each code cell and at each picture, a minute per prediction, four per explorer, 45 s per quiz question."""
    words = lines = cells = predictions = pictures = explorers = questions = 0
    for cell in nb["cells"]:
        text = source(cell)
        if cell["cell_type"] == "markdown":
            words += len(text.split())
            predictions += len(re.findall(r"\*\*Predict:\*\*", text))
        elif cell["cell_type"] == "code":
            questions += len(quiz_questions({"cells": [cell]}))
            if "Quiz(" in text:
                continue
            explorers += "Explorer(" in text
            cells += 1
            lines += 0 if folded(cell) else len(text.strip("\n").splitlines())
            pictures += sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
    return (
        words / 200 + lines / 10 + cells / 2 + predictions + pictures / 2 + explorers * 4 + questions * 0.75
    )


STATED = re.compile(r"\*\*What you['\u2019]ll need:?\*\*:?\s*about (\d+) minutes")


def length_problems(nb: dict[str, Any], name: str, readme: str) -> list[str]:
    opening = next((source(c) for c in nb["cells"] if "What you" in source(c) and "need" in source(c)), "")
    stated = STATED.search(opening)
    if not stated:
        return [f"{name}: '**What you'll need:**' should say 'about N minutes'"]
    minutes = int(stated.group(1))
    problems = []
    listed = re.search(rf"\(notebooks/{re.escape(name)}\)[^\n]*?\((\d+) min\)", readme)
    if not listed:
        problems.append(f"README's lesson list should give {name} its time, e.g. '(25 min)' after its link")
    elif int(listed.group(1)) != minutes:
        problems.append(f"README says {listed.group(1)} min for {name}, the lesson says about {minutes} minutes")
    estimate = estimated_minutes(nb)
    low, high = TIME_RANGE
    if not low * estimate <= minutes <= high * estimate:
        problems.append(
            f"{name} states about {minutes} minutes, but its words, code, predictions, pictures, explorers "
            f"and quiz come to about {estimate:.0f}"
        )
    return problems


# ---------------------------------------------------------------------------- the sequence


def _quizzes() -> dict[str, list[dict[str, Any]]]:
    return {p.name: quiz_questions(read(p)) for p in LESSONS}


def test_the_quizzes_do_not_give_their_answers_away():
    assert quiz_balance_problems(_quizzes()) == []


def test_each_of_the_seeds_questions_is_asked_in_the_lesson_that_teaches_it():
    assert seed_question_problems(_quizzes()) == []


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_name_an_exercise_answer_uses_is_shown_in_a_lesson_first(path):
    lessons = {p.name: read(p) for p in LESSONS}
    assert untaught_problems(read(path), path.name[:2], lessons) == []


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=[f"{p.parent.name}/{p.stem}" for p in LESSONS + SOLUTIONS])
def test_learner_facing_code_cells_are_short(path):
    assert code_length_problems(read(path)) == []


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_each_lesson_states_an_honest_time_and_the_readme_agrees(path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert length_problems(read(path), path.name, readme) == []


def test_the_seeds_questions_are_known_to_the_quiz_widget():
    """The ids the lessons carry pass the widget's own validation (an id is optional)."""
    import evbroker as eb

    for path in LESSONS:
        questions = quiz_questions(read(path))
        assert eb.widgets.Quiz(questions).questions == questions


# ---------------------------------------------------------------------------- the rules can fail


def _question(answer: int, choices: list[str], qid: str | None = None) -> dict[str, Any]:
    q = {"q": "Which?", "choices": choices, "answer": answer, "explain": "Because."}
    return {**q, "id": qid} if qid else q


def _code(text: str, *, hidden: bool = False) -> dict[str, Any]:
    meta = {"jupyter": {"source_hidden": True}} if hidden else {}
    return {"cell_type": "code", "metadata": meta, "source": text, "outputs": [], "execution_count": None}


def _md(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _quiz_cell(questions: list[dict[str, Any]]) -> dict[str, Any]:
    return _code("# The quiz.\neb.widgets.Quiz(" + repr(questions) + ")", hidden=True)


SAME = ["bbbb", "ccc", "dd", "aaaaa"]  # the fourth is the longest


def test_quiz_balance_rejects_answers_piled_on_one_position_or_on_the_longest_choice():
    spread = {"00_a.ipynb": [_question(i % 4, SAME) for i in range(8)]}
    assert quiz_balance_problems(spread) == []
    piled = {"00_a.ipynb": [_question(1, SAME)] * 5 + [_question(i, SAME) for i in (0, 2, 3)]}
    assert [p for p in quiz_balance_problems(piled) if "choice 2 in 5 of 8" in p]
    giveaway = ["a", "bb", "cc", "the long and careful right answer"]
    longest = {"00_a.ipynb": [_question(3, giveaway), _question(3, giveaway)] + [_question(i, SAME) for i in range(3)]}
    assert [p for p in quiz_balance_problems(longest) if "longest choice in 2 of 5" in p]
    tied = {"00_a.ipynb": [_question(0, ["same", "same", "x", "y"])] * 2 + [_question(i, SAME) for i in (0, 1, 2)]}
    assert [p for p in quiz_balance_problems(tied) if "longest choice in 2 of 5" in p]  # a tie counts as longest


def test_a_seed_question_missing_or_in_the_wrong_lesson_is_reported():
    good = {
        "02_q.ipynb": [_question(0, SAME, "seed-queue-vs-pubsub")],
        "03_c.ipynb": [_question(0, SAME, "seed-orchestration")],
        "04_d.ipynb": [_question(0, SAME, "seed-duplicates")],
    }
    assert seed_question_problems(good) == []
    moved = {**good, "04_d.ipynb": [], "05_i.ipynb": [_question(0, SAME, "seed-duplicates")]}
    assert seed_question_problems(moved) == [
        "the seed's question 'seed-duplicates' should be in lesson 04's quiz (found in: ['05_i.ipynb'])"
    ]


def test_quiz_questions_are_read_from_the_cell_source(tmp_path):
    questions = [_question(2, SAME, "seed-duplicates"), _question(0, SAME)]
    assert quiz_questions({"cells": [_md("# x"), _quiz_cell(questions)]}) == questions


def test_a_committed_lesson_doctored_to_always_answer_the_second_choice_fails(tmp_path):
    """Every quiz of the sequence, rewritten so the right answer is always choice 2, as the old quizzes leaned."""
    quizzes = {}
    for path in LESSONS:
        nb = read(path)
        for cell in nb["cells"]:
            if "Quiz(" in source(cell):
                moved = [{**q, "answer": 1} for q in quiz_questions({"cells": [cell]})]
                cell["source"] = source(_quiz_cell(moved))
        doctored = tmp_path / path.name
        doctored.write_text(json.dumps(nb), encoding="utf-8")
        quizzes[path.name] = quiz_questions(read(doctored))
    assert [p for p in quiz_balance_problems(quizzes) if "the right answer is choice 2 in" in p]
    assert quiz_balance_problems(_quizzes()) == []


def _solution(answer: str, setup: str = "import evbroker as eb\nfrom evbroker.grading import check") -> dict[str, Any]:
    answer_cell = _code(f"x = None\n{BEGIN}\n{answer}\n{END}")
    answer_cell["metadata"] = {"nbgrader": {"grade_id": "03-x-answer", "solution": True}}
    return {"cells": [_code(setup), answer_cell]}


def test_an_answer_using_a_name_no_earlier_lesson_shows_is_reported(tmp_path):
    lessons = {
        "02_q.ipynb": {"cells": [_code("b = eb.Broker(seed=0)\nb.queue('payments', max_deliveries=3)")]},
        "05_i.ipynb": {"cells": [_code("ctx.remember(msg.key)")]},
    }
    setup = "import evbroker as eb\nService = eb.workflows.Service\nCARRIERS = {'Lyon': 'Colissimo'}"
    taught = _solution("def declare(b):\n    b.queue('payments', max_deliveries=3)\n    CARRIERS.get('Lyon')", setup)
    assert untaught_problems(taught, "03", lessons) == []
    untaught = _solution("svc = Service('x')\nsvc.on('e', print, on_reject='f')", setup)
    assert untaught_problems(untaught, "03", lessons) == [
        "exercise 03's answer '03-x-answer' uses Service, on, on_reject, which no lesson up to 03 shows in its code"
    ]
    later = _solution("def h(msg, ctx):\n    ctx.remember(msg.key)")
    assert untaught_problems(later, "03", lessons) == [
        "exercise 03's answer '03-x-answer' uses key, remember, which no lesson up to 03 shows in its code"
    ]
    assert untaught_problems(later, "05", lessons) == []


def test_a_long_learner_facing_cell_or_a_folded_cell_without_a_purpose_is_reported():
    short = _code("\n".join(f"x{i} = {i}" for i in range(MAX_CODE_LINES)))
    long = _code("\n".join(f"x{i} = {i}" for i in range(MAX_CODE_LINES + 1)))
    long_but_folded = _code("# Helpers for the shop below.\n" + source(long), hidden=True)
    silent_fold = _code(source(long), hidden=True)
    answer = {**long, "metadata": {"nbgrader": {"solution": True, "grade_id": "02-x-answer"}}}
    assert code_length_problems({"cells": [short, long_but_folded, answer]}) == []
    assert len(code_length_problems({"cells": [long]})) == 1
    assert "one-line '# purpose' comment" in code_length_problems({"cells": [silent_fold]})[0]


def test_a_lesson_whose_time_is_missing_inflated_or_not_in_the_readme_is_reported():
    body = [_md(" ".join(["word"] * 2000)), _code("x = 1")]  # 10 min reading + half a minute to run
    readme = "1. [notebooks/00_a.ipynb](notebooks/00_a.ipynb) (10 min) — intro\n"

    def lesson(minutes: str) -> dict[str, Any]:
        return {"cells": [_md(f"## Before you start\n\n**What you'll need:** {minutes}, and nothing else."), *body]}

    assert length_problems(lesson("about 10 minutes"), "00_a.ipynb", readme) == []
    inflated = length_problems(lesson("about 5 minutes"), "00_a.ipynb", readme.replace("10", "5"))
    assert "but its words, code" in inflated[0]
    assert "README says 10 min" in length_problems(lesson("about 12 minutes"), "00_a.ipynb", readme)[0]
    assert "should give 00_a.ipynb its time" in length_problems(lesson("about 10 minutes"), "00_a.ipynb", "")[0]
    assert "should say 'about N minutes'" in length_problems(lesson("a while"), "00_a.ipynb", readme)[0]
