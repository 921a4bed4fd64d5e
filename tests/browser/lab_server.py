"""A throwaway JupyterLab server for the browser tests: started from this environment, always stopped.

`start_lab_server(root, workdir)` runs ``sys.executable -m jupyter lab`` on 127.0.0.1 with a free
port and a random token, serving `root` (a temporary copy of the notebooks, never the committed
files). Jupyter's config, data, runtime, settings and workspace directories are fresh folders under
`workdir`, so nothing from the user's own Jupyter set-up leaks in and nothing is written back.
The environment's own ``share/jupyter`` (``sys.prefix``) stays on Jupyter's data path, which is
where the ``@jupyter-widgets/jupyterlab-manager`` extension and the ``python3`` kernel spec live;
that kernel spec says ``python``, which jupyter_client replaces with the server's interpreter, so
kernels run this environment's Python with this checkout's ``evbroker`` importable.

`LabServer.stop()` shuts the kernels down, terminates the server's process group, escalates to
SIGKILL if it lingers, and kills any kernel that outlived it (kernels run in sessions of their own,
so a signal to the server's group does not reach them). On Linux the server also gets SIGTERM if the
test process dies without tearing down (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# JupyterLab settings for a quiet, test-friendly front end: every cell attached to the DOM (so images
# and widgets can be counted and screenshotted), no autosave into the copy, no network look-ups.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}


@dataclass
class LabServer:
    """A running JupyterLab: its address, token, served root and process."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log_path: Path
    _kernel_pids: dict[int, str] = field(default_factory=dict)

    def lab_url(self, path: str = "", reset: bool = True) -> str:
        """The URL that opens `path` (relative to the served root) in a fresh JupyterLab workspace."""
        query = f"token={self.token}" + ("&reset" if reset else "")
        return f"{self.url}lab/tree/{path}?{query}"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """Call the Jupyter server REST API; returns the decoded JSON body (or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self) -> None:
        """Shut down every kernel the server runs (between tests, to keep memory flat)."""
        self._remember_kernel_pids()
        with contextlib.suppress(OSError, urllib.error.URLError):
            for kernel in self.api("GET", "api/kernels"):
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api("DELETE", f"api/kernels/{kernel['id']}")

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server and everything it started. Safe to call twice."""
        self._remember_kernel_pids()
        if self.process.poll() is None:
            self.shutdown_kernels()
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=grace)
        # Kernels live in their own sessions; kill the ones that outlived the server (same pid and start
        # time as recorded, so a recycled pid is never touched).
        for pid, started in self._kernel_pids.items():
            if _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        _signal_group(self.process.pid, signal.SIGKILL)  # stragglers left in the server's group

    def _remember_kernel_pids(self) -> None:
        if self.process.poll() is None:
            for pid in _descendants(self.process.pid):
                started = _start_time(pid)
                if started is not None:
                    self._kernel_pids.setdefault(pid, started)


def start_lab_server(root: Path, workdir: Path, timeout: float = 180.0) -> LabServer:
    """Start JupyterLab serving `root`; return once ``/api/status`` answers. Raises RuntimeError otherwise."""
    env = _server_env(workdir)
    _write_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        port, token = _free_port(), secrets.token_hex(24)
        log_path = workdir / f"jupyterlab-{port}.log"
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd,
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches all of it
                preexec_fn=_die_with_parent(),
            )
        server = LabServer(f"http://127.0.0.1:{port}/", token, root, process, log_path)
        try:
            if _wait_until_up(server, timeout):
                return server
        except BaseException:
            server.stop()
            raise
        last_error = server.log_tail()
        server.stop()
        if "address already in use" not in last_error.lower():
            break
    raise RuntimeError(f"JupyterLab did not start within {timeout:.0f} s. Its log ends with:\n{last_error}")


def _server_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The test run may set these (tests/conftest.py selects Agg); the kernel must use its inline backend.
    for name in ("MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH", "JPY_PARENT_PID"):
        env.pop(name, None)
    dirs = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }
    for name, sub in dirs.items():
        path = workdir / sub
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    # This checkout's package first, even if another evbroker is installed somewhere.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silences a debugger warning on kernel start
    return env


def _write_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(server: LabServer, timeout: float) -> bool:
    """Ask the server's status API until it answers (True), the process exits or `timeout` runs out (False).

    A refused connection returns at once, so the short pause between attempts only spaces them out; the
    deadline is generous because a loaded machine can take a minute to start JupyterLab."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            if "started" in server.api("GET", "api/status", timeout=10.0):
                return True
        time.sleep(0.2)
    return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _die_with_parent():  # type: ignore[no-untyped-def]
    """A preexec function asking Linux to SIGTERM the child when the test process dies (else None)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields after "pid (comm)"; comm may hold spaces


def _start_time(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields else None  # field 22 (starttime), counted from field 3


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; an empty list elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _proc_stat(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
