"""Quiz: right or wrong with the explanation, a running score, answerable from code."""

import pytest

import evbroker as eb

QUESTIONS = [
    {
        "q": "Two workers share one queue. How many of them get message m1?",
        "choices": ["both", "exactly one", "none until acked"],
        "answer": 1,
        "explain": "A queue hands each message to one of its competing consumers.",
    },
    {
        "q": "Which guarantee may charge a card twice after a lost ack?",
        "choices": ["at-most-once", "at-least-once"],
        "answer": 1,
        "explain": "No ack means the broker redelivers, and the work runs again.",
    },
]


def test_a_right_answer_says_so_with_the_explanation():
    quiz = eb.widgets.Quiz(QUESTIONS)
    assert quiz.answer(0, 1) is True
    assert "Right" in quiz.feedback[0].value
    assert "competing consumers" in quiz.feedback[0].value
    assert (quiz.score, quiz.answered) == (1, 1)
    assert "Score: 1 of 2" in quiz.score_line.value


def test_a_wrong_answer_shows_the_right_one_and_counts_against_the_first_try():
    quiz = eb.widgets.Quiz(QUESTIONS)
    assert quiz.answer(1, 0) is False
    assert "Not quite" in quiz.feedback[1].value and "at-least-once" in quiz.feedback[1].value
    assert quiz.answer(1, 1) is True
    assert "Right" in quiz.feedback[1].value
    assert (quiz.score, quiz.answered) == (0, 1)


def test_clicking_a_choice_is_the_same_as_answering():
    quiz = eb.widgets.Quiz(QUESTIONS)
    quiz.pickers[0].value = 1
    quiz.pickers[1].value = 1
    assert quiz.score == 2
    assert "Score: 2 of 2" in quiz.score_line.value


def test_answering_the_same_choice_again_still_gives_feedback():
    quiz = eb.widgets.Quiz(QUESTIONS)
    quiz.answer(0, 0)
    quiz.feedback[0].value = ""
    quiz.answer(0, 0)
    assert "Not quite" in quiz.feedback[0].value


def test_text_fallback_lists_questions_without_answers():
    text = eb.widgets.Quiz(QUESTIONS)._repr_mimebundle_()["text/plain"]
    assert "1. Two workers share one queue" in text and "(1) exactly one" in text
    assert "competing consumers" not in text


@pytest.mark.parametrize(
    ("questions", "words"),
    [
        ([], ["non-empty list"]),
        ("what?", ["non-empty list"]),
        ([{"q": "x", "choices": ["a", "b"], "answer": 0}], ["missing 'explain'"]),
        ([{"q": "x", "choices": ["a", "b"], "answer": 2, "explain": "e"}], ["question 0", "0 to 1"]),
        ([{"q": "x", "choices": ["a"], "answer": 0, "explain": "e"}], ["at least two"]),
        ([{"q": "x", "choices": ["a", "b"], "answer": 0, "explain": "e", "hint": "h"}], ["unexpected 'hint'"]),
        ([{"id": "", "q": "x", "choices": ["a", "b"], "answer": 0, "explain": "e"}], ["'id' must be a short name"]),
        ([{"id": 7, "q": "x", "choices": ["a", "b"], "answer": 0, "explain": "e"}], ["'id' must be a short name"]),
        (
            [{"id": "k", "q": "x", "choices": ["a", "b"], "answer": 0, "explain": "e"}] * 2,
            ["question 1", "id 'k' is already used by question 0"],
        ),
    ],
)
def test_bad_questions_teach(questions, words):
    with pytest.raises(eb.EvbrokerError) as err:
        eb.widgets.Quiz(questions)
    for w in words:
        assert w in str(err.value)


def test_a_question_may_carry_an_id_that_learners_never_see():
    named = [{**QUESTIONS[0], "id": "seed-queue-vs-pubsub"}, QUESTIONS[1]]
    quiz = eb.widgets.Quiz(named)
    assert quiz.questions[0]["id"] == "seed-queue-vs-pubsub" and "id" not in quiz.questions[1]
    assert quiz.answer(0, 1) is True
    shown = quiz._repr_mimebundle_()["text/plain"] + "".join(w.value for w in quiz.feedback)
    assert "seed-queue-vs-pubsub" not in shown


@pytest.mark.parametrize(("question", "choice"), [(2, 0), (0, 3), (-1, 0)])
def test_answering_out_of_range_teaches(question, choice):
    with pytest.raises(eb.EvbrokerError, match=r"indexes start at 0|question must be"):
        eb.widgets.Quiz(QUESTIONS).answer(question, choice)
