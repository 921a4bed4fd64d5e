"""`make lab`, the README's first command, really opens JupyterLab, also as root.

The test runs `make lab` as a learner would, with LAB_ARGS for a free port, a token and no browser,
waits until the server answers its HTTP API, and stops it: the whole process group (make and
JupyterLab), so nothing is left running. Jupyter's config, data and runtime directories are fresh
temporary folders, so the user's own Jupyter set-up neither leaks in nor is written to.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STARTUP_DEADLINE = 180.0  # seconds; JupyterLab starts in 3-10 s, far longer on a loaded machine
ROOT_NOTE = "--allow-root"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JPY_PARENT_PID", "MAKEFLAGS", "MFLAGS"):
        env.pop(name, None)
    for name, sub in {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }.items():
        (tmp_path / sub).mkdir()
        env[name] = str(tmp_path / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["BROWSER"] = "true"  # belt and braces: even if a browser were opened, it is a no-op
    return env


def _read_lines(stream, lines: queue.Queue) -> None:  # type: ignore[no-untyped-def]
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)  # end of output: the process has closed it


def _status(url: str, token: str) -> dict:
    req = urllib.request.Request(url + "api/status", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _stop_group(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the process group (make and JupyterLab), SIGKILL what lingers, reap the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    # make may exit before JupyterLab has finished shutting down: whatever remains gets SIGKILL.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (Linux /proc), zombies excluded."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            raw = (entry / "stat").read_text()
            fields = raw[raw.rfind(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def test_make_lab_starts_jupyterlab_and_it_answers(tmp_path: Path) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}/"
    lab_args = (
        f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 "
        f"--IdentityProvider.token={token} --ServerApp.terminals_enabled=False"
    )
    process = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS={lab_args}"],
        cwd=REPO,
        env=_lab_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: stopping it reaches make and JupyterLab
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    output: list[str] = []
    status: dict | None = None
    last_error = ""
    try:
        # Event-driven: each line JupyterLab prints wakes the test. Once a line names the server's URL,
        # the API is asked (a failed request only means "not yet": the next line asks again).
        deadline = time.monotonic() + STARTUP_DEADLINE
        serving = False
        while status is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, (
                f"`make lab` did not answer within {STARTUP_DEADLINE:.0f} s ({last_error}):\n" + "".join(output)
            )
            try:
                line = lines.get(timeout=1.0 if serving else remaining)
            except queue.Empty:
                line = ""  # quiet for a second after printing its URL: ask the API again
            assert line is not None, f"`make lab` exited with {process.wait()} before serving:\n" + "".join(output)
            output.append(line)
            serving = serving or f":{port}/" in line
            if serving:
                try:
                    status = _status(url, token)
                except (OSError, ValueError) as exc:
                    last_error = repr(exc)
        assert "started" in status, status
        text = "".join(output)
        assert "Running as root is not recommended" not in text
        if os.geteuid() == 0:
            notes = [line for line in output if ROOT_NOTE in line and line.startswith("make lab:")]
            assert notes, f"as root, `make lab` must say it adds {ROOT_NOTE}:\n{text}"
        else:
            assert ROOT_NOTE not in text
    finally:
        _stop_group(process)
    assert _group_members(process.pid) == [], "`make lab` left processes running"
    with pytest.raises(OSError):
        _status(url, token)  # the server is gone
