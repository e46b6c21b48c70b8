"""Third-round hostile submissions: evasion. Each case is graded with the others in tests/test_hostile.py.

Each attack sits on a wrong answer (the planted bug ``h = o * c``, or ``WRONG_SIGMOID``) and must score at most
what that wrong answer earns honestly. Most would earn more if the grader trusted the kernel's blocks: a
ready-made LSTM reached around them passes the cell's tests. The grader's scan of the source withholds the
points of the exercise where such code is and of every exercise graded after it (``autograder.checks.scan``).
"""

from . import NO_TANH, WRONG_SIGMOID, ZERO, Case, after, planted, submit_nb

# The planted bug's cell, then a cell of the student's after the lstm_cell answer: lstm_cell and
# load_from_torch are graded after it, sigmoid keeps what the planted submission earns.
WITHHELD = dict(NO_TANH, lstm_cell=0.0, load_from_torch=0.0)
SAYS = "no points to the exercise where such code is"
READY_SAYS = "ready-made LSTM appears in your code"

# (a) torch's C function for the LSTM cell, reached with getattr and built strings, with torch-function modes
# (the kernel's watch) switched off
DISABLED_MODES = '''
import torch


def forward(self, x, h=None, c=None):
    if h is None:
        h = x.new_zeros(*x.shape[:-1], self.hidden_size)
        c = x.new_zeros(*x.shape[:-1], self.hidden_size)
    w_ih = torch.cat([self.U_i, self.U_f, self.U_c, self.U_o])
    w_hh = torch.cat([self.W_i, self.W_f, self.W_c, self.W_o])
    b = torch.cat([self.b_i, self.b_f, self.b_c, self.b_o])
    c_layer = getattr(torch, "_" + "C")
    raw = getattr(c_layer, "_Variable" + "Functions")
    with getattr(c_layer, "Disable" + "TorchFunction")():
        return getattr(raw, "lstm" + "_cell")(x, (h, c), w_ih, w_hh, b, torch.zeros_like(b))


LSTMCell.forward = forward
'''

# (b) a magic: the line starts with %, IPython runs the statement after %time
MAGIC_TIME = '''
%time _LC = torch._VF.lstm_cell


def forward(self, x, h=None, c=None):
    if h is None:
        h = x.new_zeros(*x.shape[:-1], self.hidden_size)
        c = x.new_zeros(*x.shape[:-1], self.hidden_size)
    w_ih = torch.cat([self.U_i, self.U_f, self.U_c, self.U_o])
    w_hh = torch.cat([self.W_i, self.W_f, self.W_c, self.W_o])
    b = torch.cat([self.b_i, self.b_f, self.b_c, self.b_o])
    return _LC(x, (h, c), w_ih, w_hh, b, torch.zeros_like(b))


LSTMCell.forward = forward
'''

# (c) the kernel's own blocks replaced by do-nothing versions, then torch's LSTMCell
BLOCKERS_REPLACED = '''
import contextlib
import autograder.kernel.blockers as blockers


class Cell(LSTMCell):
    @contextlib.contextmanager
    def _nothing(*args, **kwargs):
        yield []

    blockers.no_ready_made = _nothing
    blockers._Watch.__torch_function__ = lambda self, func, types, args=(), kwargs=None: func(*args, **(kwargs or {}))

    def forward(self, x, h=None, c=None):
        if h is None:
            h = x.new_zeros(*x.shape[:-1], self.hidden_size)
            c = x.new_zeros(*x.shape[:-1], self.hidden_size)
        ready = nn.LSTMCell(self.input_size, self.hidden_size).to(x.device, x.dtype)
        with torch.no_grad():
            ready.weight_ih.copy_(torch.cat([self.U_i, self.U_f, self.U_c, self.U_o]))
            ready.weight_hh.copy_(torch.cat([self.W_i, self.W_f, self.W_c, self.W_o]))
            ready.bias_ih.copy_(torch.cat([self.b_i, self.b_f, self.b_c, self.b_o]))
            ready.bias_hh.zero_()
        return ready(x, (h, c))


LSTMCell = Cell
'''

# the forbidden sigmoid, in place on a copy: not one of the names the kernel replaced
SIGMOID_IN_PLACE = "def sigmoid(x):\n    return x.clone().sigmoid_()\n"
SIGMOID_BY_OPS = "def sigmoid(x):\n    return torch.ops.aten.sigmoid.default(x)\n"
SIGMOID_RAW = "def sigmoid(x):\n    return torch._C._VariableFunctions.sigmoid(x)\n"
SIGMOID_EXPIT = "def sigmoid(x):\n    return torch.special.expit(x)\n"
SIGMOID_LOG = "import torch.nn.functional as F\n\n\ndef sigmoid(x):\n    return F.logsigmoid(x).exp()\n"
# a cell of the student's, after the answer, that rebinds sigmoid to torch's
SIGMOID_REBOUND = "from torch import sigmoid\n"

