"""Hidden tests for notebook 5, the training lab: ``adding_problem``, ``VanillaRNNCell``, ``input_gradient_norms``.

The data generator is checked on its own terms (shapes, ranges, two markers, the target is their sum,
reproducible with a ``torch.Generator``); the RNN cell against ``torch.nn.RNNCell`` in float64 with the
same weights; the gradient norms against autograd run by the grader on a model of its own. Nothing
here trains a model or measures time.
"""

import math

import torch
import torch._dynamo  # noqa: F401  (see below)
import torch.nn as nn

from ..harness import GradingFailure, call, close, device, expect_close, expect_shape, hidden_test, student
from ._cell import F64, fill_uniform, run_cell

# Importing torch._dynamo rebinds torch.manual_seed (to a dynamo-disabled wrapper).
# The notebook trains with torch.optim, which
# imports it lazily; the grading kernel's guard imports this module before it snapshots torch, so the
# rebinding happens before the snapshot and is not mistaken for the student's code changing torch.

# --------------------------------------------------------------------------- adding_problem


def _adding(batch, seq_len, generator=None, what=None):
    fn = student("adding_problem")
    what = what or f"adding_problem({batch}, {seq_len})"
    out = call(fn, batch, seq_len, generator=generator, what=what)
    if not isinstance(out, tuple) or len(out) != 2:
        raise GradingFailure(f"{what} should return a tuple (x, y), got {type(out).__name__}.")
    x, y = out
    expect_shape(x, (seq_len, batch, 2), f"x from {what}",
                 "x is (seq_len, batch, 2): time first, then the batch, then (value, marker).")
    expect_shape(y, (batch,), f"y from {what}", "y holds one target per sequence: shape (batch,).")
    for name, t in (("x", x), ("y", y)):
        if not t.is_floating_point():
            raise GradingFailure(f"{name} from {what} has dtype {t.dtype}: use floating point (torch.rand gives it).")
        if not bool(torch.isfinite(t).all()):
            raise GradingFailure(f"{name} from {what} contains NaN or inf.")
    return x, y


def _split(x):
    values, markers = x[..., 0].detach().cpu().double(), x[..., 1].detach().cpu().double()
    return values, markers


@hidden_test
def adding_shapes():
    """adding_problem returns x of shape (seq_len, batch, 2) with values in [0, 1) and 0/1 markers, y (batch,)."""
    for batch, seq_len in ((5, 7), (3, 2), (1, 10), (6, 3)):
        x, _ = _adding(batch, seq_len)
        values, markers = _split(x)
        if values.min() < 0 or values.max() >= 1:
            raise GradingFailure(
                f"adding_problem({batch}, {seq_len}): the values (x[..., 0]) range over "
                f"[{values.min():.3g}, {values.max():.3g}], expected U(0, 1) (torch.rand)."
            )
        if not bool(((markers == 0) | (markers == 1)).all()):
            raise GradingFailure(
                f"adding_problem({batch}, {seq_len}): the markers (x[..., 1]) should be 0 or 1, found "
                f"{sorted(set(markers.flatten().tolist()))[:6]}."
            )
    x, _ = _adding(4000, 20)
    values, _ = _split(x)
    mean, std = values.mean().item(), values.std().item()
    if abs(mean - 0.5) > 0.01 or abs(std - 1 / math.sqrt(12)) > 0.01:
        raise GradingFailure(
            f"the values have mean {mean:.3f} and std {std:.3f}; U(0, 1) has 0.5 and {1 / math.sqrt(12):.3f}. "
            "Draw them with torch.rand."
        )


@hidden_test
def adding_markers():
    """Every sequence has exactly two markers, one in each half, at positions that vary from sequence to sequence."""
    for batch, seq_len in ((7, 9), (5, 2), (3000, 20)):
        x, _ = _adding(batch, seq_len)
        _, markers = _split(x)
        counts = markers.sum(0)
        bad = (counts != 2).nonzero().flatten()
        if len(bad):
            k = bad[0].item()
            raise GradingFailure(
                f"adding_problem({batch}, {seq_len}): sequence {k} has {counts[k].item():.0f} markers, expected "
                "exactly 2. If it has 1, both positions came out the same: draw the first in the first half "
                "and the second in the second half."
            )
        half = seq_len // 2
        early, late = markers[:half].sum(0), markers[half:].sum(0)
        if not bool(((early == 1) & (late == 1)).all()):
            k = ((early != 1) | (late != 1)).nonzero().flatten()[0].item()
            raise GradingFailure(
                f"adding_problem({batch}, {seq_len}): sequence {k} has {early[k].item():.0f} marker(s) in the "
                f"first half (steps 0 to {half - 1}) and {late[k].item():.0f} in the second: put one in each, "
                "so the model must remember for about half the sequence."
            )
    positions = markers.argmax(0)  # the first marker of each of the 3000 sequences of length 20
    seen = sorted(set(positions.tolist()))
    if len(seen) < 10:
        raise GradingFailure(
            f"over 3000 sequences of length 20 the first marker only sits at steps {seen}: draw it uniformly "
            "from the first half (torch.randint), independently for every sequence."
        )
    second = seq_len - 1 - markers.flip(0).argmax(0)
    if len(set(second.tolist())) < 10:
        raise GradingFailure(
            f"over 3000 sequences of length 20 the second marker only sits at steps {sorted(set(second.tolist()))}: "
            "draw it uniformly from the second half, independently for every sequence."
        )


