"""What every hidden test shares. The tests run in the grader's process, never in the student's kernel.

A hidden test (``@hidden_test``) finds the student's names through the probe (``student``), calls their
code on inputs it drew itself (``call``), gets plain numbers back, and compares them with its own float64
references (``expect_close``, ``close``). Student objects stay in the kernel as ``Remote`` handles; what
comes back are tensors on this side. A failure is a ``GradingFailure`` whose message is all the student
sees.

Every failure carries a stable *bug id* (``GradingFailure.bug``), set where it is raised, on this side only: a
mistake the check names (``bug="no_tanh_on_c"``) or, for a failure with no specific diagnosis, the check's
own name. ``hidden_test`` prefixes the checks module, so ids read ``lstm_cell.no_tanh_on_c`` and
``lstm_cell.cell_forward``; the executor logs them per student and cell for the class report. Nothing the
kernel sends is turned into an id: at most its reply picks one of the grader's own fixed ids.
"""

import functools
import hashlib
import secrets
import sys
import warnings
from dataclasses import dataclass

import torch

from ..kernel import wire
from ..settings import load as load_settings
from .link import ExchangeFailed, LocalLink, current, using

_settings = load_settings()
# LSTM_GRADER_SEED reproduces a grading run's inputs; by default every run draws fresh ones
_run_seed = _settings.grader_seed or secrets.randbits(62)


class GradingFailure(AssertionError):
    """A hidden test failed; the message is all the student sees, ``bug`` the mistake's stable id.

    ``named``: the check diagnosed a specific mistake (False: ``bug`` only says which check failed, or that
    there was no answer to check).
    """

    raised: dict | None = None  # what the student's code raised, as the probe described it
    bug: str | None = None
    named: bool = False

    def __init__(self, message: str = "", bug: str | None = None, named: bool = True):
        super().__init__(message)
        if bug:
            self.bug, self.named = bug, named

    def reworded(self, message: str, bug: str | None = None) -> "GradingFailure":
        """The same verdict, said better (a hint added): it keeps this failure's bug id unless given a more
        specific one, and what the student's code raised."""
        failure = type(self)(message)
        failure.bug, failure.named = (bug, True) if bug else (self.bug, self.named)
        failure.raised = self.raised
        return failure

    def _render_traceback_(self):  # IPython shows this instead of a traceback
        return [f"\x1b[0;31mGradingFailure\x1b[0m: {self}"]


class ReadyMadeLSTMUsed(GradingFailure):
    def __init__(self, message: str = "", bug: str | None = "ready_made_lstm"):
        super().__init__(message, bug)


def check_module(fn) -> str:
    """The checks module a hidden test lives in, as bug ids name it: ``lstm_cell``."""
    return fn.__module__.rsplit(".", 1)[-1]


def qualify(failure: GradingFailure, module: str, test: str) -> GradingFailure:
    """Give ``failure`` its full bug id: ``module.bug``, or ``module.test`` when no mistake was named."""
    if not failure.bug or "." not in failure.bug:
        failure.bug = f"{module}.{failure.bug or test}"
    return failure


def device() -> torch.device:
    """Where the student's code runs (``DEVICE=cuda`` grades on the GPU); references stay on this side's CPU."""
    return torch.device(_settings.device)


