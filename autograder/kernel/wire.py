"""The grader <-> probe format: JSON with tagged tensors as raw little-endian buffers. Never pickle.

Both sides decode what the other sent with ``decode``, which accepts only the tags below, checks every
tensor's dtype, shape and buffer length, and caps sizes and nesting, so a hostile kernel can send numbers
and nothing else. Objects that cannot cross (modules, classes, functions) stay in the kernel and cross
as handles: ``{"$h": id, ...description}``.
"""

import base64
import json
import math

DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
          "complex64", "complex128")
MAX_BYTES = 64 * 2**20  # one message
MAX_DEPTH = 24
MAX_ITEMS = 100_000
MAX_DIMS = 8
COMM_TARGET = "lstm-course.probe"  # the Jupyter comm the grader talks to the probe on


class WireError(ValueError):
    """A message that is not in the format (or over its limits)."""


def _torch():
    import torch

    return torch


def encode_tensor(t, **extra) -> dict:
    torch = _torch()
    t = t.detach()
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise WireError(f"tensors of dtype {dtype} do not cross")
    cpu = t.to("cpu").contiguous()
    if dtype == "bfloat16":
        raw = cpu.view(torch.int16).numpy().tobytes()
    else:
        raw = cpu.numpy().tobytes() if cpu.numel() else b""
    return {"$t": {"dtype": dtype, "shape": list(cpu.shape), "data": base64.b64encode(raw).decode("ascii"),
                   "device": str(t.device), "grad": bool(t.requires_grad), **extra}}


def decode_tensor(spec) -> "object":
    torch = _torch()
    if not isinstance(spec, dict):
        raise WireError("a tensor must be an object")
    dtype, shape, data = spec.get("dtype"), spec.get("shape"), spec.get("data")
    if dtype not in DTYPES:
        raise WireError(f"unknown dtype {dtype!r}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(type(n) is int and 0 <= n <= MAX_BYTES for n in shape)):
        raise WireError("a tensor's shape must be a short list of sizes")
    if not isinstance(data, str):
        raise WireError("a tensor's data must be base64 text")
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    t_dtype = getattr(torch, dtype)
    size = torch.empty((), dtype=t_dtype).element_size()
    if len(raw) != math.prod(shape) * size:
        raise WireError(f"a tensor of shape {shape} and dtype {dtype} needs {math.prod(shape) * size} bytes, "
                        f"got {len(raw)}")
    if not raw:
        return torch.empty(shape, dtype=t_dtype)
    if dtype == "bfloat16":
        return torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16).reshape(shape).clone()
    return torch.frombuffer(bytearray(raw), dtype=t_dtype).reshape(shape).clone()


def encode(value, handle_of=None, depth=0, tensor=encode_tensor):
    """Plain data as JSON-ready values; what is not plain goes through ``handle_of`` (or is refused)."""
    torch = _torch()
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"$f": repr(value)}
    if isinstance(value, torch.Tensor):
        return tensor(value)
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"$device": str(value)}
    if isinstance(value, torch.Size):
        return {"$tuple": [int(n) for n in value]}
    if type(value) in (list, tuple):
        return {"$" + type(value).__name__: [encode(v, handle_of, depth + 1, tensor) for v in value]}
    if isinstance(value, dict) and all(type(k) is str for k in value):
        return {"$dict": {k: encode(v, handle_of, depth + 1, tensor) for k, v in value.items()}}
    if handle_of is not None:
        return handle_of(value)
    raise WireError(f"a {type(value).__name__} does not cross")


def decode(value, handle=None, tensor=decode_tensor):
    """The inverse of ``encode``; ``handle(spec)`` turns a handle into whatever this side uses for it."""
    count = [0]

    def walk(v, depth):
        count[0] += 1
        if depth > MAX_DEPTH or count[0] > MAX_ITEMS:
            raise WireError("too large or nested too deeply")
        if v is None or type(v) in (bool, int, str):
            return v
        if type(v) is float:
            return v
        if type(v) is list:
            raise WireError("lists cross tagged")
        if type(v) is not dict or len(v) < 1:
            raise WireError(f"unexpected {type(v).__name__}")
        if "$h" in v:
            if handle is None or type(v["$h"]) is not int:
                raise WireError("unexpected handle")
            return handle(v)
        if len(v) != 1:
            raise WireError("a tagged value has one tag")
        (tag, body), = v.items()
        if tag == "$t":
            return tensor(body)
        if tag in ("$list", "$tuple") and type(body) is list:
            items = [walk(b, depth + 1) for b in body]
            return items if tag == "$list" else tuple(items)
        if tag == "$dict" and type(body) is dict:
            return {str(k): walk(b, depth + 1) for k, b in body.items()}
        if tag == "$f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "$dtype" and body in DTYPES:
            return getattr(_torch(), body)
        if tag == "$device" and type(body) is str and len(body) < 32:
            return _torch().device(body)
        raise WireError(f"unknown tag {tag!r}")

    return walk(value, 0)


def dumps(message: dict) -> str:
    text = json.dumps(message, separators=(",", ":"))
    if len(text) > MAX_BYTES:
        raise WireError(f"a message of {len(text)} bytes is over the limit of {MAX_BYTES}")
    return text


def loads(text) -> dict:
    if not isinstance(text, str) or len(text) > MAX_BYTES:
        raise WireError("a message must be text under the size limit")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise WireError(f"not JSON: {err}") from None
    if type(message) is not dict:
        raise WireError("a message is an object")
    return message