@hidden_test
def adding_targets():
    """y is the sum of the two marked values of each sequence."""
    for batch, seq_len in ((6, 11), (1, 2), (4, 30)):
        x, y = _adding(batch, seq_len)
        values, markers = _split(x)
        want = (values * markers).sum(0)
        if close(y, want, atol=1e-6, rtol=1e-6):
            continue
        first = (values * markers).max(0).values
        hint = ""
        if close(y, want / 2, atol=1e-6, rtol=1e-6):
            hint = " y matches the mean of the two values: the target is their sum."
        elif close(y, first, atol=1e-6, rtol=1e-6):
            hint = " y matches only one of the two marked values: add both."
        elif close(y, values.sum(0), atol=1e-6, rtol=1e-6):
            hint = " y matches the sum of all values: only the two marked ones count."
        raise GradingFailure(
            f"adding_problem({batch}, {seq_len}): y differs from the sum of the marked values of x by up to "
            f"{(y.detach().cpu().double() - want).abs().max().item():.3g}.{hint} Compute y from the same "
            "values and markers you put into x."
        )


@hidden_test
def adding_generator():
    """adding_problem draws everything from the given torch.Generator, and from the global seed without one."""
    runs = [_adding(8, 12, generator=torch.Generator().manual_seed(seed), what=f"adding_problem(8, 12, generator=g{k})")
            for k, seed in enumerate((7, 7, 8))]
    (x1, y1), (x2, y2), (x3, y3) = runs
    if not (torch.equal(x1, x2) and torch.equal(y1, y2)):
        part = "the values" if not torch.equal(x1[..., 0], x2[..., 0]) else "the marker positions"
        raise GradingFailure(
            f"two generators with the same seed gave different batches ({part} differ): pass "
            "generator=generator to every torch.rand and torch.randint call."
        )
    if torch.equal(x1, x3):
        raise GradingFailure("generators with different seeds gave the same batch: use the generator you are given.")
    torch.manual_seed(3)
    xa, ya = _adding(8, 12, what="adding_problem(8, 12) without a generator")
    torch.manual_seed(3)
    xb, yb = _adding(8, 12, what="adding_problem(8, 12) without a generator")
    if not (torch.equal(xa, xb) and torch.equal(ya, yb)):
        raise GradingFailure(
            "without a generator, the same torch.manual_seed should give the same batch: with generator=None "
            "torch.rand and torch.randint use the global generator."
        )


# --------------------------------------------------------------------------- VanillaRNNCell

RNN_PARAMS = ("W", "U", "b")


def _make_rnn_cell(input_size, hidden_size):
    cls = student("VanillaRNNCell")
    cell = call(cls, input_size, hidden_size, what=f"VanillaRNNCell({input_size}, {hidden_size})")
    if not isinstance(cell, nn.Module):
        raise GradingFailure("VanillaRNNCell must subclass nn.Module.")
    params = dict(cell.named_parameters())
    missing = [n for n in RNN_PARAMS if n not in params]
    if missing:
        plain = [n for n in missing if isinstance(getattr(cell, n, None), torch.Tensor)]
        if plain:
            raise GradingFailure(f"{plain[0]} is a plain tensor: wrap it in nn.Parameter so the optimizer sees it.")
        raise GradingFailure(f"VanillaRNNCell is missing the parameter(s) {', '.join(missing)}: it needs W, U and b.")
    extra = sorted(set(params) - set(RNN_PARAMS))
    if extra:
        raise GradingFailure(f"VanillaRNNCell has parameters beyond W, U, b: {', '.join(extra)}.")
    shapes = {"W": (hidden_size, hidden_size), "U": (hidden_size, input_size), "b": (hidden_size,)}
    for name, want in shapes.items():
        got = tuple(params[name].shape)
        if got != want:
            raise GradingFailure(
                f"{name} has shape {got}, expected {want} for input_size={input_size}, hidden_size={hidden_size}: "
                "W multiplies h, U multiplies x (rows: h @ W.T + x @ U.T + b)."
            )
    return cell


