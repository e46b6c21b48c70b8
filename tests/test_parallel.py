"""Parallel grading into one gradebook gives exactly what serial grading gives; the same submission
always gets the same score; JOBS and DEVICE reach the grader through `make autograde`; without
bubblewrap grading still works and says so loudly.

The module's two graded courses are read, never changed: a test that grades more does it in its own copy."""

import json
import os
import shutil

import pytest
import torch
from corpus import LIMITS, ZERO, A, answers, environ, make_autograde, reference, release

from autograder.demo import PLANTED
from autograder.host import batch, report
from autograder.host.batch import grade
from autograder.host.course import Course
from autograder.host.submissions import fill, reference_submission, submit

# An LSTMCell that is right or wrong by a coin flip on every call: only seeding makes its score repeatable.
FLAKY_FORWARD = """
_right_forward = LSTMCell.forward


def forward(self, x, h=None, c=None):
    h_next, c_next = _right_forward(self, x, h, c)
    if torch.rand(()) < 0.5:
        return h_next * 1.001, c_next
    return h_next, c_next


LSTMCell.forward = forward
"""
# The kernel collects nothing while it starts, then freezes what start-up made (autograder/kernel/boot.py): the
# student's code must still run with the collector on. (The grader's scan withholds this student's points for
# reaching for `gc`; the kernel runs the cell all the same.)
GC_STATE = 'import gc\nprint("collector on:", gc.isenabled(), "| start-up frozen:", gc.get_freeze_count() > 10**5)\n'


def _submissions(course):
    from corpus import with_cell_after

    submit(course, "reference", A, reference_submission(course, A))
    submit(course, "untouched", A, release(course))
    submit(course, "planted_bug", A, reference_submission(course, A, PLANTED[A]))
    submit(course, "flaky", A, with_cell_after(reference(course), "lstm_cell", FLAKY_FORWARD))
    submit(course, "gc_state", A, with_cell_after(reference(course), "lstm_cell", GC_STATE))
    wrong_load = answers(course)["load_from_torch"].replace("torch_cell.bias_ih + torch_cell.bias_hh",
                                                            "torch_cell.bias_ih")
    submit(course, "half_right", A, fill(release(course), {**answers(course), "load_from_torch": wrong_load}))


SEED = "20261201"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, released):
    serial = released(tmp_path_factory.mktemp("serial"), A)
    parallel = released(tmp_path_factory.mktemp("parallel"), A)
    for course in (serial, parallel):
        _submissions(course)
    # every grading run draws its own inputs; with the same grader seed both draw the same, so that even
    # the numbers in the messages agree
    with environ(**LIMITS, LSTM_GRADER_SEED=SEED):
        one = grade(serial, A, jobs=1)
    two = make_autograde(parallel, jobs=2, env={"LSTM_GRADER_SEED": SEED})
    return serial, parallel, one, two


def graded_copy(course: Course, dest) -> Course:
    """A copy of a graded course (source, release, submissions, graded notebooks, logs, gradebook) in ``dest``."""
    shutil.copytree(course.root, dest, symlinks=True)
    return Course(root=dest, db_url=f"sqlite:///{dest / 'gradebook.db'}")


@pytest.fixture
def serial(runs, tmp_path) -> Course:
    """The serially graded course, copied: this test may grade more in it."""
    return graded_copy(runs[0], tmp_path / "serial")


@pytest.fixture
def parallel(runs, tmp_path) -> Course:
    """The course graded two at a time, copied: this test may grade more in it."""
    return graded_copy(runs[1], tmp_path / "parallel")


def _grades(course):
    return {(r.student, r.grade_id): r.score for r in report.scores(course)}


def _test_outputs(course, student):
    """What every grading cell printed or raised: must not depend on how the batch was run."""
    nb = json.loads(course.notebook("autograded", A, student).read_text())
    out = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("grade"):
            out[meta["grade_id"]] = _merged(cell["outputs"])
    return out


def _merged(outputs):
    """Stream text joined per stream (how a print is split into messages depends on timing), then errors."""
    streams = {}
    for o in outputs:
        if o["output_type"] == "stream":
            text = o["text"]
            streams[o["name"]] = streams.get(o["name"], "") + ("".join(text) if isinstance(text, list) else text)
    return [streams, [(o.get("ename"), o.get("evalue")) for o in outputs if o["output_type"] == "error"]]


def test_both_runs_finish(runs):
    _, _, one, two = runs
    assert one.returncode == 0, one.stdout + one.stderr
    assert two.returncode == 0, two.stdout + two.stderr
    assert "1 job(s) at a time" in one.stdout
    assert "2 job(s) at a time" in two.stdout, two.stdout
    assert "database is locked" not in two.stdout + two.stderr


