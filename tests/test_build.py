"""The notebook build: exercises generated from solutions, drift detection, deterministic execution."""

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import evbroker.build as build_module
from evbroker.build import (
    ROOT,
    BuildError,
    exercise_drift,
    generate_exercise,
    main,
    merge_adjacent_streams,
    read_notebook,
    strip_region,
    widget_model_ids,
    write_notebook,
)

FIXTURES = Path(__file__).parent / "fixtures"


def nbgrader(grade_id, *, solution=False, grade=False, locked=False, points=None):
    md = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        md["points"] = points
    return {"nbgrader": md}


def answer_cell(source, grade_id="q-answer", cell_type="code"):
    cell = new_code_cell(source) if cell_type == "code" else new_markdown_cell(source)
    cell.metadata.update(nbgrader(grade_id, solution=True))
    return cell


def solution_notebook(*cells):
    nb = new_notebook(cells=list(cells))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i}"
    return nb


# ---------------------------------------------------------------------------- exercise generation


def test_answer_region_becomes_the_nbgrader_stub_at_the_markers_indent():
    source = "def double(x):\n    y = 2\n    ### BEGIN SOLUTION\n    return y * x\n    ### END SOLUTION\n# after"
    ex = generate_exercise(solution_notebook(answer_cell(source)), "99_x")
    assert (
        ex.cells[0].source
        == "def double(x):\n    y = 2\n    # YOUR CODE HERE\n    raise NotImplementedError()\n# after"
    )


def test_every_region_in_a_cell_is_replaced():
    source = "a = 0\n### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 0\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION"
    ex = generate_exercise(solution_notebook(answer_cell(source)), "99_x")
    stub = "# YOUR CODE HERE\nraise NotImplementedError()"
    assert ex.cells[0].source == f"a = 0\n{stub}\nb = 0\n{stub}"


def test_markdown_answer_becomes_your_answer_here():
    source = "Why?\n\n### BEGIN SOLUTION\nBecause the ack was lost.\n### END SOLUTION"
    ex = generate_exercise(solution_notebook(answer_cell(source, cell_type="markdown")), "99_x")
    assert ex.cells[0].source == "Why?\n\nYOUR ANSWER HERE"


def test_answer_cell_without_markers_is_replaced_whole_as_nbgrader_does():
    ex = generate_exercise(solution_notebook(answer_cell("charges = 2")), "99_x")
    assert ex.cells[0].source == "# YOUR CODE HERE\nraise NotImplementedError()"


def test_hidden_tests_are_removed_from_exercises_but_kept_in_solutions():
    graded = new_code_cell('check("99-x", f)\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS')
    graded.metadata.update(nbgrader("99-x", grade=True, locked=True, points=1))
    solution = solution_notebook(graded)
    ex = generate_exercise(solution, "99_x")
    assert ex.cells[0].source == 'check("99-x", f)'
    assert "assert f(2) == 4" in solution.cells[0].source


def test_outputs_and_counts_are_cleared_and_nbgrader_metadata_kept():
    cell = answer_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    cell.execution_count = 7
    solution = solution_notebook(cell)
    solution.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    ex = generate_exercise(solution, "99_x")
    assert ex.cells[0].outputs == []
    assert ex.cells[0].execution_count is None
    assert ex.cells[0].metadata["nbgrader"] == cell.metadata["nbgrader"]
    assert "widgets" not in ex.metadata
    assert ex.metadata["evbroker"] == {"notebook": "99_x", "generated_from": "solutions/99_x.ipynb"}
    assert solution.cells[0].outputs, "the solution itself is left untouched"


def test_markers_outside_an_answer_cell_are_an_error_naming_the_cell():
    nb = solution_notebook(new_markdown_cell("intro"), new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"))
    with pytest.raises(BuildError, match=r"99_x\.ipynb cell 2: .*not a solution cell"):
        generate_exercise(nb, "99_x")


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without a"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "again before"),
    ],
)
def test_unbalanced_markers_are_an_error(source, problem):
    with pytest.raises(BuildError, match=problem):
        strip_region(source, "### BEGIN SOLUTION", "### END SOLUTION", stub=["stub"], where="nb cell 1")


def test_the_fixture_exercise_keeps_every_cell_and_only_stubs_answers():
    solution = read_notebook(FIXTURES / "solutions" / "99_fixture.ipynb")
    ex = generate_exercise(solution, "99_fixture")
    assert [c.id for c in ex.cells] == [c.id for c in solution.cells]
    for sol_cell, ex_cell in zip(solution.cells, ex.cells, strict=True):
        if sol_cell.metadata.get("nbgrader", {}).get("solution"):
            assert "BEGIN SOLUTION" not in ex_cell.source
            assert "YOUR" in ex_cell.source
        else:
            assert ex_cell.source == sol_cell.source


