"""Hidden tests for notebook 2: the stacked ``LSTM`` and ``load_lstm_from_torch``.

Every forward test builds the student's model itself, loads the grader's own weights into its cells,
runs it on the grading device in float64 and compares with ``torch.nn.LSTM`` (float64, CPU) carrying
those weights. When the numbers differ, the student's results are compared with stacks that make one
usual mistake on purpose (``_stack``), so the message can name the mistake instead of only saying
"differs". The cells are the given reference ``LSTMCell``, so every difference comes from the stack itself.
"""

import torch

from . import _cell, oracles
from .harness import (
    GradingFailure,
    ReadyMadeLSTMUsed,
    Remote,
    call,
    close,
    describe,
    expect_close,
    fixture,
    hidden_test,
    max_abs_diff,
    student,
)
from .mistakes import sentences
from .mistakes.stacked_lstm import MISTAKES

F64 = torch.float64

SHAPE_HINT = (
    "Likely cause: the cells are given (they are right), so a shape error inside the stack means it hands "
    "them the wrong tensor — either the time and batch axes are mixed up (x is (seq_len, batch, "
    "input_size), so step t is x[t]: iterate over x.unbind(0)), or a layer above the first is given x_t "
    "instead of the h_t of the layer below (those layers take hidden_size inputs)."
)
DTYPE_HINT = (
    "Likely cause: a state created with a fixed dtype or device (torch.zeros(...)). The grader runs your "
    "model in float64: create default states like the input, x.new_zeros(...)."
)
INPLACE_HINT = (
    "Likely cause: an in-place write into a tensor autograd needs (h0[k] = ..., +=, copy_): keep each "
    "layer's state in Python lists and build the results with torch.stack."
)


# --------------------------------------------------------------------------- building the student's model


def _classes():
    lstm = student("LSTM")
    cell = student("LSTMCell")
    if not (isinstance(lstm, Remote) and lstm.module_class):
        raise GradingFailure("LSTM must be a class that subclasses nn.Module (class LSTM(nn.Module)).")
    return lstm, cell


def _make(cls, inp, hid, num_layers=None, batch_first=None):
    kwargs = {}
    if num_layers is not None:
        kwargs["num_layers"] = num_layers
    if batch_first is not None:
        kwargs["batch_first"] = batch_first
    label = f"{cls.__name__}({', '.join([str(inp), str(hid)] + [f'{k}={v}' for k, v in kwargs.items()])})"
    return call(cls, inp, hid, what=label, **kwargs), label


def _is_module_list(value) -> bool:
    """An nn.ModuleList in the kernel: the probe gives a length only to ModuleLists, lists and tuples, and
    lists and tuples are not modules (they cross as plain lists of handles)."""
    return isinstance(value, Remote) and value.is_module and value.length is not None


def _items(layers) -> list:
    """The entries of a ModuleList (handles) or of a plain list or tuple that crossed as one."""
    if isinstance(layers, Remote):
        return [layers.item(k) for k in range(layers.length or 0)]
    return list(layers) if isinstance(layers, (list, tuple)) else []


def _check_layers(model, inp, hid, num_layers, label):
    """The structure the contract fixes; a failure here explains itself before any number is compared.
    Returns the cells (handles), bottom layer first."""
    layers = model.attr("layers", None)
    if layers is None:
        raise GradingFailure(
            f"{label} has no attribute `layers`: store the cells in self.layers = nn.ModuleList(...)."
        )
    if not _is_module_list(layers):
        raise GradingFailure(
            f"{label}.layers is a {describe(layers)}, not an nn.ModuleList: a plain list hides the "
            "cells' parameters from .parameters(), .to(), .double() and optimizers. Use nn.ModuleList(...)."
        )
    if layers.length != num_layers:
        raise GradingFailure(f"{label}.layers holds {layers.length} cells, expected num_layers = {num_layers}.")
    cell_class = model.type().attr("cell_class")
    if cell_class is None:
        raise GradingFailure("LSTM needs the class attribute cell_class = LSTMCell, in the class body.")
    cells = _items(layers)
    for k, layer in enumerate(cells):
        if not (isinstance(layer, Remote) and layer.isinstance(cell_class)):
            raise GradingFailure(
                f"{label}.layers[{k}] is a {describe(layer)}, expected a "
                f"{getattr(cell_class, '__name__', describe(cell_class))} "
                "(build each layer with self.cell_class(...))."
            )
    if len({layer.key for layer in cells}) != len(cells):
        raise GradingFailure(
            f"in {label} the same cell object appears more than once in layers (e.g. [cell] * n): every "
            "layer needs its own cell with its own weights — create a new self.cell_class(...) for each."
        )
    for k, layer in enumerate(cells):
        want = (inp if k == 0 else hid, hid)
        got = (layer.attr("input_size"), layer.attr("hidden_size"))
        if got == want:
            continue
        if k > 0 and got == (inp, hid):
            raise GradingFailure(
                f"{label}.layers[{k}] maps input_size {inp} → hidden_size {hid}, like layer 0. Only the "
                f"first layer reads x; layer {k + 1} reads the h of the layer below, so it is "
                "cell_class(hidden_size, hidden_size)."
            )
        raise GradingFailure(
            f"{label}.layers[{k}] is a cell with input_size={got[0]}, hidden_size={got[1]}, expected "
            f"input_size={want[0]}, hidden_size={want[1]}: layer 0 maps input_size → hidden_size, the "
            "others hidden_size → hidden_size (cell_class(input_size, hidden_size): input first)."
        )
    registered = {p.ident for p in model.params().values()}
    for k, layer in enumerate(cells):
        for name, p in layer.params().items():
            if p.ident not in registered:
                raise GradingFailure(
                    f"{label}.parameters() does not include layers[{k}].{name}: keep the cells in the "
                    "nn.ModuleList self.layers."
                )
    return cells


