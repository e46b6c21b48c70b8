"""What the hidden tests of the one-step cells share.

``LSTMCell`` (notebook 1), ``CoupledLSTMCell`` (3), the peephole cells (4) and ``FusedLSTMCell`` (6) are graded
the same way: build the student's cell, check its parameters, run one step on the grading device in float64,
compare with a float64 reference on CPU, name the mistake when one fits, then compare gradients. A ``CellSpec``
holds what differs from cell to cell, the wording of its messages included: the bug zoo matches those, so each
notebook keeps its own.
"""

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from . import oracles
from .harness import GradingFailure, Remote, call, close, device, expect_close, expect_shape, max_abs_diff

F64 = torch.float64
CPU = torch.device("cpu")
SIZES = ((3, 5, 4), (2, 3, 7), (1, 1, 1))  # (batch, input_size, hidden_size) of the forward tests


# --------------------------------------------------------------------------- references


class TorchReference:
    """A float64 ``torch.nn.LSTMCell`` as the reference; ``split`` reads its gradients by parameter name."""

    def __init__(self, cell: nn.LSTMCell, split: Callable[[nn.LSTMCell], dict]):
        self.cell, self.split = cell, split

    def __call__(self, x, h, c):
        return self.cell(x, (h, c))

    def grads(self) -> dict[str, torch.Tensor]:
        return self.split(self.cell)


class StepReference:
    """A step function ``step(params, x, h, c)`` as the reference, its parameters leaves that collect gradients."""

    def __init__(self, step: Callable, params: dict[str, torch.Tensor]):
        self.step = step
        self.params = {name: t.clone().requires_grad_(True) for name, t in params.items()}

    def __call__(self, x, h, c):
        return self.step(self.params, x, h, c)

    def grads(self) -> dict[str, torch.Tensor]:
        return {name: t.grad for name, t in self.params.items()}


# --------------------------------------------------------------------------- what differs from cell to cell


class CellSpec:
    """What the shared tests need to know about one kind of cell: subclass it and override what differs.

    The tests use the subclass itself, never an instance: the grading kernel's guard snapshots the classes of
    the grader's modules, so student code cannot quietly swap what a spec says.
    """

    name: str  # the class as the student sees it, e.g. "CoupledLSTMCell"
    fill = 0.5  # the grader's weights are drawn from U(-fill, fill), so init bugs cost only the init test
    c_scale = 1.0  # the random c of a test case is scaled by this
    every_parameter = False  # the reference and the bug namer also see parameters beyond the contract's

    @staticmethod
    def make(input_size, hidden_size) -> nn.Module:
        """The student's cell."""
        raise NotImplementedError

    @staticmethod
    def shapes(input_size, hidden_size) -> dict[str, tuple[int, ...]]:
        """The contract's parameters and their shapes."""
        raise NotImplementedError

    @staticmethod
    def reference(params: dict[str, torch.Tensor]) -> TorchReference | StepReference:
        """The reference cell with these float64 CPU parameters."""
        raise NotImplementedError

    @staticmethod
    def name_bug(params, x, h, c, got_h, got_c) -> tuple[str, str] | None:
        """(bug id, sentence) of the mistake that explains the student's (h, c), or None."""
        return None

    @staticmethod
    def invoke(cell, *args, what, **options):
        """Runs the student's cell (``harness.call``); a spec may explain some errors better."""
        return call(cell, *args, what=what, **options)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The contract's parameter names (their shapes depend on the sizes, the names do not)."""
        return tuple(cls.shapes(1, 1))

    @classmethod
    def params64(cls, cell) -> dict[str, torch.Tensor]:
        """The grader's own weights in the student's cell (``graded_cell`` put them there), float64 on CPU."""
        names = cell.weights if cls.every_parameter else cls.names()
        return {name: cell.weights[name] for name in names}

    # How the messages are worded: the bug zoo matches them, so each notebook keeps its own.

    owner = ""  # prefixed to parameter names, e.g. "PeepholeLSTMCell."
    plain_tensor = "wrap it in nn.Parameter so that .parameters(), .to() and the optimizer see it."
    h_shape_hint = "h_next has the shape of h."
    c_shape_hint = "c_next has the shape of c."
    c_right = "matches the reference"  # "c_next {c_right} but h_next differs by up to ..."
    h_advice = "Check the output gate o_t and h_t = o_t * tanh(c_t)."
    differs_from = "the reference"  # "c_next differs from {differs_from} by up to ..."
    h_too = " (h_next too)"  # added to that when h_next is right
    c_advice = ""
    forward_first = ("the forward pass already differs from the reference (see the forward test), so the "
                     "gradients do too: fix forward first.")
    no_states_hint = "With h and c missing, use zeros created like the input: x.new_zeros(batch, hidden_size)."

    @staticmethod
    def wrong_dtype(got_h, got_c) -> str:
        """The message when a float64 x without h and c gives outputs of another dtype, or ''."""
        return f"for a float64 input h_next is {got_h.dtype}: create default states like x." if got_h.dtype != F64 \
            else ""

    @staticmethod
    def missing(names, params) -> str:
        """The message for contract parameters that are not registered at all."""
        raise NotImplementedError

    @staticmethod
    def beyond(extra) -> str:
        """The message for parameters beyond the contract's (``extra``, maybe none), or '' to let them be."""
        return ""

    @staticmethod
    def wrong_shape(name, got, want) -> str:
        """The end of "{name} has shape {got}, expected {want} for input_size=..., hidden_size=..."."""
        return "."

    @classmethod
    def shape_hints(cls, got_h, got_c, shape) -> tuple[str, str]:
        """Hints for an h_next and a c_next of the wrong shape."""
        return cls.h_shape_hint, cls.c_shape_hint

    @staticmethod
    def input_grad_hint(name) -> str:
        """A hint for a wrong gradient with respect to x, h or c."""
        return ""