# ---------------------------------------------------------------------------- drift (--check)


@pytest.fixture
def kit(tmp_path):
    """A copy of the fixture solutions with freshly generated exercises next to them."""
    shutil.copytree(FIXTURES / "solutions", tmp_path / "solutions")
    assert (
        main(["exercises", "--solutions", str(tmp_path / "solutions"), "--exercises", str(tmp_path / "exercises")]) == 0
    )
    return tmp_path


def check(kit):
    return main(["exercises", "--check", "--solutions", str(kit / "solutions"), "--exercises", str(kit / "exercises")])


def test_generated_exercises_are_in_sync_and_regenerating_changes_nothing(kit):
    before = (kit / "exercises" / "99_fixture.ipynb").read_bytes()
    assert check(kit) == 0
    assert main(["exercises", "--solutions", str(kit / "solutions"), "--exercises", str(kit / "exercises")]) == 0
    assert (kit / "exercises" / "99_fixture.ipynb").read_bytes() == before


def test_check_fails_when_an_exercise_was_edited_by_hand(kit, capsys):
    path = kit / "exercises" / "99_fixture.ipynb"
    nb = read_notebook(path)
    nb.cells[3].source = "def double(x):\n    return 2 * x"
    write_notebook(nb, path)
    assert check(kit) == 1
    assert "99_fixture.ipynb differs" in capsys.readouterr().err


def test_check_fails_when_a_solution_changed_and_exercises_were_not_regenerated(kit, capsys):
    path = kit / "solutions" / "99_fixture.ipynb"
    nb = read_notebook(path)
    nb.cells[0].source += "\n\nA new paragraph."
    write_notebook(nb, path)
    assert check(kit) == 1
    assert "make exercises" in capsys.readouterr().err


def test_check_fails_on_missing_and_orphan_exercises(kit):
    (kit / "exercises" / "99_fixture.ipynb").rename(kit / "exercises" / "98_gone.ipynb")
    problems = exercise_drift(kit / "solutions", kit / "exercises")
    assert any("99_fixture.ipynb is missing" in p for p in problems)
    assert any("98_gone.ipynb has no source" in p for p in problems)


def test_committed_exercises_match_the_committed_solutions():
    """The repository's own exercises/ must be exactly what solutions/ generates (run `make exercises`)."""
    assert exercise_drift(ROOT / "solutions", ROOT / "exercises") == []


# ---------------------------------------------------------------------------- executing notebooks


