"""The package's shape: no import cycle, every setting read in one place, `make grades` without torch, no function
longer than a screen."""

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
        elif isinstance(node, ast.Call) and _called(node) == "importlib.import_module" and node.args:
            found |= _loaded_by_name(node.args[0])
    return {m for m in found if m.startswith("autograder") and m != name}


def _called(call) -> str:
    func, names = call.func, []
    while isinstance(func, ast.Attribute):
        names.insert(0, func.attr)
        func = func.value
    return ".".join([func.id, *names]) if isinstance(func, ast.Name) else ""


def _loaded_by_name(arg) -> set:
    """What ``importlib.import_module(arg)`` may load: the module a literal names, or every module under the
    literal prefix of an f-string (``f"autograder.checks.{name}"``: every module of autograder.checks)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = arg.values[0].value
        return {m for m in map(_module_name, PACKAGE.rglob("*.py")) if m.startswith(prefix)}
    raise AssertionError(f"importlib.import_module({ast.unparse(arg)}): name a module, or a package prefix")


def _package(module: str) -> str:
    """The subpackage a module belongs to (autograder.host, ...), or the module itself if it is at the top."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else module


def _assert_acyclic(graph: dict) -> None:
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


def test_no_import_cycle():
    """Between modules, and between the subpackages (what runs where: host, checks, kernel, zoo), counting the
    modules loaded by name."""
    graph = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    _assert_acyclic(graph)
    packages: dict[str, set] = {}
    for module, imported in graph.items():
        packages.setdefault(_package(module), set()).update(
            _package(m) for m in imported if _package(m) != _package(module))
    _assert_acyclic(packages)


def test_a_module_loaded_by_name_is_an_edge():
    registry = _imports(PACKAGE / "registry.py")
    assert "autograder.checks.lstm_cell" in registry and "autograder.checks.real_data" in registry


MAX_FUNCTION_LINES = 60


def _long_functions(source: str, where: str) -> list[str]:
    """``where:name (n lines)`` for every function or method of ``source`` longer than MAX_FUNCTION_LINES."""
    return [f"{where}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_no_function_is_longer_than_a_screen():
    assert _long_functions("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES, "planted") == ["planted:f (61 lines)"]
    assert _long_functions("def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1), "planted") == []
    long = [f for path in sorted(PACKAGE.rglob("*.py")) for f in _long_functions(path.read_text(), str(path))]
    assert not long, long


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