def _model(inp, hid, num_layers=None, batch_first=None):
    """The student's LSTM, checked for structure, on the grading device in float64, every cell holding the
    grader's own weights: ``model.weights`` (one dict per layer, float64 on CPU) and ``model.cells``."""
    cls, _ = _classes()
    model, label = _make(cls, inp, hid, num_layers, batch_first)
    cells = _check_layers(model, inp, hid, 2 if num_layers is None else num_layers, label)
    for k, layer in enumerate(cells):
        names = layer.params()
        if any(n not in names for n in oracles.CELL_PARAMS):
            raise GradingFailure(f"{label}.layers[{k}] lacks some of the twelve LSTMCell parameters.")
    _cell.to_device(model, f"{label}.to(device, torch.float64)")
    spread = 1 / hid**0.5  # the cells' own init, U(-1/sqrt(H), 1/sqrt(H))
    weights = [_cell.fill_uniform(layer, spread) for layer in cells]
    model.cells = cells
    model.weights = [{name: w[name] for name in oracles.CELL_PARAMS} for w in weights]
    return model, label


# --------------------------------------------------------------------------- running it


def _call_model(model, *args, what, **options):
    """``harness.call`` on the student's model, with its failures explained for a stack.

    The cells are the given reference, so the likely cause is what the stack hands the cells rather than
    the cells' matrix products.
    """
    try:
        return call(model, *args, what=what, **options)
    except ReadyMadeLSTMUsed:
        raise
    except GradingFailure as failure:
        raised = failure.raised  # what the student's code raised, as the probe described it
        if not raised or raised.get("kind") != "error":
            raise
        text = str(raised.get("message", "")).rstrip(".")
        cause = ""
        if any(s in text for s in ("cannot be multiplied", "size of tensor", "must match", "size mismatch",
                                   "Expected hidden", "shape")):
            cause = f" {SHAPE_HINT}"
        elif any(s in text for s in ("dtype", "same device", "Expected all tensors")):
            cause = f" {DTYPE_HINT}"
        elif "in-place" in text or "inplace" in text:
            cause = f" {INPLACE_HINT}"
        explained = GradingFailure(
            f"{what} raised {raised.get('type', 'an exception')}: {text}.{_line_in(raised, model)}{cause}")
        explained.raised = raised
        raise explained from None


def _line_in(raised, model):
    """' It happened in your code, in `f`: `line`.' for the notebook frame the probe reported, unless that frame
    is in the given cell (a function of ``LSTMCell`` or ``sigmoid`` that the student's LSTM does not define):
    the probe reports the innermost notebook frame, and the given cell is not the student's code."""
    line = raised.get("line")
    if not (isinstance(line, dict) and line.get("code")):
        return ""
    function = str(line.get("function"))
    given = student("LSTMCell")
    in_given = function == "sigmoid" or (isinstance(given, Remote) and given.has(function))
    if in_given and not (isinstance(model, Remote) and model.type().has(function)):
        return ""
    return f" It happened in your code, in `{function[:80]}`: `{str(line['code'])[:200]}`."


def _run(model, x, h0=None, c0=None, what="LSTM.forward"):
    report = {}
    out = _call_model(model, *((x,) if h0 is None and c0 is None else (x, h0, c0)), what=what, report=report)
    for k in report["mutated"]:
        raise GradingFailure(
            f"{what} changed the caller's {('x', 'h0', 'c0')[k]} in place (e.g. h0[k] = ...): keep each "
            "layer's current state in Python lists and torch.stack them at the end."
        )
    return _unpack(out, what)


