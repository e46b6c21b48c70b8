"""nbgrader preprocessors the course plugs in through nbgrader_config.py."""

import re
import time

from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbgrader.utils import is_grade
from traitlets import Integer, Unicode

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


class BudgetedExecute(Execute):
    """nbgrader's Execute with a budget for the whole notebook on top of the per-cell timeout.

    Once the budget is spent every remaining cell gets one second, so a submission that loops or
    sleeps cannot hold a grading slot for longer than the budget plus one second a cell.
    """

    notebook_budget = Integer(600, help="Seconds for the whole notebook").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_budget
        return super().preprocess(nb, resources, km=km)

    def _get_timeout(self, cell):
        per_cell = super()._get_timeout(cell)
        deadline = getattr(self, "_deadline", None)
        if deadline is None:
            return per_cell
        left = max(1, int(deadline - time.monotonic()))
        return left if per_cell is None else min(per_cell, left)


# A warning as Python prints it: "path:line: SomeWarning: text" and the indented source line after it.
_WARNING = re.compile(r"^[^\n]*:\d+: \w*Warning: [^\n]*\n(?:[ \t]+[^\n]*\n?)?", re.MULTILINE)


class DropKnownWarnings(NbGraderPreprocessor):
    """Remove Python warnings from stderr before grading.

    nbgrader scores a test cell zero when anything reaches stderr, and PyTorch and ipykernel print
    harmless warnings there (CUDA start-up, deprecations). Other stderr text is kept, so it still
    shows up in feedback and still costs the cell.
    """

    pattern = Unicode(_WARNING.pattern, help="Regex of stderr text to drop").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        regex = re.compile(self.pattern, re.MULTILINE)
        outputs = []
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                output.text = regex.sub("", output.text)
                if not output.text.strip():
                    continue
            outputs.append(output)
        cell.outputs = outputs
        return cell, resources


class HideHiddenTests(NbGraderPreprocessor):
    """Replace the hidden part of each grading cell with a one-line placeholder in feedback."""

    placeholder = Unicode(
        "# Hidden tests: their source is shown after the deadline. The message below says what failed."
    ).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and is_grade(cell) and HIDDEN_BEGIN in cell.source:
            cell.source = strip_hidden_tests(cell.source, self.placeholder)
        return cell, resources


def strip_hidden_tests(source: str, placeholder: str = "") -> str:
    kept, hidden = [], False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line:
            hidden = True
            if placeholder:
                kept.append(line[: line.index(HIDDEN_BEGIN)] + placeholder)
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)