@pytest.fixture
def build(monkeypatch, capsys):
    """Run `python -m evbroker.build notebooks PATHS` (as `make notebooks` does); return (code, out, err)."""
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))

    def run(*paths):
        code = main(["notebooks", *map(str, paths)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.slow
def test_building_twice_writes_the_same_bytes_with_outputs_widgets_and_stable_counts(tmp_path, build):
    lesson = tmp_path / "99_widgets.ipynb"
    shutil.copy(FIXTURES / "lessons" / "99_widgets.ipynb", lesson)
    code, _, err = build(lesson)
    assert code == 0, err
    once = lesson.read_bytes()
    code, out, err = build(lesson)
    assert code == 0, err
    assert "unchanged" in out
    assert lesson.read_bytes() == once

    nb = json.loads(once)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == [1, 2, 3, 4, None, 5]
    assert all("execution" not in c["metadata"] for c in nb["cells"])
    outputs = [o for c in code for o in c["outputs"]]
    [printed] = [o for o in outputs if o.get("name") == "stdout"]
    assert "".join(printed["text"]).startswith("time") and "".join(printed["text"]).endswith("written in two flushes\n")
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any(o.get("execution_count") == 5 and o["data"]["text/plain"] == ["4"] for o in outputs)
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert {s["model_name"] for s in state.values()} >= {"IntSliderModel", "OutputModel", "VBoxModel"}
    ids = widget_model_ids(nbformat.reads(once.decode(), as_version=4))
    assert len(ids) == len(state) and all(len(i) == 32 for i in ids)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "version" not in nb["metadata"]["language_info"]


@pytest.mark.slow
def test_a_failing_or_noisy_cell_fails_the_build_naming_notebook_and_cell(tmp_path, build):
    broken = tmp_path / "01_broken.ipynb"
    noisy = tmp_path / "02_noisy.ipynb"
    allowed = tmp_path / "03_allowed.ipynb"
    raising = new_code_cell("import evbroker as eb\neb.Broker(seed=0).queue('q', guarantee='at-least-one')")
    write_notebook(solution_notebook(new_code_cell("x = 1"), new_code_cell("1 / 0")), broken)
    write_notebook(solution_notebook(new_code_cell("import sys\nprint('careful', file=sys.stderr)")), noisy)
    raising.metadata["tags"] = ["raises-exception"]
    write_notebook(solution_notebook(raising), allowed)
    before = broken.read_bytes()

    code, _, err = build(broken, noisy, allowed)

    assert code == 1
    assert "01_broken.ipynb: cell 2 ('1 / 0') raised an error" in err
    assert "ZeroDivisionError" in err
    assert "02_noisy.ipynb: cell 1 ('import sys') wrote to stderr: 'careful'" in err
    assert "2 of 3 notebook(s) failed" in err
    assert broken.read_bytes() == before, "a failed notebook is not rewritten"
    shown = json.loads(allowed.read_text())["cells"][0]["outputs"][0]
    assert shown["ename"] == "EvbrokerError" and "did you mean 'at-least-once'" in shown["evalue"]


def test_back_to_back_stream_chunks_are_joined_but_not_across_a_figure():
    stream = nbformat.v4.new_output
    outputs = [
        stream("stream", name="stdout", text="a"),
        stream("stream", name="stdout", text="b\n"),
        stream("display_data", data={"text/plain": "<Figure>"}),
        stream("stream", name="stdout", text="c\n"),
    ]
    merged = merge_adjacent_streams(outputs)
    assert [o.get("text") for o in merged] == ["ab\n", None, "c\n"]


def test_build_refuses_a_path_that_does_not_exist(tmp_path, capsys):
    assert main(["notebooks", str(tmp_path / "nope.ipynb")]) == 2
    assert "no such notebook" in capsys.readouterr().err


def test_stored_widget_state_keeps_creation_order_once_written_with_sorted_keys():
    """The picture check pairs image widgets by creation order: renamed ids must sort that way."""
    from evbroker.build import _stable_widget_ids, notebook_text

    created = [f"{n:x}-random-kernel-id" for n in (7, 3, 15, 1, 12, 0, 9, 11, 2, 14, 5, 13)]
    nb = new_notebook()
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "state": {mid: {"model_name": "ImageModel", "state": {"n": n}} for n, mid in enumerate(created)},
            "version_major": 2,
            "version_minor": 0,
        }
    }
    written = nbformat.reads(notebook_text(_stable_widget_ids(nb, "99_fixture")), as_version=4)
    state = written.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert [model["state"]["n"] for model in state.values()] == list(range(len(created)))


def _kernelspec(folder, name, code):
    """A kernelspec named ``name`` whose kernel process runs ``code`` with the connection file in argv."""
    spec = folder / "kernels" / name
    spec.mkdir(parents=True)
    argv = [sys.executable, "-c", code, "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python"}))


@pytest.mark.slow
def test_a_kernel_that_never_answers_is_replaced_once_then_the_build_fails_saying_so(tmp_path, monkeypatch, capsys):
    _kernelspec(tmp_path, "dead", "raise SystemExit(3)")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setattr(build_module, "KERNEL_NAME", "dead")
    lesson = tmp_path / "01_x.ipynb"
    write_notebook(solution_notebook(new_code_cell("x = 1")), lesson)
    before = lesson.read_bytes()

    code = main(["notebooks", str(lesson)])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("the kernel never answered") == 1, err
    assert "01_x.ipynb: 2 fresh kernels in a row never answered" in err
    assert lesson.read_bytes() == before


@pytest.mark.slow
def test_a_kernel_that_dies_before_answering_is_replaced_and_the_build_goes_on(tmp_path, monkeypatch, build):
    marker = tmp_path / "first-start-happened"
    flaky = (
        "import pathlib, runpy, sys\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    raise SystemExit(3)\n"
        "sys.argv = ['ipykernel_launcher', '-f', sys.argv[1]]\n"
        "runpy.run_module('ipykernel_launcher', run_name='__main__')\n"
    )
    _kernelspec(tmp_path, "flaky", flaky)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setattr(build_module, "KERNEL_NAME", "flaky")
    lesson = tmp_path / "01_x.ipynb"
    write_notebook(solution_notebook(new_code_cell("print(6 * 7)")), lesson)

    code, out, err = build(lesson)

    assert code == 0, err
    assert "01_x.ipynb: the kernel never answered" in err and "trying a fresh one" in err
    assert "updated" in out
    [cell] = json.loads(lesson.read_text())["cells"]
    assert cell["outputs"][0]["text"] == ["42\n"]


def test_lesson_kernels_talk_over_private_unix_sockets_not_tcp(tmp_path):
    client = build_module.notebook_client(solution_notebook(), tmp_path, ipc_dir=tmp_path)
    manager = client.create_kernel_manager()
    assert manager.transport == "ipc"
    assert manager.ip == str(tmp_path / "kernel")
    assert manager.transport_encryption == "disabled"
