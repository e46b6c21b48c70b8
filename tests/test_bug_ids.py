"""Bug ids are made on the grader's side only: what the kernel sends picks at most one of the grader's fixed ids,
and nothing the kernel writes to the grading log becomes a verdict. (The zoo tests assert each mutant's id through
real nbgrader; the demo's report test, the counts.)"""

import torch

from autograder import gradelog
from autograder.checks import harness, suspects
from autograder.checks.diagnose import name_cell_bug
from autograder.checks.oracles import CELL_PARAMS
from autograder.host import sandbox


def _qualified(failure):
    return harness.qualify(failure, "lstm_cell", "cell_forward").bug


def test_a_failure_without_a_diagnosis_gets_the_checks_own_id_and_a_named_one_its_mistake():
    assert _qualified(harness.GradingFailure("differs")) == "lstm_cell.cell_forward"
    named = harness.GradingFailure("h_next matches o * c_next", bug="no_tanh_on_c")
    assert _qualified(named) == "lstm_cell.no_tanh_on_c" and named.named
    assert _qualified(harness.ReadyMadeLSTMUsed("calls nn.LSTM")) == "lstm_cell.ready_made_lstm"


def test_what_the_student_raised_never_becomes_a_bug_id():
    forged = {"kind": "error", "type": "ValueError", "message": "bug=lstm_cell.no_tanh_on_c", "bug": "x.y",
              "rule": "sigmoid"}
    failure = harness.student_failure(forged, "LSTMCell.forward")
    assert failure.bug is None and _qualified(failure) == "lstm_cell.cell_forward"
    # a rule the check did not forbid is not one of its ids; one it did forbid is the grader's own string
    assert harness.student_failure({**forged, "kind": "forbidden", "rule": "../../etc"}, "f", {"sigmoid": "no"}).bug \
        is None
    assert harness.student_failure({**forged, "kind": "forbidden"}, "f", {"sigmoid": "no"}).bug == "forbidden_sigmoid"
    assert harness.student_failure({"kind": "not-implemented"}, "f").named is False


def test_the_kernel_cannot_write_a_verdict_into_the_grading_log(tmp_path):
    record = sandbox.kernel_record(b"verdict\tcell=cell_forward\tbug=lstm_cell.no_tanh_on_c\tpassed=False")
    assert record["kind"] == "garbled"
    log = tmp_path / "student.jsonl"
    gradelog.append(log, {"kind": "grading"})
    gradelog.append(log, {"kind": "verdict", "cell": "cell_forward", "passed": True})
    gradelog.append(log, {"kind": "verdict", "cell": "cell_forward", "bug": "lstm_cell.f_i_swapped", "from": "kernel"})
    gradelog.append(log, {"kind": "verdict", "cell": "cell_init", "passed": False, "bug": "lstm_cell.init_too_wide"})
    assert {c: r.get("bug") for c, r in gradelog.verdicts(log).items()} == {
        "cell_forward": None, "cell_init": "lstm_cell.init_too_wide"}
    gradelog.append(log, {"kind": "grading"})  # graded again: only the new run's verdicts count
    assert gradelog.verdicts(log) == {}


def test_a_suspects_name_is_its_bug_id():
    torch.manual_seed(0)
    params = {n: torch.randn((3, 2) if n[0] == "U" else (3, 3) if n[0] == "W" else (3,), dtype=torch.float64)
              for n in CELL_PARAMS}
    x, h, c = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64), \
        torch.randn(4, 3, dtype=torch.float64)
    got_h, got_c = suspects.mistake("no_tanh_on_c")(params)(x, h, c)
    assert name_cell_bug(params, x, h, c, got_h, got_c)[0] == "no_tanh_on_c"
    right_h, right_c = suspects.Step(params)(x, h, c)
    assert name_cell_bug(params, x, h, c, right_h + 1, right_c + 1) is None
    assert suspects.bug_id(("peeking", "fi")) == "peeking_fi"
