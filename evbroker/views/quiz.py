"""Quiz: multiple-choice questions with right/wrong feedback, an explanation and a running score."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from evbroker.errors import EvbrokerError

KEYS = ("q", "choices", "answer", "explain")
#: Keys a question may carry besides KEYS: "id" names it for tests and teachers (e.g. "seed-duplicates").
OPTIONAL_KEYS = ("id",)


def check_questions(questions: object) -> list[dict[str, Any]]:
    """Validate ``[{q, choices, answer, explain}, ...]`` and return it as a list of dicts.

    A question may also carry an ``"id"`` (a short unique name such as ``"seed-duplicates"``), so
    tests and teachers can find it whatever its position; learners never see it.
    """
    example = (
        "e.g. {'q': 'Who gets a queued message?', 'choices': ['one worker', 'every worker'], "
        "'answer': 0, 'explain': 'A queue hands each message to one worker.'}"
    )
    if isinstance(questions, (str, bytes, dict)) or not isinstance(questions, Sequence) or not questions:
        raise EvbrokerError(f"Quiz needs a non-empty list of question dicts (got {questions!r:.80}); {example}")
    out = []
    ids: dict[str, int] = {}
    for i, item in enumerate(questions):
        where = f"Quiz question {i}"
        if not isinstance(item, dict):
            raise EvbrokerError(f"{where} must be a dict with keys {', '.join(KEYS)} (got {item!r:.60}); {example}")
        missing = [k for k in KEYS if k not in item]
        extra = [k for k in item if k not in KEYS and k not in OPTIONAL_KEYS]
        if missing or extra:
            raise EvbrokerError(
                f"{where}: keys must be exactly {', '.join(KEYS)} (and optionally {', '.join(OPTIONAL_KEYS)})"
                + (f"; missing {', '.join(map(repr, missing))}" if missing else "")
                + (f"; unexpected {', '.join(map(repr, extra))}" if extra else "")
            )
        if not isinstance(item["q"], str) or not item["q"].strip():
            raise EvbrokerError(f"{where}: 'q' must be the question text (got {item['q']!r})")
        choices = item["choices"]
        if (
            isinstance(choices, str)
            or not isinstance(choices, Sequence)
            or len(choices) < 2
            or not all(isinstance(c, str) and c for c in choices)
        ):
            raise EvbrokerError(f"{where}: 'choices' must be a list of at least two strings (got {choices!r:.80})")
        answer = item["answer"]
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise EvbrokerError(
                f"{where}: 'answer' must be the index of the right choice, 0 to {len(choices) - 1} "
                f"(got {answer!r}); indexes start at 0"
            )
        if not isinstance(item["explain"], str) or not item["explain"].strip():
            raise EvbrokerError(f"{where}: 'explain' must say why the answer is right (got {item['explain']!r})")
        if "id" in item:
            qid = item["id"]
            if not isinstance(qid, str) or not qid.strip() or qid != qid.strip():
                raise EvbrokerError(
                    f"{where}: 'id' must be a short name such as 'seed-duplicates' (got {qid!r})"
                )
            if qid in ids:
                raise EvbrokerError(f"{where}: id {qid!r} is already used by question {ids[qid]}; ids must be unique")
            ids[qid] = i
        out.append(dict(item))
    return out


class Quiz(widgets.VBox):
    """Multiple choice from ``[{"q": ..., "choices": [...], "answer": i, "explain": ...}, ...]``.

    Pick a choice to see right or wrong, with the explanation (a wrong pick also shows the
    right answer); the score line counts the questions right at the first try. Answer from
    code with ``quiz.answer(question, choice)`` (both indexes from 0), which returns True when
    right; ``quiz.score``, ``quiz.answered`` and ``quiz.feedback[i]`` say where things stand.
    """

    def __init__(self, questions: list[dict[str, Any]]) -> None:
        self.questions = check_questions(questions)
        self.first_try: dict[int, bool] = {}
        self.picked: dict[int, int] = {}
        self.pickers: list[widgets.RadioButtons] = []
        self.feedback: list[widgets.HTML] = []
        boxes = []
        for i, item in enumerate(self.questions):
            picker = widgets.RadioButtons(
                options=[(c, k) for k, c in enumerate(item["choices"])],
                value=None,
                layout=widgets.Layout(width="auto"),
            )
            picker.observe(lambda change, i=i: self._picked(i, change["new"]), names="value")
            note = widgets.HTML()
            self.pickers.append(picker)
            self.feedback.append(note)
            title = widgets.HTML(f"<b>{i + 1}. {html.escape(item['q'])}</b>")
            boxes.append(widgets.VBox([title, picker, note], layout=widgets.Layout(margin="0 0 8px 0")))
        self.score_line = widgets.HTML()
        super().__init__([*boxes, self.score_line])
        self._update_score()

    @property
    def score(self) -> int:
        """Questions answered right at the first try."""
        return sum(self.first_try.values())

    @property
    def answered(self) -> int:
        return len(self.first_try)

    def answer(self, question: int, choice: int) -> bool:
        """Answer ``question`` with ``choice`` (indexes from 0), as clicking would; True if right."""
        if isinstance(question, bool) or not isinstance(question, int) or not 0 <= question < len(self.questions):
            raise EvbrokerError(f"quiz.answer: question must be 0 to {len(self.questions) - 1} (got {question!r})")
        n = len(self.questions[question]["choices"])
        if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < n:
            raise EvbrokerError(
                f"quiz.answer: question {question} has choices 0 to {n - 1} (got {choice!r}); indexes start at 0"
            )
        if self.pickers[question].value == choice:  # the same value again sends no change event
            self._picked(question, choice)
        else:
            self.pickers[question].value = choice  # runs _picked through the observer
        return choice == self.questions[question]["answer"]

    def _picked(self, i: int, choice: int | None) -> None:
        if choice is None:
            return
        item = self.questions[i]
        right = choice == item["answer"]
        self.picked[i] = choice
        self.first_try.setdefault(i, right)
        if right:
            text = f"\u2714 <b>Right.</b> {html.escape(item['explain'])}"
        else:
            right_choice = item["choices"][item["answer"]]
            text = (
                f"\u2718 <b>Not quite.</b> The answer is <i>{html.escape(right_choice)}</i>. "
                f"{html.escape(item['explain'])}"
            )
        self.feedback[i].value = text
        self._update_score()

    def _update_score(self) -> None:
        n = len(self.questions)
        self.score_line.value = (
            f"<b>Score: {self.score} of {n}</b> right at the first try ({self.answered} of {n} answered)"
        )

    def describe(self) -> str:
        return f"Quiz: {len(self.questions)} questions, {self.score} right at the first try, {self.answered} answered"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            lines = [
                f"{i + 1}. {q['q']}" + "".join(f"\n   ({k}) {c}" for k, c in enumerate(q["choices"]))
                for i, q in enumerate(self.questions)
            ]
            bundle["text/plain"] = "\n".join(lines)
        return bundle

    def __repr__(self) -> str:
        return f"<{self.describe()}>"
