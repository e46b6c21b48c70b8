"""The probe: the grader's hands inside the kernel. It runs student code on the inputs it is sent and
sends back what came out, as plain data. It decides nothing and holds nothing secret.

The grader opens a Jupyter comm to the target ``wire.COMM_TARGET`` (registered by ``boot``) and sends one
request per comm message; ``serve`` answers it and the reply goes back on the same comm (no cell is run,
so nothing of IPython's cell machinery is in the way). Objects that cannot cross
(the student's classes, modules, functions) stay here in a table and cross as handles.

Operations (``op``): ``lookup`` a name of the notebook, ``attr`` of an object, ``call`` an object (with
ready-made LSTMs blocked and, on request, a weighted-sum backward after it), ``params`` (names, values,
gradients and kinds of an object's parameters), ``load`` values into parameters by name, ``relation``
(isinstance/issubclass), ``fixture`` (a grader-made object from ``fixtures``), ``seed`` the kernel's torch
generator, ``forget`` the table, ``begin`` a test (both). Anything student code raises comes back as a
description, never as an exception in the grader.
"""

import traceback

import torch
import torch.nn as nn

from . import blockers, fixtures, wire

NOTEBOOK_FILES = ("<ipython-input", "<cell")
MAX_TEXT = 2000


def from_notebook(filename: str) -> bool:
    """Whether code of this file name is a notebook cell's (the student's, in a grading kernel)."""
    return filename.startswith(NOTEBOOK_FILES) or "ipykernel_" in filename


