"""Notebook 2's mistakes: the stack (the suspects of ``checks.stacked_lstm``), its output and states, batch_first."""

from . import Mutant, mistake, suspect, table

RETURN = "return output, (torch.stack(hs), torch.stack(cs))"
PASS_UP = "                x_t = hs[k]\n            outputs.append(x_t)"
LOOP = ("        for x_t in x.unbind(0):\n"
        "            for k, layer in enumerate(self.layers):\n"
        "                hs[k], cs[k] = layer(x_t, hs[k], cs[k])\n"
        "                x_t = hs[k]\n"
        "            outputs.append(x_t)\n")
LOOP_OUTPUT_FIRST = ("        for x_t in x.unbind(0):\n"
                     "            outputs.append(hs[-1])\n"
                     "            for k, layer in enumerate(self.layers):\n"
                     "                hs[k], cs[k] = layer(x_t, hs[k], cs[k])\n"
                     "                x_t = hs[k]\n")
SHARED_OLD = ("        hs, cs = list(h0.unbind(0)), list(c0.unbind(0))\n"
              "        outputs = []\n"
              "        for x_t in x.unbind(0):\n"
              "            for k, layer in enumerate(self.layers):\n"
              "                hs[k], cs[k] = layer(x_t, hs[k], cs[k])\n")
SHARED_NEW = ("        hs, cs = list(h0.unbind(0)), list(c0.unbind(0))\n"
              "        h, c = h0[0], c0[0]\n"
              "        outputs = []\n"
              "        for x_t in x.unbind(0):\n"
              "            for k, layer in enumerate(self.layers):\n"
              "                h, c = hs[k], cs[k] = layer(x_t, h, c)\n")