def _seed(name: str, purpose: str) -> int:
    digest = hashlib.sha256(f"{_run_seed}:{purpose}:{name}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def user_namespace() -> dict:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover
        shell = None
    return shell.user_ns if shell is not None else sys.modules["__main__"].__dict__


def hidden_test(fn):
    """Run a check with fresh inputs; anything but a GradingFailure (or a broken exchange) becomes one."""

    @functools.wraps(fn)
    def wrapper():
        link = current()
        local = link is None
        with using(LocalLink(user_namespace()) if local else link):
            exchange({"op": "begin", "seed": _seed(fn.__name__, "kernel")})
            torch.manual_seed(_seed(fn.__name__, "inputs"))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    fn()
                except GradingFailure as failure:
                    qualify(failure, check_module(fn), fn.__name__)
                    raise
                except ExchangeFailed:
                    raise
                except Exception as err:  # a bug in the check, or an answer it choked on
                    raise qualify(GradingFailure(
                        f"the grader could not finish this test ({type(err).__name__}: {err})."),
                        check_module(fn), fn.__name__) from None
        if local:
            print(passed_line(wrapper))

    wrapper.hidden_test = True
    return wrapper


def passed_line(test) -> str:
    doc = (test.__doc__ or "").strip()
    return f"\u2713 {doc.splitlines()[0] if doc else test.__name__}"


# --------------------------------------------------------------------------- exchanges


def exchange(request: dict) -> dict:
    reply = current().exchange(request)
    if "probe_error" in reply:
        raise GradingFailure(f"the grader could not run this test in your kernel ({str(reply['probe_error'])[:300]}).",
                             bug="probe_error")
    return reply


def value_of(reply: dict):
    return wire.decode(reply.get("value"), handle=Remote)


def _encode_arg(value, on):
    def handle_of(v):
        if isinstance(v, Remote):
            return {"$h": v.key}
        raise wire.WireError(f"a {type(v).__name__} cannot be sent to the kernel")

    def tensor(t):
        return wire.encode_tensor(t, device=str(on), grad=bool(t.requires_grad))

    return wire.encode(value, handle_of, tensor=tensor)


@dataclass
class Param:
    """One of an object's parameters as the kernel reported it."""

    name: str
    value: torch.Tensor
    grad: torch.Tensor | None
    ident: int
    is_parameter: bool


class Remote:
    """An object that stays in the kernel (a student's class, function, module; or one the grader made)."""

    def __init__(self, spec: dict):
        self.key = spec["$h"]
        self.type_name = str(spec.get("type", "?"))
        self.__name__ = str(spec.get("name") or self.type_name)
        self.is_type = bool(spec.get("is_type"))
        self.is_module = bool(spec.get("is_module"))
        self.module_class = bool(spec.get("module_class"))
        self.callable = bool(spec.get("callable"))
        self.length = spec.get("length") if type(spec.get("length")) is int else None

    def __repr__(self):
        return f"<{self.__name__}>" if self.is_type else f"<{self.type_name} object>"

    def __eq__(self, other):
        return isinstance(other, Remote) and other.key == self.key

    def __hash__(self):
        return hash(self.key)

    def attr(self, name: str, default=None):
        """``getattr(obj, name, default)``; a property that raises fails the test with the student's error."""
        reply = exchange({"op": "attr", "h": self.key, "name": name})
        if reply.get("missing"):
            return default
        if "raised" in reply:
            raise student_failure(reply["raised"], f"reading {name}")
        return value_of(reply)

    def has(self, name: str) -> bool:
        return exchange({"op": "attr", "h": self.key, "name": name}).get("missing") is not True

    def type(self) -> "Remote":
        return value_of(exchange({"op": "type", "h": self.key}))

    def isinstance(self, cls: "Remote") -> bool:
        return isinstance(cls, Remote) and exchange(
            {"op": "relation", "kind": "isinstance", "h": self.key, "other": cls.key}).get("value") is True

    def issubclass(self, cls: "Remote") -> bool:
        return isinstance(cls, Remote) and exchange(
            {"op": "relation", "kind": "issubclass", "h": self.key, "other": cls.key}).get("value") is True

    def params(self) -> dict[str, Param]:
        """``named_parameters()``, values and gradients as tensors on this side."""
        listed = value_of(exchange({"op": "params", "h": self.key}))
        return {p["name"]: Param(p["name"], p["value"], p["grad"], p["ident"], p["is_parameter"]) for p in listed}

    def load(self, values: dict[str, torch.Tensor]) -> list[str]:
        """Copy values into the parameters of those names, in place; returns the names it did not find."""
        return value_of(exchange({"op": "load", "h": self.key, "values": _encode_arg(values, "cpu")}))

    def method(self, name: str, *args, what: str, **kwargs):
        fn = self.attr(name)
        if not isinstance(fn, Remote):
            raise GradingFailure(f"{what}: {name} is not a method.")
        return call(fn, *args, what=what, **kwargs)

    def item(self, index: int, what: str = "indexing"):
        return self.method("__getitem__", index, what=what)


def student(name: str):
    """The notebook's ``name`` (a Remote, or plain data)."""
    reply = exchange({"op": "lookup", "name": name})
    if reply.get("missing"):
        raise GradingFailure(
            f"`{name}` is not defined. Run the cell that defines it, and keep the name exactly `{name}`.",
            bug="not_defined", named=False)
    return value_of(reply)


def submitted_cells() -> dict[str, str]:
    """The student's cells as submitted (``Link.submitted``): grader-side text, for the scans of ``scan``."""
    link = current()
    return link.submitted() if link is not None else {}


def fixture(name: str, *args, **kwargs) -> Remote:
    """A grader-made object in the kernel (``autograder.kernel.fixtures.MAKERS``)."""
    return value_of(exchange({"op": "fixture", "name": name, "args": _encode_arg(list(args), "cpu"),
                              "kwargs": _encode_arg(kwargs, "cpu")}))


# --------------------------------------------------------------------------- calling student code


READY_MADE_ADVICE = ("Write the recurrence yourself: PyTorch's LSTM is the oracle the grader compares with, "
                     "not a building block.")


def _student_line(raised: dict) -> str:
    line = raised.get("line")
    if isinstance(line, dict) and line.get("code"):
        return f" It happened in your code, in `{str(line.get('function'))[:80]}`: `{str(line['code'])[:200]}`."
    return ""


def _likely_cause(text: str) -> str:
    if "cannot be multiplied" in text or "size of tensor a" in text:
        return (" Likely cause: a matrix multiplies the wrong vector. W_* (hidden, hidden) multiplies h and "
                "U_* (hidden, input) multiplies x; a batch is row-major, so write h @ W.T + x @ U.T.")
    if "dtype" in text or "same device" in text or "Expected all tensors" in text:
        return (" Likely cause: a tensor created with a fixed dtype or device. Create states like the input "
                "(x.new_zeros(...)) so that float64 and CUDA inputs work.")
    return ""


def student_failure(raised: dict, what: str, forbid: dict | None = None) -> GradingFailure:
    """The GradingFailure for an exception the student's code raised (as the probe described it)."""
    kind, message = raised.get("kind"), str(raised.get("message", ""))
    if kind == "ready-made":
        used = (raised.get("used") or ["torch's LSTM"])[0]
        failure = ReadyMadeLSTMUsed(f"your code calls {used}. {READY_MADE_ADVICE}")
    elif kind == "forbidden" and forbid and raised.get("rule") in forbid:
        rule = next(r for r in forbid if r == raised["rule"])  # the grader's own string, not the kernel's
        failure = GradingFailure(forbid[rule], bug=f"forbidden_{rule}")
    elif kind == "not-implemented":
        failure = GradingFailure(f"{what} raised NotImplementedError: replace the `raise` with your code.",
                                 bug="not_implemented", named=False)
    else:
        failure = GradingFailure(f"{what} raised {raised.get('type', 'an exception')}: {message}."
                                 f"{_student_line(raised)}{_likely_cause(message)}")
    failure.raised = raised
    return failure


def call(fn, *args, what: str, backward=None, backward_what: str | None = None, forbid: dict | None = None,
         good_sigmoid=None, on=None, report: dict | None = None, **kwargs):
    """Call student code in the kernel, ready-made LSTMs blocked; tensors go to the grading device.

    ``backward``: weights, one per tensor of the result (depth first, None to skip): the kernel then runs
    backward on the sum of (tensor * weight).sum() and the call returns (result, gradients of the tensor
    arguments, depth first through tuples and lists; None where one does not require grad or got none).
    ``forbid``: {rule: message} of ``autograder.kernel.blockers.FORBIDDEN``.
    ``good_sigmoid``: a cell whose module-level ``sigmoid`` is torch's while it runs. ``report``: a dict that
    gets ``mutated``, the positions of the tensor arguments the call changed (values, shape or requires_grad).
    """
    if not isinstance(fn, Remote):
        raise GradingFailure(f"{what}: expected something callable, got {type(fn).__name__}.")
    on = device() if on is None else on
    request = {"op": "call", "h": fn.key, "args": _encode_arg(list(args), on),
               "kwargs": _encode_arg(kwargs, on), "forbid": sorted(forbid or {})}
    if backward is not None:
        request["backward"] = _encode_arg(list(backward), on)
    if good_sigmoid is not None:
        request["good_sigmoid"] = good_sigmoid.key
    reply = exchange(request)
    if reply.get("modes"):
        note("modes-active", modes=", ".join(map(str, reply["modes"]))[:300], during=what)
    if "raised" in reply:
        if reply["raised"].get("kind") == "ready-made":
            note("ready-made", detail=f"{(reply['raised'].get('used') or ['?'])[0]} during {what}"[:300])
        stage = what
        if reply["raised"].get("stage") == "backward":
            stage = backward_what or f"backward through {what}"
        raise student_failure(reply["raised"], stage, forbid)
    result = value_of(reply)
    if report is not None:
        report["mutated"] = [k for k in reply.get("mutated", []) if type(k) is int]
    if backward is not None:
        return result, value_of({"value": reply.get("grads", {"$list": []})})
    return result


_notes: list[dict] = []


def note(kind: str, **fields) -> None:
    """Something for the instructor's grading log (the executor writes these after each test)."""
    _notes.append({"kind": kind, **fields})


def take_notes() -> list[dict]:
    taken = list(_notes)
    _notes.clear()
    return taken


# --------------------------------------------------------------------------- comparisons


def _is_tensor(value) -> bool:
    return isinstance(value, torch.Tensor)


def expect_tensor(value, what: str, bug: str | None = None):
    if not _is_tensor(value):
        raise GradingFailure(f"{what} should be a torch.Tensor, got {describe(value)}.", bug=bug)


def describe(value) -> str:
    if isinstance(value, Remote):
        return value.type_name
    return type(value).__name__


def expect_shape(value, shape, what: str, hint: str = "", bug: str | None = None):
    expect_tensor(value, what, bug)
    if tuple(value.shape) != tuple(shape):
        raise GradingFailure(
            f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}." + (f" {hint}" if hint else ""), bug=bug)


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64) if not t.is_complex() else t.detach().to("cpu")


def max_abs_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    return (_f64(got) - _f64(want)).abs().max().item()


def close(got, want, atol=1e-9, rtol=1e-7) -> bool:
    if not _is_tensor(got) or tuple(got.shape) != tuple(want.shape):
        return False
    g, w = _f64(got), _f64(want)
    return bool(torch.isfinite(g).all()) and bool(torch.allclose(g, w, atol=atol, rtol=rtol))


def expect_close(got, want, what: str, hint: str = "", atol=1e-9, rtol=1e-7, bug: str | None = None):
    """``got`` matches ``want``; ``bug``: the id of the mistake a difference here means (None: the check's own)."""
    expect_shape(got, want.shape, what, bug=bug)
    if not bool(torch.isfinite(_f64(got)).all()):
        raise GradingFailure(f"{what} contains NaN or inf." + (f" {hint}" if hint else ""), bug=bug)
    if not close(got, want, atol=atol, rtol=rtol):
        raise GradingFailure(f"{what} differs from the reference by up to {max_abs_diff(got, want):.3g}."
                             + (f" {hint}" if hint else ""), bug=bug)
