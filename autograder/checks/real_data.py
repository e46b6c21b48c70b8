"""Hidden tests for notebook 7, real data: the digits as sequences, the classifier and its evaluation; the
character vocabulary, the streams and chunks, truncated backpropagation through time and sampling.

Nothing here trains on the notebook's data or reads its numbers. Every input is the grader's: images and
labels drawn here, the grader's weights loaded into the student's classifier, the grader's own small models
(``autograder.kernel.fixtures``: ``TinyClassifier``, ``TinyCharModel``) with its weights, its chunks, its
optimizer settings and its generators' seeds. The references are computed here in float64, from those inputs.
"""

import torch
import torch.nn.functional as F

from ..kernel.fixtures import TinyCharModel, TinyClassifier
from . import oracles
from ._cell import F64, fill_uniform, to_device
from .harness import (
    GradingFailure,
    Remote,
    call,
    close,
    describe,
    expect_close,
    expect_shape,
    fixture,
    hidden_test,
    max_abs_diff,
    student,
    submitted_cells,
)
from .scan import borrowed


def _pair(out, what, names="(x, y)"):
    if not isinstance(out, tuple) or len(out) != 2:
        raise GradingFailure(f"{what} should return a tuple {names}, got {describe(out)}.")
    return out


def _ints(t, what):
    if not isinstance(t, torch.Tensor):
        raise GradingFailure(f"{what} should be a torch.Tensor, got {describe(t)}.")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise GradingFailure(f"{what} has dtype {t.dtype}: it holds indices or counts, make it torch.long.")


# --------------------------------------------------------------------------- to_sequences


def _images(n, dtype=torch.float64):
    return torch.randint(0, 17, (n, 8, 8)).to(dtype), torch.randint(0, 10, (n,))


def _sequences(images, labels, what=None):
    what = what or f"to_sequences(images of shape {tuple(images.shape)} and dtype {images.dtype}, labels)"
    x, y = _pair(call(student("to_sequences"), images, labels, what=what), what)
    n = images.shape[0]
    if isinstance(x, torch.Tensor) and tuple(x.shape) == (n, 8, 8) and n != 8:
        raise GradingFailure(f"x from {what} has shape {tuple(x.shape)}, the images' own: our LSTM is time first, "
                             "x is (8, N, 8) with x[t, n] = row t of image n (transpose(0, 1)).")
    expect_shape(x, (8, n, 8), f"x from {what}", "x is (rows = time steps, images, pixels of a row): (8, N, 8).")
    expect_shape(y, (n,), f"the labels from {what}")
    return x, y


@hidden_test
def sequences_shapes():
    """to_sequences gives x (8, N, 8) in the default float dtype and labels (N,) long, whatever the input dtypes."""
    for n, dtype, label_dtype in ((5, torch.float64, torch.int64), (1, torch.int64, torch.int32),
                                  (12, torch.float32, torch.int64), (3, torch.uint8, torch.int16)):
        images, labels = _images(n, dtype)
        what = f"to_sequences(images of shape {tuple(images.shape)} and dtype {dtype}, labels of dtype {label_dtype})"
        x, y = _sequences(images, labels.to(label_dtype), what)
        if x.dtype != torch.float32:
            raise GradingFailure(f"x from {what} has dtype {x.dtype}: make it the default floating dtype, "
                                 "torch.get_default_dtype() (float32), whatever the images' dtype.")
        if y.dtype != torch.long:
            raise GradingFailure(f"the labels from {what} have dtype {y.dtype}: F.cross_entropy wants torch.long.")


@hidden_test
def sequences_values():
    """x[t, n] is row t of image n divided by 16; the labels come back unchanged."""
    for n in (7, 2, 8):
        images, labels = _images(n)
        images[0] = images[0] % 13  # a faint image (no pixel at 16): dividing by each image's maximum shows
        x, y = _sequences(images, labels)
        want = images.transpose(0, 1) / 16
        if close(x, want, atol=1e-6, rtol=1e-6):
            if not torch.equal(y.cpu().long(), labels):
                raise GradingFailure(f"to_sequences changed the labels (got {y.tolist()[:6]}..., expected "
                                     f"{labels.tolist()[:6]}...): return them as they are, as torch.long.",
                                     bug="labels_changed")
            continue
        hint, bug = "x[t, n] should be images[n, t] / 16: rows as time steps, pixels scaled to [0, 1].", None
        if close(x, images.reshape(8, n, 8) / 16, atol=1e-6, rtol=1e-6):
            bug = "reshape_not_transpose"
            hint = ("It is the images reshaped to (8, N, 8): reshape keeps the memory order and mixes rows of "
                    "different images. Swap the axes with transpose(0, 1).")
        elif close(x, images.permute(2, 0, 1) / 16, atol=1e-6, rtol=1e-6):
            hint = "It reads the images column by column: x[t, n] should be row t, images[n, t, :]."
            bug = "columns_as_time"
        elif close(x, images.transpose(0, 1), atol=1e-6, rtol=1e-6):
            hint, bug = "The pixels are not scaled: divide by 16, so that x lies in [0, 1].", "pixels_not_scaled"
        elif close(x, images.transpose(0, 1) / 255, atol=1e-6, rtol=1e-6):
            hint, bug = "It divides by 255: these pixels go from 0 to 16, divide by 16.", "divides_by_255"
        elif close(x, images.transpose(0, 1) / images.amax(dim=(1, 2)).clamp(min=1)[None, :, None],
                   atol=1e-6, rtol=1e-6):
            hint, bug = ("It divides each image by its own maximum: divide every pixel by 16, the scale's maximum.",
                         "per_image_maximum")
        raise GradingFailure(f"x from to_sequences differs from images[n, t] / 16 by up to "
                             f"{max_abs_diff(x, want):.3g}. {hint}", bug=bug)


