"""The LSTM step, and the usual mistakes as small variations of it.

``Step`` is the step written out, split into the pieces a student can get wrong; ``oracles.lstm_cell_step``
is ``Step`` with no mistake. Each mistake is a subclass that overrides one piece (``MISTAKES``), or a family
of them with one parameter (``FAMILIES``). ``name_bug`` runs the suspects one by one on the student's
inputs: if the student's output matches one to float64 precision, its sentence names the mistake and its
name is the mistake's bug id (``bug_id``).

Each hidden-test module keeps its own suspects (which mistakes, in which order, in which words): this
module only computes them.
"""

import functools

import torch

from .harness import close

TORCH_ORDER = ("i", "f", "c", "o")  # PyTorch's i, f, g, o stripes, in the course's names


class Step:
    """One LSTM step, in float64 on the grader's copy of the weights::

        f_t  = σ(pre_f + peek_f)            pre_g = W_g h + U_g x + b_g
        i_t  = σ(pre_i + peek_i)            (coupled: i_t = 1 - f_t)
        c~_t = tanh(pre_c)
        c_t  = f_t * c + i_t * c~_t
        o_t  = σ(pre_o + peek_o)
        h_t  = o_t * tanh(c_t)

    ``peephole``: None (peek = 0), ``"matrix"`` (V_g c_{t-1} for f, i and o) or ``"diagonal"`` (v_f * c_{t-1},
    v_i * c_{t-1}, v_o * c_t). ``fused``: the weights are nn.LSTMCell's ``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh`` (row blocks i, f, g, o) instead of the course's twelve ``W_*``, ``U_*``, ``b_*``.
    Returns ``(h_t, c_t)``.
    """

    def __init__(self, params, peephole=None, coupled=False, fused=False):
        self.p, self.peephole, self.coupled, self.fused = params, peephole, coupled, fused

    def __call__(self, x, h, c):
        self.x, (self.h, c) = x, self.states(h, c)
        f = self.gate("f", c)
        i = self.input_gate(f, c)
        c_next = self.new_c(f, i, c, self.candidate())
        o = self.gate("o", c, c_next)
        return self.new_h(o, c_next), c_next

    def states(self, h, c):
        """The (h, c) the step starts from."""
        return h, c

    def pre(self, g):
        """W_g h + U_g x + b_g for gate ``g`` (``"c"``: the candidate)."""
        if self.fused:
            rows = self.x @ self.p["weight_ih"].T + self.bias("ih") + self.h @ self.p["weight_hh"].T + self.bias("hh")
            return rows.chunk(4, dim=-1)[TORCH_ORDER.index(g)]
        return self.x @ self.p[f"U_{g}"].T + self.recurrent(g) + self.bias(g)

    def recurrent(self, g):
        return self.h @ self.p[f"W_{g}"].T

    def bias(self, name):
        """b_{name} (course weights) or bias_{name}, name "ih" or "hh" (fused weights)."""
        return self.p[f"bias_{name}" if self.fused else f"b_{name}"]

    def gate(self, g, c, c_next=None):
        return torch.sigmoid(self.pre(g) + self.peek(g, c, c_next))

    def input_gate(self, f, c):
        return 1 - f if self.coupled else self.gate("i", c)

    def candidate(self):
        return torch.tanh(self.pre("c"))

    def new_c(self, f, i, c, c_tilde):
        return f * c + i * c_tilde

    def new_h(self, o, c_next):
        return o * torch.tanh(c_next)

    def peek(self, g, c, c_next):
        """Gate ``g``'s peephole term (0 without peepholes)."""
        if self.peephole is None:
            return 0
        return self.peephole_term(g, self.peeks_at(g, c, c_next))

    def peeks_at(self, g, c, c_next):
        """The state gate ``g``'s peephole reads: c_{t-1}, except the diagonal form's output gate (c_t)."""
        return c_next if self.peephole == "diagonal" and g == "o" else c

    def peephole_term(self, g, state):
        if self.peephole == "matrix":
            return state @ self.p[f"V_{g}"].T
        return state * self.p[f"v_{g}"]


# --------------------------------------------------------------------------- one mistake each


class IgnoreH(Step):
    def states(self, h, c):
        return torch.zeros_like(h), c


class IgnoreC(Step):
    def states(self, h, c):
        return h, torch.zeros_like(c)


class ReadsOtherGate(Step):
    """Some gates computed from another gate's weights (or, fused, from another row block)."""

    reads: dict[str, str] = {}  # gate -> the gate whose weights it uses

    def pre(self, g):
        return super().pre(self.reads.get(g, g))


class FISwapped(ReadsOtherGate):
    reads = {"f": "i", "i": "f"}


class COSwapped(ReadsOtherGate):
    reads = {"c": "o", "o": "c"}


class InputGateUsesWF(Step):
    def recurrent(self, g):
        return super().recurrent("f" if g == "i" else g)


class WNotTransposed(Step):
    def recurrent(self, g):
        return self.h @ self.p[f"W_{g}"]


class NoBias(Step):
    def bias(self, name):
        return 0


class NoBiasIH(Step):
    def bias(self, name):
        return 0 if name == "ih" else super().bias(name)


class NoBiasHH(Step):
    def bias(self, name):
        return 0 if name == "hh" else super().bias(name)


class CandidateSigmoid(Step):
    def candidate(self):
        return torch.sigmoid(self.pre("c"))


class NoTanhOnC(Step):
    def new_h(self, o, c_next):
        return o * c_next


class SigmoidOnC(Step):
    def new_h(self, o, c_next):
        return o * torch.sigmoid(c_next)