def _unpack(out, what):
    if not isinstance(out, tuple) or len(out) != 2:
        raise GradingFailure(f"{what} should return (output, (h_n, c_n)), got {_describe(out)}.")
    output, states = out
    if isinstance(output, (list, tuple)):
        raise GradingFailure(
            f"{what}: output is a {type(output).__name__} of {len(output)} items; return one tensor — "
            "torch.stack(outputs) stacks the last layer's h_t of every step along a new first axis."
        )
    if not isinstance(output, torch.Tensor):
        raise GradingFailure(f"{what}: output should be a tensor, got {describe(output)}.")
    if not isinstance(states, (tuple, list)) or len(states) != 2:
        raise GradingFailure(
            f"{what}: the second value returned should be the pair (h_n, c_n), got {_describe(states)}."
        )
    h_n, c_n = states
    for name, value in (("h_n", h_n), ("c_n", c_n)):
        if isinstance(value, (list, tuple)):
            raise GradingFailure(
                f"{what}: {name} is a {type(value).__name__} of {len(value)} items; stack the layers' final "
                "states into one tensor with torch.stack, shape (num_layers, batch, hidden_size)."
            )
        if not isinstance(value, torch.Tensor):
            raise GradingFailure(f"{what}: {name} should be a tensor, got {describe(value)}.")
    return output, h_n, c_n


def _describe(value):
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return describe(value)


def _check_shapes(output, h_n, c_n, seq_len, batch, hid, layers, label, batched=True, batch_first=False):
    if batched:
        want_out = (batch, seq_len, hid) if batch_first else (seq_len, batch, hid)
        want_state = (layers, batch, hid)
    else:
        want_out, want_state = (seq_len, hid), (layers, hid)
    got = tuple(output.shape)
    if got != want_out:
        if not batched:
            layout = "(seq_len, hidden_size)"
        else:
            layout = "(batch, seq_len, hidden_size)" if batch_first else "(seq_len, batch, hidden_size)"
        hint = f"output is the last layer's h_t at every step: {layout}."
        if batched and got == (want_out[1], want_out[0], hid):
            if batch_first:
                hint = ("The time and batch axes are swapped. With batch_first=True, output is "
                        "(batch, seq_len, hidden_size): transpose it back at the end.")
            else:
                hint = ("The time and batch axes are swapped. With batch_first=False, x is (seq_len, batch, "
                        "input_size): step t is x[t], and output stacks the steps along dim 0.")
        elif got == ((batch, hid) if batched else (hid,)):
            hint = "It holds a single step: output stacks the last layer's h_t of every step."
        elif got == want_state:
            hint = "It looks like h_n: " + hint
        elif not batched and len(got) == 3:
            hint = ("For an unbatched x of shape (seq_len, input_size) nothing has a batch axis: output is "
                    "(seq_len, hidden_size) and default states are (num_layers, hidden_size) — build them with "
                    "shape (num_layers, *x.shape[1:-1], hidden_size).")
        raise GradingFailure(f"{label}: output has shape {got}, expected {want_out}. {hint}")
    for name, value in (("h_n", h_n), ("c_n", c_n)):
        got = tuple(value.shape)
        if got == want_state:
            continue
        layout = "(num_layers, batch, hidden_size)" if batched else "(num_layers, hidden_size)"
        hint = f"{name} holds every layer's final state: {layout}."
        if got == want_state[1:]:
            hint = (f"It holds only one layer: {name} stacks every layer's final state ({name}[k] for "
                    f"layer k+1), {layout}.")
        elif batched and got == (batch, layers, hid):
            hint = (f"The states keep the layout {layout} even with batch_first=True, exactly as in "
                    "torch.nn.LSTM: only x and output are transposed.")
        elif got == want_out:
            hint = (f"It has the shape of output: {name} is each layer's state after the last step, not "
                    "every step.")
        elif not batched and len(got) == 3:
            hint = (f"For an unbatched x of shape (seq_len, input_size) the states have no batch axis, "
                    f"{layout}: build default states of shape (num_layers, *x.shape[1:-1], hidden_size).")
        raise GradingFailure(f"{label}: {name} has shape {got}, expected {want_state}. {hint}")


# --------------------------------------------------------------------------- the oracle and the suspects


def _params(model):
    """The grader's own weights in the student's model (``_model`` loaded them), one dict per layer."""
    return model.weights


def _oracle(model, batch_first=False):
    ref = oracles.torch_lstm_from(_params(model))
    ref.batch_first = batch_first
    return ref


def _reference(model, x, h0=None, c0=None, batch_first=False):
    ref = _oracle(model, batch_first)
    with torch.no_grad():
        out, (h_n, c_n) = ref(x) if h0 is None else ref(x, (h0, c0))
    return out, h_n, c_n