# --------------------------------------------------------------------------- SequenceClassifier

GATES = oracles.GATES


def _classifier(input_size, hidden_size, num_classes, **kwargs):
    cls = student("SequenceClassifier")
    args = ", ".join(map(str, (input_size, hidden_size, num_classes))) + "".join(
        f", {k}={getattr(v, '__name__', v)}" for k, v in kwargs.items())
    what = f"SequenceClassifier({args})"
    model = call(cls, input_size, hidden_size, num_classes, what=what, **kwargs)
    if not (isinstance(model, Remote) and model.is_module):
        raise GradingFailure("SequenceClassifier must subclass nn.Module.")
    return model, what


def _layer_names(k):
    return [f"rnn.layers.{k}.{kind}_{g}" for kind in "WUb" for g in GATES]


def _check_params(model, what, input_size, hidden_size, num_classes, num_layers):
    params = model.params()
    for head, shape in (("head.weight", (num_classes, hidden_size)), ("head.bias", (num_classes,))):
        if head not in params:
            raise GradingFailure(f"{what} has no parameter {head}: keep the linear head in self.head "
                                 "(nn.Linear(hidden_size, num_classes)).")
        if tuple(params[head].value.shape) != shape:
            raise GradingFailure(f"{what}: {head} has shape {tuple(params[head].value.shape)}, expected {shape} "
                                 "(nn.Linear(hidden_size, num_classes): the head reads one hidden state).")
    for k in range(num_layers):
        missing = [n for n in _layer_names(k) if n not in params]
        if missing:
            raise GradingFailure(f"{what} has no parameter {missing[0]}: keep the stack in self.rnn, built with "
                                 "rnn_class(input_size, hidden_size, num_layers=num_layers).")
    expected = {n for k in range(num_layers) for n in _layer_names(k)} | {"head.weight", "head.bias"}
    extra = sorted(set(params) - expected)
    if extra:
        raise GradingFailure(f"{what} has parameters beyond the stack's and the head's: {', '.join(extra[:3])}. "
                             "The model is self.rnn and self.head, nothing else.")
    return params


@hidden_test
def classifier_structure():
    """self.rnn is built by rnn_class with num_layers, self.head is nn.Linear(hidden_size, num_classes)."""
    lstm = student("LSTM")
    stand_in = fixture("subclass", lstm, "GradersLSTM", {})
    model, what = _classifier(5, 4, 3, num_layers=3, rnn_class=stand_in)
    rnn = model.attr("rnn")
    if not isinstance(rnn, Remote) or not rnn.isinstance(stand_in):
        raise GradingFailure(f"{what}: self.rnn is {describe(rnn)}, not built with the rnn_class it was given. "
                             "Write self.rnn = rnn_class(input_size, hidden_size, num_layers=num_layers).",
                             bug="rnn_class_ignored")
    for attr, want in (("input_size", 5), ("hidden_size", 4), ("num_layers", 3)):
        got = rnn.attr(attr)
        if got != want:
            raise GradingFailure(f"{what}: self.rnn.{attr} is {got!r}, expected {want}: pass input_size, "
                                 "hidden_size and num_layers on to rnn_class.")
    _check_params(model, what, 5, 4, 3, 3)
    model, what = _classifier(6, 2, 10)
    rnn = model.attr("rnn")
    if not isinstance(rnn, Remote) or not rnn.isinstance(lstm):
        raise GradingFailure(f"{what}: by default self.rnn should be the course's LSTM (rnn_class=LSTM).")
    if rnn.attr("num_layers") != 2:
        raise GradingFailure(f"{what}: the default is num_layers=2, got {rnn.attr('num_layers')!r}.")
    _check_params(model, what, 6, 2, 10, 2)


def _graded_classifier(inp, hid, classes, layers):
    model, what = _classifier(inp, hid, classes, num_layers=layers)
    _check_params(model, what, inp, hid, classes, layers)
    to_device(model, f"{what}.to(device, torch.float64)")
    weights = fill_uniform(model, 0.6)
    return model, what, weights


