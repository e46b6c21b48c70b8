"""Broken and hostile submissions for notebook 1, made on the fly from the reference answers.

Each ``Case`` writes one student's submission into a course (``case.build(course, student)``) and says
what grading must give: the score of every exercise (sigmoid 2, lstm_cell 9, load_from_torch 2 for a
correct answer), text the student must see in the graded notebook, and what the grading log must show.
``bad.CASES`` are accidents and crashes; ``hostile.CASES`` attack the grader.
"""

import contextlib
import copy
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.demo import PLANTED
from autograder.host.course import ROOT, Course
from autograder.host.submissions import fill, nbgrader_meta, read, reference_answers, submit

A = "01_lstm_cell"
FULL = {"sigmoid": 2.0, "lstm_cell": 9.0, "load_from_torch": 2.0}
ZERO = {"sigmoid": 0.0, "lstm_cell": 0.0, "load_from_torch": 0.0}


@dataclass
class Case:
    name: str
    build: Callable  # (course, student) -> None: writes submitted/<student>/01_lstm_cell/...
    scores: dict  # exercise -> expected score
    shows: list = field(default_factory=list)  # text the student sees in the graded notebook
    logged: set = field(default_factory=set)  # kinds of grading-log records expected
    about: str = ""


def expect_case(case: Case, scores: dict, graded_text: str) -> None:
    """A graded case earned exactly its scores and its graded notebook says what it must."""
    got = {ex: scores[(case.name, A, ex)][0] for ex in case.scores}
    assert got == case.scores, f"{case.about}: {got}"
    for words in case.shows:
        assert words in graded_text, f"{case.about}: the graded notebook does not say {words!r}"


def answers(course: Course) -> dict:
    return reference_answers(read(course.notebook("source", A)))


def release(course: Course):
    return read(course.notebook("notebooks", A))


def reference(course: Course, **changes):
    """The release filled with the reference answers, some replaced."""
    return fill(release(course), {**answers(course), **changes})


def index_of(nb, grade_id: str) -> int:
    for k, cell in enumerate(nb.cells):
        if nbgrader_meta(cell).get("grade_id") == grade_id:
            return k
    raise KeyError(grade_id)


def with_cell_after(nb, grade_id: str, source: str, cell_type: str = "code"):
    """A copy with a new cell (as a student adds one) right after the cell ``grade_id``."""
    nb = copy.deepcopy(nb)
    new = nbformat.v4.new_code_cell(source) if cell_type == "code" else nbformat.v4.new_markdown_cell(source)
    nb.cells.insert(index_of(nb, grade_id) + 1, new)
    return nb


def submit_nb(nb):
    def build(course: Course, student: str):
        submit(course, student, A, nb(course) if callable(nb) else nb)

    return build


def submit_bytes(data: Callable):
    def build(course: Course, student: str):
        path = course.notebook("submitted", A, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data(course))

    return build


def extra_cell(after: str, source: str):
    """A reference submission with an extra code cell after the cell ``after``."""
    return submit_nb(lambda course: with_cell_after(reference(course), after, source))


# Attacks pair a wrong answer with the attack; the score must stay what the wrong answer earns honestly.
NO_TANH = dict(FULL, lstm_cell=3.0)  # what the planted bug (h = o * c) earns honestly: parameters and init
WRONG_SIGMOID = "def sigmoid(x):\n    return x * 0 + 0.5\n"


def _code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def planted(course, **changes):
    bugged = PLANTED[A].apply(answers(course))
    return fill(release(course), {**bugged, **changes})


def after(nb_of, grade_id, source):
    return submit_nb(lambda course: with_cell_after(nb_of(course), grade_id, _code(source)))


VENV = Path(sys.executable).parent.parent
# Small limits keep the corpus fast: loops are interrupted after 20 s (room for a loaded machine),
# a notebook has 150 s in all.
LIMITS = {"CELL_TIMEOUT": "20", "NOTEBOOK_BUDGET": "150", "LSTM_KERNEL_MEMORY_MB": "3072"}


@contextlib.contextmanager
def environ(**values):
    """These environment variables set for the duration (the grader reads its limits from there)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def make(course: Course, target: str, jobs: int = 2, device: str = "cpu", env: dict | None = None,
         venv: Path = VENV, timeout: float = 1800):
    """`make TARGET` from the repository's Makefile, on a throwaway course (COURSE_ROOT)."""
    full = {**os.environ, **LIMITS, "COURSE_ROOT": str(course.root), **(env or {})}
    if course.db_url and "DB_URL" not in (env or {}):
        full["DB_URL"] = course.db_url
    cmd = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(course.root),
           "-o", f"{venv}/.ready", target, f"VENV={venv}", f"JOBS={jobs}", f"DEVICE={device}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=timeout)


def make_autograde(course: Course, jobs: int = 2, device: str = "cpu", env: dict | None = None):
    """`make autograde` from the repository's Makefile, grading a throwaway course (COURSE_ROOT)."""
    return make(course, "autograde", jobs, device, env)


class Listener:
    """A TCP port on 127.0.0.1 that records whoever connects."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connections = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                conn, addr = self.sock.accept()
                self.connections.append(addr)
                conn.close()
            except OSError:
                continue

    def close(self):
        self.stop = True
        self.thread.join(timeout=2)
        self.sock.close()
