"""The speed ladder of notebook 6, as plain functions: one LSTM layer computed several ways.

Every rung has the signature ``run(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh) -> (output, h_n, c_n)``
with ``x`` of shape (T, B, I), states (B, H) and the weights in ``torch.nn.LSTM``'s layout (row blocks
i, f, g, o), so that all rungs read the same parameter tensors and their gradients can be compared
directly. ``make bench`` (benchmarks/speed_ladder.py) times them; ``check_same`` compares two rungs.

1. ``per_gate_lstm``      eight small matmuls per step (the course's LSTMCell, with torch.sigmoid)
2. ``fused_lstm``         one (4H, ·) matmul per input: FusedLSTMCell called once per step
3. ``precomputed_lstm``   the input projection of all steps in one GEMM before the loop
4. ``compiled_lstm()``    rung 3 through torch.compile (or torch.jit.script where that fails)
4+ ``handwritten_lstm``   rung 3 with a hand-written backward: weight gradients of all steps in one GEMM
5. ``torch_lstm()``       torch.nn.LSTM (oneDNN's fused RNN on a CPU in float32)
"""

import torch
import torch.nn as nn

# --------------------------------------------------------------------------- rungs 1 to 3


def per_gate_lstm(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """Rung 1: four gates, each with its own (H, I) and (H, H) matrix, as in notebook 1."""
    u_i, u_f, u_g, u_o = (w.t() for w in weight_ih.chunk(4))
    w_i, w_f, w_g, w_o = (w.t() for w in weight_hh.chunk(4))
    b_i, b_f, b_g, b_o = (bias_ih + bias_hh).chunk(4)
    outputs = []
    for x_t in x.unbind(0):
        f = torch.sigmoid(h @ w_f + x_t @ u_f + b_f)
        i = torch.sigmoid(h @ w_i + x_t @ u_i + b_i)
        o = torch.sigmoid(h @ w_o + x_t @ u_o + b_o)
        g = torch.tanh(h @ w_g + x_t @ u_g + b_g)
        c = f * c + i * g
        h = o * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs), h, c


