"""The package's shape: no import cycle, every setting read in one place, `make grades` without torch."""

import ast
import subprocess
import sys

from autograder.host.course import ROOT
from autograder.settings import ENV

PACKAGE = ROOT / "autograder"


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """The autograder modules a file imports, at the top or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).
                          with_suffix(".py").exists() or (ROOT / f"{base}.{alias.name}".replace(".", "/")).is_dir()
                          else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m.startswith("autograder") and m != name}


def test_no_import_cycle():
    graph = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "import cycle: " + " -> ".join(path + [node])
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt in graph:
                visit(nxt, path + [node])
        state[node] = "done"

    for node in sorted(graph):
        visit(node, [])


def test_settings_are_read_in_one_place():
    """Only settings.py names the settings' environment variables (the kernel's package reads its own two)."""
    allowed = {PACKAGE / "settings.py", PACKAGE / "kernel" / "boot.py"}
    for path in PACKAGE.rglob("*.py"):
        if path in allowed:
            continue
        text = path.read_text()
        named = [n for n in ENV.values() if f'"{n}"' in text or f"'{n}'" in text]
        assert not named, f"{path.relative_to(ROOT)} reads {named} itself"


def test_grades_and_the_batch_do_not_import_torch():
    code = ("import sys; import autograder.cli, autograder.host.report, autograder.host.batch, autograder.settings, "
            "autograder.host.class_report; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "False", done.stderr


def test_the_benchmarks_start():
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, f"{script.name}: {done.stderr[-2000:]}"
