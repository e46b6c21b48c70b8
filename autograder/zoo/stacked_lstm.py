"""Notebook 2: the mistakes the hidden tests catch without naming them (those they name are in
``autograder.checks.mistakes.stacked_lstm``, with their mutants), and correct answers in other styles.

Each was checked in-process and through nbgrader: it loses points on its own exercise and the
message matches ``message``.
"""

from ..host.submissions import Mutation

A = "02_stacked_lstm"


def bug(name, cell, old, new, description, message, bug_id):
    return Mutation(name, A, cell, old, new, description, message, bug_id)


PASS_UP = "                x_t = hs[k]\n            outputs.append(x_t)"
RETURN = "return output, (torch.stack(hs), torch.stack(cs))"
BF_IN = "        if self.batch_first and batched:\n            x = x.transpose(0, 1)"
BF_OUT = "        if self.batch_first and batched:\n            output = output.transpose(0, 1)\n"
INIT = "self.cell_class(input_size if k == 0 else hidden_size, hidden_size)"

MUTANTS = [
    bug("h_n_last_layer_only", "lstm", RETURN, "return output, (hs[-1], cs[-1])",
        "h_n, c_n hold only the last layer", r"holds only one layer", "stacked_lstm.lstm_forward"),
    bug("h_n_list", "lstm", RETURN, "return output, (hs, cs)", "h_n, c_n returned as lists", r"h_n is a list", "stacked_lstm.lstm_forward"),
    bug("output_list", "lstm", "output = torch.stack(outputs)", "output = outputs",
        "output returned as a list", r"output is a list", "stacked_lstm.lstm_forward"),
    bug("time_batch_swapped", "lstm", "for x_t in x.unbind(0):", "for x_t in x.unbind(1):",
        "steps over the batch axis", r"steps along the batch axis|time and batch axes", "stacked_lstm.lstm_forward"),
    bug("plain_list", "lstm", "self.layers = nn.ModuleList(\n            " + INIT + " for k in range(num_layers)\n        )",
        "self.layers = [\n            " + INIT + " for k in range(num_layers)\n        ]",
        "layers in a plain Python list", r"not an nn\.ModuleList", "stacked_lstm.lstm_structure"),
    bug("cell_class_ignored", "lstm", "self.cell_class(input_size if", "LSTMCell(input_size if",
        "LSTMCell(...) instead of self.cell_class(...)", r"self\.cell_class", "stacked_lstm.lstm_structure"),
    bug("all_layers_read_input", "lstm", INIT, "self.cell_class(input_size, hidden_size)",
        "every layer built input_size -> hidden_size", r"cell_class\(hidden_size, hidden_size\)", "stacked_lstm.lstm_structure"),
    bug("batch_first_output", "lstm", BF_OUT, "", "output not transposed back", r"transpose it back", "stacked_lstm.lstm_batch_first"),
    bug("batch_first_states", "lstm", RETURN,
        "h_n, c_n = torch.stack(hs), torch.stack(cs)\n        if self.batch_first and batched:\n"
        "            h_n, c_n = h_n.transpose(0, 1), c_n.transpose(0, 1)\n        return output, (h_n, c_n)",
        "states transposed with batch_first", r"keep the layout", "stacked_lstm.lstm_batch_first"),
    bug("zeros_fixed_dtype", "lstm", "h0 = x.new_zeros(state_shape) if h0 is None else h0",
        "h0 = torch.zeros(state_shape) if h0 is None else h0", "default state created as float32",
        r"x\.new_zeros", "stacked_lstm.lstm_forms"),
    bug("default_state_assumes_batch", "lstm", "state_shape = (self.num_layers, *x.shape[1:-1], self.hidden_size)",
        "state_shape = (self.num_layers, x.shape[1], self.hidden_size)",
        "unbatched default states get a batch axis",
        r"nothing has a batch axis", "stacked_lstm.lstm_forms"),
    bug("detached_between_layers", "lstm", "x_t = hs[k]\n", "x_t = hs[k].detach()\n",
        "h detached on its way up", r"\.detach\(\)", "stacked_lstm.lstm_gradients"),
    bug("reset_does_nothing", "lstm", "        for layer in self.layers:\n            layer.reset_parameters()",
        "        pass", "reset_parameters does nothing", r"reset_parameters", "stacked_lstm.lstm_structure"),
    bug("load_layer_index", "load_lstm_from_torch", 'f"weight_ih_l{k}"', 'f"weight_ih_l{min(k, 1)}"',
        "layer 2 reads layer 1's weight_ih", r"holds layer 1's weights", "stacked_lstm.load_lstm_from_torch_layers"),
    bug("load_two_layers", "load_lstm_from_torch", "for k, cell in enumerate(model.layers):",
        "for k, cell in zip(range(2), model.layers):", "only two layers loaded", r"still holds its initial value", "stacked_lstm.load_lstm_from_torch_layers"),
    bug("load_f_i_swapped", "load_lstm_from_torch", 'zip("ifco"', 'zip("fico"',
        "stripes read as f, i, g, o", r"stripe of .*i, f, g, o", "stacked_lstm.load_lstm_from_torch_layers"),
    bug("load_bias_ih_only", "load_lstm_from_torch", ' + getattr(torch_lstm, f"bias_hh_l{k}")', "",
        "bias_hh dropped", r"only bias_ih", "stacked_lstm.load_lstm_from_torch_layers"),
    bug("load_new_parameter", "load_lstm_from_torch", 'getattr(cell, f"U_{gate}").copy_(u)',
        'setattr(cell, f"U_{gate}", nn.Parameter(u.clone()))', "new Parameter instead of copy_",
        r"new object", "stacked_lstm.load_lstm_from_torch_layers"),
]



