"""The grader's scan of the submitted source for PyTorch's ready-made LSTMs.

Defence in depth behind the kernel's block (``autograder.kernel.blockers``), which a submission controls and
can get around: this runs in the grader's process, on the text of the cells the student wrote, and only
tokenizes it (comments and strings do not count). It catches every spelling that reaches an LSTM through
an attribute (``nn.LSTM``, ``torch.nn.LSTMCell``, ``torch.lstm_cell``, ``torch._VF.lstm``, ``torch.ops.aten.lstm``,
``_VariableFunctions``); a name built at run time from strings escapes it, and is what the kernel's block is
for.
"""

import io
import tokenize

AFTER_DOT = frozenset({"LSTM", "LSTMCell", "lstm", "lstm_cell", "_VF", "_VariableFunctions", "_thnn_fused_lstm_cell",
                       "mkldnn_rnn_layer", "_cudnn_rnn", "miopen_rnn", "quantized_lstm", "quantized_lstm_cell",
                       "_lstm_mps", "RNNBase"})
ANYWHERE = frozenset({"_VF", "_VariableFunctions", "_thnn_fused_lstm_cell", "_cudnn_rnn"})


def ready_made_uses(source: str) -> list[tuple[int, str]]:
    """(line number, line) for each use in ``source`` (IPython magics and shell lines are skipped)."""
    lines = source.splitlines()
    text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines) + "\n"
    found, previous = [], None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and (tok.string in ANYWHERE or (
                    tok.string in AFTER_DOT and previous is not None and previous.string == ".")):
                row = tok.start[0]
                if not found or found[-1][0] != row:
                    found.append((row, lines[row - 1].strip()[:160] if row <= len(lines) else ""))
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                previous = tok
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # a cell that does not even tokenize runs into its own error in the kernel
    return found


def notebook_uses(cells) -> list[tuple[int, int, str]]:
    """(cell index, line number, line) over the cells the student wrote (code cells, given as (index, source))."""
    return [(index, row, line) for index, source in cells for row, line in ready_made_uses(source)]
