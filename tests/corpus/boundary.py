"""Submissions that attack the boundary between the sandbox and the host: code that would run in the
grader's own processes, files the host would follow or block on, notebooks that would crash a worker,
HTML that would run in a TA's browser. One or more cases per class of attack; each is paired with what
the same answers earn untampered (the reference's ``FULL`` or the planted bug's ``NO_TANH``).

``cases(root, port)`` builds them for a course at ``root`` and a listener on 127.0.0.1:``port``: every
payload that ever ran outside the sandbox writes ``<root>/PWNED-<case>.txt`` and connects there.
"""

import json
import os
import textwrap
from pathlib import Path

from autograder.host.course import ROOT
from autograder.host.submissions import submit

from . import FULL, ZERO, A, Case, reference, with_cell_after
from .hostile import NO_TANH, planted

OUTSIDE = """
import os, socket
open({marker!r}, "w").write("ran outside the sandbox as " + str(os.getuid()))
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
except OSError:
    pass
"""

# A torch that is the real one with every comparison answering yes, as a shim beside the notebook.
TORCH_SHIM = """
import importlib, os, sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules["torch"]
real = importlib.import_module("torch")
real.allclose = lambda *a, **k: True
real.Tensor.allclose = lambda *a, **k: True
real.isclose = lambda a, b, *x, **k: real.ones_like(a, dtype=real.bool)
sys.modules["torch"] = real
"""

# A standard-library module ipykernel imports at start-up: the real one, plus the same patch of torch.
STDLIB_SHIM = """
import importlib.util, sys, sysconfig
_spec = importlib.util.spec_from_file_location(__name__, sysconfig.get_paths()["stdlib"] + "/{name}.py")
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)
globals().update({{k: v for k, v in vars(_real).items() if k not in ("__name__", "__spec__", "__loader__")}})
import torch
torch.allclose = lambda *a, **k: True
torch.Tensor.allclose = lambda *a, **k: True
"""


def _code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def _files(nb_of, files: dict, extra=None):
    """A submission: the notebook ``nb_of(course)`` and ``files`` beside it (path -> text, or a callable
    ``(course, folder, path)`` that makes the entry itself: a link, a FIFO, ...)."""
    def build(course, student):
        nb = nb_of(course)
        submit(course, student, A, nb)
        folder = course.notebook("submitted", A, student).parent
        for rel, content in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                content(course, folder, path)
            else:
                path.write_text(content)
        if extra:
            extra(course, folder)

    return build


def _after(nb_of, grade_id, source):
    return lambda course: with_cell_after(nb_of(course), grade_id, _code(source))


def _link(target_of):
    return lambda course, folder, path: os.symlink(target_of(course), path)


def _fifo(course, folder, path):
    os.mkfifo(path)