def _reference_logits(weights, x, layers, reading="h_n[-1]"):
    """The classifier in float64 from the grader's weights: the course's LSTM step, then the head."""
    steps = [oracles.Step({g: weights[f"rnn.layers.{k}.{g}"] for g in oracles.CELL_PARAMS}) for k in range(layers)]
    hid = weights["rnn.layers.0.W_f"].shape[0]
    hs = [x.new_zeros(x.shape[1], hid) for _ in range(layers)]
    cs = [x.new_zeros(x.shape[1], hid) for _ in range(layers)]
    outputs = []
    for x_t in x.unbind(0):
        for k, step in enumerate(steps):
            hs[k], cs[k] = step(x_t, hs[k], cs[k])
            x_t = hs[k]
        outputs.append(x_t)
    read = {"h_n[-1]": hs[-1], "h_n[0]": hs[0], "c_n[-1]": cs[-1], "output[0]": outputs[0],
            "output.mean(0)": torch.stack(outputs).mean(0)}[reading]
    return read @ weights["head.weight"].T + weights["head.bias"]


@hidden_test
def classifier_forward():
    """The logits are the head on the last layer's final h, against the grader's float64 reference."""
    for seq_len, batch, inp, hid, classes, layers in ((6, 3, 5, 4, 7, 2), (1, 2, 3, 2, 4, 1), (4, 1, 2, 3, 5, 3)):
        model, what, weights = _graded_classifier(inp, hid, classes, layers)
        x = torch.randn(seq_len, batch, inp, dtype=F64)
        got = call(model, x, what=f"{what}.forward(x of shape {tuple(x.shape)})")
        want = _reference_logits(weights, x, layers)
        expect_shape(got, want.shape, f"the logits of {what}", "One row of num_classes logits per sequence: (B, C).")
        if close(got, want):
            continue
        hint, bug = "The logits are head(h_n[-1]): the last layer's hidden state after the last step.", None
        alternatives = [(F.softmax(want, -1), "returns_softmax", "It returns softmax(logits): return the logits "
                         "themselves, F.cross_entropy applies the (log-)softmax."),
                        (F.log_softmax(want, -1), "returns_log_softmax",
                         "It returns log_softmax(logits): return the logits themselves.")]
        for reading, bug_id, text in (
                ("h_n[0]", "head_on_first_layer",
                 "It reads h_n[0], the FIRST layer's state: use h_n[-1], the last layer's."),
                ("c_n[-1]", "head_reads_c",
                 "It reads the cell state c_n[-1]: the head reads the hidden state h_n[-1]."),
                ("output[0]", "head_reads_first_step",
                 "It reads output[0], the state after the first step: use the last step."),
                ("output.mean(0)", "head_averages_time",
                 "It averages the outputs over time: use the last step's h only.")):
            if layers > 1 or reading != "h_n[0]":
                alternatives.append((_reference_logits(weights, x, layers, reading), bug_id, text))
        for alternative, name, text in alternatives:
            if seq_len > 1 and close(got, alternative) or (seq_len == 1 and text.startswith("It returns")
                                                           and close(got, alternative)):
                hint, bug = text, name
                break
        raise GradingFailure(f"the logits of {what} differ from the reference by up to "
                             f"{max_abs_diff(got, want):.3g}. {hint}", bug=bug)


@hidden_test
def classifier_gradients():
    """Every parameter's gradient matches autograd through the grader's float64 reference."""
    seq_len, batch, inp, hid, classes, layers = 5, 3, 4, 3, 6, 2
    model, what, weights = _graded_classifier(inp, hid, classes, layers)
    x = torch.randn(seq_len, batch, inp, dtype=F64)
    w = torch.randn(batch, classes, dtype=F64)
    leaves = {name: t.clone().requires_grad_(True) for name, t in weights.items()}
    want = _reference_logits(leaves, x, layers)
    (want * w).sum().backward()
    got = call(model, x, what=f"{what}.forward")
    if not close(got, want):
        raise GradingFailure(f"the logits of {what} already differ from the reference (see the forward test): "
                             "fix them first.")
    model.method("zero_grad", set_to_none=True, what=f"{what}.zero_grad()")
    call(model, x, what=f"{what}.forward", backward=[w], backward_what=f"backward through {what}")
    for name, param in model.params().items():
        if param.grad is None:
            raise GradingFailure(f"{name} got no gradient: does forward use it through .detach(), .data or "
                                 "torch.no_grad()?", bug="parameter_gets_no_gradient")
        expect_close(param.grad, leaves[name].grad, f"the gradient of {name}")


# --------------------------------------------------------------------------- predict, accuracy, confusion_matrix


@hidden_test
def predict_labels():
    """predict gives the argmax over the classes of the grader's model, (B,) long, without a graph."""
    fn = student("predict")
    for seq_len, batch, inp, classes in ((4, 9, 3, 5), (1, 1, 2, 3), (6, 40, 3, 10)):
        mine = TinyClassifier(inp, classes)
        model = fixture("TinyClassifier", inp, classes)
        model.load({name: p.detach() for name, p in mine.named_parameters()})
        to_device(model, "the grader's model .to(device)")
        x = torch.randn(seq_len, batch, inp, dtype=F64)
        what = f"predict(model, x of shape {tuple(x.shape)})"
        got = call(fn, model, x, what=what)
        with torch.no_grad():
            logits = mine(x)
        want = logits.argmax(-1)
        _ints(got, f"the result of {what}")
        expect_shape(got, (batch,), f"the result of {what}", "One class per sequence: the argmax over the LAST axis.")
        if got.requires_grad:
            raise GradingFailure(f"the result of {what} carries a gradient graph: compute it under torch.no_grad().")
        if not torch.equal(got.cpu().long(), want):
            hint = ""
            if batch == classes or torch.equal(got.cpu().long(), logits.argmin(-1)):
                hint = " It matches the argmin: take the LARGEST logit."
            raise GradingFailure(f"{what} gave {got.tolist()[:8]}, the argmax of the logits is "
                                 f"{want.tolist()[:8]}.{hint}")