# --------------------------------------------------------------------------- building and running the cell


def checked_params(spec: type[CellSpec], cell, input_size, hidden_size) -> dict:
    """The cell's parameters by name (``harness.Param``), after checking that the contract's are registered with
    the right shapes."""
    params = cell.params()
    shapes = spec.shapes(input_size, hidden_size)
    missing = [name for name in shapes if name not in params]
    if missing:
        plain = [name for name in missing if isinstance(cell.attr(name), torch.Tensor)]
        if plain:
            raise GradingFailure(
                f"{spec.owner}{plain[0]} is a plain tensor, not a registered parameter: {spec.plain_tensor}",
                bug="plain_tensor_parameter")
        raise GradingFailure(spec.missing(missing, params), bug="missing_parameters")
    too_many = spec.beyond(sorted(set(params) - set(shapes)))
    if too_many:
        raise GradingFailure(too_many)
    for name, want in shapes.items():
        got = tuple(params[name].value.shape)
        if got != want:
            raise GradingFailure(
                f"{spec.owner}{name} has shape {got}, expected {want} for input_size={input_size}, "
                f"hidden_size={hidden_size}{spec.wrong_shape(name, got, want)}", bug="parameter_shape")
    return params


def course_shapes(input_size, hidden_size, names=oracles.CELL_PARAMS) -> dict[str, tuple[int, ...]]:
    """The shapes of the course's parameters: W_* (H, H) multiplies h, U_* (H, I) multiplies x, b_* is (H,)."""
    columns = {"W": (hidden_size,), "U": (input_size,), "b": ()}
    return {name: (hidden_size, *columns[name[0]]) for name in names}


def expect_moves_with_double(cell, what="cell.double()"):
    """Every parameter is float64 after cell.double()."""
    cell.method("double", what=what)
    not_moved = [n for n, p in cell.params().items() if p.value.dtype != F64]
    if not_moved:
        raise GradingFailure(f".double() did not convert {not_moved[0]}: keep every weight an nn.Parameter.")


def fill_uniform(module, spread) -> dict[str, torch.Tensor]:
    """Draw every parameter of ``module`` (in the kernel) from U(-spread, spread) here, load them there; returns
    them (float64, CPU): the references compute with these, never with what the kernel reports back."""
    values = {name: torch.empty(p.value.shape, dtype=F64).uniform_(-spread, spread)
              for name, p in module.params().items()}
    module.load(values)
    return values


def to_device(module, what):
    """``module.to(device, float64)`` in the kernel."""
    call(module.attr("to"), device(), F64, what=what)


def graded_cell(spec: type[CellSpec], input_size, hidden_size):
    """The student's cell, checked, in float64 on the device, holding the grader's weights (``cell.weights``)."""
    cell = spec.make(input_size, hidden_size)
    checked_params(spec, cell, input_size, hidden_size)
    to_device(cell, f"{spec.name}({input_size}, {hidden_size}).to(device, torch.float64)")
    cell.weights = fill_uniform(cell, spec.fill)
    return cell


def random_case(batch, input_size, hidden_size, batched=True, c_scale=1.0):
    """Random x, h, c in float64: (batch, size) each, or (size,) unbatched."""
    shape = (batch,) if batched else ()
    x = torch.randn(*shape, input_size, dtype=F64)
    h = torch.randn(*shape, hidden_size, dtype=F64)
    c = torch.randn(*shape, hidden_size, dtype=F64) * c_scale
    return x, h, c


