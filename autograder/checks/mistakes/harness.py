"""What the harness itself names, in every notebook: a ready-made LSTM, a function a test forbids. Each mutant says
which notebook it is graded in."""

from . import Mutant, mistake, table

MISTAKES = table(
    mistake('ready_made_lstm',
        "",
        Mutant("lstm_cell",
            ('        f = sigmoid(self.preactivation("f", x, h))\n'
             '        i = sigmoid(self.preactivation("i", x, h))\n'
             '        o = sigmoid(self.preactivation("o", x, h))\n'
             '        c_tilde = torch.tanh(self.preactivation("c", x, h))\n'
             "        c_next = f * c + i * c_tilde\n"
             "        h_next = o * torch.tanh(c_next)\n"),
            ("        w_ih = torch.cat([self.U_i, self.U_f, self.U_c, self.U_o])\n"
             "        w_hh = torch.cat([self.W_i, self.W_f, self.W_c, self.W_o])\n"
             "        b = torch.cat([self.b_i, self.b_f, self.b_c, self.b_o])\n"
             "        h_next, c_next = torch.lstm_cell(x, (h, c), w_ih, w_hh, b, torch.zeros_like(b))\n"),
            description="calls torch.lstm_cell inside",
            message="calls torch\\.lstm_cell",
            assignment="01_lstm_cell"),
        Mutant("lstm",
            "        batched = x.dim() == 3",
            "        return nn.LSTM(self.input_size, self.hidden_size, self.num_layers).double()(x)",
            name='ready_made',
            description="calls torch.nn.LSTM",
            message="Write the recurrence yourself",
            assignment="02_stacked_lstm")),
    mistake("forbidden_*",
        "",
        Mutant("sigmoid",
            ("    z = torch.exp(-torch.where(x >= 0, x, -x))  # exp(-|x|), with slope -1 (not 0) at x = 0\n"
             "    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))"),
            "    return torch.sigmoid(x)",
            name='sigmoid_builtin',
            description="calls torch.sigmoid",
            message="torch\\.sigmoid",
            assignment="01_lstm_cell", bug="forbidden_sigmoid")),
)

# What the harness raises when there is nothing to judge (no answer, a check that could not run): no mistake, no
# mutant.
GENERIC = frozenset({"not_defined", "not_implemented", "probe_error"})
