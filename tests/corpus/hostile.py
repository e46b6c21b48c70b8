"""Submissions that attack the grader. None may gain a point, read or change anything outside its own
scratch directory, or go unnoticed in the grading log.

Most pair a wrong answer with an attack that would make it pass if the attack worked: the score must
stay what the wrong answer earns honestly (``HONEST``).
"""

from autograder.host.course import ROOT

from . import (
    FULL,
    NO_TANH,
    WRONG_SIGMOID,
    ZERO,
    A,
    Case,
    _code,
    after,
    disk_fill,
    evasion,
    flood,
    planted,
    reference,
    release,
    submit_nb,
    with_cell_after,
)

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

GRADER_MODULES = """
found = {}
for name in ("autograder.checks.lstm_cell", "autograder.checks.harness", "autograder.host.execute",
             "autograder.harness"):
    try:
        __import__(name)
        found[name] = "imported"
    except Exception as err:
        found[name] = repr(err)
print(found)
"""

FRAME_WALK = """
import gc, sys


def _loot():
    # every frame up the stack, and every object the collector knows, for anything the grader left behind
    seen = []
    frame = sys._getframe(0)
    while frame is not None:
        seen += list(frame.f_locals.values()) + list(frame.f_globals.values())
        frame = frame.f_back
    seen += gc.get_objects()
    return seen


_forward = LSTMCell.forward
def forward(self, x, h=None, c=None):
    for value in _loot():
        for name in ("want_h", "expected", "oracle", "key", "_run_seed", "reference"):
            got = getattr(value, name, None) if not isinstance(value, dict) else value.get(name)
            if isinstance(got, torch.Tensor) and h is not None and got.shape == h.shape:
                return got, got
    return _forward(self, x, h, c)
LSTMCell.forward = forward
"""

FUNCTION_MODE = """
from torch.overrides import TorchFunctionMode


class Yes(TorchFunctionMode):
    # entered and never left: every comparison anywhere in this kernel says yes
    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("allclose", "equal", "isclose", "eq", "__eq__", "all", "any"):
            return True
        return func(*args, **(kwargs or {}))


Yes().__enter__()
"""

DISPATCH_MODE = """
import torch
from torch.utils._python_dispatch import TorchDispatchMode


class Yes(TorchDispatchMode):
    # below autograd: every comparison kernel answers true
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.__name__.split(".")[0] in ("allclose", "equal", "eq", "isclose"):
            return torch.ones_like(out, dtype=torch.bool) if isinstance(out, torch.Tensor) else True
        return out


Yes().__enter__()
"""

LIBRARY_KERNEL = """
import torch

_lib = torch.library.Library("aten", "IMPL")
_lib.impl("allclose", lambda *a, **k: True, "CPU")       # C++ dispatcher state: no Python snapshot sees it
_lib.impl("isfinite", lambda t: torch.ones(t.shape, dtype=torch.bool), "CPU")
"""

PROBE_REPLACED = """
import json
import autograder.kernel.probe as probe

_real = probe.serve


def serve(text):
    # the real probe for everything but calls; a call "returns" zeros shaped like its first argument's
    # batch, and claims nothing was changed
    request = json.loads(text)
    if request.get("op") != "call":
        return _real(text)
    args = request.get("args", {}).get("$list", [])
    first = args[0]["$t"] if args and isinstance(args[0], dict) and "$t" in args[0] else None
    if first is None or len(args) < 3:
        return _real(text)
    out = dict(first, data=probe.wire.encode_tensor(torch.zeros(first["shape"], dtype=torch.float64))["$t"]["data"])
    pair = {"$tuple": [{"$t": dict(out, shape=args[1]["$t"]["shape"],
                                   data=probe.wire.encode_tensor(torch.zeros(args[1]["$t"]["shape"],
                                                                             dtype=torch.float64))["$t"]["data"])}] * 2}
    return json.dumps({"value": pair, "mutated": []})


probe.serve = serve
"""