def _stack(params, x, h0, c0, bug=None):
    """The stack, written out in float64 on CPU, with one mistake made on purpose (``bug``).

    ``x`` is sequence-first, ``(T, B, I)`` or ``(T, I)``; ``h0``, ``c0`` are ``(L, B, H)`` or ``(L, H)``.
    Returns output, h_n, c_n and a dict with the first layer's h and the last layer's c at every step.
    """
    step = oracles.lstm_cell_step
    n = len(params)
    hs, cs = list(h0.unbind(0)), list(c0.unbind(0))
    if bug == "initial_from_layer1":
        hs, cs = [h0[0]] * n, [c0[0]] * n
    if bug in ("zero_initial", "zero_h0"):
        hs = [torch.zeros_like(h0[0])] * n
    if bug in ("zero_initial", "zero_c0"):
        cs = [torch.zeros_like(c0[0])] * n
    shared = (h0[0], c0[0])
    outputs, firsts, top_cells = [], [], []
    for x_t in x.unbind(0):
        inp = x_t
        for k in range(n):
            h_prev, c_prev = hs[k], cs[k]
            if bug == "state_from_below" and k > 0:
                h_prev, c_prev = hs[k - 1], cs[k - 1]  # what the layer below just computed, at this step
            elif bug == "shared_state":
                h_prev, c_prev = shared
            elif bug == "no_carry":
                h_prev, c_prev = h0[k], c0[k]
            if bug == "input_to_all":
                inp = x_t
            if bug == "h_c_swapped":
                h_prev, c_prev = c_prev, h_prev
            h, c = step(params[k], inp, h_prev, c_prev)
            hs[k], cs[k] = h, c
            shared = (h, c)
            inp = c if bug == "c_passed_up" else h
            if k == 0:
                firsts.append(h)
        outputs.append(hs[-1])
        top_cells.append(cs[-1])
    extra = {"first_layer": torch.stack(firsts), "top_cells": torch.stack(top_cells)}
    return torch.stack(outputs), torch.stack(hs), torch.stack(cs), extra


STACK_SUSPECTS = sentences(MISTAKES)  # in the order they are tried

OUTPUT_SUSPECTS = {name: MISTAKES[f"output_{name}"].sentence for name in ("first_layer", "top_cells")}


def _diagnose(model, x, h0, c0, got, want, label):
    """Raise a GradingFailure naming the mistake that explains the student's (output, h_n, c_n)."""
    output, h_n, c_n = got
    want_out, want_h, want_c = want
    params = _params(model)
    for bug, sentence in STACK_SUSPECTS.items():
        try:
            s_out, s_h, _, _ = _stack(params, x, h0, c0, bug)
        except RuntimeError:  # e.g. a layer fed x_t when input_size != hidden_size
            continue
        out_differs, h_differs = not close(s_out, want_out), not close(s_h, want_h)
        if (out_differs and close(output, s_out)) or (h_differs and close(h_n, s_h)):
            raise GradingFailure(f"{label}: {sentence}", bug=bug)
    out_ok = close(output, want_out)
    if not out_ok:
        extra = _stack(params, x, h0, c0)[3]
        for name, sentence in OUTPUT_SUSPECTS.items():
            if close(output, extra[name]) and not close(extra[name], want_out):
                raise GradingFailure(f"{label}: {sentence}", bug=f"output_{name}")
        if close(output, want_out.flip(0)):
            raise GradingFailure(f"{label}: output lists the steps in reverse: output[t] is the h of step t.",
                                 bug="output_reversed")
    if not close(h_n, want_h) and close(h_n, want_c) and close(c_n, want_h):
        raise GradingFailure(f"{label}: h_n and c_n are swapped: return output, (h_n, c_n).", bug="h_n_c_n_swapped")
    for name, value, good, initial in (("h_n", h_n, want_h, h0), ("c_n", c_n, want_c, c0)):
        if close(value, good):
            continue
        if close(value, initial):
            raise GradingFailure(
                f"{label}: {name} still holds the initial state: return each layer's state after the "
                "last step.", bug=f"{name}_initial_state")
        if len(good) > 1 and close(value, good.flip(0)):
            raise GradingFailure(
                f"{label}: {name} lists the layers top-down: {name}[0] is the first (bottom) layer, the one "
                "that reads x.", bug=f"{name}_top_down")
    for k in range(len(want_h)):
        if close(h_n[k], want_h[k]) and close(c_n[k], want_c[k]):
            continue
        diff = max(max_abs_diff(h_n[k], want_h[k]), max_abs_diff(c_n[k], want_c[k]))
        if k == 0:
            raise GradingFailure(
                f"{label}: the first layer's final state (h_n[0], c_n[0]) already differs from "
                f"torch.nn.LSTM's (by up to {diff:.3g}). Layer 1 reads x[t] at step t, starting from h0[0], "
                "c0[0], and carries its own (h, c) from step to step.", bug="first_layer_differs")
        below = "the layer below matches" if k == 1 else "the layers below match"
        raise GradingFailure(
            f"{label}: h_n[{k}] or c_n[{k}] (layer {k + 1}) differs from torch.nn.LSTM's by up to {diff:.3g} "
            f"while {below}: check what layer {k + 1} receives. Its input is layer {k}'s h_t at the same "
            f"step; its state is its own (h, c) from step t-1, starting from h0[{k}], c0[{k}].",
            bug="upper_layer_differs")
    if not out_ok:
        raise GradingFailure(
            f"{label}: h_n and c_n match torch.nn.LSTM but output differs by up to "
            f"{max_abs_diff(output, want_out):.3g}: output is the last layer's h_t at every step, in order "
            "(output[-1] equals h_n[-1]).", bug="output_not_top_h")


