"""The visible-check zoo: a classic mistake must be stopped by its own part's visible check, with a
message that names it, before it can surface later under a misleading hint.

Each case fills the release with the reference answers, applies one mistake, runs the notebook's cells
in order (the release's grading cells hold only a comment and are skipped) and records the first cell
that raises. One kernel per notebook runs all its cases, with the namespace reset between them.
"""

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import zoo as bug_zoo
from autograder.host.course import ROOT
from autograder.host.submissions import Mutation, fill, nbgrader_meta, read, reference_answers
from autograder.zoo import lstm_cell as zoo_1
from autograder.zoo import real_data as zoo_7
from autograder.zoo import stacked_lstm as zoo_2


def zoo(module, name):
    """The zoo's mutant ``name`` (the mistake's own record, for a mistake the hidden tests name)."""
    return bug_zoo.mutant(module.A, name)


def mistake(assignment, name, cell, old, new):
    return Mutation(name, assignment, cell, old, new)


NB1, NB2, NB7 = "01_lstm_cell", "02_stacked_lstm", "07_real_data"
# Correct answers in other styles (the grader's corpus): they must pass every visible check, like the reference.
STYLES = {NB1: zoo_1.STYLES, NB2: zoo_2.STYLES, NB7: zoo_7.STYLES}
# (mutation, the visible check cell that must stop it first, what its message must say)
CASES = {
    NB1: [
        (zoo(zoo_1, "sigmoid_abs_slope"), "sigmoid_check", r"σ′\(0\) is 0: a sigmoid built on x\.abs\(\)"),
        (zoo(zoo_1, "sigmoid_naive"), "sigmoid_check", r"gradient at large \|x\|.*non-positive"),
        (mistake(NB1, "forget_b_f", "lstm_cell", 'f = sigmoid(self.preactivation("f", x, h))',
                 'f = sigmoid(self.preactivation("f", x, h) - self.b_f)'),
         "lstm_cell_check", r"forget gate misses its bias"),
        (mistake(NB1, "h_from_previous_c", "lstm_cell", "h_next = o * torch.tanh(c_next)",
                 "h_next = o * torch.tanh(c)"),
         "lstm_cell_check", r"h_next = o \* tanh\(c_\{t-1\}\)"),
        (zoo(zoo_1, "bias_dropped"), "lstm_cell_check", r"miss their biases"),
        (zoo(zoo_1, "f_i_swapped"), "lstm_cell_check", r"forget and input gates are swapped"),
        (zoo(zoo_1, "candidate_sigmoid"), "lstm_cell_check", r"candidate is c~ = tanh"),
        (zoo(zoo_1, "no_tanh_on_c"), "lstm_cell_check", r"squash the new cell state"),
        (zoo(zoo_1, "W_not_transposed"), "lstm_cell_check", r"h @ W instead of h @ W\.T"),
        (zoo(zoo_1, "given_h_ignored"), "lstm_cell_check", r"h passed in is ignored"),
        (zoo(zoo_1, "given_c_ignored"), "lstm_cell_check", r"c passed in is ignored"),
        (mistake(NB1, "init_half_range", "lstm_cell", "nn.init.uniform_(p, -k, k)",
                 "nn.init.uniform_(p, -k / 2, k / 2)"),
         "lstm_cell_check", r"the bound is k = 1/sqrt\(H\) itself \(not k/2\)"),
        (mistake(NB1, "init_zeros", "lstm_cell", "nn.init.uniform_(p, -k, k)", "nn.init.zeros_(p)"),
         "lstm_cell_check", r"is all zeros"),
        (zoo(zoo_1, "init_plus_minus_one"), "lstm_cell_check", r"outside U\(-k, k\)"),
        (zoo(zoo_1, "load_gate_order"), "load_check", r"the order is i, f, g, o"),
    ],
    NB2: [
        (zoo(zoo_2, "c_passed_up"), "lstm_check", r"layer 2 reads layer 1's cell state c"),
        (zoo(zoo_2, "layer2_gets_x"), "lstm_check", r"Does every layer read x_t\?"),
        (zoo(zoo_2, "state_from_layer1"), "lstm_check", r"layer 2 starts its step from layer 1's state"),
        (zoo(zoo_2, "output_cell_state"), "lstm_check", r"output\[-1\] vs h_n\[-1\]"),
        (zoo(zoo_2, "load_f_i_swapped"), "load_check", r"i, f, g, o"),
    ],
    NB7: [
        (zoo(zoo_7, "reshape_not_transpose"), "sequences_check", r"reshape keeps the memory order"),
        (zoo(zoo_7, "columns_as_steps"), "sequences_check", r"column t of image n"),
        (zoo(zoo_7, "pixels_not_scaled"), "sequences_check", r"divide the pixels by 16"),
        (zoo(zoo_7, "labels_from_one"), "sequences_check", r"labels should come back unchanged"),
        (zoo(zoo_7, "head_on_first_layer"), "classifier_check", r"h_n\[0\], the first layer's state"),
        (zoo(zoo_7, "head_reads_c"), "classifier_check", r"the cell state c_n\[-1\]"),
        (zoo(zoo_7, "accuracy_percent"), "evaluation_check", r"a percentage"),
        (zoo(zoo_7, "confusion_transposed"), "evaluation_check", r"transposed: rows are the TRUE classes"),
        (zoo(zoo_7, "vocabulary_repeats"), "vocab_check", r"every character once"),
        (zoo(zoo_7, "batchify_interleaved"), "batching_check", r"interleaved"),
        (zoo(zoo_7, "targets_not_shifted"), "batching_check", r"y equals x"),
        (zoo(zoo_7, "loss_summed"), "tbptt_check", r"MEAN cross-entropy"),
        (zoo(zoo_7, "temperature_multiplies"), "sample_check", r"not multiply"),
        (zoo(zoo_7, "generator_ignored"), "sample_check", r"same generator seed"),
    ],
}