MISTAKES = table(
    suspect('state_from_below',
        ("it matches a stack in which each layer above the first starts its step from the (h, c) the layer "
         "below just computed. Each layer keeps its own state: layer 2 gets layer 1's h_t as its input and its "
         "own (h, c) from step t-1 (starting from h0[1], c0[1]) as its state."),
        Mutant("lstm",
            "layer(x_t, hs[k], cs[k])",
            "layer(x_t, hs[0], cs[0])",
            name='state_from_layer1',
            description="every layer starts its step from layer 1's state",
            message="the layer below just computed")),
    suspect('shared_state',
        ("it matches a stack that threads one single (h, c) through all layers and steps. Keep one state per "
         "layer (hs[k], cs[k]): layer 2 gets layer 1's h_t as its input and its own (h, c) from step t-1 "
         "(starting from h0[1], c0[1]) as its state."),
        Mutant("lstm", SHARED_OLD, SHARED_NEW, name="one_state_for_all_layers",
            description="one (h, c) threaded through every layer and step", message=r"one single \(h, c\)")),
    suspect('initial_from_layer1',
        ("it matches a stack in which every layer starts from h0[0], c0[0]. Layer k+1 starts from its own "
         "initial state h0[k], c0[k]."),
        Mutant("lstm",
            "hs, cs = list(h0.unbind(0)), list(c0.unbind(0))",
            "hs, cs = [h0[0]] * self.num_layers, [c0[0]] * self.num_layers",
            description="every layer starts from h0[0], c0[0]",
            message="every layer starts from h0\\[0\\]")),
    suspect('zero_initial',
        ("it matches a stack that ignores the given h0 and c0 and starts from zeros: use them when they are "
         "given (zeros only when they are None)."),
        Mutant("lstm",
            ("h0 = x.new_zeros(state_shape) if h0 is None else h0\n"
             "        c0 = x.new_zeros(state_shape) if c0 is None else c0"),
            "h0 = x.new_zeros(state_shape)\n        c0 = x.new_zeros(state_shape)", name="ignore_h0_c0",
            description="h0 and c0 ignored: always zeros", message=r"ignores the given h0 and c0")),
    suspect('zero_h0',
        ("it matches a stack that ignores the given h0 and starts from h = 0 (c0 is used): use h0 when it is "
         "given (zeros only when it is None)."),
        Mutant("lstm",
            "h0 = x.new_zeros(state_shape) if h0 is None else h0",
            "h0 = x.new_zeros(state_shape)",
            name='ignore_h0',
            description="the given h0 is ignored",
            message="ignores the given h0")),
    suspect('zero_c0',
        ("it matches a stack that ignores the given c0 and starts from c = 0 (h0 is used): use c0 when it is "
         "given (zeros only when it is None)."),
        Mutant("lstm", "c0 = x.new_zeros(state_shape) if c0 is None else c0", "c0 = x.new_zeros(state_shape)",
            name="ignore_c0", description="c0 ignored: always zeros", message=r"ignores the given c0")),
    suspect('no_carry',
        ("it matches a stack that restarts every step from h0 and c0: carry each layer's (h, c) from step t-1 "
         "to step t."),
        Mutant("lstm",
            "        for x_t in x.unbind(0):\n",
            "        for x_t in x.unbind(0):\n            hs, cs = list(h0.unbind(0)), list(c0.unbind(0))\n",
            description="the state restarts from h0, c0 at every step",
            message="restarts every step")),
    suspect('input_to_all',
        ("it matches a stack in which every layer reads x_t. Only layer 1 reads the input; layer 2 reads layer "
         "1's h_t of the same step."),
        Mutant("lstm", PASS_UP, "            outputs.append(hs[-1])", name="layer2_gets_x",
            description="layer 2 is fed x_t instead of layer 1's h_t", message=r"every layer reads x_t")),
    suspect('c_passed_up',
        ("it matches a stack that hands the layer below's cell state c_t up as the input. Layer 2's input is "
         "layer 1's hidden state h_t; c stays inside its layer."),
        Mutant("lstm",
            "x_t = hs[k]\n",
            "x_t = cs[k]\n",
            description="layer 1's cell state is handed up instead of its h",
            message="cell state c_t up as the input")),
    suspect('h_c_swapped',
        "it matches a stack that passes a layer's state to its cell as (c, h): the cell's signature is cell(x, h, c).",
        Mutant("lstm",
            "layer(x_t, hs[k], cs[k])",
            "layer(x_t, cs[k], hs[k])",
            description="state passed to the cell as (c, h)",
            message="cell\\(x, h, c\\)")),
    mistake('h_n_c_n_swapped', "",
        Mutant("lstm", RETURN, "return output, (torch.stack(cs), torch.stack(hs))",
            description="returns (c_n, h_n)", message=r"h_n and c_n are swapped")),
    mistake('upper_layer_differs', "",
        Mutant("lstm", "        hs, cs = list(h0.unbind(0)), list(c0.unbind(0))\n",
            "        hs, cs = list(h0.unbind(0)), list(c0.unbind(0))\n"
            "        for k in range(1, self.num_layers):\n"
            "            hs[k], cs[k] = torch.zeros_like(hs[k]), torch.zeros_like(cs[k])\n",
            name="upper_layers_from_zeros", description="the layers above the first start from zeros",
            message=r"check what layer \d+ receives")),
    mistake('output_not_top_h', "",
        Mutant("lstm", LOOP, LOOP_OUTPUT_FIRST, name="output_one_step_late",
            description="output[t] appended before step t runs: the top h of step t-1",
            message=r"output is the last layer's h_t at every step")),
    mistake('output_reversed', "",
        Mutant("lstm", "output = torch.stack(outputs)", "output = torch.stack(outputs[::-1])",
            description="output lists the steps last to first", message=r"in reverse")),
    mistake('h_n_initial_state', "",
        Mutant("lstm", RETURN, "return output, (h0, torch.stack(cs))", name="returns_h0",
            description="returns h0 as h_n", message=r"h_n still holds the initial state")),
    mistake('c_n_initial_state', "",
        Mutant("lstm", RETURN, "return output, (torch.stack(hs), c0)", name="returns_c0",
            description="returns c0 as c_n", message=r"c_n still holds the initial state")),
    mistake('h_n_top_down', "",
        Mutant("lstm", RETURN, "return output, (torch.stack(hs[::-1]), torch.stack(cs))", name="h_n_reversed",
            description="h_n lists the layers top first", message=r"h_n lists the layers top-down")),
    mistake('c_n_top_down', "",
        Mutant("lstm", RETURN, "return output, (torch.stack(hs), torch.stack(cs[::-1]))", name="c_n_reversed",
            description="c_n lists the layers top first", message=r"c_n lists the layers top-down")),
    mistake('first_layer_differs', "",
        Mutant("lstm", "        hs, cs = list(h0.unbind(0)), list(c0.unbind(0))\n",
            "        hs, cs = list(h0.unbind(0)), list(c0.unbind(0))\n"
            "        hs[0], cs[0] = torch.zeros_like(hs[0]), torch.zeros_like(cs[0])\n",
            name="first_layer_from_zeros", description="the first layer starts from zeros, not h0[0], c0[0]",
            message=r"first layer's final state")),
    mistake('batch_first_not_transposed',
        "",
        Mutant("lstm",
            "        if self.batch_first and batched:\n            x = x.transpose(0, 1)\n",
            "",
            name='batch_first_ignored',
            description="batch_first input not transposed",
            message="batch_first=True, x is \\(batch, seq_len, input_size\\)")),
    mistake('batch_first_unbatched',
        "",
        Mutant("lstm",
            "        if self.batch_first and batched:\n            x = x.transpose(0, 1)",
            "        if self.batch_first:\n            x = x.transpose(0, 1)",
            description="an unbatched x transposed too",
            message="unbatched x is still \\(seq_len, input_size\\)")),
    mistake("output_first_layer",
        "output holds the first layer's h_t: output is the last (top) layer's h_t at every step.",
        Mutant("lstm", "            outputs.append(x_t)", "            outputs.append(hs[0])",
               description="output holds layer 1's h", message=r"first layer's h_t")),
    mistake("output_top_cells",
        "output holds the last layer's cell state c_t: output is its hidden state h_t.",
        Mutant("lstm", "            outputs.append(x_t)", "            outputs.append(cs[-1])",
               name="output_cell_state",
               description="output holds the top layer's c", message=r"cell state c_t: output is its hidden state")),
)