def _torch_rnn_cell(cell):
    p = {n: t.detach().cpu().to(F64) for n, t in cell.named_parameters()}
    hidden, inp = p["U"].shape
    ref = nn.RNNCell(inp, hidden, nonlinearity="tanh").to(F64)
    with torch.no_grad():
        ref.weight_ih.copy_(p["U"])
        ref.weight_hh.copy_(p["W"])
        ref.bias_ih.copy_(p["b"])
        ref.bias_hh.zero_()
    return ref


def _run_rnn(cell, x, h=None, c=None, what="VanillaRNNCell.forward"):
    return run_cell(cell, x, h, c, what=what, not_a_pair=(
        "{what} should return a tuple (h_next, c) — c passed through unchanged, so the cell fits the LSTM "
        "stack — got {got}."))


@hidden_test
def rnn_cell_parameters():
    """VanillaRNNCell registers W (H, H), U (H, I), b (H,), drawn from U(-1/sqrt(H), 1/sqrt(H))."""
    cell = _make_rnn_cell(5, 3)
    for attr, value in (("input_size", 5), ("hidden_size", 3)):
        if getattr(cell, attr, None) != value:
            raise GradingFailure(f"VanillaRNNCell(5, 3).{attr} should be {value}, got {getattr(cell, attr, None)!r}.")
    hidden = 256
    k = 1 / math.sqrt(hidden)
    cell = _make_rnn_cell(64, hidden)
    for name, p in cell.named_parameters():
        values = p.detach().cpu().double()
        hi = values.abs().max().item()
        if not math.isfinite(hi) or hi > k * (1 + 1e-6) or hi < 0.8 * k or values.std().item() < 0.4 * k:
            raise GradingFailure(
                f"after __init__, {name} ranges up to {hi:.3g} with std {values.std().item():.3g}; expected "
                f"U(-k, k) with k = 1/sqrt(hidden_size) = {k:.4g} (std ≈ {k / math.sqrt(3):.3g})."
            )


@hidden_test
def rnn_cell_forward():
    """VanillaRNNCell.forward matches torch.nn.RNNCell (tanh) for batches and single examples, random h."""
    dev = device()
    for batch, inp, hid in ((3, 5, 4), (1, 1, 1), (None, 3, 6)):
        cell = _make_rnn_cell(inp, hid)
        fill_uniform(cell, 0.8)
        cell.to(dev, F64)
        ref = _torch_rnn_cell(cell)
        shape = () if batch is None else (batch,)
        label = ("unbatched, x of shape (input_size,)" if batch is None
                 else f"batch={batch}, input_size={inp}, hidden_size={hid}")
        x, h, c = (torch.randn(*shape, n, dtype=F64) for n in (inp, hid, hid))
        got_h, got_c = _run_rnn(cell, x, h, c)
        want = ref(x, h)
        expect_shape(got_h, want.shape, f"h_next ({label})")
        if not close(got_h, want):
            hint = "Check h_t = tanh(W h_{t-1} + U x_t + b), rows: h @ W.T + x @ U.T + b."
            if close(got_h, torch.tanh(x @ cell.U.detach().cpu().double().T + cell.b.detach().cpu().double())):
                hint = "It matches tanh(U x + b): the given h is ignored."
            elif close(got_h, torch.tanh(h @ cell.W.detach().cpu().double() + x @ cell.U.detach().cpu().double().T
                                         + cell.b.detach().cpu().double())):
                hint = "It matches h @ W without the transpose: rows compute h @ W.T."
            raise GradingFailure(f"VanillaRNNCell.forward ({label}): h_next differs from torch.nn.RNNCell's. {hint}")
        expect_close(got_c, c, f"the returned c ({label})",
                     "A vanilla RNN has no cell state: return the c it was given, unchanged.")
    cell = _make_rnn_cell(4, 3).to(dev, F64)
    ref = _torch_rnn_cell(cell)
    x = torch.randn(2, 4, dtype=F64)
    got_h, got_c = _run_rnn(cell, x, what="VanillaRNNCell.forward(x) without h and c")
    expect_close(got_h, ref(x), "h_next with h missing", "A missing h is zeros, created like x (x.new_zeros).")
    expect_close(got_c, torch.zeros(2, 3, dtype=F64), "the returned c with c missing",
                 "With c missing, return zeros of shape (batch, hidden_size) created like x.")