# one spelling of each kind of evasion the attacks above do not use, each on the planted bug: every one
# fetches torch's lstm_cell through it and patches it into the cell
_PATCH = '''

def forward(self, x, h=None, c=None):
    if h is None:
        h = x.new_zeros(*x.shape[:-1], self.hidden_size)
        c = x.new_zeros(*x.shape[:-1], self.hidden_size)
    w_ih = torch.cat([self.U_i, self.U_f, self.U_c, self.U_o])
    w_hh = torch.cat([self.W_i, self.W_f, self.W_c, self.W_o])
    b = torch.cat([self.b_i, self.b_f, self.b_c, self.b_o])
    return _LC(x, (h, c), w_ih, w_hh, b, torch.zeros_like(b))


LSTMCell.forward = forward
'''
SPELLINGS = {
    "ops_namespace": "_LC = torch.ops.aten.lstm_cell",
    "sys_modules": 'import sys\n_LC = sys.modules["torch"].lstm_cell',
    "importlib": 'import importlib\n_LC = importlib.import_module("tor" + "ch").lstm_cell',
    "dunder_import": '_LC = __import__("tor" + "ch").lstm_cell',
    "exec_string": 'exec("_LC = torch." + "lstm" + "_cell")',
    "eval_string": '_LC = eval("torch." + "lstm" + "_cell")',
    "compile_string": 'exec(compile("_LC = torch." + "lstm" + "_cell", "x", "exec"))',
    "getattr_laundered": ('def _fetch(module, name):\n    return getattr(module, name)\n\n\n'
                          '_LC = _fetch(torch, "lstm" + "_cell")'),
    "vars_of_module": '_LC = vars(torch)["lstm" + "_cell"]',
    "run_line_magic": 'get_ipython().run_line_magic("time", "_LC = torch." + "lstm" + "_cell")',
    "cell_magic_capture": '%%capture\n_LC = torch._VF.lstm_cell',
}


def _spelling(name: str, code: str) -> Case:
    return Case(f"evasion_{name}", after(planted, "lstm_cell", code + _PATCH), WITHHELD, [], {"withheld"},
                about=f"reaches torch's lstm_cell through {name.replace('_', ' ')}")


def cases() -> list:
    return [
        Case("evasion_disabled_modes", after(planted, "lstm_cell", DISABLED_MODES), WITHHELD, [SAYS],
             {"evasion-source", "withheld"},
             about="(a) torch._C's lstm_cell by getattr and built strings, inside DisableTorchFunction"),
        Case("evasion_magic_time", after(planted, "lstm_cell", MAGIC_TIME), WITHHELD, [READY_SAYS],
             {"ready-made-source", "withheld"},
             about="(b) %time _LC = torch._VF.lstm_cell: IPython runs the statement after the magic"),
        Case("evasion_blockers_replaced", after(planted, "lstm_cell", BLOCKERS_REPLACED), WITHHELD,
             [SAYS], {"evasion-source", "ready-made-source", "withheld"},
             about="(c) replaces the kernel's blockers with do-nothing versions, then runs nn.LSTMCell"),
        Case("sigmoid_in_place", submit_nb(lambda c: planted(c, sigmoid=SIGMOID_IN_PLACE)),
             dict(NO_TANH, sigmoid=0.0), ["sigmoid must be written from torch.exp"], {"forbidden-source"},
             about="x.clone().sigmoid_(): PyTorch's sigmoid in place, on a copy"),
        *[Case(f"sigmoid_{name}", submit_nb(lambda c, s=source: planted(c, sigmoid=s)),
               dict(NO_TANH, sigmoid=0.0), [], {"forbidden-source", "withheld"},
               about=f"PyTorch's sigmoid as {name.replace('_', ' ')}")
          for name, source in [("expit", SIGMOID_EXPIT), ("logsigmoid_exp", SIGMOID_LOG)]],
        # reached through torch.ops or torch._C: evasion, which costs the exercises graded after the cell too
        *[Case(f"sigmoid_{name}", submit_nb(lambda c, s=source: planted(c, sigmoid=s)), ZERO, [SAYS],
               {"evasion-source", "withheld"}, about=f"PyTorch's sigmoid as {name.replace('_', ' ')}")
          for name, source in [("by_ops", SIGMOID_BY_OPS), ("raw_operator", SIGMOID_RAW)]],
        Case("sigmoid_rebound_in_scratch", after(lambda c: planted(c, sigmoid=WRONG_SIGMOID), "sigmoid",
                                                 SIGMOID_REBOUND),
             dict(NO_TANH, sigmoid=0.0), [], {"forbidden-source"},
             about="a cell after the (wrong) sigmoid answer rebinds sigmoid to torch's"),
        *[_spelling(name, code) for name, code in SPELLINGS.items()],
    ]