def _written_here(name: str) -> None:
    """The evaluation cell computes ``name`` itself: scikit-learn's metrics would pass every test and teach
    nothing (checking against them in a scratch cell is fine: only the answer cell is read)."""
    cells = submitted_cells()
    uses = borrowed(cells.get("evaluation", ""), list(cells.values()), "sklearn")
    if uses:
        row, line = uses[0]
        raise GradingFailure(f"the evaluation cell uses scikit-learn (line {row}: `{line}`): write {name} "
                             "yourself, with torch; comparing with sklearn.metrics in a scratch cell is fine.",
                             bug="sklearn_metrics")


@hidden_test
def accuracy_value():
    """accuracy is the fraction of equal entries of the grader's predictions and labels, a float in [0, 1]."""
    _written_here("accuracy")
    fn = student("accuracy")
    for n, classes in ((50, 4), (7, 10), (1, 3), (200, 2)):
        labels = torch.randint(0, classes, (n,))
        predicted = torch.where(torch.rand(n) < 0.6, labels, torch.randint(0, classes, (n,)))
        what = f"accuracy(predicted, labels) for {n} examples"
        got = call(fn, predicted, labels, what=what)
        right = int((predicted == labels).sum())
        want = right / n
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if type(got) not in (float, int) or isinstance(got, bool):
            raise GradingFailure(f"{what} should return a float, got {describe(got)}.")
        if abs(got - want) <= 1e-9:
            continue
        hint, bug = "", None
        if abs(got - 100 * want) <= 1e-7:
            hint, bug = " It is a percentage: return the fraction, between 0 and 1.", "accuracy_percent"
        elif got == right:
            hint, bug = " It is the number of correct predictions: divide by the number of examples.", "accuracy_count"
        elif abs(got - (1 - want)) <= 1e-9:
            hint, bug = " It is the error rate: count the EQUAL entries.", "accuracy_is_error_rate"
        raise GradingFailure(f"{what}: expected {want:.4f} ({right} of {n} right), got {got!r}.{hint}", bug=bug)


@hidden_test
def confusion_counts():
    """M[i, j] counts true class i predicted as j, (C, C), integer, every class present even when unseen."""
    _written_here("confusion_matrix")
    fn = student("confusion_matrix")
    for n, classes, seen in ((60, 4, 4), (9, 6, 3), (1, 2, 2), (300, 10, 10)):
        labels = torch.randint(0, seen, (n,))
        predicted = torch.where(torch.rand(n) < 0.5, labels, torch.randint(0, seen, (n,)))
        what = f"confusion_matrix(predicted, labels, {classes}) for {n} examples"
        got = call(fn, predicted, labels, classes, what=what)
        want = torch.zeros(classes, classes, dtype=torch.long)
        for i, j in zip(labels.tolist(), predicted.tolist(), strict=True):
            want[i, j] += 1
        hint = "" if seen == classes else (f" Only classes 0..{seen - 1} occur here: the matrix is still "
                                           f"{classes}×{classes}, from num_classes, not from the labels seen.")
        expect_shape(got, (classes, classes), f"the result of {what}", hint.strip())
        _ints(got, f"the result of {what}")
        if torch.equal(got.cpu().long(), want):
            continue
        if torch.equal(got.cpu().long(), want.T):
            raise GradingFailure(f"{what} is transposed: rows are the TRUE classes (labels), columns the predicted.",
                                 bug="confusion_transposed")
        raise GradingFailure(f"{what}: {int((got.cpu().long() != want).sum())} entries differ from the counts; "
                             f"the total is {int(got.sum())}, expected {n} (one count per example).")


# --------------------------------------------------------------------------- vocabulary, encode

ALPHABET = list("abcdefgh \n:()_=.'\"é→0123")


def _text(n, alphabet):
    picks = torch.randint(0, len(alphabet), (n,)).tolist()
    return "".join(alphabet[k] for k in picks)


@hidden_test
def vocabulary_sorted():
    """vocabulary(text) is the sorted list of the distinct characters of the grader's texts, each once."""
    fn = student("vocabulary")
    for text in (_text(300, ALPHABET), _text(5, ALPHABET[:6]), "x", "\n\n \n"):
        what = f"vocabulary({text[:20]!r}{'...' if len(text) > 20 else ''})"
        got = call(fn, text, what=what)
        want = sorted(set(text))
        if isinstance(got, str):
            raise GradingFailure(f"{what} should return a list of one-character strings, got a str: use sorted(...), "
                                 "which returns a list.")
        if not isinstance(got, list) or not all(isinstance(ch, str) for ch in got):
            raise GradingFailure(f"{what} should return a list of one-character strings, got {describe(got)}.")
        if got == want:
            continue
        hint, bug = "", None
        if sorted(got) == want:
            hint = " It has the right characters in another order: sort them, so that a text always gives the same."
            bug = "vocabulary_unsorted"
        elif len(got) > len(set(got)):
            hint = " Some characters appear more than once: each distinct character once (set(text))."
            bug = "vocabulary_repeats"
        elif set(got) < set(want):
            missing = sorted(set(want) - set(got))[:3]
            hint = f" It misses {missing}: every character of the text, spaces and newlines too."
            bug = "vocabulary_incomplete"
        raise GradingFailure(f"{what} should be {want[:10]}..., got {got[:10]}....{hint}", bug=bug)