LAYER_MAJOR = """\
class LSTM(nn.Module):
    cell_class = LSTMCell

    def __init__(self, input_size, hidden_size, num_layers=2, batch_first=False):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.layers = nn.ModuleList([self.cell_class(input_size, hidden_size)]
                                    + [self.cell_class(hidden_size, hidden_size) for _ in range(num_layers - 1)])

    def reset_parameters(self):
        for m in self.layers:
            m.reset_parameters()

    def forward(self, x, h0=None, c0=None):
        batched = x.dim() == 3
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        shape = (self.num_layers,) + tuple(x.shape[1:-1]) + (self.hidden_size,)
        if h0 is None:
            h0 = torch.zeros(shape, dtype=x.dtype, device=x.device)
        if c0 is None:
            c0 = torch.zeros(shape, dtype=x.dtype, device=x.device)
        seq = x
        h_last, c_last = [], []
        for k, layer in enumerate(self.layers):
            h, c = h0[k], c0[k]
            outs = []
            for t in range(seq.shape[0]):
                h, c = layer(seq[t], h, c)
                outs.append(h)
            seq = torch.stack(outs)
            h_last.append(h)
            c_last.append(c)
        if self.batch_first and batched:
            seq = seq.transpose(0, 1)
        return seq, (torch.stack(h_last), torch.stack(c_last))"""

PREALLOCATED = """\
class LSTM(nn.Module):
    cell_class = LSTMCell

    def __init__(self, input_size, hidden_size, num_layers=2, batch_first=False):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.layers = nn.ModuleList([self.cell_class(input_size, hidden_size)]
                                    + [self.cell_class(hidden_size, hidden_size) for _ in range(num_layers - 1)])

    def reset_parameters(self):
        for m in self.layers:
            m.reset_parameters()

    def forward(self, x, h0=None, c0=None):
        if self.batch_first and x.dim() == 3:
            x = x.permute(1, 0, 2)
        T = x.shape[0]
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, *x.shape[1:-1], self.hidden_size)
        if c0 is None:
            c0 = torch.zeros_like(h0)
        h = [h0[k] for k in range(self.num_layers)]
        c = [c0[k] for k in range(self.num_layers)]
        out = x.new_empty(T, *x.shape[1:-1], self.hidden_size)
        for t in range(T):
            inp = x[t]
            for k in range(self.num_layers):
                h[k], c[k] = self.layers[k](inp, h[k], c[k])
                inp = h[k]
            out[t] = inp
        if self.batch_first and x.dim() == 3:
            out = out.permute(1, 0, 2)
        return out, (torch.stack(h, 0), torch.stack(c, 0))"""

LOAD_ALL_WEIGHTS = """\
def load_lstm_from_torch(model, torch_lstm):
    for k, cell in enumerate(model.layers):
        w_ih, w_hh, b_ih, b_hh = torch_lstm.all_weights[k]
        H = cell.hidden_size
        with torch.no_grad():
            for j, g in enumerate(["i", "f", "c", "o"]):
                rows = slice(j * H, (j + 1) * H)
                getattr(cell, "U_" + g).copy_(w_ih[rows])
                getattr(cell, "W_" + g).copy_(w_hh[rows])
                getattr(cell, "b_" + g).copy_(b_ih[rows] + b_hh[rows])
    return model"""

STYLES = {
    # Layer by layer over the whole sequence (the grid filled row by row), torch.zeros with dtype/device.
    "layer_major": {"lstm": LAYER_MAJOR},
    # A preallocated output written slice by slice, permute for batch_first, states via zeros_like.
    "preallocated_output": {"lstm": PREALLOCATED},
    # torch_lstm.all_weights and explicit row slices instead of getattr + chunk.
    "load_all_weights": {"load_lstm_from_torch": LOAD_ALL_WEIGHTS},
}
