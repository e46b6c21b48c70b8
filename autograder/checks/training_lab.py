"""Hidden tests for notebook 5, the training lab: ``adding_problem``, ``VanillaRNNCell``, ``input_gradient_norms``.

The data generator is checked on its own terms (shapes, ranges, two markers, the target is their sum,
reproducible with a ``torch.Generator``); the RNN cell against ``torch.nn.RNNCell`` in float64 with the
same weights; the gradient norms against autograd run by the grader on a model of its own. Nothing
here trains a model or measures time. The student's code runs in the kernel, through the probe; every
reference is computed here, from the weights, generators' seeds and inputs the grader chose itself.
"""

import math

import torch
import torch.nn as nn

from ..kernel.fixtures import TinyRegressor
from ._cell import F64, fill_uniform, run_cell, to_device
from .harness import (
    GradingFailure,
    Remote,
    call,
    close,
    exchange,
    expect_close,
    expect_shape,
    fixture,
    hidden_test,
    student,
)


def _kind(value) -> str:
    """The type's name of something that came back from the kernel (a handle names the kernel's type)."""
    return value.type_name if isinstance(value, Remote) else type(value).__name__

# --------------------------------------------------------------------------- adding_problem


def _adding(batch, seq_len, generator=None, what=None, seed=None):
    """One batch from the student's generator; ``generator`` a seed for a kernel torch.Generator, ``seed`` one
    for the kernel's global generator (torch.manual_seed) just before the call."""
    fn = student("adding_problem")
    what = what or f"adding_problem({batch}, {seq_len})"
    if generator is not None:
        generator = fixture("generator", generator)
    if seed is not None:
        exchange({"op": "seed", "seed": seed})
    out = call(fn, batch, seq_len, generator=generator, what=what)
    if not isinstance(out, tuple) or len(out) != 2:
        raise GradingFailure(f"{what} should return a tuple (x, y), got {_kind(out)}.")
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
    runs = [_adding(8, 12, generator=seed, what=f"adding_problem(8, 12, generator=g{k})")
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
    xa, ya = _adding(8, 12, what="adding_problem(8, 12) without a generator", seed=3)
    xb, yb = _adding(8, 12, what="adding_problem(8, 12) without a generator", seed=3)
    if not (torch.equal(xa, xb) and torch.equal(ya, yb)):
        raise GradingFailure(
            "without a generator, the same torch.manual_seed should give the same batch: with generator=None "
            "torch.rand and torch.randint use the global generator."
        )


# --------------------------------------------------------------------------- VanillaRNNCell

RNN_PARAMS = ("W", "U", "b")


def _make_rnn_cell(input_size, hidden_size):
    """The student's cell (a handle), its parameters checked: W, U and b with the contract's shapes."""
    cls = student("VanillaRNNCell")
    cell = call(cls, input_size, hidden_size, what=f"VanillaRNNCell({input_size}, {hidden_size})")
    if not (isinstance(cell, Remote) and cell.is_module):
        raise GradingFailure("VanillaRNNCell must subclass nn.Module.")
    params = cell.params()
    missing = [n for n in RNN_PARAMS if n not in params]
    if missing:
        plain = [n for n in missing if isinstance(cell.attr(n), torch.Tensor)]
        if plain:
            raise GradingFailure(f"{plain[0]} is a plain tensor: wrap it in nn.Parameter so the optimizer sees it.")
        raise GradingFailure(f"VanillaRNNCell is missing the parameter(s) {', '.join(missing)}: it needs W, U and b.")
    extra = sorted(set(params) - set(RNN_PARAMS))
    if extra:
        raise GradingFailure(f"VanillaRNNCell has parameters beyond W, U, b: {', '.join(extra)}.")
    shapes = {"W": (hidden_size, hidden_size), "U": (hidden_size, input_size), "b": (hidden_size,)}
    for name, want in shapes.items():
        got = tuple(params[name].value.shape)
        if got != want:
            raise GradingFailure(
                f"{name} has shape {got}, expected {want} for input_size={input_size}, hidden_size={hidden_size}: "
                "W multiplies h, U multiplies x (rows: h @ W.T + x @ U.T + b)."
            )
    return cell


def _graded_rnn_cell(input_size, hidden_size, spread=0.8):
    """The student's cell in float64 on the device, holding the grader's weights; returns (cell, weights)."""
    cell = _make_rnn_cell(input_size, hidden_size)
    to_device(cell, f"VanillaRNNCell({input_size}, {hidden_size}).to(device, torch.float64)")
    return cell, fill_uniform(cell, spread)


def _torch_rnn_cell(p):
    """A float64 torch.nn.RNNCell holding the grader's weights ``p`` (W, U, b)."""
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
        got = cell.attr(attr)
        if got != value:
            raise GradingFailure(f"VanillaRNNCell(5, 3).{attr} should be {value}, got {got!r}.")
    hidden = 256
    k = 1 / math.sqrt(hidden)
    cell = _make_rnn_cell(64, hidden)
    for name, p in cell.params().items():
        values = p.value.double()
        hi = values.abs().max().item()
        if not math.isfinite(hi) or hi > k * (1 + 1e-6) or hi < 0.8 * k or values.std().item() < 0.4 * k:
            raise GradingFailure(
                f"after __init__, {name} ranges up to {hi:.3g} with std {values.std().item():.3g}; expected "
                f"U(-k, k) with k = 1/sqrt(hidden_size) = {k:.4g} (std ≈ {k / math.sqrt(3):.3g})."
            )


@hidden_test
def rnn_cell_forward():
    """VanillaRNNCell.forward matches torch.nn.RNNCell (tanh) for batches and single examples, random h."""
    for batch, inp, hid in ((3, 5, 4), (1, 1, 1), (None, 3, 6)):
        cell, p = _graded_rnn_cell(inp, hid)
        ref = _torch_rnn_cell(p)
        shape = () if batch is None else (batch,)
        label = ("unbatched, x of shape (input_size,)" if batch is None
                 else f"batch={batch}, input_size={inp}, hidden_size={hid}")
        x, h, c = (torch.randn(*shape, n, dtype=F64) for n in (inp, hid, hid))
        got_h, got_c = _run_rnn(cell, x, h, c)
        want = ref(x, h)
        expect_shape(got_h, want.shape, f"h_next ({label})")
        if not close(got_h, want):
            hint = "Check h_t = tanh(W h_{t-1} + U x_t + b), rows: h @ W.T + x @ U.T + b."
            if close(got_h, torch.tanh(x @ p["U"].T + p["b"])):
                hint = "It matches tanh(U x + b): the given h is ignored."
            elif close(got_h, torch.tanh(h @ p["W"] + x @ p["U"].T + p["b"])):
                hint = "It matches h @ W without the transpose: rows compute h @ W.T."
            raise GradingFailure(f"VanillaRNNCell.forward ({label}): h_next differs from torch.nn.RNNCell's. {hint}")
        expect_close(got_c, c, f"the returned c ({label})",
                     "A vanilla RNN has no cell state: return the c it was given, unchanged.")
    cell, p = _graded_rnn_cell(4, 3)
    ref = _torch_rnn_cell(p)
    x = torch.randn(2, 4, dtype=F64)
    got_h, got_c = _run_rnn(cell, x, what="VanillaRNNCell.forward(x) without h and c")
    expect_close(got_h, ref(x), "h_next with h missing", "A missing h is zeros, created like x (x.new_zeros).")
    expect_close(got_c, torch.zeros(2, 3, dtype=F64), "the returned c with c missing",
                 "With c missing, return zeros of shape (batch, hidden_size) created like x.")


@hidden_test
def rnn_cell_gradients():
    """Gradients of W, U, b and of x and h match torch.nn.RNNCell."""
    cell, p = _graded_rnn_cell(5, 4)
    ref = _torch_rnn_cell(p)
    x, h, c = torch.randn(3, 5, dtype=F64), torch.randn(3, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    w = torch.randn(3, 4, dtype=F64)
    xr, hr = x.clone().requires_grad_(True), h.clone().requires_grad_(True)
    (ref(xr, hr) * w).sum().backward()
    got = call(cell, x, h, c, what="VanillaRNNCell.forward")
    if not (isinstance(got, tuple) and len(got) == 2 and close(got[0], ref(x, h))):
        raise GradingFailure(
            "the forward pass already differs from torch.nn.RNNCell's (see the forward test): fix it first."
        )
    cell.method("zero_grad", set_to_none=True, what="VanillaRNNCell.zero_grad()")
    _, grads = call(cell, x.clone().requires_grad_(True), h.clone().requires_grad_(True), c,
                    what="VanillaRNNCell.forward", backward=[w, None],
                    backward_what="backward through VanillaRNNCell")
    want = {"W": ref.weight_hh.grad, "U": ref.weight_ih.grad, "b": ref.bias_ih.grad}
    for name, param in cell.params().items():
        if param.grad is None:
            raise GradingFailure(f"{name} got no gradient: is it used through .detach() or .data?")
        expect_close(param.grad, want[name], f"the gradient of {name}")
    for name, got_grad, ref_t in (("x", grads[0], xr), ("h", grads[1], hr)):
        if got_grad is None:
            raise GradingFailure(f"no gradient reaches {name}: is it detached inside forward?")
        expect_close(got_grad, ref_t.grad, f"the gradient with respect to {name}")


# --------------------------------------------------------------------------- input_gradient_norms


def _reference_norms(model, x, y):
    xr = x.detach().clone().requires_grad_(True)
    loss = ((model(xr) - y) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, xr)
    return grad.flatten(1).norm(dim=1), loss


@hidden_test
def gradient_norms():
    """input_gradient_norms gives ‖∂L/∂x_t‖ for every step t, L the mean squared error, x left untouched."""
    fn = student("input_gradient_norms")
    for seq_len, batch, last_only in ((9, 4, True), (6, 3, False), (1, 2, True)):
        mine = TinyRegressor(last_only=last_only)  # the grader's weights, drawn here
        weights = {name: p.detach().clone() for name, p in mine.named_parameters()}
        model = fixture("TinyRegressor", last_only=last_only)
        missing = model.load(weights)
        if missing:
            raise GradingFailure(f"the grader could not load its model's weights in your kernel (missing {missing}).")
        to_device(model, "the grader's model .to(device)")
        x = torch.rand(seq_len, batch, 2, dtype=F64)
        y = torch.rand(batch, dtype=F64)
        what = f"input_gradient_norms(model, x, y) with x of shape {tuple(x.shape)}"
        report = {}
        got = call(fn, model, x, y, what=what, report=report)
        if not isinstance(got, torch.Tensor):
            raise GradingFailure(f"{what} should return a tensor of shape (seq_len,), got {_kind(got)}.")
        expect_shape(got, (seq_len,), f"the result of {what}", "One norm per time step: shape (seq_len,).")
        if 1 in report["mutated"]:  # x is argument 1: its values or its requires_grad flag changed
            raise GradingFailure(
                f"{what} changed the caller's x (its values or its requires_grad flag): work on a copy, "
                "x = x.detach().clone().requires_grad_(True)."
            )
        want, _ = _reference_norms(mine, x, y)
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
