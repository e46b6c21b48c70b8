"""The grader's scan of the submitted source (``autograder.checks.scan``): an answer borrowed from a library
(notebook 7: accuracy and the confusion matrix written with torch, not taken from sklearn.metrics; the graded
path is in the notebook-7 zoo, ``real_data.sklearn_metrics``), then ready-made LSTMs, evasion and notebook 1's
forbidden sigmoid, on notebook 1's reference answers: each spelling, and the untouched controls (what a student
may write, every correct style) that must not fire. The graded path of the last three is in the hostile corpus
(``tests/corpus/evasion.py``)."""

import copy

import nbformat
import pytest
import torch

from autograder import zoo
from autograder.cells import exercises
from autograder.checks import scan
from autograder.checks.scan import borrowed
from autograder.host import class_report, report
from autograder.host.course import ROOT
from autograder.host.execute import _student_cell
from autograder.host.submissions import fill, read, reference_answers
from autograder.kernel import blockers

OWN = '''def accuracy(predicted, labels):
    return (predicted == labels).double().mean().item()


def confusion_matrix(predicted, labels, num_classes):
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)
'''


@pytest.mark.parametrize("solution, elsewhere, line", [
    ("def accuracy(p, l):\n    return sklearn.metrics.accuracy_score(l, p)\n", [], 2),
    ("from sklearn.metrics import accuracy_score\ndef accuracy(p, l):\n    return accuracy_score(l, p)\n", [], 1),
    ("from sklearn import metrics as m\ndef accuracy(p, l):\n    return m.accuracy_score(l, p)\n", [], 1),
    ("def accuracy(p, l):\n    return float(score(l, p))\n",
     ["from sklearn.metrics import (\n    confusion_matrix,\n    accuracy_score as score,\n)"], 2),
    ("def accuracy(p, l):\n    return float(score(l, p))\n",
     ["from sklearn.metrics import accuracy_score as score"], 2),
    ("def accuracy(p, l):\n    import sklearn.metrics\n    return sklearn.metrics.accuracy_score(l, p)\n", [], 2),
])
def test_each_spelling_of_sklearn_in_the_answer_cell_is_found(solution, elsewhere, line):
    assert borrowed(solution, elsewhere, "sklearn")[0][0] == line


@pytest.mark.parametrize("elsewhere", [
    [],
    # checking against scikit-learn in a scratch cell is fine, even under the answer's own name
    ["from sklearn.metrics import confusion_matrix, accuracy_score\nprint(accuracy_score([1], [1]))"],
    ["# sklearn.metrics.accuracy_score would do this\nx = 'sklearn'"],
])
def test_the_students_own_answer_is_not_flagged(elsewhere):
    assert borrowed(OWN + "# not sklearn.metrics: 'sklearn'\n", elsewhere, "sklearn") == []


# --------------------------------------------------------------------------- ready-made LSTMs, evasion, forbidden


A = "01_lstm_cell"
SIGMOID, LSTM_CELL, LOAD = "sigmoid", "lstm_cell", "load_from_torch"


@pytest.fixture(scope="module")
def notebook():
    """Notebook 1's release with the reference answers: every case below adds or changes cells of a copy."""
    source, release = read(ROOT / "source" / A / f"{A}.ipynb"), read(ROOT / "notebooks" / A / f"{A}.ipynb")
    return fill(release, reference_answers(source))