@hidden_test
def rnn_cell_gradients():
    """Gradients of W, U, b and of x and h match torch.nn.RNNCell."""
    dev = device()
    cell = _make_rnn_cell(5, 4)
    fill_uniform(cell, 0.8)
    cell.to(dev, F64)
    ref = _torch_rnn_cell(cell)
    x, h, c = torch.randn(3, 5, dtype=F64), torch.randn(3, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    w = torch.randn(3, 4, dtype=F64)
    xr, hr = x.clone().requires_grad_(True), h.clone().requires_grad_(True)
    (ref(xr, hr) * w).sum().backward()
    xs, hs = x.to(dev).requires_grad_(True), h.to(dev).requires_grad_(True)
    got_h, _ = call(cell, xs, hs, c.to(dev), what="VanillaRNNCell.forward")
    if not close(got_h, ref(x, h)):
        raise GradingFailure(
            "the forward pass already differs from torch.nn.RNNCell's (see the forward test): fix it first."
        )
    call((got_h * w.to(dev)).sum().backward, what="backward through VanillaRNNCell")
    want = {"W": ref.weight_hh.grad, "U": ref.weight_ih.grad, "b": ref.bias_ih.grad}
    for name, p in cell.named_parameters():
        if p.grad is None:
            raise GradingFailure(f"{name} got no gradient: is it used through .detach() or .data?")
        expect_close(p.grad, want[name], f"the gradient of {name}")
    for name, got, ref_t in (("x", xs, xr), ("h", hs, hr)):
        if got.grad is None:
            raise GradingFailure(f"no gradient reaches {name}: is it detached inside forward?")
        expect_close(got.grad, ref_t.grad, f"the gradient with respect to {name}")


# --------------------------------------------------------------------------- input_gradient_norms


class _TinyRegressor(nn.Module):
    """The grader's own model: a tanh RNN written out, and a linear head on the last (or every) step."""

    def __init__(self, hidden=5, last_only=True):
        super().__init__()
        self.w_x = nn.Parameter(torch.randn(2, hidden, dtype=F64) * 0.7)
        self.w_h = nn.Parameter(torch.randn(hidden, hidden, dtype=F64) * 0.5)
        self.head = nn.Parameter(torch.randn(hidden, dtype=F64))
        self.last_only = last_only

    def forward(self, x):
        h = x.new_zeros(x.shape[1], self.w_h.shape[0])
        total = 0
        for x_t in x.unbind(0):
            h = torch.tanh(x_t @ self.w_x + h @ self.w_h)
            total = total + h @ self.head
        return h @ self.head if self.last_only else total


def _reference_norms(model, x, y):
    xr = x.detach().clone().requires_grad_(True)
    loss = ((model(xr) - y) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, xr)
    return grad.flatten(1).norm(dim=1), loss


@hidden_test
def gradient_norms():
    """input_gradient_norms gives ‖∂L/∂x_t‖ for every step t, L the mean squared error, x left untouched."""
    fn = student("input_gradient_norms")
    dev = device()
    for seq_len, batch, last_only in ((9, 4, True), (6, 3, False), (1, 2, True)):
        torch.manual_seed(seq_len)
        model = _TinyRegressor(last_only=last_only).to(dev)
        x = torch.rand(seq_len, batch, 2, dtype=F64, device=dev)
        y = torch.rand(batch, dtype=F64, device=dev)
        before = x.clone()
        what = f"input_gradient_norms(model, x, y) with x of shape {tuple(x.shape)}"
        got = call(fn, model, x, y, what=what)
        if not isinstance(got, torch.Tensor):
            raise GradingFailure(f"{what} should return a tensor of shape (seq_len,), got {type(got).__name__}.")
        expect_shape(got, (seq_len,), f"the result of {what}", "One norm per time step: shape (seq_len,).")
        if not torch.equal(x, before) or x.requires_grad:
            raise GradingFailure(
                f"{what} changed the caller's x (its values or its requires_grad flag): work on a copy, "
                "x = x.detach().clone().requires_grad_(True)."
            )
        want, _ = _reference_norms(model, x, y)
        if close(got, want, atol=1e-10, rtol=1e-8):
            continue
        g = got.detach().cpu().double()
        w = want.detach().cpu().double()
        hint = ""
        if close(g, w * batch, atol=1e-10, rtol=1e-8):
            hint = " It is `batch` times too large: L is the mean of the squared errors, not their sum."
        elif close(g, w ** 2, atol=1e-10, rtol=1e-8):
            hint = " It matches the squared norm: take the square root (torch.linalg.vector_norm / .norm())."
        elif close(g, w.flip(0), atol=1e-10, rtol=1e-8):
            hint = " It is in reverse order: entry t belongs to x[t]."
        elif close(g, w / math.sqrt(batch), atol=1e-10, rtol=1e-8) or close(g, w / batch, atol=1e-10, rtol=1e-8):
            hint = " It looks averaged over the batch: take the norm of the whole (batch, 2) slice ∂L/∂x_t."
        raise GradingFailure(
            f"{what} differs from ‖∂L/∂x_t‖ by up to {(g - w).abs().max().item():.3g} "
            f"(expected {[round(v, 4) for v in w.tolist()[:4]]}..., got {[round(v, 4) for v in g.tolist()[:4]]}...)."
            + hint
        )
