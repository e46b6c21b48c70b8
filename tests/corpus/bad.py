"""Submissions that are broken, not hostile: each must be graded for what works, with a message."""

import copy
import json
import warnings

import nbformat

from . import (
    FULL,
    ZERO,
    A,
    Case,
    answers,
    extra_cell,
    index_of,
    reference,
    submit_bytes,
    submit_nb,
    with_cell_after,
)


def _without(*grade_ids):
    def make(course):
        nb = reference(course)
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]
        return nb

    return make


def _duplicated(course):
    nb = reference(course)
    k = index_of(nb, "sigmoid")
    first = copy.deepcopy(nb.cells[k])
    first.source = "def sigmoid(x):\n    raise NotImplementedError  # first try, abandoned\n"
    del first["id"]
    nb.cells.insert(k, first)  # the student's later copy (the working one) comes last
    t = index_of(nb, "cell_init")
    twin = copy.deepcopy(nb.cells[t])
    del twin["id"]
    nb.cells.insert(t, twin)
    with warnings.catch_warnings():  # the copies have no cell ids, as in a notebook from an older Jupyter
        warnings.simplefilter("ignore")
        return nbformat.from_dict(json.loads(nbformat.writes(nb)))


def _reordered(course):
    nb = reference(course)
    k = index_of(nb, "load_from_torch")
    answer = nb.cells.pop(k)
    nb.cells.insert(0, answer)
    a, b = index_of(nb, "cell_forward"), index_of(nb, "cell_gradients")
    nb.cells[a], nb.cells[b] = nb.cells[b], nb.cells[a]
    return nb


def _to_markdown(course):
    nb = reference(course)
    for gid in ("lstm_cell", "cell_forward"):
        k = index_of(nb, gid)
        cell = nb.cells[k]
        md = nbformat.v4.new_markdown_cell(cell.source)
        md.metadata = cell.metadata
        nb.cells[k] = md
    return nb


def _other_kernel(course):
    nb = reference(course)
    nb.metadata["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia 1.9.0", "language": "julia"}
    nb.metadata["language_info"] = {"name": "julia"}
    return nb


def _truncated_json(course):
    text = nbformat.writes(reference(course))
    return text[: len(text) // 2].encode()


def _other_assignment(course):
    return nbformat.writes(nbformat.read(course.notebook("notebooks", OTHER), as_version=4)).encode()


def _no_notebook(course, student):
    folder = course.notebook("submitted", A, student).parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "my_answers.py").write_text(answers(course)["sigmoid"])


def _warns(course):
    warn = '\n    warnings.warn("sigmoid: float32 inputs lose precision", UserWarning)'
    sigmoid = answers(course)["sigmoid"].replace("def sigmoid(x):", "def sigmoid(x):" + warn, 1)
    nb = reference(course, sigmoid="import warnings\n\n" + sigmoid)
    # and a PyTorch warning at the top level: copy-constructing a tensor from a tensor
    return with_cell_after(nb, "sigmoid", "y = torch.tensor(torch.ones(3))\nprint(y)")


OTHER = "99_other_course"  # a tiny second assignment the test course gets, for "wrong assignment"
LOOP = "while True:\n    pass\n"

