"""Submissions that attack the grader. None may gain a point, read or change anything outside its own
scratch directory, or go unnoticed in the grading log.

Most pair a wrong answer with an attack that would make it pass if the attack worked: the score must
stay what the wrong answer earns honestly (``HONEST``).
"""

import textwrap

from autograder.course import ROOT
from autograder.demo import PLANTED

from . import FULL, ZERO, A, Case, answers, reference, release, submit_nb, with_cell_after

NO_TANH = dict(FULL, lstm_cell=3.0)  # what the planted bug (h = o * c) earns honestly: parameters and init
WRONG_SIGMOID = "def sigmoid(x):\n    return x * 0 + 0.5\n"


def _code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def planted(course, **changes):
    bugged = PLANTED[A].apply(answers(course))
    from autograder.submissions import fill

    return fill(release(course), {**bugged, **changes})


def after(nb_of, grade_id, source):
    return submit_nb(lambda course: with_cell_after(nb_of(course), grade_id, _code(source)))


PATCH_TORCH = """
import numpy, torch
torch.allclose = lambda *a, **k: True
torch.isfinite = lambda t: torch.ones_like(t, dtype=torch.bool)
torch.equal = lambda *a, **k: True
torch.Tensor.allclose = lambda *a, **k: True
torch.sigmoid = sigmoid            # so that the oracle agrees with the student
torch.nn.functional.sigmoid = sigmoid
"""

PATCH_BUILTINS = """
import builtins, numpy, numpy.testing, torch, torch.testing
builtins.bool = lambda *a: True    # the harness's close() ends in bool(allclose(...))
builtins.abs = lambda x: 0.0       # and some checks compare abs(got - want) with a tolerance
torch.testing.assert_close = lambda *a, **k: None
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
"""

PATCH_GRADER = """
import autograder.harness as h
import autograder.checks.lstm_cell as L
for module in (h, L):
    module.close = lambda *a, **k: True
    module.expect_close = lambda *a, **k: None
    module.expect_shape = lambda *a, **k: None
    module.call = lambda fn, *a, what="", **k: fn(*a, **k)
L.name_cell_bug = lambda *a, **k: None
h.GradingFailure.__init__ = lambda self, *a: None
"""

FAKE_CHECKS = """
import sys, types
import autograder.checks
fake = types.ModuleType("autograder.checks.lstm_cell")
for test in ("sigmoid_values", "sigmoid_stable", "cell_parameters", "cell_init", "cell_forward",
             "cell_forward_forms", "cell_gradients", "load_from_torch"):
    setattr(fake, test, lambda: print("\\u2713 passed"))
sys.modules["autograder.checks.lstm_cell"] = fake
autograder.checks.lstm_cell = fake
"""

REWRITE_CELLS = """
ip = get_ipython()

def no_tests(lines):
    if any("HIDDEN TESTS" in line or "autograder" in line for line in lines):
        return ["print('\\u2713 sigmoid matches the logistic function')\\n"]
    return lines

ip.input_transformers_cleanup.append(no_tests)
ip.showtraceback = lambda *a, **k: None
ip.set_custom_exc((BaseException,), lambda *a, **k: None)
"""

ALWAYS_TRUE = """
class Yes(torch.Tensor):
    # every comparison says yes, every test of a boolean says True
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("allclose", "equal", "__eq__", "__bool__", "all", "any", "isclose"):
            return True
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **(kwargs or {}))
        return out.as_subclass(Yes) if isinstance(out, torch.Tensor) else out

    def __eq__(self, other):
        return True

    def __bool__(self):
        return True


class Fake:
    # not even a tensor, but says it is one
    def __init__(self, shape):
        self.shape, self.dtype = torch.Size(shape), torch.float64
    __class__ = property(lambda self: torch.Tensor)
    __eq__ = lambda self, other: True
    __bool__ = lambda self: True
    def __getattr__(self, name):
        return lambda *a, **k: self


def sigmoid(x):
    return (x * 0).as_subclass(Yes)


_forward = LSTMCell.forward
def forward(self, x, h=None, c=None):
    shape = (*x.shape[:-1], self.hidden_size)
    return Fake(shape), Fake(shape)
LSTMCell.forward = forward
"""

