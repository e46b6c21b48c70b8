"""References the hidden tests compare with: PyTorch's own LSTM with copied weights, in float64 on CPU.

The course writes gates as f, i, o and the candidate c; PyTorch stacks them in rows i, f, g, o of
``weight_ih`` (4H, I), ``weight_hh`` (4H, H) and the two biases. ``TORCH_ORDER`` maps one to the other.
"""

import torch
import torch.nn as nn

from .suspects import TORCH_ORDER, Step

GATES = ("f", "i", "o", "c")
CELL_PARAMS = tuple(f"{kind}_{gate}" for kind in "WUb" for gate in GATES)

F64 = torch.float64
CPU = torch.device("cpu")


def cell_params(cell, prefix="") -> dict[str, torch.Tensor]:
    """The course cell's parameters by name, as float64 CPU tensors detached from the student's."""
    params = dict(cell.named_parameters())
    return {name: params[prefix + name].detach().to(CPU, F64) for name in CELL_PARAMS if prefix + name in params}


def torch_cell_from(params: dict[str, torch.Tensor]) -> nn.LSTMCell:
    """A float64 ``nn.LSTMCell`` computing the course equations with these parameters."""
    hidden, inp = params["U_f"].shape
    ref = nn.LSTMCell(inp, hidden).to(F64)
    with torch.no_grad():
        ref.weight_ih.copy_(torch.cat([params[f"U_{g}"] for g in TORCH_ORDER]))
        ref.weight_hh.copy_(torch.cat([params[f"W_{g}"] for g in TORCH_ORDER]))
        ref.bias_ih.copy_(torch.cat([params[f"b_{g}"] for g in TORCH_ORDER]))
        ref.bias_hh.zero_()
    return ref


def torch_lstm_from(layers: list[dict[str, torch.Tensor]]) -> nn.LSTM:
    """A float64 ``nn.LSTM`` with one layer per parameter dict."""
    hidden, inp = layers[0]["U_f"].shape
    ref = nn.LSTM(inp, hidden, num_layers=len(layers)).to(F64)
    with torch.no_grad():
        for k, params in enumerate(layers):
            getattr(ref, f"weight_ih_l{k}").copy_(torch.cat([params[f"U_{g}"] for g in TORCH_ORDER]))
            getattr(ref, f"weight_hh_l{k}").copy_(torch.cat([params[f"W_{g}"] for g in TORCH_ORDER]))
            getattr(ref, f"bias_ih_l{k}").copy_(torch.cat([params[f"b_{g}"] for g in TORCH_ORDER]))
            getattr(ref, f"bias_hh_l{k}").zero_()
    return ref


def split_torch_grads(ref: nn.LSTMCell) -> dict[str, torch.Tensor]:
    """Gradients of an ``nn.LSTMCell`` from ``torch_cell_from``, by course parameter name."""
    grads = {}
    for kind, tensor in (("U", ref.weight_ih.grad), ("W", ref.weight_hh.grad), ("b", ref.bias_ih.grad)):
        for gate, chunk in zip(TORCH_ORDER, tensor.chunk(4), strict=True):
            grads[f"{kind}_{gate}"] = chunk
    return grads


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)


def lstm_cell_step(params, x, h, c, peephole=None, coupled=False):
    """The course equations written out, an oracle independent of PyTorch's LSTM kernels: ``suspects.Step``
    with no mistake.

    ``peephole``: None, ``"matrix"`` (V_f, V_i, V_o on c_{t-1}) or ``"diagonal"`` (v_f, v_i on c_{t-1},
    v_o on c_t). ``coupled``: the input gate is 1 - f.
    """
    return Step(params, peephole=peephole, coupled=coupled)(x, h, c)