def _expect_forward(model, x, h0, c0, label, batch_first=False):
    """Run the student's model and the oracle on the same inputs; explain any difference."""
    batched = x.dim() == 3
    want = _reference(model, x, h0, c0, batch_first)
    got = _run(model, x, h0, c0, what=f"{label}.forward")
    if batched:
        seq_len, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    else:
        seq_len, batch = x.shape[0], None
    layers, hid = len(model.weights), model.weights[0]["U_f"].shape[0]
    _check_shapes(*got, seq_len, batch, hid, layers, label, batched=batched, batch_first=batch_first)
    if all(close(g, w) for g, w in zip(got, want, strict=True)):
        if got[0].dtype != F64:
            raise GradingFailure(
                f"{label}: for a float64 input, output is {got[0].dtype}: create default states like x."
            )
        return got
    if batch_first and batched:
        x = x.transpose(0, 1)
        got = (got[0].transpose(0, 1), *got[1:])
        want = (want[0].transpose(0, 1), *want[1:])
    cpu = tuple(g.detach().to("cpu", F64) for g in got)
    if h0 is None:
        shape = (layers, *x.shape[1:-1], hid)
        h0, c0 = torch.zeros(shape, dtype=F64), torch.zeros(shape, dtype=F64)
    _diagnose(model, x, h0, c0, cpu, want, label)
    raise GradingFailure(f"{label}: the results differ from torch.nn.LSTM's.")  # _diagnose raises first


def _case(seq_len, batch, inp, hid, layers, batched=True):
    shape = (batch,) if batched else ()
    x = torch.randn(seq_len, *shape, inp, dtype=F64)
    h0 = torch.randn(layers, *shape, hid, dtype=F64)  # a different random state for every layer
    c0 = torch.randn(layers, *shape, hid, dtype=F64)
    return x, h0, c0


def _equal_size_diagnosis(original: GradingFailure):
    """A forward that crashed on a shape error: retry with input_size == hidden_size and seq_len == batch,
    where the usual mistakes run, and name the one that fits."""
    try:
        seq_len = batch = 3
        model, label = _model(4, 4, num_layers=2)
        x, h0, c0 = _case(seq_len, batch, 4, 4, 2)
        got = _run(model, x, h0, c0, what=f"{label}.forward")
        _check_shapes(*got, seq_len, batch, 4, 2, label)
    except GradingFailure:
        raise original from None
    output = got[0].detach().to("cpu", F64)
    params = _params(model)
    for bug in ("input_to_all", "c_passed_up"):
        if close(output, _stack(params, x, h0, c0, bug)[0]):
            raise GradingFailure(
                f"{original} With input_size == hidden_size it runs, and {STACK_SUSPECTS[bug]}", bug=bug
            ) from None
    if close(output, _reference(model, x.transpose(0, 1), h0, c0)[0]):
        raise GradingFailure(
            f"{original} With seq_len == batch it runs, but steps along the batch axis: x is (seq_len, "
            "batch, input_size), so step t is x[t] (x.unbind(0))."
        ) from None
    raise original from None


# --------------------------------------------------------------------------- the tests