def test_parallel_grades_equal_serial_grades(runs):
    serial, parallel, _, _ = runs
    one, two = _grades(serial), _grades(parallel)
    assert one and one == two
    totals = report.by_exercise(report.scores(parallel))
    assert totals[("reference", A, "lstm_cell")] == (9.0, 9.0)
    assert totals[("half_right", A, "load_from_torch")] == (0.0, 2.0)
    assert totals[("half_right", A, "lstm_cell")] == (9.0, 9.0)


def test_the_same_submission_gets_the_same_score_and_messages(runs):
    """The coin-flip LSTMCell, graded twice (once serially, once in parallel): identical, cell by cell."""
    serial, parallel, _, _ = runs
    assert _test_outputs(serial, "flaky") == _test_outputs(parallel, "flaky")
    for student in ("reference", "planted_bug", "half_right"):
        assert _test_outputs(serial, student) == _test_outputs(parallel, student), student


def test_student_code_runs_with_the_garbage_collector_on(runs):
    _, parallel, _, _ = runs
    text = parallel.notebook("autograded", A, "gc_state").read_text()
    assert "collector on: True | start-up frozen: True" in text, text[-3000:]  # (its points: the scan withholds)


def test_chunks_share_nbgraders_start_up_and_keep_the_workers_even():
    """Up to 8 notebooks an nbgrader process; a class that fits in one round, one chunk a worker."""
    for workers in (1, 2, 3, 16):
        for n in range(1, 200):
            size = batch.chunk_size(n, workers)
            assert 1 <= size <= 8, (n, workers, size)
            if n <= 8 * workers:
                assert size == -(-n // workers), (n, workers, size)
    assert [batch.chunk_size(n, 2) for n in (1, 2, 4, 6, 20, 42, 100)] == [1, 1, 2, 3, 5, 7, 8]


def test_the_default_is_one_job_per_core():
    assert batch.default_jobs() == os.cpu_count()


def test_device_cuda_without_a_gpu_stops_with_a_clear_message(parallel):
    done = make_autograde(parallel, jobs=2, device="cuda")
    if torch.cuda.is_available():
        assert done.returncode == 0, done.stdout + done.stderr
        assert _grades(parallel)[("reference", "cell_forward")] == 3.0
    else:
        assert done.returncode != 0
        assert "DEVICE=cuda asks for a GPU, but PyTorch sees no CUDA device" in done.stderr + done.stdout


def test_without_bubblewrap_grading_still_works_and_says_so(serial):
    with environ(**LIMITS, LSTM_BWRAP="/nonexistent/bwrap"):
        done = grade(serial, A, "reference", jobs=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING: grading WITHOUT a sandbox" in done.stdout
    assert "apt-get install bubblewrap" in done.stdout
    assert report.by_exercise(report.scores(serial))[("reference", A, "lstm_cell")] == (9.0, 9.0)
    log = (serial.dir("autograded") / ".grading" / "logs" / A / "reference.jsonl").read_text()
    assert '"sandbox": "none"' in log and '"kind": "boot"' in log and '"kind": "graded"' in log


def test_a_submission_nbgrader_cannot_finish_gets_zero_and_a_message(serial):
    """Past the wall-clock limit of its nbgrader process, a submission is graded as the unanswered release,
    with a note, and the batch goes on."""
    from corpus import with_cell_after

    submit(serial, "sleepy", A, with_cell_after(reference(serial), "sigmoid", "import time\ntime.sleep(120)\n"))
    with environ(CELL_TIMEOUT="200", NOTEBOOK_BUDGET="300", GRADING_TIMEOUT="25"):
        done = grade(serial, A, "sleepy", jobs=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{A} / sleepy: fallback" in done.stdout, done.stdout
    totals = report.by_exercise(report.scores(serial))
    assert {k[2]: v[0] for k, v in totals.items() if k[0] == "sleepy"} == ZERO
    text = serial.notebook("autograded", A, "sleepy").read_text()
    assert "Your submission could not be graded: grading it failed" in text and "ran past 25 s" in text
    assert _grades(serial)[("reference", "cell_forward")] == 3.0  # the others keep their grades


def test_a_notebook_nbgrader_never_reaches_is_tried_again_then_graded_as_the_release(serial):
    """An nbgrader process stopped before it starts the kernel (here: a 1-second limit) leaves the notebook
    unreached; it is tried again a bounded number of times, then falls back, and the batch ends."""
    submit(serial, "unreached", A, reference(serial))
    with environ(GRADING_TIMEOUT="1"):
        done = grade(serial, A, "unreached", jobs=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{A} / unreached: fallback" in done.stdout, done.stdout
    assert done.stdout.count(f"{A} / unreached: not reached") == batch.MAX_TRIES, done.stdout
    text = serial.notebook("autograded", A, "unreached").read_text()
    assert "Your submission could not be graded: grading it failed" in text and "ran past 1 s" in text
    totals = report.by_exercise(report.scores(serial))
    assert {k[2]: v[0] for k, v in totals.items() if k[0] == "unreached"} == ZERO
