"""Notebook 6: correct answers in other styles (its mutants are those of ``autograder.checks.mistakes``)."""

STYLES = {
    # F.linear for both products, torch.split by hidden_size, the init under torch.no_grad, tensor methods.
    "linear_split": {
        "fused_cell": '''class FusedLSTMCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.zeros(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.zeros(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.zeros(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.zeros(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self):
        bound = self.hidden_size ** -0.5
        with torch.no_grad():
            for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
                p.uniform_(-bound, bound)

    def forward(self, x, h=None, c=None):
        zeros = torch.zeros(x.shape[:-1] + (self.hidden_size,), dtype=x.dtype, device=x.device)
        h = zeros if h is None else h
        c = zeros if c is None else c
        linear = torch.nn.functional.linear
        gates = linear(x, self.weight_ih, self.bias_ih) + linear(h, self.weight_hh, self.bias_hh)
        i, f, g, o = torch.split(gates, self.hidden_size, dim=-1)
        c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c_next.tanh(), c_next''',
    },
}