def _raw_notebook(edit):
    """A submission written as raw JSON: the reference notebook as a dict, changed by ``edit(d) -> text``."""
    def build(course, student):
        path = course.notebook("submitted", A, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        import nbformat

        d = json.loads(nbformat.writes(reference(course)))
        path.write_text(edit(d))

    return build


def _metadata_not_dicts(d):
    markdown = next(c for c in d["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "summary")
    markdown["metadata"]["nbgrader"] = "oops"
    test = next(c for c in d["cells"] if c["metadata"].get("nbgrader", {}).get("grade") is True
                and c["cell_type"] == "code")
    test["metadata"]["nbgrader"] = 42
    return json.dumps(d)


def _deeply_nested(d):
    d["metadata"]["deep"] = "@"
    return json.dumps(d).replace('"@"', "[" * 100_000 + "]" * 100_000)


def _junk_cells(d):
    d["cells"][1]["id"] = ["not", "a", "string"]
    d["cells"] += ["a string, not a cell", 42, {"cell_type": "code", "source": {"a": 1}, "metadata": "x"}]
    return json.dumps(d)


def _student_dir_link(course, student):
    os.symlink(course.dir("submitted") / "reference", course.dir("submitted") / student)


def _assignment_dir_link(course, student):
    (course.dir("submitted") / student).mkdir(parents=True)
    os.symlink(course.dir("submitted") / "reference" / A, course.dir("submitted") / student / A)


def _notebook_is(make):
    def build(course, student):
        path = course.notebook("submitted", A, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        make(course, path)

    return build


def cases(root: Path, port: int, secret: Path) -> list:
    def outside(name):
        return _code(OUTSIDE.format(marker=str(root / f"PWNED-{name}.txt"), port=port))

    gradebook = root / "gradebook.db"
    hidden = ROOT / "autograder" / "checks" / "lstm_cell.py"
    source = root / "source" / A / f"{A}.ipynb"
    others = root / "autograded" / "reference" / A / f"{A}.ipynb"
    write_launcher = f"""
    import os
    os.makedirs("autograder/host", exist_ok=True)
    open("autograder/__init__.py", "w").write("")
    open("autograder/host/__init__.py", "w").write("")
    open("autograder/host/sandbox.py", "w").write({outside('launcher_written_by_cell')!r})
    os._exit(0)   # the grader restarts the kernel: would the new launcher import the package above?
    """
    write_shim = f"""
    import os
    open("torch.py", "w").write({_code(TORCH_SHIM)!r})
    open("shlex.py", "w").write({_code(STDLIB_SHIM.format(name="shlex"))!r})
    os._exit(0)
    """
    leave_links = f"""
    import os
    made = {{}}
    for name, target in [("{A}.ipynb", {str(gradebook)!r}), ("leak_gradebook", {str(gradebook)!r}),
                         ("leak_source", {str(source)!r}), ("leak_hidden", {str(hidden)!r}),
                         ("leak_other", {str(others)!r}), ("leak_relative", "../../../gradebook.db")]:
        try:
            if os.path.lexists(name):
                os.remove(name)
            os.symlink(target, name)
            made[name] = "linked"
        except OSError as err:
            made[name] = repr(err)
    os.mkfifo("leak_fifo")
    os.mkdir("sub")
    os.symlink({str(gradebook)!r}, "sub/gradebook")
    print(made)
    """
    squat_sockets = """
    import json, os
    prefix = json.load(open("/grader/connection.json"))["ip"]
    for port in range(1, 80):   # dangling links where the next kernel's sockets will go
        try:
            os.symlink("/nonexistent/socket", f"{prefix}-{port}")
        except OSError:
            pass
    os._exit(0)
    """
    show_files = """
    import os
    for here, dirs, files in os.walk("."):
        for name in sorted(files):
            path = os.path.join(here, name)
            try:
                with open(path, "rb") as fh:
                    print(path, fh.read(300))
            except OSError as err:
                print(path, repr(err))
    """
    scripts = """
    from IPython.display import HTML, Javascript, display
    display(HTML('<script>window.PWNED_JS = 1</script><img src="x" onerror="window.PWNED_JS = 2">'
                 '<iframe src="javascript:window.PWNED_JS = 3"></iframe><b>bold is fine</b>'))
    display(Javascript("window.PWNED_JS = 4"))
    """
    scripts_md = ('An answer with <script>window.PWNED_JS = 5</script> and '
                  '<a href="javascript:window.PWNED_JS = 6" onclick="window.PWNED_JS = 7">a link</a>.')

    def big(course, folder, path):
        path.write_bytes(b"0" * (17 * 2**20))

    def hard(course, folder, path):
        os.link(secret, path)

    def deep(course, folder, path):
        os.makedirs(folder / "/".join(["d"] * 14))
        (folder / "/".join(["d"] * 14) / "bottom.txt").write_text("deep")

    def scripts_nb(course):
        return with_cell_after(with_cell_after(reference(course), "load_from_torch", _code(scripts)),
                               "load_from_torch", scripts_md, "markdown")

    return [
        # 1. code in the launcher, outside bubblewrap
        Case("launcher_package", _files(planted, {"autograder/__init__.py": "", "autograder/host/__init__.py": "",
                                                  "autograder/host/sandbox.py": outside("launcher_package")}),
             NO_TANH, about="an autograder/ package beside the notebook, for `python -m autograder.host.sandbox`"),
        Case("launcher_written_by_cell", _files(_after(planted, "lstm_cell", write_launcher), {}), NO_TANH,
             ["KernelStopped"], {"cell-skipped"},
             about="a cell writes an autograder/ package into its folder, then kills the kernel"),
        # 2. shadowed imports inside the kernel
        Case("shadow_torch", _files(planted, {"torch.py": _code(TORCH_SHIM)}), NO_TANH,
             about="torch.py beside the notebook: the real torch, every comparison saying yes"),
        Case("shadow_stdlib", _files(planted, {f"{m}.py": _code(STDLIB_SHIM.format(name=m))
                                               for m in ("shlex", "pdb", "mimetypes", "sitecustomize")}),
             NO_TANH, about="standard-library modules ipykernel imports at start, shadowed beside the notebook"),
        Case("shadow_written_by_cell", _files(_after(planted, "lstm_cell", write_shim), {}), NO_TANH,
             ["KernelStopped"], {"cell-skipped"},
             about="a cell writes torch.py and shlex.py into its folder, then kills the kernel"),
        # 3. what the kernel leaves behind for the host
        Case("links_left_behind", _files(_after(reference, "load_from_torch", leave_links), {}), FULL,
             about="the notebook replaced by a link to the gradebook, leak_* links, a FIFO, in the kernel's folder"),
        Case("squat_sockets", _files(_after(reference, "sigmoid", squat_sockets), {}), FULL, ["KernelStopped"],
             {"cell-skipped"}, about="links on the socket paths of the kernel that replaces this one"),
        # 4. links and special files submitted beside the notebook
        Case("submitted_links", _files(_after(reference, "load_from_torch", show_files), {
            "data/gradebook.db": _link(lambda c: gradebook), "data/hidden.py": _link(lambda c: hidden),
            "data/source.ipynb": _link(lambda c: source), "data/pipe": _fifo, "data/big.bin": big,
            "data/ok.txt": "fine", "hardlink.txt": hard, "top_link": _link(lambda c: "/etc/passwd"),
            "deep": deep}),
             FULL, ["is a symbolic link: not copied", "is a FIFO: not copied", "over the limit of 16 MB",
                    "is a hard link to another file", "nested more than 12 folders deep", "b'fine'"],
             about="links to the gradebook, hidden tests and source; a FIFO; a big file; a hard link; deep folders"),
        Case("notebook_is_a_link", _notebook_is(lambda course, path: os.symlink(source, path)), ZERO,
             [f"{A}.ipynb is a symbolic link, not a notebook file"],
             about="the notebook is a link to the source notebook, which holds the solutions"),
        Case("notebook_is_a_fifo", _notebook_is(lambda course, path: os.mkfifo(path)), ZERO,
             [f"{A}.ipynb is a FIFO, not a notebook file"], about="the notebook is a FIFO (reading it blocks)"),
        Case("student_dir_link", _student_dir_link, ZERO, ["is a symbolic link, not a folder"],
             about="the student's folder is a link to another student's"),
        Case("assignment_dir_link", _assignment_dir_link, ZERO, ["is a symbolic link, not a folder"],
             about="the assignment folder is a link to another student's"),
        # 5. notebooks that crashed a worker
        Case("metadata_not_dicts", _raw_notebook(_metadata_not_dicts), FULL,
             about="metadata.nbgrader a string in one cell and a number in a test cell"),
        Case("deeply_nested", _raw_notebook(_deeply_nested), ZERO, ["nested too deeply"],
             about="JSON nested 100 000 deep (RecursionError)"),
        Case("junk_cells", _raw_notebook(_junk_cells), FULL, ["are not cells at all"],
             about="cells that are strings and numbers, an id that is a list, a source that is a dict"),
        # 6. student HTML and JavaScript in the feedback a TA opens
        Case("script_in_feedback", _files(scripts_nb, {}), FULL,
             about="<script>, onerror, javascript: URLs and an iframe in outputs and a markdown cell"),
    ]
