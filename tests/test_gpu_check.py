"""``make gpu-check``: its CPU half through the real grader, and its comparison on planted differences.

The real run grades notebook 1's reference and two sample mutants twice on the CPU with one seed, and the probe
student through ``nbgrader autograde``; the table must say that every row holds and the exit status must be 0.
Each rule of the comparison is then shown failing on a planted difference (a score, a bug id, a message, a cell
graded once, a kernel on the wrong device, TF32 left on), each next to its untampered control, which holds.
"""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from autograder import gpu_check
from autograder.gpu_check import Graded, Row, Verdict
from autograder.host.course import ROOT

MUTANTS = gpu_check.SAMPLE["01_lstm_cell"][:2]


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "LSTM_COURSE_DEVICE": "cpu"}
    done = subprocess.run([sys.executable, "-m", "autograder.gpu_check", "--assignments", "01_lstm_cell",
                           "--mutants", "2", "--seed", "7", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return done, (out / "summary.md").read_text() if (out / "summary.md").exists() else ""


def _row(summary: str, check: str) -> str:
    return next((line for line in summary.splitlines() if f"| {check} |" in line), "")


def _score(row: str) -> tuple[float, float]:
    """(score, max) of a compared submission's row: ``| ok | ... | identical | 8 grading cells, 13/13, graded |``."""
    score, top = row.split("grading cells, ")[1].split(",")[0].split("/")
    return float(score), float(top)


def test_cpu_run_holds_and_exits_0(cpu_run):
    done, summary = cpu_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert summary.strip() in done.stdout  # the table printed is the one written
    assert "LSTM_GRADER_SEED=7" in summary and summary.rstrip().endswith("all rows hold")
    reference = _row(summary, "01_lstm_cell / reference")
    assert reference.startswith("| ok |") and "| identical |" in reference, reference
    score, top = _score(reference)
    assert score == top > 0, reference
    for name in MUTANTS:  # each mutant graded as the mistake it is, the same both times
        row = _row(summary, f"01_lstm_cell / bug-{name}")
        assert row.startswith("| ok |") and "| identical |" in row, row
        assert _score(row)[0] < top, row
    assert _row(summary, "kernels booted on cpu").startswith("| ok |")
    assert "| n/a (cpu) |" in _row(summary, "TF32 off in the grading kernel (matmul, cuDNN)")
    e2e = _row(summary, f"nbgrader autograde 01_lstm_cell --student={gpu_check.PROBE_STUDENT}")
    assert e2e.startswith("| ok |") and f"| full marks | {top:g}/{top:g} on cpu" in e2e, e2e


# --------------------------------------------------------------------------- planted differences


def _graded(**cells) -> Graded:
    base = {"cell_forward": Verdict(3.0, 3.0, "", "\u2713 LSTMCell.forward matches torch.nn.LSTMCell."),
            "cell_init": Verdict(0.0, 1.0, "lstm_cell.init_range", "GradingFailure: the spread is 1.0")}
    return Graded("graded", {**base, **cells}, booted=["cuda"])


def test_identical_runs_hold():
    row = gpu_check.compare("01 / reference", _graded(), _graded(), ("cpu", "cuda"))
    assert row == Row("01 / reference", "identical", True, "2 grading cells, 3/4, graded")


@pytest.mark.parametrize("planted, says", [
    ({"cell_forward": Verdict(0.0, 3.0, "", "\u2713 LSTMCell.forward matches torch.nn.LSTMCell.")},
     "cell_forward: score 3/3 on cpu, 0/3 on cuda"),
    ({"cell_init": Verdict(0.0, 1.0, "lstm_cell.cell_init", "GradingFailure: the spread is 1.0")},
     "cell_init: bug id lstm_cell.init_range on cpu, lstm_cell.cell_init on cuda"),
    ({"cell_init": Verdict(0.0, 1.0, "lstm_cell.init_range", "GradingFailure: the spread is 1.1")},
     "cell_init: message on cpu: 'GradingFailure: the spread is 1.0'; on cuda: 'GradingFailure: the spread is 1.1'"),
    ({"extra": Verdict(1.0, 1.0, "", "")}, "extra: graded on cuda only"),
])
def test_a_difference_fails_its_row_and_is_named(planted, says):
    row = gpu_check.compare("01 / reference", _graded(), _graded(**planted), ("cpu", "cuda"))
    assert not row.ok and row.result == "DIFFERENT"
    assert row.detail == says


def test_a_submission_graded_on_one_side_only_fails():
    fallback = replace(_graded(), status="fallback")
    assert "status cpu: graded, cuda: fallback" in gpu_check.compare("x", _graded(), fallback, ("cpu", "cuda")).detail
    missing = gpu_check.compare("x", _graded(), Graded("not graded"), ("cpu", "cuda"))
    assert not missing.ok and "no grades on cuda (status not graded)" in missing.detail


def test_a_kernel_that_booted_elsewhere_fails():
    runs = {("01", "reference"): _graded(), ("01", "bug"): _graded()}
    assert gpu_check.booted_row("cuda", runs).ok
    runs[("01", "bug")] = replace(_graded(), booted=["cpu"])
    row = gpu_check.booted_row("cuda", runs)
    assert not row.ok and row.detail == "1 submission(s) not: 01 / bug"


TF32_OFF = {"cuda": True, "gpu": "NVIDIA H100", "matmul_allow_tf32": False, "cudnn_allow_tf32": False,
            "errors": {"matmul": 2e-7, "conv": 3e-7}, "errors_tf32_on": {"matmul": 3e-4, "conv": 2e-4}}


def test_tf32_off_holds_and_tf32_on_fails():
    assert gpu_check.tf32_row("cuda", TF32_OFF).result == "off"
    assert gpu_check.tf32_row("cuda", TF32_OFF).ok
    switched_on = {**TF32_OFF, "cudnn_allow_tf32": True}
    assert not gpu_check.tf32_row("cuda", switched_on).ok
    measured_on = {**TF32_OFF, "errors": {"matmul": 3e-4, "conv": 3e-7}}  # the switch says off, the numbers disagree
    assert gpu_check.tf32_row("cuda", measured_on).result == "ON"
    assert not gpu_check.tf32_row("cuda", None).ok  # nothing reported proves nothing
    assert not gpu_check.tf32_row("cuda", {"error": "RuntimeError: no CUDA"}).ok
    assert gpu_check.tf32_row("cpu", None) == Row(
        "TF32 off in the grading kernel (matmul, cuDNN)", "n/a (cpu)", True, "TF32 is a GPU matmul mode")


def test_the_probe_report_is_read_from_its_line():
    printed = "some output\nGPU-CHECK {\"cuda\": false}\n"
    assert gpu_check.probe_report(printed) == {"cuda": False}
    assert gpu_check.probe_report("GPU-CHECK not json") is None


def test_a_failing_row_makes_the_exit_status_1(monkeypatch, tmp_path):
    rows = [Row("sandbox", "bwrap", True), Row("01 / reference", "DIFFERENT", False, "cell_forward: score ...")]
    monkeypatch.setattr(gpu_check, "check", lambda *args, **kwargs: rows)
    assert gpu_check.main(["--seed", "3", "--out", str(tmp_path)]) == 1
    summary = (tmp_path / "summary.md").read_text()
    assert "| !! | 01 / reference | DIFFERENT | cell_forward: score ... |" in summary
    assert summary.rstrip().endswith("1 row(s) do NOT hold")
    monkeypatch.setattr(gpu_check, "check", lambda *args, **kwargs: rows[:1])
    assert gpu_check.main(["--seed", "3", "--out", str(tmp_path)]) == 0


# --------------------------------------------------------------------------- what travels to the GPU machine


def test_the_carried_wheels_are_pinned_and_never_torch():
    versions = gpu_check.pinned(gpu_check.CARRY)
    assert versions["nbgrader"] == "0.9.6" and versions["ipykernel"] == "7.4.0"  # requirements.txt's pins
    assert not [n for n in gpu_check.CARRY if n.lower().startswith(gpu_check.NEVER_CARRIED)]


def test_the_wheel_folder_and_the_summary_are_ignored():
    for path in (".whl/nbgrader-0.9.6-py3-none-any.whl", "gpu-check/summary.md"):
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert done.returncode == 0, f"{path} is not git-ignored"


def test_install_refuses_a_carried_torch_and_a_venv_it_did_not_make(tmp_path):
    wheel = tmp_path / "torch-2.13.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"")
    with pytest.raises(SystemExit, match="never carried"):
        gpu_check.install(tmp_path, venv=tmp_path / "venv")
    assert not Path(tmp_path / "venv").exists()
    wheel.rename(tmp_path / "nbgrader-0.9.6-py3-none-any.whl")
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").write_text("")  # a course environment of `make setup`'s
    with pytest.raises(SystemExit, match="not one `make gpu-install` made"):
        gpu_check.install(tmp_path, venv=tmp_path / "venv")