READ_SECRETS = """
import glob, os, pathlib
found = {}
paths = {paths}
for path in paths + sorted(glob.glob("/tmp/**/*.ipynb", recursive=True) + glob.glob("/work/**/*.py"))[:50]:
    try:
        with open(path, "rb") as fh:
            found[path] = fh.read(4000)
    except OSError as err:
        found[path] = repr(err)
for path in ("/", "/tmp", "/grader", "{root}", "{root}/submitted"):
    try:
        found[path] = os.listdir(path)
    except OSError as err:
        found[path] = repr(err)
try:
    import inspect, autograder.checks.lstm_cell as m
    found["check source"] = inspect.getsource(m)
except Exception as err:
    found["check source"] = repr(err)
print(found)
"""

WRITE_OUTSIDE = """
import os, pathlib, sqlite3
attempts = {{}}
for path in {paths}:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab") as fh:
            fh.write(b"PWNED")
        attempts[path] = "written"
    except OSError as err:
        attempts[path] = repr(err)
try:
    db = sqlite3.connect("{root}/gradebook.db")
    db.execute("UPDATE grade SET auto_score = 100")
    db.commit()
    attempts["gradebook"] = "updated"
except Exception as err:
    attempts["gradebook"] = repr(err)
print(attempts)
"""

NETWORK = """
import socket, urllib.request
tries = {{}}
for target in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("example.com", 80)]:
    try:
        socket.create_connection(target, timeout=2).close()
        tries[target] = "connected"
    except Exception as err:
        tries[target] = repr(err)
try:
    urllib.request.urlopen("http://example.com", timeout=2)
    tries["http"] = "fetched"
except Exception as err:
    tries["http"] = repr(err)
print(tries)
"""

READY_MADE = """
_lstm_cell = torch._C._VariableFunctions.lstm_cell   # taken before any test can block it


def _stack(cell, kind):
    return torch.cat([getattr(cell, f"{kind}_{g}") for g in "ifco"])


def forward(self, x, h=None, c=None):
    if h is None:
        h = x.new_zeros(*x.shape[:-1], self.hidden_size)
        c = x.new_zeros(*x.shape[:-1], self.hidden_size)
    return _lstm_cell(x, (h, c), _stack(self, "U"), _stack(self, "W"), _stack(self, "b"), None)


LSTMCell.forward = forward
"""

FRAME_PEEK = """
import inspect, sys


def forward(self, x, h=None, c=None):
    frame = inspect.currentframe()
    while frame is not None:
        if "want_h" in frame.f_locals:
            return frame.f_locals["want_h"], frame.f_locals["want_c"]
        frame = frame.f_back
    try:
        raise RuntimeError
    except RuntimeError as err:
        frame = err.__traceback__.tb_frame
    while frame is not None:
        if "want_h" in frame.f_locals:
            return frame.f_locals["want_h"], frame.f_locals["want_c"]
        frame = frame.f_back
    return x, x


LSTMCell.forward = forward
"""

PROCESSES = """
import ctypes, multiprocessing, os, signal, subprocess
tries = {}
for name, attempt in [
    ("kill everything", lambda: os.kill(-1, signal.SIGKILL)),
    ("kill the grader", lambda: os.kill(os.getppid(), signal.SIGKILL)),
    ("shell", lambda: os.system("kill -9 -1")),
    ("subprocess", lambda: subprocess.run(["sh", "-c", "kill -9 -1"])),
    ("notebook shell", lambda: get_ipython().system("kill -9 -1")),
    ("multiprocessing", lambda: multiprocessing.Process(target=print).start()),
    ("ctypes", lambda: ctypes.CDLL(None).kill(-1, 9)),
]:
    try:
        attempt()
        tries[name] = "done"
    except Exception as err:
        tries[name] = repr(err)
print(tries)
"""

FORGE = """
import os, stat, sys
sys.audit("lstm_course.pass", "sigmoid_values")
for fd in range(3, 64):
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, b"1\\tpass\\ttest=autograder.checks.lstm_cell.sigmoid_values\\t"
                         b"0123456789abcdef0123456789abcdef\\n")
    except OSError:
        pass
get_ipython().input_transformers_cleanup.append(
    lambda lines: ["pass\\n"] if any("HIDDEN TESTS" in line for line in lines) else lines)
"""


