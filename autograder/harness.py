"""What every hidden test shares: failures a student can read, calls into student code, comparisons.

A hidden test is a function decorated with ``@hidden_test``. It finds the student's names in the
notebook, calls them through ``call`` (which blocks ready-made LSTMs and turns the student's own
exceptions into a message that points at their line), compares with an oracle through
``expect_close``/``expect_shape``, and raises ``GradingFailure`` with words a student can act on.
Only the message reaches the notebook: the traceback, and with it the test's source, stays hidden.
"""

import contextlib
import functools
import os
import sys
import traceback
import warnings

import torch

DEVICE_ENV = "LSTM_COURSE_DEVICE"
SEED = 20261121

# Captured at import, before student code can replace them in a grading kernel.
_allclose = torch.allclose
_isfinite = torch.isfinite
_Tensor = torch.Tensor
_no_subclass_overrides = torch._C.DisableTorchFunctionSubclass
# In a grading kernel the guard (autograder/guard.py) imports this module before any cell runs and
# listens for these audit events; anywhere else they do nothing.
_audit = sys.audit
_CHECKPOINT, _PASS, _REPORT = "lstm_course.checkpoint", "lstm_course.pass", "lstm_course.report"
_replaced = []  # (owner, attr, value) the grader itself has put in place right now


class GradingFailure(AssertionError):
    """A hidden test failed; the message is all the student sees."""

    def _render_traceback_(self):  # IPython shows this instead of a traceback
        return [f"\x1b[0;31mGradingFailure\x1b[0m: {self}"]


class ReadyMadeLSTMUsed(GradingFailure):
    pass


class GraderTampering(GradingFailure):
    """Student code changed something the hidden tests rely on (raised by the grading kernel's guard)."""


def device() -> torch.device:
    name = os.environ.get(DEVICE_ENV, "cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GradingFailure(f"{DEVICE_ENV}={name} but this kernel sees no CUDA device.")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return dev


def user_namespace() -> dict:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - always present in a kernel
        shell = None
    if shell is not None:
        return shell.user_ns
    return sys.modules["__main__"].__dict__


def student(name: str, namespace: dict | None = None):
    ns = user_namespace() if namespace is None else namespace
    if name not in ns:
        raise GradingFailure(
            f"`{name}` is not defined. Run the cell that defines it, and keep the name exactly `{name}`."
        )
    return ns[name]


def hidden_test(fn):
    """Run a check quietly and reproducibly; anything but a GradingFailure becomes one."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        torch.manual_seed(SEED)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                _audit(_CHECKPOINT, fn.__name__)  # undo (and fail on) changes student code made to torch & co
                result = fn(*args, **kwargs)
                _audit(_PASS, fn.__name__)  # the guard signs a pass only for this wrapper and a real check
            except GradingFailure:
                raise
            except Exception as err:  # a bug in the check itself, or a student object it choked on
                raise GradingFailure(
                    f"the grader could not finish this test ({type(err).__name__}: {err})."
                    f"{_student_line(err)}"
                ) from None
        print(f"\u2713 {fn.__doc__.strip().splitlines()[0] if fn.__doc__ else fn.__name__}")
        return result

    return wrapper


# --------------------------------------------------------------------------- ready-made LSTMs


def _ready_made_targets():
    import torch.nn as nn

    targets = [
        (nn.LSTM, "forward"),
        (nn.LSTMCell, "forward"),
        (torch, "lstm"),
        (torch, "lstm_cell"),
        (torch._VF, "lstm"),
        (torch._VF, "lstm_cell"),
    ]
    return [(owner, attr) for owner, attr in targets if hasattr(owner, attr)]


@contextlib.contextmanager
def ready_made_lstm_blocked():
    """Inside, any ready-made LSTM raises: the student's classes must do the recurrence themselves."""
    used = []

    def make_blocker(name):
        def blocker(*args, **kwargs):
            used.append(name)
            raise ReadyMadeLSTMUsed(
                f"your code calls {name}. Write the recurrence yourself: PyTorch's LSTM is the oracle the "
                "grader compares with, not a building block."
            )

        return blocker

    saved = []
    for owner, attr in _ready_made_targets():
        saved.append((owner, attr, owner.__dict__.get(attr, None), attr in owner.__dict__))
        label = getattr(owner, "__name__", type(owner).__name__)
        blocker = make_blocker(f"{label}.{attr}")
        setattr(owner, attr, blocker)
        _replaced.append((owner, attr, blocker))
    mode = _ReadyMadeLSTMMode(used)  # also catches references to torch's LSTM taken before the test
    try:
        with mode:
            yield used
    finally:
        for owner, attr, value, had in reversed(saved):
            _replaced.pop()
            if had:
                setattr(owner, attr, value)
            else:
                delattr(owner, attr)
        if used:
            _audit(_REPORT, "ready-made LSTM", used[0])  # for the instructor's grading log
    if used:
        raise ReadyMadeLSTMUsed(
            f"your code calls {used[0]}. Write the recurrence yourself: PyTorch's LSTM is the oracle, "
            "not a building block."
        )


_READY_MADE_OPS = frozenset({"lstm", "lstm_cell", "_thnn_fused_lstm_cell", "mkldnn_rnn_layer", "_cudnn_rnn",
                             "miopen_rnn", "quantized_lstm", "quantized_lstm_cell", "_lstm_mps"})


class _ReadyMadeLSTMMode(torch.overrides.TorchFunctionMode):
    """Sees every torch function student code calls, however it got hold of it."""

    def __init__(self, used):
        super().__init__()
        self.used = used

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "").split(".")[0]
        if name in _READY_MADE_OPS:
            self.used.append(f"torch's {name}")
            raise ReadyMadeLSTMUsed(
                f"your code calls torch's {name}. Write the recurrence yourself: PyTorch's LSTM is the oracle "
                "the grader compares with, not a building block."
            )
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def attributes_replaced(replacements):
    """Temporarily set ``owner.attr = value`` for each ``(owner, attr, value)``."""
    # A class attribute it only inherits (Tensor.sigmoid comes from TensorBase) is deleted afterwards, not
    # copied into the class: the grading kernel's guard would see a change to torch.Tensor.
    saved = [(owner, attr, getattr(owner, attr), not isinstance(owner, type) or attr in owner.__dict__)
             for owner, attr, _ in replacements]
    for owner, attr, value in replacements:
        setattr(owner, attr, value)
        _replaced.append((owner, attr, value))
    try:
        yield
    finally:
        for owner, attr, value, own in reversed(saved):
            _replaced.pop()
            if own:
                setattr(owner, attr, value)
            else:
                delattr(owner, attr)