def first_failure(client, nb):
    """(grade_id, error message) of the first cell of nb that raises, or None if every cell runs."""
    client.nb = nb
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or nbgrader_meta(cell).get("grade"):
            continue
        client.execute_cell(cell, index)
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if errors:
            return nbgrader_meta(cell).get("grade_id"), f"{errors[0].ename}: {errors[0].evalue}"
    return None


def run_all(assignment, notebook_dir="notebooks"):
    """The result of the reference, of each correct style ("style <name>") and of each case, in one kernel."""
    answers = reference_answers(read(ROOT / "source" / assignment / f"{assignment}.ipynb"))
    release = read(ROOT / notebook_dir / assignment / f"{assignment}.ipynb")
    client = NotebookClient(nbformat.v4.new_notebook(), kernel_name="lstm-course", timeout=300,
                            allow_errors=True)
    reset = nbformat.v4.new_code_cell("%reset -f\n%matplotlib agg\nimport matplotlib.pyplot\n"
                                      "matplotlib.pyplot.close('all')")
    results = {}
    # the notebook as the grader runs it: notebook 7 trains for a few minibatches only
    with client.setup_kernel(env={**os.environ, "NBGRADER_EXECUTION": "autograde"}):
        runs = [("reference", answers)]
        runs += [(f"style {name}", {**answers, **style}) for name, style in STYLES[assignment].items()]
        runs += [(m.name, m.apply(answers)) for m, _, _ in CASES[assignment]]
        for name, filled in runs:
            client.nb = nbformat.v4.new_notebook(cells=[reset])
            client.execute_cell(reset, 0)
            results[name] = first_failure(client, fill(release, filled))
    return results




def mismatches(cases, results):
    """The cases whose first failing cell, or its message, is not the expected one."""
    wrong = []
    for mutation, check, message in cases:
        got = results[mutation.name]
        if got is None or got[0] != check or not re.search(message, got[1]):
            wrong.append(f"{mutation.name}: expected {check} to fail with /{message}/, got {got}")
    return wrong


@pytest.mark.parametrize("assignment", list(CASES))
def test_each_mistake_stops_at_its_own_check(assignment):
    results = run_all(assignment)
    assert results.pop("reference") is None, "the reference answers must pass every visible check"
    for name in STYLES[assignment]:
        assert results.pop(f"style {name}") is None, f"the correct style {name} must pass every visible check"
    wrong = mismatches(CASES[assignment], results)
    assert not wrong, "\n".join(wrong)


def test_a_mistake_caught_late_or_unnamed_is_reported():
    case = CASES[NB1][2]  # forget_b_f
    name = case[0].name
    assert mismatches([case], {name: ("lstm_cell_check", "AssertionError: the forget gate misses its bias")}) == []
    for late_or_vague in (None, ("load_check", "AssertionError: the forget gate misses its bias"),
                          ("lstm_cell_check", "AssertionError: c_next differs from the expected value by 0.1")):
        assert mismatches([case], {name: late_or_vague})