def fused_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One step of FusedLSTMCell (the graded rung of notebook 6): torch.nn.LSTMCell's equations."""
    gates = x @ weight_ih.t() + bias_ih + h @ weight_hh.t() + bias_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def fused_lstm(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """Rung 2: the fused cell called once per step."""
    outputs = []
    for x_t in x.unbind(0):
        h, c = fused_step(x_t, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
        outputs.append(h)
    return torch.stack(outputs), h, c


def project_inputs(x, weight_ih, bias_ih, bias_hh):
    """x @ weight_ih.T + both biases for every step at once: one GEMM, shape (steps, batch, 4H)."""
    steps, batch = x.shape[0], x.shape[1]
    x_proj = torch.addmm(bias_ih + bias_hh, x.reshape(steps * batch, x.shape[2]), weight_ih.t())
    return x_proj.view(steps, batch, weight_ih.shape[0])


def recurrence(x_proj, h, c, w_hh_t):
    """The steps of rung 3's loop from precomputed input projections; only h @ weight_hh.T is left per step."""
    outputs = []
    # unbind, not x_proj[t]: the backward of x_proj[t] writes its gradient into a zero tensor the size of
    # all of x_proj, at every step (T² work); unbind's backward stacks the T gradients once.
    for x_t in x_proj.unbind(0):
        gates = torch.addmm(x_t, h, w_hh_t)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs), h, c


def precomputed_lstm(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """Rung 3: the input projection of all steps in one GEMM; only h @ weight_hh.T stays in the loop."""
    return recurrence(project_inputs(x, weight_ih, bias_ih, bias_hh), h, c, weight_hh.t())


# --------------------------------------------------------------------------- rung 4: compiled


def compiled_lstm(block=0, backend="inductor"):
    """Rung 4: rung 3 compiled. Returns ``(run, how)``.

    ``block=0`` compiles the whole sequence loop (unrolled: compile time grows with T). ``block=K``
    compiles K steps and calls that T / K times: the compile time no longer depends on T, and the cost
    of a call into compiled code is shared by K steps. ``backend="script"`` uses TorchScript instead.
    """
    if backend == "script":
        return torch.jit.script(precomputed_lstm), "torch.jit.script"
    if not block:
        return torch.compile(precomputed_lstm, dynamic=False), "torch.compile, whole loop"
    compiled_block = torch.compile(recurrence, dynamic=False)

    def run(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        x_proj = project_inputs(x, weight_ih, bias_ih, bias_hh)
        w_hh_t = weight_hh.t()
        outputs = []
        for chunk in x_proj.split(block):
            out, h, c = compiled_block(chunk, h, c, w_hh_t)
            outputs.append(out)
        return torch.cat(outputs), h, c

    return run, f"torch.compile, {block}-step blocks"


# --------------------------------------------------------------------------- rung 4+: hand-written backward


class _HandwrittenLSTM(torch.autograd.Function):
    """Rung 3 with its backward written out, the way cuDNN and oneDNN organise it.

    Forward keeps the activated gates and the cell states of every step in preallocated buffers and
    records nothing for autograd. Backward walks the steps in reverse doing only what must be sequential
    (dh_{t-1} = δ_t W_hh and the elementwise chain), then computes every weight gradient for all steps
    at once: dW_hh = Σ_t δ_tᵀ h_{t-1} is one (4H × T·B)(T·B × H) GEMM, and likewise dW_ih and dx.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
        steps, batch, _ = x.shape
        hidden = weight_hh.shape[1]
        # tanh(a) = 2σ(2a) − 1, and σ costs a third of tanh on a CPU: scale the candidate's rows by 2
        # once, then one sigmoid covers all four gates of a step.
        scale = weight_hh.new_ones(4 * hidden, 1)
        scale[2 * hidden:3 * hidden] = 2
        x_proj = torch.addmm((bias_ih + bias_hh) * scale[:, 0], x.reshape(steps * batch, -1),
                             (weight_ih * scale).t())
        w_hh_t = (weight_hh * scale).t()
        gates = x_proj.view(steps, batch, 4 * hidden)  # activated in place, step by step
        hs = x.new_empty(steps + 1, batch, hidden)  # hs[t + 1] = h_t; hs[0] = h0
        cs = x.new_empty(steps + 1, batch, hidden)
        tanh_cs = x.new_empty(steps, batch, hidden)
        hs[0], cs[0] = h0, c0
        gate_s = gates.unbind(0)
        i_s, f_s, g_s, o_s = (part.unbind(0) for part in gates.split(hidden, dim=2))
        h_s, c_s, tanh_s = hs.unbind(0), cs.unbind(0), tanh_cs.unbind(0)
        for t in range(steps):
            gate_s[t].addmm_(h_s[t], w_hh_t)  # no per-step allocation: every result has its buffer
            gate_s[t].sigmoid_()
            g_s[t].mul_(2).sub_(1)  # = tanh of the candidate's pre-activation
            torch.mul(f_s[t], c_s[t], out=c_s[t + 1])
            c_s[t + 1].addcmul_(i_s[t], g_s[t])
            torch.mul(c_s[t + 1], 2, out=tanh_s[t]).sigmoid_().mul_(2).sub_(1)  # tanh(c_t)
            torch.mul(o_s[t], tanh_s[t], out=h_s[t + 1])
        ctx.save_for_backward(x, weight_ih, weight_hh, gates, hs, cs, tanh_cs)
        return hs[1:], hs[steps].clone(), cs[steps].clone()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n):
        x, weight_ih, weight_hh, gates, hs, cs, tanh_cs = ctx.saved_tensors
        steps, batch, _ = x.shape
        hidden = weight_hh.shape[1]
        if grad_output is None:
            grad_output = torch.zeros_like(hs[1:])
        i_all, f_all, g_all, o_all = gates.split(hidden, dim=2)
        one = gates.new_ones(())
        # Everything that does not depend on the recurrence, for all steps at once, one pass each:
        # the activations' derivatives, σ' = σ − σ² and tanh' = 1 − tanh², ...
        deriv = torch.addcmul(gates, gates, gates, value=-1)
        torch.addcmul(one, g_all, g_all, value=-1, out=deriv[..., 2 * hidden:3 * hidden])
        # ... and ∂h_t/∂c_t = o ⊙ (1 − tanh²(c_t)).
        o_dtanh = torch.addcmul(one, tanh_cs, tanh_cs, value=-1).mul_(o_all)
        d_gates = torch.empty_like(gates)  # δ_t: gradients of the pre-activations, every step
        d_steps, deriv_s = d_gates.unbind(0), deriv.unbind(0)
        di_s, df_s, dg_s, do_s = (part.unbind(0) for part in d_gates.split(hidden, dim=2))
        i_s, f_s, g_s = i_all.unbind(0), f_all.unbind(0), g_all.unbind(0)
        c_s, o_dtanh_s, tanh_s, grad_out_s = cs.unbind(0), o_dtanh.unbind(0), tanh_cs.unbind(0), \
            grad_output.unbind(0)
        dh = grad_out_s[steps - 1].clone()
        if grad_h_n is not None:
            dh.add_(grad_h_n)
        dc = torch.zeros_like(cs[0]) if grad_c_n is None else grad_c_n.clone()
        for t in range(steps - 1, -1, -1):
            dc.addcmul_(dh, o_dtanh_s[t])  # h_t = o ⊙ tanh(c_t)
            torch.mul(dh, tanh_s[t], out=do_s[t])
            torch.mul(dc, g_s[t], out=di_s[t])  # c_t = f ⊙ c_{t-1} + i ⊙ g
            torch.mul(dc, c_s[t], out=df_s[t])
            torch.mul(dc, i_s[t], out=dg_s[t])
            dc.mul_(f_s[t])
            d_steps[t].mul_(deriv_s[t])
            if t > 0:  # the one sequential matmul: dh_{t-1} = δ_t W_hh (+ the output's own gradient)
                torch.addmm(grad_out_s[t - 1], d_steps[t], weight_hh, out=dh)
            else:
                dh = d_steps[0] @ weight_hh
        flat = d_gates.view(steps * batch, 4 * hidden)
        grad_weight_hh = flat.t() @ hs[:-1].reshape(steps * batch, hidden)
        grad_weight_ih = flat.t() @ x.reshape(steps * batch, -1)
        grad_bias = flat.sum(0)
        grad_x = (flat @ weight_ih).view_as(x)
        return grad_x, dh, dc, grad_weight_ih, grad_weight_hh, grad_bias, grad_bias.clone()


def handwritten_lstm(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """Rung 4+: rung 3 with a hand-written backward (no autograd graph, weight gradients in one GEMM)."""
    return _HandwrittenLSTM.apply(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)


# --------------------------------------------------------------------------- rung 5


def torch_lstm(lstm: nn.LSTM):
    """Rung 5: ``torch.nn.LSTM`` (one layer) in the ladder's signature, reading the module's own weights."""

    def run(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        assert weight_ih is lstm.weight_ih_l0, "torch_lstm runs the nn.LSTM's own parameters"
        output, (h_n, c_n) = lstm(x, (h.unsqueeze(0), c.unsqueeze(0)))
        return output, h_n[0], c_n[0]

    return run


# --------------------------------------------------------------------------- checking rungs against each other


def forward_backward(run, x, h0, c0, params, probes):
    """Outputs and the gradients of a fixed random loss with respect to x, h0, c0 and the four weights."""
    for p in params:
        p.grad = None
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, h0, c0)]
    output, h_n, c_n = run(*leaves, *params)
    loss = sum((value * probe).sum() for value, probe in zip((output, h_n, c_n), probes, strict=True))
    loss.backward()
    grads = [t.grad for t in leaves] + [p.grad for p in params]
    names = ("output", "h_n", "c_n", "grad x", "grad h0", "grad c0", "grad weight_ih", "grad weight_hh",
             "grad bias_ih", "grad bias_hh")
    return dict(zip(names, [v.detach().clone() for v in (output, h_n, c_n, *grads)], strict=True))


def check_same(new: dict, old: dict, rtol=1e-5) -> float:
    """Largest difference between two rungs' results, relative to each tensor's size; raises if too large."""
    worst = 0.0
    for key, want in old.items():
        got = new[key]
        if got.shape != want.shape:
            raise AssertionError(f"{key}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        scale = max(1.0, want.abs().max().item())
        diff = (got.double() - want.double()).abs().max().item() / scale
        if not diff <= rtol:
            raise AssertionError(f"{key} differs by {diff:.3g} (relative)")
        worst = max(worst, diff)
    return worst