@hidden_test
def lstm_structure():
    """LSTM keeps an nn.ModuleList of cell_class cells, input→hidden then hidden→hidden, for 1 to 3 layers."""
    cls, cell = _classes()
    cell_class = cls.attr("cell_class")
    if cell_class != cell:
        raise GradingFailure(
            f"LSTM.cell_class is {cell_class!r}: the class body should say "
            "cell_class = LSTMCell."
        )
    model, label = _make(cls, 5, 3)
    _check_layers(model, 5, 3, 2, label)
    for num_layers in (1, 3):
        other, other_label = _make(cls, 4, 6, num_layers=num_layers)
        _check_layers(other, 4, 6, num_layers, other_label)
    n_params = len(model.params())
    if n_params != 24:
        raise GradingFailure(f"{label}.parameters() yields {n_params} tensors, expected 2 × 12 = 24.")
    want_keys = {f"layers.{k}.{name}" for k in range(2) for name in oracles.CELL_PARAMS}
    state = model.method("state_dict", what=f"{label}.state_dict()")
    keys = set(state) if isinstance(state, dict) else set()
    if not want_keys <= keys:
        raise GradingFailure(
            f"{label}.state_dict() lacks {sorted(want_keys - keys)[0]}: the cells belong in self.layers, an "
            "nn.ModuleList, so that their weights are saved as layers.0.W_f, layers.1.W_f, ..."
        )

    # A cell a subclass swaps in, as notebooks 3 and 4 do; both classes are made in the kernel.
    marked_cell = fixture("subclass", cell, "MarkedCell", {})
    marked_lstm = fixture("subclass", cls, "MarkedLSTM", {"cell_class": marked_cell})
    sub = call(marked_lstm, 5, 3, num_layers=3, what="a subclass of LSTM with cell_class = MarkedCell")
    layers = _items(sub.attr("layers", []) if isinstance(sub, Remote) else [])
    plain = [describe(layer) for layer in layers
             if not (isinstance(layer, Remote) and layer.isinstance(marked_cell))]
    if plain or len(layers) != 3:
        raise GradingFailure(
            "a subclass of LSTM that sets cell_class = MarkedCell got layers of type "
            f"{plain[0] if plain else '?'}: build the layers with self.cell_class(...), not LSTMCell(...), "
            "so that subclasses (notebooks 3 and 4) can swap the cell."
        )

    hid = 64
    k = 1 / hid**0.5
    big, big_label = _make(cls, 16, hid, num_layers=2)
    _check_layers(big, 16, hid, 2, big_label)
    big.load({name: torch.full(p.value.shape, 5.0) for name, p in big.params().items()})
    big.method("reset_parameters", what="LSTM.reset_parameters()")
    for name, p in big.params().items():
        values = p.value.double()
        hi = values.abs().max().item()
        if hi > k * (1 + 1e-6) or values.std().item() < 0.3 * k:
            raise GradingFailure(
                f"after reset_parameters(), {name} ranges up to {hi:.3g}: reset_parameters should "
                f"re-initialise every layer (call each cell's reset_parameters), U(-k, k) with k = {k:.3g}."
            )


@hidden_test
def lstm_forward():
    """LSTM.forward matches torch.nn.LSTM (output, h_n, c_n) from random per-layer states, 1 to 3 layers."""
    cases = (  # seq_len, batch, input_size, hidden_size, num_layers
        (5, 3, 4, 6, 2),
        (4, 6, 3, 5, 3),
        (6, 2, 5, 4, 1),
        (1, 1, 1, 1, 2),
        (3, 2, 4, 4, 2),
    )
    for seq_len, batch, inp, hid, layers in cases:
        model, label = _model(inp, hid, num_layers=layers)
        x, h0, c0 = _case(seq_len, batch, inp, hid, layers)
        label = f"{label} on x of shape {tuple(x.shape)} with random h0, c0 of shape {tuple(h0.shape)}"
        try:
            _expect_forward(model, x, h0, c0, label)
        except ReadyMadeLSTMUsed:
            raise
        except GradingFailure as err:
            if SHAPE_HINT in str(err) and (inp != hid or seq_len != batch):
                _equal_size_diagnosis(err)
            raise


@hidden_test
def lstm_forms():
    """LSTM.forward handles an unbatched (seq_len, input_size) x and missing h0, c0 (zeros like the input)."""
    seq_len, batch, inp, hid, layers = 5, 3, 4, 6, 2
    model, label = _model(inp, hid, num_layers=layers)
    x, h0, c0 = _case(seq_len, 1, inp, hid, layers, batched=False)
    _expect_forward(model, x, h0, c0, f"{label} on an unbatched x of shape {tuple(x.shape)} with h0, c0 "
                    f"of shape {tuple(h0.shape)}")
    xb = torch.randn(seq_len, batch, inp, dtype=F64)
    _expect_forward(model, xb, None, None,
                    f"{label}(x) on x of shape {tuple(xb.shape)} without h0 and c0 (they should be zeros)")
    _expect_forward(model, x, None, None,
                    f"{label}(x) on an unbatched x of shape {tuple(x.shape)} without h0 and c0 (zeros)")