def run_cell(cell, x, h=None, c=None, *, what, invoke=call,
             not_a_pair="{what} should return a tuple (h_next, c_next), got {got}."):
    """One call of the cell on the device, with h and c or without both; the caller's tensors must stay as they were."""
    report = {}
    out = invoke(cell, *((x,) if h is None else (x, h, c)), what=what, report=report)
    for k in report["mutated"]:
        raise GradingFailure(f"{what} changed the caller's {'xhc'[k]} in place: compute new tensors instead.",
                             bug="in_place_update")
    if not isinstance(out, tuple) or len(out) != 2:
        raise GradingFailure(not_a_pair.format(what=what, got=getattr(out, "type_name", type(out).__name__)))
    return out


# --------------------------------------------------------------------------- the shared test bodies


def expect_step(spec: type[CellSpec], cell, x, h, c, label):
    """One step of the student's cell matches the reference; if not, say which mistake it matches."""
    params = spec.params64(cell)
    want_h, want_c = spec.reference(params)(x, h, c)
    got_h, got_c = run_cell(cell, x, h, c, what=f"{spec.name}.forward", invoke=spec.invoke)
    shape = tuple(want_h.shape)
    h_hint, c_hint = spec.shape_hints(got_h, got_c, shape)
    expect_shape(got_h, shape, f"h_next ({label})", h_hint)
    expect_shape(got_c, shape, f"c_next ({label})", c_hint)
    h_ok, c_ok = close(got_h, want_h), close(got_c, want_c)
    if h_ok and c_ok:
        return
    named = spec.name_bug(params, x, h, c, got_h, got_c)
    if named:
        bug, sentence = named
        raise GradingFailure(f"{spec.name}.forward ({label}): {sentence}", bug=bug)
    if c_ok:
        raise GradingFailure(
            f"{spec.name}.forward ({label}): c_next {spec.c_right} but h_next differs by up to "
            f"{max_abs_diff(got_h, want_h):.3g}. {spec.h_advice}"
        )
    raise GradingFailure(
        f"{spec.name}.forward ({label}): c_next differs from {spec.differs_from} by up to "
        f"{max_abs_diff(got_c, want_c):.3g}" + (spec.h_too if h_ok else "") + f". {spec.c_advice}"
    )


def forward_test(spec: type[CellSpec]):
    """Random h and c, batches of several sizes."""
    for batch, inp, hid in SIZES:
        cell = graded_cell(spec, inp, hid)
        x, h, c = random_case(batch, inp, hid, c_scale=spec.c_scale)
        expect_step(spec, cell, x, h, c, f"batch={batch}, input_size={inp}, hidden_size={hid}, random h and c")


def without_states(spec: type[CellSpec], cell, x, hidden_size, what):
    """The cell called with x alone, and the reference's answer for zero states: (got_h, got_c, want_h, want_c)."""
    zeros = torch.zeros(*x.shape[:-1], hidden_size, dtype=F64)
    got_h, got_c = run_cell(cell, x, what=what, invoke=spec.invoke)
    want_h, want_c = spec.reference(spec.params64(cell))(x, zeros, zeros)
    return got_h, got_c, want_h, want_c


def forms_test(spec: type[CellSpec]):
    """An unbatched step, then a batch of x alone (missing states are zeros like x, in x's dtype); returns the cell."""
    cell = graded_cell(spec, 5, 4)
    x, h, c = random_case(1, 5, 4, batched=False)
    expect_step(spec, cell, x, h, c, "unbatched: x of shape (input_size,)")
    got_h, got_c, want_h, want_c = without_states(spec, cell, torch.randn(3, 5, dtype=F64), 4,
                                                  f"{spec.name}.forward(x) without h and c")
    expect_close(got_h, want_h, "h_next with h and c missing", spec.no_states_hint, bug="default_states")
    expect_close(got_c, want_c, "c_next with h and c missing", spec.no_states_hint, bug="default_states")
    message = spec.wrong_dtype(got_h, got_c)
    if message:
        raise GradingFailure(message, bug="default_state_dtype")
    return cell