def notebook_frame(err: BaseException) -> dict | None:
    """The innermost traceback frame that is notebook code: where the student's error happened."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if from_notebook(f.filename)]
    if not frames:
        return None
    frame = frames[-1]
    return {"function": frame.name, "code": (frame.line or "").strip()[:300]}


def describe_error(err: BaseException, stage: str, used=()) -> dict:
    kind = "error"
    if isinstance(err, blockers.ReadyMade) or used:
        kind = "ready-made"
    elif isinstance(err, blockers.Forbidden):
        kind = "forbidden"
    elif isinstance(err, NotImplementedError):
        kind = "not-implemented"
    try:
        text = str(err)
    except Exception:  # a student exception whose __str__ raises
        text = "?"
    return {"kind": kind, "type": type(err).__name__[:100], "message": text[:MAX_TEXT], "stage": stage,
            "line": notebook_frame(err), "used": list(used)[:1] or ([str(err)] if kind == "ready-made" else []),
            "rule": str(err.args[0]) if kind == "forbidden" and err.args else ""}


def active_modes() -> list[str]:
    """Torch function and dispatch modes left active by student code (the grader logs them)."""
    found = []
    try:
        from torch.overrides import _get_current_function_mode_stack
        from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

        found += [type(m).__name__ for m in _get_current_function_mode_stack()]
        found += [type(m).__name__ for m in _get_current_dispatch_mode_stack()]
    except Exception:
        pass
    return found


def tensors_in(value) -> list:
    """The tensors of a value, depth first through tuples and lists (a call's arguments, its result)."""
    flat = []

    def walk(v):
        if isinstance(v, torch.Tensor):
            flat.append(v)
        elif isinstance(v, (tuple, list)):
            for item in v:
                walk(item)

    walk(value)
    return flat


class Probe:
    def __init__(self, namespace: dict):
        self.namespace = namespace
        self.objects: dict[int, object] = {}

    # ------------------------------------------------------------------ crossing

    def handle(self, obj) -> dict:
        key = id(obj)
        self.objects[key] = obj
        is_type = isinstance(obj, type)
        return {"$h": key, "type": type(obj).__name__[:200], "name": str(getattr(obj, "__name__", ""))[:200]
                if is_type or callable(obj) else "",
                "is_type": is_type, "is_module": isinstance(obj, nn.Module),
                "module_class": is_type and issubclass(obj, nn.Module), "callable": callable(obj),
                "is_parameter": isinstance(obj, nn.Parameter), "is_tensor": isinstance(obj, torch.Tensor),
                "length": len(obj) if isinstance(obj, (nn.ModuleList, list, tuple)) else None}

    def out(self, value):
        if isinstance(value, torch.Tensor) and type(value) not in (torch.Tensor, nn.Parameter):
            with torch._C.DisableTorchFunctionSubclass():
                value = torch.Tensor.as_subclass(value, torch.Tensor)
        return wire.encode(value, self.handle)

    def inp(self, value):
        def handle(spec):
            if spec["$h"] not in self.objects:
                raise wire.WireError("unknown handle")
            return self.objects[spec["$h"]]

        def tensor(spec):
            t = wire.decode_tensor(spec)
            device = spec.get("device", "cpu")
            if device != "cpu":
                t = t.to(device)
            return t.requires_grad_(True) if spec.get("grad") else t

        return wire.decode(value, handle, tensor)

    def obj(self, key):
        if type(key) is not int or key not in self.objects:
            raise wire.WireError("unknown handle")
        return self.objects[key]

    # ------------------------------------------------------------------ operations

    def op_lookup(self, req):
        name = req["name"]
        if name not in self.namespace:
            return {"missing": True}
        return {"value": self.out(self.namespace[name])}

    def op_attr(self, req):
        target = self.obj(req["h"])
        missing = object()
        try:
            value = getattr(target, req["name"], missing)
        except Exception as err:
            return {"raised": describe_error(err, "attr")}
        if value is missing:
            return {"missing": True}
        return {"value": self.out(value)}

    def op_type(self, req):
        return {"value": self.handle(type(self.obj(req["h"])))}

    def op_relation(self, req):
        a, b = self.obj(req["h"]), self.obj(req["other"])
        if req["kind"] == "isinstance":
            return {"value": isinstance(b, type) and isinstance(a, b)}
        if req["kind"] == "is":
            return {"value": a is b}
        return {"value": isinstance(a, type) and isinstance(b, type) and issubclass(a, b)}

    def op_call(self, req):
        fn = self.obj(req["h"])
        args = self.inp(req.get("args", {"$list": []}))
        kwargs = self.inp(req.get("kwargs", {"$dict": {}}))
        tensors = [(k, a) for k, a in enumerate(args) if isinstance(a, torch.Tensor)]
        before = [(a.detach().clone(), a.requires_grad) for _, a in tensors]
        modes = active_modes()
        reply = {"modes": modes} if modes else {}
        cell = self.objects.get(req.get("good_sigmoid"))
        stage = "call"
        with blockers.no_ready_made() as used:
            try:
                with blockers.forbidden(req.get("forbid", [])), \
                        (blockers.good_sigmoid(cell) if cell is not None else blockers.replaced([])):
                    result = fn(*args, **kwargs)
                    reply["mutated"] = [k for (k, a), (b, grad) in zip(tensors, before, strict=True)
                                        if a.shape != b.shape or a.requires_grad != grad
                                        or not torch.equal(a.detach(), b)]
                    weights = req.get("backward")
                    if weights is not None:
                        stage = "backward"
                        self.backward(result, self.inp(weights))
            except Exception as err:
                reply["raised"] = describe_error(err, stage, used)
                return reply
        if used:
            reply["raised"] = describe_error(blockers.ReadyMade(used[0]), stage, used)
            return reply
        reply["value"] = self.out(result)
        if req.get("backward") is not None:
            reply["grads"] = self.out([a.grad if a.requires_grad else None for a in tensors_in(args)])
        return reply

    @staticmethod
    def backward(result, weights):
        """loss = sum of (tensor * weight).sum() over the result's tensors, depth first; then backward."""
        loss = 0
        for t, w in zip(tensors_in(result), weights, strict=False):
            if w is not None:
                loss = loss + (t * w.to(t.device)).sum()
        if isinstance(loss, torch.Tensor):
            loss.backward()

    def op_params(self, req):
        target = self.obj(req["h"])
        listed = []
        for name, p in target.named_parameters():
            listed.append({"name": str(name), "value": p, "ident": id(p), "is_parameter": isinstance(p, nn.Parameter),
                           "grad": p.grad})
        return {"value": self.out(listed)}

    def op_load(self, req):
        target = self.obj(req["h"])
        values = self.inp(req["values"])
        params = dict(target.named_parameters())
        missing = [name for name in values if name not in params]
        with torch.no_grad():
            for name, value in values.items():
                if name in params:
                    params[name].copy_(value.to(params[name].device, params[name].dtype))
        return {"value": self.out(missing)}

    def op_fixture(self, req):
        make = fixtures.MAKERS.get(req["name"])
        if make is None:
            raise wire.WireError(f"no fixture {req['name']!r}")
        return {"value": self.out(make(*self.inp(req.get("args", {"$list": []})),
                                       **self.inp(req.get("kwargs", {"$dict": {}}))))}

    def op_seed(self, req):
        torch.manual_seed(int(req["seed"]))
        return {"value": None}

    def op_forget(self, req):
        self.objects.clear()
        return {"value": None}

    def op_begin(self, req):
        """A new test: the table emptied, the kernel's generator seeded."""
        self.op_forget(req)
        return self.op_seed(req)

    def answer(self, request: dict) -> dict:
        method = getattr(self, f"op_{request.get('op')}", None)
        if method is None:
            return {"probe_error": f"unknown operation {request.get('op')!r}"}
        try:
            return method(request)
        except (wire.WireError, KeyError, TypeError, ValueError) as err:
            return {"probe_error": f"{type(err).__name__}: {err}"[:MAX_TEXT]}


_probe = None


def serve(text: str) -> str:
    """One request (JSON text) on the notebook's namespace; the reply as JSON text."""
    global _probe
    from IPython import get_ipython

    shell = get_ipython()
    if _probe is None or _probe.namespace is not shell.user_ns:
        _probe = Probe(shell.user_ns)
    try:
        return wire.dumps(_probe.answer(wire.loads(text)))
    except Exception as err:
        return wire.dumps({"probe_error": f"{type(err).__name__}: {err}"[:MAX_TEXT]})


def open_comm(comm, _open_msg) -> None:
    """The comm target: every message on the grader's comm is one request, answered on the same comm."""

    def receive(msg):
        data = msg.get("content", {}).get("data", {})
        try:
            reply = serve(str(data.get("request", "")) if isinstance(data, dict) else "")
        except BaseException as err:  # an interrupt while student code ran: the grader has given up on it
            reply = wire.dumps({"probe_error": f"{type(err).__name__}: {err}"[:MAX_TEXT]})
        comm.send({"reply": reply})

    comm.on_msg(receive)