@hidden_test
def lstm_batch_first():
    """With batch_first=True, x and output are (batch, seq_len, ·) and the states keep their layout."""
    seq_len, batch, inp, hid, layers = 5, 3, 4, 6, 2
    model, label = _model(inp, hid, num_layers=layers, batch_first=True)
    x, h0, c0 = _case(seq_len, batch, inp, hid, layers)
    x = x.transpose(0, 1).contiguous()
    try:
        _expect_forward(model, x, h0, c0, f"{label} on x of shape {tuple(x.shape)} (batch, seq_len, "
                        f"input_size) with h0, c0 of shape {tuple(h0.shape)}", batch_first=True)
        _expect_forward(model, x, None, None, f"{label}(x) on x of shape {tuple(x.shape)} without h0 and c0",
                        batch_first=True)
    except ReadyMadeLSTMUsed:
        raise
    except GradingFailure as err:
        if SHAPE_HINT not in str(err):
            raise
        raise err.reworded(
            f"{err} With batch_first=True, x is (batch, seq_len, input_size): transpose it to (seq_len, "
            "batch, input_size) before the time loop (when self.batch_first and x.dim() == 3).",
            bug="batch_first_not_transposed") from None
    xu, h0u, c0u = _case(seq_len, 1, inp, hid, layers, batched=False)
    try:
        _expect_forward(model, xu, h0u, c0u, f"{label} on an unbatched x of shape {tuple(xu.shape)}",
                        batch_first=True)
    except ReadyMadeLSTMUsed:
        raise
    except GradingFailure as err:
        raise err.reworded(
            f"{err} Note: with batch_first=True an unbatched x is still (seq_len, input_size), exactly as "
            "in torch.nn.LSTM — only a 3-D x has a batch axis to move (transpose only when x.dim() == 3).",
            bug="batch_first_unbatched") from None


def _split_lstm_grads(ref, layers):
    """Gradients of an ``nn.LSTM`` from ``oracles.torch_lstm_from``, named layers.k.<course name>."""
    grads = {}
    for k in range(layers):
        for kind, name in (("U", "weight_ih"), ("W", "weight_hh"), ("b", "bias_ih")):
            tensor = getattr(ref, f"{name}_l{k}").grad
            for gate, chunk in zip(oracles.TORCH_ORDER, tensor.chunk(4), strict=True):
                grads[f"layers.{k}.{kind}_{gate}"] = chunk
    return grads


@hidden_test
def lstm_gradients():
    """Gradients of every parameter and of x, h0, c0 through the stack match torch.nn.LSTM."""
    seq_len, batch, inp, hid, layers = 5, 3, 4, 6, 2
    model, label = _model(inp, hid, num_layers=layers)
    x, h0, c0 = _case(seq_len, batch, inp, hid, layers)
    w_out = torch.randn(seq_len, batch, hid, dtype=F64)
    w_h, w_c = torch.randn(layers, batch, hid, dtype=F64), torch.randn(layers, batch, hid, dtype=F64)

    ref = _oracle(model)
    inputs = [t.clone().requires_grad_(True) for t in (x, h0, c0)]
    want_out, (want_h, want_c) = ref(inputs[0], (inputs[1], inputs[2]))
    ((want_out * w_out).sum() + (want_h * w_h).sum() + (want_c * w_c).sum()).backward()
    want_param = _split_lstm_grads(ref, layers)

    mine = [t.clone().requires_grad_(True) for t in (x, h0, c0)]
    output, h_n, c_n = _unpack(_call_model(model, *mine, what=f"{label}.forward"), f"{label}.forward")
    if not (close(output, want_out) and close(h_n, want_h) and close(c_n, want_c)):
        raise GradingFailure(
            "the forward pass already differs from torch.nn.LSTM's (see the forward tests), so the gradients "
            "do too: fix forward first."
        )
    _, grads = call(model, *mine, what=f"{label}.forward", backward=[w_out, w_h, w_c],
                    backward_what=f"backward through {label}")
    hint = "The forward values match, so look for .detach(), .data or in-place updates."
    for k, layer in enumerate(model.cells):
        for short, p in layer.params().items():
            name = f"layers.{k}.{short}"
            if name not in want_param:
                continue
            if p.grad is None:
                raise GradingFailure(
                    f"{name} got no gradient: is that layer used in forward, and not through .detach() or .data?"
                )
            expect_close(p.grad, want_param[name], f"the gradient of {name}", hint)
    for name, got, want in zip(("x", "h0", "c0"), grads, inputs, strict=True):
        if got is None:
            raise GradingFailure(f"no gradient reaches {name}: is it detached (or replaced) inside forward?")
        expect_close(got, want.grad, f"the gradient with respect to {name}", hint)


# --------------------------------------------------------------------------- load_lstm_from_torch


def _container(inp, hid, layers):
    """An LSTM-shaped model the grader builds from the given LSTMCell (in the kernel, without running the
    student's LSTM.__init__), so that a bug in the student's LSTM.__init__ does not cost these points too."""
    cell = student("LSTMCell")
    try:
        cls, _ = _classes()
    except GradingFailure:
        cls = None  # nn.Module
    cells = [call(cell, inp if k == 0 else hid, hid, what=f"LSTMCell({inp if k == 0 else hid}, {hid})")
             for k in range(layers)]
    return fixture("stack", cls, cells, inp, hid)