def gradients_test(spec: type[CellSpec]):
    """Gradients of the contract's parameters and of x, h and c match the reference's."""
    batch, inp, hid = 3, 5, 4
    cell = graded_cell(spec, inp, hid)
    x, h, c = random_case(batch, inp, hid, c_scale=spec.c_scale)
    ref = spec.reference(spec.params64(cell))
    w_h, w_c = torch.randn(batch, hid, dtype=F64), torch.randn(batch, hid, dtype=F64)

    inputs = [t.clone().requires_grad_(True) for t in (x, h, c)]
    want_h, want_c = ref(*inputs)
    ((want_h * w_h).sum() + (want_c * w_c).sum()).backward()
    want_param = ref.grads()

    got = spec.invoke(cell, x, h, c, what=f"{spec.name}.forward")
    if not (isinstance(got, tuple) and len(got) == 2 and close(got[0], want_h) and close(got[1], want_c)):
        raise GradingFailure(spec.forward_first)  # a consequence, not a mistake of its own: the check's own id
    mine = [t.detach().clone().requires_grad_(True) for t in (x, h, c)]
    cell.method("zero_grad", set_to_none=True, what=f"{spec.name}.zero_grad()")
    _, grads = spec.invoke(cell, *mine, what=f"{spec.name}.forward", backward=[w_h, w_c],
                           backward_what=f"backward through {spec.name}")
    params = cell.params()
    for name in spec.names():
        if params[name].grad is None:
            raise GradingFailure(
                f"{name} got no gradient: it is not used in forward, or used through .detach()/.data.",
                bug="no_gradient")
        expect_close(params[name].grad, want_param[name], f"the gradient of {name}",
                     "The forward values match, so look for .detach(), .data or in-place updates.")
    for name, got, want in zip("xhc", grads, inputs, strict=True):
        if got is None:
            raise GradingFailure(f"no gradient reaches {name}: is it detached inside forward?", bug="no_gradient")
        expect_close(got, want.grad, f"the gradient with respect to {name}", spec.input_grad_hint(name))


# --------------------------------------------------------------------------- initialisation


def spread_failure(when, name, values, k, *, too_wide, not_spread="", nan=None) -> GradingFailure | None:
    """Why ``values`` (a parameter's, float64) are not drawn from U(-k, k), or None if they look it."""
    hi = values.abs().max().item()
    if nan is not None and not math.isfinite(hi):
        return GradingFailure(f"{when}, {name} contains NaN or inf: {nan}", bug="init_uninitialised")
    if not math.isfinite(hi) or hi > k * (1 + 1e-6):
        return GradingFailure(f"{when}, {name} has values up to {hi:.3g} but k = 1/sqrt(hidden_size) = {k:.4g}: "
                              f"{too_wide}", bug="init_too_wide")
    if hi < 0.8 * k or values.std().item() < 0.4 * k:
        return GradingFailure(f"{when}, {name} is not spread over U(-k, k) with k = {k:.4g} (max |value| "
                              f"{hi:.3g}, std {values.std().item():.3g}; expected std ≈ {k / math.sqrt(3):.3g})."
                              f"{not_spread}", bug="init_not_spread")
    return None


def expect_uniform_init(cell, hidden_size, failure, reset_what="reset_parameters()", reset_optional=False):
    """Every parameter looks drawn from U(-k, k), k = 1/sqrt(hidden_size), after __init__ and after
    reset_parameters() (called on weights set to 5 first). ``failure(when, name, values, k)`` is the verdict (a
    GradingFailure, or None)."""
    k = 1 / math.sqrt(hidden_size)

    def check(when):
        for name, p in cell.params().items():
            verdict = failure(when, name, p.value.double(), k)
            if verdict is not None:
                raise verdict

    try:
        check("after __init__")
    except GradingFailure as verdict:
        _blame_init_if_reset_works(cell, check, reset_what, verdict)
        raise
    if reset_optional and not has_method(cell, "reset_parameters"):
        return
    cell.load({name: torch.full(p.value.shape, 5.0) for name, p in cell.params().items()})
    cell.method("reset_parameters", what=reset_what)
    check("after reset_parameters()")


def has_method(obj, name) -> bool:
    fn = obj.attr(name)
    return isinstance(fn, Remote) and fn.callable


def _blame_init_if_reset_works(cell, check, reset_what, verdict):
    """Raises a sharper message when reset_parameters() alone gets the weights right: __init__ skips it."""
    if not has_method(cell, "reset_parameters"):
        return
    try:
        cell.method("reset_parameters", what=reset_what)
        check("after reset_parameters()")
    except GradingFailure:
        return
    seen = str(verdict).split(":")[0].split(" Does __init__")[0].rstrip(".")  # what was wrong, not why
    raise GradingFailure(f"{seen}. Calling {reset_what} by hand draws them right, so __init__ does not call it: "
                         "end __init__ with self.reset_parameters().", bug="init_not_called") from None
