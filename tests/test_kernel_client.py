"""A cell whose reply the kernel loses ends the wait quickly, and the build runs the notebook again."""

import json
import sys

import pytest
from nbformat.v4 import new_code_cell, new_notebook

import evbroker.build as build_module
from evbroker.build import BuildError, execute_notebook, write_notebook

LOSSY_KERNEL = """
import pathlib, runpy, sys
from jupyter_client.session import Session

marker, how = pathlib.Path(sys.argv[2]), sys.argv[3]
send = Session.send

def send_or_lose(self, stream, msg_or_type, content=None, parent=None, *args, **kwargs):
    code = (parent or {}).get("content", {}).get("code", "")
    if msg_or_type == "execute_reply" and "# its reply gets lost" in code and not marker.exists():
        if how == "once":
            marker.touch()
        return self.msg(msg_or_type, content, parent)  # built as if sent, never sent
    return send(self, stream, msg_or_type, content, parent, *args, **kwargs)

Session.send = send_or_lose
sys.argv = ["ipykernel_launcher", "-f", sys.argv[1]]
runpy.run_module("ipykernel_launcher", run_name="__main__")
"""


@pytest.fixture
def lossy(tmp_path, monkeypatch):
    """A kernel that drops the execute_reply of cells marked ``# its reply gets lost`` (``how``: once or always)."""

    def make(how):
        spec = tmp_path / "kernels" / "lossy"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-c", LOSSY_KERNEL, "{connection_file}", str(tmp_path / "lost-once"), how]
        (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "lossy", "language": "python"}))
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
        monkeypatch.setattr(build_module, "KERNEL_NAME", "lossy")
        lesson = tmp_path / "01_x.ipynb"
        cells = [new_code_cell("print('before')"), new_code_cell("print(6 * 7)  # its reply gets lost")]
        nb = new_notebook(cells=cells)
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"c{i}"
        write_notebook(nb, lesson)
        return lesson

    return make


@pytest.mark.slow
def test_a_reply_lost_once_is_reported_and_the_notebook_runs_again_in_a_fresh_kernel(lossy, capsys):
    lesson = lossy("once")

    nb = execute_notebook(lesson, reply_grace=3)

    err = capsys.readouterr().err
    assert "01_x.ipynb: cell 2 finished in the kernel but its reply did not come within 3 s" in err
    assert err.count("running it again in a fresh kernel") == 1
    assert [c.outputs[0]["text"] for c in nb.cells] == ["before\n", "42\n"]
    assert [c.execution_count for c in nb.cells] == [1, 2]


@pytest.mark.slow
def test_a_reply_lost_every_time_fails_the_build_naming_the_cell_well_before_the_cell_timeout(lossy, capsys):
    lesson = lossy("always")

    with pytest.raises(BuildError, match=r"01_x.ipynb: cell 2 finished in the kernel .* in 2 fresh kernels in a row"):
        execute_notebook(lesson, timeout=600, reply_grace=3)

    assert capsys.readouterr().err.count("running it again in a fresh kernel") == 1


def test_reply_watch_is_off_unless_asked_so_the_classroom_run_keeps_its_own_limits(tmp_path):
    assert build_module.notebook_client(new_notebook(), tmp_path).reply_grace is None
    assert build_module.notebook_client(new_notebook(), tmp_path, reply_grace=5).reply_grace == 5