@hidden_test
def load_lstm_from_torch_layers():
    """load_lstm_from_torch copies every layer's stripes i, f, g, o into that layer's cell, in place."""
    load = student("load_lstm_from_torch")
    inp, hid, layers = 5, 3, 3
    model = _container(inp, hid, layers)
    params = model.params()
    before = {n: p.ident for n, p in params.items()}
    initial = {n: p.value.clone() for n, p in params.items()}
    torch_lstm = fixture("nn.LSTM", inp, hid, num_layers=layers)
    weights = {name: torch.empty(p.value.shape).uniform_(-1, 1) for name, p in torch_lstm.params().items()}
    torch_lstm.load(weights)
    returned = call(load, model, torch_lstm, what="load_lstm_from_torch(model, torch_lstm)")
    if returned != model:
        raise GradingFailure("load_lstm_from_torch should return the model it was given (return model).")
    after = model.params()
    replaced = [n for n, i in before.items() if n not in after or after[n].ident != i]
    if replaced:
        raise GradingFailure(
            f"load_lstm_from_torch replaced {replaced[0]} with a new object: copy into the existing "
            "parameter in place (with torch.no_grad(): cell.W_f.copy_(...)), so optimizers holding it "
            "still work."
        )
    stripes = _TorchStripes(weights, hid, layers)
    for k in range(layers):
        for gate in oracles.GATES:
            for kind in "UWb":
                name = f"layers.{k}.{kind}_{gate}"
                got = after[name].value
                if not stripes.same(got, stripes.stripe(kind, k, gate)):
                    raise GradingFailure(stripes.mismatch(got, initial[name], kind, k, gate))


class _TorchStripes:
    """The weights the grader loaded into an ``nn.LSTM`` of ``layers`` layers, read as the course's stripes."""

    SOURCE = {"U": "weight_ih_l{k}", "W": "weight_hh_l{k}", "b": "bias_ih_l{k} + bias_hh_l{k}"}
    TORCH_NAME = {"f": "f", "i": "i", "o": "o", "c": "g"}

    def __init__(self, weights, hid, layers):
        self.weights, self.hid, self.layers = weights, hid, layers
        self.order = {gate: j for j, gate in enumerate(oracles.TORCH_ORDER)}

    def rows(self, gate):
        return slice(self.order[gate] * self.hid, (self.order[gate] + 1) * self.hid)

    def stripe(self, kind, layer, gate):
        if kind == "b":
            full = self.weights[f"bias_ih_l{layer}"] + self.weights[f"bias_hh_l{layer}"]
        else:
            full = self.weights[f"weight_{'ih' if kind == 'U' else 'hh'}_l{layer}"]
        return full[self.rows(gate)]

    @staticmethod
    def same(a, b):
        return close(a, b, atol=1e-6, rtol=1e-6)

    def mismatch(self, got, initial, kind, k, gate) -> str:
        """What is wrong with ``got``, the student's ``layers[k].{kind}_{gate}`` after loading."""
        where = f"model.layers[{k}].{kind}_{gate}"
        src = self.SOURCE[kind].format(k=k)
        span = f"rows {self.rows(gate).start}:{self.rows(gate).stop}"
        if close(got, initial):
            return (f"{where} still holds its initial value: load every layer — loop over "
                    f"range(torch_lstm.num_layers) or enumerate(model.layers) (graded with {self.layers} layers).")
        other = [j for j in range(self.layers) if j != k and self.same(got, self.stripe(kind, j, gate))]
        if other:
            return f"{where} holds layer {other[0]}'s weights ({self.SOURCE[kind].format(k=other[0])}): " \
                   f"layer {k}'s come from {src}."
        found = [g for g in oracles.GATES if self.same(got, self.stripe(kind, k, g))]
        if found:
            return (f"{where} holds the '{self.TORCH_NAME[found[0]]}' stripe of {src}: PyTorch stacks its "
                    f"rows as i, f, g, o, so gate {gate} is {span}.")
        if kind == "b" and self.same(got, self.weights[f"bias_ih_l{k}"][self.rows(gate)]):
            return f"{where} holds only bias_ih_l{k}: PyTorch adds bias_ih and bias_hh, so sum them."
        if kind in "UW" and self.same(got, self.stripe("W" if kind == "U" else "U", k, gate)):
            return (f"{where} holds rows of the other matrix: U_* come from weight_ih (input), W_* from "
                    "weight_hh (hidden).")
        return f"{where} does not hold {span} of {src}."