@hidden_test
def encode_indices():
    """encode(text, chars) gives each character's index in the grader's (unsorted) list chars, as long."""
    fn = student("encode")
    for n in (50, 1, 0):
        chars = [ALPHABET[k] for k in torch.randperm(len(ALPHABET)).tolist()]
        text = _text(n, chars)
        what = f"encode(a text of {n} characters, chars)"
        got = call(fn, text, chars, what=what)
        want = torch.tensor([chars.index(ch) for ch in text], dtype=torch.long)
        expect_shape(got, (n,), f"the result of {what}", "One index per character of the text.")
        _ints(got, f"the result of {what}")
        if torch.equal(got.cpu().long(), want):
            continue
        hint = ""
        if torch.equal(got.cpu().long(), torch.tensor([sorted(chars).index(ch) for ch in text], dtype=torch.long)):
            hint = " It gives the index in sorted(chars): use chars as it is given, in its own order."
        elif torch.equal(got.cpu().long(), torch.tensor([ord(ch) for ch in text], dtype=torch.long)):
            hint = " It gives Unicode code points (ord): give the position of the character in chars."
        elif torch.equal(got.cpu().long(), want + 1):
            hint = " It is off by one: the first character of chars has index 0."
        raise GradingFailure(f"{what} gave {got.tolist()[:8]}..., expected {want.tolist()[:8]}....{hint}")


# --------------------------------------------------------------------------- batchify, get_chunk


@hidden_test
def batchify_streams():
    """batchify lays the grader's data out as (N // B, B) streams, column b a contiguous stretch, the tail dropped."""
    fn = student("batchify")
    for n, b in ((23, 4), (10, 1), (30, 6), (7, 7)):
        data = torch.randint(0, 50, (n,)) if n != 23 else torch.arange(100, 100 + n)
        what = f"batchify(data of {n} indices, {b})"
        got = call(fn, data, b, what=what)
        length = n // b
        want = data[: length * b].reshape(b, length).T
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, length) and b != length:
            raise GradingFailure(f"{what} has shape {tuple(got.shape)}: time goes down the rows, streams across "
                                 f"the columns, ({length}, {b}). Transpose.")
        expect_shape(got, (length, b), f"the result of {what}",
                     f"L = {n} // {b} = {length} rows (the last {n - length * b} indices dropped), "
                     "one column a stream.")
        if torch.equal(got.cpu(), want):
            continue
        hint, bug = "", None
        if torch.equal(got.cpu(), data[: length * b].reshape(length, b)):
            bug = "batchify_interleaved"
            hint = (" Its columns are interleaved (data.view(-1, B)): consecutive characters land in different "
                    "columns. Column b should be data[b*L:(b+1)*L].")
        raise GradingFailure(f"{what}: column 0 is {got[:, 0].tolist()[:6]}..., expected {want[:, 0].tolist()[:6]}...."
                             f"{hint}", bug=bug)


@hidden_test
def chunk_targets():
    """get_chunk gives x = rows i..i+n-1 and y = the rows one further down, n = min(T, L - 1 - i)."""
    fn = student("get_chunk")
    length, b = 11, 3
    streams = torch.randint(0, 40, (length, b))
    for i, T in ((4, 4), (0, 4), (8, 4), (9, 5), (0, 10), (3, 1)):  # i > 0 first: y one row up shows
        n = min(T, length - 1 - i)
        what = f"get_chunk(streams of shape {tuple(streams.shape)}, {i}, {T})"
        x, y = _pair(call(fn, streams, i, T, what=what), what)
        want_x, want_y = streams[i:i + n], streams[i + 1:i + 1 + n]
        for name, got, want in (("x", x, want_x), ("y", y, want_y)):
            expect_shape(got, want.shape, f"{name} from {what}",
                         f"n = min(T, L - 1 - i) = {n} rows: the targets may not run past the last row."
                         if name == "x" or n != T else "")
        if torch.equal(x.cpu(), want_x) and torch.equal(y.cpu(), want_y):
            continue
        hint, bug = "", None
        if torch.equal(y.cpu(), want_x):
            hint = " y equals x: the target of each character is the NEXT one, one row down."
            bug = "targets_not_shifted"
        elif i >= 1 and torch.equal(y.cpu(), streams[i - 1:i - 1 + n]):
            hint = " y is one row UP: the target is the character that follows, streams[i + 1 : i + 1 + n]."
            bug = "targets_shifted_up"
        raise GradingFailure(f"{what}: x or y differs from streams[i : i + n] and streams[i + 1 : i + 1 + n].{hint}",
                             bug=bug)