class CUsesOGate(Step):
    """The candidate written through the output gate."""

    def input_gate(self, f, c):
        return self.gate("o", c)


class ReturnsCH(Step):
    def __call__(self, x, h, c):
        h_next, c_next = super().__call__(x, h, c)
        return c_next, h_next


# the coupled cell (i_t = 1 - f_t)


class Uncoupled(Step):
    """A standard LSTM's own input gate σ(pre_i) (a KeyError when there is no W_i)."""

    def input_gate(self, f, c):
        return self.gate("i", c)


class CoupledToO(Step):
    def input_gate(self, f, c):
        return 1 - self.gate("o", c)


class IEqualsF(Step):
    def input_gate(self, f, c):
        return f


class NoInputGate(Step):
    def input_gate(self, f, c):
        return 1


class CoupledWeightsSwapped(Step):
    """(1 - f) * c + f * c~."""

    def new_c(self, f, i, c, c_tilde):
        return i * c + f * c_tilde


class Precedence(Step):
    """f * c + 1 - f * c~, for f * c + (1 - f) * c~."""

    def new_c(self, f, i, c, c_tilde):
        return f * c + 1 - f * c_tilde


# peepholes


class VNotTransposed(Step):
    def peephole_term(self, g, state):
        if self.peephole == "matrix":
            return state @ self.p[f"V_{g}"]
        return super().peephole_term(g, state)


class PeepholesFISwapped(Step):
    def peephole_term(self, g, state):
        return super().peephole_term({"f": "i", "i": "f"}.get(g, g), state)


class OPeeksNewC(Step):
    def peeks_at(self, g, c, c_next):
        return c_next if g == "o" else super().peeks_at(g, c, c_next)


class OPeeksOldC(Step):
    def peeks_at(self, g, c, c_next):
        return c if g == "o" else super().peeks_at(g, c, c_next)


class Peeking(Step):
    """Only ``gates`` have a peephole term."""

    gates = "fio"

    def peek(self, g, c, c_next):
        return super().peek(g, c, c_next) if g in self.gates else 0


class PeeksAtH(Step):
    """The peepholes of ``gates`` read h_{t-1} instead of the cell state."""

    gates = ""

    def peeks_at(self, g, c, c_next):
        return self.h if g in self.gates else super().peeks_at(g, c, c_next)


MISTAKES: dict[str, type[Step]] = {
    "ignore_h": IgnoreH,
    "ignore_c": IgnoreC,
    "f_i_swapped": FISwapped,
    "c_o_swapped": COSwapped,
    "input_gate_uses_W_f": InputGateUsesWF,
    "W_not_transposed": WNotTransposed,
    "no_bias": NoBias,
    "no_bias_ih": NoBiasIH,
    "no_bias_hh": NoBiasHH,
    "candidate_sigmoid": CandidateSigmoid,
    "no_tanh_on_c": NoTanhOnC,
    "sigmoid_on_c": SigmoidOnC,
    "c_uses_o_gate": CUsesOGate,
    "returns_c_h": ReturnsCH,
    "uncoupled": Uncoupled,
    "coupled_to_o": CoupledToO,
    "i_equals_f": IEqualsF,
    "no_input_gate": NoInputGate,
    "coupled_weights_swapped": CoupledWeightsSwapped,
    "precedence": Precedence,
    "V_not_transposed": VNotTransposed,
    "peepholes_f_i_swapped": PeepholesFISwapped,
    "o_peeks_new_c": OPeeksNewC,
    "o_peeks_old_c": OPeeksOldC,
}


def _rows_read_as(order: str) -> type[Step]:
    """Fused weights whose four row blocks are read in ``order`` (PyTorch's letters, e.g. "figo")."""
    course = order.replace("g", "c")
    reads = {gate: TORCH_ORDER[course.index(gate)] for gate in TORCH_ORDER}
    return type(f"RowsReadAs_{order}", (ReadsOtherGate,), {"reads": reads})


FAMILIES = {  # a bug ("family", argument)
    "peeking": lambda gates: type(f"Peeking_{gates}", (Peeking,), {"gates": gates}),
    "on_h": lambda gates: type(f"PeeksAtH_{gates}", (PeeksAtH,), {"gates": gates}),
    "rows": _rows_read_as,
}


@functools.cache
def mistake(bug) -> type[Step]:
    """The step class with mistake ``bug``: None (no mistake), a name of ``MISTAKES`` or a pair
    ``(family, argument)`` of ``FAMILIES``."""
    if bug is None:
        return Step
    if isinstance(bug, tuple):
        family, argument = bug
        return FAMILIES[family](argument)
    return MISTAKES[bug]


def bug_id(bug) -> str:
    """A suspect's stable id: its name, or ``family_argument`` (``peeking_fo``, ``rows_figo``)."""
    return "_".join(bug) if isinstance(bug, tuple) else bug


def name_bug(step_options, suspects, params, x, h, c, got_h, got_c, h_only=()) -> tuple[str, str] | None:
    """``(bug id, sentence)`` of the first suspect (``{bug: sentence}``, tried in order) whose output the
    student's (h, c) matches, or None if none does. A suspect in ``h_only`` needs to match h only; one that
    cannot run on these weights (a KeyError, a RuntimeError) is skipped."""
    for bug, sentence in suspects.items():
        step = mistake(bug)(params, **step_options)  # outside the try: a misspelt bug is an error
        try:
            want_h, want_c = step(x, h, c)
        except (KeyError, RuntimeError):
            continue
        if close(got_h, want_h) and (bug in h_only or close(got_c, want_c)):
            return bug_id(bug), sentence
    return None