PROBE_SILENCED = """
import sys
# the grader's comm target gone, any comm already open deaf, and the probe's module dropped
manager = get_ipython().kernel.comm_manager
manager.unregister_target("lstm-course.probe", None)
for comm in list(manager.comms.values()):
    comm.on_msg(lambda msg: None)
sys.modules.pop("autograder.kernel.probe", None)
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

# the same, with the names built from strings: no name to match, but getattr on torch._C is evasion to the scan
READY_MADE_BY_STRING = READY_MADE.replace(
    "torch._C._VariableFunctions.lstm_cell", 'getattr(getattr(torch._C, "_Variable" + "Functions"), "lstm" + "_cell")')

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
import os, stat
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
    return evasion.cases() + flood.cases() + disk_fill.cases() + [
        Case("patch_torch", submit_nb(lambda c: with_cell_after(reference(c, sigmoid=WRONG_SIGMOID), "sigmoid",
                                                                _code(PATCH_TORCH))),
             dict(FULL, sigmoid=0.0, lstm_cell=3.0), [], set(),
             about="replaces torch.allclose, isfinite, equal, sigmoid in the kernel to pass a wrong sigmoid"),
        Case("patch_builtins_and_testing", after(planted, "lstm_cell", PATCH_BUILTINS), evasion.WITHHELD, [],
             {"evasion-source"},
             about="replaces builtins.bool, abs, torch.testing, numpy.testing in the kernel"),
        Case("grader_modules_absent", after(planted, "lstm_cell", GRADER_MODULES), evasion.WITHHELD,
             ["No module named"], {"evasion-source"},
             about="imports the hidden tests and the grader to patch them: they are not in the kernel"),
        Case("rewrite_test_cells", after(release, "setup", REWRITE_CELLS), ZERO, [], set(),
             about="an input transformer turns every cell mentioning the grader into a fake pass, errors hidden"),
        Case("probe_silenced", after(planted, "setup", PROBE_SILENCED), ZERO, ["no answer from your kernel"],
             {"probe-silent"}, about="unregisters the probe's comm target: no test can reach the student's code"),
        Case("always_true_objects", after(lambda c: reference(c, sigmoid=WRONG_SIGMOID), "lstm_cell_check",
                                                   ALWAYS_TRUE),
             ZERO, [], {"evasion-source"},
             about="tensors whose comparisons always say yes, objects that claim to be tensors"),
        Case("read_secrets", submit_nb(_secrets), ZERO, [], set(),
             about="reads the hidden tests, source/, solutions/, the gradebook, other students, canaries"),
        Case("write_outside", submit_nb(_writes), ZERO, [], set(),
             about="writes the gradebook, another student's files, the course root, /tmp"),
        Case("network", submit_nb(_network(port)), ZERO, [], {"attempt"},
             about="connects to 127.0.0.1, 1.1.1.1, example.com"),
        Case("ready_made_lstm", after(reference, "lstm_cell", READY_MADE), dict(ZERO, sigmoid=2.0),
             ["ready-made LSTM appears in your code"], {"ready-made-source"},
             about="calls torch's own lstm_cell, taken before the test could block it"),
        Case("ready_made_hidden_name", after(reference, "lstm_cell", READY_MADE_BY_STRING),
             dict(FULL, lstm_cell=0.0, load_from_torch=0.0), ["calls torch's lstm_cell"],
             {"ready-made", "evasion-source"},
             about="the same, with the names built from strings: getattr on torch._C, evasion to the scan"),
        Case("frame_peek", after(reference, "lstm_cell", FRAME_PEEK), dict(FULL, lstm_cell=3.0), [], {"attempt"},
             about="looks for the expected answer in the stack frames above its forward"),
        Case("frame_walk", after(planted, "lstm_cell", FRAME_WALK), evasion.WITHHELD, [], {"attempt"},
             about="walks every frame and every object for a key, a seed or an expected value"),
        Case("function_mode", after(planted, "lstm_cell", FUNCTION_MODE), NO_TANH, [], {"modes-active"},
             about="a TorchFunctionMode, entered and never left, says yes to every comparison"),
        Case("dispatch_mode", after(planted, "lstm_cell", DISPATCH_MODE), NO_TANH, [], {"modes-active"},
             about="a TorchDispatchMode makes every comparison kernel answer true"),
        Case("library_kernel", after(planted, "lstm_cell", LIBRARY_KERNEL), NO_TANH, [], set(),
             about="torch.library replaces the CPU kernels of aten::allclose and isfinite"),
        Case("probe_replaced", after(planted, "lstm_cell", PROBE_REPLACED), evasion.WITHHELD, [], {"evasion-source"},
             about="replaces the kernel's probe: every call answers zeros and claims nothing changed"),
        Case("processes_and_signals", after(release, "setup", PROCESSES), ZERO, [], {"attempt"},
             about="kills every process it can, starts shells, forks, calls libc through ctypes"),
        Case("forge_results", after(release, "setup", FORGE), ZERO, [], {"garbled"},
             about="writes fake records to every pipe it has and blanks the test cells"),
    ]


CONTROLS = {"reference": FULL, "honest_planted_bug": NO_TANH}