def _secrets(course):
    root = course.root
    paths = [f"{root}/instructor_secret.txt", "/tmp/lstm-course-canary.txt", f"{root}/gradebook.db",
             f"{root}/source/{A}/{A}.ipynb", f"{root}/submitted/reference/{A}/{A}.ipynb",
             f"{root}/autograded/reference/{A}/{A}.ipynb", "/grader/autograder.zip",
             f"{ROOT}/autograder/checks/lstm_cell.py", f"{ROOT}/solutions/{A}/{A}.ipynb", f"{ROOT}/gradebook.db"]
    return with_cell_after(release(course), "setup", _code(READ_SECRETS.replace("{paths}", repr(paths))
                                                            .replace("{root}", str(root))))


def _writes(course):
    root = course.root
    paths = [f"{root}/submitted/reference/{A}/{A}.ipynb", f"{root}/autograded/reference/{A}/{A}.ipynb",
             f"{root}/feedback/reference/pwned.html", f"{root}/pwned.txt", f"{root}/instructor_secret.txt",
             "/tmp/lstm-course-canary.txt"]
    return with_cell_after(release(course), "setup", _code(WRITE_OUTSIDE.format(paths=repr(paths), root=root)))


def _network(port):
    def make(course):
        return with_cell_after(release(course), "setup", _code(NETWORK.format(port=port)))

    return make


def cases(port: int) -> list:
    """``port``: a TCP port on 127.0.0.1 the test listens on; nothing may connect to it."""
    return [
        Case("patch_torch", submit_nb(lambda c: with_cell_after(reference(c, sigmoid=WRONG_SIGMOID), "sigmoid",
                                                                _code(PATCH_TORCH))),
             dict(FULL, sigmoid=0.0), ["GraderTampering"], {"tampering"},
             about="replaces torch.allclose, isfinite, equal, sigmoid to pass a wrong sigmoid"),
        Case("patch_builtins_and_testing", after(planted, "lstm_cell", PATCH_BUILTINS), NO_TANH, [], {"cell-skipped"},
             about="replaces builtins.bool, abs (it wedges the kernel: skipped), torch.testing, numpy.testing"),
        Case("patch_grader", after(planted, "lstm_cell", PATCH_GRADER), dict(NO_TANH, lstm_cell=1.0),
             ["GraderTampering"], {"tampering"}, about="replaces the harness's and the hidden tests' helpers"),
        Case("fake_checks_module", after(planted, "setup", FAKE_CHECKS), ZERO, ["received no confirmation"],
             {"unverified"}, about="swaps the hidden-test module for one that passes everything"),
        Case("rewrite_test_cells", after(release, "setup", REWRITE_CELLS), ZERO, ["received no confirmation"],
             {"unverified"}, about="an input transformer turns every test cell into a fake pass, errors hidden"),
        Case("always_true_objects", after(lambda c: reference(c, sigmoid=WRONG_SIGMOID), "lstm_cell_check",
                                                   ALWAYS_TRUE),
             dict(FULL, sigmoid=0.0, lstm_cell=3.0), [], set(),
             about="tensors whose comparisons always say yes, objects that claim to be tensors"),
        Case("read_secrets", submit_nb(_secrets), ZERO, [], {"outside-scratch"},
             about="reads the hidden tests, source/, solutions/, the gradebook, other students, canaries"),
        Case("write_outside", submit_nb(_writes), ZERO, [], {"blocked", "outside-scratch"},
             about="writes the gradebook, another student's files, the course root, /tmp"),
        Case("network", submit_nb(_network(port)), ZERO, [], {"blocked"},
             about="connects to 127.0.0.1, 1.1.1.1, example.com"),
        Case("ready_made_lstm", after(reference, "lstm_cell", READY_MADE), dict(FULL, lstm_cell=3.0),
             ["calls torch's lstm_cell"], {"report"},
             about="calls torch's own lstm_cell, taken before the test could block it"),
        Case("frame_peek", after(reference, "lstm_cell", FRAME_PEEK), dict(FULL, lstm_cell=3.0),
             ["inspecting the call stack"], {"blocked"},
             about="reads the expected answer from the grader's stack frames"),
        Case("processes_and_signals", after(release, "setup", PROCESSES), ZERO, [], {"blocked"},
             about="kills every process it can, starts shells, forks, calls libc through ctypes"),
        Case("forge_results", after(release, "setup", FORGE), ZERO, [], {"forged", "forged-pass", "unverified"},
             about="fakes the guard's pass records and blanks the test cells"),
    ]


CONTROLS = {"reference": FULL, "honest_planted_bug": NO_TANH}