# --------------------------------------------------------------------------- calling student code


def _student_line(err: BaseException) -> str:
    """' (your line N: `code`)' for the innermost frame of the traceback that is notebook code."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if _is_notebook_file(f.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    code = (frame.line or "").strip()
    return f" It happened in your code, in `{frame.name}`: `{code}`." if code else ""


def _is_notebook_file(filename: str) -> bool:
    return filename.startswith("<ipython-input") or "ipykernel_" in filename or filename.startswith("<cell")


def call(fn, *args, what: str, **kwargs):
    """Call student code with ready-made LSTMs blocked; explain any exception it raises."""
    try:
        with ready_made_lstm_blocked():
            result = fn(*args, **kwargs)
            _audit(_CHECKPOINT, what, tuple(_replaced))  # what the student's call changed, it gives back
        return _plain_values(result)
    except GradingFailure:
        raise
    except NotImplementedError:
        raise GradingFailure(f"{what} raised NotImplementedError: replace the `raise` with your code.") from None
    except Exception as err:
        raise GradingFailure(
            f"{what} raised {type(err).__name__}: {err}.{_student_line(err)}{_likely_cause(err)}"
        ) from None


def _likely_cause(err: Exception) -> str:
    text = str(err)
    if "cannot be multiplied" in text or "size of tensor a" in text:
        return (" Likely cause: a matrix multiplies the wrong vector. W_* (hidden, hidden) multiplies h and "
                "U_* (hidden, input) multiplies x; a batch is row-major, so write h @ W.T + x @ U.T.")
    if "dtype" in text or "same device" in text or "Expected all tensors" in text:
        return (" Likely cause: a tensor created with a fixed dtype or device. Create states like the input "
                "(x.new_zeros(...)) so that float64 and CUDA inputs work.")
    return ""


# --------------------------------------------------------------------------- comparisons


def _is_tensor(value) -> bool:
    return issubclass(type(value), _Tensor)  # type(), unlike isinstance, cannot be fooled by __class__


def _plain(value):
    """A tensor subclass seen as a plain tensor (same data and autograd graph, none of its overrides)."""
    if type(value) is _Tensor or not _is_tensor(value) or type(value) is torch.nn.Parameter:
        return value
    with _no_subclass_overrides():
        return _Tensor.as_subclass(value, _Tensor)


def _plain_values(value):
    if type(value) in (tuple, list):
        return type(value)(_plain(v) for v in value)
    return _plain(value)


def shape_of(value) -> str:
    return str(tuple(value.shape)) if _is_tensor(value) else type(value).__name__


def expect_tensor(value, what: str):
    if not _is_tensor(value):
        raise GradingFailure(f"{what} should be a torch.Tensor, got {type(value).__name__}.")


def expect_shape(value, shape, what: str, hint: str = ""):
    expect_tensor(value, what)
    value = _plain(value)
    if tuple(value.shape) != tuple(shape):
        raise GradingFailure(
            f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}." + (f" {hint}" if hint else "")
        )


def max_abs_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = _plain(got), _plain(want)
    return (got.detach().to("cpu", torch.float64) - want.detach().to("cpu", torch.float64)).abs().max().item()


def close(got, want, atol=1e-9, rtol=1e-7) -> bool:
    if not _is_tensor(got) or tuple(_plain(got).shape) != tuple(want.shape):
        return False
    got, want = _plain(got), _plain(want)
    g = got.detach().to("cpu", torch.float64)
    w = want.detach().to("cpu", torch.float64)
    return bool(_isfinite(g).all()) and bool(_allclose(g, w, atol=atol, rtol=rtol))


def expect_close(got, want, what: str, hint: str = "", atol=1e-9, rtol=1e-7):
    expect_shape(got, want.shape, what)
    got = _plain(got)
    if not bool(_isfinite(got.detach()).all()):
        raise GradingFailure(f"{what} contains NaN or inf." + (f" {hint}" if hint else ""))
    if not close(got, want, atol=atol, rtol=rtol):
        raise GradingFailure(
            f"{what} differs from the reference by up to {max_abs_diff(got, want):.3g}."
            + (f" {hint}" if hint else "")
        )