# --------------------------------------------------------------------------- train_tbptt

TBPTT_CHARS = list("abcdef")


def _char_model(hidden=4, on=None):
    """The grader's character model here, and the same weights in the kernel's copy (on the grading device)."""
    mine = TinyCharModel(TBPTT_CHARS, hidden)
    model = fixture("TinyCharModel", TBPTT_CHARS, hidden)
    model.load({name: p.detach() for name, p in mine.named_parameters()})
    if on is None:
        to_device(model, "the grader's model .to(device)")
    return mine, model


def _chunks(lengths, b):
    return [(torch.randint(0, len(TBPTT_CHARS), (t, b)), torch.randint(0, len(TBPTT_CHARS), (t, b)))
            for t in lengths]


def _loss(logits, y):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _simulate(mine, chunks, lr, state, carry=True, reduction="mean"):
    """TBPTT on the grader's copy with plain SGD: (losses, the final state, the last chunk's gradients, the
    weights after the last step, d loss_0 / d state or None)."""
    params = dict(mine.named_parameters())
    with torch.no_grad():
        params = {n: p.detach().clone() for n, p in params.items()}
    losses, grads, first = [], None, None
    incoming = state
    for k, (x, y) in enumerate(chunks):
        leaves = {n: p.clone().requires_grad_(True) for n, p in params.items()}
        start = incoming if carry or k == 0 else None
        if start is not None and k > 0:
            start = tuple(s.detach() for s in start)
        logits, out = torch.func.functional_call(mine, leaves, (x, start))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction=reduction)
        wrt = list(leaves.values()) + ([s for s in start if s.requires_grad] if k == 0 and start is not None else [])
        g = torch.autograd.grad(loss, wrt)
        grads = dict(zip(leaves, g[:len(leaves)], strict=True))
        if k == 0 and len(g) > len(leaves):
            first = g[len(leaves):]
        with torch.no_grad():
            params = {n: p - lr * grads[n] for n, p in params.items()}
        losses.append(loss.item())
        incoming = tuple(s.detach() for s in out)
    return losses, incoming, grads, params, first


def _run_tbptt(model, chunks, lr, state, what):
    fn = student("train_tbptt")
    optimizer = fixture("sgd", model, lr)
    try:
        out, grads = call(fn, model, chunks, optimizer, state, what=what, backward=[])
    except GradingFailure as failure:
        text = str(failure)
        if "second time" in text or "inplace operation" in text:
            raise GradingFailure(f"{what}: a backward reached into an earlier chunk's graph ({text[len(what):][:140]}"
                                 "...). Detach the state before each chunk: state = tuple(s.detach() for s in "
                                 "state).", bug="state_not_detached") from None
        raise
    losses, final = _pair(out, what, "(losses, state)")
    if not isinstance(losses, list) or len(losses) != len(chunks):
        raise GradingFailure(f"{what} should return a list of {len(chunks)} losses (one per chunk) as its first "
                             f"element, got {describe(losses)}.")
    if not all(type(v) in (float, int) for v in losses):
        raise GradingFailure(f"the losses from {what} should be Python floats (loss.item()), got "
                             f"{describe(losses[0])}.")
    return losses, final, grads


def _state(b, hidden, grad=False):
    h = torch.randn(1, b, hidden, dtype=F64) * 0.5
    c = torch.randn(1, b, hidden, dtype=F64) * 0.5
    return (h.requires_grad_(grad), c.requires_grad_(grad))


@hidden_test
def tbptt_updates():
    """The losses and the updated weights match the grader's own TBPTT (its model, chunks, SGD, state)."""
    hidden, b, lr = 4, 3, 0.5
    for lengths, with_state in (((5, 5, 3), True), ((4, 2), False)):
        mine, model = _char_model(hidden)
        chunks = _chunks(lengths, b)
        state = _state(b, hidden) if with_state else None
        what = f"train_tbptt(model, {len(chunks)} chunks of {list(lengths)} rows, SGD(lr={lr}), " + (
            "a state (h, c))" if with_state else "state=None)")
        losses, _, _ = _run_tbptt(model, chunks, lr, state, what)
        want, _, _, params, _ = _simulate(mine, chunks, lr, state)
        got_params = {n: p.value for n, p in model.params().items()}
        same_losses = all(abs(g - w) <= 1e-7 * max(1, abs(w)) for g, w in zip(losses, want, strict=True))
        same_params = all(close(got_params[n], params[n], atol=1e-8, rtol=1e-6) for n in params)
        if same_losses and same_params:
            continue
        hint = ("Each chunk: detach the state, logits, state = model(x, state), the mean cross-entropy, "
                "optimizer.zero_grad(), loss.backward(), optimizer.step().")
        bug = None
        if abs(losses[0] - want[0]) > 1e-7 * max(1, abs(want[0])):
            total, *_ = _simulate(mine, chunks[:1], lr, state, reduction="sum")
            if abs(losses[0] - total[0]) <= 1e-7 * max(1, total[0]):
                hint = "The loss is the SUM of the cross-entropies: take their mean (F.cross_entropy's default)."
                bug = "loss_summed"
            elif with_state:
                fresh, *_ = _simulate(mine, chunks[:1], lr, None)
                if abs(losses[0] - fresh[0]) <= 1e-7 * max(1, fresh[0]):
                    hint, bug = "The first chunk ignores the state it was given: start from `state`.", "state_ignored"
        else:
            reset, *_ = _simulate(mine, chunks, lr, state, carry=False)
            if all(abs(g - w) <= 1e-7 * max(1, abs(w)) for g, w in zip(losses, reset, strict=True)):
                hint = ("Every chunk starts from a zero state: carry the state from one chunk to the next "
                        "(detached), so that each stream reads as one long text.")
                bug = "state_not_carried"
        raise GradingFailure(f"{what}: the losses {[round(v, 4) for v in losses]} or the updated weights differ "
                             f"from the grader's TBPTT (losses {[round(v, 4) for v in want]}). {hint}", bug=bug)


