"""The grader's scan of the submitted source for PyTorch's ready-made LSTMs, and for an exercise's answer
borrowed from a library (``borrowed``: notebook 7's accuracy from ``sklearn.metrics``).

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


def _tokens(source: str) -> list:
    """The tokens that say something (a NEWLINE kept: it ends a statement), magics and shell lines skipped."""
    lines = source.splitlines()
    text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines) + "\n"
    try:
        return [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def imported_names(source: str, package: str) -> set[str]:
    """The names ``from package[.sub] import a, b as c`` binds in ``source`` (here: a, c)."""
    names, toks = set(), _tokens(source)
    for k, tok in enumerate(toks):
        if tok.string == "from" and k + 1 < len(toks) and toks[k + 1].string == package:
            j = k + 2
            while j < len(toks) and toks[j].string != "import":
                j += 1
            j += 1
            while j < len(toks) and toks[j].type != tokenize.NEWLINE and toks[j].string != ";":
                if toks[j].type == tokenize.NAME and toks[j].string != "as":
                    last = toks[j].string
                    if j + 1 >= len(toks) or toks[j + 1].string != "as":
                        names.add(last)
                j += 1
    return names


def borrowed(solution: str, elsewhere: list[str], package: str) -> list[tuple[int, str]]:
    """(line number, line) of each line of ``solution`` that uses ``package``: the package's name itself
    (``sklearn.metrics.accuracy_score``, ``import sklearn``), or a name imported from it in ``solution`` or in
    any of the cells ``elsewhere`` (``from sklearn.metrics import accuracy_score`` in a scratch cell). Strings
    and comments do not count; a name built at run time escapes, as in ``ready_made_uses``."""
    names = {package} | imported_names(solution, package)
    for source in elsewhere:
        names |= imported_names(source, package)
    toks = _tokens(solution)
    names -= {b.string for a, b in zip(toks, toks[1:], strict=False) if a.string in ("def", "class")}  # own
    lines, found = solution.splitlines(), []
    for tok in toks:
        if tok.type == tokenize.NAME and tok.string in names:
            row = tok.start[0]
            if not found or found[-1][0] != row:
                found.append((row, lines[row - 1].strip()[:160] if row <= len(lines) else ""))
    return found