def _with(nb, after=None, code="", answers=None):
    """A copy with ``code`` in a new cell of the student's after the cell ``after``, answers replaced."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in (answers or {}):
            cell.source = answers[grade_id]
    if after is not None:
        at = next(k for k, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after)
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code))
    return nb


def _exercises_withheld(nb) -> dict[str, str]:
    """exercise -> kind of the finding that withholds it."""
    owner = exercises(nb)
    return {owner[g]: f.kind for g, f in scan.withheld(nb.cells, _student_cell).items()}


def _kinds(nb) -> list[str]:
    return [f.kind for f in scan.findings(nb.cells, _student_cell)]


EVASION_SPELLINGS = [
    'c = getattr(torch, "_" + "C")',  # getattr, a built name, on a module
    "with torch._C.DisableTorchFunction():\n    pass",
    "from torch._C import DisableTorchFunction",
    "f = torch._C._VariableFunctions.tanh",
    "f = torch._VF.tanh",
    "f = torch.ops.aten.tanh",
    "from torch import ops",
    'import sys\nm = sys.modules["torch"]',
    "import sys\nsys.path.insert(0, '.')",
    "f = torch.sys.modules",
    'import importlib\nm = importlib.import_module("torch")',
    'm = __import__("torch")',
    'exec("x = 1")',
    'x = eval("1")',
    'code = compile("x = 1", "f", "exec")',
    "import builtins",
    "import autograder.kernel.blockers as b",
    "import gc",
    "import pickle",
    "import ctypes",
    "import code",
    'x = vars(torch)["tan" + "h"]',
    'x = torch.__dict__["tan" + "h"]',
    "g = getattr",
    "from operator import attrgetter",
    'f = object.__getattribute__(torch, "tanh")',
    "ip = get_ipython()",
    'get_ipython().run_cell("x = 1")',
    'code = "x = 1"\nget_ipython().run_line_magic("time", code)',
    "%run helper.py",
    "%rerun",
    "%code_wrap wrapper",
    "%autocall 2",
    "%config InteractiveShell.autocall = 2",
    '%config InteractiveShell.banner1 = __import__("os").name',
    "%my_own_magic x",
    # a module laundered into a name, then looked up by a built name
    'm = torch.nn\nx = getattr(m, "L" + "STM")',
    'def fetch(module, name):\n    return getattr(module, name)\n\n\nx = fetch(torch, "tan" + "h")',
    'def fetch(name, module=torch):\n    return getattr(module, name)',
    'def torch_module():\n    return torch\n\n\nx = getattr(torch_module(), "tan" + "h")',
    'for m in (torch, nn):\n    x = getattr(m, "tan" + "h")',
    # the same through magics that run Python
    "%time x = torch._C",
    "%timeit -n 3 -r 2 x = torch._C",
    "%prun -s cumulative x = torch._C",
    "%debug x = torch._C",
    "%%time\ny = 1\nx = torch._C",
    "%%timeit x = torch._C\ny = 1",
    "%%capture out\nx = torch._C",
    "%%time\n%time x = torch._C",
    "x = %time torch._C",
    "time x = torch._C",  # an automagic: one line, no %
    "def f(:\n    torch._C",  # no Python at all: the names still count
]


@pytest.mark.parametrize("code", EVASION_SPELLINGS)
def test_each_spelling_of_evasion_withholds_the_exercises_after_it(notebook, code):
    nb = _with(notebook, after=LSTM_CELL, code=code)
    assert _kinds(nb) and set(_kinds(nb)) == {"evasion"}, _kinds(nb)
    assert _exercises_withheld(nb) == {LSTM_CELL: "evasion", LOAD: "evasion"}


READY_MADE_SPELLINGS = [
    "m = nn.LSTM(3, 4)",
    "m = torch.nn.LSTMCell(3, 4)",
    "from torch.nn import LSTMCell as L",
    "y = torch.lstm_cell",
    "y = torch._VF.lstm_cell",
    "y = torch.ops.aten.lstm_cell",
    'y = getattr(torch, "lstm_cell")',
    "%time y = torch._VF.lstm_cell",
]


@pytest.mark.parametrize("code", READY_MADE_SPELLINGS)
def test_each_spelling_of_a_ready_made_lstm_is_found(notebook, code):
    nb = _with(notebook, after=LSTM_CELL, code=code)
    assert _kinds(nb)[0] == "ready-made"
    assert _exercises_withheld(nb) == {LSTM_CELL: "ready-made", LOAD: "ready-made"}


SIGMOID_SPELLINGS = ["torch.sigmoid(x)", "x.sigmoid()", "x.clone().sigmoid_()", "torch.sigmoid_(x.clone())",
                     "torch.special.expit(x)", "torch.nn.functional.sigmoid(x)", "nn.Sigmoid()(x)",
                     "torch.nn.functional.logsigmoid(x).exp()", "nn.LogSigmoid()(x).exp()"]


@pytest.mark.parametrize("body", SIGMOID_SPELLINGS)
def test_each_spelling_of_torchs_sigmoid_in_the_answer_withholds_the_sigmoid_only(notebook, body):
    nb = _with(notebook, answers={SIGMOID: f"def sigmoid(x):\n    return {body}\n"})
    (finding,) = scan.findings(nb.cells, _student_cell)
    assert finding.kind == "forbidden" and finding.line == 2 and finding.bug == "forbidden_sigmoid"
    assert _exercises_withheld(nb) == {SIGMOID: "forbidden"}
    assert "sigmoid must be written from torch.exp" in finding.message()


@pytest.mark.parametrize("body", ["torch.ops.aten.sigmoid(x)", "torch.ops.aten.sigmoid.default(x)",
                                  "torch._C._VariableFunctions.sigmoid(x)"])
def test_torchs_sigmoid_through_its_c_layer_is_evasion(notebook, body):
    nb = _with(notebook, answers={SIGMOID: f"def sigmoid(x):\n    return {body}\n"})
    assert _exercises_withheld(nb) == {SIGMOID: "evasion", LSTM_CELL: "evasion", LOAD: "evasion"}


@pytest.mark.parametrize("code", ["from torch import sigmoid", "sigmoid = torch.sigmoid",
                                  "def sigmoid(x):\n    return x.sigmoid()", "sigmoid = lambda x: x.sigmoid_()"])
def test_a_cell_of_the_students_may_not_rebind_sigmoid_to_torchs_before_its_tests(notebook, code):
    assert _exercises_withheld(_with(notebook, after=SIGMOID, code=code)) == {SIGMOID: "forbidden"}
    assert _exercises_withheld(_with(notebook, after="sigmoid_stable", code=code)) == {}  # its tests are done


CONTROLS = [
    'W = getattr(self, f"W_{g}")',  # the student's own objects, by a built name
    'w_ih = getattr(torch_lstm, f"weight_ih_l{k}")',
    'setattr(self, "U_" + g, nn.Parameter(torch.empty(3, 4)))',
    "model.eval()",
    "f = torch.compile(lambda x: x)",
    "import re\npattern = re.compile('a')",
    "self.lstm = 3",
    "for m in self.modules():\n    pass",
    "import os\np = os.path.join('a', 'b')",
    "x = torch.zeros(3, dtype=torch.float64)\ny = getattr(x, 'sh' + 'ape')",
    "def load(cell, torch_cell: nn.LSTMCell) -> None:\n    assert isinstance(torch_cell, nn.LSTMCell)",
    "s = 'torch._C._VariableFunctions.lstm_cell'  # torch._VF, exec, nn.LSTM",
    "x = torch.randn(3)\nprint((sigmoid(x) - torch.sigmoid(x)).abs().max())",  # comparing with torch's
    "!ls -l\nfiles = !ls\nprint(1)\n%%bash\n",  # a cell magic under the first line stops with an error
    "%%bash\nls torch._C",
    "%matplotlib inline",
    "%load_ext autoreload\n%autoreload 2",
    "%time y = sigmoid(torch.randn(3))",
    "%%timeit\nsigmoid(torch.randn(3))",
    "torch?",
    "code = 3\nprint(code)",
]


@pytest.mark.parametrize("code", CONTROLS)
def test_what_a_student_may_write_is_no_finding(notebook, code):
    assert scan.findings(_with(notebook, after=SIGMOID, code=code).cells, _student_cell) == []


def _filled(assignment, answers):
    source = read(ROOT / "source" / assignment / f"{assignment}.ipynb")
    release = read(ROOT / "notebooks" / assignment / f"{assignment}.ipynb")
    return fill(release, {**reference_answers(source), **answers})


@pytest.mark.parametrize("assignment", sorted(p.name for p in (ROOT / "source").iterdir()))
def test_the_reference_and_every_correct_style_have_no_finding(assignment):
    for name, answers in {"reference": {}, **zoo.styles(assignment)}.items():
        assert scan.findings(_filled(assignment, answers).cells, _student_cell) == [], (assignment, name)


def test_a_finding_costs_its_exercise_and_those_graded_after_its_cell(notebook):
    code = "y = torch._C"
    assert _exercises_withheld(_with(notebook, after="sigmoid_stable", code=code)) == {LSTM_CELL: "evasion",
                                                                                       LOAD: "evasion"}
    assert _exercises_withheld(_with(notebook, after="cell_forward", code=code)) == {LSTM_CELL: "evasion",
                                                                                     LOAD: "evasion"}
    assert _exercises_withheld(_with(notebook, after="load_from_torch_stripes", code=code)) == {}
    answer = "def load_from_torch(cell, torch_cell):\n    torch._C\n    return cell\n"
    assert _exercises_withheld(_with(notebook, answers={LOAD: answer})) == {LOAD: "evasion"}
    assert _exercises_withheld(_with(notebook, answers={SIGMOID: "torch._C\n" + STABLE})) == {
        SIGMOID: "evasion", LSTM_CELL: "evasion", LOAD: "evasion"}


STABLE = "def sigmoid(x):\n    z = torch.exp(-x.abs())\n    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))\n"


def test_the_finding_names_the_cell_and_the_line_of_the_code_the_student_wrote(notebook):
    nb = _with(notebook, after=LSTM_CELL, code="%%time\na = 1\nb = torch._VF.tanh\n")
    (finding,) = scan.findings(nb.cells, _student_cell)
    at = next(k for k, c in enumerate(nb.cells) if c.source.startswith("%%time"))
    assert (finding.cell, finding.line, finding.code) == (at, 3, "b = torch._VF.tanh")
    assert f"cell {at + 1}, line 3: `b = torch._VF.tanh`" in finding.message()
    assert finding.source_record()["kind"] == "evasion-source" and finding.bug == "evasion"
    passed = [{"output_type": "stream", "text": "ok"}]
    failed = [{"output_type": "error", "ename": "GradingFailure", "evalue": "h_next differs"}]
    assert finding.message(passed).endswith("On its own, the hidden test passed.")
    assert finding.message(failed).endswith("the hidden test said: GradingFailure: h_next differs")


def test_the_grading_cells_only_are_judged_not_the_students_own():
    release = _filled(A, {})
    ids = {g for g in scan.withheld(_with(release, after="setup", code="y = torch._C").cells, _student_cell)}
    assert ids == {c.metadata["nbgrader"]["grade_id"] for c in release.cells
                   if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}


# --------------------------------------------------------------------------- the kernel's side, and the review


@pytest.mark.parametrize("spelling", [
    lambda x: torch.sigmoid(x), lambda x: x.clone().sigmoid_(), lambda x: torch.ops.aten.sigmoid.default(x),
    lambda x: torch._C._VariableFunctions.sigmoid(x), lambda x: torch.special.expit(x),
    lambda x: torch.nn.Sigmoid()(x), lambda x: torch.nn.functional.logsigmoid(x).exp(),
])
def test_the_kernels_block_stops_every_spelling_and_is_gone_after(spelling):
    x = torch.randn(4)
    with pytest.raises(blockers.Forbidden), blockers.forbidden(["sigmoid"]):
        spelling(x)
    assert torch.allclose(spelling(x), torch.sigmoid(x))


def test_a_correct_sigmoid_runs_under_the_kernels_block_with_its_gradient():
    x = torch.tensor([-1e4, -1.0, 0.0, 2.0, 1e4], requires_grad=True)
    with blockers.forbidden(["sigmoid"]):
        y = torch.exp(-torch.logaddexp(torch.zeros_like(x), -x))
        y.sum().backward()
    assert torch.allclose(x.grad, torch.sigmoid(x) * (1 - torch.sigmoid(x)))


def test_the_review_lists_the_last_runs_withheld_cells_and_ignores_the_kernels_claims():
    old = {"kind": "withheld", "cell": "cell_init", "finding": "cell 3, line 1: `x`", "what": "w", "rule": "evasion",
           "passed": True}
    mine = [report.Score("s", A, LSTM_CELL, g, 0.0, m) for g, m in (("cell_forward", 3.0), ("cell_init", 1.0))]
    records = [old, {"kind": "grading"}, dict(old, cell="cell_forward", passed=False), dict(old, passed=True),
               dict(old, cell="cell_gradients", **{"from": "kernel"})]
    (item,) = class_report._for_review(A, "s", records, mine)
    assert item.cells == [("cell_forward", False), ("cell_init", True)]
    assert (item.score, item.max_score, item.rule, item.finding) == (0.0, 4.0, "evasion", "cell 3, line 1: `x`")
    page = class_report._review_section([item])
    assert "cell_init (passed on its own)" in page and "Manual Grading" in page