@hidden_test
def tbptt_boundary():
    """No gradient crosses a chunk boundary: the weights' last gradients are the last chunk's loss's alone.

    The given state's gradient, if it gets one, is the first chunk's loss's alone.
    """
    hidden, b = 4, 2
    mine, model = _char_model(hidden)
    chunks = _chunks((3, 4, 2), b)
    state = _state(b, hidden, grad=True)
    what = "train_tbptt(model, 3 chunks, SGD(lr=0), a state (h, c) that requires grad)"
    _, final, grads = _run_tbptt(model, chunks, 0.0, state, what)
    _, incoming, last_grads, _, first = _simulate(mine, chunks, 0.0, state)
    for name, param in model.params().items():
        if param.grad is None:
            raise GradingFailure(f"{what}: after the call, the model's {name} has no gradient: call loss.backward() "
                                 "for every chunk.")
        if not close(param.grad, last_grads[name], atol=1e-9, rtol=1e-6):
            hint, bug = "", None
            _, _, reset_grads, _, _ = _simulate(mine, chunks, 0.0, state, carry=False)
            summed = sum(_simulate(mine, chunks[:k + 1], 0.0, state)[2][name] for k in range(len(chunks)))
            size = chunks[-1][1].numel()
            if close(param.grad, last_grads[name] * size, atol=1e-9, rtol=1e-6):
                hint, bug = " It is the gradient of the SUM of the cross-entropies: take their mean.", "loss_summed"
            elif close(param.grad, summed, atol=1e-9, rtol=1e-6):
                hint = " It is the sum over all chunks: call optimizer.zero_grad() before every backward."
                bug = "gradients_accumulate"
            elif close(param.grad, reset_grads[name], atol=1e-9, rtol=1e-6):
                hint = " It is the last chunk's gradient from a zero state: carry the state over (detached)."
                bug = "state_not_carried"
            raise GradingFailure(f"{what}: after the call, the gradient of {name} is not the last chunk's loss's "
                                 "alone, from the carried (detached) state: some gradient crossed a chunk boundary "
                                 f"or accumulated.{hint}", bug=bug)
    for name, got, want in zip(("h", "c"), grads[:2], first or (None, None), strict=True):
        if got is None:
            continue  # the state was detached before the first chunk too: also no gradient across a boundary
        if want is None or not close(got, want, atol=1e-9, rtol=1e-6):
            raise GradingFailure(f"{what}: the gradient that reached the given {name} is not the first chunk's "
                                 "loss's alone: later chunks' losses reached back across a boundary. Detach the "
                                 "state before each chunk.", bug="state_not_detached")
    if not (isinstance(final, tuple) and len(final) == 2):
        raise GradingFailure(f"{what} should return the last state (h, c) as its second element, got "
                             f"{describe(final)}.")
    for name, got, want in zip(("h", "c"), final, incoming, strict=True):
        expect_close(got, want, f"the returned state's {name}",
                     "Return the state the last chunk ended with (the carried state, not the one given).")


# --------------------------------------------------------------------------- sample

SAMPLE_CHARS = list("ab (:\n")


def _sample_model(hidden=5, scale=1.0):
    mine = TinyCharModel(SAMPLE_CHARS, hidden)
    with torch.no_grad():
        mine.out.mul_(scale)
    model = fixture("TinyCharModel", SAMPLE_CHARS, hidden)
    model.load({name: p.detach() for name, p in mine.named_parameters()})
    return mine, model  # on the CPU: the student's sample builds its index tensors on the CPU


def _sample(model, prefix, n, temperature, seed, what=None):
    generator = None if seed is None else fixture("generator", seed)
    what = what or f"sample(model, {prefix!r}, {n}, temperature={temperature}, generator)"
    got = call(student("sample"), model, prefix, n, temperature, generator, what=what, on=torch.device("cpu"))
    if not isinstance(got, str):
        raise GradingFailure(f"{what} should return a str of {n} characters, got {describe(got)}.")
    if len(got) == len(prefix) + n and got.startswith(prefix) and n:
        raise GradingFailure(f"{what} returned the prefix too: return only the {n} new characters.")
    if len(got) != n:
        raise GradingFailure(f"{what} returned {len(got)} characters, expected {n}.")
    bad = sorted(set(got) - set(SAMPLE_CHARS))
    if bad:
        raise GradingFailure(f"{what} returned characters that are not in model.chars: {bad[:3]}.")
    return got


