"""nbgrader's own ``autograde`` grades through the batch: its CLI and the Formgrader's Autograde button.

nbgrader's Autograde converter would read ``submitted/`` itself (following links, blocking on a FIFO) and run
every cell in a plain kernel that has no probe, so every hidden test would fail and the class would get
zeros. ``nbgrader_config.py`` calls ``install()``: from then on, in that process, the converter's ``start``
hands the (assignment, student) pairs it was asked for to ``autograder.host.batch`` (or, with ``CLUSTER``
set, to ``autograder.host.cluster``), exactly as ``make autograde`` does: the same staging, sandbox, probe,
host-side verdicts and grading log. The batch's own nbgrader processes (``LSTM_IPC_PREFIX`` set) keep
nbgrader's converter: they are the ones that grade.

Where grading cannot be done right (no working sandbox, no PyTorch or ipykernel for the course kernel, no
CUDA for ``DEVICE=cuda``) nothing is graded and nothing is written into the gradebook: the converter logs
what is missing and raises ``NbGraderException``, so the CLI exits 1 and the Formgrader shows the message.
"""

import fnmatch
import importlib.util
from pathlib import Path

from ..settings import load as load_settings
from . import sandbox
from .course import Course


def install() -> None:
    """Make nbgrader's Autograde converter grade through the batch, in this process (not in the batch's own)."""
    from nbgrader.converters import Autograde

    if load_settings().ipc_prefix:  # a batch's nbgrader process: the converter itself grades here
        return
    if getattr(Autograde.start, "_lstm_route", False):
        return
    Autograde.start = _start


def problems() -> list[str]:
    """What this machine lacks to grade as ``make autograde`` does; empty when nothing is missing."""
    settings = load_settings()
    found = []
    if settings.sandbox != "none":
        ok, why = sandbox.bwrap_works()
        if not ok:
            found.append(f"no working bubblewrap sandbox ({why}): install it with `apt-get install bubblewrap`, "
                         "or set LSTM_SANDBOX=none to grade trusted notebooks without one")
    for module in ("torch", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            found.append(f"no course kernel: this Python ({sandbox.interpreter()}) cannot import {module}; run "
                         "nbgrader from the course's environment (`make setup`, then `.venv/bin/nbgrader` or "
                         "`.venv/bin/jupyter lab`)")
    why = device_problem()
    return found + ([why] if why else [])


def device_problem() -> str:
    """Why the hidden tests cannot run on ``DEVICE``, if they cannot (a CUDA device asked for and none seen)."""
    device = load_settings().device
    if not device.startswith("cuda"):
        return ""
    import torch

    if torch.cuda.is_available():
        return ""
    return (f"DEVICE={device} asks for a GPU, but PyTorch sees no CUDA device on this machine "
            f"(torch {torch.__version__})")


def grade(course: Course, assignments: list[str], students: list[str] | None = None, say=print):
    """Grade like ``make autograde``: on the Dask cluster of ``CLUSTER``, else in local parallel jobs."""
    settings = load_settings()
    if settings.cluster:
        from .cluster import autograde

        return autograde(course, assignments, students, address=settings.cluster, say=say)
    from .batch import autograde

    return autograde(course, assignments, students, jobs=settings.jobs, say=say)


def _start(self) -> None:
    """``Autograde.start`` for the course: pick the submissions as nbgrader would, grade them in the batch."""
    from nbgrader.converters.base import NbGraderException

    course = Course(root=Path(self.coursedir.root).resolve(), db_url=self.coursedir.db_url)
    assignments = fnmatch.filter(course.assignments, self.coursedir.assignment_id or "*")
    if not assignments:
        raise _refuse(self, f"no assignment {self.coursedir.assignment_id!r} in {course.dir('source')}")
    students = fnmatch.filter(course.students(), self.coursedir.student_id or "*")
    if not self.force:  # nbgrader's rule: a graded submission is graded again only with --force
        done = {s for s in students if all((course.dir("autograded") / s / a).is_dir() for a in assignments)}
        for student in sorted(done):
            self.log.info("Skipping existing submission of %s (use --force to grade it again)", student)
        students = [s for s in students if s not in done]
    if not students:
        self.log.warning("No submissions to grade for %s", ", ".join(assignments))
        return
    missing = problems()
    if missing:
        raise _refuse(self, "; ".join(missing))
    result = grade(course, assignments, students, say=self.log.info)
    if result.failed:
        for outcome in result.outcomes:
            if outcome.status in ("failed", "lost"):
                self.log.error("could not grade %s for %s: %s", outcome.assignment, outcome.student,
                               outcome.detail[-1500:])
        raise NbGraderException(f"{result.failed} submission(s) could not be graded; see the log above")


_start._lstm_route = True


def _refuse(converter, why: str) -> Exception:
    from nbgrader.converters.base import NbGraderException

    converter.log.error("Not grading: %s. Nothing was written into the gradebook.", why)
    return NbGraderException(f"not grading: {why}")


def before_feedback(assignment: str, student: str, notebooks: list) -> None:
    """``GenerateFeedback.pre_convert_hook``, once per graded submission: nbgrader copies every file of its folder
    (``<root>/autograded/<student>/<assignment>``) into the feedback, so what is not a regular file or a folder
    goes first, as in ``make feedback``."""
    for folder in sorted({Path(nb).parent for nb in notebooks}):
        Course(root=folder.parents[2]).clear_graded(folder.name, folder.parent.name)