CASES = [
    Case("syntax_error", submit_nb(lambda c: reference(c, load_from_torch=answers(c)["load_from_torch"]
                                                       + "\n\ndef oops(:\n    pass\n")),
         {**FULL, "load_from_torch": 0.0}, ["SyntaxError"], about="a syntax error in one answer cell"),
    Case("exception_in_answer", submit_nb(lambda c: reference(
        c, load_from_torch='raise RuntimeError("not finished yet")\n' + answers(c)["load_from_torch"])),
        {**FULL, "load_from_torch": 0.0}, ["not finished yet"], about="an answer cell raises"),
    Case("infinite_loop", extra_cell("sigmoid", LOOP), FULL, ["CellTimeoutError"],
         about="an infinite loop: interrupted at the cell timeout"),
    Case("loop_ignoring_interrupts", extra_cell(
        "load_from_torch", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + LOOP), FULL,
        ["stayed busy after being interrupted"], {"cell-skipped"},
        about="an infinite loop that ignores KeyboardInterrupt: the kernel is replaced, the cell skipped"),
    Case("memory_bomb", extra_cell("load_from_torch", "hog = []\nwhile True:\n    hog.append(bytearray(2**28))\n"),
         FULL, ["MemoryError"], about="allocates until the address-space limit"),
    Case("torch_memory_bomb", extra_cell("lstm_cell", "big = torch.empty(2**38)\n"), FULL,
         ["allocate"], about="one huge tensor"),
    Case("fork_bomb", extra_cell("load_from_torch", "import os\nwhile True:\n    os.fork()\n"), FULL,
         ["the kernel stopped while running this cell"], {"attempt", "cell-skipped"}, about="a fork bomb"),
    Case("sys_exit", extra_cell("sigmoid", "import sys\nsys.exit(3)\n"), FULL, ["SystemExit"],
         about="sys.exit() (IPython keeps the kernel)"),
    Case("os_exit", extra_cell("lstm_cell", "import os\nos._exit(1)\n"), FULL,
         ["the kernel stopped while running this cell: exited with status 1"], {"cell-skipped"},
         about="os._exit() kills the kernel"),
    Case("os_abort", extra_cell("load_from_torch", "import os\nos.abort()\n"), FULL,
         ["SIGABRT"], {"cell-skipped"}, about="os.abort() kills the kernel"),
    Case("answer_cell_deleted", submit_nb(_without("lstm_cell")), {**FULL, "lstm_cell": 0.0, "load_from_torch": 0.0},
         ["answer cell `lstm_cell` is missing"], about="an answer cell deleted (load_from_torch needs LSTMCell)"),
    Case("test_cells_deleted", submit_nb(_without("cell_forward", "sigmoid_values")), FULL,
         ["test cell `cell_forward` was deleted: the original was put back"], about="test cells deleted"),
    Case("duplicated_cells", submit_nb(_duplicated), FULL,
         ["answer cell `sigmoid` appears 2 times: the last copy was graded", "cell `cell_init` appears 2 times"],
         about="an answer cell and a test cell duplicated"),
    Case("reordered_cells", submit_nb(_reordered), FULL, ["cells had been moved"], about="cells moved around"),
    Case("cells_to_markdown", submit_nb(_to_markdown), FULL,
         ["answer cell `lstm_cell` had been turned into markdown", "cell `cell_forward` had been turned into markdown"],
         about="an answer cell and a test cell changed to markdown"),
    Case("corrupt_json", submit_bytes(_truncated_json), ZERO, ["is not valid JSON"], about="half a notebook"),
    Case("empty_file", submit_bytes(lambda c: b""), ZERO, ["is empty"], about="an empty file"),
    Case("wrong_assignment", submit_bytes(_other_assignment), ZERO,
         [f"a notebook for another assignment ({OTHER})"], about="another assignment's notebook"),
    Case("no_notebook", _no_notebook, ZERO, ["no notebook named 01_lstm_cell.ipynb was submitted"],
         about="a .py file instead of the notebook"),
    Case("print_flood", extra_cell("sigmoid", "for _ in range(4000):\n    print('x' * 2000)\n"), FULL,
         ["this cell sent more output than the grader keeps"], about="8 MB of printed output"),
    Case("torch_warnings", submit_nb(_warns), FULL, [], about="warnings on stderr from the answers and PyTorch"),
    Case("other_kernelspec", submit_nb(_other_kernel), FULL, [], about="a notebook claiming the Julia kernel"),
]

CONTROLS = {"reference": FULL, "planted_bug": {"sigmoid": 2.0, "lstm_cell": 3.0, "load_from_torch": 2.0}}


def other_assignment_source():
    """A minimal one-exercise assignment (its own grade ids) for the 'wrong assignment' case."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "lstm-course", "display_name": "Python (LSTM course)", "language": "python"}
    answer = nbformat.v4.new_code_cell(
        "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n")
    answer.metadata["nbgrader"] = {"grade": False, "grade_id": "double", "locked": False, "schema_version": 3,
                                   "solution": True, "task": False}
    test = nbformat.v4.new_code_cell("assert double(2) == 4")
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "double_test", "locked": True, "points": 1,
                                 "schema_version": 3, "solution": False, "task": False}
    nb.cells = [answer, test]
    return nb


__all__ = ["A", "CASES", "CONTROLS", "OTHER", "other_assignment_source"]
