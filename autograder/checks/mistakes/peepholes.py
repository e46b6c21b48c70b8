"""Notebook 4's mistakes: the peephole cells (the sentences depend on the form: they are in ``checks.peepholes``)."""

from . import Mutant, mistake, table

THREE = (
    '        f = sigmoid(self.preactivation("f", x, h) + c @ self.V_f.T)\n'
    '        i = sigmoid(self.preactivation("i", x, h) + c @ self.V_i.T)\n'
    '        o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)\n'
)

SUPER_FIRST = (
    "        super().__init__(input_size, hidden_size)\n"
    '        for gate in "fio":\n'
    '            setattr(self, f"V_{gate}", nn.Parameter(torch.empty(hidden_size, hidden_size)))\n'
)
SUPER_FIRST_SWAPPED = (
    '        for gate in "fio":\n'
    '            setattr(self, f"V_{gate}", nn.Parameter(torch.empty(hidden_size, hidden_size)))\n'
    "        super().__init__(input_size, hidden_size)\n"
)
MISTAKES = table(
    mistake('super_init_after', "",
        Mutant("peephole_cell", SUPER_FIRST, SUPER_FIRST_SWAPPED, name="peepholes_before_super",
            description="V_* created before super().__init__()",
            message=r"super\(\).__init__\(input_size, hidden_size\) first")),
    mistake('matrix_peephole_shape', "",
        Mutant("peephole_cell", "c @ self.V_f.T)", "c * self.V_f)", name="V_f_elementwise",
            description="the forget gate's peephole as c * V_f (elementwise) instead of c @ V_f.T",
            message=r"not c \* V_f")),
    mistake('diagonal_peephole_shape', "",
        Mutant("diagonal_peephole_cell", "self.v_f * c)", "c @ self.v_f)", name="v_f_matmul",
            description="the diagonal forget peephole as c @ v_f instead of v_f * c", message=r"not c @ v_f")),
    mistake('V_not_transposed',
        "",
        Mutant("peephole_cell",
            ('        f = sigmoid(self.preactivation("f", x, h) + c @ self.V_f.T)\n'
             '        i = sigmoid(self.preactivation("i", x, h) + c @ self.V_i.T)\n'
             '        o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)\n'),
            ('        f = sigmoid(self.preactivation("f", x, h) + c @ self.V_f)\n'
             '        i = sigmoid(self.preactivation("i", x, h) + c @ self.V_i)\n'
             '        o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o)\n'),
            name='V_transposed',
            description="c @ V instead of c @ V.T",
            message="V not transposed")),
    mistake('o_peeks_new_c',
        "",
        Mutant("peephole_cell",
            ('o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)\n'
             '        c_tilde = torch.tanh(self.preactivation("c", x, h))\n'
             "        c_next = f * c + i * c_tilde\n"),
            ('c_tilde = torch.tanh(self.preactivation("c", x, h))\n'
             "        c_next = f * c + i * c_tilde\n"
             '        o = sigmoid(self.preactivation("o", x, h) + c_next @ self.V_o.T)\n'),
            name='output_gate_peeks_new_c',
            description="the output gate peeks at c_t instead of c_{t-1}",
            message="peeks at the new cell state")),
    mistake('peepholes_f_i_swapped',
        "",
        Mutant("peephole_cell",
            ('        f = sigmoid(self.preactivation("f", x, h) + c @ self.V_f.T)\n'
             '        i = sigmoid(self.preactivation("i", x, h) + c @ self.V_i.T)\n'
             '        o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)\n'),
            ('        f = sigmoid(self.preactivation("f", x, h) + c @ self.V_i.T)\n'
             '        i = sigmoid(self.preactivation("i", x, h) + c @ self.V_f.T)\n'
             '        o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)\n'),
            name='V_f_V_i_swapped',
            description="the forget gate uses V_i and the input gate V_f",
            message="forget gate uses V_i")),
    mistake('ignore_c', "",
        Mutant("peephole_cell", "        if c is None:\n", "        if True:\n", name="given_c_ignored",
            description="the c passed in is replaced by zeros", message=r"ignores the given c")),
    mistake('o_peeks_old_c',
        "",
        Mutant("diagonal_peephole_cell",
            "self.v_o * c_next",
            "self.v_o * c",
            name='diagonal_output_gate_on_old_c',
            description="the diagonal cell's output gate peeks at c_{t-1}",
            message="previous cell state")),
    mistake("on_h_*", "",
        Mutant("peephole_cell", THREE, THREE.replace("+ c @", "+ h @"), name="peepholes_on_h",
               description="peepholes multiply h instead of c", message=r"instead of the cell state", bug="on_h_fio")),
    mistake("peeking_*", "",
        Mutant("peephole_cell", 'o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)',
               'o = sigmoid(self.preactivation("o", x, h))', name="output_gate_not_peeking",
               description="the output gate has no peephole", message=r"output gate has no peephole",
               bug="peeking_fi")),
)