def _logits_along(mine, text):
    """The grader's model's logits after each character of text (teacher forcing), (len(text), V)."""
    index = {ch: k for k, ch in enumerate(mine.chars)}
    x = torch.tensor([[index[ch]] for ch in text], dtype=torch.long)
    with torch.no_grad():
        logits, _ = mine(x)
    return logits[:, 0]


@hidden_test
def sample_greedy():
    """temperature=0 follows the argmax of the grader's model from the prefix, the state carried along."""
    for prefix, n in (("ab(", 25), ("\n", 12), ("a", 1), ("b:", 0)):
        mine, model = _sample_model()
        got = _sample(model, prefix, n, 0, None if n % 2 else 3)
        text = prefix
        for _ in range(n):
            text += mine.chars[_logits_along(mine, text)[-1].argmax().item()]
        want = text[len(prefix):]
        if got == want:
            continue
        k = next(j for j in range(n) if got[j] != want[j])
        hint = ""
        first = mine.chars[_logits_along(mine, prefix)[-1].argmax().item()]
        if got == first * n and want != first * n:
            hint = " It repeats the first choice: feed each chosen character back in (and carry the state)."
        elif k == 0:
            hint = " The first character is already wrong: run the model over the whole prefix first, then read " \
                   "the logits after its LAST character."
        raise GradingFailure(f"sample(model, {prefix!r}, {n}, temperature=0) should be greedy, {want!r}; got {got!r} "
                             f"(first difference at character {k}).{hint}")


def _z_scores(mine, prefix, text, temperature):
    """How far the counts of each character in text, and the count of steps that drew the model's top choice, are
    from what softmax(logits / τ) of the grader's model expects along the way, in standard deviations (martingales:
    about N(0, 1) each for a correct sampler). A wrong τ sharpens or flattens every step the same way, so the top
    choice's count drifts even where the characters' counts cancel out."""
    logits = _logits_along(mine, prefix + text)[len(prefix) - 1:-1]
    p = F.softmax(logits / temperature, dim=-1)
    index = {ch: k for k, ch in enumerate(mine.chars)}
    drawn = torch.tensor([index[ch] for ch in text])
    top = p.argmax(-1, keepdim=True)
    # one column a character, and one more: "drew the top choice"
    observed = torch.cat([F.one_hot(drawn, len(mine.chars)), drawn[:, None] == top], 1).to(F64)
    p = torch.cat([p, p.gather(1, top)], 1)
    spread = (p * (1 - p)).sum(0).clamp(min=1e-9).sqrt()
    return ((observed - p).sum(0) / spread).abs().max().item()


@hidden_test
def sample_temperature():
    """Each character is drawn from softmax(logits / τ) of the grader's model, for several τ.

    3000 characters at τ = 1, 0.6 and 2 tell τ from 1, 1/τ and τ²: τ² was caught in 240 of 240 random models (the
    characters' counts alone missed it in 11), a correct sampler at most 3.6 standard deviations off."""
    n = 3000
    for temperature in (1.0, 0.6, 2.0):
        mine, model = _sample_model(scale=1.5)
        seed = int(torch.randint(0, 2**31, ()))
        got = _sample(model, "a(", n, temperature, seed)
        z = _z_scores(mine, "a(", got, temperature)
        if z < 5.5:
            continue
        hint = "Draw with torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=generator)."
        bug = None
        # The mistake named is the one whose temperature fits the text best, not the first that fits at all:
        # at τ = 0.6, τ = 1 and τ² = 0.36 can both be within reach of the text.
        fits = []
        for other, bug_id, text in (
                (1.0, "temperature_ignored",
                 "It samples at temperature 1 whatever τ is: divide the logits by the temperature."),
                (1 / temperature, "temperature_multiplies", "It multiplies the logits by τ: divide them by τ."),
                (temperature ** 2, "temperature_squared",
                 "It looks like τ² (softmax(logits / τ) applied twice?): divide once.")):
            if other != temperature:
                fits.append((_z_scores(mine, "a(", got, other), bug_id, text))
        best = min(fits)
        if best[0] < 5.5:
            _, bug, hint = best
        raise GradingFailure(f"{n} characters drawn at temperature {temperature} are {z:.1f} standard deviations "
                             f"from what softmax(logits / {temperature}) of the grader's model predicts. {hint}",
                             bug=bug)


@hidden_test
def sample_generator():
    """The same generator seed gives the same text, another seed another text."""
    mine, model = _sample_model()
    one = _sample(model, "ab", 60, 1.0, 11)
    two = _sample(model, "ab", 60, 1.0, 11)
    if one != two:
        raise GradingFailure("two generators with the same seed gave different texts: pass generator=generator to "
                             "torch.multinomial (and draw nothing else at random).", bug="generator_ignored")
    three = _sample(model, "ab", 60, 1.0, 12)
    if three == one:
        raise GradingFailure("generators with different seeds gave the same text at temperature 1: draw with the "
                             "generator you are given.", bug="generator_ignored")
